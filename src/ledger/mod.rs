//! The ledger: the durable record of sessions, decisions, positions and trades.
//!
//! SQLite (bundled, WAL mode) is the source of truth. Each step of a session — a decision
//! with its fill, or a settlement — is one transaction, written before anything is shown or
//! journaled, so a kill -9 at any moment leaves either the whole step or none of it; a
//! restart replays only what is missing, and primary keys on (session, window) make a second
//! record of the same window impossible. `synchronous = NORMAL` in WAL mode survives a
//! process crash (the case that matters here) without an fsync per step; a power cut may
//! lose the last steps but never corrupts the file. Checkpoints (the WAL copied into the
//! database, with an fsync) run every few hundred steps right after a decision is committed,
//! so their fsync never sits between a candle arriving and the next decision. The journals
//! ([`journal`]) are rebuilt from here on resume, so they can be written in buffered
//! batches.
//!
//! Backtests, which always start a fresh session and are simply rerun after a crash, may
//! group many steps into one transaction ([`Ledger::batch_commits`]). Inside a batch a step
//! needs no savepoint of its own: a failed step ends the backtest, and the uncommitted batch
//! is rolled back with it. The session row (account, next window, script memory), which
//! nothing reads during a batch, is written once per batch instead of once per step, and the
//! halt is remembered rather than read back; the WAL is checkpointed once, when the batch
//! ends, instead of every few hundred steps. `updown run` never batches, so its crash safety
//! is as above.

pub mod journal;
pub mod lock;
pub mod orders;
pub mod records;

pub use crate::account::Account;

use crate::domain::Fill;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// File name of the ledger inside the output folder.
pub const LEDGER_FILE: &str = "ledger.sqlite";

/// Schema version written in `meta`; bump with a migration when tables change.
const SCHEMA_VERSION: &str = "1";

/// A ledger failure, always naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// SQLite refused (corrupt file, disk full, locked by another process, ...); the
    /// message ends with what to do about that kind of failure.
    #[error("ledger {path}: {source}{}", advice(.source))]
    Sql {
        /// The ledger file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A stored row could not be read back.
    #[error("ledger {path}: stored {what} is unreadable: {detail}")]
    Corrupt {
        /// The ledger file.
        path: PathBuf,
        /// Which record.
        what: String,
        /// Why.
        detail: String,
    },
    /// The file was written by a newer or unknown schema.
    #[error("ledger {path}: schema version {found:?} is not supported (expected {SCHEMA_VERSION})")]
    Schema {
        /// The ledger file.
        path: PathBuf,
        /// Version found.
        found: String,
    },
}

/// What a person can do about an SQLite failure, by its kind: the right advice for a damaged
/// file (move it aside) is the wrong one for a full disk, where the ledger is intact.
fn advice(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DatabaseCorrupt | C::NotADatabase) => {
            ". The file is damaged: move it aside (nothing else reads it) or pass --out to use another folder"
        }
        Some(C::DiskFull) => {
            ". The disk is full: free some space and run the command again; every step committed before this one is intact"
        }
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            ". Another process is using this ledger: wait for it to finish, or pass --out to use another folder"
        }
        Some(C::ReadOnly | C::CannotOpen | C::PermissionDenied) => {
            ". Check that the folder and the file exist and are writable by this user"
        }
        Some(C::ConstraintViolation) => {
            ". The ledger already holds this record: nothing was written twice, and the failed step was not recorded"
        }
        _ => "",
    }
}

pub use crate::risk::Halt;

/// Lifecycle of a session row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    /// Started and not finished: a restart with the same run resumes it.
    Running,
    /// All windows done.
    Complete,
    /// Stopped by a halt.
    Halted,
    /// Replaced by a newer session (`--fresh`).
    Abandoned,
}

impl SessionStatus {
    /// Stable code stored in the ledger (`running`, `complete`, …).
    pub fn code(self) -> &'static str {
        match self {
            SessionStatus::Running => "running",
            SessionStatus::Complete => "complete",
            SessionStatus::Halted => "halted",
            SessionStatus::Abandoned => "abandoned",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => SessionStatus::Running,
            "complete" => SessionStatus::Complete,
            "halted" => SessionStatus::Halted,
            "abandoned" => SessionStatus::Abandoned,
            _ => return None,
        })
    }
}

/// One stored session.
#[derive(Clone, Debug)]
pub struct SessionRow {
    /// Row id.
    pub id: i64,
    /// Identity of the run (strategy, data, config, params).
    pub run_key: String,
    /// Where it is.
    pub status: SessionStatus,
    /// Human description (strategy and data).
    pub label: String,
    /// Index of the next window to decide.
    pub next_index: u32,
    /// The account.
    pub account: Account,
    /// The script's memory, JSON.
    pub memory: Option<String>,
}

/// An unsettled position.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenPosition {
    /// Its window's index in the session.
    pub window_index: u32,
    /// The fill.
    pub fill: Fill,
}

