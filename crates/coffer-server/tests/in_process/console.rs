//! The web console's HTTP contract (`/ui/`), through the router in-process:
//! headers on every page, the session cookie, login and its CSRF defence,
//! CSRF on every state change, redirects that never leave the console,
//! pages that show only what the caller's policies allow (and audit each
//! refusal), escaping of every hostile name, and logout revoking the token.
//! The same flows in a real browser are in coffer-cli's `console.rs`.

use crate::common;

use common::{Mode, Response, Server, ok};
use serde_json::json;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";
pub(crate) const PASSWORD: &str = "console correct horse battery";

pub(crate) fn put_policy(server: &Server, root: &str, name: &str, source: &str) {
    let body = json!({ "policy": source }).to_string();
    let path = format!("/api/v1/sys/policies/{name}");
    ok(
        &server.http("PUT", &path, Some(root), Some(body.as_bytes())),
        name,
    );
}

pub(crate) fn put_secret(server: &Server, root: &str, path: &str, value: &str) -> u16 {
    let body = json!({ "value": value }).to_string();
    let url = format!("/api/v1/secrets/{}", encode_path(path));
    server
        .http("PUT", &url, Some(root), Some(body.as_bytes()))
        .status
}

/// Invites `user` with `policies` and accepts with the test password.
pub(crate) fn join(server: &Server, root: &str, user: &str, policies: &[&str]) {
    let body = json!({ "policies": policies }).to_string();
    let r = server.http(
        "POST",
        "/api/v1/auth/invites",
        Some(root),
        Some(body.as_bytes()),
    );
    let code = ok(&r, "invite")["code"].as_str().unwrap().to_string();
    let body = json!({ "code": code, "user": user, "password": PASSWORD }).to_string();
    let r = server.http(
        "POST",
        "/api/v1/auth/invites/accept",
        None,
        Some(body.as_bytes()),
    );
    ok(&r, "accept");
}

/// A dev server with a person `ada` who may do everything and a person
/// `dev` limited to `app/dev/`, and one secret in each environment.
pub(crate) fn console_server(dir: &std::path::Path) -> (Server, String) {
    let server = Server::start(dir, Mode::Dev);
    let root = server.root_token();
    put_policy(
        &server,
        &root,
        "everything",
        r#"path "*" { capabilities = ["read", "list", "create", "update", "delete", "rotate", "admin"] }"#,
    );
    put_policy(
        &server,
        &root,
        "dev-only",
        r#"path "app/dev/*" { capabilities = ["read", "list", "create", "update"] }"#,
    );
    join(&server, &root, "ada", &["everything"]);
    join(&server, &root, "dev", &["dev-only"]);
    assert_eq!(
        put_secret(&server, &root, "app/dev/API_KEY", "dev-value-1"),
        200
    );
    assert_eq!(
        put_secret(&server, &root, "app/prod/DB_PASSWORD", "prod-value-1"),
        200
    );
    (server, root)
}

/// Percent-encodes a secret path for a URL, keeping its slashes.
pub(crate) fn encode_path(p: &str) -> String {
    p.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Percent-encodes form fields.
pub(crate) fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of `name` in the response's `Set-Cookie` headers.
pub(super) fn set_cookie<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .find(|v| v.starts_with(&format!("{name}=")))
}

pub(super) fn cookie_value(set: &str) -> String {
    set.split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

/// The `value` of the hidden input `name` in a page.
pub(crate) fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

/// A browser's view of one console session.
pub(crate) struct Session<'a> {
    pub(crate) server: &'a Server,
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

impl Session<'_> {
    pub(crate) fn get(&self, path: &str) -> Response {
        self.server.request(
            "GET",
            path,
            None,
            None,
            &[("cookie", &format!("coffer-ui={}", self.cookie))],
        )
    }

    pub(crate) fn post_form(&self, path: &str, body: &str, extra: &[(&str, &str)]) -> Response {
        let cookie = format!("coffer-ui={}", self.cookie);
        let mut headers = vec![("cookie", cookie.as_str()), ("content-type", FORM)];
        headers.extend_from_slice(extra);
        self.server
            .request("POST", path, None, Some(body.as_bytes()), &headers)
    }

    pub(crate) fn reveal(&self, path: &str, csrf: &str, extra: &[(&str, &str)]) -> Response {
        let cookie = format!("coffer-ui={}", self.cookie);
        let mut headers = vec![("cookie", cookie.as_str()), ("x-coffer-csrf", csrf)];
        headers.extend_from_slice(extra);
        self.server.request(
            "POST",
            &format!("/ui/reveal/{path}"),
            None,
            Some(b"{}"),
            &headers,
        )
    }
}

