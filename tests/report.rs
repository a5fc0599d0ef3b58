//! The full report end to end: `updown run` prints it and writes `report.json` and the
//! charts; `updown report DIR` later gives exactly the same from the journals; the charts
//! are a real PNG (with text drawn) and a well-formed SVG; damaged journals are named with
//! their line.
//!
//! The hand-checked metric values are unit tests in `src/report/metrics.rs`.

use rust_decimal::Decimal;
use std::path::Path;
use std::process::{Command, Stdio};
use updown::ledger::records::{PredictionRecord, TradeRecord};
use updown::report::{Report, ReportError};

const BIN: &str = env!("CARGO_BIN_EXE_updown");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const BUNDLED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv"
);
const RSI_MACD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/strategies/rsi_macd_imbalance.rhai"
);

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn updown(args: &[&str]) -> Ran {
    let o = Command::new(BIN)
        .args(args)
        .current_dir(REPO)
        .stdin(Stdio::null())
        .output()
        .expect("the updown binary runs");
    Ran {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A real 60-window run of the shipped strategy on the bundled data.
fn real_run(out: &Path) -> Ran {
    let r = updown(&[
        "run",
        "--strategy",
        RSI_MACD,
        "--replay",
        BUNDLED,
        "--out",
        s(out),
        "--intervals",
        "60",
        "--quiet",
        "--no-reload",
    ]);
    assert!(
        matches!(r.code, Some(0) | Some(3)),
        "run failed: {}",
        r.stderr
    );
    r
}

fn lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .expect("journal")
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line"))
        .collect()
}

#[test]
fn report_dir_prints_exactly_what_the_run_printed_and_rewrites_the_same_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let run = real_run(&out);
    let json_after_run = std::fs::read_to_string(out.join("report.json")).expect("report.json");

    let rep = updown(&["report", s(&out)]);
    assert_eq!(rep.code, Some(0), "{}", rep.stderr);
    // The whole table, and the line naming the files, appear verbatim in the run's output.
    assert!(rep.stdout.contains("\nWindows\n") && rep.stdout.contains("Sharpe"));
    assert!(
        run.stdout.contains(&rep.stdout),
        "updown report:\n{}\n---- updown run:\n{}",
        rep.stdout,
        run.stdout
    );
    assert!(
        rep.stdout
            .contains(&format!("{}", out.join("equity.png").display()))
    );
    let json_after_report = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    assert_eq!(json_after_report, json_after_run);

    // --json prints the same document.
    let js = updown(&["report", s(&out), "--json"]);
    assert_eq!(js.code, Some(0), "{}", js.stderr);
    let printed: serde_json::Value = serde_json::from_str(&js.stdout).expect("--json is JSON");
    let file: serde_json::Value = serde_json::from_str(&json_after_run).expect("report.json");
    assert_eq!(printed, file);
    assert!(js.stderr.contains("report.json"), "{}", js.stderr);

    // And the numbers are the journals' own.
    let preds: Vec<PredictionRecord> = lines(&out.join("predictions.jsonl"));
    let trades: Vec<TradeRecord> = lines(&out.join("trades.jsonl"));
    assert_eq!(file["windows"]["decided"], preds.len());
    assert_eq!(
        file["windows"]["traded"],
        preds.iter().filter(|p| p.verdict == "approved").count()
    );
    assert_eq!(file["trades"]["settled"], trades.len());
    assert!(!trades.is_empty(), "the sample run should trade");
    let pnl: Decimal = trades.iter().map(|t| t.pnl).sum();
    let fees: Decimal = trades.iter().map(|t| t.fee).sum();
    assert_eq!(file["money"]["pnl"], pnl.to_string());
    assert_eq!(file["money"]["fees"], fees.to_string());
    assert_eq!(file["session"]["interval_secs"], 300);
    assert!(
        file["session"]["label"]
            .as_str()
            .is_some_and(|l| l.contains("rsi_macd_imbalance.rhai")),
        "{}",
        file["session"]
    );
    assert!(file["ratios"]["sharpe"].is_number(), "{}", file["ratios"]);
    assert!(file["calibration"]["brier"].is_number());

    // The library reads the folder to the same report.
    let lib = Report::from_dir(&out).expect("from_dir");
    assert_eq!(
        serde_json::to_value(&lib).expect("serialises"),
        file,
        "Report::from_dir"
    );
}

