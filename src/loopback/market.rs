//! What the loopback venue shows at a virtual time: the spot price path inside a minute,
//! the Up/Down mid of a window, its order books, its phase (upcoming, open, ended, resolved)
//! and the Gamma JSON of its market and event.
//!
//! All of it is a pure function of the recorded data, the configuration (seeded) and the
//! virtual time, so two venues with the same seed serve the same bytes at the same virtual
//! time, and nothing depends on a candle that has not closed yet:
//!
//! - Inside a minute the price walks open → low → high → close (or open → high → low → close
//!   for a falling bar) in three equal legs; a forming bar is the part walked so far, so its
//!   high/low/volume never exceed the recorded bar and its close is the path price now.
//! - The Up mid before a window opens is 0.505 (the template market's). During the window it
//!   is the probability that BTC ends at or above the window's open given the return so far
//!   and the time left: `Φ(return / (σ₁ₘ · √minutes_left))`, clamped to 0.01..0.99. After the
//!   window ends it is frozen at its last value, so it never tells the real (Chainlink)
//!   outcome, which differs from Binance's direction in about 2 % of the recorded windows.
//! - Books: tick 0.01, Up best bid ≈ mid − half a tick, a one-tick spread (two ticks in one
//!   update bucket of five), Down mirrored (`bid_down = 1 − ask_up`). Level sizes are the
//!   recorded book's sizes best-first, scaled and jittered per level; each level's jitter
//!   changes every four update buckets, staggered, so each update moves about a quarter of
//!   the levels.

use super::data::{VenueData, WindowInfo};
use crate::domain::Side;
use crate::feed::Candle;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Tick size of the served books, in cents.
const TICK_CENTS: i64 = 1;

/// The Up mid of a market before its window opens (the template market's `outcomePrices`).
pub const PRE_WINDOW_MID: f64 = 0.505;

/// Where a market is in its life at a virtual time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Listed, window not started: accepting orders, mid near 0.5.
    Upcoming,
    /// Inside its window: accepting orders, mid follows BTC.
    Open,
    /// Window over, not resolved yet (or never, under a fault): no orders, book frozen.
    Ended,
    /// Resolved to this side: Gamma shows `closed` and `["1","0"]`/`["0","1"]`.
    Resolved(Side),
}

/// How a market's resolution deviates from the configured delay (a fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum ResolutionFault {
    /// Resolves `extra_secs` virtual seconds later than configured.
    Late {
        /// Extra virtual seconds.
        extra_secs: i64,
    },
    /// Never resolves.
    Never,
}

/// One side of a served book: `(price, size)` levels, best first.
pub type Levels = Vec<(Decimal, Decimal)>;

/// A served order book for one token at one time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Book {
    /// Bids, best (highest) first.
    pub bids: Levels,
    /// Asks, best (lowest) first.
    pub asks: Levels,
}

impl Book {
    /// Best bid price, if any.
    pub fn best_bid(&self) -> Option<Decimal> {
        self.bids.first().map(|l| l.0)
    }

    /// Best ask price, if any.
    pub fn best_ask(&self) -> Option<Decimal> {
        self.asks.first().map(|l| l.0)
    }
}

/// A bar as far as it has formed: OHLCV so far (prices rounded to cents).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PartialBar {
    /// Open time, Unix ms.
    pub open_ms: i64,
    /// Open.
    pub open: f64,
    /// High so far.
    pub high: f64,
    /// Low so far.
    pub low: f64,
    /// Last price.
    pub close: f64,
    /// Volume so far, BTC.
    pub volume: f64,
    /// Whether the bar is complete (equal to the recorded candle).
    pub closed: bool,
}

/// Settings of the market model (a subset of [`super::LoopbackConfig`]).
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Virtual ms from a window's end to its resolution.
    pub resolution_delay_ms: i64,
    /// Virtual ms a market is listed before its window starts.
    pub listing_lead_ms: i64,
    /// Seed of every pseudo-random choice.
    pub seed: u64,
    /// Levels per book side.
    pub book_levels: usize,
    /// Multiplier of the recorded book's sizes.
    pub book_size_scale: f64,
    /// BTC's standard deviation of 1-minute returns used by the mid model.
    pub sigma_per_minute: f64,
    /// Virtual ms per book update bucket.
    pub book_bucket_ms: i64,
    /// Whether Gamma markets carry the `feeSchedule` block seen live since mid-2026.
    pub fee_schedule: bool,
}

/// SplitMix64 finaliser: a well-mixed 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A deterministic hash of `parts` under `seed`.
pub fn hash_of(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(mix(seed), |h, p| mix(h ^ mix(*p)))
}

