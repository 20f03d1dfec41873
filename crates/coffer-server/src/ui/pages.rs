//! The console's pages and actions. Each calls the `Coffer` use case the
//! matching API handler calls, with the session's identity, and renders
//! the answer through an askama template (escaped by default).

use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use coffer_core::{At, CoreError, Identity, ListOptions, LoginRequest, SecretValue};
use coffer_crypto::SecretString;
use coffer_store::VersionState;
use serde::Deserialize;
use zeroize::Zeroize;

use super::session::{Live, Touched, random_token, same};
use super::{Console, cookie, cross_site, login_cookie, session_cookie, set_cookie};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::timefmt::rfc3339;

/// Most secrets the tree shows at once.
const TREE_LIMIT: usize = 10_000;
/// Most entries the tree examines for one page (review finding: a search
/// that matched nothing walked the caller's whole recursive listing).
const TREE_SCAN_LIMIT: usize = 50_000;
/// Most audit records a page shows.
const AUDIT_LIMIT: usize = 500;

// ---- the signed-in person ------------------------------------------------------

/// A request with a live session: the identity its token authenticates.
pub(super) struct Signed {
    pub(super) identity: Identity,
    csrf: SecretString,
    console: Arc<Console>,
}

impl Signed {
    pub(super) fn chrome(&self) -> Chrome {
        Chrome {
            user: self.identity.display_name().to_string(),
            csrf: self.csrf.expose_secret().to_string(),
        }
    }

    /// Refuses a state change that lacks this session's form token or
    /// comes from another site.
    pub(super) fn check(&self, headers: &HeaderMap, token: &str) -> Result<(), &'static str> {
        if let Some(why) = cross_site(headers, self.console.tls) {
            return Err(why);
        }
        if !same(token, self.csrf.expose_secret()) {
            return Err(
                "the form is stale or was not sent by this console; reload the page and try again",
            );
        }
        Ok(())
    }
}

/// No live session: a page sends the browser to the login form, an action
/// is refused.
pub(super) enum NoSession {
    Login(String),
    Refused,
    Error(ApiError),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::Login(next) => {
                let to = if next == "/ui/" {
                    "/ui/login".to_string()
                } else {
                    format!("/ui/login?next={}", encode_query(&next))
                };
                Redirect::to(&to).into_response()
            }
            NoSession::Refused => error_page(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Your session has ended. Log in again.",
                None,
            ),
            NoSession::Error(e) => api_error_page(e, None),
        }
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = NoSession;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, NoSession> {
        let console = parts
            .extensions
            .get::<Arc<Console>>()
            .cloned()
            .expect("the console's routes carry its state");
        let reject = || {
            if parts.method == axum::http::Method::GET {
                NoSession::Login(
                    parts
                        .uri
                        .path_and_query()
                        .map_or("/ui/", |p| p.as_str())
                        .to_string(),
                )
            } else {
                NoSession::Refused
            }
        };
        let Some(sid) = cookie(&parts.headers, session_cookie(console.tls)) else {
            return Err(reject());
        };
        let Live { token, csrf } = match console.sessions.touch(sid) {
            Touched::Live(live) => live,
            Touched::Ended(token) => {
                // Timed out: the session's token goes with it.
                revoke_in_background(st, vec![token]);
                return Err(reject());
            }
            Touched::Unknown => return Err(reject()),
        };
        let source = parts
            .extensions
            .get::<crate::serve::Peer>()
            .map(|p| p.addr.ip());
        match st.coffer.authenticate(token.expose_secret(), source).await {
            Ok(identity) => Ok(Signed {
                identity,
                csrf,
                console,
            }),
            Err(CoreError::Unauthenticated) => {
                // Revoked or expired elsewhere: the session ends with it.
                console.sessions.end(sid);
                Err(reject())
            }
            Err(e) => Err(NoSession::Error(e.into())),
        }
    }
}

/// A form body, refused with a page that quotes none of it.
pub(super) struct UiForm<T>(pub(super) T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for UiForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(UiForm(v)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(error_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                coffer_api::codes::TOO_LARGE,
                "The form is larger than the server accepts.",
                None,
            )),
            Err(_) => Err(error_page(
                StatusCode::BAD_REQUEST,
                coffer_api::codes::INVALID,
                "The form could not be read.",
                None,
            )),
        }
    }
}

// ---- rendering -----------------------------------------------------------------

/// What every signed-in page shows around its content.
pub(super) struct Chrome {
    pub(super) user: String,
    pub(super) csrf: String,
}

