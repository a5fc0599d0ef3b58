//! `updown backtest`: replay recorded data through a strategy as a fresh session, and print
//! what happened, its fingerprint, a parameter sweep's spread, or the look-ahead check.
//!
//! Everything that decides or counts lives in the library (`updown::session::backtest`,
//! `sweep`, `lookahead`); this file owns the flags, the progress bar (stderr, only on a
//! terminal and without `--quiet`), signals, exit codes and the printed report
//! ([`print_report`], [`print_sweep`]).

use super::{Common, load_config, logging};
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use updown::config::parse_param_overrides;
use updown::feed::Outcomes;
use updown::ledger::lock::FolderLock;
use updown::report::{Written, write_report_curve};
use updown::session::Ending;
use updown::session::backtest::{
    BacktestData, BacktestResult, BacktestSpec, Plan, Range, Recording, parse_bound, plan,
    run_backtest, utc,
};
use updown::session::lookahead::{
    DEFAULT_SAMPLES, LookaheadReport, check_lookahead, planned_windows,
};
use updown::session::sweep::{
    Row, SCRIPT_STACK_BYTES, SortKey, Spread, grid, parse_axis, return_pct, run_sweep, sort_rows,
};

/// Flags of `updown backtest`.
#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// Strategy script (.rhai), or `native:rsi_ema` for the RSI/EMA rules written in Rust
    /// (the reference the benchmarks compare the script with; it reads `[params.rsi_ema]`).
    #[arg(long, value_name = "FILE")]
    strategy: PathBuf,
    /// Recorded Binance 1m kline CSVs (any accepted layout). Several files are joined in time
    /// order: identical overlapping candles are merged, a conflicting overlap is an error
    /// naming both files, and gaps are reported.
    #[arg(long, value_name = "CSV", num_args = 1.., required = true)]
    data: Vec<PathBuf>,
    /// Trade only windows starting at or after this UTC date or time (2026-02-22 or
    /// 2026-02-22T14:30). Earlier candles are still history for the warm-up.
    #[arg(long, value_name = "DATE", value_parser = parse_from)]
    from: Option<i64>,
    /// Trade only windows ending by this UTC date or time; a date includes that whole day.
    /// No candle after it is ever shown.
    #[arg(long, value_name = "DATE", value_parser = parse_to)]
    to: Option<i64>,
    /// Settle from Polymarket's real results in this CSV
    /// (`timestamp,slug,yes_price,clob_token_id`; yes_price 1 = Up won, 0 = Down won, else
    /// not resolved) instead of price data. Windows without a known result are skipped
    /// (`no_outcome`), never guessed.
    #[arg(long, value_name = "CSV")]
    outcomes: Option<PathBuf>,
    /// Output folder (default: <session.out_dir>/backtests/<strategy stem>, i.e.
    /// data/backtests/<stem>). A backtest is always a fresh session: the ledger.sqlite
    /// (-wal/-shm) and journal files updown wrote there before are replaced, so an earlier
    /// halt there cannot block it; nothing else in the folder is touched.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Configuration file (every setting is documented in the shipped config.toml).
    #[arg(long, value_name = "FILE", default_value = "config.toml")]
    config: PathBuf,
    /// Strategy parameter override, repeatable: --param rsi_low=25 --param ema_fast=7.
    #[arg(long = "param", value_name = "K=V")]
    params: Vec<String>,
    /// Sweep a parameter over values, repeatable: --sweep rsi_low=25,30,35 --sweep
    /// ema_fast=7,9,12 runs the whole grid in parallel, each combination in its own
    /// sub-folder of the output, and prints every result with its fingerprint and the
    /// spread of the chosen metric.
    #[arg(long = "sweep", value_name = "K=V1,V2,...")]
    sweeps: Vec<String>,
    /// Metric a sweep's rows are sorted by: pnl, return, win_rate, trades, max_drawdown,
    /// sharpe or sortino (highest first; max_drawdown lowest first).
    #[arg(long, value_name = "METRIC", default_value = "pnl", value_parser = parse_sort_key)]
    sort_by: SortKey,
    /// Threads for a sweep or the look-ahead check (default: all cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    /// Exit 1 unless the run's fingerprint is this one (64 hex digits, or a prefix of at
    /// least 12).
    #[arg(long, value_name = "HEX", conflicts_with = "sweeps", value_parser = parse_fingerprint)]
    expect_fingerprint: Option<String>,
    /// Also rerun the backtest with the data cut right after the decision time of a few
    /// sample windows spread over the range, and fail (exit 1) if any decision up to a cut
    /// changes.
    #[arg(long, conflicts_with = "sweeps")]
    check_lookahead: bool,
    /// Sample windows for --check-lookahead.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SAMPLES as u32,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    lookahead_samples: u32,
    /// Record through the ledger as a `run` does, N steps per transaction (1 = every step,
    /// as `updown run` commits), instead of in memory with one write at the end: for
    /// measuring a session's recording costs. Same results either way.
    #[arg(long, value_name = "N", hide = true, value_parser = clap::value_parser!(u32).range(1..))]
    commit_every: Option<u32>,
    /// No progress bar and no header; print the summary and the fingerprint.
    #[arg(long, short)]
    quiet: bool,
}

