//! Coffer's Rust SDK: a typed async client for the native API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coffer_client::ClientError> {
//! use coffer_client::{Client, WireValue};
//! let client = Client::builder("http://127.0.0.1:8270")
//!     .token(std::env::var("COFFER_TOKEN").unwrap_or_default())
//!     .build()?;
//! client.write("myapp/dev/API_KEY", &WireValue::Text("s3cr3t".into()), None).await?;
//! let secret = client.read("myapp/dev/API_KEY", None).await?;
//! assert!(matches!(&secret.value, WireValue::Text(v) if v == "s3cr3t"));
//! # Ok(()) }
//! ```
//!
//! An application that gets its secrets from `coffer run` checks them at
//! startup with [`require`], which names every missing variable at once.
//!
//! The token is held in a zeroizing string and sent only in the
//! `Authorization` header. Errors carry the server's message (which never
//! contains a value) and a [`ErrorKind`] that maps to the CLI's exit statuses.

#![forbid(unsafe_code)]

mod access;
mod approle;
mod audit;
mod foreign;
mod leak;
mod lifecycle;
mod require;
mod share;
mod workload;
pub use audit::AuditQuery;
pub use leak::{KnownValues, MIN_CANDIDATE, candidates};
pub use require::{MissingVars, require, require_from};
pub use share::{NewShare, ShareLink, ShareOptions};
pub use workload::{github_actions_jwt, github_runner_available};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coffer_crypto::SecretString;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use coffer_api::{
    self as api, InitResponse, KeyringResponse, ListEntry, ListResponse, MetadataResponse,
    ReadResponse, SealStatus, TokenInfo, VersionsResponse, WireValue, WriteResponse,
};

/// Largest response body the client accepts.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// The class of a failure, one per CLI exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server could not be reached (connection refused, DNS, TLS, timeout).
    Unreachable,
    /// The server is sealed or not initialized.
    Sealed,
    /// Missing, invalid or expired token.
    Unauthenticated,
    /// The token may not do this.
    Forbidden,
    /// Too many attempts; try again later.
    RateLimited,
    /// No such secret or version.
    NotFound,
    /// Bad input, or a value over the size limit.
    Invalid,
    /// Check-and-set failed or already initialized.
    Conflict,
    /// The server failed, or answered something that is not coffer's API.
    Server,
    /// The client was misconfigured (bad address, unreadable CA file).
    Config,
}

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ClientError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// A message for people; never contains a value or token.
    pub message: String,
    /// HTTP status, when the server answered.
    pub status: Option<u16>,
    /// The server's error code, when it answered with one.
    pub code: Option<String>,
    /// The request id, when the server answered.
    pub request_id: Option<String>,
}

impl ClientError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> ClientError {
        ClientError {
            kind,
            message: message.into(),
            status: None,
            code: None,
            request_id: None,
        }
    }
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    addr: String,
    token: Option<SecretString>,
    ca_cert: Option<PathBuf>,
    timeout: Duration,
}

impl ClientBuilder {
    /// Sets the token sent as `Authorization: Bearer`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        let t: String = token.into();
        self.token = (!t.is_empty()).then(|| SecretString::new(t));
        self
    }

    /// Sets the token from a secret string.
    pub fn secret_token(mut self, token: SecretString) -> Self {
        self.token = (!token.is_empty()).then_some(token);
        self
    }

    /// Trusts the CA certificates (PEM) in this file instead of the system's.
    pub fn ca_cert(mut self, path: impl AsRef<Path>) -> Self {
        self.ca_cert = Some(path.as_ref().to_path_buf());
        self
    }

    /// Limits each request's total time (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the client. TLS roots are loaded only for `https://` addresses.
    pub fn build(self) -> Result<Client, ClientError> {
        let base: Uri = self.addr.trim_end_matches('/').parse().map_err(|_| {
            ClientError::new(
                ErrorKind::Config,
                format!(
                    "invalid server address {:?}; expected http(s)://host:port",
                    self.addr
                ),
            )
        })?;
        let https = match base.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(ClientError::new(
                    ErrorKind::Config,
                    format!(
                        "server address {:?} must start with http:// or https://",
                        self.addr
                    ),
                ));
            }
        };
        if base.authority().is_none() {
            return Err(ClientError::new(
                ErrorKind::Config,
                format!("server address {:?} has no host", self.addr),
            ));
        }
        let tls = tls_config(https, self.ca_cert.as_deref())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: base.to_string().trim_end_matches('/').to_string(),
                token: self.token,
                timeout: self.timeout,
            }),
        })
    }
}

