//! Backtests: a fresh session over recorded history, through the same
//! [`Engine`](super::Engine) as every other run, with a fingerprint of its result.
//!
//! This module owns what a backtest adds around the shared loop: loading and joining the
//! data files and the optional outcomes file once ([`BacktestData`]), choosing the windows
//! of a `--from/--to` range while keeping every earlier candle as warm-up history
//! ([`plan`]), starting a fresh ledger and journals in the output folder (removing only the
//! files updown writes there, [`start_fresh`]), running the loop, and condensing the result
//! into a [`Summary`], a [`Fingerprint`] and, with real outcomes, the [`Agreement`] between
//! price-data settlement and Polymarket's results. Decisions go through the same clock,
//! feed, risk gate and venue trait as `updown run`; the only backtest-specific parts are the
//! feed's hard cut-off ([`HistoryFeed`]) and the venue that settles from recorded results
//! ([`OutcomesVenue`]).

use super::replay::{stddev_baseline, strategy_params};
use super::{
    Ending, EngineSetup, LatencyProbe, LedgerRecorder, MemoryRecorder, Progress, Recorder,
    SessionError, SimulatedClock, new_account,
};
use crate::config::Config;
use crate::domain::Window;
use crate::feed::join::JoinError;
use crate::feed::outcomes::OutcomesError;
use crate::feed::{Candle, HistoryFeed, Joined, Lookup, Outcomes};
use crate::indicators::IndicatorCache;
use crate::ledger::journal::{EQUITY, Journals, PREDICTIONS, RELOADS, TRADES};
use crate::ledger::records::TradeRecord;
use crate::ledger::{LEDGER_FILE, Ledger, LedgerError, SessionStatus};
use crate::report::{Curve, EquityPoint, Report, ReportBuilder, SessionInfo, Summary};
use crate::script::{Ctx, CtxState, FailureKind, Strategy};
use crate::venue::{OutcomesVenue, ReplayVenue, Venue, resolve_from_candles};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Ledger steps (decisions and settlements) per transaction in a backtest that records
/// through the ledger ([`Recording::Ledger`], `--commit-every`); `updown run` keeps one
/// transaction per step.
pub const DEFAULT_COMMIT_EVERY: u32 = 512;

