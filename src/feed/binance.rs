//! Binance spot wire formats: WebSocket stream messages and the REST klines response.
//!
//! This module owns *decoding only*: text in, typed values or a [`BinanceError`] out. It opens
//! no socket, keeps no state and knows nothing of reconnects or backoff (the live feed that
//! will drive it does). Formats follow the reference (`shared/reference/polymarket-api.md`
//! §7.1–7.2, from Binance's `web-socket-streams.md` and `rest-api.md`):
//!
//! - [`parse_ws_message`]: one WebSocket text frame, raw (`/ws/<stream>`) or wrapped in the
//!   combined-stream envelope `{"stream":"btcusdt@kline_1m","data":{…}}`, into a
//!   [`BinanceMessage`]: a kline update ([`KlineEvent`], carrying a [`Candle`] and whether
//!   the bar is closed), a trade or aggregate trade ([`TradeEvent`]), a subscription
//!   response (`{"result":null,"id":1}`), an error frame (`{"code":2,"msg":"…"}`), the
//!   `serverShutdown` notice, or any other event, passed through as
//!   [`BinanceMessage::Other`] because Binance adds streams and fields over time.
//! - [`parse_klines`]: the `GET /api/v3/klines` body (array of 12-element arrays) into
//!   1-minute [`Candle`]s; anything but 1-minute bars is refused, and an error body
//!   (`{"code":-1121,"msg":"Invalid symbol."}`) becomes [`BinanceError::Api`].
//!
//! It also hosts the small wire helpers every parser in the crate shares ([`DecodeError`],
//! [`excerpt`] and the crate-private `wire` decoding functions): this is the lowest module
//! that reads a wire format, and `venue::polymarket` already depends on `feed`, so keeping
//! them here adds no new dependency direction.
//!
//! BTC prices become `f64` (they feed indicator maths, like every [`Candle`]); money never
//! passes through here.

use crate::feed::Candle;
use serde::Deserialize;
use serde_json::Value;

/// Longest payload excerpt an error carries, in characters.
pub const EXCERPT_CHARS: usize = 200;

/// The first [`EXCERPT_CHARS`] characters of `payload`, with `…` when cut, so an error can
/// show what it choked on without dumping a 10 kB order book into a log line.
pub fn excerpt(payload: &str) -> String {
    let mut chars = payload.char_indices();
    match chars.nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &payload[..cut]),
        None => payload.to_string(),
    }
}

/// Which part of a message failed to decode, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The payload is not JSON (or not complete JSON).
    #[error("not JSON ({0})")]
    NotJson(String),
    /// A required field is absent (named by its path in the payload, e.g. `k.o`).
    #[error("missing field `{0}`")]
    Missing(String),
    /// A field is present but unusable (wrong type, unparsable number, out of range...).
    #[error("field `{field}`: {reason}")]
    Invalid {
        /// Path of the field in the payload, e.g. `bids[2].price`; `.` is the whole message.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A payload that could not be decoded: which message, which field, and an excerpt of the
/// offending payload (at most [`EXCERPT_CHARS`] characters). Shared by every wire parser.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}: {problem}; payload: {excerpt}")]
pub struct DecodeError {
    /// The kind of message being decoded, e.g. `"binance kline"` or `"gamma market"`.
    pub message: &'static str,
    /// What is wrong.
    pub problem: Problem,
    /// The start of the offending payload.
    pub excerpt: String,
}

impl DecodeError {
    /// A field-level error with a reason.
    pub fn invalid(
        message: &'static str,
        field: impl Into<String>,
        reason: impl Into<String>,
        payload: &str,
    ) -> Self {
        DecodeError {
            message,
            problem: Problem::Invalid {
                field: field.into(),
                reason: reason.into(),
            },
            excerpt: excerpt(payload),
        }
    }

    /// A missing-field error.
    pub fn missing(message: &'static str, field: impl Into<String>, payload: &str) -> Self {
        DecodeError {
            message,
            problem: Problem::Missing(field.into()),
            excerpt: excerpt(payload),
        }
    }

    /// The path of the field at fault, if the error is about one field.
    pub fn field(&self) -> Option<&str> {
        match &self.problem {
            Problem::NotJson(_) => None,
            Problem::Missing(f) => Some(f),
            Problem::Invalid { field, .. } => Some(field),
        }
    }
}

/// Decoding helpers shared by the crate's wire parsers (Binance, spot fallbacks, Polymarket).
///
/// All of them are total: any input yields a value or an error, never a panic. Numbers that
/// venues send sometimes as strings and sometimes as JSON numbers are accepted in both forms,
/// because the *value* is what matters and both APIs have switched representations before.
pub(crate) mod wire {
    use super::{DecodeError, Problem, excerpt};
    use rust_decimal::Decimal;
    use serde::Deserialize;
    use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
    use serde_json::Value;
    use std::fmt;
    use std::str::FromStr;

    /// Joins a path prefix (e.g. `[2]`) with a serde path (e.g. `bids[0].price`).
    pub(crate) fn join(prefix: &str, path: &str) -> String {
        match (prefix, path) {
            ("", p) => p.to_string(),
            (pre, "." | "") => pre.to_string(),
            (pre, p) if p.starts_with('[') => format!("{pre}{p}"),
            (pre, p) => format!("{pre}.{p}"),
        }
    }

    /// Turns a serde error at `path` into a [`DecodeError`], recognising "missing field".
    fn classify(
        message: &'static str,
        prefix: &str,
        path: &str,
        err: &serde_json::Error,
        payload: &str,
    ) -> DecodeError {
        let text = err.to_string();
        if err.is_syntax() || err.is_eof() || err.is_io() {
            return DecodeError {
                message,
                problem: Problem::NotJson(text),
                excerpt: excerpt(payload),
            };
        }
        // serde words a missing field as "missing field `name`" (plus a position when
        // reading text); the field name is what the caller needs.
        if let Some(rest) = text.strip_prefix("missing field `")
            && let Some(end) = rest.find('`')
        {
            let parent = join(prefix, path);
            let field = if parent == "." || parent.is_empty() {
                rest[..end].to_string()
            } else {
                format!("{parent}.{}", &rest[..end])
            };
            return DecodeError::missing(message, field, payload);
        }
        let field = join(prefix, path);
        let field = if field.is_empty() {
            ".".to_string()
        } else {
            field
        };
        DecodeError::invalid(message, field, text, payload)
    }

    /// Parses `text` as JSON (any shape).
    pub(crate) fn parse_json(message: &'static str, text: &str) -> Result<Value, DecodeError> {
        serde_json::from_str(text).map_err(|e| DecodeError {
            message,
            problem: Problem::NotJson(e.to_string()),
            excerpt: excerpt(text),
        })
    }

    /// Decodes `text` into `T`, naming the failing field by its path.
    pub(crate) fn decode<T: DeserializeOwned>(
        message: &'static str,
        text: &str,
    ) -> Result<T, DecodeError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            classify(message, "", &path, e.inner(), text)
        })?;
        de.end().map_err(|e| classify(message, "", ".", &e, text))?;
        Ok(value)
    }

    /// Decodes an already-parsed `value` into `T`; `prefix` locates it in its frame (e.g.
    /// `[3]` for the fourth message of an array frame). The excerpt is of `value` itself,
    /// so the error shows the offending message even deep inside a long frame.
    pub(crate) fn decode_value<T: DeserializeOwned>(
        message: &'static str,
        prefix: &str,
        value: &Value,
    ) -> Result<T, DecodeError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            classify(message, prefix, &path, e.inner(), &value.to_string())
        })
    }

    // ---- numbers ----

    /// Parses a decimal string: plain (`"0.48"`, `".48"`) or scientific (`"1e-3"`).
    pub(crate) fn decimal_from_str(s: &str) -> Option<Decimal> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        Decimal::from_str(s)
            .ok()
            .or_else(|| Decimal::from_scientific(s).ok())
    }

    /// A JSON float as a decimal via its shortest round-trip text, so `0.01` is exactly
    /// `0.01` and not the binary neighbour `0.01000000000000000020816681711721685…`.
    fn decimal_from_f64(v: f64) -> Option<Decimal> {
        if !v.is_finite() {
            return None;
        }
        decimal_from_str(&v.to_string())
    }

    struct DecimalVisitor;

    impl Visitor<'_> for DecimalVisitor {
        type Value = Decimal;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a decimal number or a string holding one")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
            decimal_from_str(v).ok_or_else(|| E::custom(format!("not a decimal number: {v:?}")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
            Ok(Decimal::from(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
            Ok(Decimal::from(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
            decimal_from_f64(v).ok_or_else(|| E::custom(format!("not a decimal number: {v}")))
        }
    }

    /// A `Decimal` from a string or a JSON number.
    pub(crate) fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        d.deserialize_any(DecimalVisitor)
    }

    /// An optional `Decimal` (absent or `null` → `None`).
    pub(crate) fn opt_decimal<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Decimal>, D::Error> {
        #[derive(serde::Deserialize)]
        struct W(#[serde(deserialize_with = "decimal")] Decimal);
        Ok(Option::<W>::deserialize(d)?.map(|W(v)| v))
    }

    struct F64Visitor;

    impl Visitor<'_> for F64Visitor {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a finite number or a string holding one")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            // `f64::from_str` accepts "NaN" and "inf"; a price never is either.
            match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x),
                _ => Err(E::custom(format!("not a finite number: {v:?}"))),
            }
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            if v.is_finite() {
                Ok(v)
            } else {
                Err(E::custom("not a finite number"))
            }
        }
    }

    /// A finite `f64` from a string or a JSON number.
    pub(crate) fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_any(F64Visitor)
    }

    /// An integer from a JSON string of digits or an integral JSON number; used for
    /// timestamps, which Polymarket sends as strings and Binance as numbers.
    pub(crate) fn int_from_value(v: &Value) -> Option<i64> {
        match v {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
            Value::String(s) => int_from_str(s),
            _ => None,
        }
    }

    fn int_from_str(s: &str) -> Option<i64> {
        let t = s.trim();
        let digits = t.strip_prefix('-').unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    }

    struct IntVisitor;

    impl Visitor<'_> for IntVisitor {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer or a string of digits")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            int_from_str(v).ok_or_else(|| E::custom(format!("not an integer: {v:?}")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("integer too large: {v}")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Ok(v as i64)
            } else {
                Err(E::custom(format!("not an integer: {v}")))
            }
        }
    }

    /// An `i64` from an integer or a string of digits.
    pub(crate) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        d.deserialize_any(IntVisitor)
    }

    /// An optional `i64` (absent, `null` or `""` → `None`).
    pub(crate) fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(v) => int_from_value(&v)
                .map(Some)
                .ok_or_else(|| de::Error::custom(format!("not an integer: {v}"))),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Binance
