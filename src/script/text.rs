//! Making a script's text safe to print: the one place where what a script wrote becomes
//! something the core logs, journals or shows.
//!
//! A script controls the strings it returns (`reason`, feature names), the lines it logs
//! (`log`, `print`, `debug`) and the values it throws, which end up in error messages. Written
//! raw, a newline lets it forge a whole log line ("settled: UP won, P&L +999.00"), a carriage
//! return overwrites the line a terminal shows, an escape sequence drives the terminal, and a
//! bidi override (U+202E) makes a line read differently from what it says. So every such
//! string passes through [`printable`], which leaves ordinary text alone and spells the rest
//! out as Rust-style escapes: `\n`, `\r`, `\t`, `\u{1b}`, `\u{202e}`.

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with line breaks, control characters and bidi/invisible formatting characters
/// replaced by visible escapes; borrowed unchanged when there are none.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Arabic letter mark, left/right-to-left marks, embeddings and overrides,
            // isolates, and the line and paragraph separators some viewers break lines at.
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
                | '\u{2028}' | '\u{2029}'
        )
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn ordinary_text_is_left_alone() {
        let s = "RSI 28.5 < 30, EMA 9 > EMA 21 — Up ↑ (été)";
        assert!(matches!(printable(s), std::borrow::Cow::Borrowed(_)));
        assert_eq!(printable(s), s);
    }

    #[test]
    fn line_breaks_controls_and_bidi_are_spelled_out() {
        assert_eq!(
            printable("x\nsettled: UP won\r\t\u{1b}[2J\u{7f}\u{85}"),
            "x\\nsettled: UP won\\r\\t\\u{1b}[2J\\u{7f}\\u{85}"
        );
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(
            printable("a\u{2066}b\u{2069}\u{2028}"),
            "a\\u{2066}b\\u{2069}\\u{2028}"
        );
        for c in ['\u{200e}', '\u{200f}', '\u{061c}', '\u{202a}', '\u{2029}'] {
            assert!(!printable(&c.to_string()).contains(c), "{c:?}");
        }
    }
}
