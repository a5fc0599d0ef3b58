//! Technical indicators over closed 1-minute candles: TA-Lib-compatible values,
//! computed incrementally and cached per (indicator, parameters).
//!
//! This module owns the indicator maths and the [`IndicatorCache`]. It does not decide
//! which candles a strategy may see: the caller passes `visible`, the candles closed at
//! decision time, always a prefix of one growing history. Because every stored value
//! at index `i` depends only on candles `0..=i`, reading a shorter prefix from a longer
//! computed series is still free of look-ahead.
//!
//! Values match the TA-Lib C library with its defaults (unstable period 0, SMA where a
//! moving-average type is asked for), which is what traders compare against; the unit
//! tests check every output against `tests/data/talib/reference.json`, produced by
//! `tests/data/talib/generate.py`. That is current TA-Lib (C 0.8.x under the Python
//! wrapper 0.8.2), which differs from classic 0.4 only in degenerate windows (flat,
//! machine-flat or sub-epsilon): there we follow the current one. Where TA-Lib has a
//! minimum period of 2 (RSI, EMA, SMA, STDDEV, BBANDS, MFI, MACD's EMAs) we also accept
//! 1 with its natural meaning.

use std::collections::HashMap;
use std::fmt;

use crate::feed::Candle;

mod atr;
mod bbands;
mod ema;
mod macd;
mod mfi;
mod obv;
mod roc;
mod rsi;
mod stddev;
mod stoch;
mod window;

/// Largest accepted period: anything longer is a configuration mistake, not a strategy
/// (10 000 one-minute candles is about a week).
pub const MAX_PERIOD: u32 = 10_000;

/// TA-Lib's `TA_EPSILON`, the relative width of its "equal up to rounding" band.
const TA_EPSILON: f64 = 1e-14;

/// TA-Lib's `TA_IS_ZERO_SCALED`: `v`, a difference of quantities whose magnitudes add
/// up to `scale`, is zero up to rounding (~90 ulp). A fixed epsilon would be wrong
/// both for BTC prices (rounding noise far above it) and tiny quotes (real moves below).
fn is_zero_scaled(v: f64, scale: f64) -> bool {
    v.abs() <= TA_EPSILON * scale
}

/// Which indicator with which parameters: the cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IndicatorKey {
    /// Relative Strength Index over `period` changes (Wilder).
    Rsi(u32),
    /// Exponential moving average of closes.
    Ema(u32),
    /// Simple moving average of closes.
    Sma(u32),
    /// MACD of closes.
    Macd {
        /// Fast EMA period; must be below `slow`.
        fast: u32,
        /// Slow EMA period.
        slow: u32,
        /// Signal EMA period (EMA of the MACD line).
        signal: u32,
    },
    /// Bollinger Bands of closes (SMA middle, population deviation).
    Bbands {
        /// Window length.
        period: u32,
        /// Band width in deviations times 1000 (2.0 -> 2000), so the key stays `Eq + Hash`.
        k_milli: u32,
    },
    /// Average True Range.
    Atr(u32),
    /// Population standard deviation of closes.
    Stddev(u32),
    /// Rate of change of closes, in percent.
    Roc(u32),
    /// Slow stochastic (SMA smoothing).
    Stoch {
        /// Raw %K look-back (highest high / lowest low window).
        k: u32,
        /// SMA smoothing of raw %K into slow %K.
        slow_k: u32,
        /// SMA of slow %K giving %D.
        d: u32,
    },
    /// On-Balance Volume.
    Obv,
    /// Money Flow Index.
    Mfi(u32),
}

