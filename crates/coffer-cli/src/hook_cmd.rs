//! `coffer hook install|uninstall`: a git pre-commit hook that runs
//! `coffer scan --staged` and refuses a commit that adds a secret.
//!
//! The hook is a small POSIX shell script marked with [`MARKER`]; a hook
//! without the marker belongs to someone else and is only replaced with
//! `--force` (its old content kept beside it), never removed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::{Args, Subcommand};

use crate::exit::{Status, fail};
use crate::scan_cmd::DEFAULT_BASELINE;

/// The line that marks a hook as coffer's.
pub const MARKER: &str = "# coffer-scan pre-commit hook";

#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Install the pre-commit hook in the current git repository.
    #[command(after_help = "Examples:
  coffer hook install
  coffer hook install --force   # replace another pre-commit hook (kept as pre-commit.backup)

The hook runs `coffer scan --staged` (with --baseline .coffer-scan-baseline.json
when that file exists) and refuses the commit if it finds a secret, saying
how to allow one.")]
    Install(InstallArgs),
    /// Remove coffer's pre-commit hook (never another one).
    #[command(after_help = "Examples:
  coffer hook uninstall")]
    Uninstall,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Replace an existing pre-commit hook that is not coffer's (it is kept
    /// as pre-commit.backup).
    #[arg(long)]
    pub force: bool,
}

pub fn run(c: HookCommand) -> anyhow::Result<Status> {
    match c {
        HookCommand::Install(a) => install(a.force),
        HookCommand::Uninstall => uninstall(),
    }
}

/// The hooks directory git uses (honouring `core.hooksPath`).
fn hooks_dir() -> anyhow::Result<PathBuf> {
    let out = Command::new("git")
        .args(["rev-parse", "--path-format=absolute", "--git-path", "hooks"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| fail(Status::Other, format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(fail(Status::NotFound, "not in a git repository"));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| fail(Status::Other, "git's hooks path is not UTF-8"))?;
    Ok(PathBuf::from(text.trim_end_matches(['\n', '\r'])))
}

/// Quotes `s` for a POSIX shell: single quotes, with each `'` written as `'\''`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn script(coffer: &str) -> String {
    format!(
        r#"#!/bin/sh
{MARKER} (installed by `coffer hook install`; remove with `coffer hook uninstall`).
# Refuses a commit whose staged changes hold a secret.
COFFER={coffer}
[ -x "$COFFER" ] || COFFER=coffer
if [ -f {baseline} ]; then
    "$COFFER" scan --staged --baseline {baseline}
else
    "$COFFER" scan --staged
fi
status=$?
if [ "$status" -eq 9 ]; then
    cat >&2 <<'EOF'
coffer: commit refused: the staged changes hold the secrets listed above.
  Take them out of the files (and rotate any real one), or allow a finding:
  - a `coffer:allow` comment on its line (or `coffer:allow-next-line` on the line before);
  - a baseline of the current findings:
      coffer scan --staged --baseline {baseline} --write-baseline
  - or skip this check for one commit: git commit --no-verify
EOF
    exit 1
elif [ "$status" -ne 0 ]; then
    echo "coffer: the secret scan failed (exit status $status); commit refused" >&2
    exit "$status"
fi
"#,
        baseline = DEFAULT_BASELINE,
    )
}

fn is_ours(path: &Path) -> std::io::Result<Option<bool>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).contains(MARKER))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A dangling symlink is still someone's hook.
            Ok(std::fs::symlink_metadata(path).is_ok().then_some(false))
        }
        Err(e) => Err(e),
    }
}

fn install(force: bool) -> anyhow::Result<Status> {
    use std::os::unix::fs::PermissionsExt;
    let dir = hooks_dir()?;
    let hook = dir.join("pre-commit");
    let shown = crate::output::visible(&hook.to_string_lossy()).into_owned();
    match is_ours(&hook)? {
        Some(false) if !force => {
            return Err(fail(
                Status::Conflict,
                format!(
                    "{shown} exists and is not coffer's; pass --force to replace it (it is kept as pre-commit.backup)"
                ),
            ));
        }
        Some(false) => {
            std::fs::rename(&hook, dir.join("pre-commit.backup"))?;
        }
        _ => {}
    }
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "coffer".to_string());
    // Written beside and renamed, so git never runs half a hook; the rename
    // replaces a symlink rather than writing through it.
    let tmp = dir.join(format!(".pre-commit.coffer{}", std::process::id()));
    std::fs::write(&tmp, script(&sh_quote(&exe)))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &hook)?;
    eprintln!("installed the coffer pre-commit hook in {shown}");
    Ok(Status::Ok)
}

fn uninstall() -> anyhow::Result<Status> {
    let hook = hooks_dir()?.join("pre-commit");
    let shown = crate::output::visible(&hook.to_string_lossy()).into_owned();
    match is_ours(&hook)? {
        None => {
            eprintln!("no pre-commit hook in {shown}: nothing to remove");
            Ok(Status::Ok)
        }
        Some(false) => Err(fail(
            Status::Conflict,
            format!("{shown} is not coffer's hook; left as it is"),
        )),
        Some(true) => {
            std::fs::remove_file(&hook)?;
            eprintln!("removed the coffer pre-commit hook from {shown}");
            Ok(Status::Ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(sh_quote("/usr/bin/coffer"), "'/usr/bin/coffer'");
        assert_eq!(sh_quote("/a b/it's $(x)"), r"'/a b/it'\''s $(x)'");
    }
}
