//! The session loop: one window after another, from candles to settled trades.
//!
//! For each window the loop advances the clock to the decision time, lets the feed deliver
//! the candles closed by then (through the anomaly filter) into the script's `ctx`, asks the
//! strategy, passes any entry through the risk gate, executes an approved stake on the
//! venue, and settles positions when their window ends. Every step goes to the
//! [`Recorder`]: a `run` commits it to the ledger before it is journaled
//! ([`LedgerRecorder`]), so a kill at any point loses nothing and a restart of the same run
//! resumes where it stopped; a backtest keeps it in memory and writes it out once
//! ([`MemoryRecorder`]). Replay, paper, live and backtests differ only in the [`Clock`],
//! [`Feed`], [`Venue`] and [`Recorder`] given to [`Engine`] (always built through
//! [`EngineSetup`]); there is no replay-only path. What became of each window is typed
//! ([`WindowOutcome`]) and journaled under its code.
//!
//! Live paper sessions ([`live`]) run it on a [`WallClock`] synchronised to the exchange,
//! with the live feed and the paper venue; a venue that learns outcomes only after a window
//! ends keeps the position open and is asked again at later polls.
//!
//! Backtests ([`backtest`]), parameter sweeps ([`sweep`]) and the look-ahead self-check
//! ([`lookahead`]) drive this same [`Engine`]; they only choose the windows, the feed's
//! cut-off and the venue (price-data or recorded-outcome settlement), and add a
//! [`Progress`] hook.

pub mod backtest;
pub mod live;
pub mod lookahead;
pub mod outcome;
pub mod record;
pub mod replay;
pub mod sweep;

pub use crate::clock::{Clock, SimulatedClock, WallClock};
pub use backtest::{BacktestSpec, run_backtest};
pub use live::{LiveSpec, run_live};
pub use outcome::{WindowOutcome, WindowReason, WindowVerdict};
pub use record::{DecisionStep, LedgerRecorder, MemoryRecorder, Recorder, SettlementStep};
pub use replay::{ReplaySpec, run_replay};

use crate::config::Config;
use crate::domain::{Decision, StakeAsk, Window};
use crate::feed::{AnomalyFilter, Candle, Feed};
use crate::ledger::records::{PredictionRecord, ReloadRecord, TradeRecord};
use crate::ledger::{Account, Halt, Ledger, LedgerError, OpenPosition, SessionRow};
use crate::risk::{DataHealth, GateInput, HaltReason, RiskGate, SideQuote, Verdict};
use crate::script::{Ctx, MarketView, Reload, Reloader, Strategy};
use crate::venue::{PendingResolution, Quote, Venue, VenueError};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::sync::atomic::AtomicBool;

