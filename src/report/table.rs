//! The report as a table for a person: sections of aligned `label  value  note` lines.
//!
//! Labels sit in a fixed column, values are right-aligned in the next, and a short note
//! may follow. Lines that scripts and tests read (`windows`, `traded`, `not traded`, each
//! reason code, `wins / losses`, `P&L`, `fees paid`, `equity`) carry no note, so their
//! value is everything after the label.

use super::metrics::{Report, SECONDS_PER_YEAR};
use rust_decimal::Decimal;
use std::fmt::{self, Write as _};

/// Width of the label column (after the two-space indent).
const LABEL: usize = 26;
/// Width of the value column.
const VALUE: usize = 16;

/// `$12.34` / `-$12.34`, rounded to cents.
pub fn usd(d: Decimal) -> String {
    let r = d.round_dp(2);
    if r.is_sign_negative() && !r.is_zero() {
        format!("-${:.2}", -r)
    } else {
        format!("${:.2}", r.abs())
    }
}

/// `+$12.34` / `-$12.34` / `$0.00`.
pub fn signed_usd(d: Decimal) -> String {
    let r = d.round_dp(2);
    if r > Decimal::ZERO {
        format!("+{}", usd(r))
    } else {
        usd(r)
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |x| format!("{:.1}%", x * 100.0))
}

fn num(x: Option<f64>, places: usize) -> String {
    x.map_or_else(|| "n/a".into(), |x| format!("{x:.places$}"))
}

/// `2025-10-29 05:25` (UTC).
pub fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map_or_else(|| t.to_string(), |d| d.format("%Y-%m-%d %H:%M").to_string())
}