pub(super) fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage {
    chrome: Option<Chrome>,
    status: u16,
    title: &'static str,
    message: String,
}

pub(super) fn error_page(
    status: StatusCode,
    code: &'static str,
    message: &str,
    chrome: Option<Chrome>,
) -> Response {
    let mut resp = render(
        status,
        &ErrorPage {
            chrome,
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: message.to_string(),
        },
    );
    // The audit record names the error code, as for the API.
    resp.extensions_mut().insert(ErrorCode(code));
    resp
}

pub(super) fn api_error_page(e: ApiError, chrome: Option<Chrome>) -> Response {
    error_page(e.status(), e.code(), e.message(), chrome)
}

pub(super) fn refused(why: &str) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        coffer_api::codes::FORBIDDEN,
        why,
        None,
    )
}

pub(super) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Percent-encodes a query parameter's value.
pub(super) fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a secret path for a URL path (keeping its slashes).
pub(super) fn encode_path(s: &str) -> String {
    encode_query(s)
}

/// Where a login may send the browser afterwards: only a console page of
/// this server (a path under `/ui/`, no scheme, no `//`, no backslash, no
/// control or space characters), so `next=` is no open redirect.
pub(super) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic())
                && !n.starts_with("/ui/login") =>
        {
            n
        }
        _ => "/ui/",
    }
}

pub(super) fn none_if_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

// ---- login and logout ----------------------------------------------------------

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage {
    chrome: Option<Chrome>,
    csrf: String,
    next: String,
    error: Option<&'static str>,
}

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

/// The login form, with a fresh double-submit token in a cookie and a
/// hidden field.
fn login_page(tls: bool, status: StatusCode, next: &str, error: Option<&'static str>) -> Response {
    let token = random_token();
    let mut resp = render(
        status,
        &LoginPage {
            chrome: None,
            csrf: token.clone(),
            next: next.to_string(),
            error,
        },
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(tls, login_cookie(tls), &token, Some(600)),
    );
    resp
}

pub(super) async fn root() -> Response {
    see_other("/ui/")
}

pub(super) async fn login_form(
    Extension(console): Extension<Arc<Console>>,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    login_page(
        console.tls,
        StatusCode::OK,
        safe_next(q.next.as_deref()),
        None,
    )
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    totp: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

impl Drop for LoginForm {
    fn drop(&mut self) {
        self.password.zeroize();
        self.totp.zeroize();
    }
}

pub(super) async fn login(
    State(st): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    peer: Option<Extension<crate::serve::Peer>>,
    headers: HeaderMap,
    form: UiForm<LoginForm>,
) -> Response {
    let UiForm(form) = form;
    let tls = console.tls;
    let next = safe_next(form.next.as_deref()).to_string();
    // Login CSRF: the form's token must be the one this browser was given
    // with the form, and the request must come from this origin.
    let planted = cookie(&headers, login_cookie(tls)).unwrap_or("");
    if cross_site(&headers, tls).is_some() || planted.is_empty() || !same(planted, &form.csrf) {
        return login_page(
            tls,
            StatusCode::FORBIDDEN,
            &next,
            Some("The login form expired or was sent from another site. Try again."),
        );
    }
    coffer_core::audit::note_login(&form.user);
    let source = peer.map(|Extension(p)| crate::throttle::source_key(p.addr.ip()));
    let totp = form.totp.trim();
    let result = st
        .coffer
        .login_from(
            &LoginRequest {
                user: &form.user,
                password: &form.password,
                totp: (!totp.is_empty()).then_some(totp),
            },
            source,
        )
        .await;
    match result {
        Ok((token, record)) => {
            // Sessions are counted per person: the account the token is for.
            let user = record
                .user
                .clone()
                .unwrap_or_else(|| record.accessor.clone());
            let started = console.sessions.start(&user, token, record.expires_at);
            revoke_in_background(&st, started.ended);
            let Some(sid) = started.id else {
                return login_page(
                    tls,
                    StatusCode::SERVICE_UNAVAILABLE,
                    &next,
                    Some(
                        "Too many people are signed in to this server right now. Try again later.",
                    ),
                );
            };
            let mut resp = see_other(&next);
            let h = resp.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(tls, session_cookie(tls), &sid, None),
            );
            h.append(
                header::SET_COOKIE,
                set_cookie(tls, login_cookie(tls), "", Some(0)),
            );
            resp
        }
        Err(e) => {
            let e = ApiError::from(e);
            let message = match e.status() {
                StatusCode::TOO_MANY_REQUESTS => {
                    "Too many failed logins. Wait a while before trying again."
                }
                StatusCode::UNAUTHORIZED => {
                    "Login failed: check the user name, the password and the one-time code."
                }
                _ => "Login is not possible right now.",
            };
            let mut resp = login_page(tls, e.status(), &next, Some(message));
            resp.extensions_mut().insert(ErrorCode(e.code()));
            resp
        }
    }
}

