//! Nothing readable at rest: after storing canary values (text, fields,
//! several versions, deleted and destroyed ones), no file in the data
//! directory (database, WAL, shared memory) contains a canary or a raw token;
//! neither do the server's logs nor any command's output but `get`'s.

use crate::common;

use common::{Mode, Server, contains, files_under, read_listed};

const CANARIES: &[&str] = &[
    "CANARY-text-5d1f0e2b",
    "CANARY-field-99ab31c7",
    "CANARY-old-version-0c4d",
    "CANARY-destroyed-77e1",
];

fn assert_clean(server: &Server, tokens: &[&str], when: &str) {
    for file in files_under(&server.data_dir()) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        // The dev root token and unseal key files are where those belong.
        if name == "root-token" || name == "unseal-key" {
            continue;
        }
        let Some(bytes) = read_listed(&file) else {
            continue;
        };
        for c in CANARIES {
            assert!(
                !contains(&bytes, c.as_bytes()),
                "{when}: {c} found in {}",
                file.display()
            );
        }
        for t in tokens {
            assert!(
                !contains(&bytes, t.as_bytes()),
                "{when}: a raw token found in {}",
                file.display()
            );
        }
    }
    let logs = server.logs();
    for c in CANARIES {
        assert!(!logs.contains(c), "{when}: {c} found in the server log");
    }
    for t in tokens {
        assert!(
            !logs.contains(t),
            "{when}: a raw token found in the server log"
        );
    }
}

#[test]
fn no_canary_or_token_on_disk_or_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let token = server.root_token();
    let cli = || server.cli().token(&token);
    let mut outputs = Vec::new();

    outputs.push(
        cli()
            .stdin(CANARIES[2])
            .run(&["set", "app/prod/KEY"])
            .expect(0),
    );
    outputs.push(
        cli()
            .stdin(CANARIES[0])
            .run(&["set", "app/prod/KEY", "--json"])
            .expect(0),
    );
    let fields = format!(r#"{{"user":"svc","password":"{}"}}"#, CANARIES[1]);
    outputs.push(
        cli()
            .stdin(&fields)
            .run(&["set", "app/prod/DB", "--fields"])
            .expect(0),
    );
    outputs.push(
        cli()
            .stdin(CANARIES[3])
            .run(&["set", "app/prod/GONE"])
            .expect(0),
    );
    outputs.push(cli().run(&["rm", "app/prod/GONE", "--destroy"]).expect(0));
    outputs.push(
        cli()
            .run(&["rm", "app/prod/KEY", "--version", "1"])
            .expect(0),
    );
    outputs.push(cli().run(&["ls", "app", "-r", "--json"]).expect(0));
    outputs.push(cli().run(&["history", "app/prod/KEY", "--json"]).expect(0));
    outputs.push(cli().run(&["history", "app/prod/KEY"]).expect(0));
    outputs.push(cli().run(&["status", "--json"]).expect(0));
    outputs.push(cli().run(&["operator", "rotate"]).expect(0));
    // Error paths too: a write that is refused, a read of a deleted version.
    outputs.push(
        cli()
            .stdin(CANARIES[0])
            .run(&["set", "app/prod/KEY", "--cas", "1"])
            .expect(8),
    );
    outputs.push(
        cli()
            .stdin(CANARIES[0])
            .run(&["set", "bad//path"])
            .expect(7),
    );
    outputs.push(
        cli()
            .run(&["get", "app/prod/KEY", "--version", "1"])
            .expect(3),
    );
    outputs.push(
        server
            .cli()
            .token(&format!("{token}junk"))
            .run(&["get", "app/prod/KEY"])
            .expect(4),
    );
    // Login writes the token to the user's file (where it belongs), but never prints it.
    outputs.push(server.cli().stdin(&token).run(&["login"]).expect(0));

    for o in &outputs {
        for c in CANARIES {
            assert!(
                !o.stdout().contains(c) && !o.stderr().contains(c),
                "coffer {:?} printed {c}",
                o.args
            );
        }
        assert!(
            !o.stdout().contains(&token) && !o.stderr().contains(&token),
            "coffer {:?} printed the token",
            o.args
        );
    }
    // The reads that should work do.
    assert_eq!(
        cli().run(&["get", "app/prod/KEY"]).expect(0).stdout(),
        CANARIES[0]
    );
    assert_eq!(
        cli()
            .run(&["get", "app/prod/DB", "--field", "password"])
            .expect(0)
            .stdout(),
        CANARIES[1]
    );

    assert_clean(&server, &[&token], "while running (WAL not checkpointed)");
    server.kill9();
    let server = Server::start(dir.path(), Mode::Dev);
    assert_clean(&server, &[&token], "after kill -9 and restart");
    assert!(server.stop().success());
    let server = Server::start(dir.path(), Mode::Dev);
    assert_clean(&server, &[&token], "after a clean stop (WAL checkpointed)");
}
