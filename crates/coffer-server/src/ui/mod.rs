//! The web console at `/ui/`: server-rendered pages for people who do not
//! live in a terminal.
//!
//! Every page calls the same `Coffer` use cases as the API handlers, with
//! the session's token as the actor, so the authorization decision and its
//! audit record are the API's own; this module never decides access. Its
//! requests pass the same request layer as the API's (edge checks, audit
//! record before the response leaves), each under an operation of
//! [`ROUTES`].
//!
//! What the console adds is what a browser needs:
//! - sessions (`session.rs`): an opaque id in an `HttpOnly`, `SameSite=Strict`
//!   cookie mapped on the server to the login's token, with idle and absolute
//!   timeouts; logout revokes the token;
//! - CSRF defence on every state change: forms only POST, each carries the
//!   session's form token (compared in constant time), and a request whose
//!   `Origin` is another site or whose `Sec-Fetch-Site` is not
//!   `same-origin` is refused; the login form uses a double-submit token of
//!   its own (login CSRF);
//! - headers on every page: a strict Content-Security-Policy (no inline
//!   script or style anywhere), `frame-ancestors 'none'`, no referrer; the
//!   request layer adds `Cache-Control: no-store` and `nosniff`.
//!
//! Pages are askama templates (`templates/ui/`), compiled into the binary
//! and HTML-escaped by default; the stylesheet and the script are embedded
//! with `include_str!`.

mod admin;
mod pages;
mod secret_actions;
mod send;
pub(crate) mod session;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use coffer_api::routes::{Op, Requires};

use crate::state::AppState;

pub use session::{DEFAULT_ABSOLUTE_SECS, DEFAULT_IDLE_SECS};

/// How the console's sessions behave.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleOptions {
    /// Seconds a session may go unused before it ends.
    pub idle_timeout_secs: u64,
    /// Seconds after login at which a session ends, however busy.
    pub absolute_timeout_secs: u64,
    /// Browsers reach the server over HTTPS even though this listener may
    /// not (a TLS-terminating proxy in front; `api_addr` is `https://...`):
    /// cookies are then `Secure` too, and HSTS is sent.
    pub public_https: bool,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions {
            idle_timeout_secs: DEFAULT_IDLE_SECS,
            absolute_timeout_secs: DEFAULT_ABSOLUTE_SECS,
            public_https: false,
        }
    }
}

/// The console's own state, shared by its handlers.
pub(crate) struct Console {
    pub(crate) sessions: session::Sessions,
    /// Whether browsers reach the console over HTTPS (this listener's TLS,
    /// or a proxy's: [`ConsoleOptions::public_https`]): cookies are then
    /// `Secure` and named with the `__Host-` prefix, and HSTS is sent.
    pub(crate) tls: bool,
}

/// One page or action of the console: its method, path template and audit
/// operation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UiRoute {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) op: Op,
}

const fn route(method: &'static str, path: &'static str, name: &'static str) -> UiRoute {
    UiRoute {
        method,
        path,
        op: Op {
            name,
            // The console's session check comes first; every decision about
            // a secret is the core's, as for the API.
            requires: Requires::Nothing,
            audited: true,
        },
    }
}

pub(crate) const ROOT: UiRoute = route("GET", "/ui", "ui.root");
pub(crate) const TREE: UiRoute = route("GET", "/ui/", "ui.tree");
pub(crate) const LOGIN_FORM: UiRoute = route("GET", "/ui/login", "ui.login_form");
pub(crate) const LOGIN: UiRoute = route("POST", "/ui/login", "ui.login");
pub(crate) const LOGOUT: UiRoute = route("POST", "/ui/logout", "ui.logout");
pub(crate) const SECRET: UiRoute = route("GET", "/ui/secret/{*path}", "ui.secret");
pub(crate) const REVEAL: UiRoute = route("POST", "/ui/reveal/{*path}", "ui.reveal");
pub(crate) const NEW_FORM: UiRoute = route("GET", "/ui/new", "ui.new_form");
pub(crate) const EDIT_FORM: UiRoute = route("GET", "/ui/edit/{*path}", "ui.edit_form");
pub(crate) const SAVE: UiRoute = route("POST", "/ui/save", "ui.save");
pub(crate) const STRENGTH: UiRoute = route("POST", "/ui/strength", "ui.strength");
pub(crate) const READERS: UiRoute = route("GET", "/ui/readers/{*path}", "ui.readers");
pub(crate) const AUDIT: UiRoute = route("GET", "/ui/audit", "ui.audit");
pub(crate) const STYLE: UiRoute = route("GET", "/ui/assets/console.css", "ui.asset");
pub(crate) const SCRIPT: UiRoute = route("GET", "/ui/assets/console.js", "ui.asset");

