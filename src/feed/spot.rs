//! Fallback BTC spot prices from REST bodies: Coinbase and CoinGecko.
//!
//! When the Binance stream stalls, the live feed (not this module) polls a REST endpoint for
//! a sanity price. This module only decodes those bodies into a [`SpotPrice`] that records
//! its [`PriceSource`], so a price can never be mistaken for another venue's. Formats
//! (reference `shared/reference/polymarket-api.md` §7.3 and the venues' docs):
//!
//! - Coinbase Exchange `GET /products/BTC-USD/ticker` →
//!   `{"ask":"…","bid":"…","volume":"…","trade_id":…,"price":"…","size":"…","time":"<RFC 3339>"}`
//!   ([`parse_coinbase_ticker`]);
//! - Coinbase Data API `GET /v2/prices/BTC-USD/spot` → `{"data":{"amount":"…","currency":"USD"}}`
//!   (the endpoint reference §7.3 names; [`parse_coinbase_spot`]);
//! - CoinGecko `GET /api/v3/simple/price?ids=bitcoin&vs_currencies=usd` →
//!   `{"bitcoin":{"usd":…}}`, plus `last_updated_at` (Unix s) with
//!   `include_last_updated_at=true` ([`parse_coingecko_simple_price`]).
//!
//! None of these is the settlement source (Chainlink is); they are fallbacks and cross-checks.
//! Prices are `f64` like every BTC price that feeds indicators.

use crate::feed::binance::{DecodeError, KlineEvent, TradeEvent, wire};
use serde::Deserialize;
use serde_json::Value;

/// Where a spot price came from; recorded on every [`SpotPrice`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriceSource {
    /// Binance spot (WebSocket trades or klines).
    Binance,
    /// Coinbase (Exchange ticker or Data API spot price).
    Coinbase,
    /// CoinGecko simple price.
    CoinGecko,
}

impl PriceSource {
    /// Stable lower-case name for journals.
    pub fn as_str(self) -> &'static str {
        match self {
            PriceSource::Binance => "binance",
            PriceSource::Coinbase => "coinbase",
            PriceSource::CoinGecko => "coingecko",
        }
    }
}

/// One BTC/USD(T) spot price and its provenance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpotPrice {
    /// Price in USD (USDT for Binance).
    pub price: f64,
    /// When the source says the price was current, Unix ms; `None` when the body does not say.
    pub time_ms: Option<i64>,
    /// Who quoted it.
    pub source: PriceSource,
}

impl From<&TradeEvent> for SpotPrice {
    fn from(t: &TradeEvent) -> Self {
        SpotPrice {
            price: t.price,
            time_ms: Some(t.time_ms),
            source: PriceSource::Binance,
        }
    }
}

impl From<&KlineEvent> for SpotPrice {
    /// The latest price of a kline update: its close so far, at the event time.
    fn from(k: &KlineEvent) -> Self {
        SpotPrice {
            price: k.candle.close,
            time_ms: Some(k.event_time_ms),
            source: PriceSource::Binance,
        }
    }
}

/// Everything that can go wrong reading a fallback price body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpotError {
    /// The body is malformed (names the field, shows an excerpt).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The venue answered with an error body (Coinbase `{"message":…}`, CoinGecko
    /// `{"status":{"error_code":…,"error_message":…}}` or `{"error":…}`).
    #[error("{source_name} error: {message}")]
    Api {
        /// Which venue.
        source_name: &'static str,
        /// Its message.
        message: String,
    },
}

const COINBASE_TICKER: &str = "coinbase ticker";
const COINBASE_SPOT: &str = "coinbase spot price";
const COINGECKO: &str = "coingecko simple price";

#[derive(Deserialize)]
struct RawCoinbaseTicker {
    #[serde(deserialize_with = "wire::float")]
    price: f64,
    #[serde(default)]
    time: Option<String>,
}

#[derive(Deserialize)]
struct RawCoinbaseSpot {
    data: RawCoinbaseSpotData,
}

#[derive(Deserialize)]
struct RawCoinbaseSpotData {
    #[serde(deserialize_with = "wire::float")]
    amount: f64,
    currency: String,
}

#[derive(Deserialize)]
struct RawGecko {
    bitcoin: RawGeckoCoin,
}

#[derive(Deserialize)]
struct RawGeckoCoin {
    #[serde(deserialize_with = "wire::float")]
    usd: f64,
    #[serde(default, deserialize_with = "wire::opt_int")]
    last_updated_at: Option<i64>,
}

fn positive(message: &'static str, field: &str, price: f64, body: &str) -> Result<f64, SpotError> {
    if price > 0.0 {
        Ok(price)
    } else {
        Err(DecodeError::invalid(message, field, "price must be positive", body).into())
    }
}

