//! `coffer audit verify`'s work per record: [`chain::verify`] over an
//! in-memory log of requests like those the server writes (about 500 bytes
//! a line, as `audit_fill` writes them), against the log's head.
//!
//! `cargo bench -p coffer-audit --bench verify`

use coffer_audit::chain::{self, Head};
use coffer_audit::{Actor, Outcome, Record};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const RECORDS: u64 = 20_000;

/// A request record like `audit_fill`'s `n`th.
fn request(n: u64) -> Record {
    let folder = n % 1000;
    let path = format!("scale/f{folder}/s{}", n % 1_000_000);
    let actor = n % 7;
    Record {
        time: "2026-12-07T23:31:05.123Z".into(),
        request_id: Some(format!("5ca1e000-{n:012x}")),
        actor: Some(Actor {
            kind: "service".into(),
            name: format!("bench-{actor}"),
            accessor: format!("acc_scalebenchfiller000000{actor:02}"),
            via: None,
        }),
        token: Some(format!("hmac-sha256:{:064x}", actor + 1)),
        source: Some("127.0.0.1".into()),
        method: Some("GET".into()),
        route: Some(format!("/api/v1/secrets/{path}")),
        op: Some("secret.read".into()),
        decision: Some("read".into()),
        version: Some(1 + n % 10),
        path: Some(path),
        outcome: Some(Outcome::Ok),
        status: Some(200),
        duration_us: Some(40 + n % 200),
        ..Record::default()
    }
}

/// A log of `n` records framed as the writer frames them (`{"seq":N,` in
/// front, `,"chain":"HEX"}` at the end; see the `chain` module), with its
/// head. The framing is checked below: the log must verify.
fn log(key: &coffer_crypto::AuditKey, n: u64) -> (Vec<u8>, Head) {
    let mut out = Vec::new();
    let mut head = Head::EMPTY;
    for seq in 1..=n {
        let json = request(seq).encode().unwrap();
        let mut body = format!("{{\"seq\":{seq},").into_bytes();
        body.extend_from_slice(&json[1..]);
        let link = key.chain(&head.link, &body);
        out.extend_from_slice(&body[..body.len() - 1]);
        out.extend_from_slice(b",\"chain\":\"");
        for b in link {
            out.extend_from_slice(format!("{b:02x}").as_bytes());
        }
        out.extend_from_slice(b"\"}\n");
        head = Head { seq, link };
    }
    (out, head)
}

fn bench(c: &mut Criterion) {
    let key = coffer_crypto::Keyring::generate(0).audit_key();
    let (log, head) = log(&key, RECORDS);
    let report = chain::verify(&log[..], &key, Some(head)).unwrap();
    assert!(
        report.ok() && report.records == RECORDS,
        "{:?}",
        report.problem
    );
    eprintln!(
        "{RECORDS} records, {} bytes a line on average",
        log.len() as u64 / RECORDS
    );
    let mut g = c.benchmark_group("audit_verify");
    g.throughput(Throughput::Elements(RECORDS));
    g.bench_function("verify", |b| {
        b.iter(|| chain::verify(black_box(&log[..]), &key, Some(head)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
