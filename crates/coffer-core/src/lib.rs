//! Coffer's use cases: seal state, secrets and their versions, tokens and the
//! authorization check.
//!
//! [`Coffer`] is the whole application behind the transport: the HTTP server
//! (and tests) call its methods with an [`Identity`] obtained from
//! [`Coffer::authenticate`]. It owns the key hierarchy while unsealed, seals and
//! opens values with it, and talks to storage only in ciphertext.
//!
//! Key hierarchy: the *unseal key* (split into Shamir shares at `init`) wraps
//! the *root key*, which wraps the *keyring*, whose newest key seals new secret
//! versions. Only wrapped forms are ever stored.

#![forbid(unsafe_code)]

mod access;
pub mod actor;
pub mod audit;
pub mod auth;
pub mod backup;
mod cache;
mod cluster;
pub mod duration;
mod error;
mod hygiene;
pub mod lifecycle;
pub mod path;
pub mod pgroles;
pub mod rotation;
pub mod strength;
pub mod text;
pub mod username;
mod users;
pub mod value;
mod versions;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use coffer_crypto::generate::Spec;
use coffer_crypto::keyring::{AuditKey, Keyring, RootKey, UnsealKey};
use coffer_crypto::shamir::{self, Share};
use coffer_crypto::{Key256, SecretString, token};
use coffer_store::{
    ListPage, ListQuery, Mutation, SecretMeta, Storage, TokenRecord, VersionRecord, VersionState,
    VersionStateChange,
};
use serde::{Deserialize, Serialize};

pub use access::{BreakglassRequest, PolicyInfo, ProtectedInfo, TokenRequest, TokenView};
pub use actor::Actor;
pub use auth::{
    AccessModel, Authorized, BreakglassGrant, Identity, Listing, Operation, ROOT_POLICY, Reveals,
};
use cache::{Cached, SecretCache};
pub use error::{CoreError, Result};
pub use lifecycle::{At, Label, Labels, RuleInfo, RuleSpec, SecretState};
pub use path::{ListPrefix, PathError, SecretPath};
pub use rotation::{RotateReceipt, RotateRequest, Standing, StatusEntry, TickReport};
pub use users::{
    InviteRequest, LOGIN_PACE_MS, LoginRequest, MAX_FAILED_LOGINS, SweepReport, TotpEnrollment,
    UserView,
};
pub use value::SecretValue;
pub use versions::{PlanAction, PlanEntry};

const SEAL_CONFIG: &str = "seal-config";
const WRAPPED_ROOT_KEY: &str = "root-key";
const WRAPPED_KEYRING: &str = "keyring";

/// Tunables of the core.
#[derive(Debug, Clone)]
pub struct CoreOptions {
    /// Largest plaintext value accepted, in bytes.
    pub max_value_bytes: usize,
    /// Most secrets whose metadata and current ciphertext are kept in memory.
    pub cache_capacity: usize,
    /// Encryptions under one keyring key before a new key is added
    /// automatically (AES-GCM with random 96-bit nonces must stay well
    /// below 2^32 per key).
    pub key_max_encryptions: u64,
}

impl Default for CoreOptions {
    fn default() -> Self {
        CoreOptions {
            max_value_bytes: 64 * 1024,
            cache_capacity: 200_000,
            key_max_encryptions: hygiene::DEFAULT_MAX_ENCRYPTIONS,
        }
    }
}

/// Stored, non-secret seal configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SealConfig {
    format: u32,
    shares: u8,
    threshold: u8,
    initialized_at: i64,
}

/// A cached token record, with the audit log's HMAC of the token that
/// hashes to it: every request the token authenticates records that tag,
/// and computing it once per cached token rather than once per request
/// saves a keyed hash on the hot path. Both come from the keyring, so the
/// entry lives exactly as long as the token's hash does (a seal clears the
/// cache).
#[derive(Clone)]
struct CachedToken {
    record: Arc<TokenRecord>,
    audit_tag: [u8; 32],
}

struct Keys {
    root: Arc<RootKey>,
    keyring: Keyring,
    /// The keyring's audit key, shared with the audit writer.
    audit: AuditKey,
}

/// An unseal key share waiting for enough others, with the source it came
/// from (`None`: this process, or a caller that did not say).
struct Pending {
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

enum State {
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

/// A secret value read back.
pub struct SecretRead {
    /// Canonical path.
    pub path: String,
    /// Version that was read.
    pub version: u64,
    /// The value.
    pub value: SecretValue,
    /// Unix milliseconds the version was written.
    pub created_at: i64,
    /// Who wrote it: name, kind and token accessor.
    pub created_by: Actor,
    /// The label it was asked for by, when not `current`.
    pub label: Option<Label>,
}

/// The outcome of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReceipt {
    /// Canonical path.
    pub path: String,
    /// The version created.
    pub version: u64,
    /// Unix milliseconds of the write.
    pub created_at: i64,
    /// Warnings about the value (a weak value where no rule forbids it).
    pub warnings: Vec<String>,
}

/// What a planned version commits and caches.
pub(crate) struct PlannedVersion {
    pub mutations: Vec<Mutation>,
    pub entry: Cached,
    pub receipt: WriteReceipt,
}

/// What a new version becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Becomes {
    /// `current`; the old current becomes `previous`, served until `grace_until`.
    Current {
        /// When `previous` stops being served; `None`: until the next change.
        grace_until: Option<i64>,
    },
    /// `pending`; `current` stays.
    Pending,
}

/// One version in a secret's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// Version number.
    pub version: u64,
    /// Unix milliseconds of the write.
    pub created_at: i64,
    /// Who wrote it: name, kind and token accessor.
    pub created_by: Actor,
    /// Active, deleted or destroyed.
    pub state: VersionState,
    /// Keyring key that sealed it.
    pub key_id: u32,
}

/// A secret's metadata and history (never values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMetadata {
    /// Path, current version, liveness, times.
    pub meta: SecretMeta,
    /// Every version, oldest first.
    pub versions: Vec<VersionInfo>,
    /// Labels and expiry.
    pub labels: Labels,
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

/// Options of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Every path below the prefix rather than its direct children.
    pub recursive: bool,
    /// Also secrets whose current version is deleted or destroyed.
    pub include_deleted: bool,
    /// Resume after this entry.
    pub after: Option<String>,
    /// Page size; 0 means the default.
    pub limit: usize,
}

/// Default and largest listing page.
pub const DEFAULT_LIST_LIMIT: usize = 1000;
/// Largest listing page.
pub const MAX_LIST_LIMIT: usize = 10_000;

