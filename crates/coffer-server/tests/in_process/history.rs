//! `PUT /api/v1/history/{path}`, the write of a secret's whole history
//! (what `coffer migrate from-vault` sends): the versions and states it
//! leaves, sending it again, appending, conflicts, bad input, who may call
//! it, and that a refused history writes nothing.

use crate::common;

use common::{Mode, Response, Server, ok};
use serde_json::{Value, json};

const CANARY: &str = "canary-history-7f3e9a";

/// A history of four versions: destroyed, active, deleted, active.
fn history() -> Value {
    json!({"versions": [
        {"version": 1, "created_at": "2024-01-01T10:00:00.123Z", "state": "destroyed",
         "state_at": "2024-01-05T00:00:00Z"},
        {"version": 2, "created_at": "2024-02-01T10:00:00Z", "state": "active",
         "value": {"user": "app", "password": format!("{CANARY}-two")}},
        {"version": 3, "created_at": "2024-03-01T10:00:00Z", "state": "deleted",
         "state_at": "2024-03-02T00:00:00Z", "value": format!("{CANARY}-three")},
        {"version": 4, "created_at": "2024-04-01T10:00:00Z", "state": "active",
         "value": format!("{CANARY}-four")},
    ]})
}

fn put(server: &Server, token: &str, path: &str, body: &Value) -> Response {
    server.http(
        "PUT",
        &format!("/api/v1/history/{path}"),
        Some(token),
        Some(body.to_string().as_bytes()),
    )
}

fn metadata(server: &Server, token: &str, path: &str) -> Response {
    server.http(
        "GET",
        &format!("/api/v1/metadata/{path}"),
        Some(token),
        None,
    )
}

/// A token whose only policy is `rules`.
fn token_with(server: &Server, root: &str, name: &str, rules: &str) -> String {
    let r = server.http(
        "PUT",
        &format!("/api/v1/sys/policies/{name}"),
        Some(root),
        Some(json!({ "policy": rules }).to_string().as_bytes()),
    );
    ok(&r, "policy");
    let r = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(root),
        Some(json!({"policies": [name]}).to_string().as_bytes()),
    );
    ok(&r, "token")["token"].as_str().unwrap().to_string()
}

