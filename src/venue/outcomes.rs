//! The outcomes venue: the replay venue's quotes, fills and fees, settled from Polymarket's
//! recorded resolutions instead of price data.
//!
//! A window whose market has no known resolution in the file (no row, or a market that was
//! not resolved when recorded) is not offered: its quote fails with
//! [`VenueError::NoOutcome`], which the session journals as a `no_outcome` skip at decision
//! time. That uses only the existence of a resolution, never its value, so it is not price
//! information; the value is read only when the window is settled, after it ended.

use super::{Fill, Quote, ReplayVenue, Resolution, SettledBy, Venue, VenueError};
use crate::config::ReplayConfig;
use crate::domain::Window;
use crate::feed::{Candle, Lookup, Outcomes};
use crate::risk::Stake;
use std::sync::Arc;

/// Replay quotes and fills; settlement from an outcomes file. Owned by the session.
#[derive(Clone, Debug)]
pub struct OutcomesVenue {
    replay: ReplayVenue,
    outcomes: Arc<Outcomes>,
}

impl OutcomesVenue {
    /// A venue quoting from `config` and settling from `outcomes`.
    pub fn new(config: &ReplayConfig, outcomes: Arc<Outcomes>) -> Self {
        OutcomesVenue {
            replay: ReplayVenue::new(config),
            outcomes,
        }
    }
}

impl Venue for OutcomesVenue {
    fn quote(&mut self, window: &Window) -> Result<Quote, VenueError> {
        match self.outcomes.lookup(window.start) {
            Lookup::Resolved(_) | Lookup::Withheld => self.replay.quote(window),
            Lookup::Unresolved(price) => Err(VenueError::NoOutcome(format!(
                "{} is not resolved in {} (yes_price {price}); not traded, not guessed",
                window.slug,
                self.outcomes.path.display()
            ))),
            Lookup::Missing => Err(VenueError::NoOutcome(format!(
                "{} has no row in {}; not traded, not guessed",
                window.slug,
                self.outcomes.path.display()
            ))),
        }
    }

    fn execute(
        &mut self,
        window: &Window,
        stake: &Stake,
        quote: &Quote,
    ) -> Result<Fill, VenueError> {
        self.replay.execute(window, stake, quote)
    }

    fn resolve(
        &mut self,
        window: &Window,
        _history: &[Candle],
    ) -> Result<Option<Resolution>, VenueError> {
        Ok(match self.outcomes.lookup(window.start) {
            Lookup::Resolved(outcome) => Some(Resolution {
                outcome,
                settled_by: SettledBy::Polymarket,
            }),
            Lookup::Withheld | Lookup::Unresolved(_) | Lookup::Missing => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Side;
    use crate::feed::outcomes::parse_outcomes;
    use std::path::Path;

    #[test]
    fn settles_from_the_file_and_refuses_unknown_markets_at_quote_time() {
        let o = parse_outcomes(
            Path::new("o.csv"),
            "timestamp,slug,yes_price,clob_token_id\n\
             600,btc-updown-5m-600,0.0,1\n900,btc-updown-5m-900,0.5,2\n",
            300,
        )
        .unwrap();
        let mut v = OutcomesVenue::new(&ReplayConfig::default(), Arc::new(o));
        let known = Window::new(600, 300, 0);
        assert!(v.quote(&known).is_ok());
        let r = v.resolve(&known, &[]).unwrap().unwrap();
        assert_eq!(
            (r.outcome, r.settled_by),
            (Side::Down, SettledBy::Polymarket)
        );
        for start in [300, 900] {
            let e = v.quote(&Window::new(start, 300, 1)).unwrap_err();
            assert_eq!(e.code(), "no_outcome", "{e}");
            assert_eq!(v.resolve(&Window::new(start, 300, 1), &[]).unwrap(), None);
        }
    }
}
