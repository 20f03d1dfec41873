//! The hash chain over a sink's lines, and its verification.
//!
//! A line is `{"seq":N,` + the record's fields + `,"chain":"HEX"}` + `\n`.
//! The link covers the *body*: the line without the `,"chain":"HEX"` part,
//! byte for byte as written, so verification never depends on re-encoding
//! JSON. The first record of a log links to 32 zero bytes.

use std::io::{BufRead, Read};

use coffer_crypto::AuditKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::record::{Gap, Kind};
use crate::view::Linked;

/// `,"chain":"` + 64 hex digits + `"}`.
const SUFFIX_LEN: usize = 10 + 64 + 2;
const UNKEYED_PREFIX: &[u8] = b"coffer.audit.chain.v1\0";
/// Longest line accepted when reading a log.
pub const MAX_LINE: usize = 1 << 20;
/// The read buffer to verify a log file through (`BufReader::with_capacity`):
/// large enough that reading costs few system calls per thousand records.
pub const READ_BUFFER: usize = 256 * 1024;

/// The end of a log: its last sequence number and link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Sequence number of the last record (0: empty log).
    pub seq: u64,
    /// Its chain link (zeros for an empty log).
    pub link: [u8; 32],
}

impl Head {
    /// The head of an empty log.
    pub const EMPTY: Head = Head {
        seq: 0,
        link: [0; 32],
    };
}

/// The link of a record: keyed when the key is available.
pub(crate) fn link(key: Option<&AuditKey>, prev: &[u8; 32], body: &[u8]) -> [u8; 32] {
    link_parts(key, prev, &[body])
}

/// [`link`] of a body given in pieces (the body is their concatenation).
fn link_parts(key: Option<&AuditKey>, prev: &[u8; 32], body: &[&[u8]]) -> [u8; 32] {
    match key {
        Some(k) => k.chain_parts(prev, body),
        None => {
            let mut h = Sha256::new();
            h.update(UNKEYED_PREFIX);
            h.update(prev);
            for part in body {
                h.update(part);
            }
            h.finalize().into()
        }
    }
}

/// Appends one line for `record_json` (a serialized [`crate::Record`]) to `out`,
/// advancing `head`. `scratch` is reused between calls.
pub(crate) fn append_line(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    head: &mut Head,
    key: Option<&AuditKey>,
    missed: u64,
    record_json: &[u8],
) {
    debug_assert!(record_json.len() > 2 && record_json[0] == b'{');
    let seq = head.seq + 1;
    scratch.clear();
    scratch.extend_from_slice(b"{\"seq\":");
    push_decimal(scratch, seq);
    scratch.push(b',');
    if key.is_none() {
        scratch.extend_from_slice(b"\"unkeyed\":true,");
    }
    if missed > 0 {
        scratch.extend_from_slice(b"\"missed\":");
        push_decimal(scratch, missed);
        scratch.push(b',');
    }
    scratch.extend_from_slice(&record_json[1..]);
    let l = link(key, &head.link, scratch);
    out.reserve(scratch.len() + SUFFIX_LEN + 1);
    out.extend_from_slice(&scratch[..scratch.len() - 1]);
    out.extend_from_slice(b",\"chain\":\"");
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in l {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 0xf) as usize]);
    }
    out.extend_from_slice(b"\"}\n");
    *head = Head { seq, link: l };
}

/// Appends `n` in decimal, without allocating.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Splits a line (without its newline) into the body the link covers and
/// the link. `None` if the line does not end the way every line ends.
pub(crate) fn split_line(line: &[u8]) -> Option<(Vec<u8>, [u8; 32])> {
    let (open, link) = split_line_open(line)?;
    let mut body = open.to_vec();
    body.push(b'}');
    Some((body, link))
}

/// [`split_line`] without a copy: the body without its closing brace
/// (the body is these bytes followed by `}`), and the link.
fn split_line_open(line: &[u8]) -> Option<(&[u8], [u8; 32])> {
    if line.len() < SUFFIX_LEN + 2 || !line.ends_with(b"\"}") {
        return None;
    }
    let cut = line.len() - SUFFIX_LEN;
    if &line[cut..cut + 10] != b",\"chain\":\"" {
        return None;
    }
    let link = crate::unhex32_bytes(&line[cut + 10..line.len() - 2])?;
    Some((&line[..cut], link))
}

