//! The live feed over real sockets against the loopback venue (127.0.0.1 only): REST
//! backfill, the WebSocket stream with duplicates, stale frames and broken frames, the
//! staleness watchdog, reconnects with backoff and gap backfills, retries of 429/5xx bursts,
//! the Coinbase/CoinGecko fallback, and the fast failure on an unreachable host.
//!
//! The venue runs at 600× (a minute passes in 100 ms); every wait is bounded, with generous
//! real-time limits so the tests hold on a busy 2-core machine.

use std::path::Path;
use std::time::{Duration, Instant};
use updown::config::LiveConfig;
use updown::feed::live::{LiveFeed, LiveSettings};
use updown::feed::net::NetError;
use updown::feed::spot::PriceSource;
use updown::feed::{Candle, Feed, load_csv};
use updown::loopback::{FaultSpec, LoopbackConfig, LoopbackVenue, Running, Service, data};

const SPEED: f64 = 600.0;

fn venue() -> Running {
    LoopbackVenue::start(LoopbackConfig::default().with_speed(SPEED))
        .expect("the loopback venue starts")
}

/// Feed settings pointing at `v`, with short test timings.
fn settings(v: &Running, history: usize) -> LiveSettings {
    let u = v.urls();
    let live = LiveConfig {
        binance_rest: u.binance_rest,
        binance_ws: u.binance_ws,
        coinbase: u.coinbase,
        coingecko: u.coingecko,
        gamma: u.gamma,
        clob_rest: u.clob_rest,
        clob_ws: u.clob_ws,
        clock_speed: SPEED,
        stall_timeout_ms: 700,
        bar_grace_ms: 300,
        reconnect_min_ms: 50,
        reconnect_max_ms: 400,
        http_timeout_ms: 3_000,
        http_attempts: 3,
        fallback_poll_ms: 100,
        max_decision_delay_secs: 30,
        ..LiveConfig::default()
    };
    LiveSettings::from_config(&live, history)
}

fn recorded() -> Vec<Candle> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(data::KLINES_FILE);
    load_csv(&path).expect("the recorded week loads").candles
}

fn recorded_at(all: &[Candle], open_time: i64) -> Candle {
    let i = all.partition_point(|c| c.open_time < open_time);
    assert_eq!(all[i].open_time, open_time, "a recorded minute");
    all[i]
}

fn same(a: &Candle, b: &Candle) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() < 1e-6;
    a.open_time == b.open_time
        && close(a.open, b.open)
        && close(a.high, b.high)
        && close(a.low, b.low)
        && close(a.close, b.close)
        && close(a.volume, b.volume)
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Delivers everything closed by now, checking nothing closes after the time asked for.
fn drain(feed: &mut LiveFeed, got: &mut Vec<Candle>) {
    let t = feed.clock().now_secs();
    feed.deliver_until(t, &mut |c| {
        assert!(c.close_time() <= t, "bar {} delivered at {t}", c.open_time);
        got.push(c);
    });
}

/// Delivers for `d` of real time.
fn stream_for(feed: &mut LiveFeed, d: Duration) -> Vec<Candle> {
    let mut got = Vec::new();
    let until = Instant::now() + d;
    while Instant::now() < until {
        drain(feed, &mut got);
        std::thread::sleep(Duration::from_millis(40));
    }
    got
}

/// Every bar once, minute after minute, each equal to the recorded one.
fn assert_contiguous_and_recorded(got: &[Candle], all: &[Candle]) {
    assert!(!got.is_empty());
    for w in got.windows(2) {
        assert_eq!(
            w[1].open_time,
            w[0].open_time + 60,
            "bars {} then {}: a duplicate, a reorder or a hole",
            w[0].open_time,
            w[1].open_time
        );
    }
    for c in got {
        let r = recorded_at(all, c.open_time);
        assert!(same(c, &r), "bar {} differs: {c:?} vs {r:?}", c.open_time);
    }
}

