//! The errors of coffer's use cases.
//!
//! Each variant maps to one class of outcome (and one HTTP status and CLI exit
//! status further up). Messages are written for the person who made the request:
//! they may name a path or version, never a value, a token or key material.

use coffer_store::StoreError;

use crate::path::PathError;

/// What a use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The server is sealed; only status and unseal work.
    #[error("coffer is sealed")]
    Sealed,
    /// `init` has not run yet.
    #[error("coffer is not initialized; run `coffer operator init`")]
    NotInitialized,
    /// `init` has already run.
    #[error("coffer is already initialized")]
    AlreadyInitialized,
    /// No token, or a token that is malformed, unknown, expired or revoked.
    /// Deliberately one message for all of them.
    #[error("missing or invalid token")]
    Unauthenticated,
    /// The token is valid but its policies (or a protected environment) do
    /// not allow the operation. The message says which capability was missing
    /// on which target, never anything about stored data.
    #[error("permission denied: {0}")]
    Forbidden(Refusal),
    /// A login that failed, for whatever reason (one message for all).
    #[error("{0}")]
    LoginFailed(LoginRefused),
    /// An app-role login that failed, for whatever reason: one message for
    /// all, the reason goes only to the audit record.
    #[error("{0}")]
    AppRoleLoginFailed(AppRoleRefusal),
    /// A machine login (a JWT presented for a role) that was refused; the
    /// message says why, never echoing the token.
    #[error("{0}")]
    WorkloadRefused(WorkloadRefusal),
    /// Too many attempts (failed logins for one account), or the unseal
    /// lock is busy; try again later.
    #[error("{0}")]
    RateLimited(Busy),
    /// Nothing at that path or version, or the version was deleted or destroyed.
    #[error("{0}")]
    NotFound(NotFound),
    /// A bad path.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Any other bad input.
    #[error("{0}")]
    Invalid(InvalidInput),
    /// A value larger than the configured limit.
    #[error("value is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Size of the refused value.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The secret's expiry has passed: it is refused to every reader.
    #[error("{0}")]
    Expired(Expired),
    /// A check-and-set condition failed, or the secret's state does not
    /// allow the change now.
    #[error("{0}")]
    Conflict(Conflict),
    /// An unseal key that is malformed or does not open the root key.
    #[error("{0}")]
    InvalidUnsealKey(UnsealRefusal),
    /// Stored data failed an integrity check (tampering or corruption).
    #[error("integrity check failed: {0}")]
    Corrupt(Integrity),
    /// A system coffer acts on for the caller (the PostgreSQL server whose
    /// roles it manages) failed or refused; the message says which and why.
    #[error("{0}")]
    Upstream(UpstreamFailure),
    /// The storage backend failed.
    #[error("storage failure")]
    Storage(#[source] StoreError),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => CoreError::Conflict(Conflict::Store(m)),
            other => CoreError::Storage(other),
        }
    }
}

/// Which stored record failed an integrity check, and how. Names records,
/// paths and versions only, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum Integrity {
    /// A record that should be there is not.
    #[error("{0} is missing")]
    Missing(Record),
    /// A record that cannot be decoded.
    #[error("{0} is unreadable")]
    Unreadable(Record),
    /// A record whose authentication (decryption) failed.
    #[error("{0} failed its integrity check")]
    Failed(Record),
    /// A stored key (a rule's or a protected prefix's pattern) that does not
    /// parse; the pattern parser's words.
    #[error("stored {what} is unreadable: {cause}")]
    StoredPattern {
        /// What the key belongs to (`lifecycle rule`, `protected prefix`).
        what: &'static str,
        #[source]
        cause: coffer_policy::PatternError,
    },
    /// A stored lifecycle rule that no longer validates.
    #[error("lifecycle rule {pattern} is invalid: {cause}")]
    InvalidRule {
        pattern: String,
        #[source]
        cause: Box<CoreError>,
    },
    /// A sealed value whose encoding tag is unknown.
    #[error("sealed value has an unknown encoding")]
    ValueEncoding,
    /// The keyring in the store is older than the one in memory (a rollback).
    #[error("the stored keyring is older than the one in memory")]
    KeyringRolledBack,
}

/// A stored record, named for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The seal configuration.
    SealConfig,
    /// The root key, wrapped by the unseal keys.
    WrappedRoot,
    /// The keyring, wrapped by the root key.
    WrappedKeyring,
    /// The keyring, once unwrapped.
    Keyring,
    /// The record of how much each keyring key has sealed.
    KeyringUsage,
    /// A user account.
    User,
    /// An invitation.
    Invitation,
    /// A user's TOTP seed.
    TotpSeed,
    /// A secret's lifecycle state.
    LifecycleState { path: String },
    /// One version of a secret.
    Version { path: String, version: u64 },
    /// A protected prefix's metadata.
    Protected { prefix: String },
    /// A break-glass grant.
    Breakglass { key: String },
    /// A policy.
    Policy { name: String },
    /// A lifecycle rule.
    Rule { pattern: String },
    /// A share link's record.
    Share,
    /// An app role, or one of its secret ids.
    AppRole { name: String },
    /// A JWT role.
    JwtRole { name: String },
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Record::SealConfig => f.write_str("seal configuration"),
            Record::WrappedRoot => f.write_str("the wrapped root key"),
            Record::WrappedKeyring => f.write_str("the wrapped keyring"),
            Record::Keyring => f.write_str("the stored keyring"),
            Record::KeyringUsage => f.write_str("the keyring usage record"),
            Record::User => f.write_str("a user record"),
            Record::Invitation => f.write_str("an invitation record"),
            Record::TotpSeed => f.write_str("a TOTP seed"),
            Record::LifecycleState { path } => write!(f, "the lifecycle state of {path}"),
            Record::Version { path, version } => write!(f, "version {version} of {path}"),
            Record::Protected { prefix } => write!(f, "protected prefix {prefix}"),
            Record::Breakglass { key } => write!(f, "break-glass grant {key}"),
            Record::Policy { name } => write!(f, "policy {name}"),
            Record::Rule { pattern } => write!(f, "lifecycle rule {pattern}"),
            Record::Share => f.write_str("a share link record"),
            Record::AppRole { name } => write!(f, "app role {name}"),
            Record::JwtRole { name } => write!(f, "JWT role {name}"),
        }
    }
}

/// Which system coffer acts on failed, doing what. PostgreSQL's own words
/// are carried as its (already scrubbed) error: they never hold a password
/// or a connection string's credentials.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamFailure {
    /// PostgreSQL refused or failed a statement.
    #[error("PostgreSQL: {0}")]
    Postgres(#[source] coffer_pgroles::Error),
    /// The administrator role lacks CREATEROLE.
    #[error("PostgreSQL: the administrator {admin} may not change roles (it needs CREATEROLE)")]
    NoCreateRole { admin: String },
    /// Creating the missing roles failed after some were created.
    #[error(
        "PostgreSQL: {cause}{}",
        if .created.is_empty() { String::new() } else { format!(" (created before the failure: {})", .created.join(", ")) }
    )]
    CreateRoles {
        #[source]
        cause: coffer_pgroles::Error,
        /// The roles created before the failure.
        created: Vec<String>,
    },
    /// PostgreSQL refused the first password of a new managed secret; `undo`
    /// says whether the secret was removed again.
    #[error(
        "PostgreSQL: {cause}; {}",
        match .undo {
            None => format!("{path} was not created"),
            Some(u) => format!("{path} was written but could not be removed again ({u}): destroy it"),
        }
    )]
    FirstPassword {
        #[source]
        cause: coffer_pgroles::Error,
        path: String,
        /// Why the secret could not be removed again, if it could not.
        undo: Option<Box<CoreError>>,
    },
    /// PostgreSQL refused a rotation's new password; `undo` says whether the
    /// pending version was dropped again.
    #[error(
        "PostgreSQL: {cause}; {}",
        match .undo {
            None => format!("{path} is unchanged"),
            Some(u) => format!(
                "version {staged} of {path} stays pending ({u}): cancel it with \
                 `coffer rotate {path} --cancel`"
            ),
        }
    )]
    RotatePassword {
        #[source]
        cause: coffer_pgroles::Error,
        path: String,
        staged: u64,
        /// Why the pending version could not be dropped, if it could not.
        undo: Option<Box<CoreError>>,
    },
    /// A rotation whose promotion failed after the new password was set.
    #[error(
        "{cause}; the new password of {role} is set and staged as version {staged}: finish \
         with `coffer promote {path}`"
    )]
    StagedOnly {
        #[source]
        cause: Box<CoreError>,
        role: String,
        staged: u64,
        path: String,
    },
}

