//! Sliding-window building blocks shared by the windowed indicators: a ring of the last
//! `n` values, a rolling sum, rolling mean/variance and rolling extremes.
//!
//! They exist so every indicator advances in O(1) (amortised) per candle while staying
//! within rounding distance of a from-scratch computation however long the history
//! grows: a naive add-new/subtract-old running sum random-walks away from the truth,
//! so the sums here are rebuilt exactly from the window every `n` pushes.

use std::collections::VecDeque;

/// The last `cap` values pushed, oldest first.
#[derive(Clone, Debug)]
pub(crate) struct Ring {
    buf: Vec<f64>,
    cap: usize,
    /// Slot the next push writes once the ring is full (= the oldest value).
    head: usize,
}

impl Ring {
    /// Empty ring keeping `cap` (>= 1) values.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            buf: Vec::with_capacity(cap),
            cap,
            head: 0,
        }
    }

    /// Whether `cap` values have been pushed.
    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() == self.cap
    }

    /// Appends `x`; returns the value that fell out of the window, if any.
    pub(crate) fn push(&mut self, x: f64) -> Option<f64> {
        if self.buf.len() < self.cap {
            self.buf.push(x);
            None
        } else {
            let old = std::mem::replace(&mut self.buf[self.head], x);
            self.head = (self.head + 1) % self.cap;
            Some(old)
        }
    }

    /// Oldest value still in the window.
    pub(crate) fn oldest(&self) -> Option<f64> {
        self.buf.get(self.head).copied()
    }

    /// Values oldest to newest.
    pub(crate) fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let (newer, older) = self.buf.split_at(self.head);
        older.iter().chain(newer.iter()).copied()
    }
}

/// Sum of the last `n` values.
#[derive(Clone, Debug)]
pub(crate) struct RollingSum {
    ring: Ring,
    sum: f64,
    since_resync: usize,
    /// Non-zero values in the window: when it drops to 0 the sum is exactly 0, not
    /// the rounding residue add/subtract leaves (which a ratio like MFI's would
    /// otherwise turn into an arbitrary reading).
    nonzero: usize,
}

impl RollingSum {
    /// Empty window of `n` (>= 1) values.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            ring: Ring::new(n),
            sum: 0.0,
            since_resync: 0,
            nonzero: 0,
        }
    }

    /// Pushes `x`; returns the window sum once the window is full.
    pub(crate) fn push(&mut self, x: f64) -> Option<f64> {
        let evicted = self.ring.push(x);
        if x != 0.0 {
            self.nonzero += 1;
        }
        if evicted.is_some_and(|old| old != 0.0) {
            self.nonzero -= 1;
        }
        match evicted {
            // Subtract first, then add: the same association as TA-Lib's running total,
            // so between rebuilds the rounding matches it step for step.
            Some(old) => {
                self.sum = (self.sum - old) + x;
                self.since_resync += 1;
                if self.since_resync >= self.ring.cap {
                    self.sum = self.ring.iter().sum();
                    self.since_resync = 0;
                }
            }
            None => self.sum += x,
        }
        if self.nonzero == 0 {
            self.sum = 0.0;
        }
        self.ring.is_full().then_some(self.sum)
    }
}

/// Population mean and variance of the last `n` values.
///
/// Sums are kept of `x - shift` rather than `x`: BTC prices square to ~1e10, so the
/// textbook `E[x²] - E[x]²` would cancel away most significant digits of a variance of
/// a few dollars². With the shift near the window mean the subtraction is exact for
/// same-magnitude prices and the squares stay small.
#[derive(Clone, Debug)]
pub(crate) struct RollingMoments {
    ring: Ring,
    shift: f64,
    s1: f64,
    s2: f64,
    since_resync: usize,
}

impl RollingMoments {
    /// Empty window of `n` (>= 1) values.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            ring: Ring::new(n),
            shift: f64::NAN,
            s1: 0.0,
            s2: 0.0,
            since_resync: 0,
        }
    }

    /// Pushes `x`; returns the population variance once the window is full.
    ///
    /// The result can be a hair below zero from rounding; callers clamp it.
    pub(crate) fn push(&mut self, x: f64) -> Option<f64> {
        if self.shift.is_nan() {
            self.shift = x;
        }
        if let Some(old) = self.ring.push(x) {
            let d = old - self.shift;
            self.s1 -= d;
            self.s2 -= d * d;
            self.since_resync += 1;
        }
        let d = x - self.shift;
        self.s1 += d;
        self.s2 += d * d;
        if !self.ring.is_full() {
            return None;
        }
        if self.since_resync >= self.ring.cap {
            self.resync();
        }
        let n = self.ring.cap as f64;
        let m = self.s1 / n;
        Some(self.s2 / n - m * m)
    }

    /// Re-centres on the exact window mean and rebuilds the sums from the window.
    fn resync(&mut self) {
        let n = self.ring.cap as f64;
        self.shift = self.ring.iter().sum::<f64>() / n;
        let (mut s1, mut s2) = (0.0, 0.0);
        for v in self.ring.iter() {
            let d = v - self.shift;
            s1 += d;
            s2 += d * d;
        }
        self.s1 = s1;
        self.s2 = s2;
        self.since_resync = 0;
    }
}

