//! The one duration syntax of the API: Go-style `^([0-9]+(h|m|s))+$` (e.g. `90m`, `336h`), which
//! CEL's `duration()` reads the same way. The parser itself is the engine's, so the schema, the
//! CEL rules, validation and the runtime agree.

use std::time::Duration;

/// The schema pattern for every duration field.
pub const DURATION_PATTERN: &str = "^([0-9]+(h|m|s))+$";

/// Parses a duration in the API's syntax; `None` when malformed or too long.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let ms = crate::engine::duration::parse_duration_ms(text).ok()?;
    u64::try_from(ms).ok().map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations() {
        assert_eq!(parse_duration("90m"), Some(Duration::from_secs(5400)));
        assert_eq!(
            parse_duration("336h"),
            Some(Duration::from_secs(336 * 3600))
        );
        assert_eq!(parse_duration("1h30m5s"), Some(Duration::from_secs(5405)));
    }

    #[test]
    fn rejects_what_the_schema_rejects() {
        for bad in [
            "",
            "5",
            "h",
            "1d",
            "1.5h",
            "-1h",
            "1h ",
            "1ms",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_none(), "{bad}");
        }
    }
}
