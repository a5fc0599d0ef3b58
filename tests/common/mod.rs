//! Helpers the integration tests that run the `updown` binary share: waiting for it with a
//! time limit, and reading its journals. Each test crate uses only some of them.
#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use updown::ledger::records::{PredictionRecord, TradeRecord};

/// How a run of the binary ended, with everything it printed.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Waits for `child` at most `limit` (then kills it and fails). Its pipes are read on
/// their own threads while it runs, so a child that prints more than a pipe holds never
/// blocks on a full pipe while the test waits for it to exit.
pub fn finish(mut child: Child, limit: Duration) -> Ran {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let mut bytes = Vec::new();
                let _ = p.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for updown") {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.join().unwrap_or_default();
            panic!("updown did not finish within {limit:?}; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ran {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Run the `updown` binary with `args` from the repository, no stdin, its output captured,
/// for at most `limit`.
pub fn updown_within(args: &[&str], limit: Duration) -> Ran {
    let bin = env!("CARGO_BIN_EXE_updown");
    let child = Command::new(bin)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin} {args:?}: {e}"));
    finish(child, limit)
}

/// The non-empty lines of `path` (none when it does not exist yet).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The prediction journal of the output folder `out`.
pub fn predictions(out: &Path) -> Vec<PredictionRecord> {
    lines(&out.join("predictions.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).expect("a prediction line"))
        .collect()
}

/// The trade journal of the output folder `out`.
pub fn trades(out: &Path) -> Vec<TradeRecord> {
    lines(&out.join("trades.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).expect("a trade line"))
        .collect()
}
