//! A node's background jobs: holding the leader role, sweeping expired
//! access records, the lifecycle scheduler and the alerts it raises,
//! rotating the audit log on SIGHUP, and raising an alert when the store
//! stops answering and when it answers again.
//!
//! With several nodes on one store, only the node that holds the leader
//! role runs the sweeps and the scheduler, and only while it is unsealed
//! (a sealed node gives the role up to one that can run them).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use coffer_audit::Auditor;
use coffer_core::rotation::TickReport;
use coffer_core::{Coffer, CoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a node checks (or takes) the role of running background jobs.
const LEAD_CHECK: Duration = Duration::from_secs(1);
/// How often a node probes its store when nothing else does (the health
/// check probes it too, at most once a second).
const STORAGE_WATCH: Duration = Duration::from_secs(5);

/// The running jobs, stopped together by [`Jobs::stop`].
pub(crate) struct Jobs {
    tasks: Vec<JoinHandle<()>>,
}

impl Jobs {
    /// Starts the leader check, the sweeps every `sweep_every`, the
    /// scheduler every `lifecycle_every` and, if `hangup_rotates`, audit
    /// log rotation on SIGHUP.
    pub(crate) fn start(
        coffer: &Arc<Coffer>,
        auditor: &Arc<Auditor>,
        sweep_every: Duration,
        lifecycle_every: Duration,
        hangup_rotates: bool,
        metrics: &Arc<crate::metrics::Metrics>,
    ) -> Jobs {
        let (leading, _) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(lead_periodically(
                coffer.clone(),
                leading.clone(),
                metrics.clone(),
            )),
            tokio::spawn(sweep_periodically(
                coffer.clone(),
                auditor.clone(),
                leading.subscribe(),
                sweep_every,
            )),
            tokio::spawn(lifecycle_periodically(
                coffer.clone(),
                auditor.clone(),
                leading.subscribe(),
                lifecycle_every,
                metrics.clone(),
            )),
        ];
        if hangup_rotates {
            tasks.push(tokio::spawn(rotate_on_hangup(auditor.clone())));
        }
        tasks.push(tokio::spawn(watch_storage(coffer.clone(), auditor.clone())));
        Jobs { tasks }
    }

    /// Stops every job where it is (none holds anything that needs
    /// finishing: a pass cut short is done again by the next leader).
    pub(crate) fn stop(self) {
        drop(self);
    }
}

impl Drop for Jobs {
    /// Jobs let go of any other way (a node's shutdown cut short) stop too:
    /// none may outlive the node that holds the data directory's lock.
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What a log line says of a failure: for the store's, its own message
/// (the core's says only "storage failure").
fn shown(e: &CoreError) -> String {
    match e {
        CoreError::Storage(source) => source.to_string(),
        other => other.to_string(),
    }
}

/// Keeps `leading` true while this node holds the leader role; with
/// several nodes on one PostgreSQL exactly one unsealed node does, and
/// another takes the role within about a second of the holder's death or
/// sealing.
async fn lead_periodically(
    coffer: Arc<Coffer>,
    leading: watch::Sender<bool>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut tick = tokio::time::interval(LEAD_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A sealed node answers false without a warning: it gives the
        // role to a node that can run the jobs.
        let now = match coffer.hold_leadership().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %shown(&e), "cannot check the leader role");
                false
            }
        };
        metrics.leading(now);
        leading.send_if_modified(|was| {
            let changed = *was != now;
            *was = now;
            changed
        });
    }
}

/// Waits for the next tick at which this node leads; returns whether it has
/// just become the leader.
async fn next_leading_tick(
    tick: &mut tokio::time::Interval,
    leading: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if *leading.borrow() {
                    return false;
                }
            }
            changed = leading.changed() => {
                if changed.is_err() {
                    // The leader task is gone (shutting down).
                    std::future::pending::<()>().await;
                }
                if *leading.borrow_and_update() {
                    tick.reset();
                    return true;
                }
            }
        }
    }
}

