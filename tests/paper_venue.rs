//! The paper venue against the loopback venue over real sockets on 127.0.0.1: discovery,
//! live quotes, fills that walk the real asks, settlement from the real resolution (and the
//! price-data fallback), and every network fault the loopback can inject.
//!
//! The venue runs on its own runtime and is driven synchronously, as the session loop
//! drives it. Virtual time runs fast (60× or 120×) where waiting matters, at 1× where a book
//! must stand still; every wait is bounded with generous real-time margins so the suite
//! holds on a busy 2-core machine.

use rust_decimal::{Decimal, RoundingStrategy};
use rust_decimal_macros::dec;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use updown::config::RiskConfig;
use updown::domain::{Side, StakeAsk, Window};
use updown::feed::{Candle, load_csv};
use updown::loopback::{
    DEFAULT_START_WINDOW, FaultSpec, LoopbackConfig, LoopbackVenue, ResolutionFault, Running,
    Service, data,
};
use updown::risk::{DataHealth, GateInput, RiskGate, SideQuote, Stake, Verdict};
use updown::venue::paper::{PaperConfig, PaperVenue};
use updown::venue::polymarket::client::{
    ClientError, ClobRestClient, GammaClient, Http, RetryPolicy,
};
use updown::venue::polymarket::{OrderBook, parse_book};
use updown::venue::{BookTop, PendingResolution, SettledBy, Venue, VenueError, fee};

/// The loopback's default first window (2026-02-21 16:30 UTC).
const W: i64 = DEFAULT_START_WINDOW;

fn loopback(edit: impl FnOnce(&mut LoopbackConfig)) -> Running {
    let mut cfg = LoopbackConfig::default().with_speed(60.0);
    edit(&mut cfg);
    LoopbackVenue::start(cfg).expect("the loopback venue starts")
}

/// Fast retries so fault tests stay short; the count (3) is the production one.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        request_timeout: Duration::from_secs(5),
        ..RetryPolicy::default()
    }
}

fn config(v: &Running) -> PaperConfig {
    let u = v.urls();
    let mut cfg = PaperConfig::with_urls(u.gamma, u.clob_rest, u.clob_ws);
    cfg.http = quick_retries();
    cfg.book_wait = Duration::from_secs(10);
    cfg
}

fn venue(v: &Running, edit: impl FnOnce(&mut PaperConfig)) -> PaperVenue {
    let mut cfg = config(v);
    edit(&mut cfg);
    let clock = v.clock();
    PaperVenue::with_clock(cfg, Arc::new(move || clock.now_ms())).expect("the paper venue starts")
}

fn window(start: i64) -> Window {
    Window::new(start, 300, 0)
}

/// Polls `f` every 20 ms until it returns `Some`, for at most `within`.
fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A runtime for the test's own HTTP calls (separate from the venue's).
fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The book of `token` as the loopback's REST `/book` serves it now, built independently.
fn rest_book(rt: &tokio::runtime::Runtime, v: &Running, token: &str) -> OrderBook {
    let url = format!("{}/book?token_id={token}", v.urls().clob_rest);
    let body = rt.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client")
            .get(url)
            .send()
            .await
            .expect("the venue answers")
            .text()
            .await
            .expect("a body")
    });
    let snap = parse_book(&body).expect("the REST book parses");
    let mut b = OrderBook::new(token, dec!(0.01)).expect("book");
    b.apply_snapshot(&snap).expect("applies");
    b
}

/// A stake approved by the real risk gate: `usd` on `side` with the limit price `limit`.
fn stake(side: Side, usd: f64, limit: Decimal) -> Stake {
    let gate = RiskGate::new(&RiskConfig::default(), dec!(100));
    let input = GateInput {
        side,
        ask: StakeAsk::Usd(usd),
        quote: SideQuote {
            ask: limit,
            bid: limit - dec!(0.01),
            min_order_shares: dec!(5),
        },
        equity: dec!(100),
        cash: dec!(100),
        open_positions: 0,
        allow_overlap: false,
        halted: false,
        data: DataHealth {
            price_age_secs: Some(0),
            range_pct: Some(0.1),
            stddev: Some(1.0),
            stddev_baseline: Some(1.0),
            feed_stale: None,
        },
        seconds_to_close: 300,
    };
    match gate.check(&input) {
        Verdict::Approved(s) => s,
        Verdict::Refused(r) => panic!("the gate refused the test stake: {r:?}"),
    }
}

