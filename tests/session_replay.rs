//! Replay sessions through the library API (`updown::session::run_replay`), checked against
//! the journals they write and against values recomputed here, independently, from the
//! recorded CSV files: window alignment, no look-ahead, settlement and money, and the risk
//! gate's refusals.
//!
//! Every run gets its own temporary output folder. Expected values come from this file's
//! own CSV reader and arithmetic, never from the code under test.

use rust_decimal::{Decimal, RoundingStrategy};
use rust_decimal_macros::dec;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use updown::config::Config;
use updown::ledger::records::{PredictionRecord, TradeRecord};
use updown::session::replay::ReplayOutcome;
use updown::session::{Ending, ReplaySpec, run_replay};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const BUNDLED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv"
);
const OCT_2024: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/binance_klines_1m/binance_spot_BTCUSDT_1m_2024-10-01_2024-11-04.csv"
);
const APR_2021: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/binance_klines_1m/binance_spot_BTCUSDT_1m_2021-03-26_2021-04-30.csv"
);
const RSI_EMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/strategies/rsi_ema.rhai");
const RSI_MACD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/strategies/rsi_macd_imbalance.rhai"
);

// ---------------------------------------------------------------------------------------
// An independent reader for the recorded CSVs (time in column 0, then open, high, low, close).

#[derive(Clone, Debug)]
struct Row {
    /// Bar open time, Unix seconds.
    t: i64,
    /// The raw fields, for writing altered copies.
    fields: Vec<String>,
}

impl Row {
    fn price(&self, col: usize) -> Decimal {
        self.fields[col].parse::<Decimal>().unwrap_or_else(|e| {
            panic!(
                "row at t={}: column {col} {:?} is not a decimal: {e}",
                self.t, self.fields[col]
            )
        })
    }
    fn open(&self) -> Decimal {
        self.price(1)
    }
    fn high(&self) -> Decimal {
        self.price(2)
    }
    fn low(&self) -> Decimal {
        self.price(3)
    }
    fn close(&self) -> Decimal {
        self.price(4)
    }
    fn close_time(&self) -> i64 {
        self.t + 60
    }
}

#[derive(Clone, Debug)]
struct Csv {
    header: String,
    rows: Vec<Row>,
}

fn unix_time(field: &str) -> i64 {
    let text = field.strip_suffix("+00:00").unwrap_or(field);
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("time {field:?} is not YYYY-MM-DD HH:MM:SS: {e}"))
        .and_utc()
        .timestamp()
}

fn read_csv(path: &str) -> Csv {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the data file {path}: {e}"));
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("{path} is empty"))
        .to_string();
    let rows = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let fields: Vec<String> = l.split(',').map(str::to_string).collect();
            Row {
                t: unix_time(&fields[0]),
                fields,
            }
        })
        .collect();
    Csv { header, rows }
}

impl Csv {
    fn by_time(&self) -> BTreeMap<i64, &Row> {
        self.rows.iter().map(|r| (r.t, r)).collect()
    }

    /// The newest candle closed at or before `t`.
    fn last_closed_by(&self, t: i64) -> Option<&Row> {
        self.rows.iter().rev().find(|r| r.close_time() <= t)
    }

