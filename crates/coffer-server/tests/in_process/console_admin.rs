//! The console's administration pages (`/ui/users`, `/ui/policies`,
//! `/ui/protected`, `/ui/breakglass`, `/ui/rotation`), through the router
//! in-process: each renders for an administrator; a person whose policies
//! do not allow it gets the API's refusal, and no list shows what a
//! `deny` hides; every change needs the form token and this origin, and
//! the irreversible ones the name typed again; hostile text is escaped;
//! each action's audit record is its API twin's, under `ui.`.

use crate::common;
use crate::console::{
    PASSWORD, Session, assert_no_inline_code, assert_page_headers, console_server, form, join,
    login, put_policy,
};

use common::{Server, ok};
use serde_json::json;

/// The console server of `console.rs`, plus: `app/prod/*` protected; a
/// person `oncall` who may ask for break-glass there; a person `ops` who
/// administers users and policies except `ada` and the `everything`
/// policy; an expiry on the dev secret and a staged rotation of the prod
/// one.
fn admin_server(dir: &std::path::Path) -> (Server, String) {
    let (server, root) = console_server(dir);
    put_policy(
        &server,
        &root,
        "oncall",
        r#"path "app/prod/*" { capabilities = ["breakglass", "list"] }"#,
    );
    put_policy(
        &server,
        &root,
        "ops",
        r#"path "sys/users/*" { capabilities = ["admin"] }
path "sys/policies/*" { capabilities = ["admin"] }
path "sys/protected" { capabilities = ["admin"] }
path "sys/users/ada" { capabilities = ["deny"] }
path "sys/policies/everything" { capabilities = ["deny"] }
path "app/prod/*" { capabilities = ["deny"] }"#,
    );
    join(&server, &root, "oncall", &["oncall"]);
    join(&server, &root, "ops", &["ops"]);
    // ada acts on dev, so she holds dev's policy: an administrator may
    // change only users whose every policy she could grant.
    api(
        &server,
        &root,
        "PATCH",
        "/api/v1/sys/users/ada",
        json!({ "policies": ["everything", "dev-only"] }),
    );
    api(
        &server,
        &root,
        "POST",
        "/api/v1/sys/protected",
        json!({ "pattern": "app/prod/*" }),
    );
    api(
        &server,
        &root,
        "PUT",
        "/api/v1/expiry/app/dev/API_KEY",
        json!({ "expires_in": "2d" }),
    );
    api(
        &server,
        &root,
        "POST",
        "/api/v1/rotate/app/prod/DB_PASSWORD",
        json!({ "generate": "alnum:32", "stage": true }),
    );
    (server, root)
}

/// The last request record (not an alert) of operation `op`.
fn last_record(server: &Server, op: &str) -> serde_json::Value {
    server
        .audit_records()
        .into_iter()
        .rev()
        .find(|r| r["op"] == op && r["type"] != "alert")
        .unwrap_or_else(|| panic!("no {op} record"))
}

fn api(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> common::Response {
    let body = body.to_string();
    let r = server.http(method, path, Some(token), Some(body.as_bytes()));
    assert!(
        (200..300).contains(&r.status),
        "{method} {path}: {}",
        r.text()
    );
    r
}

/// An API token for a person, from the API's login.
fn api_login(server: &Server, user: &str) -> String {
    let body = json!({ "user": user, "password": PASSWORD }).to_string();
    let r = server.http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()));
    ok(&r, "login")["token"].as_str().unwrap().to_string()
}

fn user(server: &Server, root: &str, name: &str) -> serde_json::Value {
    let r = server.http(
        "GET",
        &format!("/api/v1/sys/users/{name}"),
        Some(root),
        None,
    );
    if r.status == 404 {
        return serde_json::Value::Null;
    }
    ok(&r, name)
}

fn policy_source(server: &Server, root: &str, name: &str) -> Option<String> {
    let r = server.http(
        "GET",
        &format!("/api/v1/sys/policies/{name}"),
        Some(root),
        None,
    );
    (r.status == 200).then(|| r.json()["policy"].as_str().unwrap().to_string())
}

fn protected(server: &Server, root: &str) -> String {
    ok(
        &server.http("GET", "/api/v1/sys/protected", Some(root), None),
        "protected",
    )
    .to_string()
}

fn grants(server: &Server, root: &str) -> Vec<serde_json::Value> {
    ok(
        &server.http("GET", "/api/v1/sys/breakglass", Some(root), None),
        "grants",
    )["grants"]
        .as_array()
        .unwrap()
        .clone()
}

/// Every administration page, the operation it is audited under, and its
/// API twin's URL.
const PAGES: &[(&str, &str, &str)] = &[
    ("/ui/users", "ui.user.list", "/api/v1/sys/users"),
    ("/ui/users/dev", "ui.user.read", "/api/v1/sys/users/dev"),
    ("/ui/policies", "ui.policy.list", "/api/v1/sys/policies"),
    (
        "/ui/policies/dev-only",
        "ui.policy.read",
        "/api/v1/sys/policies/dev-only",
    ),
    (
        "/ui/protected",
        "ui.protected.list",
        "/api/v1/sys/protected",
    ),
    (
        "/ui/breakglass/grants",
        "ui.breakglass.list",
        "/api/v1/sys/breakglass",
    ),
    (
        "/ui/rotation",
        "ui.rotation.status",
        "/api/v1/rotation/status",
    ),
];

#[test]
fn every_admin_page_renders_for_an_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = admin_server(dir.path());
    let ada = login(&server, "ada");
    for (page, op, _) in PAGES {
        let r = ada.get(page);
        assert_eq!(r.status, 200, "{page}: {}", r.text());
        assert_page_headers(&r, page);
        assert_no_inline_code(&r.text(), page);
        let rec = last_record(&server, op);
        assert_eq!(rec["outcome"], "ok", "{page}");
        assert_eq!(rec["actor"]["name"], "ada", "{page}");
    }
    // The nav reaches every page.
    let tree = ada.get("/ui/").text();
    for link in [
        "/ui/users",
        "/ui/policies",
        "/ui/protected",
        "/ui/breakglass",
        "/ui/rotation",
    ] {
        assert!(tree.contains(&format!("href=\"{link}\"")), "{link}");
    }
    let users = ada.get("/ui/users").text();
    for name in ["ada", "dev", "oncall", "ops"] {
        assert!(users.contains(&format!(">{name}</a>")), "{name} in {users}");
    }
    // A policy reads as grants, with who holds it.
    let p = ada.get("/ui/policies/dev-only").text();
    assert!(
        p.contains("<td class=\"path\">app/dev/*</td><td>read, list, create, update</td>"),
        "{p}"
    );
    assert!(p.contains("href=\"/ui/users/dev\""), "{p}");
    let p = ada.get("/ui/policies/ops").text();
    assert!(p.contains("deny refuses every capability here"), "{p}");
    let p = ada.get("/ui/policies/root");
    assert_eq!(p.status, 200);
    assert!(p.text().contains("id=\"policy-builtin\""));
    // Protected patterns; rotation status worst first, linking to secrets.
    assert!(ada.get("/ui/protected").text().contains("app/prod/*"));
    let rot = ada.get("/ui/rotation").text();
    let pending = rot
        .find("href=\"/ui/secret/app/prod/DB_PASSWORD\"")
        .expect(&rot);
    let expiring = rot.find("href=\"/ui/secret/app/dev/API_KEY\"").expect(&rot);
    assert!(pending < expiring, "worst first: {rot}");
    assert!(
        rot.contains("<td>pending</td>") && rot.contains("<td>expiring</td>"),
        "{rot}"
    );
}

