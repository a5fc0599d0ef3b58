//! The loopback test venue over real sockets on 127.0.0.1: every REST body and WebSocket
//! frame it serves parses with the project's own parsers, nothing is shown before its
//! virtual time, and every fault is observable from the client side.
//!
//! Tests run at high virtual speed (600×: a 5-minute window passes in 0.5 s) and assert with
//! generous real-time bounds, so they hold on a busy 2-core machine.

use futures_util::{SinkExt, StreamExt};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use updown::feed::binance::{
    BinanceError, BinanceMessage, TimeUnit, closed_by, parse_klines, parse_rest_error,
    parse_ws_message,
};
use updown::feed::{Candle, load_csv};
use updown::loopback::{
    DEFAULT_START_WINDOW, FaultSpec, LoopbackConfig, LoopbackVenue, Running, Service, data,
};
use updown::venue::polymarket::book::BookError;
use updown::venue::polymarket::clob::{MarketEvent, WsFrame, parse_books};
use updown::venue::polymarket::gamma::{MarketResolution, ResolutionRule};
use updown::venue::polymarket::{
    ClobError, GammaError, MarketInfo, OrderBook, parse_book, parse_event, parse_events,
    parse_markets, parse_ws_frame,
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The default first window (2026-02-21 16:30 UTC) and its successors.
const W: i64 = DEFAULT_START_WINDOW;

fn start(edit: impl FnOnce(&mut LoopbackConfig)) -> Running {
    let mut cfg = LoopbackConfig::default().with_speed(600.0);
    edit(&mut cfg);
    LoopbackVenue::start(cfg).expect("the loopback venue starts")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client")
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

async fn get(c: &reqwest::Client, url: &str) -> Answer {
    let r = c.get(url).send().await.expect("the venue answers");
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = r.text().await.expect("a body");
    Answer {
        status,
        retry_after,
        body,
    }
}

async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("connects in time")
    .expect("the WebSocket handshake succeeds");
    ws
}

/// What one read of a WebSocket gave.
#[derive(Debug)]
enum Read {
    Text(String),
    Closed(Option<CloseCode>),
    Error(String),
    Timeout,
}

/// The next text frame (protocol pings and pongs skipped), a close, an error or a timeout.
async fn read(ws: &mut Ws, within: Duration) -> Read {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Read::Timeout,
            Ok(None) => return Read::Closed(None),
            Ok(Some(Err(e))) => return Read::Error(e.to_string()),
            Ok(Some(Ok(Message::Text(t)))) => return Read::Text(t.to_string()),
            Ok(Some(Ok(Message::Close(f)))) => return Read::Closed(f.map(|f| f.code)),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Every text frame received within `d`.
async fn collect(ws: &mut Ws, d: Duration) -> Vec<String> {
    let deadline = Instant::now() + d;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return out;
        }
        match read(ws, left).await {
            Read::Text(t) => out.push(t),
            Read::Timeout => return out,
            other => panic!("the socket ended early: {other:?}"),
        }
    }
}

fn recorded_candles() -> Vec<Candle> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(data::KLINES_FILE);
    load_csv(&path).expect("the recorded week loads").candles
}

fn recorded(candles: &[Candle], open_time: i64) -> Candle {
    let i = candles.partition_point(|c| c.open_time < open_time);
    assert_eq!(candles[i].open_time, open_time, "a recorded minute");
    candles[i]
}

/// Start of the window after the one running now (listed, not started: its book moves for
/// two windows' time).
fn upcoming(v: &Running) -> i64 {
    let now = v.now_ms() / 1000;
    now - now.rem_euclid(300) + 300
}

