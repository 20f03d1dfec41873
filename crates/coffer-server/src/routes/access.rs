//! Routes of the access model: policies, tokens, login, invitations, users,
//! one-time codes, protected prefixes and break-glass. Every decision is made
//! in `coffer-core`; these handlers only translate.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use coffer_api::{self as api, WireSecret};
use coffer_core::duration::format_duration_ms;
use coffer_core::{
    BreakglassGrant, BreakglassRequest, InviteRequest, LoginRequest, TokenRequest, TokenView,
    UserView,
};
use coffer_store::TokenKind;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, UrlPath, UrlQuery};
use crate::state::AppState;
use crate::timefmt::rfc3339;

type ApiResult<T> = Result<Json<T>, ApiError>;

fn token_info(t: &TokenView) -> api::TokenInfo {
    api::TokenInfo {
        accessor: t.accessor.clone(),
        display_name: t.display_name.clone(),
        policies: t.policies.clone(),
        kind: match t.kind {
            TokenKind::Service => "service",
            TokenKind::Human => "human",
        }
        .into(),
        user: t.user.clone(),
        created_at: rfc3339(t.created_at),
        expires_at: t.expires_at.map(rfc3339),
        max_expires_at: t.max_expires_at.map(rfc3339),
        ttl: t.ttl_ms.map(format_duration_ms),
        uses_limit: t.uses_limit,
        uses_left: t.uses_left,
        cidrs: t.cidrs.clone(),
        parent: t.parent.clone(),
        workload: t.workload.as_ref().map(|w| api::workload::WorkloadInfo {
            method: w.method.clone(),
            role: w.role.clone(),
            issuer: w.issuer.clone(),
            subject: w.subject.clone(),
            claims: w.claims.clone(),
        }),
    }
}

fn user_info(u: &UserView) -> api::UserInfo {
    api::UserInfo {
        name: u.name.clone(),
        policies: u.policies.clone(),
        disabled: u.disabled,
        created_at: rfc3339(u.created_at),
        invited_by: u.invited_by.clone(),
        last_login_at: u.last_login_at.map(rfc3339),
        totp: u.totp,
    }
}

fn grant_info(g: &BreakglassGrant) -> api::BreakglassGrant {
    api::BreakglassGrant {
        id: g.id.clone(),
        user: g.user.clone(),
        accessor: g.accessor.clone(),
        path: g.target.clone(),
        reason: g.reason.clone(),
        created_at: rfc3339(g.created_at),
        expires_at: rfc3339(g.expires_at),
    }
}

pub(super) fn new_token(raw: coffer_crypto::SecretString, record: &TokenView) -> api::NewToken {
    api::NewToken {
        token: WireSecret(raw.expose_secret().to_string()),
        info: token_info(record),
        needs_binding: None,
    }
}

// ---- policies ------------------------------------------------------------------

