//! Checking the parameters a run gives a script against the parameters the script reads.
//!
//! Parameters come from `[params.<stem>]` in the config and from `--param`, and a script
//! reads them with `ctx.param("name", default)` (or `ctx.params.name`). Nothing ties the two
//! together at run time: a misspelt `--param rsi_lwo=25` is simply never read, and
//! `--param rsi_low=thirty` reaches a comparison as a string, so both change a result
//! without a word. This module reads the script's text (and its modules') once at load,
//! collects the names it reads and the literal defaults it gives them, and turns every given
//! parameter the script never names, or whose type differs from the default's, into a
//! warning the command prints before it runs.
//!
//! The scan is deliberately generous: any string literal in the code counts as a name the
//! script may read (it could build `ctx.param(key, 0)` from a variable), so a warning means
//! the name appears nowhere outside comments.

use std::collections::BTreeMap;

/// The type of a literal default in `ctx.param("name", <literal>)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `14`
    Integer,
    /// `0.08`
    Float,
    /// `true`
    Bool,
    /// `"fast"`
    Text,
}

impl Kind {
    fn of_toml(v: &toml::Value) -> Option<Kind> {
        match v {
            toml::Value::Integer(_) => Some(Kind::Integer),
            toml::Value::Float(_) => Some(Kind::Float),
            toml::Value::Boolean(_) => Some(Kind::Bool),
            toml::Value::String(_) => Some(Kind::Text),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Integer => "an integer",
            Kind::Float => "a number",
            Kind::Bool => "a boolean",
            Kind::Text => "a string",
        }
    }
}

/// What a script reads: each name it mentions, with the default it gives it (text and kind)
/// where it reads it with `ctx.param(name, <literal>)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamReads(BTreeMap<String, Read>);

#[derive(Clone, Debug, Default, PartialEq)]
struct Read {
    /// The literal default of `ctx.param(name, default)`.
    default: Option<(Kind, String)>,
    /// Read as a parameter (`ctx.param("name", …)` or `ctx.params.name`), not only a
    /// string literal somewhere: these are the names a warning lists.
    declared: bool,
}

impl ParamReads {
    /// Scan one source file (the script or a module) and add what it reads.
    pub fn scan(&mut self, source: &str) {
        let tokens = tokens(source);
        for (i, t) in tokens.iter().enumerate() {
            let Token::Text(name) = t else { continue };
            let read = match (i.checked_sub(2).map(|j| &tokens[j..i]), tokens.get(i + 1..)) {
                (Some([Token::Word(f), Token::Punct('(')]), Some(rest)) if f == "param" => Read {
                    default: literal_default(rest),
                    declared: true,
                },
                _ => Read::default(),
            };
            let entry = self.0.entry(name.clone()).or_default();
            entry.declared |= read.declared;
            if entry.default.is_none() {
                entry.default = read.default;
            }
        }
        for w in tokens.windows(3) {
            if let [Token::Word(p), Token::Punct('.'), Token::Word(name)] = w
                && p == "params"
            {
                self.0.entry(name.clone()).or_default().declared = true;
            }
        }
    }

    /// Whether the script mentions `name`.
    pub fn reads(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Warnings for the parameters in `given` (where it was given, its name, its value):
    /// a name the script never reads, or a value whose type differs from the script's
    /// literal default. `script` names the script in the messages.
    pub fn check<'a>(
        &self,
        script: &str,
        given: impl IntoIterator<Item = (&'a str, &'a str, &'a toml::Value)>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (origin, name, value) in given {
            let Some(read) = self.0.get(name) else {
                out.push(format!(
                    "{origin}: {script} never reads a parameter named `{name}` ({}); \
                     check its spelling",
                    self.listing()
                ));
                continue;
            };
            let (Some((want, text)), Some(got)) = (&read.default, Kind::of_toml(value)) else {
                continue;
            };
            let fits = match (want, got) {
                (a, b) if *a == b => true,
                // Integers serve where a number is expected; a whole float where an integer is,
                // by the rule `ctx.param` applies when it hands it to the script.
                (Kind::Float, Kind::Integer) => true,
                (Kind::Integer, Kind::Float) => matches!(
                    crate::domain::ParamValue::from_toml(value).for_integer_default(),
                    crate::domain::ParamValue::Int(_)
                ),
                _ => false,
            };
            if fits {
                continue;
            }
            out.push(if *want == Kind::Integer && got == Kind::Float {
                format!(
                    "{origin}: `{name}` = {value} must be a whole number: {script} reads it with \
                     the integer default {text} (periods and counts are whole numbers)"
                )
            } else {
                format!(
                    "{origin}: `{name}` = {value} is {}, but {script} reads it with the default \
                     {text}, which is {}",
                    got.name(),
                    want.name()
                )
            });
        }
        out
    }

    fn listing(&self) -> String {
        let names: Vec<&str> = self
            .0
            .iter()
            .filter(|(_, r)| r.declared)
            .map(|(k, _)| k.as_str())
            .take(20)
            .collect();
        if names.is_empty() {
            "it reads no parameter by name".into()
        } else {
            format!("it reads {}", names.join(", "))
        }
    }
}