fn record_of<'a>(log: &'a [Value], r: &Response) -> &'a Value {
    let id = r.header("x-request-id").unwrap();
    log.iter()
        .find(|rec| rec["request_id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("no audit record for {id}"))
}

#[test]
fn a_history_is_written_with_its_times_and_states_then_again_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let path = "app/prod/db";

    // A dry run says what would be written and writes nothing.
    let mut dry = history();
    dry["dry_run"] = json!(true);
    let body = ok(&put(&server, &root, path, &dry), "dry run");
    assert_eq!(body["outcome"], "created");
    assert_eq!(body["written"], json!([1, 2, 3, 4]));
    assert_eq!(body["current_version"], 0);
    assert_eq!(metadata(&server, &root, path).status, 404);

    let first = put(&server, &root, path, &history());
    let body = ok(&first, "history");
    assert_eq!(body["outcome"], "created");
    assert_eq!(body["written"], json!([1, 2, 3, 4]));
    assert_eq!(body["current_version"], 4);

    let meta = ok(&metadata(&server, &root, path), "metadata");
    assert_eq!(meta["current_version"], 4);
    let versions = meta["versions"].as_array().unwrap();
    let states: Vec<&str> = versions
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["destroyed", "active", "deleted", "active"]);
    assert_eq!(versions[0]["created_at"], "2024-01-01T10:00:00.123Z");
    assert_eq!(versions[0]["state_changed_at"], "2024-01-05T00:00:00.000Z");
    assert_eq!(versions[2]["state_changed_at"], "2024-03-02T00:00:00.000Z");
    assert_eq!(versions[3]["created_at"], "2024-04-01T10:00:00.000Z");

    // Values: the active ones read back exactly; the deleted one is kept
    // (undelete brings it back), the destroyed one has none.
    let read = |v: u64| {
        server.http(
            "GET",
            &format!("/api/v1/secrets/{path}?version={v}"),
            Some(&root),
            None,
        )
    };
    assert_eq!(ok(&read(4), "v4")["value"], format!("{CANARY}-four"));
    assert_eq!(
        ok(&read(2), "v2")["value"],
        json!({"user": "app", "password": format!("{CANARY}-two")})
    );
    assert_eq!(read(3).status, 404);
    assert_eq!(read(1).status, 404);
    let r = server.http(
        "POST",
        &format!("/api/v1/undelete/{path}"),
        Some(&root),
        Some(br#"{"versions":[3]}"#),
    );
    ok(&r, "undelete");
    assert_eq!(ok(&read(3), "v3")["value"], format!("{CANARY}-three"));
    let r = server.http(
        "DELETE",
        &format!("/api/v1/secrets/{path}?versions=3"),
        Some(&root),
        None,
    );
    ok(&r, "delete again");
    // Deleting again set a new time: the same history now differs.
    let differs = put(&server, &root, path, &history());
    assert_eq!(differs.status, 409, "{}", differs.text());
    assert!(differs.text().contains("version 3"), "{}", differs.text());
    assert!(!differs.text().contains(CANARY));

    // A fresh secret, sent twice: the second time writes nothing.
    let again_path = "app/prod/cache";
    ok(&put(&server, &root, again_path, &history()), "first");
    let before = ok(&metadata(&server, &root, again_path), "metadata");
    let second = put(&server, &root, again_path, &history());
    let body = ok(&second, "second");
    assert_eq!(body["outcome"], "unchanged");
    assert_eq!(body["written"], json!([]));
    assert_eq!(
        ok(&metadata(&server, &root, again_path), "metadata"),
        before
    );

    // A longer history with the same beginning: only the new version.
    let mut longer = history();
    longer["versions"].as_array_mut().unwrap().push(json!({
        "version": 5, "created_at": "2024-05-01T10:00:00Z", "state": "active",
        "value": format!("{CANARY}-five"),
    }));
    longer["dry_run"] = json!(true);
    let body = ok(&put(&server, &root, again_path, &longer), "dry append");
    assert_eq!(
        (&body["outcome"], &body["written"]),
        (&json!("appended"), &json!([5]))
    );
    longer["dry_run"] = json!(false);
    let appended = put(&server, &root, again_path, &longer);
    let body = ok(&appended, "appended");
    assert_eq!(body["outcome"], "appended");
    assert_eq!(body["written"], json!([5]));

    // A secret given an expiry in coffer keeps it when versions are
    // appended, and its labels follow the newest version.
    let r = server.http(
        "PUT",
        &format!("/api/v1/expiry/{again_path}"),
        Some(&root),
        Some(br#"{"expires_in":"90d"}"#),
    );
    ok(&r, "expiry");
    longer["versions"].as_array_mut().unwrap().push(json!({
        "version": 6, "created_at": "2024-06-01T10:00:00Z", "state": "active",
        "value": format!("{CANARY}-six"),
    }));
    ok(
        &put(&server, &root, again_path, &longer),
        "appended after an expiry",
    );
    let meta = ok(&metadata(&server, &root, again_path), "metadata");
    assert_eq!(meta["labels"]["current"], 6, "{meta}");
    assert_eq!(meta["labels"]["previous"], 5, "{meta}");
    assert!(meta["labels"]["expires_at"].is_string(), "{meta}");

    // Two migrations of one secret at once: one writes, the other finds it
    // written.
    let racing = "app/prod/race";
    let outcomes: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| ok(&put(&server, &root, racing, &history()), "race")))
            .collect();
        runs.into_iter()
            .map(|h| h.join().unwrap()["outcome"].as_str().unwrap().to_string())
            .collect()
    });
    let mut outcomes = outcomes;
    outcomes.sort();
    assert_eq!(outcomes, ["created", "unchanged"]);

    // The audit records name the versions written, never a value.
    let log = server.audit_records();
    let rec = record_of(&log, &first);
    assert_eq!(rec["op"], "secret.import_history");
    assert_eq!(rec["outcome"], "ok");
    assert_eq!(rec["writes"].as_array().unwrap().len(), 4, "{rec}");
    let rec = record_of(&log, &appended);
    assert_eq!(rec["writes"].as_array().unwrap().len(), 1, "{rec}");
    let rec = record_of(&log, &second);
    assert!(rec["writes"].as_array().is_none_or(Vec::is_empty), "{rec}");
    let text = std::fs::read_to_string(server.audit_log()).unwrap();
    assert!(!text.contains(CANARY));
}

