//! `coffer approle`: app roles for machines with no platform identity, and
//! the secret-id side of `coffer login --method approle` and
//! `coffer run --login approle`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use coffer_api as api;
use coffer_crypto::SecretString;
use serde_json::json;

use crate::auth_cmd::{Deliver, Delivered, Proof, machine_login};
use crate::cli::Global;
use crate::exit::{Status, fail};
use crate::{input, output, settings};

#[derive(Debug, Subcommand)]
pub enum ApproleCommand {
    /// Create an app role: the policies, lifetime and networks of the
    /// short-lived tokens its logins get. Needs `admin` on
    /// `sys/auth/approle/NAME` and the policies themselves.
    #[command(after_help = "Examples:
  coffer approle create billing-cron --policy billing-read
  coffer approle create deployer --policy deploy --token-ttl 30m --cidr 10.0.0.0/8
  coffer approle create batch --policy batch --secret-id-uses 100 --secret-id-ttl 720h")]
    Create(ApproleCreateArgs),
    /// Show an app role, with its role id.
    #[command(after_help = "Examples:\n  coffer approle read billing-cron --json")]
    Read(ApproleName),
    /// List every app role.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Delete an app role: its secret ids stop working and every token its
    /// logins issued is revoked.
    Delete(ApproleName),
    /// Print an app role's role id (an identifier, not a secret).
    #[command(after_help = "Examples:\n  coffer approle role-id billing-cron")]
    RoleId(ApproleName),
    /// Create a secret id and show it once, with its accessor. It goes to
    /// a file (--out, readable by you only) or to stdout when that is not a
    /// terminal; a terminal only with --show.
    #[command(after_help = "Examples:
  coffer approle secret-id billing-cron --out billing-cron.secret-id
  coffer approle secret-id billing-cron --json | deliver-to-host
  coffer approle secret-id billing-cron --show")]
    SecretId(SecretIdArgs),
    /// List an app role's live secret ids: accessors, creation, expiry and
    /// uses left (never the ids).
    SecretIds(ApproleName),
    /// Revoke a secret id by its accessor, and the tokens it logged in.
    #[command(after_help = "Examples:\n  coffer approle revoke-secret-id billing-cron sia_4Fq...")]
    RevokeSecretId {
        /// App-role name.
        name: String,
        /// The secret id's accessor (sia_...).
        accessor: String,
    },
}

