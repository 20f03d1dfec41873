//! Routes of one-time share links (`/api/v1/shares`), and the page a link
//! opens in a browser (`/s/{id}`, with its script and style sheet).
//!
//! The server only ever holds what the client sealed; the key is in the
//! link's fragment, which browsers do not send. Every decision is made in
//! `coffer-core` (`shares.rs`); the per-address limit on failed opens is
//! the request layer's (`request.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coffer_api::share as api;
use coffer_core::shares::{ShareRequest, ShareView};

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, UrlPath};
use crate::state::AppState;
use crate::timefmt::rfc3339;

type ApiResult<T> = Result<Json<T>, ApiError>;

fn info(v: ShareView) -> api::ShareInfo {
    let (path, version) = v.source.unzip();
    api::ShareInfo {
        id: v.id,
        views: v.views,
        views_left: v.views_left,
        passphrase: v.passphrase,
        created_by: v.created_by,
        created_at: rfc3339(v.created_at),
        expires_at: rfc3339(v.expires_at),
        path,
        version,
    }
}

pub(super) async fn create(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<api::ShareCreateRequest>,
) -> Result<(StatusCode, Json<api::ShareInfo>), ApiError> {
    let source = match (req.path, req.version) {
        (Some(p), Some(v)) => Some((p, v)),
        (None, None) => None,
        _ => {
            return Err(ApiError::invalid(
                "a share of a stored secret names both path and version",
            ));
        }
    };
    let view = st
        .coffer
        .create_share(
            &id,
            &ShareRequest {
                id: req.id,
                sealed: req.ciphertext,
                salt: req.salt,
                iterations: req.iterations,
                expires_in: req.expires_in,
                views: req.views,
                source,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(info(view))))
}

pub(super) async fn list(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> ApiResult<api::ShareListResponse> {
    let shares = st.coffer.list_shares(&id).await?;
    Ok(Json(api::ShareListResponse {
        shares: shares.into_iter().map(info).collect(),
    }))
}

pub(super) async fn revoke(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlPath(share): UrlPath,
) -> Result<StatusCode, ApiError> {
    st.coffer.revoke_share(&id, &share).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn open(State(st): State<AppState>, UrlPath(share): UrlPath) -> Response {
    match st.coffer.open_share(&share).await {
        Ok(opened) => Json(api::ShareOpenResponse {
            ciphertext: opened.sealed,
            salt: opened.salt,
            iterations: opened.iterations,
            views_left: opened.views_left,
        })
        .into_response(),
        Err(e) => {
            let mut resp = ApiError::from(e).into_response();
            // A failed open of a link that exists counts against that link
            // (see `request.rs`); an id that names no link does not.
            if resp.status() == StatusCode::NOT_FOUND && st.coffer.share_exists(&share).await {
                resp.extensions_mut().insert(crate::throttle::LinkExisted);
            }
            resp
        }
    }
}

// ---- the page -------------------------------------------------------------------

/// The page's Content-Security-Policy: no inline script or style, nothing
/// from elsewhere, no framing, no forms, no `<base>`.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

const PAGE_HTML: &str = include_str!("../share_page/page.html");
const PAGE_JS: &str = include_str!("../share_page/page.js");
const SHARE_JS: &str = include_str!("../share_page/share.js");
const PAGE_CSS: &str = include_str!("../share_page/page.css");

fn page_response(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    // Neither the link nor its fragment may travel on in a Referer.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// `GET /s/{id}`: the same page for every id (a GET never spends a view,
/// so a chat app's link preview cannot burn a link, and the page says
/// nothing about whether the id exists until someone clicks Reveal).
pub(crate) async fn page(UrlPath(_id): UrlPath) -> Response {
    page_response(PAGE_HTML, "text/html; charset=utf-8")
}

/// `GET /s/assets/{file}`: the page's script, the share module, the style.
pub(crate) async fn asset(UrlPath(file): UrlPath) -> Response {
    match file.as_str() {
        "page.js" => page_response(PAGE_JS, "text/javascript; charset=utf-8"),
        "share.js" => page_response(SHARE_JS, "text/javascript; charset=utf-8"),
        "page.css" => page_response(PAGE_CSS, "text/css; charset=utf-8"),
        _ => ApiError::new(
            StatusCode::NOT_FOUND,
            coffer_api::codes::NOT_FOUND,
            "no such file",
        )
        .into_response(),
    }
}
