//! The Vault-compatible API under `/v1/`: KV version 2, the `sys/` routes
//! Vault clients need, token auth and userpass login, with Vault's request
//! and response shapes, so that existing Vault and OpenBao clients work
//! against coffer unchanged.
//!
//! The routes are data, in `coffer_api::vault_routes`, and each handler is
//! registered against its entry, as the native handlers are. They are thin
//! in the same way: extract, call the same `Coffer` methods the native
//! handlers call (authentication, the `authorize` witness, protected
//! environments and the audit notes all happen there), shape the answer.
//! The request layer treats `/v1/` requests like any other (edge checks,
//! throttles, audit before the response, fail-closed), names them by their
//! Vault entry in the audit record, and gives their errors Vault's body
//! (`{"errors": [...]}`, [`error_body`]).
//!
//! Vault's `LIST` method is not one axum routes: [`list_rewrite`] turns
//! it, and `GET ...?list=true`, into a `GET` carrying [`Listing`] before
//! routing, and the handlers of the templates with a `LIST` entry dispatch
//! on it. It also turns `PUT` into `POST` (carrying [`SentAsPut`]): Vault
//! takes them as one.

mod kv;
mod sys;
mod token;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Request};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use coffer_api::vault_routes::{self as table, VaultMethod, VaultRoute};
use coffer_core::Identity;
use coffer_policy::vault::Mounts;
use serde::Serialize;

use crate::error::{ApiError, ErrorCode, ErrorMessage};
use crate::state::AppState;

/// The header Vault clients send their token in.
pub(crate) const X_VAULT_TOKEN: &str = "x-vault-token";

/// The header Vault's clients send with every request.
pub(crate) const X_VAULT_REQUEST: &str = "x-vault-request";

/// Marks a request that was a listing (`LIST`, or `GET ?list=true`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listing;

/// Marks a request sent as `PUT`, which Vault takes as `POST`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SentAsPut;

/// The configured KV mounts, as a request extension.
#[derive(Clone)]
pub(crate) struct MountsExt(pub Arc<Mounts>);

/// Turns Vault's `LIST` (and `GET ?list=true`) on `/v1/` into a `GET`
/// marked [`Listing`], and `PUT` into a `POST` marked [`SentAsPut`],
/// before the router matches it.
pub(crate) fn list_rewrite(mut req: Request) -> Request {
    if !req.uri().path().starts_with("/v1/") {
        return req;
    }
    let listing = req.method().as_str() == "LIST"
        || (req.method() == Method::GET
            && req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv == "list=true")));
    if listing {
        *req.method_mut() = Method::GET;
        req.extensions_mut().insert(Listing);
    } else if req.method() == Method::PUT {
        *req.method_mut() = Method::POST;
        req.extensions_mut().insert(SentAsPut);
    }
    req
}

