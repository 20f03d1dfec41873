//! Machine logins: JWT roles (admin), logging in with a platform's JWT,
//! and getting that JWT from a GitHub Actions runner.

use coffer_api::routes;
use coffer_api::workload as wire;
use coffer_api::{self as api, WireSecret};
use coffer_crypto::SecretString;

use crate::{Client, ClientError, ErrorKind, Url};

/// The largest answer read from the runner's token endpoint.
const MAX_RUNNER_ANSWER: usize = 64 * 1024;

impl Client {
    /// Every JWT role's name (admin of `sys/auth/jwt/`).
    pub async fn list_jwt_roles(&self) -> Result<wire::JwtRoleListResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::JWT_ROLE_LIST, &[]), None)
            .await
    }

    /// A JWT role.
    pub async fn read_jwt_role(&self, name: &str) -> Result<wire::JwtRoleResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::JWT_ROLE_READ, &[name]), None)
            .await
    }

    /// Creates or replaces a JWT role.
    pub async fn write_jwt_role(
        &self,
        name: &str,
        request: &wire::JwtRoleWriteRequest,
    ) -> Result<wire::JwtRoleResponse, ClientError> {
        self.call(Url::to(&routes::JWT_ROLE_WRITE, &[name]), Some(request))
            .await
    }

    /// Removes a JWT role.
    pub async fn delete_jwt_role(&self, name: &str) -> Result<(), ClientError> {
        self.call_raw::<()>(Url::to(&routes::JWT_ROLE_DELETE, &[name]), None)
            .await
            .map(drop)
    }

    /// Logs a machine in with the JWT its platform issued; needs no token.
    /// The answer holds a service token with the role's policies and TTL.
    pub async fn login_jwt(
        &self,
        role: &str,
        jwt: &SecretString,
    ) -> Result<api::NewToken, ClientError> {
        let req = wire::JwtLoginRequest {
            role: role.to_string(),
            jwt: WireSecret(jwt.expose_secret().to_string()),
        };
        self.call(Url::to(&routes::AUTH_JWT_LOGIN, &[]), Some(&req))
            .await
    }
}

/// Whether this process runs in a GitHub Actions job that may ask for an
/// OIDC token (`permissions: id-token: write`).
pub fn github_runner_available() -> bool {
    std::env::var_os("ACTIONS_ID_TOKEN_REQUEST_URL").is_some()
        && std::env::var_os("ACTIONS_ID_TOKEN_REQUEST_TOKEN").is_some()
}

/// Asks the GitHub Actions runner for an OIDC token for `audience`, from
/// `ACTIONS_ID_TOKEN_REQUEST_URL` with `ACTIONS_ID_TOKEN_REQUEST_TOKEN` as
/// the bearer credential. The request token is sent only over HTTPS (or
/// plain HTTP to a loopback address).
pub async fn github_actions_jwt(audience: &str) -> Result<SecretString, ClientError> {
    let config = |m: &str| ClientError::new(ErrorKind::Config, m);
    let url = std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL").map_err(|_| {
        config("ACTIONS_ID_TOKEN_REQUEST_URL is not set: does the job have `permissions: id-token: write`?")
    })?;
    let request_token = SecretString::new(
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
            .map_err(|_| config("ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set"))?,
    );
    let (origin, path) = split_url(&url)
        .ok_or_else(|| config("ACTIONS_ID_TOKEN_REQUEST_URL is not an https:// URL"))?;
    let separator = if path.contains('?') { '&' } else { '?' };
    let path = format!(
        "{path}{separator}audience={}",
        routes::encode_segment(audience)
    );
    let client = Client::builder(origin)
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let bearer = SecretString::new(format!("Bearer {}", request_token.expose_secret()));
    let (status, body) = client
        .get_from_address(&path, ("authorization", &bearer), MAX_RUNNER_ANSWER)
        .await?;
    if status != 200 {
        return Err(ClientError {
            status: Some(status),
            ..ClientError::new(
                ErrorKind::Unreachable,
                format!("the runner's token endpoint answered {status}"),
            )
        });
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        value: WireSecret,
    }
    let answer: Answer = serde_json::from_slice(body.expose_secret()).map_err(|_| {
        ClientError::new(
            ErrorKind::Unreachable,
            "the runner's token endpoint did not answer with a token",
        )
    })?;
    Ok(SecretString::new(answer.value.expose().to_string()))
}

/// `https://host[:port]` and the rest, for an https URL or an http URL to
/// a loopback host; `None` for anything else.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let scheme_len = url.len() - rest.len();
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    if url.starts_with("http://") {
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return None;
        }
    }
    let (origin, path) = url.split_at(scheme_len + authority_len);
    Some((origin, if path.is_empty() { "/" } else { path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_token_goes_only_to_https_or_loopback() {
        assert_eq!(
            split_url(
                "https://pipelines.actions.githubusercontent.com/abc/idtoken?api-version=2.0"
            ),
            Some((
                "https://pipelines.actions.githubusercontent.com",
                "/abc/idtoken?api-version=2.0"
            ))
        );
        assert_eq!(
            split_url("http://127.0.0.1:9/t"),
            Some(("http://127.0.0.1:9", "/t"))
        );
        for bad in [
            "http://example.com/t",
            "https://u@example.com/t",
            "ftp://x/t",
            "https:///t",
        ] {
            assert_eq!(split_url(bad), None, "{bad}");
        }
    }
}
