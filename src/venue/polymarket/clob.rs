//! CLOB market data on the wire: the REST `GET /book` body and every message of the public
//! market channel (`wss://ws-subscriptions-clob.polymarket.com/ws/market`).
//!
//! Owns decoding only: no socket, subscription or heartbeat logic (the venue's connection
//! does that: send `PING` every 10 s, and never before the first subscription — reference
//! §4.1), and no book state ([`super::book`] applies these messages). Reference
//! `shared/reference/polymarket-api.md` §3.1 (REST), §4.1 (WebSocket), §5.2 (errors):
//!
//! - A frame is the text `PONG` (or `PING`), one JSON object, or a JSON **array** of them.
//!   Every event has `event_type`; one this module does not know becomes
//!   [`MarketEvent::Unknown`] rather than an error, because Polymarket adds event types
//!   (`best_bid_ask`, `new_market` and `market_resolved` came with `custom_feature_enabled`).
//! - Prices and sizes are strings (`".48"` included) and become exact `Decimal`s; numbers
//!   are tolerated. Timestamps are ms, as strings.
//! - Book levels come in whatever order the server likes: the REST `/book` answer lists bids
//!   ascending and asks **descending** (best level last). Levels are kept as sent here and
//!   sorted by the book.
//! - `price_change` has had three shapes; all decode to one [`PriceChangeEvent`]:
//!   the current `price_changes: [{asset_id, price, size, side, hash, best_bid, best_ask}]`
//!   (since 2025-09-15), the older per-asset `changes: [{price, side, size}]`, and the single
//!   change with `price`/`side`/`size` at top level (the recorded legacy capture).
//! - A CLOB error body is `{"error": "<message>"}` ([`ClobError::Api`]).

use crate::domain::Side;
use crate::feed::binance::{DecodeError, wire};
use crate::venue::polymarket::gamma::{MarketInfo, up_down_indices};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

/// Everything that can go wrong reading CLOB market data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClobError {
    /// Malformed payload (names the message and field, shows an excerpt).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The CLOB answered `{"error": …}`, e.g. "No orderbook exists for the requested token id".
    #[error("clob error: {message}")]
    Api {
        /// The CLOB's message.
        message: String,
    },
    /// A well-formed message that contradicts the market it is applied to.
    #[error("inconsistent {what}")]
    Inconsistent {
        /// What disagrees with what.
        what: String,
    },
}

/// Side of an order or a book change: `BUY` (bids) or `SELL` (asks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderSide {
    /// `BUY`: a bid; as a trade's side, the taker bought.
    Buy,
    /// `SELL`: an ask; as a trade's side, the taker sold.
    Sell,
}

fn order_side<'de, D: Deserializer<'de>>(d: D) -> Result<OrderSide, D::Error> {
    let s = String::deserialize(d)?;
    match s.as_str() {
        "BUY" | "buy" | "Buy" => Ok(OrderSide::Buy),
        "SELL" | "sell" | "Sell" => Ok(OrderSide::Sell),
        _ => Err(de::Error::custom(format!(
            "expected BUY or SELL, got {s:?}"
        ))),
    }
}

/// One price level: price and the total size resting there (shares).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct PriceLevel {
    /// Price in USD per share, 0..=1.
    #[serde(deserialize_with = "wire::decimal")]
    pub price: Decimal,
    /// Shares.
    #[serde(deserialize_with = "wire::decimal")]
    pub size: Decimal,
}

/// A full book for one token: the REST `/book` answer or the WebSocket `book` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookSnapshot {
    /// Condition id (`market`).
    pub market: String,
    /// Token id (`asset_id`).
    pub asset_id: String,
    /// Bids, in the order sent.
    pub bids: Vec<PriceLevel>,
    /// Asks, in the order sent (often descending: best last).
    pub asks: Vec<PriceLevel>,
    /// Server time, Unix ms.
    pub timestamp_ms: i64,
    /// Book hash, when sent.
    pub hash: Option<String>,
    /// `tick_size` (REST only).
    pub tick_size: Option<Decimal>,
    /// `min_order_size` (REST only).
    pub min_order_size: Option<Decimal>,
    /// `neg_risk` (REST only).
    pub neg_risk: Option<bool>,
}

/// One level change within a [`PriceChangeEvent`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceChange {
    /// Token id.
    pub asset_id: String,
    /// Level price.
    pub price: Decimal,
    /// New total size at that price (0 removes the level). The reference notes this is how
    /// bots read it, not spelled out by the docs; the book's hash and snapshots confirm it.
    pub size: Decimal,
    /// `BUY` = bid level, `SELL` = ask level.
    pub side: OrderSide,
    /// Book hash after the change, when sent.
    pub hash: Option<String>,
    /// Best bid after the change, when sent.
    pub best_bid: Option<Decimal>,
    /// Best ask after the change, when sent.
    pub best_ask: Option<Decimal>,
}

/// A `price_change` event, normalised from any of its three shapes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceChangeEvent {
    /// Condition id.
    pub market: String,
    /// Server time, Unix ms.
    pub timestamp_ms: i64,
    /// The level changes, possibly for both tokens of the market.
    pub changes: Vec<PriceChange>,
}

/// A `tick_size_change` event: the token's tick changed (near 0 or 1 it gets finer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickSizeChange {
    /// Token id.
    pub asset_id: String,
    /// Condition id.
    pub market: String,
    /// Previous tick.
    pub old_tick_size: Decimal,
    /// New tick.
    pub new_tick_size: Decimal,
    /// Server time, Unix ms.
    pub timestamp_ms: i64,
}

