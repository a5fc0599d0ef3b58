//! What a person watching `updown run` (live) sees: a small status block at the bottom of a
//! terminal, refreshed in place, with the log scrolling above it; or, when stderr is not a
//! terminal (a pipe, a file, CI), a plain `status:` log line after every decided window.
//!
//! The block shows the current window and how far into it the session is, the time to the
//! next decision, BTC's price with its source and age, the feed's health (live, stale,
//! reconnecting, fallback source, reconnects), the last decision with its verdict and
//! reason, equity, the win or loss streak, and windows done. It is drawn with plain ANSI
//! sequences (cursor up, clear to end of screen) and each line is cut to the terminal's
//! width, so it never wraps and never leaves debris. Log lines go through
//! [`StatusBlock::writer`], which lifts the block, writes the line and redraws it.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use updown::feed::live::FeedHealth;
use updown::ledger::records::{PredictionRecord, TradeRecord};
use updown::session::live::{LiveEvent, LiveStart};

/// The block at the bottom of the terminal, shared by the status loop and the log writer.
#[derive(Clone, Debug)]
pub struct StatusBlock {
    inner: Arc<Mutex<Block>>,
}

#[derive(Debug, Default)]
struct Block {
    /// Lines currently drawn.
    drawn: usize,
    lines: Vec<String>,
    finished: bool,
}

fn width() -> usize {
    console::Term::stderr()
        .size_checked()
        .map_or(100, |(_, cols)| usize::from(cols).max(20))
}

