//! Several recorded candle files joined into one history, and the feed a backtest replays it
//! through.
//!
//! This module owns joining ([`join`], [`load_joined`]): files are put in time order,
//! candles present in more than one file must be identical (they are then kept once) and a
//! disagreement is an error naming both files and the minute ([`JoinError::Conflict`]);
//! holes, inside a file or between two files, are reported, never filled ([`Joined`]). It
//! also owns [`HistoryFeed`], which serves such a history to the session with a hard
//! visibility cut-off: candles closing after it are never handed out (`--to`, and the
//! look-ahead check's truncated reruns).

use super::candle::{CANDLE_SECS, Candle};
use super::recorded::{Gap, LoadError, Recorded, describe_gaps, load_csv};
use super::{Feed, Layout};
use chrono::DateTime;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why files could not be joined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// One file could not be loaded (the error names file, line and column).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// No file was given.
    #[error("no data file given; pass --data with at least one recorded 1m kline CSV")]
    NoFiles,
    /// Two files hold different candles for the same minute.
    #[error(
        "{} and {} disagree on the candle opening {} UTC: {field} {first_value} vs {second_value}; \
         the files are not the same recording, drop one or fix the data",
        first.display(), second.display(), utc(*open_time)
    )]
    Conflict {
        /// The earlier file (in time order).
        first: PathBuf,
        /// The later file.
        second: PathBuf,
        /// The minute, Unix seconds (bar open).
        open_time: i64,
        /// The first field that differs.
        field: &'static str,
        /// Its value in `first`.
        first_value: f64,
        /// Its value in `second`.
        second_value: f64,
    },
}

/// One input file of a join.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// Its layout.
    pub layout: Layout,
    /// Candles in it.
    pub candles: usize,
    /// Its first bar's open time.
    pub first_open: i64,
    /// Its last bar's open time.
    pub last_open: i64,
    /// Holes inside it.
    pub gaps: Vec<Gap>,
}

impl Source {
    /// `name: N candles, first → last UTC, gaps`, for people.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} candles, {} → {} UTC, {}",
            self.path.display(),
            self.candles,
            utc(self.first_open),
            utc(self.last_open),
            describe_gaps(&self.gaps)
        )
    }
}

/// Several files joined into one history.
#[derive(Clone, Debug)]
pub struct Joined {
    /// The joined candles, strictly increasing minutes; `path` names the first file (or
    /// all of them, joined with ` + `) and `gaps` lists every hole of the joined history.
    pub recorded: Recorded,
    /// The inputs, in time order.
    pub sources: Vec<Source>,
    /// Candles present in more than one file (identical, kept once).
    pub merged_overlap: usize,
    /// Holes of the joined history that lie between two files (a subset of
    /// `recorded.gaps`).
    pub between_files: Vec<Gap>,
}

impl Joined {
    /// A one-line description of the joined history.
    pub fn describe(&self) -> String {
        let c = &self.recorded.candles;
        let (first, last) = match (c.first(), c.last()) {
            (Some(f), Some(l)) => (f.open_time, l.open_time),
            _ => (0, 0),
        };
        let mut s = format!(
            "{} candles from {} file{}, {} → {} UTC, {}",
            c.len(),
            self.sources.len(),
            if self.sources.len() == 1 { "" } else { "s" },
            utc(first),
            utc(last),
            describe_gaps(&self.recorded.gaps)
        );
        if self.merged_overlap > 0 {
            s.push_str(&format!(
                "; {} identical overlapping candles merged",
                self.merged_overlap
            ));
        }
        if !self.between_files.is_empty() {
            s.push_str(&format!(
                "; gaps between files: {}",
                describe_gaps(&self.between_files)
            ));
        }
        s
    }
}

/// Load every file and [`join`] them.
pub fn load_joined(paths: &[PathBuf]) -> Result<Joined, JoinError> {
    let recorded = paths
        .iter()
        .map(|p| load_csv(p))
        .collect::<Result<Vec<_>, _>>()?;
    join(recorded)
}