/// Why a session could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The ledger failed; nothing after the last committed step happened.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A journal could not be written (the ledger still has everything).
    #[error(transparent)]
    Journal(#[from] crate::ledger::journal::JournalError),
    /// The output folder could not be created.
    #[error("cannot create output folder {}: {source}", dir.display())]
    OutputFolder {
        /// The folder.
        dir: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The recorded data could not be read.
    #[error(transparent)]
    Data(#[from] crate::feed::recorded::LoadError),
    /// The recorded data is too short for the warm-up and one window.
    #[error(
        "{}: {candles} candles is not enough for a warm-up of {warmup} (session.warmup_candles) plus one window",
        file.display()
    )]
    TooFewCandles {
        /// The data file.
        file: std::path::PathBuf,
        /// Candles it holds.
        candles: usize,
        /// The warm-up asked for.
        warmup: usize,
    },
    /// No complete window follows the warm-up.
    #[error("{}: no complete {interval}s window after the warm-up of {warmup} candles", file.display())]
    NoWindow {
        /// The data file.
        file: std::path::PathBuf,
        /// The window length, seconds.
        interval: i64,
        /// The warm-up asked for.
        warmup: usize,
    },
    /// The strategy does not load.
    #[error(transparent)]
    Strategy(#[from] crate::script::ScriptError),
    /// Trading is halted in this folder: nothing runs until the halt is cleared.
    #[error(
        "trading is halted ({}: {}) in {}. Review `updown status --out {}`, then run `updown reset-halt --out {}` to clear it",
        halt.reason,
        halt.detail,
        ledger.display(),
        out.display(),
        out.display()
    )]
    Halted {
        /// The latched halt.
        halt: Halt,
        /// The ledger holding it.
        ledger: std::path::PathBuf,
        /// The output folder.
        out: std::path::PathBuf,
    },
    /// The script memory saved in the ledger does not restore.
    #[error("{}: {message}", ledger.display())]
    Memory {
        /// The ledger.
        ledger: std::path::PathBuf,
        /// What the strategy said.
        message: String,
    },
    /// Hot reload cannot watch the script.
    #[error("{message} (pass --no-reload to run without hot reload)")]
    Watch {
        /// What the watcher said.
        message: String,
    },
    /// A record stored in the ledger does not parse.
    #[error("{}: stored {what} record is unreadable: {source}", ledger.display())]
    Unreadable {
        /// The ledger.
        ledger: std::path::PathBuf,
        /// Which kind of record.
        what: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
    /// Another run's unfinished session, holding a position, is in the folder.
    #[error(
        "{what} with an open position; resume it with its own command (same strategy, data, \
         config, parameters and --intervals) until it settles, or pass --out to use another folder"
    )]
    OtherRunWithPosition {
        /// The session, described.
        what: String,
    },
    /// Another run's unfinished session is in the folder.
    #[error(
        "{what}; the strategy, data, config, parameters or --intervals differ from it. Rerun \
         its own command to resume it, pass --fresh to abandon it and start this run, or \
         pass --out to use another folder"
    )]
    OtherRun {
        /// The session, described.
        what: String,
    },
    /// A position read back from the ledger names a window this run does not have.
    #[error(
        "{}: an open position is recorded for window #{index} (starting at {start}), which \
         this run does not have (its {windows} windows start at {first}); the ledger belongs \
         to another run or was changed. Move it aside or pass --out",
        ledger.display()
    )]
    ForeignPosition {
        /// The ledger.
        ledger: std::path::PathBuf,
        /// The window index recorded.
        index: u32,
        /// The window start recorded with the fill.
        start: i64,
        /// Windows in this run.
        windows: usize,
        /// This run's first window start.
        first: i64,
    },
    /// The paper venue could not be set up.
    #[error("paper venue: {0}")]
    PaperVenue(#[source] VenueError),
    /// Live trading could not start, or its orders could not be checked.
    #[error("live trading: {0}")]
    LiveTrading(#[source] crate::venue::live::LiveVenueError),
    /// The owner did not confirm live trading.
    #[error("live trading not confirmed; nothing was sent")]
    NotConfirmed,
    /// A journal record could not be serialised.
    #[error("cannot serialise a journal record: {0}")]
    Serialise(#[source] serde_json::Error),
    /// A window was settled twice, or without a position (a bug, refused as the ledger
    /// refuses it).
    #[error("settling window {window_start} twice, or without a position")]
    DoubleSettlement {
        /// The window.
        window_start: i64,
    },
}

/// Before a new session of `run_key` starts in a folder: refuse when another run's session
/// there is unfinished (unless `fresh`, which abandons it), because the new session would
/// rewrite the journals under it and a plain rerun of the old command could no longer resume
/// it. A changed `--intervals`, parameter or config is a different run, and nothing used to
/// say so. An unfinished session that still holds a position is never abandoned: its stake
/// would be lost from the books.
pub(crate) fn claim_folder(
    ledger: &Ledger,
    run_key: &str,
    fresh: bool,
) -> Result<(), SessionError> {
    if let Some(other) = ledger.unfinished_other_run(run_key)? {
        let open = ledger.open_positions(other.id)?;
        let what = format!(
            "{} holds an unfinished session #{} of another run ({}, stopped before window {})",
            ledger.path().display(),
            other.id,
            other.label,
            other.next_index + 1
        );
        if !open.is_empty() {
            return Err(SessionError::OtherRunWithPosition { what });
        }
        if !fresh {
            return Err(SessionError::OtherRun { what });
        }
        tracing::warn!(
            "abandoning unfinished session #{} ({}) for this run (--fresh)",
            other.id,
            other.label
        );
        ledger.finish_session(other.id, crate::ledger::SessionStatus::Abandoned)?;
    }
    let earlier = ledger.other_runs(run_key)?;
    if earlier > 0 {
        tracing::info!(
            "{} keeps {earlier} finished session(s) of other runs; the journals beside it now describe this run",
            ledger.path().display()
        );
    }
    Ok(())
}

/// Open positions read back from the ledger on resume, checked against the run's windows
/// before the loop indexes them: an index this run does not have, or a fill for another
/// window (a ledger written by another run, or edited), is an error naming the ledger, never
/// a panic or a position settled against the wrong window.
pub(crate) fn checked_positions(
    open: Vec<OpenPosition>,
    windows: &[Window],
    ledger: &std::path::Path,
) -> Result<Vec<OpenPosition>, SessionError> {
    for p in &open {
        match windows.get(p.window_index as usize) {
            Some(w) if w.start == p.fill.window_start => {}
            _ => {
                return Err(SessionError::ForeignPosition {
                    ledger: ledger.to_path_buf(),
                    index: p.window_index,
                    start: p.fill.window_start,
                    windows: windows.len(),
                    first: windows.first().map_or(0, |w| w.start),
                });
            }
        }
    }
    Ok(open)
}

/// How a session loop ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    /// Every window was decided and settled.
    Complete,
    /// A halt latched; trading stopped.
    Halted(Halt),
    /// SIGINT/SIGTERM: the current step finished and state was saved.
    Interrupted,
}

/// The parts of one running session, wired together. Generic over the boundaries (clock,
/// feed, venue, recorder) so that replay, live and backtests share this loop. Owned by the
/// session function that built it, through [`EngineSetup::build`] — the one way every mode
/// builds it — and taken apart by [`Engine::finish`].
pub struct Engine<'a, C: Clock, F: Feed, V: Venue, R: Recorder> {
    config: &'a Config,
    /// The strategy version in use; hot reload swaps it.
    strategy: Box<dyn Strategy>,
    /// Where new versions come from (hot reload), if watching.
    reloader: Option<Box<dyn Reloader>>,
    clock: C,
    feed: F,
    venue: V,
    gate: RiskGate,
    /// What scripts see.
    ctx: Ctx,
    /// Anomaly filter between feed and ctx.
    filter: AnomalyFilter,
    /// Where every step is recorded (the ledger and the journals, for a `run`).
    recorder: R,
    /// The session row (account, next window).
    session: SessionRow,
    /// All windows of the session (borrowed from a backtest's plan, which may be shared by
    /// many runs, or owned).
    windows: std::borrow::Cow<'a, [Window]>,
    /// Baseline standard deviation for the volatility breaker.
    stddev_baseline: Option<f64>,
    /// Hash of the configuration, journaled.
    config_hash: String,
    /// Unsettled positions.
    open: Vec<OpenPosition>,
    /// Called after every decided window (progress bars); `None` costs nothing. It must be
    /// cheap: it runs inside the loop.
    progress: Option<Box<dyn FnMut(Progress) + 'a>>,
    /// Measures decision latency (benchmarks); `None` costs one branch per window.
    latency: Option<LatencyProbe<'a>>,
}

