//! The script API reference: every `ctx` member and helper a strategy can call, with its
//! signature and meaning.
//!
//! This table is the single source for `updown api`, for the doc comments attached to the
//! registered functions (which the Rhai definition files carry to editors), and for a test
//! that fails when a registered function is missing here, so the reference cannot drift
//! from what scripts can actually call.

/// What kind of API item an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// A read-only property of `ctx` (`ctx.now`).
    Property,
    /// A method of `ctx` (`ctx.rsi(14)`).
    Method,
    /// A global function (`up(0.6, "why")`).
    Function,
}

/// One documented API item.
#[derive(Clone, Copy, Debug)]
pub struct ApiItem {
    /// Name as called from a script.
    pub name: &'static str,
    /// Property, method or function.
    pub kind: ItemKind,
    /// How it is called, with its result.
    pub signature: &'static str,
    /// One line of meaning.
    pub doc: &'static str,
    /// Typed signatures for Rhai definition files (one per overload), without `fn`.
    pub defs: &'static [&'static str],
}

const fn entry(
    kind: ItemKind,
    name: &'static str,
    signature: &'static str,
    doc: &'static str,
    defs: &'static [&'static str],
) -> ApiItem {
    ApiItem {
        name,
        kind,
        signature,
        doc,
        defs,
    }
}

const fn prop(
    n: &'static str,
    s: &'static str,
    d: &'static str,
    defs: &'static [&'static str],
) -> ApiItem {
    entry(ItemKind::Property, n, s, d, defs)
}

const fn method(
    n: &'static str,
    s: &'static str,
    d: &'static str,
    defs: &'static [&'static str],
) -> ApiItem {
    entry(ItemKind::Method, n, s, d, defs)
}

const fn func(
    n: &'static str,
    s: &'static str,
    d: &'static str,
    defs: &'static [&'static str],
) -> ApiItem {
    entry(ItemKind::Function, n, s, d, defs)
}

