//! The audit writer: group commit of records to every sink.
//!
//! Request tasks serialize their record (in parallel, on the runtime's
//! workers) and queue it with a one-shot reply. Whichever task finds no
//! writer at work becomes the leader and writes whatever has queued up (one
//! record at low load, many at high load): it runs the alert rules over
//! them, links each sink's lines into its chain and writes each sink once
//! per batch. A request is acknowledged as recorded when at least one sink
//! took the batch; if none did, every request in it is told so and must fail.
//!
//! Head files (`FILE.head`) are rewritten at most five times a second and on
//! close; files are synced to disk every second by a separate thread (or by
//! the writer after every batch with [`Fsync::Batch`]) and on close.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use coffer_crypto::AuditKey;

use crate::alerts::{AlertEngine, AlertRules};
use crate::chain::{self, Head, HeadFile};
use crate::record::Record;
use crate::sink::{OpenError, Sink, SinkSpec};

/// When file sinks are flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every batch, before any request in it is acknowledged.
    Batch,
    /// At most this long after a record was written (and on close).
    Interval(Duration),
}

/// Supplies the audit key while coffer is unsealed.
pub type KeySource = Arc<dyn Fn() -> Option<AuditKey> + Send + Sync>;

/// How to run the writer.
pub struct AuditorConfig {
    /// Sinks, at least one.
    pub sinks: Vec<SinkSpec>,
    /// Flush policy for files.
    pub fsync: Fsync,
    /// Alert thresholds.
    pub rules: AlertRules,
    /// The audit key, asked for once per batch.
    pub key: KeySource,
    /// When log files are rotated without being asked.
    pub rotation: Rotation,
}

/// Automatic rotation of log files (besides [`Auditor::rotate`]), and how
/// long the files set aside are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate once a log file has grown to this many bytes.
    pub max_bytes: Option<u64>,
    /// Rotate once this long has passed since the last rotation (or the start).
    pub every: Option<Duration>,
    /// After each rotation, remove the oldest rotated files of each log
    /// beyond this many (none removed by count when unset).
    pub keep_files: Option<usize>,
    /// After each rotation, remove the rotated files set aside longer ago
    /// than this, by the time in their names (none removed by age when unset).
    pub keep_for: Option<Duration>,
}

/// Why the writer did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No sink configured.
    #[error("no audit sink is configured")]
    NoSinks,
    /// A sink could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The thread could not be spawned.
    #[error("cannot start the audit writer: {0}")]
    Thread(std::io::Error),
}

struct Pending {
    record: Record,
    json: Vec<u8>,
    /// Told whether a sink took the record (see [`courier`] for batches
    /// handed to another thread, which carry one for all).
    ack: Option<tokio::sync::oneshot::Sender<bool>>,
    /// Sent through [`Auditor::record`], not raised by the writer itself
    /// (its notices and the alert rules' records).
    from_caller: bool,
    /// A test of the sinks while none works (see [`PROBE_EVERY`]): a sink
    /// that does not take it has not missed a record.
    probe: bool,
    /// For the sinks that are not regular files only (the notice of a
    /// rotation, which each new file begins with already).
    streams_only: bool,
}

/// A record's line as it is linked and written: serialized, with
/// token-shaped strings masked and line and direction characters escaped
/// (see [`crate::sanitize`]), and the record as the line says it (what the
/// alert rules and the webhooks see).
fn serialize(mut record: Record) -> Option<(Record, Vec<u8>)> {
    let mut json = record.encode().ok()?;
    if crate::sanitize::clean(&mut json).masked {
        // Rare: a token-shaped string was in it. Read back what is written.
        let mut masked: Record = serde_json::from_slice(&json).ok()?;
        masked.expand();
        return Some((masked, json));
    }
    record.v = Some(crate::record::VERSION);
    Some((record, json))
}

impl Pending {
    fn notice(record: Record) -> Pending {
        let (record, json) = serialize(record).expect("records serialize");
        Pending {
            json,
            record,
            ack: None,
            from_caller: false,
            probe: false,
            streams_only: false,
        }
    }

    fn probe() -> Pending {
        Pending {
            probe: true,
            ..Pending::notice(Record::notice(PROBE_NOTICE))
        }
    }
}

/// While no sink can record, the upkeep thread offers one of these to the
/// sinks this often, so that service resumes once one recovers without a
/// request having to be refused first (a server that its load balancer has
/// stopped sending requests to, on health's 503, would otherwise never
/// find out).
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Only a sink that takes it ever holds it: so it always reads true.
const PROBE_NOTICE: &str = "audit log recording again: no sink could record for a while; \
    this record, written by the server to test the sinks, is the first this one took since \
    (`missed` counts the records it lost)";

/// The queue of records waiting for a leader to write them.
struct Queue {
    pending: Vec<Pending>,
    /// A task is writing batches; new records join the next one.
    leader: bool,
    closed: bool,
}

struct Shared {
    /// One queue per thread slot. The server runs one single-threaded
    /// runtime per core, so a leader only gathers (and acknowledges) the
    /// records of its own thread: waking a task on another core costs a
    /// system call and a context switch, more than the record's write.
    queues: Vec<Mutex<Queue>>,
    writer: Mutex<Writer>,
    /// Batches handed over by threads that found the writer busy. A thread
    /// never blocks on the writer while another one writes (a blocked
    /// worker stalls every connection of its runtime, and a writer that is
    /// preempted mid-write would stall both): it leaves its batch here and
    /// goes on serving; whoever holds the writer commits these before and
    /// after letting go (see [`Shared::release`]), and their requests are
    /// acknowledged from that thread.
    handed: Mutex<Vec<Pending>>,
    /// Head-file I/O, outside the writer's lock (creating and renaming a
    /// file can wait for the file system's journal, and no request should
    /// wait with it), with the generation (see `Sink::generation`) and
    /// record number each file was last written at.
    head_io: Mutex<HeadsWritten>,
    /// Itself, for tasks that commit later.
    this: Weak<Shared>,
}

/// Per log file: the generation and record number of its last head file.
type HeadsWritten = std::collections::HashMap<PathBuf, (u64, u64)>;

/// Queue slots; threads beyond this share them.
const SLOTS: usize = 16;

/// The queue slot of the calling thread.
fn slot() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
    }
    SLOT.with(|s| *s)
}

impl Shared {
    /// Writes batches until queue `slot` is empty. After a few rounds the
    /// rest is handed to a new task, so that one request is not held up
    /// writing everyone else's records while load lasts.
    fn drain(self: &Arc<Self>, slot: usize) {
        for _ in 0..ROUNDS_INLINE {
            let mut batch = {
                let mut q = self.queues[slot].lock().unwrap_or_else(|p| p.into_inner());
                if q.pending.is_empty() {
                    q.leader = false;
                    return;
                }
                std::mem::take(&mut q.pending)
            };
            self.commit_or_hand_over(&mut batch);
        }
        let shared = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move { shared.drain(slot) });
            }
            Err(_) => shared.drain(slot),
        }
    }
}

impl Shared {
    /// Commits `batch` if the writer is free; otherwise hands it to the
    /// thread that holds the writer, without waiting for it.
    fn commit_or_hand_over(&self, batch: &mut Vec<Pending>) {
        if let Some(mut w) = self.try_writer() {
            w.commit(batch);
            self.release(w);
            return;
        }
        courier(batch);
        lock(&self.handed).append(batch);
        // The holder may have let go between the attempt and the hand-off,
        // before this batch was there to see.
        if let Some(w) = self.try_writer() {
            self.release(w);
        }
    }

    /// The writer, blocking: for the maintenance thread and close, never
    /// for a request's thread. Let go of it with [`Shared::release`].
    fn writer_blocking(&self) -> MutexGuard<'_, Writer> {
        lock(&self.writer)
    }

    fn try_writer(&self) -> Option<MutexGuard<'_, Writer>> {
        match self.writer.try_lock() {
            Ok(w) => Some(w),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Commits the handed-over batches and lets go of the writer; then looks
    /// again, because a batch handed over while the writer was held, after
    /// the last look, is there for whoever lets go next to commit. Every
    /// holder goes through here, so no batch is left behind: a thread that
    /// hands one over finds the writer held, and its holder looks after
    /// letting go. On a runtime, after a few rounds the rest goes to a new
    /// task, so one request is not kept writing others' records while
    /// contention lasts; off one (the upkeep thread, close) it goes on.
    fn release<'a>(&'a self, mut w: MutexGuard<'a, Writer>) {
        let mut rounds = 0;
        loop {
            let mut handed = std::mem::take(&mut *lock(&self.handed));
            if !handed.is_empty() {
                w.commit(&mut handed);
            }
            drop(w);
            if lock(&self.handed).is_empty() {
                return;
            }
            rounds += 1;
            if rounds >= ROUNDS_INLINE
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
                && let Some(shared) = self.this.upgrade()
            {
                runtime.spawn(async move {
                    if let Some(w) = shared.try_writer() {
                        shared.release(w);
                    }
                });
                return;
            }
            match self.try_writer() {
                Some(again) => w = again,
                None => return,
            }
        }
    }
}

/// [`Auditor::rotate`], also run by the upkeep thread for [`Rotation`].
fn rotate_shared(shared: &Shared) -> Result<RotateReport, RotateError> {
    let stamp = rotation_stamp();
    // Flush what the files already hold first, outside the writer's lock:
    // up to a second of records with `Fsync::Interval`, whose sync took
    // ~10 ms at 20,000 records/s. The sync under the lock, which requests
    // wait for, then has only what came meanwhile.
    let handles: Vec<std::fs::File> = {
        let w = shared.writer_blocking();
        let handles = w.sinks.iter().filter_map(Sink::sync_handle).collect();
        shared.release(w);
        handles
    };
    for h in &handles {
        let _ = h.sync_data();
    }
    let mut w = shared.writer_blocking();
    if w.sinks.iter().all(|s| !s.is_regular_file()) {
        shared.release(w);
        return Err(RotateError::NoFiles);
    }
    if lock(&shared.queues[0]).closed {
        shared.release(w);
        return Err(RotateError::Closed);
    }
    // Before the notice: records already handed over were taken first.
    let mut handed = std::mem::take(&mut *lock(&shared.handed));
    if !handed.is_empty() {
        w.commit(&mut handed);
    }
    let mut report = {
        // Held throughout, so that no head file planned before the
        // rotation is written in the middle of it.
        let mut heads_written = lock(&shared.head_io);
        w.rotate(&stamp, &mut heads_written)
    };
    let policy = w.rotation;
    let logs: Vec<PathBuf> = report.rotated.iter().map(|r| r.log.clone()).collect();
    shared.release(w);
    if !logs.is_empty() && (policy.keep_files.is_some() || policy.keep_for.is_some()) {
        expire(shared, &policy, &logs, &mut report);
    }
    Ok(report)
}