// ---------------------------------------------------------------------------------------

/// Everything that can go wrong reading a Binance payload.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BinanceError {
    /// The payload is malformed or violates the format (names the field, shows an excerpt).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Binance answered with its error body, e.g. `{"code":-1121,"msg":"Invalid symbol."}`.
    #[error("binance error {code}: {msg}")]
    Api {
        /// Binance's error code (negative for REST errors).
        code: i64,
        /// Binance's message.
        msg: String,
    },
}

/// Unit of the time fields in stream messages.
///
/// Binance streams send milliseconds unless the connection URL asks for
/// `timeUnit=MICROSECOND`; the recorded captures in `shared/data` were taken that way. The
/// unit cannot be told from one message reliably, so the caller, who built the URL, says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeUnit {
    /// Milliseconds (Binance's default).
    #[default]
    Millisecond,
    /// Microseconds (`timeUnit=MICROSECOND`).
    Microsecond,
}

impl TimeUnit {
    fn to_ms(self, t: i64) -> i64 {
        match self {
            TimeUnit::Millisecond => t,
            TimeUnit::Microsecond => t.div_euclid(1000),
        }
    }
}

/// Earliest and latest plausible Binance time (2000-01-01 … 2100-01-01, ms). A time outside
/// is a misread field or a wrong [`TimeUnit`], and trading on it would be worse than stopping.
const MIN_TIME_MS: i64 = 946_684_800_000;
const MAX_TIME_MS: i64 = 4_102_444_800_000;

/// One-minute bar length in ms.
const MINUTE_MS: i64 = 60_000;

/// A kline (candlestick) update from a `<symbol>@kline_1m` stream.
#[derive(Clone, Debug, PartialEq)]
pub struct KlineEvent {
    /// Symbol, e.g. `BTCUSDT` (Binance sends it upper-case in the payload).
    pub symbol: String,
    /// Event time (`E`), Unix ms.
    pub event_time_ms: i64,
    /// The bar so far; `candle.open_time` is in Unix seconds.
    pub candle: Candle,
    /// Whether the bar is final (`x`). Only closed bars may reach strategies.
    pub closed: bool,
}

/// Which trade stream a [`TradeEvent`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradeKind {
    /// `<symbol>@trade`: one trade between two orders.
    Trade,
    /// `<symbol>@aggTrade`: trades of one taker order at one price, aggregated.
    AggTrade,
}

/// A trade from a `<symbol>@trade` or `<symbol>@aggTrade` stream.
#[derive(Clone, Debug, PartialEq)]
pub struct TradeEvent {
    /// Which stream.
    pub kind: TradeKind,
    /// Symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// Price (`p`).
    pub price: f64,
    /// Quantity in the base asset (`q`).
    pub qty: f64,
    /// Trade time (`T`), Unix ms.
    pub time_ms: i64,
    /// Event time (`E`), Unix ms.
    pub event_time_ms: i64,
    /// `m`: the buyer was the maker, i.e. the taker sold.
    pub buyer_is_maker: bool,
}

/// The `id` of a subscription request, echoed in its response: an integer, a string or
/// absent/`null` (Binance accepts all three).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestId {
    /// Integer id.
    Int(i64),
    /// String id.
    Str(String),
}

