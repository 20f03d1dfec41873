//! The URLs the client sends, for hostile paths and names, byte for byte as
//! before its URLs were taken from the route table: a path keeps its `/`s
//! and nothing else that could change the URL's structure (`?`, `#`, `%`,
//! NUL, spaces, non-ASCII are percent-encoded), a name or a query value is
//! one segment.

use coffer_api::WireValue;
use coffer_client::{Client, ListOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The encoding of a path the client has always used (kept here verbatim,
/// not taken from the code under test).
fn path_enc(path: &str) -> String {
    enc(path, b"_-.~@:=,/")
}

/// The encoding of a segment or query value the client has always used.
fn segment_enc(value: &str) -> String {
    enc(value, b"_-.~")
}

fn enc(value: &str, keep: &[u8]) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const HOSTILE: &[&str] = &[
    "app/prod/DB",
    "app/../../etc/passwd",
    "..",
    "app/./x",
    "a%2Fb",
    "a%252F",
    "nul\0byte",
    "%00",
    "a?version=1",
    "a#frag",
    "a&b=c;d",
    "with space/and+plus",
    "ünïcødé/日本",
    "\u{202e}rtl",
    "/leading/and/trailing/",
    "a//b",
    "a\\b",
    "line\r\nInjected: header",
    "cft_0123456789abcdefghijklmnopqrstuvwxyzABCDEF/cfi_0123456789abcdef",
];

/// A server that answers every request 404 and keeps each request line.
async fn recorder() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&seen).into_owned();
                let line = head.lines().next().unwrap_or("").to_string();
                let line = line.trim_end_matches(" HTTP/1.1").to_string();
                let _ = tx.send(line);
                let body = br#"{"error":{"code":"not_found","message":"no"}}"#;
                let answer = format!(
                    "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.write_all(body).await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn every_call_on_a_hostile_path_or_name_sends_the_url_it_always_sent() {
    let (addr, mut lines) = recorder().await;
    let client = Client::builder(&addr).token("t").build().unwrap();
    let value = WireValue::Text("v".into());
    for &raw in HOSTILE {
        let p = path_enc(raw.trim_start_matches('/'));
        let prefix = path_enc(raw.trim_matches('/'));
        let s = segment_enc(raw);
        let list = if raw.trim_matches('/').is_empty() {
            "/api/v1/list".to_string()
        } else {
            format!("/api/v1/list/{prefix}")
        };
        let status = if raw.trim_matches('/').is_empty() {
            "/api/v1/rotation/status".to_string()
        } else {
            format!("/api/v1/rotation/status/{prefix}/")
        };
        let options = ListOptions {
            recursive: true,
            after: Some(raw.to_string()),
            limit: Some(5),
            ..ListOptions::default()
        };
        let want: Vec<String> = vec![
            format!("GET /api/v1/secrets/{p}"),
            format!("GET /api/v1/secrets/{p}?version=3"),
            format!("GET /api/v1/secrets/{p}?label={s}"),
            format!("PUT /api/v1/secrets/{p}"),
            format!("DELETE /api/v1/secrets/{p}?versions=1,2"),
            format!("DELETE /api/v1/secrets/{p}"),
            format!("POST /api/v1/undelete/{p}"),
            format!("POST /api/v1/destroy/{p}"),
            format!("GET /api/v1/metadata/{p}"),
            format!("GET {list}?recursive=true&after={s}&limit=5"),
            format!("GET /api/v1/postgres/{p}"),
            format!("DELETE /api/v1/rotate/{p}"),
            format!("POST /api/v1/rollback/{p}"),
            format!("GET {status}"),
            format!("GET /api/v1/sys/policies/{s}"),
            format!("DELETE /api/v1/sys/policies/{s}"),
            format!("GET /api/v1/auth/tokens/{s}"),
            format!("POST /api/v1/auth/tokens/{s}/renew"),
            format!("DELETE /api/v1/auth/tokens/{s}"),
            format!("GET /api/v1/sys/users/{s}"),
            format!("POST /api/v1/sys/users/{s}/disable"),
            format!("POST /api/v1/sys/users/{s}/enable"),
            format!("DELETE /api/v1/sys/users/{s}"),
            format!("DELETE /api/v1/sys/protected?pattern={s}"),
            format!("DELETE /api/v1/sys/lifecycle?pattern={s}"),
            format!("GET /api/v1/sys/audit/readers?path={s}&version=2&rotated=false"),
        ];
        // Every call fails (the server answers 404); only its URL matters.
        let _ = client.read(raw, None).await;
        let _ = client.read(raw, Some(3)).await;
        let _ = client.read_label(raw, raw).await;
        let _ = client.write(raw, &value, None).await;
        let _ = client.delete(raw, &[1, 2]).await;
        let _ = client.delete(raw, &[]).await;
        let _ = client.undelete(raw, &[]).await;
        let _ = client.destroy(raw, &[1]).await;
        let _ = client.metadata(raw).await;
        let _ = client.list_page(raw, &options).await;
        let _ = client.postgres_info(raw).await;
        let _ = client.cancel_rotation(raw).await;
        let _ = client.rollback(raw, 1).await;
        let _ = client.rotation_status(raw).await;
        let _ = client.read_policy(raw).await;
        let _ = client.delete_policy(raw).await;
        let _ = client.lookup_token(Some(raw)).await;
        let _ = client.renew_token(Some(raw)).await;
        let _ = client.revoke_token(Some(raw)).await;
        let _ = client.get_user(raw).await;
        let _ = client.set_user_disabled(raw, true).await;
        let _ = client.set_user_disabled(raw, false).await;
        let _ = client.delete_user(raw).await;
        let _ = client.unprotect(raw).await;
        let _ = client.delete_rule(raw).await;
        let _ = client.audit_readers(raw, Some(2), false).await;
        let mut got = Vec::new();
        while got.len() < want.len() {
            got.push(lines.recv().await.expect("a request line"));
        }
        for (got, want) in got.iter().zip(&want) {
            assert_eq!(got, want, "for {raw:?}");
        }
    }
}

#[tokio::test]
async fn the_calling_tokens_own_routes_take_no_name() {
    let (addr, mut lines) = recorder().await;
    let client = Client::builder(&addr).token("t").build().unwrap();
    let _ = client.lookup_token(None).await;
    let _ = client.renew_token(None).await;
    let _ = client.revoke_token(None).await;
    let _ = client.list_page("", &ListOptions::default()).await;
    let _ = client.list_page("///", &ListOptions::default()).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(lines.recv().await.unwrap());
    }
    assert_eq!(
        got,
        [
            "GET /api/v1/auth/token/self",
            "POST /api/v1/auth/token/self/renew",
            "DELETE /api/v1/auth/token/self",
            "GET /api/v1/list",
            "GET /api/v1/list",
        ]
    );
}
