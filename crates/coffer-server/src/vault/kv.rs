//! KV version 2 under each configured mount: `data/`, `metadata/`,
//! `delete/`, `undelete/` and `destroy/`.
//!
//! The mapping between a coffer value and a KV secret: a value of string
//! fields is the KV secret with those keys; a text value reads as
//! `{"value": TEXT}`, and a write of `{"value": TEXT}` alone writes text.
//! A field whose JSON value is not a string (a number, a boolean, an object,
//! an array, null) is refused with a 400 that names the field and its type,
//! never its value: coffer keeps string fields only, and does not silently
//! change a value.

use std::collections::BTreeMap;
use std::fmt;

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::Response;
use coffer_api::codes;
use coffer_core::{ListOptions, Operation, SecretValue};
use coffer_crypto::SecretString;
use coffer_store::VersionState;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Listing, VaultAuth, VaultMounts, no_content, no_route, not_found, ok};
use crate::error::ApiError;
use crate::extract::UrlQuery;
use crate::state::AppState;
use crate::timefmt::rfc3339;

// ---- the path ----

/// The coffer path a KV URL names: the mount's prefix and the rest of the
/// URL. An unknown mount is Vault's 404.
pub(super) struct KvPath(pub String);

impl FromRequestParts<AppState> for KvPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let VaultMounts(mounts) = VaultMounts::from_request_parts(parts, state).await?;
        let Path((mount, rest)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::invalid("the path in the URL is not valid percent-encoded UTF-8")
            })?;
        let mount = mounts.get(&mount).ok_or_else(no_route)?;
        Ok(KvPath(mount.coffer_path(&rest)))
    }
}

/// The mount's top folder, for listings of `metadata/`.
pub(super) struct KvRoot(pub String);

impl FromRequestParts<AppState> for KvRoot {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let VaultMounts(mounts) = VaultMounts::from_request_parts(parts, state).await?;
        let Path(mount) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid("the mount in the URL is not valid UTF-8"))?;
        let mount = mounts.get(&mount).ok_or_else(no_route)?;
        Ok(KvRoot(mount.prefix().to_owned()))
    }
}

// ---- bodies ----

