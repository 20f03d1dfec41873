//! Wire types of the access model: policies, tokens, users, invitations,
//! protected prefixes and break-glass.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::TokenInfo;

/// A secret string on the wire (a token, a password, an invitation code, a
/// TOTP seed): no `Debug`, wiped on drop.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WireSecret(pub String);

impl Drop for WireSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl WireSecret {
    /// The secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// `PUT /api/v1/sys/policies/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyWriteRequest {
    /// Policy source text.
    pub policy: String,
}

/// A policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyResponse {
    /// Name.
    pub name: String,
    /// Source text.
    pub policy: String,
    /// Who last wrote it.
    pub updated_by: String,
    /// When.
    pub updated_at: String,
}

/// `GET /api/v1/sys/policies`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyListResponse {
    /// Names, `root` first.
    pub policies: Vec<String>,
}

/// `POST /api/v1/auth/tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreateRequest {
    /// Policies (a subset of the creating token's).
    pub policies: Vec<String>,
    /// Lifetime and renewal period, like `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Limit that renewals cannot pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<String>,
    /// Number of requests allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u64>,
    /// Networks the token may be used from (CIDR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
    /// A name for token lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// A newly created token (from `POST /api/v1/auth/tokens` or a login): the
/// token itself, shown once, and its description.
#[derive(Serialize, Deserialize)]
pub struct NewToken {
    /// The token. Shown once; only its keyed hash is stored.
    pub token: WireSecret,
    /// Its description (`accessor`, `policies`, ...).
    #[serde(flatten)]
    pub info: TokenInfo,
    /// A JWT login through a role that today's rules would refuse (stored
    /// before a rule existed; it still logs in): what the role lacks, for
    /// the workload's own log to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_binding: Option<String>,
}

/// `GET /api/v1/auth/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenListResponse {
    /// Every token.
    pub tokens: Vec<TokenInfo>,
}

/// `POST /api/v1/auth/login`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// User name.
    pub user: String,
    /// Password.
    pub password: WireSecret,
    /// Six-digit one-time code, for accounts with TOTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
}

/// `POST /api/v1/auth/invites`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteCreateRequest {
    /// Policies the new user's logins will carry.
    pub policies: Vec<String>,
    /// How long the code stays valid (default `24h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// A new invitation: the code is shown once.
#[derive(Serialize, Deserialize)]
pub struct InviteCreateResponse {
    /// One-time code (`cfi_...`).
    pub code: WireSecret,
    /// When it stops working.
    pub expires_at: String,
}

/// `POST /api/v1/auth/invites/accept`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteAcceptRequest {
    /// The invitation code.
    pub code: WireSecret,
    /// Chosen user name.
    pub user: String,
    /// Chosen password.
    pub password: WireSecret,
}

/// A user (never a password hash or TOTP seed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserInfo {
    /// Canonical name.
    pub name: String,
    /// Policies a login receives.
    pub policies: Vec<String>,
    /// Disabled users cannot log in.
    pub disabled: bool,
    /// When they joined.
    pub created_at: String,
    /// Who invited them.
    pub invited_by: String,
    /// Last login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_at: Option<String>,
    /// Whether logins need a one-time code.
    pub totp: bool,
}

/// `PATCH /api/v1/sys/users/{name}`: what to change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdateRequest {
    /// New policies for the user's logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<String>>,
    /// Turn the user's one-time codes off (a lost authenticator).
    #[serde(default)]
    pub reset_totp: bool,
}

/// `GET /api/v1/sys/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserListResponse {
    /// Users.
    pub users: Vec<UserInfo>,
}

/// The answer to `POST /api/v1/auth/totp`: shown once.
#[derive(Serialize, Deserialize)]
pub struct TotpEnrollResponse {
    /// Base32 seed, for typing into an authenticator app.
    pub secret: WireSecret,
    /// `otpauth://` URI, for a QR code.
    pub uri: WireSecret,
}

/// `POST /api/v1/auth/totp/confirm` and `/disable`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpCodeRequest {
    /// A current six-digit code.
    pub code: String,
}

/// A one-time code is a credential for its 30 seconds: `Debug` does not
/// show it.
impl std::fmt::Debug for TotpCodeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpCodeRequest")
            .field("code", &"[redacted]")
            .finish()
    }
}

/// `POST /api/v1/sys/protected`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectRequest {
    /// Pattern such as `*/prod/*`.
    pub pattern: String,
}

/// A protected prefix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtectedInfo {
    /// The pattern.
    pub pattern: String,
    /// Who marked it.
    pub created_by: String,
    /// When.
    pub created_at: String,
}

/// `GET /api/v1/sys/protected`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtectedListResponse {
    /// Patterns.
    pub protected: Vec<ProtectedInfo>,
}

/// `POST /api/v1/sys/breakglass`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakglassRequest {
    /// A secret path, or a folder ending in `/`.
    pub path: String,
    /// Why.
    pub reason: String,
    /// How long (default `15m`, at most `4h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// A break-glass grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BreakglassGrant {
    /// Grant id.
    pub id: String,
    /// The person.
    pub user: String,
    /// The token that asked.
    pub accessor: String,
    /// Secret path or folder covered.
    pub path: String,
    /// Why.
    pub reason: String,
    /// When.
    pub created_at: String,
    /// Until when.
    pub expires_at: String,
}

/// `GET /api/v1/sys/breakglass`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BreakglassListResponse {
    /// Live grants.
    pub grants: Vec<BreakglassGrant>,
}