fn tls_config(https: bool, ca: Option<&Path>) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if https {
        match ca {
            Some(path) => {
                let file = std::fs::File::open(path).map_err(|e| {
                    ClientError::new(
                        ErrorKind::Config,
                        format!("cannot read CA file {}: {e}", path.display()),
                    )
                })?;
                for cert in rustls_pemfile::certs(&mut std::io::BufReader::new(file)) {
                    let cert = cert.map_err(|e| {
                        ClientError::new(ErrorKind::Config, format!("{}: {e}", path.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        ClientError::new(ErrorKind::Config, format!("{}: {e}", path.display()))
                    })?;
                }
                if roots.is_empty() {
                    return Err(ClientError::new(
                        ErrorKind::Config,
                        format!("{} contains no certificate", path.display()),
                    ));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for cert in native.certs {
                    let _ = roots.add(cert);
                }
            }
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ClientError::new(ErrorKind::Config, e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client of one coffer server. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    token: Option<SecretString>,
    timeout: Duration,
}

/// Listing options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Every path below the prefix.
    pub recursive: bool,
    /// Include deleted secrets.
    pub include_deleted: bool,
    /// Resume after this entry.
    pub after: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
}

pub use coffer_api::routes::encode_path;
use coffer_api::routes::{self, Route, encode_segment as encode_query};

/// The answer to a call that changes versions.
type VersionsResult = Result<VersionsResponse, ClientError>;

/// What a call asks for: its route's method, and its URL with the route's
/// parameters filled in from the route table (then any query string).
struct Url {
    method: Method,
    path_and_query: String,
}

impl Url {
    /// The route's method and URL; `params` fill its template in order.
    fn to(route: &Route, params: &[&str]) -> Url {
        Url {
            method: match route.method {
                routes::Method::Get => Method::GET,
                routes::Method::Put => Method::PUT,
                routes::Method::Post => Method::POST,
                routes::Method::Delete => Method::DELETE,
                routes::Method::Patch => Method::PATCH,
            },
            path_and_query: route.url(params),
        }
    }

    /// Appends a query string built from `params` (`name=value`, already
    /// encoded), if there are any.
    fn query(mut self, params: &[String]) -> Url {
        if !params.is_empty() {
            self.path_and_query.push('?');
            self.path_and_query.push_str(&params.join("&"));
        }
        self
    }
}

impl Client {
    /// Starts building a client for `addr` (`http(s)://host:port`).
    pub fn builder(addr: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            addr: addr.into(),
            token: None,
            ca_cert: None,
            timeout: Duration::from_secs(60),
        }
    }

    /// The server address.
    pub fn addr(&self) -> &str {
        &self.inner.base
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        url: Url,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let bytes = self.call_raw(url, body).await?;
        serde_json::from_slice(&bytes).map_err(|_| {
            ClientError::new(
                ErrorKind::Server,
                "the server's answer is not the expected JSON",
            )
        })
    }

    /// A request to this server with the user agent and, if there is one,
    /// the token (marked sensitive, so no HTTP layer logs it).
    fn request(
        &self,
        method: Method,
        path_and_query: &str,
    ) -> Result<hyper::http::request::Builder, ClientError> {
        let uri = format!("{}{}", self.inner.base, path_and_query);
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header("user-agent", concat!("coffer/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = &self.inner.token {
            let mut value =
                hyper::header::HeaderValue::from_str(&format!("Bearer {}", t.expose_secret()))
                    .map_err(|_| {
                        ClientError::new(
                            ErrorKind::Config,
                            "the token contains characters that cannot be sent",
                        )
                    })?;
            value.set_sensitive(true);
            req = req.header(hyper::header::AUTHORIZATION, value);
        }
        Ok(req)
    }

    async fn call_raw<B: Serialize>(
        &self,
        url: Url,
        body: Option<&B>,
    ) -> Result<Bytes, ClientError> {
        let mut req = self.request(url.method, &url.path_and_query)?;
        let body = match body {
            Some(b) => {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(b).map_err(|_| {
                    ClientError::new(ErrorKind::Config, "cannot encode the request")
                })?)
            }
            None => Bytes::new(),
        };
        self.send(req, body).await
    }

    /// Sends a request built by [`Client::request`] with `body`; the answer's
    /// body on 2xx, else the error it describes.
    async fn send(
        &self,
        req: hyper::http::request::Builder,
        body: Bytes,
    ) -> Result<Bytes, ClientError> {
        let req = req
            .body(Full::new(body))
            .map_err(|_| ClientError::new(ErrorKind::Config, "cannot build the request"))?;
        let addr = &self.inner.base;
        let work = async {
            let resp = self
                .inner
                .http
                .request(req)
                .await
                .map_err(|e| unreachable(addr, &e))?;
            let status = resp.status();
            let request_id = request_id_of(&resp);
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|_| {
                    ClientError::new(
                        ErrorKind::Unreachable,
                        format!("connection to {addr} failed mid-response"),
                    )
                })?
                .to_bytes();
            Ok::<_, ClientError>((status, request_id, bytes))
        };
        let (status, request_id, bytes) = tokio::time::timeout(self.inner.timeout, work)
            .await
            .map_err(|_| {
            ClientError::new(
                ErrorKind::Unreachable,
                format!(
                    "coffer at {addr} did not answer within {:?}",
                    self.inner.timeout
                ),
            )
        })??;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(error_from_response(status, request_id, &bytes))
    }

    // ---- system ----

    /// Seal status (no token needed).
    pub async fn status(&self) -> Result<SealStatus, ClientError> {
        self.call::<(), _>(Url::to(&routes::SYS_STATUS, &[]), None)
            .await
    }

    /// Seal status and the server's clock (its `Date` header), for
    /// measuring clock skew.
    pub async fn status_and_time(
        &self,
    ) -> Result<(SealStatus, Option<std::time::SystemTime>), ClientError> {
        let url = Url::to(&routes::SYS_STATUS, &[]);
        let req = self
            .request(url.method, &url.path_and_query)?
            .body(Full::new(Bytes::new()))
            .map_err(|_| ClientError::new(ErrorKind::Config, "cannot build the request"))?;
        let addr = &self.inner.base;
        let work = async {
            let resp = self
                .inner
                .http
                .request(req)
                .await
                .map_err(|e| unreachable(addr, &e))?;
            let date = resp
                .headers()
                .get(hyper::header::DATE)
                .and_then(|d| d.to_str().ok())
                .and_then(|d| httpdate::parse_http_date(d).ok());
            let status = resp.status();
            let request_id = request_id_of(&resp);
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|_| {
                    ClientError::new(
                        ErrorKind::Unreachable,
                        format!("connection to {addr} failed mid-response"),
                    )
                })?
                .to_bytes();
            if !status.is_success() {
                return Err(error_from_response(status, request_id, &bytes));
            }
            let s: SealStatus = serde_json::from_slice(&bytes).map_err(|_| {
                ClientError::new(
                    ErrorKind::Server,
                    "the server's answer is not the expected JSON",
                )
            })?;
            Ok((s, date))
        };
        tokio::time::timeout(self.inner.timeout, work)
            .await
            .map_err(|_| {
                ClientError::new(
                    ErrorKind::Unreachable,
                    format!(
                        "coffer at {addr} did not answer within {:?}",
                        self.inner.timeout
                    ),
                )
            })?
    }

    /// Initialises the server; the answer is shown once.
    pub async fn init(&self, shares: u8, threshold: u8) -> Result<InitResponse, ClientError> {
        self.call(
            Url::to(&routes::SYS_INIT, &[]),
            Some(&api::InitRequest { shares, threshold }),
        )
        .await
    }

    /// Provides one unseal key share.
    pub async fn unseal(&self, key: &SecretString) -> Result<SealStatus, ClientError> {
        let req = api::UnsealRequest {
            key: Some(key.expose_secret().to_string()),
            reset: false,
        };
        self.call(Url::to(&routes::SYS_UNSEAL, &[]), Some(&req))
            .await
    }

    /// Forgets the unseal progress.
    pub async fn unseal_reset(&self) -> Result<SealStatus, ClientError> {
        let req = api::UnsealRequest {
            key: None,
            reset: true,
        };
        self.call(Url::to(&routes::SYS_UNSEAL, &[]), Some(&req))
            .await
    }

    /// Seals the server.
    pub async fn seal(&self) -> Result<(), ClientError> {
        self.call_raw::<()>(Url::to(&routes::SYS_SEAL, &[]), None)
            .await
            .map(drop)
    }

    /// The keyring's key ids and creation times.
    pub async fn keyring(&self) -> Result<KeyringResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::SYS_KEYRING, &[]), None)
            .await
    }

    /// Downloads an encrypted backup of the whole store into `out` (admin
    /// only), returning the number of bytes written. The transfer may take
    /// as long as it needs; it fails if the server goes quiet for longer than
    /// the client's timeout.
    pub async fn backup<W>(&self, out: &mut W) -> Result<u64, ClientError>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        use tokio::io::AsyncWriteExt;
        let url = Url::to(&routes::SYS_BACKUP, &[]);
        let req = self
            .request(url.method, &url.path_and_query)?
            .body(Full::new(Bytes::new()))
            .map_err(|_| ClientError::new(ErrorKind::Config, "cannot build the request"))?;
        let addr = &self.inner.base;
        let quiet = || {
            ClientError::new(
                ErrorKind::Unreachable,
                format!("coffer at {addr} went quiet during the backup"),
            )
        };
        let broken = || {
            ClientError::new(
                ErrorKind::Unreachable,
                format!("connection to {addr} failed mid-backup"),
            )
        };
        let resp = tokio::time::timeout(self.inner.timeout, self.inner.http.request(req))
            .await
            .map_err(|_| quiet())?
            .map_err(|e| unreachable(addr, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let request_id = request_id_of(&resp);
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|_| broken())?
                .to_bytes();
            return Err(error_from_response(status, request_id, &bytes));
        }
        let mut body = resp.into_body();
        let mut written = 0u64;
        while let Some(frame) = tokio::time::timeout(self.inner.timeout, body.frame())
            .await
            .map_err(|_| quiet())?
        {
            let frame = frame.map_err(|_| broken())?;
            if let Ok(data) = frame.into_data() {
                out.write_all(&data).await.map_err(|e| {
                    ClientError::new(ErrorKind::Config, format!("cannot write the backup: {e}"))
                })?;
                written += data.len() as u64;
            }
        }
        Ok(written)
    }

    /// Adds a keyring key for new writes.
    pub async fn rotate(&self) -> Result<KeyringResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::SYS_ROTATE, &[]), None)
            .await
    }

    // ---- secrets ----

    /// Reads the current version, or `version`.
    pub async fn read(
        &self,
        path: &str,
        version: Option<u64>,
    ) -> Result<ReadResponse<WireValue>, ClientError> {
        let mut url = Url::to(&routes::SECRET_READ, &[path.trim_start_matches('/')]);
        if let Some(v) = version {
            url = url.query(&[format!("version={v}")]);
        }
        self.call::<(), _>(url, None).await
    }

    /// Reads every live secret directly under each of `prefixes`, and each
    /// of `secrets`, in one request. All or nothing: a refused read refuses
    /// the request (403), a named secret that does not exist is 404.
    pub async fn bundle(
        &self,
        prefixes: &[String],
        secrets: &[coffer_api::BundleRef],
    ) -> Result<Vec<ReadResponse<WireValue>>, ClientError> {
        Ok(self.bundle_response(prefixes, secrets).await?.secrets)
    }

    /// As [`Client::bundle`], with the whole answer (including whether the
    /// server allows an offline copy of it).
    pub async fn bundle_response(
        &self,
        prefixes: &[String],
        secrets: &[coffer_api::BundleRef],
    ) -> Result<coffer_api::BundleResponse<WireValue>, ClientError> {
        let body = coffer_api::BundleRequest {
            prefixes: prefixes.to_vec(),
            secrets: secrets.to_vec(),
        };
        self.call(Url::to(&routes::SECRET_BUNDLE, &[]), Some(&body))
            .await
    }

    /// Writes many secrets in one transaction, all or nothing: each entry is
    /// (path, value, check-and-set version).
    pub async fn import(
        &self,
        writes: &[(&str, &WireValue, Option<u64>)],
    ) -> Result<Vec<WriteResponse>, ClientError> {
        #[derive(Serialize)]
        struct Entry<'a> {
            path: &'a str,
            value: &'a WireValue,
            #[serde(skip_serializing_if = "Option::is_none")]
            cas: Option<u64>,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            secrets: Vec<Entry<'a>>,
        }
        let body = Body {
            secrets: writes
                .iter()
                .map(|&(path, value, cas)| Entry { path, value, cas })
                .collect(),
        };
        let resp: coffer_api::ImportResponse = self
            .call(Url::to(&routes::SECRET_IMPORT, &[]), Some(&body))
            .await?;
        Ok(resp.written)
    }

    /// Writes a secret's whole history in one transaction (see
    /// `PUT /api/v1/history/{path}`): created, appended to a secret that
    /// holds its first versions, or unchanged; anything else is a conflict.
    pub async fn import_history(
        &self,
        path: &str,
        history: &api::HistoryRequest,
    ) -> Result<api::HistoryResponse, ClientError> {
        let url = Url::to(
            &routes::SECRET_HISTORY_IMPORT,
            &[path.trim_start_matches('/')],
        );
        self.call(url, Some(history)).await
    }

    /// Writes a new version; with `cas`, only if the current version is `cas`.
    pub async fn write(
        &self,
        path: &str,
        value: &WireValue,
        cas: Option<u64>,
    ) -> Result<WriteResponse, ClientError> {
        #[derive(Serialize)]
        struct Body<'a> {
            value: &'a WireValue,
            #[serde(skip_serializing_if = "Option::is_none")]
            cas: Option<u64>,
        }
        let url = Url::to(&routes::SECRET_WRITE, &[path.trim_start_matches('/')]);
        self.call(url, Some(&Body { value, cas })).await
    }

    /// Soft-deletes versions (empty: the current one).
    pub async fn delete(
        &self,
        path: &str,
        versions: &[u64],
    ) -> Result<VersionsResponse, ClientError> {
        let mut url = Url::to(&routes::SECRET_DELETE, &[path.trim_start_matches('/')]);
        if !versions.is_empty() {
            let list: Vec<String> = versions.iter().map(u64::to_string).collect();
            url = url.query(&[format!("versions={}", list.join(","))]);
        }
        self.call::<(), _>(url, None).await
    }

    /// Restores soft-deleted versions (empty: the current one).
    pub async fn undelete(&self, path: &str, versions: &[u64]) -> VersionsResult {
        self.change_versions(&routes::SECRET_UNDELETE, path, versions)
            .await
    }

    /// Erases versions for good (empty: the current one).
    pub async fn destroy(&self, path: &str, versions: &[u64]) -> VersionsResult {
        self.change_versions(&routes::SECRET_DESTROY, path, versions)
            .await
    }

    /// Undelete and destroy: the same request on two routes.
    async fn change_versions(&self, route: &Route, path: &str, versions: &[u64]) -> VersionsResult {
        let url = Url::to(route, &[path.trim_start_matches('/')]);
        let body = api::VersionsRequest {
            versions: versions.to_vec(),
        };
        self.call(url, Some(&body)).await
    }

    /// Metadata and history.
    pub async fn metadata(&self, path: &str) -> Result<MetadataResponse, ClientError> {
        let url = Url::to(&routes::SECRET_METADATA, &[path.trim_start_matches('/')]);
        self.call::<(), _>(url, None).await
    }

    /// One page of a listing.
    pub async fn list_page(
        &self,
        prefix: &str,
        options: &ListOptions,
    ) -> Result<ListResponse, ClientError> {
        let prefix = prefix.trim_matches('/');
        let url = if prefix.is_empty() {
            Url::to(&routes::SECRET_LIST_ROOT, &[])
        } else {
            Url::to(&routes::SECRET_LIST, &[prefix])
        };
        let mut params = Vec::new();
        if options.recursive {
            params.push("recursive=true".to_string());
        }
        if options.include_deleted {
            params.push("include_deleted=true".to_string());
        }
        if let Some(a) = &options.after {
            params.push(format!("after={}", encode_query(a)));
        }
        if let Some(l) = options.limit {
            params.push(format!("limit={l}"));
        }
        self.call::<(), _>(url.query(&params), None).await
    }

    /// Every entry of a listing, following pages.
    pub async fn list_all(
        &self,
        prefix: &str,
        options: &ListOptions,
    ) -> Result<Vec<ListEntry>, ClientError> {
        let mut options = options.clone();
        let mut all = Vec::new();
        loop {
            let page = self.list_page(prefix, &options).await?;
            all.extend(page.entries);
            match page.next {
                Some(next) => options.after = Some(next),
                None => return Ok(all),
            }
        }
    }
}

