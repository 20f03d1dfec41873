//! What a request must look like before any handler sees it, so that a web
//! page cannot drive the API from a browser:
//!
//! - the request target is a path (origin form): absolute-form targets
//!   (`GET http://host/...`, proxy style) and `*` are refused;
//! - exactly one `Host` (or, over HTTP/2, an `:authority` that any `Host`
//!   agrees with) naming this server: a configured name (`api_addr`,
//!   `allowed_hosts`), the address the connection arrived at, a name the
//!   server's TLS certificate is valid for, or, on a loopback listener,
//!   `localhost` and loopback IP literals. This defeats DNS rebinding: the
//!   browser sends the attacker's name;
//! - a request with a body declares `Content-Type: application/json`
//!   (parameters allowed, a charset only if UTF-8). Browsers send only
//!   `text/plain`, form and multipart bodies cross-site without asking the
//!   server first (a CORS preflight, which this server never approves). A
//!   request without a body needs no content type;
//!   The web console's POST forms (`/ui/`) are the one exception: they
//!   are form-encoded, and the console refuses them without the session's
//!   form token or from another origin;
//! - `sys/init` comes from this machine (a loopback peer, or one whose
//!   address is the address the connection arrived at), unless
//!   `allow_remote_init`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, StatusCode, Version, header};
use coffer_api::codes;
use hyper::body::Body as _;

use crate::error::ApiError;
use crate::serve::Peer;
use crate::throttle::{
    Backoff, LOGIN_BACKOFF, LinkKey, SHARE_LINK_BACKOFF, SHARE_OPEN_BACKOFF, Throttle,
    UNSEAL_BACKOFF,
};

/// How the router checks the requests that reach it.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    /// Largest request body (413 beyond it).
    pub body_limit: usize,
    /// The address the server listens on (the bound one, port included).
    pub listen: SocketAddr,
    /// Whether connections use TLS (a `Host` without a port then means 443).
    pub tls: bool,
    /// The TLS certificate: the names it is valid for are accepted.
    pub certificate: Option<rustls::pki_types::CertificateDer<'static>>,
    /// Names the server answers to besides its own address.
    pub hosts: Vec<HostRule>,
    /// Accept `sys/init` from any peer, not only a loopback one.
    pub allow_remote_init: bool,
    /// Failed logins one source may make before it must wait (1 s, then
    /// doubling up to 5 minutes).
    pub login_failures_per_address: u32,
    /// Failed unseal attempts one source may make before it must wait.
    pub unseal_failures_per_address: u32,
    /// The KV version 2 mounts of the Vault API (`/v1/`).
    pub vault_mounts: coffer_policy::vault::Mounts,
    /// The web console's session timeouts.
    pub console: crate::ui::ConsoleOptions,
}

impl RouterOptions {
    /// Options for a server listening on `listen` without TLS, with no
    /// other names.
    pub fn new(body_limit: usize, listen: SocketAddr) -> RouterOptions {
        RouterOptions {
            body_limit,
            listen,
            tls: false,
            certificate: None,
            hosts: Vec::new(),
            allow_remote_init: false,
            login_failures_per_address: LOGIN_BACKOFF.free,
            unseal_failures_per_address: UNSEAL_BACKOFF.free,
            vault_mounts: coffer_policy::vault::Mounts::default(),
            console: crate::ui::ConsoleOptions::default(),
        }
    }
}

/// A name (and optionally a port) the server answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    host: HostName,
    port: Option<u16>,
}

impl HostRule {
    /// `NAME`, `NAME:PORT`, `IP`, `IP:PORT` or `[IPv6]:PORT` (an
    /// `allowed_hosts` entry). Without a port, any port matches.
    pub fn parse(s: &str) -> Result<HostRule, String> {
        let (host, port) = parse_authority(s.as_bytes())
            .ok_or_else(|| format!("{s:?} is not a host name or address with an optional port"))?;
        Ok(HostRule { host, port })
    }

