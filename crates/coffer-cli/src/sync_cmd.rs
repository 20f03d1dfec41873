//! `coffer sync pull|push`: AWS Secrets Manager and SSM Parameter Store in
//! and out of coffer, for a prefix.
//!
//! `pull` reads every secret (or parameter) whose name starts with the
//! prefix, with every version the service keeps, and writes each to
//! coffer's folder in one request, `PUT /api/v1/history/{path}` (created,
//! appended to what an earlier pull wrote, or unchanged: the server
//! compares). When coffer's history of the secret is not the cloud's (it
//! was written in coffer, or pushed from it), the cloud's current value
//! is compared with coffer's by digest and, when it differs, written as a
//! new version through the ordinary write path. A Secrets Manager version
//! labelled `AWSPENDING` after `AWSCURRENT` is staged as coffer's
//! `pending`.
//!
//! `push` writes each coffer secret's current value to the cloud, creating
//! what does not exist (tagged as managed by coffer), and refuses to
//! overwrite one that coffer did not write last (its current version is
//! not the one coffer's tag recorded, or it carries no such tag) unless
//! `--force`. A value that is already there is left alone.
//!
//! Names that do not map exactly are listed as not mapped, never changed.
//! Nothing printed holds a value, and credentials come only from the AWS
//! SDK's standard chain, never from the command line.

use clap::{Args, Subcommand, ValueEnum};
use coffer_api::{HistoryEntry, HistoryRequest, WireValue};
use coffer_client::{Client, ErrorKind, ListOptions};
use coffer_sync::aws::{self, CloudValue, Store};
use coffer_sync::mapping::{self, Service, ValueDigest};
use std::time::Duration;

use crate::exit::{Status, fail};
use crate::{output, settings};

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Import the secrets under a cloud prefix into a coffer folder, with
    /// every version the service keeps.
    #[command(after_help = "Examples:
  coffer sync pull aws-sm --prefix /myapp/prod/ --to myapp/prod --dry-run
  coffer sync pull aws-sm --prefix /myapp/prod/ --to myapp/prod
  coffer sync pull aws-ssm --prefix /myapp/prod/ --to myapp/prod --region eu-west-1 --json

The cloud secret PREFIX + NAME becomes the coffer secret FOLDER/NAME, with
its versions in the order they were written: Secrets Manager versions by
creation time (AWSCURRENT becomes coffer's current, AWSPREVIOUS its
previous, a version labelled AWSPENDING after AWSCURRENT is staged as
pending), parameter versions by number (labels are listed, not kept). A
JSON object of strings becomes a fields value, any other string text; a
binary secret, and a name coffer refuses, are listed as not mapped.
Running again changes nothing, and appends versions written since. When
the coffer secret holds another history (it was written in coffer), the
cloud's current value is written as a new version if it differs.

AWS credentials come only from the standard chain (AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, a named profile from --profile or AWS_PROFILE, SSO
included, web identity, instance metadata); the
coffer token needs admin on sys/import and read and create on the folder.

Exit status: 0 when everything that could be mapped is in coffer, 8 when a
coffer secret differs in a way a pull does not resolve, 1 when a secret
failed, 7 with --strict when anything was not mapped; 2, 4, 6 when the
flags are wrong, AWS or coffer refuse, or cannot be reached.")]
    Pull(PullArgs),
    /// Export the current values of a coffer folder's secrets to a cloud
    /// prefix.
    #[command(after_help = "Examples:
  coffer sync push aws-ssm --from myapp/prod --prefix /myapp/prod/ --dry-run
  coffer sync push aws-ssm --from myapp/prod --prefix /myapp/prod/ --kms-key-id alias/myapp
  coffer sync push aws-sm --from myapp/prod --prefix /myapp/prod/ --json
  coffer sync push aws-sm --from myapp/prod --prefix /myapp/prod/ --force

