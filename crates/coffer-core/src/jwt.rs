//! JWT/OIDC roles: machines log in with the token their platform already
//! gives them (GitHub Actions, GitLab CI, Kubernetes service accounts) for a
//! short-lived coffer token.
//!
//! A role (object kind `jwt_role`, keyed by name) names the issuer, the
//! audience, where the issuer's public keys come from (a JWKS URL, OIDC
//! discovery from the issuer, or a JWKS stored with the role), the claims a
//! token must carry (exact values, or globs where the operator wrote one),
//! the policies and the TTL. Managing roles needs `admin` on
//! `sys/auth/jwt/ROLE` (`sys/auth/jwt/` to list them).
//!
//! A login checks, in this order, and refuses at the first failure with a
//! [`WorkloadRefusal`] that says why (audited, never echoing the token):
//! the size; the header's algorithm (only RS256, ES256 and EdDSA; `none` and
//! every HMAC algorithm are refused before any key is looked up, so a public
//! key can never be used as an HMAC secret); the role; the key (by `kid`,
//! whose type must fit the algorithm); the signature; `iss` exactly, `aud`
//! containing the role's audience, `exp` required, `nbf` and `iat` with
//! [`CLOCK_SKEW_SECS`] of skew, a lifetime of at most
//! [`MAX_JWT_LIFETIME_SECS`]; then every bound claim, compared exactly.
//!
//! Fetched keys are cached per key source (a JWKS URL, or an issuer's
//! discovery), shared by the roles that name it. A `kid` not in the cache
//! refetches them, but at most once per source every [`JWKS_REFETCH_SECS`]:
//! whoever mints tokens with random key ids cannot make coffer hammer the
//! issuer. Each source has its own fetch lock, so a slow or hanging issuer
//! delays only the logins that need its keys. Cached keys serve while a
//! refetch fails (an issuer's outage is not coffer's), but only until
//! [`JWKS_STALE_MAX_SECS`] after their last successful fetch: then they are
//! dropped and logins fail closed ([`WorkloadRefusal::KeysTooOld`]), so a
//! key the issuer removed cannot be used forever while its JWKS is
//! unreachable.
//! The fetching itself (HTTPS, loopback-only plain HTTP, timeout, size cap)
//! is the transport's: coffer-core knows no HTTP, so the server passes a
//! [`KeyFetcher`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_crypto::SecretString;
use coffer_store::Expect;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, OctetKeyPairType};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::access::TokenView;
use crate::auth::{Identity, Operation};
use crate::error::{InvalidInput, JwtRoleProblem, NotFound, WorkloadRefusal};
use crate::text::printable;
use crate::workload::{Workload, WorkloadGrant, role_ttl_ms};
use crate::{Coffer, CoreError, Result, audit, now_ms};

pub(crate) const KIND_JWT_ROLE: &str = "jwt_role";
/// The policy target that `admin` on manages JWT roles (`sys/auth/jwt/ROLE`).
pub const JWT_ADMIN_PREFIX: &str = "sys/auth/jwt/";
/// The largest JWT accepted, in bytes.
pub const MAX_JWT_BYTES: usize = 16 * 1024;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW_SECS: u64 = 60;
/// The longest lifetime a JWT may claim (`exp` minus `iat`, or minus now).
pub const MAX_JWT_LIFETIME_SECS: i64 = 24 * 3600;
/// At most one fetch of a role's keys in this many seconds (by default:
/// `CoreOptions::jwks_refetch_interval`).
pub const JWKS_REFETCH_SECS: u64 = 30;
/// Fetched keys are refetched (within the bound above) after this long.
pub const JWKS_MAX_AGE_SECS: u64 = 600;
/// Cached keys are never used longer than this after their last successful
/// fetch, even while refetching fails (by default:
/// `CoreOptions::jwks_stale_max`).
pub const JWKS_STALE_MAX_SECS: u64 = 24 * 3600;
/// The largest JWKS or discovery document read, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Bounds on a role's bindings.
const MAX_BOUND: usize = 32;
const MAX_CLAIM_VALUE: usize = 1024;

/// GitHub Actions' issuer.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// GitLab.com's issuer (self-managed GitLab names its own).
pub const GITLAB_ISSUER: &str = "https://gitlab.com";

/// A future of a fetched document.
pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = std::result::Result<Vec<u8>, String>> + Send + 'a>>;

/// Fetches a public document (a JWKS, a discovery document) for the core:
/// HTTPS, or plain HTTP to a loopback address only, with a timeout and a
/// size cap of [`MAX_JWKS_BYTES`]. The error is a message for people.
pub trait KeyFetcher: Send + Sync {
    /// GETs `url`.
    fn fetch<'a>(&'a self, url: &'a str) -> FetchFuture<'a>;
}

/// A platform whose tokens a role is set up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// GitHub Actions.
    Github,
    /// GitLab CI.
    Gitlab,
    /// Kubernetes service accounts.
    Kubernetes,
}

impl Preset {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Github => "github",
            Preset::Gitlab => "gitlab",
            Preset::Kubernetes => "kubernetes",
        }
    }
}

/// Where a role's keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// This JWKS URL.
    JwksUrl(String),
    /// The `jwks_uri` of the issuer's `/.well-known/openid-configuration`.
    Discovery,
    /// This JWKS (public keys only), given when the role was written.
    Jwks(String),
}

/// What `coffer auth jwt write` asks for.
#[derive(Debug, Clone, Default)]
pub struct JwtRoleRequest {
    /// A platform preset.
    pub preset: Option<Preset>,
    /// `iss`, exactly (a preset may default it).
    pub issuer: Option<String>,
    /// What `aud` must contain.
    pub audience: Option<String>,
    /// A JWKS URL.
    pub jwks_url: Option<String>,
    /// A JWKS document (public keys).
    pub jwks: Option<String>,
    /// Claims bound to exact values (any one of the values).
    pub bound_claims: BTreeMap<String, Vec<String>>,
    /// Claims bound to glob patterns (`*` matches any run of characters).
    pub bound_globs: BTreeMap<String, Vec<String>>,
    /// The policies tokens get.
    pub policies: Vec<String>,
    /// The tokens' TTL (default 15m, at most 6h).
    pub ttl: Option<String>,
}

