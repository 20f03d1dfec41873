//! Identities and the single authorization check.
//!
//! [`authorize`] is the one place where an access decision is made. It returns
//! an [`Authorized`] witness that can only be constructed here; the code that
//! opens sealed values requires one (and checks that it was issued for reading
//! that exact path), so a use case that forgets the check does not compile.
//!
//! The decision, in order:
//!
//! 1. A *human* identity asking for a secret's value under a protected prefix
//!    is refused, whatever its policies say, unless it holds an active
//!    break-glass grant covering the path; with one, a policy must still grant
//!    `read` or `breakglass` there.
//! 2. Acting on one's own token (lookup, renew, revoke) is always allowed.
//! 3. The exact policy name `root` allows everything else.
//! 4. Otherwise the capabilities of every rule whose pattern matches the target,
//!    across all of the identity's policies, are united; a matching `deny`
//!    anywhere refuses; the operation's capability must be in the union.
//!    Nothing else grants anything: access is denied by default.

use std::collections::HashMap;
use std::sync::Arc;

use coffer_policy::{Capability, Pattern, Policy};
use coffer_store::{TokenKind, TokenRecord};

use crate::error::{CoreError, Refusal, Result};

pub use coffer_policy::{Operation, ROOT_POLICY};

/// An authenticated caller: the token record it presented.
#[derive(Debug, Clone)]
pub struct Identity {
    pub(crate) token: Arc<TokenRecord>,
}

impl Identity {
    /// Non-secret handle of the token.
    pub fn accessor(&self) -> &str {
        &self.token.accessor
    }

    /// Human-readable name: the user name for people, the token's display
    /// name for services.
    pub fn display_name(&self) -> &str {
        self.token
            .user
            .as_deref()
            .unwrap_or(&self.token.display_name)
    }

    /// Attached policy names.
    pub fn policies(&self) -> &[String] {
        &self.token.policies
    }

    /// The full token record (no secret in it).
    pub fn token(&self) -> &TokenRecord {
        &self.token
    }

    /// Whether this identity is a person (logged in with a password, or a
    /// token created from such a login).
    pub fn is_human(&self) -> bool {
        self.token.kind == TokenKind::Human
    }

    /// The user a human identity belongs to.
    pub fn user(&self) -> Option<&str> {
        self.token.user.as_deref()
    }

    /// Whether the root policy is attached.
    pub fn is_root(&self) -> bool {
        self.token.policies.iter().any(|p| p == ROOT_POLICY)
    }
}

/// Proof that `authorize` allowed `operation` on `target` for an identity.
/// The private field makes it impossible to build anywhere else.
#[derive(Debug)]
pub struct Authorized<'a> {
    operation: Operation,
    target: &'a str,
    breakglass: bool,
    _private: (),
}

impl<'a> Authorized<'a> {
    /// The server acting on its own behalf, under a binding that an
    /// authorized identity set up: reading the administrator credentials of
    /// a PostgreSQL server whose roles a secret manages (the identity that
    /// set it up had to be allowed to read them). Never for a value that is
    /// sent to a caller.
    pub(crate) fn on_behalf(operation: Operation, target: &'a str) -> Authorized<'a> {
        Authorized {
            operation,
            target,
            breakglass: false,
            _private: (),
        }
    }
}

impl Authorized<'_> {
    /// The operation that was allowed.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The path (or system endpoint) it was allowed on.
    pub fn target(&self) -> &str {
        self.target
    }

    /// Whether the read was allowed only because of a break-glass grant.
    pub fn via_breakglass(&self) -> bool {
        self.breakglass
    }
}

/// A prefix under which people cannot read values.
#[derive(Debug, Clone)]
pub struct Protected {
    /// Which paths.
    pub pattern: Pattern,
    /// Who marked it.
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A time-limited break-glass grant for one user.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BreakglassGrant {
    /// Random id.
    pub id: String,
    /// Canonical user name.
    pub user: String,
    /// Accessor of the token that asked for it.
    pub accessor: String,
    /// A secret path, or a folder (ending in `/`) covering everything below it.
    pub target: String,
    /// Why (free text, shown to auditors).
    pub reason: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds after which the grant is void.
    pub expires_at: i64,
}

impl BreakglassGrant {
    /// Whether the grant covers reading `path` at time `now`.
    pub fn covers(&self, path: &str, now: i64) -> bool {
        now < self.expires_at
            && (self.target == path
                || (self.target.ends_with('/') && path.starts_with(&self.target)))
    }
}

/// The access model a decision is made against: compiled policies, protected
/// prefixes and live break-glass grants. Immutable; replaced as a whole when
/// anything in it changes.
#[derive(Debug, Default)]
pub struct AccessModel {
    pub(crate) policies: HashMap<String, Arc<Policy>>,
    pub(crate) protected: Vec<Protected>,
    pub(crate) grants: Vec<BreakglassGrant>,
    /// Lifecycle rules, most specific first.
    pub(crate) lifecycle: Vec<crate::lifecycle::Rule>,
}

impl AccessModel {
    /// Builds a model (used by the core when it loads from storage, and by tests).
    pub fn new(
        policies: HashMap<String, Arc<Policy>>,
        protected: Vec<Protected>,
        grants: Vec<BreakglassGrant>,
    ) -> AccessModel {
        AccessModel {
            policies,
            protected,
            grants,
            lifecycle: Vec::new(),
        }
    }