    /// The host and port of a URL such as `https://coffer.example.com:8200`
    /// (`api_addr`): that name, on that port (443 or 80 when not given).
    pub fn from_url(url: &str) -> Result<HostRule, String> {
        let bad = || {
            format!(
                "{url:?} must be an http:// or https:// URL such as https://coffer.example.com:8200"
            )
        };
        let (default_port, rest) = if let Some(r) = url.strip_prefix("https://") {
            (443, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (80, r)
        } else {
            return Err(bad());
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') || authority.contains('@') {
            return Err(bad());
        }
        let (host, port) = parse_authority(authority.as_bytes()).ok_or_else(bad)?;
        Ok(HostRule {
            host,
            port: Some(port.unwrap_or(default_port)),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostName {
    /// A name, lower-cased (compared exactly: a trailing dot is a
    /// different name).
    Name(String),
    /// An IP literal (dotted-quad IPv4 or bracketed IPv6).
    Ip(IpAddr),
}

/// Parses `host[:port]` strictly: a name of letters, digits, `-`, `_` and
/// `.`; a dotted-quad IPv4 address (no octal, hex or integer spellings:
/// those stay names, and match no rule); or a bracketed IPv6 address; then
/// an optional port of 1 to 5 digits. No userinfo, whitespace or empty
/// parts.
fn parse_authority(s: &[u8]) -> Option<(HostName, Option<u16>)> {
    let s = std::str::from_utf8(s).ok()?;
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = inside.parse().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (HostName::Ip(IpAddr::V6(ip)), port)
    } else {
        let (name, port) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return None;
        }
        let host = match name.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => HostName::Ip(IpAddr::V4(ip)),
            Err(_) => HostName::Name(name.to_ascii_lowercase()),
        };
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(p.parse::<u16>().ok().filter(|p| *p != 0)?)
        }
    };
    Some((host, port))
}

/// The router's copy of its options, with the per-source throttles.
pub(crate) struct Edge {
    pub(crate) body_limit: usize,
    listen: SocketAddr,
    tls: bool,
    certificate: Option<rustls::pki_types::CertificateDer<'static>>,
    /// Names found valid for the certificate (a few; only positive
    /// answers are kept). Read by every TLS request that names the server:
    /// readers do not wait for each other.
    certificate_names: RwLock<HashSet<String>>,
    hosts: Vec<HostRule>,
    allow_remote_init: bool,
    pub(crate) login: Throttle,
    pub(crate) unseal: Throttle,
    pub(crate) share_open: Throttle,
    /// Failed opens per share link, from any address.
    pub(crate) share_link: Throttle<LinkKey>,
}

impl Edge {
    pub(crate) fn new(o: RouterOptions) -> Edge {
        Edge {
            body_limit: o.body_limit,
            listen: o.listen,
            tls: o.tls,
            certificate: o.certificate,
            certificate_names: RwLock::default(),
            hosts: o.hosts,
            allow_remote_init: o.allow_remote_init,
            login: Throttle::new(Backoff {
                free: o.login_failures_per_address,
                ..LOGIN_BACKOFF
            }),
            unseal: Throttle::new(Backoff {
                free: o.unseal_failures_per_address,
                ..UNSEAL_BACKOFF
            }),
            share_open: Throttle::new(SHARE_OPEN_BACKOFF),
            share_link: Throttle::new(SHARE_LINK_BACKOFF),
        }
    }