/// A `best_bid_ask` event (with `custom_feature_enabled`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BestBidAsk {
    /// Condition id.
    pub market: String,
    /// Token id.
    pub asset_id: String,
    /// Best bid.
    pub best_bid: Decimal,
    /// Best ask.
    pub best_ask: Decimal,
    /// Spread, when sent.
    pub spread: Option<Decimal>,
    /// Server time, Unix ms.
    pub timestamp_ms: i64,
}

/// A `last_trade_price` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastTradePrice {
    /// Token id.
    pub asset_id: String,
    /// Condition id.
    pub market: String,
    /// Trade price.
    pub price: Decimal,
    /// Trade size, shares.
    pub size: Decimal,
    /// Taker side.
    pub side: OrderSide,
    /// `fee_rate_bps`, when sent.
    pub fee_rate_bps: Option<Decimal>,
    /// Server time, Unix ms.
    pub timestamp_ms: i64,
}

/// A `market_resolved` event (with `custom_feature_enabled`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketResolved {
    /// Gamma market id, when sent.
    pub id: Option<String>,
    /// Condition id.
    pub market: String,
    /// The market's token ids.
    pub assets_ids: Vec<String>,
    /// Token id of the winner.
    pub winning_asset_id: String,
    /// Outcome label of the winner (`Up`, `Down`, `Yes`…).
    pub winning_outcome: String,
    /// Server time, Unix ms.
    pub timestamp_ms: i64,
}

impl MarketResolved {
    /// The winning side of `market`, refusing when the event is about another market, the
    /// winning token is not one of the market's, or the label contradicts the token.
    pub fn winning_side(&self, market: &MarketInfo) -> Result<Side, ClobError> {
        if self.market != market.condition_id {
            return Err(ClobError::Inconsistent {
                what: format!(
                    "market_resolved for {} applied to market {}",
                    self.market, market.condition_id
                ),
            });
        }
        let side =
            market
                .side_of(&self.winning_asset_id)
                .ok_or_else(|| ClobError::Inconsistent {
                    what: format!(
                        "winning_asset_id {} is neither token of {}",
                        self.winning_asset_id, market.slug
                    ),
                })?;
        let label_agrees = match self.winning_outcome.as_str() {
            "Up" => side == Side::Up,
            "Down" => side == Side::Down,
            _ => false,
        };
        if !label_agrees {
            return Err(ClobError::Inconsistent {
                what: format!(
                    "winning_outcome {:?} but winning_asset_id is the {side} token",
                    self.winning_outcome
                ),
            });
        }
        Ok(side)
    }
}

/// A `new_market` event (with `custom_feature_enabled`): a market was listed, e.g. the next
/// up/down window, so discovery need not poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMarket {
    /// Gamma market id, when sent.
    pub id: Option<String>,
    /// Condition id.
    pub market: String,
    /// Slug, when sent.
    pub slug: Option<String>,
    /// Question, when sent.
    pub question: Option<String>,
    /// Description (resolution text), when sent.
    pub description: Option<String>,
    /// Token ids, in the order of `outcomes`.
    pub assets_ids: Vec<String>,
    /// Outcome labels.
    pub outcomes: Vec<String>,
    /// `order_price_min_tick_size`, when sent.
    pub tick_size: Option<Decimal>,
    /// Server time, Unix ms.
    pub timestamp_ms: i64,
}

impl NewMarket {
    /// `(up_token, down_token)` mapped by index, if the outcomes are exactly Up/Down and
    /// there is one token per outcome.
    pub fn up_down_tokens(&self) -> Option<(String, String)> {
        if self.assets_ids.len() != self.outcomes.len() {
            return None;
        }
        let (up, down) = up_down_indices(&self.outcomes)?;
        Some((self.assets_ids[up].clone(), self.assets_ids[down].clone()))
    }
}

/// One market-channel event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MarketEvent {
    /// `book`: a full snapshot (on subscribe and after trades).
    Book(BookSnapshot),
    /// `price_change`: level updates.
    PriceChange(PriceChangeEvent),
    /// `tick_size_change`.
    TickSizeChange(TickSizeChange),
    /// `best_bid_ask`.
    BestBidAsk(BestBidAsk),
    /// `last_trade_price`.
    LastTradePrice(LastTradePrice),
    /// `market_resolved`.
    MarketResolved(MarketResolved),
    /// `new_market`.
    NewMarket(NewMarket),
    /// An `event_type` this module does not decode (not an error: the API grows).
    Unknown {
        /// The `event_type` as sent.
        event_type: String,
    },
}

/// One WebSocket text frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsFrame {
    /// `PONG`: the server's answer to our `PING`.
    Pong,
    /// `PING` from the server (answer `PONG`).
    Ping,
    /// One or more events (a single object is a one-element list).
    Events(Vec<MarketEvent>),
}

// ---- raw shapes ----

#[derive(Deserialize)]
struct RawBook {
    market: String,
    asset_id: String,
    bids: Vec<PriceLevel>,
    asks: Vec<PriceLevel>,
    #[serde(deserialize_with = "wire::int")]
    timestamp: i64,
    #[serde(default)]
    hash: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_decimal")]
    tick_size: Option<Decimal>,
    #[serde(default, deserialize_with = "wire::opt_decimal")]
    min_order_size: Option<Decimal>,
    #[serde(default)]
    neg_risk: Option<bool>,
}

