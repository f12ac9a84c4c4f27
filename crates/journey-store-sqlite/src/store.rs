//! SQLite store: one file, WAL journal, one writer connection (`BEGIN
//! IMMEDIATE`) and one reader connection.
//!
//! Durability choice: `synchronous=NORMAL`. In WAL mode a committed
//! transaction survives a process crash (SIGKILL) because it is in the WAL
//! file; only an OS crash / power loss can lose the last transactions (never
//! corrupt the database). Idempotency keys make any replay after such a loss
//! harmless for deliveries that were not recorded. `FULL` would fsync on every
//! commit; choose it with [`SqliteOptions::synchronous_full`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use crate::error::{SqlCtx, json_err};
use crate::migrations::migrate;
use journey_store::{
    Delivery, DeliveryFilter, DeliveryStatus, DeliveryTx, Enrollment, EnrollmentState,
    EnrollmentTx, JourneyRow, JourneyTx, Millis, Profile, ProfileTx, Result, RunRecord, RunTx,
    Store, StoreError, StoreTx,
};

// One file per job trait of the store contract.
mod deliveries;
mod enrollments;
mod journeys;
mod profiles;
mod runs;

#[derive(Debug, Clone, Default)]
pub struct SqliteOptions {
    pub synchronous_full: bool,
    /// Page cache per connection (there are two: the writer and the reader), in MiB;
    /// `None` = [`DEFAULT_CACHE_MIB`].
    pub cache_mib: Option<u32>,
}

/// The page cache per connection when not configured: sized for engines holding millions of
/// profiles (the engine benchmarks). An embedded engine next to a controller with a memory
/// budget sets less (`journey-operator run --engine-cache-mib`).
pub const DEFAULT_CACHE_MIB: u32 = 256;

pub struct SqliteStore {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({})", self.path.display())
    }
}

fn open_conn(path: &Path, opts: &SqliteOptions) -> Result<Connection> {
    let conn = Connection::open(path).ctx("open database")?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .ctx("busy timeout")?;
    let sync = if opts.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    let cache_kib = i64::from(opts.cache_mib.unwrap_or(DEFAULT_CACHE_MIB)) * 1024;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=OFF; PRAGMA cache_size=-{cache_kib}; PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=16384;"
    ))
    .ctx("set pragmas")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, opts: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut writer = open_conn(&path, &opts)?;
        migrate(&mut writer)?;
        let reader = open_conn(&path, &opts)?;
        Ok(Self {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn schema_version(&self) -> Result<i64> {
        let c = self
            .reader
            .lock()
            .map_err(|_| StoreError::Unavailable("sqlite reader mutex poisoned".into()))?;
        c.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .ctx("schema version")
    }
}

/// Runs `f` in one transaction on `conn`: a writer transaction (`BEGIN IMMEDIATE`, counters
/// flushed, committed) or a read snapshot (`BEGIN DEFERRED`, rolled back).
fn in_transaction<R, E: From<StoreError>>(
    conn: &Mutex<Connection>,
    write: bool,
    f: impl FnOnce(&mut dyn StoreTx) -> std::result::Result<R, E>,
) -> std::result::Result<R, E> {
    let mut c = conn
        .lock()
        .map_err(|_| StoreError::Unavailable("sqlite connection mutex poisoned".into()))?;
    let (behavior, begin) = if write {
        (TransactionBehavior::Immediate, "begin immediate")
    } else {
        (TransactionBehavior::Deferred, "begin read")
    };
    let tx = c.transaction_with_behavior(behavior).ctx(begin)?;
    let mut t = SqliteTx {
        tx,
        deltas: HashMap::new(),
    };
    let r = f(&mut t)?;
    if write {
        t.flush_counts()?;
        t.tx.commit().ctx("commit")?;
    } else {
        t.tx.rollback().ctx("end read")?;
    }
    Ok(r)
}

impl Store for SqliteStore {
    fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn StoreTx) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        in_transaction(&self.writer, true, f)
    }

    fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut dyn StoreTx) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        in_transaction(&self.reader, false, f)
    }
}

pub(super) struct SqliteTx<'c> {
    pub(super) tx: Transaction<'c>,
    /// Pending changes to `enrollment_counts`: (journey, epoch, state) -> delta.
    deltas: HashMap<(i64, i64, i64), i64>,
}