/// Files a backtest (re)writes in its output folder; nothing else there is touched.
pub const WRITTEN_FILES: [&str; 7] = [
    LEDGER_FILE,
    "ledger.sqlite-wal",
    "ledger.sqlite-shm",
    PREDICTIONS,
    TRADES,
    EQUITY,
    RELOADS,
];

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BacktestError {
    /// A data file could not be loaded or the files could not be joined.
    #[error(transparent)]
    Data(#[from] JoinError),
    /// The outcomes file is invalid.
    #[error(transparent)]
    Outcomes(#[from] OutcomesError),
    /// The range selects no window, or the data is too short.
    #[error("{0}")]
    Range(String),
    /// The output folder could not be prepared.
    #[error("cannot prepare output folder {}: {source}", dir.display())]
    Output {
        /// The folder.
        dir: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The output folder's ledger holds more than backtests (or cannot be read), so
    /// starting fresh there would destroy it.
    #[error("{0}")]
    Foreign(String),
    /// The strategy could not be loaded.
    #[error("{0}")]
    Strategy(String),
    /// A run failed for another reason (a stored record unreadable, a thread that panicked,
    /// an interrupted check).
    #[error("{0}")]
    Failed(String),
    /// The session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl From<LedgerError> for BacktestError {
    fn from(e: LedgerError) -> Self {
        BacktestError::Session(SessionError::Ledger(e))
    }
}

/// The recorded inputs of a backtest, loaded once and shared (read-only) by every run of a
/// sweep or a look-ahead check.
#[derive(Clone, Debug)]
pub struct BacktestData {
    /// The joined candle files (with their sources, overlaps and gaps). Its candles were
    /// moved into [`BacktestData::candles`] (`joined.recorded.candles` is empty): one copy
    /// of the history, however many runs share it.
    pub joined: Joined,
    /// [`Joined::describe`] of the files as loaded.
    pub description: String,
    /// The joined candles, shared by every feed.
    pub candles: Arc<Vec<Candle>>,
    /// Polymarket's recorded results, when given.
    pub outcomes: Option<Arc<Outcomes>>,
}

impl BacktestData {
    /// Load and join `data` files and the optional `outcomes` file (validated for markets of
    /// `interval_secs`).
    pub fn load(
        data: &[PathBuf],
        outcomes: Option<&Path>,
        interval_secs: i64,
    ) -> Result<BacktestData, BacktestError> {
        let joined = crate::feed::load_joined(data)?;
        let outcomes = outcomes
            .map(|p| crate::feed::load_outcomes(p, interval_secs))
            .transpose()?
            .map(Arc::new);
        Ok(BacktestData::new(joined, outcomes))
    }

    /// Wrap already loaded inputs (their candles move into [`BacktestData::candles`]).
    pub fn new(mut joined: Joined, outcomes: Option<Arc<Outcomes>>) -> BacktestData {
        let description = joined.describe();
        let candles = Arc::new(std::mem::take(&mut joined.recorded.candles));
        BacktestData {
            joined,
            description,
            candles,
            outcomes,
        }
    }
}

/// The time range whose windows are traded (Unix seconds; `None` = open end).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// First window start at or after this.
    pub from: Option<i64>,
    /// Last window ends at or before this; no candle closing later is ever shown.
    pub to: Option<i64>,
}

/// The windows a backtest trades and what it knows before the first one.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The windows, in order, indexed from 0.
    pub windows: Vec<Window>,
    /// Volatility baseline from the warm-up candles before the first decision.
    pub stddev_baseline: Option<f64>,
    /// No candle closing after this is shown (`--to`, or `i64::MAX`).
    pub visible_until: i64,
    /// Candles of history before the first decision (all of them are visible).
    pub history_candles: usize,
    /// Remarks for people (e.g. the warm-up moved the first window past `--from`).
    pub notes: Vec<String>,
}

/// Choose the windows of `range` over `data`: aligned to the interval, the first one after
/// at least `session.warmup_candles` candles of history (candles before `from` count: they
/// are the past), the last one ending by `to` and by the end of the data.
pub fn plan(data: &BacktestData, config: &Config, range: &Range) -> Result<Plan, BacktestError> {
    let candles = data.candles.as_slice();
    let interval = config.session.interval_secs;
    let lead = config.session.decision_lead_secs;
    let warmup = config.session.warmup_candles.max(1);
    let name = data.joined.recorded.path.display().to_string();
    if let (Some(from), Some(to)) = (range.from, range.to)
        && from >= to
    {
        return Err(BacktestError::Range(format!(
            "--from {} is not before --to {}",
            utc(from),
            utc(to)
        )));
    }
    if candles.len() <= warmup {
        return Err(BacktestError::Range(format!(
            "{name}: {} candles is not enough for a warm-up of {warmup} (session.warmup_candles) plus one window",
            candles.len()
        )));
    }
    let mut notes = Vec::new();
    let earliest =
        Window::first_start_at_or_after(candles[warmup - 1].close_time() + lead, interval);
    let first = match range.from {
        Some(from) => {
            let wanted = Window::first_start_at_or_after(from, interval);
            if wanted < earliest {
                notes.push(format!(
                    "the first window is {} UTC, not {} UTC: {warmup} candles of warm-up history (session.warmup_candles) come first",
                    utc(earliest),
                    utc(wanted)
                ));
            }
            wanted.max(earliest)
        }
        None => earliest,
    };
    let data_end = candles[candles.len() - 1].close_time();
    let end = range.to.map_or(data_end, |to| to.min(data_end));
    let count = if end > first {
        (end - first) / interval
    } else {
        0
    };
    if count <= 0 {
        return Err(BacktestError::Range(format!(
            "no complete {interval} s window between {} UTC and {} UTC: the data ({name}) runs {} → {} UTC{}",
            utc(first),
            utc(end),
            utc(candles[0].open_time),
            utc(data_end),
            if range.from.is_some() || range.to.is_some() {
                "; widen --from/--to"
            } else {
                ""
            }
        )));
    }
    let count = u32::try_from(count)
        .map_err(|_| BacktestError::Range(format!("{count} windows is too many")))?;
    let windows: Vec<Window> = (0..count)
        .map(|i| Window::new(first + i64::from(i) * interval, interval, i))
        .collect();
    if let Some(outcomes) = &data.outcomes {
        outcome_coverage(outcomes, &windows, &mut notes)?;
    }
    let baseline = stddev_baseline(
        candles,
        first - lead,
        warmup,
        config.risk.stddev_window as usize,
    );
    let history_candles = candles.partition_point(|c| c.close_time() <= first - lead);
    Ok(Plan {
        windows,
        stddev_baseline: baseline,
        visible_until: range.to.unwrap_or(i64::MAX),
        history_candles,
        notes,
    })
}

/// How many of the planned windows the outcomes file has a market for: none at all is an
/// error (every window would be `no_outcome`, a backtest that trades nothing and says
/// little), a partial overlap is a note so the skipped windows are no surprise.
fn outcome_coverage(
    outcomes: &Outcomes,
    windows: &[Window],
    notes: &mut Vec<String>,
) -> Result<(), BacktestError> {
    let covered = windows
        .iter()
        .filter(|w| outcomes.row(w.start).is_some())
        .count();
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        return Ok(());
    };
    let span = || {
        let mut rows = outcomes.rows();
        let lo = rows.next().map(|r| r.start);
        let hi = outcomes.rows().last().map(|r| r.start);
        match (lo, hi) {
            (Some(lo), Some(hi)) => {
                format!("{} → {} UTC", utc(lo), utc(hi + outcomes.interval_secs))
            }
            _ => "no market".into(),
        }
    };
    if covered == 0 {
        return Err(BacktestError::Range(format!(
            "the outcomes in {} ({}) do not overlap the backtest's windows ({} → {} UTC): every \
             window would be skipped as no_outcome. Pass outcomes recorded over the same period \
             as the data, or choose --from/--to inside the outcomes' period",
            outcomes.path.display(),
            span(),
            utc(first.start),
            utc(last.end)
        )));
    }
    if covered < windows.len() {
        notes.push(format!(
            "the outcomes ({}) cover {covered} of the {} windows; the other {} are skipped as no_outcome",
            span(),
            windows.len(),
            windows.len() - covered
        ));
    }
    Ok(())
}

