//! The audit layer: recording every request.
//!
//! [`crate::request::RequestService`] runs each request through this
//! module: [`Meta::capture`] notes the request's method, URL path, operation
//! (from its entry in `coffer_api::routes`) and peer before the handler
//! runs; [`record`] collects what `coffer-core` noted while handling it
//! (caller, decision, version), and hands the record to the
//! [`coffer_audit::Auditor`]. The response leaves only once a sink has the
//! record; if none does, the response (which may hold a secret) is dropped
//! and the client gets 503 `audit_unavailable`. While no sink works, requests
//! are refused before they are handled, so nothing changes unrecorded.
//! `GET /sys/health` and `/sys/status` are not audited (their table entries
//! say so): load balancers poll them and they reveal nothing.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::task::Poll;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coffer_api::codes;
use coffer_api::routes::{self, Op, Route};
use coffer_api::vault_routes::{self, VaultRoute};
use coffer_audit::{Actor, Kind, Outcome, Record};
use coffer_core::audit::Facts;

use crate::error::{ApiError, ErrorCode};
use crate::request::RequestId;
use crate::state::AppState;

/// What is known about a request before it is handled.
pub(crate) struct Meta {
    start: Instant,
    time: String,
    method: Method,
    route: String,
    op: &'static str,
    source: Option<std::sync::Arc<str>>,
    authorization: Option<HeaderValue>,
    /// Whether the request is the web console's, whose token comes from its
    /// session rather than a header.
    console: bool,
    /// The secret path or prefix in the URL, for requests refused before
    /// any decision named a target (unauthenticated, malformed).
    url_path: Option<String>,
}

impl Meta {
    /// Captures the request line; `None` for the routes that are not
    /// audited. `route` is the request's table entry ([`route_of`]).
    pub(crate) fn capture(req: &Request, route: Option<Matched>) -> Option<Meta> {
        if route.is_some_and(|r| !r.op().audited) {
            return None;
        }
        Some(Self::capture_always(req, route))
    }

    /// Captures the request line of any request, the unaudited routes
    /// included (for a request refused before it is handled).
    pub(crate) fn capture_always(req: &Request, route: Option<Matched>) -> Meta {
        let matched = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let vault = is_vault(req);
        let op = match route {
            Some(r) => r.op().name,
            None if vault => vault_routes::UNMATCHED.name,
            None => routes::UNMATCHED.name,
        };
        // A Vault listing was rewritten to GET for routing, a PUT to POST;
        // the record says what the client sent.
        let method = if vault && req.extensions().get::<crate::vault::Listing>().is_some() {
            Method::from_bytes(b"LIST").expect("a valid method")
        } else if vault && req.extensions().get::<crate::vault::SentAsPut>().is_some() {
            Method::PUT
        } else {
            req.method().clone()
        };
        // Vault clients may send the token in `X-Vault-Token`; it is tagged
        // like a bearer token.
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .cloned()
            .or_else(|| {
                vault
                    .then(|| req.headers().get(crate::vault::X_VAULT_TOKEN))
                    .flatten()
                    .and_then(|v| {
                        HeaderValue::from_bytes(&[b"Bearer ", v.as_bytes()].concat()).ok()
                    })
            });
        Meta {
            start: Instant::now(),
            time: crate::rfc3339(coffer_core::now_ms()),
            method,
            // A Vault login names the user in its path; the record keeps
            // the template (the name goes in tagged, as `login`, like the
            // native login's), since a name is often a password typed in
            // the wrong box, and a record cannot be edited afterwards.
            route: match matched {
                Some(template) if vault && template.contains("/login/{") => template.to_string(),
                _ => req.uri().path().to_string(),
            },
            op,
            source: req
                .extensions()
                .get::<crate::serve::Peer>()
                .map(|p| p.source.clone()),
            authorization,
            console: crate::ui::is_ui(req.uri().path()),
            url_path: matched
                .and_then(|m| m.split_once('{'))
                .filter(|(_, param)| param.starts_with('*'))
                .and_then(|(prefix, _)| req.uri().path().strip_prefix(prefix))
                .map(str::to_string),
        }
    }
}

