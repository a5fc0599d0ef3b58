//! The closed 1-minute candle: the unit of market history everything else is built from.

/// One closed 1-minute BTC candle.
///
/// Prices are `f64` because they feed indicator maths, never money: amounts we hold or
/// stake are `rust_decimal::Decimal`. Times are Unix seconds (UTC) of the bar's *open*; a
/// candle becomes known to a strategy only at its close, `open_time + 60`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candle {
    /// Bar open time, Unix seconds, UTC.
    pub open_time: i64,
    /// First trade price of the minute.
    pub open: f64,
    /// Highest trade price of the minute.
    pub high: f64,
    /// Lowest trade price of the minute.
    pub low: f64,
    /// Last trade price of the minute.
    pub close: f64,
    /// Traded volume in BTC.
    pub volume: f64,
}

/// Length of one candle in seconds.
pub const CANDLE_SECS: i64 = 60;

impl Candle {
    /// The moment the candle closed and became visible (Unix seconds).
    pub fn close_time(&self) -> i64 {
        self.open_time + CANDLE_SECS
    }
}
