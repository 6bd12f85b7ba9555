//! The bookstore shop: a warp + mysql_async web store built to run as many identical instances.