#[test]
fn a_limited_person_gets_the_apis_refusal_on_every_admin_page() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = admin_server(dir.path());
    let dev = login(&server, "dev");
    let token = api_login(&server, "dev");
    for (page, op, twin) in PAGES {
        let r = dev.get(page);
        let a = server.http("GET", twin, Some(&token), None);
        assert_eq!(r.status, a.status, "{page} against {twin}: {}", r.text());
        assert_eq!(r.status, 403, "{page}");
        assert_no_inline_code(&r.text(), page);
        let rec = last_record(&server, op);
        assert_eq!(rec["outcome"], "denied", "{page}");
        assert_eq!(rec["actor"]["name"], "dev", "{page}");
    }
    // The refused grants page still offers the request form.
    assert!(
        dev.get("/ui/breakglass/grants")
            .text()
            .contains("id=\"breakglass\"")
    );
    // Rotation status of what dev may see: only app/dev/.
    let r = dev.get("/ui/rotation?prefix=app/dev/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("app/dev/API_KEY") && !r.text().contains("prod"));
    let r = dev.get("/ui/rotation?prefix=app/prod/");
    let a = server.http(
        "GET",
        "/api/v1/rotation/status/app/prod/",
        Some(&token),
        None,
    );
    assert_eq!(r.status, a.status);
    assert!(!r.text().contains("DB_PASSWORD"));
    // And no change goes through.
    let before = (
        user(&server, &root, "ada"),
        policy_source(&server, &root, "dev-only"),
        protected(&server, &root),
    );
    for (action, body) in [
        (
            "/ui/users/invite",
            form(&[("csrf", &dev.csrf), ("policies", "dev-only")]),
        ),
        (
            "/ui/users/ada/disable",
            form(&[("csrf", &dev.csrf), ("confirm", "ada")]),
        ),
        (
            "/ui/users/ada/delete",
            form(&[("csrf", &dev.csrf), ("confirm", "ada")]),
        ),
        (
            "/ui/users/ada/update",
            form(&[("csrf", &dev.csrf), ("policies", "dev-only")]),
        ),
        (
            "/ui/policies/dev-only",
            form(&[
                ("csrf", &dev.csrf),
                ("source", r#"path "*" { capabilities = ["admin"] }"#),
            ]),
        ),
        (
            "/ui/policies",
            form(&[
                ("csrf", &dev.csrf),
                ("name", "mine"),
                ("source", r#"path "*" { capabilities = ["admin"] }"#),
            ]),
        ),
        (
            "/ui/protected/remove",
            form(&[
                ("csrf", &dev.csrf),
                ("pattern", "app/prod/*"),
                ("confirm", "app/prod/*"),
            ]),
        ),
        (
            "/ui/breakglass",
            form(&[
                ("csrf", &dev.csrf),
                ("path", "app/prod/DB_PASSWORD"),
                ("reason", "an incident right now"),
            ]),
        ),
    ] {
        let r = dev.post_form(action, &body, &[]);
        assert_eq!(r.status, 403, "{action}: {}", r.text());
        assert!(!r.text().contains("inv_"), "{action}");
    }
    let after = (
        user(&server, &root, "ada"),
        policy_source(&server, &root, "dev-only"),
        protected(&server, &root),
    );
    assert_eq!(before, after);
    assert!(policy_source(&server, &root, "mine").is_none());
    assert!(grants(&server, &root).is_empty());
}

#[test]
fn no_list_shows_what_a_deny_hides() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = admin_server(dir.path());
    let ops = login(&server, "ops");
    let token = api_login(&server, "ops");
    let users = ops.get("/ui/users");
    assert_eq!(users.status, 200, "{}", users.text());
    let html = users.text();
    assert!(
        html.contains(">dev</a>") && !html.contains(">ada</a>"),
        "{html}"
    );
    let api = server.http("GET", "/api/v1/sys/users", Some(&token), None);
    assert!(!api.text().contains("\"ada\""));
    assert_eq!(ops.get("/ui/users/ada").status, 403);
    let policies = ops.get("/ui/policies").text();
    assert!(
        policies.contains(">dev-only</a>") && !policies.contains("everything"),
        "{policies}"
    );
    assert_eq!(ops.get("/ui/policies/everything").status, 403);
    // Who holds a policy: never a hidden user.
    let p = ops.get("/ui/policies/dev-only").text();
    assert!(p.contains("/ui/users/dev") && !p.contains(">ada<"), "{p}");
    // The protected list leaves out the pattern ops is denied.
    let prot = ops.get("/ui/protected");
    assert_eq!(prot.status, 200);
    assert!(!prot.text().contains("app/prod/*</td>"), "{}", prot.text());
    // A viewer who may read policies but not list users is told so.
    put_policy(
        &server,
        &server.root_token(),
        "reader",
        r#"path "sys/policies/*" { capabilities = ["admin"] }"#,
    );
    join(&server, &server.root_token(), "pat", &["reader"]);
    let pat = login(&server, "pat");
    let p = pat.get("/ui/policies/dev-only");
    assert_eq!(p.status, 200);
    assert!(p.text().contains("id=\"holders-hidden\""), "{}", p.text());
    // The policy read is the record's decision, not the user listing.
    let rec = last_record(&server, "ui.policy.read");
    assert_eq!(rec["outcome"], "ok");
    assert_eq!(rec["path"], "sys/policies/dev-only");
    // A name the core refuses: the record holds no decision of the user
    // listing either.
    let r = ops.get("/ui/policies/%3Cbad%3E");
    assert_eq!(r.status, 400);
    let rec = last_record(&server, "ui.policy.read");
    assert_eq!(rec["status"], 400);
    assert!(
        rec["decision"].is_null() && rec["path"] != "sys/users/",
        "{rec}"
    );
}

/// The revision the policy page's edit form carries.
fn revision_of(s: &Session, name: &str) -> String {
    let page = s.get(&format!("/ui/policies/{name}")).text();
    crate::console::hidden(&page, "revision")
}

/// Each admin change, a form that would succeed, and a check that it did
/// not happen.
fn changes(s: &Session, csrf: &str) -> Vec<(&'static str, String)> {
    let revision = revision_of(s, "dev-only");
    vec![
        (
            "/ui/users/invite",
            form(&[("csrf", csrf), ("policies", "everything")]),
        ),
        (
            "/ui/users/dev/disable",
            form(&[("csrf", csrf), ("confirm", "dev")]),
        ),
        (
            "/ui/users/dev/update",
            form(&[("csrf", csrf), ("policies", "everything")]),
        ),
        (
            "/ui/users/dev/delete",
            form(&[("csrf", csrf), ("confirm", "dev")]),
        ),
        (
            "/ui/policies/dev-only",
            form(&[
                ("csrf", csrf),
                ("revision", &revision),
                ("source", r#"path "*" { capabilities = ["admin"] }"#),
            ]),
        ),
        (
            "/ui/policies",
            form(&[
                ("csrf", csrf),
                ("name", "forged"),
                ("source", r#"path "*" { capabilities = ["admin"] }"#),
            ]),
        ),
        (
            "/ui/protected",
            form(&[("csrf", csrf), ("pattern", "*/forged/*")]),
        ),
        (
            "/ui/protected/remove",
            form(&[
                ("csrf", csrf),
                ("pattern", "app/prod/*"),
                ("confirm", "app/prod/*"),
            ]),
        ),
    ]
}

#[test]
fn every_admin_change_needs_the_form_token_and_this_origin() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = admin_server(dir.path());
    let ada = login(&server, "ada");
    let oncall = login(&server, "oncall");
    let state = || {
        (
            user(&server, &root, "dev"),
            policy_source(&server, &root, "dev-only"),
            policy_source(&server, &root, "forged"),
            protected(&server, &root),
            grants(&server, &root).len(),
        )
    };
    let before = state();
    let wrong = "A".repeat(43);
    for (what, token, extra) in [
        ("no token", "", vec![]),
        ("another token", wrong.as_str(), vec![]),
        ("oncall's token", oncall.csrf.as_str(), vec![]),
        (
            "foreign origin",
            ada.csrf.as_str(),
            vec![("origin", "http://evil.example")],
        ),
        ("null origin", ada.csrf.as_str(), vec![("origin", "null")]),
        (
            "cross-site",
            ada.csrf.as_str(),
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            "same-site",
            ada.csrf.as_str(),
            vec![("sec-fetch-site", "same-site")],
        ),
    ] {
        for (action, body) in changes(&ada, token) {
            let r = ada.post_form(action, &body, &extra);
            assert_eq!(r.status, 403, "{what} {action}: {}", r.text());
            assert!(
                !r.text().contains("inv_"),
                "{what} {action} made an invitation"
            );
            let rec = last_record(&server, &format!("ui.{}", op_of(action)));
            assert_eq!(rec["status"], 403, "{what} {action}: {rec}");
        }
        // oncall's own token is valid in oncall's session: send ada's.
        let token = if token == oncall.csrf {
            ada.csrf.as_str()
        } else {
            token
        };
        let bg = form(&[
            ("csrf", token),
            ("path", "app/prod/DB_PASSWORD"),
            ("reason", "forged emergency"),
        ]);
        let r = oncall.post_form("/ui/breakglass", &bg, &extra);
        assert_eq!(r.status, 403, "{what} break-glass");
        assert_eq!(state(), before, "{what} changed something");
    }
    // No invitation was made by any of them.
    assert!(
        !server
            .audit_records()
            .iter()
            .any(|r| r["op"] == "ui.invite.create" && r["outcome"] == "ok")
    );
    // Not by GET either, nor as another content type.
    let cookie = format!("coffer-ui={}", ada.cookie);
    for (action, body) in changes(&ada, &ada.csrf) {
        if action == "/ui/policies"
            || action.starts_with("/ui/policies/")
            || action == "/ui/protected"
        {
            continue; // these paths are pages too
        }
        let r = ada.get(action);
        assert!(
            r.status == 405 || r.status == 404,
            "GET {action}: {}",
            r.status
        );
        let r = server.request(
            "POST",
            action,
            None,
            Some(body.as_bytes()),
            &[("cookie", &cookie), ("content-type", "text/plain")],
        );
        assert_eq!(r.status, 415, "text/plain {action}");
    }
    assert_eq!(state(), before);
    // With the token, from this origin, each goes through.
    let origin = format!("http://{}", server.host_port());
    for (action, body) in changes(&ada, &ada.csrf) {
        if action == "/ui/users/dev/delete" {
            continue;
        }
        let r = ada.post_form(
            action,
            &body,
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
        );
        assert!(
            r.status == 303 || r.status == 200,
            "{action}: {} {}",
            r.status,
            r.text()
        );
    }
    assert_eq!(user(&server, &root, "dev")["disabled"], true);
    assert_eq!(
        user(&server, &root, "dev")["policies"],
        json!(["everything"])
    );
    assert!(policy_source(&server, &root, "forged").is_some());
    assert!(!protected(&server, &root).contains("app/prod/*"));
    assert!(protected(&server, &root).contains("*/forged/*"));
}

/// The API operation an admin action's route stands for.
fn op_of(action: &str) -> &'static str {
    match action {
        "/ui/users/invite" => "invite.create",
        a if a.ends_with("/disable") => "user.disable",
        a if a.ends_with("/enable") => "user.enable",
        a if a.ends_with("/update") => "user.update",
        a if a.ends_with("/delete") => "user.delete",
        a if a.starts_with("/ui/policies") => "policy.write",
        "/ui/protected" => "protected.add",
        "/ui/protected/remove" => "protected.remove",
        "/ui/breakglass" => "breakglass.grant",
        a => panic!("{a}"),
    }
}

#[test]
fn irreversible_changes_need_the_name_typed_again() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = admin_server(dir.path());
    let ada = login(&server, "ada");
    let before = user(&server, &root, "dev");
    let post = |action: &str, confirm: &str| {
        let mut fields = vec![("csrf", ada.csrf.as_str()), ("confirm", confirm)];
        if action.ends_with("/update") {
            fields.push(("reset_totp", "1"));
        }
        ada.post_form(action, &form(&fields), &[])
    };
    for (action, confirm) in [
        ("/ui/users/dev/disable", ""),
        ("/ui/users/dev/disable", "ada"),
        ("/ui/users/dev/delete", "de"),
        ("/ui/users/dev/delete", "dev2"),
        ("/ui/users/dev/update", "nobody"),
    ] {
        let r = post(action, confirm);
        assert_eq!(r.status, 400, "{action} {confirm:?}: {}", r.text());
        assert!(r.text().contains("Nothing was changed"));
        assert_eq!(user(&server, &root, "dev"), before);
    }
    // The name in another spelling the core accepts is the same user.
    let r = post("/ui/users/dev/update", "DEV");
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(last_record(&server, "ui.user.update")["outcome"], "ok");
    let r = post("/ui/users/dev/delete", "dev");
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/ui/users"));
    assert!(
        user(&server, &root, "dev").is_null(),
        "removed with the typed name"
    );
    let r = ada.post_form(
        "/ui/protected/remove",
        &form(&[
            ("csrf", &ada.csrf),
            ("pattern", "app/prod/*"),
            ("confirm", "app/*"),
        ]),
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(protected(&server, &root).contains("app/prod/*"));
    // Enabling gives nothing away: no confirmation.
    join(&server, &root, "eve", &["dev-only"]);
    api(
        &server,
        &root,
        "POST",
        "/api/v1/sys/users/eve/disable",
        json!({}),
    );
    let r = ada.post_form("/ui/users/eve/enable", &form(&[("csrf", &ada.csrf)]), &[]);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/ui/users/eve"));
    assert_eq!(user(&server, &root, "eve")["disabled"], false);
}

#[test]
fn disabling_or_removing_a_person_ends_their_console_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = admin_server(dir.path());
    // ada removes oncall, so she must hold oncall's policy.
    api(
        &server,
        &root,
        "PATCH",
        "/api/v1/sys/users/ada",
        json!({ "policies": ["everything", "dev-only", "oncall"] }),
    );
    let ada = login(&server, "ada");
    let dev = login(&server, "dev");
    let oncall = login(&server, "oncall");
    assert_eq!(dev.get("/ui/?prefix=app/dev/").status, 200);
    let r = ada.post_form(
        "/ui/users/dev/disable",
        &form(&[("csrf", &ada.csrf), ("confirm", "dev")]),
        &[],
    );
    assert_eq!(r.status, 303);
    let r = dev.get("/ui/?prefix=app/dev/");
    assert_eq!(r.status, 303, "dev's session outlived the disable");
    let r = ada.post_form(
        "/ui/users/oncall/delete",
        &form(&[("csrf", &ada.csrf), ("confirm", "oncall")]),
        &[],
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        oncall.get("/ui/breakglass").status,
        303,
        "oncall's session outlived the removal"
    );
    // ada removes herself: her own session ends with her.
    let r = ada.post_form(
        "/ui/users/ada/delete",
        &form(&[("csrf", &ada.csrf), ("confirm", "ada")]),
        &[],
    );
    assert_eq!(r.status, 303);
    assert_eq!(ada.get("/ui/users").status, 303);
}

