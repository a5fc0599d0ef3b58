//! The real `updown` binary, end to end: window alignment, the latched drawdown halt and
//! `reset-halt`, resume after SIGTERM and kill -9, re-running a finished run, messages for
//! bad input, and the printed summary against the journals.
//!
//! Each test uses its own temporary output folder and runs the binary from the repository
//! root (so the shipped `config.toml` applies unless `--config` says otherwise).

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use updown::ledger::records::{PredictionRecord, TradeRecord};

const BIN: &str = env!("CARGO_BIN_EXE_updown");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const BUNDLED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv"
);
const OCT_2024: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/binance_klines_1m/binance_spot_BTCUSDT_1m_2024-10-01_2024-11-04.csv"
);
const RSI_EMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/strategies/rsi_ema.rhai");
const RSI_MACD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/strategies/rsi_macd_imbalance.rhai"
);

// ---------------------------------------------------------------------------------------
// Running the binary.

#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Ran {
    fn from(o: Output) -> Self {
        Ran {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(REPO)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn updown(args: &[&str]) -> Ran {
    let out = command(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {BIN} {args:?}: {e}"));
    out.into()
}

fn spawn(args: &[&str]) -> Child {
    command(args)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BIN} {args:?}: {e}"))
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill -{sig}: {e}"));
    assert!(status.success(), "kill -{sig} {} failed", child.id());
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("creating a temporary folder")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn run_args<'a>(strategy: &'a str, data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--strategy",
        strategy,
        "--replay",
        data,
        "--out",
        out,
    ]
}

fn with<'a>(mut base: Vec<&'a str>, more: &[&'a str]) -> Vec<&'a str> {
    base.extend_from_slice(more);
    base
}

// ---------------------------------------------------------------------------------------
// Reading journals and data.

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn predictions(out: &Path) -> Vec<PredictionRecord> {
    read(&out.join("predictions.jsonl"))
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("predictions.jsonl line {}: {e}: {l}", i + 1))
        })
        .collect()
}

fn trades(out: &Path) -> Vec<TradeRecord> {
    read(&out.join("trades.jsonl"))
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("trades.jsonl line {}: {e}: {l}", i + 1))
        })
        .collect()
}

/// The three journals, byte for byte.
fn journals(out: &Path) -> [String; 3] {
    [
        read(&out.join("predictions.jsonl")),
        read(&out.join("trades.jsonl")),
        read(&out.join("equity_curve.csv")),
    ]
}

fn unix_time(field: &str) -> i64 {
    let text = field.strip_suffix("+00:00").unwrap_or(field);
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("time {field:?} is not YYYY-MM-DD HH:MM:SS: {e}"))
        .and_utc()
        .timestamp()
}

/// Open time → (open, close) of every candle of a recorded CSV, read independently.
fn candles(path: &str) -> BTreeMap<i64, (Decimal, Decimal)> {
    read(Path::new(path))
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let num = |i: usize| -> Decimal {
                f[i].parse()
                    .unwrap_or_else(|e| panic!("{path}: {:?} is not a number: {e}", f[i]))
            };
            (unix_time(f[0]), (num(1), num(4)))
        })
        .collect()
}

/// The first window of a default replay (100 warm-up candles, lead 0), from the CSV.
fn first_window(path: &str) -> i64 {
    let times: Vec<i64> = candles(path).keys().copied().collect();
    let close = times[99] + 60;
    (close + 299).div_euclid(300) * 300
}

fn assert_windows(preds: &[PredictionRecord], first: i64) {
    for (i, p) in preds.iter().enumerate() {
        let start = first + 300 * i as i64;
        assert_eq!(p.interval_start, start, "window {i}");
        assert_eq!(p.interval_start % 300, 0);
        assert_eq!(p.slug, format!("btc-updown-5m-{start}"));
        assert_eq!(
            p.decision_time, start,
            "lead 0: decided at the window start"
        );
    }
}

fn assert_no_window_twice(out: &Path) {
    let preds = predictions(out);
    let unique: BTreeSet<i64> = preds.iter().map(|p| p.interval_start).collect();
    assert_eq!(unique.len(), preds.len(), "a window was journaled twice");
    let ts = trades(out);
    let unique: BTreeSet<i64> = ts.iter().map(|t| t.interval_start).collect();
    assert_eq!(unique.len(), ts.len(), "a trade was journaled twice");
}

