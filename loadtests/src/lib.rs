//! goose scenarios that shop at a bookstore deployment and report how many instances answered.
