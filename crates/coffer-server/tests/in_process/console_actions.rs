//! The console's rollback, environment comparison and promotion, share
//! links (the share button's and the "send a secret" page's endpoint) and
//! its own error pages, through the router in-process: each action needs
//! the session's form token and this origin, a limited person can do and
//! see only what their policies allow, hostile text is escaped, and each
//! change is audited under the API's operation for the same use case.

use crate::common;
use crate::console::{
    FORM, Session, assert_no_inline_code, assert_page_headers, console_server, form, hidden,
    last_record, login, put_policy, put_secret,
};

use coffer_crypto::share as crypto;
use common::{Server, ok};
use serde_json::json;

fn value_of(server: &Server, root: &str, path: &str) -> (String, u64) {
    let r = server.http("GET", &format!("/api/v1/secrets/{path}"), Some(root), None);
    let j = ok(&r, path);
    (
        j["value"].as_str().unwrap_or_default().to_string(),
        j["version"].as_u64().unwrap(),
    )
}

fn rollback(
    s: &Session,
    path: &str,
    version: &str,
    csrf: &str,
    extra: &[(&str, &str)],
) -> common::Response {
    s.post_form(
        &format!("/ui/rollback/{path}"),
        &form(&[("csrf", csrf), ("version", version)]),
        extra,
    )
}

#[test]
fn rollback_needs_the_token_this_origin_and_update_and_is_audited_as_the_apis() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = console_server(dir.path());
    assert_eq!(
        put_secret(&server, &root, "app/dev/API_KEY", "dev-value-2"),
        200
    );
    assert_eq!(
        put_secret(&server, &root, "app/prod/DB_PASSWORD", "prod-value-2"),
        200
    );
    let ada = login(&server, "ada");
    // The history offers rolling back to version 1, not to the current one.
    let page = ada.get("/ui/secret/app/dev/API_KEY");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("href=\"/ui/rollback/app/dev/API_KEY?version=1\""),
        "{html}"
    );
    assert!(!html.contains("?version=2\""), "{html}");
    // The confirmation step changes nothing and carries the form token.
    let confirm = ada.get("/ui/rollback/app/dev/API_KEY?version=1");
    assert_eq!(confirm.status, 200, "{}", confirm.text());
    assert_page_headers(&confirm, "rollback form");
    assert_no_inline_code(&confirm.text(), "rollback form");
    assert_eq!(hidden(&confirm.text(), "csrf"), ada.csrf);
    assert_eq!(value_of(&server, &root, "app/dev/API_KEY").1, 2);
    // Refused: no token, a wrong token, another site, no browser proof.
    for (csrf, extra) in [
        ("", vec![]),
        ("wrong", vec![]),
        (ada.csrf.as_str(), vec![("origin", "http://evil.example")]),
        (ada.csrf.as_str(), vec![("sec-fetch-site", "cross-site")]),
        (ada.csrf.as_str(), vec![("sec-fetch-site", "same-site")]),
        (ada.csrf.as_str(), vec![("origin", "null")]),
    ] {
        let r = rollback(&ada, "app/dev/API_KEY", "1", csrf, &extra);
        assert_eq!(r.status, 403, "{csrf:?} {extra:?}");
        assert_page_headers(&r, "refused rollback");
    }
    assert_eq!(
        value_of(&server, &root, "app/dev/API_KEY").1,
        2,
        "nothing written"
    );
    // A hostile Host (DNS rebinding: the attacker's name pointed here)
    // matching its own Origin is refused before the console sees it, with
    // the console's error page.
    let r = rollback(
        &ada,
        "app/dev/API_KEY",
        "1",
        &ada.csrf,
        &[("host", "evil.example"), ("origin", "http://evil.example")],
    );
    assert!(
        r.status == 421 || r.status == 400 || r.status == 403,
        "{}",
        r.status
    );
    assert_page_headers(&r, "hostile host");
    assert_eq!(
        value_of(&server, &root, "app/dev/API_KEY").1,
        2,
        "nothing written"
    );
    // A GET never rolls back (a link, an image, a prefetch).
    let r = ada.get("/ui/rollback/app/dev/API_KEY?version=1&csrf=x");
    assert_eq!(r.status, 200);
    assert_eq!(value_of(&server, &root, "app/dev/API_KEY").1, 2);
    // Bad versions change nothing.
    for v in ["0", "-1", "x", "", "99"] {
        let r = rollback(
            &ada,
            "app/dev/API_KEY",
            v,
            &ada.csrf,
            &[("sec-fetch-site", "same-origin")],
        );
        assert!(r.status == 400 || r.status == 404, "{v}: {}", r.status);
    }
    assert_eq!(value_of(&server, &root, "app/dev/API_KEY").1, 2);
    // Done: version 3 holds version 1's value, recorded as secret.rollback.
    let r = rollback(
        &ada,
        "app/dev/API_KEY",
        "1",
        &ada.csrf,
        &[("sec-fetch-site", "same-origin")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/ui/secret/app/dev/API_KEY"));
    assert_eq!(
        value_of(&server, &root, "app/dev/API_KEY"),
        ("dev-value-1".into(), 3)
    );
    let rec = last_record(&server, "secret.rollback");
    assert_eq!(rec["actor"]["name"], "ada");
    assert_eq!(rec["path"], "app/dev/API_KEY");
    assert_eq!(rec["outcome"], "ok");
    assert!(!rec.to_string().contains("dev-value"));
    // A person limited to app/dev/ cannot roll back production; the
    // refusal is audited.
    let dev = login(&server, "dev");
    let r = rollback(&dev, "app/prod/DB_PASSWORD", "1", &dev.csrf, &[]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("prod-value"));
    let rec = last_record(&server, "secret.rollback");
    assert_eq!(rec["actor"]["name"], "dev");
    assert_eq!(rec["outcome"], "denied");
    assert_eq!(value_of(&server, &root, "app/prod/DB_PASSWORD").1, 2);
    let r = dev.get("/ui/rollback/app/prod/DB_PASSWORD?version=1");
    assert_eq!(r.status, 403);
    // A compromised version is refused, as by `coffer rollback`.
    let r = server.http(
        "POST",
        "/api/v1/compromise/app/dev/API_KEY",
        Some(&root),
        Some(
            json!({"version": 1, "reason": "leaked"})
                .to_string()
                .as_bytes(),
        ),
    );
    assert!(r.status < 300, "{}", r.text());
    let r = rollback(&ada, "app/dev/API_KEY", "1", &ada.csrf, &[]);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        !ada.get("/ui/secret/app/dev/API_KEY")
            .text()
            .contains("?version=1\"")
    );
}