/// The table entry a request matched: the native table's or the Vault
/// API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Matched {
    /// A native route (`/api/v1/`).
    Native(&'static Route),
    /// A Vault route (`/v1/`).
    Vault(&'static VaultRoute),
    /// A page or action of the web console (`/ui/`).
    Ui(&'static crate::ui::UiRoute),
}

impl Matched {
    /// The entry's operation.
    pub(crate) fn op(self) -> &'static Op {
        match self {
            Matched::Native(r) => &r.op,
            Matched::Vault(r) => &r.op,
            Matched::Ui(r) => &r.op,
        }
    }
}

/// Whether a request is for the Vault API.
pub(crate) fn is_vault(req: &Request) -> bool {
    req.uri().path().starts_with("/v1/")
}

/// The table entry of the route a request matched, found from its method
/// and the template axum matched; `None` when it matched none (its
/// operation is [`routes::UNMATCHED`], or [`vault_routes::UNMATCHED`]).
pub(crate) fn route_of(req: &Request) -> Option<Matched> {
    let matched = req.extensions().get::<MatchedPath>()?.as_str();
    if is_vault(req) {
        let method = if req.extensions().get::<crate::vault::Listing>().is_some() {
            "LIST"
        } else {
            req.method().as_str()
        };
        return vault_routes::find(method, matched).map(Matched::Vault);
    }
    if crate::ui::is_ui(req.uri().path()) {
        return crate::ui::find(req.method().as_str(), matched).map(Matched::Ui);
    }
    routes::find(req.method().as_str(), matched).map(Matched::Native)
}

/// The answer when a request cannot be recorded.
pub(crate) fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        codes::AUDIT_UNAVAILABLE,
        "the request could not be written to the audit log, so it was refused; \
         an operator must restore an audit sink",
    )
}

/// Runs the handler, catching a panic as a 500 (so that it, too, is
/// answered and audited rather than dropping the connection).
pub(crate) async fn catch_panic<F>(fut: F) -> Response
where
    F: Future<Output = Result<Response, Infallible>>,
{
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(Ok(r))) => Poll::Ready(r),
            Ok(Poll::Ready(Err(never))) => match never {},
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => {
                tracing::error!("a request handler panicked");
                Poll::Ready(
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        codes::INTERNAL,
                        "internal error",
                    )
                    .into_response(),
                )
            }
        }
    })
    .await
}

/// Records a handled request and returns the response to send: `resp`, or
/// 503 if no sink took the record.
pub(crate) async fn record(
    state: &AppState,
    meta: Meta,
    id: RequestId,
    resp: Response,
    facts: Facts,
) -> Response {
    let status = resp.status().as_u16();
    // A token that authenticated comes with its tag (cached with the token);
    // any other token presented, and a login name, are tagged here.
    let cached_tag = facts
        .token_tag
        .filter(|_| meta.authorization.is_some() || meta.console);
    let key = (facts.login.is_some() || (meta.authorization.is_some() && cached_tag.is_none()))
        .then(|| state.coffer.audit_key())
        .flatten();
    let tag = |v: &[u8]| key.as_ref().map(|k| coffer_audit::format_tag(&k.field(v)));
    let token = match cached_tag {
        Some(t) => Some(coffer_audit::format_tag(&t)),
        None => meta
            .authorization
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .and_then(|(_, t)| tag(t.trim().as_bytes())),
    };
    let (decision, path) = match facts.decision {
        Some((op, target, _)) => (Some(op.name().to_string()), Some(target)),
        None => (None, meta.url_path),
    };
    let record = Record {
        time: meta.time,
        kind: Kind::Request,
        request_id: Some(id.to_string()),
        actor: facts.identity.as_ref().map(actor),
        token,
        source: meta.source.as_deref().map(str::to_string),
        method: Some(meta.method.as_str().to_string()),
        route: Some(meta.route),
        op: Some(meta.op.to_string()),
        decision,
        path,
        version: facts.version,
        reads: facts
            .reads
            .into_iter()
            .map(|(path, version)| coffer_audit::record::ReadRef { path, version })
            .collect(),
        writes: facts
            .writes
            .into_iter()
            .map(|(path, version)| coffer_audit::record::ReadRef { path, version })
            .collect(),
        outcome: Some(Outcome::of_status(status)),
        status: Some(status),
        error: resp
            .extensions()
            .get::<ErrorCode>()
            .map(|c| c.0.to_string()),
        duration_us: Some(meta.start.elapsed().as_micros() as u64),
        breakglass: facts.breakglass,
        protected: facts.protected,
        login: facts.login.as_deref().and_then(|l| tag(l.as_bytes())),
        reason: facts.refusal,
        workload: facts.identity.as_ref().and_then(workload),
        needs_binding: facts.needs_binding,
        ..Record::default()
    };
    if state.auditor.record(record).await {
        resp
    } else {
        // The response may carry a secret: it is dropped unsent.
        drop(resp);
        tracing::error!(request_id = %id, status, "a request could not be audited; its response was withheld");
        crate::request::in_scope(id, || unavailable().into_response())
    }
}

/// How records name an identity.
pub(crate) fn actor(i: &coffer_core::Identity) -> Actor {
    Actor {
        kind: if i.is_human() { "human" } else { "service" }.to_string(),
        name: i.display_name().to_string(),
        accessor: i.accessor().to_string(),
        via: i.secret_id_accessor().map(str::to_string),
    }
}

/// How records name the workload a machine login issued the token to.
pub(crate) fn workload(i: &coffer_core::Identity) -> Option<coffer_audit::record::Workload> {
    let w = i.token().workload.as_ref()?;
    Some(coffer_audit::record::Workload {
        method: w.method.clone(),
        role: w.role.clone(),
        issuer: w.issuer.clone(),
        subject: w.subject.clone(),
        claims: w.claims.clone(),
    })
}