/// A stored JWT role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtRole {
    /// Its name.
    pub name: String,
    /// The preset it was written with.
    pub preset: Option<Preset>,
    /// `iss`, exactly.
    pub issuer: String,
    /// What `aud` must contain.
    pub audience: String,
    /// Where the keys come from.
    pub keys: KeySource,
    /// Claims bound to exact values.
    pub bound_claims: BTreeMap<String, Vec<String>>,
    /// Claims bound to globs.
    pub bound_globs: BTreeMap<String, Vec<String>>,
    /// Policies of the tokens.
    pub policies: Vec<String>,
    /// TTL of the tokens, in milliseconds.
    pub ttl_ms: i64,
    /// Who last wrote it.
    pub updated_by: String,
    /// Unix milliseconds of the last write.
    pub updated_at: i64,
}

/// A key source's cached keys.
#[derive(Default)]
pub(crate) struct KeyCache {
    keys: Option<JwkSet>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// The key sources' caches, and each source's fetch lock (one fetch of a
/// source at a time; other sources are not held up).
#[derive(Default)]
pub(crate) struct JwtKeys {
    caches: std::sync::Mutex<HashMap<String, KeyCache>>,
    fetching: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl JwtKeys {
    fn lock_for(&self, source: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.fetching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(source.to_string())
            .or_default()
            .clone()
    }

    fn forget(&self, source: &str) {
        self.caches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(source);
    }
}

/// The cache key of a role's key source: roles that name the same JWKS
/// URL (or discover the same issuer) share keys, refetch bound and lock.
fn source_id(role: &JwtRole) -> Option<String> {
    match &role.keys {
        KeySource::JwksUrl(u) => Some(format!("jwks_url {u}")),
        KeySource::Discovery => Some(format!("discovery {}", role.issuer)),
        KeySource::Jwks(_) => None,
    }
}

fn problem(p: JwtRoleProblem) -> CoreError {
    CoreError::Invalid(InvalidInput::JwtRole(p))
}

fn refused(r: WorkloadRefusal) -> CoreError {
    audit::note_refusal(r.to_string());
    CoreError::WorkloadRefused(r)
}

/// Checks a role name: 1 to 64 of `[A-Za-z0-9_.-]`, not starting with `.`.
pub fn check_role_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(problem(JwtRoleProblem::Name {
            shown: printable(name),
        }))
    }
}

/// Whether coffer will fetch from `url`: `https://`, or `http://` to a
/// loopback host (tests, development), with no user info. Returns why not.
pub fn check_fetch_url(url: &str) -> std::result::Result<(), &'static str> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("it must start with https://");
    };
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("it holds spaces or control characters");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err("it has no host");
    }
    if authority.contains('@') {
        return Err("it must not hold user information");
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if !https {
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err("plain http is allowed only to a loopback address; use https://");
        }
    }
    Ok(())
}

fn check_claim_name(name: &str) -> Result<()> {
    let bad = |why| {
        Err(problem(JwtRoleProblem::Claim {
            shown: printable(name),
            why,
        }))
    };
    if name.is_empty() || name.len() > 128 {
        return bad("a claim name has 1 to 128 characters");
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("a claim name has no spaces or control characters");
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return bad("a nested claim is written `outer/inner`");
    }
    Ok(())
}

fn check_bindings(map: &BTreeMap<String, Vec<String>>) -> Result<()> {
    if map.len() > MAX_BOUND {
        return Err(problem(JwtRoleProblem::TooMany { limit: MAX_BOUND }));
    }
    for (claim, values) in map {
        check_claim_name(claim)?;
        if values.is_empty() {
            return Err(problem(JwtRoleProblem::Claim {
                shown: printable(claim),
                why: "it is bound to no value",
            }));
        }
        if values.len() > MAX_BOUND {
            return Err(problem(JwtRoleProblem::TooMany { limit: MAX_BOUND }));
        }
        for v in values {
            if v.is_empty() || v.len() > MAX_CLAIM_VALUE || v.chars().any(char::is_control) {
                return Err(problem(JwtRoleProblem::Claim {
                    shown: printable(claim),
                    why: "a value has 1 to 1024 characters and no control characters",
                }));
            }
        }
    }
    Ok(())
}

/// Checks a JWKS given with a role: JSON, at least one key coffer can use,
/// and no private or symmetric key material (which must never be stored).
pub fn parse_static_jwks(text: &str) -> std::result::Result<JwkSet, String> {
    let raw: Value = serde_json::from_str(text).map_err(|_| "it is not JSON".to_string())?;
    let keys = raw
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "it has no `keys` list".to_string())?;
    for k in keys {
        let private = ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|f| k.get(f).is_some());
        if private || k.get("kty").and_then(Value::as_str) == Some("oct") {
            return Err("it holds private or symmetric key material; give public keys only".into());
        }
    }
    let set: JwkSet =
        serde_json::from_value(raw).map_err(|_| "a key in it is not a JWK".to_string())?;
    if set.keys.is_empty() {
        return Err("it has no keys".into());
    }
    for k in &set.keys {
        if DecodingKey::from_jwk(k).is_err() {
            return Err("a key in it cannot be used".into());
        }
    }
    Ok(set)
}