fn parse_from(s: &str) -> Result<i64, String> {
    parse_bound(s, false)
}

fn parse_to(s: &str) -> Result<i64, String> {
    parse_bound(s, true)
}

/// A fingerprint to expect: checked before the run, so a mistyped one fails at once instead
/// of after a long backtest, with "drift" blamed on the strategy.
fn parse_fingerprint(s: &str) -> Result<String, String> {
    let hex = s.trim();
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{s:?} is not a fingerprint: use the hex digits (0-9, a-f) `updown backtest` prints after `fingerprint`"
        ));
    }
    if !(12..=64).contains(&hex.len()) {
        return Err(format!(
            "{s:?} has {} hex digits; give all 64 or a prefix of at least 12",
            hex.len()
        ));
    }
    Ok(hex.to_ascii_lowercase())
}

fn parse_sort_key(s: &str) -> Result<SortKey, String> {
    s.parse()
}

/// Run `updown backtest`.
pub fn backtest(args: BacktestArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&Common {
        config: args.config.clone(),
        out: args.out.clone(),
    })?;
    let native = updown::native::native_name(&args.strategy);
    let stem = match native {
        Some(name) => format!("native_{name}"),
        None => args
            .strategy
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "strategy".into()),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| config.session.out_dir.join("backtests").join(&stem));
    match native {
        Some(name) if updown::native::native(name).is_none() => bail!(
            "there is no native strategy {name:?}; native strategies: {}",
            updown::native::NAMES
                .map(|n| format!("{}{n}", updown::native::PREFIX))
                .join(", ")
        ),
        Some(_) => {}
        None if !args.strategy.is_file() => bail!(
            "strategy {} does not exist or is not a file",
            args.strategy.display()
        ),
        None => {}
    }
    // The console gets warnings only (the progress bar shows the pace); the log file in the
    // output folder gets everything, written out in blocks until `_log` is dropped when the
    // command returns.
    // Held until the command returns: no other updown process may write this folder while
    // the backtest replaces its ledger.
    let _lock = FolderLock::acquire(
        &out,
        &format!("updown backtest --strategy {}", args.strategy.display()),
    )?;
    let _log = logging::init_batched(&out, true)?;
    let overrides = parse_param_overrides(&args.params)?;
    let axes = args
        .sweeps
        .iter()
        .map(|s| parse_axis(s))
        .collect::<Result<Vec<_>, _>>()?;
    for a in &axes {
        if overrides.contains_key(&a.key) {
            bail!(
                "{} is given both as --param and as --sweep; keep one",
                a.key
            );
        }
    }
    let combinations = grid(&axes)?;
    let mut given = overrides.clone();
    for a in &axes {
        if let Some((_, v)) = a.values.first() {
            given.insert(a.key.clone(), v.clone());
        }
    }
    super::warn_params(&args.strategy, &config, &given);

    let data = BacktestData::load(
        &args.data,
        args.outcomes.as_deref(),
        config.session.interval_secs,
    )
    .context("loading the backtest data")?;
    let range = Range {
        from: args.from,
        to: args.to,
    };
    let plan = plan(&data, &config, &range)?;
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |j| j as usize,
    );

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .context("installing the signal handler")?;
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing the signal handler")?;
    }

    let spec = BacktestSpec {
        strategy: args.strategy.clone(),
        config,
        overrides,
        out_dir: out.clone(),
        recording: match args.commit_every {
            Some(commit_every) => Recording::Ledger { commit_every },
            None => Recording::InMemory,
        },
        keep_predictions: args.check_lookahead,
    };
    let show_bar = !args.quiet && std::io::stderr().is_terminal();
    if !args.quiet {
        eprintln!(
            "updown backtest: {} on {} windows ({} → {} UTC){}, paper money, fresh session in {}",
            args.strategy.display(),
            plan.windows.len(),
            utc(plan.windows[0].start),
            utc(plan.windows[plan.windows.len() - 1].end),
            if combinations.len() > 1 {
                format!(" × {} combinations on {jobs} threads", combinations.len())
            } else {
                String::new()
            },
            out.display()
        );
    }

    if !axes.is_empty() {
        let total = (plan.windows.len() * combinations.len()) as u64;
        let bar = progress_bar(total, show_bar);
        let tick = || bar.inc(1);
        let mut rows = run_sweep(&spec, &data, &plan, combinations, jobs, &tick, &stop);
        bar.finish_and_clear();
        sort_rows(&mut rows, args.sort_by);
        let csv = write_sweep_csv(&out, &axes_keys(&rows), &rows)?;
        let mut stdout = std::io::stdout().lock();
        print_sweep(&mut stdout, &plan, &rows, args.sort_by, &out, &csv)?;
        if rows.iter().any(|r| r.result.is_err()) {
            return Ok(ExitCode::from(2));
        }
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(ExitCode::from(130));
        }
        return Ok(ExitCode::SUCCESS);
    }

    // One backtest, on a thread with a stack large enough for scripts.
    let bar = progress_bar(plan.windows.len() as u64, show_bar);
    let result = {
        let (spec, data, plan, stop, bar) = (&spec, &data, &plan, &stop, bar.clone());
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("backtest".into())
                .stack_size(SCRIPT_STACK_BYTES)
                .spawn_scoped(scope, move || {
                    let hook = Box::new(move |_| bar.inc(1));
                    let result = run_backtest(spec, data, plan, None, Some(hook), stop)?;
                    // report.json and the charts, drawn on this thread: it reuses the memory
                    // the run freed rather than growing another heap.
                    let written =
                        write_report_curve(&result.out_dir, result.curve(), &result.report)
                            .map_err(|e| {
                                tracing::warn!("the report files could not be written: {e}");
                            })
                            .ok();
                    Ok::<_, updown::session::backtest::BacktestError>((result, written))
                })
                .map(|h| h.join())
        })
    }
    .context("starting the backtest thread")?
    .map_err(|_| anyhow::anyhow!("the backtest thread panicked"))?
    .context("running the backtest")?;
    let (result, written) = result;
    bar.finish_and_clear();

    let lookahead = if args.check_lookahead && result.ending != Ending::Interrupted {
        let total = planned_windows(&result, args.lookahead_samples as usize);
        let bar = progress_bar(total, show_bar);
        bar.set_message("look-ahead check");
        let tick = || bar.inc(1);
        let report = check_lookahead(
            &spec,
            &data,
            &plan,
            &result,
            args.lookahead_samples as usize,
            jobs,
            &tick,
            &stop,
        )
        .context("running the look-ahead check")?;
        bar.finish_and_clear();
        Some(report)
    } else {
        None
    };

    let mut stdout = std::io::stdout().lock();
    print_report(
        &mut stdout,
        &data,
        &plan,
        &result,
        written.as_ref(),
        lookahead.as_ref(),
        args.quiet,
    )?;
    stdout.flush()?;

    if result.ending == Ending::Interrupted {
        return Ok(ExitCode::from(130));
    }
    if let Some(report) = &lookahead
        && let Some(m) = &report.mismatch
    {
        eprintln!("error: look-ahead check FAILED: {m}");
        return Ok(ExitCode::from(1));
    }
    if let Some(expected) = &args.expect_fingerprint
        && !result.fingerprint.matches(expected)
    {
        eprintln!(
            "error: fingerprint drift: expected {}, this run gives {}. The settled trades or \
             the metrics differ from the run that produced the expected value: the script, \
             its parameters, the configuration or the data changed.",
            expected.trim(),
            result.fingerprint
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(total: u64, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    // `wide_bar` takes what the terminal width leaves, so the line never wraps.
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{wide_bar}] {human_pos}/{human_len} windows · {rate} · ETA {eta}",
    ) {
        let style = style
            .with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0}/s", state.per_sec());
                },
            )
            .progress_chars("=> ");
        bar.set_style(style);
    }
    bar.set_message("backtest");
    bar
}

