//! `ctx`: the read-only view of the market, account and parameters a script decides from.
//!
//! The session owns one [`CtxState`] for the whole run and updates it before each call; the
//! script receives a [`Ctx`] handle, which is a pointer to that state, so passing `ctx` costs
//! nothing and every member is computed only when the script asks (indicators through the
//! incremental cache). No setter is registered for anything: assigning to `ctx` or to a
//! member fails the call. The candle history holds only candles the feed has closed at
//! `now`, which is what makes look-ahead impossible from a script.

use crate::account::Account;
use crate::domain::{ParamValue, Params, Window};
use crate::feed::Candle;
use crate::indicators::{IndicatorCache, IndicatorKey, Reading};
use rhai::{Array, Dynamic, Engine, EvalAltResult, FLOAT, INT, ImmutableString, Map};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::cell::RefCell;
use std::rc::Rc;

/// The venue's quote for the window, as scripts see it (floats: scripts do maths, not money).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MarketView {
    /// Best bid for the Up token.
    pub up_bid: f64,
    /// Best ask for the Up token.
    pub up_ask: f64,
    /// Best bid for the Down token.
    pub down_bid: f64,
    /// Best ask for the Down token.
    pub down_ask: f64,
    /// Bid size minus ask size over their sum, near the top of the Up book, in `[-1, 1]`.
    pub imbalance: f64,
    /// Shares offered near the top of the Up book.
    pub up_depth: f64,
    /// Shares offered near the top of the Down book.
    pub down_depth: f64,
    /// Fee rate in `fee = shares × rate × p × (1 − p)`.
    pub fee_rate: f64,
    /// Price tick.
    pub tick_size: f64,
    /// Minimum order, shares.
    pub min_order_size: f64,
}

/// The account, as scripts see it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountView {
    /// Cash plus open positions at cost.
    pub equity: f64,
    /// Cash available.
    pub cash: f64,
    /// Capital the session started with.
    pub starting_capital: f64,
    /// Highest equity seen.
    pub peak_equity: f64,
    /// Fall from peak, percent.
    pub drawdown_pct: f64,
    /// Consecutive wins up to now.
    pub win_streak: i64,
    /// Consecutive losses up to now.
    pub loss_streak: i64,
    /// Settled trades.
    pub trades: i64,
    /// Winning trades.
    pub wins: i64,
    /// Losing trades.
    pub losses: i64,
    /// "win", "loss" or "" before the first trade.
    pub last_result: String,
}

impl AccountView {
    /// The account's books as scripts see them: plain numbers, read-only.
    pub fn of(a: &Account) -> AccountView {
        let f = |d: Decimal| d.to_f64().unwrap_or(0.0);
        let eq = a.equity();
        AccountView {
            equity: f(eq),
            cash: f(a.cash),
            starting_capital: f(a.starting_capital),
            peak_equity: f(a.peak_equity),
            drawdown_pct: if a.peak_equity > Decimal::ZERO {
                f((a.peak_equity - eq) / a.peak_equity * Decimal::ONE_HUNDRED)
            } else {
                0.0
            },
            win_streak: i64::from(a.win_streak),
            loss_streak: i64::from(a.loss_streak),
            trades: i64::from(a.trades),
            wins: i64::from(a.wins),
            losses: i64::from(a.losses),
            last_result: match a.last_result {
                Some(true) => "win".into(),
                Some(false) => "loss".into(),
                None => String::new(),
            },
        }
    }
}

/// Everything `ctx` can show, owned by the session and shared with scripts through [`Ctx`].
#[derive(Debug, Default)]
pub struct CtxState {
    /// Closed candles known at `now`, oldest first. Only ever appended to.
    pub candles: Vec<Candle>,
    /// Indicator series over `candles`, extended on demand.
    pub indicators: IndicatorCache,
    /// Decision time, Unix seconds.
    pub now: i64,
    /// The window being decided.
    pub window: Option<Window>,
    /// The venue's quote.
    pub market: MarketView,
    /// The account.
    pub account: AccountView,
    /// The strategy's parameters.
    pub params: Params,
}

/// The handle scripts receive as `ctx`: cheap to clone, read-only by construction.
#[derive(Clone, Debug)]
pub struct Ctx(pub Rc<RefCell<CtxState>>);