/// Highest (or lowest) of the last `n` values, via a monotonic deque: amortised O(1)
/// where rescanning the window would be O(n).
#[derive(Clone, Debug)]
pub(crate) struct RollingExtreme {
    /// (push index, value); values strictly decreasing (max) or increasing (min) from
    /// the front, so the front is the extreme of the window.
    deque: VecDeque<(usize, f64)>,
    n: usize,
    pushed: usize,
    want_max: bool,
}

impl RollingExtreme {
    /// Rolling maximum over `n` (>= 1) values.
    pub(crate) fn max(n: usize) -> Self {
        Self::new(n, true)
    }

    /// Rolling minimum over `n` (>= 1) values.
    pub(crate) fn min(n: usize) -> Self {
        Self::new(n, false)
    }

    fn new(n: usize, want_max: bool) -> Self {
        Self {
            deque: VecDeque::with_capacity(n),
            n,
            pushed: 0,
            want_max,
        }
    }

    /// Pushes `x`; returns the extreme of the window once it is full.
    pub(crate) fn push(&mut self, x: f64) -> Option<f64> {
        while let Some(&(_, back)) = self.deque.back() {
            let dominated = if self.want_max { back <= x } else { back >= x };
            if !dominated {
                break;
            }
            self.deque.pop_back();
        }
        self.deque.push_back((self.pushed, x));
        self.pushed += 1;
        while let Some(&(i, _)) = self.deque.front() {
            if i + self.n >= self.pushed {
                break;
            }
            self.deque.pop_front();
        }
        if self.pushed < self.n {
            return None;
        }
        self.deque.front().map(|&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic BTC-like random walk around 1e5 (no RNG crate needed).
    fn walk(len: usize) -> Vec<f64> {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut p = 100_000.0;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let step = ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 40.0;
                p += (step * 100.0).round() / 100.0;
                p
            })
            .collect()
    }

    #[test]
    fn ring_keeps_the_last_values_in_order() {
        let mut r = Ring::new(3);
        assert_eq!(r.push(1.0), None);
        assert_eq!(r.push(2.0), None);
        assert!(!r.is_full());
        assert_eq!(r.push(3.0), None);
        assert!(r.is_full());
        assert_eq!(r.push(4.0), Some(1.0));
        assert_eq!(r.oldest(), Some(2.0));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![2.0, 3.0, 4.0]);
    }

    #[test]
    fn rolling_sum_recovers_from_absorbed_values() {
        // 1.0 vanishes next to 1e17, so add/subtract alone would read 1.0 forever.
        let mut s = RollingSum::new(2);
        let sums: Vec<_> = [1e17, 1.0, 1.0, 1.0, 1.0]
            .into_iter()
            .map(|x| s.push(x))
            .collect();
        assert_eq!(sums[0], None);
        assert_eq!(sums[4], Some(2.0));
    }

    #[test]
    fn rolling_sum_of_an_all_zero_window_is_exactly_zero() {
        // Subtracting 0.1 and 0.2 from fl(0.1 + 0.2) leaves 5.6e-17, not 0.
        let mut s = RollingSum::new(3);
        let last = [0.1, 0.2, 0.0, 0.0, 0.0]
            .into_iter()
            .map(|x| s.push(x))
            .last();
        assert_eq!(last, Some(Some(0.0)));
    }

    #[test]
    fn rolling_stats_stay_exact_over_a_long_history() {
        let xs = walk(50_000);
        let n = 20;
        let (mut sum, mut mom) = (RollingSum::new(n), RollingMoments::new(n));
        let (mut hi, mut lo) = (RollingExtreme::max(n), RollingExtreme::min(n));
        for (i, &x) in xs.iter().enumerate() {
            let (s, v, h, l) = (sum.push(x), mom.push(x), hi.push(x), lo.push(x));
            if i + 1 < n {
                assert!(s.is_none() && v.is_none() && h.is_none() && l.is_none());
                continue;
            }
            let w = &xs[i + 1 - n..=i];
            let mean = w.iter().sum::<f64>() / n as f64;
            let var = w.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
            let (s, v) = (s.unwrap_or(f64::NAN), v.unwrap_or(f64::NAN));
            assert!((s / n as f64 - mean).abs() <= 1e-9 * mean, "sum at {i}");
            assert!(
                (v - var).abs() <= 1e-9 * var.max(1.0),
                "var at {i}: {v} vs {var}"
            );
            let max = w.iter().copied().fold(f64::MIN, f64::max);
            let min = w.iter().copied().fold(f64::MAX, f64::min);
            assert_eq!((h, l), (Some(max), Some(min)), "extremes at {i}");
        }
    }
}
