use std::process::ExitCode;

fn main() -> ExitCode {
    // `bookstore-app healthcheck` (the image's HEALTHCHECK) first, then the shop's commands.
    bookstore_app::healthcheck::run_if_asked(std::env::args_os())
        .unwrap_or_else(|| bookstore_app::cli_main(std::env::args_os()))
}
