//! The Vault-compatible API (`/v1/`) through the router: each endpoint's
//! request and response shapes, Vault's error body and status codes, the
//! value mapping, policies in Vault syntax, tokens and userpass, the audit
//! record of each request, and bad and hostile input, which must change
//! nothing.

use serde_json::{Value, json};

use crate::common::{Mode, Response, Server, ok};

const CANARY: &str = "canary-7f3a9c-do-not-log";

fn start() -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    (dir, server, root)
}

/// A request with the token in `X-Vault-Token`.
fn v(
    server: &Server,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Response {
    let headers: Vec<(&str, &str)> = token
        .map(|t| vec![("x-vault-token", t)])
        .unwrap_or_default();
    let body = body.map(|b| b.to_string());
    server.request(
        method,
        url,
        None,
        body.as_deref().map(str::as_bytes),
        &headers,
    )
}

/// Asserts Vault's error body and status; returns the messages.
fn vault_error(r: &Response, status: u16, what: &str) -> Vec<String> {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    let body = r.json();
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: not Vault's error body: {}", r.text()));
    assert_eq!(body.as_object().unwrap().len(), 1, "{what}: {}", r.text());
    errors
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

fn last_record(server: &Server) -> Value {
    server
        .audit_records()
        .into_iter()
        .rev()
        // A request has no `type` (the record format's version 2 leaves
        // it out) or says so (the first format).
        .find(|r| r.get("type").is_none_or(|t| t == "request"))
        .expect("a request record")
}

#[test]
fn kv_v2_write_read_versions_and_the_value_mapping() {
    let (_d, s, root) = start();
    let t = Some(root.as_str());
    // Fields write and read back as they are.
    let w = ok(
        &v(
            &s,
            "POST",
            "/v1/secret/data/app/dev/db",
            t,
            Some(json!({"data": {"user": "u", "password": CANARY}})),
        ),
        "write",
    );
    assert_eq!(w["data"]["version"], 1);
    assert_eq!(w["data"]["destroyed"], false);
    let r = ok(&v(&s, "GET", "/v1/secret/data/app/dev/db", t, None), "read");
    assert_eq!(r["data"]["data"], json!({"user": "u", "password": CANARY}));
    assert_eq!(r["data"]["metadata"]["version"], 1);
    for key in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "wrap_info",
        "warnings",
        "auth",
    ] {
        assert!(r.as_object().unwrap().contains_key(key), "{key}: {r}");
    }
    // The same secret natively: a value of fields.
    let native = ok(
        &s.http("GET", "/api/v1/secrets/app/dev/db", t, None),
        "native",
    );
    assert_eq!(native["value"], json!({"user": "u", "password": CANARY}));

    // `{"value": TEXT}` alone writes text; text reads as `{"value": TEXT}`.
    ok(
        &v(
            &s,
            "PUT",
            "/v1/secret/data/app/dev/key",
            t,
            Some(json!({"data": {"value": "k1"}})),
        ),
        "text",
    );
    assert_eq!(
        ok(&s.http("GET", "/api/v1/secrets/app/dev/key", t, None), "n")["value"],
        "k1"
    );
    ok(
        &s.http(
            "PUT",
            "/api/v1/secrets/app/dev/native",
            t,
            Some(br#"{"value":"plain"}"#),
        ),
        "n",
    );
    let r = ok(
        &v(&s, "GET", "/v1/secret/data/app/dev/native", t, None),
        "text read",
    );
    assert_eq!(r["data"]["data"], json!({"value": "plain"}));

    // Versions: ?version=, 0 is current, CAS.
    ok(
        &v(
            &s,
            "POST",
            "/v1/secret/data/app/dev/key",
            t,
            Some(json!({"data": {"value": "k2"}, "options": {"cas": 1}})),
        ),
        "cas",
    );
    let stale = v(
        &s,
        "POST",
        "/v1/secret/data/app/dev/key",
        t,
        Some(json!({"data": {"value": "k3"}, "options": {"cas": 1}})),
    );
    vault_error(&stale, 400, "failed cas");
    let created = v(
        &s,
        "POST",
        "/v1/secret/data/app/dev/fresh",
        t,
        Some(json!({"data": {"a": "b"}, "options": {"cas": 0}})),
    );
    ok(&created, "cas 0 creates");
    vault_error(
        &v(
            &s,
            "POST",
            "/v1/secret/data/app/dev/fresh",
            t,
            Some(json!({"data": {"a": "c"}, "options": {"cas": 0}})),
        ),
        400,
        "cas 0 on existing",
    );
    assert_eq!(
        ok(
            &v(&s, "GET", "/v1/secret/data/app/dev/key?version=1", t, None),
            "v1"
        )["data"]["data"]["value"],
        "k1"
    );
    assert_eq!(
        ok(
            &v(&s, "GET", "/v1/secret/data/app/dev/key?version=0", t, None),
            "v0"
        )["data"]["data"]["value"],
        "k2"
    );
    assert_eq!(
        vault_error(
            &v(&s, "GET", "/v1/secret/data/app/dev/key?version=9", t, None),
            404,
            "v9"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        vault_error(
            &v(&s, "GET", "/v1/secret/data/app/nothing", t, None),
            404,
            "missing"
        ),
        Vec::<String>::new()
    );
}

#[test]
fn kv_v2_refuses_what_it_cannot_keep_and_changes_nothing() {
    let (_d, s, root) = start();
    let t = Some(root.as_str());
    ok(
        &v(
            &s,
            "POST",
            "/v1/secret/data/app/x",
            t,
            Some(json!({"data": {"a": "1"}})),
        ),
        "seed",
    );
    let cases = [
        (json!({"data": {"n": 5}}), "field \"n\" is a number"),
        (json!({"data": {"b": true}}), "is a boolean"),
        (json!({"data": {"o": {"k": CANARY}}}), "is an object"),
        (json!({"data": {"l": [CANARY]}}), "is an array"),
        (json!({"data": {"z": null}}), "is null"),
        (
            json!({"data": {"a": "2"}, "options": {"cas": 1, "max_versions": 3}}),
            "unsupported parameter \"max_versions\"",
        ),
        (
            json!({"data": {"a": "2"}, "lease": "1h"}),
            "unsupported parameter \"lease\"",
        ),
        (json!({"options": {}}), "no data provided"),
    ];
    for (body, fragment) in cases {
        let r = v(&s, "POST", "/v1/secret/data/app/x", t, Some(body.clone()));
        let errors = vault_error(&r, 400, &body.to_string());
        assert!(
            errors.iter().any(|e| e.contains(fragment)),
            "{body}: {errors:?}"
        );
        assert!(!r.text().contains(CANARY), "{body}: echoed a value");
    }
    // Malformed JSON.
    let r = s.request(
        "POST",
        "/v1/secret/data/app/x",
        None,
        Some(b"{\"data\": {"),
        &[("x-vault-token", &root)],
    );
    vault_error(&r, 400, "malformed");
    // Nothing changed.
    let md = ok(&v(&s, "GET", "/v1/secret/metadata/app/x", t, None), "md");
    assert_eq!(md["data"]["current_version"], 1);
    assert!(
        !std::fs::read_to_string(s.audit_log())
            .unwrap()
            .contains(CANARY)
    );
}

#[test]
fn kv_v2_patch_delete_undelete_destroy_metadata_and_lists() {
    let (_d, s, root) = start();
    let t = Some(root.as_str());
    ok(
        &v(
            &s,
            "POST",
            "/v1/secret/data/app/p",
            t,
            Some(json!({"data": {"a": "1", "b": "2"}})),
        ),
        "seed",
    );
    // PATCH needs the merge-patch content type.
    let wrong = v(
        &s,
        "PATCH",
        "/v1/secret/data/app/p",
        t,
        Some(json!({"data": {"a": "9"}})),
    );
    vault_error(&wrong, 415, "patch as json");
    let patch = s.request(
        "PATCH",
        "/v1/secret/data/app/p",
        None,
        Some(br#"{"data": {"a": "9", "b": null, "c": "3"}}"#),
        &[
            ("x-vault-token", &root),
            ("content-type", "application/merge-patch+json"),
        ],
    );
    assert_eq!(ok(&patch, "patch")["data"]["version"], 2);
    let r = ok(&v(&s, "GET", "/v1/secret/data/app/p", t, None), "read");
    assert_eq!(r["data"]["data"], json!({"a": "9", "c": "3"}));
    let bad = s.request(
        "PATCH",
        "/v1/secret/data/app/p",
        None,
        Some(br#"{"data": {"a": 1}}"#),
        &[
            ("x-vault-token", &root),
            ("content-type", "application/merge-patch+json"),
        ],
    );
    vault_error(&bad, 400, "patch with a number");

    // DELETE data/ soft-deletes the current version; undelete restores it.
    assert_eq!(
        v(&s, "DELETE", "/v1/secret/data/app/p", t, None).status,
        204
    );
    vault_error(
        &v(&s, "GET", "/v1/secret/data/app/p", t, None),
        404,
        "deleted",
    );
    let md = ok(&v(&s, "GET", "/v1/secret/metadata/app/p", t, None), "md");
    assert_ne!(md["data"]["versions"]["2"]["deletion_time"], "");
    assert_eq!(
        v(
            &s,
            "POST",
            "/v1/secret/undelete/app/p",
            t,
            Some(json!({"versions": [2]}))
        )
        .status,
        204
    );
    ok(&v(&s, "GET", "/v1/secret/data/app/p", t, None), "undeleted");
    assert_eq!(
        v(
            &s,
            "PUT",
            "/v1/secret/delete/app/p",
            t,
            Some(json!({"versions": [1]}))
        )
        .status,
        204
    );
    vault_error(
        &v(&s, "POST", "/v1/secret/delete/app/p", t, Some(json!({}))),
        400,
        "no versions",
    );
    vault_error(
        &v(
            &s,
            "POST",
            "/v1/secret/destroy/app/p",
            t,
            Some(json!({"versions": [7]})),
        ),
        404,
        "no version 7",
    );
    assert_eq!(
        v(
            &s,
            "POST",
            "/v1/secret/destroy/app/p",
            t,
            Some(json!({"versions": [1]}))
        )
        .status,
        204
    );
    let md = ok(&v(&s, "GET", "/v1/secret/metadata/app/p", t, None), "md");
    let data = &md["data"];
    assert_eq!(data["current_version"], 2);
    assert_eq!(data["oldest_version"], 1);
    assert_eq!(data["versions"]["1"]["destroyed"], true);
    assert_eq!(data["versions"]["2"]["destroyed"], false);
    for key in [
        "created_time",
        "updated_time",
        "max_versions",
        "cas_required",
        "delete_version_after",
        "custom_metadata",
    ] {
        assert!(data.as_object().unwrap().contains_key(key), "{key}");
    }

    // Metadata settings: defaults accepted, the rest refused.
    assert_eq!(
        v(
            &s,
            "POST",
            "/v1/secret/metadata/app/p",
            t,
            Some(json!({"max_versions": 0}))
        )
        .status,
        204
    );
    let errors = vault_error(
        &v(
            &s,
            "POST",
            "/v1/secret/metadata/app/p",
            t,
            Some(json!({"max_versions": 5})),
        ),
        400,
        "max_versions",
    );
    assert!(errors[0].contains("max_versions"), "{errors:?}");

    // Lists: LIST, GET ?list=true, the mount's top folder.
    ok(
        &v(
            &s,
            "POST",
            "/v1/secret/data/app/sub/q",
            t,
            Some(json!({"data": {"a": "1"}})),
        ),
        "seed",
    );
    for (method, url) in [
        ("LIST", "/v1/secret/metadata/app"),
        ("LIST", "/v1/secret/metadata/app/"),
        ("GET", "/v1/secret/metadata/app/?list=true"),
    ] {
        let r = ok(&v(&s, method, url, t, None), url);
        assert_eq!(r["data"]["keys"], json!(["p", "sub/"]), "{method} {url}");
    }
    for url in ["/v1/secret/metadata/", "/v1/secret/metadata"] {
        assert_eq!(
            ok(&v(&s, "LIST", url, t, None), url)["data"]["keys"],
            json!(["app/"])
        );
    }
    assert_eq!(
        vault_error(
            &v(&s, "LIST", "/v1/secret/metadata/none", t, None),
            404,
            "empty"
        ),
        Vec::<String>::new()
    );
    let record = last_record(&s);
    assert_eq!(record["method"], "LIST");
    assert_eq!(record["op"], "vault.kv.list");
    assert_eq!(record["decision"], "list");

    // DELETE metadata/ destroys every version.
    assert_eq!(
        v(&s, "DELETE", "/v1/secret/metadata/app/p", t, None).status,
        204
    );
    let md = ok(&v(&s, "GET", "/v1/secret/metadata/app/p", t, None), "md");
    assert_eq!(md["data"]["versions"]["2"]["destroyed"], true);
}

#[test]
fn tokens_headers_errors_and_the_audit_record() {
    let (_d, s, root) = start();
    ok(
        &v(
            &s,
            "POST",
            "/v1/secret/data/app/a",
            Some(&root),
            Some(json!({"data": {"k": CANARY}})),
        ),
        "seed",
    );
    // Bearer works as well as X-Vault-Token.
    let r = s.http("GET", "/v1/secret/data/app/a", Some(&root), None);
    assert_eq!(ok(&r, "bearer")["data"]["data"]["k"], CANARY);
    let record = last_record(&s);
    assert_eq!(record["op"], "vault.kv.read");
    assert_eq!(record["decision"], "read");
    assert_eq!(record["path"], "app/a");
    assert!(record["token"].as_str().is_some_and(|t| !t.is_empty()));
    // Both headers: refused.
    let both = s.request(
        "GET",
        "/v1/secret/data/app/a",
        Some(&root),
        None,
        &[("x-vault-token", &root)],
    );
    vault_error(&both, 400, "both headers");
    // No token, a bad token: Vault's 403 "permission denied".
    for token in [None, Some("cft_not-a-token")] {
        let errors = vault_error(
            &v(&s, "GET", "/v1/secret/data/app/a", token, None),
            403,
            "no token",
        );
        assert_eq!(errors[0], "permission denied");
    }
    let record = last_record(&s);
    assert_eq!(record["op"], "vault.kv.read");
    assert!(
        record["token"]
            .as_str()
            .is_some_and(|t| !t.contains("not-a-token")),
        "{record}"
    );
    // Unknown routes and mounts: Vault's 404.
    for url in [
        "/v1/transit/encrypt/k",
        "/v1/nomount/data/x",
        "/v1/secret/config",
        "/v1/sys/raw/x",
    ] {
        let errors = vault_error(&v(&s, "GET", url, Some(&root), None), 404, url);
        assert_eq!(
            errors,
            ["no handler for route; route entry not found"],
            "{url}"
        );
        // An unknown mount still matched the KV template.
        let op = if url.contains("/data/") {
            "vault.kv.read"
        } else {
            "vault.unmatched"
        };
        assert_eq!(last_record(&s)["op"], op, "{url}");
    }
    vault_error(
        &v(&s, "PATCH", "/v1/sys/mounts", Some(&root), None),
        405,
        "method",
    );
    // A body without a content type is taken with a token header, and
    // refused without one; other content types are refused.
    let r = s.request(
        "POST",
        "/v1/secret/data/app/b",
        None,
        Some(br#"{"data":{"k":"v"}}"#),
        &[("x-vault-token", &root), ("content-type", "")],
    );
    assert!(r.status == 200 || r.status == 415, "{}", r.text());
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let r = s.request(
            "POST",
            "/v1/secret/data/app/b",
            None,
            Some(br#"{"data":{"k":"v"}}"#),
            &[("x-vault-token", &root), ("content-type", ct)],
        );
        vault_error(&r, 415, ct);
    }
    // The canary never reached the audit log.
    assert!(
        !std::fs::read_to_string(s.audit_log())
            .unwrap()
            .contains(CANARY)
    );
}

#[test]
fn token_auth_and_userpass() {
    let (_d, s, root) = start();
    let t = Some(root.as_str());
    ok(
        &s.http(
            "PUT",
            "/api/v1/sys/policies/reader",
            t,
            Some(
                json!({"policy": "path \"app/*\" { capabilities = [\"read\", \"list\"] }"})
                    .to_string()
                    .as_bytes(),
            ),
        ),
        "policy",
    );
    let created = ok(
        &v(
            &s,
            "POST",
            "/v1/auth/token/create",
            t,
            Some(
                json!({"policies": ["reader"], "ttl": "1h", "explicit_max_ttl": "2h", "num_uses": 0, "display_name": "ci"}),
            ),
        ),
        "create",
    );
    let auth = &created["auth"];
    let child = auth["client_token"].as_str().unwrap().to_owned();
    assert!(child.starts_with("cft_"));
    assert_eq!(auth["policies"], json!(["reader"]));
    assert_eq!(auth["renewable"], true);
    assert!(auth["lease_duration"].as_i64().unwrap() > 3500);
    let accessor = auth["accessor"].as_str().unwrap().to_owned();
    // The record of the create holds no raw token.
    let log = std::fs::read_to_string(s.audit_log()).unwrap();
    assert!(!log.contains(&child) && !log.contains(&root));

    let me = ok(
        &v(&s, "GET", "/v1/auth/token/lookup-self", Some(&child), None),
        "lookup-self",
    );
    assert_eq!(me["data"]["accessor"], accessor);
    assert_eq!(me["data"]["display_name"], "ci");
    assert!(me["data"].get("id").is_none(), "lookup shows no token");
    let by_accessor = ok(
        &v(
            &s,
            "POST",
            "/v1/auth/token/lookup-accessor",
            t,
            Some(json!({"accessor": accessor})),
        ),
        "lookup-accessor",
    );
    assert_eq!(by_accessor["data"]["policies"], json!(["reader"]));
    ok(
        &v(
            &s,
            "POST",
            "/v1/auth/token/lookup",
            Some(&child),
            Some(json!({"token": child})),
        ),
        "lookup own",
    );
    let errors = vault_error(
        &v(
            &s,
            "POST",
            "/v1/auth/token/lookup",
            t,
            Some(json!({"token": child})),
        ),
        400,
        "lookup other",
    );
    assert!(errors[0].contains("accessor"), "{errors:?}");
    let renewed = ok(
        &v(
            &s,
            "POST",
            "/v1/auth/token/renew-self",
            Some(&child),
            Some(json!({})),
        ),
        "renew-self",
    );
    assert_eq!(renewed["auth"]["client_token"], "");
    vault_error(
        &v(
            &s,
            "POST",
            "/v1/auth/token/renew-self",
            Some(&child),
            Some(json!({"increment": "1h"})),
        ),
        400,
        "increment",
    );
    ok(
        &v(
            &s,
            "POST",
            "/v1/auth/token/renew",
            Some(&child),
            Some(json!({"token": child})),
        ),
        "renew own",
    );
    // Refused parameters.
    for body in [
        json!({"no_parent": true}),
        json!({"meta": {"a": "b"}}),
        json!({"period": "1h"}),
        json!({"policies": ["root"], "renewable": false}),
    ] {
        vault_error(
            &v(&s, "POST", "/v1/auth/token/create", t, Some(body.clone())),
            400,
            &body.to_string(),
        );
    }
    // A child cannot get policies its parent lacks.
    vault_error(
        &v(
            &s,
            "POST",
            "/v1/auth/token/create",
            Some(&child),
            Some(json!({"policies": ["root"]})),
        ),
        403,
        "escalation",
    );
    // Revocation.
    assert_eq!(
        v(
            &s,
            "POST",
            "/v1/auth/token/revoke-accessor",
            t,
            Some(json!({"accessor": accessor}))
        )
        .status,
        204
    );
    vault_error(
        &v(&s, "GET", "/v1/auth/token/lookup-self", Some(&child), None),
        403,
        "revoked",
    );
    let other = ok(
        &v(
            &s,
            "POST",
            "/v1/auth/token/create",
            t,
            Some(json!({"policies": ["reader"]})),
        ),
        "c",
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        v(&s, "POST", "/v1/auth/token/revoke-self", Some(&other), None).status,
        204
    );
    vault_error(
        &v(&s, "GET", "/v1/auth/token/lookup-self", Some(&other), None),
        403,
        "revoked self",
    );
    let third = ok(
        &v(&s, "POST", "/v1/auth/token/create", t, Some(json!({}))),
        "c",
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        v(
            &s,
            "POST",
            "/v1/auth/token/revoke",
            Some(&third),
            Some(json!({"token": third}))
        )
        .status,
        204
    );

    // userpass: a coffer user, invited.
    let code = ok(
        &s.http(
            "POST",
            "/api/v1/auth/invites",
            t,
            Some(json!({"policies": ["reader"]}).to_string().as_bytes()),
        ),
        "invite",
    )["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let password = "correct horse battery staple";
    ok(
        &s.http(
            "POST",
            "/api/v1/auth/invites/accept",
            None,
            Some(
                json!({"code": code, "user": "ada", "password": password})
                    .to_string()
                    .as_bytes(),
            ),
        ),
        "accept",
    );
    let login = ok(
        &v(
            &s,
            "POST",
            "/v1/auth/userpass/login/ada",
            None,
            Some(json!({"password": password})),
        ),
        "login",
    );
    let token = login["auth"]["client_token"].as_str().unwrap();
    assert_eq!(login["auth"]["policies"], json!(["reader"]));
    assert_eq!(
        ok(
            &v(&s, "GET", "/v1/auth/token/lookup-self", Some(token), None),
            "me"
        )["data"]["path"],
        "auth/userpass/login"
    );
    let record = last_record(&s);
    assert_eq!(record["op"], "vault.token.lookup_self");
    let errors = vault_error(
        &v(
            &s,
            "POST",
            "/v1/auth/userpass/login/ada",
            None,
            Some(json!({"password": "Tr0ub4dor-guess"})),
        ),
        403,
        "bad password",
    );
    assert!(!errors.join(" ").contains("Tr0ub4dor"));
    for code in ["12345", "1234567", "12ab56", " 123456", "１２３４５６"] {
        vault_error(
            &v(
                &s,
                "POST",
                "/v1/auth/userpass/login/ada",
                None,
                Some(json!({"password": password, "totp": code})),
            ),
            400,
            code,
        );
    }
    // A code is never taken from the end of the password.
    vault_error(
        &v(
            &s,
            "POST",
            "/v1/auth/userpass/login/ada",
            None,
            Some(json!({"password": format!("{password}123456")})),
        ),
        403,
        "suffix",
    );
    vault_error(
        &v(
            &s,
            "POST",
            "/v1/auth/userpass/login/ada",
            None,
            Some(json!({"password": password, "extra": 1})),
        ),
        400,
        "unknown field",
    );
    let log = std::fs::read_to_string(s.audit_log()).unwrap();
    assert!(!log.contains(password) && !log.contains(token));
    assert!(log.contains("vault.userpass.login"));
    // The user name is in the login's URL; the records keep the template
    // and the name only as a tag (as the native login does), because a
    // name is often a password typed in the wrong box.
    assert!(
        !log.contains("login/ada"),
        "a login's user name in the audit log"
    );
    let mut tagged = 0;
    for line in log.lines().filter(|l| l.contains("vault.userpass.login")) {
        let rec: Value = serde_json::from_str(line).unwrap();
        assert_eq!(rec["route"], "/v1/auth/userpass/login/{username}", "{rec}");
        if let Some(login) = rec["login"].as_str() {
            assert!(login.starts_with("hmac-sha256:"), "{rec}");
            tagged += 1;
        }
    }
    assert!(tagged > 0, "no login record carries the name's tag");
}

#[test]
fn sys_routes_and_policies_in_vault_syntax() {
    let (_d, s, root) = start();
    let t = Some(root.as_str());
    // health: Vault's codes and parameters.
    let h = v(&s, "GET", "/v1/sys/health", None, None);
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["initialized"], true);
    assert_eq!(h.json()["sealed"], false);
    assert_eq!(
        v(&s, "GET", "/v1/sys/health?activecode=299", None, None).status,
        299
    );
    vault_error(
        &v(&s, "GET", "/v1/sys/health?activecode=abc", None, None),
        400,
        "bad code",
    );
    vault_error(
        &v(&s, "GET", "/v1/sys/health?sealedcode=700", None, None),
        400,
        "bad code",
    );
    let st = ok(
        &v(&s, "GET", "/v1/sys/seal-status", None, None),
        "seal-status",
    );
    assert_eq!(st["sealed"], false);
    assert_eq!(st["t"], 1);
    assert_eq!(st["type"], "shamir");
    assert_eq!(
        ok(&v(&s, "GET", "/v1/sys/init", None, None), "init")["initialized"],
        true
    );
    // mounts.
    let m = ok(&v(&s, "GET", "/v1/sys/mounts", t, None), "mounts");
    assert_eq!(m["secret/"]["type"], "kv");
    assert_eq!(m["data"]["secret/"]["options"]["version"], "2");
    vault_error(
        &v(&s, "GET", "/v1/sys/mounts", None, None),
        403,
        "mounts without token",
    );
    let pre = ok(
        &v(
            &s,
            "GET",
            "/v1/sys/internal/ui/mounts/secret/app/x",
            t,
            None,
        ),
        "preflight",
    );
    assert_eq!(pre["data"]["path"], "secret/");
    assert_eq!(pre["data"]["options"]["version"], "2");
    vault_error(
        &v(&s, "GET", "/v1/sys/internal/ui/mounts/kv/x", t, None),
        400,
        "no mount",
    );
    let all = ok(&v(&s, "GET", "/v1/sys/internal/ui/mounts", t, None), "all");
    assert_eq!(all["data"]["secret"]["secret/"]["type"], "kv");

    // Policies: written in Vault syntax, kept as coffer rules, read in both.
    let vault_policy = "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\npath \"secret/metadata/app/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n";
    assert_eq!(
        v(
            &s,
            "PUT",
            "/v1/sys/policies/acl/app-reader",
            t,
            Some(json!({"policy": vault_policy}))
        )
        .status,
        204
    );
    let native = ok(
        &s.http("GET", "/api/v1/sys/policies/app-reader", t, None),
        "native",
    );
    assert_eq!(
        native["policy"],
        "path \"app/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n"
    );
    let read = ok(
        &v(&s, "GET", "/v1/sys/policies/acl/app-reader", t, None),
        "read",
    );
    assert_eq!(read["data"]["policy"], vault_policy);
    assert_eq!(read["data"]["coffer_policy"], native["policy"]);
    let old = ok(
        &v(&s, "GET", "/v1/sys/policy/app-reader", t, None),
        "sys/policy",
    );
    assert_eq!(old["data"]["rules"], vault_policy);
    // A policy that cannot be translated exactly is refused with its line.
    let errors = vault_error(
        &v(
            &s,
            "PUT",
            "/v1/sys/policy/bad",
            t,
            Some(
                json!({"policy": "# x\npath \"secret/data/app/*\" { capabilities = [\"read\"] }"}),
            ),
        ),
        400,
        "untranslatable",
    );
    assert!(errors[0].contains("line 2"), "{errors:?}");
    vault_error(
        &v(&s, "GET", "/v1/sys/policy/bad", t, None),
        404,
        "not written",
    );
    // A coffer policy with no Vault form reads with a warning.
    ok(
        &s.http(
            "PUT",
            "/api/v1/sys/policies/rotator",
            t,
            Some(
                json!({"policy": "path \"app/*\" { capabilities = [\"rotate\"] }"})
                    .to_string()
                    .as_bytes(),
            ),
        ),
        "p",
    );
    let r = ok(
        &v(&s, "GET", "/v1/sys/policies/acl/rotator", t, None),
        "rotator",
    );
    assert!(r["warnings"][0].as_str().unwrap().contains("rotate"));
    let list = ok(&v(&s, "LIST", "/v1/sys/policies/acl", t, None), "list");
    assert!(
        list["data"]["keys"]
            .as_array()
            .unwrap()
            .contains(&json!("app-reader"))
    );
    let list = ok(&v(&s, "GET", "/v1/sys/policy", t, None), "list");
    assert!(
        list["data"]["policies"]
            .as_array()
            .unwrap()
            .contains(&json!("root"))
    );
    assert_eq!(
        v(&s, "DELETE", "/v1/sys/policies/acl/rotator", t, None).status,
        204
    );

    // capabilities-self, through a token with the translated policy.
    let child = ok(
        &v(
            &s,
            "POST",
            "/v1/auth/token/create",
            t,
            Some(json!({"policies": ["app-reader"]})),
        ),
        "c",
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let caps = ok(
        &v(
            &s,
            "POST",
            "/v1/sys/capabilities-self",
            Some(&child),
            Some(
                json!({"paths": ["secret/data/app/x", "secret/metadata/app/", "secret/data/other", "secret/destroy/app/x"]}),
            ),
        ),
        "caps",
    );
    assert_eq!(caps["secret/data/app/x"], json!(["read"]));
    assert_eq!(
        caps["data"]["secret/metadata/app/"],
        json!(["read", "list"])
    );
    assert_eq!(caps["secret/data/other"], json!(["deny"]));
    assert_eq!(caps["secret/destroy/app/x"], json!(["deny"]));
    // The child may not write policies.
    vault_error(
        &v(
            &s,
            "PUT",
            "/v1/sys/policies/acl/x",
            Some(&child),
            Some(json!({"policy": ""})),
        ),
        403,
        "not admin",
    );
    vault_error(
        &v(
            &s,
            "POST",
            "/v1/secret/data/app/x",
            Some(&child),
            Some(json!({"data": {"a": "b"}})),
        ),
        403,
        "no write",
    );
}

#[test]
fn hostile_paths_and_names_are_refused_without_echo() {
    let (_d, s, root) = start();
    let t = Some(root.as_str());
    let token_shaped = format!("cft_{}", "Ab9".repeat(16));
    for url in [
        "/v1/secret/data/app/../sys/x".to_owned(),
        "/v1/secret/data/app//x".to_owned(),
        "/v1/secret/data/app/%2e%2e/x".to_owned(),
        "/v1/secret/data/app/x%00".to_owned(),
        "/v1/secret/data/app/%E2%80%AEx".to_owned(),
        "/v1/secret/data/app/x/".to_owned(),
        format!("/v1/secret/data/app/{token_shaped}"),
    ] {
        let r = v(&s, "POST", &url, t, Some(json!({"data": {"a": "b"}})));
        assert_eq!(r.status, 400, "{url}: {}", r.text());
        assert!(r.json()["errors"].is_array());
        assert!(!r.text().contains("Ab9Ab9"), "{url}: {}", r.text());
    }
    let name = format!("{token_shaped}x");
    let r = v(
        &s,
        "POST",
        "/v1/secret/data/app/y",
        t,
        Some(json!({"data": {"a": "b"}, &name: 1})),
    );
    vault_error(&r, 400, "token-shaped parameter");
    assert!(!r.text().contains("Ab9Ab9"), "{}", r.text());
    // Nothing was written.
    vault_error(
        &v(&s, "LIST", "/v1/secret/metadata/", t, None),
        404,
        "empty",
    );
}

/// A caller who may not write a policy is refused before the policy is
/// translated (the expensive part), so a malformed or huge policy gets it
/// no work and no parser message: 403, not 400.
#[test]
fn a_policy_write_is_authorized_before_it_is_translated() {
    let (_d, s, root) = start();
    let reader = json!({"policy": "path \"app/*\" { capabilities = [\"read\"] }"}).to_string();
    let r = s.http(
        "PUT",
        "/api/v1/sys/policies/app-reader",
        Some(&root),
        Some(reader.as_bytes()),
    );
    assert_eq!(r.status / 100, 2, "{}", r.text());
    let body = json!({"policies": ["app-reader"], "display_name": "no-admin"}).to_string();
    let created = s.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(&root),
        Some(body.as_bytes()),
    );
    assert_eq!(created.status, 200, "{}", created.text());
    let token = created.json()["token"].as_str().unwrap().to_string();
    let bad = json!({"policy": "path \"secret/data/x\" { capabilities = [\"read\"] "});
    vault_error(
        &v(
            &s,
            "PUT",
            "/v1/sys/policies/acl/p",
            Some(&token),
            Some(bad.clone()),
        ),
        403,
        "no admin",
    );
    // With admin, the same text is the 400 it deserves.
    vault_error(
        &v(&s, "PUT", "/v1/sys/policies/acl/p", Some(&root), Some(bad)),
        400,
        "admin",
    );
}

/// A listing of a path whose route lists nothing (`LIST` or `?list=true`
/// on `data/`) is Vault's 405, not the value it would have been as a GET.
#[test]
fn a_listing_where_nothing_lists_is_refused_not_served_as_a_read() {
    let (_d, s, root) = start();
    let t = Some(root.as_str());
    let w = v(
        &s,
        "POST",
        "/v1/secret/data/app/x",
        t,
        Some(json!({"data": {"k": "listing-canary-1"}})),
    );
    assert_eq!(w.status, 200, "{}", w.text());
    for (method, url) in [
        ("LIST", "/v1/secret/data/app/x"),
        ("GET", "/v1/secret/data/app/x?list=true"),
        ("LIST", "/v1/sys/seal-status"),
    ] {
        let r = v(&s, method, url, t, None);
        vault_error(&r, 405, url);
        assert!(!r.text().contains("listing-canary-1"), "{url}");
        let rec = last_record(&s);
        assert_eq!(rec["status"], 405, "{rec}");
        assert_eq!(rec["method"], "LIST", "{rec}");
    }
    // Listing where Vault lists still works.
    let r = v(&s, "LIST", "/v1/secret/metadata/app", t, None);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A read through the Vault API serves the value as a native read does:
/// `coffer audit readers` (and the compromise report built on it) must
/// name that reader, with the version read. A write, a metadata read and a
/// refused read are not reads of the value.
#[test]
fn vault_api_reads_are_counted_by_audit_readers() {
    let (_d, s, root) = start();
    let t = Some(root.as_str());
    for value in ["one", CANARY] {
        ok(
            &v(
                &s,
                "POST",
                "/v1/secret/data/app/prod/db",
                t,
                Some(json!({"data": {"password": value}})),
            ),
            "write",
        );
    }
    ok(
        &s.http(
            "PUT",
            "/api/v1/sys/policies/kv-reader",
            t,
            Some(
                json!({"policy": "path \"app/prod/*\" { capabilities = [\"read\"] }"})
                    .to_string()
                    .as_bytes(),
            ),
        ),
        "policy",
    );
    let token = |name: &str, policies: Value| {
        let created = ok(
            &v(
                &s,
                "POST",
                "/v1/auth/token/create",
                t,
                Some(json!({"policies": policies, "display_name": name})),
            ),
            "create",
        );
        (
            created["auth"]["client_token"].as_str().unwrap().to_owned(),
            created["auth"]["accessor"].as_str().unwrap().to_owned(),
        )
    };
    let (reader, reader_acc) = token("vault-client", json!(["kv-reader"]));
    ok(
        &s.http(
            "PUT",
            "/api/v1/sys/policies/elsewhere",
            t,
            Some(
                json!({"policy": "path \"other/*\" { capabilities = [\"read\"] }"})
                    .to_string()
                    .as_bytes(),
            ),
        ),
        "policy",
    );
    let (nobody, nobody_acc) = token("no-access", json!(["elsewhere"]));
    let r = ok(
        &v(
            &s,
            "GET",
            "/v1/secret/data/app/prod/db?version=1",
            Some(&reader),
            None,
        ),
        "read v1",
    );
    assert_eq!(r["data"]["data"]["password"], "one");
    ok(
        &v(
            &s,
            "GET",
            "/v1/secret/data/app/prod/db",
            Some(&reader),
            None,
        ),
        "read current",
    );
    assert_eq!(
        v(
            &s,
            "GET",
            "/v1/secret/data/app/prod/db",
            Some(&nobody),
            None
        )
        .status,
        403
    );
    ok(
        &v(&s, "GET", "/v1/secret/metadata/app/prod/db", t, None),
        "metadata is not a read of the value",
    );

    let readers = ok(
        &s.http("GET", "/api/v1/sys/audit/readers?path=app/prod/db", t, None),
        "readers",
    );
    let list = readers["readers"].as_array().unwrap();
    assert_eq!(
        list.len(),
        1,
        "only the Vault client read the value: {readers}"
    );
    let one = &list[0];
    assert_eq!(one["accessor"], reader_acc.as_str());
    assert_eq!(one["reads"], 2);
    assert_eq!(one["versions"], json!([1, 2]));
    assert!(!readers.to_string().contains(&nobody_acc));
    let v1 = ok(
        &s.http(
            "GET",
            "/api/v1/sys/audit/readers?path=app/prod/db&version=1",
            t,
            None,
        ),
        "readers of v1",
    );
    assert_eq!(v1["readers"][0]["reads"], 1, "{v1}");
}