/// Removes the rotated files of `logs` that `policy` no longer keeps, with
/// their head files, outside the writer's lock, and records what went in a
/// notice (or an `audit_retention_failed` alert for a file that could not
/// be removed). Only the oldest go: a file is removed only if every file
/// older than it is too, so what remains is an unbroken history.
fn expire(shared: &Shared, policy: &Rotation, logs: &[PathBuf], report: &mut RotateReport) {
    let now = time::OffsetDateTime::now_utc();
    let mut records = Vec::new();
    for log in logs {
        let files = match crate::rotated_files(log) {
            Ok(f) => f,
            Err(e) => {
                report
                    .expire_failed
                    .push((log.clone(), format!("cannot list its rotated files: {e}")));
                continue;
            }
        };
        let count = files.len();
        let mut removed = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let newer = count - i - 1;
            let too_many = policy.keep_files.is_some_and(|keep| newer >= keep);
            let too_old = policy.keep_for.is_some_and(|keep| {
                crate::rotation_time(log, file).is_some_and(|t| now - t > keep)
            });
            if !(too_many || too_old) {
                // Newer files are kept too.
                break;
            }
            let head = chain::head_path(file);
            match std::fs::remove_file(file) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&head);
                    tracing::info!(file = %file.display(), "rotated audit log file removed (retention)");
                    removed.push(file.clone());
                }
                // Removed meanwhile (by a rotation that ran alongside).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(file = %file.display(), error = %e, "cannot remove a rotated audit log file (retention)");
                    report
                        .expire_failed
                        .push((file.clone(), format!("cannot remove it: {e}")));
                    // Removing a newer one would leave a gap.
                    break;
                }
            }
        }
        if !removed.is_empty() {
            let names: Vec<String> = removed.iter().map(|f| f.display().to_string()).collect();
            records.push(Pending::notice(Record::notice(format!(
                "{} removed {}: rotated files of {} {}",
                chain::RETENTION_NOTICE,
                names.join(", "),
                log.display(),
                describe_retention(policy)
            ))));
            report.expired.extend(removed);
        }
    }
    for (file, reason) in &report.expire_failed {
        let message = format!("{} was not removed by retention ({reason})", file.display());
        records.push(Pending {
            from_caller: true,
            ..Pending::notice(Record::file_alert(
                "audit_retention_failed",
                file,
                1,
                message,
            ))
        });
    }
    if !records.is_empty() {
        let mut w = shared.writer_blocking();
        w.commit(&mut records);
        shared.release(w);
    }
}

/// The retention policy, in words, for the notice.
fn describe_retention(policy: &Rotation) -> String {
    let mut parts = Vec::new();
    if let Some(n) = policy.keep_files {
        parts.push(format!("beyond the {n} newest"));
    }
    if let Some(d) = policy.keep_for {
        let s = d.as_secs();
        parts.push(if s % 86_400 == 0 {
            format!("older than {} days", s / 86_400)
        } else {
            format!("older than {s} s")
        });
    }
    parts.join(" or ")
}

/// On a runtime, replaces the acknowledgements of a batch about to be
/// handed over with one, delivered to a task on this thread that then
/// acknowledges each request here. Whoever commits the batch runs on another
/// thread, and waking a task there costs a system call (and the woken
/// runtime an event) per task: one per batch instead of one per request.
/// If the courier is dropped unsent (the runtime shutting down, a panic in
/// the writer), its requests learn that their records were not taken.
fn courier(batch: &mut [Pending]) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let acks: Vec<_> = batch.iter_mut().filter_map(|p| p.ack.take()).collect();
    let Some(last) = batch.last_mut().filter(|_| !acks.is_empty()) else {
        return;
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    last.ack = Some(tx);
    runtime.spawn(async move {
        let taken = rx.await.unwrap_or(false);
        for ack in acks {
            let _ = ack.send(taken);
        }
    });
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes the queue when dropped: held by the leading request.
struct Leader<'a>(&'a Arc<Shared>, usize);

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.0.drain(self.1);
    }
}

/// Rounds a request's task writes before handing on.
const ROUNDS_INLINE: usize = 2;

/// The handle request tasks use to record.
pub struct Auditor {
    shared: Arc<Shared>,
    healthy: Arc<AtomicBool>,
    heads: Arc<Mutex<Vec<(PathBuf, Head)>>>,
    files: Vec<PathBuf>,
    maintenance: Mutex<Option<(Arc<AtomicBool>, JoinHandle<()>)>>,
}

impl Auditor {
    /// Opens every sink and writes the opening notice. Alerts raised by the
    /// rules are also sent on the returned channel (for webhooks).
    pub fn start(
        config: AuditorConfig,
    ) -> Result<(Auditor, tokio::sync::mpsc::UnboundedReceiver<Record>), StartError> {
        if config.sinks.is_empty() {
            return Err(StartError::NoSinks);
        }
        let mut notices = Vec::new();
        let mut sinks = Vec::new();
        for spec in config.sinks {
            if sinks.iter().any(|s: &Sink| s.spec == spec) {
                continue;
            }
            sinks.push(Sink::open(spec, &mut notices)?);
        }
        let files: Vec<PathBuf> = sinks
            .iter()
            .filter_map(|s| s.path().map(PathBuf::from))
            .collect();
        let heads = Arc::new(Mutex::new(
            sinks
                .iter()
                .filter_map(|s| s.path().map(|p| (p.to_path_buf(), s.head)))
                .collect(),
        ));
        let healthy = Arc::new(AtomicBool::new(true));
        let (alert_tx, alert_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut writer = Writer {
            sinks,
            fsync: config.fsync,
            key: config.key,
            engine: AlertEngine::new(config.rules),
            alert_tx,
            healthy: healthy.clone(),
            heads: heads.clone(),
            // The first head file is written with the first records: a
            // log with records and no head file is reported as a gap.
            heads_written: Instant::now()
                .checked_sub(HEADS_EVERY)
                .unwrap_or_else(Instant::now),
            heads_dirty: true,
            written: Arc::new(AtomicBool::new(false)),
            last_rotation: Instant::now(),
            rotation: config.rotation,
            out: Vec::new(),
            scratch: Vec::new(),
        };
        // The first record says the log is open. It is written before any
        // request can be, so a sink that cannot write (a full disk) is known
        // to be failing before the first request is handled.
        notices.push(Record::notice(format!(
            "audit log opened: {}",
            writer
                .sinks
                .iter()
                .map(|s| s.spec.describe())
                .collect::<Vec<_>>()
                .join(", ")
        )));
        for n in notices
            .iter()
            .filter(|n| n.kind == crate::record::Kind::Alert)
        {
            let _ = writer.alert_tx.send(n.clone());
        }
        let mut first: Vec<Pending> = notices.into_iter().map(Pending::notice).collect();
        writer.commit(&mut first);
        let written = writer.written.clone();
        let interval = match config.fsync {
            Fsync::Interval(every) => Some(every),
            Fsync::Batch => None,
        };
        let rotation = config.rotation;
        let shared = Arc::new_cyclic(|this: &Weak<Shared>| Shared {
            queues: (0..SLOTS)
                .map(|_| {
                    Mutex::new(Queue {
                        pending: Vec::new(),
                        leader: false,
                        closed: false,
                    })
                })
                .collect(),
            writer: Mutex::new(writer),
            handed: Mutex::new(Vec::new()),
            head_io: Mutex::new(std::collections::HashMap::new()),
            this: this.clone(),
        });
        // Upkeep on its own thread: head files at most five times a second,
        // and interval syncs on second handles (an fsync of a second's worth
        // of records can take milliseconds; no request waits for it).
        let stop = Arc::new(AtomicBool::new(false));
        let (s, sh, up) = (stop.clone(), shared.clone(), healthy.clone());
        let thread = std::thread::Builder::new()
            .name("coffer-audit".into())
            .spawn(move || {
                let mut synced = Instant::now();
                let mut probed = Instant::now();
                // After a failed automatic rotation, the next try waits: each
                // try writes its notice into the log.
                let mut retry_at = Instant::now();
                while !s.load(Ordering::Relaxed) {
                    std::thread::park_timeout(HEADS_EVERY);
                    let mut w = sh.writer_blocking();
                    if !up.load(Ordering::Relaxed) && probed.elapsed() >= PROBE_EVERY {
                        probed = Instant::now();
                        w.commit(&mut vec![Pending::probe()]);
                    }
                    let plan = w.heads_due();
                    let why = w.rotation_due(&rotation);
                    sh.release(w);
                    write_heads(&sh.head_io, plan);
                    if let Some(why) = why.filter(|_| Instant::now() >= retry_at) {
                        let failed = match rotate_shared(&sh) {
                            Ok(report) => {
                                for r in &report.rotated {
                                    tracing::info!(file = %r.log.display(), to = %r.to.display(), records = r.records, reason = why, "audit log file rotated");
                                }
                                for (file, reason) in &report.failed {
                                    tracing::error!(file = %file.display(), %reason, "audit log file not rotated; trying again in a minute");
                                }
                                !report.failed.is_empty()
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "audit log not rotated");
                                true
                            }
                        };
                        if failed {
                            retry_at = Instant::now() + ROTATION_RETRY;
                        }
                    }
                    if let Some(every) = interval
                        && synced.elapsed() >= every
                    {
                        synced = Instant::now();
                        if written.swap(false, Ordering::Relaxed) {
                            // Handles on the files as they are now (a
                            // rotation replaces them), synced outside the lock.
                            let w = sh.writer_blocking();
                            let handles: Vec<std::fs::File> =
                                w.sinks.iter().filter_map(Sink::sync_handle).collect();
                            sh.release(w);
                            for h in &handles {
                                if let Err(e) = h.sync_data() {
                                    tracing::error!(error = %e, "audit log sync failed");
                                }
                            }
                        }
                    }
                }
            })
            .map_err(StartError::Thread)?;
        Ok((
            Auditor {
                shared,
                healthy,
                heads,
                files,
                maintenance: Mutex::new(Some((stop, thread))),
            },
            alert_rx,
        ))
    }

