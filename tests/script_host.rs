//! The Rhai script host seen from outside: the script contract, decision checking, the
//! read-only `ctx`, script memory, sandbox containment, stakes and determinism.
//!
//! Scripts live as files under `tests/scripts/ok/` (well-formed) and
//! `tests/scripts/hostile/` (one attack or mistake per file) and are loaded by path, so the
//! import confinement applies to their folder exactly as it does to `strategies/`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use updown::config::SandboxConfig;
use updown::domain::{Decision, ParamValue, Params, Side, StakeAsk, Window};
use updown::feed::{Candle, load_csv};
use updown::indicators::{IndicatorCache, IndicatorKey, Reading};
use updown::script::{
    AccountView, CallFailure, Ctx, CtxState, FailureKind, MarketView, ScriptError, ScriptStrategy,
    Strategy,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const DATA: &str = "data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv";

/// Any single call of a contained script must come back well within this.
const CALL_BOUND: Duration = Duration::from_secs(3);

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ok(name: &str) -> PathBuf {
    manifest().join("tests/scripts/ok").join(name)
}

fn hostile(name: &str) -> PathBuf {
    manifest().join("tests/scripts/hostile").join(name)
}

/// The bundled real BTC candles, loaded once.
fn all_candles() -> &'static [Candle] {
    static CANDLES: OnceLock<Vec<Candle>> = OnceLock::new();
    CANDLES.get_or_init(|| {
        let rec = load_csv(&manifest().join(DATA)).expect("bundled data loads");
        assert!(rec.candles.len() > 1000, "bundled data has candles");
        rec.candles
    })
}

fn market() -> MarketView {
    MarketView {
        up_bid: 0.48,
        up_ask: 0.50,
        down_bid: 0.49,
        down_ask: 0.51,
        imbalance: 0.2,
        up_depth: 300.0,
        down_depth: 250.0,
        fee_rate: 0.072,
        tick_size: 0.01,
        min_order_size: 5.0,
    }
}

fn account() -> AccountView {
    AccountView {
        equity: 100.0,
        cash: 100.0,
        starting_capital: 100.0,
        peak_equity: 100.0,
        drawdown_pct: 0.0,
        win_streak: 2,
        loss_streak: 0,
        trades: 4,
        wins: 3,
        losses: 1,
        last_result: "win".into(),
    }
}

fn params(pairs: &[(&str, ParamValue)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// A ctx over the first `n` real candles, decided at the close of the last one.
fn ctx_n(n: usize, params: Params) -> Ctx {
    let candles = all_candles()[..n].to_vec();
    let now = candles.last().map_or(0, Candle::close_time);
    let start = Window::first_start_at_or_after(now, 300);
    Ctx::new(CtxState {
        candles,
        now,
        window: Some(Window::new(start, 300, 3)),
        market: market(),
        account: account(),
        params,
        ..CtxState::default()
    })
}

fn ctx() -> Ctx {
    ctx_n(300, Params::new())
}

fn ctx_with(pairs: &[(&str, ParamValue)]) -> Ctx {
    ctx_n(300, params(pairs))
}

/// Small limits so containment cases finish fast.
fn fast_limits() -> SandboxConfig {
    SandboxConfig {
        max_operations: 50_000,
        ..SandboxConfig::default()
    }
}

fn load_with(path: &Path, limits: &SandboxConfig) -> ScriptStrategy {
    ScriptStrategy::load(path, limits)
        .unwrap_or_else(|e| panic!("{} should load: {e}", path.display()))
}

fn load(path: &Path) -> ScriptStrategy {
    load_with(path, &SandboxConfig::default())
}

fn load_err(path: &Path, limits: &SandboxConfig) -> ScriptError {
    match ScriptStrategy::load(path, limits) {
        Ok(_) => panic!("{} should not load", path.display()),
        Err(e) => e,
    }
}

/// Run `f`, asserting it returns within [`CALL_BOUND`].
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < CALL_BOUND, "{what} took {took:?}");
    (out, took)
}

