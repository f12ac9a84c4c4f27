//! Profiles and events on SQLite.

use super::*;

impl ProfileTx for SqliteTx<'_> {
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
    fn event_payload(&mut self, id: i64) -> Result<Option<serde_json::Value>> {
        let text: Option<String> = self
            .tx
            .prepare_cached("SELECT payload FROM events WHERE id = ?1")
            .ctx("prepare event payload")?
            .query_row([id], |r| r.get(0))
            .optional()
            .ctx("event payload")?;
        text.map(|t| serde_json::from_str(&t).map_err(json_err("event payload")))
            .transpose()
    }
}
