//! Gamma API market discovery: the bodies of `GET /events?slug=…`, `GET /events/slug/<slug>`
//! and `GET /markets?slug=…` decoded into a [`MarketInfo`] for one BTC Up/Down window.
//!
//! Owns decoding and the checks that make a market safe to trade or settle; stops before any
//! HTTP (the venue fetches) and before any decision (the session decides). Reference
//! `shared/reference/polymarket-api.md`:
//!
//! - §1.4: use `/events?slug=<slug>` (or `/events/slug/<slug>`) and read the event's market;
//!   fall back to `/markets?slug=`. Unsupported filters are *silently ignored* by Gamma, so
//!   a list answer is searched for the requested slug, and a list without it is an error,
//!   not "the first market".
//! - §1.5: `outcomes`, `outcomePrices` and `clobTokenIds` are **JSON-encoded strings**;
//!   tokens map to outcomes **by index**, never by assumed order. Outcomes must be exactly
//!   `Up` and `Down`. Tick size and minimum size are read per market (they differ between
//!   markets and change over time). `startDate` is the listing time, not the window start:
//!   `eventStartTime` is, and it must agree with the `<unix start>` in the slug (§1.3).
//! - §1.6: after resolution `closed` is true and `outcomePrices` is `["1","0"]` or
//!   `["0","1"]`; zero or two winners are refused ([`MarketResolution::Ambiguous`]).
//! - §2.1: the rule text changed (start-vs-end price, later TWAP); [`ResolutionRule`] says
//!   which one the description states so the caller can refuse a rule it does not model.
//! - §1.5/§2.2: the fee schedule (`feeSchedule.rate`, `.exponent`) when Gamma publishes it.

use crate::domain::Side;
use crate::feed::binance::{DecodeError, wire};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

/// Everything that can go wrong reading a Gamma body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GammaError {
    /// Malformed or inconsistent payload (names the field, shows an excerpt).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Gamma answered with an error body (`{"error": …}`).
    #[error("gamma error: {message}")]
    Api {
        /// Gamma's message.
        message: String,
    },
    /// The market's outcomes are not exactly `Up` and `Down`: not a market this bot trades.
    #[error("market {slug}: outcomes {outcomes:?} are not exactly Up/Down")]
    NotUpDown {
        /// The market's slug.
        slug: String,
        /// Its outcomes as sent.
        outcomes: Vec<String>,
    },
    /// A list answer holds markets, but none with the requested slug (Gamma ignores
    /// unsupported filters and may answer with unrelated markets).
    #[error("no market with slug {expected} in the answer (found {found:?})")]
    SlugMismatch {
        /// The slug asked for.
        expected: String,
        /// Slugs present in the answer (first few).
        found: Vec<String>,
    },
}

/// Current prices of the two outcome tokens, mapped by index like the token ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpDownPrices {
    /// Price of the Up token.
    pub up: Decimal,
    /// Price of the Down token.
    pub down: Decimal,
}

impl UpDownPrices {
    /// The price of `side`.
    pub fn of(&self, side: Side) -> Decimal {
        match side {
            Side::Up => self.up,
            Side::Down => self.down,
        }
    }
}

/// What Gamma says about the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarketResolution {
    /// Not closed: nothing to settle yet.
    Open,
    /// Closed, and exactly one side is priced 1 and the other 0: that side won.
    Resolved(Side),
    /// Closed, but the prices are not exactly one 1 and one 0 (zero or two winners, or not
    /// final yet): refuse to settle from this answer and ask again later.
    Ambiguous,
}

impl MarketResolution {
    /// The resolution given `closed` and the outcome prices mapped to sides.
    pub fn from_prices(closed: bool, prices: Option<&UpDownPrices>) -> Self {
        if !closed {
            return MarketResolution::Open;
        }
        let Some(p) = prices else {
            return MarketResolution::Ambiguous;
        };
        match winning_index(&[p.up, p.down]) {
            Some(0) => MarketResolution::Resolved(Side::Up),
            Some(_) => MarketResolution::Resolved(Side::Down),
            None => MarketResolution::Ambiguous,
        }
    }
}

/// Index of the single outcome priced exactly 1 when every other one is exactly 0; `None`
/// for zero winners (`["0","0"]`), two winners, or prices not yet final (`["0.5","0.5"]`).
pub fn winning_index(prices: &[Decimal]) -> Option<usize> {
    let ones: Vec<usize> = (0..prices.len())
        .filter(|i| prices[*i] == Decimal::ONE)
        .collect();
    let zeros = prices.iter().filter(|p| p.is_zero()).count();
    match ones.as_slice() {
        [i] if zeros + 1 == prices.len() => Some(*i),
        _ => None,
    }
}

/// How the market's description says it resolves (reference §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolutionRule {
    /// "Up if the price at the end of the time range is greater than or equal to the price
    /// at the beginning" (text observed Dec 2025 – at least Jul 2026). Ties go Up.
    StartVsEnd,
    /// "Up if the time-weighted average price (TWAP) … is greater than or equal to the price
    /// at the beginning" (later text). Ties go Up.
    Twap,
    /// Neither wording (or a tie rule other than "greater than or equal to"): the caller
    /// should not trade a rule it does not model.
    Unknown,
}

impl ResolutionRule {
    /// Reads the rule from a market description. Matching is on the phrases that decide the
    /// outcome, case-insensitively; anything unexpected is [`ResolutionRule::Unknown`].
    pub fn from_description(text: &str) -> Self {
        let t = text.to_lowercase();
        // Both known rules send ties to Up; a text without that phrase changed the rule.
        if !t.contains("greater than or equal to") {
            return ResolutionRule::Unknown;
        }
        if t.contains("time-weighted average") || t.contains("twap") {
            ResolutionRule::Twap
        } else if t.contains("price at the end of the time range")
            && t.contains("price at the beginning of that range")
        {
            ResolutionRule::StartVsEnd
        } else {
            ResolutionRule::Unknown
        }
    }
}

