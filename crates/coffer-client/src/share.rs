//! One-time share links: sealing a value into a link and opening one.
//!
//! The value is sealed here, before anything is sent (see
//! `coffer_crypto::share` for the construction, which the server's
//! `share.js` implements for browsers); the server gets the sealed bytes
//! and the id, and the key goes only into the link's fragment.

use coffer_api::routes;
use coffer_api::share as wire;
use coffer_crypto::SecretString;
use coffer_crypto::share::{self as crypto, Kdf, ShareKey};
use zeroize::Zeroizing;

use crate::{Client, ClientError, ErrorKind, Url};

/// What to make a link for, besides the value.
#[derive(Debug, Clone, Default)]
pub struct ShareOptions {
    /// How long the link works (`1h` when `None`).
    pub expires_in: Option<String>,
    /// How many opens it allows (1 when `None`).
    pub views: Option<u32>,
    /// The stored secret shared, and its version.
    pub source: Option<(String, u64)>,
}

/// A link made by [`Client::share_value`]. No `Debug`: the URL holds the
/// key.
pub struct NewShare {
    /// `BASE/s/ID#KEY`.
    pub url: SecretString,
    /// What the server stored about it.
    pub info: wire::ShareInfo,
}

/// A parsed share link. No `Debug`: it holds the key.
pub struct ShareLink {
    /// The server's origin (`https://host:port`).
    pub origin: String,
    /// The share id.
    pub id: String,
    /// The key from the fragment.
    pub key: ShareKey,
}

impl ShareLink {
    /// Parses `ORIGIN/s/ID#KEY`. The error never quotes the link.
    pub fn parse(link: &str) -> Result<ShareLink, ClientError> {
        let bad = || {
            ClientError::new(
                ErrorKind::Config,
                "not a share link: expected https://HOST/s/ID#KEY",
            )
        };
        let (rest, fragment) = link.trim().split_once('#').ok_or_else(bad)?;
        let scheme_end = rest.find("://").ok_or_else(bad)?;
        let scheme = &rest[..scheme_end];
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        let after = &rest[scheme_end + 3..];
        let slash = after.find('/').ok_or_else(bad)?;
        let (host, path) = after.split_at(slash);
        if host.is_empty() || host.contains(['@', '?', ' ']) {
            return Err(bad());
        }
        let id = path.strip_prefix("/s/").ok_or_else(bad)?;
        if !crypto::is_id(id) {
            return Err(bad());
        }
        let key = ShareKey::from_fragment(fragment).map_err(|_| bad())?;
        Ok(ShareLink {
            origin: format!("{scheme}://{host}"),
            id: id.to_string(),
            key,
        })
    }
}

/// Why a link did not open.
fn decrypt_failed() -> ClientError {
    ClientError::new(
        ErrorKind::Invalid,
        "the shared value could not be decrypted: the link is wrong, the passphrase is wrong, or the data was altered",
    )
}

impl Client {
    /// Stores a share the caller sealed (see [`Client::share_value`]).
    pub async fn create_share(
        &self,
        request: &wire::ShareCreateRequest,
    ) -> Result<wire::ShareInfo, ClientError> {
        self.call(Url::to(&routes::SHARE_CREATE, &[]), Some(request))
            .await
    }