/// The value of claim `name`: a top-level claim, or `outer/inner` for a
/// nested one (`kubernetes.io/namespace`). Strings as they are; numbers
/// and booleans as their JSON text; anything else is not a value.
fn claim_value(claims: &Map<String, Value>, name: &str) -> Option<String> {
    let value = match claims.get(name) {
        Some(v) => v,
        None => {
            let mut parts = name.split('/');
            let mut v = claims.get(parts.next()?)?;
            for p in parts {
                v = v.get(p)?;
            }
            v
        }
    };
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether `value` matches `pattern`, where `*` matches any run of
/// characters (including none) and everything else only itself: no case
/// folding, no normalisation.
pub fn glob_matches(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The header's algorithm and key id, read before anything else.
fn read_header(jwt: &str) -> std::result::Result<(Algorithm, Option<String>), WorkloadRefusal> {
    use base64::Engine;
    let mut parts = jwt.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WorkloadRefusal::Malformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| WorkloadRefusal::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| WorkloadRefusal::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(WorkloadRefusal::Malformed)?;
    let alg = match alg {
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        other => {
            return Err(WorkloadRefusal::Algorithm {
                shown: printable(&other.chars().take(16).collect::<String>()),
            });
        }
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(WorkloadRefusal::Malformed),
    };
    Ok((alg, kid))
}

/// Whether a JWK may verify `alg`: its type and curve fit, and its own
/// `alg`, when it names one, is `alg`.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let type_fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.key_type == OctetKeyPairType::OctetKeyPair && okp.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    let alg_fits = jwk
        .common
        .key_algorithm
        .is_none_or(|a| format!("{a:?}") == format!("{alg:?}"));
    type_fits && alg_fits
}

/// The key that verifies a token of `alg` with `kid`: the key of that id,
/// or, for a token without one, the only key of the set that fits.
fn find_key(set: &JwkSet, alg: Algorithm, kid: Option<&str>) -> Option<DecodingKey> {
    let jwk = match kid {
        Some(kid) => set
            .keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))?,
        None => {
            let mut fitting = set.keys.iter().filter(|k| key_fits(k, alg));
            let only = fitting.next()?;
            if fitting.next().is_some() {
                return None;
            }
            only
        }
    };
    if !key_fits(jwk, alg) {
        return None;
    }
    DecodingKey::from_jwk(jwk).ok()
}

/// The name a workload's tokens carry.
fn workload_name(role: &JwtRole, claims: &Map<String, Value>) -> String {
    let c = |n: &str| claim_value(claims, n);
    let named = match role.preset {
        Some(Preset::Github) => c("repository").map(|r| match c("ref") {
            Some(rf) => format!("github:{r}@{rf}"),
            None => format!("github:{r}"),
        }),
        Some(Preset::Gitlab) => c("project_path").map(|p| match c("ref") {
            Some(rf) => format!("gitlab:{p}@{rf}"),
            None => format!("gitlab:{p}"),
        }),
        Some(Preset::Kubernetes) => {
            match (
                c("kubernetes.io/namespace"),
                c("kubernetes.io/serviceaccount/name"),
            ) {
                (Some(ns), Some(sa)) => Some(format!("k8s:{ns}/{sa}")),
                _ => c("sub")
                    .and_then(|s| s.strip_prefix("system:serviceaccount:").map(str::to_string))
                    .and_then(|rest| {
                        rest.split_once(':')
                            .map(|(ns, sa)| format!("k8s:{ns}/{sa}"))
                    }),
            }
        }
        None => None,
    };
    named.unwrap_or_else(|| {
        let host = role
            .issuer
            .split("://")
            .nth(1)
            .unwrap_or(&role.issuer)
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default();
        format!("jwt:{host}:{}", c("sub").unwrap_or_default())
    })
}

fn now_secs() -> i64 {
    now_ms() / 1000
}

impl Coffer {
    /// Creates or replaces a JWT role.
    pub async fn write_jwt_role(
        &self,
        identity: &Identity,
        name: &str,
        request: &JwtRoleRequest,
    ) -> Result<JwtRole> {
        check_role_name(name)?;
        self.require_unsealed()?;
        self.authorize(
            identity,
            Operation::Admin,
            &format!("{JWT_ADMIN_PREFIX}{name}"),
        )?;
        let preset = request.preset;
        let issuer = match (&request.issuer, preset) {
            // Exactly as given: `iss` is compared with it byte for byte.
            (Some(i), _) => i.clone(),
            (None, Some(Preset::Github)) => GITHUB_ISSUER.to_string(),
            (None, Some(Preset::Gitlab)) => GITLAB_ISSUER.to_string(),
            (None, _) => return Err(problem(JwtRoleProblem::Missing { what: "an issuer" })),
        };
        if issuer.is_empty() || issuer.len() > 512 || issuer.chars().any(char::is_control) {
            return Err(problem(JwtRoleProblem::Field {
                what: "the issuer",
                why: "it has 1 to 512 characters and no control characters",
            }));
        }
        let audience = request
            .audience
            .clone()
            .ok_or(problem(JwtRoleProblem::Missing {
                what: "an audience",
            }))?;
        if audience.is_empty() || audience.len() > 512 || audience.chars().any(char::is_control) {
            return Err(problem(JwtRoleProblem::Field {
                what: "the audience",
                why: "it has 1 to 512 characters and no control characters",
            }));
        }
        let keys = match (&request.jwks_url, &request.jwks) {
            (Some(_), Some(_)) => return Err(problem(JwtRoleProblem::KeySources)),
            (Some(url), None) => {
                check_fetch_url(url).map_err(|why| {
                    problem(JwtRoleProblem::Url {
                        what: "the JWKS URL",
                        shown: printable(url),
                        why,
                    })
                })?;
                KeySource::JwksUrl(url.clone())
            }
            (None, Some(jwks)) => {
                parse_static_jwks(jwks).map_err(|why| problem(JwtRoleProblem::Jwks { why }))?;
                KeySource::Jwks(jwks.clone())
            }
            (None, None) => {
                check_fetch_url(&issuer).map_err(|why| {
                    problem(JwtRoleProblem::Url {
                        what: "the issuer (for OIDC discovery)",
                        shown: printable(&issuer),
                        why,
                    })
                })?;
                KeySource::Discovery
            }
        };
        check_bindings(&request.bound_claims)?;
        check_bindings(&request.bound_globs)?;
        if request.bound_claims.len() + request.bound_globs.len() > MAX_BOUND {
            return Err(problem(JwtRoleProblem::TooMany { limit: MAX_BOUND }));
        }
        if request.bound_claims.is_empty() && request.bound_globs.is_empty() {
            return Err(problem(JwtRoleProblem::NoBoundClaims));
        }
        if let Some(p) =
            missing_binding(&issuer, preset, &request.bound_claims, &request.bound_globs)
        {
            return Err(problem(p));
        }
        let ttl_ms = role_ttl_ms(request.ttl.as_deref())?;
        let mut policies = request.policies.clone();
        policies.sort();
        policies.dedup();
        self.check_grantable(identity, &policies)?;
        let role = JwtRole {
            name: name.to_string(),
            preset,
            issuer,
            audience,
            keys,
            bound_claims: request.bound_claims.clone(),
            bound_globs: request.bound_globs.clone(),
            policies,
            ttl_ms,
            updated_by: crate::actor::Actor::stored_for(identity),
            updated_at: now_ms(),
        };
        self.store
            .commit(vec![coffer_store::Mutation::PutObject {
                kind: KIND_JWT_ROLE.into(),
                key: name.into(),
                value: serde_json::to_vec(&role).expect("serialises"),
                expect: Expect::Any,
            }])
            .await?;
        // A role written anew starts with no cached keys.
        if let Some(source) = source_id(&role) {
            self.jwt_keys.forget(&source);
        }
        tracing::info!(
            actor = identity.display_name(),
            role = name,
            "JWT role written"
        );
        Ok(role)
    }