async fn market(c: &reqwest::Client, v: &Running, start: i64) -> MarketInfo {
    let w = v.window(start).expect("a recorded window");
    let a = get(c, &format!("{}/events?slug={}", v.urls().gamma, w.slug)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    parse_events(&a.body, &w.slug)
        .expect("the event parses")
        .expect("the market is listed")
}

async fn subscribe(ws: &mut Ws, assets: &[&str], custom: bool) {
    let msg = serde_json::json!({
        "assets_ids": assets,
        "type": "market",
        "custom_feature_enabled": custom,
    });
    ws.send(Message::text(msg.to_string()))
        .await
        .expect("the subscription is sent");
}

// ---------------------------------------------------------------------------------------
// Binance
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_klines_are_the_recorded_bars_and_never_from_the_virtual_future() {
    let v = start(|_| {});
    let c = http();
    let base = v.urls().binance_rest;
    let candles = recorded_candles();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let (mut polls, mut newest_seen) = (0, 0);
    while Instant::now() < deadline {
        let before = v.now_ms();
        let a = get(
            &c,
            &format!("{base}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1000"),
        )
        .await;
        let after = v.now_ms();
        assert_eq!(a.status, 200, "{}", a.body);
        let bars = parse_klines(&a.body).expect("the klines parse");
        assert!(!bars.is_empty());
        for b in &bars {
            assert!(
                b.close_time() * 1000 <= after,
                "bar {} closes in the future",
                b.open_time
            );
            assert_eq!(*b, recorded(&candles, b.open_time));
        }
        let newest = bars.last().map_or(0, |b| b.close_time() * 1000);
        assert!(newest > before - 60_000, "the newest closed bar is served");
        assert!(newest >= newest_seen);
        newest_seen = newest;

        // A backfill window (startTime/endTime) obeys the same rule.
        let from = newest - 30 * 60_000;
        let a = get(
            &c,
            &format!(
                "{base}/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime={from}&endTime={}&limit=10",
                after + 3_600_000
            ),
        )
        .await;
        let later = v.now_ms();
        let bars = parse_klines(&a.body).expect("the klines parse");
        assert_eq!(bars.len(), 10);
        assert_eq!(bars[0].open_time * 1000, from);
        assert!(bars.iter().all(|b| b.close_time() * 1000 <= later));

        let t = get(&c, &format!("{base}/api/v3/time")).await;
        let server: serde_json::Value = serde_json::from_str(&t.body).expect("time is JSON");
        let server = server["serverTime"].as_i64().expect("serverTime");
        assert!(server >= after && server <= v.now_ms());
        polls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(polls >= 5, "only {polls} polls");
    // 1.5 s at 600× is 15 virtual minutes: new bars appeared while polling.
    assert!(newest_seen - v.config().start_ms() >= 5 * 60_000);
    assert_eq!(
        v.stats().requests_to("/binance/api/v3/klines"),
        2 * polls as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_klines_forming_bar_is_partial_and_dropped_by_closed_by() {
    let v = start(|c| c.forming_bar = true);
    let c = http();
    let candles = recorded_candles();
    for _ in 0..5 {
        let before = v.now_ms();
        let a = get(
            &c,
            &format!(
                "{}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=5",
                v.urls().binance_rest
            ),
        )
        .await;
        let bars = parse_klines(&a.body).expect("the klines parse");
        let forming = *bars.last().expect("rows");
        assert!(
            forming.close_time() * 1000 > before,
            "the last row is the forming bar"
        );
        let full = recorded(&candles, forming.open_time);
        assert_eq!(forming.open, full.open);
        assert!(forming.high <= full.high && forming.low >= full.low);
        assert!(forming.volume <= full.volume);
        let visible = closed_by(&bars, before / 1000);
        assert!(
            visible.len() < bars.len(),
            "closed_by drops the forming bar"
        );
        assert!(visible.iter().all(|b| b.open_time < forming.open_time));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_klines_errors_are_binance_error_bodies() {
    let v = start(|_| {});
    let c = http();
    let base = v.urls().binance_rest;
    for (query, code) in [
        ("symbol=ETHUSDT&interval=1m", -1121),
        ("interval=1m", -1102),
        ("symbol=BTCUSDT", -1102),
        ("symbol=BTCUSDT&interval=5m", -1120),
        ("symbol=BTCUSDT&interval=1m&startTime=abc", -1100),
        ("symbol=BTCUSDT&interval=1m&startTime=20&endTime=10", -1023),
    ] {
        let a = get(&c, &format!("{base}/api/v3/klines?{query}")).await;
        assert_eq!(a.status, 400, "{query}");
        match parse_klines(&a.body) {
            Err(BinanceError::Api { code: got, .. }) => assert_eq!(got, code, "{query}"),
            other => panic!("{query}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_ws_sends_updates_and_each_closing_kline_once_in_order() {
    let v = start(|_| {});
    let candles = recorded_candles();
    let mut ws = connect(&format!(
        "{}/stream?streams=btcusdt@kline_1m/btcusdt@aggTrade",
        v.urls().binance_ws
    ))
    .await;
    let frames = collect(&mut ws, Duration::from_millis(1300)).await;
    let after = v.now_ms();
    let (mut closes, mut updates, mut trades) = (Vec::new(), 0, 0);
    for f in &frames {
        let frame = parse_ws_message(f, TimeUnit::Millisecond).expect("every frame parses");
        match frame.message {
            BinanceMessage::Kline(k) => {
                assert_eq!(frame.stream.as_deref(), Some("btcusdt@kline_1m"));
                assert!(k.event_time_ms <= after);
                let open_ms = k.candle.open_time * 1000;
                if k.closed {
                    assert!(k.event_time_ms >= open_ms + 60_000, "closed at its close");
                    assert_eq!(k.candle, recorded(&candles, k.candle.open_time));
                    closes.push(k.candle.open_time);
                } else {
                    assert!((open_ms..open_ms + 60_000).contains(&k.event_time_ms));
                    let full = recorded(&candles, k.candle.open_time);
                    assert!(k.candle.high <= full.high && k.candle.low >= full.low);
                    updates += 1;
                }
            }
            BinanceMessage::Trade(t) => {
                assert_eq!(frame.stream.as_deref(), Some("btcusdt@aggTrade"));
                assert!(t.price > 60_000.0 && t.time_ms <= t.event_time_ms);
                trades += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        closes.len() >= 5,
        "{} closes in 13 virtual minutes",
        closes.len()
    );
    for w in closes.windows(2) {
        assert_eq!(w[1] - w[0], 60, "each minute closes once, in order");
    }
    assert!(updates >= closes.len(), "x:false updates between closes");
    assert!(trades > 0);
    let s = v.stats();
    assert_eq!(s.ws_connections_to(Service::BinanceWs), 1);
    assert!(s.binance_streams.contains("btcusdt@kline_1m"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_ws_raw_stream_in_microseconds_and_live_subscribe() {
    let v = start(|_| {});
    let mut ws = connect(&format!(
        "{}/ws/btcusdt@kline_1m?timeUnit=MICROSECOND",
        v.urls().binance_ws
    ))
    .await;
    let Read::Text(t) = read(&mut ws, Duration::from_secs(3)).await else {
        panic!("no kline")
    };
    let f = parse_ws_message(&t, TimeUnit::Microsecond).expect("a raw µs kline parses");
    assert_eq!(f.stream, None);
    assert!(matches!(f.message, BinanceMessage::Kline(_)));
    // Microsecond times read as milliseconds are caught by the parser.
    assert!(parse_ws_message(&t, TimeUnit::Millisecond).is_err());

    ws.send(Message::text(
        r#"{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":7}"#,
    ))
    .await
    .expect("sent");
    let mut answered = false;
    let mut trade = false;
    for _ in 0..200 {
        let Read::Text(t) = read(&mut ws, Duration::from_secs(3)).await else {
            break;
        };
        match parse_ws_message(&t, TimeUnit::Microsecond)
            .expect("parses")
            .message
        {
            BinanceMessage::Response { id, result } => {
                assert!(result.is_null() && id.is_some());
                answered = true;
            }
            BinanceMessage::Trade(_) => trade = true,
            _ => {}
        }
        if answered && trade {
            break;
        }
    }
    assert!(answered && trade);
}

// ---------------------------------------------------------------------------------------
// Gamma
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gamma_shows_the_real_outcome_only_after_window_end_plus_delay() {
    let v = start(|c| c.resolution_delay_secs = 60);
    let c = http();
    let w = v.window(W).expect("window");
    let outcome = w.outcome.expect("a resolved window");
    let resolves_at = (w.end + 60) * 1000;
    let url = format!("{}/events?slug={}", v.urls().gamma, w.slug);
    let (mut seen_open, mut seen_resolved) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline && !(seen_resolved && v.now_ms() > resolves_at + 30_000) {
        let before = v.now_ms();
        let a = get(&c, &url).await;
        let after = v.now_ms();
        let m = parse_events(&a.body, &w.slug)
            .expect("the event parses")
            .expect("listed");
        assert_eq!(
            (m.up_token.as_str(), m.down_token.as_str()),
            (w.up_token.as_str(), w.down_token.as_str())
        );
        assert_eq!(m.condition_id, w.condition_id);
        assert_eq!((m.event_start_time, m.end_time), (Some(w.start), w.end));
        assert_eq!(m.rule, ResolutionRule::StartVsEnd);
        assert_eq!(m.tick_size.to_string(), "0.01");
        assert!(
            m.question
                .starts_with("Bitcoin Up or Down - February 21, 11:30AM")
        );
        match m.resolution {
            MarketResolution::Resolved(side) => {
                assert!(after >= resolves_at, "resolved early");
                assert_eq!(side, outcome);
                assert!(m.closed && !m.accepting_orders);
                seen_resolved = true;
            }
            MarketResolution::Open => {
                assert!(before < resolves_at, "resolution withheld after it was due");
                if after < w.end * 1000 {
                    assert!(m.is_tradeable());
                }
                seen_open = true;
            }
            MarketResolution::Ambiguous => panic!("ambiguous prices"),
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(seen_open && seen_resolved);

    // The other discovery paths agree.
    let a = get(&c, &format!("{}/markets?slug={}", v.urls().gamma, w.slug)).await;
    let m = parse_markets(&a.body, &w.slug)
        .expect("parses")
        .expect("listed");
    assert_eq!(m.resolution, MarketResolution::Resolved(outcome));
    let a = get(&c, &format!("{}/events/slug/{}", v.urls().gamma, w.slug)).await;
    let m = parse_event(&a.body, &w.slug)
        .expect("parses")
        .expect("listed");
    assert_eq!(m.up_token, w.up_token);

    // Unknown, and not yet listed (two days ahead, listing lead one day): `[]`.
    for slug in [
        "btc-updown-5m-1",
        &format!("btc-updown-5m-{}", W + 2 * 86_400),
    ] {
        let a = get(&c, &format!("{}/events?slug={slug}", v.urls().gamma)).await;
        assert_eq!(a.body, "[]");
        assert_eq!(parse_events(&a.body, slug).expect("parses"), None);
    }
    let a = get(
        &c,
        &format!("{}/events/slug/btc-updown-5m-1", v.urls().gamma),
    )
    .await;
    assert_eq!(a.status, 404);
}

// ---------------------------------------------------------------------------------------
// CLOB
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clob_rest_books_parse_with_asks_descending_and_mirror_each_other() {
    let v = start(|c| c.speed = 60.0);
    let c = http();
    let m = market(&c, &v, W).await;
    for token in [&m.up_token, &m.down_token] {
        let a = get(&c, &format!("{}/book?token_id={token}", v.urls().clob_rest)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let snap = parse_book(&a.body).expect("the book parses");
        assert_eq!(&snap.asset_id, token);
        assert_eq!(snap.market, m.condition_id);
        assert!(
            snap.asks.windows(2).all(|l| l[0].price > l[1].price),
            "asks descend"
        );
        assert!(
            snap.bids.windows(2).all(|l| l[0].price < l[1].price),
            "bids ascend"
        );
        let mut book = OrderBook::new(token.clone(), m.tick_size).expect("a book");
        book.apply_snapshot(&snap).expect("the snapshot applies");
        book.check().expect("not crossed");
    }
    // Both books at one instant (`POST /books`): Down's bid is 1 − Up's ask.
    let r = c
        .post(format!("{}/books", v.urls().clob_rest))
        .body(serde_json::json!([{"token_id": m.up_token}, {"token_id": m.down_token}]).to_string())
        .send()
        .await
        .expect("answers");
    let both = parse_books(&r.text().await.expect("body")).expect("the books parse");
    let top = |i: usize| {
        let mut b = OrderBook::new(both[i].asset_id.clone(), m.tick_size).expect("a book");
        b.apply_snapshot(&both[i]).expect("applies");
        let (bid, ask) = (b.best_bid().expect("bid"), b.best_ask().expect("ask"));
        (bid.price, ask.price)
    };
    assert_eq!(
        (both[0].asset_id.as_str(), both.len()),
        (m.up_token.as_str(), 2)
    );
    assert_eq!(top(1).0, rust_decimal::Decimal::ONE - top(0).1);
    assert_eq!(top(1).1, rust_decimal::Decimal::ONE - top(0).0);

    let a = get(&c, &format!("{}/book?token_id=abc", v.urls().clob_rest)).await;
    assert_eq!(a.status, 400);
    assert!(matches!(parse_book(&a.body), Err(ClobError::Api { .. })));
    let a = get(&c, &format!("{}/book?token_id=123", v.urls().clob_rest)).await;
    assert_eq!(a.status, 404);
    assert!(matches!(parse_book(&a.body), Err(ClobError::Api { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clob_ws_book_changes_pong_and_market_resolved_with_the_real_winner() {
    let v = start(|c| {
        c.resolution_delay_secs = 30;
        c.start_ms = Some((W - 5) * 1000);
    });
    let c = http();
    let w = v.window(W).expect("window");
    let m = market(&c, &v, W).await;
    let resolves_at = (w.end + 30) * 1000;
    let mut ws = connect(&format!("{}/ws/market", v.urls().clob_ws)).await;
    subscribe(&mut ws, &[&m.up_token, &m.down_token], true).await;
    let mut books = [
        OrderBook::new(m.up_token.clone(), m.tick_size).expect("book"),
        OrderBook::new(m.down_token.clone(), m.tick_size).expect("book"),
    ];
    let (mut snapshots, mut changes, mut pongs, mut tops) = (0, 0, 0, 0);
    let mut pinged = false;
    let mut winner = None;
    let deadline = Instant::now() + Duration::from_secs(4);
    while winner.is_none() && Instant::now() < deadline {
        let Read::Text(t) = read(&mut ws, Duration::from_secs(3)).await else {
            panic!("the channel went quiet")
        };
        match parse_ws_frame(&t).expect("every frame parses") {
            WsFrame::Pong => pongs += 1,
            WsFrame::Ping => panic!("the server never pings"),
            WsFrame::Events(events) => {
                for ev in &events {
                    match ev {
                        MarketEvent::Book(b) => {
                            assert!(b.asks.windows(2).all(|l| l[0].price > l[1].price));
                            snapshots += 1;
                        }
                        MarketEvent::PriceChange(_) => changes += 1,
                        MarketEvent::BestBidAsk(_) => tops += 1,
                        MarketEvent::MarketResolved(r) => {
                            assert!(v.now_ms() >= resolves_at, "resolved early");
                            winner = Some(r.winning_side(&m).expect("consistent"));
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                    for b in &mut books {
                        b.apply(ev).expect("every event applies in order");
                    }
                }
                for b in &books {
                    if b.has_snapshot() {
                        b.check().expect("never crossed");
                    }
                }
                if snapshots > 0 && !pinged {
                    ws.send(Message::text("PING")).await.expect("sent");
                    pinged = true;
                }
            }
        }
    }
    assert_eq!(winner, w.outcome);
    assert_eq!(snapshots, 2, "one book per asset on subscribe");
    assert!(changes > 0 && tops > 0 && pongs == 1);
    let s = v.stats();
    assert!(s.subscribed_assets.contains(&m.up_token));
    assert_eq!(s.clob_pings, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clob_ws_refuses_ping_before_subscribing_and_drops_idle_clients() {
    let v = start(|c| {
        c.speed = 60.0;
        c.clob_idle_timeout = Duration::from_millis(300);
    });
    let url = format!("{}/ws/market", v.urls().clob_ws);
    let mut ws = connect(&url).await;
    ws.send(Message::text("PING")).await.expect("sent");
    match read(&mut ws, Duration::from_secs(3)).await {
        Read::Closed(Some(code)) => assert_eq!(code, CloseCode::Policy),
        other => panic!("expected a 1008 close, got {other:?}"),
    }

    let started = Instant::now();
    let mut idle = connect(&url).await;
    match read(&mut idle, Duration::from_secs(4)).await {
        Read::Closed(_) | Read::Error(_) => {}
        other => panic!("an idle client is dropped, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(250));

    // The SDK's subscription shape is accepted too, and pinging keeps the client.
    let c = http();
    let m = market(&c, &v, W).await;
    let mut sdk = connect(&url).await;
    let msg = serde_json::json!({"type": "market", "operation": "subscribe", "markets": [],
        "assets_ids": [m.up_token], "initial_dump": true});
    sdk.send(Message::text(msg.to_string()))
        .await
        .expect("sent");
    let mut got_book = false;
    let until = Instant::now() + Duration::from_millis(900);
    while Instant::now() < until {
        sdk.send(Message::text("PING")).await.expect("still open");
        match read(&mut sdk, Duration::from_millis(150)).await {
            Read::Text(t) => {
                if let Ok(WsFrame::Events(e)) = parse_ws_frame(&t) {
                    got_book |= e.iter().any(|e| matches!(e, MarketEvent::Book(_)));
                }
            }
            Read::Timeout => {}
            other => panic!("a pinging client is kept: {other:?}"),
        }
    }
    assert!(got_book);
}

// ---------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_disconnect_and_kill_close_sockets_and_clients_can_reconnect() {
    let v = start(|_| {});
    let url = format!("{}/stream?streams=btcusdt@kline_1m", v.urls().binance_ws);
    let mut ws = connect(&url).await;
    assert!(matches!(
        read(&mut ws, Duration::from_secs(3)).await,
        Read::Text(_)
    ));
    v.faults().disconnect(Service::BinanceWs).expect("fault");
    let mut closed = None;
    for _ in 0..500 {
        match read(&mut ws, Duration::from_secs(3)).await {
            Read::Text(_) => continue,
            other => {
                closed = Some(other);
                break;
            }
        }
    }
    assert!(
        matches!(closed, Some(Read::Closed(Some(CloseCode::Away)))),
        "{closed:?}"
    );

    // A new connection works; a kill ends it without a close frame.
    let mut ws = connect(&url).await;
    assert!(matches!(
        read(&mut ws, Duration::from_secs(3)).await,
        Read::Text(_)
    ));
    v.faults()
        .inject(FaultSpec::Kill {
            service: Service::BinanceWs,
        })
        .expect("fault");
    let mut end = None;
    for _ in 0..500 {
        match read(&mut ws, Duration::from_secs(3)).await {
            Read::Text(_) => continue,
            other => {
                end = Some(other);
                break;
            }
        }
    }
    assert!(
        matches!(end, Some(Read::Error(_) | Read::Closed(None))),
        "{end:?}"
    );
    assert_eq!(v.stats().ws_connections_to(Service::BinanceWs), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_stall_silences_data_but_the_socket_stays_open() {
    let v = start(|_| {});
    let mut ws = connect(&format!(
        "{}/stream?streams=btcusdt@kline_1m",
        v.urls().binance_ws
    ))
    .await;
    assert!(matches!(
        read(&mut ws, Duration::from_secs(3)).await,
        Read::Text(_)
    ));
    v.faults()
        .stall(Service::BinanceWs, Duration::from_millis(1500))
        .expect("fault");
    let stalled_at = Instant::now();
    // Frames already in flight may still arrive; then silence.
    let _ = collect(&mut ws, Duration::from_millis(150)).await;
    ws.send(Message::text(r#"{"method":"LIST_SUBSCRIPTIONS","id":3}"#))
        .await
        .expect("the socket is open");
    let during = collect(&mut ws, Duration::from_millis(500)).await;
    for f in &during {
        let m = parse_ws_message(f, TimeUnit::Millisecond)
            .expect("parses")
            .message;
        assert!(
            matches!(m, BinanceMessage::Response { .. }),
            "only the request's answer during a stall, got {m:?}"
        );
    }
    assert_eq!(during.len(), 1, "the request is answered during the stall");
    // Data resumes after the stall.
    let mut resumed = false;
    for _ in 0..200 {
        if let Read::Text(t) = read(&mut ws, Duration::from_secs(3)).await
            && matches!(
                parse_ws_message(&t, TimeUnit::Millisecond)
                    .expect("parses")
                    .message,
                BinanceMessage::Kline(_)
            )
        {
            resumed = true;
            break;
        }
    }
    assert!(resumed && stalled_at.elapsed() >= Duration::from_millis(1400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_http_status_bursts_then_normal_answers() {
    let v = start(|_| {});
    let c = http();
    let f = v.faults();
    let klines = format!(
        "{}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=3",
        v.urls().binance_rest
    );
    f.http_status(Service::BinanceRest, 3, 429).expect("fault");
    for _ in 0..3 {
        let a = get(&c, &klines).await;
        assert_eq!(a.status, 429);
        assert_eq!(a.retry_after.as_deref(), Some("1"));
        assert!(matches!(
            parse_rest_error(&a.body),
            Some(BinanceError::Api { code: -1003, .. })
        ));
        assert!(parse_klines(&a.body).is_err());
    }
    let a = get(&c, &klines).await;
    assert_eq!(a.status, 200);
    assert_eq!(parse_klines(&a.body).expect("parses").len(), 3);

    let w = v.window(W).expect("window");
    let events = format!("{}/events?slug={}", v.urls().gamma, w.slug);
    for status in [500, 502, 503] {
        f.http_status(Service::Gamma, 1, status).expect("fault");
        let a = get(&c, &events).await;
        assert_eq!(a.status, status);
        assert!(
            parse_events(&a.body, &w.slug).is_err(),
            "{status}: {}",
            a.body
        );
    }
    f.http_status(Service::ClobRest, 1, 503).expect("fault");
    let a = get(
        &c,
        &format!("{}/book?token_id={}", v.urls().clob_rest, w.up_token),
    )
    .await;
    assert_eq!(a.status, 503);
    assert!(a.retry_after.is_some());
    assert!(matches!(parse_book(&a.body), Err(ClobError::Api { .. })));
    assert_eq!(get(&c, &events).await.status, 200);
    // A WebSocket upgrade can be refused the same way.
    f.http_status(Service::ClobWs, 1, 429).expect("fault");
    let refused = tokio_tungstenite::connect_async(format!("{}/ws/market", v.urls().clob_ws)).await;
    assert!(refused.is_err());
    assert!(v.stats().statuses.get(&429).copied().unwrap_or(0) >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_malformed_and_truncated_bodies_are_parser_errors_not_panics() {
    let v = start(|_| {});
    let c = http();
    let f = v.faults();
    let w = v.window(upcoming(&v)).expect("window");
    let klines = format!(
        "{}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=3",
        v.urls().binance_rest
    );
    let events = format!("{}/events?slug={}", v.urls().gamma, w.slug);
    let book = format!("{}/book?token_id={}", v.urls().clob_rest, w.up_token);
    for spec in [
        FaultSpec::Malformed {
            service: Service::BinanceRest,
            count: 1,
        },
        FaultSpec::Truncated {
            service: Service::BinanceRest,
            count: 1,
        },
    ] {
        f.inject(spec).expect("fault");
        let a = get(&c, &klines).await;
        assert_eq!(a.status, 200);
        assert!(matches!(
            parse_klines(&a.body),
            Err(BinanceError::Decode(_))
        ));
    }
    f.inject(FaultSpec::Malformed {
        service: Service::Gamma,
        count: 1,
    })
    .expect("fault");
    assert!(matches!(
        parse_events(&get(&c, &events).await.body, &w.slug),
        Err(GammaError::Decode(_))
    ));
    f.inject(FaultSpec::Truncated {
        service: Service::ClobRest,
        count: 1,
    })
    .expect("fault");
    assert!(matches!(
        parse_book(&get(&c, &book).await.body),
        Err(ClobError::Decode(_))
    ));
    // Then normal again.
    assert!(parse_klines(&get(&c, &klines).await.body).is_ok());
    assert!(parse_events(&get(&c, &events).await.body, &w.slug).is_ok());
    assert!(parse_book(&get(&c, &book).await.body).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_malformed_truncated_and_broken_ws_frames() {
    let v = start(|_| {});
    let mut ws = connect(&format!(
        "{}/stream?streams=btcusdt@kline_1m",
        v.urls().binance_ws
    ))
    .await;
    assert!(matches!(
        read(&mut ws, Duration::from_secs(3)).await,
        Read::Text(_)
    ));
    v.faults()
        .inject(FaultSpec::Malformed {
            service: Service::BinanceWs,
            count: 2,
        })
        .expect("fault");
    let frames = collect(&mut ws, Duration::from_millis(600)).await;
    let verdicts: Vec<bool> = frames
        .iter()
        .map(|f| parse_ws_message(f, TimeUnit::Millisecond).is_ok())
        .collect();
    assert_eq!(
        verdicts.iter().filter(|ok| !**ok).count(),
        2,
        "{verdicts:?}"
    );
    assert_eq!(verdicts.last(), Some(&true), "valid frames follow");

    // CLOB: a truncated frame is an error for parse_ws_frame.
    let c = http();
    let m = market(&c, &v, upcoming(&v)).await;
    let mut clob = connect(&format!("{}/ws/market", v.urls().clob_ws)).await;
    v.faults()
        .inject(FaultSpec::Truncated {
            service: Service::ClobWs,
            count: 1,
        })
        .expect("fault");
    subscribe(&mut clob, &[&m.up_token, &m.down_token], false).await;
    let Read::Text(t) = read(&mut clob, Duration::from_secs(3)).await else {
        panic!("no frame")
    };
    assert!(
        matches!(parse_ws_frame(&t), Err(ClobError::Decode(_))),
        "{t}"
    );

    // A broken WebSocket frame ends the connection with an error, no close frame.
    v.faults()
        .inject(FaultSpec::BrokenFrame {
            service: Service::BinanceWs,
        })
        .expect("fault");
    let mut end = None;
    for _ in 0..500 {
        match read(&mut ws, Duration::from_secs(3)).await {
            Read::Text(t) => assert!(parse_ws_message(&t, TimeUnit::Millisecond).is_ok()),
            other => {
                end = Some(other);
                break;
            }
        }
    }
    if let Some(Read::Error(e)) = &end {
        assert!(!e.is_empty());
    }
    assert!(
        matches!(end, Some(Read::Error(_) | Read::Closed(None))),
        "{end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_duplicate_klines_and_stale_price_changes_are_delivered() {
    let v = start(|c| c.start_ms = Some((W + 5) * 1000));
    let mut ws = connect(&format!(
        "{}/stream?streams=btcusdt@kline_1m",
        v.urls().binance_ws
    ))
    .await;
    assert!(matches!(
        read(&mut ws, Duration::from_secs(3)).await,
        Read::Text(_)
    ));
    v.faults()
        .inject(FaultSpec::Duplicate {
            service: Service::BinanceWs,
            count: 1,
        })
        .expect("fault");
    let frames = collect(&mut ws, Duration::from_millis(400)).await;
    let twins: Vec<_> = frames.windows(2).filter(|p| p[0] == p[1]).collect();
    assert_eq!(twins.len(), 1, "the same kline twice");
    let a = parse_ws_message(twins[0][0].as_str(), TimeUnit::Millisecond).expect("parses");
    assert!(matches!(a.message, BinanceMessage::Kline(_)));

    // CLOB: after a stale replay an older book message arrives, which the book refuses.
    let c = http();
    let m = market(&c, &v, upcoming(&v)).await;
    let mut clob = connect(&format!("{}/ws/market", v.urls().clob_ws)).await;
    subscribe(&mut clob, &[&m.up_token, &m.down_token], false).await;
    let mut book = OrderBook::new(m.up_token.clone(), m.tick_size).expect("book");
    let mut frames = 0;
    let mut injected = false;
    let mut refused = false;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline && !refused {
        let Read::Text(t) = read(&mut clob, Duration::from_secs(3)).await else {
            panic!("the channel went quiet")
        };
        let WsFrame::Events(events) = parse_ws_frame(&t).expect("parses") else {
            continue;
        };
        for ev in &events {
            match book.apply(ev) {
                Ok(_) => {}
                Err(BookError::OutOfOrder { .. }) => refused = true,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        frames += 1;
        if frames == 3 && !injected {
            v.faults()
                .inject(FaultSpec::Stale {
                    service: Service::ClobWs,
                    count: 1,
                })
                .expect("fault");
            injected = true;
        }
    }
    assert!(refused, "the old message reached the client out of order");
    book.check().expect("the book was left intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_late_and_missing_resolutions() {
    let v = start(|c| c.resolution_delay_secs = 30);
    let c = http();
    let (late, never) = (W, W + 300);
    v.faults().resolve_late(late, 120).expect("fault");
    v.faults().never_resolve(never).expect("fault");
    let late_at = (late + 300 + 30 + 120) * 1000;
    let never_due = (never + 300 + 30) * 1000;
    let mut late_resolved = false;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline && v.now_ms() < late_at.max(never_due) + 60_000 {
        for (start, due) in [(late, late_at), (never, i64::MAX)] {
            let slug = format!("btc-updown-5m-{start}");
            let before = v.now_ms();
            let a = get(&c, &format!("{}/events?slug={slug}", v.urls().gamma)).await;
            let after = v.now_ms();
            let m = parse_events(&a.body, &slug)
                .expect("parses")
                .expect("listed");
            match m.resolution {
                MarketResolution::Resolved(_) => {
                    assert!(after >= due, "{slug} resolved before its (late) time");
                    late_resolved |= start == late;
                }
                _ => assert!(before < due, "{slug} not resolved when due"),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(late_resolved);
    assert!(
        v.now_ms() > never_due,
        "the never-resolving market was watched past its due time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_dropped_service_and_refused_connections() {
    let v = start(|_| {});
    let c = http();
    let w = v.window(W).expect("window");
    let events = format!("{}/events?slug={}", v.urls().gamma, w.slug);
    assert_eq!(get(&c, &events).await.status, 200);

    v.faults()
        .inject(FaultSpec::DropService {
            service: Service::Gamma,
            millis: None,
        })
        .expect("fault");
    let e = c
        .get(&events)
        .send()
        .await
        .expect_err("no answer from a dropped service");
    assert!(!e.is_status());
    // Other services still answer.
    let a = get(&c, &format!("{}/api/v3/time", v.urls().binance_rest)).await;
    assert_eq!(a.status, 200);
    v.faults()
        .inject(FaultSpec::RestoreService {
            service: Service::Gamma,
        })
        .expect("fault");
    assert_eq!(get(&c, &events).await.status, 200);

    v.faults()
        .inject(FaultSpec::RefuseConnections { millis: 600 })
        .expect("fault");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = http();
    let e = fresh.get(&events).send().await.expect_err("refused");
    assert!(e.is_connect(), "connection refused: {e:?}");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        get(&http(), &events).await.status,
        200,
        "the same port again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_endpoint_injects_faults_and_reports_stats() {
    let v = start(|_| {});
    let c = http();
    let control = v.urls().control;
    let r = c
        .post(format!("{control}/fault"))
        .body(r#"{"kind":"http_status","service":"gamma","count":1,"status":429}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status().as_u16(), 200);
    let w = v.window(W).expect("window");
    let a = get(&c, &format!("{}/events?slug={}", v.urls().gamma, w.slug)).await;
    assert_eq!(a.status, 429);
    let r = c
        .post(format!("{control}/fault"))
        .body(r#"{"kind":"stall","service":"gamma","millis":5}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status().as_u16(), 400, "a REST service cannot stall");
    let stats: serde_json::Value =
        serde_json::from_str(&get(&c, &format!("{control}/stats")).await.body).expect("JSON");
    assert_eq!(stats["stats"]["statuses"]["429"], 1);
    let clock: serde_json::Value =
        serde_json::from_str(&get(&c, &format!("{control}/clock")).await.body).expect("JSON");
    assert!(clock["virtual_ms"].as_i64().expect("ms") >= v.config().start_ms());
    let toml = v.urls().config_toml();
    assert!(toml.starts_with("[live]\n") && toml.contains("clob_ws = \"ws://127.0.0.1:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn books_are_deterministic_for_a_seed() {
    // Virtual time barely moves at 0.001×, so both venues are in the same book bucket.
    let book_of = |seed: u64| async move {
        let v = start(|c| {
            c.speed = 0.001;
            c.seed = seed;
            c.start_ms = Some((W + 120) * 1000);
        });
        // The next window: listed, not started, its mid at 0.505 with full depth.
        let w = v.window(W + 300).expect("window");
        let a = get(
            &http(),
            &format!("{}/book?token_id={}", v.urls().clob_rest, w.up_token),
        )
        .await;
        let snap = parse_book(&a.body).expect("parses");
        (snap.bids, snap.asks)
    };
    let a = book_of(7).await;
    assert_eq!(a, book_of(7).await);
    assert_ne!(a, book_of(8).await);
    assert!(a.0.len() >= 10 && a.1.len() >= 10);
}