impl IndicatorKey {
    /// Checks the parameters: every period in `1..=MAX_PERIOD`, MACD `fast < slow`,
    /// Bollinger `k_milli > 0`. The error names the offending parameter.
    pub fn validate(&self) -> Result<(), BadParams> {
        fn period(key: &IndicatorKey, name: &str, value: u32) -> Result<(), BadParams> {
            if value == 0 || value > MAX_PERIOD {
                return Err(BadParams(format!(
                    "{key:?}: {name} must be in 1..={MAX_PERIOD}, got {value}"
                )));
            }
            Ok(())
        }
        match *self {
            Self::Rsi(n)
            | Self::Ema(n)
            | Self::Sma(n)
            | Self::Atr(n)
            | Self::Stddev(n)
            | Self::Roc(n)
            | Self::Mfi(n) => period(self, "period", n),
            Self::Macd { fast, slow, signal } => {
                period(self, "fast", fast)?;
                period(self, "slow", slow)?;
                period(self, "signal", signal)?;
                if fast >= slow {
                    return Err(BadParams(format!(
                        "{self:?}: fast ({fast}) must be less than slow ({slow})"
                    )));
                }
                Ok(())
            }
            Self::Bbands { period: n, k_milli } => {
                period(self, "period", n)?;
                if k_milli == 0 {
                    return Err(BadParams(format!("{self:?}: k_milli must be > 0")));
                }
                Ok(())
            }
            Self::Stoch { k, slow_k, d } => {
                period(self, "k", k)?;
                period(self, "slow_k", slow_k)?;
                period(self, "d", d)
            }
            Self::Obv => Ok(()),
        }
    }

    /// Index of the first candle with a reading (TA-Lib's "lookback"): a reading needs
    /// `lookback() + 1` visible candles. Meaningful only for valid parameters.
    pub fn lookback(&self) -> usize {
        let p = |n: u32| n as usize;
        match *self {
            Self::Rsi(n) | Self::Atr(n) | Self::Roc(n) | Self::Mfi(n) => p(n),
            Self::Ema(n) | Self::Sma(n) | Self::Stddev(n) => p(n).saturating_sub(1),
            Self::Bbands { period, .. } => p(period).saturating_sub(1),
            Self::Macd { slow, signal, .. } => (p(slow) + p(signal)).saturating_sub(2),
            Self::Stoch { k, slow_k, d } => (p(k) + p(slow_k) + p(d)).saturating_sub(3),
            Self::Obv => 0,
        }
    }
}

/// One indicator reading.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reading {
    /// Single-valued indicators (RSI, EMA, SMA, ATR, STDDEV, ROC, OBV, MFI).
    Value(f64),
    /// MACD line, its signal line and the histogram `macd - signal`.
    Macd {
        /// Fast EMA minus slow EMA.
        macd: f64,
        /// EMA of the MACD line.
        signal: f64,
        /// `macd - signal`.
        hist: f64,
    },
    /// Bollinger Bands.
    Bands {
        /// Middle + k deviations.
        upper: f64,
        /// The SMA.
        middle: f64,
        /// Middle - k deviations.
        lower: f64,
    },
    /// Slow stochastic.
    Stoch {
        /// Slow %K.
        k: f64,
        /// %D.
        d: f64,
    },
}

/// Error for parameters that make no sense (period 0, fast >= slow, absurdly large > 10_000).
#[derive(Debug, Clone, PartialEq)]
pub struct BadParams(pub String);

impl fmt::Display for BadParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad indicator parameters: {}", self.0)
    }
}

impl std::error::Error for BadParams {}

/// The incremental state of one indicator; dispatch is a `match` so the hot loop has
/// no allocation or virtual call per candle.
#[derive(Clone, Debug)]
enum Engine {
    Rsi(rsi::Rsi),
    Ema(ema::Ema),
    Sma(ema::Sma),
    Macd(macd::Macd),
    Bbands(bbands::Bbands),
    Atr(atr::Atr),
    Stddev(stddev::Stddev),
    Roc(roc::Roc),
    Stoch(stoch::Stoch),
    Obv(obv::Obv),
    Mfi(mfi::Mfi),
}

