//! `coffer import` and `coffer export` end to end, against the real server:
//! import plans (created, updated, unchanged, differs, skipped), all or
//! nothing on refusal, conflict and bad input; every export format read
//! back by the tools that consume it (python-dotenv, PyYAML, `sh` with
//! `eval`, the GitHub `$GITHUB_ENV` block syntax, Docker secret files);
//! `coffer example` (names only, with a list-only token) and `coffer check`
//! (every problem at once, never a value).

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::canary::Canary;
use common::{Mode, Server, ok};

fn put(server: &Server, token: &str, path: &str, value: serde_json::Value) {
    let body = serde_json::json!({ "value": value }).to_string();
    let r = server.http(
        "PUT",
        &format!("/api/v1/secrets/{path}"),
        Some(token),
        Some(body.as_bytes()),
    );
    ok(&r, "write");
}

fn get(server: &Server, token: &str, path: &str) -> Option<serde_json::Value> {
    let r = server.http("GET", &format!("/api/v1/secrets/{path}"), Some(token), None);
    (r.status == 200).then(|| r.json())
}

fn version(server: &Server, token: &str, path: &str) -> u64 {
    let r = server.http(
        "GET",
        &format!("/api/v1/metadata/{path}"),
        Some(token),
        None,
    );
    if r.status == 404 {
        return 0;
    }
    ok(&r, "metadata")["current_version"].as_u64().unwrap()
}

