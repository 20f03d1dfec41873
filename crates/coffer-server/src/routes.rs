//! The native API's routes and handlers (`/api/v1/`).
//!
//! Handlers are thin: extract, call one `Coffer` method, shape the answer.
//! Every handler that touches secrets takes an [`Auth`] (the caller's
//! identity); the authorization decision itself happens in `coffer-core`.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use coffer_api::{self as api, ValueRef, WireValue, codes};
use coffer_core::{At, Coffer, CoreError, Identity, Label, ListOptions, SecretValue};
use coffer_crypto::SecretString;
use coffer_store::VersionState;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, json_error};

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The application.
    pub coffer: Arc<Coffer>,
    /// The audit log every request is recorded in.
    pub auditor: Arc<coffer_audit::Auditor>,
}

/// The OpenAPI description of this API, served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Builds the router. `options.body_limit` caps request bodies (413 beyond
/// it); the rest says which requests reach a handler at all (see
/// [`crate::RouterOptions`]).
pub fn router(state: AppState, options: crate::RouterOptions) -> Router {
    let body_limit = options.body_limit;
    let secrets = Router::new()
        .route(
            "/api/v1/secrets/{*path}",
            get(read_secret).put(write_secret).delete(delete_secret),
        )
        .route("/api/v1/bundle", post(bundle))
        .route("/api/v1/import", post(import))
        .route("/api/v1/metadata/{*path}", get(metadata))
        .route("/api/v1/list", get(list_root))
        .route("/api/v1/list/{*prefix}", get(list_prefix))
        .route("/api/v1/undelete/{*path}", post(undelete))
        .route("/api/v1/destroy/{*path}", post(destroy));
    let sys = Router::new()
        .route("/api/v1/sys/health", get(health))
        .route("/api/v1/sys/status", get(status))
        .route("/api/v1/sys/init", post(init))
        .route("/api/v1/sys/unseal", post(unseal))
        .route("/api/v1/sys/seal", post(seal))
        .route("/api/v1/sys/rotate", post(rotate))
        .route("/api/v1/sys/keyring", get(keyring))
        .route("/api/v1/sys/backup", get(backup))
        .route("/api/v1/openapi.json", get(openapi));
    secrets
        .merge(sys)
        .merge(crate::access_routes::routes())
        .merge(crate::lifecycle_routes::routes())
        .merge(crate::audit::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(crate::request_id::RequestLayer {
            edge: Arc::new(crate::edge::Edge::new(options)),
            state: state.clone(),
        })
        .with_state(state)
}

// ---- extractors ----------------------------------------------------------------

/// The authenticated caller. A missing or bad token is 401; a sealed server
/// answers 503 before looking at the token at all.
pub struct Auth(pub Identity);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let raw = bearer_token(&parts.headers).unwrap_or("");
        // The peer address of the connection; forwarding headers are not
        // trusted, so a network-bound token behind a proxy sees the proxy.
        let source = parts
            .extensions
            .get::<crate::serve::Peer>()
            .map(|p| p.addr.ip());
        Ok(Auth(state.coffer.authenticate(raw, source).await?))
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A JSON body, parsed without requiring a content type and with errors that
/// never quote the body.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        codes::TOO_LARGE,
                        "request body is larger than the server accepts",
                    )
                } else {
                    ApiError::invalid("request body could not be read")
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| json_error(&e))
    }
}

/// An optional JSON body: an empty body means `T::default()`.
pub struct JsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for JsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
        if empty {
            return Ok(JsonOrEmpty(T::default()));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::invalid("request body could not be read"))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonOrEmpty(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(JsonOrEmpty)
            .map_err(|e| json_error(&e))
    }
}

/// The `{*path}` part of the URL, percent-decoded.
pub struct UrlPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for UrlPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(p)) => Ok(UrlPath(p)),
            Err(_) => Err(ApiError::invalid(
                "the path in the URL is not valid percent-encoded UTF-8",
            )),
        }
    }
}

/// Query parameters with errors in the API's format.
pub struct UrlQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for UrlQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(UrlQuery(q)),
            Err(e) => {
                // The parser's message may quote the value it refused.
                let detail = e.body_text();
                Err(ApiError::invalid(
                    if coffer_policy::contains_credential(&detail) {
                        "invalid query parameters (a value looks like a coffer token; not shown)"
                            .to_string()
                    } else {
                        format!("invalid query parameters: {detail}")
                    },
                ))
            }
        }
    }
}

// ---- helpers -------------------------------------------------------------------

pub use crate::timefmt::rfc3339;

fn seal_status(coffer: &Coffer, auditor: &coffer_audit::Auditor) -> api::SealStatus {
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
    }
}

fn parse_versions(list: Option<&str>) -> Result<Vec<u64>, ApiError> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ApiError::invalid("versions must be positive integers, separated by commas")
                })
        })
        .collect()
}

/// A wire value moved into a core value.
pub(crate) fn into_value(wire: WireValue) -> SecretValue {
    into_secret_value(wire)
}