/// One decoded WebSocket message.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BinanceMessage {
    /// A kline update.
    Kline(KlineEvent),
    /// A trade or aggregate trade.
    Trade(TradeEvent),
    /// Response to a SUBSCRIBE/UNSUBSCRIBE/… request: `result` is `null` on success of a
    /// non-query request, or the answer of a query (e.g. the list of subscriptions).
    Response {
        /// Echoed request id.
        id: Option<RequestId>,
        /// The `result` value.
        result: Value,
    },
    /// An error frame, e.g. `{"code": 2, "msg": "Invalid request: …"}`; the connection stays
    /// open, so this is a message rather than a decoding failure.
    Error {
        /// Binance's error code.
        code: i64,
        /// Binance's message.
        msg: String,
        /// Echoed request id, if any.
        id: Option<RequestId>,
    },
    /// `{"e":"serverShutdown","E":…}`: the server will close the connection; reconnect.
    ServerShutdown {
        /// Event time, Unix ms.
        event_time_ms: i64,
    },
    /// Any other event (ticker, depth, bookTicker...): not needed here, and not an error,
    /// because Binance adds streams and fields over time.
    Other {
        /// The `e` field, if the payload has one (partial-depth and bookTicker do not).
        event_type: Option<String>,
    },
}

/// A WebSocket frame: the message and, for combined streams, the stream it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamFrame {
    /// `stream` of the combined-stream envelope (`None` on a raw `/ws/` connection).
    pub stream: Option<String>,
    /// The decoded message.
    pub message: BinanceMessage,
}

#[derive(Deserialize)]
struct RawKlineEvent {
    #[serde(rename = "E", deserialize_with = "wire::int")]
    event_time: i64,
    #[serde(rename = "s")]
    symbol: String,
    k: RawKline,
}

#[derive(Deserialize)]
struct RawKline {
    #[serde(rename = "t", deserialize_with = "wire::int")]
    open_time: i64,
    #[serde(rename = "T", deserialize_with = "wire::int")]
    close_time: i64,
    #[serde(rename = "i")]
    interval: String,
    #[serde(rename = "o", deserialize_with = "wire::float")]
    open: f64,
    #[serde(rename = "h", deserialize_with = "wire::float")]
    high: f64,
    #[serde(rename = "l", deserialize_with = "wire::float")]
    low: f64,
    #[serde(rename = "c", deserialize_with = "wire::float")]
    close: f64,
    #[serde(rename = "v", deserialize_with = "wire::float")]
    volume: f64,
    #[serde(rename = "x")]
    closed: bool,
}

#[derive(Deserialize)]
struct RawTrade {
    #[serde(rename = "E", deserialize_with = "wire::int")]
    event_time: i64,
    #[serde(rename = "s")]
    symbol: String,
    #[serde(rename = "p", deserialize_with = "wire::float")]
    price: f64,
    #[serde(rename = "q", deserialize_with = "wire::float")]
    qty: f64,
    #[serde(rename = "T", deserialize_with = "wire::int")]
    trade_time: i64,
    #[serde(rename = "m")]
    buyer_is_maker: bool,
}

#[derive(Deserialize)]
struct RawErrorBody {
    #[serde(deserialize_with = "wire::int")]
    code: i64,
    msg: String,
}

const WS: &str = "binance ws message";
const KLINE: &str = "binance kline";
const TRADE: &str = "binance trade";
const KLINES: &str = "binance klines";

/// Decodes one WebSocket text frame (raw or combined stream). Times are converted from
/// `unit` to milliseconds. Unknown events and extra fields are passed over, not rejected.
pub fn parse_ws_message(text: &str, unit: TimeUnit) -> Result<StreamFrame, BinanceError> {
    let value = wire::parse_json(WS, text)?;
    let Value::Object(obj) = &value else {
        return Err(DecodeError::invalid(WS, ".", "expected a JSON object", text).into());
    };
    // Combined streams wrap every event as {"stream": name, "data": payload}; responses and
    // errors to requests are never wrapped.
    if let (Some(stream), Some(data)) = (obj.get("stream"), obj.get("data")) {
        let Value::String(stream) = stream else {
            return Err(DecodeError::invalid(WS, "stream", "expected a string", text).into());
        };
        let message = parse_payload(data, "data", unit)?;
        return Ok(StreamFrame {
            stream: Some(stream.clone()),
            message,
        });
    }
    Ok(StreamFrame {
        stream: None,
        message: parse_payload(&value, "", unit)?,
    })
}

fn request_id(v: Option<&Value>) -> Option<RequestId> {
    match v? {
        Value::String(s) => Some(RequestId::Str(s.clone())),
        other => wire::int_from_value(other).map(RequestId::Int),
    }
}

fn parse_payload(
    value: &Value,
    prefix: &str,
    unit: TimeUnit,
) -> Result<BinanceMessage, BinanceError> {
    let Value::Object(obj) = value else {
        return Err(DecodeError::invalid(
            WS,
            if prefix.is_empty() { "." } else { prefix },
            "expected a JSON object",
            &value.to_string(),
        )
        .into());
    };
    if let Some(e) = obj.get("e") {
        let Value::String(kind) = e else {
            return Err(DecodeError::invalid(
                WS,
                wire::join(prefix, "e"),
                "expected a string",
                &value.to_string(),
            )
            .into());
        };
        return match kind.as_str() {
            "kline" => Ok(BinanceMessage::Kline(kline_event(value, prefix, unit)?)),
            "trade" => Ok(BinanceMessage::Trade(trade_event(
                value,
                prefix,
                unit,
                TradeKind::Trade,
            )?)),
            "aggTrade" => Ok(BinanceMessage::Trade(trade_event(
                value,
                prefix,
                unit,
                TradeKind::AggTrade,
            )?)),
            "serverShutdown" => {
                let t = obj.get("E").and_then(wire::int_from_value).ok_or_else(|| {
                    DecodeError::missing(WS, wire::join(prefix, "E"), &value.to_string())
                })?;
                Ok(BinanceMessage::ServerShutdown {
                    event_time_ms: unit.to_ms(t),
                })
            }
            other => Ok(BinanceMessage::Other {
                event_type: Some(other.to_string()),
            }),
        };
    }
    if obj.contains_key("result") {
        return Ok(BinanceMessage::Response {
            id: request_id(obj.get("id")),
            result: obj.get("result").cloned().unwrap_or(Value::Null),
        });
    }
    // Error frames come flat ({"code":…,"msg":…}) on the stream endpoints and nested
    // ({"error":{"code":…,"msg":…}}) on the WebSocket API; accept both.
    let error_body = if obj.contains_key("code") && obj.contains_key("msg") {
        Some(value)
    } else {
        obj.get("error").filter(|e| e.is_object())
    };
    if let Some(body) = error_body {
        let raw: RawErrorBody = wire::decode_value(WS, prefix, body)?;
        return Ok(BinanceMessage::Error {
            code: raw.code,
            msg: raw.msg,
            id: request_id(obj.get("id")),
        });
    }
    Ok(BinanceMessage::Other { event_type: None })
}

/// Checks a converted time is plausible; a wrong [`TimeUnit`] lands far outside.
fn check_time(
    message: &'static str,
    field: String,
    t_ms: i64,
    payload: &Value,
) -> Result<i64, DecodeError> {
    if (MIN_TIME_MS..MAX_TIME_MS).contains(&t_ms) {
        Ok(t_ms)
    } else {
        Err(DecodeError::invalid(
            message,
            field,
            format!(
                "time {t_ms} ms is outside 2000..2100 (wrong time unit: milliseconds vs microseconds?)"
            ),
            &payload.to_string(),
        ))
    }
}

