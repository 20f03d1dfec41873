//! The one HTTP error type. Clients get a stable code and a message written
//! for them; details that could help an attacker or carry a secret (storage
//! errors, parser excerpts) go to the server log only.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coffer_api::{ErrorBody, ErrorDetail, codes};
use coffer_core::CoreError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds to wait before trying again (`Retry-After`).
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with an explicit status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429: try again in `wait` (rounded up to whole seconds).
    pub fn rate_limited(message: impl Into<String>, wait: std::time::Duration) -> ApiError {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError {
            retry_after: Some(secs.max(1)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, codes::RATE_LIMITED, message)
        }
    }

    /// 400 with a message.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID, message)
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable error code.
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }

    /// The message written for the client.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            CoreError::Sealed => (S::SERVICE_UNAVAILABLE, codes::SEALED),
            CoreError::NotInitialized => (S::SERVICE_UNAVAILABLE, codes::NOT_INITIALIZED),
            CoreError::AlreadyInitialized => (S::CONFLICT, codes::CONFLICT),
            CoreError::Unauthenticated => (S::UNAUTHORIZED, codes::UNAUTHENTICATED),
            CoreError::Forbidden(_) => (S::FORBIDDEN, codes::FORBIDDEN),
            CoreError::LoginFailed(_) | CoreError::AppRoleLoginFailed(_) => {
                (S::UNAUTHORIZED, codes::UNAUTHENTICATED)
            }
            CoreError::WorkloadRefused(
                coffer_core::WorkloadRefusal::KeysUnavailable { .. }
                | coffer_core::WorkloadRefusal::KeysTooOld { .. },
            ) => (S::BAD_GATEWAY, codes::UPSTREAM),
            CoreError::WorkloadRefused(_) => (S::UNAUTHORIZED, codes::UNAUTHENTICATED),
            CoreError::RateLimited(_) => (S::TOO_MANY_REQUESTS, codes::RATE_LIMITED),
            CoreError::NotFound(_) => (S::NOT_FOUND, codes::NOT_FOUND),
            CoreError::Path(_) | CoreError::Invalid(_) | CoreError::InvalidUnsealKey(_) => {
                (S::BAD_REQUEST, codes::INVALID)
            }
            CoreError::TooLarge { .. } => (S::PAYLOAD_TOO_LARGE, codes::TOO_LARGE),
            CoreError::Conflict(coffer_core::Conflict::Compromised { .. }) => {
                (S::CONFLICT, codes::COMPROMISED)
            }
            CoreError::Conflict(_) => (S::CONFLICT, codes::CONFLICT),
            CoreError::Expired(_) => (S::FORBIDDEN, codes::EXPIRED),
            CoreError::Corrupt(_) => (S::INTERNAL_SERVER_ERROR, codes::INTEGRITY),
            CoreError::Upstream(_) => (S::BAD_GATEWAY, codes::UPSTREAM),
            CoreError::Storage(_) => (S::INTERNAL_SERVER_ERROR, codes::INTERNAL),
        };
        let message = match &e {
            CoreError::Storage(source) => {
                // The cause stays in the log; the client learns only that it failed.
                tracing::error!(error = %source, "storage failure");
                "internal storage error".to_string()
            }
            CoreError::Corrupt(m) => {
                tracing::error!(detail = %m, "integrity check failed");
                e.to_string()
            }
            _ => e.to_string(),
        };
        let retry_after = matches!(e, CoreError::RateLimited(_))
            .then(|| (coffer_core::LOGIN_PACE_MS as u64).div_ceil(1000));
        ApiError {
            status,
            code,
            message,
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.message;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: message.clone(),
                request_id: crate::request::current().map(|id| id.to_string()),
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        // The audit record names the error code without parsing the body.
        resp.extensions_mut().insert(ErrorCode(self.code));
        // The Vault API rewrites error bodies into its own shape.
        resp.extensions_mut().insert(ErrorMessage(message));
        resp
    }
}

/// The message of an error response, for the Vault API's error body.
#[derive(Debug, Clone)]
pub(crate) struct ErrorMessage(pub String);

/// The error code of an error response, for its audit record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorCode(pub &'static str);

/// Describes a JSON parse failure without quoting the input: serde messages
/// can echo scalars from the body (such as a value sent as a number).
pub(crate) fn json_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = match e.classify() {
        Category::Syntax | Category::Eof => format!(
            "request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
        Category::Data => format!(
            "request body does not have the expected shape (line {}, column {}); see /api/v1/openapi.json",
            e.line(),
            e.column()
        ),
        Category::Io => "request body could not be read".to_string(),
    };
    ApiError::invalid(message)
}