/// How a backtest records its steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recording {
    /// In memory ([`MemoryRecorder`]); the ledger and the journals are written once, at the
    /// end. A backtest is a computation a rerun reproduces, so it needs no step-by-step
    /// commits.
    #[default]
    InMemory,
    /// Through the ledger and the journals as a `run` records them
    /// ([`LedgerRecorder`](super::LedgerRecorder)), `commit_every` steps per transaction
    /// (1 = as `updown run` commits): for measuring a live session's recording costs.
    Ledger {
        /// Ledger steps per transaction.
        commit_every: u32,
    },
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BacktestSpec {
    /// The strategy script, or `native:<name>` for a native strategy ([`crate::native`]).
    pub strategy: PathBuf,
    /// Settings (already validated).
    pub config: Config,
    /// `--param` overrides on top of `[params.<stem>]`.
    pub overrides: toml::Table,
    /// Output folder: ledger, journals. Emptied of updown's own files first.
    pub out_dir: PathBuf,
    /// How the steps are recorded: in memory (the default), or through the ledger as a
    /// `run` records them (benchmarks of a session's costs).
    pub recording: Recording,
    /// Keep every prediction line in the result (the look-ahead check compares them).
    pub keep_predictions: bool,
}

/// The sha256 of a backtest's result: its settled trades (the `trades.jsonl` lines, in order)
/// and key metrics (windows, trades, wins, P&L, fees, final equity, as decimal strings).
/// Nothing machine- or time-dependent goes in, so the same script, parameters,
/// configuration and data give the same fingerprint anywhere.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Fingerprint `trades` (journal lines, in order) and the metrics of `summary`.
    pub fn compute(trades: &[String], summary: &Summary) -> Fingerprint {
        let mut b = FingerprintBuilder::new();
        for line in trades {
            b.trade(line);
        }
        b.finish(summary)
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// Whether `expected` (the full hex, or a prefix of at least 12 digits, any case) names
    /// this fingerprint.
    pub fn matches(&self, expected: &str) -> bool {
        let e = expected.trim().to_ascii_lowercase();
        e.len() >= 12 && e.len() <= self.0.len() && self.0.starts_with(&e)
    }
}

/// A [`Fingerprint`] computed one trade line at a time.
#[derive(Clone, Debug, Default)]
pub struct FingerprintBuilder {
    h: Sha256,
}

impl FingerprintBuilder {
    /// Nothing fingerprinted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the next trade line (journal order).
    pub fn trade(&mut self, line: &str) {
        self.h.update(b"trade ");
        self.h.update(line.as_bytes());
        self.h.update(b"\n");
    }

