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