/// Deletes expired access records every `every`, while unsealed, on the
/// leader only.
async fn sweep_periodically(
    coffer: Arc<Coffer>,
    auditor: Arc<Auditor>,
    mut leading: watch::Receiver<bool>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        next_leading_tick(&mut tick, &mut leading).await;
        if let Err(e) = coffer.housekeeping().await {
            tracing::warn!(error = %shown(&e), "storage housekeeping failed");
        }
        if !coffer.is_unsealed() {
            continue;
        }
        if let Err(e) = coffer.sync().await {
            tracing::warn!(error = %e, "cannot apply other nodes' changes; sweep skipped");
            continue;
        }
        match coffer.sweep_expired().await {
            Ok(r) => tracing::debug!(
                grants = r.grants,
                invites = r.invites,
                login_failures = r.login_failures,
                "expired access records swept"
            ),
            Err(e) => tracing::warn!(error = %e, "sweeping expired access records failed"),
        }
        // Expired share links: their ciphertext is deleted, and each
        // deletion is recorded (the id only; the server never has a key).
        match coffer.sweep_shares().await {
            Ok(ids) => {
                for id in ids {
                    if !auditor.record(share_expired_record(&id)).await {
                        tracing::error!("a share expiry could not be recorded");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "sweeping expired share links failed"),
        }
    }
}

/// The audit record of a share link the sweep deleted.
fn share_expired_record(id: &str) -> coffer_audit::Record {
    coffer_audit::Record {
        time: coffer_audit::now_rfc3339(),
        kind: coffer_audit::Kind::Notice,
        actor: Some(coffer_audit::Actor {
            kind: "system".into(),
            name: coffer_core::rotation::SCHEDULER.into(),
            accessor: String::new(),
            via: None,
        }),
        op: Some("share.expire".into()),
        path: Some(format!("sys/shares/{id}")),
        outcome: Some(coffer_audit::Outcome::Ok),
        message: Some("an expired or used-up share link was deleted".into()),
        ..coffer_audit::Record::default()
    }
}

/// Runs the lifecycle scheduler every `every`, while unsealed and while the
/// audit log works (a rotation nobody can record does not happen), and
/// records what each pass did as alerts (see [`AlertPolicy`]).
async fn lifecycle_periodically(
    coffer: Arc<Coffer>,
    auditor: Arc<Auditor>,
    mut leading: watch::Receiver<bool>,
    every: Duration,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut policy = AlertPolicy::default();
    loop {
        // A node that has just become the leader runs a pass at once, so
        // a takeover does not wait a whole interval.
        next_leading_tick(&mut tick, &mut leading).await;
        if !coffer.is_unsealed() || !auditor.healthy() {
            continue;
        }
        if let Err(e) = coffer.sync().await {
            tracing::warn!(error = %e, "cannot apply other nodes' changes; lifecycle pass skipped");
            continue;
        }
        tracing::debug!("lifecycle pass");
        let report = match coffer.lifecycle_tick().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "lifecycle pass failed");
                continue;
            }
        };
        metrics.lifecycle_pass(&report, coffer_core::now_ms());
        let rewrapped = report.rewrapped;
        let alerts = policy.alerts(report, coffer_core::now_ms());
        // Logged as raised, with the re-wrap before the failures (the
        // order a pass's report lists them in), then recorded.
        let mut told_rewrap = false;
        let mut tell_rewrap = || {
            if rewrapped > 0 && !std::mem::replace(&mut told_rewrap, true) {
                tracing::info!(
                    versions = rewrapped,
                    "versions moved to the active keyring key"
                );
            }
        };
        for a in &alerts {
            if a.rule == "rotation_failed" {
                tell_rewrap();
            }
            tracing::warn!(target: "coffer::alert", alert = a.rule, path = a.path.as_str(), "{}", a.message);
        }
        tell_rewrap();
        for a in alerts {
            if !auditor.record(a.record()).await {
                tracing::error!("a lifecycle alert could not be recorded");
            }
        }
    }
}