/// The request id the server gave an answer.
fn request_id_of<B>(resp: &hyper::Response<B>) -> Option<String> {
    resp.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The error for a server that could not be reached at `addr`.
fn unreachable(addr: &str, e: &hyper_util::client::legacy::Error) -> ClientError {
    ClientError::new(
        ErrorKind::Unreachable,
        format!(
            "cannot reach coffer at {addr}: {}",
            describe_connect_error(e)
        ),
    )
}

fn describe_connect_error(e: &hyper_util::client::legacy::Error) -> String {
    // The innermost cause is the useful part ("Connection refused").
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn error_from_response(status: StatusCode, request_id: Option<String>, body: &[u8]) -> ClientError {
    let parsed: Option<api::ErrorBody> = serde_json::from_slice(body).ok();
    let (code, message) = match parsed {
        Some(b) => (Some(b.error.code), b.error.message),
        None => (
            None,
            format!("the server answered {status} without a coffer error body"),
        ),
    };
    let kind = match (status.as_u16(), code.as_deref()) {
        (_, Some(api::codes::SEALED | api::codes::NOT_INITIALIZED)) | (503, _) => ErrorKind::Sealed,
        (401, _) => ErrorKind::Unauthenticated,
        (403, _) => ErrorKind::Forbidden,
        (429, _) => ErrorKind::RateLimited,
        (404, _) => ErrorKind::NotFound,
        (400 | 413 | 422, _) => ErrorKind::Invalid,
        (409, _) => ErrorKind::Conflict,
        _ => ErrorKind::Server,
    };
    ClientError {
        kind,
        message,
        status: Some(status.as_u16()),
        code,
        request_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape_their_url_segment() {
        assert_eq!(encode_path("app/dev/KEY"), "app/dev/KEY");
        assert_eq!(encode_path("a b?c#d%"), "a%20b%3Fc%23d%25");
        assert_eq!(encode_query("x/y&z=1"), "x%2Fy%26z%3D1");
    }

    #[test]
    fn bad_addresses_are_config_errors() {
        for addr in ["", "ftp://x", "127.0.0.1:8270", "http://"] {
            let err = Client::builder(addr).build().err().unwrap();
            assert_eq!(err.kind, ErrorKind::Config, "{addr}");
        }
        assert!(Client::builder("http://127.0.0.1:8270").build().is_ok());
    }

    #[test]
    fn error_bodies_map_to_kinds() {
        let body =
            br#"{"error":{"code":"not_found","message":"no secret at a/b","request_id":"x"}}"#;
        let e = error_from_response(StatusCode::NOT_FOUND, None, body);
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::NotFound, "no secret at a/b")
        );
        let e = error_from_response(StatusCode::BAD_GATEWAY, None, b"<html>");
        assert_eq!(e.kind, ErrorKind::Server);
        assert!(e.message.contains("502"));
    }
}