#[test]
fn a_hostile_author_name_is_escaped_on_the_rollback_page() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = console_server(dir.path());
    let img = "<img src=x onerror=alert(1)>";
    let body = json!({ "display_name": img, "policies": ["everything"] }).to_string();
    let r = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(&root),
        Some(body.as_bytes()),
    );
    let hostile = ok(&r, "token")["token"].as_str().unwrap().to_string();
    assert_eq!(
        put_secret(&server, &hostile, "app/dev/API_KEY", "dev-value-2"),
        200
    );
    let ada = login(&server, "ada");
    let page = ada.get("/ui/rollback/app/dev/API_KEY?version=2");
    assert_eq!(page.status, 200);
    assert!(!page.text().contains(img), "{}", page.text());
    assert!(page.text().contains("&#60;img"), "{}", page.text());
    assert_no_inline_code(&page.text(), "rollback page");
}

fn env_server(dir: &std::path::Path) -> (Server, String) {
    let (server, root) = console_server(dir);
    for (p, v) in [
        ("app/dev/DB_PASSWORD", "dev-db"),
        ("app/prod/API_KEY", "prod-api"),
        ("app/dev/SAME", "same-value"),
        ("app/prod/SAME", "same-value"),
        ("app/dev/ONLY_DEV", "only-dev-value"),
        ("app/prod/SECRET_PROD_NAME", "secret-prod-value"),
    ] {
        assert_eq!(put_secret(&server, &root, p, v), 200, "{p}");
    }
    (server, root)
}

