//! Turning what a script returned into a [`Decision`] or a [`StakeAsk`], strictly.
//!
//! A script can return anything; only a well-formed answer becomes a decision. Unknown keys
//! are refused (a typo like `sied` must not silently become a SKIP), numbers must be finite
//! and in range, and the message names the key that is wrong.

use super::text::printable;
use crate::domain::{Decision, Side, StakeAsk};
use rhai::{Dynamic, Map};

const KEYS: &str = "side, confidence, reason, prob, features";
const MAX_REASON: usize = 500;
const MAX_FEATURES: usize = 64;

/// Check the value `predict` returned and build the decision.
pub fn parse_decision(value: Dynamic) -> Result<Decision, String> {
    let type_name = value.type_name();
    let Some(map) = value.try_cast::<Map>() else {
        return Err(format!(
            "predict must return up(..), down(..) or skip(..) (a map with {KEYS}), got {type_name}"
        ));
    };
    for key in map.keys() {
        if !matches!(
            key.as_str(),
            "side" | "confidence" | "reason" | "prob" | "features"
        ) {
            return Err(format!(
                "unknown key `{}` in the decision (expected {KEYS})",
                printable(key)
            ));
        }
    }
    let side = match map.get("side").map(|v| v.clone().into_string()) {
        Some(Ok(s)) => match s.to_ascii_lowercase().as_str() {
            "up" => Some(Side::Up),
            "down" => Some(Side::Down),
            "skip" => None,
            other => {
                return Err(format!(
                    "decision `side` must be \"up\", \"down\" or \"skip\", got \"{}\"",
                    printable(other)
                ));
            }
        },
        Some(Err(t)) => return Err(format!("decision `side` must be a string, got {t}")),
        None => return Err("decision has no `side`".into()),
    };
    let reason = match map.get("reason") {
        None => String::new(),
        Some(v) => match v.clone().into_string() {
            Ok(s) => truncate(printable(&s).into_owned(), MAX_REASON),
            Err(t) => return Err(format!("decision `reason` must be a string, got {t}")),
        },
    };
    let confidence = match map.get("confidence") {
        None if side.is_none() => 0.0,
        None => return Err("decision has no `confidence`".into()),
        Some(v) => unit_interval("confidence", v)?,
    };
    let prob = map
        .get("prob")
        .map(|v| unit_interval("prob", v))
        .transpose()?;
    let mut features = serde_json::Map::new();
    if let Some(f) = map.get("features") {
        let t = f.type_name();
        let Some(f) = f.clone().try_cast::<Map>() else {
            return Err(format!(
                "decision `features` must be a map of numbers, got {t}"
            ));
        };
        if f.len() > MAX_FEATURES {
            return Err(format!(
                "decision `features` has {} entries; at most {MAX_FEATURES}",
                f.len()
            ));
        }
        for (k, v) in f {
            let json = if v.is_unit() {
                serde_json::Value::Null
            } else {
                let x = number(&v).ok_or_else(|| {
                    format!(
                        "feature `{}` must be a number, got {}",
                        printable(&k),
                        v.type_name()
                    )
                })?;
                serde_json::Number::from_f64(x)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null)
            };
            features.insert(printable(&k).into_owned(), json);
        }
    }
    Ok(Decision {
        side,
        confidence,
        reason,
        prob,
        features,
    })
}

/// Read the value `size` returned as a stake request; the risk gate judges it.
pub fn parse_stake(value: &Dynamic) -> StakeAsk {
    match number(value) {
        Some(x) => StakeAsk::Usd(x),
        None => StakeAsk::Invalid(value.type_name().to_string()),
    }
}

fn number(v: &Dynamic) -> Option<f64> {
    if let Ok(f) = v.as_float() {
        Some(f)
    } else {
        v.as_int().ok().map(|i| i as f64)
    }
}

fn unit_interval(key: &str, v: &Dynamic) -> Result<f64, String> {
    let x = number(v)
        .ok_or_else(|| format!("decision `{key}` must be a number, got {}", v.type_name()))?;
    if !x.is_finite() || !(0.0..=1.0).contains(&x) {
        return Err(format!("decision `{key}` must be between 0 and 1, got {x}"));
    }
    Ok(x)
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}
