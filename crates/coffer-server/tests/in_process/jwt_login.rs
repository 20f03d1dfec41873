//! Machine logins with JWTs against a real issuer on loopback HTTP: the
//! test issuer makes RSA (by `openssl`), EC P-256 and Ed25519 keys, serves
//! its discovery document and JWKS, counts the requests it gets, and mints
//! tokens, good ones and ones with each defect. Every refusal must say why,
//! be audited with the reason, and leave no JWT in the audit log.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use serde_json::{Value, json};

use crate::common::{Mode, Server, ok};

/// One signing key of the test issuer.
pub(crate) struct Key {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    pub(crate) jwk: Value,
    /// The RSA public key in PEM (for the HS256-with-the-public-key attack).
    public_pem: Option<String>,
}

pub(crate) fn ed25519(kid: &str) -> Key {
    let rng = SystemRandom::new();
    let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    Key {
        kid: kid.into(),
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({"kty":"OKP","crv":"Ed25519","kid":kid,"use":"sig",
            "x": B64.encode(pair.public_key().as_ref())}),
        public_pem: None,
    }
}

fn p256(kid: &str) -> Key {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    Key {
        kid: kid.into(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({"kty":"EC","crv":"P-256","kid":kid,"alg":"ES256",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])}),
        public_pem: None,
    }
}

/// An RSA key made by `openssl` (CI installs it; the test fails without it).
fn rsa(kid: &str, dir: &std::path::Path) -> Key {
    let pem = dir.join(format!("{kid}.pem"));
    let der = dir.join(format!("{kid}.der"));
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl must be installed for the JWT tests");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
        out.stdout
    };
    run(&[
        "genrsa",
        "-traditional",
        "-out",
        pem.to_str().unwrap(),
        "2048",
    ]);
    run(&[
        "rsa",
        "-traditional",
        "-in",
        pem.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ]);
    let modulus = String::from_utf8(run(&[
        "rsa",
        "-in",
        pem.to_str().unwrap(),
        "-noout",
        "-modulus",
    ]))
    .unwrap();
    let hex = modulus.trim().strip_prefix("Modulus=").unwrap();
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let public_pem =
        String::from_utf8(run(&["rsa", "-in", pem.to_str().unwrap(), "-pubout"])).unwrap();
    Key {
        kid: kid.into(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(&std::fs::read(&der).unwrap()),
        jwk: json!({"kty":"RSA","kid":kid,"use":"sig","n": B64.encode(&n),"e":"AQAB"}),
        public_pem: Some(public_pem),
    }
}

/// The test issuer: discovery and JWKS over loopback HTTP, counted.
struct Issuer {
    url: String,
    jwks: Arc<Mutex<Value>>,
    jwks_hits: Arc<AtomicUsize>,
    discovery_hits: Arc<AtomicUsize>,
}

impl Issuer {
    fn start(keys: &[&Key]) -> Issuer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let jwks = Arc::new(Mutex::new(json!({"keys": []})));
        let issuer = Issuer {
            url: url.clone(),
            jwks: jwks.clone(),
            jwks_hits: Arc::default(),
            discovery_hits: Arc::default(),
        };
        issuer.publish(keys);
        let (jh, dh) = (issuer.jwks_hits.clone(), issuer.discovery_hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = match path.as_str() {
                    "/.well-known/openid-configuration" => {
                        dh.fetch_add(1, Ordering::SeqCst);
                        let doc = json!({"issuer": url, "jwks_uri": format!("{url}/jwks")});
                        ("200 OK", doc.to_string())
                    }
                    "/jwks" => {
                        jh.fetch_add(1, Ordering::SeqCst);
                        ("200 OK", jwks.lock().unwrap().to_string())
                    }
                    _ => ("404 Not Found", "{}".to_string()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        issuer
    }

    /// Publishes exactly these keys (a rotation replaces the set).
    fn publish(&self, keys: &[&Key]) {
        *self.jwks.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    }

    fn fetches(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst) + self.discovery_hits.load(Ordering::SeqCst)
    }
}

pub(crate) const AUDIENCE: &str = "https://coffer.test";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// GitHub-like claims from `issuer`, valid for five minutes.
pub(crate) fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "repo:acme/api:ref:refs/heads/main",
        "repository": "acme/api",
        "ref": "refs/heads/main",
        "environment": "production",
        "iat": now() - 5,
        "nbf": now() - 5,
        "exp": now() + 300,
    })
}

pub(crate) fn mint(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// A token with a header and signature made by hand.
fn forged(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig))
}

/// A login from an address of its own (127.0.x.y), so the per-address
/// backoff of failed logins, tested on its own below, stays out of the way.
fn login(server: &Server, role: &str, jwt: &str) -> crate::common::Response {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let peer: std::net::SocketAddr = format!("127.0.{}.{}:40000", n / 250, 1 + n % 250)
        .parse()
        .unwrap();
    login_from(server, role, jwt, peer)
}

fn login_from(
    server: &Server,
    role: &str,
    jwt: &str,
    peer: std::net::SocketAddr,
) -> crate::common::Response {
    let body = json!({"role": role, "jwt": jwt}).to_string();
    let mut p = coffer_server::Peer::new(peer);
    p.local = Some(server.host_port().parse().unwrap());
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/api/v1/auth/jwt/login")
        .header("host", server.host_port())
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .extension(p)
        .body(axum::body::Body::from(body))
        .unwrap();
    server.send(req)
}

fn write_role(server: &Server, token: &str, name: &str, body: &Value) -> crate::common::Response {
    server.http(
        "PUT",
        &format!("/api/v1/auth/jwt/roles/{name}"),
        Some(token),
        Some(body.to_string().as_bytes()),
    )
}

/// A dev server with the `deploy` policy and a secret it may read.
fn server_with_secret(dir: &std::path::Path, refetch: Option<std::time::Duration>) -> Server {
    let server = Server::start_tuned(dir, Mode::Dev, |o| {
        if let Some(r) = refetch {
            o.jwks_refetch_interval = r;
        }
    });
    let root = server.root_token();
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/deploy",
            Some(&root),
            Some(br#"{"policy":"path \"app/prod/*\" { capabilities = [\"read\"] }"}"#),
        ),
        "policy",
    );
    ok(
        &server.http(
            "PUT",
            "/api/v1/secrets/app/prod/DB_PASSWORD",
            Some(&root),
            Some(br#"{"value":"s3cret-prod-value"}"#),
        ),
        "secret",
    );
    server
}

