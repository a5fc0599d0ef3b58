//! Live paper sessions through the real binary against the loopback venue (127.0.0.1 only),
//! at 300× (a 5-minute window passes in one real second): windows decided from bars closed
//! by their decision time and settled from the venue's resolution, journals complete, a
//! stalled stream refused as `stale_data` until it recovers, SIGTERM saving state and a
//! rerun resuming, and a fast, clear failure without network.
//!
//! The sessions are heavy for a 2-core machine (a venue, a session, a feed and a paper
//! venue at 300×), so the tests here take turns.

mod common;

use common::{finish, lines, predictions, trades};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use updown::domain::Side;
use updown::feed::{Candle, load_csv};
use updown::ledger::records::PredictionRecord;
use updown::loopback::{FaultSpec, LoopbackConfig, LoopbackVenue, Running, Service, data};

const BIN: &str = env!("CARGO_BIN_EXE_updown");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const STRATEGY: &str = "tests/scripts/live/always_up.rhai";
const SPEED: f64 = 300.0;

/// One heavy session at a time.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn venue() -> Running {
    LoopbackVenue::start(LoopbackConfig {
        resolution_delay_secs: 10,
        ..LoopbackConfig::default().with_speed(SPEED)
    })
    .expect("the loopback venue starts")
}

/// A config pointing the bot at `v`: its `[live]` section, a fast clock, short network
/// timings and a warm-up of 60 bars. Overlap stays at its default (off): a position whose
/// window has ended and only awaits Polymarket's resolution must not block the next window.
fn config(dir: &Path, v: &Running) -> PathBuf {
    let live = v.urls().config_toml();
    let text = format!(
        "[session]\nwarmup_candles = 60\n\n{live}clock_speed = {SPEED}\n\
         stall_timeout_ms = 400\nbar_grace_ms = 500\nreconnect_min_ms = 50\nreconnect_max_ms = 300\n\
         http_timeout_ms = 3000\nfallback_poll_ms = 200\nmax_decision_delay_secs = 240\n"
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("writing the config");
    path
}

fn command(config: &Path, out: &Path, intervals: u32) -> Command {
    let mut c = Command::new(BIN);
    c.args(["run", "--strategy", STRATEGY, "--no-reload", "--intervals"])
        .arg(intervals.to_string())
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .current_dir(REPO)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Waits until `out` holds at least `n` predictions.
fn wait_predictions(out: &Path, n: usize, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if predictions(out).len() >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

fn recorded() -> Vec<Candle> {
    let path = Path::new(REPO)
        .join("../shared/data")
        .join(data::KLINES_FILE);
    load_csv(&path).expect("the recorded week loads").candles
}

fn feature(p: &PredictionRecord, key: &str) -> Option<f64> {
    p.features.get(key).and_then(serde_json::Value::as_f64)
}

/// The newest bar a decision saw closed by its decision time and matched the recording.
fn assert_no_look_ahead(p: &PredictionRecord, all: &[Candle]) {
    let (Some(last_t), Some(last_c)) = (feature(p, "last_t"), feature(p, "last_c")) else {
        return;
    };
    let last_t = last_t as i64;
    assert!(
        last_t + 60 <= p.decision_time,
        "{}: saw the bar opened at {last_t}, closing after the decision at {}",
        p.slug,
        p.decision_time
    );
    let i = all.partition_point(|c| c.open_time < last_t);
    assert_eq!(all[i].open_time, last_t, "a recorded minute");
    assert!(
        (all[i].close - last_c).abs() < 1e-6,
        "{}: close {last_c} vs recorded {}",
        p.slug,
        all[i].close
    );
}

fn assert_windows_consecutive(ps: &[PredictionRecord]) {
    for p in ps {
        assert_eq!(p.interval_start % 300, 0, "{}", p.slug);
        assert_eq!(p.slug, format!("btc-updown-5m-{}", p.interval_start));
    }
    for w in ps.windows(2) {
        assert_eq!(w[1].interval_start, w[0].interval_start + 300, "{w:?}");
    }
}

#[test]
fn a_paper_session_decides_and_settles_windows_from_bars_closed_by_decision_time() {
    let _turn = turn();
    let v = venue();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &v);
    let ran = finish(
        command(&cfg, &out, 5).spawn().expect("updown starts"),
        Duration::from_secs(90),
    );
    assert!(
        ran.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        ran.status.code(),
        ran.stdout,
        ran.stderr
    );
    assert!(ran.stdout.contains("Session complete."), "{}", ran.stdout);

    let ps = predictions(&out);
    assert_eq!(ps.len(), 5, "one line per window");
    assert_windows_consecutive(&ps);
    let all = recorded();
    for p in &ps {
        assert_eq!(p.decision_time, p.interval_start, "decided at T (lead 0)");
        assert_no_look_ahead(p, &all);
        // A healthy stream delivers the bar that closes at T before the decision.
        assert_eq!(
            feature(p, "last_t").map(|t| t as i64 + 60),
            Some(p.decision_time),
            "{p:?}"
        );
        assert!(
            feature(p, "bars").unwrap_or(0.0) >= 60.0,
            "warm from the backfill"
        );
    }
    let approved: Vec<&PredictionRecord> = ps.iter().filter(|p| p.verdict == "approved").collect();
    assert!(approved.len() >= 3, "{ps:#?}");
    // Polymarket resolves a window after the next one is decided; with overlap off (the
    // default) that wait must not refuse the next window.
    assert!(
        ps.iter()
            .all(|p| p.reason_code.as_deref() != Some("position_open")),
        "{ps:#?}"
    );

    let ts = trades(&out);
    assert_eq!(ts.len(), approved.len(), "every approved trade settled");
    for t in &ts {
        assert!(
            t.settled_by == "venue" || t.settled_by == "price_data_fallback",
            "{t:?}"
        );
        if t.settled_by == "venue" {
            let real = v.window(t.interval_start).and_then(|w| w.outcome);
            let outcome = t.outcome.as_deref();
            assert_eq!(outcome, real.map(Side::as_str), "{t:?}");
        }
    }
    let equity = lines(&out.join("equity_curve.csv"));
    assert_eq!(equity.len(), 2 + ts.len(), "header, start, one per trade");
    // What a person reading the log saw (plain mode: stderr is a pipe here).
    assert!(ran.stderr.contains("updown run:"), "{}", ran.stderr);
    assert!(ran.stderr.contains("status: "), "{}", ran.stderr);
    assert!(ran.stderr.contains("clock synchronised"), "{}", ran.stderr);
}

#[test]
fn a_stall_mid_session_is_refused_as_stale_data_and_trading_resumes_after_it() {
    let _turn = turn();
    let v = venue();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &v);
    let child = command(&cfg, &out, 9).spawn().expect("updown starts");
    assert!(
        wait_predictions(&out, 2, Duration::from_secs(30)),
        "two windows decided"
    );
    // 2.6 s of silence is 13 virtual minutes: two or three decisions fall inside it.
    v.faults()
        .inject(FaultSpec::Stall {
            service: Service::BinanceWs,
            millis: 2_600,
        })
        .expect("the stall is injected");
    let ran = finish(child, Duration::from_secs(90));
    assert!(ran.status.success(), "{}\n{}", ran.stdout, ran.stderr);
    let ps = predictions(&out);
    assert_eq!(ps.len(), 9);
    assert_windows_consecutive(&ps);
    let all = recorded();
    for p in &ps {
        assert_no_look_ahead(p, &all);
    }
    let stale: Vec<usize> = ps
        .iter()
        .enumerate()
        .filter(|(_, p)| p.reason_code.as_deref() == Some("stale_data"))
        .map(|(i, _)| i)
        .collect();
    assert!(!stale.is_empty(), "refused while stale: {ps:#?}");
    for i in &stale {
        assert_eq!(ps[*i].verdict, "refused");
        let detail = ps[*i].detail.as_deref().unwrap_or("");
        assert!(detail.contains("feed stale"), "{detail}");
    }
    let last_stale = stale[stale.len() - 1];
    assert!(
        ps[..stale[0]].iter().any(|p| p.verdict == "approved"),
        "traded before the stall: {ps:#?}"
    );
    assert!(
        ps[last_stale + 1..].iter().any(|p| p.verdict == "approved"),
        "trading resumed after the stall: {ps:#?}"
    );
    // After recovery the gap was backfilled: the decision sees the bar closing at T again.
    let after = ps[last_stale + 1..]
        .iter()
        .rev()
        .find(|p| p.verdict == "approved")
        .expect("an approved window after the stall");
    assert_eq!(
        feature(after, "last_t").map(|t| t as i64 + 60),
        Some(after.decision_time)
    );
    assert!(ran.stderr.contains("marked stale"), "{}", ran.stderr);
}

#[test]
fn sigterm_saves_state_and_a_rerun_resumes_the_session() {
    let _turn = turn();
    let v = venue();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &v);
    let child = command(&cfg, &out, 7).spawn().expect("updown starts");
    assert!(
        wait_predictions(&out, 2, Duration::from_secs(30)),
        "two windows decided"
    );
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let first = finish(child, Duration::from_secs(20));
    assert_eq!(
        first.status.code(),
        Some(130),
        "{}\n{}",
        first.stdout,
        first.stderr
    );
    assert!(first.stdout.contains("interrupted"), "{}", first.stdout);
    let before = predictions(&out);
    assert!(before.len() >= 2 && before.len() < 7, "{before:#?}");

    let second = finish(
        command(&cfg, &out, 7).spawn().expect("updown starts again"),
        Duration::from_secs(90),
    );
    assert!(
        second.status.success(),
        "{}\n{}",
        second.stdout,
        second.stderr
    );
    assert!(
        second.stderr.contains("resuming live session"),
        "{}",
        second.stderr
    );
    assert!(
        second.stdout.contains("resumed at window"),
        "{}",
        second.stdout
    );
    let after = predictions(&out);
    assert_eq!(after.len(), 7, "the same session, every window once");
    assert_windows_consecutive(&after);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "decisions made before the signal are kept as they were"
    );
    // Windows whose time passed while the bot was down are journaled, never traded late.
    for p in &after[before.len()..] {
        assert!(
            p.reason_code.as_deref() != Some("missed") || p.verdict == "skipped",
            "{p:?}"
        );
    }
    let ts = trades(&out);
    let mut starts: Vec<i64> = ts.iter().map(|t| t.interval_start).collect();
    starts.dedup();
    assert_eq!(starts.len(), ts.len(), "no trade recorded twice");
    let approved = after.iter().filter(|p| p.verdict == "approved").count();
    assert_eq!(
        ts.len(),
        approved,
        "every approved trade settled, before or after"
    );
}

#[test]
fn without_network_run_fails_fast_naming_the_host_and_suggesting_replay() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let cfg = dir.path().join("config.toml");
    let base = format!("127.0.0.1:{port}");
    std::fs::write(
        &cfg,
        format!(
            "[live]\nbinance_rest = \"http://{base}/binance\"\nbinance_ws = \"ws://{base}/binance-ws\"\n\
             coinbase = \"http://{base}/coinbase\"\ncoingecko = \"http://{base}/coingecko\"\n\
             gamma = \"http://{base}/gamma\"\nclob_rest = \"http://{base}/clob\"\nclob_ws = \"ws://{base}/clob-ws\"\n\
             reconnect_min_ms = 50\nreconnect_max_ms = 200\n"
        ),
    )
    .expect("writing the config");
    let started = Instant::now();
    let ran = finish(
        command(&cfg, &dir.path().join("out"), 3)
            .spawn()
            .expect("updown starts"),
        Duration::from_secs(30),
    );
    assert_eq!(ran.status.code(), Some(2), "{}", ran.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        ran.stderr.contains(&format!("cannot reach {base}")),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("--replay"), "{}", ran.stderr);
}