/// Revokes the tokens of sessions that ended without a logout (timed out,
/// made room for a newer one, or refused), through the API's own use
/// case, so that no token outlives the session it was made for. The
/// request that noticed does not wait for it.
fn revoke_in_background(st: &AppState, tokens: Vec<SecretString>) {
    if tokens.is_empty() {
        return;
    }
    let coffer = st.coffer.clone();
    tokio::spawn(async move {
        for token in tokens {
            // A token that no longer authenticates is already of no use.
            if let Ok(identity) = coffer.authenticate(token.expose_secret(), None).await
                && let Err(e) = coffer.revoke_token(&identity, None).await
            {
                tracing::warn!(error = %e, "cannot revoke the token of an ended console session");
            }
        }
    });
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UiForm(form): UiForm<CsrfForm>,
) -> Response {
    if let Err(why) = signed.check(&headers, &form.csrf) {
        return refused(why);
    }
    let tls = signed.console.tls;
    // The session ends whatever the revocation answers; the token is
    // revoked through the API's own use case (its children with it).
    if let Some(sid) = cookie(&headers, session_cookie(tls)) {
        signed.console.sessions.end(sid);
    }
    let revoked = st.coffer.revoke_token(&signed.identity, None).await;
    let mut resp = match revoked {
        Ok(()) => see_other("/ui/login"),
        Err(e) => api_error_page(e.into(), None),
    };
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(tls, session_cookie(tls), "", Some(0)),
    );
    resp
}

// ---- the tree ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ui/tree.html")]
struct TreePage {
    chrome: Option<Chrome>,
    prefix: String,
    crumbs: Vec<(String, String)>,
    q: String,
    secrets: Vec<(String, String)>,
    truncated: bool,
}

#[derive(Deserialize)]
pub(super) struct TreeQuery {
    prefix: Option<String>,
    q: Option<String>,
}

