//! Deliveries and the webhook outbox on SQLite (partial indexes with literal status equalities: SQLite uses a partial index only then).

use super::*;

impl DeliveryTx for SqliteTx<'_> {
    fn insert_delivery(&mut self, d: &Delivery) -> Result<bool> {
        let msg = serde_json::to_string(&d.message).map_err(json_err("delivery message"))?;
        let rendered = d
            .rendered
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(json_err("rendered message"))?;
        let n = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO deliveries (journey_id, epoch, profile_seq, step_key, entry_no, visit, version, step_id, channel, destination, message, status, created_at, event_id, rendered, reason, last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
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
                d.created_at,
                d.event_id,
                rendered,
                d.reason,
                d.last_error
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
                "SELECT d.journey_id, d.epoch, d.profile_seq, d.step_key, d.entry_no, d.version, d.step_id, COALESCE(p.id, ''), d.channel, d.destination, d.message, d.status, d.created_at, d.visit, d.event_id, d.rendered, d.attempts, d.last_error, d.reason
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
                            event_id: r.get(14)?,
                            rendered: None,
                            attempts: r.get(16)?,
                            last_error: r.get(17)?,
                            reason: r.get(18)?,
                        },
                        r.get::<_, String>(10)?,
                        r.get::<_, i64>(11)?,
                        r.get::<_, Option<String>>(15)?,
                    ))
                },
            )
            .ctx("list deliveries")?;
        let mut out = Vec::new();
        for row in rows {
            let (mut d, msg, status, rendered) = row.ctx("list deliveries")?;
            d.message = serde_json::from_str(&msg).map_err(json_err("delivery message"))?;
            d.rendered = rendered
                .map(|t| serde_json::from_str(&t).map_err(json_err("rendered message")))
                .transpose()?;
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
                    "SELECT d.version, d.step_id, COALESCE(pr.id, ''), d.channel, d.destination, d.message, d.created_at, d.event_id, d.rendered, d.attempts FROM deliveries d LEFT JOIN profiles pr ON pr.seq = d.profile_seq WHERE d.journey_id = ?1 AND d.epoch = ?2 AND d.profile_seq = ?3 AND d.step_key = ?4 AND d.entry_no = ?5 AND d.visit = ?6",
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
                        r.get::<_, Option<i64>>(7)?,
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, i64>(9)?,
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
                event_id: row.7,
                rendered: row
                    .8
                    .map(|t| serde_json::from_str(&t).map_err(json_err("rendered message")))
                    .transpose()?,
                attempts: row.9,
                last_error: None,
                reason: None,
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
    fn set_rendered(
        &mut self,
        d: &Delivery,
        rendered: Option<&serde_json::Value>,
        failure: Option<(&str, &str)>,
    ) -> Result<()> {
        let rendered = rendered
            .map(serde_json::to_string)
            .transpose()
            .map_err(json_err("rendered message"))?;
        let (status, reason, error) = match failure {
            Some((reason, error)) => (
                Some(DeliveryStatus::Failed as i64),
                Some(reason),
                Some(error),
            ),
            None => (None, None, None),
        };
        self.tx
            .prepare_cached(
                "UPDATE deliveries SET rendered = COALESCE(rendered, ?7), status = COALESCE(?8, status), reason = COALESCE(?9, reason), last_error = COALESCE(?10, last_error) WHERE journey_id = ?1 AND epoch = ?2 AND profile_seq = ?3 AND step_key = ?4 AND entry_no = ?5 AND visit = ?6",
            )
            .ctx("prepare set rendered")?
            .execute(params![
                d.journey_id,
                d.epoch,
                d.profile_seq,
                d.step_key,
                d.entry_no,
                d.visit,
                rendered,
                status,
                reason,
                error
            ])
            .ctx("set rendered")?;
        Ok(())
    }
    fn count_deliveries_by_status(
        &mut self,
        journey_id: i64,
    ) -> Result<Vec<(DeliveryStatus, i64)>> {
        let mut st = self
            .tx
            .prepare_cached(
                "SELECT status, COUNT(*) FROM deliveries WHERE journey_id = ?1 GROUP BY status ORDER BY status",
            )
            .ctx("prepare count deliveries by status")?;
        let rows = st
            .query_map([journey_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .ctx("count deliveries by status")?;
        let mut out = Vec::new();
        for row in rows {
            let (status, n) = row.ctx("count deliveries by status")?;
            let status = DeliveryStatus::from_i64(status).ok_or(StoreError::Corrupt {
                context: "delivery status",
                message: status.to_string(),
            })?;
            out.push((status, n));
        }
        Ok(out)
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
}