impl Engine {
    /// Fresh state for a validated key.
    fn new(key: IndicatorKey) -> Self {
        let p = |n: u32| n as usize;
        match key {
            IndicatorKey::Rsi(n) => Self::Rsi(rsi::Rsi::new(p(n))),
            IndicatorKey::Ema(n) => Self::Ema(ema::Ema::new(p(n))),
            IndicatorKey::Sma(n) => Self::Sma(ema::Sma::new(p(n))),
            IndicatorKey::Macd { fast, slow, signal } => {
                Self::Macd(macd::Macd::new(p(fast), p(slow), p(signal)))
            }
            IndicatorKey::Bbands { period, k_milli } => {
                Self::Bbands(bbands::Bbands::new(p(period), f64::from(k_milli) / 1000.0))
            }
            IndicatorKey::Atr(n) => Self::Atr(atr::Atr::new(p(n))),
            IndicatorKey::Stddev(n) => Self::Stddev(stddev::Stddev::new(p(n))),
            IndicatorKey::Roc(n) => Self::Roc(roc::Roc::new(p(n))),
            IndicatorKey::Stoch { k, slow_k, d } => {
                Self::Stoch(stoch::Stoch::new(p(k), p(slow_k), p(d)))
            }
            IndicatorKey::Obv => Self::Obv(obv::Obv::default()),
            IndicatorKey::Mfi(n) => Self::Mfi(mfi::Mfi::new(p(n))),
        }
    }

    /// Values stored per candle.
    fn width(&self) -> usize {
        match self {
            Self::Macd(_) | Self::Bbands(_) => 3,
            Self::Stoch(_) => 2,
            _ => 1,
        }
    }

    /// Advances by one candle, appending `width()` values (NaN = not ready) to `out`.
    fn step(&mut self, c: &Candle, out: &mut Vec<f64>) {
        match self {
            Self::Rsi(s) => out.push(s.push(c)),
            Self::Ema(s) => out.push(s.push(c.close)),
            Self::Sma(s) => out.push(s.push(c.close)),
            Self::Macd(s) => out.extend(s.push(c.close)),
            Self::Bbands(s) => out.extend(s.push(c.close)),
            Self::Atr(s) => out.push(s.push(c)),
            Self::Stddev(s) => out.push(s.push(c.close)),
            Self::Roc(s) => out.push(s.push(c.close)),
            Self::Stoch(s) => out.extend(s.push(c)),
            Self::Obv(s) => out.push(s.push(c)),
            Self::Mfi(s) => out.push(s.push(c)),
        }
    }
}

/// One key's computed series (flattened, `width` values per candle) and its state.
#[derive(Clone, Debug)]
struct Series {
    engine: Engine,
    width: usize,
    values: Vec<f64>,
}

impl Series {
    fn len(&self) -> usize {
        self.values.len() / self.width
    }
}

/// Cached, incrementally extended indicator series over one growing candle history.
///
/// Memory grows by one to three `f64` per candle per key asked for: about 2 MB per key
/// for a year of 1-minute candles.
#[derive(Clone, Debug, Default)]
pub struct IndicatorCache {
    /// A 64-bit fingerprint of every candle of the longest history prefix seen so far,
    /// kept only to notice a caller switching to a different history without calling
    /// [`IndicatorCache::clear`] (8 bytes per candle instead of a copy of the history).
    seen: Vec<u64>,
    /// The last candle of that prefix, compared exactly on the usual path (a history that
    /// only grows).
    last_seen: Option<Candle>,
    series: HashMap<IndicatorKey, Series>,
    /// Candle steps computed over the cache's life, so tests can prove a repeated
    /// request costs nothing.
    steps: u64,
    /// Candles the history is expected to reach (an allocation hint; 0 = unknown).
    expected: usize,
}

impl IndicatorCache {
    /// Empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empty cache for a history expected to reach `candles` candles (a backtest knows it):
    /// each series is allocated once at its final size instead of doubling as it grows,
    /// which on a long history would hold up to twice the memory.
    pub fn with_capacity(candles: usize) -> Self {
        IndicatorCache {
            seen: Vec::with_capacity(candles),
            expected: candles,
            ..Self::default()
        }
    }

