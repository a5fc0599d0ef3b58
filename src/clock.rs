//! Session time. Replays run on a simulated clock, as fast as possible or paced to a
//! multiple of real time; live sessions run on a [`WallClock`] synchronised to the
//! exchange's server time. Scripts never see any clock but `ctx.now`, which comes from here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where session time comes from.
pub trait Clock {
    /// Block until session time `t` (or return at once if it has passed). Returns `false`
    /// if `stop` was raised while waiting.
    fn wait_until(&mut self, t: i64, stop: &AtomicBool) -> bool;

    /// Session time now (Unix seconds) for a clock that runs on its own (the wall clock);
    /// `None` for a simulated clock, whose time is wherever the session last waited. The
    /// session uses it to refuse a decision made too long after its time.
    fn now(&self) -> Option<i64> {
        None
    }
}

/// Simulated time over recorded data.
#[derive(Debug)]
pub struct SimulatedClock {
    now: Option<i64>,
    speed: Option<f64>,
}

impl SimulatedClock {
    /// `speed = None` runs as fast as the machine allows; `Some(x)` runs x times real time.
    pub fn new(speed: Option<f64>) -> Self {
        SimulatedClock { now: None, speed }
    }
}

impl Clock for SimulatedClock {
    fn wait_until(&mut self, t: i64, stop: &AtomicBool) -> bool {
        if let (Some(speed), Some(now)) = (self.speed, self.now)
            && t > now
        {
            let real = Duration::from_secs_f64((t - now) as f64 / speed);
            let until = Instant::now() + real;
            // Sleep in short slices so a signal is honoured promptly.
            while Instant::now() < until {
                if stop.load(Ordering::SeqCst) {
                    return false;
                }
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
            }
        }
        if self.now.is_none_or(|n| t > n) {
            self.now = Some(t);
        }
        !stop.load(Ordering::SeqCst)
    }
}

/// One reading of a server's clock: what it said, and when (local monotonic time) the
/// request left and the answer came back.
#[derive(Clone, Copy, Debug)]
pub struct TimeSample {
    /// The server's time, Unix ms.
    pub server_ms: i64,
    /// When the request was sent.
    pub sent: Instant,
    /// When the answer arrived.
    pub received: Instant,
}

impl TimeSample {
    /// Round-trip time of the request.
    pub fn rtt(&self) -> Duration {
        self.received.saturating_duration_since(self.sent)
    }
}

/// Session time for live sessions: the exchange's clock, read once
/// (`GET /api/v3/time`, the sample with the shortest round trip) and carried forward on
/// this machine's monotonic clock, `speed` session seconds per real second.
///
/// At speed 1 it is wall time corrected by the measured offset (the local clock may be off
/// by seconds; the market is not). A speed above 1 only makes sense against the loopback
/// venue, whose virtual clock runs that fast: both then advance together. The clock is
/// `Copy`, so the feed and the session read the same time.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    /// Session time at `origin`, Unix ms.
    base_ms: i64,
    origin: Instant,
    speed: f64,
    /// Server minus local system time at synchronisation, ms.
    offset_ms: i64,
    /// Round trip of the sample used.
    rtt: Duration,
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl WallClock {
    /// This machine's own clock, unsynchronised, at real speed.
    pub fn system() -> Self {
        WallClock {
            base_ms: system_ms(),
            origin: Instant::now(),
            speed: 1.0,
            offset_ms: 0,
            rtt: Duration::ZERO,
        }
    }

    /// A clock synchronised to the best (shortest round trip) of `samples`, running `speed`
    /// times real time; `None` without samples. The server is taken to have read its clock
    /// half-way through the round trip.
    pub fn synced(samples: &[TimeSample], speed: f64) -> Option<Self> {
        let best = samples.iter().min_by_key(|s| s.rtt())?;
        let half = best.rtt().as_secs_f64() * 1000.0 / 2.0;
        let base_ms = best.server_ms.saturating_add((half * speed) as i64);
        let local_at_receive =
            system_ms() - i64::try_from(best.received.elapsed().as_millis()).unwrap_or(0);
        Some(WallClock {
            base_ms,
            origin: best.received,
            speed,
            offset_ms: base_ms - local_at_receive,
            rtt: best.rtt(),
        })
    }

    /// Session time now, Unix ms.
    pub fn now_ms(&self) -> i64 {
        let real = self.origin.elapsed().as_secs_f64() * 1000.0;
        self.base_ms.saturating_add((real * self.speed) as i64)
    }

    /// Session time now, whole Unix seconds (rounded down).
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Session seconds per real second.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// How far the server's clock was ahead of this machine's at synchronisation, ms
    /// (negative: behind). Meaningful at speed 1; against the loopback venue it is the
    /// distance to its virtual time.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// Round trip of the time request the clock was set from.
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    /// The real time a span of `session_ms` takes (zero for a negative span).
    pub fn real_for(&self, session_ms: i64) -> Duration {
        if session_ms <= 0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(session_ms as f64 / 1000.0 / self.speed)
            .unwrap_or(Duration::MAX)
    }
}

impl Clock for WallClock {
    fn wait_until(&mut self, t: i64, stop: &AtomicBool) -> bool {
        let target = t.saturating_mul(1000);
        loop {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            let now = self.now_ms();
            if now >= target {
                return true;
            }
            // Short slices: a signal is honoured promptly, and rounding never oversleeps.
            std::thread::sleep(self.real_for(target - now).min(Duration::from_millis(20)));
        }
    }

    fn now(&self) -> Option<i64> {
        Some(self.now_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_follows_the_best_sample_at_its_speed() {
        let t0 = Instant::now();
        let slow = TimeSample {
            server_ms: 5_000_000,
            sent: t0,
            received: t0 + Duration::from_millis(400),
        };
        let fast = TimeSample {
            server_ms: 1_000_000,
            sent: t0,
            received: t0 + Duration::from_millis(2),
        };
        let c = WallClock::synced(&[slow, fast], 300.0).unwrap();
        assert_eq!(c.rtt(), Duration::from_millis(2));
        let now = c.now_ms();
        // 1 ms half round trip at 300x, plus however long the test took.
        assert!(now >= 1_000_300, "{now}");
        assert!(now < 1_000_300 + 300 * 5_000, "{now}");
        assert_eq!(c.real_for(60_000), Duration::from_millis(200));
        assert!(WallClock::synced(&[], 1.0).is_none());
    }

    #[test]
    fn wall_clock_waits_and_honours_stop() {
        let mut c = WallClock::synced(
            &[TimeSample {
                server_ms: 1_000_000,
                sent: Instant::now(),
                received: Instant::now(),
            }],
            600.0,
        )
        .unwrap();
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        // 30 session seconds at 600x: 50 ms.
        assert!(c.wait_until(1_030, &stop));
        assert!(c.now_secs() >= 1_030);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(c.now(), Some(c.now_secs()));
        stop.store(true, Ordering::SeqCst);
        assert!(!c.wait_until(10_000_000, &stop));
        let system = WallClock::system();
        assert!((system.now_ms() - system_ms()).abs() < 1_000);
    }
}
