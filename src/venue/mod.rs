//! Venues: where approved stakes become fills and windows become outcomes.
//!
//! The session talks to one [`Venue`] whatever the mode: the replay venue quotes from a
//! configurable model and settles from price data; paper and live venues quote from
//! Polymarket's books and settle from its resolutions, which arrive after a window ends
//! ([`PendingResolution`] tells the session to ask again rather than void the trade). A venue only accepts a risk-approved
//! [`Stake`], so nothing reaches it around the gate. Fees follow Polymarket's formula
//! ([`fee`]) in every mode. A backtest given Polymarket's recorded results uses
//! [`OutcomesVenue`]: the replay venue's quotes and fills, settled from those results.

pub mod live;
pub mod orders;
pub mod outcomes;
pub mod paper;
pub mod polymarket;
pub mod replay;

pub use outcomes::OutcomesVenue;
pub use replay::ReplayVenue;

use crate::domain::{Side, Window};
use crate::feed::Candle;
use crate::risk::Stake;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Top of one outcome token's book.
#[derive(Clone, Debug, PartialEq)]
pub struct BookTop {
    /// Best bid.
    pub bid: Decimal,
    /// Best ask.
    pub ask: Decimal,
    /// Shares offered near the top of the asks.
    pub ask_depth: Decimal,
    /// Shares bid near the top of the bids.
    pub bid_depth: Decimal,
}

/// The market for one window as the venue quotes it at decision time.
#[derive(Clone, Debug, PartialEq)]
pub struct Quote {
    /// The Up token.
    pub up: BookTop,
    /// The Down token.
    pub down: BookTop,
    /// Fee rate in `fee = shares × rate × p × (1 − p)`.
    pub fee_rate: Decimal,
    /// Price tick.
    pub tick_size: Decimal,
    /// Minimum order, shares.
    pub min_order_shares: Decimal,
}

impl Quote {
    /// The book of `side`.
    pub fn side(&self, side: Side) -> &BookTop {
        match side {
            Side::Up => &self.up,
            Side::Down => &self.down,
        }
    }
}

pub use crate::domain::Fill;

/// Who decided a window's outcome; recorded on every trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettledBy {
    /// Close of the window's last 1m candle ≥ open of its first (replay without outcomes).
    PriceData,
    /// Polymarket's own resolution.
    Venue,
    /// Polymarket's resolution as recorded in an outcomes file (backtests with `--outcomes`).
    Polymarket,
    /// Price data (as [`SettledBy::PriceData`]) because the venue published no resolution
    /// within the paper venue's timeout.
    PriceDataFallback,
}

impl SettledBy {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            SettledBy::PriceData => "price_data",
            SettledBy::Venue => "venue",
            SettledBy::Polymarket => "polymarket",
            SettledBy::PriceDataFallback => "price_data_fallback",
        }
    }
}

/// The outcome of a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolution {
    /// Winning side.
    pub outcome: Side,
    /// Source of the outcome.
    pub settled_by: SettledBy,
}

/// What can go wrong talking to a venue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VenueError {
    /// The venue refused the order; nothing was filled.
    #[error("order rejected: {0}")]
    Rejected(String),
    /// The venue is unreachable or failed; whether anything happened is unknown.
    #[error("venue unavailable: {0}")]
    Unavailable(String),
    /// The window's market has no known resolution, so it is not offered (a backtest
    /// settling from recorded results never guesses one).
    #[error("{0}")]
    NoOutcome(String),
}

impl VenueError {
    /// The reason code a window gets when its quote fails with this error.
    pub fn code(&self) -> &'static str {
        match self {
            VenueError::Rejected(_) | VenueError::Unavailable(_) => "no_quote",
            VenueError::NoOutcome(_) => "no_outcome",
        }
    }
}

/// What a venue's `resolve` returning `Ok(None)` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingResolution {
    /// The outcome will never be known (replay: the window's candles are missing): the
    /// position is settled as void and its stake refunded.
    Void,
    /// Not known yet (paper and live: Polymarket resolves some time after the window
    /// ends): the position stays open and `resolve` is asked again at later polls, at
    /// least this many session seconds apart; [`VenueError::Unavailable`] is taken as "not
    /// yet" too. Such a venue ends the wait itself (the paper venue falls back to price data
    /// after its own timeout) by returning an outcome, or [`VenueError::NoOutcome`] (void).
    RetryAfter(i64),
}

