//! Vault's `sys/` routes that clients need: health, seal status, init
//! status, the mounts (and the `kv` commands' preflight), policies in
//! Vault's syntax (translated by `coffer_policy::vault`) and the caller's
//! capabilities.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coffer_core::Operation;
use coffer_policy::vault::{Mount, Mounts, render, translate};
use coffer_policy::{Capability, Policy, ROOT_POLICY};
use serde::{Deserialize, Serialize};

use super::kv::VaultJson;
use super::{VaultAuth, VaultMounts, no_content, ok, ok_warning, refuse_unknown};
use crate::error::ApiError;
use crate::extract::UrlQuery;
use crate::state::AppState;

// ---- health, seal status, init ----

#[derive(Deserialize)]
pub(super) struct HealthQuery {
    standbyok: Option<String>,
    perfstandbyok: Option<String>,
    activecode: Option<String>,
    standbycode: Option<String>,
    drsecondarycode: Option<String>,
    performancestandbycode: Option<String>,
    sealedcode: Option<String>,
    uninitcode: Option<String>,
}

fn code(param: Option<&str>, default: u16, name: &str) -> Result<StatusCode, ApiError> {
    let Some(text) = param else {
        return Ok(StatusCode::from_u16(default).expect("a valid default"));
    };
    text.parse::<u16>()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| {
            ApiError::invalid(format!("{name} must be an HTTP status code (100 to 599)"))
        })
}

#[derive(Serialize)]
struct Health {
    initialized: bool,
    sealed: bool,
    standby: bool,
    performance_standby: bool,
    replication_performance_mode: &'static str,
    replication_dr_mode: &'static str,
    server_time_utc: i64,
    version: &'static str,
    cluster_name: &'static str,
}

/// `sys/health`: Vault's status codes (200 active, 503 sealed, 501 not
/// initialised) and its query parameters to change them. A server that
/// cannot audit answers as sealed: it would refuse every request. Coffer
/// has no standbys; their parameters are accepted and checked.
pub(super) async fn health(
    State(st): State<AppState>,
    UrlQuery(q): UrlQuery<HealthQuery>,
) -> Result<Response, ApiError> {
    for (value, name) in [
        (&q.standbyok, "standbyok"),
        (&q.perfstandbyok, "perfstandbyok"),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| !matches!(v, "" | "true" | "false"))
        {
            return Err(ApiError::invalid(format!("{name} must be true or false")));
        }
    }
    let active = code(q.activecode.as_deref(), 200, "activecode")?;
    code(q.standbycode.as_deref(), 429, "standbycode")?;
    code(q.drsecondarycode.as_deref(), 472, "drsecondarycode")?;
    code(
        q.performancestandbycode.as_deref(),
        473,
        "performancestandbycode",
    )?;
    let sealed = code(q.sealedcode.as_deref(), 503, "sealedcode")?;
    let uninit = code(q.uninitcode.as_deref(), 501, "uninitcode")?;
    st.coffer.notice_initialization().await;
    let s = st.coffer.status();
    let status = if !s.initialized {
        uninit
    } else if s.sealed || !st.auditor.healthy() {
        sealed
    } else {
        active
    };
    let body = Health {
        initialized: s.initialized,
        sealed: s.sealed,
        standby: false,
        performance_standby: false,
        replication_performance_mode: "disabled",
        replication_dr_mode: "disabled",
        server_time_utc: coffer_core::now_ms() / 1000,
        version: env!("CARGO_PKG_VERSION"),
        cluster_name: "coffer",
    };
    Ok((status, Json(body)).into_response())
}

#[derive(Serialize)]
struct SealStatus {
    #[serde(rename = "type")]
    kind: &'static str,
    initialized: bool,
    sealed: bool,
    t: u8,
    n: u8,
    progress: u8,
    nonce: &'static str,
    version: &'static str,
    build_date: &'static str,
    migration: bool,
    recovery_seal: bool,
    storage_type: &'static str,
}

pub(super) async fn seal_status(State(st): State<AppState>) -> Json<impl Serialize> {
    st.coffer.notice_initialization().await;
    let s = st.coffer.status();
    Json(SealStatus {
        kind: "shamir",
        initialized: s.initialized,
        sealed: s.sealed,
        t: s.threshold,
        n: s.shares,
        progress: s.progress,
        nonce: "",
        version: env!("CARGO_PKG_VERSION"),
        build_date: "",
        migration: false,
        recovery_seal: false,
        storage_type: s.storage,
    })
}

