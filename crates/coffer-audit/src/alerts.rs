//! Alert rules over the record stream.
//!
//! The writer shows every record to an [`AlertEngine`] before writing it;
//! an alert is itself a record (`"type":"alert"`), written right after the
//! record that triggered it, and is also handed to the webhooks. Rules:
//!
//! * `failure_burst`: `failures` denied or failed requests from one actor
//!   (by accessor) or one source address within `failure_window_secs`.
//! * `read_burst`: one actor reading `reads` distinct secrets within
//!   `read_window_secs`.
//! * `breakglass_granted` and `breakglass_read`: every use of break-glass.
//! * `protected_refused`: a refused attempt to read a value in a protected
//!   environment (the identities expected there are services; a person, or
//!   a token without the grant, is not).
//! * `login_locked`: a login refused because its name is locked out.
//! * `version_compromised`: a secret version marked compromised (its value
//!   leaked; `coffer leak`).
//!
//! Counting uses fixed windows per subject, and a burst rule fires once per
//! subject and window, so an attack produces one alert, not thousands.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::record::{AlertInfo, Kind, Outcome, Record};

/// Thresholds, as configured under `[audit.alerts]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertRules {
    /// Denied or failed requests per actor or source that raise an alert.
    pub failures: u64,
    /// Window for `failures`, in seconds.
    pub failure_window_secs: u64,
    /// Distinct secrets read by one actor that raise an alert.
    pub reads: u64,
    /// Window for `reads`, in seconds.
    pub read_window_secs: u64,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            failures: 20,
            failure_window_secs: 60,
            reads: 200,
            read_window_secs: 60,
        }
    }
}

impl AlertRules {
    /// Checks the thresholds.
    pub fn validate(&self) -> Result<(), String> {
        if self.failures == 0 || self.reads == 0 {
            return Err("audit.alerts thresholds must be at least 1".into());
        }
        if !(1..=86_400).contains(&self.failure_window_secs)
            || !(1..=86_400).contains(&self.read_window_secs)
        {
            return Err("audit.alerts windows must be between 1 and 86400 seconds".into());
        }
        Ok(())
    }
}

struct Window {
    start: Instant,
    count: u64,
    fired: bool,
    seen: HashSet<u64>,
}

/// Subjects tracked before old windows are swept.
const MAX_SUBJECTS: usize = 100_000;

/// The rules' state.
pub struct AlertEngine {
    rules: AlertRules,
    failures: HashMap<String, Window>,
    reads: HashMap<String, Window>,
}

impl AlertEngine {
    /// An engine with no history.
    pub fn new(rules: AlertRules) -> AlertEngine {
        AlertEngine {
            rules,
            failures: HashMap::new(),
            reads: HashMap::new(),
        }
    }

    /// The alerts `record` raises, observed at `now`.
    pub fn observe(&mut self, record: &Record, now: Instant) -> Vec<Record> {
        let mut out = Vec::new();
        if record.kind != Kind::Request {
            return out;
        }
        let op = record.op.as_deref().unwrap_or("");
        let outcome = record.outcome.unwrap_or(Outcome::Error);
        let failed = match outcome {
            Outcome::Denied => true,
            // Client errors count (probing for paths, malformed tokens);
            // a sealed server or a server fault is not the caller's doing.
            Outcome::Error => record.status.is_some_and(|s| (400..500).contains(&s)),
            Outcome::Ok => false,
        };
        if failed {
            let window = Duration::from_secs(self.rules.failure_window_secs);
            let subjects = [
                record.actor_key().map(|a| format!("actor {a}")),
                record.source.as_deref().map(|s| format!("source {s}")),
            ];
            for subject in subjects.into_iter().flatten() {
                if let Some(count) = bump(
                    &mut self.failures,
                    &subject,
                    None,
                    now,
                    window,
                    self.rules.failures,
                ) {
                    out.push(alert(
                        record,
                        "failure_burst",
                        &subject,
                        count,
                        self.rules.failure_window_secs,
                        format!(
                            "{count} denied or failed requests from {subject} within {}s",
                            self.rules.failure_window_secs
                        ),
                    ));
                }
            }
        }
        if let Some(actor) = record.actor_key() {
            // Each distinct secret whose value was served counts once per
            // window; a bundle counts all of its secrets.
            let window = Duration::from_secs(self.rules.read_window_secs);
            let subject = format!("actor {actor}");
            let mut fired = None;
            for (path, _) in record.values_served() {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                path.hash(&mut h);
                let count = bump(
                    &mut self.reads,
                    &subject,
                    Some(h.finish()),
                    now,
                    window,
                    self.rules.reads,
                );
                fired = fired.or(count);
            }
            if let Some(count) = fired {
                out.push(alert(
                    record,
                    "read_burst",
                    &subject,
                    count,
                    self.rules.read_window_secs,
                    format!(
                        "{subject} ({}) read {count} different secrets within {}s",
                        actor_name(record),
                        self.rules.read_window_secs
                    ),
                ));
            }
        }
        if record.breakglass && outcome == Outcome::Ok {
            out.push(single(
                record,
                "breakglass_read",
                format!(
                    "break-glass read of {} by {}",
                    record.path.as_deref().unwrap_or("?"),
                    actor_name(record)
                ),
            ));
        }
        if op == "breakglass.grant" && outcome == Outcome::Ok {
            out.push(single(
                record,
                "breakglass_granted",
                format!(
                    "break-glass granted to {} for {}",
                    actor_name(record),
                    record.path.as_deref().unwrap_or("?")
                ),
            ));
        }
        if op == "secret.compromise" && outcome == Outcome::Ok {
            out.push(single(
                record,
                "version_compromised",
                format!(
                    "{} marked version {} of {} compromised",
                    actor_name(record),
                    record.version.map_or("?".to_string(), |v| v.to_string()),
                    record.path.as_deref().unwrap_or("?")
                ),
            ));
        }
        if record.protected && outcome == Outcome::Denied {
            out.push(single(
                record,
                "protected_refused",
                format!(
                    "{} tried to read {} in a protected environment and was refused",
                    actor_name(record),
                    record.path.as_deref().unwrap_or("?")
                ),
            ));
        }
        if op == "auth.login" && record.status == Some(429) {
            let subject = record.login.clone().unwrap_or_default();
            let window = Duration::from_secs(self.rules.failure_window_secs);
            if bump(
                &mut self.failures,
                &format!("locked {subject}"),
                None,
                now,
                window,
                1,
            )
            .is_some()
            {
                out.push(single(
                    record,
                    "login_locked",
                    "a login name is locked after repeated failures".into(),
                ));
            }
        }
        self.sweep(now);
        out
    }