    /// Why `req` is refused before it is handled, if it is.
    pub(crate) fn check(&self, req: &Request) -> Option<ApiError> {
        let peer = req.extensions().get::<Peer>();
        let uri = req.uri();
        let h2 = req.version() == Version::HTTP_2;
        // HTTP/2 carries the authority in the request itself; HTTP/1 must
        // use origin form.
        if (!h2 && (uri.scheme().is_some() || uri.authority().is_some()))
            || !uri.path().starts_with('/')
        {
            return Some(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST_TARGET,
                "the request target must be a path such as /api/v1/sys/status (absolute-form and asterisk-form targets are refused)",
            ));
        }
        if let Err(why) = self.check_host(req.headers(), uri, h2, peer) {
            return Some(ApiError::new(StatusCode::BAD_REQUEST, codes::BAD_HOST, why));
        }
        if let Err(why) = check_content_type(req) {
            return Some(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::UNSUPPORTED_MEDIA_TYPE,
                why,
            ));
        }
        let is_init = req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|m| m.as_str() == coffer_api::routes::SYS_INIT.path);
        if is_init && !self.allow_remote_init && !peer.is_some_and(Peer::is_this_machine) {
            return Some(ApiError::new(
                StatusCode::FORBIDDEN,
                codes::FORBIDDEN,
                "init is accepted only from this machine (a loopback address or the server's own address); run `coffer operator init` on the server, or set allow_remote_init = true",
            ));
        }
        None
    }

    fn check_host(
        &self,
        headers: &HeaderMap,
        uri: &axum::http::Uri,
        h2: bool,
        peer: Option<&Peer>,
    ) -> Result<(), &'static str> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let first = hosts.next();
        if hosts.next().is_some() {
            return Err("more than one Host header");
        }
        let raw: &[u8] = match (h2.then(|| uri.authority()).flatten(), first) {
            (Some(authority), Some(host)) => {
                if !authority
                    .as_str()
                    .as_bytes()
                    .eq_ignore_ascii_case(host.as_bytes())
                {
                    return Err("the Host header and the HTTP/2 :authority disagree");
                }
                authority.as_str().as_bytes()
            }
            (Some(authority), None) => authority.as_str().as_bytes(),
            (None, Some(host)) => host.as_bytes(),
            (None, None) => return Err("the request has no Host header"),
        };
        let (host, port) = parse_authority(raw).ok_or("the Host header is malformed")?;
        if self.host_allowed(&host, port, peer) {
            Ok(())
        } else {
            Err(
                "this server does not answer to that Host; add the name the clients use to allowed_hosts (or api_addr)",
            )
        }
    }

    fn host_allowed(&self, host: &HostName, port: Option<u16>, peer: Option<&Peer>) -> bool {
        let port = port.unwrap_or(if self.tls { 443 } else { 80 });
        if self
            .hosts
            .iter()
            .any(|r| r.host == *host && r.port.is_none_or(|p| p == port))
        {
            return true;
        }
        // The server's own names: on the port the connection arrived at.
        let local = peer.and_then(|p| p.local);
        if port != local.map_or(self.listen.port(), |l| l.port()) {
            return false;
        }
        let loopback = self.listen.ip().is_loopback();
        match host {
            HostName::Ip(ip) => {
                let ip = ip.to_canonical();
                (loopback && ip.is_loopback())
                    || (!self.listen.ip().is_unspecified() && ip == self.listen.ip().to_canonical())
                    || local.is_some_and(|l| l.ip().to_canonical() == ip)
            }
            HostName::Name(name) => (loopback && name == "localhost") || self.certified(name),
        }
    }

    /// Whether the server's TLS certificate is valid for `name` (a browser
    /// reaches the API under a name only if it is).
    fn certified(&self, name: &str) -> bool {
        let Some(cert) = &self.certificate else {
            return false;
        };
        if self
            .certificate_names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
        {
            return true;
        }
        let Ok(server_name) = rustls::pki_types::ServerName::try_from(name) else {
            return false;
        };
        let valid = webpki::EndEntityCert::try_from(cert)
            .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&server_name).is_ok());
        if valid {
            let mut known = self
                .certificate_names
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if known.len() < 64 {
                known.insert(name.to_string());
            }
        }
        valid
    }
}