pub(super) async fn list_policies(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> ApiResult<api::PolicyListResponse> {
    Ok(Json(api::PolicyListResponse {
        policies: st.coffer.list_policies(&id).await?,
    }))
}

fn policy_response(p: coffer_core::PolicyInfo) -> api::PolicyResponse {
    api::PolicyResponse {
        name: p.name,
        policy: p.source,
        updated_by: p.updated_by,
        updated_at: rfc3339(p.updated_at),
    }
}

pub(super) async fn read_policy(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
) -> ApiResult<api::PolicyResponse> {
    Ok(Json(policy_response(
        st.coffer.read_policy(&id, &name).await?,
    )))
}

pub(super) async fn write_policy(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
    JsonBody(req): JsonBody<api::PolicyWriteRequest>,
) -> ApiResult<api::PolicyResponse> {
    Ok(Json(policy_response(
        st.coffer.write_policy(&id, &name, &req.policy).await?,
    )))
}

pub(super) async fn delete_policy(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
) -> Result<StatusCode, ApiError> {
    st.coffer.delete_policy(&id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- tokens --------------------------------------------------------------------

pub(super) async fn create_token(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<api::TokenCreateRequest>,
) -> ApiResult<api::NewToken> {
    let (raw, record) = st
        .coffer
        .create_token(
            &id,
            &TokenRequest {
                policies: req.policies,
                ttl: req.ttl,
                max_ttl: req.max_ttl,
                uses: req.uses,
                cidrs: req.cidrs,
                display_name: req.display_name,
            },
        )
        .await?;
    Ok(Json(new_token(raw, &record)))
}

pub(super) async fn list_tokens(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> ApiResult<api::TokenListResponse> {
    Ok(Json(api::TokenListResponse {
        tokens: st
            .coffer
            .list_tokens(&id)
            .await?
            .iter()
            .map(token_info)
            .collect(),
    }))
}

pub(super) async fn lookup_token(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(accessor): UrlPath,
) -> ApiResult<api::TokenInfo> {
    Ok(Json(token_info(
        &st.coffer.lookup_token(&id, Some(&accessor)).await?,
    )))
}

pub(super) async fn lookup_self(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> ApiResult<api::TokenInfo> {
    Ok(Json(token_info(&st.coffer.lookup_token(&id, None).await?)))
}

pub(super) async fn renew_token(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(accessor): UrlPath,
) -> ApiResult<api::TokenInfo> {
    Ok(Json(token_info(
        &st.coffer.renew_token(&id, Some(&accessor)).await?,
    )))
}

pub(super) async fn renew_self(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> ApiResult<api::TokenInfo> {
    Ok(Json(token_info(&st.coffer.renew_token(&id, None).await?)))
}

pub(super) async fn revoke_token(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(accessor): UrlPath,
) -> Result<StatusCode, ApiError> {
    st.coffer.revoke_token(&id, Some(&accessor)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn revoke_self(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> Result<StatusCode, ApiError> {
    st.coffer.revoke_token(&id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- people --------------------------------------------------------------------

pub(super) async fn login(
    State(st): State<AppState>,
    peer: Option<axum::Extension<crate::serve::Peer>>,
    JsonBody(req): JsonBody<api::LoginRequest>,
) -> ApiResult<api::NewToken> {
    coffer_core::audit::note_login(&req.user);
    // Counted like the per-source backoff: an IPv4 address, an IPv6 /64.
    let source = peer.map(|axum::Extension(p)| crate::throttle::source_key(p.addr.ip()));
    let (raw, record) = st
        .coffer
        .login_from(
            &LoginRequest {
                user: &req.user,
                password: req.password.expose(),
                totp: req.totp.as_deref(),
            },
            source,
        )
        .await?;
    Ok(Json(new_token(raw, &record)))
}

pub(super) async fn create_invite(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<api::InviteCreateRequest>,
) -> ApiResult<api::InviteCreateResponse> {
    let (code, expires_at) = st
        .coffer
        .create_invite(
            &id,
            &InviteRequest {
                policies: req.policies,
                ttl: req.ttl,
            },
        )
        .await?;
    Ok(Json(api::InviteCreateResponse {
        code: WireSecret(code.expose_secret().to_string()),
        expires_at: rfc3339(expires_at),
    }))
}

pub(super) async fn accept_invite(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<api::InviteAcceptRequest>,
) -> ApiResult<api::UserInfo> {
    coffer_core::audit::note_login(&req.user);
    let user = st
        .coffer
        .accept_invite(req.code.expose(), &req.user, req.password.expose())
        .await?;
    Ok(Json(user_info(&user)))
}

pub(super) async fn enroll_totp(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> ApiResult<api::TotpEnrollResponse> {
    let e = st.coffer.enroll_totp(&id).await?;
    Ok(Json(api::TotpEnrollResponse {
        secret: WireSecret(e.secret.expose_secret().to_string()),
        uri: WireSecret(e.uri.expose_secret().to_string()),
    }))
}

pub(super) async fn confirm_totp(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<api::TotpCodeRequest>,
) -> Result<StatusCode, ApiError> {
    st.coffer.confirm_totp(&id, &req.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn disable_totp(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<api::TotpCodeRequest>,
) -> Result<StatusCode, ApiError> {
    st.coffer.disable_totp(&id, &req.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_users(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> ApiResult<api::UserListResponse> {
    Ok(Json(api::UserListResponse {
        users: st
            .coffer
            .list_users(&id)
            .await?
            .iter()
            .map(user_info)
            .collect(),
    }))
}

pub(super) async fn get_user(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
) -> ApiResult<api::UserInfo> {
    Ok(Json(user_info(&st.coffer.get_user(&id, &name).await?)))
}

pub(super) async fn disable_user(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
) -> ApiResult<api::UserInfo> {
    Ok(Json(user_info(
        &st.coffer.set_user_disabled(&id, &name, true).await?,
    )))
}

pub(super) async fn enable_user(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
) -> ApiResult<api::UserInfo> {
    Ok(Json(user_info(
        &st.coffer.set_user_disabled(&id, &name, false).await?,
    )))
}

pub(super) async fn update_user(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
    JsonBody(req): JsonBody<api::UserUpdateRequest>,
) -> ApiResult<api::UserInfo> {
    Ok(Json(user_info(
        &st.coffer
            .update_user(&id, &name, req.policies.as_deref(), req.reset_totp)
            .await?,
    )))
}

pub(super) async fn delete_user(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
) -> Result<StatusCode, ApiError> {
    st.coffer.delete_user(&id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- protected prefixes and break-glass ------------------------------------------

fn protected_info(p: coffer_core::ProtectedInfo) -> api::ProtectedInfo {
    api::ProtectedInfo {
        pattern: p.pattern,
        created_by: p.created_by,
        created_at: rfc3339(p.created_at),
    }
}

pub(super) async fn list_protected(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> ApiResult<api::ProtectedListResponse> {
    Ok(Json(api::ProtectedListResponse {
        protected: st
            .coffer
            .list_protected(&id)
            .await?
            .into_iter()
            .map(protected_info)
            .collect(),
    }))
}

pub(super) async fn protect(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<api::ProtectRequest>,
) -> ApiResult<api::ProtectedInfo> {
    Ok(Json(protected_info(
        st.coffer.protect(&id, &req.pattern).await?,
    )))
}

#[derive(Deserialize)]
pub(super) struct PatternQuery {
    pattern: String,
}

pub(super) async fn unprotect(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlQuery(q): UrlQuery<PatternQuery>,
) -> Result<StatusCode, ApiError> {
    st.coffer.unprotect(&id, &q.pattern).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn breakglass(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<api::BreakglassRequest>,
) -> ApiResult<api::BreakglassGrant> {
    let grant = st
        .coffer
        .breakglass(
            &id,
            &BreakglassRequest {
                path: req.path,
                reason: req.reason,
                ttl: req.ttl,
            },
        )
        .await?;
    Ok(Json(grant_info(&grant)))
}

pub(super) async fn list_breakglass(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> ApiResult<api::BreakglassListResponse> {
    Ok(Json(api::BreakglassListResponse {
        grants: st
            .coffer
            .list_breakglass(&id)
            .await?
            .iter()
            .map(grant_info)
            .collect(),
    }))
}