/// The whole script API, in the order `updown api` prints it.
pub const API: &[ApiItem] = &[
    prop(
        "now",
        "ctx.now -> int",
        "Decision time, Unix seconds; the only clock a script has.",
        &["get now(ctx: Ctx) -> int"],
    ),
    prop(
        "window",
        "ctx.window -> #{start, end, slug, index}",
        "The market window being decided: [start, end) in Unix seconds, its slug, its index in the session.",
        &["get window(ctx: Ctx) -> Map"],
    ),
    prop(
        "seconds_to_close",
        "ctx.seconds_to_close -> int",
        "Seconds from now to the end of the window.",
        &["get seconds_to_close(ctx: Ctx) -> int"],
    ),
    prop(
        "price",
        "ctx.price -> float | ()",
        "Close of the last closed 1m candle; () before any candle.",
        &["get price(ctx: Ctx) -> ?"],
    ),
    prop(
        "market",
        "ctx.market -> #{up_bid, up_ask, up_mid, down_bid, down_ask, down_mid, spread, down_spread, imbalance, up_depth, down_depth, fee_rate, tick_size, min_order_size}",
        "The venue's quote: best bid/ask/mid per side, spread, order-book imbalance in [-1, 1], depth near the top, fee rate, tick, minimum order in shares.",
        &["get market(ctx: Ctx) -> Map"],
    ),
    prop(
        "account",
        "ctx.account -> #{equity, cash, starting_capital, peak_equity, drawdown_pct, win_streak, loss_streak, trades, wins, losses, last_result}",
        "The account: equity, cash, capital, peak, drawdown %, streaks, trade counts, last result (\"win\", \"loss\" or \"\").",
        &["get account(ctx: Ctx) -> Map"],
    ),
    prop(
        "params",
        "ctx.params -> map",
        "The strategy's parameters: [params.<file stem>] in config.toml, then --param overrides.",
        &["get params(ctx: Ctx) -> Map"],
    ),
    method(
        "param",
        "ctx.param(name, default) -> value",
        "A parameter by name, or `default` when it is not set. With an integer default, a whole float (14.0) is given as the integer; indicator periods may be whole floats too. `run`, `backtest` and `validate` warn about a given parameter the script never names and one whose type differs from the default.",
        &["param(ctx: Ctx, name: String, default: ?) -> ?"],
    ),
    method(
        "candles",
        "ctx.candles(n) -> [#{t, o, h, l, c, v}]",
        "The last n closed 1m candles, oldest first; t is the open time in Unix seconds (fewer if history is shorter).",
        &["candles(ctx: Ctx, n: int) -> Array"],
    ),
    method(
        "closes",
        "ctx.closes(n) -> [float]",
        "Closes of the last n closed 1m candles, oldest first.",
        &["closes(ctx: Ctx, n: int) -> Array"],
    ),
    method(
        "range_pct",
        "ctx.range_pct(minutes) -> float | ()",
        "High-low range over the last `minutes` candles as % of the last close.",
        &["range_pct(ctx: Ctx, minutes: int) -> ?"],
    ),
    method(
        "rsi",
        "ctx.rsi(n [, ago]) -> float | ()",
        "Relative Strength Index with Wilder's smoothing (TA-Lib RSI).",
        &[
            "rsi(ctx: Ctx, n: int) -> ?",
            "rsi(ctx: Ctx, n: int, ago: int) -> ?",
            "rsi(ctx: Ctx, n: float) -> ?",
            "rsi(ctx: Ctx, n: float, ago: int) -> ?",
        ],
    ),
    method(
        "ema",
        "ctx.ema(n [, ago]) -> float | ()",
        "Exponential moving average of closes, seeded with the SMA of the first n (TA-Lib EMA).",
        &[
            "ema(ctx: Ctx, n: int) -> ?",
            "ema(ctx: Ctx, n: int, ago: int) -> ?",
            "ema(ctx: Ctx, n: float) -> ?",
            "ema(ctx: Ctx, n: float, ago: int) -> ?",
        ],
    ),
    method(
        "sma",
        "ctx.sma(n [, ago]) -> float | ()",
        "Simple moving average of closes.",
        &[
            "sma(ctx: Ctx, n: int) -> ?",
            "sma(ctx: Ctx, n: int, ago: int) -> ?",
            "sma(ctx: Ctx, n: float) -> ?",
            "sma(ctx: Ctx, n: float, ago: int) -> ?",
        ],
    ),
    method(
        "macd",
        "ctx.macd(fast, slow, signal [, ago]) -> #{macd, signal, hist} | ()",
        "MACD line, signal line and histogram (TA-Lib MACD).",
        &[
            "macd(ctx: Ctx, fast: int, slow: int, signal: int) -> ?",
            "macd(ctx: Ctx, fast: int, slow: int, signal: int, ago: int) -> ?",
            "macd(ctx: Ctx, fast: ?, slow: ?, signal: ?) -> ?",
            "macd(ctx: Ctx, fast: ?, slow: ?, signal: ?, ago: int) -> ?",
        ],
    ),
    method(
        "bbands",
        "ctx.bbands(n, k [, ago]) -> #{upper, middle, lower} | ()",
        "Bollinger bands: SMA ± k population standard deviations (TA-Lib BBANDS).",
        &[
            "bbands(ctx: Ctx, n: int, k: float) -> ?",
            "bbands(ctx: Ctx, n: int, k: float, ago: int) -> ?",
            "bbands(ctx: Ctx, n: ?, k: float) -> ?",
            "bbands(ctx: Ctx, n: ?, k: float, ago: int) -> ?",
        ],
    ),
    method(
        "atr",
        "ctx.atr(n [, ago]) -> float | ()",
        "Average true range with Wilder's smoothing (TA-Lib ATR).",
        &[
            "atr(ctx: Ctx, n: int) -> ?",
            "atr(ctx: Ctx, n: int, ago: int) -> ?",
            "atr(ctx: Ctx, n: float) -> ?",
            "atr(ctx: Ctx, n: float, ago: int) -> ?",
        ],
    ),
    method(
        "stddev",
        "ctx.stddev(n [, ago]) -> float | ()",
        "Population standard deviation of the last n closes (TA-Lib STDDEV).",
        &[
            "stddev(ctx: Ctx, n: int) -> ?",
            "stddev(ctx: Ctx, n: int, ago: int) -> ?",
            "stddev(ctx: Ctx, n: float) -> ?",
            "stddev(ctx: Ctx, n: float, ago: int) -> ?",
        ],
    ),
    method(
        "roc",
        "ctx.roc(n [, ago]) -> float | ()",
        "Rate of change over n candles, percent (TA-Lib ROC).",
        &[
            "roc(ctx: Ctx, n: int) -> ?",
            "roc(ctx: Ctx, n: int, ago: int) -> ?",
            "roc(ctx: Ctx, n: float) -> ?",
            "roc(ctx: Ctx, n: float, ago: int) -> ?",
        ],
    ),
    method(
        "stoch",
        "ctx.stoch(k, slow_k, d [, ago]) -> #{k, d} | ()",
        "Slow stochastic %K and %D with SMA smoothing (TA-Lib STOCH).",
        &[
            "stoch(ctx: Ctx, k: int, slow_k: int, d: int) -> ?",
            "stoch(ctx: Ctx, k: int, slow_k: int, d: int, ago: int) -> ?",
            "stoch(ctx: Ctx, k: ?, slow_k: ?, d: ?) -> ?",
            "stoch(ctx: Ctx, k: ?, slow_k: ?, d: ?, ago: int) -> ?",
        ],
    ),
    method(
        "obv",
        "ctx.obv([ago]) -> float | ()",
        "On-balance volume (TA-Lib OBV).",
        &["obv(ctx: Ctx) -> ?", "obv(ctx: Ctx, ago: int) -> ?"],
    ),
    method(
        "mfi",
        "ctx.mfi(n [, ago]) -> float | ()",
        "Money flow index (TA-Lib MFI).",
        &[
            "mfi(ctx: Ctx, n: int) -> ?",
            "mfi(ctx: Ctx, n: int, ago: int) -> ?",
            "mfi(ctx: Ctx, n: float) -> ?",
            "mfi(ctx: Ctx, n: float, ago: int) -> ?",
        ],
    ),
    func(
        "up",
        "up(confidence, reason) -> decision",
        "Decide UP with a confidence in [0, 1]; add `prob` and `features` to the map if wanted.",
        &[
            "up(confidence: float, reason: String) -> Map",
            "up(confidence: int, reason: String) -> Map",
        ],
    ),
    func(
        "down",
        "down(confidence, reason) -> decision",
        "Decide DOWN with a confidence in [0, 1].",
        &[
            "down(confidence: float, reason: String) -> Map",
            "down(confidence: int, reason: String) -> Map",
        ],
    ),
    func(
        "skip",
        "skip(reason) -> decision",
        "Decide not to trade this window.",
        &["skip(reason: String) -> Map"],
    ),
    func(
        "log",
        "log(message)",
        "Write a line to the bot's log, tagged with the script's name (capped per call).",
        &["log(message: String)"],
    ),
];