/// Most secrets (and most prefixes and paths asked for) in one
/// [`Coffer::read_many`].
pub const MAX_BUNDLE: usize = 1000;

/// Current time in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The application.
pub struct Coffer {
    store: Arc<dyn Storage>,
    options: CoreOptions,
    state: RwLock<State>,
    /// Serialises init, unseal, seal and key rotation.
    admin: tokio::sync::Mutex<()>,
    /// Taken by unseal attempts from other machines before `admin` (for at
    /// most [`REMOTE_UNSEAL_WAIT`]), so that at most one of them is queued
    /// on `admin` at a time: however many arrive, an operator on the server
    /// waits behind one remote attempt at most.
    remote_unseal: tokio::sync::Mutex<()>,
    /// Test hook: extra time each unseal combination search takes (ms).
    unseal_search_delay_ms: std::sync::atomic::AtomicU64,
    /// Serialises writers of the same path (striped by the cache's hash).
    write_locks: Box<[tokio::sync::Mutex<()>]>,
    cache: SecretCache,
    /// Token records by hash, each with the token's audit tag (see
    /// [`CachedToken`]).
    tokens: RwLock<HashMap<[u8; 32], CachedToken>>,
    /// Policies, protected prefixes and break-glass grants, loaded at unseal
    /// and replaced whenever one of them changes.
    access: RwLock<Arc<AccessModel>>,
    /// Serialises changes to the access model on this node.
    access_writes: tokio::sync::Mutex<()>,
    /// Bounds concurrent Argon2 runs (memory-hard: 19 MiB each).
    login_slots: tokio::sync::Semaphore,
    /// Encryptions counted against the active keyring key.
    usage: tokio::sync::Mutex<hygiene::Usage>,
    /// Applies other nodes' changes one batch at a time.
    sync_lock: tokio::sync::Mutex<()>,
    /// Set when applying other nodes' changes failed: the next sync forgets
    /// everything.
    resync: std::sync::atomic::AtomicBool,
}

const TOKEN_CACHE_CAPACITY: usize = 100_000;