/// Reads one line (with its newline) into `buf`, at most [`MAX_LINE`] + 1
/// bytes of it, so a line without end cannot exhaust memory. Returns the
/// bytes read (0 at the end).
pub(crate) fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.clear();
    Read::by_ref(reader)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
}

/// The first thing wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Line number, from 1 (0: the problem is with the log as a whole).
    pub line: u64,
    /// The sequence number expected at that place.
    pub seq: u64,
    /// What is wrong, for people.
    pub reason: String,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Records read and found intact before any problem.
    pub records: u64,
    /// Of those, records linked without the key (written while sealed).
    pub unkeyed: u64,
    /// The first problem, if any.
    pub problem: Option<Problem>,
    /// The last intact record's number and link.
    #[serde(skip, default = "empty_head")]
    pub end: Head,
    /// The message of the first record, when it is a notice.
    #[serde(skip)]
    pub opening: Option<String>,
    /// The message of the last intact record, when it is a notice.
    #[serde(skip)]
    pub closing: Option<String>,
    /// The gaps the log reports (records lost while the server was
    /// stopped), acknowledged or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<GapFound>,
    /// The chain links of the gap notices acknowledged in this log (an
    /// acknowledgement may come in a later file of a rotated history).
    #[serde(skip)]
    pub acks: Vec<[u8; 32]>,
    /// The problem is an unacknowledged gap, and nothing else is wrong.
    #[serde(skip)]
    pub gap_problem: bool,
}

/// A gap a log reports: the notice the server wrote when it found records
/// missing at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapFound {
    /// The records lost (or rewritten).
    pub first: u64,
    /// The last of them.
    pub last: u64,
    /// The number of the notice that reports it.
    pub record: u64,
    /// Its line.
    pub line: u64,
    /// When the gap was noticed (the notice's time: the server's start).
    pub noticed: String,
    /// An operator acknowledged it (a record says so).
    pub acknowledged: bool,
    /// The notice's chain link, which an acknowledgement names.
    pub link: String,
}

impl GapFound {
    /// The records concerned, in words: `record 5`, `records 5 to 9`, or
    /// for a gap of unknown extent (a head file missing, damaged or not
    /// the server's), `records after record 4 (how many is not known)`.
    pub fn describe(&self) -> String {
        describe_gap(self.first, self.last)
    }

    /// The problem an unacknowledged gap is.
    pub fn problem(&self) -> Problem {
        let what = self.describe();
        Problem {
            line: self.line,
            seq: self.record,
            reason: format!(
                "{what} were lost or rewritten while the server was stopped (noticed at {}, record {}); once investigated, acknowledge it with `coffer audit acknowledge-gap --record {} --reason ...`",
                self.noticed, self.record, self.record
            ),
        }
    }
}

/// See [`GapFound::describe`].
pub fn describe_gap(first: u64, last: u64) -> String {
    if last < first {
        format!(
            "records after record {last} (how many is not known: the head file was missing, damaged or not this server's)"
        )
    } else if first == last {
        format!("record {first}")
    } else {
        format!("records {first} to {last}")
    }
}

/// Starts the notice of a gap found at start.
pub(crate) const GAP_NOTICE: &str = "audit log gap:";

fn empty_head() -> Head {
    Head::EMPTY
}

/// How the last record of a rotated file begins.
pub(crate) const ROTATION_CLOSING: &str = "audit log rotation:";
/// How the first record of the file after it begins.
pub(crate) const ROTATION_OPENING: &str = "audit log rotated:";
/// Starts the notice of a rotation cut short by a crash and finished or
/// undone at the next start.
pub(crate) const ROTATION_RECOVERED: &str = "audit log rotation recovered:";
/// Starts the notice that names rotated files removed by retention.
pub(crate) const RETENTION_NOTICE: &str = "audit log retention:";

/// What the first record of the file after a rotation says about the end of
/// the file before it.
pub(crate) fn continuation(end: Head) -> String {
    format!(
        "(records 1 to {}; the last one's chain link is {})",
        end.seq,
        crate::hex(&end.link)
    )
}

/// Whether the verified log `next` starts where the verified log `prev`
/// ended: `prev` ends with a rotation notice, and `next`'s first record
/// names `prev`'s last record and its link. A log is never rotated twice
/// into the same new file, and links do not repeat, so this ties the two.
pub fn continues(prev: &VerifyReport, next: &VerifyReport) -> bool {
    prev.closing
        .as_deref()
        .is_some_and(|m| m.starts_with(ROTATION_CLOSING))
        && next
            .opening
            .as_deref()
            .is_some_and(|m| m.starts_with(ROTATION_OPENING) && m.contains(&continuation(prev.end)))
}

