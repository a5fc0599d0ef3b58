//! Price feeds: where candles come from and how they become visible to the session.
//!
//! A [`Feed`] hands the session every candle closed at or before a given time, in order, and
//! nothing later; that single rule is what keeps the future out of every decision. The
//! replay feed serves a recorded file ([`recorded`]); the live feed ([`live`]: Binance
//! WebSocket, REST backfill, watchdog, Coinbase/CoinGecko fallback, over [`net`])
//! implements the same trait. The [`AnomalyFilter`] sits between feed and session so that a
//! wild print is rejected the same way in every mode.
//!
//! Backtests add two inputs: several recorded files joined into one history ([`join`],
//! served by [`join::HistoryFeed`] with a hard cut-off), and Polymarket's recorded
//! resolutions ([`outcomes`]), which settle trades but never reach a decision.

pub mod binance;
pub mod candle;
pub mod join;
pub mod live;
pub mod net;
pub mod outcomes;
pub mod recorded;
pub mod spot;

pub use candle::{CANDLE_SECS, Candle};
pub use join::{HistoryFeed, Joined, load_joined};
pub use outcomes::{Lookup, Outcomes, load_outcomes};
pub use recorded::{Gap, Layout, Recorded, load_csv};

/// A source of closed candles, driven by the session's clock.
pub trait Feed {
    /// Hand `sink` every candle whose close time is ≤ `t` that was not handed out before,
    /// oldest first.
    fn deliver_until(&mut self, t: i64, sink: &mut dyn FnMut(Candle));

    /// Whether the candles needed to settle `[start, end)` from price data exist (a replay
    /// over a file with a maintenance gap cannot settle windows inside it). Says nothing
    /// about prices, so asking it is not look-ahead.
    fn covers(&self, start: i64, end: i64) -> bool;

    /// Human name of the source, recorded with the session (e.g. the file path).
    fn source(&self) -> String;

    /// Why the data cannot be trusted right now, when the source knows (a live stream that
    /// went silent or is catching up after a reconnect); the risk gate refuses entries as
    /// `stale_data` meanwhile. Recorded data is never stale: `None`.
    fn stale(&self) -> Option<String> {
        None
    }
}

/// Replays a recorded candle history.
#[derive(Debug)]
pub struct ReplayFeed {
    recorded: Recorded,
    next: usize,
}

impl ReplayFeed {
    /// A feed over `recorded`, starting before its first candle.
    pub fn new(recorded: Recorded) -> Self {
        ReplayFeed { recorded, next: 0 }
    }

    /// The whole recording (for planning the session's windows, not for decisions).
    pub fn recorded(&self) -> &Recorded {
        &self.recorded
    }
}

impl Feed for ReplayFeed {
    fn deliver_until(&mut self, t: i64, sink: &mut dyn FnMut(Candle)) {
        let candles = &self.recorded.candles;
        while let Some(c) = candles.get(self.next) {
            if c.close_time() > t {
                break;
            }
            sink(*c);
            self.next += 1;
        }
    }

    fn covers(&self, start: i64, end: i64) -> bool {
        let candles = &self.recorded.candles;
        let first = candles.partition_point(|c| c.open_time < start);
        let needed = ((end - start) / CANDLE_SECS) as usize;
        // Candles are strictly increasing minutes, so `needed` consecutive entries starting
        // at `start` that end at `end - 60` means none is missing.
        candles.get(first).is_some_and(|c| c.open_time == start)
            && candles
                .get(first + needed - 1)
                .is_some_and(|c| c.open_time == end - CANDLE_SECS)
    }

    fn source(&self) -> String {
        self.recorded.path.display().to_string()
    }
}

/// Rejects a price that jumps more than a configured percentage from the last accepted one.
///
/// Owned by the session; a rejected candle is not shown to scripts and is counted, so a bad
/// tick cannot trigger a trade or poison an indicator.
///
/// A jump is judged against a recent price only: when more than
/// [`AnomalyFilter::REANCHOR_AFTER_SECS`] passed since the last accepted candle (an exchange
/// outage, two joined files with days between them, or an hour of rejected prints after a
/// real move), the next candle re-anchors the reference instead of being compared with a
/// stale price, which would otherwise reject every candle from then on.
#[derive(Clone, Debug)]
pub struct AnomalyFilter {
    max_jump_pct: f64,
    /// Open time and close of the last accepted candle.
    last: Option<(i64, f64)>,
    /// Candles rejected so far.
    pub rejected: u64,
}

