//! Setting up a replay session: recorded candles, a simulated clock and the replay venue,
//! wired into the shared [`Engine`](super::Engine), with resume of an interrupted run.
//!
//! A run is identified by its strategy file, data file, configuration, parameters and
//! window count. Starting the same run again resumes it if it was interrupted, and reprints
//! its result if it finished; `fresh` starts it over (the old session stays in the ledger).

use super::{
    Clock, Ending, EngineEnd, EngineSetup, LedgerRecorder, SessionError, SimulatedClock,
    new_account, stddev_of_closes,
};
use crate::config::Config;
use crate::domain::{ParamValue, Params, Window};
use crate::feed::{Feed, ReplayFeed, load_csv, recorded::describe_gaps};
use crate::indicators::IndicatorCache;
use crate::ledger::journal::{JournalObserver, Journals};
use crate::ledger::records::{PredictionRecord, TradeRecord};
use crate::ledger::{LEDGER_FILE, Ledger, SessionRow, SessionStatus};
use crate::report::Summary;
use crate::script::reload::ScriptWatcher;
use crate::script::{Ctx, CtxState, Reloader, ScriptStrategy, Strategy};
use crate::venue::{ReplayVenue, Venue};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// What to replay.
#[derive(Clone, Debug)]
pub struct ReplaySpec {
    /// The strategy script.
    pub strategy: PathBuf,
    /// Recorded 1m candles.
    pub data: PathBuf,
    /// Settings (already validated).
    pub config: Config,
    /// `--param` overrides on top of `[params.<stem>]`.
    pub overrides: toml::Table,
    /// Windows to run (default: `session.intervals`).
    pub intervals: Option<u32>,
    /// Pace: x times real time; `None` as fast as possible.
    pub speed: Option<f64>,
    /// Output folder (default: `session.out_dir`).
    pub out_dir: Option<PathBuf>,
    /// Start over even if the same run exists in the ledger.
    pub fresh: bool,
    /// Watch the script and its modules and swap in new versions between windows.
    pub watch: bool,
}

/// How a replay run went, for the CLI to print.
#[derive(Clone, Debug)]
pub struct ReplayOutcome {
    /// How the loop ended; `None` when the run had already finished before and was only
    /// reported.
    pub ending: Option<Ending>,
    /// The window index the run resumed at, if it resumed.
    pub resumed_at: Option<u32>,
    /// The summary, from the ledger's records.
    pub summary: Summary,
    /// Windows in the session.
    pub windows: usize,
    /// First window's slug.
    pub first_slug: String,
    /// Gaps in the data, for people.
    pub gaps: String,
    /// Candles the anomaly filter rejected.
    pub anomalies: u64,
    /// Where the output went.
    pub out_dir: PathBuf,
    /// The strategy's content hash.
    pub script_hash: String,
}