fn audit_records(server: &Server, op: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(server.data_dir().join("audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["op"] == op)
        .collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Runs python3 with `script` and the arguments; its stdout as JSON.
fn python(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed (are python-dotenv and PyYAML installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn import_reports_names_and_writes_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut canary = Canary::new("import");
    put(&server, &root, "app/dev/EXISTING", "same".into());
    put(&server, &root, "app/dev/CHANGED", "old".into());
    put(&server, &root, "app/dev/GONE", "was here".into());
    ok(
        &server.http("DELETE", "/api/v1/secrets/app/dev/GONE", Some(&root), None),
        "delete",
    );
    let file = dir.path().join("app.env");
    std::fs::write(
        &file,
        format!(
            "EXISTING=same\nCHANGED=new-value\nexport NEW_ONE=\"multi\\nline ${{EXISTING}} ${{HOME}}\"\nGONE=back\nEMPTY=\nREF=coffer://app/dev/EXISTING\nBARE\nCANARY='{}'\n",
            canary.value
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let import = |extra: &[&str]| {
        let mut args = vec!["import", f, "--path", "app/dev"];
        args.extend_from_slice(extra);
        server.cli().token(&root).run(&args)
    };
    let before = [
        version(&server, &root, "app/dev/CHANGED"),
        version(&server, &root, "app/dev/GONE"),
    ];

    // A stored value that differs refuses the whole import.
    let run = import(&[]);
    assert_eq!(run.code(), 8, "{}", run.stderr());
    assert!(
        run.stdout().contains("differs   CHANGED"),
        "{}",
        run.stdout()
    );
    assert!(run.stderr().contains("--overwrite"), "{}", run.stderr());
    canary.search_run("import without --overwrite", &run);
    // A dry run says what would happen.
    let run = import(&["--overwrite", "--dry-run"]).expect(0);
    let expected_plan = "created   NEW_ONE\n\
                         created   CANARY\n\
                         updated   CHANGED\n\
                         updated   GONE\n\
                         unchanged EXISTING\n";
    for line in expected_plan.lines() {
        assert!(run.stdout().contains(line), "{line}: {}", run.stdout());
    }
    for skipped in [
        "EMPTY (empty",
        "REF (a coffer:// reference",
        "BARE (no value",
    ] {
        assert!(
            run.stdout().contains(&format!("skipped   {skipped}")),
            "{}",
            run.stdout()
        );
    }
    assert!(run.stdout().starts_with("dry run: nothing written"));
    assert!(
        run.stdout()
            .contains("2 created, 2 updated, 1 unchanged, 3 skipped")
    );
    canary.search_run("dry run", &run);
    assert_eq!(
        before,
        [
            version(&server, &root, "app/dev/CHANGED"),
            version(&server, &root, "app/dev/GONE"),
        ]
    );
    assert!(get(&server, &root, "app/dev/NEW_ONE").is_none());

    // The import itself, in one request.
    let run = import(&["--overwrite", "--json"]).expect(0);
    let report = run.json();
    assert_eq!(report["created"], serde_json::json!(["NEW_ONE", "CANARY"]));
    assert_eq!(report["updated"], serde_json::json!(["CHANGED", "GONE"]));
    assert_eq!(report["unchanged"], serde_json::json!(["EXISTING"]));
    assert_eq!(report["skipped"].as_array().unwrap().len(), 3);
    assert_eq!(report["written"], true);
    canary.search_run("import", &run);
    let value = |p: &str| get(&server, &root, p).unwrap()["value"].clone();
    // ${HOME} is not the importing user's: only the file's own entries expand.
    assert_eq!(value("app/dev/NEW_ONE"), "multi\nline same ");
    assert_eq!(value("app/dev/CHANGED"), "new-value");
    assert_eq!(value("app/dev/GONE"), "back");
    assert_eq!(value("app/dev/CANARY"), canary.value.as_str());
    assert!(get(&server, &root, "app/dev/EMPTY").is_none());
    let records = audit_records(&server, "secret.import");
    assert_eq!(records.len(), 1, "one audit record for the import");
    let mut written: Vec<String> = records[0]["writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| format!("{}@{}", w["path"].as_str().unwrap(), w["version"]))
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "app/dev/CANARY@1",
            "app/dev/CHANGED@2",
            "app/dev/GONE@2",
            "app/dev/NEW_ONE@1"
        ]
    );
    // The audit query finds an import by any path it wrote.
    let q = server
        .cli()
        .token(&root)
        .run(&["audit", "query", "--path", "app/dev/GONE", "--json"])
        .expect(0);
    assert!(q.stdout().contains("secret.import"), "{}", q.stdout());

    // Again: nothing to do.
    let run = import(&[]).expect(0);
    assert!(
        run.stdout().contains("5 unchanged, 3 skipped"),
        "{}",
        run.stdout()
    );

    // JSON files: strings and objects of string fields.
    let json_file = dir.path().join("more.json");
    std::fs::write(
        &json_file,
        r#"{"DB": {"user": "app", "password": "pw"}, "TOKEN_URL": "https://x"}"#,
    )
    .unwrap();
    server
        .cli()
        .token(&root)
        .run(&["import", json_file.to_str().unwrap(), "--path", "app/json"])
        .expect(0);
    assert_eq!(
        value("app/json/DB"),
        serde_json::json!({"user": "app", "password": "pw"})
    );
    // From stdin.
    server
        .cli()
        .token(&root)
        .stdin("FROM_STDIN=yes\n")
        .run(&["import", "-", "--path", "app/stdin"])
        .expect(0);
    assert_eq!(value("app/stdin/FROM_STDIN"), "yes");

    // Bad input changes nothing, and says where.
    let bad = dir.path().join("bad.env");
    std::fs::write(&bad, "GOOD=1\nthis is not a statement\nALSO=2\n").unwrap();
    let run =
        server
            .cli()
            .token(&root)
            .run(&["import", bad.to_str().unwrap(), "--path", "app/bad"]);
    assert_eq!(run.code(), 7, "{}", run.stderr());
    assert!(run.stderr().contains("line(s) 2"), "{}", run.stderr());
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, r#"{"OK": "x", "N": 5, "L": ["secret-ish"]}"#).unwrap();
    let run =
        server
            .cli()
            .token(&root)
            .run(&["import", bad_json.to_str().unwrap(), "--path", "app/bad"]);
    assert_eq!(run.code(), 7, "{}", run.stderr());
    assert!(run.stderr().contains(r#""L", "N""#), "{}", run.stderr());
    assert!(!run.stderr().contains("secret-ish"));
    for names in [r#""..": "y""#, r#""sub/NAME": "y""#] {
        std::fs::write(&bad_json, format!(r#"{{"OK": "x", {names}}}"#)).unwrap();
        server
            .cli()
            .token(&root)
            .run(&["import", bad_json.to_str().unwrap(), "--path", "app/bad"])
            .expect(7);
    }
    assert!(get(&server, &root, "app/bad/GOOD").is_none());
    assert!(get(&server, &root, "app/bad/OK").is_none());

    // A refusal on one write writes none: this token may create A* only.
    let policy = serde_json::json!({
        "policy": "path \"app/part/*\" { capabilities = [\"read\", \"list\"] }\npath \"app/part/A*\" { capabilities = [\"create\", \"update\", \"read\", \"list\"] }\n"
    })
    .to_string();
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/part",
            Some(&root),
            Some(policy.as_bytes()),
        ),
        "policy",
    );
    let r = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(&root),
        Some(br#"{"policies":["part"],"display_name":"part"}"#),
    );
    let part = ok(&r, "token")["token"].as_str().unwrap().to_string();
    let mixed = dir.path().join("mixed.env");
    std::fs::write(&mixed, "A1=one\nB1=two\nA2=three\n").unwrap();
    let run =
        server
            .cli()
            .token(&part)
            .run(&["import", mixed.to_str().unwrap(), "--path", "app/part"]);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(run.stderr().contains("app/part/B1"), "{}", run.stderr());
    assert!(get(&server, &root, "app/part/A1").is_none());
    let denied = audit_records(&server, "secret.import");
    let last = denied.last().unwrap();
    assert_eq!(last["outcome"], "denied");
    assert!(
        last.get("writes").is_none(),
        "a refused import wrote nothing"
    );

    // A check-and-set that fails writes none (the API, as a racing import
    // would see it).
    let body = serde_json::json!({ "secrets": [
        { "path": "app/race/NEW", "value": "n", "cas": 0 },
        { "path": "app/dev/CHANGED", "value": "late", "cas": 1 },
    ]})
    .to_string();
    let r = server.http("POST", "/api/v1/import", Some(&root), Some(body.as_bytes()));
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("app/dev/CHANGED"), "{}", r.text());
    assert!(get(&server, &root, "app/race/NEW").is_none());
    assert_eq!(value("app/dev/CHANGED"), "new-value");
    // Duplicates, unknown fields and empty requests are refused.
    for body in [
        r#"{"secrets":[{"path":"a/X","value":"1"},{"path":"a/X/","value":"2"}]}"#,
        r#"{"secrets":[{"path":"a/X","value":"1","extra":true}]}"#,
        r#"{"secrets":[]}"#,
    ] {
        let r = server.http("POST", "/api/v1/import", Some(&root), Some(body.as_bytes()));
        assert!(
            r.status == 400 || r.status == 422,
            "{body}: {} {}",
            r.status,
            r.text()
        );
    }
    assert!(get(&server, &root, "a/X").is_none());

    canary.search("server logs", server.logs());
    canary.search(
        "audit log",
        std::fs::read(server.data_dir().join("audit.log")).unwrap(),
    );
    canary.search_dir(&server.data_dir());
    canary.assert_nowhere_else();
}

/// Values that stress every quoting rule.
fn tricky() -> Vec<(&'static str, String)> {
    vec![
        ("DB_URL", "postgres://u:p@db/app?x=1&y=2".into()),
        (
            "QUOTES",
            // (A `${` needs double quotes in a .env file, where dotenvx
            // expands: dotenv_export_value_injection_into_dotenvx.)
            "it's \"double\" and 'single' and `back` $HOME $(id) \\ \\n".into(),
        ),
        (
            "PEM",
            "-----BEGIN KEY-----\nMIIB line\n\n  indented\n-----END KEY-----\n".into(),
        ),
        (
            "UNICODE",
            "caf\u{e9} \u{2028} \u{85} \u{1F511} tab\tend".into(),
        ),
        ("SPACES", "  leading and trailing  ".into()),
        ("HASH", "value # not a comment".into()),
    ]
}

#[test]
fn exports_read_back_by_the_tools_that_consume_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut canary = Canary::new("export");
    let mut values = tricky();
    values.push(("CANARY", canary.value.clone()));
    for (name, v) in &values {
        put(
            &server,
            &root,
            &format!("app/prod/{name}"),
            v.clone().into(),
        );
    }
    put(
        &server,
        &root,
        "app/prod/FIELDS",
        serde_json::json!({"user": "app", "password": "p'w\"d"}),
    );
    put(&server, &root, "app/prod/bad-name", "x".into());
    put(&server, &root, "app/prod/deeper/NOT_DIRECT", "x".into());
    let only = "DB_URL,QUOTES,PEM,UNICODE,SPACES,HASH,CANARY,FIELDS";
    let fields_json = r#"{"password":"p'w\"d","user":"app"}"#;
    let mut expected: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(n, v)| (n.to_string(), serde_json::Value::from(v.as_str())))
        .collect();
    expected.insert("FIELDS".into(), fields_json.into());
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "--path", "app/prod"];
        args.extend_from_slice(extra);
        server.cli().token(&root).run(&args)
    };

    // Names that cannot be variables stop an env-style export, naming them.
    let run = export(&["--format", "dotenv"]);
    assert_eq!(run.code(), 7, "{}", run.stderr());
    assert!(run.stderr().contains("bad-name"), "{}", run.stderr());
    assert!(run.stdout().is_empty());

    // dotenv: python-dotenv reads every value back.
    let env_file = dir.path().join("out.env");
    let run = export(&[
        "--format",
        "dotenv",
        "--only",
        only,
        "--out",
        env_file.to_str().unwrap(),
    ])
    .expect(0);
    canary.search_run("dotenv export", &run);
    assert_eq!(mode(&env_file), 0o600);
    let read = python(
        "import sys, json, dotenv; print(json.dumps(dotenv.dotenv_values(sys.argv[1])))",
        &[env_file.to_str().unwrap()],
    );
    assert_eq!(read, serde_json::Value::Object(expected.clone()));

    // shell: eval in sh gives every value back.
    let run = export(&["--format", "shell", "--only", only]).expect(0);
    let script = dir.path().join("vars.sh");
    std::fs::write(&script, run.stdout()).unwrap();
    for (name, v) in expected.iter() {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("eval \"$(cat \"$1\")\"; printf '%s' \"${name}\""))
            .arg("sh")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            v.as_str().unwrap(),
            "{name}"
        );
    }

    // json: fields values stay objects.
    let run = export(&["--format", "json"]).expect(0);
    let json = run.json();
    assert_eq!(json["QUOTES"], expected["QUOTES"]);
    assert_eq!(json["FIELDS"]["password"], "p'w\"d");
    assert_eq!(json["bad-name"], "x");
    assert!(json.get("NOT_DIRECT").is_none(), "only direct children");

    // yaml: PyYAML reads the same document as the json export.
    let yaml_file = dir.path().join("out.yaml");
    export(&["--format", "yaml", "--out", yaml_file.to_str().unwrap()]).expect(0);
    let read = python(
        "import sys, json, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8'))))",
        &[yaml_file.to_str().unwrap()],
    );
    assert_eq!(read, json);

    // k8s: a Secret manifest whose data decodes back to the values.
    let run = export(&["--format", "k8s", "--namespace", "shop"]).expect(0);
    let manifest = dir.path().join("secret.yaml");
    std::fs::write(&manifest, run.stdout()).unwrap();
    let doc = python(
        "import sys, json, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        &[manifest.to_str().unwrap()],
    );
    assert_eq!(doc["apiVersion"], "v1");
    assert_eq!(doc["kind"], "Secret");
    assert_eq!(doc["type"], "Opaque");
    assert_eq!(doc["metadata"]["name"], "app-prod");
    assert_eq!(doc["metadata"]["namespace"], "shop");
    use base64::Engine;
    let decode = |v: &serde_json::Value| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    for (name, v) in expected.iter() {
        assert_eq!(decode(&doc["data"][name]), v.as_str().unwrap(), "{name}");
    }
    assert_eq!(decode(&doc["data"]["bad-name"]), "x");
    export(&["--format", "k8s", "--name", "Not_A_Name"]).expect(7);
    export(&["--format", "k8s", "--namespace", "a.b"]).expect(7);

    // docker: one file per secret, owner-read-only, in an owner-only directory.
    let secrets_dir = dir.path().join("docker-secrets");
    export(&["--format", "docker", "--out", secrets_dir.to_str().unwrap()]).expect(0);
    assert_eq!(mode(&secrets_dir), 0o700);
    for (name, v) in expected.iter() {
        let f = secrets_dir.join(name);
        assert_eq!(mode(&f), 0o400, "{name}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), v.as_str().unwrap());
    }
    // Again, over the read-only files.
    export(&["--format", "docker", "--out", secrets_dir.to_str().unwrap()]).expect(0);
    export(&["--format", "docker"]).expect(2);

    // github: masks on stdout (every line of every value), NAME<<DELIM
    // blocks in $GITHUB_ENV.
    let github_env = dir.path().join("github_env");
    std::fs::write(&github_env, "EARLIER=kept\n").unwrap();
    let run = server
        .cli()
        .token(&root)
        .env("GITHUB_ENV", github_env.to_str().unwrap())
        .run(&[
            "export", "--path", "app/prod", "--only", only, "--format", "github",
        ])
        .expect(0);
    for line in expected
        .values()
        .map(|v| v.as_str().unwrap())
        .chain(["app", "p'w\"d"])
        .flat_map(|v| v.split('\n'))
        .filter(|l| !l.trim().is_empty())
    {
        let masked = line.replace('%', "%25").replace('\r', "%0D");
        assert!(
            run.stdout().contains(&format!("::add-mask::{masked}\n")),
            "{line:?} masked"
        );
    }
    let text = std::fs::read_to_string(&github_env).unwrap();
    let mut parsed = serde_json::Map::new();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("EARLIER=kept"));
    while let Some(head) = lines.next() {
        let (name, delimiter) = head.split_once("<<").expect("a NAME<<DELIMITER block");
        let mut value = Vec::new();
        for l in lines.by_ref() {
            if l == delimiter {
                break;
            }
            value.push(l);
        }
        parsed.insert(name.to_string(), value.join("\n").into());
    }
    assert_eq!(parsed, expected);
    server
        .cli()
        .token(&root)
        .run(&[
            "export", "--path", "app/prod", "--only", only, "--format", "github",
        ])
        .expect(2);

    // Every export was one audited bundle request listing what it read.
    let records = audit_records(&server, "secret.bundle");
    assert!(records.iter().all(|r| r["outcome"] != "error"));
    assert!(
        records
            .iter()
            .any(|r| r["reads"].as_array().is_some_and(|a| a.len() == 9))
    );
    canary.search("server logs", server.logs());
    canary.search(
        "audit log",
        std::fs::read(server.data_dir().join("audit.log")).unwrap(),
    );
    canary.search_dir(&server.data_dir());
    canary.assert_nowhere_else();
}