/// A position as [`SessionRecords`] carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionRecord {
    /// Its window's start.
    pub window_start: i64,
    /// Its window's index in the session.
    pub window_index: u32,
    /// The fill.
    pub fill: Fill,
    /// Whether it was settled.
    pub settled: bool,
}

/// A whole session's records, for [`Ledger::record_all`].
#[derive(Clone, Copy, Debug)]
pub struct SessionRecords<'r> {
    /// Prediction lines with their window start, in window order.
    pub predictions: &'r [(i64, String)],
    /// Every position taken.
    pub positions: &'r [PositionRecord],
    /// Trade lines with their window start, in settlement order.
    pub trades: &'r [(i64, String)],
    /// Equity points (time, equity), in time order.
    pub equity: &'r [(i64, String)],
    /// Reload lines, in order.
    pub reloads: &'r [String],
    /// The halt latched, if any.
    pub halt: Option<&'r Halt>,
    /// The next window to decide.
    pub next_index: u32,
    /// The account at the end.
    pub account: &'r Account,
    /// The script's memory at the end.
    pub memory: Option<&'r str>,
}

/// Handle to the ledger file. Owned by the session (one writer); `status` opens its own.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    /// Steps per transaction and steps pending, when batching (backtests only).
    batch: Option<(u32, u32)>,
    /// While batching: the session row's latest state, not written yet.
    pending: std::cell::RefCell<Option<PendingSession>>,
    /// While batching: the halt as last read or latched (`None`: read the table).
    halt_seen: std::cell::RefCell<Option<Option<Halt>>>,
    /// Steps committed since the last checkpoint of the WAL.
    since_checkpoint: u32,
}

/// Steps (decisions and settlements) between two checkpoints of the WAL: a few hundred
/// pages, as SQLite's own default of 1000 pages would give.
const CHECKPOINT_EVERY: u32 = 256;

