//! What a request did, as far as its audit record needs to know.
//!
//! The server runs each request inside [`scope`]; authentication, the
//! authorization check and the use cases note what they learn here (who the
//! caller is, which operation on which target was decided, the version
//! served), and the server turns the notes into the request's audit record.
//! Nothing here ever holds a secret value or a raw token: identities are
//! token records (hashes and accessors), targets are paths.
//!
//! Outside a scope (tests, background jobs) every note is a no-op.

use std::cell::RefCell;
use std::future::Future;

use crate::auth::{Identity, Operation};

tokio::task_local! {
    static FACTS: RefCell<Facts>;
}

/// The notes of one request.
#[derive(Default, Clone)]
pub struct Facts {
    /// The authenticated caller (or, for a login, the account that logged in).
    pub identity: Option<Identity>,
    /// The audit HMAC ([`coffer_crypto::AuditKey::field`]) of the token that
    /// authenticated the caller, when a token did: the same tag the server
    /// would compute from the request's `Authorization` header, cached with
    /// the token.
    pub token_tag: Option<[u8; 32]>,
    /// The last authorization decision: operation, target, allowed.
    pub decision: Option<(Operation, String, bool)>,
    /// The decision allowed a read through a break-glass grant.
    pub breakglass: bool,
    /// The decision's target is in a protected environment.
    pub protected: bool,
    /// The secret version read or written.
    pub version: Option<u64>,
    /// Every secret served by a request that reads many (path, version).
    pub reads: Vec<(String, u64)>,
    /// Every secret version written by a request that writes many.
    pub writes: Vec<(String, u64)>,
    /// The user name a login or an invitation named (the server records only
    /// its HMAC: an unknown name is often a password typed in the wrong box).
    pub login: Option<String>,
    /// Why a login was refused (an app role's, a machine's JWT), for the
    /// record only; never holds a credential or the token presented.
    pub refusal: Option<String>,
    /// A machine login went through a role that today's rules would
    /// refuse: what the role lacks (never a credential).
    pub needs_binding: Option<String>,
}

// By hand: the attempted login name may be a password typed into the wrong
// box, so it is never printed.
impl std::fmt::Debug for Facts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facts")
            .field("identity", &self.identity.as_ref().map(Identity::accessor))
            .field("token_tag", &self.token_tag.is_some())
            .field("decision", &self.decision)
            .field("breakglass", &self.breakglass)
            .field("protected", &self.protected)
            .field("version", &self.version)
            .field("reads", &self.reads)
            .field("writes", &self.writes)
            .field("login", &self.login.as_ref().map(|_| "[redacted]"))
            .field("refusal", &self.refusal)
            .field("needs_binding", &self.needs_binding)
            .finish()
    }
}

/// Runs `fut` with an empty set of notes and returns them with its output.
pub async fn scope<F: Future>(fut: F) -> (F::Output, Facts) {
    FACTS
        .scope(RefCell::new(Facts::default()), async move {
            let out = fut.await;
            let facts = FACTS.with(|f| std::mem::take(&mut *f.borrow_mut()));
            (out, facts)
        })
        .await
}

fn note(f: impl FnOnce(&mut Facts)) {
    let _ = FACTS.try_with(|facts| f(&mut facts.borrow_mut()));
}

/// Notes the caller (a login notes the account that logged in).
pub(crate) fn note_identity(identity: &Identity) {
    note(|f| f.identity = Some(identity.clone()));
}

/// Notes the caller the request's own token authenticated, with that
/// token's audit tag. Only authentication calls this: a login's new token
/// is not the one the request presented.
pub(crate) fn note_authenticated(identity: &Identity, token_tag: [u8; 32]) {
    note(|f| {
        f.identity = Some(identity.clone());
        f.token_tag = Some(token_tag);
    });
}

/// Records a decision. The last one wins: a write that is refused `create`
/// but allowed `update` is an allowed update.
pub(crate) fn note_decision(
    operation: Operation,
    target: &str,
    allowed: bool,
    breakglass: bool,
    protected: bool,
) {
    note(|f| {
        f.decision = Some((operation, target.to_string(), allowed));
        f.breakglass |= breakglass;
        f.protected |= protected;
    });
}

/// Notes the user name a login or invitation acceptance named.
pub fn note_login(name: &str) {
    note(|f| f.login = Some(name.to_string()));
}

/// Notes why a login was refused.
pub(crate) fn note_refusal(reason: impl Into<String>) {
    note(|f| f.refusal = Some(reason.into()));
}

/// Notes that a machine login went through a role that lacks a binding
/// today's rules require, and what it lacks.
pub(crate) fn note_needs_binding(why: impl Into<String>) {
    note(|f| f.needs_binding = Some(why.into()));
}

pub(crate) fn note_version(version: u64) {
    note(|f| f.version = Some(version));
}

pub(crate) fn note_read(path: &str, version: u64) {
    note(|f| f.reads.push((path.to_string(), version)));
}

pub(crate) fn note_write(path: &str, version: u64) {
    note(|f| f.writes.push((path.to_string(), version)));
}

/// A request that acts on many secrets was refused at `path`: that refusal
/// is the decision, and nothing was served or written.
pub(crate) fn refuse(operation: Operation, path: &str) {
    note(|f| {
        f.reads.clear();
        f.writes.clear();
        f.version = None;
        f.decision = Some((operation, path.to_string(), false));
    });
}

/// A read of many was refused at `path`: that refusal is the decision, and
/// nothing was served.
pub(crate) fn refuse_reads(path: &str) {
    refuse(Operation::ReadValue, path);
}