#[test]
fn example_lists_names_only_and_check_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut canary = Canary::new("check");
    let template = dir.path().join(".env.example");
    std::fs::write(
        &template,
        "# Shared by the team.\n\n# The database.\nDATABASE_URL=postgres://localhost/app\n# Signs sessions.\n# Rotate yearly.\nSESSION_SECRET=\nAPI_KEY=\nPORT=8080\nMISSING_ONE=\n",
    )
    .unwrap();
    let t = template.to_str().unwrap();
    put(
        &server,
        &root,
        "app/prod/DATABASE_URL",
        "postgres://localhost/app".into(),
    );
    put(
        &server,
        &root,
        "app/prod/SESSION_SECRET",
        canary.value.clone().into(),
    );
    put(&server, &root, "app/prod/API_KEY", "ChangeMe".into());
    put(&server, &root, "app/prod/PORT", "".into());
    put(&server, &root, "app/prod/EXTRA", "extra-value".into());
    put(&server, &root, "app/prod/not-a-var", "x".into());

    // Every problem at once, by name, never a value; exit 7.
    let run = server
        .cli()
        .token(&root)
        .run(&["check", "--path", "app/prod", "--template", t]);
    assert_eq!(run.code(), 7, "{}", run.stderr());
    let out = run.stdout();
    for line in [
        "placeholder DATABASE_URL (still the template's example value)",
        "weak        API_KEY (a well-known placeholder or default",
        "empty       PORT (set to the empty string)",
        "missing     MISSING_ONE (not set)",
        "4 problem(s) among 5 names",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(out.contains("not in"), "{out}");
    assert!(out.contains("EXTRA"), "{out}");
    assert!(
        !out.contains("SESSION_SECRET"),
        "a good value is no problem: {out}"
    );
    for value in ["ChangeMe", "extra-value", "postgres://localhost/app"] {
        assert!(
            !out.contains(value) && !run.stderr().contains(value),
            "{value}"
        );
    }
    canary.search_run("check", &run);
    let json = server
        .cli()
        .token(&root)
        .run(&["check", "--path", "app/prod", "--template", t, "--json"])
        .json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["problems"].as_array().unwrap().len(), 4);
    assert_eq!(json["problems"][0]["name"], "DATABASE_URL");
    assert_eq!(json["problems"][0]["problem"], "placeholder");

    // Fixed: exit 0.
    put(
        &server,
        &root,
        "app/prod/DATABASE_URL",
        "postgres://db.internal/app".into(),
    );
    // A short typed key is easy to guess: reported as weak.
    put(&server, &root, "app/prod/API_KEY", "k-8Qz1vX".into());
    put(&server, &root, "app/prod/PORT", "9000".into());
    put(&server, &root, "app/prod/MISSING_ONE", "here".into());
    let run = server
        .cli()
        .token(&root)
        .run(&["check", "--path", "app/prod", "--template", t]);
    assert_eq!(run.code(), 7, "{}", run.stdout());
    assert!(
        run.stdout().contains("weak        API_KEY (easy to guess"),
        "{}",
        run.stdout()
    );
    assert!(!run.stdout().contains("k-8Qz1vX"), "{}", run.stdout());
    put(
        &server,
        &root,
        "app/prod/API_KEY",
        "k-8Qz1vX3mT7wR2pL9yN4bV6".into(),
    );
    let run = server
        .cli()
        .token(&root)
        .run(&["check", "--path", "app/prod", "--template", t])
        .expect(0);
    assert!(run.stdout().contains("ok: all 5 names"), "{}", run.stdout());
    // --env checks what a process would see, without the server.
    let run = server
        .cli()
        .env("DATABASE_URL", "postgres://db/app")
        .env("SESSION_SECRET", &canary.value)
        .env("API_KEY", "password")
        .env("PORT", "8080")
        .run(&["check", "--env", "--template", t]);
    assert_eq!(run.code(), 7, "{}", run.stdout());
    assert!(
        run.stdout().contains("weak        API_KEY"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().contains("placeholder PORT"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout().contains("missing     MISSING_ONE"),
        "{}",
        run.stdout()
    );
    canary.search_run("check --env", &run);
    // Through coffer run: the check sees what the command sees.
    let run = server.cli().token(&root).run(&[
        "run",
        "--path",
        "app/prod",
        "--only",
        "DATABASE_URL,SESSION_SECRET,API_KEY,PORT,MISSING_ONE",
        "--",
        env!("CARGO_BIN_EXE_coffer"),
        "check",
        "--env",
        "--template",
        t,
    ]);
    assert_eq!(run.code(), 0, "{} {}", run.stdout(), run.stderr());
    server
        .cli()
        .token(&root)
        .run(&["check", "--path", "app/prod", "--template", "no-such-file"])
        .expect(3);
    server.cli().run(&["check", "--template", t]).expect(2);

    // example needs only list, reads no value, and keeps descriptions.
    let policy = serde_json::json!({
        "policy": "path \"app/prod/*\" { capabilities = [\"list\"] }\n"
    })
    .to_string();
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/lister",
            Some(&root),
            Some(policy.as_bytes()),
        ),
        "policy",
    );
    let r = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(&root),
        Some(br#"{"policies":["lister"],"display_name":"lister"}"#),
    );
    let lister = ok(&r, "token")["token"].as_str().unwrap().to_string();
    std::fs::write(
        &template,
        "# The database.\nDATABASE_URL=postgres://localhost/app\n# Signs sessions.\n# Rotate yearly.\nSESSION_SECRET=\nGONE_NOW=\n",
    )
    .unwrap();
    let reads_before =
        audit_records(&server, "secret.read").len() + audit_records(&server, "secret.bundle").len();
    let run = server
        .cli()
        .token(&lister)
        .run(&["example", "--path", "app/prod", "--template", t])
        .expect(0);
    let out = run.stdout();
    assert!(
        out.contains("\n# The database.\nDATABASE_URL=postgres://localhost/app\n"),
        "{out}"
    );
    assert!(
        out.contains("\n# Signs sessions.\n# Rotate yearly.\nSESSION_SECRET=\n"),
        "{out}"
    );
    for name in ["API_KEY=\n", "EXTRA=\n", "MISSING_ONE=\n", "PORT=\n"] {
        assert!(out.contains(&format!("\n{name}")), "{name}: {out}");
    }
    assert!(
        !out.contains("not-a-var") && !out.contains("GONE_NOW"),
        "{out}"
    );
    assert!(run.stderr().contains("not-a-var"), "{}", run.stderr());
    assert!(run.stderr().contains("GONE_NOW"), "{}", run.stderr());
    assert_eq!(
        reads_before,
        audit_records(&server, "secret.read").len() + audit_records(&server, "secret.bundle").len(),
        "example reads no value"
    );
    canary.search_run("example", &run);
    // What example writes, check reads.
    let generated = dir.path().join("generated.env.example");
    server
        .cli()
        .token(&lister)
        .run(&[
            "example",
            "--path",
            "app/prod",
            "--out",
            generated.to_str().unwrap(),
        ])
        .expect(0);
    server
        .cli()
        .token(&root)
        .run(&[
            "check",
            "--path",
            "app/prod",
            "--template",
            generated.to_str().unwrap(),
        ])
        .expect(0);

    canary.search("server logs", server.logs());
    canary.search(
        "audit log",
        std::fs::read(server.data_dir().join("audit.log")).unwrap(),
    );
    canary.search_dir(&server.data_dir());
    canary.assert_nowhere_else();
}

