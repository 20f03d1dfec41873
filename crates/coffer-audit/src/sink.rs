//! Where audit lines go: a file, standard output, or a stream socket.
//!
//! A sink takes a whole batch of lines in one write. A sink that fails is
//! retried on the next batch (sockets reconnect at most once a second); a
//! file that failed mid-batch is cut back to its last whole record, so a
//! failed batch leaves no partial line behind.

use rustix::fs::OFlags;
use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::chain::{self, Head};
use crate::record::Record;

/// A configured sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// Append to a file (created 0600 if missing).
    File(PathBuf),
    /// Write to the server's standard output.
    Stdout,
    /// A TCP address (`tcp://host:port`) or Unix socket (`unix:/path`).
    Socket(String),
}

impl SinkSpec {
    /// Parses `tcp://HOST:PORT` or `unix:PATH` as a socket sink.
    pub fn socket(address: &str) -> Result<SinkSpec, String> {
        if let Some(rest) = address.strip_prefix("tcp://") {
            if rest.is_empty() || !rest.contains(':') {
                return Err(format!("{address}: expected tcp://HOST:PORT"));
            }
        } else if let Some(rest) = address.strip_prefix("unix:") {
            if rest.is_empty() {
                return Err(format!("{address}: expected unix:/PATH"));
            }
        } else {
            return Err(format!(
                "{address}: an audit socket is tcp://HOST:PORT or unix:/PATH"
            ));
        }
        Ok(SinkSpec::Socket(address.to_string()))
    }

    /// A short name for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            SinkSpec::File(p) => format!("file {}", p.display()),
            SinkSpec::Stdout => "stdout".into(),
            SinkSpec::Socket(a) => format!("socket {a}"),
        }
    }
}

const RECONNECT_EVERY: Duration = Duration::from_secs(1);
const SOCKET_TIMEOUT: Duration = Duration::from_secs(2);

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Whether the other end has closed (or reset) the connection, checked
    /// without blocking. Collectors do not send, so any readable data or
    /// end-of-stream means the connection is over.
    fn peer_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let result = match self {
            Stream::Tcp(s) => s.set_nonblocking(true).and_then(|()| {
                let r = s.read(&mut byte);
                s.set_nonblocking(false).and(r)
            }),
            Stream::Unix(s) => s.set_nonblocking(true).and_then(|()| {
                let r = s.read(&mut byte);
                s.set_nonblocking(false).and(r)
            }),
        };
        match result {
            Ok(0) => true,
            // A collector has nothing to say; whatever it sent is dropped.
            Ok(_) => false,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf),
            Stream::Unix(s) => s.write_all(buf),
        }
    }
}

/// An open sink with its own chain state.
pub(crate) struct Sink {
    pub spec: SinkSpec,
    /// The end of this sink's chain (what it has durably been given).
    pub head: Head,
    /// Records this sink did not get since its last successful write.
    pub missed: u64,
    pub healthy: bool,
    /// When this sink's failure was last raised as an alert, and whether
    /// that failure is still open (its recovery is raised too). A sink that
    /// fails and recovers over and over raises a failure at most once a
    /// minute.
    pub failure_alerted: Option<Instant>,
    pub failure_open: bool,
    /// How many times this file was rotated: head files planned before a
    /// rotation are not written after it (see `writer::write_heads`).
    pub generation: u64,
    /// A line to write first in this sink alone, before its next batch:
    /// the notice of a gap found at start (see [`check_head_file`]).
    pub lead: Option<Vec<u8>>,
    /// The head file found at start, whose tag could not be checked then
    /// (the key comes with unsealing): checked by the writer with the
    /// first key it gets (see [`Sink::check_head_tag`]). Until then no head
    /// file is written for this log, so a forged one stays for the next
    /// start to find.
    pub unchecked_head: Option<chain::HeadFile>,
    /// Records were written to this log with the key: no head file is
    /// written for it without the key any more (an untagged head file is
    /// trusted only for a log never written with the key).
    pub keyed: bool,
    kind: SinkKind,
    /// A test's simulated crash: [`Sink::rotate`] panics after this step.
    #[cfg(test)]
    pub crash_at: Option<RotateStep>,
}

enum SinkKind {
    File {
        file: File,
        /// Length after the last whole batch (regular files only).
        len: Option<u64>,
        /// Data written since the last sync.
        dirty: bool,
    },
    Stdout,
    Socket {
        stream: Option<Stream>,
        next_attempt: Instant,
    },
}

/// Why a sink could not be opened at start.
#[derive(Debug, thiserror::Error)]
#[error("audit {sink}: {message}")]
pub struct OpenError {
    /// The sink.
    pub sink: String,
    /// What went wrong.
    pub message: String,
}