    fn write(&self, path: &Path) {
        let mut text = String::with_capacity(self.rows.len() * 80);
        text.push_str(&self.header);
        text.push('\n');
        for r in &self.rows {
            text.push_str(&r.fields.join(","));
            text.push('\n');
        }
        std::fs::write(path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// A copy with open/high/low/close multiplied by `factor` on every row `pick` selects.
    fn scaled(&self, factor: f64, pick: impl Fn(&Row) -> bool) -> Csv {
        let mut out = self.clone();
        for r in out.rows.iter_mut().filter(|r| pick(r)) {
            for col in 1..=4 {
                let x: f64 = r.fields[col]
                    .parse()
                    .unwrap_or_else(|e| panic!("t={}: price {:?}: {e}", r.t, r.fields[col]));
                r.fields[col] = (x * factor).to_string();
            }
        }
        out
    }
}

/// First window start of a replay with `warmup` candles and `lead` seconds, from the rule in
/// DESIGN.md §2: the first 5-minute boundary at or after the warm-up's last close + lead.
fn expected_first_start(csv: &Csv, warmup: usize, lead: i64) -> i64 {
    let t = csv.rows[warmup - 1].close_time() + lead;
    (t + 299).div_euclid(300) * 300
}

// ---------------------------------------------------------------------------------------
// Running sessions and reading their journals.

fn shipped_config() -> Config {
    let path = Path::new(REPO).join("config.toml");
    Config::load(&path).unwrap_or_else(|e| panic!("the shipped config.toml must load: {e}"))
}

/// Write `text` as a config file in `dir` and load it the way the CLI does.
fn temp_config(dir: &Path, text: &str) -> Config {
    let path = dir.join("test-config.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    Config::load(&path).unwrap_or_else(|e| panic!("test config {text:?} must load: {e}"))
}

fn write_strategy(dir: &Path, name: &str, source: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, source).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

fn replay(
    strategy: &Path,
    data: &Path,
    config: Config,
    out: &Path,
    intervals: Option<u32>,
) -> ReplayOutcome {
    let spec = ReplaySpec {
        strategy: strategy.to_path_buf(),
        data: data.to_path_buf(),
        config,
        overrides: toml::Table::new(),
        intervals,
        speed: None,
        out_dir: Some(out.to_path_buf()),
        fresh: false,
        watch: false,
    };
    run_replay(&spec, &AtomicBool::new(false)).unwrap_or_else(|e| {
        panic!(
            "replay of {} on {} failed: {e}",
            strategy.display(),
            data.display()
        )
    })
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn prediction_lines(out: &Path) -> Vec<String> {
    lines(&out.join("predictions.jsonl"))
}

fn predictions(out: &Path) -> Vec<PredictionRecord> {
    prediction_lines(out)
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("predictions.jsonl line {}: {e}: {l}", i + 1))
        })
        .collect()
}

fn trade_lines(out: &Path) -> Vec<String> {
    lines(&out.join("trades.jsonl"))
}

fn trades(out: &Path) -> Vec<TradeRecord> {
    trade_lines(out)
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("trades.jsonl line {}: {e}: {l}", i + 1))
        })
        .collect()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("creating a temporary folder")
}

fn code(p: &PredictionRecord) -> &str {
    p.reason_code.as_deref().unwrap_or("-")
}

// ---------------------------------------------------------------------------------------
// 1. Window alignment.

fn assert_aligned(preds: &[PredictionRecord], first: i64, lead: i64) {
    for (i, p) in preds.iter().enumerate() {
        let want = first + 300 * i as i64;
        assert_eq!(p.interval_start, want, "window {i}");
        assert_eq!(
            p.interval_start % 300,
            0,
            "window {i} is not on a 5m boundary"
        );
        assert_eq!(
            p.slug,
            format!("btc-updown-5m-{}", p.interval_start),
            "window {i}"
        );
        assert_eq!(p.decision_time, p.interval_start - lead, "window {i}");
    }
    for pair in preds.windows(2) {
        assert_eq!(pair[1].interval_start - pair[0].interval_start, 300);
    }
}

#[test]
fn windows_are_five_minute_aligned_named_by_their_start_and_decided_at_the_start() {
    let csv = read_csv(BUNDLED);
    // 2025-10-29 04:22 + 100 warm-up candles closes at 06:02 → first window 06:05 UTC.
    let first = expected_first_start(&csv, 100, 0);
    assert_eq!(first, 1_761_717_900);

    let dir = tempdir();
    let out = dir.path().join("default");
    let o = replay(
        Path::new(RSI_MACD),
        Path::new(BUNDLED),
        shipped_config(),
        &out,
        None,
    );
    assert_eq!(o.ending, Some(Ending::Complete));
    assert_eq!(o.windows, 18);
    assert_eq!(o.first_slug, format!("btc-updown-5m-{first}"));
    let preds = predictions(&out);
    assert_eq!(preds.len(), 18, "18 windows by default");
    assert_aligned(&preds, first, 0);

    let out5 = dir.path().join("five");
    replay(
        Path::new(RSI_MACD),
        Path::new(BUNDLED),
        shipped_config(),
        &out5,
        Some(5),
    );
    let five = predictions(&out5);
    assert_eq!(five.len(), 5, "--intervals 5 gives 5 windows");
    assert_aligned(&five, first, 0);

    // With a decision lead the windows stay aligned and the decision moves earlier.
    let out_lead = dir.path().join("lead");
    let cfg = temp_config(dir.path(), "[session]\ndecision_lead_secs = 120\n");
    replay(
        Path::new(RSI_MACD),
        Path::new(BUNDLED),
        cfg,
        &out_lead,
        Some(6),
    );
    let led = predictions(&out_lead);
    assert_eq!(led.len(), 6);
    assert_aligned(&led, expected_first_start(&csv, 100, 120), 120);
}

