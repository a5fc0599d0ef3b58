//! Live paper sessions: live BTC data, Polymarket's live books, simulated fills, on a wall
//! clock synchronised to the exchange.
//!
//! [`run_live`] connects the live feed ([`LiveFeed`]: clock sync to Binance's server time,
//! REST backfill of the warm-up, the WebSocket stream), plans the windows from the next
//! window boundary after the warm-up, opens the paper venue ([`PaperVenue`], pointed at the
//! `[live]` URLs), and hands all three to the same ledger, journals, resume and summary
//! code as a replay (`replay::run_prepared`) and so to the same [`Engine`] loop:
//! decisions at `T − lead` from bars closed by then, the same risk gate (which also refuses
//! while the feed is stale), settlement when Polymarket resolves (the venue asks again until
//! it does, and falls back to price data after its own timeout).
//!
//! A live run is identified by its strategy, configuration, parameters, window count and
//! clock speed. Running the same command again while its session is unfinished (after
//! Ctrl-C or SIGTERM) resumes it: its windows stay where they were (the first window is
//! recovered from the session's first equity point), and any window whose decision time
//! passed meanwhile is journaled as `missed`, never traded late. A finished run's command
//! starts a new session at the next window.
//!
//! Nothing here reads a file of recorded data: a session without network fails at once
//! with [`LiveError::Feed`], naming the host it could not reach.
//!
//! With [`LiveSpec::trading`] (`updown run --live`) the venue is the live venue
//! ([`LiveVenue`]): real orders on Polymarket's CLOB V2. Before the session is created or
//! resumed, it authenticates, loads the wallet's state and reconciles the order records
//! with the venue (no snapshot, no session), then asks [`LiveTrading::confirm`] with what it
//! found; orders the venue filled for windows this session already decided without booking
//! them are reported; a halt, at start or at the end, cancels the wallet's open orders.
//!
//! [`Engine`]: super::Engine

use super::replay::{Prepared, ReplayOutcome, run_prepared, stddev_baseline, strategy_params};
use super::{SessionError, new_account};
use crate::clock::WallClock;
use crate::config::Config;
use crate::domain::Window;
use crate::feed::live::{FeedMonitor, LiveFeed, LiveSettings};
use crate::feed::net::NetError;
use crate::ledger::journal::{JournalEvent, JournalObserver};
use crate::ledger::orders::OrderStore;
use crate::ledger::records::{PredictionRecord, TradeRecord};
use crate::ledger::{LEDGER_FILE, Ledger, SessionStatus};
use crate::script::ScriptStrategy;
use crate::venue::Venue;
use crate::venue::live::{AccountSnapshot, Credentials, LiveTradingConfig, LiveVenue, Trader};
use crate::venue::paper::{PaperConfig, PaperVenue};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::time::Duration;

/// What to run live.
#[derive(Clone, Debug)]
pub struct LiveSpec {
    /// The strategy script.
    pub strategy: PathBuf,
    /// Settings (already validated); `[live]` says where the data comes from.
    pub config: Config,
    /// `--param` overrides on top of `[params.<stem>]`.
    pub overrides: toml::Table,
    /// Windows to run (default: `session.intervals`).
    pub intervals: Option<u32>,
    /// Output folder (default: `session.out_dir`).
    pub out_dir: Option<PathBuf>,
    /// Start a new session even if an unfinished one of the same run exists.
    pub fresh: bool,
    /// Watch the script and its modules and swap in new versions between windows.
    pub watch: bool,
    /// Where to send [`LiveEvent`]s for a display; `None` sends nothing.
    pub events: Option<Sender<LiveEvent>>,
    /// Real orders instead of paper fills (`updown run --live`); `None` trades paper money.
    pub trading: Option<LiveTrading>,
}

/// What a session placing real orders needs: the wallet, the CLOB settings, and the
/// trader's consent, asked once the wallet's state is known and before any order.
#[derive(Clone)]
pub struct LiveTrading {
    /// The wallet's secrets (from the environment or `.env`).
    pub credentials: Credentials,
    /// Where and how orders are sent.
    pub settings: LiveTradingConfig,
    /// Shown the wallet, its balance and reconciliation notes; `true` to go on.
    pub confirm: Arc<dyn Fn(&AccountSnapshot) -> bool + Send + Sync>,
}