#[derive(Deserialize)]
struct RawChange {
    asset_id: String,
    #[serde(deserialize_with = "wire::decimal")]
    price: Decimal,
    #[serde(deserialize_with = "wire::decimal")]
    size: Decimal,
    #[serde(deserialize_with = "order_side")]
    side: OrderSide,
    #[serde(default)]
    hash: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_decimal")]
    best_bid: Option<Decimal>,
    #[serde(default, deserialize_with = "wire::opt_decimal")]
    best_ask: Option<Decimal>,
}

/// Current form (2025-09-15 on): `price_changes[]`, each naming its asset.
#[derive(Deserialize)]
struct RawPriceChanges {
    market: String,
    #[serde(deserialize_with = "wire::int")]
    timestamp: i64,
    price_changes: Vec<RawChange>,
}

#[derive(Deserialize)]
struct RawLegacyChange {
    #[serde(deserialize_with = "wire::decimal")]
    price: Decimal,
    #[serde(deserialize_with = "wire::decimal")]
    size: Decimal,
    #[serde(deserialize_with = "order_side")]
    side: OrderSide,
}

/// Pre-2025-09-15 form: one asset, `changes[]`.
#[derive(Deserialize)]
struct RawChangesList {
    market: String,
    asset_id: String,
    #[serde(deserialize_with = "wire::int")]
    timestamp: i64,
    #[serde(default)]
    hash: Option<String>,
    changes: Vec<RawLegacyChange>,
}

/// Oldest form (the recorded capture): one change at top level.
#[derive(Deserialize)]
struct RawSingleChange {
    market: String,
    asset_id: String,
    #[serde(deserialize_with = "wire::int")]
    timestamp: i64,
    #[serde(default)]
    hash: Option<String>,
    #[serde(deserialize_with = "wire::decimal")]
    price: Decimal,
    #[serde(deserialize_with = "wire::decimal")]
    size: Decimal,
    #[serde(deserialize_with = "order_side")]
    side: OrderSide,
}

#[derive(Deserialize)]
struct RawTickSizeChange {
    asset_id: String,
    market: String,
    #[serde(deserialize_with = "wire::decimal")]
    old_tick_size: Decimal,
    #[serde(deserialize_with = "wire::decimal")]
    new_tick_size: Decimal,
    #[serde(deserialize_with = "wire::int")]
    timestamp: i64,
}

#[derive(Deserialize)]
struct RawBestBidAsk {
    market: String,
    asset_id: String,
    #[serde(deserialize_with = "wire::decimal")]
    best_bid: Decimal,
    #[serde(deserialize_with = "wire::decimal")]
    best_ask: Decimal,
    #[serde(default, deserialize_with = "wire::opt_decimal")]
    spread: Option<Decimal>,
    #[serde(deserialize_with = "wire::int")]
    timestamp: i64,
}

#[derive(Deserialize)]
struct RawLastTrade {
    asset_id: String,
    market: String,
    #[serde(deserialize_with = "wire::decimal")]
    price: Decimal,
    #[serde(deserialize_with = "wire::decimal")]
    size: Decimal,
    #[serde(deserialize_with = "order_side")]
    side: OrderSide,
    #[serde(default, deserialize_with = "wire::opt_decimal")]
    fee_rate_bps: Option<Decimal>,
    #[serde(deserialize_with = "wire::int")]
    timestamp: i64,
}

fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

#[derive(Deserialize)]
struct RawResolved {
    #[serde(default, deserialize_with = "opt_id")]
    id: Option<String>,
    market: String,
    #[serde(default)]
    assets_ids: Vec<String>,
    winning_asset_id: String,
    winning_outcome: String,
    #[serde(deserialize_with = "wire::int")]
    timestamp: i64,
}

#[derive(Deserialize)]
struct RawNewMarket {
    #[serde(default, deserialize_with = "opt_id")]
    id: Option<String>,
    market: String,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    description: Option<String>,
    assets_ids: Vec<String>,
    outcomes: Vec<String>,
    #[serde(default, deserialize_with = "wire::opt_decimal")]
    order_price_min_tick_size: Option<Decimal>,
    #[serde(deserialize_with = "wire::int")]
    timestamp: i64,
}

const FRAME: &str = "clob ws frame";
const BOOK: &str = "clob book";
const PRICE_CHANGE: &str = "clob price_change";
const TICK: &str = "clob tick_size_change";
const BBA: &str = "clob best_bid_ask";
const LAST: &str = "clob last_trade_price";
const RESOLVED: &str = "clob market_resolved";
const NEW_MARKET: &str = "clob new_market";

/// Rejects prices outside 0..=1 and negative sizes: no book or trade has them, and letting
/// one through would poison a book or a fill estimate.
fn check_price(
    message: &'static str,
    field: String,
    p: Decimal,
    payload: &Value,
) -> Result<(), DecodeError> {
    if p < Decimal::ZERO || p > Decimal::ONE {
        Err(DecodeError::invalid(
            message,
            field,
            format!("price {p} is not within 0..=1"),
            &payload.to_string(),
        ))
    } else {
        Ok(())
    }
}

fn check_size(
    message: &'static str,
    field: String,
    s: Decimal,
    payload: &Value,
) -> Result<(), DecodeError> {
    if s < Decimal::ZERO {
        Err(DecodeError::invalid(
            message,
            field,
            format!("size {s} is negative"),
            &payload.to_string(),
        ))
    } else {
        Ok(())
    }
}