/// What every session needs to build its [`Engine`]; the optional parts (hot reload, open
/// positions on resume, the volatility baseline, hooks) are set on the engine afterwards.
pub struct EngineSetup<'a, C: Clock, F: Feed, V: Venue, R: Recorder> {
    /// Settings.
    pub config: &'a Config,
    /// The strategy.
    pub strategy: Box<dyn Strategy>,
    /// Session time.
    pub clock: C,
    /// Candle source.
    pub feed: F,
    /// Market.
    pub venue: V,
    /// Where the steps are recorded.
    pub recorder: R,
    /// The `ctx` scripts see (with the strategy's parameters).
    pub ctx: Ctx,
    /// The session row to continue.
    pub session: SessionRow,
    /// Every window of the session.
    pub windows: std::borrow::Cow<'a, [Window]>,
}

impl<'a, C: Clock, F: Feed, V: Venue, R: Recorder> EngineSetup<'a, C, F, V, R> {
    /// The engine, with the risk gate, the anomaly filter and the configuration hash made
    /// from `config` and the session's starting capital.
    pub fn build(self) -> Engine<'a, C, F, V, R> {
        let config = self.config;
        Engine {
            config,
            strategy: self.strategy,
            reloader: None,
            clock: self.clock,
            feed: self.feed,
            venue: self.venue,
            gate: RiskGate::new(&config.risk, self.session.account.starting_capital),
            ctx: self.ctx,
            filter: AnomalyFilter::new(config.risk.max_price_jump_pct),
            recorder: self.recorder,
            session: self.session,
            windows: self.windows,
            stddev_baseline: None,
            config_hash: config.fingerprint(),
            open: Vec::new(),
            progress: None,
            latency: None,
        }
    }
}

/// What an engine leaves when it is taken apart after its run.
pub struct EngineEnd<R> {
    /// The recorder, with what it recorded.
    pub recorder: R,
    /// The account at the end.
    pub account: Account,
    /// Candles the anomaly filter rejected.
    pub anomalies: u64,
}

impl<'a, C: Clock, F: Feed, V: Venue, R: Recorder> Engine<'a, C, F, V, R> {
    /// Watch for new script versions with `reloader` (hot reload).
    pub fn with_reloader(mut self, reloader: Option<Box<dyn Reloader>>) -> Self {
        self.reloader = reloader;
        self
    }

    /// Positions still open when the session resumes (checked against its windows).
    pub fn with_open_positions(mut self, open: Vec<OpenPosition>) -> Self {
        self.open = open;
        self
    }

    /// The volatility breaker's baseline, measured over the warm-up.
    pub fn with_stddev_baseline(mut self, baseline: Option<f64>) -> Self {
        self.stddev_baseline = baseline;
        self
    }

    /// Hooks: progress after each window, and a decision-latency probe (benchmarks).
    pub fn with_hooks(
        mut self,
        progress: Option<Box<dyn FnMut(Progress) + 'a>>,
        latency: Option<LatencyProbe<'a>>,
    ) -> Self {
        self.progress = progress;
        self.latency = latency;
        self
    }

    /// Flush what was recorded and take the engine apart.
    pub fn finish(mut self) -> Result<EngineEnd<R>, SessionError> {
        self.recorder.flush()?;
        Ok(EngineEnd {
            recorder: self.recorder,
            account: self.session.account,
            anomalies: self.filter.rejected,
        })
    }
}

