//! The live BTC feed: Binance spot over WebSocket, REST backfill, a staleness watchdog, and
//! Coinbase/CoinGecko fallback prices, behind the same [`Feed`] trait as recorded data.
//!
//! [`LiveFeed::connect`] synchronises a [`WallClock`] to Binance's server time
//! (`GET /api/v3/time`), backfills the last `history` closed 1-minute bars
//! (`GET /api/v3/klines`) so indicators are warm at once, and starts a background thread
//! (its own single-threaded Tokio runtime) that:
//!
//! - reads the combined stream `btcusdt@kline_1m/btcusdt@trade` and stores each **closed**
//!   bar (`x: true`) once: a bar received twice is counted as a duplicate, a bar older than
//!   what the session already has, or a price older than the newest one, is counted as
//!   out of order and ignored, and an undecodable frame is counted as malformed and skipped;
//! - runs a watchdog: no valid frame for `stall_timeout` (streams can stall silently with
//!   the socket open) marks the data stale, which the risk gate refuses as `stale_data`
//!   ([`Feed::stale`]), and drops the connection to reconnect;
//! - reconnects with exponential backoff and jitter, and after every reconnect backfills
//!   the gap over REST before the data counts as fresh again;
//! - while Binance is unreachable, polls Coinbase and then CoinGecko for a spot price,
//!   recorded with its [`PriceSource`](super::spot::PriceSource) (shown to people; never
//!   turned into candles).
//!
//! The session asks for bars with [`Feed::deliver_until`]: every stored bar closed by `t`,
//! oldest first, each once. Because the bar that closes at `t` arrives a moment after `t`,
//! delivery waits up to `bar_grace` for it (unless the data is stale anyway), then goes on
//! without it and lets the gate judge the data's age. Nothing whose close time is after
//! `t` is ever delivered. [`FeedMonitor`] shows the feed's health to the status line.

use super::binance::{BinanceMessage, TimeUnit, closed_by, parse_klines, parse_ws_message};
use super::net::{Backoff, Http, HttpCounters, NetError, tls_config};
use super::spot::{SpotPrice, parse_coinbase_spot, parse_coingecko_simple_price};
use super::{CANDLE_SECS, Candle, Feed};
use crate::clock::{TimeSample, WallClock};
use crate::config::LiveConfig;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// The Binance symbol traded.
pub const SYMBOL: &str = "BTCUSDT";

/// Streams of the combined connection: closed and forming 1m bars, and trades.
pub const STREAMS: &str = "btcusdt@kline_1m/btcusdt@trade";

/// Most bars one `GET /api/v3/klines` returns.
const KLINES_LIMIT: usize = 1000;

/// Time requests taken to synchronise the clock (the shortest round trip wins).
const TIME_SAMPLES: usize = 3;

/// Where the feed connects and how patiently, from `[live]`.
#[derive(Clone, Debug)]
pub struct LiveSettings {
    /// Binance REST base URL.
    pub binance_rest: String,
    /// Binance WebSocket base URL.
    pub binance_ws: String,
    /// Coinbase base URL (fallback spot price).
    pub coinbase: String,
    /// CoinGecko base URL (second fallback).
    pub coingecko: String,
    /// Session seconds per real second.
    pub clock_speed: f64,
    /// Closed bars to backfill at start.
    pub history: usize,
    /// Silence after which the data is stale and the stream reconnected (real time).
    pub stall_timeout: Duration,
    /// How long a delivery waits for the bar closing at its time (real time).
    pub bar_grace: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// One HTTP request or WebSocket handshake.
    pub http_timeout: Duration,
    /// Attempts per REST call.
    pub http_attempts: u32,
    /// Fallback polling period while Binance is unreachable.
    pub fallback_poll: Duration,
}

