//! Coinbase and CoinGecko spot prices, as served by the loopback venue: the live feed's
//! fallbacks when Binance is unreachable. Deliberately minimal — one endpoint each, BTC in
//! USD only — in the shapes of reference §7.3:
//!
//! - `GET /coinbase/v2/prices/BTC-USD/spot` → `{"data":{"amount":"…","base":"BTC","currency":"USD"}}`;
//! - `GET /coingecko/api/v3/simple/price?ids=bitcoin&vs_currencies=usd` →
//!   `{"bitcoin":{"usd":…}}`, plus `last_updated_at` (Unix s) with
//!   `include_last_updated_at=true`.
//!
//! The price is BTC's on the recorded bars' in-minute path at the virtual time (the same
//! path the Binance streams follow), so a fallback price agrees with Binance's to within
//! the minute's range.

use super::server::{Shared, json_response};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;
use std::collections::HashMap;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/coinbase/v2/prices/{pair}/spot", get(coinbase))
        .route("/coingecko/api/v3/simple/price", get(coingecko))
}

async fn coinbase(
    State(app): State<Shared>,
    axum::extract::Path(pair): axum::extract::Path<String>,
) -> Response {
    if !pair.eq_ignore_ascii_case("BTC-USD") {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"errors": [{"id": "not_found", "message": "Invalid currency"}]}).to_string(),
        );
    }
    match app.model.spot(app.clock.now_ms()) {
        Some(p) => json_response(
            StatusCode::OK,
            json!({"data": {"amount": format!("{p:.2}"), "base": "BTC", "currency": "USD"}})
                .to_string(),
        ),
        None => json_response(
            StatusCode::NOT_FOUND,
            json!({"errors": [{"id": "not_found", "message": "no price yet"}]}).to_string(),
        ),
    }
}

async fn coingecko(
    State(app): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ids = q.get("ids").map(String::as_str).unwrap_or("");
    let vs = q.get("vs_currencies").map(String::as_str).unwrap_or("");
    if ids.is_empty() || vs.is_empty() {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "Missing parameter ids or vs_currencies"}).to_string(),
        );
    }
    let now = app.clock.now_ms();
    let wants_btc = ids.split(',').any(|i| i.trim() == "bitcoin");
    let wants_usd = vs.split(',').any(|v| v.trim().eq_ignore_ascii_case("usd"));
    let body = match (wants_btc && wants_usd, app.model.spot(now)) {
        (true, Some(p)) => {
            let mut coin = json!({"usd": (p * 100.0).round() / 100.0});
            if q.get("include_last_updated_at")
                .is_some_and(|v| v == "true")
            {
                coin["last_updated_at"] = json!(now.div_euclid(1000));
            }
            json!({"bitcoin": coin})
        }
        // CoinGecko answers `{}` for an id or currency it does not know.
        _ => json!({}),
    };
    json_response(StatusCode::OK, body.to_string())
}
