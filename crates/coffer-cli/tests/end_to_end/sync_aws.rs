//! `coffer sync pull|push` against moto's server mode (a local emulation
//! of AWS Secrets Manager and SSM Parameter Store, PyPI `moto[server]`,
//! which `.ci/deps/aws.sh` installs) and a real coffer server. The cloud
//! side is seeded and checked with boto3, AWS's own Python SDK. Values
//! and the AWS secret key are canaries: they appear in no output, log or
//! audit record.

use crate::common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::canary::Canary;
use common::{Mode, Run, Server, wait_until};
use serde_json::{Value, json};

/// The AWS secret key the tests use: moto accepts any, and none of
/// coffer's output may hold it.
const AWS_SECRET: &str = "coffer-sync-test-secret-key-4b1d9e";

/// A `moto_server` on a free loopback port, stopped on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    fn start(dir: &Path) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("moto.log")).unwrap();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `moto_server` ({e}): these tests need moto's server mode \
                     (pip install 'moto[server]', as .ci/deps/aws.sh does)"
                )
            });
        let mut moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_until(Duration::from_secs(60), "moto to answer", || {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto_server exited ({status}): {}",
                    std::fs::read_to_string(dir.join("moto.log")).unwrap_or_default()
                );
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        moto
    }

    /// Runs boto3 code against moto: `sm` and `ssm` are clients, `data`
    /// is `input` (given on stdin, never in argv), and what the code
    /// assigns to `out` is returned.
    fn py(&self, code: &str, input: Value) -> Value {
        let script = format!(
            "import json, sys, boto3\n\
             data = json.load(sys.stdin)\n\
             kw = dict(endpoint_url={url:?}, region_name='us-east-1',\n\
                       aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             sm = boto3.client('secretsmanager', **kw)\n\
             ssm = boto3.client('ssm', **kw)\n\
             kms = boto3.client('kms', **kw)\n\
             out = None\n\
             {code}\n\
             print(json.dumps(out, default=str))\n",
            url = self.url
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 with boto3 (moto brings it)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "boto3 script failed:\n{code}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `coffer sync ARGS --json` against moto, AWS credentials from the
/// environment only.
fn sync(server: &Server, moto: &Moto, token: &str, args: &[&str]) -> Run {
    let mut all = vec!["sync"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--endpoint-url", &moto.url, "--json"]);
    server
        .cli()
        .token(token)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .run(&all)
}

/// The outcome of each secret (by its source name).
fn outcomes(run: &Run) -> std::collections::BTreeMap<String, String> {
    run.json()["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["source"].as_str().unwrap().to_string(),
                l["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Reads a coffer secret's value (a version or label) as JSON.
fn coffer_read(server: &Server, token: &str, path: &str, query: &str) -> Value {
    let r = server.http(
        "GET",
        &format!("/api/v1/secrets/{path}{query}"),
        Some(token),
        None,
    );
    assert_eq!(r.status, 200, "{path}{query}: {}", r.text());
    r.json()
}

fn coffer_set(server: &Server, token: &str, path: &str, value: &str) {
    server
        .cli()
        .token(token)
        .stdin(value)
        .run(&["set", path])
        .expect(0);
}

/// Every output of `runs` is searched for the canary and the AWS key.
fn search(canary: &mut Canary, key: &mut Canary, runs: &[(&str, &Run)]) {
    for (name, run) in runs {
        canary.search_run(name, run);
        key.search_run(name, run);
    }
}

#[test]
fn secrets_manager_versions_and_labels_come_in_and_go_out() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut canary = Canary::new("sync-sm");
    let mut key = Canary::with_value(AWS_SECRET);
    let c = |n: u32| format!("{}-{n}", canary.value);

    moto.py(
        "sm.create_secret(Name='/app/prod/db', SecretString=json.dumps({'user': 'app', 'password': data['c'][0]}))\n\
         sm.put_secret_value(SecretId='/app/prod/db', SecretString=json.dumps({'user': 'app', 'password': data['c'][1]}))\n\
         sm.put_secret_value(SecretId='/app/prod/db', SecretString=data['c'][2])\n\
         sm.create_secret(Name='/app/prod/api', SecretString=data['c'][3])\n\
         sm.create_secret(Name='/app/prod/staged', SecretString=data['c'][4])\n\
         sm.put_secret_value(SecretId='/app/prod/staged', SecretString=data['c'][5], VersionStages=['AWSPENDING'])\n\
         sm.create_secret(Name='/app/prod/blob', SecretBinary=b'\\x00\\x01binary')\n\
         sm.create_secret(Name='/app/prod/we+ird', SecretString='x')\n\
         sm.create_secret(Name='/app/prod/../escape', SecretString='x')\n\
         sm.create_secret(Name='/app/production', SecretString='x')\n\
         sm.create_secret(Name='/other/db', SecretString='x')\n",
        json!({"c": [c(1), c(2), c(3), c(4), c(5), c(6)]}),
    );

    // A dry run names what would change and writes nothing.
    let dry = sync(
        &server,
        &moto,
        &root,
        &[
            "pull",
            "aws-sm",
            "--prefix",
            "/app/prod/",
            "--to",
            "app/prod",
            "--dry-run",
        ],
    )
    .expect(0);
    let want_first = map(&[
        ("/app/prod/../escape", "not_mapped"),
        ("/app/prod/api", "created"),
        ("/app/prod/blob", "not_mapped"),
        ("/app/prod/db", "created"),
        ("/app/prod/staged", "created"),
        ("/app/prod/we+ird", "not_mapped"),
    ]);
    assert_eq!(outcomes(&dry), want_first, "{}", dry.stdout());
    assert_eq!(dry.json()["dry_run"], true);
    let r = server.http("GET", "/api/v1/list/app", Some(&root), None);
    assert!(
        r.status == 404 || r.json()["entries"].as_array().unwrap().is_empty(),
        "{}",
        r.text()
    );

    // The pull: every version, in order, with labels.
    let first = sync(
        &server,
        &moto,
        &root,
        &[
            "pull",
            "aws-sm",
            "--prefix",
            "/app/prod/",
            "--to",
            "app/prod",
        ],
    )
    .expect(0);
    assert_eq!(outcomes(&first), want_first, "{}", first.stdout());
    let db = first.json()["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["source"] == "/app/prod/db")
        .unwrap()
        .clone();
    assert_eq!(db["versions"], json!(["1", "2", "3"]));
    let v1 = coffer_read(&server, &root, "app/prod/db", "?version=1");
    assert_eq!(v1["value"], json!({"user": "app", "password": c(1)}));
    let current = coffer_read(&server, &root, "app/prod/db", "");
    assert_eq!(
        (current["version"].as_u64(), current["value"].as_str()),
        (Some(3), Some(c(3).as_str()))
    );
    let previous = coffer_read(&server, &root, "app/prod/db", "?label=previous");
    assert_eq!(previous["version"], 2);
    let staged = coffer_read(&server, &root, "app/prod/staged", "");
    assert_eq!(staged["value"], c(5));
    let pending = coffer_read(&server, &root, "app/prod/staged", "?label=pending");
    assert_eq!(pending["value"], c(6));

    // A second run changes nothing.
    let again = sync(
        &server,
        &moto,
        &root,
        &[
            "pull",
            "aws-sm",
            "--prefix",
            "/app/prod/",
            "--to",
            "app/prod",
        ],
    )
    .expect(0);
    let mut unchanged = want_first.clone();
    for o in unchanged.values_mut() {
        if o == "created" {
            *o = "unchanged".into();
        }
    }
    assert_eq!(outcomes(&again), unchanged, "{}", again.stdout());

    // A version written in the cloud since is appended.
    moto.py(
        "sm.put_secret_value(SecretId='/app/prod/db', SecretString=data)",
        json!(c(7)),
    );
    let appended = sync(
        &server,
        &moto,
        &root,
        &[
            "pull",
            "aws-sm",
            "--prefix",
            "/app/prod/",
            "--to",
            "app/prod",
        ],
    )
    .expect(0);
    assert_eq!(outcomes(&appended)["/app/prod/db"], "updated");
    assert_eq!(
        coffer_read(&server, &root, "app/prod/db", "")["value"],
        c(7)
    );

    // Out: a dry run creates nothing in the cloud.
    let push_args = ["push", "aws-sm", "--from", "app/prod", "--prefix", "/copy/"];
    let dry_push = sync(
        &server,
        &moto,
        &root,
        &[&push_args[..], &["--dry-run"]].concat(),
    )
    .expect(0);
    assert_eq!(
        outcomes(&dry_push),
        map(&[
            ("app/prod/api", "created"),
            ("app/prod/db", "created"),
            ("app/prod/staged", "created")
        ]),
        "{}",
        dry_push.stdout()
    );
    let listed = moto.py("out = [s['Name'] for s in sm.list_secrets()['SecretList'] if s['Name'].startswith('/copy/')]", json!(null));
    assert_eq!(listed, json!([]));

    // The push creates them, tagged, with coffer's current values.
    let pushed = sync(&server, &moto, &root, &push_args).expect(0);
    assert_eq!(
        outcomes(&pushed),
        map(&[
            ("app/prod/api", "created"),
            ("app/prod/db", "created"),
            ("app/prod/staged", "created")
        ])
    );
    let cloud = moto.py(
        "d = sm.describe_secret(SecretId='/copy/db')\n\
         out = {'value': sm.get_secret_value(SecretId='/copy/db')['SecretString'],\n\
                'tags': {t['Key']: t['Value'] for t in d['Tags']}}",
        json!(null),
    );
    assert_eq!(cloud["value"], c(7));
    assert_eq!(cloud["tags"]["coffer:managed"], "true");
    assert_eq!(cloud["tags"]["coffer:path"], "app/prod/db");
    let second_push = sync(&server, &moto, &root, &push_args).expect(0);
    assert!(
        outcomes(&second_push).values().all(|o| o == "unchanged"),
        "{}",
        second_push.stdout()
    );

    // A fields value goes out as a JSON object, a new version moves
    // AWSCURRENT and AWSPREVIOUS.
    coffer_set(&server, &root, "app/prod/api", &c(8));
    let updated = sync(&server, &moto, &root, &push_args).expect(0);
    assert_eq!(outcomes(&updated)["app/prod/api"], "updated");
    let stages = moto.py(
        "out = [sm.get_secret_value(SecretId='/copy/api', VersionStage=s)['SecretString'] for s in ['AWSCURRENT', 'AWSPREVIOUS']]",
        json!(null),
    );
    assert_eq!(stages, json!([c(8), c(4)]));

    // Changed outside coffer: refused (dry run too) and left alone, until --force.
    moto.py(
        "sm.put_secret_value(SecretId='/copy/api', SecretString=data)",
        json!(c(9)),
    );
    coffer_set(&server, &root, "app/prod/api", &c(10));
    let refused_dry = sync(
        &server,
        &moto,
        &root,
        &[&push_args[..], &["--dry-run"]].concat(),
    )
    .expect(8);
    assert_eq!(outcomes(&refused_dry)["app/prod/api"], "conflict");
    let refused = sync(&server, &moto, &root, &push_args).expect(8);
    assert_eq!(outcomes(&refused)["app/prod/api"], "conflict");
    let held = moto.py(
        "out = sm.get_secret_value(SecretId='/copy/api')['SecretString']",
        json!(null),
    );
    assert_eq!(held, json!(c(9)));
    let forced = sync(
        &server,
        &moto,
        &root,
        &[&push_args[..], &["--force"]].concat(),
    )
    .expect(0);
    assert_eq!(outcomes(&forced)["app/prod/api"], "updated");
    let held = moto.py(
        "out = sm.get_secret_value(SecretId='/copy/api')['SecretString']",
        json!(null),
    );
    assert_eq!(held, json!(c(10)));

    // A secret that coffer never wrote is not overwritten either.
    moto.py(
        "sm.create_secret(Name='/copy2/db', SecretString='theirs')",
        json!(null),
    );
    let theirs = sync(
        &server,
        &moto,
        &root,
        &[
            "push", "aws-sm", "--from", "app/prod", "--prefix", "/copy2/",
        ],
    )
    .expect(8);
    assert_eq!(outcomes(&theirs)["app/prod/db"], "conflict");

    // The round trip: pulling what was pushed changes nothing in coffer
    // (coffer's own history is kept; current values are equal).
    let back = sync(
        &server,
        &moto,
        &root,
        &["pull", "aws-sm", "--prefix", "/copy/", "--to", "app/prod"],
    )
    .expect(0);
    assert!(
        outcomes(&back).values().all(|o| o == "unchanged"),
        "{}",
        back.stdout()
    );

    // Human output names, never values; escapes in names are shown escaped.
    let human = server
        .cli()
        .token(&root)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .run(&[
            "sync",
            "pull",
            "aws-sm",
            "--prefix",
            "/app/prod/",
            "--to",
            "app/prod",
            "--dry-run",
        ])
        .expect(0);
    assert!(human.stdout().contains("not mapped"), "{}", human.stdout());
    assert!(human.stdout().contains("Dry run: nothing was changed."));

    let runs = [
        ("dry", &dry),
        ("first", &first),
        ("again", &again),
        ("appended", &appended),
        ("dry_push", &dry_push),
        ("pushed", &pushed),
        ("second_push", &second_push),
        ("updated", &updated),
        ("refused_dry", &refused_dry),
        ("refused", &refused),
        ("forced", &forced),
        ("theirs", &theirs),
        ("back", &back),
        ("human", &human),
    ];
    search(&mut canary, &mut key, &runs);
    canary.search_server(&server);
    key.search_server(&server);
    canary.assert_nowhere_else();
    key.assert_nowhere_else();
}

#[test]
fn parameter_store_versions_come_in_and_secure_strings_go_out() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut canary = Canary::new("sync-ssm");
    let mut key = Canary::with_value(AWS_SECRET);
    let c = |n: u32| format!("{}-{n}", canary.value);

    moto.py(
        "ssm.put_parameter(Name='/app/dev/url', Value=data[0], Type='String')\n\
         ssm.put_parameter(Name='/app/dev/url', Value=data[1], Type='String', Overwrite=True)\n\
         ssm.label_parameter_version(Name='/app/dev/url', ParameterVersion=1, Labels=['stable'])\n\
         ssm.put_parameter(Name='/app/dev/key', Value=data[2], Type='SecureString')\n\
         ssm.put_parameter(Name='/app/dev/json', Value=json.dumps({'a': data[3]}), Type='SecureString')\n\
         ssm.put_parameter(Name='/app/devx', Value='x', Type='String')\n",
        json!([c(1), c(2), c(3), c(4)]),
    );
    let pull = [
        "pull",
        "aws-ssm",
        "--prefix",
        "/app/dev/",
        "--to",
        "app/dev",
    ];
    let dry = sync(&server, &moto, &root, &[&pull[..], &["--dry-run"]].concat()).expect(0);
    let created = map(&[
        ("/app/dev/json", "created"),
        ("/app/dev/key", "created"),
        ("/app/dev/url", "created"),
    ]);
    assert_eq!(outcomes(&dry), created, "{}", dry.stdout());
    let r = server.http("GET", "/api/v1/secrets/app/dev/url", Some(&root), None);
    assert_eq!(r.status, 404);

    let first = sync(&server, &moto, &root, &pull).expect(0);
    assert_eq!(outcomes(&first), created);
    let url = first.json()["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["source"] == "/app/dev/url")
        .unwrap()
        .clone();
    assert_eq!(url["versions"], json!(["1", "2"]));
    assert!(
        url["notes"]
            .to_string()
            .contains("label stable on version 1"),
        "{url}"
    );
    assert_eq!(
        coffer_read(&server, &root, "app/dev/url", "?version=1")["value"],
        c(1)
    );
    assert_eq!(
        coffer_read(&server, &root, "app/dev/url", "")["value"],
        c(2)
    );
    assert_eq!(
        coffer_read(&server, &root, "app/dev/key", "")["value"],
        c(3)
    );
    assert_eq!(
        coffer_read(&server, &root, "app/dev/json", "")["value"],
        json!({"a": c(4)})
    );
    let again = sync(&server, &moto, &root, &pull).expect(0);
    assert!(
        outcomes(&again).values().all(|o| o == "unchanged"),
        "{}",
        again.stdout()
    );

    // Out, with hostile coffer names: `:` `@` `=` `~` are coffer's, not
    // Parameter Store's; a name starting with "aws" is reserved there.
    for (path, n) in [
        ("team/db", 5),
        ("team/a:b", 6),
        ("team/a@b", 7),
        ("team/a=b", 8),
        ("team/x~y", 9),
    ] {
        coffer_set(&server, &root, path, &c(n));
    }
    coffer_set(&server, &root, "aws/db", &c(11));
    let kms = moto.py(
        "out = kms.create_key()['KeyMetadata']['KeyId']",
        json!(null),
    );
    let kms = kms.as_str().unwrap();
    let push = [
        "push",
        "aws-ssm",
        "--from",
        "team",
        "--prefix",
        "/team/",
        "--kms-key-id",
        kms,
    ];
    let dry_push = sync(&server, &moto, &root, &[&push[..], &["--dry-run"]].concat()).expect(0);
    let want = map(&[
        ("team/a:b", "not_mapped"),
        ("team/a=b", "not_mapped"),
        ("team/a@b", "not_mapped"),
        ("team/db", "created"),
        ("team/x~y", "not_mapped"),
    ]);
    assert_eq!(outcomes(&dry_push), want, "{}", dry_push.stdout());
    let none = moto.py("out = len(ssm.describe_parameters(ParameterFilters=[{'Key': 'Name', 'Option': 'BeginsWith', 'Values': ['/team/']}])['Parameters'])", json!(null));
    assert_eq!(none, 0);
    let strict = sync(
        &server,
        &moto,
        &root,
        &[&push[..], &["--dry-run", "--strict"]].concat(),
    )
    .expect(7);
    let pushed = sync(&server, &moto, &root, &push).expect(0);
    assert_eq!(outcomes(&pushed), want);
    let cloud = moto.py(
        "p = ssm.get_parameter(Name='/team/db', WithDecryption=True)['Parameter']\n\
         tags = ssm.list_tags_for_resource(ResourceType='Parameter', ResourceId='/team/db')['TagList']\n\
         out = {'value': p['Value'], 'type': p['Type'], 'version': p['Version'], 'tags': {t['Key']: t['Value'] for t in tags}}",
        json!(null),
    );
    assert_eq!(cloud["value"], c(5));
    assert_eq!(cloud["type"], "SecureString");
    assert_eq!(cloud["tags"]["coffer:managed"], "true");
    assert_eq!(
        cloud["tags"]["coffer:synced-version"],
        cloud["version"].to_string()
    );
    let reserved = sync(
        &server,
        &moto,
        &root,
        &["push", "aws-ssm", "--from", "aws", "--prefix", "/aws/"],
    )
    .expect(0);
    assert_eq!(outcomes(&reserved), map(&[("aws/db", "not_mapped")]));

    // Again: unchanged; a coffer change: updated; a change outside: refused.
    let second = sync(&server, &moto, &root, &push).expect(0);
    assert_eq!(outcomes(&second)["team/db"], "unchanged");
    coffer_set(&server, &root, "team/db", &c(12));
    let updated = sync(&server, &moto, &root, &push).expect(0);
    assert_eq!(outcomes(&updated)["team/db"], "updated");
    moto.py(
        "ssm.put_parameter(Name='/team/db', Value=data, Type='SecureString', Overwrite=True)",
        json!(c(13)),
    );
    coffer_set(&server, &root, "team/db", &c(14));
    let refused = sync(&server, &moto, &root, &push).expect(8);
    assert_eq!(outcomes(&refused)["team/db"], "conflict");
    let held = moto.py(
        "out = ssm.get_parameter(Name='/team/db', WithDecryption=True)['Parameter']['Value']",
        json!(null),
    );
    assert_eq!(held, json!(c(13)));
    let forced = sync(&server, &moto, &root, &[&push[..], &["--force"]].concat()).expect(0);
    assert_eq!(outcomes(&forced)["team/db"], "updated");

    let runs = [
        ("dry", &dry),
        ("first", &first),
        ("again", &again),
        ("dry_push", &dry_push),
        ("strict", &strict),
        ("pushed", &pushed),
        ("reserved", &reserved),
        ("second", &second),
        ("updated", &updated),
        ("refused", &refused),
        ("forced", &forced),
    ];
    search(&mut canary, &mut key, &runs);
    canary.search_server(&server);
    key.search_server(&server);
    canary.assert_nowhere_else();
    key.assert_nowhere_else();
}

#[test]
fn credentials_come_only_from_the_standard_chain_and_bad_flags_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let bare = |args: &[&str]| {
        server
            .cli()
            .token(&root)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .env(
                "AWS_CONFIG_FILE",
                dir.path().join("no-config").to_str().unwrap(),
            )
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("no-credentials").to_str().unwrap(),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "us-east-1")
            .run(args)
    };
    // No credentials anywhere in the chain: denied, said plainly.
    let none = bare(&[
        "sync",
        "pull",
        "aws-sm",
        "--prefix",
        "/a/",
        "--to",
        "a",
        "--endpoint-url",
        &moto.url,
    ])
    .expect(4);
    assert!(
        none.stderr().contains("no AWS credentials"),
        "{}",
        none.stderr()
    );
    // There is no flag for a credential, and an endpoint with one is refused.
    let flag = bare(&[
        "sync",
        "pull",
        "aws-sm",
        "--prefix",
        "/a/",
        "--to",
        "a",
        "--aws-secret-access-key",
        "x",
    ])
    .expect(2);
    assert!(
        flag.stderr().contains("unexpected argument"),
        "{}",
        flag.stderr()
    );
    let userinfo = bare(&[
        "sync",
        "pull",
        "aws-sm",
        "--prefix",
        "/a/",
        "--to",
        "a",
        "--endpoint-url",
        "http://AKIA:secret@127.0.0.1:1",
    ])
    .expect(2);
    assert!(
        !userinfo.stderr().contains("secret@"),
        "{}",
        userinfo.stderr()
    );
    // A bad coffer folder is a usage error; nothing is read or written.
    bare(&[
        "sync",
        "pull",
        "aws-sm",
        "--prefix",
        "/a/",
        "--to",
        "../x",
        "--endpoint-url",
        &moto.url,
    ])
    .expect(2);
    bare(&[
        "sync",
        "push",
        "aws-sm",
        "--prefix",
        "/a/",
        "--from",
        "a//b",
        "--endpoint-url",
        &moto.url,
    ])
    .expect(2);
    // From the profile files (the standard chain), it works.
    std::fs::write(
        dir.path().join("creds"),
        format!("[default]\naws_access_key_id = testing\naws_secret_access_key = {AWS_SECRET}\n"),
    )
    .unwrap();
    let from_profile = server
        .cli()
        .token(&root)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("creds").to_str().unwrap(),
        )
        .env(
            "AWS_CONFIG_FILE",
            dir.path().join("no-config").to_str().unwrap(),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .run(&[
            "sync",
            "push",
            "aws-ssm",
            "--from",
            "a",
            "--prefix",
            "/a/",
            "--region",
            "us-east-1",
            "--endpoint-url",
            &moto.url,
            "--json",
        ])
        .expect(0);
    assert_eq!(from_profile.json()["secrets"], json!([]));
    let mut key = Canary::with_value(AWS_SECRET);
    for (name, run) in [
        ("none", &none),
        ("flag", &flag),
        ("userinfo", &userinfo),
        ("from_profile", &from_profile),
    ] {
        key.search_run(name, run);
    }
    key.search_server(&server);
    key.assert_nowhere_else();
}

/// A `coffer sync` run whose AWS settings come only from the shared files
/// in `home` (no AWS_* credential, region or endpoint in the environment).
fn sync_in_home(
    server: &Server,
    home: &Path,
    token: &str,
    extra_env: &[(&str, &str)],
    args: &[&str],
) -> Run {
    let mut cli = common::Cli::new(&server.addr, home).token(token);
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ] {
        cli = cli.env_remove(k);
    }
    cli = cli.env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in extra_env {
        cli = cli.env(k, v);
    }
    let mut all = vec!["sync"];
    all.extend_from_slice(args);
    all.push("--json");
    cli.run(&all)
}

/// `--profile NAME` and `AWS_PROFILE` pick a profile of `~/.aws/config`
/// and `~/.aws/credentials` (region, endpoint and keys all from the files);
/// an unknown profile, and hostile profile names (a path, control
/// characters, an option-like name), are refused before any request, and
/// no run shows the secret key. (An SSO profile goes through the SDK's
/// `sso` provider, which needs the IAM Identity Center portal: it cannot be
/// reached offline, so only the shared-files path is run here.)
#[test]
fn named_profiles_from_the_shared_files() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut key = Canary::with_value(AWS_SECRET);
    let home = tempfile::tempdir().unwrap();
    let aws = home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("config"),
        format!(
            "[default]\nregion = eu-nowhere-1\n\n[profile coffer-moto]\nregion = us-east-1\nendpoint_url = {}\n",
            moto.url
        ),
    )
    .unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[coffer-moto]\naws_access_key_id = testing\naws_secret_access_key = {AWS_SECRET}\n"
        ),
    )
    .unwrap();
    coffer_set(&server, &root, "team/prod/API_KEY", "profile-pushed-value");

    let push = [
        "push",
        "aws-ssm",
        "--from",
        "team/prod",
        "--prefix",
        "/team/prod/",
    ];
    let by_flag = sync_in_home(
        &server,
        home.path(),
        &root,
        &[],
        &[&push[..], &["--profile", "coffer-moto"]].concat(),
    )
    .expect(0);
    assert_eq!(
        outcomes(&by_flag),
        map(&[("team/prod/API_KEY", "created")]),
        "{}",
        by_flag.stdout()
    );
    let by_env = sync_in_home(
        &server,
        home.path(),
        &root,
        &[("AWS_PROFILE", "coffer-moto")],
        &push,
    )
    .expect(0);
    assert_eq!(
        outcomes(&by_env),
        map(&[("team/prod/API_KEY", "unchanged")]),
        "{}",
        by_env.stdout()
    );
    let cloud = moto.py("out = ssm.get_parameter(Name='/team/prod/API_KEY', WithDecryption=True)['Parameter']['Value']", json!(null));
    assert_eq!(cloud, "profile-pushed-value");

    // A profile the files do not have: no credentials, said plainly.
    let unknown = sync_in_home(
        &server,
        home.path(),
        &root,
        &[],
        &[&push[..], &["--profile", "no-such-profile"]].concat(),
    );
    assert_ne!(unknown.code(), 0, "{}", unknown.stdout());
    // Hostile names never reach the SDK.
    for hostile in [
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        ".hidden",
        "a/b",
        "a\\b",
        "evil\nname",
        "evil\u{1b}[31m",
        "\u{202e}txt",
        "name with space",
        "",
        &"p".repeat(129),
    ] {
        let r = sync_in_home(
            &server,
            home.path(),
            &root,
            &[],
            &[&push[..], &["--profile", hostile]].concat(),
        );
        assert_eq!(r.code(), 2, "--profile {hostile:?}: {}", r.stderr());
        assert!(r.stderr().contains("profile name"), "{}", r.stderr());
        assert!(
            !hostile.is_empty() && !r.stderr().contains(hostile) || hostile.is_empty(),
            "the name is not echoed: {}",
            r.stderr()
        );
        let r = sync_in_home(
            &server,
            home.path(),
            &root,
            &[("AWS_PROFILE", hostile)],
            &push,
        );
        if !hostile.is_empty() {
            assert_eq!(r.code(), 2, "AWS_PROFILE={hostile:?}: {}", r.stderr());
            assert!(r.stderr().contains("AWS_PROFILE"), "{}", r.stderr());
        }
    }
    key.search_run("by_flag", &by_flag);
    key.search_run("by_env", &by_env);
    key.search_run("unknown", &unknown);
    key.search_server(&server);
    key.assert_nowhere_else();
}