fn pct(d: Option<rust_decimal::Decimal>) -> String {
    d.map_or_else(|| "n/a".into(), |v| format!("{v}%"))
}

/// Print one backtest's result for a person: what was run on what, how it was settled, the
/// summary, the look-ahead check, and the fingerprint (always the last line).
#[allow(clippy::too_many_arguments)]
pub fn print_report(
    out: &mut impl Write,
    data: &BacktestData,
    plan: &Plan,
    r: &BacktestResult,
    written: Option<&Written>,
    lookahead: Option<&LookaheadReport>,
    quiet: bool,
) -> std::io::Result<()> {
    let state = match &r.ending {
        Ending::Complete => "complete".to_string(),
        Ending::Halted(h) => format!(
            "HALTED at {} UTC ({}: {}) — a result of the strategy under the risk limits",
            utc(h.at),
            h.reason,
            h.detail
        ),
        Ending::Interrupted => "INTERRUPTED — partial result".to_string(),
    };
    writeln!(out, "Backtest {state}.")?;
    if !quiet {
        writeln!(
            out,
            "windows     {} decided of {}: {} ({} UTC) → {} ({} UTC)",
            r.windows,
            plan.windows.len(),
            r.first_window.slug,
            utc(r.first_window.start),
            r.last_window.slug,
            utc(r.last_window.start)
        )?;
        writeln!(out, "data        {}", data.description)?;
        if data.joined.sources.len() > 1 {
            for s in &data.joined.sources {
                writeln!(out, "            {}", s.describe())?;
            }
        }
        writeln!(
            out,
            "history     {} candles before the first decision (warm-up)",
            plan.history_candles
        )?;
        for note in &plan.notes {
            writeln!(out, "note        {note}")?;
        }
        match &data.outcomes {
            Some(o) => print_outcomes(out, o, r)?,
            None => writeln!(
                out,
                "settlement  price data (close of the window's last 1m candle ≥ open of its first)"
            )?,
        }
        if r.anomalies > 0 {
            writeln!(out, "anomalies   {} candles rejected", r.anomalies)?;
        }
    }
    // The full report, computed from the session's records as `updown report` computes it
    // from the journals, and where report.json and the charts were written.
    writeln!(out, "{}", r.report)?;
    if let Some(w) = written {
        writeln!(out, "{}", super::report::written_line(w))?;
    }
    if let Some(report) = lookahead {
        match &report.mismatch {
            None => {
                let compared: usize = report.probes.iter().map(|p| p.compared).sum();
                writeln!(
                    out,
                    "look-ahead  passed: {} reruns with the data cut right after a decision, {compared} decisions compared, none changed:",
                    report.probes.len()
                )?;
                for p in &report.probes {
                    writeln!(
                        out,
                        "            cut {} UTC after {} ({} windows): {}",
                        utc(p.cut),
                        p.window.slug,
                        p.compared,
                        p.decision
                    )?;
                }
            }
            Some(m) => writeln!(out, "look-ahead  FAILED: {m}")?,
        }
    }
    if !quiet {
        writeln!(
            out,
            "output      {0}/predictions.jsonl, {0}/trades.jsonl, {0}/equity_curve.csv, ledger {0}/ledger.sqlite · script {1} · config {2}",
            r.out_dir.display(),
            r.script_hash,
            r.config_hash
        )?;
    }
    if r.wall_clock_timeouts > 0 {
        writeln!(
            out,
            "warning     {} script calls were stopped by the wall-clock safety net \
             (sandbox.backtest_call_timeout_ms) and journaled as script_timeout: this result \
             depends on the machine's speed. Make the script cheaper, or raise the limit",
            r.wall_clock_timeouts
        )?;
    }
    match r.ending {
        Ending::Interrupted => writeln!(
            out,
            "fingerprint {} (partial: interrupted runs are not comparable)",
            r.fingerprint
        ),
        _ if r.wall_clock_timeouts > 0 => writeln!(
            out,
            "fingerprint {} (machine-dependent: {} calls hit the wall-clock safety net)",
            r.fingerprint, r.wall_clock_timeouts
        ),
        _ => writeln!(out, "fingerprint {}", r.fingerprint),
    }
}

