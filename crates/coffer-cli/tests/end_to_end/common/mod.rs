//! Test harness: the real `coffer` binary as a process, real HTTP on loopback.
//!
//! A [`Server`] is started with `--listen 127.0.0.1:0` and its address is read
//! from the line it prints, so tests never race for ports. Its stdout and
//! stderr go to files in the test's directory, so tests can search them (for
//! example for a canary value that must never be logged).

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod canary;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_coffer");

/// A running coffer server process.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub dir: PathBuf,
    pub stdout_log: PathBuf,
    pub stderr_log: PathBuf,
}

/// How to start a server.
pub enum Mode<'a> {
    /// `coffer server --dev --data-dir DIR`.
    Dev,
    /// `coffer server --config FILE` with this TOML (data_dir and listen are added).
    Config(&'a str),
}

impl Server {
    /// Starts a server with its data in `dir/data`, waiting until it prints
    /// its address.
    pub fn start(dir: &Path, mode: Mode<'_>) -> Server {
        Self::try_start(dir, mode).unwrap_or_else(|e| panic!("server did not start: {e}"))
    }

    /// Like `start`, but returns the failure (exit status and stderr).
    pub fn try_start(dir: &Path, mode: Mode<'_>) -> Result<Server, String> {
        Self::try_start_wrapped(dir, mode, &[])
    }

