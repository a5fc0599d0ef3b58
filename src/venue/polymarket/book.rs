//! The local order book of one outcome token, built from CLOB snapshots and changes.
//!
//! Owns book state and the questions a venue asks of it: best levels, mid and spread, depth
//! near the top, imbalance, what a USD buy would fill level by level ([`OrderBook::walk_asks`]),
//! how old the data is, and the venue's [`BookTop`]. It does not decode (that is
//! [`super::clob`]), fetch, or decide whether to trade.
//!
//! Rules, each for a reason:
//! - Levels are sorted here, whatever order they arrived in: the REST `/book` answer lists
//!   asks descending (reference §3.1), so "first ask = best ask" would be wrong.
//! - A change's size is the new total at that price; `0` removes the level (reference §4.1).
//! - Every update is all-or-nothing: an invalid level, a message for another token or one
//!   older than the book leaves the book exactly as it was and returns an error.
//! - A crossed book (best bid ≥ best ask) means a message was missed; it is kept (the next
//!   snapshot fixes it) but every quoting method refuses it with [`BookError::Crossed`].
//! - Prices must be inside (0, 1) and sizes non-negative, both with at most 6 decimals
//!   (CTF token amounts and CLOB prices are 6-decimal fixed point, reference §3.7); this
//!   keeps every product in [`OrderBook::walk_asks`] exact.

use crate::venue::BookTop;
use crate::venue::polymarket::clob::{
    BookSnapshot, MarketEvent, OrderSide, PriceChangeEvent, PriceLevel, TickSizeChange,
};
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::BTreeMap;

/// Decimal places of share amounts and prices (6-decimal fixed point on chain).
pub const BOOK_DP: u32 = 6;

/// Largest size accepted for one level, in shares: far above any real book, low enough
/// that sums and products of sizes and prices stay exact in a `Decimal`.
const MAX_LEVEL_SIZE: Decimal = Decimal::from_parts(0xD4A5_1000, 0xE8, 0, false, 0);

/// Side of the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BookSide {
    /// Resting buy orders.
    Bid,
    /// Resting sell orders.
    Ask,
}

impl From<OrderSide> for BookSide {
    fn from(s: OrderSide) -> Self {
        match s {
            OrderSide::Buy => BookSide::Bid,
            OrderSide::Sell => BookSide::Ask,
        }
    }
}

/// Why the book refused an update or a question.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BookError {
    /// The message is for another token.
    #[error("book for {expected}: message is for asset {got}")]
    WrongAsset {
        /// This book's token.
        expected: String,
        /// The message's token.
        got: String,
    },
    /// A level with an impossible price or size.
    #[error("book {asset}: invalid {side:?} level {price} × {size}: {reason}")]
    InvalidLevel {
        /// This book's token.
        asset: String,
        /// Which side.
        side: BookSide,
        /// The price sent.
        price: Decimal,
        /// The size sent.
        size: Decimal,
        /// What is wrong.
        reason: &'static str,
    },
    /// The same price twice on one side of a snapshot.
    #[error("book {asset}: {side:?} price {price} appears twice in the snapshot")]
    DuplicateLevel {
        /// This book's token.
        asset: String,
        /// Which side.
        side: BookSide,
        /// The repeated price.
        price: Decimal,
    },
    /// A message older than what the book already reflects.
    #[error("book {asset}: message at {got_ms} ms is older than the book ({last_ms} ms)")]
    OutOfOrder {
        /// This book's token.
        asset: String,
        /// The book's last update.
        last_ms: i64,
        /// The message's time.
        got_ms: i64,
    },
    /// A change or a question before the first snapshot.
    #[error("book {asset}: no snapshot yet")]
    NoSnapshot {
        /// This book's token.
        asset: String,
    },
    /// Best bid ≥ best ask: a message was missed; resynchronise before quoting.
    #[error("book {asset}: crossed (bid {bid} ≥ ask {ask})")]
    Crossed {
        /// This book's token.
        asset: String,
        /// Best bid.
        bid: Decimal,
        /// Best ask.
        ask: Decimal,
    },
    /// One side is empty, so there is no top to quote.
    #[error("book {asset}: no {side:?} levels")]
    Empty {
        /// This book's token.
        asset: String,
        /// The empty side.
        side: BookSide,
    },
    /// A tick outside (0, 1).
    #[error("book {asset}: invalid tick size {tick}")]
    InvalidTick {
        /// This book's token.
        asset: String,
        /// The tick sent.
        tick: Decimal,
    },
    /// A question asked with an impossible argument (negative USD, cap outside (0, 1]).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// What buying up to a USD amount would take from the asks, level by level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    /// Shares filled (rounded down to [`BOOK_DP`] decimals at each level).
    pub shares: Decimal,
    /// USD spent: Σ price × shares over the levels; never above the amount asked.
    pub cost: Decimal,
    /// `cost / shares`; `None` when nothing fills.
    pub avg_price: Option<Decimal>,
    /// Levels consumed, best first: each price and the shares taken there.
    pub levels: Vec<PriceLevel>,
}

