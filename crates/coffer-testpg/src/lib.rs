//! A private PostgreSQL server for coffer's tests.
//!
//! The first call in a test process starts a server of its own: `initdb`
//! into a temporary directory and `postgres` on a free loopback port, with
//! password authentication, as the `postgres` user when the tests run as
//! root (PostgreSQL refuses to run as root). Each call then creates a fresh,
//! empty database and returns its URL, so tests never see each other's data.
//!
//! The server dies with the test process: it is started under a small shell
//! guardian that reads the test process's end of a pipe and stops the server
//! and removes its directory when that pipe closes, however the test process
//! ends (including `kill -9`).
//!
//! With `COFFER_TEST_POSTGRES` set to an administrator URL
//! (`postgres://USER:PASSWORD@HOST:PORT/DB`), that server is used instead.
//!
//! There is no skipping: when no server can be had, the calling test fails
//! and says why.

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The password of the test superuser. Test-only, and on loopback.
pub const SUPERUSER_PASSWORD: &str = "coffer-test-superuser";

struct Server {
    /// `postgres://USER:PASSWORD@127.0.0.1:PORT`, without a database.
    base: String,
    /// The administrator database to create databases from.
    admin_db: String,
    port: u16,
    /// The CA that signed the server's TLS certificate (private servers only).
    ca: Option<PathBuf>,
    /// Held so the guardian's stdin stays open for the life of the process.
    _guardian: Option<Child>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn server() -> &'static Server {
    match SERVER.get_or_init(|| match std::env::var("COFFER_TEST_POSTGRES") {
        Ok(url) => external(&url),
        Err(_) => start_private(),
    }) {
        Ok(s) => s,
        Err(e) => panic!(
            "these tests need PostgreSQL and cannot get one: {e}\n\
             Install Debian's `postgresql` package (its initdb and postgres are found \
             under /usr/lib/postgresql/*/bin), or set COFFER_TEST_POSTGRES to an \
             administrator URL."
        ),
    }
}

fn external(url: &str) -> Result<Server, String> {
    let (base, db) = url
        .rsplit_once('/')
        .filter(|(b, _)| b.contains("://"))
        .ok_or_else(|| "COFFER_TEST_POSTGRES must end in /DATABASE".to_string())?;
    let port = base
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(5432);
    Ok(Server {
        base: base.to_string(),
        admin_db: db.to_string(),
        port,
        ca: None,
        _guardian: None,
    })
}

/// The directory holding `initdb` and `postgres`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
                return Ok(dir);
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "no PostgreSQL server binaries (initdb, postgres) were found".to_string())?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        .collect();
    // Newest major version last.
    found.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found
        .pop()
        .ok_or_else(|| "no PostgreSQL server binaries (initdb, postgres) were found".to_string())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as the `postgres` user when we are root.