/// Whether the verified log begins with the notice of a rotation (its
/// history goes on in an earlier file).
pub fn begins_after_rotation(report: &VerifyReport) -> bool {
    report
        .opening
        .as_deref()
        .is_some_and(|m| m.starts_with(ROTATION_OPENING))
}

impl VerifyReport {
    /// Whether the log verified.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }

    /// Marks the gaps acknowledged in this log or by `later` (the
    /// acknowledgements of the files after it in a rotated history), and
    /// makes the first one that is not the problem, unless there is
    /// another (a gap problem already set is cleared once acknowledged).
    pub fn settle_gaps(&mut self, later: &[[u8; 32]]) {
        for g in &mut self.gaps {
            g.acknowledged = crate::unhex32(&g.link)
                .is_some_and(|l| self.acks.contains(&l) || later.contains(&l));
        }
        if self.problem.is_some() && !self.gap_problem {
            return;
        }
        let open = self.gaps.iter().find(|g| !g.acknowledged);
        self.gap_problem = open.is_some();
        self.problem = open.map(GapFound::problem);
    }
}

/// Checks a whole log: every line parses as a record, sequence numbers run
/// 1, 2, 3, ... without gaps or repeats, and every link matches. Then, if
/// `expected_head` is given (the head the writer last recorded), the log
/// must contain that record with that link: a log that ends before it was
/// truncated. Records after the head are accepted (they may have been
/// written after the head was saved).
///
/// Reads the log once, line by line; memory use does not grow with its size.
/// Each line is read only for the fields the chain needs, without building
/// a [`crate::Record`], but it must be one: the reading accepts exactly the
/// lines that parse as a record (the crate's `view` module says how).
pub fn verify(
    reader: impl BufRead,
    key: &AuditKey,
    expected_head: Option<Head>,
) -> std::io::Result<VerifyReport> {
    verify_lines(reader, key, expected_head, crate::view::read)
}

/// [`verify`] through a full [`crate::Record`] for each line, as it read
/// lines before: the reference the fast path is checked against (the
/// crate's tests and, with the `reference` feature, the `audit_chain` fuzz
/// target).
#[cfg(any(test, feature = "reference"))]
pub fn verify_reference(
    reader: impl BufRead,
    key: &AuditKey,
    expected_head: Option<Head>,
) -> std::io::Result<VerifyReport> {
    verify_lines(reader, key, expected_head, crate::view::read_full)
}