#[test]
fn backfill_on_start_gives_the_recorded_bars_closed_by_virtual_now() {
    let v = venue();
    let all = recorded();
    let (mut feed, clock) = LiveFeed::connect(settings(&v, 120)).expect("the feed connects");
    // The clock follows the venue's virtual clock.
    let skew = (clock.now_ms() - v.now_ms()).abs();
    assert!(
        skew < 30_000,
        "clock {} vs venue {}",
        clock.now_ms(),
        v.now_ms()
    );
    // The backfill brought the last 120 closed bars (the stream may have added newer ones
    // since, on a slow machine).
    assert_eq!(feed.health().stats.backfilled, 120);
    let held = feed.held();
    assert!(held.len() >= 120, "{}", held.len());
    assert_contiguous_and_recorded(&held, &all);
    let now = v.now_ms() / 1000;
    let newest = held[held.len() - 1];
    assert!(newest.close_time() <= now, "no bar from the virtual future");
    assert!(
        newest.close_time() > now - 600,
        "the backfill reaches the present"
    );
    // Delivering hands out exactly those bars, once.
    let mut got = Vec::new();
    drain(&mut feed, &mut got);
    assert!(got.len() >= 120);
    assert_contiguous_and_recorded(&got, &all);
    let again = {
        let mut more = Vec::new();
        feed.deliver_until(newest.close_time(), &mut |c| more.push(c));
        more
    };
    assert!(again.is_empty(), "nothing is delivered twice");
    assert_eq!(v.stats().requests_to("/binance/api/v3/time"), 3);
    assert!(v.stats().requests_to("/binance/api/v3/klines") >= 1);
}

#[test]
fn stream_delivers_each_closed_bar_once_in_order_despite_duplicates_and_stale_frames() {
    let v = venue();
    let all = recorded();
    let (mut feed, _) = LiveFeed::connect(settings(&v, 5)).expect("the feed connects");
    let faults = v.faults();
    faults
        .inject(FaultSpec::Duplicate {
            service: Service::BinanceWs,
            count: 400,
        })
        .unwrap();
    faults
        .inject(FaultSpec::Stale {
            service: Service::BinanceWs,
            count: 400,
        })
        .unwrap();
    let got = stream_for(&mut feed, Duration::from_secs(3));
    assert_contiguous_and_recorded(&got, &all);
    let h = feed.health();
    assert!(
        h.stats.closed_bars >= 10,
        "bars came from the stream: {:?}",
        h.stats
    );
    assert!(h.stats.duplicates > 0, "{:?}", h.stats);
    assert!(h.stats.out_of_order > 0, "{:?}", h.stats);
    assert_eq!(h.stats.reconnects, 0, "{:?}", h.stats);
    assert!(h.stale.is_none(), "{:?}", h.stale);
}