The coffer secret FOLDER/NAME becomes the cloud secret PREFIX + NAME, its
current value as a string (a fields value as a JSON object). A Secrets
Manager secret gets a new version (AWSCURRENT moves to it, AWSPREVIOUS to
the one before); a parameter is written as a SecureString (with
--kms-key-id, under that key). What does not exist is created, tagged
coffer:managed=true; every write records the version written in the tag
coffer:synced-version. A secret whose current version is not the one
coffer wrote last (changed outside coffer, or never written by coffer) is
not overwritten without --force; one that already holds the value is left
alone. Names the service refuses are listed as not mapped.

Exit status: 0 when every mapped secret holds coffer's value, 8 when one
was changed outside coffer (use --force), 1 when one failed, 7 with
--strict when anything was not mapped; 2, 4, 6 as for pull.")]
    Push(PushArgs),
}

/// The cloud store.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Target {
    /// AWS Secrets Manager.
    AwsSm,
    /// AWS Systems Manager Parameter Store (SecureString).
    AwsSsm,
}

impl Target {
    fn service(self) -> Service {
        match self {
            Target::AwsSm => Service::SecretsManager,
            Target::AwsSsm => Service::ParameterStore,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Target::AwsSm => "aws-sm",
            Target::AwsSsm => "aws-ssm",
        }
    }
}

/// Flags both directions share.
#[derive(Debug, Args)]
pub struct CloudArgs {
    /// The cloud store.
    #[arg(value_enum)]
    pub service: Target,
    /// The cloud names' prefix, such as /myapp/prod/ (matched exactly, case
    /// included).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: String,
    /// The AWS region (default: AWS_REGION, else the profile's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// A named profile of ~/.aws/config and ~/.aws/credentials, SSO
    /// profiles included (default: AWS_PROFILE, else `default`). A name,
    /// never a credential.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Another endpoint, for a compatible service or a local emulator
    /// (default: AWS_ENDPOINT_URL, else AWS's own).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Read both sides and say what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Exit 7 when anything could not be mapped.
    #[arg(long)]
    pub strict: bool,
    /// Seconds each request to either side may take.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// The coffer folder the secrets go to.
    #[arg(long, value_name = "FOLDER")]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// The coffer folder whose secrets are exported (and its subfolders).
    #[arg(long, value_name = "FOLDER")]
    pub from: String,
    /// The KMS key for secrets and parameters this run creates (Secrets
    /// Manager) or writes (Parameter Store); default: the service's.
    #[arg(long, value_name = "KEY_ID")]
    pub kms_key_id: Option<String>,
    /// Overwrite secrets changed outside coffer or never written by it.
    #[arg(long)]
    pub force: bool,
    /// Which versions to push: `current` (its value only) or `labels`
    /// (Secrets Manager only: coffer's previous, current and pending, as
    /// AWSPREVIOUS, AWSCURRENT and AWSPENDING).
    #[arg(long, value_enum, default_value_t = Versions::Current)]
    pub versions: Versions,
}

/// What `push` writes of each secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Versions {
    /// The current value, as a new current version when it differs.
    Current,
    /// Coffer's labelled versions, each with its staging label.
    Labels,
}

pub async fn run(g: &crate::cli::Global, c: SyncCommand) -> anyhow::Result<Status> {
    match c {
        SyncCommand::Pull(a) => pull(g, a).await,
        SyncCommand::Push(a) => push(g, a).await,
    }
}

// ---- the report -------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Created,
    Updated,
    Unchanged,
    NotMapped,
    Conflict,
    Failed,
}

impl Outcome {
    fn shown(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Outcome::Created, false) => "created",
            (Outcome::Created, true) => "would create",
            (Outcome::Updated, false) => "updated",
            (Outcome::Updated, true) => "would update",
            (Outcome::Unchanged, _) => "unchanged",
            (Outcome::NotMapped, _) => "not mapped",
            (Outcome::Conflict, _) => "conflict",
            (Outcome::Failed, _) => "failed",
        }
    }
}