// ---------------------------------------------------------------------------------------
// 1. Window alignment through the binary.

#[test]
fn run_journals_eighteen_aligned_windows_by_default_and_intervals_limits_them() {
    let dir = tempdir();
    let first = first_window(BUNDLED);

    let out = dir.path().join("default");
    let r = updown(&with(run_args(RSI_MACD, BUNDLED, s(&out)), &["--quiet"]));
    assert_eq!(r.code, Some(0), "{r:?}");
    let preds = predictions(&out);
    assert_eq!(preds.len(), 18, "18 windows by default");
    assert_windows(&preds, first);
    assert!(
        r.stdout
            .contains(&format!("18 windows from btc-updown-5m-{first}")),
        "{}",
        r.stdout
    );

    let out = dir.path().join("five");
    let r = updown(&with(
        run_args(RSI_MACD, BUNDLED, s(&out)),
        &["--intervals", "5", "--quiet"],
    ));
    assert_eq!(r.code, Some(0), "{r:?}");
    let preds = predictions(&out);
    assert_eq!(preds.len(), 5, "--intervals 5");
    assert_windows(&preds, first);
}

// ---------------------------------------------------------------------------------------
// 5. The drawdown halt.

#[test]
fn a_drawdown_halt_latches_survives_restart_and_needs_an_explicit_reset() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let out_s = s(&out);

    // Bet every window on the side that loses the first window (from the data), with a
    // stake far above what a 5% drawdown limit leaves room for.
    let data = candles(BUNDLED);
    let first = first_window(BUNDLED);
    let (open, _) = data[&first];
    let (_, close) = data[&(first + 240)];
    let (loser, winner) = if close >= open {
        ("down", "up")
    } else {
        ("up", "down")
    };
    let strategy = dir.path().join("loser.rhai");
    std::fs::write(
        &strategy,
        format!(
            "fn predict(ctx) {{ {loser}(0.9, \"always {loser}\") }}\nfn size(ctx, d) {{ 25 }}\n"
        ),
    )
    .expect("writing the strategy");
    let config = dir.path().join("halt.toml");
    std::fs::write(&config, "[risk]\nmax_drawdown_pct = 5\n").expect("writing the config");
    let args = with(
        run_args(s(&strategy), BUNDLED, out_s),
        &["--config", s(&config)],
    );

    let r = updown(&args);
    assert_eq!(r.code, Some(3), "a halt exits with code 3: {r:?}");
    assert!(r.stdout.contains("HALTED"), "{}", r.stdout);
    assert!(r.stdout.contains("max_drawdown"), "{}", r.stdout);
    assert!(r.stdout.contains("reset-halt"), "{}", r.stdout);

    // Window 0: the 25 asked is cut to the 5 above the floor of 95, and lost.
    let preds = predictions(&out);
    assert_eq!(preds.len(), 2, "halted at the second window: {preds:?}");
    assert_eq!(preds[0].stake_approved, Some(dec!(5)));
    let detail = preds[0].detail.as_deref().unwrap_or("");
    assert!(detail.contains("reduced_to_drawdown_floor"), "{detail}");
    let ts = trades(&out);
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].outcome.as_deref(), Some(winner));
    assert_eq!(ts[0].won, Some(false));
    assert_eq!(ts[0].pnl, dec!(-5));
    assert_eq!(ts[0].equity_after, dec!(95));
    // Window 1: no room left above the floor → refused, and the halt latches.
    assert_eq!(preds[1].verdict, "refused");
    assert_eq!(preds[1].reason_code.as_deref(), Some("drawdown_floor"));

    let st = updown(&["status", "--out", out_s]);
    assert_eq!(st.code, Some(0), "{st:?}");
    assert!(st.stdout.contains("HALTED"), "{}", st.stdout);
    assert!(st.stdout.contains("max_drawdown"), "{}", st.stdout);

    // A fresh start of the same run refuses while the halt is latched.
    let fresh = with(args.clone(), &["--fresh"]);
    let r = updown(&fresh);
    assert_ne!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains("reset-halt"), "{}", r.stderr);
    assert_eq!(
        predictions(&out).len(),
        2,
        "the refused start wrote no window"
    );

    // Without --yes and without a terminal, reset-halt refuses; the halt stays.
    let r = updown(&["reset-halt", "--out", out_s]);
    assert_ne!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    let st = updown(&["status", "--out", out_s]);
    assert!(st.stdout.contains("HALTED"), "{}", st.stdout);

    let r = updown(&["reset-halt", "--out", out_s, "--yes"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("Halt cleared"), "{}", r.stdout);
    let st = updown(&["status", "--out", out_s]);
    assert!(st.stdout.contains("not halted"), "{}", st.stdout);

    // Now a fresh start runs (one window: the same stake, the same loss, no halt yet).
    let r = updown(&with(fresh, &["--intervals", "1"]));
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("Session complete."), "{}", r.stdout);
    assert_eq!(predictions(&out).len(), 1);
    assert_eq!(trades(&out)[0].equity_after, dec!(95));
}