pub(crate) const ROLLBACK_FORM: UiRoute = route("GET", "/ui/rollback/{*path}", "ui.rollback_form");
/// Audited under the API's operation: the same use case as `coffer rollback`.
pub(crate) const ROLLBACK: UiRoute = route("POST", "/ui/rollback/{*path}", "secret.rollback");
pub(crate) const ENV: UiRoute = route("GET", "/ui/env", "ui.env");
/// Audited under the API's operation: the same use case as `coffer env promote`.
pub(crate) const PROMOTE_ENV: UiRoute = route("POST", "/ui/env/promote", "secret.promote_env");
pub(crate) const SEND: UiRoute = route("GET", "/ui/send", "ui.send");
/// Audited under the API's operation: the same use case as `coffer share create`.
pub(crate) const SHARE_CREATE: UiRoute = route("POST", "/ui/shares", "share.create");
pub(crate) const SEND_SCRIPT: UiRoute = route("GET", "/ui/assets/send.js", "ui.asset");

/// The console's actions audited under the API's operation for the same
/// use case, rather than a `ui.*` name of their own.
#[cfg(test)]
pub(crate) const API_OPS: &[&UiRoute] = &[&ROLLBACK, &PROMOTE_ENV, &SHARE_CREATE];
// The administration pages (`admin.rs`): each operation is `ui.` and the
// operation of the API route whose use case it calls (`admin::API_TWINS`).
pub(crate) const USERS: UiRoute = route("GET", "/ui/users", "ui.user.list");
pub(crate) const INVITE: UiRoute = route("POST", "/ui/users/invite", "ui.invite.create");
pub(crate) const USER: UiRoute = route("GET", "/ui/users/{name}", "ui.user.read");
pub(crate) const USER_DISABLE: UiRoute =
    route("POST", "/ui/users/{name}/disable", "ui.user.disable");
pub(crate) const USER_ENABLE: UiRoute = route("POST", "/ui/users/{name}/enable", "ui.user.enable");
pub(crate) const USER_UPDATE: UiRoute = route("POST", "/ui/users/{name}/update", "ui.user.update");
pub(crate) const USER_DELETE: UiRoute = route("POST", "/ui/users/{name}/delete", "ui.user.delete");
pub(crate) const POLICIES: UiRoute = route("GET", "/ui/policies", "ui.policy.list");
pub(crate) const POLICY_CREATE: UiRoute = route("POST", "/ui/policies", "ui.policy.write");
pub(crate) const POLICY: UiRoute = route("GET", "/ui/policies/{name}", "ui.policy.read");
pub(crate) const POLICY_WRITE: UiRoute = route("POST", "/ui/policies/{name}", "ui.policy.write");
pub(crate) const PROTECTED: UiRoute = route("GET", "/ui/protected", "ui.protected.list");
pub(crate) const PROTECT: UiRoute = route("POST", "/ui/protected", "ui.protected.add");
pub(crate) const UNPROTECT: UiRoute = route("POST", "/ui/protected/remove", "ui.protected.remove");
/// The request form alone: any signed-in person may open it, and it calls
/// no use case (it offers the link to the live grants only to whoever may
/// list them), so it has an operation of its own and no API twin.
pub(crate) const BREAKGLASS: UiRoute = route("GET", "/ui/breakglass", "ui.breakglass.form");
pub(crate) const BREAKGLASS_GRANTS: UiRoute =
    route("GET", "/ui/breakglass/grants", "ui.breakglass.list");
pub(crate) const BREAKGLASS_GRANT: UiRoute = route("POST", "/ui/breakglass", "ui.breakglass.grant");
pub(crate) const ROTATION: UiRoute = route("GET", "/ui/rotation", "ui.rotation.status");