impl AnomalyFilter {
    /// A filter allowing jumps up to `max_jump_pct` percent.
    pub fn new(max_jump_pct: f64) -> Self {
        AnomalyFilter {
            max_jump_pct,
            last: None,
            rejected: 0,
        }
    }

    /// Holes longer than this (seconds between the last accepted candle and the next) leave
    /// no recent reference: the next candle re-anchors the filter.
    pub const REANCHOR_AFTER_SECS: i64 = 3600;

    /// Whether `c` is plausible; updates the reference price when it is.
    pub fn accept(&mut self, c: &Candle) -> bool {
        if let Some((at, last)) = self.last
            && c.open_time - at <= Self::REANCHOR_AFTER_SECS
        {
            let jump = (c.close - last).abs() / last * 100.0;
            if !jump.is_finite() || jump > self.max_jump_pct {
                self.rejected += 1;
                return false;
            }
        }
        self.last = Some((c.open_time, c.close));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn candle(open_time: i64, close: f64) -> Candle {
        Candle {
            open_time,
            open: close,
            high: close,
            low: close,
            close,
            volume: 1.0,
        }
    }

    fn feed(times: &[i64]) -> ReplayFeed {
        ReplayFeed::new(Recorded {
            path: PathBuf::from("t.csv"),
            candles: times.iter().map(|t| candle(*t, 100.0)).collect(),
            gaps: vec![],
            layout: recorded::Layout::TimestampOhlcv,
        })
    }

    #[test]
    fn delivers_only_candles_closed_by_the_given_time() {
        let mut f = feed(&[0, 60, 120, 180]);
        let mut got = vec![];
        f.deliver_until(119, &mut |c| got.push(c.open_time));
        assert_eq!(got, [0]); // the 60 bar closes at 120
        f.deliver_until(120, &mut |c| got.push(c.open_time));
        assert_eq!(got, [0, 60]);
        f.deliver_until(10_000, &mut |c| got.push(c.open_time));
        assert_eq!(got, [0, 60, 120, 180]);
    }

    #[test]
    fn coverage_detects_missing_minutes_inside_a_window() {
        let full: Vec<i64> = (0..10).map(|i| i * 60).collect();
        assert!(feed(&full).covers(0, 300));
        assert!(feed(&full).covers(300, 600));
        assert!(!feed(&full).covers(600, 900));
        let holed: Vec<i64> = full.iter().copied().filter(|t| *t != 120).collect();
        assert!(!feed(&holed).covers(0, 300));
        assert!(feed(&holed).covers(300, 600));
    }

    #[test]
    fn anomaly_filter_rejects_jumps_over_the_limit_and_keeps_its_reference() {
        let mut f = AnomalyFilter::new(10.0);
        assert!(f.accept(&candle(0, 100.0)));
        assert!(f.accept(&candle(60, 110.0))); // exactly 10%
        assert!(!f.accept(&candle(120, 121.1))); // 10.09% from 110
        assert!(f.accept(&candle(180, 105.0))); // judged against 110, not the rejected print
        assert_eq!(f.rejected, 1);
    }

    #[test]
    fn anomaly_filter_re_anchors_after_a_long_hole_only() {
        let mut f = AnomalyFilter::new(10.0);
        assert!(f.accept(&candle(0, 100.0)));
        // An hour later the reference still holds; a candle after a longer hole re-anchors.
        assert!(!f.accept(&candle(3600, 120.0)));
        assert!(f.accept(&candle(3660, 140.0)));
        assert!(f.accept(&candle(3720, 141.0)));
        assert!(!f.accept(&candle(3780, 160.0)));
        assert_eq!(f.rejected, 2);
    }
}
