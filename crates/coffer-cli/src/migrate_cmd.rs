//! `coffer migrate from-vault`: copies the secrets of a KV version 2 mount of
//! a running Vault or OpenBao, every version with its time and state, and
//! its ACL policies (translated by `coffer_policy::vault`) into coffer.
//!
//! The source is only read (LIST and GET; nothing is undeleted or
//! otherwise changed there). Each secret goes to coffer in one request,
//! `PUT /api/v1/history/{path}`, which writes its whole history in one
//! transaction, or appends the versions coffer lacks to a secret an
//! earlier run wrote, or changes nothing when it holds them all; the
//! server compares values, so this command keeps none on disk and a run
//! that stopped half way resumes where it stopped. Policies are written
//! only where coffer has none of that name, and are otherwise compared.
//!
//! What cannot be carried over exactly is never approximated: a secret with
//! a value that is not a string (a number, a list, ...) is not migrated,
//! and a policy that coffer cannot express exactly is not written; both are
//! listed, by name, with why. A version deleted in the source, whose value
//! the source serves only after an undelete, is kept as a destroyed version
//! (no value), and versions the source pruned (`max_versions`) as destroyed
//! placeholders, so version numbers stay the same; each is noted.
//!
//! Nothing printed holds a value: the report names secrets, versions,
//! field names and policies only. Text from the source (names, error
//! messages) is shown through [`output::visible`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use coffer_api::{HistoryEntry, HistoryRequest, WireValue};
use coffer_client::{Client, ClientError, ErrorKind};
use coffer_crypto::SecretString;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::json;

use crate::exit::{Status, fail};
use crate::{output, settings};