pub(super) async fn init(State(st): State<AppState>) -> Json<serde_json::Value> {
    st.coffer.notice_initialization().await;
    Json(serde_json::json!({ "initialized": st.coffer.status().initialized }))
}

/// `sys/leader`: coffer nodes have no leader and no standbys.
pub(super) async fn leader() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "ha_enabled": false,
        "is_self": false,
        "leader_address": "",
        "leader_cluster_address": "",
        "performance_standby": false,
        "performance_standby_last_remote_wal": 0,
    }))
}

// ---- mounts ----

#[derive(Serialize, Clone)]
struct MountInfo {
    #[serde(rename = "type")]
    kind: &'static str,
    description: String,
    accessor: String,
    options: BTreeMap<&'static str, &'static str>,
    config: BTreeMap<&'static str, u64>,
    local: bool,
    seal_wrap: bool,
    external_entropy_access: bool,
    uuid: String,
    path: String,
}

fn mount_info(m: &Mount) -> MountInfo {
    MountInfo {
        kind: "kv",
        description: if m.prefix().is_empty() {
            "coffer secrets".to_owned()
        } else {
            format!("coffer secrets under {}", m.prefix())
        },
        accessor: format!("kv_coffer_{}", m.name()),
        options: BTreeMap::from([("version", "2")]),
        config: BTreeMap::from([("default_lease_ttl", 0), ("max_lease_ttl", 0)]),
        local: false,
        seal_wrap: false,
        external_entropy_access: false,
        uuid: String::new(),
        path: format!("{}/", m.name()),
    }
}

fn auth_info(name: &str) -> MountInfo {
    MountInfo {
        kind: if name == "token" { "token" } else { "userpass" },
        description: format!("coffer {name} auth"),
        accessor: format!("auth_coffer_{name}"),
        options: BTreeMap::new(),
        config: BTreeMap::from([("default_lease_ttl", 0), ("max_lease_ttl", 0)]),
        local: false,
        seal_wrap: false,
        external_entropy_access: false,
        uuid: String::new(),
        path: format!("auth/{name}/"),
    }
}

/// Every token may see the mounts; the decision is still the core's.
fn may_see_mounts(st: &AppState, id: &coffer_core::Identity) -> Result<(), ApiError> {
    st.coffer
        .authorize(id, Operation::SelfService, "sys/mounts")?;
    Ok(())
}

fn secret_mounts(mounts: &Mounts) -> BTreeMap<String, MountInfo> {
    mounts
        .iter()
        .map(|m| (format!("{}/", m.name()), mount_info(m)))
        .collect()
}

pub(super) async fn mounts(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    VaultMounts(mounts): VaultMounts,
) -> Result<Response, ApiError> {
    may_see_mounts(&st, &id)?;
    let all = secret_mounts(&mounts);
    // Vault answers with the mounts both at the top and under `data`.
    let mut body = serde_json::to_value(&all).expect("mounts serialise");
    let envelope = super::Envelope::<_, ()> {
        request_id: super::request_id(),
        lease_id: "",
        renewable: false,
        lease_duration: 0,
        data: Some(all),
        wrap_info: None,
        warnings: None,
        auth: None,
    };
    let serde_json::Value::Object(top) = serde_json::to_value(envelope).expect("serialises") else {
        unreachable!("an envelope is an object");
    };
    if let serde_json::Value::Object(map) = &mut body {
        map.extend(top);
    }
    Ok(Json(body).into_response())
}

pub(super) async fn ui_mounts(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    VaultMounts(mounts): VaultMounts,
) -> Result<Response, ApiError> {
    may_see_mounts(&st, &id)?;
    let auth: BTreeMap<String, MountInfo> = ["token", "userpass"]
        .into_iter()
        .map(|n| (format!("{n}/"), auth_info(n)))
        .collect();
    Ok(ok(
        serde_json::json!({ "secret": secret_mounts(&mounts), "auth": auth }),
    ))
}