/// Largest fee exponent accepted; Polymarket has used 1 and 2 (reference §2.2).
const MAX_FEE_EXPONENT: u32 = 8;

/// The taker fee schedule Gamma publishes (`feeSchedule`, reference §1.5):
/// `fee = shares × rate × (p × (1 − p))^exponent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeeSchedule {
    /// `rate`, e.g. 0.07 for crypto.
    pub rate: Decimal,
    /// `exponent`, e.g. 1 (V2) or 2 (early 15-minute fees).
    pub exponent: u32,
    /// `takerOnly`, when present.
    pub taker_only: Option<bool>,
    /// `rebateRate` (share of fees rebated to makers), when present.
    pub rebate_rate: Option<Decimal>,
}

impl FeeSchedule {
    /// The fee in USD for taking `shares` at `price`, rounded to 5 decimals as Polymarket
    /// does; `None` on overflow. With exponent 1 this equals [`crate::venue::fee`].
    pub fn fee(&self, shares: Decimal, price: Decimal) -> Option<Decimal> {
        let base = price.checked_mul(Decimal::ONE.checked_sub(price)?)?;
        let mut factor = Decimal::ONE;
        for _ in 0..self.exponent {
            factor = factor.checked_mul(base)?;
        }
        Some(
            shares
                .checked_mul(self.rate)?
                .checked_mul(factor)?
                .round_dp_with_strategy(5, RoundingStrategy::MidpointAwayFromZero),
        )
    }
}

/// One BTC Up/Down market as Gamma describes it, checked and mapped to sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketInfo {
    /// Gamma's market id (`id`), when present.
    pub id: Option<String>,
    /// Market slug, e.g. `btc-updown-5m-1773307200`.
    pub slug: String,
    /// Condition id (`conditionId`, `0x` + 64 hex); the user channel and CLOB market
    /// endpoints key on it.
    pub condition_id: String,
    /// The question, e.g. "Bitcoin Up or Down - March 12, 5:20AM-5:25AM ET".
    pub question: String,
    /// The resolution text.
    pub description: String,
    /// `resolutionSource` (e.g. the Chainlink stream page), when non-empty.
    pub resolution_source: Option<String>,
    /// The rule the description states.
    pub rule: ResolutionRule,
    /// Token id of the Up outcome (decimal string, as the CLOB expects it).
    pub up_token: String,
    /// Token id of the Down outcome.
    pub down_token: String,
    /// `outcomePrices` mapped to sides, when present.
    pub prices: Option<UpDownPrices>,
    /// Price tick (`orderPriceMinTickSize`).
    pub tick_size: Decimal,
    /// Minimum order size (`orderMinSize`; shares per the CLOB docs, see reference §9).
    pub min_order_size: Decimal,
    /// `feeSchedule`, when present.
    pub fee_schedule: Option<FeeSchedule>,
    /// `feesEnabled`, when present.
    pub fees_enabled: Option<bool>,
    /// `feeType` (e.g. `crypto_fees_v2`), when present.
    pub fee_type: Option<String>,
    /// `active`.
    pub active: bool,
    /// `closed`.
    pub closed: bool,
    /// `acceptingOrders` (absent → false: only trade what Gamma says is open).
    pub accepting_orders: bool,
    /// `enableOrderBook` (absent → false).
    pub enable_order_book: bool,
    /// Window start (`eventStartTime`), Unix seconds, when present.
    pub event_start_time: Option<i64>,
    /// Window end (`endDate`), Unix seconds.
    pub end_time: i64,
    /// `negRisk`, when present (BTC Up/Down markets are not neg-risk).
    pub neg_risk: Option<bool>,
    /// `umaResolutionStatus`, when present (e.g. `resolved`).
    pub uma_resolution_status: Option<String>,
    /// The outcome as far as Gamma knows.
    pub resolution: MarketResolution,
}

impl MarketInfo {
    /// Token id of `side`.
    pub fn token(&self, side: Side) -> &str {
        match side {
            Side::Up => &self.up_token,
            Side::Down => &self.down_token,
        }
    }

    /// The side a token id belongs to, if it belongs to this market.
    pub fn side_of(&self, token_id: &str) -> Option<Side> {
        if token_id == self.up_token {
            Some(Side::Up)
        } else if token_id == self.down_token {
            Some(Side::Down)
        } else {
            None
        }
    }

    /// Window start: `eventStartTime`, else the `<unix start>` of an up/down slug.
    pub fn window_start(&self) -> Option<i64> {
        self.event_start_time
            .or_else(|| parse_updown_slug(&self.slug).map(|(start, _)| start))
    }

    /// Whether Gamma says orders can be placed now.
    pub fn is_tradeable(&self) -> bool {
        self.active && !self.closed && self.accepting_orders && self.enable_order_book
    }
}

/// The slug of the BTC Up/Down market of `minutes` length starting at `start` (Unix
/// seconds), e.g. `btc-updown-5m-1773307200` (reference §1.3: the number is the start).
pub fn updown_slug(minutes: u32, start: i64) -> String {
    format!("btc-updown-{minutes}m-{start}")
}

/// `(start, length_secs)` from a `btc-updown-<N>m-<unix start>` slug, if it is one and the
/// start is aligned to the length.
pub fn parse_updown_slug(slug: &str) -> Option<(i64, i64)> {
    let rest = slug.strip_prefix("btc-updown-")?;
    let (len, start) = rest.split_once("m-")?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if start.is_empty() || !start.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: i64 = len.parse().ok()?;
    let start: i64 = start.parse().ok()?;
    let secs = len.checked_mul(60)?;
    (secs > 0 && start % secs == 0).then_some((start, secs))
}