fn check_levels(
    message: &'static str,
    prefix: &str,
    side: &str,
    levels: &[PriceLevel],
    payload: &Value,
) -> Result<(), DecodeError> {
    for (i, l) in levels.iter().enumerate() {
        let at = |f: &str| wire::join(prefix, &format!("{side}[{i}].{f}"));
        check_price(message, at("price"), l.price, payload)?;
        check_size(message, at("size"), l.size, payload)?;
    }
    Ok(())
}

fn book_from_value(value: &Value, prefix: &str) -> Result<BookSnapshot, DecodeError> {
    let raw: RawBook = wire::decode_value(BOOK, prefix, value)?;
    check_levels(BOOK, prefix, "bids", &raw.bids, value)?;
    check_levels(BOOK, prefix, "asks", &raw.asks, value)?;
    if let Some(t) = raw.tick_size
        && (t <= Decimal::ZERO || t >= Decimal::ONE)
    {
        return Err(DecodeError::invalid(
            BOOK,
            wire::join(prefix, "tick_size"),
            format!("tick {t} is not within (0, 1)"),
            &value.to_string(),
        ));
    }
    Ok(BookSnapshot {
        market: raw.market,
        asset_id: raw.asset_id,
        bids: raw.bids,
        asks: raw.asks,
        timestamp_ms: raw.timestamp,
        hash: raw.hash,
        tick_size: raw.tick_size,
        min_order_size: raw.min_order_size,
        neg_risk: raw.neg_risk,
    })
}

fn price_change_from_value(value: &Value, prefix: &str) -> Result<PriceChangeEvent, DecodeError> {
    let event = if value.get("price_changes").is_some() {
        let raw: RawPriceChanges = wire::decode_value(PRICE_CHANGE, prefix, value)?;
        PriceChangeEvent {
            market: raw.market,
            timestamp_ms: raw.timestamp,
            changes: raw
                .price_changes
                .into_iter()
                .map(|c| PriceChange {
                    asset_id: c.asset_id,
                    price: c.price,
                    size: c.size,
                    side: c.side,
                    hash: c.hash,
                    best_bid: c.best_bid,
                    best_ask: c.best_ask,
                })
                .collect(),
        }
    } else if value.get("changes").is_some() {
        let raw: RawChangesList = wire::decode_value(PRICE_CHANGE, prefix, value)?;
        PriceChangeEvent {
            market: raw.market,
            timestamp_ms: raw.timestamp,
            changes: raw
                .changes
                .into_iter()
                .map(|c| PriceChange {
                    asset_id: raw.asset_id.clone(),
                    price: c.price,
                    size: c.size,
                    side: c.side,
                    hash: raw.hash.clone(),
                    best_bid: None,
                    best_ask: None,
                })
                .collect(),
        }
    } else {
        let raw: RawSingleChange = wire::decode_value(PRICE_CHANGE, prefix, value)?;
        PriceChangeEvent {
            market: raw.market,
            timestamp_ms: raw.timestamp,
            changes: vec![PriceChange {
                asset_id: raw.asset_id,
                price: raw.price,
                size: raw.size,
                side: raw.side,
                hash: raw.hash,
                best_bid: None,
                best_ask: None,
            }],
        }
    };
    let list = if value.get("price_changes").is_some() {
        "price_changes"
    } else {
        "changes"
    };
    for (i, c) in event.changes.iter().enumerate() {
        let at = |f: &str| {
            if value.get("price_changes").is_some() || value.get("changes").is_some() {
                wire::join(prefix, &format!("{list}[{i}].{f}"))
            } else {
                wire::join(prefix, f)
            }
        };
        check_price(PRICE_CHANGE, at("price"), c.price, value)?;
        check_size(PRICE_CHANGE, at("size"), c.size, value)?;
        for (name, p) in [("best_bid", c.best_bid), ("best_ask", c.best_ask)] {
            if let Some(p) = p {
                check_price(PRICE_CHANGE, at(name), p, value)?;
            }
        }
    }
    Ok(event)
}