impl Coffer {
    /// Opens coffer on a store. It comes up sealed (or uninitialized).
    pub async fn open(store: Arc<dyn Storage>, options: CoreOptions) -> Result<Coffer> {
        let state = match store.get_system(SEAL_CONFIG).await? {
            None => State::Uninitialized,
            Some(bytes) => State::Sealed {
                config: serde_json::from_slice(&bytes)
                    .map_err(|_| CoreError::Corrupt("seal configuration is unreadable".into()))?,
                progress: Vec::new(),
            },
        };
        let cache = SecretCache::new(options.cache_capacity);
        Ok(Coffer {
            store,
            options,
            state: RwLock::new(state),
            admin: tokio::sync::Mutex::new(()),
            remote_unseal: tokio::sync::Mutex::new(()),
            unseal_search_delay_ms: std::sync::atomic::AtomicU64::new(0),
            write_locks: (0..256).map(|_| tokio::sync::Mutex::new(())).collect(),
            cache,
            tokens: RwLock::new(HashMap::new()),
            access: RwLock::new(Arc::new(AccessModel::default())),
            access_writes: tokio::sync::Mutex::new(()),
            login_slots: tokio::sync::Semaphore::new(4),
            usage: tokio::sync::Mutex::new(hygiene::Usage::default()),
            sync_lock: tokio::sync::Mutex::new(()),
            resync: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The storage backend.
    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// The options coffer runs with.
    pub fn options(&self) -> &CoreOptions {
        &self.options
    }

    // ---- seal state ----------------------------------------------------------

    /// Current seal status. Never fails and needs no token.
    pub fn status(&self) -> SealStatus {
        self.status_locked(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Initialises a new coffer: creates the key hierarchy and the root token,
    /// and splits the unseal key into `shares` shares, any `threshold` of which
    /// unseal. The result is shown once and never stored. Coffer stays sealed.
    pub async fn init(&self, shares: u8, threshold: u8) -> Result<InitOutput> {
        if shares == 0 || threshold == 0 || threshold > shares {
            return Err(CoreError::Invalid(
                "shares and threshold must satisfy 1 <= threshold <= shares <= 255".into(),
            ));
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
            .map_err(|e| CoreError::Invalid(e.to_string()))?;
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
        let share = Share::decode(encoded_share).map_err(|_| {
            CoreError::InvalidUnsealKey("that is not a well-formed unseal key".into())
        })?;
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
                        return Err(CoreError::InvalidUnsealKey(
                            "this unseal key was already provided".into(),
                        ));
                    }
                    if mine.count() >= t {
                        return Err(CoreError::InvalidUnsealKey(format!(
                            "this address already has {t} unseal key(s) pending; reset them (unseal --reset) to start again"
                        )));
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
                        return Err(CoreError::InvalidUnsealKey(
                            "too many unseal keys are pending; their senders must reset them (unseal --reset), or unseal from this machine".into(),
                        ));
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
        let wrong = || {
            CoreError::InvalidUnsealKey(
                "the unseal keys provided so far do not unseal this coffer; they are kept, so \
                 the right further key can still complete it (reset withdraws this address's keys)"
                    .into(),
            )
        };
        let Some((last, earlier)) = shares.split_last() else {
            return Err(wrong());
        };
        let wrapped_root = self
            .store
            .get_system(WRAPPED_ROOT_KEY)
            .await?
            .ok_or_else(|| CoreError::Corrupt("the wrapped root key is missing".into()))?;
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
            .ok_or_else(|| CoreError::Corrupt("the wrapped keyring is missing".into()))?;
        // The root key opened, so a keyring that does not is tampered or corrupt.
        let keyring = Keyring::unwrap(&root, &wrapped_keyring).map_err(|_| {
            CoreError::Corrupt("the stored keyring failed its integrity check".into())
        })?;
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
            .map_err(|_| {
                CoreError::RateLimited(
                    "another unseal attempt is in progress; try again shortly, or unseal from the server machine".into(),
                )
            })
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
        let keys = self.keys()?;
        let wrapped = self
            .store
            .get_system(WRAPPED_KEYRING)
            .await?
            .ok_or_else(|| CoreError::Corrupt("the wrapped keyring is missing".into()))?;
        let mut keyring = Keyring::unwrap(&keys.root, &wrapped).map_err(|_| {
            CoreError::Corrupt("the stored keyring failed its integrity check".into())
        })?;
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
        Ok(keyring_status(&self.keys()?.keyring))
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

    fn keys(&self) -> Result<Arc<Keys>> {
        match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            State::Unsealed { keys, .. } => Ok(keys.clone()),
            State::Sealed { .. } => Err(CoreError::Sealed),
            State::Uninitialized => Err(CoreError::NotInitialized),
        }
    }

    /// The audit HMAC key while unsealed; `None` while sealed or not
    /// initialized (the audit log then links records without a key, and the
    /// first keyed record after unsealing covers them).
    pub fn audit_key(&self) -> Option<AuditKey> {
        self.keys().ok().map(|k| k.audit.clone())
    }

    /// Whether coffer is unsealed (cheap; for routing decisions).
    pub fn is_unsealed(&self) -> bool {
        matches!(
            &*self.state.read().unwrap_or_else(|p| p.into_inner()),
            State::Unsealed { .. }
        )
    }

    // ---- tokens --------------------------------------------------------------

    /// Resolves a raw token to an identity. `source` is the address the
    /// request came from (checked against a network-bound token's CIDRs; a
    /// bound token is refused when the source is unknown). Every failure
    /// (malformed, unknown, expired, revoked, used up, wrong network) is the
    /// same `Unauthenticated`, so responses do not tell an attacker which
    /// tokens exist.
    pub async fn authenticate(&self, raw: &str, source: Option<IpAddr>) -> Result<Identity> {
        self.keys()?;
        // Revocations, policy changes and new versions from other nodes
        // take effect before this request is decided.
        self.sync().await?;
        let keys = self.keys()?;
        if !token::is_well_formed(raw) {
            return Err(CoreError::Unauthenticated);
        }
        let hash = keys.keyring.token_hash(raw);
        let cached = self
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            .cloned();
        let CachedToken { record, audit_tag } = match cached {
            Some(c) => c,
            None => {
                let c = CachedToken {
                    record: Arc::new(
                        self.store
                            .get_token(&hash)
                            .await?
                            .ok_or(CoreError::Unauthenticated)?,
                    ),
                    audit_tag: keys.audit.field(raw.as_bytes()),
                };
                // Use-limited tokens are counted in storage on every request,
                // so caching them would only show a stale count.
                if c.record.uses_limit.is_none() {
                    let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
                    if tokens.len() >= TOKEN_CACHE_CAPACITY {
                        tokens.clear();
                    }
                    tokens.insert(hash, c.clone());
                }
                c
            }
        };
        // The lookup found the record by hash; comparing the hashes again in
        // constant time makes the equality check itself leak nothing, whatever
        // the map or index did to find it.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&record.hash[..], &hash[..])) {
            return Err(CoreError::Unauthenticated);
        }
        if record.expires_at.is_some_and(|t| now_ms() >= t) {
            return Err(CoreError::Unauthenticated);
        }
        if !record.cidrs.is_empty() && !access::source_allowed(&record.cidrs, source) {
            return Err(CoreError::Unauthenticated);
        }
        if record.uses_limit.is_some() {
            match self
                .store
                .commit(vec![Mutation::ConsumeTokenUse {
                    accessor: record.accessor.clone(),
                }])
                .await
            {
                Ok(()) => {}
                Err(coffer_store::StoreError::Conflict(_)) => {
                    return Err(CoreError::Unauthenticated);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let identity = Identity { token: record };
        audit::note_authenticated(&identity, audit_tag);
        Ok(identity)
    }

    /// The single authorization check, against the current access model.
    /// Every use case calls it before touching data; break-glass reads are
    /// raised as alerts here.
    pub fn authorize<'a>(
        &self,
        identity: &Identity,
        operation: Operation,
        target: &'a str,
    ) -> Result<Authorized<'a>> {
        // A root service token is allowed everything and no protected prefix
        // applies to it, so the decision needs no model: skip the shared lock
        // on the hot path. The decision itself is still made by `authorize`.
        static NO_MODEL: std::sync::LazyLock<AccessModel> =
            std::sync::LazyLock::new(AccessModel::default);
        if identity.is_root() && !identity.is_human() {
            let decision = auth::authorize(&NO_MODEL, identity, operation, target, now_ms());
            audit::note_decision(operation, target, decision.is_ok(), false, false);
            return decision;
        }
        let model = self
            .access
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let decision = auth::authorize(&model, identity, operation, target, now_ms());
        let protected = operation == Operation::ReadValue && model.is_protected(target);
        audit::note_decision(
            operation,
            target,
            decision.is_ok(),
            decision.as_ref().is_ok_and(|a| a.via_breakglass()),
            protected,
        );
        let authorized = decision?;
        if authorized.via_breakglass() {
            tracing::warn!(
                target: "coffer::alert",
                alert = "breakglass_read",
                user = identity.user().unwrap_or_default(),
                accessor = identity.accessor(),
                path = target,
                "break-glass read of a protected secret"
            );
        }
        Ok(authorized)
    }

    /// Whether a client may keep an offline copy of values `identity` was
    /// served at `paths`: not when a person read anything under a protected
    /// prefix. Only a live break-glass grant lets a person read there, and a
    /// copy on their disk would outlive the grant. Service tokens are not
    /// limited by protected prefixes, so their copies are allowed.
    pub fn offline_copy_allowed<'a>(
        &self,
        identity: &Identity,
        mut paths: impl Iterator<Item = &'a str>,
    ) -> bool {
        if !identity.is_human() {
            return true;
        }
        let model = self.access_model();
        !paths.any(|p| model.is_protected(p))
    }

    /// The current access model (policies, protected prefixes, grants).
    pub fn access_model(&self) -> Arc<AccessModel> {
        self.access
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    // ---- secrets -------------------------------------------------------------

    /// Reads a secret: the current version, or `version`.
    pub async fn read(
        &self,
        identity: &Identity,
        path: &str,
        version: Option<u64>,
    ) -> Result<SecretRead> {
        self.read_at(identity, path, At::version(version)).await
    }

    /// Reads a secret at a label or a version. An expired secret is refused
    /// whatever is asked for; `previous` is refused after its grace period.
    pub async fn read_at(&self, identity: &Identity, path: &str, at: At) -> Result<SecretRead> {
        let path = SecretPath::parse(path)?;
        let keys = self.keys()?;
        let auth = self.authorize(identity, Operation::ReadValue, path.as_str())?;
        let cached = self
            .cached(path.as_str())
            .await?
            .ok_or_else(|| not_found(&path))?;
        let labels = cached.labels();
        let now = now_ms();
        if let Some(expired) = labels.expires_at
            && now >= expired
        {
            return Err(CoreError::Expired(format!(
                "{path} expired at {}; set a new value and a new expiry (`coffer expire`) to use it again",
                duration::format_time_ms(expired)
            )));
        }
        let version = match at {
            At::Version(v) => v,
            At::Label(label) => {
                let v = labels.resolve(label, path.as_str(), now)?;
                if label == Label::Current && !cached.meta.live && v == cached.meta.current_version
                {
                    return Err(CoreError::NotFound(format!(
                        "{path} is deleted (version {v} was deleted or destroyed)"
                    )));
                }
                v
            }
        };
        let record = match &cached.current {
            Some(r) if r.version == version => std::borrow::Cow::Borrowed(r),
            _ => std::borrow::Cow::Owned(
                self.store
                    .get_version(path.as_str(), version)
                    .await?
                    .ok_or_else(|| {
                        CoreError::NotFound(format!("{path} has no version {version}"))
                    })?,
            ),
        };
        match record.state {
            VersionState::Active => {}
            VersionState::Deleted(_) => {
                return Err(CoreError::NotFound(format!(
                    "version {} of {path} is deleted; `coffer undelete` restores it",
                    record.version
                )));
            }
            VersionState::Destroyed(_) => {
                return Err(CoreError::NotFound(format!(
                    "version {} of {path} was destroyed",
                    record.version
                )));
            }
        }
        audit::note_version(record.version);
        let value = open_value(&keys, &auth, &record)?;
        Ok(SecretRead {
            path: path.as_str().to_string(),
            version: record.version,
            value,
            created_at: record.created_at,
            created_by: Actor::parse(&record.created_by),
            label: match at {
                At::Label(Label::Current) | At::Version(_) => None,
                At::Label(l) => Some(l),
            },
        })
    }

    /// Reads many secrets in one call: every live secret directly under each
    /// of `prefixes`, and each of `paths` (at a version, if given). All or
    /// nothing: a listing or a read that is refused fails the whole call
    /// (naming every refused path), as does an explicitly named secret that
    /// does not exist. Each read is authorized on its own, and the request's
    /// audit record lists every path and version served.
    pub async fn read_many(
        &self,
        identity: &Identity,
        prefixes: &[String],
        paths: &[(String, At)],
    ) -> Result<Vec<SecretRead>> {
        if prefixes.len() + paths.len() > MAX_BUNDLE {
            return Err(CoreError::Invalid(format!(
                "at most {MAX_BUNDLE} prefixes and paths in one request"
            )));
        }
        self.keys()?;
        let mut wanted: Vec<(String, At, bool)> = Vec::new();
        for prefix in prefixes {
            let prefix = ListPrefix::parse(prefix)?;
            // Page through the listing: folders are listed too, and only
            // secrets count towards the limit. Entries the caller may not
            // see are left out, as from a listing.
            let mut after = None;
            let mut secrets = 0;
            loop {
                let page = self
                    .enumerate(
                        identity,
                        &prefix,
                        Reveals::Names,
                        ListOptions {
                            after: after.take(),
                            limit: MAX_BUNDLE,
                            ..ListOptions::default()
                        },
                    )
                    .await?;
                for e in page.entries.into_iter().filter(|e| !e.folder) {
                    secrets += 1;
                    if secrets > MAX_BUNDLE {
                        return Err(CoreError::Invalid(format!(
                            "more than {MAX_BUNDLE} secrets under {}; name a narrower prefix",
                            prefix.as_str()
                        )));
                    }
                    wanted.push((
                        format!("{}{}", prefix.as_str(), e.name),
                        At::Label(Label::Current),
                        false,
                    ));
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        for (path, version) in paths {
            let path = SecretPath::parse(path)?;
            wanted.push((path.as_str().to_string(), *version, true));
        }
        let mut seen = std::collections::HashSet::new();
        wanted.retain(|(p, v, _)| seen.insert((p.clone(), *v)));
        if wanted.len() > MAX_BUNDLE {
            return Err(CoreError::Invalid(format!(
                "more than {MAX_BUNDLE} secrets in one request"
            )));
        }
        let mut out = Vec::with_capacity(wanted.len());
        let mut refused = Vec::new();
        let mut last_refusal = None;
        for (path, at, named) in wanted {
            match self.read_at(identity, &path, at).await {
                Ok(read) => {
                    audit::note_read(&read.path, read.version);
                    out.push(read);
                }
                Err(CoreError::Forbidden(m)) => {
                    refused.push(path);
                    last_refusal = Some(m);
                }
                // A listed secret deleted meanwhile is simply not there.
                Err(CoreError::NotFound(_)) if !named => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(m) = last_refusal {
            // The refusal is the request's decision in the audit record, and
            // nothing was served.
            audit::refuse_reads(refused.last().map_or("", String::as_str));
            return Err(CoreError::Forbidden(if refused.len() == 1 {
                m
            } else {
                format!("read refused on {}", refused.join(", "))
            }));
        }
        Ok(out)
    }

    /// Writes a new version. With `cas`, the write only happens if the current
    /// version is exactly `cas` (0: the secret must not exist yet). A value
    /// weaker than a lifecycle rule requires is refused; a weak value where
    /// no rule applies is written with a warning in the receipt.
    pub async fn write(
        &self,
        identity: &Identity,
        path: &str,
        value: &SecretValue,
        cas: Option<u64>,
    ) -> Result<WriteReceipt> {
        self.write_value(identity, path, value, cas, None).await
    }

    /// Writes a value generated on the server from `spec` (never sent back).
    pub async fn write_generated(
        &self,
        identity: &Identity,
        path: &str,
        spec: &Spec,
        cas: Option<u64>,
    ) -> Result<WriteReceipt> {
        let value = SecretValue::Text(spec.generate());
        self.write_value(identity, path, &value, cas, Some(spec))
            .await
    }

    async fn write_value(
        &self,
        identity: &Identity,
        path: &str,
        value: &SecretValue,
        cas: Option<u64>,
        generated: Option<&Spec>,
    ) -> Result<WriteReceipt> {
        let path = SecretPath::parse(path)?;
        let plaintext = self.encode_checked(value)?;
        self.keys()?;
        // Someone who can neither create nor update here learns nothing about
        // whether the secret exists: refuse before looking.
        if self
            .authorize(identity, Operation::Create, path.as_str())
            .is_err()
        {
            self.authorize(identity, Operation::Update, path.as_str())?;
        }
        let warnings = self.judge(path.as_str(), value, generated)?;
        self.reserve_seals(1).await?;
        // After the reservation, which may have added a key.
        let keys = self.keys()?;
        let _lock = self.write_locks[self.cache.stripe(path.as_str())]
            .lock()
            .await;
        // A conflict without `cas` means another node wrote in between: reload
        // and retry a few times. With `cas`, the caller asked to be told.
        for attempt in 0..4 {
            if attempt > 0 {
                // Each attempt seals anew.
                self.reserve_seals(1).await?;
            }
            let existing = self.cached(path.as_str()).await?;
            let current = existing.as_ref().map_or(0, |c| c.meta.current_version);
            let op = if current == 0 {
                Operation::Create
            } else {
                Operation::Update
            };
            self.authorize(identity, op, path.as_str())?;
            if let Some(expected) = cas
                && expected != current
            {
                return Err(CoreError::Conflict(format!(
                    "check-and-set failed: {path} is at version {current}, not {expected}"
                )));
            }
            let now = now_ms();
            let grace_until = self.grace_until(path.as_str(), None, now);
            let planned = self.plan_version(
                &keys,
                path.as_str(),
                &plaintext,
                &Actor::stored_for(identity),
                existing.as_deref(),
                Becomes::Current { grace_until },
                generated,
                now,
            )?;
            match self.store.commit(planned.mutations).await {
                Ok(()) => {
                    self.cache.put(path.as_str(), Arc::new(planned.entry));
                    audit::note_version(planned.receipt.version);
                    return Ok(WriteReceipt {
                        warnings,
                        ..planned.receipt
                    });
                }
                Err(coffer_store::StoreError::Conflict(m)) => {
                    self.cache.invalidate(path.as_str());
                    if cas.is_some() || attempt == 3 {
                        return Err(CoreError::Conflict(format!("write conflict: {m}")));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Validates a value and encodes it, refusing one over the size limit.
    fn encode_checked(&self, value: &SecretValue) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        value.validate()?;
        let plaintext = value.encode();
        // The tag byte is framing, not part of the user's value.
        let size = plaintext.len() - 1;
        if size > self.options.max_value_bytes {
            return Err(CoreError::TooLarge {
                size,
                limit: self.options.max_value_bytes,
            });
        }
        Ok(plaintext)
    }

    /// Plans the next version of `path` (whose cached state is `existing`;
    /// the caller holds the path's write lock): the sealed version, the
    /// state record when labels need one, and the cache entry after commit.
    /// A new current version while a rotation is staged is a conflict.
    #[allow(clippy::too_many_arguments)] // one call per kind of write; a struct would only rename them
    pub(crate) fn plan_version(
        &self,
        keys: &Keys,
        path: &str,
        plaintext: &[u8],
        created_by: &str,
        existing: Option<&Cached>,
        becomes: Becomes,
        generated: Option<&Spec>,
        now: i64,
    ) -> Result<PlannedVersion> {
        let head = existing.map_or(0, |c| c.meta.current_version);
        let version = head + 1;
        let (key_id, ciphertext) = keys.keyring.seal_value(path, version, plaintext);
        let record = VersionRecord {
            path: path.to_string(),
            version,
            created_at: now,
            created_by: created_by.to_string(),
            state: VersionState::Active,
            key_id,
            ciphertext,
        };
        let old_state = existing.and_then(|c| c.state.as_ref());
        let labels = existing.map(|c| c.labels());
        if let Some(pending) = labels.and_then(|l| l.pending) {
            return Err(CoreError::Conflict(format!(
                "{path} has a staged rotation (pending version {pending}): promote it with \
                 `coffer promote {path}` or cancel it with `coffer rotate {path} --cancel` first"
            )));
        }
        if let (Becomes::Current { .. }, Some((_, state))) = (becomes, old_state)
            && state.postgres.is_some()
        {
            return Err(CoreError::Invalid(format!(
                "{path} holds the credentials of PostgreSQL roles that coffer manages: its \
                 versions come only from rotations (`coffer rotate {path}`), which change the \
                 roles too"
            )));
        }
        let old_current = labels.map_or(0, |l| l.current);
        let generator = generated
            .map(Spec::to_string)
            .or_else(|| old_state.and_then(|(_, s)| s.generator.clone()));
        let new_state = match becomes {
            Becomes::Current { grace_until } => (old_state.is_some()
                || grace_until.is_some()
                || generator.is_some())
            .then(|| SecretState {
                current: None,
                previous: (old_current > 0).then_some(old_current),
                previous_until: grace_until,
                pending: None,
                expires_at: old_state.and_then(|(_, s)| s.expires_at),
                generator,
                postgres: None,
            }),
            Becomes::Pending => {
                if head == 0 {
                    return Err(CoreError::Invalid(format!(
                        "{path} has no current version to rotate from"
                    )));
                }
                let old = old_state.map(|(_, s)| s.clone()).unwrap_or(SecretState {
                    previous: labels.and_then(|l| l.previous),
                    ..SecretState::default()
                });
                Some(SecretState {
                    current: Some(old_current),
                    pending: Some(version),
                    generator,
                    ..old
                })
            }
        };
        let mut mutations = vec![Mutation::PutVersion {
            record: record.clone(),
            expected_current: head,
        }];
        let state = match new_state {
            Some(state) => {
                let (expect, revision) = match old_state {
                    Some((rev, _)) => (coffer_store::Expect::Revision(*rev), rev + 1),
                    None => (coffer_store::Expect::Absent, 1),
                };
                mutations.push(Mutation::PutObject {
                    kind: lifecycle::KIND_STATE.into(),
                    key: path.to_string(),
                    value: serde_json::to_vec(&state).expect("state serialises"),
                    expect,
                });
                Some((revision, state))
            }
            None => None,
        };
        let current = match becomes {
            Becomes::Current { .. } => Some(record),
            Becomes::Pending => existing.and_then(|c| c.current.clone()),
        };
        Ok(PlannedVersion {
            mutations,
            entry: Cached {
                meta: SecretMeta {
                    path: path.to_string(),
                    current_version: version,
                    live: true,
                    created_at: existing.map_or(now, |c| c.meta.created_at),
                    updated_at: now,
                },
                state,
                current,
            },
            receipt: WriteReceipt {
                path: path.to_string(),
                version,
                created_at: now,
                warnings: Vec::new(),
            },
        })
    }

    /// When `previous` stops being served after a change at `now`: the
    /// explicit grace, else the rules' grace, else never (for plain writes)
    /// or after [`lifecycle::DEFAULT_GRACE_MS`] (for rotations, which pass
    /// it as `explicit`).
    pub(crate) fn grace_until(&self, path: &str, explicit: Option<i64>, now: i64) -> Option<i64> {
        let rules = self.access_model();
        explicit
            .or_else(|| lifecycle::effective(&rules.lifecycle, path).grace_ms)
            .map(|g| now.saturating_add(g))
    }

    /// Judges a value against the strength rules for `path`: an error that
    /// says why when a rule requires more, otherwise warnings for weak
    /// values. A generated value counts for its spec's exact entropy.
    pub(crate) fn judge(
        &self,
        path: &str,
        value: &SecretValue,
        generated: Option<&Spec>,
    ) -> Result<Vec<String>> {
        let model = self.access_model();
        let required = lifecycle::effective(&model.lifecycle, path).min_bits;
        let mut warnings = Vec::new();
        let parts: Vec<(Option<&str>, strength::Estimate)> = match generated {
            Some(spec) => vec![(
                None,
                strength::Estimate {
                    bits: spec.bits(),
                    reasons: Vec::new(),
                },
            )],
            None => strength::judged_parts(value)
                .into_iter()
                // Without a rule only a warning is at stake: values that
                // are plainly machine-made skip the costly estimator.
                .filter(|(_, v)| required.is_some() || !strength::clearly_not_weak(v))
                .map(|(name, v)| (name, strength::estimate(v)))
                .collect(),
        };
        for (field, estimate) in parts {
            let what = match field {
                // A field name is not secret, but one shaped like a token is
                // not repeated in a warning, an error or its audit record.
                Some(f) if coffer_policy::contains_credential(f) => {
                    format!("a field (name not shown) of {path}")
                }
                Some(f) => format!("field {f:?} of {path}"),
                None => path.to_string(),
            };
            let why = if estimate.reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", estimate.reasons.join("; "))
            };
            if let Some((min, pattern)) = &required
                && estimate.bits < f64::from(*min)
            {
                return Err(CoreError::Invalid(format!(
                    "the value of {what} is too weak: about {:.0} bits where the lifecycle rule \
                     {pattern} requires {min}{why}; generate one with `coffer set {path} --generate`",
                    estimate.bits
                )));
            }
            if estimate.bits < strength::WEAK_BITS {
                warnings.push(format!(
                    "the value of {what} is weak (about {:.0} bits){why}",
                    estimate.bits
                ));
            }
        }
        Ok(warnings)
    }

    /// Writes many secrets at once, all or nothing (`coffer import`): every
    /// write is authorized and its check-and-set verified first, then all
    /// versions are committed in one transaction. A refusal names every
    /// refused path; a failed check-and-set names every path that changed.
    /// The request's audit record lists every path and version written.
    pub async fn write_many(
        &self,
        identity: &Identity,
        writes: &[(String, SecretValue, Option<u64>)],
    ) -> Result<Vec<WriteReceipt>> {
        if writes.is_empty() {
            return Err(CoreError::Invalid("nothing to write".into()));
        }
        if writes.len() > MAX_BUNDLE {
            return Err(CoreError::Invalid(format!(
                "at most {MAX_BUNDLE} secrets in one request"
            )));
        }
        let keys = self.keys()?;
        let mut planned = Vec::with_capacity(writes.len());
        let mut seen = std::collections::HashSet::new();
        for (path, value, cas) in writes {
            let path = SecretPath::parse(path)?;
            if !seen.insert(path.as_str().to_string()) {
                return Err(CoreError::Invalid(format!("{path} appears more than once")));
            }
            let plaintext = self.encode_checked(value)?;
            planned.push((path, plaintext, *cas));
        }
        // As for one write: a refusal says nothing about existence.
        let mut refused = Vec::new();
        for (path, _, _) in &planned {
            if self
                .authorize(identity, Operation::Create, path.as_str())
                .is_err()
                && self
                    .authorize(identity, Operation::Update, path.as_str())
                    .is_err()
            {
                refused.push(path.as_str().to_string());
            }
        }
        if !refused.is_empty() {
            audit::refuse(Operation::Update, &refused[0]);
            return Err(CoreError::Forbidden(format!(
                "write refused on {}",
                refused.join(", ")
            )));
        }
        let mut warnings = Vec::with_capacity(planned.len());
        let mut weak = Vec::new();
        for ((path, _, _), (_, value, _)) in planned.iter().zip(writes) {
            match self.judge(path.as_str(), value, None) {
                Ok(w) => warnings.push(w),
                Err(CoreError::Invalid(m)) => {
                    weak.push(m);
                    warnings.push(Vec::new());
                }
                Err(e) => return Err(e),
            }
        }
        if !weak.is_empty() {
            return Err(CoreError::Invalid(format!(
                "nothing written: {}",
                weak.join("; ")
            )));
        }
        self.reserve_seals(planned.len() as u64).await?;
        // Lock every stripe involved, in order, so that two batches cannot
        // deadlock and no single write slips in between check and commit.
        let mut stripes: Vec<usize> = planned
            .iter()
            .map(|(p, _, _)| self.cache.stripe(p.as_str()))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut _locks = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            _locks.push(self.write_locks[stripe].lock().await);
        }
        let now = now_ms();
        let mut mutations = Vec::with_capacity(planned.len());
        let mut entries = Vec::with_capacity(planned.len());
        let mut changed = Vec::new();
        for ((path, plaintext, cas), warnings) in planned.iter().zip(warnings) {
            let existing = self.cached(path.as_str()).await?;
            let current = existing.as_ref().map_or(0, |c| c.meta.current_version);
            let op = if current == 0 {
                Operation::Create
            } else {
                Operation::Update
            };
            if self.authorize(identity, op, path.as_str()).is_err() {
                refused.push(path.as_str().to_string());
                continue;
            }
            if let Some(expected) = cas
                && *expected != current
            {
                changed.push(format!("{path} (at version {current}, not {expected})"));
                continue;
            }
            let grace_until = self.grace_until(path.as_str(), None, now);
            let plan = match self.plan_version(
                &keys,
                path.as_str(),
                plaintext,
                &Actor::stored_for(identity),
                existing.as_deref(),
                Becomes::Current { grace_until },
                None,
                now,
            ) {
                Ok(plan) => plan,
                Err(CoreError::Conflict(m)) => {
                    changed.push(m);
                    continue;
                }
                Err(e) => return Err(e),
            };
            mutations.extend(plan.mutations);
            entries.push((
                plan.entry,
                WriteReceipt {
                    warnings,
                    ..plan.receipt
                },
            ));
        }
        if !refused.is_empty() {
            audit::refuse(Operation::Update, &refused[0]);
            return Err(CoreError::Forbidden(format!(
                "write refused on {}",
                refused.join(", ")
            )));
        }
        if !changed.is_empty() {
            return Err(CoreError::Conflict(format!(
                "check-and-set failed, nothing written: {}",
                changed.join(", ")
            )));
        }
        if let Err(e) = self.store.commit(mutations).await {
            for (entry, _) in &entries {
                self.cache.invalidate(&entry.meta.path);
            }
            return Err(match e {
                coffer_store::StoreError::Conflict(m) => {
                    CoreError::Conflict(format!("write conflict, nothing written: {m}"))
                }
                e => e.into(),
            });
        }
        let mut receipts = Vec::with_capacity(entries.len());
        for (entry, receipt) in entries {
            audit::note_write(&receipt.path, receipt.version);
            self.cache.put(&receipt.path, Arc::new(entry));
            receipts.push(receipt);
        }
        Ok(receipts)
    }

    /// Lists paths under a prefix: only the entries the caller may see (see
    /// [`auth::Listing`]).
    pub async fn list(
        &self,
        identity: &Identity,
        prefix: &str,
        options: ListOptions,
    ) -> Result<ListPage> {
        let prefix = ListPrefix::parse(prefix)?;
        self.keys()?;
        let limit = match options.limit {
            0 => DEFAULT_LIST_LIMIT,
            n => n.min(MAX_LIST_LIMIT),
        };
        if let Some(after) = &options.after
            && (after.is_empty()
                || after.len() > path::MAX_PATH_LEN
                || after.chars().any(char::is_control))
        {
            return Err(CoreError::Invalid("invalid listing cursor".into()));
        }
        self.enumerate(
            identity,
            &prefix,
            Reveals::Names,
            ListOptions { limit, ..options },
        )
        .await
    }

    /// The one way the core enumerates secrets under a prefix for a caller:
    /// authorizes `list` on the prefix (the request's audited decision), then
    /// reads the store's listing page by page and keeps only the entries the
    /// [`auth::Listing`] witness admits, until `options.limit` entries are
    /// found. The cursor it returns is always the name of an entry it shows,
    /// never of one it left out, and it is returned only when another shown
    /// entry follows. Every use case that returns names or
    /// metadata for a prefix goes through here (a test checks that nothing
    /// else in the core calls the store's `list`).
    pub(crate) async fn enumerate(
        &self,
        identity: &Identity,
        prefix: &ListPrefix,
        reveals: Reveals,
        options: ListOptions,
    ) -> Result<ListPage> {
        let authorized = self.authorize(identity, Operation::List, prefix.as_str())?;
        let listing = Listing::new(
            &authorized,
            self.access_model(),
            identity,
            reveals,
            now_ms(),
        );
        let limit = options.limit.max(1);
        let mut entries = Vec::new();
        let mut after = options.after;
        loop {
            let page = self
                .store
                .list(&ListQuery {
                    prefix: listing.prefix().to_string(),
                    recursive: options.recursive,
                    include_deleted: options.include_deleted,
                    after: after.take(),
                    limit,
                })
                .await?;
            for entry in page.entries {
                if !listing.admits(&entry.name) {
                    continue;
                }
                if entry.folder
                    && listing.folder_may_hide(&entry.name)
                    && !self
                        .holds_undenied(&listing, &entry.name, options.include_deleted)
                        .await?
                {
                    continue;
                }
                entries.push(entry);
                // A page is full when one more shown entry exists: whether
                // anything follows is decided on entries the caller may
                // see, never on hidden ones (a cursor answered for hidden
                // entries alone would tell that they are there).
                if entries.len() > limit {
                    entries.pop();
                    let next = entries
                        .last()
                        .map(|e: &coffer_store::ListEntry| e.name.clone());
                    return Ok(ListPage { entries, next });
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => {
                    return Ok(ListPage {
                        entries,
                        next: None,
                    });
                }
            }
        }
    }

    /// Whether the folder entry `folder` of `listing` holds a secret that
    /// no `deny` of the caller's hides (see
    /// [`Listing::folder_may_hide`]). Stops at the first.
    async fn holds_undenied(
        &self,
        listing: &Listing<'_>,
        folder: &str,
        include_deleted: bool,
    ) -> Result<bool> {
        let mut after = None;
        loop {
            let page = self
                .store
                .list(&ListQuery {
                    prefix: format!("{}{folder}", listing.prefix()),
                    recursive: true,
                    include_deleted,
                    after: after.take(),
                    limit: MAX_LIST_LIMIT,
                })
                .await?;
            if page
                .entries
                .iter()
                .any(|e| !e.folder && listing.undenied_below(folder, &e.name))
            {
                return Ok(true);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(false),
            }
        }
    }

    /// A secret's metadata and version history (never values).
    pub async fn metadata(&self, identity: &Identity, path: &str) -> Result<SecretMetadata> {
        let path = SecretPath::parse(path)?;
        self.keys()?;
        self.authorize(identity, Operation::ReadMetadata, path.as_str())?;
        let cached = self
            .cached(path.as_str())
            .await?
            .ok_or_else(|| not_found(&path))?;
        let meta = cached.meta.clone();
        let labels = cached.labels();
        let versions = self
            .store
            .history(path.as_str())
            .await?
            .into_iter()
            .map(|r| VersionInfo {
                version: r.version,
                created_at: r.created_at,
                created_by: Actor::parse(&r.created_by),
                state: r.state,
                key_id: r.key_id,
            })
            .collect();
        Ok(SecretMetadata {
            meta,
            versions,
            labels,
        })
    }

    /// Soft-deletes versions (default: the current one). Returns the versions
    /// named.
    pub async fn delete(
        &self,
        identity: &Identity,
        path: &str,
        versions: &[u64],
    ) -> Result<Vec<u64>> {
        self.change_versions(identity, path, versions, Operation::Delete, |now| {
            VersionStateChange::Delete(now)
        })
        .await
    }

    /// Restores soft-deleted versions (default: the current one).
    pub async fn undelete(
        &self,
        identity: &Identity,
        path: &str,
        versions: &[u64],
    ) -> Result<Vec<u64>> {
        self.change_versions(identity, path, versions, Operation::Delete, |_| {
            VersionStateChange::Undelete
        })
        .await
    }

    /// Erases versions for good (default: the current one).
    pub async fn destroy(
        &self,
        identity: &Identity,
        path: &str,
        versions: &[u64],
    ) -> Result<Vec<u64>> {
        self.change_versions(identity, path, versions, Operation::Destroy, |now| {
            VersionStateChange::Destroy(now)
        })
        .await
    }

    async fn change_versions(
        &self,
        identity: &Identity,
        path: &str,
        versions: &[u64],
        op: Operation,
        change: impl Fn(i64) -> VersionStateChange,
    ) -> Result<Vec<u64>> {
        let path = SecretPath::parse(path)?;
        self.keys()?;
        self.authorize(identity, op, path.as_str())?;
        let _lock = self.write_locks[self.cache.stripe(path.as_str())]
            .lock()
            .await;
        let cached = self
            .cached(path.as_str())
            .await?
            .ok_or_else(|| not_found(&path))?;
        let meta = &cached.meta;
        // The default is the version readers get: `current`, which during a
        // staged rotation is not the newest.
        let versions = if versions.is_empty() {
            vec![cached.labels().current]
        } else {
            versions.to_vec()
        };
        if let Some(bad) = versions
            .iter()
            .find(|v| **v == 0 || **v > meta.current_version)
        {
            return Err(CoreError::NotFound(format!("{path} has no version {bad}")));
        }
        let now = now_ms();
        let result = self
            .store
            .commit(vec![Mutation::SetVersionState {
                path: path.as_str().to_string(),
                versions: versions.clone(),
                change: change(now),
                at: now,
            }])
            .await;
        // Invalidate even on failure: the cached state may be what was stale.
        self.cache.invalidate(path.as_str());
        result?;
        Ok(versions)
    }

    /// Cached metadata and current ciphertext for `path`, from storage on a miss.
    async fn cached(&self, path: &str) -> Result<Option<Arc<Cached>>> {
        if let Some(c) = self.cache.get(path) {
            return Ok(Some(c));
        }
        let generation = self.cache.generation(path);
        let Some(meta) = self.store.get_meta(path).await? else {
            return Ok(None);
        };
        let state = match self.store.get_object(lifecycle::KIND_STATE, path).await? {
            Some(o) => Some((
                o.revision,
                serde_json::from_slice::<SecretState>(&o.value).map_err(|_| {
                    CoreError::Corrupt(format!("the lifecycle state of {path} is unreadable"))
                })?,
            )),
            None => None,
        };
        let current_version = Labels::of(&meta, state.as_ref().map(|(_, s)| s)).current;
        let current = self.store.get_version(path, current_version).await?;
        let entry = Arc::new(Cached {
            meta,
            state,
            current,
        });
        self.cache
            .insert_if_unchanged(path, generation, entry.clone());
        Ok(Some(entry))
    }

    /// Flushes storage; call once on shutdown.
    pub async fn close(&self) -> Result<()> {
        Ok(self.store.close().await?)
    }
}

fn not_found(path: &SecretPath) -> CoreError {
    CoreError::NotFound(format!("no secret at {path}"))
}

fn keyring_status(k: &Keyring) -> KeyringStatus {
    KeyringStatus {
        active_key: k.active_id(),
        keys: k.key_ids(),
    }
}

/// Opens a stored version. Requires the witness that reading this exact path
/// was authorized, so no code path can decrypt without the check.
fn open_value(keys: &Keys, auth: &Authorized<'_>, record: &VersionRecord) -> Result<SecretValue> {
    if auth.operation() != Operation::ReadValue || auth.target() != record.path {
        return Err(CoreError::Forbidden(
            "internal check failed: the authorization was for another operation".into(),
        ));
    }
    let plain = keys
        .keyring
        .open_value(&record.path, record.version, record.key_id, &record.ciphertext)
        .map_err(|_| {
            tracing::error!(path = %record.path, version = record.version, "stored ciphertext failed to open");
            CoreError::Corrupt(format!(
                "version {} of {} failed its integrity check",
                record.version, record.path
            ))
        })?;
    SecretValue::decode(&plain)
}

#[cfg(test)]
mod enumeration_owner {
    /// Every source file of the core, by name.
    const SOURCES: &[(&str, &str)] = &[
        ("access.rs", include_str!("access.rs")),
        ("actor.rs", include_str!("actor.rs")),
        ("audit.rs", include_str!("audit.rs")),
        ("auth.rs", include_str!("auth.rs")),
        ("backup.rs", include_str!("backup.rs")),
        ("cache.rs", include_str!("cache.rs")),
        ("cluster.rs", include_str!("cluster.rs")),
        ("duration.rs", include_str!("duration.rs")),
        ("error.rs", include_str!("error.rs")),
        ("hygiene.rs", include_str!("hygiene.rs")),
        ("lib.rs", include_str!("lib.rs")),
        ("lifecycle.rs", include_str!("lifecycle.rs")),
        ("path.rs", include_str!("path.rs")),
        ("pgroles.rs", include_str!("pgroles.rs")),
        ("rotation.rs", include_str!("rotation.rs")),
        ("strength.rs", include_str!("strength.rs")),
        ("text.rs", include_str!("text.rs")),
        ("username.rs", include_str!("username.rs")),
        ("users.rs", include_str!("users.rs")),
        ("value.rs", include_str!("value.rs")),
        ("versions.rs", include_str!("versions.rs")),
    ];

    /// Listings reach a caller only through `Coffer::enumerate`, which
    /// filters each entry through the `Listing` witness. The store's `list`
    /// is called there, in its check that a folder it shows holds something
    /// the caller is not denied (which returns a yes or no, never a name),
    /// and in the scheduler's own scan, nowhere else: a new
    /// use case that enumerates paths has to go through the filter.
    #[test]
    fn only_enumerate_and_the_scheduler_list_the_store() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".rs"))
            .collect();
        for name in &on_disk {
            assert!(
                SOURCES.iter().any(|(n, _)| n == name),
                "{name} is not checked by this test: add it to SOURCES"
            );
        }
        let needle = concat!("store", ".list(");
        let mut found = Vec::new();
        for (name, text) in SOURCES {
            let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            for (i, _) in squeezed.match_indices(needle) {
                let before = &squeezed[..i];
                let function = before
                    .rfind("fn")
                    .map(|f| {
                        before[f + 2..]
                            .split(|c: char| !c.is_alphanumeric() && c != '_')
                            .next()
                            .unwrap_or("")
                            .to_string()
                    })
                    .unwrap_or_default();
                found.push(format!("{name}:{function}"));
            }
        }
        found.sort();
        assert_eq!(
            found,
            [
                "lib.rs:enumerate",
                "lib.rs:holds_undenied",
                "rotation.rs:scheduler_scan"
            ],
            "the store's listing is read outside Coffer::enumerate"
        );
    }
}