    /// Reading of `key` at the candle `ago` candles before the last of `visible`
    /// (ago 0 = the last visible candle). `None` when not enough data (warm-up) or ago out of range.
    ///
    /// Extends `key`'s series up to `visible.len()` (each candle is computed once per
    /// key, ever); if `visible` is shorter than what is computed, reads stored values.
    /// If the candle at the boundary between what the cache has seen and `visible`
    /// differs from the one seen before, the history was replaced: everything is
    /// recomputed from `visible` rather than mixing two histories.
    pub fn reading(
        &mut self,
        key: IndicatorKey,
        visible: &[Candle],
        ago: usize,
    ) -> Result<Option<Reading>, BadParams> {
        key.validate()?;
        let Some(index) = visible
            .len()
            .checked_sub(ago)
            .and_then(|n| n.checked_sub(1))
        else {
            return Ok(None);
        };
        self.sync_history(visible);
        let expected = self.expected;
        let series = self.series.entry(key).or_insert_with(|| {
            let engine = Engine::new(key);
            let width = engine.width();
            Series {
                width,
                engine,
                values: Vec::with_capacity(expected * width),
            }
        });
        let done = series.len();
        if done < visible.len() {
            series.values.reserve((visible.len() - done) * series.width);
            for c in &visible[done..] {
                series.engine.step(c, &mut series.values);
            }
            self.steps += (visible.len() - done) as u64;
        }
        let at = index * series.width;
        let v = &series.values[at..at + series.width];
        if v.iter().any(|x| x.is_nan()) {
            return Ok(None);
        }
        Ok(Some(match (key, v) {
            (IndicatorKey::Macd { .. }, &[macd, signal, hist]) => {
                Reading::Macd { macd, signal, hist }
            }
            (IndicatorKey::Bbands { .. }, &[upper, middle, lower]) => Reading::Bands {
                upper,
                middle,
                lower,
            },
            (IndicatorKey::Stoch { .. }, &[k, d]) => Reading::Stoch { k, d },
            (_, &[value]) => Reading::Value(value),
            _ => return Ok(None),
        }))
    }

    /// Number of candles of `key`'s series computed so far (0 if never asked).
    pub fn computed_len(&self, key: IndicatorKey) -> usize {
        self.series.get(&key).map_or(0, Series::len)
    }

    /// Forget everything (e.g. when the candle history is replaced).
    pub fn clear(&mut self) {
        self.seen.clear();
        self.last_seen = None;
        self.series.clear();
    }

    /// Records `visible` as the known history, clearing the cache first if it
    /// contradicts what was seen. Checks one candle, so it stays O(1) per call: exactly
    /// when `visible` extends (or equals) what was seen, by its fingerprint when it is a
    /// shorter prefix.
    fn sync_history(&mut self, visible: &[Candle]) {
        let seen = self.seen.len();
        let same = if visible.len() >= seen {
            match (&self.last_seen, seen.checked_sub(1)) {
                (Some(last), Some(i)) => same_candle(last, &visible[i]),
                _ => true,
            }
        } else {
            visible
                .len()
                .checked_sub(1)
                .is_none_or(|i| self.seen[i] == candle_fingerprint(&visible[i]))
        };
        if !same {
            self.clear();
        }
        if visible.len() > self.seen.len() {
            self.seen
                .extend(visible[self.seen.len()..].iter().map(candle_fingerprint));
            self.last_seen = visible.last().copied();
        }
    }
}