#[test]
fn a_different_value_or_a_shorter_history_is_a_conflict_that_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let path = "app/prod/api";
    ok(&put(&server, &root, path, &history()), "first");
    let before = ok(&metadata(&server, &root, path), "metadata");

    let mut changed = history();
    changed["versions"][1]["value"]["password"] = json!("another-password-entirely");
    changed["versions"].as_array_mut().unwrap().push(json!({
        "version": 5, "created_at": "2024-05-01T10:00:00Z", "state": "active",
        "value": "appended-after-a-difference",
    }));
    let r = put(&server, &root, path, &changed);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains("version 2: another value"),
        "{}",
        r.text()
    );

    let mut shorter = history();
    shorter["versions"].as_array_mut().unwrap().pop();
    let r = put(&server, &root, path, &shorter);
    assert_eq!(r.status, 409, "{}", r.text());

    let mut moved = history();
    moved["versions"][3]["created_at"] = json!("2024-04-01T10:00:01Z");
    let r = put(&server, &root, path, &moved);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("another time"), "{}", r.text());

    // A secret written the ordinary way is not a history's beginning.
    let r = server.http(
        "PUT",
        "/api/v1/secrets/app/prod/plain",
        Some(&root),
        Some(br#"{"value":"written-natively"}"#),
    );
    ok(&r, "plain write");
    let r = put(&server, &root, "app/prod/plain", &history());
    assert_eq!(r.status, 409, "{}", r.text());

    assert_eq!(ok(&metadata(&server, &root, path), "metadata"), before);
}

