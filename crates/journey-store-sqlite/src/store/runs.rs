//! Runs and handled request tokens on SQLite.

use super::*;

impl RunTx for SqliteTx<'_> {
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
