//! The live order book of record: every real order's lifecycle, written before and after
//! each step that touches the venue, so a crash at any point leaves enough on disk to find
//! out what happened without sending a second order.
//!
//! Owned by the live venue (through the [`OrderJournal`] trait it defines), which keeps its
//! own connection to the
//! session's `ledger.sqlite` (WAL lets the session's connection and this one share the
//! file; each statement here is its own transaction). The lifecycle of one order:
//!
//! 1. **intent** ([`OrderStore::record_intent`]): the window, side, token, pUSD amount,
//!    price cap and the order's hash (the venue's order id, computed from the signed order
//!    before it is sent) — committed *before* the order leaves the process. The primary key
//!    (wallet, window) makes a second order for the same window impossible: whatever
//!    state the first one is in, the window is never traded again.
//! 2. **submitted** / **unknown**: the venue answered (its order id and status), or the
//!    answer was lost (timeout, dropped connection) — never read as "not filled".
//! 3. **fills** ([`OrderStore::upsert_fill`]): one row per venue trade. `MATCHED`, `MINED`
//!    and `RETRYING` are provisional; `CONFIRMED` is final; `FAILED` voids the fill.
//! 4. a final state: `filled`, `unfilled`, `rejected` (the venue refused it: no position),
//!    or `not_sent` (after a crash the venue had no such order: the window is given up).

use super::{Halt, LedgerError};
pub use crate::venue::orders::{
    FillRow, FillStatus, Intent, JournalError, OrderJournal, OrderRow, OrderState, order_key,
};
use rusqlite::{Connection, params};
use rust_decimal::Decimal;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The order tables, on their own connection to the session's ledger file.
pub struct OrderStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for OrderStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderStore")
            .field("path", &self.path)
            .finish()
    }
}

