//! The real `updown` binary against the mistakes a hostile but realistic user makes with
//! output folders, ledgers, configs and flags (issue 16): every case here lost data, leaked a
//! secret or said nothing before it was fixed.
//!
//! - An output folder is held by one process: a second `run` or a `backtest --out` on a
//!   folder in use is refused (the test holds the folder's lock itself, as a running session
//!   would), and a backtest never replaces a ledger that records `updown run` sessions.
//! - A run with other `--intervals` in a folder with an unfinished session is refused unless
//!   `--fresh`; `report` on an unfinished run says so.
//! - `status` reads a ledger it cannot write.
//! - Outcomes that do not overlap the data are an error naming both periods.
//! - A secret in the config never appears in its error; bad `--expect-fingerprint` and a
//!   stray `--yes-i-understand-real-money` are refused before anything runs.

mod common;

use common::{Ran, finish};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use updown::ledger::lock::FolderLock;
use updown::ledger::{LEDGER_FILE, Ledger};

const BIN: &str = env!("CARGO_BIN_EXE_updown");
const DATA: &str = "data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv";
const STRATEGY: &str = "strategies/rsi_ema.rhai";
/// Polymarket's recorded results of February 2026: months after the bundled candles.
const FEB_2026_OUTCOMES: &str = "../shared/data/polymarket_btc_updown_2026-02/polymarket_btc.csv";
const LIMIT: Duration = Duration::from_secs(120);

fn updown(args: &[&str]) -> Ran {
    common::updown_within(args, LIMIT)
}

fn run(out: &Path, intervals: &str, extra: &[&str]) -> Ran {
    let out = out.display().to_string();
    let mut args = vec![
        "run",
        "--strategy",
        STRATEGY,
        "--replay",
        DATA,
        "--intervals",
        intervals,
        "--out",
        &out,
        "--quiet",
        "--no-reload",
    ];
    args.extend_from_slice(extra);
    updown(&args)
}

fn backtest(out: &Path, extra: &[&str]) -> Ran {
    let out = out.display().to_string();
    let mut args = vec![
        "backtest",
        "--strategy",
        STRATEGY,
        "--data",
        DATA,
        "--out",
        &out,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    updown(&args)
}

fn code(r: &Ran) -> Option<i32> {
    r.status.code()
}

fn sessions(out: &Path) -> i64 {
    let ledger = Ledger::open(&out.join(LEDGER_FILE)).expect("the ledger opens");
    ledger
        .latest_session()
        .expect("the ledger reads")
        .map_or(0, |s| s.id)
}

#[test]
fn a_backtest_never_replaces_a_ledger_that_records_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let r = run(&out, "4", &[]);
    assert_eq!(code(&r), Some(0), "{}", r.stderr);
    let before = std::fs::read(out.join(LEDGER_FILE)).unwrap();
    let predictions = std::fs::read(out.join("predictions.jsonl")).unwrap();

    let r = backtest(&out, &[]);
    assert_eq!(code(&r), Some(2), "refused: {}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("1 `updown run` session(s)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--out"), "says what to do: {}", r.stderr);
    assert_eq!(std::fs::read(out.join(LEDGER_FILE)).unwrap(), before);
    assert_eq!(
        std::fs::read(out.join("predictions.jsonl")).unwrap(),
        predictions
    );

    // A folder holding only backtests is still replaced: backtests start fresh.
    let bt = tmp.path().join("bt");
    for _ in 0..2 {
        let r = backtest(&bt, &[]);
        assert_eq!(code(&r), Some(0), "{}", r.stderr);
    }
}

#[test]
fn a_folder_in_use_is_refused_to_a_second_process() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let r = run(&out, "3", &[]);
    assert_eq!(code(&r), Some(0), "{}", r.stderr);
    let before = std::fs::read(out.join(LEDGER_FILE)).unwrap();
    // Held the way a running `updown run` holds it.
    let held = FolderLock::acquire(&out, "updown run --strategy elsewhere.rhai").unwrap();
    let out_s = out.display().to_string();
    for r in [
        run(&out, "3", &["--fresh"]),
        backtest(&out, &[]),
        updown(&["reset-halt", "--out", &out_s, "--yes"]),
    ] {
        assert_eq!(code(&r), Some(2), "{}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("in use by another updown process"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("elsewhere.rhai"),
            "names the holder: {}",
            r.stderr
        );
    }
    assert_eq!(
        std::fs::read(out.join(LEDGER_FILE)).unwrap(),
        before,
        "nothing was written while the folder was held"
    );
    // Reading needs no lock.
    let r = updown(&["status", "--out", &out_s]);
    assert_eq!(code(&r), Some(0), "{}", r.stderr);
    drop(held);
    let r = run(&out, "3", &["--fresh"]);
    assert_eq!(code(&r), Some(0), "free again: {}", r.stderr);
}

