//! Calls of the secret lifecycle: reads by label, generated writes,
//! rotation, promotion, expiry, lifecycle rules, the rotation status
//! report, rollback, copy and move, and environment promotion.

use coffer_api::lifecycle as wire;
use coffer_api::{ReadResponse, WireValue, WriteResponse};
use serde::Serialize;

use coffer_api::routes::{self, Route};

use crate::{Client, ClientError, Url, encode_query};

/// The URL of a route on one secret's path.
fn on_path(route: &Route, path: &str) -> Url {
    Url::to(route, &[path.trim_start_matches('/')])
}

impl Client {
    /// Reads the version a label (`current`, `previous`, `pending`) names.
    pub async fn read_label(
        &self,
        path: &str,
        label: &str,
    ) -> Result<ReadResponse<WireValue>, ClientError> {
        let url =
            on_path(&routes::SECRET_READ, path).query(&[format!("label={}", encode_query(label))]);
        self.call::<(), _>(url, None).await
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
            on_path(&routes::SECRET_WRITE, path),
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
        self.call(on_path(&routes::SECRET_ROTATE, path), Some(request))
            .await
    }

    /// Creates a secret that manages two alternating PostgreSQL roles.
    pub async fn manage_postgres(
        &self,
        path: &str,
        request: &wire::PostgresManageRequest,
    ) -> Result<wire::PostgresManageResponse, ClientError> {
        self.call(on_path(&routes::POSTGRES_MANAGE, path), Some(request))
            .await
    }

    /// A managed secret's binding.
    pub async fn postgres_info(&self, path: &str) -> Result<wire::PostgresInfo, ClientError> {
        self.call::<(), _>(on_path(&routes::POSTGRES_READ, path), None)
            .await
    }

    /// Cancels a staged rotation.
    pub async fn cancel_rotation(&self, path: &str) -> Result<wire::RotateResponse, ClientError> {
        self.call::<(), _>(on_path(&routes::SECRET_ROTATE_CANCEL, path), None)
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
        self.call(on_path(&routes::SECRET_PROMOTE, path), Some(&body))
            .await
    }

    /// Sets (or, with an empty request, clears) a secret's expiry.
    pub async fn set_expiry(
        &self,
        path: &str,
        request: &wire::ExpiryRequest,
    ) -> Result<wire::RotateResponse, ClientError> {
        self.call(on_path(&routes::SECRET_EXPIRY, path), Some(request))
            .await
    }

    /// Writes a new version equal to `version`.
    pub async fn rollback(&self, path: &str, version: u64) -> Result<WriteResponse, ClientError> {
        self.call(
            on_path(&routes::SECRET_ROLLBACK, path),
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
        self.call(Url::to(&routes::SECRET_COPY, &[]), Some(&body))
            .await
    }

    /// Previews (`apply: None`) or applies an environment promotion.
    pub async fn promote_env(
        &self,
        request: &wire::PromoteEnvRequest,
    ) -> Result<wire::PromoteEnvResponse, ClientError> {
        self.call(Url::to(&routes::SECRET_PROMOTE_ENV, &[]), Some(request))
            .await
    }

    /// The rotation status of the secrets under a prefix.
    pub async fn rotation_status(&self, prefix: &str) -> Result<wire::StatusResponse, ClientError> {
        let prefix = prefix.trim_matches('/');
        let url = if prefix.is_empty() {
            Url::to(&routes::ROTATION_STATUS_ROOT, &[])
        } else {
            // The trailing slash says it is a prefix.
            Url::to(&routes::ROTATION_STATUS, &[&format!("{prefix}/")])
        };
        self.call::<(), _>(url, None).await
    }

    /// Every lifecycle rule.
    pub async fn list_rules(&self) -> Result<wire::RuleListResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::LIFECYCLE_LIST, &[]), None)
            .await
    }

    /// Creates or replaces a lifecycle rule.
    pub async fn set_rule(&self, rule: &wire::RuleRequest) -> Result<wire::RuleInfo, ClientError> {
        self.call(Url::to(&routes::LIFECYCLE_SET, &[]), Some(rule))
            .await
    }

    /// Removes a lifecycle rule.
    pub async fn delete_rule(&self, pattern: &str) -> Result<(), ClientError> {
        let url = Url::to(&routes::LIFECYCLE_REMOVE, &[])
            .query(&[format!("pattern={}", encode_query(pattern))]);
        self.call_raw::<()>(url, None).await.map(drop)
    }
}
