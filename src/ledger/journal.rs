//! The journals people and tools read: `predictions.jsonl`, `trades.jsonl`,
//! `equity_curve.csv`, and `script_reloads.jsonl` when a script changes mid-session.
//!
//! They are views of the ledger, not records of their own: when a session starts or resumes
//! they are rewritten from the ledger, then appended to as the session goes, buffered and
//! flushed every few windows. A crash can therefore lose only unflushed lines, which the
//! next start rewrites; it can never leave a line the ledger does not have.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Journal file names.
pub const PREDICTIONS: &str = "predictions.jsonl";
/// Journal file names.
pub const TRADES: &str = "trades.jsonl";
/// Journal file names.
pub const EQUITY: &str = "equity_curve.csv";
/// Journal file names.
pub const RELOADS: &str = "script_reloads.jsonl";

/// Open journal files of one session. Owned by the session.
#[derive(Debug)]
pub struct Journals {
    dir: PathBuf,
    predictions: BufWriter<File>,
    trades: BufWriter<File>,
    equity: BufWriter<File>,
    reloads: BufWriter<File>,
    flush_every: u32,
    since_flush: u32,
    observer: Observer,
}

/// A journal line as the session writes it, for a live display (`updown run`'s status line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalEvent<'a> {
    /// A `predictions.jsonl` line.
    Prediction(&'a str),
    /// A `trades.jsonl` line.
    Trade(&'a str),
    /// An `equity_curve.csv` point: time and equity.
    Equity(i64, &'a str),
}

/// Told about every journal line written after [`Journals::observe`].
pub type JournalObserver = Box<dyn FnMut(JournalEvent<'_>) + Send>;

/// The observer slot of [`Journals`].
#[derive(Default)]
struct Observer(Option<JournalObserver>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(set)"
        } else {
            "Observer(none)"
        })
    }
}

impl Observer {
    fn tell(&mut self, event: JournalEvent<'_>) {
        if let Some(f) = self.0.as_mut() {
            f(event);
        }
    }
}

/// A journal write failure, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot write journal in {dir}: {source}")]
pub struct JournalError {
    dir: PathBuf,
    source: std::io::Error,
}

impl Journals {
    /// Rewrite the journals in `dir` from a session's records (the ledger's, or a backtest's
    /// kept in memory, whichever holds the lines) and keep them open.
    pub fn rebuild(
        dir: &Path,
        predictions: impl IntoIterator<Item = impl AsRef<str>>,
        trades: impl IntoIterator<Item = impl AsRef<str>>,
        equity: &[(i64, String)],
        reloads: impl IntoIterator<Item = impl AsRef<str>>,
        flush_every: u32,
    ) -> Result<Journals, JournalError> {
        let err = |source| JournalError {
            dir: dir.to_path_buf(),
            source,
        };
        let create = |name: &str| {
            File::create(dir.join(name)).map(|f| BufWriter::with_capacity(64 * 1024, f))
        };
        let mut j = Journals {
            dir: dir.to_path_buf(),
            predictions: create(PREDICTIONS).map_err(err)?,
            trades: create(TRADES).map_err(err)?,
            equity: create(EQUITY).map_err(err)?,
            reloads: create(RELOADS).map_err(err)?,
            flush_every,
            since_flush: 0,
            observer: Observer::default(),
        };
        writeln!(j.equity, "time,equity").map_err(err)?;
        for l in predictions {
            j.prediction(l.as_ref())?;
        }
        for l in trades {
            j.trade(l.as_ref())?;
        }
        for (t, e) in equity {
            j.equity(*t, e)?;
        }
        for l in reloads {
            j.reload(l.as_ref())?;
        }
        j.flush()?;
        Ok(j)
    }

    fn err(&self, source: std::io::Error) -> JournalError {
        JournalError {
            dir: self.dir.clone(),
            source,
        }
    }

    /// Tell `observer` about every line written from now on (lines rebuilt from the ledger
    /// before this call are not repeated). It runs inside the session loop: keep it cheap.
    pub fn observe(&mut self, observer: JournalObserver) {
        self.observer = Observer(Some(observer));
    }

    /// Append a prediction line.
    pub fn prediction(&mut self, line: &str) -> Result<(), JournalError> {
        writeln!(self.predictions, "{line}").map_err(|e| self.err(e))?;
        self.observer.tell(JournalEvent::Prediction(line));
        Ok(())
    }

    /// Append a trade line.
    pub fn trade(&mut self, line: &str) -> Result<(), JournalError> {
        writeln!(self.trades, "{line}").map_err(|e| self.err(e))?;
        self.observer.tell(JournalEvent::Trade(line));
        Ok(())
    }

    /// Append an equity point.
    pub fn equity(&mut self, time: i64, equity: &str) -> Result<(), JournalError> {
        writeln!(self.equity, "{time},{equity}").map_err(|e| self.err(e))?;
        self.observer.tell(JournalEvent::Equity(time, equity));
        Ok(())
    }

    /// Append a script reload line (flushed at once: reloads are rare and people watch them).
    pub fn reload(&mut self, line: &str) -> Result<(), JournalError> {
        writeln!(self.reloads, "{line}").map_err(|e| self.err(e))?;
        self.reloads.flush().map_err(|e| self.err(e))
    }

    /// Note a finished window; flushes when the batch is full.
    pub fn window_done(&mut self) -> Result<(), JournalError> {
        self.since_flush += 1;
        if self.since_flush >= self.flush_every {
            self.flush()?;
        }
        Ok(())
    }

    /// Write everything buffered to disk.
    pub fn flush(&mut self) -> Result<(), JournalError> {
        self.since_flush = 0;
        self.predictions.flush().map_err(|e| self.err(e))?;
        self.trades.flush().map_err(|e| self.err(e))?;
        self.reloads.flush().map_err(|e| self.err(e))?;
        self.equity.flush().map_err(|e| self.err(e))
    }
}
