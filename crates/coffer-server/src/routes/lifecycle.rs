//! Routes of the secret lifecycle: rotation, promotion, expiry, lifecycle
//! rules, the rotation status report, rollback, copy and move, and
//! environment promotion. Thin, like every handler: parse, call one
//! `Coffer` method, shape the answer; the decisions are the core's.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use coffer_api::lifecycle as wire;
use coffer_core::duration::{format_duration_ms, parse_duration_ms, parse_time_ms};
use coffer_core::{Labels, RuleInfo, RuleSpec, now_ms};
use serde::Deserialize;

use super::secrets::{into_value, write_response};
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, JsonOrEmpty, UrlPath, UrlQuery};
use crate::state::AppState;
use crate::timefmt::rfc3339;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Labels on the wire.
pub(super) fn labels_info(l: &Labels) -> wire::LabelsInfo {
    wire::LabelsInfo {
        current: l.current,
        previous: l.previous,
        previous_until: l.previous_until.map(rfc3339),
        pending: l.pending,
        expires_at: l.expires_at.map(rfc3339),
    }
}

fn duration(what: &str, s: Option<&str>) -> Result<Option<i64>, ApiError> {
    s.map(|s| parse_duration_ms(s).map_err(|e| ApiError::invalid(format!("{what}: {e}"))))
        .transpose()
}

fn rotated(r: coffer_core::RotateReceipt) -> wire::RotateResponse {
    wire::RotateResponse {
        path: r.path,
        version: r.version,
        labels: labels_info(&r.labels),
        generated: r.generated,
        warnings: r.warnings,
    }
}

pub(super) async fn rotate(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    JsonOrEmpty(req): JsonOrEmpty<wire::RotateRequest>,
) -> ApiResult<wire::RotateResponse> {
    let wire::RotateRequest {
        value,
        generate,
        stage,
        grace,
        force,
    } = req;
    let request = coffer_core::RotateRequest {
        value: value.map(into_value),
        generate: generate
            .as_deref()
            .map(coffer_core::lifecycle::parse_generator)
            .transpose()?,
        stage,
        grace_ms: match grace.as_deref() {
            // "0s" is a valid grace here: retire the old value at once.
            Some("0" | "0s") => Some(0),
            g => duration("grace", g)?,
        },
        force,
    };
    Ok(Json(rotated(st.coffer.rotate(&id, &path, request).await?)))
}

pub(super) async fn manage_postgres(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    JsonBody(req): JsonBody<wire::PostgresManageRequest>,
) -> ApiResult<wire::PostgresManageResponse> {
    let request = coffer_core::pgroles::ManageRequest {
        admin: req.admin,
        roles: req.roles,
        connect_url: req.connect_url,
        generate: req
            .generate
            .as_deref()
            .map(coffer_core::lifecycle::parse_generator)
            .transpose()?,
        create_roles: req.create_roles,
        member_of: req.member_of,
    };
    let r = st.coffer.manage_postgres(&id, &path, request).await?;
    Ok(Json(wire::PostgresManageResponse {
        path: r.path,
        version: r.version,
        role: r.role,
        created: r.created,
    }))
}

pub(super) async fn postgres_info(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
) -> ApiResult<wire::PostgresInfo> {
    let info = st.coffer.postgres_info(&id, &path).await?;
    Ok(Json(wire::PostgresInfo {
        path: info.path,
        admin: info.roles.admin,
        roles: info.roles.roles,
        connect_url: info.roles.connect_url,
        labels: labels_info(&info.labels),
    }))
}

pub(super) async fn cancel(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
) -> ApiResult<wire::RotateResponse> {
    Ok(Json(rotated(st.coffer.cancel_rotation(&id, &path).await?)))
}

pub(super) async fn promote(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    JsonOrEmpty(req): JsonOrEmpty<wire::PromoteRequest>,
) -> ApiResult<wire::RotateResponse> {
    let grace = match req.grace.as_deref() {
        Some("0" | "0s") => Some(0),
        g => duration("grace", g)?,
    };
    Ok(Json(rotated(st.coffer.promote(&id, &path, grace).await?)))
}

pub(super) async fn expiry(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    JsonBody(req): JsonBody<wire::ExpiryRequest>,
) -> ApiResult<wire::RotateResponse> {
    let at = match (req.expires_at.as_deref(), req.expires_in.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("give expires_at or expires_in, not both"));
        }
        (Some(t), None) => {
            Some(parse_time_ms(t).map_err(|e| ApiError::invalid(format!("expires_at: {e}")))?)
        }
        (None, Some(d)) => duration("expires_in", Some(d))?.map(|d| now_ms().saturating_add(d)),
        (None, None) => None,
    };
    Ok(Json(rotated(st.coffer.set_expiry(&id, &path, at).await?)))
}