// ---------------------------------------------------------------------------------------
// 6. Resume after an interrupted run.

/// The run the interruption tests use: 18 windows, a trade in each.
fn resume_args(out: &str) -> Vec<&str> {
    run_args(RSI_EMA, OCT_2024, out)
}

/// The journals of an uninterrupted run of `resume_args`.
fn reference_journals(dir: &Path) -> [String; 3] {
    let out = dir.join("reference");
    let r = updown(&resume_args(s(&out)));
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("Session complete."), "{}", r.stdout);
    let j = journals(&out);
    assert_eq!(j[0].lines().count(), 18);
    assert!(
        j[1].lines().count() >= 10,
        "the reference run should trade most windows"
    );
    j
}

fn wait_with_deadline(child: Child, what: &str) -> Ran {
    let start = Instant::now();
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{what} took too long"
    );
    out.into()
}

#[test]
fn sigterm_saves_state_and_the_same_command_resumes_to_identical_journals() {
    let dir = tempdir();
    let reference = reference_journals(dir.path());

    let out = dir.path().join("interrupted");
    let args = resume_args(s(&out));
    // 600× real time: one 5-minute window per 0.5 s, 9 s for the whole session.
    let child = spawn(&with(args.clone(), &["--speed", "600"]));
    std::thread::sleep(Duration::from_millis(1200));
    signal(&child, "TERM");
    let r = wait_with_deadline(child, "the interrupted run");
    assert_eq!(r.code, Some(130), "{r:?}");
    assert!(r.stdout.contains("interrupted"), "{}", r.stdout);
    let done = predictions(&out).len();
    assert!(done < 18, "the run was not interrupted: {done} windows");
    assert_no_window_twice(&out);

    // --speed is not part of the run's identity: without it the same run resumes.
    let r = updown(&args);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("resumed at window"), "{}", r.stdout);
    assert_eq!(
        journals(&out),
        reference,
        "resumed journals differ from an uninterrupted run"
    );
    assert_no_window_twice(&out);
}

#[test]
fn kill_9_at_any_moment_loses_nothing_and_records_nothing_twice() {
    let dir = tempdir();
    let reference = reference_journals(dir.path());
    let reference_trades: Vec<TradeRecord> = reference[1]
        .lines()
        .map(|l| serde_json::from_str(l).expect("reference trade line"))
        .collect();

    for ms in [300u64, 900, 1700] {
        let out = dir.path().join(format!("killed_{ms}"));
        let args = resume_args(s(&out));
        let child = spawn(&with(args.clone(), &["--speed", "600"]));
        std::thread::sleep(Duration::from_millis(ms));
        signal(&child, "KILL");
        let r = wait_with_deadline(child, "the killed run");
        assert_eq!(r.code, None, "kill -9 at {ms} ms: {r:?}");
        if out.join("trades.jsonl").exists() {
            // Whatever the journals hold after a kill is a prefix of the truth.
            let partial = read(&out.join("trades.jsonl"));
            assert!(reference[1].starts_with(&partial), "kill at {ms} ms");
        }

        let r = updown(&args);
        assert_eq!(r.code, Some(0), "re-run after kill at {ms} ms: {r:?}");
        assert!(r.stdout.contains("Session complete"), "{}", r.stdout);
        assert_eq!(journals(&out), reference, "kill -9 at {ms} ms");
        assert_no_window_twice(&out);
        assert_eq!(
            trades(&out),
            reference_trades,
            "kill at {ms} ms: a trade was lost"
        );
    }
}

