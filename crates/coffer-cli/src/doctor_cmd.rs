//! `coffer doctor`: checks a setup and says how to fix each problem found.
//!
//! Each check answers ok, warn (works, but is weaker than it should be),
//! fail (broken or unsafe) or skip (could not tell, and why). It exits 0
//! when nothing failed and 7 (validation failed) otherwise, so a script or
//! CI step can run it. It never prints a value or a token.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use clap::Args;
use coffer_client::{AuditQuery, Client, ErrorKind};
use serde::Serialize;

use crate::cli::Global;
use crate::exit::Status;
use crate::{output, settings};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The project directory whose git repository is checked for `.env`
    /// files and the pre-commit hook.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    status: Level,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn check(check: &'static str, status: Level, message: impl Into<String>) -> Check {
    Check {
        check,
        status,
        message: message.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// Clock skew beyond which a warning, and a failure, are raised: token and
/// invitation expiry, and audit times, assume the clocks agree.
const SKEW_WARN: Duration = Duration::from_secs(30);
const SKEW_FAIL: Duration = Duration::from_secs(300);
/// How recent the last backup should be.
const BACKUP_AGE: Duration = Duration::from_secs(7 * 86_400);

pub async fn run(g: &Global, args: DoctorArgs) -> anyhow::Result<Status> {
    let mut checks = Vec::new();
    let addr = settings::addr(g);
    checks.push(transport(&addr));
    let token = match settings::resolve_token() {
        Ok(t) => {
            checks.push(token_file());
            t
        }
        Err(e) => {
            checks.push(
                check("token file", Level::Fail, e.to_string())
                    .fix("chmod 600 the file, or run `coffer login` again"),
            );
            None
        }
    };
    let mut builder = settings::client_builder(g).timeout(Duration::from_secs(10));
    let has_token = token.is_some();
    if let Some(t) = token {
        builder = builder.secret_token(t);
    }
    match builder.build() {
        Ok(client) => server_checks(&client, &addr, has_token, &mut checks).await,
        Err(e) => checks.push(
            check("server", Level::Fail, e.message)
                .fix("set COFFER_ADDR to the server's URL (and COFFER_CACERT for a private CA)"),
        ),
    }
    git_checks(&args.dir, &mut checks);

    let failed = checks.iter().any(|c| c.status == Level::Fail);
    if args.json {
        output::json(&serde_json::json!({ "ok": !failed, "checks": checks }))?;
    } else {
        print_text(&checks);
    }
    Ok(if failed { Status::Invalid } else { Status::Ok })
}

fn print_text(checks: &[Check]) {
    use std::io::Write;
    let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for c in checks {
        let mark = match c.status {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
            Level::Skip => "skip",
        };
        let _ = writeln!(
            out,
            "{mark}  {:width$}  {}",
            c.check,
            output::visible(&c.message)
        );
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "      {:width$}  fix: {}", "", output::visible(fix));
        }
    }
    let (fails, warns) = (
        checks.iter().filter(|c| c.status == Level::Fail).count(),
        checks.iter().filter(|c| c.status == Level::Warn).count(),
    );
    let _ = writeln!(
        out,
        "\n{}",
        match (fails, warns) {
            (0, 0) => "Everything checked is in order.".to_string(),
            (0, w) => format!("No failures; {w} warning(s)."),
            (f, w) => format!("{f} failure(s), {w} warning(s)."),
        }
    );
}

