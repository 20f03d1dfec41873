//! Calls of the access model: policies, tokens, login, invitations, users,
//! one-time codes, protected prefixes and break-glass.

use coffer_api::{self as api, WireSecret};
use coffer_crypto::SecretString;
use hyper::Method;

use crate::{Client, ClientError, encode_query};

fn segment(s: &str) -> String {
    // A name or accessor is one URL segment: a slash inside it is encoded.
    encode_query(s)
}

impl Client {
    // ---- policies ----

    /// Names of every policy.
    pub async fn list_policies(&self) -> Result<api::PolicyListResponse, ClientError> {
        self.call::<(), _>(Method::GET, "/api/v1/sys/policies", None)
            .await
    }

    /// One policy's source.
    pub async fn read_policy(&self, name: &str) -> Result<api::PolicyResponse, ClientError> {
        self.call::<(), _>(
            Method::GET,
            &format!("/api/v1/sys/policies/{}", segment(name)),
            None,
        )
        .await
    }

    /// Creates or replaces a policy.
    pub async fn write_policy(
        &self,
        name: &str,
        source: &str,
    ) -> Result<api::PolicyResponse, ClientError> {
        self.call(
            Method::PUT,
            &format!("/api/v1/sys/policies/{}", segment(name)),
            Some(&api::PolicyWriteRequest {
                policy: source.to_string(),
            }),
        )
        .await
    }

    /// Deletes a policy.
    pub async fn delete_policy(&self, name: &str) -> Result<(), ClientError> {
        self.call_raw::<()>(
            Method::DELETE,
            &format!("/api/v1/sys/policies/{}", segment(name)),
            None,
        )
        .await
        .map(drop)
    }

    // ---- tokens ----

    /// Creates a child of the calling token.
    pub async fn create_token(
        &self,
        request: &api::TokenCreateRequest,
    ) -> Result<api::NewToken, ClientError> {
        self.call(Method::POST, "/api/v1/auth/tokens", Some(request))
            .await
    }

    /// Every token (admin).
    pub async fn list_tokens(&self) -> Result<api::TokenListResponse, ClientError> {
        self.call::<(), _>(Method::GET, "/api/v1/auth/tokens", None)
            .await
    }

    fn token_route(accessor: Option<&str>, suffix: &str) -> String {
        match accessor {
            None => format!("/api/v1/auth/token/self{suffix}"),
            Some(a) => format!("/api/v1/auth/tokens/{}{suffix}", segment(a)),
        }
    }

    /// Looks up a token by accessor, or the calling token.
    pub async fn lookup_token(
        &self,
        accessor: Option<&str>,
    ) -> Result<api::TokenInfo, ClientError> {
        self.call::<(), _>(Method::GET, &Self::token_route(accessor, ""), None)
            .await
    }

    /// Renews a token by accessor, or the calling token.
    pub async fn renew_token(&self, accessor: Option<&str>) -> Result<api::TokenInfo, ClientError> {
        self.call::<(), _>(Method::POST, &Self::token_route(accessor, "/renew"), None)
            .await
    }

    /// Revokes a token (and its descendants) by accessor, or the calling token.
    pub async fn revoke_token(&self, accessor: Option<&str>) -> Result<(), ClientError> {
        self.call_raw::<()>(Method::DELETE, &Self::token_route(accessor, ""), None)
            .await
            .map(drop)
    }

    // ---- people ----

    /// Logs in; needs no token.
    pub async fn login(
        &self,
        user: &str,
        password: &SecretString,
        totp: Option<&str>,
    ) -> Result<api::NewToken, ClientError> {
        let req = api::LoginRequest {
            user: user.to_string(),
            password: WireSecret(password.expose_secret().to_string()),
            totp: totp.map(str::to_string),
        };
        self.call(Method::POST, "/api/v1/auth/login", Some(&req))
            .await
    }

    /// Creates an invitation (admin).
    pub async fn create_invite(
        &self,
        request: &api::InviteCreateRequest,
    ) -> Result<api::InviteCreateResponse, ClientError> {
        self.call(Method::POST, "/api/v1/auth/invites", Some(request))
            .await
    }