#[test]
fn rerunning_a_finished_run_reprints_it_and_leaves_the_journals_alone() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let args = run_args(RSI_MACD, BUNDLED, s(&out));
    let first = updown(&args);
    assert_eq!(first.code, Some(0), "{first:?}");
    let before = journals(&out);

    let again = updown(&args);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(
        again.stdout.contains("already finished"),
        "{}",
        again.stdout
    );
    assert_eq!(journals(&out), before);
    // The same summary, from the ledger.
    let summary = |o: &str| -> String {
        o.lines()
            .filter(|l| l.starts_with("  "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(summary(&again.stdout), summary(&first.stdout));
    assert!(!summary(&first.stdout).is_empty());
}

// ---------------------------------------------------------------------------------------
// 7. Bad input.

#[test]
fn an_unknown_config_key_is_named_with_its_line() {
    let dir = tempdir();
    let config = dir.path().join("typo.toml");
    std::fs::write(&config, "[risk]\nmax_stake = 10\nmax_stak = 5\n").expect("writing config");
    let out = dir.path().join("out");
    let r = updown(&with(
        run_args(RSI_EMA, BUNDLED, s(&out)),
        &["--config", s(&config)],
    ));
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("max_stak"), "{}", r.stderr);
    assert!(r.stderr.contains("line 3"), "{}", r.stderr);
    assert!(r.stderr.contains("typo.toml"), "{}", r.stderr);
    assert!(!out.join("predictions.jsonl").exists(), "nothing ran");
}

#[test]
fn a_csv_with_a_non_number_names_the_file_line_and_column() {
    let dir = tempdir();
    let text = read(Path::new(BUNDLED));
    let mut rows: Vec<String> = text.lines().take(400).map(str::to_string).collect();
    // Line 7 of the file (header is line 1): its close becomes "12x3".
    let mut fields: Vec<String> = rows[6].split(',').map(str::to_string).collect();
    fields[4] = "12x3".into();
    rows[6] = fields.join(",");
    let csv = dir.path().join("broken.csv");
    std::fs::write(&csv, rows.join("\n") + "\n").expect("writing csv");
    let out = dir.path().join("out");
    let r = updown(&run_args(RSI_EMA, s(&csv), s(&out)));
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("broken.csv"), "{}", r.stderr);
    assert!(r.stderr.contains("line 7"), "{}", r.stderr);
    assert!(r.stderr.contains("close"), "{}", r.stderr);
    assert!(r.stderr.contains("12x3"), "{}", r.stderr);
}

#[test]
fn a_strategy_with_a_syntax_error_names_the_file_and_line() {
    let dir = tempdir();
    let strategy = dir.path().join("broken.rhai");
    std::fs::write(
        &strategy,
        "// a broken strategy\nfn predict(ctx) {\n    let x = ;\n    up(0.5, \"x\")\n}\n",
    )
    .expect("writing strategy");
    let out = dir.path().join("out");
    let r = updown(&run_args(s(&strategy), BUNDLED, s(&out)));
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("broken.rhai"), "{}", r.stderr);
    assert!(r.stderr.contains("line 3"), "{}", r.stderr);
}

#[test]
fn a_run_without_replay_data_suggests_the_replay_flag() {
    // Without --replay the session wants live data; point it at a closed port on this
    // machine (tests never reach beyond 127.0.0.1) so it fails as it would offline.
    let dir = tempdir();
    let out = dir.path().join("out");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[live]\nbinance_rest = \"http://127.0.0.1:{port}\"\nbinance_ws = \"ws://127.0.0.1:{port}\"\nreconnect_min_ms = 50\nreconnect_max_ms = 100\n"
        ),
    )
    .expect("writing the config");
    let r = updown(&[
        "run",
        "--strategy",
        RSI_EMA,
        "--config",
        s(&config),
        "--out",
        s(&out),
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("--replay"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------
// 8. Both shipped strategies, end to end, and the printed summary.

/// The value printed after `label` in the summary block.
fn summary_field<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .map(str::trim)
        .find_map(|l| {
            l.strip_prefix(label)
                .filter(|rest| rest.starts_with("  "))
                .map(str::trim)
        })
        .unwrap_or_else(|| panic!("no {label:?} line in the summary:\n{stdout}"))
}

/// An amount as printed: `$4.45`, `+$4.45`, `-$30.00`.
fn money(text: &str) -> Decimal {
    let t = text.trim();
    let (sign, rest) = match t.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", t.strip_prefix('+').unwrap_or(t)),
    };
    format!("{sign}{}", rest.trim_start_matches('$'))
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} is not an amount: {e}"))
}