fn github_role(issuer: &Issuer) -> Value {
    json!({
        "preset": "github",
        "issuer": issuer.url,
        "audience": AUDIENCE,
        "bound_claims": {"repository": ["acme/api"], "environment": ["production", "staging"]},
        "bound_globs": {"ref": ["refs/heads/*"]},
        "policies": ["deploy"],
        "ttl": "10m",
    })
}

#[test]
fn a_good_jwt_of_each_algorithm_gets_exactly_the_roles_policies_and_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [rsa("rsa1", dir.path()), p256("ec1"), ed25519("ed1")];
    let issuer = Issuer::start(&keys.iter().collect::<Vec<_>>());
    let server = server_with_secret(dir.path(), None);
    let root = server.root_token();
    let role = ok(
        &write_role(&server, &root, "ci", &github_role(&issuer)),
        "write role",
    );
    assert_eq!(role["keys"], "discovery");
    assert_eq!(role["ttl"], "10m");

    for key in &keys {
        let jwt = mint(key, &claims(&issuer.url));
        let r = login(&server, "ci", &jwt);
        let j = ok(&r, &key.kid);
        assert_eq!(j["policies"], json!(["deploy"]), "{j}");
        assert_eq!(j["kind"], "service");
        assert_eq!(j["display_name"], "github:acme/api@refs/heads/main");
        assert_eq!(j["ttl"], "10m");
        assert_eq!(
            j["expires_at"], j["max_expires_at"],
            "not renewable past the TTL"
        );
        assert_eq!(j["workload"]["issuer"], issuer.url.as_str());
        assert_eq!(
            j["workload"]["subject"],
            "repo:acme/api:ref:refs/heads/main"
        );
        assert_eq!(j["workload"]["claims"]["repository"], "acme/api");
        let token = j["token"].as_str().unwrap().to_string();

        // The token reads what the role's policy allows, and nothing else.
        let read = server.http(
            "GET",
            "/api/v1/secrets/app/prod/DB_PASSWORD",
            Some(&token),
            None,
        );
        assert_eq!(read.status, 200, "{}", read.text());
        let other = server.http("GET", "/api/v1/sys/policies", Some(&token), None);
        assert_eq!(other.status, 403);
        // Renewing cannot pass the role's TTL.
        let renewed = ok(
            &server.http("POST", "/api/v1/auth/token/self/renew", Some(&token), None),
            "renew",
        );
        assert_eq!(renewed["expires_at"], j["max_expires_at"]);
        assert!(!server.audit_log_text().contains(&jwt));
    }
    // Discovery and the JWKS were fetched once for all three.
    assert_eq!(issuer.fetches(), 2);

    // Every request of such a token names the workload in its audit record.
    let reads: Vec<Value> = server
        .audit_records()
        .into_iter()
        .filter(|r| r["op"] == "secret.read" && r["status"] == 200)
        .collect();
    assert_eq!(reads.len(), 3);
    for r in &reads {
        assert_eq!(r["actor"]["name"], "github:acme/api@refs/heads/main", "{r}");
        assert_eq!(r["workload"]["method"], "jwt", "{r}");
        assert_eq!(r["workload"]["role"], "ci", "{r}");
        assert_eq!(r["workload"]["issuer"], issuer.url.as_str(), "{r}");
        assert_eq!(r["workload"]["claims"]["ref"], "refs/heads/main", "{r}");
        assert_eq!(r["workload"]["claims"]["environment"], "production", "{r}");
    }
    // `audit readers` and `audit query --actor` find it by that name.
    let readers = ok(
        &server.http(
            "GET",
            "/api/v1/sys/audit/readers?path=app/prod/DB_PASSWORD",
            Some(&root),
            None,
        ),
        "readers",
    );
    assert!(
        readers
            .to_string()
            .contains("github:acme/api@refs/heads/main"),
        "{readers}"
    );
    let by_actor = ok(
        &server.http(
            "GET",
            "/api/v1/sys/audit/records?actor=github:acme/api@refs/heads/main",
            Some(&root),
            None,
        ),
        "query",
    );
    assert!(by_actor.to_string().contains("secret.read"), "{by_actor}");
}