    /// The fingerprint of the trades added and the metrics of `summary`.
    pub fn finish(self, summary: &Summary) -> Fingerprint {
        let mut h = self.h;
        let metrics = format!(
            "windows {}\ntrades {}\nwins {}\npnl {}\nfees {}\nfinal_equity {}\n",
            summary.windows,
            summary.settled,
            summary.wins,
            summary.pnl.normalize(),
            summary.fees.normalize(),
            summary.final_equity.normalize()
        );
        h.update(metrics.as_bytes());
        Fingerprint(hex::encode(h.finalize()))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How often settling from price data (close of the last 1m candle ≥ open of the first)
/// gives Polymarket's recorded result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Agreement {
    /// Windows of the session with both a recorded result and complete price data.
    pub windows: usize,
    /// ... of which price data gives the same side.
    pub windows_agree: usize,
    /// Settled trades (settled by Polymarket's result) whose window has complete price data.
    pub trades: usize,
    /// ... of which price data gives the same side.
    pub trades_agree: usize,
}

impl Agreement {
    /// `windows_agree / windows` in percent (`None` without windows).
    pub fn window_rate(&self) -> Option<Decimal> {
        pct(self.windows_agree, self.windows)
    }

    /// `trades_agree / trades` in percent (`None` without trades).
    pub fn trade_rate(&self) -> Option<Decimal> {
        pct(self.trades_agree, self.trades)
    }
}

fn pct(n: usize, d: usize) -> Option<Decimal> {
    (d > 0).then(|| (Decimal::from(n) * Decimal::ONE_HUNDRED / Decimal::from(d)).round_dp(1))
}

/// What a backtest did.
#[derive(Clone, Debug)]
pub struct BacktestResult {
    /// How the loop ended (a halt is a result, not an error).
    pub ending: Ending,
    /// The full report, computed from the session's stored records exactly as `updown report`
    /// computes it from the journals (which are the same lines).
    pub report: Report,
    /// The session's equity curve, for the report's charts.
    pub equity: Vec<EquityPoint>,
    /// Sharpe and Sortino of the session, from the same records the report reads.
    pub ratios: crate::report::metrics::Ratios,
    /// The summary, from the ledger's records.
    pub summary: Summary,
    /// The fingerprint of the settled trades and metrics.
    pub fingerprint: Fingerprint,
    /// Windows in the session.
    pub windows: usize,
    /// First window of the session.
    pub first_window: Window,
    /// Last window of the session.
    pub last_window: Window,
    /// Windows without a known outcome (journaled as `no_outcome`), with `--outcomes`.
    pub no_outcome: usize,
    /// Script calls stopped by the wall-clock safety net (`sandbox.backtest_call_timeout_ms`,
    /// journaled as `script_timeout`). Non-zero means the result depends on the machine's
    /// speed: the same backtest elsewhere may time out in other windows.
    pub wall_clock_timeouts: usize,
    /// Price data vs Polymarket, with `--outcomes`.
    pub agreement: Option<Agreement>,
    /// Candles the anomaly filter rejected.
    pub anomalies: u64,
    /// The output folder.
    pub out_dir: PathBuf,
    /// Content hash of the script.
    pub script_hash: String,
    /// Hash of the configuration.
    pub config_hash: String,
    /// Every prediction line, in window order (only with `keep_predictions`).
    pub predictions: Vec<String>,
}

impl BacktestResult {
    /// What the report's charts draw.
    pub fn curve(&self) -> Curve<'_> {
        Curve {
            starting_capital: self.summary.starting_equity,
            interval_secs: self.report.session.interval_secs,
            equity: &self.equity,
        }
    }
}