/// Run (or resume) a replay session.
pub fn run_replay(spec: &ReplaySpec, stop: &AtomicBool) -> Result<ReplayOutcome, SessionError> {
    let config = &spec.config;
    let out_dir = spec
        .out_dir
        .clone()
        .unwrap_or_else(|| config.session.out_dir.clone());
    std::fs::create_dir_all(&out_dir).map_err(|source| SessionError::OutputFolder {
        dir: out_dir.clone(),
        source,
    })?;

    let recorded = load_csv(&spec.data)?;
    let gaps = describe_gaps(&recorded.gaps);
    let interval = config.session.interval_secs;
    let lead = config.session.decision_lead_secs;
    let warmup = config.session.warmup_candles.max(1);
    let candles = &recorded.candles;
    if candles.len() <= warmup {
        return Err(SessionError::TooFewCandles {
            file: spec.data.clone(),
            candles: candles.len(),
            warmup,
        });
    }
    let first_start =
        Window::first_start_at_or_after(candles[warmup - 1].close_time() + lead, interval);
    let data_end = candles[candles.len() - 1].close_time();
    let available = ((data_end - first_start) / interval).max(0) as u32;
    let wanted = spec.intervals.unwrap_or(config.session.intervals);
    let count = wanted.min(available);
    if count == 0 {
        return Err(SessionError::NoWindow {
            file: spec.data.clone(),
            interval,
            warmup,
        });
    }
    if count < wanted {
        tracing::warn!(
            "the data holds only {count} windows after the warm-up; running {count} of {wanted}"
        );
    }
    let windows: Vec<Window> = (0..count)
        .map(|i| Window::new(first_start + i64::from(i) * interval, interval, i))
        .collect();
    let baseline = stddev_baseline(
        candles,
        first_start - lead,
        warmup,
        config.risk.stddev_window as usize,
    );

    let strategy = ScriptStrategy::load(&spec.strategy, &config.sandbox)?;
    let params = strategy_params(config, &spec.strategy, &spec.overrides);
    let run_key = run_key(spec, config, count);

    let mut ledger = Ledger::open(&out_dir.join(LEDGER_FILE))?;
    let existing = ledger.find_session(&run_key)?;
    let label = format!("{} on {}", spec.strategy.display(), spec.data.display());

    let flush = config.session.journal_flush_windows;
    let (session, resumed_at) = match existing {
        Some(row) if !spec.fresh && row.status != SessionStatus::Running => {
            let summary = summarize(&ledger, row.id, &row.account)?;
            let (p, t, e, r) = (
                ledger.predictions(row.id)?,
                ledger.trades(row.id)?,
                ledger.equity(row.id)?,
                ledger.reloads(row.id)?,
            );
            Journals::rebuild(&out_dir, &p, &t, &e, &r, flush)?.flush()?;
            return Ok(ReplayOutcome {
                ending: None,
                resumed_at: None,
                summary,
                windows: windows.len(),
                first_slug: windows[0].slug.clone(),
                gaps,
                anomalies: 0,
                out_dir,
                script_hash: strategy.content_hash().to_string(),
            });
        }
        Some(row) if !spec.fresh => {
            let at = row.next_index;
            (row, Some(at))
        }
        _ => {
            super::claim_folder(&ledger, &run_key, spec.fresh)?;
            let account = new_account(config);
            let row = ledger.create_session(&run_key, &label, &account)?;
            ledger.record_equity(row.id, first_start - lead, &account.equity().to_string())?;
            (row, None)
        }
    };
    run_prepared(
        Prepared {
            config,
            strategy_path: &spec.strategy,
            strategy,
            params,
            ledger,
            session,
            resumed_at,
            windows,
            baseline,
            out_dir,
            watch: spec.watch,
            flush_every: flush,
            gaps,
            candles_capacity: candles.len(),
            observer: None,
        },
        SimulatedClock::new(spec.speed),
        ReplayFeed::new(recorded),
        ReplayVenue::new(&config.replay),
        stop,
    )
}

/// A session whose ledger row exists (new or resumed) and whose windows are planned: what
/// the shared loop needs besides a clock, a feed and a venue. Replay and live sessions both
/// end in [`run_prepared`], so state, journals, halts, hot reload, signals and the summary
/// take one code path whatever the mode.
pub(crate) struct Prepared<'a> {
    /// Settings.
    pub config: &'a Config,
    /// The strategy file (watched for hot reload).
    pub strategy_path: &'a Path,
    /// The loaded strategy.
    pub strategy: ScriptStrategy,
    /// Its parameters.
    pub params: Params,
    /// The ledger, holding `session`.
    pub ledger: Ledger,
    /// The session row, new or resumed.
    pub session: SessionRow,
    /// The window index a resumed session continues at.
    pub resumed_at: Option<u32>,
    /// Every window of the session.
    pub windows: Vec<Window>,
    /// Volatility baseline from the warm-up.
    pub baseline: Option<f64>,
    /// Output folder.
    pub out_dir: PathBuf,
    /// Hot reload on.
    pub watch: bool,
    /// Journal flush period in windows.
    pub flush_every: u32,
    /// Data gaps, for people.
    pub gaps: String,
    /// Expected number of candles (an allocation hint).
    pub candles_capacity: usize,
    /// Told about every journal line the session writes.
    pub observer: Option<JournalObserver>,
}