// ---------------------------------------------------------------------------------------
// 2. No look-ahead.

/// Runs `strategy` on `data`, then, for each k, on copies where everything after window k's
/// decision time is altered, and checks windows 0..=k decided exactly the same.
fn assert_no_look_ahead(strategy: &str, data: &str, ks: &[usize]) {
    let csv = read_csv(data);
    let dir = tempdir();
    let out0 = dir.path().join("original");
    replay(
        Path::new(strategy),
        Path::new(data),
        shipped_config(),
        &out0,
        None,
    );
    let base = prediction_lines(&out0);
    let base_preds = predictions(&out0);
    let base_trades = trades(&out0);
    let max_k = ks.iter().copied().max().unwrap_or(0);
    assert!(
        base.len() > max_k,
        "{strategy} on {data} decided only {} windows; need more than {max_k}",
        base.len()
    );

    for &k in ks {
        let decided_at = base_preds[k].decision_time;
        let field_view = |p: &PredictionRecord| {
            (
                p.side.clone(),
                p.confidence,
                p.reason.clone(),
                p.features.clone(),
                p.stake_asked.clone(),
                p.stake_approved,
            )
        };

        // (a) Every candle that closes after the decision time scaled by 1.3 (the anomaly
        // filter rejects such jumps, so later windows see no new data at all).
        let altered = csv.scaled(1.3, |r| r.close_time() > decided_at);
        let file = dir.path().join(format!("scaled_{k}.csv"));
        altered.write(&file);
        let out = dir.path().join(format!("scaled_{k}"));
        replay(
            Path::new(strategy),
            &file,
            shipped_config(),
            &out,
            Some(base.len() as u32),
        );
        let got = prediction_lines(&out);
        let got_preds = predictions(&out);
        for (i, (g, b)) in got_preds.iter().zip(&base_preds).take(k + 1).enumerate() {
            assert_eq!(
                field_view(g),
                field_view(b),
                "{strategy}: window {i} changed when data after window {k}'s decision was scaled"
            );
        }
        assert_eq!(
            got[..=k],
            base[..=k],
            "{strategy}: prediction lines 0..={k} changed when later data was scaled"
        );
        // The alteration is visible to later windows, so the comparison above can fail.
        if k + 1 < base.len() {
            assert_ne!(
                got.get(k + 1),
                base.get(k + 1),
                "{strategy}: scaling data after window {k} should change window {}",
                k + 1
            );
        }
        // Trades settled before the decision time are untouched too.
        let settled_before: Vec<&TradeRecord> = base_trades
            .iter()
            .filter(|t| t.interval_start + 300 <= decided_at)
            .collect();
        let got_trades = trades(&out);
        assert!(got_trades.len() >= settled_before.len());
        for (a, b) in settled_before.iter().zip(&got_trades) {
            assert_eq!(
                *a, b,
                "{strategy}: a trade settled before window {k} changed"
            );
        }

        // (b) The file cut right after window k (its candles nudged by 2%, which passes the
        // anomaly filter) and a session of k + 1 windows.
        let mut cut = csv.scaled(1.02, |r| r.close_time() > decided_at);
        cut.rows.retain(|r| r.close_time() <= decided_at + 300);
        let file = dir.path().join(format!("cut_{k}.csv"));
        cut.write(&file);
        let out = dir.path().join(format!("cut_{k}"));
        replay(
            Path::new(strategy),
            &file,
            shipped_config(),
            &out,
            Some(k as u32 + 1),
        );
        let got = prediction_lines(&out);
        assert_eq!(
            got.len(),
            k + 1,
            "{strategy}: the cut file holds k + 1 windows"
        );
        assert_eq!(
            got[..],
            base[..=k],
            "{strategy}: windows 0..={k} changed when the file was cut after window {k}"
        );
    }
}