/// Checks OHLCV values make a real bar: positive prices, high/low bracketing open and close,
/// non-negative volume. Binance never sends anything else, so a violation means corruption.
fn check_bar(
    message: &'static str,
    field: &str,
    bar: &Candle,
    payload: &str,
) -> Result<(), DecodeError> {
    let (o, h, l, c, v) = (bar.open, bar.high, bar.low, bar.close, bar.volume);
    let reason = if [o, h, l, c].iter().any(|p| *p <= 0.0) {
        Some("prices must be positive")
    } else if v < 0.0 {
        Some("volume must not be negative")
    } else if h < o.max(c) || l > o.min(c) || h < l {
        Some("high/low do not bracket open and close")
    } else {
        None
    };
    match reason {
        Some(r) => Err(DecodeError::invalid(message, field, r, payload)),
        None => Ok(()),
    }
}

fn kline_event(value: &Value, prefix: &str, unit: TimeUnit) -> Result<KlineEvent, DecodeError> {
    let raw: RawKlineEvent = wire::decode_value(KLINE, prefix, value)?;
    let k = &raw.k;
    let field = |f: &str| wire::join(prefix, f);
    if k.interval != "1m" {
        return Err(DecodeError::invalid(
            KLINE,
            field("k.i"),
            format!(
                "interval is {:?}; only 1-minute bars are accepted",
                k.interval
            ),
            &value.to_string(),
        ));
    }
    let event_time_ms = check_time(KLINE, field("E"), unit.to_ms(raw.event_time), value)?;
    let open_ms = check_time(KLINE, field("k.t"), unit.to_ms(k.open_time), value)?;
    let close_ms = unit.to_ms(k.close_time);
    if open_ms % MINUTE_MS != 0 || close_ms != open_ms + MINUTE_MS - 1 {
        return Err(DecodeError::invalid(
            KLINE,
            field("k.T"),
            format!("bar {open_ms}..{close_ms} ms is not one aligned minute"),
            &value.to_string(),
        ));
    }
    let candle = Candle {
        open_time: open_ms / 1000,
        open: k.open,
        high: k.high,
        low: k.low,
        close: k.close,
        volume: k.volume,
    };
    check_bar(KLINE, &field("k"), &candle, &value.to_string())?;
    Ok(KlineEvent {
        symbol: raw.symbol,
        event_time_ms,
        candle,
        closed: k.closed,
    })
}

fn trade_event(
    value: &Value,
    prefix: &str,
    unit: TimeUnit,
    kind: TradeKind,
) -> Result<TradeEvent, DecodeError> {
    let raw: RawTrade = wire::decode_value(TRADE, prefix, value)?;
    let field = |f: &str| wire::join(prefix, f);
    let time_ms = check_time(TRADE, field("T"), unit.to_ms(raw.trade_time), value)?;
    let event_time_ms = check_time(TRADE, field("E"), unit.to_ms(raw.event_time), value)?;
    if raw.price <= 0.0 {
        return Err(DecodeError::invalid(
            TRADE,
            field("p"),
            "price must be positive",
            &value.to_string(),
        ));
    }
    if raw.qty < 0.0 {
        return Err(DecodeError::invalid(
            TRADE,
            field("q"),
            "quantity must not be negative",
            &value.to_string(),
        ));
    }
    Ok(TradeEvent {
        kind,
        symbol: raw.symbol,
        price: raw.price,
        qty: raw.qty,
        time_ms,
        event_time_ms,
        buyer_is_maker: raw.buyer_is_maker,
    })
}

/// Recognises a Binance REST error body (`{"code":-1121,"msg":"Invalid symbol."}`).
pub fn parse_rest_error(body: &str) -> Option<BinanceError> {
    let raw: RawErrorBody = wire::decode(KLINES, body).ok()?;
    Some(BinanceError::Api {
        code: raw.code,
        msg: raw.msg,
    })
}

/// Names of the kline array elements this parser reads, by index (reference §7.2).
const KLINE_COLUMNS: [&str; 7] = [
    "open time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close time",
];

/// Decodes a `GET /api/v3/klines` body into 1-minute candles, oldest first.
///
/// Each row is `[open time, open, high, low, close, volume, close time, quote volume,
/// trades, taker-buy base, taker-buy quote, ignore]` with prices as strings and times as
/// integers (ms); elements after the close time are not needed and not checked, so a
/// longer row is accepted. Rows must be 1-minute bars (`close − open = 59 999 ms`) with
/// strictly increasing open times; gaps (exchange maintenance) are allowed and left to
/// the caller. The last row of a live response is usually the bar still in progress: keep
/// only [`closed_by`] the current time.
pub fn parse_klines(body: &str) -> Result<Vec<Candle>, BinanceError> {
    let value = wire::parse_json(KLINES, body)?;
    let rows = match &value {
        Value::Array(rows) => rows,
        Value::Object(_) => {
            return Err(parse_rest_error(body).unwrap_or_else(|| {
                DecodeError::invalid(KLINES, ".", "expected an array of klines", body).into()
            }));
        }
        _ => {
            return Err(
                DecodeError::invalid(KLINES, ".", "expected an array of klines", body).into(),
            );
        }
    };
    let mut candles: Vec<Candle> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let row_text = row.to_string();
        let Value::Array(cells) = row else {
            return Err(DecodeError::invalid(
                KLINES,
                format!("[{i}]"),
                "expected an array",
                &row_text,
            )
            .into());
        };
        let cell = |j: usize| -> Result<&Value, DecodeError> {
            cells.get(j).ok_or_else(|| {
                DecodeError::missing(
                    KLINES,
                    format!("[{i}][{j}] ({})", KLINE_COLUMNS[j]),
                    &row_text,
                )
            })
        };
        let time = |j: usize| -> Result<i64, DecodeError> {
            let v = cell(j)?;
            let t = wire::int_from_value(v).ok_or_else(|| {
                DecodeError::invalid(
                    KLINES,
                    format!("[{i}][{j}] ({})", KLINE_COLUMNS[j]),
                    format!("expected an integer time in ms, got {v}"),
                    &row_text,
                )
            })?;
            check_time(KLINES, format!("[{i}][{j}] ({})", KLINE_COLUMNS[j]), t, row)
        };
        let num = |j: usize| -> Result<f64, DecodeError> {
            let v = cell(j)?;
            let x = match v {
                Value::String(s) => s.trim().parse::<f64>().ok(),
                Value::Number(n) => n.as_f64(),
                _ => None,
            };
            x.filter(|x| x.is_finite()).ok_or_else(|| {
                DecodeError::invalid(
                    KLINES,
                    format!("[{i}][{j}] ({})", KLINE_COLUMNS[j]),
                    format!("expected a decimal string, got {v}"),
                    &row_text,
                )
            })
        };
        let open_ms = time(0)?;
        let close_ms = time(6)?;
        if close_ms - open_ms != MINUTE_MS - 1 {
            return Err(DecodeError::invalid(
                KLINES,
                format!("[{i}][6] (close time)"),
                format!(
                    "bar spans {} ms; only 1-minute bars (59999 ms) are accepted — request interval=1m",
                    close_ms.saturating_sub(open_ms).saturating_add(1)
                ),
                &row_text,
            )
            .into());
        }
        if open_ms % MINUTE_MS != 0 {
            return Err(DecodeError::invalid(
                KLINES,
                format!("[{i}][0] (open time)"),
                "open time is not on a whole minute",
                &row_text,
            )
            .into());
        }
        let candle = Candle {
            open_time: open_ms / 1000,
            open: num(1)?,
            high: num(2)?,
            low: num(3)?,
            close: num(4)?,
            volume: num(5)?,
        };
        check_bar(KLINES, &format!("[{i}]"), &candle, &row_text)?;
        if let Some(prev) = candles.last()
            && candle.open_time <= prev.open_time
        {
            return Err(DecodeError::invalid(
                KLINES,
                format!("[{i}][0] (open time)"),
                "open times must strictly increase",
                &row_text,
            )
            .into());
        }
        candles.push(candle);
    }
    Ok(candles)
}

