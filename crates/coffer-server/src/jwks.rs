//! Fetching JWT issuers' public documents (OIDC discovery, JWKS) for
//! machine logins: the transport half of `coffer_core::jwt::KeyFetcher`.
//!
//! HTTPS with the system's roots, or plain HTTP to a loopback address only
//! (tests, development); no redirects; at most
//! [`coffer_core::jwt::MAX_JWKS_BYTES`], refused while read; a 10 s bound
//! on the whole exchange. How often it is called is the core's business
//! (at most one fetch per role per `JWKS_REFETCH_SECS`).

use std::time::Duration;

use coffer_core::jwt::{FetchFuture, KeyFetcher, MAX_JWKS_BYTES, check_fetch_url};

/// The whole exchange's bound.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches over HTTPS (loopback HTTP) with coffer's own client stack.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpsFetcher;

impl KeyFetcher for HttpsFetcher {
    fn fetch<'a>(&'a self, url: &'a str) -> FetchFuture<'a> {
        Box::pin(async move {
            check_fetch_url(url).map_err(|why| format!("{url} is not fetched: {why}"))?;
            let scheme_end = url.find("://").map_or(0, |i| i + 3);
            let path_start = url[scheme_end..]
                .find(['/', '?'])
                .map_or(url.len(), |i| scheme_end + i);
            let (origin, path) = url.split_at(path_start);
            let path = if path.is_empty() { "/" } else { path };
            let client = coffer_client::Client::builder(origin)
                .timeout(FETCH_TIMEOUT)
                .build()
                .map_err(|e| e.message)?;
            let (status, body) = client
                .get_document(path, MAX_JWKS_BYTES)
                .await
                .map_err(|e| e.message)?;
            if status != 200 {
                return Err(format!("{origin} answered {status}"));
            }
            Ok(body.expose_secret().to_vec())
        })
    }
}