impl SqliteTx<'_> {
    fn delta(&mut self, journey_id: i64, epoch: i64, state: i64, n: i64) {
        *self.deltas.entry((journey_id, epoch, state)).or_insert(0) += n;
    }

    /// Tallies the rows selected by `filter` (a WHERE clause over enrollments
    /// using the given params) as leaving their state for `to`.
    fn tally_move(
        &mut self,
        journey_id: i64,
        filter: &str,
        params: &[&dyn rusqlite::ToSql],
        to: i64,
    ) -> Result<()> {
        let sql = format!(
            "SELECT epoch, state, COUNT(*) FROM enrollments WHERE {filter} GROUP BY epoch, state"
        );
        let rows: Vec<(i64, i64, i64)> = {
            let mut st = self.tx.prepare_cached(&sql).ctx("prepare tally")?;
            let rows = st
                .query_map(params, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .ctx("tally")?;
            rows.collect::<rusqlite::Result<Vec<_>>>().ctx("tally")?
        };
        for (epoch, state, n) in rows {
            if state != to {
                self.delta(journey_id, epoch, state, -n);
                self.delta(journey_id, epoch, to, n);
            }
        }
        Ok(())
    }

    fn flush_counts(&mut self) -> Result<()> {
        let deltas = std::mem::take(&mut self.deltas);
        for ((j, e, s), n) in deltas {
            if n == 0 {
                continue;
            }
            self.tx
                .prepare_cached(
                    "INSERT INTO enrollment_counts (journey_id, epoch, state, n) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (journey_id, epoch, state) DO UPDATE SET n = n + excluded.n",
                )
                .ctx("prepare counts")?
                .execute(params![j, e, s, n])
                .ctx("update counts")?;
        }
        Ok(())
    }
}

const ENR_COLS: &str = "id, journey_id, epoch, version, profile_seq, entry_no, step, state, due_at, wait_event, deadline_at, entered_at, updated_at, reason, hops, event_id";
/// How many columns [`ENR_COLS`] has: a query that selects more reads them from here on.
const ENR_COL_COUNT: usize = 16;

/// [`ENR_COLS`] qualified with the alias `e`, for queries that join enrollments.
fn enr_cols_aliased() -> &'static str {
    static COLS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    COLS.get_or_init(|| {
        ENR_COLS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

fn enr_from_row(r: &Row<'_>) -> rusqlite::Result<Enrollment> {
    let state: i64 = r.get(7)?;
    Ok(Enrollment {
        id: r.get(0)?,
        journey_id: r.get(1)?,
        epoch: r.get(2)?,
        version: r.get(3)?,
        profile_seq: r.get(4)?,
        entry_no: r.get(5)?,
        step: r.get(6)?,
        state: EnrollmentState::from_i64(state)
            .ok_or_else(|| rusqlite::Error::IntegralValueOutOfRange(7, state))?,
        due_at: r.get(8)?,
        wait_event: r.get(9)?,
        deadline_at: r.get(10)?,
        entered_at: r.get(11)?,
        updated_at: r.get(12)?,
        reason: r.get(13)?,
        hops: r.get(14)?,
        event_id: r.get(15)?,
    })
}

fn parse_attrs(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(json_err("profile attributes"))
}

fn profile_from(seq: i64, id: String, attrs: String) -> Result<Profile> {
    Ok(Profile {
        seq,
        id,
        attrs: parse_attrs(&attrs)?,
    })
}

fn state_list(states: &[EnrollmentState]) -> String {
    states
        .iter()
        .map(|s| (*s as i64).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enrollment_column_count_matches_the_column_list() {
        assert_eq!(ENR_COLS.split(", ").count(), ENR_COL_COUNT);
    }

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut st = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let rows = st
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan rows");
        rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("; ")
    }

    fn opcodes(conn: &Connection, sql: &str) -> Vec<String> {
        let mut st = conn.prepare(&format!("EXPLAIN {sql}")).expect("explain");
        let rows = st.query_map([], |r| r.get::<_, String>(1)).expect("ops");
        rows.map(|r| r.expect("row")).collect()
    }

    /// The webhook sender claims due deliveries every 200 ms: it must not scan an outbox of
    /// millions of recorded ones, and recording a delivery must not build a temporary b-tree.
    #[test]
    fn the_outbox_queries_use_their_partial_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("db")).expect("open");
        let conn = store.writer.lock().expect("writer");
        let claim = plan(
            &conn,
            "SELECT journey_id, epoch, profile_seq, step_key, entry_no FROM deliveries WHERE status = 1 AND next_attempt_at <= 5 ORDER BY next_attempt_at, created_at LIMIT 3",
        );
        assert!(claim.contains("INDEX del_pending_due"), "{claim}");
        for (from, index) in [(1, "del_pending_journey"), (2, "del_held_journey")] {
            let sql = format!(
                "UPDATE deliveries INDEXED BY {index} SET status = 4 WHERE journey_id = 7 AND status = {from}"
            );
            assert!(plan(&conn, &sql).contains(index), "{sql}");
        }
        let insert = opcodes(
            &conn,
            "INSERT OR IGNORE INTO deliveries (journey_id, epoch, profile_seq, step_key, entry_no, version, step_id, channel, destination, message, status, created_at) VALUES (1, 1, 1, 1, 1, 1, 'a', 'b', 'c', '{}', 0, 1)",
        );
        assert!(!insert.iter().any(|op| op == "OpenEphemeral"), "{insert:?}");
    }
}
