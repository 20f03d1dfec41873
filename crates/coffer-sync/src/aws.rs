//! AWS Secrets Manager and SSM Parameter Store through the official SDK.
//!
//! Credentials come only from the SDK's standard chain (environment,
//! shared profile files, a named profile's IAM Identity Center (SSO)
//! session, `credential_process`, web identity, container and instance
//! metadata); this module never takes one as an argument. The
//! region and an endpoint URL (for compatible services and tests) may be
//! given; otherwise the chain's (`AWS_REGION`, `AWS_ENDPOINT_URL`, the
//! profile) apply. HTTPS is hyper with rustls on `ring`.
//!
//! What is read is a neutral [`History`] of [`Version`]s; what is written
//! is one string value with tags saying coffer manages it and which cloud
//! version coffer wrote last, so that a change made outside coffer is seen
//! and not overwritten unless the caller says so.

use std::time::Duration;

use aws_sdk_secretsmanager as sm;
use aws_sdk_secretsmanager::config::ProvideCredentials;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::{DateTime, DateTimeFormat};
use aws_sdk_ssm as ssm;
use coffer_crypto::SecretString;

use crate::mapping::Service;
use crate::{ErrorKind, SyncError};

/// The tag that marks a secret or parameter as written by coffer.
pub const TAG_MANAGED: &str = "coffer:managed";
/// The tag that records the cloud version coffer wrote last (a Secrets
/// Manager version id, a Parameter Store version number).
pub const TAG_SYNCED: &str = "coffer:synced-version";
/// The tag that names the coffer secret it was pushed from.
pub const TAG_PATH: &str = "coffer:path";

/// Secrets Manager's staging labels.
pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
pub const AWSPENDING: &str = "AWSPENDING";

/// How to reach AWS (nothing here is a credential).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The region (default: the chain's).
    pub region: Option<String>,
    /// Another endpoint, such as a compatible service's or a local
    /// emulator's (default: `AWS_ENDPOINT_URL`, else AWS's own).
    pub endpoint_url: Option<String>,
    /// How long one operation may take, retries included.
    pub timeout: Duration,
    /// A named profile of the shared files (`~/.aws/config`,
    /// `~/.aws/credentials`), SSO profiles included (default:
    /// `AWS_PROFILE`, else `default`). Checked by [`check_profile_name`].
    pub profile: Option<String>,
}

/// Whether `name` can be a profile name: 1 to 128 of ASCII letters,
/// digits and `-_.+@:`, not starting with `.` and without `..` (a profile
/// name is looked up in the shared files, never opened as a path, but a
/// name that looks like one is a mistake, and a control character would
/// reach error messages and logs).
pub fn check_profile_name(name: &str) -> Result<(), SyncError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+@:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SyncError::new(
            ErrorKind::Config,
            "a profile name is 1 to 128 ASCII letters, digits and - _ . + @ : (no path, no \
             control character)",
        ))
    }
}

/// A value as the cloud holds it. No `Debug`.
pub enum CloudValue {
    /// A string (Secrets Manager's `SecretString`, any parameter's value).
    Text(SecretString),
    /// Secrets Manager's `SecretBinary`: not mapped to coffer. Its bytes
    /// are dropped as soon as they are read.
    Binary,
}

/// One version of a cloud secret, as read.
pub struct Version {
    /// The cloud's id of it (a version id, or a parameter version number).
    pub id: String,
    /// The parameter version number (Parameter Store only).
    pub number: Option<u64>,
    /// When it was written, RFC 3339.
    pub created_at: String,
    /// Its staging labels (Secrets Manager) or labels (Parameter Store).
    pub labels: Vec<String>,
    /// Its value.
    pub value: CloudValue,
}

/// Every version of a cloud secret the service still keeps, oldest first.
pub struct History {
    /// The versions, oldest first.
    pub versions: Vec<Version>,
}

