//! The client and operator commands.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use coffer_client::{ListOptions, WireValue};
use coffer_crypto::SecretString;
use serde_json::json;

use crate::cli::{Cli, Command, GetArgs, LsArgs, OperatorCommand, RmArgs, SetArgs, VersionsArgs};
use crate::exit::{Status, fail};
use crate::{access_cmd, input, output, server_cmd, settings};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Status> {
    let g = &cli.global;
    match cli.command {
        Command::Server(args) => server_cmd::run(args).await,
        Command::Status(f) | Command::Operator(OperatorCommand::Status(f)) => {
            status(g, f.json).await
        }
        Command::Operator(OperatorCommand::Init(a)) => init(g, a.shares, a.threshold, a.json).await,
        Command::Operator(OperatorCommand::Unseal(a)) => unseal(g, a.reset, a.json).await,
        Command::Operator(OperatorCommand::Backup(a)) => crate::backup_cmd::backup(g, a).await,
        Command::Operator(OperatorCommand::Restore(a)) => crate::backup_cmd::restore(a).await,
        Command::Operator(OperatorCommand::Seal) => {
            settings::client(g)?.seal().await?;
            eprintln!("Sealed. Unseal with `coffer operator unseal`.");
            Ok(Status::Ok)
        }
        Command::Operator(OperatorCommand::Keyring(f)) => {
            let k = settings::client(g)?.keyring().await?;
            if f.json {
                output::json(&k)?;
            } else {
                let rows: Vec<Vec<String>> = k
                    .keys
                    .iter()
                    .map(|key| {
                        vec![
                            key.id.to_string(),
                            key.created_at.clone(),
                            if key.id == k.active_key {
                                "active".into()
                            } else {
                                String::new()
                            },
                        ]
                    })
                    .collect();
                output::table(&["KEY", "CREATED", ""], &rows)?;
            }
            Ok(Status::Ok)
        }
        Command::Operator(OperatorCommand::Rotate(f)) => {
            let k = settings::client(g)?.rotate().await?;
            if f.json {
                output::json(&k)?;
            } else {
                println!(
                    "Keyring rotated: new writes use key {} ({} keys in all); older versions move to it in the background.",
                    k.active_key,
                    k.keys.len()
                );
            }
            Ok(Status::Ok)
        }
        Command::Set(a) => set(g, a).await,
        Command::Get(a) => get(g, a).await,
        Command::Ls(a) => ls(g, a).await,
        Command::Run(a) => crate::run_cmd::run(g, a).await,
        Command::Example(a) => crate::check_cmd::example(g, a).await,
        Command::Check(a) => crate::check_cmd::check(g, a).await,
        Command::Scan(a) => crate::known_cmd::scan(g, a).await,
        Command::Hook(c) => crate::hook_cmd::run(c),
        Command::Import(a) => crate::transfer_cmd::import(g, a).await,
        Command::Export(a) => crate::transfer_cmd::export(g, a).await,
        Command::Migrate(c) => crate::migrate_cmd::run(g, c).await,
        Command::Sync(c) => crate::sync_cmd::run(g, c).await,
        Command::Rm(a) => rm(g, a).await,
        Command::Undelete(a) => undelete(g, a).await,
        Command::History(a) => history(g, &a.path, a.json).await,
        Command::Generate(a) => crate::lifecycle_cmd::generate(a),
        Command::Rotate(a) => crate::lifecycle_cmd::rotate(g, a).await,
        Command::Promote(a) => crate::lifecycle_cmd::promote(g, a).await,
        Command::Expire(a) => crate::lifecycle_cmd::expire(g, a).await,
        Command::Lifecycle(c) => crate::lifecycle_cmd::lifecycle(g, c).await,
        Command::Rotation(c) => crate::lifecycle_cmd::rotation(g, c).await,
        Command::Pg(c) => crate::lifecycle_cmd::pg(g, c).await,
        Command::Rollback(a) => crate::lifecycle_cmd::rollback(g, a).await,
        Command::Leak(a) => crate::leak_cmd::leak(g, a).await,
        Command::Cp(a) => crate::lifecycle_cmd::copy(g, a, false).await,
        Command::Mv(a) => crate::lifecycle_cmd::copy(g, a, true).await,
        Command::Env(c) => crate::lifecycle_cmd::env(g, c).await,
        Command::Login(a) => login_any(g, &a).await,
        Command::Approle(c) => crate::approle_cmd::run(g, c).await,
        Command::Auth(c) => crate::auth_cmd::auth(g, c).await,
        Command::Policy(c) => access_cmd::policy(g, c).await,
        Command::Token(c) => access_cmd::token(g, c).await,
        Command::Invite(c) => access_cmd::invite(g, c).await,
        Command::User(c) => access_cmd::user(g, c).await,
        Command::Share(c) => crate::share_cmd::share(g, c).await,
        Command::Totp(c) => access_cmd::totp(g, c).await,
        Command::Protected(c) => access_cmd::protected(g, c).await,
        Command::Breakglass(a) => access_cmd::breakglass(g, a).await,
        Command::Audit(c) => crate::audit_cmd::run(g, c).await,
        Command::Logout => logout(),
        Command::Doctor(a) => crate::doctor_cmd::run(g, a).await,
        Command::Completions(a) => crate::docs_cmd::completions(a),
        Command::Manpages(a) => crate::docs_cmd::manpages(a),
    }
}

