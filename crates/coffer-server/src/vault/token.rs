//! Token auth (`auth/token/...`) and userpass login for coffer's users
//! (`auth/userpass/login/USER`), with Vault's `auth` block.
//!
//! Coffer names other tokens by accessor, never by the token itself: the
//! routes that take a token in the body (`lookup`, `renew`, `revoke`)
//! accept only the caller's own token there (compared in constant time)
//! and point to the `-accessor` routes for any other.
//!
//! A user with one-time codes gives the current code in the login body's
//! `totp` field: exactly six ASCII digits, or the request is refused before
//! any password is checked. The core requires it of such a user, as on the
//! native login. A code is never taken from the end of the password: Vault
//! clients that append one get a failed login, not a guess at where the
//! password ends.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use coffer_api::WireSecret;
use coffer_core::{LoginRequest, TokenRequest, TokenView};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::kv::VaultJson;
use super::{VaultAuth, no_content, ok, ok_auth, token_of};
use crate::error::ApiError;
use crate::state::AppState;
use crate::timefmt::rfc3339;

/// Vault's `auth` block. The token is in it only when one was just made.
#[derive(Serialize)]
struct AuthBlock {
    client_token: String,
    accessor: String,
    policies: Vec<String>,
    token_policies: Vec<String>,
    metadata: Option<()>,
    lease_duration: i64,
    renewable: bool,
    entity_id: &'static str,
    token_type: &'static str,
    orphan: bool,
    num_uses: u64,
}

impl Drop for AuthBlock {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.client_token);
    }
}

fn remaining_secs(record: &TokenView) -> i64 {
    record
        .expires_at
        .map_or(0, |e| ((e - coffer_core::now_ms()) / 1000).max(0))
}

fn auth_block(client_token: String, record: &TokenView) -> AuthBlock {
    AuthBlock {
        client_token,
        accessor: record.accessor.clone(),
        policies: record.policies.clone(),
        token_policies: record.policies.clone(),
        metadata: None,
        lease_duration: remaining_secs(record),
        renewable: record.ttl_ms.is_some(),
        entity_id: "",
        token_type: "service",
        orphan: record.parent.is_none(),
        num_uses: record.uses_left.unwrap_or(0),
    }
}

/// What `lookup` shows of a token (never the token).
#[derive(Serialize)]
struct TokenData {
    accessor: String,
    creation_time: i64,
    creation_ttl: i64,
    display_name: String,
    entity_id: &'static str,
    expire_time: Option<String>,
    explicit_max_ttl: i64,
    issue_time: String,
    meta: Option<()>,
    num_uses: u64,
    orphan: bool,
    path: &'static str,
    policies: Vec<String>,
    renewable: bool,
    ttl: i64,
    #[serde(rename = "type")]
    kind: &'static str,
}

fn token_data(record: &TokenView) -> TokenData {
    TokenData {
        accessor: record.accessor.clone(),
        creation_time: record.created_at / 1000,
        creation_ttl: record.ttl_ms.unwrap_or(0) / 1000,
        display_name: record.display_name.clone(),
        entity_id: "",
        expire_time: record.expires_at.map(rfc3339),
        explicit_max_ttl: record
            .max_expires_at
            .map_or(0, |m| (m - record.created_at) / 1000),
        issue_time: rfc3339(record.created_at),
        meta: None,
        num_uses: record.uses_left.unwrap_or(0),
        orphan: record.parent.is_none(),
        path: match record.user.as_deref() {
            Some(u) if u.starts_with(coffer_core::approle::IDENTITY_PREFIX) => "auth/approle/login",
            Some(_) => "auth/userpass/login",
            None => "auth/token/create",
        },
        policies: record.policies.clone(),
        renewable: record.ttl_ms.is_some(),
        ttl: remaining_secs(record),
        kind: "service",
    }
}

/// Vault's `auth/token/create` parameters that coffer has; the rest are
/// refused by name, except those that ask for what coffer does anyway (and
/// the defaults Vault's CLI always sends).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    #[serde(default)]
    policies: Vec<String>,
    ttl: Option<Duration>,
    explicit_max_ttl: Option<Duration>,
    #[serde(default)]
    num_uses: u64,
    display_name: Option<String>,
    /// Coffer has no default policy to leave out.
    #[serde(default)]
    no_default_policy: bool,
    /// Coffer tokens with a ttl are renewable.
    renewable: Option<bool>,
    /// Only `service` tokens exist.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Coffer tokens always have their parent.
    #[serde(default)]
    no_parent: bool,
    meta: Option<serde_json::Map<String, serde_json::Value>>,
    /// Periodic tokens do not exist; only "none" is accepted.
    period: Option<Duration>,
    /// Entities do not exist; only "none" is accepted.
    entity_alias: Option<String>,
}

/// A duration as Vault spells it: `"1h"`, `"3600"`, `3600`; `""`, `"0"`,
/// `"0s"` and `0` mean none.
pub(super) struct Duration(Option<String>);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(u64),
            Text(String),
        }
        let text = match Either::deserialize(d)? {
            Either::Number(n) => n.to_string(),
            Either::Text(t) => t,
        };
        let text = text.trim();
        if matches!(text, "" | "0" | "0s") {
            return Ok(Duration(None));
        }
        Ok(Duration(Some(
            if text.bytes().all(|b| b.is_ascii_digit()) {
                format!("{text}s")
            } else {
                text.to_owned()
            },
        )))
    }
}

fn duration(d: Option<Duration>) -> Option<String> {
    d.and_then(|d| d.0)
}