/// The Vault routes, each handler against its table entry, and the entries
/// registered (a test holds them against the table).
pub(crate) fn routes() -> (axum::Router<AppState>, Vec<&'static VaultRoute>) {
    Handlers::default()
        // KV version 2
        .on(&table::KV_READ, kv::read)
        .on(&table::KV_WRITE_POST, kv::write)
        .on(&table::KV_PATCH, kv::patch)
        .on(&table::KV_DELETE_LATEST, kv::delete_latest)
        .on(
            &table::KV_DELETE_POST,
            kv::change_versions::<kv::SoftDelete>,
        )
        .on(
            &table::KV_UNDELETE_POST,
            kv::change_versions::<kv::Undelete>,
        )
        .on(&table::KV_DESTROY_POST, kv::change_versions::<kv::Destroy>)
        .on(&table::KV_METADATA, kv::metadata_or_list)
        .listing(&table::KV_LIST)
        .on(&table::KV_LIST_ROOT, kv::list_root)
        .on(&table::KV_LIST_ROOT_BARE, kv::list_root)
        .on(&table::KV_METADATA_WRITE_POST, kv::metadata_write)
        .on(&table::KV_METADATA_DELETE, kv::metadata_delete)
        // sys
        .on(&table::SYS_HEALTH, sys::health)
        .on(&table::SYS_SEAL_STATUS, sys::seal_status)
        .on(&table::SYS_INIT, sys::init)
        .on(&table::SYS_LEADER, sys::leader)
        .on(&table::SYS_MOUNTS, sys::mounts)
        .on(&table::SYS_UI_MOUNTS, sys::ui_mounts)
        .on(&table::SYS_UI_MOUNT, sys::ui_mount)
        .on(&table::SYS_CAPABILITIES_SELF, sys::capabilities_self)
        .on(&table::SYS_POLICY_LIST, sys::list_policies)
        .on(&table::SYS_POLICY_READ, sys::read_policy::<sys::Rules>)
        .on(&table::SYS_POLICY_WRITE_POST, sys::write_policy)
        .on(&table::SYS_POLICY_DELETE, sys::delete_policy)
        .on(&table::SYS_ACL_LIST, sys::list_policies)
        .on(&table::SYS_ACL_READ, sys::read_policy::<sys::Acl>)
        .on(&table::SYS_ACL_WRITE_POST, sys::write_policy)
        .on(&table::SYS_ACL_DELETE, sys::delete_policy)
        // token auth and userpass
        .on(&table::TOKEN_CREATE, token::create)
        .on(&table::TOKEN_LOOKUP_SELF, token::lookup_self)
        .on(&table::TOKEN_LOOKUP_ACCESSOR, token::lookup_accessor)
        .on(&table::TOKEN_LOOKUP, token::lookup)
        .on(&table::TOKEN_RENEW_SELF, token::renew_self)
        .on(&table::TOKEN_RENEW, token::renew)
        .on(&table::TOKEN_REVOKE_SELF, token::revoke_self)
        .on(&table::TOKEN_REVOKE, token::revoke)
        .on(&table::TOKEN_REVOKE_ACCESSOR, token::revoke_accessor)
        .on(&table::USERPASS_LOGIN, token::userpass_login)
        .finish()
}

#[derive(Default)]
struct Handlers {
    templates: HashMap<&'static str, MethodRouter<AppState>>,
    registered: Vec<&'static VaultRoute>,
}

impl Handlers {
    /// Registers `handler` for `route`. A `LIST` entry is served as `GET`
    /// (see [`list_rewrite`]).
    fn on<H, T>(mut self, route: &'static VaultRoute, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match route.method {
            VaultMethod::Get | VaultMethod::List => MethodFilter::GET,
            VaultMethod::Post => MethodFilter::POST,
            VaultMethod::Delete => MethodFilter::DELETE,
            VaultMethod::Patch => MethodFilter::PATCH,
        };
        let methods = self.templates.remove(route.path).unwrap_or_default();
        self.templates
            .insert(route.path, methods.on(filter, handler));
        self.registered.push(route);
        self
    }

    /// A `LIST` entry whose template's `GET` handler also lists.
    fn listing(mut self, route: &'static VaultRoute) -> Self {
        assert!(
            self.templates.contains_key(route.path),
            "register the GET handler of {} first",
            route.path
        );
        self.registered.push(route);
        self
    }

    fn finish(self) -> (axum::Router<AppState>, Vec<&'static VaultRoute>) {
        let mut router = axum::Router::new();
        for (path, methods) in self.templates {
            router = router.route(path, methods);
        }
        (router, self.registered)
    }
}

/// The caller's identity, from `X-Vault-Token` or `Authorization: Bearer`
/// (one of them: both is refused, so no request is ambiguous about which
/// token it presents). Authenticated by the core, as the native [`Auth`].
///
/// [`Auth`]: crate::extract::Auth
pub(crate) struct VaultAuth(pub Identity);