    /// Records `record`; resolves to whether at least one sink has it. A
    /// `false` means the caller must not answer with what it was going to.
    ///
    /// Group commit without a writer thread: the first caller to find no
    /// writer at work becomes the leader and writes what has queued up (its
    /// own record and any that arrive meanwhile) on its own thread; the
    /// others wait for their acknowledgement. A hand-off between threads per
    /// record cost more than the writing itself.
    pub async fn record(&self, record: Record) -> bool {
        let Some((record, json)) = serialize(record) else {
            return false;
        };
        let (ack, done) = tokio::sync::oneshot::channel();
        let slot = slot();
        let lead = {
            let mut q = self.shared.queues[slot]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if q.closed {
                return false;
            }
            q.pending.push(Pending {
                record,
                json,
                ack: Some(ack),
                from_caller: true,
                probe: false,
                streams_only: false,
            });
            !std::mem::replace(&mut q.leader, true)
        };
        if lead {
            // Let the other tasks this thread has ready (the requests that
            // came in with this one) reach their own record first, so that
            // one write carries them all. The pause is one turn of the
            // runtime: the tasks already ready run, the event loop is
            // polled without waiting, and the leader goes on. Pausing only
            // while other requests were already in the handler missed most
            // of them (those not yet parsed), and about every second
            // request wrote alone at full load. The guard drains also when
            // this request is dropped during the pause (its client went
            // away), so the queue is never left with a leader that will
            // not come back.
            let _leader = Leader(&self.shared, slot);
            tokio::task::yield_now().await;
        }
        done.await.unwrap_or(false)
    }

    /// Whether the last batch reached at least one sink. While it did not,
    /// the server refuses requests before handling them.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The log files written, in configuration order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The current head of each log file.
    pub fn heads(&self) -> Vec<(PathBuf, Head)> {
        self.heads.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sets every regular log file aside and starts a new one at its path,
    /// while requests go on: see `Sink::rotate` for the file steps. The
    /// old file ends with a notice that says so (its last record), with its
    /// head file paired to its new name; the new file's first record is a
    /// notice naming the old file, its last record and that record's link,
    /// so the two can be told to belong together. Other sinks get both
    /// notices. The old file is renamed to `FILE.YYYYMMDDTHHMMSSZ` (UTC,
    /// with `-N` added if that name is taken).
    ///
    /// Blocks on the writer, and on the file system: call it from a
    /// blocking thread, not a runtime's.
    pub fn rotate(&self) -> Result<RotateReport, RotateError> {
        rotate_shared(&self.shared)
    }

    /// Writes what is queued, a closing notice, the head files, syncs, and
    /// stops. Records sent afterwards are refused.
    pub fn close(&self) {
        let mut pending = Vec::new();
        for queue in &self.shared.queues {
            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.closed {
                return;
            }
            q.closed = true;
            pending.append(&mut q.pending);
        }
        // The upkeep thread stops first, so that nothing of its own (a
        // probe, a rotation) comes after the closing notice.
        if let Some((stop, t)) = self
            .maintenance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            stop.store(true, Ordering::Relaxed);
            t.thread().unpark();
            let _ = t.join();
        }
        let mut w = self.shared.writer_blocking();
        pending.append(&mut lock(&self.shared.handed));
        if !pending.is_empty() {
            w.commit(&mut pending);
        }
        let plan = w.finish();
        self.shared.release(w);
        write_heads(&self.shared.head_io, plan);
    }
}

impl Drop for Auditor {
    fn drop(&mut self) {
        self.close();
    }
}

const HEADS_EVERY: Duration = Duration::from_millis(200);
/// The shortest time between two alerts of one sink's failure.
const SINK_ALERT_EVERY: Duration = Duration::from_secs(60);
/// How long an automatic rotation that failed waits before the next try.
const ROTATION_RETRY: Duration = Duration::from_secs(60);

struct Writer {
    sinks: Vec<Sink>,
    fsync: Fsync,
    key: KeySource,
    engine: AlertEngine,
    alert_tx: tokio::sync::mpsc::UnboundedSender<Record>,
    healthy: Arc<AtomicBool>,
    heads: Arc<Mutex<Vec<(PathBuf, Head)>>>,
    heads_written: Instant,
    heads_dirty: bool,
    /// Set after each batch that reached a sink; the sync thread clears it.
    written: Arc<AtomicBool>,
    /// When files were last rotated (or the writer started).
    last_rotation: Instant,
    /// The rotation policy, with the retention of rotated files.
    rotation: Rotation,
    out: Vec<u8>,
    scratch: Vec<u8>,
}

impl Writer {
    /// Writes a batch to every sink and acknowledges it.
    fn commit(&mut self, batch: &mut Vec<Pending>) {
        let key = (self.key)();
        // The rules see records in order; an alert follows its trigger.
        let mut items: Vec<Pending> = Vec::with_capacity(batch.len());
        // With the first key, the head files found at start are checked.
        if let Some(k) = &key {
            for sink in &mut self.sinks {
                if let Some(alert) = sink.check_head_tag(k) {
                    let _ = self.alert_tx.send(alert.clone());
                    items.push(Pending::notice(alert));
                }
            }
        }
        for p in batch.drain(..) {
            // An alert raised outside the rules (the lifecycle scheduler's)
            // goes to the webhooks like the rules' own; the start-up notices
            // were sent before their first commit.
            if p.record.kind == crate::record::Kind::Alert && p.from_caller {
                let _ = self.alert_tx.send(p.record.clone());
            }
            let alerts = self.engine.observe(&p.record, Instant::now());
            items.push(p);
            for a in alerts {
                tracing::warn!(
                    target: "coffer::alert",
                    alert = a.alert.as_ref().map_or("", |i| i.rule.as_str()),
                    "{}",
                    crate::sanitize::visible(a.message.as_deref().unwrap_or(""))
                );
                let _ = self.alert_tx.send(a.clone());
                items.push(Pending::notice(a));
            }
        }
        let mut any = false;
        // Sinks that failed or recovered in this batch, raised as alerts
        // once the batch is settled.
        let mut changes: Vec<Record> = Vec::new();
        for sink in &mut self.sinks {
            self.out.clear();
            let mut head = sink.head;
            if let Some(lead) = &sink.lead {
                chain::append_line(
                    &mut self.out,
                    &mut self.scratch,
                    &mut head,
                    key.as_ref(),
                    0,
                    lead,
                );
            }
            let file = sink.is_regular_file();
            let mut first = true;
            for p in items.iter().filter(|p| !(p.streams_only && file)) {
                let missed = if std::mem::take(&mut first) {
                    sink.missed
                } else {
                    0
                };
                chain::append_line(
                    &mut self.out,
                    &mut self.scratch,
                    &mut head,
                    key.as_ref(),
                    missed,
                    &p.json,
                );
            }
            if self.out.is_empty() {
                // Nothing for this sink (a notice for streams only, to a
                // file): left as it is. An empty write would succeed and
                // reset a failing sink's count of records it missed.
                any |= sink.healthy;
                continue;
            }
            let mut result = sink.write(&self.out);
            if result.is_ok() && self.fsync == Fsync::Batch {
                result = sink.sync();
            }
            match result {
                Ok(()) => {
                    if !sink.healthy {
                        tracing::warn!(sink = %sink.spec.describe(), missed = sink.missed, "audit sink recovered");
                        if std::mem::take(&mut sink.failure_open) {
                            changes.push(Record::sink_alert(
                                "audit_sink_recovered",
                                &sink.spec.describe(),
                                sink.missed,
                                format!(
                                    "the audit sink {} records again; it missed {} records while it failed",
                                    sink.spec.describe(),
                                    sink.missed
                                ),
                            ));
                        }
                    }
                    sink.head = head;
                    sink.keyed |= key.is_some();
                    sink.lead = None;
                    sink.missed = 0;
                    sink.healthy = true;
                    any = true;
                }
                Err(e) => {
                    if sink.healthy {
                        tracing::error!(sink = %sink.spec.describe(), error = %e, "audit sink failed; requests succeed only while another sink records them");
                        let now = Instant::now();
                        if !sink.failure_open
                            && sink
                                .failure_alerted
                                .is_none_or(|t| now.duration_since(t) >= SINK_ALERT_EVERY)
                        {
                            sink.failure_alerted = Some(now);
                            sink.failure_open = true;
                            // The error names a file or an address of the
                            // configuration, never a record.
                            changes.push(Record::sink_alert(
                                "audit_sink_failed",
                                &sink.spec.describe(),
                                1,
                                format!(
                                    "the audit sink {} failed ({}); requests succeed only while another sink records them",
                                    sink.spec.describe(),
                                    crate::sanitize::visible(&e.to_string())
                                ),
                            ));
                        }
                    }
                    sink.healthy = false;
                    sink.missed += items
                        .iter()
                        .filter(|p| !(p.probe || (p.streams_only && file)))
                        .count() as u64;
                }
            }
        }
        if !any && self.healthy.load(Ordering::Relaxed) {
            tracing::error!("no audit sink can record: requests are refused until one recovers");
            changes.push(Record::sink_alert(
                "audit_unavailable",
                "audit",
                1,
                "no audit sink can record: requests are refused until one recovers".into(),
            ));
        } else if any && !self.healthy.load(Ordering::Relaxed) {
            tracing::warn!("an audit sink records again: requests are served");
        }
        self.healthy.store(any, Ordering::Relaxed);
        for p in items {
            if let Some(ack) = p.ack {
                let _ = ack.send(any);
            }
        }
        // To the webhooks always (a failure is news when no sink can record
        // it), and to the sinks that still record. Each change is raised once
        // per transition, so this settles: a sink that fails while writing
        // these raises nothing more until it has recovered.
        if !changes.is_empty() {
            for r in &changes {
                let _ = self.alert_tx.send(r.clone());
            }
            if any {
                let mut follow: Vec<Pending> = changes.into_iter().map(Pending::notice).collect();
                self.commit(&mut follow);
            }
        }
        if any {
            self.heads_dirty = true;
            self.written.store(true, Ordering::Relaxed);
            let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
            heads.clear();
            heads.extend(
                self.sinks
                    .iter()
                    .filter_map(|s| s.path().map(|p| (p.to_path_buf(), s.head))),
            );
        }
    }