    fn sweep(&mut self, now: Instant) {
        let longest = Duration::from_secs(
            self.rules
                .failure_window_secs
                .max(self.rules.read_window_secs),
        );
        for map in [&mut self.failures, &mut self.reads] {
            if map.len() > MAX_SUBJECTS {
                map.retain(|_, w| now.duration_since(w.start) < longest);
                if map.len() > MAX_SUBJECTS {
                    map.clear();
                }
            }
        }
    }
}

/// Counts an event for `subject` (a distinct `item` when given) and returns
/// the count when it first reaches `threshold` in the current window.
fn bump(
    map: &mut HashMap<String, Window>,
    subject: &str,
    item: Option<u64>,
    now: Instant,
    window: Duration,
    threshold: u64,
) -> Option<u64> {
    let w = match map.get_mut(subject) {
        Some(w) => w,
        None => map.entry(subject.to_string()).or_insert(Window {
            start: now,
            count: 0,
            fired: false,
            seen: HashSet::new(),
        }),
    };
    if now.duration_since(w.start) >= window {
        *w = Window {
            start: now,
            count: 0,
            fired: false,
            seen: HashSet::new(),
        };
    }
    match item {
        Some(i) => {
            if w.seen.insert(i) {
                w.count += 1;
            }
        }
        None => w.count += 1,
    }
    if !w.fired && w.count >= threshold {
        w.fired = true;
        // Distinct items are no longer needed once the window has fired.
        w.seen = HashSet::new();
        Some(w.count)
    } else {
        None
    }
}

fn actor_name(r: &Record) -> String {
    match &r.actor {
        Some(a) => format!("{} {}", a.kind, a.name),
        None => "an unauthenticated caller".into(),
    }
}

fn single(trigger: &Record, rule: &str, message: String) -> Record {
    let subject = trigger
        .actor_key()
        .or(trigger.source.as_deref())
        .unwrap_or("")
        .to_string();
    alert(trigger, rule, &subject, 1, 0, message)
}