impl LiveSettings {
    /// Settings from `[live]`, backfilling `history` bars at start.
    pub fn from_config(live: &LiveConfig, history: usize) -> Self {
        let ms = Duration::from_millis;
        LiveSettings {
            binance_rest: trim(&live.binance_rest),
            binance_ws: trim(&live.binance_ws),
            coinbase: trim(&live.coinbase),
            coingecko: trim(&live.coingecko),
            clock_speed: live.clock_speed,
            history,
            stall_timeout: ms(live.stall_timeout_ms),
            bar_grace: ms(live.bar_grace_ms),
            reconnect_min: ms(live.reconnect_min_ms),
            reconnect_max: ms(live.reconnect_max_ms),
            http_timeout: ms(live.http_timeout_ms),
            http_attempts: live.http_attempts,
            fallback_poll: ms(live.fallback_poll_ms),
        }
    }

    /// The combined-stream URL.
    pub fn stream_url(&self) -> String {
        format!("{}/stream?streams={STREAMS}", self.binance_ws)
    }

    fn klines_url(&self, start_ms: Option<i64>, limit: usize) -> String {
        let start = start_ms.map_or(String::new(), |s| format!("&startTime={s}"));
        format!(
            "{}/api/v3/klines?symbol={SYMBOL}&interval=1m&limit={limit}{start}",
            self.binance_rest
        )
    }

    fn time_url(&self) -> String {
        format!("{}/api/v3/time", self.binance_rest)
    }

    fn coinbase_url(&self) -> String {
        format!("{}/v2/prices/BTC-USD/spot", self.coinbase)
    }

    fn coingecko_url(&self) -> String {
        format!(
            "{}/api/v3/simple/price?ids=bitcoin&vs_currencies=usd&include_last_updated_at=true",
            self.coingecko
        )
    }
}

fn trim(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// The Binance stream's connection state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// Opening the first connection.
    Connecting,
    /// Connected; frames are arriving.
    Live,
    /// The connection was lost or dropped by the watchdog; trying again.
    Reconnecting,
    /// Connection attempts are failing.
    Down,
}

impl StreamState {
    /// Lower-case word for people.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Connecting => "connecting",
            StreamState::Live => "live",
            StreamState::Reconnecting => "reconnecting",
            StreamState::Down => "down",
        }
    }
}

/// Counters of what the feed received and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// WebSocket connections opened.
    pub connections: u64,
    /// Connections opened after the first (reconnects).
    pub reconnects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Valid data frames (klines and trades).
    pub frames: u64,
    /// Closed bars taken from the stream.
    pub closed_bars: u64,
    /// Frames that could not be decoded (skipped).
    pub malformed: u64,
    /// Closed bars received again (ignored).
    pub duplicates: u64,
    /// Frames older than what the feed already had (ignored).
    pub out_of_order: u64,
    /// Times the watchdog found the stream silent.
    pub stalls: u64,
    /// REST backfills completed.
    pub backfills: u64,
    /// Bars added by backfills.
    pub backfilled: u64,
    /// Backfills that failed (retried later).
    pub backfill_failures: u64,
    /// Fallback prices received.
    pub fallback_prices: u64,
    /// Bars handed to the session.
    pub delivered: u64,
    /// REST requests sent, retries included.
    pub rest_requests: u64,
    /// REST requests that were retries.
    pub rest_retries: u64,
}

/// A snapshot of the feed's health.
#[derive(Clone, Debug)]
pub struct FeedHealth {
    /// Connection state.
    pub state: StreamState,
    /// Why the data cannot be trusted now, if it cannot (what the gate is told).
    pub stale: Option<String>,
    /// The newest price from any source, with its source.
    pub price: Option<SpotPrice>,
    /// Session time the newest price was received, Unix ms.
    pub price_received_ms: Option<i64>,
    /// Real time since the last valid Binance frame.
    pub since_frame: Option<Duration>,
    /// Open time of the newest closed bar held or delivered.
    pub newest_bar: Option<i64>,
    /// The last connection or REST error.
    pub last_error: Option<String>,
    /// Counters.
    pub stats: FeedStats,
}

