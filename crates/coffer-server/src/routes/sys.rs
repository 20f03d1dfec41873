//! The system: health and seal status, initialisation, unsealing and
//! sealing, the keyring, backups, the OpenAPI document, and the answers to
//! a request that matches no route.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use coffer_api::{self as api, codes};
use coffer_core::Coffer;

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody};
use crate::state::AppState;
use crate::timefmt::rfc3339;

async fn seal_status(coffer: &Coffer, auditor: &coffer_audit::Auditor) -> api::SealStatus {
    let storage_available = coffer.storage_available().await;
    let s = coffer.status();
    api::SealStatus {
        initialized: s.initialized,
        sealed: s.sealed,
        threshold: s.threshold,
        shares: s.shares,
        progress: s.progress,
        storage: s.storage.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        audit_available: auditor.healthy(),
        storage_available,
        memory_locked: crate::harden::memory_locked(),
    }
}

pub(super) async fn health(State(st): State<AppState>) -> Response {
    st.coffer.notice_initialization().await;
    let s = seal_status(&st.coffer, &st.auditor).await;
    // Load balancers route on the status code: 200 active, 503 sealed,
    // unable to audit (every other request would be refused) or without
    // its store (every request that touches it would fail), 501 not
    // initialized.
    let code = if !s.initialized {
        StatusCode::NOT_IMPLEMENTED
    } else if s.sealed || !s.audit_available || !s.storage_available {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(s)).into_response()
}

pub(super) async fn status(State(st): State<AppState>) -> Json<api::SealStatus> {
    st.coffer.notice_initialization().await;
    Json(seal_status(&st.coffer, &st.auditor).await)
}

pub(super) async fn init(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<api::InitRequest>,
) -> Result<Json<api::InitResponse>, ApiError> {
    let out = st.coffer.init(req.shares, req.threshold).await?;
    Ok(Json(api::InitResponse {
        unseal_keys: out
            .unseal_keys
            .iter()
            .map(|k| k.expose_secret().to_string())
            .collect(),
        root_token: out.root_token.expose_secret().to_string(),
    }))
}

/// One unseal key share, or `reset`. Shares are remembered with the
/// address they came from: a reset forgets only that address's shares, so
/// nobody can wipe an operator's progress from elsewhere.
pub(super) async fn unseal(
    State(st): State<AppState>,
    peer: Option<axum::Extension<crate::serve::Peer>>,
    JsonBody(req): JsonBody<api::UnsealRequest>,
) -> Result<Json<api::SealStatus>, ApiError> {
    // The server machine (loopback, or a peer at the address the connection
    // arrived at: the rule `init` follows) acts as this process does: its
    // keys are always tried and its reset clears everyone's.
    let source = peer.and_then(|axum::Extension(p)| {
        (!p.is_this_machine()).then(|| crate::throttle::source_key(p.addr.ip()))
    });
    if req.reset {
        st.coffer.unseal_reset_from(source).await?;
    } else {
        let key = req.key.as_deref().ok_or_else(|| {
            ApiError::invalid("provide \"key\" (an unseal key) or \"reset\": true")
        })?;
        st.coffer.unseal_from(key, source).await?;
    }
    Ok(Json(seal_status(&st.coffer, &st.auditor).await))
}

pub(super) async fn seal(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> Result<StatusCode, ApiError> {
    st.coffer.seal(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn keyring_response(k: coffer_core::KeyringStatus) -> api::KeyringResponse {
    api::KeyringResponse {
        active_key: k.active_key,
        keys: k
            .keys
            .into_iter()
            .map(|(id, created)| api::KeyInfo {
                id,
                created_at: rfc3339(created),
            })
            .collect(),
    }
}

pub(super) async fn rotate(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> Result<Json<api::KeyringResponse>, ApiError> {
    Ok(Json(keyring_response(st.coffer.rotate_keyring(&id).await?)))
}

pub(super) async fn keyring(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> Result<Json<api::KeyringResponse>, ApiError> {
    Ok(Json(keyring_response(st.coffer.keyring_status(&id)?)))
}

/// The node's metrics: `read` on `sys/metrics`.
pub(super) async fn metrics(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> Result<Response, ApiError> {
    st.coffer
        .authorize(&id, coffer_policy::Operation::ReadMetadata, "sys/metrics")?;
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        st.metrics.render(&st).await,
    )
        .into_response())
}

/// Streams an encrypted backup of the whole store (admin only).
pub(super) async fn backup(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> Result<Response, ApiError> {
    let rx = st.coffer.backup(&id).await?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (chunk.map(axum::body::Bytes::from), rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI).into_response()
}

pub(super) async fn not_found(uri: axum::http::Uri) -> ApiError {
    if uri.path().starts_with("/v1/") {
        return crate::vault::no_route();
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::NOT_FOUND,
        "no such API route; see /api/v1/openapi.json",
    )
}

pub(super) async fn method_not_allowed(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        if uri.path().starts_with("/v1/") {
            "unsupported operation"
        } else {
            "method not allowed on this route; see /api/v1/openapi.json"
        },
    )
}
