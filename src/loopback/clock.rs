//! The loopback venue's virtual clock: `virtual_ms = start_ms + real elapsed × speed`.
//!
//! Everything the venue serves (which klines are closed, which market is listed, books,
//! resolutions, `/api/v3/time`) is a function of this clock, so a test at speed 600 sees a
//! 5-minute window pass in half a real second and still never sees anything early.

use std::time::{Duration, Instant};

/// A clock that starts at a chosen virtual time and runs `speed` times faster than real time.
#[derive(Clone, Copy, Debug)]
pub struct VirtualClock {
    start_ms: i64,
    speed: f64,
    origin: Instant,
}

impl VirtualClock {
    /// A clock reading `start_ms` (Unix ms, virtual) now and advancing `speed` virtual
    /// milliseconds per real millisecond.
    pub fn new(start_ms: i64, speed: f64) -> Self {
        VirtualClock {
            start_ms,
            speed,
            origin: Instant::now(),
        }
    }

    /// The current virtual time, Unix ms.
    pub fn now_ms(&self) -> i64 {
        self.at(Instant::now())
    }

    /// The virtual time at real instant `t` (Unix ms); instants before the start read the start.
    pub fn at(&self, t: Instant) -> i64 {
        let real = t.saturating_duration_since(self.origin).as_secs_f64() * 1000.0;
        // Float-to-int casts saturate, and so does the sum: no overflow at absurd speeds.
        self.start_ms.saturating_add((real * self.speed) as i64)
    }

    /// Virtual time at which the clock was started, Unix ms.
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// Virtual milliseconds per real millisecond.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The real time a virtual span of `virtual_ms` takes (zero for a negative span).
    pub fn real_for(&self, virtual_ms: i64) -> Duration {
        if virtual_ms <= 0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(virtual_ms as f64 / 1000.0 / self.speed)
            .unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_time_runs_at_speed_and_never_backwards() {
        let c = VirtualClock::new(1_000_000, 600.0);
        let a = c.now_ms();
        std::thread::sleep(Duration::from_millis(20));
        let b = c.now_ms();
        assert!(a >= 1_000_000);
        // 20 ms real at 600× is 12 s virtual; allow a slow machine.
        assert!(b - a >= 12_000, "{a} {b}");
        assert_eq!(c.real_for(60_000), Duration::from_millis(100));
        assert_eq!(c.real_for(-5), Duration::ZERO);
    }
}