    async fn load_jwt_role(&self, name: &str) -> Result<Option<JwtRole>> {
        let Some(o) = self.store.get_object(KIND_JWT_ROLE, name).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&o.value).map(Some).map_err(|_| {
            CoreError::Corrupt(crate::error::Integrity::Unreadable(
                crate::error::Record::JwtRole {
                    name: name.to_string(),
                },
            ))
        })
    }

    /// A JWT role.
    pub async fn read_jwt_role(&self, identity: &Identity, name: &str) -> Result<JwtRole> {
        check_role_name(name)?;
        self.require_unsealed()?;
        self.authorize(
            identity,
            Operation::Admin,
            &format!("{JWT_ADMIN_PREFIX}{name}"),
        )?;
        self.load_jwt_role(name).await?.ok_or_else(|| {
            CoreError::NotFound(NotFound::JwtRole {
                name: name.to_string(),
            })
        })
    }

    /// Every JWT role, by name.
    pub async fn list_jwt_roles(&self, identity: &Identity) -> Result<Vec<JwtRole>> {
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, JWT_ADMIN_PREFIX)?;
        self.stored_jwt_roles().await
    }

    async fn stored_jwt_roles(&self) -> Result<Vec<JwtRole>> {
        let mut roles = Vec::new();
        for o in self.store.list_objects(KIND_JWT_ROLE).await? {
            let role: JwtRole = serde_json::from_slice(&o.value).map_err(|_| {
                CoreError::Corrupt(crate::error::Integrity::Unreadable(
                    crate::error::Record::JwtRole {
                        name: o.key.clone(),
                    },
                ))
            })?;
            roles.push(role);
        }
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(roles)
    }

    /// Logs a warning for each stored JWT role that today's rules would
    /// refuse (written before a rule existed): it keeps logging in, but its
    /// operator should rewrite it. Called when the server starts.
    pub async fn warn_weak_jwt_roles(&self) {
        match self.stored_jwt_roles().await {
            Ok(roles) => {
                for role in roles {
                    if let Some(why) = role.needs_binding() {
                        tracing::warn!(
                            role = %role.name,
                            "JWT role needs a second binding: {why}; it still logs in, rewrite it with `coffer auth jwt write`"
                        );
                    }
                }
            }
            Err(e) => tracing::warn!("JWT roles could not be checked: {e}"),
        }
    }

    /// Removes a JWT role (tokens it issued live out their short TTL).
    pub async fn delete_jwt_role(&self, identity: &Identity, name: &str) -> Result<()> {
        check_role_name(name)?;
        self.require_unsealed()?;
        self.authorize(
            identity,
            Operation::Admin,
            &format!("{JWT_ADMIN_PREFIX}{name}"),
        )?;
        let o = self
            .store
            .get_object(KIND_JWT_ROLE, name)
            .await?
            .ok_or_else(|| {
                CoreError::NotFound(NotFound::JwtRole {
                    name: name.to_string(),
                })
            })?;
        self.store
            .commit(vec![coffer_store::Mutation::DeleteObject {
                kind: KIND_JWT_ROLE.into(),
                key: name.into(),
                expect: Expect::Revision(o.revision),
            }])
            .await?;
        tracing::info!(
            actor = identity.display_name(),
            role = name,
            "JWT role deleted"
        );
        Ok(())
    }

    /// A machine logs in with a JWT for `role`: on success, a service token
    /// with exactly the role's policies, expiring after the role's TTL, and
    /// what the role lacks if today's rules would refuse it (it was stored
    /// before a rule existed; see [`JwtRole::needs_binding`]).
    pub async fn login_jwt(
        &self,
        role: &str,
        jwt: &str,
        fetcher: &dyn KeyFetcher,
    ) -> Result<(SecretString, TokenView, Option<String>)> {
        self.require_unsealed()?;
        if jwt.len() > MAX_JWT_BYTES {
            return Err(refused(WorkloadRefusal::TooLarge {
                limit: MAX_JWT_BYTES,
            }));
        }
        let (alg, kid) = read_header(jwt).map_err(refused)?;
        if check_role_name(role).is_err() {
            return Err(refused(WorkloadRefusal::UnknownRole {
                shown: printable(role),
            }));
        }
        let Some(role) = self.load_jwt_role(role).await? else {
            return Err(refused(WorkloadRefusal::UnknownRole {
                shown: role.to_string(),
            }));
        };
        let key = self
            .jwt_key(&role, alg, kid.as_deref(), fetcher)
            .await
            .map_err(refused)?;
        let claims = verify(jwt, &key, alg, &role).map_err(refused)?;
        let mut recorded = BTreeMap::new();
        for (claim, values) in &role.bound_claims {
            let Some(v) = claim_value(&claims, claim) else {
                return Err(refused(WorkloadRefusal::MissingClaim {
                    claim: claim.clone(),
                }));
            };
            if !values.iter().any(|allowed| allowed == &v) {
                return Err(refused(WorkloadRefusal::ClaimNotAllowed {
                    claim: claim.clone(),
                }));
            }
            recorded.insert(claim.clone(), crate::workload::shown(&v));
        }
        for (claim, patterns) in &role.bound_globs {
            let Some(v) = claim_value(&claims, claim) else {
                return Err(refused(WorkloadRefusal::MissingClaim {
                    claim: claim.clone(),
                }));
            };
            if !patterns.iter().any(|p| glob_matches(p, &v)) {
                return Err(refused(WorkloadRefusal::ClaimNotAllowed {
                    claim: claim.clone(),
                }));
            }
            recorded.insert(claim.clone(), crate::workload::shown(&v));
        }
        let needs_binding = role.needs_binding();
        if let Some(why) = &needs_binding {
            // Still allowed (no outage on upgrade), but marked in the
            // login's audit record, logged and answered, so that operators
            // find the roles to rewrite.
            tracing::warn!(
                role = %role.name,
                "login through a JWT role that needs a second binding: {why}; rewrite it with `coffer auth jwt write`"
            );
            audit::note_needs_binding(why.clone());
        }
        let workload = Workload {
            method: "jwt".into(),
            role: role.name.clone(),
            issuer: Some(role.issuer.clone()),
            subject: claim_value(&claims, "sub").map(|s| crate::workload::shown(&s)),
            claims: recorded,
        };
        let (token, view) = self
            .issue_workload_token(WorkloadGrant {
                name: workload_name(&role, &claims),
                policies: role.policies.clone(),
                ttl_ms: role.ttl_ms,
                workload,
            })
            .await?;
        Ok((token, view, needs_binding))
    }

    /// The key for a token of `alg` and `kid` from `role`'s keys: cached,
    /// or fetched within the refetch bound.
    async fn jwt_key(
        &self,
        role: &JwtRole,
        alg: Algorithm,
        kid: Option<&str>,
        fetcher: &dyn KeyFetcher,
    ) -> std::result::Result<DecodingKey, WorkloadRefusal> {
        if let KeySource::Jwks(text) = &role.keys {
            let set = parse_static_jwks(text)
                .map_err(|detail| WorkloadRefusal::KeysUnavailable { detail })?;
            return find_key(&set, alg, kid).ok_or(WorkloadRefusal::UnknownKey);
        }
        let source = source_id(role).expect("stored keys were handled above");
        let stale_max = self.options.jwks_stale_max;
        // The cached key, if the cache has keys young enough: fresh ones
        // only, or any not past the stale bound. Keys past it are never
        // used again: only a successful fetch replaces them.
        let cached =
            |fresh_only: bool| -> std::result::Result<Option<DecodingKey>, WorkloadRefusal> {
                let caches = self
                    .jwt_keys
                    .caches
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let Some(c) = caches.get(&source) else {
                    return Ok(None);
                };
                let (Some(set), Some(at)) = (c.keys.as_ref(), c.fetched_at) else {
                    return Ok(None);
                };
                let age = at.elapsed();
                if age >= stale_max {
                    // Kept (unused) so that the refusal keeps saying why until
                    // a fetch succeeds.
                    return Err(WorkloadRefusal::KeysTooOld {
                        max_secs: stale_max.as_secs(),
                    });
                }
                if fresh_only && age >= Duration::from_secs(JWKS_MAX_AGE_SECS) {
                    return Ok(None);
                }
                Ok(find_key(set, alg, kid))
            };
        // A fresh key, or a stale set: look further.
        if let Ok(Some(k)) = cached(true) {
            return Ok(k);
        }
        // One fetch of this source at a time; whoever waited looks again
        // first. Other sources have locks of their own.
        let lock = self.jwt_keys.lock_for(&source);
        let _fetching = lock.lock().await;
        if let Ok(Some(k)) = cached(true) {
            return Ok(k);
        }
        let allowed = {
            let mut caches = self
                .jwt_keys
                .caches
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let c = caches.entry(source.clone()).or_default();
            let allowed = c
                .last_attempt
                .is_none_or(|t| t.elapsed() >= self.options.jwks_refetch_interval);
            if allowed {
                c.last_attempt = Some(Instant::now());
            }
            allowed
        };
        if !allowed {
            // Keys past their age still serve until a refetch is allowed,
            // but never past the stale bound.
            return cached(false)?.ok_or(WorkloadRefusal::UnknownKey);
        }
        let set = match fetch_keys(role, fetcher).await {
            Ok(set) => set,
            Err(detail) => {
                tracing::warn!(role = %role.name, %detail, "fetching a JWT role's keys failed");
                return match cached(false) {
                    Ok(Some(k)) => Ok(k),
                    Ok(None) => Err(WorkloadRefusal::KeysUnavailable { detail }),
                    Err(too_old) => {
                        tracing::warn!(
                            role = %role.name,
                            "a JWT role's cached keys are past their stale bound and are not used"
                        );
                        Err(too_old)
                    }
                };
            }
        };
        let key = find_key(&set, alg, kid);
        {
            let mut caches = self
                .jwt_keys
                .caches
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let c = caches.entry(source).or_default();
            c.keys = Some(set);
            c.fetched_at = Some(Instant::now());
        }
        key.ok_or(WorkloadRefusal::UnknownKey)
    }
}

