//! Versioned schema migrations. Each entry runs once, in order, inside a
//! transaction, and is recorded in `schema_migrations`.

use rusqlite::Connection;

use crate::error::SqlCtx;
use journey_store::Result;

pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE journeys (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    runtime TEXT NOT NULL
);
CREATE TABLE versions (
    journey_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (journey_id, version)
) WITHOUT ROWID;
CREATE TABLE profiles (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    attrs TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    profile_id TEXT NOT NULL,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE enrollments (
    id INTEGER PRIMARY KEY,
    journey_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    version INTEGER NOT NULL,
    profile_seq INTEGER NOT NULL,
    entry_no INTEGER NOT NULL,
    step INTEGER NOT NULL,
    state INTEGER NOT NULL,
    due_at INTEGER,
    wait_event TEXT,
    deadline_at INTEGER NOT NULL,
    entered_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    reason TEXT
);
CREATE UNIQUE INDEX enr_entry ON enrollments (journey_id, epoch, profile_seq, entry_no);
CREATE INDEX enr_due ON enrollments (journey_id, due_at) WHERE due_at IS NOT NULL;
CREATE INDEX enr_state ON enrollments (journey_id, state, id);
-- Swept by ranges (last sweep, now]: each row is visited once by the timeout sweep.
CREATE INDEX enr_deadline ON enrollments (journey_id, deadline_at);
CREATE TABLE deliveries (
    journey_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    profile_seq INTEGER NOT NULL,
    step_key INTEGER NOT NULL,
    entry_no INTEGER NOT NULL,
    version INTEGER NOT NULL,
    step_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    message TEXT NOT NULL,
    status INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (journey_id, epoch, profile_seq, step_key, entry_no)
) WITHOUT ROWID;
CREATE INDEX del_status ON deliveries (journey_id, status) WHERE status IN (1, 2);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    journey_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    entered INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL
);
CREATE INDEX runs_journey ON runs (journey_id, id);
CREATE TABLE handled_tokens (
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    token TEXT NOT NULL,
    PRIMARY KEY (key, kind)
) WITHOUT ROWID;
"#,
    ),
    (
        2,
        r#"
ALTER TABLE deliveries ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN last_error TEXT;
DROP INDEX del_status;
CREATE INDEX del_status ON deliveries (status, next_attempt_at) WHERE status IN (1, 2, 5);
"#,
    ),
    (
        3,
        r#"
CREATE TABLE enrollment_counts (
    journey_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    state INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (journey_id, epoch, state)
) WITHOUT ROWID;
INSERT INTO enrollment_counts (journey_id, epoch, state, n)
    SELECT journey_id, epoch, state, COUNT(*) FROM enrollments GROUP BY journey_id, epoch, state;
"#,
    ),
    (
        4,
        // The outbox indexes cover only the few rows the webhook sender and the lifecycle
        // look for. Each predicate is a single equality the queries repeat literally, which is
        // what SQLite needs to use a partial index (the old `status IN (1, 2, 5)` was never
        // used: the sender's claim scanned every delivery, and evaluating the IN list opened
        // a temporary b-tree on every delivery insert).
        r#"
DROP INDEX del_status;
CREATE INDEX del_pending_due ON deliveries (next_attempt_at, created_at) WHERE status = 1;
CREATE INDEX del_pending_journey ON deliveries (journey_id) WHERE status = 1;
CREATE INDEX del_held_journey ON deliveries (journey_id) WHERE status = 2;
CREATE INDEX del_sending ON deliveries (journey_id) WHERE status = 5;
"#,
    ),
    (
        5,
        // The visit number: a loop that passes the same action twice in one entry records two
        // deliveries. `hops` counts an entry's steps; an action's delivery carries it as its
        // `visit`. Existing deliveries keep visit 0, so the keys of those in flight do not
        // change; existing enrollments start at 1, so nothing they do from now on can take a
        // key an earlier delivery of theirs holds (a new entry starts at 0). The key is part of
        // the primary key, so the table is rebuilt.
        r#"
ALTER TABLE enrollments ADD COLUMN hops INTEGER NOT NULL DEFAULT 0;
UPDATE enrollments SET hops = 1;
CREATE TABLE deliveries_v5 (
    journey_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    profile_seq INTEGER NOT NULL,
    step_key INTEGER NOT NULL,
    entry_no INTEGER NOT NULL,
    visit INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL,
    step_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    message TEXT NOT NULL,
    status INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (journey_id, epoch, profile_seq, step_key, entry_no, visit)
) WITHOUT ROWID;
INSERT INTO deliveries_v5 (journey_id, epoch, profile_seq, step_key, entry_no, visit, version,
        step_id, channel, destination, message, status, created_at, attempts, next_attempt_at,
        last_error)
    SELECT journey_id, epoch, profile_seq, step_key, entry_no, 0, version, step_id, channel,
        destination, message, status, created_at, attempts, next_attempt_at, last_error
    FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v5 RENAME TO deliveries;
CREATE INDEX del_pending_due ON deliveries (next_attempt_at, created_at) WHERE status = 1;
CREATE INDEX del_pending_journey ON deliveries (journey_id) WHERE status = 1;
CREATE INDEX del_held_journey ON deliveries (journey_id) WHERE status = 2;
CREATE INDEX del_sending ON deliveries (journey_id) WHERE status = 5;
"#,
    ),
    (
        6,
        // The change feed: one engine-wide revision, each journey's latest change, and
        // tombstones for deletions. Existing journeys get distinct revisions so a reader
        // starting from 0 sees each of them once.
        r#"
ALTER TABLE journeys ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
ALTER TABLE journeys ADD COLUMN change_cause TEXT NOT NULL DEFAULT 'Engine';
UPDATE journeys SET revision = id;
CREATE INDEX journeys_revision ON journeys (revision);
CREATE TABLE feed_tombstones (
    key TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    cause TEXT NOT NULL,
    deleted_at INTEGER NOT NULL
);
CREATE INDEX feed_tombstones_revision ON feed_tombstones (revision);
CREATE TABLE feed_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    floor INTEGER NOT NULL,
    head INTEGER NOT NULL
);
INSERT INTO feed_meta (id, floor, head) VALUES (1, 0, (SELECT COALESCE(MAX(id), 0) FROM journeys));
-- Who the engine serves (the cluster id its first controller claimed).
CREATE TABLE engine_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"#,
    ),
    (
        7,
        // Message templates: the event an enrollment (and so its deliveries) read as `event`,
        // and each delivery's rendered message, stored once so a re-send sends the same bytes.
        r#"
ALTER TABLE enrollments ADD COLUMN event_id INTEGER;
ALTER TABLE deliveries ADD COLUMN event_id INTEGER;
ALTER TABLE deliveries ADD COLUMN rendered TEXT;
ALTER TABLE deliveries ADD COLUMN reason TEXT;
"#,
    ),
];

/// Applies pending migrations; returns the schema version.
pub fn migrate(conn: &mut Connection) -> Result<i64> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .ctx("create schema_migrations")?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .ctx("read schema version")?;
    let mut v = current;
    for (version, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx("begin migration")?;
        tx.execute_batch(sql).ctx("apply migration")?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, strftime('%s','now'))",
            [version],
        )
        .ctx("record migration")?;
        tx.commit().ctx("commit migration")?;
        v = *version;
    }
    Ok(v)
}