#[test]
fn an_invitation_code_is_shown_once_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = admin_server(dir.path());
    let ada = login(&server, "ada");
    let r = ada.post_form(
        "/ui/users/invite",
        &form(&[
            ("csrf", &ada.csrf),
            ("policies", "everything"),
            ("ttl", "1h"),
        ]),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let html = r.text();
    let start = html.find("id=\"invite-code\">").unwrap() + "id=\"invite-code\">".len();
    let code = html[start..start + html[start..].find('<').unwrap()].to_string();
    assert!(code.len() > 20, "{code}");
    let rec = last_record(&server, "ui.invite.create");
    assert_eq!(rec["outcome"], "ok");
    assert_eq!(rec["path"], "sys/invites");
    assert!(
        !server.audit_log_text().contains(&code),
        "the code in the audit log"
    );
    // The users page does not show it again.
    assert!(!ada.get("/ui/users").text().contains(&code));
    let body = json!({ "code": code, "user": "newcomer", "password": PASSWORD }).to_string();
    let r = server.http(
        "POST",
        "/api/v1/auth/invites/accept",
        None,
        Some(body.as_bytes()),
    );
    ok(&r, "accept");
    assert_eq!(
        user(&server, &root, "newcomer")["policies"],
        json!(["everything"])
    );
    let r = server.http(
        "POST",
        "/api/v1/auth/invites/accept",
        None,
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 400, "a code works once");
    // A policy the inviter does not hold, or a bad lifetime: refused,
    // with the API's message.
    let r = ada.post_form(
        "/ui/users/invite",
        &form(&[("csrf", &ada.csrf), ("policies", "no-such-policy")]),
        &[],
    );
    assert!(
        r.status == 400 || r.status == 404 || r.status == 403,
        "{}",
        r.status
    );
    assert!(r.text().contains("id=\"invite-error\"") && !r.text().contains("id=\"invite-code\""));
    let r = ada.post_form(
        "/ui/users/invite",
        &form(&[("csrf", &ada.csrf), ("ttl", "90d")]),
        &[],
    );
    assert_eq!(r.status, 400);
}