fn print_outcomes(out: &mut impl Write, o: &Outcomes, r: &BacktestResult) -> std::io::Result<()> {
    writeln!(out, "settlement  polymarket: real results from {o}")?;
    if let Some(a) = &r.agreement {
        writeln!(
            out,
            "            price-data settlement would agree on {} of windows ({} of {}) and {} of settled trades ({} of {})",
            pct(a.window_rate()),
            a.windows_agree,
            a.windows,
            pct(a.trade_rate()),
            a.trades_agree,
            a.trades
        )?;
    }
    writeln!(
        out,
        "            windows without a known outcome: {} (skipped as no_outcome, never guessed)",
        r.no_outcome
    )?;
    let (first, last) = (r.first_window.start, r.last_window.start);
    for row in o.unresolved().take(5) {
        let place = if (first..=last).contains(&row.start) {
            "in range: skipped as no_outcome"
        } else {
            "outside the backtest's windows"
        };
        writeln!(
            out,
            "            unknown outcome: {} (line {}, yes_price {}) — not resolved, not traded ({place})",
            row.slug, row.line, row.yes_price
        )?;
    }
    let more = o.unresolved().count().saturating_sub(5);
    if more > 0 {
        writeln!(out, "            … and {more} more unresolved markets")?;
    }
    Ok(())
}

