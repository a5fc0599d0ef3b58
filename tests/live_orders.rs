//! Live orders through the real binary against the loopback venue's CLOB V2 endpoints
//! (127.0.0.1 only, the public Anvil test key, never a real secret): a session from consent
//! to settlement, consent refused, secrets kept out of every output, and crash safety — the
//! process kills itself (SIGKILL, `UPDOWN_CRASH_AT`) at each step of an order's life and is
//! restarted; every time the ledger and the venue agree, no window has two orders, and no
//! settled trade is lost.
//!
//! Sessions run at 300× (a window per real second) and take turns, as in `live_session.rs`.

mod common;

use common::{Ran, finish, predictions, trades};
use rusqlite::Connection;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use updown::ledger::records::PredictionRecord;
use updown::loopback::auth::{ANVIL_ADDRESS, ApiCreds};
use updown::loopback::{LoopbackConfig, LoopbackVenue, OrderFault, Running};

const BIN: &str = env!("CARGO_BIN_EXE_updown");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const STRATEGY: &str = "tests/scripts/live/always_up.rhai";
const SPEED: f64 = 300.0;
/// Anvil's account 0: public, well known, holds nothing anywhere real.
const TEST_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const TEST_ADDRESS: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";

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

/// `updown run --live` in `dir` (so no `.env` of the repository is read), with only the
/// test key in the environment.
fn command(dir: &Path, config: &Path, out: &Path, intervals: u32, confirm: bool) -> Command {
    let mut c = Command::new(BIN);
    c.args(["run", "--live", "--no-reload", "--strategy"])
        .arg(Path::new(REPO).join(STRATEGY))
        .arg("--intervals")
        .arg(intervals.to_string())
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .current_dir(dir)
        .env_remove("POLYMARKET_FUNDER")
        .env_remove("POLYMARKET_SIGNATURE_TYPE")
        .env_remove("UPDOWN_CRASH_AT")
        .env("POLYMARKET_PRIVATE_KEY", TEST_KEY)
        .env("UPDOWN_SHARED_DATA", Path::new(REPO).join("../shared/data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if confirm {
        c.arg("--yes-i-understand-real-money");
    }
    c
}

/// One order as the ledger has it.
#[derive(Debug)]
struct LedgerOrder {
    window_start: i64,
    hash: String,
    state: String,
    fills: Vec<(String, Decimal, String)>,
}

fn ledger_orders(out: &Path) -> Vec<LedgerOrder> {
    let conn = Connection::open(out.join("ledger.sqlite")).expect("the ledger opens");
    let has = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'live_orders'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .expect("sqlite_master");
    if has == 0 {
        return Vec::new();
    }
    let mut stmt = conn
        .prepare(
            "SELECT window_start, order_hash, state, key FROM live_orders ORDER BY window_start",
        )
        .expect("query");
    let rows: Vec<(i64, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.into_iter()
        .map(|(window_start, hash, state, key)| {
            let mut f = conn
                .prepare("SELECT trade_id, shares, status FROM live_fills WHERE order_key = ?1")
                .expect("fills");
            let fills = f
                .query_map([&key], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .expect("fills")
                .map(|r| {
                    let (id, shares, status) = r.expect("a fill");
                    (id, shares.parse().expect("decimal shares"), status)
                })
                .collect();
            LedgerOrder {
                window_start,
                hash,
                state,
                fills,
            }
        })
        .collect()
}

/// The ledger and the venue agree; no window got two orders; every order that matched on
/// the venue is a settled trade in the journal (once the session is complete).
fn assert_agree(v: &Running, out: &Path, complete: bool) {
    let ex = v.exchange();
    let received = ex.received();
    let mut per_window: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for r in &received {
        if let (Some(w), Some(id)) = (r.window_start, &r.order_id) {
            per_window
                .entry(w)
                .or_default()
                .insert(id.to_ascii_lowercase());
        }
    }
    for (w, ids) in &per_window {
        assert_eq!(ids.len(), 1, "window {w} got {} orders: {ids:?}", ids.len());
    }
    let ledger = ledger_orders(out);
    let venue_orders = ex.orders();
    let venue_trades = ex.trades();
    for o in &venue_orders {
        let row = ledger
            .iter()
            .find(|l| l.hash.eq_ignore_ascii_case(&o.id))
            .unwrap_or_else(|| panic!("venue order {o:?} is not in the ledger {ledger:#?}"));
        assert_eq!(row.window_start, o.window_start, "{o:?}");
        let matched: Decimal = venue_trades
            .iter()
            .filter(|t| t.order_id.eq_ignore_ascii_case(&o.id) && t.status != "FAILED")
            .map(|t| t.size)
            .sum();
        let recorded: Decimal = row
            .fills
            .iter()
            .filter(|f| f.2 != "FAILED")
            .map(|f| f.1)
            .sum();
        assert_eq!(recorded, matched, "fills of {o:?} vs ledger {row:?}");
        if matched > Decimal::ZERO {
            assert_eq!(row.state, "filled", "{row:?}");
        }
        if complete && matched > Decimal::ZERO {
            let ts = trades(out);
            let t = ts
                .iter()
                .find(|t| t.interval_start == o.window_start)
                .unwrap_or_else(|| panic!("the filled order {o:?} has no settled trade: {ts:#?}"));
            assert_eq!(t.shares, matched, "{t:?}");
        }
    }
    // Nothing in the ledger claims an order the venue does not have.
    for l in &ledger {
        let on_venue = venue_orders
            .iter()
            .any(|o| o.id.eq_ignore_ascii_case(&l.hash));
        match l.state.as_str() {
            "filled" | "unfilled" | "submitted" => assert!(on_venue, "{l:?}"),
            "not_sent" | "rejected" => assert!(!on_venue, "{l:?}"),
            other => panic!("order left in state {other}: {l:?}"),
        }
    }
}

/// Neither the private key nor the API secret and passphrase the venue issued to the test
/// wallet appear in `texts` or in any file under `out` (log, journals, ledger, report).
fn assert_no_secret(texts: &[&str], out: &Path) {
    let api = ApiCreds::derive(ANVIL_ADDRESS, 0);
    let secrets = [
        TEST_KEY.trim_start_matches("0x").to_string(),
        api.secret.clone(),
        api.passphrase.clone(),
    ];
    for needle in &secrets {
        for t in texts {
            assert!(
                !t.contains(needle.as_str()),
                "a secret leaked into output:\n{t}"
            );
        }
        for entry in walk(out) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            let hay = String::from_utf8_lossy(&bytes);
            assert!(
                !hay.contains(needle.as_str())
                    && !hay
                        .to_ascii_lowercase()
                        .contains(&needle.to_ascii_lowercase()),
                "a secret leaked into {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_live_session_runs_from_consent_to_settlement_and_keeps_the_key_secret() {
    let _turn = turn();
    let v = venue();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &v);
    let start_balance = v.exchange().balance();
    let ran = finish(
        command(dir.path(), &cfg, &out, 3, true)
            .spawn()
            .expect("updown starts"),
        Duration::from_secs(120),
    );
    assert!(
        ran.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        ran.status.code(),
        ran.stdout,
        ran.stderr
    );
    // Consent and visibility: wallet, balance and limits shown before the first order.
    assert!(ran.stderr.contains("LIVE TRADING"), "{}", ran.stderr);
    assert!(ran.stderr.contains(TEST_ADDRESS), "{}", ran.stderr);
    assert!(ran.stderr.contains("pUSD balance 100"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("max entry price 0.65"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("REAL MONEY"), "{}", ran.stderr);
    let shown = ran.stderr.find("LIVE TRADING").unwrap_or(usize::MAX);
    let first_order = ran.stderr.find(" BUY up").unwrap_or(usize::MAX);
    assert!(shown < first_order, "{}", ran.stderr);

    let ps = predictions(&out);
    assert_eq!(ps.len(), 3, "{ps:#?}");
    let approved = ps.iter().filter(|p| p.verdict == "approved").count();
    assert!(approved >= 1, "{ps:#?}\n{}", ran.stderr);
    let ts = trades(&out);
    assert_eq!(ts.len(), approved, "every filled order settled: {ts:#?}");
    for t in &ts {
        assert!(t.settled_by == "venue", "{t:?}");
    }
    assert_agree(&v, &out, true);
    for l in ledger_orders(&out) {
        for f in &l.fills {
            assert_eq!(f.2, "CONFIRMED", "settled only once confirmed: {l:?}");
        }
    }
    // The wallet paid what the ledger says it staked (cost + fee of each fill).
    let staked: Decimal = ts.iter().map(|t| t.stake).sum();
    let spent = start_balance - v.exchange().balance();
    assert!(
        (spent - staked).abs() < Decimal::new(1, 4),
        "wallet spent {spent}, ledger staked {staked}"
    );

    let help = Command::new(BIN)
        .args(["run", "--help"])
        .env("POLYMARKET_PRIVATE_KEY", TEST_KEY)
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    assert!(help.contains("--live"), "{help}");
    assert_no_secret(&[&ran.stdout, &ran.stderr, &help], &out);
    assert_no_secret(&[], dir.path());
}

#[test]
fn live_trading_without_consent_sends_nothing() {
    let _turn = turn();
    let v = venue();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &v);
    let ran = finish(
        command(dir.path(), &cfg, &out, 2, false)
            .spawn()
            .expect("updown starts"),
        Duration::from_secs(60),
    );
    assert!(!ran.status.success(), "{}", ran.stderr);
    assert!(ran.stderr.contains("not confirmed"), "{}", ran.stderr);
    assert!(v.exchange().received().is_empty());
    assert_no_secret(&[&ran.stdout, &ran.stderr], &out);

    // No key at all: a clear message naming the variable, not a value.
    let ran = finish(
        command(dir.path(), &cfg, &out, 2, true)
            .env_remove("POLYMARKET_PRIVATE_KEY")
            .spawn()
            .expect("updown starts"),
        Duration::from_secs(60),
    );
    assert!(!ran.status.success());
    assert!(
        ran.stderr.contains("POLYMARKET_PRIVATE_KEY is not set"),
        "{}",
        ran.stderr
    );

    // The key in ./.env (git-ignored) instead of the environment: read, used, not shown.
    std::fs::write(
        dir.path().join(".env"),
        format!("# test wallet\nPOLYMARKET_PRIVATE_KEY=\"{TEST_KEY}\"\n"),
    )
    .expect("writing .env");
    let ran = finish(
        command(dir.path(), &cfg, &out, 2, false)
            .env_remove("POLYMARKET_PRIVATE_KEY")
            .spawn()
            .expect("updown starts"),
        Duration::from_secs(60),
    );
    assert!(ran.stderr.contains(TEST_ADDRESS), "{}", ran.stderr);
    assert!(ran.stderr.contains("not confirmed"), "{}", ran.stderr);
    assert!(v.exchange().received().is_empty());
    assert_no_secret(&[&ran.stdout, &ran.stderr], &out);

    // A malformed key is refused without being repeated.
    let ran = finish(
        command(dir.path(), &cfg, &out, 2, true)
            .env("POLYMARKET_PRIVATE_KEY", "0xdeadbeefnotakey")
            .spawn()
            .expect("updown starts"),
        Duration::from_secs(60),
    );
    assert!(!ran.status.success());
    assert!(
        ran.stderr.contains("not a valid hex private key"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("deadbeefnotakey"), "{}", ran.stderr);
}

/// What a crash left behind, and the run after the restart.
struct Crash {
    venue: Running,
    dir: tempfile::TempDir,
    /// The ledger's orders right after the kill.
    ledger_at_crash: Vec<LedgerOrder>,
    /// The orders the venue had received by the kill.
    received_at_crash: usize,
    /// The windows the session had recorded by the kill.
    decided_at_crash: Vec<PredictionRecord>,
}

impl Crash {
    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
}

/// Kill the session at `point`, restart it, and check the invariants.
fn crash_and_recover(point: &str, intervals: u32) -> Crash {
    let v = venue();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &v);
    let crashed = finish(
        command(dir.path(), &cfg, &out, intervals, true)
            .env("UPDOWN_CRASH_AT", point)
            .spawn()
            .expect("updown starts"),
        Duration::from_secs(120),
    );
    assert_eq!(
        crashed.status.signal(),
        Some(9),
        "{point}: expected SIGKILL, got {:?}\n{}",
        crashed.status,
        crashed.stderr
    );
    let ledger_at_crash = ledger_orders(&out);
    let received_at_crash = v.exchange().received().len();
    let decided_at_crash = predictions(&out);
    let restarted = finish(
        command(dir.path(), &cfg, &out, intervals, true)
            .spawn()
            .expect("updown restarts"),
        Duration::from_secs(120),
    );
    if std::env::var_os("LIVE_ORDERS_DEBUG").is_some() {
        eprintln!(
            "=== {point} crashed:\n{}\n=== restarted:\n{}\n=== ledger {:#?}\n=== venue {:#?}",
            crashed.stderr,
            restarted.stderr,
            ledger_orders(&out),
            v.exchange().received(),
        );
    }
    assert!(
        restarted.status.success(),
        "{point}: restart exit {:?}\nstdout:\n{}\nstderr:\n{}",
        restarted.status.code(),
        restarted.stdout,
        restarted.stderr
    );
    assert!(
        restarted.stdout.contains("resumed at window"),
        "{point}: {}",
        restarted.stdout
    );
    assert_agree(&v, &out, true);
    assert_no_secret(
        &[&crashed.stderr, &restarted.stderr, &restarted.stdout],
        &out,
    );
    Crash {
        venue: v,
        dir,
        ledger_at_crash,
        received_at_crash,
        decided_at_crash,
    }
}

#[test]
fn crash_before_the_intent_sends_nothing_for_that_window() {
    let _turn = turn();
    let c = crash_and_recover("before_intent", 3);
    assert!(c.ledger_at_crash.is_empty(), "{:#?}", c.ledger_at_crash);
    assert_eq!(c.received_at_crash, 0);
    assert!(c.decided_at_crash.is_empty());
    // After the restart that window is decided anew (or missed): at most one order each,
    // which `assert_agree` has checked.
    assert_eq!(predictions(&c.out()).len(), 3);
}

#[test]
fn crash_after_the_intent_marks_the_order_not_sent_and_never_resends_it() {
    let _turn = turn();
    let c = crash_and_recover("after_intent", 3);
    let at_crash = c
        .ledger_at_crash
        .first()
        .expect("the intent survived the crash");
    assert_eq!(at_crash.state, "intended");
    assert_eq!(c.received_at_crash, 0, "killed before sending");
    let ledger = ledger_orders(&c.out());
    let row = ledger
        .iter()
        .find(|l| l.window_start == at_crash.window_start)
        .expect("still recorded");
    assert_eq!(row.state, "not_sent", "{ledger:#?}");
    assert!(
        c.venue
            .exchange()
            .received()
            .iter()
            .all(|r| r.window_start != Some(at_crash.window_start)),
        "the intended window was never sent an order"
    );
    let p = predictions(&c.out())
        .into_iter()
        .find(|p| p.interval_start == at_crash.window_start)
        .expect("the window is recorded");
    assert_ne!(p.verdict, "approved", "{p:?}");
}

#[test]
fn crash_after_sending_finds_the_order_on_the_venue_and_settles_it() {
    let _turn = turn();
    let c = crash_and_recover("after_send", 3);
    let at_crash = c.ledger_at_crash.first().expect("an intent");
    assert_eq!(at_crash.state, "intended", "the answer was never recorded");
    assert_eq!(c.received_at_crash, 1, "the venue had the order");
    let ledger = ledger_orders(&c.out());
    let row = ledger
        .iter()
        .find(|l| l.window_start == at_crash.window_start)
        .expect("still recorded");
    assert_eq!(row.state, "filled", "{ledger:#?}");
    let p = predictions(&c.out())
        .into_iter()
        .find(|p| p.interval_start == row.window_start)
        .expect("its window is recorded");
    assert_eq!(p.reason_code.as_deref(), Some("recovered"), "{p:?}");
}

#[test]
fn crash_after_the_fill_recovers_the_position_and_settles_it() {
    let _turn = turn();
    let c = crash_and_recover("after_fill", 3);
    let at_crash = c.ledger_at_crash.first().expect("an order");
    assert_eq!(at_crash.state, "filled");
    assert!(!at_crash.fills.is_empty());
    assert!(
        c.decided_at_crash
            .iter()
            .all(|p| p.interval_start != at_crash.window_start),
        "the session had not recorded the position"
    );
    let p = predictions(&c.out())
        .into_iter()
        .find(|p| p.interval_start == at_crash.window_start)
        .expect("its window is recorded");
    assert_eq!(p.reason_code.as_deref(), Some("recovered"), "{p:?}");
    assert!(
        trades(&c.out())
            .iter()
            .any(|t| t.interval_start == at_crash.window_start)
    );
}

#[test]
fn crash_before_settlement_settles_the_position_after_the_restart() {
    let _turn = turn();
    let c = crash_and_recover("before_settle", 3);
    let at_crash = c.ledger_at_crash.first().expect("an order");
    assert!(
        c.decided_at_crash
            .iter()
            .any(|p| p.interval_start == at_crash.window_start && p.verdict == "approved"),
        "the position was recorded before the kill"
    );
    let ts = trades(&c.out());
    let t = ts
        .iter()
        .find(|t| t.interval_start == at_crash.window_start)
        .expect("the position settled after the restart");
    assert_eq!(t.settled_by, "venue", "{t:?}");
    let approved = predictions(&c.out())
        .iter()
        .filter(|p| p.verdict == "approved")
        .count();
    assert_eq!(ts.len(), approved, "each position settled once: {ts:#?}");
    let windows: BTreeSet<i64> = ts.iter().map(|t| t.interval_start).collect();
    assert_eq!(windows.len(), ts.len(), "no window settled twice: {ts:#?}");
}

#[test]
fn venue_errors_retry_halt_or_explain() {
    let _turn = turn();
    // 503 twice: the same signed order is retried and placed once.
    let v = venue();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &v);
    v.exchange()
        .inject(OrderFault::Status {
            count: 2,
            status: 503,
        })
        .expect("fault");
    let ran = finish(
        command(dir.path(), &cfg, &out, 2, true)
            .spawn()
            .expect("updown starts"),
        Duration::from_secs(120),
    );
    assert!(ran.status.success(), "{}", ran.stderr);
    assert!(ran.stderr.contains("attempt 2 of 3"), "{}", ran.stderr);
    assert_agree(&v, &out, true);
    assert!(
        !v.exchange().orders().is_empty(),
        "placed after the retries"
    );

    // Not enough pUSD: explained, halted, nothing placed.
    let v = venue();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &v);
    v.exchange()
        .inject(OrderFault::SetAllowance { approved: false })
        .expect("fault");
    let ran = finish(
        command(dir.path(), &cfg, &out, 2, true)
            .spawn()
            .expect("updown starts"),
        Duration::from_secs(120),
    );
    assert_eq!(
        ran.status.code(),
        Some(3),
        "halted: {}\n{}",
        ran.stdout,
        ran.stderr
    );
    assert!(ran.stdout.contains("venue_balance"), "{}", ran.stdout);
    assert!(ran.stderr.contains("approve"), "{}", ran.stderr);
    assert!(v.exchange().orders().is_empty());
    assert_agree(&v, &out, false);

    // The answer is lost after the order was placed: looked up, never read as unfilled.
    let v = venue();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &v);
    v.exchange()
        .inject(OrderFault::DropAfterAccept { count: 1 })
        .expect("fault");
    let ran = finish(
        command(dir.path(), &cfg, &out, 2, true)
            .spawn()
            .expect("updown starts"),
        Duration::from_secs(120),
    );
    assert!(ran.status.success(), "{}", ran.stderr);
    assert!(ran.stderr.contains("looking it up"), "{}", ran.stderr);
    assert_agree(&v, &out, true);
    assert!(!trades(&out).is_empty(), "the dropped-answer fill settled");
}

/// One session of `intervals` windows with `fault` injected before it starts.
fn with_fault(fault: OrderFault, intervals: u32) -> (Running, tempfile::TempDir, Ran) {
    let v = venue();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &v);
    v.exchange().inject(fault).expect("fault");
    let ran = finish(
        command(dir.path(), &cfg, &out, intervals, true)
            .spawn()
            .expect("updown starts"),
        Duration::from_secs(120),
    );
    (v, dir, ran)
}

#[test]
fn trades_that_fail_on_chain_void_the_position() {
    let _turn = turn();
    let (v, dir, ran) = with_fault(OrderFault::TradesFail { count: 1 }, 2);
    let out = dir.path().join("out");
    assert!(ran.status.success(), "{}", ran.stderr);
    assert_agree(&v, &out, false);
    let ledger = ledger_orders(&out);
    let first = ledger.first().expect("an order");
    assert!(first.fills.iter().all(|f| f.2 == "FAILED"), "{ledger:#?}");
    let ts = trades(&out);
    let t = ts
        .iter()
        .find(|t| t.interval_start == first.window_start)
        .expect("the position is closed");
    assert_eq!(t.won, None, "void, not won or lost: {t:?}");
    assert_eq!(t.pnl, Decimal::ZERO, "{t:?}");
}

#[test]
fn unauthorized_halts_and_a_venue_without_a_snapshot_is_not_traded() {
    let _turn = turn();
    // Every authenticated request refused: the snapshot cannot be loaded, nothing trades.
    let (v, dir, ran) = with_fault(OrderFault::Unauthorized { count: 1000 }, 2);
    assert!(!ran.status.success(), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("cannot load the wallet's state"),
        "{}",
        ran.stderr
    );
    assert!(v.exchange().received().is_empty());
    assert!(predictions(&dir.path().join("out")).is_empty());
}

#[test]
fn a_version_change_is_explained_and_the_next_order_is_v2() {
    let _turn = turn();
    // `/version` says 1 once: the SDK builds a V1 order, which is not sent (the venue
    // refuses V1 with order_version_mismatch); the version is read again for the next one.
    let (v, dir, ran) = with_fault(
        OrderFault::ReportVersion {
            count: 1,
            version: 1,
        },
        3,
    );
    let out = dir.path().join("out");
    assert!(ran.status.success(), "{}", ran.stderr);
    let ps = predictions(&out);
    let refused = ps
        .iter()
        .find(|p| {
            p.detail
                .as_deref()
                .is_some_and(|d| d.contains("order protocol version 1"))
        })
        .unwrap_or_else(|| panic!("{ps:#?}\n{}", ran.stderr));
    assert_eq!(refused.verdict, "refused");
    assert!(
        v.exchange()
            .received()
            .iter()
            .all(|r| r.window_start != Some(refused.interval_start)),
        "the V1 order was never sent"
    );
    assert!(!v.exchange().orders().is_empty(), "later windows trade V2");
    assert_agree(&v, &out, true);
}

#[test]
fn a_slow_answer_is_looked_up_not_taken_for_unfilled() {
    let _turn = turn();
    let (v, dir, ran) = with_fault(
        OrderFault::DelayResponse {
            count: 1,
            millis: 8_000,
        },
        2,
    );
    let out = dir.path().join("out");
    assert!(ran.status.success(), "{}", ran.stderr);
    assert!(ran.stderr.contains("looking it up"), "{}", ran.stderr);
    assert_agree(&v, &out, true);
    let first = v.exchange().orders().into_iter().next().expect("placed");
    assert!(
        trades(&out)
            .iter()
            .any(|t| t.interval_start == first.window_start),
        "the slow order's fill settled"
    );
}

/// `updown run --live` on a terminal (a pty from util-linux `script`), answering the
/// consent prompt with `answer`; `None` when `script` is not installed.
fn on_a_terminal(dir: &Path, config: &Path, out: &Path, answer: &str) -> Option<Ran> {
    if Command::new("script").arg("--version").output().is_err() {
        return None;
    }
    let cmd = format!(
        "{BIN} run --live --no-reload --strategy {} --intervals 1 --config {} --out {}",
        Path::new(REPO).join(STRATEGY).display(),
        config.display(),
        out.display()
    );
    let mut child = Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .current_dir(dir)
        .env_remove("POLYMARKET_FUNDER")
        .env_remove("POLYMARKET_SIGNATURE_TYPE")
        .env_remove("UPDOWN_CRASH_AT")
        .env("POLYMARKET_PRIVATE_KEY", TEST_KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script starts");
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = writeln!(stdin, "{answer}");
        // Kept open until the session ends: a closed pty input would end the session.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(100));
            drop(stdin);
        });
    }
    Some(finish(child, Duration::from_secs(90)))
}