impl std::fmt::Debug for LiveTrading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTrading")
            .field("credentials", &self.credentials)
            .field("settings", &self.settings)
            .finish()
    }
}

/// What a running live session tells a display.
#[derive(Clone, Debug)]
pub enum LiveEvent {
    /// The session is connected and planned.
    Started(LiveStart),
    /// A window was decided (the `predictions.jsonl` line).
    Prediction(Box<PredictionRecord>),
    /// A trade was settled (the `trades.jsonl` line).
    Trade(Box<TradeRecord>),
}

/// A live session's shape, as it starts.
#[derive(Clone, Debug)]
pub struct LiveStart {
    /// Session time.
    pub clock: WallClock,
    /// The feed's health.
    pub feed: FeedMonitor,
    /// Every window of the session.
    pub windows: Vec<Window>,
    /// Seconds before a window's start at which it is decided.
    pub lead: i64,
    /// The window index a resumed session continues at.
    pub resumed_at: Option<u32>,
    /// Equity at the start.
    pub equity: Decimal,
    /// Consecutive wins at the start.
    pub win_streak: u32,
    /// Consecutive losses at the start.
    pub loss_streak: u32,
}

/// Why a live session could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// The live data could not be had (names the host); nothing was recorded.
    #[error("live data unavailable: {0}")]
    Feed(#[from] NetError),
    /// The session failed (ledger, journals, setup).
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl LiveError {
    /// The host that could not be reached, for a data failure.
    pub fn host(&self) -> Option<&str> {
        match self {
            LiveError::Feed(e) => Some(e.host()).filter(|h| !h.is_empty()),
            LiveError::Session(_) => None,
        }
    }
}

/// The paper venue's settings from `[live]` (URLs, HTTP timeout and attempts) and the
/// replay fee rate (used when Gamma publishes no fee schedule).
pub fn paper_config(config: &Config) -> PaperConfig {
    let live = &config.live;
    let mut cfg = PaperConfig::with_urls(&live.gamma, &live.clob_rest, &live.clob_ws);
    cfg.fee_rate = config.replay.fee_rate;
    cfg.http.attempts = live.http_attempts;
    cfg.http.request_timeout = Duration::from_millis(live.http_timeout_ms);
    cfg.resolution_timeout_secs = live.resolution_timeout_secs;
    // The timeout is in session seconds, so the polls must be too: at 300× a real 5 s
    // between polls would be 25 session minutes, past the timeout.
    cfg.resolution_poll = Duration::from_secs_f64(live.resolution_poll_secs / live.clock_speed);
    cfg
}

/// Run (or resume) a live paper session until its windows are done, it halts, or `stop`
/// is raised.
pub fn run_live(spec: &LiveSpec, stop: &AtomicBool) -> Result<ReplayOutcome, LiveError> {
    let config = &spec.config;
    let out_dir = spec
        .out_dir
        .clone()
        .unwrap_or_else(|| config.session.out_dir.clone());
    std::fs::create_dir_all(&out_dir).map_err(|source| SessionError::OutputFolder {
        dir: out_dir.clone(),
        source,
    })?;
    let strategy =
        ScriptStrategy::load(&spec.strategy, &config.sandbox).map_err(SessionError::from)?;
    let params = strategy_params(config, &spec.strategy, &spec.overrides);

    let interval = config.session.interval_secs;
    let lead = config.session.decision_lead_secs;
    let warmup = config.session.warmup_candles;
    let count = spec.intervals.unwrap_or(config.session.intervals);

    // Fails here, naming the host, when there is no network.
    let settings = LiveSettings::from_config(&config.live, warmup);
    let (feed, clock) = LiveFeed::connect(settings.clone())?;
    if !feed.wait_streaming(settings.http_timeout) {
        tracing::warn!(
            "the Binance stream is not delivering yet ({}); entries are refused as stale_data until it does",
            feed.health()
                .last_error
                .unwrap_or_else(|| "no frame yet".into())
        );
    }

    let mut run_key = run_key(&spec.strategy, config, &spec.overrides, count);
    if spec.trading.is_some() {
        // Real money is another run: a paper session is never resumed with real orders,
        // nor a live one with paper fills.
        run_key.push_str(":orders");
    }
    let mut ledger = Ledger::open(&out_dir.join(LEDGER_FILE)).map_err(SessionError::from)?;
    // Real orders: authenticate, load the wallet's state and reconcile the order records
    // before anything else happens; no snapshot or no consent, no session.
    let clock_ms = clock;
    let paper = PaperVenue::with_clock(paper_config(config), Arc::new(move || clock_ms.now_ms()))
        .map_err(SessionError::PaperVenue)?;
    // Paper, or real orders through a live venue that wraps the paper one. Built once per
    // session, so the size of the larger variant does not matter.
    #[allow(clippy::large_enum_variant)]
    enum Chosen {
        Paper(PaperVenue),
        Live(LiveVenue),
    }
    let mut chosen = Chosen::Paper(paper);
    if let Some(t) = &spec.trading
        && let Chosen::Paper(p) = chosen
    {
        let (venue, snapshot) = LiveVenue::connect(
            p,
            &t.credentials,
            t.settings.clone(),
            Box::new(OrderStore::open(ledger.path()).map_err(SessionError::from)?),
        )
        .map_err(SessionError::LiveTrading)?;
        if !(t.confirm)(&snapshot) {
            return Err(SessionError::NotConfirmed.into());
        }
        if ledger.halt().map_err(SessionError::from)?.is_some() {
            // A latched halt keeps trading stopped; make sure nothing rests on the book.
            cancel_on_halt(&venue.trader());
        }
        chosen = Chosen::Live(venue);
    }
    let existing = ledger.find_session(&run_key).map_err(SessionError::from)?;
    let resumable = existing.filter(|row| !spec.fresh && row.status == SessionStatus::Running);
    let resumed_first_start = match &resumable {
        Some(row) => ledger
            .equity(row.id)
            .map_err(SessionError::from)?
            .first()
            .map(|(t, _)| t + lead),
        None => None,
    };
    let (session, resumed_at, first_start) = match (resumable, resumed_first_start) {
        (Some(row), Some(first)) => {
            let at = row.next_index;
            (row, Some(at), first)
        }
        _ => {
            super::claim_folder(&ledger, &run_key, spec.fresh)?;
            let first = Window::first_start_at_or_after(clock.now_secs() + lead, interval);
            let account = new_account(config);
            let label = format!(
                "{} live from {}",
                spec.strategy.display(),
                crate::domain::slug_for(first, interval)
            );
            let row = ledger
                .create_session(&run_key, &label, &account)
                .map_err(SessionError::from)?;
            ledger
                .record_equity(row.id, first - lead, &account.equity().to_string())
                .map_err(SessionError::from)?;
            (row, None, first)
        }
    };
    let windows: Vec<Window> = (0..count)
        .map(|i| Window::new(first_start + i64::from(i) * interval, interval, i))
        .collect();
    let held = feed.held();
    let baseline = stddev_baseline(
        &held,
        first_start - lead,
        warmup.max(1),
        config.risk.stddev_window as usize,
    );
    let now = clock.now_secs();
    match resumed_at {
        Some(at) => tracing::info!(
            "resuming live session {} at window {} of {} ({})",
            session.id,
            at + 1,
            windows.len(),
            windows.get(at as usize).map_or("-", |w| w.slug.as_str())
        ),
        None => tracing::info!(
            "live session {}: {} windows from {}, first decision in {}s (session time)",
            session.id,
            windows.len(),
            windows[0].slug,
            first_start - lead - now
        ),
    }

    // Subscribe to the first window's books now, so its decision finds them live.
    if let (Some(w), Chosen::Paper(p)) = (windows.get(session.next_index as usize), &mut chosen)
        && let Err(e) = p.prepare(w)
    {
        tracing::debug!("{}: not ready yet ({e}); the quote will retry", w.slug);
    }
    if let Chosen::Live(l) = &chosen {
        report_unbooked(l, &ledger, session.id, &windows, session.next_index)?;
    }
    let (trader, venue): (_, Box<dyn Venue>) = match chosen {
        Chosen::Live(l) => (Some(l.trader()), Box::new(l)),
        Chosen::Paper(p) => (None, Box::new(p)),
    };

    let observer = spec.events.clone().map(|tx| {
        let _ = tx.send(LiveEvent::Started(LiveStart {
            clock,
            feed: feed.monitor(),
            windows: windows.clone(),
            lead,
            resumed_at,
            equity: session.account.equity(),
            win_streak: session.account.win_streak,
            loss_streak: session.account.loss_streak,
        }));
        Box::new(move |event: JournalEvent<'_>| {
            let e = match event {
                JournalEvent::Prediction(line) => serde_json::from_str(line)
                    .ok()
                    .map(|r| LiveEvent::Prediction(Box::new(r))),
                JournalEvent::Trade(line) => serde_json::from_str(line)
                    .ok()
                    .map(|r| LiveEvent::Trade(Box::new(r))),
                JournalEvent::Equity(..) => None,
            };
            if let Some(e) = e {
                let _ = tx.send(e);
            }
        }) as JournalObserver
    });

    let outcome = run_prepared(
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
            // A live window takes minutes: every line reaches the disk at once.
            flush_every: 1,
            gaps: String::from("live data (gaps backfilled over REST)"),
            candles_capacity: held.len() + count as usize * 5 + 64,
            observer,
        },
        clock,
        feed,
        venue,
        stop,
    )?;
    if let (Some(t), Some(super::Ending::Halted(_))) = (&trader, &outcome.ending) {
        cancel_on_halt(t);
    }
    Ok(outcome)
}

