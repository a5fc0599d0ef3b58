//! The risk gate: the one door every order passes, with hard limits scripts cannot touch.
//!
//! A strategy can only *ask* (a side and a [`StakeAsk`]); the gate answers with a
//! [`Verdict`]. Only an approved [`Stake`] can be built outside this module's checks, and the
//! venue only executes a `Stake`, so no path reaches execution around the gate. Every
//! refusal carries a stable [`ReasonCode`] for the journal. Limits come from `[risk]` in the
//! config; the latching of halts after settlement lives here too ([`RiskGate::halt_after`]).

use crate::config::RiskConfig;
use crate::domain::{Side, StakeAsk};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use rust_decimal_macros::dec;
use std::fmt;

/// Why the gate refused, as a stable code for journals and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    /// Trading is halted (latched) until `updown reset-halt`.
    Halted,
    /// An earlier position's window is still running and overlap is not allowed.
    PositionOpen,
    /// The newest price is older than `risk.max_price_age_secs`, there is none, or the live
    /// feed says its data is stale.
    StaleData,
    /// High–low range over the look-back exceeds `risk.max_range_pct`.
    VolatilityRange,
    /// Recent standard deviation exceeds `risk.max_stddev_ratio` × the session baseline.
    VolatilityStddev,
    /// Fewer than `risk.min_seconds_to_close` seconds left.
    TooCloseToClose,
    /// The side's spread is wider than `risk.max_spread`.
    SpreadTooWide,
    /// The side's ask is above `risk.max_entry_price`.
    EntryPriceTooHigh,
    /// The stake asked is not a finite, non-negative number.
    InvalidStake,
    /// The stake asked (or left after limits) is zero.
    ZeroStake,
    /// The stake is below the venue's minimum order (min shares × price).
    BelowMinOrder,
    /// Losing any stake would take equity below the drawdown floor.
    DrawdownFloor,
}

impl ReasonCode {
    /// The code as written in journals.
    pub fn code(self) -> &'static str {
        match self {
            ReasonCode::Halted => "halted",
            ReasonCode::PositionOpen => "position_open",
            ReasonCode::StaleData => "stale_data",
            ReasonCode::VolatilityRange => "volatility_range",
            ReasonCode::VolatilityStddev => "volatility_stddev",
            ReasonCode::TooCloseToClose => "too_close_to_close",
            ReasonCode::SpreadTooWide => "spread_too_wide",
            ReasonCode::EntryPriceTooHigh => "entry_price_too_high",
            ReasonCode::InvalidStake => "invalid_stake",
            ReasonCode::ZeroStake => "zero_stake",
            ReasonCode::BelowMinOrder => "below_min_order",
            ReasonCode::DrawdownFloor => "drawdown_floor",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A refusal: the code and a sentence with the numbers that decided it.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// Stable code.
    pub code: ReasonCode,
    /// For people.
    pub detail: String,
}

/// An approved stake. Only the gate builds one, so holding a `Stake` proves the checks ran.
#[derive(Clone, Debug, PartialEq)]
pub struct Stake {
    side: Side,
    usd: Decimal,
    price: Decimal,
    adjustments: Vec<&'static str>,
}

impl Stake {
    /// The side to buy.
    pub fn side(&self) -> Side {
        self.side
    }
    /// USD to spend, rounded down to cents.
    pub fn usd(&self) -> Decimal {
        self.usd
    }
    /// The limit price (the ask the gate checked).
    pub fn price(&self) -> Decimal {
        self.price
    }
    /// Limits that reduced the ask, e.g. `clamped_to_max_stake`.
    pub fn adjustments(&self) -> &[&'static str] {
        &self.adjustments
    }
}

/// The gate's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Go, with this stake.
    Approved(Stake),
    /// No, and why.
    Refused(Refusal),
}

/// The quote the gate judges an entry against.
#[derive(Clone, Debug, PartialEq)]
pub struct SideQuote {
    /// Best ask of the side to buy.
    pub ask: Decimal,
    /// Best bid of the same side.
    pub bid: Decimal,
    /// Venue minimum, shares.
    pub min_order_shares: Decimal,
}

/// How fresh and calm the price data is at decision time.
#[derive(Clone, Debug, PartialEq)]
pub struct DataHealth {
    /// Seconds since the newest accepted price; `None` when there is none.
    pub price_age_secs: Option<i64>,
    /// High–low range over `risk.vol_range_minutes`, percent of price.
    pub range_pct: Option<f64>,
    /// Standard deviation of the last `risk.stddev_window` closes.
    pub stddev: Option<f64>,
    /// The session's baseline for that standard deviation.
    pub stddev_baseline: Option<f64>,
    /// Why the feed cannot vouch for its data now (a live stream that went silent or is
    /// catching up after a reconnect); `None` when it can, and always for recorded data.
    pub feed_stale: Option<String>,
}

