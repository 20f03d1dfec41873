//! The request layer: the one tower layer every request passes. It assigns
//! the request id, applies the edge checks and the login and unseal
//! throttles, refuses a body declared over the limit, runs the handler in
//! the core's audit scope, answers a body that missed its deadline with
//! 408, and records the request through the audit layer (`audit_layer.rs`)
//! before the response leaves.
//!
//! Request ids: every response carries `x-request-id`, and error bodies repeat
//! it, so a user's report can be matched to the server log and to the
//! audit record. Ids are a random per-process prefix and a counter: unique,
//! cheap, and not guessable across restarts.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::edge::Edge;
use coffer_api::routes;
use coffer_api::vault_routes;

use crate::audit_layer::{self, Matched, Meta};
use crate::error::ApiError;
use crate::serve::{BodyTimedOut, Peer};
use crate::state::AppState;
use crate::throttle::Outcome;

/// A request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    prefix: u32,
    counter: u64,
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}-{:012x}", self.prefix, self.counter)
    }
}

tokio::task_local! {
    static CURRENT: RequestId;
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn prefix() -> u32 {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    *PREFIX.get_or_init(|| u32::from_be_bytes(coffer_crypto::random::bytes::<4>()))
}

/// The id of the request being handled, if called inside one.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(|id| *id).ok()
}

/// Runs `f` with `id` as the current request id (for error bodies built
/// outside the request's own scope).
pub(crate) fn in_scope<R>(id: RequestId, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(id, f)
}

/// The one layer every request passes: assigns the request id and runs the
/// request with it in scope, refuses a body whose declared length is over the
/// limit before reading any of it (bodies without a declared length are cut
/// off at the limit while being read, by `DefaultBodyLimit`), records the
/// request in the audit log before its response leaves (see
/// `audit_layer.rs`), and adds the headers every API response gets.
///
/// Written as a plain tower layer rather than `axum::middleware::from_fn`:
/// that adapter clones and boxes the inner service on every request, which
/// measured as a quarter of the in-process cost of a read.
///
/// Before anything else it applies [`crate::edge`]'s checks (request
/// target, `Host`, content type, where `init` may come from) and the
/// per-source throttles of login and unseal; a request refused there is
/// audited like any other.
#[derive(Clone)]
pub(crate) struct RequestLayer {
    pub edge: Arc<Edge>,
    pub state: AppState,
}

impl<S> tower::Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestService {
            inner,
            edge: self.edge.clone(),
            state: self.state.clone(),
        }
    }
}

/// The service of [`RequestLayer`].
#[derive(Clone)]
pub(crate) struct RequestService<S> {
    inner: S,
    edge: Arc<Edge>,
    state: AppState,
}

/// A login or unseal attempt, counted against its source.
#[derive(Clone, Copy)]
enum Attempt {
    Login(IpAddr),
    Unseal(IpAddr),
    /// An open of a share link: counted against its source and, for a
    /// well-formed id of a link that exists, against the link.
    ShareOpen(IpAddr, Option<crate::throttle::LinkKey>),
}

impl Attempt {
    fn of(req: &Request, route: Option<Matched>) -> Option<Attempt> {
        let route = route?;
        let ip = req.extensions().get::<Peer>()?.addr.ip();
        if route == Matched::Native(&routes::AUTH_LOGIN)
            || route == Matched::Native(&routes::APPROLE_LOGIN)
            || route == Matched::Native(&routes::AUTH_JWT_LOGIN)
            || route == Matched::Vault(&vault_routes::USERPASS_LOGIN)
            || route == Matched::Ui(&crate::ui::LOGIN)
        {
            Some(Attempt::Login(ip))
        } else if route == Matched::Native(&routes::SYS_UNSEAL) {
            Some(Attempt::Unseal(ip))
        } else if route == Matched::Native(&routes::SHARE_OPEN) {
            // Decoded as the route decodes it, so percent-encoding an id
            // neither dodges its count nor splits it.
            let id = req
                .uri()
                .path()
                .strip_prefix("/api/v1/shares/")
                .and_then(|p| p.strip_suffix("/open"))
                .and_then(percent_decode)
                .unwrap_or_default();
            Some(Attempt::ShareOpen(ip, crate::throttle::LinkKey::of(&id)))
        } else {
            None
        }
    }

