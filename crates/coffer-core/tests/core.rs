//! The use cases end to end over a real SQLite store.

use std::collections::BTreeMap;
use std::sync::Arc;

use coffer_core::{
    Coffer, Conflict, CoreError, CoreOptions, Identity, ListOptions, NotFound, Refusal, SecretValue,
};
use coffer_crypto::SecretString;
use coffer_store::{SqliteStore, Storage, VersionState};

struct Fixture {
    dir: tempfile::TempDir,
    coffer: Coffer,
}

async fn open(dir: &std::path::Path) -> Coffer {
    let store: Arc<dyn Storage> = Arc::new(SqliteStore::open(&dir.join("coffer.db")).unwrap());
    Coffer::open(store, CoreOptions::default()).await.unwrap()
}

/// An initialised, unsealed coffer, its root identity, unseal keys and raw root token.
async fn unsealed_with_token() -> (Fixture, Identity, Vec<SecretString>, SecretString) {
    let dir = tempfile::tempdir().unwrap();
    let coffer = open(dir.path()).await;
    let init = coffer.init(1, 1).await.unwrap();
    coffer
        .unseal(init.unseal_keys[0].expose_secret())
        .await
        .unwrap();
    let root = coffer
        .authenticate(init.root_token.expose_secret(), None)
        .await
        .unwrap();
    (
        Fixture { dir, coffer },
        root,
        init.unseal_keys,
        init.root_token,
    )
}

async fn unsealed() -> (Fixture, Identity, Vec<SecretString>) {
    let (fx, root, keys, _) = unsealed_with_token().await;
    (fx, root, keys)
}

fn text(s: &str) -> SecretValue {
    SecretValue::Text(SecretString::from(s))
}

fn as_text(v: &SecretValue) -> &str {
    match v {
        SecretValue::Text(t) => t.expose_secret(),
        SecretValue::Fields(_) => panic!("expected text"),
    }
}

fn combinations(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![vec![]];
    }
    if n < k {
        return vec![];
    }
    let mut out = combinations(n - 1, k);
    for mut c in combinations(n - 1, k - 1) {
        c.push(n - 1);
        out.push(c);
    }
    out
}

#[tokio::test]
async fn every_threshold_combination_unseals_and_fewer_do_not() {
    for n in 1..=5u8 {
        for t in 1..=n {
            let dir = tempfile::tempdir().unwrap();
            let coffer = open(dir.path()).await;
            let init = coffer.init(n, t).await.unwrap();
            assert_eq!(init.unseal_keys.len(), n as usize);
            let root = init.root_token;
            for combo in combinations(n as usize, t as usize) {
                let mut last = None;
                for &i in &combo {
                    last = Some(
                        coffer
                            .unseal(init.unseal_keys[i].expose_secret())
                            .await
                            .unwrap_or_else(|e| panic!("n={n} t={t} {combo:?}: {e}")),
                    );
                }
                assert!(!last.unwrap().sealed, "n={n} t={t} {combo:?} should unseal");
                let id = coffer
                    .authenticate(root.expose_secret(), None)
                    .await
                    .unwrap();
                coffer.seal(&id).await.unwrap();
            }
            if t >= 2 {
                for combo in combinations(n as usize, t as usize - 1) {
                    for &i in &combo {
                        let s = coffer
                            .unseal(init.unseal_keys[i].expose_secret())
                            .await
                            .unwrap();
                        assert!(s.sealed, "n={n} t={t} {combo:?} must stay sealed");
                    }
                    assert_eq!(coffer.status().progress as usize, combo.len());
                    coffer.unseal_reset().await;
                }
            }
        }
    }
}

#[tokio::test]
async fn wrong_or_repeated_shares_are_refused_and_cannot_spoil_progress() {
    let dir = tempfile::tempdir().unwrap();
    let coffer = open(dir.path()).await;
    let init = coffer.init(3, 2).await.unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = open(other_dir.path()).await;
    let foreign = other.init(3, 2).await.unwrap();

    // Garbage is refused without counting as progress.
    for bad in ["", "not base64!", "AA==", "   "] {
        assert!(matches!(
            coffer.unseal(bad).await,
            Err(CoreError::InvalidUnsealKey(_))
        ));
    }
    assert_eq!(coffer.status().progress, 0);

    let operator: Option<std::net::IpAddr> = Some("192.0.2.1".parse().unwrap());
    let attacker: Option<std::net::IpAddr> = Some("198.51.100.7".parse().unwrap());
    // The same share twice from one source is refused.
    coffer
        .unseal_from(init.unseal_keys[0].expose_secret(), operator)
        .await
        .unwrap();
    assert!(matches!(
        coffer
            .unseal_from(init.unseal_keys[0].expose_secret(), operator)
            .await,
        Err(CoreError::InvalidUnsealKey(_))
    ));
    // Someone else's wrong share completes the threshold but does not open
    // it, and does not throw the operator's share away.
    let err = coffer
        .unseal_from(foreign.unseal_keys[1].expose_secret(), attacker)
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::InvalidUnsealKey(_)));
    assert!(coffer.status().sealed);
    // Nor can they reset it: a reset withdraws only the resetter's shares.
    coffer.unseal_reset_from(attacker).await.unwrap();
    coffer
        .unseal_from(foreign.unseal_keys[2].expose_secret(), attacker)
        .await
        .unwrap_err();
    assert_eq!(coffer.status().progress, 2);
    // The operator's next share opens it, whatever else is pending.
    assert!(
        !coffer
            .unseal_from(init.unseal_keys[1].expose_secret(), operator)
            .await
            .unwrap()
            .sealed
    );
}