fn recorded_candles() -> Vec<Candle> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(data::KLINES_FILE);
    load_csv(&path).expect("the recorded week loads").candles
}

fn unavailable_text(e: VenueError) -> String {
    assert_eq!(e.code(), "no_quote", "{e}");
    e.to_string()
}

// ---------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------

#[test]
fn discovers_the_windows_market_with_tokens_mapped_by_index_and_refuses_missing_ones() {
    let v = loopback(|_| {});
    let mut p = venue(&v, |_| {});
    let w = v.window(W).expect("a recorded window");
    let m = p.market(&window(W)).expect("the market is listed");
    assert_eq!(m.slug, format!("btc-updown-5m-{W}"));
    assert_eq!(m.up_token, w.up_token, "Up is outcomes[0]'s token");
    assert_eq!(m.down_token, w.down_token);
    assert_eq!(m.condition_id, w.condition_id);
    assert_eq!((m.window_start(), m.end_time), (Some(W), W + 300));
    assert_eq!((m.tick_size, m.min_order_size), (dec!(0.01), dec!(5)));
    assert!(m.is_tradeable());

    // A window not listed yet (the listing lead is one day) and one that never existed:
    // both discovery paths asked, then a clear refusal with the `no_quote` code.
    let gamma_markets_before = v.stats().requests_to("/gamma/markets");
    for start in [W + 2 * 86_400, 300] {
        let e = unavailable_text(p.quote(&window(start)).expect_err("not listed"));
        assert!(e.contains("not listed on Gamma"), "{e}");
        assert!(e.contains(&format!("btc-updown-5m-{start}")), "{e}");
    }
    assert!(v.stats().requests_to("/gamma/markets") >= gamma_markets_before + 2);
    assert!(p.stats().gamma_lookups >= 3);
}

