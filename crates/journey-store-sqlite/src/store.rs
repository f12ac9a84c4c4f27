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
    Delivery, DeliveryFilter, DeliveryStatus, Enrollment, EnrollmentState, JourneyRow, Millis,
    Profile, Result, RunRecord, Store, StoreError, StoreTx,
};

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

const ENR_COLS: &str = "id, journey_id, epoch, version, profile_seq, entry_no, step, state, due_at, wait_event, deadline_at, entered_at, updated_at, reason, hops";
/// How many columns [`ENR_COLS`] has: a query that selects more reads them from here on.
const ENR_COL_COUNT: usize = 15;

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

impl StoreTx for SqliteTx<'_> {
    fn journey_for_update(&mut self, key: &str) -> Result<Option<JourneyRow>> {
        self.tx
            .prepare_cached("SELECT id, key, runtime FROM journeys WHERE key = ?1")
            .ctx("prepare journey")?
            .query_row([key], |r| {
                Ok(JourneyRow {
                    id: r.get(0)?,
                    key: r.get(1)?,
                    runtime: r.get(2)?,
                })
            })
            .optional()
            .ctx("read journey")
    }

    fn journey_by_id(&mut self, id: i64) -> Result<Option<JourneyRow>> {
        self.tx
            .prepare_cached("SELECT id, key, runtime FROM journeys WHERE id = ?1")
            .ctx("prepare journey")?
            .query_row([id], |r| {
                Ok(JourneyRow {
                    id: r.get(0)?,
                    key: r.get(1)?,
                    runtime: r.get(2)?,
                })
            })
            .optional()
            .ctx("read journey")
    }

    fn list_journey_keys(&mut self) -> Result<Vec<(i64, String)>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT id, key FROM journeys ORDER BY id")
            .ctx("prepare journey keys")?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("list journey keys")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .ctx("list journey keys")
    }

    fn list_journeys(&mut self) -> Result<Vec<JourneyRow>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT id, key, runtime FROM journeys ORDER BY id")
            .ctx("prepare journeys")?;
        let rows = st
            .query_map([], |r| {
                Ok(JourneyRow {
                    id: r.get(0)?,
                    key: r.get(1)?,
                    runtime: r.get(2)?,
                })
            })
            .ctx("list journeys")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .ctx("list journeys")
    }

    fn insert_journey(&mut self, key: &str, runtime: &str) -> Result<i64> {
        self.tx
            .execute(
                "INSERT INTO journeys (key, runtime) VALUES (?1, ?2)",
                params![key, runtime],
            )
            .ctx("insert journey")?;
        Ok(self.tx.last_insert_rowid())
    }

    fn save_runtime(&mut self, id: i64, runtime: &str) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE journeys SET runtime = ?2 WHERE id = ?1")
            .ctx("prepare save runtime")?
            .execute(params![id, runtime])
            .ctx("save runtime")?;
        Ok(())
    }

    fn delete_journey(&mut self, id: i64) -> Result<()> {
        for sql in [
            "DELETE FROM enrollments WHERE journey_id = ?1",
            "DELETE FROM deliveries WHERE journey_id = ?1",
            "DELETE FROM versions WHERE journey_id = ?1",
            "DELETE FROM runs WHERE journey_id = ?1",
            "DELETE FROM enrollment_counts WHERE journey_id = ?1",
            "DELETE FROM journeys WHERE id = ?1",
        ] {
            self.tx.execute(sql, [id]).ctx("delete journey")?;
        }
        Ok(())
    }

    fn latest_version(&mut self, journey_id: i64) -> Result<Option<(i64, String)>> {
        self.tx
            .prepare_cached(
                "SELECT version, hash FROM versions WHERE journey_id = ?1 ORDER BY version DESC LIMIT 1",
            )
            .ctx("prepare latest version")?
            .query_row([journey_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .ctx("latest version")
    }

    fn version_definition(&mut self, journey_id: i64, version: i64) -> Result<Option<String>> {
        self.tx
            .prepare_cached(
                "SELECT definition FROM versions WHERE journey_id = ?1 AND version = ?2",
            )
            .ctx("prepare version")?
            .query_row([journey_id, version], |r| r.get(0))
            .optional()
            .ctx("read version")
    }

    fn insert_version(
        &mut self,
        journey_id: i64,
        version: i64,
        hash: &str,
        definition: &str,
        at: Millis,
    ) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO versions (journey_id, version, hash, definition, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![journey_id, version, hash, definition, at],
            )
            .ctx("insert version")?;
        Ok(())
    }

    fn upsert_profile(
        &mut self,
        id: &str,
        attrs: &serde_json::Value,
        now: Millis,
    ) -> Result<(Profile, Option<serde_json::Value>)> {
        let text = serde_json::to_string(attrs).map_err(json_err("profile attributes"))?;
        let old: Option<(i64, String)> = self
            .tx
            .prepare_cached("SELECT seq, attrs FROM profiles WHERE id = ?1")
            .ctx("prepare profile")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .ctx("read profile")?;
        match old {
            Some((seq, old_attrs)) => {
                self.tx
                    .prepare_cached(
                        "UPDATE profiles SET attrs = ?2, updated_at = ?3 WHERE seq = ?1",
                    )
                    .ctx("prepare update profile")?
                    .execute(params![seq, text, now])
                    .ctx("update profile")?;
                Ok((
                    Profile {
                        seq,
                        id: id.to_string(),
                        attrs: attrs.clone(),
                    },
                    Some(parse_attrs(&old_attrs)?),
                ))
            }
            None => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO profiles (id, attrs, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                    )
                    .ctx("prepare insert profile")?
                    .execute(params![id, text, now])
                    .ctx("insert profile")?;
                Ok((
                    Profile {
                        seq: self.tx.last_insert_rowid(),
                        id: id.to_string(),
                        attrs: attrs.clone(),
                    },
                    None,
                ))
            }
        }
    }

    fn profile_by_id(&mut self, id: &str) -> Result<Option<Profile>> {
        let row: Option<(i64, String, String)> = self
            .tx
            .prepare_cached("SELECT seq, id, attrs FROM profiles WHERE id = ?1")
            .ctx("prepare profile")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .ctx("read profile")?;
        row.map(|(s, i, a)| profile_from(s, i, a)).transpose()
    }

    fn profile_by_seq(&mut self, seq: i64) -> Result<Option<Profile>> {
        let row: Option<(i64, String, String)> = self
            .tx
            .prepare_cached("SELECT seq, id, attrs FROM profiles WHERE seq = ?1")
            .ctx("prepare profile")?
            .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .ctx("read profile")?;
        row.map(|(s, i, a)| profile_from(s, i, a)).transpose()
    }

    fn scan_profiles(&mut self, after: i64, upto: i64, limit: i64) -> Result<Vec<Profile>> {
        let mut st = self
            .tx
            .prepare_cached(
                "SELECT seq, id, attrs FROM profiles WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
            )
            .ctx("prepare scan")?;
        let rows = st
            .query_map(params![after, upto, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .ctx("scan profiles")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("scan profiles")?;
        rows.into_iter()
            .map(|(s, i, a)| profile_from(s, i, a))
            .collect()
    }

    fn max_profile_seq(&mut self) -> Result<i64> {
        self.tx
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM profiles", [], |r| {
                r.get(0)
            })
            .ctx("max profile seq")
    }

    fn insert_event(
        &mut self,
        profile_id: &str,
        name: &str,
        payload: &serde_json::Value,
        at: Millis,
    ) -> Result<i64> {
        let text = serde_json::to_string(payload).map_err(json_err("event payload"))?;
        self.tx
            .prepare_cached(
                "INSERT INTO events (profile_id, name, payload, at) VALUES (?1, ?2, ?3, ?4)",
            )
            .ctx("prepare event")?
            .execute(params![profile_id, name, text, at])
            .ctx("insert event")?;
        Ok(self.tx.last_insert_rowid())
    }

    fn insert_enrollment(&mut self, e: &Enrollment) -> Result<i64> {
        self.tx
            .prepare_cached(
                "INSERT INTO enrollments (journey_id, epoch, version, profile_seq, entry_no, step, state, due_at, wait_event, deadline_at, entered_at, updated_at, reason, hops) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .ctx("prepare insert enrollment")?
            .execute(params![
                e.journey_id,
                e.epoch,
                e.version,
                e.profile_seq,
                e.entry_no,
                e.step,
                e.state as i64,
                e.due_at,
                e.wait_event,
                e.deadline_at,
                e.entered_at,
                e.updated_at,
                e.reason,
                e.hops
            ])
            .ctx("insert enrollment")?;
        self.delta(e.journey_id, e.epoch, e.state as i64, 1);
        Ok(self.tx.last_insert_rowid())
    }

    fn update_enrollment(&mut self, e: &Enrollment, old_state: EnrollmentState) -> Result<()> {
        if old_state != e.state {
            self.delta(e.journey_id, e.epoch, old_state as i64, -1);
            self.delta(e.journey_id, e.epoch, e.state as i64, 1);
        }
        self.tx
            .prepare_cached(
                "UPDATE enrollments SET version = ?2, step = ?3, state = ?4, due_at = ?5, wait_event = ?6, updated_at = ?7, reason = ?8, hops = ?9 WHERE id = ?1",
            )
            .ctx("prepare update enrollment")?
            .execute(params![
                e.id,
                e.version,
                e.step,
                e.state as i64,
                e.due_at,
                e.wait_event,
                e.updated_at,
                e.reason,
                e.hops
            ])
            .ctx("update enrollment")?;
        Ok(())
    }

    fn due_enrollments(
        &mut self,
        journey_id: i64,
        now: Millis,
        active_only: bool,
        limit: i64,
    ) -> Result<Vec<(Enrollment, String)>> {
        let cols = enr_cols_aliased();
        let state = if active_only { " AND e.state = 0" } else { "" };
        let sql = format!(
            "SELECT {cols}, COALESCE(p.attrs, 'null') FROM enrollments e INDEXED BY enr_due \
             LEFT JOIN profiles p ON p.seq = e.profile_seq \
             WHERE e.journey_id = ?1 AND e.due_at IS NOT NULL AND e.due_at <= ?2{state} \
             ORDER BY e.due_at, e.id LIMIT ?3"
        );
        let mut st = self.tx.prepare_cached(&sql).ctx("prepare due")?;
        let rows = st
            .query_map(params![journey_id, now, limit], |r| {
                Ok((enr_from_row(r)?, r.get::<_, String>(ENR_COL_COUNT)?))
            })
            .ctx("due enrollments")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .ctx("due enrollments")
    }

    fn next_due(&mut self, journey_id: i64, active_only: bool) -> Result<Option<Millis>> {
        let sql = if active_only {
            "SELECT MIN(due_at) FROM enrollments INDEXED BY enr_due WHERE journey_id = ?1 AND due_at IS NOT NULL AND state = 0"
        } else {
            "SELECT MIN(due_at) FROM enrollments INDEXED BY enr_due WHERE journey_id = ?1 AND due_at IS NOT NULL"
        };
        self.tx
            .prepare_cached(sql)
            .ctx("prepare next due")?
            .query_row([journey_id], |r| r.get(0))
            .ctx("next due")
    }

    fn due_backlog(&mut self, journey_id: i64, now: Millis) -> Result<(i64, Option<Millis>)> {
        self.tx
            .prepare_cached(
                "SELECT COUNT(*), MIN(due_at) FROM enrollments INDEXED BY enr_due WHERE journey_id = ?1 AND due_at IS NOT NULL AND due_at <= ?2",
            )
            .ctx("prepare due backlog")?
            .query_row(params![journey_id, now], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("due backlog")
    }

    fn next_deadline(&mut self, journey_id: i64, after: Millis) -> Result<Option<Millis>> {
        self.tx
            .prepare_cached(
                "SELECT MIN(deadline_at) FROM enrollments INDEXED BY enr_deadline WHERE journey_id = ?1 AND deadline_at > ?2",
            )
            .ctx("prepare next deadline")?
            .query_row(params![journey_id, after], |r| r.get(0))
            .ctx("next deadline")
    }

    fn last_entry(
        &mut self,
        journey_id: i64,
        epoch: i64,
        profile_seq: i64,
    ) -> Result<Option<Enrollment>> {
        let sql = format!(
            "SELECT {ENR_COLS} FROM enrollments WHERE journey_id = ?1 AND epoch = ?2 AND profile_seq = ?3 ORDER BY entry_no DESC LIMIT 1"
        );
        self.tx
            .prepare_cached(&sql)
            .ctx("prepare last entry")?
            .query_row(params![journey_id, epoch, profile_seq], enr_from_row)
            .optional()
            .ctx("last entry")
    }

    fn live_enrollments_of(
        &mut self,
        journey_id: i64,
        epoch: i64,
        profile_seq: i64,
    ) -> Result<Vec<Enrollment>> {
        let sql = format!(
            "SELECT {ENR_COLS} FROM enrollments WHERE journey_id = ?1 AND epoch = ?2 AND profile_seq = ?3 AND state < 4 ORDER BY id"
        );
        let mut st = self.tx.prepare_cached(&sql).ctx("prepare live of")?;
        let rows = st
            .query_map(params![journey_id, epoch, profile_seq], enr_from_row)
            .ctx("live enrollments")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .ctx("live enrollments")
    }

    fn inflight_attrs_page(
        &mut self,
        journey_id: i64,
        epoch: i64,
        state: EnrollmentState,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, serde_json::Value)>> {
        // enr_state (journey_id, state, id) drives the scan; epoch is a filter because older
        // epochs hold no non-terminal rows (a restart exits them).
        let mut st = self
            .tx
            .prepare_cached(
                "SELECT e.id, p.attrs FROM enrollments e JOIN profiles p ON p.seq = e.profile_seq \
                 WHERE e.journey_id = ?1 AND e.state = ?2 AND e.id > ?3 AND e.epoch = ?4 \
                 ORDER BY e.id LIMIT ?5",
            )
            .ctx("prepare inflight attrs")?;
        let rows = st
            .query_map(
                params![journey_id, state as i64, after_id, epoch, limit],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .ctx("inflight attrs")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("inflight attrs")?;
        rows.into_iter()
            .map(|(id, attrs)| Ok((id, parse_attrs(&attrs)?)))
            .collect()
    }

    fn list_enrollments(
        &mut self,
        journey_id: i64,
        profile: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(Enrollment, String)>> {
        let sql = format!(
            "SELECT {}, p.id FROM enrollments e JOIN profiles p ON p.seq = e.profile_seq \
             WHERE e.journey_id = ?1 AND e.id > ?2 AND (?3 IS NULL OR p.id = ?3) ORDER BY e.id LIMIT ?4",
            enr_cols_aliased()
        );
        let mut st = self
            .tx
            .prepare_cached(&sql)
            .ctx("prepare list enrollments")?;
        let rows = st
            .query_map(rusqlite::params![journey_id, after, profile, limit], |r| {
                Ok((enr_from_row(r)?, r.get::<_, String>(ENR_COL_COUNT)?))
            })
            .ctx("list enrollments")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .ctx("list enrollments")
    }

    fn count_states(&mut self, journey_id: i64, epoch: i64) -> Result<Vec<(EnrollmentState, i64)>> {
        self.flush_counts()?;
        let mut out = Vec::new();
        let mut st = self
            .tx
            .prepare_cached(
                "SELECT state, n FROM enrollment_counts WHERE journey_id = ?1 AND epoch = ?2 AND n != 0 ORDER BY state",
            )
            .ctx("prepare counts")?;
        let rows = st
            .query_map([journey_id, epoch], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .ctx("counts")?;
        for r in rows {
            let (s, n) = r.ctx("counts")?;
            if let Some(s) = EnrollmentState::from_i64(s) {
                out.push((s, n));
            }
        }
        drop(st);
        #[cfg(debug_assertions)]
        {
            // Cross-check the maintained counters against the rows (debug builds,
            // i.e. every test): the counters must never drift.
            let mut st = self
                .tx
                .prepare(
                    "SELECT state, COUNT(*) FROM enrollments WHERE journey_id = ?1 AND epoch = ?2 GROUP BY state ORDER BY state",
                )
                .ctx("prepare recount")?;
            let rows = st
                .query_map([journey_id, epoch], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })
                .ctx("recount")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("recount")?;
            let counted: Vec<(i64, i64)> = out.iter().map(|(s, n)| (*s as i64, *n)).collect();
            debug_assert_eq!(counted, rows, "enrollment counters drifted");
        }
        Ok(out)
    }

    fn count_state_all_journeys(&mut self, state: EnrollmentState) -> Result<i64> {
        self.flush_counts()?;
        self.tx
            .prepare_cached("SELECT COALESCE(SUM(n), 0) FROM enrollment_counts WHERE state = ?1")
            .ctx("prepare count all")?
            .query_row([state as i64], |r| r.get(0))
            .ctx("count all")
    }

    fn count_nonterminal(&mut self, journey_id: i64) -> Result<i64> {
        self.flush_counts()?;
        self.tx
            .prepare_cached(
                "SELECT COALESCE(SUM(n), 0) FROM enrollment_counts WHERE journey_id = ?1 AND state IN (0,1,2,3)",
            )
            .ctx("prepare count nonterminal")?
            .query_row([journey_id], |r| r.get(0))
            .ctx("count nonterminal")
    }

    fn expire_deadlines(
        &mut self,
        journey_id: i64,
        after: Millis,
        now: Millis,
        reason: &str,
    ) -> Result<i64> {
        self.tally_move(
            journey_id,
            "journey_id = ?1 AND deadline_at > ?3 AND deadline_at <= ?2 AND state < 3",
            &[&journey_id, &now, &after],
            EnrollmentState::Exited as i64,
        )?;
        let n = self
            .tx
            .prepare_cached(
                "UPDATE enrollments SET state = 6, due_at = NULL, reason = ?3, updated_at = ?2 WHERE journey_id = ?1 AND deadline_at > ?4 AND deadline_at <= ?2 AND state < 3",
            )
            .ctx("prepare expire")?
            .execute(params![journey_id, now, reason, after])
            .ctx("expire deadlines")?;
        Ok(n as i64)
    }

    fn release_held(&mut self, journey_id: i64, limit: i64, now: Millis) -> Result<i64> {
        let epochs: Vec<i64> = {
            let mut st = self
                .tx
                .prepare_cached(
                    "UPDATE enrollments SET state = 0, due_at = ?3, updated_at = ?3 WHERE id IN (SELECT id FROM enrollments WHERE journey_id = ?1 AND state = 2 ORDER BY id LIMIT ?2) RETURNING epoch",
                )
                .ctx("prepare release")?;
            let rows = st
                .query_map(params![journey_id, limit, now], |r| r.get(0))
                .ctx("release held")?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .ctx("release held")?
        };
        let mut per_epoch: HashMap<i64, i64> = HashMap::new();
        for e in &epochs {
            *per_epoch.entry(*e).or_insert(0) += 1;
        }
        for (e, n) in per_epoch {
            self.delta(journey_id, e, EnrollmentState::Held as i64, -n);
            self.delta(journey_id, e, EnrollmentState::Active as i64, n);
        }
        Ok(epochs.len() as i64)
    }

    fn transition_all(
        &mut self,
        journey_id: i64,
        from: &[EnrollmentState],
        to: EnrollmentState,
        reason: &str,
        now: Millis,
    ) -> Result<i64> {
        let filter = format!("journey_id = ?1 AND state IN ({})", state_list(from));
        self.tally_move(journey_id, &filter, &[&journey_id], to as i64)?;
        let sql = format!(
            "UPDATE enrollments SET state = ?2, due_at = NULL, reason = ?3, updated_at = ?4 WHERE {filter}"
        );
        let n = self
            .tx
            .execute(&sql, params![journey_id, to as i64, reason, now])
            .ctx("transition all")?;
        Ok(n as i64)
    }

    fn admit_queued(
        &mut self,
        journey_id: i64,
        now: Millis,
        timeout_ms: i64,
        version: i64,
    ) -> Result<i64> {
        self.tally_move(
            journey_id,
            "journey_id = ?1 AND state = 3",
            &[&journey_id],
            EnrollmentState::Active as i64,
        )?;
        let n = self
            .tx
            .execute(
                "UPDATE enrollments SET state = 0, step = 0, version = ?4, due_at = ?2, entered_at = ?2, deadline_at = ?2 + ?3, updated_at = ?2 WHERE journey_id = ?1 AND state = 3",
                params![journey_id, now, timeout_ms, version],
            )
            .ctx("admit queued")?;
        Ok(n as i64)
    }

    fn extend_waits(&mut self, journey_id: i64, pause_since: Millis, now: Millis) -> Result<i64> {
        let n = self
            .tx
            .execute(
                "UPDATE enrollments SET due_at = due_at + (?3 - MAX(?2, updated_at)) WHERE journey_id = ?1 AND state = 1 AND due_at IS NOT NULL",
                params![journey_id, pause_since, now],
            )
            .ctx("extend waits")?;
        Ok(n as i64)
    }

    fn migrate_step(
        &mut self,
        journey_id: i64,
        from_version: i64,
        from_step: i64,
        to_version: i64,
        to_step: Option<i64>,
        wait_event: Option<&str>,
        reason: &str,
        now: Millis,
    ) -> Result<i64> {
        let n = match to_step {
            Some(s) => self
                .tx
                .execute(
                    "UPDATE enrollments SET version = ?4, step = ?5, wait_event = CASE WHEN wait_event IS NULL THEN NULL ELSE ?6 END, updated_at = updated_at WHERE journey_id = ?1 AND version = ?2 AND step = ?3 AND state < 4",
                    params![journey_id, from_version, from_step, to_version, s, wait_event],
                )
                .ctx("migrate step")?,
            None => {
                self.tally_move(
                    journey_id,
                    "journey_id = ?1 AND version = ?2 AND step = ?3 AND state < 4",
                    &[&journey_id, &from_version, &from_step],
                    EnrollmentState::Exited as i64,
                )?;
                self.tx
                    .execute(
                        "UPDATE enrollments SET state = 6, due_at = NULL, reason = ?4, updated_at = ?5 WHERE journey_id = ?1 AND version = ?2 AND step = ?3 AND state < 4",
                        params![journey_id, from_version, from_step, reason, now],
                    )
                    .ctx("migrate removed step")?
            }
        };
        Ok(n as i64)
    }

    fn live_versions(&mut self, journey_id: i64) -> Result<Vec<i64>> {
        let mut st = self
            .tx
            .prepare_cached(
                "SELECT DISTINCT version FROM enrollments WHERE journey_id = ?1 AND state IN (0,1,2,3)",
            )
            .ctx("prepare live versions")?;
        let rows = st
            .query_map([journey_id], |r| r.get(0))
            .ctx("live versions")?;
        rows.collect::<rusqlite::Result<Vec<i64>>>()
            .ctx("live versions")
    }

    fn insert_delivery(&mut self, d: &Delivery) -> Result<bool> {
        let msg = serde_json::to_string(&d.message).map_err(json_err("delivery message"))?;
        let n = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO deliveries (journey_id, epoch, profile_seq, step_key, entry_no, visit, version, step_id, channel, destination, message, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .ctx("prepare delivery")?
            .execute(params![
                d.journey_id,
                d.epoch,
                d.profile_seq,
                d.step_key,
                d.entry_no,
                d.visit,
                d.version,
                d.step_id,
                d.channel,
                d.destination,
                msg,
                d.status as i64,
                d.created_at
            ])
            .ctx("insert delivery")?;
        Ok(n == 1)
    }

    fn set_delivery_status(
        &mut self,
        journey_id: i64,
        from: DeliveryStatus,
        to: DeliveryStatus,
    ) -> Result<i64> {
        // Literal statuses (enum discriminants, not input) so the partial indexes
        // `WHERE status = 1` / `WHERE status = 2` apply; a bound parameter would not match them.
        let index = match from {
            DeliveryStatus::Pending => " INDEXED BY del_pending_journey",
            DeliveryStatus::Held => " INDEXED BY del_held_journey",
            _ => "",
        };
        let sql = format!(
            "UPDATE deliveries{index} SET status = {} WHERE journey_id = ?1 AND status = {}",
            to as i64, from as i64
        );
        let n = self
            .tx
            .prepare_cached(&sql)
            .ctx("prepare set delivery status")?
            .execute(params![journey_id])
            .ctx("set delivery status")?;
        Ok(n as i64)
    }

    fn list_deliveries(&mut self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        let mut st = self
            .tx
            .prepare_cached(
                "SELECT d.journey_id, d.epoch, d.profile_seq, d.step_key, d.entry_no, d.version, d.step_id, COALESCE(p.id, ''), d.channel, d.destination, d.message, d.status, d.created_at, d.visit
                 FROM deliveries d LEFT JOIN profiles p ON p.seq = d.profile_seq
                 WHERE (?1 IS NULL OR d.journey_id = ?1) AND (?2 IS NULL OR p.id = ?2)
                 ORDER BY d.created_at, d.journey_id, d.profile_seq LIMIT ?3",
            )
            .ctx("prepare list deliveries")?;
        let rows = st
            .query_map(
                params![
                    filter.journey_id,
                    filter.profile_id,
                    filter.limit.unwrap_or(-1)
                ],
                |r| {
                    Ok((
                        Delivery {
                            journey_id: r.get(0)?,
                            epoch: r.get(1)?,
                            profile_seq: r.get(2)?,
                            step_key: r.get(3)?,
                            entry_no: r.get(4)?,
                            visit: r.get(13)?,
                            version: r.get(5)?,
                            step_id: r.get(6)?,
                            profile_id: r.get(7)?,
                            channel: r.get(8)?,
                            destination: r.get(9)?,
                            message: serde_json::Value::Null,
                            status: DeliveryStatus::Recorded,
                            created_at: r.get(12)?,
                        },
                        r.get::<_, String>(10)?,
                        r.get::<_, i64>(11)?,
                    ))
                },
            )
            .ctx("list deliveries")?;
        let mut out = Vec::new();
        for row in rows {
            let (mut d, msg, status) = row.ctx("list deliveries")?;
            d.message = serde_json::from_str(&msg).map_err(json_err("delivery message"))?;
            d.status = DeliveryStatus::from_i64(status).ok_or(StoreError::Corrupt {
                context: "delivery status",
                message: status.to_string(),
            })?;
            out.push(d);
        }
        Ok(out)
    }

    fn count_deliveries(&mut self, journey_id: i64) -> Result<i64> {
        self.tx
            .prepare_cached("SELECT COUNT(*) FROM deliveries WHERE journey_id = ?1")
            .ctx("prepare count deliveries")?
            .query_row([journey_id], |r| r.get(0))
            .ctx("count deliveries")
    }

    fn outbox_backlog(&mut self) -> Result<Vec<(String, DeliveryStatus, i64)>> {
        // One query per status, each with the literal equality of its partial index: the scan
        // is as long as that part of the backlog.
        let queries = [
            (
                DeliveryStatus::Pending,
                "SELECT destination, COUNT(*) FROM deliveries INDEXED BY del_pending_journey WHERE status = 1 GROUP BY destination",
            ),
            (
                DeliveryStatus::Held,
                "SELECT destination, COUNT(*) FROM deliveries INDEXED BY del_held_journey WHERE status = 2 GROUP BY destination",
            ),
            (
                DeliveryStatus::Sending,
                "SELECT destination, COUNT(*) FROM deliveries INDEXED BY del_sending WHERE status = 5 GROUP BY destination",
            ),
        ];
        let mut out = Vec::new();
        for (status, sql) in queries {
            let mut st = self.tx.prepare_cached(sql).ctx("prepare outbox backlog")?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .ctx("outbox backlog")?;
            for row in rows {
                let (destination, n) = row.ctx("outbox backlog")?;
                out.push((destination, status, n));
            }
        }
        out.sort_by(|a, b| (&a.0, a.1 as i64).cmp(&(&b.0, b.1 as i64)));
        Ok(out)
    }

    fn claim_webhook_deliveries(&mut self, now: Millis, limit: i64) -> Result<Vec<Delivery>> {
        let keys: Vec<(i64, i64, i64, i64, i64, i64)> = {
            let mut st = self
                .tx
                .prepare_cached(
                    "SELECT journey_id, epoch, profile_seq, step_key, entry_no, visit FROM deliveries WHERE status = 1 AND next_attempt_at <= ?1 ORDER BY next_attempt_at, created_at LIMIT ?2",
                )
                .ctx("prepare claim")?;
            let rows = st
                .query_map(params![now, limit], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .ctx("claim")?;
            rows.collect::<rusqlite::Result<Vec<_>>>().ctx("claim")?
        };
        let mut out = Vec::with_capacity(keys.len());
        for (j, e, p, s, n, v) in keys {
            self.tx
                .prepare_cached(
                    "UPDATE deliveries SET status = 5 WHERE journey_id = ?1 AND epoch = ?2 AND profile_seq = ?3 AND step_key = ?4 AND entry_no = ?5 AND visit = ?6",
                )
                .ctx("prepare claim update")?
                .execute(params![j, e, p, s, n, v])
                .ctx("claim update")?;
            let row = self
                .tx
                .prepare_cached(
                    "SELECT d.version, d.step_id, COALESCE(pr.id, ''), d.channel, d.destination, d.message, d.created_at FROM deliveries d LEFT JOIN profiles pr ON pr.seq = d.profile_seq WHERE d.journey_id = ?1 AND d.epoch = ?2 AND d.profile_seq = ?3 AND d.step_key = ?4 AND d.entry_no = ?5 AND d.visit = ?6",
                )
                .ctx("prepare claim read")?
                .query_row(params![j, e, p, s, n, v], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                })
                .ctx("claim read")?;
            out.push(Delivery {
                journey_id: j,
                epoch: e,
                profile_seq: p,
                step_key: s,
                entry_no: n,
                visit: v,
                version: row.0,
                step_id: row.1,
                profile_id: row.2,
                channel: row.3,
                destination: row.4,
                message: serde_json::from_str(&row.5).map_err(json_err("delivery message"))?,
                status: DeliveryStatus::Sending,
                created_at: row.6,
            });
        }
        Ok(out)
    }

    fn finish_attempt(
        &mut self,
        d: &Delivery,
        status: DeliveryStatus,
        next_attempt_at: Millis,
        error: Option<&str>,
        counted: bool,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE deliveries SET status = ?6, attempts = attempts + ?9, next_attempt_at = ?7, last_error = ?8 WHERE journey_id = ?1 AND epoch = ?2 AND profile_seq = ?3 AND step_key = ?4 AND entry_no = ?5 AND visit = ?10 AND status = 5",
            )
            .ctx("prepare finish attempt")?
            .execute(params![
                d.journey_id,
                d.epoch,
                d.profile_seq,
                d.step_key,
                d.entry_no,
                status as i64,
                next_attempt_at,
                error,
                i64::from(counted),
                d.visit
            ])
            .ctx("finish attempt")?;
        Ok(())
    }

    fn delivery_attempts(&mut self, d: &Delivery) -> Result<i64> {
        self.tx
            .prepare_cached(
                "SELECT attempts FROM deliveries WHERE journey_id = ?1 AND epoch = ?2 AND profile_seq = ?3 AND step_key = ?4 AND entry_no = ?5 AND visit = ?6",
            )
            .ctx("prepare attempts")?
            .query_row(
                params![
                    d.journey_id,
                    d.epoch,
                    d.profile_seq,
                    d.step_key,
                    d.entry_no,
                    d.visit
                ],
                |r| r.get(0),
            )
            .optional()
            .ctx("attempts")
            .map(|v| v.unwrap_or(0))
    }

    fn reset_sending(&mut self) -> Result<i64> {
        let n = self
            .tx
            .execute("UPDATE deliveries SET status = 1 WHERE status = 5", [])
            .ctx("reset sending")?;
        Ok(n as i64)
    }

    fn insert_run(&mut self, journey_id: i64, kind: &str, started_at: Millis) -> Result<i64> {
        self.tx
            .execute(
                "INSERT INTO runs (journey_id, kind, started_at, outcome) VALUES (?1, ?2, ?3, 'Running')",
                params![journey_id, kind, started_at],
            )
            .ctx("insert run")?;
        Ok(self.tx.last_insert_rowid())
    }

    fn update_run(
        &mut self,
        run_id: i64,
        ended_at: Option<Millis>,
        entered: i64,
        outcome: &str,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE runs SET ended_at = ?2, entered = ?3, outcome = ?4 WHERE id = ?1",
            )
            .ctx("prepare update run")?
            .execute(params![run_id, ended_at, entered, outcome])
            .ctx("update run")?;
        Ok(())
    }

    fn list_runs(&mut self, journey_id: i64, limit: i64) -> Result<Vec<RunRecord>> {
        let mut st = self
            .tx
            .prepare_cached(
                "SELECT id, kind, started_at, ended_at, entered, outcome FROM runs WHERE journey_id = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .ctx("prepare runs")?;
        let rows = st
            .query_map([journey_id, limit], |r| {
                Ok(RunRecord {
                    run_id: r.get(0)?,
                    kind: r.get(1)?,
                    started_at: r.get(2)?,
                    ended_at: r.get(3)?,
                    entered: r.get(4)?,
                    outcome: r.get(5)?,
                })
            })
            .ctx("runs")?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx("runs")
    }

    fn handled_token(&mut self, key: &str, kind: &str) -> Result<Option<String>> {
        self.tx
            .prepare_cached("SELECT token FROM handled_tokens WHERE key = ?1 AND kind = ?2")
            .ctx("prepare token")?
            .query_row([key, kind], |r| r.get(0))
            .optional()
            .ctx("read token")
    }

    fn set_handled_token(&mut self, key: &str, kind: &str, token: &str) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO handled_tokens (key, kind, token) VALUES (?1, ?2, ?3) ON CONFLICT (key, kind) DO UPDATE SET token = excluded.token",
                params![key, kind, token],
            )
            .ctx("set token")?;
        Ok(())
    }
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
