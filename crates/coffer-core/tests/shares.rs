//! One-time share links in the core, on both storage backends: of many
//! concurrent opens of a link, exactly as many succeed as it has views;
//! an expired link is refused and purged on access and by the sweep; the
//! store never holds more than the sealed bytes the client sent.

use std::sync::Arc;

use coffer_core::shares::{KIND_SHARE, ShareRequest};
use coffer_core::{Coffer, CoreError, CoreOptions, auth::Identity};
use coffer_crypto::share as crypto;
use coffer_store::{Expect, Mutation, PostgresOptions, PostgresStore, SqliteStore, Storage};

struct Fixture {
    _dir: Option<tempfile::TempDir>,
    store: Arc<dyn Storage>,
    coffer: Arc<Coffer>,
    root: Identity,
}

async fn fixture(store: Arc<dyn Storage>, dir: Option<tempfile::TempDir>) -> Fixture {
    let coffer = Arc::new(
        Coffer::open(store.clone(), CoreOptions::default())
            .await
            .unwrap(),
    );
    let init = coffer.init(1, 1).await.unwrap();
    coffer
        .unseal(init.unseal_keys[0].expose_secret())
        .await
        .unwrap();
    let root = coffer
        .authenticate(init.root_token.expose_secret(), None)
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        store,
        coffer,
        root,
    }
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> =
        Arc::new(SqliteStore::open(&dir.path().join("coffer.db")).unwrap());
    fixture(store, Some(dir)).await
}

async fn postgres() -> Fixture {
    let url = coffer_testpg::database().await;
    let store = PostgresStore::connect(&PostgresOptions {
        url,
        password: None,
        pool_size: 8,
    })
    .await
    .unwrap();
    fixture(Arc::new(store), None).await
}

/// A share of `value` sealed as a client would; its id and link key.
async fn make(fx: &Fixture, value: &[u8], views: u32) -> (String, crypto::ShareKey) {
    let key = crypto::ShareKey::generate();
    let id = crypto::new_id();
    let sealed = crypto::seal(&key, &id, None, value).unwrap();
    fx.coffer
        .create_share(
            &fx.root,
            &ShareRequest {
                id: id.clone(),
                sealed: crypto::encode(&sealed),
                salt: None,
                iterations: None,
                expires_in: None,
                views: Some(views),
                source: None,
            },
        )
        .await
        .unwrap();
    (id, key)
}

/// Whether the share's record is a tombstone: its sealed bytes gone, its
/// id kept taken.
async fn purged(fx: &Fixture, id: &str) -> bool {
    let Some(o) = fx.store.get_object(KIND_SHARE, id).await.unwrap() else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_slice(&o.value).unwrap();
    v["sealed"] == "" && v["burned_until"].is_i64()
}

/// Tries to create a share under `id` again, with `sealed` bytes.
async fn recreate(fx: &Fixture, id: &str, sealed: &[u8]) -> Result<(), CoreError> {
    fx.coffer
        .create_share(
            &fx.root,
            &ShareRequest {
                id: id.to_string(),
                sealed: crypto::encode(sealed),
                salt: None,
                iterations: None,
                expires_in: None,
                views: None,
                source: None,
            },
        )
        .await
        .map(|_| ())
}

/// Review finding: an interceptor who opened a one-view link (getting its
/// sealed bytes) could create a share under the same id with those bytes,
/// and the recipient's link then opened as if unread. A used-up, revoked
/// or expired link's id stays taken.
async fn a_burned_id_can_never_be_taken_again(fx: Fixture) {
    // Used up.
    let (id, key) = make(&fx, b"v", 1).await;
    let opened = fx.coffer.open_share(&id).await.unwrap();
    let stolen = crypto::decode(&opened.sealed).unwrap();
    assert!(matches!(
        recreate(&fx, &id, &stolen).await,
        Err(CoreError::Invalid(_))
    ));
    assert!(is_gone(&fx.coffer.open_share(&id).await.unwrap_err()));
    assert!(crypto::open(&key, &id, None, &stolen).is_ok());
    // Revoked.
    let (id, _) = make(&fx, b"v", 3).await;
    let stolen = crypto::decode(&fx.coffer.open_share(&id).await.unwrap().sealed).unwrap();
    fx.coffer.revoke_share(&fx.root, &id).await.unwrap();
    assert!(matches!(
        recreate(&fx, &id, &stolen).await,
        Err(CoreError::Invalid(_))
    ));
    // Expired, and swept.
    let (id, _) = make(&fx, b"v", 3).await;
    let stolen = crypto::decode(&fx.coffer.open_share(&id).await.unwrap().sealed).unwrap();
    expire(&fx, &id).await;
    fx.coffer.sweep_shares().await.unwrap();
    assert!(purged(&fx, &id).await);
    assert!(matches!(
        recreate(&fx, &id, &stolen).await,
        Err(CoreError::Invalid(_))
    ));
    assert!(is_gone(&fx.coffer.open_share(&id).await.unwrap_err()));
}

