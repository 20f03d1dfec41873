//! Coffer's audit log.
//!
//! Every request the server answers becomes one [`Record`], written as one
//! JSON line to every configured sink *before* the response leaves the
//! server. The pieces:
//!
//! * [`record`]: the record format. Records hold who, what, where and how it
//!   ended, never a secret value or a raw token: sensitive fields are HMACs
//!   under the keyring's audit key (`hmac-sha256:HEX`).
//! * [`chain`]: each sink's lines form a keyed hash chain. A line is the
//!   record with a per-sink sequence number in front and the chain link at the
//!   end; the link is `HMAC(audit key, previous link || line without link)`.
//!   While coffer is sealed the key is unavailable, so links are plain
//!   SHA-256 and the record says `"unkeyed":true`; the first keyed link after
//!   unsealing covers all of them. [`chain::verify`] names the first record
//!   that was inserted, deleted, edited or reordered, and compares the end of
//!   the log with its head (kept in memory and in a tagged `FILE.head`), which
//!   catches truncation.
//! * [`sink`]: files, standard output and stream sockets (TCP or Unix).
//! * [`writer`]: the [`Auditor`], a dedicated thread that group-commits
//!   batches of records to all sinks and acknowledges each request once at
//!   least one sink has it. A request whose record no sink took must fail.
//! * [`alerts`]: rules over the record stream (failure bursts, read bursts,
//!   break-glass, protected environments) that produce alert records.
//! * [`sanitize`]: what every line goes through before it is linked: token-
//!   shaped strings masked, line and direction characters escaped.
//! * [`query`]: filters and the "who read this secret" report over a log.

#![forbid(unsafe_code)]

pub mod alerts;
pub mod chain;
pub mod query;
pub mod record;
pub mod sanitize;
pub mod sink;
mod view;
pub mod writer;

pub use alerts::AlertRules;
pub use chain::{Head, Problem, StreamChain, VerifyReport};
pub use record::{Actor, AlertInfo, Gap, Kind, Outcome, Record};
pub use sink::SinkSpec;
pub use writer::{
    Auditor, AuditorConfig, Fsync, RotateError, RotateReport, RotatedFile, Rotation, StartError,
};

/// The files that rotation set aside beside `log`
/// (`LOG.YYYYMMDDTHHMMSSZ`, or with `-N` added), oldest first. Head files
/// and anything else in the directory are left out.
pub fn rotated_files(log: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    Ok(rotated_entries(log)?.into_iter().map(|(_, p)| p).collect())
}

