//! Logging setup: a readable console stream and a complete log file in the output folder.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::prelude::*;

/// Log file name inside the output folder.
pub const LOG_FILE: &str = "updown.log";

/// Console at `info` for the session and scripts (override with `RUST_LOG`), everything at
/// `debug` and above to `<out>/updown.log`.
pub fn init(out_dir: &Path, quiet: bool) -> anyhow::Result<()> {
    init_with(out_dir, quiet, None)
}

/// As [`init`], with the console log written above a live status block when one is given.
pub fn init_with(
    out_dir: &Path,
    quiet: bool,
    block: Option<&super::status_line::StatusBlock>,
) -> anyhow::Result<()> {
    let file = open_log(out_dir)?;
    install(quiet, block, BoxMakeWriter::new(Mutex::new(file)));
    Ok(())
}

/// As [`init`], for a batch command (`updown backtest`): the log file is written in 64 KiB
/// blocks instead of a `write` per line, and the returned guard writes out the rest when it
/// is dropped, so keep it until the command ends. A backtest logs every decision and
/// settlement; one system call per line was 4% of its time (docs/BENCHMARKS.md). A kill -9
/// loses the last lines of the log, never of the ledger or the journals.
pub fn init_batched(out_dir: &Path, quiet: bool) -> anyhow::Result<LogFlush> {
    let file = Arc::new(Mutex::new(BufWriter::with_capacity(
        64 * 1024,
        open_log(out_dir)?,
    )));
    let shared = Arc::clone(&file);
    install(
        quiet,
        None,
        BoxMakeWriter::new(move || SharedLog(Arc::clone(&shared))),
    );
    Ok(LogFlush(file))
}

/// Writes out the buffered log of [`init_batched`] when dropped.
#[must_use = "the log is written out when this is dropped"]
pub struct LogFlush(Arc<Mutex<BufWriter<File>>>);

impl Drop for LogFlush {
    fn drop(&mut self) {
        if let Ok(mut w) = self.0.lock() {
            let _ = w.flush();
        }
    }
}

/// One event's writer into the shared buffered log file.
struct SharedLog(Arc<Mutex<BufWriter<File>>>);

impl Write for SharedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        w.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        w.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Each event asks for a flush; the buffer is written out when full and at the end.
        Ok(())
    }
}

fn open_log(out_dir: &Path) -> anyhow::Result<File> {
    use anyhow::Context;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("creating output folder {}", out_dir.display()))?;
    let path = out_dir.join(LOG_FILE);
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening log file {}", path.display()))
}

fn install(
    quiet: bool,
    block: Option<&super::status_line::StatusBlock>,
    file_writer: BoxMakeWriter,
) {
    let console_default = if quiet { "warn" } else { "info" };
    let console_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(console_default));
    let writer = match block {
        Some(b) => BoxMakeWriter::new(b.writer()),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let console = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .compact()
        .with_filter(console_filter);
    let file_layer = tracing_subscriber::fmt::layer()
        .with_writer(file_writer)
        .with_ansi(false)
        .with_filter(EnvFilter::new("debug"));
    // A second init (tests calling twice) is harmless; ignore it.
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(file_layer)
        .try_init();
}
