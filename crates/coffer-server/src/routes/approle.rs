//! Routes of app roles: managing roles and secret ids, and the machine
//! login. Every decision is made in `coffer-core` (`approle.rs`); these
//! handlers only translate.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use coffer_api::{self as api, WireSecret};
use coffer_core::approle::{AppRoleInfo, AppRoleLogin, AppRoleSpec, SecretIdInfo};
use coffer_core::duration::format_duration_ms;

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, UrlPath};
use crate::state::AppState;
use crate::timefmt::rfc3339;

type ApiResult<T> = Result<Json<T>, ApiError>;

fn role_info(r: &AppRoleInfo) -> api::AppRoleInfo {
    api::AppRoleInfo {
        name: r.name.clone(),
        role_id: r.role_id.clone(),
        policies: r.policies.clone(),
        token_ttl: format_duration_ms(r.token_ttl_ms),
        token_uses: r.token_uses,
        secret_id_ttl: format_duration_ms(r.secret_id_ttl_ms),
        secret_id_uses: r.secret_id_uses,
        cidrs: r.cidrs.clone(),
        created_by: r.created_by.clone(),
        created_at: rfc3339(r.created_at),
    }
}

fn secret_id_info(s: &SecretIdInfo) -> api::SecretIdInfo {
    api::SecretIdInfo {
        accessor: s.accessor.clone(),
        created_at: rfc3339(s.created_at),
        expires_at: rfc3339(s.expires_at),
        uses_left: s.uses_left,
    }
}

pub(super) async fn list(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> ApiResult<api::AppRoleListResponse> {
    let roles = st.coffer.list_approles(&id).await?;
    Ok(Json(api::AppRoleListResponse {
        roles: roles.iter().map(role_info).collect(),
    }))
}

pub(super) async fn read(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
) -> ApiResult<api::AppRoleInfo> {
    Ok(Json(role_info(&st.coffer.read_approle(&id, &name).await?)))
}

pub(super) async fn create(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
    JsonBody(req): JsonBody<api::AppRoleCreateRequest>,
) -> ApiResult<api::AppRoleInfo> {
    let spec = AppRoleSpec {
        policies: req.policies,
        token_ttl: req.token_ttl,
        token_uses: req.token_uses,
        secret_id_ttl: req.secret_id_ttl,
        secret_id_uses: req.secret_id_uses,
        cidrs: req.cidrs,
    };
    Ok(Json(role_info(
        &st.coffer.create_approle(&id, &name, &spec).await?,
    )))
}

pub(super) async fn delete(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
) -> Result<StatusCode, ApiError> {
    st.coffer.delete_approle(&id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn create_secret_id(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
) -> ApiResult<api::NewSecretId> {
    let new = st.coffer.create_secret_id(&id, &name).await?;
    Ok(Json(api::NewSecretId {
        secret_id: WireSecret(new.secret_id.expose_secret().to_string()),
        info: secret_id_info(&new.info),
    }))
}

pub(super) async fn list_secret_ids(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
) -> ApiResult<api::SecretIdListResponse> {
    let ids = st.coffer.list_secret_ids(&id, &name).await?;
    Ok(Json(api::SecretIdListResponse {
        secret_ids: ids.iter().map(secret_id_info).collect(),
    }))
}

pub(super) async fn revoke_secret_id(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
    JsonBody(req): JsonBody<api::SecretIdRevokeRequest>,
) -> Result<StatusCode, ApiError> {
    st.coffer
        .revoke_secret_id(&id, &name, &req.accessor)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn login(
    State(st): State<AppState>,
    peer: Option<axum::Extension<crate::serve::Peer>>,
    JsonBody(req): JsonBody<api::AppRoleLoginRequest>,
) -> ApiResult<api::NewToken> {
    // The connection's address, as for a network-bound token: forwarding
    // headers are not trusted.
    let source = peer.map(|axum::Extension(p)| p.addr.ip());
    let (raw, record) = st
        .coffer
        .login_approle(&AppRoleLogin {
            role_id: &req.role_id,
            secret_id: req.secret_id.expose(),
            source,
        })
        .await?;
    Ok(Json(super::access::new_token(raw, &record)))
}