/// Why input was refused: the limit it passed, the path it names twice,
/// the rule a value is too weak for. Never the value itself.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvalidInput {
    /// Too many prefixes and paths in one read of many.
    #[error("at most {limit} prefixes and paths in one request")]
    Bundle { limit: usize },
    /// Too many secrets in one write of many.
    #[error("at most {limit} secrets in one request")]
    WriteBundle { limit: usize },
    /// A read of many that would serve too many secrets.
    #[error("more than {limit} secrets in one request")]
    BundleSecrets { limit: usize },
    /// Too many secrets under a prefix read at once.
    #[error("more than {limit} secrets under {prefix}; name a narrower prefix")]
    TooManyUnder { prefix: String, limit: usize },
    /// Too many versions, or too many bytes of values, under a prefix to
    /// fingerprint in one request.
    #[error(
        "more than {limit} versions (or 64 MiB of values) under {prefix} to fingerprint at once; name a narrower prefix"
    )]
    TooMuchToFingerprint { prefix: String, limit: usize },
    /// Too many secrets in an environment to promote.
    #[error("more than {limit} secrets under {prefix}")]
    TooManyToPromote { prefix: String, limit: usize },
    /// Too many secrets under a prefix for a status report.
    #[error("more than {limit} secrets under {prefix:?}; name a narrower prefix")]
    TooManyToScan { prefix: String, limit: usize },
    /// A write of many with nothing in it.
    #[error("nothing to write")]
    NothingToWrite,
    /// A write of many that names a path twice.
    #[error("{path} appears more than once")]
    Repeated { path: String },
    /// A value weaker than a lifecycle rule requires. `what` names the
    /// secret or the field; `why` lists the estimator's reasons.
    #[error(
        "the value of {what} is too weak: about {bits:.0} bits where the lifecycle rule \
         {pattern} requires {min}{why}; generate one with `coffer set {path} --generate`"
    )]
    TooWeak {
        what: String,
        bits: f64,
        pattern: String,
        min: u32,
        why: String,
        path: String,
    },
    /// A write of many with values too weak for their rules: nothing is
    /// written, and each refusal is listed.
    #[error("nothing written: {}", .refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Weak { refusals: Vec<InvalidInput> },
    /// A plain write to a secret that manages PostgreSQL roles.
    #[error(
        "{path} holds the credentials of PostgreSQL roles that coffer manages: its versions \
         come only from rotations (`coffer rotate {path}`), which change the roles too"
    )]
    ManagedVersions { path: String },
    /// Something a secret that manages PostgreSQL roles cannot undergo.
    #[error(
        "{path} holds the credentials of PostgreSQL roles that coffer manages and cannot be \
         {what}"
    )]
    Managed { path: String, what: &'static str },
    /// A staged rotation of a secret with no version.
    #[error("{path} has no current version to rotate from")]
    NoCurrentToRotate { path: String },
    /// A listing cursor that no listing returns.
    #[error("invalid listing cursor")]
    ListCursor,
    /// A history that cannot be written as given (says why; never a value).
    #[error("invalid history for {path}: {why}")]
    History { path: String, why: String },
    /// A copy or move onto its own source.
    #[error("{path} cannot be copied onto itself")]
    CopyOntoItself { path: String },
    /// A promotion between environments that contain each other.
    #[error("{from} and {to} overlap; promote between sibling environments")]
    Overlap { from: String, to: String },
    /// Too many networks bound to a token.
    #[error("at most {limit} networks per token")]
    TooManyNetworks { limit: usize },
    /// Too many policies on a token.
    #[error("at most {limit} policies")]
    TooManyPolicies { limit: usize },
    /// A lifecycle rule's `min_bits` out of range.
    #[error("min_bits must be 1 to {max}, not {given}")]
    MinBits { given: u32, max: u32 },
    /// Free text left empty (`what` names the field).
    #[error("{what} cannot be empty")]
    Empty { what: String },
    /// Free text over its length limit, in characters.
    #[error("{what} is limited to {max} characters")]
    TooLong { what: String, max: usize },
    /// Free text holding a character it may not (a line break, a direction
    /// control, an invisible character), described, never quoted.
    #[error("{what} cannot contain {described}")]
    Character { what: String, described: String },
    /// Text shaped like a coffer token or invitation code; never quoted.
    #[error(
        "{what} contains what looks like a coffer token or invitation code (cft_..., cfi_... or cfs_...); \
         credentials never belong there (it is not shown)"
    )]
    CredentialShaped { what: String },
    /// A name carrying what coffer appends to names when it shows who acted.
    #[error(
        "{what} cannot contain a kind in parentheses or a token accessor: coffer shows those \
         beside the name itself"
    )]
    ActorSuffix { what: String },
    /// A name that looks like one coffer writes for its own actions.
    #[error(
        "{what} cannot be {reserved:?} or look like it: coffer writes that name for its own actions"
    )]
    Reserved {
        what: String,
        reserved: &'static str,
    },
    /// A lifecycle rule that sets nothing.
    #[error("a lifecycle rule must set at least one of min_bits, rotate_every, generator, grace")]
    EmptyRule,
    /// A rotation interval out of range.
    #[error("the rotation interval must be between 1s and 10 years")]
    Interval,
    /// A grace period out of range.
    #[error("the grace period must be between 0s and 10 years")]
    Grace,
    /// A grace period longer than the rotation interval.
    #[error(
        "the grace period cannot be longer than the rotation interval: two rotations would \
         retire a version still in its grace period"
    )]
    GraceOverInterval,
    /// A backup whose contents fail their checks.
    #[error("the backup is damaged: {what}")]
    BackupDamaged { what: String },
    /// A backup that ends early (`what`: the part that is missing).
    #[error("the backup is truncated ({what})")]
    BackupTruncated { what: String },
    /// A file that is not a coffer backup.
    #[error("this is not a coffer backup")]
    NotABackup,
    /// A backup format this coffer does not read.
    #[error("backup format {format} is not supported by this coffer (it reads format {reads})")]
    BackupFormat { format: u32, reads: u32 },
    // ---- values -----------------------------------------------------------
    /// A field name empty or over the limit, in bytes.
    #[error("field names must be 1 to {max} bytes long")]
    FieldNameLength { max: usize },
    /// A field name with a control character.
    #[error("field names cannot contain control characters")]
    FieldNameControl,
    /// A duration that does not parse.
    #[error(transparent)]
    Duration(crate::duration::DurationError),
    /// A JWT role that cannot be written as asked.
    #[error("{0}")]
    JwtRole(JwtRoleProblem),
    // ---- seal -------------------------------------------------------------
    /// Unseal-key shares and threshold out of range.
    #[error("shares and threshold must satisfy 1 <= threshold <= shares <= 255")]
    Shares,
    /// The unseal key could not be split into shares.
    #[error(transparent)]
    Split(coffer_crypto::CryptoError),
    // ---- patterns, policies, generators -----------------------------------
    /// A pattern that does not parse.
    #[error(transparent)]
    Pattern(coffer_policy::PatternError),
    /// A policy name the policy crate refuses.
    #[error(transparent)]
    PolicyName(coffer_policy::PolicyNameError),
    /// A policy whose source does not parse.
    #[error("policy {name}: {cause}")]
    Policy {
        name: String,
        #[source]
        cause: coffer_policy::PolicyError,
    },
    /// A policy name that reads as the built-in root policy.
    #[error(
        "policy name {name:?} looks like {root:?}, the built-in policy that grants everything; \
         choose another name"
    )]
    LooksLikeRoot { name: String, root: &'static str },
    /// Deleting the built-in root policy.
    #[error("root is built in and cannot be deleted")]
    RootBuiltIn,
    /// A token or account with no policy.
    #[error("give at least one policy")]
    NoPolicies,
    /// A policy that does not exist (`shown`: its name made printable).
    #[error("no policy named {shown}")]
    UnknownPolicy { shown: String },
    /// A generator spec that does not parse.
    #[error(transparent)]
    Generator(coffer_crypto::generate::SpecError),
    // ---- tokens -----------------------------------------------------------
    /// A network that is not in CIDR notation (`shown`: made printable).
    #[error("{shown} is not a network in CIDR notation (like 10.0.0.0/8 or 2001:db8::/32)")]
    Network { shown: String },
    /// A use-limited token creating a token.
    #[error("a use-limited token cannot create other tokens")]
    UseLimitedParent,
    /// A max ttl below the ttl.
    #[error(
        "max ttl ({}) is shorter than ttl ({})",
        crate::duration::format_duration_ms(*max_ms),
        crate::duration::format_duration_ms(*ttl_ms)
    )]
    MaxTtlBelowTtl { max_ms: i64, ttl_ms: i64 },
    /// The creating token expired.
    #[error("the parent token has expired")]
    ParentExpired,
    /// A use count of zero.
    #[error("uses must be at least 1 (leave it out for unlimited)")]
    ZeroUses,
    /// An app-role name that breaks the rules (`shown`: made printable).
    #[error(
        "{shown} is not an app-role name: 1 to 64 ASCII letters, digits, '-', '_' or '.', \
         starting with a letter or digit"
    )]
    AppRoleName { shown: String },
    /// An app-role duration outside its range.
    #[error("{what} must be between 1s and {max}")]
    AppRoleDuration { what: &'static str, max: String },
    /// A secret-id use count outside its range.
    #[error("secret-id uses must be between 1 and {max}")]
    SecretIdUses { max: u64 },
    /// A role with as many live secret ids as it may hold.
    #[error("the app role has {limit} live secret ids already; revoke some first")]
    TooManySecretIds { limit: usize },
    /// Something that is not a secret-id accessor (`shown`: made printable).
    #[error("{shown} is not a secret-id accessor (they look like sia_...)")]
    SecretIdAccessor { shown: String },
    /// A display name that claims an app-role identity.
    #[error("display names starting with \"approle:\" are kept for app-role logins")]
    AppRoleDisplayName,
    /// Something that is not a token accessor (`shown`: made printable).
    #[error("{shown} is not a token accessor (they look like acc_...)")]
    Accessor { shown: String },
    /// Renewing a token that does not expire.
    #[error("this token does not expire, so there is nothing to renew")]
    NotRenewable,
    /// Renewing a token past its max ttl.
    #[error("this token has reached its max ttl and cannot be renewed")]
    MaxTtlReached,
    // ---- break-glass ------------------------------------------------------
    /// Break-glass over everything.
    #[error("break-glass covers one secret or one folder, not everything")]
    BreakglassEverything,
    /// Break-glass without a reason.
    #[error("say why (a reason of at least 4 characters)")]
    BreakglassReason,
    /// A leak without a reason.
    #[error("say where the value leaked (a reason of at least 4 characters)")]
    LeakReason,
    /// Break-glass for longer than allowed.
    #[error("break-glass lasts at most {}", crate::duration::format_duration_ms(*max_ms))]
    BreakglassTtl { max_ms: i64 },
    /// Break-glass asked for by a service token.
    #[error(
        "only people need break-glass: service tokens are not limited by protected environments"
    )]
    BreakglassForService,
    /// Break-glass where nothing is protected.
    #[error("{target} is not in a protected environment; no break-glass is needed")]
    NotProtected { target: String },
    // ---- backups ----------------------------------------------------------
    /// The receiver of a backup went away.
    #[error("the backup was abandoned")]
    BackupAbandoned,
    /// The task writing a backup failed.
    #[error("the export task failed: {0}")]
    ExportTask(#[source] std::sync::Arc<tokio::task::JoinError>),
    /// The backup could not be read again.
    #[error("cannot read the backup: {0}")]
    BackupRead(#[source] std::sync::Arc<std::io::Error>),
    // ---- PostgreSQL roles -------------------------------------------------
    /// The administrator secret is the managed secret itself.
    #[error("the administrator secret must be another secret than the managed one")]
    AdminIsManaged,
    /// A role name coffer does not manage (the check's words, which quote
    /// the name; used only when the name is short and printable).
    #[error(transparent)]
    RoleName(coffer_pgroles::Error),
    /// A role name coffer does not manage, not shown.
    #[error(
        "a role name is not one coffer manages: use 1 to 63 lowercase letters, digits and _, \
         starting with a letter or _ (the name is not shown)"
    )]
    RoleNameHidden,
    /// The two roles are one.
    #[error("give two different roles: they take turns")]
    SameRoles,
    /// A group for roles coffer does not create.
    #[error("a group (member_of) applies only to roles coffer creates (create_roles)")]
    GroupWithoutCreate,
    /// A connect URL with credentials or of another scheme.
    #[error(
        "the connect URL must be a postgres:// URL without a user or password (coffer adds the \
         role's)"
    )]
    ConnectUrl,
    /// A managed role that is the administrator.
    #[error("{role} is the administrator's own role; coffer manages other roles")]
    AdminOwnRole { role: String },
    /// A managed role that is a superuser.
    #[error("{role} is a superuser: coffer does not hand out superuser credentials")]
    Superuser { role: String },
    /// An administrator secret with fields but no `url`.
    #[error("the administrator secret {admin} has no field \"url\"")]
    AdminNoUrl { admin: String },
    /// An administrator secret that holds no postgres:// URL.
    #[error(
        "the administrator secret {admin} must hold a postgres:// URL (or fields url and password)"
    )]
    AdminUrl { admin: String },
    // ---- rotation ---------------------------------------------------------
    /// A value given for a secret whose passwords coffer generates.
    #[error(
        "{path} holds the credentials of PostgreSQL roles: coffer generates their passwords \
         (give a generator with --generate, not a value)"
    )]
    ManagedValue { path: String },
    /// `--force` on a secret that manages no roles.
    #[error("--force applies only to secrets that manage PostgreSQL roles")]
    ForceUnmanaged,
    /// A rotation given a value and a generator.
    #[error("give either a value or a generator, not both")]
    ValueAndGenerator,
    /// A rotation with nothing to make the new value from.
    #[error(
        "no generator applies to {path}: give one (`--generate base64:32`), the new value on \
         stdin, or a lifecycle rule with a generator"
    )]
    NoGenerator { path: String },
    /// A scheduled rotation whose rule has no generator.
    #[error("no generator applies to {path}")]
    NoRuleGenerator { path: String },
    // ---- promotion --------------------------------------------------------
    /// A promotion that does not name two environments.
    #[error("name two environments, such as app/staging and app/prod")]
    TwoEnvironments,
    // ---- users ------------------------------------------------------------
    /// A user name refused (never quoted).
    #[error(transparent)]
    UserName(UserNameError),
    /// An invitation for longer than allowed.
    #[error("an invitation lasts at most {}", crate::duration::format_duration_ms(*max_ms))]
    InviteTtl { max_ms: i64 },
    /// A share request refused; says why (never quotes a value).
    #[error("{0}")]
    Share(&'static str),
    /// An invitation code that does not redeem; one answer for every cause.
    #[error("this invitation code is invalid, expired or already used")]
    InviteCode,
    /// A password the password policy refuses (or cannot hash).
    #[error(transparent)]
    Password(std::sync::Arc<coffer_crypto::PasswordError>),
    /// Hashing a password gave no hash.
    #[error("the password could not be hashed")]
    PasswordHash,
    /// The password check could not run.
    #[error("password check failed")]
    PasswordCheck,
    /// A password over the length limit at login.
    #[error("that password is too long")]
    PasswordTooLong,
    /// An account change that changes nothing.
    #[error("nothing to change: give policies or reset the one-time codes")]
    NothingToChange,
    /// One-time codes for something that is not a person.
    #[error("one-time codes belong to people; log in with `coffer login` first")]
    TotpPeopleOnly,
    /// A one-time code before codes were set up.
    #[error("one-time codes are not set up; run `coffer totp enable` first")]
    TotpNotSetUp,
    /// A wrong or reused one-time code.
    #[error("that one-time code is wrong or was already used")]
    TotpCode,
}