/// The boundary between the session and a market, shared by replay, paper and live.
pub trait Venue {
    /// The quote for `window` at decision time.
    fn quote(&mut self, window: &Window) -> Result<Quote, VenueError>;
    /// Buy `stake`; the fill may be smaller but never at a worse price than `stake.price()`.
    fn execute(
        &mut self,
        window: &Window,
        stake: &Stake,
        quote: &Quote,
    ) -> Result<Fill, VenueError>;
    /// The outcome of `window`, if known yet; `history` holds the candles closed so far.
    /// What `Ok(None)` means is the venue's [`Venue::pending_resolution`].
    fn resolve(
        &mut self,
        window: &Window,
        history: &[Candle],
    ) -> Result<Option<Resolution>, VenueError>;

    /// Whether `resolve` returning `Ok(None)` means "void" (the default, replay venues) or
    /// "not known yet, ask again" (paper and live venues).
    fn pending_resolution(&self) -> PendingResolution {
        PendingResolution::Void
    }

    /// An entry this venue already made for `window` that the session has not recorded:
    /// the process died between the order and the decision's commit. The session records
    /// it as the window's position instead of deciding the window again. Only the live
    /// venue, which keeps its own order records, has any (default: none).
    fn recovered_fill(&mut self, _window: &Window) -> Result<Option<Fill>, VenueError> {
        Ok(None)
    }
}

impl<V: Venue + ?Sized> Venue for Box<V> {
    fn quote(&mut self, window: &Window) -> Result<Quote, VenueError> {
        (**self).quote(window)
    }
    fn execute(
        &mut self,
        window: &Window,
        stake: &Stake,
        quote: &Quote,
    ) -> Result<Fill, VenueError> {
        (**self).execute(window, stake, quote)
    }
    fn resolve(
        &mut self,
        window: &Window,
        history: &[Candle],
    ) -> Result<Option<Resolution>, VenueError> {
        (**self).resolve(window, history)
    }
    fn pending_resolution(&self) -> PendingResolution {
        (**self).pending_resolution()
    }
    fn recovered_fill(&mut self, window: &Window) -> Result<Option<Fill>, VenueError> {
        (**self).recovered_fill(window)
    }
}

/// Polymarket's taker fee in USD for buying `shares` at `price`: `shares × rate × p × (1 − p)`,
/// rounded to 5 decimals as the venue does.
pub fn fee(shares: Decimal, price: Decimal, rate: Decimal) -> Decimal {
    (shares * rate * price * (Decimal::ONE - price))
        .round_dp_with_strategy(5, RoundingStrategy::MidpointAwayFromZero)
}

/// Outcome of `window` from 1m price data: Up when the close of its last candle is ≥ the
/// open of its first (ties go to Up, as on Polymarket). `None` if either candle is missing.
pub fn resolve_from_candles(window: &Window, history: &[Candle]) -> Option<Side> {
    let first = history.partition_point(|c| c.open_time < window.start);
    let open = history
        .get(first)
        .filter(|c| c.open_time == window.start)?
        .open;
    let last_open = window.end - crate::feed::CANDLE_SECS;
    let idx = history.partition_point(|c| c.open_time < last_open);
    let close = history.get(idx).filter(|c| c.open_time == last_open)?.close;
    Some(if close >= open { Side::Up } else { Side::Down })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn fee_matches_polymarkets_worked_numbers() {
        // Published at rate 0.07: fee per share 0.0175 at p = 0.50, 0.0168 at 0.40, 0.0147 at 0.30.
        assert_eq!(fee(dec!(1), dec!(0.50), dec!(0.07)), dec!(0.0175));
        assert_eq!(fee(dec!(1), dec!(0.40), dec!(0.07)), dec!(0.0168));
        assert_eq!(fee(dec!(1), dec!(0.30), dec!(0.07)), dec!(0.0147));
        assert_eq!(fee(dec!(100), dec!(0.70), dec!(0.07)), dec!(1.47));
    }

    fn c(t: i64, open: f64, close: f64) -> Candle {
        Candle {
            open_time: t,
            open,
            high: open.max(close),
            low: open.min(close),
            close,
            volume: 1.0,
        }
    }

    #[test]
    fn price_data_settlement_uses_first_open_and_last_close_and_ties_go_up() {
        let w = Window::new(300, 300, 0);
        let mut h: Vec<Candle> = (0..12).map(|i| c(i * 60, 100.0, 100.0)).collect();
        assert_eq!(resolve_from_candles(&w, &h), Some(Side::Up)); // tie
        h[5].open = 101.0; // first candle of the window opens higher
        assert_eq!(resolve_from_candles(&w, &h), Some(Side::Down));
        h[9].close = 101.0; // last candle closes back at the open
        assert_eq!(resolve_from_candles(&w, &h), Some(Side::Up));
        h[10].close = 50.0; // after the window: irrelevant
        assert_eq!(resolve_from_candles(&w, &h), Some(Side::Up));
        h.remove(9);
        assert_eq!(resolve_from_candles(&w, &h), None);
    }
}
