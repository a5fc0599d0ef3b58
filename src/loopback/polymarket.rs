//! Polymarket, as served by the loopback venue: Gamma discovery under `/gamma`, CLOB REST
//! under `/clob`, and the CLOB market channel under `/clob-ws/ws/market` (reference §1, §3.1,
//! §4.1, §5.2).
//!
//! Gamma: `/events?slug=` (comma list or repeated; no slug lists the open events),
//! `/events/slug/<slug>`, `/markets?slug=` (also `clob_token_ids`, `condition_ids`),
//! `/markets/slug/<slug>`; a slug that is not listed at the virtual time answers `[]` (or
//! 404 on the `/slug/` paths).
//!
//! CLOB REST: `/book?token_id=` (bids ascending, asks **descending**, as the live API
//! sends them; `400 Invalid token id`, `404 No orderbook exists…` for unknown, unlisted or
//! resolved markets), `POST /books`, `/midpoint?token_id=`, `/time` (virtual seconds), `/`.
//!
//! Market channel: the first message must be a subscription
//! (`{"assets_ids":[…],"type":"market"}`, optionally `custom_feature_enabled`,
//! `initial_dump`, or the SDK's `operation`/`markets` fields); anything else first — `PING`
//! included — closes the socket with 1008 `invalid subscription payload`. Then: a `book`
//! snapshot array for the subscribed assets, `price_change` (`price_changes[]` form) as the
//! books move, `best_bid_ask` and `market_resolved` when `custom_feature_enabled` is true,
//! `PONG` for `PING`, later `{"assets_ids":[…],"operation":"subscribe"|"unsubscribe"}`.
//! A client that neither subscribes nor sends anything for `clob_idle_timeout` is dropped.

use super::data::WindowInfo;
use super::faults::Service;
use super::market::{Book, Model, Phase};
use super::server::{Shared, json_response, upgrade};
use super::ws::{Conn, Ended};
use crate::domain::Side;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/gamma/events", get(events))
        .route("/gamma/events/slug/{slug}", get(event_by_slug))
        .route("/gamma/markets", get(markets))
        .route("/gamma/markets/slug/{slug}", get(market_by_slug))
        .route("/clob", get(ok))
        .route("/clob/", get(ok))
        .route("/clob/ok", get(ok))
        .route("/clob/time", get(clob_time))
        .route("/clob/book", get(book))
        .route("/clob/books", post(books))
        .route("/clob/midpoint", get(midpoint))
        .route("/clob-ws/ws/market", get(market_ws))
}

type Params = Vec<(String, String)>;

/// Every value of `name`, comma lists split.
fn values(q: &Params, name: &str) -> Vec<String> {
    q.iter()
        .filter(|(k, _)| k == name)
        .flat_map(|(_, v)| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn param(q: &Params, name: &str) -> Option<String> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// The window of a `btc-updown-5m-<T>` slug, if the data has one.
fn window_of_slug<'a>(model: &'a Model, slug: &str) -> Option<&'a WindowInfo> {
    let start: i64 = slug.strip_prefix("btc-updown-5m-")?.parse().ok()?;
    model.data().window(start).filter(|w| w.slug == slug)
}

fn listed<'a>(app: &'a Shared, w: Option<&'a WindowInfo>, now: i64) -> Option<&'a WindowInfo> {
    w.filter(|w| app.model.listed(w, now))
}

fn event_value(app: &Shared, w: &WindowInfo, now: i64) -> Value {
    let fault = app.faults.resolution(w.start);
    let phase = app.model.phase(w, now, fault);
    let mut e = app.model.gamma_event(w, now, phase);
    if let Value::Object(o) = &mut e {
        o.insert(
            "markets".into(),
            Value::Array(vec![app.model.gamma_market(w, now, fault, false)]),
        );
    }
    e
}

fn market_value(app: &Shared, w: &WindowInfo, now: i64) -> Value {
    app.model
        .gamma_market(w, now, app.faults.resolution(w.start), true)
}

/// Listed windows, for list queries without a slug: `closed` filters, then `offset`/`limit`
/// (default 20, at most 500) over windows in time order, open ones from the current one on.
fn listing<'a>(app: &'a Shared, q: &Params, now: i64) -> Vec<&'a WindowInfo> {
    let closed = param(q, "closed").map(|c| c == "true");
    let limit = param(q, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20)
        .min(500);
    let offset = param(q, "offset")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    app.model
        .data()
        .windows
        .values()
        .filter(|w| app.model.listed(w, now))
        .filter(|w| {
            let is_closed = matches!(
                app.model.phase(w, now, app.faults.resolution(w.start)),
                Phase::Resolved(_)
            );
            match closed {
                Some(c) => c == is_closed,
                None => !is_closed,
            }
        })
        .skip(offset)
        .take(limit)
        .collect()
}

