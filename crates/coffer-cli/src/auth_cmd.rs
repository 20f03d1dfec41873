//! `coffer auth jwt ...` (JWT/OIDC roles), `coffer login --method jwt`, and
//! the JWT login `coffer run --login jwt:ROLE` makes: where a machine's JWT
//! comes from and how it becomes a coffer token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use coffer_api::workload::{JwtRoleResponse, JwtRoleWriteRequest};
use coffer_client::Client;
use coffer_crypto::SecretString;
use serde_json::json;

use crate::cli::Global;
use crate::exit::{Status, fail};
use crate::{output, settings};

/// The largest JWT file read.
const MAX_JWT_FILE: u64 = 64 * 1024;

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// JWT/OIDC roles: machines (GitHub Actions, GitLab CI, Kubernetes) log
    /// in with the token their platform gives them. Needs `admin` on
    /// `sys/auth/jwt/ROLE` (`sys/auth/jwt/` to list).
    #[command(subcommand)]
    Jwt(JwtCommand),
}

#[derive(Debug, Subcommand)]
pub enum JwtCommand {
    /// Create or replace a JWT role.
    #[command(after_help = "Examples:
  coffer auth jwt write deploy-api --preset github --bound repository=acme/api \\
      --bound ref=refs/heads/main --bound environment=production --policy api-prod-read
  coffer auth jwt write deploy-api --preset github --bound repository_id=123456789 \\
      --bound ref=refs/heads/main --policy api-prod-read
  coffer auth jwt write ci --preset gitlab --issuer https://gitlab.example.com \\
      --audience https://coffer.example.com --bound project_path=group/project \\
      --bound-glob 'ref=release/*' --policy ci-read --ttl 10m
  coffer auth jwt write payments --preset kubernetes \\
      --issuer https://kubernetes.default.svc.cluster.local --jwks-file cluster-jwks.json \\
      --audience https://coffer.example.com --bound kubernetes.io/namespace=payments \\
      --policy payments-read

A claim bound several times may have any of the values. --bound compares
exactly (no case folding); --bound-glob's `*` matches any run of
characters. GitHub's repository_id and repository_owner_id (numbers that
survive renames and transfers, unlike names) pin the repository as
repository does; bind them exactly. The TTL defaults to 15m and is at most 6h.")]
    Write(JwtWriteArgs),
    /// Show a JWT role.
    #[command(after_help = "Examples:
  coffer auth jwt read deploy-api
  coffer auth jwt read deploy-api --json")]
    Read {
        /// The role's name.
        role: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// List the JWT roles.
    #[command(after_help = "Examples:
  coffer auth jwt list")]
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Delete a JWT role (tokens it issued live out their short TTL).
    #[command(after_help = "Examples:
  coffer auth jwt delete deploy-api")]
    Delete {
        /// The role's name.
        role: String,
    },
}

/// A platform preset.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PresetArg {
    /// GitHub Actions (issuer https://token.actions.githubusercontent.com).
    Github,
    /// GitLab CI (issuer https://gitlab.com unless --issuer).
    Gitlab,
    /// Kubernetes service accounts (--issuer, and --jwks-file or discovery).
    Kubernetes,
}

#[derive(Debug, Args)]
pub struct JwtWriteArgs {
    /// The role's name (letters, digits, `_`, `-`, `.`).
    pub role: String,
    /// Set the role up for this platform.
    #[arg(long, value_enum)]
    pub preset: Option<PresetArg>,
    /// The issuer (`iss`), exactly.
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// What the JWT's `aud` must contain (github and gitlab presets:
    /// default the server's address).
    #[arg(long, value_name = "AUDIENCE")]
    pub audience: Option<String>,
    /// Fetch the issuer's keys from this JWKS URL (https).
    #[arg(long, value_name = "URL", conflicts_with = "jwks_file")]
    pub jwks_url: Option<String>,
    /// Store these public keys (a JWKS file) with the role.
    #[arg(long, value_name = "FILE")]
    pub jwks_file: Option<PathBuf>,
    /// Bind a claim to an exact value (repeatable), CLAIM=VALUE; a nested
    /// claim is `outer/inner` (kubernetes.io/namespace).
    #[arg(long = "bound", value_name = "CLAIM=VALUE")]
    pub bound: Vec<String>,
    /// Bind a claim to a glob (repeatable), CLAIM=PATTERN, `*` matching any
    /// run of characters.
    #[arg(long = "bound-glob", value_name = "CLAIM=PATTERN")]
    pub bound_glob: Vec<String>,
    /// A policy the tokens get (repeatable, or comma-separated).
    #[arg(
        long = "policy",
        value_name = "NAME",
        value_delimiter = ',',
        required = true
    )]
    pub policies: Vec<String>,
    /// The tokens' lifetime (default 15m, at most 6h).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

fn bindings(pairs: &[String], flag: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in pairs {
        let Some((claim, value)) = p.split_once('=') else {
            return Err(fail(
                Status::Usage,
                format!("{flag} takes CLAIM=VALUE, like repository=acme/api"),
            ));
        };
        map.entry(claim.to_string())
            .or_default()
            .push(value.to_string());
    }
    Ok(map)
}