/// Create `dir` if needed and remove the files a backtest writes there ([`WRITTEN_FILES`]),
/// so each backtest is a fresh session that no earlier halt can block. Nothing else in the
/// folder is touched.
pub fn start_fresh(dir: &Path) -> Result<(), BacktestError> {
    let err = |source| BacktestError::Output {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    refuse_foreign_ledger(dir)?;
    for name in WRITTEN_FILES {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(())
}

/// A backtest replaces the ledger in its folder, so it must only ever replace a backtest's:
/// a ledger that records `updown run` sessions or live orders is refused, and so is one that
/// cannot be read (whose contents nobody can vouch for).
fn refuse_foreign_ledger(dir: &Path) -> Result<(), BacktestError> {
    let path = dir.join(LEDGER_FILE);
    if !path.exists() {
        return Ok(());
    }
    let advice = "pass --out to back-test into another folder (the default is data/backtests/<strategy stem>)";
    let ledger = Ledger::open_read_only(&path).map_err(|e| {
        BacktestError::Foreign(format!(
            "{} exists and cannot be read ({e}), so the backtest will not replace it; {advice}",
            path.display()
        ))
    })?;
    match ledger.records_besides_backtests()? {
        None => Ok(()),
        Some(what) => Err(BacktestError::Foreign(format!(
            "{} holds {what}, not only backtests; a backtest starts fresh by replacing the ledger \
             and will not delete those records. {advice}",
            path.display()
        ))),
    }
}

/// Run one backtest over `plan`'s windows as a fresh session in `spec.out_dir`.
///
/// With `cut = Some(t)` the run is a look-ahead probe: only windows decided by `t` run, no
/// candle closing after `t` is shown and no recorded result of a window ending after `t` is
/// used. `progress` is called after every window.
pub fn run_backtest(
    spec: &BacktestSpec,
    data: &BacktestData,
    plan: &Plan,
    cut: Option<i64>,
    progress: Option<Box<dyn FnMut(Progress) + '_>>,
    stop: &AtomicBool,
) -> Result<BacktestResult, BacktestError> {
    let hooks = Hooks {
        progress,
        latency: None,
    };
    run_backtest_with(spec, data, plan, cut, hooks, stop)
}

/// Optional observers of a backtest's session loop; the default is none, which costs
/// nothing.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Called after every decided window (a progress bar).
    pub progress: Option<Box<dyn FnMut(Progress) + 'a>>,
    /// Measures every decision's latency (benchmarks).
    pub latency: Option<LatencyProbe<'a>>,
}

/// [`run_backtest`] with any [`Hooks`].
pub fn run_backtest_with(
    spec: &BacktestSpec,
    data: &BacktestData,
    plan: &Plan,
    cut: Option<i64>,
    hooks: Hooks<'_>,
    stop: &AtomicBool,
) -> Result<BacktestResult, BacktestError> {
    let config = &spec.config;
    let lead = config.session.decision_lead_secs;
    // The plan's windows, borrowed (a sweep shares one plan between all its runs).
    let windows: &[Window] = match cut {
        Some(t) => {
            let n = plan.windows.partition_point(|w| w.start - lead <= t);
            &plan.windows[..n]
        }
        None => &plan.windows,
    };
    let (Some(first_window), Some(last_window)) = (windows.first(), windows.last()) else {
        return Err(BacktestError::Range(
            "the look-ahead cut is before the first decision".into(),
        ));
    };
    let (first_window, last_window) = (first_window.clone(), last_window.clone());
    let visible_until = cut.map_or(plan.visible_until, |t| t.min(plan.visible_until));
    let outcomes = match (&data.outcomes, cut) {
        (Some(o), Some(t)) => Some(Arc::new(o.withheld_after(t))),
        (o, _) => o.clone(),
    };

    start_fresh(&spec.out_dir)?;
    let strategy = crate::native::load_strategy(&spec.strategy, &config.sandbox.for_backtest())
        .map_err(BacktestError::Strategy)?;
    let params = strategy_params(config, &spec.strategy, &spec.overrides);
    let script_hash = strategy.content_hash().to_string();
    let config_hash = config.fingerprint();

    let mut ledger = Ledger::open(&spec.out_dir.join(LEDGER_FILE))?;
    let account = new_account(config);
    let label = format!(
        "backtest {} on {}",
        spec.strategy.display(),
        data.joined.recorded.path.display()
    );
    let session = ledger.create_session(&format!("backtest {script_hash}"), &label, &account)?;
    let first_equity = (first_window.start - lead, account.equity().to_string());
    let flush = config.session.journal_flush_windows;

    let session_id = session.id;
    let ctx = Ctx::new(CtxState {
        candles: Vec::with_capacity(data.candles.len()),
        indicators: IndicatorCache::with_capacity(data.candles.len()),
        params,
        ..CtxState::default()
    });
    let feed = HistoryFeed::new(
        Arc::clone(&data.candles),
        visible_until,
        &data.joined.recorded.path,
    );
    let parts = Parts {
        config,
        strategy,
        feed,
        ctx,
        session,
        windows,
        stddev_baseline: plan.stddev_baseline,
        outcomes: outcomes.clone(),
        hooks,
    };
    let mut read = ReadBack::new(
        windows.len(),
        spec.keep_predictions,
        data.outcomes.is_some() && cut.is_none(),
    );
    let (ending, anomalies, account) = match spec.recording {
        Recording::InMemory => {
            let (ending, anomalies, account, recorded) =
                drive(parts, MemoryRecorder::new(first_equity), stop)?;
            // The records are complete: the report and the fingerprint come from them, and
            // the folder gets the ledger and journals a `run` would have left.
            recorded.write(&mut ledger, session_id, &spec.out_dir, flush)?;
            let unreadable = |what: &str, e: serde_json::Error| {
                BacktestError::Failed(format!("a recorded {what} is unreadable: {e}"))
            };
            for (_, line) in &recorded.trades {
                read.trade(line).map_err(|e| unreadable("trade", e))?;
            }
            for (_, line) in &recorded.predictions {
                read.prediction(line)
                    .map_err(|e| unreadable("prediction", e))?;
            }
            for (time, equity) in &recorded.equity {
                read.equity(*time, equity).map_err(|e| {
                    BacktestError::Failed(format!("a recorded equity point is unreadable: {e}"))
                })?;
            }
            (ending, anomalies, account)
        }
        Recording::Ledger { commit_every } => {
            ledger.record_equity(session_id, first_equity.0, &first_equity.1)?;
            let none: [&str; 0] = [];
            let journals = Journals::rebuild(
                &spec.out_dir,
                none,
                none,
                &ledger.equity(session_id)?,
                none,
                flush,
            )
            .map_err(SessionError::from)?;
            ledger.batch_commits(commit_every)?;
            let recorder = LedgerRecorder::new(&mut ledger, journals, session_id);
            let (ending, anomalies, account, mut recorder) = drive(parts, recorder, stop)?;
            recorder.flush()?;
            drop(recorder);
            ledger.commit_batch()?;
            read_back(&ledger, session_id, &mut read)?;
            (ending, anomalies, account)
        }
    };
    match &ending {
        Ending::Complete => ledger.finish_session(session_id, SessionStatus::Complete)?,
        Ending::Halted(_) => ledger.finish_session(session_id, SessionStatus::Halted)?,
        Ending::Interrupted => {}
    }
    let status = match &ending {
        Ending::Complete => "complete",
        Ending::Halted(_) => "halted",
        Ending::Interrupted => "running",
    };
    let summary = read.builder.summary(account.starting_capital);
    let fingerprint = read.fingerprint.finish(&summary);
    let no_outcome = summary.not_traded.get("no_outcome").copied().unwrap_or(0);
    let wall_clock_timeouts = summary
        .not_traded
        .get(FailureKind::Timeout.code())
        .copied()
        .unwrap_or(0);
    let agreement = match &data.outcomes {
        Some(o) if cut.is_none() => {
            let decided = &plan.windows[..summary.windows.min(plan.windows.len())];
            Some(agreement(decided, &data.candles, o, &read.trades))
        }
        _ => None,
    };
    // The report `updown report` computes from the journals, from the same lines.
    let report = read.builder.report(
        account.starting_capital,
        read.builder.interval_secs(),
        Some(SessionInfo {
            label,
            status: status.to_string(),
        }),
    );
    Ok(BacktestResult {
        ratios: report.ratios.clone(),
        report,
        equity: read.builder.equity_curve().to_vec(),
        ending,
        windows: summary.windows,
        summary,
        fingerprint,
        first_window,
        last_window,
        no_outcome,
        wall_clock_timeouts,
        agreement,
        anomalies,
        out_dir: spec.out_dir.clone(),
        script_hash,
        config_hash,
        predictions: read.predictions,
    })
}

/// What the report, the summary and the fingerprint are computed from: a finished
/// backtest's records, fed one line at a time (from memory, or read back from the ledger).
struct ReadBack {
    builder: ReportBuilder,
    fingerprint: FingerprintBuilder,
    /// Settled trades, kept only to compare settlements with recorded outcomes.
    trades: Vec<TradeRecord>,
    keep_trades: bool,
    /// Prediction lines, kept only when asked for.
    predictions: Vec<String>,
    keep_predictions: bool,
}

impl ReadBack {
    fn new(windows: usize, keep_predictions: bool, keep_trades: bool) -> Self {
        ReadBack {
            builder: ReportBuilder::with_capacity(windows),
            fingerprint: FingerprintBuilder::new(),
            trades: Vec::new(),
            keep_trades,
            predictions: Vec::new(),
            keep_predictions,
        }
    }

    /// The next trade line, in settlement order.
    fn trade(&mut self, line: &str) -> Result<(), serde_json::Error> {
        // The lines were written by this run moments ago: the report reads only its fields.
        self.builder.trade_line(line)?;
        self.fingerprint.trade(line);
        if self.keep_trades {
            self.trades.push(serde_json::from_str(line)?);
        }
        Ok(())
    }

    /// The next prediction line, in window order.
    fn prediction(&mut self, line: &str) -> Result<(), serde_json::Error> {
        self.builder.prediction_line(line)?;
        if self.keep_predictions {
            self.predictions.push(line.to_string());
        }
        Ok(())
    }

    /// The next equity point, in time order.
    fn equity(&mut self, time: i64, equity: &str) -> Result<(), rust_decimal::Error> {
        let equity = equity.parse::<Decimal>()?;
        self.builder.equity(EquityPoint { time, equity });
        Ok(())
    }
}

/// Feed a session's trades, predictions and equity curve from the ledger into `r`, one row
/// at a time (nothing is collected but what `r` keeps).
fn read_back(ledger: &Ledger, session: i64, r: &mut ReadBack) -> Result<(), BacktestError> {
    let unreadable = |what: &str, e: &dyn std::fmt::Display| {
        BacktestError::Failed(format!(
            "{}: a stored {what} is unreadable: {e}",
            ledger.path().display()
        ))
    };
    ledger.for_each_trade(session, |line| {
        r.trade(line).map_err(|e| unreadable("trade", &e))
    })?;
    ledger.for_each_prediction(session, |line| {
        r.prediction(line).map_err(|e| unreadable("prediction", &e))
    })?;
    for (time, equity) in ledger.equity(session)? {
        r.equity(time, &equity)
            .map_err(|e| unreadable("equity point", &e))?;
    }
    Ok(())
}

/// The parts of a backtest's engine that do not depend on how it records.
struct Parts<'a> {
    config: &'a Config,
    strategy: Box<dyn Strategy>,
    feed: HistoryFeed,
    ctx: Ctx,
    session: crate::ledger::SessionRow,
    windows: &'a [Window],
    stddev_baseline: Option<f64>,
    /// Recorded results to settle by (`--outcomes`), else price data.
    outcomes: Option<Arc<Outcomes>>,
    hooks: Hooks<'a>,
}

