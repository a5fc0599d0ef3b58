//! `native:rsi_ema`: the rules of `strategies/rsi_ema.rhai` and the win-streak sizing of
//! `strategies/sizing.rhai`, written in Rust.
//!
//! It reads the same parameters from `ctx` (`[params.rsi_ema]`, then `--param`), with the
//! same defaults, in the same order, and decides exactly as the script does — including
//! Rhai's way of comparing numbers (a relative tolerance of one machine epsilon whenever a
//! float is involved, so `rsi <= 30` can go either way on the last bit, as the README notes),
//! and its integer arithmetic for integer parameters. Reasons and features are the script's,
//! character for character, so a backtest's journals equal the script's except for the
//! `script_hash` (see the equivalence test in `tests/native.rs`).

use crate::domain::ParamValue;
use crate::domain::{Decision, Side, StakeAsk};
use crate::indicators::{IndicatorKey, Reading};
use crate::script::host::content_hash;
use crate::script::{CallFailure, Ctx, CtxState, FailureKind, Strategy};

/// The name after `native:`, and of the `[params.rsi_ema]` table it reads.
pub const NAME: &str = "rsi_ema";

/// This file: its content hash is the strategy's version, journaled as `script_hash`.
const SOURCE: &str = include_str!("rsi_ema.rs");

/// RSI(14) 30/70 with an EMA 9/21 crossover, sized 5 × 1.5^win streak capped at 25.
#[derive(Debug)]
pub struct RsiEma {
    hash: String,
    label: String,
}

impl RsiEma {
    /// The strategy (it keeps no memory between windows).
    pub fn new() -> Self {
        RsiEma {
            hash: content_hash(SOURCE),
            label: format!("{}{NAME}", super::PREFIX),
        }
    }

    fn fail(&self, message: impl std::fmt::Display) -> CallFailure {
        CallFailure {
            kind: FailureKind::Runtime,
            message: format!("{}: {message}", self.label),
        }
    }

    /// `ctx.<name>(n, ago)` for a single-valued indicator: `None` is the script's `()`.
    fn indicator(
        &self,
        st: &mut CtxState,
        name: &str,
        key: fn(u32) -> IndicatorKey,
        n: &ParamValue,
        ago: usize,
    ) -> Result<Option<f64>, CallFailure> {
        let n = match n {
            ParamValue::Int(i) => *i,
            ParamValue::Float(f) => {
                return Err(self.fail(format_args!(
                    "{name}: period must be a whole number, got {f}"
                )));
            }
            other => {
                return Err(self.fail(format_args!(
                    "{name}: the period must be an integer, got {}",
                    kind(other)
                )));
            }
        };
        let period = u32::try_from(n)
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                self.fail(format_args!(
                    "{name}: period must be between 1 and 10000, got {n}"
                ))
            })?;
        let CtxState {
            indicators,
            candles,
            ..
        } = st;
        match indicators.reading(key(period), candles, ago) {
            Ok(Some(Reading::Value(v))) => Ok(Some(v)),
            Ok(_) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl Default for RsiEma {
    fn default() -> Self {
        RsiEma::new()
    }
}

/// `ctx.param(name, default)`, with its rule for integer defaults (a whole float given is
/// the integer it says).
fn param(st: &CtxState, name: &str, default: ParamValue) -> ParamValue {
    match st.params.get(name).cloned() {
        None => default,
        Some(v) if matches!(default, ParamValue::Int(_)) => v.for_integer_default(),
        Some(v) => v,
    }
}

/// A parameter as `${x}` shows it in a script: floats keep a `.0` when whole, as Rhai
/// prints them.
struct Shown<'a>(&'a ParamValue);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) if x.is_finite() && x.fract() == 0.0 => write!(f, "{x:.1}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Text(t) => f.write_str(t),
            other => f.write_str(kind(other)),
        }
    }
}

/// The Rhai type name of a parameter's value, for messages.
fn kind(v: &ParamValue) -> &'static str {
    match v {
        ParamValue::Int(_) => "i64",
        ParamValue::Float(_) => "f64",
        ParamValue::Bool(_) => "bool",
        ParamValue::Text(_) => "string",
        ParamValue::List(_) => "array",
        ParamValue::Table(_) => "map",
    }
}

/// A number as Rhai holds it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(v: &ParamValue) -> Option<Num> {
        match v {
            ParamValue::Int(i) => Some(Num::Int(*i)),
            ParamValue::Float(x) => Some(Num::Float(*x)),
            _ => None,
        }
    }

    fn float(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(x) => x,
        }
    }
}