#[test]
fn the_consent_prompt_needs_the_typed_phrase() {
    let _turn = turn();
    let v = venue();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &v);
    let Some(ran) = on_a_terminal(dir.path(), &cfg, &out, "yes") else {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    };
    assert!(!ran.status.success(), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("Type \"trade real money\""),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("not confirmed"), "{}", ran.stdout);
    assert!(v.exchange().received().is_empty());

    let out = dir.path().join("out2");
    let ran = on_a_terminal(dir.path(), &cfg, &out, "trade real money").expect("script");
    assert!(ran.status.success(), "{}", ran.stdout);
    assert!(!v.exchange().received().is_empty(), "{}", ran.stdout);
    assert_agree(&v, &out, true);
    assert_no_secret(&[&ran.stdout, &ran.stderr], &out);
}

#[test]
fn proxy_safe_and_deposit_wallets_sign_orders_the_venue_accepts() {
    let _turn = turn();
    // A funder address that is not the signer: the orders' maker, holding the pUSD.
    let funder = "0x995c9b1f779c04e65af8ea3360f96c43b5e62316";
    for (kind, code) in [("proxy", 1u8), ("gnosis-safe", 2), ("deposit-wallet", 3)] {
        let mut cfg = LoopbackConfig::default().with_speed(SPEED);
        cfg.resolution_delay_secs = 10;
        cfg.exchange.wallet = updown::loopback::WalletConfig::from_private_key(
            TEST_KEY,
            code,
            Some(funder.parse().expect("an address")),
            Decimal::ONE_HUNDRED,
        )
        .expect("a wallet");
        let v = LoopbackVenue::start(cfg).expect("the loopback venue starts");
        let dir = tempfile::tempdir().expect("a temp dir");
        let out = dir.path().join("out");
        let config = config(dir.path(), &v);
        let ran = finish(
            command(dir.path(), &config, &out, 2, true)
                .env("POLYMARKET_SIGNATURE_TYPE", kind)
                .env("POLYMARKET_FUNDER", funder)
                .spawn()
                .expect("updown starts"),
            Duration::from_secs(120),
        );
        assert!(ran.status.success(), "{kind}: {}", ran.stderr);
        assert!(ran.stderr.contains(funder), "{kind}: {}", ran.stderr);
        let received = v.exchange().received();
        assert!(!received.is_empty(), "{kind}: {}", ran.stderr);
        assert!(
            received.iter().all(|r| r.placed),
            "{kind}: the venue refused an order: {received:#?}"
        );
        assert_agree(&v, &out, true);
    }
}