async fn status(g: &crate::cli::Global, as_json: bool) -> anyhow::Result<Status> {
    let s = settings::client_builder(g).build()?.status().await?;
    if as_json {
        output::json(&s)?;
    } else {
        let mut pairs = vec![
            ("Initialized", s.initialized.to_string()),
            ("Sealed", s.sealed.to_string()),
            ("Shares", s.shares.to_string()),
            ("Threshold", s.threshold.to_string()),
            ("Unseal progress", format!("{}/{}", s.progress, s.threshold)),
            ("Storage", s.storage.clone()),
            ("Version", s.version.clone()),
            (
                "Audit log",
                if s.audit_available {
                    "recording".to_string()
                } else {
                    "UNAVAILABLE: no sink can record; requests are refused".to_string()
                },
            ),
        ];
        // Only a problem is worth a line: a server that does not say
        // (an older one) is not reported as unlocked.
        if s.memory_locked == Some(false) {
            pairs.push((
                "Memory",
                "NOT LOCKED: keys may reach swap (see the server log)".to_string(),
            ));
        }
        output::pairs(&pairs)?;
    }
    Ok(if s.sealed || !s.audit_available {
        Status::Sealed
    } else {
        Status::Ok
    })
}

async fn init(
    g: &crate::cli::Global,
    shares: u8,
    threshold: u8,
    as_json: bool,
) -> anyhow::Result<Status> {
    if threshold > shares {
        return Err(fail(
            Status::Usage,
            format!("--threshold ({threshold}) cannot be larger than --shares ({shares})"),
        ));
    }
    let client = settings::client_builder(g).build()?;
    let out = client.init(shares, threshold).await?;
    if as_json {
        output::json(&json!({
            "unseal_keys": out.unseal_keys,
            "root_token": out.root_token,
            "shares": shares,
            "threshold": threshold,
        }))?;
    } else {
        let mut stdout = std::io::stdout().lock();
        for (i, k) in out.unseal_keys.iter().enumerate() {
            writeln!(stdout, "Unseal key {}: {k}", i + 1)?;
        }
        writeln!(stdout, "\nInitial root token: {}", out.root_token)?;
        writeln!(
            stdout,
            "\nCoffer is initialized with {shares} unseal key share(s); any {threshold} of them unseal it.\n\
             These keys and the root token are shown now and never again. Give each key to a\n\
             different person and keep them apart; coffer cannot recover them.\n\n\
             The server is sealed. Unseal it with `coffer operator unseal`, {threshold} time(s), each with a different key."
        )?;
    }
    Ok(Status::Ok)
}

async fn unseal(g: &crate::cli::Global, reset: bool, as_json: bool) -> anyhow::Result<Status> {
    let client = settings::client_builder(g).build()?;
    let s = if reset {
        client.unseal_reset().await?
    } else {
        let key = input::token_like("Unseal key")?;
        client.unseal(&key).await?
    };
    if as_json {
        output::json(&s)?;
    } else if s.sealed {
        println!(
            "Sealed. Unseal progress: {}/{}; {} more key(s) needed.",
            s.progress,
            s.threshold,
            s.threshold.saturating_sub(s.progress)
        );
    } else {
        println!("Unsealed.");
    }
    Ok(Status::Ok)
}