/// The leading candles that had closed by `now` (Unix seconds): REST answers include the
/// bar still forming, which must not reach a strategy.
pub fn closed_by(candles: &[Candle], now: i64) -> &[Candle] {
    let n = candles.partition_point(|c| c.close_time() <= now);
    &candles[..n]
}

// ---------------------------------------------------------------------------------------
// Shared fuzzing kit (tests only)
// ---------------------------------------------------------------------------------------

/// Strategies shared by every wire parser's fuzz tests (`fuzz_*`, docs/FUZZING.md).
#[cfg(test)]
pub(crate) mod fuzzkit {
    use proptest::prelude::*;
    use serde_json::{Map, Number, Value};

    /// Field names any of the parsers read, so random objects reach past the first check.
    const KEYS: &[&str] = &[
        "e",
        "E",
        "s",
        "k",
        "t",
        "T",
        "i",
        "o",
        "h",
        "l",
        "c",
        "v",
        "x",
        "p",
        "q",
        "m",
        "stream",
        "data",
        "result",
        "id",
        "code",
        "msg",
        "error",
        "price",
        "time",
        "bitcoin",
        "usd",
        "last_updated_at",
        "amount",
        "currency",
        "message",
        "slug",
        "conditionId",
        "question",
        "description",
        "outcomes",
        "outcomePrices",
        "clobTokenIds",
        "orderPriceMinTickSize",
        "orderMinSize",
        "feeSchedule",
        "rate",
        "exponent",
        "active",
        "closed",
        "acceptingOrders",
        "enableOrderBook",
        "eventStartTime",
        "endDate",
        "markets",
        "event_type",
        "asset_id",
        "market",
        "bids",
        "asks",
        "size",
        "side",
        "timestamp",
        "hash",
        "price_changes",
        "changes",
        "best_bid",
        "best_ask",
        "old_tick_size",
        "new_tick_size",
        "winning_asset_id",
        "winning_outcome",
        "assets_ids",
        "fee_rate_bps",
        "spread",
        "tick_size",
        "min_order_size",
    ];

