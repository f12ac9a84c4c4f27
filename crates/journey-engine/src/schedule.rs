//! Cron schedules with a time zone (as in a Kubernetes CronJob's `timeZone`).

use std::str::FromStr;

use chrono::TimeZone;
use chrono_tz::Tz;
use croner::Cron;

use super::error::{EngineError, Result};

#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    tz: Tz,
    source: String,
}

impl CronSchedule {
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Self> {
        let tz_name = tz.unwrap_or("UTC");
        let err = |m: String| EngineError::InvalidSchedule {
            cron: expr.to_string(),
            tz: tz_name.to_string(),
            message: m,
        };
        let tz: Tz = tz_name
            .parse()
            .map_err(|e: chrono_tz::ParseError| err(e.to_string()))?;
        let cron = Cron::from_str(expr).map_err(|e| err(e.to_string()))?;
        Ok(Self {
            cron,
            tz,
            source: expr.to_string(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first occurrence strictly after `after_ms` (UTC milliseconds).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let t = self.tz.timestamp_millis_opt(after_ms).single()?;
        self.cron
            .find_next_occurrence(&t, false)
            .ok()
            .map(|d| d.timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_in_a_time_zone() {
        // 2026-01-01T00:00:00Z; 14:00 in Paris (UTC+1 in winter) is 13:00Z.
        let s = CronSchedule::parse("0 14 * * *", Some("Europe/Paris")).expect("parse");
        let start = 1_767_225_600_000;
        assert_eq!(s.next_after(start), Some(start + 13 * 3_600_000));
        assert!(CronSchedule::parse("0 14 * * *", Some("Mars/Base")).is_err());
        assert!(CronSchedule::parse("nope", None).is_err());
    }
}