impl Ctx {
    /// A handle over fresh state.
    pub fn new(state: CtxState) -> Self {
        Ctx(Rc::new(RefCell::new(state)))
    }

    fn indicator(&mut self, key: IndicatorKey, ago: INT) -> Result<Dynamic, Box<EvalAltResult>> {
        let ago = usize::try_from(ago).map_err(|_| format!("`ago` must be ≥ 0, got {ago}"))?;
        let mut st = self.0.borrow_mut();
        let CtxState {
            indicators,
            candles,
            ..
        } = &mut *st;
        match indicators.reading(key, candles, ago) {
            Ok(None) => Ok(Dynamic::UNIT),
            Ok(Some(Reading::Value(v))) => Ok(Dynamic::from_float(v)),
            Ok(Some(Reading::Macd { macd, signal, hist })) => {
                Ok(map(&[("macd", macd), ("signal", signal), ("hist", hist)]))
            }
            Ok(Some(Reading::Bands {
                upper,
                middle,
                lower,
            })) => Ok(map(&[
                ("upper", upper),
                ("middle", middle),
                ("lower", lower),
            ])),
            Ok(Some(Reading::Stoch { k, d })) => Ok(map(&[("k", k), ("d", d)])),
            Err(e) => Err(e.to_string().into()),
        }
    }
}

fn map(pairs: &[(&str, f64)]) -> Dynamic {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert((*k).into(), Dynamic::from_float(*v));
    }
    m.into()
}

/// A period given as a float (`ctx.rsi(14.0)`, or a parameter read without `ctx.param`):
/// accepted when whole, otherwise refused with what is wrong rather than Rhai's "function
/// not found".
fn float_period(name: &str, n: FLOAT) -> Result<u32, Box<EvalAltResult>> {
    if n.fract() != 0.0 || !n.is_finite() {
        return Err(format!("{name}: period must be a whole number, got {n}").into());
    }
    period(name, n as INT)
}

/// A period of any type, for the indicators with several: see [`float_period`].
fn any_period(name: &str, n: &Dynamic) -> Result<u32, Box<EvalAltResult>> {
    if let Ok(i) = n.as_int() {
        period(name, i)
    } else if let Ok(f) = n.as_float() {
        float_period(name, f)
    } else {
        Err(format!(
            "{name}: period must be a whole number, got {}",
            n.type_name()
        )
        .into())
    }
}

fn period(name: &str, n: INT) -> Result<u32, Box<EvalAltResult>> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| format!("{name}: period must be between 1 and 10000, got {n}").into())
}

/// A parameter as scripts see it.
fn param_dynamic(v: &ParamValue) -> Dynamic {
    match v {
        ParamValue::Int(i) => Dynamic::from_int(*i),
        ParamValue::Float(f) => Dynamic::from_float(*f),
        ParamValue::Bool(b) => Dynamic::from_bool(*b),
        ParamValue::Text(t) => Dynamic::from(t.clone()),
        ParamValue::List(l) => Dynamic::from_array(l.iter().map(param_dynamic).collect()),
        ParamValue::Table(t) => {
            let mut m = Map::new();
            for (k, v) in t {
                m.insert(k.as_str().into(), param_dynamic(v));
            }
            m.into()
        }
    }
}

fn candle_map(c: &Candle) -> Dynamic {
    let mut m = Map::new();
    m.insert("t".into(), Dynamic::from_int(c.open_time));
    m.insert("o".into(), Dynamic::from_float(c.open));
    m.insert("h".into(), Dynamic::from_float(c.high));
    m.insert("l".into(), Dynamic::from_float(c.low));
    m.insert("c".into(), Dynamic::from_float(c.close));
    m.insert("v".into(), Dynamic::from_float(c.volume));
    m.into()
}

fn last_n(candles: &[Candle], n: INT) -> Result<&[Candle], Box<EvalAltResult>> {
    let n = usize::try_from(n).map_err(|_| format!("count must be ≥ 0, got {n}"))?;
    Ok(&candles[candles.len().saturating_sub(n)..])
}

