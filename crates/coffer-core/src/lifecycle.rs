//! A secret's life after its first write: labels, expiry, rotation and the
//! rules (per path pattern) that govern strength, rotation schedules,
//! generators and grace periods.
//!
//! **Labels.** Every secret has a `current` version; after a change it also
//! has a `previous` one, and during a staged rotation a `pending` one.
//! Labels are derived, not stored, for a secret that has never been rotated
//! or given an expiry: `current` is the newest version and `previous` the
//! one before it. Once anything else is needed (a pending version, a grace
//! period, an expiry) the secret gets a [`SecretState`] record, stored as an
//! object of kind `secret` keyed by path and written in the same
//! transaction as the version it describes, with a check-and-set on its
//! revision.
//!
//! **Rules.** A [`RuleSpec`] stored under a path pattern (object kind
//! `lifecycle`) sets any of: the fewest bits a value must have
//! (`min_bits`), a rotation interval, the generator a rotation uses and the
//! grace period during which `previous` is still served. Where several
//! patterns match a path, the strictest `min_bits` applies, and each other
//! setting comes from the most specific pattern that sets it (an exact path
//! beats any wildcard; then the pattern with more literal characters).

use coffer_crypto::generate::Spec;
use coffer_policy::Pattern;
use coffer_store::SecretMeta;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, InvalidInput, NotFound, Result};

/// Object kind of lifecycle rules (keyed by pattern).
pub(crate) const KIND_RULE: &str = "lifecycle";
/// Object kind of per-secret state (keyed by path).
pub(crate) const KIND_STATE: &str = "secret";

/// Grace period of a rotation when no rule sets one: a day.
pub const DEFAULT_GRACE_MS: i64 = 24 * 3600 * 1000;
/// Longest grace period or rotation interval accepted: ten years.
pub const MAX_PERIOD_MS: i64 = 10 * 366 * 24 * 3600 * 1000;
/// Shortest rotation interval accepted: one second (for tests and drills;
/// real schedules are days).
pub const MIN_INTERVAL_MS: i64 = 1000;
/// Highest `min_bits` a rule may require.
pub const MAX_MIN_BITS: u32 = 1024;

/// A label naming one version of a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// The version served by default.
    Current,
    /// The version that was current before the last change, during its grace period.
    Previous,
    /// A staged rotation's new version, waiting for `promote`.
    Pending,
}

impl Label {
    /// Parses `current`, `previous` or `pending`.
    pub fn parse(s: &str) -> Option<Label> {
        match s {
            "current" => Some(Label::Current),
            "previous" => Some(Label::Previous),
            "pending" => Some(Label::Pending),
            _ => None,
        }
    }

    /// The label's name.
    pub fn name(self) -> &'static str {
        match self {
            Label::Current => "current",
            Label::Previous => "previous",
            Label::Pending => "pending",
        }
    }
}

/// Which version a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum At {
    /// A label.
    Label(Label),
    /// A version number.
    Version(u64),
}

impl At {
    /// `None` or `Some(0)` is the current version; anything else that number.
    pub fn version(v: Option<u64>) -> At {
        match v {
            None | Some(0) => At::Label(Label::Current),
            Some(v) => At::Version(v),
        }
    }
}

/// What is stored about a secret beyond its versions, once it is needed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretState {
    /// The current version when it is not the newest (during a staged
    /// rotation, or after one was cancelled); `None`: the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// The previous version; `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<u64>,
    /// Unix milliseconds after which `previous` is no longer served;
    /// `None`: served until the next change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_until: Option<i64>,
    /// A staged rotation's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
    /// Unix milliseconds from which the secret is refused to every reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The spec its last generated value was made with: rotations generate
    /// the same way unless told otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    /// The PostgreSQL roles whose credentials this secret holds: its
    /// versions are made only by rotations, which change the roles too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PgRoles>,
}

impl SecretState {
    /// The state once a staged rotation is dropped: `pending` is forgotten
    /// (its version stays in the history) and `current` stays; `head` is
    /// the newest version.
    pub(crate) fn without_pending(&self, labels: &Labels, head: u64) -> SecretState {
        SecretState {
            current: (labels.current != head).then_some(labels.current),
            pending: None,
            ..self.clone()
        }
    }

