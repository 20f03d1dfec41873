//! Extractors: how handlers take the caller's identity, JSON bodies, the
//! path in the URL and query parameters, with rejections in the API's error
//! format that never quote what they refused.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use coffer_api::codes;
use coffer_core::Identity;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, json_error};
use crate::state::AppState;

/// The authenticated caller. A missing or bad token is 401; a sealed server
/// answers 503 before looking at the token at all.
pub struct Auth(pub Identity);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let raw = bearer_token(&parts.headers).unwrap_or("");
        // The peer address of the connection; forwarding headers are not
        // trusted, so a network-bound token behind a proxy sees the proxy.
        let source = parts
            .extensions
            .get::<crate::serve::Peer>()
            .map(|p| p.addr.ip());
        Ok(Auth(state.coffer.authenticate(raw, source).await?))
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A JSON body, parsed without requiring a content type and with errors that
/// never quote the body.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        codes::TOO_LARGE,
                        "request body is larger than the server accepts",
                    )
                } else {
                    ApiError::invalid("request body could not be read")
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| json_error(&e))
    }
}

/// An optional JSON body: an empty body means `T::default()`.
pub struct JsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for JsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
        if empty {
            return Ok(JsonOrEmpty(T::default()));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::invalid("request body could not be read"))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonOrEmpty(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(JsonOrEmpty)
            .map_err(|e| json_error(&e))
    }
}

/// The `{*path}` part of the URL, percent-decoded.
pub struct UrlPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for UrlPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(p)) => Ok(UrlPath(p)),
            Err(_) => Err(ApiError::invalid(
                "the path in the URL is not valid percent-encoded UTF-8",
            )),
        }
    }
}

/// Query parameters with errors in the API's format.
pub struct UrlQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for UrlQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(UrlQuery(q)),
            Err(e) => {
                // The parser's message may quote the value it refused.
                let detail = e.body_text();
                Err(ApiError::invalid(
                    if coffer_policy::contains_credential(&detail) {
                        "invalid query parameters (a value looks like a coffer token; not shown)"
                            .to_string()
                    } else {
                        format!("invalid query parameters: {detail}")
                    },
                ))
            }
        }
    }
}