/// A session row update deferred to the end of a batch.
struct PendingSession {
    id: i64,
    next_index: Option<u32>,
    account: Account,
    memory: Option<String>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

impl Ledger {
    /// Open (creating if needed) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let sql = |source| LedgerError::Sql {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        // Checkpoints (copying the WAL into the database, with an fsync) are run by
        // `record_decision` after a decision is committed, never inside a settlement's commit
        // that a decision waits for.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS halt (
                 id INTEGER PRIMARY KEY CHECK (id = 1), reason TEXT NOT NULL,
                 detail TEXT NOT NULL, at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS sessions (
                 id INTEGER PRIMARY KEY, run_key TEXT NOT NULL, status TEXT NOT NULL,
                 label TEXT NOT NULL, next_index INTEGER NOT NULL, account TEXT NOT NULL,
                 memory TEXT);
             CREATE TABLE IF NOT EXISTS predictions (
                 session INTEGER NOT NULL, window_start INTEGER NOT NULL, line TEXT NOT NULL,
                 PRIMARY KEY (session, window_start));
             CREATE TABLE IF NOT EXISTS positions (
                 session INTEGER NOT NULL, window_start INTEGER NOT NULL,
                 window_index INTEGER NOT NULL, fill TEXT NOT NULL, settled INTEGER NOT NULL,
                 PRIMARY KEY (session, window_start));
             CREATE TABLE IF NOT EXISTS trades (
                 session INTEGER NOT NULL, window_start INTEGER NOT NULL, line TEXT NOT NULL,
                 PRIMARY KEY (session, window_start));
             CREATE TABLE IF NOT EXISTS reloads (
                 session INTEGER NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL,
                 PRIMARY KEY (session, seq));
             CREATE TABLE IF NOT EXISTS equity (
                 session INTEGER NOT NULL, time INTEGER NOT NULL, equity TEXT NOT NULL,
                 PRIMARY KEY (session, time));
             INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');",
        )
        .map_err(sql)?;
        let found = schema_version(&conn).map_err(sql)?;
        Self::checked(conn, path, found)
    }

    /// The ledger on `conn`, whose schema version is `found`: refused unless it is this
    /// version's, since the tables of another would be misread.
    fn checked(conn: Connection, path: &Path, found: String) -> Result<Ledger, LedgerError> {
        if found != SCHEMA_VERSION {
            return Err(LedgerError::Schema {
                path: path.to_path_buf(),
                found,
            });
        }
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            batch: None,
            pending: std::cell::RefCell::new(None),
            halt_seen: std::cell::RefCell::new(None),
            since_checkpoint: 0,
        })
    }

    /// Open an existing ledger to read it without changing it (`updown report`): read-write
    /// without create or migration, so that closing tidies the WAL files away as every
    /// ledger user does (a read-only connection would leave them behind), and read-only
    /// ([`Ledger::open_read_only`]) where the folder cannot be written.
    pub fn open_existing(path: &Path) -> Result<Ledger, LedgerError> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let opened = Connection::open_with_flags(path, flags).and_then(|conn| {
            conn.busy_timeout(std::time::Duration::from_secs(2))?;
            let found = schema_version(&conn)?;
            Ok((conn, found))
        });
        match opened {
            Ok((conn, found)) => Self::checked(conn, path, found),
            Err(_) => Self::open_read_only(path),
        }
    }

    /// Every session, newest first: its id, label and status.
    pub fn sessions(&self) -> Result<Vec<(i64, String, SessionStatus)>, LedgerError> {
        self.write_pending()?;
        let mut stmt = self
            .conn
            .prepare("SELECT id, label, status FROM sessions ORDER BY id DESC")
            .map_err(|e| self.sql(e))?;
        let rows: Vec<(i64, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.sql(e))?;
        rows.into_iter()
            .map(|(id, label, status)| {
                let parsed = SessionStatus::parse(&status)
                    .ok_or_else(|| self.corrupt(format!("session {id} status"), &status))?;
                Ok((id, label, parsed))
            })
            .collect()
    }

    /// Open an existing ledger for reading only (`updown status`): nothing is created or
    /// migrated, so a ledger on a read-only disk, or owned by another user, can be inspected.
    pub fn open_read_only(path: &Path) -> Result<Ledger, LedgerError> {
        use rusqlite::OpenFlags;
        let sql = |source| LedgerError::Sql {
            path: path.to_path_buf(),
            source,
        };
        let schema = |conn: &Connection| -> rusqlite::Result<String> {
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            schema_version(conn)
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let opened = Connection::open_with_flags(path, flags)
            .and_then(|conn| schema(&conn).map(|found| (conn, found)));
        let (conn, found) = match opened {
            Ok(ok) => ok,
            // A WAL ledger in a folder this user cannot write: SQLite cannot create the
            // shared-memory file it reads through. Nothing can be writing there either, so
            // the file is read as it stands (`immutable`), which needs no such file.
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
                ) =>
            {
                let uri = format!(
                    "file:{}?immutable=1",
                    path.display()
                        .to_string()
                        .replace('%', "%25")
                        .replace('?', "%3f")
                        .replace('#', "%23")
                );
                let conn = Connection::open_with_flags(&uri, flags | OpenFlags::SQLITE_OPEN_URI)
                    .map_err(sql)?;
                let found = schema(&conn).map_err(sql)?;
                (conn, found)
            }
            Err(e) => return Err(sql(e)),
        };
        Self::checked(conn, path, found)
    }

    /// The ledger's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What this ledger holds besides backtests, described for people, or `None` when it
    /// holds backtests only (or nothing): a backtest starts fresh by deleting the ledger, so
    /// it must never delete one that records `updown run` sessions or live orders.
    pub fn records_besides_backtests(&self) -> Result<Option<String>, LedgerError> {
        let sessions: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sessions WHERE run_key NOT LIKE 'backtest %'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        let has_orders: bool = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'live_orders'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| self.sql(e))?
            > 0;
        let orders: i64 = if has_orders {
            self.conn
                .query_row("SELECT COUNT(*) FROM live_orders", [], |r| r.get(0))
                .map_err(|e| self.sql(e))?
        } else {
            0
        };
        Ok(match (sessions, orders) {
            (0, 0) => None,
            (s, 0) => Some(format!("{s} `updown run` session(s)")),
            (s, o) => Some(format!("{s} `updown run` session(s) and {o} live order(s)")),
        })
    }

    fn sql(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: impl Into<String>, detail: impl ToString) -> LedgerError {
        LedgerError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    /// Group up to `every` steps (decisions and settlements) into one transaction, for a
    /// backtest: a crash loses the uncommitted steps, and a backtest always starts over
    /// anyway. Until [`Ledger::commit_batch`], SQLite does not fsync (`synchronous = OFF`):
    /// a power cut during a backtest may leave its ledger unusable, and the backtest is
    /// rerun. `every <= 1` keeps one transaction per step (the default, and what `updown
    /// run` uses). End with [`Ledger::commit_batch`]; dropping the ledger without it rolls
    /// the open batch back.
    pub fn batch_commits(&mut self, every: u32) -> Result<(), LedgerError> {
        if every <= 1 || self.batch.is_some() {
            return Ok(());
        }
        // A batch is rerun after a crash, not recovered: no fsync at WAL checkpoints until it
        // is committed (a power cut may damage a backtest's ledger, never `updown run`'s).
        self.conn
            .execute_batch("PRAGMA synchronous = OFF")
            .map_err(|e| self.sql(e))?;
        self.conn.execute_batch("BEGIN").map_err(|e| self.sql(e))?;
        self.batch = Some((every, 0));
        Ok(())
    }

    /// Commit the open batch, if any, and go back to one transaction per step.
    pub fn commit_batch(&mut self) -> Result<(), LedgerError> {
        if self.batch.is_some() {
            self.write_pending()?;
            // The batch's one checkpoint, still without fsync (see `step_done`).
            self.since_checkpoint = 0;
            self.conn
                .execute_batch(
                    "COMMIT; PRAGMA wal_checkpoint(PASSIVE); PRAGMA synchronous = NORMAL",
                )
                .map_err(|e| self.sql(e))?;
            self.batch = None;
            self.halt_seen.replace(None);
        }
        Ok(())
    }

    /// Count a finished step; commits the batch when it is full.
    ///
    /// A full batch is committed (and the WAL checkpointed when due) only after a decision,
    /// so that work never sits between a candle arriving and the next decision.
    fn step_done(&mut self, decision: bool) -> Result<(), LedgerError> {
        let full = match &mut self.batch {
            Some((every, pending)) => {
                *pending += 1;
                decision && *pending >= *every
            }
            None => false,
        };
        self.since_checkpoint += 1;
        if full {
            self.write_pending()?;
            // No checkpoint between the transactions of a batch: each would copy the pages
            // the last transactions appended to, again and again (4% of a native backtest's
            // time in the profile, docs/BENCHMARKS.md); `commit_batch` runs one at the end.
            self.conn
                .execute_batch("COMMIT; BEGIN")
                .map_err(|e| self.sql(e))?;
            if let Some((_, pending)) = &mut self.batch {
                *pending = 0;
            }
            // Between two transactions another connection could have changed the halt.
            self.halt_seen.replace(None);
        }
        Ok(())
    }

    /// Copy the WAL into the database when enough steps were committed since the last time
    /// (outside a transaction only; a reader still using old pages just makes it partial).
    fn checkpoint_if_due(&mut self) -> Result<(), LedgerError> {
        if self.since_checkpoint >= CHECKPOINT_EVERY {
            self.since_checkpoint = 0;
            self.conn
                .execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
                .map_err(|e| self.sql(e))?;
        }
        Ok(())
    }

    /// Write the session row deferred by a batch, if any.
    fn write_pending(&self) -> Result<(), LedgerError> {
        let Some(p) = self.pending.borrow_mut().take() else {
            return Ok(());
        };
        let account_json =
            serde_json::to_string(&p.account).map_err(|e| self.corrupt("account", e))?;
        let result = match p.next_index {
            Some(next) => self
                .conn
                .prepare_cached(
                    "UPDATE sessions SET next_index = ?2, account = ?3, memory = COALESCE(?4, memory) WHERE id = ?1",
                )
                .and_then(|mut st| st.execute(params![p.id, next, account_json, p.memory])),
            None => self
                .conn
                .prepare_cached(
                    "UPDATE sessions SET account = ?2, memory = COALESCE(?3, memory) WHERE id = ?1",
                )
                .and_then(|mut st| st.execute(params![p.id, account_json, p.memory])),
        };
        result.map(|_| ()).map_err(|e| self.sql(e))
    }

    /// In a batch, defer the session row's update: `next_index` (a decision), the account,
    /// the script memory (kept when `None`). Returns `false` outside a batch.
    fn defer_session(
        &self,
        id: i64,
        next_index: Option<u32>,
        account: &Account,
        memory: Option<&str>,
    ) -> Result<bool, LedgerError> {
        if self.batch.is_none() {
            return Ok(false);
        }
        let mut pending = self.pending.borrow_mut();
        match pending.as_mut() {
            Some(p) if p.id == id => {
                if next_index.is_some() {
                    p.next_index = next_index;
                }
                p.account.clone_from(account);
                if let Some(m) = memory {
                    p.memory = Some(m.to_string());
                }
            }
            _ => {
                drop(pending);
                // Another session's row is pending (not done by a session loop): write it.
                self.write_pending()?;
                *self.pending.borrow_mut() = Some(PendingSession {
                    id,
                    next_index,
                    account: account.clone(),
                    memory: memory.map(str::to_string),
                });
            }
        }
        Ok(true)
    }

    /// Note a halt latched in this batch (the first one stays).
    fn saw_halt(&self, h: &Halt) {
        let mut seen = self.halt_seen.borrow_mut();
        if let Some(None) = *seen {
            *seen = Some(Some(h.clone()));
        }
    }

    /// The latched halt, if any.
    pub fn halt(&self) -> Result<Option<Halt>, LedgerError> {
        if self.batch.is_some()
            && let Some(known) = self.halt_seen.borrow().as_ref()
        {
            return Ok(known.clone());
        }
        let halt = self.read_halt()?;
        if self.batch.is_some() {
            self.halt_seen.replace(Some(halt.clone()));
        }
        Ok(halt)
    }

    fn read_halt(&self) -> Result<Option<Halt>, LedgerError> {
        // Asked twice per window: the statement is prepared once.
        self.conn
            .prepare_cached("SELECT reason, detail, at FROM halt WHERE id = 1")
            .and_then(|mut stmt| {
                stmt.query_row([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .optional()
            })
            .map_err(|e| self.sql(e))?
            .map(|(reason, detail, at)| {
                // A reason this version does not know is a corrupt ledger, which stops the
                // session: a halt is never read as "no halt".
                let reason = crate::risk::HaltReason::parse(&reason)
                    .ok_or_else(|| self.corrupt("halt reason", &reason))?;
                Ok(Halt { reason, detail, at })
            })
            .transpose()
    }

    /// Clear a latched halt; returns whether there was one.
    pub fn clear_halt(&self) -> Result<bool, LedgerError> {
        self.halt_seen.replace(None);
        let n = self
            .conn
            .execute("DELETE FROM halt WHERE id = 1", [])
            .map_err(|e| self.sql(e))?;
        Ok(n > 0)
    }

    /// Create a session, abandoning any running one with the same key.
    pub fn create_session(
        &mut self,
        run_key: &str,
        label: &str,
        account: &Account,
    ) -> Result<SessionRow, LedgerError> {
        let account_json =
            serde_json::to_string(account).map_err(|e| self.corrupt("account", e))?;
        let tx = self.conn.transaction().map_err(|e| LedgerError::Sql {
            path: self.path.clone(),
            source: e,
        })?;
        let result = (|| {
            tx.execute(
                "UPDATE sessions SET status = 'abandoned' WHERE run_key = ?1 AND status = 'running'",
                params![run_key],
            )?;
            tx.execute(
                "INSERT INTO sessions (run_key, status, label, next_index, account) VALUES (?1, 'running', ?2, 0, ?3)",
                params![run_key, label, account_json],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(id)
        })();
        let id = result.map_err(|e| self.sql(e))?;
        Ok(SessionRow {
            id,
            run_key: run_key.to_string(),
            status: SessionStatus::Running,
            label: label.to_string(),
            next_index: 0,
            account: account.clone(),
            memory: None,
        })
    }

    /// The newest session with this run key.
    pub fn find_session(&self, run_key: &str) -> Result<Option<SessionRow>, LedgerError> {
        self.session_where("run_key = ?1 AND status != 'abandoned'", run_key)
    }

    /// The newest unfinished session of a run other than `run_key`: a folder holds one run
    /// at a time, so a new run must not start silently beside it.
    pub fn unfinished_other_run(&self, run_key: &str) -> Result<Option<SessionRow>, LedgerError> {
        self.session_where("run_key != ?1 AND status = 'running'", run_key)
    }

    /// How many sessions of runs other than `run_key` the ledger keeps (any status).
    pub fn other_runs(&self, run_key: &str) -> Result<i64, LedgerError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM sessions WHERE run_key != ?1 AND status != 'abandoned'",
                params![run_key],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    /// The newest session of any run.
    pub fn latest_session(&self) -> Result<Option<SessionRow>, LedgerError> {
        self.session_where("?1 = ?1", "")
    }

    fn session_where(&self, cond: &str, arg: &str) -> Result<Option<SessionRow>, LedgerError> {
        self.write_pending()?;
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT id, run_key, status, label, next_index, account, memory FROM sessions
                     WHERE {cond} ORDER BY id DESC LIMIT 1"
                ),
                params![arg],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, u32>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let Some((id, run_key, status, label, next_index, account, memory)) = row else {
            return Ok(None);
        };
        let status = SessionStatus::parse(&status)
            .ok_or_else(|| self.corrupt(format!("session {id} status"), &status))?;
        let account: Account = serde_json::from_str(&account)
            .map_err(|e| self.corrupt(format!("session {id} account"), e))?;
        Ok(Some(SessionRow {
            id,
            run_key,
            status,
            label,
            next_index,
            account,
            memory,
        }))
    }

    /// Record one decided window atomically: its prediction line, the fill if any, the
    /// account after it, the script memory, and the next window to decide. A halt to latch
    /// (e.g. after repeated script failures) is written in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn record_decision(
        &mut self,
        session: i64,
        window_start: i64,
        window_index: u32,
        prediction: &str,
        fill: Option<&Fill>,
        account: &Account,
        memory: Option<&str>,
        halt: Option<&Halt>,
    ) -> Result<(), LedgerError> {
        let fill_json = fill
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| self.corrupt("fill", e))?;
        let write = |tx: &Connection, session_row: Option<&str>| -> rusqlite::Result<()> {
            tx.prepare_cached(INSERT_PREDICTION)?.execute(params![
                session,
                window_start,
                prediction
            ])?;
            if let Some(f) = &fill_json {
                tx.prepare_cached(INSERT_POSITION)?.execute(params![
                    session,
                    window_start,
                    window_index,
                    f,
                    false
                ])?;
            }
            if let Some(account_json) = session_row {
                tx.prepare_cached(UPDATE_SESSION_ROW)?.execute(params![
                    session,
                    window_index + 1,
                    account_json,
                    memory
                ])?;
            }
            if let Some(h) = halt {
                latch_in_session(tx, session, h)?;
            }
            Ok(())
        };
        if self.defer_session(session, Some(window_index + 1), account, memory)? {
            // In a batch: no savepoint (see the module documentation), no session row yet.
            write(&self.conn, None).map_err(|e| self.sql(e))?;
        } else {
            let account_json =
                serde_json::to_string(account).map_err(|e| self.corrupt("account", e))?;
            let path = self.path.clone();
            // Outside a batch a savepoint is exactly a transaction (SAVEPOINT begins one,
            // RELEASE commits it).
            let tx = self.conn.savepoint().map_err(|source| LedgerError::Sql {
                path: path.clone(),
                source,
            })?;
            write(&tx, Some(&account_json))
                .and_then(|()| tx.commit())
                .map_err(|source| LedgerError::Sql { path, source })?;
        }
        if let Some(h) = halt {
            self.saw_halt(h);
        }
        self.step_done(true)?;
        if self.batch.is_none() {
            // After the decision is committed (and its verdict given): the one place a
            // checkpoint's fsync cannot delay a decision.
            self.checkpoint_if_due()?;
        }
        Ok(())
    }

    /// Record one settlement atomically: the trade line, the position closed, the account,
    /// an equity point, and a halt to latch if the settlement triggered one.
    pub fn record_settlement(
        &mut self,
        session: i64,
        window_start: i64,
        trade: &str,
        account: &Account,
        equity_point: (i64, &str),
        halt: Option<&Halt>,
    ) -> Result<(), LedgerError> {
        let write = |tx: &Connection, session_row: Option<&str>| -> rusqlite::Result<()> {
            tx.prepare_cached(INSERT_TRADE)?
                .execute(params![session, window_start, trade])?;
            let n = tx.prepare_cached(
                "UPDATE positions SET settled = 1 WHERE session = ?1 AND window_start = ?2 AND settled = 0",
            )?
            .execute(params![session, window_start])?;
            if n != 1 {
                return Err(rusqlite::Error::StatementChangedRows(n));
            }
            if let Some(account_json) = session_row {
                tx.prepare_cached("UPDATE sessions SET account = ?2 WHERE id = ?1")?
                    .execute(params![session, account_json])?;
            }
            tx.prepare_cached(UPSERT_EQUITY)?.execute(params![
                session,
                equity_point.0,
                equity_point.1
            ])?;
            if let Some(h) = halt {
                latch_in_session(tx, session, h)?;
            }
            Ok(())
        };
        if self.defer_session(session, None, account, None)? {
            write(&self.conn, None).map_err(|e| self.sql(e))?;
        } else {
            let account_json =
                serde_json::to_string(account).map_err(|e| self.corrupt("account", e))?;
            let path = self.path.clone();
            // Outside a batch a savepoint is exactly a transaction.
            let tx = self.conn.savepoint().map_err(|source| LedgerError::Sql {
                path: path.clone(),
                source,
            })?;
            write(&tx, Some(&account_json))
                .and_then(|()| tx.commit())
                .map_err(|source| LedgerError::Sql { path, source })?;
        }
        if let Some(h) = halt {
            self.saw_halt(h);
        }
        self.step_done(false)
    }

    /// Record a script reload (or a refused version) of a session.
    pub fn record_reload(&self, session: i64, line: &str) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "INSERT INTO reloads (session, seq, line)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM reloads WHERE session = ?1), ?2)",
                params![session, line],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// All reload lines of a session, in order.
    pub fn reloads(&self, session: i64) -> Result<Vec<String>, LedgerError> {
        self.lines(
            "SELECT line FROM reloads WHERE session = ?1 ORDER BY seq",
            session,
        )
    }

    /// Write a whole session's records at once, in one transaction: what a backtest kept in
    /// memory while it ran ([`SessionRecords`]), so that `updown report` and `status` read
    /// its folder as they read a `run`'s. The rows are the ones the step-by-step writes
    /// ([`Ledger::record_decision`], [`Ledger::record_settlement`], …) would have left.
    pub fn record_all(&mut self, session: i64, r: &SessionRecords<'_>) -> Result<(), LedgerError> {
        let account = serde_json::to_string(r.account).map_err(|e| self.corrupt("account", e))?;
        let positions = r
            .positions
            .iter()
            .map(|p| {
                serde_json::to_string(&p.fill)
                    .map(|f| (p, f))
                    .map_err(|e| self.corrupt("fill", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let path = self.path.clone();
        let sql = |source| LedgerError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        let write = |tx: &Connection| -> rusqlite::Result<()> {
            let mut stmt = tx.prepare_cached(INSERT_PREDICTION)?;
            for (start, line) in r.predictions {
                stmt.execute(params![session, start, line])?;
            }
            let mut stmt = tx.prepare_cached(INSERT_POSITION)?;
            for (p, fill) in &positions {
                stmt.execute(params![
                    session,
                    p.window_start,
                    p.window_index,
                    fill,
                    p.settled
                ])?;
            }
            let mut stmt = tx.prepare_cached(INSERT_TRADE)?;
            for (start, line) in r.trades {
                stmt.execute(params![session, start, line])?;
            }
            let mut stmt = tx.prepare_cached(UPSERT_EQUITY)?;
            for (time, equity) in r.equity {
                stmt.execute(params![session, time, equity])?;
            }
            let mut stmt =
                tx.prepare("INSERT INTO reloads (session, seq, line) VALUES (?1, ?2, ?3)")?;
            for (seq, line) in r.reloads.iter().enumerate() {
                stmt.execute(params![session, seq as i64 + 1, line])?;
            }
            tx.prepare_cached(UPDATE_SESSION_ROW)?.execute(params![
                session,
                r.next_index,
                account,
                r.memory
            ])?;
            if let Some(h) = r.halt {
                latch_in_session(tx, session, h)?;
            }
            Ok(())
        };
        write(&tx).and_then(|()| tx.commit()).map_err(sql)?;
        if let Some(h) = r.halt {
            self.saw_halt(h);
        }
        Ok(())
    }

    /// Record an equity point on its own (a window without a trade).
    pub fn record_equity(&self, session: i64, time: i64, equity: &str) -> Result<(), LedgerError> {
        self.conn
            .execute(UPSERT_EQUITY, params![session, time, equity])
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Mark a session's final status.
    pub fn finish_session(&self, session: i64, status: SessionStatus) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE sessions SET status = ?2 WHERE id = ?1",
                params![session, status.code()],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Positions of a session that are not settled yet.
    pub fn open_positions(&self, session: i64) -> Result<Vec<OpenPosition>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT window_index, fill FROM positions WHERE session = ?1 AND settled = 0 ORDER BY window_start")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![session], |r| {
                Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(e))?;
        rows.into_iter()
            .map(|(window_index, json)| {
                let fill: Fill =
                    serde_json::from_str(&json).map_err(|e| self.corrupt("position", e))?;
                Ok(OpenPosition { window_index, fill })
            })
            .collect()
    }

    /// All prediction lines of a session, in window order.
    pub fn predictions(&self, session: i64) -> Result<Vec<String>, LedgerError> {
        self.lines(
            "SELECT line FROM predictions WHERE session = ?1 ORDER BY window_start",
            session,
        )
    }

    /// All trade lines of a session, in the order they settled (as `trades.jsonl` has them):
    /// resolutions may arrive out of window order, and each line's `equity_after` follows
    /// the line before it. Rows are only ever inserted (and the ledger is never vacuumed), so
    /// the rowid is that order.
    pub fn trades(&self, session: i64) -> Result<Vec<String>, LedgerError> {
        self.lines(
            "SELECT line FROM trades WHERE session = ?1 ORDER BY rowid",
            session,
        )
    }

    /// The equity curve of a session.
    pub fn equity(&self, session: i64) -> Result<Vec<(i64, String)>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT time, equity FROM equity WHERE session = ?1 ORDER BY time")
            .map_err(|e| self.sql(e))?;
        stmt.query_map(params![session], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(e))
    }

    /// Hand `f` every prediction line of a session in window order, one row at a time
    /// (nothing is collected: for sessions of any length).
    pub fn for_each_prediction<E: From<LedgerError>>(
        &self,
        session: i64,
        f: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        self.for_each_line(
            "SELECT line FROM predictions WHERE session = ?1 ORDER BY window_start",
            session,
            f,
        )
    }

    /// Hand `f` every trade line of a session in settlement order, one row at a time.
    pub fn for_each_trade<E: From<LedgerError>>(
        &self,
        session: i64,
        f: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        self.for_each_line(
            "SELECT line FROM trades WHERE session = ?1 ORDER BY rowid",
            session,
            f,
        )
    }

    fn for_each_line<E: From<LedgerError>>(
        &self,
        sql: &str,
        session: i64,
        mut f: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.sql(e))?;
        let mut rows = stmt.query(params![session]).map_err(|e| self.sql(e))?;
        while let Some(row) = rows.next().map_err(|e| self.sql(e))? {
            let line = row
                .get_ref(0)
                .and_then(|v| v.as_str().map_err(rusqlite::Error::from))
                .map_err(|e| self.sql(e))?;
            f(line)?;
        }
        Ok(())
    }

    fn lines(&self, sql: &str, session: i64) -> Result<Vec<String>, LedgerError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.sql(e))?;
        stmt.query_map(params![session], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(e))
    }
}

