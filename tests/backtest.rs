//! `updown backtest`, end to end through the real binary on real data: settlement from
//! Polymarket's real results (and the price-data agreement it prints), `--from/--to`, joining
//! several files, the fingerprint, sweeps, the look-ahead check and fresh sessions.
//!
//! Expected values are computed here, independently, from the CSV files (this file's own
//! reader and arithmetic), never taken from the code under test. Ranges are kept short so
//! the suite stays fast in a debug build.

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use updown::ledger::records::{PredictionRecord, TradeRecord};

const BIN: &str = env!("CARGO_BIN_EXE_updown");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const PM_BINANCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/polymarket_btc_updown_2026-02/binance_btc.csv"
);
const PM_OUTCOMES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/polymarket_btc_updown_2026-02/polymarket_btc.csv"
);
const RSI_EMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/strategies/rsi_ema.rhai");
const RSI_MACD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/strategies/rsi_macd_imbalance.rhai"
);

/// 2026-02-22 00:00 UTC.
const FEB22: i64 = 1_771_718_400;
const HOUR: i64 = 3600;

/// Enough capital that the drawdown halt never cuts a test run short.
const CONFIG: &str = "[account]\nstarting_capital = 10000\n[risk]\ndaily_loss_limit = 100000\n";

// ---------------------------------------------------------------------------------------
// Running the binary.

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn updown(args: &[&str]) -> Ran {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(REPO)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {BIN} {args:?}: {e}"));
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("creating a temporary folder")
}

fn config_in(dir: &Path) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, CONFIG).expect("writing the test config");
    path.display().to_string()
}

/// Run a backtest that must succeed; returns its output.
fn backtest(args: &[&str]) -> Ran {
    let mut all = vec!["backtest"];
    all.extend_from_slice(args);
    let r = updown(&all);
    assert_eq!(
        r.code,
        Some(0),
        "updown {all:?} failed\nstdout:\n{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
    r
}

fn fingerprint_of(r: &Ran) -> String {
    r.stdout
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint "))
        .unwrap_or_else(|| panic!("no fingerprint line in\n{}", r.stdout))
        .trim()
        .to_string()
}

fn predictions(dir: &Path) -> Vec<PredictionRecord> {
    read_lines(&dir.join("predictions.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad prediction {l}: {e}")))
        .collect()
}

fn trades(dir: &Path) -> Vec<TradeRecord> {
    read_lines(&dir.join("trades.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad trade {l}: {e}")))
        .collect()
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Independent readers.

/// `open_time,open,high,low,close,volume` rows of binance_btc.csv, by bar open time.
struct Klines {
    header: String,
    rows: Vec<(i64, String)>,
    by_time: BTreeMap<i64, (Decimal, Decimal)>,
}

fn unix(text: &str) -> i64 {
    let text = text.trim().trim_end_matches("+00:00");
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("time {text:?}: {e}"))
        .and_utc()
        .timestamp()
}

fn klines() -> Klines {
    let text = std::fs::read_to_string(PM_BINANCE).expect("reading binance_btc.csv");
    let mut lines = text.lines();
    let header = lines.next().expect("a header").to_string();
    let mut rows = Vec::new();
    let mut by_time = BTreeMap::new();
    for l in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = l.split(',').collect();
        let t = unix(f[0]);
        let open: Decimal = f[1].parse().expect("open");
        let close: Decimal = f[4].parse().expect("close");
        by_time.insert(t, (open, close));
        rows.push((t, l.to_string()));
    }
    Klines {
        header,
        rows,
        by_time,
    }
}

impl Klines {
    /// Up/Down of the window starting at `t` from price data, if its candles exist.
    fn price_side(&self, t: i64) -> Option<&'static str> {
        let (open, _) = self.by_time.get(&t)?;
        let (_, close) = self.by_time.get(&(t + 240))?;
        Some(if close >= open { "up" } else { "down" })
    }

    fn write(&self, path: &Path, rows: &[(i64, String)]) {
        let mut text = self.header.clone();
        text.push('\n');
        for (_, l) in rows {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(path, text).expect("writing a CSV copy");
    }
}