#[test]
fn a_market_that_stopped_taking_orders_is_refused_with_the_reason() {
    // The clock starts 30 s after W ended; W resolves 60 s after its end: not tradable.
    let v = loopback(|c| *c = c.clone().at_window(W + 300, -30).with_speed(1.0));
    let mut p = venue(&v, |_| {});
    let e = unavailable_text(p.quote(&window(W)).expect_err("ended"));
    assert!(e.contains("not tradable now"), "{e}");
    assert!(e.contains("acceptingOrders=false"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Quotes
// ---------------------------------------------------------------------------------------

/// A window ten ahead of the running one: listed (a day ahead), not started for the whole
/// test, so its books move only in their sizes, one update bucket at a time (REST and
/// WebSocket agree within a bucket).
fn upcoming(v: &Running) -> i64 {
    let now = v.now_ms() / 1000;
    now - now.rem_euclid(300) + 3000
}

fn top(b: &OrderBook, ticks: u32) -> BookTop {
    b.top(ticks).expect("a quotable book")
}

#[test]
fn quotes_track_the_live_book() {
    // Sizes change every 30 virtual s = 0.5 s real at 60×.
    let v = loopback(|c| c.book_update_ms = 30_000);
    let start = upcoming(&v);
    let mut p = venue(&v, |_| {});
    let rt = rt();
    let m = p.market(&window(start)).expect("listed");
    let mut matched: Vec<(BookTop, BookTop)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while matched.len() < 4 && Instant::now() < deadline {
        let q = p.quote(&window(start)).expect("quotes");
        let up = top(&rest_book(&rt, &v, &m.up_token), 5);
        let down = top(&rest_book(&rt, &v, &m.down_token), 5);
        if q.up == up && q.down == down && !matched.iter().any(|s| s.0 == up && s.1 == down) {
            matched.push((up, down));
        }
        // Quote fields besides the books.
        assert_eq!(
            q.fee_rate,
            dec!(0.072),
            "no feeSchedule: the configured rate"
        );
        assert_eq!((q.tick_size, q.min_order_shares), (dec!(0.01), dec!(5)));
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(
        matched.len() >= 4,
        "the quote matched only {} distinct REST states: {matched:?}",
        matched.len()
    );
    // Down mirrors Up (bid_down = 1 − ask_up): the two tokens were mapped correctly.
    let (up, down) = &matched[0];
    assert_eq!(down.bid, Decimal::ONE - up.ask);
    let s = p.stats().stream;
    assert!(
        s.ws_snapshots >= 2 && s.price_changes > 0 && s.connects == 1,
        "{s:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Fills
// ---------------------------------------------------------------------------------------

/// What buying `usd` under `cap` takes from `asks` (best first), computed here from the
/// levels: shares rounded down to 6 decimals per level, fee per level at `rate` rounded to
/// 5 decimals and taken in shares.
struct Expected {
    gross: Decimal,
    cost: Decimal,
    fee: Decimal,
    net: Decimal,
    levels: usize,
}

fn expected_walk(
    asks: &[updown::venue::polymarket::PriceLevel],
    usd: Decimal,
    cap: Decimal,
    rate: Decimal,
) -> Expected {
    let mut left = usd;
    let (mut gross, mut cost, mut fee_usd, mut fee_shares, mut levels) = (
        Decimal::ZERO,
        Decimal::ZERO,
        Decimal::ZERO,
        Decimal::ZERO,
        0,
    );
    for l in asks.iter().filter(|l| l.price <= cap) {
        let affordable = (left / l.price).round_dp_with_strategy(6, RoundingStrategy::ToZero);
        let take = l.size.min(affordable);
        if take <= Decimal::ZERO {
            break;
        }
        let f = (take * rate * l.price * (Decimal::ONE - l.price))
            .round_dp_with_strategy(5, RoundingStrategy::MidpointAwayFromZero);
        assert_eq!(f, fee(take, l.price, rate), "the venue's formula");
        left -= take * l.price;
        gross += take;
        cost += take * l.price;
        fee_usd += f;
        fee_shares += f / l.price;
        levels += 1;
        if take < l.size {
            break;
        }
    }
    Expected {
        gross,
        cost,
        fee: fee_usd,
        net: (gross - fee_shares).round_dp_with_strategy(6, RoundingStrategy::ToZero),
        levels,
    }
}

#[test]
fn a_buy_walks_the_live_asks_with_exact_shares_price_and_fee() {
    // Real time and one book bucket per virtual day: the book stands still, so the venue's
    // book and the one computed here from REST are the same book.
    let v = loopback(|c| {
        *c = c.clone().at_window(W, 120).with_speed(1.0);
        c.book_update_ms = 86_400_000;
        c.book_size_scale = 0.000_5;
        c.fee_schedule = true;
    });
    let mut p = venue(&v, |_| {});
    let rt = rt();
    let win = window(W);
    let q = p.quote(&win).expect("quotes");
    assert_eq!(q.fee_rate, dec!(0.07), "the market's feeSchedule rate");
    let m = p.market(&win).expect("listed");
    let book = rest_book(&rt, &v, &m.up_token);
    assert_eq!(
        p.live_book(&win, Side::Up).expect("tracked").asks(),
        book.asks(),
        "the venue's live book is the served book"
    );
    let asks = book.asks();
    assert!(asks.len() >= 3, "{asks:?}");
    // All of the best level, half of the second: the walk crosses two levels.
    let usd = (asks[0].price * asks[0].size + asks[1].price * asks[1].size / Decimal::TWO)
        .round_dp_with_strategy(2, RoundingStrategy::ToZero);
    assert!(usd <= dec!(25), "a stake the gate allows: {usd}");
    let cap = asks[2].price;
    let s = stake(Side::Up, usd.try_into().expect("f64"), cap);
    assert_eq!(s.price(), cap);
    let usd = s.usd();
    let fill = p.execute(&win, &s, &q).expect("fills");
    let e = expected_walk(&asks, usd, cap, dec!(0.07));
    assert_eq!(e.levels, 2);
    assert_eq!(fill.side, Side::Up);
    assert_eq!(fill.window_start, W);
    assert_eq!(fill.stake, e.cost, "USD actually spent");
    assert!(fill.stake <= usd);
    assert_eq!(
        fill.price,
        (e.cost / e.gross).round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero)
    );
    assert!(fill.price > asks[0].price, "real slippage: {}", fill.price);
    assert_eq!(fill.fee, e.fee);
    assert_eq!(fill.shares, e.net);
    assert!(fill.shares < e.gross);

    // The Down side too, $6 under its second-best ask.
    let down = rest_book(&rt, &v, &m.down_token).asks();
    let s = stake(Side::Down, 6.0, down[1].price);
    let fill = p.execute(&win, &s, &q).expect("fills");
    let e = expected_walk(&down, s.usd(), down[1].price, dec!(0.07));
    assert!(e.gross >= dec!(5), "{down:?}");
    assert_eq!((fill.shares, fill.fee, fill.stake), (e.net, e.fee, e.cost));
    assert_eq!(fill.side, Side::Down);

    // A limit below the best ask fills nothing.
    let s = stake(Side::Up, 5.0, asks[0].price - dec!(0.01));
    match p.execute(&win, &s, &q) {
        Err(VenueError::Rejected(why)) => {
            assert!(why.contains("no ask at or below the limit"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let st = p.stats();
    assert_eq!((st.fills, st.refusals), (2, 1));
}

#[test]
fn fewer_shares_than_the_minimum_after_the_walk_are_refused() {
    // One share per level: $2.60 under a 0.52 limit walks to 2 shares, below 5.
    let v = loopback(|c| {
        *c = c.clone().at_window(W, 120).with_speed(1.0);
        c.book_update_ms = 86_400_000;
        c.book_size_scale = 0.000_000_1;
    });
    let mut p = venue(&v, |_| {});
    let rt = rt();
    let win = window(W);
    let q = p.quote(&win).expect("quotes");
    let m = p.market(&win).expect("listed");
    let asks = rest_book(&rt, &v, &m.up_token).asks();
    let cap = dec!(0.52);
    let e = expected_walk(&asks, dec!(2.60), cap, dec!(0.072));
    assert!(
        e.gross > Decimal::ZERO && e.gross < dec!(5),
        "{} shares",
        e.gross
    );
    let s = stake(Side::Up, 2.60, cap);
    match p.execute(&win, &s, &q) {
        Err(VenueError::Rejected(why)) => {
            assert!(
                why.contains("below the market's minimum of 5 shares"),
                "{why}"
            );
            assert!(why.contains(&e.gross.to_string()), "{why}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Settlement
// ---------------------------------------------------------------------------------------

/// Quote and buy $5 of the cheaper side of `win` so there is a position to settle. The
/// window is open and its book moves with BTC, so the limit leaves a few ticks of room.
fn open_position(p: &mut PaperVenue, win: &Window) {
    let q = p.quote(win).expect("quotes");
    let side = if q.up.ask <= q.down.ask {
        Side::Up
    } else {
        Side::Down
    };
    let limit = (q.side(side).ask + dec!(0.05)).min(dec!(0.65));
    let s = stake(side, 5.0, limit);
    p.execute(win, &s, &q).expect("fills");
}

#[test]
fn settles_from_market_resolved_with_the_windows_real_outcome() {
    let v = loopback(|c| {
        *c = c.clone().at_window(W, 5).with_speed(120.0);
        c.resolution_delay_secs = 30;
    });
    let w = v.window(W).expect("window");
    // Gamma is polled once, before the end; after that only the socket can settle it.
    let mut p = venue(&v, |c| c.resolution_poll = Duration::from_secs(3600));
    assert!(matches!(
        p.pending_resolution(),
        PendingResolution::RetryAfter(s) if s >= 1
    ));
    let win = window(W);
    open_position(&mut p, &win);
    let mut pending = 0;
    let r = eventually(Duration::from_secs(15), || {
        match p.resolve(&win, &[]).expect("no error") {
            None => {
                pending += 1;
                None
            }
            Some(r) => {
                assert!(v.now_ms() >= (w.end + 30) * 1000, "settled early");
                Some(r)
            }
        }
    })
    .expect("settled in time");
    assert!(pending > 0, "pending before the resolution");
    assert_eq!(Some(r.outcome), w.outcome, "the window's real outcome");
    assert_eq!(r.settled_by, SettledBy::Venue);
    let st = p.stats();
    assert_eq!((st.settled_by_socket, st.settled_by_gamma), (1, 0));
    assert!(st.stream.resolutions >= 1);
}

#[test]
fn a_late_resolution_is_pending_and_then_settled_by_the_venue() {
    let v = loopback(|c| {
        *c = c.clone().at_window(W, 5).with_speed(120.0);
        c.resolution_delay_secs = 30;
    });
    v.faults()
        .inject(FaultSpec::Resolution {
            window_start: W,
            fault: ResolutionFault::Late { extra_secs: 300 },
        })
        .expect("fault");
    let w = v.window(W).expect("window");
    let mut p = venue(&v, |c| {
        c.resolution_poll = Duration::from_millis(50);
        c.resolution_timeout_secs = 7_200;
    });
    let win = window(W);
    open_position(&mut p, &win);
    let due = (w.end + 30) * 1000;
    let late = (w.end + 30 + 300) * 1000;
    let mut pending_after_due = false;
    let r = eventually(Duration::from_secs(20), || {
        let before = v.now_ms();
        let r = p.resolve(&win, &[]).expect("no error");
        if r.is_none() && before > due + 60_000 && before < late - 60_000 {
            pending_after_due = true;
        }
        if r.is_some() {
            assert!(v.now_ms() >= late, "settled before the late resolution");
        }
        r
    })
    .expect("settled in time");
    assert!(pending_after_due, "pending after the usual resolution time");
    assert_eq!(Some(r.outcome), w.outcome);
    assert_eq!(r.settled_by, SettledBy::Venue);
}

#[test]
fn a_resolution_that_never_comes_falls_back_to_price_data_after_the_timeout() {
    let v = loopback(|c| {
        *c = c.clone().at_window(W, 5).with_speed(120.0);
        c.resolution_delay_secs = 30;
    });
    for start in [W, W + 300] {
        v.faults()
            .inject(FaultSpec::Resolution {
                window_start: start,
                fault: ResolutionFault::Never,
            })
            .expect("fault");
    }
    let timeout = 120;
    let mut p = venue(&v, |c| {
        c.resolution_poll = Duration::from_millis(50);
        c.resolution_timeout_secs = timeout;
    });
    let candles = recorded_candles();
    let win = window(W);
    open_position(&mut p, &win);
    let history: Vec<Candle> = candles
        .iter()
        .filter(|c| c.open_time < win.end)
        .copied()
        .collect();
    let expected = updown::venue::resolve_from_candles(&win, &history).expect("recorded");
    let mut pending = 0;
    let r = eventually(Duration::from_secs(20), || {
        let r = p.resolve(&win, &history).expect("no error");
        let after = v.now_ms();
        match &r {
            None => pending += 1,
            Some(_) => assert!(
                after >= (win.end + timeout) * 1000,
                "fell back before the timeout"
            ),
        }
        r
    })
    .expect("settled in time");
    assert!(pending > 0);
    assert_eq!(r.outcome, expected);
    assert_eq!(r.settled_by, SettledBy::PriceDataFallback);
    assert_eq!(r.settled_by.code(), "price_data_fallback");
    assert_eq!(p.stats().settled_by_fallback, 1);

    // No resolution and no candles either: void with the reason, never a guess.
    let next = window(W + 300);
    let e = eventually(Duration::from_secs(20), || match p.resolve(&next, &[]) {
        Ok(None) => None,
        Ok(Some(r)) => panic!("guessed {r:?}"),
        Err(e) => Some(e),
    })
    .expect("gives up in time");
    assert!(matches!(e, VenueError::NoOutcome(_)), "{e}");
    assert!(e.to_string().contains("not guessed"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Socket faults
// ---------------------------------------------------------------------------------------

/// Quotes `start` until it matches both REST books (the book is in sync), within 8 s.
fn in_sync(p: &mut PaperVenue, v: &Running, rt: &tokio::runtime::Runtime, start: i64) -> bool {
    let m = p.market(&window(start)).expect("listed");
    eventually(Duration::from_secs(8), || {
        let q = p.quote(&window(start)).ok()?;
        let up = top(&rest_book(rt, v, &m.up_token), 5);
        let down = top(&rest_book(rt, v, &m.down_token), 5);
        (q.up == up && q.down == down).then_some(())
    })
    .is_some()
}

#[test]
fn a_dropped_socket_is_resubscribed_and_resynced_and_quotes_keep_working() {
    let v = loopback(|c| c.book_update_ms = 30_000);
    let start = upcoming(&v);
    let mut p = venue(&v, |_| {});
    let rt = rt();
    assert!(in_sync(&mut p, &v, &rt, start));
    for (i, fault) in [
        FaultSpec::Disconnect {
            service: Service::ClobWs,
        },
        FaultSpec::Kill {
            service: Service::ClobWs,
        },
        FaultSpec::BrokenFrame {
            service: Service::ClobWs,
        },
    ]
    .into_iter()
    .enumerate()
    {
        let before = p.stats().stream;
        v.faults().inject(fault.clone()).expect("fault");
        let reconnected = eventually(Duration::from_secs(8), || {
            let s = p.stats().stream;
            // Resubscribed, and a REST resync was started for the books (the subscription's
            // own snapshot may land first and make the REST answer redundant).
            (s.reconnects > before.reconnects && s.resyncs >= before.resyncs + 2).then_some(s)
        });
        assert!(reconnected.is_some(), "{fault:?}: {:?}", p.stats().stream);
        assert!(in_sync(&mut p, &v, &rt, start), "{fault:?}: quotes resumed");
        // At least one reconnect per fault (a socket opened while the fault was being
        // applied may be closed too).
        assert!(p.stats().stream.reconnects > i as u64);
    }
    let s = v.stats();
    assert!(s.ws_connections_to(Service::ClobWs) >= 4);
    assert!(s.clob_subscriptions >= 4, "resubscribed each time");
}

#[test]
fn a_stalled_socket_makes_the_book_stale_and_it_is_refused() {
    // No REST refresh and no silence reconnect within the test: only the socket feeds.
    let v = loopback(|_| {});
    let start = upcoming(&v);
    let mut p = venue(&v, |c| {
        c.max_book_age = Duration::from_millis(800);
        c.stream.quiet_resync = Duration::from_secs(60);
        c.stream.silence_timeout = Duration::from_secs(60);
    });
    p.quote(&window(start)).expect("quotes");
    v.faults()
        .inject(FaultSpec::Stall {
            service: Service::ClobWs,
            millis: 3_000,
        })
        .expect("fault");
    let refused = eventually(Duration::from_secs(3), || p.quote(&window(start)).err())
        .expect("refused during the stall");
    let text = unavailable_text(refused);
    assert!(text.contains("stale"), "{text}");
    // Data flows again after the stall: quotes come back (a gap triggers a REST resync).
    let back = eventually(Duration::from_secs(8), || p.quote(&window(start)).ok());
    assert!(back.is_some(), "quotes resume: {:?}", p.stats().stream);
    assert!(
        p.stats().stream.rest_snapshots >= 3,
        "resynced after the gap"
    );
}

#[test]
fn a_stalled_socket_is_covered_by_rest_refreshes_and_a_silence_reconnect() {
    let v = loopback(|_| {});
    let start = upcoming(&v);
    let mut p = venue(&v, |c| {
        c.max_book_age = Duration::from_secs(2);
        c.stream.quiet_resync = Duration::from_millis(300);
        c.stream.silence_timeout = Duration::from_millis(1_500);
    });
    p.quote(&window(start)).expect("quotes");
    v.faults()
        .inject(FaultSpec::Stall {
            service: Service::ClobWs,
            millis: 5_000,
        })
        .expect("fault");
    let until = Instant::now() + Duration::from_secs(3);
    let mut quotes = 0;
    while Instant::now() < until {
        p.quote(&window(start))
            .expect("REST keeps the book fresh while the socket is silent");
        quotes += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(quotes > 10);
    let s = p.stats().stream;
    assert!(s.silence_reconnects >= 1, "{s:?}");
    assert!(s.rest_snapshots >= 4, "{s:?}");
}

#[test]
fn malformed_truncated_duplicated_and_stale_frames_are_skipped_and_resynced() {
    let v = loopback(|c| c.book_update_ms = 30_000);
    let start = upcoming(&v);
    let mut p = venue(&v, |c| c.prefetch_next = false);
    let rt = rt();
    assert!(in_sync(&mut p, &v, &rt, start));
    let f = v.faults();
    let before = p.stats().stream;
    // One after the other: a frame both malformed and truncated would count once.
    for (fault, total) in [
        (
            FaultSpec::Malformed {
                service: Service::ClobWs,
                count: 3,
            },
            3,
        ),
        (
            FaultSpec::Truncated {
                service: Service::ClobWs,
                count: 2,
            },
            5,
        ),
    ] {
        f.inject(fault).expect("fault");
        let skipped = eventually(Duration::from_secs(8), || {
            let s = p.stats().stream;
            (s.skipped_frames >= before.skipped_frames + total).then_some(s)
        });
        assert!(skipped.is_some(), "{:?}", p.stats().stream);
    }
    assert!(
        in_sync(&mut p, &v, &rt, start),
        "in sync after malformed frames"
    );
    let after_bad = p.stats().stream;
    assert!(after_bad.rest_snapshots > before.rest_snapshots);
    assert_eq!(
        after_bad.reconnects, 0,
        "a bad frame does not cost the socket"
    );

    // An older frame after a newer one: refused as out of order, resynced. (A frame two
    // back from the same update pass carries the book's own timestamp and re-applies
    // harmlessly, so several are sent.)
    f.inject(FaultSpec::Stale {
        service: Service::ClobWs,
        count: 20,
    })
    .expect("fault");
    f.inject(FaultSpec::Duplicate {
        service: Service::ClobWs,
        count: 3,
    })
    .expect("fault");
    let seen = eventually(Duration::from_secs(8), || {
        let s = p.stats().stream;
        (s.out_of_order > after_bad.out_of_order).then_some(s)
    });
    assert!(seen.is_some(), "{:?}", p.stats().stream);
    assert!(
        in_sync(&mut p, &v, &rt, start),
        "in sync after stale frames"
    );
}

// ---------------------------------------------------------------------------------------
// HTTP faults
// ---------------------------------------------------------------------------------------

#[test]
fn http_429_and_5xx_bursts_are_retried_and_fail_cleanly_after_three_attempts() {
    let v = loopback(|_| {});
    let rt = rt();
    let http = Http::new(quick_retries()).expect("client");
    let gamma = GammaClient::new(http.clone(), v.urls().gamma);
    let clob = ClobRestClient::new(http.clone(), v.urls().clob_rest);
    let w = v.window(W).expect("window");
    let f = v.faults();

    // Two 429s with Retry-After 1: waited out, then the answer.
    f.inject(FaultSpec::HttpStatus {
        service: Service::Gamma,
        count: 2,
        status: 429,
        retry_after_secs: Some(1),
    })
    .expect("fault");
    let t = Instant::now();
    let m = rt
        .block_on(gamma.market(&w.slug))
        .expect("retried")
        .expect("listed");
    assert!(
        t.elapsed() >= Duration::from_millis(1_900),
        "Retry-After honoured"
    );
    assert_eq!(m.up_token, w.up_token);

    // Three 503s: the third attempt fails, naming the endpoint and the status.
    f.inject(FaultSpec::HttpStatus {
        service: Service::Gamma,
        count: 3,
        status: 503,
        retry_after_secs: Some(0),
    })
    .expect("fault");
    let e = rt.block_on(gamma.market(&w.slug)).expect_err("gives up");
    assert!(
        matches!(
            &e,
            ClientError::Status {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("gamma GET /events?slug="), "{e}");

    // /book: two 500s then the book; three 502s then a clean failure.
    f.inject(FaultSpec::HttpStatus {
        service: Service::ClobRest,
        count: 2,
        status: 500,
        retry_after_secs: None,
    })
    .expect("fault");
    let snap = rt.block_on(clob.book(&w.up_token)).expect("retried");
    assert_eq!(snap.asset_id, w.up_token);
    f.inject(FaultSpec::HttpStatus {
        service: Service::ClobRest,
        count: 3,
        status: 502,
        retry_after_secs: None,
    })
    .expect("fault");
    let e = rt.block_on(clob.book(&w.up_token)).expect_err("gives up");
    assert!(
        matches!(
            &e,
            ClientError::Status {
                status: 502,
                attempts: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("clob GET /book?token_id="), "{e}");

    // A Retry-After longer than the client waits ends the retries with that reason.
    f.inject(FaultSpec::HttpStatus {
        service: Service::ClobRest,
        count: 1,
        status: 429,
        retry_after_secs: Some(60),
    })
    .expect("fault");
    let e = rt.block_on(clob.book(&w.up_token)).expect_err("too long");
    assert!(matches!(e, ClientError::RetryAfterTooLong { .. }), "{e}");

    // Not retried: 404 (no order book) and 400.
    let before = v.stats().requests_to("/clob/book");
    let e = rt.block_on(clob.book("123")).expect_err("unknown token");
    assert!(e.is_not_found(), "{e}");
    let e = rt.block_on(clob.book("abc")).expect_err("invalid token");
    assert!(
        matches!(
            e,
            ClientError::Status {
                status: 400,
                attempts: 1,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(v.stats().requests_to("/clob/book"), before + 2);

    // Malformed and truncated bodies are retried like transport failures.
    f.inject(FaultSpec::Malformed {
        service: Service::ClobRest,
        count: 1,
    })
    .expect("fault");
    f.inject(FaultSpec::Truncated {
        service: Service::Gamma,
        count: 2,
    })
    .expect("fault");
    assert!(rt.block_on(clob.book(&w.up_token)).is_ok());
    assert!(
        rt.block_on(gamma.market(&w.slug))
            .expect("retried")
            .is_some()
    );
}

#[test]
fn the_venue_rides_out_gamma_and_book_bursts_and_explains_an_outage() {
    let v = loopback(|c| c.book_update_ms = 30_000);
    let start = upcoming(&v);
    let f = v.faults();
    f.inject(FaultSpec::HttpStatus {
        service: Service::Gamma,
        count: 2,
        status: 429,
        retry_after_secs: Some(0),
    })
    .expect("fault");
    f.inject(FaultSpec::HttpStatus {
        service: Service::ClobRest,
        count: 2,
        status: 503,
        retry_after_secs: Some(0),
    })
    .expect("fault");
    let mut p = venue(&v, |c| c.prefetch_next = false);
    p.quote(&window(start)).expect("quotes despite the bursts");

    // Gamma down for good: the quote of an undiscovered window fails with the reason.
    f.inject(FaultSpec::HttpStatus {
        service: Service::Gamma,
        count: 3,
        status: 500,
        retry_after_secs: None,
    })
    .expect("fault");
    let e = unavailable_text(p.quote(&window(start + 300)).expect_err("outage"));
    assert!(e.contains("market discovery for btc-updown-5m-"), "{e}");
    assert!(e.contains("HTTP 500 after 3 attempt(s)"), "{e}");
    // The known window still quotes from its live book.
    p.quote(&window(start)).expect("still quotes");
}