    /// The state once `pending` is promoted: it becomes `current`, and the
    /// old `current` becomes `previous`, served until `previous_until`.
    pub(crate) fn promoted(
        &self,
        labels: &Labels,
        head: u64,
        pending: u64,
        previous_until: i64,
    ) -> SecretState {
        SecretState {
            current: (pending != head).then_some(pending),
            previous: Some(labels.current),
            previous_until: Some(previous_until),
            pending: None,
            ..self.clone()
        }
    }
}

/// What a secret that manages PostgreSQL roles remembers about them (in
/// its state record; see [`crate::pgroles`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgRoles {
    /// Path of the secret holding the administrator connection.
    pub admin: String,
    /// The two roles that take turns.
    pub roles: [String; 2],
    /// The URL applications connect to, without credentials.
    pub connect_url: String,
}

impl PgRoles {
    /// The role that is not `role`.
    pub(crate) fn other(&self, role: &str) -> &str {
        if self.roles[0] == role {
            &self.roles[1]
        } else {
            &self.roles[0]
        }
    }
}

/// What a rotation or promotion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateReceipt {
    /// Canonical path.
    pub path: String,
    /// The version written (or promoted).
    pub version: u64,
    /// The labels afterwards.
    pub labels: Labels,
    /// The value was generated on the server.
    pub generated: bool,
    /// Warnings about a value given by hand.
    pub warnings: Vec<String>,
}

/// A secret's labels, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels {
    /// The current version (0 only for a secret with no version).
    pub current: u64,
    /// The previous version, if any.
    pub previous: Option<u64>,
    /// When `previous` stops being served, if it does.
    pub previous_until: Option<i64>,
    /// The pending version, if a rotation is staged.
    pub pending: Option<u64>,
    /// When the secret expires, if it does.
    pub expires_at: Option<i64>,
}

impl Labels {
    /// The labels of a secret from its metadata and its state record.
    pub fn of(meta: &SecretMeta, state: Option<&SecretState>) -> Labels {
        let head = meta.current_version;
        match state {
            None => Labels {
                current: head,
                previous: (head > 1).then(|| head - 1),
                previous_until: None,
                pending: None,
                expires_at: None,
            },
            Some(s) => Labels {
                current: s.current.unwrap_or(head),
                previous: s.previous,
                previous_until: s.previous_until,
                pending: s.pending,
                expires_at: s.expires_at,
            },
        }
    }

    /// The version a label names at `now`, or why there is none.
    pub fn resolve(&self, label: Label, path: &str, now: i64) -> Result<u64> {
        match label {
            Label::Current => Ok(self.current),
            Label::Previous => {
                let v = self.previous.ok_or_else(|| {
                    CoreError::NotFound(NotFound::NoPrevious {
                        path: path.to_string(),
                    })
                })?;
                if let Some(until) = self.previous_until
                    && now >= until
                {
                    return Err(CoreError::NotFound(NotFound::PreviousEnded {
                        path: path.to_string(),
                        version: v,
                        until,
                    }));
                }
                Ok(v)
            }
            Label::Pending => self.pending.ok_or_else(|| {
                CoreError::NotFound(NotFound::NoPending {
                    path: path.to_string(),
                })
            }),
        }
    }
}

/// The settings of a lifecycle rule. Every field is optional; a rule sets
/// only what it names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Fewest bits of guessing work a value written here must take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_bits: Option<u32>,
    /// Rotation interval, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_every_ms: Option<i64>,
    /// The generator a rotation uses (`FORMAT[:N]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    /// How long `previous` stays readable after a change, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ms: Option<i64>,
}

impl RuleSpec {
    /// Checks every setting; the message names the bad one.
    pub fn validate(&self) -> Result<Option<Spec>> {
        if self == &RuleSpec::default() {
            return Err(CoreError::Invalid(InvalidInput::EmptyRule));
        }
        if let Some(b) = self.min_bits
            && !(1..=MAX_MIN_BITS).contains(&b)
        {
            return Err(CoreError::Invalid(InvalidInput::MinBits {
                given: b,
                max: MAX_MIN_BITS,
            }));
        }
        if let Some(ms) = self.rotate_every_ms
            && !(MIN_INTERVAL_MS..=MAX_PERIOD_MS).contains(&ms)
        {
            return Err(CoreError::Invalid(InvalidInput::Interval));
        }
        if let Some(ms) = self.grace_ms
            && !(0..=MAX_PERIOD_MS).contains(&ms)
        {
            return Err(CoreError::Invalid(InvalidInput::Grace));
        }
        if let (Some(every), Some(grace)) = (self.rotate_every_ms, self.grace_ms)
            && grace > every
        {
            return Err(CoreError::Invalid(InvalidInput::GraceOverInterval));
        }
        self.generator.as_deref().map(parse_generator).transpose()
    }
}

