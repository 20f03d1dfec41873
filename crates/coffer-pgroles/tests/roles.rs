//! Role changes against a real PostgreSQL server (started by the tests).

use coffer_pgroles::{Change, RoleAdmin};

/// Roles are global to the server: each test uses names of its own.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The database URL with other credentials.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (_, host) = rest.split_once('@').unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

/// Whether `user` can log in with `password`; `Err` only for failures other
/// than a refused password.
async fn logs_in(url: &str, user: &str, password: &str) -> bool {
    match tokio_postgres::connect(&as_user(url, user, password), tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.unwrap();
            true
        }
        Err(e) => {
            let code = e.code().map(|c| c.code().to_string());
            assert_eq!(
                code.as_deref(),
                Some("28P01"),
                "expected an authentication failure, got {e}"
            );
            false
        }
    }
}

#[tokio::test]
async fn passwords_expiries_and_retirement() {
    let url = coffer_testpg::database().await;
    let mut admin = RoleAdmin::connect(&url, None).await.unwrap();
    assert_eq!(admin.user(), "coffer");
    assert!(admin.can_manage_roles().await.unwrap());
    let (blue, green) = (unique("blue"), unique("green"));
    admin.create_login_role(&blue, None).await.unwrap();
    admin.create_login_role(&green, None).await.unwrap();
    let info = admin
        .inspect(&[&blue, &green, "nobody_here"])
        .await
        .unwrap();
    assert_eq!(info.len(), 2);
    assert!(info.iter().all(|r| r.can_login && !r.superuser));
    // A new role has no password: nobody logs in with one.
    assert!(!logs_in(&url, &blue, "guess").await);

    admin
        .apply(&[Change::SetPassword {
            role: &blue,
            password: b"first-Password-1",
        }])
        .await
        .unwrap();
    assert!(logs_in(&url, &blue, "first-Password-1").await);
    assert!(!logs_in(&url, &blue, "first-password-1").await);

    // Only a verifier is stored, never the password.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let stored: String = client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&blue],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    assert!(!stored.contains("first-Password-1"));

    // A rotation: the other role gets a password, the first one expires
    // after a grace period, enforced by PostgreSQL.
    admin
        .apply(&[
            Change::SetPassword {
                role: &green,
                password: b"second-Password-2",
            },
            Change::ExpireIn {
                role: &blue,
                ms: 1500,
            },
        ])
        .await
        .unwrap();
    assert!(logs_in(&url, &green, "second-Password-2").await);
    assert!(logs_in(&url, &blue, "first-Password-1").await);
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    assert!(!logs_in(&url, &blue, "first-Password-1").await);
    assert!(logs_in(&url, &green, "second-Password-2").await);

    // Undoing an expiry, and retiring a password outright.
    admin
        .apply(&[Change::NeverExpire { role: &blue }])
        .await
        .unwrap();
    assert!(logs_in(&url, &blue, "first-Password-1").await);
    admin
        .apply(&[Change::Retire { role: &blue }])
        .await
        .unwrap();
    assert!(!logs_in(&url, &blue, "first-Password-1").await);
    admin
        .apply(&[Change::ExpireIn {
            role: &green,
            ms: 0,
        }])
        .await
        .unwrap();
    assert!(!logs_in(&url, &green, "second-Password-2").await);

    // A new password lifts an old expiry.
    admin
        .apply(&[Change::SetPassword {
            role: &green,
            password: b"third-Password-3",
        }])
        .await
        .unwrap();
    assert!(logs_in(&url, &green, "third-Password-3").await);
}

#[tokio::test]
async fn a_batch_is_all_or_nothing_and_errors_hold_no_password() {
    let url = coffer_testpg::database().await;
    let mut admin = RoleAdmin::connect(&url, None).await.unwrap();
    let role = unique("atomic");
    admin.create_login_role(&role, None).await.unwrap();
    admin
        .apply(&[Change::SetPassword {
            role: &role,
            password: b"kept-Password-1",
        }])
        .await
        .unwrap();
    let missing = unique("missing");
    let e = admin
        .apply(&[
            Change::SetPassword {
                role: &role,
                password: b"canary-Password-9",
            },
            Change::SetPassword {
                role: &missing,
                password: b"canary-Password-9",
            },
        ])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&missing), "{e}");
    assert!(!e.contains("canary"), "{e}");
    assert!(logs_in(&url, &role, "kept-Password-1").await);
    assert!(!logs_in(&url, &role, "canary-Password-9").await);

    // Bad names never reach the server.
    let e = admin
        .apply(&[Change::Retire {
            role: "x\"; DROP ROLE coffer; --",
        }])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a role name"), "{e}");
}

#[tokio::test]
async fn connection_errors_are_clear_and_hide_the_password() {
    let url = coffer_testpg::database().await;
    let wrong = as_user(&url, "coffer", "wrong-canary-secret");
    let e = match RoleAdmin::connect(&wrong, None).await {
        Ok(_) => panic!("a wrong password connected"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("administrator"), "{e}");
    assert!(e.contains("<redacted>"), "{e}");
    assert!(!e.contains("wrong-canary-secret"), "{e}");
    let e = match RoleAdmin::connect("mysql://x@y/z", None).await {
        Ok(_) => panic!("mysql connected"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("postgres://"), "{e}");
    // The password may come separately.
    let bare = as_user(&url, "coffer", "");
    let bare = bare.replacen("coffer:@", "coffer@", 1);
    let admin = RoleAdmin::connect(&bare, Some(coffer_testpg::SUPERUSER_PASSWORD.as_bytes()))
        .await
        .unwrap();
    assert_eq!(admin.user(), "coffer");
}