async fn events(State(app): State<Shared>, Query(q): Query<Params>) -> Response {
    let now = app.clock.now_ms();
    let slugs = values(&q, "slug");
    let list: Vec<Value> = if slugs.is_empty() {
        listing(&app, &q, now)
            .into_iter()
            .map(|w| event_value(&app, w, now))
            .collect()
    } else {
        slugs
            .iter()
            .filter_map(|s| listed(&app, window_of_slug(&app.model, s), now))
            .map(|w| event_value(&app, w, now))
            .collect()
    };
    json_response(StatusCode::OK, Value::Array(list).to_string())
}

async fn event_by_slug(State(app): State<Shared>, Path(slug): Path<String>) -> Response {
    let now = app.clock.now_ms();
    match listed(&app, window_of_slug(&app.model, &slug), now) {
        Some(w) => json_response(StatusCode::OK, event_value(&app, w, now).to_string()),
        None => json_response(
            StatusCode::NOT_FOUND,
            r#"{"error":"event not found"}"#.into(),
        ),
    }
}

async fn markets(State(app): State<Shared>, Query(q): Query<Params>) -> Response {
    let now = app.clock.now_ms();
    let slugs = values(&q, "slug");
    let tokens = values(&q, "clob_token_ids");
    let conditions = values(&q, "condition_ids");
    let list: Vec<Value> = if slugs.is_empty() && tokens.is_empty() && conditions.is_empty() {
        listing(&app, &q, now)
            .into_iter()
            .map(|w| market_value(&app, w, now))
            .collect()
    } else {
        let mut found: BTreeMap<i64, &WindowInfo> = BTreeMap::new();
        let data = app.model.data();
        for w in slugs.iter().filter_map(|s| window_of_slug(&app.model, s)) {
            found.insert(w.start, w);
        }
        for w in tokens.iter().filter_map(|t| data.window_of_token(t)) {
            found.insert(w.start, w);
        }
        for c in &conditions {
            if let Some(w) = data.windows.values().find(|w| &w.condition_id == c) {
                found.insert(w.start, w);
            }
        }
        found
            .into_values()
            .filter(|w| app.model.listed(w, now))
            .map(|w| market_value(&app, w, now))
            .collect()
    };
    json_response(StatusCode::OK, Value::Array(list).to_string())
}

async fn market_by_slug(State(app): State<Shared>, Path(slug): Path<String>) -> Response {
    let now = app.clock.now_ms();
    match listed(&app, window_of_slug(&app.model, &slug), now) {
        Some(w) => json_response(StatusCode::OK, market_value(&app, w, now).to_string()),
        None => json_response(
            StatusCode::NOT_FOUND,
            r#"{"error":"market not found"}"#.into(),
        ),
    }
}

async fn ok() -> Response {
    json_response(StatusCode::OK, "\"OK\"".into())
}

async fn clob_time(State(app): State<Shared>) -> Response {
    json_response(
        StatusCode::OK,
        app.clock.now_ms().div_euclid(1000).to_string(),
    )
}

/// A live book of `token`: its window and side, if the token is known, its market listed
/// and not resolved.
enum Lookup<'a> {
    Invalid,
    Missing,
    Live(&'a WindowInfo, Side),
}

fn lookup<'a>(app: &'a Shared, token: &str, now: i64) -> Lookup<'a> {
    let token = token.trim();
    if token.is_empty() || token.len() > 78 || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Lookup::Invalid;
    }
    let Some(w) = app.model.data().window_of_token(token) else {
        return Lookup::Missing;
    };
    let Some(side) = w.side_of(token) else {
        return Lookup::Missing;
    };
    if !app.model.listed(w, now)
        || matches!(
            app.model.phase(w, now, app.faults.resolution(w.start)),
            Phase::Resolved(_)
        )
    {
        return Lookup::Missing;
    }
    Lookup::Live(w, side)
}

fn level(p: &Decimal, s: &Decimal) -> Value {
    json!({"price": p.normalize().to_string(), "size": s.normalize().to_string()})
}