/// Parses a generator spec (`base64:32`, `words:8`) given by a caller. A
/// spec shaped like a coffer token or invitation code is refused without
/// being quoted (the spec parser's own errors quote what they refuse).
pub fn parse_generator(spec: &str) -> Result<Spec> {
    crate::text::refuse_credential("a generator spec", spec)?;
    Spec::parse(spec).map_err(|e| CoreError::Invalid(InvalidInput::Generator(e)))
}

/// A rule as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredRule {
    #[serde(flatten)]
    pub spec: RuleSpec,
    pub created_by: String,
    pub created_at: i64,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) pattern: Pattern,
    pub(crate) spec: RuleSpec,
    pub(crate) generator: Option<Spec>,
    pub(crate) created_by: String,
    pub(crate) created_at: i64,
}

/// A rule, for listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// The pattern.
    pub pattern: String,
    /// Its settings.
    pub spec: RuleSpec,
    /// Who set it.
    pub created_by: String,
    /// When, unix milliseconds.
    pub created_at: i64,
}

impl Rule {
    pub(crate) fn info(&self) -> RuleInfo {
        RuleInfo {
            pattern: self.pattern.as_str().to_string(),
            spec: self.spec.clone(),
            created_by: self.created_by.clone(),
            created_at: self.created_at,
        }
    }
}

/// The settings in force for one path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effective {
    /// Strictest `min_bits`, with the pattern that sets it.
    pub min_bits: Option<(u32, String)>,
    /// Rotation interval (ms), with the pattern that sets it.
    pub rotate_every_ms: Option<(i64, String)>,
    /// Generator.
    pub generator: Option<Spec>,
    /// Grace period, ms.
    pub grace_ms: Option<i64>,
}

/// How specific a pattern is: exact paths first, then more literal text.
pub(crate) fn specificity(p: &Pattern) -> (bool, usize) {
    let text = p.as_str();
    let literal = text.chars().filter(|c| *c != '*' && *c != '+').count();
    (!text.contains(['*', '+']), literal)
}

/// Sorts rules most specific first (then by pattern, for a stable order).
pub(crate) fn sort_rules(rules: &mut [Rule]) {
    rules.sort_by(|a, b| {
        specificity(&b.pattern)
            .cmp(&specificity(&a.pattern))
            .then_with(|| a.pattern.as_str().cmp(b.pattern.as_str()))
    });
}

/// The settings for `path` from rules sorted by [`sort_rules`].
pub(crate) fn effective(rules: &[Rule], path: &str) -> Effective {
    let mut out = Effective::default();
    for rule in rules.iter().filter(|r| r.pattern.matches(path)) {
        if let Some(b) = rule.spec.min_bits
            && out.min_bits.as_ref().is_none_or(|(have, _)| b > *have)
        {
            out.min_bits = Some((b, rule.pattern.as_str().to_string()));
        }
        if out.rotate_every_ms.is_none()
            && let Some(ms) = rule.spec.rotate_every_ms
        {
            out.rotate_every_ms = Some((ms, rule.pattern.as_str().to_string()));
        }
        if out.generator.is_none() {
            out.generator = rule.generator;
        }
        if out.grace_ms.is_none() {
            out.grace_ms = rule.spec.grace_ms;
        }
    }
    out
}

