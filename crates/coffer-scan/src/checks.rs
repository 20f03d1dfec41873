//! Structural checks: what a provider's format guarantees beyond its regex
//! (checksums, decodable headers), so that random strings that merely look
//! like a token are not reported.

use base64::Engine as _;
use serde::Deserialize;

/// A check a rule may require of its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// GitHub (`ghp_` ...) and npm (`npm_`) tokens: the last 6 characters are
    /// the CRC32 of the characters between the 4-character prefix and them,
    /// in base62 (`0-9A-Za-z`), left-padded with `0`.
    Crc32Base62,
    /// Coffer's own API tokens: checked by coffer-crypto's token parser.
    CofferToken,
    /// Coffer's invitation codes.
    CofferInvite,
    /// Coffer's app-role secret ids.
    CofferSecretId,
    /// A JWT whose header decodes to a JSON object with an `alg`.
    Jwt,
    /// A private key block whose body is long enough and random enough to be
    /// a key rather than a placeholder.
    PrivateKey,
    /// The rule's `name` group names a secret (`*_SECRET`, `*_KEY`,
    /// `PASSWORD`, `TOKEN`...), not a hash, an identifier or a setting about
    /// secrets (`TOKEN_URL`, `PASSWORD_FILE`, `public_key`).
    SecretName,
}

