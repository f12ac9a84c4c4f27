//! Enrollments on SQLite: single rows, the scheduler's due queries, the per-state counters and the set-based updates of the lifecycle.

use super::*;

impl EnrollmentTx for SqliteTx<'_> {
    fn insert_enrollment(&mut self, e: &Enrollment) -> Result<i64> {
        self.tx
            .prepare_cached(
                "INSERT INTO enrollments (journey_id, epoch, version, profile_seq, entry_no, step, state, due_at, wait_event, deadline_at, entered_at, updated_at, reason, hops, event_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
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
                e.hops,
                e.event_id
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
                "UPDATE enrollments SET version = ?2, step = ?3, state = ?4, due_at = ?5, wait_event = ?6, updated_at = ?7, reason = ?8, hops = ?9, event_id = ?10 WHERE id = ?1",
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
                e.hops,
                e.event_id
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
    fn due_backlog(&mut self, now: Millis) -> Result<(i64, Option<Millis>)> {
        // Journeys outer (their ids from the key index, not the rows with their runtimes), each
        // probing the due index by range: O(journeys + due) in one statement, with nothing
        // allocated per journey.
        self.tx
            .prepare_cached(
                "SELECT COUNT(*), MIN(e.due_at) FROM journeys j CROSS JOIN enrollments e INDEXED BY enr_due \
                 WHERE e.journey_id = j.id AND e.due_at IS NOT NULL AND e.due_at <= ?1",
            )
            .ctx("prepare due backlog")?
            .query_row(params![now], |r| Ok((r.get(0)?, r.get(1)?)))
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
    fn reenroll_epoch(
        &mut self,
        journey_id: i64,
        from_epoch: i64,
        to_epoch: i64,
        version: i64,
        state: EnrollmentState,
        now: Millis,
        timeout_ms: i64,
    ) -> Result<i64> {
        // One statement however many profiles entered: enr_entry (journey_id, epoch, ...)
        // drives the scan; MIN(id) keeps their first entrance order for releases later.
        let due_at = (state == EnrollmentState::Active).then_some(now);
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO enrollments (journey_id, epoch, version, profile_seq, entry_no, step, state, due_at, wait_event, deadline_at, entered_at, updated_at, reason, hops) \
                 SELECT ?1, ?3, ?4, profile_seq, 1, 0, ?5, ?6, NULL, ?7 + ?8, ?7, ?7, NULL, 0 \
                 FROM enrollments WHERE journey_id = ?1 AND epoch = ?2 GROUP BY profile_seq ORDER BY MIN(id)",
            )
            .ctx("prepare reenroll epoch")?
            .execute(params![
                journey_id,
                from_epoch,
                to_epoch,
                version,
                state as i64,
                due_at,
                now,
                timeout_ms
            ])
            .ctx("reenroll epoch")? as i64;
        self.delta(journey_id, to_epoch, state as i64, n);
        Ok(n)
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
}
