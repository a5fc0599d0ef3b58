//! Helpers the integration tests that run the `updown` binary share: waiting for it with a
//! time limit, and reading its journals. Each test crate uses only some of them.
#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};
use updown::ledger::records::{PredictionRecord, TradeRecord};

/// How a run of the binary ended, with everything it printed.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Waits for `child` at most `limit` (then kills it and fails).
pub fn finish(mut child: Child, limit: Duration) -> Ran {
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for updown") {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("updown did not finish within {limit:?}; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    Ran {
        status,
        stdout,
        stderr,
    }
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