pub(super) async fn create(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    VaultJson(body): VaultJson<CreateBody>,
) -> Result<Response, ApiError> {
    if body.renewable == Some(false) {
        return Err(ApiError::invalid(
            "renewable=false is not supported: a coffer token with a ttl can be renewed up to its explicit_max_ttl",
        ));
    }
    if body
        .kind
        .as_deref()
        .is_some_and(|k| !matches!(k, "service" | "default"))
    {
        return Err(ApiError::invalid("coffer has only service tokens"));
    }
    if body.no_parent {
        return Err(ApiError::invalid(
            "no_parent is not supported: every coffer token is revoked with its parent",
        ));
    }
    if body.meta.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(ApiError::invalid("token metadata (meta) is not supported"));
    }
    if body.period.is_some_and(|p| p.0.is_some()) {
        return Err(ApiError::invalid(
            "periodic tokens (period) are not supported: give ttl and explicit_max_ttl",
        ));
    }
    if body.entity_alias.as_deref().is_some_and(|a| !a.is_empty()) {
        return Err(ApiError::invalid(
            "entity_alias is not supported: coffer has no entities",
        ));
    }
    let _ = body.no_default_policy;
    // Vault's child token without policies has its parent's.
    let policies = if body.policies.is_empty() {
        id.policies().to_vec()
    } else {
        body.policies
    };
    let request = TokenRequest {
        policies,
        ttl: duration(body.ttl),
        max_ttl: duration(body.explicit_max_ttl),
        uses: (body.num_uses > 0).then_some(body.num_uses),
        cidrs: Vec::new(),
        display_name: body.display_name.filter(|n| !n.is_empty()),
    };
    let (raw, record) = st.coffer.create_token(&id, &request).await?;
    Ok(ok_auth(auth_block(raw.expose_secret().to_owned(), &record)))
}

pub(super) async fn lookup_self(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
) -> Result<Response, ApiError> {
    let record = st.coffer.lookup_token(&id, None).await?;
    Ok(ok(token_data(&record)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AccessorBody {
    accessor: String,
}

pub(super) async fn lookup_accessor(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    VaultJson(body): VaultJson<AccessorBody>,
) -> Result<Response, ApiError> {
    let record = st.coffer.lookup_token(&id, Some(&body.accessor)).await?;
    Ok(ok(token_data(&record)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    token: WireSecret,
    increment: Option<Duration>,
}

/// The body's token must be the caller's own.
fn own_token(headers: &HeaderMap, body: &TokenBody) -> Result<(), ApiError> {
    let own = token_of(headers)?.unwrap_or("");
    if body.increment.as_ref().is_some_and(|i| i.0.is_some()) {
        return Err(increment_refused());
    }
    if bool::from(own.as_bytes().ct_eq(body.token.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "coffer names other tokens by accessor: use auth/token/lookup-accessor, \
             auth/token/revoke-accessor, or the -self routes with that token",
        ))
    }
}

fn increment_refused() -> ApiError {
    ApiError::invalid(
        "increment is not supported: a renewal extends a token by its own ttl, up to its explicit_max_ttl",
    )
}

pub(super) async fn lookup(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    headers: HeaderMap,
    VaultJson(body): VaultJson<TokenBody>,
) -> Result<Response, ApiError> {
    own_token(&headers, &body)?;
    let record = st.coffer.lookup_token(&id, None).await?;
    Ok(ok(token_data(&record)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RenewSelfBody {
    increment: Option<Duration>,
}

pub(super) async fn renew_self(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    VaultJson(body): VaultJson<RenewSelfBody>,
) -> Result<Response, ApiError> {
    if body.increment.is_some_and(|i| i.0.is_some()) {
        return Err(increment_refused());
    }
    let record = st.coffer.renew_token(&id, None).await?;
    Ok(ok_auth(auth_block(String::new(), &record)))
}

pub(super) async fn renew(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    headers: HeaderMap,
    VaultJson(body): VaultJson<TokenBody>,
) -> Result<Response, ApiError> {
    own_token(&headers, &body)?;
    let record = st.coffer.renew_token(&id, None).await?;
    Ok(ok_auth(auth_block(String::new(), &record)))
}

pub(super) async fn revoke_self(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
) -> Result<Response, ApiError> {
    st.coffer.revoke_token(&id, None).await?;
    Ok(no_content())
}

pub(super) async fn revoke(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    headers: HeaderMap,
    VaultJson(body): VaultJson<TokenBody>,
) -> Result<Response, ApiError> {
    own_token(&headers, &body)?;
    st.coffer.revoke_token(&id, None).await?;
    Ok(no_content())
}

pub(super) async fn revoke_accessor(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    VaultJson(body): VaultJson<AccessorBody>,
) -> Result<Response, ApiError> {
    st.coffer.revoke_token(&id, Some(&body.accessor)).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginBody {
    password: WireSecret,
    totp: Option<String>,
}

pub(super) async fn userpass_login(
    State(st): State<AppState>,
    peer: Option<axum::Extension<crate::serve::Peer>>,
    Path(user): Path<String>,
    VaultJson(body): VaultJson<LoginBody>,
) -> Result<Response, ApiError> {
    coffer_core::audit::note_login(&user);
    if body
        .totp
        .as_deref()
        .is_some_and(|c| c.len() != 6 || !c.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::invalid(
            "totp must be the six digits of the current one-time code",
        ));
    }
    let source = peer.map(|axum::Extension(p)| crate::throttle::source_key(p.addr.ip()));
    let (raw, record) = st
        .coffer
        .login_from(
            &LoginRequest {
                user: &user,
                password: body.password.expose(),
                totp: body.totp.as_deref(),
            },
            source,
        )
        .await?;
    Ok(ok_auth(auth_block(raw.expose_secret().to_owned(), &record)))
}
