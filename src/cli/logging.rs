//! Logging setup: a readable console stream and a complete log file in the output folder.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;
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
    use anyhow::Context;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("creating output folder {}", out_dir.display()))?;
    let path = out_dir.join(LOG_FILE);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening log file {}", path.display()))?;
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
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_filter(EnvFilter::new("debug"));
    // A second init (tests calling twice) is harmless; ignore it.
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(file_layer)
        .try_init();
    Ok(())
}
