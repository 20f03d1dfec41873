//! Calls of the secret lifecycle: reads by label, generated writes,
//! rotation, promotion, expiry, lifecycle rules, the rotation status
//! report, rollback, copy and move, and environment promotion.

use coffer_api::lifecycle as wire;
use coffer_api::{ReadResponse, WireValue, WriteResponse};
use hyper::Method;
use serde::Serialize;

use crate::{Client, ClientError, encode_path, encode_query};

fn route(base: &str, path: &str) -> String {
    format!(
        "/api/v1/{base}/{}",
        encode_path(path.trim_start_matches('/'))
    )
}

impl Client {
    /// Reads the version a label (`current`, `previous`, `pending`) names.
    pub async fn read_label(
        &self,
        path: &str,
        label: &str,
    ) -> Result<ReadResponse<WireValue>, ClientError> {
        let url = format!("{}?label={}", route("secrets", path), encode_query(label));
        self.call::<(), _>(Method::GET, &url, None).await
    }

    /// Stores a value the server generates from `spec` (`FORMAT[:N]`); the
    /// value is never sent back.
    pub async fn write_generated(
        &self,
        path: &str,
        spec: &str,
        cas: Option<u64>,
    ) -> Result<WriteResponse, ClientError> {
        #[derive(Serialize)]
        struct Body<'a> {
            generate: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            cas: Option<u64>,
        }
        self.call(
            Method::PUT,
            &route("secrets", path),
            Some(&Body {
                generate: spec,
                cas,
            }),
        )
        .await
    }

    /// Rotates a secret.
    pub async fn rotate_secret(
        &self,
        path: &str,
        request: &wire::RotateRequest,
    ) -> Result<wire::RotateResponse, ClientError> {
        self.call(Method::POST, &route("rotate", path), Some(request))
            .await
    }

    /// Creates a secret that manages two alternating PostgreSQL roles.
    pub async fn manage_postgres(
        &self,
        path: &str,
        request: &wire::PostgresManageRequest,
    ) -> Result<wire::PostgresManageResponse, ClientError> {
        self.call(Method::POST, &route("postgres", path), Some(request))
            .await
    }

    /// A managed secret's binding.
    pub async fn postgres_info(&self, path: &str) -> Result<wire::PostgresInfo, ClientError> {
        self.call::<(), _>(Method::GET, &route("postgres", path), None)
            .await
    }

    /// Cancels a staged rotation.
    pub async fn cancel_rotation(&self, path: &str) -> Result<wire::RotateResponse, ClientError> {
        self.call::<(), _>(Method::DELETE, &route("rotate", path), None)
            .await
    }

    /// Promotes the pending version to current.
    pub async fn promote(
        &self,
        path: &str,
        grace: Option<&str>,
    ) -> Result<wire::RotateResponse, ClientError> {
        let body = wire::PromoteRequest {
            grace: grace.map(str::to_string),
        };
        self.call(Method::POST, &route("promote", path), Some(&body))
            .await
    }

    /// Sets (or, with an empty request, clears) a secret's expiry.
    pub async fn set_expiry(
        &self,
        path: &str,
        request: &wire::ExpiryRequest,
    ) -> Result<wire::RotateResponse, ClientError> {
        self.call(Method::PUT, &route("expiry", path), Some(request))
            .await
    }

    /// Writes a new version equal to `version`.
    pub async fn rollback(&self, path: &str, version: u64) -> Result<WriteResponse, ClientError> {
        self.call(
            Method::POST,
            &route("rollback", path),
            Some(&wire::RollbackRequest { version }),
        )
        .await
    }

    /// Copies (or, with `remove_source`, moves) a secret with its history.
    pub async fn copy_secret(
        &self,
        from: &str,
        to: &str,
        remove_source: bool,
    ) -> Result<WriteResponse, ClientError> {
        let body = wire::CopyRequest {
            from: from.to_string(),
            to: to.to_string(),
            remove_source,
        };
        self.call(Method::POST, "/api/v1/copy", Some(&body)).await
    }

    /// Previews (`apply: None`) or applies an environment promotion.
    pub async fn promote_env(
        &self,
        request: &wire::PromoteEnvRequest,
    ) -> Result<wire::PromoteEnvResponse, ClientError> {
        self.call(Method::POST, "/api/v1/promote-env", Some(request))
            .await
    }

    /// The rotation status of the secrets under a prefix.
    pub async fn rotation_status(&self, prefix: &str) -> Result<wire::StatusResponse, ClientError> {
        let prefix = prefix.trim_matches('/');
        let url = if prefix.is_empty() {
            "/api/v1/rotation/status".to_string()
        } else {
            format!("/api/v1/rotation/status/{}/", encode_path(prefix))
        };
        self.call::<(), _>(Method::GET, &url, None).await
    }

    /// Every lifecycle rule.
    pub async fn list_rules(&self) -> Result<wire::RuleListResponse, ClientError> {
        self.call::<(), _>(Method::GET, "/api/v1/sys/lifecycle", None)
            .await
    }

    /// Creates or replaces a lifecycle rule.
    pub async fn set_rule(&self, rule: &wire::RuleRequest) -> Result<wire::RuleInfo, ClientError> {
        self.call(Method::PUT, "/api/v1/sys/lifecycle", Some(rule))
            .await
    }

    /// Removes a lifecycle rule.
    pub async fn delete_rule(&self, pattern: &str) -> Result<(), ClientError> {
        self.call_raw::<()>(
            Method::DELETE,
            &format!("/api/v1/sys/lifecycle?pattern={}", encode_query(pattern)),
            None,
        )
        .await
        .map(drop)
    }
}