/// The mount a path is under: what the `kv` commands ask before each
/// request, to learn the mount's name and KV version.
pub(super) async fn ui_mount(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    VaultMounts(mounts): VaultMounts,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    may_see_mounts(&st, &id)?;
    let first = path.split('/').next().unwrap_or("");
    let Some(mount) = mounts.get(first) else {
        return Err(ApiError::invalid(
            "no KV mount at this path; coffer serves only its configured KV version 2 mounts",
        ));
    };
    Ok(ok(mount_info(mount)))
}

// ---- policies ----

/// `sys/policy` answers `rules`; `sys/policies/acl` answers `policy`.
pub(super) trait PolicyShape {
    const FIELD: &'static str;
}
pub(super) struct Rules;
pub(super) struct Acl;
impl PolicyShape for Rules {
    const FIELD: &'static str = "rules";
}
impl PolicyShape for Acl {
    const FIELD: &'static str = "policy";
}

pub(super) async fn list_policies(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
) -> Result<Response, ApiError> {
    let mut names = st.coffer.list_policies(&id).await?;
    if !names.iter().any(|n| n == ROOT_POLICY) {
        names.push(ROOT_POLICY.to_owned());
    }
    names.sort();
    Ok(ok(serde_json::json!({ "keys": names, "policies": names })))
}

/// Reads a policy in Vault's syntax (`policy` or `rules`) and in coffer's
/// (`coffer_policy`). A policy with no Vault form is answered with its
/// coffer form only and a warning that says why.
pub(super) async fn read_policy<S: PolicyShape>(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    VaultMounts(mounts): VaultMounts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let info = st.coffer.read_policy(&id, &name).await?;
    if name == ROOT_POLICY {
        return Ok(ok(
            serde_json::json!({ "name": name, S::FIELD: "", "coffer_policy": "" }),
        ));
    }
    let policy = Policy::parse_stored(&info.source)
        .map_err(|e| ApiError::invalid(format!("the stored policy does not parse: {e}")))?;
    match render(&policy, &mounts) {
        Ok(vault) => Ok(ok(serde_json::json!({
            "name": name,
            S::FIELD: vault,
            "coffer_policy": info.source,
        }))),
        Err(e) => Ok(ok_warning(
            serde_json::json!({ "name": name, S::FIELD: "", "coffer_policy": info.source }),
            vec![format!("this policy has no exact Vault form: {e}")],
        )),
    }
}

