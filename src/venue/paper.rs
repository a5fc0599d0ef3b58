//! The paper venue: live Polymarket markets and order books, simulated fills that walk the
//! real asks, Polymarket's fee, and settlement from the market's real resolution.
//!
//! Owns discovery (Gamma, cached per window), the books (kept live by a
//! [`MarketStream`] on a Tokio runtime the venue owns), fills and settlement. The session
//! loop is synchronous, so each [`Venue`] method blocks on the runtime with a timeout, and
//! `quote` reads books that a background task maintains: once a window's market is tracked
//! (the previous quote prefetches the next window's), a quote does no network I/O.
//!
//! - **Quote**: the market of `btc-updown-<N>m-<T>` must exist on Gamma, be for exactly
//!   this window, be tradable (`active`, not `closed`, `acceptingOrders`,
//!   `enableOrderBook`) and state a resolution rule this bot models; both books must be
//!   clean, confirmed within [`PaperConfig::max_book_age`] and not crossed. Otherwise the
//!   quote fails with the reason (the session journals it as `no_quote` with the text).
//!   The fee rate is the market's `feeSchedule.rate` when Gamma publishes one, else
//!   [`PaperConfig::fee_rate`]; tick is the live book's; minimum size is Gamma's.
//! - **Fill**: a marketable buy of `stake.usd()` walks the live asks at execution time
//!   ([`OrderBook::walk_asks`]) up to the approved price (`stake.price()`, rounded down to
//!   the tick, as a real limit must be). Nothing at or under the limit → refused; fewer
//!   shares than the market's minimum after the walk → refused (never sent). The fee is
//!   charged per level crossed (each maker fill is one trade to Polymarket):
//!   `shares_i × rate × p_i × (1 − p_i)` (or the schedule's exponent), each rounded to 5
//!   decimals, taken in shares as Polymarket does on a buy (`fee_i / p_i` shares). The fill
//!   records the USD actually spent (`Σ p_i × shares_i`, may be less than the stake on a thin
//!   book), the average price (6 decimals), the shares kept (rounded down to 6 decimals) and
//!   the fee.
//! - **Settle**: the market's own resolution — `market_resolved` on the socket, or Gamma
//!   `closed` with `outcomePrices` one `1` and one `0` — as [`SettledBy::Venue`]. Until
//!   then `resolve` answers `Ok(None)`: pending, ask again ([`Venue::pending_resolution`]).
//!   Only after [`PaperConfig::resolution_timeout_secs`] past the window's end does it
//!   settle from price data (close of the window's last 1m candle ≥ open of its first),
//!   recorded as [`SettledBy::PriceDataFallback`]; with no candles either, it gives up
//!   with [`VenueError::NoOutcome`] and the position is voided, never guessed.

use super::polymarket::client::{
    ClobRestClient, GammaClient, Http, RetryPolicy, join_url, short_token,
};
use super::polymarket::gamma::{MarketInfo, MarketResolution, ResolutionRule};
use super::polymarket::stream::{BookProblem, MarketStream, StreamConfig, StreamStats};
use super::polymarket::{BookError, OrderBook, Walk};
use super::{
    Fill, PendingResolution, Quote, Resolution, SettledBy, Venue, VenueError, fee,
    resolve_from_candles,
};
use crate::domain::{Side, Window};
use crate::feed::Candle;
use crate::risk::Stake;
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use super::polymarket::stream::{NowMs, system_now};

/// Decimal places of share amounts and USDC (6-decimal fixed point on chain).
const DP: u32 = 6;

