//! Seal state: `init`, unsealing with key shares, sealing, adding keyring
//! keys, and the seal status. While unsealed, [`Coffer::unsealed`] hands out
//! the key hierarchy; every use case that touches secrets takes its keys
//! from there, so a sealed coffer refuses them all.

use std::net::IpAddr;
use std::sync::Arc;

use coffer_crypto::keyring::{AuditKey, Keyring, RootKey, UnsealKey};
use coffer_crypto::shamir::{self, Share};
use coffer_crypto::{Key256, SecretString, token};
use coffer_store::{Mutation, TokenRecord};
use serde::{Deserialize, Serialize};

use crate::auth::{AccessModel, Identity, Operation, ROOT_POLICY};
use crate::error::{Busy, CoreError, Integrity, InvalidInput, Record, Result, UnsealRefusal};
use crate::{Coffer, now_ms};

pub(crate) const SEAL_CONFIG: &str = "seal-config";

/// How long [`Coffer::storage_available`] waits for the store: a database
/// whose packets are dropped must not hold a health check past a load
/// balancer's own timeout.
pub const STORAGE_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long the result of a store probe answers the health check: calls
/// within this time of the last probe read no store, so a flood of
/// unauthenticated health calls cannot load the database.
pub const STORAGE_PROBE_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The health check's view of the store: the last probe's result and when
/// it was made. At most one probe runs at a time; callers meanwhile get the
/// last result.
pub(crate) struct StorageProbe {
    last: std::sync::Mutex<(Option<std::time::Instant>, bool)>,
    running: tokio::sync::Mutex<()>,
    /// The availability the last probe found, for whoever watches for its
    /// changes (the server raises them as alerts).
    changes: tokio::sync::watch::Sender<bool>,
}

impl Default for StorageProbe {
    fn default() -> StorageProbe {
        StorageProbe {
            // Available until a probe says otherwise.
            last: std::sync::Mutex::new((None, true)),
            running: tokio::sync::Mutex::new(()),
            changes: tokio::sync::watch::Sender::new(true),
        }
    }
}

/// What one probe of the store found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Probe {
    Answered,
    Failed,
    TimedOut,
}

impl StorageProbe {
    fn cached(&self) -> (Option<std::time::Instant>, bool) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store's availability: the cached result if it is fresh or another
    /// caller is probing; otherwise `probe` is run (twice if the first one
    /// fails: the store is reported unavailable only after two failures in
    /// a row, or one that timed out).
    pub(crate) async fn available<F, Fut>(&self, probe: F) -> bool
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Probe>,
    {
        let fresh = |(at, _): (Option<std::time::Instant>, bool)| {
            at.is_some_and(|t| t.elapsed() < STORAGE_PROBE_FRESH)
        };
        let last = self.cached();
        if fresh(last) {
            return last.1;
        }
        let Ok(_running) = self.running.try_lock() else {
            return last.1;
        };
        // Another caller may have just finished a probe.
        let last = self.cached();
        if fresh(last) {
            return last.1;
        }
        let available = match probe().await {
            Probe::Answered => true,
            Probe::TimedOut => false,
            Probe::Failed => probe().await == Probe::Answered,
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) =
            (Some(std::time::Instant::now()), available);
        self.changes
            .send_if_modified(|v| std::mem::replace(v, available) != available);
        available
    }

    /// The availability each probe finds, told when it changes.
    pub(crate) fn watch(&self) -> tokio::sync::watch::Receiver<bool> {
        self.changes.subscribe()
    }
}

pub(crate) const WRAPPED_ROOT_KEY: &str = "root-key";

pub(crate) const WRAPPED_KEYRING: &str = "keyring";

/// Stored, non-secret seal configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SealConfig {
    pub(crate) format: u32,
    pub(crate) shares: u8,
    pub(crate) threshold: u8,
    pub(crate) initialized_at: i64,
}

pub(crate) struct Keys {
    pub(crate) root: Arc<RootKey>,
    pub(crate) keyring: Keyring,
    /// The keyring's audit key, shared with the audit writer.
    pub(crate) audit: AuditKey,
}

