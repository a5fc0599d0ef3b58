//! The equity-and-drawdown chart, as PNG and SVG, drawn with `plotters`.
//!
//! Equity (USD) is on top, drawdown below it (% under the running peak), over a shared
//! UTC time axis; both are steps, since equity changes only when a trade settles. The
//! title names the strategy with its return and maximum drawdown, and the peak and the
//! bottom of the largest drawdown are marked.
//!
//! Text is drawn with DejaVu Sans, embedded in the binary (`assets/fonts/`, licence beside
//! it) and handed to plotters' pure-Rust `ab_glyph` renderer, so the PNG renders the same
//! on any machine, with no system font library. The SVG names the `sans-serif` family and
//! leaves drawing text to the viewer.

use super::Curve;
use super::ReportError;
use super::metrics::Report;
use super::source::EquityPoint;
use super::table::usd;
use chrono::{DateTime, Utc};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::path::Path;
use std::sync::OnceLock;

/// File name of the PNG chart in the output folder.
pub const PNG_FILE: &str = "equity.png";
/// File name of the SVG chart in the output folder.
pub const SVG_FILE: &str = "equity.svg";
/// Chart size in pixels.
pub const SIZE: (u32, u32) = (1200, 760);

/// The bundled font (DejaVu Sans 2.37, Bitstream Vera licence: assets/fonts/LICENSE-DejaVu.txt).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family name the chart asks for; the bundled font is registered under it.
const FAMILY: &str = "sans-serif";

const BLUE: RGBColor = RGBColor(31, 100, 180);
const DD_RED: RGBColor = RGBColor(200, 40, 40);
const GREY: RGBColor = RGBColor(120, 120, 120);

fn register_bundled_font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        register_font(FAMILY, FontStyle::Normal, FONT_BYTES)
            .map_err(|_| "the bundled font assets/fonts/DejaVuSans.ttf is not a valid font".into())
    })
    .clone()
}

/// Everything the chart shows, prepared once for both backends.
struct ChartData {
    title: String,
    subtitle: String,
    equity: Vec<(DateTime<Utc>, f64)>,
    drawdown: Vec<(DateTime<Utc>, f64)>,
    start_capital: f64,
    x: (DateTime<Utc>, DateTime<Utc>),
    marks: Vec<(DateTime<Utc>, f64, String)>,
}