#[test]
fn every_defective_jwt_is_refused_with_its_reason_and_audited_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let rsa1 = rsa("rsa1", dir.path());
    let ed1 = ed25519("ed1");
    let impostor = ed25519("ed1");
    let issuer = Issuer::start(&[&rsa1, &ed1]);
    let server = server_with_secret(dir.path(), None);
    let root = server.root_token();
    ok(
        &write_role(&server, &root, "ci", &github_role(&issuer)),
        "write role",
    );
    let good = claims(&issuer.url);
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let hs256_with_public_key = {
        use hmac::Mac;
        let pem = rsa1.public_pem.clone().unwrap();
        forged(
            &json!({"alg":"HS256","typ":"JWT","kid":"rsa1"}),
            &good,
            |input| {
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(pem.as_bytes()).unwrap();
                mac.update(input);
                mac.finalize().into_bytes().to_vec()
            },
        )
    };
    let unknown_kid = {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("nope".into());
        jsonwebtoken::encode(&header, &good, &ed1.encoding).unwrap()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong issuer",
            mint(&ed1, &with("iss", json!("https://evil.example"))),
            "issuer is not the role's",
        ),
        (
            "wrong audience",
            mint(&ed1, &with("aud", json!("https://other.example"))),
            "audience does not include",
        ),
        (
            "expired",
            mint(&ed1, &with("exp", json!(now() - 600))),
            "has expired",
        ),
        (
            "not yet valid",
            mint(&ed1, &with("nbf", json!(now() + 600))),
            "not valid yet",
        ),
        (
            "issued in the future",
            mint(&ed1, &with("iat", json!(now() + 600))),
            "issued in the future",
        ),
        (
            "lives too long",
            mint(&ed1, &with("exp", json!(now() + 3 * 86400))),
            "lives longer than",
        ),
        ("no exp", mint(&ed1, &without("exp")), "no exp claim"),
        ("unknown kid", unknown_kid, "key id is not among"),
        (
            "bad signature",
            mint(&impostor, &good),
            "signature does not verify",
        ),
        (
            "alg none",
            forged(&json!({"alg":"none","typ":"JWT"}), &good, |_| Vec::new()),
            "algorithm \"none\" is not accepted",
        ),
        (
            "HS256 keyed with the RSA public key",
            hs256_with_public_key,
            "algorithm \"HS256\" is not accepted",
        ),
        (
            "another repository",
            mint(&ed1, &with("repository", json!("acme/other"))),
            "claim repository is not allowed",
        ),
        (
            "case-folded repository",
            mint(&ed1, &with("repository", json!("ACME/api"))),
            "claim repository is not allowed",
        ),
        (
            "look-alike repository",
            mint(&ed1, &with("repository", json!("acme/\u{0430}pi"))),
            "claim repository is not allowed",
        ),
        (
            "trailing space",
            mint(&ed1, &with("repository", json!("acme/api "))),
            "claim repository is not allowed",
        ),
        (
            "ref outside the glob",
            mint(&ed1, &with("ref", json!("refs/tags/v1"))),
            "claim ref is not allowed",
        ),
        (
            "environment not bound",
            mint(&ed1, &with("environment", json!("dev"))),
            "claim environment is not allowed",
        ),
        (
            "missing bound claim",
            mint(&ed1, &without("repository")),
            "has no claim repository",
        ),
        (
            "a claim that is not a string",
            mint(&ed1, &with("repository", json!(["acme/api"]))),
            "has no claim repository",
        ),
        (
            "oversized",
            mint(&ed1, &with("pad", json!("x".repeat(20_000)))),
            "larger than 16384 bytes",
        ),
        ("not a JWT", "not.a.jwt".to_string(), "malformed"),
        ("two parts", "abc.def".to_string(), "malformed"),
    ];
    for (what, jwt, reason) in &cases {
        let r = login(&server, "ci", jwt);
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(reason), "{what}: {message}");
        let record = server.audit_records().pop().unwrap();
        assert_eq!(record["op"], "auth.jwt_login", "{what}");
        assert_eq!(record["status"], 401, "{what}");
        assert!(
            record["reason"].as_str().unwrap_or("").contains(reason),
            "{what}: {record}"
        );
        assert!(record.get("workload").is_none(), "{what}: {record}");
    }
    // An unknown role is refused the same way.
    let r = login(&server, "nobody", &mint(&ed1, &good));
    assert_eq!(r.status, 401);
    assert!(
        r.text().contains("no JWT role named nobody"),
        "{}",
        r.text()
    );

    // No JWT, and no signature of one, is in the audit log.
    let log = server.audit_log_text();
    for (what, jwt, _) in &cases {
        assert!(
            !log.contains(jwt.as_str()),
            "{what}: the JWT is in the audit log"
        );
        if let Some(sig) = jwt.rsplit('.').next().filter(|s| s.len() > 16) {
            assert!(
                !log.contains(sig),
                "{what}: the signature is in the audit log"
            );
        }
    }
    // Nothing was issued.
    let tokens = ok(
        &server.http("GET", "/api/v1/auth/tokens", Some(&root), None),
        "tokens",
    );
    assert!(!tokens.to_string().contains("github:"), "{tokens}");
}

#[test]
fn a_flood_of_unknown_key_ids_fetches_the_jwks_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let ed1 = ed25519("ed1");
    let issuer = Issuer::start(&[&ed1]);
    let server = server_with_secret(dir.path(), None);
    let root = server.root_token();
    ok(
        &write_role(&server, &root, "ci", &github_role(&issuer)),
        "write role",
    );
    ok(
        &login(&server, "ci", &mint(&ed1, &claims(&issuer.url))),
        "first login",
    );
    let before = issuer.fetches();
    assert_eq!(before, 2, "discovery and the JWKS");
    for i in 0..50 {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(format!("random-{i}"));
        let jwt = jsonwebtoken::encode(&header, &claims(&issuer.url), &ed1.encoding).unwrap();
        let r = login(&server, "ci", &jwt);
        assert_eq!(r.status, 401, "{}", r.text());
    }
    // The first login's fetch is within the interval: none of the fifty
    // unknown kids fetched again.
    assert_eq!(issuer.fetches(), before);
    // The known key still works.
    ok(
        &login(&server, "ci", &mint(&ed1, &claims(&issuer.url))),
        "known key",
    );
}

#[test]
fn a_key_rotated_in_at_the_issuer_works_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = ed25519("2026-old");
    let new = p256("2026-new");
    let issuer = Issuer::start(&[&old]);
    // An interval of zero: every unknown kid may refetch (the bound is
    // the previous test's).
    let server = server_with_secret(dir.path(), Some(std::time::Duration::ZERO));
    let root = server.root_token();
    let mut role = github_role(&issuer);
    role["jwks_url"] = json!(format!("{}/jwks", issuer.url));
    let written = ok(&write_role(&server, &root, "ci", &role), "write role");
    assert_eq!(written["keys"], "jwks_url");
    ok(
        &login(&server, "ci", &mint(&old, &claims(&issuer.url))),
        "old key",
    );
    let r = login(&server, "ci", &mint(&new, &claims(&issuer.url)));
    assert_eq!(r.status, 401, "not published yet: {}", r.text());
    issuer.publish(&[&old, &new]);
    ok(
        &login(&server, "ci", &mint(&new, &claims(&issuer.url))),
        "new key",
    );
    issuer.publish(&[&new]);
    ok(
        &login(&server, "ci", &mint(&new, &claims(&issuer.url))),
        "new key only",
    );
    assert_eq!(
        issuer.discovery_hits.load(Ordering::SeqCst),
        0,
        "no discovery with a JWKS URL"
    );
}

#[test]
fn a_kubernetes_role_with_a_stored_jwks_names_the_service_account() {
    let dir = tempfile::tempdir().unwrap();
    let key = p256("k8s");
    let server = server_with_secret(dir.path(), None);
    let root = server.root_token();
    let jwks = json!({"keys": [key.jwk.clone()]}).to_string();
    let role = json!({
        "preset": "kubernetes",
        "issuer": "https://kubernetes.default.svc.cluster.local",
        "audience": AUDIENCE,
        "jwks": jwks,
        "bound_claims": {"kubernetes.io/namespace": ["payments"]},
        "bound_globs": {"kubernetes.io/serviceaccount/name": ["api-*"]},
        "policies": ["deploy"],
    });
    let written = ok(&write_role(&server, &root, "k8s", &role), "write");
    assert_eq!(written["keys"], "jwks");
    assert_eq!(written["ttl"], "15m", "the default TTL");
    let c = json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "aud": [AUDIENCE, "https://kubernetes.default.svc"],
        "sub": "system:serviceaccount:payments:api-worker",
        "kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "api-worker", "uid": "1"}},
        "iat": now(), "exp": now() + 600,
    });
    let j = ok(&login(&server, "k8s", &mint(&key, &c)), "login");
    assert_eq!(j["display_name"], "k8s:payments/api-worker");
    assert_eq!(j["ttl"], "15m");
    let mut other = c.clone();
    other["kubernetes.io"]["namespace"] = json!("default");
    let r = login(&server, "k8s", &mint(&key, &other));
    assert_eq!(r.status, 401);
    assert!(
        r.text()
            .contains("claim kubernetes.io/namespace is not allowed"),
        "{}",
        r.text()
    );
}