    fn begin(self, edge: &Edge) -> Result<(), ApiError> {
        match self {
            Attempt::Login(ip) => edge.login.begin(ip).map_err(|wait| {
                ApiError::rate_limited(
                    "too many failed logins from this address; try again later",
                    wait,
                )
            }),
            Attempt::Unseal(ip) => edge.unseal.begin(ip).map_err(|wait| {
                ApiError::rate_limited(
                    "too many failed unseal attempts from this address; try again later",
                    wait,
                )
            }),
            Attempt::ShareOpen(ip, link) => {
                edge.share_open.begin(ip).map_err(|wait| {
                    ApiError::rate_limited(
                        "too many failed share link opens from this address; try again later",
                        wait,
                    )
                })?;
                let Some(link) = link else {
                    return Ok(());
                };
                edge.share_link.check(link).map_err(|wait| {
                    // Not counted against the address: it was not tried.
                    edge.share_open.end(ip, Outcome::Neutral);
                    ApiError::rate_limited(
                        "too many failed opens of this share link; try again later",
                        wait,
                    )
                })
            }
        }
    }

    /// Settles the attempt; `link_existed`: the answer is to a failed open
    /// of a share link that exists ([`crate::throttle::LinkExisted`]).
    fn end(self, edge: &Edge, status: StatusCode, link_existed: bool) {
        match self {
            // A login refused because its account is paced counts too:
            // otherwise one address could knock on a paced account as
            // often as it likes, each knock a store read and an alert.
            Attempt::Login(ip) => edge.login.end(
                ip,
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS {
                    Outcome::Failed
                } else {
                    Outcome::Neutral
                },
            ),
            Attempt::Unseal(ip) => edge.unseal.end(
                ip,
                if status == StatusCode::BAD_REQUEST {
                    Outcome::Failed
                } else {
                    Outcome::Neutral
                },
            ),
            // An unknown, used-up or expired link is a failed guess.
            Attempt::ShareOpen(ip, link) => {
                let outcome =
                    if status == StatusCode::NOT_FOUND || status == StatusCode::TOO_MANY_REQUESTS {
                        Outcome::Failed
                    } else {
                        Outcome::Neutral
                    };
                edge.share_open.end(ip, outcome);
                // Per link: only an id that names a link, and only a failed
                // open of it (an unknown id counts against its address alone).
                if let Some(link) = link
                    && link_existed
                    && status == StatusCode::NOT_FOUND
                {
                    edge.share_link.fail(link);
                }
            }
        }
    }
}