/// Why a user name is not acceptable. Never quotes the input (a password
/// pasted into the name field must not end up in a log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UserNameError {
    /// Nothing but whitespace.
    #[error("a user name cannot be empty")]
    Empty,
    /// Over the limit, in characters.
    #[error("a user name is at most {max} characters")]
    TooLong { max: usize },
    /// Shaped like a coffer token or invitation code.
    #[error(
        "a user name cannot look like a coffer token or invitation code (cft_..., cfi_... or cfs_...); \
         the name given is not shown"
    )]
    CredentialShaped,
    /// A space inside the name.
    #[error("a user name cannot contain spaces")]
    Space,
    /// A control character.
    #[error("a user name cannot contain control characters")]
    Control,
    /// Any other character outside the allowed set (its code point).
    #[error("a user name may contain only letters, digits and . _ - @ (found U+{:04X})", *.0 as u32)]
    Character(char),
}

/// Why a request was refused: which capability was missing on which
/// target, or which rule refused it. Never anything about stored data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No policy of the token grants `capability` on `target`.
    #[error("no policy of this token grants {capability} on {}", if .target.is_empty() { "/" } else { .target.as_str() })]
    NotGranted {
        /// The capability's name (`read`, `create`, ...).
        capability: &'static str,
        /// The path or prefix (empty: the root).
        target: String,
    },
    /// A person reading a value in a protected environment without a grant.
    #[error(
        "{target} is in a protected environment: people cannot read its value (a service token \
         can; for an emergency, `coffer breakglass`)"
    )]
    Protected { target: String },
    /// A break-glass grant does not let a person copy values out.
    #[error(
        "{path} is in a protected environment: a person may read it only through a break-glass \
         grant, which does not allow copying, moving or promoting it (a service token can)"
    )]
    BreakglassNoCopy { path: String },
    /// A break-glass grant does not let a person set up roles.
    #[error(
        "{admin} is in a protected environment: a break-glass grant lets a person read it, not \
         set up roles with it (a service token can)"
    )]
    BreakglassNoSetup { admin: String },
    /// A write of many refused on these paths.
    #[error("write refused on {}", .paths.join(", "))]
    Writes { paths: Vec<String> },
    /// A read of many refused on these paths.
    #[error("read refused on {}", .paths.join(", "))]
    Reads { paths: Vec<String> },
    /// A token cannot give away a policy it does not hold (`shown` is the
    /// name, or a description when it cannot be quoted).
    #[error("this token does not hold policy {shown}, so it cannot give it away")]
    PolicyNotHeld { shown: String },
    /// A policy write that would grant what the writer does not have
    /// (`what` says which rule, in words).
    #[error(
        "policy {policy} would grant more than this token has: {what}; only what this token \
         may do itself can be written into a policy (a root token can write anything)"
    )]
    PolicyWidens { policy: String, what: String },
    /// An administrator acting on a user who holds a policy the
    /// administrator could not grant.
    #[error(
        "user {user} holds policy {shown}, which this token does not hold, so it cannot change, \
         disable or remove that user"
    )]
    UserOutranks { user: String, shown: String },
    /// A change that would leave no active user holding root.
    #[error(
        "user {user} is the last active user holding the root policy; make another user root \
         first"
    )]
    LastRootUser { user: String },
    /// A child token's network outside its parent's.
    #[error("network {network} is outside the networks of the creating token")]
    NetworkOutside { network: String },
    /// A token this token may not see or manage.
    #[error(
        "token {accessor} is not this token's own, a descendant, or one this token may administer"
    )]
    Token { accessor: String },
    /// A value opened with the witness of another operation or path.
    #[error("internal check failed: the authorization was for another operation")]
    WrongWitness,
    /// A refusal said in words (by a transport's own check).
    #[error("{0}")]
    Other(String),
}