#[test]
fn role_writes_refuse_what_is_unsafe_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_secret(dir.path(), None);
    let root = server.root_token();
    let base = json!({
        "issuer": "https://issuer.example",
        "audience": AUDIENCE,
        "jwks_url": "https://issuer.example/jwks",
        "bound_claims": {"sub": ["x"]},
        "policies": ["deploy"],
    });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v;
        }
        b
    };
    let private_jwks = json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}).to_string();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no bound claims",
            with("bound_claims", Value::Null),
            "must bind at least one claim",
        ),
        (
            "an empty binding",
            with("bound_claims", json!({"sub": []})),
            "bound to no value",
        ),
        (
            "github without repository",
            with("preset", json!("github")),
            "requires claim repository",
        ),
        (
            // Review finding: without the preset, GitHub's issuer took a
            // role that any repository on GitHub could use.
            "github's issuer without the preset, binding only ref",
            with(
                "issuer",
                json!("https://token.actions.githubusercontent.com"),
            )
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.insert("bound_claims".into(), json!({"ref": ["refs/heads/main"]}));
                Value::Object(o)
            })
            .unwrap(),
            "requires claim repository",
        ),
        (
            "github with a repository glob that names no owner",
            with("preset", json!("github"))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("bound_claims".into(), json!({"ref": ["refs/heads/main"]}));
                    o.insert("bound_globs".into(), json!({"repository": ["*/api"]}));
                    Value::Object(o)
                })
                .unwrap(),
            "requires claim repository",
        ),
        (
            "kubernetes without namespace",
            with("preset", json!("kubernetes"))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("bound_claims".into(), json!({"aud2": ["x"]}));
                    Value::Object(o)
                })
                .unwrap(),
            "requires claim kubernetes.io/namespace",
        ),
        (
            "plain http elsewhere",
            with("jwks_url", json!("http://issuer.example/jwks")),
            "only to a loopback",
        ),
        (
            "user info",
            with("jwks_url", json!("https://a@issuer.example/jwks")),
            "user information",
        ),
        (
            "no https",
            with("jwks_url", json!("file:///etc/passwd")),
            "must start with https",
        ),
        (
            "private key material",
            with("jwks_url", Value::Null)
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("jwks".into(), json!(private_jwks));
                    Value::Object(o)
                })
                .unwrap(),
            "private or symmetric",
        ),
        ("two key sources", with("jwks", json!("{}")), "not several"),
        ("ttl too long", with("ttl", json!("7h")), "at most 6h"),
        (
            "no audience",
            with("audience", Value::Null),
            "needs an audience",
        ),
        ("no issuer", with("issuer", Value::Null), "needs an issuer"),
        (
            "control in a value",
            with("bound_claims", json!({"sub": ["a\nb"]})),
            "no control characters",
        ),
        (
            "unknown preset",
            with("preset", json!("jenkins")),
            "github, gitlab or kubernetes",
        ),
        ("unknown policy", with("policies", json!(["nope"])), "nope"),
    ];
    for (what, body, reason) in &cases {
        let r = write_role(&server, &root, "r1", body);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(r.text().contains(reason), "{what}: {}", r.text());
    }
    for name in [
        "..",
        ".hidden",
        "a b",
        "a/b",
        "\u{e9}t\u{e9}",
        &"x".repeat(65),
        "a\nb",
        "a\u{202e}b",
    ] {
        let r = server.http(
            "PUT",
            &coffer_api::routes::JWT_ROLE_WRITE.url(&[name]),
            Some(&root),
            Some(base.to_string().as_bytes()),
        );
        assert!(
            matches!(r.status, 400 | 404),
            "{name:?}: {} {}",
            r.status,
            r.text()
        );
    }
    let list = ok(
        &server.http("GET", "/api/v1/auth/jwt/roles", Some(&root), None),
        "list",
    );
    assert_eq!(list["roles"], json!([]), "nothing was written");

    // Managing roles needs admin on sys/auth/jwt/NAME, and the policies held.
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/jwt-admin",
            Some(&root),
            Some(br#"{"policy":"path \"sys/auth/jwt/*\" { capabilities = [\"admin\"] }"}"#),
        ),
        "policy",
    );
    let mint_token = |policies: &str| {
        let body = format!(r#"{{"policies":{policies}}}"#);
        ok(
            &server.http(
                "POST",
                "/api/v1/auth/tokens",
                Some(&root),
                Some(body.as_bytes()),
            ),
            "token",
        )["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let admin = mint_token(r#"["jwt-admin"]"#);
    let reader = mint_token(r#"["deploy"]"#);
    let r = write_role(&server, &admin, "r1", &base);
    assert_eq!(
        r.status,
        403,
        "an admin who does not hold deploy: {}",
        r.text()
    );
    let both = mint_token(r#"["jwt-admin","deploy"]"#);
    ok(
        &write_role(&server, &both, "r1", &base),
        "admin holding deploy",
    );
    for (method, path) in [
        ("GET", "/api/v1/auth/jwt/roles"),
        ("GET", "/api/v1/auth/jwt/roles/r1"),
        ("DELETE", "/api/v1/auth/jwt/roles/r1"),
    ] {
        let r = server.http(method, path, Some(&reader), None);
        assert_eq!(r.status, 403, "{method} {path}");
        let r = server.http(method, path, None, None);
        assert_eq!(r.status, 401, "{method} {path}");
    }
    assert_eq!(write_role(&server, &reader, "r2", &base).status, 403);
    ok(
        &server.http("GET", "/api/v1/auth/jwt/roles/r1", Some(&admin), None),
        "read",
    );
    let r = server.http("DELETE", "/api/v1/auth/jwt/roles/r1", Some(&admin), None);
    assert_eq!(r.status, 204);
    let r = server.http("GET", "/api/v1/auth/jwt/roles/r1", Some(&admin), None);
    assert_eq!(r.status, 404);
    // Each decision is audited under the route's operation.
    let ops: Vec<String> = server
        .audit_records()
        .iter()
        .filter_map(|r| r["op"].as_str().map(str::to_string))
        .filter(|o| o.starts_with("jwt_role."))
        .collect();
    for op in [
        "jwt_role.write",
        "jwt_role.read",
        "jwt_role.list",
        "jwt_role.delete",
    ] {
        assert!(ops.iter().any(|o| o == op), "{op} not audited: {ops:?}");
    }
}

#[test]
fn failed_jwt_logins_from_one_address_back_off_like_password_logins() {
    let dir = tempfile::tempdir().unwrap();
    let ed1 = ed25519("ed1");
    let server = server_with_secret(dir.path(), None);
    let root = server.root_token();
    let role = json!({
        "issuer": "https://issuer.example",
        "audience": AUDIENCE,
        "jwks": json!({"keys": [ed1.jwk.clone()]}).to_string(),
        "bound_claims": {"repository": ["acme/api"]},
        "policies": ["deploy"],
    });
    ok(&write_role(&server, &root, "ci", &role), "write");
    let peer: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let bad = mint(&ed1, &claims("https://evil.example"));
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(login_from(&server, "ci", &bad, peer).status);
    }
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

/// The presets (and roles for a shared issuer without one) require a second
/// binding; each refusal names what to add and writes nothing.
#[test]
fn presets_require_a_second_binding_and_say_which() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_secret(dir.path(), None);
    let root = server.root_token();
    let jwks = json!({"keys": [p256("k").jwk]}).to_string();
    let role = |preset: Option<&str>, issuer: &str, exact: Value, globs: Value| {
        let mut r = json!({
            "issuer": issuer, "audience": AUDIENCE, "jwks": jwks,
            "bound_claims": exact, "bound_globs": globs, "policies": ["deploy"],
        });
        if let Some(p) = preset {
            r["preset"] = json!(p);
        }
        r
    };
    let gh = "https://token.actions.githubusercontent.com";
    let k8s = "https://kubernetes.default.svc";
    let github_second = "bind one of ref, environment, job_workflow_ref, workflow_ref";
    let gitlab_second = "bind one of ref with ref_type, ref_protected=true, environment";
    let gh_role = |exact: Value, globs: Value| {
        let mut exact = exact;
        exact["repository"] = json!(["acme/api"]);
        role(Some("github"), gh, exact, globs)
    };
    let gl_role = |exact: Value, globs: Value| {
        let mut exact = exact;
        exact["project_path"] = json!(["group/project"]);
        role(Some("gitlab"), "https://gitlab.example.com", exact, globs)
    };
    let mut refused: Vec<(&str, Value, &str)> = vec![
        (
            "github, ref=refs/*",
            gh_role(json!({}), json!({"ref": ["refs/*"]})),
            github_second,
        ),
        (
            "github, ref=*/*",
            gh_role(json!({}), json!({"ref": ["*/*"]})),
            github_second,
        ),
        (
            "github, ref=refs/heads/*",
            gh_role(json!({}), json!({"ref": ["refs/heads/*"]})),
            github_second,
        ),
        (
            "github, job_workflow_ref=*@*",
            gh_role(json!({}), json!({"job_workflow_ref": ["*@*"]})),
            github_second,
        ),
        (
            "github, workflow_ref=*/*",
            gh_role(json!({}), json!({"workflow_ref": ["*/*"]})),
            github_second,
        ),
        (
            "github, one narrow glob and one wide",
            gh_role(json!({}), json!({"ref": ["refs/tags/v*", "refs/*"]})),
            github_second,
        ),
        (
            "github, workflow (a name anyone who pushes writes)",
            gh_role(json!({"workflow": ["deploy"]}), json!({})),
            github_second,
        ),
        (
            "gitlab, ref without ref_type (a tag can be named main)",
            gl_role(json!({"ref": ["main"]}), json!({})),
            gitlab_second,
        ),
        (
            "gitlab, ref_protected=false",
            gl_role(json!({"ref_protected": ["false"]}), json!({})),
            gitlab_second,
        ),
        (
            "gitlab, ref_protected as a glob",
            gl_role(json!({}), json!({"ref_protected": ["t*"]})),
            gitlab_second,
        ),
        (
            "gitlab, ref with a ref_type glob that names nothing",
            gl_role(json!({"ref": ["main"]}), json!({"ref_type": ["*"]})),
            gitlab_second,
        ),
    ];
    refused.extend(vec![
        (
            "github, repository only",
            role(
                Some("github"),
                gh,
                json!({"repository": ["acme/api"]}),
                json!({}),
            ),
            github_second,
        ),
        (
            "github, a second binding that matches anything",
            role(
                Some("github"),
                gh,
                json!({"repository": ["acme/api"]}),
                json!({"ref": ["*"], "environment": ["**"]}),
            ),
            github_second,
        ),
        (
            "github, the second binding only on an unrelated claim",
            role(
                Some("github"),
                gh,
                json!({"repository": ["acme/api"], "actor": ["alice"]}),
                json!({}),
            ),
            github_second,
        ),
        (
            "github's issuer without the preset, repository only",
            role(None, gh, json!({"repository": ["acme/api"]}), json!({})),
            github_second,
        ),
        (
            "github's issuer with a trailing slash",
            role(
                None,
                "https://token.actions.githubusercontent.com/",
                json!({"repository": ["acme/api"]}),
                json!({}),
            ),
            github_second,
        ),
        (
            "gitlab, project_path only",
            role(
                Some("gitlab"),
                "https://gitlab.example.com",
                json!({"project_path": ["group/project"]}),
                json!({}),
            ),
            gitlab_second,
        ),
        (
            "gitlab.com without the preset",
            role(
                None,
                "https://gitlab.com",
                json!({"project_path": ["group/project"]}),
                json!({}),
            ),
            gitlab_second,
        ),
        (
            "kubernetes, namespace only",
            role(
                Some("kubernetes"),
                k8s,
                json!({"kubernetes.io/namespace": ["payments"]}),
                json!({}),
            ),
            "requires claim kubernetes.io/serviceaccount/name",
        ),
        (
            "kubernetes, service account only",
            role(
                Some("kubernetes"),
                k8s,
                json!({"kubernetes.io/serviceaccount/name": ["api"]}),
                json!({}),
            ),
            "requires claim kubernetes.io/namespace",
        ),
        (
            "kubernetes, sub as a glob",
            role(
                Some("kubernetes"),
                k8s,
                json!({}),
                json!({"sub": ["system:serviceaccount:payments:*"]}),
            ),
            "requires claim kubernetes.io/namespace",
        ),
        (
            "kubernetes, sub that names no service account",
            role(
                Some("kubernetes"),
                k8s,
                json!({"sub": ["payments"]}),
                json!({}),
            ),
            "requires claim kubernetes.io/namespace",
        ),
    ]);
    for (what, body, reason) in &refused {
        let r = write_role(&server, &root, "r2", body);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(r.text().contains(reason), "{what}: {}", r.text());
    }
    let list = ok(
        &server.http("GET", "/api/v1/auth/jwt/roles", Some(&root), None),
        "list",
    );
    assert_eq!(list["roles"], json!([]), "nothing was written");
    let accepted: Vec<(&str, Value)> = vec![
        (
            "github with workflow_ref",
            role(
                Some("github"),
                gh,
                json!({"repository": ["acme/api"]}),
                json!({"workflow_ref": ["acme/api/.github/workflows/release.yml@*"]}),
            ),
        ),
        (
            "github with ref=refs/tags/v*",
            gh_role(json!({}), json!({"ref": ["refs/tags/v*"]})),
        ),
        (
            "github with ref=refs/heads/main",
            gh_role(json!({"ref": ["refs/heads/main"]}), json!({})),
        ),
        (
            "gitlab with ref and ref_type",
            gl_role(json!({"ref": ["main"], "ref_type": ["branch"]}), json!({})),
        ),
        (
            "gitlab with ref and ref_protected=true",
            gl_role(
                json!({"ref": ["main"], "ref_protected": ["true"]}),
                json!({}),
            ),
        ),
        (
            "github with environment",
            role(
                None,
                gh,
                json!({"repository": ["acme/api"], "environment": ["prod"]}),
                json!({}),
            ),
        ),
        (
            "gitlab with ref_protected",
            role(
                Some("gitlab"),
                "https://gitlab.example.com",
                json!({"project_path": ["group/project"], "ref_protected": ["true"]}),
                json!({}),
            ),
        ),
        (
            "kubernetes with both",
            role(
                Some("kubernetes"),
                k8s,
                json!({"kubernetes.io/namespace": ["payments"]}),
                json!({"kubernetes.io/serviceaccount/name": ["api-*"]}),
            ),
        ),
        (
            "kubernetes with an exact sub",
            role(
                Some("kubernetes"),
                k8s,
                json!({"sub": ["system:serviceaccount:payments:api"]}),
                json!({}),
            ),
        ),
        (
            "another issuer binds what it likes",
            role(
                None,
                "https://issuer.example",
                json!({"sub": ["x"]}),
                json!({}),
            ),
        ),
    ];
    for (what, body) in &accepted {
        let r = ok(&write_role(&server, &root, "r3", body), what);
        assert!(r.get("needs_binding").is_none(), "{what}: {r}");
    }
}

/// A role stored before the second binding was required keeps logging in
/// (no outage on upgrade), is flagged by read and list, and cannot be
/// rewritten without the binding.
#[test]
fn a_role_stored_before_the_second_binding_logs_in_and_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let key = p256("old");
    let issuer = Issuer::start(&[&key]);
    let server = server_with_secret(dir.path(), None);
    let root = server.root_token();
    // The role as an older coffer stored it: the github preset with only
    // `repository` bound.
    let stored = json!({
        "name": "legacy", "preset": "github", "issuer": issuer.url, "audience": AUDIENCE,
        "keys": {"jwks_url": format!("{}/jwks", issuer.url)},
        "bound_claims": {"repository": ["acme/api"]}, "bound_globs": {},
        "policies": ["deploy"], "ttl_ms": 600000, "updated_by": "root",
        "updated_at": 1_700_000_000_000i64,
    });
    server.block_on(async {
        server
            .coffer()
            .store()
            .commit(vec![coffer_store::Mutation::PutObject {
                kind: "jwt_role".into(),
                key: "legacy".into(),
                value: serde_json::to_vec(&stored).unwrap(),
                expect: coffer_store::Expect::Any,
            }])
            .await
            .unwrap();
    });
    let j = ok(
        &login(&server, "legacy", &mint(&key, &claims(&issuer.url))),
        "the old role still logs in",
    );
    assert_eq!(j["policies"], json!(["deploy"]));
    // The answer says so, for the workload's own log.
    assert!(
        j["needs_binding"]
            .as_str()
            .unwrap_or("")
            .contains("second binding besides repository"),
        "{j}"
    );
    // The login's audit record is marked, so that operators can find the
    // logins through such roles (and so the roles) in the audit log.
    let record = server.audit_records().pop().unwrap();
    assert_eq!(record["op"], "auth.jwt_login", "{record}");
    assert_eq!(record["status"], 200, "{record}");
    assert_eq!(record["workload"]["role"], "legacy", "{record}");
    assert!(
        record["needs_binding"]
            .as_str()
            .unwrap_or("")
            .contains("second binding besides repository"),
        "{record}"
    );
    // The requests its token makes are the workload's, unmarked: the mark
    // is on the login.
    let token = j["token"].as_str().unwrap();
    server.http(
        "GET",
        "/api/v1/secrets/app/prod/DB_PASSWORD",
        Some(token),
        None,
    );
    let read = server.audit_records().pop().unwrap();
    assert_eq!(read["op"], "secret.read", "{read}");
    assert!(read.get("needs_binding").is_none(), "{read}");
    let read = ok(
        &server.http("GET", "/api/v1/auth/jwt/roles/legacy", Some(&root), None),
        "read",
    );
    assert!(
        read["needs_binding"]
            .as_str()
            .unwrap()
            .contains("second binding besides repository"),
        "{read}"
    );
    let list = ok(
        &server.http("GET", "/api/v1/auth/jwt/roles", Some(&root), None),
        "list",
    );
    assert_eq!(list["roles"], json!(["legacy"]));
    assert!(
        list["needs_binding"]["legacy"]
            .as_str()
            .unwrap()
            .contains("bind one of ref"),
        "{list}"
    );
    let mut rewrite = json!({
        "preset": "github", "issuer": issuer.url, "audience": AUDIENCE,
        "jwks_url": format!("{}/jwks", issuer.url),
        "bound_claims": {"repository": ["acme/api"]}, "policies": ["deploy"],
    });
    let r = write_role(&server, &root, "legacy", &rewrite);
    assert_eq!(r.status, 400, "{}", r.text());
    rewrite["bound_claims"]["ref"] = json!(["refs/heads/main"]);
    let fixed = ok(&write_role(&server, &root, "legacy", &rewrite), "rewrite");
    assert!(fixed.get("needs_binding").is_none(), "{fixed}");
    let list = ok(
        &server.http("GET", "/api/v1/auth/jwt/roles", Some(&root), None),
        "list",
    );
    assert!(list.get("needs_binding").is_none(), "{list}");
    // Rewritten, its logins are no longer marked.
    let j = ok(
        &login(&server, "legacy", &mint(&key, &claims(&issuer.url))),
        "the rewritten role logs in",
    );
    assert!(j.get("needs_binding").is_none(), "{j}");
    let record = server.audit_records().pop().unwrap();
    assert_eq!(record["op"], "auth.jwt_login", "{record}");
    assert!(record.get("needs_binding").is_none(), "{record}");
    // `coffer audit query --needs-binding`: the marked login only, not the
    // later one through the rewritten role, nor the token's read.
    let marked = ok(
        &server.http(
            "GET",
            "/api/v1/sys/audit/records?needs_binding=true",
            Some(&root),
            None,
        ),
        "query",
    );
    let records = marked["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{marked}");
    assert_eq!(records[0]["op"], "auth.jwt_login");
    assert_eq!(records[0]["workload"]["role"], "legacy");
    assert_eq!(records[0]["status"], 200);
}

/// An issuer whose JWKS answers only when released: it says when a request
/// has arrived, and holds every request until [`HangingIssuer::release`].
struct HangingIssuer {
    url: String,
    arrived: std::sync::mpsc::Receiver<()>,
    gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    hits: Arc<AtomicUsize>,
}

impl HangingIssuer {
    fn start(keys: &[&Key]) -> HangingIssuer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let jwks =
            json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string();
        let (tx, arrived) = std::sync::mpsc::channel();
        let gate: Arc<(Mutex<bool>, std::sync::Condvar)> = Arc::default();
        let hits: Arc<AtomicUsize> = Arc::default();
        let (g, h) = (gate.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (tx, g, h, jwks) = (tx.clone(), g.clone(), h.clone(), jwks.clone());
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.send(());
                    let (lock, cv) = &*g;
                    let mut open = lock.lock().unwrap();
                    while !*open {
                        open = cv.wait(open).unwrap();
                    }
                    drop(open);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{jwks}",
                        jwks.len()
                    );
                });
            }
        });
        HangingIssuer {
            url,
            arrived,
            gate,
            hits,
        }
    }

    fn release(&self) {
        let (lock, cv) = &*self.gate;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
}