#[tokio::test]
async fn sealed_and_uninitialized_coffer_refuses_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let coffer = open(dir.path()).await;
    assert!(matches!(
        coffer.authenticate("cft_x", None).await,
        Err(CoreError::NotInitialized)
    ));
    assert!(!coffer.status().initialized);
    let init = coffer.init(1, 1).await.unwrap();
    assert!(matches!(
        coffer.init(1, 1).await,
        Err(CoreError::AlreadyInitialized)
    ));
    assert!(matches!(
        coffer
            .authenticate(init.root_token.expose_secret(), None)
            .await,
        Err(CoreError::Sealed)
    ));
}

#[tokio::test]
async fn restart_comes_up_sealed_with_data_intact() {
    let (fx, root, keys, raw_token) = unsealed_with_token().await;
    fx.coffer
        .write(&root, "app/dev/DB", &text("v1-canary"), None)
        .await
        .unwrap();
    fx.coffer.close().await.unwrap();
    let Fixture { dir, coffer } = fx;
    drop(coffer);

    let coffer = open(dir.path()).await;
    let status = coffer.status();
    assert!(status.initialized && status.sealed);
    assert!(matches!(
        coffer.authenticate(raw_token.expose_secret(), None).await,
        Err(CoreError::Sealed)
    ));
    coffer.unseal(keys[0].expose_secret()).await.unwrap();
    let root = coffer
        .authenticate(raw_token.expose_secret(), None)
        .await
        .unwrap();
    let read = coffer.read(&root, "app/dev/DB", None).await.unwrap();
    assert_eq!(as_text(&read.value), "v1-canary");
}