#[test]
fn rsi_ema_decisions_do_not_depend_on_data_after_the_decision_time() {
    assert_no_look_ahead(RSI_EMA, OCT_2024, &[2, 8, 15]);
    assert_no_look_ahead(RSI_EMA, BUNDLED, &[1, 5, 9]);
}

#[test]
fn rsi_macd_imbalance_decisions_do_not_depend_on_data_after_the_decision_time() {
    assert_no_look_ahead(RSI_MACD, BUNDLED, &[3, 9, 16]);
    assert_no_look_ahead(RSI_MACD, OCT_2024, &[0, 6, 12]);
}

const PROBE: &str = r#"
// Records what the script can see: the newest candle's open time, the clock and the price.
fn predict(ctx) {
    let last = ctx.candles(1);
    let d = skip("probe");
    d.features = #{ last_t: last[0].t, now: ctx.now, price: ctx.price, start: ctx.window.start };
    d
}
"#;

fn feature(p: &PredictionRecord, key: &str) -> f64 {
    p.features
        .get(key)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("window {}: feature {key} missing", p.interval_start))
}

fn assert_probe_saw_only_the_past(csv: &Csv, preds: &[PredictionRecord]) {
    assert!(!preds.is_empty());
    for p in preds {
        if p.reason_code.as_deref() == Some("data_gap") {
            continue;
        }
        let last_t = feature(p, "last_t") as i64;
        let now = feature(p, "now") as i64;
        assert_eq!(now, p.decision_time, "ctx.now is the decision time");
        assert_eq!(feature(p, "start") as i64, p.interval_start);
        assert!(
            last_t + 60 <= p.decision_time,
            "window {}: the script saw the candle opened at {last_t}, which closes after the decision at {}",
            p.interval_start,
            p.decision_time
        );
        // ... and it is exactly the newest candle of the file closed by then: nothing
        // closed is hidden either.
        let want = csv
            .last_closed_by(p.decision_time)
            .unwrap_or_else(|| panic!("no candle closes by {}", p.decision_time));
        assert_eq!(last_t, want.t, "window {}", p.interval_start);
        let price: f64 = want.fields[4].parse().expect("close is a number");
        assert_eq!(
            feature(p, "price"),
            price,
            "ctx.price is that candle's close"
        );
    }
}

#[test]
fn a_script_sees_only_candles_closed_by_the_decision_time() {
    let dir = tempdir();
    let probe = write_strategy(dir.path(), "probe.rhai", PROBE);
    let csv = read_csv(BUNDLED);

    let out = dir.path().join("lead0");
    replay(&probe, Path::new(BUNDLED), shipped_config(), &out, None);
    let preds = predictions(&out);
    assert_eq!(preds.len(), 18);
    assert_probe_saw_only_the_past(&csv, &preds);

    // A decision lead of 150 s: the decision falls in the middle of a minute.
    let out = dir.path().join("lead150");
    let cfg = temp_config(dir.path(), "[session]\ndecision_lead_secs = 150\n");
    replay(&probe, Path::new(BUNDLED), cfg, &out, Some(8));
    let preds = predictions(&out);
    assert_eq!(preds.len(), 8);
    for p in &preds {
        assert_eq!(p.decision_time, p.interval_start - 150);
    }
    assert_probe_saw_only_the_past(&csv, &preds);
}

// ---------------------------------------------------------------------------------------
// 3. Settlement and money.

fn round5(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(5, RoundingStrategy::MidpointAwayFromZero)
}

fn down6(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(6, RoundingStrategy::ToZero)
}