/// The decision latency of one window, as a [`LatencyProbe`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionLatency {
    /// The window's index in the session.
    pub window_index: u32,
    /// From the moment the feed handed over the candle that closes at the decision time to
    /// the risk verdict (for a window that never reaches the gate — a SKIP or a failed
    /// script call — to the moment its decision is complete). The ledger write comes after.
    pub elapsed: std::time::Duration,
    /// Whether the risk gate judged an entry.
    pub gated: bool,
}

/// An in-process probe of decision latency ([`Engine::with_hooks`]): the session notes when
/// the feed hands over the candle closing at a decision time, and when the verdict is in,
/// and tells `sink` for every window that had such a candle.
pub struct LatencyProbe<'a> {
    /// Close time of the last candle closing at a time it was delivered for, and when.
    handed: Option<(i64, std::time::Instant)>,
    /// When the gate gave its verdict in the current window.
    verdict: Option<std::time::Instant>,
    sink: Box<dyn FnMut(DecisionLatency) + 'a>,
}

impl<'a> LatencyProbe<'a> {
    /// A probe reporting to `sink` (keep it cheap: it runs inside the loop, after the
    /// verdict and before the ledger write).
    pub fn new(sink: Box<dyn FnMut(DecisionLatency) + 'a>) -> Self {
        LatencyProbe {
            handed: None,
            verdict: None,
            sink,
        }
    }

    /// The decision of window `index` at `t` is complete: report it if the candle closing
    /// at `t` was handed over.
    fn report(&mut self, index: u32, t: i64) {
        let verdict = self.verdict.take();
        if let Some((closed, at)) = self.handed.take()
            && closed == t
        {
            let end = verdict.unwrap_or_else(std::time::Instant::now);
            (self.sink)(DecisionLatency {
                window_index: index,
                elapsed: end.saturating_duration_since(at),
                gated: verdict.is_some(),
            });
        }
    }
}

/// Where a session is, for a progress hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Windows decided so far (including those decided before a resume).
    pub done: usize,
    /// Windows in the session.
    pub total: usize,
}