impl Sink {
    /// Opens a sink. A file is opened for appending and its chain resumed
    /// from its last record; a trailing partial line (left by a crash mid
    /// write, so never acknowledged) is cut off, and a head file that is
    /// ahead of the log is reported in `notices`.
    pub fn open(spec: SinkSpec, notices: &mut Vec<Record>) -> Result<Sink, OpenError> {
        let err = |m: String| OpenError {
            sink: spec.describe(),
            message: m,
        };
        let mut lead = None;
        let mut unchecked_head = None;
        let mut keyed = false;
        let (kind, head) = match &spec {
            SinkSpec::File(path) => {
                use std::os::unix::fs::OpenOptionsExt;
                // A rotation cut short by a crash, finished or undone
                // before the log is opened.
                for done in recover_rotations(path)
                    .map_err(|e| err(format!("cannot recover an interrupted rotation: {e}")))?
                {
                    if done.alert {
                        notices.push(Record::file_alert(
                            "audit_rotation_unverified",
                            path,
                            1,
                            done.message,
                        ));
                        continue;
                    }
                    tracing::warn!(file = %path.display(), "{}", done.message);
                    notices.push(Record::notice(format!(
                        "{} {}",
                        chain::ROTATION_RECOVERED,
                        done.message
                    )));
                }
                // Never through a symbolic link: one planted at the log's
                // path would have the server append to (and cut back)
                // whatever it points at.
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .custom_flags(OFlags::NOFOLLOW.bits() as i32)
                    .open(path)
                    .map_err(|e| err(no_follow_error(e)))?;
                let meta = file.metadata().map_err(|e| err(e.to_string()))?;
                let (head, len) = if meta.is_file() {
                    let (mut head, len, last_unkeyed) =
                        resume(&mut file, path, notices).map_err(err)?;
                    // Whether the log has records written with the key (read
                    // from the file only when its last record was not; the
                    // first such line ends the read). An untagged head file
                    // is only ever written for a log that has none (see
                    // `Writer::heads_plan`).
                    let never_keyed =
                        head.seq == 0 || (last_unkeyed && all_unkeyed(&mut file).unwrap_or(false));
                    keyed = !never_keyed;
                    match check_head_file(path, head, never_keyed && head.seq > 0, notices) {
                        HeadCheck::Gap(next, notice) => {
                            head = next;
                            lead = Some(notice);
                        }
                        HeadCheck::TagToCheck(h) => unchecked_head = Some(h),
                        HeadCheck::Fine => {}
                    }
                    (head, Some(len))
                } else {
                    // A device or pipe: nothing to resume from.
                    (Head::EMPTY, None)
                };
                (
                    SinkKind::File {
                        file,
                        len,
                        dirty: false,
                    },
                    head,
                )
            }
            SinkSpec::Stdout => (SinkKind::Stdout, Head::EMPTY),
            SinkSpec::Socket(_) => (
                SinkKind::Socket {
                    stream: None,
                    next_attempt: Instant::now(),
                },
                Head::EMPTY,
            ),
        };
        Ok(Sink {
            spec,
            head,
            missed: 0,
            healthy: true,
            failure_alerted: None,
            failure_open: false,
            generation: 0,
            lead,
            keyed: keyed || unchecked_head.is_some(),
            unchecked_head,
            kind,
            #[cfg(test)]
            crash_at: None,
        })
    }

    /// Checks the tag of the head file found at start with the key, now
    /// that there is one. A head file the key did not tag was written by
    /// someone else (to hide a truncation: its numbers matched the log);
    /// then the notice of a gap of unknown extent is written first in this
    /// log, and the `audit_head_forged` alert returned.
    pub(crate) fn check_head_tag(&mut self, key: &coffer_crypto::AuditKey) -> Option<Record> {
        let h = self.unchecked_head.take()?;
        if h.head(Some(key)).is_some() {
            return None;
        }
        let path = self.path()?.to_path_buf();
        let alert = Record::file_alert(
            "audit_head_forged",
            &path,
            1,
            format!(
                "{}: the head file found when the server started (naming record {}) was not written by this server: the log may have been truncated or rewritten while it was stopped",
                path.display(),
                h.seq
            ),
        );
        if self.lead.is_none() {
            self.lead = unknown_gap_notice(
                h.seq,
                "the head file found at start was not written by this server (its tag does not verify)",
            );
        }
        Some(alert)
    }