/// The login form's cookie and field.
pub(super) fn login_form(server: &Server) -> (String, String) {
    let r = server.http("GET", "/ui/login", None, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = cookie_value(set_cookie(&r, "coffer-ui-login").expect("a login cookie"));
    let field = hidden(&r.text(), "csrf");
    assert_eq!(cookie, field);
    (cookie, field)
}

fn login_response(server: &Server, user: &str, extra: &[(&str, &str)]) -> Response {
    login_attempt(server, user, PASSWORD, extra)
}

/// A login with `password`.
pub(crate) fn login_response_with(server: &Server, user: &str, password: &str) -> Response {
    login_attempt(server, user, password, &[])
}

fn login_attempt(server: &Server, user: &str, password: &str, extra: &[(&str, &str)]) -> Response {
    let (cookie, csrf) = login_form(server);
    let body = form(&[
        ("csrf", &csrf),
        ("user", user),
        ("password", password),
        ("totp", ""),
        ("next", "/ui/"),
    ]);
    let cookie = format!("coffer-ui-login={cookie}");
    let mut headers = vec![("cookie", cookie.as_str()), ("content-type", FORM)];
    headers.extend_from_slice(extra);
    server.request("POST", "/ui/login", None, Some(body.as_bytes()), &headers)
}

pub(crate) fn login<'a>(server: &'a Server, user: &str) -> Session<'a> {
    let r = login_response(server, user, &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = cookie_value(set_cookie(&r, "coffer-ui").expect("a session cookie"));
    let page = Session {
        server,
        cookie,
        csrf: String::new(),
    };
    let form_page = page.get("/ui/new");
    assert_eq!(form_page.status, 200, "{}", form_page.text());
    let csrf = hidden(&form_page.text(), "csrf");
    Session { csrf, ..page }
}

/// No inline script, no event-handler attribute and no inline style in
/// a page.
pub(crate) fn assert_no_inline_code(html: &str, what: &str) {
    let lower = html.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("<script") {
        let tag_end = rest[i..].find('>').unwrap() + i;
        assert!(
            rest[i..tag_end].contains(" src=\"/ui/assets/"),
            "{what}: a script without our src"
        );
        assert!(
            rest[tag_end + 1..].starts_with("</script>"),
            "{what}: an inline script body"
        );
        rest = &rest[tag_end..];
    }
    // Every tag's attributes: no event handler, no inline style, no
    // `javascript:` URL. (Escaped text holds no `<`, and an escaped
    // attribute value no quote, so only real tags and attributes are
    // looked at.)
    let mut rest = lower.as_str();
    while let Some(i) = rest.find('<') {
        let tag = &rest[i + 1..];
        let name_end = tag
            .find(|c: char| c.is_whitespace() || c == '>')
            .unwrap_or(tag.len());
        assert_ne!(&tag[..name_end], "style", "{what}: a style element");
        let mut at = &tag[name_end..];
        loop {
            at = at.trim_start();
            if at.is_empty() || at.starts_with('>') || at.starts_with("/>") {
                break;
            }
            let end = at
                .find(|c: char| c.is_whitespace() || c == '=' || c == '>')
                .unwrap_or(at.len());
            let attr = &at[..end];
            assert!(
                !attr.starts_with("on") && attr != "style",
                "{what}: attribute {attr} in {}",
                &tag[..tag.find('>').unwrap_or(tag.len())]
            );
            at = &at[end..];
            if let Some(v) = at.strip_prefix('=') {
                let (value, after) = match v.chars().next() {
                    Some(q @ ('"' | '\'')) => {
                        let close = v[1..].find(q).unwrap() + 1;
                        (&v[1..close], &v[close + 1..])
                    }
                    _ => {
                        let e = v
                            .find(|c: char| c.is_whitespace() || c == '>')
                            .unwrap_or(v.len());
                        (&v[..e], &v[e..])
                    }
                };
                assert!(!value.contains("javascript:"), "{what}: {attr}={value}");
                at = after;
            }
        }
        rest = at;
    }
}