/// Error bodies are objects *without* the success field; telling them apart first gives
/// "Coinbase said NotFound" instead of "missing field price".
fn api_error(source_name: &'static str, body: &str, success_field: &str) -> Option<SpotError> {
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(body) else {
        return None;
    };
    if obj.contains_key(success_field) {
        return None;
    }
    let message = match (obj.get("message"), obj.get("error"), obj.get("status")) {
        (Some(Value::String(m)), _, _) => m.clone(),
        (_, Some(Value::String(m)), _) => m.clone(),
        (_, _, Some(Value::Object(s))) => match s.get("error_message") {
            Some(Value::String(m)) => m.clone(),
            _ => return None,
        },
        // Coinbase Data API errors: {"errors":[{"id":"not_found","message":"…"}]}
        _ => match obj
            .get("errors")
            .and_then(|e| e.get(0))
            .and_then(|e| e.get("message"))
        {
            Some(Value::String(m)) => m.clone(),
            _ => return None,
        },
    };
    Some(SpotError::Api {
        source_name,
        message,
    })
}

/// Decodes a Coinbase Exchange `GET /products/BTC-USD/ticker` body. `time` (RFC 3339) is
/// optional: an unparsable one is an error rather than silently dropped, because a
/// price with a wrong age is worse than no price.
pub fn parse_coinbase_ticker(body: &str) -> Result<SpotPrice, SpotError> {
    if let Some(e) = api_error("coinbase", body, "price") {
        return Err(e);
    }
    let raw: RawCoinbaseTicker = wire::decode(COINBASE_TICKER, body)?;
    let time_ms = match raw.time.as_deref() {
        None | Some("") => None,
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| {
                    DecodeError::invalid(
                        COINBASE_TICKER,
                        "time",
                        format!("not RFC 3339: {e}"),
                        body,
                    )
                })?
                .timestamp_millis(),
        ),
    };
    Ok(SpotPrice {
        price: positive(COINBASE_TICKER, "price", raw.price, body)?,
        time_ms,
        source: PriceSource::Coinbase,
    })
}

/// Decodes a Coinbase Data API `GET /v2/prices/BTC-USD/spot` body; the currency must be USD.
pub fn parse_coinbase_spot(body: &str) -> Result<SpotPrice, SpotError> {
    if let Some(e) = api_error("coinbase", body, "data") {
        return Err(e);
    }
    let raw: RawCoinbaseSpot = wire::decode(COINBASE_SPOT, body)?;
    if raw.data.currency != "USD" {
        return Err(DecodeError::invalid(
            COINBASE_SPOT,
            "data.currency",
            format!("expected USD, got {:?}", raw.data.currency),
            body,
        )
        .into());
    }
    Ok(SpotPrice {
        price: positive(COINBASE_SPOT, "data.amount", raw.data.amount, body)?,
        time_ms: None,
        source: PriceSource::Coinbase,
    })
}