/// The book of one outcome token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderBook {
    asset_id: String,
    tick_size: Decimal,
    /// price → size; iterated in reverse for best-first.
    bids: BTreeMap<Decimal, Decimal>,
    /// price → size; iterated forward for best-first.
    asks: BTreeMap<Decimal, Decimal>,
    last_update_ms: Option<i64>,
    hash: Option<String>,
    has_snapshot: bool,
}

fn check_tick(asset: &str, tick: Decimal) -> Result<Decimal, BookError> {
    if tick > Decimal::ZERO && tick < Decimal::ONE {
        Ok(tick.normalize())
    } else {
        Err(BookError::InvalidTick {
            asset: asset.to_string(),
            tick,
        })
    }
}

impl OrderBook {
    /// An empty book for `asset_id` with the market's tick (from Gamma or `/book`).
    pub fn new(asset_id: impl Into<String>, tick_size: Decimal) -> Result<Self, BookError> {
        let asset_id = asset_id.into();
        let tick_size = check_tick(&asset_id, tick_size)?;
        Ok(OrderBook {
            asset_id,
            tick_size,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            last_update_ms: None,
            hash: None,
            has_snapshot: false,
        })
    }

    /// The token this book is for.
    pub fn asset_id(&self) -> &str {
        &self.asset_id
    }

    /// Current tick size.
    pub fn tick_size(&self) -> Decimal {
        self.tick_size
    }

    /// Server time of the last update applied, Unix ms.
    pub fn last_update_ms(&self) -> Option<i64> {
        self.last_update_ms
    }

    /// Hash sent with the last update, if any.
    pub fn hash(&self) -> Option<&str> {
        self.hash.as_deref()
    }

    /// Whether a snapshot has been applied (changes alone never make a book).
    pub fn has_snapshot(&self) -> bool {
        self.has_snapshot
    }

    /// Age of the data at `now_ms` (same clock as the server's timestamps); `None` before
    /// any update.
    pub fn age_ms(&self, now_ms: i64) -> Option<i64> {
        self.last_update_ms.map(|t| now_ms.saturating_sub(t))
    }

    /// Whether the book is older than `max_age_ms` at `now_ms`, or was never filled. A quiet
    /// market sends nothing, so the caller decides whether "stale" means "resync".
    pub fn is_stale(&self, now_ms: i64, max_age_ms: i64) -> bool {
        !self.has_snapshot || self.age_ms(now_ms).is_none_or(|age| age > max_age_ms)
    }

    fn check_asset(&self, got: &str) -> Result<(), BookError> {
        if got == self.asset_id {
            Ok(())
        } else {
            Err(BookError::WrongAsset {
                expected: self.asset_id.clone(),
                got: got.to_string(),
            })
        }
    }

    fn check_time(&self, t: i64) -> Result<(), BookError> {
        match self.last_update_ms {
            Some(last) if t < last => Err(BookError::OutOfOrder {
                asset: self.asset_id.clone(),
                last_ms: last,
                got_ms: t,
            }),
            _ => Ok(()),
        }
    }

    /// Validates one level and returns it normalised (so `0.50` and `0.5` are one level).
    fn level(
        &self,
        side: BookSide,
        price: Decimal,
        size: Decimal,
    ) -> Result<(Decimal, Decimal), BookError> {
        let invalid = |reason| BookError::InvalidLevel {
            asset: self.asset_id.clone(),
            side,
            price,
            size,
            reason,
        };
        if price <= Decimal::ZERO || price >= Decimal::ONE {
            return Err(invalid("price must be within (0, 1)"));
        }
        if size < Decimal::ZERO {
            return Err(invalid("size must not be negative"));
        }
        if size > MAX_LEVEL_SIZE {
            return Err(invalid("size is implausibly large"));
        }
        let (price, size) = (price.normalize(), size.normalize());
        if price.scale() > BOOK_DP || size.scale() > BOOK_DP {
            return Err(invalid("more than 6 decimals"));
        }
        Ok((price, size))
    }