#[tokio::test]
async fn versions_history_delete_undelete_destroy() {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    for (i, v) in ["one", "two", "three"].iter().enumerate() {
        let r = c
            .write(&root, "/app/dev/KEY", &text(v), None)
            .await
            .unwrap();
        assert_eq!(r.version, i as u64 + 1);
        assert_eq!(r.path, "app/dev/KEY");
    }
    assert_eq!(
        as_text(&c.read(&root, "app/dev/KEY", None).await.unwrap().value),
        "three"
    );
    let v1 = c.read(&root, "app/dev/KEY", Some(1)).await.unwrap();
    assert_eq!(
        (
            as_text(&v1.value),
            v1.version,
            v1.created_by.name.as_str(),
            v1.created_by.kind.as_deref(),
            v1.created_by.accessor.as_deref()
        ),
        ("one", 1, "root", Some("service"), Some(root.accessor()))
    );
    assert!(matches!(
        c.read(&root, "app/dev/KEY", Some(9)).await,
        Err(CoreError::NotFound(_))
    ));

    // Check-and-set.
    assert!(matches!(
        c.write(&root, "app/dev/KEY", &text("x"), Some(2)).await,
        Err(CoreError::Conflict(_))
    ));
    assert!(matches!(
        c.write(&root, "app/dev/NEW", &text("x"), Some(1)).await,
        Err(CoreError::Conflict(_))
    ));
    c.write(&root, "app/dev/NEW", &text("x"), Some(0))
        .await
        .unwrap();

    c.delete(&root, "app/dev/KEY", &[]).await.unwrap();
    let err = c.read(&root, "app/dev/KEY", None).await.err().unwrap();
    assert!(
        matches!(
            &err,
            CoreError::NotFound(NotFound::CurrentDeleted { path, version: 3 }) if path == "app/dev/KEY"
        ) && err.to_string() == "app/dev/KEY is deleted (version 3 was deleted or destroyed)",
        "{err}"
    );
    assert_eq!(
        as_text(&c.read(&root, "app/dev/KEY", Some(2)).await.unwrap().value),
        "two"
    );
    let listed = c
        .list(&root, "app/dev", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(
        listed.entries.len(),
        1,
        "deleted secrets leave the default listing"
    );

    c.undelete(&root, "app/dev/KEY", &[3]).await.unwrap();
    assert_eq!(
        as_text(&c.read(&root, "app/dev/KEY", None).await.unwrap().value),
        "three"
    );

    c.destroy(&root, "app/dev/KEY", &[1]).await.unwrap();
    assert!(matches!(
        c.read(&root, "app/dev/KEY", Some(1)).await,
        Err(CoreError::NotFound(ref m @ NotFound::VersionDestroyed { version: 1, .. }))
            if m.to_string() == "version 1 of app/dev/KEY was destroyed"
    ));
    let md = c.metadata(&root, "app/dev/KEY").await.unwrap();
    assert_eq!(md.meta.current_version, 3);
    assert!(matches!(md.versions[0].state, VersionState::Destroyed(_)));
    assert_eq!(md.versions[1].state, VersionState::Active);
    assert!(matches!(
        c.delete(&root, "app/dev/KEY", &[7]).await,
        Err(CoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn fields_values_round_trip_and_limits_apply() {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    let fields = SecretValue::Fields(BTreeMap::from([
        ("username".to_string(), SecretString::from("app")),
        ("password".to_string(), SecretString::from("pw")),
    ]));
    c.write(&root, "db/prod/creds", &fields, None)
        .await
        .unwrap();
    match c.read(&root, "db/prod/creds", None).await.unwrap().value {
        SecretValue::Fields(f) => {
            assert_eq!(f["username"].expose_secret(), "app");
            assert_eq!(f["password"].expose_secret(), "pw");
        }
        SecretValue::Text(_) => panic!("expected fields"),
    }
    let big = "x".repeat(64 * 1024 + 1);
    assert!(matches!(
        c.write(&root, "big/one", &text(&big), None).await,
        Err(CoreError::TooLarge { limit: 65536, .. })
    ));
    c.write(&root, "big/one", &text(&big[1..]), None)
        .await
        .unwrap();
    for bad in ["a//b", "../x", "a/b/", "a b"] {
        assert!(matches!(
            c.write(&root, bad, &text("v"), None).await,
            Err(CoreError::Path(_))
        ));
    }
    assert!(c.store().get_meta("big").await.unwrap().is_none());
}

/// Edits the database behind coffer's back, the way an attacker with the file would.
fn tamper(db: &std::path::Path, edit: impl FnOnce(&rusqlite::Connection)) {
    let conn = rusqlite::Connection::open(db).unwrap();
    edit(&conn);
}

fn ciphertext(conn: &rusqlite::Connection, path: &str, version: u64) -> Vec<u8> {
    conn.query_row(
        "SELECT ciphertext FROM versions WHERE path = ?1 AND version = ?2",
        rusqlite::params![path, version as i64],
        |r| r.get(0),
    )
    .unwrap()
}

fn set_ciphertext(conn: &rusqlite::Connection, path: &str, version: u64, ct: &[u8]) {
    let n = conn
        .execute(
            "UPDATE versions SET ciphertext = ?3 WHERE path = ?1 AND version = ?2",
            rusqlite::params![path, version as i64, ct],
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn tampered_or_moved_ciphertext_is_detected_not_served() {
    let (fx, root, keys, raw) = unsealed_with_token().await;
    for (path, value) in [
        ("t/a", "alpha"),
        ("t/b", "bravo"),
        ("t/a", "alpha2"),
        ("t/c", "charlie"),
    ] {
        fx.coffer
            .write(&root, path, &text(value), None)
            .await
            .unwrap();
    }
    fx.coffer.close().await.unwrap();
    let Fixture { dir, coffer } = fx;
    drop(coffer);
    let db = dir.path().join("coffer.db");
    tamper(&db, |conn| {
        // One flipped bit in the middle of a's first version.
        let mut ct = ciphertext(conn, "t/a", 1);
        let mid = ct.len() / 2;
        ct[mid] ^= 1;
        set_ciphertext(conn, "t/a", 1, &ct);
        // b's ciphertext copied over c: valid bytes, wrong path.
        let b = ciphertext(conn, "t/b", 1);
        set_ciphertext(conn, "t/c", 1, &b);
        // a's version 2 copied over b's version 1: valid bytes, wrong path and version.
        let a2 = ciphertext(conn, "t/a", 2);
        set_ciphertext(conn, "t/b", 1, &a2);
    });

    let coffer = open(dir.path()).await;
    coffer.unseal(keys[0].expose_secret()).await.unwrap();
    let root = coffer
        .authenticate(raw.expose_secret(), None)
        .await
        .unwrap();
    for (path, version) in [("t/a", Some(1)), ("t/c", None), ("t/b", None)] {
        match coffer.read(&root, path, version).await {
            Err(CoreError::Corrupt(m)) => assert!(m.to_string().contains("integrity"), "{m}"),
            Err(e) => panic!("{path}: unexpected error {e}"),
            Ok(_) => panic!("{path}: tampered ciphertext was served"),
        }
    }
    // Untouched data still reads.
    assert_eq!(
        as_text(&coffer.read(&root, "t/a", None).await.unwrap().value),
        "alpha2"
    );
}

#[tokio::test]
async fn tampered_keyring_refuses_to_unseal() {
    let (fx, _root, keys, _raw) = unsealed_with_token().await;
    fx.coffer.close().await.unwrap();
    let Fixture { dir, coffer } = fx;
    drop(coffer);
    tamper(&dir.path().join("coffer.db"), |conn| {
        let mut k: Vec<u8> = conn
            .query_row("SELECT value FROM system WHERE key = 'keyring'", [], |r| {
                r.get(0)
            })
            .unwrap();
        let last = k.len() - 1;
        k[last] ^= 0x80;
        conn.execute("UPDATE system SET value = ?1 WHERE key = 'keyring'", [k])
            .unwrap();
    });
    let coffer = open(dir.path()).await;
    assert!(matches!(
        coffer.unseal(keys[0].expose_secret()).await,
        Err(CoreError::Corrupt(_))
    ));
    assert!(coffer.status().sealed);
}

#[tokio::test]
async fn keyring_rotation_keeps_old_versions_readable() {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    c.write(&root, "r/x", &text("before"), None).await.unwrap();
    let status = c.rotate_keyring(&root).await.unwrap();
    assert_eq!(status.active_key, 2);
    assert_eq!(status.keys.len(), 2);
    c.write(&root, "r/x", &text("after"), None).await.unwrap();
    let md = c.metadata(&root, "r/x").await.unwrap();
    assert_eq!(
        md.versions.iter().map(|v| v.key_id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        as_text(&c.read(&root, "r/x", Some(1)).await.unwrap().value),
        "before"
    );
    assert_eq!(
        as_text(&c.read(&root, "r/x", None).await.unwrap().value),
        "after"
    );
}

#[tokio::test]
async fn sweeping_deletes_only_what_expired() {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    c.write_policy(&root, "dev", r#"path "app/*" { capabilities = ["read"] }"#)
        .await
        .unwrap();
    let invite = |ttl: &str| coffer_core::InviteRequest {
        policies: vec!["dev".into()],
        ttl: Some(ttl.into()),
    };
    let (_short, _) = c.create_invite(&root, &invite("1s")).await.unwrap();
    let (long, _) = c.create_invite(&root, &invite("1h")).await.unwrap();
    // A failed login leaves a counter; it is recent, so it stays.
    let failed = c
        .login(&coffer_core::LoginRequest {
            user: "ghost",
            password: "not the password at all",
            totp: None,
        })
        .await;
    assert!(matches!(failed, Err(CoreError::LoginFailed(_))));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let report = c.sweep_expired().await.unwrap();
    assert_eq!(report.invites, 1);
    assert_eq!(report.login_failures, 0);
    assert_eq!(report.grants, 0);
    // Nothing left to do the second time; the live invitation still works.
    assert_eq!(
        c.sweep_expired().await.unwrap(),
        coffer_core::SweepReport::default()
    );
    c.accept_invite(long.expose_secret(), "erin", "a long enough password")
        .await
        .unwrap();
    // The root token never expires and survives every sweep.
    assert!(c.lookup_token(&root, None).await.is_ok());
}

#[tokio::test]
async fn a_name_past_its_failure_ceiling_is_paced_not_locked() {
    let (fx, _root, _) = unsealed().await;
    let c = &fx.coffer;
    let attempt = || {
        c.login(&coffer_core::LoginRequest {
            user: "ghost",
            password: "not the password at all",
            totp: None,
        })
    };
    for i in 0..coffer_core::MAX_FAILED_LOGINS {
        assert!(
            matches!(attempt().await, Err(CoreError::LoginFailed(_))),
            "failure {i}"
        );
    }
    // Right after the last failure: wait.
    assert!(matches!(attempt().await, Err(CoreError::RateLimited(_))));
    // Once the pace has passed, exactly one of many simultaneous attempts
    // is tried; the rest wait (the slot is taken in the store, so this
    // holds across nodes too).
    tokio::time::sleep(std::time::Duration::from_millis(
        coffer_core::LOGIN_PACE_MS as u64 + 100,
    ))
    .await;
    let (a, b, c1, d, e, f, g, h) = tokio::join!(
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt()
    );
    let all = [a, b, c1, d, e, f, g, h];
    let tried = all
        .iter()
        .filter(|r| matches!(r, Err(CoreError::LoginFailed(_))))
        .count();
    let paced = all
        .iter()
        .filter(|r| matches!(r, Err(CoreError::RateLimited(_))))
        .count();
    assert_eq!((tried, paced), (1, 7));
}

#[tokio::test]
async fn an_attacker_taking_every_pace_slot_does_not_lock_the_owner_out() {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    c.write_policy(&root, "dev", r#"path "app/*" { capabilities = ["read"] }"#)
        .await
        .unwrap();
    let invite = coffer_core::InviteRequest {
        policies: vec!["dev".into()],
        ttl: None,
    };
    let (code, _) = c.create_invite(&root, &invite).await.unwrap();
    c.accept_invite(code.expose_secret(), "olga", "olga's long password")
        .await
        .unwrap();
    let home: std::net::IpAddr = "192.0.2.10".parse().unwrap();
    let attacker: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    async fn login_as(
        c: &Coffer,
        user: &str,
        password: &str,
        source: std::net::IpAddr,
    ) -> Result<(), CoreError> {
        c.login_from(
            &coffer_core::LoginRequest {
                user,
                password,
                totp: None,
            },
            Some(source),
        )
        .await
        .map(drop)
    }
    let login =
        |password: &'static str, source: std::net::IpAddr| login_as(c, "olga", password, source);
    // The owner logs in from home once.
    login("olga's long password", home).await.unwrap();
    // An attacker fails the name past its ceiling, and would take each
    // pace slot the moment it opens.
    for i in 0..coffer_core::MAX_FAILED_LOGINS {
        assert!(
            matches!(
                login("a wrong guess", attacker).await,
                Err(CoreError::LoginFailed(_))
            ),
            "failure {i}"
        );
    }
    assert!(matches!(
        login("a wrong guess", attacker).await,
        Err(CoreError::RateLimited(_))
    ));
    // The owner, from where they logged in before, is not held back.
    login("olga's long password", home).await.unwrap();
    // A new source still is, even with the right password.
    assert!(matches!(
        login("olga's long password", "203.0.113.5".parse().unwrap()).await,
        Err(CoreError::RateLimited(_))
    ));
    // Guessing from the known source itself (behind a reverse proxy every
    // client has its address) is exempt only for a few failures.
    for i in 0..10 {
        assert!(
            matches!(
                login("a wrong guess", home).await,
                Err(CoreError::LoginFailed(_))
            ),
            "failure {i} from home"
        );
    }
    assert!(matches!(
        login("olga's long password", home).await,
        Err(CoreError::RateLimited(_))
    ));
    // And a known source is known only to the account it logged in to.
    assert!(matches!(
        login_as(c, "ghost", "a wrong guess", home).await,
        Err(CoreError::LoginFailed(_))
    ));
}

/// A child token of `parent` with `policies`, authenticated.
async fn child(coffer: &Coffer, parent: &Identity, policies: &[&str]) -> Identity {
    let (raw, _) = coffer
        .create_token(
            parent,
            &coffer_core::TokenRequest {
                policies: policies.iter().map(|p| p.to_string()).collect(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    coffer
        .authenticate(raw.expose_secret(), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn token_create_does_not_reveal_which_policies_exist() {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    for name in ["mine", "secret-project"] {
        c.write_policy(&root, name, r#"path "a/*" { capabilities = ["read"] }"#)
            .await
            .unwrap();
    }
    let narrow = child(c, &root, &["mine"]).await;
    let refusal = |name: &str| {
        let name = name.to_string();
        let c = &fx.coffer;
        let narrow = &narrow;
        async move {
            c.create_token(
                narrow,
                &coffer_core::TokenRequest {
                    policies: vec![name],
                    ..Default::default()
                },
            )
            .await
            .map(|_| ())
            .unwrap_err()
        }
    };
    let existing = refusal("secret-project").await;
    let missing = refusal("no-such-project").await;
    assert!(matches!(existing, CoreError::Forbidden(_)), "{existing}");
    assert!(matches!(missing, CoreError::Forbidden(_)), "{missing}");
    assert_eq!(
        existing.to_string().replace("secret-project", "X"),
        missing.to_string().replace("no-such-project", "X")
    );
    // A token-shaped name is not quoted back.
    let token = format!("cft_{}", "Ab9".repeat(16));
    let e = refusal(&token).await.to_string();
    assert!(!e.contains("Ab9Ab9"), "{e}");
    // Root still hears that a policy does not exist.
    let e = c
        .create_token(
            &root,
            &coffer_core::TokenRequest {
                policies: vec!["no-such-project".into()],
                ..Default::default()
            },
        )
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, CoreError::Invalid(_)), "{e}");
}

#[tokio::test]
async fn credential_shaped_text_is_not_stored_in_names_policies_or_specs() {
    // A token, an invitation code and an app role's secret id.
    for prefix in ["cft_", "cfi_", "cfs_", "CFS_"] {
        credential_shaped_text_is_refused(prefix).await;
    }
}

async fn credential_shaped_text_is_refused(prefix: &str) {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    let token = format!("{prefix}{}", "Ab9".repeat(16));
    // A secret's path.
    let e = c
        .write(&root, &format!("app/dev/{token}"), &text("x"), None)
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(m.contains("coffer token") && !m.contains("Ab9Ab9"), "{m}");
    let shown = |e: CoreError| {
        let m = e.to_string();
        assert!(
            m.contains("looks like a coffer token") || m.contains("look like a coffer token"),
            "{m}"
        );
        assert!(!m.to_ascii_lowercase().contains("ab9ab9"), "{m}");
    };
    // A token's display name.
    shown(
        c.create_token(
            &root,
            &coffer_core::TokenRequest {
                policies: vec!["root".into()],
                display_name: Some(format!("deploy {token}")),
                ..Default::default()
            },
        )
        .await
        .map(|_| ())
        .unwrap_err(),
    );
    // A comment in a policy.
    shown(
        c.write_policy(
            &root,
            "ops",
            &format!("# old token {token}\npath \"a/*\" {{ capabilities = [\"read\"] }}"),
        )
        .await
        .unwrap_err(),
    );
    assert!(c.read_policy(&root, "ops").await.is_err(), "nothing stored");
    // A generator spec, in a lifecycle rule and on its own.
    shown(
        c.set_rule(
            &root,
            "a/*",
            coffer_core::RuleSpec {
                generator: Some(token.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err(),
    );
    shown(coffer_core::lifecycle::parse_generator(&format!("{token}:32")).unwrap_err());
    // A user name (lower-cased, it would still be most of the token).
    shown(c.get_user(&root, &token).await.unwrap_err());
}

#[tokio::test]
async fn a_recursive_listing_decides_each_folder_and_each_name_for_itself() {
    // The folder decision is taken once per run of entries of one folder:
    // folders the caller may and may not list alternate, and a denied name
    // sits among allowed ones, so a decision carried over to the next
    // folder or to the next name would show something.
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    c.write_policy(
        &root,
        "some",
        r#"
        path "lst/" { capabilities = ["list"] }
        path "lst/a/" { capabilities = ["list"] }
        path "lst/c/" { capabilities = ["list"] }
        path "lst/e/" { capabilities = ["list"] }
        path "lst/a/k2" { capabilities = ["deny"] }
        path "lst/e/k1" { capabilities = ["deny"] }
        "#,
    )
    .await
    .unwrap();
    let mut all = Vec::new();
    for folder in ["a", "b", "c", "d", "e"] {
        for k in 1..=3 {
            let p = format!("lst/{folder}/k{k}");
            c.write(&root, &p, &text("v"), None).await.unwrap();
            all.push(format!("{folder}/k{k}"));
        }
    }
    let who = child(c, &root, &["some"]).await;
    let names = |page: coffer_store::ListPage| {
        page.entries
            .into_iter()
            .map(|e| e.name)
            .collect::<Vec<String>>()
    };
    let recursive = ListOptions {
        recursive: true,
        ..ListOptions::default()
    };
    let expected = ["a/k1", "a/k3", "c/k1", "c/k2", "c/k3", "e/k2", "e/k3"];
    assert_eq!(
        names(c.list(&who, "lst/", recursive.clone()).await.unwrap()),
        expected
    );
    // Page by page (a new listing each time) the same names.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = c
            .list(
                &who,
                "lst/",
                ListOptions {
                    after: after.take(),
                    limit: 2,
                    ..recursive.clone()
                },
            )
            .await
            .unwrap();
        after = page.next.clone();
        paged.extend(names(page));
        if after.is_none() {
            break;
        }
    }
    assert_eq!(paged, expected);
    // Root sees everything.
    assert_eq!(names(c.list(&root, "lst/", recursive).await.unwrap()), all);
}

#[tokio::test]
async fn folder_whose_every_secret_is_denied_is_not_listed() {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    c.write_policy(
        &root,
        "wide",
        r#"
        path "" { capabilities = ["list"] }
        path "app/*" { capabilities = ["read", "list"] }
        "#,
    )
    .await
    .unwrap();
    c.write_policy(
        &root,
        "denies",
        r#"
        path "app/merger/DB" { capabilities = ["deny"] }
        path "app/mixed/HIDDEN" { capabilities = ["deny"] }
        path "app/deep/x/" { capabilities = ["deny"] }
        path "app/deep/x/*" { capabilities = ["deny"] }
        "#,
    )
    .await
    .unwrap();
    for p in [
        "app/merger/DB",
        "app/mixed/HIDDEN",
        "app/mixed/SHOWN",
        "app/open/KEY",
        "app/deep/x/KEY",
        "app/deep/y/KEY",
        "app/gone/KEY",
    ] {
        c.write(&root, p, &text("v"), None).await.unwrap();
    }
    c.delete(&root, "app/gone/KEY", &[]).await.unwrap();
    let who = child(c, &root, &["wide", "denies"]).await;
    let names = |page: coffer_store::ListPage| {
        page.entries
            .into_iter()
            .map(|e| e.name)
            .collect::<Vec<String>>()
    };
    let listed = names(c.list(&who, "app/", ListOptions::default()).await.unwrap());
    assert_eq!(listed, ["deep/", "mixed/", "open/"]);
    assert_eq!(
        names(
            c.list(&who, "app/deep/", ListOptions::default())
                .await
                .unwrap()
        ),
        ["y/"]
    );
    // Paging with a limit of one finds the same entries.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = c
            .list(
                &who,
                "app/",
                ListOptions {
                    limit: 1,
                    after: after.take(),
                    ..ListOptions::default()
                },
            )
            .await
            .unwrap();
        let next = page.next.clone();
        paged.extend(names(page));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, listed);
    // With deleted secrets: the folder of a deleted, undenied one shows.
    let with_deleted = names(
        c.list(
            &who,
            "app/",
            ListOptions {
                include_deleted: true,
                ..ListOptions::default()
            },
        )
        .await
        .unwrap(),
    );
    assert_eq!(with_deleted, ["deep/", "gone/", "mixed/", "open/"]);
    // Root and a caller without deny rules see every folder.
    let plain = child(c, &root, &["wide"]).await;
    for id in [&root, &plain] {
        assert_eq!(
            names(c.list(id, "app/", ListOptions::default()).await.unwrap()),
            ["deep/", "merger/", "mixed/", "open/"]
        );
    }
}

#[tokio::test]
async fn weak_field_warning_does_not_repeat_a_token_shaped_field_name() {
    let (fx, root, _) = unsealed().await;
    let token = format!("cft_{}key", "Ab9".repeat(16));
    let value = SecretValue::Fields(BTreeMap::from([
        (token.clone(), SecretString::from("password")),
        ("pass".to_string(), SecretString::from("password")),
    ]));
    let receipt = fx.coffer.write(&root, "a/b", &value, None).await.unwrap();
    let all = receipt.warnings.join("\n");
    assert!(all.contains("name not shown"), "{all}");
    assert!(all.contains("\"pass\""), "{all}");
    assert!(!all.contains("Ab9Ab9"), "{all}");
}

#[tokio::test]
async fn policy_names_that_look_like_root_are_refused() {
    let (fx, root, _) = unsealed().await;
    let source = r#"path "a/*" { capabilities = ["read"] }"#;
    for name in ["r00t", "r0ot", "ro0t", "root.", "_root", "r-o-o-t"] {
        let e = fx.coffer.write_policy(&root, name, source).await;
        match e {
            Err(CoreError::Invalid(m)) => {
                let m = m.to_string();
                assert!(
                    m.contains("looks like") || m.contains("must start"),
                    "{name}: {m}"
                )
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    for fine in ["rootless", "roots", "ops-root"] {
        fx.coffer.write_policy(&root, fine, source).await.unwrap();
    }
}

/// A person invited with `policies`, logged in.
async fn person(coffer: &Coffer, root: &Identity, name: &str, policies: &[&str]) -> Identity {
    let (code, _) = coffer
        .create_invite(
            root,
            &coffer_core::InviteRequest {
                policies: policies.iter().map(|p| p.to_string()).collect(),
                ttl: None,
            },
        )
        .await
        .unwrap();
    let password = "correct horse battery staple 42";
    coffer
        .accept_invite(code.expose_secret(), name, password)
        .await
        .unwrap();
    let (raw, _) = coffer
        .login(&coffer_core::LoginRequest {
            user: name,
            password,
            totp: None,
        })
        .await
        .unwrap();
    coffer
        .authenticate(raw.expose_secret(), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn breakglass_grant_ends_with_its_user_and_is_not_inherited_by_the_name() {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    c.write_policy(
        &root,
        "oncall",
        r#"path "app/prod/*" { capabilities = ["read", "breakglass"] }"#,
    )
    .await
    .unwrap();
    c.protect(&root, "app/prod/*").await.unwrap();
    c.write(
        &root,
        "app/prod/db",
        &text("Zx9-very-long-random-value"),
        None,
    )
    .await
    .unwrap();
    async fn grant(c: &Coffer, who: &Identity) {
        c.breakglass(
            who,
            &coffer_core::BreakglassRequest {
                path: "app/prod/db".into(),
                reason: "INC-1 database down".into(),
                ttl: Some("1h".into()),
            },
        )
        .await
        .unwrap();
    }
    // Removed, then someone else takes the name.
    let alice = person(c, &root, "alice", &["oncall"]).await;
    grant(c, &alice).await;
    assert!(c.read(&alice, "app/prod/db", None).await.is_ok());
    c.delete_user(&root, "alice").await.unwrap();
    assert!(c.list_breakglass(&root).await.unwrap().is_empty());
    let new_alice = person(c, &root, "alice", &["oncall"]).await;
    assert!(
        matches!(
            c.read(&new_alice, "app/prod/db", None).await,
            Err(CoreError::Forbidden(_))
        ),
        "the new alice inherited the old one's grant"
    );
    // Disabled: the grant ends too, and re-enabling does not revive it.
    grant(c, &new_alice).await;
    c.set_user_disabled(&root, "alice", true).await.unwrap();
    assert!(c.list_breakglass(&root).await.unwrap().is_empty());
    c.set_user_disabled(&root, "alice", false).await.unwrap();
    let again = {
        let (raw, _) = c
            .login(&coffer_core::LoginRequest {
                user: "alice",
                password: "correct horse battery staple 42",
                totp: None,
            })
            .await
            .unwrap();
        c.authenticate(raw.expose_secret(), None).await.unwrap()
    };
    assert!(matches!(
        c.read(&again, "app/prod/db", None).await,
        Err(CoreError::Forbidden(_))
    ));
}

#[tokio::test]
async fn postgres_role_names_are_not_echoed_when_they_look_like_credentials() {
    let (fx, root, _) = unsealed().await;
    let token = format!("cft_{}", "Ab9".repeat(16));
    for bad in [token.clone(), format!("Hunter2-{}", "Pa55word".repeat(8))] {
        let e = fx
            .coffer
            .manage_postgres(
                &root,
                "db/app/creds",
                coffer_core::pgroles::ManageRequest {
                    admin: "db/app/admin".into(),
                    roles: [bad.clone(), "app_green".into()],
                    connect_url: None,
                    generate: None,
                    create_roles: false,
                    member_of: None,
                },
            )
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, CoreError::Invalid(_)), "{m}");
        assert!(
            !m.contains(&bad) && !m.contains("Ab9Ab9") && !m.contains("Hunter2"),
            "{m}"
        );
    }
}

#[tokio::test]
async fn listing_cursor_does_not_tell_that_hidden_entries_follow() {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    c.write_policy(
        &root,
        "wide",
        r#"
        path "app/*" { capabilities = ["read", "list"] }
        path "app/Z*" { capabilities = ["deny"] }
        "#,
    )
    .await
    .unwrap();
    for p in ["app/A", "app/B", "app/Z", "app/Zz/deep"] {
        c.write(&root, p, &text("v"), None).await.unwrap();
    }
    let who = child(c, &root, &["wide"]).await;
    let page = |after: Option<&str>| {
        let after = after.map(str::to_string);
        let who = &who;
        async move {
            let p = c
                .list(
                    who,
                    "app/",
                    ListOptions {
                        limit: 1,
                        after,
                        ..ListOptions::default()
                    },
                )
                .await
                .unwrap();
            (
                p.entries.into_iter().map(|e| e.name).collect::<Vec<_>>(),
                p.next,
            )
        }
    };
    assert_eq!(page(None).await, (vec!["A".to_string()], Some("A".into())));
    // B is the last entry the caller may see: no cursor, although Z and
    // Zz/ follow in the store.
    assert_eq!(page(Some("A")).await, (vec!["B".to_string()], None));
    assert_eq!(page(Some("B")).await, (vec![], None));
    assert_eq!(page(Some("Y")).await, (vec![], None));
    // Root pages through everything.
    let all = c
        .list(
            &root,
            "app/",
            ListOptions {
                limit: 2,
                after: Some("A".into()),
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.next.as_deref(), Some("Z"));
}

#[tokio::test]
async fn admin_listings_leave_out_policies_users_and_tokens_the_caller_is_denied() {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    c.write_policy(
        &root,
        "admin",
        r#"
        path "sys/*" { capabilities = ["admin"] }
        path "sys/policies/break*" { capabilities = ["deny"] }
        path "sys/users/ceo" { capabilities = ["deny"] }
        "#,
    )
    .await
    .unwrap();
    c.write_policy(&root, "breakglass-team", "").await.unwrap();
    c.write_policy(&root, "ops", "").await.unwrap();
    person(c, &root, "ceo", &["ops"]).await;
    person(c, &root, "dev", &["ops"]).await;
    let admin = child(c, &root, &["admin"]).await;
    let (_, hidden) = c
        .create_token(
            &root,
            &coffer_core::TokenRequest {
                policies: vec!["ops".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    c.write_policy(
        &root,
        "admin",
        &format!(
            r#"
            path "sys/*" {{ capabilities = ["admin"] }}
            path "sys/policies/break*" {{ capabilities = ["deny"] }}
            path "sys/users/ceo" {{ capabilities = ["deny"] }}
            path "sys/tokens/{}" {{ capabilities = ["deny"] }}
            "#,
            hidden.accessor
        ),
    )
    .await
    .unwrap();
    let policies = c.list_policies(&admin).await.unwrap();
    assert!(policies.contains(&"ops".to_string()), "{policies:?}");
    assert!(
        !policies.iter().any(|p| p.starts_with("break")),
        "{policies:?}"
    );
    assert!(c.read_policy(&admin, "breakglass-team").await.is_err());
    let users: Vec<String> = c
        .list_users(&admin)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(users, ["dev"]);
    let tokens = c.list_tokens(&admin).await.unwrap();
    assert!(tokens.iter().any(|t| t.accessor == admin.accessor()));
    assert!(!tokens.iter().any(|t| t.accessor == hidden.accessor));
    // Root lists everything.
    assert!(c.list_users(&root).await.unwrap().len() == 2);
    assert!(
        c.list_policies(&root)
            .await
            .unwrap()
            .contains(&"breakglass-team".to_string())
    );
}

#[tokio::test]
async fn user_name_that_looks_like_an_existing_users_is_refused() {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    c.write_policy(&root, "ops", "").await.unwrap();
    person(c, &root, "alice", &["ops"]).await;
    for lookalike in ["\u{0430}lice", "a1ice", "a.lice", "alic\u{0435}"] {
        let (code, _) = c
            .create_invite(
                &root,
                &coffer_core::InviteRequest {
                    policies: vec!["ops".into()],
                    ttl: None,
                },
            )
            .await
            .unwrap();
        let e = c
            .accept_invite(
                code.expose_secret(),
                lookalike,
                "correct horse battery staple 42",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, CoreError::Conflict(Conflict::UserLookalike { .. }))
                && e.to_string().contains("looks like an existing"),
            "{lookalike}: {e}"
        );
    }
    person(c, &root, "alicia", &["ops"]).await;
    // Nor one shaped like a token accessor, shown beside every name.
    let (code, _) = c
        .create_invite(
            &root,
            &coffer_core::InviteRequest {
                policies: vec!["ops".into()],
                ttl: None,
            },
        )
        .await
        .unwrap();
    let e = c
        .accept_invite(
            code.expose_secret(),
            "acc_Ab9Ab9",
            "correct horse battery staple 42",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CoreError::Invalid(_)) && e.to_string().contains("accessor"),
        "{e}"
    );
}

#[tokio::test]
async fn breakglass_grant_does_not_let_a_person_copy_move_or_promote_out() {
    let (fx, root, _) = unsealed().await;
    let c = &fx.coffer;
    c.write_policy(
        &root,
        "oncall",
        r#"
        path "app/*" { capabilities = ["read", "list", "create", "update", "delete", "breakglass"] }
        "#,
    )
    .await
    .unwrap();
    c.protect(&root, "app/prod/*").await.unwrap();
    c.write(
        &root,
        "app/prod/db",
        &text("Zx9-very-long-random-value"),
        None,
    )
    .await
    .unwrap();
    let alice = person(c, &root, "alice", &["oncall"]).await;
    c.breakglass(
        &alice,
        &coffer_core::BreakglassRequest {
            path: "app/prod/".into(),
            reason: "INC-2 outage".into(),
            ttl: Some("15m".into()),
        },
    )
    .await
    .unwrap();
    // Reading is what the grant is for.
    assert!(c.read(&alice, "app/prod/db", None).await.is_ok());
    for remove in [false, true] {
        let e = c
            .copy(&alice, "app/prod/db", "app/dev/db-copy", remove)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, CoreError::Forbidden(Refusal::BreakglassNoCopy { path }) if path == "app/prod/db")
                && e.to_string().contains("break-glass"),
            "{e}"
        );
    }
    let e = c
        .promote_env(&alice, "app/prod", "app/dev", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CoreError::Forbidden(Refusal::BreakglassNoCopy { path }) if path == "app/prod/db")
            && e.to_string().contains("break-glass"),
        "{e}"
    );
    // Nor set up PostgreSQL roles with administrator credentials it covers.
    let e = c
        .manage_postgres(
            &alice,
            "app/dev/pg",
            coffer_core::pgroles::ManageRequest {
                admin: "app/prod/db".into(),
                roles: ["app_blue".into(), "app_green".into()],
                connect_url: None,
                generate: None,
                create_roles: false,
                member_of: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CoreError::Forbidden(Refusal::BreakglassNoSetup { admin }) if admin == "app/prod/db")
            && e.to_string().contains("break-glass"),
        "{e}"
    );
    // Nothing was written; a service token may still copy.
    assert!(c.read(&root, "app/dev/db-copy", None).await.is_err());
    assert!(c.read(&alice, "app/prod/db", None).await.is_ok());
    c.copy(&root, "app/prod/db", "app/dev/db-copy", false)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_unseal_attempt_that_cannot_take_the_lock_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let coffer = Arc::new(open(dir.path()).await);
    let init = coffer.init(3, 2).await.unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let foreign = open(other_dir.path()).await.init(3, 2).await.unwrap();
    let operator: Option<std::net::IpAddr> = Some("192.0.2.1".parse().unwrap());
    let remote: Option<std::net::IpAddr> = Some("2001:db8::".parse().unwrap());
    coffer
        .unseal_from(init.unseal_keys[0].expose_secret(), operator)
        .await
        .unwrap();
    // An attempt from the server machine holds the unseal lock longer than
    // a remote attempt may wait for it.
    coffer.set_unseal_search_delay_for_tests(coffer_core::REMOTE_UNSEAL_WAIT * 2);
    let local = {
        let (coffer, key) = (
            coffer.clone(),
            foreign.unseal_keys[1].expose_secret().to_string(),
        );
        tokio::spawn(async move { coffer.unseal_from(&key, None).await })
    };
    while coffer.status().progress < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // A remote attempt and a remote reset, at once, are refused as busy,
    // and change nothing.
    let (attempt, reset) = tokio::join!(
        coffer.unseal_from(init.unseal_keys[1].expose_secret(), remote),
        coffer.unseal_reset_from(operator)
    );
    assert!(
        matches!(attempt, Err(CoreError::RateLimited(_))),
        "{attempt:?}"
    );
    assert!(matches!(reset, Err(CoreError::RateLimited(_))), "{reset:?}");
    assert!(matches!(
        local.await.unwrap(),
        Err(CoreError::InvalidUnsealKey(_))
    ));
    assert_eq!(coffer.status().progress, 2, "nothing added or withdrawn");
    // Once the lock is free, the same remote share is taken and unseals.
    coffer.set_unseal_search_delay_for_tests(std::time::Duration::ZERO);
    assert!(
        !coffer
            .unseal_from(init.unseal_keys[1].expose_secret(), remote)
            .await
            .unwrap()
            .sealed
    );
}