pub(crate) fn assert_page_headers(r: &Response, what: &str) {
    assert_eq!(r.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
}

pub(crate) fn last_record(server: &Server, op: &str) -> serde_json::Value {
    server
        .audit_records()
        .into_iter()
        .rev()
        .find(|r| r["op"] == op)
        .unwrap_or_else(|| panic!("no {op} record"))
}

#[test]
fn every_page_carries_the_headers_and_no_inline_code() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = console_server(dir.path());
    let login_page = server.http("GET", "/ui/login", None, None);
    assert_page_headers(&login_page, "login");
    assert_no_inline_code(&login_page.text(), "login");
    let ada = login(&server, "ada");
    for page in [
        "/ui/",
        "/ui/?q=API",
        "/ui/secret/app/dev/API_KEY",
        "/ui/edit/app/dev/API_KEY",
        "/ui/new",
        "/ui/readers/app/dev/API_KEY",
        "/ui/audit",
        "/ui/audit?outcome=denied&path=app/*",
        "/ui/secret/app/dev/NOPE",
    ] {
        let r = ada.get(page);
        assert!(r.status == 200 || r.status == 404, "{page}: {}", r.status);
        assert_page_headers(&r, page);
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        assert_no_inline_code(&r.text(), page);
    }
    for asset in ["/ui/assets/console.css", "/ui/assets/console.js"] {
        let r = server.http("GET", asset, None, None);
        assert_eq!(r.status, 200, "{asset}");
        assert_page_headers(&r, asset);
    }
    let js = server.http("GET", "/ui/assets/console.js", None, None);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
}

#[test]
fn login_starts_a_fresh_session_in_a_strict_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = console_server(dir.path());
    let login_page = server.http("GET", "/ui/login", None, None);
    let planted = set_cookie(&login_page, "coffer-ui-login").unwrap();
    assert!(
        planted.contains("HttpOnly")
            && planted.contains("SameSite=Strict")
            && planted.contains("Path=/ui")
    );
    // A session id chosen by an attacker before the login is never adopted.
    let (cookie, csrf) = login_form(&server);
    let body = form(&[("csrf", &csrf), ("user", "ada"), ("password", PASSWORD)]);
    let cookies = format!("coffer-ui-login={cookie}; coffer-ui=attacker-chosen");
    let r = server.request(
        "POST",
        "/ui/login",
        None,
        Some(body.as_bytes()),
        &[("cookie", &cookies), ("content-type", FORM)],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/ui/"));
    let set = set_cookie(&r, "coffer-ui").unwrap();
    assert_eq!(
        set.split_once(';').unwrap().1.trim(),
        "HttpOnly; SameSite=Strict; Path=/ui"
    );
    let sid = cookie_value(set);
    assert_ne!(sid, "attacker-chosen");
    assert!(sid.len() >= 43);
    // Neither the session id nor a token reaches the page or the audit log.
    let session = Session {
        server: &server,
        cookie: sid.clone(),
        csrf: String::new(),
    };
    let tree = session.get("/ui/");
    assert_eq!(tree.status, 200);
    assert!(!tree.text().contains(&sid));
    assert!(!tree.text().contains("cft_"));
    let log = std::fs::read_to_string(server.audit_log()).unwrap();
    assert!(!log.contains(&sid));
    assert!(!log.contains(PASSWORD));
    // The login and the pages are audited under the console's operations,
    // with the session's token tagged like a bearer token.
    let rec = last_record(&server, "ui.login");
    assert_eq!(rec["status"], 303);
    let rec = last_record(&server, "ui.tree");
    assert_eq!(rec["actor"]["name"], "ada");
    assert!(rec["token"].as_str().unwrap().starts_with("hmac"), "{rec}");
}

#[test]
fn a_failed_login_is_refused_generically_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = console_server(dir.path());
    for user in ["ada", "nobody"] {
        let (cookie, csrf) = login_form(&server);
        let body = form(&[
            ("csrf", &csrf),
            ("user", user),
            ("password", "wrong password here"),
        ]);
        let cookies = format!("coffer-ui-login={cookie}");
        let r = server.request(
            "POST",
            "/ui/login",
            None,
            Some(body.as_bytes()),
            &[("cookie", &cookies), ("content-type", FORM)],
        );
        assert_eq!(r.status, 401, "{user}");
        assert!(set_cookie(&r, "coffer-ui").is_none());
        assert!(
            r.text()
                .contains("Login failed: check the user name, the password and the one-time code.")
        );
        assert!(!r.text().contains(user), "the name typed is not echoed");
        let rec = last_record(&server, "ui.login");
        assert_eq!(rec["outcome"], "denied");
        assert!(rec["login"].as_str().unwrap().starts_with("hmac"));
    }
}

