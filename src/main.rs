//! The `updown` binary: parses the command line and hands off to the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::main() {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole cause chain on one line: what failed, then why.
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
