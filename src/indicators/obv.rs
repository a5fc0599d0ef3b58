//! On-Balance Volume, TA-Lib `OBV`.
//!
//! TA-Lib starts the running total at the first candle's *volume* (not 0), so absolute
//! OBV levels depend on where the history starts; only its changes are meaningful.

use crate::feed::Candle;

/// OBV state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Obv {
    prev_close: Option<f64>,
    total: f64,
}

impl Obv {
    /// Feeds one candle; returns the running OBV (ready from the first candle).
    pub(crate) fn push(&mut self, c: &Candle) -> f64 {
        match self.prev_close.replace(c.close) {
            None => self.total = c.volume,
            Some(prev) if c.close > prev => self.total += c.volume,
            Some(prev) if c.close < prev => self.total -= c.volume,
            Some(_) => {}
        }
        self.total
    }
}
