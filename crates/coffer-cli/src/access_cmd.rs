//! Commands of the access model: `policy`, `token`, `invite`, `login --user`,
//! `user`, `totp`, `protected`, `breakglass`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use coffer_client::api;
use coffer_crypto::SecretString;
use serde_json::json;

use crate::cli::Global;
use crate::exit::{Status, fail};
use crate::{input, output, settings};

// ---- command line ----------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create or replace a policy from FILE, or from stdin.
    #[command(after_help = "A policy grants capabilities on path patterns:

  path \"myapp/dev/*\"  { capabilities = [\"read\", \"list\"] }
  path \"myapp/prod/*\" { capabilities = [\"deny\"] }

Capabilities: read list create update delete destroy rotate admin breakglass deny.
`+` matches one segment, a final `*` any suffix; deny wins. See docs/src/access-control.md.

Examples:
  coffer policy write myapp-dev myapp-dev.hcl
  coffer policy write myapp-dev < myapp-dev.hcl")]
    Write {
        /// Policy name (lowercase letters, digits, - _ .).
        name: String,
        /// Policy file (default: stdin).
        file: Option<PathBuf>,
    },
    /// Print a policy's source.
    #[command(after_help = "Examples:\n  coffer policy read myapp-dev")]
    Read {
        /// Policy name.
        name: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// List policy names.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Delete a policy; tokens that carry it lose what it granted at once.
    Delete {
        /// Policy name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token from the current one. It never gets more than its
    /// creator: a subset of its policies, no longer life, inside its networks.
    #[command(after_help = "Examples:
  coffer token create --policy myapp-ci --ttl 24h --display-name ci-deploy
  coffer token create --policy myapp-ci --uses 1 --json | jq -r .token
  coffer token create --policy myapp-prod --cidr 10.0.0.0/8 --ttl 1h --max-ttl 24h")]
    Create(TokenCreateArgs),
    /// Show a token's attributes (yours, or by accessor).
    #[command(after_help = "Examples:\n  coffer token lookup\n  coffer token lookup acc_5Jd0...")]
    Lookup(AccessorArgs),
    /// Extend a token's life by its ttl (never past its max ttl).
    Renew(AccessorArgs),
    /// Revoke a token and every token created from it.
    #[command(
        after_help = "Examples:\n  coffer token revoke acc_5Jd0...\n  coffer token revoke --self"
    )]
    Revoke(RevokeArgs),
    /// List every token (accessors and attributes, never tokens). Admin only.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Policy to attach (repeat for several).
    #[arg(long = "policy", value_name = "NAME", required = true)]
    pub policies: Vec<String>,
    /// Lifetime and renewal period (default 768h), like 90s, 15m, 24h, 7d.
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Renewals cannot extend the token past this.
    #[arg(long, value_name = "DURATION")]
    pub max_ttl: Option<String>,
    /// Number of requests the token may make.
    #[arg(long, value_name = "N")]
    pub uses: Option<u64>,
    /// Network the token may be used from (repeat for several).
    #[arg(long = "cidr", value_name = "NET")]
    pub cidrs: Vec<String>,
    /// A name shown in token lists.
    #[arg(long, value_name = "NAME")]
    pub display_name: Option<String>,
    /// Print JSON (`token`, `accessor`, ...) for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AccessorArgs {
    /// Token accessor (default: the current token).
    pub accessor: Option<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Token accessor.
    #[arg(required_unless_present = "self_")]
    pub accessor: Option<String>,
    /// Revoke the current token.
    #[arg(long = "self", id = "self_", conflicts_with = "accessor")]
    pub self_: bool,
}

#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Create a one-time invitation code, printed once. Admin only.
    #[command(after_help = "Examples:
  coffer invite create --policy myapp-dev
  coffer invite create --policy myapp-dev --policy oncall --ttl 48h --json | jq -r .code")]
    Create {
        /// Policy the new user's logins carry (repeat for several).
        #[arg(long = "policy", value_name = "NAME", required = true)]
        policies: Vec<String>,
        /// How long the code stays valid (default 24h).
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// Print JSON (`code`, `expires_at`).
        #[arg(long)]
        json: bool,
    },
    /// Join with an invitation code: choose a user name and a password (from
    /// stdin or prompted for). The code stops working once used.
    #[command(after_help = "Examples:
  coffer invite accept --user alice              # prompts for the code, then a password twice
  COFFER_INVITE_CODE=cfi_... coffer invite accept --user alice
  printf '%s' \"$PASSWORD\" | COFFER_INVITE_CODE=cfi_... coffer invite accept --user alice