/// Join loaded files into one history (see the module documentation).
pub fn join(mut files: Vec<Recorded>) -> Result<Joined, JoinError> {
    if files.is_empty() {
        return Err(JoinError::NoFiles);
    }
    // Time order of the files (by first candle; ties by last), whatever the argument order.
    files.sort_by_key(|r| {
        (
            r.candles.first().map_or(i64::MAX, |c| c.open_time),
            r.candles.last().map_or(i64::MAX, |c| c.open_time),
        )
    });
    let sources: Vec<Source> = files
        .iter()
        .map(|r| Source {
            path: r.path.clone(),
            layout: r.layout,
            candles: r.candles.len(),
            first_open: r.candles.first().map_or(0, |c| c.open_time),
            last_open: r.candles.last().map_or(0, |c| c.open_time),
            gaps: r.gaps.clone(),
        })
        .collect();
    if files.len() == 1 {
        let recorded = files.pop().ok_or(JoinError::NoFiles)?;
        return Ok(Joined {
            recorded,
            sources,
            merged_overlap: 0,
            between_files: Vec::new(),
        });
    }

    // Every candle tagged with its file, in time order, the earlier file first for equal
    // minutes (so "first" below is the earlier file): a merge of the files, each already in
    // time order, without copying them all into one list first.
    let tagged = merged(&files);
    let mut candles: Vec<Candle> = Vec::with_capacity(files.iter().map(|r| r.candles.len()).sum());
    let mut owner: Vec<usize> = Vec::with_capacity(candles.capacity());
    let mut merged_overlap = 0;
    for (c, file) in tagged {
        if let (Some(last), Some(&last_file)) = (candles.last(), owner.last())
            && last.open_time == c.open_time
        {
            if let Some((field, a, b)) = first_difference(last, &c) {
                return Err(JoinError::Conflict {
                    first: files[last_file].path.clone(),
                    second: files[file].path.clone(),
                    open_time: c.open_time,
                    field,
                    first_value: a,
                    second_value: b,
                });
            }
            merged_overlap += 1;
            continue;
        }
        candles.push(c);
        owner.push(file);
    }

    let mut gaps = Vec::new();
    let mut between_files = Vec::new();
    for i in 1..candles.len() {
        let (prev, next) = (candles[i - 1].open_time, candles[i].open_time);
        if next > prev + CANDLE_SECS {
            let gap = Gap {
                after_open_time: prev,
                next_open_time: next,
                missing: (next - prev) / CANDLE_SECS - 1,
            };
            gaps.push(gap);
            if owner[i - 1] != owner[i] {
                between_files.push(gap);
            }
        }
    }
    let name = files
        .iter()
        .map(|r| r.path.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    let layout = files[0].layout;
    Ok(Joined {
        recorded: Recorded {
            path: PathBuf::from(name),
            candles,
            gaps,
            layout,
        },
        sources,
        merged_overlap,
        between_files,
    })
}

/// Every candle of `files` with its file's index, ordered by open time, ties in file order:
/// what a stable sort of all of them by open time gives. Files in time order (as
/// [`load_csv`] guarantees) are merged as they stand; any other is sorted.
fn merged(files: &[Recorded]) -> Box<dyn Iterator<Item = (Candle, usize)> + '_> {
    let in_order = files.iter().all(|r| {
        r.candles
            .windows(2)
            .all(|w| w[0].open_time <= w[1].open_time)
    });
    if !in_order {
        let mut tagged: Vec<(Candle, usize)> = files
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.candles.iter().map(move |c| (*c, i)))
            .collect();
        tagged.sort_by_key(|(c, _)| c.open_time);
        return Box::new(tagged.into_iter());
    }
    let mut next = vec![0usize; files.len()];
    Box::new(std::iter::from_fn(move || {
        // The file whose next candle opens first; the earliest file on a tie.
        let mut best: Option<(i64, usize)> = None;
        for (i, r) in files.iter().enumerate() {
            if let Some(c) = r.candles.get(next[i])
                && best.is_none_or(|(t, _)| c.open_time < t)
            {
                best = Some((c.open_time, i));
            }
        }
        let (_, file) = best?;
        let c = files[file].candles[next[file]];
        next[file] += 1;
        Some((c, file))
    }))
}

fn first_difference(a: &Candle, b: &Candle) -> Option<(&'static str, f64, f64)> {
    [
        ("open", a.open, b.open),
        ("high", a.high, b.high),
        ("low", a.low, b.low),
        ("close", a.close, b.close),
        ("volume", a.volume, b.volume),
    ]
    .into_iter()
    .find(|(_, x, y)| x.to_bits() != y.to_bits())
}

