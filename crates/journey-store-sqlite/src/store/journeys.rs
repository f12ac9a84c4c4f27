//! Journeys and their definition versions on SQLite.

use super::*;

/// A `SELECT id, key, runtime FROM journeys` row.
fn journey_row(r: &Row<'_>) -> rusqlite::Result<JourneyRow> {
    Ok(JourneyRow {
        id: r.get(0)?,
        key: r.get(1)?,
        runtime: r.get(2)?,
    })
}

impl JourneyTx for SqliteTx<'_> {
    fn journey_for_update(&mut self, key: &str) -> Result<Option<JourneyRow>> {
        self.tx
            .prepare_cached("SELECT id, key, runtime FROM journeys WHERE key = ?1")
            .ctx("prepare journey")?
            .query_row([key], journey_row)
            .optional()
            .ctx("read journey")
    }
    fn journey_by_id(&mut self, id: i64) -> Result<Option<JourneyRow>> {
        self.tx
            .prepare_cached("SELECT id, key, runtime FROM journeys WHERE id = ?1")
            .ctx("prepare journey")?
            .query_row([id], journey_row)
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
        let rows = st.query_map([], journey_row).ctx("list journeys")?;
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
}