    /// The length of a regular log file, as written.
    pub fn len(&self) -> Option<u64> {
        match &self.kind {
            SinkKind::File { len, .. } => *len,
            _ => None,
        }
    }

    /// Whether this is a regular log file (not stdout, a socket, or a
    /// device or pipe named as a file): the kind that can be rotated.
    pub fn is_regular_file(&self) -> bool {
        matches!(&self.kind, SinkKind::File { len: Some(_), .. })
    }

    /// Sets this log file aside as `target` and goes on in a new file at its
    /// path, whose chain starts again at record 1 with `opening` (a
    /// serialized notice naming the old file's end), linked with `key`.
    ///
    /// The rotation is journaled: the new file is written whole, synced,
    /// under a temporary name (`TARGET.next`, with its head file
    /// `TARGET.next.head`) before anything is renamed. Then, in order: the
    /// old file's head file is written beside `target` (`TARGET.head`, with
    /// `head_body`) and removed from beside the path; the old file is
    /// renamed to `target`; the new head file, then the new file, are
    /// renamed into place. A crash between two steps is finished or undone
    /// by [`recover_rotations`] at the next start: while the old file is
    /// still at the path, the rotation is undone; once it has been renamed,
    /// the rotation is completed from the journal. A step that fails undoes
    /// the ones before it, and the file goes on as it was.
    pub fn rotate(
        &mut self,
        target: &Path,
        head_body: &[u8],
        opening: &[u8],
        key: Option<&coffer_crypto::AuditKey>,
    ) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let SinkSpec::File(path) = &self.spec else {
            return Err(io::Error::other("only a log file can be rotated"));
        };
        let path = path.clone();
        let SinkKind::File {
            file,
            len: Some(_),
            dirty,
        } = &mut self.kind
        else {
            return Err(io::Error::other("only a regular log file can be rotated"));
        };
        // The file at the path must be the one being written: one renamed by
        // another tool (logrotate's default) would leave another file, or
        // none, there to be set aside in its place.
        {
            use std::os::unix::fs::MetadataExt;
            let (open, named) = (file.metadata()?, std::fs::metadata(&path));
            if !named.is_ok_and(|n| (n.dev(), n.ino()) == (open.dev(), open.ino())) {
                return Err(io::Error::other(
                    "the file at the log's path is not the one being written (moved or replaced by another tool?); move it back to rotate",
                ));
            }
        }
        file.sync_data()?;
        *dirty = false;
        #[cfg(test)]
        let crash = |step: RotateStep| {
            if self.crash_at == Some(step) {
                panic!("simulated crash at {step:?}");
            }
        };
        #[cfg(not(test))]
        let crash = |_: RotateStep| {};
        crash(RotateStep::Synced);
        let journal = journal_path(target);
        let journal_head = chain::head_path(&journal);
        let (live_head, target_head) = (chain::head_path(&path), chain::head_path(target));
        // Undoes the steps before the old file's rename.
        let discard = || {
            let _ = std::fs::remove_file(&journal);
            let _ = std::fs::remove_file(&journal_head);
            let _ = std::fs::remove_file(&target_head);
        };
        // 1. The new file, whole, under its temporary name.
        let mut line = Vec::with_capacity(opening.len() + 96);
        let mut new_head = Head::EMPTY;
        chain::append_line(&mut line, &mut Vec::new(), &mut new_head, key, 0, opening);
        let mut new = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(OFlags::NOFOLLOW.bits() as i32)
            .open(&journal)?;
        #[cfg(test)]
        if self.crash_at == Some(RotateStep::JournalPartial) {
            let _ = new.write_all(&line[..line.len() / 2]);
            crash(RotateStep::JournalPartial);
        }
        if let Err(e) = new.write_all(&line).and_then(|()| new.sync_data()) {
            discard();
            return Err(e);
        }
        crash(RotateStep::Journal);
        let new_head_body =
            serde_json::to_vec(&chain::HeadFile::new(new_head, key)).map_err(io::Error::other)?;
        if let Err(e) = write_head_file(&journal, &new_head_body) {
            discard();
            return Err(e);
        }
        crash(RotateStep::JournalHead);
        // 2. The old file's head file beside its new name.
        if let Err(e) = write_head_file(target, head_body) {
            discard();
            return Err(e);
        }
        crash(RotateStep::TargetHead);
        if let Err(e) = std::fs::remove_file(&live_head)
            && e.kind() != io::ErrorKind::NotFound
        {
            discard();
            return Err(e);
        }
        crash(RotateStep::LiveHeadRemoved);
        let undo_head = || {
            let _ = write_head_file(&path, head_body);
            discard();
        };
        // 3. The old file set aside.
        if let Err(e) = std::fs::rename(&path, target) {
            undo_head();
            return Err(e);
        }
        crash(RotateStep::Renamed);
        // 4. The new file's head file, then the new file, into place.
        let moved = std::fs::rename(&journal_head, &live_head).and_then(|()| {
            crash(RotateStep::NewHead);
            std::fs::rename(&journal, &path)
        });
        if let Err(e) = moved {
            // The path is free again (the new file never reached it).
            if std::fs::rename(target, &path).is_ok() {
                undo_head();
            }
            return Err(e);
        }
        crash(RotateStep::NewFile);
        // The renames, durable with the directory.
        let _ = File::open(parent_dir(&path)).and_then(|d| d.sync_all());
        self.kind = SinkKind::File {
            file: new,
            len: Some(line.len() as u64),
            dirty: false,
        };
        self.head = new_head;
        self.missed = 0;
        self.generation += 1;
        // A new file, written with the key if there was one; a head file
        // still to be checked was the old file's, and went with it
        // (untagged if the rotation was made while sealed, which
        // verification reports).
        self.keyed = key.is_some();
        self.unchecked_head = None;
        Ok(())
    }

    /// The file, for a file sink.
    pub fn path(&self) -> Option<&Path> {
        match &self.spec {
            SinkSpec::File(p) => Some(p),
            _ => None,
        }
    }

    /// Writes a batch of whole lines.
    pub fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        match &mut self.kind {
            SinkKind::File { file, len, dirty } => match file.write_all(batch) {
                Ok(()) => {
                    if let Some(l) = len {
                        *l += batch.len() as u64;
                    }
                    *dirty = true;
                    Ok(())
                }
                Err(e) => {
                    // Take back whatever part of the batch reached the file.
                    if let Some(l) = len {
                        let _ = file.set_len(*l);
                    }
                    Err(e)
                }
            },
            SinkKind::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(batch)?;
                out.flush()
            }
            SinkKind::Socket {
                stream,
                next_attempt,
            } => {
                if stream.is_none() {
                    if Instant::now() < *next_attempt {
                        return Err(io::Error::new(
                            io::ErrorKind::NotConnected,
                            "not connected (retrying)",
                        ));
                    }
                    *next_attempt = Instant::now() + RECONNECT_EVERY;
                    let SinkSpec::Socket(address) = &self.spec else {
                        unreachable!("socket kind has a socket spec")
                    };
                    *stream = Some(connect(address)?);
                }
                let s = stream.as_mut().expect("connected above");
                // A collector that closed its end would still take one write
                // into the kernel's buffer before the connection reports
                // the failure: look for the close first, so no batch is
                // acknowledged into a dead connection.
                if s.peer_closed() {
                    *stream = None;
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the collector closed the connection",
                    ));
                }
                if let Err(e) = s.write_all(batch) {
                    *stream = None;
                    return Err(e);
                }
                Ok(())
            }
        }
    }

    /// A second handle on a regular log file, for syncing it from another
    /// thread while this one keeps appending.
    pub fn sync_handle(&self) -> Option<File> {
        match &self.kind {
            SinkKind::File {
                file, len: Some(_), ..
            } => file.try_clone().ok(),
            _ => None,
        }
    }

    /// Flushes written data to stable storage (files only).
    pub fn sync(&mut self) -> io::Result<()> {
        if let SinkKind::File { file, dirty, .. } = &mut self.kind
            && *dirty
        {
            file.sync_data()?;
            *dirty = false;
        }
        Ok(())
    }
}