/// Decodes a CoinGecko `GET /api/v3/simple/price?ids=bitcoin&vs_currencies=usd` body.
/// `last_updated_at` (Unix seconds, present with `include_last_updated_at=true`) becomes
/// `time_ms`. An unknown coin id answers `{}`, reported as the missing `bitcoin` field.
pub fn parse_coingecko_simple_price(body: &str) -> Result<SpotPrice, SpotError> {
    if let Some(e) = api_error("coingecko", body, "bitcoin") {
        return Err(e);
    }
    let raw: RawGecko = wire::decode(COINGECKO, body)?;
    let time_ms = match raw.bitcoin.last_updated_at {
        Some(s) => Some(s.checked_mul(1000).ok_or_else(|| {
            DecodeError::invalid(COINGECKO, "bitcoin.last_updated_at", "out of range", body)
        })?),
        None => None,
    };
    Ok(SpotPrice {
        price: positive(COINGECKO, "bitcoin.usd", raw.bitcoin.usd, body)?,
        time_ms,
        source: PriceSource::CoinGecko,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::binance::fuzzkit::{json_value, mutated, value_mutated};
    use crate::feed::binance::{BinanceMessage, Problem, TimeUnit, parse_ws_message};
    use proptest::prelude::*;

    // Coinbase Exchange docs, "Get product ticker" (docs.cdp.coinbase.com
    // api-reference/exchange-api/rest-api/products/get-product-ticker): fields ask, bid,
    // volume, trade_id, price, size, time. Values here are hand-written in that shape.
    const COINBASE_TICKER_BODY: &str = r#"{"ask":"68231.01","bid":"68230.55","volume":"8123.51234567","trade_id":812345678,"price":"68230.55","size":"0.00041","time":"2026-03-03T07:59:58.123456Z","rfq_volume":"12.5"}"#;
    // Reference §7.3: Coinbase Data API shape.
    const COINBASE_SPOT_BODY: &str =
        r#"{"data":{"amount":"68230.55","base":"BTC","currency":"USD"}}"#;
    // Reference §7.3: pycoingecko docs example, and with include_last_updated_at.
    const GECKO_BODY: &str = r#"{"bitcoin":{"usd":3462.04}}"#;
    const GECKO_BODY_TS: &str = r#"{"bitcoin":{"usd":68230,"last_updated_at":1772524798}}"#;

    #[test]
    fn coinbase_ticker_price_and_time() {
        let p = parse_coinbase_ticker(COINBASE_TICKER_BODY).unwrap();
        assert_eq!(p.price, 68_230.55);
        assert_eq!(p.time_ms, Some(1_772_524_798_123));
        assert_eq!(p.source, PriceSource::Coinbase);
        let no_time = parse_coinbase_ticker(r#"{"price":"1.5"}"#).unwrap();
        assert_eq!(no_time.time_ms, None);
    }

    #[test]
    fn coinbase_errors_and_bad_fields() {
        assert_eq!(
            parse_coinbase_ticker(r#"{"message":"NotFound"}"#).unwrap_err(),
            SpotError::Api {
                source_name: "coinbase",
                message: "NotFound".into()
            }
        );
        for (body, field) in [
            (r#"{"price":"abc"}"#, "price"),
            (r#"{"price":"0"}"#, "price"),
            (r#"{"price":"5","time":"yesterday"}"#, "time"),
            (r#"{"bid":"5"}"#, "price"),
        ] {
            match parse_coinbase_ticker(body).unwrap_err() {
                SpotError::Decode(d) => assert_eq!(d.field(), Some(field), "{d}"),
                e => panic!("{e}"),
            }
        }
    }

    #[test]
    fn coinbase_spot_requires_usd() {
        let p = parse_coinbase_spot(COINBASE_SPOT_BODY).unwrap();
        assert_eq!(
            (p.price, p.time_ms, p.source),
            (68_230.55, None, PriceSource::Coinbase)
        );
        let eur = COINBASE_SPOT_BODY.replace("USD", "EUR");
        assert!(parse_coinbase_spot(&eur).is_err());
        assert!(matches!(
            parse_coinbase_spot(r#"{"errors":[{"id":"not_found","message":"Invalid currency"}]}"#),
            Err(SpotError::Api { .. })
        ));
    }

    #[test]
    fn coingecko_price_time_and_errors() {
        let p = parse_coingecko_simple_price(GECKO_BODY).unwrap();
        assert_eq!(
            (p.price, p.time_ms, p.source),
            (3462.04, None, PriceSource::CoinGecko)
        );
        let p = parse_coingecko_simple_price(GECKO_BODY_TS).unwrap();
        assert_eq!(p.time_ms, Some(1_772_524_798_000));
        match parse_coingecko_simple_price("{}").unwrap_err() {
            SpotError::Decode(d) => assert_eq!(d.problem, Problem::Missing("bitcoin".into())),
            e => panic!("{e}"),
        }
        assert!(matches!(
            parse_coingecko_simple_price(
                r#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit."}}"#
            ),
            Err(SpotError::Api {
                source_name: "coingecko",
                ..
            })
        ));
    }

    #[test]
    fn binance_prices_are_tagged_with_their_source() {
        let t = r#"{"e":"trade","E":1672515782136,"s":"BTCUSDT","t":1,"p":"68129.12","q":"0.1","T":1672515782135,"m":true}"#;
        let BinanceMessage::Trade(t) = parse_ws_message(t, TimeUnit::Millisecond).unwrap().message
        else {
            panic!("not a trade")
        };
        let p = SpotPrice::from(&t);
        assert_eq!(
            (p.price, p.time_ms, p.source),
            (68_129.12, Some(1_672_515_782_135), PriceSource::Binance)
        );
        assert_eq!(PriceSource::CoinGecko.as_str(), "coingecko");
    }

    fn payloads() -> Vec<String> {
        vec![
            COINBASE_TICKER_BODY.into(),
            COINBASE_SPOT_BODY.into(),
            GECKO_BODY.into(),
            GECKO_BODY_TS.into(),
        ]
    }

    fn all(s: &str) {
        for p in [
            parse_coinbase_ticker(s),
            parse_coinbase_spot(s),
            parse_coingecko_simple_price(s),
        ]
        .into_iter()
        .flatten()
        {
            assert!(p.price > 0.0 && p.price.is_finite());
        }
    }

    proptest! {
        #[test]
        fn fuzz_spot_arbitrary_strings(s in ".*") {
            all(&s);
        }

        #[test]
        fn fuzz_spot_arbitrary_json(v in json_value()) {
            all(&v.to_string());
            all(&serde_json::json!({"bitcoin": v.clone()}).to_string());
            all(&serde_json::json!({"data": v}).to_string());
        }

        #[test]
        fn fuzz_spot_mutated_payloads(s in mutated(payloads())) {
            all(&s);
        }

        #[test]
        fn fuzz_spot_value_mutations(s in value_mutated(payloads())) {
            all(&s);
        }
    }
}