/// The REST `/book` body of `side` of `w` at `now`: bids ascending, asks descending.
fn book_value(app: &Shared, w: &WindowInfo, side: Side, now: i64) -> Value {
    let book = app.model.book(w, side, now);
    let token = w.token(side);
    json!({
        "market": w.condition_id,
        "asset_id": token,
        "timestamp": now.to_string(),
        "hash": Model::book_hash(token, now, &book),
        "bids": book.bids.iter().rev().map(|(p, s)| level(p, s)).collect::<Vec<_>>(),
        "asks": book.asks.iter().rev().map(|(p, s)| level(p, s)).collect::<Vec<_>>(),
        "min_order_size": "5",
        "tick_size": "0.01",
        "neg_risk": false,
        "last_trade_price": book.best_ask().map(|p| p.normalize().to_string()),
    })
}

fn no_book(invalid: bool) -> Response {
    if invalid {
        json_response(
            StatusCode::BAD_REQUEST,
            r#"{"error":"Invalid token id"}"#.into(),
        )
    } else {
        json_response(
            StatusCode::NOT_FOUND,
            r#"{"error":"No orderbook exists for the requested token id"}"#.into(),
        )
    }
}

async fn book(State(app): State<Shared>, Query(q): Query<Params>) -> Response {
    let now = app.clock.now_ms();
    let token = param(&q, "token_id").unwrap_or_default();
    match lookup(&app, &token, now) {
        Lookup::Live(w, side) => {
            json_response(StatusCode::OK, book_value(&app, w, side, now).to_string())
        }
        Lookup::Invalid => no_book(true),
        Lookup::Missing => no_book(false),
    }
}

#[derive(Deserialize)]
struct BookParam {
    token_id: String,
}

async fn books(State(app): State<Shared>, body: String) -> Response {
    let now = app.clock.now_ms();
    let Ok(wanted) = serde_json::from_str::<Vec<BookParam>>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            r#"{"error":"Invalid payload"}"#.into(),
        );
    };
    if wanted.len() > 500 {
        return json_response(
            StatusCode::BAD_REQUEST,
            r#"{"error":"Payload exceeds the limit"}"#.into(),
        );
    }
    let list: Vec<Value> = wanted
        .iter()
        .filter_map(|b| match lookup(&app, &b.token_id, now) {
            Lookup::Live(w, side) => Some(book_value(&app, w, side, now)),
            _ => None,
        })
        .collect();
    json_response(StatusCode::OK, Value::Array(list).to_string())
}

async fn midpoint(State(app): State<Shared>, Query(q): Query<Params>) -> Response {
    let now = app.clock.now_ms();
    let token = param(&q, "token_id").unwrap_or_default();
    match lookup(&app, &token, now) {
        Lookup::Live(w, side) => {
            let b = app.model.book(w, side, now);
            match (b.best_bid(), b.best_ask()) {
                (Some(bid), Some(ask)) => json_response(
                    StatusCode::OK,
                    json!({"mid": ((bid + ask) / Decimal::TWO).normalize().to_string()})
                        .to_string(),
                ),
                _ => no_book(false),
            }
        }
        Lookup::Invalid => no_book(true),
        Lookup::Missing => no_book(false),
    }
}

// ---- market channel ----

#[derive(Deserialize, Default)]
struct SubMessage {
    #[serde(default)]
    assets_ids: Option<Vec<String>>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    custom_feature_enabled: Option<bool>,
    #[serde(default)]
    initial_dump: Option<bool>,
}

async fn market_ws(State(app): State<Shared>, mut req: Request) -> Response {
    let (response, on_upgrade) = match upgrade(&mut req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let mut conn = Conn::new(ws, Service::ClobWs, app);
        let _ = clob_session(&mut conn).await;
    });
    response.into_response()
}

/// Per-connection market-channel state.
#[derive(Default)]
struct Channel {
    subscribed: bool,
    custom: bool,
    assets: BTreeSet<String>,
    /// Last book sent per asset.
    sent: BTreeMap<String, Book>,
    /// Markets whose `market_resolved` was handled (sent, or skipped without the feature).
    resolved: BTreeSet<String>,
    last_bucket: BTreeMap<String, i64>,
}

