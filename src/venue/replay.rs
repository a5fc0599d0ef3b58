//! The replay venue: a configurable quote model, Polymarket's fee, and settlement from the
//! recorded price data.
//!
//! With no recorded order books, every window is quoted the same (default: ask 0.51 for
//! either side), which is honest about the one thing we know: buying either side costs more
//! than a fair coin. Fills are at the quoted ask, in shares rounded down to the venue's
//! 6-decimal precision, less the fee taken in shares.

use super::{
    BookTop, Fill, Quote, Resolution, SettledBy, Venue, VenueError, fee, resolve_from_candles,
};
use crate::config::ReplayConfig;
use crate::domain::Window;
use crate::feed::Candle;
use crate::risk::Stake;
use rust_decimal::{Decimal, RoundingStrategy};

/// Depth the quote model pretends is available at the top of each book, in shares; large
/// enough that a capped stake always fills at the ask.
const MODEL_DEPTH: u32 = 10_000;

/// Replay venue state; owned by the session.
#[derive(Clone, Debug)]
pub struct ReplayVenue {
    config: ReplayConfig,
}

impl ReplayVenue {
    /// A venue quoting from `config`.
    pub fn new(config: &ReplayConfig) -> Self {
        ReplayVenue {
            config: config.clone(),
        }
    }
}

impl Venue for ReplayVenue {
    fn quote(&mut self, _window: &Window) -> Result<Quote, VenueError> {
        let top = BookTop {
            bid: self.config.bid,
            ask: self.config.ask,
            ask_depth: Decimal::from(MODEL_DEPTH),
            bid_depth: Decimal::from(MODEL_DEPTH),
        };
        Ok(Quote {
            up: top.clone(),
            down: top,
            fee_rate: self.config.fee_rate,
            tick_size: self.config.tick_size,
            min_order_shares: self.config.min_order_shares,
        })
    }

    fn execute(
        &mut self,
        window: &Window,
        stake: &Stake,
        quote: &Quote,
    ) -> Result<Fill, VenueError> {
        let price = quote.side(stake.side()).ask;
        if price > stake.price() {
            return Err(VenueError::Rejected(format!(
                "ask {price} is above the approved limit {}",
                stake.price()
            )));
        }
        let gross = (stake.usd() / price).round_dp_with_strategy(6, RoundingStrategy::ToZero);
        let fee_usd = fee(gross, price, quote.fee_rate);
        let shares = (gross - fee_usd / price).round_dp_with_strategy(6, RoundingStrategy::ToZero);
        Ok(Fill {
            window_start: window.start,
            side: stake.side(),
            stake: stake.usd(),
            price,
            shares,
            fee: fee_usd,
        })
    }

    fn resolve(
        &mut self,
        window: &Window,
        history: &[Candle],
    ) -> Result<Option<Resolution>, VenueError> {
        Ok(
            resolve_from_candles(window, history).map(|outcome| Resolution {
                outcome,
                settled_by: SettledBy::PriceData,
            }),
        )
    }
}