/// Wire the shared [`Engine`] with the venue `parts` call for and `recorder`, and run it;
/// the recorder comes back with what it recorded.
fn drive<'a, R: Recorder>(
    parts: Parts<'a>,
    recorder: R,
    stop: &AtomicBool,
) -> Result<(Ending, u64, crate::ledger::Account, R), SessionError> {
    match parts.outcomes.clone() {
        Some(o) => {
            let venue = OutcomesVenue::new(&parts.config.replay, o);
            drive_on(parts, venue, recorder, stop)
        }
        None => {
            let venue = ReplayVenue::new(&parts.config.replay);
            drive_on(parts, venue, recorder, stop)
        }
    }
}

fn drive_on<'a, V: Venue, R: Recorder>(
    parts: Parts<'a>,
    venue: V,
    recorder: R,
    stop: &AtomicBool,
) -> Result<(Ending, u64, crate::ledger::Account, R), SessionError> {
    let mut engine = EngineSetup {
        config: parts.config,
        strategy: parts.strategy,
        clock: SimulatedClock::new(None),
        feed: parts.feed,
        venue,
        recorder,
        ctx: parts.ctx,
        session: parts.session,
        windows: std::borrow::Cow::Borrowed(parts.windows),
    }
    .build()
    .with_stddev_baseline(parts.stddev_baseline)
    .with_hooks(parts.hooks.progress, parts.hooks.latency);
    let ending = engine.run(stop)?;
    let end = engine.finish()?;
    Ok((ending, end.anomalies, end.account, end.recorder))
}