impl From<String> for Refusal {
    fn from(message: String) -> Refusal {
        Refusal::Other(message)
    }
}

/// A failed login: one message whatever failed (the name, the password or
/// the one-time code), so that the answer tells nothing about accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("login failed: wrong user name, password or one-time code")]
pub struct LoginRefused;

/// Why an app-role login failed. The caller always reads the same message;
/// [`AppRoleRefusal::reason`] is for the audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppRoleRefusal {
    /// No role has this role id.
    UnknownRole,
    /// Not a secret id, or none of the role's.
    UnknownSecretId,
    /// The secret id belongs to another role.
    OtherRole,
    /// The secret id expired.
    Expired,
    /// The secret id has no uses left (or a concurrent login took the last).
    UsedUp,
    /// The request came from outside the role's networks.
    Network,
}

impl std::fmt::Display for AppRoleRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "app-role login failed: wrong role id or secret id, or the secret id expired, was \
             used up or is not valid from this network",
        )
    }
}

impl std::error::Error for AppRoleRefusal {}

impl AppRoleRefusal {
    /// The reason as audit records name it.
    pub fn reason(self) -> &'static str {
        match self {
            AppRoleRefusal::UnknownRole => "unknown_role_id",
            AppRoleRefusal::UnknownSecretId => "unknown_secret_id",
            AppRoleRefusal::OtherRole => "secret_id_of_another_role",
            AppRoleRefusal::Expired => "secret_id_expired",
            AppRoleRefusal::UsedUp => "secret_id_used_up",
            AppRoleRefusal::Network => "network_not_allowed",
        }
    }
}

/// Why an attempt must wait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    /// Failed logins for the account are paced: one attempt per
    /// `pace_seconds`.
    #[error(
        "too many failed logins for this account: one attempt every {pace_seconds} seconds; try \
         again shortly"
    )]
    LoginPaced { pace_seconds: i64 },
    /// Failed logins for the app role are paced.
    #[error(
        "too many failed logins for this app role: one attempt every {pace_seconds} seconds; try \
         again shortly"
    )]
    AppRolePaced { pace_seconds: i64 },
    /// Another unseal attempt holds the unseal lock.
    #[error(
        "another unseal attempt is in progress; try again shortly, or unseal from the server \
         machine"
    )]
    Unsealing,
    /// Many opens of one share at once kept changing it; try again.
    #[error("this share link is busy; try again shortly")]
    Share,
}

/// Why an unseal key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsealRefusal {
    /// Not an encoded share.
    #[error("that is not a well-formed unseal key")]
    Malformed,
    /// The same share came twice from one source.
    #[error("this unseal key was already provided")]
    AlreadyProvided,
    /// One source may have at most `threshold` shares pending.
    #[error(
        "this address already has {threshold} unseal key(s) pending; reset them (unseal \
         --reset) to start again"
    )]
    SourceFull { threshold: usize },
    /// So many shares are pending that another machine's is refused.
    #[error(
        "too many unseal keys are pending; their senders must reset them (unseal --reset), or \
         unseal from this machine"
    )]
    TooManyPending,
    /// No combination of the pending shares opens the root key.
    #[error(
        "the unseal keys provided so far do not unseal this coffer; they are kept, so the right \
         further key can still complete it (reset withdraws this address's keys)"
    )]
    WrongKeys,
    /// The shares do not open a backup.
    #[error("the unseal keys provided do not open this backup")]
    WrongForBackup,
}

/// What was not there. Paths, names and versions only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotFound {
    /// No secret at `path` (or none the caller may know of).
    #[error("no secret at {path}")]
    Secret { path: String },
    /// The secret has no such version.
    #[error("{path} has no version {version}")]
    Version { path: String, version: u64 },
    /// A rollback's version cannot be read.
    #[error("{path} has no readable version {version} (it may be deleted or destroyed)")]
    ReadableVersion { path: String, version: u64 },
    /// The version asked for is soft-deleted.
    #[error("version {version} of {path} is deleted; `coffer undelete` restores it")]
    VersionDeleted { path: String, version: u64 },
    /// The version asked for was destroyed.
    #[error("version {version} of {path} was destroyed")]
    VersionDestroyed { path: String, version: u64 },
    /// The current version is deleted or destroyed.
    #[error("{path} is deleted (version {version} was deleted or destroyed)")]
    CurrentDeleted { path: String, version: u64 },
    /// The secret has no `previous` label.
    #[error("{path} has no previous version")]
    NoPrevious { path: String },
    /// `previous` was served until its grace period ended.
    #[error(
        "the previous version of {path} (version {version}) is no longer served: its grace \
         period ended at {}",
        crate::duration::format_time_ms(*until)
    )]
    PreviousEnded {
        path: String,
        version: u64,
        /// Unix milliseconds the grace period ended.
        until: i64,
    },
    /// No rotation is staged.
    #[error("{path} has no pending version (no rotation is staged)")]
    NoPending { path: String },
    /// No JWT role of that name.
    #[error("no JWT role named {name}")]
    JwtRole { name: String },
    /// No policy of that name.
    #[error("no policy named {name}")]
    Policy { name: String },
    /// No app role of that name.
    #[error("no app role named {name}")]
    AppRole { name: String },
    /// The app role has no secret id with that accessor.
    #[error("app role {name} has no secret id {accessor}")]
    SecretId { name: String, accessor: String },
    /// The built-in `root` policy has no stored source.
    #[error("root is built in: it grants everything and has no source")]
    BuiltInPolicy,
    /// No token with that accessor.
    #[error("no token with accessor {accessor}")]
    Token { accessor: String },
    /// The pattern is not protected.
    #[error("{pattern} is not protected")]
    Protected { pattern: String },
    /// No lifecycle rule for the pattern.
    #[error("no lifecycle rule for {pattern}")]
    Rule { pattern: String },
    /// No user of that name.
    #[error("no user named {name}")]
    User { name: String },
    /// A share link that is unknown, used up, expired or revoked: one
    /// answer for all, so an id reveals nothing.
    #[error("this share link is unknown, used up or expired")]
    Share,
    /// The secret does not manage PostgreSQL roles.
    #[error("{path} does not manage PostgreSQL roles")]
    NotManaged { path: String },
    /// PostgreSQL has no such role, and coffer was not asked to create it.
    #[error(
        "PostgreSQL has no role {role}: create it (CREATE ROLE {role} LOGIN IN ROLE <group>) or \
         let coffer create it (--create-roles)"
    )]
    Role { role: String },
    /// The administrator secret of a managed secret does not exist.
    #[error("the administrator secret {admin} does not exist: write the connection URL there")]
    AdminSecret { admin: String },
    /// The administrator secret has no current value.
    #[error("the administrator secret {admin} has no current value (deleted?)")]
    AdminValue { admin: String },
}