/// Largest answer accepted from the source: a hostile server's endless
/// body is cut off here (coffer itself keeps values of at most 16 MiB).
const MAX_ANSWER: usize = 32 * 1024 * 1024;
/// Deepest folder nesting followed in the source (a server that answers
/// every folder with another folder would otherwise never end).
const MAX_DEPTH: usize = 64;
/// Most secrets one run reads.
const MAX_SECRETS: usize = 1_000_000;
/// Longest error text from the source shown.
const MAX_SHOWN: usize = 300;

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Copy a Vault or OpenBao KV version 2 mount (every secret with all
    /// its versions, deleted and destroyed ones included) and its ACL
    /// policies into coffer. The source is only read.
    #[command(after_help = "Examples:
  export VAULT_TOKEN=...                           # or BAO_TOKEN; never on the command line
  coffer migrate from-vault --vault-addr https://vault.example.com:8200 --dry-run
  coffer migrate from-vault --vault-addr https://vault.example.com:8200
  coffer migrate from-vault --vault-addr http://127.0.0.1:8200 --mount kv --prefix team-a/ --to legacy/
  coffer migrate from-vault --vault-addr $VAULT_ADDR --token-file ~/.vault-token --json

The source address is --vault-addr, else VAULT_ADDR, else BAO_ADDR; its token
is read from --token-file, else VAULT_TOKEN, else BAO_TOKEN. coffer's own
address and token are the usual COFFER_ADDR and COFFER_TOKEN (or --addr and
`coffer login`); the coffer token needs admin on sys/import and read and
create on the paths written (and admin on sys/policies for the policies).

The Vault secret MOUNT/PREFIX... becomes the coffer secret TO + its path
below the mount, with the same version numbers, times and states:
  - a value {\"value\": \"text\"} alone becomes text, an object of string
    fields becomes fields; a secret with any other JSON value (a number,
    boolean, null, list or object) in any version is not migrated, and
    listed with the field names and types (never values);
  - a version deleted in the source is kept as destroyed (its value cannot
    be read there without undeleting it, which this command never does);
  - versions the source no longer keeps (max_versions) become destroyed
    placeholders; custom metadata and mount settings are listed, not kept.
Each secret is written in one transaction. Running again changes nothing,
appends versions written in the source since, and reports a secret whose
coffer history differs as a conflict without changing it; a run that
stopped resumes. Policies are translated exactly or listed as not mapped,
with the line; a coffer policy of the same name is never replaced. The
mount must be KV version 2; the source's other mounts are listed, not
copied (run again with --mount for another KV version 2 mount).

Exit status: 0 when everything that could be mapped is in coffer (what
could not is listed), 8 when something in coffer differs, 1 when a secret
or policy failed otherwise, 7 with --strict when anything was not mapped
or when the mount is not KV version 2; 4, 6 when the source or coffer
refuse or cannot be reached at all.")]
    FromVault(FromVaultArgs),
}

#[derive(Debug, Args)]
pub struct FromVaultArgs {
    /// The source server, such as https://vault.example.com:8200 (default:
    /// VAULT_ADDR, else BAO_ADDR).
    #[arg(long, value_name = "URL")]
    pub vault_addr: Option<String>,
    /// CA certificate (PEM) to trust for an https source (default: VAULT_CACERT).
    #[arg(long, value_name = "FILE")]
    pub vault_cacert: Option<PathBuf>,
    /// A file holding the source's token (default: VAULT_TOKEN, else BAO_TOKEN).
    #[arg(long, visible_alias = "vault-token-file", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The KV version 2 mount to copy.
    #[arg(long, default_value = "secret", value_name = "NAME")]
    pub mount: String,
    /// Only the secrets under this folder of the mount (such as `app/`).
    #[arg(long, value_name = "FOLDER")]
    pub prefix: Option<String>,
    /// The coffer folder the mount's secrets go under (default: the top,
    /// as coffer's Vault API shows the mount `secret`).
    #[arg(long, value_name = "FOLDER")]
    pub to: Option<String>,
    /// Read everything and say what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Leave the policies out.
    #[arg(long, conflicts_with = "no_secrets")]
    pub no_policies: bool,
    /// Leave the secrets out (policies only).
    #[arg(long)]
    pub no_secrets: bool,
    /// Exit 7 when anything could not be mapped.
    #[arg(long)]
    pub strict: bool,
    /// Seconds to wait for each answer of either server.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(g: &crate::cli::Global, c: MigrateCommand) -> anyhow::Result<Status> {
    match c {
        MigrateCommand::FromVault(a) => from_vault(g, a).await,
    }
}

// ---- the source --------------------------------------------------------

/// A read-only client of a Vault or OpenBao server.
struct Source {
    client: Client,
    token: SecretString,
}

/// A failure of the source, with the status to exit with.
struct SourceError {
    status: Status,
    message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ClientError> for SourceError {
    fn from(e: ClientError) -> Self {
        SourceError {
            status: match e.kind {
                ErrorKind::Unreachable => Status::Unreachable,
                ErrorKind::Config => Status::Usage,
                _ => Status::Other,
            },
            message: e.message,
        }
    }
}

/// Vault's error body.
#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<String>,
}

impl Source {
    /// GETs `/v1/PATH?QUERY` (path segments already encoded): `Ok(None)` on
    /// 404, the body on 200, an error that says what the source answered
    /// otherwise.
    async fn get(
        &self,
        path: &str,
        query: &str,
    ) -> Result<Option<coffer_crypto::SecretBytes>, SourceError> {
        let url = if query.is_empty() {
            format!("/v1/{path}")
        } else {
            format!("/v1/{path}?{query}")
        };
        let (status, body) = self
            .client
            .get_from_address(&url, ("x-vault-token", &self.token), MAX_ANSWER)
            .await?;
        match status {
            200 => Ok(Some(body)),
            404 => Ok(None),
            _ => {
                // The errors Vault names, never the body itself (which
                // might hold anything).
                let said = serde_json::from_slice::<Errors>(body.expose_secret())
                    .map(|e| e.errors.join("; "))
                    .unwrap_or_default();
                let said = shown(&said);
                Err(SourceError {
                    status: match status {
                        401 | 403 => Status::Denied,
                        503 => Status::Sealed,
                        _ => Status::Other,
                    },
                    message: if said.is_empty() {
                        format!("the source answered {status} to GET /v1/{}", shown(path))
                    } else {
                        format!(
                            "the source answered {status} to GET /v1/{}: {said}",
                            shown(path)
                        )
                    },
                })
            }
        }
    }

    /// The keys of a folder (`LIST`, as `GET ?list=true`); none when the
    /// folder does not exist.
    async fn list(&self, path: &str) -> Result<Vec<String>, SourceError> {
        #[derive(Deserialize)]
        struct Keys {
            #[serde(default)]
            keys: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Answer {
            data: Option<Keys>,
        }
        let Some(body) = self.get(path, "list=true").await? else {
            return Ok(Vec::new());
        };
        let answer: Answer = parse(&body, path)?;
        Ok(answer.data.map(|d| d.keys).unwrap_or_default())
    }
}

/// Parses a JSON answer of the source, saying which answer did not parse
/// (by position, never quoting it).
fn parse<T: for<'de> Deserialize<'de>>(
    body: &coffer_crypto::SecretBytes,
    path: &str,
) -> Result<T, SourceError> {
    serde_json::from_slice(body.expose_secret()).map_err(|e| SourceError {
        status: Status::Other,
        message: format!(
            "the source's answer to GET /v1/{} is not what Vault answers (line {}, column {})",
            shown(path),
            e.line(),
            e.column()
        ),
    })
}

/// Source text made safe to show: visible characters, at most
/// [`MAX_SHOWN`] of them.
fn shown(text: &str) -> String {
    let visible = output::visible(text);
    if visible.chars().count() > MAX_SHOWN {
        let cut: String = visible.chars().take(MAX_SHOWN).collect();
        format!("{cut}...")
    } else {
        visible.into_owned()
    }
}

/// A secret's metadata as KV version 2 answers it (no values).
#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    current_version: u64,
    #[serde(default)]
    created_time: String,
    #[serde(default)]
    versions: BTreeMap<String, VersionMeta>,
    #[serde(default)]
    custom_metadata: Option<BTreeMap<String, IgnoredAny>>,
    #[serde(default)]
    max_versions: u64,
    #[serde(default)]
    cas_required: bool,
    #[serde(default)]
    delete_version_after: Option<String>,
}

#[derive(Deserialize)]
struct VersionMeta {
    #[serde(default)]
    created_time: String,
    #[serde(default)]
    deletion_time: String,
    #[serde(default)]
    destroyed: bool,
}

/// One field of a version's data: a string (the value, moved into the
/// value sent to coffer), or the JSON type of anything else (the value
/// itself is skipped while parsing, never kept). No `Debug`.
enum Field {
    Text(String),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(Field::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Field, E> {
                Ok(Field::Text(v))
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
                Ok(Field::Other("null"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other("a list"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

impl Drop for Field {
    fn drop(&mut self) {
        if let Field::Text(s) = self {
            zeroize::Zeroize::zeroize(s);
        }
    }
}

/// A version's data answer: `data.data` is the value (null when deleted).
#[derive(Deserialize)]
struct DataAnswer {
    data: Option<DataInner>,
}

#[derive(Deserialize)]
struct DataInner {
    data: Option<BTreeMap<String, Field>>,
}

/// A version's data in coffer's terms: text when it is `{"value": TEXT}`
/// alone (as coffer's Vault API reads text back), fields when every value
/// is a string; otherwise why not (field names and types, never values).
fn to_value(data: BTreeMap<String, Field>) -> Result<WireValue, String> {
    let others: Vec<String> = data
        .iter()
        .filter_map(|(name, f)| match f {
            Field::Other(kind) => Some(format!("field {:?} is {kind}", shown(name))),
            Field::Text(_) => None,
        })
        .collect();
    if !others.is_empty() {
        return Err(format!("{} (coffer keeps strings only)", others.join(", ")));
    }
    let mut fields: BTreeMap<String, String> = data
        .into_iter()
        .map(|(name, mut f)| match &mut f {
            Field::Text(s) => (name, std::mem::take(s)),
            Field::Other(_) => unreachable!("refused above"),
        })
        .collect();
    if fields.len() == 1
        && let Some(text) = fields.remove("value")
    {
        return Ok(WireValue::Text(text));
    }
    Ok(WireValue::Fields(fields))
}

// ---- the plan ------------------------------------------------------------

/// What happened to one secret or policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// Written (in a dry run: would be).
    Created,
    /// Versions added after those an earlier run wrote.
    Appended,
    /// Already in coffer, the same.
    Unchanged,
    /// coffer has something else under that name; left alone.
    Conflict,
    /// Cannot be carried over exactly; not written.
    NotMapped,
    /// Reading or writing failed.
    Failed,
}

impl Outcome {
    fn shown(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Outcome::Created, false) => "created",
            (Outcome::Created, true) => "would create",
            (Outcome::Appended, false) => "appended",
            (Outcome::Appended, true) => "would append",
            (Outcome::Unchanged, _) => "unchanged",
            (Outcome::Conflict, _) => "conflict",
            (Outcome::NotMapped, _) => "not mapped",
            (Outcome::Failed, _) => "failed",
        }
    }
}

/// One line of the report. Names only, never a value.
#[derive(Debug, serde::Serialize)]
struct Line {
    /// The name in the source (a path below the mount, or a policy name).
    source: String,
    /// The coffer path or policy name (absent when none could be made).
    #[serde(skip_serializing_if = "Option::is_none")]
    coffer: Option<String>,
    outcome: Outcome,
    /// The versions written (or that would be).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    versions: Vec<u64>,
    /// Why, for a conflict, a failure or what was not mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
    /// What was kept differently than in the source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

impl Line {
    fn new(source: &str, coffer: Option<&str>, outcome: Outcome) -> Line {
        Line {
            source: source.to_string(),
            coffer: coffer.map(str::to_string),
            outcome,
            versions: Vec::new(),
            why: None,
            notes: Vec::new(),
        }
    }

    fn why(mut self, why: impl Into<String>) -> Line {
        self.why = Some(why.into());
        self
    }
}

/// A folder argument as a folder: no leading slash, one trailing slash
/// (empty for the top).
fn folder(arg: Option<&str>) -> String {
    let trimmed = arg.unwrap_or("").trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

/// Whether a key a LIST answered is one this command can follow or read:
/// one segment (a folder ends in `/`), not `.` or `..`, no control
/// character. A hostile server may answer anything.
fn usable_key(key: &str) -> bool {
    let name = key.strip_suffix('/').unwrap_or(key);
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

async fn from_vault(g: &crate::cli::Global, a: FromVaultArgs) -> anyhow::Result<Status> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let addr = a
        .vault_addr
        .clone()
        .or_else(|| env("VAULT_ADDR"))
        .or_else(|| env("BAO_ADDR"))
        .ok_or_else(|| {
            fail(
                Status::Usage,
                "give the source's address with --vault-addr (or VAULT_ADDR or BAO_ADDR)",
            )
        })?;
    let token = source_token(&a)?;
    if let Some(host) = plain_http_host(&addr) {
        eprintln!(
            "coffer: warning: the source's token and values travel unencrypted to {}; \
             use https:// unless it is this machine",
            shown(&host)
        );
    }
    let mounts = coffer_policy::vault::Mounts::new(vec![
        coffer_policy::vault::Mount::new(&a.mount, &folder(a.to.as_deref()))
            .map_err(|e| fail(Status::Usage, e.to_string()))?,
    ])
    .map_err(|e| fail(Status::Usage, e.to_string()))?;
    let timeout = Duration::from_secs(a.timeout.max(1));
    let mut builder = Client::builder(&addr).timeout(timeout);
    if let Some(ca) = a
        .vault_cacert
        .clone()
        .or_else(|| env("VAULT_CACERT").map(PathBuf::from))
    {
        builder = builder.ca_cert(ca);
    }
    let source = Source {
        client: builder.build()?,
        token,
    };
    let coffer = {
        let mut b = settings::client_builder(g).timeout(timeout);
        if let Some(t) = settings::resolve_token()? {
            b = b.secret_token(t);
        }
        b.build()?
    };

    let mut secrets = Vec::new();
    let mut policies = Vec::new();
    let mut mounts_seen = Vec::new();
    let mut fatal: Option<SourceError> = None;
    if !a.no_secrets {
        // A mount that is not KV version 2 (or a name mistyped) must not
        // look like an empty one.
        if let Err(e) = check_mount(&source, &a.mount).await {
            fatal = Some(e);
        } else {
            other_mounts(&source, &a.mount, &mut mounts_seen).await;
            if let Err(e) = migrate_secrets(&source, &coffer, &a, &mut secrets).await {
                fatal = Some(e);
            }
        }
    }
    if !a.no_policies && fatal.is_none() {
        match beyond_the_mount(&coffer, &a, &secrets).await {
            // Policies of a mount mapped onto the whole tree would reach
            // what coffer held before.
            Some(why) => policies_refused(&source, &why, &mut policies).await,
            None => {
                if let Err(e) =
                    migrate_policies(&source, &coffer, &mounts, a.dry_run, &mut policies).await
                {
                    fatal = Some(e);
                }
            }
        }
    }
    report(&a, &secrets, &policies, &mounts_seen, fatal.as_ref())?;
    if let Some(e) = fatal {
        return Err(fail(e.status, e.message));
    }
    let all = || secrets.iter().chain(&policies).chain(&mounts_seen);
    let any = |o: Outcome| all().any(|l| l.outcome == o);
    Ok(if any(Outcome::Failed) {
        Status::Other
    } else if any(Outcome::Conflict) {
        Status::Conflict
    } else if a.strict && any(Outcome::NotMapped) {
        Status::Invalid
    } else {
        Status::Ok
    })
}

/// The host of an `http://` address that is not this machine's loopback.
fn plain_http_host(addr: &str) -> Option<String> {
    let rest = addr.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| host.to_string())
}

/// The source's token: from `--token-file`, else `VAULT_TOKEN`, else
/// `BAO_TOKEN`. Never from the command line.
fn source_token(a: &FromVaultArgs) -> anyhow::Result<SecretString> {
    let raw = match &a.token_file {
        Some(file) => {
            let bytes = std::fs::read(file).map_err(|e| {
                fail(
                    Status::Usage,
                    format!("cannot read the token file {}: {e}", file.display()),
                )
            })?;
            let text = String::from_utf8(bytes)
                .map_err(|_| fail(Status::Usage, "the token file is not UTF-8 text"))?;
            SecretString::new(text)
        }
        None => SecretString::new(
            std::env::var("VAULT_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .or_else(|| std::env::var("BAO_TOKEN").ok().filter(|t| !t.is_empty()))
                .ok_or_else(|| {
                    fail(
                        Status::Usage,
                        "set VAULT_TOKEN (or BAO_TOKEN) to the source's token, or give --token-file",
                    )
                })?,
        ),
    };
    let token = raw.expose_secret().trim();
    if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(fail(
            Status::Usage,
            "the source's token is empty or holds spaces or control characters",
        ));
    }
    Ok(SecretString::from(token))
}

/// Checks that `mount` is a KV version 2 mount of the source (the
/// preflight Vault's own `kv` commands make).
async fn check_mount(source: &Source, mount: &str) -> Result<(), SourceError> {
    #[derive(Deserialize)]
    struct Options {
        #[serde(default)]
        version: Option<String>,
    }
    #[derive(Deserialize)]
    struct Info {
        #[serde(default, rename = "type")]
        kind: String,
        #[serde(default)]
        options: Option<Options>,
    }
    #[derive(Deserialize)]
    struct Answer {
        data: Info,
    }
    let path = format!(
        "sys/internal/ui/mounts/{}",
        coffer_api::routes::encode_segment(mount)
    );
    let cannot = |why: String| SourceError {
        status: Status::Invalid,
        message: format!("cannot migrate mount {}: {why}", shown(mount)),
    };
    let body = match source.get(&path, "").await {
        Ok(Some(body)) => body,
        Ok(None) => return Err(cannot("the source has no such mount".into())),
        Err(e) => {
            return Err(SourceError {
                status: e.status,
                message: format!("cannot migrate mount {}: {}", shown(mount), e.message),
            });
        }
    };
    let info = parse::<Answer>(&body, &path)?.data;
    let version = info.options.and_then(|o| o.version).unwrap_or_default();
    if info.kind != "kv" || version != "2" {
        return Err(cannot(format!(
            "it is a {} mount{}, not KV version 2",
            shown(&info.kind),
            if version.is_empty() {
                String::new()
            } else {
                format!(" (version {})", shown(&version))
            }
        )));
    }
    Ok(())
}

/// Lists the source's other secret mounts, which this run does not copy.
/// A token that may not list mounts leaves one line saying so.
async fn other_mounts(source: &Source, migrated: &str, out: &mut Vec<Line>) {
    #[derive(Deserialize)]
    struct Options {
        #[serde(default)]
        version: Option<String>,
    }
    #[derive(Deserialize)]
    struct Info {
        #[serde(default, rename = "type")]
        kind: String,
        #[serde(default)]
        options: Option<Options>,
    }
    #[derive(Deserialize)]
    struct Answer {
        data: BTreeMap<String, Info>,
    }
    let listed = match source.get("sys/mounts", "").await {
        Ok(Some(body)) => parse::<Answer>(&body, "sys/mounts").map(|a| a.data),
        Ok(None) => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    };
    let mounts = match listed {
        Ok(m) => m,
        Err(e) => {
            out.push(Line::new("(all)", None, Outcome::NotMapped).why(format!(
                "the source's other mounts could not be listed: {}",
                e.message
            )));
            return;
        }
    };
    for (name, info) in mounts {
        let bare = name.trim_end_matches('/');
        // The source's own: its system, identity and per-token storage.
        if bare == migrated.trim_matches('/')
            || matches!(info.kind.as_str(), "system" | "identity" | "cubbyhole")
        {
            continue;
        }
        let version = info.options.and_then(|o| o.version).unwrap_or_default();
        let why = match (info.kind.as_str(), version.as_str()) {
            ("kv", "2") => format!(
                "another KV version 2 mount: run again with --mount {} (and --to a folder of its own)",
                shown(bare)
            ),
            ("kv", _) => "a KV version 1 mount: coffer migrates KV version 2 mounts".into(),
            (kind, _) => format!("a {} mount: coffer has no such engine", shown(kind)),
        };
        out.push(Line::new(&name, None, Outcome::NotMapped).why(why));
    }
}

/// Reads every secret under the mount (and prefix) and migrates each.
/// An error returned is one that stops the run (the source cannot be
/// listed at all); a secret that fails is a line of the report.
async fn migrate_secrets(
    source: &Source,
    coffer: &Client,
    a: &FromVaultArgs,
    out: &mut Vec<Line>,
) -> Result<(), SourceError> {
    let mount = a.mount.trim_matches('/');
    let to = folder(a.to.as_deref());
    let start = folder(a.prefix.as_deref());
    if !start.split('/').filter(|s| !s.is_empty()).all(usable_key) {
        return Err(SourceError {
            status: Status::Usage,
            message: format!("--prefix {} is not a folder path", shown(&start)),
        });
    }
    // Depth-first over the folders, in the order the source lists them.
    let mut folders = vec![(start, 0usize)];
    let mut seen = 0usize;
    let mut first = true;
    while let Some((dir, depth)) = folders.pop() {
        let list_path = format!(
            "{}/metadata/{}",
            coffer_api::routes::encode_segment(mount),
            coffer_api::routes::encode_path(&dir)
        );
        let keys = match source.list(&list_path).await {
            Ok(keys) => keys,
            // The first listing decides whether the run can go on at all.
            Err(e) if first => return Err(e),
            Err(e) => {
                out.push(Line::new(&dir, None, Outcome::Failed).why(e.message));
                continue;
            }
        };
        first = false;
        let mut below = Vec::new();
        for key in keys {
            if !usable_key(&key) {
                out.push(
                    Line::new(&format!("{dir}{key}"), None, Outcome::NotMapped).why(
                        "not a usable name (empty, . or .., a / inside, or a control character)",
                    ),
                );
                continue;
            }
            if key.ends_with('/') {
                if depth + 1 >= MAX_DEPTH {
                    out.push(
                        Line::new(&format!("{dir}{key}"), None, Outcome::NotMapped)
                            .why(format!("folders nest deeper than {MAX_DEPTH}")),
                    );
                } else {
                    below.push((format!("{dir}{key}"), depth + 1));
                }
                continue;
            }
            seen += 1;
            if seen > MAX_SECRETS {
                return Err(SourceError {
                    status: Status::Other,
                    message: format!("the source lists more than {MAX_SECRETS} secrets"),
                });
            }
            let rel = format!("{dir}{key}");
            let line = migrate_secret(source, coffer, mount, &rel, &to, a.dry_run).await;
            out.push(line);
        }
        // Popped from the end: push in reverse to visit in listed order.
        folders.extend(below.into_iter().rev());
    }
    Ok(())
}

/// Migrates one secret (its path below the mount is `rel`).
async fn migrate_secret(
    source: &Source,
    coffer: &Client,
    mount: &str,
    rel: &str,
    to: &str,
    dry_run: bool,
) -> Line {
    let target = format!("{to}{rel}");
    let coffer_path = match coffer_core::SecretPath::parse(&target) {
        Ok(p) if p.as_str() == target => target,
        Ok(_) | Err(_) => {
            return Line::new(rel, None, Outcome::NotMapped)
                .why("not a valid coffer path (segments of letters, digits and _ - . @ : = , ~)");
        }
    };
    let mut line = Line::new(rel, Some(&coffer_path), Outcome::Failed);
    let history = match read_history(source, mount, rel, &mut line.notes).await {
        Ok(Ok(history)) => history,
        Ok(Err(not_mapped)) => {
            line.outcome = Outcome::NotMapped;
            return line.why(not_mapped);
        }
        Err(e) => return line.why(e.message),
    };
    let request = HistoryRequest {
        versions: history,
        dry_run,
    };
    match coffer.import_history(&coffer_path, &request).await {
        Ok(r) => {
            line.outcome = match r.outcome.as_str() {
                "created" => Outcome::Created,
                "appended" => Outcome::Appended,
                _ => Outcome::Unchanged,
            };
            line.versions = r.written;
            line
        }
        Err(e) if e.kind == ErrorKind::Conflict => {
            line.outcome = Outcome::Conflict;
            line.why(e.message)
        }
        Err(e) if e.kind == ErrorKind::Invalid => {
            line.outcome = Outcome::NotMapped;
            line.why(format!("coffer refused it: {}", e.message))
        }
        Err(e) => line.why(e.message),
    }
}

/// A secret's whole history from the source, version 1 first: `Ok(Err)`
/// when it cannot be carried over exactly (why), `Err` when reading failed.
async fn read_history(
    source: &Source,
    mount: &str,
    rel: &str,
    notes: &mut Vec<String>,
) -> Result<Result<Vec<HistoryEntry>, String>, SourceError> {
    let encoded = coffer_api::routes::encode_path(rel);
    let mount = coffer_api::routes::encode_segment(mount);
    let meta_path = format!("{mount}/metadata/{encoded}");
    let Some(body) = source.get(&meta_path, "").await? else {
        return Err(SourceError {
            status: Status::NotFound,
            message: "listed by the source, but gone when read".into(),
        });
    };
    #[derive(Deserialize)]
    struct Answer {
        data: Metadata,
    }
    let meta = parse::<Answer>(&body, &meta_path)?.data;
    let current = meta.current_version;
    if current == 0 {
        return Ok(Err("it has no versions".into()));
    }
    if current > coffer_core::MAX_HISTORY as u64 {
        return Ok(Err(format!(
            "it has {current} versions; coffer takes histories of at most {}",
            coffer_core::MAX_HISTORY
        )));
    }
    let now = time::OffsetDateTime::now_utc();
    let parse_time = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    };
    if parse_time(&meta.created_time).is_none() {
        return Ok(Err("the source gave no valid creation time".into()));
    }
    if meta.custom_metadata.as_ref().is_some_and(|m| !m.is_empty()) {
        let names: Vec<String> = meta
            .custom_metadata
            .iter()
            .flat_map(|m| m.keys())
            .map(|k| format!("{:?}", shown(k)))
            .collect();
        notes.push(format!(
            "custom metadata not kept (coffer has no such field): {}",
            names.join(", ")
        ));
    }
    if meta.cas_required {
        notes
            .push("cas_required not kept (coffer's writes take a check-and-set when asked)".into());
    }
    if meta.max_versions > 0 {
        notes.push(format!(
            "max_versions {} not kept (coffer keeps every version)",
            meta.max_versions
        ));
    }
    if let Some(after) = meta
        .delete_version_after
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "0s")
    {
        notes.push(format!(
            "delete_version_after {} not kept (coffer deletes no version by itself)",
            shown(after)
        ));
    }
    let mut pruned = Vec::new();
    let mut deleted = Vec::new();
    let mut history = Vec::with_capacity(current as usize);
    for n in 1..=current {
        let destroyed = |created: &str, at: &str| HistoryEntry {
            version: n,
            created_at: created.to_string(),
            state: "destroyed".into(),
            state_at: Some(at.to_string()),
            value: None,
        };
        let Some(v) = meta.versions.get(&n.to_string()) else {
            // Pruned by the source (max_versions): kept as a destroyed
            // placeholder so that the numbers stay the source's.
            pruned.push(n);
            history.push(destroyed(&meta.created_time, &meta.created_time));
            continue;
        };
        let Some(created) = parse_time(&v.created_time) else {
            return Ok(Err(format!(
                "version {n} has no valid creation time in the source"
            )));
        };
        let deletion = if v.deletion_time.is_empty() {
            None
        } else {
            match parse_time(&v.deletion_time) {
                Some(t) => Some(t),
                None => {
                    return Ok(Err(format!(
                        "version {n} has an invalid deletion time in the source"
                    )));
                }
            }
        };
        // A deletion or destruction time before the write would be refused
        // by coffer; the source's clock is not ours to fix.
        // Nor is a time in the future (a destruction the source dates
        // ahead) one coffer keeps: it becomes now.
        let state_at = |t: time::OffsetDateTime| {
            let t = t.min(now);
            if t < created {
                v.created_time.clone()
            } else {
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| v.created_time.clone())
            }
        };
        if v.destroyed {
            let at = deletion.map_or_else(|| v.created_time.clone(), state_at);
            history.push(destroyed(&v.created_time, &at));
            continue;
        }
        match deletion {
            Some(t) if t <= now => {
                deleted.push(n);
                history.push(destroyed(&v.created_time, &state_at(t)));
                continue;
            }
            Some(_) => notes.push(format!(
                "version {n} is due for deletion in the source; it stays in coffer"
            )),
            None => {}
        }
        let data_path = format!("{mount}/data/{encoded}");
        let Some(body) = source.get(&data_path, &format!("version={n}")).await? else {
            return Err(SourceError {
                status: Status::Conflict,
                message: format!(
                    "version {n} was deleted in the source while being read; run again"
                ),
            });
        };
        let answer: DataAnswer = parse(&body, &data_path)?;
        let Some(data) = answer.data.and_then(|d| d.data) else {
            return Err(SourceError {
                status: Status::Conflict,
                message: format!("version {n} has no data in the source's answer; run again"),
            });
        };
        match to_value(data) {
            Ok(value) => history.push(HistoryEntry {
                version: n,
                created_at: v.created_time.clone(),
                state: "active".into(),
                state_at: None,
                value: Some(value),
            }),
            Err(why) => return Ok(Err(format!("version {n}: {why}"))),
        }
    }
    if !pruned.is_empty() {
        notes.push(format!(
            "{} no longer kept by the source: destroyed placeholders",
            versions_are(&pruned)
        ));
    }
    if !deleted.is_empty() {
        notes.push(format!(
            "{} deleted in the source, which serves values of deleted versions only after an \
             undelete: kept as destroyed (no value)",
            versions_are(&deleted)
        ));
    }
    Ok(Ok(history))
}

/// `version 2 is` or `versions 1-3, 5 are`.
fn versions_are(numbers: &[u64]) -> String {
    if numbers.len() == 1 {
        format!("version {} is", numbers[0])
    } else {
        format!("versions {} are", ranges(numbers))
    }
}

/// `1-3, 5` for `[1, 2, 3, 5]`.
fn ranges(numbers: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end + 1 {
            i += 1;
            end = numbers[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(", ")
}

/// Why policies are not migrated, when the mount is mapped onto the whole
/// coffer tree (no `--to`) and coffer holds secrets that did not come from
/// it: a migrated `secret/data/*` grant would reach them too. `None` when
/// a folder is given, or everything coffer holds is the mount's.
async fn beyond_the_mount(coffer: &Client, a: &FromVaultArgs, secrets: &[Line]) -> Option<String> {
    if !folder(a.to.as_deref()).is_empty() {
        return None;
    }
    let options = coffer_client::ListOptions {
        recursive: true,
        include_deleted: true,
        ..Default::default()
    };
    let held = match coffer.list_all("", &options).await {
        Ok(entries) => entries,
        Err(e) => {
            return Some(format!(
                "without --to, the mount maps onto all of coffer, and coffer cannot be listed to check that it holds nothing else ({}); run again with --to FOLDER",
                e.message
            ));
        }
    };
    let migrated: std::collections::HashSet<&str> =
        secrets.iter().filter_map(|l| l.coffer.as_deref()).collect();
    let others = held
        .iter()
        .filter(|e| !e.folder && !migrated.contains(e.name.as_str()))
        .count();
    (others > 0).then(|| {
        format!(
            "without --to, the mount maps onto all of coffer, which holds {others} secret(s) that did not come from it: a migrated grant such as secret/data/* would reach them too; run again with --to FOLDER (or --no-policies)"
        )
    })
}

/// Lists the source's policies as not migrated, for `why`.
async fn policies_refused(source: &Source, why: &str, out: &mut Vec<Line>) {
    match source.list("sys/policies/acl").await {
        Ok(names) => {
            for name in names.into_iter().filter(|n| n != "root") {
                let coffer = coffer_policy::validate_policy_name(&name)
                    .is_ok()
                    .then_some(name.as_str());
                out.push(Line::new(&name, coffer, Outcome::NotMapped).why(why));
            }
        }
        Err(e) => out.push(
            Line::new("sys/policies/acl", None, Outcome::NotMapped)
                .why(format!("{why} ({})", e.message)),
        ),
    }
}

/// Reads the source's ACL policies and writes each that translates exactly
/// and that coffer does not have yet.
///
/// Each policy is translated alone, exactly; then each pair is checked as
/// one identity holding both would be: Vault applies only the most
/// specific of their rules where they overlap, coffer applies both, so a
/// pair whose rules overlap and differ would grant more in coffer than in
/// Vault. The later policy of such a pair is not migrated.
async fn migrate_policies(
    source: &Source,
    coffer: &Client,
    mounts: &coffer_policy::vault::Mounts,
    dry_run: bool,
    out: &mut Vec<Line>,
) -> Result<(), SourceError> {
    let names = source.list("sys/policies/acl").await?;
    let mut translated: Vec<(Line, String, coffer_policy::Policy)> = Vec::new();
    for name in names {
        if name == "root" {
            // Not a policy of rules: coffer's own `root` is the same thing.
            continue;
        }
        if !usable_key(&name) || name.ends_with('/') {
            out.push(Line::new(&name, None, Outcome::NotMapped).why("not a usable name"));
            continue;
        }
        if let Err(e) = coffer_policy::validate_policy_name(&name) {
            out.push(
                Line::new(&name, None, Outcome::NotMapped)
                    .why(format!("not a coffer policy name: {e}")),
            );
            continue;
        }
        let mut line = Line::new(&name, Some(&name), Outcome::Failed);
        let path = format!(
            "sys/policies/acl/{}",
            coffer_api::routes::encode_segment(&name)
        );
        #[derive(Deserialize)]
        struct Text {
            policy: String,
        }
        #[derive(Deserialize)]
        struct Answer {
            data: Text,
        }
        let text = match source.get(&path, "").await {
            Ok(Some(body)) => match parse::<Answer>(&body, &path) {
                Ok(a) => a.data.policy,
                Err(e) => {
                    out.push(line.why(e.message));
                    continue;
                }
            },
            Ok(None) => {
                out.push(line.why("listed by the source, but gone when read"));
                continue;
            }
            Err(e) => {
                out.push(line.why(e.message));
                continue;
            }
        };
        let policy = match coffer_policy::vault::translate(&text, mounts) {
            Ok(p) => p,
            Err(e) => {
                line.outcome = Outcome::NotMapped;
                out.push(line.why(shown(&e.to_string())));
                continue;
            }
        };
        if policy.rules().is_empty() {
            line.outcome = Outcome::NotMapped;
            out.push(line.why("it grants nothing coffer needs a rule for"));
            continue;
        }
        // A pair that would grant more together in coffer than in Vault.
        if let Some((other, _, _)) = translated.iter().find(|(_, earlier, _)| {
            // Only the overlap check can fail here: each translated alone
            // (a pair over the size or rule limits is not judged).
            coffer_policy::vault::translate(&format!("{earlier}\n{text}"), mounts)
                .is_err_and(|e| e.message.contains(" overlaps "))
        }) {
            line.outcome = Outcome::NotMapped;
            let other = other.source.clone();
            out.push(line.why(format!(
                "its rules overlap policy {}'s and differ: Vault applies only the more specific rule where they overlap, coffer applies both, so an identity holding both would be granted more in coffer than in Vault; make the more specific rule grant at least what the broader one does (or deny), then run again",
                shown(&other)
            )));
            continue;
        }
        translated.push((line, text, policy));
    }
    for (mut line, _, policy) in translated {
        let name = line.source.clone();
        let wanted = policy.to_source();
        match coffer.read_policy(&name).await {
            Ok(existing) if existing.policy == wanted => line.outcome = Outcome::Unchanged,
            Ok(_) => {
                line.outcome = Outcome::Conflict;
                line.why =
                    Some("coffer has a different policy of this name; it is left as it is".into());
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                if dry_run {
                    line.outcome = Outcome::Created;
                } else {
                    match coffer.write_policy(&name, &wanted).await {
                        Ok(_) => line.outcome = Outcome::Created,
                        Err(e) => line.why = Some(e.message),
                    }
                }
            }
            Err(e) => line.why = Some(e.message),
        }
        out.push(line);
    }
    Ok(())
}

// ---- the report ----------------------------------------------------------

fn report(
    a: &FromVaultArgs,
    secrets: &[Line],
    policies: &[Line],
    mounts: &[Line],
    fatal: Option<&SourceError>,
) -> anyhow::Result<()> {
    let count = |o: Outcome| {
        secrets
            .iter()
            .chain(policies)
            .chain(mounts)
            .filter(|l| l.outcome == o)
            .count()
    };
    let outcomes = [
        Outcome::Created,
        Outcome::Appended,
        Outcome::Unchanged,
        Outcome::Conflict,
        Outcome::NotMapped,
        Outcome::Failed,
    ];
    if a.json {
        let summary: serde_json::Map<String, serde_json::Value> = outcomes
            .iter()
            .map(|o| {
                (
                    serde_json::to_value(o)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    json!(count(*o)),
                )
            })
            .collect();
        return output::json(&json!({
            "dry_run": a.dry_run,
            "mount": a.mount,
            "secrets": secrets,
            "policies": policies,
            "other_mounts": mounts,
            "summary": summary,
            "error": fatal.map(|e| e.message.clone()),
        }));
    }
    let rows = |lines: &[Line]| -> Vec<Vec<String>> {
        lines
            .iter()
            .map(|l| {
                let mut detail = match (&l.why, l.versions.as_slice()) {
                    (Some(why), _) => why.clone(),
                    (None, []) => String::new(),
                    (None, v) => format!("versions {}", ranges(v)),
                };
                if let Some(c) = l.coffer.as_deref().filter(|c| *c != l.source) {
                    detail = if detail.is_empty() {
                        format!("-> {c}")
                    } else {
                        format!("-> {c}; {detail}")
                    };
                }
                vec![
                    l.outcome.shown(a.dry_run).to_string(),
                    l.source.clone(),
                    detail,
                ]
            })
            .collect()
    };
    if !a.no_secrets {
        println!("Secrets of mount {}:", shown(&a.mount));
        output::table(&["OUTCOME", "SECRET", "DETAIL"], &rows(secrets))?;
    }
    if !a.no_policies {
        println!("Policies:");
        output::table(&["OUTCOME", "POLICY", "DETAIL"], &rows(policies))?;
    }
    if !mounts.is_empty() {
        println!("Other mounts of the source (not migrated):");
        output::table(&["OUTCOME", "MOUNT", "DETAIL"], &rows(mounts))?;
    }
    let notes: Vec<Vec<String>> = secrets
        .iter()
        .flat_map(|l| l.notes.iter().map(|n| vec![l.source.clone(), n.clone()]))
        .collect();
    if !notes.is_empty() {
        println!("Kept differently than in the source:");
        output::table(&["SECRET", "NOTE"], &notes)?;
    }
    let parts: Vec<String> = outcomes
        .iter()
        .map(|o| format!("{} {}", count(*o), o.shown(a.dry_run)))
        .collect();
    println!(
        "{}{}",
        if a.dry_run {
            "Dry run, nothing written: "
        } else {
            ""
        },
        parts.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: &str) -> BTreeMap<String, Field> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn values_map_exactly_or_not_at_all() {
        match &to_value(data(r#"{"value":"text"}"#)).unwrap() {
            WireValue::Text(t) => assert_eq!(t, "text"),
            WireValue::Fields(_) => panic!("one value field is text"),
        }
        match &to_value(data(r#"{"user":"u","value":"p"}"#)).unwrap() {
            WireValue::Fields(f) => assert_eq!(f.len(), 2),
            WireValue::Text(_) => panic!("two fields stay fields"),
        }
        assert!(matches!(&to_value(data("{}")).unwrap(), WireValue::Fields(f) if f.is_empty()));
        for (json, why) in [
            (r#"{"port":5432}"#, r#"field "port" is a number"#),
            (r#"{"on":true}"#, "is a boolean"),
            (r#"{"n":null}"#, "is null"),
            (r#"{"l":["secret-in-list"]}"#, "is a list"),
            (r#"{"o":{"k":"secret-in-object"}}"#, "is an object"),
            (r#"{"value":1.5}"#, "is a number"),
        ] {
            let e = to_value(data(json)).err().unwrap();
            assert!(e.contains(why), "{json}: {e}");
            assert!(!e.contains("secret-in"), "{e}");
        }
    }

    #[test]
    fn hostile_keys_are_not_followed() {
        for bad in [
            "",
            "/",
            "..",
            "../",
            ".",
            "a/b",
            "a/b/",
            "a\nb",
            "a\u{1b}[2J",
            "a\0",
        ] {
            assert!(!usable_key(bad), "{bad:?}");
        }
        for good in ["db", "app/", "with space", "ünïcode", "a.b"] {
            assert!(usable_key(good), "{good:?}");
        }
    }

    #[test]
    fn plain_http_is_noticed_beyond_loopback() {
        for (addr, host) in [
            ("http://vault.example.com:8200", Some("vault.example.com")),
            ("http://10.0.0.5", Some("10.0.0.5")),
            ("http://user@vault:8200/", Some("vault")),
            ("http://[2001:db8::1]:8200", Some("2001:db8::1")),
            ("http://127.0.0.1:8200", None),
            ("http://localhost:8200", None),
            ("http://[::1]:8200", None),
            ("https://vault.example.com", None),
        ] {
            assert_eq!(plain_http_host(addr).as_deref(), host, "{addr}");
        }
    }

    #[test]
    fn ranges_are_short() {
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
        assert_eq!(ranges(&[4]), "4");
    }

    #[test]
    fn folders_have_one_trailing_slash() {
        assert_eq!(folder(None), "");
        assert_eq!(folder(Some("/")), "");
        assert_eq!(folder(Some("/a/b")), "a/b/");
        assert_eq!(folder(Some("a/")), "a/");
    }
}