/// The steps of [`Sink::rotate`], after which a test can have it crash.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RotateStep {
    /// The old file synced, nothing else done.
    Synced,
    /// Half of the new file's first record written to the journal.
    JournalPartial,
    /// The journal (the new file) written and synced.
    Journal,
    /// The journal's head file written.
    JournalHead,
    /// The old file's head file written beside its new name.
    TargetHead,
    /// The old file's head file removed from beside the path.
    LiveHeadRemoved,
    /// The old file renamed.
    Renamed,
    /// The new head file renamed into place.
    NewHead,
    /// The new file renamed into place (before the directory is synced).
    NewFile,
}

/// `TARGET.next`: a rotation's new file, before it is renamed into place.
/// (Not a rotated file's name: see [`crate::rotated_files`].)
pub(crate) fn journal_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    target.with_file_name(name)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Finishes or undoes a rotation of `log` that a crash interrupted (see
/// [`Sink::rotate`]), from its journal (`LOG.STAMP.next`): while the old
/// file is still at `log`, the rotation is undone (the journal removed,
/// the old file's head file put back); once it has been renamed, the new
/// file and its head file are renamed into place. Returns what was done,
/// for a notice. Run at start, before the log is opened.
///
/// A journal is rolled forward only when it is the one the rotation of
/// the renamed file wrote: that file's head file names its last line, that
/// line is the rotation's closing notice, and the journal is exactly one
/// opening notice naming that end. Otherwise (a journal planted beside a
/// cut-back log, say, to make the cut look like a crash) nothing is moved
/// and an alert is returned for an operator to look.
pub(crate) fn recover_rotations(log: &Path) -> io::Result<Vec<Recovered>> {
    let Some(name) = log.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(Vec::new());
    };
    let dir = parent_dir(log);
    let mut journals = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(target) = file_name
            .strip_prefix(&format!("{name}."))
            .and_then(|rest| rest.strip_suffix(".next"))
        else {
            continue;
        };
        // Only a journal named after a rotated file's name, and a regular
        // file (never through a link).
        let target = log.with_file_name(format!("{name}.{target}"));
        let is_rotated_name = crate::is_rotated_name(log, &target);
        if is_rotated_name && entry.file_type()?.is_file() {
            journals.push(target);
        }
    }
    journals.sort();
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let mut done = Vec::new();
    for target in journals {
        let journal = journal_path(&target);
        let journal_head = chain::head_path(&journal);
        let (live_head, target_head) = (chain::head_path(log), chain::head_path(&target));
        match (exists(log), exists(&target)) {
            (true, false) => {
                // Cut short before the old file was renamed: undone. Its
                // head file goes back if it had been removed already.
                if exists(&target_head) {
                    // The head file beside the path is the old file's, unless
                    // the new one had been renamed over it (a rollback cut
                    // short after the new head file moved): then the one
                    // beside the target is the right one.
                    if exists(&live_head) && !head_names_journal(log, &journal) {
                        std::fs::remove_file(&target_head)?;
                    } else {
                        std::fs::rename(&target_head, &live_head)?;
                    }
                }
                remove_if_there(&journal_head)?;
                std::fs::remove_file(&journal)?;
                done.push(Recovered::notice(format!(
                    "the rotation of {} to {} was cut short before the file was renamed (the server stopped); it was undone, and the file goes on",
                    log.display(),
                    target.display()
                )));
            }
            (false, true) => {
                if let Err(why) = rotation_checks_out(&target, &journal) {
                    done.push(Recovered::alert(format!(
                        "{} names itself the new file of a rotation of {} to {} that was cut short, but {why}: nothing was renamed, and the files were left as they are for an operator to look at (the log may have been cut back and the journal planted to hide it); a new log is started at {}",
                        journal.display(),
                        log.display(),
                        target.display(),
                        log.display()
                    )));
                    continue;
                }
                // Cut short after: finished, head file first (a new file
                // with a record and no head file reads as a gap).
                if exists(&journal_head) {
                    std::fs::rename(&journal_head, &live_head)?;
                }
                std::fs::rename(&journal, log)?;
                done.push(Recovered::notice(format!(
                    "the rotation of {} to {} was cut short after the file was renamed (the server stopped); it was completed: the new file begins with its notice",
                    log.display(),
                    target.display()
                )));
            }
            _ => {
                // Both there, or neither: not a state a rotation leaves.
                // Left as found, for an operator to look at.
                done.push(Recovered::notice(format!(
                    "{} is the new file of a rotation of {} that was cut short, but {} and {} are {}: it was left as it is",
                    journal.display(),
                    log.display(),
                    log.display(),
                    target.display(),
                    if exists(log) { "both there" } else { "both missing" }
                )));
            }
        }
    }
    if !done.is_empty() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(done)
}