fn alert(
    trigger: &Record,
    rule: &str,
    subject: &str,
    count: u64,
    window_secs: u64,
    message: String,
) -> Record {
    Record {
        time: crate::now_rfc3339(),
        kind: Kind::Alert,
        request_id: trigger.request_id.clone(),
        actor: trigger.actor.clone(),
        source: trigger.source.clone(),
        op: trigger.op.clone(),
        path: trigger.path.clone(),
        version: trigger.version,
        alert: Some(AlertInfo {
            rule: rule.to_string(),
            subject: subject.to_string(),
            count,
            window_secs,
        }),
        message: Some(message),
        ..Record::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Actor;

    fn req(op: &str, status: u16, accessor: Option<&str>, source: &str, path: &str) -> Record {
        Record {
            time: "t".into(),
            op: Some(op.into()),
            status: Some(status),
            outcome: Some(Outcome::of_status(status)),
            actor: accessor.map(|a| Actor {
                kind: "service".into(),
                name: "ci".into(),
                accessor: a.into(),
                via: None,
            }),
            source: Some(source.into()),
            path: Some(path.into()),
            ..Record::default()
        }
    }

    fn rules() -> AlertRules {
        AlertRules {
            failures: 3,
            failure_window_secs: 60,
            reads: 4,
            read_window_secs: 60,
        }
    }

    fn rules_fired(alerts: &[Record]) -> Vec<String> {
        alerts
            .iter()
            .map(|a| a.alert.as_ref().unwrap().rule.clone())
            .collect()
    }

    #[test]
    fn failure_bursts_fire_once_per_window_per_subject() {
        let mut e = AlertEngine::new(rules());
        let t0 = Instant::now();
        let mut fired = Vec::new();
        for i in 0..10 {
            let r = req("secret.read", 403, Some("acc_a"), "10.0.0.1", "p");
            fired.extend(e.observe(&r, t0 + Duration::from_millis(i)));
        }
        // One for the actor, one for the source, each on the third failure.
        assert_eq!(fired.len(), 2, "{fired:?}");
        assert_eq!(fired[0].alert.as_ref().unwrap().count, 3);
        assert_eq!(fired[0].alert.as_ref().unwrap().subject, "actor acc_a");
        assert_eq!(fired[1].alert.as_ref().unwrap().subject, "source 10.0.0.1");
        // Successes and server-side failures do not count.
        let mut e = AlertEngine::new(rules());
        for s in [200, 503, 500, 204] {
            for _ in 0..5 {
                assert!(
                    e.observe(&req("x", s, None, "10.0.0.2", "p"), t0)
                        .is_empty()
                );
            }
        }
        // A new window fires again.
        let mut e = AlertEngine::new(rules());
        let r = req("auth.login", 401, None, "10.0.0.3", "");
        let n = (0..3).flat_map(|_| e.observe(&r, t0)).count();
        let m = (0..3)
            .flat_map(|_| e.observe(&r, t0 + Duration::from_secs(61)))
            .count();
        assert_eq!((n, m), (1, 1));
    }

    #[test]
    fn read_bursts_count_distinct_secrets() {
        let mut e = AlertEngine::new(rules());
        let t0 = Instant::now();
        for _ in 0..20 {
            assert!(
                e.observe(&req("secret.read", 200, Some("a"), "s", "same"), t0)
                    .is_empty()
            );
        }
        let fired: Vec<_> = (0..6)
            .flat_map(|i| {
                e.observe(
                    &req("secret.read", 200, Some("a"), "s", &format!("p{i}")),
                    t0,
                )
            })
            .collect();
        assert_eq!(rules_fired(&fired), ["read_burst"]);
    }

    #[test]
    fn single_event_rules() {
        let mut e = AlertEngine::new(rules());
        let now = Instant::now();
        let mut bg = req("secret.read", 200, Some("h"), "s", "prod/db");
        bg.breakglass = true;
        assert_eq!(rules_fired(&e.observe(&bg, now)), ["breakglass_read"]);
        let grant = req("breakglass.grant", 200, Some("h"), "s", "prod/db");
        assert_eq!(rules_fired(&e.observe(&grant, now)), ["breakglass_granted"]);
        let mut leak = req("secret.compromise", 200, Some("h"), "s", "prod/db");
        leak.version = Some(3);
        let fired = e.observe(&leak, now);
        assert_eq!(rules_fired(&fired), ["version_compromised"]);
        assert_eq!(fired[0].version, Some(3));
        assert!(
            fired[0]
                .message
                .as_deref()
                .unwrap_or("")
                .contains("version 3 of prod/db"),
            "{:?}",
            fired[0].message
        );
        let refused_leak = req("secret.compromise", 403, Some("h3"), "s3", "prod/db");
        assert!(rules_fired(&e.observe(&refused_leak, now)).is_empty());
        let mut refused = req("secret.read", 403, Some("h"), "s", "prod/db");
        refused.protected = true;
        assert_eq!(
            rules_fired(&e.observe(&refused, now)),
            ["protected_refused"]
        );
        let mut locked = req("auth.login", 429, None, "s2", "");
        locked.login = Some("hmac-sha256:aa".into());
        assert_eq!(rules_fired(&e.observe(&locked, now)), ["login_locked"]);
        assert!(e.observe(&locked, now).is_empty(), "once per window");
        // Alert records never trigger alerts.
        let a = e.observe(&bg, now).pop().unwrap();
        assert!(e.observe(&a, now).is_empty());
    }
}