#[test]
fn environments_are_compared_by_name_only_and_promoted_after_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = env_server(dir.path());
    let ada = login(&server, "ada");
    let empty = ada.get("/ui/env");
    assert_eq!(empty.status, 200);
    assert_page_headers(&empty, "env");
    let page = ada.get("/ui/env?app=app&a=dev&b=prod");
    assert_eq!(page.status, 200, "{}", page.text());
    assert_page_headers(&page, "env compared");
    let html = page.text();
    assert_no_inline_code(&html, "env compared");
    let section = |id: &str| {
        let start = html.find(&format!("id=\"{id}\"")).unwrap();
        html[start..start + html[start..].find("</ul>").unwrap()].to_string()
    };
    assert!(section("only-a").contains("ONLY_DEV"));
    assert!(!section("only-a").contains("SAME"));
    assert!(section("only-b").contains("SECRET_PROD_NAME"));
    assert!(section("differ").contains("API_KEY") && section("differ").contains("DB_PASSWORD"));
    assert!(section("same").contains("SAME"));
    for v in [
        "dev-value-1",
        "prod-value-1",
        "dev-db",
        "prod-api",
        "same-value",
        "only-dev-value",
    ] {
        assert!(!html.contains(v), "a value on the page: {v}");
    }
    let plan = hidden(&html, "plan");
    let promote = |fields: &[(&str, &str)], extra: &[(&str, &str)]| {
        ada.post_form("/ui/env/promote", &form(fields), extra)
    };
    let unescape = plan.replace("&quot;", "\"").replace("&#34;", "\"");
    let fields = [
        ("csrf", ada.csrf.as_str()),
        ("app", "app"),
        ("a", "dev"),
        ("b", "prod"),
        ("plan", unescape.as_str()),
        ("confirm", "yes"),
    ];
    // No token, another site, no confirmation: refused, nothing written.
    let mut no_token = fields;
    no_token[0].1 = "";
    assert_eq!(promote(&no_token, &[]).status, 403);
    assert_eq!(
        promote(&fields, &[("origin", "http://evil.example")]).status,
        403
    );
    assert_eq!(promote(&fields[..5], &[]).status, 400);
    let mut forged = fields;
    forged[4].1 = "[]";
    assert_eq!(
        promote(&forged, &[]).status,
        409,
        "a plan that is not the preview"
    );
    assert_eq!(value_of(&server, &root, "app/prod/API_KEY").0, "prod-api");
    let r = promote(&fields, &[("sec-fetch-site", "same-origin")]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        value_of(&server, &root, "app/prod/API_KEY").0,
        "dev-value-1"
    );
    assert_eq!(
        value_of(&server, &root, "app/prod/ONLY_DEV").0,
        "only-dev-value"
    );
    assert_eq!(
        value_of(&server, &root, "app/prod/SECRET_PROD_NAME").0,
        "secret-prod-value"
    );
    let rec = last_record(&server, "secret.promote_env");
    assert_eq!(rec["actor"]["name"], "ada");
    assert_eq!(rec["outcome"], "ok");
    assert!(!rec.to_string().contains("dev-value"));
    // The same preview again is stale now: a conflict, nothing written.
    assert_eq!(promote(&fields, &[]).status, 409);
    let after = ada.get("/ui/env?app=app&a=dev&b=prod").text();
    assert!(after.contains("id=\"up-to-date\""), "{after}");
}

