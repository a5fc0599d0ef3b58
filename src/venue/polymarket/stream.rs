//! Live order books: background tasks that keep the books of the tracked markets current
//! from the CLOB market channel, with REST `GET /book` as fallback and for resynchronising,
//! and that record `market_resolved` events.
//!
//! Owns the socket's life (connect, subscribe, `PING` every 10 s, reconnect with backoff),
//! the book state per outcome token and its health, and nothing about trading: the paper
//! venue reads books from here through [`MarketStream`] without waiting on the network.
//! Reference `shared/reference/polymarket-api.md` §3.1, §4.1:
//!
//! - The first message is the subscription (`assets_ids`, `type: market`,
//!   `custom_feature_enabled: true` so `market_resolved` and `best_bid_ask` are sent); `PING`
//!   only after it (a `PING` first closes the socket with 1008). Markets tracked later are
//!   added with `operation: subscribe` and dropped with `operation: unsubscribe`.
//! - A book is quotable only when it is *clean*: it has a snapshot, nothing since suggests a
//!   message was missed, and it was confirmed recently ([`TrackedBook::ready`]). It becomes
//!   *dirty* — not quotable until a fresh snapshot replaces it (changes received meanwhile
//!   are held and replayed on the snapshot when newer than it) — after a reconnect, a change
//!   older than the book (`OutOfOrder`), a change the book refuses, a change after which
//!   the book is crossed, or a `price_change` whose `best_bid`/`best_ask` disagree with the
//!   book after applying it (the consistency check this client can make; the venue's `hash`
//!   algorithm is not published, so hashes are kept but not verified). Each of those asks
//!   for a REST resync.
//! - A frame that does not decode is skipped (never applied in part) and every live book is
//!   resynchronised from REST, since the lost message could have been for any of them. So
//!   is every live book when data resumes after a gap ([`StreamConfig::gap_resync`]): a
//!   stalled socket may have dropped changes.
//! - Books of live markets that saw no update for [`StreamConfig::quiet_resync`] are
//!   refreshed from REST, which keeps quiet books confirmed and covers a silently stalled
//!   socket; no data at all for [`StreamConfig::silence_timeout`] (or no `PONG` for
//!   [`StreamConfig::pong_timeout`]) drops the socket and reconnects.
//! - A `404` from `/book` ("No orderbook exists") marks the book gone (market closed).
//!
//! Book age is measured on the local monotonic clock from the moment a message or snapshot
//! was applied, not from the server's timestamps, so a venue clock that differs from ours
//! (or the loopback's virtual clock) cannot make a stale book look fresh.

use super::book::{BookError, OrderBook};
use super::client::{ClobRestClient, connect_market_ws, short_token};
use super::clob::{
    BestBidAsk, BookSnapshot, MarketEvent, MarketResolved, PriceChangeEvent, WsFrame,
    parse_ws_frame,
};
use super::gamma::MarketInfo;
use futures_util::{SinkExt, StreamExt};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Current time as Unix milliseconds (the wall clock, or a test's virtual clock). Used only
/// to tell whether a market's window has ended.
pub type NowMs = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock as a [`NowMs`].
pub fn system_now() -> NowMs {
    Arc::new(|| chrono::Utc::now().timestamp_millis())
}

/// Timing of the market-channel connection and of REST refreshes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Interval of the text `PING` (Polymarket: 10 s).
    pub ping_interval: Duration,
    /// Reconnect when no `PONG` came for this long (default 30 s).
    pub pong_timeout: Duration,
    /// Reconnect when no data frame came for this long while a tracked market is live
    /// (default 30 s): the socket may be stalled silently.
    pub silence_timeout: Duration,
    /// Refresh a live book from REST when it saw no update for this long (default 5 s).
    pub quiet_resync: Duration,
    /// Resynchronise every live book from REST when data resumes after a gap this long
    /// (default 3 s).
    pub gap_resync: Duration,
    /// Timeout of the WebSocket handshake (default 10 s).
    pub connect_timeout: Duration,
    /// First reconnect delay; doubled per failed attempt (default 250 ms).
    pub reconnect_base: Duration,
    /// Ceiling of the reconnect delay (default 10 s).
    pub reconnect_max: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            ping_interval: Duration::from_secs(10),
            pong_timeout: Duration::from_secs(30),
            silence_timeout: Duration::from_secs(30),
            quiet_resync: Duration::from_secs(5),
            gap_resync: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(10),
            reconnect_base: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(10),
        }
    }
}

impl StreamConfig {
    fn reconnect_delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.reconnect_base
            .saturating_mul(1u32 << doublings)
            .min(self.reconnect_max)
    }
}

