//! Every route of the HTTP API (native and Vault-compatible) fed arbitrary
//! request bodies, content types and path parameters, as the dev root token
//! (so the request gets past authorization into the handler): the server
//! never panics and never answers 500. A hostile body must get a clear 4xx.
//!
//! One node runs for the whole fuzzing process, as `coffer server --dev`
//! assembles it, on a SQLite store in a temporary directory. Routes that end
//! the session for every later input (sealing, revoking the root token) are
//! left out: sealing is covered by the seal tests.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::Request;
use coffer_core::{Coffer, CoreOptions};
use coffer_server::{AppState, Peer, RouterOptions, ServerConfig, body_limit_for, router};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Node {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    root: String,
    listen: SocketAddr,
    _dir: tempfile::TempDir,
}

/// (method, path template) of every route worth fuzzing.
fn routes() -> &'static [(&'static str, &'static str)] {
    static ROUTES: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let mut out = Vec::new();
        for r in coffer_api::routes::ALL {
            out.push((r.method.as_str(), r.path));
        }
        for r in coffer_api::vault_routes::ALL {
            out.push((r.method.as_str(), r.path));
        }
        out.retain(|(_, path)| {
            !(path.ends_with("/seal")
                || path.contains("revoke-self")
                || path.contains("revoke_self"))
        });
        out
    })
}

fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config =
            ServerConfig::parse(&format!("data_dir = {:?}\n", data.display().to_string())).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store = coffer_store::SqliteStore::open(&data.join("coffer.db")).unwrap();
        let coffer = Arc::new(
            rt.block_on(Coffer::open(
                Arc::new(store),
                CoreOptions {
                    max_value_bytes: config.max_value_bytes,
                    key_max_encryptions: config.key_max_encryptions,
                    ..CoreOptions::default()
                },
            ))
            .unwrap(),
        );
        let root = rt.block_on(async {
            let init = coffer.init(1, 1).await.unwrap();
            coffer
                .unseal(init.unseal_keys[0].expose_secret())
                .await
                .unwrap();
            init.root_token.expose_secret().to_string()
        });
        let key_source = {
            let coffer = coffer.clone();
            Arc::new(move || coffer.audit_key())
        };
        let (auditor, _alerts) = coffer_audit::Auditor::start(coffer_audit::AuditorConfig {
            sinks: config.audit.sinks(&config.data_dir),
            fsync: coffer_audit::Fsync::Interval(std::time::Duration::from_secs(1)),
            rules: config.audit.alerts.clone(),
            key: key_source,
            rotation: config.audit.rotation(),
        })
        .unwrap();
        let options = RouterOptions {
            hosts: config.host_rules().unwrap(),
            ..RouterOptions::new(body_limit_for(config.max_value_bytes), config.listen)
        };
        let app = router(AppState::new(coffer, Arc::new(auditor)), options);
        Node {
            rt,
            app,
            root,
            listen: config.listen,
            _dir: dir,
        }
    })
}

#[derive(Arbitrary, Debug)]
struct Input {
    route: u16,
    /// One value per path parameter; missing ones are a plausible path.
    params: Vec<String>,
    content_type: u8,
    /// A JSON value to send, or raw bytes when `raw` is set.
    json: Option<Json>,
    raw: Vec<u8>,
    query: Option<String>,
}

/// Structured JSON, so most inputs get past the JSON parser into the handler.
#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Num(i64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(Key, Json)>),
}

/// Object keys: mostly the field names the API uses.
#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Other(String),
}

const FIELDS: &[&str] = &[
    "value",
    "data",
    "path",
    "version",
    "versions",
    "policies",
    "policy",
    "ttl",
    "max_ttl",
    "uses",
    "cidrs",
    "name",
    "password",
    "totp",
    "code",
    "labels",
    "label",
    "description",
    "owner",
    "tags",
    "expires_at",
    "generator",
    "length",
    "entries",
    "secrets",
    "from",
    "to",
    "reason",
    "duration",
    "shares",
    "threshold",
    "key",
    "keys",
    "options",
    "cas",
    "metadata",
    "prefix",
    "dry_run",
    "overwrite",
    "accessor",
    "token",
    "role",
    "display_name",
    "renewable",
    "period",
    "num_uses",
    "no_parent",
    "type",
    "values",
    "fingerprints",
    "compromised",
    "url",
    "grace",
    "schedule",
    "every",
    "deleted",
    "destroyed",
    "created_at",
    "created_by",
    "state",
];

fn to_value(j: &Json, depth: u32) -> serde_json::Value {
    use serde_json::Value;
    if depth > 6 {
        return Value::Null;
    }
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Num(n) => Value::from(*n),
        Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Json::Str(s) => Value::String(s.clone()),
        Json::Arr(a) => Value::Array(a.iter().take(16).map(|v| to_value(v, depth + 1)).collect()),
        Json::Obj(o) => Value::Object(
            o.iter()
                .take(16)
                .map(|(k, v)| {
                    let k = match k {
                        Key::Known(i) => FIELDS[usize::from(*i) % FIELDS.len()].to_string(),
                        Key::Other(s) => s.clone(),
                    };
                    (k, to_value(v, depth + 1))
                })
                .collect(),
        ),
    }
}

const PLAUSIBLE: &[&str] = &[
    "fz/dev/API_KEY",
    "secret",
    "fz",
    "acc_000000000000000000000000",
    "ops",
];

fuzz_target!(|input: Input| {
    let node = node();
    let routes = routes();
    let (method, template) = routes[usize::from(input.route) % routes.len()];
    // Fill `{name}` and `{*path}` parameters.
    let mut uri = String::new();
    let mut rest = template;
    let mut i = 0;
    while let Some(open) = rest.find('{') {
        uri.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let value = input
            .params
            .get(i)
            .cloned()
            .unwrap_or_else(|| PLAUSIBLE[i % PLAUSIBLE.len()].to_string());
        if rest[open + 1..].starts_with('*') {
            uri.push_str(&coffer_api::routes::encode_path(&value));
        } else {
            uri.push_str(&coffer_api::routes::encode_segment(&value));
        }
        rest = &rest[(close + 1).min(rest.len())..];
        i += 1;
    }
    uri.push_str(rest);
    if let Some(q) = &input.query {
        uri.push('?');
        uri.extend(q.chars().filter(|c| c.is_ascii_graphic() && *c != '#'));
    }
    let body = match &input.json {
        Some(j) => serde_json::to_vec(&to_value(j, 0)).unwrap(),
        None => input.raw.clone(),
    };
    let content_type = match input.content_type % 4 {
        0 | 1 => "application/json",
        2 => "text/plain",
        _ => "application/json; charset=utf-8",
    };
    // Vault clients send LIST as a method of its own.
    let method = if method == "LIST" { "LIST" } else { method };
    let Ok(req) = Request::builder()
        .method(method)
        .uri(&uri)
        .header("host", node.listen.to_string())
        .header("authorization", format!("Bearer {}", node.root))
        .header("x-vault-token", node.root.as_str())
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(Body::from(body))
    else {
        return;
    };
    let mut req = req;
    let mut peer = Peer::new("127.0.0.1:50000".parse().unwrap());
    peer.local = Some(node.listen);
    req.extensions_mut().insert(peer);
    let app = node.app.clone();
    let status = node
        .rt
        .block_on(async move { app.oneshot(req).await.unwrap().status() });
    assert!(
        status.as_u16() != 500,
        "{method} {template} answered 500 (uri {uri:?})"
    );
});
