//! RFC 3339 timestamps for API responses, formatted without allocation-heavy
//! machinery: every read response carries one, so this is on the hot path.
//! Output is always `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, millisecond precision).

/// Formats unix milliseconds as RFC 3339 in UTC. Times outside years
/// 0000..=9999 (which coffer never writes) are clamped to the epoch.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000) as u32;
    let days = secs.div_euclid(86_400);
    let second_of_day = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return "1970-01-01T00:00:00.000Z".to_string();
    }
    let (h, mi, s) = (
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    );
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    put(&mut buf[0..4], year as u32);
    put(&mut buf[5..7], month);
    put(&mut buf[8..10], day);
    put(&mut buf[11..13], h);
    put(&mut buf[14..16], mi);
    put(&mut buf[17..19], s);
    put(&mut buf[20..23], millis);
    String::from_utf8(buf.to_vec()).expect("ASCII digits")
}

/// Writes `n` as zero-padded decimal filling `out`.
fn put(out: &mut [u8], mut n: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    fn parse_ms(s: &str) -> i64 {
        let t = OffsetDateTime::parse(s, &Rfc3339).unwrap();
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_449_072_582), "2026-11-23T15:51:12.582Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(i64::MAX), "1970-01-01T00:00:00.000Z");
    }

    proptest::proptest! {
        #[test]
        fn round_trips_through_a_real_rfc3339_parser(ms in -62_135_596_800_000i64..253_402_300_799_999) {
            proptest::prop_assert_eq!(parse_ms(&rfc3339(ms)), ms);
        }
    }
}
