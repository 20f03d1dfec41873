//! Hostile text in audit records, through the router in-process: characters
//! that split lines or turn text around are escaped, so every line is one
//! record whatever reads it. (Token masking checked against the server's
//! own log, `coffer audit` output, symlinked files, truncation and webhooks
//! are tested against the binary in coffer-cli's `tests/audit_hostile.rs`.)

use crate::common;

use common::{Mode, Server, ok};

#[test]
fn unicode_line_separators_are_escaped_in_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    // U+2028, U+2029, U+202E, U+0085, U+2066, U+200F in a secret path (the
    // URL is percent-encoded; the path is refused or recorded escaped).
    let path = "/api/v1/secrets/app/dev/a%E2%80%A8b%E2%80%A9c%E2%80%AEd%C2%85e%E2%81%A6f%E2%80%8F";
    server.http("PUT", path, Some(&root), Some(br#"{"value":"v"}"#));
    server.http("GET", path, Some(&root), None);
    // And in a token's display name, which every record of its requests
    // carries. The core may refuse such a name (then nothing is recorded
    // raw either); if it takes it, the records escape it.
    let hostile = r#"ops\u2028{\"seq\":1}\u2029\u202egpj.exe\u0085\u2066\u200f"#;
    let made = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(&root),
        Some(format!(r#"{{"policies":["root"],"display_name":"{hostile}"}}"#).as_bytes()),
    );
    let named = match made.status {
        200 => {
            let t = made.json()["token"].as_str().unwrap().to_string();
            let r = server.http("GET", "/api/v1/auth/token/self", Some(&t), None);
            assert_eq!(r.status, 200);
            true
        }
        400 => false,
        other => panic!("token create answered {other}: {}", made.text()),
    };
    let bytes = std::fs::read(server.audit_log()).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    for c in [
        '\u{2028}', '\u{2029}', '\u{202e}', '\u{85}', '\u{2066}', '\u{200f}',
    ] {
        assert!(!text.contains(c), "{c:?} raw in the audit log");
    }
    // Every line is one record, whatever reader splits it.
    let split = text
        .split(['\n', '\u{2028}', '\u{2029}', '\u{85}'])
        .filter(|l| !l.is_empty())
        .count();
    let all = server.audit_records();
    assert_eq!(split, all.len());
    if named {
        // The name reads back whole from the escapes.
        assert!(
            all.iter().any(|r| r["actor"]["name"]
                .as_str()
                .is_some_and(|n| n.contains("gpj.exe\u{85}"))),
            "{text}"
        );
        assert!(
            text.contains(r#"\u2028{\"seq\":1}\u2029\u202egpj.exe\u0085"#),
            "{text}"
        );
    }
    // The log still verifies, as `coffer audit verify` asks the server.
    let v = server.http("POST", "/api/v1/sys/audit/verify", Some(&root), Some(b"{}"));
    assert_eq!(ok(&v, "verify")["ok"], true, "{}", v.text());
}