async fn set(g: &crate::cli::Global, a: SetArgs) -> anyhow::Result<Status> {
    if let Some(spec) = &a.generate {
        coffer_core::lifecycle::parse_generator(spec)
            .map_err(|e| fail(Status::Usage, e.to_string()))?;
        let receipt = settings::client(g)?
            .write_generated(&a.path, spec, a.cas)
            .await?;
        if a.json {
            output::json(&receipt)?;
        } else {
            eprintln!(
                "Stored a generated value ({spec}) as {} version {}; it was not printed.",
                receipt.path, receipt.version
            );
        }
        return Ok(Status::Ok);
    }
    let raw = match a.value {
        Some(v) => {
            eprintln!(
                "coffer: warning: a value given with --value is visible to other users in the process list \
                 and is saved in shell history; prefer stdin or the prompt"
            );
            SecretString::new(v)
        }
        None if input::stdin_is_terminal() => {
            input::prompt(&format!("Value for {}", a.path), !a.fields)?
        }
        None => {
            let v = input::read_stdin()?;
            if a.raw || a.fields {
                v
            } else {
                input::strip_one_newline(v)
            }
        }
    };
    let value = if a.fields {
        let parsed: BTreeMap<String, String> =
            serde_json::from_str(raw.expose_secret()).map_err(|_| {
                fail(
                    Status::Invalid,
                    "--fields expects a JSON object whose values are all strings",
                )
            })?;
        WireValue::Fields(parsed)
    } else {
        WireValue::Text(raw.expose_secret().to_string())
    };
    let empty = match &value {
        WireValue::Text(t) => t.is_empty(),
        WireValue::Fields(f) => f.is_empty(),
    };
    if empty && !a.allow_empty {
        return Err(fail(
            Status::Invalid,
            "refusing to store an empty value (pass --allow-empty if you mean it)",
        ));
    }
    let receipt = settings::client(g)?.write(&a.path, &value, a.cas).await?;
    for w in &receipt.warnings {
        eprintln!("coffer: warning: {w}");
    }
    if a.json {
        output::json(&receipt)?;
    } else {
        eprintln!("Stored {} version {}.", receipt.path, receipt.version);
    }
    Ok(Status::Ok)
}