/// Which scheduler passes raise which alerts. Each scheduled rotation,
/// each failed one, and each keyring key added is an alert every time;
/// a rotation that is due but has no generator, and an expiry within a
/// week (or past), are alerts once per secret and date for the life of the
/// process. Alerts never carry a value.
#[derive(Default)]
struct AlertPolicy {
    /// (path, what, date) already raised.
    told: HashSet<(String, &'static str, i64)>,
}

/// One alert the scheduler raises.
#[derive(Debug, PartialEq)]
struct LifecycleAlert {
    rule: &'static str,
    path: String,
    version: Option<u64>,
    message: String,
}

impl AlertPolicy {
    /// The alerts for one pass's report, at `now` (ms since the epoch), in
    /// the order they are recorded.
    fn alerts(&mut self, report: TickReport, now: i64) -> Vec<LifecycleAlert> {
        let fmt = coffer_core::duration::format_time_ms;
        let mut alerts = Vec::new();
        for (path, version, until) in report.rotated {
            let grace = until.map_or(String::new(), |t| {
                format!("; the previous version is served until {}", fmt(t))
            });
            alerts.push(LifecycleAlert {
                rule: "secret_rotated",
                message: format!(
                    "scheduled rotation of {path}: version {version} is current{grace}"
                ),
                path,
                version: Some(version),
            });
        }
        for (path, due) in report.due_by_hand {
            if self.told.insert((path.clone(), "due", due)) {
                alerts.push(LifecycleAlert {
                    rule: "rotation_due",
                    message: format!(
                        "{path} was due for rotation at {} and no generator applies: rotate it by hand",
                        fmt(due)
                    ),
                    path,
                    version: None,
                });
            }
        }
        for (path, at) in report.expiring {
            let expired = at <= now;
            if self.told.insert((
                path.clone(),
                if expired { "expired" } else { "expiring" },
                at,
            )) {
                let when = fmt(at);
                alerts.push(LifecycleAlert {
                    rule: if expired {
                        "secret_expired"
                    } else {
                        "secret_expiring"
                    },
                    message: if expired {
                        format!("{path} expired at {when}; reads are refused")
                    } else {
                        format!("{path} expires at {when}")
                    },
                    path,
                    version: None,
                });
            }
        }
        for (id, _) in report.keys_added {
            alerts.push(LifecycleAlert {
                rule: "keyring_rotated",
                path: "sys/keyring".into(),
                version: None,
                message: format!(
                    "keyring key {id} was added: the previous key had sealed its share of values; \
                     older versions move to it in the background"
                ),
            });
        }
        for (path, why) in report.failed {
            alerts.push(LifecycleAlert {
                rule: "rotation_failed",
                message: format!("scheduled rotation of {path} failed: {why}"),
                path,
                version: None,
            });
        }
        alerts
    }
}

impl LifecycleAlert {
    /// The alert's audit record, made by the scheduler.
    fn record(self) -> coffer_audit::Record {
        coffer_audit::Record {
            path: Some(self.path.clone()),
            version: self.version,
            ..system_alert(
                coffer_core::rotation::SCHEDULER,
                "lifecycle.scheduler",
                self.rule,
                self.path,
                self.message,
            )
        }
    }
}

/// An alert record raised by the server itself (a system actor named
/// `actor`), not by a request: once, about `subject`.
fn system_alert(
    actor: &str,
    op: &str,
    rule: &str,
    subject: String,
    message: String,
) -> coffer_audit::Record {
    coffer_audit::Record {
        time: coffer_audit::now_rfc3339(),
        kind: coffer_audit::Kind::Alert,
        actor: Some(coffer_audit::Actor {
            kind: "system".into(),
            name: actor.into(),
            accessor: String::new(),
            via: None,
        }),
        op: Some(op.into()),
        outcome: Some(coffer_audit::Outcome::Ok),
        alert: Some(coffer_audit::AlertInfo {
            rule: rule.to_string(),
            subject,
            count: 1,
            window_secs: 0,
        }),
        message: Some(message),
        ..coffer_audit::Record::default()
    }
}

/// Probes the store every [`STORAGE_WATCH`] (on every node: each has its
/// own connections), and raises `storage_unavailable` when a probe (this
/// one or a health check's) finds it not answering, `storage_recovered`
/// when it answers again. The alerts go to the audit log and the webhooks
/// (to the webhooks even when the audit log cannot take them).
async fn watch_storage(coffer: Arc<Coffer>, auditor: Arc<Auditor>) {
    let mut changes = coffer.storage_changes();
    let mut tick = tokio::time::interval(STORAGE_WATCH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                coffer.storage_available().await;
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let available = *changes.borrow_and_update();
        let (rule, message) = match (available, down_since) {
            (false, None) => {
                down_since = Some(std::time::Instant::now());
                (
                    "storage_unavailable",
                    "the store does not answer: requests that read or write it fail until it does"
                        .to_string(),
                )
            }
            (true, Some(since)) => {
                down_since = None;
                (
                    "storage_recovered",
                    format!(
                        "the store answers again, after {} s without it",
                        since.elapsed().as_secs()
                    ),
                )
            }
            _ => continue,
        };
        tracing::warn!(target: "coffer::alert", alert = rule, "{message}");
        let record = system_alert("coffer", "sys.storage", rule, "storage".into(), message);
        if !auditor.record(record).await {
            tracing::error!(
                alert = rule,
                "a storage alert could not be recorded (it went to the webhooks)"
            );
        }
    }
}

/// SIGHUP rotates the audit log files, as `coffer audit rotate` does (for
/// logrotate's `postrotate`, or systemd's `ExecReload`).
async fn rotate_on_hangup(auditor: Arc<Auditor>) {
    #[cfg(unix)]
    {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP (audit log rotation)");
                return;
            }
        };
        while hup.recv().await.is_some() {
            let a = auditor.clone();
            match tokio::task::spawn_blocking(move || a.rotate()).await {
                Ok(Ok(report)) => {
                    for r in &report.rotated {
                        tracing::info!(file = %r.log.display(), to = %r.to.display(), records = r.records, "SIGHUP: audit log file rotated");
                    }
                    for (file, reason) in &report.failed {
                        tracing::error!(file = %file.display(), %reason, "SIGHUP: audit log file not rotated");
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "SIGHUP: audit log not rotated"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: audit log rotation failed"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = auditor;
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn report() -> TickReport {
        TickReport {
            rotated: vec![("app/prod/JWT".into(), 4, Some(DAY))],
            due_by_hand: vec![("app/prod/API".into(), 2 * DAY)],
            expiring: vec![
                ("app/prod/OLD".into(), DAY),
                ("app/prod/NEW".into(), 9 * DAY),
            ],
            failed: vec![("app/prod/DB".into(), "no generator".into())],
            keys_added: vec![(3, DAY)],
            rewrapped: 0,
        }
    }

    #[test]
    fn each_pass_reports_what_it_did_and_dated_alerts_once() {
        let mut policy = AlertPolicy::default();
        let now = 5 * DAY;
        let first = policy.alerts(report(), now);
        let rules: Vec<(&str, &str, Option<u64>)> = first
            .iter()
            .map(|a| (a.rule, a.path.as_str(), a.version))
            .collect();
        assert_eq!(
            rules,
            [
                ("secret_rotated", "app/prod/JWT", Some(4)),
                ("rotation_due", "app/prod/API", None),
                ("secret_expired", "app/prod/OLD", None),
                ("secret_expiring", "app/prod/NEW", None),
                ("keyring_rotated", "sys/keyring", None),
                ("rotation_failed", "app/prod/DB", None),
            ]
        );
        assert!(
            first[0]
                .message
                .starts_with("scheduled rotation of app/prod/JWT: version 4 is current; the previous version is served until "),
            "{}",
            first[0].message
        );
        assert!(first[2].message.ends_with("; reads are refused"));
        // The same report again: rotations, keys and failures are news
        // each time; due and expiry dates already raised are not.
        let again: Vec<&str> = policy
            .alerts(report(), now)
            .iter()
            .map(|a| a.rule)
            .collect();
        assert_eq!(
            again,
            ["secret_rotated", "keyring_rotated", "rotation_failed"]
        );
        // A new expiry date for the same secret is raised.
        let moved = TickReport {
            expiring: vec![("app/prod/NEW".into(), 10 * DAY)],
            ..TickReport::default()
        };
        assert_eq!(policy.alerts(moved, now).len(), 1);
    }

    #[test]
    fn an_alert_record_is_the_schedulers_and_names_the_rule() {
        let record = LifecycleAlert {
            rule: "secret_expiring",
            path: "app/prod/NEW".into(),
            version: None,
            message: "app/prod/NEW expires at then".into(),
        }
        .record();
        assert_eq!(record.kind, coffer_audit::Kind::Alert);
        assert_eq!(record.op.as_deref(), Some("lifecycle.scheduler"));
        assert_eq!(
            record.actor.as_ref().map(|a| a.name.as_str()),
            Some(coffer_core::rotation::SCHEDULER)
        );
        let alert = record.alert.expect("alert info");
        assert_eq!(
            (alert.rule.as_str(), alert.subject.as_str()),
            ("secret_expiring", "app/prod/NEW")
        );
    }
}