impl<C: Clock, F: Feed, V: Venue, R: Recorder> Engine<'_, C, F, V, R> {
    /// Run the remaining windows.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<Ending, SessionError> {
        let lead = self.config.session.decision_lead_secs;
        let start = self.session.next_index as usize;
        for idx in start..self.windows.len() {
            let window = self.windows[idx].clone();
            let t = window.start - lead;
            // How far past the decision time a wall clock already is (the bot was down, or
            // fell behind); the bounded waits below for the bars closing at `t` do not count.
            let late = self.clock.now().map_or(0, |now| now - t);
            if !self.wait_settling(t, stop)? || !self.settle_due(t, stop)? {
                return Ok(Ending::Interrupted);
            }
            if let Some(h) = self.recorder.halt()? {
                return Ok(Ending::Halted(h));
            }
            self.poll_reload(t)?;
            self.advance_feed(t);
            self.decide(&window, t, late)?;
            self.recorder.window_done()?;
            if let Some(progress) = self.progress.as_mut() {
                progress(Progress {
                    done: idx + 1,
                    total: self.windows.len(),
                });
            }
            if let Some(h) = self.recorder.halt()? {
                self.recorder.flush()?;
                return Ok(Ending::Halted(h));
            }
        }
        if !self.settle_due(i64::MAX, stop)? {
            return Ok(Ending::Interrupted);
        }
        // A venue that resolves after the window (paper, live) may not know every outcome
        // yet: ask again until it does (it ends the wait itself, see `PendingResolution`).
        while let (false, PendingResolution::RetryAfter(every)) =
            (self.open.is_empty(), self.venue.pending_resolution())
        {
            self.recorder.flush()?;
            let now = self.clock.now().unwrap_or(i64::MIN);
            let last_end = self
                .open
                .iter()
                .map(|p| self.windows[p.window_index as usize].end);
            let next = last_end.max().unwrap_or(now).max(now) + every.max(1);
            if !self.clock.wait_until(next, stop) || !self.settle_due(i64::MAX, stop)? {
                return Ok(Ending::Interrupted);
            }
        }
        self.recorder.flush()?;
        if let Some(h) = self.recorder.halt()? {
            return Ok(Ending::Halted(h));
        }
        Ok(Ending::Complete)
    }

    /// Swap in a new script version if one is ready: between windows, never during a call.
    fn poll_reload(&mut self, t: i64) -> Result<(), SessionError> {
        let Some(reloader) = self.reloader.as_mut() else {
            return Ok(());
        };
        let Some(reload) = reloader.poll(self.strategy.as_ref()) else {
            return Ok(());
        };
        let old_hash = self.strategy.content_hash().to_string();
        let record = match reload {
            Reload::Swap(next) => {
                tracing::info!(
                    "script {} reloaded: version {old_hash} → {} from this window on (memory kept)",
                    next.name(),
                    next.content_hash()
                );
                let record = ReloadRecord {
                    time: t,
                    script: next.name().to_string(),
                    old_hash,
                    new_hash: Some(next.content_hash().to_string()),
                    status: "active".into(),
                    error: None,
                };
                self.strategy = next;
                record
            }
            Reload::Rejected { error } => {
                tracing::warn!("script change refused, version {old_hash} keeps running: {error}");
                ReloadRecord {
                    time: t,
                    script: self.strategy.name().to_string(),
                    old_hash,
                    new_hash: None,
                    status: "rejected".into(),
                    error: Some(error),
                }
            }
        };
        let line = json_line(&record)?;
        self.recorder.reload(&line)?;
        Ok(())
    }

    fn advance_feed(&mut self, t: i64) {
        let mut st = self.ctx.0.borrow_mut();
        let filter = &mut self.filter;
        let probe = &mut self.latency;
        self.feed.deliver_until(t, &mut |c: Candle| {
            if let Some(p) = probe.as_mut()
                && c.close_time() == t
            {
                p.handed = Some((t, std::time::Instant::now()));
            }
            if filter.accept(&c) {
                st.candles.push(c);
            } else {
                tracing::warn!(
                    open_time = c.open_time,
                    close = c.close,
                    "price anomaly rejected"
                );
            }
        });
    }

    /// Wait until `t`. On a clock that runs on its own (live), positions whose outcome the
    /// venue did not know yet are asked about again on the way, every
    /// [`PendingResolution::RetryAfter`] seconds, so a trade settles soon after Polymarket
    /// resolves it rather than at the next decision. A simulated clock just jumps to `t`.
    fn wait_settling(&mut self, t: i64, stop: &AtomicBool) -> Result<bool, SessionError> {
        while let (false, PendingResolution::RetryAfter(every), Some(now)) = (
            self.open.is_empty(),
            self.venue.pending_resolution(),
            self.clock.now(),
        ) {
            let next = now + every.max(1);
            if next >= t {
                break;
            }
            if !self.clock.wait_until(next, stop) || !self.settle_due(next, stop)? {
                return Ok(false);
            }
        }
        Ok(self.clock.wait_until(t, stop))
    }

    /// Settle every open position whose window has ended by `t` (all of them for `i64::MAX`).
    /// A position whose outcome the venue does not know yet stays open, to be asked about
    /// again at a later poll.
    fn settle_due(&mut self, t: i64, stop: &AtomicBool) -> Result<bool, SessionError> {
        let mut i = 0;
        while let Some(pos) = self.open.get(i).cloned() {
            let window = self.windows[pos.window_index as usize].clone();
            if window.end > t {
                break;
            }
            if !self.clock.wait_until(window.end, stop) {
                return Ok(false);
            }
            self.advance_feed(window.end);
            if self.settle(&pos, &window)? {
                self.open.remove(i);
            } else {
                i += 1;
            }
        }
        Ok(true)
    }

    /// Session time now on a clock that runs on its own, never before `t`; `t` itself on a
    /// simulated clock, which is wherever the session last waited.
    fn now_or(&self, t: i64) -> i64 {
        self.clock.now().map_or(t, |now| now.max(t))
    }

    /// Settle `pos`; `false` when the venue does not know the outcome yet.
    fn settle(&mut self, pos: &OpenPosition, window: &Window) -> Result<bool, SessionError> {
        let resolution = {
            let st = self.ctx.0.borrow();
            self.venue.resolve(window, &st.candles)
        };
        if let PendingResolution::RetryAfter(_) = self.venue.pending_resolution() {
            match &resolution {
                Ok(None) => {
                    tracing::debug!("{}  outcome not known yet; asking again later", window.slug);
                    return Ok(false);
                }
                // A venue that answers later may be back later: never void a trade for a
                // network failure.
                Err(VenueError::Unavailable(e)) => {
                    tracing::warn!(
                        "{}  cannot learn the outcome yet ({e}); asking again later",
                        window.slug
                    );
                    return Ok(false);
                }
                _ => {}
            }
        }
        let account = &mut self.session.account;
        let fill = &pos.fill;
        let (outcome, won, pnl, settled_by) = match resolution {
            Ok(Some(r)) => {
                let won = r.outcome == fill.side;
                let pnl = account.settle(fill, won, window.end);
                (
                    Some(r.outcome.as_str().to_string()),
                    Some(won),
                    pnl,
                    r.settled_by.code().to_string(),
                )
            }
            // The window's candles are missing (or were rejected as anomalies): nobody can say
            // who won, so the stake is refunded rather than guessed.
            Ok(None)
            | Err(VenueError::Unavailable(_))
            | Err(VenueError::Rejected(_))
            | Err(VenueError::NoOutcome(_)) => {
                account.open_cost -= fill.stake;
                account.cash += fill.stake;
                (None, None, Decimal::ZERO, "void_no_data".to_string())
            }
        };
        let equity = account.equity();
        let halt = self
            .gate
            .halt_after(equity, account.day_pnl)
            .map(|(reason, detail)| Halt {
                reason,
                detail,
                at: window.end,
            });
        let record = TradeRecord {
            interval_start: window.start,
            slug: window.slug.clone(),
            side: fill.side.as_str().into(),
            stake: fill.stake,
            price: fill.price,
            shares: fill.shares,
            fee: fill.fee,
            outcome,
            won,
            pnl,
            equity_after: equity,
            win_streak: account.win_streak,
            settled_by,
        };
        let line = json_line(&record)?;
        let eq = equity.to_string();
        // The equity point belongs to the moment of settlement: on a live clock a late
        // resolution settles after later windows did, and a point at its window's end would
        // put the newest equity before older points on the curve.
        let at = self.now_or(window.end);
        self.recorder.settlement(&SettlementStep {
            window_start: window.start,
            line: &line,
            account: &self.session.account,
            equity: (at, &eq),
            halt: halt.as_ref(),
        })?;
        let result = match won {
            Some(true) => "won",
            Some(false) => "lost",
            None => "void (no data)",
        };
        tracing::info!(
            "{}  settled: {} {result}, P&L {:+.2}, equity {:.2}",
            window.slug,
            fill.side.as_str().to_uppercase(),
            pnl,
            equity
        );
        if let Some(h) = &halt {
            tracing::warn!(reason = %h.reason, "trading halted: {}", h.detail);
        }
        Ok(true)
    }

    fn decide(&mut self, window: &Window, t: i64, late: i64) -> Result<(), SessionError> {
        let mut record = PredictionRecord {
            interval_start: window.start,
            slug: window.slug.clone(),
            decision_time: t,
            side: "skip".into(),
            confidence: 0.0,
            prob: None,
            reason: String::new(),
            features: serde_json::Map::new(),
            stake_asked: None,
            stake_approved: None,
            verdict: "skipped".into(),
            reason_code: None,
            detail: None,
            script_hash: self.strategy.content_hash().to_string(),
            config_hash: self.config_hash.clone(),
        };
        let mut fill = None;
        let mut halt = None;
        // What became of the window; every branch below settles it, and it is written into
        // `record` at the end.
        let outcome;

        // An order the venue already filled for this window before a crash: recorded as
        // the window's position, never decided (and sent) again.
        let recovered = match self.venue.recovered_fill(window) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("{}  recovering its order failed: {e}", window.slug);
                None
            }
        };
        if let Some(f) = recovered {
            record.side = f.side.as_str().into();
            outcome = WindowOutcome {
                verdict: WindowVerdict::Approved,
                reason: Some(WindowReason::Recovered),
            };
            record.stake_approved = Some(f.stake);
            record.reason = "order placed before a restart, recovered from the venue".into();
            self.session.account.open(&f);
            fill = Some(f);
        } else if !self.feed.covers(window.start, window.end) {
            outcome = WindowOutcome::skipped(WindowReason::DataGap);
            record.detail = Some(
                "the recorded data has no complete candles for this window; not guessed".into(),
            );
        } else if late > self.config.live.max_decision_delay_secs {
            // A wall clock ran past the decision time (the bot was not running, or fell
            // behind): a decision is never made late.
            outcome = WindowOutcome::skipped(WindowReason::Missed);
            record.detail = Some(format!(
                "decision time passed {late}s ago (live.max_decision_delay_secs = {})",
                self.config.live.max_decision_delay_secs
            ));
        } else {
            let quote = self.venue.quote(window);
            // Finding the market and its book can take a while (Gamma retries, a book to
            // wait for): a quote that arrives too late is not traded on either.
            let late_after_quote = self.now_or(t) - t;
            match quote {
                Err(e) => {
                    outcome = WindowOutcome::skipped(WindowReason::Quote(e.code()));
                    record.detail = Some(e.to_string());
                }
                Ok(_) if late_after_quote > self.config.live.max_decision_delay_secs => {
                    outcome = WindowOutcome::skipped(WindowReason::Missed);
                    record.detail = Some(format!(
                        "the market quote came {late_after_quote}s after the decision time \
                         (live.max_decision_delay_secs = {})",
                        self.config.live.max_decision_delay_secs
                    ));
                }
                Ok(quote) => {
                    self.prepare_ctx(window, t, &quote);
                    match self.ask_strategy() {
                        Err(failure) => {
                            record.reason = failure.message.clone();
                            outcome = WindowOutcome::skipped(WindowReason::Script(failure.kind));
                            halt = self.count_failure(t);
                        }
                        Ok((mut decision, stake_ask)) => {
                            record.side = decision.side.map_or("skip", |s| s.as_str()).into();
                            record.confidence = decision.confidence;
                            record.prob = decision.prob;
                            // Moved, not copied: the gate reads only the side.
                            record.reason = std::mem::take(&mut decision.reason);
                            record.features = std::mem::take(&mut decision.features);
                            if let Some(ask) = stake_ask {
                                record.stake_asked = Some(match &ask {
                                    StakeAsk::Usd(x) => format!("{x}"),
                                    StakeAsk::Invalid(t) => format!("<{t}>"),
                                });
                                if matches!(&ask, StakeAsk::Usd(x) if !x.is_finite() || *x < 0.0)
                                    || matches!(ask, StakeAsk::Invalid(_))
                                {
                                    halt = self.count_failure(t);
                                } else {
                                    self.session.account.consecutive_script_failures = 0;
                                }
                                (fill, outcome) = self.gate_and_execute(
                                    window,
                                    t,
                                    &decision,
                                    ask,
                                    &quote,
                                    &mut record,
                                );
                                // Stakes are reduced so a loss never takes equity below the
                                // floor, so `halt_after` (equity < floor) cannot fire: the
                                // gate finding no room above the floor is the drawdown limit
                                // reached, and it latches (DESIGN.md §5).
                                if halt.is_none()
                                    && outcome.reason
                                        == Some(WindowReason::Risk(
                                            crate::risk::ReasonCode::DrawdownFloor,
                                        ))
                                {
                                    halt = Some(Halt {
                                        reason: HaltReason::Drawdown,
                                        detail: record.detail.clone().unwrap_or_default(),
                                        at: t,
                                    });
                                }
                            } else {
                                self.session.account.consecutive_script_failures = 0;
                                outcome = WindowOutcome::skipped(WindowReason::ScriptSkip);
                            }
                        }
                    }
                }
            }
        }

        if let Some(p) = self.latency.as_mut() {
            p.report(window.index, t);
        }
        record.verdict = outcome.verdict.code().into();
        record.reason_code = outcome.reason.map(|r| r.code().into());
        let line = json_line(&record)?;
        let memory = self.strategy.memory_json();
        self.recorder.decision(&DecisionStep {
            window_start: window.start,
            window_index: window.index,
            line: &line,
            fill: fill.as_ref(),
            account: &self.session.account,
            memory: memory.as_deref(),
            halt: halt.as_ref(),
        })?;
        self.session.next_index = window.index + 1;
        if let Some(f) = fill {
            self.open.push(OpenPosition {
                window_index: window.index,
                fill: f,
            });
        }
        // The line's arguments are formatted only when some subscriber logs it.
        tracing::info!(
            "{}  {} {} — {}",
            window.slug,
            record.side.to_uppercase(),
            verdict_text(&record),
            record.reason
        );
        if let Some(h) = &halt {
            tracing::warn!(reason = %h.reason, "trading halted: {}", h.detail);
        }
        Ok(())
    }

    /// Count a script failure; returns the halt to latch when the limit is reached.
    fn count_failure(&mut self, t: i64) -> Option<Halt> {
        let a = &mut self.session.account;
        a.consecutive_script_failures += 1;
        let limit = self.config.risk.max_consecutive_script_failures;
        (a.consecutive_script_failures >= limit).then(|| Halt {
            reason: HaltReason::ScriptFailures,
            detail: format!(
                "{} consecutive script failures (risk.max_consecutive_script_failures = {limit})",
                a.consecutive_script_failures
            ),
            at: t,
        })
    }

    fn prepare_ctx(&mut self, window: &Window, t: i64, quote: &Quote) {
        let mut st = self.ctx.0.borrow_mut();
        st.now = t;
        st.window = Some(window.clone());
        st.market = market_view(quote);
        st.account = crate::script::AccountView::of(&self.session.account);
    }

    fn ask_strategy(&mut self) -> Result<(Decision, Option<StakeAsk>), crate::script::CallFailure> {
        let decision = self.strategy.predict(&self.ctx)?;
        if decision.side.is_none() {
            return Ok((decision, None));
        }
        let ask = match self.strategy.size(&self.ctx, &decision)? {
            Some(ask) => ask,
            None => StakeAsk::Usd(self.config.strategy.default_stake.to_f64().unwrap_or(0.0)),
        };
        Ok((decision, Some(ask)))
    }

    fn data_health(&self, t: i64) -> DataHealth {
        let st = self.ctx.0.borrow();
        let candles = &st.candles;
        let r = &self.config.risk;
        DataHealth {
            price_age_secs: candles.last().map(|c| t - c.close_time()),
            range_pct: crate::script::ctx::range_pct(candles, i64::from(r.vol_range_minutes))
                .ok()
                .flatten(),
            stddev: stddev_of_closes(candles, r.stddev_window as usize),
            stddev_baseline: self.stddev_baseline,
            feed_stale: self.feed.stale(),
        }
    }

    fn gate_and_execute(
        &mut self,
        window: &Window,
        t: i64,
        decision: &Decision,
        ask: StakeAsk,
        quote: &Quote,
        record: &mut PredictionRecord,
    ) -> (Option<crate::venue::Fill>, WindowOutcome) {
        let Some(side) = decision.side else {
            return (None, WindowOutcome::skipped(WindowReason::ScriptSkip));
        };
        let book = quote.side(side);
        let input = GateInput {
            side,
            ask,
            quote: SideQuote {
                ask: book.ask,
                bid: book.bid,
                min_order_shares: quote.min_order_shares,
            },
            equity: self.session.account.equity(),
            cash: self.session.account.cash,
            // A position whose window has ended carries no more price risk, only a wait for
            // the venue's resolution (minutes on Polymarket): it still ties up its cash, which
            // the gate counts, but it is not an overlapping position.
            open_positions: self
                .open
                .iter()
                .filter(|p| self.windows[p.window_index as usize].end > t)
                .count(),
            allow_overlap: self.config.session.allow_overlap,
            halted: false,
            data: self.data_health(t),
            // On a wall clock, the time actually left (the quote and the script took some).
            seconds_to_close: window.end - self.now_or(t),
        };
        let verdict = self.gate.check(&input);
        if let Some(p) = self.latency.as_mut() {
            p.verdict = Some(std::time::Instant::now());
        }
        match verdict {
            Verdict::Refused(r) => {
                record.detail = Some(r.detail);
                (None, WindowOutcome::refused(WindowReason::Risk(r.code)))
            }
            Verdict::Approved(stake) => match self.venue.execute(window, &stake, quote) {
                Ok(fill) => {
                    record.stake_approved = Some(stake.usd());
                    if !stake.adjustments().is_empty() {
                        record.detail = Some(stake.adjustments().join(","));
                    }
                    self.session.account.open(&fill);
                    (Some(fill), WindowOutcome::approved())
                }
                Err(e) => {
                    record.detail = Some(e.to_string());
                    (None, WindowOutcome::refused(WindowReason::ExecutionFailed))
                }
            },
        }
    }
}

