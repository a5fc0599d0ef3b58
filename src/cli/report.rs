//! `updown report DIR`: the full report of an earlier run, from the journals in its output
//! folder, printed as a table (or JSON), with `report.json` and the equity charts
//! (re)written beside the journals.

use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use updown::ledger::lock::{FolderLock, LockError};
use updown::ledger::{LEDGER_FILE, Ledger, SessionStatus};
use updown::report::{Report, Written, read_report_dir, write_report_curve};

/// Flags of `updown report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Output folder of an earlier run: the folder holding its predictions.jsonl,
    /// trades.jsonl and equity_curve.csv (the `--out` of `updown run`, `data` by default).
    #[arg(value_name = "DIR", default_value = "data")]
    dir: PathBuf,
    /// Print the report as JSON (the content of report.json) instead of the table; the
    /// paths of the written files then go to standard error.
    #[arg(long)]
    json: bool,
    /// Only print: do not (re)write report.json, equity.png and equity.svg in DIR.
    #[arg(long)]
    no_write: bool,
}

/// The line that says where the report files went, shared with `updown run`.
pub fn written_line(w: &Written) -> String {
    format!(
        "Report: {} · chart: {}, {}",
        w.json.display(),
        w.png.display(),
        w.svg.display()
    )
}

/// Read the journals in `dir` (one line at a time, so a session of any length fits in
/// memory), compute the report, and write its files unless `no_write`.
pub fn build(dir: &Path, write: bool) -> anyhow::Result<(Report, Option<Written>)> {
    let read = read_report_dir(dir)
        .with_context(|| format!("reading the journals in {}", dir.display()))?;
    let written = if write {
        Some(
            write_report_curve(dir, read.curve(), &read.report)
                .with_context(|| format!("writing the report into {}", dir.display()))?,
        )
    } else {
        None
    };
    Ok((read.report, written))
}

/// Why the journals in `dir` may not describe a whole run: its ledger's latest session is
/// still running (the process was killed or is trading now), or it halted. `None` when the
/// run completed or there is no ledger to ask.
fn unfinished(dir: &Path) -> Option<String> {
    let path = dir.join(LEDGER_FILE);
    if !path.exists() {
        return None;
    }
    let ledger = Ledger::open_read_only(&path).ok()?;
    let session = ledger.latest_session().ok()??;
    match session.status {
        SessionStatus::Running => Some(format!(
            "the run is unfinished: session #{} ({}) stopped before window {} — killed, interrupted \
             or still trading — so these figures cover only the windows so far; {}",
            session.id,
            session.label,
            session.next_index + 1,
            if session.run_key.starts_with("backtest ") {
                "run the backtest again for the whole range"
            } else {
                "run the same command again to resume it"
            }
        )),
        SessionStatus::Halted => Some(format!(
            "the run halted (session #{}); `updown status --out {}` shows why",
            session.id,
            dir.display()
        )),
        SessionStatus::Complete | SessionStatus::Abandoned => None,
    }
}

/// Run `updown report`.
pub fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    // Writing the report files while a run writes the journals would race it; a folder in
    // use is reported on as it stands, without writing.
    let mut write = !args.no_write;
    let _lock = if write && args.dir.is_dir() {
        match FolderLock::acquire(&args.dir, "updown report") {
            Ok(lock) => Some(lock),
            Err(LockError::Busy { holder, .. }) => {
                eprintln!(
                    "note: {} is in use ({holder}); printing the report as it stands without writing its files",
                    args.dir.display()
                );
                write = false;
                None
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let (report, written) = build(&args.dir, write)?;
    if let Some(note) = unfinished(&args.dir) {
        eprintln!("note: {note}");
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", report.to_json()?)?;
        if let Some(w) = &written {
            eprintln!("{}", written_line(w));
        }
    } else {
        writeln!(out, "{report}")?;
        if let Some(w) = &written {
            writeln!(out, "{}", written_line(w))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