#[test]
fn a_lost_connection_reconnects_with_backoff_and_a_backfill_fills_the_gap() {
    let v = venue();
    let all = recorded();
    let (mut feed, _) = LiveFeed::connect(settings(&v, 5)).expect("the feed connects");
    let mut got = stream_for(&mut feed, Duration::from_millis(500));
    let faults = v.faults();
    // A polite close first: back at once.
    faults
        .inject(FaultSpec::Disconnect {
            service: Service::BinanceWs,
        })
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || feed.health().stats.reconnects
            >= 1),
        "{:?}",
        feed.health()
    );
    // Then the service gone for 1.5 s (15 virtual minutes); the first REST calls after it
    // answer 500 and are retried.
    faults
        .inject(FaultSpec::DropService {
            service: Service::BinanceWs,
            millis: Some(1_500),
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    faults
        .inject(FaultSpec::HttpStatus {
            service: Service::BinanceRest,
            count: 2,
            status: 500,
            retry_after_secs: None,
        })
        .unwrap();
    got.extend(stream_for(&mut feed, Duration::from_secs(4)));
    let h = feed.health();
    assert!(h.stats.reconnects >= 2, "{:?}", h.stats);
    assert!(
        h.stats.connect_failures >= 1,
        "attempts failed while it was down: {:?}",
        h.stats
    );
    // Backoff: 50, 100, 200, 400, 400 ms... leaves room for a handful of attempts in 1.5 s.
    assert!(h.stats.connect_failures <= 12, "{:?}", h.stats);
    assert!(v.stats().ws_connections_to(Service::BinanceWs) >= 3);
    assert!(h.stats.backfills >= 2, "a gap backfill ran: {:?}", h.stats);
    assert!(h.stats.backfilled > 5, "it filled minutes: {:?}", h.stats);
    assert!(
        h.stats.rest_retries >= 2,
        "the 500s were retried: {:?}",
        h.stats
    );
    assert!(h.stale.is_none(), "{:?}", h.stale);
    assert_contiguous_and_recorded(&got, &all);
    let newest = got[got.len() - 1].close_time();
    assert!(
        newest >= v.now_ms() / 1000 - 600,
        "caught up with the present"
    );
}

#[test]
fn a_silent_stall_marks_the_data_stale_and_the_watchdog_reconnects() {
    let v = venue();
    let all = recorded();
    let (mut feed, _) = LiveFeed::connect(settings(&v, 5)).expect("the feed connects");
    let mut got = stream_for(&mut feed, Duration::from_millis(400));
    assert!(feed.stale().is_none(), "{:?}", feed.health());
    let before = v.stats().ws_connections_to(Service::BinanceWs);
    v.faults()
        .inject(FaultSpec::Stall {
            service: Service::BinanceWs,
            millis: 3_000,
        })
        .unwrap();
    let stalled_at = Instant::now();
    assert!(
        wait_for(Duration::from_secs(3), || feed.stale().is_some()),
        "the watchdog marks the data stale"
    );
    let why = feed.stale().unwrap_or_default();
    assert!(why.contains("silent"), "{why}");
    assert!(
        wait_for(Duration::from_secs(3), || {
            feed.health().stats.stalls >= 1
                && v.stats().ws_connections_to(Service::BinanceWs) > before
        }),
        "the watchdog reconnects: {:?}",
        feed.health().stats
    );
    // While stale, a delivery does not wait for bars that cannot come.
    let t0 = Instant::now();
    drain(&mut feed, &mut got);
    assert!(t0.elapsed() < Duration::from_millis(250));
    // After the stall the data is fresh again and the gap is backfilled.
    let left = Duration::from_millis(3_000).saturating_sub(stalled_at.elapsed());
    std::thread::sleep(left);
    assert!(
        wait_for(Duration::from_secs(6), || feed.stale().is_none()),
        "fresh again: {:?}",
        feed.health()
    );
    got.extend(stream_for(&mut feed, Duration::from_millis(600)));
    assert_contiguous_and_recorded(&got, &all);
}

#[test]
fn rest_bursts_are_retried_with_backoff_and_never_more_than_the_attempts() {
    // A short burst: retried, then fine.
    let v = venue();
    v.faults()
        .inject(FaultSpec::HttpStatus {
            service: Service::BinanceRest,
            count: 2,
            status: 503,
            retry_after_secs: Some(0),
        })
        .unwrap();
    let (feed, _) = LiveFeed::connect(settings(&v, 10)).expect("retries get through");
    assert_eq!(feed.health().stats.rest_retries, 2);
    assert_eq!(v.stats().statuses.get(&503), Some(&2));
    assert_eq!(feed.health().stats.backfilled, 10);
    drop(feed);

    // A long one: exactly `http_attempts` requests, then a clear error naming the host.
    let v = venue();
    v.faults()
        .inject(FaultSpec::HttpStatus {
            service: Service::BinanceRest,
            count: 50,
            status: 429,
            retry_after_secs: Some(0),
        })
        .unwrap();
    let started = Instant::now();
    let err = LiveFeed::connect(settings(&v, 10)).expect_err("the burst outlasts the retries");
    let host = v.addr().to_string();
    match &err {
        NetError::Status {
            status, attempts, ..
        } => assert_eq!((*status, *attempts), (429, 3)),
        e => panic!("unexpected error: {e}"),
    }
    assert!(err.to_string().contains(&host), "{err}");
    assert_eq!(v.stats().requests_to("/binance/api/v3/time"), 3);
    // Two backoff delays of at least half of 50 and 100 ms.
    assert!(started.elapsed() >= Duration::from_millis(70));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn without_binance_the_price_comes_from_coinbase_then_coingecko_with_its_source() {
    let v = venue();
    let all = recorded();
    let (mut feed, _) = LiveFeed::connect(settings(&v, 5)).expect("the feed connects");
    stream_for(&mut feed, Duration::from_millis(300));
    assert_eq!(
        feed.health().price.map(|p| p.source),
        Some(PriceSource::Binance)
    );
    let faults = v.faults();
    for service in [Service::BinanceWs, Service::BinanceRest] {
        faults
            .inject(FaultSpec::DropService {
                service,
                millis: None,
            })
            .unwrap();
    }
    let source = |feed: &LiveFeed| feed.health().price.map(|p| p.source);
    assert!(
        wait_for(Duration::from_secs(5), || source(&feed)
            == Some(PriceSource::Coinbase)),
        "{:?}",
        feed.health()
    );
    assert!(
        feed.stale().is_some(),
        "fallback prices never make the data fresh"
    );
    let h = feed.health();
    let price = h.price.map_or(0.0, |p| p.price);
    let now = v.now_ms() / 1000;
    let near = recorded_at(&all, now - now.rem_euclid(60) - 60).close;
    assert!(
        (price - near).abs() / near < 0.02,
        "coinbase {price} vs recorded {near}"
    );
    assert!(h.stats.fallback_prices >= 1);

    faults
        .inject(FaultSpec::DropService {
            service: Service::Coinbase,
            millis: None,
        })
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || source(&feed)
            == Some(PriceSource::CoinGecko)),
        "{:?}",
        feed.health()
    );
    assert!(v.stats().requests_to("/coingecko/api/v3/simple/price") >= 1);

    for service in [Service::BinanceWs, Service::BinanceRest, Service::Coinbase] {
        faults
            .inject(FaultSpec::RestoreService { service })
            .unwrap();
    }
    assert!(
        wait_for(Duration::from_secs(6), || source(&feed)
            == Some(PriceSource::Binance)
            && feed.stale().is_none()),
        "{:?}",
        feed.health()
    );
}