impl Block {
    fn erase(&mut self, out: &mut impl Write) {
        if self.drawn > 0 {
            // To the start of the block's first line, then clear to the end of the screen.
            let _ = write!(out, "\x1b[{}F\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self, out: &mut impl Write) {
        if self.finished {
            return;
        }
        let w = width().saturating_sub(1);
        for line in &self.lines {
            let _ = writeln!(out, "{}", console::truncate_str(line, w, "…"));
        }
        self.drawn = self.lines.len();
    }
}

impl StatusBlock {
    /// An empty block (draws nothing until [`StatusBlock::show`]).
    pub fn new() -> Self {
        StatusBlock {
            inner: Arc::new(Mutex::new(Block::default())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Block> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the block's lines and redraws it.
    pub fn show(&self, lines: Vec<String>) {
        let mut b = self.lock();
        let mut err = std::io::stderr().lock();
        b.erase(&mut err);
        b.lines = lines;
        b.draw(&mut err);
        let _ = err.flush();
    }

    /// Removes the block for good (before the summary is printed).
    pub fn finish(&self) {
        let mut b = self.lock();
        let mut err = std::io::stderr().lock();
        b.erase(&mut err);
        b.finished = true;
        let _ = err.flush();
    }

    /// A writer for the console log: each write lifts the block, writes, and redraws it.
    pub fn writer(&self) -> BlockWriter {
        BlockWriter {
            block: self.clone(),
        }
    }
}

/// Writes log output above the status block.
#[derive(Clone, Debug)]
pub struct BlockWriter {
    block: StatusBlock,
}

impl Write for BlockWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut b = self.block.lock();
        let mut err = std::io::stderr().lock();
        b.erase(&mut err);
        err.write_all(buf)?;
        b.draw(&mut err);
        err.flush()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BlockWriter {
    type Writer = BlockWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// What the status shows, kept up to date from the session's events.
#[derive(Debug, Default)]
pub struct Status {
    start: Option<LiveStart>,
    last: Option<PredictionRecord>,
    decided: usize,
    equity: Option<String>,
    win_streak: u32,
    loss_streak: u32,
    last_trade: Option<TradeRecord>,
}

/// `m:ss` (or `h:mm:ss`) of a span in seconds; negative spans read `0:00`.
pub fn clock_text(secs: i64) -> String {
    let s = secs.max(0);
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Feed health in a few words: state, staleness, fallback source, reconnects.
pub fn feed_text(h: &FeedHealth) -> String {
    let mut parts = vec![match &h.stale {
        Some(_) => format!("STALE ({})", h.state.as_str()),
        None => h.state.as_str().to_string(),
    }];
    if let Some(p) = &h.price
        && p.source != updown::feed::spot::PriceSource::Binance
    {
        parts.push(format!("fallback {}", p.source.as_str()));
    }
    let s = &h.stats;
    if s.reconnects > 0 {
        parts.push(format!(
            "{} reconnect{}",
            s.reconnects,
            if s.reconnects == 1 { "" } else { "s" }
        ));
    }
    if s.stalls > 0 {
        parts.push(format!(
            "{} stall{}",
            s.stalls,
            if s.stalls == 1 { "" } else { "s" }
        ));
    }
    if s.malformed > 0 {
        parts.push(format!("{} bad frames skipped", s.malformed));
    }
    parts.join(", ")
}

impl Status {
    /// Takes one event into account.
    pub fn apply(&mut self, event: LiveEvent) {
        match event {
            LiveEvent::Started(s) => {
                self.decided = s.resumed_at.unwrap_or(0) as usize;
                self.equity = Some(format!("{:.2}", s.equity));
                self.win_streak = s.win_streak;
                self.loss_streak = s.loss_streak;
                self.start = Some(s);
            }
            LiveEvent::Prediction(p) => {
                if let Some(s) = &self.start {
                    self.decided = s
                        .windows
                        .iter()
                        .position(|w| w.start == p.interval_start)
                        .map_or(self.decided + 1, |i| i + 1);
                }
                self.last = Some(*p);
            }
            LiveEvent::Trade(t) => {
                self.equity = Some(format!("{:.2}", t.equity_after));
                self.win_streak = t.win_streak;
                match t.won {
                    Some(true) => self.loss_streak = 0,
                    Some(false) => self.loss_streak += 1,
                    None => {}
                }
                self.last_trade = Some(*t);
            }
        }
    }

    /// Whether the session has started (there is something to show).
    pub fn started(&self) -> bool {
        self.start.is_some()
    }

    fn streak(&self) -> String {
        if self.win_streak > 0 {
            format!("W{}", self.win_streak)
        } else if self.loss_streak > 0 {
            format!("L{}", self.loss_streak)
        } else {
            "-".into()
        }
    }

    fn last_text(&self) -> String {
        match &self.last {
            None => "no decision yet".into(),
            Some(p) => {
                let verdict = match (&p.stake_approved, &p.reason_code) {
                    (Some(stake), _) => format!("approved ${stake:.2}"),
                    (None, Some(code)) => format!("{} ({code})", p.verdict),
                    (None, None) => p.verdict.clone(),
                };
                let why = match (&p.detail, p.reason.is_empty()) {
                    (Some(d), _) if p.stake_approved.is_none() && p.verdict == "refused" => {
                        d.clone()
                    }
                    (_, false) => p.reason.clone(),
                    (Some(d), true) => d.clone(),
                    (None, true) => String::new(),
                };
                format!(
                    "{} {} {verdict}{}",
                    p.slug,
                    p.side.to_uppercase(),
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" — {why}")
                    }
                )
            }
        }
    }

    /// The block's lines now.
    pub fn lines(&self) -> Vec<String> {
        let Some(s) = &self.start else {
            return vec!["updown live · connecting…".into()];
        };
        let now = s.clock.now_secs();
        let total = s.windows.len();
        let current = s.windows.iter().find(|w| w.start <= now && now < w.end);
        let next = s.windows.get(self.decided);
        let window = match current {
            Some(w) => format!("{} ({} in)", w.slug, clock_text(now - w.start)),
            None => "between windows".into(),
        };
        let next_text = match next {
            Some(w) => format!(
                "next decision in {} ({})",
                clock_text(w.start - s.lead - now),
                w.slug
            ),
            None if self.decided >= total => "all windows decided; settling".into(),
            None => "deciding…".into(),
        };
        let h = s.feed.health();
        let price = match (&h.price, h.price_received_ms) {
            (Some(p), Some(at)) => format!(
                "BTC {:.2} ({}, {}s ago)",
                p.price,
                p.source.as_str(),
                (s.clock.now_ms() - at).max(0) / 1000
            ),
            _ => "BTC -".into(),
        };
        let speed = if (s.clock.speed() - 1.0).abs() > f64::EPSILON {
            format!(" · clock {}x", s.clock.speed())
        } else {
            String::new()
        };
        vec![
            format!(
                "▶ updown live · {window} · {next_text} · {}/{total} decided{speed}",
                self.decided
            ),
            format!("  {price} · feed {}", feed_text(&h)),
            format!(
                "  last: {} · equity ${} · streak {}",
                self.last_text(),
                self.equity.as_deref().unwrap_or("-"),
                self.streak()
            ),
        ]
    }

    /// One plain line for logs (stderr not a terminal).
    pub fn plain(&self) -> String {
        let Some(s) = &self.start else {
            return "status: connecting".into();
        };
        let now = s.clock.now_secs();
        let next = s
            .windows
            .get(self.decided)
            .map_or("none (settling)".to_string(), |w| {
                clock_text(w.start - s.lead - now)
            });
        let h = s.feed.health();
        let price = h.price.map_or("-".to_string(), |p| {
            format!("{:.2} ({})", p.price, p.source.as_str())
        });
        format!(
            "status: {}/{} decided · BTC {price} · feed {} · equity ${} · streak {} · next decision in {next}",
            self.decided,
            s.windows.len(),
            feed_text(&h),
            self.equity.as_deref().unwrap_or("-"),
            self.streak()
        )
    }
}

/// Shows `events` until `done()` says the session ended: the block redrawn four times a
/// second on a terminal, or a plain `status:` line per decided window otherwise.
pub fn watch(
    events: &std::sync::mpsc::Receiver<LiveEvent>,
    block: Option<&StatusBlock>,
    mut done: impl FnMut() -> bool,
) {
    let mut status = Status::default();
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    // A plain status line follows the session's own line about the decision, which is
    // logged just after the journal line that announced it.
    let mut plain_due: Option<Instant> = None;
    loop {
        if let Some(at) = plain_due
            && Instant::now() >= at
        {
            plain_due = None;
            tracing::info!("{}", status.plain());
        }
        match events.recv_timeout(Duration::from_millis(50)) {
            Ok(event) => {
                let decided = matches!(event, LiveEvent::Prediction(_));
                status.apply(event);
                if block.is_none() && decided {
                    plain_due = Some(Instant::now() + Duration::from_millis(30));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                if done() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if done() {
            break;
        }
        if let Some(b) = block
            && status.started()
            && last_draw.elapsed() >= Duration::from_millis(250)
        {
            last_draw = Instant::now();
            b.show(status.lines());
        }
    }
    if plain_due.is_some() {
        tracing::info!("{}", status.plain());
    }
    if let Some(b) = block {
        b.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_text_reads_like_a_clock() {
        assert_eq!(clock_text(0), "0:00");
        assert_eq!(clock_text(-5), "0:00");
        assert_eq!(clock_text(167), "2:47");
        assert_eq!(clock_text(3725), "1:02:05");
    }
}