impl FromRequestParts<AppState> for VaultAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let raw = token_of(&parts.headers)?.unwrap_or("");
        let source = parts
            .extensions
            .get::<crate::serve::Peer>()
            .map(|p| p.addr.ip());
        Ok(VaultAuth(state.coffer.authenticate(raw, source).await?))
    }
}

/// The token a `/v1/` request presents.
pub(crate) fn token_of(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let vault = headers.get(X_VAULT_TOKEN);
    let bearer = headers.get(header::AUTHORIZATION);
    if vault.is_some() && bearer.is_some() {
        return Err(ApiError::invalid(
            "send the token in X-Vault-Token or in Authorization, not both",
        ));
    }
    if let Some(v) = vault {
        return Ok(Some(v.to_str().map(str::trim).unwrap_or("")));
    }
    Ok(bearer
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim()))
}

/// The configured mounts.
pub(crate) struct VaultMounts(pub Arc<Mounts>);

impl<S: Send + Sync> FromRequestParts<S> for VaultMounts {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(VaultMounts(
            parts
                .extensions
                .get::<MountsExt>()
                .map(|m| m.0.clone())
                .unwrap_or_default(),
        ))
    }
}

/// Vault's response envelope around `data` (and `auth`).
#[derive(Serialize)]
pub(crate) struct Envelope<D: Serialize, A: Serialize = ()> {
    request_id: String,
    lease_id: &'static str,
    renewable: bool,
    lease_duration: u64,
    data: Option<D>,
    wrap_info: Option<()>,
    warnings: Option<Vec<String>>,
    auth: Option<A>,
}

/// A `200` with `data`.
pub(crate) fn ok<D: Serialize>(data: D) -> Response {
    Json(Envelope::<D, ()> {
        request_id: request_id(),
        lease_id: "",
        renewable: false,
        lease_duration: 0,
        data: Some(data),
        wrap_info: None,
        warnings: None,
        auth: None,
    })
    .into_response()
}

/// A `200` with `data` and warnings.
pub(crate) fn ok_warning<D: Serialize>(data: D, warnings: Vec<String>) -> Response {
    Json(Envelope::<D, ()> {
        request_id: request_id(),
        lease_id: "",
        renewable: false,
        lease_duration: 0,
        data: Some(data),
        wrap_info: None,
        warnings: Some(warnings),
        auth: None,
    })
    .into_response()
}

/// A `200` with an `auth` block.
pub(crate) fn ok_auth<A: Serialize>(auth: A) -> Response {
    Json(Envelope::<(), A> {
        request_id: request_id(),
        lease_id: "",
        renewable: false,
        lease_duration: 0,
        data: None,
        wrap_info: None,
        warnings: None,
        auth: Some(auth),
    })
    .into_response()
}

/// `204 No Content`.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn request_id() -> String {
    crate::request::current()
        .map(|id| id.to_string())
        .unwrap_or_default()
}

/// Vault's 404 for a path no route (or no mount) serves.
pub(crate) fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        coffer_api::codes::NOT_FOUND,
        "no handler for route; route entry not found",
    )
}

/// Vault's 404 with no message (a secret or version that is not there).
pub(crate) fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, coffer_api::codes::NOT_FOUND, "")
}

/// Gives an error response of a `/v1/` request Vault's body and status:
/// `{"errors": [MESSAGE]}` (`[]` when there is no message), 403 where coffer
/// says 401 (Vault answers a missing or bad token with 403), 400 where it
/// says 409 (Vault's failed check-and-set). Other responses pass unchanged.
pub(crate) fn error_body(resp: Response) -> Response {
    let Some(ErrorMessage(message)) = resp.extensions().get::<ErrorMessage>().cloned() else {
        return resp;
    };
    let code = resp.extensions().get::<ErrorCode>().copied();
    let status = match resp.status() {
        StatusCode::UNAUTHORIZED => StatusCode::FORBIDDEN,
        StatusCode::CONFLICT => StatusCode::BAD_REQUEST,
        s => s,
    };
    let retry_after = resp.headers().get(header::RETRY_AFTER).cloned();
    let errors: Vec<&str> = if message.is_empty() {
        Vec::new()
    } else if status == StatusCode::FORBIDDEN {
        // Vault's clients look for this phrase.
        vec!["permission denied", &message]
    } else {
        vec![&message]
    };
    let mut out = (status, Json(serde_json::json!({ "errors": errors }))).into_response();
    if let Some(code) = code {
        out.extensions_mut().insert(code);
    }
    if let Some(v) = retry_after {
        out.headers_mut().insert(header::RETRY_AFTER, v);
    }
    out
}

