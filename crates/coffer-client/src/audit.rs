//! Calls of the audit API (admin: `admin` on `sys/audit`), and posting
//! alerts to webhooks.

use coffer_api::{self as api, WireSecret};
use hyper::Method;

use coffer_api::routes;

use crate::{Client, ClientError, ErrorKind, Url, encode_query};

/// Query parameters of [`coffer_api::routes::AUDIT_QUERY`].
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// A secret path, folder (`app/prod/`) or pattern (`*/prod/*`).
    pub path: Option<String>,
    /// A name, accessor, or `hmac-sha256:` tag.
    pub actor: Option<String>,
    /// RFC 3339 time or date; records at or after it.
    pub since: Option<String>,
    /// RFC 3339 time or date; records before it.
    pub until: Option<String>,
    /// `ok`, `denied` or `error`.
    pub outcome: Option<String>,
    /// An operation such as `secret.read`.
    pub op: Option<String>,
    /// `request`, `alert` or `notice`.
    pub kind: Option<String>,
    /// At most this many (the most recent).
    pub limit: Option<usize>,
    /// Only machine logins through a role that needs a binding.
    pub needs_binding: bool,
    /// Also the files rotation set aside, oldest first.
    pub rotated: bool,
}

impl Client {
    /// Verifies the server's audit log files, or one file beside them.
    /// With `rotated`, each log's whole history: the files rotation set
    /// aside, oldest first, each continuing the one before it.
    pub async fn audit_verify(
        &self,
        file: Option<&str>,
        rotated: bool,
    ) -> Result<api::AuditVerifyResponse, ClientError> {
        self.call(
            Url::to(&routes::AUDIT_VERIFY, &[]),
            Some(&api::AuditVerifyRequest {
                file: file.map(str::to_string),
                rotated,
                stream: false,
            }),
        )
        .await
    }

    /// Verifies a collector's copy of a standard-output or socket sink,
    /// `file` on the server (in the directory of one of its audit logs):
    /// one report per chain, that is per run of the server.
    pub async fn audit_verify_stream(
        &self,
        file: &str,
    ) -> Result<api::AuditVerifyResponse, ClientError> {
        self.call(
            Url::to(&routes::AUDIT_VERIFY, &[]),
            Some(&api::AuditVerifyRequest {
                file: Some(file.to_string()),
                rotated: false,
                stream: true,
            }),
        )
        .await
    }

    /// Searches the server's audit log.
    pub async fn audit_records(
        &self,
        q: &AuditQuery,
    ) -> Result<api::AuditRecordsResponse, ClientError> {
        let mut params = Vec::new();
        let pairs = [
            ("path", &q.path),
            ("actor", &q.actor),
            ("since", &q.since),
            ("until", &q.until),
            ("outcome", &q.outcome),
            ("op", &q.op),
            ("type", &q.kind),
        ];
        for (name, value) in pairs {
            if let Some(v) = value {
                params.push(format!("{name}={}", encode_query(v)));
            }
        }
        if let Some(l) = q.limit {
            params.push(format!("limit={l}"));
        }
        if q.needs_binding {
            params.push("needs_binding=true".into());
        }
        if q.rotated {
            params.push("rotated=true".into());
        }
        let url = Url::to(&routes::AUDIT_QUERY, &[]).query(&params);
        self.call::<(), _>(url, None).await
    }

    /// Every identity that read a secret (optionally one version), over
    /// the log's whole history, or with `rotated` false the live file alone.
    pub async fn audit_readers(
        &self,
        path: &str,
        version: Option<u64>,
        rotated: bool,
    ) -> Result<api::AuditReadersResponse, ClientError> {
        let mut params = vec![format!("path={}", encode_query(path))];
        if let Some(v) = version {
            params.push(format!("version={v}"));
        }
        if !rotated {
            params.push("rotated=false".into());
        }
        let url = Url::to(&routes::AUDIT_READERS, &[]).query(&params);
        self.call::<(), _>(url, None).await
    }

    /// The HMAC under which audit records show `value`.
    pub async fn audit_hash(&self, value: &str) -> Result<api::AuditHashResponse, ClientError> {
        self.call(
            Url::to(&routes::AUDIT_HASH, &[]),
            Some(&api::AuditHashRequest {
                value: WireSecret(value.to_string()),
            }),
        )
        .await
    }

    /// Acknowledges the gap that record `record` of `file` (default: the
    /// server's first log file) reports.
    pub async fn audit_acknowledge_gap(
        &self,
        file: Option<&str>,
        record: u64,
        reason: &str,
    ) -> Result<api::AuditAckGapResponse, ClientError> {
        self.call(
            Url::to(&routes::AUDIT_ACKNOWLEDGE_GAP, &[]),
            Some(&api::AuditAckGapRequest {
                file: file.map(str::to_string),
                record,
                reason: reason.to_string(),
            }),
        )
        .await
    }

    /// Sets the server's audit log files aside and starts new ones.
    pub async fn audit_rotate(&self) -> Result<api::AuditRotateResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::AUDIT_ROTATE, &[]), None)
            .await
    }

    /// POSTs `json` (the body's exact bytes) to the client's address itself
    /// (a webhook URL) with `headers` besides, succeeding on any 2xx answer.
    ///
    /// The receiver's answer is judged by its status alone: its body is
    /// never read (a hostile receiver could send megabytes, or text meant
    /// for coffer's log), and the error says only the status. Redirects are
    /// not followed (the signature would go to another host).
    pub async fn post_to_address(
        &self,
        json: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<(), ClientError> {
        let mut req = self
            .request(Method::POST, "")?
            .header(hyper::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(http_body_util::Full::new(hyper::body::Bytes::from(json)))
            .map_err(|_| ClientError::new(ErrorKind::Config, "cannot build the request"))?;
        let addr = &self.inner.base;
        let status = tokio::time::timeout(self.inner.timeout, self.inner.http.request(req))
            .await
            .map_err(|_| {
                ClientError::new(
                    ErrorKind::Unreachable,
                    format!("{addr} did not answer within {:?}", self.inner.timeout),
                )
            })?
            .map_err(|e| {
                ClientError::new(
                    ErrorKind::Unreachable,
                    format!("cannot reach {addr}: {}", crate::describe_connect_error(&e)),
                )
            })?
            // The body is dropped unread.
            .status();
        if status.is_success() {
            return Ok(());
        }
        Err(ClientError {
            kind: ErrorKind::Server,
            message: format!("the receiver answered {status}"),
            status: Some(status.as_u16()),
            code: None,
            request_id: None,
        })
    }
}