/// What expired, and when.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Expired {
    /// A secret read after its expiry.
    #[error(
        "{path} expired at {}; set a new value and a new expiry (`coffer expire`) to use it again",
        crate::duration::format_time_ms(*at)
    )]
    Secret {
        path: String,
        /// Unix milliseconds of the expiry.
        at: i64,
    },
    /// The administrator secret of a managed secret expired.
    #[error(
        "the administrator secret {admin} expired at {}",
        crate::duration::format_time_ms(*at)
    )]
    AdminSecret {
        admin: String,
        /// Unix milliseconds of the expiry.
        at: i64,
    },
}

/// Why a change conflicts with what is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// Storage refused a check-and-set (another writer came first); its
    /// words.
    #[error("{0}")]
    Store(String),
    /// A write's check-and-set failed.
    #[error("check-and-set failed: {path} is at version {current}, not {expected}")]
    CheckAndSet {
        path: String,
        current: u64,
        expected: u64,
    },
    /// A write of many whose check-and-set failed on some: each says which.
    #[error("check-and-set failed, nothing written: {}", .changed.join(", "))]
    CheckAndSetMany { changed: Vec<String> },
    /// A write lost every retry to other writers.
    #[error("write conflict: {0}")]
    Write(Box<Conflict>),
    /// A write of many lost to another writer.
    #[error("write conflict, nothing written: {0}")]
    WriteMany(Box<Conflict>),
    /// A rotation lost to another writer.
    #[error("rotation conflict, nothing written: {0}")]
    Rotation(Box<Conflict>),
    /// A policy created (not replaced) whose name is taken.
    #[error("policy {name} already exists; open it to change it")]
    PolicyExists { name: String },
    /// A policy edited from a copy that is no longer current.
    #[error(
        "policy {name} was changed (or removed) by someone else after it was opened; nothing \
         was written: reload it and make the change again"
    )]
    PolicyChanged { name: String },
    /// An app role of that name exists already.
    #[error("app role {name} already exists; delete it first to define it again")]
    AppRoleExists { name: String },
    /// A copy's source changed while it was read.
    #[error("{from} changed during the copy; try again")]
    CopySourceChanged { from: String },
    /// A copy's commit lost to another writer.
    #[error("{from} changed during the copy, nothing written: {cause}")]
    Copy { from: String, cause: Box<Conflict> },
    /// A copy or move goes to a path that exists.
    #[error("{to} already exists; copies and moves go to a new path")]
    CopyTargetExists { to: String },
    /// A history given for a secret whose versions are not its first ones.
    #[error("{path} already has versions that are not this history's ({why}); nothing written")]
    HistoryDiffers { path: String, why: String },
    /// A promotion's preview no longer matches.
    #[error("{from} or {to} changed since the preview; nothing written, preview again")]
    PreviewChanged { from: String, to: String },
    /// A new current version while a rotation is staged.
    #[error(
        "{path} has a staged rotation (pending version {pending}): promote it with \
         `coffer promote {path}` or cancel it with `coffer rotate {path} --cancel` first"
    )]
    Staged { path: String, pending: u64 },
    /// A promotion with nothing staged.
    #[error("{path} has no pending version: stage one with `coffer rotate {path} --stage`")]
    NothingToPromote { path: String },
    /// A cancellation with nothing staged.
    #[error("{path} has no pending version to cancel")]
    NothingToCancel { path: String },
    /// The staged version changed meanwhile.
    #[error("version {version} of {path} is no longer pending")]
    NoLongerPending { path: String, version: u64 },
    /// The version to become current was deleted or destroyed.
    #[error("version {version} of {path} is deleted or destroyed and cannot become current")]
    NotActive { path: String, version: u64 },
    /// The version to become current is marked compromised.
    #[error(
        "version {version} of {path} is marked compromised (its value leaked) and can never \
         become current again; rotate to a new value with `coffer rotate {path}`"
    )]
    Compromised { path: String, version: u64 },
    /// A managed secret starts at a new path.
    #[error("{path} already exists: a managed secret starts at a new path")]
    ManagedExists { path: String },
    /// The staged credentials name neither managed role.
    #[error("the pending version {pending} of {path} names none of its roles")]
    StagedRoleUnknown { path: String, pending: u64 },
    /// A managed secret's `previous` credentials are still served.
    #[error(
        "the previous credentials of {path} (version {previous}, role {role}) are still \
         served{}: a rotation now gives {role} a new password and cuts off the clients that \
         still use them; wait until then, or rotate with --force",
        .until.map(|u| format!(" until {}", crate::duration::format_time_ms(u))).unwrap_or_default()
    )]
    PreviousInGrace {
        path: String,
        previous: u64,
        /// The role whose password the rotation would replace.
        role: String,
        /// When `previous` stops being served, if it does.
        until: Option<i64>,
    },
    /// Encryptions could not be reserved against other nodes.
    #[error("could not reserve encryptions under the keyring key; try again")]
    Reservation,
    /// A restore goes only into an empty store.
    #[error("the target store is not empty: restore only into a fresh store")]
    RestoreTarget,
    /// The user name is taken.
    #[error("the user name {name} is taken; choose another")]
    UserTaken { name: String },
    /// The user name reads as an existing user's.
    #[error("the user name {name} looks like an existing user's name; choose another")]
    UserLookalike { name: String },
    /// TOTP enrollment while codes are on.
    #[error("one-time codes are already on for this account; turn them off first")]
    TotpEnrolled,
    /// TOTP confirmation while codes are on.
    #[error("one-time codes are already on")]
    TotpOn,
}