/// Rejects parameters this API does not support, naming them.
pub(crate) fn refuse_unknown(
    fields: &serde_json::Map<String, serde_json::Value>,
    known: &[&str],
) -> Result<(), ApiError> {
    if let Some(name) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::invalid(format!(
            "unsupported parameter {}; this endpoint takes {}",
            quote_name(name),
            known.join(", ")
        )));
    }
    Ok(())
}

/// A parameter name for a message: quoted, cut, and not shown if it looks
/// like a credential.
pub(crate) fn quote_name(name: &str) -> String {
    if coffer_policy::contains_credential(name) {
        return "(not shown: it looks like a coffer token)".to_owned();
    }
    let short: String = name.chars().take(64).collect();
    format!("{:?}", short)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_route_of_the_vault_table_has_one_handler() {
        let registered = routes().1;
        let key = |r: &VaultRoute| (r.method.as_str(), r.path);
        let unique: BTreeSet<_> = registered.iter().map(|r| key(r)).collect();
        assert_eq!(unique.len(), registered.len(), "a route registered twice");
        let table: BTreeSet<_> = table::ALL.iter().map(|r| key(r)).collect();
        assert_eq!(unique, table);
    }

    #[test]
    fn list_and_get_list_true_become_a_marked_get_only_under_v1() {
        let req = |method: &str, uri: &str| {
            list_rewrite(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
        };
        for (method, uri, listing) in [
            ("LIST", "/v1/secret/metadata/a", true),
            ("GET", "/v1/secret/metadata/a?list=true", true),
            ("GET", "/v1/secret/metadata/a?x=1&list=true", true),
            ("GET", "/v1/secret/metadata/a?list=false", false),
            ("GET", "/v1/secret/metadata/a?list=trueish", false),
            ("POST", "/v1/secret/metadata/a?list=true", false),
            ("LIST", "/api/v1/list/a", false),
            ("PUT", "/v1/secret/data/a", false),
        ] {
            let r = req(method, uri);
            assert_eq!(
                r.extensions().get::<Listing>().is_some(),
                listing,
                "{method} {uri}"
            );
            if listing {
                assert_eq!(r.method(), Method::GET);
            } else if method == "PUT" {
                assert_eq!(r.method(), Method::POST);
                assert!(r.extensions().get::<SentAsPut>().is_some());
            } else {
                assert_eq!(r.method().as_str(), method);
            }
        }
    }

    #[tokio::test]
    async fn error_bodies_take_vaults_shape_and_status() {
        for (error, status, errors) in [
            (
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "missing token"),
                403,
                vec!["permission denied", "missing token"],
            ),
            (
                ApiError::new(StatusCode::CONFLICT, "conflict", "cas"),
                400,
                vec!["cas"],
            ),
            (not_found(), 404, vec![]),
            (ApiError::invalid("bad"), 400, vec!["bad"]),
        ] {
            let resp = error_body(error.into_response());
            assert_eq!(resp.status().as_u16(), status);
            assert!(resp.extensions().get::<ErrorCode>().is_some());
            let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body, serde_json::json!({ "errors": errors }));
        }
        // A success passes unchanged.
        let resp = error_body(ok(serde_json::json!({"a": 1})));
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
