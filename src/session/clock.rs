//! Session time. Replays run on a simulated clock, as fast as possible or paced to a
//! multiple of real time; live runs will use the wall clock. Scripts never see any clock but
//! `ctx.now`, which comes from here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Where session time comes from.
pub trait Clock {
    /// Block until session time `t` (or return at once if it has passed). Returns `false`
    /// if `stop` was raised while waiting.
    fn wait_until(&mut self, t: i64, stop: &AtomicBool) -> bool;
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