    /// String values that mean something to some parser.
    const STRINGS: &[&str] = &[
        "kline",
        "trade",
        "aggTrade",
        "serverShutdown",
        "1m",
        "5m",
        "book",
        "price_change",
        "tick_size_change",
        "best_bid_ask",
        "last_trade_price",
        "market_resolved",
        "new_market",
        "BUY",
        "SELL",
        "Up",
        "Down",
        "Yes",
        "0",
        "1",
        "0.5",
        ".48",
        "0.01",
        "-1",
        "1e3",
        "NaN",
        "inf",
        "",
        "[\"Up\",\"Down\"]",
        "[\"Down\",\"Up\"]",
        "[\"0\",\"1\"]",
        "[\"1\",\"0\"]",
        "[\"1\",\"2\"]",
        "[",
        "2026-03-12T09:20:00Z",
        "btc-updown-5m-1773307200",
        "1672515780000",
        "1728799418260",
        "0x78443f961b9a65869dcb39359de9960165c7e5cbad0904eac7f29cd77872a63b",
        "PONG",
        "79228162514264337593543950335",
        "99999999999999999999999999999",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            prop_oneof![
                Just(0i64),
                Just(1),
                Just(-1),
                Just(60_000),
                Just(1_672_515_780_000),
                Just(1_672_515_839_999)
            ]
            .prop_map(|n| Value::Number(n.into())),
            any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
            proptest::sample::select(STRINGS).prop_map(|s| Value::String(s.to_string())),
            ".{0,12}".prop_map(Value::String),
        ]
    }

    /// Arbitrary JSON values, biased towards the keys and strings the parsers look for.
    pub(crate) fn json_value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((proptest::sample::select(KEYS), inner), 0..8).prop_map(
                    |kv| {
                        let mut m = Map::new();
                        for (k, v) in kv {
                            m.insert(k.to_string(), v);
                        }
                        Value::Object(m)
                    }
                ),
            ]
        })
    }

    /// One byte-level mutation of a payload.
    #[derive(Clone, Debug)]
    pub(crate) enum Mutation {
        /// Overwrite the byte at (index mod len).
        Set(usize, u8),
        /// Insert a byte at (index mod len+1).
        Insert(usize, u8),
        /// Remove up to `n` bytes at (index mod len).
        Remove(usize, usize),
        /// Truncate at (index mod len+1).
        Truncate(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
            (
                any::<usize>(),
                prop::sample::select(b"{}[]\",:0123456789.-eE ntf\\".to_vec())
            )
                .prop_map(|(i, b)| Mutation::Insert(i, b)),
            (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
            any::<usize>().prop_map(Mutation::Truncate),
        ]
    }

    /// Applies `mutations` to `payload` and returns the (lossily re-encoded) text.
    pub(crate) fn apply(payload: &str, mutations: &[Mutation]) -> String {
        let mut b = payload.as_bytes().to_vec();
        for m in mutations {
            match *m {
                Mutation::Set(i, x) if !b.is_empty() => {
                    let n = b.len();
                    b[i % n] = x;
                }
                Mutation::Insert(i, x) => {
                    let n = b.len() + 1;
                    b.insert(i % n, x);
                }
                Mutation::Remove(i, k) if !b.is_empty() => {
                    let start = i % b.len();
                    let end = (start + k).min(b.len());
                    b.drain(start..end);
                }
                Mutation::Truncate(i) => {
                    let n = b.len() + 1;
                    b.truncate(i % n);
                }
                _ => {}
            }
        }
        String::from_utf8_lossy(&b).into_owned()
    }

    /// A real payload from `payloads`, with 1–8 random byte mutations or truncations.
    pub(crate) fn mutated(payloads: Vec<String>) -> impl Strategy<Value = String> {
        (
            proptest::sample::select(payloads),
            prop::collection::vec(mutation(), 1..8),
        )
            .prop_map(|(p, ms)| apply(&p, &ms))
    }

    /// Every node of `v` as a JSON pointer.
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match v {
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    pointers(x, format!("{at}/{i}"), out);
                }
            }
            Value::Object(o) => {
                for (k, x) in o {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    pointers(x, format!("{at}/{k}"), out);
                }
            }
            _ => {}
        }
    }

    /// A real payload with 1–4 of its nodes replaced by random JSON (or removed): reaches
    /// the validation behind a successful parse far more often than byte noise does.
    pub(crate) fn value_mutated(payloads: Vec<String>) -> impl Strategy<Value = String> {
        (
            proptest::sample::select(payloads),
            prop::collection::vec((any::<usize>(), any::<bool>(), json_value()), 1..4),
        )
            .prop_map(|(p, edits)| {
                let Ok(mut v) = serde_json::from_str::<Value>(&p) else {
                    return p;
                };
                for (pick, remove, replacement) in edits {
                    let mut all = Vec::new();
                    pointers(&v, String::new(), &mut all);
                    let ptr = &all[pick % all.len()];
                    if remove && !ptr.is_empty() {
                        let (parent, key) = ptr.rsplit_once('/').unwrap_or(("", ""));
                        let key = key.replace("~1", "/").replace("~0", "~");
                        match v.pointer_mut(parent) {
                            Some(Value::Object(o)) => {
                                o.remove(&key);
                            }
                            Some(Value::Array(a)) => {
                                if let Ok(i) = key.parse::<usize>()
                                    && i < a.len()
                                {
                                    a.remove(i);
                                }
                            }
                            _ => {}
                        }
                    } else if let Some(slot) = v.pointer_mut(ptr) {
                        *slot = replacement;
                    }
                }
                v.to_string()
            })
    }

    /// Reads a recorded file under `shared/data` (next to the repository).
    pub(crate) fn shared(relative: &str) -> String {
        let path = format!("{}/../shared/data/{relative}", env!("CARGO_MANIFEST_DIR"));
        match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => panic!(
                "recorded payload {path} is missing ({e}): the shared data folder must sit \
                 next to the repository (../shared/data from the crate root)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fuzzkit::{json_value, mutated, shared, value_mutated};
    use super::*;
    use proptest::prelude::*;

    // Wire examples below copy the documented formats exactly: reference
    // (shared/reference/polymarket-api.md) §7.1 for streams (Binance web-socket-streams.md),
    // §7.2 for REST klines (Binance rest-api.md).

    /// §7.1 `btcusdt@kline_1m` example, verbatim.
    const KLINE_DOC: &str = r#"{ "e": "kline", "E": 1672515782136, "s": "BNBBTC",
  "k": { "t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m", "f": 100, "L": 200,
         "o": "0.0010", "c": "0.0020", "h": "0.0025", "l": "0.0015", "v": "1000", "n": 100,
         "x": false, "q": "1.0000", "V": "500", "Q": "0.500", "B": "123456" } }"#;

    /// §7.1 `btcusdt@trade` example, verbatim.
    const TRADE_DOC: &str = r#"{ "e": "trade", "E": 1672515782136, "s": "BNBBTC", "t": 12345, "p": "0.001", "q": "100",
  "T": 1672515782136, "m": true, "M": true }"#;

    /// Binance web-socket-streams.md "Aggregate Trade Streams" payload.
    const AGG_TRADE_DOC: &str = r#"{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100","f":100,"l":105,"T":1672515782136,"m":true,"M":true}"#;

    /// §7.2 klines response example, verbatim (a 1-week bar in Binance's docs).
    const KLINES_DOC_WEEK: &str = r#"[ [ 1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100", "148976.11427815",
    1499644799999, "2434.19055334", 308, "1756.87402397", "28.46694368", "0" ] ]"#;

    fn kline_of(frame: StreamFrame) -> KlineEvent {
        match frame.message {
            BinanceMessage::Kline(k) => k,
            other => panic!("expected a kline, got {other:?}"),
        }
    }

    fn trade_of(frame: StreamFrame) -> TradeEvent {
        match frame.message {
            BinanceMessage::Trade(t) => t,
            other => panic!("expected a trade, got {other:?}"),
        }
    }

    fn decode_err(e: BinanceError) -> DecodeError {
        match e {
            BinanceError::Decode(d) => d,
            other => panic!("expected a decode error, got {other:?}"),
        }
    }

    /// The §7.1 kline payload, field for field, carrying the values of the first real minute
    /// of `binance_btc.csv` (2026-02-21 14:26 UTC: 68522.3 / 68525.53 / 68484.35 / 68484.35,
    /// 7.44951 BTC).
    const KLINE_REAL: &str = r#"{ "e": "kline", "E": 1771684019532, "s": "BTCUSDT",
  "k": { "t": 1771683960000, "T": 1771684019999, "s": "BTCUSDT", "i": "1m", "f": 100, "L": 200,
         "o": "68522.30000000", "c": "68484.35000000", "h": "68525.53000000", "l": "68484.35000000", "v": "7.44951000", "n": 100,
         "x": true, "q": "510300.12", "V": "3.1", "Q": "212345.6", "B": "0" } }"#;

    #[test]
    fn kline_becomes_a_candle_in_seconds() {
        let k = kline_of(parse_ws_message(KLINE_REAL, TimeUnit::Millisecond).unwrap());
        assert_eq!(k.symbol, "BTCUSDT");
        assert_eq!(k.event_time_ms, 1_771_684_019_532);
        assert!(k.closed);
        assert_eq!(
            k.candle,
            Candle {
                open_time: 1_771_683_960,
                open: 68_522.3,
                high: 68_525.53,
                low: 68_484.35,
                close: 68_484.35,
                volume: 7.44951
            }
        );
        assert_eq!(crate::feed::spot::SpotPrice::from(&k).price, 68_484.35);
    }

    #[test]
    fn documented_kline_example_is_refused_for_its_impossible_values() {
        // Binance's own §7.1 example has low 0.0015 above open 0.0010: no real bar can, and
        // the real kline files have zero such violations (data README), so it is refused.
        let e = decode_err(parse_ws_message(KLINE_DOC, TimeUnit::Millisecond).unwrap_err());
        assert_eq!(e.field(), Some("k"));
        assert!(e.to_string().contains("high/low"), "{e}");
        // With a consistent low, the same payload decodes.
        let fixed = KLINE_DOC.replace(r#""l": "0.0015""#, r#""l": "0.0005""#);
        let k = kline_of(parse_ws_message(&fixed, TimeUnit::Millisecond).unwrap());
        assert_eq!(k.candle.open_time, 1_672_515_780);
        assert_eq!(
            (k.candle.open, k.candle.close, k.candle.volume),
            (0.0010, 0.0020, 1000.0)
        );
        assert!(!k.closed);
    }

    #[test]
    fn combined_stream_envelope_is_unwrapped_and_named() {
        let text = format!(r#"{{"stream":"btcusdt@kline_1m","data":{KLINE_REAL}}}"#);
        let f = parse_ws_message(&text, TimeUnit::Millisecond).unwrap();
        assert_eq!(f.stream.as_deref(), Some("btcusdt@kline_1m"));
        assert_eq!(kline_of(f).candle.open_time, 1_771_683_960);
    }

    #[test]
    fn non_one_minute_klines_are_refused_naming_the_interval() {
        let text = KLINE_REAL.replace(r#""i": "1m""#, r#""i": "5m""#);
        let e = decode_err(parse_ws_message(&text, TimeUnit::Millisecond).unwrap_err());
        assert_eq!(e.field(), Some("k.i"));
        assert!(e.to_string().contains("5m"), "{e}");
    }

    #[test]
    fn missing_kline_fields_are_named_by_path() {
        let text = KLINE_REAL.replace(r#""o": "68522.30000000", "#, "");
        let e = decode_err(parse_ws_message(&text, TimeUnit::Millisecond).unwrap_err());
        assert_eq!(e.problem, Problem::Missing("k.o".into()), "{e}");
        let text = format!(
            r#"{{"stream":"s","data":{}}}"#,
            KLINE_REAL.replace(r#""x": true, "#, "")
        );
        let e = decode_err(parse_ws_message(&text, TimeUnit::Millisecond).unwrap_err());
        assert_eq!(e.problem, Problem::Missing("data.k.x".into()), "{e}");
        assert!(e.excerpt.len() <= EXCERPT_CHARS + 3);
    }

    #[test]
    fn unparsable_prices_and_broken_bars_are_errors_not_panics() {
        for (from, to, field) in [
            (r#""c": "68484.35000000""#, r#""c": "abc""#, "k.c"),
            (r#""c": "68484.35000000""#, r#""c": "NaN""#, "k.c"),
            (r#""h": "68525.53000000""#, r#""h": "68500""#, "k"), // high below open
            (r#""l": "68484.35000000""#, r#""l": "-1""#, "k"),
            (r#""T": 1771684019999"#, r#""T": 1771684079999"#, "k.T"),
            (r#""t": 1771683960000"#, r#""t": 1771683960"#, "k.t"), // seconds, not ms
        ] {
            let text = KLINE_REAL.replace(from, to);
            assert_ne!(text, KLINE_REAL);
            let e = decode_err(parse_ws_message(&text, TimeUnit::Millisecond).unwrap_err());
            assert_eq!(e.field(), Some(field), "{e}");
        }
    }

    #[test]
    fn trade_and_agg_trade_carry_price_qty_time_and_maker_flag() {
        let t = trade_of(parse_ws_message(TRADE_DOC, TimeUnit::Millisecond).unwrap());
        assert_eq!(t.kind, TradeKind::Trade);
        assert_eq!((t.price, t.qty), (0.001, 100.0));
        assert_eq!(
            (t.time_ms, t.event_time_ms),
            (1_672_515_782_136, 1_672_515_782_136)
        );
        assert!(t.buyer_is_maker);
        let a = trade_of(parse_ws_message(AGG_TRADE_DOC, TimeUnit::Millisecond).unwrap());
        assert_eq!(a.kind, TradeKind::AggTrade);
        assert_eq!(a.price, 0.001);
    }

    /// Renders one row of the real aggTrade capture as the documented aggTrade payload, with
    /// microsecond times (the capture was taken with `timeUnit=MICROSECOND`).
    fn agg_trade_from_capture(row: &str, id: usize) -> (String, f64, f64, i64, i64, bool) {
        let cols: Vec<&str> = row.split(',').collect();
        let (trade_us, event_us) = (cols[1], cols[2]);
        let (price, qty, is_sell) = (cols[4], cols[5], cols[6] == "1");
        let wire = format!(
            r#"{{"e":"aggTrade","E":{event_us},"s":"{}","a":{id},"p":"{price}","q":"{qty}","f":{id},"l":{id},"T":{trade_us},"m":{is_sell},"M":true}}"#,
            cols[3]
        );
        (
            wire,
            price.parse().unwrap(),
            qty.parse().unwrap(),
            trade_us.parse::<i64>().unwrap() / 1000,
            event_us.parse::<i64>().unwrap() / 1000,
            is_sell,
        )
    }

    #[test]
    fn real_aggtrade_capture_values_round_trip_through_the_wire_format() {
        let csv = shared("polymarket_btc_updown_2026-02/binance_ticks_btc_20260303_07.csv");
        let mut n = 0;
        for (i, row) in csv.lines().skip(1).take(500).enumerate() {
            let (wire, price, qty, t_ms, e_ms, is_sell) = agg_trade_from_capture(row, i);
            let combined = format!(r#"{{"stream":"btcusdt@aggTrade","data":{wire}}}"#);
            let t = trade_of(parse_ws_message(&combined, TimeUnit::Microsecond).unwrap());
            assert_eq!(t.kind, TradeKind::AggTrade);
            assert_eq!(t.symbol, "BTCUSDT");
            assert_eq!(
                (t.price, t.qty, t.time_ms, t.event_time_ms),
                (price, qty, t_ms, e_ms)
            );
            assert_eq!(t.buyer_is_maker, is_sell);
            assert!((68_129.0..68_231.0).contains(&t.price));
            n += 1;
        }
        assert_eq!(n, 500);
    }

    #[test]
    fn microsecond_times_read_as_milliseconds_are_caught() {
        let csv = shared("polymarket_btc_updown_2026-02/binance_ticks_btc_20260303_07.csv");
        let row = csv.lines().nth(1).unwrap();
        let (wire, ..) = agg_trade_from_capture(row, 0);
        let e = decode_err(parse_ws_message(&wire, TimeUnit::Millisecond).unwrap_err());
        assert_eq!(e.field(), Some("T"));
        assert!(e.to_string().contains("microseconds"), "{e}");
    }

    #[test]
    fn subscription_responses_errors_and_other_events_are_recognised() {
        let f = parse_ws_message(r#"{"result":null,"id":1}"#, TimeUnit::Millisecond).unwrap();
        assert_eq!(
            f.message,
            BinanceMessage::Response {
                id: Some(RequestId::Int(1)),
                result: Value::Null
            }
        );
        let f = parse_ws_message(
            r#"{"result":["btcusdt@aggTrade"],"id":"a3"}"#,
            TimeUnit::Millisecond,
        )
        .unwrap();
        assert!(
            matches!(f.message, BinanceMessage::Response { id: Some(RequestId::Str(ref s)), .. } if s == "a3")
        );
        // web-socket-streams.md "Error Messages" table.
        let f = parse_ws_message(
            r#"{"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}"#,
            TimeUnit::Millisecond,
        )
        .unwrap();
        assert!(
            matches!(f.message, BinanceMessage::Error { code: 2, ref msg, id: None } if msg.starts_with("Invalid request"))
        );
        let f = parse_ws_message(
            r#"{"code": 0, "msg": "Unknown property","id": 7}"#,
            TimeUnit::Millisecond,
        )
        .unwrap();
        assert!(matches!(
            f.message,
            BinanceMessage::Error {
                code: 0,
                id: Some(RequestId::Int(7)),
                ..
            }
        ));
        let f = parse_ws_message(
            r#"{"e":"serverShutdown","E":1672515782136}"#,
            TimeUnit::Millisecond,
        )
        .unwrap();
        assert_eq!(
            f.message,
            BinanceMessage::ServerShutdown {
                event_time_ms: 1_672_515_782_136
            }
        );
        // §7.1 partial depth has no `e`; ticker has one we do not decode.
        let f = parse_ws_message(
            r#"{"stream":"btcusdt@depth20@100ms","data":{ "lastUpdateId": 160, "bids": [ [ "0.0024", "10" ] ], "asks": [ [ "0.0026", "100" ] ] }}"#,
            TimeUnit::Millisecond,
        )
        .unwrap();
        assert_eq!(f.message, BinanceMessage::Other { event_type: None });
        let f = parse_ws_message(
            r#"{"e":"24hrTicker","E":1,"s":"BNBBTC"}"#,
            TimeUnit::Millisecond,
        )
        .unwrap();
        assert_eq!(
            f.message,
            BinanceMessage::Other {
                event_type: Some("24hrTicker".into())
            }
        );
        for bad in ["", "[]", "42", "\"x\"", "{", r#"{"e":5}"#] {
            assert!(
                parse_ws_message(bad, TimeUnit::Millisecond).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn rest_klines_from_the_real_recorded_minutes() {
        // Values from the real Binance capture binance_btc.csv (README §2); the wire layout is
        // §7.2's: [open time, "open", "high", "low", "close", "volume", close time, "quote
        // volume", trades, "taker base", "taker quote", "0"].
        let csv = shared("polymarket_btc_updown_2026-02/binance_btc.csv");
        let mut expected = Vec::new();
        let mut rows = Vec::new();
        for line in csv.lines().skip(1).take(120) {
            let c: Vec<&str> = line.split(',').collect();
            let t = chrono::NaiveDateTime::parse_from_str(c[0], "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
                .timestamp();
            rows.push(format!(
                r#"[{},"{}","{}","{}","{}","{}",{},"0",1,"0","0","0"]"#,
                t * 1000,
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                t * 1000 + 59_999
            ));
            expected.push(Candle {
                open_time: t,
                open: c[1].parse().unwrap(),
                high: c[2].parse().unwrap(),
                low: c[3].parse().unwrap(),
                close: c[4].parse().unwrap(),
                volume: c[5].parse().unwrap(),
            });
        }
        let body = format!("[{}]", rows.join(","));
        let got = parse_klines(&body).unwrap();
        assert_eq!(got, expected);
        assert_eq!(got[0].open_time, 1_771_683_960); // 2026-02-21 14:26 UTC
        let last_close = got[119].close_time();
        assert_eq!(closed_by(&got, last_close).len(), 120);
        assert_eq!(closed_by(&got, last_close - 1).len(), 119);
        assert!(closed_by(&got, 0).is_empty());
    }

    #[test]
    fn rest_klines_refuse_other_intervals_errors_and_disorder() {
        let e = decode_err(parse_klines(KLINES_DOC_WEEK).unwrap_err());
        assert_eq!(e.field(), Some("[0][6] (close time)"));
        assert!(e.to_string().contains("only 1-minute bars"), "{e}");

        // Binance error body (errors.md): {"code":-1121,"msg":"Invalid symbol."}
        assert_eq!(
            parse_klines(r#"{"code":-1121,"msg":"Invalid symbol."}"#).unwrap_err(),
            BinanceError::Api {
                code: -1121,
                msg: "Invalid symbol.".into()
            }
        );
        assert!(parse_rest_error(r#"{"code":-1121,"msg":"Invalid symbol."}"#).is_some());
        assert!(parse_rest_error("[]").is_none());

        let row = |t: i64| {
            format!(
                r#"[{t},"1","2","0.5","1.5","3",{},"0",1,"0","0","0"]"#,
                t + 59_999
            )
        };
        let ok = format!("[{},{}]", row(1_499_040_000_000), row(1_499_040_120_000));
        assert_eq!(parse_klines(&ok).unwrap().len(), 2); // a gap is allowed
        let dup = format!("[{},{}]", row(1_499_040_000_000), row(1_499_040_000_000));
        assert_eq!(
            decode_err(parse_klines(&dup).unwrap_err()).field(),
            Some("[1][0] (open time)")
        );
        let short = r#"[[1499040000000,"1","2","0.5"]]"#;
        assert_eq!(
            decode_err(parse_klines(short).unwrap_err()).problem,
            Problem::Missing("[0][6] (close time)".into())
        );
        let no_close = r#"[[1499040000000,"1","2","0.5",null,"3",1499040059999]]"#;
        assert_eq!(
            decode_err(parse_klines(no_close).unwrap_err()).field(),
            Some("[0][4] (close)")
        );
        assert_eq!(parse_klines("[]").unwrap(), vec![]);
        for bad in ["", "{}", "null", "[1]", "[[\"x\"]]"] {
            assert!(parse_klines(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn excerpts_are_short_and_cut_on_char_boundaries() {
        let long = "é".repeat(500);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt("short"), "short");
    }

    fn ws_payloads() -> Vec<String> {
        vec![
            KLINE_DOC.to_string(),
            KLINE_REAL.to_string(),
            format!(r#"{{"stream":"btcusdt@kline_1m","data":{KLINE_REAL}}}"#),
            TRADE_DOC.to_string(),
            AGG_TRADE_DOC.to_string(),
            r#"{"result":null,"id":1}"#.to_string(),
            r#"{"code": 0, "msg": "Unknown property","id": 7}"#.to_string(),
        ]
    }

    fn klines_payloads() -> Vec<String> {
        vec![
            KLINES_DOC_WEEK.to_string(),
            r#"[[1499040000000,"1","2","0.5","1.5","3",1499040059999,"0",1,"0","0","0"],[1499040060000,"1","2","0.5","1.5","3",1499040119999,"0",1,"0","0","0"]]"#.to_string(),
            r#"{"code":-1121,"msg":"Invalid symbol."}"#.to_string(),
        ]
    }

    proptest! {
        #[test]
        fn fuzz_binance_ws_arbitrary_strings(s in ".*") {
            let _ = parse_ws_message(&s, TimeUnit::Millisecond);
            let _ = parse_ws_message(&s, TimeUnit::Microsecond);
        }

        #[test]
        fn fuzz_binance_ws_arbitrary_json(v in json_value()) {
            let _ = parse_ws_message(&v.to_string(), TimeUnit::Millisecond);
            let wrapped = serde_json::json!({"stream": "btcusdt@kline_1m", "data": v});
            let _ = parse_ws_message(&wrapped.to_string(), TimeUnit::Microsecond);
        }

        #[test]
        fn fuzz_binance_ws_mutated_payloads(s in mutated(ws_payloads())) {
            if let Ok(StreamFrame { message: BinanceMessage::Kline(k), .. }) =
                parse_ws_message(&s, TimeUnit::Millisecond)
            {
                // Whatever got through is a real bar.
                let c = k.candle;
                prop_assert!(c.high >= c.open.max(c.close) && c.low <= c.open.min(c.close));
                prop_assert!(c.low > 0.0 && c.volume >= 0.0);
            }
        }

        #[test]
        fn fuzz_binance_ws_value_mutations(s in value_mutated(ws_payloads())) {
            let _ = parse_ws_message(&s, TimeUnit::Millisecond);
        }

        #[test]
        fn fuzz_binance_klines_arbitrary_strings(s in ".*") {
            let _ = parse_klines(&s);
            let _ = parse_rest_error(&s);
        }

        #[test]
        fn fuzz_binance_klines_arbitrary_json(v in json_value()) {
            let _ = parse_klines(&v.to_string());
            let _ = parse_klines(&serde_json::json!([v]).to_string());
        }

        #[test]
        fn fuzz_binance_klines_mutated_payloads(s in mutated(klines_payloads())) {
            if let Ok(candles) = parse_klines(&s) {
                for w in candles.windows(2) {
                    prop_assert!(w[0].open_time < w[1].open_time);
                }
            }
        }

        #[test]
        fn fuzz_binance_klines_value_mutations(s in value_mutated(klines_payloads())) {
            let _ = parse_klines(&s);
        }
    }
}