pub(super) async fn write_policy(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    VaultMounts(mounts): VaultMounts,
    Path(name): Path<String>,
    VaultJson(body): VaultJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, ApiError> {
    refuse_unknown(&body, &["policy", "rules"])?;
    let source = match (body.get("policy"), body.get("rules")) {
        (Some(serde_json::Value::String(s)), None) | (None, Some(serde_json::Value::String(s))) => {
            s
        }
        (Some(_), Some(_)) => return Err(ApiError::invalid("give policy or rules, not both")),
        _ => {
            return Err(ApiError::invalid(
                "policy must be a string in Vault's policy syntax",
            ));
        }
    };
    // Decided before translating, which is the expensive part: a caller
    // who may not write the policy gets no translation work done for it.
    // (`write_policy` decides again, with the name checked.)
    st.coffer
        .authorize(&id, Operation::Admin, &format!("sys/policies/{name}"))?;
    let policy = translate(source, &mounts)
        .map_err(|e| ApiError::invalid(format!("the policy cannot be translated exactly: {e}")))?;
    st.coffer
        .write_policy(&id, &name, &policy.to_source())
        .await?;
    Ok(no_content())
}

pub(super) async fn delete_policy(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    st.coffer.delete_policy(&id, &name).await?;
    Ok(no_content())
}

// ---- capabilities ----

/// The Vault capabilities the caller's policies give on a Vault path, as
/// the translation maps them (the self-service paths are always allowed).
fn capabilities_on(
    st: &AppState,
    id: &coffer_core::Identity,
    mounts: &Mounts,
    path: &str,
) -> Vec<&'static str> {
    const SELF: [&str; 5] = [
        "auth/token/lookup-self",
        "auth/token/renew-self",
        "auth/token/revoke-self",
        "auth/token/create",
        "sys/capabilities-self",
    ];
    let path = path.trim_start_matches('/');
    if SELF.contains(&path) {
        return vec!["create", "read", "update"];
    }
    let (first, rest) = path.split_once('/').unwrap_or((path, ""));
    let Some(mount) = mounts.get(first) else {
        return vec!["deny"];
    };
    let Some((kind, rest)) = rest.split_once('/') else {
        return vec!["deny"];
    };
    let target = mount.coffer_path(rest);
    let model = st.coffer.access_model();
    let caps = if id.is_root() && !id.is_human() {
        Capability::ALL
            .into_iter()
            .filter(|c| *c != Capability::Deny)
            .collect()
    } else {
        let policies: Vec<&Policy> = id
            .policies()
            .iter()
            .filter_map(|p| model.policy(p).map(|p| &**p))
            .collect();
        coffer_policy::evaluate(policies, &target)
    };
    let protected = id.is_human() && model.is_protected(&target);
    let allows = |c| caps.allows(c);
    let mut out = Vec::new();
    match kind {
        "data" => {
            if allows(Capability::Read) && !protected {
                out.push("read");
            }
            if allows(Capability::Create) {
                out.push("create");
            }
            if allows(Capability::Update) {
                out.push("update");
                if allows(Capability::Read) && !protected {
                    out.push("patch");
                }
            }
            if allows(Capability::Delete) {
                out.push("delete");
            }
        }
        "metadata" => {
            if allows(Capability::Read) || allows(Capability::List) {
                out.push("read");
            }
            let folder = format!("{}/", target.trim_end_matches('/'));
            let folder_caps = if id.is_root() && !id.is_human() {
                caps
            } else {
                coffer_policy::evaluate(
                    id.policies()
                        .iter()
                        .filter_map(|p| model.policy(p).map(|p| &**p)),
                    if rest.is_empty() {
                        mount.prefix()
                    } else {
                        &folder
                    },
                )
            };
            if folder_caps.allows(Capability::List) {
                out.push("list");
            }
            if allows(Capability::Destroy) && (allows(Capability::Read) || allows(Capability::List))
            {
                out.push("delete");
            }
        }
        "delete" | "undelete" if allows(Capability::Delete) => out.push("update"),
        "destroy" if allows(Capability::Destroy) => out.push("update"),
        _ => {}
    }
    if out.is_empty() {
        out.push("deny");
    }
    out
}

pub(super) async fn capabilities_self(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    VaultMounts(mounts): VaultMounts,
    VaultJson(body): VaultJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, ApiError> {
    refuse_unknown(&body, &["path", "paths"])?;
    st.coffer
        .authorize(&id, Operation::SelfService, "sys/tokens/self")?;
    let mut paths: Vec<String> = Vec::new();
    match body.get("paths") {
        Some(serde_json::Value::Array(list)) => {
            for p in list {
                let serde_json::Value::String(p) = p else {
                    return Err(ApiError::invalid("paths must be a list of strings"));
                };
                paths.push(p.clone());
            }
        }
        Some(_) => return Err(ApiError::invalid("paths must be a list of strings")),
        None => {}
    }
    match body.get("path") {
        Some(serde_json::Value::String(p)) => paths.push(p.clone()),
        Some(_) => return Err(ApiError::invalid("path must be a string")),
        None => {}
    }
    if paths.is_empty() {
        return Err(ApiError::invalid("missing paths"));
    }
    if paths.len() > 100 {
        return Err(ApiError::invalid("at most 100 paths at once"));
    }
    let mut data = serde_json::Map::new();
    let mut all: Vec<&str> = Vec::new();
    for p in &paths {
        let caps = capabilities_on(&st, &id, &mounts, p);
        for c in &caps {
            if !all.contains(c) {
                all.push(c);
            }
        }
        data.insert(p.clone(), serde_json::json!(caps));
    }
    data.insert("capabilities".into(), serde_json::json!(all));
    let mut body = serde_json::Value::Object(data.clone());
    let serde_json::Value::Object(top) = serde_json::to_value(super::Envelope::<_, ()> {
        request_id: super::request_id(),
        lease_id: "",
        renewable: false,
        lease_duration: 0,
        data: Some(data),
        wrap_info: None,
        warnings: None,
        auth: None,
    })
    .expect("serialises") else {
        unreachable!("an envelope is an object");
    };
    if let serde_json::Value::Object(map) = &mut body {
        map.extend(top);
    }
    Ok(Json(body).into_response())
}