/// Recompute every trade of a finished session from the CSV and the quote model.
fn assert_settlement(
    out: &Path,
    csv: &Csv,
    capital: Decimal,
    price: Decimal,
    rate: Decimal,
) -> usize {
    let rows = csv.by_time();
    let preds = predictions(out);
    let trades = trades(out);
    let approved: BTreeMap<i64, &PredictionRecord> = preds
        .iter()
        .filter(|p| p.verdict == "approved")
        .map(|p| (p.interval_start, p))
        .collect();
    let traded: Vec<i64> = trades.iter().map(|t| t.interval_start).collect();
    assert_eq!(
        traded,
        approved.keys().copied().collect::<Vec<_>>(),
        "one settled trade per approved window, in window order"
    );

    let mut equity = capital;
    let mut streak = 0u32;
    let mut curve = vec![format!("{},{}", preds[0].decision_time, capital)];
    for t in &trades {
        let s = t.interval_start;
        let p = approved[&s];
        assert_eq!(t.slug, format!("btc-updown-5m-{s}"));
        assert_eq!(t.side, p.side, "window {s}");
        assert_eq!(Some(t.stake), p.stake_approved, "window {s}");

        let first = rows
            .get(&s)
            .unwrap_or_else(|| panic!("the CSV has no candle at {s}"));
        let last = rows
            .get(&(s + 240))
            .unwrap_or_else(|| panic!("the CSV has no candle at {}", s + 240));
        let outcome = if last.close() >= first.open() {
            "up"
        } else {
            "down"
        };
        assert_eq!(t.outcome.as_deref(), Some(outcome), "window {s}");
        let won = t.side == outcome;
        assert_eq!(t.won, Some(won), "window {s}");
        assert_eq!(t.settled_by, "price_data", "window {s}");

        assert_eq!(t.price, price, "window {s}");
        let gross = down6(t.stake / price);
        let fee = round5(gross * rate * price * (Decimal::ONE - price));
        assert_eq!(t.fee, fee, "window {s}: fee of {gross} shares at {price}");
        let shares = down6(gross - fee / price);
        assert_eq!(t.shares, shares, "window {s}: shares after the fee");
        let pnl = if won { shares - t.stake } else { -t.stake };
        assert_eq!(t.pnl, pnl, "window {s}");
        equity += pnl;
        assert_eq!(t.equity_after, equity, "window {s}: equity chain");
        streak = if won { streak + 1 } else { 0 };
        assert_eq!(t.win_streak, streak, "window {s}");
        curve.push(format!("{},{}", s + 300, t.equity_after));
    }
    let journal_curve = lines(&out.join("equity_curve.csv"));
    assert_eq!(journal_curve[0], "time,equity");
    let got: Vec<String> = journal_curve[1..]
        .iter()
        .map(|l| {
            let (time, eq) = l
                .split_once(',')
                .unwrap_or_else(|| panic!("bad equity line {l}"));
            let eq: Decimal = eq.parse().unwrap_or_else(|e| panic!("equity {eq:?}: {e}"));
            format!("{time},{eq}")
        })
        .collect();
    let want: Vec<String> = curve
        .iter()
        .map(|l| {
            let (time, eq) = l.split_once(',').expect("built above");
            format!("{time},{}", eq.parse::<Decimal>().expect("built above"))
        })
        .collect();
    assert_eq!(got, want, "equity_curve.csv follows the trades");
    trades.len()
}

#[test]
fn every_trade_settles_from_the_price_data_with_polymarket_fees() {
    let dir = tempdir();

    let out = dir.path().join("ema_oct");
    replay(
        Path::new(RSI_EMA),
        Path::new(OCT_2024),
        shipped_config(),
        &out,
        None,
    );
    let n = assert_settlement(
        &out,
        &read_csv(OCT_2024),
        dec!(100),
        dec!(0.51),
        dec!(0.072),
    );
    assert!(n >= 10, "rsi_ema traded only {n} of 18 windows on 2024-10");

    let out = dir.path().join("macd_bundled");
    replay(
        Path::new(RSI_MACD),
        Path::new(BUNDLED),
        shipped_config(),
        &out,
        None,
    );
    assert!(assert_settlement(&out, &read_csv(BUNDLED), dec!(100), dec!(0.51), dec!(0.072)) > 0);

    // Odd stakes, another price and fee rate, many windows and both sides.
    let strategy = write_strategy(
        dir.path(),
        "alternate.rhai",
        r#"
fn predict(ctx) {
    if ctx.window.index % 3 == 0 { down(0.5, "every third: down") } else { up(0.5, "up") }
}
fn size(ctx, d) { 3.33 + (ctx.window.index % 7).to_float() * 1.111 }
"#,
    );
    let cfg = temp_config(
        dir.path(),
        "[account]\nstarting_capital = 1000\n[risk]\nmax_drawdown_pct = 95\n\
         daily_loss_limit = 10000\nmax_range_pct = 100\nmax_stddev_ratio = 1000\n[replay]\nask = 0.47\nbid = 0.45\nfee_rate = 0.05\n",
    );
    let out = dir.path().join("alternate");
    replay(&strategy, Path::new(BUNDLED), cfg, &out, Some(120));
    let n = assert_settlement(&out, &read_csv(BUNDLED), dec!(1000), dec!(0.47), dec!(0.05));
    assert_eq!(n, 120, "every window of the alternating script trades");
}