    /// The caller's live shares.
    pub async fn list_shares(&self) -> Result<wire::ShareListResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::SHARE_LIST, &[]), None)
            .await
    }

    /// Revokes one of the caller's shares.
    pub async fn revoke_share(&self, id: &str) -> Result<(), ClientError> {
        self.call_raw::<()>(Url::to(&routes::SHARE_REVOKE, &[id]), None)
            .await
            .map(drop)
    }

    /// Spends one view of a share; its sealed value (needs no token).
    pub async fn open_share(&self, id: &str) -> Result<wire::ShareOpenResponse, ClientError> {
        self.call::<(), _>(Url::to(&routes::SHARE_OPEN, &[id]), None)
            .await
    }

    /// Seals `value` under a new key (and `passphrase`, if given) and
    /// makes a link for it on this server.
    pub async fn share_value(
        &self,
        value: &[u8],
        passphrase: Option<&SecretString>,
        options: &ShareOptions,
    ) -> Result<NewShare, ClientError> {
        let key = ShareKey::generate();
        let id = crypto::new_id();
        let kdf = passphrase.map(|_| Kdf::generate());
        let pass = passphrase
            .zip(kdf.as_ref())
            .map(|(p, k)| (p.expose_secret(), k));
        let sealed = crypto::seal(&key, &id, pass, value)
            .map_err(|_| ClientError::new(ErrorKind::Invalid, "the value could not be sealed"))?;
        let (path, version) = options.source.clone().unzip();
        let info = self
            .create_share(&wire::ShareCreateRequest {
                id: id.clone(),
                ciphertext: crypto::encode(&sealed),
                salt: kdf.as_ref().map(|k| crypto::encode(&k.salt)),
                iterations: kdf.as_ref().map(|k| k.iterations),
                expires_in: options.expires_in.clone(),
                views: options.views,
                path,
                version,
            })
            .await?;
        let fragment = key.to_fragment();
        Ok(NewShare {
            url: SecretString::new(format!(
                "{}/s/{id}#{}",
                self.addr().trim_end_matches('/'),
                fragment.expose_secret()
            )),
            info,
        })
    }

    /// Opens `link` (a client for the link's origin, see
    /// [`ShareLink::origin`]): spends one view and decrypts. When the link
    /// needs a passphrase, `ask(retry)` is called for it, again after a
    /// wrong one (the view is spent once); `None` gives up.
    pub async fn open_link(
        &self,
        link: &ShareLink,
        mut ask: impl FnMut(bool) -> Option<SecretString>,
    ) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let opened = self.open_share(&link.id).await?;
        let sealed = crypto::decode(&opened.ciphertext).map_err(|_| decrypt_failed())?;
        let kdf = match (&opened.salt, opened.iterations) {
            (None, _) => None,
            (Some(salt), Some(iterations)) => {
                let salt = crypto::decode(salt).map_err(|_| decrypt_failed())?;
                Some(Kdf {
                    salt: salt.try_into().map_err(|_| decrypt_failed())?,
                    iterations,
                })
            }
            (Some(_), None) => return Err(decrypt_failed()),
        };
        let Some(kdf) = kdf else {
            return crypto::open(&link.key, &link.id, None, &sealed).map_err(|_| decrypt_failed());
        };
        let mut retry = false;
        loop {
            let Some(pass) = ask(retry) else {
                return Err(ClientError::new(
                    ErrorKind::Invalid,
                    "this link needs a passphrase",
                ));
            };
            match crypto::open(
                &link.key,
                &link.id,
                Some((pass.expose_secret(), &kdf)),
                &sealed,
            ) {
                Ok(v) => return Ok(v),
                Err(crypto::ShareError::Malformed) => return Err(decrypt_failed()),
                Err(crypto::ShareError::Open) => retry = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_strictly_and_errors_never_quote_them() {
        let key = ShareKey::generate();
        let frag = key.to_fragment();
        let id = crypto::new_id();
        let good = format!(
            "https://coffer.example:8200/s/{id}#{}",
            frag.expose_secret()
        );
        let link = ShareLink::parse(&good).unwrap();
        assert_eq!(link.origin, "https://coffer.example:8200");
        assert_eq!(link.id, id);
        for bad in [
            format!("https://coffer.example/s/{id}"),
            format!("ftp://coffer.example/s/{id}#{}", frag.expose_secret()),
            format!("https://coffer.example/x/{id}#{}", frag.expose_secret()),
            format!("https://user@evil/s/{id}#{}", frag.expose_secret()),
            format!("https://coffer.example/s/{id}/..#{}", frag.expose_secret()),
            format!("https://coffer.example/s/{id}#{}x", frag.expose_secret()),
        ] {
            let Err(e) = ShareLink::parse(&bad) else {
                panic!("accepted {bad}")
            };
            assert!(!e.message.contains(frag.expose_secret()));
        }
    }
}