#[test]
fn bad_histories_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let v = |version: u64, state: &str| {
        json!({"version": version, "created_at": "2024-01-01T00:00:00Z", "state": state,
               "value": "some-value-here"})
    };
    let cases: Vec<(&str, Value)> = vec![
        ("no versions", json!({"versions": []})),
        ("numbered from 2", json!({"versions": [v(2, "active")]})),
        (
            "out of order",
            json!({"versions": [v(1, "active"), v(3, "active")]}),
        ),
        (
            "destroyed with a value",
            json!({"versions": [{"version": 1, "created_at": "2024-01-01T00:00:00Z",
                "state": "destroyed", "state_at": "2024-01-02T00:00:00Z", "value": "x"}]}),
        ),
        (
            "active without a value",
            json!({"versions": [{"version": 1, "created_at": "2024-01-01T00:00:00Z",
                "state": "active"}]}),
        ),
        (
            "deleted without state_at",
            json!({"versions": [v(1, "deleted")]}),
        ),
        (
            "active with state_at",
            json!({"versions": [{"version": 1, "created_at": "2024-01-01T00:00:00Z",
                "state": "active", "state_at": "2024-01-02T00:00:00Z", "value": "x"}]}),
        ),
        ("unknown state", json!({"versions": [v(1, "archived")]})),
        (
            "a time that is not RFC 3339",
            json!({"versions": [{"version": 1, "created_at": "yesterday",
                "state": "active", "value": "x"}]}),
        ),
        (
            "deleted before written",
            json!({"versions": [{"version": 1, "created_at": "2024-01-02T00:00:00Z",
                "state": "deleted", "state_at": "2024-01-01T00:00:00Z", "value": "x"}]}),
        ),
        (
            "before 1970",
            json!({"versions": [{"version": 1, "created_at": "1969-12-31T00:00:00Z",
                "state": "active", "value": "x"}]}),
        ),
        (
            "written in the future",
            json!({"versions": [{"version": 1, "created_at": "2999-01-01T00:00:00Z",
                "state": "active", "value": "x"}]}),
        ),
        (
            "deleted in the future",
            json!({"versions": [{"version": 1, "created_at": "2024-01-01T00:00:00Z",
                "state": "deleted", "state_at": "2999-01-01T00:00:00Z", "value": "x"}]}),
        ),
        (
            "a version written before the one before it",
            json!({"versions": [
                {"version": 1, "created_at": "2024-02-01T00:00:00Z", "state": "active", "value": "x"},
                {"version": 2, "created_at": "2024-01-01T00:00:00Z", "state": "active", "value": "y"}]}),
        ),
        (
            "an unknown field",
            json!({"versions": [v(1, "active")], "force": true}),
        ),
        (
            "an unknown field in a version",
            json!({"versions": [{"version": 1, "created_at": "2024-01-01T00:00:00Z",
                "state": "active", "value": "x", "created_by": "root"}]}),
        ),
        (
            "a field name with a control character",
            json!({"versions": [{"version": 1, "created_at": "2024-01-01T00:00:00Z",
                "state": "active", "value": {"a\u{1b}b": "x"}}]}),
        ),
        (
            "a value that is neither text nor string fields",
            json!({"versions": [{"version": 1, "created_at": "2024-01-01T00:00:00Z",
                "state": "active", "value": {"port": 5432}}]}),
        ),
    ];
    for (what, body) in &cases {
        let r = put(&server, &root, "app/prod/bad", body);
        assert!(
            r.status == 400 || r.status == 422,
            "{what}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            !r.text().contains("some-value-here"),
            "{what}: {}",
            r.text()
        );
    }
    let too_many: Vec<Value> = (1..=1001).map(|n| v(n, "active")).collect();
    let r = put(
        &server,
        &root,
        "app/prod/bad",
        &json!({ "versions": too_many }),
    );
    assert!(r.status == 400 || r.status == 413, "{}", r.text());
    assert_eq!(metadata(&server, &root, "app/prod/bad").status, 404);

    // Hostile paths are refused before anything is looked up.
    for path in [
        "app/../etc/passwd",
        "app//db",
        "app/%0Adb",
        "app/%E2%80%AEdb",
    ] {
        let r = put(&server, &root, path, &history());
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }

    // One version over the size limit refuses the whole history.
    let mut big = history();
    big["versions"][1]["value"] = json!("v".repeat(65_537));
    let r = put(&server, &root, "app/prod/big", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(metadata(&server, &root, "app/prod/big").status, 404);
}

#[test]
fn it_needs_admin_on_sys_import_and_read_and_create_on_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let all = r#"path "sys/import" { capabilities = ["admin"] }
path "app/*" { capabilities = ["create", "read"] }"#;
    let no_admin = r#"path "app/*" { capabilities = ["create", "read", "update", "delete"] }"#;
    let no_read = r#"path "sys/import" { capabilities = ["admin"] }
path "app/*" { capabilities = ["create", "update"] }"#;
    let denied = r#"path "sys/import" { capabilities = ["admin"] }