// ---------------------------------------------------------------------------------------
// 4. Risk refusals.

const ALWAYS_UP: &str = r#"
fn predict(ctx) { up(0.6, "always up") }
fn size(ctx, d) { 5 }
"#;

#[test]
fn an_ask_above_the_maximum_entry_price_is_refused() {
    let dir = tempdir();
    let strategy = write_strategy(dir.path(), "up.rhai", ALWAYS_UP);
    let calm = "[risk]\nmax_range_pct = 100\nmax_stddev_ratio = 1000\n";

    let cfg = temp_config(
        dir.path(),
        &format!("{calm}[replay]\nask = 0.70\nbid = 0.68\n"),
    );
    let out = dir.path().join("high");
    replay(&strategy, Path::new(BUNDLED), cfg, &out, Some(6));
    let preds = predictions(&out);
    assert_eq!(preds.len(), 6);
    for p in &preds {
        assert_eq!(p.verdict, "refused", "window {}", p.interval_start);
        assert_eq!(
            code(p),
            "entry_price_too_high",
            "window {}",
            p.interval_start
        );
        assert_eq!(p.stake_approved, None);
        let detail = p.detail.as_deref().unwrap_or("");
        assert!(detail.contains("ask 0.7"), "{detail}");
    }
    assert!(trade_lines(&out).is_empty(), "nothing is traded");

    // At exactly the limit (0.65) the same script trades.
    let cfg = temp_config(
        dir.path(),
        &format!("{calm}[replay]\nask = 0.65\nbid = 0.63\n"),
    );
    let out = dir.path().join("at_limit");
    replay(&strategy, Path::new(BUNDLED), cfg, &out, Some(3));
    let preds = predictions(&out);
    assert_eq!(preds[0].verdict, "approved", "{:?}", preds[0]);
    assert_eq!(preds[0].stake_approved, Some(dec!(5)));
}

#[test]
fn a_spread_wider_than_the_limit_is_refused() {
    let dir = tempdir();
    let strategy = write_strategy(dir.path(), "up.rhai", ALWAYS_UP);
    let calm = "[risk]\nmax_range_pct = 100\nmax_stddev_ratio = 1000\n";

    let cfg = temp_config(
        dir.path(),
        &format!("{calm}[replay]\nask = 0.51\nbid = 0.40\n"),
    );
    let out = dir.path().join("wide");
    replay(&strategy, Path::new(BUNDLED), cfg, &out, Some(5));
    let preds = predictions(&out);
    assert_eq!(preds.len(), 5);
    for p in &preds {
        assert_eq!(code(p), "spread_too_wide", "window {}", p.interval_start);
        assert_eq!(p.verdict, "refused");
    }
    assert!(trade_lines(&out).is_empty());

    // A spread of exactly 0.05 is allowed.
    let cfg = temp_config(
        dir.path(),
        &format!("{calm}[replay]\nask = 0.51\nbid = 0.46\n"),
    );
    let out = dir.path().join("at_limit");
    replay(&strategy, Path::new(BUNDLED), cfg, &out, Some(1));
    assert_eq!(predictions(&out)[0].verdict, "approved");
}

