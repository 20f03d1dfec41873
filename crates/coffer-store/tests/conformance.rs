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
