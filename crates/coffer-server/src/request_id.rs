//! Request ids: every response carries `x-request-id`, and error bodies repeat
//! it, so a user's report can be matched to the server log (and, later, to the
//! audit record). Ids are a random per-process prefix and a counter: unique,
//! cheap, and not guessable across restarts.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

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

/// Middleware: assigns the id, runs the request with it in scope, and adds the
/// response headers every API response gets.
pub(crate) async fn middleware(req: Request, next: Next) -> Response {
    let id = RequestId {
        prefix: prefix(),
        counter: COUNTER.fetch_add(1, Ordering::Relaxed),
    };
    let mut resp = CURRENT.scope(id, next.run(req)).await;
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        headers.insert("x-request-id", v);
    }
    // Responses can carry secrets: no cache anywhere may keep them.
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}