#[test]
fn a_limited_person_sees_no_names_outside_their_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = env_server(dir.path());
    // May list and read both environments' names, but only one name in prod.
    put_policy(
        &server,
        &root,
        "dev-and-one",
        r#"path "app/dev/*" { capabilities = ["read", "list"] }
path "app/prod/" { capabilities = ["list"] }
path "app/prod/API_KEY" { capabilities = ["read", "list"] }"#,
    );
    crate::console::join(&server, &root, "lim", &["dev-and-one"]);
    let lim = login(&server, "lim");
    let r = lim.get("/ui/env?app=app&a=dev&b=prod");
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    // Production's names other than API_KEY are not listed for lim.
    let section = |id: &str| {
        let start = html.find(&format!("id=\"{id}\"")).unwrap();
        html[start..start + html[start..].find("</ul>").unwrap()].to_string()
    };
    // Of production, lim sees API_KEY only: nothing is only in prod, and
    // DB_PASSWORD, SAME and SECRET_PROD_NAME there are not mentioned.
    assert!(!section("only-b").contains("<li>"), "{}", section("only-b"));
    assert!(section("differ").contains("API_KEY"));
    assert!(!section("differ").contains("DB_PASSWORD"));
    assert!(!section("same").contains("SAME"));
    assert!(section("only-a").contains("DB_PASSWORD") && section("only-a").contains("SAME"));
    assert!(!html.contains("SECRET_PROD_NAME"), "{html}");
    assert!(!html.contains("prod-value") && !html.contains("secret-prod-value"));
    assert_eq!(last_record(&server, "ui.env")["actor"]["name"], "lim");
    // A person who may not list production at all is refused, and sees
    // none of its names.
    let dev = login(&server, "dev");
    let r = dev.get("/ui/env?app=app&a=dev&b=prod");
    assert_eq!(r.status, 403, "{}", r.text());
    for name in ["SECRET_PROD_NAME", "DB_PASSWORD", "ONLY_DEV", "SAME"] {
        assert!(!r.text().contains(name), "{name}");
    }
    let rec = last_record(&server, "ui.env");
    assert_eq!(rec["actor"]["name"], "dev");
    assert_eq!(rec["outcome"], "denied");
    // Hostile query text comes back escaped, and is refused as a prefix.
    let r = dev.get("/ui/env?app=%22%3E%3Cscript%3Ealert(1)%3C/script%3E&a=dev&b=prod");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.text().contains("<script>alert"), "{}", r.text());
    assert_no_inline_code(&r.text(), "hostile env");
    // A promotion into production is refused and writes nothing.
    let plan = r#"[{"name":"API_KEY","action":"update","from_version":1,"to_version":1}]"#;
    let r = dev.post_form(
        "/ui/env/promote",
        &form(&[
            ("csrf", &dev.csrf),
            ("app", "app"),
            ("a", "dev"),
            ("b", "prod"),
            ("plan", plan),
            ("confirm", "yes"),
        ]),
        &[],
    );
    assert!(r.status == 403 || r.status == 409, "{}", r.text());
    assert_eq!(value_of(&server, &root, "app/prod/API_KEY").0, "prod-api");
}

fn sealed_body(id: &str, extra: serde_json::Value) -> String {
    let key = crypto::ShareKey::generate();
    let sealed = crypto::seal(&key, id, None, b"shared value").unwrap();
    let mut b = json!({ "id": id, "ciphertext": crypto::encode(&sealed) });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b.to_string()
}

fn console_share(s: &Session, body: &str, csrf: &str, extra: &[(&str, &str)]) -> common::Response {
    let cookie = format!("coffer-ui={}", s.cookie);
    let mut headers = vec![
        ("cookie", cookie.as_str()),
        ("content-type", "application/json"),
        ("x-coffer-csrf", csrf),
    ];
    headers.extend_from_slice(extra);
    s.server
        .request("POST", "/ui/shares", None, Some(body.as_bytes()), &headers)
}