#[test]
fn stakes_are_clamped_to_the_maximum_and_invalid_or_tiny_stakes_are_refused() {
    let dir = tempdir();
    let strategy = write_strategy(
        dir.path(),
        "stakes.rhai",
        r#"
fn predict(ctx) { up(0.6, "up") }
fn size(ctx, d) {
    let i = ctx.window.index;
    if i == 0 { 0.0 / 0.0 }        // NaN
    else if i == 1 { -5.0 }        // negative
    else if i == 2 { "ten" }       // not a number
    else if i == 3 { 1e9 }         // absurd: clamped to the cap
    else if i == 4 { 1.0 }         // below 5 shares × 0.51
    else { 5 }
}
"#,
    );
    let cfg = temp_config(
        dir.path(),
        "[risk]\nmax_range_pct = 100\nmax_stddev_ratio = 1000\n",
    );
    let out = dir.path().join("out");
    replay(&strategy, Path::new(BUNDLED), cfg, &out, Some(6));
    let preds = predictions(&out);
    assert_eq!(preds.len(), 6);

    for (i, asked) in [(0, "NaN"), (1, "-5"), (2, "<string>")] {
        let p = &preds[i];
        assert_eq!(p.verdict, "refused", "window {i}");
        assert_eq!(code(p), "invalid_stake", "window {i}: {p:?}");
        assert_eq!(p.stake_asked.as_deref(), Some(asked), "window {i}");
        assert_eq!(p.stake_approved, None, "window {i}");
    }

    let clamped = &preds[3];
    assert_eq!(clamped.verdict, "approved", "{clamped:?}");
    assert_eq!(clamped.stake_approved, Some(dec!(25)), "{clamped:?}");
    let detail = clamped.detail.as_deref().unwrap_or("");
    assert!(detail.contains("clamped_to_max_stake"), "{detail}");

    let tiny = &preds[4];
    assert_eq!(tiny.verdict, "refused");
    assert_eq!(code(tiny), "below_min_order", "{tiny:?}");

    let ts = trades(&out);
    let traded: Vec<i64> = ts.iter().map(|t| t.interval_start).collect();
    assert_eq!(
        traded,
        [preds[3].interval_start, preds[5].interval_start],
        "only the clamped and the normal stake trade"
    );
    assert_eq!(ts[0].stake, dec!(25));
    assert_eq!(ts[1].stake, dec!(5));
}

#[test]
fn the_volatility_breaker_refuses_when_the_five_minute_range_is_too_wide() {
    let dir = tempdir();
    let strategy = write_strategy(dir.path(), "up.rhai", ALWAYS_UP);
    let limit = dec!(0.05); // percent of price
    let cfg = temp_config(
        dir.path(),
        &format!(
            "[risk]\nmax_range_pct = {limit}\nmax_stddev_ratio = 1000\nmax_drawdown_pct = 95\n"
        ),
    );
    let out = dir.path().join("out");
    replay(&strategy, Path::new(BUNDLED), cfg, &out, Some(18));
    let preds = predictions(&out);
    let csv = read_csv(BUNDLED);
    let (mut refused, mut traded) = (0, 0);
    for p in &preds {
        // The last 5 closed candles at decision time, from the file.
        let tail: Vec<&Row> = csv
            .rows
            .iter()
            .filter(|r| r.close_time() <= p.decision_time)
            .rev()
            .take(5)
            .collect();
        let hi = tail.iter().map(|r| r.high()).max().expect("5 candles");
        let lo = tail.iter().map(|r| r.low()).min().expect("5 candles");
        let range_pct = (hi - lo) / tail[0].close() * dec!(100);
        if range_pct > limit {
            refused += 1;
            assert_eq!(
                code(p),
                "volatility_range",
                "window {}: range {range_pct}%",
                p.interval_start
            );
        } else {
            traded += 1;
            assert_ne!(
                code(p),
                "volatility_range",
                "window {}: range {range_pct}%",
                p.interval_start
            );
        }
    }
    assert!(
        refused > 0 && traded > 0,
        "{refused} refused, {traded} calm: pick another limit"
    );

    // The brief's extreme: 0.01% refuses every window of the file's first 18.
    let cfg = temp_config(
        dir.path(),
        "[risk]\nmax_range_pct = 0.01\nmax_drawdown_pct = 95\n",
    );
    let out = dir.path().join("extreme");
    replay(&strategy, Path::new(BUNDLED), cfg, &out, None);
    let preds = predictions(&out);
    assert_eq!(preds.len(), 18);
    for p in &preds {
        assert_eq!(code(p), "volatility_range", "window {}", p.interval_start);
    }
    assert!(trade_lines(&out).is_empty());
}