#[test]
fn export_applies_refused_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "ci/deploy/BASH_ENV", "./evil.sh".into());
    put(&server, &root, "ci/deploy/PYTHONPATH", "./evil".into());
    put(
        &server,
        &root,
        "ci/deploy/DEPLOY_KEY",
        "deploy-key-value".into(),
    );
    let github_env = dir.path().join("github_env");
    std::fs::write(&github_env, "EARLIER=kept\n").unwrap();
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "--path", "ci/deploy"];
        args.extend_from_slice(extra);
        server
            .cli()
            .token(&root)
            .env("GITHUB_ENV", github_env.to_str().unwrap())
            .run(&args)
    };
    for format in ["github", "dotenv", "shell", "k8s"] {
        let run = export(&["--format", format]);
        assert_eq!(run.code(), 7, "{format}: {}", run.stderr());
        for name in ["BASH_ENV", "PYTHONPATH", "--allow-env"] {
            assert!(
                run.stderr().contains(name),
                "{format} {name}: {}",
                run.stderr()
            );
        }
        assert!(!run.stdout().contains("deploy-key-value"), "{format}");
        assert_eq!(
            std::fs::read_to_string(&github_env).unwrap(),
            "EARLIER=kept\n"
        );
    }
    // json and yaml are not environments; --only and --allow-env pick.
    export(&["--format", "json"]).expect(0);
    export(&["--format", "github", "--only", "DEPLOY_KEY"]).expect(0);
    export(&["--format", "github", "--allow-env", "BASH_ENV"]).expect(7);
    export(&[
        "--format",
        "github",
        "--allow-env",
        "BASH_ENV",
        "--allow-env",
        "PYTHONPATH",
    ])
    .expect(0);
    assert!(
        std::fs::read_to_string(&github_env)
            .unwrap()
            .contains("BASH_ENV<<")
    );
}