/// Register the `Ctx` type, its members, and the decision helpers on `engine`.
pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Ctx>("Ctx");

    engine.register_get("now", |c: &mut Ctx| c.0.borrow().now as INT);
    engine.register_get("seconds_to_close", |c: &mut Ctx| {
        let st = c.0.borrow();
        st.window.as_ref().map_or(0, |w| w.end - st.now) as INT
    });
    read_only_member(engine, "window", |c: &mut Ctx| -> Dynamic {
        let st = c.0.borrow();
        let Some(w) = &st.window else {
            return Dynamic::UNIT;
        };
        let mut m = Map::new();
        m.insert("start".into(), Dynamic::from_int(w.start));
        m.insert("end".into(), Dynamic::from_int(w.end));
        m.insert("slug".into(), Dynamic::from(w.slug.clone()));
        m.insert("index".into(), Dynamic::from_int(w.index as INT));
        m.into()
    });
    engine.register_get("price", |c: &mut Ctx| -> Dynamic {
        c.0.borrow()
            .candles
            .last()
            .map_or(Dynamic::UNIT, |k| Dynamic::from_float(k.close))
    });
    read_only_member(engine, "market", |c: &mut Ctx| -> Dynamic {
        let m = &c.0.borrow().market;
        let spread_up = m.up_ask - m.up_bid;
        let mut out = Map::new();
        for (k, v) in [
            ("up_bid", m.up_bid),
            ("up_ask", m.up_ask),
            ("up_mid", (m.up_bid + m.up_ask) / 2.0),
            ("down_bid", m.down_bid),
            ("down_ask", m.down_ask),
            ("down_mid", (m.down_bid + m.down_ask) / 2.0),
            ("spread", spread_up),
            ("down_spread", m.down_ask - m.down_bid),
            ("imbalance", m.imbalance),
            ("up_depth", m.up_depth),
            ("down_depth", m.down_depth),
            ("fee_rate", m.fee_rate),
            ("tick_size", m.tick_size),
            ("min_order_size", m.min_order_size),
        ] {
            out.insert(k.into(), Dynamic::from_float(v));
        }
        out.into()
    });
    read_only_member(engine, "account", |c: &mut Ctx| -> Dynamic {
        let a = &c.0.borrow().account;
        let mut out = Map::new();
        for (k, v) in [
            ("equity", a.equity),
            ("cash", a.cash),
            ("starting_capital", a.starting_capital),
            ("peak_equity", a.peak_equity),
            ("drawdown_pct", a.drawdown_pct),
        ] {
            out.insert(k.into(), Dynamic::from_float(v));
        }
        for (k, v) in [
            ("win_streak", a.win_streak),
            ("loss_streak", a.loss_streak),
            ("trades", a.trades),
            ("wins", a.wins),
            ("losses", a.losses),
        ] {
            out.insert(k.into(), Dynamic::from_int(v));
        }
        out.insert("last_result".into(), Dynamic::from(a.last_result.clone()));
        out.into()
    });
    read_only_member(engine, "params", |c: &mut Ctx| -> Dynamic {
        let st = c.0.borrow();
        let mut m = Map::new();
        for (k, v) in &st.params {
            m.insert(k.as_str().into(), param_dynamic(v));
        }
        m.into()
    });
    engine.register_fn(
        "param",
        |c: &mut Ctx, name: ImmutableString, default: Dynamic| {
            let given = c.0.borrow().params.get(name.as_str()).cloned();
            match given {
                None => default,
                // `rsi_period = 14.0` where the script's default is `14`: the script gets the
                // integer it expects (periods are integers), not a float no indicator takes.
                Some(v) if default.is_int() => param_dynamic(&v.for_integer_default()),
                Some(v) => param_dynamic(&v),
            }
        },
    );

    engine.register_fn(
        "candles",
        |c: &mut Ctx, n: INT| -> Result<Array, Box<EvalAltResult>> {
            let st = c.0.borrow();
            Ok(last_n(&st.candles, n)?.iter().map(candle_map).collect())
        },
    );
    engine.register_fn(
        "closes",
        |c: &mut Ctx, n: INT| -> Result<Array, Box<EvalAltResult>> {
            let st = c.0.borrow();
            Ok(last_n(&st.candles, n)?
                .iter()
                .map(|k| Dynamic::from_float(k.close))
                .collect())
        },
    );
    engine.register_fn(
        "range_pct",
        |c: &mut Ctx, minutes: INT| -> Result<Dynamic, Box<EvalAltResult>> {
            let st = c.0.borrow();
            Ok(range_pct(&st.candles, minutes)?.map_or(Dynamic::UNIT, Dynamic::from_float))
        },
    );

    macro_rules! single {
        ($name:literal, $key:expr) => {
            engine.register_fn($name, |c: &mut Ctx, n: INT| {
                let p = period($name, n)?;
                c.indicator($key(p), 0)
            });
            engine.register_fn($name, |c: &mut Ctx, n: INT, ago: INT| {
                let p = period($name, n)?;
                c.indicator($key(p), ago)
            });
            engine.register_fn($name, |c: &mut Ctx, n: FLOAT| {
                let p = float_period($name, n)?;
                c.indicator($key(p), 0)
            });
            engine.register_fn($name, |c: &mut Ctx, n: FLOAT, ago: INT| {
                let p = float_period($name, n)?;
                c.indicator($key(p), ago)
            });
        };
    }
    single!("rsi", IndicatorKey::Rsi);
    single!("ema", IndicatorKey::Ema);
    single!("sma", IndicatorKey::Sma);
    single!("atr", IndicatorKey::Atr);
    single!("stddev", IndicatorKey::Stddev);
    single!("roc", IndicatorKey::Roc);
    single!("mfi", IndicatorKey::Mfi);

    fn macd_key(f: INT, s: INT, g: INT) -> Result<IndicatorKey, Box<EvalAltResult>> {
        Ok(IndicatorKey::Macd {
            fast: period("macd fast", f)?,
            slow: period("macd slow", s)?,
            signal: period("macd signal", g)?,
        })
    }
    engine.register_fn("macd", |c: &mut Ctx, f: INT, s: INT, g: INT| {
        c.indicator(macd_key(f, s, g)?, 0)
    });
    engine.register_fn("macd", |c: &mut Ctx, f: INT, s: INT, g: INT, ago: INT| {
        c.indicator(macd_key(f, s, g)?, ago)
    });
    // Fallbacks for periods given as floats; Rhai tries the all-integer versions first.
    fn macd_any(f: &Dynamic, s: &Dynamic, g: &Dynamic) -> Result<IndicatorKey, Box<EvalAltResult>> {
        Ok(IndicatorKey::Macd {
            fast: any_period("macd fast", f)?,
            slow: any_period("macd slow", s)?,
            signal: any_period("macd signal", g)?,
        })
    }
    engine.register_fn("macd", |c: &mut Ctx, f: Dynamic, s: Dynamic, g: Dynamic| {
        c.indicator(macd_any(&f, &s, &g)?, 0)
    });
    engine.register_fn(
        "macd",
        |c: &mut Ctx, f: Dynamic, s: Dynamic, g: Dynamic, ago: INT| {
            c.indicator(macd_any(&f, &s, &g)?, ago)
        },
    );
    fn bb_key(n: INT, k: FLOAT) -> Result<IndicatorKey, Box<EvalAltResult>> {
        if !(k.is_finite() && k > 0.0 && k <= 100.0) {
            return Err(format!("bbands: k must be in (0, 100], got {k}").into());
        }
        Ok(IndicatorKey::Bbands {
            period: period("bbands", n)?,
            k_milli: (k * 1000.0).round() as u32,
        })
    }
    engine.register_fn("bbands", |c: &mut Ctx, n: INT, k: FLOAT| {
        c.indicator(bb_key(n, k)?, 0)
    });
    engine.register_fn("bbands", |c: &mut Ctx, n: INT, k: FLOAT, ago: INT| {
        c.indicator(bb_key(n, k)?, ago)
    });
    fn stoch_key(k: INT, sk: INT, d: INT) -> Result<IndicatorKey, Box<EvalAltResult>> {
        Ok(IndicatorKey::Stoch {
            k: period("stoch k", k)?,
            slow_k: period("stoch slow_k", sk)?,
            d: period("stoch d", d)?,
        })
    }
    engine.register_fn("stoch", |c: &mut Ctx, k: INT, sk: INT, d: INT| {
        c.indicator(stoch_key(k, sk, d)?, 0)
    });
    engine.register_fn("stoch", |c: &mut Ctx, k: INT, sk: INT, d: INT, ago: INT| {
        c.indicator(stoch_key(k, sk, d)?, ago)
    });
    fn stoch_any(
        k: &Dynamic,
        sk: &Dynamic,
        d: &Dynamic,
    ) -> Result<IndicatorKey, Box<EvalAltResult>> {
        Ok(IndicatorKey::Stoch {
            k: any_period("stoch k", k)?,
            slow_k: any_period("stoch slow_k", sk)?,
            d: any_period("stoch d", d)?,
        })
    }
    engine.register_fn(
        "stoch",
        |c: &mut Ctx, k: Dynamic, sk: Dynamic, d: Dynamic| c.indicator(stoch_any(&k, &sk, &d)?, 0),
    );
    engine.register_fn(
        "stoch",
        |c: &mut Ctx, k: Dynamic, sk: Dynamic, d: Dynamic, ago: INT| {
            c.indicator(stoch_any(&k, &sk, &d)?, ago)
        },
    );
    engine.register_fn("bbands", |c: &mut Ctx, n: Dynamic, k: FLOAT| {
        let p = any_period("bbands", &n)?;
        c.indicator(bb_key(p as INT, k)?, 0)
    });
    engine.register_fn("bbands", |c: &mut Ctx, n: Dynamic, k: FLOAT, ago: INT| {
        let p = any_period("bbands", &n)?;
        c.indicator(bb_key(p as INT, k)?, ago)
    });
    engine.register_fn("obv", |c: &mut Ctx| c.indicator(IndicatorKey::Obv, 0));
    engine.register_fn("obv", |c: &mut Ctx, ago: INT| {
        c.indicator(IndicatorKey::Obv, ago)
    });

    // Decision helpers. Confidence accepts ints too so `up(1, "sure")` is not a type error.
    engine.register_fn("up", |conf: FLOAT, reason: ImmutableString| {
        decision("up", conf, reason)
    });
    engine.register_fn("up", |conf: INT, reason: ImmutableString| {
        decision("up", conf as FLOAT, reason)
    });
    engine.register_fn("down", |conf: FLOAT, reason: ImmutableString| {
        decision("down", conf, reason)
    });
    engine.register_fn("down", |conf: INT, reason: ImmutableString| {
        decision("down", conf as FLOAT, reason)
    });
    engine.register_fn("skip", |reason: ImmutableString| {
        decision("skip", 0.0, reason)
    });
}