A code given as an argument works, with a warning: other users of the machine
can read a command line, and whoever uses a code first gets the account.")]
    Accept {
        /// The invitation code (or set COFFER_INVITE_CODE, or be prompted).
        #[arg(env = "COFFER_INVITE_CODE", hide_env_values = true)]
        code: Option<String>,
        /// Your user name.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users. Admin only.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Show one user.
    Show {
        /// User name.
        name: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: every token of theirs stops working at once.
    Disable {
        /// User name.
        name: String,
    },
    /// Let a disabled user log in again.
    Enable {
        /// User name.
        name: String,
    },
    /// Change a user's policies, or turn off their one-time codes (a lost
    /// authenticator). Either revokes their tokens: they log in again.
    #[command(after_help = "Examples:
  coffer user update alice --policy myapp-dev --policy oncall
  coffer user update alice --reset-totp")]
    Update {
        /// User name.
        name: String,
        /// The user's new policies (repeat for several); replaces the old ones.
        #[arg(long = "policy", value_name = "NAME")]
        policies: Vec<String>,
        /// Turn the user's one-time codes off.
        #[arg(long)]
        reset_totp: bool,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user and revoke their tokens.
    Remove {
        /// User name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TotpCommand {
    /// Start using one-time codes: prints a seed for your authenticator app,
    /// once. Then run `coffer totp confirm CODE`.
    Enable {
        /// Print JSON (`secret`, `uri`).
        #[arg(long)]
        json: bool,
    },
    /// Finish enrollment with a current code; logins then need a code.
    Confirm {
        /// Six-digit code from the app.
        code: String,
    },
    /// Stop using one-time codes (needs a current code).
    Disable {
        /// Six-digit code from the app.
        code: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProtectedCommand {
    /// Mark a path pattern protected: people cannot read values under it,
    /// whatever their policies say; service tokens can. Admin only.
    #[command(after_help = "Examples:
  coffer protected add '*/prod/*'
  coffer protected add 'payments/*'")]
    Add {
        /// Pattern (`+` or a whole `*` segment matches one segment; a final `*` any suffix).
        pattern: String,
    },
    /// Remove a protection.
    Remove {
        /// The pattern, as listed.
        pattern: String,
    },
    /// List protected patterns.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct BreakglassArgs {
    /// Protected secret (or folder ending in `/`) to read in an emergency.
    #[arg(required_unless_present = "list", conflicts_with = "list")]
    pub path: Option<String>,
    /// Why: recorded and raised as an alert.
    #[arg(long, required_unless_present = "list")]
    pub reason: Option<String>,
    /// How long (default 15m, at most 4h).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// List live grants instead (admin).
    #[arg(long)]
    pub list: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

// ---- commands --------------------------------------------------------------------

pub async fn policy(g: &Global, cmd: PolicyCommand) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    match cmd {
        PolicyCommand::Write { name, file } => {
            let source = match file {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| {
                    fail(
                        Status::Invalid,
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?,
                None => {
                    if input::stdin_is_terminal() {
                        return Err(fail(
                            Status::Usage,
                            "give a policy FILE, or pipe the policy on stdin",
                        ));
                    }
                    input::read_stdin()?.expose_secret().to_string()
                }
            };
            let p = client.write_policy(&name, &source).await?;
            eprintln!("Policy {} written.", p.name);
        }
        PolicyCommand::Read { name, json } => {
            let p = client.read_policy(&name).await?;
            if json {
                output::json(&p)?;
            } else {
                print!("{}", p.policy);
                if !p.policy.ends_with('\n') {
                    println!();
                }
            }
        }
        PolicyCommand::List { json } => {
            let l = client.list_policies().await?;
            if json {
                output::json(&l)?;
            } else {
                for p in l.policies {
                    println!("{p}");
                }
            }
        }
        PolicyCommand::Delete { name } => {
            client.delete_policy(&name).await?;
            eprintln!("Policy {name} deleted.");
        }
    }
    Ok(Status::Ok)
}

fn token_rows(t: &api::TokenInfo) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("Accessor", t.accessor.clone()),
        ("Display name", t.display_name.clone()),
        ("Kind", t.kind.clone()),
        ("Policies", t.policies.join(", ")),
        ("Created", t.created_at.clone()),
        (
            "Expires",
            t.expires_at.clone().unwrap_or_else(|| "never".into()),
        ),
    ];
    if let Some(u) = &t.user {
        rows.insert(2, ("User", u.clone()));
    }
    if let Some(m) = &t.max_expires_at {
        rows.push(("Max expiry", m.clone()));
    }
    if let Some(ttl) = &t.ttl {
        rows.push(("TTL", ttl.clone()));
    }
    if let (Some(limit), Some(left)) = (t.uses_limit, t.uses_left) {
        rows.push(("Uses left", format!("{left} of {limit}")));
    }
    if !t.cidrs.is_empty() {
        rows.push(("Networks", t.cidrs.join(", ")));
    }
    if let Some(p) = &t.parent {
        rows.push(("Parent", p.clone()));
    }
    rows
}

pub async fn token(g: &Global, cmd: TokenCommand) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    match cmd {
        TokenCommand::Create(a) => {
            let t = client
                .create_token(&api::TokenCreateRequest {
                    policies: a.policies,
                    ttl: a.ttl,
                    max_ttl: a.max_ttl,
                    uses: a.uses,
                    cidrs: a.cidrs,
                    display_name: a.display_name,
                })
                .await?;
            if a.json {
                output::json(&t)?;
            } else {
                println!("{}", t.token.expose());
                eprintln!(
                    "Token created (accessor {}, policies: {}, expires {}). It is shown once; store it now.",
                    t.info.accessor,
                    t.info.policies.join(", "),
                    t.info.expires_at.as_deref().unwrap_or("never")
                );
            }
        }
        TokenCommand::Lookup(a) => {
            let t = client.lookup_token(a.accessor.as_deref()).await?;
            show_token(&t, a.json)?;
        }
        TokenCommand::Renew(a) => {
            let t = client.renew_token(a.accessor.as_deref()).await?;
            if a.json {
                output::json(&t)?;
            } else {
                eprintln!(
                    "Token {} renewed; it now expires {}.",
                    t.accessor,
                    t.expires_at.as_deref().unwrap_or("never")
                );
            }
        }
        TokenCommand::Revoke(a) => {
            client.revoke_token(a.accessor.as_deref()).await?;
            eprintln!(
                "Revoked {} and every token created from it.",
                a.accessor.as_deref().unwrap_or("the current token")
            );
        }
        TokenCommand::List { json } => {
            let l = client.list_tokens().await?;
            if json {
                output::json(&l)?;
            } else {
                let rows: Vec<Vec<String>> = l
                    .tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.accessor.clone(),
                            t.display_name.clone(),
                            t.kind.clone(),
                            t.policies.join(","),
                            t.expires_at.clone().unwrap_or_else(|| "never".into()),
                        ]
                    })
                    .collect();
                output::table(&["ACCESSOR", "NAME", "KIND", "POLICIES", "EXPIRES"], &rows)?;
            }
        }
    }
    Ok(Status::Ok)
}

fn show_token(t: &api::TokenInfo, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        output::json(t)
    } else {
        output::pairs(&token_rows(t))
    }
}