/// The entry for `name`, if documented.
pub fn item(name: &str) -> Option<&'static ApiItem> {
    API.iter().find(|i| i.name == name)
}

/// The reference as text for a person.
pub fn reference() -> String {
    let mut out = String::new();
    out.push_str("Strategy script API. A strategy defines `fn predict(ctx)` (required) and `fn size(ctx, decision)` (optional, returns USD).\n");
    out.push_str("Indicators return () until enough candles exist; `ago` reads the value that many candles back.\n");
    out.push_str("Inside predict/size, `this` is the script's memory: a map kept between windows, reloads and restarts.\n");
    for (kind, title) in [
        (ItemKind::Property, "ctx properties (read-only)"),
        (ItemKind::Method, "ctx methods"),
        (ItemKind::Function, "functions"),
    ] {
        out.push_str(&format!("\n{title}\n"));
        for i in API.iter().filter(|i| i.kind == kind) {
            out.push_str(&format!("  {}\n      {}\n", i.signature, i.doc));
        }
    }
    out
}

/// Rhai definition file for the script API, for editors with a Rhai language server.
pub fn definitions() -> String {
    let mut out = String::from(
        "// updown script API, generated by `updown api --definitions`. Do not edit.\n\
         // ctx is a read-only `Ctx`; indicator results are () until enough candles exist.\n\n\
         module static;\n",
    );
    for i in API {
        for d in i.defs {
            out.push_str(&format!(
                "\n/// {}\n///\n/// `{}`\nfn {d};\n",
                i.doc, i.signature
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::ctx;
    use std::collections::BTreeSet;

    /// Every function a script can call on `ctx` (or the helpers) is documented here, and
    /// every documented item exists, so `updown api` cannot drift from the real API.
    #[test]
    fn reference_matches_the_registered_api() {
        let mut engine = rhai::Engine::new_raw();
        ctx::register(&mut engine);
        engine.register_fn("log", |_: &str| ());
        let registered: BTreeSet<String> = engine
            .gen_fn_signatures(false)
            .iter()
            .filter_map(|sig| sig.split('(').next().map(str::to_string))
            .filter(|name| !name.starts_with("set$"))
            .map(|name| name.trim_start_matches("get$").to_string())
            .collect();
        let documented: BTreeSet<String> = API.iter().map(|i| i.name.to_string()).collect();
        assert_eq!(registered, documented);
        let overloads = engine
            .gen_fn_signatures(false)
            .iter()
            .filter(|s| !s.starts_with("set$"))
            .count();
        assert_eq!(overloads, API.iter().map(|i| i.defs.len()).sum::<usize>());
    }

    #[test]
    fn definitions_declare_every_overload() {
        let d = definitions();
        assert!(d.contains("module static;"));
        assert!(d.contains("fn rsi(ctx: Ctx, n: int, ago: int) -> ?;"));
        assert!(d.contains("fn get now(ctx: Ctx) -> int;"));
        assert_eq!(
            d.matches("\nfn ").count(),
            API.iter().map(|i| i.defs.len()).sum::<usize>()
        );
    }
}