/// Price data vs recorded results over `windows` (the windows the session decided) and over
/// the trades Polymarket's results settled.
pub fn agreement(
    windows: &[Window],
    candles: &[Candle],
    outcomes: &Outcomes,
    trades: &[TradeRecord],
) -> Agreement {
    let mut a = Agreement::default();
    let interval = windows.first().map_or(300, |w| w.end - w.start);
    for w in windows {
        if let (Lookup::Resolved(real), Some(price)) =
            (outcomes.lookup(w.start), resolve_from_candles(w, candles))
        {
            a.windows += 1;
            a.windows_agree += usize::from(real == price);
        }
    }
    for t in trades {
        if t.settled_by != crate::venue::SettledBy::Polymarket.code() {
            continue;
        }
        let w = Window::new(t.interval_start, interval, 0);
        if let (Some(real), Some(price)) = (&t.outcome, resolve_from_candles(&w, candles)) {
            a.trades += 1;
            a.trades_agree += usize::from(real == price.as_str());
        }
    }
    a
}

/// `YYYY-MM-DD HH:MM` UTC.
pub fn utc(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || format!("unix time {secs}"),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// Parse a `--from`/`--to` bound: a UTC date (`2026-02-22`) or date-time (`2026-02-22T14:30`,
/// seconds optional, `T` or a space). A date given as `--to` means the end of that day
/// (`end_of_day`), so `--from 2026-02-22 --to 2026-02-22` is that whole day.
pub fn parse_bound(text: &str, end_of_day: bool) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let day = d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp();
        return Ok(if end_of_day { day + 86_400 } else { day });
    }
    let normal = t.replacen(' ', "T", 1);
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(&normal, format) {
            return Ok(dt.and_utc().timestamp());
        }
    }
    Err(format!(
        "{text:?} is not a UTC date or date-time; use e.g. 2026-02-22 or 2026-02-22T14:30"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::join::join;
    use crate::feed::{Layout, Recorded};
    use rust_decimal_macros::dec;

    fn data(minutes: i64) -> BacktestData {
        let candles = (0..minutes)
            .map(|i| Candle {
                open_time: 1_000_200 + i * 60,
                open: 100.0,
                high: 101.0,
                low: 99.0,
                close: 100.0 + (i % 7) as f64,
                volume: 1.0,
            })
            .collect();
        let joined = join(vec![Recorded {
            path: PathBuf::from("x.csv"),
            candles,
            gaps: vec![],
            layout: Layout::TimestampOhlcv,
        }])
        .unwrap();
        BacktestData::new(joined, None)
    }

    #[test]
    fn bounds_parse_dates_and_times_and_to_dates_include_their_day() {
        assert_eq!(parse_bound("2026-02-22", false), Ok(1771718400));
        assert_eq!(parse_bound("2026-02-22", true), Ok(1771718400 + 86_400));
        assert_eq!(parse_bound("2026-02-22T14:30", true), Ok(1771770600));
        assert_eq!(parse_bound("2026-02-22 14:30:00", false), Ok(1771770600));
        assert!(parse_bound("22/02/2026", false).is_err());
    }

    #[test]
    fn plan_keeps_the_warm_up_and_respects_the_range() {
        let d = data(1000); // 1_000_200 = a multiple of 300; 1000 minutes
        let mut config = Config::default();
        config.session.warmup_candles = 100;
        let all = plan(&d, &config, &Range::default()).unwrap();
        // 100 candles of warm-up close at 1_000_200 + 6000.
        assert_eq!(all.windows[0].start, 1_006_200);
        assert_eq!(all.windows.last().unwrap().end, 1_000_200 + 60_000);
        assert_eq!(all.visible_until, i64::MAX);

        let from = 1_000_200 + 30_000;
        let to = from + 3_000;
        let some = plan(
            &d,
            &config,
            &Range {
                from: Some(from + 1),
                to: Some(to + 59),
            },
        )
        .unwrap();
        assert_eq!(some.windows[0].start, from + 300);
        assert_eq!(some.windows.last().unwrap().end, to);
        assert_eq!(some.windows.len(), 9);
        assert_eq!(some.history_candles, 505); // every candle closed by the first decision
        assert!(some.notes.is_empty());

        // --from inside the warm-up: the first window moves, and says so.
        let early = plan(
            &d,
            &config,
            &Range {
                from: Some(1_000_200),
                to: None,
            },
        )
        .unwrap();
        assert_eq!(early.windows[0].start, 1_006_200);
        assert_eq!(early.notes.len(), 1);

        let none = plan(
            &d,
            &config,
            &Range {
                from: Some(2_000_000),
                to: None,
            },
        );
        assert!(matches!(none, Err(BacktestError::Range(_))));
    }

    #[test]
    fn fingerprints_cover_trades_and_metrics_and_accept_long_prefixes() {
        let s = Summary::from_records(dec!(100), &[], &[]);
        let a = Fingerprint::compute(&["{\"x\":1}".into()], &s);
        let b = Fingerprint::compute(&["{\"x\":2}".into()], &s);
        assert_ne!(a, b);
        assert_eq!(a, Fingerprint::compute(&["{\"x\":1}".into()], &s));
        assert_eq!(a.hex().len(), 64);
        assert!(a.matches(a.hex()));
        assert!(a.matches(&a.hex()[..12].to_uppercase()));
        assert!(!a.matches(&a.hex()[..11]));
        assert!(!a.matches(b.hex()));
    }
}