/// An unseal key share waiting for enough others, with the source it came
/// from (`None`: this process, or a caller that did not say).
pub(crate) struct Pending {
    share: Share,
    source: Option<IpAddr>,
}

/// Most combinations of pending shares one unseal attempt tries (each is a
/// Lagrange interpolation and one AEAD open: microseconds).
const MAX_UNSEAL_COMBINATIONS: u64 = 20_000;

/// Most combinations an unseal attempt from another machine may cost (a few
/// milliseconds): the attempt holds the unseal lock while it searches, so
/// remote attempts stay cheap; attempts from this machine keep the higher cap.
const MAX_REMOTE_UNSEAL_COMBINATIONS: u64 = 2_000;

/// How long an unseal attempt (or reset) from another machine waits for the
/// unseal lock before it is refused as busy (429). Attempts from this machine
/// wait as long as they need, and at most one remote attempt is ever queued
/// for the lock ahead of them.
pub const REMOTE_UNSEAL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The remote gate (for an attempt from elsewhere) and the unseal lock.
type UnsealGuard<'a> = (
    Option<tokio::sync::MutexGuard<'a, ()>>,
    tokio::sync::MutexGuard<'a, ()>,
);

/// Whether an unseal source is this machine (loopback, or this process).
fn local_source(source: Option<IpAddr>) -> bool {
    source.is_none_or(|ip| ip.to_canonical().is_loopback())
}

/// `n` choose `k`, saturating.
fn binomial(n: usize, k: usize) -> u64 {
    if k > n {
        return 0;
    }
    let k = k.min(n - k);
    let mut r: u64 = 1;
    for i in 0..k {
        r = r.saturating_mul((n - i) as u64) / (i as u64 + 1);
    }
    r
}

/// Calls `f` with each `k`-subset of `0..n` (as sorted indices) until it
/// returns true; whether it did.
fn any_subset(n: usize, k: usize, f: &mut impl FnMut(&[usize]) -> bool) -> bool {
    fn go(
        start: usize,
        n: usize,
        k: usize,
        chosen: &mut Vec<usize>,
        f: &mut impl FnMut(&[usize]) -> bool,
    ) -> bool {
        if chosen.len() == k {
            return f(chosen);
        }
        for i in start..n {
            if n - i < k - chosen.len() {
                break;
            }
            chosen.push(i);
            if go(i + 1, n, k, chosen, f) {
                return true;
            }
            chosen.pop();
        }
        false
    }
    go(0, n, k, &mut Vec::with_capacity(k), f)
}

pub(crate) enum State {
    Uninitialized,
    Sealed {
        config: SealConfig,
        progress: Vec<Pending>,
    },
    Unsealed {
        config: SealConfig,
        keys: Arc<Keys>,
    },
}

/// Seal status, as `coffer status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealStatus {
    /// Whether `init` has run.
    pub initialized: bool,
    /// Whether the server is sealed.
    pub sealed: bool,
    /// Shares needed to unseal (0 before init).
    pub threshold: u8,
    /// Shares handed out at init (0 before init).
    pub shares: u8,
    /// Shares provided so far towards the next unseal.
    pub progress: u8,
    /// Storage backend name.
    pub storage: &'static str,
}

/// What `init` hands out, once.
pub struct InitOutput {
    /// Encoded unseal key shares.
    pub unseal_keys: Vec<SecretString>,
    /// The initial root token.
    pub root_token: SecretString,
}

/// Keyring status, as `coffer operator rotate` shows it: key ids and ages,
/// never key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyringStatus {
    /// Key used for new writes.
    pub active_key: u32,
    /// All keys, ascending, with their creation time (unix milliseconds).
    pub keys: Vec<(u32, i64)>,
}

impl Coffer {
    /// Current seal status. Never fails and needs no token.
    /// Whether the store answers a read within [`STORAGE_PROBE_TIMEOUT`]:
    /// the health check's view of the database. A PostgreSQL server that is
    /// down or cut off fails it (every request that touches the store would
    /// fail meanwhile), and health says so instead of answering 200.
    ///
    /// One probe at a time, and none within [`STORAGE_PROBE_FRESH`] of the
    /// last: other callers get the last result (see [`StorageProbe`]).
    pub async fn storage_available(&self) -> bool {
        self.storage_probe
            .available(|| async {
                match tokio::time::timeout(
                    STORAGE_PROBE_TIMEOUT,
                    self.store.get_system(SEAL_CONFIG),
                )
                .await
                {
                    Ok(Ok(_)) => Probe::Answered,
                    Ok(Err(_)) => Probe::Failed,
                    Err(_) => Probe::TimedOut,
                }
            })
            .await
    }