/// Fetches a role's JWKS (through discovery when the role says so).
async fn fetch_keys(
    role: &JwtRole,
    fetcher: &dyn KeyFetcher,
) -> std::result::Result<JwkSet, String> {
    let url = match &role.keys {
        KeySource::JwksUrl(u) => u.clone(),
        KeySource::Discovery => {
            let doc = fetcher
                .fetch(&format!(
                    "{}/.well-known/openid-configuration",
                    role.issuer.trim_end_matches('/')
                ))
                .await?;
            let doc: Map<String, Value> = serde_json::from_slice(&doc)
                .map_err(|_| "the discovery document is not JSON".to_string())?;
            // OIDC discovery: the document must name the issuer it was
            // fetched for, exactly.
            if doc.get("issuer").and_then(Value::as_str) != Some(role.issuer.as_str()) {
                return Err("the discovery document names another issuer".into());
            }
            let uri = doc
                .get("jwks_uri")
                .and_then(Value::as_str)
                .ok_or_else(|| "the discovery document has no jwks_uri".to_string())?;
            check_fetch_url(uri).map_err(|why| format!("its jwks_uri is not usable: {why}"))?;
            uri.to_string()
        }
        KeySource::Jwks(_) => unreachable!("stored keys are not fetched"),
    };
    let body = fetcher.fetch(&url).await?;
    let set: JwkSet =
        serde_json::from_slice(&body).map_err(|_| "the JWKS is not a JSON key set".to_string())?;
    Ok(set)
}