#[test]
fn windows_inside_real_maintenance_gaps_are_data_gaps_and_never_traded() {
    let csv = read_csv(APR_2021);
    // Start the session at 2021-04-20 01:00 UTC: the warm-up is every candle before it.
    let start = unix_time("2021-04-20 01:00:00");
    let warmup = csv.rows.iter().filter(|r| r.close_time() <= start).count();
    assert_eq!(expected_first_start(&csv, warmup, 0), start);
    // ... and run past the second gap (2021-04-25 04:00 → 08:45) to 09:30.
    let end = unix_time("2021-04-25 09:30:00");
    let windows = ((end - start) / 300) as u32;

    let dir = tempdir();
    let probe = write_strategy(
        dir.path(),
        "probe_up.rhai",
        r#"
fn predict(ctx) {
    let last = ctx.candles(1);
    let d = up(0.6, "probe");
    d.features = #{ last_t: last[0].t, now: ctx.now, price: ctx.price, start: ctx.window.start };
    d
}
fn size(ctx, d) { 3 }
"#,
    );
    let cfg = temp_config(
        dir.path(),
        &format!(
            "[session]\nwarmup_candles = {warmup}\n[account]\nstarting_capital = 10000\n\
             [risk]\nmax_drawdown_pct = 95\n\
             daily_loss_limit = 10000\nmax_range_pct = 100\nmax_stddev_ratio = 1000\n"
        ),
    );
    let out = dir.path().join("out");
    let o = replay(&probe, Path::new(APR_2021), cfg, &out, Some(windows));
    assert_eq!(o.ending, Some(Ending::Complete));
    let preds = predictions(&out);
    assert_eq!(preds.len(), windows as usize);
    assert_eq!(preds[0].interval_start, start);

    let have: BTreeSet<i64> = csv.rows.iter().map(|r| r.t).collect();
    let mut gap_windows = vec![];
    for p in &preds {
        let s = p.interval_start;
        let covered = (0..5).all(|m| have.contains(&(s + 60 * m)));
        if !covered {
            gap_windows.push(s);
            assert_eq!(code(p), "data_gap", "window {s} lacks candles");
            assert_eq!(p.verdict, "skipped");
            continue;
        }
        assert_ne!(code(p), "data_gap", "window {s} is complete in the file");
        let last = csv.last_closed_by(p.decision_time).expect("warm-up exists");
        let age = p.decision_time - last.close_time();
        if age > 90 {
            // Right after a gap the newest price is hours old: never traded.
            assert_eq!(code(p), "stale_data", "window {s}: price {age}s old");
        } else {
            assert_eq!(p.verdict, "approved", "window {s}: {p:?}");
        }
    }
    // 02:00 … 04:25 on 04-20 (30 windows) and 04:00 … 08:40 on 04-25 (57 windows).
    let first_gap: Vec<i64> = gap_windows
        .iter()
        .copied()
        .filter(|s| *s < unix_time("2021-04-21 00:00:00"))
        .collect();
    assert_eq!(first_gap.len(), 30, "{first_gap:?}");
    assert_eq!(first_gap[0], unix_time("2021-04-20 02:00:00"));
    assert_eq!(first_gap[29], unix_time("2021-04-20 04:25:00"));
    assert_eq!(gap_windows.len(), 30 + 57);
    assert_eq!(gap_windows[30], unix_time("2021-04-25 04:00:00"));
    assert_eq!(gap_windows[86], unix_time("2021-04-25 08:40:00"));

    let traded: BTreeSet<i64> = trades(&out).iter().map(|t| t.interval_start).collect();
    for s in &gap_windows {
        assert!(!traded.contains(s), "window {s} inside a gap was traded");
    }
    // Every other trade settles from the data, and the probe never saw the future.
    assert_settlement(&out, &csv, dec!(10000), dec!(0.51), dec!(0.072));
    assert_probe_saw_only_the_past(&csv, &preds);
}
