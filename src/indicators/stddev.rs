//! Population standard deviation of closes, TA-Lib `STDDEV` with `nbdev = 1`.

use super::window::RollingMoments;

/// Standard deviation of the last `n` closes (divides by `n`, not `n - 1`).
#[derive(Clone, Debug)]
pub(crate) struct Stddev {
    moments: RollingMoments,
}

impl Stddev {
    /// STDDEV over `n` (>= 1) closes.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            moments: RollingMoments::new(n),
        }
    }

    /// Feeds one close; returns the deviation, NaN during warm-up.
    pub(crate) fn push(&mut self, close: f64) -> f64 {
        self.moments.push(close).map_or(f64::NAN, stddev_of)
    }
}

/// Square root of a variance, floored at 0: rounding can make a flat window's variance
/// a hair negative, whose root would be NaN. As in current TA-Lib the floor is exact
/// zero, not the classic fixed band, which wiped out the deviation of tiny quotes.
pub(crate) fn stddev_of(variance: f64) -> f64 {
    if variance > 0.0 { variance.sqrt() } else { 0.0 }
}