fn count(text: &str) -> usize {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} is not a count: {e}"))
}

#[test]
fn both_shipped_strategies_run_end_to_end_and_the_summary_matches_the_journals() {
    let dir = tempdir();
    for (strategy, data) in [
        (RSI_EMA, BUNDLED),
        (RSI_MACD, BUNDLED),
        (RSI_EMA, OCT_2024),
        (RSI_MACD, OCT_2024),
    ] {
        let name = format!(
            "{}_{}",
            Path::new(strategy)
                .file_stem()
                .and_then(|n| n.to_str())
                .expect("strategy name"),
            Path::new(data)
                .file_stem()
                .and_then(|n| n.to_str())
                .expect("data name")
        );
        let out: PathBuf = dir.path().join(&name);
        let r = updown(&run_args(strategy, data, s(&out)));
        let preds = predictions(&out);
        let ts = trades(&out);

        // How it ended, from the journals: a halt leaves the last window refused at the
        // drawdown floor; otherwise all 18 windows are there.
        let halted = preds.len() < 18;
        if halted {
            assert_eq!(r.code, Some(3), "{name}: {r:?}");
            assert!(r.stdout.contains("HALTED"), "{name}: {}", r.stdout);
            let last = preds.last().expect("at least one window");
            assert_eq!(
                last.reason_code.as_deref(),
                Some("drawdown_floor"),
                "{name}"
            );
            let st = updown(&["status", "--out", s(&out)]);
            assert!(st.stdout.contains("HALTED"), "{name}: {}", st.stdout);
        } else {
            assert_eq!(r.code, Some(0), "{name}: {r:?}");
            assert!(
                r.stdout.contains("Session complete."),
                "{name}: {}",
                r.stdout
            );
        }
        assert_windows(&preds, first_window(data));
        assert_no_window_twice(&out);

        let approved: Vec<i64> = preds
            .iter()
            .filter(|p| p.verdict == "approved")
            .map(|p| p.interval_start)
            .collect();
        let traded: Vec<i64> = ts.iter().map(|t| t.interval_start).collect();
        assert_eq!(traded, approved, "{name}: one trade line per traded window");

        let out_text = &r.stdout;
        assert_eq!(
            count(summary_field(out_text, "windows")),
            preds.len(),
            "{name}"
        );
        assert_eq!(count(summary_field(out_text, "traded")), ts.len(), "{name}");
        assert_eq!(
            count(summary_field(out_text, "not traded")),
            preds.len() - ts.len(),
            "{name}"
        );
        let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
        for p in preds.iter().filter(|p| p.verdict != "approved") {
            let code = p.reason_code.clone().unwrap_or_else(|| p.verdict.clone());
            *by_code.entry(code).or_default() += 1;
        }
        for (code, n) in &by_code {
            assert_eq!(count(summary_field(out_text, code)), *n, "{name}: {code}");
        }
        let wins = ts.iter().filter(|t| t.won == Some(true)).count();
        let losses = ts.iter().filter(|t| t.won == Some(false)).count();
        assert_eq!(
            summary_field(out_text, "wins / losses"),
            format!("{wins} / {losses}"),
            "{name}"
        );
        let pnl: Decimal = ts.iter().map(|t| t.pnl).sum();
        assert_eq!(
            money(summary_field(out_text, "P&L")),
            pnl.round_dp(2),
            "{name}"
        );
        let fees: Decimal = ts.iter().map(|t| t.fee).sum();
        assert_eq!(
            money(summary_field(out_text, "fees paid")),
            fees.round_dp(2),
            "{name}"
        );
        let final_equity = ts.last().map_or(dec!(100), |t| t.equity_after);
        assert_eq!(
            final_equity,
            dec!(100) + pnl,
            "{name}: equity is capital + P&L"
        );
        let equity = summary_field(out_text, "equity");
        let (from, to) = equity
            .split_once('→')
            .unwrap_or_else(|| panic!("{name}: equity line {equity:?}"));
        assert_eq!(money(from), dec!(100), "{name}");
        assert_eq!(money(to), final_equity.round_dp(2), "{name}");
    }
}