/// Everything one check needs.
#[derive(Clone, Debug)]
pub struct GateInput {
    /// Side asked for.
    pub side: Side,
    /// Stake asked for.
    pub ask: StakeAsk,
    /// Quote for that side.
    pub quote: SideQuote,
    /// Equity now.
    pub equity: Decimal,
    /// Cash now.
    pub cash: Decimal,
    /// Positions whose window is still running (ended windows awaiting resolution excluded).
    pub open_positions: usize,
    /// Whether overlap is allowed.
    pub allow_overlap: bool,
    /// Whether a halt is latched.
    pub halted: bool,
    /// Data freshness and volatility.
    pub data: DataHealth,
    /// Seconds left in the window.
    pub seconds_to_close: i64,
}

/// A latched halt, as the ledger keeps it: the gate's reason code, its details and when.
/// Defined here, with the reasons, so that whoever latches one (the session, the live venue)
/// and the ledger that stores it share it without depending on each other.
#[derive(Clone, Debug, PartialEq)]
pub struct Halt {
    /// Why (stored and shown as [`HaltReason::code`]).
    pub reason: HaltReason,
    /// Details for people.
    pub detail: String,
    /// When it latched, Unix seconds (session time).
    pub at: i64,
}

/// Why trading halted; latched in the ledger until `updown reset-halt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaltReason {
    /// Equity fell `risk.max_drawdown_pct` below starting capital.
    Drawdown,
    /// `risk.max_consecutive_script_failures` failures in a row.
    ScriptFailures,
    /// `risk.max_failed_executions` within the window.
    FailedExecutions,
    /// The day's realised loss reached `risk.daily_loss_limit`.
    DailyLoss,
    /// The venue refused our credentials.
    Auth,
    /// An order's fate could not be learnt from the venue: nothing more is sent until a
    /// person looks.
    OrderUnknown,
    /// The venue refused an order for want of balance or allowance.
    VenueBalance,
}

impl HaltReason {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            HaltReason::Drawdown => "max_drawdown",
            HaltReason::ScriptFailures => "script_failures",
            HaltReason::FailedExecutions => "failed_executions",
            HaltReason::DailyLoss => "daily_loss_limit",
            HaltReason::Auth => "venue_auth",
            HaltReason::OrderUnknown => "order_unknown",
            HaltReason::VenueBalance => "venue_balance",
        }
    }

    /// The reason stored as `code` by [`HaltReason::code`].
    pub fn parse(code: &str) -> Option<HaltReason> {
        [
            HaltReason::Drawdown,
            HaltReason::ScriptFailures,
            HaltReason::FailedExecutions,
            HaltReason::DailyLoss,
            HaltReason::Auth,
            HaltReason::OrderUnknown,
            HaltReason::VenueBalance,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }
}

impl std::fmt::Display for HaltReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// The gate. Built once per session from the config; holds no mutable state.
#[derive(Clone, Debug)]
pub struct RiskGate {
    limits: RiskConfig,
    starting_capital: Decimal,
}