    /// Whether `path` lies under a protected prefix.
    pub fn is_protected(&self, path: &str) -> bool {
        self.protected.iter().any(|p| p.pattern.matches(path))
    }

    /// The compiled policy of that name, if it exists.
    pub fn policy(&self, name: &str) -> Option<&Arc<Policy>> {
        self.policies.get(name)
    }
}

/// Decides whether `identity` may perform `operation` on `target` at `now`
/// (unix milliseconds). The only constructor of [`Authorized`].
pub fn authorize<'a>(
    model: &AccessModel,
    identity: &Identity,
    operation: Operation,
    target: &'a str,
    now: i64,
) -> Result<Authorized<'a>> {
    let allow = |breakglass| {
        Ok(Authorized {
            operation,
            target,
            breakglass,
            _private: (),
        })
    };
    if operation == Operation::ReadValue && identity.is_human() && model.is_protected(target) {
        let granted = identity.user().is_some_and(|user| {
            model
                .grants
                .iter()
                .any(|g| g.user == user && g.covers(target, now))
        });
        if !granted {
            return Err(CoreError::Forbidden(Refusal::Protected {
                target: target.to_string(),
            }));
        }
        if identity.is_root() {
            return allow(true);
        }
        let caps = capabilities(model, identity, target);
        if caps.allows(Capability::Read) || caps.allows(Capability::Breakglass) {
            return allow(true);
        }
        return Err(denied(Capability::Read, target));
    }
    let Some(needed) = operation.capability() else {
        return allow(false);
    };
    if identity.is_root() {
        return allow(false);
    }
    let caps = capabilities(model, identity, target);
    let ok = match operation {
        Operation::ReadMetadata => caps.allows(Capability::Read) || caps.allows(Capability::List),
        _ => caps.allows(needed),
    };
    if ok {
        allow(false)
    } else {
        Err(denied(needed, target))
    }
}

/// What an enumeration reveals about each item it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reveals {
    /// Names only (a listing, the names an export or a promotion plan is made of).
    Names,
    /// Names and metadata: versions, change times, expiry (rotation status).
    Metadata,
}

/// Proof that listing `prefix` was authorized, and the one place that decides
/// which items an enumeration under it may show. Every use case that returns
/// paths or metadata for a prefix obtains one through
/// [`Coffer::enumerate`](crate::Coffer), which filters each item through
/// [`Listing::admits`]; nothing else reads listings from storage.
///
/// An item (a secret, or a folder ending in `/`) is shown only if
///
/// 1. the caller may `list` the folder that directly contains it, so a
///    recursive listing never shows more than listing each item's own folder
///    would, and
/// 2. no `deny` rule of the caller's policies matches the item itself, so a
///    deny on `app/prod/*` (or on one name inside an allowed glob) hides it
///    even where the prefix is granted, and
/// 3. for [`Reveals::Metadata`], the caller may read the item's metadata
///    (`read` or `list` on the exact path), as `coffer history` requires,
///    and
/// 4. for a folder, when the caller has any `deny` rule, the folder holds at
///    least one secret that no `deny` hides (on the secret or on a folder in
///    between): a folder whose every secret is denied would otherwise tell
///    that something hidden is there.
#[derive(Debug)]
pub struct Listing<'a> {
    model: Arc<AccessModel>,
    identity: &'a Identity,
    prefix: String,
    reveals: Reveals,
    now: i64,
    /// The last folder whose `list` decision [`Listing::admits`] took, and
    /// that decision: the entries of a listing come folder by folder, so
    /// a folder of a thousand names is decided once, not a thousand times
    /// (the decision is a pure function of the model, the identity, the
    /// folder and `now`, all fixed for the listing).
    folder_decision: std::sync::Mutex<Option<(String, bool)>>,
    _private: (),
}

