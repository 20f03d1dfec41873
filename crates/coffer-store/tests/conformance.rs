//! The storage conformance suite: behaviour every backend must share.
//!
//! Each case is an async function over `&dyn Storage`; the `suite!` macro
//! instantiates every case for one backend. A new backend adds one `suite!` line.

use std::sync::Arc;

use coffer_store::{
    Change, Compromise, Expect, Exported, ListEntry, ListQuery, Mutation, PostgresOptions,
    PostgresStore, RevokeScope, SqliteStore, Storage, StoreError, TokenKind, TokenRecord,
    VersionRecord, VersionState, VersionStateChange,
};

fn record(path: &str, version: u64, bytes: &[u8]) -> VersionRecord {
    VersionRecord {
        path: path.to_string(),
        version,
        created_at: 1_000 + version as i64,
        created_by: "tester".to_string(),
        state: VersionState::Active,
        key_id: 1,
        ciphertext: bytes.to_vec(),
        compromised: None,
    }
}

fn mark(at: i64, reason: &str) -> Compromise {
    Compromise {
        at,
        reason: reason.to_string(),
    }
}

fn compromise(path: &str, version: u64, at: i64, reason: &str) -> Mutation {
    Mutation::MarkCompromised {
        path: path.to_string(),
        version,
        mark: mark(at, reason),
    }
}

async fn a_version_is_marked_compromised_once(s: &dyn Storage) {
    for v in 1..=3 {
        put(s, "app/dev/k", v).await.unwrap();
    }
    s.commit(vec![compromise("app/dev/k", 2, 500, "pasted in chat")])
        .await
        .unwrap();
    let v2 = s.get_version("app/dev/k", 2).await.unwrap().unwrap();
    assert_eq!(v2.compromised, Some(mark(500, "pasted in chat")));
    assert_eq!(
        v2.ciphertext, b"ct-app/dev/k-2",
        "the mark leaves the value"
    );
    let history = s.history("app/dev/k").await.unwrap();
    let marks: Vec<_> = history.iter().map(|r| r.compromised.clone()).collect();
    assert_eq!(marks, [None, Some(mark(500, "pasted in chat")), None]);
    // The first mark stays.
    s.commit(vec![compromise("app/dev/k", 2, 900, "again")])
        .await
        .unwrap();
    let v2 = s.get_version("app/dev/k", 2).await.unwrap().unwrap();
    assert_eq!(v2.compromised, Some(mark(500, "pasted in chat")));
    // A missing version is a conflict, and the commit writes nothing.
    for missing in [("app/dev/k", 4), ("app/dev/nothing", 1)] {
        let r = s
            .commit(vec![
                compromise("app/dev/k", 3, 600, "x"),
                compromise(missing.0, missing.1, 600, "x"),
            ])
            .await;
        assert!(
            matches!(r, Err(StoreError::Conflict(_))),
            "{missing:?}: {r:?}"
        );
        let v3 = s.get_version("app/dev/k", 3).await.unwrap().unwrap();
        assert_eq!(v3.compromised, None);
    }
    // A destroyed version can be marked (it leaked before it was erased),
    // and keeps the mark.
    s.commit(vec![
        Mutation::SetVersionState {
            path: "app/dev/k".into(),
            versions: vec![1],
            change: VersionStateChange::Destroy(700),
            at: 700,
        },
        compromise("app/dev/k", 1, 710, "old leak"),
    ])
    .await
    .unwrap();
    let v1 = s.get_version("app/dev/k", 1).await.unwrap().unwrap();
    assert_eq!(v1.compromised, Some(mark(710, "old leak")));
    assert!(v1.ciphertext.is_empty());
    // A copy written with the mark keeps it (a move's target).
    s.commit(vec![Mutation::PutVersion {
        record: VersionRecord {
            compromised: Some(mark(800, "copied")),
            ..record("app/dev/copy", 1, b"c")
        },
        expected_current: 0,
    }])
    .await
    .unwrap();
    let c = s.get_version("app/dev/copy", 1).await.unwrap().unwrap();
    assert_eq!(c.compromised, Some(mark(800, "copied")));
    // The change is seen by other nodes as a change of the secret.
    assert_eq!(
        Change::of(&compromise("app/dev/k", 1, 1, "r")),
        Some(Change::Secret("app/dev/k".into()))
    );
}

async fn put(s: &dyn Storage, path: &str, version: u64) -> Result<(), StoreError> {
    s.commit(vec![Mutation::PutVersion {
        record: record(path, version, format!("ct-{path}-{version}").as_bytes()),
        expected_current: version - 1,
    }])
    .await
}