/// The comparisons of Rhai's built-in operators when a float is involved: relative to the
/// larger magnitude (or absolute around zero), with a tolerance of one machine epsilon.
#[derive(Clone, Copy, Debug)]
enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

fn float_cmp(op: Cmp, x: f64, y: f64) -> bool {
    let max = if x * y == 0.0 {
        1.0
    } else {
        x.abs().max(y.abs())
    };
    if max == 0.0 {
        return matches!(op, Cmp::Ge | Cmp::Le);
    }
    match op {
        Cmp::Gt => (x - y) / max > f64::EPSILON,
        Cmp::Ge => (x - y) / max > -f64::EPSILON,
        Cmp::Lt => (y - x) / max > f64::EPSILON,
        Cmp::Le => (y - x) / max > -f64::EPSILON,
    }
}

/// Rhai's `x <op> y` for two numbers: exact between integers, tolerant with a float.
fn num_cmp(op: Cmp, x: Num, y: Num) -> bool {
    match (x, y) {
        (Num::Int(a), Num::Int(b)) => match op {
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
        },
        _ => float_cmp(op, x.float(), y.float()),
    }
}

/// Rhai's `x <op> y` for a float and any value: a value that is not a number compares
/// false (Rhai's rule for operands of different, non-numeric types).
fn cmp_value(op: Cmp, x: f64, y: &ParamValue) -> bool {
    Num::of(y).is_some_and(|y| num_cmp(op, Num::Float(x), y))
}

/// A float as `${x.to_int()}` shows it.
fn to_int(x: f64) -> Result<i64, String> {
    if x > i64::MAX as f64 || x < i64::MIN as f64 {
        return Err(format!("Integer overflow: to_int({x})"));
    }
    Ok(x.trunc() as i64)
}

fn decision(side: Option<Side>, confidence: f64, reason: String) -> Decision {
    Decision {
        side,
        confidence,
        reason,
        prob: None,
        features: serde_json::Map::new(),
    }
}