pub async fn invite(g: &Global, cmd: InviteCommand) -> anyhow::Result<Status> {
    match cmd {
        InviteCommand::Create {
            policies,
            ttl,
            json,
        } => {
            let client = settings::client(g)?;
            let i = client
                .create_invite(&api::InviteCreateRequest { policies, ttl })
                .await?;
            if json {
                output::json(&i)?;
            } else {
                println!("{}", i.code.expose());
                eprintln!(
                    "Invitation created; it works once, until {}. Send it to the person over a private channel:\n  coffer invite accept --user NAME   (prompts for the code)",
                    i.expires_at
                );
            }
        }
        InviteCommand::Accept { code, user, json } => {
            // Accepting needs no token: build the client without one.
            let client = settings::client_builder(g).build()?;
            let code = match code {
                Some(c) => {
                    let from_env = std::env::var("COFFER_INVITE_CODE").is_ok_and(|e| e == c);
                    if !from_env {
                        eprintln!(
                            "warning: an invitation code on the command line can be read by \
                             other users of this machine, and whoever uses it first gets the \
                             account; prefer the prompt or COFFER_INVITE_CODE"
                        );
                    }
                    SecretString::new(c.trim().to_string())
                }
                None if input::stdin_is_terminal() => input::prompt("Invitation code", false)?,
                None => {
                    return Err(fail(
                        Status::Usage,
                        "give the invitation code as an argument or in COFFER_INVITE_CODE",
                    ));
                }
            };
            let password = read_password(true)?;
            let u = client.accept_invite(&code, &user, &password).await?;
            if json {
                output::json(&u)?;
            } else {
                eprintln!(
                    "Welcome, {}. Log in with `coffer login --user {}`.",
                    u.name, u.name
                );
            }
        }
    }
    Ok(Status::Ok)
}