#[test]
fn login_csrf_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = console_server(dir.path());
    let (cookie, csrf) = login_form(&server);
    let body = |csrf: &str| form(&[("csrf", csrf), ("user", "ada"), ("password", PASSWORD)]);
    let good = format!("coffer-ui-login={cookie}");
    for (what, body, cookies, extra) in [
        ("no cookie", body(&csrf), String::new(), None),
        ("no field", body(""), good.clone(), None),
        (
            "another field",
            body("x".repeat(43).as_str()),
            good.clone(),
            None,
        ),
        (
            "foreign origin",
            body(&csrf),
            good.clone(),
            Some(("origin", "http://evil.example")),
        ),
        (
            "cross-site fetch",
            body(&csrf),
            good.clone(),
            Some(("sec-fetch-site", "cross-site")),
        ),
    ] {
        let mut headers = vec![("content-type", FORM)];
        if !cookies.is_empty() {
            headers.push(("cookie", cookies.as_str()));
        }
        headers.extend(extra);
        let r = server.request("POST", "/ui/login", None, Some(body.as_bytes()), &headers);
        assert_eq!(r.status, 403, "{what}");
        assert!(set_cookie(&r, "coffer-ui").is_none(), "{what}");
    }
}

#[test]
fn pages_need_a_session_and_next_never_leaves_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = console_server(dir.path());
    let r = server.http("GET", "/ui/", None, None);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/ui/login"));
    let r = server.http("GET", "/ui/secret/app/dev/API_KEY", None, None);
    assert_eq!(
        r.header("location"),
        Some("/ui/login?next=/ui/secret/app/dev/API_KEY")
    );
    let r = server.http("GET", "/ui", None, None);
    assert_eq!(r.header("location"), Some("/ui/"));
    let r = server.request(
        "GET",
        "/ui/",
        None,
        None,
        &[("cookie", "coffer-ui=made-up-session")],
    );
    assert_eq!(r.status, 303);
    let r = server.request(
        "POST",
        "/ui/reveal/app/dev/API_KEY",
        None,
        Some(b"{}"),
        &[("cookie", "coffer-ui=made-up-session")],
    );
    assert_eq!(r.status, 401);
    assert!(!r.text().contains("dev-value-1"));
    assert_eq!(last_record(&server, "ui.reveal")["status"], 401);
    // Open redirects through `next`.
    for next in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "/api/v1/sys/seal",
    ] {
        let page = server.http("GET", &format!("/ui/login?next={next}"), None, None);
        assert_eq!(hidden(&page.text(), "next"), "/ui/", "{next}");
        let (cookie, csrf) = login_form(&server);
        let body = form(&[
            ("csrf", &csrf),
            ("user", "ada"),
            ("password", PASSWORD),
            ("next", next),
        ]);
        let cookies = format!("coffer-ui-login={cookie}");
        let r = server.request(
            "POST",
            "/ui/login",
            None,
            Some(body.as_bytes()),
            &[("cookie", &cookies), ("content-type", FORM)],
        );
        assert_eq!(r.header("location"), Some("/ui/"), "{next}");
    }
    // A foreign Host is refused before any page (DNS rebinding).
    let r = server.request("GET", "/ui/login", None, None, &[("host", "evil.example")]);
    assert_eq!(r.status, 400);
}