#[test]
fn the_run_keeps_the_summary_lines_people_and_scripts_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let run = real_run(&out);
    for label in [
        "windows",
        "traded",
        "not traded",
        "wins / losses",
        "P&L",
        "fees paid",
        "equity",
        "return",
        "win rate",
        "max drawdown",
        "Sharpe",
        "Sortino",
        "profit factor",
        "expectancy",
        "longest win streak",
        "longest loss streak",
        "Brier score",
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{label}  "))),
            "no {label:?} line in:\n{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("Report: "), "{}", run.stdout);
}

/// Read the PNG's pixels (RGB or RGBA, 8 bits).
fn decode_png(bytes: &[u8]) -> (u32, u32, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a decodable PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected colour type {other:?}"),
    };
    (info.width, info.height, channels, buf)
}

#[test]
fn the_charts_are_a_real_png_with_text_and_a_well_formed_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    real_run(&out);

    let png_bytes = std::fs::read(out.join("equity.png")).expect("equity.png");
    assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert!(png_bytes.len() > 20_000, "{} bytes", png_bytes.len());
    let (w, h, ch, px) = decode_png(&png_bytes);
    assert_eq!((w, h), (1200, 760));
    let pixel = |x: u32, y: u32| {
        let i = (y as usize * w as usize + x as usize) * ch;
        (px[i], px[i + 1], px[i + 2])
    };
    // The title is drawn with the bundled font: dark pixels in the top band's middle.
    let dark_in_title = (0..40)
        .flat_map(|y| (300..900).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let (r, g, b) = pixel(x, y);
            r < 80 && g < 80 && b < 80
        })
        .count();
    assert!(dark_in_title > 200, "title pixels: {dark_in_title}");
    // The equity line (blue) is drawn.
    let blue = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let (r, g, b) = pixel(x, y);
            b > 150 && r < 60 && g < 130
        })
        .count();
    assert!(blue > 500, "equity line pixels: {blue}");

    let svg = std::fs::read_to_string(out.join("equity.svg")).expect("equity.svg");
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let longest_line = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter_map(|n| n.attribute("points"))
        .map(|p| p.split_whitespace().count())
        .max()
        .unwrap_or(0);
    assert!(
        longest_line > 10,
        "the equity path has {longest_line} points"
    );
    assert!(
        doc.descendants().any(|n| n.has_tag_name("text")
            && n.text()
                .is_some_and(|t| t.contains("rsi_macd_imbalance.rhai"))),
        "the title names the strategy"
    );
}

#[test]
fn a_malformed_journal_line_is_named_with_its_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    real_run(&out);

    let path = out.join("trades.jsonl");
    let text = std::fs::read_to_string(&path).expect("trades");
    let mut ls: Vec<&str> = text.lines().collect();
    assert!(ls.len() >= 2, "need two trades");
    ls[1] = "{\"interval_start\": 1761718500, \"slug\": ";
    std::fs::write(&path, ls.join("\n")).expect("write");

    let err = Report::from_dir(&out).expect_err("a broken line");
    assert!(
        matches!(&err, ReportError::Line { line: 2, path, .. } if path.ends_with("trades.jsonl")),
        "{err:?}"
    );
    let r = updown(&["report", s(&out)]);
    assert_eq!(r.code, Some(2), "{}", r.stdout);
    assert!(r.stderr.contains("trades.jsonl line 2"), "{}", r.stderr);

    // A prediction with a field of the wrong type: line 3.
    std::fs::write(&path, &text).expect("restore");
    let ppath = out.join("predictions.jsonl");
    let ptext = std::fs::read_to_string(&ppath).expect("predictions");
    let broken: Vec<String> = ptext
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 2 {
                l.replacen("\"confidence\":", "\"confidence\":\"high\",\"x\":", 1)
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&ppath, broken.join("\n")).expect("write");
    let err = Report::from_dir(&out)
        .expect_err("a broken line")
        .to_string();
    assert!(err.contains("predictions.jsonl line 3"), "{err}");
}

#[test]
fn a_folder_that_is_not_a_run_says_so_and_no_write_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = updown(&["report", s(dir.path())]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("predictions.jsonl not found"),
        "{}",
        r.stderr
    );

    let out = dir.path().join("run");
    real_run(&out);
    for f in ["report.json", "equity.png", "equity.svg"] {
        std::fs::remove_file(out.join(f)).expect("written by the run");
    }
    let r = updown(&["report", s(&out), "--no-write"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("Sharpe"), "{}", r.stdout);
    for f in ["report.json", "equity.png", "equity.svg"] {
        assert!(!out.join(f).exists(), "{f} written despite --no-write");
    }
}