fn utc(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0).map_or_else(
        || format!("unix time {secs}"),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// Replays a candle history up to a hard cut-off: a candle whose close time is after
/// `cutoff` is never handed to the session, whatever time it asks for.
///
/// [`Feed::covers`] still answers from the whole history: whether a minute was recorded
/// says nothing about its price (it is the same metadata a run over the full data gets), so
/// a run cut at `t` decides every window up to `t` exactly as the full run does.
#[derive(Clone, Debug)]
pub struct HistoryFeed {
    candles: Arc<Vec<Candle>>,
    next: usize,
    cutoff: i64,
    source: String,
}

impl HistoryFeed {
    /// A feed over `candles` (strictly increasing minutes) that never shows a candle closing
    /// after `cutoff` (`i64::MAX` for none).
    pub fn new(candles: Arc<Vec<Candle>>, cutoff: i64, source: &Path) -> Self {
        HistoryFeed {
            candles,
            next: 0,
            cutoff,
            source: source.display().to_string(),
        }
    }

    /// The cut-off, Unix seconds.
    pub fn cutoff(&self) -> i64 {
        self.cutoff
    }
}

impl Feed for HistoryFeed {
    fn deliver_until(&mut self, t: i64, sink: &mut dyn FnMut(Candle)) {
        let t = t.min(self.cutoff);
        while let Some(c) = self.candles.get(self.next) {
            if c.close_time() > t {
                break;
            }
            sink(*c);
            self.next += 1;
        }
    }

    fn covers(&self, start: i64, end: i64) -> bool {
        let candles = &self.candles;
        let first = candles.partition_point(|c| c.open_time < start);
        let needed = ((end - start) / CANDLE_SECS).max(1) as usize;
        candles.get(first).is_some_and(|c| c.open_time == start)
            && candles
                .get(first + needed - 1)
                .is_some_and(|c| c.open_time == end - CANDLE_SECS)
    }

    fn source(&self) -> String {
        self.source.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(t: i64, close: f64) -> Candle {
        Candle {
            open_time: t,
            open: close,
            high: close,
            low: close,
            close,
            volume: 1.0,
        }
    }

    fn rec(name: &str, times: &[i64]) -> Recorded {
        Recorded {
            path: PathBuf::from(name),
            candles: times.iter().map(|t| c(*t, 100.0 + *t as f64)).collect(),
            gaps: vec![],
            layout: Layout::TimestampOhlcv,
        }
    }

    #[test]
    fn identical_overlaps_merge_in_time_order_whatever_the_argument_order() {
        let a = rec("a.csv", &[0, 60, 120, 180]);
        let b = rec("b.csv", &[120, 180, 240]);
        let j = join(vec![b, a]).unwrap();
        let times: Vec<i64> = j.recorded.candles.iter().map(|c| c.open_time).collect();
        assert_eq!(times, [0, 60, 120, 180, 240]);
        assert_eq!(j.merged_overlap, 2);
        assert!(j.recorded.gaps.is_empty());
        assert_eq!(j.sources[0].path, PathBuf::from("a.csv"));
        assert_eq!(j.recorded.path, PathBuf::from("a.csv + b.csv"));
    }

    #[test]
    fn a_conflicting_overlap_names_both_files_the_time_and_the_field() {
        let a = rec("a.csv", &[0, 60, 120]);
        let mut b = rec("b.csv", &[60, 120]);
        b.candles[1].close += 0.01;
        let e = join(vec![a, b]).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(
                e,
                JoinError::Conflict {
                    open_time: 120,
                    field: "close",
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("a.csv") && msg.contains("b.csv"), "{msg}");
        assert!(msg.contains("1970-01-01 00:02 UTC"), "{msg}");
    }

    #[test]
    fn gaps_between_files_are_reported_apart_from_gaps_inside_one() {
        let mut a = rec("a.csv", &[0, 60, 300]);
        a.gaps = vec![Gap {
            after_open_time: 60,
            next_open_time: 300,
            missing: 3,
        }];
        let b = rec("b.csv", &[600, 660]);
        let j = join(vec![a, b]).unwrap();
        assert_eq!(j.recorded.gaps.len(), 2);
        assert_eq!(
            j.between_files,
            [Gap {
                after_open_time: 300,
                next_open_time: 600,
                missing: 4
            }]
        );
        assert!(
            j.describe().contains("gaps between files"),
            "{}",
            j.describe()
        );
    }

    #[test]
    fn the_feed_never_shows_a_candle_closing_after_its_cutoff() {
        let candles: Vec<Candle> = (0..10).map(|i| c(i * 60, 1.0)).collect();
        let mut f = HistoryFeed::new(Arc::new(candles), 240, Path::new("x"));
        let mut got = vec![];
        f.deliver_until(10_000, &mut |c| got.push(c.open_time));
        assert_eq!(got, [0, 60, 120, 180]);
        // Coverage is metadata and still answers for the whole recording.
        assert!(f.covers(300, 600));
        assert!(!f.covers(600, 900));
    }
}
