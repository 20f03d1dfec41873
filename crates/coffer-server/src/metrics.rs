//! A node's metrics, in Prometheus' text format (`GET /api/v1/sys/metrics`,
//! and the optional loopback listener `metrics_listen`).
//!
//! Labels are bounded by construction: an operation name from the route
//! table (or `unmatched`), an HTTP status code, a fixed result word. No
//! secret path, user name, token accessor or address is ever a label, so
//! neither cardinality nor the metrics themselves reveal who did what.
//!
//! Counters and histograms move as things happen (the request layer, the
//! webhook deliveries, the lifecycle scheduler); gauges of state (seal,
//! leadership, the audit log, the process) are read when scraped.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use std::sync::Arc;

use coffer_store::{Storage, TokenKind, TokenRecord};

use crate::metered_store::{Instruments, MeteredStore, Op};
use crate::state::AppState;

/// The content type of the exposition: OpenMetrics text, which
/// Prometheus reads (and asks for).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    operation: &'static str,
    backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// The `kind` label of the live-tokens gauge: every value it can take.
pub const TOKEN_KINDS: [&str; 3] = ["service", "user", "workload"];

/// How long a count of live tokens is reused before a scrape counts again
/// (counting reads every token record: see [`Metrics::render`]).
const TOKEN_COUNT_MAX_AGE: Duration = Duration::from_secs(15);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// A node's metrics registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<OperationLabel, Histogram>,
    webhooks: Family<ResultLabel, Counter>,
    rotations: Family<ResultLabel, Counter>,
    due_by_hand: Gauge,
    expiring: Gauge,
    expired: Gauge,
    last_pass: FloatGauge,
    initialized: Gauge,
    sealed: Gauge,
    leader: Gauge,
    audit_available: Gauge,
    audit_bytes: Gauge,
    audit_records: Gauge,
    cpu_seconds: Counter<f64, AtomicU64>,
    /// One scrape at a time reads the process figures (the CPU counter
    /// moves by the difference since the last read).
    scrape: std::sync::Mutex<()>,
    resident_bytes: Gauge,
    virtual_bytes: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    threads: Gauge,
    start_time: FloatGauge,
    store_durations: Family<StoreLabels, Histogram>,
    store_errors: Family<StoreLabels, Counter>,
    live_tokens: Family<KindLabel, Gauge>,
    /// When the live tokens were last counted.
    tokens_counted: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("coffer");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by operation (the route table's name) and HTTP status",
            requests.clone(),
        );
        let durations = Family::<OperationLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5, 5.0,
            ])
        });
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer, audit record included",
            Unit::Seconds,
            durations.clone(),
        );
        let webhooks = Family::<ResultLabel, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Alert deliveries to webhooks: delivered, retried (a failed attempt that will be tried again) or failed (given up)",
            webhooks.clone(),
        );
        let rotations = Family::<ResultLabel, Counter>::default();
        registry.register(
            "lifecycle_rotations",
            "Scheduled rotations run by this node's lifecycle scheduler: rotated or failed",
            rotations.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| -> Gauge {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let due_by_hand = gauge(
            registry,
            "lifecycle_rotations_due_by_hand",
            "Secrets due for rotation with no generator to rotate them, at the last scheduler pass (leader only)",
        );
        let expiring = gauge(
            registry,
            "lifecycle_secrets_expiring",
            "Secrets within their expiry warning window, at the last scheduler pass (leader only)",
        );
        let expired = gauge(
            registry,
            "lifecycle_secrets_expired",
            "Secrets past their expiry date, at the last scheduler pass (leader only)",
        );
        let last_pass = FloatGauge::default();
        registry.register_with_unit(
            "lifecycle_last_pass_timestamp",
            "When this node's lifecycle scheduler last completed a pass (0: never)",
            Unit::Seconds,
            last_pass.clone(),
        );
        let initialized = gauge(registry, "initialized", "1 once the store is initialised");
        let sealed = gauge(registry, "sealed", "1 while this node is sealed");
        let leader = gauge(
            registry,
            "leader",
            "1 while this node holds the leader role (runs the background jobs)",
        );
        let audit_available = gauge(
            registry,
            "audit_available",
            "1 while an audit sink takes records; 0 means every audited request is refused",
        );
        let audit_bytes = Gauge::default();
        registry.register_with_unit(
            "audit_log_size",
            "Size of the current audit log files together",
            Unit::Bytes,
            audit_bytes.clone(),
        );
        let audit_records = gauge(
            registry,
            "audit_log_records",
            "Sequence number of the last record in the first audit log file",
        );
        let store_durations = Family::<StoreLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register_with_unit(
            "store_operation_duration",
            "Time spent in the storage backend, by operation (a fixed word per storage call) and backend (sqlite or postgres)",
            Unit::Seconds,
            store_durations.clone(),
        );
        let store_errors = Family::<StoreLabels, Counter>::default();
        registry.register(
            "store_operation_errors",
            "Storage calls that failed (a commit's failed check-and-set is not counted), by operation and backend",
            store_errors.clone(),
        );
        let live_tokens = Family::<KindLabel, Gauge>::default();
        registry.register(
            "tokens_live",
            "Tokens neither expired, used up nor revoked, by kind (service, user, workload); counted from the store, so on PostgreSQL every node reports the whole cluster's count (at most 15 s old)",
            live_tokens.clone(),
        );
        // Process figures under their conventional names, without the prefix.
        let process = root.sub_registry_with_prefix("process");
        let cpu_seconds = Counter::<f64, AtomicU64>::default();
        process.register_with_unit(
            "cpu",
            "User and system CPU time",
            Unit::Seconds,
            cpu_seconds.clone(),
        );
        let resident_bytes = Gauge::default();
        process.register_with_unit(
            "resident_memory",
            "Resident memory",
            Unit::Bytes,
            resident_bytes.clone(),
        );
        let virtual_bytes = Gauge::default();
        process.register_with_unit(
            "virtual_memory",
            "Virtual memory",
            Unit::Bytes,
            virtual_bytes.clone(),
        );
        let open_fds = gauge(process, "open_fds", "Open file descriptors");
        let max_fds = gauge(process, "max_fds", "Limit on open file descriptors");
        let threads = gauge(process, "threads", "Threads");
        let start_time = FloatGauge::default();
        process.register_with_unit(
            "start_time",
            "Start time, since the Unix epoch",
            Unit::Seconds,
            start_time.clone(),
        );
        Metrics {
            registry: root,
            requests,
            durations,
            webhooks,
            rotations,
            due_by_hand,
            expiring,
            expired,
            last_pass,
            initialized,
            sealed,
            leader,
            audit_available,
            audit_bytes,
            audit_records,
            cpu_seconds,
            scrape: std::sync::Mutex::new(()),
            resident_bytes,
            virtual_bytes,
            open_fds,
            max_fds,
            threads,
            start_time,
            store_durations,
            store_errors,
            live_tokens,
            tokens_counted: std::sync::Mutex::new(None),
        }
    }

    /// `store`, with every call timed in these metrics (labelled with its
    /// backend's name).
    pub fn metered(&self, store: Arc<dyn Storage>) -> Arc<dyn Storage> {
        let backend = store.backend_name();
        let by_op = Op::ALL
            .iter()
            .map(|op| {
                let labels = StoreLabels {
                    operation: op.name(),
                    backend,
                };
                Instruments {
                    duration: self.store_durations.get_or_create(&labels).clone(),
                    errors: self.store_errors.get_or_create(&labels).clone(),
                }
            })
            .collect();
        Arc::new(MeteredStore::new(store, by_op))
    }

    /// Counts the live tokens in `store`, unless they were counted less
    /// than [`TOKEN_COUNT_MAX_AGE`] ago. Counting reads every token record
    /// (one query, no decryption, so it is safe while sealed too); it
    /// happens at most once per interval however often scrapes come and
    /// however many tokens are created, used or revoked in between (a
    /// commit does not force a recount: with single-use tokens, every use
    /// is a commit). A change shows within the interval. A store that
    /// cannot be read leaves the last count.
    async fn count_tokens(&self, store: &dyn Storage) {
        {
            let mut at = self
                .tokens_counted
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if at.is_some_and(|t| t.elapsed() < TOKEN_COUNT_MAX_AGE) {
                return;
            }
            *at = Some(std::time::Instant::now());
        }
        let tokens = match store.list_tokens().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "could not count the live tokens for the metrics");
                *self
                    .tokens_counted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
                return;
            }
        };
        let now = coffer_core::now_ms();
        let mut counts = [0i64; TOKEN_KINDS.len()];
        for t in tokens.iter().filter(|t| is_live(t, now)) {
            counts[token_kind(t)] += 1;
        }
        for (kind, n) in TOKEN_KINDS.iter().zip(counts) {
            self.live_tokens.get_or_create(&KindLabel { kind }).set(n);
        }
    }

    /// Counts an answered request.
    pub fn request(&self, operation: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels { operation, status })
            .inc();
        self.durations
            .get_or_create(&OperationLabel { operation })
            .observe(took.as_secs_f64());
    }

    /// Counts a webhook delivery attempt's result: `delivered`, `retried`
    /// or `failed`.
    pub fn webhook(&self, result: &'static str) {
        self.webhooks.get_or_create(&ResultLabel { result }).inc();
    }

    /// Notes whether this node holds the leader role.
    pub fn leading(&self, yes: bool) {
        self.leader.set(i64::from(yes));
    }

    /// Notes a completed lifecycle scheduler pass.
    pub fn lifecycle_pass(&self, report: &coffer_core::rotation::TickReport, now_ms: i64) {
        let rotated = report.rotated.len() as u64;
        let failed = report.failed.len() as u64;
        self.rotations
            .get_or_create(&ResultLabel { result: "rotated" })
            .inc_by(rotated);
        self.rotations
            .get_or_create(&ResultLabel { result: "failed" })
            .inc_by(failed);
        self.due_by_hand.set(report.due_by_hand.len() as i64);
        let expired = report
            .expiring
            .iter()
            .filter(|(_, at)| *at <= now_ms)
            .count();
        self.expired.set(expired as i64);
        self.expiring.set((report.expiring.len() - expired) as i64);
        self.last_pass.set(now_ms as f64 / 1000.0);
    }

    /// The exposition as it stands, without reading any state (for tests
    /// of the counters).
    #[cfg(test)]
    pub(crate) fn render_counters(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// The text exposition, with the state gauges read now.
    pub async fn render(&self, state: &AppState) -> String {
        self.count_tokens(state.coffer.store().as_ref()).await;
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let s = state.coffer.status();
        self.initialized.set(i64::from(s.initialized));
        self.sealed.set(i64::from(s.sealed));
        self.audit_available.set(i64::from(state.auditor.healthy()));
        let bytes: u64 = state
            .auditor
            .files()
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        self.audit_bytes.set(saturating(bytes));
        if let Some((_, head)) = state.auditor.heads().first() {
            self.audit_records.set(saturating(head.seq));
        }
        if let Some(p) = process::read() {
            let seen = self.cpu_seconds.get();
            if p.cpu_seconds > seen {
                self.cpu_seconds.inc_by(p.cpu_seconds - seen);
            }
            self.resident_bytes.set(saturating(p.resident_bytes));
            self.virtual_bytes.set(saturating(p.virtual_bytes));
            self.open_fds.set(saturating(p.open_fds));
            self.max_fds.set(saturating(p.max_fds));
            self.threads.set(saturating(p.threads));
            self.start_time.set(p.start_time);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Whether a token would be accepted now (revoked tokens are no longer in
/// the store).
fn is_live(t: &TokenRecord, now_ms: i64) -> bool {
    t.expires_at.is_none_or(|at| now_ms < at) && t.uses_left != Some(0)
}

/// The index in [`TOKEN_KINDS`] of a token's kind.
fn token_kind(t: &TokenRecord) -> usize {
    match (&t.workload, t.kind) {
        (Some(_), _) => 2,
        (None, TokenKind::Human) => 1,
        (None, TokenKind::Service) => 0,
    }
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The process's own figures, from `/proc/self` (Linux).
mod process {
    pub(super) struct Figures {
        pub cpu_seconds: f64,
        pub resident_bytes: u64,
        pub virtual_bytes: u64,
        pub open_fds: u64,
        pub max_fds: u64,
        pub threads: u64,
        pub start_time: f64,
    }

    pub(super) fn read() -> Option<Figures> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) is in parentheses and may hold spaces:
        // the fields that matter follow the last ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // Field numbers from proc(5), minus 3 (pid, comm and state precede).
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let page = rustix::param::page_size() as u64;
        let boot: f64 = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        Some(Figures {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            threads: field(20)?,
            start_time: boot + field(22)? as f64 / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
            open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as u64,
            max_fds,
        })
    }
}

/// Serves `GET /metrics`, without a token, on `addr` (a loopback address,
/// as the configuration requires), until the task is aborted. Only
/// `localhost` and loopback addresses are accepted in `Host`, so a web page
/// cannot read it through a name that resolves to loopback (DNS
/// rebinding).
pub(crate) async fn serve_loopback(
    addr: std::net::SocketAddr,
    state: AppState,
) -> Result<tokio::task::JoinHandle<()>, crate::NodeError> {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| crate::NodeError::Config(format!("metrics_listen {addr}: {e}")))?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State(st): axum::extract::State<AppState>,
                 headers: axum::http::HeaderMap| async move {
                    if !headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .is_some_and(is_loopback_host)
                    {
                        return (
                            StatusCode::MISDIRECTED_REQUEST,
                            "Host must be localhost or a loopback address\n",
                        )
                            .into_response();
                    }
                    (
                        [(header::CONTENT_TYPE, CONTENT_TYPE)],
                        st.metrics.render(&st).await,
                    )
                        .into_response()
                },
            ),
        )
        .with_state(state);
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %bound, "metrics listening (GET /metrics, no token)");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    }))
}

/// `localhost` or a loopback IP literal, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(ip, _)| ip),
        None => host.split_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_reach_the_unauthenticated_listener() {
        for ok in [
            "localhost",
            "LOCALHOST:9270",
            "127.0.0.1",
            "127.0.0.1:9270",
            "[::1]:9270",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9270",
            "localhost.",
            "127.0.0.1.nip.io",
            "2130706433",
            "0x7f000001",
            "10.0.0.1:9270",
            "[::ffff:8.8.8.8]",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
