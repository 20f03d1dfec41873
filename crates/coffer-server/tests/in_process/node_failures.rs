//! A node that cannot start half way, or that stops: what it leaves behind
//! (the data directory's lock, the audit log, the files it created).

use std::os::unix::fs::PermissionsExt;

use coffer_server::{Node, NodeError, NodeOptions, ServerConfig};

fn config(dir: &std::path::Path, listen: &str) -> ServerConfig {
    ServerConfig::parse(&format!(
        "listen = {listen:?}\ndata_dir = {:?}\n",
        dir.display().to_string()
    ))
    .expect("a valid configuration")
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_port_is_taken_fails_and_lets_its_data_directory_go() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();

    let err = Node::start(config(&data, &addr), NodeOptions::default())
        .await
        .err()
        .expect("the port is taken");
    assert!(matches!(err, NodeError::Serve(_)), "{err:?}");
    assert!(!err.is_config(), "{err}");
    assert!(err.to_string().contains(&addr), "{err}");

    // What it had opened is closed: the directory and its files are the
    // owner's only, the audit log was closed, and the lock is free.
    assert_eq!(mode(&data), 0o700);
    for f in [
        coffer_server::DB_FILE,
        coffer_server::LOCK_FILE,
        "audit.log",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    let log = std::fs::read_to_string(data.join("audit.log")).unwrap();
    assert!(log.trim_end().ends_with('}'), "{log}");
    assert!(log.contains("audit log closed"), "{log}");
    let node = Node::start(config(&data, "127.0.0.1:0"), NodeOptions::default())
        .await
        .expect("the data directory was let go");
    node.shutdown().await.unwrap();
    drop(taken);
}

/// The `seq` of every record in an audit log file, in file order.
fn seqs(log: &str) -> Vec<u64> {
    log.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON record");
            v["seq"].as_u64().expect("a seq")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_node_closes_its_audit_log_before_another_takes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start(config(&data, "127.0.0.1:0"), NodeOptions::default())
        .await
        .unwrap();
    let log = node.audit_files()[0].clone();
    let client = coffer_client::Client::builder(node.url()).build().unwrap();
    let _ = client.keyring().await;
    drop(node);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let again = loop {
        match Node::start(config(&data, "127.0.0.1:0"), NodeOptions::default()).await {
            Ok(node) => break node,
            Err(NodeError::Locked(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(e) => panic!("the data directory was not let go: {e}"),
        }
    };
    again.shutdown().await.unwrap();
    // One chain: the first node's records, its closing notice, then the
    // second node's, never interleaved.
    let text = std::fs::read_to_string(&log).unwrap();
    let seqs = seqs(&text);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{text}");
    let closed = text.matches("audit log closed").count();
    assert_eq!(closed, 2, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_cut_short_leaves_no_job_running() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start(config(&data, "127.0.0.1:0"), NodeOptions::default())
        .await
        .unwrap();
    let coffer = node.coffer().clone();
    // Polled once (the listener is told to stop), then given up.
    let cut = futures_util::FutureExt::now_or_never(node.shutdown());
    assert!(cut.is_none(), "the shutdown finished at its first poll");
    // Everything of the node's lets the core go: the listener as it ends,
    // the background jobs at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::sync::Arc::strong_count(&coffer) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} holders of the core are still running",
            std::sync::Arc::strong_count(&coffer) - 1
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_cut_short_still_closes_the_audit_log_before_the_lock_goes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start(config(&data, "127.0.0.1:0"), NodeOptions::default())
        .await
        .unwrap();
    let log = node.audit_files()[0].clone();
    let cut = futures_util::FutureExt::now_or_never(node.shutdown());
    assert!(cut.is_none(), "the shutdown finished at its first poll");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let again = loop {
        match Node::start(config(&data, "127.0.0.1:0"), NodeOptions::default()).await {
            Ok(node) => break node,
            Err(NodeError::Locked(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(e) => panic!("the data directory was not let go: {e}"),
        }
    };
    // By the time the directory is free, the first node's log is closed.
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("audit log closed").count(), 1, "{text}");
    again.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let seqs = seqs(&text);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{text}");
}