/// What [`recover_rotations`] did with one journal.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// What was done, for people.
    pub message: String,
    /// Whether an operator must look (the journal did not fit the file it
    /// names): raised as the `audit_rotation_unverified` alert.
    pub alert: bool,
}

impl Recovered {
    fn notice(message: String) -> Recovered {
        Recovered {
            message,
            alert: false,
        }
    }

    fn alert(message: String) -> Recovered {
        Recovered {
            message,
            alert: true,
        }
    }
}

/// Reads a regular file's last bytes (at most two records' worth), never
/// through a link.
fn read_tail(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = open_no_follow(path)?;
    let len = f.seek(SeekFrom::End(0))?;
    let window = len.min(chain::MAX_LINE as u64 * 2 + 2);
    f.seek(SeekFrom::Start(len - window))?;
    let mut tail = Vec::with_capacity(window as usize);
    f.read_to_end(&mut tail)?;
    Ok(tail)
}

/// The record and link of one whole line (without its newline).
fn parse_line(line: &[u8]) -> Option<(Record, [u8; 32])> {
    let record = serde_json::from_slice::<Record>(line).ok()?;
    let (_, link) = chain::split_line(line)?;
    Some((record, link))
}

/// Whether the journal is the one the rotation of `target` wrote: see
/// [`recover_rotations`]. Tags are checked later, with the key.
fn rotation_checks_out(target: &Path, journal: &Path) -> Result<(), String> {
    let head = match chain::read_head_file_raw(target) {
        Ok(Some(h)) => h
            .head(None)
            .ok_or_else(|| format!("the head file of {} is damaged", target.display()))?,
        Ok(None) => return Err(format!("{} has no head file", target.display())),
        Err(()) => {
            return Err(format!(
                "the head file of {} cannot be read",
                target.display()
            ));
        }
    };
    let tail =
        read_tail(target).map_err(|e| format!("{} cannot be read: {e}", target.display()))?;
    let body = tail
        .strip_suffix(b"\n")
        .ok_or_else(|| format!("{} does not end with a whole record", target.display()))?;
    let last = &body[body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)..];
    let closes = parse_line(last).is_some_and(|(r, link)| {
        r.seq == Some(head.seq)
            && link == head.link
            && r.message
                .as_deref()
                .is_some_and(|m| m.starts_with(chain::ROTATION_CLOSING))
    });
    if !closes {
        return Err(format!(
            "the last record of {} is not the rotation notice its head file names",
            target.display()
        ));
    }
    let journal_tail = read_tail(journal).map_err(|e| format!("it cannot be read: {e}"))?;
    let opens = journal_tail
        .strip_suffix(b"\n")
        .filter(|l| !l.contains(&b'\n'))
        .and_then(parse_line)
        .is_some_and(|(r, _)| {
            r.seq == Some(1)
                && r.message.as_deref().is_some_and(|m| {
                    m.starts_with(chain::ROTATION_OPENING) && m.contains(&chain::continuation(head))
                })
        });
    if !opens {
        return Err(format!(
            "it is not one opening notice naming the end of {} (record {})",
            target.display(),
            head.seq
        ));
    }
    Ok(())
}

