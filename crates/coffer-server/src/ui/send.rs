//! Share links from the console: the "send a secret" page (paste a text,
//! get a one-time link) and the "share" button of a secret's page.
//!
//! The browser seals the value with WebCrypto through the share page's own
//! module (`/s/assets/share.js`, loaded by `send.js`; no inline script),
//! and posts only the sealed bytes here, with the session's form token in
//! a header; the key stays in the link's fragment, shown to the person
//! who made it and never sent to the server. This handler is the API's
//! `POST /api/v1/shares` with the session's identity: the same core use
//! case, the same checks (`create` on `sys/shares`, and `read` on the
//! secret shared with its version recorded), audited as `share.create`.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use coffer_api::share as api;
use coffer_core::shares::ShareRequest;

use super::pages::{Chrome, Signed, header_token, json_error, refused, render};
use crate::error::ApiError;
use crate::state::AppState;
use crate::timefmt::rfc3339;

#[derive(Template)]
#[template(path = "ui/send.html")]
struct SendPage {
    chrome: Option<Chrome>,
}

/// The "send a secret" page.
pub(super) async fn send_page(signed: Signed) -> Response {
    render(
        StatusCode::OK,
        &SendPage {
            chrome: Some(signed.chrome()),
        },
    )
}

/// Stores a link's sealed bytes: the form token in `X-Coffer-CSRF` and
/// this origin, then the core's `create_share`.
pub(super) async fn create(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    crate::extract::JsonBody(req): crate::extract::JsonBody<api::ShareCreateRequest>,
) -> Response {
    if let Err(why) = signed.check(&headers, header_token(&headers)) {
        return refused(why);
    }
    let source = match (req.path, req.version) {
        (Some(p), Some(v)) => Some((p, v)),
        (None, None) => None,
        _ => {
            return json_error(ApiError::invalid(
                "a share of a stored secret names both path and version",
            ));
        }
    };
    let view = match st
        .coffer
        .create_share(
            &signed.identity,
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
        .await
    {
        Ok(v) => v,
        Err(e) => return json_error(e.into()),
    };
    let (path, version) = view.source.unzip();
    (
        StatusCode::CREATED,
        Json(api::ShareInfo {
            id: view.id,
            views: view.views,
            views_left: view.views_left,
            passphrase: view.passphrase,
            created_by: view.created_by,
            created_at: rfc3339(view.created_at),
            expires_at: rfc3339(view.expires_at),
            path,
            version,
        }),
    )
        .into_response()
}

const SEND_JS: &str = include_str!("assets/send.js");

pub(super) async fn script() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        SEND_JS,
    )
        .into_response()
}
