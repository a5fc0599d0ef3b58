//! Slow stochastic, TA-Lib `STOCH(fastk, slowk, SMA, slowd, SMA)`.
//!
//! Raw %K over `k` candles, slow %K = SMA(`slow_k`) of it, %D = SMA(`d`) of slow %K.
//! TA-Lib hides slow %K until %D exists, so both appear first at index
//! `(k - 1) + (slow_k - 1) + (d - 1)`.

use super::ema::Sma;
use super::is_zero_scaled;
use super::window::RollingExtreme;
use crate::feed::Candle;

/// Stochastic state.
#[derive(Clone, Debug)]
pub(crate) struct Stoch {
    highest: RollingExtreme,
    lowest: RollingExtreme,
    slow_k: Sma,
    d: Sma,
}

impl Stoch {
    /// STOCH(k, slow_k, d), all >= 1.
    pub(crate) fn new(k: usize, slow_k: usize, d: usize) -> Self {
        Self {
            highest: RollingExtreme::max(k),
            lowest: RollingExtreme::min(k),
            slow_k: Sma::new(slow_k),
            d: Sma::new(d),
        }
    }

    /// Feeds one candle; returns `[slow %K, %D]`, both NaN during warm-up.
    pub(crate) fn push(&mut self, c: &Candle) -> [f64; 2] {
        let (Some(high), Some(low)) = (self.highest.push(c.high), self.lowest.push(c.low)) else {
            return [f64::NAN; 2];
        };
        // A flat window (range within ~90 ulp of the prices, so one-ulp noise counts
        // as flat) has no position to report; TA-Lib reads it as 0.
        let range = high - low;
        let fast_k = if is_zero_scaled(range, high.abs() + low.abs()) {
            0.0
        } else {
            ((c.close - low) / range) * 100.0
        };
        let slow_k = self.slow_k.push(fast_k);
        if slow_k.is_nan() {
            return [f64::NAN; 2];
        }
        let d = self.d.push(slow_k);
        if d.is_nan() {
            return [f64::NAN; 2];
        }
        [slow_k, d]
    }
}