// ---- raw shapes ----

/// A list of strings sent either as a JSON-encoded string (`"[\"Up\", \"Down\"]"`, the
/// documented form) or as a plain JSON array (tolerated, in case Gamma fixes the encoding).
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Value::deserialize(d)?;
    let list = unwrap_encoded(v).map_err(de::Error::custom)?;
    list.into_iter()
        .map(|x| match x {
            Value::String(s) => Ok(s),
            other => Err(de::Error::custom(format!("expected strings, got {other}"))),
        })
        .collect()
}

/// Like [`string_list`], elements being decimals as strings or numbers; null/absent → None.
fn opt_decimal_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Decimal>>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let v = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let list = unwrap_encoded(v).map_err(de::Error::custom)?;
    list.into_iter()
        .map(|x| {
            let p = match &x {
                Value::String(s) => wire::decimal_from_str(s),
                Value::Number(n) => n.as_i64().map(Decimal::from).or_else(|| {
                    n.as_f64()
                        .and_then(|f| wire::decimal_from_str(&f.to_string()))
                }),
                _ => None,
            };
            p.ok_or_else(|| de::Error::custom(format!("not a decimal: {x}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn unwrap_encoded(v: Value) -> Result<Vec<Value>, String> {
    match v {
        Value::Array(a) => Ok(a),
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(a)) => Ok(a),
            _ => Err(format!("not a JSON-encoded list: {s:?}")),
        },
        other => Err(format!("expected a JSON-encoded list, got {other}")),
    }
}

fn rfc3339_secs(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp())
        .map_err(|e| format!("not an RFC 3339 time ({e}): {s:?}"))
}

fn time_secs<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    rfc3339_secs(&String::deserialize(d)?).map_err(de::Error::custom)
}

fn opt_time_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => rfc3339_secs(&s).map(Some).map_err(de::Error::custom),
    }
}