/// The folder to list to find every secret a pattern can match: its text
/// up to the first segment with a wildcard (`app/prod/*` lists `app/prod/`,
/// `*/prod/*` lists everything). `None` for an exact path.
pub(crate) fn listing_root(p: &Pattern) -> Option<String> {
    let text = p.as_str();
    if !text.contains(['*', '+']) {
        return None;
    }
    let mut root = String::new();
    for seg in text.split('/') {
        if seg.contains(['*', '+']) {
            break;
        }
        root.push_str(seg);
        root.push('/');
    }
    // A pattern ending in a literal folder (`app/dev/`) splits into a last
    // empty segment: the root is the folder itself.
    if root.ends_with("//") {
        root.pop();
    }
    Some(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(p: &str, spec: RuleSpec) -> Rule {
        let generator = spec.generator.as_deref().map(|g| Spec::parse(g).unwrap());
        Rule {
            pattern: Pattern::parse(p).unwrap(),
            spec,
            generator,
            created_by: "t".into(),
            created_at: 0,
        }
    }

    #[test]
    fn strictest_bits_and_most_specific_settings_apply() {
        let mut rules = vec![
            rule(
                "*",
                RuleSpec {
                    min_bits: Some(40),
                    grace_ms: Some(1000),
                    ..RuleSpec::default()
                },
            ),
            rule(
                "*/prod/*",
                RuleSpec {
                    min_bits: Some(128),
                    rotate_every_ms: Some(90_000),
                    generator: Some("hex:16".into()),
                    ..RuleSpec::default()
                },
            ),
            rule(
                "app/prod/db",
                RuleSpec {
                    min_bits: Some(64),
                    rotate_every_ms: Some(5_000),
                    ..RuleSpec::default()
                },
            ),
        ];
        sort_rules(&mut rules);
        let e = effective(&rules, "app/prod/db");
        assert_eq!(e.min_bits, Some((128, "*/prod/*".into())));
        assert_eq!(e.rotate_every_ms, Some((5_000, "app/prod/db".into())));
        assert_eq!(e.generator, Some(Spec::parse("hex:16").unwrap()));
        assert_eq!(e.grace_ms, Some(1000));
        let e = effective(&rules, "app/dev/db");
        assert_eq!(e.min_bits, Some((40, "*".into())));
        assert_eq!(e.rotate_every_ms, None);
    }

    #[test]
    fn listing_roots() {
        for (p, root) in [
            ("app/prod/*", Some("app/prod/")),
            ("*/prod/*", Some("")),
            ("app/+/db", Some("app/")),
            ("app/dev*", Some("app/")),
            ("*", Some("")),
            ("app/prod/db", None),
        ] {
            assert_eq!(
                listing_root(&Pattern::parse(p).unwrap()).as_deref(),
                root,
                "{p}"
            );
        }
    }

    #[test]
    fn bad_rules_say_why() {
        for (spec, needle) in [
            (RuleSpec::default(), "at least one"),
            (
                RuleSpec {
                    min_bits: Some(0),
                    ..RuleSpec::default()
                },
                "min_bits",
            ),
            (
                RuleSpec {
                    rotate_every_ms: Some(10),
                    ..RuleSpec::default()
                },
                "interval",
            ),
            (
                RuleSpec {
                    rotate_every_ms: Some(60_000),
                    grace_ms: Some(120_000),
                    ..RuleSpec::default()
                },
                "longer than the rotation interval",
            ),
            (
                RuleSpec {
                    generator: Some("rot13".into()),
                    ..RuleSpec::default()
                },
                "unknown generator",
            ),
        ] {
            let e = spec.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn labels_are_derived_until_a_state_exists() {
        let meta = SecretMeta {
            path: "a/b".into(),
            current_version: 3,
            live: true,
            created_at: 0,
            updated_at: 0,
        };
        let l = Labels::of(&meta, None);
        assert_eq!((l.current, l.previous, l.pending), (3, Some(2), None));
        let s = SecretState {
            current: Some(2),
            previous: Some(1),
            previous_until: Some(100),
            pending: Some(3),
            expires_at: None,
            generator: None,
            postgres: None,
        };
        let l = Labels::of(&meta, Some(&s));
        assert_eq!((l.current, l.previous, l.pending), (2, Some(1), Some(3)));
        assert_eq!(l.resolve(Label::Previous, "a/b", 99).unwrap(), 1);
        let e = l
            .resolve(Label::Previous, "a/b", 100)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no longer served"), "{e}");
        assert_eq!(l.resolve(Label::Pending, "a/b", 0).unwrap(), 3);
    }
}