    /// Replaces the whole book with `snap` (REST `/book` or WebSocket `book`). Zero-size
    /// levels are dropped; a duplicate price on one side is an error. The snapshot's tick,
    /// when it carries one, becomes the book's.
    pub fn apply_snapshot(&mut self, snap: &BookSnapshot) -> Result<(), BookError> {
        self.check_asset(&snap.asset_id)?;
        self.check_time(snap.timestamp_ms)?;
        let tick = match snap.tick_size {
            Some(t) => check_tick(&self.asset_id, t)?,
            None => self.tick_size,
        };
        let mut sides = [BTreeMap::new(), BTreeMap::new()];
        for (side, levels, map) in [
            (BookSide::Bid, &snap.bids, 0),
            (BookSide::Ask, &snap.asks, 1),
        ] {
            for l in levels {
                let (p, s) = self.level(side, l.price, l.size)?;
                if sides[map].insert(p, s).is_some() {
                    return Err(BookError::DuplicateLevel {
                        asset: self.asset_id.clone(),
                        side,
                        price: p,
                    });
                }
            }
            sides[map].retain(|_, s| !s.is_zero());
        }
        let [bids, asks] = sides;
        self.bids = bids;
        self.asks = asks;
        self.tick_size = tick;
        self.last_update_ms = Some(snap.timestamp_ms);
        self.hash = snap.hash.clone();
        self.has_snapshot = true;
        Ok(())
    }

    /// Applies the changes of `ev` that are for this token (an event may carry both tokens
    /// of a market) and returns how many applied. Size 0 removes a level. Needs a snapshot
    /// first; all-or-nothing.
    pub fn apply_price_changes(&mut self, ev: &PriceChangeEvent) -> Result<usize, BookError> {
        let mine: Vec<_> = ev
            .changes
            .iter()
            .filter(|c| c.asset_id == self.asset_id)
            .collect();
        if mine.is_empty() {
            return Ok(0);
        }
        if !self.has_snapshot {
            return Err(BookError::NoSnapshot {
                asset: self.asset_id.clone(),
            });
        }
        self.check_time(ev.timestamp_ms)?;
        let mut checked = Vec::with_capacity(mine.len());
        for c in &mine {
            let side = BookSide::from(c.side);
            let (p, s) = self.level(side, c.price, c.size)?;
            checked.push((side, p, s));
        }
        for (side, p, s) in checked {
            let map = match side {
                BookSide::Bid => &mut self.bids,
                BookSide::Ask => &mut self.asks,
            };
            if s.is_zero() {
                map.remove(&p);
            } else {
                map.insert(p, s);
            }
        }
        self.last_update_ms = Some(ev.timestamp_ms);
        if let Some(h) = mine.iter().rev().find_map(|c| c.hash.clone()) {
            self.hash = Some(h);
        }
        Ok(mine.len())
    }

    /// Applies a tick change for this token; returns whether it was for this token.
    pub fn apply_tick_size_change(&mut self, ev: &TickSizeChange) -> Result<bool, BookError> {
        if ev.asset_id != self.asset_id {
            return Ok(false);
        }
        self.check_time(ev.timestamp_ms)?;
        self.tick_size = check_tick(&self.asset_id, ev.new_tick_size)?;
        self.last_update_ms = Some(ev.timestamp_ms);
        Ok(true)
    }

    /// Applies any market-channel event; returns whether this book changed. Events for
    /// other tokens and event kinds that carry no book data are ignored.
    pub fn apply(&mut self, ev: &MarketEvent) -> Result<bool, BookError> {
        match ev {
            MarketEvent::Book(b) if b.asset_id == self.asset_id => {
                self.apply_snapshot(b).map(|()| true)
            }
            MarketEvent::PriceChange(p) => self.apply_price_changes(p).map(|n| n > 0),
            MarketEvent::TickSizeChange(t) => self.apply_tick_size_change(t),
            _ => Ok(false),
        }
    }

    /// Bids, best (highest) first.
    pub fn bids(&self) -> Vec<PriceLevel> {
        self.bids
            .iter()
            .rev()
            .map(|(p, s)| PriceLevel {
                price: *p,
                size: *s,
            })
            .collect()
    }

    /// Asks, best (lowest) first.
    pub fn asks(&self) -> Vec<PriceLevel> {
        self.asks
            .iter()
            .map(|(p, s)| PriceLevel {
                price: *p,
                size: *s,
            })
            .collect()
    }

    /// Best bid, if any (no crossed-book check: see [`OrderBook::check`]).
    pub fn best_bid(&self) -> Option<PriceLevel> {
        self.bids.iter().next_back().map(|(p, s)| PriceLevel {
            price: *p,
            size: *s,
        })
    }

    /// Best ask, if any.
    pub fn best_ask(&self) -> Option<PriceLevel> {
        self.asks.iter().next().map(|(p, s)| PriceLevel {
            price: *p,
            size: *s,
        })
    }

    /// Whether best bid ≥ best ask.
    pub fn is_crossed(&self) -> bool {
        matches!((self.best_bid(), self.best_ask()), (Some(b), Some(a)) if b.price >= a.price)
    }

    /// `Ok` when the book may be quoted: it has a snapshot and is not crossed.
    pub fn check(&self) -> Result<(), BookError> {
        if !self.has_snapshot {
            return Err(BookError::NoSnapshot {
                asset: self.asset_id.clone(),
            });
        }
        match (self.best_bid(), self.best_ask()) {
            (Some(b), Some(a)) if b.price >= a.price => Err(BookError::Crossed {
                asset: self.asset_id.clone(),
                bid: b.price,
                ask: a.price,
            }),
            _ => Ok(()),
        }
    }