#[test]
fn a_person_asks_for_break_glass_and_reads_once_granted() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = admin_server(dir.path());
    let oncall = login(&server, "oncall");
    // Before: protected, refused.
    assert_eq!(
        oncall
            .reveal("app/prod/DB_PASSWORD", &oncall.csrf, &[])
            .status,
        403
    );
    // A reason too short, a lifetime too long, a path not protected, one
    // outside the policy: refused, nothing granted.
    for (path, reason, ttl) in [
        ("app/prod/DB_PASSWORD", "x", ""),
        ("app/prod/DB_PASSWORD", "the database is down", "5h"),
        ("app/dev/API_KEY", "the database is down", ""),
        ("other/prod/KEY", "the database is down", ""),
        ("", "the database is down", ""),
    ] {
        let r = oncall.post_form(
            "/ui/breakglass",
            &form(&[
                ("csrf", &oncall.csrf),
                ("path", path),
                ("reason", reason),
                ("ttl", ttl),
            ]),
            &[],
        );
        assert!(
            r.status == 400 || r.status == 403,
            "{path} {reason} {ttl}: {}",
            r.status
        );
        assert!(r.text().contains("id=\"breakglass-error\""), "{}", r.text());
        assert!(grants(&server, &root).is_empty());
    }
    let r = oncall.post_form(
        "/ui/breakglass",
        &form(&[
            ("csrf", &oncall.csrf),
            ("path", "app/prod/DB_PASSWORD"),
            ("reason", "incident 42: the database is down"),
            ("ttl", "30m"),
        ]),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("id=\"granted\""));
    let rec = last_record(&server, "ui.breakglass.grant");
    assert_eq!(rec["outcome"], "ok");
    assert_eq!(rec["decision"], "breakglass");
    assert_eq!(rec["path"], "app/prod/DB_PASSWORD");
    let g = grants(&server, &root);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0]["user"], "oncall");
    let r = oncall.reveal("app/prod/DB_PASSWORD", &oncall.csrf, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = last_record(&server, "ui.reveal");
    assert_eq!(rec["breakglass"], true, "{rec}");
    // An administrator sees the grant and its reason.
    let ada = login(&server, "ada");
    let page = ada.get("/ui/breakglass/grants").text();
    assert!(
        page.contains("incident 42: the database is down") && page.contains("<td>oncall</td>"),
        "{page}"
    );
    // ada herself holds no breakglass capability: refused like the API.
    let r = ada.post_form(
        "/ui/breakglass",
        &form(&[
            ("csrf", &ada.csrf),
            ("path", "app/prod/DB_PASSWORD"),
            ("reason", "I am curious"),
        ]),
        &[],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn policies_are_edited_through_the_same_parser() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = admin_server(dir.path());
    let ada = login(&server, "ada");
    let before = policy_source(&server, &root, "dev-only").unwrap();
    // A syntax error: refused with the parser's line and column, the text
    // comes back as typed, nothing is written.
    let broken = "path \"app/dev/*\" {\n  capabilities = [\"read\", \"fly\"]\n}";
    let r = ada.post_form(
        "/ui/policies/dev-only",
        &form(&[("csrf", &ada.csrf), ("source", broken)]),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let html = r.text();
    assert!(html.contains("id=\"policy-error\""), "{html}");
    assert!(html.contains("line 2"), "{html}");
    assert!(
        html.contains("capabilities = [&#34;read&#34;, &#34;fly&#34;]"),
        "{html}"
    );
    assert_eq!(policy_source(&server, &root, "dev-only").unwrap(), before);
    // A good edit, sent with a browser's CRLF line breaks.
    let good = "path \"app/dev/*\" {\r\n  capabilities = [\"read\", \"list\"]\r\n}\r\n";
    let revision = revision_of(&ada, "dev-only");
    let r = ada.post_form(
        "/ui/policies/dev-only",
        &form(&[
            ("csrf", &ada.csrf),
            ("revision", &revision),
            ("source", good),
        ]),
        &[],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/ui/policies/dev-only"));
    assert_eq!(
        policy_source(&server, &root, "dev-only").unwrap(),
        good.replace("\r\n", "\n")
    );
    // The built-in root policy and bad names are refused by the core.
    for name in ["root", "r00t", "a%2Fb", "%22%3E%3Cimg%20src%3Dx%3E"] {
        let r = ada.post_form(
            &format!("/ui/policies/{name}"),
            &form(&[("csrf", &ada.csrf), ("source", good)]),
            &[],
        );
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert!(!r.text().contains("<img"), "{name}");
    }
    // A token inside a comment is refused: it would be shown to readers.
    let leaky = format!(
        "# {}\npath \"x/*\" {{ capabilities = [\"read\"] }}",
        server.root_token()
    );
    let r = ada.post_form(
        "/ui/policies",
        &form(&[("csrf", &ada.csrf), ("name", "leaky"), ("source", &leaky)]),
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(!r.text().contains(&server.root_token()), "the token echoed");
    assert!(policy_source(&server, &root, "leaky").is_none());
    // Nor is one echoed from a break-glass reason or an invitation form.
    let oncall = login(&server, "oncall");
    let r = oncall.post_form(
        "/ui/breakglass",
        &form(&[
            ("csrf", &oncall.csrf),
            ("path", "app/prod/DB_PASSWORD"),
            ("reason", &leaky),
        ]),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.text().contains(&server.root_token()), "the token echoed");
    let r = ada.post_form(
        "/ui/users/invite",
        &form(&[("csrf", &ada.csrf), ("policies", &server.root_token())]),
        &[],
    );
    assert!(r.status >= 400);
    assert!(!r.text().contains(&server.root_token()), "the token echoed");
}

#[test]
fn hostile_text_is_escaped_on_admin_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = admin_server(dir.path());
    let img = "<img src=x onerror=alert(1)>";
    let script = "\"'></script><script>alert(1)</script>";
    // A policy whose comment holds markup.
    put_policy(
        &server,
        &root,
        "markup",
        &format!("# {script} {img}\npath \"app/dev/*\" {{ capabilities = [\"read\"] }}"),
    );
    // An inviter whose display name is markup: the invited user's
    // "invited by".
    let body = json!({ "display_name": img, "policies": ["everything"] }).to_string();
    let r = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(&root),
        Some(body.as_bytes()),
    );
    let hostile = ok(&r, "token")["token"].as_str().unwrap().to_string();
    join(&server, &hostile, "eve", &["everything"]);
    // A break-glass reason with markup.
    let oncall = login(&server, "oncall");
    let r = oncall.post_form(
        "/ui/breakglass",
        &form(&[
            ("csrf", &oncall.csrf),
            ("path", "app/prod/DB_PASSWORD"),
            ("reason", script),
        ]),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Unicode controls that reorder or hide text are refused where typed.
    for text in [
        "incident \u{202E}txt.exe",
        "incident\u{2066} hidden",
        "incident\u{0}",
    ] {
        let r = oncall.post_form(
            "/ui/breakglass",
            &form(&[
                ("csrf", &oncall.csrf),
                ("path", "app/prod/DB_PASSWORD"),
                ("reason", text),
            ]),
            &[],
        );
        assert_eq!(r.status, 400, "{text:?}: {}", r.text());
    }
    assert_eq!(grants(&server, &root).len(), 1);
    let ada = login(&server, "ada");
    let r = ada.post_form(
        "/ui/policies",
        &form(&[
            ("csrf", &ada.csrf),
            ("name", "bidi"),
            (
                "source",
                "# \u{202E}dnammoc\npath \"x/*\" { capabilities = [\"read\"] }",
            ),
        ]),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(policy_source(&server, &root, "bidi").is_none());
    let typed = "%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E%3C%2Fscript%3E";
    let pages = [
        "/ui/users".to_string(),
        "/ui/users/eve".to_string(),
        format!("/ui/users/{typed}"),
        "/ui/policies".to_string(),
        "/ui/policies/markup".to_string(),
        format!("/ui/policies/{typed}"),
        "/ui/breakglass".to_string(),
        "/ui/breakglass/grants".to_string(),
        format!("/ui/breakglass?path={typed}"),
        format!("/ui/rotation?prefix={typed}"),
        "/ui/protected".to_string(),
    ];
    for page in &pages {
        let r = ada.get(page);
        let html = r.text();
        assert_no_inline_code(&html, page);
        for raw in ["<img", "<script>alert", "</script><"] {
            assert!(!html.contains(raw), "{page}: {raw} unescaped in {html}");
        }
    }
    assert!(
        ada.get("/ui/users/eve")
            .text()
            .contains("&#60;img src=x onerror=alert(1)&#62;")
    );
    assert!(
        ada.get("/ui/policies/markup")
            .text()
            .contains("&#60;/script&#62;&#60;script&#62;alert(1)")
    );
    assert!(
        ada.get("/ui/breakglass/grants")
            .text()
            .contains("&#34;&#39;&#62;&#60;/script&#62;")
    );
    // A name typed into a form comes back escaped.
    let r = ada.post_form(
        "/ui/policies",
        &form(&[("csrf", &ada.csrf), ("name", script), ("source", "x")]),
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(!r.text().contains("<script>alert"));
}

#[test]
fn admin_actions_are_audited_like_their_api_twins() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = admin_server(dir.path());
    join(&server, &root, "gone1", &["dev-only"]);
    join(&server, &root, "gone2", &["dev-only"]);
    let ada = login(&server, "ada");
    let token = api_login(&server, "ada");
    let oncall = login(&server, "oncall");
    let oncall_token = api_login(&server, "oncall");
    let csrf = ada.csrf.clone();
    // (console action, API twin): method, URL, body.
    type Action = (&'static str, String, String);
    let ui = |m: &'static str, u: &str, b: String| -> Action { (m, u.to_string(), b) };
    let cases: Vec<(Action, Action, &str)> = vec![
        (
            ui("GET", "/ui/users", String::new()),
            ui("GET", "/api/v1/sys/users", String::new()),
            "user.list",
        ),
        (
            ui("GET", "/ui/users/dev", String::new()),
            ui("GET", "/api/v1/sys/users/dev", String::new()),
            "user.read",
        ),
        (
            ui(
                "POST",
                "/ui/users/invite",
                form(&[("csrf", &csrf), ("policies", "everything")]),
            ),
            ui(
                "POST",
                "/api/v1/auth/invites",
                json!({ "policies": ["everything"] }).to_string(),
            ),
            "invite.create",
        ),
        (
            ui(
                "POST",
                "/ui/users/dev/disable",
                form(&[("csrf", &csrf), ("confirm", "dev")]),
            ),
            ui("POST", "/api/v1/sys/users/dev/disable", "{}".into()),
            "user.disable",
        ),
        (
            ui("POST", "/ui/users/dev/enable", form(&[("csrf", &csrf)])),
            ui("POST", "/api/v1/sys/users/dev/enable", "{}".into()),
            "user.enable",
        ),
        (
            ui(
                "POST",
                "/ui/users/dev/update",
                form(&[("csrf", &csrf), ("policies", "everything")]),
            ),
            ui(
                "PATCH",
                "/api/v1/sys/users/dev",
                json!({ "policies": ["everything"] }).to_string(),
            ),
            "user.update",
        ),
        (
            ui(
                "POST",
                "/ui/users/gone1/delete",
                form(&[("csrf", &csrf), ("confirm", "gone1")]),
            ),
            ui("DELETE", "/api/v1/sys/users/gone1", String::new()),
            "user.delete",
        ),
        (
            ui("GET", "/ui/policies", String::new()),
            ui("GET", "/api/v1/sys/policies", String::new()),
            "policy.list",
        ),
        (
            ui("GET", "/ui/policies/dev-only", String::new()),
            ui("GET", "/api/v1/sys/policies/dev-only", String::new()),
            "policy.read",
        ),
        (
            ui(
                "POST",
                "/ui/policies/p1",
                form(&[
                    ("csrf", &csrf),
                    ("source", r#"path "x/*" { capabilities = ["read"] }"#),
                ]),
            ),
            ui(
                "PUT",
                "/api/v1/sys/policies/p1",
                json!({ "policy": r#"path "x/*" { capabilities = ["read"] }"# }).to_string(),
            ),
            "policy.write",
        ),
        (
            ui("GET", "/ui/protected", String::new()),
            ui("GET", "/api/v1/sys/protected", String::new()),
            "protected.list",
        ),
        (
            ui(
                "POST",
                "/ui/protected",
                form(&[("csrf", &csrf), ("pattern", "*/staging/*")]),
            ),
            ui(
                "POST",
                "/api/v1/sys/protected",
                json!({ "pattern": "*/qa/*" }).to_string(),
            ),
            "protected.add",
        ),
        (
            ui(
                "POST",
                "/ui/protected/remove",
                form(&[
                    ("csrf", &csrf),
                    ("pattern", "*/staging/*"),
                    ("confirm", "*/staging/*"),
                ]),
            ),
            ui(
                "DELETE",
                "/api/v1/sys/protected?pattern=*/qa/*",
                String::new(),
            ),
            "protected.remove",
        ),
        (
            ui("GET", "/ui/breakglass/grants", String::new()),
            ui("GET", "/api/v1/sys/breakglass", String::new()),
            "breakglass.list",
        ),
        (
            ui("GET", "/ui/rotation?prefix=app/", String::new()),
            ui("GET", "/api/v1/rotation/status/app/", String::new()),
            "rotation.status",
        ),
    ];
    let send_ui = |s: &Session, (m, u, b): &Action| {
        if *m == "GET" {
            s.get(u)
        } else {
            s.post_form(u, b, &[])
        }
    };
    let send_api = |t: &str, (m, u, b): &Action| {
        server.http(m, u, Some(t), (!b.is_empty()).then_some(b.as_bytes()))
    };
    let compare = |op: &str, ui_status: u16, api_status: u16| {
        assert!(
            ui_status < 400 && api_status < 400,
            "{op}: {ui_status} {api_status}"
        );
        let u = last_record(&server, &format!("ui.{op}"));
        let a = last_record(&server, op);
        for field in ["decision", "path", "outcome"] {
            assert_eq!(u[field], a[field], "{op} {field}");
        }
        assert_eq!(u["actor"]["name"], a["actor"]["name"], "{op}");
    };
    for (u, a, op) in &cases {
        if *op == "user.delete" {
            // Each removes its own user; the records differ by name only.
            let ur = send_ui(&ada, u);
            let ar = send_api(
                &token,
                &ui("DELETE", "/api/v1/sys/users/gone2", String::new()),
            );
            assert!(ur.status < 400 && ar.status < 400);
            assert_eq!(
                last_record(&server, "ui.user.delete")["path"],
                "sys/users/gone1"
            );
            assert_eq!(
                last_record(&server, "user.delete")["path"],
                "sys/users/gone2"
            );
            let _ = a;
            continue;
        }
        let ur = send_ui(&ada, u);
        let ar = send_api(&token, a);
        compare(op, ur.status, ar.status);
    }
    // Break-glass: a person with the capability, both ways.
    let body = form(&[
        ("csrf", &oncall.csrf),
        ("path", "app/prod/DB_PASSWORD"),
        ("reason", "incident by console"),
    ]);
    let ur = oncall.post_form("/ui/breakglass", &body, &[]);
    let ar = send_api(
        &oncall_token,
        &ui(
            "POST",
            "/api/v1/sys/breakglass",
            json!({ "path": "app/prod/DB_PASSWORD", "reason": "incident by api" }).to_string(),
        ),
    );
    compare("breakglass.grant", ur.status, ar.status);
    // A refusal, too, is the same decision both ways.
    assert_eq!(oncall.get("/ui/users/ada").status, 403);
    assert_eq!(
        server
            .http("GET", "/api/v1/sys/users/ada", Some(&oncall_token), None)
            .status,
        403
    );
    let u = last_record(&server, "ui.user.read");
    let a = last_record(&server, "user.read");
    for field in ["decision", "path", "outcome", "error"] {
        assert_eq!(u[field], a[field], "refusal {field}");
    }
}

#[test]
fn concurrent_changes_to_one_user_apply_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = admin_server(dir.path());
    let ada = login(&server, "ada");
    // Eight removals of one user at once: one succeeds, the others find
    // no user; none fails otherwise, and no session dies of it.
    let delete = form(&[("csrf", &ada.csrf), ("confirm", "dev")]);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| ada.post_form("/ui/users/dev/delete", &delete, &[]).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 404 || *s == 409),
        "{statuses:?}"
    );
    assert!(user(&server, &root, "dev").is_null());
    // Invitations made at once are distinct codes.
    let invite = form(&[("csrf", &ada.csrf), ("policies", "everything")]);
    let pages: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| s.spawn(|| ada.post_form("/ui/users/invite", &invite, &[]).text()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let codes: std::collections::HashSet<String> = pages
        .iter()
        .map(|html| {
            let start = html.find("id=\"invite-code\">").expect(html) + "id=\"invite-code\">".len();
            html[start..start + html[start..].find('<').unwrap()].to_string()
        })
        .collect();
    assert_eq!(codes.len(), 6);
    assert_eq!(ada.get("/ui/users").status, 200);
}

/// The console's policy form goes through the core's check: a person who
/// administers the policy they hold cannot rewrite it to grant themselves
/// everything, and the refusal is recorded.
#[test]
fn a_held_policy_cannot_be_widened_from_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = admin_server(dir.path());
    let team = "path \"sys/policies/team\" { capabilities = [\"admin\"] }\n\
                path \"app/dev/*\" { capabilities = [\"read\", \"list\"] }\n";
    put_policy(&server, &root, "team", team);
    join(&server, &root, "tess", &["team"]);
    let tess = login(&server, "tess");
    let everything = r#"path "*" { capabilities = ["read","list","create","update","delete","rotate","admin"] }"#;
    let r = tess.post_form(
        "/ui/policies/team",
        &form(&[("csrf", &tess.csrf), ("source", everything)]),
        &[],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let html = r.text();
    assert!(html.contains("id=\"policy-error\""), "{html}");
    assert!(
        html.contains("would grant more than this token has"),
        "{html}"
    );
    assert_eq!(policy_source(&server, &root, "team").unwrap(), team);
    let rec = last_record(&server, "ui.policy.write");
    assert_eq!(rec["outcome"], "denied", "{rec}");
    assert_eq!(rec["status"], 403, "{rec}");
    // The session gained nothing.
    assert_eq!(tess.get("/ui/users").status, 403);
}

/// "Create policy" never replaces one, and an edit saves only over the
/// revision it showed: a second editor's stale form gets 409 and changes
/// nothing (the first editor's deny stays).
#[test]
fn policy_create_never_replaces_and_edits_compare_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = admin_server(dir.path());
    let ada = login(&server, "ada");
    let before = policy_source(&server, &root, "dev-only").unwrap();
    let r = ada.post_form(
        "/ui/policies",
        &form(&[
            ("csrf", &ada.csrf),
            ("name", "dev-only"),
            ("source", r#"path "app/*" { capabilities = ["read"] }"#),
        ]),
        &[],
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("already exists"), "{}", r.text());
    assert_eq!(policy_source(&server, &root, "dev-only").unwrap(), before);
    assert_eq!(last_record(&server, "ui.policy.write")["status"], 409);
    // Two editors open the page; the first saves a change.
    let first = revision_of(&ada, "dev-only");
    let second = revision_of(&ada, "dev-only");
    assert!(!first.is_empty() && first == second);
    let with_deny = format!("# reviewed by the first editor\n{before}");
    let r = ada.post_form(
        "/ui/policies/dev-only",
        &form(&[
            ("csrf", &ada.csrf),
            ("revision", &first),
            ("source", &with_deny),
        ]),
        &[],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    // The second, from the old page, would undo it: refused, and the
    // form comes back with what was typed.
    let stale = format!("# the second editor's\n{before}");
    let r = ada.post_form(
        "/ui/policies/dev-only",
        &form(&[
            ("csrf", &ada.csrf),
            ("revision", &second),
            ("source", &stale),
        ]),
        &[],
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains("changed (or removed) by someone else"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("the second editor"), "{}", r.text());
    assert_eq!(
        policy_source(&server, &root, "dev-only").unwrap(),
        with_deny
    );
    assert_eq!(last_record(&server, "ui.policy.write")["status"], 409);
    // No revision: only a create, so an existing policy is not replaced.
    let r = ada.post_form(
        "/ui/policies/dev-only",
        &form(&[("csrf", &ada.csrf), ("source", &before)]),
        &[],
    );
    assert_eq!(r.status, 409, "{}", r.text());
    // A revision that is not a number changes nothing.
    let r = ada.post_form(
        "/ui/policies/dev-only",
        &form(&[
            ("csrf", &ada.csrf),
            ("revision", "1 OR 1=1"),
            ("source", &before),
        ]),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        policy_source(&server, &root, "dev-only").unwrap(),
        with_deny
    );
}

/// The console's policy forms never show a token typed unquoted into a
/// capabilities list (the parser's message filters it; the textarea is
/// blanked), on the create form or an edit form with a token-shaped name.
#[test]
fn policy_errors_never_show_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = admin_server(dir.path());
    let ada = login(&server, "ada");
    let token = server.root_token();
    let source = format!("path \"a/*\" {{ capabilities = [{token}] }}");
    let r = ada.post_form(
        "/ui/policies",
        &form(&[("csrf", &ada.csrf), ("name", "x"), ("source", &source)]),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("id=\"policy-error\""), "{}", r.text());
    assert!(!r.text().contains(&token), "the token was shown");
    // The URL's name is filtered too.
    let r = ada.post_form(
        &format!("/ui/policies/{token}"),
        &form(&[("csrf", &ada.csrf), ("source", "")]),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.text().contains(&token), "the token was shown");
    assert!(!server.audit_log_text().contains(&token));
}

/// axum runs the GET handler for HEAD; the record names the GET route's
/// operation, not `unmatched`, so a query by operation finds it.
#[test]
fn head_requests_are_recorded_as_the_page_they_ran() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = admin_server(dir.path());
    let ada = login(&server, "ada");
    let dev = login(&server, "dev");
    for (s, page, op, outcome) in [
        (&ada, "/ui/users", "ui.user.list", "ok"),
        (&ada, "/ui/policies/dev-only", "ui.policy.read", "ok"),
        (&dev, "/ui/users", "ui.user.list", "denied"),
    ] {
        let before = server.audit_records().len();
        let r = server.request(
            "HEAD",
            page,
            None,
            None,
            &[("cookie", &format!("coffer-ui={}", s.cookie))],
        );
        assert!(r.status == 200 || r.status == 403, "{page}: {}", r.status);
        let records = server.audit_records();
        let new: Vec<_> = records[before..]
            .iter()
            .filter(|r| r["type"] != "alert")
            .collect();
        assert!(!new.is_empty(), "{page}: no record");
        assert!(
            new.iter().all(|r| r["op"] != "unmatched"),
            "{page}: {new:?}"
        );
        let rec = new.last().unwrap();
        assert_eq!(rec["op"], op, "{rec}");
        assert_eq!(rec["outcome"], outcome, "{rec}");
    }
}

/// Review finding: the request form was the grants list's page, so a
/// person who may not list grants (the usual one who asks for break-glass)
/// got a 403 page, audited as a denied `ui.breakglass.list`, every time
/// they opened it; twenty loads in a minute raised `failure_burst`. The
/// form is now a page of its own that calls no use case; whether to link
/// to the grants is asked of the policy engine without a refused call.
#[test]
fn opening_the_breakglass_form_is_no_refusal_and_shows_grants_only_to_listers() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = admin_server(dir.path());
    // A live grant whose details must reach no one who may not list them.
    let marker = "incident 77: the marker reason";
    let oncall = login(&server, "oncall");
    let r = oncall.post_form(
        "/ui/breakglass",
        &form(&[
            ("csrf", &oncall.csrf),
            ("path", "app/prod/DB_PASSWORD"),
            ("reason", marker),
        ]),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The requester opens the form again and again.
    let before = server.audit_records().len();
    for i in 0..30 {
        let r = oncall.get("/ui/breakglass?path=app/prod/DB_PASSWORD");
        assert_eq!(r.status, 200, "load {i}: {}", r.text());
        let html = r.text();
        assert!(html.contains("id=\"breakglass\""), "{html}");
        assert!(html.contains("value=\"app/prod/DB_PASSWORD\""), "{html}");
        for absent in ["grants-link", "grants-hidden", "id=\"grants\"", marker] {
            assert!(!html.contains(absent), "load {i} shows {absent}: {html}");
        }
    }
    let new = server.audit_records().split_off(before);
    let forms: Vec<_> = new
        .iter()
        .filter(|r| r["op"] == "ui.breakglass.form")
        .collect();
    assert_eq!(forms.len(), 30, "{new:?}");
    for rec in &forms {
        assert_eq!(rec["outcome"], "ok", "{rec}");
        assert_eq!(rec["actor"]["name"], "oncall", "{rec}");
        // No decision was made: the form calls no use case.
        assert!(rec.get("decision").is_none(), "{rec}");
    }
    assert!(
        new.iter()
            .all(|r| r["outcome"] != "denied" && r["type"] != "alert"),
        "a denial or an alert (failure_burst) from opening the form: {new:?}"
    );
    // The grants page still refuses the requester, as the API does, with
    // no grant in it.
    let r = oncall.get("/ui/breakglass/grants");
    assert_eq!(r.status, 403);
    assert!(!r.text().contains(marker) && !r.text().contains("id=\"grants\""));
    assert_eq!(
        last_record(&server, "ui.breakglass.list")["outcome"],
        "denied"
    );

    // A person who may list: the form links to the grants, which show.
    let ada = login(&server, "ada");
    let page = ada.get("/ui/breakglass");
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("href=\"/ui/breakglass/grants\""),
        "{}",
        page.text()
    );
    assert!(!page.text().contains(marker), "the form lists nothing");
    let r = ada.get("/ui/breakglass/grants");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains(marker) && r.text().contains("<td>oncall</td>"),
        "{}",
        r.text()
    );
    let rec = last_record(&server, "ui.breakglass.list");
    assert_eq!(
        (&rec["outcome"], &rec["actor"]["name"]),
        (&json!("ok"), &json!("ada"))
    );

    // A person who may do neither: the form, and no grant anywhere.
    let dev = login(&server, "dev");
    for (page, status) in [("/ui/breakglass", 200), ("/ui/breakglass/grants", 403)] {
        let r = dev.get(page);
        assert_eq!(r.status, status, "{page}");
        let html = r.text();
        for absent in [marker, "oncall</td>", "grants-link", "DB_PASSWORD</td>"] {
            assert!(!html.contains(absent), "{page} shows {absent}: {html}");
        }
    }
}