/// Settings of the paper venue. [`PaperConfig::default`] points at Polymarket's public
/// hosts; [`PaperConfig::with_urls`] at any other (the loopback venue in tests).
#[derive(Clone, Debug, PartialEq)]
pub struct PaperConfig {
    /// Gamma API base, e.g. `https://gamma-api.polymarket.com` (`/events` is appended).
    pub gamma_url: String,
    /// CLOB REST base, e.g. `https://clob.polymarket.com` (`/book` is appended).
    pub clob_rest_url: String,
    /// CLOB WebSocket base, e.g. `wss://ws-subscriptions-clob.polymarket.com`
    /// (`/ws/market` is appended).
    pub clob_ws_url: String,
    /// Fee rate used when Gamma publishes no `feeSchedule` for the market.
    pub fee_rate: Decimal,
    /// A book not confirmed for longer than this is stale and never quoted (default 10 s).
    pub max_book_age: Duration,
    /// How long `quote`/`execute` wait for a book that is on its way (first snapshot,
    /// resync in progress) before refusing (default 5 s).
    pub book_wait: Duration,
    /// Depth near the top, in ticks from the best price, reported as `ask_depth`/`bid_depth`
    /// (0 = the best level only; default 5).
    pub depth_ticks: u32,
    /// Seconds after a window's end before settling from price data when the venue has
    /// published no resolution (default 900).
    pub resolution_timeout_secs: i64,
    /// Least time between two Gamma polls for one market's resolution (default 5 s). Polls
    /// run in the background; `resolve` never waits for one.
    pub resolution_poll: Duration,
    /// Longest a quote or a fill waits on Gamma discovery, retries included (default 20 s);
    /// a window whose market cannot be found in that time is skipped with the reason.
    pub call_timeout: Duration,
    /// Whether quoting a window also discovers and subscribes to the next one, so its
    /// quote finds a live book (default true).
    pub prefetch_next: bool,
    /// HTTP timeouts and retries (Gamma and CLOB REST).
    pub http: RetryPolicy,
    /// Market-channel timing (heartbeat, reconnects, refreshes).
    pub stream: StreamConfig,
}

impl Default for PaperConfig {
    fn default() -> Self {
        PaperConfig {
            gamma_url: "https://gamma-api.polymarket.com".into(),
            clob_rest_url: "https://clob.polymarket.com".into(),
            clob_ws_url: "wss://ws-subscriptions-clob.polymarket.com".into(),
            fee_rate: Decimal::new(72, 3),
            max_book_age: Duration::from_secs(10),
            book_wait: Duration::from_secs(5),
            depth_ticks: 5,
            resolution_timeout_secs: 900,
            resolution_poll: Duration::from_secs(5),
            call_timeout: Duration::from_secs(20),
            prefetch_next: true,
            http: RetryPolicy::default(),
            stream: StreamConfig::default(),
        }
    }
}

impl PaperConfig {
    /// The defaults with these three base URLs.
    pub fn with_urls(
        gamma_url: impl Into<String>,
        clob_rest_url: impl Into<String>,
        clob_ws_url: impl Into<String>,
    ) -> Self {
        PaperConfig {
            gamma_url: gamma_url.into(),
            clob_rest_url: clob_rest_url.into(),
            clob_ws_url: clob_ws_url.into(),
            ..PaperConfig::default()
        }
    }

    fn check(&self) -> Result<(), String> {
        for (name, url, schemes) in [
            ("gamma_url", &self.gamma_url, ["http://", "https://"]),
            (
                "clob_rest_url",
                &self.clob_rest_url,
                ["http://", "https://"],
            ),
            ("clob_ws_url", &self.clob_ws_url, ["ws://", "wss://"]),
        ] {
            if !schemes.iter().any(|s| url.starts_with(s)) {
                return Err(format!(
                    "{name} {url:?} must start with {} or {}",
                    schemes[0], schemes[1]
                ));
            }
        }
        if self.fee_rate < Decimal::ZERO || self.fee_rate > Decimal::ONE {
            return Err(format!("fee_rate {} is not within 0..=1", self.fee_rate));
        }
        if self.http.attempts == 0 {
            return Err("http.attempts must be at least 1".into());
        }
        if self.max_book_age.is_zero()
            || self.http.request_timeout.is_zero()
            || self.call_timeout.is_zero()
        {
            return Err(
                "max_book_age, call_timeout and http.request_timeout must be positive".into(),
            );
        }
        if self.resolution_timeout_secs < 0 {
            return Err("resolution_timeout_secs must not be negative".into());
        }
        Ok(())
    }
}

/// Counters of what the venue did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaperStats {
    /// The market stream's counters.
    pub stream: StreamStats,
    /// Gamma discovery calls made (each may retry inside).
    pub gamma_lookups: u64,
    /// Fills made.
    pub fills: u64,
    /// Orders refused (no liquidity under the limit, below minimum, book not ready).
    pub refusals: u64,
    /// Windows settled from a `market_resolved` event.
    pub settled_by_socket: u64,
    /// Windows settled from Gamma's `closed` + `outcomePrices`.
    pub settled_by_gamma: u64,
    /// Windows settled from price data after the timeout.
    pub settled_by_fallback: u64,
}