// The row writes that both the step-by-step writes (`record_decision`, `record_settlement`,
// `record_equity`) and the one-transaction write of a whole session (`record_all`) make:
// one text each, so the two ways of recording cannot drift apart.
const INSERT_PREDICTION: &str =
    "INSERT INTO predictions (session, window_start, line) VALUES (?1, ?2, ?3)";
const INSERT_POSITION: &str = "INSERT INTO positions (session, window_start, window_index, fill, settled) VALUES (?1, ?2, ?3, ?4, ?5)";
const INSERT_TRADE: &str = "INSERT INTO trades (session, window_start, line) VALUES (?1, ?2, ?3)";
const UPSERT_EQUITY: &str =
    "INSERT OR REPLACE INTO equity (session, time, equity) VALUES (?1, ?2, ?3)";
const UPDATE_SESSION_ROW: &str = "UPDATE sessions SET next_index = ?2, account = ?3, memory = COALESCE(?4, memory) WHERE id = ?1";

/// The schema version a ledger file records.
fn schema_version(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row(
        "SELECT value FROM meta WHERE key = 'schema_version'",
        [],
        |r| r.get(0),
    )
}

/// Latch `h` and mark `session` halted, in the caller's transaction.
fn latch_in_session(tx: &Connection, session: i64, h: &Halt) -> rusqlite::Result<()> {
    latch(tx, h)?;
    tx.prepare_cached("UPDATE sessions SET status = 'halted' WHERE id = ?1")?
        .execute(params![session])?;
    Ok(())
}