/// Every parameter given to a script, each with where it came from: `[params.<stem>]` of
/// the config first, then `--param`s (which the session lays on top).
pub fn given<'a>(
    stem: &str,
    config_params: Option<&'a toml::Table>,
    overrides: &'a toml::Table,
) -> Vec<(String, &'a str, &'a toml::Value)> {
    let mut out = Vec::new();
    for (k, v) in config_params.into_iter().flatten() {
        if !overrides.contains_key(k) {
            out.push((format!("[params.{stem}] {k} in the config"), k.as_str(), v));
        }
    }
    for (k, v) in overrides {
        out.push((format!("--param {k}"), k.as_str(), v));
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(String),
    Punct(char),
}

/// The literal after `param("name"` — `, 14)` or `, -0.5)` — with its kind and text.
fn literal_default(rest: &[Token]) -> Option<(Kind, String)> {
    let (neg, value) = match rest {
        [Token::Punct(','), Token::Punct('-'), v, ..] => (true, v),
        [Token::Punct(','), v, ..] => (false, v),
        _ => return None,
    };
    let sign = if neg { "-" } else { "" };
    match value {
        Token::Number(n) => {
            let float = n.contains('.') || (!n.starts_with("0x") && n.contains(['e', 'E']));
            let kind = if float { Kind::Float } else { Kind::Integer };
            Some((kind, format!("{sign}{n}")))
        }
        Token::Word(w) if !neg && (w == "true" || w == "false") => Some((Kind::Bool, w.clone())),
        Token::Text(t) if !neg => Some((Kind::Text, format!("{t:?}"))),
        _ => None,
    }
}

/// A small lexer for Rhai's surface: enough to skip comments and read string literals,
/// identifiers, numbers and punctuation. Escapes inside strings are kept as written
/// (parameter names do not use them).
fn tokens(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Rhai's block comments nest.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' || c == '`' || c == '\'' {
            let mut text = String::new();
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && c != '`' && i + 1 < chars.len() {
                    text.push(chars[i]);
                    i += 1;
                }
                text.push(chars[i]);
                i += 1;
            }
            i += 1;
            if c != '\'' {
                out.push(Token::Text(text));
            }
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '_'
                    || (chars[i] == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
                    || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            out.push(Token::Number(chars[start..i].iter().collect()));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(src: &str) -> ParamReads {
        let mut r = ParamReads::default();
        r.scan(src);
        r
    }

    fn value(s: &str) -> toml::Value {
        crate::config::parse_param_overrides(&[format!("x={s}")]).unwrap()["x"].clone()
    }

    #[test]
    fn the_names_and_defaults_a_script_reads_are_found_outside_comments() {
        let r = reads(
            "// ctx.param(\"in_comment\", 1)\n/* a /* nested */ \"block\" */\n\
             fn predict(ctx) { let n = ctx.param(\"rsi_period\", 14);\n\
             let t = ctx.param( \"tilt\" , -0.08 ); let on = ctx.param(\"on\", true);\n\
             let k = \"built\"; let m = ctx.params.direct; skip(\"r\") }",
        );
        assert!(!r.reads("in_comment") && !r.reads("block"));
        assert_eq!(
            r.0["rsi_period"].default,
            Some((Kind::Integer, "14".into()))
        );
        assert_eq!(r.0["tilt"].default, Some((Kind::Float, "-0.08".into())));
        assert_eq!(r.0["on"].default, Some((Kind::Bool, "true".into())));
        assert_eq!(r.0["built"].default, None);
        assert!(r.reads("built") && !r.0["built"].declared);
        assert!(r.reads("direct") && r.0["direct"].declared);
        assert_eq!(r.listing(), "it reads direct, on, rsi_period, tilt");
    }

    #[test]
    fn a_misspelt_or_mistyped_parameter_is_warned_and_a_fitting_one_is_not() {
        let r = reads("fn predict(ctx) { ctx.param(\"rsi_low\", 30); ctx.param(\"tilt\", 0.08) }");
        let cases = [
            (
                "rsi_lwo",
                "25",
                Some("never reads a parameter named `rsi_lwo`"),
            ),
            (
                "rsi_low",
                "thirty",
                Some("is a string, but s.rhai reads it with the default 30"),
            ),
            ("rsi_low", "25.5", Some("must be a whole number")),
            ("rsi_low", "25.0", None),
            ("rsi_low", "25", None),
            ("tilt", "1", None),
            ("tilt", "true", Some("is a boolean")),
        ];
        for (name, v, want) in cases {
            let v = value(v);
            let got = r.check("s.rhai", [("--param x", name, &v)]);
            match want {
                None => assert!(got.is_empty(), "{name}={v}: {got:?}"),
                Some(w) => {
                    assert_eq!(got.len(), 1, "{name}={v}: {got:?}");
                    assert!(got[0].contains(w), "{name}={v}: {}", got[0]);
                    assert!(got[0].starts_with("--param x: "), "{}", got[0]);
                }
            }
        }
    }
}