/// [`rotated_files`] with the order key of each: the time in its name and
/// the number after it (0 for none).
pub(crate) fn rotated_entries(
    log: &std::path::Path,
) -> std::io::Result<Vec<((String, u64), std::path::PathBuf)>> {
    let Some(name) = log.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(Vec::new());
    };
    let dir = match log.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut found: Vec<((String, u64), std::path::PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(key) = rotated_key(&name, &file_name) else {
            continue;
        };
        if entry.file_type()?.is_file() {
            found.push((key, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The order key of `file_name` if it is the name of one of the files
/// rotation sets aside beside the log named `name` (`NAME.STAMP[-N]`).
fn rotated_key(name: &str, file_name: &str) -> Option<(String, u64)> {
    let rest = file_name.strip_prefix(name)?.strip_prefix('.')?;
    let (stamp, n) = match rest.split_once('-') {
        Some((stamp, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (stamp, n.parse().unwrap_or(u64::MAX))
        }
        Some(_) => return None,
        None => (rest, 0),
    };
    let b = stamp.as_bytes();
    let is_stamp = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    is_stamp.then(|| (stamp.to_string(), n))
}

/// Whether `file` is named as one of `log`'s rotated files (it need not
/// exist).
pub(crate) fn is_rotated_name(log: &std::path::Path, file: &std::path::Path) -> bool {
    let (Some(name), Some(file_name)) = (log.file_name(), file.file_name()) else {
        return false;
    };
    file.parent() == log.parent()
        && rotated_key(&name.to_string_lossy(), &file_name.to_string_lossy()).is_some()
}

/// When `file`, one of `log`'s rotated files (see [`rotated_files`]), was
/// set aside: the UTC time in its name.
pub(crate) fn rotation_time(
    log: &std::path::Path,
    file: &std::path::Path,
) -> Option<time::OffsetDateTime> {
    let name = log.file_name()?.to_str()?;
    let rest = file
        .file_name()?
        .to_str()?
        .strip_prefix(name)?
        .strip_prefix('.')?;
    let s = rest.get(..16)?;
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0..4)?).ok()?,
        time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?,
        u8::try_from(num(6..8)?).ok()?,
    )
    .ok()?;
    let at = time::Time::from_hms(
        u8::try_from(num(9..11)?).ok()?,
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(13..15)?).ok()?,
    )
    .ok()?;
    Some(date.with_time(at).assume_utc())
}

/// The files of `log`'s whole history, oldest first: those rotation set
/// aside, then `log` itself.
pub fn with_rotated(log: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files = rotated_files(log)?;
    files.push(log.to_path_buf());
    Ok(files)
}

/// Opens `files` as one stream of lines, in order (each log file ends with
/// a whole line, so their lines never run together).
pub fn open_chained(
    files: &[std::path::PathBuf],
) -> std::io::Result<std::io::BufReader<Box<dyn std::io::Read + Send>>> {
    use std::io::Read;
    let mut reader: Box<dyn Read + Send> = Box::new(std::io::empty());
    for f in files {
        // Not through a symbolic link put in a file's place, nor a FIFO
        // (which would block the query).
        reader = Box::new(reader.chain(sink::open_no_follow(f)?));
    }
    Ok(std::io::BufReader::new(reader))
}

/// Formats an HMAC tag as it appears in records and in `coffer audit hash`.
pub fn format_tag(tag: &[u8; 32]) -> String {
    let mut s = String::with_capacity(12 + 64);
    s.push_str("hmac-sha256:");
    s.push_str(&hex(tag));
    s
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// 64 hex digits (a chain link, as records and reports write it) as bytes.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    unhex32_bytes(s.as_bytes())
}

/// [`unhex32`] of bytes that need not be text.
pub(crate) fn unhex32_bytes(s: &[u8]) -> Option<[u8; 32]> {
    // A digit's value, or 0xff for anything but 0-9 and a-f. Looked up and
    // checked once at the end, without a branch per digit: verification
    // reads one link per line, and digits of random values mispredict.
    const VALUE: [u8; 256] = {
        let mut t = [0xff; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    let s: &[u8; 64] = s.try_into().ok()?;
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (VALUE[pair[0] as usize], VALUE[pair[1] as usize]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0xf);
    }
    (bad <= 0xf).then_some(out)
}

/// The current time as the records write it: RFC 3339, UTC, milliseconds.
pub fn now_rfc3339() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

pub(crate) fn format_time(t: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex32(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex32("zz"), None);
        // Every byte in every place: only 0-9 and a-f are digits.
        let digits = hex(&bytes);
        for at in [0, 1, 31, 62, 63] {
            for b in 0..=255u8 {
                let mut s = digits.clone().into_bytes();
                s[at] = b;
                let want = b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
                assert_eq!(unhex32_bytes(&s).is_some(), want, "{b:#x} at {at}");
            }
        }
        assert_eq!(unhex32_bytes(&[b'0'; 63]), None);
        assert_eq!(unhex32_bytes(&[b'0'; 65]), None);
        assert_eq!(
            unhex32(&"A".repeat(64)),
            None,
            "upper case is not the format"
        );
    }

    #[test]
    fn times_have_one_shape() {
        let t = time::macros::datetime!(2026-11-23 10:04:05.1234 UTC);
        assert_eq!(format_time(t), "2026-11-23T10:04:05.123Z");
        assert_eq!(now_rfc3339().len(), 24);
    }

    #[test]
    fn rotated_files_are_listed_oldest_first_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        for name in [
            "audit.log",
            "audit.log.head",
            "audit.log.20261204T101010Z-10",
            "audit.log.20261204T101010Z",
            "audit.log.20261204T101010Z.head",
            "audit.log.20261204T101010Z-2",
            "audit.log.20261203T235959Z",
            "audit.log.1",
            "audit.log.20261204T101010Z-x",
            "audit.log.20261204T1010100",
            "audit.log.head.tmp",
            "other.log.20261204T101010Z",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("audit.log.20261205T000000Z")).unwrap();
        let names: Vec<String> = with_rotated(&log)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "audit.log.20261203T235959Z",
                "audit.log.20261204T101010Z",
                "audit.log.20261204T101010Z-2",
                "audit.log.20261204T101010Z-10",
                "audit.log",
            ]
        );
    }
}
