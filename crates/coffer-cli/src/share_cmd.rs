//! `coffer share`: one-time share links. The value is sealed here, under a
//! key that goes only into the link's fragment (see
//! `coffer_client::Client::share_value`); the server keeps the sealed bytes.

use std::io::{IsTerminal, Write};

use clap::{Args, Subcommand};
use coffer_client::{ShareLink, ShareOptions, WireValue};
use coffer_crypto::SecretString;

use crate::exit::{Status, fail};
use crate::{input, output, settings};

/// The environment variable a script can pass a passphrase in (never a
/// flag: other users of the machine can read a command line).
const PASSPHRASE_ENV: &str = "COFFER_SHARE_PASSPHRASE";

#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Make a one-time link for a value (typed, piped on stdin, or a stored
    /// secret) that the server cannot read. Prints the link.
    #[command(after_help = "Examples:
  coffer share create                                # prompts for the value (no echo)
  printf '%s' \"$VALUE\" | coffer share create --stdin
  coffer share create myapp/prod/API_KEY --expires 30m
  coffer share create myapp/prod/API_KEY --views 3 --expires 2d
  coffer share create myapp/prod/API_KEY --passphrase   # prompts for a passphrase twice

The link is https://HOST/s/ID#KEY: the key is in the part after #, which
browsers never send to a server. Send the link and the passphrase (if any)
through different channels. Links last 1h and allow 1 view unless asked
otherwise (at most 7d and 100 views). Sharing a stored secret needs read on
it and create on sys/shares; the read is audited and the share records the
version. Without a terminal the passphrase comes from COFFER_SHARE_PASSPHRASE.")]
    Create(CreateArgs),
    /// Open a share link: spends one view and prints the value on stdout.
    #[command(after_help = "Examples:
  coffer share open                                   # prompts for the link (no echo)
  printf '%s' \"$LINK\" | coffer share open
  COFFER_SHARE_LINK=\"$LINK\" coffer share open > value.txt

A link given as an argument works, with a warning: other users of the
machine can read a command line. A link that is unknown, used up, expired or
revoked exits 3; one that does not decrypt (wrong passphrase, altered data)
exits 7. A passphrase is prompted for (or read from COFFER_SHARE_PASSPHRASE).")]
    Open(OpenArgs),
    /// The live share links you made (never their values or keys).
    #[command(after_help = "Examples:
  coffer share list
  coffer share list --json | jq -r '.shares[].id'")]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one of your share links: it stops working at once.
    #[command(after_help = "Examples:
  coffer share revoke 3q2-7wX9bY1cD4eF5gH6iJ")]
    Revoke {
        /// The link's id (the part after /s/). Ids may start with `-`.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Share this stored secret (its current version unless --version).
    #[arg(conflicts_with = "stdin")]
    pub path: Option<String>,
    /// The version of PATH to share.
    #[arg(long, value_name = "N", requires = "path", value_parser = clap::value_parser!(u64).range(1..))]
    pub version: Option<u64>,
    /// Read the value from stdin (exactly; one trailing newline is dropped).
    #[arg(long)]
    pub stdin: bool,
    /// How long the link works (default 1h, at most 7d).
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// How many opens it allows (default 1, at most 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub views: Option<u32>,
    /// Also require a passphrase (prompted for; never given as a flag value).
    #[arg(long)]
    pub passphrase: bool,
    /// Print JSON (`url`, `id`, `expires_at`, `views`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The link (or set COFFER_SHARE_LINK, pipe it on stdin, or be prompted).
    #[arg(env = "COFFER_SHARE_LINK", hide_env_values = true)]
    pub link: Option<String>,
}

pub async fn share(g: &crate::cli::Global, c: ShareCommand) -> anyhow::Result<Status> {
    match c {
        ShareCommand::Create(a) => create(g, a).await,
        ShareCommand::Open(a) => open(g, a).await,
        ShareCommand::List { json } => list(g, json).await,
        ShareCommand::Revoke { id } => {
            settings::client(g)?.revoke_share(&id).await?;
            eprintln!("Revoked; the link no longer opens.");
            Ok(Status::Ok)
        }
    }
}

/// The passphrase: from the environment, else prompted on a terminal
/// (twice when `confirm`), else from stdin when `stdin_free`.
fn passphrase(confirm: bool, stdin_free: bool) -> anyhow::Result<SecretString> {
    let pass = if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        SecretString::new(p)
    } else if std::io::stderr().is_terminal() && input::stdin_is_terminal() {
        input::prompt("Passphrase", confirm)?
    } else if stdin_free {
        input::strip_one_newline(input::read_stdin()?)
    } else {
        return Err(fail(
            Status::Usage,
            format!("a passphrase is needed: run on a terminal or set {PASSPHRASE_ENV}"),
        ));
    };
    if pass.expose_secret().is_empty() {
        return Err(fail(Status::Invalid, "the passphrase is empty"));
    }
    Ok(pass)
}

