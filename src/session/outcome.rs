//! What became of a window, in types: the engine decides in these and branches on them, and
//! the prediction journal spells them under the codes it always used (`verdict`,
//! `reason_code`), so journals and reports read as before.

use crate::risk::ReasonCode;
use crate::script::FailureKind;

/// The journal's `verdict` of a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowVerdict {
    /// An entry was placed (or recovered from the venue).
    Approved,
    /// The risk gate or the venue turned the entry down.
    Refused,
    /// No entry was asked for, or none could be.
    Skipped,
}

impl WindowVerdict {
    /// The journal's word for it.
    pub fn code(self) -> &'static str {
        match self {
            WindowVerdict::Approved => "approved",
            WindowVerdict::Refused => "refused",
            WindowVerdict::Skipped => "skipped",
        }
    }
}

/// The journal's `reason_code` of a window: why it was skipped or refused (or how an entry
/// came about without a decision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowReason {
    /// The script decided to skip.
    ScriptSkip,
    /// The recorded data has no complete candles for the window.
    DataGap,
    /// The decision time (or the quote) came too late on a wall clock.
    Missed,
    /// An order placed before a restart, recovered from the venue.
    Recovered,
    /// The venue failed to execute an approved stake.
    ExecutionFailed,
    /// A script call failed.
    Script(FailureKind),
    /// The risk gate refused.
    Risk(ReasonCode),
    /// The venue had no quote for the window (its error's code, e.g. `no_market`).
    Quote(&'static str),
}

impl WindowReason {
    /// The journal's code for it.
    pub fn code(self) -> &'static str {
        match self {
            WindowReason::ScriptSkip => "script_skip",
            WindowReason::DataGap => "data_gap",
            WindowReason::Missed => "missed",
            WindowReason::Recovered => "recovered",
            WindowReason::ExecutionFailed => "execution_failed",
            WindowReason::Script(kind) => kind.code(),
            WindowReason::Risk(code) => code.code(),
            WindowReason::Quote(code) => code,
        }
    }
}

/// A window's verdict and reason together, as the engine settles them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowOutcome {
    /// The verdict.
    pub verdict: WindowVerdict,
    /// The reason, if any.
    pub reason: Option<WindowReason>,
}

impl WindowOutcome {
    /// Skipped for `reason`.
    pub fn skipped(reason: WindowReason) -> Self {
        WindowOutcome {
            verdict: WindowVerdict::Skipped,
            reason: Some(reason),
        }
    }

    /// Refused for `reason`.
    pub fn refused(reason: WindowReason) -> Self {
        WindowOutcome {
            verdict: WindowVerdict::Refused,
            reason: Some(reason),
        }
    }

    /// Approved (an entry placed).
    pub fn approved() -> Self {
        WindowOutcome {
            verdict: WindowVerdict::Approved,
            reason: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_codes_are_the_ones_it_always_used() {
        let cases = [
            (WindowReason::ScriptSkip, "script_skip"),
            (WindowReason::DataGap, "data_gap"),
            (WindowReason::Missed, "missed"),
            (WindowReason::Recovered, "recovered"),
            (WindowReason::ExecutionFailed, "execution_failed"),
            (WindowReason::Script(FailureKind::Timeout), "script_timeout"),
            (
                WindowReason::Risk(ReasonCode::DrawdownFloor),
                ReasonCode::DrawdownFloor.code(),
            ),
            (WindowReason::Quote("no_market"), "no_market"),
        ];
        for (reason, code) in cases {
            assert_eq!(reason.code(), code);
        }
        assert_eq!(WindowVerdict::Approved.code(), "approved");
        assert_eq!(WindowVerdict::Refused.code(), "refused");
        assert_eq!(WindowVerdict::Skipped.code(), "skipped");
    }
}
