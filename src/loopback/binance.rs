//! Binance spot, as served by the loopback venue: REST `GET /api/v3/klines`, `/api/v3/time`
//! and `/api/v3/ping` under `/binance`, and the WebSocket streams under `/binance-ws`
//! (combined `/stream?streams=a/b` with the `{"stream","data"}` envelope, raw `/ws/<stream>`,
//! live `SUBSCRIBE`/`UNSUBSCRIBE`/`LIST_SUBSCRIPTIONS`, `timeUnit=MICROSECOND`).
//!
//! Formats are reference §7.1–7.2. Only `BTCUSDT` and `1m` exist here (other intervals
//! answer Binance's `-1120 Invalid interval.`, where the real API would aggregate).
//! Streams: `btcusdt@kline_1m`, `btcusdt@aggTrade`, `btcusdt@trade`; others are accepted and
//! stay silent.

use super::faults::Service;
use super::market::{PartialBar, hash_of, unit};
use super::server::{Shared, json_response, upgrade};
use super::ws::{Conn, Ended};
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

const SYMBOL: &str = "BTCUSDT";
const KLINE_STREAM: &str = "btcusdt@kline_1m";
const AGG_STREAM: &str = "btcusdt@aggtrade";
const TRADE_STREAM: &str = "btcusdt@trade";
const MINUTE_MS: i64 = 60_000;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/binance/api/v3/klines", get(klines))
        .route("/binance/api/v3/time", get(time))
        .route(
            "/binance/api/v3/ping",
            get(|| async { json_response(StatusCode::OK, "{}".into()) }),
        )
        .route("/binance-ws/stream", get(ws_combined))
        .route("/binance-ws/ws", get(ws_raw_bare))
        .route("/binance-ws/ws/{stream}", get(ws_raw))
}

fn api_error(status: StatusCode, code: i64, msg: &str) -> Response {
    json_response(status, json!({"code": code, "msg": msg}).to_string())
}

fn mandatory(name: &str) -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        -1102,
        &format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
    )
}

/// `{:.8}` as Binance writes prices and quantities.
fn n8(x: f64) -> String {
    format!("{x:.8}")
}

/// Derived per-bar figures: trade ids, count, quote and taker volumes.
struct BarExtras {
    first_id: i64,
    trades: i64,
    quote: f64,
    taker_base: f64,
    taker_quote: f64,
}

fn extras(seed: u64, bar: &PartialBar) -> BarExtras {
    let minute = bar.open_ms / MINUTE_MS;
    let trades = ((bar.volume * 37.0).round() as i64).max(1);
    let mid = (bar.open + bar.close) / 2.0;
    let taker_share = 0.35 + 0.3 * unit(seed, &[minute as u64, 7]);
    BarExtras {
        first_id: minute * 10_000,
        trades,
        quote: bar.volume * mid,
        taker_base: bar.volume * taker_share,
        taker_quote: bar.volume * taker_share * mid,
    }
}

/// One `GET /api/v3/klines` row: `[t, o, h, l, c, v, T, q, n, V, Q, "0"]`.
fn kline_row(seed: u64, bar: &PartialBar) -> Value {
    let x = extras(seed, bar);
    json!([
        bar.open_ms,
        n8(bar.open),
        n8(bar.high),
        n8(bar.low),
        n8(bar.close),
        n8(bar.volume),
        bar.open_ms + MINUTE_MS - 1,
        n8(x.quote),
        x.trades,
        n8(x.taker_base),
        n8(x.taker_quote),
        "0"
    ])
}

/// The `kline` event payload; times in ms, or µs when `micros`.
fn kline_event(seed: u64, bar: &PartialBar, event_ms: i64, micros: bool) -> Value {
    let x = extras(seed, bar);
    let u = if micros { 1000 } else { 1 };
    json!({
        "e": "kline",
        "E": event_ms * u,
        "s": SYMBOL,
        "k": {
            "t": bar.open_ms * u,
            "T": (bar.open_ms + MINUTE_MS) * u - 1,
            "s": SYMBOL,
            "i": "1m",
            "f": x.first_id,
            "L": x.first_id + x.trades - 1,
            "o": n8(bar.open),
            "c": n8(bar.close),
            "h": n8(bar.high),
            "l": n8(bar.low),
            "v": n8(bar.volume),
            "n": x.trades,
            "x": bar.closed,
            "q": n8(x.quote),
            "V": n8(x.taker_base),
            "Q": n8(x.taker_quote),
            "B": "0"
        }
    })
}

fn int_param(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Box<Response>> {
    match q.get(name).map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            Box::new(api_error(
                StatusCode::BAD_REQUEST,
                -1100,
                &format!(
                    "Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
                ),
            ))
        }),
    }
}

async fn klines(State(app): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    match klines_body(&app, &q) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(r) => *r,
    }
}

