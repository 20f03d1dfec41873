//! `coffer-loadgen`: a **benchmark tool**, not part of coffer itself.
//!
//! An open-loop, constant-rate HTTP/1.1 load generator, written for the
//! "p99 read latency at half of peak load" measurement of `bench/run.sh`.
//!
//! # Method
//!
//! Request `i` is *due* at `t0 + i / rate`, whatever happened to earlier requests
//! (open loop: a slow response never slows the schedule down). Each latency is
//! measured from the request's due time to the end of its response body, so any
//! lateness of the generator itself, and any wait for a free connection behind a
//! slow response, counts against the server: no coordinated omission, and the
//! conservative choice. How late requests actually went out is reported
//! separately (*send lag*), with the pacer's own timing, so the
//! generator's health is visible next to the result.
//!
//! # Design
//!
//! - `C` **connection tasks** on one current-thread tokio runtime, each owning one
//!   persistent keep-alive HTTP/1.1 connection (`src/http.rs`, a minimal client:
//!   the request is bytes built once, the response is parsed in place).
//!   An idle task takes the next request index from a shared counter once that
//!   request is due, sends it and reads the whole response. A task that finishes
//!   a response when the next request is already due takes it at once; when every
//!   connection is busy, due requests wait for the first one to free up, late, and
//!   that wait is part of their latency.
//! - A **pacer** wakes idle tasks as requests fall due (one permit of a
//!   FIFO [`tokio::sync::Semaphore`] per request). By default it is a task on
//!   the same thread ([`PacerMode::Timerfd`]) that sleeps on a `timerfd`, an
//!   hrtimer with tens of microseconds of wake-up latency where tokio's timer
//!   wheel has one millisecond, delivered through the runtime's own event loop:
//!   while the thread is busy a timer costs no wake-up, and when it is idle one
//!   wake-up serves the pacer and the tasks it releases. (The first design, a
//!   pacer thread of its own, [`PacerMode::Thread`], spent about a third of the
//!   generator's CPU on context switches.) It wakes at most every
//!   [`Config::pacer_tick`] (200 us by default), because on a VM every wake-up
//!   costs ~20-30 us of CPU, which the server would miss; at high rates it then
//!   releases the requests that fell due since its last wake-up together.
//! - Latencies go into pre-allocated log-linear [`histogram::Histogram`]s: no
//!   allocation or copying grows with the number of requests, so the generator has
//!   no periodic stalls. All tasks run on one thread, so the one shared recorder's
//!   lock is never contended.
//!
//! The generator costs one busy thread; on a small machine it still shares the
//! CPUs with the server, which the report shows
//! (`cpu.generator_pct_of_one_core`).

pub mod histogram;
mod http;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use hyper::Uri;
use hyper::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::histogram::Histogram;
use crate::http::{Connection, Failure};

/// What to load and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// `http://host:port/path?query` (plain HTTP only).
    pub url: String,
    /// Requests per second, spread evenly (request `i` due at `i / rate`).
    pub rate: f64,
    /// Length of the measured part of the schedule.
    pub duration: Duration,
    /// Unmeasured part of the same schedule before it (errors still counted).
    pub warmup: Duration,
    /// Persistent connections, each carrying one request at a time.
    pub connections: usize,
    /// Extra request headers (`Host` is set from the URL unless given here).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Per request, from when it is sent to the end of its response.
    pub timeout: Duration,
    /// Keep going after an error or a non-2xx response instead of stopping at the first.
    pub allow_errors: bool,
    /// The pacer wakes at most this often (see [`Config::DEFAULT_PACER_TICK`]).
    pub pacer_tick: Duration,
    /// Where the pacer runs (see [`PacerMode`]).
    pub pacer_mode: PacerMode,
}

/// Where the pacer runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PacerMode {
    /// A task on the connections' own thread, woken by a `timerfd` (an
    /// hrtimer, no timer slack) through the runtime's event loop. While that
    /// thread is busy the timer costs no wake-up at all, and when it is idle
    /// one wake-up serves both the pacer and the tasks it releases: about a
    /// third of the generator's CPU went to the thread mode's context
    /// switches, CPU the server under test then lacks on a small machine.
    #[default]
    Timerfd,
    /// A thread of its own sleeping with `std::thread::sleep` and releasing
    /// requests across threads (the first design; kept for comparison).
    Thread,
}

impl Config {
    /// 200 us: at most 5,000 pacer wake-ups a second (on a small VM, where a sleep
    /// and wake-up costs some 20-30 us of CPU, about a tenth of a CPU), and at most
    /// ~0.2 ms (plus the timer's wake-up latency) added to a request that falls due
    /// while every connection is idle and waiting.
    pub const DEFAULT_PACER_TICK: Duration = Duration::from_micros(200);