/// A body needs `application/json`; a declared content type must be that
/// whether or not there is a body.
///
/// The Vault API (`/v1/`) also takes what Vault's clients send: a `PATCH`
/// declared `application/merge-patch+json`, and a body with no content type
/// at all when the request carries a token header (`X-Vault-Token` or
/// `Authorization`) or `X-Vault-Request`, which Vault's clients send with
/// every request (a login has no token). A browser cannot add any of these
/// headers to a cross-site
/// request without a CORS preflight, which this server never approves, so
/// that exception opens nothing to a web page.
fn check_content_type(req: &Request) -> Result<(), &'static str> {
    let mut types = req.headers().get_all(header::CONTENT_TYPE).iter();
    let declared = types.next();
    if types.next().is_some() {
        return Err("more than one Content-Type header");
    }
    let vault = req.uri().path().starts_with("/v1/");
    let token_header = || {
        req.headers().contains_key(crate::vault::X_VAULT_TOKEN)
            || req.headers().contains_key(crate::vault::X_VAULT_REQUEST)
            || req.headers().contains_key(header::AUTHORIZATION)
    };
    match declared {
        None if req.body().is_end_stream() => Ok(()),
        None if vault && token_header() => Ok(()),
        Some(v)
            if vault
                && req.method() == axum::http::Method::PATCH
                && is_media(v.as_bytes(), "application/merge-patch+json") =>
        {
            Ok(())
        }
        // The web console's forms: each carries its session's form token
        // and is refused from another origin (`ui::cross_site`), which the
        // console checks before it acts.
        Some(v)
            if crate::ui::is_ui(req.uri().path())
                && req.method() == axum::http::Method::POST
                && is_media(v.as_bytes(), "application/x-www-form-urlencoded") =>
        {
            Ok(())
        }
        None => Err("a request body must be sent with Content-Type: application/json"),
        Some(v) if is_json(v.as_bytes()) => Ok(()),
        Some(_) => Err("the API accepts only Content-Type: application/json (UTF-8)"),
    }
}

fn is_json(v: &[u8]) -> bool {
    is_media(v, "application/json")
}

/// Whether `v` is the media type `wanted`, with no parameter but a UTF-8
/// charset.
fn is_media(v: &[u8], wanted: &str) -> bool {
    let Ok(v) = std::str::from_utf8(v) else {
        return false;
    };
    let mut parts = v.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(wanted) {
        return false;
    }
    parts.all(|param| {
        let param = param.trim();
        match param.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
                v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            Some((k, _)) => !k.trim().is_empty(),
            None => param.is_empty(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_parse_strictly() {
        let ok = |s: &str| parse_authority(s.as_bytes()).unwrap();
        assert_eq!(
            ok("LocalHost:8270"),
            (HostName::Name("localhost".into()), Some(8270))
        );
        assert_eq!(
            ok("[::1]:1"),
            (HostName::Ip("::1".parse().unwrap()), Some(1))
        );
        assert_eq!(
            ok("127.0.0.1"),
            (HostName::Ip("127.0.0.1".parse().unwrap()), None)
        );
        // Other spellings of 127.0.0.1 are names, which no rule matches.
        for s in [
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "127.1",
            "localhost.",
        ] {
            assert!(matches!(ok(s).0, HostName::Name(_)), "{s}");
        }
        for bad in [
            "",
            ":80",
            "a@localhost:1",
            "localhost :1",
            " localhost",
            "localhost:",
            "localhost:0",
            "localhost:65536",
            "localhost:+1",
            "localhost:1:2",
            "::1",
            "[::1",
            "[::1]x",
            "[fe80::1%eth0]:1",
            "[127.0.0.1]:1",
            "exa mple",
            "ex/ample",
            "caf\u{e9}",
        ] {
            assert!(parse_authority(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_json(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin1",
            "application/jsonx",
            "application/json, text/plain",
            "",
        ] {
            assert!(!is_json(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn rules_from_configuration() {
        assert_eq!(
            HostRule::from_url("https://Coffer.example.com").unwrap(),
            HostRule {
                host: HostName::Name("coffer.example.com".into()),
                port: Some(443)
            }
        );
        assert_eq!(
            HostRule::from_url("http://10.0.0.1:8200/").unwrap().port,
            Some(8200)
        );
        for bad in [
            "coffer.example.com",
            "ftp://x",
            "https://u@x",
            "https://x/path",
        ] {
            assert!(HostRule::from_url(bad).is_err(), "{bad}");
        }
        assert_eq!(HostRule::parse("a.example").unwrap().port, None);
        assert!(HostRule::parse("a.example:x").is_err());
    }
}