fn klines_body(app: &Shared, q: &HashMap<String, String>) -> Result<String, Box<Response>> {
    let now = app.clock.now_ms();
    match q.get("symbol").map(|s| s.trim()) {
        None | Some("") => return Err(Box::new(mandatory("symbol"))),
        Some(s) if s != SYMBOL => {
            return Err(Box::new(api_error(
                StatusCode::BAD_REQUEST,
                -1121,
                "Invalid symbol.",
            )));
        }
        Some(_) => {}
    }
    match q.get("interval").map(|s| s.trim()) {
        None | Some("") => return Err(Box::new(mandatory("interval"))),
        Some("1m") => {}
        Some(_) => {
            return Err(Box::new(api_error(
                StatusCode::BAD_REQUEST,
                -1120,
                "Invalid interval.",
            )));
        }
    }
    let start = int_param(q, "startTime")?;
    let end = int_param(q, "endTime")?;
    let limit = int_param(q, "limit")?.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(Box::new(api_error(
            StatusCode::BAD_REQUEST,
            -1130,
            "Invalid data sent for a parameter.",
        )));
    }
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(Box::new(api_error(
            StatusCode::BAD_REQUEST,
            -1023,
            "Start time is greater than end time.",
        )));
    }
    let candles = &app.model.data().candles;
    // Visible: bars closed by now; plus the forming one when configured.
    let closed_n = candles.partition_point(|c| c.open_time * 1000 + MINUTE_MS <= now);
    let lo = start.map_or(0, |s| candles.partition_point(|c| c.open_time * 1000 < s));
    let hi = end.map_or(closed_n, |e| {
        candles
            .partition_point(|c| c.open_time * 1000 <= e)
            .min(closed_n)
    });
    let lo = lo.min(hi);
    let limit = limit as usize;
    // Binance's last row is the bar still forming; it counts towards `limit`.
    let forming = app
        .cfg
        .forming_bar
        .then(|| app.model.partial_bar(now))
        .flatten()
        .filter(|b| start.is_none_or(|s| b.open_ms >= s) && end.is_none_or(|e| b.open_ms <= e));
    let (from, to) = if start.is_some() {
        (lo, hi.min(lo + limit))
    } else {
        let room = limit - usize::from(forming.is_some() && hi == closed_n);
        (hi.saturating_sub(room).max(lo), hi)
    };
    let seed = app.cfg.seed;
    let mut rows: Vec<Value> = candles[from..to]
        .iter()
        .filter_map(|c| app.model.closed_bar(c.open_time * 1000))
        .map(|b| kline_row(seed, &b))
        .collect();
    if let Some(bar) = forming
        && rows.len() < limit
        && to == closed_n
    {
        rows.push(kline_row(seed, &bar));
    }
    Ok(Value::Array(rows).to_string())
}

async fn time(State(app): State<Shared>) -> Response {
    json_response(
        StatusCode::OK,
        json!({"serverTime": app.clock.now_ms()}).to_string(),
    )
}

/// How a client connected.
#[derive(Clone, Debug)]
struct StreamSetup {
    /// Combined streams wrap each event in `{"stream","data"}`.
    combined: bool,
    streams: BTreeSet<String>,
    micros: bool,
}

