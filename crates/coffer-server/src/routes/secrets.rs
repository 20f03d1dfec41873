//! Secrets: reads (one, or many in a bundle), writes (one, or many in an
//! import), soft deletion, destruction, metadata and listings.
//!
//! Handlers are thin: extract, call one `Coffer` method, shape the answer.
//! Every handler that touches secrets takes an [`Auth`] (the caller's
//! identity); the authorization decision itself happens in `coffer-core`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use coffer_api::{self as api, ValueRef, WireValue};
use coffer_core::{At, CoreError, Label, ListOptions, SecretValue};
use coffer_crypto::SecretString;
use coffer_store::VersionState;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, JsonOrEmpty, UrlPath, UrlQuery};
use crate::state::AppState;
use crate::timefmt::rfc3339;

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
pub(super) fn into_value(wire: WireValue) -> SecretValue {
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

#[derive(Deserialize)]
pub(super) struct ReadQuery {
    version: Option<u64>,
    label: Option<String>,
}

/// The version a read asks for: a number or a label, not both.
fn read_at(version: Option<u64>, label: Option<&str>) -> Result<At, ApiError> {
    match (version, label) {
        (Some(_), Some(_)) => Err(ApiError::invalid("ask for a version or a label, not both")),
        (v, None) => Ok(At::version(v)),
        (None, Some(l)) => Label::parse(l)
            .map(At::Label)
            .ok_or_else(|| ApiError::invalid("unknown label; use current, previous or pending")),
    }
}

pub(super) async fn read_secret(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    UrlQuery(q): UrlQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    let at = read_at(q.version, q.label.as_deref())?;
    let read = st.coffer.read_at(&id, &path, at).await?;
    Ok(Json(read_response(&read)).into_response())
}

pub(super) async fn bundle(
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
        secrets: reads.iter().map(read_response).collect(),
    };
    Ok(Json(body).into_response())
}

pub(super) async fn import(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<api::ImportRequest>,
) -> Result<Json<api::ImportResponse>, ApiError> {
    let writes: Vec<(String, SecretValue, Option<u64>)> = req
        .secrets
        .into_iter()
        .map(|e| (e.path, into_value(e.value), e.cas))
        .collect();
    let receipts = st.coffer.write_many(&id, &writes).await?;
    Ok(Json(api::ImportResponse {
        written: receipts.into_iter().map(write_response).collect(),
    }))
}

pub(super) async fn import_history(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    JsonBody(req): JsonBody<api::HistoryRequest>,
) -> Result<Json<api::HistoryResponse>, ApiError> {
    let time = |n: u64, what: &str, t: &str| {
        coffer_core::duration::parse_time_ms(t)
            .map_err(|why| ApiError::invalid(format!("version {n}: {what}: {why}")))
    };
    let dry_run = req.dry_run;
    let mut versions = Vec::with_capacity(req.versions.len());
    for (i, entry) in req.versions.into_iter().enumerate() {
        let n = i as u64 + 1;
        if entry.version != n {
            return Err(ApiError::invalid(format!(
                "versions are numbered from 1 in order: entry {n} says {}",
                entry.version
            )));
        }
        let created_at = time(n, "created_at", &entry.created_at)?;
        let state_at = entry
            .state_at
            .as_deref()
            .map(|t| time(n, "state_at", t))
            .transpose()?;
        let state = match (entry.state.as_str(), state_at) {
            ("active", None) => VersionState::Active,
            ("deleted", Some(at)) => VersionState::Deleted(at),
            ("destroyed", Some(at)) => VersionState::Destroyed(at),
            ("active", Some(_)) => {
                return Err(ApiError::invalid(format!(
                    "version {n}: state_at is only for deleted and destroyed versions"
                )));
            }
            ("deleted" | "destroyed", None) => {
                return Err(ApiError::invalid(format!(
                    "version {n}: a deleted or destroyed version needs state_at"
                )));
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "version {n}: state is active, deleted or destroyed"
                )));
            }
        };
        versions.push(coffer_core::HistoryVersion {
            created_at,
            state,
            value: entry.value.map(into_value),
        });
    }
    let receipt = st
        .coffer
        .import_history(&id, &path, &versions, dry_run)
        .await?;
    Ok(Json(api::HistoryResponse {
        path: receipt.path,
        outcome: receipt.outcome.as_str().to_string(),
        written: receipt.written,
        current_version: receipt.current_version,
    }))
}

/// A write's receipt on the wire.
pub(super) fn write_response(r: coffer_core::WriteReceipt) -> api::WriteResponse {
    api::WriteResponse {
        path: r.path,
        version: r.version,
        created_at: rfc3339(r.created_at),
        warnings: r.warnings,
    }
}

/// A read on the wire; the value is borrowed, never copied.
fn read_response(read: &coffer_core::SecretRead) -> api::ReadResponse<ValueRef<'_>> {
    api::ReadResponse {
        path: read.path.clone(),
        version: read.version,
        value: value_ref(&read.value),
        created_at: rfc3339(read.created_at),
        created_by: read.created_by.name.clone(),
        created_by_kind: read.created_by.kind.clone(),
        created_by_accessor: read.created_by.accessor.clone(),
        label: read.label.map(|l| l.name().to_string()),
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

pub(super) async fn write_secret(
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
            let value = into_value(value);
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
pub(super) struct VersionsQuery {
    versions: Option<String>,
}

pub(super) async fn delete_secret(
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

/// What a version-changing route does to the versions it names; the
/// handler [`change_versions`] is registered once per change.
pub(super) trait VersionChange {
    /// Whether the versions are erased for good rather than restored.
    const DESTROYS: bool;
}

/// `POST /undelete/{*path}`: restores soft-deleted versions.
pub(super) struct Undelete;

impl VersionChange for Undelete {
    const DESTROYS: bool = false;
}

/// `POST /destroy/{*path}`: erases versions for good.
pub(super) struct Destroy;

impl VersionChange for Destroy {
    const DESTROYS: bool = true;
}

/// Undelete and destroy: the same request, one core call apart.
pub(super) async fn change_versions<C: VersionChange>(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(path): UrlPath,
    JsonOrEmpty(body): JsonOrEmpty<api::VersionsRequest>,
) -> Result<Json<api::VersionsResponse>, ApiError> {
    let versions = body.versions;
    let done = if C::DESTROYS {
        st.coffer.destroy(&id, &path, &versions).await?
    } else {
        st.coffer.undelete(&id, &path, &versions).await?
    };
    Ok(Json(versions_response(&path, done)))
}

pub(super) async fn metadata(
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
                    compromised_at: v.compromised.as_ref().map(|c| rfc3339(c.at)),
                    compromised_reason: v.compromised.map(|c| c.reason),
                }
            })
            .collect(),
        labels: Some(super::lifecycle::labels_info(&md.labels)),
    }))
}

#[derive(Deserialize)]
pub(super) struct ListParams {
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    include_deleted: bool,
    after: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn list_root(
    st: State<AppState>,
    auth: Auth,
    q: UrlQuery<ListParams>,
) -> Result<Json<api::ListResponse>, ApiError> {
    list(st, auth, String::new(), q).await
}

pub(super) async fn list_prefix(
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