#[test]
fn github_export_out_does_not_follow_symlinks() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(
        &server,
        &root,
        "ci/deploy/DEPLOY_KEY",
        "deploy-key-value".into(),
    );
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "victim's own\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.path().join("github_env");
    symlink(&victim, &link).unwrap();
    let run = server.cli().token(&root).run(&[
        "export",
        "--path",
        "ci/deploy",
        "--format",
        "github",
        "--out",
        link.to_str().unwrap(),
    ]);
    assert_ne!(run.code(), 0, "{}", run.stderr());
    assert!(run.stderr().contains("symbolic link"), "{}", run.stderr());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim's own\n");
    // A dangling link is not created through either.
    let dangling = dir.path().join("dangling");
    symlink(dir.path().join("created-through-link"), &dangling).unwrap();
    server
        .cli()
        .token(&root)
        .run(&[
            "export",
            "--path",
            "ci/deploy",
            "--format",
            "github",
            "--out",
            dangling.to_str().unwrap(),
        ])
        .expect(1);
    assert!(!dir.path().join("created-through-link").exists());

    // docker: a link in the directory named after a secret is replaced,
    // never written through or chmod-ed through.
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    symlink(&victim, secrets.join("DEPLOY_KEY")).unwrap();
    server
        .cli()
        .token(&root)
        .run(&[
            "export",
            "--path",
            "ci/deploy",
            "--format",
            "docker",
            "--out",
            secrets.to_str().unwrap(),
        ])
        .expect(0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim's own\n");
    assert_eq!(mode(&victim), 0o644);
    let written = secrets.join("DEPLOY_KEY");
    assert!(
        std::fs::symlink_metadata(&written)
            .unwrap()
            .file_type()
            .is_file()
    );
    assert_eq!(mode(&written), 0o400);
    // dotenv --out: the link is replaced by the file.
    let out = dir.path().join("out.env");
    symlink(&victim, &out).unwrap();
    server
        .cli()
        .token(&root)
        .run(&[
            "export",
            "--path",
            "ci/deploy",
            "--format",
            "dotenv",
            "--out",
            out.to_str().unwrap(),
        ])
        .expect(0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim's own\n");
    assert!(
        std::fs::symlink_metadata(&out)
            .unwrap()
            .file_type()
            .is_file()
    );
    assert_eq!(mode(&out), 0o600);
}

#[test]
fn kubernetes_export_quotes_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let names = [
        "yes",
        "on",
        "true",
        "null",
        "0x10",
        "010",
        "1.0",
        "2001-01-01",
        "No",
        "1e3",
        "0o7",
        ".inf",
    ];
    for n in names {
        put(
            &server,
            &root,
            &format!("app/yaml/{n}"),
            format!("value of {n}").into(),
        );
    }
    let run = server
        .cli()
        .token(&root)
        .run(&[
            "export",
            "--path",
            "app/yaml",
            "--format",
            "k8s",
            "--namespace",
            "null",
            "--name",
            "true",
        ])
        .expect(0);
    let manifest = dir.path().join("secret.yaml");
    std::fs::write(&manifest, run.stdout()).unwrap();
    // PyYAML reads YAML 1.1: unquoted, these would be booleans, null,
    // numbers and dates, and yes/on/true one key.
    let doc = python(
        "import sys, json, yaml\nd = yaml.safe_load(open(sys.argv[1]))\nassert all(isinstance(k, str) for k in d['data']), d['data'].keys()\nprint(json.dumps(d))",
        &[manifest.to_str().unwrap()],
    );
    assert_eq!(doc["metadata"]["namespace"], "null");
    assert_eq!(doc["metadata"]["name"], "true");
    assert_eq!(doc["apiVersion"], "v1");
    use base64::Engine;
    let data = doc["data"].as_object().unwrap();
    assert_eq!(data.len(), names.len(), "{data:?}");
    for n in names {
        let v = base64::engine::general_purpose::STANDARD
            .decode(data[n].as_str().unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(v).unwrap(), format!("value of {n}"));
    }
    // yaml and json read back the same names as strings.
    let run = server
        .cli()
        .token(&root)
        .run(&["export", "--path", "app/yaml", "--format", "yaml"])
        .expect(0);
    let yaml_file = dir.path().join("out.yaml");
    std::fs::write(&yaml_file, run.stdout()).unwrap();
    let read = python(
        "import sys, json, yaml\nd = yaml.safe_load(open(sys.argv[1]))\nassert all(isinstance(k, str) for k in d)\nprint(json.dumps(d))",
        &[yaml_file.to_str().unwrap()],
    );
    let json = server
        .cli()
        .token(&root)
        .run(&["export", "--path", "app/yaml", "--format", "json"])
        .expect(0)
        .json();
    assert_eq!(read, json);
    assert_eq!(json.as_object().unwrap().len(), names.len());
}