async fn get(g: &crate::cli::Global, a: GetArgs) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    let read = match &a.label {
        Some(label) => client.read_label(&a.path, label).await?,
        None => client.read(&a.path, a.version).await?,
    };
    if a.json {
        output::json(&read)?;
        return Ok(Status::Ok);
    }
    let mut stdout = std::io::stdout().lock();
    let text: String = match (&read.value, &a.field) {
        (WireValue::Text(t), None) => t.clone(),
        (WireValue::Text(_), Some(_)) => {
            return Err(fail(
                Status::Invalid,
                format!("{} is a text value; it has no fields", read.path),
            ));
        }
        (WireValue::Fields(f), Some(name)) => f.get(name).cloned().ok_or_else(|| {
            fail(
                Status::NotFound,
                format!(
                    "{} has no field {name:?} (fields: {})",
                    read.path,
                    f.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?,
        (WireValue::Fields(f), None) => serde_json::to_string_pretty(f)?,
    };
    let text = SecretString::new(text);
    stdout.write_all(text.expose_secret().as_bytes())?;
    // On a terminal, end the line; in a pipe, print the value exactly.
    if stdout.is_terminal() && !text.expose_secret().ends_with('\n') {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(Status::Ok)
}

async fn ls(g: &crate::cli::Global, a: LsArgs) -> anyhow::Result<Status> {
    let entries = settings::client(g)?
        .list_all(
            &a.prefix,
            &ListOptions {
                recursive: a.recursive,
                include_deleted: a.all,
                after: None,
                limit: None,
            },
        )
        .await?;
    if a.json {
        output::json(&entries)?;
    } else {
        let mut stdout = std::io::stdout().lock();
        for e in &entries {
            writeln!(stdout, "{}", e.name)?;
        }
    }
    Ok(Status::Ok)
}

async fn rm(g: &crate::cli::Global, a: RmArgs) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    let done = if a.destroy {
        client.destroy(&a.path, &a.version).await?
    } else {
        client.delete(&a.path, &a.version).await?
    };
    if a.json {
        output::json(&done)?;
    } else {
        let list = join(&done.versions);
        if a.destroy {
            eprintln!(
                "Destroyed {} version(s) {list}. This cannot be undone.",
                done.path
            );
        } else {
            eprintln!(
                "Deleted {} version(s) {list}. `coffer undelete {}` restores it.",
                done.path, done.path
            );
        }
    }
    Ok(Status::Ok)
}

async fn undelete(g: &crate::cli::Global, a: VersionsArgs) -> anyhow::Result<Status> {
    let done = settings::client(g)?.undelete(&a.path, &a.version).await?;
    if a.json {
        output::json(&done)?;
    } else {
        eprintln!(
            "Restored {} version(s) {}.",
            done.path,
            join(&done.versions)
        );
    }
    Ok(Status::Ok)
}

async fn history(g: &crate::cli::Global, path: &str, as_json: bool) -> anyhow::Result<Status> {
    let md = settings::client(g)?.metadata(path).await?;
    if as_json {
        output::json(&md)?;
        return Ok(Status::Ok);
    }
    let rows: Vec<Vec<String>> = md
        .versions
        .iter()
        .map(|v| {
            let mut state = v.state.clone();
            if let Some(t) = &v.state_changed_at {
                state.push_str(&format!(" ({t})"));
            }
            match &md.labels {
                Some(l) => {
                    if v.version == l.current {
                        state.push_str(" [current]");
                    }
                    if Some(v.version) == l.previous {
                        match &l.previous_until {
                            Some(t) => state.push_str(&format!(" [previous until {t}]")),
                            None => state.push_str(" [previous]"),
                        }
                    }
                    if Some(v.version) == l.pending {
                        state.push_str(" [pending]");
                    }
                }
                None if v.version == md.current_version => state.push_str(" [current]"),
                None => {}
            }
            // A leaked version: never current again (`coffer leak`).
            if let Some(t) = &v.compromised_at {
                state.push_str(&format!(
                    " [COMPROMISED {t}: {}]",
                    v.compromised_reason.as_deref().unwrap_or("")
                ));
            }
            // The name alone can be claimed: the kind and the accessor of
            // the token that wrote the version say who it really was.
            let by = match (&v.created_by_kind, &v.created_by_accessor) {
                (Some(k), Some(a)) => format!("{} ({k} {a})", v.created_by),
                (Some(k), None) => format!("{} ({k})", v.created_by),
                _ => v.created_by.clone(),
            };
            vec![v.version.to_string(), v.created_at.clone(), by, state]
        })
        .collect();
    output::table(&["VERSION", "CREATED", "BY", "STATE"], &rows)?;
    if let Some(t) = md.labels.as_ref().and_then(|l| l.expires_at.as_ref()) {
        println!("Expires at {t}.");
    }
    Ok(Status::Ok)
}

async fn login_any(g: &crate::cli::Global, a: &crate::cli::LoginArgs) -> anyhow::Result<Status> {
    use crate::cli::LoginMethod;
    let method = a.method.unwrap_or(if a.user.is_some() {
        LoginMethod::Password
    } else {
        LoginMethod::Token
    });
    let jwt_only = a.role.is_some() || a.jwt_file.is_some() || a.audience.is_some();
    if method != LoginMethod::Jwt && jwt_only {
        return Err(fail(
            Status::Usage,
            "--role, --jwt-file and --audience go with --method jwt",
        ));
    }
    let approle_only = a.role_id.is_some() || a.secret_id_file.is_some();
    if method != LoginMethod::Approle && approle_only {
        return Err(fail(
            Status::Usage,
            "--role-id and --secret-id-file go with --method approle",
        ));
    }
    match method {
        LoginMethod::Approle => {
            if a.user.is_some() {
                return Err(fail(Status::Usage, "--user goes with --method password"));
            }
            let Some(role_id) = &a.role_id else {
                return Err(fail(
                    Status::Usage,
                    "--method approle needs --role-id ID (and the secret id from --secret-id-file, COFFER_SECRET_ID or stdin)",
                ));
            };
            crate::approle_cmd::login(g, role_id, a.secret_id_file.as_deref(), a.json).await
        }
        LoginMethod::Password => {
            let Some(user) = &a.user else {
                return Err(fail(Status::Usage, "--method password needs --user NAME"));
            };
            access_cmd::login_user(g, user, a.totp.as_deref(), a.json).await
        }
        LoginMethod::Token if a.user.is_some() => {
            Err(fail(Status::Usage, "--user goes with --method password"))
        }
        LoginMethod::Token => login(g, a.json).await,
        LoginMethod::Jwt => {
            if a.user.is_some() {
                return Err(fail(Status::Usage, "--user goes with --method password"));
            }
            let Some(role) = &a.role else {
                return Err(fail(Status::Usage, "--method jwt needs --role ROLE"));
            };
            crate::auth_cmd::login_jwt(
                g,
                role,
                a.jwt_file.as_deref(),
                a.audience.as_deref(),
                a.json,
            )
            .await
        }
    }
}

async fn login(g: &crate::cli::Global, as_json: bool) -> anyhow::Result<Status> {
    let token = input::token_like("Token")?;
    let client = settings::client_builder(g)
        .secret_token(token.clone())
        .build()?;
    let info = client.lookup_token(None).await?;
    let path = settings::token_file().ok_or_else(|| {
        fail(
            Status::Other,
            "cannot tell where to save the token: HOME is not set",
        )
    })?;
    settings::write_private(&path, token.expose_secret().as_bytes())?;
    if as_json {
        output::json(&json!({
            "accessor": info.accessor,
            "display_name": info.display_name,
            "policies": info.policies,
            "token_file": path,
        }))?;
    } else {
        eprintln!(
            "Logged in as {} (accessor {}, policies: {}). Token saved to {} (readable by you only).",
            info.display_name,
            info.accessor,
            info.policies.join(", "),
            path.display()
        );
    }
    Ok(Status::Ok)
}

fn logout() -> anyhow::Result<Status> {
    if let Some(path) = settings::token_file() {
        match std::fs::remove_file(&path) {
            Ok(()) => eprintln!("Removed {}.", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("No saved token.")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Status::Ok)
}

fn join(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}
