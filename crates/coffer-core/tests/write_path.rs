//! The one write path under attack: concurrent writers, staged rotations,
//! the cache after every kind of write and after a failed commit, writes
//! while sealed, seal reservations under a tiny key limit, the audit facts
//! each writer notes, and reads racing writes. Over a real SQLite store.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use coffer_core::{
    At, Coffer, CoreError, CoreOptions, Identity, Label, PlanAction, RotateRequest, SecretValue,
};
use coffer_crypto::SecretString;
use coffer_store::{SqliteStore, Storage, VersionState};

/// Every concurrent test must finish well within this; a deadlock fails it.
const BOUND: Duration = Duration::from_secs(60);

struct Node {
    _dir: Arc<tempfile::TempDir>,
    db: std::path::PathBuf,
    coffer: Arc<Coffer>,
    root: Identity,
    unseal_key: SecretString,
    root_token: SecretString,
}

async fn open_at(db: &std::path::Path, options: CoreOptions) -> Coffer {
    let store: Arc<dyn Storage> = Arc::new(SqliteStore::open(db).unwrap());
    Coffer::open(store, options).await.unwrap()
}

async fn node_with(options: CoreOptions) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("coffer.db");
    let coffer = open_at(&db, options).await;
    let init = coffer.init(1, 1).await.unwrap();
    coffer
        .unseal(init.unseal_keys[0].expose_secret())
        .await
        .unwrap();
    let root = coffer
        .authenticate(init.root_token.expose_secret(), None)
        .await
        .unwrap();
    Node {
        _dir: Arc::new(dir),
        db,
        coffer: Arc::new(coffer),
        root,
        unseal_key: init.unseal_keys[0].clone(),
        root_token: init.root_token,
    }
}

async fn node() -> Node {
    node_with(CoreOptions::default()).await
}

impl Node {
    /// A second node over the same database, with an empty cache: what the
    /// store holds, seen by nobody's cache.
    async fn fresh(&self) -> (Coffer, Identity) {
        let other = open_at(&self.db, CoreOptions::default()).await;
        other.unseal(self.unseal_key.expose_secret()).await.unwrap();
        let root = other
            .authenticate(self.root_token.expose_secret(), None)
            .await
            .unwrap();
        (other, root)
    }

    /// The node's view of `paths` (served from its cache) equals the view of
    /// a node that has cached nothing.
    async fn assert_cache_agrees(&self, paths: &[&str]) {
        let (fresh, fresh_root) = self.fresh().await;
        for path in paths {
            let ours = view(&self.coffer, &self.root, path).await;
            let theirs = view(&fresh, &fresh_root, path).await;
            assert_eq!(ours, theirs, "the cache disagrees with the store on {path}");
        }
        fresh.close().await.unwrap();
    }
}

/// What a reader can learn of a path: its current value and version, its
/// labels and its version list (or the error, by its message).
async fn view(c: &Coffer, id: &Identity, path: &str) -> String {
    let read = match c.read(id, path, None).await {
        Ok(r) => format!("v{} {}", r.version, as_text(&r.value)),
        Err(e) => format!("read error: {e}"),
    };
    let meta = match c.metadata(id, path).await {
        Ok(m) => format!(
            "head {} live {} labels {:?} versions {:?}",
            m.meta.current_version,
            m.meta.live,
            m.labels,
            m.versions
                .iter()
                .map(|v| (v.version, v.state))
                .collect::<Vec<_>>()
        ),
        Err(e) => format!("metadata error: {e}"),
    };
    format!("{read} | {meta}")
}

fn text(s: &str) -> SecretValue {
    SecretValue::Text(SecretString::from(s))
}

fn as_text(v: &SecretValue) -> String {
    match v {
        SecretValue::Text(t) => t.expose_secret().to_string(),
        SecretValue::Fields(_) => panic!("expected text"),
    }
}

/// A value no strength rule would warn about.
fn value(tag: &str) -> SecretValue {
    text(&format!("Zq8#vN2@pL5!{tag}"))
}

async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish: deadlock?"))
}

/// The version numbers of `path`, which must be exactly 1..=n, every one
/// of them active and opening to a value.
async fn assert_no_gaps(c: &Coffer, id: &Identity, path: &str) -> u64 {
    let m = c.metadata(id, path).await.unwrap();
    let numbers: Vec<u64> = m.versions.iter().map(|v| v.version).collect();
    let n = m.meta.current_version;
    assert_eq!(numbers, (1..=n).collect::<Vec<_>>(), "versions of {path}");
    for v in 1..=n {
        c.read(id, path, Some(v))
            .await
            .unwrap_or_else(|e| panic!("{path} v{v} does not open: {e}"));
    }
    n
}

fn is_conflict<T: std::fmt::Debug>(r: &Result<T, CoreError>) -> bool {
    matches!(r, Err(CoreError::Conflict(_)))
}