#[tokio::test]
async fn sqlite_a_burned_id_can_never_be_taken_again() {
    a_burned_id_can_never_be_taken_again(sqlite().await).await;
}

#[tokio::test]
async fn postgres_a_burned_id_can_never_be_taken_again() {
    a_burned_id_can_never_be_taken_again(postgres().await).await;
}

fn is_gone(e: &CoreError) -> bool {
    matches!(e, CoreError::NotFound(_))
}

async fn concurrent_opens_spend_each_view_once(fx: Fixture) {
    for views in [1u32, 3] {
        let (id, key) = make(&fx, b"the one value", views).await;
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let coffer = fx.coffer.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move { coffer.open_share(&id).await }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(opened) => {
                    won += 1;
                    let sealed = crypto::decode(&opened.sealed).unwrap();
                    assert_eq!(
                        &crypto::open(&key, &id, None, &sealed).unwrap()[..],
                        b"the one value"
                    );
                }
                Err(e) => assert!(is_gone(&e), "{e}"),
            }
        }
        assert_eq!(won, views, "{views}-view link");
        // The last view took the ciphertext with it.
        assert!(purged(&fx, &id).await);
        // A replay of an open is refused.
        assert!(is_gone(&fx.coffer.open_share(&id).await.unwrap_err()));
    }
}

/// Moves a share's expiry into the past, as time would.
async fn expire(fx: &Fixture, id: &str) {
    let o = fx.store.get_object(KIND_SHARE, id).await.unwrap().unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&o.value).unwrap();
    v["expires_at"] = serde_json::json!(coffer_core::now_ms() - 1);
    fx.store
        .commit(vec![Mutation::PutObject {
            kind: KIND_SHARE.into(),
            key: id.into(),
            value: serde_json::to_vec(&v).unwrap(),
            expect: Expect::Revision(o.revision),
        }])
        .await
        .unwrap();
}

async fn expired_links_are_refused_and_purged(fx: Fixture) {
    // On access.
    let (id, _) = make(&fx, b"v", 5).await;
    expire(&fx, &id).await;
    assert!(fx.coffer.list_shares(&fx.root).await.unwrap().is_empty());
    assert!(is_gone(&fx.coffer.open_share(&id).await.unwrap_err()));
    assert!(purged(&fx, &id).await);
    // By the sweep, never touched again; a live one is kept.
    let (old, _) = make(&fx, b"v", 1).await;
    let (live, _) = make(&fx, b"v", 1).await;
    expire(&fx, &old).await;
    assert_eq!(fx.coffer.sweep_shares().await.unwrap(), vec![old.clone()]);
    assert!(purged(&fx, &old).await);
    assert!(
        fx.store
            .get_object(KIND_SHARE, &live)
            .await
            .unwrap()
            .is_some()
    );
    let listed: Vec<String> = fx
        .coffer
        .list_shares(&fx.root)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![live.clone()]);
    // Revoked: gone, and a second revoke is as for an unknown id.
    fx.coffer.revoke_share(&fx.root, &live).await.unwrap();
    assert!(is_gone(&fx.coffer.open_share(&live).await.unwrap_err()));
    assert!(is_gone(
        &fx.coffer.revoke_share(&fx.root, &live).await.unwrap_err()
    ));
}

