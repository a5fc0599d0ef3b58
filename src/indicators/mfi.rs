//! Money Flow Index, TA-Lib `MFI`.
//!
//! Money flow is typical price `(h + l + c) / 3` times volume, counted positive when the
//! typical price rose from the previous candle, negative when it fell, and not at all
//! when unchanged. Flows start at index 1, so the first output is at index `n`.
//!
//! Follows current TA-Lib (the version the reference data comes from), which differs
//! from the classic 0.4 code in degenerate cases only: "unchanged" has a dead zone of
//! ~90 ulp (so `0.1 + 0.2` vs `0.3` is no move), and only a window with no money flow
//! at all reads 0 (classic TA-Lib also zeroed any window whose total flow was below
//! 1.0, in whatever units price times volume has).

use super::is_zero_scaled;
use super::window::RollingSum;
use crate::feed::Candle;

/// MFI state.
#[derive(Clone, Debug)]
pub(crate) struct Mfi {
    prev_typical: Option<f64>,
    positive: RollingSum,
    negative: RollingSum,
}

impl Mfi {
    /// MFI over `n` (>= 1) money flows.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            prev_typical: None,
            positive: RollingSum::new(n),
            negative: RollingSum::new(n),
        }
    }

    /// Feeds one candle; returns the MFI, NaN during warm-up.
    pub(crate) fn push(&mut self, c: &Candle) -> f64 {
        let typical = (c.high + c.low + c.close) / 3.0;
        let Some(prev) = self.prev_typical.replace(typical) else {
            return f64::NAN;
        };
        let change = typical - prev;
        let flow = if is_zero_scaled(change, typical.abs() + prev.abs()) {
            0.0
        } else {
            typical * c.volume
        };
        let (pos, neg) = if change < 0.0 {
            (0.0, flow)
        } else {
            (flow, 0.0)
        };
        let (Some(pos), Some(neg)) = (self.positive.push(pos), self.negative.push(neg)) else {
            return f64::NAN;
        };
        let total = pos + neg;
        if total <= 0.0 {
            // No money moved in the whole window: 0/0, which TA-Lib reports as 0.
            0.0
        } else {
            // Clamped because a near-zero rolling sum can round a hair outside
            // [0, total], which would put the index outside 0..=100.
            100.0 * (pos.clamp(0.0, total) / total)
        }
    }
}