/// Call `predict` and expect a failure of `kind`; returns the failure.
fn predict_fails(s: &mut ScriptStrategy, c: &Ctx, kind: FailureKind) -> CallFailure {
    let name = s.name().to_string();
    let (r, _) = timed(&name, || s.predict(c));
    match r {
        Ok(d) => panic!("{name}: expected {kind:?}, got decision {d:?}"),
        Err(f) => {
            assert_eq!(f.kind, kind, "{name}: {f}");
            f
        }
    }
}

fn predict_ok(s: &mut ScriptStrategy, c: &Ctx) -> Decision {
    s.predict(c)
        .unwrap_or_else(|f| panic!("{}: predict failed: {f}", s.name()))
}

/// Load a hostile script with `limits` and expect its `predict` to fail with `kind`.
fn hostile_fails(name: &str, limits: &SandboxConfig, kind: FailureKind) -> CallFailure {
    let path = hostile(name);
    let mut s = load_with(&path, limits);
    let f = predict_fails(&mut s, &ctx(), kind);
    assert!(
        f.message.contains(&path.display().to_string()),
        "the message names the file: {f}"
    );
    f
}

fn feature(d: &Decision, key: &str) -> f64 {
    d.features
        .get(key)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("feature {key} missing or not a number in {d:?}"))
}

fn memory(s: &ScriptStrategy) -> serde_json::Value {
    serde_json::from_str(&s.memory_json().expect("memory serialises")).expect("memory is JSON")
}

/// Captures everything `tracing` emits on this thread while `f` runs.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

fn with_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    let cap = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(cap.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(cap.0.lock().unwrap().clone()).expect("utf-8 logs");
    (out, text)
}

// ---------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------