fn axes_keys(rows: &[Row]) -> Vec<String> {
    rows.first().map_or_else(Vec::new, |r| {
        r.combination
            .params
            .iter()
            .map(|(k, _)| k.clone())
            .collect()
    })
}

/// Write `<out>/sweep.csv` (one row per combination, in the printed order).
fn write_sweep_csv(out: &Path, keys: &[String], rows: &[Row]) -> anyhow::Result<PathBuf> {
    let path = out.join("sweep.csv");
    let mut text = keys.join(",");
    text.push_str(
        ",windows,trades,wins,win_rate_pct,pnl,return_pct,max_drawdown_pct,sharpe,fees,final_equity,fingerprint,folder,error\n",
    );
    for row in rows {
        let values: Vec<String> = row
            .combination
            .params
            .iter()
            .map(|(_, v)| v.clone())
            .collect();
        text.push_str(&values.join(","));
        match &row.result {
            Ok(r) => {
                let s = &r.summary;
                text.push_str(&format!(
                    ",{},{},{},{},{},{},{},{},{},{},{},{},\n",
                    s.windows,
                    s.settled,
                    s.wins,
                    SortKey::WinRate
                        .value(r)
                        .map_or(String::new(), |v| v.to_string()),
                    s.pnl,
                    return_pct(s).map_or(String::new(), |v| v.to_string()),
                    s.max_drawdown_pct,
                    SortKey::Sharpe
                        .value(r)
                        .map_or(String::new(), |v| v.to_string()),
                    s.fees,
                    s.final_equity,
                    r.fingerprint,
                    row.combination.dir_name()
                ));
            }
            Err(e) => {
                let msg = e.to_string().replace([',', '\n'], " ");
                text.push_str(&format!(
                    ",,,,,,,,,,,{},{msg}\n",
                    row.combination.dir_name()
                ));
            }
        }
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Print a sweep: one row per combination sorted by `key` (with its fingerprint), then the
/// spread of the metric and how many combinations made money. No row is called "best".
pub fn print_sweep(
    out: &mut impl Write,
    plan: &Plan,
    rows: &[Row],
    key: SortKey,
    dir: &Path,
    csv: &Path,
) -> std::io::Result<()> {
    let keys = axes_keys(rows);
    writeln!(
        out,
        "Sweep: {} combinations of {} over {} windows ({} → {} UTC), sorted by {key} ({})",
        rows.len(),
        keys.join(" × "),
        plan.windows.len(),
        utc(plan.windows[0].start),
        utc(plan.windows[plan.windows.len() - 1].end),
        if key.higher_is_better() {
            "highest first"
        } else {
            "lowest first"
        }
    )?;
    let mut header: Vec<String> = keys.clone();
    header.extend(
        [
            "trades",
            "win rate",
            "P&L",
            "return",
            "max dd",
            "Sharpe",
            "fees",
            "end",
            "fingerprint",
        ]
        .map(String::from),
    );
    let mut table: Vec<Vec<String>> = vec![header];
    for row in rows {
        let mut cells: Vec<String> = row
            .combination
            .params
            .iter()
            .map(|(_, v)| v.clone())
            .collect();
        match &row.result {
            Ok(r) => {
                let s = &r.summary;
                let ended = match &r.ending {
                    Ending::Complete => "done".to_string(),
                    Ending::Halted(h) => format!("halted ({})", h.reason),
                    Ending::Interrupted => "interrupted".to_string(),
                };
                cells.extend([
                    s.settled.to_string(),
                    pct(SortKey::WinRate.value(r)),
                    format!("${}", s.pnl.round_dp(2)),
                    pct(return_pct(s)),
                    format!("{}%", s.max_drawdown_pct),
                    SortKey::Sharpe
                        .value(r)
                        .map_or("n/a".into(), |v| v.round_dp(2).to_string()),
                    format!("${}", s.fees.round_dp(2)),
                    ended,
                    if r.wall_clock_timeouts > 0 {
                        format!("{} (machine-dependent)", r.fingerprint)
                    } else {
                        r.fingerprint.to_string()
                    },
                ]);
            }
            Err(e) => cells.push(format!("FAILED: {e}")),
        }
        table.push(cells);
    }
    let cols = table.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            table
                .iter()
                .filter(|r| r.len() > c + 1)
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in &table {
        let mut line = String::from(" ");
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push(' ');
                line.push_str(cell);
            } else {
                line.push_str(&format!(" {cell:>w$}", w = widths[c]));
            }
        }
        writeln!(out, "{line}")?;
    }
    match Spread::of(rows, key) {
        Some(s) => {
            let fmt = |v: rust_decimal::Decimal| match key {
                SortKey::Pnl => format!("${}", v.round_dp(2)),
                SortKey::Trades => v.round_dp(1).normalize().to_string(),
                SortKey::Sharpe | SortKey::Sortino => v.round_dp(2).to_string(),
                // Return, win rate and drawdown are percentages.
                _ => format!("{}%", v.round_dp(2)),
            };
            writeln!(
                out,
                "spread of {key}: min {} · median {} · max {} (over {} combinations) · profitable: {} of {}",
                fmt(s.min),
                fmt(s.median),
                fmt(s.max),
                s.counted,
                s.profitable,
                s.total
            )?;
        }
        None => writeln!(out, "spread of {key}: no combination has this metric")?,
    }
    writeln!(
        out,
        "A wide spread or few profitable combinations means the result depends on the parameters: over-fitting risk."
    )?;
    let timed_out: usize = rows
        .iter()
        .filter_map(|r| r.result.as_ref().ok())
        .map(|r| r.wall_clock_timeouts)
        .sum();
    if timed_out > 0 {
        writeln!(
            out,
            "warning: {timed_out} script calls were stopped by the wall-clock safety net \
             (sandbox.backtest_call_timeout_ms); the combinations marked machine-dependent \
             may give other results on another machine"
        )?;
    }
    writeln!(
        out,
        "Each combination's journals and ledger: {}/<combination>/ · table: {}",
        dir.display(),
        csv.display()
    )
}