/// Why a book cannot be quoted now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BookProblem {
    /// The token is not tracked.
    #[error("book {token}: not tracked")]
    NotTracked {
        /// Token id (shortened).
        token: String,
    },
    /// No snapshot has arrived yet.
    #[error("book {token}: no snapshot received yet")]
    NotYet {
        /// Token id (shortened).
        token: String,
    },
    /// A message may have been missed; waiting for a fresh snapshot.
    #[error("book {token}: resynchronising ({reason})")]
    Resyncing {
        /// Token id (shortened).
        token: String,
        /// What made it dirty.
        reason: String,
    },
    /// The CLOB has no order book for the token any more (market closed).
    #[error("book {token}: gone ({reason})")]
    Gone {
        /// Token id (shortened).
        token: String,
        /// The CLOB's answer.
        reason: String,
    },
    /// Not confirmed for longer than the configured maximum age.
    #[error("book {token}: stale, last update {age_ms} ms ago (limit {max_ms} ms)")]
    Stale {
        /// Token id (shortened).
        token: String,
        /// Milliseconds since the last update.
        age_ms: u128,
        /// The limit.
        max_ms: u128,
    },
    /// The book itself refuses to be quoted: crossed, or a side is empty.
    #[error(transparent)]
    Book(#[from] BookError),
}

impl BookProblem {
    /// Whether the problem usually clears by itself within a moment (a snapshot is on its
    /// way), so a caller may wait briefly instead of refusing at once.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BookProblem::NotYet { .. } | BookProblem::Resyncing { .. }
        )
    }
}

/// One tracked outcome token: its book and the book's health.
#[derive(Clone, Debug)]
pub struct TrackedBook {
    /// The book.
    pub book: OrderBook,
    /// Condition id of the market.
    pub condition_id: String,
    /// End of the market's window, Unix ms (no refreshes after it).
    pub end_ms: i64,
    /// When the last message or snapshot was applied (local monotonic clock).
    pub updated: Option<Instant>,
    /// `Some(reason)` while waiting for a fresh snapshot.
    pub dirty: Option<String>,
    /// `Some(answer)` once the CLOB said it has no book for the token.
    pub gone: Option<String>,
    /// Changes received while waiting for a snapshot, replayed on top of it when newer
    /// (at most [`PENDING_CHANGES`]).
    pending: Vec<PriceChangeEvent>,
}

/// Most changes kept while a book waits for a snapshot; older ones are dropped (the
/// snapshot will be newer than them in any realistic wait).
pub const PENDING_CHANGES: usize = 512;

impl TrackedBook {
    /// A book waiting for its first snapshot.
    pub fn new(
        token: &str,
        tick: rust_decimal::Decimal,
        condition_id: &str,
        end_ms: i64,
    ) -> Result<Self, BookError> {
        Ok(TrackedBook {
            book: OrderBook::new(token, tick)?,
            condition_id: condition_id.to_string(),
            end_ms,
            updated: None,
            dirty: None,
            gone: None,
            pending: Vec::new(),
        })
    }

    /// `Ok` when the book may be quoted at `now`: it has a snapshot, is clean, was updated
    /// within `max_age`, is not crossed and has both sides.
    pub fn ready(&self, now: Instant, max_age: Duration) -> Result<(), BookProblem> {
        let token = short_token(self.book.asset_id());
        if let Some(reason) = &self.gone {
            return Err(BookProblem::Gone {
                token,
                reason: reason.clone(),
            });
        }
        if !self.book.has_snapshot() {
            return Err(BookProblem::NotYet { token });
        }
        if let Some(reason) = &self.dirty {
            return Err(BookProblem::Resyncing {
                token,
                reason: reason.clone(),
            });
        }
        let age = self
            .updated
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
        if age > max_age {
            return Err(BookProblem::Stale {
                token,
                age_ms: age.as_millis(),
                max_ms: max_age.as_millis(),
            });
        }
        self.book.top(0)?;
        Ok(())
    }

    /// Whether changes must wait for a snapshot (none yet, or dirty).
    pub fn awaiting_snapshot(&self) -> bool {
        self.dirty.is_some() || !self.book.has_snapshot()
    }

    /// Keeps a change that arrived while waiting for a snapshot, to replay on top of it.
    fn hold(&mut self, ev: &PriceChangeEvent) {
        if self.pending.len() >= PENDING_CHANGES {
            self.pending.remove(0);
        }
        self.pending.push(ev.clone());
    }