/// A 64-bit fingerprint of a candle's bits (FNV-1a over its fields).
fn candle_fingerprint(c: &Candle) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for word in [
        c.open_time as u64,
        c.open.to_bits(),
        c.high.to_bits(),
        c.low.to_bits(),
        c.close.to_bits(),
        c.volume.to_bits(),
    ] {
        for byte in word.to_le_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Bitwise equality, so a NaN field does not make a candle differ from itself.
fn same_candle(a: &Candle, b: &Candle) -> bool {
    a.open_time == b.open_time
        && [
            (a.open, b.open),
            (a.high, b.high),
            (a.low, b.low),
            (a.close, b.close),
            (a.volume, b.volume),
        ]
        .iter()
        .all(|(x, y)| x.to_bits() == y.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const REFERENCE: &str = include_str!("../../tests/data/talib/reference.json");

    /// One TA-Lib output series: key, output names in `Reading` field order, values.
    struct RefSeries {
        key: IndicatorKey,
        outputs: Vec<Vec<Option<f64>>>,
        /// Per output, the absolute tolerance floor: 1e-8 of the output's largest
        /// magnitude, capped at 1e-8, so series quoted around 1e-15 are still checked
        /// to 8 significant digits instead of passing any value below 1e-8.
        abs_tol: Vec<f64>,
    }

    fn f64s(v: &Value) -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    }

    /// The real BTC candles and TA-Lib's outputs over them.
    fn load() -> (Vec<Candle>, Vec<RefSeries>) {
        let doc: Value = serde_json::from_str(REFERENCE).expect("reference.json parses");
        load_section(&doc)
    }

    /// The synthetic degenerate-case series (name, candles, TA-Lib's outputs).
    fn load_edge_cases() -> Vec<(String, Vec<Candle>, Vec<RefSeries>)> {
        let doc: Value = serde_json::from_str(REFERENCE).expect("reference.json parses");
        doc["edge_cases"]
            .as_array()
            .expect("edge_cases")
            .iter()
            .map(|case| {
                let name = case["name"].as_str().expect("name").to_string();
                let (candles, series) = load_section(case);
                (name, candles, series)
            })
            .collect()
    }

    fn load_section(doc: &Value) -> (Vec<Candle>, Vec<RefSeries>) {
        let c = &doc["candles"];
        let times: Vec<i64> = c["open_time"]
            .as_array()
            .expect("open_time")
            .iter()
            .map(|t| t.as_i64().expect("integer time"))
            .collect();
        let (o, h, l, cl, v) = (
            f64s(&c["open"]),
            f64s(&c["high"]),
            f64s(&c["low"]),
            f64s(&c["close"]),
            f64s(&c["volume"]),
        );
        let candles: Vec<Candle> = (0..times.len())
            .map(|i| Candle {
                open_time: times[i],
                open: o[i],
                high: h[i],
                low: l[i],
                close: cl[i],
                volume: v[i],
            })
            .collect();
        let mut series = Vec::new();
        for ind in doc["indicators"].as_array().expect("indicators") {
            let kind = ind["kind"].as_str().expect("kind");
            let params = ind["params"].as_array().expect("params");
            let u = |i: usize| params[i].as_u64().expect("integer param") as u32;
            let (key, names): (IndicatorKey, &[&str]) = match kind {
                "rsi" => (IndicatorKey::Rsi(u(0)), &["value"]),
                "ema" => (IndicatorKey::Ema(u(0)), &["value"]),
                "sma" => (IndicatorKey::Sma(u(0)), &["value"]),
                "macd" => (
                    IndicatorKey::Macd {
                        fast: u(0),
                        slow: u(1),
                        signal: u(2),
                    },
                    &["macd", "signal", "hist"],
                ),
                "bbands" => (
                    IndicatorKey::Bbands {
                        period: u(0),
                        k_milli: (params[1].as_f64().expect("k") * 1000.0).round() as u32,
                    },
                    &["upper", "middle", "lower"],
                ),
                "atr" => (IndicatorKey::Atr(u(0)), &["value"]),
                "stddev" => (IndicatorKey::Stddev(u(0)), &["value"]),
                "roc" => (IndicatorKey::Roc(u(0)), &["value"]),
                "stoch" => (
                    IndicatorKey::Stoch {
                        k: u(0),
                        slow_k: u(1),
                        d: u(2),
                    },
                    &["k", "d"],
                ),
                "obv" => (IndicatorKey::Obv, &["value"]),
                "mfi" => (IndicatorKey::Mfi(u(0)), &["value"]),
                other => panic!("unknown kind {other}"),
            };
            let outputs: Vec<Vec<Option<f64>>> = names
                .iter()
                .map(|name| {
                    let arr = ind["outputs"][*name].as_array().expect("output array");
                    assert_eq!(arr.len(), candles.len(), "{kind} {name} length");
                    arr.iter().map(Value::as_f64).collect()
                })
                .collect();
            let abs_tol = outputs
                .iter()
                .map(|o: &Vec<Option<f64>>| {
                    let scale = o.iter().flatten().fold(0.0_f64, |m, v| m.max(v.abs()));
                    1e-8 * scale.min(1.0)
                })
                .collect();
            series.push(RefSeries {
                key,
                outputs,
                abs_tol,
            });
        }
        (candles, series)
    }

    /// A reading flattened in `Reading` field order.
    fn flat(r: Reading) -> Vec<f64> {
        match r {
            Reading::Value(v) => vec![v],
            Reading::Macd { macd, signal, hist } => vec![macd, signal, hist],
            Reading::Bands {
                upper,
                middle,
                lower,
            } => vec![upper, middle, lower],
            Reading::Stoch { k, d } => vec![k, d],
        }
    }

    /// Within 1e-8 relative, or within `abs_tol` absolute (for values near zero).
    fn close_enough(a: f64, b: f64, abs_tol: f64) -> bool {
        let diff = (a - b).abs();
        diff <= 1e-8 * a.abs().max(b.abs()) || diff <= abs_tol
    }

    /// Asserts `got` is TA-Lib's value at candle `i` (None exactly where TA-Lib has NaN).
    fn check(s: &RefSeries, i: usize, got: Option<Reading>) {
        let want: Vec<Option<f64>> = s.outputs.iter().map(|o| o[i]).collect();
        match got {
            None => assert!(
                want.iter().all(Option::is_none),
                "{:?} at {i}: None, TA-Lib {want:?}",
                s.key
            ),
            Some(r) => {
                let got = flat(r);
                assert_eq!(got.len(), want.len(), "{:?} reading shape", s.key);
                for ((g, w), tol) in got.iter().zip(&want).zip(&s.abs_tol) {
                    let Some(w) = w else {
                        panic!("{:?} at {i}: got {got:?}, TA-Lib NaN", s.key);
                    };
                    assert!(
                        close_enough(*g, *w, *tol),
                        "{:?} at {i}: got {got:?}, TA-Lib {want:?}",
                        s.key
                    );
                }
            }
        }
    }

    #[test]
    fn reference_covers_every_indicator_with_real_values() {
        let (candles, series) = load();
        assert_eq!(candles.len(), 600);
        let kinds: std::collections::HashSet<_> = series
            .iter()
            .map(|s| std::mem::discriminant(&s.key))
            .collect();
        assert_eq!(kinds.len(), 11, "one series per indicator kind at least");
        for s in &series {
            let ready = s.outputs[0].iter().filter(|v| v.is_some()).count();
            assert!(ready > 500, "{:?} has only {ready} values", s.key);
        }
    }

    /// Feeds `candles` one at a time to one cache holding every key, as the bot does,
    /// checking each new reading against TA-Lib.
    fn check_candle_by_candle(candles: &[Candle], series: &[RefSeries]) {
        let mut cache = IndicatorCache::new();
        let mut compared = 0;
        for end in 1..=candles.len() {
            for s in series {
                let got = cache.reading(s.key, &candles[..end], 0).expect("valid key");
                check(s, end - 1, got);
                compared += 1;
            }
        }
        assert_eq!(compared, series.len() * candles.len());
        assert_eq!(cache.steps, (series.len() * candles.len()) as u64);
    }

    #[test]
    fn matches_talib_candle_by_candle() {
        let (candles, series) = load();
        check_candle_by_candle(&candles, &series);
    }

    #[test]
    fn matches_talib_on_degenerate_edge_cases() {
        let cases = load_edge_cases();
        let names: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["degenerate", "tiny_prices"]);
        let n_series = load().1.len();
        for (name, candles, series) in &cases {
            assert!(candles.len() >= 60, "{name}");
            assert_eq!(
                series.len(),
                n_series,
                "{name}: same indicators as the real data"
            );
            check_candle_by_candle(candles, series);
        }
    }

    #[test]
    fn matches_talib_in_one_batch_read_back_with_ago() {
        let (candles, series) = load();
        let mut cache = IndicatorCache::new();
        let last = candles.len() - 1;
        for s in &series {
            for ago in 0..=last {
                let got = cache.reading(s.key, &candles, ago).expect("valid key");
                check(s, last - ago, got);
            }
            assert_eq!(cache.computed_len(s.key), candles.len());
        }
        // Every series was computed exactly once, however many times it was read.
        assert_eq!(cache.steps, (series.len() * candles.len()) as u64);
    }

    #[test]
    fn lookback_is_talibs_first_output_index() {
        let (_, series) = load();
        for s in &series {
            let first = s.outputs[0].iter().position(Option::is_some);
            assert_eq!(first, Some(s.key.lookback()), "{:?}", s.key);
        }
    }

    #[test]
    fn ago_reads_earlier_values_and_out_of_range_is_none() {
        let (candles, series) = load();
        let rsi = series
            .iter()
            .find(|s| s.key == IndicatorKey::Rsi(14))
            .expect("RSI 14 in reference");
        let mut cache = IndicatorCache::new();
        let at = |cache: &mut IndicatorCache, ago| {
            cache
                .reading(IndicatorKey::Rsi(14), &candles[..300], ago)
                .expect("valid")
        };
        check(rsi, 294, at(&mut cache, 5));
        check(rsi, 299, at(&mut cache, 0));
        assert_ne!(at(&mut cache, 5), at(&mut cache, 0));
        check(rsi, 14, at(&mut cache, 299 - 14));
        assert!(at(&mut cache, 299 - 14).is_some());
        assert_eq!(at(&mut cache, 299 - 13), None, "warm-up");
        assert_eq!(at(&mut cache, 299), None, "first candle");
        assert_eq!(at(&mut cache, 300), None, "before the first candle");
        assert_eq!(at(&mut cache, usize::MAX), None);
        assert_eq!(
            cache.reading(IndicatorKey::Obv, &[], 0),
            Ok(None),
            "nothing visible"
        );
    }

    #[test]
    fn repeated_request_is_identical_and_not_recomputed() {
        let (candles, _) = load();
        let key = IndicatorKey::Macd {
            fast: 12,
            slow: 26,
            signal: 9,
        };
        let mut cache = IndicatorCache::new();
        let first = cache.reading(key, &candles[..400], 0).expect("valid");
        assert!(first.is_some());
        assert_eq!((cache.computed_len(key), cache.steps), (400, 400));
        let second = cache.reading(key, &candles[..400], 0).expect("valid");
        assert_eq!(first, second);
        assert_eq!((cache.computed_len(key), cache.steps), (400, 400));
        // Growing by one candle costs one step, not a recomputation.
        cache.reading(key, &candles[..401], 0).expect("valid");
        assert_eq!((cache.computed_len(key), cache.steps), (401, 401));
        // Another key is computed separately and does not disturb the first.
        cache
            .reading(IndicatorKey::Ema(9), &candles[..401], 0)
            .expect("valid");
        assert_eq!(cache.steps, 802);
        assert_eq!(cache.computed_len(IndicatorKey::Ema(21)), 0);
    }

    #[test]
    fn shorter_visible_reads_stored_values() {
        let (candles, series) = load();
        let mut cache = IndicatorCache::new();
        for s in &series {
            cache.reading(s.key, &candles, 0).expect("valid");
        }
        let steps = cache.steps;
        for s in &series {
            for end in [1, 2, 20, 34, 100, 599] {
                let got = cache.reading(s.key, &candles[..end], 0).expect("valid");
                check(s, end - 1, got);
                let got = cache.reading(s.key, &candles[..end], 1).expect("valid");
                if end >= 2 {
                    check(s, end - 2, got);
                } else {
                    assert_eq!(got, None);
                }
            }
            assert_eq!(cache.computed_len(s.key), candles.len());
        }
        assert_eq!(cache.steps, steps, "reading a prefix computed nothing");
    }

    #[test]
    fn replaced_history_is_recomputed_not_mixed() {
        let (candles, _) = load();
        let key = IndicatorKey::Sma(20);
        let mut cache = IndicatorCache::new();
        cache.reading(key, &candles[..300], 0).expect("valid");
        // A different history: the later half of the reference, starting afresh.
        let other = &candles[300..];
        let got = cache.reading(key, &other[..100], 0).expect("valid");
        let mut fresh = IndicatorCache::new();
        let want = fresh.reading(key, &other[..100], 0).expect("valid");
        assert!(want.is_some());
        assert_eq!(got, want);
        assert_eq!(cache.computed_len(key), 100);

        cache.clear();
        assert_eq!(cache.computed_len(key), 0);
    }

    #[test]
    fn bad_params_name_the_parameter() {
        let candles = load().0;
        let err = |key: IndicatorKey| {
            let mut cache = IndicatorCache::new();
            match cache.reading(key, &candles, 0) {
                Err(BadParams(msg)) => msg,
                Ok(r) => panic!("{key:?} accepted: {r:?}"),
            }
        };
        assert!(err(IndicatorKey::Rsi(0)).contains("period"));
        assert!(err(IndicatorKey::Ema(MAX_PERIOD + 1)).contains("period must be in 1..=10000"));
        let macd = |fast, slow, signal| IndicatorKey::Macd { fast, slow, signal };
        assert!(err(macd(26, 12, 9)).contains("fast (26) must be less than slow (12)"));
        assert!(err(macd(12, 12, 9)).contains("fast"));
        assert!(err(macd(0, 26, 9)).contains("fast must be"));
        assert!(err(macd(12, 26, 0)).contains("signal"));
        assert!(err(macd(12, 20_000, 9)).contains("slow"));
        let bb = |period, k_milli| IndicatorKey::Bbands { period, k_milli };
        assert!(err(bb(20, 0)).contains("k_milli"));
        assert!(err(bb(0, 2000)).contains("period"));
        let stoch = |k, slow_k, d| IndicatorKey::Stoch { k, slow_k, d };
        assert!(err(stoch(0, 3, 3)).contains("k must be"));
        assert!(err(stoch(14, 0, 3)).contains("slow_k"));
        assert!(err(stoch(14, 3, 0)).contains("d must be"));
        assert!(err(IndicatorKey::Mfi(0)).contains("Mfi"));
        let shown = BadParams("Atr(0): period".into()).to_string();
        assert!(shown.contains("Atr(0): period"), "{shown}");
        // The limits themselves are fine.
        assert_eq!(IndicatorKey::Roc(MAX_PERIOD).validate(), Ok(()));
        assert_eq!(macd(1, 2, 1).validate(), Ok(()));
        assert_eq!(IndicatorKey::Obv.validate(), Ok(()));
    }

    #[test]
    fn period_one_has_its_natural_meaning() {
        let (candles, _) = load();
        let mut cache = IndicatorCache::new();
        for end in 2..=50 {
            let visible = &candles[..end];
            let c = visible[end - 1];
            let mut get = |key| cache.reading(key, visible, 0).expect("valid");
            assert_eq!(get(IndicatorKey::Sma(1)), Some(Reading::Value(c.close)));
            assert_eq!(get(IndicatorKey::Ema(1)), Some(Reading::Value(c.close)));
            assert_eq!(get(IndicatorKey::Stddev(1)), Some(Reading::Value(0.0)));
            let bands = Some(Reading::Bands {
                upper: c.close,
                middle: c.close,
                lower: c.close,
            });
            assert_eq!(
                get(IndicatorKey::Bbands {
                    period: 1,
                    k_milli: 2000
                }),
                bands
            );
            let prev = visible[end - 2].close;
            let want = if c.close > prev { 100.0 } else { 0.0 };
            assert_eq!(get(IndicatorKey::Rsi(1)), Some(Reading::Value(want)));
        }
    }
}
