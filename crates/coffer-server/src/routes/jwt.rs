//! Routes of machine logins with JWTs: JWT roles and the login. Every
//! decision is made in `coffer-core` (`coffer_core::jwt`); these handlers
//! only translate.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use coffer_api::{self as api, workload as wire};
use coffer_core::duration::format_duration_ms;
use coffer_core::jwt::{JwtRole, JwtRoleRequest, KeySource, Preset};
use coffer_core::{CoreError, InvalidInput, JwtRoleProblem};

use super::access::new_token;
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, UrlPath};
use crate::state::AppState;
use crate::timefmt::rfc3339;

type ApiResult<T> = Result<Json<T>, ApiError>;

fn role_response(r: JwtRole) -> wire::JwtRoleResponse {
    let (keys, jwks_url) = match &r.keys {
        KeySource::Discovery => ("discovery", None),
        KeySource::JwksUrl(u) => ("jwks_url", Some(u.clone())),
        KeySource::Jwks(_) => ("jwks", None),
    };
    let needs_binding = r.needs_binding();
    wire::JwtRoleResponse {
        needs_binding,
        name: r.name,
        preset: r.preset.map(|p| p.name().to_string()),
        issuer: r.issuer,
        audience: r.audience,
        keys: keys.into(),
        jwks_url,
        bound_claims: r.bound_claims,
        bound_globs: r.bound_globs,
        policies: r.policies,
        ttl: format_duration_ms(r.ttl_ms),
        updated_by: coffer_core::Actor::parse(&r.updated_by).describe(),
        updated_at: rfc3339(r.updated_at),
    }
}

pub(super) async fn list_roles(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> ApiResult<wire::JwtRoleListResponse> {
    let roles = st.coffer.list_jwt_roles(&id).await?;
    Ok(Json(wire::JwtRoleListResponse {
        needs_binding: roles
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.needs_binding()?)))
            .collect(),
        roles: roles.into_iter().map(|r| r.name).collect(),
    }))
}

pub(super) async fn read_role(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
) -> ApiResult<wire::JwtRoleResponse> {
    Ok(Json(role_response(
        st.coffer.read_jwt_role(&id, &name).await?,
    )))
}

pub(super) async fn write_role(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
    JsonBody(req): JsonBody<wire::JwtRoleWriteRequest>,
) -> ApiResult<wire::JwtRoleResponse> {
    let preset = match req.preset.as_deref() {
        None => None,
        Some("github") => Some(Preset::Github),
        Some("gitlab") => Some(Preset::Gitlab),
        Some("kubernetes") => Some(Preset::Kubernetes),
        Some(_) => {
            return Err(
                CoreError::Invalid(InvalidInput::JwtRole(JwtRoleProblem::Field {
                    what: "the preset",
                    why: "it is github, gitlab or kubernetes",
                }))
                .into(),
            );
        }
    };
    let request = JwtRoleRequest {
        preset,
        issuer: req.issuer,
        audience: req.audience,
        jwks_url: req.jwks_url,
        jwks: req.jwks,
        bound_claims: req.bound_claims,
        bound_globs: req.bound_globs,
        policies: req.policies,
        ttl: req.ttl,
    };
    Ok(Json(role_response(
        st.coffer.write_jwt_role(&id, &name, &request).await?,
    )))
}

pub(super) async fn delete_role(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(name): UrlPath,
) -> Result<StatusCode, ApiError> {
    st.coffer.delete_jwt_role(&id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn login(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<wire::JwtLoginRequest>,
) -> ApiResult<api::NewToken> {
    let (raw, record, needs_binding) = st
        .coffer
        .login_jwt(&req.role, req.jwt.expose(), st.jwks.as_ref())
        .await?;
    let mut answer = new_token(raw, &record);
    answer.needs_binding = needs_binding;
    Ok(Json(answer))
}