#[test]
fn missing_predict_is_a_contract_error_naming_the_file() {
    let path = hostile("no_predict.rhai");
    let err = load_err(&path, &SandboxConfig::default());
    assert!(matches!(err, ScriptError::Contract { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("predict"), "{text}");
}

#[test]
fn size_with_the_wrong_arity_is_a_contract_error() {
    let path = hostile("size_wrong_arity.rhai");
    let err = load_err(&path, &SandboxConfig::default());
    assert!(matches!(err, ScriptError::Contract { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("size") && text.contains("found one taking 1"),
        "{text}"
    );
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let path = hostile("syntax_error.rhai");
    let err = load_err(&path, &SandboxConfig::default());
    assert!(matches!(err, ScriptError::Compile { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("line 4, column "), "{text}");
}

#[test]
fn unreadable_file_is_a_read_error() {
    let path = ok("does_not_exist.rhai");
    let err = load_err(&path, &SandboxConfig::default());
    assert!(matches!(err, ScriptError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("does_not_exist.rhai"), "{err}");
}

#[test]
fn top_level_code_runs_exactly_once() {
    let ((), logs) = with_logs(|| {
        let mut s = load(&ok("top_level_log.rhai"));
        let c = ctx();
        for _ in 0..3 {
            let d = predict_ok(&mut s, &c);
            assert_eq!(d.confidence, 0.5, "top-level constant is visible: {d:?}");
        }
    });
    assert_eq!(logs.matches("top level ran").count(), 1, "{logs}");
    assert_eq!(logs.matches("predict ran").count(), 3, "{logs}");
    assert!(
        logs.contains("top_level_log"),
        "lines carry the script name: {logs}"
    );
}

#[test]
fn endless_top_level_loop_is_stopped_by_the_budget_at_load() {
    let path = hostile("top_level_loop.rhai");
    let (err, _) = timed("top-level loop", || load_err(&path, &fast_limits()));
    assert!(matches!(err, ScriptError::TopLevel { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.to_lowercase().contains("operations"), "{text}");
}

#[test]
fn endless_top_level_loop_is_stopped_by_the_deadline_at_load() {
    let limits = SandboxConfig {
        max_operations: u64::MAX,
        call_timeout_ms: 30,
        ..SandboxConfig::default()
    };
    let path = hostile("top_level_loop.rhai");
    let (err, took) = timed("top-level loop", || load_err(&path, &limits));
    assert!(matches!(err, ScriptError::TopLevel { .. }), "{err:?}");
    assert!(err.to_string().contains("deadline"), "{err}");
    assert!(took < Duration::from_millis(900), "took {took:?}");
}

// ---------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------

fn decide(mode: &str) -> Decision {
    let mut s = load(&ok("decide.rhai"));
    predict_ok(&mut s, &ctx_with(&[("mode", mode.into())]))
}

#[test]
fn up_down_and_skip_build_the_right_decision() {
    let d = decide("up");
    assert_eq!(d.side, Some(Side::Up));
    assert_eq!(d.confidence, 0.7);
    assert_eq!(d.reason, "going up");
    assert_eq!(d.prob, None);
    assert!(d.features.is_empty());

    let d = decide("down");
    assert_eq!(d.side, Some(Side::Down));
    assert_eq!(d.confidence, 0.25);
    assert_eq!(d.reason, "going down");

    assert_eq!(decide("skip"), Decision::skip("nothing to do"));
}

#[test]
fn integer_confidence_is_accepted() {
    let d = decide("int");
    assert_eq!(d.side, Some(Side::Up));
    assert_eq!(d.confidence, 1.0);
    assert_eq!(d.reason, "certain");
}

#[test]
fn prob_in_range_is_kept() {
    let d = decide("prob");
    assert_eq!(d.side, Some(Side::Down));
    assert_eq!(d.prob, Some(0.55));
}

#[test]
fn features_are_recorded() {
    let d = decide("features");
    assert_eq!(d.features.len(), 3, "{d:?}");
    assert_eq!(d.features["rsi"], serde_json::json!(42.5));
    assert_eq!(d.features["streak"], serde_json::json!(3.0));
    assert_eq!(d.features["missing"], serde_json::Value::Null);
}

fn bad_return(name: &str, key: &str) {
    let f = hostile_fails(name, &SandboxConfig::default(), FailureKind::BadReturn);
    assert!(
        f.message.contains(key),
        "{name}: message names `{key}`: {f}"
    );
}

#[test]
fn confidence_above_one_is_a_bad_return() {
    bad_return("confidence_too_high.rhai", "confidence");
}

#[test]
fn negative_confidence_is_a_bad_return() {
    bad_return("confidence_negative.rhai", "confidence");
}

#[test]
fn nan_confidence_is_a_bad_return() {
    bad_return("confidence_nan.rhai", "confidence");
}

#[test]
fn unknown_key_is_a_bad_return_naming_it() {
    bad_return("typo_key.rhai", "sied");
}

#[test]
fn non_map_return_is_a_bad_return() {
    bad_return("not_a_map.rhai", "string");
}

#[test]
fn prob_out_of_range_is_a_bad_return() {
    bad_return("prob_out_of_range.rhai", "prob");
}

// ---------------------------------------------------------------------------------------
// Indicators and other ctx reads
// ---------------------------------------------------------------------------------------

fn direct(candles: &[Candle], key: IndicatorKey, ago: usize) -> Option<Reading> {
    IndicatorCache::new()
        .reading(key, candles, ago)
        .expect("valid key")
}

fn value(r: Option<Reading>) -> f64 {
    match r {
        Some(Reading::Value(v)) => v,
        other => panic!("expected a value, got {other:?}"),
    }
}

#[test]
fn indicators_through_ctx_equal_the_indicator_cache() {
    let n = 400;
    let candles = &all_candles()[..n];
    let mut s = load(&ok("indicators.rhai"));
    let d = predict_ok(&mut s, &ctx_n(n, Params::new()));
    assert_eq!(d.side, Some(Side::Up), "{d:?}");

    let rsi = value(direct(candles, IndicatorKey::Rsi(14), 0));
    let rsi5 = value(direct(candles, IndicatorKey::Rsi(14), 5));
    let ema = value(direct(candles, IndicatorKey::Ema(9), 0));
    let ema1 = value(direct(candles, IndicatorKey::Ema(9), 1));
    let sma = value(direct(candles, IndicatorKey::Sma(20), 0));
    let macd_key = IndicatorKey::Macd {
        fast: 12,
        slow: 26,
        signal: 9,
    };
    let Some(Reading::Macd { macd, signal, hist }) = direct(candles, macd_key, 0) else {
        panic!("MACD ready after {n} candles")
    };
    let Some(Reading::Macd { hist: hist3, .. }) = direct(candles, macd_key, 3) else {
        panic!("MACD 3 ago ready")
    };

    assert_eq!(feature(&d, "rsi"), rsi);
    assert_eq!(feature(&d, "rsi_ago_5"), rsi5);
    assert_eq!(feature(&d, "ema"), ema);
    assert_eq!(feature(&d, "ema_ago_1"), ema1);
    assert_eq!(feature(&d, "sma"), sma);
    assert_eq!(feature(&d, "macd"), macd);
    assert_eq!(feature(&d, "signal"), signal);
    assert_eq!(feature(&d, "hist"), hist);
    assert_eq!(feature(&d, "hist_ago_3"), hist3);
    // `ago` really looks back (on real data these differ).
    assert_ne!(rsi, rsi5);
    assert_ne!(ema, ema1);
    assert_ne!(hist, hist3);
    // Further back than the history: unit, journaled as null.
    assert_eq!(d.features["rsi_too_far_back"], serde_json::Value::Null);
}

#[test]
fn not_enough_data_reads_as_unit_and_the_script_skips() {
    let mut s = load(&ok("indicators.rhai"));
    let d = predict_ok(&mut s, &ctx_n(10, Params::new()));
    assert_eq!(
        d,
        Decision::skip("warming up: not enough candles for RSI(14)")
    );
    // 15 candles are enough for RSI(14) but not for MACD(12,26,9), which needs 34.
    let d = predict_ok(&mut s, &ctx_n(15, Params::new()));
    assert_eq!(
        d,
        Decision::skip("warming up: not enough candles for MACD(12,26,9)")
    );
    let d = predict_ok(&mut s, &ctx_n(33, Params::new()));
    assert_eq!(d.reason, "warming up: not enough candles for MACD(12,26,9)");
    let d = predict_ok(&mut s, &ctx_n(60, Params::new()));
    assert_eq!(d.side, Some(Side::Up), "{d:?}");
}

#[test]
fn zero_period_is_a_runtime_failure() {
    let f = hostile_fails(
        "period_zero.rhai",
        &SandboxConfig::default(),
        FailureKind::Runtime,
    );
    assert!(f.message.contains("period"), "{f}");
}

#[test]
fn negative_period_is_a_runtime_failure() {
    let f = hostile_fails(
        "period_negative.rhai",
        &SandboxConfig::default(),
        FailureKind::Runtime,
    );
    assert!(f.message.contains("period"), "{f}");
}

#[test]
fn ctx_reads_match_the_state_given() {
    let c = ctx_with(&[("threshold", ParamValue::Float(0.65))]);
    let mut s = load(&ok("readers.rhai"));
    let d = predict_ok(&mut s, &c);
    let st = c.0.borrow();
    let last = st.candles.last().unwrap();
    let w = st.window.as_ref().unwrap();
    assert_eq!(d.reason, format!("slug {}", w.slug));
    assert_eq!(feature(&d, "now"), st.now as f64);
    assert_eq!(feature(&d, "price"), last.close);
    assert_eq!(feature(&d, "up_ask"), 0.50);
    assert_eq!(feature(&d, "win_streak"), 2.0);
    assert_eq!(feature(&d, "n_candles"), 3.0);
    assert_eq!(feature(&d, "last_close"), last.close);
    assert_eq!(feature(&d, "last_candle_close"), last.close);
    assert_eq!(feature(&d, "threshold"), 0.65);
    assert_eq!(feature(&d, "fallback"), 7.0);
    assert_eq!(feature(&d, "seconds_to_close"), (w.end - st.now) as f64);
    // Reads through a member and methods on it still work with the members read-only.
    assert_eq!(feature(&d, "params_threshold"), 0.65);
    assert_eq!(feature(&d, "market_keys"), 14.0);
    assert_eq!(feature(&d, "up_ask_text_len"), 3.0);
}

// ---------------------------------------------------------------------------------------
// ctx is read-only
// ---------------------------------------------------------------------------------------

fn write_fails_and_changes_nothing(name: &str) {
    let c = ctx_with(&[("threshold", ParamValue::Float(0.65))]);
    let before_now = c.0.borrow().now;
    let before_params = c.0.borrow().params.clone();
    let mut s = load(&hostile(name));
    let f = predict_fails(&mut s, &c, FailureKind::Runtime);
    assert!(
        f.message.contains("read-only") || f.message.contains("No writable property"),
        "{name}: {f}"
    );
    let st = c.0.borrow();
    assert_eq!(st.now, before_now, "{name}: now changed ({f})");
    assert_eq!(st.market, market(), "{name}: market changed ({f})");
    assert_eq!(st.account, account(), "{name}: account changed ({f})");
    assert_eq!(
        format!("{:?}", st.params),
        format!("{before_params:?}"),
        "{name}: params changed ({f})"
    );
    assert!(!st.params.contains_key("x"), "{name}: params gained x");
}

#[test]
fn assigning_ctx_now_fails_and_changes_nothing() {
    write_fails_and_changes_nothing("ctx_write_now.rhai");
}

#[test]
fn assigning_a_ctx_param_fails_and_changes_nothing() {
    write_fails_and_changes_nothing("ctx_write_params.rhai");
}

#[test]
fn assigning_the_market_quote_fails_and_changes_nothing() {
    write_fails_and_changes_nothing("ctx_write_market.rhai");
}

// ---------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------

#[test]
fn memory_persists_between_calls() {
    let mut s = load(&ok("counter.rhai"));
    let c = ctx();
    for i in 1..=3 {
        let d = predict_ok(&mut s, &c);
        assert_eq!(d.reason, format!("call {i}"));
    }
    assert_eq!(memory(&s), serde_json::json!({ "count": 3 }));
}

#[test]
fn restored_memory_continues_the_count_in_a_fresh_instance() {
    let c = ctx();
    let mut first = load(&ok("counter.rhai"));
    predict_ok(&mut first, &c);
    predict_ok(&mut first, &c);
    let saved = first.memory_json().expect("memory");

    let mut second = load(&ok("counter.rhai"));
    second.restore_memory(&saved).expect("restores");
    assert_eq!(predict_ok(&mut second, &c).reason, "call 3");

    // A fresh instance without restore starts over.
    let mut third = load(&ok("counter.rhai"));
    assert_eq!(predict_ok(&mut third, &c).reason, "call 1");
}

#[test]
fn restore_refuses_memory_that_is_not_a_json_object() {
    let mut s = load(&ok("counter.rhai"));
    assert!(s.restore_memory("5").is_err());
    assert!(s.restore_memory("{not json").is_err());
    assert_eq!(memory(&s), serde_json::json!({}));
}

#[test]
fn failing_call_leaves_memory_as_before() {
    let mut s = load(&hostile("fail_after_memory_write.rhai"));
    predict_ok(&mut s, &ctx());
    assert_eq!(memory(&s), serde_json::json!({ "count": 1 }));
    let f = predict_fails(
        &mut s,
        &ctx_with(&[("fail", true.into())]),
        FailureKind::Runtime,
    );
    assert!(f.message.contains("failing after a memory write"), "{f}");
    assert_eq!(memory(&s), serde_json::json!({ "count": 1 }));
    assert_eq!(predict_ok(&mut s, &ctx()).reason, "call 2");
}

#[test]
fn memory_over_the_limit_is_a_memory_failure_and_the_old_memory_stays() {
    let limits = SandboxConfig {
        max_memory_bytes: 1_000,
        ..SandboxConfig::default()
    };
    let mut s = load_with(&hostile("memory_too_big.rhai"), &limits);
    predict_ok(&mut s, &ctx());
    let f = predict_fails(
        &mut s,
        &ctx_with(&[("grow", true.into())]),
        FailureKind::Memory,
    );
    assert!(f.message.contains("max_memory_bytes"), "{f}");
    assert_eq!(memory(&s), serde_json::json!({ "count": 1 }));
    assert_eq!(predict_ok(&mut s, &ctx()).reason, "call 2");
}

#[test]
fn replacing_this_with_a_number_is_a_memory_failure() {
    let mut s = load(&hostile("memory_not_map.rhai"));
    predict_ok(&mut s, &ctx());
    let f = predict_fails(
        &mut s,
        &ctx_with(&[("clobber", true.into())]),
        FailureKind::Memory,
    );
    assert!(f.message.contains("map"), "{f}");
    assert_eq!(memory(&s), serde_json::json!({ "count": 1 }));
}

// ---------------------------------------------------------------------------------------
// Sandbox containment
// ---------------------------------------------------------------------------------------

#[test]
fn endless_loop_runs_out_of_operations() {
    hostile_fails(
        "infinite_loop.rhai",
        &fast_limits(),
        FailureKind::OperationBudget,
    );
}

#[test]
fn slow_loop_hits_the_wall_clock_deadline() {
    let limits = SandboxConfig {
        max_operations: u64::MAX,
        call_timeout_ms: 20,
        ..SandboxConfig::default()
    };
    let mut s = load_with(&hostile("busy_wait.rhai"), &limits);
    let c = ctx();
    let start = Instant::now();
    let f = predict_fails(&mut s, &c, FailureKind::Timeout);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(20), "stopped early: {took:?}");
    assert!(took < Duration::from_millis(500), "took {took:?}");
    assert!(f.message.contains("deadline"), "{f}");
    // The next call gets a fresh deadline and is stopped the same way.
    predict_fails(&mut s, &c, FailureKind::Timeout);
}

#[test]
fn endless_recursion_hits_the_call_depth_limit() {
    hostile_fails(
        "deep_recursion.rhai",
        &SandboxConfig::default(),
        FailureKind::CallDepth,
    );
}

#[test]
fn growing_a_string_is_data_too_large() {
    hostile_fails(
        "huge_string.rhai",
        &SandboxConfig::default(),
        FailureKind::DataTooLarge,
    );
}

#[test]
fn growing_an_array_is_data_too_large() {
    hostile_fails(
        "huge_array.rhai",
        &SandboxConfig::default(),
        FailureKind::DataTooLarge,
    );
}

#[test]
fn growing_a_map_is_data_too_large() {
    // Rhai re-measures the whole map on every merge; a small cap keeps this fast.
    let limits = SandboxConfig {
        max_map_size: 100,
        ..SandboxConfig::default()
    };
    let f = hostile_fails("huge_map.rhai", &limits, FailureKind::DataTooLarge);
    assert!(f.message.contains("map"), "{f}");
}

#[test]
fn growing_a_map_by_index_is_stopped_by_the_operation_budget() {
    // Rhai 1.27 does not size-check `m[key] = v` (only the value assigned), so the map
    // limit never fires on this path; the operation budget must, long before the deadline.
    let limits = SandboxConfig {
        max_operations: 20_000,
        max_map_size: 100,
        call_timeout_ms: 5_000,
        ..SandboxConfig::default()
    };
    hostile_fails("huge_map_index.rhai", &limits, FailureKind::OperationBudget);
}

#[test]
fn eval_cannot_run() {
    let path = hostile("eval.rhai");
    match ScriptStrategy::load(&path, &SandboxConfig::default()) {
        Err(e) => assert!(matches!(e, ScriptError::Compile { .. }), "{e:?}"),
        Ok(mut s) => {
            predict_fails(&mut s, &ctx(), FailureKind::Runtime);
        }
    }
}

fn import_refused(err: &ScriptError, why: &str) {
    assert!(matches!(err, ScriptError::TopLevel { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("strategies folder"), "{text}");
    assert!(text.contains(why), "{text}");
}

#[test]
fn import_through_parent_dir_is_refused() {
    // The target exists (tests/scripts/ok/lib_math.rhai): only confinement stops it.
    assert!(ok("lib_math.rhai").exists());
    let err = load_err(&hostile("import_parent.rhai"), &SandboxConfig::default());
    import_refused(&err, "`..`");
}

#[test]
fn import_by_absolute_path_is_refused() {
    let err = load_err(&hostile("import_absolute.rhai"), &SandboxConfig::default());
    import_refused(&err, "absolute paths");
}

#[test]
fn import_through_a_symlink_leading_outside_is_refused() {
    let inside = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let script = inside.path().join("import_symlink.rhai");
    std::fs::copy(hostile("import_symlink.rhai"), &script).expect("copy script");
    let target = outside.path().join("lib_math.rhai");
    std::fs::copy(ok("lib_math.rhai"), &target).expect("copy module");
    std::os::unix::fs::symlink(&target, inside.path().join("escape.rhai")).expect("symlink");

    let err = load_err(&script, &SandboxConfig::default());
    import_refused(&err, "outside the strategies folder");

    // Control: the same script with a real file in the folder loads and runs.
    std::fs::remove_file(inside.path().join("escape.rhai")).expect("rm symlink");
    std::fs::copy(ok("lib_math.rhai"), inside.path().join("escape.rhai")).expect("copy");
    let mut s = load(&script);
    assert_eq!(predict_ok(&mut s, &ctx()).confidence, 0.5);
}

#[test]
fn importing_a_sibling_module_works() {
    let mut s = load(&ok("uses_module.rhai"));
    let d = predict_ok(&mut s, &ctx());
    assert_eq!(d.side, Some(Side::Up));
    assert_eq!(d.confidence, 0.5);
}

#[test]
fn shipped_strategies_load_with_their_shared_module() {
    for name in ["rsi_ema.rhai", "rsi_macd_imbalance.rhai"] {
        let mut s = load(&manifest().join("strategies").join(name));
        let c = ctx();
        let d = predict_ok(&mut s, &c);
        // Win-streak sizing: 5 × 1.5^2.
        if d.side.is_some() {
            assert_eq!(s.size(&c, &d), Ok(Some(StakeAsk::Usd(11.25))), "{name}");
        }
    }
}

#[test]
fn throw_is_a_runtime_failure_with_the_message() {
    let f = hostile_fails(
        "throw.rhai",
        &SandboxConfig::default(),
        FailureKind::Runtime,
    );
    assert!(f.message.contains("boom"), "{f}");
}

#[test]
fn calling_an_undefined_function_is_a_runtime_failure() {
    let f = hostile_fails(
        "undefined_fn.rhai",
        &SandboxConfig::default(),
        FailureKind::Runtime,
    );
    assert!(f.message.contains("no_such_function"), "{f}");
}

#[test]
fn a_log_flood_does_not_fail_the_call() {
    // A generous deadline: 5000 log calls in a debug build on a busy machine can take longer
    // than the default 250 ms, and this test is about the cap, not the clock.
    let limits = SandboxConfig {
        max_log_lines_per_call: 5,
        call_timeout_ms: 10_000,
        ..SandboxConfig::default()
    };
    let (d, logs) = with_logs(|| {
        let mut s = load_with(&hostile("log_flood.rhai"), &limits);
        predict_ok(&mut s, &ctx())
    });
    assert_eq!(d.reason, "after the flood");
    assert_eq!(logs.matches("line ").count(), 5, "{logs}");
    assert!(
        logs.contains("line 4") && !logs.contains("line 5"),
        "{logs}"
    );
    assert!(logs.contains("4995 log lines dropped"), "{logs}");
}

// ---------------------------------------------------------------------------------------
// Stakes
// ---------------------------------------------------------------------------------------

fn stake(path: &Path) -> StakeAsk {
    let mut s = load(path);
    let c = ctx();
    let d = predict_ok(&mut s, &c);
    s.size(&c, &d)
        .unwrap_or_else(|f| panic!("{}: size failed: {f}", path.display()))
        .expect("the script has size")
}

#[test]
fn nan_stake_arrives_as_nan() {
    match stake(&hostile("stake_nan.rhai")) {
        StakeAsk::Usd(x) => assert!(x.is_nan(), "{x}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn negative_stake_arrives_as_is() {
    assert_eq!(stake(&hostile("stake_negative.rhai")), StakeAsk::Usd(-5.0));
}

#[test]
fn text_stake_arrives_as_invalid() {
    match stake(&hostile("stake_string.rhai")) {
        StakeAsk::Invalid(t) => assert!(t.contains("string"), "{t}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn huge_stake_arrives_as_is() {
    assert_eq!(stake(&hostile("stake_huge.rhai")), StakeAsk::Usd(1e9));
}

#[test]
fn integer_stake_arrives_as_usd() {
    assert_eq!(stake(&ok("stake_int.rhai")), StakeAsk::Usd(7.0));
}

#[test]
fn without_size_the_default_stake_applies() {
    let mut s = load(&ok("decide.rhai"));
    assert!(!s.has_size());
    let c = ctx();
    let d = predict_ok(&mut s, &c);
    assert_eq!(s.size(&c, &d), Ok(None));
}

// ---------------------------------------------------------------------------------------
// Determinism
// ---------------------------------------------------------------------------------------

fn run_shipped(name: &str) -> Vec<(Decision, Option<StakeAsk>)> {
    let mut s = load(&manifest().join("strategies").join(name));
    (0..40)
        .map(|k| {
            let c = ctx_n(60 + 37 * k, Params::new());
            let d = predict_ok(&mut s, &c);
            let stake = s.size(&c, &d).expect("size");
            (d, stake)
        })
        .collect()
}

#[test]
fn same_inputs_give_identical_decisions() {
    for name in ["rsi_ema.rhai", "rsi_macd_imbalance.rhai"] {
        let a = run_shipped(name);
        let b = run_shipped(name);
        assert_eq!(a, b, "{name}");
        // The inputs were varied enough to exercise more than one answer.
        let distinct: std::collections::HashSet<_> =
            a.iter().map(|(d, _)| format!("{:?}", d.side)).collect();
        assert!(distinct.len() > 1, "{name}: {distinct:?}");
    }
    // And twice on one instance with one ctx.
    let mut s = load(&ok("indicators.rhai"));
    let c = ctx_n(500, Params::new());
    assert_eq!(predict_ok(&mut s, &c), predict_ok(&mut s, &c));
}

#[test]
fn only_data_may_enter_memory_in_every_run_alike() {
    // A closure or a ctx handle used to be saved as a string: the uninterrupted run went on,
    // the same run resumed from its saved memory failed. Now the call that keeps one fails,
    // the memory before it stays, and the next call goes on — resumed or not.
    let mut s = load(&hostile("memory_not_data.rhai"));
    predict_ok(&mut s, &ctx());
    let before = memory(&s);
    assert_eq!(before["count"], 1);
    for (keep, holds, at) in [
        (
            "closure",
            "function pointer or closure",
            "this.nested.list[6]",
        ),
        ("ctx", "Ctx", "this.handle.inner[0]"),
        ("char", "char", "this.letter"),
        ("blob", "blob", "this.bytes"),
        ("nan", "NaN", "this.ratio"),
    ] {
        let f = predict_fails(
            &mut s,
            &ctx_with(&[("keep", keep.into())]),
            FailureKind::Memory,
        );
        assert!(f.message.contains(at), "{keep}: {f}");
        assert!(f.message.contains(holds), "{keep}: {f}");
        assert_eq!(
            memory(&s),
            before,
            "{keep}: the memory before the call stays"
        );
    }
    // Nested data of every kind is fine, and survives the trip through JSON unchanged.
    assert_eq!(predict_ok(&mut s, &ctx()).reason, "memory");
    let saved = s.memory_json().expect("memory");
    let mut resumed = load(&hostile("memory_not_data.rhai"));
    resumed.restore_memory(&saved).expect("restores");
    assert_eq!(memory(&resumed), memory(&s));
    predict_ok(&mut resumed, &ctx());
    assert_eq!(memory(&resumed)["count"], 3);
}