/// `1h 50m`, `2d 3h`, `45m`, `30s`.
pub fn duration(secs: i64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `5m`, `15m`, `90s`.
fn interval_name(secs: i64) -> String {
    if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

struct Table<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
}

impl Table<'_, '_> {
    fn section(&mut self, title: &str) -> fmt::Result {
        writeln!(self.f)?;
        writeln!(self.f, "{title}")
    }
    /// A line at `depth` (0 = a metric, 1 = a group, 2 = a reason code).
    fn row(&mut self, depth: usize, label: &str, value: &str, note: &str) -> fmt::Result {
        let indent = 2 + 2 * depth;
        let width = LABEL - 2 * depth;
        let mut line = format!("{:indent$}{label:<width$}  {value:>VALUE$}", "");
        if !note.is_empty() {
            let _ = write!(line, "   {note}");
        }
        writeln!(self.f, "{}", line.trim_end())
    }
    fn line(&mut self, label: &str, value: &str) -> fmt::Result {
        self.row(0, label, value, "")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.session;
        let mut title = String::from("Report");
        if let Some(label) = &s.label {
            let _ = write!(title, " · {label}");
        }
        if let Some(status) = &s.status {
            let _ = write!(title, " · {status}");
        }
        writeln!(f, "{title}")?;
        let span = match (s.first_window, s.end) {
            (Some(a), Some(b)) => format!(" · {} → {} UTC", utc(a), utc(b)),
            _ => String::new(),
        };
        write!(
            f,
            "{} windows of {}{span}",
            self.windows.decided,
            interval_name(s.interval_secs)
        )?;
        if !s.script_hashes.is_empty() {
            write!(f, " · script {}", s.script_hashes.join(", "))?;
        }
        writeln!(f)?;
        let mut t = Table { f };

        let w = &self.windows;
        t.section("Windows")?;
        t.line("windows", &w.decided.to_string())?;
        t.line("traded", &w.traded.to_string())?;
        t.line("not traded", &w.not_traded.to_string())?;
        for (group, codes) in [
            ("skipped, by reason", &w.skipped),
            ("refused, by reason", &w.refused),
        ] {
            if codes.is_empty() {
                continue;
            }
            let n: usize = codes.values().sum();
            t.row(1, group, &n.to_string(), "")?;
            for (code, n) in codes {
                t.row(2, code, &n.to_string(), "")?;
            }
        }

        let tr = &self.trades;
        t.section("Trades")?;
        t.row(0, "settled", &tr.settled.to_string(), "")?;
        if tr.open > 0 {
            t.row(0, "open", &tr.open.to_string(), "traded, not settled yet")?;
        }
        t.line("wins / losses", &format!("{} / {}", tr.wins, tr.losses))?;
        t.row(
            0,
            "void",
            &tr.void.to_string(),
            "window could not be settled, stake refunded",
        )?;
        t.row(
            0,
            "win rate",
            &pct(tr.win_rate),
            &format!("of {} decided trades", tr.wins + tr.losses),
        )?;
        // Up first, then down, then anything else a future venue might record.
        let mut sides: Vec<_> = tr.by_side.iter().collect();
        sides.sort_by_key(|(side, _)| match side.as_str() {
            "up" => 0,
            "down" => 1,
            _ => 2,
        });
        for (side, st) in sides {
            t.row(
                1,
                side,
                &pct(st.win_rate),
                &format!(
                    "{} of {}, P&L {}",
                    st.wins,
                    st.wins + st.losses,
                    signed_usd(st.pnl)
                ),
            )?;
        }
        t.row(
            0,
            "longest win streak",
            &tr.longest_win_streak.to_string(),
            "",
        )?;
        t.row(
            0,
            "longest loss streak",
            &tr.longest_loss_streak.to_string(),
            "",
        )?;
        if !tr.settled_by.is_empty() {
            t.row(0, "settled by", "", "")?;
            for (source, n) in &tr.settled_by {
                t.row(1, source, &n.to_string(), "")?;
            }
        }

        let m = &self.money;
        t.section("Money")?;
        t.line("P&L", &signed_usd(m.pnl))?;
        t.line("fees paid", &usd(m.fees))?;
        t.line(
            "equity",
            &format!("{} → {}", usd(m.starting_equity), usd(m.final_equity)),
        )?;
        t.line("return", &format!("{:.2}%", m.return_pct.round_dp(2)))?;
        t.row(0, "gross won", &usd(m.gross_won), "sum of winning trades")?;
        t.row(0, "gross lost", &usd(m.gross_lost), "sum of losing trades")?;
        let pf = match (m.profit_factor, m.gross_won > Decimal::ZERO) {
            (Some(x), _) => format!("{x:.2}"),
            (None, true) => "∞".into(),
            (None, false) => "n/a".into(),
        };
        t.row(0, "profit factor", &pf, "gross won / gross lost")?;
        let opt = |d: Option<Decimal>| d.map_or_else(|| "n/a".into(), signed_usd);
        t.row(0, "expectancy", &opt(m.expectancy), "P&L per decided trade")?;
        t.row(0, "average win", &opt(m.average_win), "")?;
        t.row(0, "average loss", &opt(m.average_loss), "")?;

        let d = &self.drawdown;
        t.section("Risk")?;
        let dd_note = match (d.peak_equity, d.peak_time, d.trough_equity, d.trough_time) {
            (Some(pe), Some(pt), Some(te), Some(tt)) if d.max_usd > Decimal::ZERO => format!(
                "{} → {} ({}), {} → {} UTC",
                usd(pe),
                usd(te),
                usd(-d.max_usd),
                utc(pt),
                utc(tt)
            ),
            _ => "equity never fell below a peak".into(),
        };
        t.row(
            0,
            "max drawdown",
            &format!("{:.2}%", d.max_pct.round_dp(2)),
            &dd_note,
        )?;
        if d.max_usd > Decimal::ZERO {
            let how = match d.recovery_time {
                Some(r) => format!("recovered {} UTC", utc(r)),
                None => "not recovered by the end of the session".into(),
            };
            t.row(
                0,
                "drawdown duration",
                &format!("{} windows", d.duration_windows),
                &format!("{}, {how}", duration(d.duration_secs)),
            )?;
        }
        let r = &self.ratios;
        let per = format!("√{:.0} windows/year", r.windows_per_year);
        t.row(
            0,
            "Sharpe",
            &num(r.sharpe, 2),
            &format!("annualised, {per}"),
        )?;
        t.row(
            0,
            "Sortino",
            &num(r.sortino, 2),
            &format!("annualised, {per}"),
        )?;
        t.row(
            0,
            "mean window return",
            &r.mean_return
                .map_or_else(|| "n/a".into(), |x| format!("{:.4}%", x * 100.0)),
            &format!("over {} windows", r.windows),
        )?;

        let c = &self.calibration;
        t.section("Calibration (stated probability against outcome, settled trades)")?;
        let source = match (c.from_prob, c.from_confidence) {
            (0, 0) => "no settled, decided trade".to_string(),
            (p, 0) => format!("`prob` of {p} trades"),
            (0, n) => format!("`confidence` of {n} trades (no `prob` given)"),
            (p, n) => format!("`prob` of {p} trades, `confidence` of {n}"),
        };
        t.row(0, "stated", "", &source)?;
        for b in c.buckets.iter().filter(|b| b.trades > 0) {
            t.row(
                1,
                &format!("{:.1}–{:.1}", b.from, b.to),
                &format!("{} trades", b.trades),
                &format!(
                    "stated {} on average, won {}",
                    num(b.mean_stated, 3),
                    pct(b.realised)
                ),
            )?;
        }
        t.row(
            0,
            "Brier score",
            &num(c.brier, 4),
            "mean (stated − won)²; 0.25 = always saying 50%",
        )?;
        if c.unscored > 0 {
            t.row(
                0,
                "unscored",
                &c.unscored.to_string(),
                "no usable stated value",
            )?;
        }

        writeln!(t.f)?;
        let gaps = self.windows.decided.saturating_sub(r.windows);
        writeln!(
            t.f,
            "Per-window return r = the window's P&L / equity before it (0 without a trade), over {}.",
            if gaps == 0 {
                format!("all {} decided windows", r.windows)
            } else {
                format!(
                    "the {} decided windows the data covered ({gaps} data_gap windows left out)",
                    r.windows
                )
            }
        )?;
        writeln!(
            t.f,
            "Sharpe = mean(r) / sample std(r) (N−1) × √({SECONDS_PER_YEAR} / {} s); Sortino = mean(r) / √(Σmin(r,0)² / N) × the same.",
            s.interval_secs
        )?;
        write!(
            t.f,
            "Risk-free rate 0. Fees are taken in shares and already inside the P&L. Definitions: report.json."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn money_and_durations_read_like_a_person_writes_them() {
        assert_eq!(usd(dec!(-30)), "-$30.00");
        assert_eq!(usd(dec!(4.458)), "$4.46");
        assert_eq!(usd(dec!(-0.001)), "$0.00");
        assert_eq!(signed_usd(dec!(4.45)), "+$4.45");
        assert_eq!(signed_usd(dec!(-1.994)), "-$1.99");
        assert_eq!(duration(1200), "20m");
        assert_eq!(duration(6600), "1h 50m");
        assert_eq!(duration(90_000), "1d 1h");
        assert_eq!(duration(30), "30s");
        assert_eq!(utc(1761717900), "2025-10-29 06:05");
    }
}