    /// A configuration with the defaults for everything but the target and load.
    pub fn new(url: impl Into<String>, rate: f64, duration: Duration, connections: usize) -> Self {
        Self {
            url: url.into(),
            rate,
            duration,
            warmup: Duration::ZERO,
            connections,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            allow_errors: false,
            pacer_tick: Self::DEFAULT_PACER_TICK,
            pacer_mode: PacerMode::default(),
        }
    }
}

/// Parse `"K: V"` into a header.
pub fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue)> {
    let (k, v) = s
        .split_once(':')
        .with_context(|| format!("header {s:?} is not \"K: V\""))?;
    let name = HeaderName::from_bytes(k.trim().as_bytes())
        .with_context(|| format!("bad header name {:?}", k.trim()))?;
    let value = HeaderValue::from_str(v.trim())
        .with_context(|| format!("bad value for header {:?}", k.trim()))?;
    Ok((name, value))
}

/// Parse a `--header` argument: `"K: V"`, or `@FILE` for the headers of a file,
/// one `"K: V"` per line (blank lines skipped), as curl's `-H @FILE` does. A
/// file keeps a credential out of the command line, which any local user can
/// read in `/proc`.
pub fn parse_header_arg(s: &str) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let Some(path) = s.strip_prefix('@') else {
        return Ok(vec![parse_header(s)?]);
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading headers from {path:?}"))?;
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            // The line itself may hold a credential: name the place, not the text.
            parse_header(l).map_err(|_| {
                anyhow::anyhow!(
                    "{path:?}, header {}: not \"K: V\" with a valid name and value",
                    i + 1
                )
            })
        })
        .collect()
}

/// Parse a duration such as `10s`, `1.5s`, `500ms`, `250us`, `2m`, `1h`, or a bare
/// number of seconds (`0`, `3`).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "ns" => n / 1e9,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("bad duration unit in {s:?} (ns, us, ms, s, m, h)"),
    };
    ensure!(secs.is_finite() && secs >= 0.0, "bad duration {s:?}");
    Ok(Duration::from_secs_f64(secs))
}

/// Where to connect and what to send, from the URL.
#[derive(Clone)]
struct Target {
    host: String,
    port: u16,
    /// The whole request, `GET` with the headers and no body, sent as is every time.
    request: Vec<u8>,
}

impl Target {
    fn new(cfg: &Config) -> Result<Self> {
        let uri: Uri = cfg
            .url
            .parse()
            .with_context(|| format!("bad URL {:?}", cfg.url))?;
        ensure!(
            uri.scheme_str() == Some("http"),
            "only http:// URLs are supported: {:?}",
            cfg.url
        );
        let authority = uri.authority().context("URL has no host")?.clone();
        ensure!(
            !authority.host().is_empty(),
            "URL has no host: {:?}",
            cfg.url
        );
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(80);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_str(authority.as_str())?);
        for (k, v) in &cfg.headers {
            if k == HOST {
                headers.insert(k.clone(), v.clone());
            } else {
                headers.append(k.clone(), v.clone());
            }
        }
        let mut request = format!("GET {path} HTTP/1.1\r\n").into_bytes();
        for (k, v) in &headers {
            request.extend_from_slice(k.as_str().as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(v.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        Ok(Self {
            host,
            port,
            request,
        })
    }

    async fn connect(&self) -> std::io::Result<Connection> {
        Connection::open(&self.host, self.port).await
    }
}

/// The constant-rate schedule: request `i` is due at `t0 + i * interval`.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    t0: Instant,
    interval_ns: f64,
    /// Requests `0..warmup` are the warm-up, `warmup..total` are measured.
    warmup: u64,
    total: u64,
}

impl Schedule {
    /// Due time of request `i`, in nanoseconds after `t0`.
    fn due_ns(&self, i: u64) -> u64 {
        (i as f64 * self.interval_ns).ceil() as u64
    }

    fn due(&self, i: u64) -> Instant {
        self.t0 + Duration::from_nanos(self.due_ns(i))
    }

    /// How many requests are due at `now` (those with `due(i) <= now`), at most `total`.
    fn due_count(&self, now: Instant) -> u64 {
        let Some(e) = now.checked_duration_since(self.t0) else {
            return 0;
        };
        let e = nanos(e);
        // The float estimate, corrected to agree exactly with due_ns.
        let mut n = ((e as f64 / self.interval_ns) as u64)
            .saturating_add(1)
            .min(self.total);
        while n < self.total && self.due_ns(n) <= e {
            n += 1;
        }
        while n > 0 && self.due_ns(n - 1) > e {
            n -= 1;
        }
        n
    }