pub(super) async fn tree(
    State(st): State<AppState>,
    signed: Signed,
    axum::extract::Query(q): axum::extract::Query<TreeQuery>,
) -> Response {
    let prefix = none_if_empty(q.prefix).unwrap_or_default();
    let needle = none_if_empty(q.q).unwrap_or_default();
    let canonical = match coffer_core::ListPrefix::parse(&prefix) {
        Ok(p) => p.as_str().to_string(),
        Err(e) => return api_error_page(CoreError::from(e).into(), Some(signed.chrome())),
    };
    // The listing is the API's: only what `list` shows this caller.
    let mut secrets = Vec::new();
    let mut after = None;
    let mut truncated = false;
    let mut examined = 0usize;
    loop {
        let page = match st
            .coffer
            .list(
                &signed.identity,
                &canonical,
                ListOptions {
                    recursive: true,
                    include_deleted: false,
                    after: after.take(),
                    limit: 0,
                },
            )
            .await
        {
            Ok(p) => p,
            Err(e) => return api_error_page(e.into(), Some(signed.chrome())),
        };
        let lower = needle.to_lowercase();
        examined += page.entries.len();
        for e in page.entries.into_iter().filter(|e| !e.folder) {
            let path = format!("{canonical}{}", e.name);
            if lower.is_empty() || path.to_lowercase().contains(&lower) {
                secrets.push((encode_path(&path), path));
            }
        }
        if secrets.len() >= TREE_LIMIT {
            secrets.truncate(TREE_LIMIT);
            truncated = true;
            break;
        }
        // A search that matches little must not walk a million entries.
        if examined >= TREE_SCAN_LIMIT {
            truncated = true;
            break;
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut crumbs = Vec::new();
    let mut at = String::new();
    for seg in canonical.split('/').filter(|s| !s.is_empty()) {
        at.push_str(seg);
        at.push('/');
        crumbs.push((encode_query(&at), seg.to_string()));
    }
    render(
        StatusCode::OK,
        &TreePage {
            chrome: Some(signed.chrome()),
            prefix: canonical,
            crumbs,
            q: needle,
            secrets,
            truncated,
        },
    )
}

// ---- one secret ----------------------------------------------------------------

struct VersionRow {
    version: u64,
    created_at: String,
    created_by: String,
    state: &'static str,
    compromised: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/secret.html")]
struct SecretPage {
    chrome: Option<Chrome>,
    path: String,
    href: String,
    current_version: u64,
    deleted: bool,
    created_at: String,
    updated_at: String,
    labels: Vec<(&'static str, String)>,
    versions: Vec<VersionRow>,
    compromised: bool,
}

pub(super) async fn secret(
    State(st): State<AppState>,
    signed: Signed,
    crate::extract::UrlPath(path): crate::extract::UrlPath,
) -> Response {
    let md = match st.coffer.metadata(&signed.identity, &path).await {
        Ok(md) => md,
        Err(e) => return api_error_page(e.into(), Some(signed.chrome())),
    };
    let l = &md.labels;
    let mut labels = vec![("current", format!("version {}", l.current))];
    if let Some(p) = l.previous {
        labels.push(("previous", format!("version {p}")));
    }
    if let Some(t) = l.previous_until {
        labels.push(("previous readable until", rfc3339(t)));
    }
    if let Some(p) = l.pending {
        labels.push(("pending (rotation staged)", format!("version {p}")));
    }
    labels.push(("expires", l.expires_at.map_or("never".to_string(), rfc3339)));
    let versions: Vec<VersionRow> = md
        .versions
        .into_iter()
        .rev()
        .map(|v| VersionRow {
            version: v.version,
            created_at: rfc3339(v.created_at),
            created_by: v.created_by.name,
            state: match v.state {
                VersionState::Active => "active",
                VersionState::Deleted(_) => "deleted",
                VersionState::Destroyed(_) => "destroyed",
            },
            compromised: v
                .compromised
                .map(|c| format!("{} ({})", rfc3339(c.at), c.reason)),
        })
        .collect();
    let path = md.meta.path;
    render(
        StatusCode::OK,
        &SecretPage {
            chrome: Some(signed.chrome()),
            href: encode_path(&path),
            compromised: versions.iter().any(|v| v.compromised.is_some()),
            path,
            current_version: md.meta.current_version,
            deleted: !md.meta.live,
            created_at: rfc3339(md.meta.created_at),
            updated_at: rfc3339(md.meta.updated_at),
            labels,
            versions,
        },
    )
}

/// The header a reveal or a strength estimate carries its form token in.
const CSRF_HEADER: &str = "x-coffer-csrf";

fn header_token(headers: &HeaderMap) -> &str {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A JSON error for the script's requests.
fn json_error(e: ApiError) -> Response {
    e.into_response()
}

/// Reveals the current value: a POST with the form token (never a GET, so
/// no link, prefetch or image can trigger it), read through the API's
/// bundle read use case and audited like any read.
pub(super) async fn reveal(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    crate::extract::UrlPath(path): crate::extract::UrlPath,
) -> Response {
    if let Err(why) = signed.check(&headers, header_token(&headers)) {
        return refused(why);
    }
    // The bundle read of one secret: the same `read` decision as a plain
    // read, and the value served is noted in the record's `reads`, which
    // the readers query (`coffer audit readers`, the readers page) counts.
    let read = match st
        .coffer
        .read_many(&signed.identity, &[], &[(path, At::version(None))])
        .await
    {
        Ok(mut reads) if reads.len() == 1 => reads.remove(0),
        Ok(_) => return json_error(ApiError::invalid("nothing to reveal")),
        Err(e) => return json_error(e.into()),
    };
    let body = match &read.value {
        SecretValue::Text(t) => serde_json::json!({
            "version": read.version,
            "value": t.expose_secret(),
        }),
        SecretValue::Fields(f) => serde_json::json!({
            "version": read.version,
            "fields": f
                .iter()
                .map(|(k, v)| (k.as_str(), v.expose_secret()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        }),
    };
    Json(body).into_response()
}

// ---- create and edit -----------------------------------------------------------

#[derive(Template)]
#[template(path = "ui/edit.html")]
struct EditPage {
    chrome: Option<Chrome>,
    /// The path, when editing an existing secret.
    path: Option<String>,
    /// The folder a new secret goes in.
    prefix: String,
    cas: u64,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct NewQuery {
    prefix: Option<String>,
}

pub(super) async fn new_form(
    signed: Signed,
    axum::extract::Query(q): axum::extract::Query<NewQuery>,
) -> Response {
    render(
        StatusCode::OK,
        &EditPage {
            chrome: Some(signed.chrome()),
            path: None,
            prefix: none_if_empty(q.prefix).unwrap_or_default(),
            cas: 0,
            error: None,
        },
    )
}

pub(super) async fn edit_form(
    State(st): State<AppState>,
    signed: Signed,
    crate::extract::UrlPath(path): crate::extract::UrlPath,
) -> Response {
    let md = match st.coffer.metadata(&signed.identity, &path).await {
        Ok(md) => md,
        Err(e) => return api_error_page(e.into(), Some(signed.chrome())),
    };
    render(
        StatusCode::OK,
        &EditPage {
            chrome: Some(signed.chrome()),
            path: Some(md.meta.path),
            prefix: String::new(),
            cas: md.meta.current_version,
            error: None,
        },
    )
}

#[derive(Deserialize)]
pub(super) struct SaveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    value: String,
    /// A generator spec (`alnum:32`, `words:6`) to write a value made on
    /// the server instead.
    generate: Option<String>,
    cas: Option<u64>,
}

impl Drop for SaveForm {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

/// Writes a new version through the API's write use case, with the version
/// the form was made from as check-and-set (0 for a new secret), so that a
/// stale form never overwrites another person's change.
pub(super) async fn save(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UiForm(mut form): UiForm<SaveForm>,
) -> Response {
    if let Err(why) = signed.check(&headers, &form.csrf) {
        return refused(why);
    }
    let generate = none_if_empty(form.generate.take());
    let path = form.path.trim().to_string();
    let result: Result<_, ApiError> = match generate {
        Some(spec) => match coffer_core::lifecycle::parse_generator(&spec) {
            Ok(spec) => st
                .coffer
                .write_generated(&signed.identity, &path, &spec, form.cas)
                .await
                .map_err(ApiError::from),
            Err(e) => Err(e.into()),
        },
        None if form.value.is_empty() => Err(ApiError::invalid(
            "the value is empty; type one or choose a generator",
        )),
        None => {
            let value = SecretValue::Text(SecretString::new(std::mem::take(&mut form.value)));
            st.coffer
                .write(&signed.identity, &path, &value, form.cas)
                .await
                .map_err(ApiError::from)
        }
    };
    match result {
        Ok(receipt) => see_other(&format!("/ui/secret/{}", encode_path(&receipt.path))),
        Err(e) => {
            // The form comes back without the value: it is never echoed.
            let mut resp = render(
                e.status(),
                &EditPage {
                    chrome: Some(signed.chrome()),
                    path: (form.cas.unwrap_or(0) > 0).then(|| path.clone()),
                    prefix: if form.cas.unwrap_or(0) > 0 {
                        String::new()
                    } else {
                        path.clone()
                    },
                    cas: form.cas.unwrap_or(0),
                    error: Some(e.message().to_string()),
                },
            );
            resp.extensions_mut().insert(ErrorCode(e.code()));
            resp
        }
    }
}

#[derive(Deserialize)]
pub(super) struct StrengthRequest {
    #[serde(default)]
    value: String,
}

impl Drop for StrengthRequest {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

/// The strength meter: the server's estimate of a typed value, sent in a
/// POST body (never a URL). Answers bits and fixed phrases, never the
/// value.
pub(super) async fn strength(
    signed: Signed,
    headers: HeaderMap,
    crate::extract::JsonBody(req): crate::extract::JsonBody<StrengthRequest>,
) -> Response {
    if let Err(why) = signed.check(&headers, header_token(&headers)) {
        return refused(why);
    }
    let estimate = coffer_core::strength::estimate(&req.value);
    Json(serde_json::json!({
        "bits": estimate.bits.round(),
        "weak": estimate.bits < coffer_core::strength::WEAK_BITS,
        "reasons": estimate.reasons,
    }))
    .into_response()
}

// ---- the audit log -------------------------------------------------------------

struct ReaderRow {
    name: String,
    kind: String,
    reads: u64,
    first: String,
    last: String,
    versions: String,
    sources: String,
}

#[derive(Template)]
#[template(path = "ui/readers.html")]
struct ReadersPage {
    chrome: Option<Chrome>,
    path: String,
    href: String,
    readers: Vec<ReaderRow>,
}

pub(super) async fn readers(
    State(st): State<AppState>,
    signed: Signed,
    crate::extract::UrlPath(path): crate::extract::UrlPath,
) -> Response {
    let q = crate::routes::ReadersQuery {
        path,
        version: None,
        rotated: true,
    };
    let answer = match crate::routes::query_readers(&st, &signed.identity, q).await {
        Ok(a) => a,
        Err(e) => return api_error_page(e, Some(signed.chrome())),
    };
    let join = |it: &mut dyn Iterator<Item = String>| it.collect::<Vec<_>>().join(", ");
    let readers = answer
        .readers
        .into_iter()
        .map(|r| ReaderRow {
            versions: join(&mut r.versions.iter().map(u64::to_string)),
            sources: join(&mut r.sources.iter().cloned()),
            name: r.name,
            kind: r.kind,
            reads: r.reads,
            first: r.first,
            last: r.last,
        })
        .collect();
    render(
        StatusCode::OK,
        &ReadersPage {
            chrome: Some(signed.chrome()),
            href: encode_path(&answer.path),
            path: answer.path,
            readers,
        },
    )
}

struct RecordRow {
    time: String,
    actor: String,
    op: String,
    path: String,
    outcome: String,
    status: String,
    source: String,
}

#[derive(Template)]
#[template(path = "ui/audit.html")]
struct AuditPage {
    chrome: Option<Chrome>,
    path: String,
    actor: String,
    since: String,
    until: String,
    outcome: String,
    records: Vec<RecordRow>,
    truncated: bool,
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    path: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    outcome: Option<String>,
}

pub(super) async fn audit(
    State(st): State<AppState>,
    signed: Signed,
    axum::extract::Query(q): axum::extract::Query<AuditQuery>,
) -> Response {
    let (path, actor, since, until, outcome) = (
        none_if_empty(q.path),
        none_if_empty(q.actor),
        none_if_empty(q.since),
        none_if_empty(q.until),
        none_if_empty(q.outcome),
    );
    let query = crate::routes::RecordsQuery {
        path: path.clone(),
        actor: actor.clone(),
        since: since.clone(),
        until: until.clone(),
        outcome: outcome.clone(),
        kind: Some("request".to_string()),
        limit: Some(AUDIT_LIMIT),
        ..Default::default()
    };
    let answer = match crate::routes::query_records(&st, &signed.identity, query).await {
        Ok(a) => a,
        Err(e) => return api_error_page(e, Some(signed.chrome())),
    };
    let records = answer
        .records
        .into_iter()
        .rev()
        .map(|r| RecordRow {
            time: r.time,
            actor: r.actor.map(|a| a.name).unwrap_or_default(),
            op: r.op.unwrap_or_default(),
            path: r.path.unwrap_or_default(),
            outcome: r
                .outcome
                .map(|o| o.as_str().to_string())
                .unwrap_or_default(),
            status: r.status.map(|s| s.to_string()).unwrap_or_default(),
            source: r.source.unwrap_or_default(),
        })
        .collect();
    render(
        StatusCode::OK,
        &AuditPage {
            chrome: Some(signed.chrome()),
            path: path.unwrap_or_default(),
            actor: actor.unwrap_or_default(),
            since: since.unwrap_or_default(),
            until: until.unwrap_or_default(),
            outcome: outcome.unwrap_or_default(),
            records,
            truncated: answer.truncated,
        },
    )
}

// ---- assets --------------------------------------------------------------------

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

pub(super) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_never_leaves_the_console() {
        for (next, to) in [
            (None, "/ui/"),
            (Some("/ui/secret/app/dev/KEY"), "/ui/secret/app/dev/KEY"),
            (Some("/ui/audit?path=app/*"), "/ui/audit?path=app/*"),
            (Some("https://evil.example/"), "/ui/"),
            (Some("//evil.example/ui/"), "/ui/"),
            (Some("/ui//evil.example"), "/ui/"),
            (Some("/ui/\\evil.example"), "/ui/"),
            (Some("/\\evil.example"), "/ui/"),
            (Some("/ui/\r\nSet-Cookie: x=y"), "/ui/"),
            (Some("/ui/ x"), "/ui/"),
            (Some("/api/v1/sys/seal"), "/ui/"),
            (Some("javascript:alert(1)"), "/ui/"),
            (Some("/ui/login"), "/ui/"),
            (Some(""), "/ui/"),
        ] {
            assert_eq!(safe_next(next), to, "{next:?}");
        }
    }

    #[test]
    fn paths_are_encoded_for_urls() {
        assert_eq!(encode_path("app/dev/KEY"), "app/dev/KEY");
        assert_eq!(encode_path("a/b/\"><script>x"), "a/b/%22%3E%3Cscript%3Ex");
        assert_eq!(encode_query("a b&c=d#e?"), "a%20b%26c%3Dd%23e%3F");
    }
}