#[derive(Debug)]
struct Inner {
    /// Closed bars not yet delivered, by open time.
    bars: BTreeMap<i64, Candle>,
    /// Open time of the newest bar handed to the session.
    delivered: Option<i64>,
    state: StreamState,
    last_frame: Option<Instant>,
    /// Newest Binance price and when it was received (session ms).
    binance_price: Option<(SpotPrice, i64)>,
    /// Event time of the newest trade and of the newest forming-bar update (ms): each
    /// stream is ordered on its own.
    newest_event: [Option<i64>; 2],
    /// Newest fallback price and when it was received (session ms).
    fallback_price: Option<(SpotPrice, i64)>,
    /// Bars after this open time may be missing (a reconnect, or a closed bar lost on the
    /// stream) until a backfill has fetched them.
    gap_after: Option<i64>,
    last_error: Option<String>,
    stats: FeedStats,
}

impl Inner {
    fn newest_bar(&self) -> Option<i64> {
        self.bars.keys().next_back().copied().max(self.delivered)
    }

    /// Notes that bars after `after` may be missing.
    fn gap(&mut self, after: Option<i64>) {
        self.gap_after = match (self.gap_after, after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => self.delivered,
        };
    }

    /// Stores a closed bar; `from_stream` tells a WebSocket bar from a backfilled one. A
    /// stream bar that skips minutes after the newest one held marks a gap to backfill.
    fn add_bar(&mut self, c: Candle, from_stream: bool) -> bool {
        if self.delivered.is_some_and(|d| c.open_time <= d) {
            if from_stream {
                self.stats.out_of_order += 1;
            }
            return false;
        }
        if self.bars.contains_key(&c.open_time) {
            if from_stream {
                self.stats.duplicates += 1;
            }
            return false;
        }
        if from_stream
            && let Some(newest) = self.newest_bar()
            && c.open_time > newest + CANDLE_SECS
        {
            self.gap(Some(newest));
        }
        self.bars.insert(c.open_time, c);
        if from_stream {
            self.stats.closed_bars += 1;
        } else {
            self.stats.backfilled += 1;
        }
        true
    }
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    arrived: Condvar,
    settings: LiveSettings,
    clock: WallClock,
    counters: Arc<HttpCounters>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether no valid frame arrived within the stall timeout (or none ever).
    fn silent(&self, i: &Inner) -> bool {
        i.last_frame
            .is_none_or(|t| t.elapsed() > self.settings.stall_timeout)
    }

    fn stale_reason(&self, i: &Inner) -> Option<String> {
        let timeout = self.settings.stall_timeout;
        match i.last_frame.map(|t| t.elapsed()) {
            None => Some(format!(
                "no data from the Binance stream yet ({})",
                i.state.as_str()
            )),
            Some(d) if d > timeout => Some(format!(
                "Binance stream silent for {:.1}s (limit {:.1}s, {})",
                d.as_secs_f64(),
                timeout.as_secs_f64(),
                i.state.as_str()
            )),
            Some(_) if i.gap_after.is_some() => {
                Some("backfilling bars missed by the Binance stream".to_string())
            }
            Some(_) => None,
        }
    }

    fn health(&self) -> FeedHealth {
        let i = self.lock();
        let binance = i.binance_price;
        let price = match (binance, i.fallback_price) {
            (Some(b), Some(f)) => Some(if f.1 > b.1 { f } else { b }),
            (b, f) => b.or(f),
        };
        let mut stats = i.stats.clone();
        stats.rest_requests = self.counters.requests.load(Ordering::Relaxed);
        stats.rest_retries = self.counters.retries.load(Ordering::Relaxed);
        FeedHealth {
            state: i.state,
            stale: self.stale_reason(&i),
            price: price.map(|p| p.0),
            price_received_ms: price.map(|p| p.1),
            since_frame: i.last_frame.map(|t| t.elapsed()),
            newest_bar: i.newest_bar(),
            last_error: i.last_error.clone(),
            stats,
        }
    }

    /// Adds backfilled bars closed by now; returns how many were new.
    fn add_backfill(&self, candles: &[Candle]) -> usize {
        let now = self.clock.now_secs();
        let mut i = self.lock();
        let added = closed_by(candles, now)
            .iter()
            .filter(|c| i.add_bar(**c, false))
            .count();
        i.stats.backfills += 1;
        drop(i);
        self.arrived.notify_all();
        added
    }
}

