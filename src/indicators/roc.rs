//! Rate of change in percent, TA-Lib `ROC`: `(close / close[n ago] - 1) * 100`.

use super::window::Ring;

/// ROC state: the last `n + 1` closes.
#[derive(Clone, Debug)]
pub(crate) struct Roc {
    closes: Ring,
}

impl Roc {
    /// ROC over `n` (>= 1) candles.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            closes: Ring::new(n + 1),
        }
    }

    /// Feeds one close; returns the ROC, NaN during warm-up.
    pub(crate) fn push(&mut self, close: f64) -> f64 {
        self.closes.push(close);
        if !self.closes.is_full() {
            return f64::NAN;
        }
        match self.closes.oldest() {
            // A zero base price would divide by zero; TA-Lib answers 0.
            Some(base) if base != 0.0 => ((close / base) - 1.0) * 100.0,
            _ => 0.0,
        }
    }
}