/// Log, loudly, any order that filled on the venue for a window this session has already
/// decided without booking it (its answer was lost before a halt or crash).
fn report_unbooked(
    venue: &LiveVenue,
    ledger: &Ledger,
    session: i64,
    windows: &[Window],
    next_index: u32,
) -> Result<(), LiveError> {
    let decided: Vec<i64> = windows
        .iter()
        .take(next_index as usize)
        .map(|w| w.start)
        .collect();
    let booked: std::collections::HashSet<i64> = ledger
        .predictions(session)
        .map_err(SessionError::from)?
        .iter()
        .filter_map(|l| serde_json::from_str::<PredictionRecord>(l).ok())
        .filter(|p| p.stake_approved.is_some())
        .map(|p| p.interval_start)
        .collect();
    for line in venue
        .unbooked(&decided, &booked)
        .map_err(SessionError::LiveTrading)?
    {
        tracing::error!("{line}");
    }
    Ok(())
}

/// A halt cancels the wallet's open orders.
fn cancel_on_halt(trader: &Trader) {
    match trader.cancel_all() {
        Ok(n) => tracing::warn!("trading halted: {n} open order(s) cancelled"),
        Err(e) => tracing::error!("trading halted but cancelling open orders failed: {e}"),
    }
}

fn run_key(strategy: &Path, config: &Config, overrides: &toml::Table, count: u32) -> String {
    let canon = strategy
        .canonicalize()
        .unwrap_or_else(|_| strategy.to_path_buf())
        .display()
        .to_string();
    let mut h = Sha256::new();
    h.update("live");
    h.update([0]);
    h.update(canon);
    h.update([0]);
    h.update(config.fingerprint());
    h.update([0]);
    h.update(format!("{overrides:?}"));
    h.update([0]);
    h.update(count.to_le_bytes());
    h.update(config.live.clock_speed.to_le_bytes());
    hex::encode(&h.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_keys_separate_modes_speeds_and_counts() {
        let c = Config::default();
        let t = toml::Table::new();
        let p = Path::new("strategies/rsi_ema.rhai");
        let a = run_key(p, &c, &t, 18);
        assert_eq!(a, run_key(p, &c, &t, 18));
        assert_ne!(a, run_key(p, &c, &t, 17));
        let mut fast = c.clone();
        fast.live.clock_speed = 300.0;
        assert_ne!(a, run_key(p, &fast, &t, 18));
        // Pointing at another host is the same run.
        let mut other = c.clone();
        other.live.binance_rest = "http://127.0.0.1:9".into();
        assert_eq!(a, run_key(p, &other, &t, 18));
    }

    #[test]
    fn paper_config_takes_the_live_urls() {
        let mut c = Config::default();
        c.live.gamma = "http://127.0.0.1:1/gamma".into();
        c.live.http_attempts = 2;
        let p = paper_config(&c);
        assert_eq!(p.gamma_url, "http://127.0.0.1:1/gamma");
        assert_eq!(p.clob_ws_url, c.live.clob_ws);
        assert_eq!(p.http.attempts, 2);
        assert_eq!(p.fee_rate, c.replay.fee_rate);
    }
}
