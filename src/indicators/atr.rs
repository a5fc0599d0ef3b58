//! Average True Range, TA-Lib `ATR`.
//!
//! The first candle has no previous close, so true range starts at index 1; the first
//! ATR is the plain mean of the first `n` true ranges (index `n`), then Wilder
//! smoothing. ATR(1) degenerates to TA-Lib's `TRANGE`, which the same code yields.

use crate::feed::Candle;

/// ATR state.
#[derive(Clone, Debug)]
pub(crate) struct Atr {
    n: usize,
    prev_close: Option<f64>,
    ranges: usize,
    value: f64,
}

impl Atr {
    /// ATR over `n` (>= 1) true ranges.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            n,
            prev_close: None,
            ranges: 0,
            value: 0.0,
        }
    }

    /// Feeds one candle; returns the ATR, NaN during warm-up.
    pub(crate) fn push(&mut self, c: &Candle) -> f64 {
        let Some(prev) = self.prev_close.replace(c.close) else {
            return f64::NAN;
        };
        let tr = true_range(c, prev);
        let n = self.n as f64;
        self.ranges += 1;
        if self.ranges < self.n {
            self.value += tr;
            f64::NAN
        } else if self.ranges == self.n {
            self.value = (self.value + tr) / n;
            self.value
        } else {
            // TA-Lib's order: multiply, add, divide.
            self.value = (self.value * (n - 1.0) + tr) / n;
            self.value
        }
    }
}

/// Largest of the candle's range and its gaps from the previous close.
fn true_range(c: &Candle, prev_close: f64) -> f64 {
    let mut greatest = c.high - c.low;
    let up = (prev_close - c.high).abs();
    if up > greatest {
        greatest = up;
    }
    let down = (c.low - prev_close).abs();
    if down > greatest {
        greatest = down;
    }
    greatest
}