/// slug → yes_price as written in polymarket_btc.csv.
fn outcomes() -> BTreeMap<i64, (String, String)> {
    let text = std::fs::read_to_string(PM_OUTCOMES).expect("reading polymarket_btc.csv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (unix(f[0]), (f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

fn real_side(yes_price: &str) -> Option<&'static str> {
    match yes_price {
        "1.0" | "1" => Some("up"),
        "0.0" | "0" => Some("down"),
        _ => None,
    }
}

fn pct(n: usize, d: usize) -> String {
    let v = (Decimal::from(n) * Decimal::from(100) / Decimal::from(d)).round_dp(1);
    format!("{v}%")
}

// ---------------------------------------------------------------------------------------
// Real outcomes.

#[test]
fn trades_settle_from_polymarkets_real_results_and_the_agreement_is_counted_honestly() {
    let dir = tempdir();
    let cfg = config_in(dir.path());
    let out = dir.path().join("out");
    let r = backtest(&[
        "--strategy",
        RSI_EMA,
        "--data",
        PM_BINANCE,
        "--outcomes",
        PM_OUTCOMES,
        "--config",
        &cfg,
        "--out",
        out.to_str().unwrap(),
    ]);
    let k = klines();
    let real = outcomes();
    let trades = trades(&out);
    let preds = predictions(&out);
    assert!(
        trades.len() > 100,
        "too few trades to test: {}",
        trades.len()
    );

    let mut traded_agree = 0;
    for t in &trades {
        let (slug, yes) = &real[&t.interval_start];
        assert_eq!(&t.slug, slug);
        let want = real_side(yes).unwrap_or_else(|| panic!("{slug} traded without a result"));
        assert_eq!(t.outcome.as_deref(), Some(want), "{slug}");
        assert_eq!(t.won, Some(t.side == want), "{slug}");
        assert_eq!(t.settled_by, "polymarket", "{slug}");
        let price = k
            .price_side(t.interval_start)
            .expect("a traded window has candles");
        traded_agree += usize::from(price == want);
    }

    // Every decided window with both a real result and price data.
    let (mut n, mut agree) = (0, 0);
    for p in &preds {
        if let (Some(want), Some(price)) = (
            real.get(&p.interval_start).and_then(|(_, y)| real_side(y)),
            k.price_side(p.interval_start),
        ) {
            n += 1;
            agree += usize::from(want == price);
        }
    }
    assert!(
        agree < n,
        "the real week has disagreements; got {agree} of {n}"
    );
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("price-data settlement would agree"))
        .unwrap_or_else(|| panic!("no agreement line in\n{}", r.stdout));
    let windows_part = format!("{} of windows ({agree} of {n})", pct(agree, n));
    let trades_part = format!(
        "{} of settled trades ({traded_agree} of {})",
        pct(traded_agree, trades.len()),
        trades.len()
    );
    assert!(
        line.contains(&windows_part),
        "{line}\nwanted {windows_part}"
    );
    assert!(line.contains(&trades_part), "{line}\nwanted {trades_part}");

    // The still-open last market is reported as unknown and is not traded.
    let (last_start, (last_slug, last_yes)) = real.iter().next_back().expect("rows");
    assert_eq!(
        real_side(last_yes),
        None,
        "the last market is open in the file"
    );
    assert!(
        r.stdout.lines().any(|l| l.contains("unknown outcome")
            && l.contains(last_slug.as_str())
            && l.contains(last_yes.as_str())),
        "{}",
        r.stdout
    );
    assert!(trades.iter().all(|t| t.interval_start != *last_start));
    assert!(
        preds
            .iter()
            .filter(|p| p.interval_start == *last_start)
            .all(|p| p.verdict != "approved")
    );
    assert!(r.stdout.contains("windows without a known outcome: 0"));
}