/// [`verify`], reading each line with `parse`.
fn verify_lines(
    reader: impl BufRead,
    key: &AuditKey,
    expected_head: Option<Head>,
    parse: for<'a> fn(&'a [u8]) -> Option<Linked<'a>>,
) -> std::io::Result<VerifyReport> {
    let mut reader = reader;
    let mut report = VerifyReport {
        records: 0,
        unkeyed: 0,
        problem: None,
        end: Head::EMPTY,
        opening: None,
        closing: None,
        gaps: Vec::new(),
        acks: Vec::new(),
        gap_problem: false,
    };
    let mut head = Head::EMPTY;
    let mut head_seen = expected_head.is_none_or(|h| h.seq == 0);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let fail = |line: u64, seq: u64, reason: String| Problem { line, seq, reason };
    loop {
        if read_line(&mut reader, &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let expected = head.seq + 1;
        if buf.last() != Some(&b'\n') {
            let reason = if buf.len() > MAX_LINE {
                "line is longer than any record".to_string()
            } else {
                "the last line is incomplete: the log was cut mid-record".to_string()
            };
            report.problem = Some(fail(line_no, expected, reason));
            return Ok(report);
        }
        let line = &buf[..buf.len() - 1];
        let Some(record) = parse(line) else {
            report.problem = Some(fail(
                line_no,
                expected,
                "not a valid audit record (edited or inserted)".into(),
            ));
            return Ok(report);
        };
        let Some((body, stored)) = split_line_open(line) else {
            report.problem = Some(fail(
                line_no,
                expected,
                "the record does not end with its chain link (edited or inserted)".into(),
            ));
            return Ok(report);
        };
        // The numbering jumps only over a gap the server found at start,
        // and only at the notice that reports exactly that gap.
        let jumped = record.kind == Kind::Notice
            && record.seq.is_some_and(|s| {
                s > expected
                    && record.gap
                        == Some(Gap {
                            first: expected,
                            last: s - 1,
                        })
            });
        let expected = if jumped {
            record.seq.unwrap_or(expected)
        } else {
            expected
        };
        match record.seq {
            Some(s) if s == expected => {}
            Some(s) => {
                let why = if s > expected {
                    format!(
                        "expected record {expected} but found record {s}: records were deleted or reordered"
                    )
                } else {
                    format!(
                        "expected record {expected} but found record {s}: a record was inserted, repeated or reordered"
                    )
                };
                report.problem = Some(fail(line_no, expected, why));
                return Ok(report);
            }
            None => {
                report.problem = Some(fail(
                    line_no,
                    expected,
                    "the record has no sequence number (edited or inserted)".into(),
                ));
                return Ok(report);
            }
        }
        let computed = link_parts((!record.unkeyed).then_some(key), &head.link, &[body, b"}"]);
        if computed != stored {
            report.problem = Some(fail(
                line_no,
                expected,
                format!(
                    "record {expected} does not match its chain link: it was edited, or a record before it was replaced"
                ),
            ));
            return Ok(report);
        }
        if jumped
            && let Some(h) = expected_head
            && (head.seq + 1..expected).contains(&h.seq)
        {
            // The head named a record of the gap (it was saved before the
            // restart): the gap reports what became of it.
            head_seen = true;
        }
        head = Head {
            seq: expected,
            link: stored,
        };
        report.records += 1;
        if record.kind == Kind::Notice {
            if let Some(gap) = record.gap {
                report.gaps.push(GapFound {
                    first: gap.first,
                    last: gap.last,
                    record: expected,
                    line: line_no,
                    noticed: record.time.into_owned(),
                    acknowledged: false,
                    link: crate::hex(&stored),
                });
            }
            // Only a keyed record can acknowledge: one linked without the
            // key could have been written by anyone.
            if !record.unkeyed
                && let Some(link) = record.acknowledges.as_deref().and_then(crate::unhex32)
            {
                report.acks.push(link);
            }
        }
        report.end = head;
        let notice = (record.kind == Kind::Notice)
            .then_some(record.message)
            .flatten()
            .map(std::borrow::Cow::into_owned);
        if expected == 1 {
            report.opening.clone_from(&notice);
        }
        report.closing = notice;
        if record.unkeyed {
            report.unkeyed += 1;
        }
        if let Some(h) = expected_head
            && h.seq == head.seq
        {
            if h.link != head.link {
                report.problem = Some(fail(
                    line_no,
                    expected,
                    format!(
                        "record {expected} is not the record the log's head names: the log was rewritten"
                    ),
                ));
                return Ok(report);
            }
            head_seen = true;
        }
    }
    report.settle_gaps(&[]);
    if !head_seen {
        let h = expected_head.expect("head_seen is only false with a head");
        report.gap_problem = false;
        report.problem = Some(fail(
            line_no + 1,
            head.seq + 1,
            format!(
                "the log ends at record {} but its head is record {}: it was truncated",
                head.seq, h.seq
            ),
        ));
    }
    Ok(report)
}

/// The head file kept beside a log file (`FILE.head`): the last record's
/// sequence number and link, tagged with the audit key when there was one.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HeadFile {
    pub seq: u64,
    pub chain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl HeadFile {
    pub(crate) fn new(head: Head, key: Option<&AuditKey>) -> HeadFile {
        HeadFile {
            seq: head.seq,
            chain: crate::hex(&head.link),
            tag: key.map(|k| crate::hex(&k.head(head.seq, &head.link))),
        }
    }

    /// The head it records, if it is well formed and its tag (when present)
    /// checks out. An untagged head is accepted only without a key to check.
    pub(crate) fn head(&self, key: Option<&AuditKey>) -> Option<Head> {
        let link = crate::unhex32(&self.chain)?;
        match (key, &self.tag) {
            (Some(k), Some(tag)) => {
                let want = crate::hex(&k.head(self.seq, &link));
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    want.as_bytes(),
                    tag.as_bytes(),
                ))
                .then_some(())?;
            }
            (Some(_), None) => return None,
            (None, _) => {}
        }
        Some(Head {
            seq: self.seq,
            link,
        })
    }
}

