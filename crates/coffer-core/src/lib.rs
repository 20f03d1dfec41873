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
//!
//! # Layers
//!
//! `lib.rs` is the crate's face: the [`Coffer`] struct, [`Coffer::open`],
//! [`CoreOptions`], [`Coffer::close`] and the re-exports. Every other module
//! belongs to one layer and imports only from the layers below it (and from
//! the modules before it in its own layer), so no two modules import each
//! other; the test `layering::imports_point_down` holds the order.
//!
//! 1. Values: `path`, `duration`, `error`, `value`, `text`, `username`,
//!    `strength`. No [`Coffer`], no storage.
//! 2. The model: `lifecycle` (labels, state records, rules, a managed
//!    secret's binding, rotation receipts), `auth` (the access model and the
//!    one decision), `actor`, `audit` (what a request did), `cache`.
//! 3. The node's machinery: `seal` (the keys, and [`Coffer::unsealed`] that
//!    hands them out), `session` (tokens, [`Coffer::authorize`]), `hygiene`
//!    (key usage), `read` (cached state, the one enumeration, the one way a
//!    value is opened) and `write` (the one write path, `WriteTx`).
//! 4. Use cases: `access`, `users`, `approle`, `versions`, `fingerprint`, `pgroles`,
//!    `workload` (what every machine login shares), `jwt`, `rotation`,
//!    `backup`, `cluster`. A use case may call one below it (a rotation of a
//!    managed secret is a `pgroles` step), never one above.

#![forbid(unsafe_code)]

mod access;
pub mod actor;
pub mod approle;
pub mod audit;
pub mod auth;
pub mod backup;
mod cache;
mod cluster;
pub mod duration;
mod error;
mod fingerprint;
mod history;
mod hygiene;
pub mod jwt;
pub mod lifecycle;
pub mod path;
pub mod pgroles;
mod read;
pub mod rotation;
mod seal;
mod session;
pub mod shares;
pub mod strength;
pub mod text;
pub mod username;
mod users;
pub mod value;
mod versions;
pub mod workload;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use coffer_store::Storage;

pub use access::{
    BreakglassRequest, PolicyExpect, PolicyInfo, ProtectedInfo, TokenRequest, TokenView,
};
pub use actor::Actor;
pub use auth::{
    AccessModel, Authorized, BreakglassGrant, Identity, Listing, Operation, ROOT_POLICY, Reveals,
};
use cache::SecretCache;
pub use error::{
    AppRoleRefusal, Busy, Conflict, CoreError, Expired, Integrity, InvalidInput, JwtRoleProblem,
    LoginRefused, NotFound, Record, Refusal, Result, UnsealRefusal, UpstreamFailure, UserNameError,
    WorkloadRefusal,
};
pub use history::{HistoryOutcome, HistoryReceipt, HistoryVersion, IMPORT_TARGET, MAX_HISTORY};
pub use lifecycle::{At, Label, Labels, RuleInfo, RuleSpec, SecretState};
pub use path::{ListPrefix, PathError, SecretPath};
pub use read::{
    DEFAULT_LIST_LIMIT, ListOptions, MAX_BUNDLE, MAX_LIST_LIMIT, SecretMetadata, SecretRead,
    VersionInfo,
};
pub use rotation::{RotateReceipt, RotateRequest, Standing, StatusEntry, TickReport};
pub use seal::{
    InitOutput, KeyringStatus, REMOTE_UNSEAL_WAIT, STORAGE_PROBE_FRESH, STORAGE_PROBE_TIMEOUT,
    SealStatus,
};
use seal::{SEAL_CONFIG, State};
// The cluster's sync reads the seal state directly.
pub use fingerprint::{FingerprintPlace, Fingerprints, MAX_FINGERPRINT_SECRETS};
use seal::{Keys, WRAPPED_KEYRING};
use session::CachedToken;
pub use users::{
    InviteRequest, LOGIN_PACE_MS, LoginRequest, MAX_FAILED_LOGINS, SweepReport, TotpEnrollment,
    UserView,
};
pub use value::SecretValue;
pub use versions::{CompromiseReceipt, PlanAction, PlanEntry};
pub use write::WriteReceipt;

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
    /// At most one fetch of a JWT role's keys in this long (an unknown key
    /// id refetches them): [`jwt::JWKS_REFETCH_SECS`] by default.
    pub jwks_refetch_interval: std::time::Duration,
    /// Cached JWT keys are dropped this long after their last successful
    /// fetch, even while refetching fails: [`jwt::JWKS_STALE_MAX_SECS`] by
    /// default.
    pub jwks_stale_max: std::time::Duration,
}

impl Default for CoreOptions {
    fn default() -> Self {
        CoreOptions {
            max_value_bytes: 64 * 1024,
            cache_capacity: 200_000,
            key_max_encryptions: hygiene::DEFAULT_MAX_ENCRYPTIONS,
            jwks_refetch_interval: std::time::Duration::from_secs(jwt::JWKS_REFETCH_SECS),
            jwks_stale_max: std::time::Duration::from_secs(jwt::JWKS_STALE_MAX_SECS),
        }
    }
}

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
    /// The health check's view of the store, probed once at a time.
    storage_probe: seal::StorageProbe,
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
    /// JWT roles' fetched keys.
    jwt_keys: jwt::JwtKeys,
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