    /// The head files to write, when they are due (see [`write_heads`]).
    fn rotate(&mut self, stamp: &str, heads_written: &mut HeadsWritten) -> RotateReport {
        let files: Vec<String> = self
            .sinks
            .iter()
            .filter(|s| s.is_regular_file())
            .map(|s| s.spec.describe())
            .collect();
        self.commit(&mut vec![Pending::notice(Record::notice(format!(
            "{} this is the last record of {}; each goes on in a new file at the same path",
            chain::ROTATION_CLOSING,
            files.join(", ")
        )))]);
        let key = (self.key)();
        let mut report = RotateReport::default();
        self.last_rotation = Instant::now();
        for sink in self.sinks.iter_mut().filter(|s| s.is_regular_file()) {
            let Some(path) = sink.path().map(PathBuf::from) else {
                continue;
            };
            if !sink.healthy {
                report.failed.push((
                    path,
                    "the file is failing (it did not take the rotation notice); it was left as it is"
                        .into(),
                ));
                continue;
            }
            let head = sink.head;
            let target = rotation_target(&path, stamp);
            let body =
                serde_json::to_vec(&HeadFile::new(head, key.as_ref())).expect("head serializes");
            // The new file's first record, written with it (see
            // `Sink::rotate`): it names the old file's end.
            let (_, opening) = serialize(Record::notice(format!(
                "{} {} continues from {} {}",
                chain::ROTATION_OPENING,
                path.display(),
                target.display(),
                chain::continuation(head)
            )))
            .expect("records serialize");
            match sink.rotate(&target, &body, &opening, key.as_ref()) {
                Ok(()) => {
                    // Head files planned before now are for the old file;
                    // the new one's was written with it.
                    heads_written.insert(path.clone(), (sink.generation, sink.head.seq));
                    report.rotated.push(RotatedFile {
                        log: path,
                        to: target,
                        records: head.seq,
                        last_link: head.link,
                    });
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot rotate the audit log file; it goes on as it was");
                    report.failed.push((path, e.to_string()));
                }
            }
        }
        if !report.rotated.is_empty() {
            let what: Vec<String> = report
                .rotated
                .iter()
                .map(|r| {
                    format!(
                        "{} continues from {} {}",
                        r.log.display(),
                        r.to.display(),
                        chain::continuation(Head {
                            seq: r.records,
                            link: r.last_link,
                        })
                    )
                })
                .collect();
            // The other sinks (standard output, sockets) are told too;
            // each new file has its own notice already.
            if self.sinks.iter().any(|s| !s.is_regular_file()) {
                self.commit(&mut vec![Pending {
                    streams_only: true,
                    ..Pending::notice(Record::notice(format!(
                        "{} {}",
                        chain::ROTATION_OPENING,
                        what.join("; ")
                    )))
                }]);
            }
            tracing::info!(files = report.rotated.len(), "audit log rotated");
        }
        if !report.failed.is_empty() {
            let mut alerts: Vec<Pending> = report
                .failed
                .iter()
                .map(|(file, reason)| {
                    let message = format!(
                        "{} was not rotated ({reason}); it goes on as it was",
                        file.display()
                    );
                    let r = Record::file_alert("audit_rotation_failed", file, 1, message);
                    let _ = self.alert_tx.send(r.clone());
                    Pending::notice(r)
                })
                .collect();
            self.commit(&mut alerts);
        }
        // The heads of the new files, even if no sink took that notice.
        {
            let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
            heads.clear();
            heads.extend(
                self.sinks
                    .iter()
                    .filter_map(|s| s.path().map(|p| (p.to_path_buf(), s.head))),
            );
        }
        // The new files' head files are written now, not with the next
        // upkeep: a new file with records and no head file reads as a gap
        // of unknown extent, so a crash in between would raise a false
        // alarm after every rotation.
        let plan = self.heads_plan();
        write_heads_locked(heads_written, plan);
        report
    }

    /// Why the log files are due for rotation under `policy`, if they are:
    /// a file has reached its size, or the interval has passed since the
    /// last rotation (asked for or not) or the start. A failing file does
    /// not count (its rotation would fail).
    fn rotation_due(&self, policy: &Rotation) -> Option<&'static str> {
        let files = || {
            self.sinks
                .iter()
                .filter(|s| s.is_regular_file() && s.healthy)
        };
        if policy
            .max_bytes
            .is_some_and(|max| files().any(|s| s.len().is_some_and(|l| l >= max)))
        {
            return Some("size");
        }
        if policy
            .every
            .is_some_and(|every| self.last_rotation.elapsed() >= every)
            && files().next().is_some()
        {
            return Some("interval");
        }
        None
    }

    fn heads_due(&mut self) -> Vec<HeadWrite> {
        if self.heads_dirty && self.heads_written.elapsed() >= HEADS_EVERY {
            self.heads_plan()
        } else {
            Vec::new()
        }
    }

    /// Writes the closing notice and syncs; returns the last head files.
    fn finish(&mut self) -> Vec<HeadWrite> {
        self.commit(&mut vec![Pending::notice(Record::notice(
            chain::CLOSED_NOTICE,
        ))]);
        self.sync_all();
        self.heads_plan()
    }

    fn sync_all(&mut self) {
        for sink in &mut self.sinks {
            if let Err(e) = sink.sync() {
                tracing::error!(sink = %sink.spec.describe(), error = %e, "audit sink sync failed");
            }
        }
    }

    /// Each regular log file's head file as it stands now.
    fn heads_plan(&mut self) -> Vec<HeadWrite> {
        let key = (self.key)();
        let plan = self
            .sinks
            .iter()
            // A head file whose tag is still to be checked is left as it
            // is, for the next start to find if this one never gets the key.
            .filter(|sink| {
                sink.head.seq > 0 && sink.unchecked_head.is_none() && (key.is_some() || !sink.keyed)
            })
            .filter_map(|sink| {
                Some(HeadWrite {
                    log: sink.path()?.to_path_buf(),
                    generation: sink.generation,
                    seq: sink.head.seq,
                    body: serde_json::to_vec(&HeadFile::new(sink.head, key.as_ref()))
                        .expect("head serializes"),
                })
            })
            .collect();
        self.heads_written = Instant::now();
        self.heads_dirty = false;
        plan
    }
}

/// A head file to write: its log, the record it names, its bytes.
struct HeadWrite {
    log: PathBuf,
    generation: u64,
    seq: u64,
    body: Vec<u8>,
}

/// Rewrites head files (write, then rename, so a reader never sees half of
/// one), one writer at a time, never back to an older record, and never
/// over the head of a later generation of the file (after a rotation).
fn write_heads(io: &Mutex<HeadsWritten>, plan: Vec<HeadWrite>) {
    if plan.is_empty() {
        return;
    }
    let mut written = io.lock().unwrap_or_else(|p| p.into_inner());
    write_heads_locked(&mut written, plan);
}

/// [`write_heads`], for a caller that holds the lock already.
fn write_heads_locked(written: &mut HeadsWritten, plan: Vec<HeadWrite>) {
    for h in plan {
        if written.get(&h.log).is_some_and(|&(generation, seq)| {
            generation > h.generation || (generation == h.generation && seq >= h.seq)
        }) || !std::fs::metadata(&h.log).is_ok_and(|m| m.is_file())
        {
            continue;
        }
        match crate::sink::write_head_file(&h.log, &h.body) {
            Ok(()) => {
                written.insert(h.log, (h.generation, h.seq));
            }
            Err(e) => {
                tracing::warn!(file = %chain::head_path(&h.log).display(), error = %e, "cannot write the audit head file");
            }
        }
    }
}

/// What [`Auditor::rotate`] did.
#[derive(Debug, Clone, Default)]
pub struct RotateReport {
    /// The files set aside.
    pub rotated: Vec<RotatedFile>,
    /// Files that could not be, and why; they go on as they were.
    pub failed: Vec<(PathBuf, String)>,
    /// Rotated files removed after the rotation by the retention policy
    /// ([`Rotation::keep_files`], [`Rotation::keep_for`]), with their head files.
    pub expired: Vec<PathBuf>,
    /// Rotated files the policy no longer keeps that could not be removed
    /// (or logs whose files could not be listed), and why.
    pub expire_failed: Vec<(PathBuf, String)>,
}

/// One log file set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedFile {
    /// The log's path, where a new file now starts at record 1.
    pub log: PathBuf,
    /// Where the records up to the rotation are, with their head file.
    pub to: PathBuf,
    /// How many records it holds (the last one is the rotation notice).
    pub records: u64,
    /// The chain link of its last record.
    pub last_link: [u8; 32],
}

/// Why nothing was rotated.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Only standard output, sockets or devices are written.
    #[error(
        "this server writes no audit log file to rotate (only standard output, sockets or devices)"
    )]
    NoFiles,
    /// The auditor was closed (the server is stopping).
    #[error("the audit log is closed")]
    Closed,
}