    fn both_tops(&self) -> Result<(PriceLevel, PriceLevel), BookError> {
        self.check()?;
        let empty = |side| BookError::Empty {
            asset: self.asset_id.clone(),
            side,
        };
        let bid = self.best_bid().ok_or_else(|| empty(BookSide::Bid))?;
        let ask = self.best_ask().ok_or_else(|| empty(BookSide::Ask))?;
        Ok((bid, ask))
    }

    /// Mid price `(bid + ask) / 2`.
    pub fn mid(&self) -> Result<Decimal, BookError> {
        let (b, a) = self.both_tops()?;
        Ok((b.price + a.price) / Decimal::TWO)
    }

    /// Spread `ask − bid`.
    pub fn spread(&self) -> Result<Decimal, BookError> {
        let (b, a) = self.both_tops()?;
        Ok(a.price - b.price)
    }

    /// Shares resting on `side` within `ticks` ticks of that side's best price (0 = the best
    /// level only); 0 for an empty side.
    pub fn depth_within(&self, side: BookSide, ticks: u32) -> Decimal {
        let reach = self.tick_size * Decimal::from(ticks);
        match side {
            BookSide::Bid => match self.best_bid() {
                Some(best) => self.bids.range(best.price - reach..).map(|(_, s)| *s).sum(),
                None => Decimal::ZERO,
            },
            BookSide::Ask => match self.best_ask() {
                Some(best) => self
                    .asks
                    .range(..=best.price + reach)
                    .map(|(_, s)| *s)
                    .sum(),
                None => Decimal::ZERO,
            },
        }
    }

    /// `(bid depth − ask depth) / (bid depth + ask depth)` within `ticks` of each top, in
    /// −1..=1 (positive = more buying interest); `None` when both are empty.
    pub fn imbalance(&self, ticks: u32) -> Option<Decimal> {
        let b = self.depth_within(BookSide::Bid, ticks);
        let a = self.depth_within(BookSide::Ask, ticks);
        let total = b + a;
        (!total.is_zero()).then(|| (b - a) / total)
    }

    /// Fills `usd` against the asks from the best level up, never above `price_cap`:
    /// shares, cost and the levels consumed, in exact decimals. Shares at each level are
    /// rounded down to [`BOOK_DP`] decimals so the cost never exceeds `usd`. Refuses a
    /// crossed book or one without a snapshot; an empty or too-expensive book fills nothing.
    pub fn walk_asks(&self, usd: Decimal, price_cap: Decimal) -> Result<Walk, BookError> {
        if usd < Decimal::ZERO {
            return Err(BookError::InvalidArgument(format!(
                "USD amount {usd} is negative"
            )));
        }
        if price_cap <= Decimal::ZERO || price_cap > Decimal::ONE {
            return Err(BookError::InvalidArgument(format!(
                "price cap {price_cap} is not within (0, 1]"
            )));
        }
        self.check()?;
        let step = Decimal::new(1, BOOK_DP);
        let mut remaining = usd;
        let mut walk = Walk {
            shares: Decimal::ZERO,
            cost: Decimal::ZERO,
            avg_price: None,
            levels: Vec::new(),
        };
        for (&price, &size) in self.asks.range(..=price_cap) {
            if remaining <= Decimal::ZERO {
                break;
            }
            // remaining / price can be inexact; round down, then step back once if the
            // division rounded up across a 6-decimal boundary.
            let affordable = match remaining.checked_div(price) {
                Some(q) => q.round_dp_with_strategy(BOOK_DP, RoundingStrategy::ToZero),
                None => break,
            };
            let mut take = size.min(affordable);
            if take * price > remaining {
                take -= step;
            }
            if take <= Decimal::ZERO {
                break;
            }
            let cost = take * price;
            remaining -= cost;
            walk.shares += take;
            walk.cost += cost;
            walk.levels.push(PriceLevel { price, size: take });
            if take < size {
                break; // the money ran out inside this level
            }
        }
        if !walk.shares.is_zero() {
            walk.avg_price = Some(walk.cost / walk.shares);
        }
        Ok(walk)
    }

