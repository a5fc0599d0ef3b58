//! Moving averages of closes: EMA (TA-Lib `EMA`) and SMA (TA-Lib `SMA`).
//!
//! The EMA is also the building block of MACD, which is why it takes plain values
//! rather than candles.

use super::window::RollingSum;

/// Exponential moving average, TA-Lib style: seeded with the simple mean of the first
/// `n` values, then `prev + k * (x - prev)` with `k = 2 / (n + 1)`. First output after
/// `n` values.
#[derive(Clone, Debug)]
pub(crate) struct Ema {
    n: usize,
    k: f64,
    seen: usize,
    seed_sum: f64,
    value: f64,
}

impl Ema {
    /// EMA over `n` (>= 1) values.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            n,
            k: 2.0 / (n as f64 + 1.0),
            seen: 0,
            seed_sum: 0.0,
            value: f64::NAN,
        }
    }

    /// Feeds `x`; returns the EMA, NaN during warm-up.
    pub(crate) fn push(&mut self, x: f64) -> f64 {
        if self.seen < self.n {
            // Accumulated left to right and divided once, as TA-Lib seeds it.
            self.seed_sum += x;
            self.seen += 1;
            if self.seen == self.n {
                self.value = self.seed_sum / self.n as f64;
            }
        } else {
            // TA-Lib's association, so the rounding matches it step for step instead
            // of drifting apart over a long series.
            self.value = ((x - self.value) * self.k) + self.value;
        }
        self.value
    }
}

/// Simple moving average over the last `n` values.
#[derive(Clone, Debug)]
pub(crate) struct Sma {
    n: f64,
    sum: RollingSum,
}

impl Sma {
    /// SMA over `n` (>= 1) values.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            n: n as f64,
            sum: RollingSum::new(n),
        }
    }

    /// Feeds `x`; returns the mean of the window, NaN during warm-up.
    pub(crate) fn push(&mut self, x: f64) -> f64 {
        self.sum.push(x).map_or(f64::NAN, |s| s / self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_seeds_with_the_mean_then_smooths() {
        let mut e = Ema::new(3);
        assert!(e.push(1.0).is_nan());
        assert!(e.push(2.0).is_nan());
        assert_eq!(e.push(3.0), 2.0);
        // k = 0.5: 2 + 0.5 * (6 - 2)
        assert_eq!(e.push(6.0), 4.0);
    }

    #[test]
    fn sma_is_the_window_mean() {
        let mut s = Sma::new(2);
        assert!(s.push(1.0).is_nan());
        assert_eq!(s.push(3.0), 2.0);
        assert_eq!(s.push(7.0), 5.0);
    }
}