/// `push --versions labels`: Secrets Manager ends with coffer's current as
/// AWSCURRENT, its previous as AWSPREVIOUS and its staged pending as
/// AWSPENDING; a second run changes nothing; a dry run names changes,
/// never values; after a promotion the labels follow; Parameter Store
/// refuses the mode.
#[test]
fn secrets_manager_gets_coffer_labels_on_push() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut canary = Canary::new("sync-labels");
    let mut key = Canary::with_value(AWS_SECRET);
    let c = |n: u32| format!("{}-{n}", canary.value);
    let path = "lab/prod/KEY";
    coffer_set(&server, &root, path, &c(1));
    coffer_set(&server, &root, path, &c(2));
    let body = json!({"value": c(3), "stage": true}).to_string();
    let staged = server.http(
        "POST",
        &format!("/api/v1/rotate/{path}"),
        Some(&root),
        Some(body.as_bytes()),
    );
    assert!(staged.status < 300, "{}", staged.text());

    let push = [
        "push",
        "aws-sm",
        "--from",
        "lab/prod",
        "--prefix",
        "/lab/prod/",
        "--versions",
        "labels",
    ];
    let dry = sync(&server, &moto, &root, &[&push[..], &["--dry-run"]].concat()).expect(0);
    assert_eq!(
        outcomes(&dry),
        map(&[(path, "created")]),
        "{}",
        dry.stdout()
    );
    assert!(dry.stdout().contains("AWSPENDING"), "{}", dry.stdout());
    let none = moto.py("out = len(sm.list_secrets()['SecretList'])", json!(null));
    assert_eq!(none, 0, "a dry run creates nothing");

    let stages_py = "vs = sm.list_secret_version_ids(SecretId='/lab/prod/KEY', IncludeDeprecated=True)['Versions']\n\
                     out = {}\n\
                     for v in vs:\n\
                     \x20   val = sm.get_secret_value(SecretId='/lab/prod/KEY', VersionId=v['VersionId'])['SecretString']\n\
                     \x20   for s in v.get('VersionStages', []):\n\
                     \x20       out[s] = val\n";
    let first = sync(&server, &moto, &root, &push).expect(0);
    assert_eq!(
        outcomes(&first),
        map(&[(path, "created")]),
        "{}",
        first.stdout()
    );
    let stages = moto.py(stages_py, json!(null));
    assert_eq!(stages["AWSPREVIOUS"], c(1), "{stages}");
    assert_eq!(stages["AWSCURRENT"], c(2), "{stages}");
    assert_eq!(stages["AWSPENDING"], c(3), "{stages}");

    let again = sync(&server, &moto, &root, &push).expect(0);
    assert_eq!(
        outcomes(&again),
        map(&[(path, "unchanged")]),
        "{}",
        again.stdout()
    );
    assert_eq!(moto.py(stages_py, json!(null)), stages);

    // The staged version is promoted in coffer: the labels follow.
    let promoted = server.http(
        "POST",
        &format!("/api/v1/promote/{path}"),
        Some(&root),
        None,
    );
    assert!(promoted.status < 300, "{}", promoted.text());
    let moved = sync(&server, &moto, &root, &push).expect(0);
    assert_eq!(
        outcomes(&moved),
        map(&[(path, "updated")]),
        "{}",
        moved.stdout()
    );
    let stages = moto.py(stages_py, json!(null));
    assert_eq!(stages["AWSCURRENT"], c(3), "{stages}");
    assert_eq!(stages["AWSPREVIOUS"], c(2), "{stages}");
    assert!(stages.get("AWSPENDING").is_none(), "{stages}");
    let still = sync(&server, &moto, &root, &push).expect(0);
    assert_eq!(
        outcomes(&still),
        map(&[(path, "unchanged")]),
        "{}",
        still.stdout()
    );

    let ssm = sync(
        &server,
        &moto,
        &root,
        &[
            "push",
            "aws-ssm",
            "--from",
            "lab/prod",
            "--prefix",
            "/lab/prod/",
            "--versions",
            "labels",
        ],
    );
    assert_eq!(ssm.code(), 2, "{}", ssm.stderr());

    search(
        &mut canary,
        &mut key,
        &[
            ("dry", &dry),
            ("first", &first),
            ("again", &again),
            ("moved", &moved),
            ("still", &still),
            ("ssm", &ssm),
        ],
    );
    canary.search_server(&server);
    key.search_server(&server);
    canary.assert_nowhere_else();
    key.assert_nowhere_else();
}