async fn create(g: &crate::cli::Global, a: CreateArgs) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    let (value, source) = match &a.path {
        Some(path) => {
            let read = client.read(path, a.version).await?;
            let text = match &read.value {
                WireValue::Text(t) => SecretString::new(t.clone()),
                WireValue::Fields(f) => SecretString::new(serde_json::to_string_pretty(f)?),
            };
            (text, Some((read.path.clone(), read.version)))
        }
        None if a.stdin || !input::stdin_is_terminal() => {
            (input::strip_one_newline(input::read_stdin()?), None)
        }
        None => (input::prompt("Value to share", false)?, None),
    };
    if value.expose_secret().is_empty() {
        return Err(fail(
            Status::Invalid,
            "the value is empty; nothing was shared",
        ));
    }
    let stdin_free = a.path.is_some();
    let pass = if a.passphrase {
        Some(passphrase(true, stdin_free)?)
    } else {
        None
    };
    let made = client
        .share_value(
            value.expose_secret().as_bytes(),
            pass.as_ref(),
            &ShareOptions {
                expires_in: a.expires,
                views: a.views,
                source,
            },
        )
        .await?;
    if a.json {
        output::json(&serde_json::json!({
            "url": made.url.expose_secret(),
            "id": made.info.id,
            "expires_at": made.info.expires_at,
            "views": made.info.views,
            "passphrase": made.info.passphrase,
        }))?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", made.url.expose_secret())?;
        out.flush()?;
        eprintln!(
            "Opens {} time(s) until {}{}.",
            made.info.views,
            made.info.expires_at,
            if made.info.passphrase {
                ", with the passphrase (send it another way)"
            } else {
                ""
            }
        );
    }
    Ok(Status::Ok)
}

async fn open(g: &crate::cli::Global, a: OpenArgs) -> anyhow::Result<Status> {
    let from_stdin = a.link.is_none() && !input::stdin_is_terminal();
    let link = match a.link {
        Some(l) => {
            if std::env::var_os("COFFER_SHARE_LINK").is_none() {
                eprintln!(
                    "warning: a link on the command line can be read by other users of this machine; pipe it on stdin or set COFFER_SHARE_LINK"
                );
            }
            SecretString::new(l)
        }
        None => input::token_like("Share link")?,
    };
    let link = ShareLink::parse(link.expose_secret())?;
    let mut builder = coffer_client::Client::builder(link.origin.clone());
    if let Some(ca) = &g.ca_cert {
        builder = builder.ca_cert(ca);
    }
    let client = builder.build()?;
    let mut asked_error: Option<anyhow::Error> = None;
    let interactive = std::io::stderr().is_terminal() && input::stdin_is_terminal();
    let value = client
        .open_link(&link, |retry| {
            if retry && !interactive {
                return None;
            }
            if retry {
                eprintln!("That passphrase does not open this link; try again (the view is already spent).");
            }
            match passphrase(false, !from_stdin) {
                Ok(p) => Some(p),
                Err(e) => {
                    asked_error = Some(e);
                    None
                }
            }
        })
        .await;
    if let Some(e) = asked_error {
        return Err(e);
    }
    let value = value?;
    let text = String::from_utf8(value.to_vec())
        .map_err(|_| fail(Status::Invalid, "the shared value is not UTF-8 text"))?;
    let text = SecretString::new(text);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.expose_secret().as_bytes())?;
    if stdout.is_terminal() && !text.expose_secret().ends_with('\n') {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(Status::Ok)
}

async fn list(g: &crate::cli::Global, json: bool) -> anyhow::Result<Status> {
    let shares = settings::client(g)?.list_shares().await?;
    if json {
        output::json(&shares)?;
        return Ok(Status::Ok);
    }
    let rows: Vec<Vec<String>> = shares
        .shares
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                format!("{}/{}", s.views_left, s.views),
                s.expires_at.clone(),
                if s.passphrase { "yes" } else { "no" }.into(),
                match (&s.path, s.version) {
                    (Some(p), Some(v)) => format!("{p} v{v}"),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    output::table(
        &["ID", "VIEWS LEFT", "EXPIRES", "PASSPHRASE", "SECRET"],
        &rows,
    )?;
    Ok(Status::Ok)
}