fn as_server_user(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn start_private() -> Result<Server, String> {
    let bin = bin_dir()?;
    let root = is_root();
    let dir = std::env::temp_dir().join(format!(
        "coffer-testpg-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if root {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&dir)
            .status()
            .map_err(|e| format!("cannot run chown: {e}"))?;
        if !status.success() {
            return Err(
                "cannot hand the data directory to the postgres user (is there one?)".into(),
            );
        }
    }
    let pwfile = dir.join("pw");
    std::fs::write(&pwfile, SUPERUSER_PASSWORD)
        .map_err(|e| format!("cannot write {}: {e}", pwfile.display()))?;
    if root {
        let _ = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&pwfile)
            .status();
    }
    let data = dir.join("data");
    let out = as_server_user(root, &bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "coffer",
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let _ = std::fs::remove_file(&pwfile);
    let tls = make_certs(&dir, root)?;

    let mut last_error = String::new();
    for _ in 0..3 {
        let port = free_port()?;
        // The guardian runs postgres and a watcher of its stdin (our pipe).
        // When the pipe closes (this process ended, however), the watcher
        // signals the guardian, which stops postgres and removes the
        // directory. When postgres exits by itself (it could not bind the
        // port, which another process may have taken since `free_port`),
        // the guardian exits too, leaving the directory for the next try,
        // so that the loop below sees it at once instead of at its deadline.
        let script = r#"
            exec 3<&0 </dev/null
            "$0" "$@" 3<&- &
            pid=$!
            trap 'kill -INT "$pid" 2>/dev/null; wait "$pid"; rm -rf "$COFFER_TESTPG_DIR"; exit 0' TERM
            { cat <&3 >/dev/null 2>&1; kill -TERM $$; } 2>/dev/null &
            watcher=$!
            exec 3<&-
            wait "$pid"
            status=$?
            kill "$watcher" 2>/dev/null
            exit "$status"
        "#;
        let mut cmd = as_server_user(root, Path::new("/bin/sh"));
        cmd.arg("-c")
            .arg(script)
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .args(["-c", "max_connections=400"])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "shared_buffers=64MB"])
            .args(["-c", "ssl=on"])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", tls.join("cert.pem").display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", tls.join("key.pem").display()))
            .env("COFFER_TESTPG_DIR", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if root {
            // runuser resets the environment only with -l; pass it anyway.
            cmd.env("COFFER_TESTPG_DIR", &dir);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        // Our postgres's own socket in our private directory: it is made
        // after the TCP one, so it proves that this server, not whoever
        // might have taken the port, is the one listening there.
        let own_socket = dir.join(format!(".s.PGSQL.{port}"));
        loop {
            if own_socket.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Leak the stdin handle's owner (the child) into the static.
                if let Some(stdin) = child.stdin.as_mut() {
                    let _ = stdin.flush();
                }
                return Ok(Server {
                    base: format!("postgres://coffer:{SUPERUSER_PASSWORD}@127.0.0.1:{port}"),
                    admin_db: "postgres".into(),
                    port,
                    ca: Some(tls.join("ca.pem")),
                    _guardian: Some(child),
                });
            }
            if let Ok(Some(_)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                last_error = format!("postgres exited: {}", err.trim());
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                last_error = "postgres did not start listening within 30 s".into();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Err(last_error)
}

fn openssl(args: &[&str], dir: &Path) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| {
            format!("cannot run openssl (needed for the server's TLS certificate): {e}")
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A CA and a certificate for localhost and 127.0.0.1 signed by it, so the
/// tests can check that coffer verifies PostgreSQL's certificate.
fn make_certs(dir: &Path, root: bool) -> Result<PathBuf, String> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).map_err(|e| format!("cannot create {}: {e}", tls.display()))?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=coffer-test-pg-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ];
    ca.extend(ec);
    openssl(&ca, &tls)?;
    let mut csr = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ];
    csr.extend(ec);
    openssl(&csr, &tls)?;
    std::fs::write(
        tls.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .map_err(|e| e.to_string())?;
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ],
        &tls,
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tls.join("key.pem"), std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    if root {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&tls)
            .status()
            .map_err(|e| format!("cannot run chown: {e}"))?;
        if !status.success() {
            return Err("cannot hand the TLS files to the postgres user".into());
        }
    }
    Ok(tls)
}

/// The CA file that verifies the private test server's certificate (which
/// names `localhost` and `127.0.0.1`); `None` for an external server.
pub fn ca_file() -> Option<PathBuf> {
    server().ca.clone()
}

/// The port of the test server.
pub fn port() -> u16 {
    server().port
}

/// An administrator URL of the test server (for tests that manage roles).
pub fn admin_url() -> String {
    let s = server();
    format!("{}/{}", s.base, s.admin_db)
}

/// Creates a fresh, empty database and returns its URL (with the test
/// superuser's password in it, and `?sslmode=disable`).
pub async fn database() -> String {
    let s = server();
    let name = format!(
        "coffer_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let admin = format!("{}/{}", s.base, s.admin_db);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
                // Plain TCP on loopback; the TLS tests ask for TLS themselves.
                return format!("{}/{name}?sslmode=disable", s.base);
            }
            // The server may still be starting up.
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot connect to the test PostgreSQL server: {e}"),
        }
    }
}

/// [`database`] for tests that are not async.
pub fn database_blocking() -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(database())
}

/// Runs SQL as the test superuser on the administrator database.
pub async fn admin_sql(sql: &str) -> Result<(), String> {
    let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    client.batch_execute(sql).await.map_err(|e| e.to_string())
}