/// Every route of the console.
pub(crate) const ROUTES: &[&UiRoute] = &[
    &ROOT,
    &TREE,
    &LOGIN_FORM,
    &LOGIN,
    &LOGOUT,
    &SECRET,
    &REVEAL,
    &NEW_FORM,
    &EDIT_FORM,
    &SAVE,
    &STRENGTH,
    &READERS,
    &AUDIT,
    &STYLE,
    &SCRIPT,
    &ROLLBACK_FORM,
    &ROLLBACK,
    &ENV,
    &PROMOTE_ENV,
    &SEND,
    &SHARE_CREATE,
    &SEND_SCRIPT,
    &USERS,
    &INVITE,
    &USER,
    &USER_DISABLE,
    &USER_ENABLE,
    &USER_UPDATE,
    &USER_DELETE,
    &POLICIES,
    &POLICY_CREATE,
    &POLICY,
    &POLICY_WRITE,
    &PROTECTED,
    &PROTECT,
    &UNPROTECT,
    &BREAKGLASS,
    &BREAKGLASS_GRANTS,
    &BREAKGLASS_GRANT,
    &ROTATION,
];

/// The console route a request matched, from its method and the template
/// axum matched. axum answers HEAD with the GET handler (which runs, and
/// may make core calls), so HEAD is recorded as the GET route's operation.
pub(crate) fn find(method: &str, matched: &str) -> Option<&'static UiRoute> {
    let method = if method == "HEAD" { "GET" } else { method };
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == matched)
        .copied()
}