/// What a push needs to know of a cloud secret that exists.
pub struct Current {
    /// The current version's id (the one `AWSCURRENT` names, or the
    /// parameter's version number).
    pub version: String,
    /// Its value.
    pub value: CloudValue,
    /// Whether it carries [`TAG_MANAGED`].
    pub managed: bool,
    /// The version [`TAG_SYNCED`] recorded, if any.
    pub synced: Option<String>,
}

/// A client of one of the two services.
pub enum Store {
    SecretsManager(sm::Client),
    ParameterStore(ssm::Client),
}

/// Builds the SDK's configuration from the standard chain plus `options`,
/// and checks that the chain yields a region and credentials (so that a
/// missing one is said plainly, before any request).
pub async fn config(options: &Options) -> Result<aws_config::SdkConfig, SyncError> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(options.timeout)
                .build(),
        );
    if let Some(profile) = &options.profile {
        check_profile_name(profile)?;
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &options.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(SyncError::new(
            ErrorKind::Config,
            "no AWS region: give --region or set AWS_REGION (or a region in the profile)",
        ));
    }
    let Some(credentials) = config.credentials_provider() else {
        return Err(no_credentials(""));
    };
    if let Err(e) = credentials.provide_credentials().await {
        // The chain's error says which providers it tried and why each
        // failed; it never holds a credential.
        return Err(no_credentials(&format!(": {}", DisplayErrorContext(&e))));
    }
    Ok(config)
}

fn no_credentials(detail: &str) -> SyncError {
    SyncError::new(
        ErrorKind::Denied,
        format!(
            "no AWS credentials from the standard chain (AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared files, web identity, \
             container or instance metadata){detail}"
        ),
    )
}

/// An SDK error as a [`SyncError`]: what was being done, the service's
/// error code and message (or the transport's reason).
fn sdk_error<E, R>(what: &str, e: SdkError<E, R>) -> SyncError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let kind = match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => ErrorKind::Unreachable,
        SdkError::ServiceError(s) => match s.err().code() {
            Some(
                "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "SignatureDoesNotMatch"
                | "ExpiredTokenException"
                | "InvalidClientTokenId",
            ) => ErrorKind::Denied,
            Some("ResourceNotFoundException" | "ParameterNotFound") => ErrorKind::NotFound,
            _ => ErrorKind::Other,
        },
        _ => ErrorKind::Other,
    };
    let message = match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{what}: {code}: {}", one_line(msg)),
        (Some(code), None) => format!("{what}: {code}"),
        _ => format!("{what}: {}", one_line(&DisplayErrorContext(&e).to_string())),
    };
    SyncError::new(kind, message)
}

/// Service text on one line, at most 300 characters, no controls.
fn one_line(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    if text.chars().count() > 300 {
        s.push_str("...");
    }
    s
}

