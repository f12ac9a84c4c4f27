//! The one duration syntax of the API: Go-style `^([0-9]+(h|m|s))+$` (e.g. `90m`, `336h`), which
//! CEL's `duration()` reads the same way, so the schema, the CEL rules and Rust agree.

use std::time::Duration;

use thiserror::Error;

/// The schema pattern for every duration field.
pub const DURATION_PATTERN: &str = "^([0-9]+(h|m|s))+$";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("{0:?} is not a duration: use whole numbers with units h, m or s, e.g. 90m or 336h")]
    Malformed(String),
    #[error("{0:?} is too long a duration")]
    Overflow(String),
}

/// Parses a duration in the API's syntax.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed(text.to_string());
    if text.is_empty() {
        return Err(malformed());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => digits.push(c),
            'h' | 'm' | 's' => {
                if digits.is_empty() {
                    return Err(malformed());
                }
                let n: u64 = digits
                    .parse()
                    .map_err(|_| DurationError::Overflow(text.to_string()))?;
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                total = n
                    .checked_mul(unit)
                    .and_then(|s| total.checked_add(s))
                    .ok_or_else(|| DurationError::Overflow(text.to_string()))?;
                digits.clear();
            }
            _ => return Err(malformed()),
        }
    }
    if !digits.is_empty() {
        return Err(malformed());
    }
    Ok(Duration::from_secs(total))
}

/// Formats seconds in the API's syntax, largest units first (`5400` → `1h30m`).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations() {
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("336h"), Ok(Duration::from_secs(336 * 3600)));
        assert_eq!(parse_duration("1h30m5s"), Ok(Duration::from_secs(5405)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_the_schema_rejects() {
        for bad in ["", "5", "h", "1d", "1.5h", "-1h", "1h ", "1ms"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn formats_round_trip() {
        for s in ["1h30m", "336h", "45s", "2h5s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