fn role_for(url: &str) -> Value {
    json!({
        "preset": "github",
        "issuer": url,
        "audience": AUDIENCE,
        "jwks_url": format!("{url}/jwks"),
        "bound_claims": {"repository": ["acme/api"], "environment": ["production"]},
        "policies": ["deploy"],
    })
}

/// A hanging issuer holds up only the logins that need its keys: another
/// issuer's login completes while the hanging one's is still waiting, and
/// every login waiting on the hanging issuer shares one fetch.
#[test]
fn a_hanging_issuer_does_not_delay_another_issuers_logins() {
    let dir = tempfile::tempdir().unwrap();
    let slow_key = ed25519("slow");
    let fast_key = p256("fast");
    let slow = HangingIssuer::start(&[&slow_key]);
    let fast = Issuer::start(&[&fast_key]);
    let server = server_with_secret(dir.path(), None);
    let root = server.root_token();
    ok(
        &write_role(&server, &root, "slow", &role_for(&slow.url)),
        "slow role",
    );
    ok(
        &write_role(&server, &root, "fast", &role_for(&fast.url)),
        "fast role",
    );
    std::thread::scope(|s| {
        let waiting: Vec<_> = (0..4)
            .map(|_| {
                let jwt = mint(&slow_key, &claims(&slow.url));
                let server = &server;
                s.spawn(move || login(server, "slow", &jwt))
            })
            .collect();
        // The slow issuer has a request in hand and has not answered it.
        slow.arrived.recv().unwrap();
        // The fast issuer's login completes meanwhile (it would wait for
        // the slow fetch behind one lock for all issuers).
        let r = login(&server, "fast", &mint(&fast_key, &claims(&fast.url)));
        ok(&r, "the fast issuer's login");
        assert!(
            waiting.iter().all(|h| !h.is_finished()),
            "the slow issuer's logins were still waiting when the fast one completed"
        );
        slow.release();
        for h in waiting {
            ok(
                &h.join().unwrap(),
                "the slow issuer's login, once it answered",
            );
        }
    });
    assert_eq!(
        slow.hits.load(Ordering::SeqCst),
        1,
        "four concurrent logins shared one fetch"
    );
}

