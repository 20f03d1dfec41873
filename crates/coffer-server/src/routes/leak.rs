//! Routes of leak detection and response: the keyed fingerprints a
//! scanner matches files against, and marking a version compromised. Thin,
//! like every handler; the decisions are the core's.

use axum::Json;
use axum::extract::State;
use coffer_api::leak as wire;

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, UrlPath};
use crate::state::AppState;
use crate::timefmt::rfc3339;

type ApiResult<T> = Result<Json<T>, ApiError>;

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub(super) async fn fingerprints(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<wire::FingerprintRequest>,
) -> ApiResult<wire::FingerprintResponse> {
    let prints = st.coffer.fingerprints(&id, &req.prefix).await?;
    Ok(Json(wire::FingerprintResponse {
        prefix: prints.prefix,
        algorithm: wire::FINGERPRINT_ALGORITHM.into(),
        key: hex(prints.key.expose_secret()),
        min_bits: coffer_core::strength::FINGERPRINT_MIN_BITS,
        tags: prints.tags.iter().map(|t| hex(t)).collect(),
        places: prints
            .places
            .into_iter()
            .map(|p| wire::FingerprintPlace {
                path: p.path,
                version: p.version,
                field: p.field,
                part: p.part.to_string(),
                compromised: p.compromised,
                label: hex(&p.label),
            })
            .collect(),
        secrets: prints.secrets,
        versions: prints.versions,
    }))
}

pub(super) async fn compromise(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    JsonBody(req): JsonBody<wire::CompromiseRequest>,
) -> ApiResult<wire::CompromiseResponse> {
    let r = st
        .coffer
        .mark_compromised(&id, &path, req.version, &req.reason)
        .await?;
    Ok(Json(wire::CompromiseResponse {
        path: r.path,
        version: r.version,
        compromised_at: rfc3339(r.mark.at),
        reason: r.mark.reason,
        newly_marked: r.newly_marked,
        is_current: r.is_current,
    }))
}