/// Checks the signature and the registered claims; returns the claims.
fn verify(
    jwt: &str,
    key: &DecodingKey,
    alg: Algorithm,
    role: &JwtRole,
) -> std::result::Result<Map<String, Value>, WorkloadRefusal> {
    use jsonwebtoken::errors::ErrorKind as K;
    let mut v = Validation::new(alg);
    v.leeway = CLOCK_SKEW_SECS;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_issuer(&[role.issuer.as_str()]);
    v.set_audience(&[role.audience.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(jwt, key, &v).map_err(|e| {
        match e.kind() {
            K::InvalidSignature => WorkloadRefusal::BadSignature,
            K::ExpiredSignature => WorkloadRefusal::Expired,
            K::ImmatureSignature => WorkloadRefusal::NotYetValid,
            K::InvalidIssuer => WorkloadRefusal::WrongIssuer,
            K::InvalidAudience => WorkloadRefusal::WrongAudience,
            // One of the names this function asked for: `exp`, `iss`, `aud`.
            K::MissingRequiredClaim(c) => WorkloadRefusal::MissingRegistered { claim: c.clone() },
            K::InvalidAlgorithm => WorkloadRefusal::Algorithm {
                shown: format!("{alg:?}"),
            },
            _ => WorkloadRefusal::Malformed,
        }
    })?;
    let claims = data.claims;
    let now = now_secs();
    let skew = CLOCK_SKEW_SECS as i64;
    let number = |n: &str| claims.get(n).and_then(Value::as_i64);
    let exp = number("exp").ok_or(WorkloadRefusal::MissingRegistered {
        claim: "exp".into(),
    })?;
    let iat = number("iat");
    if iat.is_some_and(|iat| iat > now + skew) {
        return Err(WorkloadRefusal::IssuedInFuture);
    }
    if exp - iat.unwrap_or(now).min(now) > MAX_JWT_LIFETIME_SECS {
        return Err(WorkloadRefusal::LifetimeTooLong {
            max_secs: MAX_JWT_LIFETIME_SECS,
        });
    }
    Ok(claims)
}

/// Whether `claim` is bound so that only one owner's repositories (or
/// projects) match: by exact values, or by globs whose part before the
/// first `/` is literal and not empty (`acme/*`, not `*` or `ac*/api`).
fn owner_pinned(
    exact: &BTreeMap<String, Vec<String>>,
    globs: &BTreeMap<String, Vec<String>>,
    claim: &str,
) -> bool {
    let exact_values = exact.get(claim).map_or(&[][..], Vec::as_slice);
    let glob_values = globs.get(claim).map_or(&[][..], Vec::as_slice);
    if exact_values.is_empty() && glob_values.is_empty() {
        return false;
    }
    let literal_owner = |v: &String| {
        v.split_once('/').is_some_and(|(owner, _)| {
            !owner.is_empty() && !owner.contains(['*', '?', '[', ']', '{', '}', '\\'])
        })
    };
    exact_values.iter().all(|v| !v.is_empty()) && glob_values.iter().all(literal_owner)
}

/// The claims that count as a GitHub role's second binding (beside
/// `repository`): which branch or tag, which environment, or which
/// workflow file. `workflow` (the workflow's name, written in the YAML by
/// anyone who can push a branch) does not count.
pub const GITHUB_SECOND: &[&str] = &["ref", "environment", "job_workflow_ref", "workflow_ref"];
/// GitHub's numeric IDs of the repository and of its owner. Unlike the
/// names, they never change and are never reused: a repository renamed,
/// transferred or deleted frees its name (`acme/api` can then be created
/// by someone else), never its ID. Either one bound exactly pins the
/// repository (or the owner) as `repository` does.
pub const GITHUB_IDS: &[&str] = &["repository_id", "repository_owner_id"];
/// The claims that count as a GitLab role's second binding (beside
/// `project_path`): `ref` only together with `ref_type` (a tag may be
/// named like a branch) or `ref_protected=true`; `ref_protected` only as
/// exactly `true`.
pub const GITLAB_SECOND: &[&str] = &["ref with ref_type", "ref_protected=true", "environment"];
/// Kubernetes' namespace and service account name claims.
pub const K8S_NAMESPACE: &str = "kubernetes.io/namespace";
/// Kubernetes' service account name claim.
pub const K8S_SERVICE_ACCOUNT: &str = "kubernetes.io/serviceaccount/name";

/// Whether `claim` is bound to something narrower than "anything": by an
/// exact value, or by a glob that is not only `*`s.
fn narrowly_bound(
    exact: &BTreeMap<String, Vec<String>>,
    globs: &BTreeMap<String, Vec<String>>,
    claim: &str,
) -> bool {
    exact.get(claim).is_some_and(|v| !v.is_empty())
        || globs
            .get(claim)
            .is_some_and(|v| !v.is_empty() && v.iter().all(|p| p.chars().any(|c| c != '*')))
}

/// Whether a glob names something: it has no wildcard, or its first
/// wildcard follows at least one literal character in the same
/// `/`-separated segment (`refs/tags/v*`, not `refs/*`, `*/*`, `*@*` or
/// `refs/heads/*`).
fn glob_names_something(p: &str) -> bool {
    let Some(at) = p.find('*') else {
        return !p.is_empty();
    };
    let segment_start = p[..at].rfind('/').map_or(0, |i| i + 1);
    at > segment_start
}

/// Whether `claim` is bound so that it names something: exact non-empty
/// values, or globs that each name something ([`glob_names_something`]).
fn names_something(
    exact: &BTreeMap<String, Vec<String>>,
    globs: &BTreeMap<String, Vec<String>>,
    claim: &str,
) -> bool {
    let exact_values = exact.get(claim).map_or(&[][..], Vec::as_slice);
    let glob_values = globs.get(claim).map_or(&[][..], Vec::as_slice);
    (!exact_values.is_empty() || !glob_values.is_empty())
        && exact_values.iter().all(|v| !v.is_empty())
        && glob_values.iter().all(|p| glob_names_something(p))
}

/// Whether `claim` is bound to exact decimal numbers only (no glob beside
/// them), as GitHub's numeric IDs must be.
fn exact_ids(
    exact: &BTreeMap<String, Vec<String>>,
    globs: &BTreeMap<String, Vec<String>>,
    claim: &str,
) -> bool {
    !globs.contains_key(claim)
        && exact.get(claim).is_some_and(|v| {
            !v.is_empty()
                && v.iter()
                    .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Whether `claim` is bound to exactly `true` (no glob beside it).
fn exactly_true(
    exact: &BTreeMap<String, Vec<String>>,
    globs: &BTreeMap<String, Vec<String>>,
    claim: &str,
) -> bool {
    !globs.contains_key(claim)
        && exact
            .get(claim)
            .is_some_and(|v| !v.is_empty() && v.iter().all(|v| v == "true"))
}

/// Whether a shared issuer's role has a second binding that counts.
fn second_bound(
    gitlab: bool,
    exact: &BTreeMap<String, Vec<String>>,
    globs: &BTreeMap<String, Vec<String>>,
) -> bool {
    if gitlab {
        let protected = exactly_true(exact, globs, "ref_protected");
        protected
            || names_something(exact, globs, "environment")
            || (names_something(exact, globs, "ref") && names_something(exact, globs, "ref_type"))
    } else {
        ["ref", "environment", "job_workflow_ref", "workflow_ref"]
            .iter()
            .any(|c| names_something(exact, globs, c))
    }
}

/// Whether `sub` is bound to exact Kubernetes service accounts
/// (`system:serviceaccount:NS:NAME`, no glob), which pins both the
/// namespace and the name.
fn k8s_sub_pinned(
    exact: &BTreeMap<String, Vec<String>>,
    globs: &BTreeMap<String, Vec<String>>,
) -> bool {
    let exact_ok = exact.get("sub").is_some_and(|v| {
        !v.is_empty()
            && v.iter().all(|s| {
                s.strip_prefix("system:serviceaccount:")
                    .and_then(|r| r.split_once(':'))
                    .is_some_and(|(ns, sa)| !ns.is_empty() && !sa.is_empty())
            })
    });
    exact_ok && !globs.contains_key("sub")
}

/// What a role for `issuer` (written with `preset`) lacks, if anything.
///
/// A shared issuer signs tokens for anyone's repositories: a role for it
/// must pin the repository (or project) to an owner, whether or not it was
/// written with the preset (without the preset, `--bound
/// ref=refs/heads/main` alone, or a glob such as `*`, let every repository
/// on the service log in). And one binding is not enough: every branch and
/// every workflow of a pinned repository could still log in, so a second
/// binding (branch, environment or workflow) is required too. A Kubernetes
/// role binds the namespace and the service account name.
pub fn missing_binding(
    issuer: &str,
    preset: Option<Preset>,
    exact: &BTreeMap<String, Vec<String>>,
    globs: &BTreeMap<String, Vec<String>>,
) -> Option<JwtRoleProblem> {
    let issuer = issuer.trim_end_matches('/');
    let github = preset == Some(Preset::Github) || issuer == GITHUB_ISSUER;
    let gitlab = preset == Some(Preset::Gitlab) || issuer == GITLAB_ISSUER;
    for (on, is_gitlab, name, claim, second) in [
        (github, false, "github", "repository", GITHUB_SECOND),
        (gitlab, true, "gitlab", "project_path", GITLAB_SECOND),
    ] {
        if !on {
            continue;
        }
        if !is_gitlab {
            // A numeric ID is bound exactly or not at all: a glob on an ID,
            // or a value that is not a number, could never mean one
            // repository.
            for &id in GITHUB_IDS {
                if (exact.contains_key(id) || globs.contains_key(id))
                    && !exact_ids(exact, globs, id)
                {
                    return Some(JwtRoleProblem::NumericId { claim: id });
                }
            }
            let by_id = GITHUB_IDS.iter().any(|id| exact_ids(exact, globs, id));
            if !by_id && !owner_pinned(exact, globs, claim) {
                return Some(JwtRoleProblem::GithubNeedsRepository);
            }
        } else if !owner_pinned(exact, globs, claim) {
            return Some(JwtRoleProblem::PresetNeedsClaim {
                preset: name,
                claim,
            });
        }
        if !second_bound(is_gitlab, exact, globs) {
            return Some(JwtRoleProblem::NeedsSecondBinding {
                preset: name,
                first: claim,
                choices: second,
            });
        }
    }
    if preset == Some(Preset::Kubernetes) && !k8s_sub_pinned(exact, globs) {
        for claim in [K8S_NAMESPACE, K8S_SERVICE_ACCOUNT] {
            if !narrowly_bound(exact, globs, claim) {
                return Some(JwtRoleProblem::PresetNeedsClaim {
                    preset: "kubernetes",
                    claim,
                });
            }
        }
    }
    None
}

impl JwtRole {
    /// What this stored role lacks under today's rules, said for people:
    /// a role written before a rule existed keeps logging in, but is
    /// flagged (`coffer auth jwt read/list`, the server log at start)
    /// until it is rewritten with the binding.
    pub fn needs_binding(&self) -> Option<String> {
        missing_binding(
            &self.issuer,
            self.preset,
            &self.bound_claims,
            &self.bound_globs,
        )
        .map(|p| p.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_names_something_only_with_a_literal_start_in_its_segment() {
        for (p, want) in [
            ("refs/*", false),
            ("*/*", false),
            ("*@*", false),
            ("refs/heads/*", false),
            ("*", false),
            ("", false),
            ("refs/heads/main", true),
            ("refs/tags/v*", true),
            ("acme/api/.github/workflows/release.yml@*", true),
            ("acme/api/.github/workflows/*", false),
            ("prod-*", true),
        ] {
            assert_eq!(glob_names_something(p), want, "{p}");
        }
    }

    #[test]
    fn globs_match_only_where_written() {
        for (p, v, want) in [
            ("refs/heads/main", "refs/heads/main", true),
            ("refs/heads/main", "refs/heads/Main", false),
            ("refs/heads/*", "refs/heads/feature/x", true),
            ("refs/heads/*", "refs/tags/v1", false),
            ("release-*-final", "release-1.2-final", true),
            ("release-*-final", "release-1.2-finalx", false),
            ("*", "", true),
            ("a*", "b", false),
            ("**a", "xxa", true),
        ] {
            assert_eq!(glob_matches(p, v), want, "{p} {v}");
        }
    }

    #[test]
    fn fetch_urls_are_https_or_loopback_http() {
        assert!(
            check_fetch_url("https://token.actions.githubusercontent.com/.well-known/jwks").is_ok()
        );
        assert!(check_fetch_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_fetch_url("http://[::1]:8080/jwks").is_ok());
        assert!(check_fetch_url("http://localhost/jwks").is_ok());
        for bad in [
            "http://example.com/jwks",
            "http://127.0.0.1.example.com/jwks",
            "https://user@example.com/jwks",
            "ftp://example.com",
            "https:///jwks",
            "https://exa mple.com",
            "http://10.0.0.1/jwks",
        ] {
            assert!(check_fetch_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_refuse_none_and_hmac_before_anything_else() {
        use base64::Engine;
        let enc = |h: &str| {
            format!(
                "{}.e30.sig",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h)
            )
        };
        for alg in ["none", "HS256", "HS384", "HS512", "RS512", "PS256", "ES384"] {
            let e = read_header(&enc(&format!(r#"{{"alg":"{alg}"}}"#))).unwrap_err();
            assert!(matches!(e, WorkloadRefusal::Algorithm { .. }), "{alg}");
        }
        assert!(read_header(&enc(r#"{"alg":"RS256","kid":"a"}"#)).is_ok());
        assert_eq!(read_header("a.b"), Err(WorkloadRefusal::Malformed));
        assert_eq!(read_header("a.b.c.d"), Err(WorkloadRefusal::Malformed));
        assert_eq!(
            read_header(&enc(r#"{"alg":"RS256","kid":1}"#)),
            Err(WorkloadRefusal::Malformed)
        );
    }

    #[test]
    fn static_jwks_refuses_private_and_symmetric_keys() {
        assert!(parse_static_jwks(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
        assert!(
            parse_static_jwks(
                r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}"#
            )
            .is_err()
        );
        assert!(
            parse_static_jwks(
                r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#
            )
            .is_ok()
        );
        assert!(parse_static_jwks(r#"{"keys":[]}"#).is_err());
        assert!(parse_static_jwks("not json").is_err());
    }

    #[test]
    fn nested_claims_are_read_by_path() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"sub":"system:serviceaccount:ci:deployer","kubernetes.io":{"namespace":"ci","serviceaccount":{"name":"deployer"}},"n":3,"o":{}}"#,
        )
        .unwrap();
        assert_eq!(
            claim_value(&claims, "kubernetes.io/namespace").as_deref(),
            Some("ci")
        );
        assert_eq!(
            claim_value(&claims, "kubernetes.io/serviceaccount/name").as_deref(),
            Some("deployer")
        );
        assert_eq!(claim_value(&claims, "n").as_deref(), Some("3"));
        assert_eq!(claim_value(&claims, "o"), None);
        assert_eq!(claim_value(&claims, "missing"), None);
    }
}