fn book_event(w: &WindowInfo, side: Side, now: i64, book: &Book) -> Value {
    let token = w.token(side);
    json!({
        "event_type": "book",
        "asset_id": token,
        "market": w.condition_id,
        "bids": book.bids.iter().rev().map(|(p, s)| level(p, s)).collect::<Vec<_>>(),
        "asks": book.asks.iter().rev().map(|(p, s)| level(p, s)).collect::<Vec<_>>(),
        "timestamp": now.to_string(),
        "hash": Model::book_hash(token, now, book),
    })
}

/// Level changes from `old` to `new` on one side: `(price, new size)`, 0 = removed.
fn diff(old: &[(Decimal, Decimal)], new: &[(Decimal, Decimal)]) -> Vec<(Decimal, Decimal)> {
    let o: BTreeMap<_, _> = old.iter().copied().collect();
    let n: BTreeMap<_, _> = new.iter().copied().collect();
    let mut out: Vec<_> = n
        .iter()
        .filter(|(p, s)| o.get(*p) != Some(*s))
        .map(|(p, s)| (*p, *s))
        .collect();
    out.extend(
        o.keys()
            .filter(|p| !n.contains_key(*p))
            .map(|p| (*p, Decimal::ZERO)),
    );
    out
}

fn opt_price(p: Option<Decimal>) -> Value {
    p.map_or(Value::Null, |p| json!(p.normalize().to_string()))
}

impl Channel {
    /// Data frames due at `now`: new books, changes, tops, resolutions.
    /// New assets' snapshots are recorded as sent but left out unless `emit_snapshots`
    /// (a subscription with `initial_dump: false`).
    fn due(&mut self, app: &Shared, now: i64, emit_snapshots: bool) -> Vec<String> {
        let data = app.model.data();
        let mut snapshots = Vec::new();
        let mut out = Vec::new();
        // Group this connection's assets by market.
        let mut by_market: BTreeMap<i64, (&WindowInfo, Vec<Side>)> = BTreeMap::new();
        for a in &self.assets {
            if let Some(w) = data.window_of_token(a)
                && let Some(side) = w.side_of(a)
            {
                by_market
                    .entry(w.start)
                    .or_insert((w, Vec::new()))
                    .1
                    .push(side);
            }
        }
        for (w, sides) in by_market.values() {
            if !app.model.listed(w, now) {
                continue;
            }
            let phase = app.model.phase(w, now, app.faults.resolution(w.start));
            if let Phase::Resolved(winner) = phase {
                if self.resolved.insert(w.condition_id.clone()) && self.custom {
                    out.push(resolved_event(w, winner, now).to_string());
                }
                continue;
            }
            let bucket = app.model.bucket(w, now);
            let mut changes = Vec::new();
            for side in sides {
                let token = w.token(*side).to_string();
                let book = app.model.book(w, *side, now);
                match self.sent.get(&token) {
                    None => snapshots.push(book_event(w, *side, now, &book)),
                    Some(old) => {
                        if self.last_bucket.get(&token) == Some(&bucket) {
                            continue;
                        }
                        let hash = Model::book_hash(&token, now, &book);
                        for (side_name, old_l, new_l) in [
                            ("BUY", &old.bids, &book.bids),
                            ("SELL", &old.asks, &book.asks),
                        ] {
                            for (p, s) in diff(old_l, new_l) {
                                changes.push(json!({
                                    "asset_id": token,
                                    "price": p.normalize().to_string(),
                                    "size": s.normalize().to_string(),
                                    "side": side_name,
                                    "hash": hash,
                                    "best_bid": opt_price(book.best_bid()),
                                    "best_ask": opt_price(book.best_ask()),
                                }));
                            }
                        }
                        if self.custom
                            && (old.best_bid() != book.best_bid()
                                || old.best_ask() != book.best_ask())
                            && let (Some(b), Some(a)) = (book.best_bid(), book.best_ask())
                        {
                            out.push(
                                json!({
                                    "event_type": "best_bid_ask",
                                    "market": w.condition_id,
                                    "asset_id": token,
                                    "best_bid": b.normalize().to_string(),
                                    "best_ask": a.normalize().to_string(),
                                    "spread": (a - b).normalize().to_string(),
                                    "timestamp": now.to_string(),
                                })
                                .to_string(),
                            );
                        }
                    }
                }
                self.last_bucket.insert(token.clone(), bucket);
                self.sent.insert(token, book);
            }
            if !changes.is_empty() {
                let ev = json!({
                    "market": w.condition_id,
                    "price_changes": changes,
                    "timestamp": now.to_string(),
                    "event_type": "price_change",
                });
                // Changes go before any best_bid_ask of this pass.
                out.insert(0, ev.to_string());
            }
        }
        if !snapshots.is_empty() && emit_snapshots {
            out.insert(0, Value::Array(snapshots).to_string());
        }
        out
    }
}

