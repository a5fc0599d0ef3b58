//! The account's books: cash, open stakes, streaks and drawdown, in exact decimals.
//!
//! Owned by the session and saved whole in the ledger after every change, so a restart
//! resumes with exactly the numbers it stopped with. It sits low in the crate, beside the
//! domain types, because the risk gate, the script host (which turns it into the scripts'
//! read-only `AccountView`), the ledger and the session all read it.

use crate::domain::Fill;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Seconds in a UTC day, for the daily loss limit.
const DAY: i64 = 86_400;

/// The account state of one session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Capital at session start.
    pub starting_capital: Decimal,
    /// Cash not committed to positions.
    pub cash: Decimal,
    /// Stakes of positions not yet settled.
    pub open_cost: Decimal,
    /// Highest equity seen.
    pub peak_equity: Decimal,
    /// Largest fall from a peak so far, percent.
    pub max_drawdown_pct: Decimal,
    /// Consecutive wins up to the last settlement.
    pub win_streak: u32,
    /// Consecutive losses up to the last settlement.
    pub loss_streak: u32,
    /// Settled trades.
    pub trades: u32,
    /// Winning trades.
    pub wins: u32,
    /// Losing trades.
    pub losses: u32,
    /// Whether the last settled trade won.
    pub last_result: Option<bool>,
    /// Script failures in a row (reset by any good call).
    pub consecutive_script_failures: u32,
    /// Fees paid so far, USD.
    pub fees_paid: Decimal,
    /// UTC day index of `day_pnl`.
    pub day: i64,
    /// Realised P&L of that day.
    pub day_pnl: Decimal,
}

impl Account {
    /// A fresh account holding `capital` in cash.
    pub fn new(capital: Decimal) -> Self {
        Account {
            starting_capital: capital,
            cash: capital,
            open_cost: Decimal::ZERO,
            peak_equity: capital,
            max_drawdown_pct: Decimal::ZERO,
            win_streak: 0,
            loss_streak: 0,
            trades: 0,
            wins: 0,
            losses: 0,
            last_result: None,
            consecutive_script_failures: 0,
            fees_paid: Decimal::ZERO,
            day: 0,
            day_pnl: Decimal::ZERO,
        }
    }

    /// Cash plus open positions at cost.
    pub fn equity(&self) -> Decimal {
        self.cash + self.open_cost
    }

    /// Book an entry.
    pub fn open(&mut self, fill: &Fill) {
        self.cash -= fill.stake;
        self.open_cost += fill.stake;
        self.fees_paid += fill.fee;
    }

    /// Book a settlement at time `at`; returns the trade's P&L.
    pub fn settle(&mut self, fill: &Fill, won: bool, at: i64) -> Decimal {
        self.open_cost -= fill.stake;
        let payout = if won { fill.shares } else { Decimal::ZERO };
        self.cash += payout;
        let pnl = payout - fill.stake;
        self.trades += 1;
        if won {
            self.wins += 1;
            self.win_streak += 1;
            self.loss_streak = 0;
        } else {
            self.losses += 1;
            self.loss_streak += 1;
            self.win_streak = 0;
        }
        self.last_result = Some(won);
        let day = at.div_euclid(DAY);
        if day != self.day {
            self.day = day;
            self.day_pnl = Decimal::ZERO;
        }
        self.day_pnl += pnl;
        self.mark();
        pnl
    }

    /// Update peak and drawdown from the current equity.
    pub fn mark(&mut self) {
        let eq = self.equity();
        if eq > self.peak_equity {
            self.peak_equity = eq;
        }
        if self.peak_equity > Decimal::ZERO {
            let dd = (self.peak_equity - eq) / self.peak_equity * Decimal::ONE_HUNDRED;
            if dd > self.max_drawdown_pct {
                self.max_drawdown_pct = dd.round_dp(4);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Side;
    use rust_decimal_macros::dec;

    fn fill(stake: Decimal, shares: Decimal) -> Fill {
        Fill {
            window_start: 0,
            side: Side::Up,
            stake,
            price: dec!(0.51),
            shares,
            fee: dec!(0.1),
        }
    }

    #[test]
    fn win_pays_shares_loss_costs_the_stake_and_streaks_follow() {
        let mut a = Account::new(dec!(100));
        let f = fill(dec!(5), dec!(9.7));
        a.open(&f);
        assert_eq!(a.cash, dec!(95));
        assert_eq!(a.equity(), dec!(100));
        assert_eq!(a.settle(&f, true, 0), dec!(4.7));
        assert_eq!(a.equity(), dec!(104.7));
        assert_eq!((a.win_streak, a.loss_streak), (1, 0));
        a.open(&f);
        assert_eq!(a.settle(&f, false, 60), dec!(-5));
        assert_eq!(
            (a.win_streak, a.loss_streak, a.trades, a.wins, a.losses),
            (0, 1, 2, 1, 1)
        );
        assert_eq!(a.peak_equity, dec!(104.7));
        assert_eq!(a.max_drawdown_pct, dec!(4.7755)); // 5 / 104.7
        assert_eq!(a.fees_paid, dec!(0.2));
    }

    #[test]
    fn daily_pnl_resets_at_utc_midnight() {
        let mut a = Account::new(dec!(100));
        let f = fill(dec!(5), dec!(9.7));
        a.open(&f);
        a.settle(&f, false, 86_399);
        assert_eq!(a.day_pnl, dec!(-5));
        a.open(&f);
        a.settle(&f, false, 86_400);
        assert_eq!(a.day_pnl, dec!(-5));
    }
}