async fn a_taken_id_is_refused_and_changes_nothing(fx: Fixture) {
    let (id, key) = make(&fx, b"first", 1).await;
    let other = crypto::seal(&crypto::ShareKey::generate(), &id, None, b"second").unwrap();
    let err = fx
        .coffer
        .create_share(
            &fx.root,
            &ShareRequest {
                id: id.clone(),
                sealed: crypto::encode(&other),
                salt: None,
                iterations: None,
                expires_in: None,
                views: None,
                source: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Invalid(_)), "{err}");
    let opened = fx.coffer.open_share(&id).await.unwrap();
    let sealed = crypto::decode(&opened.sealed).unwrap();
    assert_eq!(
        &crypto::open(&key, &id, None, &sealed).unwrap()[..],
        b"first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_opens_spend_each_view_once() {
    concurrent_opens_spend_each_view_once(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_opens_spend_each_view_once() {
    concurrent_opens_spend_each_view_once(postgres().await).await;
}

#[tokio::test]
async fn sqlite_expired_links_are_refused_and_purged() {
    expired_links_are_refused_and_purged(sqlite().await).await;
}

#[tokio::test]
async fn postgres_expired_links_are_refused_and_purged() {
    expired_links_are_refused_and_purged(postgres().await).await;
}

#[tokio::test]
async fn sqlite_a_taken_id_is_refused_and_changes_nothing() {
    a_taken_id_is_refused_and_changes_nothing(sqlite().await).await;
}

#[tokio::test]
async fn postgres_a_taken_id_is_refused_and_changes_nothing() {
    a_taken_id_is_refused_and_changes_nothing(postgres().await).await;
}

/// A share record written as a store from before the owner index holds
/// it (the record's encoding is unchanged), for `owner`.
async fn plant(fx: &Fixture, owner: &str) -> String {
    let id = crypto::new_id();
    let sealed = crypto::seal(&crypto::ShareKey::generate(), &id, None, b"old").unwrap();
    let now = coffer_core::now_ms();
    let record = serde_json::json!({
        "sealed": crypto::encode(&sealed),
        "views": 1,
        "views_left": 1,
        "owner": owner,
        "created_by": "token:root",
        "created_at": now,
        "expires_at": now + 3_600_000,
    });
    fx.store
        .commit(vec![Mutation::PutObject {
            kind: KIND_SHARE.into(),
            key: id.clone(),
            value: serde_json::to_vec(&record).unwrap(),
            expect: Expect::Absent,
        }])
        .await
        .unwrap();
    id
}

/// Review finding: listing and creating read every share record of the
/// store. Now they read the owner's index: links of a store from before
/// the index are indexed once (and listed), and afterwards a share record
/// that is not in the caller's index is never looked at.
async fn listing_reads_the_owners_index_not_every_share(fx: Fixture) {
    let owner = format!("token:{}", fx.root.accessor());
    let old = plant(&fx, &owner).await;
    let someone_elses = plant(&fx, "user:someone").await;
    let listed: Vec<String> = fx
        .coffer
        .list_shares(&fx.root)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![old.clone()], "the old link is indexed once");
    assert!(!listed.contains(&someone_elses));
    // Written behind the index's back now (no store writes shares this
    // way): never scanned for, so never listed.
    let unindexed = plant(&fx, &owner).await;
    let (made, _) = make(&fx, b"v", 1).await;
    let mut listed: Vec<String> = fx
        .coffer
        .list_shares(&fx.root)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    listed.sort();
    let mut expected = vec![old, made];
    expected.sort();
    assert_eq!(listed, expected);
    assert!(!listed.contains(&unindexed));
}

/// Creates racing on one owner's index all land in it.
async fn concurrent_creates_all_land_in_the_index(fx: Fixture) {
    let fx = Arc::new(fx);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let fx = fx.clone();
        tasks.push(tokio::spawn(async move { make(&fx, b"v", 1).await.0 }));
    }
    let mut made = Vec::new();
    for t in tasks {
        made.push(t.await.unwrap());
    }
    made.sort();
    let mut listed: Vec<String> = fx
        .coffer
        .list_shares(&fx.root)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    listed.sort();
    assert_eq!(listed, made);
}

#[tokio::test]
async fn sqlite_listing_reads_the_owners_index_not_every_share() {
    listing_reads_the_owners_index_not_every_share(sqlite().await).await;
}

#[tokio::test]
async fn postgres_listing_reads_the_owners_index_not_every_share() {
    listing_reads_the_owners_index_not_every_share(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_creates_all_land_in_the_index() {
    concurrent_creates_all_land_in_the_index(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_creates_all_land_in_the_index() {
    concurrent_creates_all_land_in_the_index(postgres().await).await;
}
