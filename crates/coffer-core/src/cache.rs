//! The in-memory cache of secret metadata and current-version ciphertext.
//!
//! Reads are the hot path, so a read of a cached secret touches no storage: it
//! takes a read lock, clones an `Arc`, and opens the ciphertext. The cache holds
//! only what the store holds (ciphertext and metadata), never plaintext.
//!
//! Consistency: a writer updates or invalidates an entry after its commit, and
//! bumps a per-stripe generation counter under the map's write lock. A reader
//! that missed the cache notes the generation before reading storage and only
//! inserts its result if the generation is unchanged, so a slow reader can never
//! overwrite a newer entry with the state it read before a write or delete.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use coffer_store::{SecretMeta, VersionRecord};

use crate::lifecycle::{Labels, SecretState};

/// What is cached for one path.
#[derive(Debug)]
pub(crate) struct Cached {
    pub meta: SecretMeta,
    /// The secret's state record and its revision, if it has one.
    pub state: Option<(u64, SecretState)>,
    /// The record of the version labelled `current`, with its ciphertext.
    pub current: Option<VersionRecord>,
}

impl Cached {
    /// The secret's labels.
    pub fn labels(&self) -> Labels {
        Labels::of(&self.meta, self.state.as_ref().map(|(_, s)| s))
    }
}

pub(crate) struct SecretCache {
    map: RwLock<HashMap<String, Arc<Cached>>>,
    generations: Box<[AtomicU64]>,
    hasher: RandomState,
    capacity: usize,
}

const STRIPES: usize = 256;

impl SecretCache {
    pub fn new(capacity: usize) -> SecretCache {
        SecretCache {
            map: RwLock::new(HashMap::new()),
            generations: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
            capacity: capacity.max(1),
        }
    }

    /// Which write stripe a path belongs to (also used for write locks).
    pub fn stripe(&self, path: &str) -> usize {
        (self.hasher.hash_one(path) as usize) % STRIPES
    }

    pub fn get(&self, path: &str) -> Option<Arc<Cached>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned()
    }

    pub fn generation(&self, path: &str) -> u64 {
        self.generations[self.stripe(path)].load(Ordering::Acquire)
    }

    /// Inserts what a reader fetched, unless a writer touched the stripe since
    /// the reader noted `generation`.
    pub fn insert_if_unchanged(&self, path: &str, generation: u64, entry: Arc<Cached>) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if self.generations[self.stripe(path)].load(Ordering::Acquire) != generation {
            return;
        }
        self.make_room(&mut map);
        map.insert(path.to_string(), entry);
    }

    /// Records a writer's new state for `path`.
    pub fn put(&self, path: &str, entry: Arc<Cached>) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generations[self.stripe(path)].fetch_add(1, Ordering::AcqRel);
        self.make_room(&mut map);
        map.insert(path.to_string(), entry);
    }

    /// Forgets `path` after a change whose result the writer did not compute.
    pub fn invalidate(&self, path: &str) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generations[self.stripe(path)].fetch_add(1, Ordering::AcqRel);
        map.remove(path);
    }

    pub fn clear(&self) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        for g in self.generations.iter() {
            g.fetch_add(1, Ordering::AcqRel);
        }
        map.clear();
    }

    fn make_room(&self, map: &mut HashMap<String, Arc<Cached>>) {
        if map.len() >= self.capacity {
            // Evict an arbitrary eighth: cheap, and the hot set refills on
            // demand. A miss only costs a storage read, never correctness.
            let drop_n = (self.capacity / 8).max(1);
            let victims: Vec<String> = map.keys().take(drop_n).cloned().collect();
            for k in victims {
                map.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: u64) -> Arc<Cached> {
        Arc::new(Cached {
            meta: SecretMeta {
                path: "p".into(),
                current_version: v,
                live: true,
                created_at: 0,
                updated_at: 0,
            },
            state: None,
            current: None,
        })
    }

    #[test]
    fn a_stale_reader_cannot_overwrite_a_newer_write() {
        let c = SecretCache::new(10);
        let g = c.generation("p");
        c.put("p", entry(2)); // a write lands while the reader was reading storage
        c.insert_if_unchanged("p", g, entry(1));
        assert_eq!(c.get("p").unwrap().meta.current_version, 2);
        let g = c.generation("p");
        c.invalidate("p");
        c.insert_if_unchanged("p", g, entry(2));
        assert!(
            c.get("p").is_none(),
            "a delete is not undone by a stale reader"
        );
    }

    #[test]
    fn capacity_is_bounded() {
        let c = SecretCache::new(16);
        for i in 0..100 {
            c.put(&format!("p{i}"), entry(1));
        }
        assert!(c.map.read().unwrap().len() <= 16);
    }
}
