//! Wire types of machine logins: JWT/OIDC roles and the workload identity
//! the tokens they issue carry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::access::WireSecret;

/// Who a workload token was issued to (also in audit records).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    /// How it logged in: `jwt` (or `approle`).
    pub method: String,
    /// The role it logged in with.
    pub role: String,
    /// The JWT's issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The JWT's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The values of the role's bound claims.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
}

/// `PUT /api/v1/auth/jwt/roles/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtRoleWriteRequest {
    /// `github`, `gitlab` or `kubernetes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// The issuer (`iss`), exactly; a preset may default it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// What `aud` must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Where to fetch the issuer's keys (HTTPS); without it and `jwks`, OIDC
    /// discovery from the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// The issuer's public keys, as a JWKS document, stored with the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// Claims bound to exact values (any one of them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bound_claims: BTreeMap<String, Vec<String>>,
    /// Claims bound to glob patterns (`*` matches any run of characters).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bound_globs: BTreeMap<String, Vec<String>>,
    /// The policies tokens get.
    pub policies: Vec<String>,
    /// The tokens' lifetime (default `15m`, at most `6h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// A JWT role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtRoleResponse {
    /// Name.
    pub name: String,
    /// The preset it was written with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// The issuer.
    pub issuer: String,
    /// The audience.
    pub audience: String,
    /// `discovery`, `jwks_url` or `jwks` (stored).
    pub keys: String,
    /// The JWKS URL, for `jwks_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Claims bound to exact values.
    #[serde(default)]
    pub bound_claims: BTreeMap<String, Vec<String>>,
    /// Claims bound to globs.
    #[serde(default)]
    pub bound_globs: BTreeMap<String, Vec<String>>,
    /// Policies.
    pub policies: Vec<String>,
    /// Token lifetime.
    pub ttl: String,
    /// Who last wrote it.
    pub updated_by: String,
    /// When.
    pub updated_at: String,
    /// What today's rules require that this role (written before them)
    /// lacks: it still logs in, but should be rewritten with the binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_binding: Option<String>,
}

/// `GET /api/v1/auth/jwt/roles`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JwtRoleListResponse {
    /// Role names.
    pub roles: Vec<String>,
    /// Roles that today's rules would refuse (written before them), with
    /// what each lacks: they still log in, but should be rewritten.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub needs_binding: BTreeMap<String, String>,
}

/// `POST /api/v1/auth/jwt/login`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtLoginRequest {
    /// The role to log in with.
    pub role: String,
    /// The JWT the platform issued.
    pub jwt: WireSecret,
}
