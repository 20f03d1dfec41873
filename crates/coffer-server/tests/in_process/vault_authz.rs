//! The native authorization matrix (`authz_matrix.rs`), run again through
//! the Vault API: each read and write of its table that has a KV version 2
//! form is sent as that form, with the token in `X-Vault-Token`, and must
//! get the same decision (in Vault's status codes: 403 for a missing or bad
//! token, 204 for a deletion). One security model: no route of `/v1/` may
//! allow what the native API refuses, or refuse what it allows.

use crate::authz_matrix::{Case, READS, WRITES, setup};

/// The Vault form of a native request: method, URL, body, expected status.
fn vault_form(case: &Case) -> Option<(&'static str, String, Option<String>, u16)> {
    let (_, method, url, body, expected) = *case;
    let expected = match expected {
        401 => 403,
        409 => 400,
        s => s,
    };
    let value = || {
        let v: serde_json::Value = serde_json::from_str(body?).ok()?;
        Some(serde_json::json!({ "data": { "value": v["value"].as_str()? } }).to_string())
    };
    if let Some(path) = url.strip_prefix("/api/v1/secrets/") {
        return match method {
            "GET" => Some(("GET", format!("/v1/secret/data/{path}"), None, expected)),
            "PUT" => Some((
                "POST",
                format!("/v1/secret/data/{path}"),
                Some(value()?),
                expected,
            )),
            "DELETE" => Some((
                "DELETE",
                format!("/v1/secret/data/{path}"),
                None,
                if expected == 200 { 204 } else { expected },
            )),
            _ => None,
        };
    }
    if let Some(path) = url.strip_prefix("/api/v1/metadata/") {
        return Some(("GET", format!("/v1/secret/metadata/{path}"), None, expected));
    }
    if url == "/api/v1/list" {
        return Some(("LIST", "/v1/secret/metadata/".to_owned(), None, expected));
    }
    if let Some(path) = url.strip_prefix("/api/v1/list/") {
        return Some((
            "LIST",
            format!("/v1/secret/metadata/{path}"),
            None,
            expected,
        ));
    }
    for (native, vault) in [
        ("/api/v1/undelete/", "undelete"),
        ("/api/v1/destroy/", "destroy"),
    ] {
        if let Some(path) = url.strip_prefix(native)
            && method == "POST"
        {
            return Some((
                "POST",
                format!("/v1/secret/{vault}/{path}"),
                Some(r#"{"versions":[1]}"#.to_owned()),
                if expected == 200 { 204 } else { expected },
            ));
        }
    }
    None
}

#[test]
fn the_authorization_matrix_holds_through_the_vault_api() {
    let (_dir, f) = setup();
    let mut failures = Vec::new();
    let mut sent = 0;
    for table in [READS, WRITES] {
        for case in table {
            let Some((method, url, body, expected)) = vault_form(case) else {
                continue;
            };
            sent += 1;
            let who = case.0;
            let token = f.token(who);
            let headers: Vec<(&str, &str)> = token
                .as_deref()
                .map(|t| vec![("x-vault-token", t)])
                .unwrap_or_default();
            let r = f.server.request(
                method,
                &url,
                None,
                body.as_deref().map(str::as_bytes),
                &headers,
            );
            if r.status != expected {
                failures.push(format!(
                    "{who} {method} {url}: expected {expected}, got {} {}",
                    r.status,
                    r.text()
                ));
            }
            if r.status >= 400 {
                assert!(
                    !r.text().contains("value-of-"),
                    "{who} {method} {url} leaked a value"
                );
                assert!(
                    r.json()["errors"].is_array(),
                    "{who} {method} {url}: not Vault's error body: {}",
                    r.text()
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every read of the table has a Vault form, and most writes do.
    assert!(
        sent >= READS.len() + 15,
        "only {sent} cases had a Vault form"
    );
}