/// Whether a URL path is the console's.
pub(crate) fn is_ui(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The console's routes, to be merged into the server's router (inside the
/// request layer, so that they are checked and audited like the API).
pub(crate) fn routes(options: ConsoleOptions, tls: bool) -> Router<AppState> {
    // Review finding: behind a TLS-terminating proxy the listener is
    // plain, and the cookie went out without `Secure`.
    let tls = tls || options.public_https;
    let console = Arc::new(Console {
        sessions: session::Sessions::new(options.idle_timeout_secs, options.absolute_timeout_secs),
        tls,
    });
    Router::new()
        .route(ROOT.path, get(pages::root))
        .route(TREE.path, get(pages::tree))
        .route(LOGIN_FORM.path, get(pages::login_form))
        .route(LOGIN.path, post(pages::login))
        .route(LOGOUT.path, post(pages::logout))
        .route(SECRET.path, get(pages::secret))
        .route(REVEAL.path, post(pages::reveal))
        .route(NEW_FORM.path, get(pages::new_form))
        .route(EDIT_FORM.path, get(pages::edit_form))
        .route(SAVE.path, post(pages::save))
        .route(STRENGTH.path, post(pages::strength))
        .route(READERS.path, get(pages::readers))
        .route(AUDIT.path, get(pages::audit))
        .route(STYLE.path, get(pages::style))
        .route(SCRIPT.path, get(pages::script))
        .route(
            ROLLBACK.path,
            get(secret_actions::rollback_form).post(secret_actions::rollback),
        )
        .route(ENV.path, get(secret_actions::env))
        .route(PROMOTE_ENV.path, post(secret_actions::promote))
        .route(SEND.path, get(send::send_page))
        .route(SHARE_CREATE.path, post(send::create))
        .route(SEND_SCRIPT.path, get(send::script))
        .route(USERS.path, get(admin::users))
        .route(INVITE.path, post(admin::invite))
        .route(USER.path, get(admin::user))
        .route(USER_DISABLE.path, post(admin::user_disable))
        .route(USER_ENABLE.path, post(admin::user_enable))
        .route(USER_UPDATE.path, post(admin::user_update))
        .route(USER_DELETE.path, post(admin::user_delete))
        .route(
            POLICIES.path,
            get(admin::policies).post(admin::policy_create),
        )
        .route(POLICY.path, get(admin::policy).post(admin::policy_write))
        .route(PROTECTED.path, get(admin::protected).post(admin::protect))
        .route(UNPROTECT.path, post(admin::unprotect))
        .route(
            BREAKGLASS.path,
            get(admin::breakglass).post(admin::breakglass_grant),
        )
        .route(BREAKGLASS_GRANTS.path, get(admin::breakglass_grants))
        .route(ROTATION.path, get(admin::rotation))
        .layer(axum::middleware::map_response(
            move |resp: Response| async move {
                let mut resp = page_headers(resp).await;
                if tls {
                    resp.headers_mut().insert(
                        header::STRICT_TRANSPORT_SECURITY,
                        HeaderValue::from_static("max-age=31536000"),
                    );
                }
                resp
            },
        ))
        .layer(axum::Extension(console))
}

/// The Content-Security-Policy of every console response: nothing but this
/// server's own script, style and images, no inline code, no framing.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Marks a response the console's own handlers made (with its page
/// headers), so that the request layer leaves it as it is.
#[derive(Clone, Copy)]
pub(crate) struct ConsoleAnswered;

/// A console URL's error answered outside its handlers (no such page,
/// too large a body, too many attempts, ... : the router's fallback and
/// the request layer's refusals) becomes the console's error page, with
/// its page headers, instead of the API's JSON (review finding). Answers
/// of the console's handlers (their pages, and the JSON the console's
/// script asks for) are left alone.
pub(crate) fn console_error(resp: Response) -> Response {
    if resp.extensions().get::<ConsoleAnswered>().is_some()
        || !resp.status().is_client_error() && !resp.status().is_server_error()
    {
        return resp;
    }
    let status = resp.status();
    let message = match status.as_u16() {
        404 => "There is no such page in the console.",
        405 => "That page does not take this kind of request.",
        413 => "The request is larger than the server accepts.",
        429 => "Too many attempts. Wait a while before trying again.",
        503 => "The server cannot answer right now. Try again later.",
        _ => "The request was refused.",
    };
    let (parts, _) = resp.into_parts();
    let mut page = pages::plain_error_page(status, message);
    // Keep what the refusal said to the audit layer and to clients
    // (`Retry-After`, `Connection: close`).
    for name in [header::RETRY_AFTER, header::CONNECTION] {
        if let Some(v) = parts.headers.get(&name) {
            page.headers_mut().insert(name, v.clone());
        }
    }
    *page.extensions_mut() = parts.extensions;
    let mut page = page_headers_sync(page);
    let h = page.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    page.extensions_mut().insert(ConsoleAnswered);
    page
}

async fn page_headers(resp: Response) -> Response {
    let mut resp = page_headers_sync(resp);
    resp.extensions_mut().insert(ConsoleAnswered);
    resp
}

fn page_headers_sync(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// The session cookie's name: with the `__Host-` prefix under TLS (which
/// the browser accepts only `Secure`, for `/`, without a `Domain`).
pub(crate) fn session_cookie(tls: bool) -> &'static str {
    if tls { "__Host-coffer-ui" } else { "coffer-ui" }
}

/// The login form's double-submit cookie.
pub(crate) fn login_cookie(tls: bool) -> &'static str {
    if tls {
        "__Host-coffer-ui-login"
    } else {
        "coffer-ui-login"
    }
}

/// A `Set-Cookie` value for the console. Without TLS the cookie is scoped
/// to `/ui`; under TLS the `__Host-` prefix requires `Path=/` (the API
/// never reads cookies, so nothing outside the console sees a use for it).
pub(crate) fn set_cookie(tls: bool, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict");
    if tls {
        c.push_str("; Secure; Path=/");
    } else {
        c.push_str("; Path=/ui");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).expect("cookie names and base64url values are valid header bytes")
}

/// The value of the cookie `name`, if the request carries exactly one.
/// Two cookies of one name (one planted for a wider path or a parent
/// domain) are refused rather than guessed between.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for pair in value.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == name
            {
                if found.is_some() {
                    return None;
                }
                found = Some(v);
            }
        }
    }
    found
}