/// Whether the address protects what crosses the network.
fn transport(addr: &str) -> Check {
    let Some((scheme, rest)) = addr.split_once("://") else {
        return check("transport", Level::Fail, format!("{addr} is not a URL"))
            .fix("set COFFER_ADDR to http(s)://HOST:PORT");
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match (scheme, loopback) {
        ("https", _) => check(
            "transport",
            Level::Ok,
            "https: the server's certificate is verified",
        ),
        ("http", true) => check("transport", Level::Ok, "http on a loopback address"),
        _ => check(
            "transport",
            Level::Fail,
            format!("{addr} is plain http to another machine: tokens and values would cross the network in clear"),
        )
        .fix("use https:// (the server needs [tls] to listen beyond loopback)"),
    }
}

/// The saved token's file, if there is one and no `COFFER_TOKEN` overrides it.
fn token_file() -> Check {
    use std::os::unix::fs::PermissionsExt;
    if std::env::var("COFFER_TOKEN").is_ok_and(|t| !t.trim().is_empty()) {
        return check(
            "token file",
            Level::Ok,
            "COFFER_TOKEN is set (no file used)",
        );
    }
    let Some(path) = settings::token_file() else {
        return check("token file", Level::Skip, "HOME is not set");
    };
    match std::fs::metadata(&path) {
        Ok(m) if m.permissions().mode() & 0o077 == 0 => check(
            "token file",
            Level::Ok,
            format!("{} is readable by you only", path.display()),
        ),
        Ok(m) => check(
            "token file",
            Level::Fail,
            format!(
                "{} is open to others (mode {:o})",
                path.display(),
                m.permissions().mode() & 0o777
            ),
        )
        .fix(format!("chmod 600 {}", path.display())),
        Err(_) => check("token file", Level::Skip, "no saved token (`coffer login`)"),
    }
}

async fn server_checks(client: &Client, addr: &str, has_token: bool, checks: &mut Vec<Check>) {
    let (status, date) = match client.status_and_time().await {
        Ok(s) => s,
        Err(e) => {
            let fix = if e.kind == ErrorKind::Unreachable
                && e.message.to_lowercase().contains("certificate")
            {
                "trust the server's CA with COFFER_CACERT=FILE, or fix its certificate's names"
            } else {
                "start the server (`coffer server --config FILE`), or set COFFER_ADDR to where it runs"
            };
            checks.push(check("server", Level::Fail, e.message).fix(fix));
            return;
        }
    };
    checks.push(check(
        "server",
        Level::Ok,
        format!(
            "{addr} answers: coffer {}, {} storage",
            status.version, status.storage
        ),
    ));
    checks.push(match (status.initialized, status.sealed) {
        (false, _) => check("seal", Level::Fail, "not initialised")
            .fix("coffer operator init (on the server machine)"),
        (true, true) => check(
            "seal",
            Level::Fail,
            format!(
                "sealed ({}/{} unseal keys given)",
                status.progress, status.threshold
            ),
        )
        .fix("coffer operator unseal, by each key holder"),
        (true, false) => check("seal", Level::Ok, "unsealed"),
    });
    checks.push(if status.audit_available {
        check("audit log", Level::Ok, "recording")
    } else {
        check(
            "audit log",
            Level::Fail,
            "no audit sink can record: every audited request is refused",
        )
        .fix("restore the audit sink (disk space, permissions, the collector); see the server log")
    });
    if status.memory_locked == Some(false) {
        checks.push(
            check("memory", Level::Warn, "the server's memory is not locked: keys may reach swap")
                .fix("raise its memory-lock limit (systemd LimitMEMLOCK=infinity), or use encrypted or no swap"),
        );
    }
    checks.push(clock(date));
    if status.sealed {
        return;
    }
    if !has_token {
        checks.push(
            check(
                "token",
                Level::Warn,
                "no token: COFFER_TOKEN is unset and nothing is saved",
            )
            .fix("coffer login"),
        );
        return;
    }
    match client.lookup_token(None).await {
        Ok(t) => checks.push(token_expiry(&t)),
        Err(e) => {
            checks.push(check("token", Level::Fail, e.message).fix("coffer login, or a new token"));
            return;
        }
    }
    match client.audit_verify(None, false).await {
        Ok(v) if v.ok => checks.push(check("audit chain", Level::Ok, "the live log files verify")),
        Ok(v) => checks.push(
            check(
                "audit chain",
                Level::Fail,
                format!(
                    "does not verify: {}",
                    v.files
                        .iter()
                        .filter(|f| !f.ok)
                        .map(|f| f.file.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .fix("coffer audit verify shows where; investigate before anything else"),
        ),
        Err(e) if e.kind == ErrorKind::Forbidden => checks.push(check(
            "audit chain",
            Level::Skip,
            "verifying needs admin on sys/audit",
        )),
        Err(e) => checks.push(check("audit chain", Level::Fail, e.message)),
    }
    checks.push(backups(client).await);
}

fn clock(date: Option<SystemTime>) -> Check {
    let Some(server) = date else {
        return check("clock", Level::Skip, "the server sent no Date header");
    };
    let now = SystemTime::now();
    let (skew, ahead) = match server.duration_since(now) {
        Ok(d) => (d, true),
        Err(e) => (e.duration(), false),
    };
    // The Date header has whole seconds.
    let shown = format!(
        "{} s {}",
        skew.as_secs(),
        if ahead {
            "behind the server"
        } else {
            "ahead of the server"
        }
    );
    let fix = "synchronise both clocks with NTP (timedatectl set-ntp true)";
    if skew > SKEW_FAIL {
        check(
            "clock",
            Level::Fail,
            format!(
                "this machine's clock is {shown}: expiry times and audit records will be wrong"
            ),
        )
        .fix(fix)
    } else if skew > SKEW_WARN {
        check(
            "clock",
            Level::Warn,
            format!("this machine's clock is {shown}"),
        )
        .fix(fix)
    } else {
        check("clock", Level::Ok, "within a few seconds of the server's")
    }
}

fn token_expiry(t: &coffer_api::TokenInfo) -> Check {
    let Some(expires) = &t.expires_at else {
        return check(
            "token",
            Level::Ok,
            format!("valid, {} token, never expires", t.kind),
        );
    };
    let left = time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|at| at - time::OffsetDateTime::now_utc());
    match left {
        Some(left) if left < time::Duration::hours(24) => check(
            "token",
            Level::Warn,
            format!(
                "valid, expires at {expires} (in {} min)",
                left.whole_minutes().max(0)
            ),
        )
        .fix("coffer token renew, or coffer login again"),
        _ => check("token", Level::Ok, format!("valid until {expires}")),
    }
}

async fn backups(client: &Client) -> Check {
    let since = time::OffsetDateTime::now_utc() - BACKUP_AGE;
    let since = since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let q = AuditQuery {
        op: Some("sys.backup".into()),
        outcome: Some("ok".into()),
        since: Some(since),
        limit: Some(1),
        rotated: true,
        ..AuditQuery::default()
    };
    match client.audit_records(&q).await {
        Ok(r) => match r.records.last() {
            Some(rec) => check(
                "backups",
                Level::Ok,
                format!("last backup through this node at {}", rec.time),
            ),
            None => check(
                "backups",
                Level::Warn,
                "no backup through this node in the last 7 days (its audit log has none)",
            )
            .fix("coffer operator backup FILE, on a schedule"),
        },
        Err(e) if e.kind == ErrorKind::Forbidden => check(
            "backups",
            Level::Skip,
            "telling when the last backup ran needs admin on sys/audit",
        ),
        Err(e) => check(
            "backups",
            Level::Skip,
            format!("cannot search the audit log: {}", e.message),
        ),
    }
}

/// `.env` files git would commit, and the pre-commit hook.
fn git_checks(dir: &Path, checks: &mut Vec<Check>) {
    let git = |args: &[&str]| -> Option<Vec<u8>> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    };
    let Some(top) = git(&["rev-parse", "--show-toplevel"]) else {
        checks.push(check(
            "git",
            Level::Skip,
            format!("{} is not in a git repository", dir.display()),
        ));
        return;
    };
    let top = PathBuf::from(String::from_utf8_lossy(&top).trim_end_matches('\n'));
    let names = |out: Option<Vec<u8>>| -> Vec<String> {
        out.unwrap_or_default()
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| is_env_file(n))
            .collect()
    };
    // Paths are relative to `dir`'s repository top.
    let tracked = names(git(&["-C", &top.to_string_lossy(), "ls-files", "-z"]));
    let exposed = names(git(&[
        "-C",
        &top.to_string_lossy(),
        "ls-files",
        "-z",
        "--others",
        "--exclude-standard",
    ]));
    if !tracked.is_empty() {
        checks.push(
            check(
                ".env files",
                Level::Fail,
                format!("committed to git: {}", shown_list(&tracked)),
            )
            .fix("git rm --cached each, add them to .gitignore, and rotate every value they held (it is in the history)"),
        );
    }
    if !exposed.is_empty() {
        checks.push(
            check(
                ".env files",
                Level::Fail,
                format!(
                    "not ignored, so `git add .` would commit them: {}",
                    shown_list(&exposed)
                ),
            )
            .fix("add them to .gitignore (`.env` and `.env.*`, with `!.env.example`)"),
        );
    }
    if tracked.is_empty() && exposed.is_empty() {
        checks.push(check(".env files", Level::Ok, "none that git would commit"));
    }
    checks.push(hook(&top, dir, git(&["rev-parse", "--git-path", "hooks"])));
}

/// `.env`, `.env.local`, `config/.env.production`...: not the templates
/// that are meant to be committed.
fn is_env_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let is_env = name == ".env" || name.starts_with(".env.") || name.ends_with(".env");
    let template = [".example", ".sample", ".template", ".dist", ".defaults"]
        .iter()
        .any(|t| name.ends_with(t));
    is_env && !template
}