path "app/*" { capabilities = ["create", "read"] }
path "app/prod/*" { capabilities = ["deny"] }"#;
    for (name, rules) in [
        ("no-admin", no_admin),
        ("no-read", no_read),
        ("denied", denied),
    ] {
        let token = token_with(&server, &root, name, rules);
        let r = put(&server, &token, "app/prod/db", &history());
        assert_eq!(r.status, 403, "{name}: {}", r.text());
        assert_eq!(
            metadata(&server, &root, "app/prod/db").status,
            404,
            "{name}"
        );
    }
    let r = put(&server, "not-a-token", "app/prod/db", &history());
    assert_eq!(r.status, 401, "{}", r.text());
    let token = token_with(&server, &root, "migrator", all);
    ok(&put(&server, &token, "app/prod/db", &history()), "allowed");
    // The refusals were audited as refusals.
    let refused = server
        .audit_records()
        .iter()
        .filter(|r| r["op"] == "secret.import_history" && r["outcome"] == "denied")
        .count();
    // Three refusals and the unknown token.
    assert_eq!(refused, 4);
}

/// `sys/import` lets a history set times and states; it is not the right to
/// change what an existing secret serves. Appending needs `update`, and an
/// appended deleted or destroyed version `delete` or `destroy`.
#[test]
fn appending_to_a_secret_that_exists_needs_update_and_the_state_rights() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let importer = token_with(
        &server,
        &root,
        "importer",
        r#"path "sys/import" { capabilities = ["admin"] }
           path "app/*" { capabilities = ["read", "create"] }"#,
    );
    let path = "app/prod/appended";
    let first = json!({"versions": [
        {"version": 1, "created_at": "2024-01-01T00:00:00Z", "state": "active", "value": "one-value"},
    ]});
    let created = put(&server, &importer, path, &first);
    assert_eq!(ok(&created, "created")["outcome"], "created");

    // The same history again changes nothing, and needs no more.
    assert_eq!(
        ok(&put(&server, &importer, path, &first), "again")["outcome"],
        "unchanged"
    );

    let mut longer = first.clone();
    longer["versions"].as_array_mut().unwrap().push(json!(
        {"version": 2, "created_at": "2024-02-01T00:00:00Z", "state": "active", "value": "two-value"}
    ));
    let refused = put(&server, &importer, path, &longer);
    assert_eq!(refused.status, 403, "{}", refused.text());
    let mut dry = longer.clone();
    dry["dry_run"] = json!(true);
    assert_eq!(
        put(&server, &importer, path, &dry).status,
        403,
        "a dry run is refused alike"
    );
    let meta = ok(&metadata(&server, &root, path), "metadata");
    assert_eq!(
        meta["current_version"], 1,
        "a refused append writes nothing"
    );

    // With update, an active version may be appended; a destroyed one
    // needs destroy as well.
    let updater = token_with(
        &server,
        &root,
        "updater",
        r#"path "sys/import" { capabilities = ["admin"] }
           path "app/*" { capabilities = ["read", "create", "update"] }"#,
    );
    let mut destroyed = longer.clone();
    destroyed["versions"].as_array_mut().unwrap().push(json!(
        {"version": 3, "created_at": "2024-03-01T00:00:00Z", "state": "destroyed",
         "state_at": "2024-03-02T00:00:00Z"}
    ));
    assert_eq!(put(&server, &updater, path, &destroyed).status, 403);
    assert_eq!(
        ok(&metadata(&server, &root, path), "metadata")["current_version"],
        1
    );
    assert_eq!(
        ok(&put(&server, &updater, path, &longer), "appended")["outcome"],
        "appended"
    );
    assert_eq!(
        ok(&metadata(&server, &root, path), "metadata")["current_version"],
        2
    );

    // A new secret's history may still hold destroyed versions with
    // sys/import alone: that is what a migration brings.
    let fresh = json!({"versions": [
        {"version": 1, "created_at": "2024-01-01T00:00:00Z", "state": "destroyed",
         "state_at": "2024-01-02T00:00:00Z"},
        {"version": 2, "created_at": "2024-02-01T00:00:00Z", "state": "active", "value": "v2-value"},
    ]});
    assert_eq!(
        ok(&put(&server, &importer, "app/prod/fresh", &fresh), "fresh")["outcome"],
        "created"
    );
}