fn latch(tx: &Connection, h: &Halt) -> rusqlite::Result<usize> {
    // The first halt wins: a later cause must not overwrite why trading stopped.
    tx.execute(
        "INSERT OR IGNORE INTO halt (id, reason, detail, at) VALUES (1, ?1, ?2, ?3)",
        params![h.reason.code(), h.detail, h.at],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Side;
    use rust_decimal_macros::dec;

    #[test]
    fn the_advice_fits_the_failure() {
        let err = |code| {
            LedgerError::Sql {
                path: PathBuf::from("data/ledger.sqlite"),
                source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None),
            }
            .to_string()
        };
        let damaged = err(rusqlite::ffi::SQLITE_NOTADB);
        assert!(damaged.contains("move it aside"), "{damaged}");
        for code in [
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_CONSTRAINT,
            rusqlite::ffi::SQLITE_BUSY,
        ] {
            let m = err(code);
            assert!(!m.contains("move it aside"), "{m}");
            assert!(m.starts_with("ledger data/ledger.sqlite: "), "{m}");
        }
        assert!(err(rusqlite::ffi::SQLITE_FULL).contains("free some space"));
    }

    #[test]
    fn a_ledger_holding_a_run_is_not_only_backtests() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(LEDGER_FILE);
        let mut ledger = Ledger::open(&path).unwrap();
        let account = Account::new(dec!(100));
        ledger
            .create_session("backtest abc", "bt", &account)
            .unwrap();
        assert_eq!(ledger.records_besides_backtests().unwrap(), None);
        ledger.create_session("0123abcd", "run", &account).unwrap();
        drop(ledger);
        let read = Ledger::open_read_only(&path).unwrap();
        let what = read.records_besides_backtests().unwrap();
        assert_eq!(what.as_deref(), Some("1 `updown run` session(s)"));
    }

    fn fill(t: i64) -> Fill {
        Fill {
            window_start: t,
            side: Side::Down,
            stake: dec!(5),
            price: dec!(0.51),
            shares: dec!(9.6),
            fee: dec!(0.17),
        }
    }

    #[test]
    fn a_window_cannot_be_recorded_twice_and_halts_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEDGER_FILE);
        let mut l = Ledger::open(&path).unwrap();
        let s = l
            .create_session("k", "test", &Account::new(dec!(100)))
            .unwrap();
        l.record_decision(
            s.id,
            300,
            0,
            "{}",
            Some(&fill(300)),
            &Account::new(dec!(95)),
            None,
            None,
        )
        .unwrap();
        assert!(
            l.record_decision(
                s.id,
                300,
                0,
                "{}",
                Some(&fill(300)),
                &Account::new(dec!(95)),
                None,
                None
            )
            .is_err()
        );
        assert_eq!(l.open_positions(s.id).unwrap().len(), 1);
        let halt = Halt {
            reason: crate::risk::HaltReason::Drawdown,
            detail: "d".into(),
            at: 600,
        };
        l.record_settlement(
            s.id,
            300,
            "{}",
            &Account::new(dec!(60)),
            (600, "60"),
            Some(&halt),
        )
        .unwrap();
        // Settling the same window again is refused: no trade is recorded twice.
        assert!(
            l.record_settlement(s.id, 300, "{}", &Account::new(dec!(60)), (600, "60"), None)
                .is_err()
        );
        drop(l);

        let l = Ledger::open(&path).unwrap();
        assert_eq!(
            l.halt().unwrap().map(|h| h.reason),
            Some(crate::risk::HaltReason::Drawdown)
        );
        let row = l.find_session("k").unwrap().unwrap();
        assert_eq!(row.status, SessionStatus::Halted);
        assert_eq!(row.next_index, 1);
        assert_eq!(row.account.cash, dec!(60));
        assert!(l.open_positions(s.id).unwrap().is_empty());
        assert!(l.clear_halt().unwrap());
        assert_eq!(l.halt().unwrap(), None);
    }

    #[test]
    fn a_file_that_is_not_a_ledger_gives_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEDGER_FILE);
        std::fs::write(
            &path,
            b"this is not sqlite, just some text that fills a page...............",
        )
        .unwrap();
        let err = Ledger::open(&path).unwrap_err().to_string();
        assert!(err.contains(LEDGER_FILE), "{err}");
        assert!(err.contains("move it aside"), "{err}");
    }
}
