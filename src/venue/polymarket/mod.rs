//! Polymarket's wire formats, the local order book the paper and live venues quote from,
//! and the network clients that feed them.
//!
//! [`gamma`], [`clob`] and [`book`] are pure and synchronous: text in, typed values or an
//! error out, plus in-memory book state. I/O lives in [`client`] (HTTP with retries, the
//! WebSocket handshake) and [`stream`] (background tasks keeping books live); no signer
//! lives here. Formats and pitfalls follow `shared/reference/polymarket-api.md` (§ numbers
//! cited in each file).
//!
//! - [`gamma`]: market discovery. `GET /events?slug=…`, `/events/slug/<slug>` and the
//!   fallback `GET /markets?slug=…` into a [`MarketInfo`]: Up/Down token ids mapped by index
//!   from the JSON-encoded `outcomes`/`clobTokenIds`, tick and minimum size, fee schedule,
//!   window times, the [`MarketResolution`] (winner only when exactly one side is priced 1
//!   and the other 0) and the [`ResolutionRule`] read from the description.
//! - [`clob`]: the CLOB REST `GET /book` body and every market-channel WebSocket message
//!   (`book`, `price_change` in its three generations, `tick_size_change`, `best_bid_ask`,
//!   `last_trade_price`, `market_resolved`, `new_market`, `PING`/`PONG`), prices and sizes
//!   as `Decimal`, unknown event types passed through.
//! - [`book`]: an [`OrderBook`] for one outcome token built from those messages: best
//!   levels, depth near the top, imbalance, a level-by-level [`Walk`] of the asks for a USD
//!   amount under a price cap, staleness, and the venue's [`BookTop`](crate::venue::BookTop);
//!   a crossed book is an error state, never quoted.
//! - [`client`]: Gamma discovery (`/events?slug=`, falling back to `/markets?slug=`) and
//!   CLOB REST `/book` over HTTP with retries (429/5xx, `Retry-After`), and the
//!   market-channel handshake; rustls only.
//! - [`stream`]: the market-channel subscription, heartbeat and reconnects, books kept
//!   clean (resynchronised from REST after reconnects, gaps, out-of-order or inconsistent
//!   changes and malformed frames), staleness, and `market_resolved` events.
//!
//! Not here: order signing and submission (CLOB V2, reference §3.4–3.7), the user channel
//! (§4.2) and RTDS prices (§4.3).
//!
//! Errors say which message and field is wrong and carry an excerpt of the payload
//! ([`DecodeError`](crate::feed::binance::DecodeError), shared with the Binance parsers).

pub mod book;
pub mod client;
pub mod clob;
pub mod gamma;
pub mod stream;

pub use book::{BookError, BookSide, OrderBook, Walk};
pub use clob::{
    BookSnapshot, ClobError, MarketEvent, OrderSide, PriceChangeEvent, PriceLevel, WsFrame,
    parse_book, parse_ws_frame,
};
pub use gamma::{
    FeeSchedule, GammaError, MarketInfo, MarketResolution, ResolutionRule, UpDownPrices,
    parse_event, parse_events, parse_market, parse_markets,
};
