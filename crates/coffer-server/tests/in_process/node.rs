//! A node started in-process, driven over real HTTP: initialised,
//! unsealed, written to, stopped, and started again on the same data
//! directory, where what it wrote is still there.

use coffer_api::WireValue;
use coffer_client::Client;
use coffer_crypto::SecretString;
use coffer_server::{Node, NodeError, NodeOptions, ServerConfig};

fn config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig::parse(&format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
        dir.display().to_string()
    ))
    .expect("a valid configuration")
}

async fn start(dir: &std::path::Path) -> Node {
    Node::start(config(dir), NodeOptions::default())
        .await
        .expect("the node starts")
}

fn text(value: &WireValue) -> &str {
    match value {
        WireValue::Text(t) => t,
        WireValue::Fields(_) => panic!("a text value was written"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_stops_and_starts_again_on_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let node = start(&data).await;
    assert!(node.local_addr().port() != 0, "the real port is known");
    assert!(node.url().starts_with("http://127.0.0.1:"));
    let anonymous = Client::builder(node.url()).build().unwrap();
    let status = anonymous.status().await.unwrap();
    assert!(!status.initialized && status.sealed);

    let init = anonymous.init(1, 1).await.unwrap();
    let key = SecretString::new(init.unseal_keys[0].clone());
    let root = SecretString::new(init.root_token.clone());
    assert!(!anonymous.unseal(&key).await.unwrap().sealed);
    let client = Client::builder(node.url())
        .secret_token(root.clone())
        .build()
        .unwrap();
    let written = client
        .write(
            "app/dev/API_KEY",
            &WireValue::Text("first value".into()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(written.version, 1);
    let read = client.read("app/dev/API_KEY", None).await.unwrap();
    assert_eq!(text(&read.value), "first value");

    // The data directory is this node's while it runs.
    match Node::start(config(&data), NodeOptions::default()).await {
        Err(NodeError::Locked(d)) => assert_eq!(d, data),
        Err(e) => panic!("a second node failed otherwise: {e}"),
        Ok(_) => panic!("a second node started on a locked data directory"),
    }

    let audit_log = node.audit_files()[0].clone();
    node.shutdown().await.expect("a clean shutdown");
    // Every request was recorded before its answer, and the log is on
    // disk once the node has stopped.
    let records = std::fs::read_to_string(&audit_log).unwrap();
    assert!(records.lines().count() >= 4, "{records}");
    assert!(!records.contains("first value"));
    assert!(!records.contains(root.expose_secret()));

    // Started again: sealed, and after unseal the secret is there.
    let node = start(&data).await;
    let anonymous = Client::builder(node.url()).build().unwrap();
    let status = anonymous.status().await.unwrap();
    assert!(status.initialized && status.sealed);
    assert!(!anonymous.unseal(&key).await.unwrap().sealed);
    let client = Client::builder(node.url())
        .secret_token(root)
        .build()
        .unwrap();
    let read = client.read("app/dev/API_KEY", None).await.unwrap();
    assert_eq!((read.version, text(&read.value)), (1, "first value"));
    node.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_node_initialises_itself_once_and_unseals_itself_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let dev = NodeOptions {
        dev: true,
        ..NodeOptions::default()
    };

    let node = Node::start(config(&data), dev.clone()).await.unwrap();
    let token_file = data.join(coffer_server::dev::ROOT_TOKEN_FILE);
    let root = SecretString::new(std::fs::read_to_string(&token_file).unwrap());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let client = Client::builder(node.url())
        .secret_token(root.clone())
        .build()
        .unwrap();
    client
        .write("app/dev/DB", &WireValue::Text("kept".into()), None)
        .await
        .unwrap();
    node.shutdown().await.unwrap();

    let node = Node::start(config(&data), dev).await.unwrap();
    assert!(!node.coffer().status().sealed);
    let client = Client::builder(node.url())
        .secret_token(root)
        .build()
        .unwrap();
    let read = client.read("app/dev/DB", None).await.unwrap();
    assert_eq!(text(&read.value), "kept");
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_dev_node_refuses_an_address_other_machines_reach() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.listen = "0.0.0.0:0".parse().unwrap();
    let dev = NodeOptions {
        dev: true,
        ..NodeOptions::default()
    };
    let err = Node::start(config, dev).await.err().expect("refused");
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("loopback"), "{err}");
    // Nothing was opened: no store, no lock.
    assert!(!dir.path().join(coffer_server::DB_FILE).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dropped_without_shutdown_stops_serving_and_lets_its_data_go() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let addr = node.local_addr();
    drop(node);
    // The listener stops in the background; the lock goes with it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let again = loop {
        match Node::start(config(dir.path()), NodeOptions::default()).await {
            Ok(node) => break node,
            Err(NodeError::Locked(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the data directory was not let go: {e}"),
        }
    };
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the dropped node's address still accepts connections"
    );
    again.shutdown().await.unwrap();
}