#[test]
fn export_out_bare_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/dev/API_KEY", "key-value".into());
    let work = dir.path().join("project");
    std::fs::create_dir(&work).unwrap();
    let run = |args: &[&str]| {
        Command::new(common::BIN)
            .current_dir(&work)
            .env("COFFER_ADDR", &server.addr)
            .env("COFFER_TOKEN", &root)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .args(args)
            .output()
            .unwrap()
    };
    for format in ["dotenv", "json", "yaml", "shell", "k8s"] {
        let out = run(&[
            "export", "--path", "app/dev", "--format", format, "--out", ".env",
        ]);
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(mode(&work.join(".env")), 0o600);
    }
    let out = run(&[
        "export",
        "--path",
        "app/dev",
        "--format",
        "github",
        "--out",
        "github_env",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "export", "--path", "app/dev", "--format", "docker", "--out", "secrets",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(work.join("secrets/API_KEY")).unwrap(),
        "key-value"
    );
    // No temporary file left behind.
    let left: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn concurrent_exports_to_one_file_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/dev/A", "a".repeat(20_000).into());
    put(&server, &root, "app/dev/B", "b".repeat(20_000).into());
    let out = dir.path().join("shared.env");
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (addr, root, out, home) = (
                server.addr.clone(),
                root.clone(),
                out.clone(),
                dir.path().to_path_buf(),
            );
            std::thread::spawn(move || {
                let only = if i % 2 == 0 { "A" } else { "B" };
                common::Cli::new(&addr, &home)
                    .token(&root)
                    .run(&[
                        "export",
                        "--path",
                        "app/dev",
                        "--only",
                        only,
                        "--format",
                        "dotenv",
                        "--out",
                        out.to_str().unwrap(),
                    ])
                    .expect(0);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // One whole export or the other, never a mix; no temporary file left.
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text == format!("A={}\n", "a".repeat(20_000))
            || text == format!("B={}\n", "b".repeat(20_000)),
        "{} bytes",
        text.len()
    );
    assert_eq!(mode(&out), 0o600);
    let tmp = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(tmp, 0);
}

#[test]
fn check_and_example_refuse_hostile_template_keys_and_links() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(
        &server,
        &root,
        "app/dev/API_KEY",
        "k-8Qz1vX3mT7wR2pL9yN4bV6".into(),
    );
    let template = dir.path().join(".env.example");
    for text in ["'PATH=/tmp'=x\n", "'A\u{0}B'=\n", "'A B'=\n", "1A=\n"] {
        std::fs::write(&template, text).unwrap();
        let run = server
            .cli()
            .run(&["check", "--env", "--template", template.to_str().unwrap()]);
        assert_eq!(run.code(), 7, "{text:?}: {}", run.stderr());
        assert!(run.stderr().contains("line(s) 1"), "{}", run.stderr());
    }
    // example --out replaces a link, never writes through it.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "victim's own\n").unwrap();
    let out = dir.path().join("linked.env.example");
    symlink(&victim, &out).unwrap();
    server
        .cli()
        .token(&root)
        .run(&[
            "example",
            "--path",
            "app/dev",
            "--out",
            out.to_str().unwrap(),
        ])
        .expect(0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim's own\n");
    assert!(std::fs::read_to_string(&out).unwrap().contains("API_KEY="));
    assert!(
        std::fs::symlink_metadata(&out)
            .unwrap()
            .file_type()
            .is_file()
    );
}

/// A colleague with write access to a secret writes a value that runs a
/// command (or reads another variable) when the exported .env is loaded by
/// dotenvx, which runs `$(...)` and expands `$NAME` outside single quotes.
#[test]
fn dotenv_export_value_injection_into_dotenvx() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let values = [
        ("A1", "it's $(touch pwned)"),
        ("A2", "x\n$(touch pwned) $1 cost $5"),
        ("A3", "`id`' and $HOME'"),
        ("A4", "back\\slash $(id)"),
    ];
    for (name, v) in values {
        put(&server, &root, &format!("app/dx/{name}"), v.into());
    }
    let out = dir.path().join("dx.env");
    let export = |only: &str| {
        server.cli().token(&root).run(&[
            "export",
            "--path",
            "app/dx",
            "--format",
            "dotenv",
            "--only",
            only,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    export("A1,A2,A3,A4").expect(0);
    let text = std::fs::read_to_string(&out).unwrap();
    // Outside single quotes no `$(` and no `$` before a name or `{`
    // (the `${:-$}` form expands to `$` after dotenvx has run commands).
    for line in text.lines() {
        let value = &line[line.find('=').unwrap() + 1..];
        if value.starts_with('\'') {
            continue;
        }
        let cleaned = value.replace("${:-$}", "");
        assert!(
            !cleaned
                .as_bytes()
                .windows(2)
                .any(|w| w[0] == b'$' && (w[1].is_ascii_alphabetic() || b"_{(".contains(&w[1]))),
            "{line}"
        );
    }
    let read = python(
        "import sys, json, dotenv; print(json.dumps(dotenv.dotenv_values(sys.argv[1])))",
        &[out.to_str().unwrap()],
    );
    let want: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(n, v)| (n.to_string(), serde_json::Value::from(*v)))
        .collect();
    assert_eq!(read, serde_json::Value::Object(want));

    // A value that needs double quotes and holds `$NAME` or `${` has no
    // form both readers take literally: refused by name, nothing written.
    put(&server, &root, "app/dx/B1", "line\n$HOME".into());
    put(
        &server,
        &root,
        "app/dx/B2",
        "${AWS_SECRET_ACCESS_KEY}".into(),
    );
    std::fs::remove_file(&out).unwrap();
    let run = export("A1,B1,B2");
    assert_eq!(run.code(), 7, "{}", run.stderr());
    assert!(run.stderr().contains("B1, B2"), "{}", run.stderr());
    assert!(!run.stderr().contains("AWS_SECRET"), "{}", run.stderr());
    assert!(!out.exists());
}

/// `printf X=1 >> $GITHUB_ENV` by an earlier step leaves a last line
/// without its line break: `NAME<<DELIMITER` appended to it would not start
/// a line, and the runner would read the value's lines as `NAME=value`.
#[test]
fn github_env_unterminated_last_line_injection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(
        &server,
        &root,
        "ci/gh/MULTI",
        "line1\nLD_PRELOAD=/tmp/evil.so\n".into(),
    );
    let github_env = dir.path().join("github_env");
    std::fs::write(&github_env, "EARLIER=kept").unwrap();
    server
        .cli()
        .token(&root)
        .env("GITHUB_ENV", github_env.to_str().unwrap())
        .run(&["export", "--path", "ci/gh", "--format", "github"])
        .expect(0);
    let text = std::fs::read_to_string(&github_env).unwrap();
    assert!(
        text.starts_with("EARLIER=kept\nMULTI<<COFFER_EOF_"),
        "{text}"
    );
    // Read as the runner reads it: every line outside a heredoc is
    // NAME=value or NAME<<DELIMITER.
    let mut names = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            names.push(name.to_string());
            for l in lines.by_ref() {
                if l == delimiter {
                    break;
                }
            }
        } else {
            names.push(line.split_once('=').unwrap().0.to_string());
        }
    }
    assert_eq!(names, ["EARLIER", "MULTI"]);
}