impl<'a> Listing<'a> {
    /// Built by the core from a successful `list` decision on `prefix`.
    pub(crate) fn new(
        authorized: &Authorized<'_>,
        model: Arc<AccessModel>,
        identity: &'a Identity,
        reveals: Reveals,
        now: i64,
    ) -> Listing<'a> {
        debug_assert_eq!(authorized.operation(), Operation::List);
        Listing {
            model,
            identity,
            prefix: authorized.target().to_string(),
            reveals,
            now,
            folder_decision: std::sync::Mutex::new(None),
            _private: (),
        }
    }

    /// The listed prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the entry `name` (relative to the prefix; folders end with
    /// `/`) may be shown.
    pub fn admits(&self, name: &str) -> bool {
        let item = format!("{}{name}", self.prefix);
        if self.identity.is_root() {
            return true;
        }
        let folder = containing_folder(&item);
        let may_list = {
            let mut last = self
                .folder_decision
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match last.as_ref() {
                Some((f, decision)) if f == folder => *decision,
                _ => {
                    let decision = authorize(
                        &self.model,
                        self.identity,
                        Operation::List,
                        folder,
                        self.now,
                    )
                    .is_ok();
                    *last = Some((folder.to_string(), decision));
                    decision
                }
            }
        };
        may_list
            && visible_in_listed_folder(&self.model, self.identity, &item, self.reveals, self.now)
    }

    /// Whether the folder entry `folder` (relative to the prefix) admitted
    /// by [`Listing::admits`] must also hold something the caller is not
    /// denied before it is shown: true when a `deny` rule of the caller's
    /// policies could match something below it. (A folder exists only
    /// because of what is below it; shown with everything below it denied,
    /// it would tell that something hidden is there.) A pattern can match a
    /// path below the folder only if its literal start (up to its first
    /// wildcard) and the folder are one the prefix of the other, so a deny
    /// elsewhere costs this folder no look below it.
    pub fn folder_may_hide(&self, folder: &str) -> bool {
        if self.identity.is_root() {
            return false;
        }
        let full = format!("{}{folder}", self.prefix);
        self.identity.token.policies.iter().any(|name| {
            self.model.policies.get(name).is_some_and(|p| {
                p.rules().iter().any(|r| {
                    if !r.capabilities.contains(Capability::Deny) {
                        return false;
                    }
                    let text = r.pattern.as_str();
                    let literal = &text[..text.find(['*', '+']).unwrap_or(text.len())];
                    literal.starts_with(full.as_str()) || full.starts_with(literal)
                })
            })
        })
    }

    /// Whether `below` (a secret path relative to the folder entry `folder`,
    /// itself relative to the prefix) is free of `deny` rules: the secret
    /// and every folder between it and the listed one.
    pub fn undenied_below(&self, folder: &str, below: &str) -> bool {
        let base = format!("{}{folder}", self.prefix);
        let mut end = 0;
        for (i, c) in below.char_indices() {
            if c == '/' {
                end = i + 1;
                if denied_at(
                    &self.model,
                    self.identity,
                    &format!("{base}{}", &below[..end]),
                ) {
                    return false;
                }
            }
        }
        debug_assert!(end <= below.len());
        !denied_at(&self.model, self.identity, &format!("{base}{below}"))
    }
}

/// The per-item decision of [`Listing`]: whether `item` (a canonical secret
/// path, or a folder ending in `/`) may be shown to `identity`.
pub fn visible(
    model: &AccessModel,
    identity: &Identity,
    item: &str,
    reveals: Reveals,
    now: i64,
) -> bool {
    if identity.is_root() {
        return true;
    }
    if authorize(
        model,
        identity,
        Operation::List,
        containing_folder(item),
        now,
    )
    .is_err()
    {
        return false;
    }
    visible_in_listed_folder(model, identity, item, reveals, now)
}

/// The folder that directly contains `item` (a secret path, or a folder
/// ending in `/`): everything up to its last `/`, or `""` at the top.
fn containing_folder(item: &str) -> &str {
    let trimmed = item.strip_suffix('/').unwrap_or(item);
    match trimmed.rfind('/') {
        Some(i) => &item[..=i],
        None => "",
    }
}

/// [`visible`] once the caller is known to be allowed to `list` the
/// folder that directly contains `item`: conditions 2 and 3.
fn visible_in_listed_folder(
    model: &AccessModel,
    identity: &Identity,
    item: &str,
    reveals: Reveals,
    now: i64,
) -> bool {
    if denied_at(model, identity, item) {
        return false;
    }
    match reveals {
        Reveals::Names => true,
        Reveals::Metadata => {
            !item.ends_with('/')
                && authorize(model, identity, Operation::ReadMetadata, item, now).is_ok()
        }
    }
}

