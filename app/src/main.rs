use std::process::ExitCode;

fn main() -> ExitCode {
    bookstore_app::cli_main(std::env::args_os())
}