    /// Accepts an invitation; needs no token.
    pub async fn accept_invite(
        &self,
        code: &SecretString,
        user: &str,
        password: &SecretString,
    ) -> Result<api::UserInfo, ClientError> {
        let req = api::InviteAcceptRequest {
            code: WireSecret(code.expose_secret().to_string()),
            user: user.to_string(),
            password: WireSecret(password.expose_secret().to_string()),
        };
        self.call(Method::POST, "/api/v1/auth/invites/accept", Some(&req))
            .await
    }

    /// Every user (admin).
    pub async fn list_users(&self) -> Result<api::UserListResponse, ClientError> {
        self.call::<(), _>(Method::GET, "/api/v1/sys/users", None)
            .await
    }

    /// One user (admin).
    pub async fn get_user(&self, name: &str) -> Result<api::UserInfo, ClientError> {
        self.call::<(), _>(
            Method::GET,
            &format!("/api/v1/sys/users/{}", segment(name)),
            None,
        )
        .await
    }

    /// Disables or enables a user (admin).
    pub async fn set_user_disabled(
        &self,
        name: &str,
        disabled: bool,
    ) -> Result<api::UserInfo, ClientError> {
        let action = if disabled { "disable" } else { "enable" };
        self.call::<(), _>(
            Method::POST,
            &format!("/api/v1/sys/users/{}/{action}", segment(name)),
            None,
        )
        .await
    }

    /// Changes a user's policies and/or resets their one-time codes (admin).
    pub async fn update_user(
        &self,
        name: &str,
        request: &api::UserUpdateRequest,
    ) -> Result<api::UserInfo, ClientError> {
        self.call(
            Method::PATCH,
            &format!("/api/v1/sys/users/{}", segment(name)),
            Some(request),
        )
        .await
    }

    /// Removes a user (admin).
    pub async fn delete_user(&self, name: &str) -> Result<(), ClientError> {
        self.call_raw::<()>(
            Method::DELETE,
            &format!("/api/v1/sys/users/{}", segment(name)),
            None,
        )
        .await
        .map(drop)
    }

    /// Starts TOTP enrollment for the logged-in person.
    pub async fn enroll_totp(&self) -> Result<api::TotpEnrollResponse, ClientError> {
        self.call::<(), _>(Method::POST, "/api/v1/auth/totp", None)
            .await
    }

    /// Confirms enrollment (`confirm`) or turns codes off, with a current code.
    pub async fn totp_code(&self, confirm: bool, code: &str) -> Result<(), ClientError> {
        let route = if confirm {
            "/api/v1/auth/totp/confirm"
        } else {
            "/api/v1/auth/totp/disable"
        };
        self.call_raw(
            Method::POST,
            route,
            Some(&api::TotpCodeRequest {
                code: code.to_string(),
            }),
        )
        .await
        .map(drop)
    }

    // ---- protected prefixes and break-glass ----

    /// Protected patterns (admin).
    pub async fn list_protected(&self) -> Result<api::ProtectedListResponse, ClientError> {
        self.call::<(), _>(Method::GET, "/api/v1/sys/protected", None)
            .await
    }

    /// Marks a pattern protected (admin).
    pub async fn protect(&self, pattern: &str) -> Result<api::ProtectedInfo, ClientError> {
        self.call(
            Method::POST,
            "/api/v1/sys/protected",
            Some(&api::ProtectRequest {
                pattern: pattern.to_string(),
            }),
        )
        .await
    }

    /// Removes a protection (admin).
    pub async fn unprotect(&self, pattern: &str) -> Result<(), ClientError> {
        self.call_raw::<()>(
            Method::DELETE,
            &format!("/api/v1/sys/protected?pattern={}", encode_query(pattern)),
            None,
        )
        .await
        .map(drop)
    }

    /// Asks for break-glass access.
    pub async fn breakglass(
        &self,
        request: &api::BreakglassRequest,
    ) -> Result<api::BreakglassGrant, ClientError> {
        self.call(Method::POST, "/api/v1/sys/breakglass", Some(request))
            .await
    }

    /// Live break-glass grants (admin).
    pub async fn list_breakglass(&self) -> Result<api::BreakglassListResponse, ClientError> {
        self.call::<(), _>(Method::GET, "/api/v1/sys/breakglass", None)
            .await
    }
}