/// Why a state-changing request looks cross-site, if it does: a
/// `Sec-Fetch-Site` other than `same-origin`, or an `Origin` that is not
/// this server's.
///
/// Browsers that send `Sec-Fetch-Site` are judged by it alone: under the
/// console's `Referrer-Policy: no-referrer` they send `Origin: null` even
/// for this server's own forms. A browser without it is judged by its
/// `Origin`, and `Origin: null` is refused there: any page can make its
/// requests carry it, so it proves nothing (review finding; such a browser
/// is too old for the console anyway). Whatever passes here still needs
/// the session's form token; a request with neither header (not a
/// browser's) is left to the token alone.
pub(crate) fn cross_site(headers: &HeaderMap, tls: bool) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return (site.as_bytes() != b"same-origin").then_some("the request came from another site");
    }
    if headers
        .get(header::ORIGIN)
        .is_some_and(|o| o.as_bytes() == b"null")
    {
        return Some("the request's origin is hidden (Origin: null)");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        // The edge has already checked that Host names this server.
        let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
        let scheme: &[u8] = if tls { b"https://" } else { b"http://" };
        let expected = host.map(|h| [scheme, h].concat());
        if expected.as_deref() != Some(origin.as_bytes()) {
            return Some("the request came from another origin");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cookies_are_found_once_or_not_at_all() {
        let h = headers(&[("cookie", "a=1; coffer-ui=abc; b=2")]);
        assert_eq!(cookie(&h, "coffer-ui"), Some("abc"));
        assert_eq!(cookie(&h, "coffer"), None);
        let planted = headers(&[("cookie", "coffer-ui=mine"), ("cookie", "coffer-ui=theirs")]);
        assert_eq!(cookie(&planted, "coffer-ui"), None);
        let twice = headers(&[("cookie", "coffer-ui=a; coffer-ui=b")]);
        assert_eq!(cookie(&twice, "coffer-ui"), None);
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        let host = ("host", "127.0.0.1:8200");
        for (pairs, tls, refused) in [
            (vec![host], false, false),
            (
                vec![host, ("origin", "http://127.0.0.1:8200")],
                false,
                false,
            ),
            (
                vec![host, ("origin", "https://127.0.0.1:8200")],
                false,
                true,
            ),
            (vec![host, ("origin", "http://127.0.0.1:8200")], true, true),
            (vec![host, ("origin", "http://evil.example")], false, true),
            (vec![host, ("origin", "null")], false, true),
            (
                vec![host, ("origin", "null"), ("sec-fetch-site", "same-origin")],
                false,
                false,
            ),
            (
                vec![host, ("origin", "null"), ("sec-fetch-site", "cross-site")],
                false,
                true,
            ),
            (
                vec![
                    host,
                    ("origin", "http://evil.example"),
                    ("sec-fetch-site", "same-origin"),
                ],
                false,
                false,
            ),
            (vec![host, ("sec-fetch-site", "same-origin")], false, false),
            (vec![host, ("sec-fetch-site", "same-site")], false, true),
            (vec![host, ("sec-fetch-site", "cross-site")], false, true),
            (vec![host, ("sec-fetch-site", "none")], false, true),
            (vec![("origin", "http://127.0.0.1:8200")], false, true),
        ] {
            assert_eq!(
                cross_site(&headers(&pairs), tls).is_some(),
                refused,
                "{pairs:?} tls={tls}"
            );
        }
    }

    #[test]
    fn cookies_carry_their_attributes() {
        let plain = set_cookie(false, "coffer-ui", "v", None);
        assert_eq!(
            plain.to_str().unwrap(),
            "coffer-ui=v; HttpOnly; SameSite=Strict; Path=/ui"
        );
        let tls = set_cookie(true, session_cookie(true), "v", Some(0));
        assert_eq!(
            tls.to_str().unwrap(),
            "__Host-coffer-ui=v; HttpOnly; SameSite=Strict; Secure; Path=/; Max-Age=0"
        );
    }

    #[test]
    fn every_route_is_the_consoles_and_named_once() {
        let mut seen = std::collections::BTreeSet::new();
        for r in ROUTES {
            assert!(is_ui(r.path), "{}", r.path);
            if API_OPS.contains(r) {
                // The API's own operation for the same use case.
                assert!(
                    coffer_api::routes::ALL
                        .iter()
                        .any(|api| api.op.name == r.op.name),
                    "{}",
                    r.op.name
                );
            } else {
                assert!(r.op.name.starts_with("ui."), "{}", r.op.name);
            }
            assert!(seen.insert((r.method, r.path)), "{} {}", r.method, r.path);
            assert_eq!(find(r.method, r.path).unwrap().path, r.path);
        }
        assert!(!is_ui("/uix"));
        assert!(!is_ui("/api/v1/ui/"));
    }
}