/// Keys cached from an issuer whose JWKS can no longer be fetched serve
/// only until the stale bound: then logins fail closed, audited with the
/// reason, and a successful fetch makes them work again.
#[test]
fn cached_keys_past_the_stale_bound_fail_closed_while_the_issuer_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519("k1");
    let issuer = Issuer::start(&[&key]);
    // Every cached set is past the bound at once (the bound's length is
    // a tunable; what is tested is what happens past it).
    let server = Server::start_tuned(dir.path(), Mode::Dev, |o| {
        o.jwks_refetch_interval = std::time::Duration::ZERO;
        o.jwks_stale_max = std::time::Duration::ZERO;
    });
    let root = server.root_token();
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/deploy",
            Some(&root),
            Some(br#"{"policy":"path \"app/prod/*\" { capabilities = [\"read\"] }"}"#),
        ),
        "policy",
    );
    ok(
        &write_role(&server, &root, "ci", &role_for(&issuer.url)),
        "role",
    );
    ok(
        &login(&server, "ci", &mint(&key, &claims(&issuer.url))),
        "first login fetches",
    );
    // The issuer now serves garbage: refetching fails.
    *issuer.jwks.lock().unwrap() = json!("down");
    let r = login(&server, "ci", &mint(&key, &claims(&issuer.url)));
    assert_eq!(r.status, 502, "the issuer's failure: {}", r.text());
    let reason = "the cached ones were last fetched more than 0 seconds ago";
    assert!(r.text().contains(reason), "{}", r.text());
    let record = server.audit_records().pop().unwrap();
    assert_eq!(record["op"], "auth.jwt_login");
    assert!(
        record["reason"].as_str().unwrap_or("").contains(reason),
        "{record}"
    );
    // The issuer answers again: the next login fetches and succeeds.
    issuer.publish(&[&key]);
    ok(
        &login(&server, "ci", &mint(&key, &claims(&issuer.url))),
        "after the issuer is back",
    );
}