/// A read-only view of a running feed's health, for the status line. Cheap to clone and
/// `Send`.
#[derive(Clone, Debug)]
pub struct FeedMonitor(Arc<Shared>);

impl FeedMonitor {
    /// The feed's health now.
    pub fn health(&self) -> FeedHealth {
        self.0.health()
    }
}

/// The live feed. Dropping it stops the background thread.
#[derive(Debug)]
pub struct LiveFeed {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The newest bar already waited for (up to `bar_grace`): a session asks for the same
    /// moment more than once (settling the window that just ended, then deciding the next),
    /// and waiting again for a bar that did not come would only make the decision later.
    waited_for: Option<i64>,
}

impl LiveFeed {
    /// Synchronises the session clock to Binance, backfills `settings.history` closed bars,
    /// and starts streaming. Fails (naming the host) when Binance's REST API cannot be
    /// reached; a WebSocket that cannot connect yet is retried in the background. Must not
    /// be called from inside a Tokio runtime.
    pub fn connect(settings: LiveSettings) -> Result<(LiveFeed, WallClock), NetError> {
        let http = Http::new(
            settings.http_timeout,
            settings.http_attempts,
            settings.reconnect_min,
            settings.reconnect_max,
        )?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NetError::Setup(format!("cannot start the feed's runtime: {e}")))?;
        let clock = rt.block_on(sync_clock(&http, &settings))?;
        let server = chrono::DateTime::from_timestamp_millis(clock.now_ms()).map_or_else(
            || clock.now_ms().to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        );
        tracing::info!(
            "clock synchronised to {}: {server} (this machine is {:+.3}s off, round trip {} ms{})",
            super::net::host_of(&settings.binance_rest),
            -clock.offset_ms() as f64 / 1000.0,
            clock.rtt().as_millis(),
            if (clock.speed() - 1.0).abs() > f64::EPSILON {
                format!(", running {}x", clock.speed())
            } else {
                String::new()
            }
        );
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                bars: BTreeMap::new(),
                delivered: None,
                state: StreamState::Connecting,
                last_frame: None,
                binance_price: None,
                newest_event: [None, None],
                fallback_price: None,
                gap_after: None,
                last_error: None,
                stats: FeedStats::default(),
            }),
            arrived: Condvar::new(),
            counters: http.counters(),
            settings,
            clock,
        });
        let candles = rt.block_on(backfill(&http, &shared, None))?;
        tracing::info!(
            "backfilled {candles} closed 1m bars from {}",
            super::net::host_of(&shared.settings.binance_rest)
        );
        let (tx, rx) = watch::channel(false);
        let task_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("updown-feed".into())
            .spawn(move || {
                rt.block_on(run(task_shared, http, rx));
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|e| NetError::Setup(format!("cannot start the feed thread: {e}")))?;
        Ok((
            LiveFeed {
                shared,
                shutdown: tx,
                thread: Some(thread),
                waited_for: None,
            },
            clock,
        ))
    }

    /// Waits up to `limit` for the stream's first valid frame; whether it came. A session
    /// plans its first window after this, so its first decision does not meet a stream that
    /// is still connecting.
    pub fn wait_streaming(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            if self.shared.lock().last_frame.is_some() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A view of the feed's health for other threads.
    pub fn monitor(&self) -> FeedMonitor {
        FeedMonitor(self.shared.clone())
    }

    /// The feed's health now.
    pub fn health(&self) -> FeedHealth {
        self.shared.health()
    }

    /// Copies of the closed bars held and not yet delivered, oldest first (the backfilled
    /// history before the first delivery): for planning, never for decisions.
    pub fn held(&self) -> Vec<Candle> {
        self.shared.lock().bars.values().copied().collect()
    }

    /// The clock the feed judges "closed by now" with.
    pub fn clock(&self) -> WallClock {
        self.shared.clock
    }

    /// Whether the bars from after the last delivered one up to `target` (an open time) are
    /// all held.
    fn ready(i: &Inner, target: i64) -> bool {
        if i.delivered.is_some_and(|d| d >= target) {
            return true;
        }
        let from = i.delivered.map_or_else(
            || i.bars.keys().next().copied().unwrap_or(target),
            |d| d + CANDLE_SECS,
        );
        let mut m = from;
        while m <= target {
            if !i.bars.contains_key(&m) {
                return false;
            }
            m += CANDLE_SECS;
        }
        true
    }
}