fn time(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

fn money(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

fn prepare(records: Curve<'_>, report: &Report) -> ChartData {
    let mut curve: Vec<EquityPoint> = records.equity.to_vec();
    curve.sort_by_key(|p| p.time);
    if curve.is_empty() {
        curve.push(EquityPoint {
            time: report.session.first_window.unwrap_or_default(),
            equity: records.starting_capital,
        });
    }
    let first = curve[0].time;
    let last_point = curve[curve.len() - 1].time;
    let end = report
        .session
        .end
        .unwrap_or(last_point)
        .max(last_point)
        .max(first + records.interval_secs.max(1));
    // Steps: each level holds until the next settlement, and the last one to the end.
    let mut equity = Vec::with_capacity(curve.len() * 2 + 1);
    let mut drawdown = Vec::with_capacity(curve.len() * 2 + 1);
    let mut peak = Decimal::MIN;
    let mut prev: Option<(f64, f64)> = None;
    for p in &curve {
        peak = peak.max(p.equity);
        let dd = if peak > Decimal::ZERO {
            money((p.equity - peak) / peak * Decimal::ONE_HUNDRED)
        } else {
            0.0
        };
        let t = time(p.time);
        if let Some((e, d)) = prev {
            equity.push((t, e));
            drawdown.push((t, d));
        }
        equity.push((t, money(p.equity)));
        drawdown.push((t, dd));
        prev = Some((money(p.equity), dd));
    }
    if let Some((e, d)) = prev {
        equity.push((time(end), e));
        drawdown.push((time(end), d));
    }

    let strategy = report
        .session
        .strategy
        .clone()
        .unwrap_or_else(|| "updown session".into());
    let dd = &report.drawdown;
    let title = format!(
        "{strategy} — return {:.2}% · max drawdown {:.2}%",
        report.money.return_pct.round_dp(2),
        dd.max_pct.round_dp(2)
    );
    let subtitle = format!(
        "{} windows · {} trades · win rate {} · {} → {} · {} UTC → {} UTC",
        report.windows.decided,
        report.trades.settled,
        report
            .trades
            .win_rate
            .map_or_else(|| "n/a".into(), |w| format!("{:.1}%", w * 100.0)),
        usd(report.money.starting_equity),
        usd(report.money.final_equity),
        super::table::utc(first),
        super::table::utc(end),
    );
    let mut marks = Vec::new();
    if let (Some(pt), Some(pe), Some(tt), Some(te)) = (
        dd.peak_time,
        dd.peak_equity,
        dd.trough_time,
        dd.trough_equity,
    ) && dd.max_usd > Decimal::ZERO
    {
        marks.push((time(pt), money(pe), format!("peak {}", usd(pe))));
        marks.push((
            time(tt),
            money(te),
            format!("−{:.2}% ({})", dd.max_pct.round_dp(2), usd(te)),
        ));
    }
    let span = (first, end);
    ChartData {
        title,
        subtitle,
        equity: thin(equity, span),
        drawdown: thin(drawdown, span),
        start_capital: money(records.starting_capital),
        x: (time(first), time(end)),
        marks,
    }
}

/// At most four points per pixel column of the chart — the first, the lowest, the highest and
/// the last that fall in it, in time order — so a long session draws the same lines from a
/// few thousand points instead of two per trade (a 10,000-trade backtest spent more time
/// drawing its charts than computing its report). Shorter series are kept whole.
fn thin(points: Vec<(DateTime<Utc>, f64)>, (t0, t1): (i64, i64)) -> Vec<(DateTime<Utc>, f64)> {
    let columns = SIZE.0 as usize;
    if points.len() <= 4 * columns {
        return points;
    }
    let span = (t1 - t0).max(1) as f64;
    let column = |t: &DateTime<Utc>| {
        let x = (t.timestamp() - t0) as f64 / span * columns as f64;
        (x.max(0.0) as usize).min(columns - 1)
    };
    let mut kept = Vec::with_capacity(4 * columns + 1);
    let mut i = 0;
    while i < points.len() {
        let col = column(&points[i].0);
        let (mut lo, mut hi, mut last) = (i, i, i);
        let mut j = i + 1;
        while j < points.len() && column(&points[j].0) == col {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            last = j;
            j += 1;
        }
        let mut picks = [i, lo, hi, last];
        picks.sort_unstable();
        let mut previous = None;
        for k in picks {
            if previous != Some(k) {
                kept.push(points[k]);
                previous = Some(k);
            }
        }
        i = j;
    }
    kept
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = hi - lo;
    if span.abs() < 1e-9 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo - span * 0.08, hi + span * 0.08)
    }
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, c: &ChartData) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = root
        .margin(8, 8, 16, 16)
        .titled(&c.title, (FAMILY, 26).into_font().color(&BLACK))
        .map_err(e)?;
    let (_, h) = root.dim_in_pixel();
    let (upper, lower) = root.split_vertically((h as f64 * 0.64) as u32);
    let (x0, x1) = c.x;
    let label_font = (FAMILY, 14).into_font();
    let desc_font = (FAMILY, 15).into_font();
    let fmt_time = |t: &DateTime<Utc>| {
        if (x1 - x0).num_hours() >= 20 {
            t.format("%m-%d %H:%M").to_string()
        } else {
            t.format("%H:%M").to_string()
        }
    };

    let lo = c.equity.iter().map(|p| p.1).fold(c.start_capital, f64::min);
    let hi = c.equity.iter().map(|p| p.1).fold(c.start_capital, f64::max);
    let (y0, y1) = padded(lo, hi);
    let mut top = ChartBuilder::on(&upper)
        .margin_right(20)
        .caption(&c.subtitle, (FAMILY, 15).into_font().color(&GREY))
        .x_label_area_size(10)
        .y_label_area_size(84)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    top.configure_mesh()
        .x_labels(10)
        .y_labels(8)
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|y| format!("${y:.0}"))
        .y_desc("equity (USD)")
        .label_style(label_font.clone())
        .axis_desc_style(desc_font.clone())
        .max_light_lines(2)
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(e)?;
    top.draw_series(DashedLineSeries::new(
        [(x0, c.start_capital), (x1, c.start_capital)],
        6,
        4,
        GREY.stroke_width(1),
    ))
    .map_err(e)?;
    top.draw_series(LineSeries::new(
        c.equity.iter().copied(),
        BLUE.stroke_width(2),
    ))
    .map_err(e)?;
    for (i, (t, y, text)) in c.marks.iter().enumerate() {
        let color = if i == 0 { BLUE } else { DD_RED };
        // Labels near the right edge are written leftwards so they stay inside the chart.
        let right_half = (*t - x0).num_seconds() * 3 > (x1 - x0).num_seconds() * 2;
        let (anchor, dx) = if right_half {
            (HPos::Right, -10)
        } else {
            (HPos::Left, 10)
        };
        let font = (FAMILY, 14)
            .into_font()
            .color(&color)
            .pos(Pos::new(anchor, VPos::Bottom));
        top.draw_series(std::iter::once(
            EmptyElement::at((*t, *y))
                + Circle::new((0, 0), 5, color.filled())
                + Text::new(text.clone(), (dx, -6), font),
        ))
        .map_err(e)?;
    }

    let dd_lo = c.drawdown.iter().map(|p| p.1).fold(0.0, f64::min);
    let dd_floor = if dd_lo < 0.0 { dd_lo * 1.15 } else { -1.0 };
    let mut bottom = ChartBuilder::on(&lower)
        .margin_right(20)
        .margin_top(6)
        .x_label_area_size(46)
        .y_label_area_size(84)
        .build_cartesian_2d(x0..x1, dd_floor..0.0)
        .map_err(e)?;
    bottom
        .configure_mesh()
        .x_labels(10)
        .y_labels(5)
        .x_label_formatter(&fmt_time)
        .y_label_formatter(&|y| format!("{y:.0}%"))
        .x_desc("time (UTC)")
        .y_desc("drawdown (%)")
        .label_style(label_font)
        .axis_desc_style(desc_font)
        .max_light_lines(2)
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(e)?;
    bottom
        .draw_series(
            AreaSeries::new(c.drawdown.iter().copied(), 0.0, DD_RED.mix(0.25))
                .border_style(DD_RED.stroke_width(2)),
        )
        .map_err(e)?;
    root.present().map_err(e)
}

