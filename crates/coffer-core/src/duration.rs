//! Human durations (`90s`, `15m`, `24h`, `7d`, `1h30m`) as the API and CLI take them.

/// Longest duration accepted anywhere (ten years), so arithmetic on unix
/// milliseconds can never overflow.
pub const MAX_DURATION_MS: i64 = 10 * 366 * 24 * 3600 * 1000;

/// Why a duration was refused. `shown` is the input, quoted, when it is
/// short, printable and not shaped like a credential; otherwise empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration.
    #[error("invalid duration{shown}: use a number with a unit, like 90s, 15m, 24h or 7d")]
    Invalid { shown: String },
    /// A duration of zero.
    #[error(
        "invalid duration{shown}: use a number with a unit, like 90s, 15m, 24h or 7d; it must \
         be longer than zero"
    )]
    Zero { shown: String },
    /// Longer than [`MAX_DURATION_MS`].
    #[error("durations are limited to ten years")]
    TooLong,
}

/// Parses a duration into milliseconds. Units: `s`, `m`, `h`, `d`; several
/// may be combined largest first (`1h30m`); a bare number means seconds. Zero
/// and negative durations are refused.
pub fn parse_duration_ms(input: &str) -> Result<i64, DurationError> {
    let s = input.trim();
    let shown = || {
        if s.len() <= 32
            && s.chars().all(|c| c.is_ascii_graphic())
            && !coffer_policy::contains_credential(s)
        {
            format!(" {s:?}")
        } else {
            String::new()
        }
    };
    let bad = || DurationError::Invalid { shown: shown() };
    if s.is_empty() {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = s.parse().map_err(|_| bad())?;
        return check(secs.checked_mul(1000).ok_or_else(bad)?, &shown);
    }
    let mut total: i64 = 0;
    let mut number = String::new();
    let mut last_unit = u8::MAX;
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            if number.len() > 12 {
                return Err(bad());
            }
            continue;
        }
        let (rank, unit_ms) = match c {
            'd' => (0, 86_400_000),
            'h' => (1, 3_600_000),
            'm' => (2, 60_000),
            's' => (3, 1_000),
            _ => return Err(bad()),
        };
        if number.is_empty() || (last_unit != u8::MAX && rank <= last_unit) {
            return Err(bad());
        }
        last_unit = rank;
        let n: i64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total = n
            .checked_mul(unit_ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !number.is_empty() {
        return Err(bad());
    }
    check(total, &shown)
}

fn check(ms: i64, shown: &dyn Fn() -> String) -> Result<i64, DurationError> {
    if ms <= 0 {
        return Err(DurationError::Zero { shown: shown() });
    }
    if ms > MAX_DURATION_MS {
        return Err(DurationError::TooLong);
    }
    Ok(ms)
}

/// Formats milliseconds the way [`parse_duration_ms`] reads them (`1h30m`).
pub fn format_duration_ms(ms: i64) -> String {
    let mut secs = ms.max(0) / 1000;
    let mut out = String::new();
    for (unit, size) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// Formats unix milliseconds as RFC 3339 in UTC, to the second
/// (`2026-11-23T10:00:00Z`), for messages.
pub fn format_time_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms after the epoch"))
}

/// Parses an RFC 3339 time (`2027-01-31T00:00:00Z`) into unix milliseconds.
pub fn parse_time_ms(input: &str) -> Result<i64, String> {
    let t =
        time::OffsetDateTime::parse(input.trim(), &time::format_description::well_known::Rfc3339)
            .map_err(|_| "times are RFC 3339, such as 2027-01-31T00:00:00Z".to_string())?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        for (input, ms) in [
            ("90", 90_000),
            ("90s", 90_000),
            ("15m", 900_000),
            ("24h", 86_400_000),
            ("7d", 604_800_000),
            ("1h30m", 5_400_000),
            ("1d2h3m4s", 93_784_000),
            (" 15m ", 900_000),
        ] {
            assert_eq!(parse_duration_ms(input), Ok(ms), "{input}");
            assert_eq!(parse_duration_ms(&format_duration_ms(ms)), Ok(ms));
        }
    }

    #[test]
    fn refuses_bad_durations_clearly() {
        for bad in [
            "",
            "0",
            "0s",
            "-5m",
            "5x",
            "m",
            "15mm",
            "30m1h",
            "1.5h",
            "1h 30m",
            "99999999999999d",
            "forever",
        ] {
            let e = parse_duration_ms(bad).unwrap_err().to_string();
            assert!(e.contains("duration"), "{bad}: {e}");
        }
    }

    /// The typed refusals render the messages the parser wrote by hand.
    #[test]
    fn refusals_say_what_they_said() {
        assert_eq!(
            parse_duration_ms("0s").unwrap_err().to_string(),
            "invalid duration \"0s\": use a number with a unit, like 90s, 15m, 24h or 7d; it \
             must be longer than zero"
        );
        assert_eq!(
            parse_duration_ms("5x").unwrap_err().to_string(),
            "invalid duration \"5x\": use a number with a unit, like 90s, 15m, 24h or 7d"
        );
        assert_eq!(
            parse_duration_ms(&"a".repeat(40)).unwrap_err(),
            DurationError::Invalid {
                shown: String::new()
            }
        );
        assert_eq!(
            parse_duration_ms("3700d").unwrap_err().to_string(),
            "durations are limited to ten years"
        );
    }
}