    /// The store's availability as probes find it (by
    /// [`Coffer::storage_available`]), told when it changes.
    pub fn storage_changes(&self) -> tokio::sync::watch::Receiver<bool> {
        self.storage_probe.watch()
    }

    pub fn status(&self) -> SealStatus {
        self.status_locked(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Initialises a new coffer: creates the key hierarchy and the root token,
    /// and splits the unseal key into `shares` shares, any `threshold` of which
    /// unseal. The result is shown once and never stored. Coffer stays sealed.
    pub async fn init(&self, shares: u8, threshold: u8) -> Result<InitOutput> {
        if shares == 0 || threshold == 0 || threshold > shares {
            return Err(CoreError::Invalid(InvalidInput::Shares));
        }
        let _admin = self.admin.lock().await;
        if !matches!(
            &*self.state.read().unwrap_or_else(|p| p.into_inner()),
            State::Uninitialized
        ) {
            return Err(CoreError::AlreadyInitialized);
        }
        let now = now_ms();
        let unseal = UnsealKey::from(Key256::random());
        let split = shamir::split(unseal.key().expose_secret(), shares, threshold)
            .map_err(|e| CoreError::Invalid(InvalidInput::Split(e)))?;
        let root = RootKey::random();
        let keyring = Keyring::generate(now);
        let root_token = token::generate_token();
        let config = SealConfig {
            format: 1,
            shares,
            threshold,
            initialized_at: now,
        };
        let token = TokenRecord {
            hash: keyring.token_hash(root_token.expose_secret()),
            accessor: token::generate_accessor(),
            display_name: "root".into(),
            policies: vec![ROOT_POLICY.into()],
            created_at: now,
            expires_at: None,
            parent: None,
            kind: coffer_store::TokenKind::Service,
            user: None,
            ttl_ms: None,
            max_expires_at: None,
            uses_limit: None,
            uses_left: None,
            cidrs: Vec::new(),
            workload: None,
        };
        let mutations = vec![
            Mutation::InsertSystem {
                key: SEAL_CONFIG.into(),
                value: serde_json::to_vec(&config).expect("config serialises"),
            },
            Mutation::InsertSystem {
                key: WRAPPED_ROOT_KEY.into(),
                value: unseal.wrap_root(&root),
            },
            Mutation::InsertSystem {
                key: WRAPPED_KEYRING.into(),
                value: keyring.wrap(&root),
            },
            Mutation::PutToken(token),
        ];
        match self.store.commit(mutations).await {
            Ok(()) => {}
            // Another node (or a racing request) initialised first.
            Err(coffer_store::StoreError::Conflict(_)) => {
                drop(_admin);
                self.refresh_seal_config().await?;
                return Err(CoreError::AlreadyInitialized);
            }
            Err(e) => return Err(e.into()),
        }
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = State::Sealed {
            config,
            progress: Vec::new(),
        };
        tracing::info!(shares, threshold, "coffer initialized");
        Ok(InitOutput {
            unseal_keys: split.iter().map(Share::encode).collect(),
            root_token,
        })
    }

    /// Provides one unseal key share from this process (see
    /// [`Coffer::unseal_from`]).
    pub async fn unseal(&self, encoded_share: &str) -> Result<SealStatus> {
        self.unseal_from(encoded_share, None).await
    }

    /// Provides one unseal key share, from `source` (the caller's address,
    /// or its IPv6 /64). When enough shares have been provided, coffer
    /// unseals.
    ///
    /// A wrong share (a typo, or one sent by someone else to spoil the
    /// attempt) cannot be told from a right one on its own, so it does not
    /// reset anything: shares are kept, and every combination of
    /// `threshold` of them with different x coordinates is tried, so a
    /// correct set still opens the coffer whatever else was sent. One
    /// source may have at most `threshold` shares pending, each x at most
    /// once; a source can withdraw its own with [`Coffer::unseal_reset_from`].
    /// Once so many are pending that the combinations would pass
    /// `MAX_UNSEAL_COMBINATIONS`, only shares from this machine (loopback,
    /// or `None`) are taken, and those are tried among themselves; a share
    /// from elsewhere is refused past the lower
    /// `MAX_REMOTE_UNSEAL_COMBINATIONS`.
    ///
    /// An attempt from elsewhere that cannot take the unseal lock within
    /// [`REMOTE_UNSEAL_WAIT`] is refused with [`CoreError::RateLimited`] and
    /// changes nothing.
    pub async fn unseal_from(
        &self,
        encoded_share: &str,
        source: Option<IpAddr>,
    ) -> Result<SealStatus> {
        let share = Share::decode(encoded_share)
            .map_err(|_| CoreError::InvalidUnsealKey(UnsealRefusal::Malformed))?;
        let _admin = self.unseal_lock(source).await?;
        // Another node sharing the store may have initialised it.
        self.refresh_seal_config().await?;
        let (config, candidates) = {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            match &mut *state {
                State::Uninitialized => return Err(CoreError::NotInitialized),
                State::Unsealed { .. } => return Ok(self.status_locked(&state)),
                State::Sealed { config, progress } => {
                    let t = usize::from(config.threshold.max(1));
                    let mine = progress.iter().filter(|p| p.source == source);
                    if mine.clone().any(|p| p.share.x() == share.x()) {
                        return Err(CoreError::InvalidUnsealKey(UnsealRefusal::AlreadyProvided));
                    }
                    if mine.count() >= t {
                        return Err(CoreError::InvalidUnsealKey(UnsealRefusal::SourceFull {
                            threshold: t,
                        }));
                    }
                    // Past the cap, a share from this machine is still
                    // taken, and tried only with this machine's: others
                    // filling the pending list from many addresses cannot
                    // stop an operator on the server (a reset from here
                    // would be refilled before their next key).
                    let local = local_source;
                    let combinations = binomial(progress.len(), t - 1);
                    let over = combinations > MAX_UNSEAL_COMBINATIONS;
                    if !local(source) && combinations > MAX_REMOTE_UNSEAL_COMBINATIONS {
                        return Err(CoreError::InvalidUnsealKey(UnsealRefusal::TooManyPending));
                    }
                    progress.push(Pending { share, source });
                    let shares: Vec<Share> = progress
                        .iter()
                        .filter(|p| !over || local(p.source))
                        .map(|p| p.share.clone())
                        .collect();
                    if shares.len() < t {
                        return Ok(self.status_locked(&state));
                    }
                    (config.clone(), shares)
                }
            }
        };
        match self.open_with_any(&candidates, config.threshold).await {
            Ok(keys) => {
                let model = self.load_access_model().await?;
                // Compute the dummy password hash now, so the first login for
                // an unknown name costs the same as every later one.
                tokio::task::spawn_blocking(|| {
                    let _ = coffer_crypto::password::verify_dummy("warm-up");
                });
                *self.access.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(model);
                *self.state.write().unwrap_or_else(|p| p.into_inner()) = State::Unsealed {
                    config,
                    keys: Arc::new(keys),
                };
                tracing::info!("coffer unsealed");
                Ok(self.status())
            }
            Err(e) => {
                tracing::warn!(
                    pending = candidates.len(),
                    "unseal attempt failed: no combination of the pending shares opens the coffer"
                );
                if config.threshold <= 1 {
                    // A single share that does not open it never will.
                    if let State::Sealed { progress, .. } =
                        &mut *self.state.write().unwrap_or_else(|p| p.into_inner())
                    {
                        progress.clear();
                    }
                }
                Err(e)
            }
        }
    }

    /// Tries every `threshold`-combination of `shares` that includes the
    /// last one (the others were tried when they arrived) and has distinct
    /// x coordinates; the keys of the first that opens the root key.
    async fn open_with_any(&self, shares: &[Share], threshold: u8) -> Result<Keys> {
        let t = usize::from(threshold.max(1));
        let wrong = || CoreError::InvalidUnsealKey(UnsealRefusal::WrongKeys);
        let Some((last, earlier)) = shares.split_last() else {
            return Err(wrong());
        };
        let wrapped_root = self
            .store
            .get_system(WRAPPED_ROOT_KEY)
            .await?
            .ok_or_else(|| CoreError::Corrupt(Integrity::Missing(Record::WrappedRoot)))?;
        let (last, earlier) = (last.clone(), earlier.to_vec());
        let delay = self
            .unseal_search_delay_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        // Up to MAX_UNSEAL_COMBINATIONS tries: off the request thread, on
        // the blocking pool.
        let opened = tokio::task::spawn_blocking(move || {
            if delay > 0 {
                std::thread::sleep(std::time::Duration::from_millis(delay));
            }
            let mut opened = None;
            let mut set: Vec<Share> = Vec::with_capacity(t);
            any_subset(earlier.len(), t - 1, &mut |chosen| {
                set.clear();
                set.extend(chosen.iter().map(|&i| earlier[i].clone()));
                set.push(last.clone());
                let mut xs: Vec<u8> = set.iter().map(Share::x).collect();
                xs.sort_unstable();
                xs.dedup();
                if xs.len() != set.len() {
                    return false;
                }
                let Ok(combined) = shamir::combine(&set) else {
                    return false;
                };
                let Ok(key) = Key256::from_slice(combined.expose_secret()) else {
                    return false;
                };
                match UnsealKey::from(key).unwrap_root(&wrapped_root) {
                    Ok(root) => {
                        opened = Some(root);
                        true
                    }
                    Err(_) => false,
                }
            });
            opened
        })
        .await
        .map_err(|_| wrong())?;
        let root = opened.ok_or_else(wrong)?;
        self.open_keyring(root).await
    }

    /// The keys under an opened root key.
    async fn open_keyring(&self, root: RootKey) -> Result<Keys> {
        let wrapped_keyring = self
            .store
            .get_system(WRAPPED_KEYRING)
            .await?
            .ok_or_else(|| CoreError::Corrupt(Integrity::Missing(Record::WrappedKeyring)))?;
        // The root key opened, so a keyring that does not is tampered or corrupt.
        let keyring = Keyring::unwrap(&root, &wrapped_keyring)
            .map_err(|_| CoreError::Corrupt(Integrity::Failed(Record::Keyring)))?;
        Ok(Keys {
            root: Arc::new(root),
            audit: keyring.audit_key(),
            keyring,
        })
    }

    /// Forgets the unseal progress so far (every source's).
    pub async fn unseal_reset(&self) -> SealStatus {
        // This process's own reset waits as long as it needs: never refused.
        match self.unseal_reset_from(None).await {
            Ok(status) => status,
            Err(_) => self.status(),
        }
    }

    /// The unseal lock for an attempt from `source`. From this machine:
    /// first come first served, without a time limit. From elsewhere: first the remote gate
    /// (one remote attempt at a time) and then the lock, both within
    /// [`REMOTE_UNSEAL_WAIT`], else [`CoreError::RateLimited`]; the gate is
    /// held until the attempt ends. The lock is fair, so an attempt from this
    /// machine waits behind at most the one remote attempt holding the gate,
    /// however many others are waiting (and they give up in time).
    async fn unseal_lock(&self, source: Option<IpAddr>) -> Result<UnsealGuard<'_>> {
        if local_source(source) {
            return Ok((None, self.admin.lock().await));
        }
        let take = async {
            let gate = self.remote_unseal.lock().await;
            (Some(gate), self.admin.lock().await)
        };
        tokio::time::timeout(REMOTE_UNSEAL_WAIT, take)
            .await
            .map_err(|_| CoreError::RateLimited(Busy::Unsealing))
    }

    /// Test hook: makes every unseal combination search take `delay` longer
    /// (it sleeps on the blocking pool, as the search runs there).
    #[doc(hidden)]
    pub fn set_unseal_search_delay_for_tests(&self, delay: std::time::Duration) {
        self.unseal_search_delay_ms.store(
            delay.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Forgets the unseal shares `source` provided; a loopback source, or
    /// `None` (this process), forgets every source's.
    /// A reset from elsewhere waits for the unseal lock as an attempt does
    /// (at most [`REMOTE_UNSEAL_WAIT`], then [`CoreError::RateLimited`]).
    pub async fn unseal_reset_from(&self, source: Option<IpAddr>) -> Result<SealStatus> {
        let _admin = self.unseal_lock(source).await?;
        if let State::Sealed { progress, .. } =
            &mut *self.state.write().unwrap_or_else(|p| p.into_inner())
        {
            match source {
                Some(ip) if !ip.to_canonical().is_loopback() => {
                    progress.retain(|p| p.source != Some(ip));
                }
                _ => progress.clear(),
            }
        }
        Ok(self.status())
    }

    /// Seals: drops every key from memory (they are zeroized when the last
    /// in-flight request holding them finishes) and clears the caches.
    pub async fn seal(&self, identity: &Identity) -> Result<()> {
        self.authorize(identity, Operation::Admin, "sys/seal")?;
        let _admin = self.admin.lock().await;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let State::Unsealed { config, .. } = &*state {
            *state = State::Sealed {
                config: config.clone(),
                progress: Vec::new(),
            };
        }
        drop(state);
        self.cache.clear();
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        *self.access.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(AccessModel::default());
        tracing::info!(actor = identity.display_name(), "coffer sealed");
        Ok(())
    }

    /// Adds a new keyring key and makes it the one new versions are sealed
    /// with. Existing versions keep opening with their own key until the
    /// background re-wrap moves them.
    pub async fn rotate_keyring(&self, identity: &Identity) -> Result<KeyringStatus> {
        self.authorize(identity, Operation::Admin, "sys/rotate")?;
        let (status, id) = self.add_keyring_key().await?;
        tracing::info!(
            actor = identity.display_name(),
            key_id = id,
            "keyring rotated"
        );
        Ok(status)
    }

    /// Adds a keyring key and makes it active, in storage and in memory.
    pub(crate) async fn add_keyring_key(&self) -> Result<(KeyringStatus, u32)> {
        let _admin = self.admin.lock().await;
        let keys = self.unsealed()?;
        let wrapped = self
            .store
            .get_system(WRAPPED_KEYRING)
            .await?
            .ok_or_else(|| CoreError::Corrupt(Integrity::Missing(Record::WrappedKeyring)))?;
        let mut keyring = Keyring::unwrap(&keys.root, &wrapped)
            .map_err(|_| CoreError::Corrupt(Integrity::Failed(Record::Keyring)))?;
        let id = keyring.rotate(now_ms());
        // A check-and-set on the stored bytes: two nodes adding a key at
        // once must not both win (the loser's key would seal versions that
        // no keyring can open).
        self.store
            .commit(vec![Mutation::ReplaceSystem {
                key: WRAPPED_KEYRING.into(),
                expected: wrapped,
                value: keyring.wrap(&keys.root),
            }])
            .await?;
        let status = keyring_status(&keyring);
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let State::Unsealed { keys: k, .. } = &mut *state {
            *k = Arc::new(Keys {
                root: keys.root.clone(),
                audit: keys.audit.clone(),
                keyring,
            });
        }
        Ok((status, id))
    }

    /// The keyring's keys (admin only).
    pub fn keyring_status(&self, identity: &Identity) -> Result<KeyringStatus> {
        self.authorize(identity, Operation::Admin, "sys/keyring")?;
        Ok(keyring_status(&self.unsealed()?.keyring))
    }

    fn status_locked(&self, state: &State) -> SealStatus {
        let storage = self.store.backend_name();
        match state {
            State::Uninitialized => SealStatus {
                initialized: false,
                sealed: true,
                threshold: 0,
                shares: 0,
                progress: 0,
                storage,
            },
            State::Sealed { config, progress } => SealStatus {
                initialized: true,
                sealed: true,
                threshold: config.threshold,
                shares: config.shares,
                progress: progress.len().min(255) as u8,
                storage,
            },
            State::Unsealed { config, .. } => SealStatus {
                initialized: true,
                sealed: false,
                threshold: config.threshold,
                shares: config.shares,
                progress: 0,
                storage,
            },
        }
    }

    /// The key hierarchy while unsealed: the one way a use case gets the
    /// keys, and so the check that refuses it while sealed
    /// ([`CoreError::Sealed`]) or before `init` ([`CoreError::NotInitialized`]).
    pub(crate) fn unsealed(&self) -> Result<Arc<Keys>> {
        match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            State::Unsealed { keys, .. } => Ok(keys.clone()),
            State::Sealed { .. } => Err(CoreError::Sealed),
            State::Uninitialized => Err(CoreError::NotInitialized),
        }
    }

    /// Fails unless unsealed, for a use case that needs no key itself (its
    /// data is not sealed, or a later step takes the keys).
    pub(crate) fn require_unsealed(&self) -> Result<()> {
        self.unsealed().map(drop)
    }

    /// The audit HMAC key while unsealed; `None` while sealed or not
    /// initialized (the audit log then links records without a key, and the
    /// first keyed record after unsealing covers them).
    pub fn audit_key(&self) -> Option<AuditKey> {
        self.unsealed().ok().map(|k| k.audit.clone())
    }

    /// Whether coffer is unsealed (cheap; for routing decisions).
    pub fn is_unsealed(&self) -> bool {
        matches!(
            &*self.state.read().unwrap_or_else(|p| p.into_inner()),
            State::Unsealed { .. }
        )
    }
}

fn keyring_status(k: &Keyring) -> KeyringStatus {
    KeyringStatus {
        active_key: k.active_id(),
        keys: k.key_ids(),
    }
}

#[cfg(test)]
mod storage_probe_tests {
    use super::{Probe, StorageProbe};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Many concurrent callers: at most one probe in flight, and one probe
    /// answers them all while it is fresh.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_callers_share_one_probe() {
        let probe = Arc::new(StorageProbe::default());
        let (in_flight, max, total) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (probe, in_flight, max, total) =
                (probe.clone(), in_flight.clone(), max.clone(), total.clone());
            tasks.push(tokio::spawn(async move {
                probe
                    .available(|| {
                        let (in_flight, max, total) =
                            (in_flight.clone(), max.clone(), total.clone());
                        async move {
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            max.fetch_max(now, Ordering::SeqCst);
                            total.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            Probe::Answered
                        }
                    })
                    .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(max.load(Ordering::SeqCst), 1, "probes in flight at once");
        assert_eq!(
            total.load(Ordering::SeqCst),
            1,
            "one probe answers them all"
        );
    }

    /// One failure is retried; two in a row, or a timeout, report the store
    /// unavailable; an answer reports it available again.
    #[tokio::test]
    async fn unavailable_after_two_failures_or_a_timeout() {
        let run = |results: Vec<Probe>| async move {
            let probe = StorageProbe::default();
            let results = std::sync::Mutex::new(results.into_iter());
            let calls = AtomicUsize::new(0);
            let got = probe
                .available(|| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let r = results
                        .lock()
                        .unwrap()
                        .next()
                        .expect("no more probes expected");
                    async move { r }
                })
                .await;
            (got, calls.load(Ordering::SeqCst))
        };
        assert_eq!(run(vec![Probe::Answered]).await, (true, 1));
        assert_eq!(run(vec![Probe::Failed, Probe::Answered]).await, (true, 2));
        assert_eq!(run(vec![Probe::Failed, Probe::Failed]).await, (false, 2));
        assert_eq!(run(vec![Probe::Failed, Probe::TimedOut]).await, (false, 2));
        assert_eq!(run(vec![Probe::TimedOut]).await, (false, 1));
        // A fresh result is reused; a stale one is probed again.
        let probe = StorageProbe::default();
        assert!(!probe.available(|| async { Probe::TimedOut }).await);
        let calls = AtomicUsize::new(0);
        let counted = || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Probe::Answered }
        };
        assert!(!probe.available(counted).await, "the fresh result");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "probed while fresh");
        *probe.last.lock().unwrap() = (
            Some(std::time::Instant::now() - super::STORAGE_PROBE_FRESH),
            false,
        );
        assert!(probe.available(|| async { Probe::Answered }).await);
    }
}