fn feature(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

impl Strategy for RsiEma {
    fn name(&self) -> &str {
        NAME
    }

    fn content_hash(&self) -> &str {
        &self.hash
    }

    fn predict(&mut self, ctx: &Ctx) -> Result<Decision, CallFailure> {
        let mut st = ctx.0.borrow_mut();
        let n = param(&st, "rsi_period", ParamValue::Int(14));
        let low = param(&st, "rsi_low", ParamValue::Int(30));
        let high = param(&st, "rsi_high", ParamValue::Int(70));
        let fast_n = param(&st, "ema_fast", ParamValue::Int(9));
        let slow_n = param(&st, "ema_slow", ParamValue::Int(21));

        let rsi = self.indicator(&mut st, "rsi", IndicatorKey::Rsi, &n, 0)?;
        let fast = self.indicator(&mut st, "ema", IndicatorKey::Ema, &fast_n, 0)?;
        let slow = self.indicator(&mut st, "ema", IndicatorKey::Ema, &slow_n, 0)?;
        let fast_prev = self.indicator(&mut st, "ema", IndicatorKey::Ema, &fast_n, 1)?;
        let slow_prev = self.indicator(&mut st, "ema", IndicatorKey::Ema, &slow_n, 1)?;
        drop(st);
        let (Some(rsi), Some(fast), Some(slow), Some(fast_prev), Some(slow_prev)) =
            (rsi, fast, slow, fast_prev, slow_prev)
        else {
            return Ok(Decision::skip("warming up: not enough candles for RSI/EMA"));
        };

        let crossed_up = float_cmp(Cmp::Le, fast_prev, slow_prev) && float_cmp(Cmp::Gt, fast, slow);
        let crossed_down =
            float_cmp(Cmp::Ge, fast_prev, slow_prev) && float_cmp(Cmp::Lt, fast, slow);
        let r = to_int(rsi).map_err(|e| self.fail(e))?;

        // RSI extremes first (mean reversion), then the EMA trend, trusted more on a fresh
        // cross: the script's if-chain, evaluated in the same order.
        let mut d = if cmp_value(Cmp::Le, rsi, &low) {
            decision(
                Some(Side::Up),
                0.6,
                format!("RSI {r} ≤ {}: oversold", Shown(&low)),
            )
        } else if cmp_value(Cmp::Ge, rsi, &high) {
            decision(
                Some(Side::Down),
                0.6,
                format!("RSI {r} ≥ {}: overbought", Shown(&high)),
            )
        } else if crossed_up {
            decision(
                Some(Side::Up),
                0.6,
                format!(
                    "EMA {} crossed above EMA {} on the last candle, RSI {r}",
                    Shown(&fast_n),
                    Shown(&slow_n)
                ),
            )
        } else if crossed_down {
            decision(
                Some(Side::Down),
                0.6,
                format!(
                    "EMA {} crossed below EMA {} on the last candle, RSI {r}",
                    Shown(&fast_n),
                    Shown(&slow_n)
                ),
            )
        } else if float_cmp(Cmp::Gt, fast, slow) {
            decision(
                Some(Side::Up),
                0.55,
                format!(
                    "EMA {} above EMA {}, RSI {r}",
                    Shown(&fast_n),
                    Shown(&slow_n)
                ),
            )
        } else if float_cmp(Cmp::Lt, fast, slow) {
            decision(
                Some(Side::Down),
                0.55,
                format!(
                    "EMA {} below EMA {}, RSI {r}",
                    Shown(&fast_n),
                    Shown(&slow_n)
                ),
            )
        } else {
            decision(None, 0.0, format!("EMAs equal, RSI {r}: no trend"))
        };
        // `#{ rsi, ema_fast, ema_slow }`, journaled in key order as the host does.
        d.features.insert("ema_fast".into(), feature(fast));
        d.features.insert("ema_slow".into(), feature(slow));
        d.features.insert("rsi".into(), feature(rsi));
        Ok(d)
    }

    /// `sizing::default_win_streak(ctx)`: `base * growth ** win_streak`, at most `cap`.
    fn size(&mut self, ctx: &Ctx, _decision: &Decision) -> Result<Option<StakeAsk>, CallFailure> {
        let st = ctx.0.borrow();
        let base = param(&st, "stake_base", ParamValue::Float(5.0));
        let growth = param(&st, "stake_growth", ParamValue::Float(1.5));
        let cap = param(&st, "stake_cap", ParamValue::Float(25.0));
        let streak = st.account.win_streak;
        drop(st);
        let number = |name: &str, v: &ParamValue| {
            Num::of(v).ok_or_else(|| {
                self.fail(format_args!(
                    "sizing: `{name}` must be a number, got {}",
                    kind(v)
                ))
            })
        };
        let (base, growth) = (
            number("stake_base", &base)?,
            number("stake_growth", &growth)?,
        );
        let power = match growth {
            Num::Float(g) => Num::Float(g.powf(streak as f64)),
            Num::Int(g) => {
                let exp = u32::try_from(streak).map_err(|_| {
                    self.fail(format_args!(
                        "Integer raised to a negative power: {g} ** {streak}"
                    ))
                })?;
                Num::Int(g.checked_pow(exp).ok_or_else(|| {
                    self.fail(format_args!("Exponential overflow: {g} ** {streak}"))
                })?)
            }
        };
        let stake = match (base, power) {
            (Num::Int(a), Num::Int(b)) => Num::Int(
                a.checked_mul(b)
                    .ok_or_else(|| self.fail(format_args!("Multiplication overflow: {a} * {b}")))?,
            ),
            (a, b) => Num::Float(a.float() * b.float()),
        };
        let chosen = match Num::of(&cap) {
            Some(c) if num_cmp(Cmp::Gt, stake, c) => c,
            _ => stake,
        };
        Ok(Some(StakeAsk::Usd(chosen.float())))
    }

    fn memory_json(&self) -> Option<String> {
        None
    }

    fn restore_memory(&mut self, _json: &str) -> Result<(), String> {
        // No memory to restore: whatever a script kept is not this strategy's.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_follow_rhai_with_a_one_epsilon_tolerance() {
        // 30 + 1 ulp is "≤ 30" in Rhai, and 30 - 1 ulp is "≥ 30".
        let above = f64::from_bits(30f64.to_bits() + 1);
        let below = f64::from_bits(30f64.to_bits() - 1);
        assert!(float_cmp(Cmp::Le, above, 30.0));
        assert!(float_cmp(Cmp::Ge, below, 30.0));
        assert!(!float_cmp(Cmp::Gt, above, 30.0));
        assert!(!float_cmp(Cmp::Lt, below, 30.0));
        assert!(float_cmp(Cmp::Gt, 30.01, 30.0));
        assert!(float_cmp(Cmp::Le, 0.0, 0.0) && !float_cmp(Cmp::Lt, 0.0, 0.0));
        // Integers compare exactly; a non-number compares false.
        assert!(num_cmp(Cmp::Gt, Num::Int(26), Num::Int(25)));
        assert!(!cmp_value(Cmp::Le, 10.0, &ParamValue::Text("30".into())));
        assert!(cmp_value(Cmp::Le, 10.0, &ParamValue::Int(30)));
    }
}