#[test]
fn every_state_change_needs_the_form_token_and_this_origin() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = console_server(dir.path());
    let ada = login(&server, "ada");
    let origin = format!("http://{}", server.host_port());
    let save = |csrf: &str| {
        form(&[
            ("csrf", csrf),
            ("path", "app/dev/NEW"),
            ("value", "a value typed into the console"),
            ("cas", "0"),
        ])
    };
    for (what, body, extra) in [
        ("no token", save(""), vec![]),
        ("another token", save(&"A".repeat(43)), vec![]),
        (
            "foreign origin",
            save(&ada.csrf),
            vec![("origin", "http://evil.example")],
        ),
        (
            "null origin from another site",
            save(&ada.csrf),
            vec![("origin", "null"), ("sec-fetch-site", "cross-site")],
        ),
        (
            "cross-site",
            save(&ada.csrf),
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            "same-site",
            save(&ada.csrf),
            vec![("sec-fetch-site", "same-site")],
        ),
    ] {
        let r = ada.post_form("/ui/save", &body, &extra);
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        let read = server.http("GET", "/api/v1/secrets/app/dev/NEW", Some(&root), None);
        assert_eq!(read.status, 404, "{what} wrote");
    }
    // A cross-site form cannot even be sent as text/plain or multipart.
    let cookie = format!("coffer-ui={}", ada.cookie);
    for ct in ["text/plain", "multipart/form-data; boundary=x"] {
        let r = server.request(
            "POST",
            "/ui/save",
            None,
            Some(save(&ada.csrf).as_bytes()),
            &[("cookie", &cookie), ("content-type", ct)],
        );
        assert_eq!(r.status, 415, "{ct}");
    }
    let r = ada.post_form(
        "/ui/save",
        &save(&ada.csrf),
        &[("origin", &origin), ("sec-fetch-site", "same-origin")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/ui/secret/app/dev/NEW"));
    let read = server.http("GET", "/api/v1/secrets/app/dev/NEW", Some(&root), None);
    assert_eq!(ok(&read, "read")["value"], "a value typed into the console");
    // A stale form (check-and-set) changes nothing.
    let r = ada.post_form("/ui/save", &save(&ada.csrf), &[]);
    assert_eq!(r.status, 409);
    assert!(
        !r.text().contains("a value typed into the console"),
        "the value is never echoed"
    );
    // Logout, too, needs the token.
    let r = ada.post_form("/ui/logout", &form(&[("csrf", "")]), &[]);
    assert_eq!(r.status, 403);
    assert_eq!(ada.get("/ui/").status, 200, "the session survived");
}

#[test]
fn reveal_is_a_post_with_the_token_and_is_audited_as_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = console_server(dir.path());
    let ada = login(&server, "ada");
    let cookie = format!("coffer-ui={}", ada.cookie);
    let r = server.request(
        "GET",
        "/ui/reveal/app/dev/API_KEY",
        None,
        None,
        &[("cookie", &cookie)],
    );
    assert_eq!(r.status, 405, "no reveal by GET");
    let r = ada.reveal("app/dev/API_KEY", "wrong", &[]);
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("dev-value-1"));
    let r = ada.reveal(
        "app/dev/API_KEY",
        &ada.csrf,
        &[("origin", "http://evil.example")],
    );
    assert_eq!(r.status, 403);
    let r = ada.reveal(
        "app/dev/API_KEY",
        &ada.csrf,
        &[("sec-fetch-site", "same-origin")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["value"], "dev-value-1");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let rec = last_record(&server, "ui.reveal");
    assert_eq!(rec["decision"], "read");
    assert_eq!(rec["path"], "app/dev/API_KEY");
    assert_eq!(rec["actor"]["name"], "ada");
    assert_eq!(rec["outcome"], "ok");
    assert!(!serde_json::to_string(&rec).unwrap().contains("dev-value-1"));
    // Who read it: the console's readers page shows ada.
    let readers = ada.get("/ui/readers/app/dev/API_KEY");
    assert_eq!(readers.status, 200);
    assert!(
        readers.text().contains("<td>ada</td>"),
        "{}",
        readers.text()
    );
    // The strength meter takes the value in a POST body and never echoes it.
    let r = server.request(
        "POST",
        "/ui/strength",
        None,
        Some(br#"{"value":"password1"}"#),
        &[("cookie", &cookie), ("x-coffer-csrf", &ada.csrf)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["weak"], true);
    assert!(!r.text().contains("password1"));
    let r = server.request(
        "POST",
        "/ui/strength",
        None,
        Some(br#"{"value":"password1"}"#),
        &[("cookie", &cookie)],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn a_limited_user_sees_only_their_paths_and_other_urls_are_refused_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = console_server(dir.path());
    let dev = login(&server, "dev");
    let tree = dev.get("/ui/");
    assert_eq!(
        tree.status,
        403,
        "dev may not list the root: {}",
        tree.text()
    );
    let tree = dev.get("/ui/?prefix=app/dev/");
    assert_eq!(tree.status, 200);
    assert!(tree.text().contains("app/dev/API_KEY"));
    assert!(!tree.text().contains("prod"));
    for page in [
        "/ui/secret/app/prod/DB_PASSWORD",
        "/ui/edit/app/prod/DB_PASSWORD",
        "/ui/?prefix=app/prod/",
        "/ui/audit",
        "/ui/readers/app/dev/API_KEY",
    ] {
        let r = dev.get(page);
        assert_eq!(r.status, 403, "{page}");
        assert!(!r.text().contains("prod-value-1"));
    }
    let rec = last_record(&server, "ui.secret");
    assert_eq!(rec["outcome"], "denied");
    assert_eq!(rec["path"], "app/prod/DB_PASSWORD");
    let r = dev.reveal("app/prod/DB_PASSWORD", &dev.csrf, &[]);
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("prod-value-1"));
    assert_eq!(last_record(&server, "ui.reveal")["outcome"], "denied");
    let r = dev.post_form(
        "/ui/save",
        &form(&[
            ("csrf", &dev.csrf),
            ("path", "app/prod/DB_PASSWORD"),
            ("value", "overwritten"),
            ("cas", "1"),
        ]),
        &[],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn hostile_text_is_escaped_wherever_it_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = console_server(dir.path());
    // Paths cannot hold markup at all (letters, digits and `_-.@:=,~`).
    for p in ["app/dev/<script>x", "app/dev/\"><img src=x>", "app/dev/'x'"] {
        assert_eq!(put_secret(&server, &root, p, "v"), 400, "{p}");
    }
    // Free text can: a token's display name (shown as the author of a
    // version, a reader and an actor), a compromise reason, and whatever a
    // person types into a filter.
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
    ok(
        &server.http(
            "GET",
            "/api/v1/secrets/app/dev/API_KEY",
            Some(&hostile),
            None,
        ),
        "read",
    );
    let body = json!({ "reason": "\"><script>alert(1)</script>" }).to_string();
    let r = server.http(
        "POST",
        "/api/v1/compromise/app/dev/API_KEY",
        Some(&root),
        Some(body.as_bytes()),
    );
    ok(&r, "compromise");
    let ada = login(&server, "ada");
    let typed = "%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E";
    let pages = [
        "/ui/secret/app/dev/API_KEY".to_string(),
        "/ui/readers/app/dev/API_KEY".to_string(),
        "/ui/audit".to_string(),
        format!("/ui/audit?actor={typed}"),
        format!("/ui/audit?path={typed}&since={typed}"),
        format!("/ui/?q={typed}"),
        format!("/ui/new?prefix={typed}"),
        format!("/ui/login?next={typed}"),
    ];
    for page in &pages {
        let r = ada.get(page);
        let html = r.text();
        assert_no_inline_code(&html, page);
        for raw in ["<img", "<script>alert"] {
            assert!(!html.contains(raw), "{page}: {raw} unescaped in {html}");
        }
    }
    let secret = ada.get("/ui/secret/app/dev/API_KEY").text();
    assert!(
        secret.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "{secret}"
    );
    assert!(
        secret.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{secret}"
    );
    assert!(secret.contains("marked compromised"));
    let readers = ada.get("/ui/readers/app/dev/API_KEY").text();
    assert!(readers.contains("&#60;img"), "{readers}");
}

#[test]
fn logout_revokes_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = console_server(dir.path());
    let ada = login(&server, "ada");
    let tokens = |server: &Server| {
        ok(
            &server.http("GET", "/api/v1/auth/tokens", Some(&root), None),
            "tokens",
        )
        .to_string()
    };
    let before = tokens(&server);
    let r = ada.post_form("/ui/logout", &form(&[("csrf", &ada.csrf)]), &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/ui/login"));
    let cleared = set_cookie(&r, "coffer-ui").unwrap();
    assert!(cleared.contains("Max-Age=0"));
    assert_eq!(last_record(&server, "ui.logout")["actor"]["name"], "ada");
    assert_eq!(ada.get("/ui/").status, 303, "the session ended");
    let after = tokens(&server);
    let count = |s: &str| s.matches("\"user\":\"ada\"").count();
    assert_eq!(count(&after) + 1, count(&before), "{before}\n{after}");
}

#[test]
fn oversized_forms_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _root) = console_server(dir.path());
    let ada = login(&server, "ada");
    let big = format!(
        "csrf={}&path=app/dev/BIG&value={}",
        ada.csrf,
        "a".repeat(4 << 20)
    );
    let r = ada.post_form("/ui/save", &big, &[]);
    assert_eq!(r.status, 413);
}