#[test]
fn windows_without_a_known_outcome_are_skipped_as_no_outcome_never_guessed() {
    let dir = tempdir();
    let cfg = config_in(dir.path());
    // Drop the row of 02:00 and make 03:00 unresolved on 22 Feb.
    let (gone, open) = (FEB22 + 2 * HOUR, FEB22 + 3 * HOUR);
    let text = std::fs::read_to_string(PM_OUTCOMES).unwrap();
    let mut copy = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = if i == 0 {
            0
        } else {
            unix(l.split(',').next().unwrap())
        };
        if t == gone {
            continue;
        }
        if t == open {
            let f: Vec<&str> = l.split(',').collect();
            copy.push_str(&format!("{},{},0.5,{}\n", f[0], f[1], f[3]));
        } else {
            copy.push_str(l);
            copy.push('\n');
        }
    }
    let outcomes = dir.path().join("outcomes.csv");
    std::fs::write(&outcomes, copy).unwrap();
    let out = dir.path().join("out");
    let r = backtest(&[
        "--strategy",
        RSI_EMA,
        "--data",
        PM_BINANCE,
        "--outcomes",
        outcomes.to_str().unwrap(),
        "--from",
        "2026-02-22T01:00",
        "--to",
        "2026-02-22T05:00",
        "--config",
        &cfg,
        "--out",
        out.to_str().unwrap(),
    ]);
    let preds = predictions(&out);
    assert_eq!(preds.len(), 48);
    for p in &preds {
        let unknown = p.interval_start == gone || p.interval_start == open;
        assert_eq!(
            p.reason_code.as_deref() == Some("no_outcome"),
            unknown,
            "{}: {:?}",
            p.slug,
            p.reason_code
        );
        if unknown {
            assert_eq!(p.verdict, "skipped");
            assert_eq!(p.side, "skip", "the script is not even asked");
        }
    }
    assert!(
        trades(&out)
            .iter()
            .all(|t| t.interval_start != gone && t.interval_start != open)
    );
    assert!(
        r.stdout.contains("windows without a known outcome: 2"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_malformed_outcomes_file_is_refused_naming_file_line_and_column() {
    let dir = tempdir();
    let text = std::fs::read_to_string(PM_OUTCOMES).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Line 6 of the file: a slug for another window.
    lines[5] = lines[5].replacen("btc-updown-5m-17716", "btc-updown-5m-27716", 1);
    let bad = dir.path().join("bad_outcomes.csv");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let r = updown(&[
        "backtest",
        "--strategy",
        RSI_EMA,
        "--data",
        PM_BINANCE,
        "--outcomes",
        bad.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("bad_outcomes.csv line 6"), "{}", r.stderr);
    assert!(r.stderr.contains("column \"slug\""), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------
// Range selection.

#[test]
fn from_and_to_select_exactly_their_windows_and_the_warm_up_uses_earlier_candles() {
    let dir = tempdir();
    let cfg = config_in(dir.path());
    let whole = dir.path().join("whole");
    let part = dir.path().join("part");
    let day = dir.path().join("day");
    let common = [
        "--strategy",
        RSI_EMA,
        "--data",
        PM_BINANCE,
        "--config",
        &cfg,
    ];
    let mut a = common.to_vec();
    a.extend(["--to", "2026-02-22T08:00", "--out", whole.to_str().unwrap()]);
    backtest(&a);
    let mut b = common.to_vec();
    b.extend([
        "--from",
        "2026-02-22T06:00",
        "--to",
        "2026-02-22T08:00",
        "--out",
        part.to_str().unwrap(),
    ]);
    backtest(&b);
    let mut c = common.to_vec();
    c.extend([
        "--from",
        "2026-02-22",
        "--to",
        "2026-02-22",
        "--quiet",
        "--out",
        day.to_str().unwrap(),
    ]);
    backtest(&c);

    let whole = predictions(&whole);
    let part = predictions(&part);
    let day = predictions(&day);
    let starts = |p: &[PredictionRecord]| p.iter().map(|r| r.interval_start).collect::<Vec<_>>();
    assert_eq!(
        starts(&part),
        (0..24)
            .map(|i| FEB22 + 6 * HOUR + i * 300)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        starts(&day),
        (0..288).map(|i| FEB22 + i * 300).collect::<Vec<_>>()
    );
    // The unrestricted run starts after 100 candles of warm-up (first bar 14:26 on the 21st)
    // and ends with the same last window.
    assert_eq!(whole[0].interval_start, 1_771_684_200 + 100 * 60);
    assert_eq!(whole.last().unwrap().interval_start, FEB22 + 8 * HOUR - 300);

    // The first decision in range saw the same history as the same window in the full run.
    let same = whole
        .iter()
        .find(|p| p.interval_start == part[0].interval_start)
        .expect("the window is in the full run");
    assert_eq!(
        (
            &part[0].side,
            part[0].confidence,
            &part[0].reason,
            &part[0].features
        ),
        (&same.side, same.confidence, &same.reason, &same.features)
    );
    assert_ne!(part[0].reason, "warming up: not enough candles for RSI/EMA");
    // The first decision is made at the window start, from candles closed by then.
    assert_eq!(part[0].decision_time, part[0].interval_start);
}

// ---------------------------------------------------------------------------------------
// Joining files.

fn split_run(
    dir: &Path,
    first: std::ops::Range<usize>,
    second: Vec<(i64, String)>,
    to: &str,
) -> Ran {
    let k = klines();
    let a = dir.join("part_a.csv");
    let b = dir.join("part_b.csv");
    k.write(&a, &k.rows[first]);
    k.write(&b, &second);
    let cfg = config_in(dir);
    updown(&[
        "backtest",
        "--strategy",
        RSI_EMA,
        "--data",
        b.to_str().unwrap(),
        a.to_str().unwrap(),
        "--to",
        to,
        "--config",
        &cfg,
        "--out",
        dir.join("out").to_str().unwrap(),
    ])
}

#[test]
fn two_files_that_overlap_identically_join_into_the_same_backtest_as_one_file() {
    let dir = tempdir();
    let k = klines();
    let r = split_run(
        dir.path(),
        0..1500,
        k.rows[1000..2500].to_vec(),
        "2026-02-22T06:00",
    );
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("2500 candles from 2 files, 2026-02-21 14:26 → 2026-02-23 08:05 UTC, no gaps; 500 identical overlapping candles merged"),
        "{}",
        r.stdout
    );
    let cfg = config_in(dir.path());
    let single = backtest(&[
        "--strategy",
        RSI_EMA,
        "--data",
        PM_BINANCE,
        "--to",
        "2026-02-22T06:00",
        "--config",
        &cfg,
        "--out",
        dir.path().join("single").to_str().unwrap(),
    ]);
    assert_eq!(fingerprint_of(&r), fingerprint_of(&single));
}

#[test]
fn a_conflicting_overlap_is_refused_naming_both_files_and_the_minute() {
    let dir = tempdir();
    let k = klines();
    let mut second = k.rows[1000..2500].to_vec();
    // One changed close inside the overlap (row 1200 of the original file).
    let (t, line) = second[200].clone();
    let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
    let close: Decimal = f[4].parse().unwrap();
    f[4] = (close + Decimal::new(1, 2)).to_string();
    // Keep the row a valid candle.
    let high: Decimal = f[2].parse().unwrap();
    f[2] = high.max(close + Decimal::new(1, 2)).to_string();
    second[200] = (t, f.join(","));
    let r = split_run(dir.path(), 0..1500, second, "2026-02-22T06:00");
    assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
    let minute = chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M")
        .to_string();
    assert!(r.stderr.contains("part_a.csv"), "{}", r.stderr);
    assert!(r.stderr.contains("part_b.csv"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{minute} UTC")), "{}", r.stderr);
    assert!(r.stderr.contains("disagree"), "{}", r.stderr);
}

#[test]
fn a_gap_between_files_is_reported() {
    let dir = tempdir();
    let k = klines();
    // 100 minutes missing between 15:25 and 17:06 on 22 Feb.
    let r = split_run(
        dir.path(),
        0..1500,
        k.rows[1600..2500].to_vec(),
        "2026-02-22T18:00",
    );
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let fmt = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    let (before, after) = (k.rows[1499].0, k.rows[1600].0);
    let to = fmt(after);
    let want = format!(
        "gaps between files: 1 gap, 100 missing minutes: {}→{} UTC (100 min)",
        fmt(before),
        &to[11..]
    );
    assert!(r.stdout.contains(&want), "wanted {want}\n{}", r.stdout);
    // Windows inside the gap cannot be settled from price data and are not traded.
    let preds = predictions(&dir.path().join("out"));
    let inside: Vec<_> = preds
        .iter()
        .filter(|p| p.interval_start > before && p.interval_start + 300 <= after)
        .collect();
    assert!(!inside.is_empty());
    assert!(
        inside
            .iter()
            .all(|p| p.reason_code.as_deref() == Some("data_gap"))
    );
}

// ---------------------------------------------------------------------------------------
// Fingerprints.

/// The fingerprint recomputed here from the journals: sha256 over the trade lines and the
/// key metrics, as documented.
fn recompute_fingerprint(dir: &Path, starting: Decimal) -> String {
    let lines = read_lines(&dir.join("trades.jsonl"));
    let trades = trades(dir);
    let windows = read_lines(&dir.join("predictions.jsonl")).len();
    let mut h = Sha256::new();
    for l in &lines {
        h.update(format!("trade {l}\n"));
    }
    let wins = trades.iter().filter(|t| t.won == Some(true)).count();
    let pnl: Decimal = trades.iter().map(|t| t.pnl).sum();
    let fees: Decimal = trades.iter().map(|t| t.fee).sum();
    let equity = trades.last().map_or(starting, |t| t.equity_after);
    h.update(format!(
        "windows {windows}\ntrades {}\nwins {wins}\npnl {}\nfees {}\nfinal_equity {}\n",
        trades.len(),
        pnl.normalize(),
        fees.normalize(),
        equity.normalize()
    ));
    hex::encode(h.finalize())
}

#[test]
fn the_fingerprint_is_reproducible_covers_the_trades_and_catches_drift() {
    let dir = tempdir();
    let cfg = config_in(dir.path());
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "--strategy",
            RSI_EMA,
            "--data",
            PM_BINANCE,
            "--from",
            "2026-02-23T00:00",
            "--to",
            "2026-02-23T06:00",
            "--config",
            &cfg,
            "--out",
        ];
        let out_s = out.display().to_string();
        args.push(&out_s);
        args.extend_from_slice(extra);
        let r = backtest(&args);
        (fingerprint_of(&r), out)
    };
    let (first, dir1) = run("one", &[]);
    let (second, _) = run("two", &[]);
    assert_eq!(
        first, second,
        "same inputs, another folder: same fingerprint"
    );
    assert_eq!(first.len(), 64);
    assert_eq!(first, recompute_fingerprint(&dir1, Decimal::from(10_000)));
    assert!(!trades(&dir1).is_empty());

    let (changed, dir3) = run("three", &["--param", "ema_fast=5"]);
    assert_ne!(
        read_lines(&dir1.join("trades.jsonl")),
        read_lines(&dir3.join("trades.jsonl")),
        "precondition: the parameter changes the trades"
    );
    assert_ne!(first, changed);

    let (_, _) = run("four", &["--expect-fingerprint", &first]);
    let (_, _) = run("five", &["--expect-fingerprint", &first[..16]]);
    let mut wrong = first.clone();
    wrong.replace_range(0..1, if first.starts_with('0') { "1" } else { "0" });
    let r = updown(&[
        "backtest",
        "--strategy",
        RSI_EMA,
        "--data",
        PM_BINANCE,
        "--from",
        "2026-02-23T00:00",
        "--to",
        "2026-02-23T06:00",
        "--config",
        &cfg,
        "--out",
        dir.path().join("six").to_str().unwrap(),
        "--expect-fingerprint",
        &wrong,
    ]);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("fingerprint drift"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&wrong) && r.stderr.contains(&first),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------
// Sweeps.

#[test]
fn a_two_by_two_sweep_gives_four_rows_whose_fingerprints_match_single_backtests() {
    let dir = tempdir();
    let cfg = config_in(dir.path());
    let range = ["--from", "2026-02-24T00:00", "--to", "2026-02-24T08:00"];
    let sweep_out = dir.path().join("sweep");
    let mut args = vec![
        "--strategy",
        RSI_EMA,
        "--data",
        PM_BINANCE,
        "--config",
        &cfg,
    ];
    args.extend(range);
    let s = sweep_out.display().to_string();
    args.extend([
        "--out",
        &s,
        "--sweep",
        "rsi_low=30,45",
        "--sweep",
        "ema_fast=5,9",
        "--jobs",
        "2",
    ]);
    let r = backtest(&args);

    let mut singles: BTreeMap<(String, String), (String, Decimal)> = BTreeMap::new();
    for low in ["30", "45"] {
        for fast in ["5", "9"] {
            let out = dir.path().join(format!("single_{low}_{fast}"));
            let o = out.display().to_string();
            let pl = format!("rsi_low={low}");
            let pf = format!("ema_fast={fast}");
            let mut a = vec![
                "--strategy",
                RSI_EMA,
                "--data",
                PM_BINANCE,
                "--config",
                &cfg,
            ];
            a.extend(range);
            a.extend(["--out", &o, "--param", &pl, "--param", &pf, "--quiet"]);
            let one = backtest(&a);
            let pnl: Decimal = trades(&out).iter().map(|t| t.pnl).sum();
            singles.insert((low.into(), fast.into()), (fingerprint_of(&one), pnl));
            // The sweep's own sub-folder holds the same trades.
            let sub = sweep_out.join(format!("rsi_low={low},ema_fast={fast}"));
            assert_eq!(
                read_lines(&sub.join("trades.jsonl")),
                read_lines(&out.join("trades.jsonl"))
            );
        }
    }
    let distinct: std::collections::BTreeSet<_> = singles.values().map(|(f, _)| f).collect();
    assert_eq!(
        distinct.len(),
        4,
        "precondition: the four combinations differ"
    );

    // Table rows: "  <rsi_low> <ema_fast> ... <fingerprint>".
    let rows: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.last().is_some_and(|f| f.len() == 64))
        .collect();
    assert_eq!(rows.len(), 4, "{}", r.stdout);
    let mut last_pnl: Option<Decimal> = None;
    for w in &rows {
        let (fp, pnl) = &singles[&(w[0].to_string(), w[1].to_string())];
        assert_eq!(w.last().unwrap(), fp, "{w:?}");
        // Sorted by P&L, highest first.
        if let Some(prev) = last_pnl {
            assert!(prev >= *pnl, "{}", r.stdout);
        }
        last_pnl = Some(*pnl);
    }
    let mut pnls: Vec<Decimal> = singles.values().map(|(_, p)| *p).collect();
    pnls.sort();
    let median = (pnls[1] + pnls[2]) / Decimal::TWO;
    let profitable = pnls.iter().filter(|p| **p > Decimal::ZERO).count();
    let want = format!(
        "spread of pnl: min ${} · median ${} · max ${} (over 4 combinations) · profitable: {profitable} of 4",
        pnls[0].round_dp(2),
        median.round_dp(2),
        pnls[3].round_dp(2)
    );
    assert!(r.stdout.contains(&want), "wanted {want}\n{}", r.stdout);
    assert!(!r.stdout.to_lowercase().contains("best"), "{}", r.stdout);
    assert!(sweep_out.join("sweep.csv").is_file());
}

// ---------------------------------------------------------------------------------------
// Look-ahead check.

#[test]
fn the_look_ahead_check_passes_on_a_shipped_strategy_and_says_what_it_checked() {
    let dir = tempdir();
    let cfg = config_in(dir.path());
    let out = dir.path().join("out");
    let r = backtest(&[
        "--strategy",
        RSI_MACD,
        "--data",
        PM_BINANCE,
        "--outcomes",
        PM_OUTCOMES,
        "--from",
        "2026-02-25T00:00",
        "--to",
        "2026-02-25T06:00",
        "--config",
        &cfg,
        "--out",
        out.to_str().unwrap(),
        "--check-lookahead",
    ]);
    assert!(
        r.stdout.contains("look-ahead  passed: 5 reruns"),
        "{}",
        r.stdout
    );
    let cuts: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("cut "))
        .collect();
    assert_eq!(cuts.len(), 5, "{}", r.stdout);
    // Each rerun left its own journals, cut right after its window's decision.
    let preds = predictions(&out);
    for l in cuts {
        let slug = l
            .split_whitespace()
            .find(|w| w.starts_with("btc-updown-5m-"))
            .unwrap();
        let start: i64 = slug.trim_start_matches("btc-updown-5m-").parse().unwrap();
        let probe = predictions(&out.join("lookahead").join(slug));
        assert_eq!(probe.last().unwrap().interval_start, start);
        let full: Vec<_> = preds.iter().take(probe.len()).collect();
        assert_eq!(probe.iter().collect::<Vec<_>>(), full);
    }
}

// ---------------------------------------------------------------------------------------
// Fresh sessions.

#[test]
fn a_backtest_starts_fresh_even_where_an_earlier_session_halted() {
    let dir = tempdir();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    // The shipped config ($100, 30% drawdown halt) halts rsi_ema on the first day. (A folder
    // whose ledger records an `updown run` is refused instead: tests/hardening.rs.)
    let halted = updown(&[
        "backtest",
        "--strategy",
        RSI_EMA,
        "--data",
        PM_BINANCE,
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(halted.code, Some(0), "{}", halted.stderr);
    assert!(
        halted.stdout.starts_with("Backtest HALTED"),
        "precondition: a latched halt\n{}",
        halted.stdout
    );
    let cfg = config_in(dir.path());
    let r = backtest(&[
        "--strategy",
        RSI_EMA,
        "--data",
        PM_BINANCE,
        "--to",
        "2026-02-21T20:00",
        "--config",
        &cfg,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(r.stdout.starts_with("Backtest "), "{}", r.stdout);
    let preds = predictions(&out);
    assert_eq!(preds.len(), (20 * HOUR - 16 * HOUR - 600) as usize / 300);
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    // No progress bar when stderr is not a terminal.
    assert!(!r.stderr.contains("ETA"), "{}", r.stderr);
}

#[test]
fn help_says_a_backtest_is_a_fresh_session() {
    let r = updown(&["backtest", "--help"]);
    assert_eq!(r.code, Some(0));
    assert!(r.stdout.contains("fresh session"), "{}", r.stdout);
    assert!(r.stdout.contains("--sweep"), "{}", r.stdout);
}

#[test]
fn the_look_ahead_check_names_the_window_and_both_decisions_when_one_changes() {
    use std::sync::atomic::AtomicBool;
    use updown::session::backtest::{
        BacktestData, BacktestSpec, Range, parse_bound, plan, run_backtest,
    };
    use updown::session::lookahead::check_lookahead;

    // The library path the CLI uses, on real data; then the full run's record of one sampled
    // window is altered, as if that decision had used data from after its time. The truncated
    // reruns cannot reproduce it, and the check must say which window and what both runs
    // decided.
    let dir = tempdir();
    let data = BacktestData::load(&[PM_BINANCE.into()], None, 300).unwrap();
    let mut config = updown::config::Config::default();
    config.account.starting_capital = Decimal::from(10_000);
    let range = Range {
        from: Some(parse_bound("2026-02-26T00:00", false).unwrap()),
        to: Some(parse_bound("2026-02-26T03:00", false).unwrap()),
    };
    let plan = plan(&data, &config, &range).unwrap();
    let spec = BacktestSpec {
        strategy: RSI_EMA.into(),
        config,
        overrides: toml::Table::new(),
        out_dir: dir.path().to_path_buf(),
        recording: updown::session::backtest::Recording::Ledger { commit_every: 64 },
        keep_predictions: true,
    };
    let stop = AtomicBool::new(false);
    let mut full = run_backtest(&spec, &data, &plan, None, None, &stop).unwrap();
    assert_eq!(full.predictions.len(), 36);

    let honest = check_lookahead(&spec, &data, &plan, &full, 3, 2, &|| {}, &stop).unwrap();
    assert!(honest.passed());
    let cuts: Vec<usize> = honest.probes.iter().map(|p| p.compared).collect();
    assert_eq!(honest.probes.len(), 3);

    // Tamper with the decision of the second sample's window.
    let victim = cuts[1] - 1;
    let mut record: PredictionRecord = serde_json::from_str(&full.predictions[victim]).unwrap();
    let original = record.reason.clone();
    record.reason = "knew the close".into();
    full.predictions[victim] = serde_json::to_string(&record).unwrap();
    let report = check_lookahead(&spec, &data, &plan, &full, 3, 2, &|| {}, &stop).unwrap();
    let m = report.mismatch.expect("the changed decision is found");
    assert_eq!(m.window.start, record.interval_start);
    let text = m.to_string();
    assert!(text.contains(&record.slug), "{text}");
    assert!(text.contains("knew the close"), "{text}");
    assert!(text.contains(&original), "{text}");
}

#[test]
fn files_joined_across_weeks_and_a_large_move_are_still_traded_after_the_hole() {
    // October 2024 (~68k) and December 2024 (~96k) with 26 days between them: the first
    // December candle must not be judged against the last October price.
    let dir = tempdir();
    let cfg = config_in(dir.path());
    let oct = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/binance_klines_1m/binance_spot_BTCUSDT_1m_2024-10-01_2024-11-04.csv"
    );
    let dec = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/binance_klines_1m/binance_spot_BTCUSDT_1m_2024-12-01_2024-12-30_privet1x.csv"
    );
    let out = dir.path().join("out");
    let r = backtest(&[
        "--strategy",
        RSI_EMA,
        "--data",
        dec,
        oct,
        "--from",
        "2024-12-02T00:00",
        "--to",
        "2024-12-02T02:00",
        "--config",
        &cfg,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        r.stdout
            .contains("gaps between files: 1 gap, 37600 missing minutes: 2024-11-04 20:19→2024-11-30 23:00 UTC"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("anomalies"), "{}", r.stdout);
    let preds = predictions(&out);
    assert_eq!(preds.len(), 24);
    assert!(
        preds
            .iter()
            .all(|p| p.reason_code.as_deref() != Some("stale_data")),
        "every window refused as stale: the filter rejected December"
    );
    assert!(!trades(&out).is_empty());
}

#[test]
fn a_backtest_recorded_in_memory_leaves_what_a_run_would_have_recorded() {
    // Recorded in memory and written once (the default), or through the ledger one step per
    // transaction as `updown run` records: the same report, fingerprint, journals and ledger.
    // The shipped config halts on the first day, so the halt is recorded too; the outcomes
    // file makes it settle by Polymarket's results.
    let dir = tempdir();
    let mut folders = Vec::new();
    for (name, extra) in [("memory", None), ("ledger", Some("1"))] {
        let out = dir.path().join(name);
        let mut args = vec![
            "--strategy",
            RSI_MACD,
            "--data",
            PM_BINANCE,
            "--outcomes",
            PM_OUTCOMES,
            "--to",
            "2026-02-23T00:00",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        if let Some(n) = extra {
            args.extend(["--commit-every", n]);
        }
        let r = backtest(&args);
        folders.push((out, fingerprint_of(&r), r.stdout.replace(name, "X")));
    }
    let [(mem, mem_print, mem_out), (led, led_print, led_out)] = &folders[..] else {
        unreachable!()
    };
    assert_eq!(mem_print, led_print);
    assert_eq!(mem_out, led_out);
    assert!(mem_out.contains("HALTED"), "{mem_out}");
    for file in [
        "predictions.jsonl",
        "trades.jsonl",
        "equity_curve.csv",
        "script_reloads.jsonl",
    ] {
        let a = std::fs::read(mem.join(file)).unwrap();
        assert!(!a.is_empty() || file == "script_reloads.jsonl", "{file}");
        assert_eq!(a, std::fs::read(led.join(file)).unwrap(), "{file}");
    }
    let open =
        |dir: &Path| updown::ledger::Ledger::open_read_only(&dir.join("ledger.sqlite")).unwrap();
    let (a, b) = (open(mem), open(led));
    let (sa, sb) = (
        a.latest_session().unwrap().unwrap(),
        b.latest_session().unwrap().unwrap(),
    );
    assert_eq!(
        (sa.status, sa.next_index, &sa.account, &sa.memory),
        (sb.status, sb.next_index, &sb.account, &sb.memory)
    );
    assert_eq!(a.halt().unwrap(), b.halt().unwrap());
    assert!(a.halt().unwrap().is_some());
    assert_eq!(a.predictions(sa.id).unwrap(), b.predictions(sb.id).unwrap());
    assert_eq!(a.trades(sa.id).unwrap(), b.trades(sb.id).unwrap());
    assert_eq!(a.equity(sa.id).unwrap(), b.equity(sb.id).unwrap());
    assert_eq!(
        a.open_positions(sa.id).unwrap(),
        b.open_positions(sb.id).unwrap()
    );
}