impl Drop for LiveFeed {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Feed for LiveFeed {
    fn deliver_until(&mut self, t: i64, sink: &mut dyn FnMut(Candle)) {
        let shared = &self.shared;
        // The newest bar that can have closed by `t` opened a minute before the last minute
        // boundary at or before `t`.
        let target = t.div_euclid(CANDLE_SECS) * CANDLE_SECS - CANDLE_SECS;
        let grace = if self.waited_for.is_some_and(|w| w >= target) {
            Duration::ZERO
        } else {
            shared.settings.bar_grace
        };
        let deadline = Instant::now() + grace;
        let mut i = shared.lock();
        // Waiting for a silent stream is pointless; waiting for a backfill is not.
        while !Self::ready(&i, target) && shared.clock.now_secs() >= t && !shared.silent(&i) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            i = shared
                .arrived
                .wait_timeout(i, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if shared.clock.now_secs() >= t {
            self.waited_for = Some(target);
        }
        // While a backfill is pending, bars after a hole are held back: delivering them would
        // move `delivered` past the hole, and the backfilled bars, older by then, could never
        // reach the indicators. The decision meanwhile sees the feed stale (the gap) and is
        // refused. Once the backfill is done, a hole still there is one Binance does not have
        // either, and the bars after it are delivered.
        let hold_at_hole = i.gap_after.is_some();
        let mut expected = i.delivered.map(|d| d + CANDLE_SECS);
        let due: Vec<i64> = i
            .bars
            .range(..=target)
            .map(|(k, _)| *k)
            .filter(|k| k + CANDLE_SECS <= t)
            .take_while(|k| {
                let contiguous = expected.is_none_or(|e| *k == e);
                expected = Some(k + CANDLE_SECS);
                contiguous || !hold_at_hole
            })
            .collect();
        for k in due {
            if let Some(c) = i.bars.remove(&k) {
                i.delivered = Some(k);
                i.stats.delivered += 1;
                sink(c);
            }
        }
    }

    fn covers(&self, _start: i64, _end: i64) -> bool {
        // Live data cannot know the future; bars still missing when the window settles are
        // the venue's business (it waits for them or for Polymarket's resolution).
        true
    }

    fn source(&self) -> String {
        format!("{} (live)", self.shared.settings.stream_url())
    }

    fn stale(&self) -> Option<String> {
        let i = self.shared.lock();
        self.shared.stale_reason(&i)
    }
}

/// Reads Binance's clock [`TIME_SAMPLES`] times and keeps the shortest round trip.
async fn sync_clock(http: &Http, settings: &LiveSettings) -> Result<WallClock, NetError> {
    let url = settings.time_url();
    let mut samples = Vec::with_capacity(TIME_SAMPLES);
    for _ in 0..TIME_SAMPLES {
        let (body, sent) = http.get_timed(&url).await?;
        let received = Instant::now();
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| NetError::decode(&url, format!("not JSON ({e})")))?;
        let server_ms = v
            .get("serverTime")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| NetError::decode(&url, "no integer `serverTime`"))?;
        samples.push(TimeSample {
            server_ms,
            sent,
            received,
        });
    }
    WallClock::synced(&samples, settings.clock_speed)
        .ok_or_else(|| NetError::decode(&url, "no time sample"))
}