/// Whether the head file beside `log` names the journal's first record
/// (the new file's head, renamed into place before a rollback).
fn head_names_journal(log: &Path, journal: &Path) -> bool {
    let Ok(Some(live)) = chain::read_head_file_raw(log) else {
        return false;
    };
    let Ok(tail) = read_tail(journal) else {
        return false;
    };
    let first = tail.split(|b| *b == b'\n').next().unwrap_or_default();
    chain::split_line(first)
        .is_some_and(|(_, link)| live.seq == 1 && live.chain == crate::hex(&link))
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `LOG.head` (mode 0600) through a temporary file and a rename, so
/// a reader never sees half of one.
///
/// The temporary file is created anew (`O_EXCL`, and `O_NOFOLLOW`): a file
/// or symbolic link already at its name (left by a crash, or planted to
/// have the server overwrite what it points at) is removed first, which
/// removes the link, never its target. The rename replaces whatever is at
/// the head's name, a link included, without following it.
pub(crate) fn write_head_file(log: &Path, body: &[u8]) -> io::Result<()> {
    let head_path = chain::head_path(log);
    let tmp = head_path.with_extension("head.tmp");
    let mut f = match create_new(&tmp) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&tmp)?;
            create_new(&tmp)?
        }
        other => other?,
    };
    if let Err(e) = f.write_all(body) {
        drop(f);
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    drop(f);
    std::fs::rename(&tmp, &head_path)
}

/// Creates `path`, mode 0600, failing if anything (a link included) is there.
fn create_new(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Opens `path` for reading, not through a symbolic link, and only if it
/// is a regular file: a FIFO planted at a head file's name would block the
/// open (and the server's start, or a verification) until someone wrote
/// to it, so it is opened without blocking and refused.
pub(crate) fn open_no_follow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), no_follow_error(e)))?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// An open error, saying so when it was a symbolic link that was refused
/// (`ELOOP` from `O_NOFOLLOW`).
fn no_follow_error(e: io::Error) -> String {
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        "it is a symbolic link, which is never followed: name the file itself".into()
    } else {
        e.to_string()
    }
}