fn into_secret_value(wire: WireValue) -> SecretValue {
    // Move the strings out rather than copying them; `WireValue`'s Drop wipes
    // what is left (the emptied shells).
    let mut wire = wire;
    match &mut wire {
        WireValue::Text(s) => SecretValue::Text(SecretString::new(std::mem::take(s))),
        WireValue::Fields(f) => SecretValue::Fields(
            std::mem::take(f)
                .into_iter()
                .map(|(k, mut v)| (k, SecretString::new(std::mem::take(&mut v))))
                .collect(),
        ),
    }
}

// ---- system --------------------------------------------------------------------

async fn health(State(st): State<AppState>) -> Response {
    st.coffer.notice_initialization().await;
    let s = seal_status(&st.coffer, &st.auditor);
    // Load balancers route on the status code: 200 active, 503 sealed or
    // unable to audit (every other request would be refused), 501 not
    // initialized.
    let code = if !s.initialized {
        StatusCode::NOT_IMPLEMENTED
    } else if s.sealed || !s.audit_available {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(s)).into_response()
}

async fn status(State(st): State<AppState>) -> Json<api::SealStatus> {
    st.coffer.notice_initialization().await;
    Json(seal_status(&st.coffer, &st.auditor))
}

async fn init(
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
async fn unseal(
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
    Ok(Json(seal_status(&st.coffer, &st.auditor)))
}

async fn seal(State(st): State<AppState>, Auth(id): Auth) -> Result<StatusCode, ApiError> {
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

async fn rotate(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> Result<Json<api::KeyringResponse>, ApiError> {
    Ok(Json(keyring_response(st.coffer.rotate_keyring(&id).await?)))
}

async fn keyring(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> Result<Json<api::KeyringResponse>, ApiError> {
    Ok(Json(keyring_response(st.coffer.keyring_status(&id)?)))
}

/// Streams an encrypted backup of the whole store (admin only).
async fn backup(State(st): State<AppState>, Auth(id): Auth) -> Result<Response, ApiError> {
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

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::NOT_FOUND,
        "no such API route; see /api/v1/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        "method not allowed on this route; see /api/v1/openapi.json",
    )
}

// ---- secrets -------------------------------------------------------------------

#[derive(Deserialize)]
struct ReadQuery {
    version: Option<u64>,
    label: Option<String>,
}

/// The version a read asks for: a number or a label, not both.
pub(crate) fn read_at(version: Option<u64>, label: Option<&str>) -> Result<At, ApiError> {
    match (version, label) {
        (Some(_), Some(_)) => Err(ApiError::invalid("ask for a version or a label, not both")),
        (v, None) => Ok(At::version(v)),
        (None, Some(l)) => Label::parse(l)
            .map(At::Label)
            .ok_or_else(|| ApiError::invalid("unknown label; use current, previous or pending")),
    }
}

async fn read_secret(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    UrlQuery(q): UrlQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    let at = read_at(q.version, q.label.as_deref())?;
    let read = st.coffer.read_at(&id, &path, at).await?;
    let body = api::ReadResponse {
        path: read.path.clone(),
        version: read.version,
        value: value_ref(&read.value),
        created_at: rfc3339(read.created_at),
        created_by: read.created_by.name.clone(),
        created_by_kind: read.created_by.kind.clone(),
        created_by_accessor: read.created_by.accessor.clone(),
        label: read.label.map(|l| l.name().to_string()),
    };
    Ok(Json(body).into_response())
}

async fn bundle(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<api::BundleRequest>,
) -> Result<Response, ApiError> {
    let paths = req
        .secrets
        .into_iter()
        .map(|r| Ok((r.path, read_at(r.version, r.label.as_deref())?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let reads = st.coffer.read_many(&id, &req.prefixes, &paths).await?;
    let no_offline_copy = !st
        .coffer
        .offline_copy_allowed(&id, reads.iter().map(|r| r.path.as_str()));
    let body = api::BundleResponse {
        no_offline_copy,
        secrets: reads
            .iter()
            .map(|read| api::ReadResponse {
                path: read.path.clone(),
                version: read.version,
                value: value_ref(&read.value),
                created_at: rfc3339(read.created_at),
                created_by: read.created_by.name.clone(),
                created_by_kind: read.created_by.kind.clone(),
                created_by_accessor: read.created_by.accessor.clone(),
                label: read.label.map(|l| l.name().to_string()),
            })
            .collect(),
    };
    Ok(Json(body).into_response())
}

async fn import(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<api::ImportRequest>,
) -> Result<Json<api::ImportResponse>, ApiError> {
    let writes: Vec<(String, SecretValue, Option<u64>)> = req
        .secrets
        .into_iter()
        .map(|e| (e.path, into_secret_value(e.value), e.cas))
        .collect();
    let receipts = st.coffer.write_many(&id, &writes).await?;
    Ok(Json(api::ImportResponse {
        written: receipts.into_iter().map(write_response).collect(),
    }))
}

/// A write's receipt on the wire.
pub(crate) fn write_response(r: coffer_core::WriteReceipt) -> api::WriteResponse {
    api::WriteResponse {
        path: r.path,
        version: r.version,
        created_at: rfc3339(r.created_at),
        warnings: r.warnings,
    }
}

fn value_ref(value: &SecretValue) -> ValueRef<'_> {
    match value {
        SecretValue::Text(t) => ValueRef::Text(t.expose_secret()),
        SecretValue::Fields(f) => ValueRef::Fields(
            f.iter()
                .map(|(k, v)| (k.as_str(), v.expose_secret()))
                .collect(),
        ),
    }
}

async fn write_secret(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    JsonBody(req): JsonBody<api::WriteRequest>,
) -> Result<Json<api::WriteResponse>, ApiError> {
    let api::WriteRequest {
        value,
        generate,
        cas,
    } = req;
    let receipt = match (value, generate) {
        (Some(value), None) => {
            let value = into_secret_value(value);
            st.coffer.write(&id, &path, &value, cas).await?
        }
        (None, Some(spec)) => {
            let spec = coffer_core::lifecycle::parse_generator(&spec)?;
            st.coffer.write_generated(&id, &path, &spec, cas).await?
        }
        _ => {
            return Err(ApiError::invalid(
                "give either a value or a generator spec (generate)",
            ));
        }
    };
    Ok(Json(write_response(receipt)))
}

#[derive(Deserialize)]
struct VersionsQuery {
    versions: Option<String>,
}

async fn delete_secret(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    UrlQuery(q): UrlQuery<VersionsQuery>,
) -> Result<Json<api::VersionsResponse>, ApiError> {
    let versions = parse_versions(q.versions.as_deref())?;
    let done = st.coffer.delete(&id, &path, &versions).await?;
    Ok(Json(versions_response(&path, done)))
}

fn versions_response(path: &str, versions: Vec<u64>) -> api::VersionsResponse {
    api::VersionsResponse {
        path: path.trim_start_matches('/').to_string(),
        versions,
    }
}

async fn undelete(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    JsonOrEmpty(body): JsonOrEmpty<api::VersionsRequest>,
) -> Result<Json<api::VersionsResponse>, ApiError> {
    let versions = body.versions;
    let done = st.coffer.undelete(&id, &path, &versions).await?;
    Ok(Json(versions_response(&path, done)))
}

async fn destroy(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    JsonOrEmpty(body): JsonOrEmpty<api::VersionsRequest>,
) -> Result<Json<api::VersionsResponse>, ApiError> {
    let versions = body.versions;
    let done = st.coffer.destroy(&id, &path, &versions).await?;
    Ok(Json(versions_response(&path, done)))
}

async fn metadata(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
) -> Result<Json<api::MetadataResponse>, ApiError> {
    let md = st.coffer.metadata(&id, &path).await?;
    Ok(Json(api::MetadataResponse {
        path: md.meta.path.clone(),
        current_version: md.meta.current_version,
        deleted: !md.meta.live,
        created_at: rfc3339(md.meta.created_at),
        updated_at: rfc3339(md.meta.updated_at),
        versions: md
            .versions
            .into_iter()
            .map(|v| {
                let (state, changed) = match v.state {
                    VersionState::Active => ("active", None),
                    VersionState::Deleted(t) => ("deleted", Some(rfc3339(t))),
                    VersionState::Destroyed(t) => ("destroyed", Some(rfc3339(t))),
                };
                api::VersionInfo {
                    version: v.version,
                    created_at: rfc3339(v.created_at),
                    created_by: v.created_by.name,
                    created_by_kind: v.created_by.kind,
                    created_by_accessor: v.created_by.accessor,
                    state: state.to_string(),
                    state_changed_at: changed,
                    key_id: v.key_id,
                }
            })
            .collect(),
        labels: Some(crate::lifecycle_routes::labels_info(&md.labels)),
    }))
}

#[derive(Deserialize)]
struct ListParams {
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    include_deleted: bool,
    after: Option<String>,
    limit: Option<usize>,
}

async fn list_root(
    st: State<AppState>,
    auth: Auth,
    q: UrlQuery<ListParams>,
) -> Result<Json<api::ListResponse>, ApiError> {
    list(st, auth, String::new(), q).await
}

async fn list_prefix(
    st: State<AppState>,
    auth: Auth,
    UrlPath(prefix): UrlPath,
    q: UrlQuery<ListParams>,
) -> Result<Json<api::ListResponse>, ApiError> {
    list(st, auth, prefix, q).await
}

async fn list(
    State(st): State<AppState>,
    Auth(id): Auth,
    prefix: String,
    UrlQuery(q): UrlQuery<ListParams>,
) -> Result<Json<api::ListResponse>, ApiError> {
    let page = st
        .coffer
        .list(
            &id,
            &prefix,
            ListOptions {
                recursive: q.recursive,
                include_deleted: q.include_deleted,
                after: q.after,
                limit: q.limit.unwrap_or(0),
            },
        )
        .await?;
    let canonical = coffer_core::ListPrefix::parse(&prefix).map_err(CoreError::from)?;
    Ok(Json(api::ListResponse {
        prefix: canonical.as_str().to_string(),
        entries: page
            .entries
            .into_iter()
            .map(|e| api::ListEntry {
                name: e.name,
                folder: e.folder,
            })
            .collect(),
        next: page.next,
    }))
}
