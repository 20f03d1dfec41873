//! Sessions: resolving a token to an [`Identity`] and the single
//! authorization check every use case makes before it touches data.

use std::net::IpAddr;
use std::sync::Arc;

use coffer_crypto::token;
use coffer_policy::Pattern;
use coffer_store::{Mutation, TokenRecord};

use crate::auth::{self, AccessModel, Authorized, Identity, Operation};
use crate::error::{CoreError, InvalidInput, Result};
use crate::path::SecretPath;
use crate::{Coffer, audit, now_ms};

/// A cached token record, with the audit log's HMAC of the token that
/// hashes to it: every request the token authenticates records that tag,
/// and computing it once per cached token rather than once per request
/// saves a keyed hash on the hot path. Both come from the keyring, so the
/// entry lives exactly as long as the token's hash does (a seal clears the
/// cache).
#[derive(Clone)]
pub(crate) struct CachedToken {
    record: Arc<TokenRecord>,
    audit_tag: [u8; 32],
}

pub(crate) const TOKEN_CACHE_CAPACITY: usize = 100_000;

impl Coffer {
    /// Resolves a raw token to an identity. `source` is the address the
    /// request came from (checked against a network-bound token's CIDRs; a
    /// bound token is refused when the source is unknown). Every failure
    /// (malformed, unknown, expired, revoked, used up, wrong network) is the
    /// same `Unauthenticated`, so responses do not tell an attacker which
    /// tokens exist.
    pub async fn authenticate(&self, raw: &str, source: Option<IpAddr>) -> Result<Identity> {
        self.require_unsealed()?;
        // Revocations, policy changes and new versions from other nodes
        // take effect before this request is decided.
        self.sync().await?;
        let keys = self.unsealed()?;
        if !token::is_well_formed(raw) {
            return Err(CoreError::Unauthenticated);
        }
        let hash = keys.keyring.token_hash(raw);
        let cached = self
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            .cloned();
        let CachedToken { record, audit_tag } = match cached {
            Some(c) => c,
            None => {
                let c = CachedToken {
                    record: Arc::new(
                        self.store
                            .get_token(&hash)
                            .await?
                            .ok_or(CoreError::Unauthenticated)?,
                    ),
                    audit_tag: keys.audit.field(raw.as_bytes()),
                };
                // Use-limited tokens are counted in storage on every request,
                // so caching them would only show a stale count.
                if c.record.uses_limit.is_none() {
                    let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
                    if tokens.len() >= TOKEN_CACHE_CAPACITY {
                        tokens.clear();
                    }
                    tokens.insert(hash, c.clone());
                }
                c
            }
        };
        // The lookup found the record by hash; comparing the hashes again in
        // constant time makes the equality check itself leak nothing, whatever
        // the map or index did to find it.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&record.hash[..], &hash[..])) {
            return Err(CoreError::Unauthenticated);
        }
        if record.expires_at.is_some_and(|t| now_ms() >= t) {
            return Err(CoreError::Unauthenticated);
        }
        if !record.cidrs.is_empty() && !source_allowed(&record.cidrs, source) {
            return Err(CoreError::Unauthenticated);
        }
        if record.uses_limit.is_some() {
            match self
                .store
                .commit(vec![Mutation::ConsumeTokenUse {
                    accessor: record.accessor.clone(),
                }])
                .await
            {
                Ok(()) => {}
                Err(coffer_store::StoreError::Conflict(_)) => {
                    return Err(CoreError::Unauthenticated);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let identity = Identity { token: record };
        audit::note_authenticated(&identity, audit_tag);
        Ok(identity)
    }

    /// The single authorization check, against the current access model.
    /// Every use case calls it before touching data; break-glass reads are
    /// raised as alerts here.
    pub fn authorize<'a>(
        &self,
        identity: &Identity,
        operation: Operation,
        target: &'a str,
    ) -> Result<Authorized<'a>> {
        // A root service token is allowed everything and no protected prefix
        // applies to it, so the decision needs no model: skip the shared lock
        // on the hot path. The decision itself is still made by `authorize`.
        static NO_MODEL: std::sync::LazyLock<AccessModel> =
            std::sync::LazyLock::new(AccessModel::default);
        if identity.is_root() && !identity.is_human() {
            let decision = auth::authorize(&NO_MODEL, identity, operation, target, now_ms());
            audit::note_decision(operation, target, decision.is_ok(), false, false);
            return decision;
        }
        let model = self
            .access
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let decision = auth::authorize(&model, identity, operation, target, now_ms());
        let protected = operation == Operation::ReadValue && model.is_protected(target);
        audit::note_decision(
            operation,
            target,
            decision.is_ok(),
            decision.as_ref().is_ok_and(|a| a.via_breakglass()),
            protected,
        );
        let authorized = decision?;
        if authorized.via_breakglass() {
            tracing::warn!(
                target: "coffer::alert",
                alert = "breakglass_read",
                user = identity.user().unwrap_or_default(),
                accessor = identity.accessor(),
                path = target,
                "break-glass read of a protected secret"
            );
        }
        Ok(authorized)
    }