/// Whether a `deny` rule of the identity's policies matches `target` (the
/// text of a path, folder or pattern). Listings of administrative records
/// that name paths (lifecycle rules, protected prefixes, break-glass grants)
/// leave out those the caller is denied on.
pub fn denied_at(model: &AccessModel, identity: &Identity, target: &str) -> bool {
    !identity.is_root() && capabilities(model, identity, target).contains(Capability::Deny)
}

fn capabilities(
    model: &AccessModel,
    identity: &Identity,
    target: &str,
) -> coffer_policy::Capabilities {
    coffer_policy::evaluate(
        identity
            .token
            .policies
            .iter()
            .filter_map(|name| model.policies.get(name).map(|p| &**p)),
        target,
    )
}

fn denied(needed: Capability, target: &str) -> CoreError {
    CoreError::Forbidden(Refusal::NotGranted {
        capability: needed.name(),
        target: target.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(policies: &[&str], kind: TokenKind) -> Identity {
        Identity {
            token: Arc::new(TokenRecord {
                hash: [0; 32],
                accessor: "acc_x".into(),
                display_name: "t".into(),
                policies: policies.iter().map(|s| s.to_string()).collect(),
                created_at: 0,
                expires_at: None,
                parent: None,
                kind,
                user: (kind == TokenKind::Human).then(|| "alice".to_string()),
                ttl_ms: None,
                max_expires_at: None,
                uses_limit: None,
                uses_left: None,
                cidrs: Vec::new(),
                workload: None,
            }),
        }
    }

    const ALL_OPS: [Operation; 10] = [
        Operation::ReadValue,
        Operation::ReadMetadata,
        Operation::List,
        Operation::Create,
        Operation::Update,
        Operation::Delete,
        Operation::Destroy,
        Operation::Rotate,
        Operation::Admin,
        Operation::Breakglass,
    ];

    #[test]
    fn deny_by_default_and_root_is_exact() {
        let model = AccessModel::default();
        for op in ALL_OPS {
            assert!(
                authorize(
                    &model,
                    &identity(&["root"], TokenKind::Service),
                    op,
                    "a/b",
                    0
                )
                .is_ok()
            );
            for policies in [
                &[][..],
                &["Root"],
                &["ROOT"],
                &[" root"],
                &["root "],
                &["root\u{200b}"],
                &["default"],
            ] {
                assert!(
                    matches!(
                        authorize(
                            &model,
                            &identity(policies, TokenKind::Service),
                            op,
                            "a/b",
                            0
                        ),
                        Err(CoreError::Forbidden(_))
                    ),
                    "{policies:?} must not be treated as root"
                );
            }
        }
        let w = authorize(
            &model,
            &identity(&["root"], TokenKind::Service),
            Operation::List,
            "x/",
            0,
        )
        .unwrap();
        assert_eq!((w.operation(), w.target()), (Operation::List, "x/"));
        // Self-service needs no policy at all.
        assert!(
            authorize(
                &model,
                &identity(&[], TokenKind::Human),
                Operation::SelfService,
                "sys/token/self",
                0
            )
            .is_ok()
        );
    }

    fn model_of(sources: &[(&str, &str)]) -> AccessModel {
        let policies = sources
            .iter()
            .map(|(name, src)| (name.to_string(), Arc::new(Policy::parse(src).unwrap())))
            .collect();
        AccessModel::new(policies, Vec::new(), Vec::new())
    }

    #[test]
    fn deny_hides_items_whatever_the_grant_on_their_folder() {
        let model = model_of(&[
            (
                "wide",
                r#"
                path "" { capabilities = ["list"] }
                path "app/*" { capabilities = ["read", "list"] }
                path "lists/" { capabilities = ["list"] }
                path "lists/a/" { capabilities = ["list"] }
                "#,
            ),
            (
                "denies",
                r#"
                path "app/prod/*" { capabilities = ["deny"] }
                path "app/dev/SECRET" { capabilities = ["deny"] }
                path "app/+/ONE" { capabilities = ["deny"] }
                path "app/x*" { capabilities = ["deny"] }
                path "app/folder/" { capabilities = ["deny"] }
                "#,
            ),
        ]);
        let who = identity(&["wide", "denies"], TokenKind::Service);
        let human = identity(&["wide", "denies"], TokenKind::Human);
        let root = identity(&["root"], TokenKind::Service);
        let names = Reveals::Names;
        let meta = Reveals::Metadata;
        // (item, reveals, visible)
        let cases = [
            ("app/", names, true),
            ("app/dev/", names, true),
            ("app/dev/OK", names, true),
            ("app/dev/OK", meta, true),
            ("app/dev/sub/deep", names, true),
            // A glob deny hides the folder and everything in it.
            ("app/prod/", names, false),
            ("app/prod/S", names, false),
            ("app/prod/S", meta, false),
            ("app/prod/a/b/c", names, false),
            // One name inside an allowed glob.
            ("app/dev/SECRET", names, false),
            ("app/dev/SECRETS", names, true),
            ("app/dev/sub/SECRET", names, true),
            // `+` is one segment.
            ("app/dev/ONE", names, false),
            ("app/staging/ONE", names, false),
            ("app/a/b/ONE", names, true),
            // A prefix glob.
            ("app/xyz", names, false),
            ("app/x/", names, false),
            ("app/x/y", names, false),
            // A folder deny hides the folder and its direct entries (their
            // folder cannot be listed).
            ("app/folder/", names, false),
            ("app/folder/a", names, false),
            // A folder grant shows names in it, but not metadata.
            ("lists/a/one", names, true),
            ("lists/a/one", meta, false),
            ("lists/a/", names, true),
            ("lists/b/", names, true),
            ("lists/b/deep", names, false),
            // Nothing granted at all.
            ("other/x", names, false),
            ("other/", names, true),
        ];
        let mut wrong = Vec::new();
        for (item, reveals, want) in cases {
            for id in [&who, &human] {
                if visible(&model, id, item, reveals, 0) != want {
                    wrong.push(format!("{item} {reveals:?}: expected {want}"));
                }
            }
            assert!(visible(&model, &root, item, reveals, 0), "root sees {item}");
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        // Administrative records naming denied paths are hidden too.
        for (pattern, want) in [
            ("app/prod/*", true),
            ("app/prod/S", true),
            ("app/dev/SECRET", true),
            ("app/dev/*", false),
            ("app/+/OK", false),
        ] {
            assert_eq!(denied_at(&model, &who, pattern), want, "{pattern}");
        }
        assert!(!denied_at(&model, &root, "app/prod/S"));
    }

    #[test]
    fn protected_prefixes_refuse_values_to_people_only() {
        let mut policies = HashMap::new();
        policies.insert(
            "prod-reader".to_string(),
            Arc::new(
                Policy::parse(r#"path "app/prod/*" { capabilities = ["read", "list"] }"#).unwrap(),
            ),
        );
        let protected = vec![Protected {
            pattern: Pattern::parse("*/prod/*").unwrap(),
            created_by: "root".into(),
            created_at: 0,
        }];
        let grant = BreakglassGrant {
            id: "g".into(),
            user: "alice".into(),
            accessor: "acc_x".into(),
            target: "app/prod/".into(),
            reason: "incident".into(),
            created_at: 0,
            expires_at: 100,
        };
        let model = AccessModel::new(policies.clone(), protected.clone(), Vec::new());
        let human = identity(&["prod-reader"], TokenKind::Human);
        let human_root = identity(&["root"], TokenKind::Human);
        let service = identity(&["prod-reader"], TokenKind::Service);
        let p = "app/prod/db";
        assert!(authorize(&model, &service, Operation::ReadValue, p, 0).is_ok());
        for who in [&human, &human_root] {
            assert!(matches!(
                authorize(&model, who, Operation::ReadValue, p, 0),
                Err(CoreError::Forbidden(Refusal::Protected { target })) if target == p
            ));
        }
        // Metadata and listing stay as the policy says.
        assert!(authorize(&model, &human, Operation::ReadMetadata, p, 0).is_ok());
        assert!(authorize(&model, &human, Operation::List, "app/prod/", 0).is_ok());
        // Unprotected paths are unaffected.
        assert!(authorize(&model, &human_root, Operation::ReadValue, "app/dev/db", 0).is_ok());
        // With a live grant: allowed and marked; expired: refused.
        let model = AccessModel::new(policies, protected, vec![grant]);
        let w = authorize(&model, &human, Operation::ReadValue, p, 50).unwrap();
        assert!(w.via_breakglass());
        assert!(authorize(&model, &human, Operation::ReadValue, p, 100).is_err());
        // A grant for alice does nothing for a human without read/breakglass.
        let nobody = identity(&[], TokenKind::Human);
        assert!(authorize(&model, &nobody, Operation::ReadValue, p, 50).is_err());
        // Outside the grant's folder: refused.
        assert!(authorize(&model, &human, Operation::ReadValue, "web/prod/db", 50).is_err());
    }
}