/// The result type of coffer's use cases.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::format_time_ms;

    /// The typed causes render the messages the use cases wrote by hand
    /// before they were typed (clients and tests compare them).
    #[test]
    fn typed_causes_render_the_same_messages() {
        let p = || "app/dev/db".to_string();
        let t = 1_700_000_000_000;
        let mut cases: Vec<(CoreError, String)> = vec![
            (
                CoreError::NotFound(NotFound::PreviousEnded {
                    path: p(),
                    version: 4,
                    until: t,
                }),
                format!(
                    "the previous version of app/dev/db (version 4) is no longer served: its \
                     grace period ended at {}",
                    format_time_ms(t)
                ),
            ),
            (
                CoreError::Expired(Expired::Secret { path: p(), at: t }),
                format!(
                    "app/dev/db expired at {}; set a new value and a new expiry (`coffer \
                     expire`) to use it again",
                    format_time_ms(t)
                ),
            ),
            (
                CoreError::Conflict(Conflict::Staged {
                    path: p(),
                    pending: 7,
                }),
                "app/dev/db has a staged rotation (pending version 7): promote it with `coffer \
                 promote app/dev/db` or cancel it with `coffer rotate app/dev/db --cancel` first"
                    .into(),
            ),
            (
                CoreError::Conflict(Conflict::PreviousInGrace {
                    path: p(),
                    previous: 2,
                    role: "app_b".into(),
                    until: None,
                }),
                "the previous credentials of app/dev/db (version 2, role app_b) are still \
                 served: a rotation now gives app_b a new password and cuts off the clients that \
                 still use them; wait until then, or rotate with --force"
                    .into(),
            ),
            (
                CoreError::Conflict(Conflict::PreviousInGrace {
                    path: p(),
                    previous: 2,
                    role: "app_b".into(),
                    until: Some(t),
                }),
                format!(
                    "the previous credentials of app/dev/db (version 2, role app_b) are still \
                     served until {}: a rotation now gives app_b a new password and cuts off the \
                     clients that still use them; wait until then, or rotate with --force",
                    format_time_ms(t)
                ),
            ),
            (
                CoreError::Conflict(Conflict::CheckAndSetMany {
                    changed: vec!["a (at version 2, not 1)".into(), "b".into()],
                }),
                "check-and-set failed, nothing written: a (at version 2, not 1), b".into(),
            ),
            (
                CoreError::Conflict(Conflict::Write(Box::new(Conflict::Store("x moved".into())))),
                "write conflict: x moved".into(),
            ),
            (
                CoreError::from(StoreError::Conflict("x moved".into())),
                "x moved".into(),
            ),
            (
                CoreError::Conflict(Conflict::Copy {
                    from: p(),
                    cause: Box::new(Conflict::Store("x moved".into())),
                }),
                "app/dev/db changed during the copy, nothing written: x moved".into(),
            ),
            (
                CoreError::NotFound(NotFound::Role {
                    role: "app_a".into(),
                }),
                "PostgreSQL has no role app_a: create it (CREATE ROLE app_a LOGIN IN ROLE \
                 <group>) or let coffer create it (--create-roles)"
                    .into(),
            ),
        ];
        let weak = InvalidInput::TooWeak {
            what: "field \"pw\" of app/dev/db".into(),
            bits: 27.6,
            pattern: "app/**".into(),
            min: 64,
            why: ": a common password".into(),
            path: p(),
        };
        let weak_text = "the value of field \"pw\" of app/dev/db is too weak: about 28 bits where \
                         the lifecycle rule app/** requires 64: a common password; generate one \
                         with `coffer set app/dev/db --generate`";
        cases.push((CoreError::Invalid(weak.clone()), weak_text.into()));
        cases.push((
            CoreError::Invalid(InvalidInput::Weak {
                refusals: vec![weak.clone(), weak],
            }),
            format!("nothing written: {weak_text}; {weak_text}"),
        ));
        cases.push((
            CoreError::Invalid(InvalidInput::TooManyToScan {
                prefix: "app/".into(),
                limit: 100_000,
            }),
            "more than 100000 secrets under \"app/\"; name a narrower prefix".into(),
        ));
        cases.extend([
            (
                CoreError::LoginFailed(LoginRefused),
                "login failed: wrong user name, password or one-time code".to_string(),
            ),
            (
                CoreError::RateLimited(Busy::LoginPaced { pace_seconds: 5 }),
                "too many failed logins for this account: one attempt every 5 seconds; try again \
                 shortly"
                    .into(),
            ),
            (
                CoreError::RateLimited(Busy::Unsealing),
                "another unseal attempt is in progress; try again shortly, or unseal from the \
                 server machine"
                    .into(),
            ),
            (
                CoreError::InvalidUnsealKey(UnsealRefusal::SourceFull { threshold: 3 }),
                "this address already has 3 unseal key(s) pending; reset them (unseal --reset) to \
                 start again"
                    .into(),
            ),
            (
                CoreError::InvalidUnsealKey(UnsealRefusal::TooManyPending),
                "too many unseal keys are pending; their senders must reset them (unseal \
                 --reset), or unseal from this machine"
                    .into(),
            ),
            (
                CoreError::InvalidUnsealKey(UnsealRefusal::WrongKeys),
                "the unseal keys provided so far do not unseal this coffer; they are kept, so the \
                 right further key can still complete it (reset withdraws this address's keys)"
                    .into(),
            ),
        ]);
        cases.extend([
            (
                CoreError::Forbidden(Refusal::NotGranted {
                    capability: "list",
                    target: String::new(),
                }),
                "permission denied: no policy of this token grants list on /".to_string(),
            ),
            (
                CoreError::Forbidden(Refusal::NotGranted {
                    capability: "read",
                    target: p(),
                }),
                "permission denied: no policy of this token grants read on app/dev/db".into(),
            ),
            (
                CoreError::Forbidden(Refusal::Protected { target: p() }),
                "permission denied: app/dev/db is in a protected environment: people cannot read \
                 its value (a service token can; for an emergency, `coffer breakglass`)"
                    .into(),
            ),
            (
                CoreError::Forbidden(Refusal::Writes {
                    paths: vec!["a/b".into(), "a/c".into()],
                }),
                "permission denied: write refused on a/b, a/c".into(),
            ),
            (
                CoreError::Forbidden(Refusal::Reads {
                    paths: vec!["a/b".into(), "a/c".into()],
                }),
                "permission denied: read refused on a/b, a/c".into(),
            ),
            (
                CoreError::Forbidden("your policies deny a/b".to_string().into()),
                "permission denied: your policies deny a/b".into(),
            ),
        ]);
        cases.extend([
            (
                CoreError::Invalid(InvalidInput::Reserved {
                    what: "a display name".into(),
                    reserved: "root",
                }),
                "a display name cannot be \"root\" or look like it: coffer writes that name for \
                 its own actions"
                    .to_string(),
            ),
            (
                CoreError::Invalid(InvalidInput::CredentialShaped {
                    what: "a reason".into(),
                }),
                "a reason contains what looks like a coffer token or invitation code (cft_..., \
                 cfi_... or cfs_...); credentials never belong there (it is not shown)"
                    .into(),
            ),
            (
                CoreError::Invalid(InvalidInput::BackupFormat {
                    format: 2,
                    reads: 1,
                }),
                "backup format 2 is not supported by this coffer (it reads format 1)".into(),
            ),
            (
                CoreError::Invalid(InvalidInput::BackupTruncated {
                    what: "no end".into(),
                }),
                "the backup is truncated (no end)".into(),
            ),
        ]);
        let pg = || coffer_pgroles::Error("permission denied to alter role".into());
        cases.extend([
            (
                CoreError::Corrupt(Integrity::Failed(Record::Version {
                    path: p(),
                    version: 3,
                })),
                "integrity check failed: version 3 of app/dev/db failed its integrity check"
                    .to_string(),
            ),
            (
                CoreError::Corrupt(Integrity::Unreadable(Record::LifecycleState { path: p() })),
                "integrity check failed: the lifecycle state of app/dev/db is unreadable".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Unreadable(Record::SealConfig)),
                "integrity check failed: seal configuration is unreadable".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Missing(Record::SealConfig)),
                "integrity check failed: seal configuration is missing".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Missing(Record::WrappedRoot)),
                "integrity check failed: the wrapped root key is missing".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Missing(Record::WrappedKeyring)),
                "integrity check failed: the wrapped keyring is missing".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Failed(Record::Keyring)),
                "integrity check failed: the stored keyring failed its integrity check".into(),
            ),
            (
                CoreError::Corrupt(Integrity::KeyringRolledBack),
                "integrity check failed: the stored keyring is older than the one in memory".into(),
            ),
            (
                CoreError::Corrupt(Integrity::ValueEncoding),
                "integrity check failed: sealed value has an unknown encoding".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Unreadable(Record::KeyringUsage)),
                "integrity check failed: the keyring usage record is unreadable".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Unreadable(Record::User)),
                "integrity check failed: a user record is unreadable".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Unreadable(Record::Invitation)),
                "integrity check failed: an invitation record is unreadable".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Unreadable(Record::TotpSeed)),
                "integrity check failed: a TOTP seed is unreadable".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Failed(Record::TotpSeed)),
                "integrity check failed: a TOTP seed failed its integrity check".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Unreadable(Record::Protected {
                    prefix: "prod/**".into(),
                })),
                "integrity check failed: protected prefix prod/** is unreadable".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Unreadable(Record::Breakglass {
                    key: "k1".into(),
                })),
                "integrity check failed: break-glass grant k1 is unreadable".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Unreadable(Record::Policy { name: "ops".into() })),
                "integrity check failed: policy ops is unreadable".into(),
            ),
            (
                CoreError::Corrupt(Integrity::Unreadable(Record::Rule {
                    pattern: "app/**".into(),
                })),
                "integrity check failed: lifecycle rule app/** is unreadable".into(),
            ),
            (
                CoreError::Corrupt(Integrity::StoredPattern {
                    what: "lifecycle rule",
                    cause: coffer_policy::PatternError("bad pattern".into()),
                }),
                "integrity check failed: stored lifecycle rule is unreadable: bad pattern".into(),
            ),
            (
                CoreError::Corrupt(Integrity::InvalidRule {
                    pattern: "app/**".into(),
                    cause: Box::new(CoreError::Invalid(InvalidInput::EmptyRule)),
                }),
                "integrity check failed: lifecycle rule app/** is invalid: a lifecycle rule must \
                 set at least one of min_bits, rotate_every, generator, grace"
                    .into(),
            ),
        ]);
        cases.extend([
            (
                CoreError::Upstream(UpstreamFailure::Postgres(pg())),
                "PostgreSQL: permission denied to alter role".to_string(),
            ),
            (
                CoreError::Upstream(UpstreamFailure::NoCreateRole {
                    admin: "admin".into(),
                }),
                "PostgreSQL: the administrator admin may not change roles (it needs CREATEROLE)"
                    .into(),
            ),
            (
                CoreError::Upstream(UpstreamFailure::CreateRoles {
                    cause: pg(),
                    created: vec![],
                }),
                "PostgreSQL: permission denied to alter role".into(),
            ),
            (
                CoreError::Upstream(UpstreamFailure::CreateRoles {
                    cause: pg(),
                    created: vec!["app_a".into(), "app_b".into()],
                }),
                "PostgreSQL: permission denied to alter role (created before the failure: app_a, \
                 app_b)"
                    .into(),
            ),
            (
                CoreError::Upstream(UpstreamFailure::FirstPassword {
                    cause: pg(),
                    path: p(),
                    undo: None,
                }),
                "PostgreSQL: permission denied to alter role; app/dev/db was not created".into(),
            ),
            (
                CoreError::Upstream(UpstreamFailure::FirstPassword {
                    cause: pg(),
                    path: p(),
                    undo: Some(Box::new(CoreError::Sealed)),
                }),
                "PostgreSQL: permission denied to alter role; app/dev/db was written but could \
                 not be removed again (coffer is sealed): destroy it"
                    .into(),
            ),
            (
                CoreError::Upstream(UpstreamFailure::RotatePassword {
                    cause: pg(),
                    path: p(),
                    staged: 5,
                    undo: None,
                }),
                "PostgreSQL: permission denied to alter role; app/dev/db is unchanged".into(),
            ),
            (
                CoreError::Upstream(UpstreamFailure::RotatePassword {
                    cause: pg(),
                    path: p(),
                    staged: 5,
                    undo: Some(Box::new(CoreError::Sealed)),
                }),
                "PostgreSQL: permission denied to alter role; version 5 of app/dev/db stays \
                 pending (coffer is sealed): cancel it with `coffer rotate app/dev/db --cancel`"
                    .into(),
            ),
            (
                CoreError::Upstream(UpstreamFailure::StagedOnly {
                    cause: Box::new(CoreError::Upstream(UpstreamFailure::Postgres(pg()))),
                    role: "app_b".into(),
                    staged: 5,
                    path: p(),
                }),
                "PostgreSQL: permission denied to alter role; the new password of app_b is set \
                 and staged as version 5: finish with `coffer promote app/dev/db`"
                    .into(),
            ),
            (
                CoreError::Upstream(UpstreamFailure::StagedOnly {
                    cause: Box::new(CoreError::Conflict(Conflict::NothingToCancel { path: p() })),
                    role: "app_b".into(),
                    staged: 5,
                    path: p(),
                }),
                "app/dev/db has no pending version to cancel; the new password of app_b is set \
                 and staged as version 5: finish with `coffer promote app/dev/db`"
                    .into(),
            ),
        ]);
        let inv = |i: InvalidInput| CoreError::Invalid(i);
        let (day, hour) = (24 * 3600 * 1000, 3600 * 1000);
        cases.extend([
            (
                inv(InvalidInput::FieldNameLength { max: 256 }),
                "field names must be 1 to 256 bytes long".to_string(),
            ),
            (
                inv(InvalidInput::FieldNameControl),
                "field names cannot contain control characters".into(),
            ),
            (
                inv(InvalidInput::Duration(
                    crate::duration::DurationError::TooLong,
                )),
                "durations are limited to ten years".into(),
            ),
            (
                inv(InvalidInput::Shares),
                "shares and threshold must satisfy 1 <= threshold <= shares <= 255".into(),
            ),
            (
                inv(InvalidInput::Pattern(coffer_policy::PatternError(
                    "bad pattern".into(),
                ))),
                "bad pattern".into(),
            ),
            (
                inv(InvalidInput::LooksLikeRoot {
                    name: "Root".into(),
                    root: "root",
                }),
                "policy name \"Root\" looks like \"root\", the built-in policy that grants \
                 everything; choose another name"
                    .into(),
            ),
            (
                inv(InvalidInput::RootBuiltIn),
                "root is built in and cannot be deleted".into(),
            ),
            (
                inv(InvalidInput::NoPolicies),
                "give at least one policy".into(),
            ),
            (
                inv(InvalidInput::UnknownPolicy {
                    shown: "ops".into(),
                }),
                "no policy named ops".into(),
            ),
            (
                inv(InvalidInput::Network {
                    shown: "10.0.0.0/33".into(),
                }),
                "10.0.0.0/33 is not a network in CIDR notation (like 10.0.0.0/8 or \
                 2001:db8::/32)"
                    .into(),
            ),
            (
                inv(InvalidInput::UseLimitedParent),
                "a use-limited token cannot create other tokens".into(),
            ),
            (
                inv(InvalidInput::MaxTtlBelowTtl {
                    max_ms: hour,
                    ttl_ms: day,
                }),
                format!(
                    "max ttl ({}) is shorter than ttl ({})",
                    crate::duration::format_duration_ms(hour),
                    crate::duration::format_duration_ms(day)
                ),
            ),
            (
                inv(InvalidInput::ParentExpired),
                "the parent token has expired".into(),
            ),
            (
                inv(InvalidInput::ZeroUses),
                "uses must be at least 1 (leave it out for unlimited)".into(),
            ),
            (
                inv(InvalidInput::Accessor { shown: "x".into() }),
                "x is not a token accessor (they look like acc_...)".into(),
            ),
            (
                inv(InvalidInput::NotRenewable),
                "this token does not expire, so there is nothing to renew".into(),
            ),
            (
                inv(InvalidInput::MaxTtlReached),
                "this token has reached its max ttl and cannot be renewed".into(),
            ),
            (
                inv(InvalidInput::BreakglassEverything),
                "break-glass covers one secret or one folder, not everything".into(),
            ),
            (
                inv(InvalidInput::BreakglassReason),
                "say why (a reason of at least 4 characters)".into(),
            ),
            (
                inv(InvalidInput::BreakglassTtl { max_ms: 4 * hour }),
                format!(
                    "break-glass lasts at most {}",
                    crate::duration::format_duration_ms(4 * hour)
                ),
            ),
            (
                inv(InvalidInput::BreakglassForService),
                "only people need break-glass: service tokens are not limited by protected \
                 environments"
                    .into(),
            ),
            (
                inv(InvalidInput::NotProtected { target: p() }),
                "app/dev/db is not in a protected environment; no break-glass is needed".into(),
            ),
            (
                inv(InvalidInput::BackupAbandoned),
                "the backup was abandoned".into(),
            ),
            (
                inv(InvalidInput::BackupRead(std::sync::Arc::new(
                    std::io::Error::other("gone"),
                ))),
                "cannot read the backup: gone".into(),
            ),
        ]);
        cases.extend([
            (
                inv(InvalidInput::AdminIsManaged),
                "the administrator secret must be another secret than the managed one".to_string(),
            ),
            (
                inv(InvalidInput::RoleName(coffer_pgroles::Error(
                    "bad role name".into(),
                ))),
                "bad role name".into(),
            ),
            (
                inv(InvalidInput::RoleNameHidden),
                "a role name is not one coffer manages: use 1 to 63 lowercase letters, digits and \
                 _, starting with a letter or _ (the name is not shown)"
                    .into(),
            ),
            (
                inv(InvalidInput::SameRoles),
                "give two different roles: they take turns".into(),
            ),
            (
                inv(InvalidInput::GroupWithoutCreate),
                "a group (member_of) applies only to roles coffer creates (create_roles)".into(),
            ),
            (
                inv(InvalidInput::ConnectUrl),
                "the connect URL must be a postgres:// URL without a user or password (coffer \
                 adds the role's)"
                    .into(),
            ),
            (
                inv(InvalidInput::AdminOwnRole {
                    role: "admin".into(),
                }),
                "admin is the administrator's own role; coffer manages other roles".into(),
            ),
            (
                inv(InvalidInput::Superuser {
                    role: "app_a".into(),
                }),
                "app_a is a superuser: coffer does not hand out superuser credentials".into(),
            ),
            (
                inv(InvalidInput::AdminNoUrl { admin: p() }),
                "the administrator secret app/dev/db has no field \"url\"".into(),
            ),
            (
                inv(InvalidInput::AdminUrl { admin: p() }),
                "the administrator secret app/dev/db must hold a postgres:// URL (or fields url \
                 and password)"
                    .into(),
            ),
            (
                inv(InvalidInput::ManagedValue { path: p() }),
                "app/dev/db holds the credentials of PostgreSQL roles: coffer generates their \
                 passwords (give a generator with --generate, not a value)"
                    .into(),
            ),
            (
                inv(InvalidInput::ForceUnmanaged),
                "--force applies only to secrets that manage PostgreSQL roles".into(),
            ),
            (
                inv(InvalidInput::ValueAndGenerator),
                "give either a value or a generator, not both".into(),
            ),
            (
                inv(InvalidInput::NoGenerator { path: p() }),
                "no generator applies to app/dev/db: give one (`--generate base64:32`), the new \
                 value on stdin, or a lifecycle rule with a generator"
                    .into(),
            ),
            (
                inv(InvalidInput::NoRuleGenerator { path: p() }),
                "no generator applies to app/dev/db".into(),
            ),
            (
                inv(InvalidInput::TwoEnvironments),
                "name two environments, such as app/staging and app/prod".into(),
            ),
            (
                inv(InvalidInput::UserName(UserNameError::Character('!'))),
                "a user name may contain only letters, digits and . _ - @ (found U+0021)".into(),
            ),
            (
                inv(InvalidInput::UserName(UserNameError::CredentialShaped)),
                "a user name cannot look like a coffer token or invitation code (cft_..., \
                 cfi_... or cfs_...); the name given is not shown"
                    .into(),
            ),
            (
                inv(InvalidInput::UserName(UserNameError::TooLong { max: 64 })),
                "a user name is at most 64 characters".into(),
            ),
            (
                inv(InvalidInput::InviteTtl { max_ms: 30 * day }),
                format!(
                    "an invitation lasts at most {}",
                    crate::duration::format_duration_ms(30 * day)
                ),
            ),
            (
                inv(InvalidInput::InviteCode),
                "this invitation code is invalid, expired or already used".into(),
            ),
            (
                inv(InvalidInput::PasswordHash),
                "the password could not be hashed".into(),
            ),
            (
                inv(InvalidInput::PasswordCheck),
                "password check failed".into(),
            ),
            (
                inv(InvalidInput::PasswordTooLong),
                "that password is too long".into(),
            ),
            (
                inv(InvalidInput::NothingToChange),
                "nothing to change: give policies or reset the one-time codes".into(),
            ),
            (
                inv(InvalidInput::TotpPeopleOnly),
                "one-time codes belong to people; log in with `coffer login` first".into(),
            ),
            (
                inv(InvalidInput::TotpNotSetUp),
                "one-time codes are not set up; run `coffer totp enable` first".into(),
            ),
            (
                inv(InvalidInput::TotpCode),
                "that one-time code is wrong or was already used".into(),
            ),
        ]);
        // Causes of other crates render as they did when their text was
        // copied in.
        let policy = coffer_policy::Policy::parse("path {").unwrap_err();
        cases.push((
            inv(InvalidInput::Policy {
                name: "ops".into(),
                cause: policy.clone(),
            }),
            format!("policy ops: {policy}"),
        ));
        let spec = coffer_crypto::generate::Spec::parse("nonsense:0").unwrap_err();
        cases.push((inv(InvalidInput::Generator(spec.clone())), spec.to_string()));
        let weak_password = coffer_crypto::password::check_password_policy("a").unwrap_err();
        let weak_text = weak_password.to_string();
        cases.push((
            inv(InvalidInput::Password(std::sync::Arc::new(weak_password))),
            weak_text,
        ));
        let split = coffer_crypto::shamir::split(&[1; 32], 2, 3).unwrap_err();
        cases.push((inv(InvalidInput::Split(split.clone())), split.to_string()));
        for (error, expected) in cases {
            assert_eq!(error.to_string(), expected);
        }
    }
}