/// Register a map-valued member of `ctx` that a script can read but not write.
///
/// Rhai feeds a member back through its setter after a method call on it
/// (`ctx.market.keys()`), and without a setter it silently drops a real write into the
/// member's copy (`ctx.params.x = 1` would "succeed"). So the setter stores nothing: it
/// accepts a value equal to the member and fails the call on any other.
fn read_only_member(engine: &mut Engine, name: &'static str, get: fn(&mut Ctx) -> Dynamic) {
    engine.register_get(name, get);
    engine.register_set(
        name,
        move |c: &mut Ctx, v: Dynamic| -> Result<(), Box<EvalAltResult>> {
            if format!("{v:?}") == format!("{:?}", get(c)) {
                Ok(())
            } else {
                Err(format!("ctx is read-only: cannot assign to ctx.{name}").into())
            }
        },
    );
}

fn decision(side: &str, confidence: FLOAT, reason: ImmutableString) -> Map {
    let mut m = Map::new();
    m.insert("side".into(), Dynamic::from(side.to_string()));
    m.insert("confidence".into(), Dynamic::from_float(confidence));
    m.insert("reason".into(), Dynamic::from(reason));
    m
}

/// High–low range of the last `minutes` candles as a percentage of the last close, or
/// `None` without enough candles.
pub fn range_pct(candles: &[Candle], minutes: INT) -> Result<Option<f64>, Box<EvalAltResult>> {
    let n = usize::try_from(minutes)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("range_pct: minutes must be ≥ 1, got {minutes}"))?;
    if candles.len() < n {
        return Ok(None);
    }
    let tail = &candles[candles.len() - n..];
    let hi = tail.iter().map(|c| c.high).fold(f64::MIN, f64::max);
    let lo = tail.iter().map(|c| c.low).fold(f64::MAX, f64::min);
    let last = tail[n - 1].close;
    Ok(Some((hi - lo) / last * 100.0))
}