impl RiskGate {
    /// A gate enforcing `limits` for an account that started with `starting_capital`.
    pub fn new(limits: &RiskConfig, starting_capital: Decimal) -> Self {
        RiskGate {
            limits: limits.clone(),
            starting_capital,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &RiskConfig {
        &self.limits
    }

    /// Equity below which trading halts: capital × (1 − max drawdown).
    pub fn floor(&self) -> Decimal {
        self.starting_capital * (dec!(1) - self.limits.max_drawdown_pct / dec!(100))
    }

    /// Judge one entry.
    pub fn check(&self, input: &GateInput) -> Verdict {
        match self.judge(input) {
            Ok(stake) => Verdict::Approved(stake),
            Err(refusal) => Verdict::Refused(refusal),
        }
    }

    fn judge(&self, i: &GateInput) -> Result<Stake, Refusal> {
        let l = &self.limits;
        let refuse = |code, detail: String| Err(Refusal { code, detail });
        if i.halted {
            return refuse(
                ReasonCode::Halted,
                "trading is halted; see `updown status`".into(),
            );
        }
        if i.open_positions > 0 && !i.allow_overlap {
            return refuse(
                ReasonCode::PositionOpen,
                format!(
                    "{} position(s) in a running window and session.allow_overlap = false",
                    i.open_positions
                ),
            );
        }
        if let Some(why) = &i.data.feed_stale {
            return refuse(ReasonCode::StaleData, format!("feed stale: {why}"));
        }
        match i.data.price_age_secs {
            None => return refuse(ReasonCode::StaleData, "no price yet".into()),
            Some(age) if age > l.max_price_age_secs => {
                return refuse(
                    ReasonCode::StaleData,
                    format!(
                        "newest price is {age}s old (limit {}s)",
                        l.max_price_age_secs
                    ),
                );
            }
            Some(_) => {}
        }
        if let Some(r) = i.data.range_pct
            && r > l.max_range_pct
        {
            return refuse(
                ReasonCode::VolatilityRange,
                format!(
                    "{}m range {r:.2}% > {}%",
                    l.vol_range_minutes, l.max_range_pct
                ),
            );
        }
        if let (Some(sd), Some(base)) = (i.data.stddev, i.data.stddev_baseline)
            && base > 0.0
            && sd > l.max_stddev_ratio * base
        {
            return refuse(
                ReasonCode::VolatilityStddev,
                format!(
                    "stddev {sd:.2} > {}× baseline {base:.2}",
                    l.max_stddev_ratio
                ),
            );
        }
        if i.seconds_to_close < l.min_seconds_to_close {
            return refuse(
                ReasonCode::TooCloseToClose,
                format!(
                    "{}s to close < {}s",
                    i.seconds_to_close, l.min_seconds_to_close
                ),
            );
        }
        let spread = i.quote.ask - i.quote.bid;
        if spread > l.max_spread {
            return refuse(
                ReasonCode::SpreadTooWide,
                format!("spread {spread} > {}", l.max_spread),
            );
        }
        if i.quote.ask > l.max_entry_price || i.quote.ask <= dec!(0) {
            return refuse(
                ReasonCode::EntryPriceTooHigh,
                format!("ask {} outside (0, {}]", i.quote.ask, l.max_entry_price),
            );
        }

        let asked = match &i.ask {
            StakeAsk::Invalid(t) => {
                return refuse(
                    ReasonCode::InvalidStake,
                    format!("stake must be a number, got {t}"),
                );
            }
            StakeAsk::Usd(x) if !x.is_finite() || *x < 0.0 => {
                return refuse(
                    ReasonCode::InvalidStake,
                    format!("stake must be finite and ≥ 0, got {x}"),
                );
            }
            StakeAsk::Usd(x) => *x,
        };
        let mut adjustments = Vec::new();
        // Anything at or above the cap (including values too big for a Decimal) is the cap.
        let mut usd = if asked >= l.max_stake.to_f64().unwrap_or(f64::MAX) {
            if Decimal::from_f64(asked) != Some(l.max_stake) {
                adjustments.push("clamped_to_max_stake");
            }
            l.max_stake
        } else {
            Decimal::from_f64(asked).unwrap_or(Decimal::ZERO)
        };
        if usd > i.cash {
            usd = i.cash.max(Decimal::ZERO);
            adjustments.push("clamped_to_cash");
        }
        // Worst case every open position loses too: equity falls to cash, so the room for a
        // new stake is what cash has above the floor.
        let room = i.cash.min(i.equity) - self.floor();
        if room <= Decimal::ZERO {
            return refuse(
                ReasonCode::DrawdownFloor,
                format!(
                    "equity {} is at the drawdown floor {}",
                    i.equity,
                    self.floor()
                ),
            );
        }
        if usd > room {
            usd = room;
            adjustments.push("reduced_to_drawdown_floor");
        }
        usd = usd.round_dp_with_strategy(2, RoundingStrategy::ToZero);
        let min_usd = i.quote.min_order_shares * i.quote.ask;
        if adjustments.contains(&"reduced_to_drawdown_floor") && usd < min_usd.max(dec!(0.01)) {
            return refuse(
                ReasonCode::DrawdownFloor,
                format!(
                    "only ${} of equity above the drawdown floor {}: less than the minimum order ${min_usd}",
                    room.round_dp(2),
                    self.floor()
                ),
            );
        }
        if usd <= Decimal::ZERO {
            return refuse(
                ReasonCode::ZeroStake,
                format!("stake {asked} leaves nothing to trade after limits"),
            );
        }
        if usd < min_usd {
            return refuse(
                ReasonCode::BelowMinOrder,
                format!(
                    "stake ${usd} < minimum order {} shares × {} = ${min_usd}",
                    i.quote.min_order_shares, i.quote.ask
                ),
            );
        }
        Ok(Stake {
            side: i.side,
            usd,
            price: i.quote.ask,
            adjustments,
        })
    }

    /// After a settlement: the halt to latch, if any. `day_pnl` is the UTC day's realised P&L.
    pub fn halt_after(&self, equity: Decimal, day_pnl: Decimal) -> Option<(HaltReason, String)> {
        if equity < self.floor() {
            return Some((
                HaltReason::Drawdown,
                format!(
                    "equity {equity} fell below {} ({}% under starting capital {})",
                    self.floor(),
                    self.limits.max_drawdown_pct,
                    self.starting_capital
                ),
            ));
        }
        if -day_pnl >= self.limits.daily_loss_limit {
            return Some((
                HaltReason::DailyLoss,
                format!(
                    "today's realised loss {} reached the limit {}",
                    -day_pnl, self.limits.daily_loss_limit
                ),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> RiskGate {
        RiskGate::new(&RiskConfig::default(), dec!(100))
    }

    fn input(ask: StakeAsk) -> GateInput {
        GateInput {
            side: Side::Up,
            ask,
            quote: SideQuote {
                ask: dec!(0.51),
                bid: dec!(0.49),
                min_order_shares: dec!(5),
            },
            equity: dec!(100),
            cash: dec!(100),
            open_positions: 0,
            allow_overlap: false,
            halted: false,
            data: DataHealth {
                price_age_secs: Some(0),
                range_pct: Some(0.5),
                stddev: Some(10.0),
                stddev_baseline: Some(10.0),
                feed_stale: None,
            },
            seconds_to_close: 300,
        }
    }

    fn refused(v: Verdict) -> ReasonCode {
        match v {
            Verdict::Refused(r) => r.code,
            Verdict::Approved(s) => panic!("expected a refusal, got {s:?}"),
        }
    }

    fn approved(v: Verdict) -> Stake {
        match v {
            Verdict::Approved(s) => s,
            Verdict::Refused(r) => panic!("expected approval, got {r:?}"),
        }
    }

    #[test]
    fn absurd_stake_is_clamped_to_the_cap() {
        let s = approved(gate().check(&input(StakeAsk::Usd(1e9))));
        assert_eq!(s.usd(), dec!(25));
        assert_eq!(s.adjustments(), ["clamped_to_max_stake"]);
        let s = approved(gate().check(&input(StakeAsk::Usd(1e300))));
        assert_eq!(s.usd(), dec!(25));
        // Exactly the cap is not an adjustment; a cent under is kept as asked.
        let s = approved(gate().check(&input(StakeAsk::Usd(25.0))));
        assert!(s.adjustments().is_empty());
        assert_eq!(
            approved(gate().check(&input(StakeAsk::Usd(24.99)))).usd(),
            dec!(24.99)
        );
    }

    #[test]
    fn nan_negative_infinite_and_non_numeric_stakes_are_refused() {
        for bad in [f64::NAN, -1.0, -0.01, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(
                refused(gate().check(&input(StakeAsk::Usd(bad)))),
                ReasonCode::InvalidStake,
                "{bad}"
            );
        }
        assert_eq!(
            refused(gate().check(&input(StakeAsk::Invalid("string".into())))),
            ReasonCode::InvalidStake
        );
        assert_eq!(
            refused(gate().check(&input(StakeAsk::Usd(0.0)))),
            ReasonCode::ZeroStake
        );
    }

    #[test]
    fn stakes_round_down_to_cents_and_respect_the_minimum_order() {
        assert_eq!(
            approved(gate().check(&input(StakeAsk::Usd(7.999)))).usd(),
            dec!(7.99)
        );
        // 5 shares × 0.51 = 2.55 is the smallest order.
        assert_eq!(
            approved(gate().check(&input(StakeAsk::Usd(2.55)))).usd(),
            dec!(2.55)
        );
        assert_eq!(
            refused(gate().check(&input(StakeAsk::Usd(2.549)))),
            ReasonCode::BelowMinOrder
        );
    }

    #[test]
    fn stake_never_exceeds_cash() {
        let mut i = input(StakeAsk::Usd(20.0));
        i.cash = dec!(12.345);
        // No drawdown floor, so only cash limits the stake.
        let limits = RiskConfig {
            max_drawdown_pct: dec!(100),
            ..RiskConfig::default()
        };
        let s = approved(RiskGate::new(&limits, dec!(100)).check(&i));
        assert_eq!(s.usd(), dec!(12.34));
        assert!(s.adjustments().contains(&"clamped_to_cash"));
    }

    #[test]
    fn stake_is_reduced_so_a_loss_cannot_cross_the_drawdown_floor() {
        let mut i = input(StakeAsk::Usd(25.0));
        i.equity = dec!(80);
        i.cash = dec!(80);
        let s = approved(gate().check(&i));
        assert_eq!(s.usd(), dec!(10)); // floor is 70
        i.equity = dec!(70);
        assert_eq!(refused(gate().check(&i)), ReasonCode::DrawdownFloor);
        i.equity = dec!(72);
        // Only $2 of room: below the $2.55 minimum order, because of the floor.
        assert_eq!(refused(gate().check(&i)), ReasonCode::DrawdownFloor);
        i.equity = dec!(72.55);
        assert_eq!(approved(gate().check(&i)).usd(), dec!(2.55));
    }

    #[test]
    fn open_positions_count_against_the_drawdown_floor() {
        // $80 equity of which $6 is an open stake: if it loses, $74 remain, so only $4 of
        // room above the $70 floor is left for a new position.
        let mut i = input(StakeAsk::Usd(25.0));
        i.allow_overlap = true;
        i.open_positions = 1;
        i.equity = dec!(80);
        i.cash = dec!(74);
        let s = approved(gate().check(&i));
        assert_eq!(s.usd(), dec!(4));
        assert!(s.adjustments().contains(&"reduced_to_drawdown_floor"));
    }

    #[test]
    fn each_market_and_data_rule_refuses_at_its_boundary() {
        let g = gate();
        let ok = |i: &GateInput| matches!(g.check(i), Verdict::Approved(_));
        let mut i = input(StakeAsk::Usd(5.0));
        i.data.price_age_secs = Some(90);
        assert!(ok(&i));
        i.data.price_age_secs = Some(91);
        assert_eq!(refused(g.check(&i)), ReasonCode::StaleData);
        i.data.price_age_secs = None;
        assert_eq!(refused(g.check(&i)), ReasonCode::StaleData);
        let mut i = input(StakeAsk::Usd(5.0));
        i.data.feed_stale = Some("Binance stream silent for 12.0s".into());
        assert_eq!(refused(g.check(&i)), ReasonCode::StaleData);

        let mut i = input(StakeAsk::Usd(5.0));
        i.data.range_pct = Some(3.0);
        assert!(ok(&i));
        i.data.range_pct = Some(3.0001);
        assert_eq!(refused(g.check(&i)), ReasonCode::VolatilityRange);

        let mut i = input(StakeAsk::Usd(5.0));
        i.data.stddev = Some(20.0);
        assert!(ok(&i));
        i.data.stddev = Some(20.01);
        assert_eq!(refused(g.check(&i)), ReasonCode::VolatilityStddev);

        let mut i = input(StakeAsk::Usd(5.0));
        i.seconds_to_close = 30;
        assert!(ok(&i));
        i.seconds_to_close = 29;
        assert_eq!(refused(g.check(&i)), ReasonCode::TooCloseToClose);

        let mut i = input(StakeAsk::Usd(5.0));
        i.quote.bid = dec!(0.46); // spread 0.05 = limit
        assert!(ok(&i));
        i.quote.bid = dec!(0.45);
        assert_eq!(refused(g.check(&i)), ReasonCode::SpreadTooWide);

        let mut i = input(StakeAsk::Usd(5.0));
        i.quote.ask = dec!(0.65);
        i.quote.bid = dec!(0.64);
        assert!(ok(&i));
        i.quote.ask = dec!(0.66);
        i.quote.bid = dec!(0.65);
        assert_eq!(refused(g.check(&i)), ReasonCode::EntryPriceTooHigh);

        let mut i = input(StakeAsk::Usd(5.0));
        i.open_positions = 1;
        assert_eq!(refused(g.check(&i)), ReasonCode::PositionOpen);
        i.allow_overlap = true;
        assert!(ok(&i));

        let mut i = input(StakeAsk::Usd(5.0));
        i.halted = true;
        assert_eq!(refused(g.check(&i)), ReasonCode::Halted);
    }

    #[test]
    fn drawdown_and_daily_loss_halts_trigger_past_their_limits() {
        let g = gate();
        assert_eq!(g.halt_after(dec!(70), dec!(0)), None);
        assert_eq!(
            g.halt_after(dec!(69.99), dec!(0)).map(|h| h.0),
            Some(HaltReason::Drawdown)
        );
        assert_eq!(g.halt_after(dec!(90), dec!(-49.99)), None);
        assert_eq!(
            g.halt_after(dec!(90), dec!(-50)).map(|h| h.0),
            Some(HaltReason::DailyLoss)
        );
    }
}
