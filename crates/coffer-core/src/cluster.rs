//! Keeping this node's caches true when other nodes share the store.
//!
//! Each node caches secrets (ciphertext and metadata), tokens, the access
//! model and the keyring. When another node changes one of them, the store
//! reports it (see `Storage::sync`), and [`Coffer::sync`] forgets or reloads
//! what changed before the request that called it goes on. A failure on the
//! way leaves the node marked, and the next sync starts from nothing: a
//! change is never silently dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use coffer_crypto::Keyring;
use coffer_store::Change;

use crate::access::{KIND_BREAKGLASS, KIND_POLICY, KIND_PROTECTED};
use crate::error::{CoreError, Integrity, Record, Result};
use crate::lifecycle::{KIND_RULE, KIND_STATE};
use crate::{Coffer, Keys, SEAL_CONFIG, State, WRAPPED_KEYRING};

impl Coffer {
    /// Applies every change other nodes committed before this call began.
    /// Called before each authenticated request and each background pass;
    /// a single-process store makes it free.
    pub async fn sync(&self) -> Result<()> {
        self.store.sync().await?;
        let _one_at_a_time = self.sync_lock.lock().await;
        let mut changes = self.store.take_changes();
        if self.resync.swap(false, Ordering::AcqRel) {
            changes.push(Change::Reset);
        }
        if changes.is_empty() {
            return Ok(());
        }
        let outcome = self.apply_changes(changes).await;
        if outcome.is_err() {
            self.resync.store(true, Ordering::Release);
        }
        outcome
    }

    async fn apply_changes(&self, changes: Vec<Change>) -> Result<()> {
        let (mut access, mut keyring, mut seal) = (false, false, false);
        for change in changes {
            match change {
                Change::Secret(path) => self.cache.invalidate(&path),
                Change::Tokens => self.forget_tokens(),
                Change::Object { kind, key } => match kind.as_str() {
                    KIND_STATE => self.cache.invalidate(&key),
                    KIND_POLICY | KIND_PROTECTED | KIND_BREAKGLASS | KIND_RULE => access = true,
                    // Users, invitations and login counters are read from
                    // the store when used; keyring usage is reserved there.
                    _ => {}
                },
                Change::System(key) if key == WRAPPED_KEYRING => keyring = true,
                Change::System(_) => seal = true,
                Change::Reset => {
                    self.cache.clear();
                    self.forget_tokens();
                    (access, keyring, seal) = (true, true, true);
                }
            }
        }
        if seal {
            self.refresh_seal_config().await?;
        }
        if self.is_unsealed() {
            if keyring {
                self.reload_keyring().await?;
            }
            if access {
                self.reload_access().await?;
            }
        }
        Ok(())
    }

    /// Holds, or takes, this node's role of running the cluster's background
    /// jobs (the scheduler, sweeps); returns whether it holds it now. With
    /// several nodes on one store exactly one unsealed node holds it, and
    /// another takes it within seconds of the holder's death or sealing. A
    /// sealed node cannot run the jobs, so it gives the role up (to a node
    /// that can) and answers `false`; a store only one process can open
    /// always leads.
    pub async fn hold_leadership(&self) -> Result<bool> {
        if !self.is_unsealed() {
            self.step_down().await;
            return Ok(false);
        }
        Ok(self.store.lead().await?)
    }

    /// Gives the role of running background jobs up, if this node holds it.
    pub async fn step_down(&self) {
        self.store.resign().await;
    }

    /// Upkeep the leader runs for every node sharing the store (for
    /// PostgreSQL, pruning the change log). Whether sealed or not.
    pub async fn housekeeping(&self) -> Result<()> {
        Ok(self.store.housekeeping().await?)
    }

    /// Notices, while uninitialized, that another node sharing the store
    /// has initialised it (for status and health, which need no token). A
    /// store that cannot be read leaves the status as it was.
    pub async fn notice_initialization(&self) {
        if let Err(e) = self.refresh_seal_config().await {
            tracing::warn!(error = %e, "cannot read the seal configuration");
        }
    }

    /// Notices that another node initialised the shared store.
    pub(crate) async fn refresh_seal_config(&self) -> Result<()> {
        if !matches!(
            &*self.state.read().unwrap_or_else(|p| p.into_inner()),
            State::Uninitialized
        ) {
            return Ok(());
        }
        let Some(bytes) = self.store.get_system(SEAL_CONFIG).await? else {
            return Ok(());
        };
        let config = serde_json::from_slice(&bytes)
            .map_err(|_| CoreError::Corrupt(Integrity::Unreadable(Record::SealConfig)))?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if matches!(&*state, State::Uninitialized) {
            *state = State::Sealed {
                config,
                progress: Vec::new(),
            };
            tracing::info!("another node initialized the store; this node is sealed");
        }
        Ok(())
    }

    /// Loads the keyring another node changed (a key added).
    async fn reload_keyring(&self) -> Result<()> {
        let keys = self.unsealed()?;
        let wrapped = self
            .store
            .get_system(WRAPPED_KEYRING)
            .await?
            .ok_or_else(|| CoreError::Corrupt(Integrity::Missing(Record::WrappedKeyring)))?;
        let keyring = Keyring::unwrap(&keys.root, &wrapped)
            .map_err(|_| CoreError::Corrupt(Integrity::Failed(Record::Keyring)))?;
        if keyring.active_id() < keys.keyring.active_id() {
            return Err(CoreError::Corrupt(Integrity::KeyringRolledBack));
        }
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let State::Unsealed { keys: k, .. } = &mut *state {
            tracing::info!(active_key = keyring.active_id(), "keyring reloaded");
            *k = Arc::new(Keys {
                root: keys.root.clone(),
                audit: keys.audit.clone(),
                keyring,
            });
        }
        Ok(())
    }
}