fn connect(address: &str) -> io::Result<Stream> {
    if let Some(path) = address.strip_prefix("unix:") {
        let s = UnixStream::connect(path)?;
        s.set_write_timeout(Some(SOCKET_TIMEOUT))?;
        return Ok(Stream::Unix(s));
    }
    let hostport = address.strip_prefix("tcp://").unwrap_or(address);
    let mut last = io::Error::new(io::ErrorKind::NotFound, "address did not resolve");
    for addr in hostport.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT) {
            Ok(s) => {
                s.set_write_timeout(Some(SOCKET_TIMEOUT))?;
                s.set_nodelay(true)?;
                return Ok(Stream::Tcp(s));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether every record of the log was written without the key (each
/// line begins `{"seq":N,"unkeyed":true`, as the writer writes it).
fn all_unkeyed(file: &mut File) -> io::Result<bool> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = io::BufReader::new(&mut *file);
    let mut line = Vec::new();
    let mut all = true;
    loop {
        line.clear();
        // No line longer than a record is held whole (the rest of one
        // does not begin like a record, which ends the read).
        if (&mut reader)
            .take(chain::MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?
            == 0
        {
            break;
        }
        let rest = line.strip_prefix(b"{\"seq\":").unwrap_or(b"");
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || !rest[digits..].starts_with(b",\"unkeyed\":true") {
            all = false;
            break;
        }
    }
    file.seek(SeekFrom::End(0))?;
    Ok(all)
}

/// Finds the last whole record of a log file, cutting off a partial line.
/// Returns the head to continue from and the file's length.
fn resume(
    file: &mut File,
    path: &Path,
    notices: &mut Vec<Record>,
) -> Result<(Head, u64, bool), String> {
    let len = file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    if len == 0 {
        return Ok((Head::EMPTY, 0, false));
    }
    let window = len.min(chain::MAX_LINE as u64 * 2);
    file.seek(SeekFrom::Start(len - window))
        .map_err(|e| e.to_string())?;
    let mut tail = Vec::with_capacity(window as usize);
    file.read_to_end(&mut tail).map_err(|e| e.to_string())?;
    let mut end = tail.len();
    if tail.last() != Some(&b'\n') {
        // A crash mid-write: the partial line was never acknowledged.
        let cut = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if cut == 0 && window < len {
            return Err("the log ends with a line longer than any record".into());
        }
        let new_len = len - (tail.len() - cut) as u64;
        file.set_len(new_len).map_err(|e| e.to_string())?;
        notices.push(Record::notice(format!(
            "removed {} bytes of an incomplete record at the end of {} (a write cut short by a crash; it was never acknowledged)",
            tail.len() - cut,
            path.display()
        )));
        end = cut;
    }
    if end == 0 {
        return Ok((Head::EMPTY, len - (tail.len() - end) as u64, false));
    }
    let body = &tail[..end - 1];
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if start == 0 && window < len {
        return Err("the log ends with a line longer than any record".into());
    }
    let last = &body[start..];
    let record = serde_json::from_slice::<Record>(last).ok();
    let seq = record.as_ref().and_then(|r| r.seq);
    let unkeyed = record.is_some_and(|r| r.unkeyed);
    let link = chain::split_line(last).map(|(_, l)| l);
    match (seq, link) {
        (Some(seq), Some(link)) => Ok((
            Head { seq, link },
            len - (tail.len() - end) as u64,
            unkeyed,
        )),
        _ => Err(
            "its last record is unreadable, so the chain cannot continue; run `coffer audit verify`, move the file aside and restart"
                .into(),
        ),
    }
}

/// What [`check_head_file`] found.
enum HeadCheck {
    /// Nothing to say.
    Fine,
    /// A gap: the head to go on from and the notice to write first.
    Gap(Head, Vec<u8>),
    /// The numbers agree, but the head file's tag can only be checked with
    /// the key.
    TagToCheck(chain::HeadFile),
}

/// The notice of a gap of unknown extent after record `after`: the log's
/// end could not be checked (`why`). It fails verification until
/// acknowledged, like any gap.
fn unknown_gap_notice(after: u64, why: &str) -> Option<Vec<u8>> {
    let notice = Record {
        gap: Some(crate::record::Gap {
            first: after + 1,
            last: after,
        }),
        ..Record::notice(format!(
            "{} records after record {after} may be missing: {why}, so whether records were removed from the end of the log while the server was stopped cannot be checked; `coffer audit verify` fails until an operator acknowledges this gap (`coffer audit acknowledge-gap`)",
            chain::GAP_NOTICE
        ))
    };
    let mut json = notice.encode().ok()?;
    crate::sanitize::clean(&mut json);
    Some(json)
}

/// Compares a resumed log with its head file: a log that ends before its
/// head (or whose last record is not the one its head names) was truncated
/// or rewritten while the server was down. Raises the
/// `audit_log_truncated` alert (for every sink and the webhooks), and
/// returns the head to go on from with the notice of the gap to write
/// first in this file: the numbering goes on after the highest record the
/// log ever had, so the records that were lost are never numbered twice
/// and the gap stays in the file for `coffer audit verify` to report
/// until an operator acknowledges it.
///
/// A log with records but no head file, or a damaged one, or an untagged
/// one (written while sealed) beside a log with records written with the
/// key (`never_keyed` false), gets the notice of a gap of unknown extent: a
/// truncated log whose head file was removed or replaced cannot be told
/// from an intact one. A tagged head file whose numbers agree is returned
/// for its tag to be checked once the key is there.
fn check_head_file(
    path: &Path,
    resumed: Head,
    never_keyed: bool,
    notices: &mut Vec<Record>,
) -> HeadCheck {
    if resumed.seq == 0 {
        // An empty log: nothing to check (a head file beside it is a
        // truncation, found below).
        if !chain::head_path(path).exists() {
            return HeadCheck::Fine;
        }
    }
    let file = chain::read_head_file_raw(path);
    let valid = file
        .as_ref()
        .ok()
        .and_then(|f| f.as_ref().and_then(|f| f.head(None)));
    let h = match valid {
        Some(h) => h,
        None => {
            let what = match file {
                Ok(None) => "has no head file",
                _ => "has a damaged head file",
            };
            notices.push(Record::file_alert(
                "audit_head_missing",
                path,
                1,
                format!(
                    "{} {what}: whether records were removed from its end while the server was stopped cannot be checked; a new head file is written from record {}, and `coffer audit verify` fails until this is acknowledged",
                    path.display(),
                    resumed.seq
                ),
            ));
            return match unknown_gap_notice(resumed.seq, &format!("the log {what}")) {
                Some(n) => HeadCheck::Gap(resumed, n),
                None => HeadCheck::Fine,
            };
        }
    };
    let file = file.ok().flatten().expect("a valid head comes from a file");
    if h.seq <= resumed.seq && !(h.seq == resumed.seq && h.link != resumed.link) {
        return match &file.tag {
            Some(_) => HeadCheck::TagToCheck(file),
            // Written while sealed, for a log never written with the key.
            None if never_keyed => HeadCheck::Fine,
            None => {
                notices.push(Record::file_alert(
                    "audit_head_forged",
                    path,
                    1,
                    format!(
                        "{}: its head file names record {} without the tag of the audit key, but the log has records written with the key",
                        path.display(),
                        h.seq
                    ),
                ));
                match unknown_gap_notice(
                    resumed.seq,
                    "the log's head file is untagged, but the log has records written with the key",
                ) {
                    Some(n) => HeadCheck::Gap(resumed, n),
                    None => HeadCheck::Fine,
                }
            }
        };
    }
    let truncated = h.seq > resumed.seq;
    let message = format!(
        "{} ends at record {} but its head file names record {}: the log was truncated or rewritten while the server was stopped",
        path.display(),
        resumed.seq,
        h.seq
    );
    notices.push(Record::file_alert(
        "audit_log_truncated",
        path,
        h.seq.saturating_sub(resumed.seq).max(1),
        message,
    ));
    // A head file far beyond the log (forged: its tag is only checked by
    // `verify`) is reported like any other, but the numbering does not
    // jump to near the end of the range.
    let credible = h.seq < u64::MAX / 4;
    let (gap, next) = if truncated && credible {
        (
            crate::record::Gap {
                first: resumed.seq + 1,
                last: h.seq,
            },
            Head {
                seq: h.seq,
                link: resumed.link,
            },
        )
    } else if truncated {
        (
            crate::record::Gap {
                first: resumed.seq + 1,
                last: h.seq,
            },
            resumed,
        )
    } else {
        (
            crate::record::Gap {
                first: h.seq,
                last: h.seq,
            },
            resumed,
        )
    };
    let what = if truncated {
        format!("records {} to {} are missing", gap.first, gap.last)
    } else {
        format!(
            "record {} is not the one the head file named (rewritten)",
            gap.first
        )
    };
    let notice = Record {
        gap: Some(gap),
        ..Record::notice(format!(
            "{} {what}: found when the server started, so they were lost while it was stopped; `coffer audit verify` fails until an operator acknowledges this gap (`coffer audit acknowledge-gap`)",
            chain::GAP_NOTICE
        ))
    };
    let Ok(mut json) = notice.encode() else {
        return HeadCheck::Fine;
    };
    crate::sanitize::clean(&mut json);
    HeadCheck::Gap(next, json)
}
