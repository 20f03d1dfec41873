//! Benchmark helper (`bench/scale/scale.py`): appends many realistic audit
//! records to a *stopped* server's audit log with the server's own audit
//! writer, so that `coffer audit verify` can be timed on a log of ten
//! million records without sending ten million requests first.
//!
//! It opens the server's store from its configuration file, unseals the
//! core with the unseal key read from standard input (never from the
//! command line), and starts [`coffer_audit::Auditor`] on the
//! configuration's sinks with the core's audit key: the same writer, the
//! same chain, the same head files the server uses, continued where the
//! server left them. Nothing here formats a chain link by hand.
//!
//! ```sh
//! cargo build --release -p coffer-cli --example audit_fill
//! target/release/examples/audit_fill --config coffer.toml --records 10000000 < unseal-key
//! ```
//!
//! The records imitate what the server writes for a mix of requests
//! (reads, lists, writes, denied reads), by a few actors on many paths.
//! They are benchmark filler: a log they were added to tells the truth
//! about what it is only to the benchmark.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use coffer_audit::record::ReadRef;
use coffer_audit::{Actor, Auditor, AuditorConfig, Outcome, Record};
use coffer_core::{Coffer, CoreOptions};
use coffer_server::{ServerConfig, open_store};

/// Records in flight at once (the writer batches what is queued).
const TASKS: u64 = 256;

fn usage() -> ! {
    eprintln!("usage: audit_fill --config FILE --records N < UNSEAL_KEY");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut config, mut records) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next().map(PathBuf::from),
            "--records" => records = args.next().and_then(|n| n.parse::<u64>().ok()),
            _ => usage(),
        }
    }
    let (Some(config), Some(records)) = (config, records) else {
        usage()
    };
    let config = ServerConfig::load(&config).unwrap_or_else(|e| {
        eprintln!("audit_fill: {e}");
        std::process::exit(1)
    });
    let mut key = String::new();
    std::io::stdin()
        .read_to_string(&mut key)
        .expect("the unseal key on standard input");
    let (store, _lock) = open_store(&config.storage, &config.data_dir)
        .await
        .unwrap_or_else(|e| {
            eprintln!("audit_fill: cannot open the store: {e}");
            std::process::exit(1)
        });
    let coffer = Arc::new(
        Coffer::open(store, CoreOptions::default())
            .await
            .expect("the core opens"),
    );
    coffer
        .unseal(key.trim())
        .await
        .expect("the unseal key unseals");
    drop(key);
    let key_source = {
        let coffer = coffer.clone();
        Arc::new(move || coffer.audit_key())
    };
    let (auditor, _alerts) = Auditor::start(AuditorConfig {
        sinks: config.audit.sinks(&config.data_dir),
        fsync: config.audit.fsync_policy(),
        rules: config.audit.alerts.clone(),
        key: key_source,
        rotation: coffer_audit::Rotation::default(),
    })
    .expect("the audit log opens");
    let auditor = Arc::new(auditor);
    let next = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (auditor, next) = (auditor.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= records {
                    return;
                }
                assert!(auditor.record(filler(n)).await, "the audit writer refused");
            }
        }));
    }
    for t in tasks {
        t.await.expect("a filler task");
    }
    auditor.close();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"records\":{records},\"seconds\":{secs:.3},\"per_second\":{:.0}}}",
        records as f64 / secs
    );
}

/// The `n`th filler record: what the server writes for one request.
fn filler(n: u64) -> Record {
    let folder = n % 1000;
    let path = format!("scale/f{folder}/s{}", n % 1_000_000);
    let (method, op, decision, outcome, status, route_path) = match n % 20 {
        0 => (
            "PUT",
            "secret.write",
            "update",
            Outcome::Ok,
            200,
            path.clone(),
        ),
        1 => (
            "GET",
            "secret.list",
            "list",
            Outcome::Ok,
            200,
            format!("scale/f{folder}/"),
        ),
        2 => (
            "GET",
            "secret.read",
            "read",
            Outcome::Denied,
            403,
            path.clone(),
        ),
        _ => ("GET", "secret.read", "read", Outcome::Ok, 200, path.clone()),
    };
    let route = match op {
        "secret.list" => format!("/api/v1/list/{route_path}"),
        _ => format!("/api/v1/secrets/{route_path}"),
    };
    let actor = n % 7;
    Record {
        time: coffer_audit::now_rfc3339(),
        request_id: Some(format!("5ca1e000-{n:012x}")),
        actor: Some(Actor {
            kind: "service".into(),
            name: format!("bench-{actor}"),
            accessor: format!("acc_scalebenchfiller000000{actor:02}"),
            via: None,
        }),
        token: Some(format!("hmac-sha256:{:064x}", actor + 1)),
        source: Some("127.0.0.1".into()),
        method: Some(method.into()),
        route: Some(route),
        op: Some(op.into()),
        decision: Some(decision.into()),
        version: (op != "secret.list").then_some(1 + n % 10),
        path: Some(route_path),
        writes: Vec::<ReadRef>::new(),
        outcome: Some(outcome),
        status: Some(status),
        error: (status == 403).then(|| "permission_denied".into()),
        duration_us: Some(40 + n % 200),
        ..Record::default()
    }
}