/// Why a machine login was refused. Each says what was wrong with the
/// presented JWT, never the JWT, its signature or a claim's value: the
/// same text goes to the caller and to the audit record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadRefusal {
    /// The JWT is larger than coffer accepts.
    #[error("the JWT is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// Not three base64url parts with a JSON header.
    #[error("the JWT is malformed")]
    Malformed,
    /// `none`, an HMAC algorithm, or anything else but the three accepted.
    #[error("the JWT's algorithm {shown} is not accepted (only RS256, ES256 and EdDSA are)")]
    Algorithm { shown: String },
    /// No role of that name.
    #[error("no JWT role named {shown}")]
    UnknownRole { shown: String },
    /// The JWT names a key the issuer does not publish (after the refetch
    /// allowed).
    #[error("the JWT's key id is not among the issuer's keys")]
    UnknownKey,
    /// The issuer's keys could not be fetched.
    #[error("the issuer's keys could not be fetched: {detail}")]
    KeysUnavailable { detail: String },
    /// The issuer's keys could not be refreshed, and the cached ones are
    /// past the bound on how long they may be used without a successful
    /// fetch.
    #[error(
        "the issuer's keys could not be refreshed and the cached ones were last fetched more than {max_secs} seconds ago"
    )]
    KeysTooOld { max_secs: u64 },
    /// The signature does not verify with the issuer's key.
    #[error("the JWT's signature does not verify")]
    BadSignature,
    /// `iss` is not the role's issuer.
    #[error("the JWT's issuer is not the role's issuer")]
    WrongIssuer,
    /// `aud` does not contain the role's audience.
    #[error("the JWT's audience does not include the role's audience")]
    WrongAudience,
    /// `exp` has passed (beyond the allowed clock skew).
    #[error("the JWT has expired")]
    Expired,
    /// `nbf` is still ahead (beyond the allowed clock skew).
    #[error("the JWT is not valid yet")]
    NotYetValid,
    /// `iat` is ahead (beyond the allowed clock skew).
    #[error("the JWT was issued in the future")]
    IssuedInFuture,
    /// `exp` is further from `iat` (or now) than coffer accepts.
    #[error("the JWT lives longer than {max_secs} seconds")]
    LifetimeTooLong { max_secs: i64 },
    /// A registered claim coffer requires is missing.
    #[error("the JWT has no {claim} claim")]
    MissingRegistered { claim: String },
    /// A claim the role binds is missing.
    #[error("the JWT has no claim {claim}, which the role binds")]
    MissingClaim { claim: String },
    /// A claim the role binds has a value the role does not allow.
    #[error("claim {claim} is not allowed by the role")]
    ClaimNotAllowed { claim: String },
}

