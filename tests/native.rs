//! The native RSI/EMA strategy (`native:rsi_ema`) decides exactly as `strategies/rsi_ema.rhai`
//! with `strategies/sizing.rhai`: over real candles, the predictions journal of a backtest
//! with one equals the other's line for line except `script_hash`, and the trades (and so
//! the fingerprint) are identical — with the shipped parameters, and with integer and float
//! parameters that take Rhai's other arithmetic and comparison paths.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use updown::config::{Config, parse_param_overrides};
use updown::report::{Report, SessionRecords, read_report_dir};
use updown::session::backtest::{
    BacktestData, BacktestResult, BacktestSpec, Range, parse_bound, plan, run_backtest,
};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const DATA: &str =
    "../shared/data/binance_klines_1m/binance_spot_BTCUSDT_1m_2024-10-01_2024-11-04.csv";

fn config() -> Config {
    let mut config = Config::load(&Path::new(REPO).join("config.toml")).expect("config.toml");
    // Enough capital that the drawdown floor and the daily loss limit never stop the run:
    // every window is decided, thousands of trades settle and win streaks grow.
    config.account.starting_capital = rust_decimal::Decimal::from(1_000_000);
    config.risk.daily_loss_limit = rust_decimal::Decimal::from(1_000_000);
    config
}

fn run(
    strategy: &str,
    data: &BacktestData,
    range: &Range,
    params: &[&str],
    out: &Path,
) -> BacktestResult {
    let config = config();
    let plan = plan(data, &config, range).expect("plan");
    let spec = BacktestSpec {
        strategy: PathBuf::from(strategy),
        config,
        overrides: parse_param_overrides(&params.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params"),
        out_dir: out.to_path_buf(),
        recording: updown::session::backtest::Recording::InMemory,
        keep_predictions: true,
    };
    run_backtest(&spec, data, &plan, None, None, &AtomicBool::new(false)).expect("backtest")
}

fn without_hash(line: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    v.as_object_mut()
        .expect("an object")
        .remove("script_hash")
        .expect("a script_hash");
    v
}

fn assert_same(data: &BacktestData, range: &Range, params: &[&str]) -> usize {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = Path::new(REPO).join("strategies/rsi_ema.rhai");
    let rhai = run(
        script.to_str().expect("utf-8 path"),
        data,
        range,
        params,
        &dir.path().join("rhai"),
    );
    let native = run(
        "native:rsi_ema",
        data,
        range,
        params,
        &dir.path().join("native"),
    );

    assert_eq!(rhai.predictions.len(), native.predictions.len());
    assert!(rhai.predictions.len() > 1000, "a real backtest");
    for (i, (a, b)) in rhai.predictions.iter().zip(&native.predictions).enumerate() {
        // Same text apart from the hash: the same numbers written the same way.
        assert_eq!(
            without_hash(a),
            without_hash(b),
            "prediction {i} differs ({params:?})\nrhai:   {a}\nnative: {b}"
        );
        assert_eq!(
            a.replace(&rhai.script_hash, ""),
            b.replace(&native.script_hash, ""),
            "prediction line {i} ({params:?})"
        );
    }
    let journal = |side: &str, name: &str| {
        std::fs::read_to_string(dir.path().join(side).join(name)).expect("journal")
    };
    let (rhai_trades, native_trades) = (
        journal("rhai", "trades.jsonl"),
        journal("native", "trades.jsonl"),
    );
    assert_eq!(rhai_trades, native_trades, "trades ({params:?})");
    assert_eq!(
        journal("rhai", "equity_curve.csv"),
        journal("native", "equity_curve.csv")
    );
    assert_eq!(rhai.fingerprint, native.fingerprint, "{params:?}");
    assert_ne!(rhai.script_hash, native.script_hash);
    // The report the backtest computed from its ledger rows is the one `updown report`
    // computes from the journals, whole or one line at a time.
    for (side, result) in [("rhai", &rhai), ("native", &native)] {
        let out = dir.path().join(side);
        let whole = Report::from_records(&SessionRecords::read_dir(&out).expect("journals"));
        let streamed = read_report_dir(&out).expect("journals");
        assert_eq!(whole, streamed.report, "{side}");
        assert_eq!(result.report, whole, "{side}");
        assert_eq!(result.equity, streamed.equity);
    }
    rhai_trades.lines().count()
}

#[test]
fn native_rsi_ema_journals_equal_the_scripts_line_for_line() {
    let data = BacktestData::load(&[Path::new(REPO).join(DATA)], None, 300).expect("data");
    // The whole 50,000-candle file with the shipped parameters.
    let trades = assert_same(&data, &Range::default(), &[]);
    assert!(trades > 5000, "{trades} trades");

    // Ten days with parameters of other types: float thresholds (compared with tolerance
    // and shown as Rhai shows floats), integer sizing (integer power and product, exact
    // integer comparison with the cap).
    let range = Range {
        from: parse_bound("2024-10-10", false).ok(),
        to: parse_bound("2024-10-19", true).ok(),
    };
    assert_same(
        &data,
        &range,
        &[
            "rsi_low=35.5",
            "rsi_high=64.25",
            "ema_fast=5",
            "ema_slow=13",
            "stake_base=2",
            "stake_growth=2",
            "stake_cap=20",
        ],
    );
    assert_same(
        &data,
        &range,
        &["rsi_period=7", "stake_growth=1.25", "stake_cap=7.5"],
    );
}

#[test]
fn an_unknown_native_strategy_is_refused_naming_the_known_ones() {
    let err = updown::native::load_strategy(Path::new("native:nope"), &Config::default().sandbox)
        .err()
        .expect("refused");
    assert!(err.contains("native:rsi_ema"), "{err}");
}