/// Fetches the closed bars after `after` (an open time), or the last `history` bars when
/// `None`, page by page, and stores them. Returns how many were new.
async fn backfill(http: &Http, shared: &Shared, after: Option<i64>) -> Result<usize, NetError> {
    let now = shared.clock.now_secs();
    let newest_closed_open = now.div_euclid(CANDLE_SECS) * CANDLE_SECS - CANDLE_SECS;
    let mut from = match after {
        Some(a) => a + CANDLE_SECS,
        None => newest_closed_open - (shared.settings.history as i64 - 1) * CANDLE_SECS,
    };
    let mut all = Vec::new();
    while from <= newest_closed_open {
        let url = shared.settings.klines_url(Some(from * 1000), KLINES_LIMIT);
        let body = http.get(&url).await?;
        let candles = parse_klines(&body).map_err(|e| NetError::decode(&url, e.to_string()))?;
        let Some(last) = candles.last() else { break };
        let next = last.open_time + CANDLE_SECS;
        let full_page = candles.len() >= KLINES_LIMIT;
        all.extend(candles);
        if !full_page || next <= from {
            break;
        }
        from = next;
    }
    Ok(shared.add_backfill(&all))
}

/// The background work: the stream with its watchdog and reconnects, and the fallback
/// poller, until shutdown.
async fn run(shared: Arc<Shared>, http: Http, shutdown: watch::Receiver<bool>) {
    let mut stop = shutdown.clone();
    tokio::select! {
        _ = stream(shared.clone(), http.clone(), shutdown.clone()) => {}
        _ = fallback(shared, http, shutdown) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Why a connection ended.
enum Ended {
    Stalled,
    Closed(String),
    Shutdown,
}

async fn stream(shared: Arc<Shared>, http: Http, mut shutdown: watch::Receiver<bool>) {
    let s = &shared.settings;
    let url = s.stream_url();
    let host = super::net::host_of(&url);
    let tls = match tls_config() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("Binance stream disabled: {e}");
            return;
        }
    };
    let mut backoff = Backoff::new(s.reconnect_min, s.reconnect_max);
    let mut first = true;
    loop {
        let connector = tokio_tungstenite::Connector::Rustls(tls.clone());
        let attempt = tokio::time::timeout(
            s.http_timeout,
            tokio_tungstenite::connect_async_tls_with_config(
                url.as_str(),
                None,
                true,
                Some(connector),
            ),
        );
        let result = tokio::select! {
            r = attempt => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match result {
            Ok(Ok((ws, _))) => {
                {
                    let mut i = shared.lock();
                    i.stats.connections += 1;
                    if !first {
                        i.stats.reconnects += 1;
                        let newest = i.newest_bar();
                        i.gap(newest);
                    }
                    i.state = StreamState::Live;
                }
                if !first {
                    tracing::info!("Binance stream reconnected ({host})");
                }
                first = false;
                let (ended, got_data) = read(&shared, &http, ws, &mut shutdown).await;
                if got_data {
                    backoff.reset();
                }
                let mut i = shared.lock();
                i.state = StreamState::Reconnecting;
                match ended {
                    Ended::Shutdown => return,
                    Ended::Stalled => {
                        i.stats.stalls += 1;
                        i.last_error = Some("stream stalled".into());
                        drop(i);
                        tracing::warn!(
                            "Binance stream silent for over {} ms with the socket open: data marked stale, reconnecting",
                            s.stall_timeout.as_millis()
                        );
                    }
                    Ended::Closed(why) => {
                        i.last_error = Some(why.clone());
                        drop(i);
                        tracing::warn!("Binance stream closed ({why}); reconnecting");
                    }
                }
            }
            Ok(Err(e)) => {
                let mut i = shared.lock();
                i.stats.connect_failures += 1;
                i.state = StreamState::Down;
                i.last_error = Some(format!("cannot connect to {host}: {e}"));
                drop(i);
                let attempt = backoff.failures() + 1;
                if attempt == 1 || attempt.is_multiple_of(10) {
                    tracing::warn!(
                        "cannot connect to the Binance stream at {host}: {e} (attempt {attempt}; retrying with backoff)"
                    );
                } else {
                    tracing::debug!("cannot connect to {host}: {e} (attempt {attempt})");
                }
            }
            Err(_) => {
                let mut i = shared.lock();
                i.stats.connect_failures += 1;
                i.state = StreamState::Down;
                i.last_error = Some(format!("connecting to {host} timed out"));
                drop(i);
                tracing::warn!(
                    "connecting to the Binance stream at {host} timed out (attempt {})",
                    backoff.failures() + 1
                );
            }
        }
        // After a connection that delivered data the backoff starts again from its
        // shortest delay (a server shutdown or the 24 h limit is retried quickly); a
        // connection that never delivered keeps backing off.
        let d = backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads one connection until it ends; also backfills the gap a reconnect left. Returns why
/// it ended and whether any valid frame arrived.
async fn read(
    shared: &Arc<Shared>,
    http: &Http,
    mut ws: Ws,
    shutdown: &mut watch::Receiver<bool>,
) -> (Ended, bool) {
    let s = &shared.settings;
    let connected = Instant::now();
    let mut got_data = false;
    let mut malformed_logged = false;
    let check_every =
        (s.stall_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut tick = tokio::time::interval(check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gap_fill: Option<tokio::task::JoinHandle<Result<(i64, usize), NetError>>> = None;
    let mut next_gap_try = Instant::now();
    let ended = loop {
        // Start (or retry) the backfill of a gap (after a reconnect, or a lost bar).
        let gap = shared.lock().gap_after;
        if gap_fill.is_none()
            && let Some(after) = gap
            && Instant::now() >= next_gap_try
        {
            let (sh, h) = (shared.clone(), http.clone());
            gap_fill = Some(tokio::spawn(async move {
                backfill(&h, &sh, Some(after)).await.map(|n| (after, n))
            }));
        }
        if gap_fill.as_ref().is_some_and(|j| j.is_finished())
            && let Some(job) = gap_fill.take()
        {
            match gap_fill_result(job).await {
                Ok((after, n)) => {
                    let mut i = shared.lock();
                    // A gap noted while this backfill ran is filled by the next one.
                    if i.gap_after == Some(after) {
                        i.gap_after = None;
                    }
                    drop(i);
                    shared.arrived.notify_all();
                    tracing::info!("backfilled {n} bars the stream missed");
                }
                Err(e) => {
                    let mut i = shared.lock();
                    i.stats.backfill_failures += 1;
                    i.last_error = Some(e.to_string());
                    drop(i);
                    next_gap_try = Instant::now() + s.reconnect_min;
                    tracing::warn!("backfill after reconnect failed: {e}; retrying");
                }
            }
        }
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    match handle_text(shared, text.as_str()) {
                        Frame::Data => got_data = true,
                        Frame::Malformed(e) => {
                            if !malformed_logged {
                                malformed_logged = true;
                                tracing::warn!("skipping an undecodable Binance frame: {e}");
                            } else {
                                tracing::debug!("skipping an undecodable Binance frame: {e}");
                            }
                        }
                        Frame::Shutdown => break Ended::Closed("server shutdown notice".into()),
                        Frame::Other => {}
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    break Ended::Closed(frame.map_or_else(
                        || "closed by the server".to_string(),
                        |f| format!("closed by the server: {} {}", f.code, f.reason),
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Ended::Closed(format!("connection error: {e}")),
                None => break Ended::Closed("connection ended".into()),
            },
            _ = tick.tick() => {
                let last = shared.lock().last_frame;
                let since = last.filter(|t| *t >= connected).unwrap_or(connected);
                if since.elapsed() > s.stall_timeout {
                    break Ended::Stalled;
                }
            }
            _ = shutdown.wait_for(|s| *s) => break Ended::Shutdown,
        }
    };
    if let Some(job) = gap_fill {
        job.abort();
    }
    // Closing politely is best effort; a stalled peer may never answer.
    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
    (ended, got_data)
}

async fn gap_fill_result(
    job: tokio::task::JoinHandle<Result<(i64, usize), NetError>>,
) -> Result<(i64, usize), NetError> {
    job.await
        .unwrap_or_else(|e| Err(NetError::Setup(format!("backfill task failed: {e}"))))
}

/// What a text frame was.
enum Frame {
    Data,
    Malformed(String),
    Shutdown,
    Other,
}

fn handle_text(shared: &Shared, text: &str) -> Frame {
    let frame = match parse_ws_message(text, TimeUnit::Millisecond) {
        Ok(f) => f,
        Err(e) => {
            shared.lock().stats.malformed += 1;
            return Frame::Malformed(e.to_string());
        }
    };
    let now_ms = shared.clock.now_ms();
    let mut i = shared.lock();
    match frame.message {
        BinanceMessage::Kline(k) if k.symbol.eq_ignore_ascii_case(SYMBOL) => {
            i.stats.frames += 1;
            i.last_frame = Some(Instant::now());
            if k.closed {
                let added = i.add_bar(k.candle, true);
                drop(i);
                if added {
                    shared.arrived.notify_all();
                }
            } else {
                let p = SpotPrice::from(&k);
                update_price(&mut i, KLINE, p, k.event_time_ms, now_ms);
            }
            Frame::Data
        }
        BinanceMessage::Trade(t) if t.symbol.eq_ignore_ascii_case(SYMBOL) => {
            i.stats.frames += 1;
            i.last_frame = Some(Instant::now());
            update_price(&mut i, TRADE, SpotPrice::from(&t), t.time_ms, now_ms);
            Frame::Data
        }
        BinanceMessage::ServerShutdown { .. } => Frame::Shutdown,
        BinanceMessage::Error { code, msg, .. } => {
            drop(i);
            tracing::warn!("Binance stream error {code}: {msg}");
            Frame::Other
        }
        _ => Frame::Other,
    }
}

/// Keeps the newest Binance price; a trade older than the newest trade (or an update older
/// than the newest update) is out of order.
fn update_price(i: &mut Inner, kind: usize, p: SpotPrice, event_ms: i64, now_ms: i64) {
    match i.newest_event[kind] {
        Some(newest) if event_ms < newest => i.stats.out_of_order += 1,
        _ => {
            i.newest_event[kind] = Some(event_ms);
            i.binance_price = Some((p, now_ms));
        }
    }
}

/// Index of the trade stream in `Inner::newest_event`.
const TRADE: usize = 0;
/// Index of the forming-bar updates in `Inner::newest_event`.
const KLINE: usize = 1;

/// Polls Coinbase, then CoinGecko, while the Binance data is stale.
async fn fallback(shared: Arc<Shared>, http: Http, mut shutdown: watch::Receiver<bool>) {
    let s = &shared.settings;
    // One attempt per fallback request: the next poll is the retry.
    let http = match Http::new(s.http_timeout, 1, s.reconnect_min, s.reconnect_max) {
        Ok(h) => h,
        Err(_) => http,
    };
    let mut using: Option<&'static str> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(s.fallback_poll) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        // Unreachable or silent: no valid Binance frame within the stall timeout.
        let down = shared.silent(&shared.lock());
        if !down {
            if using.take().is_some() {
                tracing::info!("Binance data is back; fallback prices no longer needed");
            }
            continue;
        }
        let mut got = None;
        let mut errors = Vec::new();
        for (url, parse) in [
            (
                s.coinbase_url(),
                parse_coinbase_spot as fn(&str) -> Result<SpotPrice, super::spot::SpotError>,
            ),
            (s.coingecko_url(), parse_coingecko_simple_price),
        ] {
            match http.get(&url).await {
                Ok(body) => match parse(&body) {
                    Ok(p) => {
                        got = Some(p);
                        break;
                    }
                    Err(e) => errors.push(format!("{}: {e}", super::net::host_of(&url))),
                },
                Err(e) => errors.push(e.to_string()),
            }
        }
        match got {
            Some(p) => {
                let now_ms = shared.clock.now_ms();
                let mut i = shared.lock();
                i.fallback_price = Some((p, now_ms));
                i.stats.fallback_prices += 1;
                drop(i);
                if using != Some(p.source.as_str()) {
                    using = Some(p.source.as_str());
                    tracing::warn!(
                        "no Binance data: fallback spot price from {} ({:.2}), shown but never traded on",
                        p.source.as_str(),
                        p.price
                    );
                }
            }
            None => {
                tracing::warn!("no fallback price either: {}", errors.join("; "));
            }
        }
    }
}