/// One field of a KV body: a string (held as a secret), `null` (a patch's
/// removal), or any other JSON value, of which only its type is kept.
pub(super) enum Field {
    Text(SecretString),
    Null,
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(Field::Text(SecretString::new(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Field, E> {
                Ok(Field::Text(SecretString::new(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Field, E> {
                Ok(Field::Other("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Field, E> {
                Ok(Field::Other("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Field, E> {
                Ok(Field::Other("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Field, E> {
                Ok(Field::Other("a number"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Field, E> {
                Ok(Field::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Field, E> {
                Ok(Field::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other("an object"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other("an array"))
            }
        }
        d.deserialize_any(FieldVisitor)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct KvOptions {
    cas: Option<u64>,
}

/// The body of a write or a patch.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KvWriteBody {
    data: Option<BTreeMap<String, Field>>,
    #[serde(default)]
    options: Option<KvOptions>,
}

/// A body parsed like the native API's ([`crate::extract::JsonBody`]),
/// except that an unknown parameter is named in the error (names are not
/// secret; values never appear).
pub(super) struct VaultJson<T>(pub T);

impl<T: de::DeserializeOwned, S: Send + Sync> FromRequest<S> for VaultJson<T> {
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
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map(VaultJson).map_err(|e| {
            let text = e.to_string();
            match text.strip_prefix("unknown field `") {
                Some(rest) if !coffer_policy::contains_credential(rest) => {
                    let name: String = rest
                        .split('`')
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(64)
                        .collect();
                    ApiError::invalid(format!("unsupported parameter {name:?}"))
                }
                _ => crate::error::json_error(&e),
            }
        })
    }
}

fn field_type_error(name: &str, kind: &str) -> ApiError {
    ApiError::invalid(format!(
        "field {} is {kind}; coffer keeps string fields only, so write it as a string \
         (for example its JSON text)",
        super::quote_name(name)
    ))
}

/// The coffer value of a KV secret's fields.
fn into_value(mut fields: BTreeMap<String, SecretString>) -> SecretValue {
    if fields.len() == 1
        && let Some(text) = fields.remove("value")
    {
        return SecretValue::Text(text);
    }
    SecretValue::Fields(fields)
}

fn strings(data: BTreeMap<String, Field>) -> Result<BTreeMap<String, SecretString>, ApiError> {
    let mut out = BTreeMap::new();
    for (name, field) in data {
        match field {
            Field::Text(s) => {
                out.insert(name, s);
            }
            Field::Null => return Err(field_type_error(&name, "null")),
            Field::Other(kind) => return Err(field_type_error(&name, kind)),
        }
    }
    Ok(out)
}

// ---- responses ----

/// A value as KV data, borrowed: `{"value": TEXT}` or the fields.
struct DataRef<'a>(&'a SecretValue);

impl Serialize for DataRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            SecretValue::Text(t) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("value", t.expose_secret())?;
                map.end()
            }
            SecretValue::Fields(f) => {
                let mut map = s.serialize_map(Some(f.len()))?;
                for (k, v) in f {
                    map.serialize_entry(k, v.expose_secret())?;
                }
                map.end()
            }
        }
    }
}

/// A version's metadata as Vault shows it.
#[derive(Serialize)]
struct VersionMeta {
    created_time: String,
    custom_metadata: Option<()>,
    deletion_time: String,
    destroyed: bool,
    version: u64,
}

impl VersionMeta {
    fn active(version: u64, created_at: i64) -> VersionMeta {
        VersionMeta {
            created_time: rfc3339(created_at),
            custom_metadata: None,
            deletion_time: String::new(),
            destroyed: false,
            version,
        }
    }
}

#[derive(Serialize)]
struct ReadData<'a> {
    data: DataRef<'a>,
    metadata: VersionMeta,
}

// ---- handlers ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadQuery {
    version: Option<u64>,
}

pub(super) async fn read(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    KvPath(path): KvPath,
    UrlQuery(q): UrlQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    // Vault's version 0 is the current one.
    let version = q.version.filter(|v| *v != 0);
    let read = st
        .coffer
        .read(&id, &path, version)
        .await
        .map_err(missing_is_404)?;
    Ok(ok(ReadData {
        data: DataRef(&read.value),
        metadata: VersionMeta::active(read.version, read.created_at),
    }))
}

/// Vault answers a secret or version that is not there (or not readable:
/// deleted, destroyed) with a bare 404.
fn missing_is_404(e: coffer_core::CoreError) -> ApiError {
    match e {
        coffer_core::CoreError::NotFound(_) => not_found(),
        e => e.into(),
    }
}

pub(super) async fn write(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    KvPath(path): KvPath,
    VaultJson(body): VaultJson<KvWriteBody>,
) -> Result<Response, ApiError> {
    let Some(data) = body.data else {
        return Err(ApiError::invalid("no data provided"));
    };
    let value = into_value(strings(data)?);
    let cas = body.options.unwrap_or_default().cas;
    let receipt = st.coffer.write(&id, &path, &value, cas).await?;
    Ok(ok(VersionMeta::active(receipt.version, receipt.created_at)))
}

pub(super) async fn patch(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    KvPath(path): KvPath,
    headers: axum::http::HeaderMap,
    VaultJson(body): VaultJson<KvWriteBody>,
) -> Result<Response, ApiError> {
    let merge_patch = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/merge-patch+json")
        });
    if !merge_patch {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            "a patch must be sent with Content-Type: application/merge-patch+json",
        ));
    }
    let Some(data) = body.data else {
        return Err(ApiError::invalid("no data provided"));
    };
    // Check the patch before reading anything.
    for (name, field) in &data {
        if let Field::Other(kind) = field {
            return Err(field_type_error(name, kind));
        }
    }
    let current = st
        .coffer
        .read(&id, &path, None)
        .await
        .map_err(missing_is_404)?;
    let mut fields = match current.value {
        SecretValue::Text(t) => BTreeMap::from([("value".to_owned(), t)]),
        SecretValue::Fields(f) => f,
    };
    for (name, field) in data {
        match field {
            Field::Text(s) => {
                fields.insert(name, s);
            }
            Field::Null => {
                fields.remove(&name);
            }
            Field::Other(_) => unreachable!("refused above"),
        }
    }
    // The write must follow the version read, or the patch would lose a
    // write made in between.
    let cas = body
        .options
        .unwrap_or_default()
        .cas
        .unwrap_or(current.version);
    let receipt = st
        .coffer
        .write(&id, &path, &into_value(fields), Some(cas))
        .await?;
    Ok(ok(VersionMeta::active(receipt.version, receipt.created_at)))
}

pub(super) async fn delete_latest(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    KvPath(path): KvPath,
) -> Result<Response, ApiError> {
    st.coffer
        .delete(&id, &path, &[])
        .await
        .map_err(missing_is_404)?;
    Ok(no_content())
}

/// Which change `delete/`, `undelete/` or `destroy/` makes.
pub(super) trait VersionChange {
    const CHANGE: Change;
}
#[derive(PartialEq, Eq)]
pub(super) enum Change {
    Delete,
    Undelete,
    Destroy,
}
pub(super) struct SoftDelete;
pub(super) struct Undelete;
pub(super) struct Destroy;
impl VersionChange for SoftDelete {
    const CHANGE: Change = Change::Delete;
}
impl VersionChange for Undelete {
    const CHANGE: Change = Change::Undelete;
}
impl VersionChange for Destroy {
    const CHANGE: Change = Change::Destroy;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VersionsBody {
    #[serde(default)]
    versions: Vec<VersionNumber>,
}

/// A version number, as a JSON number or a string of digits (Vault's CLI
/// sends strings).
pub(super) struct VersionNumber(u64);

impl<'de> Deserialize<'de> for VersionNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<VersionNumber, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Number(n) => Ok(VersionNumber(n)),
            Either::Text(t) => t
                .trim()
                .parse()
                .map(VersionNumber)
                .map_err(|_| de::Error::custom("a version must be a positive integer")),
        }
    }
}

pub(super) async fn change_versions<C: VersionChange>(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    KvPath(path): KvPath,
    VaultJson(body): VaultJson<VersionsBody>,
) -> Result<Response, ApiError> {
    if body.versions.is_empty() {
        return Err(ApiError::invalid("no version number provided"));
    }
    let versions: Vec<u64> = body.versions.into_iter().map(|v| v.0).collect();
    match C::CHANGE {
        Change::Delete => st.coffer.delete(&id, &path, &versions).await,
        Change::Undelete => st.coffer.undelete(&id, &path, &versions).await,
        Change::Destroy => st.coffer.destroy(&id, &path, &versions).await,
    }
    .map_err(missing_is_404)?;
    Ok(no_content())
}

#[derive(Serialize)]
struct VersionEntry {
    created_time: String,
    deletion_time: String,
    destroyed: bool,
}

#[derive(Serialize)]
struct Metadata {
    cas_required: bool,
    created_time: String,
    current_version: u64,
    custom_metadata: Option<()>,
    delete_version_after: &'static str,
    max_versions: u64,
    oldest_version: u64,
    updated_time: String,
    versions: BTreeMap<String, VersionEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetadataQuery {
    #[serde(rename = "list")]
    _list: Option<bool>,
}

pub(super) async fn metadata_or_list(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    KvPath(path): KvPath,
    listing: Option<axum::Extension<Listing>>,
    UrlQuery(_q): UrlQuery<MetadataQuery>,
) -> Result<Response, ApiError> {
    if listing.is_some() {
        let folder = format!("{}/", path.trim_end_matches('/'));
        return list(&st, &id, &folder).await;
    }
    let md = st
        .coffer
        .metadata(&id, &path)
        .await
        .map_err(missing_is_404)?;
    let versions = md
        .versions
        .iter()
        .map(|v| {
            let (deletion_time, destroyed) = match v.state {
                VersionState::Active => (String::new(), false),
                VersionState::Deleted(at) => (rfc3339(at), false),
                VersionState::Destroyed(at) => (rfc3339(at), true),
            };
            (
                v.version.to_string(),
                VersionEntry {
                    created_time: rfc3339(v.created_at),
                    deletion_time,
                    destroyed,
                },
            )
        })
        .collect();
    Ok(ok(Metadata {
        cas_required: false,
        created_time: rfc3339(md.meta.created_at),
        current_version: md.meta.current_version,
        custom_metadata: None,
        delete_version_after: "0s",
        max_versions: 0,
        oldest_version: md.versions.first().map_or(0, |v| v.version),
        updated_time: rfc3339(md.meta.updated_at),
        versions,
    }))
}

pub(super) async fn list_root(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    KvRoot(prefix): KvRoot,
    listing: Option<axum::Extension<Listing>>,
) -> Result<Response, ApiError> {
    if listing.is_none() {
        // `GET metadata/` without a listing names no secret.
        return Err(no_route());
    }
    list(&st, &id, &prefix).await
}

/// The most entries one listing returns (Vault returns them all at once).
const MAX_KEYS: usize = 100_000;

#[derive(Serialize)]
struct Keys {
    keys: Vec<String>,
}

async fn list(
    st: &AppState,
    id: &coffer_core::Identity,
    folder: &str,
) -> Result<Response, ApiError> {
    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let page = st
            .coffer
            .list(
                id,
                folder,
                ListOptions {
                    include_deleted: true,
                    after: after.take(),
                    limit: coffer_core::MAX_LIST_LIMIT,
                    ..ListOptions::default()
                },
            )
            .await?;
        keys.extend(page.entries.into_iter().map(|e| e.name));
        if keys.len() > MAX_KEYS {
            return Err(ApiError::invalid(format!(
                "the folder has more than {MAX_KEYS} entries; list a narrower folder"
            )));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if keys.is_empty() {
        return Err(not_found());
    }
    Ok(ok(Keys { keys }))
}

/// Vault's metadata settings. Coffer keeps none of them, so only their
/// defaults are accepted; anything else is refused rather than ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetadataSettings {
    max_versions: Option<u64>,
    cas_required: Option<bool>,
    delete_version_after: Option<String>,
    custom_metadata: Option<BTreeMap<String, IgnoredAny>>,
}

pub(super) async fn metadata_write(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    KvPath(path): KvPath,
    VaultJson(body): VaultJson<MetadataSettings>,
) -> Result<Response, ApiError> {
    let unsupported = if body.max_versions.is_some_and(|n| n != 0) {
        Some("max_versions (coffer keeps every version)")
    } else if body.cas_required == Some(true) {
        Some("cas_required (send options.cas with each write instead)")
    } else if body
        .delete_version_after
        .as_deref()
        .is_some_and(|d| !matches!(d, "" | "0" | "0s"))
    {
        Some("delete_version_after (coffer has expiry and rotation instead)")
    } else if body.custom_metadata.as_ref().is_some_and(|m| !m.is_empty()) {
        Some("custom_metadata")
    } else {
        None
    };
    if let Some(what) = unsupported {
        return Err(ApiError::invalid(format!(
            "coffer does not keep the setting {what}; only the defaults are accepted"
        )));
    }
    let path = coffer_core::SecretPath::parse(&path).map_err(coffer_core::CoreError::from)?;
    st.coffer.authorize(&id, Operation::Update, path.as_str())?;
    Ok(no_content())
}

pub(super) async fn metadata_delete(
    State(st): State<AppState>,
    VaultAuth(id): VaultAuth,
    KvPath(path): KvPath,
) -> Result<Response, ApiError> {
    let md = st
        .coffer
        .metadata(&id, &path)
        .await
        .map_err(missing_is_404)?;
    let versions: Vec<u64> = md
        .versions
        .iter()
        .filter(|v| !matches!(v.state, VersionState::Destroyed(_)))
        .map(|v| v.version)
        .collect();
    if !versions.is_empty() {
        st.coffer.destroy(&id, &path, &versions).await?;
    }
    Ok(no_content())
}