/// Reads the head file for `log` as it is, unchecked: `Ok(None)` if there
/// is none, `Err` if it cannot be read or parsed.
pub(crate) fn read_head_file_raw(log: &std::path::Path) -> Result<Option<HeadFile>, ()> {
    let read = crate::sink::open_no_follow(&head_path(log)).and_then(|mut f| {
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map(|_| bytes)
    });
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(_) => Err(()),
        Ok(bytes) => serde_json::from_slice::<HeadFile>(&bytes)
            .map(Some)
            .map_err(|_| ()),
    }
}

/// Reads the head file for `log`, if there is one.
pub fn read_head_file(log: &std::path::Path, key: Option<&AuditKey>) -> HeadFileState {
    let path = head_path(log);
    let read = crate::sink::open_no_follow(&path).and_then(|mut f| {
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map(|_| bytes)
    });
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HeadFileState::Missing,
        Err(_) => HeadFileState::Invalid,
        Ok(bytes) => match serde_json::from_slice::<HeadFile>(&bytes)
            .ok()
            .and_then(|h| h.head(key))
        {
            Some(h) => HeadFileState::Valid(h),
            None => HeadFileState::Invalid,
        },
    }
}

/// What [`read_head_file`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadFileState {
    /// No head file.
    Missing,
    /// A head file that is malformed or whose tag does not verify.
    Invalid,
    /// A head.
    Valid(Head),
}

/// `FILE.head`.
pub fn head_path(log: &std::path::Path) -> std::path::PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(".head");
    log.with_file_name(name)
}

/// The last record of a log whose writer stopped cleanly.
pub(crate) const CLOSED_NOTICE: &str = "audit log closed";

/// One chain in a copy of a stream sink (standard output or a socket): the
/// records of one run of the server, which starts a new chain at record 1
/// each time it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamChain {
    /// The line it starts on, from 1.
    pub first_line: u64,
    /// Its verification; problem lines count from the start of the copy.
    pub report: VerifyReport,
    /// It ends with the notice a server writes when it stops cleanly.
    pub closed: bool,
}