fn event_from_value(value: &Value, prefix: &str) -> Result<MarketEvent, DecodeError> {
    let Value::Object(obj) = value else {
        return Err(DecodeError::invalid(
            FRAME,
            if prefix.is_empty() { "." } else { prefix },
            "expected an event object",
            &value.to_string(),
        ));
    };
    let event_type = match obj.get("event_type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(DecodeError::invalid(
                FRAME,
                wire::join(prefix, "event_type"),
                "expected a string",
                &value.to_string(),
            ));
        }
        None => {
            return Err(DecodeError::missing(
                FRAME,
                wire::join(prefix, "event_type"),
                &value.to_string(),
            ));
        }
    };
    let at = |f: &str| wire::join(prefix, f);
    Ok(match event_type {
        "book" => MarketEvent::Book(book_from_value(value, prefix)?),
        "price_change" => MarketEvent::PriceChange(price_change_from_value(value, prefix)?),
        "tick_size_change" => {
            let raw: RawTickSizeChange = wire::decode_value(TICK, prefix, value)?;
            for (name, t) in [
                ("old_tick_size", raw.old_tick_size),
                ("new_tick_size", raw.new_tick_size),
            ] {
                if t <= Decimal::ZERO || t >= Decimal::ONE {
                    return Err(DecodeError::invalid(
                        TICK,
                        at(name),
                        format!("tick {t} is not within (0, 1)"),
                        &value.to_string(),
                    ));
                }
            }
            MarketEvent::TickSizeChange(TickSizeChange {
                asset_id: raw.asset_id,
                market: raw.market,
                old_tick_size: raw.old_tick_size,
                new_tick_size: raw.new_tick_size,
                timestamp_ms: raw.timestamp,
            })
        }
        "best_bid_ask" => {
            let raw: RawBestBidAsk = wire::decode_value(BBA, prefix, value)?;
            check_price(BBA, at("best_bid"), raw.best_bid, value)?;
            check_price(BBA, at("best_ask"), raw.best_ask, value)?;
            MarketEvent::BestBidAsk(BestBidAsk {
                market: raw.market,
                asset_id: raw.asset_id,
                best_bid: raw.best_bid,
                best_ask: raw.best_ask,
                spread: raw.spread,
                timestamp_ms: raw.timestamp,
            })
        }
        "last_trade_price" => {
            let raw: RawLastTrade = wire::decode_value(LAST, prefix, value)?;
            check_price(LAST, at("price"), raw.price, value)?;
            check_size(LAST, at("size"), raw.size, value)?;
            MarketEvent::LastTradePrice(LastTradePrice {
                asset_id: raw.asset_id,
                market: raw.market,
                price: raw.price,
                size: raw.size,
                side: raw.side,
                fee_rate_bps: raw.fee_rate_bps,
                timestamp_ms: raw.timestamp,
            })
        }
        "market_resolved" => {
            let raw: RawResolved = wire::decode_value(RESOLVED, prefix, value)?;
            MarketEvent::MarketResolved(MarketResolved {
                id: raw.id,
                market: raw.market,
                assets_ids: raw.assets_ids,
                winning_asset_id: raw.winning_asset_id,
                winning_outcome: raw.winning_outcome,
                timestamp_ms: raw.timestamp,
            })
        }
        "new_market" => {
            let raw: RawNewMarket = wire::decode_value(NEW_MARKET, prefix, value)?;
            MarketEvent::NewMarket(NewMarket {
                id: raw.id,
                market: raw.market,
                slug: raw.slug,
                question: raw.question,
                description: raw.description,
                assets_ids: raw.assets_ids,
                outcomes: raw.outcomes,
                tick_size: raw.order_price_min_tick_size,
                timestamp_ms: raw.timestamp,
            })
        }
        other => MarketEvent::Unknown {
            event_type: other.to_string(),
        },
    })
}