#[test]
fn malformed_truncated_and_broken_frames_are_counted_and_skipped() {
    let v = venue();
    let all = recorded();
    let (mut feed, _) = LiveFeed::connect(settings(&v, 5)).expect("the feed connects");
    let faults = v.faults();
    faults
        .inject(FaultSpec::Malformed {
            service: Service::BinanceWs,
            count: 8,
        })
        .unwrap();
    // One fault per frame: a frame planned both malformed and truncated is only malformed.
    let mut got = stream_for(&mut feed, Duration::from_millis(700));
    assert!(
        feed.health().stats.malformed >= 8,
        "{:?}",
        feed.health().stats
    );
    faults
        .inject(FaultSpec::Truncated {
            service: Service::BinanceWs,
            count: 8,
        })
        .unwrap();
    got.extend(stream_for(&mut feed, Duration::from_millis(700)));
    assert!(
        feed.health().stats.malformed >= 16,
        "{:?}",
        feed.health().stats
    );
    faults
        .inject(FaultSpec::BrokenFrame {
            service: Service::BinanceWs,
        })
        .unwrap();
    got.extend(stream_for(&mut feed, Duration::from_millis(2_000)));
    let h = feed.health();
    assert!(
        h.stats.reconnects >= 1,
        "a broken frame ends the connection: {:?}",
        h.stats
    );
    assert!(h.stats.frames > 20, "the stream went on: {:?}", h.stats);
    // Bars lost with a bad frame are fetched over REST: no hole reaches the session.
    assert_contiguous_and_recorded(&got, &all);
}

#[test]
fn an_unreachable_host_fails_fast_and_names_it() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut live = LiveConfig {
        binance_rest: format!("http://127.0.0.1:{port}/binance"),
        binance_ws: format!("ws://127.0.0.1:{port}/binance-ws"),
        reconnect_min_ms: 50,
        reconnect_max_ms: 200,
        http_timeout_ms: 2_000,
        ..LiveConfig::default()
    };
    live.coinbase = format!("http://127.0.0.1:{port}/coinbase");
    live.coingecko = format!("http://127.0.0.1:{port}/coingecko");
    let started = Instant::now();
    let err = LiveFeed::connect(LiveSettings::from_config(&live, 10)).expect_err("no venue");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, NetError::Unreachable { host, .. } if *host == format!("127.0.0.1:{port}")),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("cannot reach 127.0.0.1:{port}")),
        "{text}"
    );
}

#[test]
fn the_loopback_venues_live_section_is_a_valid_config_with_every_url() {
    let v = venue();
    let u = v.urls();
    let config = updown::config::Config::parse(Path::new("loopback.toml"), &u.config_toml())
        .expect("the printed [live] section parses as a config");
    let l = &config.live;
    assert_eq!(
        [
            &l.binance_rest,
            &l.binance_ws,
            &l.coinbase,
            &l.coingecko,
            &l.gamma,
            &l.clob_rest,
            &l.clob_ws
        ],
        [
            &u.binance_rest,
            &u.binance_ws,
            &u.coinbase,
            &u.coingecko,
            &u.gamma,
            &u.clob_rest,
            &u.clob_ws
        ]
    );
}