/// A deterministic value in `[0, 1)` from `parts` under `seed`.
pub fn unit(seed: u64, parts: &[u64]) -> f64 {
    (hash_of(seed, parts) >> 11) as f64 / (1u64 << 53) as f64
}

/// A stable 64-bit key of a string (token ids).
fn key(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn round_to(x: f64, dp: i32) -> f64 {
    let f = 10f64.powi(dp);
    (x * f).round() / f
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26, error < 1.5e-7).
fn norm_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// The price path through a bar at fraction `f` of its minute, and the extremes so far.
fn walk(c: &Candle, f: f64) -> (f64, f64, f64) {
    let pts = if c.close >= c.open {
        [c.open, c.low, c.high, c.close]
    } else {
        [c.open, c.high, c.low, c.close]
    };
    let x = f.clamp(0.0, 1.0) * 3.0;
    let i = (x.floor() as usize).min(2);
    let r = x - i as f64;
    let now = round_to(pts[i] + (pts[i + 1] - pts[i]) * r, 2);
    let visited = pts[..=i].iter().map(|p| round_to(*p, 2)).chain([now]);
    let (hi, lo) = visited.fold((f64::MIN, f64::MAX), |(h, l), p| (h.max(p), l.min(p)));
    (now, hi, lo)
}

/// Decimal with `dp` places from `x`.
pub fn dec(x: f64, dp: u32) -> Decimal {
    let scaled = (x * 10f64.powi(dp as i32)).round();
    Decimal::new(scaled as i64, dp).normalize()
}

/// `"2026-03-12T09:25:00Z"`.
pub fn iso(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// `"2026-03-11T09:27:51.140253Z"` from Unix ms.
fn iso_micros(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// Offset of US Eastern time from UTC at `secs`, in hours (−4 in daylight time, else −5):
/// daylight time runs from the second Sunday of March 07:00 UTC to the first Sunday of
/// November 06:00 UTC.
fn eastern_offset_hours(secs: i64) -> i64 {
    use chrono::{Datelike, NaiveDate, Weekday};
    let Some(t) = chrono::DateTime::from_timestamp(secs, 0) else {
        return -5;
    };
    let year = t.year();
    let at = |month, nth, hour| {
        NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, nth)
            .and_then(|d| d.and_hms_opt(hour, 0, 0))
            .map(|d| d.and_utc().timestamp())
    };
    match (at(3, 2, 7), at(11, 1, 6)) {
        (Some(on), Some(off)) if secs >= on && secs < off => -4,
        _ => -5,
    }
}

/// The market question, as Polymarket words it: `Bitcoin Up or Down - March 12,
/// 5:20AM-5:25AM ET`.
pub fn question(start: i64, end: i64) -> String {
    let local = |s: i64| chrono::DateTime::from_timestamp(s + eastern_offset_hours(s) * 3600, 0);
    match (local(start), local(end)) {
        (Some(a), Some(b)) => format!(
            "Bitcoin Up or Down - {}, {}-{} ET",
            a.format("%B %-d"),
            a.format("%-I:%M%p"),
            b.format("%-I:%M%p")
        ),
        _ => "Bitcoin Up or Down".to_string(),
    }
}

/// The market model over the recorded data.
#[derive(Clone, Debug)]
pub struct Model {
    data: Arc<VenueData>,
    cfg: ModelConfig,
}

impl Model {
    /// A model of `data` with `cfg`.
    pub fn new(data: Arc<VenueData>, cfg: ModelConfig) -> Self {
        Model { data, cfg }
    }

    /// The recorded data.
    pub fn data(&self) -> &VenueData {
        &self.data
    }

    /// The settings.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The bar of the minute containing `t_ms` as formed by then; `None` outside the data.
    pub fn partial_bar(&self, t_ms: i64) -> Option<PartialBar> {
        let c = self.data.candle_at(t_ms)?;
        let open_ms = c.open_time * 1000;
        let f = (t_ms - open_ms) as f64 / 60_000.0;
        let (now, hi, lo) = walk(c, f);
        Some(PartialBar {
            open_ms,
            open: c.open,
            high: hi,
            low: lo,
            close: now,
            volume: round_to(c.volume * f.clamp(0.0, 1.0), 5).min(c.volume),
            closed: false,
        })
    }

    /// The recorded (closed) bar opening at `open_ms`, as a [`PartialBar`] with `closed`.
    pub fn closed_bar(&self, open_ms: i64) -> Option<PartialBar> {
        let c = self.data.candle_at(open_ms)?;
        Some(PartialBar {
            open_ms: c.open_time * 1000,
            open: c.open,
            high: c.high,
            low: c.low,
            close: c.close,
            volume: c.volume,
            closed: true,
        })
    }

    /// BTC's price at `t_ms` on the in-minute path; after the data ends, the last close.
    pub fn spot(&self, t_ms: i64) -> Option<f64> {
        match self.partial_bar(t_ms) {
            Some(b) => Some(b.close),
            None => {
                let last = self.data.candles.last()?;
                (t_ms >= last.close_time() * 1000).then_some(last.close)
            }
        }
    }

    /// Whether `w` is listed on Gamma at `t_ms`.
    pub fn listed(&self, w: &WindowInfo, t_ms: i64) -> bool {
        t_ms >= w.start * 1000 - self.cfg.listing_lead_ms
    }

    /// When `w` resolves (virtual Unix ms), under `fault`; `None` if never.
    pub fn resolution_ms(&self, w: &WindowInfo, fault: Option<ResolutionFault>) -> Option<i64> {
        w.outcome?;
        let base = w.end * 1000 + self.cfg.resolution_delay_ms;
        match fault {
            None => Some(base),
            Some(ResolutionFault::Late { extra_secs }) => {
                Some(base.saturating_add(extra_secs.saturating_mul(1000)))
            }
            Some(ResolutionFault::Never) => None,
        }
    }

    /// Where `w` is at `t_ms`.
    pub fn phase(&self, w: &WindowInfo, t_ms: i64, fault: Option<ResolutionFault>) -> Phase {
        if t_ms < w.start * 1000 {
            return Phase::Upcoming;
        }
        if t_ms < w.end * 1000 {
            return Phase::Open;
        }
        match (self.resolution_ms(w, fault), w.outcome) {
            (Some(r), Some(side)) if t_ms >= r => Phase::Resolved(side),
            _ => Phase::Ended,
        }
    }

    /// The Up token's mid at `t_ms` (frozen after the window ends).
    pub fn up_mid(&self, w: &WindowInfo, t_ms: i64) -> f64 {
        let (start_ms, end_ms) = (w.start * 1000, w.end * 1000);
        if t_ms < start_ms {
            return PRE_WINDOW_MID;
        }
        let t = t_ms.min(end_ms - 1);
        let (Some(open), Some(spot)) =
            (self.data.candle_at(start_ms).map(|c| c.open), self.spot(t))
        else {
            return PRE_WINDOW_MID;
        };
        let ret = spot / open - 1.0;
        let minutes_left = ((end_ms - t) as f64 / 60_000.0).max(5.0 / 60.0);
        let z = ret / (self.cfg.sigma_per_minute * minutes_left.sqrt());
        norm_cdf(z).clamp(0.01, 0.99)
    }

    /// Up best bid and best ask in cents at `t_ms`.
    fn up_top_cents(&self, w: &WindowInfo, t_ms: i64, bucket: i64) -> (i64, i64) {
        let mid = self.up_mid(w, t_ms);
        let bid = ((mid * 100.0 - 0.5).floor() as i64).clamp(1, 98);
        let wide = hash_of(self.cfg.seed, &[w.start as u64, bucket as u64, 1]).is_multiple_of(5);
        let ask = (bid + if wide { 2 } else { 1 } * TICK_CENTS).min(99);
        (bid, ask)
    }

    /// The update bucket of `t_ms` for `w` (frozen after the window ends).
    pub fn bucket(&self, w: &WindowInfo, t_ms: i64) -> i64 {
        t_ms.min(w.end * 1000 - 1)
            .div_euclid(self.cfg.book_bucket_ms.max(1))
    }

    /// The book of `side` of `w` at `t_ms` (frozen after the window ends).
    pub fn book(&self, w: &WindowInfo, side: Side, t_ms: i64) -> Book {
        let t = t_ms.min(w.end * 1000 - 1);
        let bucket = self.bucket(w, t);
        let (up_bid, up_ask) = self.up_top_cents(w, t, bucket);
        let (bid, ask) = match side {
            Side::Up => (up_bid, up_ask),
            Side::Down => (100 - up_ask, 100 - up_bid),
        };
        let token = key(w.token(side));
        let n = self.cfg.book_levels.max(1) as i64;
        let shape = &self.data.book_shape;
        let size = |side_key: u64, rank: usize, sizes: &[f64]| -> Decimal {
            let base = sizes
                .get(rank % sizes.len().max(1))
                .copied()
                .unwrap_or(100.0);
            let stagger = hash_of(self.cfg.seed, &[token, side_key, rank as u64]) % 4;
            let epoch = (bucket + stagger as i64).div_euclid(4);
            let jitter =
                0.6 + 0.8 * unit(self.cfg.seed, &[token, side_key, rank as u64, epoch as u64]);
            dec((base * self.cfg.book_size_scale * jitter).max(1.0), 2)
        };
        let bids = (0..n)
            .map(|i| bid - i * TICK_CENTS)
            .take_while(|c| *c >= 1)
            .enumerate()
            .map(|(rank, c)| (Decimal::new(c, 2), size(1, rank, &shape.bids)))
            .collect();
        let asks = (0..n)
            .map(|i| ask + i * TICK_CENTS)
            .take_while(|c| *c <= 99)
            .enumerate()
            .map(|(rank, c)| (Decimal::new(c, 2), size(2, rank, &shape.asks)))
            .collect();
        Book { bids, asks }
    }

    /// A 40-hex-digit hash of a book (the shape of the CLOB's book hashes).
    pub fn book_hash(token: &str, t_ms: i64, book: &Book) -> String {
        let mut h = Sha256::new();
        h.update(token.as_bytes());
        h.update(t_ms.to_le_bytes());
        for (p, s) in book.bids.iter().chain(book.asks.iter()) {
            h.update(p.to_string().as_bytes());
            h.update(b":");
            h.update(s.to_string().as_bytes());
            h.update(b";");
        }
        let digest: [u8; 32] = h.finalize().into();
        hex::encode(&digest[..20])
    }

    /// `outcomePrices` of `w` at `t_ms` in `phase`, as the Up and Down strings.
    pub fn outcome_prices(&self, w: &WindowInfo, t_ms: i64, phase: Phase) -> [String; 2] {
        match phase {
            Phase::Resolved(Side::Up) => ["1".into(), "0".into()],
            Phase::Resolved(Side::Down) => ["0".into(), "1".into()],
            _ => {
                let up = dec(self.up_mid(w, t_ms), 3);
                [up.to_string(), (Decimal::ONE - up).normalize().to_string()]
            }
        }
    }

    /// The Gamma event object of `w` (template `events[0]` with this window's values),
    /// without `markets`.
    pub fn gamma_event(&self, w: &WindowInfo, t_ms: i64, phase: Phase) -> Value {
        let template = &self.data.gamma_template;
        let mut e = template
            .get("events")
            .and_then(|e| e.get(0))
            .cloned()
            .unwrap_or_else(|| json!({}));
        let listed_ms = w.start * 1000 - self.cfg.listing_lead_ms;
        let closed = matches!(phase, Phase::Resolved(_));
        if let Value::Object(o) = &mut e {
            o.insert("id".into(), json!(w.event_id));
            o.insert("ticker".into(), json!(w.slug));
            o.insert("slug".into(), json!(w.slug));
            o.insert("title".into(), json!(question(w.start, w.end)));
            o.insert("startDate".into(), json!(iso_micros(listed_ms + 106_000)));
            o.insert(
                "creationDate".into(),
                json!(iso_micros(listed_ms + 106_000)),
            );
            o.insert("createdAt".into(), json!(iso_micros(listed_ms)));
            o.insert("updatedAt".into(), json!(iso_micros(t_ms)));
            o.insert("endDate".into(), json!(iso(w.end)));
            o.insert("startTime".into(), json!(iso(w.start)));
            o.insert("active".into(), json!(true));
            o.insert("closed".into(), json!(closed));
        }
        e
    }

    /// The Gamma market object of `w` at `t_ms` (its resolution under `fault`), rendered
    /// from the template; with `event` it carries its `events: [event]` as `/markets`
    /// answers do.
    pub fn gamma_market(
        &self,
        w: &WindowInfo,
        t_ms: i64,
        fault: Option<ResolutionFault>,
        event: bool,
    ) -> Value {
        let phase = self.phase(w, t_ms, fault);
        let mut m = self.data.gamma_template.clone();
        let listed_ms = w.start * 1000 - self.cfg.listing_lead_ms;
        let [up_price, down_price] = self.outcome_prices(w, t_ms, phase);
        let accepting = matches!(phase, Phase::Upcoming | Phase::Open);
        let closed = matches!(phase, Phase::Resolved(_));
        let up_book = self.book(w, Side::Up, t_ms);
        let f = |d: Option<Decimal>| {
            d.map_or(Value::Null, |d| {
                json!(d.to_string().parse::<f64>().unwrap_or(0.0))
            })
        };
        let (bb, ba) = (up_book.best_bid(), up_book.best_ask());
        let spread = match (bb, ba) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        };
        let event_value = event.then(|| self.gamma_event(w, t_ms, phase));
        if let Value::Object(o) = &mut m {
            o.insert("id".into(), json!(w.market_id));
            o.insert("question".into(), json!(question(w.start, w.end)));
            o.insert("conditionId".into(), json!(w.condition_id));
            o.insert("questionID".into(), json!(w.question_id));
            o.insert("slug".into(), json!(w.slug));
            o.insert("startDate".into(), json!(iso_micros(listed_ms + 70_188)));
            o.insert("createdAt".into(), json!(iso_micros(listed_ms)));
            o.insert("updatedAt".into(), json!(iso_micros(t_ms)));
            o.insert("endDate".into(), json!(iso(w.end)));
            o.insert("eventStartTime".into(), json!(iso(w.start)));
            o.insert(
                "startDateIso".into(),
                json!(iso(listed_ms / 1000).get(..10).unwrap_or_default()),
            );
            o.insert(
                "endDateIso".into(),
                json!(iso(w.end).get(..10).unwrap_or_default()),
            );
            o.insert(
                "acceptingOrdersTimestamp".into(),
                json!(iso(listed_ms / 1000 + 4)),
            );
            // JSON-encoded strings, exactly as Gamma sends them (reference §1.5).
            o.insert(
                "clobTokenIds".into(),
                json!(format!("[\"{}\", \"{}\"]", w.up_token, w.down_token)),
            );
            o.insert(
                "outcomePrices".into(),
                json!(format!("[\"{up_price}\", \"{down_price}\"]")),
            );
            o.insert("active".into(), json!(true));
            o.insert("closed".into(), json!(closed));
            o.insert("acceptingOrders".into(), json!(accepting));
            o.insert("bestBid".into(), f(bb));
            o.insert("bestAsk".into(), f(ba));
            o.insert("spread".into(), f(spread));
            o.insert("lastTradePrice".into(), f(ba));
            if closed {
                let resolved_ms = self.resolution_ms(w, fault).unwrap_or(t_ms).min(t_ms);
                o.insert("umaResolutionStatus".into(), json!("resolved"));
                o.insert("umaResolutionStatuses".into(), json!("[\"resolved\"]"));
                o.insert("automaticallyResolved".into(), json!(true));
                o.insert(
                    "closedTime".into(),
                    json!(
                        chrono::DateTime::from_timestamp_millis(resolved_ms)
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S+00").to_string())
                            .unwrap_or_default()
                    ),
                );
            }
            if self.cfg.fee_schedule {
                o.insert("feesEnabled".into(), json!(true));
                o.insert("feeType".into(), json!("crypto_fees_v2"));
                o.insert(
                    "feeSchedule".into(),
                    json!({"exponent": 1, "rate": 0.07, "takerOnly": true, "rebateRate": 0.2}),
                );
            }
            match event_value {
                Some(e) => {
                    o.insert("events".into(), Value::Array(vec![e]));
                }
                None => {
                    o.remove("events");
                }
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candle(o: f64, h: f64, l: f64, c: f64) -> Candle {
        Candle {
            open_time: 0,
            open: o,
            high: h,
            low: l,
            close: c,
            volume: 10.0,
        }
    }

    #[test]
    fn the_path_stays_inside_the_bar_and_ends_at_its_close() {
        let c = candle(100.0, 103.0, 98.0, 101.0);
        assert_eq!(walk(&c, 0.0), (100.0, 100.0, 100.0));
        assert_eq!(walk(&c, 1.0 / 3.0).0, 98.0);
        let (now, hi, lo) = walk(&c, 1.0);
        assert_eq!((now, hi, lo), (101.0, 103.0, 98.0));
        for i in 0..=60 {
            let (now, hi, lo) = walk(&c, f64::from(i) / 60.0);
            assert!(lo >= 98.0 && hi <= 103.0 && lo <= now && now <= hi);
        }
        let falling = candle(100.0, 101.0, 95.0, 96.0);
        assert_eq!(walk(&falling, 1.0 / 3.0).0, 101.0);
    }

    #[test]
    fn questions_use_eastern_time_with_daylight_saving() {
        // The template market: 2026-03-12 09:20Z is 5:20AM EDT.
        assert_eq!(
            question(1_773_307_200, 1_773_307_500),
            "Bitcoin Up or Down - March 12, 5:20AM-5:25AM ET"
        );
        // 2026-02-21 14:30Z is 9:30AM EST.
        assert_eq!(
            question(1_771_684_200, 1_771_684_500),
            "Bitcoin Up or Down - February 21, 9:30AM-9:35AM ET"
        );
    }

    #[test]
    fn normal_cdf_is_accurate_enough() {
        assert!((norm_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((norm_cdf(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((norm_cdf(-1.96) - 0.024_997_9).abs() < 1e-6);
    }
}