fn shown_list(names: &[String]) -> String {
    let mut shown: Vec<String> = names.iter().take(5).cloned().collect();
    if names.len() > 5 {
        shown.push(format!("and {} more", names.len() - 5));
    }
    shown.join(", ")
}

/// `hooks_dir` is git's answer to `rev-parse --git-path hooks` run in
/// `dir` (relative to it, unless `core.hooksPath` is absolute).
fn hook(top: &Path, dir: &Path, hooks_dir: Option<Vec<u8>>) -> Check {
    let hooks = hooks_dir
        .map(|h| PathBuf::from(String::from_utf8_lossy(&h).trim_end_matches('\n')))
        .map(|h| if h.is_absolute() { h } else { dir.join(h) });
    let in_hook = hooks
        .map(|h| h.join("pre-commit"))
        .and_then(|f| std::fs::read_to_string(f).ok())
        .is_some_and(|text| text.contains("coffer scan"));
    let in_framework = std::fs::read_to_string(top.join(".pre-commit-config.yaml"))
        .is_ok_and(|text| text.contains("coffer"));
    if in_hook || in_framework {
        check(
            "pre-commit hook",
            Level::Ok,
            if in_hook {
                "git's pre-commit hook runs coffer scan"
            } else {
                "the pre-commit framework's configuration names coffer"
            },
        )
    } else {
        check(
            "pre-commit hook",
            Level::Warn,
            "no hook scans commits for secrets",
        )
        .fix("coffer hook install (or add coffer to .pre-commit-config.yaml)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_told_from_their_templates() {
        for yes in [
            ".env",
            ".env.local",
            "config/.env.production",
            "app/prod.env",
            ".env.test",
        ] {
            assert!(is_env_file(yes), "{yes}");
        }
        for no in [
            ".env.example",
            "app/.env.sample",
            ".env.template",
            ".env.dist",
            "env.rs",
            "README.md",
            ".envrc",
        ] {
            assert!(!is_env_file(no), "{no}");
        }
    }

    #[test]
    fn transport_refuses_plain_http_beyond_loopback() {
        assert_eq!(transport("https://coffer.example.com").status, Level::Ok);
        assert_eq!(transport("http://127.0.0.1:8270").status, Level::Ok);
        assert_eq!(transport("http://[::1]:8270").status, Level::Ok);
        assert_eq!(transport("http://localhost:8270").status, Level::Ok);
        assert_eq!(transport("http://10.0.0.5:8270").status, Level::Fail);
        assert_eq!(transport("http://coffer.example.com").status, Level::Fail);
        assert_eq!(
            transport("http://127.0.0.1.nip.io:8270").status,
            Level::Fail
        );
        assert_eq!(transport("coffer.example.com").status, Level::Fail);
    }

    #[test]
    fn clock_skew_is_graded() {
        let now = SystemTime::now();
        assert_eq!(clock(Some(now)).status, Level::Ok);
        assert_eq!(
            clock(Some(now + Duration::from_secs(60))).status,
            Level::Warn
        );
        assert_eq!(
            clock(Some(now - Duration::from_secs(600))).status,
            Level::Fail
        );
        assert_eq!(clock(None).status, Level::Skip);
    }
}