    /// Like `try_start`, with the server started by a wrapper that execs
    /// it (`setpriv ...`, `prlimit ...`), so the child is still the server.
    pub fn try_start_wrapped(
        dir: &Path,
        mode: Mode<'_>,
        wrapper: &[&str],
    ) -> Result<Server, String> {
        let data = dir.join("data");
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let stdout_log = dir.join(format!("server-{n}.out"));
        let stderr_log = dir.join(format!("server-{n}.err"));
        let mut cmd = match wrapper.split_first() {
            None => Command::new(BIN),
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(BIN);
                cmd
            }
        };
        cmd.arg("server");
        match mode {
            Mode::Dev => {
                cmd.args(["--dev", "--listen", "127.0.0.1:0", "--data-dir"])
                    .arg(&data);
            }
            Mode::Config(extra) => {
                let file = dir.join("coffer.toml");
                std::fs::write(
                    &file,
                    format!("data_dir = {:?}\n{extra}\n", data.display().to_string()),
                )
                .unwrap();
                cmd.arg("--config").arg(&file);
                if !extra.contains("listen") {
                    cmd.args(["--listen", "127.0.0.1:0"]);
                }
            }
        }
        let child = cmd
            .env("COFFER_LOG", "info")
            .env_remove("COFFER_ADDR")
            .env_remove("COFFER_TOKEN")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_log).unwrap())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .expect("spawn coffer server");
        let mut server = Server {
            child,
            addr: String::new(),
            dir: dir.to_path_buf(),
            stdout_log,
            stderr_log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = std::fs::read_to_string(&server.stdout_log).unwrap_or_default();
            if let Some(addr) = find_addr(&out) {
                server.addr = addr;
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                return Err(format!(
                    "exited with {status}; stderr: {}",
                    std::fs::read_to_string(&server.stderr_log).unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                let _ = server.child.kill();
                return Err("no address printed within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The dev root token.
    pub fn root_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("root-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// `host:port`.
    pub fn host_port(&self) -> &str {
        self.addr
            .trim_start_matches("http://")
            .trim_start_matches("https://")
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Everything the server printed so far.
    pub fn logs(&self) -> String {
        format!(
            "{}{}",
            std::fs::read_to_string(&self.stdout_log).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
        )
    }

    /// Writes policy `name` with `hcl` (as `root`) and returns a new token
    /// that carries only that policy.
    pub fn token_with_policy(&self, root: &str, name: &str, hcl: &str) -> String {
        let file = self.dir.join(format!("{name}.hcl"));
        std::fs::write(&file, hcl).unwrap();
        self.cli()
            .token(root)
            .run(&["policy", "write", name, file.to_str().unwrap()])
            .expect(0);
        self.cli()
            .token(root)
            .run(&["token", "create", "--policy", name, "--json"])
            .expect(0)
            .json()["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A `coffer` client command against this server.
    pub fn cli(&self) -> Cli {
        Cli::new(&self.addr, &self.dir)
    }

    /// An HTTP request on loopback.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Response {
        http(self.host_port(), method, path, token, body, &[])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_addr(out: &str) -> Option<String> {
    for line in out.lines() {
        let line = line.trim();
        for marker in ["Address:", "Coffer listening on"] {
            if let Some(rest) = line.strip_prefix(marker) {
                return Some(rest.trim().to_string());
            }
        }
    }
    None
}

/// A `coffer` client invocation builder.
pub struct Cli {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl Cli {
    pub fn new(addr: &str, home: &Path) -> Cli {
        let mut cmd = Command::new(BIN);
        cmd.env("COFFER_ADDR", addr)
            .env_remove("COFFER_TOKEN")
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("HOME", home);
        Cli { cmd, stdin: None }
    }

    pub fn token(mut self, token: &str) -> Cli {
        self.cmd.env("COFFER_TOKEN", token);
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Cli {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(mut self, k: &str) -> Cli {
        self.cmd.env_remove(k);
        self
    }

    pub fn stdin(mut self, input: impl AsRef<[u8]>) -> Cli {
        self.stdin = Some(input.as_ref().to_vec());
        self
    }

    /// Runs with these arguments.
    pub fn run(mut self, args: &[&str]) -> Run {
        self.cmd.args(args);
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn coffer");
        {
            let mut stdin = child.stdin.take().unwrap();
            if let Some(input) = &self.stdin {
                stdin.write_all(input).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            out,
        }
    }
}

/// A finished client command.
pub struct Run {
    pub args: Vec<String>,
    pub out: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    /// Asserts the exit status and returns self.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "coffer {:?}: expected exit {code}, got {}\nstdout: {}\nstderr: {}",
            self.args,
            self.code(),
            self.stdout(),
            self.stderr()
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| {
            panic!(
                "coffer {:?}: stdout is not JSON ({e}): {}",
                self.args,
                self.stdout()
            )
        })
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// A minimal HTTP/1.1 client: one request per connection, raw bytes, so tests
/// can send exactly what a hostile client would.
pub fn http(
    host_port: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    extra_headers: &[(&str, &str)],
) -> Response {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in extra_headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let has_length = extra_headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    if let Some(b) = body {
        if !has_length {
            req.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str("\r\n");
    let mut stream = TcpStream::connect(host_port).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(req.as_bytes()).unwrap();
    if let Some(b) = body {
        // The server may answer (413) and close before reading it all.
        let _ = stream.write_all(b);
    }
    read_response(stream)
}

fn read_response(stream: TcpStream) -> Response {
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut body = Vec::new();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n];
            reader.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk);
            let mut crlf = String::new();
            reader.read_line(&mut crlf).unwrap();
        }
    } else {
        let _ = reader.read_to_end(&mut body);
    }
    Response {
        status,
        headers,
        body,
    }
}

/// Every file below `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Waits until `done` holds, polling every 20 ms; fails the test naming
/// `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "gave up waiting after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a file that `files_under` listed. `None` when it is gone since:
/// a server renames its temporary files (the audit head's, say) into place
/// at any moment, and the renamed file is listed under its own name. Any
/// other error fails the test.
pub fn read_listed(path: &Path) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts a 2xx answer and returns its JSON body (`null` when empty).
pub fn ok(r: &Response, what: &str) -> serde_json::Value {
    assert!(
        (200..300).contains(&r.status),
        "{what}: {} {}",
        r.status,
        r.text()
    );
    if r.body.is_empty() {
        serde_json::Value::Null
    } else {
        r.json()
    }
}

/// Runs `operator init` with one key and `operator unseal` through the CLI
/// that `cli` builds (so callers can add environment such as COFFER_CACERT).
/// Returns the unseal key and the root token.
pub fn init_and_unseal(cli: impl Fn() -> Cli) -> (String, String) {
    let init = cli()
        .run(&[
            "operator",
            "init",
            "--shares",
            "1",
            "--threshold",
            "1",
            "--json",
        ])
        .expect(0)
        .json();
    let key = init["unseal_keys"][0].as_str().unwrap().to_string();
    let root = init["root_token"].as_str().unwrap().to_string();
    cli().stdin(&key).run(&["operator", "unseal"]).expect(0);
    (key, root)
}

/// A webhook receiver that fails its first delivery and accepts the rest.
pub fn webhook_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let (port, bodies, _) = webhook_receiver_with_headers();
    (port, bodies)
}

/// What a test's helper thread collects.
pub type Shared<T> = Arc<Mutex<Vec<T>>>;

/// One POST a webhook receiver took: its headers (names lower-cased), its
/// body, and the status it was answered with.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// [`webhook_receiver`], also keeping every attempt with its headers (the
/// first, answered 500, included).
pub fn webhook_receiver_with_headers() -> (u16, Shared<String>, Shared<Delivery>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let deliveries = Arc::new(Mutex::new(Vec::new()));
    let (b, d) = (bodies.clone(), deliveries.clone());
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    let name = name.trim().to_ascii_lowercase();
                    let value = value.trim().to_string();
                    if name == "content-length" {
                        len = value.parse().unwrap();
                    }
                    headers.push((name, value));
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            let status = if n == 0 { 500 } else { 200 };
            if n > 0 {
                b.lock().unwrap().push(body.clone());
            }
            d.lock().unwrap().push(Delivery {
                headers,
                body,
                status,
            });
            let reason = if status == 200 {
                "OK"
            } else {
                "Internal Server Error"
            };
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
        }
    });
    (port, bodies, deliveries)
}