impl OrderStore {
    /// Open the order tables in the ledger at `path` (created if needed).
    pub fn open(path: &Path) -> Result<OrderStore, LedgerError> {
        let sql = |source| LedgerError::Sql {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        // An intent must survive a process crash before the order is sent: NORMAL in WAL
        // mode does (it may lose the last steps only on a power cut, as the ledger says).
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS live_orders (
                 wallet TEXT NOT NULL, window_start INTEGER NOT NULL, key TEXT NOT NULL UNIQUE,
                 slug TEXT NOT NULL, side TEXT NOT NULL, token_id TEXT NOT NULL,
                 usd TEXT NOT NULL, price_cap TEXT NOT NULL, order_hash TEXT NOT NULL,
                 salt TEXT NOT NULL, state TEXT NOT NULL, venue_order_id TEXT,
                 venue_status TEXT, detail TEXT, created_ms INTEGER NOT NULL,
                 updated_ms INTEGER NOT NULL,
                 PRIMARY KEY (wallet, window_start));
             CREATE TABLE IF NOT EXISTS live_fills (
                 trade_id TEXT PRIMARY KEY, order_key TEXT NOT NULL, price TEXT NOT NULL,
                 shares TEXT NOT NULL, fee TEXT NOT NULL, status TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS halt (
                 id INTEGER PRIMARY KEY CHECK (id = 1), reason TEXT NOT NULL,
                 detail TEXT NOT NULL, at INTEGER NOT NULL);",
        )
        .map_err(sql)?;
        Ok(OrderStore {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn sql(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Write the intent before sending. `Ok(false)` when the window already has an order
    /// (which is then never replaced).
    pub fn record_intent(&self, i: &Intent) -> Result<bool, LedgerError> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO live_orders (wallet, window_start, key, slug, side,
                     token_id, usd, price_cap, order_hash, salt, state, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'intended', ?11, ?11)",
                params![
                    i.wallet.to_ascii_lowercase(),
                    i.window_start,
                    i.key(),
                    i.slug,
                    i.side,
                    i.token_id,
                    i.usd.to_string(),
                    i.price_cap.to_string(),
                    i.order_hash,
                    i.salt,
                    i.created_ms
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(n == 1)
    }

    /// Move the order of `key` to `state`, keeping fields given as `None`.
    pub fn set_state(
        &self,
        key: &str,
        state: OrderState,
        venue_order_id: Option<&str>,
        venue_status: Option<&str>,
        detail: Option<&str>,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE live_orders SET state = ?2,
                     venue_order_id = COALESCE(?3, venue_order_id),
                     venue_status = COALESCE(?4, venue_status),
                     detail = COALESCE(?5, detail), updated_ms = ?6
                 WHERE key = ?1",
                params![
                    key,
                    state.code(),
                    venue_order_id,
                    venue_status,
                    detail,
                    now_ms
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Record or update one trade of the order `key`.
    pub fn upsert_fill(&self, key: &str, f: &FillRow) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "INSERT INTO live_fills (trade_id, order_key, price, shares, fee, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (trade_id) DO UPDATE SET status = excluded.status",
                params![
                    f.trade_id,
                    key,
                    f.price.to_string(),
                    f.shares.to_string(),
                    f.fee.to_string(),
                    f.status.code()
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The order of `wallet` for the window starting at `window_start`, if any.
    pub fn order(&self, wallet: &str, window_start: i64) -> Result<Option<OrderRow>, LedgerError> {
        self.rows(
            "WHERE wallet = ?1 AND window_start = ?2",
            params![wallet.to_ascii_lowercase(), window_start],
        )
        .map(|mut v| v.pop())
    }

    /// Every order of `wallet` the venue still has to be asked about, or whose fills are
    /// still provisional, oldest first. Orders marked `not_sent` intended since
    /// `recheck_since_ms` are included: one that was still in flight when it was looked up may have landed
    /// since (its window is never traded again either way; this only books what happened).
    pub fn unresolved(
        &self,
        wallet: &str,
        recheck_since_ms: i64,
    ) -> Result<Vec<OrderRow>, LedgerError> {
        self.rows(
            "WHERE wallet = ?1 AND (state IN ('intended', 'submitted', 'unknown')
                 OR (state = 'not_sent' AND created_ms >= ?2)
                 OR key IN (SELECT order_key FROM live_fills
                            WHERE status IN ('MATCHED', 'MINED', 'RETRYING')))",
            params![wallet.to_ascii_lowercase(), recheck_since_ms],
        )
    }

    /// Every order of `wallet`, oldest first.
    pub fn all(&self, wallet: &str) -> Result<Vec<OrderRow>, LedgerError> {
        self.rows("WHERE wallet = ?1", params![wallet.to_ascii_lowercase()])
    }

    /// The trades of the order `key`.
    pub fn fills(&self, key: &str) -> Result<Vec<FillRow>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT trade_id, price, shares, fee, status FROM live_fills
                 WHERE order_key = ?1 ORDER BY rowid",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![key], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (trade_id, price, shares, fee, status) = row.map_err(|e| self.sql(e))?;
            out.push(FillRow {
                trade_id,
                price: self.dec("fill price", &price)?,
                shares: self.dec("fill shares", &shares)?,
                fee: self.dec("fill fee", &fee)?,
                status: FillStatus::parse(&status),
            });
        }
        Ok(out)
    }

    /// Latch a halt (the first one stays), as the session's own halts do; the session sees
    /// it at its next check and stops trading.
    pub fn latch_halt(&self, h: &Halt) -> Result<(), LedgerError> {
        super::latch(&self.conn, h).map_err(|e| self.sql(e))?;
        Ok(())
    }

    fn dec(&self, what: &str, s: &str) -> Result<Decimal, LedgerError> {
        Decimal::from_str(s).map_err(|e| LedgerError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
            detail: e.to_string(),
        })
    }

    fn rows(&self, filter: &str, p: impl rusqlite::Params) -> Result<Vec<OrderRow>, LedgerError> {
        let q = format!(
            "SELECT wallet, window_start, slug, side, token_id, usd, price_cap, order_hash, salt,
                 created_ms, state, venue_order_id, venue_status, detail
             FROM live_orders {filter} ORDER BY window_start"
        );
        let mut stmt = self.conn.prepare(&q).map_err(|e| self.sql(e))?;
        type Raw = (
            (String, i64, String, String, String, String, String),
            (String, String, i64, String),
            (Option<String>, Option<String>, Option<String>),
        );
        let raw: Vec<Raw> = stmt
            .query_map(p, |r| {
                Ok((
                    (
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ),
                    (r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?),
                    (r.get(11)?, r.get(12)?, r.get(13)?),
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| self.sql(e))?;
        raw.into_iter()
            .map(
                |(
                    (wallet, window_start, slug, side, token_id, usd, cap),
                    (order_hash, salt, created_ms, state),
                    (venue_order_id, venue_status, detail),
                )| {
                    Ok(OrderRow {
                        intent: Intent {
                            wallet,
                            window_start,
                            slug,
                            side,
                            token_id,
                            usd: self.dec("order usd", &usd)?,
                            price_cap: self.dec("order price cap", &cap)?,
                            order_hash,
                            salt,
                            created_ms,
                        },
                        state: OrderState::parse(&state).ok_or_else(|| LedgerError::Corrupt {
                            path: self.path.clone(),
                            what: "order state".into(),
                            detail: state.clone(),
                        })?,
                        venue_order_id,
                        venue_status,
                        detail,
                    })
                },
            )
            .collect()
    }
}

impl From<LedgerError> for JournalError {
    fn from(e: LedgerError) -> Self {
        JournalError(e.to_string())
    }
}

/// The live venue's journal is this SQLite store: each call is the inherent method of the
/// same name.
impl OrderJournal for OrderStore {
    fn record_intent(&self, intent: &Intent) -> Result<bool, JournalError> {
        Ok(OrderStore::record_intent(self, intent)?)
    }
    fn set_state(
        &self,
        key: &str,
        state: OrderState,
        venue_order_id: Option<&str>,
        venue_status: Option<&str>,
        detail: Option<&str>,
        now_ms: i64,
    ) -> Result<(), JournalError> {
        Ok(OrderStore::set_state(
            self,
            key,
            state,
            venue_order_id,
            venue_status,
            detail,
            now_ms,
        )?)
    }
    fn upsert_fill(&self, key: &str, fill: &FillRow) -> Result<(), JournalError> {
        Ok(OrderStore::upsert_fill(self, key, fill)?)
    }
    fn order(&self, wallet: &str, window_start: i64) -> Result<Option<OrderRow>, JournalError> {
        Ok(OrderStore::order(self, wallet, window_start)?)
    }
    fn unresolved(
        &self,
        wallet: &str,
        recheck_since_ms: i64,
    ) -> Result<Vec<OrderRow>, JournalError> {
        Ok(OrderStore::unresolved(self, wallet, recheck_since_ms)?)
    }
    fn all(&self, wallet: &str) -> Result<Vec<OrderRow>, JournalError> {
        Ok(OrderStore::all(self, wallet)?)
    }
    fn fills(&self, key: &str) -> Result<Vec<FillRow>, JournalError> {
        Ok(OrderStore::fills(self, key)?)
    }
    fn latch_halt(&self, halt: &Halt) -> Result<(), JournalError> {
        Ok(OrderStore::latch_halt(self, halt)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn intent(window_start: i64) -> Intent {
        Intent {
            wallet: "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266".into(),
            window_start,
            slug: format!("btc-updown-5m-{window_start}"),
            side: "up".into(),
            token_id: "123".into(),
            usd: dec!(5),
            price_cap: dec!(0.65),
            order_hash: "0xabc".into(),
            salt: "7".into(),
            created_ms: 1,
        }
    }

    #[test]
    fn one_order_per_window_and_the_lifecycle_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = OrderStore::open(&dir.path().join("l.sqlite")).unwrap();
        let i = intent(300);
        assert!(s.record_intent(&i).unwrap());
        // A second intent for the same window (another restart, another side) is refused.
        let mut again = intent(300);
        again.side = "down".into();
        assert!(!s.record_intent(&again).unwrap());
        let row = s.order(&i.wallet, 300).unwrap().unwrap();
        assert_eq!(row.state, OrderState::Intended);
        assert_eq!(row.intent.side, "up");
        assert_eq!(s.unresolved(&i.wallet, i64::MAX).unwrap().len(), 1);

        s.set_state(
            &i.key(),
            OrderState::Filled,
            Some("0xabc"),
            Some("matched"),
            None,
            2,
        )
        .unwrap();
        let f = FillRow {
            trade_id: "t1".into(),
            price: dec!(0.5),
            shares: dec!(10),
            fee: dec!(0.175),
            status: FillStatus::Matched,
        };
        s.upsert_fill(&i.key(), &f).unwrap();
        // Filled but provisional: still unresolved.
        assert_eq!(s.unresolved(&i.wallet, i64::MAX).unwrap().len(), 1);
        s.upsert_fill(
            &i.key(),
            &FillRow {
                status: FillStatus::Confirmed,
                ..f.clone()
            },
        )
        .unwrap();
        assert!(s.unresolved(&i.wallet, i64::MAX).unwrap().is_empty());
        // An order found missing is looked up again for a while (it may have been in
        // flight), then left alone.
        let late = intent(600);
        assert!(s.record_intent(&late).unwrap());
        s.set_state(
            &late.key(),
            OrderState::NotSent,
            None,
            None,
            Some("none"),
            3,
        )
        .unwrap();
        assert_eq!(s.unresolved(&i.wallet, 0).unwrap().len(), 1);
        assert!(s.unresolved(&i.wallet, 2).unwrap().is_empty());
        let fills = s.fills(&i.key()).unwrap();
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].status, FillStatus::Confirmed);
        assert_eq!(fills[0].shares, dec!(10));
    }

    #[test]
    fn unknown_fill_statuses_are_provisional() {
        assert!(FillStatus::parse("SOMETHING_NEW").provisional());
        assert!(FillStatus::parse("matched").provisional());
        assert!(!FillStatus::parse("CONFIRMED").provisional());
        assert!(!FillStatus::parse("FAILED").provisional());
    }
}