/// With the default bound, keys cached a moment ago keep serving while the
/// issuer is unreachable (an issuer's outage is not coffer's), and an
/// unknown kid is refused with the fetch's failure.
#[test]
fn cached_keys_within_the_stale_bound_serve_while_the_issuer_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519("k1");
    let other = ed25519("k2");
    let issuer = Issuer::start(&[&key]);
    let server = server_with_secret(dir.path(), Some(std::time::Duration::ZERO));
    let root = server.root_token();
    ok(
        &write_role(&server, &root, "ci", &role_for(&issuer.url)),
        "role",
    );
    ok(
        &login(&server, "ci", &mint(&key, &claims(&issuer.url))),
        "fetch",
    );
    *issuer.jwks.lock().unwrap() = json!("down");
    ok(
        &login(&server, "ci", &mint(&key, &claims(&issuer.url))),
        "cached key while the issuer is down",
    );
    let r = login(&server, "ci", &mint(&other, &claims(&issuer.url)));
    assert_eq!(r.status, 502);
    assert!(r.text().contains("could not be fetched"), "{}", r.text());
}

/// GitHub's numeric IDs pin a repository (or its owner) where a name can
/// be taken over: `acme/api` renamed, transferred or deleted frees the
/// name for someone else's new repository, never the ID. A role bound to
/// `repository_id` refuses that namesake, saying which claim, with the
/// refusal audited and the JWT in no record.
#[test]
fn a_role_bound_to_the_repository_id_refuses_a_namesake_with_another_id() {
    let dir = tempfile::tempdir().unwrap();
    let key = p256("gh");
    let issuer = Issuer::start(&[&key]);
    let server = server_with_secret(dir.path(), None);
    let root = server.root_token();
    let role = |exact: Value, globs: Value| {
        json!({
            "preset": "github", "issuer": issuer.url, "audience": AUDIENCE,
            "jwks_url": format!("{}/jwks", issuer.url),
            "bound_claims": exact, "bound_globs": globs, "policies": ["deploy"],
        })
    };
    ok(
        &write_role(
            &server,
            &root,
            "pinned",
            &role(
                json!({"repository": ["acme/api"], "repository_id": ["123456"],
                       "ref": ["refs/heads/main"]}),
                json!({}),
            ),
        ),
        "a role bound by name and ID",
    );
    let with_id = |id: Value| {
        let mut c = claims(&issuer.url);
        c["repository_id"] = id;
        c["repository_owner_id"] = json!("42");
        c
    };
    // The repository itself, with its ID as GitHub sends it (a string),
    // or as a JSON number.
    for id in [json!("123456"), json!(123456)] {
        let j = ok(
            &login(&server, "pinned", &mint(&key, &with_id(id.clone()))),
            "the repository with its ID",
        );
        assert_eq!(j["workload"]["claims"]["repository_id"], "123456", "{j}");
    }

    // The same name with another ID (a repository recreated under the
    // freed name), and a token with no ID at all: refused.
    let namesake = mint(&key, &with_id(json!("999999")));
    let no_id = mint(&key, &claims(&issuer.url));
    for (what, jwt, reason) in [
        (
            "namesake",
            &namesake,
            "claim repository_id is not allowed by the role",
        ),
        (
            "no ID",
            &no_id,
            "the JWT has no claim repository_id, which the role binds",
        ),
    ] {
        let r = login(&server, "pinned", jwt);
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert!(r.text().contains(reason), "{what}: {}", r.text());
        let record = server.audit_records().pop().unwrap();
        assert_eq!(record["op"], "auth.jwt_login", "{what}");
        assert_eq!(record["status"], 401, "{what}");
        assert!(
            record["reason"].as_str().unwrap_or("").contains(reason),
            "{what}: {record}"
        );
        let log = server.audit_log_text();
        let sig = jwt.rsplit('.').next().unwrap();
        assert!(!log.contains(jwt.as_str()), "{what}: the JWT is audited");
        assert!(!log.contains(sig), "{what}: its signature is audited");
    }

    // An ID binding pins the repository (or the owner) in place of
    // `repository`; the second binding is still required.
    for (what, exact) in [
        (
            "repository_id and ref",
            json!({"repository_id": ["123456"], "ref": ["refs/heads/main"]}),
        ),
        (
            "repository_owner_id and environment",
            json!({"repository_owner_id": ["42"], "environment": ["production"]}),
        ),
    ] {
        let w = ok(
            &write_role(&server, &root, "by-id", &role(exact, json!({}))),
            what,
        );
        assert!(w.get("needs_binding").is_none(), "{what}: {w}");
        ok(
            &login(&server, "by-id", &mint(&key, &with_id(json!("123456")))),
            what,
        );
    }
    let refused: Vec<(&str, Value, Value, &str)> = vec![
        (
            "an ID alone, no second binding",
            json!({"repository_id": ["123456"]}),
            json!({}),
            "requires a second binding besides repository",
        ),
        (
            "an ID glob",
            json!({"ref": ["refs/heads/main"]}),
            json!({"repository_id": ["12*"]}),
            "claim repository_id is a numeric ID",
        ),
        (
            "an ID glob beside the name",
            json!({"repository": ["acme/api"], "ref": ["refs/heads/main"]}),
            json!({"repository_owner_id": ["*"]}),
            "claim repository_owner_id is a numeric ID",
        ),
        (
            "an ID that is a name",
            json!({"repository_id": ["acme/api"], "ref": ["refs/heads/main"]}),
            json!({}),
            "claim repository_id is a numeric ID",
        ),
        (
            "a signed ID",
            json!({"repository_owner_id": ["-42"], "ref": ["refs/heads/main"]}),
            json!({}),
            "claim repository_owner_id is a numeric ID",
        ),
        (
            "neither a name nor an ID",
            json!({"ref": ["refs/heads/main"]}),
            json!({}),
            "or repository_id or repository_owner_id to exact numeric IDs",
        ),
    ];
    for (what, exact, globs, reason) in refused {
        let r = write_role(&server, &root, "bad", &role(exact, globs));
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(r.text().contains(reason), "{what}: {}", r.text());
        let r = server.http("GET", "/api/v1/auth/jwt/roles/bad", Some(&root), None);
        assert_eq!(r.status, 404, "{what}: nothing was written");
    }
}