/// Checks a collector's copy of a stream sink: it is cut into chains where
/// a record numbered 1 begins (each run of the server), and each is verified
/// as a log without a head (see [`verify`]). A copy has no head file, so the
/// end of a chain cannot be checked: [`StreamChain::closed`] says whether a
/// chain ends as a cleanly stopped server's does, which every chain but the
/// last (a running server's) should. A line forged to look like the start
/// of a chain fails as a chain of its own: its link needs the key.
pub fn verify_stream<R: Read + std::io::Seek>(
    mut copy: R,
    key: &AuditKey,
) -> std::io::Result<Vec<StreamChain>> {
    use std::io::SeekFrom;
    // Where each chain starts: the first line, and each record numbered 1
    // (records are written with their number first).
    let mut starts: Vec<(u64, u64)> = Vec::new();
    // Each chain's first line, to find a run copied in twice.
    let mut firsts = Vec::new();
    let mut offset = 0u64;
    let mut line = 0u64;
    {
        copy.seek(SeekFrom::Start(0))?;
        let mut reader = std::io::BufReader::with_capacity(READ_BUFFER, &mut copy);
        let mut buf = Vec::new();
        loop {
            let n = read_line(&mut reader, &mut buf)?;
            if n == 0 {
                break;
            }
            line += 1;
            if line == 1 || buf.starts_with(b"{\"seq\":1,") {
                starts.push((offset, line));
                firsts.push(Sha256::digest(&buf));
            }
            offset += n as u64;
        }
    }
    let mut chains = Vec::with_capacity(starts.len());
    for (i, &(start, first_line)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(offset, |s| s.0);
        copy.seek(SeekFrom::Start(start))?;
        let part = Read::by_ref(&mut copy).take(end - start);
        let mut report = verify(
            std::io::BufReader::with_capacity(READ_BUFFER, part),
            key,
            None,
        )?;
        if let Some(p) = &mut report.problem {
            p.line += first_line - 1;
        }
        // A run's first record holds its time to the millisecond and its
        // link: two runs never start with the same line.
        if let Some(earlier) = firsts[..i].iter().position(|f| *f == firsts[i])
            && report.ok()
        {
            report.problem = Some(Problem {
                line: first_line,
                seq: 1,
                reason: format!(
                    "this run repeats chain {} (the same first record): it was copied in twice",
                    earlier + 1
                ),
            });
        }
        let closed = report.ok() && report.closing.as_deref() == Some(CLOSED_NOTICE);
        chains.push(StreamChain {
            first_line,
            report,
            closed,
        });
    }
    Ok(chains)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn key() -> AuditKey {
        coffer_crypto::Keyring::generate(0).audit_key()
    }

    fn log(key: &AuditKey, n: usize, unkeyed_from: usize) -> (Vec<u8>, Head) {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let mut head = Head::EMPTY;
        for i in 0..n {
            let r = Record {
                time: format!("2026-01-01T00:00:{:02}.000Z", i % 60),
                path: Some(format!("app/p{i}")),
                ..Record::default()
            };
            let json = serde_json::to_vec(&r).unwrap();
            let k = (i < unkeyed_from).then_some(key);
            append_line(&mut out, &mut scratch, &mut head, k, 0, &json);
        }
        (out, head)
    }

    fn lines(log: &[u8]) -> Vec<Vec<u8>> {
        log.split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn check(log: &[u8], key: &AuditKey, head: Option<Head>) -> VerifyReport {
        verify(log, key, head).unwrap()
    }

    /// A run of a stream sink: `n` records, the last the closing notice
    /// when `closed`.
    fn run(key: &AuditKey, id: usize, n: usize, closed: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let mut head = Head::EMPTY;
        for i in 0..n {
            let r = if closed && i == n - 1 {
                Record::notice(CLOSED_NOTICE)
            } else {
                Record {
                    time: format!("2026-01-01T00:00:{:02}.000Z", i % 60),
                    path: Some(format!("run{id}/p{i}")),
                    ..Record::default()
                }
            };
            let json = serde_json::to_vec(&r).unwrap();
            append_line(&mut out, &mut scratch, &mut head, Some(key), 0, &json);
        }
        out
    }

    #[test]
    fn a_stream_copy_is_cut_into_runs_and_each_is_verified() {
        let k = key();
        let copy = [
            run(&k, 1, 5, true),
            run(&k, 2, 3, true),
            run(&k, 3, 4, false),
        ]
        .concat();
        let chains = verify_stream(std::io::Cursor::new(&copy), &k).unwrap();
        let summary: Vec<(u64, u64, bool, bool)> = chains
            .iter()
            .map(|c| (c.first_line, c.report.records, c.report.ok(), c.closed))
            .collect();
        assert_eq!(
            summary,
            [(1, 5, true, true), (6, 3, true, true), (9, 4, true, false)]
        );
        // A run cut short no longer ends with a clean stop, and verifies.
        let second = run(&k, 4, 3, true);
        let last = lines(&second).last().unwrap().len();
        let cut = [run(&k, 5, 5, true), second[..second.len() - last].to_vec()].concat();
        let chains = verify_stream(std::io::Cursor::new(cut), &k).unwrap();
        assert!(chains[1].report.ok() && !chains[1].closed);
        // An edit is named by its line in the whole copy.
        let mut edited = lines(&copy);
        let at = edited[6].iter().position(|b| *b == b'p').unwrap();
        edited[6][at + 1] = b'x';
        let chains = verify_stream(std::io::Cursor::new(edited.concat()), &k).unwrap();
        assert!(chains[0].report.ok() && chains[2].report.ok());
        assert_eq!(chains[1].report.problem.as_ref().unwrap().line, 7);
        // A run copied in twice: the second copy fails.
        let first = run(&k, 6, 5, true);
        let twice = [first.clone(), run(&k, 7, 3, true), first].concat();
        let chains = verify_stream(std::io::Cursor::new(twice), &k).unwrap();
        assert!(chains[0].report.ok() && chains[1].report.ok());
        let p = chains[2].report.problem.as_ref().expect("the repeat fails");
        assert_eq!(p.line, 9);
        assert!(p.reason.contains("repeats chain 1"), "{}", p.reason);
        // Another key's runs do not verify; an empty copy has no runs.
        let chains = verify_stream(std::io::Cursor::new(&copy), &key()).unwrap();
        assert!(chains.iter().all(|c| !c.report.ok()));
        assert!(
            verify_stream(std::io::Cursor::new(b""), &k)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0, 1, 9, 10, 1042, u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn an_intact_log_verifies() {
        let k = key();
        let (l, head) = log(&k, 20, 15);
        let r = check(&l, &k, Some(head));
        assert!(r.ok(), "{r:?}");
        assert_eq!((r.records, r.unkeyed), (20, 5));
        let parsed: Record = serde_json::from_slice(lines(&l)[16].trim_ascii_end()).unwrap();
        assert!(parsed.unkeyed);
        assert_eq!(parsed.seq, Some(17));
    }

    #[test]
    fn every_mutation_is_named() {
        let k = key();
        let (l, head) = log(&k, 10, 10);
        let ls = lines(&l);
        let join = |v: Vec<Vec<u8>>| v.concat();
        // (name, mutated log, line expected in the report)
        let mut cases: Vec<(&str, Vec<u8>, u64)> = Vec::new();
        let mut v = ls.clone();
        v.insert(4, ls[2].clone());
        cases.push(("insert a copy", join(v), 5));
        let mut v = ls.clone();
        v.remove(6);
        cases.push(("delete", join(v), 7));
        let mut v = ls.clone();
        v.swap(3, 4);
        cases.push(("reorder", join(v), 4));
        let mut edited = l.clone();
        let at = ls[..5].iter().map(Vec::len).sum::<usize>()
            + ls[5].windows(5).position(|w| w == b"app/p").unwrap();
        edited[at] = b'b';
        cases.push(("edit one byte", edited, 6));
        let mut v = ls.clone();
        v.truncate(8);
        cases.push(("truncate whole records", join(v), 9));
        let mut cut = l.clone();
        cut.truncate(cut.len() - 20);
        cases.push(("truncate mid-record", cut, 10));
        // A forged record with a recomputed unkeyed link fails at the next
        // keyed record, which covers the original link.
        let mut forged = Vec::new();
        let mut scratch = Vec::new();
        let mut h = Head::EMPTY;
        for (i, line) in ls.iter().enumerate() {
            let mut r: Record = serde_json::from_slice(line.trim_ascii_end()).unwrap();
            r.seq = None;
            r.chain = None;
            if i == 2 {
                r.path = Some("forged".into());
            }
            let json = serde_json::to_vec(&r).unwrap();
            let key = if i == 2 { None } else { Some(&k) };
            let mut out = Vec::new();
            append_line(&mut out, &mut scratch, &mut h, key, 0, &json);
            if i == 2 {
                forged.extend(out);
            } else {
                forged.extend(line.clone());
                h.link = split_line(line.trim_ascii_end()).unwrap().1;
            }
        }
        cases.push(("forge an unkeyed record", forged, 4));
        for (name, mutated, want_line) in cases {
            let r = check(&mutated, &k, Some(head));
            let p = r.problem.unwrap_or_else(|| panic!("{name}: not detected"));
            assert_eq!(p.line, want_line, "{name}: {}", p.reason);
        }
    }

    #[test]
    fn another_key_fails_at_the_first_record() {
        let (l, head) = log(&key(), 3, 3);
        let p = check(&l, &key(), Some(head)).problem.unwrap();
        assert_eq!(p.line, 1);
    }

    #[test]
    fn a_rewritten_log_does_not_match_its_head() {
        let k = key();
        let (_, head) = log(&k, 5, 5);
        // The same first three records (the fixture is deterministic), then
        // two others, properly linked with the right key.
        let (mut other, mut h) = log(&k, 3, 3);
        let mut scratch = Vec::new();
        for _ in 0..2 {
            let r = Record {
                time: "t".into(),
                path: Some("rewritten".into()),
                ..Record::default()
            };
            let json = serde_json::to_vec(&r).unwrap();
            append_line(&mut other, &mut scratch, &mut h, Some(&k), 0, &json);
        }
        let p = check(&other, &k, Some(head)).problem.unwrap();
        assert_eq!(p.line, 5, "{}", p.reason);
        assert!(p.reason.contains("head"), "{}", p.reason);
    }

    #[test]
    fn head_files_are_tagged() {
        let k = key();
        let h = Head {
            seq: 7,
            link: [9; 32],
        };
        let file = HeadFile::new(h, Some(&k));
        assert_eq!(file.head(Some(&k)), Some(h));
        assert_eq!(file.head(Some(&key())), None, "another key");
        let forged = HeadFile {
            seq: 6,
            ..HeadFile::new(h, Some(&k))
        };
        assert_eq!(forged.head(Some(&k)), None, "a moved head");
        let untagged = HeadFile::new(h, None);
        assert_eq!(untagged.head(Some(&k)), None, "untagged with a key");
        assert_eq!(untagged.head(None), Some(h));
    }
}