#[test]
fn a_small_wallet_gets_an_order_whose_stake_and_fee_fit_its_balance() {
    let _turn = turn();
    // 4 pUSD: the approved $5 stake is cut so that stake + taker fee fits.
    let (v, dir, ran) = with_fault(
        OrderFault::SetBalance {
            pusd: Decimal::from(4),
        },
        1,
    );
    let out = dir.path().join("out");
    assert!(ran.status.success(), "{}", ran.stderr);
    let received = v.exchange().received();
    let first = received.first().expect("an order was sent");
    assert!(first.placed, "the venue accepted it: {first:?}");
    let maker: Decimal = first
        .maker_amount
        .as_deref()
        .expect("maker amount")
        .parse()
        .expect("a number");
    assert!(maker < Decimal::from(4_000_000), "{first:?}");
    assert!(v.exchange().balance() >= Decimal::ZERO);
    assert_agree(&v, &out, true);
}

#[test]
fn a_paper_run_and_a_live_run_are_never_the_same_session() {
    let _turn = turn();
    let v = venue();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    let cfg = config(dir.path(), &v);
    let paper = command(dir.path(), &cfg, &out, 1, false);
    // The same command without --live (clap refuses --live's flags then).
    let args: Vec<std::ffi::OsString> = paper
        .get_args()
        .filter(|a| *a != "--live")
        .map(|a| a.to_os_string())
        .collect();
    let mut plain = Command::new(BIN);
    plain
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let ran = finish(
        plain.spawn().expect("updown starts"),
        Duration::from_secs(60),
    );
    assert!(ran.status.success(), "{}", ran.stderr);
    assert!(v.exchange().received().is_empty(), "paper sends nothing");
    let ran = finish(
        command(dir.path(), &cfg, &out, 1, true)
            .spawn()
            .expect("updown starts"),
        Duration::from_secs(60),
    );
    assert!(ran.status.success(), "{}", ran.stderr);
    assert!(
        !ran.stdout.contains("already finished"),
        "the live run is its own session: {}",
        ran.stdout
    );
    assert!(!ran.stdout.contains("resumed"), "{}", ran.stdout);
}