fn resolved_event(w: &WindowInfo, winner: Side, now: i64) -> Value {
    let q = super::market::question(w.start, w.end);
    json!({
        "event_type": "market_resolved",
        "id": w.market_id,
        "question": q,
        "market": w.condition_id,
        "slug": w.slug,
        "description": "This market will resolve to \"Up\" if the Bitcoin price at the end of the time range specified in the title is greater than or equal to the price at the beginning of that range. Otherwise, it will resolve to \"Down\".",
        "assets_ids": [w.up_token, w.down_token],
        "outcomes": ["Up", "Down"],
        "winning_asset_id": w.token(winner),
        "winning_outcome": match winner { Side::Up => "Up", Side::Down => "Down" },
        "event_message": {
            "id": w.event_id,
            "ticker": w.slug,
            "slug": w.slug,
            "title": q,
            "description": "Bitcoin Up or Down",
        },
        "timestamp": now.to_string(),
        "tags": ["crypto"],
    })
}

/// Applies one client text: `Ok(Some(emit_snapshots))` after a (new) subscription, `Err`
/// when the session must end.
async fn on_text(conn: &mut Conn, ch: &mut Channel, text: &str) -> Result<Option<bool>, Ended> {
    let app = conn.app.clone();
    if text.trim() == "PING" {
        if !ch.subscribed {
            conn.close(CloseCode::Policy, "invalid subscription payload")
                .await;
            return Err(Ended);
        }
        app.stats.clob_ping();
        conn.send_control("PONG".into()).await?;
        return Ok(None);
    }
    let msg: SubMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(_) if ch.subscribed => {
            tracing::debug!(target: "updown::loopback", "clob ws: ignoring {text:?}");
            return Ok(None);
        }
        Err(_) => {
            conn.close(CloseCode::Policy, "invalid subscription payload")
                .await;
            return Err(Ended);
        }
    };
    let is_market = msg
        .kind
        .as_deref()
        .is_some_and(|k| k.eq_ignore_ascii_case("market"));
    let op = msg.operation.as_deref().map(str::to_ascii_lowercase);
    let assets = msg.assets_ids.unwrap_or_default();
    if !ch.subscribed {
        if !is_market || op.as_deref() == Some("unsubscribe") {
            conn.close(CloseCode::Policy, "invalid subscription payload")
                .await;
            return Err(Ended);
        }
        ch.subscribed = true;
        ch.custom = msg.custom_feature_enabled.unwrap_or(false);
        ch.assets.extend(assets.iter().cloned());
        app.stats.clob_subscription(&assets);
        return Ok(Some(msg.initial_dump.unwrap_or(true)));
    }
    match op.as_deref() {
        Some("unsubscribe") => {
            for a in &assets {
                ch.assets.remove(a);
                ch.sent.remove(a);
                ch.last_bucket.remove(a);
            }
        }
        _ => {
            if let Some(c) = msg.custom_feature_enabled {
                ch.custom = c;
            }
            ch.assets.extend(assets.iter().cloned());
            app.stats.clob_subscription(&assets);
        }
    }
    Ok(Some(true))
}

async fn clob_session(conn: &mut Conn) -> Result<(), Ended> {
    let app = conn.app.clone();
    let mut ch = Channel::default();
    let mut tick = tokio::time::interval(app.cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            msg = conn.ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    last_heard = Instant::now();
                    if let Some(emit) = on_text(conn, &mut ch, t.as_str()).await? {
                        // New assets get their snapshot now (or, without initial_dump, are
                        // marked as sent so only changes follow).
                        let now = app.clock.now_ms();
                        for frame in ch.due(&app, now, emit) {
                            conn.send_data(frame).await?;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(Ended),
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                conn.check().await?;
                if last_heard.elapsed() >= app.cfg.clob_idle_timeout {
                    tracing::info!(target: "updown::loopback", "clob ws: dropping an idle client");
                    conn.close(CloseCode::Normal, "idle").await;
                    return Err(Ended);
                }
                if ch.subscribed {
                    let now = app.clock.now_ms();
                    for frame in ch.due(&app, now, true) {
                        conn.send_data(frame).await?;
                    }
                }
            }
        }
    }
}