fn names(entries: &[ListEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

fn query(prefix: &str, recursive: bool) -> ListQuery {
    ListQuery {
        prefix: prefix.to_string(),
        recursive,
        include_deleted: false,
        after: None,
        limit: 1000,
    }
}

async fn versions_are_written_and_read_back(s: &dyn Storage) {
    put(s, "app/dev/a", 1).await.unwrap();
    put(s, "app/dev/a", 2).await.unwrap();
    let meta = s.get_meta("app/dev/a").await.unwrap().unwrap();
    assert_eq!(meta.current_version, 2);
    assert!(meta.live);
    assert_eq!(meta.created_at, 1_001);
    assert_eq!(meta.updated_at, 1_002);
    let v1 = s.get_version("app/dev/a", 1).await.unwrap().unwrap();
    assert_eq!(v1.ciphertext, b"ct-app/dev/a-1");
    assert_eq!(v1.created_by, "tester");
    assert_eq!(v1.state, VersionState::Active);
    assert!(s.get_version("app/dev/a", 3).await.unwrap().is_none());
    assert!(s.get_meta("app/dev/b").await.unwrap().is_none());
    let hist = s.history("app/dev/a").await.unwrap();
    assert_eq!(
        hist.iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(
        hist.iter().all(|r| r.ciphertext.is_empty()),
        "history never carries ciphertext"
    );
}

async fn metadata_is_read_in_bulk(s: &dyn Storage) {
    put(s, "bulk/a", 1).await.unwrap();
    put(s, "bulk/a", 2).await.unwrap();
    put(s, "bulk/c", 1).await.unwrap();
    s.commit(vec![Mutation::SetVersionState {
        path: "bulk/c".into(),
        versions: vec![1],
        change: VersionStateChange::Delete(5_000),
        at: 5_000,
    }])
    .await
    .unwrap();
    let asked: Vec<String> = ["bulk/b", "bulk/c", "bulk/a", "bulk/", "bulk/a/x", "other"]
        .iter()
        .map(|p| p.to_string())
        .collect();
    let mut found = s.get_metas(&asked).await.unwrap();
    found.sort_by(|x, y| x.path.cmp(&y.path));
    assert_eq!(found.len(), 2, "only the secrets that exist: {found:?}");
    for (meta, path) in found.iter().zip(["bulk/a", "bulk/c"]) {
        assert_eq!(
            Some(meta),
            s.get_meta(path).await.unwrap().as_ref(),
            "the same answer as get_meta, deleted or not"
        );
    }
    assert!(!found[1].live);
    assert!(s.get_metas(&[]).await.unwrap().is_empty());
    // A path listed twice is found once or twice, never invented.
    let twice = s
        .get_metas(&["bulk/a".to_string(), "bulk/a".to_string()])
        .await
        .unwrap();
    assert!(!twice.is_empty() && twice.iter().all(|m| m.path == "bulk/a"));
}

async fn check_and_set_conflicts_write_nothing(s: &dyn Storage) {
    put(s, "p/x", 1).await.unwrap();
    // Stale writer: based on version 0 again.
    let err = s
        .commit(vec![Mutation::PutVersion {
            record: record("p/x", 1, b"stale"),
            expected_current: 0,
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // Version number that does not follow expected_current.
    let err = s
        .commit(vec![Mutation::PutVersion {
            record: record("p/x", 5, b"skip"),
            expected_current: 1,
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(s.get_meta("p/x").await.unwrap().unwrap().current_version, 1);
    assert_eq!(
        s.get_version("p/x", 1).await.unwrap().unwrap().ciphertext,
        b"ct-p/x-1"
    );
}

async fn a_commit_is_all_or_nothing(s: &dyn Storage) {
    put(s, "q/existing", 1).await.unwrap();
    let err = s
        .commit(vec![
            Mutation::PutVersion {
                record: record("q/new", 1, b"n"),
                expected_current: 0,
            },
            Mutation::PutSystem {
                key: "k".into(),
                value: b"v".to_vec(),
            },
            Mutation::PutVersion {
                record: record("q/existing", 1, b"dup"),
                expected_current: 0,
            },
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    assert!(s.get_meta("q/new").await.unwrap().is_none());
    assert!(s.get_system("k").await.unwrap().is_none());
}

async fn concurrent_writers_lose_nothing(s: Arc<dyn Storage>) {
    // Many distinct paths at once: every write lands (and a backend that
    // group-commits batches them).
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            put(&*s, &format!("many/{i:03}"), 1).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let page = s.list(&query("many/", false)).await.unwrap();
    assert_eq!(page.entries.len(), 200);

    // Many writers racing for the same next version: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { put(&*s, "race/x", 1).await }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(won, 1);
}

async fn delete_undelete_destroy(s: &dyn Storage) {
    for v in 1..=3 {
        put(s, "d/x", v).await.unwrap();
    }
    let change = |versions: Vec<u64>, change| Mutation::SetVersionState {
        path: "d/x".into(),
        versions,
        change,
        at: 5_000,
    };
    s.commit(vec![change(vec![3], VersionStateChange::Delete(4_000))])
        .await
        .unwrap();
    let meta = s.get_meta("d/x").await.unwrap().unwrap();
    assert!(
        !meta.live,
        "deleting the current version makes the secret not live"
    );
    assert_eq!(meta.updated_at, 5_000);
    assert_eq!(
        s.get_version("d/x", 3).await.unwrap().unwrap().state,
        VersionState::Deleted(4_000)
    );
    // Deleted paths disappear from default listings and show with include_deleted.
    assert!(
        s.list(&query("d/", false))
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    let mut q = query("d/", false);
    q.include_deleted = true;
    assert_eq!(names(&s.list(&q).await.unwrap().entries), vec!["x"]);

    s.commit(vec![change(vec![3], VersionStateChange::Undelete)])
        .await
        .unwrap();
    assert!(s.get_meta("d/x").await.unwrap().unwrap().live);

    s.commit(vec![change(vec![1, 3], VersionStateChange::Destroy(6_000))])
        .await
        .unwrap();
    let v1 = s.get_version("d/x", 1).await.unwrap().unwrap();
    assert_eq!(v1.state, VersionState::Destroyed(6_000));
    assert!(v1.ciphertext.is_empty(), "destroy erases the ciphertext");
    assert!(!s.get_meta("d/x").await.unwrap().unwrap().live);
    // A destroyed version cannot be undeleted.
    s.commit(vec![change(vec![1], VersionStateChange::Undelete)])
        .await
        .unwrap();
    assert_eq!(
        s.get_version("d/x", 1).await.unwrap().unwrap().state,
        VersionState::Destroyed(6_000)
    );
    // Untouched version keeps its ciphertext.
    assert_eq!(
        s.get_version("d/x", 2).await.unwrap().unwrap().ciphertext,
        b"ct-d/x-2"
    );
}

async fn a_secret_moves_with_its_history(s: &dyn Storage) {
    for v in 1..=3 {
        put(s, "m/from", v).await.unwrap();
    }
    s.commit(vec![Mutation::SetVersionState {
        path: "m/from".into(),
        versions: vec![1],
        change: VersionStateChange::Destroy(2_000),
        at: 2_000,
    }])
    .await
    .unwrap();
    // A copy keeps numbers, states and times: versions are put in order in
    // one commit, and the source removed in the same transaction.
    let mut mutations = Vec::new();
    for r in s.history("m/from").await.unwrap() {
        let full = s.get_version("m/from", r.version).await.unwrap().unwrap();
        let expected_current = full.version - 1;
        mutations.push(Mutation::PutVersion {
            record: VersionRecord {
                path: "m/to".into(),
                ..full
            },
            expected_current,
        });
    }
    // A stale remover changes nothing, copy included.
    let mut stale = mutations.clone();
    stale.push(Mutation::DeleteSecret {
        path: "m/from".into(),
        expected_current: 2,
    });
    assert!(matches!(
        s.commit(stale).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.get_meta("m/to").await.unwrap().is_none());
    mutations.push(Mutation::DeleteSecret {
        path: "m/from".into(),
        expected_current: 3,
    });
    s.commit(mutations).await.unwrap();
    assert!(s.get_meta("m/from").await.unwrap().is_none());
    assert!(s.history("m/from").await.unwrap().is_empty());
    assert!(s.get_version("m/from", 2).await.unwrap().is_none());
    let meta = s.get_meta("m/to").await.unwrap().unwrap();
    assert_eq!((meta.current_version, meta.live), (3, true));
    assert_eq!(meta.created_at, 1_001);
    let v1 = s.get_version("m/to", 1).await.unwrap().unwrap();
    assert_eq!(v1.state, VersionState::Destroyed(2_000));
    assert_eq!(
        s.get_version("m/to", 3).await.unwrap().unwrap().ciphertext,
        b"ct-m/from-3"
    );
    assert_eq!(
        names(&s.list(&query("m/", false)).await.unwrap().entries),
        vec!["to"]
    );
    // Removing what is not there is a conflict.
    assert!(matches!(
        s.commit(vec![Mutation::DeleteSecret {
            path: "m/from".into(),
            expected_current: 3
        }])
        .await,
        Err(StoreError::Conflict(_))
    ));
}

async fn versions_are_resealed_under_a_new_key(s: &dyn Storage) {
    for v in 1..=3 {
        put(s, "k/a", v).await.unwrap();
    }
    put(s, "k/b", 1).await.unwrap();
    s.commit(vec![Mutation::SetVersionState {
        path: "k/a".into(),
        versions: vec![2],
        change: VersionStateChange::Destroy(2_000),
        at: 2_000,
    }])
    .await
    .unwrap();
    // Every version was sealed under key 1; destroyed ones have nothing to move.
    let old = s.versions_sealed_elsewhere(2, 10).await.unwrap();
    let ids: Vec<(String, u64)> = old.iter().map(|r| (r.path.clone(), r.version)).collect();
    assert_eq!(
        ids,
        vec![("k/a".into(), 1), ("k/a".into(), 3), ("k/b".into(), 1)]
    );
    assert_eq!(old[0].ciphertext, b"ct-k/a-1");
    assert_eq!(s.versions_sealed_elsewhere(2, 2).await.unwrap().len(), 2);
    assert!(s.versions_sealed_elsewhere(1, 10).await.unwrap().is_empty());
    let reseal = |version, expected_key_id| Mutation::ResealVersion {
        path: "k/a".into(),
        version,
        expected_key_id,
        key_id: 2,
        ciphertext: format!("new-{version}").into_bytes(),
    };
    s.commit(vec![reseal(1, 1)]).await.unwrap();
    let v1 = s.get_version("k/a", 1).await.unwrap().unwrap();
    assert_eq!((v1.key_id, v1.ciphertext.as_slice()), (2, &b"new-1"[..]));
    // Stale (already moved), destroyed or missing: a conflict, nothing changes.
    for (version, expected) in [(1, 1), (2, 1), (9, 1)] {
        assert!(matches!(
            s.commit(vec![reseal(version, expected), reseal(3, 1)])
                .await,
            Err(StoreError::Conflict(_))
        ));
    }
    assert_eq!(s.get_version("k/a", 3).await.unwrap().unwrap().key_id, 1);
    assert!(
        s.get_version("k/a", 2)
            .await
            .unwrap()
            .unwrap()
            .ciphertext
            .is_empty()
    );
    assert_eq!(s.versions_sealed_elsewhere(2, 10).await.unwrap().len(), 2);
}

async fn listing_one_level_and_recursive(s: &dyn Storage) {
    for p in [
        "app/dev/a",
        "app/dev/b",
        "app/dev/sub/c",
        "app/dev/sub/deeper/d",
        "app/dev2/x",
        "app/dev",
        "app/devx",
        "app/prod/a",
        "other/z",
    ] {
        put(s, p, 1).await.unwrap();
    }
    let page = s.list(&query("app/dev/", false)).await.unwrap();
    assert_eq!(names(&page.entries), vec!["a", "b", "sub/"]);
    assert_eq!(
        page.entries[2],
        ListEntry {
            name: "sub/".into(),
            folder: true
        }
    );
    assert!(page.next.is_none());

    let page = s.list(&query("app/dev/", true)).await.unwrap();
    assert_eq!(
        names(&page.entries),
        vec!["a", "b", "sub/c", "sub/deeper/d"]
    );

    let page = s.list(&query("app/", false)).await.unwrap();
    assert_eq!(
        names(&page.entries),
        vec!["dev", "dev/", "dev2/", "devx", "prod/"],
        "a leaf and a folder of the same name are both listed"
    );

    let page = s.list(&query("", false)).await.unwrap();
    assert_eq!(names(&page.entries), vec!["app/", "other/"]);
    assert!(
        s.list(&query("nothing/", false))
            .await
            .unwrap()
            .entries
            .is_empty()
    );
}

async fn one_level_listing_of_a_large_mixed_folder_matches_the_tree(s: &dyn Storage) {
    // Runs of secrets longer than any one read, folders with many and with
    // few secrets below them, deep ones, a leaf and a folder of one name,
    // deleted secrets: the one-level listing, whole and page by page, is
    // what the recursive listing's paths say it must be.
    let mut paths = Vec::new();
    for i in 0..1500 {
        paths.push(format!("big/a{i:04}"));
    }
    for i in 0..300 {
        paths.push(format!("big/b/{i:03}"));
        paths.push(format!("big/c{i:03}/x"));
    }
    for i in 0..40 {
        paths.push(format!("big/d/e/f/{i:02}"));
        paths.push(format!("big/g{i:02}"));
    }
    paths.push("big/h".into());
    paths.push("big/h/i".into());
    for chunk in paths.chunks(500) {
        s.commit(
            chunk
                .iter()
                .map(|p| Mutation::PutVersion {
                    record: record(p, 1, b"ct"),
                    expected_current: 0,
                })
                .collect(),
        )
        .await
        .unwrap();
    }
    let deleted = ["big/a0007", "big/g03", "big/c005/x"];
    for p in deleted {
        s.commit(vec![Mutation::SetVersionState {
            path: p.into(),
            versions: vec![1],
            change: VersionStateChange::Delete(9_000),
            at: 9_000,
        }])
        .await
        .unwrap();
    }
    for include_deleted in [false, true] {
        let mut expected: Vec<String> = paths
            .iter()
            .filter(|p| include_deleted || !deleted.contains(&p.as_str()))
            .map(|p| {
                let rest = &p["big/".len()..];
                match rest.find('/') {
                    Some(i) => rest[..=i].to_string(),
                    None => rest.to_string(),
                }
            })
            .collect();
        expected.sort();
        expected.dedup();
        for limit in [1, 7, 1000, 5000] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = s
                    .list(&ListQuery {
                        prefix: "big/".into(),
                        recursive: false,
                        include_deleted,
                        after: after.take(),
                        limit,
                    })
                    .await
                    .unwrap();
                assert!(page.entries.len() <= limit);
                for e in &page.entries {
                    assert_eq!(e.folder, e.name.ends_with('/'), "{e:?}");
                }
                seen.extend(names(&page.entries).into_iter().map(str::to_string));
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
                if limit == 1 && seen.len() > 40 {
                    break;
                }
            }
            let want = if limit == 1 {
                &expected[..seen.len()]
            } else {
                &expected[..]
            };
            assert_eq!(
                seen, want,
                "limit {limit}, deleted included: {include_deleted}"
            );
        }
    }
}

async fn listing_paginates(s: &dyn Storage) {
    for i in 0..25 {
        put(s, &format!("pg/{i:02}"), 1).await.unwrap();
        put(s, &format!("pg/f{i:02}/leaf"), 1).await.unwrap();
    }
    for recursive in [false, true] {
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let mut q = query("pg/", recursive);
            q.limit = 7;
            q.after = after.clone();
            let page = s.list(&q).await.unwrap();
            assert!(page.entries.len() <= 7);
            seen.extend(page.entries.into_iter().map(|e| e.name));
            pages += 1;
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen.len(), 50, "recursive={recursive}");
        assert_eq!(pages, 8);
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, seen, "pages are ordered and do not overlap");
    }
}

async fn system_records(s: &dyn Storage) {
    assert!(s.get_system("seal").await.unwrap().is_none());
    s.commit(vec![Mutation::InsertSystem {
        key: "seal".into(),
        value: b"one".to_vec(),
    }])
    .await
    .unwrap();
    let err = s
        .commit(vec![Mutation::InsertSystem {
            key: "seal".into(),
            value: b"two".to_vec(),
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    assert_eq!(s.get_system("seal").await.unwrap().unwrap(), b"one");
    s.commit(vec![Mutation::PutSystem {
        key: "seal".into(),
        value: b"three".to_vec(),
    }])
    .await
    .unwrap();
    assert_eq!(s.get_system("seal").await.unwrap().unwrap(), b"three");
}

async fn system_records_check_and_set_on_their_value(s: &dyn Storage) {
    s.commit(vec![Mutation::PutSystem {
        key: "keyring".into(),
        value: b"ring-1".to_vec(),
    }])
    .await
    .unwrap();
    s.commit(vec![Mutation::ReplaceSystem {
        key: "keyring".into(),
        expected: b"ring-1".to_vec(),
        value: b"ring-2".to_vec(),
    }])
    .await
    .unwrap();
    // A writer that read the old value loses, and writes nothing.
    let err = s
        .commit(vec![
            Mutation::ReplaceSystem {
                key: "keyring".into(),
                expected: b"ring-1".to_vec(),
                value: b"ring-2-other".to_vec(),
            },
            Mutation::PutSystem {
                key: "other".into(),
                value: b"x".to_vec(),
            },
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(s.get_system("keyring").await.unwrap().unwrap(), b"ring-2");
    assert!(s.get_system("other").await.unwrap().is_none());
    let err = s
        .commit(vec![Mutation::ReplaceSystem {
            key: "missing".into(),
            expected: b"a".to_vec(),
            value: b"b".to_vec(),
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

async fn export_everything(s: &dyn Storage) -> Vec<Exported> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let reader = async {
        let mut out = Vec::new();
        while let Some(r) = rx.recv().await {
            out.push(r);
        }
        out
    };
    let (done, out) = tokio::join!(s.export(tx), reader);
    done.unwrap();
    out
}

/// Fills a store with one of every kind of record, in every state.
async fn fill(s: &dyn Storage) {
    s.commit(vec![Mutation::InsertSystem {
        key: "seal".into(),
        value: vec![0, 1, 2, 255],
    }])
    .await
    .unwrap();
    for v in 1..=3 {
        put(s, "app/a", v).await.unwrap();
    }
    put(s, "app/b", 1).await.unwrap();
    s.commit(vec![
        Mutation::SetVersionState {
            path: "app/a".into(),
            versions: vec![1],
            change: VersionStateChange::Destroy(50),
            at: 50,
        },
        Mutation::SetVersionState {
            path: "app/b".into(),
            versions: vec![1],
            change: VersionStateChange::Delete(60),
            at: 60,
        },
        compromise("app/a", 2, 70, "leaked"),
    ])
    .await
    .unwrap();
    let mut limited = token(1, "acc_a", None, Some("ana"));
    limited.uses_limit = Some(5);
    limited.uses_left = Some(5);
    limited.expires_at = Some(9_999_999);
    put_token(s, &limited).await.unwrap();
    put_token(s, &token(2, "acc_b", Some("acc_a"), None))
        .await
        .unwrap();
    s.commit(vec![Mutation::ConsumeTokenUse {
        accessor: "acc_a".into(),
    }])
    .await
    .unwrap();
    for (kind, key) in [("policy", "ops"), ("user", "ana"), ("policy", "dev")] {
        s.commit(vec![Mutation::PutObject {
            kind: kind.into(),
            key: key.into(),
            value: format!("{kind}:{key}").into_bytes(),
            expect: Expect::Any,
        }])
        .await
        .unwrap();
    }
    s.commit(vec![Mutation::PutObject {
        kind: "policy".into(),
        key: "ops".into(),
        value: b"ops v2".to_vec(),
        expect: Expect::Revision(1),
    }])
    .await
    .unwrap();
}

async fn a_snapshot_restores_exactly(s: &dyn Storage, target: &dyn Storage) {
    assert!(s.is_empty().await.unwrap());
    fill(s).await;
    assert!(!s.is_empty().await.unwrap());
    let snapshot = export_everything(s).await;
    let kinds = |want: fn(&Exported) -> bool| snapshot.iter().filter(|r| want(r)).count();
    assert_eq!(kinds(|r| matches!(r, Exported::System { .. })), 1);
    assert_eq!(kinds(|r| matches!(r, Exported::Secret(_))), 2);
    assert_eq!(kinds(|r| matches!(r, Exported::Version(_))), 4);
    assert_eq!(kinds(|r| matches!(r, Exported::Token(_))), 2);
    assert_eq!(kinds(|r| matches!(r, Exported::Object(_))), 3);

    assert!(target.is_empty().await.unwrap());
    for chunk in snapshot.chunks(3) {
        target.import(chunk.to_vec()).await.unwrap();
    }
    assert_eq!(export_everything(target).await, snapshot);
    // The restored store behaves like the original.
    let a = target.get_meta("app/a").await.unwrap().unwrap();
    assert_eq!((a.current_version, a.live), (3, true));
    assert!(!target.get_meta("app/b").await.unwrap().unwrap().live);
    let t = target.get_token(&[1u8; 32]).await.unwrap().unwrap();
    assert_eq!(t.uses_left, Some(4));
    assert_eq!(t.expires_at, Some(9_999_999));
    assert_eq!(
        target
            .get_object("policy", "ops")
            .await
            .unwrap()
            .unwrap()
            .revision,
        2
    );
    put(target, "app/a", 4).await.unwrap();
    target
        .commit(vec![Mutation::RevokeTokens(RevokeScope::User(
            "ana".into(),
        ))])
        .await
        .unwrap();
    assert!(target.list_tokens().await.unwrap().is_empty());
    // Importing into a store that is not empty fails and writes nothing more.
    let before = export_everything(target).await;
    assert!(target.import(snapshot[..1].to_vec()).await.is_err());
    assert_eq!(export_everything(target).await, before);
}

async fn an_export_is_one_consistent_snapshot(s: Arc<dyn Storage>) {
    // Each commit writes two secrets together; a snapshot taken while the
    // writer runs holds both at the same version, or neither.
    put(&*s, "pair/x", 1).await.unwrap();
    put(&*s, "pair/y", 1).await.unwrap();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for v in 2..=60u64 {
                s.commit(vec![
                    Mutation::PutVersion {
                        record: record("pair/x", v, b"x"),
                        expected_current: v - 1,
                    },
                    Mutation::PutVersion {
                        record: record("pair/y", v, b"y"),
                        expected_current: v - 1,
                    },
                ])
                .await
                .unwrap();
            }
        })
    };
    for _ in 0..5 {
        let snap = export_everything(&*s).await;
        let current = |p: &str| {
            snap.iter()
                .find_map(|r| match r {
                    Exported::Secret(m) if m.path == p => Some(m.current_version),
                    _ => None,
                })
                .unwrap()
        };
        let versions = |p: &str| {
            snap.iter()
                .filter(|r| matches!(r, Exported::Version(v) if v.path == p))
                .count() as u64
        };
        assert_eq!(current("pair/x"), current("pair/y"));
        assert_eq!(versions("pair/x"), current("pair/x"));
        assert_eq!(versions("pair/y"), current("pair/y"));
    }
    writer.await.unwrap();
}

fn token(n: u8, accessor: &str, parent: Option<&str>, user: Option<&str>) -> TokenRecord {
    TokenRecord {
        hash: [n; 32],
        accessor: accessor.into(),
        display_name: format!("token {n}"),
        policies: vec!["deploy".into()],
        created_at: 10,
        expires_at: Some(20),
        parent: parent.map(Into::into),
        kind: if user.is_some() {
            TokenKind::Human
        } else {
            TokenKind::Service
        },
        user: user.map(Into::into),
        ttl_ms: Some(5),
        max_expires_at: Some(30),
        uses_limit: None,
        uses_left: None,
        cidrs: vec!["10.0.0.0/8".into()],
        workload: None,
    }
}

async fn put_token(s: &dyn Storage, t: &TokenRecord) -> Result<(), StoreError> {
    s.commit(vec![Mutation::PutToken(t.clone())]).await
}

async fn accessors(s: &dyn Storage) -> Vec<String> {
    s.list_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.accessor)
        .collect()
}

async fn tokens_by_hash(s: &dyn Storage) {
    let rec = token(7, "acc_one", None, None);
    put_token(s, &rec).await.unwrap();
    assert_eq!(s.get_token(&[7u8; 32]).await.unwrap().unwrap(), rec);
    assert_eq!(
        s.get_token_by_accessor("acc_one").await.unwrap().unwrap(),
        rec
    );
    assert!(s.get_token(&[8u8; 32]).await.unwrap().is_none());
    assert!(s.get_token_by_accessor("acc_two").await.unwrap().is_none());
    // A token is created once: the same hash or accessor again is a conflict.
    assert!(matches!(
        put_token(s, &token(7, "acc_other", None, None)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        put_token(s, &token(9, "acc_one", None, None)).await,
        Err(StoreError::Conflict(_))
    ));
    s.commit(vec![Mutation::DeleteToken {
        accessor: "acc_one".into(),
    }])
    .await
    .unwrap();
    assert!(s.get_token(&[7u8; 32]).await.unwrap().is_none());
}

async fn revocation_cascades_to_descendants(s: &dyn Storage) {
    put_token(s, &token(1, "acc_root", None, None))
        .await
        .unwrap();
    put_token(s, &token(2, "acc_a", Some("acc_root"), None))
        .await
        .unwrap();
    put_token(s, &token(3, "acc_a1", Some("acc_a"), None))
        .await
        .unwrap();
    put_token(s, &token(4, "acc_a1x", Some("acc_a1"), None))
        .await
        .unwrap();
    put_token(s, &token(5, "acc_b", Some("acc_root"), None))
        .await
        .unwrap();
    // A child of a token that does not exist is refused.
    assert!(matches!(
        put_token(s, &token(6, "acc_orphan", Some("acc_gone"), None)).await,
        Err(StoreError::Conflict(_))
    ));
    s.commit(vec![Mutation::RevokeTokens(RevokeScope::Tree(
        "acc_a".into(),
    ))])
    .await
    .unwrap();
    assert_eq!(accessors(s).await, ["acc_b", "acc_root"]);
    assert!(s.get_token(&[4u8; 32]).await.unwrap().is_none());
    // Revoking something already gone is not an error.
    s.commit(vec![Mutation::RevokeTokens(RevokeScope::Tree(
        "acc_a".into(),
    ))])
    .await
    .unwrap();
}

async fn revoking_a_user_removes_all_its_tokens(s: &dyn Storage) {
    put_token(s, &token(1, "acc_svc", None, None))
        .await
        .unwrap();
    put_token(s, &token(2, "acc_u1", None, Some("alice")))
        .await
        .unwrap();
    put_token(s, &token(3, "acc_u2", None, Some("alice")))
        .await
        .unwrap();
    put_token(s, &token(4, "acc_u2c", Some("acc_u2"), Some("alice")))
        .await
        .unwrap();
    put_token(s, &token(5, "acc_bob", None, Some("bob")))
        .await
        .unwrap();
    s.commit(vec![Mutation::RevokeTokens(RevokeScope::User(
        "alice".into(),
    ))])
    .await
    .unwrap();
    assert_eq!(accessors(s).await, ["acc_bob", "acc_svc"]);
}

async fn token_uses_are_counted_atomically(s: &dyn Storage) {
    let mut limited = token(1, "acc_lim", None, None);
    limited.uses_limit = Some(2);
    limited.uses_left = Some(2);
    put_token(s, &limited).await.unwrap();
    put_token(s, &token(2, "acc_free", None, None))
        .await
        .unwrap();
    let consume = |a: &str| Mutation::ConsumeTokenUse { accessor: a.into() };
    s.commit(vec![consume("acc_lim")]).await.unwrap();
    assert_eq!(
        s.get_token(&[1u8; 32]).await.unwrap().unwrap().uses_left,
        Some(1)
    );
    s.commit(vec![consume("acc_lim")]).await.unwrap();
    assert!(matches!(
        s.commit(vec![consume("acc_lim")]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.get_token(&[1u8; 32]).await.unwrap().unwrap().uses_left,
        Some(0)
    );
    // Unlimited tokens are not counted; missing ones are a conflict.
    s.commit(vec![consume("acc_free")]).await.unwrap();
    assert_eq!(
        s.get_token(&[2u8; 32]).await.unwrap().unwrap().uses_left,
        None
    );
    assert!(matches!(
        s.commit(vec![consume("acc_none")]).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn token_expiry_moves_only_for_live_tokens(s: &dyn Storage) {
    put_token(s, &token(1, "acc_t", None, None)).await.unwrap();
    s.commit(vec![Mutation::SetTokenExpiry {
        accessor: "acc_t".into(),
        expires_at: 25,
    }])
    .await
    .unwrap();
    let t = s.get_token(&[1u8; 32]).await.unwrap().unwrap();
    assert_eq!(t.expires_at, Some(25));
    assert_eq!(t.max_expires_at, Some(30));
    // Renewing a revoked token must not bring it back.
    s.commit(vec![Mutation::RevokeTokens(RevokeScope::Tree(
        "acc_t".into(),
    ))])
    .await
    .unwrap();
    assert!(matches!(
        s.commit(vec![Mutation::SetTokenExpiry {
            accessor: "acc_t".into(),
            expires_at: 26,
        }])
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.get_token(&[1u8; 32]).await.unwrap().is_none());
}

async fn expired_and_used_up_tokens_are_swept(s: &dyn Storage) {
    let mut old = token(1, "acc_old", None, None);
    old.expires_at = Some(100);
    let mut fresh = token(2, "acc_fresh", None, None);
    fresh.expires_at = Some(1_000);
    let mut forever = token(3, "acc_forever", None, None);
    forever.expires_at = None;
    let mut spent = token(4, "acc_spent", None, None);
    spent.expires_at = None;
    spent.uses_limit = Some(1);
    spent.uses_left = Some(1);
    let mut child = token(5, "acc_child", Some("acc_old"), None);
    child.expires_at = Some(1_000);
    for t in [&old, &fresh, &forever, &spent, &child] {
        put_token(s, t).await.unwrap();
    }
    s.commit(vec![Mutation::ConsumeTokenUse {
        accessor: "acc_spent".into(),
    }])
    .await
    .unwrap();
    s.commit(vec![Mutation::DeleteExpiredTokens { now: 500 }])
        .await
        .unwrap();
    // The expired one goes with its descendants; the spent one goes too.
    assert_eq!(accessors(s).await, ["acc_forever", "acc_fresh"]);
}

async fn objects_check_and_set(s: &dyn Storage) {
    let put = |key: &str, value: &[u8], expect| Mutation::PutObject {
        kind: "policy".into(),
        key: key.into(),
        value: value.to_vec(),
        expect,
    };
    s.commit(vec![put("ops", b"one", Expect::Absent)])
        .await
        .unwrap();
    assert!(matches!(
        s.commit(vec![put("ops", b"again", Expect::Absent)]).await,
        Err(StoreError::Conflict(_))
    ));
    let o = s.get_object("policy", "ops").await.unwrap().unwrap();
    assert_eq!((o.revision, &o.value[..]), (1, &b"one"[..]));
    s.commit(vec![put("ops", b"two", Expect::Revision(1))])
        .await
        .unwrap();
    // A stale revision is a conflict and changes nothing, even with other
    // mutations in the same commit.
    assert!(matches!(
        s.commit(vec![
            put("dev", b"x", Expect::Any),
            put("ops", b"three", Expect::Revision(1)),
        ])
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.get_object("policy", "dev").await.unwrap().is_none());
    let o = s.get_object("policy", "ops").await.unwrap().unwrap();
    assert_eq!((o.revision, &o.value[..]), (2, &b"two"[..]));
    s.commit(vec![put("dev", b"d", Expect::Any)]).await.unwrap();
    s.commit(vec![Mutation::PutObject {
        kind: "user".into(),
        key: "ops".into(),
        value: b"other kind".to_vec(),
        expect: Expect::Absent,
    }])
    .await
    .unwrap();
    let listed: Vec<_> = s
        .list_objects("policy")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.key, o.revision))
        .collect();
    assert_eq!(listed, [("dev".to_string(), 1), ("ops".to_string(), 2)]);
    assert!(matches!(
        s.commit(vec![Mutation::DeleteObject {
            kind: "policy".into(),
            key: "ops".into(),
            expect: Expect::Revision(1),
        }])
        .await,
        Err(StoreError::Conflict(_))
    ));
    s.commit(vec![Mutation::DeleteObject {
        kind: "policy".into(),
        key: "ops".into(),
        expect: Expect::Revision(2),
    }])
    .await
    .unwrap();
    assert!(s.get_object("policy", "ops").await.unwrap().is_none());
    assert_eq!(s.list_objects("user").await.unwrap().len(), 1);
}

// Bulk writes: a commit of many versions (an import, a history, a copy)
// must leave exactly what its mutations applied one after the other leave,
// however a backend applies it.

/// A state record of a secret, as a write's plan stages it.
fn state(key: &str, value: &[u8], expect: Expect) -> Mutation {
    Mutation::PutObject {
        kind: "state".into(),
        key: key.into(),
        value: value.to_vec(),
        expect,
    }
}

fn version(rec: VersionRecord, expected_current: u64) -> Mutation {
    Mutation::PutVersion {
        record: rec,
        expected_current,
    }
}

/// What a large import lands on: 50 secrets at version 1 (20 of them with a
/// state record) and one at version 2.
async fn import_base(s: &dyn Storage) {
    for i in 0..50 {
        put(s, &format!("imp/old/{i:03}"), 1).await.unwrap();
    }
    for v in 1..=2 {
        put(s, "imp/two", v).await.unwrap();
    }
    for i in 0..20 {
        s.commit(vec![state(
            &format!("imp/old/{i:03}"),
            b"{\"previous\":null}",
            Expect::Absent,
        )])
        .await
        .unwrap();
    }
}

/// The secret of the 737th version of [`large_import`]: a new one, with a
/// state record that must be new too.
const ROW_737: &str = "imp/new/0680";

/// A 1,000-version import over [`import_base`], as the core stages one
/// (each version followed by its state record when it has one), with
/// every kind of row a bulk commit can hold: new secrets and new versions
/// of existing ones, with and without state records of every condition, a
/// path three times, a history of deleted, destroyed and compromised
/// versions, several keys, authors, times and sizes.
fn large_import() -> Vec<Mutation> {
    let mut m = Vec::new();
    for i in 0..50 {
        let path = format!("imp/old/{i:03}");
        m.push(version(
            VersionRecord {
                created_at: 50_000 + i,
                ..record(&path, 2, format!("v2-{i}").as_bytes())
            },
            1,
        ));
        match i {
            0..20 => m.push(state(&path, b"{\"previous\":1}", Expect::Revision(1))),
            20..30 => m.push(state(&path, b"{\"previous\":1}", Expect::Absent)),
            30..35 => m.push(state(&path, b"{\"any\":1}", Expect::Any)),
            _ => {}
        }
    }
    for (v, st) in [
        (3, VersionState::Active),
        (4, VersionState::Destroyed(60_004)),
        (5, VersionState::Deleted(60_005)),
    ] {
        let ciphertext = if matches!(st, VersionState::Destroyed(_)) {
            Vec::new()
        } else {
            format!("two-{v}").into_bytes()
        };
        m.push(version(
            VersionRecord {
                created_at: 60_000 + v as i64,
                state: st,
                ciphertext,
                ..record("imp/two", v, b"")
            },
            v - 1,
        ));
    }
    for (v, st, compromised) in [
        (1, VersionState::Destroyed(70_010), None),
        (
            2,
            VersionState::Deleted(70_020),
            Some(mark(70_021, "leaked in a log")),
        ),
        (3, VersionState::Active, None),
    ] {
        m.push(version(
            VersionRecord {
                created_at: 70_000 + v as i64,
                created_by: "historian".into(),
                state: st,
                key_id: v as u32,
                ciphertext: if v == 1 {
                    Vec::new()
                } else {
                    vec![v as u8; 40]
                },
                compromised,
                ..record("imp/hist", v, b"")
            },
            v - 1,
        ));
    }
    for i in 0..944u32 {
        let path = format!("imp/new/{i:04}");
        let mut bytes: Vec<u8> = (0..(i % 300)).map(|b| (b * 7 + i) as u8).collect();
        bytes.extend_from_slice(path.as_bytes());
        m.push(version(
            VersionRecord {
                created_at: 80_000 + i64::from(i),
                created_by: format!("importer-{}", i % 3),
                key_id: 1 + i % 4,
                ..record(&path, 1, &bytes)
            },
            0,
        ));
        if i % 10 == 0 {
            m.push(state(
                &path,
                format!("{{\"n\":{i}}}").as_bytes(),
                Expect::Absent,
            ));
        }
        if i % 10 == 5 {
            m.push(state(&path, b"{}", Expect::Any));
        }
    }
    assert_eq!(
        m.iter()
            .filter(|x| matches!(x, Mutation::PutVersion { .. }))
            .count(),
        1000
    );
    m
}

/// Commits `mutations` in one commit on `s` and one commit per mutation
/// on `t` (two stores in the same state), and checks that both end with
/// exactly the same records.
async fn same_as_one_by_one(s: &dyn Storage, t: &dyn Storage, mutations: Vec<Mutation>) {
    for m in &mutations {
        t.commit(vec![m.clone()]).await.unwrap();
    }
    s.commit(mutations).await.unwrap();
    assert_eq!(export_everything(s).await, export_everything(t).await);
}

async fn a_large_import_equals_its_writes_one_by_one(s: &dyn Storage, t: &dyn Storage) {
    import_base(s).await;
    import_base(t).await;
    same_as_one_by_one(s, t, large_import()).await;
    // Spot checks, so that two equally wrong results cannot pass.
    let two = s.get_meta("imp/two").await.unwrap().unwrap();
    assert_eq!(
        (
            two.current_version,
            two.live,
            two.created_at,
            two.updated_at
        ),
        (5, false, 1_001, 60_005)
    );
    let hist = s.get_meta("imp/hist").await.unwrap().unwrap();
    assert_eq!(
        (
            hist.current_version,
            hist.live,
            hist.created_at,
            hist.updated_at
        ),
        (3, true, 70_001, 70_003)
    );
    let v2 = s.get_version("imp/hist", 2).await.unwrap().unwrap();
    assert_eq!(v2.compromised, Some(mark(70_021, "leaked in a log")));
    assert_eq!(v2.state, VersionState::Deleted(70_020));
    assert_eq!(v2.key_id, 2);
    let old = s.get_object("state", "imp/old/000").await.unwrap().unwrap();
    assert_eq!(
        (old.revision, &old.value[..]),
        (2, &b"{\"previous\":1}"[..])
    );
    let page = s
        .list(&ListQuery {
            limit: 2000,
            ..query("imp/new/", true)
        })
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 944);
}

/// The export of a store, to show that a failed commit changed nothing.
async fn unchanged_by<F>(s: &dyn Storage, attempt: F) -> StoreError
where
    F: Future<Output = Result<(), StoreError>>,
{
    let before = export_everything(s).await;
    let err = attempt.await.unwrap_err();
    assert_eq!(export_everything(s).await, before, "{err}");
    err
}

async fn a_conflict_at_row_737_of_1000_writes_nothing(s: &dyn Storage) {
    import_base(s).await;
    // A writer got to the 737th secret after the importer read it.
    put(s, ROW_737, 1).await.unwrap();
    let err = unchanged_by(s, s.commit(large_import())).await;
    assert_eq!(
        err.to_string(),
        format!("conflict: {ROW_737} is at version 1, not 0")
    );
    // The same when the 737th row's state record changed, ...
    let mut m = large_import();
    let at = m
        .iter()
        .position(|x| matches!(x, Mutation::PutVersion { record, .. } if record.path == ROW_737))
        .unwrap();
    let rows = m[..=at]
        .iter()
        .filter(|x| matches!(x, Mutation::PutVersion { .. }))
        .count();
    assert_eq!(rows, 737);
    assert!(matches!(&m[at + 1], Mutation::PutObject { key, .. } if key == ROW_737));
    m[at] = version(record(ROW_737, 2, b"after the writer"), 1);
    m[at + 1] = state(ROW_737, b"{}", Expect::Revision(4));
    let err = unchanged_by(s, s.commit(m.clone())).await;
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains(ROW_737), "{err}");
    // ... or when it must be new and is not.
    s.commit(vec![state(ROW_737, b"{}", Expect::Absent)])
        .await
        .unwrap();
    m[at + 1] = state(ROW_737, b"{}", Expect::Absent);
    let err = unchanged_by(s, s.commit(m.clone())).await;
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains(ROW_737), "{err}");
    // A version number that does not follow its expectation, at row 737.
    m[at] = version(record(ROW_737, 3, b"skips"), 1);
    m[at + 1] = state(ROW_737, b"{}", Expect::Any);
    let err = unchanged_by(s, s.commit(m.clone())).await;
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    // With row 737 right, the import goes through whole.
    m[at] = version(record(ROW_737, 2, b"after the writer"), 1);
    s.commit(m).await.unwrap();
    assert_eq!(
        s.get_meta(ROW_737).await.unwrap().unwrap().current_version,
        2
    );
    assert_eq!(
        s.get_meta("imp/new/0943")
            .await
            .unwrap()
            .unwrap()
            .current_version,
        1
    );
}

async fn the_same_path_twice_in_one_commit(s: &dyn Storage, t: &dyn Storage) {
    // A new path at versions 1 and 2, next to another.
    same_as_one_by_one(
        s,
        t,
        vec![
            version(record("tw/p", 1, b"one"), 0),
            version(record("tw/q", 1, b"q"), 0),
            version(record("tw/p", 2, b"two"), 1),
        ],
    )
    .await;
    let p = s.get_meta("tw/p").await.unwrap().unwrap();
    assert_eq!(
        (p.current_version, p.live, p.created_at, p.updated_at),
        (2, true, 1_001, 1_002)
    );
    // The same next version twice, or a second that skips: a conflict.
    for second in [
        version(record("tw/p", 3, b"again"), 2),
        version(record("tw/p", 5, b"skip"), 3),
        version(record("tw/p", 4, b"stale"), 2),
    ] {
        let err = unchanged_by(
            s,
            s.commit(vec![
                version(record("tw/q", 2, b"q2"), 1),
                version(record("tw/p", 3, b"three"), 2),
                second,
            ]),
        )
        .await;
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert!(
            err.to_string()
                .starts_with("conflict: tw/p is at version 3"),
            "{err}"
        );
    }
    // Liveness follows the last version of the commit, both ways.
    same_as_one_by_one(
        s,
        t,
        vec![
            version(
                VersionRecord {
                    state: VersionState::Deleted(9),
                    ..record("tw/p", 3, b"three")
                },
                2,
            ),
            version(record("tw/p", 4, b"four"), 3),
        ],
    )
    .await;
    assert!(s.get_meta("tw/p").await.unwrap().unwrap().live);
    same_as_one_by_one(
        s,
        t,
        vec![
            version(record("tw/p", 5, b"five"), 4),
            version(
                VersionRecord {
                    state: VersionState::Destroyed(9),
                    ..record("tw/p", 6, b"")
                },
                5,
            ),
        ],
    )
    .await;
    assert!(!s.get_meta("tw/p").await.unwrap().unwrap().live);
    // A record written twice in a commit of versions: in order.
    same_as_one_by_one(
        s,
        t,
        vec![
            state("tw/p", b"first", Expect::Absent),
            version(record("tw/p", 7, b"seven"), 6),
            version(record("tw/q", 2, b"q2"), 1),
            state("tw/p", b"second", Expect::Revision(1)),
        ],
    )
    .await;
    let o = s.get_object("state", "tw/p").await.unwrap().unwrap();
    assert_eq!((o.revision, &o.value[..]), (2, &b"second"[..]));
    // Mixed with other kinds of mutation, order still holds: a secret
    // removed and written again in one commit (a move back and forth).
    same_as_one_by_one(
        s,
        t,
        vec![
            Mutation::DeleteSecret {
                path: "tw/q".into(),
                expected_current: 2,
            },
            version(record("tw/q", 1, b"again"), 0),
            version(record("tw/q", 2, b"again 2"), 1),
        ],
    )
    .await;
    assert_eq!(
        s.get_meta("tw/q").await.unwrap().unwrap().current_version,
        2
    );
}

/// Strings a bulk write must store exactly as given: quotes, array and
/// JSON punctuation, backslashes, the word NULL, whitespace, C0 and C1
/// controls, Unicode line separators and direction overrides, zero-width
/// and non-BMP characters, and long runs of them.
fn hostile_strings() -> Vec<String> {
    let mut all: Vec<String> = [
        "it's",
        "\"quoted\"",
        "''",
        "back\\slash\\",
        "{a,b}",
        "(1,2)",
        "NULL",
        "null",
        " padded ",
        "tab\there\nnewline\rcr",
        "\u{1}\u{1b}[31m\u{1f}\u{7f}",
        "\u{85}\u{2028}\u{2029}",
        "\u{202e}evil\u{202c}",
        "\u{200b}\u{feff}",
        "é漢字🔑\u{10ffff}",
        "$1::text[]",
        "%s%n",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let long: String = all.concat().chars().cycle().take(1_000).collect();
    all.push(long);
    all
}

/// A record kind made of a hostile string (short enough that kind and key
/// together fit an index entry).
fn hostile_kind(i: usize, h: &str) -> String {
    format!("k{i} {}", h.chars().take(40).collect::<String>())
}

async fn hostile_bytes_round_trip_through_a_bulk_write(s: &dyn Storage, t: &dyn Storage) {
    let mut mutations = Vec::new();
    let mut records = Vec::new();
    for (i, h) in hostile_strings().into_iter().enumerate() {
        let path = format!("h/{i:02}/{h}");
        let mut ciphertext: Vec<u8> = (0..=255u8).collect();
        ciphertext.extend(h.as_bytes());
        if i == 3 {
            // Large and incompressible enough to be stored out of line.
            ciphertext = (0..1_048_576u32)
                .map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect();
        }
        let rec = VersionRecord {
            created_by: h.repeat(50),
            compromised: (i % 2 == 0).then(|| mark(i as i64, &h)),
            ciphertext,
            ..record(&path, 1, b"")
        };
        records.push(rec.clone());
        mutations.push(version(rec, 0));
        mutations.push(Mutation::PutObject {
            kind: hostile_kind(i, &h),
            key: h.clone(),
            value: h
                .as_bytes()
                .iter()
                .copied()
                .chain([0, 255, b'\\'])
                .collect(),
            expect: Expect::Absent,
        });
    }
    same_as_one_by_one(s, t, mutations).await;
    for rec in &records {
        let got = s.get_version(&rec.path, 1).await.unwrap().unwrap();
        assert!(got == *rec, "{:?} came back as {got:?}", rec.path);
        let meta = s.get_meta(&rec.path).await.unwrap().unwrap();
        assert_eq!(meta.path, rec.path);
    }
    for (i, h) in hostile_strings().into_iter().enumerate() {
        let kind = hostile_kind(i, &h);
        let o = s.get_object(&kind, &h).await.unwrap().unwrap();
        assert_eq!((o.kind, o.key), (kind, h));
    }
    // NUL: SQLite stores it in text; PostgreSQL's text cannot hold it. Either
    // way a bulk write does what single writes do: stores it exactly, or
    // fails and writes nothing.
    let nul = [
        version(record("nul/a\0b", 1, b"\0"), 0),
        version(record("nul/c", 1, b"c"), 0),
    ];
    let batch = s.commit(nul.to_vec()).await;
    let single = t.commit(vec![nul[0].clone()]).await;
    assert_eq!(batch.is_ok(), single.is_ok(), "{batch:?} {single:?}");
    if s.backend_name() == "postgres" {
        assert!(batch.is_err());
    }
    if batch.is_ok() {
        let got = s.get_version("nul/a\0b", 1).await.unwrap().unwrap();
        assert_eq!(got.path, "nul/a\0b");
    } else {
        assert!(s.get_meta("nul/c").await.unwrap().is_none());
    }
}

macro_rules! suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn versions_are_written_and_read_back() {
                let (_g, s) = $make.await;
                super::versions_are_written_and_read_back(&*s).await;
            }
            #[tokio::test]
            async fn a_version_is_marked_compromised_once() {
                let (_g, s) = $make.await;
                super::a_version_is_marked_compromised_once(&*s).await;
            }
            #[tokio::test]
            async fn one_level_listing_of_a_large_mixed_folder_matches_the_tree() {
                let (_g, s) = $make.await;
                super::one_level_listing_of_a_large_mixed_folder_matches_the_tree(&*s).await;
            }
            #[tokio::test]
            async fn metadata_is_read_in_bulk() {
                let (_g, s) = $make.await;
                super::metadata_is_read_in_bulk(&*s).await;
            }
            #[tokio::test]
            async fn check_and_set_conflicts_write_nothing() {
                let (_g, s) = $make.await;
                super::check_and_set_conflicts_write_nothing(&*s).await;
            }
            #[tokio::test]
            async fn a_commit_is_all_or_nothing() {
                let (_g, s) = $make.await;
                super::a_commit_is_all_or_nothing(&*s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_writers_lose_nothing() {
                let (_g, s) = $make.await;
                super::concurrent_writers_lose_nothing(s).await;
            }
            #[tokio::test]
            async fn delete_undelete_destroy() {
                let (_g, s) = $make.await;
                super::delete_undelete_destroy(&*s).await;
            }
            #[tokio::test]
            async fn a_secret_moves_with_its_history() {
                let (_g, s) = $make.await;
                super::a_secret_moves_with_its_history(&*s).await;
            }
            #[tokio::test]
            async fn versions_are_resealed_under_a_new_key() {
                let (_g, s) = $make.await;
                super::versions_are_resealed_under_a_new_key(&*s).await;
            }
            #[tokio::test]
            async fn listing_one_level_and_recursive() {
                let (_g, s) = $make.await;
                super::listing_one_level_and_recursive(&*s).await;
            }
            #[tokio::test]
            async fn listing_paginates() {
                let (_g, s) = $make.await;
                super::listing_paginates(&*s).await;
            }
            #[tokio::test]
            async fn system_records() {
                let (_g, s) = $make.await;
                super::system_records(&*s).await;
            }
            #[tokio::test]
            async fn tokens_by_hash() {
                let (_g, s) = $make.await;
                super::tokens_by_hash(&*s).await;
            }
            #[tokio::test]
            async fn revocation_cascades_to_descendants() {
                let (_g, s) = $make.await;
                super::revocation_cascades_to_descendants(&*s).await;
            }
            #[tokio::test]
            async fn revoking_a_user_removes_all_its_tokens() {
                let (_g, s) = $make.await;
                super::revoking_a_user_removes_all_its_tokens(&*s).await;
            }
            #[tokio::test]
            async fn token_uses_are_counted_atomically() {
                let (_g, s) = $make.await;
                super::token_uses_are_counted_atomically(&*s).await;
            }
            #[tokio::test]
            async fn token_expiry_moves_only_for_live_tokens() {
                let (_g, s) = $make.await;
                super::token_expiry_moves_only_for_live_tokens(&*s).await;
            }
            #[tokio::test]
            async fn objects_check_and_set() {
                let (_g, s) = $make.await;
                super::objects_check_and_set(&*s).await;
            }
            #[tokio::test]
            async fn system_records_check_and_set_on_their_value() {
                let (_g, s) = $make.await;
                super::system_records_check_and_set_on_their_value(&*s).await;
            }
            #[tokio::test]
            async fn a_snapshot_restores_exactly() {
                let (_g, s) = $make.await;
                let (_g2, t) = $make.await;
                super::a_snapshot_restores_exactly(&*s, &*t).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_export_is_one_consistent_snapshot() {
                let (_g, s) = $make.await;
                super::an_export_is_one_consistent_snapshot(s).await;
            }
            #[tokio::test]
            async fn a_large_import_equals_its_writes_one_by_one() {
                let (_g, s) = $make.await;
                let (_g2, t) = $make.await;
                super::a_large_import_equals_its_writes_one_by_one(&*s, &*t).await;
            }
            #[tokio::test]
            async fn a_conflict_at_row_737_of_1000_writes_nothing() {
                let (_g, s) = $make.await;
                super::a_conflict_at_row_737_of_1000_writes_nothing(&*s).await;
            }
            #[tokio::test]
            async fn the_same_path_twice_in_one_commit() {
                let (_g, s) = $make.await;
                let (_g2, t) = $make.await;
                super::the_same_path_twice_in_one_commit(&*s, &*t).await;
            }
            #[tokio::test]
            async fn hostile_bytes_round_trip_through_a_bulk_write() {
                let (_g, s) = $make.await;
                let (_g2, t) = $make.await;
                super::hostile_bytes_round_trip_through_a_bulk_write(&*s, &*t).await;
            }
            #[tokio::test]
            async fn expired_and_used_up_tokens_are_swept() {
                let (_g, s) = $make.await;
                super::expired_and_used_up_tokens_are_swept(&*s).await;
            }
        }
    };
}

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("coffer.db")).unwrap();
    (dir, Arc::new(store))
}

fn pg_options(url: String) -> PostgresOptions {
    PostgresOptions {
        url,
        password: None,
        pool_size: 8,
    }
}

/// A fresh database on the test PostgreSQL server (which the first call
/// starts; the test fails if it cannot).
async fn postgres() -> ((), Arc<dyn Storage>) {
    let url = coffer_testpg::database().await;
    let store = PostgresStore::connect(&pg_options(url)).await.unwrap();
    ((), Arc::new(store))
}

suite!(sqlite_backend, sqlite());
suite!(postgres_backend, postgres());

// SQLite-specific behaviour.

#[tokio::test]
async fn sqlite_data_survives_reopen_and_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        put(&s, "keep/me", 1).await.unwrap();
        s.close().await.unwrap();
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(
        s.get_meta("keep/me")
            .await
            .unwrap()
            .unwrap()
            .current_version,
        1
    );
    // Writes after close are refused, not lost silently.
    s.close().await.unwrap();
    assert!(matches!(
        put(&s, "keep/late", 1).await,
        Err(StoreError::Closed)
    ));
}

#[tokio::test]
async fn sqlite_refuses_a_database_from_a_newer_coffer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.db");
    SqliteStore::open(&path).unwrap().close().await.unwrap();
    let conn = rusqlite_conn(&path);
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    match SqliteStore::open(&path) {
        Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

fn rusqlite_conn(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[tokio::test]
async fn sqlite_migrates_tokens_of_an_older_schema() {
    // A version-1 database (before token lineage columns) with a child token:
    // after migration, revoking the parent still revokes the child.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.db");
    {
        let conn = rusqlite_conn(&path);
        conn.execute_batch(
            "CREATE TABLE system (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
             CREATE TABLE secrets (path TEXT PRIMARY KEY, current_version INTEGER NOT NULL,
                 live INTEGER NOT NULL, created_at INTEGER NOT NULL,
                 updated_at INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE versions (path TEXT NOT NULL, version INTEGER NOT NULL,
                 created_at INTEGER NOT NULL, created_by TEXT NOT NULL, deleted_at INTEGER,
                 destroyed_at INTEGER, key_id INTEGER NOT NULL, ciphertext BLOB NOT NULL,
                 PRIMARY KEY (path, version)) WITHOUT ROWID;
             CREATE TABLE tokens (hash BLOB PRIMARY KEY, accessor TEXT NOT NULL UNIQUE,
                 data TEXT NOT NULL) WITHOUT ROWID;
             INSERT INTO tokens VALUES (x'0101010101010101010101010101010101010101010101010101010101010101',
                 'acc_p', '{\"accessor\":\"acc_p\",\"display_name\":\"root\",\"policies\":[\"root\"],\"created_at\":1,\"expires_at\":null,\"parent\":null}');
             INSERT INTO tokens VALUES (x'0202020202020202020202020202020202020202020202020202020202020202',
                 'acc_c', '{\"accessor\":\"acc_c\",\"display_name\":\"child\",\"policies\":[],\"created_at\":1,\"expires_at\":null,\"parent\":\"acc_p\"}');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let child = s.get_token(&[2u8; 32]).await.unwrap().unwrap();
    assert_eq!(child.parent.as_deref(), Some("acc_p"));
    assert_eq!(child.kind, TokenKind::Service);
    s.commit(vec![Mutation::RevokeTokens(RevokeScope::Tree(
        "acc_p".into(),
    ))])
    .await
    .unwrap();
    assert!(s.list_tokens().await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_migrates_versions_to_carry_a_compromise_mark() {
    // A version-3 database with a version: after migration it reads back
    // unmarked, and can be marked.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        put(&s, "app/old", 1).await.unwrap();
        s.close().await.unwrap();
    }
    {
        let conn = rusqlite_conn(&path);
        conn.execute_batch(
            "ALTER TABLE versions DROP COLUMN compromised_at;
             ALTER TABLE versions DROP COLUMN compromised_reason;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let v = s.get_version("app/old", 1).await.unwrap().unwrap();
    assert_eq!(v.compromised, None);
    assert_eq!(v.ciphertext, b"ct-app/old-1");
    s.commit(vec![compromise("app/old", 1, 5, "r")])
        .await
        .unwrap();
    let v = s.get_version("app/old", 1).await.unwrap().unwrap();
    assert_eq!(v.compromised, Some(mark(5, "r")));
}

// PostgreSQL-specific behaviour: several nodes on one database.

async fn two_nodes() -> (PostgresStore, PostgresStore) {
    let url = coffer_testpg::database().await;
    let a = PostgresStore::connect(&pg_options(url.clone()))
        .await
        .unwrap();
    let b = PostgresStore::connect(&pg_options(url)).await.unwrap();
    (a, b)
}

#[tokio::test]
async fn postgres_nodes_see_each_others_changes_at_the_next_sync() {
    let (a, b) = two_nodes().await;
    b.sync().await.unwrap();
    assert!(b.take_changes().is_empty());
    put(&a, "app/x", 1).await.unwrap();
    a.commit(vec![
        Mutation::RevokeTokens(RevokeScope::Tree("acc".into())),
        Mutation::PutObject {
            kind: "policy".into(),
            key: "ops".into(),
            value: b"p".to_vec(),
            expect: Expect::Any,
        },
        Mutation::PutSystem {
            key: "keyring".into(),
            value: b"k".to_vec(),
        },
    ])
    .await
    .unwrap();
    // No waiting: a change committed before sync began is there after it.
    b.sync().await.unwrap();
    let got = b.take_changes();
    assert_eq!(
        got,
        vec![
            Change::Secret("app/x".into()),
            Change::Tokens,
            Change::Object {
                kind: "policy".into(),
                key: "ops".into()
            },
            Change::System("keyring".into()),
        ]
    );
    // Taken once; and a node never hears its own changes back.
    b.sync().await.unwrap();
    assert!(b.take_changes().is_empty());
    a.sync().await.unwrap();
    assert!(a.take_changes().is_empty());
    // A failed commit announces nothing.
    assert!(put(&a, "app/x", 1).await.is_err());
    b.sync().await.unwrap();
    assert!(b.take_changes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_change_is_never_missed_under_concurrent_commits() {
    // Many writers on node A; node B syncs all the while. Every path A wrote
    // must have been announced to B by the sync after the last commit.
    let (a, b) = two_nodes().await;
    let a = Arc::new(a);
    let b = Arc::new(b);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (b, stop) = (b.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                b.sync().await.unwrap();
                for c in b.take_changes() {
                    seen.insert(c);
                }
            }
            b.sync().await.unwrap();
            for c in b.take_changes() {
                seen.insert(c);
            }
            seen
        })
    };
    let mut writers = Vec::new();
    for w in 0..8 {
        let a = a.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                put(&*a, &format!("w{w}/s{i}"), 1).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    let seen = watcher.await.unwrap();
    for w in 0..8 {
        for i in 0..25 {
            assert!(
                seen.contains(&Change::Secret(format!("w{w}/s{i}"))),
                "w{w}/s{i} was never announced"
            );
        }
    }
}

#[tokio::test]
async fn postgres_one_leader_at_a_time_and_takeover_when_it_goes() {
    let (a, b) = two_nodes().await;
    assert!(a.lead().await.unwrap());
    assert!(a.lead().await.unwrap(), "the leader keeps leading");
    assert!(!b.lead().await.unwrap(), "only one leader");
    a.close().await.unwrap();
    drop(a);
    // The lock goes with the leader's connection.
    let mut took_over = false;
    for _ in 0..50 {
        if b.lead().await.unwrap() {
            took_over = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(took_over, "another node takes over");
}

#[tokio::test]
async fn postgres_concurrent_creation_of_one_secret_has_one_winner() {
    let (a, b) = two_nodes().await;
    let (ra, rb) = tokio::join!(put(&a, "race/x", 1), put(&b, "race/x", 1));
    let wins = [ra.is_ok(), rb.is_ok()].iter().filter(|w| **w).count();
    assert_eq!(wins, 1, "{ra:?} {rb:?}");
    let loser = ra.err().or(rb.err()).unwrap();
    assert!(matches!(loser, StoreError::Conflict(_)), "{loser}");
}

/// Two nodes import 1,000 secrets each at once, 500 of them the same:
/// one import wins whole, the other fails whole (new paths race on the
/// version's primary key, existing ones on their row locks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_overlapping_imports_have_one_winner() {
    let (a, b) = two_nodes().await;
    let import = |from: u32, v: u64| -> Vec<Mutation> {
        (from..from + 1000)
            .map(|i| version(record(&format!("race/{i:04}"), v, b"x"), v - 1))
            .collect()
    };
    let everything: Vec<String> = (0..1500).map(|i| format!("race/{i:04}")).collect();
    for v in 1..=3 {
        // Round 1 creates the paths; later rounds update them.
        let (ra, rb) = tokio::join!(a.commit(import(0, v)), b.commit(import(500, v)));
        assert_eq!(
            usize::from(ra.is_ok()) + usize::from(rb.is_ok()),
            1,
            "round {v}: {ra:?} {rb:?}"
        );
        let loser = ra.as_ref().err().or(rb.as_ref().err()).unwrap();
        assert!(matches!(loser, StoreError::Conflict(_)), "{loser}");
        // The loser's own paths were not written.
        let (only_loser, winner) = if ra.is_ok() {
            (1000..1500, 0..1000)
        } else {
            (0..500, 500..1500)
        };
        let metas: std::collections::HashMap<String, u64> = a
            .get_metas(&everything)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.path, m.current_version))
            .collect();
        let at = |i: u32| metas.get(&format!("race/{i:04}")).copied().unwrap_or(0);
        for i in only_loser {
            assert_eq!(at(i), v - 1, "round {v}: race/{i:04}");
        }
        for i in winner {
            assert_eq!(at(i), v, "round {v}: race/{i:04}");
        }
        // The loser's own paths catch up for the next round.
        let behind: Vec<Mutation> = (0..1500u32)
            .filter(|i| at(*i) == v - 1)
            .map(|i| version(record(&format!("race/{i:04}"), v, b"x"), v - 1))
            .collect();
        assert_eq!(behind.len(), 500);
        a.commit(behind).await.unwrap();
    }
}

#[tokio::test]
async fn postgres_errors_never_show_the_password() {
    let url = coffer_testpg::database().await;
    let wrong = url.replace(coffer_testpg::SUPERUSER_PASSWORD, "wrong-password-canary");
    let err = PostgresStore::connect(&pg_options(wrong.clone()))
        .await
        .err()
        .expect("a wrong password is refused")
        .to_string();
    assert!(!err.contains("wrong-password-canary"), "{err}");
    assert!(err.contains("password authentication failed"), "{err}");
    let opts = pg_options(wrong);
    let shown = format!("{opts:?}");
    assert!(!shown.contains("wrong-password-canary"), "{shown}");
    // The password can come separately from the URL.
    let without = url.replace(&format!(":{}@", coffer_testpg::SUPERUSER_PASSWORD), "@");
    let store = PostgresStore::connect(&PostgresOptions {
        url: without,
        password: Some(coffer_testpg::SUPERUSER_PASSWORD.into()),
        pool_size: 2,
    })
    .await
    .unwrap();
    assert!(store.is_empty().await.unwrap());
}

#[tokio::test]
async fn postgres_refuses_a_database_from_a_newer_coffer() {
    let url = coffer_testpg::database().await;
    PostgresStore::connect(&pg_options(url.clone()))
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("UPDATE coffer_schema SET version = 999")
        .await
        .unwrap();
    match PostgresStore::connect(&pg_options(url)).await {
        Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

#[tokio::test]
async fn postgres_tls_verifies_the_server_certificate() {
    let url = coffer_testpg::database().await;
    let url = url.split('?').next().unwrap().to_string();
    let Some(ca) = coffer_testpg::ca_file() else {
        panic!("the TLS test needs the private test server (COFFER_TEST_POSTGRES is set)");
    };
    let db = url.rsplit('/').next().unwrap().to_string();
    let with =
        |host: &str, query: &str| url.replace("@127.0.0.1:", &format!("@{host}:")) + "?" + query;
    // Verified TLS, by name and by address.
    for host in ["localhost", "127.0.0.1"] {
        let u = with(
            host,
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        );
        let store = PostgresStore::connect(&pg_options(u)).await.unwrap();
        put(&store, &format!("tls/{host}"), 1).await.unwrap();
        store.close().await.unwrap();
    }
    // The connections really were encrypted.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let encrypted: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE s.ssl AND a.datname = $1 AND a.application_name = 'coffer'",
            &[&db],
        )
        .await
        .unwrap()
        .get(0);
    let store = PostgresStore::connect(&pg_options(with(
        "localhost",
        &format!("sslmode=require&sslrootcert={}", ca.display()),
    )))
    .await
    .unwrap();
    store.sync().await.unwrap();
    let encrypted_now: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE s.ssl AND a.datname = $1 AND a.application_name = 'coffer'",
            &[&db],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted_now > encrypted, "{encrypted} -> {encrypted_now}");
    // A certificate the configured roots do not vouch for is refused,
    // whether the roots are a file or the system's.
    let other = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-days",
            "1",
            "-subj",
            "/CN=other-ca",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "ca.pem",
        ])
        .current_dir(other.path())
        .output()
        .unwrap();
    assert!(status.status.success());
    for query in [
        format!(
            "sslmode=verify-full&sslrootcert={}",
            other.path().join("ca.pem").display()
        ),
        "sslmode=require".to_string(),
    ] {
        let err = PostgresStore::connect(&pg_options(with("localhost", &query)))
            .await
            .err()
            .expect("an unverifiable certificate is refused")
            .to_string();
        assert!(err.to_lowercase().contains("certificate"), "{query}: {err}");
        // And the error says how to fix it.
        assert!(
            err.contains("name the CA with sslrootcert=FILE"),
            "{query}: {err}"
        );
        assert!(!err.contains(coffer_testpg::SUPERUSER_PASSWORD), "{err}");
    }
}