/// `YYYYMMDDTHHMMSSZ`, now, UTC.
fn rotation_stamp() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `LOG.STAMP`, or `LOG.STAMP-N` when that (or its head file) exists.
fn rotation_target(log: &std::path::Path, stamp: &str) -> PathBuf {
    let name = log.file_name().unwrap_or_default().to_string_lossy();
    // A name that sorts after every rotated file there is: after a file of
    // the same second (even if an older one of that second was removed),
    // and after one named by a clock that has since gone back.
    let last = crate::rotated_entries(log)
        .ok()
        .and_then(|files| files.into_iter().last())
        .map(|(key, _)| key);
    let (stamp, first) = match last {
        Some((newest, n)) if newest.as_str() >= stamp => (newest, n + 1),
        _ => (stamp.to_string(), 0),
    };
    (first..)
        .map(|n| {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            log.with_file_name(format!("{name}.{stamp}{suffix}"))
        })
        .find(|t| {
            !t.exists() && !chain::head_path(t).exists() && !crate::sink::journal_path(t).exists()
        })
        .expect("some name is free")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// An auditor writing to `file` with a fresh key, and its alerts.
    fn start_with(
        file: PathBuf,
        key: AuditKey,
        rotation: Rotation,
    ) -> (
        Auditor,
        tokio::sync::mpsc::UnboundedReceiver<Record>,
        AuditKey,
    ) {
        let k = key.clone();
        let (auditor, alerts) = Auditor::start(AuditorConfig {
            sinks: vec![SinkSpec::File(file)],
            fsync: Fsync::Interval(Duration::from_secs(1)),
            rules: AlertRules::default(),
            key: Arc::new(move || Some(k.clone())),
            rotation,
        })
        .expect("auditor starts");
        (auditor, alerts, key)
    }

    fn start_on(
        file: PathBuf,
    ) -> (
        Auditor,
        tokio::sync::mpsc::UnboundedReceiver<Record>,
        AuditKey,
    ) {
        let key = coffer_crypto::Keyring::generate(0).audit_key();
        start_with(file, key, Rotation::default())
    }

    fn start(dir: &std::path::Path) -> (Auditor, PathBuf, AuditKey) {
        let path = dir.join("audit.log");
        let (auditor, _alerts, key) = start_on(path.clone());
        (auditor, path, key)
    }

    fn request(id: String) -> Record {
        Record {
            time: crate::now_rfc3339(),
            kind: crate::record::Kind::Request,
            request_id: Some(id),
            ..Record::default()
        }
    }

    fn request_ids(path: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Record>(l).unwrap())
            .filter_map(|r| r.request_id)
            .collect()
    }

    fn verifies(path: &std::path::Path, key: &AuditKey) {
        let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let report = chain::verify(file, key, None).unwrap();
        assert!(report.problem.is_none(), "{:?}", report.problem);
    }

    /// Starts `threads` threads, each with its own single-threaded runtime
    /// (as the server runs them), each recording `each` requests at once as
    /// tasks (ids `T-I`), every one of which must be acknowledged.
    fn record_from_runtimes(
        auditor: &Arc<Auditor>,
        threads: usize,
        each: usize,
    ) -> Vec<JoinHandle<()>> {
        (0..threads)
            .map(|t| {
                let auditor = auditor.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        let tasks: Vec<_> = (0..each)
                            .map(|i| {
                                let a = auditor.clone();
                                tokio::spawn(
                                    async move { a.record(request(format!("{t}-{i}"))).await },
                                )
                            })
                            .collect();
                        for task in tasks {
                            assert!(task.await.unwrap(), "a record was not acknowledged");
                        }
                    });
                })
            })
            .collect()
    }

    /// Several threads, each with its own single-threaded runtime (as the
    /// server runs them), record at once: every record is acknowledged,
    /// written exactly once, and the log is one unbroken chain.
    #[test]
    fn concurrent_records_from_several_runtimes_are_each_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let (auditor, path, key) = start(dir.path());
        let auditor = Arc::new(auditor);
        let threads = record_from_runtimes(&auditor, 4, 250);
        for t in threads {
            t.join().unwrap();
        }
        auditor.close();
        let ids = request_ids(&path);
        assert_eq!(ids.len(), 1000);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1000);
        verifies(&path, &key);
    }

    /// A leading request dropped while it waits for others to queue (its
    /// client went away) still writes the queue, so the requests behind it
    /// are not left waiting for a leader that will not come back.
    #[test]
    fn a_leader_dropped_during_its_pause_still_writes_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let (auditor, path, key) = start(dir.path());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            // The leader pauses for one turn of the runtime.
            {
                let mut leader = pin!(auditor.record(request("dropped".into())));
                let mut cx = Context::from_waker(Waker::noop());
                assert!(
                    matches!(leader.as_mut().poll(&mut cx), Poll::Pending),
                    "the leader pauses before writing"
                );
            }
            let next = tokio::time::timeout(
                Duration::from_secs(5),
                auditor.record(request("after".into())),
            )
            .await
            .expect("the next record is written");
            assert!(next);
        });
        auditor.close();
        assert_eq!(request_ids(&path), ["dropped", "after"]);
        verifies(&path, &key);
    }

    /// A thread that finds the writer busy hands its batch over and keeps
    /// serving instead of blocking: while another thread holds the writer,
    /// its runtime still runs other tasks, and its record is written, and
    /// acknowledged, as soon as the holder lets go.
    #[test]
    fn a_busy_writer_takes_the_batch_without_blocking_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (auditor, path, key) = start(dir.path());
        let auditor = Arc::new(auditor);
        let held = auditor.shared.writer_blocking();
        let (ticks_tx, ticks_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<bool>();
        let a = auditor.clone();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(async move {
                let ticker = tokio::spawn(async move {
                    for _ in 0..3 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        let _ = ticks_tx.send(());
                    }
                });
                let recorded = a.record(request("handed".into())).await;
                ticker.await.unwrap();
                done_tx.send(recorded).unwrap();
            });
        });
        for _ in 0..3 {
            ticks_rx
                .recv_timeout(Duration::from_secs(5))
                .expect("the runtime goes on while the writer is held elsewhere");
        }
        assert!(
            done_rx.try_recv().is_err(),
            "acknowledged before it was written"
        );
        assert!(request_ids(&path).is_empty());
        auditor.shared.release(held);
        assert!(done_rx.recv_timeout(Duration::from_secs(5)).unwrap());
        t.join().unwrap();
        assert_eq!(request_ids(&path), ["handed"]);
        auditor.close();
        verifies(&path, &key);
    }

    /// A batch handed over carries one acknowledgement for all its
    /// requests, delivered back on their own thread; each is still told,
    /// and an alert recorded by a caller among them still goes to the
    /// webhooks, once.
    #[test]
    fn a_handed_over_batch_acknowledges_every_request_through_one_courier() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (auditor, mut alerts, key) = start_on(path.clone());
        let auditor = Arc::new(auditor);
        let held = auditor.shared.writer_blocking();
        let a = auditor.clone();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut alert = request("alert".into());
                alert.kind = crate::record::Kind::Alert;
                let last = a.clone();
                let tasks: Vec<_> = ["r1", "r2", "r3"]
                    .into_iter()
                    .map(|id| {
                        let a = a.clone();
                        tokio::spawn(async move { a.record(request(id.into())).await })
                    })
                    .chain([tokio::spawn(async move { last.record(alert).await })])
                    .collect();
                let mut acks = Vec::new();
                for task in tasks {
                    acks.push(task.await.unwrap());
                }
                acks
            })
        });
        while lock(&auditor.shared.handed).len() < 4 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // One acknowledgement crosses threads for the whole batch.
        assert_eq!(
            lock(&auditor.shared.handed)
                .iter()
                .filter(|p| p.ack.is_some())
                .count(),
            1
        );
        auditor.shared.release(held);
        assert_eq!(t.join().unwrap(), [true; 4]);
        let mut ids = request_ids(&path);
        ids.sort();
        assert_eq!(ids, ["alert", "r1", "r2", "r3"]);
        let sent = alerts.try_recv().expect("the alert went to the webhooks");
        assert_eq!(sent.request_id.as_deref(), Some("alert"));
        assert!(alerts.try_recv().is_err(), "sent once");
        auditor.close();
        verifies(&path, &key);
    }

    /// A sink that fails is an alert, once, to the webhooks and into the
    /// sinks that still record; when none records, that is an alert too.
    #[test]
    fn a_failing_sink_raises_one_alert_recorded_by_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("audit.log");
        let key = coffer_crypto::Keyring::generate(0).audit_key();
        let k = key.clone();
        let (auditor, mut alerts) = Auditor::start(AuditorConfig {
            sinks: vec![
                SinkSpec::File(good.clone()),
                SinkSpec::File(PathBuf::from("/dev/full")),
            ],
            fsync: Fsync::Interval(Duration::from_secs(1)),
            rules: AlertRules::default(),
            key: Arc::new(move || Some(k.clone())),
            rotation: Rotation::default(),
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for i in 0..5 {
            assert!(rt.block_on(auditor.record(request(format!("r{i}")))));
        }
        assert!(auditor.healthy());
        let mut raised = Vec::new();
        while let Ok(a) = alerts.try_recv() {
            raised.push(a);
        }
        let failed: Vec<_> = raised
            .iter()
            .filter_map(|r| r.alert.as_ref())
            .filter(|a| a.rule == "audit_sink_failed")
            .collect();
        assert_eq!(failed.len(), 1, "{raised:?}");
        assert_eq!(failed[0].subject, "file /dev/full");
        assert!(
            !raised.iter().any(|r| r
                .alert
                .as_ref()
                .is_some_and(|a| a.rule == "audit_unavailable")),
            "another sink records: the audit log is available"
        );
        auditor.close();
        let text = std::fs::read_to_string(&good).unwrap();
        assert_eq!(text.matches("\"audit_sink_failed\"").count(), 1, "{text}");
        verifies(&good, &key);
    }

    #[test]
    fn no_sink_recording_raises_audit_unavailable() {
        let (auditor, mut alerts, _key) = start_on(PathBuf::from("/dev/full"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for i in 0..3 {
            assert!(!rt.block_on(auditor.record(request(format!("r{i}")))));
        }
        let mut rules = Vec::new();
        while let Ok(a) = alerts.try_recv() {
            rules.extend(a.alert.map(|a| a.rule));
        }
        assert_eq!(
            rules,
            ["audit_sink_failed", "audit_unavailable"],
            "once each"
        );
        auditor.close();
    }

    /// Fail closed on the hand-off too: a batch handed over to the thread
    /// that holds the writer, when no sink can take it, is acknowledged as
    /// not recorded.
    #[test]
    fn a_handed_over_batch_that_no_sink_takes_is_refused() {
        let (auditor, _alerts, _key) = start_on(PathBuf::from("/dev/full"));
        let auditor = Arc::new(auditor);
        let held = auditor.shared.writer_blocking();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<bool>();
        let a = auditor.clone();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let recorded = rt.block_on(a.record(request("refused".into())));
            done_tx.send(recorded).unwrap();
        });
        // Handed over, not written: nothing is acknowledged yet.
        while lock(&auditor.shared.handed).is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(done_rx.try_recv().is_err());
        auditor.shared.release(held);
        let recorded = done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(!recorded, "a record no sink took was acknowledged");
        assert!(!auditor.healthy());
        t.join().unwrap();
    }

    fn records(path: &std::path::Path) -> Vec<Record> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Record>(l).unwrap())
            .collect()
    }

    /// Each file verifies against its head file, and each continues the
    /// one before it.
    fn verifies_as_one_history(files: &[PathBuf], key: &AuditKey) {
        let mut previous: Option<chain::VerifyReport> = None;
        for file in files {
            verifies_with_head(file, key);
            let report = chain::verify(
                std::io::BufReader::new(std::fs::File::open(file).unwrap()),
                key,
                None,
            )
            .unwrap();
            if let Some(p) = &previous {
                assert!(
                    chain::continues(p, &report),
                    "{} does not continue",
                    file.display()
                );
            }
            previous = Some(report);
        }
    }

    /// Verifies a log against its own head file, which must be there.
    fn verifies_with_head(path: &std::path::Path, key: &AuditKey) -> Head {
        let chain::HeadFileState::Valid(head) = chain::read_head_file(path, Some(key)) else {
            panic!("no valid head file beside {}", path.display());
        };
        let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let report = chain::verify(file, key, Some(head)).unwrap();
        assert!(
            report.problem.is_none(),
            "{}: {:?}",
            path.display(),
            report.problem
        );
        assert_eq!(
            report.records,
            head.seq,
            "{}: the head is its end",
            path.display()
        );
        head
    }

    /// A log written in the first record format goes on in version 2: the
    /// chain covers the bytes as written, so the file verifies (against
    /// its head) across the change, and queries and the readers report
    /// read both alike, with every field.
    #[test]
    fn a_first_format_log_goes_on_in_version_2_and_reads_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let key = coffer_crypto::Keyring::generate(0).audit_key();
        let read = |id: &str| Record {
            request_id: Some(id.into()),
            ..crate::record::tests::typical_read()
        };
        // Two reads as the first format wrote them, with their head file.
        let (mut out, mut scratch, mut head) = (Vec::new(), Vec::new(), Head::EMPTY);
        for id in ["old-1", "old-2"] {
            let json = serde_json::to_vec(&read(id)).unwrap();
            assert!(json.windows(8).any(|w| w == b"\"route\":"));
            chain::append_line(&mut out, &mut scratch, &mut head, Some(&key), 0, &json);
        }
        std::fs::write(&path, &out).unwrap();
        let body = serde_json::to_vec(&HeadFile::new(head, Some(&key))).unwrap();
        crate::sink::write_head_file(&path, &body).unwrap();
        let (auditor, _alerts, key) = start_with(path.clone(), key, Rotation::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(auditor.record(read("new-1")).await);
            assert!(auditor.record(read("new-2")).await);
        });
        auditor.close();
        verifies_with_head(&path, &key);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(!lines[0].contains("\"v\":") && lines[0].contains("\"route\":"));
        let new = lines.iter().find(|l| l.contains("new-1")).unwrap();
        assert!(
            new.contains("\"v\":2,") && !new.contains("\"route\":"),
            "{new}"
        );
        // Query and readers: the four reads, alike.
        let open = || std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let found = crate::query::search(
            open(),
            &crate::query::Filter {
                op: Some("secret.read".into()),
                ..crate::query::Filter::default()
            },
            10,
        )
        .unwrap();
        let ids: Vec<&str> = found
            .records
            .iter()
            .filter_map(|r| r.request_id.as_deref())
            .collect();
        assert_eq!(ids, ["old-1", "old-2", "new-1", "new-2"]);
        for r in &found.records {
            assert_eq!(
                (r.method.as_deref(), r.route.as_deref(), r.kind),
                (
                    Some("GET"),
                    Some("/api/v1/secrets/myapp/prod/DB_PASSWORD"),
                    crate::record::Kind::Request
                ),
                "{r:?}"
            );
        }
        let (readers, unreadable) =
            crate::query::readers(open(), "myapp/prod/DB_PASSWORD", Some(3)).unwrap();
        assert_eq!((readers.len(), readers[0].reads, unreadable), (1, 4, 0));
    }

    /// A server killed at any step of a rotation: the next start finishes
    /// or undoes it, and the whole history verifies, against its head
    /// files, with every record once and no gap reported.
    #[test]
    fn a_rotation_cut_short_at_any_step_is_recovered_at_the_next_start() {
        use crate::sink::RotateStep as S;
        let steps = [
            (S::Synced, false),
            (S::JournalPartial, false),
            (S::Journal, false),
            (S::JournalHead, false),
            (S::TargetHead, false),
            (S::LiveHeadRemoved, false),
            (S::Renamed, true),
            (S::NewHead, true),
            (S::NewFile, true),
        ];
        for (step, rotated) in steps {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.log");
            let key = coffer_crypto::Keyring::generate(0).audit_key();
            let (auditor, _alerts, key) = start_with(path.clone(), key, Rotation::default());
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                for i in 0..5 {
                    assert!(auditor.record(request(format!("r-{i}"))).await);
                }
            });
            // The first head file written (as five times a second), then
            // upkeep stopped: a killed server writes no head file later.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !chain::head_path(&path).exists() {
                assert!(Instant::now() < deadline, "no head file");
                std::thread::sleep(Duration::from_millis(20));
            }
            let (stop, upkeep) = auditor.maintenance.lock().unwrap().take().unwrap();
            stop.store(true, Ordering::Relaxed);
            upkeep.thread().unpark();
            upkeep.join().unwrap();
            let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut w = auditor.shared.writer_blocking();
                w.sinks[0].crash_at = Some(step);
                w.rotate("20261207T000000Z", &mut HashMap::new())
            }));
            assert!(crashed.is_err(), "{step:?}: the crash was not simulated");
            // Killed: nothing more is written, nothing closed.
            std::mem::forget(auditor);
            let target = dir.path().join("audit.log.20261207T000000Z");
            assert_eq!(target.exists(), rotated, "{step:?}");

            let (auditor, _alerts, key) = start_with(path.clone(), key, Rotation::default());
            rt.block_on(async {
                for i in 5..10 {
                    assert!(auditor.record(request(format!("r-{i}"))).await);
                }
            });
            auditor.close();
            let history = crate::with_rotated(&path).unwrap();
            assert_eq!(history.len(), if rotated { 2 } else { 1 }, "{step:?}");
            verifies_as_one_history(&history, &key);
            let ids: Vec<String> = history.iter().flat_map(|f| request_ids(f)).collect();
            assert_eq!(
                ids,
                (0..10).map(|i| format!("r-{i}")).collect::<Vec<_>>(),
                "{step:?}: every record once"
            );
            let all: Vec<Record> = history.iter().flat_map(|f| records(f)).collect();
            assert!(
                all.iter().all(|r| r.gap.is_none() && r.alert.is_none()),
                "{step:?}: no gap and no alert"
            );
            assert_eq!(
                all.iter()
                    .filter(|r| r
                        .message
                        .as_deref()
                        .is_some_and(|m| m.starts_with(chain::ROTATION_RECOVERED)))
                    .count(),
                usize::from(!matches!(step, S::Synced | S::NewFile)),
                "{step:?}: the recovery is recorded"
            );
            // Nothing of the journal is left.
            let left: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".next"))
                .collect();
            assert!(left.is_empty(), "{step:?}: {left:?}");
            // And the log rotates again as usual.
            let auditor = start_with(path.clone(), key.clone(), Rotation::default()).0;
            auditor.rotate().unwrap();
            auditor.close();
            verifies_as_one_history(&crate::with_rotated(&path).unwrap(), &key);
        }
    }

    /// A journal that does not fit the renamed file it names (planted
    /// beside a cut-back log to pass the cut off as a crash) is never
    /// rolled forward: nothing is renamed, and an alert is raised.
    #[test]
    fn a_journal_that_does_not_fit_its_rotated_file_is_not_rolled_forward() {
        use crate::sink::RotateStep as S;
        for tamper in ["other end", "cut back", "no head"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.log");
            let key = coffer_crypto::Keyring::generate(0).audit_key();
            let (auditor, _alerts, key) = start_with(path.clone(), key, Rotation::default());
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                for i in 0..5 {
                    assert!(auditor.record(request(format!("r-{i}"))).await);
                }
            });
            let (stop, upkeep) = auditor.maintenance.lock().unwrap().take().unwrap();
            stop.store(true, Ordering::Relaxed);
            upkeep.thread().unpark();
            upkeep.join().unwrap();
            let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut w = auditor.shared.writer_blocking();
                w.sinks[0].crash_at = Some(S::Renamed);
                w.rotate("20261207T000000Z", &mut HashMap::new())
            }));
            assert!(crashed.is_err());
            std::mem::forget(auditor);
            let target = dir.path().join("audit.log.20261207T000000Z");
            let journal = crate::sink::journal_path(&target);
            assert!(target.exists() && journal.exists() && !path.exists());
            let target_lines = std::fs::read_to_string(&target).unwrap();
            let n = target_lines.lines().count();
            match tamper {
                "other end" => {
                    // The opening names an earlier end (the log cut there).
                    let text = std::fs::read_to_string(&journal).unwrap();
                    let forged = text.replace(
                        &format!("(records 1 to {n};"),
                        &format!("(records 1 to {};", n - 1),
                    );
                    assert_ne!(forged, text);
                    std::fs::write(&journal, forged).unwrap();
                }
                "cut back" => {
                    // The rotated file lost its closing notice.
                    let kept: String = target_lines
                        .lines()
                        .take(n - 1)
                        .map(|l| format!("{l}\n"))
                        .collect();
                    std::fs::write(&target, kept).unwrap();
                }
                _ => std::fs::remove_file(chain::head_path(&target)).unwrap(),
            }
            let target_before = std::fs::read(&target).unwrap();
            let journal_before = std::fs::read(&journal).unwrap();

            let (auditor, _alerts, _key) = start_with(path.clone(), key, Rotation::default());
            auditor.close();
            // Nothing moved.
            assert_eq!(std::fs::read(&target).unwrap(), target_before, "{tamper}");
            assert_eq!(std::fs::read(&journal).unwrap(), journal_before, "{tamper}");
            let new = records(&path);
            assert!(
                new.iter().all(|r| !r
                    .message
                    .as_deref()
                    .is_some_and(|m| m.starts_with(chain::ROTATION_OPENING))),
                "{tamper}: the journal became the log"
            );
            assert!(
                new.iter().any(|r| r
                    .alert
                    .as_ref()
                    .is_some_and(|a| a.rule == "audit_rotation_unverified")),
                "{tamper}: no alert in {new:?}"
            );
        }
    }

    /// A rollback cut short after the new head file was renamed into
    /// place keeps the old file's head file (from beside the target), not
    /// the new one's.
    #[test]
    fn a_rollback_cut_short_keeps_the_old_head_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let key = coffer_crypto::Keyring::generate(0).audit_key();
        let (auditor, _alerts, key) = start_with(path.clone(), key, Rotation::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for i in 0..3 {
                assert!(auditor.record(request(format!("r-{i}"))).await);
            }
        });
        auditor.close();
        let old_head = std::fs::read(chain::head_path(&path)).unwrap();
        // The state: the new file's head file at the log's head, the old
        // one beside the target, the old file back at the path, the
        // journal still there.
        let target = dir.path().join("audit.log.20261207T000000Z");
        let journal = crate::sink::journal_path(&target);
        let mut line = Vec::new();
        let mut new_head = Head::EMPTY;
        chain::append_line(
            &mut line,
            &mut Vec::new(),
            &mut new_head,
            Some(&key),
            0,
            b"{\"kind\":\"notice\",\"message\":\"audit log rotated: x\"}",
        );
        std::fs::write(&journal, &line).unwrap();
        std::fs::write(chain::head_path(&target), &old_head).unwrap();
        std::fs::write(
            chain::head_path(&path),
            serde_json::to_vec(&HeadFile::new(new_head, Some(&key))).unwrap(),
        )
        .unwrap();
        let done = crate::sink::recover_rotations(&path).unwrap();
        assert_eq!(done.len(), 1);
        assert!(!done[0].alert);
        assert_eq!(std::fs::read(chain::head_path(&path)).unwrap(), old_head);
        assert!(!journal.exists() && !chain::head_path(&target).exists());
    }

    /// A notice for streams only gives a file sink nothing to write: a
    /// failing one stays failing, with its count of missed records.
    #[test]
    fn a_streams_only_notice_leaves_a_failing_file_sink_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let key = coffer_crypto::Keyring::generate(0).audit_key();
        let k = key.clone();
        let (auditor, _alerts) = Auditor::start(AuditorConfig {
            sinks: vec![SinkSpec::File(path.clone()), SinkSpec::Stdout],
            fsync: Fsync::Interval(Duration::from_secs(1)),
            rules: AlertRules::default(),
            key: Arc::new(move || Some(k.clone())),
            rotation: Rotation::default(),
        })
        .expect("auditor starts");
        {
            let mut w = auditor.shared.writer_blocking();
            assert!(w.sinks[0].is_regular_file());
            w.sinks[0].healthy = false;
            w.sinks[0].missed = 3;
            w.commit(&mut vec![Pending {
                streams_only: true,
                ..Pending::notice(Record::notice("for streams only"))
            }]);
            assert!(
                !w.sinks[0].healthy,
                "a failing file sink was marked healthy"
            );
            assert_eq!(w.sinks[0].missed, 3, "its missed count was reset");
            assert!(w.sinks[1].healthy);
            // The next record it takes carries the count.
            w.sinks[0].healthy = true;
            w.commit(&mut vec![Pending::notice(request("after".into()))]);
            assert_eq!(w.sinks[0].missed, 0);
        }
        auditor.close();
        let rs = records(&path);
        let after = rs
            .iter()
            .find(|r| r.request_id.as_deref() == Some("after"))
            .expect("written");
        assert_eq!(after.missed, Some(3), "{after:?}");
        assert!(
            rs.iter()
                .all(|r| r.message.as_deref() != Some("for streams only"))
        );
    }

    /// What a journal left beside a log that is not one a rotation leaves
    /// (its log and target both there) is left as found, and said so.
    #[test]
    fn a_journal_that_fits_no_rotation_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let target = dir.path().join("audit.log.20261207T000000Z");
        let journal = crate::sink::journal_path(&target);
        std::fs::write(&journal, b"x\n").unwrap();
        // Named like no rotated file: not a journal at all.
        let other = dir.path().join("audit.log.1.next");
        std::fs::write(&other, b"y\n").unwrap();
        // Neither the log nor the target, then both.
        for (log, target_too) in [(false, false), (true, true)] {
            if log {
                std::fs::write(&path, b"").unwrap();
            }
            if target_too {
                std::fs::write(&target, b"").unwrap();
            }
            let done = crate::sink::recover_rotations(&path).unwrap();
            assert_eq!(done.len(), 1, "{done:?}");
            assert!(done[0].message.contains("left as it is"), "{:?}", done[0]);
            assert_eq!(std::fs::read(&journal).unwrap(), b"x\n");
            assert_eq!(std::fs::read(&other).unwrap(), b"y\n");
        }
        // A symbolic link named like a journal is not followed or moved.
        std::fs::remove_file(&journal).unwrap();
        std::os::unix::fs::symlink(&other, &journal).unwrap();
        std::fs::remove_file(&target).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(crate::sink::recover_rotations(&path).unwrap().is_empty());
        assert!(!path.exists() && std::fs::symlink_metadata(&journal).is_ok());
    }

    #[test]
    fn rotation_sets_the_file_aside_with_its_head_and_starts_a_linked_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (auditor, path, key) = start(dir.path());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for i in 0..50 {
                assert!(auditor.record(request(format!("before-{i}"))).await);
            }
        });
        let report = auditor.rotate().unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let [rotated] = &report.rotated[..] else {
            panic!("{report:?}")
        };
        assert_eq!(rotated.log, path);
        let old = rotated.to.clone();
        let name = old.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("audit.log.")
                && name.len() == "audit.log.".len() + 16
                && name.ends_with('Z'),
            "{name}"
        );
        // The live head points at the new file at once.
        let heads = auditor.heads();
        assert_eq!((heads.len(), &heads[0].0, heads[0].1.seq), (1, &path, 1));
        rt.block_on(async {
            for i in 0..50 {
                assert!(auditor.record(request(format!("after-{i}"))).await);
            }
        });
        auditor.close();

        // The old file: opening notice, 50 requests, the rotation notice;
        // whole, and its end sealed by the head file paired with its name.
        let old_head = verifies_with_head(&old, &key);
        assert_eq!(
            (old_head.seq, rotated.records, old_head.link),
            (52, 52, rotated.last_link)
        );
        let old_records = records(&old);
        assert!(
            old_records
                .last()
                .unwrap()
                .message
                .as_deref()
                .unwrap()
                .starts_with("audit log rotation:"),
            "{:?}",
            old_records.last()
        );
        assert_eq!(
            request_ids(&old),
            (0..50).map(|i| format!("before-{i}")).collect::<Vec<_>>()
        );
        // The new file starts at record 1 with a notice naming the old one
        // and its last link, and verifies on its own with its own head.
        let new_head = verifies_with_head(&path, &key);
        let new_records = records(&path);
        assert_eq!(new_head.seq, new_records.len() as u64);
        let first = new_records[0].message.as_deref().unwrap();
        assert_eq!(new_records[0].seq, Some(1));
        assert!(first.starts_with("audit log rotated:"), "{first}");
        assert!(first.contains(&old.display().to_string()), "{first}");
        assert!(first.contains(&crate::hex(&old_head.link)), "{first}");
        assert_eq!(
            request_ids(&path),
            (0..50).map(|i| format!("after-{i}")).collect::<Vec<_>>()
        );

        // The two are tied: the new file names the old one's end.
        let report = |p: &std::path::Path| {
            chain::verify(
                std::io::BufReader::new(std::fs::File::open(p).unwrap()),
                &key,
                None,
            )
            .unwrap()
        };
        let (old_report, new_report) = (report(&old), report(&path));
        assert!(chain::continues(&old_report, &new_report));
        assert!(!chain::continues(&new_report, &old_report));
        assert!(
            chain::begins_after_rotation(&new_report) && !chain::begins_after_rotation(&old_report)
        );

        // A restart continues the new file without a truncation alarm.
        let (auditor, alerts, _) = start_with(path.clone(), key.clone(), Rotation::default());
        auditor.close();
        drop(alerts);
        let after_restart = records(&path);
        assert!(
            after_restart
                .iter()
                .all(|r| r.kind != crate::record::Kind::Alert),
            "{after_restart:?}"
        );
        verifies_with_head(&path, &key);
    }

    /// Found by killing the server at random moments (bench/crash): a
    /// crash after a rotation, before the next upkeep wrote the new file's
    /// head file, left a log with records and no head, which the next
    /// start reported as records lost.
    #[test]
    fn a_crash_right_after_rotation_leaves_no_false_gap() {
        let dir = tempfile::tempdir().unwrap();
        let (auditor, path, key) = start(dir.path());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for i in 0..5 {
                assert!(auditor.record(request(format!("before-{i}"))).await);
            }
        });
        auditor.rotate().unwrap();
        // What a crash at this moment leaves on disk: the files as they are.
        let crashed = dir.path().join("crashed");
        std::fs::create_dir(&crashed).unwrap();
        let copy = crashed.join("audit.log");
        std::fs::copy(&path, &copy).unwrap();
        let head = chain::head_path(&path);
        assert!(head.exists(), "the new file has its head file at once");
        std::fs::copy(&head, chain::head_path(&copy)).unwrap();
        auditor.close();

        let (auditor, alerts, _) = start_with(copy.clone(), key.clone(), Rotation::default());
        auditor.close();
        drop(alerts);
        let after = records(&copy);
        assert!(
            after
                .iter()
                .all(|r| r.kind != crate::record::Kind::Alert && r.gap.is_none()),
            "{after:?}"
        );
        verifies_with_head(&copy, &key);
    }

    #[test]
    fn rotating_while_several_runtimes_record_loses_and_repeats_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (auditor, path, key) = start(dir.path());
        let auditor = Arc::new(auditor);
        let threads = record_from_runtimes(&auditor, 3, 400);
        let mut rotations = 0;
        while rotations < 3 || (threads.iter().any(|t| !t.is_finished()) && rotations < 8) {
            // Names are per second: a later rotation in the same second
            // takes the next free suffix.
            let report = auditor.rotate().unwrap();
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            rotations += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        for t in threads {
            t.join().unwrap();
        }
        auditor.close();
        let old = crate::rotated_files(&path).unwrap();
        assert_eq!(old.len(), rotations, "{old:?}");
        let mut ids = Vec::new();
        for file in old.iter().chain([&path]) {
            verifies_with_head(file, &key);
            ids.extend(request_ids(file));
        }
        assert_eq!(ids.len(), 1200);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1200);
    }

    #[test]
    fn files_rotate_by_themselves_at_their_size_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let key = coffer_crypto::Keyring::generate(0).audit_key();
        let rotation = Rotation {
            max_bytes: Some(8 * 1024),
            ..Rotation::default()
        };
        let (auditor, _alerts, key) = start_with(path.clone(), key, rotation);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // About 300 bytes a record: a rotation every ~27 records, checked
        // five times a second.
        rt.block_on(async {
            for i in 0..300 {
                assert!(auditor.record(request(format!("r-{i}"))).await);
                if i % 30 == 29 {
                    std::thread::sleep(HEADS_EVERY * 2);
                }
            }
        });
        auditor.close();
        let old = crate::rotated_files(&path).unwrap();
        assert!(old.len() >= 5, "{old:?}");
        let history: Vec<PathBuf> = old.iter().cloned().chain([path.clone()]).collect();
        verifies_as_one_history(&history, &key);
        let ids: Vec<String> = history.iter().flat_map(|f| request_ids(f)).collect();
        assert_eq!(
            ids,
            (0..300).map(|i| format!("r-{i}")).collect::<Vec<_>>(),
            "every record once, in order, across the files"
        );
    }

    /// With `keep_files`, each rotation removes the oldest rotated files
    /// beyond that many, with their head files, and says so in the log; what
    /// is left is an unbroken history.
    #[test]
    fn retention_keeps_the_newest_rotated_files_and_says_what_went() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let key = coffer_crypto::Keyring::generate(0).audit_key();
        let rotation = Rotation {
            keep_files: Some(2),
            ..Rotation::default()
        };
        let (auditor, _alerts, key) = start_with(path.clone(), key, rotation);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut made = Vec::new();
        for round in 0..5 {
            rt.block_on(async {
                assert!(auditor.record(request(format!("r-{round}"))).await);
            });
            let report = auditor.rotate().unwrap();
            made.push(report.rotated[0].to.clone());
            assert!(report.expire_failed.is_empty(), "{report:?}");
            // The third rotation onwards removes the oldest file left.
            let expect: Vec<PathBuf> = if round >= 2 {
                vec![made[round - 2].clone()]
            } else {
                Vec::new()
            };
            assert_eq!(report.expired, expect, "round {round}");
        }
        auditor.close();
        let left = crate::rotated_files(&path).unwrap();
        assert_eq!(left, made[3..].to_vec());
        for gone in &made[..3] {
            assert!(!gone.exists() && !chain::head_path(gone).exists());
        }
        let notices: Vec<String> = records(&path)
            .into_iter()
            .filter_map(|r| r.message)
            .filter(|m| m.starts_with(chain::RETENTION_NOTICE))
            .collect();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0].contains(&made[2].display().to_string())
                && notices[0].contains("beyond the 2 newest"),
            "{}",
            notices[0]
        );
        let history: Vec<PathBuf> = left.iter().cloned().chain([path.clone()]).collect();
        verifies_as_one_history(&history, &key);
    }

    /// With `keep_for`, files are removed by the time in their names; files
    /// that only look alike are left alone.
    #[test]
    fn retention_by_age_goes_by_the_name_and_touches_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let old = dir.path().join("audit.log.20200101T000000Z");
        let others = [
            dir.path().join("audit.log.20200101T000000Z.gz"),
            dir.path().join("other.log.20200101T000000Z"),
            dir.path().join("audit.log.2020010100000Z"),
        ];
        for f in [&old, &chain::head_path(&old)].into_iter().chain(&others) {
            std::fs::write(f, "x").unwrap();
        }
        let key = coffer_crypto::Keyring::generate(0).audit_key();
        let rotation = Rotation {
            keep_for: Some(Duration::from_secs(86_400)),
            ..Rotation::default()
        };
        let (auditor, _alerts, _key) = start_with(path.clone(), key, rotation);
        let report = auditor.rotate().unwrap();
        assert_eq!(report.expired, vec![old.clone()]);
        assert!(!old.exists() && !chain::head_path(&old).exists());
        assert!(others.iter().all(|f| f.exists()));
        assert_eq!(
            crate::rotated_files(&path).unwrap(),
            vec![report.rotated[0].to.clone()],
            "the file just rotated is kept"
        );
        auditor.close();
        assert!(records(&path).iter().any(|r| {
            r.message
                .as_deref()
                .is_some_and(|m| m.contains("older than 1 days"))
        }),);
    }

    /// A new rotated file's name sorts after every one already there: after
    /// those of the same second, even when the first of them has been removed,
    /// and after one named by a clock that has since gone back.
    #[test]
    fn rotated_names_always_sort_last() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let name = |n: &str| dir.path().join(format!("audit.log.{n}"));
        assert_eq!(
            rotation_target(&log, "20261204T000000Z"),
            name("20261204T000000Z")
        );
        std::fs::write(name("20261204T000000Z-1"), "").unwrap();
        assert_eq!(
            rotation_target(&log, "20261204T000000Z"),
            name("20261204T000000Z-2")
        );
        assert_eq!(
            rotation_target(&log, "20261204T000001Z"),
            name("20261204T000001Z")
        );
        std::fs::write(name("20301231T000000Z"), "").unwrap();
        assert_eq!(
            rotation_target(&log, "20261204T000001Z"),
            name("20301231T000000Z-1")
        );
    }

    #[test]
    fn rotation_times_are_read_from_names() {
        let log = std::path::Path::new("/l/audit.log");
        let t = crate::rotation_time(log, std::path::Path::new("/l/audit.log.20261204T235959Z-3"))
            .unwrap();
        assert_eq!(
            (
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            (2026, 12, 4, 23, 59, 59)
        );
        for bad in [
            "/l/audit.log.20261304T000000Z",
            "/l/audit.log.2026120",
            "/l/x.log.20261204T000000Z",
        ] {
            assert!(
                crate::rotation_time(log, std::path::Path::new(bad)).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_rotation_that_fails_raises_an_alert_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let (auditor, mut alerts, _key) = start_on(logs.join("audit.log"));
        // Its directory gone (as root nothing else stops a rename): the file
        // stays open, and nothing can be renamed or created beside it.
        std::fs::remove_dir_all(&logs).unwrap();
        let report = auditor.rotate().unwrap();
        assert!(report.rotated.is_empty(), "{report:?}");
        assert_eq!(report.failed.len(), 1, "{report:?}");
        let alert = alerts.try_recv().expect("an alert for the webhooks");
        assert_eq!(alert.kind, crate::record::Kind::Alert);
        let info = alert.alert.unwrap();
        assert_eq!(
            (info.rule.as_str(), info.count),
            ("audit_rotation_failed", 1)
        );
        assert!(info.subject.ends_with("audit.log"), "{}", info.subject);
        // The log goes on.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { assert!(auditor.record(request("after".into())).await) });
        assert!(auditor.healthy());
        auditor.close();
    }

    #[test]
    fn a_failed_automatic_rotation_waits_before_trying_again() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let key = coffer_crypto::Keyring::generate(0).audit_key();
        // Due at once and always (any size), and bound to fail: the
        // directory is gone.
        let rotation = Rotation {
            max_bytes: Some(1),
            ..Rotation::default()
        };
        let (auditor, mut alerts, _key) = start_with(logs.join("audit.log"), key, rotation);
        std::fs::remove_dir_all(&logs).unwrap();
        // Five checks a second: without the wait, about seven tries.
        std::thread::sleep(HEADS_EVERY * 7);
        let mut failures = 0;
        while let Ok(a) = alerts.try_recv() {
            assert_eq!(a.alert.unwrap().rule, "audit_rotation_failed");
            failures += 1;
        }
        assert_eq!(failures, 1, "one try, then a minute's wait");
        auditor.close();
    }

    #[test]
    fn a_log_renamed_by_another_tool_is_not_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (auditor, mut alerts, key) = start_on(path.clone());
        // logrotate's default: rename, then create an empty file.
        let moved = dir.path().join("audit.log.1");
        std::fs::rename(&path, &moved).unwrap();
        std::fs::write(&path, b"").unwrap();
        let report = auditor.rotate().unwrap();
        assert!(report.rotated.is_empty(), "{report:?}");
        assert!(
            report.failed[0].1.contains("not the one being written"),
            "{report:?}"
        );
        assert_eq!(
            alerts.try_recv().unwrap().alert.unwrap().rule,
            "audit_rotation_failed"
        );
        // Nothing was set aside, the empty file is untouched, and the
        // records went on into the renamed file, whole.
        assert!(crate::rotated_files(&path).unwrap().is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        auditor.close();
        verifies(&moved, &key);
    }

    #[test]
    fn a_rotation_that_cannot_rename_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (auditor, _alerts, key) = start_on(path.clone());
        auditor.close();
        let before = std::fs::read(&path).unwrap();
        let head_before = std::fs::read(chain::head_path(&path)).unwrap();

        let mut sink = Sink::open(SinkSpec::File(path.clone()), &mut Vec::new()).unwrap();
        // A non-empty directory as the target: the rename fails after the
        // head file was moved, and every step is undone.
        let target = dir.path().join("taken");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("x"), b"x").unwrap();
        let opening = serde_json::to_vec(&Record::notice("opening")).unwrap();
        let err = sink
            .rotate(&target, &head_before, &opening, Some(&key))
            .unwrap_err();
        assert!(!err.to_string().is_empty());
        assert!(
            !chain::head_path(&target).exists(),
            "the target's head file was not taken back"
        );
        assert_eq!(std::fs::read(chain::head_path(&path)).unwrap(), head_before);
        assert_eq!((sink.generation, sink.head.seq > 0), (0, true));
        // The sink still writes to the same file.
        sink.write(b"").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
        verifies_with_head(&path, &key);
    }

    /// While no sink works, the upkeep thread tests them once a second:
    /// service resumes once one recovers, without a request refused first,
    /// and the failed tests do not count as missed records.
    #[test]
    fn a_recovered_sink_is_found_without_a_request() {
        use std::io::BufRead;
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("collector.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let k = coffer_crypto::Keyring::generate(0).audit_key();
        let (auditor, mut alerts) = Auditor::start(AuditorConfig {
            sinks: vec![SinkSpec::Socket(format!("unix:{}", sock.display()))],
            fsync: Fsync::Interval(Duration::from_secs(1)),
            rules: AlertRules::default(),
            key: Arc::new(move || Some(k.clone())),
            rotation: Rotation::default(),
        })
        .unwrap();
        let (first, _) = listener.accept().unwrap();
        // The collector goes away.
        drop(first);
        drop(listener);
        std::fs::remove_file(&sock).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut refused = 0;
        for i in 0..50 {
            if !rt.block_on(auditor.record(request(format!("r{i}")))) {
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(refused, 3, "the lost collector was never noticed");
        assert!(!auditor.healthy());
        // Tests go on failing while nothing listens.
        std::thread::sleep(PROBE_EVERY * 2 + HEADS_EVERY);
        assert!(!auditor.healthy());
        // The collector comes back; no request is made.
        let listener = UnixListener::bind(&sock).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !auditor.healthy() {
            assert!(
                Instant::now() < deadline,
                "the recovered sink was not found"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let (conn, _) = listener.accept().unwrap();
        let mut line = String::new();
        let mut reader = std::io::BufReader::new(conn);
        reader.read_line(&mut line).unwrap();
        let first: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(first["message"], PROBE_NOTICE, "{line}");
        assert_eq!(
            first["missed"], refused,
            "missed counts the refused records, not the failed tests: {line}"
        );
        // Then the recovery, as an alert (the failure went to the webhooks
        // only: no sink could record it).
        line.clear();
        reader.read_line(&mut line).unwrap();
        let recovered: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(recovered["alert"]["rule"], "audit_sink_recovered", "{line}");
        assert_eq!(recovered["alert"]["count"], refused, "{line}");
        let mut rules = Vec::new();
        while let Ok(a) = alerts.try_recv() {
            rules.extend(a.alert.map(|a| a.rule));
        }
        assert_eq!(
            rules,
            [
                "audit_sink_failed",
                "audit_unavailable",
                "audit_sink_recovered"
            ]
        );
        // The connection it took stays open: service goes on through it.
        assert!(rt.block_on(auditor.record(request("after".into()))));
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(line.contains("\"request_id\":\"after\""), "{line}");
        auditor.close();
    }
}