    /// Whether `identity` may perform `operation` on `target`: the decision
    /// [`authorize`](Self::authorize) would make, on the same access model,
    /// but neither noted for the audit record nor alerted on, and with no
    /// [`Authorized`] witness, so it can never stand in for the check of a
    /// use case. For a page deciding what to offer (a link, a section) without
    /// making a call that would be refused; the use case behind the offer
    /// makes its own, recorded decision when it is used.
    pub fn may(&self, identity: &Identity, operation: Operation, target: &str) -> bool {
        auth::authorize(&self.access_model(), identity, operation, target, now_ms()).is_ok()
    }

    /// Whether a client may keep an offline copy of values `identity` was
    /// served at `paths`: not when a person read anything under a protected
    /// prefix. Only a live break-glass grant lets a person read there, and a
    /// copy on their disk would outlive the grant. Service tokens are not
    /// limited by protected prefixes, so their copies are allowed.
    pub fn offline_copy_allowed<'a>(
        &self,
        identity: &Identity,
        mut paths: impl Iterator<Item = &'a str>,
    ) -> bool {
        if !identity.is_human() {
            return true;
        }
        let model = self.access_model();
        !paths.any(|p| model.is_protected(p))
    }

    /// The current access model (policies, protected prefixes, grants).
    pub fn access_model(&self) -> Arc<AccessModel> {
        self.access
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The boundary of a use case on one secret: parses `path`, refuses
    /// while sealed, then authorizes `operation` on it (the parse error
    /// first, then the seal, then the decision, as every use case orders
    /// them).
    pub(crate) fn admit(
        &self,
        identity: &Identity,
        operation: Operation,
        path: &str,
    ) -> Result<SecretPath> {
        let path = SecretPath::parse(path)?;
        self.require_unsealed()?;
        self.authorize(identity, operation, path.as_str())?;
        Ok(path)
    }

    /// The boundary of an administrator's change to the settings kept per
    /// pattern (protected prefixes, lifecycle rules): parses `pattern`,
    /// refuses while sealed, then authorizes `admin` on `area`.
    pub(crate) fn admit_pattern(
        &self,
        identity: &Identity,
        pattern: &str,
        area: &str,
    ) -> Result<Pattern> {
        let pattern =
            Pattern::parse(pattern).map_err(|e| CoreError::Invalid(InvalidInput::Pattern(e)))?;
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, area)?;
        Ok(pattern)
    }

    /// Whether `identity`'s policies explicitly deny `name` (a `deny` rule
    /// matches it). The audit API shows no record that names it to that
    /// caller: deny hides names, in the audit log as in listings. A root
    /// token is denied nothing. Reading the model notes no decision.
    pub fn audit_hides(&self, identity: &Identity, name: &str) -> bool {
        auth::denied_at(&self.access_model(), identity, name)
    }
}

/// Whether `source` lies in one of `cidrs`. An unknown source never does.
pub(crate) fn source_allowed(cidrs: &[String], source: Option<IpAddr>) -> bool {
    let Some(ip) = source else {
        return false;
    };
    let ip = canonical_ip(ip);
    cidrs
        .iter()
        .any(|c| c.parse::<ipnet::IpNet>().is_ok_and(|net| net.contains(&ip)))
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack listener
/// reports) are matched as the IPv4 address they are.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
