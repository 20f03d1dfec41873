//! Reading secrets from the user: stdin when it is piped, a no-echo prompt
//! on the terminal otherwise. Never from the command line.

use std::io::{IsTerminal, Read};

use coffer_crypto::SecretString;
use zeroize::Zeroizing;

use crate::exit::{Status, fail};

/// Largest secret read from stdin (the server enforces its own, smaller limit).
const MAX_STDIN: u64 = 16 * 1024 * 1024;

/// Whether stdin is a terminal (so a prompt is possible).
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Reads all of stdin as UTF-8 into a zeroizing buffer.
pub fn read_stdin() -> anyhow::Result<SecretString> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(fail(
            Status::Invalid,
            "input on stdin is larger than 16 MiB",
        ));
    }
    let text = String::from_utf8(std::mem::take(&mut *buf)).map_err(|e| {
        // The rejected bytes may still be a secret: wipe them too.
        zeroize::Zeroize::zeroize(&mut e.into_bytes());
        fail(Status::Invalid, "input on stdin is not valid UTF-8")
    })?;
    Ok(SecretString::new(text))
}

/// Drops one trailing newline (`\n` or `\r\n`), as `echo` and editors add one.
pub fn strip_one_newline(s: SecretString) -> SecretString {
    let v = s.expose_secret();
    let cut = v
        .strip_suffix("\r\n")
        .or_else(|| v.strip_suffix('\n'))
        .map(str::len);
    match cut {
        Some(n) => SecretString::new(v[..n].to_string()),
        None => s,
    }
}

/// Prompts on the terminal without echo; with `confirm`, asks twice.
pub fn prompt(label: &str, confirm: bool) -> anyhow::Result<SecretString> {
    let first = SecretString::new(
        rpassword::prompt_password(format!("{label}: "))
            .map_err(|e| fail(Status::Other, format!("cannot read from the terminal: {e}")))?,
    );
    if confirm {
        let second = SecretString::new(
            rpassword::prompt_password(format!("{label} (again): "))
                .map_err(|e| fail(Status::Other, format!("cannot read from the terminal: {e}")))?,
        );
        if !first.ct_eq(&second) {
            return Err(fail(
                Status::Invalid,
                "the two entries differ; nothing was stored",
            ));
        }
    }
    Ok(first)
}

/// A secret from stdin when piped, else from a prompt; trimmed of
/// surrounding whitespace (for keys and tokens, never for values).
pub fn token_like(label: &str) -> anyhow::Result<SecretString> {
    let raw = if stdin_is_terminal() {
        prompt(label, false)?
    } else {
        read_stdin()?
    };
    let trimmed = raw.expose_secret().trim();
    if trimmed.is_empty() {
        return Err(fail(
            Status::Invalid,
            format!("no {} given", label.to_lowercase()),
        ));
    }
    Ok(SecretString::new(trimmed.to_string()))
}