impl Coffer {
    /// Opens coffer on a store. It comes up sealed (or uninitialized).
    pub async fn open(store: Arc<dyn Storage>, options: CoreOptions) -> Result<Coffer> {
        let state = match store.get_system(SEAL_CONFIG).await? {
            None => State::Uninitialized,
            Some(bytes) => State::Sealed {
                config: serde_json::from_slice(&bytes)
                    .map_err(|_| CoreError::Corrupt(Integrity::Unreadable(Record::SealConfig)))?,
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
            storage_probe: seal::StorageProbe::default(),
            write_locks: (0..256).map(|_| tokio::sync::Mutex::new(())).collect(),
            cache,
            tokens: RwLock::new(HashMap::new()),
            access: RwLock::new(Arc::new(AccessModel::default())),
            access_writes: tokio::sync::Mutex::new(()),
            jwt_keys: jwt::JwtKeys::default(),
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

    /// Flushes storage; call once on shutdown.
    pub async fn close(&self) -> Result<()> {
        Ok(self.store.close().await?)
    }
}

#[cfg(test)]
mod layering {
    /// The modules in layer order (see the crate documentation): each may
    /// import only those before it.
    const ORDER: &[&str] = &[
        "path",
        "duration",
        "error",
        "value",
        "text",
        "username",
        "strength",
        "lifecycle",
        "auth",
        "actor",
        "audit",
        "cache",
        "seal",
        "session",
        "hygiene",
        "read",
        "write",
        "access",
        "workload",
        "jwt",
        "users",
        "approle",
        "shares",
        "versions",
        "fingerprint",
        "pgroles",
        "rotation",
        "history",
        "backup",
        "cluster",
    ];

    /// The modules of this crate that `source` imports or names (outside
    /// comments).
    fn imported(source: &str) -> Vec<String> {
        // Comment lines go; the rest is read as one line, so that an import
        // list spread over lines is read whole.
        let code: Vec<&str> = source
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        let line = code.join(" ");
        let mut found = Vec::new();
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(list) => list.split('}').next().unwrap_or("").split(',').collect(),
                None => vec![rest],
            };
            for name in names {
                let name: String = name
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if ORDER.contains(&name.as_str()) {
                    found.push(name);
                }
            }
        }
        found
    }

    #[test]
    fn imports_point_down() {
        let mut upward = Vec::new();
        for (file, text) in super::enumeration_owner::SOURCES {
            let Some(module) = file.strip_suffix(".rs").filter(|m| *m != "lib") else {
                continue;
            };
            let rank = |m: &str| ORDER.iter().position(|o| *o == m);
            let own = rank(module).unwrap_or_else(|| panic!("{module} is not in ORDER"));
            for m in imported(text) {
                if m != module && rank(&m).is_none_or(|r| r > own) {
                    upward.push(format!("{module} imports {m}"));
                }
            }
        }
        upward.sort();
        upward.dedup();
        assert_eq!(upward, Vec::<String>::new(), "an import points up a layer");
    }

    #[test]
    fn the_import_reader_sees_lists_and_paths() {
        assert_eq!(
            imported(
                "use crate::{Coffer, audit, now_ms};\nuse crate::read::open_value;\n\
                 use crate::{\n    At, Coffer,\n    write::Becomes,\n};"
            ),
            ["audit", "read", "write"]
        );
        assert_eq!(imported("/// see [`crate::pgroles`]"), Vec::<String>::new());
    }
}

#[cfg(test)]
mod enumeration_owner {
    /// Every source file of the core, by name.
    pub(super) const SOURCES: &[(&str, &str)] = &[
        ("access.rs", include_str!("access.rs")),
        ("workload.rs", include_str!("workload.rs")),
        ("jwt.rs", include_str!("jwt.rs")),
        ("actor.rs", include_str!("actor.rs")),
        ("approle.rs", include_str!("approle.rs")),
        ("audit.rs", include_str!("audit.rs")),
        ("auth.rs", include_str!("auth.rs")),
        ("backup.rs", include_str!("backup.rs")),
        ("cache.rs", include_str!("cache.rs")),
        ("cluster.rs", include_str!("cluster.rs")),
        ("duration.rs", include_str!("duration.rs")),
        ("error.rs", include_str!("error.rs")),
        ("history.rs", include_str!("history.rs")),
        ("fingerprint.rs", include_str!("fingerprint.rs")),
        ("hygiene.rs", include_str!("hygiene.rs")),
        ("lib.rs", include_str!("lib.rs")),
        ("lifecycle.rs", include_str!("lifecycle.rs")),
        ("path.rs", include_str!("path.rs")),
        ("pgroles.rs", include_str!("pgroles.rs")),
        ("read.rs", include_str!("read.rs")),
        ("rotation.rs", include_str!("rotation.rs")),
        ("seal.rs", include_str!("seal.rs")),
        ("session.rs", include_str!("session.rs")),
        ("shares.rs", include_str!("shares.rs")),
        ("strength.rs", include_str!("strength.rs")),
        ("text.rs", include_str!("text.rs")),
        ("username.rs", include_str!("username.rs")),
        ("users.rs", include_str!("users.rs")),
        ("value.rs", include_str!("value.rs")),
        ("versions.rs", include_str!("versions.rs")),
        ("write.rs", include_str!("write.rs")),
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
                "read.rs:enumerate",
                "read.rs:holds_undenied",
                "rotation.rs:scheduler_scan"
            ],
            "the store's listing is read outside Coffer::enumerate"
        );
    }
}