fn read_small_file(path: &Path, what: &str) -> anyhow::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| {
        fail(
            Status::NotFound,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let mut text = String::new();
    file.take(MAX_JWT_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| {
            fail(
                Status::Invalid,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
    if text.len() as u64 > MAX_JWT_FILE {
        return Err(fail(
            Status::Invalid,
            format!("{} is larger than a {what} can be", path.display()),
        ));
    }
    Ok(text)
}

fn print_role(r: &JwtRoleResponse) -> anyhow::Result<()> {
    let bound = |m: &BTreeMap<String, Vec<String>>| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", v.join("|")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rows = vec![
        vec!["Name".to_string(), r.name.clone()],
        vec![
            "Preset".into(),
            r.preset.clone().unwrap_or_else(|| "-".into()),
        ],
        vec!["Issuer".into(), r.issuer.clone()],
        vec!["Audience".into(), r.audience.clone()],
        vec![
            "Keys".into(),
            match &r.jwks_url {
                Some(u) => format!("{} ({u})", r.keys),
                None => r.keys.clone(),
            },
        ],
        vec!["Bound claims".into(), bound(&r.bound_claims)],
        vec!["Bound globs".into(), bound(&r.bound_globs)],
        vec!["Policies".into(), r.policies.join(", ")],
        vec!["TTL".into(), r.ttl.clone()],
        vec![
            "Updated".into(),
            format!("{} by {}", r.updated_at, r.updated_by),
        ],
    ];
    if let Some(why) = &r.needs_binding {
        rows.push(vec![
            "Warning".into(),
            format!("needs a second binding: {why}; it still logs in, rewrite it"),
        ]);
        eprintln!("warning: JWT role {} needs a second binding: {why}", r.name);
    }
    output::table(&["FIELD", "VALUE"], &rows)
}

pub async fn auth(g: &Global, cmd: AuthCommand) -> anyhow::Result<Status> {
    let AuthCommand::Jwt(cmd) = cmd;
    let client = settings::client(g)?;
    match cmd {
        JwtCommand::Write(a) => {
            let jwks = match &a.jwks_file {
                Some(path) => Some(read_small_file(path, "JWKS")?),
                None => None,
            };
            let preset = a.preset.map(|p| match p {
                PresetArg::Github => "github",
                PresetArg::Gitlab => "gitlab",
                PresetArg::Kubernetes => "kubernetes",
            });
            // GitHub and GitLab tokens are minted for whatever audience the
            // job asks for; naming this server keeps them from being
            // replayed against another relying party.
            let audience = a.audience.clone().or_else(|| {
                matches!(preset, Some("github" | "gitlab"))
                    .then(|| settings::addr(g).trim_end_matches('/').to_string())
            });
            let request = JwtRoleWriteRequest {
                preset: preset.map(str::to_string),
                issuer: a.issuer.clone(),
                audience,
                jwks_url: a.jwks_url.clone(),
                jwks,
                bound_claims: bindings(&a.bound, "--bound")?,
                bound_globs: bindings(&a.bound_glob, "--bound-glob")?,
                policies: a.policies.clone(),
                ttl: a.ttl.clone(),
            };
            let r = client.write_jwt_role(&a.role, &request).await?;
            if a.json {
                output::json(&r)?;
            } else {
                eprintln!("JWT role {} written.", r.name);
                print_role(&r)?;
            }
        }
        JwtCommand::Read { role, json } => {
            let r = client.read_jwt_role(&role).await?;
            if json {
                output::json(&r)?;
            } else {
                print_role(&r)?;
            }
        }
        JwtCommand::List { json } => {
            let l = client.list_jwt_roles().await?;
            if json {
                output::json(&l)?;
            } else {
                for r in &l.roles {
                    match l.needs_binding.get(r) {
                        Some(why) => println!("{r}\t(needs a second binding: {why})"),
                        None => println!("{r}"),
                    }
                }
            }
        }
        JwtCommand::Delete { role } => {
            client.delete_jwt_role(&role).await?;
            eprintln!("JWT role {role} deleted.");
        }
    }
    Ok(Status::Ok)
}

/// The JWT to log in with: `--jwt-file` (`-` for standard input), else
/// `COFFER_JWT`, else, on a GitHub Actions runner, one the runner mints
/// for `audience` (default: the server's address).
pub async fn obtain_jwt(
    g: &Global,
    jwt_file: Option<&Path>,
    audience: Option<&str>,
) -> anyhow::Result<SecretString> {
    let jwt = if let Some(path) = jwt_file {
        if path == Path::new("-") {
            crate::input::read_stdin()?
        } else {
            SecretString::new(read_small_file(path, "JWT")?)
        }
    } else if let Some(v) = std::env::var_os("COFFER_JWT") {
        SecretString::new(
            v.into_string()
                .map_err(|_| fail(Status::Invalid, "COFFER_JWT is not valid UTF-8"))?,
        )
    } else if coffer_client::github_runner_available() {
        let addr = settings::addr(g);
        let audience = audience.unwrap_or(addr.trim_end_matches('/'));
        coffer_client::github_actions_jwt(audience).await?
    } else {
        return Err(fail(
            Status::Usage,
            "no JWT: give --jwt-file FILE, set COFFER_JWT, or run in a GitHub Actions job with `permissions: id-token: write`",
        ));
    };
    let jwt = SecretString::new(jwt.expose_secret().trim().to_string());
    if jwt.expose_secret().is_empty() {
        return Err(fail(Status::Invalid, "the JWT is empty"));
    }
    Ok(jwt)
}

/// `coffer login --method jwt --role ROLE`: logs in and saves the token
/// like every other login.
pub async fn login_jwt(
    g: &Global,
    role: &str,
    jwt_file: Option<&Path>,
    audience: Option<&str>,
    as_json: bool,
) -> anyhow::Result<Status> {
    let jwt = obtain_jwt(g, jwt_file, audience).await?;
    machine_login(g, Proof::Jwt { role, jwt: &jwt }, Deliver::Save { as_json }).await?;
    Ok(Status::Ok)
}

/// What a machine proves its identity with.
pub enum Proof<'a> {
    /// A JWT for a JWT role.
    Jwt {
        role: &'a str,
        jwt: &'a SecretString,
    },
    /// An app role's role id and secret id.
    AppRole {
        role_id: &'a str,
        secret_id: &'a SecretString,
    },
}

/// Where a machine login's token goes.
pub enum Deliver {
    /// Saved to the token file, like every `coffer login` (and reported).
    Save { as_json: bool },
    /// Handed back for one `coffer run`, which revokes it when it is done.
    Run,
}

/// What [`machine_login`] delivered.
pub enum Delivered {
    /// The token is in the token file.
    Saved,
    /// The token, and a client that presents it (to revoke it).
    Run(SecretString, Client),
}

/// Logs a machine in (JWT or app role), then saves the token or hands it
/// back: the one sequence `coffer login --method jwt|approle` and
/// `coffer run --login` share.
pub async fn machine_login(
    g: &Global,
    proof: Proof<'_>,
    deliver: Deliver,
) -> anyhow::Result<Delivered> {
    let client = settings::client_builder(g).build()?;
    let t = match proof {
        Proof::Jwt { role, jwt } => {
            let t = client.login_jwt(role, jwt).await?;
            if let Some(why) = &t.needs_binding {
                // The workload's own log (a CI job's) says so too, where
                // the people who own the role will see it.
                eprintln!(
                    "coffer: warning: JWT role {role} needs a binding ({why}); it still logs in, but an operator should rewrite it with `coffer auth jwt write`"
                );
            }
            t
        }
        Proof::AppRole { role_id, secret_id } => client.login_approle(role_id, secret_id).await?,
    };
    let as_json = match deliver {
        Deliver::Run => {
            let token = SecretString::new(t.token.expose().to_string());
            let client = settings::client_builder(g)
                .secret_token(token.clone())
                .build()?;
            return Ok(Delivered::Run(token, client));
        }
        Deliver::Save { as_json } => as_json,
    };
    let path = settings::token_file().ok_or_else(|| {
        fail(
            Status::Other,
            "cannot tell where to save the token: HOME is not set",
        )
    })?;
    settings::write_private(&path, t.token.expose().as_bytes())?;
    // An app role's tokens name their identity in `user`; a JWT's in the
    // display name (and the workload).
    let identity = t
        .info
        .user
        .clone()
        .unwrap_or_else(|| t.info.display_name.clone());
    if as_json {
        output::json(&json!({
            "identity": identity,
            "display_name": t.info.display_name,
            "accessor": t.info.accessor,
            "policies": t.info.policies,
            "expires_at": t.info.expires_at,
            "workload": t.info.workload,
            "token_file": path,
        }))?;
    } else {
        eprintln!(
            "Logged in as {identity} (policies: {}; expires {}). Token saved to {} (readable by you only).",
            t.info.policies.join(", "),
            t.info.expires_at.as_deref().unwrap_or("never"),
            path.display()
        );
    }
    Ok(Delivered::Saved)
}

/// For `coffer run --login jwt:ROLE`: logs in and returns the token and a
/// client that presents it.
pub async fn login_for_run(g: &Global, spec: &str) -> anyhow::Result<(SecretString, Client)> {
    let Some(role) = spec.strip_prefix("jwt:").filter(|r| !r.is_empty()) else {
        return Err(fail(
            Status::Usage,
            "--login takes jwt:ROLE (the JWT from COFFER_JWT or the GitHub Actions runner) or approle (with --role-id)",
        ));
    };
    let jwt = obtain_jwt(g, None, None).await?;
    match machine_login(g, Proof::Jwt { role, jwt: &jwt }, Deliver::Run).await? {
        Delivered::Run(token, client) => Ok((token, client)),
        Delivered::Saved => unreachable!("asked to hand the token back"),
    }
}