/// A password from stdin (one trailing newline dropped) or a no-echo prompt.
fn read_password(confirm: bool) -> anyhow::Result<SecretString> {
    let pw = if input::stdin_is_terminal() {
        input::prompt("Password", confirm)?
    } else {
        input::strip_one_newline(input::read_stdin()?)
    };
    if pw.expose_secret().is_empty() {
        return Err(fail(Status::Invalid, "no password given"));
    }
    Ok(pw)
}

/// `coffer login --user NAME`: password login; the token is saved like
/// `coffer login` saves a pasted one.
pub async fn login_user(
    g: &Global,
    user: &str,
    totp: Option<&str>,
    as_json: bool,
) -> anyhow::Result<Status> {
    let client = settings::client_builder(g).build()?;
    let password = read_password(false)?;
    let t = client.login(user, &password, totp).await?;
    let path = settings::token_file().ok_or_else(|| {
        fail(
            Status::Other,
            "cannot tell where to save the token: HOME is not set",
        )
    })?;
    settings::write_private(&path, t.token.expose().as_bytes())?;
    if as_json {
        output::json(&json!({
            "user": t.info.user,
            "accessor": t.info.accessor,
            "policies": t.info.policies,
            "expires_at": t.info.expires_at,
            "token_file": path,
        }))?;
    } else {
        eprintln!(
            "Logged in as {} (policies: {}; expires {}). Token saved to {} (readable by you only).",
            t.info.user.as_deref().unwrap_or(user),
            t.info.policies.join(", "),
            t.info.expires_at.as_deref().unwrap_or("never"),
            path.display()
        );
    }
    Ok(Status::Ok)
}

fn user_rows(u: &api::UserInfo) -> Vec<(&'static str, String)> {
    vec![
        ("Name", u.name.clone()),
        ("Policies", u.policies.join(", ")),
        ("Disabled", u.disabled.to_string()),
        ("One-time codes", u.totp.to_string()),
        ("Joined", u.created_at.clone()),
        ("Invited by", u.invited_by.clone()),
        (
            "Last login",
            u.last_login_at.clone().unwrap_or_else(|| "never".into()),
        ),
    ]
}

