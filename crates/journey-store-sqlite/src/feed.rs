//! The change feed on SQLite. The single writer assigns revisions in commit order, so a reader
//! that continues from the last revision it saw cannot skip a change committed after its read.

use rusqlite::params;

use crate::error::SqlCtx;
use crate::store::SqliteTx;
use journey_store::{ChangeCause, FeedChange, FeedTx, Millis, Result, StoreError};

impl SqliteTx<'_> {
    fn next_revision(&mut self) -> Result<i64> {
        self.tx
            .prepare_cached("UPDATE feed_meta SET head = head + 1 WHERE id = 1 RETURNING head")
            .ctx("prepare next revision")?
            .query_row([], |r| r.get(0))
            .ctx("next revision")
    }
}

impl FeedTx for SqliteTx<'_> {
    fn record_change(&mut self, key: &str, cause: ChangeCause) -> Result<i64> {
        let revision = self.next_revision()?;
        self.tx
            .prepare_cached("UPDATE journeys SET revision = ?2, change_cause = ?3 WHERE key = ?1")
            .ctx("prepare record change")?
            .execute(params![key, revision, cause.as_str()])
            .ctx("record change")?;
        Ok(revision)
    }

    fn record_deletion(&mut self, key: &str, cause: ChangeCause, at: Millis) -> Result<i64> {
        let revision = self.next_revision()?;
        self.tx
            .prepare_cached(
                "INSERT INTO feed_tombstones (key, revision, cause, deleted_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET revision = excluded.revision,
                     cause = excluded.cause, deleted_at = excluded.deleted_at",
            )
            .ctx("prepare tombstone")?
            .execute(params![key, revision, cause.as_str(), at])
            .ctx("record tombstone")?;
        Ok(revision)
    }

    fn changes_since(&mut self, since: i64, limit: i64) -> Result<Vec<FeedChange>> {
        let mut st = self
            .tx
            .prepare_cached(
                "SELECT key, revision, change_cause, 0 FROM journeys WHERE revision > ?1
                 UNION ALL
                 SELECT t.key, t.revision, t.cause, 1 FROM feed_tombstones t
                     WHERE t.revision > ?1
                       AND NOT EXISTS (SELECT 1 FROM journeys j
                                       WHERE j.key = t.key AND j.revision > t.revision)
                 ORDER BY 2 LIMIT ?2",
            )
            .ctx("prepare changes since")?;
        let rows = st
            .query_map(params![since, limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)? == 1,
                ))
            })
            .ctx("changes since")?;
        let mut out = Vec::new();
        for row in rows {
            let (key, revision, cause, deleted) = row.ctx("changes since")?;
            let cause = ChangeCause::parse(&cause).ok_or_else(|| StoreError::Corrupt {
                context: "change feed",
                message: format!("unknown change cause {cause:?}"),
            })?;
            // A journey deleted and created again is listed once, at its newest change.
            if deleted && out.iter().any(|c: &FeedChange| c.key == key) {
                continue;
            }
            out.push(FeedChange {
                key,
                revision,
                cause,
                deleted,
            });
        }
        Ok(out)
    }

    fn journey_revision(&mut self, key: &str) -> Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        self.tx
            .prepare_cached("SELECT revision FROM journeys WHERE key = ?1")
            .ctx("prepare journey revision")?
            .query_row([key], |r| r.get(0))
            .optional()
            .ctx("journey revision")
    }

    fn engine_meta(&mut self, key: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        self.tx
            .prepare_cached("SELECT value FROM engine_meta WHERE key = ?1")
            .ctx("prepare engine meta")?
            .query_row([key], |r| r.get(0))
            .optional()
            .ctx("engine meta")
    }

    fn set_engine_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO engine_meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .ctx("set engine meta")?;
        Ok(())
    }

    fn feed_bounds(&mut self) -> Result<(i64, i64)> {
        self.tx
            .prepare_cached("SELECT floor, head FROM feed_meta WHERE id = 1")
            .ctx("prepare feed bounds")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("feed bounds")
    }

    fn purge_tombstones(&mut self, before: Millis) -> Result<u64> {
        let newest: Option<i64> = self
            .tx
            .prepare_cached("SELECT MAX(revision) FROM feed_tombstones WHERE deleted_at < ?1")
            .ctx("prepare purge tombstones")?
            .query_row([before], |r| r.get(0))
            .ctx("newest expired tombstone")?;
        let Some(newest) = newest else {
            return Ok(0);
        };
        let n = self
            .tx
            .execute(
                "DELETE FROM feed_tombstones WHERE deleted_at < ?1",
                [before],
            )
            .ctx("purge tombstones")?;
        self.tx
            .execute(
                "UPDATE feed_meta SET floor = MAX(floor, ?1) WHERE id = 1",
                [newest],
            )
            .ctx("raise feed floor")?;
        Ok(n as u64)
    }
}
