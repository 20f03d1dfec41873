//! Reading from a service that is not coffer: another secrets manager
//! that `coffer migrate` copies from, with the same HTTP and TLS stack
//! (and the same CA and timeout settings) as calls to coffer.

use http_body_util::BodyExt;
use hyper::Method;

use crate::{Client, ClientError, ErrorKind};

impl Client {
    /// GETs `path_and_query` from the client's address, which is another
    /// service than coffer (a Vault or OpenBao server that `coffer migrate`
    /// reads), with `credential` as the header it names (marked sensitive,
    /// so no HTTP layer logs it) and no coffer token. Returns the status
    /// and the body, which may hold secret values, as secret bytes; a body
    /// over `limit` bytes is refused while it is read, and the whole
    /// exchange is bounded by the client's timeout. Redirects are not
    /// followed (the credential would go to another host).
    pub async fn get_from_address(
        &self,
        path_and_query: &str,
        credential: (&str, &coffer_crypto::SecretString),
        limit: usize,
    ) -> Result<(u16, coffer_crypto::SecretBytes), ClientError> {
        let mut value = hyper::header::HeaderValue::from_str(credential.1.expose_secret())
            .map_err(|_| {
                ClientError::new(
                    ErrorKind::Config,
                    "the token contains characters that cannot be sent",
                )
            })?;
        value.set_sensitive(true);
        self.get_raw(path_and_query, Some((credential.0, value)), limit)
            .await
    }

    /// GETs a public document (an OIDC discovery document, a JWKS) from
    /// the client's address, which is another service than coffer, with no
    /// credential. As [`Client::get_from_address`] otherwise: a body over
    /// `limit` bytes is refused while it is read, the exchange is bounded
    /// by the client's timeout, and redirects are not followed.
    pub async fn get_document(
        &self,
        path_and_query: &str,
        limit: usize,
    ) -> Result<(u16, coffer_crypto::SecretBytes), ClientError> {
        self.get_raw(path_and_query, None, limit).await
    }

    async fn get_raw(
        &self,
        path_and_query: &str,
        credential: Option<(&str, hyper::header::HeaderValue)>,
        limit: usize,
    ) -> Result<(u16, coffer_crypto::SecretBytes), ClientError> {
        let uri = format!("{}{}", self.inner.base, path_and_query);
        let mut req = hyper::Request::builder()
            .method(Method::GET)
            .uri(&uri)
            .header("user-agent", concat!("coffer/", env!("CARGO_PKG_VERSION")));
        if let Some((name, value)) = credential {
            req = req.header(name, value);
        }
        let req = req
            .body(http_body_util::Full::new(hyper::body::Bytes::new()))
            .map_err(|_| ClientError::new(ErrorKind::Config, "cannot build the request"))?;
        let addr = &self.inner.base;
        let work = async {
            let resp = self.inner.http.request(req).await.map_err(|e| {
                ClientError::new(
                    ErrorKind::Unreachable,
                    format!("cannot reach {addr}: {}", crate::describe_connect_error(&e)),
                )
            })?;
            let status = resp.status().as_u16();
            let body = http_body_util::Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|e| {
                    let message = if e.is::<http_body_util::LengthLimitError>() {
                        format!("{addr} answered with more than {limit} bytes")
                    } else {
                        format!("connection to {addr} failed mid-response")
                    };
                    ClientError::new(ErrorKind::Unreachable, message)
                })?
                .to_bytes();
            Ok::<_, ClientError>((status, coffer_crypto::SecretBytes::new(body.to_vec())))
        };
        tokio::time::timeout(self.inner.timeout, work)
            .await
            .map_err(|_| {
                ClientError::new(
                    ErrorKind::Unreachable,
                    format!("{addr} did not answer within {:?}", self.inner.timeout),
                )
            })?
    }
}