impl Check {
    /// Whether `secret` (with the rule's `name` group, if any) passes.
    pub(crate) fn passes(self, secret: &[u8], name: Option<&[u8]>) -> bool {
        match self {
            Check::Crc32Base62 => crc32_base62_ok(secret),
            Check::CofferToken => {
                std::str::from_utf8(secret).is_ok_and(coffer_crypto::token::is_well_formed)
            }
            Check::CofferInvite => {
                std::str::from_utf8(secret).is_ok_and(coffer_crypto::token::is_well_formed_invite)
            }
            Check::CofferSecretId => std::str::from_utf8(secret)
                .is_ok_and(coffer_crypto::token::is_well_formed_secret_id),
            Check::Jwt => jwt_ok(secret),
            Check::PrivateKey => private_key_ok(secret),
            Check::SecretName => name.is_some_and(secret_name_ok),
        }
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `value` in 6 base62 digits, most significant first, left-padded with `0`.
pub fn base62_6(mut value: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

fn crc32_base62_ok(token: &[u8]) -> bool {
    if token.len() < 4 + 6 + 1 {
        return false;
    }
    let (rest, sum) = token.split_at(token.len() - 6);
    let body = &rest[4..];
    base62_6(crc32fast::hash(body)) == sum
}

fn b64url(part: &[u8]) -> Option<Vec<u8>> {
    let trimmed: &[u8] = match part.iter().rposition(|&b| b != b'=') {
        Some(i) => &part[..=i],
        None => return None,
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .ok()
}

fn jwt_ok(token: &[u8]) -> bool {
    let mut parts = token.split(|&b| b == b'.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Some(header) = b64url(header) else {
        return false;
    };
    let Ok(serde_json::Value::Object(h)) = serde_json::from_slice::<serde_json::Value>(&header)
    else {
        return false;
    };
    if !h.get("alg").is_some_and(serde_json::Value::is_string) {
        return false;
    }
    b64url(payload).is_some_and(|p| {
        matches!(
            serde_json::from_slice::<serde_json::Value>(&p),
            Ok(serde_json::Value::Object(_))
        )
    })
}

/// The base64 characters of a key block's body, without line breaks, quotes,
/// escaped newlines and header lines (`Proc-Type: ...`).
fn private_key_ok(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body)
        .replace("\\n", "\n")
        .replace("\\r", "\n");
    let mut b64 = Vec::new();
    for line in text.lines() {
        let line =
            line.trim_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',');
        if line.contains(':') {
            continue; // an RFC 1421 header such as Proc-Type or DEK-Info
        }
        if line.contains("...") || line.contains('<') || line.contains('*') {
            return false;
        }
        b64.extend(
            line.bytes()
                .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/'),
        );
    }
    b64.len() >= 64 && crate::filters::entropy(&b64) >= 4.5
}

/// Names that hold a secret: the name says secret, password, token or
/// credential, or it ends in `key` as a word (`API_KEY`, `apiKey`,
/// `private-key`), and it is not about a secret rather than one.
fn secret_name_ok(name: &[u8]) -> bool {
    let Ok(name) = std::str::from_utf8(name) else {
        return false;
    };
    let name = name.trim_matches(|c: char| c == '.' || c == '-' || c == '_');
    let lower = name.to_ascii_lowercase();
    // The last segment of a dotted path (`config.db.password`) is the name.
    let last = lower.rsplit('.').next().unwrap_or(&lower);
    let says_secret = ["secret", "passw", "pwd", "token", "credential", "apikey"]
        .iter()
        .any(|w| last.contains(w));
    let ends_in_key = {
        let raw_last = name.rsplit('.').next().unwrap_or(name);
        raw_last.len() > 3
            && (raw_last.ends_with("Key")
                || ((lower.ends_with("_key") || lower.ends_with("-key"))
                    && !lower.ends_with("__key")))
    };
    if !says_secret && !ends_in_key {
        return false;
    }
    // Settings about a secret, identifiers and public halves.
    const NOT_SECRET: &[&str] = &[
        "public",
        "pubkey",
        "_id",
        "-id",
        "keyid",
        "url",
        "uri",
        "path",
        "file",
        "name",
        "type",
        "length",
        "len",
        "size",
        "format",
        "header",
        "field",
        "prefix",
        "suffix",
        "hash",
        "sha",
        "digest",
        "checksum",
        "integrity",
        "fingerprint",
        "count",
        "expir",
        "timeout",
        "ttl",
        "cache",
        "sort",
        "primary",
        "foreign",
        "partition",
        "idempot",
        "mode",
        "enabled",
        "kind",
        "label",
        "policy",
        "endpoint",
        "host",
        "port",
        "placeholder",
        "pattern",
        "regex",
        "description",
        "help",
        "prompt",
        "message",
        "error",
        "tokenizer",
        "csrf",
        "xsrf",
        "page",
        "next",
        "continuation",
        "author",
        "storage",
        "dir",
        "location",
        "env",
        "var",
        "param",
        "cookie",
        "min",
        "max",
        "hint",
        "strength",
        "policy",
        "rule",
        "reset",
        "confirm",
        "lookup",
        "map",
        "index",
        "column",
        "class",
        "algorithm",
        "alg",
        "version",
        "count",
        "tokens",
        "keys",
        "input",
        "display",
        "show",
        "required",
        "valid",
        "option",
        "setting",
    ];
    if NOT_SECRET.iter().any(|w| last.contains(w)) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_name(name: &str, expect: bool) {
        assert_eq!(secret_name_ok(name.as_bytes()), expect, "{name}");
    }

    #[test]
    fn names() {
        for n in [
            "API_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "apiKey",
            "secretKey",
            "DB_PASSWORD",
            "password",
            "GITHUB_TOKEN",
            "config.db.password",
            "client_secret",
            "private-key",
            "credentials",
            "auth_token",
        ] {
            check_name(n, true);
        }
        for n in [
            "key",
            "monkey",
            "primary_key",
            "public_key",
            "TOKEN_URL",
            "PASSWORD_FILE",
            "key_id",
            "cache_key",
            "tokenizer",
            "csrf_token",
            "sha256",
            "author",
            "hotkey",
        ] {
            check_name(n, false);
        }
    }

    #[test]
    fn base62_matches_coffer_crypto_alphabet() {
        assert_eq!(&base62_6(0), b"000000");
        assert_eq!(&base62_6(61), b"00000z");
        assert_eq!(&base62_6(62), b"000010");
        assert_eq!(&base62_6(u32::MAX), b"4gfFC3");
    }
}
