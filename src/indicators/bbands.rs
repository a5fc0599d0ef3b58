//! Bollinger Bands, TA-Lib `BBANDS(period, k, k, matype = SMA)`: SMA middle band,
//! outer bands `k` *population* standard deviations away.

use super::ema::Sma;
use super::stddev::stddev_of;
use super::window::RollingMoments;

/// Bollinger Bands state.
#[derive(Clone, Debug)]
pub(crate) struct Bbands {
    middle: Sma,
    moments: RollingMoments,
    k: f64,
}

impl Bbands {
    /// Bands over `n` (>= 1) closes, `k` deviations wide.
    pub(crate) fn new(n: usize, k: f64) -> Self {
        Self {
            middle: Sma::new(n),
            moments: RollingMoments::new(n),
            k,
        }
    }

    /// Feeds one close; returns `[upper, middle, lower]`, all NaN during warm-up.
    pub(crate) fn push(&mut self, close: f64) -> [f64; 3] {
        let middle = self.middle.push(close);
        let Some(variance) = self.moments.push(close) else {
            return [f64::NAN; 3];
        };
        let width = self.k * stddev_of(variance);
        [middle + width, middle, middle - width]
    }
}