/// Why a JWT role cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtRoleProblem {
    /// A role name outside the rules.
    #[error(
        "role name {shown} is invalid: 1 to 64 letters, digits, `_`, `-` or `.`, not starting with `.`"
    )]
    Name { shown: String },
    /// A role must bind at least one claim.
    #[error(
        "a JWT role must bind at least one claim (--bound CLAIM=VALUE or --bound-glob CLAIM=PATTERN)"
    )]
    NoBoundClaims,
    /// A preset (or its shared issuer) requires a claim to be bound.
    #[error(
        "the {preset} issuer requires claim {claim} to be bound to one owner's names (exact values, or globs such as owner/*)"
    )]
    PresetNeedsClaim {
        preset: &'static str,
        claim: &'static str,
    },
    /// A GitHub role pins no repository: neither `repository` to one
    /// owner's names nor a numeric repository or owner ID.
    #[error(
        "the github issuer requires claim repository to be bound to one owner's names (exact values, or globs such as owner/*), or repository_id or repository_owner_id to exact numeric IDs"
    )]
    GithubNeedsRepository,
    /// A numeric ID claim bound by something other than exact decimal
    /// numbers (a glob, or a value with anything but digits).
    #[error(
        "claim {claim} is a numeric ID: bind it exactly to decimal digits (--bound {claim}=123456), never with a glob"
    )]
    NumericId { claim: &'static str },
    /// A shared issuer's role binds its repository (project) but nothing
    /// that narrows it further.
    #[error(
        "the {preset} issuer requires a second binding besides {first} that names something (an exact value, or a glob with a literal start in its segment such as refs/tags/v*, not refs/*): bind one of {}",
        choices.join(", ")
    )]
    NeedsSecondBinding {
        preset: &'static str,
        first: &'static str,
        choices: &'static [&'static str],
    },
    /// A field the role needs is missing.
    #[error("a JWT role needs {what}")]
    Missing { what: &'static str },
    /// More than one way to find keys was given.
    #[error("give one of a JWKS URL, a JWKS file or OIDC discovery, not several")]
    KeySources,
    /// A URL coffer will not fetch.
    #[error("{what} {shown} is not usable: {why}")]
    Url {
        what: &'static str,
        shown: String,
        why: &'static str,
    },
    /// A JWKS given at write time is not usable.
    #[error("the JWKS is not usable: {why}")]
    Jwks { why: String },
    /// A claim name or value outside the rules.
    #[error("bound claim {shown} is invalid: {why}")]
    Claim { shown: String, why: &'static str },
    /// Too many bound claims or values.
    #[error("at most {limit} bound claims, and {limit} values for each")]
    TooMany { limit: usize },
    /// The role's TTL is over the maximum.
    #[error("a JWT role's ttl is at most {max}")]
    TtlTooLong { max: &'static str },
    /// An issuer or audience outside the rules.
    #[error("{what} is invalid: {why}")]
    Field {
        what: &'static str,
        why: &'static str,
    },
}