    fn measure_start(&self) -> Instant {
        self.due(self.warmup)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What went wrong with one request.
#[derive(Clone, Copy, Debug)]
enum ErrorKind {
    /// Could not (re)connect.
    Connect,
    /// The connection failed before the response head arrived.
    Send,
    /// The connection failed while reading the response body.
    Body,
    /// No complete response within the timeout.
    Timeout,
}

/// Counters for one phase (warm-up or measured).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// Responses by status code.
    pub status: BTreeMap<u16, u64>,
    /// Responses outside 200-299.
    pub non_2xx: u64,
    /// Requests without a response, by kind (`connect`, `send`, `body`, `timeout`).
    pub errors: BTreeMap<&'static str, u64>,
}

impl Counts {
    /// Requests that got no response.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Responses with a 2xx status.
    pub fn ok(&self) -> u64 {
        self.status
            .iter()
            .filter(|(k, _)| (200..300).contains(*k))
            .map(|(_, v)| v)
            .sum()
    }

    fn error(&mut self, kind: ErrorKind) {
        let name = match kind {
            ErrorKind::Connect => "connect",
            ErrorKind::Send => "send",
            ErrorKind::Body => "body",
            ErrorKind::Timeout => "timeout",
        };
        *self.errors.entry(name).or_default() += 1;
    }
}

/// Per-second histograms are kept for runs up to this long (58 KiB each).
const MAX_SECONDS: usize = 120;

/// Everything recorded, allocated before the schedule starts.
struct Recorder {
    latency: Histogram,
    send_lag: Histogram,
    from_send: Histogram,
    /// Latency per second of the measured part, by due time.
    per_second: Vec<Histogram>,
    send_lag_max_per_second: Vec<u64>,
    warmup: Counts,
    measured: Counts,
    last_end: Option<Instant>,
}

impl Recorder {
    fn new(duration: Duration) -> Self {
        let seconds = duration.as_secs_f64().ceil() as usize;
        let seconds = if seconds <= MAX_SECONDS { seconds } else { 0 };
        Self {
            latency: Histogram::new(),
            send_lag: Histogram::new(),
            from_send: Histogram::new(),
            per_second: (0..seconds).map(|_| Histogram::new()).collect(),
            send_lag_max_per_second: vec![0; seconds],
            warmup: Counts::default(),
            measured: Counts::default(),
            last_end: None,
        }
    }
}

/// State shared by the pacer and the connection tasks.
struct Shared {
    target: Target,
    schedule: Schedule,
    permits: Semaphore,
    next: AtomicU64,
    stop: AtomicBool,
    /// Requests sent and not yet answered, and the most there were at once.
    in_flight: AtomicUsize,
    in_flight_max: AtomicUsize,
    timeout: Duration,
    allow_errors: bool,
    rec: Mutex<Recorder>,
}

impl Shared {
    /// The recorder (only ever locked from the runtime's one thread, briefly).
    fn rec(&self) -> std::sync::MutexGuard<'_, Recorder> {
        self.rec.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Take the next request index for an idle connection, once it is due: at once
/// if it already is (a connection that just finished a response at a high rate
/// usually finds one), else after the pacer's wake-up. `None` at the end of the
/// schedule or when stopped.
async fn claim(shared: &Shared) -> Option<u64> {
    let sched = shared.schedule;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return None;
        }
        let i = shared.next.load(Ordering::Acquire);
        if i >= sched.total {
            return None;
        }
        if sched.due(i) <= Instant::now() {
            if shared
                .next
                .compare_exchange(i, i + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Use up the wake-up the pacer issued (or will issue) for this request,
                // so that idle tasks are not woken for requests already taken.
                if let Ok(p) = shared.permits.try_acquire() {
                    p.forget();
                }
                return Some(i);
            }
            continue;
        }
        // Not due yet: wait for the pacer (one permit per request falling due).
        shared.permits.acquire().await.ok()?.forget();
    }
}

async fn connection_task(shared: Arc<Shared>, mut conn: Option<Connection>) {
    let sched = shared.schedule;
    let measure_start = sched.measure_start();
    // A connection the server closed after a good response is reopened before
    // the next request is taken; only a reconnect after a failure happens on a
    // request's clock.
    let mut reopen = false;
    loop {
        if reopen {
            reopen = false;
            conn = shared.target.connect().await.ok();
        }
        let Some(i) = claim(&shared).await else {
            break;
        };
        let due = sched.due(i);
        let n = shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        shared.in_flight_max.fetch_max(n, Ordering::Relaxed);
        let outcome = tokio::time::timeout(shared.timeout, async {
            if conn.is_none() {
                conn = Some(
                    shared
                        .target
                        .connect()
                        .await
                        .map_err(|_| ErrorKind::Connect)?,
                );
            }
            let c = conn.as_mut().ok_or(ErrorKind::Connect)?;
            let sent = Instant::now();
            let resp = c
                .exchange(&shared.target.request, false)
                .await
                .map_err(|f| match f {
                    Failure::Head => ErrorKind::Send,
                    Failure::Body => ErrorKind::Body,
                })?;
            Ok::<_, ErrorKind>((sent, resp))
        })
        .await
        .unwrap_or(Err(ErrorKind::Timeout));
        let end = Instant::now();
        shared.in_flight.fetch_sub(1, Ordering::Relaxed);

        let measured = i >= sched.warmup;
        let mut rec = shared.rec();
        let rec = &mut *rec;
        let counts = if measured {
            &mut rec.measured
        } else {
            &mut rec.warmup
        };
        let failed = match outcome {
            Ok((sent, resp)) => {
                let status = resp.status;
                if resp.close {
                    conn = None;
                    reopen = true;
                }
                *counts.status.entry(status).or_default() += 1;
                let bad = !(200..300).contains(&status);
                counts.non_2xx += u64::from(bad);
                if measured {
                    let latency = nanos(end.saturating_duration_since(due));
                    let lag = nanos(sent.saturating_duration_since(due));
                    rec.latency.record(latency);
                    rec.send_lag.record(lag);
                    rec.from_send
                        .record(nanos(end.saturating_duration_since(sent)));
                    let s = due.saturating_duration_since(measure_start).as_secs() as usize;
                    if let Some(h) = rec.per_second.get_mut(s) {
                        h.record(latency);
                        rec.send_lag_max_per_second[s] = rec.send_lag_max_per_second[s].max(lag);
                    }
                    rec.last_end = Some(rec.last_end.map_or(end, |t| t.max(end)));
                }
                bad
            }
            Err(kind) => {
                counts.error(kind);
                conn = None;
                true
            }
        };
        if failed && !shared.allow_errors {
            shared.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Wake idle connection tasks as requests fall due: one semaphore permit per
/// due request. Sleeps on an hrtimer (`std::thread::sleep`) until the next due
/// time, but never wakes more often than every `tick`: on a VM each sleep and
/// wake-up costs tens of microseconds of CPU, so at high rates the pacer wakes
/// every `tick` and releases what fell due meanwhile (connections that finish a
/// response take due requests without it). Returns how late it woke (from the
/// time it aimed at), over the measured part.
fn pacer(shared: &Shared, tick: Duration, connections: usize) -> Histogram {
    let mut pace = Pace::new(shared, tick);
    while let Some(aim) = pace.release_due(shared) {
        std::thread::sleep(aim.saturating_duration_since(Instant::now()));
        pace.woke(aim);
    }
    // Wake every idle connection task so it sees the end (or the stop).
    shared.permits.add_permits(connections);
    pace.late
}

/// The pacer's bookkeeping, whichever way it sleeps.
struct Pace {
    schedule: Schedule,
    tick: Duration,
    released: u64,
    last_wake: Instant,
    /// How late it woke, over the measured part.
    late: Histogram,
}

impl Pace {
    fn new(shared: &Shared, tick: Duration) -> Self {
        let schedule = shared.schedule;
        Self {
            schedule,
            tick,
            released: 0,
            last_wake: schedule.t0.checked_sub(tick).unwrap_or(schedule.t0),
            late: Histogram::new(),
        }
    }

    /// Releases one permit per request fallen due since the last call; the
    /// time to wake up next, or `None` at the end of the schedule or on stop.
    fn release_due(&mut self, shared: &Shared) -> Option<Instant> {
        let sched = self.schedule;
        if self.released >= sched.total || shared.stop.load(Ordering::Relaxed) {
            return None;
        }
        let due = sched.due_count(Instant::now());
        if due > self.released {
            shared.permits.add_permits((due - self.released) as usize);
            self.released = due;
        }
        (self.released < sched.total)
            .then(|| sched.due(self.released).max(self.last_wake + self.tick))
    }

    /// Notes a wake-up that aimed at `aim`.
    fn woke(&mut self, aim: Instant) {
        self.last_wake = Instant::now();
        if aim >= self.schedule.measure_start() {
            self.late
                .record(nanos(self.last_wake.saturating_duration_since(aim)));
        }
    }
}

enum PacerHandle {
    Thread(std::thread::JoinHandle<Histogram>),
    Task(tokio::task::JoinHandle<Result<Histogram>>),
}

/// A one-shot monotonic `timerfd` registered with the runtime's event loop.
struct Timer(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>);

impl Timer {
    fn new() -> Result<Self> {
        use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // `with_interest` is deprecated because a caller could close the
        // descriptor while it stays registered; here the `AsyncFd` owns the
        // `OwnedFd` for its whole life and only lends it out by reference,
        // which is the condition its `unsafe` replacement asks for (and this
        // workspace forbids `unsafe`).
        #[allow(deprecated)]
        let fd = tokio::io::unix::AsyncFd::with_interest(fd, tokio::io::Interest::READABLE)?;
        Ok(Self(fd))
    }

    /// Waits `d` (more than zero) on the hrtimer.
    async fn sleep(&self, d: Duration) -> Result<()> {
        use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec, timerfd_settime};
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let value = Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        };
        timerfd_settime(
            self.0.get_ref(),
            TimerfdTimerFlags::empty(),
            &Itimerspec {
                it_interval: zero,
                it_value: value,
            },
        )?;
        loop {
            let mut ready = self.0.readable().await?;
            let mut expirations = [0u8; 8];
            match rustix::io::read(self.0.get_ref(), &mut expirations) {
                Ok(_) => {
                    // Drained, and one-shot: it cannot be readable again before
                    // the next `timerfd_settime`, whose expiry is a new edge. So
                    // the next sleep waits at once instead of first finding this
                    // readiness stale with a `read` that fails.
                    ready.clear_ready();
                    return Ok(());
                }
                Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// [`pacer`] as a task on the connections' runtime, sleeping on a `timerfd`
/// (see [`PacerMode::Timerfd`]). Releasing a permit here wakes a task of the
/// same thread: no system call, no cross-thread wake-up.
async fn pacer_on_timerfd(
    shared: &Shared,
    timer: Timer,
    tick: Duration,
    connections: usize,
) -> Result<Histogram> {
    let mut pace = Pace::new(shared, tick);
    let mut failed = None;
    while let Some(aim) = pace.release_due(shared) {
        let wait = aim.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            tokio::task::yield_now().await;
        } else if let Err(e) = timer.sleep(wait).await {
            // Stop the run rather than leave idle connections waiting for
            // permits that would never come.
            shared.stop.store(true, Ordering::Relaxed);
            failed = Some(e.context("the pacer's timer failed"));
            break;
        }
        pace.woke(aim);
    }
    // Wake every idle connection task so it sees the end (or the stop).
    shared.permits.add_permits(connections);
    failed.map_or(Ok(pace.late), Err)
}

/// CPU tick counters (in USER_HZ ticks) at one moment: all CPUs busy/idle, and this process.
#[derive(Clone, Copy, Debug)]
struct CpuSample {
    busy: u64,
    idle: u64,
    steal: u64,
    cpus: u64,
    own: u64,
}

fn cpu_sample() -> Option<CpuSample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut lines = stat.lines();
    let f: Vec<u64> = lines
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    if f.len() < 8 {
        return None;
    }
    let cpus = lines.filter(|l| l.starts_with("cpu")).count() as u64;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let rest: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some(CpuSample {
        busy: f[0] + f[1] + f[2] + f[5] + f[6] + f[7],
        idle: f[3] + f[4],
        steal: f[7],
        cpus: cpus.max(1),
        own: utime + stime,
    })
}

/// Sleep until `t` in short steps, giving up early when `stop` is set.
fn sleep_until(t: Instant, stop: &AtomicBool) -> bool {
    loop {
        let now = Instant::now();
        if now >= t {
            return true;
        }
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep((t - now).min(Duration::from_millis(50)));
    }
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3 // 1 us resolution
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    /// Smallest value.
    pub min: f64,
    /// Exact mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    /// Largest value.
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram) -> Self {
        Self {
            min: ms(h.min()),
            mean: (h.mean() / 1e3).round() / 1e3,
            p50: ms(h.percentile(50.0)),
            p90: ms(h.percentile(90.0)),
            p99: ms(h.percentile(99.0)),
            p99_9: ms(h.percentile(99.9)),
            max: ms(h.max()),
        }
    }
}

/// One second of the measured part (requests by due time).
#[derive(Clone, Debug, Serialize)]
pub struct Second {
    /// Responses to requests due in this second.
    pub requests: u64,
    /// Their p99 latency, in ms.
    pub p99: f64,
    /// Their largest latency, in ms.
    pub max: f64,
    /// Their largest send lag, in ms.
    pub send_lag_max: f64,
}

/// CPU use over the measured part of the schedule.
#[derive(Clone, Debug, Serialize)]
pub struct CpuUse {
    /// Share of all CPUs busy (server, generator and anything else), in percent,
    /// from `/proc/stat`.
    pub machine_busy_pct: f64,
    /// This process's CPU time over the window, in percent of one CPU.
    pub generator_pct_of_one_core: f64,
    /// Share of all CPUs the hypervisor gave to others (`steal` in
    /// `/proc/stat`), in percent; counted in `machine_busy_pct` too. On a
    /// shared VM it tells a minute when the host took the CPUs away from one
    /// when the load did.
    pub steal_pct: f64,
    /// CPUs counted in `/proc/stat`.
    pub cpus: u64,
}

/// How the pacer kept time.
#[derive(Clone, Debug, Serialize)]
pub struct Pacer {
    /// Its minimum wake-up period, in microseconds.
    pub tick_us: f64,
    /// Wake-ups over the measured part.
    pub wakes: u64,
    /// How late it woke after each sleep, from the time it aimed at (the next due
    /// time, or a tick after its last wake-up), over the measured part.
    pub wake_late_ms: Percentiles,
}

/// Warm-up results (not in the latency figures).
#[derive(Clone, Debug, Serialize)]
pub struct Warmup {
    /// Configured length, in seconds.
    pub duration_s: f64,
    /// Requests scheduled in it.
    pub scheduled: u64,
    /// What happened to them.
    #[serde(flatten)]
    pub counts: Counts,
}

/// The result of a run; `--json` prints it as is.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always `coffer-loadgen`.
    pub tool: &'static str,
    /// How latency is counted.
    pub method: &'static str,
    /// Target URL (headers, which may hold credentials, are not echoed).
    pub url: String,
    /// Connections used.
    pub connections: usize,
    /// The requested rate, per second.
    pub requested_rate: f64,
    /// 2xx responses of the measured part over `elapsed_s`.
    pub achieved_rate: f64,
    /// Configured measured length, in seconds.
    pub duration_s: f64,
    /// From the first measured request's due time to the end of the last measured
    /// response, in seconds.
    pub elapsed_s: f64,
    /// Measured requests scheduled.
    pub scheduled: u64,
    /// Measured requests sent and answered or failed (below `scheduled` only when stopped).
    pub requests: u64,
    /// Measured requests with a 2xx response.
    pub ok: u64,
    /// Measured responses outside 200-299, and their statuses.
    #[serde(flatten)]
    pub counts: Counts,
    /// True when the run stopped at the first error or non-2xx response.
    pub stopped_early: bool,
    /// From each measured request's due time to the end of its response body (every
    /// response, whatever its status).
    pub latency_ms: Percentiles,
    /// From the due time to when the request was handed to its connection: the
    /// generator's lateness plus any wait for a free connection.
    pub send_lag_ms: Percentiles,
    /// From when each request was handed to its connection to the end of its
    /// response: what a closed-loop tool would report (latency minus send lag).
    pub from_send_ms: Percentiles,
    /// The most requests in flight at once; equal to `connections` means that
    /// due requests had to wait for a free connection at some point.
    pub in_flight_max: usize,
    /// The pacer's timing.
    pub pacer: Pacer,
    /// CPU use over the measured window, when `/proc` is readable.
    pub cpu: Option<CpuUse>,
    /// Latency by second of the measured part (runs up to 120 s).
    pub per_second: Vec<Second>,
    /// The warm-up phase.
    pub warmup: Warmup,
}

impl Report {
    /// Any socket error or non-2xx response, warm-up included.
    pub fn has_errors(&self) -> bool {
        let (m, w) = (&self.counts, &self.warmup.counts);
        m.non_2xx + m.error_total() + w.non_2xx + w.error_total() > 0
    }
}

/// Run the schedule and report. Opens the connections first (failing if any
/// cannot be opened), then starts the schedule 5 ms later. Builds its own
/// current-thread tokio runtime, a CPU-sampling thread (and a pacer thread with [`PacerMode::Thread`]); call
/// it from a plain thread, not from inside a runtime.
pub fn run(cfg: &Config) -> Result<Report> {
    ensure!(cfg.rate.is_finite() && cfg.rate > 0.0, "rate must be > 0");
    ensure!(cfg.connections >= 1, "connections must be >= 1");
    ensure!(!cfg.duration.is_zero(), "duration must be > 0");
    let target = Target::new(cfg)?;
    let warmup_n = (cfg.warmup.as_secs_f64() * cfg.rate).round() as u64;
    let measured_n = ((cfg.duration.as_secs_f64() * cfg.rate).round() as u64).max(1);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut conns = Vec::with_capacity(cfg.connections);
        for _ in 0..cfg.connections {
            let c = tokio::time::timeout(cfg.timeout, target.connect())
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
                .with_context(|| format!("connecting to {}:{}", target.host, target.port))?;
            conns.push(c);
        }
        let schedule = Schedule {
            t0: Instant::now() + Duration::from_millis(5),
            interval_ns: 1e9 / cfg.rate,
            warmup: warmup_n,
            total: warmup_n + measured_n,
        };
        let shared = Arc::new(Shared {
            target,
            schedule,
            permits: Semaphore::new(0),
            next: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            in_flight_max: AtomicUsize::new(0),
            timeout: cfg.timeout,
            allow_errors: cfg.allow_errors,
            rec: Mutex::new(Recorder::new(cfg.duration)),
        });
        let tasks: Vec<_> =
            conns.into_iter().map(|c| tokio::spawn(connection_task(shared.clone(), Some(c)))).collect();
        let (pacer_shared, tick, connections) = (shared.clone(), cfg.pacer_tick, cfg.connections);
        let pacer = match cfg.pacer_mode {
            PacerMode::Thread => PacerHandle::Thread(
                std::thread::Builder::new()
                    .name("loadgen-pacer".into())
                    .spawn(move || pacer(&pacer_shared, tick, connections))?,
            ),
            PacerMode::Timerfd => {
                let timer = Timer::new().context("creating the pacer's timerfd")?;
                PacerHandle::Task(tokio::spawn(async move {
                    pacer_on_timerfd(&pacer_shared, timer, tick, connections).await
                }))
            }
        };
        let sampler_shared = shared.clone();
        let sampler = std::thread::Builder::new().name("loadgen-cpu".into()).spawn(move || {
            let (s, stop) = (sampler_shared.schedule, &sampler_shared.stop);
            let start = sleep_until(s.measure_start(), stop).then(cpu_sample).flatten()?;
            let end = sleep_until(s.due(s.total), stop).then(cpu_sample).flatten()?;
            Some((start, end))
        })?;

        for t in tasks {
            t.await.context("connection task panicked")?;
        }
        let pacer_late = match pacer {
            PacerHandle::Thread(t) => t.join().map_err(|_| anyhow::anyhow!("pacer thread panicked"))?,
            PacerHandle::Task(t) => t.await.context("pacer task panicked")??,
        };
        let cpu = sampler.join().map_err(|_| anyhow::anyhow!("CPU sampler thread panicked"))?.and_then(|(a, b)| {
            let (busy, idle, own) = (b.busy - a.busy, b.idle - a.idle, b.own.saturating_sub(a.own));
            let total = busy + idle;
            (total > 0).then(|| CpuUse {
                machine_busy_pct: (1000.0 * busy as f64 / total as f64).round() / 10.0,
                generator_pct_of_one_core: (1000.0 * own as f64 * a.cpus as f64 / total as f64).round() / 10.0,
                steal_pct: (1000.0 * b.steal.saturating_sub(a.steal) as f64 / total as f64).round() / 10.0,
                cpus: a.cpus,
            })
        });

        let rec = shared.rec();
        let elapsed =
            rec.last_end.map_or(0.0, |e| e.saturating_duration_since(schedule.measure_start()).as_secs_f64());
        let ok = rec.measured.ok();
        let per_second = rec
            .per_second
            .iter()
            .zip(&rec.send_lag_max_per_second)
            .map(|(h, &lag)| Second {
                requests: h.count(),
                p99: ms(h.percentile(99.0)),
                max: ms(h.max()),
                send_lag_max: ms(lag),
            })
            .collect();
        Ok(Report {
            tool: "coffer-loadgen",
            method: "open loop, constant rate; latency from each request's due time (t0 + i/rate) to the end of its response",
            url: cfg.url.clone(),
            connections: cfg.connections,
            requested_rate: cfg.rate,
            achieved_rate: if elapsed > 0.0 { (ok as f64 / elapsed * 100.0).round() / 100.0 } else { 0.0 },
            duration_s: cfg.duration.as_secs_f64(),
            elapsed_s: (elapsed * 1e6).round() / 1e6,
            scheduled: measured_n,
            requests: rec.latency.count() + rec.measured.error_total(),
            ok,
            counts: rec.measured.clone(),
            stopped_early: shared.stop.load(Ordering::Relaxed),
            latency_ms: Percentiles::of(&rec.latency),
            send_lag_ms: Percentiles::of(&rec.send_lag),
            from_send_ms: Percentiles::of(&rec.from_send),
            in_flight_max: shared.in_flight_max.load(Ordering::Relaxed),
            pacer: Pacer {
                tick_us: nanos(cfg.pacer_tick) as f64 / 1e3,
                wakes: pacer_late.count(),
                wake_late_ms: Percentiles::of(&pacer_late),
            },
            cpu,
            per_second,
            warmup: Warmup { duration_s: cfg.warmup.as_secs_f64(), scheduled: warmup_n, counts: rec.warmup.clone() },
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("10s", 10.0),
            ("1.5s", 1.5),
            ("500ms", 0.5),
            ("250us", 0.000_25),
            ("2m", 120.0),
            ("1h", 3600.0),
            ("3", 3.0),
            ("0", 0.0),
        ];
        for (s, want) in cases {
            assert_eq!(
                parse_duration(s).unwrap(),
                Duration::from_secs_f64(want),
                "{s}"
            );
        }
        for bad in ["", "s", "10x", "-1s", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn headers() {
        let (k, v) = parse_header("Authorization: Bearer abc:def").unwrap();
        assert_eq!(
            (k.as_str(), v.to_str().unwrap()),
            ("authorization", "Bearer abc:def")
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    #[test]
    fn headers_from_a_file() {
        let dir = std::env::temp_dir().join(format!("coffer-loadgen-h-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("h");
        std::fs::write(&file, "Authorization: Bearer abc:def\r\n\nx-a: 1\n").unwrap();
        let got = parse_header_arg(&format!("@{}", file.display())).unwrap();
        let got: Vec<_> = got
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(got, [("authorization", "Bearer abc:def"), ("x-a", "1")]);
        assert_eq!(parse_header_arg("x-b: 2").unwrap().len(), 1);

        std::fs::write(&file, "x-a: 1\nsecret-without-colon\n").unwrap();
        let err = format!(
            "{:#}",
            parse_header_arg(&format!("@{}", file.display())).unwrap_err()
        );
        assert!(err.contains("header 2") && !err.contains("secret"), "{err}");
        assert!(parse_header_arg(&format!("@{}", dir.join("missing").display())).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn schedule_counts_match_due_times() {
        let t0 = Instant::now();
        let s = Schedule {
            t0,
            interval_ns: 1e9 / 47_575.0,
            warmup: 10,
            total: 1_000_000,
        };
        for i in [0u64, 1, 2, 999, 47_574, 47_575, 123_457, 999_999] {
            let due = s.due(i);
            assert_eq!(s.due_count(due), i + 1, "at due({i})");
            assert_eq!(
                s.due_count(due - Duration::from_nanos(1)),
                i,
                "just before due({i})"
            );
        }
        assert_eq!(s.due_count(t0 + Duration::from_secs(3600)), 1_000_000);
        assert_eq!(
            s.due_count(t0.checked_sub(Duration::from_millis(1)).unwrap()),
            0
        );
    }

    #[test]
    fn url_and_headers_make_the_request() {
        let mut cfg = Config::new(
            "http://127.0.0.1:8200/v1/secret/data/x?version=2",
            1.0,
            Duration::from_secs(1),
            1,
        );
        cfg.headers.push(parse_header("X-Vault-Token: t").unwrap());
        let t = Target::new(&cfg).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8200));
        assert_eq!(
            String::from_utf8(t.request.clone()).unwrap(),
            "GET /v1/secret/data/x?version=2 HTTP/1.1\r\n\
             host: 127.0.0.1:8200\r\n\
             x-vault-token: t\r\n\
             \r\n"
        );
        cfg.headers
            .push(parse_header("Host: example.test").unwrap());
        let t = Target::new(&cfg).unwrap();
        assert!(
            String::from_utf8(t.request)
                .unwrap()
                .starts_with("GET /v1/secret/data/x?version=2 HTTP/1.1\r\nhost: example.test\r\n")
        );
        for bad in ["https://127.0.0.1/", "127.0.0.1:80/", "http:///x"] {
            assert!(
                Target::new(&Config {
                    url: bad.into(),
                    ..cfg.clone()
                })
                .is_err(),
                "{bad}"
            );
        }
    }
}