/// `push --versions labels` does not trust a `coffer-vN` label: a value
/// planted under coffer's next or current marker makes the push refuse
/// (exit 8, the path and label named, never a value) and move nothing; a
/// dry run reads no coffer value and says it would verify; `--force`
/// replaces the planted version with coffer's value.
#[test]
fn planted_coffer_markers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut canary = Canary::new("sync-planted");
    let mut key = Canary::with_value(AWS_SECRET);
    let c = |n: u32| format!("{}-{n}", canary.value);
    let planted = "attacker-planted-value-0b7e";
    let path = "pl/prod/KEY";
    let push = [
        "push",
        "aws-sm",
        "--from",
        "pl/prod",
        "--prefix",
        "/pl/prod/",
        "--versions",
        "labels",
    ];
    let stages_py = "vs = sm.list_secret_version_ids(SecretId='/pl/prod/KEY', IncludeDeprecated=True)['Versions']\n\
                     out = {}\n\
                     for v in vs:\n\
                     \x20   val = sm.get_secret_value(SecretId='/pl/prod/KEY', VersionId=v['VersionId'])['SecretString']\n\
                     \x20   for s in v.get('VersionStages', []):\n\
                     \x20       out[s] = val\n";
    let plant = |label: &str| {
        moto.py(
            "sm.put_secret_value(SecretId='/pl/prod/KEY', SecretString=data['v'], VersionStages=[data['l']])",
            json!({"v": planted, "l": label}),
        );
    };
    coffer_set(&server, &root, path, &c(1));
    coffer_set(&server, &root, path, &c(2));
    let first = sync(&server, &moto, &root, &push).expect(0);
    assert_eq!(
        outcomes(&first),
        map(&[(path, "created")]),
        "{}",
        first.stdout()
    );

    // Planted under the next version's marker, then coffer writes v3.
    plant("coffer-v3");
    coffer_set(&server, &root, path, &c(3));
    let before = moto.py(stages_py, json!(null));
    assert_eq!(before["AWSCURRENT"], c(2), "{before}");
    assert_eq!(before["coffer-v3"], planted, "{before}");
    let refused = sync(&server, &moto, &root, &push);
    assert_eq!(
        refused.code(),
        8,
        "{}\n{}",
        refused.stdout(),
        refused.stderr()
    );
    assert_eq!(
        outcomes(&refused),
        map(&[(path, "conflict")]),
        "{}",
        refused.stdout()
    );
    assert!(
        refused.stdout().contains("coffer-v3"),
        "{}",
        refused.stdout()
    );
    assert!(!refused.stdout().contains(planted) && !refused.stderr().contains(planted));
    assert_eq!(moto.py(stages_py, json!(null)), before, "nothing moved");

    // A dry run reads no coffer value: it says it would verify.
    let dry = sync(&server, &moto, &root, &[&push[..], &["--dry-run"]].concat()).expect(0);
    assert!(dry.stdout().contains("would verify"), "{}", dry.stdout());
    assert_eq!(
        moto.py(stages_py, json!(null)),
        before,
        "a dry run moves nothing"
    );

    // --force: coffer's value replaces the planted one under the marker.
    let forced = sync(&server, &moto, &root, &[&push[..], &["--force"]].concat()).expect(0);
    assert_eq!(
        outcomes(&forced),
        map(&[(path, "updated")]),
        "{}",
        forced.stdout()
    );
    let after = moto.py(stages_py, json!(null));
    assert_eq!(after["AWSCURRENT"], c(3), "{after}");
    assert_eq!(after["coffer-v3"], c(3), "{after}");
    assert_eq!(after["AWSPREVIOUS"], c(2), "{after}");

    // Planted under the current version's marker, AWSCURRENT left alone.
    plant("coffer-v3");
    let before = moto.py(stages_py, json!(null));
    assert_eq!(before["AWSCURRENT"], c(3), "{before}");
    let refused_current = sync(&server, &moto, &root, &push);
    assert_eq!(refused_current.code(), 8, "{}", refused_current.stdout());
    assert_eq!(moto.py(stages_py, json!(null)), before, "nothing moved");

    search(
        &mut canary,
        &mut key,
        &[
            ("first", &first),
            ("refused", &refused),
            ("dry", &dry),
            ("forced", &forced),
            ("refused_current", &refused_current),
        ],
    );
    canary.search_server(&server);
    key.search_server(&server);
    canary.assert_nowhere_else();
    key.assert_nowhere_else();
}