/// The paper venue. Dropping it stops its runtime and closes its connections.
pub struct PaperVenue {
    cfg: PaperConfig,
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    gamma: GammaClient,
    stream: Arc<MarketStream>,
    /// The latest Gamma answer per slug.
    markets: Arc<Mutex<HashMap<String, MarketInfo>>>,
    prefetched: HashSet<String>,
    gamma_polled: HashMap<String, Instant>,
    /// Slugs with a background Gamma poll under way.
    polling: Arc<Mutex<HashSet<String>>>,
    now_ms: NowMs,
    stats: PaperStats,
    gamma_lookups: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for PaperVenue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaperVenue")
            .field("cfg", &self.cfg)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unavailable(e: impl std::fmt::Display) -> VenueError {
    VenueError::Unavailable(e.to_string())
}

impl PaperVenue {
    /// A venue on the wall clock. Starts its runtime; connects nothing until the first
    /// quote (or [`PaperVenue::prepare`]).
    pub fn new(cfg: PaperConfig) -> Result<Self, VenueError> {
        Self::with_clock(cfg, system_now())
    }

    /// A venue whose notion of "now" (for the resolution timeout and which markets are
    /// live) is `now_ms`, e.g. a test venue's virtual clock. Book ages are always measured
    /// on the local monotonic clock.
    pub fn with_clock(cfg: PaperConfig, now_ms: NowMs) -> Result<Self, VenueError> {
        cfg.check()
            .map_err(|e| unavailable(format!("paper venue configuration: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("updown-paper")
            .enable_all()
            .build()
            .map_err(|e| unavailable(format!("cannot start the paper venue's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let http = Http::new(cfg.http.clone()).map_err(unavailable)?;
        let gamma = GammaClient::new(http.clone(), cfg.gamma_url.clone());
        let rest = ClobRestClient::new(http, cfg.clob_rest_url.clone());
        let stream = MarketStream::spawn(
            &handle,
            join_url(&cfg.clob_ws_url, "ws/market"),
            cfg.stream.clone(),
            rest,
            now_ms.clone(),
        );
        Ok(PaperVenue {
            cfg,
            runtime: Some(runtime),
            handle,
            gamma,
            stream: Arc::new(stream),
            markets: Arc::new(Mutex::new(HashMap::new())),
            prefetched: HashSet::new(),
            gamma_polled: HashMap::new(),
            polling: Arc::new(Mutex::new(HashSet::new())),
            now_ms,
            stats: PaperStats::default(),
            gamma_lookups: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PaperConfig {
        &self.cfg
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PaperStats {
        PaperStats {
            stream: self.stream.stats(),
            gamma_lookups: self
                .gamma_lookups
                .load(std::sync::atomic::Ordering::Relaxed),
            ..self.stats.clone()
        }
    }

    /// Runs `fut` on the venue's runtime and waits for it at most `timeout`. Works from
    /// any thread, inside or outside another runtime.
    fn block<T: Send + 'static>(
        &self,
        what: &str,
        fut: impl Future<Output = T> + Send + 'static,
        timeout: Duration,
    ) -> Result<T, VenueError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let task = self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        match rx.recv_timeout(timeout) {
            Ok(v) => Ok(v),
            Err(_) => {
                task.abort();
                Err(unavailable(format!("{what}: no answer within {timeout:?}")))
            }
        }
    }

    /// Asks Gamma for the market of `slug` now (no cache), and caches the answer.
    fn fetch_market(&mut self, slug: &str) -> Result<Option<MarketInfo>, VenueError> {
        let gamma = self.gamma.clone();
        let owned = slug.to_string();
        self.gamma_lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let answer = self.block(
            &format!("market discovery for {slug}"),
            async move { gamma.market(&owned).await },
            self.cfg.call_timeout,
        )?;
        match answer {
            Ok(Some(m)) => {
                lock(&self.markets).insert(slug.to_string(), m.clone());
                Ok(Some(m))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(unavailable(format!(
                "market discovery for {slug} failed: {e}"
            ))),
        }
    }

    /// The market of `window` from Gamma: `btc-updown-<N>m-<T>`, tokens mapped to Up/Down
    /// by index, checked to be this window's. Uses the cached answer when it was tradable,
    /// asks Gamma again otherwise. Fails with the reason when the market is missing.
    pub fn market(&mut self, window: &Window) -> Result<MarketInfo, VenueError> {
        let cached = lock(&self.markets).get(&window.slug).cloned();
        let info = match cached {
            Some(m) if m.is_tradeable() => m,
            _ => self.fetch_market(&window.slug)?.ok_or_else(|| {
                unavailable(format!(
                    "market {} is not listed on Gamma ({}: /events?slug= and /markets?slug= \
                     list nothing): not created yet, or no such market",
                    window.slug, self.cfg.gamma_url
                ))
            })?,
        };
        check_window(&info, window)?;
        Ok(info)
    }

    /// Discovers `window`'s market and starts maintaining its books, so a later quote is
    /// instant. Fails like [`Venue::quote`] when the market is missing or not tradable.
    pub fn prepare(&mut self, window: &Window) -> Result<MarketInfo, VenueError> {
        let info = self.market(window)?;
        check_tradeable(&info)?;
        self.stream
            .track(&info)
            .map_err(|e| unavailable(format!("{}: {e}", info.slug)))?;
        Ok(info)
    }

    /// Discovers the window after `window` in the background and tracks its books.
    fn prefetch_next(&mut self, window: &Window) {
        let len = window.end - window.start;
        let next = Window::new(window.end, len, window.index.saturating_add(1));
        if !self.prefetched.insert(next.slug.clone())
            || lock(&self.markets).contains_key(&next.slug)
        {
            return;
        }
        let (gamma, stream, markets) = (
            self.gamma.clone(),
            self.stream.clone(),
            self.markets.clone(),
        );
        let lookups = self.gamma_lookups.clone();
        self.handle.spawn(async move {
            lookups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match gamma.market(&next.slug).await {
                Ok(Some(m)) if check_window(&m, &next).is_ok() => {
                    lock(&markets).insert(next.slug.clone(), m.clone());
                    if m.is_tradeable()
                        && let Err(e) = stream.track(&m)
                    {
                        tracing::warn!(target: "updown::polymarket", "prefetch {}: {e}", next.slug);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(target: "updown::polymarket", "prefetch {}: {e}", next.slug)
                }
            }
        });
    }

    /// The book of `token` once it may be quoted, waiting up to [`PaperConfig::book_wait`]
    /// while a snapshot is on its way.
    fn ready_book(&self, token: &str) -> Result<OrderBook, BookProblem> {
        let deadline = Instant::now() + self.cfg.book_wait;
        loop {
            match self.stream.ready_book(token, self.cfg.max_book_age) {
                Ok(b) => return Ok(b),
                Err(p) if p.is_transient() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(p) => {
                    if matches!(p, BookProblem::Book(BookError::Crossed { .. })) {
                        self.stream.request_resync(token);
                    }
                    return Err(p);
                }
            }
        }
    }

    /// A copy of the live book of `window`'s `side`, if its market is tracked (for
    /// inspection; quotes and fills read the same book).
    pub fn live_book(&self, window: &Window, side: Side) -> Option<OrderBook> {
        let info = lock(&self.markets).get(&window.slug).cloned()?;
        self.stream.book(info.token(side)).map(|t| t.book)
    }

    /// The fee rate of `info`: its schedule's rate when Gamma publishes one, else the
    /// configured rate.
    pub fn fee_rate(&self, info: &MarketInfo) -> Decimal {
        info.fee_schedule
            .as_ref()
            .map_or(self.cfg.fee_rate, |f| f.rate)
    }

    /// Fee in USD and in shares for the levels of `walk` (see the module docs).
    fn fees(&self, info: &MarketInfo, walk: &Walk) -> Result<(Decimal, Decimal), VenueError> {
        let mut usd = Decimal::ZERO;
        let mut shares = Decimal::ZERO;
        for l in &walk.levels {
            let f = match &info.fee_schedule {
                Some(s) => s.fee(l.size, l.price).ok_or_else(|| {
                    VenueError::Rejected(format!("fee overflow at {} × {}", l.size, l.price))
                })?,
                None => fee(l.size, l.price, self.cfg.fee_rate),
            };
            usd += f;
            shares += f / l.price;
        }
        Ok((usd, shares))
    }

    /// Starts a background Gamma poll of `window`'s market unless one is under way or one
    /// started within [`PaperConfig::resolution_poll`]; its answer lands in the market cache.
    fn poll_gamma(&mut self, window: &Window) {
        let due = self
            .gamma_polled
            .get(&window.slug)
            .is_none_or(|t| t.elapsed() >= self.cfg.resolution_poll);
        if !due || !lock(&self.polling).insert(window.slug.clone()) {
            return;
        }
        self.gamma_polled
            .insert(window.slug.clone(), Instant::now());
        let (gamma, markets, polling) = (
            self.gamma.clone(),
            self.markets.clone(),
            self.polling.clone(),
        );
        let lookups = self.gamma_lookups.clone();
        let window = window.clone();
        self.handle.spawn(async move {
            lookups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match gamma.market(&window.slug).await {
                Ok(Some(m)) if check_window(&m, &window).is_ok() => {
                    lock(&markets).insert(window.slug.clone(), m);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    target: "updown::polymarket",
                    "{}: resolution poll: {e}",
                    window.slug
                ),
            }
            lock(&polling).remove(&window.slug);
        });
    }

    fn settled(&mut self, info: Option<&MarketInfo>, outcome: Side, by: SettledBy) -> Resolution {
        if by == SettledBy::PriceDataFallback {
            self.stats.settled_by_fallback += 1;
        }
        if let Some(info) = info {
            self.stream.untrack(info);
        }
        Resolution {
            outcome,
            settled_by: by,
        }
    }
}

impl Drop for PaperVenue {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Never blocks, so dropping the venue is safe anywhere (even inside a runtime).
            rt.shutdown_background();
        }
    }
}

/// The market must be for exactly `window`.
fn check_window(info: &MarketInfo, window: &Window) -> Result<(), VenueError> {
    if info.slug != window.slug
        || info.window_start() != Some(window.start)
        || info.end_time != window.end
    {
        return Err(unavailable(format!(
            "Gamma's market {} covers {:?}..{}, not the window {}..{} of {}",
            info.slug,
            info.window_start(),
            info.end_time,
            window.start,
            window.end,
            window.slug
        )));
    }
    Ok(())
}

/// The market must take orders now and state a rule this bot models.
fn check_tradeable(info: &MarketInfo) -> Result<(), VenueError> {
    if !info.is_tradeable() {
        return Err(unavailable(format!(
            "market {} is not tradable now (active={}, closed={}, acceptingOrders={}, \
             enableOrderBook={})",
            info.slug, info.active, info.closed, info.accepting_orders, info.enable_order_book
        )));
    }
    if info.rule == ResolutionRule::Unknown {
        let text: String = info.description.chars().take(160).collect();
        return Err(unavailable(format!(
            "market {}: its resolution text is not a rule this bot models: {text:?}",
            info.slug
        )));
    }
    Ok(())
}

impl Venue for PaperVenue {
    fn quote(&mut self, window: &Window) -> Result<Quote, VenueError> {
        let info = self.prepare(window)?;
        if self.cfg.prefetch_next {
            self.prefetch_next(window);
        }
        let books = [Side::Up, Side::Down].map(|side| {
            self.ready_book(info.token(side))
                .map_err(|p| unavailable(format!("{} {side}: {p}", info.slug)))
        });
        let [up, down] = books;
        let (up, down) = (up?, down?);
        let top = |b: &OrderBook, side: Side| {
            b.top(self.cfg.depth_ticks)
                .map_err(|e| unavailable(format!("{} {side}: {e}", info.slug)))
        };
        Ok(Quote {
            up: top(&up, Side::Up)?,
            down: top(&down, Side::Down)?,
            fee_rate: self.fee_rate(&info),
            tick_size: up.tick_size().max(down.tick_size()),
            min_order_shares: info.min_order_size,
        })
    }

    fn execute(
        &mut self,
        window: &Window,
        stake: &Stake,
        _quote: &Quote,
    ) -> Result<Fill, VenueError> {
        let result = self.fill(window, stake);
        match &result {
            Ok(_) => self.stats.fills += 1,
            Err(_) => self.stats.refusals += 1,
        }
        result
    }

    fn resolve(
        &mut self,
        window: &Window,
        history: &[Candle],
    ) -> Result<Option<Resolution>, VenueError> {
        // Gamma is asked in the background; this call only reads what has arrived.
        self.poll_gamma(window);
        let info = lock(&self.markets).get(&window.slug).cloned();
        if let Some(m) = &info {
            if let Some(ev) = self.stream.resolution(&m.condition_id) {
                match ev.winning_side(m) {
                    Ok(side) => {
                        self.stats.settled_by_socket += 1;
                        return Ok(Some(self.settled(Some(m), side, SettledBy::Venue)));
                    }
                    Err(e) => tracing::warn!(
                        target: "updown::polymarket",
                        "{}: market_resolved ignored: {e}",
                        window.slug
                    ),
                }
            }
            if let MarketResolution::Resolved(side) = m.resolution {
                self.stats.settled_by_gamma += 1;
                return Ok(Some(self.settled(Some(m), side, SettledBy::Venue)));
            }
            // Subscribe to hear `market_resolved` (after a restart nothing is tracked).
            if !m.closed && !self.stream.is_tracked(&m.up_token) {
                let _ = self.stream.track(m);
            }
        }
        let now_s = (self.now_ms)().div_euclid(1000);
        let deadline = window.end.saturating_add(self.cfg.resolution_timeout_secs);
        if now_s < deadline {
            return Ok(None);
        }
        match resolve_from_candles(window, history) {
            Some(side) => {
                tracing::warn!(
                    target: "updown::polymarket",
                    "{}: no resolution from Polymarket {} s after the window; settled {side} from price data",
                    window.slug,
                    self.cfg.resolution_timeout_secs
                );
                Ok(Some(self.settled(
                    info.as_ref(),
                    side,
                    SettledBy::PriceDataFallback,
                )))
            }
            None => {
                if let Some(m) = &info {
                    self.stream.untrack(m);
                }
                Err(VenueError::NoOutcome(format!(
                    "{}: Polymarket published no resolution within {} s of the window's end \
                     and the price data lacks the window's first or last candle; not guessed",
                    window.slug, self.cfg.resolution_timeout_secs
                )))
            }
        }
    }

    fn pending_resolution(&self) -> PendingResolution {
        PendingResolution::RetryAfter(
            i64::try_from(self.cfg.resolution_poll.as_secs())
                .unwrap_or(i64::MAX)
                .max(1),
        )
    }
}

impl PaperVenue {
    fn fill(&mut self, window: &Window, stake: &Stake) -> Result<Fill, VenueError> {
        let info = self.market(window)?;
        let side = stake.side();
        let token = info.token(side).to_string();
        if !self.stream.is_tracked(&token) {
            self.prepare(window)?;
        }
        let book = self
            .ready_book(&token)
            .map_err(|p| VenueError::Rejected(format!("{} {side}: not filled: {p}", info.slug)))?;
        let tick = book.tick_size();
        let limit = stake.price().min(Decimal::ONE);
        let cap = (limit / tick).floor() * tick;
        if cap < tick {
            return Err(VenueError::Rejected(format!(
                "{} {side}: limit {limit} is below one tick ({tick})",
                info.slug
            )));
        }
        let walk = book
            .walk_asks(stake.usd(), cap)
            .map_err(|e| VenueError::Rejected(format!("{} {side}: {e}", info.slug)))?;
        let Some(avg) = walk.avg_price else {
            let best = book
                .best_ask()
                .map_or_else(|| "none".to_string(), |l| l.price.to_string());
            return Err(VenueError::Rejected(format!(
                "{} {side}: no ask at or below the limit {cap} (best ask {best}); nothing filled",
                info.slug
            )));
        };
        if walk.shares < info.min_order_size {
            return Err(VenueError::Rejected(format!(
                "{} {side}: ${} walks to {} shares under the limit {cap}, below the market's \
                 minimum of {} shares; not sent",
                info.slug,
                stake.usd(),
                walk.shares,
                info.min_order_size
            )));
        }
        let (fee_usd, fee_shares) = self.fees(&info, &walk)?;
        let shares =
            (walk.shares - fee_shares).round_dp_with_strategy(DP, RoundingStrategy::ToZero);
        tracing::info!(
            target: "updown::polymarket",
            "{} paper buy {side}: {} shares over {} level(s) at avg {} for ${} (fee ${fee_usd}, token {})",
            info.slug,
            walk.shares,
            walk.levels.len(),
            avg.round_dp(DP),
            walk.cost,
            short_token(&token)
        );
        Ok(Fill {
            window_start: window.start,
            side,
            stake: walk.cost,
            price: avg.round_dp_with_strategy(DP, RoundingStrategy::MidpointAwayFromZero),
            shares,
            fee: fee_usd,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::binance::fuzzkit::shared;
    use crate::venue::polymarket::parse_market;
    use rust_decimal_macros::dec;

    /// The real BTC 5m market of 2026-03-12 09:20 UTC.
    fn real_market() -> MarketInfo {
        parse_market(&shared(
            "polymarket_api_samples/nautilus_crate_gamma_market.json",
        ))
        .expect("the fixture parses")
    }

    #[test]
    fn configuration_is_checked_before_anything_starts() {
        let ok = PaperConfig::with_urls("http://127.0.0.1:1/gamma", "https://c", "ws://h/x");
        assert!(ok.check().is_ok());
        for bad in [
            PaperConfig::with_urls("gamma-api.polymarket.com", "https://c", "wss://w"),
            PaperConfig::with_urls("https://g", "https://c", "https://w"),
            PaperConfig {
                fee_rate: dec!(1.5),
                ..PaperConfig::default()
            },
            PaperConfig {
                call_timeout: Duration::ZERO,
                ..PaperConfig::default()
            },
        ] {
            let e = PaperVenue::new(bad).expect_err("refused");
            assert!(e.to_string().contains("paper venue configuration"), "{e}");
        }
    }

    #[test]
    fn a_market_must_be_the_windows_and_tradable_with_a_known_rule() {
        let m = real_market();
        let start = m.window_start().expect("start");
        check_window(&m, &Window::new(start, 300, 0)).expect("its own window");
        let e = check_window(&m, &Window::new(start + 300, 300, 0)).expect_err("another");
        assert!(e.to_string().contains("not the window"), "{e}");
        let e = check_window(&m, &Window::new(start, 900, 0)).expect_err("15m");
        assert_eq!(e.code(), "no_quote");

        let mut closed = m.clone();
        closed.accepting_orders = false;
        let e = check_tradeable(&closed).expect_err("closed");
        assert!(e.to_string().contains("acceptingOrders=false"), "{e}");
        let mut odd = m.clone();
        odd.rule = ResolutionRule::Unknown;
        let e = check_tradeable(&odd).expect_err("unknown rule");
        assert!(e.to_string().contains("not a rule this bot models"), "{e}");
    }

    #[test]
    fn fees_come_from_the_schedule_when_published_and_pending_means_ask_again() {
        let v = PaperVenue::new(PaperConfig::default()).expect("starts without connecting");
        let mut m = real_market();
        m.fee_schedule = None;
        assert_eq!(v.fee_rate(&m), dec!(0.072));
        m.fee_schedule = Some(crate::venue::polymarket::FeeSchedule {
            rate: dec!(0.07),
            exponent: 1,
            taker_only: Some(true),
            rebate_rate: None,
        });
        assert_eq!(v.fee_rate(&m), dec!(0.07));
        let walk = Walk {
            shares: dec!(15),
            cost: dec!(7.7),
            avg_price: Some(dec!(7.7) / dec!(15)),
            levels: vec![
                crate::venue::polymarket::PriceLevel {
                    price: dec!(0.50),
                    size: dec!(10),
                },
                crate::venue::polymarket::PriceLevel {
                    price: dec!(0.54),
                    size: dec!(5),
                },
            ],
        };
        // Per level: 10 × 0.07 × 0.25 = 0.175; 5 × 0.07 × 0.54 × 0.46 = 0.08694.
        let (usd, shares) = v.fees(&m, &walk).expect("fees");
        assert_eq!(usd, dec!(0.26194));
        assert_eq!(
            shares,
            dec!(0.175) / dec!(0.50) + dec!(0.08694) / dec!(0.54)
        );
        assert!(matches!(
            v.pending_resolution(),
            PendingResolution::RetryAfter(5)
        ));
        assert_eq!(v.stats(), PaperStats::default());
    }
}
