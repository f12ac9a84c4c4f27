//! The one duration syntax of the project: Go-style `^([0-9]+(h|m|s))+$` (e.g. `90m`, `336h`),
//! which CEL's `duration()` reads the same way. The CRD's schema pattern, validation, `plan` and
//! the engine all use this parser.

/// The schema pattern for every duration field.
pub const DURATION_PATTERN: &str = "^([0-9]+(h|m|s))+$";

/// A duration that does not follow [`DURATION_PATTERN`], overflows, or is zero where a positive
/// one is required.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {value:?}: expected Go-style ^([0-9]+(h|m|s))+$")]
pub struct InvalidDuration {
    pub value: String,
}

type Result<T> = std::result::Result<T, InvalidDuration>;

/// Parses `90m`, `336h`, `1h30m10s` into milliseconds. Zero-length or
/// malformed strings are errors; overflow is an error.
pub fn parse_duration_ms(s: &str) -> Result<i64> {
    let err = || InvalidDuration {
        value: s.to_string(),
    };
    if s.is_empty() {
        return Err(err());
    }
    let mut total: i64 = 0;
    let mut num: Option<i64> = None;
    for c in s.chars() {
        match c {
            '0'..='9' => {
                let d = i64::from(c as u8 - b'0');
                num = Some(
                    num.unwrap_or(0)
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(d))
                        .ok_or_else(err)?,
                );
            }
            'h' | 'm' | 's' => {
                let n = num.take().ok_or_else(err)?;
                let unit = match c {
                    'h' => 3_600_000,
                    'm' => 60_000,
                    _ => 1_000,
                };
                total = n
                    .checked_mul(unit)
                    .and_then(|v| total.checked_add(v))
                    .ok_or_else(err)?;
            }
            _ => return Err(err()),
        }
    }
    if num.is_some() {
        return Err(err());
    }
    Ok(total)
}

/// Parses into a [`std::time::Duration`]; `None` when malformed or too long.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let ms = parse_duration_ms(text).ok()?;
    u64::try_from(ms).ok().map(std::time::Duration::from_millis)
}

/// Like [`parse_duration_ms`] but rejects zero.
pub fn parse_positive_duration_ms(s: &str) -> Result<i64> {
    let v = parse_duration_ms(s)?;
    if v <= 0 {
        return Err(InvalidDuration {
            value: s.to_string(),
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style() {
        assert_eq!(parse_duration_ms("90m").ok(), Some(5_400_000));
        assert_eq!(parse_duration_ms("336h").ok(), Some(336 * 3_600_000));
        assert_eq!(parse_duration_ms("1h30m10s").ok(), Some(5_410_000));
        assert_eq!(parse_duration_ms("0s").ok(), Some(0));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "10",
            "h",
            "1d",
            "1.5h",
            "-1h",
            "1h ",
            "m1",
            "99999999999999999999h",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
        assert!(parse_positive_duration_ms("0s").is_err());
    }
}