    /// The venue's [`BookTop`]: best bid and ask, and the depth within `ticks` ticks of
    /// each. Refuses a crossed, empty-sided or never-filled book.
    pub fn top(&self, ticks: u32) -> Result<BookTop, BookError> {
        let (bid, ask) = self.both_tops()?;
        Ok(BookTop {
            bid: bid.price,
            ask: ask.price,
            ask_depth: self.depth_within(BookSide::Ask, ticks),
            bid_depth: self.depth_within(BookSide::Bid, ticks),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::binance::fuzzkit::shared;
    use crate::venue::polymarket::clob::{PriceChange, WsFrame, parse_book, parse_ws_frame};
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    const ASSET: &str = "100";

    fn lv(price: Decimal, size: Decimal) -> PriceLevel {
        PriceLevel { price, size }
    }

    fn snap(bids: &[(Decimal, Decimal)], asks: &[(Decimal, Decimal)], t: i64) -> BookSnapshot {
        BookSnapshot {
            market: "0xaabbcc".into(),
            asset_id: ASSET.into(),
            bids: bids.iter().map(|(p, s)| lv(*p, *s)).collect(),
            asks: asks.iter().map(|(p, s)| lv(*p, *s)).collect(),
            timestamp_ms: t,
            hash: None,
            tick_size: None,
            min_order_size: None,
            neg_risk: None,
        }
    }

    fn change(side: OrderSide, price: Decimal, size: Decimal, t: i64) -> PriceChangeEvent {
        PriceChangeEvent {
            market: "0xaabbcc".into(),
            timestamp_ms: t,
            changes: vec![PriceChange {
                asset_id: ASSET.into(),
                price,
                size,
                side,
                hash: Some(format!("h{t}")),
                best_bid: None,
                best_ask: None,
            }],
        }
    }

    fn book() -> OrderBook {
        let mut b = OrderBook::new(ASSET, dec!(0.01)).unwrap();
        b.apply_snapshot(&snap(
            &[
                (dec!(0.48), dec!(30)),
                (dec!(0.50), dec!(15)),
                (dec!(0.49), dec!(20)),
            ],
            &[
                (dec!(0.54), dec!(10)),
                (dec!(0.52), dec!(25)),
                (dec!(0.53), dec!(60)),
            ],
            1_000,
        ))
        .unwrap();
        b
    }

    #[test]
    fn real_rest_book_is_sorted_best_first() {
        let s = parse_book(&shared(
            "polymarket_api_samples/nautilus_py_http_responses_book.json",
        ))
        .unwrap();
        let mut b = OrderBook::new(s.asset_id.clone(), dec!(0.01)).unwrap();
        b.apply_snapshot(&s).unwrap();
        // Sent descending; the best ask is the lowest, 0.14 × 705.
        assert_eq!(b.best_ask(), Some(lv(dec!(0.14), dec!(705))));
        assert_eq!(b.best_bid(), Some(lv(dec!(0.1), dec!(125))));
        let asks: Vec<Decimal> = b.asks().iter().map(|l| l.price).collect();
        assert_eq!(
            asks,
            [
                dec!(0.14),
                dec!(0.2),
                dec!(0.38),
                dec!(0.46),
                dec!(0.47),
                dec!(0.5),
                dec!(0.98)
            ]
        );
        let bids: Vec<Decimal> = b.bids().iter().map(|l| l.price).collect();
        assert_eq!(
            bids,
            [dec!(0.1), dec!(0.09), dec!(0.08), dec!(0.06), dec!(0.01)]
        );
        assert_eq!(b.spread().unwrap(), dec!(0.04));
        assert_eq!(b.mid().unwrap(), dec!(0.12));
        assert_eq!(b.last_update_ms(), Some(1_728_799_418_260));
        assert_eq!(b.hash(), Some("2fc4a3d6a98bc164e057589bcb74981852b87412"));
        // $100 up to 0.40: 705 × 0.14 = 98.70 fills the first level, then 1.30 / 0.2 = 6.5.
        let w = b.walk_asks(dec!(100), dec!(0.40)).unwrap();
        assert_eq!(
            w.levels,
            vec![lv(dec!(0.14), dec!(705)), lv(dec!(0.2), dec!(6.5))]
        );
        assert_eq!((w.shares, w.cost), (dec!(711.5), dec!(100)));
        // Capped at 0.15, only the first level is reachable.
        let w = b.walk_asks(dec!(1000), dec!(0.15)).unwrap();
        assert_eq!((w.shares, w.cost), (dec!(705), dec!(98.70)));
        assert_eq!(w.avg_price, Some(dec!(0.14)));
        let top = b.top(0).unwrap();
        assert_eq!(
            top,
            BookTop {
                bid: dec!(0.1),
                ask: dec!(0.14),
                ask_depth: dec!(705),
                bid_depth: dec!(125)
            }
        );
    }

    #[test]
    fn real_ws_book_capture_builds_an_uncrossed_book() {
        let WsFrame::Events(ev) = parse_ws_frame(&shared(
            "polymarket_api_samples/nautilus_py_ws_messages_book.json",
        ))
        .unwrap() else {
            panic!()
        };
        let MarketEvent::Book(s) = &ev[0] else {
            panic!()
        };
        let mut b = OrderBook::new(s.asset_id.clone(), dec!(0.001)).unwrap();
        assert!(b.apply(&ev[0]).unwrap());
        assert_eq!((b.bids().len(), b.asks().len()), (76, 86));
        b.check().unwrap();
        let (bid, ask) = (b.best_bid().unwrap().price, b.best_ask().unwrap().price);
        assert!(bid < ask, "{bid} {ask}");
        let w = b.walk_asks(dec!(1000), dec!(0.99)).unwrap();
        assert!(w.cost <= dec!(1000) && w.cost > dec!(999));
    }

    #[test]
    fn depth_imbalance_mid_and_top() {
        let b = book();
        assert_eq!(b.best_bid(), Some(lv(dec!(0.50), dec!(15))));
        assert_eq!(b.best_ask(), Some(lv(dec!(0.52), dec!(25))));
        assert_eq!(b.mid().unwrap(), dec!(0.51));
        assert_eq!(b.spread().unwrap(), dec!(0.02));
        assert_eq!(b.depth_within(BookSide::Bid, 0), dec!(15));
        assert_eq!(b.depth_within(BookSide::Bid, 1), dec!(35));
        assert_eq!(b.depth_within(BookSide::Ask, 1), dec!(85));
        assert_eq!(b.depth_within(BookSide::Ask, 99), dec!(95));
        // (35 − 85) / 120
        assert_eq!(b.imbalance(1).unwrap(), dec!(-50) / dec!(120));
        assert_eq!(
            b.top(1).unwrap(),
            BookTop {
                bid: dec!(0.50),
                ask: dec!(0.52),
                ask_depth: dec!(85),
                bid_depth: dec!(35)
            }
        );
        let empty = OrderBook::new(ASSET, dec!(0.01)).unwrap();
        assert_eq!(empty.imbalance(3), None);
        assert!(matches!(empty.top(0), Err(BookError::NoSnapshot { .. })));
    }

    #[test]
    fn changes_update_and_remove_levels() {
        let mut b = book();
        assert_eq!(
            b.apply_price_changes(&change(OrderSide::Sell, dec!(0.52), dec!(0), 1_001))
                .unwrap(),
            1
        );
        assert_eq!(b.best_ask(), Some(lv(dec!(0.53), dec!(60))));
        b.apply_price_changes(&change(OrderSide::Buy, dec!(0.51), dec!(7), 1_002))
            .unwrap();
        assert_eq!(b.best_bid(), Some(lv(dec!(0.51), dec!(7))));
        assert_eq!(b.hash(), Some("h1002"));
        // "0.510" is the same level as "0.51".
        b.apply_price_changes(&change(OrderSide::Buy, dec!(0.510), dec!(9), 1_002))
            .unwrap();
        assert_eq!(b.bids().len(), 4);
        assert_eq!(b.best_bid(), Some(lv(dec!(0.51), dec!(9))));
        // Changes for the other token are ignored, not errors.
        let mut other = change(OrderSide::Buy, dec!(0.9), dec!(1), 1_003);
        other.changes[0].asset_id = "200".into();
        assert_eq!(b.apply_price_changes(&other).unwrap(), 0);
        assert!(!b.apply(&MarketEvent::PriceChange(other)).unwrap());
    }

    #[test]
    fn bad_updates_leave_the_book_untouched() {
        let before = book();
        let mut b = before.clone();
        let mut ev = change(OrderSide::Buy, dec!(0.3), dec!(5), 1_001);
        ev.changes.push(PriceChange {
            size: dec!(-1),
            ..ev.changes[0].clone()
        });
        assert!(matches!(
            b.apply_price_changes(&ev),
            Err(BookError::InvalidLevel { .. })
        ));
        assert_eq!(b, before);
        assert!(matches!(
            b.apply_price_changes(&change(OrderSide::Sell, dec!(0.6), dec!(1), 999)),
            Err(BookError::OutOfOrder {
                last_ms: 1_000,
                got_ms: 999,
                ..
            })
        ));
        for (p, s) in [
            (dec!(0), dec!(1)),
            (dec!(1), dec!(1)),
            (dec!(0.5), dec!(0.0000001)),
            (dec!(0.1234567), dec!(1)),
        ] {
            assert!(
                b.apply_price_changes(&change(OrderSide::Sell, p, s, 1_001))
                    .is_err(),
                "{p} {s}"
            );
        }
        let mut s = snap(&[(dec!(0.4), dec!(1)), (dec!(0.40), dec!(2))], &[], 2_000);
        assert!(matches!(
            b.apply_snapshot(&s),
            Err(BookError::DuplicateLevel { .. })
        ));
        s.asset_id = "200".into();
        assert!(matches!(
            b.apply_snapshot(&s),
            Err(BookError::WrongAsset { .. })
        ));
        assert_eq!(b, before);
        let mut fresh = OrderBook::new(ASSET, dec!(0.01)).unwrap();
        assert!(matches!(
            fresh.apply_price_changes(&change(OrderSide::Buy, dec!(0.4), dec!(1), 1)),
            Err(BookError::NoSnapshot { .. })
        ));
        assert!(OrderBook::new(ASSET, dec!(0)).is_err());
        assert!(OrderBook::new(ASSET, dec!(1)).is_err());
    }

    #[test]
    fn crossed_books_are_refused_until_a_snapshot_fixes_them() {
        let mut b = book();
        b.apply_price_changes(&change(OrderSide::Buy, dec!(0.53), dec!(5), 1_001))
            .unwrap();
        assert!(b.is_crossed());
        assert!(matches!(b.check(), Err(BookError::Crossed { .. })));
        assert!(matches!(b.top(0), Err(BookError::Crossed { .. })));
        assert!(matches!(
            b.walk_asks(dec!(10), dec!(0.9)),
            Err(BookError::Crossed { .. })
        ));
        assert!(b.mid().is_err() && b.spread().is_err());
        b.apply_snapshot(&snap(
            &[(dec!(0.5), dec!(1))],
            &[(dec!(0.52), dec!(1))],
            1_002,
        ))
        .unwrap();
        assert!(b.top(0).is_ok());
    }

    #[test]
    fn walk_respects_the_amount_the_cap_and_level_sizes() {
        let b = book();
        // 25 × 0.52 = 13.00, then 7 / 0.53 = 13.207547… → 13.207547 shares at 0.53.
        let w = b.walk_asks(dec!(20), dec!(0.60)).unwrap();
        assert_eq!(
            w.levels,
            vec![lv(dec!(0.52), dec!(25)), lv(dec!(0.53), dec!(13.207547))]
        );
        assert_eq!(w.shares, dec!(38.207547));
        assert_eq!(w.cost, dec!(13) + dec!(13.207547) * dec!(0.53));
        assert!(w.cost <= dec!(20));
        // Cap below the best ask: nothing.
        let w = b.walk_asks(dec!(20), dec!(0.51)).unwrap();
        assert_eq!((w.shares, w.avg_price, w.levels.len()), (dec!(0), None, 0));
        // More money than the book: everything up to the cap.
        let w = b.walk_asks(dec!(1000), dec!(0.53)).unwrap();
        assert_eq!(w.shares, dec!(85));
        assert_eq!(w.cost, dec!(13) + dec!(31.8));
        assert!(b.walk_asks(dec!(-1), dec!(0.5)).is_err());
        assert!(b.walk_asks(dec!(1), dec!(1.5)).is_err());
        assert_eq!(b.walk_asks(dec!(0), dec!(0.9)).unwrap().shares, dec!(0));
    }

    #[test]
    fn staleness_and_tick_changes() {
        let mut b = book();
        assert_eq!(b.age_ms(1_500), Some(500));
        assert!(!b.is_stale(1_500, 500));
        assert!(b.is_stale(1_501, 500));
        assert!(
            OrderBook::new(ASSET, dec!(0.01))
                .unwrap()
                .is_stale(0, i64::MAX)
        );
        let t = TickSizeChange {
            asset_id: ASSET.into(),
            market: "0xaabbcc".into(),
            old_tick_size: dec!(0.01),
            new_tick_size: dec!(0.001),
            timestamp_ms: 1_100,
        };
        assert!(b.apply(&MarketEvent::TickSizeChange(t.clone())).unwrap());
        assert_eq!(b.tick_size(), dec!(0.001));
        assert_eq!(b.depth_within(BookSide::Ask, 9), dec!(25)); // 0.52..=0.529
        assert_eq!(b.depth_within(BookSide::Ask, 10), dec!(85)); // 0.52..=0.53
        assert_eq!(b.last_update_ms(), Some(1_100));
        let bad = TickSizeChange {
            new_tick_size: dec!(2),
            timestamp_ms: 1_200,
            ..t
        };
        assert!(b.apply_tick_size_change(&bad).is_err());
        assert_eq!(b.tick_size(), dec!(0.001));
    }

    // ---- fuzzing: random sequences of snapshots, changes and walks keep the invariants ----

    #[derive(Clone, Debug)]
    enum Op {
        Snapshot(Vec<(i64, i64)>, Vec<(i64, i64)>, i64),
        Change(bool, i64, i64, i64),
        Walk(i64, i64),
    }

    /// Prices in ten-thousandths (1..=9999 valid, with some invalid ones), sizes in
    /// hundredths (some negative), times around a moving clock.
    fn op() -> impl Strategy<Value = Op> {
        let price = prop_oneof![8 => 1i64..10_000, 1 => -100i64..0, 1 => 10_000i64..10_100];
        let size = prop_oneof![6 => 1i64..100_000, 2 => Just(0i64), 1 => -1_000i64..0];
        let levels = prop::collection::vec((price.clone(), size.clone()), 0..12);
        prop_oneof![
            1 => (levels.clone(), levels, -5i64..50).prop_map(|(b, a, dt)| Op::Snapshot(b, a, dt)),
            6 => (any::<bool>(), price.clone(), size, -5i64..50).prop_map(|(bid, p, s, dt)| Op::Change(bid, p, s, dt)),
            2 => (-100i64..100_000, price).prop_map(|(usd, cap)| Op::Walk(usd, cap)),
        ]
    }

    fn p4(x: i64) -> Decimal {
        Decimal::new(x, 4)
    }

    fn p2(x: i64) -> Decimal {
        Decimal::new(x, 2)
    }

    fn check_invariants(b: &OrderBook) -> Result<(), TestCaseError> {
        let bids = b.bids();
        let asks = b.asks();
        for l in bids.iter().chain(&asks) {
            prop_assert!(l.size > Decimal::ZERO, "non-positive size kept: {l:?}");
            prop_assert!(l.price > Decimal::ZERO && l.price < Decimal::ONE);
        }
        prop_assert!(
            bids.windows(2).all(|w| w[0].price > w[1].price),
            "bids not descending"
        );
        prop_assert!(
            asks.windows(2).all(|w| w[0].price < w[1].price),
            "asks not ascending"
        );
        Ok(())
    }

    proptest! {
        #[test]
        fn fuzz_book_random_sequences_keep_invariants(ops in prop::collection::vec(op(), 1..40)) {
            let mut b = OrderBook::new(ASSET, dec!(0.01)).unwrap();
            let mut clock = 1_000i64;
            for op in ops {
                let before = b.clone();
                match op {
                    Op::Snapshot(bids, asks, dt) => {
                        clock += dt;
                        let s = snap(
                            &bids.iter().map(|(p, s)| (p4(*p), p2(*s))).collect::<Vec<_>>(),
                            &asks.iter().map(|(p, s)| (p4(*p), p2(*s))).collect::<Vec<_>>(),
                            clock,
                        );
                        match b.apply_snapshot(&s) {
                            Ok(()) => {
                                // The book is exactly the snapshot's non-zero levels.
                                let want: usize = s.asks.iter().filter(|l| !l.size.is_zero()).count();
                                prop_assert_eq!(b.asks().len(), want);
                            }
                            Err(_) => prop_assert_eq!(&b, &before),
                        }
                    }
                    Op::Change(bid, p, s, dt) => {
                        clock += dt;
                        let side = if bid { OrderSide::Buy } else { OrderSide::Sell };
                        let res = b.apply_price_changes(&change(side, p4(p), p2(s), clock));
                        if res.is_err() {
                            prop_assert_eq!(&b, &before);
                        } else if s == 0 && b.has_snapshot() {
                            let gone = match side {
                                OrderSide::Buy => b.bids(),
                                OrderSide::Sell => b.asks(),
                            };
                            prop_assert!(gone.iter().all(|l| l.price != p4(p)));
                        }
                    }
                    Op::Walk(usd, cap) => {
                        let (usd, cap) = (p2(usd), p4(cap));
                        match b.walk_asks(usd, cap) {
                            Ok(w) => {
                                prop_assert!(w.cost <= usd, "cost {} > usd {}", w.cost, usd);
                                prop_assert!(w.cost >= Decimal::ZERO && w.shares >= Decimal::ZERO);
                                prop_assert!(w.levels.iter().all(|l| l.price <= cap));
                                prop_assert!(w.levels.windows(2).all(|x| x[0].price < x[1].price));
                                let shares: Decimal = w.levels.iter().map(|l| l.size).sum();
                                let cost: Decimal = w.levels.iter().map(|l| l.size * l.price).sum();
                                prop_assert_eq!(shares, w.shares);
                                prop_assert_eq!(cost, w.cost);
                                if let Some(avg) = w.avg_price {
                                    prop_assert!(avg <= cap);
                                }
                                // Never more than the book offers at each level.
                                let asks = b.asks();
                                for l in &w.levels {
                                    let offered = asks.iter().find(|a| a.price == l.price).map(|a| a.size);
                                    prop_assert!(offered.is_some_and(|o| l.size <= o));
                                }
                            }
                            Err(BookError::Crossed { .. }) => prop_assert!(b.is_crossed()),
                            Err(BookError::NoSnapshot { .. }) => prop_assert!(!b.has_snapshot()),
                            Err(BookError::InvalidArgument(_)) => {
                                prop_assert!(usd < Decimal::ZERO || cap <= Decimal::ZERO || cap > Decimal::ONE)
                            }
                            Err(e) => prop_assert!(false, "unexpected {e}"),
                        }
                        prop_assert_eq!(&b, &before);
                    }
                }
                check_invariants(&b)?;
                if let Ok(top) = b.top(2) {
                    prop_assert!(top.bid < top.ask);
                    prop_assert!(top.ask_depth > Decimal::ZERO && top.bid_depth > Decimal::ZERO);
                }
                if let Some(i) = b.imbalance(3) {
                    prop_assert!(i >= -Decimal::ONE && i <= Decimal::ONE);
                }
            }
        }
    }
}
