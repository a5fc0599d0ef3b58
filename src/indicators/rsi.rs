//! Relative Strength Index, TA-Lib `RSI` (Wilder smoothing, unstable period 0).

use crate::feed::Candle;

/// Wilder RSI over `n` close-to-close changes.
///
/// The first averages are plain means of the first `n` gains and losses, so the first
/// output is at candle index `n`; afterwards `avg = (avg * (n - 1) + today) / n`, in
/// that order, as TA-Lib does.
#[derive(Clone, Debug)]
pub(crate) struct Rsi {
    n: usize,
    prev_close: Option<f64>,
    changes: usize,
    gain: f64,
    loss: f64,
}

impl Rsi {
    /// RSI over `n` (>= 1) changes.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            n,
            prev_close: None,
            changes: 0,
            gain: 0.0,
            loss: 0.0,
        }
    }

    /// Feeds one candle; returns the RSI, NaN during warm-up.
    pub(crate) fn push(&mut self, c: &Candle) -> f64 {
        let Some(prev) = self.prev_close.replace(c.close) else {
            return f64::NAN;
        };
        let diff = c.close - prev;
        let n = self.n as f64;
        self.changes += 1;
        if self.changes > self.n {
            self.gain *= n - 1.0;
            self.loss *= n - 1.0;
        }
        if diff < 0.0 {
            self.loss -= diff;
        } else {
            self.gain += diff;
        }
        if self.changes < self.n {
            return f64::NAN;
        }
        self.gain /= n;
        self.loss /= n;
        let total = self.gain + self.loss;
        // No movement in either average (a flat start, or RSI(1) after an unchanged
        // close): 0/0, which TA-Lib reports as 0. Exact zero only: current TA-Lib
        // dropped the classic fixed 1e-8 band, which zeroed real readings of
        // instruments quoted far below 1.
        if total > 0.0 {
            100.0 * (self.gain / total)
        } else {
            0.0
        }
    }
}
