//! The `bookstore` command line; all logic lives in the library.

fn main() -> std::process::ExitCode {
    bookstore::cli::main()
}