/// The venue's quote as scripts see it in `ctx.market`; imbalance is bid depth minus ask
/// depth over their sum near the top of the Up book.
pub fn market_view(quote: &Quote) -> MarketView {
    let f = |d: Decimal| d.to_f64().unwrap_or(0.0);
    let bid_depth = f(quote.up.bid_depth);
    let ask_depth = f(quote.up.ask_depth);
    let imbalance = if bid_depth + ask_depth > 0.0 {
        (bid_depth - ask_depth) / (bid_depth + ask_depth)
    } else {
        0.0
    };
    MarketView {
        up_bid: f(quote.up.bid),
        up_ask: f(quote.up.ask),
        down_bid: f(quote.down.bid),
        down_ask: f(quote.down.ask),
        imbalance,
        up_depth: ask_depth,
        down_depth: f(quote.down.ask_depth),
        fee_rate: f(quote.fee_rate),
        tick_size: f(quote.tick_size),
        min_order_size: f(quote.min_order_shares),
    }
}

/// The verdict as the decision line shows it: `approved $5.00`, `skipped (script_skip)`.
fn verdict_text(record: &PredictionRecord) -> String {
    match (&record.stake_approved, &record.reason_code) {
        (Some(stake), _) => format!("approved ${stake:.2}"),
        (None, Some(code)) => format!("{} ({code})", record.verdict),
        (None, None) => record.verdict.clone(),
    }
}