// ---- concurrent writers -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_to_one_path_lose_nothing_and_leave_no_gaps() {
    let n = node().await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (c, id) = (n.coffer.clone(), n.root.clone());
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..6 {
                let tag = format!("t{t}-{i}");
                let r = c.write(&id, "app/race", &value(&tag), None).await.unwrap();
                versions.push((r.version, tag));
            }
            versions
        }));
    }
    let mut written = Vec::new();
    bounded("writers", async {
        for t in tasks {
            written.extend(t.await.unwrap());
        }
    })
    .await;
    written.sort();
    let numbers: Vec<u64> = written.iter().map(|(v, _)| *v).collect();
    assert_eq!(numbers, (1..=48).collect::<Vec<_>>());
    assert_eq!(assert_no_gaps(&n.coffer, &n.root, "app/race").await, 48);
    // Every receipt names the version that holds its value.
    for (v, tag) in &written {
        let r = n.coffer.read(&n.root, "app/race", Some(*v)).await.unwrap();
        assert_eq!(as_text(&r.value), as_text(&value(tag)));
    }
    n.assert_cache_agrees(&["app/race"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_check_and_set_writes_let_exactly_one_through() {
    let n = node().await;
    for round in 0..5u64 {
        let mut tasks = Vec::new();
        for t in 0..6 {
            let (c, id) = (n.coffer.clone(), n.root.clone());
            tasks.push(tokio::spawn(async move {
                c.write(&id, "app/cas", &value(&format!("{round}-{t}")), Some(round))
                    .await
            }));
        }
        let results = bounded("cas writers", async {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        })
        .await;
        let ok: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
        assert_eq!(ok.len(), 1, "round {round}: {results:?}");
        assert_eq!(ok[0].as_ref().unwrap().version, round + 1);
        for r in results.iter().filter(|r| r.is_err()) {
            assert!(is_conflict(r), "round {round}: {r:?}");
        }
    }
    assert_eq!(assert_no_gaps(&n.coffer, &n.root, "app/cas").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn imports_of_overlapping_paths_in_opposite_orders_do_not_deadlock() {
    let n = node().await;
    // Many paths, so that some pairs share a lock stripe and others do not.
    let paths: Vec<String> = (0..6).map(|i| format!("app/imp/s{i}")).collect();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (c, id) = (n.coffer.clone(), n.root.clone());
        let mut order = paths.clone();
        if t % 2 == 1 {
            order.reverse();
        }
        tasks.push(tokio::spawn(async move {
            for i in 0..8 {
                let writes: Vec<_> = order
                    .iter()
                    .map(|p| (p.clone(), value(&format!("{t}-{i}")), None))
                    .collect();
                let receipts = c.write_many(&id, &writes).await.unwrap();
                assert_eq!(receipts.len(), writes.len());
            }
        }));
    }
    bounded("imports", async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    for p in &paths {
        assert_eq!(assert_no_gaps(&n.coffer, &n.root, p).await, 32);
    }
    // Each import is all or nothing and serialised against the others: at
    // every version, all paths hold the value of the same import.
    for v in 1..=32 {
        let mut values = Vec::new();
        for p in &paths {
            let r = n.coffer.read(&n.root, p, Some(v)).await.unwrap();
            values.push(as_text(&r.value));
        }
        assert!(values.windows(2).all(|w| w[0] == w[1]), "v{v}: {values:?}");
    }
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    n.assert_cache_agrees(&refs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_racing_writes_keeps_every_version() {
    let n = node().await;
    n.coffer
        .write(&n.root, "app/rb", &value("first"), None)
        .await
        .unwrap();
    let (c, id) = (n.coffer.clone(), n.root.clone());
    let writer = tokio::spawn(async move {
        for i in 0..20 {
            c.write(&id, "app/rb", &value(&format!("w{i}")), None)
                .await
                .unwrap();
        }
    });
    let (c, id) = (n.coffer.clone(), n.root.clone());
    let roller = tokio::spawn(async move {
        let mut rolled = Vec::new();
        for _ in 0..20 {
            let r = c.rollback(&id, "app/rb", 1).await.unwrap();
            rolled.push(r.version);
        }
        rolled
    });
    let rolled = bounded("rollback and write", async {
        writer.await.unwrap();
        roller.await.unwrap()
    })
    .await;
    assert_eq!(assert_no_gaps(&n.coffer, &n.root, "app/rb").await, 41);
    for v in rolled {
        let r = n.coffer.read(&n.root, "app/rb", Some(v)).await.unwrap();
        assert_eq!(as_text(&r.value), as_text(&value("first")));
    }
    n.assert_cache_agrees(&["app/rb"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_and_move_racing_writes_copy_a_whole_history() {
    let n = node().await;
    for round in 0..6 {
        let from = format!("app/src{round}");
        let to = format!("app/dst{round}");
        for i in 0..3 {
            n.coffer
                .write(&n.root, &from, &value(&format!("{i}")), None)
                .await
                .unwrap();
        }
        let moving = round % 2 == 1;
        let (c, id, f, t) = (n.coffer.clone(), n.root.clone(), from.clone(), to.clone());
        let copier = tokio::spawn(async move { c.copy(&id, &f, &t, moving).await });
        let (c, id, f) = (n.coffer.clone(), n.root.clone(), from.clone());
        let source_writer = tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..5 {
                out.push(c.write(&id, &f, &value(&format!("s{i}")), None).await);
            }
            out
        });
        let (c, id, t) = (n.coffer.clone(), n.root.clone(), to.clone());
        let target_writer =
            tokio::spawn(async move { c.write(&id, &t, &value("target"), Some(0)).await });
        let (copied, source_writes, target_write) = bounded("copy and writes", async {
            (
                copier.await.unwrap(),
                source_writer.await.unwrap(),
                target_writer.await.unwrap(),
            )
        })
        .await;
        // The copy and the create of the target exclude each other.
        match (&copied, &target_write) {
            (Ok(_), Err(e)) => assert!(matches!(e, CoreError::Conflict(_)), "{e:?}"),
            (Err(e), Ok(_)) => assert!(matches!(e, CoreError::Conflict(_)), "{e:?}"),
            other => panic!("copy and create both {other:?}"),
        }
        if let Ok(receipt) = &copied {
            // The copy holds the source's history as it was when copied,
            // version for version.
            let head = receipt.version;
            assert_eq!(assert_no_gaps(&n.coffer, &n.root, &to).await, head);
            let (fresh, froot) = n.fresh().await;
            for v in 1..=head {
                let copy = fresh.read(&froot, &to, Some(v)).await.unwrap();
                if moving {
                    continue;
                }
                if let Ok(orig) = fresh.read(&froot, &from, Some(v)).await {
                    assert_eq!(as_text(&copy.value), as_text(&orig.value), "{to} v{v}");
                }
            }
            fresh.close().await.unwrap();
        }
        // A write to the source either landed on it or, after a move,
        // started a new secret there; none was lost silently.
        let ok_writes = source_writes.iter().filter(|r| r.is_ok()).count() as u64;
        assert_eq!(ok_writes, 5, "{source_writes:?}");
        if !moving || copied.is_err() {
            assert_eq!(assert_no_gaps(&n.coffer, &n.root, &from).await, 3 + 5);
        } else {
            assert_no_gaps(&n.coffer, &n.root, &from).await;
        }
        n.assert_cache_agrees(&[&from, &to]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotations_racing_writes_number_versions_without_gaps() {
    let n = node().await;
    n.coffer
        .write(&n.root, "app/rot", &value("start"), None)
        .await
        .unwrap();
    let (c, id) = (n.coffer.clone(), n.root.clone());
    let writer = tokio::spawn(async move {
        for i in 0..15 {
            c.write(&id, "app/rot", &value(&format!("w{i}")), None)
                .await
                .unwrap();
        }
    });
    let (c, id) = (n.coffer.clone(), n.root.clone());
    let rotator = tokio::spawn(async move {
        for i in 0..15 {
            let r = c
                .rotate(
                    &id,
                    "app/rot",
                    RotateRequest {
                        value: Some(value(&format!("r{i}"))),
                        ..RotateRequest::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(r.labels.current, r.version);
        }
    });
    bounded("rotation and write", async {
        writer.await.unwrap();
        rotator.await.unwrap();
    })
    .await;
    assert_eq!(assert_no_gaps(&n.coffer, &n.root, "app/rot").await, 31);
    n.assert_cache_agrees(&["app/rot"]).await;
}

// ---- staged rotations -------------------------------------------------------

async fn stage(n: &Node, path: &str) -> u64 {
    let r = n
        .coffer
        .rotate(
            &n.root,
            path,
            RotateRequest {
                value: Some(value("staged")),
                stage: true,
                ..RotateRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.labels.pending, Some(r.version));
    r.version
}

#[tokio::test]
async fn a_staged_rotation_refuses_other_new_versions_until_promoted_or_cancelled() {
    let n = node().await;
    let c = &n.coffer;
    c.write(&n.root, "app/dev/db", &value("dev"), None)
        .await
        .unwrap();
    c.write(&n.root, "app/prod/db", &value("one"), None)
        .await
        .unwrap();
    let pending = stage(&n, "app/prod/db").await;
    assert_eq!(pending, 2);
    let before = view(c, &n.root, "app/prod/db").await;

    let write = c.write(&n.root, "app/prod/db", &value("x"), None).await;
    assert!(is_conflict(&write), "{write:?}");
    let import = c
        .write_many(
            &n.root,
            &[
                ("app/prod/other".into(), value("o"), None),
                ("app/prod/db".into(), value("x"), None),
            ],
        )
        .await;
    assert!(is_conflict(&import), "{import:?}");
    let rollback = c.rollback(&n.root, "app/prod/db", 1).await;
    assert!(is_conflict(&rollback), "{rollback:?}");
    let (plan, _) = c
        .promote_env(&n.root, "app/dev", "app/prod", None)
        .await
        .unwrap();
    assert!(plan.iter().any(|e| e.action == PlanAction::Update));
    let promoted_env = c
        .promote_env(&n.root, "app/dev", "app/prod", Some(&plan))
        .await;
    assert!(is_conflict(&promoted_env), "{promoted_env:?}");
    // Nothing of the refused writes landed, not even the import's other path.
    assert_eq!(view(c, &n.root, "app/prod/db").await, before);
    assert!(matches!(
        c.read(&n.root, "app/prod/other", None).await,
        Err(CoreError::NotFound(_))
    ));
    n.assert_cache_agrees(&["app/prod/db", "app/prod/other"])
        .await;

    // Promote ends it: writes go through again.
    let r = c.promote(&n.root, "app/prod/db", None).await.unwrap();
    assert_eq!(r.version, pending);
    assert_eq!(r.labels.pending, None);
    let w = c
        .write(&n.root, "app/prod/db", &value("after"), None)
        .await
        .unwrap();
    assert_eq!(w.version, 3);

    // Cancel ends one too.
    let pending = stage(&n, "app/prod/db").await;
    assert_eq!(pending, 4);
    assert!(is_conflict(&c.rollback(&n.root, "app/prod/db", 1).await));
    let r = c.cancel_rotation(&n.root, "app/prod/db").await.unwrap();
    assert_eq!(r.labels.pending, None);
    assert_eq!(r.labels.current, 3);
    let rb = c.rollback(&n.root, "app/prod/db", 1).await.unwrap();
    assert_eq!(rb.version, 5);
    assert_eq!(assert_no_gaps(c, &n.root, "app/prod/db").await, 5);
    n.assert_cache_agrees(&["app/prod/db"]).await;
}

// ---- the cache --------------------------------------------------------------

#[tokio::test]
async fn the_cache_agrees_with_the_store_after_every_kind_of_write() {
    let n = node().await;
    let c = &n.coffer;
    let id = &n.root;
    let all = [
        "app/dev/a",
        "app/dev/b",
        "app/prod/a",
        "app/prod/b",
        "app/copy",
        "app/moved",
        "app/gen",
    ];
    // Warm the cache with every path, even the absent ones.
    for p in all {
        let _ = c.read(id, p, None).await;
    }
    let check = || n.assert_cache_agrees(&all);

    c.write(id, "app/dev/a", &value("a1"), None).await.unwrap();
    check().await;
    c.write(id, "app/dev/a", &value("a2"), Some(1))
        .await
        .unwrap();
    check().await;
    let spec = coffer_crypto::generate::Spec::parse("base64:24").unwrap();
    c.write_generated(id, "app/gen", &spec, None).await.unwrap();
    check().await;
    c.write_many(
        id,
        &[
            ("app/dev/b".into(), value("b1"), None),
            ("app/prod/a".into(), value("pa"), Some(0)),
        ],
    )
    .await
    .unwrap();
    check().await;
    c.rollback(id, "app/dev/a", 1).await.unwrap();
    check().await;
    c.copy(id, "app/dev/a", "app/copy", false).await.unwrap();
    check().await;
    c.copy(id, "app/copy", "app/moved", true).await.unwrap();
    check().await;
    c.delete(id, "app/dev/a", &[]).await.unwrap();
    check().await;
    c.undelete(id, "app/dev/a", &[]).await.unwrap();
    check().await;
    c.destroy(id, "app/dev/a", &[1]).await.unwrap();
    check().await;
    c.rotate(
        id,
        "app/dev/b",
        RotateRequest {
            value: Some(value("b2")),
            ..RotateRequest::default()
        },
    )
    .await
    .unwrap();
    check().await;
    stage(&n, "app/dev/b").await;
    check().await;
    c.promote(id, "app/dev/b", Some(0)).await.unwrap();
    check().await;
    stage(&n, "app/gen").await;
    check().await;
    c.cancel_rotation(id, "app/gen").await.unwrap();
    check().await;
    c.set_expiry(id, "app/gen", Some(coffer_core::now_ms() + 3_600_000))
        .await
        .unwrap();
    check().await;
    c.set_expiry(id, "app/gen", None).await.unwrap();
    check().await;
    let (plan, _) = c
        .promote_env(id, "app/dev", "app/prod", None)
        .await
        .unwrap();
    c.promote_env(id, "app/dev", "app/prod", Some(&plan))
        .await
        .unwrap();
    check().await;
    c.rotate_keyring(id).await.unwrap();
    check().await;
}

#[tokio::test]
async fn an_import_that_fails_to_commit_caches_nothing_it_did_not_write() {
    let n = node().await;
    let c = &n.coffer;
    c.write(&n.root, "app/b", &value("b1"), None).await.unwrap();
    // This node caches app/a (absent) and app/b at version 1.
    assert!(c.read(&n.root, "app/a", None).await.is_err());
    assert_eq!(c.read(&n.root, "app/b", None).await.unwrap().version, 1);

    // Another node moves app/b on behind this node's back.
    let (other, oroot) = n.fresh().await;
    other
        .write(&oroot, "app/b", &value("b2"), None)
        .await
        .unwrap();

    // The import checks against the stale cache, then its commit conflicts:
    // all or nothing.
    let import = c
        .write_many(
            &n.root,
            &[
                ("app/a".into(), value("a1"), None),
                ("app/b".into(), value("b-import"), Some(1)),
            ],
        )
        .await;
    assert!(is_conflict(&import), "{import:?}");
    assert!(
        matches!(
            c.read(&n.root, "app/a", None).await,
            Err(CoreError::NotFound(_))
        ),
        "app/a was cached though never committed"
    );
    let b = c.read(&n.root, "app/b", None).await.unwrap();
    assert_eq!((b.version, as_text(&b.value)), (2, as_text(&value("b2"))));
    n.assert_cache_agrees(&["app/a", "app/b"]).await;

    // A plain write against the stale cache retries and lands after the
    // other node's version.
    other
        .write(&oroot, "app/b", &value("b3"), None)
        .await
        .unwrap();
    let w = c.write(&n.root, "app/b", &value("b4"), None).await.unwrap();
    assert_eq!(w.version, 4);
    // With check-and-set against a stale cache the caller is told.
    other
        .write(&oroot, "app/b", &value("b5"), None)
        .await
        .unwrap();
    let cas = c.write(&n.root, "app/b", &value("b6"), Some(4)).await;
    assert!(is_conflict(&cas), "{cas:?}");
    assert_eq!(assert_no_gaps(c, &n.root, "app/b").await, 5);
    n.assert_cache_agrees(&["app/a", "app/b"]).await;
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_reads_the_paths_it_has_not_cached_in_one_batch_and_stays_all_or_nothing() {
    let n = node().await;
    let c = &n.coffer;
    // One path this node has cached, one only another node has written
    // (this node has never looked at it), one new.
    c.write(&n.root, "imp/cached", &value("c1"), None)
        .await
        .unwrap();
    let (other, oroot) = n.fresh().await;
    for v in ["s1", "s2"] {
        other
            .write(&oroot, "imp/stored", &value(v), None)
            .await
            .unwrap();
    }
    let batch = |stored_cas| {
        vec![
            ("imp/new".to_string(), value("n1"), None),
            ("imp/cached".to_string(), value("c2"), Some(1)),
            ("imp/stored".to_string(), value("s3"), stored_cas),
        ]
    };

    // A check-and-set on the path read in the batch fails: nothing at all
    // is written, and the refusal names it with its real version.
    let refused = c.write_many(&n.root, &batch(Some(1))).await;
    match &refused {
        Err(CoreError::Conflict(m)) => {
            let m = m.to_string();
            assert!(m.contains("imp/stored") && m.contains("version 2"), "{m}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        c.read(&n.root, "imp/new", None).await,
        Err(CoreError::NotFound(_))
    ));
    assert_eq!(
        c.read(&n.root, "imp/cached", None).await.unwrap().version,
        1
    );
    assert_eq!(
        c.read(&n.root, "imp/stored", None).await.unwrap().version,
        2
    );
    n.assert_cache_agrees(&["imp/new", "imp/cached", "imp/stored"])
        .await;

    // With the right check-and-set every path gets its next version.
    let written = c.write_many(&n.root, &batch(Some(2))).await.unwrap();
    let versions: Vec<(&str, u64)> = written
        .iter()
        .map(|r| (r.path.as_str(), r.version))
        .collect();
    assert_eq!(
        versions,
        [("imp/new", 1), ("imp/cached", 2), ("imp/stored", 3)]
    );
    for (path, tag) in [
        ("imp/new", "n1"),
        ("imp/cached", "c2"),
        ("imp/stored", "s3"),
    ] {
        let r = c.read(&n.root, path, None).await.unwrap();
        assert_eq!(as_text(&r.value), as_text(&value(tag)), "{path}");
        assert_no_gaps(c, &n.root, path).await;
    }
    n.assert_cache_agrees(&["imp/new", "imp/cached", "imp/stored"])
        .await;

    // Another node creates a path this node found absent a moment ago:
    // the import's check-and-set sees it and refuses the whole import.
    assert!(c.read(&n.root, "imp/late", None).await.is_err());
    other
        .write(&oroot, "imp/late", &value("l1"), None)
        .await
        .unwrap();
    let late = c
        .write_many(
            &n.root,
            &[
                ("imp/late".to_string(), value("l2"), Some(0)),
                ("imp/new".to_string(), value("n2"), None),
            ],
        )
        .await;
    assert!(is_conflict(&late), "{late:?}");
    assert_eq!(c.read(&n.root, "imp/new", None).await.unwrap().version, 1);
    n.assert_cache_agrees(&["imp/late", "imp/new"]).await;
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_judges_every_value_as_one_write_would_and_in_order() {
    // A batch big enough to be judged on several threads: weak values
    // scattered through it are each refused by name under a rule, and
    // warned about in their own receipt without one.
    let n = node().await;
    let c = &n.coffer;
    c.set_rule(
        &n.root,
        "strict/*",
        coffer_core::RuleSpec {
            min_bits: Some(60),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let weak_at = [3usize, 150, 151, 299];
    let batch = |folder: &str| -> Vec<(String, SecretValue, Option<u64>)> {
        (0..300)
            .map(|i| {
                let v = if weak_at.contains(&i) {
                    text("password1")
                } else {
                    value(&format!("{i:03}"))
                };
                (format!("{folder}/k{i:03}"), v, None)
            })
            .collect()
    };
    match c.write_many(&n.root, &batch("strict")).await {
        Err(CoreError::Invalid(e)) => {
            let m = e.to_string();
            let named: Vec<usize> = (0..300)
                .filter(|i| m.contains(&format!("strict/k{i:03}")))
                .collect();
            assert_eq!(named, weak_at, "{m}");
        }
        other => panic!("expected the weak values refused, got {other:?}"),
    }
    assert!(c.read(&n.root, "strict/k000", None).await.is_err());

    let written = c.write_many(&n.root, &batch("loose")).await.unwrap();
    assert_eq!(written.len(), 300);
    for (i, r) in written.iter().enumerate() {
        assert_eq!(r.path, format!("loose/k{i:03}"));
        assert_eq!(
            !r.warnings.is_empty(),
            weak_at.contains(&i),
            "{}: {:?}",
            r.path,
            r.warnings
        );
    }
}

// ---- sealed -----------------------------------------------------------------

#[tokio::test]
async fn every_writer_refuses_while_sealed_and_changes_nothing() {
    let n = node().await;
    let c = &n.coffer;
    let id = &n.root;
    c.write(id, "app/dev/a", &value("a"), None).await.unwrap();
    c.write(id, "app/prod/a", &value("p"), None).await.unwrap();
    stage(&n, "app/prod/a").await;
    c.write(id, "app/dev/b", &value("b"), None).await.unwrap();
    let (plan, _) = c
        .promote_env(id, "app/dev", "app/other", None)
        .await
        .unwrap();
    let paths = [
        "app/dev/a",
        "app/dev/b",
        "app/prod/a",
        "app/new",
        "app/other/a",
    ];
    let mut before = Vec::new();
    for p in paths {
        before.push(view(c, id, p).await);
    }
    c.seal(id).await.unwrap();

    let spec = coffer_crypto::generate::Spec::parse("base64:24").unwrap();
    let rot = || RotateRequest {
        value: Some(value("r")),
        ..RotateRequest::default()
    };
    let results: Vec<(&str, Result<(), CoreError>)> = vec![
        (
            "write",
            c.write(id, "app/new", &value("n"), None).await.map(drop),
        ),
        (
            "write existing",
            c.write(id, "app/dev/a", &value("n"), Some(1))
                .await
                .map(drop),
        ),
        (
            "write_generated",
            c.write_generated(id, "app/new", &spec, None)
                .await
                .map(drop),
        ),
        (
            "write_many",
            c.write_many(id, &[("app/new".into(), value("n"), None)])
                .await
                .map(drop),
        ),
        ("rollback", c.rollback(id, "app/dev/a", 1).await.map(drop)),
        (
            "copy",
            c.copy(id, "app/dev/a", "app/new", false).await.map(drop),
        ),
        (
            "move",
            c.copy(id, "app/dev/a", "app/new", true).await.map(drop),
        ),
        (
            "promote_env",
            c.promote_env(id, "app/dev", "app/other", Some(&plan))
                .await
                .map(drop),
        ),
        ("delete", c.delete(id, "app/dev/a", &[]).await.map(drop)),
        ("undelete", c.undelete(id, "app/dev/a", &[]).await.map(drop)),
        ("destroy", c.destroy(id, "app/dev/a", &[1]).await.map(drop)),
        ("rotate", c.rotate(id, "app/dev/a", rot()).await.map(drop)),
        ("promote", c.promote(id, "app/prod/a", None).await.map(drop)),
        (
            "cancel",
            c.cancel_rotation(id, "app/prod/a").await.map(drop),
        ),
        (
            "set_expiry",
            c.set_expiry(id, "app/dev/a", Some(1)).await.map(drop),
        ),
    ];
    for (what, r) in results {
        assert!(matches!(r, Err(CoreError::Sealed)), "{what}: {r:?}");
    }

    c.unseal(n.unseal_key.expose_secret()).await.unwrap();
    let root = c
        .authenticate(n.root_token.expose_secret(), None)
        .await
        .unwrap();
    for (p, b) in paths.iter().zip(before) {
        assert_eq!(view(c, &root, p).await, b, "{p} changed while sealed");
    }
}

// ---- seal reservations ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tiny_key_limit_adds_keys_under_concurrent_writes_and_every_value_opens() {
    let n = node_with(CoreOptions {
        key_max_encryptions: 16,
        ..CoreOptions::default()
    })
    .await;
    let keys_before = n.coffer.keyring_status(&n.root).unwrap().keys.len();
    let mut tasks = Vec::new();
    for t in 0..6 {
        let (c, id) = (n.coffer.clone(), n.root.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let path = format!("app/k{}", (t + i) % 4);
                c.write(&id, &path, &value(&format!("{t}-{i}")), None)
                    .await
                    .unwrap();
            }
            c.write_many(
                &id,
                &[
                    (format!("app/m{t}a"), value("ma"), None),
                    (format!("app/m{t}b"), value("mb"), None),
                ],
            )
            .await
            .unwrap();
        }));
    }
    bounded("writers under a tiny key limit", async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    let status = n.coffer.keyring_status(&n.root).unwrap();
    // 72 encryptions at 16 per key need several keys.
    assert!(
        status.keys.len() >= keys_before + 3,
        "only {} keys for 72 encryptions",
        status.keys.len()
    );
    let mut total = 0;
    let mut paths: Vec<String> = (0..4).map(|k| format!("app/k{k}")).collect();
    for t in 0..6 {
        paths.push(format!("app/m{t}a"));
        paths.push(format!("app/m{t}b"));
    }
    let (fresh, froot) = n.fresh().await;
    let mut key_ids = std::collections::BTreeSet::new();
    for p in &paths {
        let m = fresh.metadata(&froot, p).await.unwrap();
        for v in &m.versions {
            key_ids.insert(v.key_id);
            fresh
                .read(&froot, p, Some(v.version))
                .await
                .unwrap_or_else(|e| panic!("{p} v{} does not open: {e}", v.version));
            assert_eq!(v.state, VersionState::Active);
            total += 1;
        }
    }
    assert_eq!(total, 72);
    assert!(key_ids.len() >= 3, "values sealed under {key_ids:?}");
    fresh.close().await.unwrap();
}

// ---- audit facts ------------------------------------------------------------

#[tokio::test]
async fn each_writer_notes_the_version_it_wrote() {
    use coffer_core::audit::scope;
    let n = node().await;
    let c = &n.coffer;
    let id = &n.root;

    let (r, f) = scope(c.write(id, "app/dev/a", &value("a1"), None)).await;
    assert_eq!(f.version, Some(r.unwrap().version));
    let (r, f) = scope(c.write(id, "app/dev/a", &value("a2"), None)).await;
    assert_eq!((r.unwrap().version, f.version), (2, Some(2)));
    let spec = coffer_crypto::generate::Spec::parse("base64:24").unwrap();
    let (r, f) = scope(c.write_generated(id, "app/dev/g", &spec, None)).await;
    assert_eq!(f.version, Some(r.unwrap().version));

    let (r, f) = scope(c.write_many(
        id,
        &[
            ("app/dev/b".into(), value("b"), None),
            ("app/dev/a".into(), value("a3"), None),
        ],
    ))
    .await;
    let receipts = r.unwrap();
    let mut expected: Vec<(String, u64)> = receipts
        .iter()
        .map(|r| (r.path.clone(), r.version))
        .collect();
    let mut noted = f.writes.clone();
    expected.sort();
    noted.sort();
    assert_eq!(noted, expected);
    assert_eq!(
        noted,
        vec![("app/dev/a".into(), 3), ("app/dev/b".into(), 1)]
    );

    let (r, f) = scope(c.rollback(id, "app/dev/a", 1)).await;
    assert_eq!((r.unwrap().version, f.version), (4, Some(4)));

    let (r, f) = scope(c.copy(id, "app/dev/a", "app/dev/c", false)).await;
    assert_eq!((r.unwrap().version, f.version), (4, Some(4)));
    assert_eq!(
        f.writes,
        (1..=4)
            .map(|v| ("app/dev/c".to_string(), v))
            .collect::<Vec<_>>()
    );

    let rot = RotateRequest {
        value: Some(value("r")),
        ..RotateRequest::default()
    };
    let (r, f) = scope(c.rotate(id, "app/dev/a", rot)).await;
    assert_eq!((r.unwrap().version, f.version), (5, Some(5)));
    let (r, f) = scope(c.rotate(
        id,
        "app/dev/a",
        RotateRequest {
            value: Some(value("s")),
            stage: true,
            ..RotateRequest::default()
        },
    ))
    .await;
    assert_eq!((r.unwrap().version, f.version), (6, Some(6)));
    let (r, f) = scope(c.promote(id, "app/dev/a", None)).await;
    assert_eq!((r.unwrap().version, f.version), (6, Some(6)));

    // A refused write notes no version.
    let (r, f) = scope(c.write(id, "app/dev/a", &value("x"), Some(1))).await;
    assert!(is_conflict(&r));
    assert_eq!(f.version, None);
    let (r, f) = scope(c.write_many(
        id,
        &[
            ("app/dev/new".into(), value("n"), None),
            ("app/dev/a".into(), value("x"), Some(1)),
        ],
    ))
    .await;
    assert!(is_conflict(&r));
    assert!(f.writes.is_empty(), "{:?}", f.writes);
}

// ---- reads during writes ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_during_writes_sees_a_whole_version() {
    let n = node().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (c, id) = (n.coffer.clone(), n.root.clone());
    // One writer, so that version v holds the value tagged v.
    let writer = tokio::spawn(async move {
        for v in 1..=60u64 {
            let tag = format!("{v}");
            if v % 3 == 0 {
                c.write_many(
                    &id,
                    &[
                        ("app/rw/x".into(), value(&tag), None),
                        ("app/rw/y".into(), value(&tag), None),
                    ],
                )
                .await
                .unwrap();
            } else {
                let r = c.write(&id, "app/rw/x", &value(&tag), None).await.unwrap();
                let r2 = c.write(&id, "app/rw/y", &value(&tag), None).await.unwrap();
                assert_eq!((r.version, r2.version), (v, v));
            }
        }
    });
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (c, id, stop) = (n.coffer.clone(), n.root.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = 0;
            let mut last = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for p in ["app/rw/x", "app/rw/y"] {
                    match c.read(&id, p, None).await {
                        Ok(r) => {
                            assert_eq!(
                                as_text(&r.value),
                                as_text(&value(&r.version.to_string())),
                                "{p} v{} holds another version's value",
                                r.version
                            );
                            seen += 1;
                        }
                        Err(CoreError::NotFound(_)) => {}
                        Err(e) => panic!("read failed during writes: {e}"),
                    }
                }
                let x = c
                    .read_at(&id, "app/rw/x", At::Label(Label::Current))
                    .await
                    .map_or(0, |r| r.version);
                // Versions only move forward.
                assert!(x >= last, "x went back from v{last} to v{x}");
                last = x;
                tokio::task::yield_now().await;
            }
            seen
        }));
    }
    bounded("writer", async { writer.await.unwrap() }).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = 0;
    for r in readers {
        seen += bounded("reader", r).await.unwrap();
    }
    assert!(seen > 0);
    n.assert_cache_agrees(&["app/rw/x", "app/rw/y"]).await;
}

#[tokio::test]
async fn a_move_that_fails_to_commit_notes_no_writes() {
    use coffer_core::audit::scope;
    let n = node().await;
    let c = &n.coffer;
    c.write(&n.root, "app/from", &value("1"), None)
        .await
        .unwrap();
    // This node caches app/from at version 1; another node then writes
    // version 2, so the move's removal of the source (checked against
    // version 1) fails at commit.
    assert_eq!(c.read(&n.root, "app/from", None).await.unwrap().version, 1);
    let (other, oroot) = n.fresh().await;
    other
        .write(&oroot, "app/from", &value("2"), None)
        .await
        .unwrap();
    let (r, f) = scope(c.copy(&n.root, "app/from", "app/to", true)).await;
    assert!(is_conflict(&r), "{r:?}");
    // Its audit record must not claim versions that were never written.
    assert!(f.writes.is_empty(), "a failed move noted {:?}", f.writes);
    assert_eq!(f.version, None);
    assert!(matches!(
        c.read(&n.root, "app/to", None).await,
        Err(CoreError::NotFound(_))
    ));
    let from = c.read(&n.root, "app/from", None).await.unwrap();
    assert_eq!(
        (from.version, as_text(&from.value)),
        (2, as_text(&value("2")))
    );
    n.assert_cache_agrees(&["app/from", "app/to"]).await;
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rewrap_racing_writes_keeps_every_value_and_the_cache_right() {
    let n = node().await;
    let paths: Vec<String> = (0..8).map(|i| format!("app/rw{i}")).collect();
    for p in &paths {
        for i in 0..3 {
            n.coffer
                .write(&n.root, p, &value(&format!("{i}")), None)
                .await
                .unwrap();
        }
    }
    let old_key = n.coffer.keyring_status(&n.root).unwrap().active_key;
    n.coffer.rotate_keyring(&n.root).await.unwrap();
    let (c, id, ps) = (n.coffer.clone(), n.root.clone(), paths.clone());
    let writer = tokio::spawn(async move {
        for i in 0..5 {
            for p in &ps {
                c.write(&id, p, &value(&format!("w{i}")), None)
                    .await
                    .unwrap();
            }
        }
    });
    let c = n.coffer.clone();
    let rewrapper = tokio::spawn(async move {
        let mut moved = 0;
        loop {
            let m = c.rewrap(5).await.unwrap();
            if m == 0 {
                return moved;
            }
            moved += m;
        }
    });
    let moved = bounded("rewrap and writes", async {
        writer.await.unwrap();
        rewrapper.await.unwrap()
    })
    .await;
    assert_eq!(moved, 24);
    for p in &paths {
        assert_eq!(assert_no_gaps(&n.coffer, &n.root, p).await, 8);
        let m = n.coffer.metadata(&n.root, p).await.unwrap();
        assert!(m.versions.iter().all(|v| v.key_id != old_key), "{p}");
    }
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    n.assert_cache_agrees(&refs).await;
}

/// How many stored versions of `paths` each keyring key sealed.
async fn sealed_per_key(c: &Coffer, id: &Identity, paths: &[&str]) -> Vec<(u32, usize)> {
    let mut per_key = std::collections::BTreeMap::new();
    for p in paths {
        for v in c.metadata(id, p).await.unwrap().versions {
            *per_key.entry(v.key_id).or_insert(0) += 1;
        }
    }
    per_key.into_iter().collect()
}

#[tokio::test]
async fn a_copy_seals_under_the_key_its_reservation_added() {
    let n = node_with(CoreOptions {
        key_max_encryptions: 16,
        ..CoreOptions::default()
    })
    .await;
    let c = &n.coffer;
    for i in 0..16 {
        c.write(&n.root, "app/src", &value(&format!("{i}")), None)
            .await
            .unwrap();
    }
    // The copy's 16 encryptions do not fit the key the writes used up: its
    // reservation adds a key, and the copy must seal under that one.
    c.copy(&n.root, "app/src", "app/dst", false).await.unwrap();
    let per_key = sealed_per_key(c, &n.root, &["app/src", "app/dst"]).await;
    assert!(per_key.len() >= 2, "{per_key:?}");
    assert!(
        per_key.iter().all(|(_, count)| *count <= 16),
        "a key sealed more than its limit: {per_key:?}"
    );
    for v in 1..=16 {
        c.read(&n.root, "app/dst", Some(v)).await.unwrap();
    }
}

#[tokio::test]
async fn a_rewrap_seals_under_the_key_its_reservation_added() {
    let n = node_with(CoreOptions {
        key_max_encryptions: 16,
        ..CoreOptions::default()
    })
    .await;
    let c = &n.coffer;
    for i in 0..16 {
        c.write(&n.root, "app/old", &value(&format!("{i}")), None)
            .await
            .unwrap();
    }
    c.rotate_keyring(&n.root).await.unwrap();
    for i in 0..8 {
        c.write(&n.root, "app/new", &value(&format!("{i}")), None)
            .await
            .unwrap();
    }
    // Re-wrapping the 16 old versions does not fit what is left of the
    // active key: the reservation adds a key, and the re-wrap must seal
    // under that one.
    // (One round: with more versions than one key may seal, re-wrapping
    // until nothing moves would never end.)
    let moved = c.rewrap(100).await.unwrap();
    assert_eq!(moved, 16);
    let per_key = sealed_per_key(c, &n.root, &["app/old", "app/new"]).await;
    assert!(
        per_key.iter().all(|(_, count)| *count <= 16),
        "a key sealed more than its limit: {per_key:?}"
    );
    for v in 1..=16 {
        c.read(&n.root, "app/old", Some(v)).await.unwrap();
    }
    n.assert_cache_agrees(&["app/old", "app/new"]).await;
}
