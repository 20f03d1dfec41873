//! Wire types of app roles: machine logins with a role id and a secret id.

use serde::{Deserialize, Serialize};

use crate::WireSecret;

/// `PUT /api/v1/auth/approle/roles/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleCreateRequest {
    /// Policies of the tokens logins get; the creator must hold each.
    pub policies: Vec<String>,
    /// Lifetime of a login's token (default `15m`, at most `24h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ttl: Option<String>,
    /// Requests a login's token may make (default unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_uses: Option<u64>,
    /// Lifetime of a secret id (default `24h`, at most `2160h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id_ttl: Option<String>,
    /// Logins one secret id allows (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id_uses: Option<u64>,
    /// Networks logins may come from; the tokens are bound to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
}

/// An app role (its role id is an identifier, not a secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppRoleInfo {
    /// Name.
    pub name: String,
    /// The role id a login names.
    pub role_id: String,
    /// Policies of the tokens.
    pub policies: Vec<String>,
    /// Lifetime of a token (`15m`).
    pub token_ttl: String,
    /// Requests a token may make; absent is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_uses: Option<u64>,
    /// Lifetime of a secret id.
    pub secret_id_ttl: String,
    /// Logins per secret id.
    pub secret_id_uses: u64,
    /// Networks.
    #[serde(default)]
    pub cidrs: Vec<String>,
    /// Who created it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
}

/// `GET /api/v1/auth/approle/roles`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppRoleListResponse {
    /// Every app role.
    pub roles: Vec<AppRoleInfo>,
}

/// A secret id's public description (never the id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretIdInfo {
    /// The accessor: a handle to list and revoke the secret id by.
    pub accessor: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
    /// Logins left.
    pub uses_left: u64,
}

/// `POST /api/v1/auth/approle/roles/{name}/secret-ids`.
#[derive(Serialize, Deserialize)]
pub struct NewSecretId {
    /// The secret id. Shown once; only its keyed hash is stored.
    pub secret_id: WireSecret,
    /// Its description.
    #[serde(flatten)]
    pub info: SecretIdInfo,
}

/// `GET /api/v1/auth/approle/roles/{name}/secret-ids`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretIdListResponse {
    /// The role's live secret ids.
    pub secret_ids: Vec<SecretIdInfo>,
}

/// `POST /api/v1/auth/approle/roles/{name}/secret-ids/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretIdRevokeRequest {
    /// The accessor of the secret id to revoke.
    pub accessor: String,
}

/// `POST /api/v1/auth/approle/login`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleLoginRequest {
    /// The role id.
    pub role_id: String,
    /// The secret id.
    pub secret_id: WireSecret,
}