/// A secret named after a variable the Actions runner or an action reads
/// (ACTIONS_ID_TOKEN_REQUEST_URL sends the job's OIDC request token to the
/// host it names; GITHUB_API_URL the GITHUB_TOKEN) is refused like BASH_ENV.
#[test]
fn github_export_ci_runner_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    for name in [
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "actions_runtime_url",
        "GITHUB_API_URL",
        "GITHUB_PATH",
    ] {
        put(
            &server,
            &root,
            &format!("ci/gh/{name}"),
            "https://evil.example/".into(),
        );
    }
    put(
        &server,
        &root,
        "ci/gh/GITHUB_TOKEN",
        "a-pat-stored-here".into(),
    );
    let github_env = dir.path().join("github_env");
    std::fs::write(&github_env, "").unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["export", "--path", "ci/gh"];
        args.extend_from_slice(extra);
        server
            .cli()
            .token(&root)
            .env("GITHUB_ENV", github_env.to_str().unwrap())
            .run(&args)
    };
    for format in ["github", "dotenv", "shell", "k8s"] {
        let r = run(&["--format", format]);
        assert_eq!(r.code(), 7, "{format}: {}", r.stderr());
        assert!(
            r.stderr().contains("ACTIONS_ID_TOKEN_REQUEST_URL"),
            "{}",
            r.stderr()
        );
    }
    assert_eq!(std::fs::read_to_string(&github_env).unwrap(), "");
    run(&["--format", "github", "--only", "GITHUB_TOKEN"]).expect(0);
}

/// On a case-insensitive file system `db` and `DB` are one file: one
/// secret would silently replace the other.
#[test]
fn docker_export_case_colliding_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/d/db", "lower-value".into());
    put(&server, &root, "app/d/DB", "upper-value".into());
    put(&server, &root, "app/d/OTHER", "other-value".into());
    let out = dir.path().join("secrets");
    let run = server.cli().token(&root).run(&[
        "export",
        "--path",
        "app/d",
        "--format",
        "docker",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), 7, "{}", run.stderr());
    assert!(run.stderr().contains("DB, db"), "{}", run.stderr());
    assert!(!out.exists());
}