pub async fn user(g: &Global, cmd: UserCommand) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    match cmd {
        UserCommand::List { json } => {
            let l = client.list_users().await?;
            if json {
                output::json(&l)?;
            } else {
                let rows: Vec<Vec<String>> = l
                    .users
                    .iter()
                    .map(|u| {
                        vec![
                            u.name.clone(),
                            u.policies.join(","),
                            if u.disabled { "disabled" } else { "active" }.into(),
                            u.last_login_at.clone().unwrap_or_else(|| "never".into()),
                        ]
                    })
                    .collect();
                output::table(&["USER", "POLICIES", "STATE", "LAST LOGIN"], &rows)?;
            }
        }
        UserCommand::Show { name, json } => {
            let u = client.get_user(&name).await?;
            if json {
                output::json(&u)?;
            } else {
                output::pairs(&user_rows(&u))?;
            }
        }
        UserCommand::Disable { name } => {
            let u = client.set_user_disabled(&name, true).await?;
            eprintln!(
                "User {} disabled; every token of theirs is revoked.",
                u.name
            );
        }
        UserCommand::Enable { name } => {
            let u = client.set_user_disabled(&name, false).await?;
            eprintln!("User {} enabled; they can log in again.", u.name);
        }
        UserCommand::Update {
            name,
            policies,
            reset_totp,
            json,
        } => {
            let u = client
                .update_user(
                    &name,
                    &api::UserUpdateRequest {
                        policies: (!policies.is_empty()).then_some(policies),
                        reset_totp,
                    },
                )
                .await?;
            if json {
                output::json(&u)?;
            } else {
                eprintln!(
                    "User {} updated (policies: {}; one-time codes {}); their tokens are revoked.",
                    u.name,
                    u.policies.join(", "),
                    if u.totp { "on" } else { "off" }
                );
            }
        }
        UserCommand::Remove { name } => {
            client.delete_user(&name).await?;
            eprintln!("User {name} removed and their tokens revoked.");
        }
    }
    Ok(Status::Ok)
}

pub async fn totp(g: &Global, cmd: TotpCommand) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    match cmd {
        TotpCommand::Enable { json } => {
            let e = client.enroll_totp().await?;
            if json {
                output::json(&e)?;
            } else {
                println!("{}", e.uri.expose());
                eprintln!(
                    "Add this to your authenticator app (as a QR code of the line above, or type the seed {}), then run `coffer totp confirm CODE`.",
                    e.secret.expose()
                );
            }
        }
        TotpCommand::Confirm { code } => {
            client.totp_code(true, &code).await?;
            eprintln!("One-time codes are on: `coffer login --user NAME --totp CODE` from now on.");
        }
        TotpCommand::Disable { code } => {
            client.totp_code(false, &code).await?;
            eprintln!("One-time codes are off.");
        }
    }
    Ok(Status::Ok)
}

pub async fn protected(g: &Global, cmd: ProtectedCommand) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    match cmd {
        ProtectedCommand::Add { pattern } => {
            let p = client.protect(&pattern).await?;
            eprintln!(
                "{} is protected: people cannot read values there; service tokens can.",
                p.pattern
            );
        }
        ProtectedCommand::Remove { pattern } => {
            client.unprotect(&pattern).await?;
            eprintln!("{pattern} is no longer protected.");
        }
        ProtectedCommand::List { json } => {
            let l = client.list_protected().await?;
            if json {
                output::json(&l)?;
            } else {
                let rows: Vec<Vec<String>> = l
                    .protected
                    .iter()
                    .map(|p| {
                        vec![
                            p.pattern.clone(),
                            p.created_by.clone(),
                            p.created_at.clone(),
                        ]
                    })
                    .collect();
                output::table(&["PATTERN", "BY", "SINCE"], &rows)?;
            }
        }
    }
    Ok(Status::Ok)
}

pub async fn breakglass(g: &Global, a: BreakglassArgs) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    if a.list {
        let l = client.list_breakglass().await?;
        if a.json {
            output::json(&l)?;
        } else {
            let rows: Vec<Vec<String>> = l
                .grants
                .iter()
                .map(|g| {
                    vec![
                        g.user.clone(),
                        g.path.clone(),
                        g.expires_at.clone(),
                        g.reason.clone(),
                    ]
                })
                .collect();
            output::table(&["USER", "PATH", "UNTIL", "REASON"], &rows)?;
        }
        return Ok(Status::Ok);
    }
    let grant = client
        .breakglass(&api::BreakglassRequest {
            path: a.path.unwrap_or_default(),
            reason: a.reason.unwrap_or_default(),
            ttl: a.ttl,
        })
        .await?;
    if a.json {
        output::json(&grant)?;
    } else {
        eprintln!(
            "Break-glass granted on {} until {}. This has been recorded and raised as an alert.",
            grant.path, grant.expires_at
        );
    }
    Ok(Status::Ok)
}