#[test]
fn another_run_beside_an_unfinished_session_needs_fresh() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let r = run(&out, "3", &[]);
    assert_eq!(code(&r), Some(0), "{}", r.stderr);
    // Leave it unfinished, as a kill would: the session row stays `running`.
    {
        let ledger = Ledger::open(&out.join(LEDGER_FILE)).unwrap();
        let s = ledger.latest_session().unwrap().unwrap();
        ledger
            .finish_session(s.id, updown::ledger::SessionStatus::Running)
            .unwrap();
    }
    let r = updown(&["report", &out.display().to_string(), "--no-write"]);
    assert_eq!(code(&r), Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("the run is unfinished"),
        "report warns: {}",
        r.stderr
    );

    let r = run(&out, "5", &[]);
    assert_eq!(code(&r), Some(2), "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("unfinished session #1"), "{}", r.stderr);
    assert!(r.stderr.contains("--fresh"), "{}", r.stderr);
    assert_eq!(sessions(&out), 1, "no second session was started");

    let r = run(&out, "5", &["--fresh"]);
    assert_eq!(code(&r), Some(0), "{}", r.stderr);
    assert_eq!(sessions(&out), 2);
    let r = updown(&["report", &out.display().to_string(), "--no-write"]);
    assert!(!r.stderr.contains("unfinished"), "{}", r.stderr);
}

#[test]
fn status_reads_a_ledger_it_cannot_write() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let r = run(&out, "3", &[]);
    assert_eq!(code(&r), Some(0), "{}", r.stderr);
    let out_s = out.display().to_string();
    let mut cmd = if is_root() {
        // Root writes through any permission bits: read as an unprivileged user instead.
        use std::os::unix::fs::PermissionsExt;
        for p in [tmp.path(), out.as_path()] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        make_read_only(&out);
        Command::new(BIN)
    };
    let child = cmd
        .args(["status", "--out", &out_s])
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting updown status");
    let r = finish(child, LIMIT);
    assert_eq!(code(&r), Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("Complete"), "{}", r.stdout);
    assert!(r.stdout.contains("trading    not halted"), "{}", r.stdout);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn make_read_only(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
}

#[test]
fn outcomes_that_miss_the_data_are_an_error_naming_both_periods() {
    let tmp = tempfile::tempdir().unwrap();
    let r = backtest(&tmp.path().join("bt"), &["--outcomes", FEB_2026_OUTCOMES]);
    assert_eq!(code(&r), Some(2), "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("do not overlap"), "{}", r.stderr);
    assert!(
        r.stderr.contains("2026-02"),
        "the outcomes' period: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("2025-10"),
        "the windows' period: {}",
        r.stderr
    );
}

#[test]
fn a_secret_in_the_config_is_not_echoed_by_its_error() {
    let tmp = tempfile::tempdir().unwrap();
    let key = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, format!("[live]\nprivate_key = \"{key}\"\n")).unwrap();
    let r = updown(&[
        "run",
        "--strategy",
        STRATEGY,
        "--replay",
        DATA,
        "--config",
        &config.display().to_string(),
        "--out",
        &tmp.path().join("out").display().to_string(),
    ]);
    assert_eq!(code(&r), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("private_key"), "{}", r.stderr);
    assert!(r.stderr.contains("line 2"), "{}", r.stderr);
    assert!(
        !r.stderr.contains(&key[2..14]),
        "leaks the key: {}",
        r.stderr
    );
}

#[test]
fn flags_that_cannot_mean_what_they_say_are_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["not-hex-at-all", "abc123", "0123456789abcdefg"] {
        let out = tmp.path().join("bt");
        let r = backtest(&out, &["--expect-fingerprint", bad]);
        assert_eq!(code(&r), Some(2), "{bad}: {}", r.stderr);
        assert!(r.stderr.contains("--expect-fingerprint"), "{}", r.stderr);
        assert!(!out.join(LEDGER_FILE).exists(), "{bad}: nothing ran");
    }
    let r = run(
        &tmp.path().join("out"),
        "3",
        &["--yes-i-understand-real-money"],
    );
    assert_eq!(code(&r), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--live"), "{}", r.stderr);
    assert!(!tmp.path().join("out").join(LEDGER_FILE).exists());
}

#[test]
fn an_os_error_is_printed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out").display().to_string();
    let missing_config = ["run", "--strategy", STRATEGY, "--replay", DATA, "--config"];
    let missing_data = ["backtest", "--strategy", STRATEGY, "--out", &out, "--data"];
    for args in [&missing_config[..], &missing_data[..]] {
        let mut args = args.to_vec();
        args.push("no/such/file");
        let r = updown(&args);
        assert_eq!(code(&r), Some(2), "{}", r.stderr);
        assert!(r.stderr.contains("no/such/file"), "{}", r.stderr);
        assert_eq!(r.stderr.matches("os error 2").count(), 1, "{}", r.stderr);
    }
}