/// Runs a prepared session on `clock`, `feed` and `venue` until it completes, halts or is
/// interrupted, then records how it ended and summarises it.
pub(crate) fn run_prepared<C: Clock, F: Feed, V: Venue>(
    p: Prepared<'_>,
    clock: C,
    feed: F,
    venue: V,
    stop: &AtomicBool,
) -> Result<ReplayOutcome, SessionError> {
    let Prepared {
        config,
        strategy_path,
        mut strategy,
        params,
        mut ledger,
        session,
        resumed_at,
        windows,
        baseline,
        out_dir,
        watch,
        flush_every: flush,
        gaps,
        candles_capacity,
        observer,
    } = p;
    if let Some(h) = ledger.halt()? {
        return Err(SessionError::Halted {
            halt: h,
            ledger: ledger.path().to_path_buf(),
            out: out_dir.to_path_buf(),
        });
    }
    if let Some(memory) = &session.memory {
        strategy
            .restore_memory(memory)
            .map_err(|message| SessionError::Memory {
                ledger: ledger.path().to_path_buf(),
                message,
            })?;
    }
    let open =
        super::checked_positions(ledger.open_positions(session.id)?, &windows, ledger.path())?;
    let mut journals = Journals::rebuild(
        &out_dir,
        &ledger.predictions(session.id)?,
        &ledger.trades(session.id)?,
        &ledger.equity(session.id)?,
        &ledger.reloads(session.id)?,
        flush,
    )?;
    if let Some(observer) = observer {
        journals.observe(observer);
    }

    let ctx = Ctx::new(CtxState {
        candles: Vec::with_capacity(candles_capacity),
        indicators: IndicatorCache::new(),
        params,
        ..CtxState::default()
    });
    let session_id = session.id;
    let first_slug = windows[0].slug.clone();
    let n_windows = windows.len();
    let script_hash = strategy.content_hash().to_string();
    let reloader: Option<Box<dyn Reloader>> =
        if watch {
            let watcher = ScriptWatcher::start(strategy_path, &script_hash, &config.sandbox)
                .map_err(|e| SessionError::Watch {
                    message: e.to_string(),
                })?;
            Some(Box::new(watcher))
        } else {
            None
        };
    let mut engine = EngineSetup {
        config,
        strategy: Box::new(strategy),
        clock,
        feed,
        venue,
        recorder: LedgerRecorder::new(&mut ledger, journals, session_id),
        ctx,
        session,
        windows: windows.into(),
    }
    .build()
    .with_reloader(reloader)
    .with_open_positions(open)
    .with_stddev_baseline(baseline);
    let ending = engine.run(stop)?;
    // The recorder borrows the ledger until it is dropped with the rest of the engine.
    let EngineEnd {
        anomalies, account, ..
    } = engine.finish()?;
    match &ending {
        Ending::Complete => ledger.finish_session(session_id, SessionStatus::Complete)?,
        Ending::Halted(_) => ledger.finish_session(session_id, SessionStatus::Halted)?,
        Ending::Interrupted => {}
    }
    let summary = summarize(&ledger, session_id, &account)?;
    Ok(ReplayOutcome {
        ending: Some(ending),
        resumed_at,
        summary,
        windows: n_windows,
        first_slug,
        gaps,
        anomalies,
        out_dir,
        script_hash,
    })
}

/// Summary of a stored session from its records.
pub fn summarize(
    ledger: &Ledger,
    session: i64,
    account: &crate::ledger::Account,
) -> Result<Summary, SessionError> {
    let parse_err = |what: &'static str, source: serde_json::Error| SessionError::Unreadable {
        ledger: ledger.path().to_path_buf(),
        what,
        source,
    };
    let predictions = ledger
        .predictions(session)?
        .iter()
        .map(|l| {
            serde_json::from_str::<PredictionRecord>(l).map_err(|e| parse_err("prediction", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let trades = ledger
        .trades(session)?
        .iter()
        .map(|l| serde_json::from_str::<TradeRecord>(l).map_err(|e| parse_err("trade", e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Summary::from_records(
        account.starting_capital,
        &predictions,
        &trades,
    ))
}

/// Mean of the rolling standard deviation over the warm-up candles closed by `t`: what
/// "normal" volatility looked like before the session, so the breaker needs no future data.
pub(crate) fn stddev_baseline(
    candles: &[crate::feed::Candle],
    t: i64,
    warmup: usize,
    n: usize,
) -> Option<f64> {
    let end = candles.partition_point(|c| c.close_time() <= t);
    let start = end.saturating_sub(warmup);
    let slice = &candles[start..end];
    if slice.len() < n || n < 2 {
        return None;
    }
    let values: Vec<f64> = (n..=slice.len())
        .filter_map(|k| stddev_of_closes(&slice[..k], n))
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The strategy's parameters: `[params.<file stem>]` from the config (`[params.<name>]` for
/// a native strategy `native:<name>`), then `--param`s.
pub fn strategy_params(config: &Config, strategy: &Path, overrides: &toml::Table) -> Params {
    let stem = crate::native::params_name(strategy);
    let mut params = Params::new();
    if let Some(table) = config.params.get(&stem) {
        for (k, v) in table {
            params.insert(k.clone(), ParamValue::from_toml(v));
        }
    }
    for (k, v) in overrides {
        params.insert(k.clone(), ParamValue::from_toml(v));
    }
    params
}

fn run_key(spec: &ReplaySpec, config: &Config, count: u32) -> String {
    let canon = |p: &Path| {
        p.canonicalize()
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let mut h = Sha256::new();
    h.update(canon(&spec.strategy));
    h.update([0]);
    h.update(canon(&spec.data));
    h.update([0]);
    h.update(config.fingerprint());
    h.update([0]);
    h.update(format!("{:?}", spec.overrides));
    h.update([0]);
    h.update(count.to_le_bytes());
    hex::encode(&h.finalize()[..12])
}