/// Draw the chart into `path` as PNG.
pub fn write_png(path: &Path, records: Curve<'_>, report: &Report) -> Result<(), ReportError> {
    let err = |message: String| ReportError::Chart {
        path: path.to_path_buf(),
        message,
    };
    register_bundled_font().map_err(err)?;
    let data = prepare(records, report);
    draw(BitMapBackend::new(path, SIZE).into_drawing_area(), &data).map_err(err)
}

/// Draw the chart into `path` as SVG.
pub fn write_svg(path: &Path, records: Curve<'_>, report: &Report) -> Result<(), ReportError> {
    let err = |message: String| ReportError::Chart {
        path: path.to_path_buf(),
        message,
    };
    register_bundled_font().map_err(err)?;
    let data = prepare(records, report);
    draw(SVGBackend::new(path, SIZE).into_drawing_area(), &data).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_each_columns_first_extremes_and_last_in_time_order() {
        let short: Vec<_> = (0..100).map(|i| (time(i), i as f64)).collect();
        assert_eq!(thin(short.clone(), (0, 100)), short);

        // 100 points in every pixel column, a zigzag with a spike in column 7.
        let n = SIZE.0 as i64 * 100;
        let mut long: Vec<_> = (0..n).map(|i| (time(i), (i % 3) as f64)).collect();
        long[750].1 = 50.0;
        long[751].1 = -50.0;
        let kept = thin(long.clone(), (0, n));
        assert!(kept.len() <= 4 * SIZE.0 as usize, "{} points", kept.len());
        assert_eq!(kept.first(), long.first());
        assert_eq!(kept.last(), long.last());
        assert!(kept.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(kept.contains(&long[750]) && kept.contains(&long[751]));
        let hi = kept.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let lo = kept.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        assert_eq!((lo, hi), (-50.0, 50.0));
    }
}