#[test]
fn console_shares_need_the_token_and_read_and_name_the_link_in_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = console_server(dir.path());
    put_policy(
        &server,
        &root,
        "sharer",
        r#"path "sys/shares" { capabilities = ["create"] }"#,
    );
    let ada = login(&server, "ada");
    // The send page loads share.js as a module, no inline code.
    let page = ada.get("/ui/send");
    assert_eq!(page.status, 200);
    assert_page_headers(&page, "send");
    assert_no_inline_code(&page.text(), "send");
    assert!(
        page.text()
            .contains("<script type=\"module\" src=\"/ui/assets/send.js\"></script>")
    );
    let js = ada.get("/ui/assets/send.js");
    assert_eq!(js.status, 200);
    assert!(js.text().contains("from \"/s/assets/share.js\""));
    // Refused without the token or from another site; nothing stored.
    let id = crypto::new_id();
    let body = sealed_body(&id, json!({}));
    for (csrf, extra) in [
        ("", vec![]),
        ("wrong", vec![]),
        (ada.csrf.as_str(), vec![("origin", "http://evil.example")]),
        (ada.csrf.as_str(), vec![("sec-fetch-site", "cross-site")]),
    ] {
        assert_eq!(
            console_share(&ada, &body, csrf, &extra).status,
            403,
            "{csrf:?} {extra:?}"
        );
    }
    let r = console_share(
        &ada,
        &body,
        &ada.csrf,
        &[("host", "evil.example"), ("origin", "http://evil.example")],
    );
    assert!(
        r.status >= 400 && r.status < 500,
        "hostile host: {}",
        r.status
    );
    // A form post (what another site can send without CORS) is not JSON.
    let cookie = format!("coffer-ui={}", ada.cookie);
    let r = server.request(
        "POST",
        "/ui/shares",
        None,
        Some(body.as_bytes()),
        &[
            ("cookie", &cookie),
            ("content-type", "text/plain"),
            ("x-coffer-csrf", &ada.csrf),
        ],
    );
    assert!(
        r.status >= 400 && r.status < 500,
        "text/plain: {}",
        r.status
    );
    let open = |id: &str| server.http("POST", &format!("/api/v1/shares/{id}/open"), None, None);
    assert_eq!(open(&id).status, 404, "nothing was stored");
    // A share of a stored secret records its version; the audit names the link.
    let id = crypto::new_id();
    let body = sealed_body(&id, json!({"path": "app/dev/API_KEY", "version": 1}));
    let r = console_share(&ada, &body, &ada.csrf, &[("sec-fetch-site", "same-origin")]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["version"], 1);
    let rec = last_record(&server, "share.create");
    assert_eq!(rec["actor"]["name"], "ada");
    assert_eq!(rec["version"], 1);
    assert_eq!(
        rec["writes"][0]["path"],
        format!("sys/shares/{id}"),
        "{rec}"
    );
    let ciphertext = serde_json::from_str::<serde_json::Value>(&body).unwrap()["ciphertext"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!server.audit_log_text().contains(&ciphertext));
    // It opens once; the second open fails.
    assert_eq!(open(&id).status, 200);
    assert_eq!(open(&id).status, 404);
    // A person without read on production cannot share its secret.
    let dev = login(&server, "dev");
    let id = crypto::new_id();
    let body = sealed_body(&id, json!({"path": "app/prod/DB_PASSWORD", "version": 1}));
    let r = console_share(&dev, &body, &dev.csrf, &[]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(last_record(&server, "share.create")["outcome"], "denied");
    assert_eq!(open(&id).status, 404);
    // Hostile ids are refused and change nothing.
    for hostile in [
        "../../sys/seal",
        "<script>",
        "a\u{202e}b",
        &"A".repeat(5000),
    ] {
        let body = sealed_body(hostile, json!({}));
        let r = console_share(&ada, &body, &ada.csrf, &[]);
        assert_eq!(r.status, 400, "{hostile}");
        assert!(!r.text().contains("<script>"));
    }
    // The owner's listing (through the API) shows the console's links.
    let listed = ok(
        &server.http("GET", "/api/v1/shares", Some(&root), None),
        "list",
    );
    assert!(
        listed["shares"].as_array().unwrap().is_empty(),
        "root's own only"
    );
}