pub(super) async fn rollback(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    JsonBody(req): JsonBody<wire::RollbackRequest>,
) -> ApiResult<coffer_api::WriteResponse> {
    Ok(Json(write_response(
        st.coffer.rollback(&id, &path, req.version).await?,
    )))
}

pub(super) async fn copy(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<wire::CopyRequest>,
) -> ApiResult<coffer_api::WriteResponse> {
    Ok(Json(write_response(
        st.coffer
            .copy(&id, &req.from, &req.to, req.remove_source)
            .await?,
    )))
}

fn plan_to_wire(e: &coffer_core::PlanEntry) -> wire::PlanEntry {
    wire::PlanEntry {
        name: e.name.clone(),
        action: serde_json::to_value(e.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        from_version: e.from_version,
        to_version: e.to_version,
    }
}

fn plan_from_wire(e: wire::PlanEntry) -> Result<coffer_core::PlanEntry, ApiError> {
    Ok(coffer_core::PlanEntry {
        action: serde_json::from_value(serde_json::Value::String(e.action))
            .map_err(|_| ApiError::invalid("unknown plan action"))?,
        name: e.name,
        from_version: e.from_version,
        to_version: e.to_version,
    })
}

pub(super) async fn promote_env(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<wire::PromoteEnvRequest>,
) -> ApiResult<wire::PromoteEnvResponse> {
    let apply = req
        .apply
        .map(|plan| {
            plan.into_iter()
                .map(plan_from_wire)
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let (plan, written) = st
        .coffer
        .promote_env(&id, &req.from, &req.to, apply.as_deref())
        .await?;
    Ok(Json(wire::PromoteEnvResponse {
        plan: plan.iter().map(plan_to_wire).collect(),
        written: written.into_iter().map(write_response).collect(),
    }))
}

pub(super) async fn status_root(
    st: State<AppState>,
    auth: Auth,
) -> ApiResult<wire::StatusResponse> {
    status(st, auth, String::new()).await
}

pub(super) async fn status_prefix(
    st: State<AppState>,
    auth: Auth,
    UrlPath(prefix): UrlPath,
) -> ApiResult<wire::StatusResponse> {
    status(st, auth, prefix).await
}

pub(super) async fn status(
    State(st): State<AppState>,
    Auth(id): Auth,
    prefix: String,
) -> ApiResult<wire::StatusResponse> {
    let entries = st.coffer.rotation_status(&id, &prefix).await?;
    Ok(Json(wire::StatusResponse {
        secrets: entries
            .into_iter()
            .map(|e| wire::StatusEntry {
                path: e.path,
                status: e.standing.name().to_string(),
                current: e.current,
                pending: e.pending,
                changed_at: rfc3339(e.changed_at),
                rotate_every: e
                    .rotate_every_ms
                    .as_ref()
                    .map(|(ms, _)| format_duration_ms(*ms)),
                rule: e.rotate_every_ms.map(|(_, p)| p),
                due_at: e.due_at.map(rfc3339),
                automatic: e.automatic,
                expires_at: e.expires_at.map(rfc3339),
            })
            .collect(),
    }))
}

fn rule_info(r: RuleInfo) -> wire::RuleInfo {
    wire::RuleInfo {
        pattern: r.pattern,
        min_bits: r.spec.min_bits,
        rotate_every: r.spec.rotate_every_ms.map(format_duration_ms),
        generator: r.spec.generator,
        grace: r.spec.grace_ms.map(format_duration_ms),
        created_by: r.created_by,
        created_at: rfc3339(r.created_at),
    }
}

pub(super) async fn list_rules(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> ApiResult<wire::RuleListResponse> {
    Ok(Json(wire::RuleListResponse {
        rules: st
            .coffer
            .list_rules(&id)?
            .into_iter()
            .map(rule_info)
            .collect(),
    }))
}

pub(super) async fn set_rule(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<wire::RuleRequest>,
) -> ApiResult<wire::RuleInfo> {
    let spec = RuleSpec {
        min_bits: req.min_bits,
        rotate_every_ms: duration("rotate_every", req.rotate_every.as_deref())?,
        generator: req.generator,
        grace_ms: match req.grace.as_deref() {
            Some("0" | "0s") => Some(0),
            g => duration("grace", g)?,
        },
    };
    Ok(Json(rule_info(
        st.coffer.set_rule(&id, &req.pattern, spec).await?,
    )))
}

#[derive(Deserialize)]
pub(super) struct PatternQuery {
    pattern: String,
}

pub(super) async fn delete_rule(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlQuery(q): UrlQuery<PatternQuery>,
) -> Result<StatusCode, ApiError> {
    st.coffer.delete_rule(&id, &q.pattern).await?;
    Ok(StatusCode::NO_CONTENT)
}
