//! Request bodies at the size limits, through the router in-process.
//! (Malformed requests over raw HTTP, and what reaches the server's log,
//! are tested against the binary in coffer-cli's `tests/bad_input.rs`.)

use crate::common;

use common::{Mode, Server};

#[test]
fn value_at_the_limit_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let token = server.root_token();
    let body = format!(r#"{{"value":"{}"}}"#, "v".repeat(65536));
    let r = server.http(
        "PUT",
        "/api/v1/secrets/app/dev/EXACT",
        Some(&token),
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Escaped characters count once each: 40 KiB of quotes is a 40 KiB value.
    let body = format!(r#"{{"value":"{}"}}"#, "\\\"".repeat(40_000));
    let r = server.http(
        "PUT",
        "/api/v1/secrets/app/dev/QUOTES",
        Some(&token),
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}