fn time(t: Option<&DateTime>) -> String {
    t.and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Orders Secrets Manager versions written in the same instant by their
/// labels: previous, then current, then pending.
fn stage_rank(labels: &[String]) -> u8 {
    if labels.iter().any(|l| l == AWSPENDING) {
        3
    } else if labels.iter().any(|l| l == AWSCURRENT) {
        2
    } else if labels.iter().any(|l| l == AWSPREVIOUS) {
        1
    } else {
        0
    }
}

impl Store {
    /// A client of `service` with `config`.
    pub fn new(service: Service, config: &aws_config::SdkConfig) -> Store {
        match service {
            Service::SecretsManager => Store::SecretsManager(sm::Client::new(config)),
            Service::ParameterStore => Store::ParameterStore(ssm::Client::new(config)),
        }
    }

    /// The names of every secret or parameter whose name starts with
    /// `prefix` (case-sensitively), sorted. Secrets scheduled for deletion
    /// are left out.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, SyncError> {
        let mut names = Vec::new();
        let mut next: Option<String> = None;
        match self {
            Store::SecretsManager(c) => loop {
                let mut req = c
                    .list_secrets()
                    .max_results(100)
                    .set_next_token(next.take());
                // The service's name filter is a case-insensitive prefix
                // match that treats a leading `!` as "not": narrow with it
                // only when that cannot misread the prefix.
                if !prefix.is_empty() && !prefix.starts_with('!') {
                    req = req.filters(
                        sm::types::Filter::builder()
                            .key(sm::types::FilterNameStringType::Name)
                            .values(prefix)
                            .build(),
                    );
                }
                let out = req
                    .send()
                    .await
                    .map_err(|e| sdk_error("listing secrets", e))?;
                names.extend(
                    out.secret_list()
                        .iter()
                        .filter(|s| s.deleted_date().is_none())
                        .filter_map(|s| s.name())
                        .filter(|n| n.starts_with(prefix))
                        .map(str::to_string),
                );
                match out.next_token() {
                    Some(t) if !t.is_empty() => next = Some(t.to_string()),
                    _ => break,
                }
            },
            Store::ParameterStore(c) => loop {
                let filter = ssm::types::ParameterStringFilter::builder()
                    .key("Name")
                    .option("BeginsWith")
                    .values(prefix)
                    .build()
                    .map_err(|e| SyncError::new(ErrorKind::Other, e.to_string()))?;
                let out = c
                    .describe_parameters()
                    .parameter_filters(filter)
                    .max_results(50)
                    .set_next_token(next.take())
                    .send()
                    .await
                    .map_err(|e| sdk_error("listing parameters", e))?;
                names.extend(
                    out.parameters()
                        .iter()
                        .filter_map(|p| p.name())
                        .filter(|n| n.starts_with(prefix))
                        .map(str::to_string),
                );
                match out.next_token() {
                    Some(t) if !t.is_empty() => next = Some(t.to_string()),
                    _ => break,
                }
            },
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every version of `name` the service keeps, oldest first, with its
    /// value and labels.
    pub async fn history(&self, name: &str) -> Result<History, SyncError> {
        match self {
            Store::SecretsManager(c) => {
                let mut listed = Vec::new();
                let mut next: Option<String> = None;
                loop {
                    let out = c
                        .list_secret_version_ids()
                        .secret_id(name)
                        .include_deprecated(true)
                        .max_results(100)
                        .set_next_token(next.take())
                        .send()
                        .await
                        .map_err(|e| sdk_error("listing the versions of a secret", e))?;
                    listed.extend(out.versions().iter().cloned());
                    match out.next_token() {
                        Some(t) if !t.is_empty() => next = Some(t.to_string()),
                        _ => break,
                    }
                }
                // Oldest first; ties (versions written in the same
                // instant) by their labels, then as listed.
                listed.sort_by_key(|v| {
                    (
                        v.created_date().map(|d| (d.secs(), d.subsec_nanos())),
                        stage_rank(v.version_stages()),
                    )
                });
                let mut versions = Vec::with_capacity(listed.len());
                for v in listed {
                    let Some(id) = v.version_id() else { continue };
                    let value = self.sm_value(c, name, Some(id), None).await?;
                    versions.push(Version {
                        id: id.to_string(),
                        number: None,
                        created_at: time(v.created_date()),
                        labels: v.version_stages().to_vec(),
                        value,
                    });
                }
                Ok(History { versions })
            }
            Store::ParameterStore(c) => {
                let mut versions = Vec::new();
                let mut next: Option<String> = None;
                loop {
                    let out = c
                        .get_parameter_history()
                        .name(name)
                        .with_decryption(true)
                        .max_results(50)
                        .set_next_token(next.take())
                        .send()
                        .await
                        .map_err(|e| sdk_error("reading a parameter's history", e))?;
                    let next_token = out.next_token().map(str::to_string);
                    for mut p in out.parameters.unwrap_or_default() {
                        let value = p.value.take().unwrap_or_default();
                        versions.push(Version {
                            id: p.version.to_string(),
                            number: u64::try_from(p.version).ok(),
                            created_at: time(p.last_modified_date()),
                            labels: p.labels().to_vec(),
                            value: CloudValue::Text(SecretString::new(value)),
                        });
                    }
                    match next_token {
                        Some(t) if !t.is_empty() => next = Some(t),
                        _ => break,
                    }
                }
                versions.sort_by_key(|v| v.number);
                Ok(History { versions })
            }
        }
    }

    /// One Secrets Manager value, by version id or staging label.
    async fn sm_value(
        &self,
        c: &sm::Client,
        name: &str,
        id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<CloudValue, SyncError> {
        let mut out = c
            .get_secret_value()
            .secret_id(name)
            .set_version_id(id.map(str::to_string))
            .set_version_stage(stage.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_error("reading a secret's value", e))?;
        Ok(match (out.secret_string.take(), out.secret_binary.take()) {
            (Some(s), _) => CloudValue::Text(SecretString::new(s)),
            (None, Some(_)) => CloudValue::Binary,
            (None, None) => CloudValue::Text(SecretString::new(String::new())),
        })
    }

    /// The current version of `name`, with its value and coffer's tags;
    /// `None` when it does not exist.
    pub async fn current(&self, name: &str) -> Result<Option<Current>, SyncError> {
        match self {
            Store::SecretsManager(c) => {
                let described = match c.describe_secret().secret_id(name).send().await {
                    Ok(d) => d,
                    Err(e) => {
                        let e = sdk_error("describing a secret", e);
                        return if e.kind == ErrorKind::NotFound {
                            Ok(None)
                        } else {
                            Err(e)
                        };
                    }
                };
                if described.deleted_date().is_some() {
                    return Err(SyncError::new(
                        ErrorKind::Other,
                        "the secret is scheduled for deletion (restore it first)",
                    ));
                }
                let version = described
                    .version_ids_to_stages()
                    .into_iter()
                    .flatten()
                    .find(|(_, stages)| stages.iter().any(|s| s == AWSCURRENT))
                    .map(|(id, _)| id.clone())
                    .unwrap_or_default();
                let tag = |key: &str| {
                    described
                        .tags()
                        .iter()
                        .find(|t| t.key() == Some(key))
                        .and_then(|t| t.value())
                        .map(str::to_string)
                };
                let managed = tag(TAG_MANAGED).is_some_and(|v| v == "true");
                let synced = tag(TAG_SYNCED);
                let value = if version.is_empty() {
                    // A secret created without a value has no versions.
                    CloudValue::Text(SecretString::new(String::new()))
                } else {
                    self.sm_value(c, name, Some(&version), None).await?
                };
                Ok(Some(Current {
                    version,
                    value,
                    managed,
                    synced,
                }))
            }
            Store::ParameterStore(c) => {
                let out = match c
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                {
                    Ok(o) => o,
                    Err(e) => {
                        let e = sdk_error("reading a parameter", e);
                        return if e.kind == ErrorKind::NotFound {
                            Ok(None)
                        } else {
                            Err(e)
                        };
                    }
                };
                let Some(mut p) = out.parameter else {
                    return Ok(None);
                };
                let value = SecretString::new(p.value.take().unwrap_or_default());
                let tags = c
                    .list_tags_for_resource()
                    .resource_type(ssm::types::ResourceTypeForTagging::Parameter)
                    .resource_id(name)
                    .send()
                    .await
                    .map_err(|e| sdk_error("reading a parameter's tags", e))?;
                let tag = |key: &str| {
                    tags.tag_list()
                        .iter()
                        .find(|t| t.key() == key)
                        .map(|t| t.value().to_string())
                };
                Ok(Some(Current {
                    version: p.version.to_string(),
                    value: CloudValue::Text(value),
                    managed: tag(TAG_MANAGED).is_some_and(|v| v == "true"),
                    synced: tag(TAG_SYNCED),
                }))
            }
        }
    }

    /// Writes `value` as the new current version of `name`: creates it
    /// (tagged as coffer's, with `kms_key_id` when given) when `exists` is
    /// false, otherwise adds a version (Secrets Manager moves `AWSCURRENT`
    /// to it and `AWSPREVIOUS` to the one before; a parameter is
    /// overwritten as a `SecureString`). Then records the version written
    /// in [`TAG_SYNCED`]. Returns that version.
    pub async fn write(
        &self,
        name: &str,
        value: &SecretString,
        coffer_path: &str,
        exists: bool,
        kms_key_id: Option<&str>,
    ) -> Result<String, SyncError> {
        match self {
            Store::SecretsManager(c) => {
                let version = if exists {
                    c.put_secret_value()
                        .secret_id(name)
                        .secret_string(value.expose_secret())
                        .send()
                        .await
                        .map_err(|e| sdk_error("writing a secret's value", e))?
                        .version_id()
                        .unwrap_or_default()
                        .to_string()
                } else {
                    c.create_secret()
                        .name(name)
                        .secret_string(value.expose_secret())
                        .set_kms_key_id(kms_key_id.map(str::to_string))
                        .tags(sm_tag(TAG_MANAGED, "true"))
                        .tags(sm_tag(TAG_PATH, coffer_path))
                        .send()
                        .await
                        .map_err(|e| sdk_error("creating a secret", e))?
                        .version_id()
                        .unwrap_or_default()
                        .to_string()
                };
                c.tag_resource()
                    .secret_id(name)
                    .tags(sm_tag(TAG_MANAGED, "true"))
                    .tags(sm_tag(TAG_PATH, coffer_path))
                    .tags(sm_tag(TAG_SYNCED, &version))
                    .send()
                    .await
                    .map_err(|e| sdk_error("tagging a secret", e))?;
                Ok(version)
            }
            Store::ParameterStore(c) => {
                let mut req = c
                    .put_parameter()
                    .name(name)
                    .value(value.expose_secret())
                    .r#type(ssm::types::ParameterType::SecureString)
                    .set_key_id(kms_key_id.map(str::to_string))
                    .overwrite(exists);
                if !exists {
                    req = req
                        .tags(ssm_tag(TAG_MANAGED, "true")?)
                        .tags(ssm_tag(TAG_PATH, coffer_path)?);
                }
                let version = req
                    .send()
                    .await
                    .map_err(|e| sdk_error("writing a parameter", e))?
                    .version()
                    .to_string();
                c.add_tags_to_resource()
                    .resource_type(ssm::types::ResourceTypeForTagging::Parameter)
                    .resource_id(name)
                    .tags(ssm_tag(TAG_MANAGED, "true")?)
                    .tags(ssm_tag(TAG_PATH, coffer_path)?)
                    .tags(ssm_tag(TAG_SYNCED, &version)?)
                    .send()
                    .await
                    .map_err(|e| sdk_error("tagging a parameter", e))?;
                Ok(version)
            }
        }
    }
}

fn sm_tag(key: &str, value: &str) -> sm::types::Tag {
    sm::types::Tag::builder().key(key).value(value).build()
}

fn ssm_tag(key: &str, value: &str) -> Result<ssm::types::Tag, SyncError> {
    ssm::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
        .map_err(|e| SyncError::new(ErrorKind::Other, e.to_string()))
}

/// One coffer version to hold in Secrets Manager: its number and value.
pub struct Labelled<'a> {
    /// Coffer's version number.
    pub version: u64,
    /// Its value, as the cloud holds it.
    pub value: &'a SecretString,
}

/// Coffer's labelled versions of one secret: `current`, and `previous`
/// and `pending` when it has them.
pub struct LabelPlan<'a> {
    pub previous: Option<Labelled<'a>>,
    pub current: Labelled<'a>,
    pub pending: Option<Labelled<'a>>,
    /// Whether a `coffer-vN` marker found on a version that does not hold
    /// coffer's version N is replaced (`--force`) instead of refused.
    pub force: bool,
}

/// The staging label that marks the Secrets Manager version holding
/// coffer's version `n` (how a second push knows it is there).
pub fn version_marker(n: u64) -> String {
    format!("coffer-v{n}")
}

impl Store {
    /// Makes the Secrets Manager secret `name` hold coffer's labelled
    /// versions: each as a version of its own (marked with
    /// [`version_marker`]), `AWSCURRENT` on coffer's current, `AWSPREVIOUS`
    /// on its previous and `AWSPENDING` on its pending (each removed when
    /// coffer has none), markers of versions coffer no longer labels
    /// removed. Returns what it changed (or, with `dry_run`, would
    /// change), as names and labels only, and the version id `AWSCURRENT`
    /// ends on (empty in a dry run that would create it). A second run
    /// changes nothing.
    pub async fn push_labelled(
        &self,
        name: &str,
        plan: &LabelPlan<'_>,
        coffer_path: &str,
        exists: bool,
        kms_key_id: Option<&str>,
        dry_run: bool,
    ) -> Result<(Vec<String>, String), SyncError> {
        let Store::SecretsManager(c) = self else {
            return Err(SyncError::new(
                ErrorKind::Config,
                "labelled versions are pushed to Secrets Manager only",
            ));
        };
        let mut changes = Vec::new();
        if !exists {
            changes.push("create the secret".to_string());
            if !dry_run {
                c.create_secret()
                    .name(name)
                    .set_kms_key_id(kms_key_id.map(str::to_string))
                    .tags(sm_tag(TAG_MANAGED, "true"))
                    .tags(sm_tag(TAG_PATH, coffer_path))
                    .send()
                    .await
                    .map_err(|e| sdk_error("creating a secret", e))?;
            }
        }
        // Version id -> its staging labels.
        let stages = |c: &sm::Client| {
            let c = c.clone();
            let name = name.to_string();
            async move {
                let mut out: Vec<(String, Vec<String>)> = Vec::new();
                let mut next: Option<String> = None;
                loop {
                    let page = c
                        .list_secret_version_ids()
                        .secret_id(&name)
                        .include_deprecated(true)
                        .max_results(100)
                        .set_next_token(next.take())
                        .send()
                        .await
                        .map_err(|e| sdk_error("listing the versions of a secret", e))?;
                    for v in page.versions() {
                        if let Some(id) = v.version_id() {
                            out.push((id.to_string(), v.version_stages().to_vec()));
                        }
                    }
                    match page.next_token() {
                        Some(t) if !t.is_empty() => next = Some(t.to_string()),
                        _ => break,
                    }
                }
                Ok::<_, SyncError>(out)
            }
        };
        let mut listed = if exists { stages(c).await? } else { Vec::new() };
        let holder = |listed: &[(String, Vec<String>)], label: &str| {
            listed
                .iter()
                .find(|(_, s)| s.iter().any(|l| l == label))
                .map(|(id, _)| id.clone())
        };
        // A `coffer-vN` label is only a claim: anyone who can write the
        // secret can put it on a value of their own. Before any change,
        // each marker coffer would reuse must hold coffer's version N
        // (compared by digest in constant time). A dry run has no values
        // (it reads metadata only) and says it would verify.
        for want in [
            plan.previous.as_ref(),
            Some(&plan.current),
            plan.pending.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            let marker = version_marker(want.version);
            let Some(id) = holder(&listed, &marker) else {
                continue;
            };
            if dry_run {
                changes.push(format!(
                    "would verify that {marker} holds coffer version {}",
                    want.version
                ));
                continue;
            }
            let same = match self.sm_value(c, name, Some(&id), None).await? {
                CloudValue::Text(t) => crate::mapping::ValueDigest::of(&t)
                    .same(&crate::mapping::ValueDigest::of(want.value)),
                CloudValue::Binary => false,
            };
            if same {
                continue;
            }
            if !plan.force {
                return Err(SyncError::new(
                    ErrorKind::Conflict,
                    format!(
                        "{name}: the version labelled {marker} does not hold coffer version {} \
                         (changed outside coffer); nothing was changed; --force replaces it",
                        want.version
                    ),
                ));
            }
            // --force: the planted version loses the marker; a fresh
            // version with coffer's value gets it below.
            changes.push(format!(
                "remove {marker} from a version coffer did not write"
            ));
            c.update_secret_version_stage()
                .secret_id(name)
                .version_stage(&marker)
                .remove_from_version_id(&id)
                .send()
                .await
                .map_err(|e| sdk_error("moving a staging label", e))?;
            listed = stages(c).await?;
        }
        // Each labelled coffer version's cloud version id ("" for one a
        // dry run would add).
        let mut ids: Vec<(&str, Option<String>)> = Vec::new();
        for (label, want) in [
            (AWSPREVIOUS, plan.previous.as_ref()),
            (AWSCURRENT, Some(&plan.current)),
            (AWSPENDING, plan.pending.as_ref()),
        ] {
            let Some(want) = want else {
                ids.push((label, None));
                continue;
            };
            let marker = version_marker(want.version);
            let id = match holder(&listed, &marker) {
                Some(id) => id,
                None => {
                    changes.push(format!("add coffer version {} ({marker})", want.version));
                    if dry_run {
                        String::new()
                    } else {
                        let id = c
                            .put_secret_value()
                            .secret_id(name)
                            .secret_string(want.value.expose_secret())
                            .version_stages(&marker)
                            .send()
                            .await
                            .map_err(|e| sdk_error("writing a secret's value", e))?
                            .version_id()
                            .unwrap_or_default()
                            .to_string();
                        listed = stages(c).await?;
                        id
                    }
                }
            };
            ids.push((label, Some(id)));
        }
        // AWSCURRENT first: moving it moves AWSPREVIOUS to the version it
        // left, which the next step puts right.
        ids.sort_by_key(|(label, _)| u8::from(*label != AWSCURRENT));
        for (label, target) in &ids {
            let held = holder(&listed, label);
            if held.as_deref() == target.as_deref() && !(dry_run && target.as_deref() == Some("")) {
                continue;
            }
            let version_of = |id: &str| {
                listed
                    .iter()
                    .find(|(i, _)| i == id)
                    .and_then(|(_, s)| s.iter().find(|l| l.starts_with("coffer-v")).cloned())
                    .unwrap_or_else(|| "a new version".into())
            };
            match target {
                Some(t) => changes.push(format!(
                    "move {label} to {}",
                    if t.is_empty() {
                        "a new version".into()
                    } else {
                        version_of(t)
                    }
                )),
                None => changes.push(format!("remove {label}")),
            }
            if dry_run {
                continue;
            }
            if target.is_none() && held.is_none() {
                continue;
            }
            c.update_secret_version_stage()
                .secret_id(name)
                .version_stage(*label)
                .set_move_to_version_id(target.clone())
                .set_remove_from_version_id(held)
                .send()
                .await
                .map_err(|e| sdk_error("moving a staging label", e))?;
            listed = stages(c).await?;
        }
        // Markers of coffer versions no longer labelled.
        let keep: Vec<String> = [
            plan.previous.as_ref(),
            Some(&plan.current),
            plan.pending.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|l| version_marker(l.version))
        .collect();
        let stale: Vec<(String, String)> = listed
            .iter()
            .flat_map(|(id, s)| {
                s.iter()
                    .filter(|l| l.starts_with("coffer-v") && !keep.contains(l))
                    .map(move |l| (id.clone(), l.clone()))
            })
            .collect();
        for (id, marker) in stale {
            changes.push(format!("remove {marker}"));
            if !dry_run {
                c.update_secret_version_stage()
                    .secret_id(name)
                    .version_stage(marker)
                    .remove_from_version_id(id)
                    .send()
                    .await
                    .map_err(|e| sdk_error("removing a staging label", e))?;
            }
        }
        let current = ids
            .iter()
            .find(|(l, _)| *l == AWSCURRENT)
            .and_then(|(_, id)| id.clone())
            .unwrap_or_default();
        if !dry_run && !changes.is_empty() {
            c.tag_resource()
                .secret_id(name)
                .tags(sm_tag(TAG_MANAGED, "true"))
                .tags(sm_tag(TAG_PATH, coffer_path))
                .tags(sm_tag(TAG_SYNCED, &current))
                .send()
                .await
                .map_err(|e| sdk_error("tagging a secret", e))?;
        }
        Ok((changes, current))
    }
}