/// Names in an import file are the file author's: printed raw in the
/// error, `\x1b]...` or `\x1b[2J` would drive the reader's terminal and a
/// U+202E would reorder what they see.
#[test]
fn import_hostile_names_are_escaped_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let file = dir.path().join("h.json");
    std::fs::write(
        &file,
        r#"{"\u001b]0;owned\u0007X":"a","\u202eKEY":"b","..":"c","ok":"d","N":1,"\u001b[2JY":2}"#,
    )
    .unwrap();
    for _ in 0..2 {
        let run =
            server
                .cli()
                .token(&root)
                .run(&["import", file.to_str().unwrap(), "--path", "app/imp"]);
        assert_eq!(run.code(), 7, "{}", run.stderr());
        let err = run.stderr();
        assert!(
            !err.contains('\u{1b}') && !err.contains('\u{202e}'),
            "{err:?}"
        );
        assert!(err.contains(r"\u{1b}"), "{err:?}");
        // Fix the values; the names remain.
        std::fs::write(
            &file,
            r#"{"\u001b]0;owned\u0007X":"a","\u202eKEY":"b","..":"c","ok":"d"}"#,
        )
        .unwrap();
    }
    assert!(get(&server, &root, "app/imp/ok").is_none());
}

/// The runner masks exactly the text `::add-mask::` gave it: an indented
/// line of a multi-line value (a PEM body, a YAML key) printed on its own,
/// without its indentation, was not masked.
#[test]
fn github_masks_trimmed_lines_of_multiline_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(
        &server,
        &root,
        "ci/m/KEY",
        "first\n    indented-secret-line  \r\n\tTabbed-line\n".into(),
    );
    let github_env = dir.path().join("github_env");
    let run = server
        .cli()
        .token(&root)
        .env("GITHUB_ENV", github_env.to_str().unwrap())
        .run(&["export", "--path", "ci/m", "--format", "github"])
        .expect(0);
    for mask in [
        "first",
        "    indented-secret-line  ",
        "indented-secret-line",
        "\tTabbed-line",
        "Tabbed-line",
    ] {
        assert!(
            run.stdout().contains(&format!("::add-mask::{mask}\n")),
            "{mask:?}: {}",
            run.stdout()
        );
    }
}

/// `--out /dev/stdout` (a link to `/proc/self/fd/1`) or a named pipe was
/// renamed over: as root in a container, `/dev/stdout` itself became a
/// regular file holding the values, and nothing was printed.
#[test]
fn export_out_dev_stdout_or_fifo_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/o/KEY", "out-secret-value".into());
    let link = dir.path().join("stdout");
    std::os::unix::fs::symlink("/proc/self/fd/1", &link).unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (target, format) in [(&link, "json"), (&fifo, "dotenv"), (&link, "shell")] {
        let run = server.cli().token(&root).run(&[
            "export",
            "--path",
            "app/o",
            "--format",
            format,
            "--out",
            target.to_str().unwrap(),
        ]);
        assert_eq!(run.code(), 1, "{}", run.stderr());
        assert!(
            run.stderr().contains("not a regular file"),
            "{}",
            run.stderr()
        );
        assert!(!run.stdout().contains("out-secret-value"));
    }
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // A link to a regular file is still replaced, never written through.
    let target = dir.path().join("target");
    std::fs::write(&target, "untouched").unwrap();
    let link2 = dir.path().join("link2");
    std::os::unix::fs::symlink(&target, &link2).unwrap();
    server
        .cli()
        .token(&root)
        .run(&[
            "export",
            "--path",
            "app/o",
            "--format",
            "json",
            "--out",
            link2.to_str().unwrap(),
        ])
        .expect(0);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
}

/// A project's template is its author's: `COFFER_TOKEN=<guess>` made
/// `check --env` say whether the token equals the guess ("placeholder"),
/// and a strength verdict on it. Coffer's credentials are checked for
/// presence only.
#[test]
fn check_env_template_oracle_on_coffer_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let template = dir.path().join(".env.example");
    std::fs::write(
        &template,
        format!("COFFER_TOKEN={root}\nCOFFER_STORAGE_PASSWORD=changeme\nAPP_PASSWORD=changeme\n"),
    )
    .unwrap();
    let run = server
        .cli()
        .token(&root)
        .env("COFFER_STORAGE_PASSWORD", "changeme")
        .env("APP_PASSWORD", "changeme")
        .run(&[
            "check",
            "--env",
            "--json",
            "--template",
            template.to_str().unwrap(),
        ]);
    let doc = run.json();
    let problems: Vec<&str> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(problems, ["APP_PASSWORD"], "{doc}");
    // Missing is still said.
    let run = server.cli().token(&root).run(&[
        "check",
        "--env",
        "--json",
        "--template",
        template.to_str().unwrap(),
    ]);
    let doc = run.json();
    assert!(
        doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "COFFER_STORAGE_PASSWORD" && p["problem"] == "missing"),
        "{doc}"
    );
}

/// A cloned repository commits `secrets -> ../../.ssh`; a colleague stores
/// a secret named `authorized_keys` (or `config`, with a ProxyCommand):
/// `coffer export --format docker --out ./secrets`, as the docs show,
/// wrote it into ~/.ssh.
#[test]
fn docker_export_out_through_symlinked_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(
        &server,
        &root,
        "app/k/authorized_keys",
        "ssh-ed25519 AAAA attacker".into(),
    );
    let ssh = dir.path().join("home/.ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let repo = dir.path().join("home/src/repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::os::unix::fs::symlink("../../.ssh", repo.join("secrets")).unwrap();
    for out in [repo.join("secrets"), repo.join("secrets/app")] {
        let run = server.cli().token(&root).run(&[
            "export",
            "--path",
            "app/k",
            "--format",
            "docker",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(run.code(), 7, "{}", run.stderr());
        assert!(run.stderr().contains("symbolic link"), "{}", run.stderr());
    }
    assert_eq!(std::fs::read_dir(&ssh).unwrap().count(), 0);
    // A real directory is fine.
    server
        .cli()
        .token(&root)
        .run(&[
            "export",
            "--path",
            "app/k",
            "--format",
            "docker",
            "--out",
            repo.join("real").to_str().unwrap(),
        ])
        .expect(0);
}