/// Population standard deviation of the last `n` closes.
pub fn stddev_of_closes(candles: &[Candle], n: usize) -> Option<f64> {
    if n < 2 || candles.len() < n {
        return None;
    }
    let tail = &candles[candles.len() - n..];
    let mean = tail.iter().map(|c| c.close).sum::<f64>() / n as f64;
    let var = tail.iter().map(|c| (c.close - mean).powi(2)).sum::<f64>() / n as f64;
    Some(var.sqrt())
}

fn json_line<T: serde::Serialize>(value: &T) -> Result<String, SessionError> {
    serde_json::to_string(value).map_err(SessionError::Serialise)
}

/// A fresh account for a session.
pub fn new_account(config: &Config) -> Account {
    Account::new(config.account.starting_capital)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Fill, Side};
    use rust_decimal_macros::dec;

    fn position(window_index: u32, window_start: i64) -> OpenPosition {
        OpenPosition {
            window_index,
            fill: Fill {
                window_start,
                side: Side::Up,
                stake: dec!(5),
                price: dec!(0.51),
                shares: dec!(9.7),
                fee: dec!(0.1),
            },
        }
    }

    #[test]
    fn a_position_read_back_must_name_a_window_of_this_run() {
        let windows: Vec<Window> = (0..3)
            .map(|i| Window::new(3_000 + i * 300, 300, i as u32))
            .collect();
        let ledger = std::path::Path::new("out/ledger.sqlite");
        assert_eq!(
            checked_positions(vec![position(1, 3_300)], &windows, ledger)
                .map(|p| p.len())
                .ok(),
            Some(1)
        );
        for bad in [position(7, 5_100), position(1, 3_600)] {
            let err = checked_positions(vec![bad], &windows, ledger)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("out/ledger.sqlite") && err.contains("does not have"),
                "{err}"
            );
        }
    }
}
