//! Calls of the access model: policies, tokens, login, invitations, users,
//! one-time codes, protected prefixes and break-glass.

use coffer_api::{self as api, WireSecret};
use coffer_crypto::SecretString;

use coffer_api::routes::{self, Route};

use crate::{Client, ClientError, Url, encode_query};

impl Client {
    // ---- policies ----

    /// Names of every policy.
    pub async fn list_policies(&self) -> Result<api::PolicyListResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::POLICY_LIST, &[]), None)
            .await
    }

    /// One policy's source.
    pub async fn read_policy(&self, name: &str) -> Result<api::PolicyResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::POLICY_READ, &[name]), None)
            .await
    }

    /// Creates or replaces a policy.
    pub async fn write_policy(
        &self,
        name: &str,
        source: &str,
    ) -> Result<api::PolicyResponse, ClientError> {
        self.call(
            Url::to(&routes::POLICY_WRITE, &[name]),
            Some(&api::PolicyWriteRequest {
                policy: source.to_string(),
            }),
        )
        .await
    }

    /// Deletes a policy.
    pub async fn delete_policy(&self, name: &str) -> Result<(), ClientError> {
        self.call_raw::<()>(Url::to(&routes::POLICY_DELETE, &[name]), None)
            .await
            .map(drop)
    }

    // ---- tokens ----

    /// Creates a child of the calling token.
    pub async fn create_token(
        &self,
        request: &api::TokenCreateRequest,
    ) -> Result<api::NewToken, ClientError> {
        self.call(Url::to(&routes::TOKEN_CREATE, &[]), Some(request))
            .await
    }

    /// Every token (admin).
    pub async fn list_tokens(&self) -> Result<api::TokenListResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::TOKEN_LIST, &[]), None)
            .await
    }

    /// The route on the token `accessor` names, or on the calling token.
    fn token_url(accessor: Option<&str>, by_accessor: &Route, own: &Route) -> Url {
        match accessor {
            None => Url::to(own, &[]),
            Some(a) => Url::to(by_accessor, &[a]),
        }
    }

    /// Looks up a token by accessor, or the calling token.
    pub async fn lookup_token(
        &self,
        accessor: Option<&str>,
    ) -> Result<api::TokenInfo, ClientError> {
        self.call::<(), _>(
            Self::token_url(accessor, &routes::TOKEN_LOOKUP, &routes::TOKEN_LOOKUP_SELF),
            None,
        )
        .await
    }

    /// Renews a token by accessor, or the calling token.
    pub async fn renew_token(&self, accessor: Option<&str>) -> Result<api::TokenInfo, ClientError> {
        self.call::<(), _>(
            Self::token_url(accessor, &routes::TOKEN_RENEW, &routes::TOKEN_RENEW_SELF),
            None,
        )
        .await
    }

    /// Revokes a token (and its descendants) by accessor, or the calling token.
    pub async fn revoke_token(&self, accessor: Option<&str>) -> Result<(), ClientError> {
        self.call_raw::<()>(
            Self::token_url(accessor, &routes::TOKEN_REVOKE, &routes::TOKEN_REVOKE_SELF),
            None,
        )
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
        self.call(Url::to(&routes::AUTH_LOGIN, &[]), Some(&req))
            .await
    }

    /// Creates an invitation (admin).
    pub async fn create_invite(
        &self,
        request: &api::InviteCreateRequest,
    ) -> Result<api::InviteCreateResponse, ClientError> {
        self.call(Url::to(&routes::INVITE_CREATE, &[]), Some(request))
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
        self.call(Url::to(&routes::INVITE_ACCEPT, &[]), Some(&req))
            .await
    }

    /// Every user (admin).
    pub async fn list_users(&self) -> Result<api::UserListResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::USER_LIST, &[]), None)
            .await
    }

    /// One user (admin).
    pub async fn get_user(&self, name: &str) -> Result<api::UserInfo, ClientError> {
        self.call::<(), _>(Url::to(&routes::USER_READ, &[name]), None)
            .await
    }

    /// Disables or enables a user (admin).
    pub async fn set_user_disabled(
        &self,
        name: &str,
        disabled: bool,
    ) -> Result<api::UserInfo, ClientError> {
        let route = if disabled {
            &routes::USER_DISABLE
        } else {
            &routes::USER_ENABLE
        };
        self.call::<(), _>(Url::to(route, &[name]), None).await
    }

    /// Changes a user's policies and/or resets their one-time codes (admin).
    pub async fn update_user(
        &self,
        name: &str,
        request: &api::UserUpdateRequest,
    ) -> Result<api::UserInfo, ClientError> {
        self.call(Url::to(&routes::USER_UPDATE, &[name]), Some(request))
            .await
    }

    /// Removes a user (admin).
    pub async fn delete_user(&self, name: &str) -> Result<(), ClientError> {
        self.call_raw::<()>(Url::to(&routes::USER_DELETE, &[name]), None)
            .await
            .map(drop)
    }

    /// Starts TOTP enrollment for the logged-in person.
    pub async fn enroll_totp(&self) -> Result<api::TotpEnrollResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::TOTP_ENROLL, &[]), None)
            .await
    }

    /// Confirms enrollment (`confirm`) or turns codes off, with a current code.
    pub async fn totp_code(&self, confirm: bool, code: &str) -> Result<(), ClientError> {
        let route = if confirm {
            &routes::TOTP_CONFIRM
        } else {
            &routes::TOTP_DISABLE
        };
        self.call_raw(
            Url::to(route, &[]),
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
        self.call::<(), _>(Url::to(&routes::PROTECTED_LIST, &[]), None)
            .await
    }

    /// Marks a pattern protected (admin).
    pub async fn protect(&self, pattern: &str) -> Result<api::ProtectedInfo, ClientError> {
        self.call(
            Url::to(&routes::PROTECTED_ADD, &[]),
            Some(&api::ProtectRequest {
                pattern: pattern.to_string(),
            }),
        )
        .await
    }

    /// Removes a protection (admin).
    pub async fn unprotect(&self, pattern: &str) -> Result<(), ClientError> {
        let url = Url::to(&routes::PROTECTED_REMOVE, &[])
            .query(&[format!("pattern={}", encode_query(pattern))]);
        self.call_raw::<()>(url, None).await.map(drop)
    }

    /// Asks for break-glass access.
    pub async fn breakglass(
        &self,
        request: &api::BreakglassRequest,
    ) -> Result<api::BreakglassGrant, ClientError> {
        self.call(Url::to(&routes::BREAKGLASS_GRANT, &[]), Some(request))
            .await
    }

    /// Live break-glass grants (admin).
    pub async fn list_breakglass(&self) -> Result<api::BreakglassListResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::BREAKGLASS_LIST, &[]), None)
            .await
    }
}