fn exponent<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let x = wire::decimal(d)?;
    match x.to_u32() {
        Some(e) if x.fract().is_zero() && e <= MAX_FEE_EXPONENT => Ok(e),
        _ => Err(de::Error::custom(format!(
            "fee exponent must be a whole number 0..={MAX_FEE_EXPONENT}, got {x}"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFeeSchedule {
    #[serde(deserialize_with = "wire::decimal")]
    rate: Decimal,
    #[serde(deserialize_with = "exponent")]
    exponent: u32,
    #[serde(default)]
    taker_only: Option<bool>,
    #[serde(default, deserialize_with = "wire::opt_decimal")]
    rebate_rate: Option<Decimal>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMarket {
    #[serde(default)]
    id: Option<Value>,
    slug: String,
    condition_id: String,
    question: String,
    description: String,
    #[serde(default)]
    resolution_source: Option<String>,
    #[serde(deserialize_with = "string_list")]
    outcomes: Vec<String>,
    #[serde(default, deserialize_with = "opt_decimal_list")]
    outcome_prices: Option<Vec<Decimal>>,
    #[serde(deserialize_with = "string_list")]
    clob_token_ids: Vec<String>,
    #[serde(deserialize_with = "wire::decimal")]
    order_price_min_tick_size: Decimal,
    #[serde(deserialize_with = "wire::decimal")]
    order_min_size: Decimal,
    #[serde(default)]
    fee_schedule: Option<RawFeeSchedule>,
    #[serde(default)]
    fees_enabled: Option<bool>,
    #[serde(default)]
    fee_type: Option<String>,
    active: bool,
    closed: bool,
    #[serde(default)]
    accepting_orders: Option<bool>,
    #[serde(default)]
    enable_order_book: Option<bool>,
    #[serde(default, deserialize_with = "opt_time_secs")]
    event_start_time: Option<i64>,
    #[serde(deserialize_with = "time_secs")]
    end_date: i64,
    #[serde(default)]
    neg_risk: Option<bool>,
    #[serde(default)]
    uma_resolution_status: Option<String>,
}

const MARKET: &str = "gamma market";
const EVENTS: &str = "gamma events";
const EVENT: &str = "gamma event";
const MARKETS: &str = "gamma markets";

/// Indices of `Up` and `Down` in `outcomes`, if the outcomes are exactly those two.
pub fn up_down_indices(outcomes: &[String]) -> Option<(usize, usize)> {
    match outcomes {
        [a, b] if a == "Up" && b == "Down" => Some((0, 1)),
        [a, b] if a == "Down" && b == "Up" => Some((1, 0)),
        _ => None,
    }
}

fn is_condition_id(s: &str) -> bool {
    s.len() == 66 && s.starts_with("0x") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_token_id(s: &str) -> bool {
    // CLOB token ids are uint256 in decimal.
    !s.is_empty() && s.len() <= 78 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Decodes and checks one market object; `prefix` locates it in its answer for errors.
fn market_from_value(value: &Value, prefix: &str) -> Result<MarketInfo, GammaError> {
    let raw: RawMarket = wire::decode_value(MARKET, prefix, value)?;
    let payload = value.to_string();
    let field = |f: &str| wire::join(prefix, f);
    let bad = |f: &str, reason: String| -> GammaError {
        DecodeError::invalid(MARKET, field(f), reason, &payload).into()
    };

    let Some((up, down)) = up_down_indices(&raw.outcomes) else {
        return Err(GammaError::NotUpDown {
            slug: raw.slug,
            outcomes: raw.outcomes,
        });
    };
    if raw.clob_token_ids.len() != raw.outcomes.len() {
        return Err(bad(
            "clobTokenIds",
            format!(
                "{} token ids for {} outcomes",
                raw.clob_token_ids.len(),
                raw.outcomes.len()
            ),
        ));
    }
    let (up_token, down_token) = (
        raw.clob_token_ids[up].clone(),
        raw.clob_token_ids[down].clone(),
    );
    if !is_token_id(&up_token) || !is_token_id(&down_token) || up_token == down_token {
        return Err(bad(
            "clobTokenIds",
            "token ids must be two distinct decimal integers".into(),
        ));
    }
    if !is_condition_id(&raw.condition_id) {
        return Err(bad("conditionId", "expected 0x and 64 hex digits".into()));
    }
    let prices = match &raw.outcome_prices {
        None => None,
        Some(p) if p.len() != raw.outcomes.len() => {
            return Err(bad(
                "outcomePrices",
                format!("{} prices for {} outcomes", p.len(), raw.outcomes.len()),
            ));
        }
        Some(p) if p.iter().any(|x| *x < Decimal::ZERO || *x > Decimal::ONE) => {
            return Err(bad("outcomePrices", "prices must be within 0..=1".into()));
        }
        Some(p) => Some(UpDownPrices {
            up: p[up],
            down: p[down],
        }),
    };
    if raw.order_price_min_tick_size <= Decimal::ZERO
        || raw.order_price_min_tick_size >= Decimal::ONE
    {
        return Err(bad(
            "orderPriceMinTickSize",
            format!(
                "tick {} is not within (0, 1)",
                raw.order_price_min_tick_size
            ),
        ));
    }
    if raw.order_min_size <= Decimal::ZERO {
        return Err(bad(
            "orderMinSize",
            format!("minimum size {} is not positive", raw.order_min_size),
        ));
    }
    if let Some(f) = &raw.fee_schedule
        && (f.rate < Decimal::ZERO || f.rate > Decimal::ONE)
    {
        return Err(bad(
            "feeSchedule.rate",
            format!("rate {} is not within 0..=1", f.rate),
        ));
    }
    if let Some(start) = raw.event_start_time {
        if raw.end_date <= start {
            return Err(bad(
                "endDate",
                format!("window end {} is not after its start {start}", raw.end_date),
            ));
        }
        // §1.3: the slug's number is the window start; a disagreement means one of them is
        // not what we think, and settling against the wrong window would be silent loss.
        if let Some((slug_start, _)) = parse_updown_slug(&raw.slug)
            && slug_start != start
        {
            return Err(bad(
                "eventStartTime",
                format!("window start {start} disagrees with the slug's {slug_start}"),
            ));
        }
    }
    let resolution = MarketResolution::from_prices(raw.closed, prices.as_ref());
    Ok(MarketInfo {
        id: raw.id.map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        }),
        rule: ResolutionRule::from_description(&raw.description),
        slug: raw.slug,
        condition_id: raw.condition_id,
        question: raw.question,
        description: raw.description,
        resolution_source: raw.resolution_source.filter(|s| !s.trim().is_empty()),
        up_token,
        down_token,
        prices,
        tick_size: raw.order_price_min_tick_size.normalize(),
        min_order_size: raw.order_min_size.normalize(),
        fee_schedule: raw.fee_schedule.map(|f| FeeSchedule {
            rate: f.rate,
            exponent: f.exponent,
            taker_only: f.taker_only,
            rebate_rate: f.rebate_rate,
        }),
        fees_enabled: raw.fees_enabled,
        fee_type: raw.fee_type,
        active: raw.active,
        closed: raw.closed,
        accepting_orders: raw.accepting_orders.unwrap_or(false),
        enable_order_book: raw.enable_order_book.unwrap_or(false),
        event_start_time: raw.event_start_time,
        end_time: raw.end_date,
        neg_risk: raw.neg_risk,
        uma_resolution_status: raw.uma_resolution_status,
        resolution,
    })
}

/// An `{"error": "…"}` body (Gamma's and the CLOB's error shape, reference §5.2).
fn api_error(value: &Value) -> Option<GammaError> {
    match value.get("error") {
        Some(Value::String(m)) => Some(GammaError::Api { message: m.clone() }),
        _ => None,
    }
}

fn slug_of(v: &Value) -> Option<String> {
    v.get("slug").and_then(Value::as_str).map(str::to_string)
}

/// Decodes one market object (e.g. `GET /markets/slug/<slug>`, or an element of a list).
pub fn parse_market(body: &str) -> Result<MarketInfo, GammaError> {
    let value = wire::parse_json(MARKET, body)?;
    if !value.is_object() {
        return Err(DecodeError::invalid(MARKET, ".", "expected a market object", body).into());
    }
    if let Some(e) = api_error(&value)
        && value.get("slug").is_none()
    {
        return Err(e);
    }
    market_from_value(&value, "")
}

/// Decodes `GET /markets?slug=<slug>` (an array of markets) and returns the market with
/// `slug`: `Ok(None)` for an empty array ("market missing", e.g. not listed yet or the
/// endpoint returning nothing for up/down slugs, reference §1.4).
pub fn parse_markets(body: &str, slug: &str) -> Result<Option<MarketInfo>, GammaError> {
    let value = wire::parse_json(MARKETS, body)?;
    let Value::Array(markets) = &value else {
        return Err(api_error(&value).unwrap_or_else(|| {
            DecodeError::invalid(MARKETS, ".", "expected an array of markets", body).into()
        }));
    };
    if markets.is_empty() {
        return Ok(None);
    }
    match markets
        .iter()
        .position(|m| slug_of(m).as_deref() == Some(slug))
    {
        Some(i) => market_from_value(&markets[i], &format!("[{i}]")).map(Some),
        None => Err(GammaError::SlugMismatch {
            expected: slug.to_string(),
            found: markets.iter().filter_map(slug_of).take(5).collect(),
        }),
    }
}

/// The market of one event object with `slug`: the market of that slug, else (the event's
/// slug matching) its first market. `Ok(None)` when the event has no markets.
fn market_of_event(
    event: &Value,
    prefix: &str,
    slug: &str,
) -> Result<Option<MarketInfo>, GammaError> {
    let markets = match event.get("markets") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(m)) => m,
        Some(_) => {
            return Err(DecodeError::invalid(
                EVENT,
                wire::join(prefix, "markets"),
                "expected an array",
                &event.to_string(),
            )
            .into());
        }
    };
    let i = markets
        .iter()
        .position(|m| slug_of(m).as_deref() == Some(slug))
        .or_else(|| (!markets.is_empty()).then_some(0));
    match i {
        None => Ok(None),
        Some(i) => {
            market_from_value(&markets[i], &wire::join(prefix, &format!("markets[{i}]"))).map(Some)
        }
    }
}

/// Decodes `GET /events?slug=<slug>` (an array of events, each with `markets`) and returns
/// the market of the event with `slug` (reference §1.4: read `events[0].markets[0]`, but
/// only after checking it is the event asked for). `Ok(None)` for an empty array or an
/// event without markets.
pub fn parse_events(body: &str, slug: &str) -> Result<Option<MarketInfo>, GammaError> {
    let value = wire::parse_json(EVENTS, body)?;
    let Value::Array(events) = &value else {
        return Err(api_error(&value).unwrap_or_else(|| {
            DecodeError::invalid(EVENTS, ".", "expected an array of events", body).into()
        }));
    };
    if events.is_empty() {
        return Ok(None);
    }
    let holds_slug = |e: &Value| {
        slug_of(e).as_deref() == Some(slug)
            || e.get("markets")
                .and_then(Value::as_array)
                .is_some_and(|ms| ms.iter().any(|m| slug_of(m).as_deref() == Some(slug)))
    };
    match events.iter().position(holds_slug) {
        Some(i) => market_of_event(&events[i], &format!("[{i}]"), slug),
        None => Err(GammaError::SlugMismatch {
            expected: slug.to_string(),
            found: events.iter().filter_map(slug_of).take(5).collect(),
        }),
    }
}

/// Decodes `GET /events/slug/<slug>` (one event object). `Ok(None)` when it has no markets.
pub fn parse_event(body: &str, slug: &str) -> Result<Option<MarketInfo>, GammaError> {
    let value = wire::parse_json(EVENT, body)?;
    if !value.is_object() {
        return Err(DecodeError::invalid(EVENT, ".", "expected an event object", body).into());
    }
    if let Some(e) = api_error(&value)
        && value.get("slug").is_none()
    {
        return Err(e);
    }
    if let Some(s) = slug_of(&value)
        && s != slug
        && !value
            .get("markets")
            .and_then(Value::as_array)
            .is_some_and(|ms| ms.iter().any(|m| slug_of(m).as_deref() == Some(slug)))
    {
        return Err(GammaError::SlugMismatch {
            expected: slug.to_string(),
            found: vec![s],
        });
    }
    market_of_event(&value, "", slug)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::binance::Problem;
    use crate::feed::binance::fuzzkit::{json_value, mutated, shared, value_mutated};
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    const SLUG: &str = "btc-updown-5m-1773307200";
    const UP: &str =
        "104239898038807136052399800151408521467737075933964991162589336683346093173875";
    const DOWN: &str =
        "71183960810705820955071415844881728181970340514894896943812046065452395013351";

    fn fixture(name: &str) -> String {
        shared(&format!("polymarket_api_samples/{name}"))
    }

    /// The real BTC 5m market (README §3), a Gamma `/markets` object.
    fn btc() -> String {
        fixture("nautilus_crate_gamma_market.json")
    }

    fn btc_value() -> Value {
        serde_json::from_str(&btc()).unwrap()
    }

    /// The real market wrapped as `/events?slug=` answers (reference §1.4: events[0].markets[0]).
    fn as_events(market: &Value) -> String {
        let mut event = market["events"][0].clone();
        event["markets"] = Value::Array(vec![market.clone()]);
        Value::Array(vec![event]).to_string()
    }

    fn decode_err(e: GammaError) -> DecodeError {
        match e {
            GammaError::Decode(d) => d,
            other => panic!("expected a decode error, got {other:?}"),
        }
    }

    #[test]
    fn real_btc_5m_market_parses_with_every_field() {
        let m = parse_market(&btc()).unwrap();
        assert_eq!(m.id.as_deref(), Some("1557558"));
        assert_eq!(m.slug, SLUG);
        assert_eq!(
            m.condition_id,
            "0x78443f961b9a65869dcb39359de9960165c7e5cbad0904eac7f29cd77872a63b"
        );
        assert_eq!(
            m.question,
            "Bitcoin Up or Down - March 12, 5:20AM-5:25AM ET"
        );
        assert!(m.description.contains("Chainlink"));
        assert_eq!(
            m.resolution_source.as_deref(),
            Some("https://data.chain.link/streams/btc-usd")
        );
        assert_eq!(m.rule, ResolutionRule::StartVsEnd);
        assert_eq!((m.up_token.as_str(), m.down_token.as_str()), (UP, DOWN));
        assert_eq!(
            m.prices,
            Some(UpDownPrices {
                up: dec!(0.505),
                down: dec!(0.495)
            })
        );
        assert_eq!(m.tick_size, dec!(0.01));
        assert_eq!(m.min_order_size, dec!(5));
        assert_eq!(m.fee_schedule, None); // this capture predates feeSchedule
        assert_eq!(m.fees_enabled, Some(true));
        assert_eq!(m.fee_type.as_deref(), Some("crypto_fees"));
        assert!(m.active && !m.closed && m.accepting_orders && m.enable_order_book);
        assert!(m.is_tradeable());
        assert_eq!(m.event_start_time, Some(1_773_307_200)); // 2026-03-12T09:20:00Z
        assert_eq!(m.end_time, 1_773_307_500); // 09:25
        assert_eq!(m.window_start(), Some(1_773_307_200));
        assert_eq!(m.neg_risk, Some(false));
        assert_eq!(m.resolution, MarketResolution::Open);
        assert_eq!(m.side_of(UP), Some(Side::Up));
        assert_eq!(m.side_of(DOWN), Some(Side::Down));
        assert_eq!(m.side_of("1"), None);
        assert_eq!(m.token(Side::Down), DOWN);
    }

    #[test]
    fn sides_are_mapped_by_index_not_by_position() {
        // Swap outcomes, token ids and prices together: Up must still be the same token.
        let mut v = btc_value();
        v["outcomes"] = Value::String(r#"["Down", "Up"]"#.into());
        v["clobTokenIds"] = Value::String(format!(r#"["{DOWN}", "{UP}"]"#));
        v["outcomePrices"] = Value::String(r#"["0.495", "0.505"]"#.into());
        let m = parse_market(&v.to_string()).unwrap();
        assert_eq!(m.up_token, UP);
        assert_eq!(m.down_token, DOWN);
        assert_eq!(m.prices.unwrap().of(Side::Up), dec!(0.505));
        // Swapping only the outcomes flips the mapping: the labels decide, not the order.
        let mut v = btc_value();
        v["outcomes"] = Value::String(r#"["Down", "Up"]"#.into());
        let m = parse_market(&v.to_string()).unwrap();
        assert_eq!((m.up_token.as_str(), m.down_token.as_str()), (DOWN, UP));
    }

    #[test]
    fn events_answers_are_searched_for_the_slug() {
        let v = btc_value();
        let m = parse_events(&as_events(&v), SLUG).unwrap().unwrap();
        assert_eq!(m.up_token, UP);
        // /events/slug/<slug>: one event object.
        let event = serde_json::from_str::<Value>(&as_events(&v)).unwrap()[0].clone();
        assert_eq!(
            parse_event(&event.to_string(), SLUG).unwrap().unwrap().slug,
            SLUG
        );
        // Empty answers mean "market missing".
        assert_eq!(parse_events("[]", SLUG).unwrap(), None);
        assert_eq!(parse_markets("[]", SLUG).unwrap(), None);
        let mut no_markets = event.clone();
        no_markets["markets"] = serde_json::json!([]);
        assert_eq!(
            parse_events(&format!("[{no_markets}]"), SLUG).unwrap(),
            None
        );
        // /markets?slug= fallback.
        assert_eq!(
            parse_markets(&format!("[{v}]"), SLUG)
                .unwrap()
                .unwrap()
                .slug,
            SLUG
        );
        // An answer about another window is refused, not taken as "the first market".
        let other = "btc-updown-5m-1773307500";
        assert!(matches!(
            parse_events(&as_events(&v), other),
            Err(GammaError::SlugMismatch { ref found, .. }) if found == &vec![SLUG.to_string()]
        ));
        assert!(matches!(
            parse_markets(&format!("[{v}]"), other),
            Err(GammaError::SlugMismatch { .. })
        ));
        assert!(matches!(
            parse_event(&event.to_string(), other),
            Err(GammaError::SlugMismatch { .. })
        ));
        // The real /events list item (a neg-risk election event) does not hold the slug.
        let gamma_event = fixture("nautilus_crate_gamma_event.json");
        assert!(matches!(
            parse_events(&format!("[{gamma_event}]"), SLUG),
            Err(GammaError::SlugMismatch { .. })
        ));
        assert_eq!(
            parse_events(r#"{"error":"not found"}"#, SLUG).unwrap_err(),
            GammaError::Api {
                message: "not found".into()
            }
        );
    }

    #[test]
    fn errors_inside_lists_name_the_path() {
        let mut v = btc_value();
        v.as_object_mut().unwrap().remove("clobTokenIds");
        let e = decode_err(parse_events(&as_events(&v), SLUG).unwrap_err());
        assert_eq!(
            e.problem,
            Problem::Missing("[0].markets[0].clobTokenIds".into()),
            "{e}"
        );
        let mut v = btc_value();
        v["orderPriceMinTickSize"] = Value::String("abc".into());
        let e = decode_err(parse_markets(&format!("[{v}]"), SLUG).unwrap_err());
        assert_eq!(e.field(), Some("[0].orderPriceMinTickSize"), "{e}");
        assert!(e.to_string().contains("payload: {"), "{e}");
    }

    #[test]
    fn closed_binary_fixtures_resolve_only_when_relabelled_up_down() {
        // The real closed markets are Yes/No: refused as not Up/Down...
        for (name, winner) in [
            (
                "nautilus_crate_gamma_market_closed_binary_accepting_true.json",
                Side::Up,
            ), // ["1","0"]
            (
                "nautilus_crate_gamma_market_closed_binary_accepting_false.json",
                Side::Down,
            ), // ["0","1"]
        ] {
            let body = fixture(name);
            match parse_market(&body).unwrap_err() {
                GammaError::NotUpDown { outcomes, .. } => assert_eq!(outcomes, ["Yes", "No"]),
                e => panic!("{e}"),
            }
            // ...and, relabelled Up/Down by index, resolve to the side priced 1.
            let mut v: Value = serde_json::from_str(&body).unwrap();
            v["outcomes"] = Value::String(r#"["Up", "Down"]"#.into());
            let m = parse_market(&v.to_string()).unwrap();
            assert!(m.closed);
            assert_eq!(m.resolution, MarketResolution::Resolved(winner), "{name}");
            // Only the accepting-false capture carries umaResolutionStatus.
            let uma = name.contains("false").then_some("resolved");
            assert_eq!(m.uma_resolution_status.as_deref(), uma);
            assert_eq!(m.rule, ResolutionRule::Unknown); // not a BTC up/down text
            assert!(!m.is_tradeable());
            // And relabelled the other way round, the winner flips with the labels.
            v["outcomes"] = Value::String(r#"["Down", "Up"]"#.into());
            let m = parse_market(&v.to_string()).unwrap();
            let flipped = if winner == Side::Up {
                Side::Down
            } else {
                Side::Up
            };
            assert_eq!(m.resolution, MarketResolution::Resolved(flipped));
        }
        let accepting_false = parse_market(
            &fixture("nautilus_crate_gamma_market_closed_binary_accepting_false.json")
                .replace(r#"[\"Yes\", \"No\"]"#, r#"[\"Up\", \"Down\"]"#),
        )
        .unwrap();
        assert!(!accepting_false.accepting_orders);
        assert_eq!(accepting_false.tick_size, dec!(0.001));
    }

    #[test]
    fn legacy_fixtures_are_refused_and_their_prices_never_pick_a_winner() {
        for name in [
            "nautilus_crate_gamma_market_closed_nonbinary_legacy.json",
            "nautilus_crate_gamma_market_closed_zero_zero_legacy.json",
        ] {
            let body = fixture(name);
            // Pre-CLOB markets lack the tick size: a named missing field, not a panic.
            let e = decode_err(parse_market(&body).unwrap_err());
            assert_eq!(
                e.problem,
                Problem::Missing("orderPriceMinTickSize".into()),
                "{name}"
            );
            // Their real outcome prices, through the same resolution rule.
            let v: Value = serde_json::from_str(&body).unwrap();
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct P {
                #[serde(deserialize_with = "opt_decimal_list")]
                outcome_prices: Option<Vec<Decimal>>,
            }
            let p: P = serde_json::from_value(v).unwrap();
            let prices = p.outcome_prices.unwrap();
            assert_eq!(winning_index(&prices), None, "{name}: {prices:?}");
            let mapped = UpDownPrices {
                up: prices[0],
                down: prices[1],
            };
            assert_eq!(
                MarketResolution::from_prices(true, Some(&mapped)),
                MarketResolution::Ambiguous
            );
        }
    }

    #[test]
    fn resolution_needs_exactly_one_one_and_one_zero() {
        let r = |up: Decimal, down: Decimal, closed| {
            MarketResolution::from_prices(closed, Some(&UpDownPrices { up, down }))
        };
        assert_eq!(
            r(dec!(1), dec!(0), true),
            MarketResolution::Resolved(Side::Up)
        );
        assert_eq!(
            r(dec!(0.0), dec!(1.000), true),
            MarketResolution::Resolved(Side::Down)
        );
        assert_eq!(r(dec!(1), dec!(1), true), MarketResolution::Ambiguous);
        assert_eq!(r(dec!(0), dec!(0), true), MarketResolution::Ambiguous);
        assert_eq!(r(dec!(0.99), dec!(0.01), true), MarketResolution::Ambiguous);
        assert_eq!(r(dec!(1), dec!(0), false), MarketResolution::Open); // not closed yet
        assert_eq!(
            MarketResolution::from_prices(true, None),
            MarketResolution::Ambiguous
        );
        let mut v = btc_value();
        v["closed"] = Value::Bool(true);
        v["outcomePrices"] = Value::String(r#"["0", "1"]"#.into());
        assert_eq!(
            parse_market(&v.to_string()).unwrap().resolution,
            MarketResolution::Resolved(Side::Down)
        );
        v["outcomePrices"] = Value::String(r#"["1", "1"]"#.into());
        assert_eq!(
            parse_market(&v.to_string()).unwrap().resolution,
            MarketResolution::Ambiguous
        );
    }

    #[test]
    fn resolution_rule_is_read_from_the_description() {
        let old = btc_value()["description"].as_str().unwrap().to_string();
        assert_eq!(
            ResolutionRule::from_description(&old),
            ResolutionRule::StartVsEnd
        );
        // Reference §2.1, later wording quoted from the HF dataset card.
        let twap = "This market will resolve to \"Up\" if the time-weighted average price (TWAP) \
                    of Bitcoin, generated by Chainlink, of the time range specified in the title \
                    is greater than or equal to the price at the beginning of that range.";
        assert_eq!(ResolutionRule::from_description(twap), ResolutionRule::Twap);
        let strict = old.replace("greater than or equal to", "greater than");
        assert_eq!(
            ResolutionRule::from_description(&strict),
            ResolutionRule::Unknown
        );
        assert_eq!(
            ResolutionRule::from_description(""),
            ResolutionRule::Unknown
        );
        let mut v = btc_value();
        v["description"] = Value::String(twap.into());
        assert_eq!(
            parse_market(&v.to_string()).unwrap().rule,
            ResolutionRule::Twap
        );
    }

    #[test]
    fn fee_schedule_when_present() {
        // Reference §1.5, the live fee block quoted verbatim.
        let mut v = btc_value();
        v["feeSchedule"] = serde_json::json!({ "exponent": 1, "rate": 0.07, "takerOnly": true, "rebateRate": 0.2 });
        let m = parse_market(&v.to_string()).unwrap();
        let f = m.fee_schedule.unwrap();
        assert_eq!(
            f,
            FeeSchedule {
                rate: dec!(0.07),
                exponent: 1,
                taker_only: Some(true),
                rebate_rate: Some(dec!(0.2))
            }
        );
        // Matches the venue's fee and the published worked numbers (§2.2).
        assert_eq!(f.fee(dec!(1), dec!(0.5)), Some(dec!(0.0175)));
        assert_eq!(
            f.fee(dec!(100), dec!(0.7)),
            Some(crate::venue::fee(dec!(100), dec!(0.7), dec!(0.07)))
        );
        // The early 15m schedule: rate 0.25, exponent 2 → 100 shares at 0.50 pay 1.5625 (§2.2).
        let early = FeeSchedule {
            rate: dec!(0.25),
            exponent: 2,
            taker_only: None,
            rebate_rate: None,
        };
        assert_eq!(early.fee(dec!(100), dec!(0.5)), Some(dec!(1.5625)));
        v["feeSchedule"] = serde_json::json!({ "exponent": 1.5, "rate": 0.07 });
        assert_eq!(
            decode_err(parse_market(&v.to_string()).unwrap_err()).field(),
            Some("feeSchedule.exponent")
        );
        v["feeSchedule"] = Value::Null;
        assert_eq!(parse_market(&v.to_string()).unwrap().fee_schedule, None);
    }

    #[test]
    fn inconsistent_markets_are_refused_with_the_field() {
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "clobTokenIds",
                Value::String(format!(r#"["{UP}"]"#)),
                "clobTokenIds",
            ),
            (
                "clobTokenIds",
                Value::String(format!(r#"["{UP}", "{UP}"]"#)),
                "clobTokenIds",
            ),
            (
                "clobTokenIds",
                Value::String("[\"Up\"".into()),
                "clobTokenIds",
            ),
            (
                "outcomePrices",
                Value::String(r#"["0.5"]"#.into()),
                "outcomePrices",
            ),
            (
                "outcomePrices",
                Value::String(r#"["1.5", "-0.5"]"#.into()),
                "outcomePrices",
            ),
            (
                "orderPriceMinTickSize",
                serde_json::json!(0),
                "orderPriceMinTickSize",
            ),
            ("orderMinSize", serde_json::json!(-5), "orderMinSize"),
            ("conditionId", Value::String("0x12".into()), "conditionId"),
            (
                "eventStartTime",
                Value::String("2026-03-12T09:25:00Z".into()),
                "endDate",
            ),
            (
                "eventStartTime",
                Value::String("2026-03-12T09:15:00Z".into()),
                "eventStartTime",
            ),
            ("endDate", Value::String("March 12".into()), "endDate"),
            ("active", Value::Null, "active"),
        ];
        for (key, value, field) in cases {
            let mut v = btc_value();
            v[key] = value;
            let e = decode_err(parse_market(&v.to_string()).unwrap_err());
            assert_eq!(e.field(), Some(field), "{key}: {e}");
        }
        for outcomes in [
            r#"["Yes", "No"]"#,
            r#"["Up", "Up"]"#,
            r#"["up", "down"]"#,
            r#"["Up", "Down", "Flat"]"#,
        ] {
            let mut v = btc_value();
            v["outcomes"] = Value::String(outcomes.into());
            assert!(
                matches!(
                    parse_market(&v.to_string()),
                    Err(GammaError::NotUpDown { .. })
                ),
                "{outcomes}"
            );
        }
        // Unknown extra fields are ignored; plain arrays are tolerated for the encoded lists.
        let mut v = btc_value();
        v["somethingNew"] = serde_json::json!({"x": [1, 2]});
        v["outcomes"] = serde_json::json!(["Up", "Down"]);
        v["outcomePrices"] = serde_json::json!([0.505, "0.495"]);
        let m = parse_market(&v.to_string()).unwrap();
        assert_eq!(m.prices.unwrap().up, dec!(0.505));
    }

    #[test]
    fn updown_slugs_round_trip() {
        assert_eq!(updown_slug(5, 1_773_307_200), SLUG);
        assert_eq!(parse_updown_slug(SLUG), Some((1_773_307_200, 300)));
        assert_eq!(
            parse_updown_slug("btc-updown-15m-1769405400"),
            Some((1_769_405_400, 900))
        );
        assert_eq!(parse_updown_slug("btc-updown-5m-1773307201"), None); // misaligned
        assert_eq!(parse_updown_slug("btc-updown-m-1"), None);
        assert_eq!(parse_updown_slug("russia-x-ukraine"), None);
        assert_eq!(
            parse_updown_slug("btc-updown-99999999999999999999m-0"),
            None
        );
    }

    fn payloads() -> Vec<String> {
        let v = btc_value();
        vec![
            btc(),
            as_events(&v),
            format!("[{v}]"),
            fixture("nautilus_crate_gamma_market_closed_binary_accepting_true.json"),
        ]
    }

    fn all(s: &str) {
        let _ = parse_market(s);
        let _ = parse_markets(s, SLUG);
        let _ = parse_events(s, SLUG);
        let _ = parse_event(s, SLUG);
    }

    proptest! {
        #[test]
        fn fuzz_gamma_arbitrary_strings(s in ".*") {
            all(&s);
        }

        #[test]
        fn fuzz_gamma_arbitrary_json(v in json_value()) {
            all(&v.to_string());
            all(&serde_json::json!([{"slug": SLUG, "markets": [v]}]).to_string());
        }

        #[test]
        fn fuzz_gamma_mutated_payloads(s in mutated(payloads())) {
            if let Ok(m) = parse_market(&s) {
                // Whatever gets through is internally consistent.
                prop_assert!(m.up_token != m.down_token);
                prop_assert!(m.tick_size > Decimal::ZERO && m.tick_size < Decimal::ONE);
            }
            all(&s);
        }

        #[test]
        fn fuzz_gamma_value_mutations(s in value_mutated(payloads())) {
            if let Ok(m) = parse_market(&s)
                && let MarketResolution::Resolved(side) = m.resolution
            {
                let p = m.prices.unwrap();
                prop_assert_eq!(p.of(side), Decimal::ONE);
                prop_assert!(m.closed);
            }
            all(&s);
        }
    }
}
