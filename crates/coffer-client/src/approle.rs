//! Calls of app roles: managing roles and secret ids, and the machine login.

use coffer_api::routes;
use coffer_api::{self as api, WireSecret};
use coffer_crypto::SecretString;

use crate::{Client, ClientError, Url};

impl Client {
    /// Logs a machine in with an app role's role id and a secret id; needs
    /// no token. The answer's token is short-lived: log in again when it
    /// expires (each login spends one use of the secret id).
    pub async fn login_approle(
        &self,
        role_id: &str,
        secret_id: &SecretString,
    ) -> Result<api::NewToken, ClientError> {
        let req = api::AppRoleLoginRequest {
            role_id: role_id.to_string(),
            secret_id: WireSecret(secret_id.expose_secret().to_string()),
        };
        self.call(Url::to(&routes::APPROLE_LOGIN, &[]), Some(&req))
            .await
    }

    /// Every app role (admin on `sys/auth/approle/`).
    pub async fn list_approles(&self) -> Result<api::AppRoleListResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::APPROLE_LIST, &[]), None)
            .await
    }

    /// One app role, with its role id.
    pub async fn read_approle(&self, name: &str) -> Result<api::AppRoleInfo, ClientError> {
        self.call::<(), _>(Url::to(&routes::APPROLE_READ, &[name]), None)
            .await
    }

    /// Creates an app role.
    pub async fn create_approle(
        &self,
        name: &str,
        request: &api::AppRoleCreateRequest,
    ) -> Result<api::AppRoleInfo, ClientError> {
        self.call(Url::to(&routes::APPROLE_CREATE, &[name]), Some(request))
            .await
    }

    /// Deletes an app role, its secret ids and the tokens its logins issued.
    pub async fn delete_approle(&self, name: &str) -> Result<(), ClientError> {
        self.call_raw::<()>(Url::to(&routes::APPROLE_DELETE, &[name]), None)
            .await
            .map(drop)
    }

    /// Creates a secret id for an app role (the only time it is shown).
    pub async fn create_secret_id(&self, name: &str) -> Result<api::NewSecretId, ClientError> {
        self.call::<(), _>(Url::to(&routes::APPROLE_SECRET_ID_CREATE, &[name]), None)
            .await
    }

    /// An app role's live secret ids (accessors only).
    pub async fn list_secret_ids(
        &self,
        name: &str,
    ) -> Result<api::SecretIdListResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::APPROLE_SECRET_ID_LIST, &[name]), None)
            .await
    }

    /// Revokes a secret id and the tokens it logged in.
    pub async fn revoke_secret_id(&self, name: &str, accessor: &str) -> Result<(), ClientError> {
        self.call_raw(
            Url::to(&routes::APPROLE_SECRET_ID_REVOKE, &[name]),
            Some(&api::SecretIdRevokeRequest {
                accessor: accessor.to_string(),
            }),
        )
        .await
        .map(drop)
    }
}
