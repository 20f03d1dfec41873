//! The per-request cost of an audit record's line before it is linked:
//! serializing it (the first format, `serde_json` of the full record, and
//! version 2, [`Record::encode`]) and the sanitizer pass every line goes
//! through. Prints each line's size once.
//!
//! `cargo bench -p coffer-audit --bench record`

use coffer_audit::record::{Actor, Kind, Outcome, Record};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

/// A read as the server records it (the book's example).
fn typical_read() -> Record {
    Record {
        time: "2026-11-23T10:04:05.123Z".into(),
        kind: Kind::Request,
        request_id: Some("4be01c9a-0000000003e8".into()),
        actor: Some(Actor {
            kind: "service".into(),
            name: "ci-deploy".into(),
            accessor: "acc_BAeOawQvhCjma9PS4oHzv3rm".into(),
            via: None,
        }),
        token: Some(
            "hmac-sha256:01c1468983307199a34b314d47b217299820b87300dac3e655e93604d957abd1".into(),
        ),
        source: Some("10.20.3.7".into()),
        method: Some("GET".into()),
        route: Some("/api/v1/secrets/myapp/prod/DB_PASSWORD".into()),
        op: Some("secret.read".into()),
        decision: Some("read".into()),
        path: Some("myapp/prod/DB_PASSWORD".into()),
        version: Some(3),
        outcome: Some(Outcome::Ok),
        status: Some(200),
        duration_us: Some(412),
        protected: true,
        ..Record::default()
    }
}

fn bench(c: &mut Criterion) {
    let r = typical_read();
    // The line adds `{"seq":N,` in front and `,"chain":"HEX"}` at the end.
    let framing = "{\"seq\":1042,".len() - 1 + ",\"chain\":\"\"}".len() + 64 + 1;
    let v1 = serde_json::to_vec(&r).unwrap();
    let v2 = r.encode().unwrap();
    eprintln!(
        "typical read, line bytes with seq, chain and newline: first format {}, version 2 {}",
        v1.len() + framing,
        v2.len() + framing
    );
    let mut g = c.benchmark_group("audit_record");
    g.bench_function("encode_v1_and_sanitize", |b| {
        b.iter(|| {
            let mut json = serde_json::to_vec(black_box(&r)).unwrap();
            coffer_audit::sanitize::clean(&mut json);
            json
        })
    });
    g.bench_function("encode_v2_and_sanitize", |b| {
        b.iter(|| {
            let mut json = black_box(&r).encode().unwrap();
            coffer_audit::sanitize::clean(&mut json);
            json
        })
    });
    g.bench_function("encode_v1", |b| {
        b.iter(|| serde_json::to_vec(black_box(&r)).unwrap())
    });
    g.bench_function("encode_v2", |b| b.iter(|| black_box(&r).encode().unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
