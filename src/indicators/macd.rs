//! MACD, TA-Lib `MACD` (fast EMA - slow EMA, signal = EMA of that, histogram = gap).
//!
//! TA-Lib does not run the fast EMA from the first candle: it seeds *both* EMAs at the
//! slow EMA's first output, index `slow - 1`, the fast one with the mean of the `fast`
//! closes ending there. A fast EMA started at index 0 differs by a decaying but, for
//! the first few hundred candles, clearly visible amount, so we feed the fast EMA only
//! from index `slow - fast`. The signal EMA is seeded with the mean of the first
//! `signal` MACD values, and TA-Lib hides all three outputs until the signal exists:
//! first output at index `slow - 1 + signal - 1`.

use super::ema::Ema;

/// MACD state.
#[derive(Clone, Debug)]
pub(crate) struct Macd {
    fast: Ema,
    slow: Ema,
    signal: Ema,
    /// Candle index at which the fast EMA starts receiving closes.
    fast_from: usize,
    index: usize,
}

impl Macd {
    /// MACD(fast, slow, signal); requires `1 <= fast < slow` and `signal >= 1`.
    pub(crate) fn new(fast: usize, slow: usize, signal: usize) -> Self {
        Self {
            fast: Ema::new(fast),
            slow: Ema::new(slow),
            signal: Ema::new(signal),
            fast_from: slow.saturating_sub(fast),
            index: 0,
        }
    }

    /// Feeds one close; returns `[macd, signal, hist]`, all NaN during warm-up.
    pub(crate) fn push(&mut self, close: f64) -> [f64; 3] {
        let slow = self.slow.push(close);
        let fast = if self.index >= self.fast_from {
            self.fast.push(close)
        } else {
            f64::NAN
        };
        self.index += 1;
        if slow.is_nan() || fast.is_nan() {
            return [f64::NAN; 3];
        }
        let macd = fast - slow;
        let signal = self.signal.push(macd);
        if signal.is_nan() {
            return [f64::NAN; 3];
        }
        [macd, signal, macd - signal]
    }
}
