//! The request path without the network: the router called in-process with
//! `oneshot`, as axum's testing example does. Separates the cost of routing,
//! authentication, the cache, AES-GCM, JSON and the audit record from the
//! cost of TCP.
//!
//! `cargo bench -p coffer-server --bench read_path`

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use coffer_core::{Coffer, CoreOptions, SecretValue};
use coffer_crypto::SecretString;
use coffer_server::{AppState, router};
use coffer_store::{SqliteStore, Storage};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (coffer, token) = rt.block_on(async {
        let store: Arc<dyn Storage> =
            Arc::new(SqliteStore::open(&dir.path().join("b.db")).unwrap());
        let coffer = Arc::new(Coffer::open(store, CoreOptions::default()).await.unwrap());
        let init = coffer.init(1, 1).await.unwrap();
        coffer
            .unseal(init.unseal_keys[0].expose_secret())
            .await
            .unwrap();
        let root = coffer
            .authenticate(init.root_token.expose_secret(), None)
            .await
            .unwrap();
        let value = SecretValue::Text(SecretString::from(
            "bench-value-0123456789abcdef0123456789abcdef",
        ));
        coffer
            .write(&root, "bench/read", &value, None)
            .await
            .unwrap();
        (coffer, init.root_token.expose_secret().to_string())
    });
    // Audit on, as in production: a file in the temporary directory.
    let key_source = {
        let coffer = coffer.clone();
        Arc::new(move || coffer.audit_key())
    };
    let (auditor, _alerts) = coffer_audit::Auditor::start(coffer_audit::AuditorConfig {
        sinks: vec![coffer_audit::SinkSpec::File(dir.path().join("audit.log"))],
        fsync: coffer_audit::Fsync::Interval(std::time::Duration::from_secs(1)),
        rules: coffer_audit::AlertRules::default(),
        key: key_source,
        rotation: coffer_audit::Rotation::default(),
    })
    .unwrap();
    let app = router(
        AppState::new(coffer.clone(), Arc::new(auditor)),
        coffer_server::RouterOptions::new(1 << 20, "127.0.0.1:8270".parse().unwrap()),
    );
    let auth = format!("Bearer {token}");

    c.bench_function("router: authenticated read", |b| {
        b.to_async(&rt).iter(|| async {
            let req = Request::get("/api/v1/secrets/bench/read")
                .header("host", "127.0.0.1:8270")
                .header("authorization", &auth)
                .body(Body::empty())
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
        })
    });
    c.bench_function("core: authenticate", |b| {
        b.to_async(&rt)
            .iter(|| async { coffer.authenticate(&token, None).await.unwrap() })
    });
    let id = rt.block_on(coffer.authenticate(&token, None)).unwrap();
    c.bench_function("core: read (cached)", |b| {
        b.to_async(&rt)
            .iter(|| async { coffer.read(&id, "bench/read", None).await.unwrap() })
    });
    c.bench_function("router: health (no auth, no crypto)", |b| {
        b.to_async(&rt).iter(|| async {
            let req = Request::get("/api/v1/sys/health")
                .body(Body::empty())
                .unwrap();
            app.clone().oneshot(req).await.unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