async fn ws_combined(
    State(app): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let streams = q
        .get("streams")
        .map(|s| {
            s.split('/')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    start_ws(
        app,
        req,
        StreamSetup {
            combined: true,
            streams,
            micros: is_micros(&q),
        },
    )
}

async fn ws_raw(
    State(app): State<Shared>,
    Path(stream): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let streams = stream
        .split('/')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect();
    start_ws(
        app,
        req,
        StreamSetup {
            combined: false,
            streams,
            micros: is_micros(&q),
        },
    )
}

async fn ws_raw_bare(
    State(app): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    start_ws(
        app,
        req,
        StreamSetup {
            combined: false,
            streams: BTreeSet::new(),
            micros: is_micros(&q),
        },
    )
}

fn is_micros(q: &HashMap<String, String>) -> bool {
    q.get("timeUnit")
        .is_some_and(|u| u.eq_ignore_ascii_case("microsecond"))
}

fn start_ws(app: Shared, mut req: Request, setup: StreamSetup) -> Response {
    let (response, on_upgrade) = match upgrade(&mut req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    app.stats.binance_streams(setup.streams.iter());
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let mut conn = Conn::new(ws, Service::BinanceWs, app);
        let _ = session(&mut conn, setup).await;
    });
    response.into_response()
}

/// Per-connection sender state.
struct Feed {
    setup: StreamSetup,
    /// Open time (ms) of the last minute whose closing kline was sent.
    last_closed_open: i64,
    last_update: i64,
    last_trade: i64,
    trade_seq: u64,
}

impl Feed {
    fn wants(&self, name: &str) -> Option<&String> {
        self.setup
            .streams
            .iter()
            .find(|s| s.eq_ignore_ascii_case(name))
    }

    fn wrap(&self, stream: &str, payload: Value) -> String {
        if self.setup.combined {
            json!({"stream": stream, "data": payload}).to_string()
        } else {
            payload.to_string()
        }
    }

    /// Frames due at virtual time `now`, oldest first.
    fn due(&mut self, app: &Shared, now: i64) -> Vec<String> {
        let seed = app.cfg.seed;
        let micros = self.setup.micros;
        let mut out = Vec::new();
        let current_open = now.div_euclid(MINUTE_MS) * MINUTE_MS;
        if let Some(name) = self.wants(KLINE_STREAM).cloned() {
            // Every minute that closed since the last pass, each exactly once.
            let mut m = self.last_closed_open + MINUTE_MS;
            while m + MINUTE_MS <= now {
                if let Some(bar) = app.model.closed_bar(m) {
                    out.push(self.wrap(&name, kline_event(seed, &bar, m + MINUTE_MS, micros)));
                }
                self.last_closed_open = m;
                m += MINUTE_MS;
            }
            if now - self.last_update >= app.cfg.kline_update_ms
                && let Some(bar) = app.model.partial_bar(now)
            {
                out.push(self.wrap(&name, kline_event(seed, &bar, now, micros)));
                self.last_update = now;
            }
        } else {
            self.last_closed_open = current_open - MINUTE_MS;
        }
        let agg = self.wants(AGG_STREAM).cloned();
        let raw = self.wants(TRADE_STREAM).cloned();
        if (agg.is_some() || raw.is_some())
            && now - self.last_trade >= app.cfg.trade_interval_ms
            && let Some(bar) = app.model.partial_bar(now)
        {
            self.last_trade = now;
            self.trade_seq += 1;
            let id = (now / 10) as u64;
            let qty = (0.0005 + 0.05 * unit(seed, &[id, 3])).min(bar.volume.max(0.0005));
            let m = hash_of(seed, &[id, 4]).is_multiple_of(2);
            let u = if micros { 1000 } else { 1 };
            let (t, e) = ((now - 1) * u, now * u);
            if let Some(name) = agg {
                let p = json!({"e": "aggTrade", "E": e, "s": SYMBOL, "a": id, "p": n8(bar.close),
                    "q": n8(qty), "f": id * 3, "l": id * 3 + 1, "T": t, "m": m, "M": true});
                out.push(self.wrap(&name, p));
            }
            if let Some(name) = raw {
                let p = json!({"e": "trade", "E": e, "s": SYMBOL, "t": id * 3, "p": n8(bar.close),
                    "q": n8(qty), "T": t, "m": m, "M": true});
                out.push(self.wrap(&name, p));
            }
        }
        out
    }
}

/// Answers a `SUBSCRIBE`/`UNSUBSCRIBE`/`LIST_SUBSCRIPTIONS` request.
fn request(feed: &mut Feed, app: &Shared, text: &str) -> String {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => {
            return json!({"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"})
                .to_string();
        }
    };
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let params: Vec<String> = v
        .get("params")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match v.get("method").and_then(Value::as_str) {
        Some("SUBSCRIBE") => {
            app.stats.binance_streams(params.iter());
            feed.setup.streams.extend(params);
            json!({"result": null, "id": id}).to_string()
        }
        Some("UNSUBSCRIBE") => {
            for p in &params {
                feed.setup.streams.remove(p);
            }
            json!({"result": null, "id": id}).to_string()
        }
        Some("LIST_SUBSCRIPTIONS") => {
            json!({"result": feed.setup.streams.iter().collect::<Vec<_>>(), "id": id}).to_string()
        }
        _ => json!({"code": 1, "msg": "Invalid request: unknown method", "id": id}).to_string(),
    }
}

async fn session(conn: &mut Conn, setup: StreamSetup) -> Result<(), Ended> {
    let app = conn.app.clone();
    let now = app.clock.now_ms();
    let mut feed = Feed {
        setup,
        last_closed_open: now.div_euclid(MINUTE_MS) * MINUTE_MS - MINUTE_MS,
        last_update: i64::MIN / 2,
        last_trade: i64::MIN / 2,
        trade_seq: 0,
    };
    let mut tick = tokio::time::interval(app.cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ping = Instant::now();
    loop {
        tokio::select! {
            msg = conn.ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let answer = request(&mut feed, &app, t.as_str());
                    conn.send_control(answer).await?;
                }
                Some(Ok(Message::Pong(_))) => app.stats.binance_pong(),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(Ended),
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                conn.check().await?;
                if last_ping.elapsed() >= app.cfg.binance_ping_interval {
                    last_ping = Instant::now();
                    conn.ws.send(Message::Ping(Vec::new().into())).await.map_err(|_| Ended)?;
                }
                let now = app.clock.now_ms();
                for frame in feed.due(&app, now) {
                    conn.send_data(frame).await?;
                }
            }
        }
    }
}