#[derive(Debug, Args)]
pub struct ApproleName {
    /// App-role name.
    pub name: String,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApproleCreateArgs {
    /// App-role name: letters, digits, '-', '_' or '.'.
    pub name: String,
    /// Policy of the tokens (repeat for several); you must hold it.
    #[arg(long = "policy", value_name = "NAME", required = true)]
    pub policies: Vec<String>,
    /// Lifetime of a login's token (default 15m, at most 24h).
    #[arg(long, value_name = "DURATION")]
    pub token_ttl: Option<String>,
    /// Requests a login's token may make (default unlimited).
    #[arg(long, value_name = "N")]
    pub token_uses: Option<u64>,
    /// Lifetime of a secret id (default 24h, at most 2160h).
    #[arg(long, value_name = "DURATION")]
    pub secret_id_ttl: Option<String>,
    /// Logins one secret id allows (default 1).
    #[arg(long, value_name = "N")]
    pub secret_id_uses: Option<u64>,
    /// Network logins may come from (repeat for several); the tokens are
    /// bound to the same networks.
    #[arg(long = "cidr", value_name = "NET")]
    pub cidrs: Vec<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SecretIdArgs {
    /// App-role name.
    pub name: String,
    /// Write the secret id to this file (created readable by you only).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print it even when stdout is a terminal.
    #[arg(long)]
    pub show: bool,
    /// Print JSON (`secret_id`, `accessor`, ...) for scripts.
    #[arg(long)]
    pub json: bool,
}

fn role_rows(r: &api::AppRoleInfo) -> Vec<(&'static str, String)> {
    vec![
        ("Name", r.name.clone()),
        ("Role id", r.role_id.clone()),
        ("Policies", r.policies.join(", ")),
        ("Token ttl", r.token_ttl.clone()),
        (
            "Token uses",
            r.token_uses
                .map_or_else(|| "unlimited".into(), |u| u.to_string()),
        ),
        ("Secret-id ttl", r.secret_id_ttl.clone()),
        ("Secret-id uses", r.secret_id_uses.to_string()),
        (
            "Networks",
            if r.cidrs.is_empty() {
                "any".into()
            } else {
                r.cidrs.join(", ")
            },
        ),
        ("Created by", r.created_by.clone()),
        ("Created", r.created_at.clone()),
    ]
}

pub async fn run(g: &Global, cmd: ApproleCommand) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    match cmd {
        ApproleCommand::Create(a) => {
            let r = client
                .create_approle(
                    &a.name,
                    &api::AppRoleCreateRequest {
                        policies: a.policies,
                        token_ttl: a.token_ttl,
                        token_uses: a.token_uses,
                        secret_id_ttl: a.secret_id_ttl,
                        secret_id_uses: a.secret_id_uses,
                        cidrs: a.cidrs,
                    },
                )
                .await?;
            if a.json {
                output::json(&r)?;
            } else {
                output::pairs(&role_rows(&r))?;
            }
        }
        ApproleCommand::Read(a) => {
            let r = client.read_approle(&a.name).await?;
            if a.json {
                output::json(&r)?;
            } else {
                output::pairs(&role_rows(&r))?;
            }
        }
        ApproleCommand::List { json } => {
            let l = client.list_approles().await?;
            if json {
                output::json(&l)?;
            } else {
                let rows: Vec<Vec<String>> = l
                    .roles
                    .iter()
                    .map(|r| {
                        vec![
                            r.name.clone(),
                            r.policies.join(","),
                            r.token_ttl.clone(),
                            r.secret_id_uses.to_string(),
                            r.cidrs.join(","),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "NAME",
                        "POLICIES",
                        "TOKEN TTL",
                        "SECRET-ID USES",
                        "NETWORKS",
                    ],
                    &rows,
                )?;
            }
        }
        ApproleCommand::Delete(a) => {
            client.delete_approle(&a.name).await?;
            if a.json {
                output::json(&json!({ "deleted": a.name }))?;
            } else {
                eprintln!(
                    "Deleted app role {}: its secret ids no longer work and its tokens are revoked.",
                    output::visible(&a.name)
                );
            }
        }
        ApproleCommand::RoleId(a) => {
            let r = client.read_approle(&a.name).await?;
            if a.json {
                output::json(&json!({ "name": r.name, "role_id": r.role_id }))?;
            } else {
                println!("{}", r.role_id);
            }
        }
        ApproleCommand::SecretId(a) => return secret_id(&client, a).await,
        ApproleCommand::SecretIds(a) => {
            let l = client.list_secret_ids(&a.name).await?;
            if a.json {
                output::json(&l)?;
            } else {
                let rows: Vec<Vec<String>> = l
                    .secret_ids
                    .iter()
                    .map(|s| {
                        vec![
                            s.accessor.clone(),
                            s.created_at.clone(),
                            s.expires_at.clone(),
                            s.uses_left.to_string(),
                        ]
                    })
                    .collect();
                output::table(&["ACCESSOR", "CREATED", "EXPIRES", "USES LEFT"], &rows)?;
            }
        }
        ApproleCommand::RevokeSecretId { name, accessor } => {
            client.revoke_secret_id(&name, &accessor).await?;
            eprintln!(
                "Revoked secret id {} of {}, and the tokens it logged in.",
                output::visible(&accessor),
                output::visible(&name)
            );
        }
    }
    Ok(Status::Ok)
}

async fn secret_id(client: &coffer_client::Client, a: SecretIdArgs) -> anyhow::Result<Status> {
    // Refused before anything is created: a secret id on a screen stays in
    // its scrollback (and in screen shares).
    if a.out.is_none() && !a.show && std::io::stdout().is_terminal() {
        return Err(fail(
            Status::Usage,
            "not printing a secret id to a terminal: write it to a file with --out FILE, pipe \
             it to the program that delivers it, or pass --show",
        ));
    }
    let s = client.create_secret_id(&a.name).await?;
    let note = format!(
        "Secret id for {} created: accessor {}, expires {}, {} use(s). It is shown only now.",
        output::visible(&a.name),
        s.info.accessor,
        s.info.expires_at,
        s.info.uses_left
    );
    if let Some(path) = &a.out {
        settings::write_private(path, s.secret_id.expose().as_bytes())?;
        if a.json {
            output::json(&json!({
                "accessor": s.info.accessor,
                "created_at": s.info.created_at,
                "expires_at": s.info.expires_at,
                "uses_left": s.info.uses_left,
                "file": path,
            }))?;
        } else {
            eprintln!(
                "{note} Written to {} (readable by you only).",
                path.display()
            );
        }
    } else if a.json {
        output::json(&s)?;
    } else {
        println!("{}", s.secret_id.expose());
        eprintln!("{note}");
    }
    Ok(Status::Ok)
}

/// The secret id for a login: from `--secret-id-file`, else
/// `COFFER_SECRET_ID`, else stdin (prompted for on a terminal when
/// `prompt`); never a flag value, which would sit in the process list and
/// shell history.
pub fn read_secret_id(file: Option<&Path>, prompt: bool) -> anyhow::Result<SecretString> {
    let raw = if let Some(path) = file {
        let text = crate::run_cmd::read_file(path)?;
        SecretString::new(text.trim().to_string())
    } else if let Some(v) = std::env::var_os("COFFER_SECRET_ID") {
        let v = v
            .into_string()
            .map_err(|_| fail(Status::Invalid, "COFFER_SECRET_ID is not valid UTF-8"))?;
        SecretString::new(v.trim().to_string())
    } else if input::stdin_is_terminal() {
        if !prompt {
            return Err(fail(
                Status::Usage,
                "no secret id: give --secret-id-file FILE or set COFFER_SECRET_ID",
            ));
        }
        input::prompt("Secret id", false)?
    } else {
        let s = input::read_stdin()?;
        SecretString::new(s.expose_secret().trim().to_string())
    };
    if raw.expose_secret().is_empty() {
        return Err(fail(Status::Invalid, "no secret id given"));
    }
    Ok(raw)
}

/// `coffer login --method approle`: logs in and saves the token like a
/// password login does.
pub async fn login(
    g: &Global,
    role_id: &str,
    secret_id_file: Option<&Path>,
    as_json: bool,
) -> anyhow::Result<Status> {
    let secret_id = read_secret_id(secret_id_file, true)?;
    let proof = Proof::AppRole {
        role_id,
        secret_id: &secret_id,
    };
    machine_login(g, proof, Deliver::Save { as_json }).await?;
    Ok(Status::Ok)
}

/// `coffer run --login approle`: logs in with the role id and a secret id
/// (from `--secret-id-file` or COFFER_SECRET_ID, never stdin, which is the
/// command's), for one run. Returns the token and a client that holds it,
/// to revoke it when the command ends.
pub async fn login_for_run(
    g: &Global,
    role_id: &str,
    secret_id_file: Option<&Path>,
) -> anyhow::Result<(SecretString, coffer_client::Client)> {
    let secret_id = read_secret_id(secret_id_file, false)?;
    let proof = Proof::AppRole {
        role_id,
        secret_id: &secret_id,
    };
    match machine_login(g, proof, Deliver::Run).await? {
        Delivered::Run(token, client) => Ok((token, client)),
        Delivered::Saved => unreachable!("asked to hand the token back"),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// Every `coffer ...` command the app-roles chapter shows parses with
    /// the real command line (what follows a `<`, `>` or `|` is the
    /// shell's).
    #[test]
    fn the_chapters_commands_parse() {
        let chapter = include_str!("../../../docs/src/app-roles.md");
        let mut checked = 0;
        for line in chapter.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("coffer ") else {
                continue;
            };
            let command = rest.split(['<', '>', '|', '#']).next().unwrap_or_default();
            let args = std::iter::once("coffer").chain(command.split_whitespace());
            if let Err(e) = crate::cli::Cli::try_parse_from(args) {
                panic!("{line}: {e}");
            }
            checked += 1;
        }
        assert!(checked >= 15, "only {checked} commands found");
    }

    #[test]
    fn a_secret_id_is_never_a_flag_value() {
        for flag in ["--secret-id", "--secret-id=cfs_x"] {
            let args = [
                "coffer",
                "login",
                "--method",
                "approle",
                "--role-id",
                "rid_x",
                flag,
                "cfs_x",
            ];
            assert!(crate::cli::Cli::try_parse_from(args).is_err(), "{flag}");
        }
    }
}