/// One secret of the report: names, versions and reasons, never a value.
#[derive(Debug, serde::Serialize)]
struct Line {
    /// The name where it is read (cloud name on pull, coffer path on push).
    source: String,
    /// The name where it is written (absent when none could be made).
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    outcome: Outcome,
    /// Versions written (pull: coffer's numbers; push: the cloud's id).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    versions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

impl Line {
    fn new(source: &str, target: Option<&str>, outcome: Outcome) -> Line {
        Line {
            source: source.to_string(),
            target: target.map(str::to_string),
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

#[derive(serde::Serialize)]
struct Report<'a> {
    direction: &'static str,
    service: &'static str,
    dry_run: bool,
    secrets: &'a [Line],
}

fn report(direction: &'static str, cloud: &CloudArgs, lines: &[Line]) -> anyhow::Result<Status> {
    if cloud.json {
        output::json(&Report {
            direction,
            service: cloud.service.name(),
            dry_run: cloud.dry_run,
            secrets: lines,
        })?;
    } else if lines.is_empty() {
        println!("Nothing under the prefix.");
    } else {
        let rows: Vec<Vec<String>> = lines
            .iter()
            .map(|l| {
                let mut detail: Vec<String> = Vec::new();
                if !l.versions.is_empty() {
                    detail.push(format!("versions {}", l.versions.join(",")));
                }
                detail.extend(l.why.clone());
                detail.extend(l.notes.iter().cloned());
                vec![
                    l.outcome.shown(cloud.dry_run).to_string(),
                    l.source.clone(),
                    l.target.clone().unwrap_or_else(|| "-".into()),
                    detail.join("; "),
                ]
            })
            .collect();
        output::table(&["OUTCOME", "SOURCE", "TARGET", "DETAIL"], &rows)?;
        if cloud.dry_run {
            println!("Dry run: nothing was changed.");
        }
    }
    let any = |o: Outcome| lines.iter().any(|l| l.outcome == o);
    Ok(if any(Outcome::Failed) {
        Status::Other
    } else if any(Outcome::Conflict) {
        Status::Conflict
    } else if cloud.strict && any(Outcome::NotMapped) {
        Status::Invalid
    } else {
        Status::Ok
    })
}

// ---- both sides ---------------------------------------------------------------

/// The AWS side, from the standard chain plus the flags.
async fn store(cloud: &CloudArgs) -> anyhow::Result<Store> {
    if let Some(url) = &cloud.endpoint_url {
        check_endpoint(url)?;
    }
    // The SDK reads AWS_PROFILE itself; a name given either way is held
    // to the same rules.
    // (An empty AWS_PROFILE is the SDK's business: it means no profile.)
    let from_env = std::env::var_os("AWS_PROFILE").filter(|v| !v.is_empty());
    let env_profile = from_env.as_ref().map(|v| v.to_str().unwrap_or("\u{0}"));
    for (name, given) in [
        (cloud.profile.as_deref(), "--profile"),
        (env_profile, "AWS_PROFILE"),
    ]
    .into_iter()
    .filter_map(|(n, g)| n.map(|n| (n, g)))
    {
        if let Err(e) = aws::check_profile_name(name) {
            return Err(fail(Status::Usage, format!("{given}: {}", e.message)));
        }
    }
    let options = aws::Options {
        region: cloud.region.clone(),
        endpoint_url: cloud.endpoint_url.clone(),
        timeout: Duration::from_secs(cloud.timeout.max(1)),
        profile: cloud.profile.clone(),
    };
    let config = aws::config(&options).await.map_err(cloud_fail)?;
    Ok(Store::new(cloud.service.service(), &config))
}

/// An endpoint URL must be http(s) and carry no user information (a
/// credential never belongs on the command line).
fn check_endpoint(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            fail(
                Status::Usage,
                "--endpoint-url must start with https:// or http://",
            )
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') || url.chars().any(char::is_control) {
        return Err(fail(
            Status::Usage,
            "--endpoint-url must name a host, with no user or password in it",
        ));
    }
    Ok(())
}

fn cloud_fail(e: coffer_sync::SyncError) -> anyhow::Error {
    use coffer_sync::ErrorKind as K;
    let status = match e.kind {
        K::Unreachable => Status::Unreachable,
        K::Denied => Status::Denied,
        K::NotFound => Status::NotFound,
        K::Config => Status::Usage,
        K::Conflict => Status::Conflict,
        K::Other => Status::Other,
    };
    fail(status, format!("AWS: {}", output::visible(&e.message)))
}

fn coffer_client(g: &crate::cli::Global, cloud: &CloudArgs) -> anyhow::Result<Client> {
    let mut b = settings::client_builder(g).timeout(Duration::from_secs(cloud.timeout.max(1)));
    if let Some(t) = settings::resolve_token()? {
        b = b.secret_token(t);
    }
    Ok(b.build()?)
}

/// A folder argument as a folder: no leading slash, one trailing slash.
fn folder(arg: &str) -> anyhow::Result<String> {
    let trimmed = arg.trim_matches('/');
    if trimmed.is_empty() {
        return Err(fail(Status::Usage, "the coffer folder cannot be empty"));
    }
    coffer_core::ListPrefix::parse(trimmed)
        .map_err(|e| fail(Status::Usage, format!("the coffer folder: {e}")))?;
    Ok(format!("{trimmed}/"))
}

/// `target` when it is a coffer path exactly as written.
fn coffer_path(target: &str) -> Option<String> {
    match coffer_core::SecretPath::parse(target) {
        Ok(p) if p.as_str() == target => Some(target.to_string()),
        _ => None,
    }
}

const NOT_A_PATH: &str = "not a valid coffer path (segments of letters, digits and _ - . @ : = , ~; no empty, . or .. segment)";

// ---- pull ---------------------------------------------------------------------

async fn pull(g: &crate::cli::Global, a: PullArgs) -> anyhow::Result<Status> {
    let to = folder(&a.to)?;
    let coffer = coffer_client(g, &a.cloud)?;
    let store = store(&a.cloud).await?;
    let names = store.list(&a.cloud.prefix).await.map_err(cloud_fail)?;
    let mut lines = Vec::with_capacity(names.len());
    for name in names {
        lines.push(pull_one(&store, &coffer, &a, &to, &name).await);
    }
    report("pull", &a.cloud, &lines)
}

async fn pull_one(store: &Store, coffer: &Client, a: &PullArgs, to: &str, name: &str) -> Line {
    let shown_name = output::visible(name).into_owned();
    let Some(rel) = mapping::below(&a.cloud.prefix, name) else {
        return Line::new(&shown_name, None, Outcome::NotMapped).why("nothing after the prefix");
    };
    let Some(path) = coffer_path(&format!("{to}{rel}")) else {
        return Line::new(&shown_name, None, Outcome::NotMapped).why(NOT_A_PATH);
    };
    let mut line = Line::new(&shown_name, Some(&path), Outcome::Failed);
    let history = match store.history(name).await {
        Ok(h) => h,
        Err(e) => return line.why(e.message),
    };
    if history
        .versions
        .iter()
        .any(|v| matches!(v.value, CloudValue::Binary))
    {
        line.outcome = Outcome::NotMapped;
        return line.why("a binary secret: coffer keeps text and string fields");
    }
    if history.versions.is_empty() {
        line.outcome = Outcome::NotMapped;
        return line.why("it has no version with a value");
    }

    // Which versions become coffer's history, and which one is staged.
    let (kept, pending) = match a.cloud.service {
        Target::AwsSm => split_at_current(&history.versions, &mut line.notes),
        Target::AwsSsm => {
            for v in &history.versions {
                for l in &v.labels {
                    line.notes.push(format!(
                        "label {} on version {} is not kept (coffer's labels follow its versions)",
                        output::visible(l),
                        v.id
                    ));
                }
            }
            (history.versions.iter().collect::<Vec<_>>(), None)
        }
    };
    let entries = match entries_of(a.cloud.service, &kept) {
        Ok(e) => e,
        Err(why) => {
            line.outcome = Outcome::NotMapped;
            return line.why(why);
        }
    };
    let request = HistoryRequest {
        versions: entries,
        dry_run: a.cloud.dry_run,
    };
    line.outcome = match coffer.import_history(&path, &request).await {
        Ok(r) => {
            line.versions = r.written.iter().map(u64::to_string).collect();
            match r.outcome.as_str() {
                "created" => Outcome::Created,
                "appended" => Outcome::Updated,
                _ => Outcome::Unchanged,
            }
        }
        Err(e) if e.kind == ErrorKind::Conflict => {
            // Coffer holds another history: bring its current value level
            // with the cloud's through the ordinary write path.
            let newest = kept.last().expect("not empty");
            match write_if_different(coffer, &path, &newest.value, a.cloud.dry_run).await {
                Ok((outcome, version)) => {
                    line.notes.push(
                        "coffer's history of it is its own; only the current value is compared"
                            .into(),
                    );
                    line.versions.extend(version.map(|v| v.to_string()));
                    outcome
                }
                Err(why) => return line.why(why),
            }
        }
        Err(e) if e.kind == ErrorKind::Invalid => {
            line.outcome = Outcome::NotMapped;
            return line.why(format!("coffer refused it: {}", e.message));
        }
        Err(e) => return line.why(e.message),
    };
    if let Some(pending) = pending {
        match stage_pending(coffer, &path, &pending.value, a.cloud.dry_run).await {
            Ok(Some(note)) => line.notes.push(note),
            Ok(None) => {}
            Err(why) => {
                line.outcome = Outcome::Conflict;
                return line.why(why);
            }
        }
    }
    line
}

/// Secrets Manager versions up to the one labelled `AWSCURRENT` (oldest
/// first), and the `AWSPENDING` one after it; notes what is not kept.
fn split_at_current<'a>(
    versions: &'a [aws::Version],
    notes: &mut Vec<String>,
) -> (Vec<&'a aws::Version>, Option<&'a aws::Version>) {
    let has = |v: &aws::Version, l: &str| v.labels.iter().any(|x| x == l);
    let Some(current) = versions.iter().position(|v| has(v, aws::AWSCURRENT)) else {
        notes.push("no version is labelled AWSCURRENT; the newest is coffer's current".into());
        return (versions.iter().collect(), None);
    };
    if current > 0 && versions.iter().position(|v| has(v, aws::AWSPREVIOUS)) != Some(current - 1) {
        notes.push("AWSPREVIOUS is not the version before AWSCURRENT; coffer's previous is".into());
    }
    let mut pending = None;
    for v in &versions[current + 1..] {
        if has(v, aws::AWSPENDING) && pending.is_none() {
            pending = Some(v);
        } else {
            notes.push(
                "a version written after AWSCURRENT and not AWSPENDING is not imported".into(),
            );
        }
    }
    (versions[..=current].iter().collect(), pending)
}

/// The history entries for `kept` (every one active). Parameter Store
/// versions keep their numbers: versions the service no longer keeps
/// become destroyed placeholders.
fn entries_of(service: Target, kept: &[&aws::Version]) -> Result<Vec<HistoryEntry>, String> {
    let mut entries = Vec::with_capacity(kept.len());
    for v in kept {
        let CloudValue::Text(text) = &v.value else {
            return Err("a binary secret: coffer keeps text and string fields".into());
        };
        if let (Target::AwsSsm, Some(number)) = (service, v.number) {
            while (entries.len() as u64) + 1 < number {
                entries.push(HistoryEntry {
                    version: entries.len() as u64 + 1,
                    created_at: v.created_at.clone(),
                    state: "destroyed".into(),
                    state_at: Some(v.created_at.clone()),
                    value: None,
                });
            }
        }
        entries.push(HistoryEntry {
            version: entries.len() as u64 + 1,
            created_at: v.created_at.clone(),
            state: "active".into(),
            state_at: None,
            value: Some(mapping::to_wire(text)),
        });
    }
    Ok(entries)
}

/// Writes `value` as a new coffer version when coffer's current value
/// differs (by digest). Returns the outcome and the version written.
async fn write_if_different(
    coffer: &Client,
    path: &str,
    value: &CloudValue,
    dry_run: bool,
) -> Result<(Outcome, Option<u64>), String> {
    let CloudValue::Text(text) = value else {
        return Err("a binary secret: coffer keeps text and string fields".into());
    };
    let held = coffer.read(path, None).await.map_err(|e| e.message)?;
    if ValueDigest::of_wire(&held.value).same(&ValueDigest::of(text)) {
        return Ok((Outcome::Unchanged, None));
    }
    if dry_run {
        return Ok((Outcome::Updated, None));
    }
    let written = coffer
        .write(path, &mapping::to_wire(text), Some(held.version))
        .await
        .map_err(|e| e.message)?;
    Ok((Outcome::Updated, Some(written.version)))
}

/// Stages `value` as coffer's `pending` unless that is what it holds.
/// `Err` when coffer has another pending version (left alone).
async fn stage_pending(
    coffer: &Client,
    path: &str,
    value: &CloudValue,
    dry_run: bool,
) -> Result<Option<String>, String> {
    let CloudValue::Text(text) = value else {
        return Err("the AWSPENDING version is binary".into());
    };
    match coffer.read_label(path, "pending").await {
        Ok(held) => {
            if ValueDigest::of_wire(&held.value).same(&ValueDigest::of(text)) {
                Ok(None)
            } else {
                Err(format!(
                    "coffer has another pending version ({}); cancel it or promote it first",
                    held.version
                ))
            }
        }
        Err(e) if e.kind == ErrorKind::NotFound => {
            if dry_run {
                return Ok(Some("AWSPENDING would be staged as pending".into()));
            }
            let request = coffer_api::lifecycle::RotateRequest {
                value: Some(mapping::to_wire(text)),
                generate: None,
                stage: true,
                grace: None,
                force: false,
            };
            let r = coffer
                .rotate_secret(path, &request)
                .await
                .map_err(|e| e.message)?;
            Ok(Some(format!(
                "AWSPENDING staged as pending (version {})",
                r.version
            )))
        }
        Err(e) => Err(e.message),
    }
}

// ---- push ---------------------------------------------------------------------

async fn push(g: &crate::cli::Global, a: PushArgs) -> anyhow::Result<Status> {
    let from = folder(&a.from)?;
    if a.versions == Versions::Labels && matches!(a.cloud.service, Target::AwsSsm) {
        return Err(fail(
            Status::Usage,
            "--versions labels is for aws-sm: a parameter's newest version is the value every \
             reader gets, so Parameter Store cannot hold a staged pending version",
        ));
    }
    let coffer = coffer_client(g, &a.cloud)?;
    let store = store(&a.cloud).await?;
    let options = ListOptions {
        recursive: true,
        ..Default::default()
    };
    let entries = match coffer.list_all(&from, &options).await {
        Ok(entries) => entries,
        // An empty folder is not an error: there is nothing to push.
        Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut lines = Vec::new();
    for entry in entries.iter().filter(|e| !e.folder) {
        lines.push(push_one(&store, &coffer, &a, &from, &entry.name).await);
    }
    report("push", &a.cloud, &lines)
}

async fn push_one(store: &Store, coffer: &Client, a: &PushArgs, from: &str, rel: &str) -> Line {
    let path = format!("{from}{rel}");
    let name = match mapping::cloud_name(a.cloud.service.service(), &a.cloud.prefix, rel) {
        Ok(n) => n,
        Err(why) => return Line::new(&path, None, Outcome::NotMapped).why(why),
    };
    let mut line = Line::new(&path, Some(&name), Outcome::Failed);
    if a.versions == Versions::Labels {
        return push_labels(store, coffer, a, &path, &name, line).await;
    }
    let held: WireValue = match coffer.read(&path, None).await {
        Ok(r) => r.value,
        Err(e) => return line.why(e.message),
    };
    let value = mapping::from_wire(&held);
    let existing = match store.current(&name).await {
        Ok(c) => c,
        Err(e) => return line.why(e.message),
    };
    let exists = existing.is_some();
    if let Some(current) = &existing {
        let same = match &current.value {
            CloudValue::Text(t) => ValueDigest::of(t).same(&ValueDigest::of(&value)),
            CloudValue::Binary => false,
        };
        if same {
            line.outcome = Outcome::Unchanged;
            if !current.managed {
                line.notes
                    .push("not tagged as managed by coffer (it holds coffer's value)".into());
            }
            return line;
        }
        let ours = current.managed && current.synced.as_deref() == Some(current.version.as_str());
        if !ours && !a.force {
            line.outcome = Outcome::Conflict;
            return line.why(if current.managed {
                "changed outside coffer since coffer last wrote it; --force overwrites it"
            } else {
                "exists and was not written by coffer; --force overwrites it"
            });
        }
        line.outcome = Outcome::Updated;
    } else {
        line.outcome = Outcome::Created;
    }
    if a.cloud.dry_run {
        return line;
    }
    match store
        .write(&name, &value, &path, exists, a.kms_key_id.as_deref())
        .await
    {
        Ok(version) => {
            line.versions.push(version);
            line
        }
        Err(e) => {
            line.outcome = Outcome::Failed;
            line.why(e.message)
        }
    }
}

/// `push --versions labels` of one secret: coffer's previous, current and
/// pending as Secrets Manager's AWSPREVIOUS, AWSCURRENT and AWSPENDING.
async fn push_labels(
    store: &Store,
    coffer: &Client,
    a: &PushArgs,
    path: &str,
    name: &str,
    mut line: Line,
) -> Line {
    let meta = match coffer.metadata(path).await {
        Ok(m) => m,
        Err(e) => return line.why(e.message),
    };
    let (current, previous, pending) = match &meta.labels {
        Some(l) => (l.current, l.previous, l.pending),
        None => (meta.current_version, None, None),
    };
    let mut values = Vec::new();
    for v in [previous, Some(current), pending].into_iter().flatten() {
        if a.cloud.dry_run {
            // A dry run reads metadata only: values are not read (each
            // would count as a read of the secret); the markers it would
            // check are listed as "would verify".
            values.push((v, coffer_crypto::SecretString::new(String::new())));
            continue;
        }
        match coffer.read(path, Some(v)).await {
            Ok(r) => values.push((v, mapping::from_wire(&r.value))),
            Err(e) => return line.why(format!("version {v}: {}", e.message)),
        }
    }
    let labelled = |v: Option<u64>| {
        v.and_then(|v| {
            values
                .iter()
                .find(|(n, _)| *n == v)
                .map(|(n, value)| aws::Labelled { version: *n, value })
        })
    };
    let Some(current_value) = labelled(Some(current)) else {
        return line.why("the current version could not be read");
    };
    let plan = aws::LabelPlan {
        previous: labelled(previous),
        current: current_value,
        pending: labelled(pending),
        force: a.force,
    };
    let existing = match store.current(name).await {
        Ok(c) => c,
        Err(e) => return line.why(e.message),
    };
    if let Some(cur) = &existing {
        let ours = cur.managed && cur.synced.as_deref() == Some(cur.version.as_str());
        if !ours && !a.force {
            line.outcome = Outcome::Conflict;
            return line.why(if cur.managed {
                "changed outside coffer since coffer last wrote it; --force overwrites it"
            } else {
                "exists and was not written by coffer; --force overwrites it"
            });
        }
    }
    match store
        .push_labelled(
            name,
            &plan,
            path,
            existing.is_some(),
            a.kms_key_id.as_deref(),
            a.cloud.dry_run,
        )
        .await
    {
        Ok((changes, id)) => {
            let changed = changes.iter().any(|c| !c.starts_with("would verify"));
            line.outcome = if !changed {
                Outcome::Unchanged
            } else if existing.is_none() {
                Outcome::Created
            } else {
                Outcome::Updated
            };
            if changed && !id.is_empty() {
                line.versions.push(id);
            }
            line.notes = changes;
            line
        }
        Err(e) => {
            line.outcome = if e.kind == coffer_sync::ErrorKind::Conflict {
                Outcome::Conflict
            } else {
                Outcome::Failed
            };
            line.why(e.message)
        }
    }
}