/// Decodes one market-channel WebSocket text frame. A malformed event anywhere in an array
/// frame fails the whole frame (naming its index): a book that silently skipped one change
/// would drift from the venue's, so the caller should resynchronise instead.
pub fn parse_ws_frame(text: &str) -> Result<WsFrame, ClobError> {
    match text.trim() {
        "PONG" => return Ok(WsFrame::Pong),
        "PING" => return Ok(WsFrame::Ping),
        _ => {}
    }
    let value = wire::parse_json(FRAME, text)?;
    match &value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| event_from_value(v, &format!("[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(WsFrame::Events)
            .map_err(Into::into),
        Value::Object(obj) => {
            if let (None, Some(Value::String(m))) = (obj.get("event_type"), obj.get("error")) {
                return Err(ClobError::Api { message: m.clone() });
            }
            Ok(WsFrame::Events(vec![event_from_value(&value, "")?]))
        }
        _ => {
            Err(DecodeError::invalid(FRAME, ".", "expected an event object or array", text).into())
        }
    }
}

fn api_error(value: &Value) -> Option<ClobError> {
    match (value.get("error"), value.get("asset_id")) {
        (Some(Value::String(m)), None) => Some(ClobError::Api { message: m.clone() }),
        _ => None,
    }
}

/// Decodes a REST `GET /book?token_id=…` body. Level order is kept as sent (asks usually
/// descending); an `{"error": …}` body (e.g. 404 "No orderbook exists for the requested
/// token id", also seen after a short-window market closes) is [`ClobError::Api`].
pub fn parse_book(body: &str) -> Result<BookSnapshot, ClobError> {
    let value = wire::parse_json(BOOK, body)?;
    if !value.is_object() {
        return Err(DecodeError::invalid(BOOK, ".", "expected a book object", body).into());
    }
    if let Some(e) = api_error(&value) {
        return Err(e);
    }
    Ok(book_from_value(&value, "")?)
}

/// Decodes a REST `POST /books` body (an array of books).
pub fn parse_books(body: &str) -> Result<Vec<BookSnapshot>, ClobError> {
    let value = wire::parse_json(BOOK, body)?;
    match &value {
        Value::Array(items) => Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| book_from_value(v, &format!("[{i}]")))
            .collect::<Result<Vec<_>, _>>()?),
        _ => Err(api_error(&value).unwrap_or_else(|| {
            DecodeError::invalid(BOOK, ".", "expected an array of books", body).into()
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::binance::Problem;
    use crate::feed::binance::fuzzkit::{json_value, mutated, shared, value_mutated};
    use crate::venue::polymarket::gamma::parse_market;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn fixture(name: &str) -> String {
        shared(&format!("polymarket_api_samples/{name}"))
    }

    fn events(text: &str) -> Vec<MarketEvent> {
        match parse_ws_frame(text).unwrap() {
            WsFrame::Events(e) => e,
            other => panic!("expected events, got {other:?}"),
        }
    }

    fn one(text: &str) -> MarketEvent {
        let mut e = events(text);
        assert_eq!(e.len(), 1);
        e.remove(0)
    }

    fn decode_err(e: ClobError) -> DecodeError {
        match e {
            ClobError::Decode(d) => d,
            other => panic!("expected a decode error, got {other:?}"),
        }
    }

    // Reference §4.1 examples (DOCS market-channel page; RS1 tests/websocket.rs), verbatim
    // except where the reference elides ids with "…".
    const BOOK_DOC: &str = r#"{ "event_type": "book", "asset_id": "65818619657568813474341868652308942079804919287380422192892211131408793125422",
  "market": "0xbd31dc8a20211944f6b70f31557f1001557b59905b7738480ca09bd4532f84af",
  "bids": [ {"price": ".48", "size": "30"}, {"price": ".49", "size": "20"}, {"price": ".50", "size": "15"} ],
  "asks": [ {"price": ".52", "size": "25"}, {"price": ".53", "size": "60"}, {"price": ".54", "size": "10"} ],
  "timestamp": "123456789000", "hash": "0x0...." }"#;
    const PRICE_CHANGES_DOC: &str = r#"{ "market": "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1",
  "price_changes": [ { "asset_id": "71321045679252212594626385532706912750332728571942532289631379312455583992563",
      "price": "0.5", "size": "200", "side": "BUY", "hash": "56621a121a47ed9333273e21c83b660cff37ae50",
      "best_bid": "0.5", "best_ask": "1" } ],
  "timestamp": "1757908892351", "event_type": "price_change" }"#;
    /// Pre-2025-09-15 per-asset form (DOCS market-channel-migration-guide; hand-written).
    const CHANGES_LEGACY: &str = r#"{"event_type":"price_change","asset_id":"71321045679252212594626385532706912750332728571942532289631379312455583992563","market":"0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1","changes":[{"price":"0.4","side":"SELL","size":"3300"},{"price":"0.5","side":"BUY","size":"0"}],"timestamp":"1729084877448","hash":"3cd4d61e042c81560c9037ece0c61f3b1a8fbbdd"}"#;
    const TICK_DOC: &str = r#"{ "event_type": "tick_size_change", "asset_id": "65818619657568813474341868652308942079804919287380422192892211131408793125422", "market": "0xbd31dc8a20211944f6b70f31557f1001557b59905b7738480ca09bd4532f84af",
  "old_tick_size": "0.01", "new_tick_size": "0.001", "timestamp": "100000000" }"#;

    #[test]
    fn rest_book_fixture_keeps_descending_asks_as_sent() {
        let b = parse_book(&fixture("nautilus_py_http_responses_book.json")).unwrap();
        assert_eq!(
            b.market,
            "0x1a4f04c2e6c000d9fc524eb12e7333217411a226c34745af140f195c0227cd5f"
        );
        assert_eq!(
            b.asset_id,
            "23360939988679364027624185518382759743328544433592111535569478055890815567848"
        );
        assert_eq!(b.timestamp_ms, 1_728_799_418_260);
        assert_eq!(
            b.hash.as_deref(),
            Some("2fc4a3d6a98bc164e057589bcb74981852b87412")
        );
        assert_eq!(b.bids.len(), 5);
        assert_eq!(b.asks.len(), 7);
        assert_eq!(
            b.bids[4],
            PriceLevel {
                price: dec!(0.1),
                size: dec!(125)
            }
        );
        // The real answer lists asks descending: best (0.14) last.
        assert_eq!(
            b.asks[0],
            PriceLevel {
                price: dec!(0.98),
                size: dec!(5000)
            }
        );
        assert_eq!(
            b.asks[6],
            PriceLevel {
                price: dec!(0.14),
                size: dec!(705)
            }
        );
        assert_eq!(b.asks[4].size, dec!(192.3));
        assert_eq!(b.tick_size, None);
    }

    #[test]
    fn rest_book_reference_example_and_errors() {
        // Reference §3.1 RS1 fixture.
        let body = r#"{ "market": "0xaabbcc", "asset_id": "100", "tick_size": "0.01", "min_order_size": "100",
  "neg_risk": false, "timestamp": "123456789",
  "bids": [ { "price": "0.3", "size": "100" }, { "price": "0.4", "size": "100" } ],
  "asks": [ { "price": "0.6", "size": "100" }, { "price": "0.7", "size": "100" } ] }"#;
        let b = parse_book(body).unwrap();
        assert_eq!(
            (b.tick_size, b.min_order_size, b.neg_risk),
            (Some(dec!(0.01)), Some(dec!(100)), Some(false))
        );
        assert_eq!(parse_books(&format!("[{body},{body}]")).unwrap().len(), 2);
        // §5.2 error bodies.
        assert_eq!(
            parse_book(r#"{"error":"No orderbook exists for the requested token id"}"#)
                .unwrap_err(),
            ClobError::Api {
                message: "No orderbook exists for the requested token id".into()
            }
        );
        assert!(matches!(
            parse_books(r#"{"error":"Invalid payload"}"#),
            Err(ClobError::Api { .. })
        ));
        let e = decode_err(
            parse_book(&body.replace(r#""price": "0.7""#, r#""price": "1.7""#)).unwrap_err(),
        );
        assert_eq!(e.field(), Some("asks[1].price"), "{e}");
        let e = decode_err(
            parse_book(&body.replace(r#""size": "100" } ]"#, r#""size": "-1" } ]"#)).unwrap_err(),
        );
        assert_eq!(e.field(), Some("bids[1].size"), "{e}");
        let e = decode_err(
            parse_book(&body.replace(
                r#"{ "price": "0.3", "size": "100" }"#,
                r#"{ "size": "100" }"#,
            ))
            .unwrap_err(),
        );
        assert_eq!(e.problem, Problem::Missing("bids[0].price".into()), "{e}");
    }

    #[test]
    fn ws_book_capture_and_doc_example() {
        let MarketEvent::Book(b) = one(&fixture("nautilus_py_ws_messages_book.json")) else {
            panic!("not a book")
        };
        assert_eq!((b.bids.len(), b.asks.len()), (76, 86));
        assert_eq!(b.timestamp_ms, 1_728_799_418_260);
        assert_eq!(
            b.asks[0],
            PriceLevel {
                price: dec!(0.999),
                size: dec!(10500100)
            }
        );
        let MarketEvent::Book(b) = one(BOOK_DOC) else {
            panic!("not a book")
        };
        assert_eq!(b.bids[0].price, dec!(0.48)); // ".48"
        assert_eq!(
            b.asks[2],
            PriceLevel {
                price: dec!(0.54),
                size: dec!(10)
            }
        );
        assert_eq!(b.timestamp_ms, 123_456_789_000);
    }

    #[test]
    fn price_change_in_all_three_shapes() {
        // The recorded legacy single form.
        let MarketEvent::PriceChange(p) =
            one(&fixture("nautilus_py_ws_messages_price_change.json"))
        else {
            panic!()
        };
        assert_eq!(
            p.market,
            "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
        );
        assert_eq!(p.timestamp_ms, 1_723_967_931_411);
        assert_eq!(
            p.changes,
            vec![PriceChange {
                asset_id:
                    "48331043336612883890938759509493159234755048973500640148014422747788308965732"
                        .into(),
                price: dec!(0.514),
                size: dec!(21574.08),
                side: OrderSide::Sell,
                hash: Some("bf32b3746fff40c76c98021b7f3f07261169dd26".into()),
                best_bid: None,
                best_ask: None,
            }]
        );
        // The current price_changes[] form (reference §4.1).
        let MarketEvent::PriceChange(p) = one(PRICE_CHANGES_DOC) else {
            panic!()
        };
        assert_eq!(p.timestamp_ms, 1_757_908_892_351);
        let c = &p.changes[0];
        assert_eq!(
            (c.price, c.size, c.side),
            (dec!(0.5), dec!(200), OrderSide::Buy)
        );
        assert_eq!((c.best_bid, c.best_ask), (Some(dec!(0.5)), Some(dec!(1))));
        // The per-asset changes[] form.
        let MarketEvent::PriceChange(p) = one(CHANGES_LEGACY) else {
            panic!()
        };
        assert_eq!(p.changes.len(), 2);
        assert_eq!(p.changes[1].size, dec!(0));
        assert!(p.changes.iter().all(|c| c.asset_id.starts_with("7132")));
        // Errors name the element.
        let bad = PRICE_CHANGES_DOC.replace(r#""side": "BUY""#, r#""side": "HOLD""#);
        let e = decode_err(parse_ws_frame(&bad).unwrap_err());
        assert_eq!(e.field(), Some("price_changes[0].side"), "{e}");
        let bad = PRICE_CHANGES_DOC.replace(r#""best_ask": "1""#, r#""best_ask": "2""#);
        assert_eq!(
            decode_err(parse_ws_frame(&bad).unwrap_err()).field(),
            Some("price_changes[0].best_ask")
        );
    }

    #[test]
    fn tick_best_bid_ask_and_last_trade() {
        let MarketEvent::TickSizeChange(t) =
            one(&fixture("nautilus_py_ws_messages_tick_size_change.json"))
        else {
            panic!()
        };
        assert_eq!(
            (t.old_tick_size, t.new_tick_size, t.timestamp_ms),
            (dec!(0.01), dec!(0.001), 1_739_068_041_853)
        );
        assert!(matches!(one(TICK_DOC), MarketEvent::TickSizeChange(_)));
        let MarketEvent::BestBidAsk(b) =
            one(&fixture("nautilus_crate_ws_market_best_bid_ask_msg.json"))
        else {
            panic!()
        };
        assert_eq!(
            (b.best_bid, b.best_ask, b.spread),
            (dec!(0.73), dec!(0.77), Some(dec!(0.04)))
        );
        assert_eq!(b.timestamp_ms, 1_766_789_469_958);
        let MarketEvent::LastTradePrice(l) =
            one(&fixture("nautilus_py_ws_messages_last_trade_price.json"))
        else {
            panic!()
        };
        assert_eq!(
            (l.price, l.size, l.side),
            (dec!(0.491), dec!(85.36), OrderSide::Sell)
        );
        assert_eq!(
            (l.fee_rate_bps, l.timestamp_ms),
            (Some(dec!(0)), 1_724_564_136_087)
        );
    }

    #[test]
    fn resolved_and_new_market_events() {
        let MarketEvent::MarketResolved(r) =
            one(&fixture("nautilus_crate_ws_market_resolved_msg.json"))
        else {
            panic!()
        };
        assert_eq!(r.winning_outcome, "Yes");
        assert_eq!(
            r.winning_asset_id,
            "76043073756653678226373981964075571318267289248134717369284518995922789326425"
        );
        assert_eq!(r.assets_ids.len(), 2);
        assert_eq!(r.id.as_deref(), Some("1031769"));
        let MarketEvent::NewMarket(n) =
            one(&fixture("nautilus_crate_ws_market_new_market_msg.json"))
        else {
            panic!()
        };
        assert_eq!(n.slug.as_deref(), Some("nvda-above-240-on-january-30-2026"));
        assert_eq!(n.outcomes, ["Yes", "No"]);
        assert_eq!(n.tick_size, Some(dec!(0.01)));
        assert_eq!(n.up_down_tokens(), None); // Yes/No is not an up/down market
        let mut up_down = n.clone();
        up_down.outcomes = vec!["Down".into(), "Up".into()];
        let (up, down) = up_down.up_down_tokens().unwrap();
        assert_eq!(
            (up, down),
            (n.assets_ids[1].clone(), n.assets_ids[0].clone())
        );
    }

    #[test]
    fn market_resolved_is_mapped_to_a_side_only_when_consistent() {
        let market = parse_market(&fixture("nautilus_crate_gamma_market.json")).unwrap();
        let resolved = |asset: &str, outcome: &str, condition: &str| MarketResolved {
            id: None,
            market: condition.into(),
            assets_ids: vec![market.up_token.clone(), market.down_token.clone()],
            winning_asset_id: asset.into(),
            winning_outcome: outcome.into(),
            timestamp_ms: 0,
        };
        let cid = market.condition_id.clone();
        assert_eq!(
            resolved(&market.down_token, "Down", &cid)
                .winning_side(&market)
                .unwrap(),
            Side::Down
        );
        assert_eq!(
            resolved(&market.up_token, "Up", &cid)
                .winning_side(&market)
                .unwrap(),
            Side::Up
        );
        assert!(
            resolved(&market.up_token, "Down", &cid)
                .winning_side(&market)
                .is_err()
        );
        assert!(resolved("123", "Up", &cid).winning_side(&market).is_err());
        assert!(
            resolved(&market.up_token, "Up", "0xother")
                .winning_side(&market)
                .is_err()
        );
    }

    #[test]
    fn frames_pings_arrays_and_unknown_events() {
        assert_eq!(parse_ws_frame("PONG").unwrap(), WsFrame::Pong);
        assert_eq!(parse_ws_frame("PING\n").unwrap(), WsFrame::Ping);
        assert_eq!(parse_ws_frame("[]").unwrap(), WsFrame::Events(vec![]));
        let frame =
            format!("[{BOOK_DOC}, {PRICE_CHANGES_DOC}, {{\"event_type\":\"brand_new\",\"x\":1}}]");
        let e = events(&frame);
        assert_eq!(e.len(), 3);
        assert!(matches!(e[0], MarketEvent::Book(_)));
        assert!(matches!(e[1], MarketEvent::PriceChange(_)));
        assert_eq!(
            e[2],
            MarketEvent::Unknown {
                event_type: "brand_new".into()
            }
        );
        // One bad element fails the frame, naming its index.
        let bad = format!(
            "[{BOOK_DOC}, {}]",
            TICK_DOC.replace(r#""new_tick_size": "0.001""#, r#""new_tick_size": "x""#)
        );
        let e = decode_err(parse_ws_frame(&bad).unwrap_err());
        assert_eq!(e.field(), Some("[1].new_tick_size"), "{e}");
        assert!(e.excerpt.contains("tick_size_change"), "{e}"); // the excerpt is the bad element
        let e = decode_err(parse_ws_frame(r#"[{"market":"0x1"}]"#).unwrap_err());
        assert_eq!(e.problem, Problem::Missing("[0].event_type".into()));
        for bad in [
            "",
            "pong",
            "INVALID OPERATION",
            "42",
            "[1]",
            "{\"event_type\":7}",
        ] {
            assert!(parse_ws_frame(bad).is_err(), "{bad:?}");
        }
    }

    fn payloads() -> Vec<String> {
        let mut p: Vec<String> = [
            "nautilus_py_http_responses_book.json",
            "nautilus_py_ws_messages_book.json",
            "nautilus_py_ws_messages_price_change.json",
            "nautilus_py_ws_messages_tick_size_change.json",
            "nautilus_py_ws_messages_last_trade_price.json",
            "nautilus_crate_ws_market_best_bid_ask_msg.json",
            "nautilus_crate_ws_market_resolved_msg.json",
            "nautilus_crate_ws_market_new_market_msg.json",
        ]
        .iter()
        .map(|n| fixture(n))
        .collect();
        p.extend([BOOK_DOC, PRICE_CHANGES_DOC, CHANGES_LEGACY, TICK_DOC].map(String::from));
        p.push(format!("[{BOOK_DOC},{PRICE_CHANGES_DOC}]"));
        p
    }

    fn all(s: &str) {
        if let Ok(WsFrame::Events(events)) = parse_ws_frame(s) {
            for e in events {
                if let MarketEvent::Book(b) = e {
                    assert!(
                        b.bids
                            .iter()
                            .chain(&b.asks)
                            .all(|l| l.size >= Decimal::ZERO)
                    );
                }
            }
        }
        let _ = parse_book(s);
        let _ = parse_books(s);
    }

    proptest! {
        #[test]
        fn fuzz_clob_arbitrary_strings(s in ".*") {
            all(&s);
        }

        #[test]
        fn fuzz_clob_arbitrary_json(v in json_value()) {
            all(&v.to_string());
            all(&serde_json::json!([v]).to_string());
        }

        #[test]
        fn fuzz_clob_mutated_payloads(s in mutated(payloads())) {
            all(&s);
        }

        #[test]
        fn fuzz_clob_value_mutations(s in value_mutated(payloads())) {
            all(&s);
        }
    }
}