#[test]
fn the_consoles_own_errors_are_its_pages_with_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = console_server(dir.path());
    let ada = login(&server, "ada");
    // No such page (signed in or not).
    for r in [
        ada.get("/ui/no/such/page"),
        server.http("GET", "/ui/nope", None, None),
    ] {
        assert_eq!(r.status, 404);
        assert_page_headers(&r, "404");
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        assert!(r.text().contains("<h1>404 Not Found</h1>"), "{}", r.text());
        assert_no_inline_code(&r.text(), "404");
    }
    // A body over the limit, refused before it is read.
    let cookie = format!("coffer-ui={}", ada.cookie);
    let len = (64u64 << 20).to_string();
    let r = server.request(
        "POST",
        "/ui/save",
        None,
        Some(b"csrf=x"),
        &[
            ("cookie", &cookie),
            ("content-type", FORM),
            ("content-length", &len),
        ],
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert_page_headers(&r, "413");
    assert!(r.text().contains("413"), "{}", r.text());
    // Too many failed logins from one address.
    let mut last = None;
    for _ in 0..14 {
        let r = crate::console::login_response_with(&server, "ada", "wrong password");
        if r.status == 429 {
            last = Some(r);
            break;
        }
    }
    let r = last.expect("a 429 after repeated failed logins");
    assert_page_headers(&r, "429");
    assert!(r.header("retry-after").is_some());
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    // The API's own errors stay JSON.
    let r = server.http("GET", "/api/v1/no/such", None, None);
    assert_eq!(r.status, 404);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
}

/// Concurrent opens of a link the console made: of twelve racing opens
/// of a three-view link, exactly three get the sealed bytes.
#[test]
fn concurrent_opens_of_a_console_link_spend_each_view_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = console_server(dir.path());
    let ada = login(&server, "ada");
    let id = crypto::new_id();
    let body = sealed_body(&id, json!({"views": 3}));
    let r = console_share(&ada, &body, &ada.csrf, &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    let server = &server;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                let id = id.clone();
                s.spawn(move || {
                    server
                        .http("POST", &format!("/api/v1/shares/{id}/open"), None, None)
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 404 || *s == 429),
        "{statuses:?}"
    );
}

/// Review finding: applying a promote over a secret the caller cannot see
/// in the target failed with its path and version ("app/prod/X (at version
/// 1, not 0)"), telling that it exists. Now it is refused with a generic
/// message that names neither, and nothing is written.
#[test]
fn a_promote_over_a_hidden_target_names_neither_its_path_nor_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), common::Mode::Dev);
    let root = server.root_token();
    assert_eq!(
        put_secret(&server, &root, "app/dev/HIDDEN_NAME_X", "dev-value-1"),
        200
    );
    assert_eq!(
        put_secret(&server, &root, "app/prod/HIDDEN_NAME_X", "prod-value-1"),
        200
    );
    put_policy(
        &server,
        &root,
        "promoter",
        r#"path "app/dev/*" { capabilities = ["read", "list"] }
path "app/prod/" { capabilities = ["list"] }
path "app/prod/*" { capabilities = ["create", "update"] }"#,
    );
    let body = json!({ "policies": ["promoter"] }).to_string();
    let created = ok(
        &server.http(
            "POST",
            "/api/v1/auth/tokens",
            Some(&root),
            Some(body.as_bytes()),
        ),
        "token",
    );
    let token = created["token"].as_str().unwrap().to_string();
    let preview = json!({"from": "app/dev", "to": "app/prod"}).to_string();
    let plan = ok(
        &server.http(
            "POST",
            "/api/v1/promote-env",
            Some(&token),
            Some(preview.as_bytes()),
        ),
        "preview",
    )["plan"]
        .clone();
    assert_eq!(plan[0]["action"], "create", "{plan}");
    let apply = json!({"from": "app/dev", "to": "app/prod", "apply": plan}).to_string();
    let r = server.http(
        "POST",
        "/api/v1/promote-env",
        Some(&token),
        Some(apply.as_bytes()),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    let text = r.text();
    assert!(!text.contains("HIDDEN_NAME_X"), "{text}");
    assert!(!text.contains("version"), "{text}");
    assert_eq!(
        value_of(&server, &root, "app/prod/HIDDEN_NAME_X"),
        ("prod-value-1".into(), 1)
    );
}
