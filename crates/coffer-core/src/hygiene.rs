//! Key hygiene: counting encryptions per keyring key, adding a new key long
//! before a key has sealed too much, and moving old versions to the newest
//! key in the background.
//!
//! AES-GCM with random 96-bit nonces is safe for about 2^32 messages per key;
//! coffer adds a key after [`DEFAULT_MAX_ENCRYPTIONS`] (2^30), a quarter of
//! that. The count is kept in storage (an object of kind `keyring`, key
//! `usage`, written with a check-and-set so that several nodes sharing a
//! store count together) by *reservation*: a node reserves a block of
//! encryptions before it uses them, so a crash can only over-count, never
//! under-count. Writes in flight while a key is replaced may seal a handful
//! more under the old key than counted; the margin to 2^32 absorbs that.
//!
//! The re-wrap opens each old version and seals it again under the active
//! key inside the keyring (`Keyring::reseal_value`), so the plaintext never
//! reaches this crate, and replaces the ciphertext with a check-and-set on
//! the key id it read; a version changed meanwhile is simply skipped.

use coffer_store::{Expect, Mutation};
use serde::{Deserialize, Serialize};

use crate::error::{Conflict, CoreError, Integrity, Record, Result};
use crate::{Coffer, now_ms};

/// Encryptions under one key before a new one is added.
pub const DEFAULT_MAX_ENCRYPTIONS: u64 = 1 << 30;
/// The smallest limit accepted (for drills and tests).
pub const MIN_MAX_ENCRYPTIONS: u64 = 16;
/// Largest block of encryptions reserved at once.
const MAX_BLOCK: u64 = 1 << 20;

const KIND_KEYRING: &str = "keyring";
const USAGE_KEY: &str = "usage";

/// What is stored: encryptions reserved under one key.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct StoredUsage {
    key_id: u32,
    reserved: u64,
}

/// This node's view of the active key's count.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    key_id: u32,
    /// Encryptions this node may still make from its reservations.
    left: u64,
    /// Keys this node added automatically (id, unix ms), for the scheduler
    /// to report.
    added: Vec<(u32, i64)>,
}

impl Coffer {
    /// Counts `n` encryptions under the active key, reserving more in
    /// storage when this node's reservation runs out, and adding a new key
    /// first when the active one has sealed its share.
    pub(crate) async fn reserve_seals(&self, n: u64) -> Result<()> {
        let limit = self.options.key_max_encryptions.max(MIN_MAX_ENCRYPTIONS);
        let block = (limit / 16).clamp(1, MAX_BLOCK).max(n);
        let mut usage = self.usage.lock().await;
        for _ in 0..8 {
            let active = self.unsealed()?.keyring.active_id();
            if usage.key_id == active && usage.left >= n {
                usage.left -= n;
                return Ok(());
            }
            if usage.key_id != active {
                usage.key_id = active;
                usage.left = 0;
            }
            let stored = self.store.get_object(KIND_KEYRING, USAGE_KEY).await?;
            let (revision, mut counted) = match &stored {
                Some(o) => (
                    Some(o.revision),
                    serde_json::from_slice::<StoredUsage>(&o.value).map_err(|_| {
                        CoreError::Corrupt(Integrity::Unreadable(Record::KeyringUsage))
                    })?,
                ),
                None => (None, StoredUsage::default()),
            };
            if counted.key_id != active {
                counted = StoredUsage {
                    key_id: active,
                    reserved: 0,
                };
            }
            // A fresh key takes any one reservation (a batch is at most a few
            // thousand encryptions, far below any sensible limit).
            if counted.reserved > 0 && counted.reserved + block > limit {
                let (_, id) = self.add_keyring_key().await?;
                tracing::warn!(
                    target: "coffer::alert",
                    alert = "keyring_rotated",
                    old_key = active,
                    new_key = id,
                    "keyring key {active} sealed its share of values; key {id} was added"
                );
                usage.added.push((id, now_ms()));
                continue;
            }
            counted.reserved += block;
            let result = self
                .store
                .commit(vec![Mutation::PutObject {
                    kind: KIND_KEYRING.into(),
                    key: USAGE_KEY.into(),
                    value: serde_json::to_vec(&counted).expect("usage serialises"),
                    expect: revision.map_or(Expect::Absent, Expect::Revision),
                }])
                .await;
            match result {
                Ok(()) => usage.left += block,
                // Another node reserved at the same time: read again.
                Err(coffer_store::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Conflict(Conflict::Reservation))
    }

    /// The keys this node added automatically since the last call.
    pub(crate) async fn keys_added(&self) -> Vec<(u32, i64)> {
        std::mem::take(&mut self.usage.lock().await.added)
    }

    /// Moves up to `limit` versions sealed under older keyring keys to the
    /// active key. Returns how many moved. Acts for no token: no value
    /// leaves the keyring.
    pub async fn rewrap(&self, limit: usize) -> Result<usize> {
        let keys = self.unsealed()?;
        let active = keys.keyring.active_id();
        let old = self.store.versions_sealed_elsewhere(active, limit).await?;
        if old.is_empty() {
            return Ok(0);
        }
        self.reserve_seals(old.len() as u64).await?;
        // After the reservation, which may have added a key: seal under it.
        let keys = self.unsealed()?;
        let mut moved = 0;
        for record in old {
            let (key_id, ciphertext) = keys
                .keyring
                .reseal_value(&record.path, record.version, record.key_id, &record.ciphertext)
                .map_err(|_| {
                    tracing::error!(path = %record.path, version = record.version, "stored ciphertext failed to open during re-wrap");
                    CoreError::Corrupt(Integrity::Failed(Record::Version {
                path: record.path.to_string(),
                version: record.version,
            }))
                })?;
            let mut tx = self.begin_rewrap(&record.path).await?;
            tx.stage_rewrap(
                &record.path,
                Mutation::ResealVersion {
                    path: record.path.clone(),
                    version: record.version,
                    expected_key_id: record.key_id,
                    key_id,
                    ciphertext,
                },
            );
            match tx.commit().await {
                Ok(()) => moved += 1,
                // Destroyed or moved meanwhile: nothing to do.
                Err(coffer_store::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(moved)
    }
}
