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
            eprintln!("error: {}", describe(&err));
            ExitCode::from(2)
        }
    }
}

/// The whole cause chain on one line, what failed then why, each cause once.
///
/// Library errors often already say their cause in their own message ("cannot read X: No
/// such file or directory (os error 2)") and also expose it as `source()`; printing the
/// chain naively (`{:#}`) would say it twice.
fn describe(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        // SQLite's own error repeats its message after a code ("Error code 1544: attempt to
        // write a readonly database"): the message is what matters, and it is there already.
        let gist = text.rsplit_once(": ").map_or(text.as_str(), |(_, m)| m);
        if line.contains(&text) || (gist.len() >= 16 && line.contains(gist)) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read config file x.toml: {source}")]
    struct ReadError {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file (os error 2)");
        let err = anyhow::Error::new(ReadError { source: io }).context("loading the configuration");
        assert_eq!(
            describe(&err),
            "loading the configuration: cannot read config file x.toml: No such file (os error 2)"
        );
        let plain = anyhow::anyhow!("disk full").context("writing the journal");
        assert_eq!(describe(&plain), "writing the journal: disk full");
    }
}