/// Percent-decodes a path segment to UTF-8 (as the router's path
/// extractor does); `None` if it is not valid.
fn percent_decode(segment: &str) -> Option<String> {
    let b = segment.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower::Service<Request> for RequestService<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Response, std::convert::Infallible>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let id = RequestId {
            prefix: prefix(),
            counter: COUNTER.fetch_add(1, Ordering::Relaxed),
        };
        let edge_refusal = self.edge.check(&req);
        let route = audit_layer::route_of(&req);
        let counted = Counted {
            metrics: self.state.metrics.clone(),
            operation: match route {
                Some(r) => r.op().name,
                None if audit_layer::is_vault(&req) => vault_routes::UNMATCHED.name,
                None => routes::UNMATCHED.name,
            },
            start: std::time::Instant::now(),
        };
        // Errors of the Vault API get Vault's body, whoever made them.
        let vault = audit_layer::is_vault(&req);
        // The console's, its error page with its page headers.
        let ui = crate::ui::is_ui(req.uri().path());
        let shape = move |resp: Response| {
            if vault {
                crate::vault::error_body(resp)
            } else if ui {
                crate::ui::console_error(resp)
            } else {
                resp
            }
        };
        let meta = match (Meta::capture(&req, route), &edge_refusal) {
            (Some(meta), _) => meta,
            // Health and status are audited only when refused here.
            (None, Some(_)) => Meta::capture_always(&req, route),
            (None, None) => {
                // Health and status: not audited, never refused for the audit.
                let fut = CURRENT.scope(id, self.inner.call(req));
                return Box::pin(async move { Ok(counted.finish(shape(fut.await?), id)) });
            }
        };
        let state = self.state.clone();
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let attempt = if edge_refusal.is_none() {
            Attempt::of(&req, route)
        } else {
            None
        };
        let throttled = attempt.and_then(|a| a.begin(&self.edge).err());
        let was_throttled = throttled.is_some();
        // A Vault listing (`LIST`, `GET ?list=true`) of a path whose route
        // lists nothing: routed as a GET, it would be served as one (and
        // recorded as unmatched). Vault answers 405.
        let unlisted = vault
            && route.is_none()
            && req.extensions().get::<crate::vault::Listing>().is_some()
            && req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .is_some();
        let refusal = if let Some(err) = edge_refusal {
            Some(err)
        } else if unlisted {
            Some(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                coffer_api::codes::METHOD_NOT_ALLOWED,
                "unsupported operation",
            ))
        } else if let Some(err) = throttled {
            Some(err)
        } else if declared.is_some_and(|n| n > self.edge.body_limit as u64) {
            Some(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                coffer_api::codes::TOO_LARGE,
                "request body is larger than the server accepts",
            ))
        } else if !state.auditor.healthy() {
            // No sink took the last batch: refuse before handling, so that
            // nothing changes unrecorded. Recording this refusal is also how
            // a recovered sink is noticed.
            Some(audit_layer::unavailable())
        } else {
            None
        };
        if let Some(err) = refusal {
            // An attempt refused before it was made (over the body limit,
            // no audit) does not count against its source.
            if let (Some(a), false) = (attempt, was_throttled) {
                a.end(&self.edge, StatusCode::SERVICE_UNAVAILABLE, false);
            }
            let resp = shape(CURRENT.sync_scope(id, || err.into_response()));
            return Box::pin(async move {
                let resp = audit_layer::record(&state, meta, id, resp, Default::default()).await;
                Ok(counted.finish(shape(resp), id))
            });
        }
        let timed_out = req.extensions().get::<BodyTimedOut>().cloned();
        let edge = self.edge.clone();
        let fut = CURRENT.scope(id, audit_layer::catch_panic(self.inner.call(req)));
        Box::pin(async move {
            let (mut resp, facts) = coffer_core::audit::scope(fut).await;
            if timed_out.is_some_and(|t| t.0.load(Ordering::Relaxed)) {
                resp = CURRENT.sync_scope(id, || {
                    ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        coffer_api::codes::REQUEST_TIMEOUT,
                        "the request body did not arrive within the body timeout",
                    )
                    .into_response()
                });
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Some(a) = attempt {
                let existed = resp
                    .extensions()
                    .get::<crate::throttle::LinkExisted>()
                    .is_some();
                a.end(&edge, resp.status(), existed);
            }
            let resp = shape(resp);
            let resp = audit_layer::record(&state, meta, id, resp, facts).await;
            // A response withheld for the audit is an error too.
            let resp = shape(resp);
            Ok(counted.finish(resp, id))
        })
    }
}

/// A request on its way through the layer, to be counted in the metrics
/// once answered (with the status actually sent: 503 when the audit
/// record could not be written).
struct Counted {
    metrics: Arc<crate::metrics::Metrics>,
    operation: &'static str,
    start: std::time::Instant,
}

impl Counted {
    fn finish(self, resp: Response, id: RequestId) -> Response {
        let resp = finish(resp, id);
        self.metrics
            .request(self.operation, resp.status().as_u16(), self.start.elapsed());
        resp
    }
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_CONTENT_TYPE_OPTIONS: HeaderName = HeaderName::from_static("x-content-type-options");

impl RequestId {
    /// The id as `pppppppp-cccccccccccc`, formatted without `fmt` machinery
    /// (this runs on every request).
    fn header_value(&self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 21];
        for i in 0..8 {
            buf[i] = HEX[((self.prefix >> (28 - 4 * i)) & 0xf) as usize];
        }
        buf[8] = b'-';
        for i in 0..12 {
            buf[9 + i] = HEX[((self.counter >> (44 - 4 * i)) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&buf).expect("hex digits and '-' are valid header bytes")
    }
}

fn finish(mut resp: Response, id: RequestId) -> Response {
    let headers = resp.headers_mut();
    headers.insert(X_REQUEST_ID, id.header_value());
    // Responses can carry secrets: no cache anywhere may keep them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_value_matches_display() {
        for (prefix, counter) in [
            (0, 0),
            (0xdeadbeef, 1),
            (u32::MAX, (1 << 48) - 1),
            (0x0102_0304, 0xabc),
        ] {
            let id = RequestId { prefix, counter };
            assert_eq!(id.header_value().to_str().unwrap(), id.to_string());
        }
    }
}
