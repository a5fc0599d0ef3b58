//! The `updown` binary: parses the command line and hands off to the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::main() {
        Ok(code) => code,
        // A closed pipe (`updown status | head`) is the reader's choice, not a failure.
        Err(err)
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            // `{:#}` prints the whole cause chain on one line: what failed, then why.
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