    /// Applies a snapshot (WebSocket `book` or REST `/book`) received at `now`. A dirty or
    /// empty book is replaced outright, then the changes held meanwhile that are newer than
    /// the snapshot are replayed on it (a REST answer can be older than changes already
    /// received); if one of them does not fit, the book is dirty again. A clean book takes
    /// the snapshot unless it is older than the book (then nothing changes and `Ok(false)`
    /// says so).
    pub fn apply_snapshot(&mut self, snap: &BookSnapshot, now: Instant) -> Result<bool, BookError> {
        if self.awaiting_snapshot() {
            let mut fresh = OrderBook::new(self.book.asset_id(), self.book.tick_size())?;
            fresh.apply_snapshot(snap)?;
            self.book = fresh;
            self.dirty = None;
            for ev in std::mem::take(&mut self.pending) {
                if ev.timestamp_ms <= snap.timestamp_ms {
                    continue;
                }
                let problem = match self.book.apply_price_changes(&ev) {
                    Ok(_) => self.disagreement(&ev),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(why) = problem {
                    self.dirty = Some(format!("replaying a held change: {why}"));
                    break;
                }
            }
        } else {
            match self.book.apply_snapshot(snap) {
                Ok(()) => {}
                Err(BookError::OutOfOrder { .. }) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.gone = None;
        self.updated = Some(now);
        Ok(true)
    }

    /// Whether the book after applying `ev` agrees with what `ev` says the top is: `None`
    /// when it does (or `ev` says nothing checkable), else what disagrees.
    pub fn disagreement(&self, ev: &PriceChangeEvent) -> Option<String> {
        if let (Some(b), Some(a)) = (self.book.best_bid(), self.book.best_ask())
            && b.price >= a.price
        {
            return Some(format!(
                "crossed after a change (bid {} ≥ ask {})",
                b.price, a.price
            ));
        }
        let last = ev
            .changes
            .iter()
            .rev()
            .find(|c| c.asset_id == self.book.asset_id())?;
        let ours = [
            (
                "best_bid",
                last.best_bid,
                self.book.best_bid().map(|l| l.price),
            ),
            (
                "best_ask",
                last.best_ask,
                self.book.best_ask().map(|l| l.price),
            ),
        ];
        for (name, sent, ours) in ours {
            // Only prices strictly inside (0, 1) name a level; 0 and 1 are how an empty side
            // may be written, which this check does not guess at.
            let Some(sent) = sent
                .filter(|p| *p > rust_decimal::Decimal::ZERO && *p < rust_decimal::Decimal::ONE)
            else {
                continue;
            };
            match ours {
                Some(o) if o == sent.normalize() => {}
                Some(o) => {
                    return Some(format!("price_change says {name} {sent}, the book has {o}"));
                }
                None => {
                    return Some(format!(
                        "price_change says {name} {sent}, the book has none"
                    ));
                }
            }
        }
        None
    }

    /// Whether a `best_bid_ask` stamped at the same instant as the book disagrees with it.
    fn disagrees_with_top(&self, ev: &BestBidAsk) -> bool {
        if self.book.last_update_ms() != Some(ev.timestamp_ms) {
            return false;
        }
        let bid = self.book.best_bid().map(|l| l.price);
        let ask = self.book.best_ask().map(|l| l.price);
        bid != Some(ev.best_bid.normalize()) || ask != Some(ev.best_ask.normalize())
    }
}

/// Counters of what the stream did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Successful connections (subscription sent).
    pub connects: u64,
    /// Connections after the first.
    pub reconnects: u64,
    /// Reconnects because no data came for [`StreamConfig::silence_timeout`].
    pub silence_reconnects: u64,
    /// Subscription messages sent (initial and additions).
    pub subscriptions: u64,
    /// Text frames carrying events.
    pub data_frames: u64,
    /// Frames that did not decode and were skipped.
    pub skipped_frames: u64,
    /// `PING`s sent.
    pub pings: u64,
    /// `PONG`s received.
    pub pongs: u64,
    /// WebSocket `book` snapshots applied.
    pub ws_snapshots: u64,
    /// `price_change` events applied to a tracked book.
    pub price_changes: u64,
    /// REST snapshots fetched and applied.
    pub rest_snapshots: u64,
    /// REST fetches that failed.
    pub rest_failures: u64,
    /// REST resyncs started.
    pub resyncs: u64,
    /// Changes refused as older than the book.
    pub out_of_order: u64,
    /// Books found inconsistent (top disagreeing, crossed, refused changes).
    pub inconsistencies: u64,
    /// `market_resolved` events received.
    pub resolutions: u64,
    /// The last error seen, if any.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct State {
    books: HashMap<String, TrackedBook>,
    resolutions: HashMap<String, MarketResolved>,
    in_flight: HashSet<String>,
    stats: StreamStats,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Plain data: a panic elsewhere while holding the lock leaves it usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

enum WsCommand {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
}

/// Handle to the background tasks; dropping it stops them.
pub struct MarketStream {
    state: Arc<Mutex<State>>,
    ws_tx: mpsc::UnboundedSender<WsCommand>,
    resync_tx: mpsc::UnboundedSender<String>,
}

impl std::fmt::Debug for MarketStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketStream")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl MarketStream {
    /// Starts the socket task and the REST resync task on `runtime`. `ws_url` is the full
    /// URL of the market channel, e.g. `wss://ws-subscriptions-clob.polymarket.com/ws/market`.
    /// Nothing connects until a market is tracked.
    pub fn spawn(
        runtime: &tokio::runtime::Handle,
        ws_url: String,
        cfg: StreamConfig,
        rest: ClobRestClient,
        now: NowMs,
    ) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let (ws_tx, ws_rx) = mpsc::unbounded_channel();
        let (resync_tx, resync_rx) = mpsc::unbounded_channel();
        runtime.spawn(ws_task(
            state.clone(),
            ws_url,
            cfg.clone(),
            ws_rx,
            resync_tx.clone(),
            now.clone(),
        ));
        runtime.spawn(resync_task(state.clone(), cfg, rest, resync_rx, now));
        MarketStream {
            state,
            ws_tx,
            resync_tx,
        }
    }

    /// Starts maintaining both books of `market` (subscribes and fetches REST snapshots).
    /// Returns whether anything was newly tracked.
    pub fn track(&self, market: &MarketInfo) -> Result<bool, BookError> {
        let end_ms = market.end_time.saturating_mul(1000);
        let mut new = Vec::new();
        {
            let mut st = lock(&self.state);
            for token in [&market.up_token, &market.down_token] {
                if !st.books.contains_key(token.as_str()) {
                    let tb =
                        TrackedBook::new(token, market.tick_size, &market.condition_id, end_ms)?;
                    st.books.insert(token.clone(), tb);
                    new.push(token.clone());
                }
            }
        }
        if new.is_empty() {
            return Ok(false);
        }
        for t in &new {
            let _ = self.resync_tx.send(t.clone());
        }
        let _ = self.ws_tx.send(WsCommand::Subscribe(new));
        Ok(true)
    }

    /// Stops maintaining the books of `market` (unsubscribes). Its resolution, if one was
    /// received, is kept.
    pub fn untrack(&self, market: &MarketInfo) {
        let mut gone = Vec::new();
        {
            let mut st = lock(&self.state);
            for token in [&market.up_token, &market.down_token] {
                if st.books.remove(token.as_str()).is_some() {
                    gone.push(token.clone());
                }
            }
        }
        if !gone.is_empty() {
            let _ = self.ws_tx.send(WsCommand::Unsubscribe(gone));
        }
    }

    /// Whether `token` is tracked.
    pub fn is_tracked(&self, token: &str) -> bool {
        lock(&self.state).books.contains_key(token)
    }

    /// A copy of the tracked book of `token` and its health.
    pub fn book(&self, token: &str) -> Option<TrackedBook> {
        lock(&self.state).books.get(token).cloned()
    }

    /// A copy of the book of `token` if it may be quoted now (see [`TrackedBook::ready`]).
    pub fn ready_book(&self, token: &str, max_age: Duration) -> Result<OrderBook, BookProblem> {
        let st = lock(&self.state);
        let tb = st.books.get(token).ok_or_else(|| BookProblem::NotTracked {
            token: short_token(token),
        })?;
        tb.ready(Instant::now(), max_age)?;
        Ok(tb.book.clone())
    }

    /// Asks for a REST resync of `token` (e.g. after a quote found it crossed).
    pub fn request_resync(&self, token: &str) {
        let _ = self.resync_tx.send(token.to_string());
    }

    /// The `market_resolved` event received for `condition_id`, if any.
    pub fn resolution(&self, condition_id: &str) -> Option<MarketResolved> {
        lock(&self.state).resolutions.get(condition_id).cloned()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StreamStats {
        lock(&self.state).stats.clone()
    }
}

/// Tokens of tracked books whose market is live at `now_ms` and not gone.
fn live_tokens(st: &State, now_ms: i64) -> Vec<String> {
    st.books
        .iter()
        .filter(|(_, b)| b.end_ms > now_ms && b.gone.is_none())
        .map(|(t, _)| t.clone())
        .collect()
}

fn record_error(state: &Mutex<State>, error: String) {
    tracing::warn!(target: "updown::polymarket", "{error}");
    lock(state).stats.last_error = Some(error);
}

/// Applies one market-channel event; returns tokens to resynchronise from REST.
fn apply_event(st: &mut State, ev: &MarketEvent, now: Instant) -> Vec<String> {
    let mut resync = Vec::new();
    let State {
        books,
        resolutions,
        stats,
        ..
    } = st;
    match ev {
        MarketEvent::Book(snap) => {
            if let Some(tb) = books.get_mut(&snap.asset_id) {
                match tb.apply_snapshot(snap, now) {
                    Ok(applied) => {
                        stats.ws_snapshots += u64::from(applied);
                        if tb.dirty.is_some() {
                            stats.inconsistencies += 1;
                            resync.push(snap.asset_id.clone());
                        }
                    }
                    Err(e) => {
                        stats.inconsistencies += 1;
                        tb.dirty = Some(format!("snapshot refused: {e}"));
                        resync.push(snap.asset_id.clone());
                    }
                }
            }
        }
        MarketEvent::PriceChange(p) => {
            let assets: BTreeSet<&str> = p.changes.iter().map(|c| c.asset_id.as_str()).collect();
            for asset in assets {
                let Some(tb) = books.get_mut(asset) else {
                    continue;
                };
                if tb.gone.is_some() {
                    continue;
                }
                if tb.awaiting_snapshot() {
                    tb.hold(p); // replayed on the snapshot if newer than it
                    continue;
                }
                match tb.book.apply_price_changes(p) {
                    Ok(0) => {}
                    Ok(_) => {
                        stats.price_changes += 1;
                        tb.updated = Some(now);
                        if let Some(why) = tb.disagreement(p) {
                            stats.inconsistencies += 1;
                            tb.dirty = Some(why);
                            resync.push(asset.to_string());
                        }
                    }
                    Err(e) => {
                        if matches!(e, BookError::OutOfOrder { .. }) {
                            stats.out_of_order += 1;
                        } else {
                            stats.inconsistencies += 1;
                        }
                        tb.dirty = Some(e.to_string());
                        resync.push(asset.to_string());
                    }
                }
            }
        }
        MarketEvent::TickSizeChange(t) => {
            if let Some(tb) = books.get_mut(&t.asset_id) {
                match tb.book.apply_tick_size_change(t) {
                    Ok(_) | Err(BookError::OutOfOrder { .. }) => {}
                    Err(e) => {
                        stats.last_error = Some(e.to_string());
                    }
                }
            }
        }
        MarketEvent::BestBidAsk(b) => {
            if let Some(tb) = books.get(&b.asset_id)
                && tb.dirty.is_none()
                && tb.book.has_snapshot()
                && tb.disagrees_with_top(b)
            {
                stats.inconsistencies += 1;
                resync.push(b.asset_id.clone());
            }
        }
        MarketEvent::MarketResolved(r) => {
            stats.resolutions += 1;
            tracing::info!(
                target: "updown::polymarket",
                "market_resolved {}: {} won",
                r.market,
                r.winning_outcome
            );
            resolutions.insert(r.market.clone(), r.clone());
        }
        _ => {}
    }
    resync
}

/// Why a socket session ended.
enum SessionEnd {
    /// The handle was dropped: stop.
    Shutdown,
    /// The connection was lost or dropped on purpose; reconnect. `healthy` when it carried
    /// data (so the backoff restarts).
    Lost { reason: String, healthy: bool },
}

fn subscribe_message(tokens: &BTreeSet<String>) -> String {
    serde_json::json!({
        "assets_ids": tokens,
        "type": "market",
        "custom_feature_enabled": true,
    })
    .to_string()
}

async fn ws_task(
    state: Arc<Mutex<State>>,
    ws_url: String,
    cfg: StreamConfig,
    mut rx: mpsc::UnboundedReceiver<WsCommand>,
    resync_tx: mpsc::UnboundedSender<String>,
    now: NowMs,
) {
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let apply = |wanted: &mut BTreeSet<String>, c: WsCommand| match c {
        WsCommand::Subscribe(t) => wanted.extend(t),
        WsCommand::Unsubscribe(t) => {
            for x in t {
                wanted.remove(&x);
            }
        }
    };
    let mut connected_before = false;
    let mut failures: u32 = 0;
    loop {
        loop {
            match rx.try_recv() {
                Ok(c) => apply(&mut wanted, c),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        if wanted.is_empty() {
            match rx.recv().await {
                Some(c) => apply(&mut wanted, c),
                None => return,
            }
            continue;
        }
        if failures > 0 {
            tokio::time::sleep(cfg.reconnect_delay(failures)).await;
        }
        let mut ws = match connect_market_ws(&ws_url, cfg.connect_timeout).await {
            Ok(ws) => ws,
            Err(e) => {
                failures = failures.saturating_add(1);
                record_error(&state, format!("market channel: {e}; retrying"));
                continue;
            }
        };
        if let Err(e) = ws.send(Message::text(subscribe_message(&wanted))).await {
            failures = failures.saturating_add(1);
            record_error(&state, format!("market channel: subscribing failed: {e}"));
            continue;
        }
        {
            let mut st = lock(&state);
            st.stats.connects += 1;
            st.stats.subscriptions += 1;
            if connected_before {
                st.stats.reconnects += 1;
                for t in &wanted {
                    if let Some(b) = st.books.get_mut(t)
                        && b.book.has_snapshot()
                        && b.gone.is_none()
                    {
                        b.dirty = Some("reconnected; waiting for a fresh snapshot".into());
                    }
                }
            }
        }
        if connected_before {
            for t in &wanted {
                let _ = resync_tx.send(t.clone());
            }
        }
        connected_before = true;
        match session(
            &mut ws,
            &state,
            &cfg,
            &mut rx,
            &mut wanted,
            &resync_tx,
            &now,
        )
        .await
        {
            SessionEnd::Shutdown => {
                let _ = ws.close(None).await;
                return;
            }
            SessionEnd::Lost { reason, healthy } => {
                failures = if healthy {
                    1
                } else {
                    failures.saturating_add(1)
                };
                record_error(&state, format!("market channel: {reason}; reconnecting"));
                let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
            }
        }
    }
}

async fn session(
    ws: &mut super::client::WsStream,
    state: &Arc<Mutex<State>>,
    cfg: &StreamConfig,
    rx: &mut mpsc::UnboundedReceiver<WsCommand>,
    wanted: &mut BTreeSet<String>,
    resync_tx: &mpsc::UnboundedSender<String>,
    now_ms: &NowMs,
) -> SessionEnd {
    let start = tokio::time::Instant::now();
    let every = cfg.ping_interval.max(Duration::from_millis(10));
    let mut ping = tokio::time::interval_at(start + every, every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watchdog = tokio::time::interval(Duration::from_millis(100));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_pong = Instant::now();
    let mut last_data = Instant::now();
    let mut last_frame: Option<Instant> = None;
    let mut healthy = false;
    let lost = |reason: String, healthy: bool| SessionEnd::Lost { reason, healthy };
    loop {
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return SessionEnd::Shutdown };
                let (tokens, op) = match cmd {
                    WsCommand::Subscribe(t) => {
                        let new: Vec<String> = t.into_iter().filter(|x| wanted.insert(x.clone())).collect();
                        (new, "subscribe")
                    }
                    WsCommand::Unsubscribe(t) => {
                        let old: Vec<String> = t.into_iter().filter(|x| wanted.remove(x)).collect();
                        (old, "unsubscribe")
                    }
                };
                if tokens.is_empty() {
                    continue;
                }
                let msg = if op == "subscribe" {
                    serde_json::json!({"assets_ids": tokens, "operation": op, "custom_feature_enabled": true})
                } else {
                    serde_json::json!({"assets_ids": tokens, "operation": op})
                };
                if let Err(e) = ws.send(Message::text(msg.to_string())).await {
                    return lost(format!("sending {op} failed: {e}"), healthy);
                }
                if op == "subscribe" {
                    lock(state).stats.subscriptions += 1;
                }
            }
            msg = ws.next() => {
                let text = match msg {
                    None => return lost("the venue closed the connection".into(), healthy),
                    Some(Err(e)) => return lost(format!("read failed: {e}"), healthy),
                    Some(Ok(Message::Close(f))) => {
                        let why = f.map_or_else(|| "no reason".to_string(), |f| format!("{} {}", f.code, f.reason));
                        return lost(format!("the venue closed the connection ({why})"), healthy);
                    }
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                };
                let frame = parse_ws_frame(text.as_str());
                let now = Instant::now();
                let events = match frame {
                    Ok(WsFrame::Pong) => {
                        last_pong = now;
                        lock(state).stats.pongs += 1;
                        continue;
                    }
                    Ok(WsFrame::Ping) => {
                        if let Err(e) = ws.send(Message::text("PONG")).await {
                            return lost(format!("answering PING failed: {e}"), healthy);
                        }
                        continue;
                    }
                    Ok(WsFrame::Events(events)) => events,
                    Err(e) => {
                        // Skipped whole: a frame is never applied in part. Any live book may
                        // have missed something, so all are refreshed.
                        let live = {
                            let mut st = lock(state);
                            st.stats.skipped_frames += 1;
                            st.stats.last_error = Some(format!("market channel: frame skipped: {e}"));
                            live_tokens(&st, now_ms())
                        };
                        tracing::warn!(target: "updown::polymarket", "market channel: frame skipped, resynchronising: {e}");
                        for t in live {
                            let _ = resync_tx.send(t);
                        }
                        last_data = now;
                        continue;
                    }
                };
                healthy = true;
                let gap = last_frame.is_some_and(|t| now.saturating_duration_since(t) >= cfg.gap_resync);
                last_frame = Some(now);
                last_data = now;
                let resync = {
                    let mut st = lock(state);
                    st.stats.data_frames += 1;
                    let mut resync: Vec<String> = Vec::new();
                    for ev in &events {
                        resync.extend(apply_event(&mut st, ev, now));
                    }
                    if gap {
                        resync.extend(live_tokens(&st, now_ms()));
                    }
                    resync
                };
                for t in resync {
                    let _ = resync_tx.send(t);
                }
            }
            _ = ping.tick() => {
                if last_pong.elapsed() > cfg.pong_timeout {
                    return lost(format!("no PONG for {:?}", cfg.pong_timeout), healthy);
                }
                if let Err(e) = ws.send(Message::text("PING")).await {
                    return lost(format!("sending PING failed: {e}"), healthy);
                }
                lock(state).stats.pings += 1;
            }
            _ = watchdog.tick() => {
                if last_data.elapsed() > cfg.silence_timeout {
                    let mut st = lock(state);
                    if !live_tokens(&st, now_ms()).is_empty() {
                        st.stats.silence_reconnects += 1;
                        return lost(format!("no data for {:?} (silent stall)", cfg.silence_timeout), healthy);
                    }
                }
            }
        }
    }
}

async fn resync_task(
    state: Arc<Mutex<State>>,
    cfg: StreamConfig,
    rest: ClobRestClient,
    mut rx: mpsc::UnboundedReceiver<String>,
    now_ms: NowMs,
) {
    let every = (cfg.quiet_resync.min(Duration::from_secs(1)) / 2).max(Duration::from_millis(10));
    let mut check = tokio::time::interval(every);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut tokens = Vec::new();
        tokio::select! {
            t = rx.recv() => match t {
                Some(t) => tokens.push(t),
                None => return,
            },
            _ = check.tick() => {
                let st = lock(&state);
                let now = Instant::now();
                let now_ms = now_ms();
                tokens.extend(st.books.iter().filter(|(_, b)| {
                    b.end_ms > now_ms
                        && b.gone.is_none()
                        && (b.dirty.is_some()
                            || b.updated.is_none_or(|u| now.saturating_duration_since(u) >= cfg.quiet_resync))
                }).map(|(t, _)| t.clone()));
            }
        }
        while let Ok(t) = rx.try_recv() {
            tokens.push(t);
        }
        for token in tokens {
            {
                let mut st = lock(&state);
                if !st.books.contains_key(&token) || !st.in_flight.insert(token.clone()) {
                    continue;
                }
                st.stats.resyncs += 1;
            }
            tokio::spawn(fetch_snapshot(state.clone(), rest.clone(), token));
        }
    }
}

async fn fetch_snapshot(state: Arc<Mutex<State>>, rest: ClobRestClient, token: String) {
    let answer = rest.book(&token).await;
    let mut guard = lock(&state);
    let st = &mut *guard;
    st.in_flight.remove(&token);
    let Some(tb) = st.books.get_mut(&token) else {
        return;
    };
    match answer {
        Ok(snap) => match tb.apply_snapshot(&snap, Instant::now()) {
            Ok(applied) => {
                st.stats.rest_snapshots += u64::from(applied);
                if tb.dirty.is_some() {
                    // Left to the periodic check, which retries dirty books.
                    st.stats.inconsistencies += 1;
                }
            }
            Err(e) => {
                st.stats.rest_failures += 1;
                st.stats.last_error = Some(format!("REST book refused: {e}"));
            }
        },
        Err(e) if e.is_not_found() => {
            tb.gone = Some(e.to_string());
        }
        Err(e) => {
            st.stats.rest_failures += 1;
            tracing::warn!(target: "updown::polymarket", "book resync failed: {e}");
            st.stats.last_error = Some(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::polymarket::clob::{OrderSide, PriceChange, PriceLevel};
    use rust_decimal_macros::dec;

    const T: &str = "100";

    fn snap(
        bids: &[(rust_decimal::Decimal, rust_decimal::Decimal)],
        asks: &[(rust_decimal::Decimal, rust_decimal::Decimal)],
        t: i64,
    ) -> BookSnapshot {
        let lv = |(price, size): &(rust_decimal::Decimal, rust_decimal::Decimal)| PriceLevel {
            price: *price,
            size: *size,
        };
        BookSnapshot {
            market: "0xm".into(),
            asset_id: T.into(),
            bids: bids.iter().map(lv).collect(),
            asks: asks.iter().map(lv).collect(),
            timestamp_ms: t,
            hash: None,
            tick_size: None,
            min_order_size: None,
            neg_risk: None,
        }
    }

    fn change(
        side: OrderSide,
        price: rust_decimal::Decimal,
        size: rust_decimal::Decimal,
        t: i64,
        bb: &str,
        ba: &str,
    ) -> PriceChangeEvent {
        PriceChangeEvent {
            market: "0xm".into(),
            timestamp_ms: t,
            changes: vec![PriceChange {
                asset_id: T.into(),
                price,
                size,
                side,
                hash: None,
                best_bid: bb.parse().ok(),
                best_ask: ba.parse().ok(),
            }],
        }
    }

    fn state_with(tb: TrackedBook) -> State {
        let mut st = State::default();
        st.books.insert(T.into(), tb);
        st
    }

    fn fresh() -> TrackedBook {
        TrackedBook::new(T, dec!(0.01), "0xm", i64::MAX).unwrap()
    }

    #[test]
    fn readiness_needs_a_clean_recent_uncrossed_snapshot() {
        let now = Instant::now();
        let max = Duration::from_secs(5);
        let mut tb = fresh();
        assert!(matches!(
            tb.ready(now, max),
            Err(BookProblem::NotYet { .. })
        ));
        assert!(tb.ready(now, max).unwrap_err().is_transient());
        tb.apply_snapshot(
            &snap(&[(dec!(0.49), dec!(10))], &[(dec!(0.51), dec!(10))], 1),
            now,
        )
        .unwrap();
        tb.ready(now, max).unwrap();
        // Older than the limit: stale, and not something to wait out.
        let later = now + Duration::from_secs(6);
        let e = tb.ready(later, max).unwrap_err();
        assert!(
            matches!(e, BookProblem::Stale { .. }) && !e.is_transient(),
            "{e}"
        );
        assert!(e.to_string().contains("stale"), "{e}");
        // A crossed snapshot is kept but never quoted.
        tb.apply_snapshot(
            &snap(&[(dec!(0.55), dec!(10))], &[(dec!(0.51), dec!(10))], 2),
            now,
        )
        .unwrap();
        let e = tb.ready(now, max).unwrap_err();
        assert!(
            matches!(e, BookProblem::Book(BookError::Crossed { .. })),
            "{e}"
        );
        tb.gone = Some("404".into());
        assert!(matches!(tb.ready(now, max), Err(BookProblem::Gone { .. })));
    }

    #[test]
    fn out_of_order_and_disagreeing_changes_make_the_book_dirty_until_a_snapshot() {
        let now = Instant::now();
        let mut st = state_with(fresh());
        let book = MarketEvent::Book(snap(
            &[(dec!(0.49), dec!(10))],
            &[(dec!(0.51), dec!(10)), (dec!(0.52), dec!(5))],
            10,
        ));
        assert!(apply_event(&mut st, &book, now).is_empty());
        // A consistent change applies and stays clean.
        let ok = MarketEvent::PriceChange(change(
            OrderSide::Sell,
            dec!(0.51),
            dec!(7),
            11,
            "0.49",
            "0.51",
        ));
        assert!(apply_event(&mut st, &ok, now).is_empty());
        assert_eq!(st.books[T].book.best_ask().unwrap().size, dec!(7));
        // One older than the book: dirty, resync asked.
        let old = MarketEvent::PriceChange(change(
            OrderSide::Sell,
            dec!(0.51),
            dec!(1),
            5,
            "0.49",
            "0.51",
        ));
        assert_eq!(apply_event(&mut st, &old, now), vec![T.to_string()]);
        assert_eq!(st.stats.out_of_order, 1);
        assert!(
            st.books[T]
                .ready(now, Duration::from_secs(5))
                .unwrap_err()
                .is_transient()
        );
        // Changes are held while dirty; a snapshot (even an older one) replaces the book and
        // the held changes newer than it are replayed on top.
        let held = MarketEvent::PriceChange(change(
            OrderSide::Sell,
            dec!(0.52),
            dec!(9),
            12,
            "0.48",
            "0.50",
        ));
        assert!(apply_event(&mut st, &held, now).is_empty());
        assert!(apply_event(&mut st, &ok, now).is_empty()); // t = 11: in the snapshot below
        let resnap =
            MarketEvent::Book(snap(&[(dec!(0.48), dec!(3))], &[(dec!(0.50), dec!(4))], 11));
        assert!(apply_event(&mut st, &resnap, now).is_empty());
        st.books[T].ready(now, Duration::from_secs(5)).unwrap();
        let asks = st.books[T].book.asks();
        assert_eq!(
            asks.iter().map(|l| (l.price, l.size)).collect::<Vec<_>>(),
            vec![(dec!(0.50), dec!(4)), (dec!(0.52), dec!(9))],
            "the t = 12 change replayed, the t = 11 one not"
        );
        // A held change that contradicts the snapshot leaves the book dirty (resync again).
        let stale =
            MarketEvent::PriceChange(change(OrderSide::Sell, dec!(0.52), dec!(1), 5, "", ""));
        apply_event(&mut st, &stale, now);
        let contradicting =
            MarketEvent::PriceChange(change(OrderSide::Buy, dec!(0.45), dec!(1), 30, "0.49", ""));
        assert!(apply_event(&mut st, &contradicting, now).is_empty());
        let snap20 =
            MarketEvent::Book(snap(&[(dec!(0.48), dec!(3))], &[(dec!(0.50), dec!(4))], 20));
        assert_eq!(apply_event(&mut st, &snap20, now), vec![T.to_string()]);
        assert!(
            st.books[T]
                .dirty
                .as_deref()
                .unwrap_or("")
                .contains("replaying")
        );
        let resnap =
            MarketEvent::Book(snap(&[(dec!(0.48), dec!(3))], &[(dec!(0.50), dec!(4))], 31));
        apply_event(&mut st, &resnap, now);
        st.books[T].ready(now, Duration::from_secs(5)).unwrap();
        // A change whose stated top disagrees with the book after applying it: dirty.
        let wrong = MarketEvent::PriceChange(change(
            OrderSide::Buy,
            dec!(0.47),
            dec!(2),
            32,
            "0.49",
            "0.50",
        ));
        assert_eq!(apply_event(&mut st, &wrong, now), vec![T.to_string()]);
        assert!(
            st.books[T]
                .dirty
                .as_deref()
                .unwrap_or("")
                .contains("best_bid")
        );
        // A change that crosses the book: dirty.
        let resnap =
            MarketEvent::Book(snap(&[(dec!(0.48), dec!(3))], &[(dec!(0.50), dec!(4))], 33));
        apply_event(&mut st, &resnap, now);
        let cross =
            MarketEvent::PriceChange(change(OrderSide::Buy, dec!(0.55), dec!(2), 34, "", ""));
        assert_eq!(apply_event(&mut st, &cross, now), vec![T.to_string()]);
        assert!(
            st.books[T]
                .dirty
                .as_deref()
                .unwrap_or("")
                .contains("crossed")
        );
    }

    #[test]
    fn clean_books_ignore_older_snapshots_and_resolutions_are_kept() {
        let now = Instant::now();
        let mut tb = fresh();
        assert!(
            tb.apply_snapshot(
                &snap(&[(dec!(0.49), dec!(10))], &[(dec!(0.51), dec!(10))], 10),
                now
            )
            .unwrap()
        );
        assert!(
            !tb.apply_snapshot(
                &snap(&[(dec!(0.40), dec!(10))], &[(dec!(0.60), dec!(10))], 5),
                now
            )
            .unwrap()
        );
        assert_eq!(tb.book.best_bid().unwrap().price, dec!(0.49));
        let mut st = state_with(tb);
        let r = MarketEvent::MarketResolved(MarketResolved {
            id: None,
            market: "0xm".into(),
            assets_ids: vec![T.into()],
            winning_asset_id: T.into(),
            winning_outcome: "Up".into(),
            timestamp_ms: 20,
        });
        apply_event(&mut st, &r, now);
        assert_eq!(st.resolutions["0xm"].winning_asset_id, T);
        assert_eq!(st.stats.resolutions, 1);
    }

    #[test]
    fn reconnect_delay_backs_off() {
        let c = StreamConfig::default();
        assert_eq!(c.reconnect_delay(1), Duration::from_millis(250));
        assert_eq!(c.reconnect_delay(2), Duration::from_millis(500));
        assert_eq!(c.reconnect_delay(30), Duration::from_secs(10));
    }
}
