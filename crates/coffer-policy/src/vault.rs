//! Vault ACL policies: translation to coffer policies, and back.
//!
//! Vault and OpenBao write policies in the same HCL shape as coffer, but
//! over their own paths (`secret/data/app/*`, `secret/metadata/app/*`,
//! `sys/policies/acl/*`, ...), with their own capabilities (`create read
//! update patch delete list sudo deny`) and their own rule for overlapping
//! patterns (the most specific pattern alone applies, where coffer takes the
//! union of every matching rule and lets `deny` win). [`translate`] turns a
//! Vault policy into the coffer [`Policy`] that allows exactly the same
//! requests through coffer's Vault-compatible API, and refuses, naming the
//! line, every rule it cannot express exactly: it never widens a grant, and
//! it does not silently narrow one either. [`render`] goes the other way and
//! refuses a coffer policy that Vault's syntax cannot express; what it
//! renders translates back to the same policy.
//!
//! # Mounts
//!
//! A KV version 2 [`Mount`] has a name (the first segment of Vault paths,
//! `secret` by default) and a coffer prefix: the folder of coffer paths the
//! mount shows. The default mount `secret` shows the whole tree, so the
//! Vault path `secret/data/app/dev/db` is the coffer secret `app/dev/db`. A
//! mount with prefix `team/` shows `team/...` only. [`Mounts`] refuses two
//! mounts whose prefixes overlap (so a mount at the root must be the only
//! one): every coffer path has at most one Vault name, which keeps both
//! directions exact.
//!
//! # The mapping
//!
//! A Vault pattern `MOUNT/KIND/REST` names the coffer pattern `PREFIX` +
//! `REST` (the same wildcards: `+` is one segment, a trailing `*` any
//! suffix; a `*` anywhere else is refused, since Vault reads it literally).
//! `MOUNT/+/REST` and `MOUNT/*` stand for all five kinds. Each Vault
//! capability on a kind is one of these coffer permissions on the path:
//!
//! | Vault rule                           | what it allows                        | coffer capability            |
//! |--------------------------------------|---------------------------------------|------------------------------|
//! | `data/P` `read`                      | read a value                          | `read` (with metadata read)  |
//! | `data/P` `create` / `update`         | write the first / a later version     | `create` / `update`          |
//! | `data/P` `patch`                     | merge fields into the value           | `read` + `update`            |
//! | `data/P` `delete`, `delete/P` `update`, `undelete/P` `update` | soft-delete and undelete | `delete`  |
//! | `destroy/P` `update`                 | destroy versions                      | `destroy`                    |
//! | `metadata/P` `delete`                | destroy every version                 | `destroy` + metadata read    |
//! | `metadata/P` `read`                  | read metadata and version history     | `read` or `list`             |
//! | `metadata/F/` `list`                 | list a folder                         | `list`                       |
//!
//! The right column bundles what Vault keeps apart, so a Vault policy
//! translates only when it grants the whole bundle on the same path: coffer's
//! `read` also shows the secret's metadata, so `secret/data/app/*` `read`
//! needs `secret/metadata/app/*` `read` beside it; coffer's `delete` is
//! Vault's `data` `delete` with `delete/` and `undelete/` `update`; coffer's
//! `list` on a wildcard pattern both lists folders and reads metadata, so it
//! needs both `read` and `list` on `metadata/`. The error names the missing
//! grants. `patch` is what `read` and `update` do in one request: a policy
//! with both allows it whether or not it says `patch`, and `patch` without
//! both is refused. Capabilities no KV v2 request of that kind uses (`list`
//! on `data/`, `sudo`, `read` on `delete/`, `create` on `delete/`,
//! `undelete/`, `destroy/` (Vault checks `update` there), and `create`,
//! `update` and `patch` on `metadata/`, whose settings coffer's API does not
//! keep) are accepted and grant nothing.
//!
//! `deny` in coffer covers a path's value and metadata alike, so a `deny`
//! translates only when it covers all five kinds of the same path (write it
//! as `secret/+/REST` or one rule per kind) and nothing on that path is
//! granted; a `deny` whose
//! pattern could also match coffer's `sys/` targets (a root mount's
//! `secret/+/*`) is refused, since coffer would deny administration too.
//!
//! Outside the mounts:
//!
//! * `sys/policies/acl/REST` and `sys/policy/REST` are coffer's `admin` on
//!   `sys/policies/REST` when they grant `create`, `read`, `update` and
//!   `delete` (and `list` where the pattern covers the listing), since
//!   coffer's `admin` allows all of them; or `deny`.
//! * The paths every coffer token may use on itself (`auth/token/lookup-self`,
//!   `renew-self`, `revoke-self`, `create`, `sys/capabilities-self`,
//!   `sys/internal/ui/mounts[/*]`, `sys/mounts`) need no rule: a grant there
//!   adds nothing, and a `deny` is refused, since coffer cannot take them
//!   away.
//! * Every other path (other engines, other auth methods, `sys/` beyond the
//!   above, a first segment that is no mount) is refused.
//!
//! # Overlapping patterns
//!
//! Where two translated patterns can match the same target and grant
//! different capabilities, Vault applies only the more specific one (by its
//! priority rules: a later first wildcard, no trailing `*`, fewer `+`, a
//! longer pattern), coffer the union. The translation accepts the pair only
//! when both agree: the more specific rule is a `deny`, or grants at least
//! everything the broader one does. Otherwise it refuses, naming both lines.
//! This holds within one policy. A token's policies are merged in both
//! systems, but coffer's `deny` wins across policies, so a `deny` also
//! overrides a more specific grant in another policy of the same token.
//!
//! Translation keeps coffer's meaning of each capability for coffer's own
//! operations that Vault lacks (`update` also sets a secret's expiry).

use std::collections::HashMap;
use std::fmt;

use crate::parse::{BlockStart, PatternText, parse_blocks};
use crate::pattern::{PatternFault, quote};
use crate::{Capabilities, Capability, Pattern, Policy, PolicyError, Rule};

/// One KV version 2 mount: its Vault name and the coffer folder it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    name: String,
    prefix: String,
}

/// Why a mount or a set of mounts is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// The name is not one segment of letters, digits, `-`, `_`, `.`.
    #[error(
        "mount name {} must be one segment of ASCII letters, digits, '-', '_' and '.', at most 64 bytes",
        quote(.0)
    )]
    Name(String),
    /// The name is one of Vault's own top-level paths.
    #[error("mount name {} is reserved (Vault uses it for its own paths)", quote(.0))]
    Reserved(String),
    /// The prefix is not `""` or a folder such as `team/kv/`.
    #[error(
        "mount prefix {} must be empty (the whole tree) or a coffer folder such as \"team/\"",
        quote(.0)
    )]
    Prefix(String),
    /// Two mounts have the same name.
    #[error("mount {} is configured twice", quote(.0))]
    Duplicate(String),
    /// Two mounts' prefixes overlap.
    #[error(
        "mounts {} and {} show overlapping coffer paths ({} and {}); give each its own folder",
        quote(.first),
        quote(.second),
        quote(.first_prefix),
        quote(.second_prefix)
    )]
    Overlap {
        /// The first mount's name.
        first: String,
        /// Its prefix.
        first_prefix: String,
        /// The second mount's name.
        second: String,
        /// Its prefix.
        second_prefix: String,
    },
    /// No mount at all.
    #[error("at least one mount is needed")]
    Empty,
}

const RESERVED_MOUNTS: [&str; 5] = ["sys", "auth", "identity", "cubbyhole", "v1"];

impl Mount {
    /// A mount named `name` that shows the coffer folder `prefix` (`""` for
    /// the whole tree, or segments followed by `/`).
    pub fn new(name: &str, prefix: &str) -> Result<Mount, MountError> {
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && name != "."
            && name != "..";
        if !name_ok {
            return Err(MountError::Name(name.to_owned()));
        }
        if RESERVED_MOUNTS.contains(&name) {
            return Err(MountError::Reserved(name.to_owned()));
        }
        if !prefix.is_empty() {
            let folder = prefix
                .strip_suffix('/')
                .filter(|body| !body.is_empty() && !body.contains(['*', '+']))
                .and_then(|body| Pattern::parse(body).ok())
                .is_some_and(|p| p.may_match_secret() && !p.may_match_folder());
            if !folder {
                return Err(MountError::Prefix(prefix.to_owned()));
            }
        }
        Ok(Mount {
            name: name.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The mount's name, the first segment of its Vault paths.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The coffer folder it shows (`""` for the whole tree).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The coffer path of `rest`, a path relative to the mount.
    pub fn coffer_path(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// The path relative to the mount of a coffer path, if the mount shows
    /// it.
    pub fn relative<'a>(&self, coffer_path: &'a str) -> Option<&'a str> {
        coffer_path.strip_prefix(self.prefix.as_str())
    }
}

/// The configured KV version 2 mounts (at least one; prefixes disjoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounts(Vec<Mount>);

impl Mounts {
    /// Checks a list of mounts: names distinct, prefixes disjoint.
    pub fn new(mounts: Vec<Mount>) -> Result<Mounts, MountError> {
        if mounts.is_empty() {
            return Err(MountError::Empty);
        }
        for (i, a) in mounts.iter().enumerate() {
            for b in &mounts[i + 1..] {
                if a.name == b.name {
                    return Err(MountError::Duplicate(a.name.clone()));
                }
                if a.prefix.starts_with(&b.prefix) || b.prefix.starts_with(&a.prefix) {
                    return Err(MountError::Overlap {
                        first: a.name.clone(),
                        first_prefix: a.prefix.clone(),
                        second: b.name.clone(),
                        second_prefix: b.prefix.clone(),
                    });
                }
            }
        }
        Ok(Mounts(mounts))
    }

    /// The mounts, in configured order.
    pub fn iter(&self) -> impl Iterator<Item = &Mount> {
        self.0.iter()
    }

    /// The mount of this name.
    pub fn get(&self, name: &str) -> Option<&Mount> {
        self.0.iter().find(|m| m.name == name)
    }

    /// The mount that shows a coffer path (or pattern), and the path
    /// relative to it.
    pub fn for_coffer_path<'a>(&self, coffer_path: &'a str) -> Option<(&Mount, &'a str)> {
        self.0
            .iter()
            .find_map(|m| m.relative(coffer_path).map(|rest| (m, rest)))
    }
}

impl Default for Mounts {
    /// One mount, `secret`, showing the whole tree.
    fn default() -> Mounts {
        Mounts(vec![Mount {
            name: "secret".to_owned(),
            prefix: String::new(),
        }])
    }
}

/// A coffer policy [`render`] cannot write in Vault's syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {}: {message}", quote(.pattern))]
pub struct RenderError {
    /// The coffer pattern of the rule.
    pub pattern: String,
    /// Why it has no Vault form.
    pub message: String,
}

// ---- Vault's side ----

/// The KV version 2 path kinds under a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    Metadata,
    Delete,
    Undelete,
    Destroy,
}

const KINDS: [Kind; 5] = [
    Kind::Data,
    Kind::Metadata,
    Kind::Delete,
    Kind::Undelete,
    Kind::Destroy,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Data => "data",
            Kind::Metadata => "metadata",
            Kind::Delete => "delete",
            Kind::Undelete => "undelete",
            Kind::Destroy => "destroy",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

const ALL_KINDS: u8 = 0b1_1111;
/// The "kind" of `sys/policies/...` patterns, for comparing patterns that
/// can match the same Vault path.
const POLICY_KIND: u8 = 0b1000_0000;

/// A Vault capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VaultCap {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    Sudo,
    Deny,
}

const VAULT_CAPS: [(&str, VaultCap); 8] = [
    ("create", VaultCap::Create),
    ("read", VaultCap::Read),
    ("update", VaultCap::Update),
    ("patch", VaultCap::Patch),
    ("delete", VaultCap::Delete),
    ("list", VaultCap::List),
    ("sudo", VaultCap::Sudo),
    ("deny", VaultCap::Deny),
];

fn parse_vault_cap(name: &str) -> Result<VaultCap, String> {
    if let Some((_, cap)) = VAULT_CAPS.iter().find(|(n, _)| *n == name) {
        return Ok(*cap);
    }
    let names: Vec<&str> = VAULT_CAPS.iter().map(|(n, _)| *n).collect();
    Err(format!(
        "unknown or unsupported Vault capability {}; expected one of {}",
        quote(name),
        names.join(", ")
    ))
}

/// What a Vault pattern names.
#[derive(Debug, Clone)]
enum Named {
    /// KV paths of these kinds (a bit set of [`Kind`]) matching a coffer
    /// pattern.
    Kv { kinds: u8, pattern: Pattern },
    /// Policies matching `sys/policies/REST`.
    Policies(Pattern),
    /// A path every coffer token may use on itself.
    SelfService,
}

/// A parsed Vault pattern: its text and what it names.
#[derive(Debug, Clone)]
struct VaultPattern {
    text: String,
    named: Named,
}

impl PatternText for VaultPattern {
    fn text(&self) -> &str {
        &self.text
    }
}

const SELF_SERVICE_PATHS: [&str; 8] = [
    "auth/token/lookup-self",
    "auth/token/renew-self",
    "auth/token/revoke-self",
    "auth/token/create",
    "sys/capabilities-self",
    "sys/internal/ui/mounts",
    "sys/internal/ui/mounts/*",
    "sys/mounts",
];

fn parse_vault_pattern(source: &str, mounts: &Mounts) -> Result<VaultPattern, PatternFault> {
    let base = usize::from(source.starts_with('/'));
    let text = &source[base..];
    let fault = |offset: usize, problem: String| PatternFault {
        offset: base + offset.min(text.len()),
        message: format!("Vault path {}: {problem}", quote(text)),
    };
    if crate::contains_credential(text) {
        return Err(PatternFault {
            offset: 0,
            message: "invalid pattern: it contains what looks like a coffer token or \
                      invitation code (cft_..., cfi_... or cfs_...); credentials never belong in a \
                      pattern (the pattern is not shown)"
                .to_owned(),
        });
    }
    // A `*` anywhere but the end is a literal character to Vault and a
    // wildcard to coffer: neither reading would be exact.
    if let Some(star) = text.find('*')
        && star + 1 != text.len()
    {
        return Err(fault(
            star,
            "`*` is a wildcard only at the end of a Vault path".to_owned(),
        ));
    }
    let named = |named| {
        Ok(VaultPattern {
            text: text.to_owned(),
            named,
        })
    };
    if SELF_SERVICE_PATHS.contains(&text) {
        return named(Named::SelfService);
    }
    for policies in ["sys/policies/acl/", "sys/policy/"] {
        if let Some(rest) = text.strip_prefix(policies) {
            let pattern = coffer_pattern("sys/policies/", rest)
                .map_err(|message| fault(policies.len(), message))?;
            return named(Named::Policies(pattern));
        }
    }
    let (first, after) = text.split_once('/').unwrap_or((text, ""));
    let Some(mount) = mounts.get(first) else {
        let mount_names: Vec<String> = mounts.iter().map(|m| quote(m.name())).collect();
        return Err(fault(
            0,
            format!(
                "coffer translates only its KV version 2 mounts ({}), sys/policies/acl/..., \
                 sys/policy/... and the paths every token may use on itself",
                mount_names.join(", ")
            ),
        ));
    };
    let rest_offset = first.len() + 1;
    if after == "*" {
        let pattern = coffer_pattern(mount.prefix(), "*").map_err(|m| fault(rest_offset, m))?;
        return named(Named::Kv {
            kinds: ALL_KINDS,
            pattern,
        });
    }
    let Some((kind_text, rest)) = after.split_once('/') else {
        return Err(fault(
            rest_offset,
            format!(
                "expected {0}/data/..., {0}/metadata/..., {0}/delete/..., {0}/undelete/..., \
                 {0}/destroy/..., {0}/+/... or {0}/*",
                mount.name()
            ),
        ));
    };
    let kinds = if kind_text == "+" {
        ALL_KINDS
    } else if let Some(kind) = KINDS.iter().find(|k| k.name() == kind_text) {
        kind.bit()
    } else {
        return Err(fault(
            rest_offset,
            format!(
                "{} is not a KV version 2 path; expected data, metadata, delete, undelete, \
                 destroy or +",
                quote(kind_text)
            ),
        ));
    };
    let pattern = coffer_pattern(mount.prefix(), rest)
        .map_err(|m| fault(rest_offset + kind_text.len() + 1, m))?;
    named(Named::Kv { kinds, pattern })
}

/// The coffer pattern `prefix` + `rest`.
fn coffer_pattern(prefix: &str, rest: &str) -> Result<Pattern, String> {
    if rest.starts_with('/') {
        return Err("empty segment (`//`)".to_owned());
    }
    Pattern::parse(&format!("{prefix}{rest}")).map_err(|e| e.0)
}

// ---- What each side allows on a path ----

/// Permissions on one coffer path through the Vault API (see the module
/// documentation's table), as bits.
type Atoms = u16;
const DATA_READ: Atoms = 1;
const DATA_CREATE: Atoms = 1 << 1;
const DATA_UPDATE: Atoms = 1 << 2;
const DATA_PATCH: Atoms = 1 << 3;
const DATA_DELETE: Atoms = 1 << 4;
const META_READ: Atoms = 1 << 5;
const META_LIST: Atoms = 1 << 6;
const SOFT_DELETE: Atoms = 1 << 7;
const UNDELETE: Atoms = 1 << 8;
const DESTROY_VERSIONS: Atoms = 1 << 9;
const META_DELETE: Atoms = 1 << 10;

/// Every permission that concerns a secret (rather than a folder).
const SECRET_ATOMS: Atoms = DATA_READ
    | DATA_CREATE
    | DATA_UPDATE
    | DATA_PATCH
    | DATA_DELETE
    | META_READ
    | SOFT_DELETE
    | UNDELETE
    | DESTROY_VERSIONS
    | META_DELETE;

/// How each permission is written in Vault: the kind and the capability.
const ATOM_NAMES: [(Atoms, Kind, &str); 11] = [
    (DATA_READ, Kind::Data, "read"),
    (DATA_CREATE, Kind::Data, "create"),
    (DATA_UPDATE, Kind::Data, "update"),
    (DATA_PATCH, Kind::Data, "patch"),
    (DATA_DELETE, Kind::Data, "delete"),
    (META_READ, Kind::Metadata, "read"),
    (META_LIST, Kind::Metadata, "list"),
    (SOFT_DELETE, Kind::Delete, "update"),
    (UNDELETE, Kind::Undelete, "update"),
    (DESTROY_VERSIONS, Kind::Destroy, "update"),
    (META_DELETE, Kind::Metadata, "delete"),
];

/// What a Vault capability on one kind allows.
fn vault_atoms(kind: Kind, cap: VaultCap) -> Atoms {
    match (kind, cap) {
        (Kind::Data, VaultCap::Read) => DATA_READ,
        (Kind::Data, VaultCap::Create) => DATA_CREATE,
        (Kind::Data, VaultCap::Update) => DATA_UPDATE,
        (Kind::Data, VaultCap::Patch) => DATA_PATCH,
        (Kind::Data, VaultCap::Delete) => DATA_DELETE,
        (Kind::Metadata, VaultCap::Read) => META_READ,
        (Kind::Metadata, VaultCap::List) => META_LIST,
        (Kind::Metadata, VaultCap::Delete) => META_DELETE,
        (Kind::Delete, VaultCap::Update) => SOFT_DELETE,
        (Kind::Undelete, VaultCap::Update) => UNDELETE,
        (Kind::Destroy, VaultCap::Update) => DESTROY_VERSIONS,
        _ => 0,
    }
}

/// The coffer capabilities the translation produces.
const KV_CAPS: [Capability; 6] = [
    Capability::Read,
    Capability::List,
    Capability::Create,
    Capability::Update,
    Capability::Delete,
    Capability::Destroy,
];

/// Which permissions a pattern's targets can have: those of secrets when it
/// can match a secret, the listing when it can match a folder.
fn relevant(pattern: &Pattern) -> Atoms {
    let mut mask = 0;
    if pattern.may_match_secret() {
        mask |= SECRET_ATOMS;
    }
    if pattern.may_match_folder() {
        mask |= META_LIST;
    }
    mask
}

/// What coffer capabilities allow through the Vault API on a pattern's
/// targets.
fn coffer_atoms(caps: Capabilities, pattern: &Pattern) -> Atoms {
    let mut atoms = 0;
    for cap in caps.iter() {
        atoms |= match cap {
            Capability::Read => DATA_READ | META_READ,
            Capability::List => META_READ | META_LIST,
            Capability::Create => DATA_CREATE,
            Capability::Update => DATA_UPDATE,
            Capability::Delete => DATA_DELETE | SOFT_DELETE | UNDELETE,
            Capability::Destroy => DESTROY_VERSIONS,
            _ => 0,
        };
    }
    if caps.contains(Capability::Read) && caps.contains(Capability::Update) {
        atoms |= DATA_PATCH;
    }
    // Deleting the metadata destroys every version the metadata lists.
    if caps.contains(Capability::Destroy)
        && (caps.contains(Capability::Read) || caps.contains(Capability::List))
    {
        atoms |= META_DELETE;
    }
    atoms & relevant(pattern)
}

fn describe_atoms(atoms: Atoms, mount: &str, rest: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (bit, kind, cap) in ATOM_NAMES {
        if atoms & bit != 0 {
            parts.push(format!("\"{cap}\" on \"{mount}/{}/{rest}\"", kind.name()));
        }
    }
    parts.join(", ")
}

// ---- Translation ----

/// The rules a policy names for one coffer pattern.
struct Group {
    pattern: Pattern,
    /// The Vault patterns that named it, with their block's start and the
    /// kinds they name ([`POLICY_KIND`] for policies).
    sources: Vec<(String, BlockStart, u8)>,
    /// For KV groups: what the rules allow, and where each permission was
    /// first granted.
    atoms: Atoms,
    first: HashMap<Atoms, BlockStart>,
    /// Kinds denied, and whether anything was granted.
    denied_kinds: u8,
    granted: bool,
    /// For policy groups: the Vault capabilities.
    policy_caps: Vec<VaultCap>,
    is_policies: bool,
    /// The coffer capabilities decided.
    caps: Capabilities,
}

/// Translates a Vault policy into the coffer policy that allows the same
/// requests through coffer's Vault API. See the module documentation.
///
/// # Errors
///
/// A [`PolicyError`] naming the line and column of the first rule that
/// cannot be expressed exactly (or of a syntax error), and why.
pub fn translate(source: &str, mounts: &Mounts) -> Result<Policy, PolicyError> {
    // Control and direction characters are refused as in coffer's own
    // language.
    Policy::parse_check_characters(source)?;
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    parse_blocks(
        source,
        |text| parse_vault_pattern(text, mounts),
        parse_vault_cap,
        |pattern: VaultPattern, caps: Vec<VaultCap>, at| {
            let deny = caps.contains(&VaultCap::Deny);
            let (coffer, is_policies) = match pattern.named {
                Named::SelfService => {
                    if deny {
                        return Err(at.error(format!(
                            "{} cannot be denied in coffer: every token may use it on itself",
                            quote(&pattern.text)
                        )));
                    }
                    return Ok(());
                }
                Named::Kv { ref pattern, .. } => (pattern.clone(), false),
                Named::Policies(ref pattern) => (pattern.clone(), true),
            };
            let slot = *index.entry(coffer.as_str().to_owned()).or_insert_with(|| {
                groups.push(Group {
                    pattern: coffer.clone(),
                    sources: Vec::new(),
                    atoms: 0,
                    first: HashMap::new(),
                    denied_kinds: 0,
                    granted: false,
                    policy_caps: Vec::new(),
                    is_policies,
                    caps: Capabilities::NONE,
                });
                groups.len() - 1
            });
            if groups.len() > crate::parse::MAX_RULES {
                return Err(at.error(format!(
                    "too many rules: a policy may have at most {} distinct path patterns",
                    crate::parse::MAX_RULES
                )));
            }
            let group = &mut groups[slot];
            let kinds = match pattern.named {
                Named::Kv { kinds, .. } => kinds,
                _ => POLICY_KIND,
            };
            group.sources.push((pattern.text.clone(), at, kinds));
            match pattern.named {
                Named::Kv { kinds, .. } => {
                    if deny {
                        group.denied_kinds |= kinds;
                        return Ok(());
                    }
                    for kind in KINDS.iter().filter(|k| kinds & k.bit() != 0) {
                        for cap in &caps {
                            let atoms = vault_atoms(*kind, *cap);
                            if atoms != 0 {
                                group.granted = true;
                                group.first.entry(atoms).or_insert(at);
                                group.atoms |= atoms;
                            }
                        }
                    }
                }
                Named::Policies(_) => group.policy_caps.extend(caps),
                Named::SelfService => {}
            }
            Ok(())
        },
    )?;

    for group in &mut groups {
        group.caps = if group.is_policies {
            decide_policies(group)?
        } else {
            decide_kv(group, mounts)?
        };
    }
    check_overlaps(&groups)?;

    let rules = groups
        .into_iter()
        .filter(|g| !g.caps.is_empty())
        .map(|g| Rule {
            pattern: g.pattern,
            capabilities: g.caps,
        })
        .collect();
    Ok(Policy { rules })
}

fn decide_policies(group: &Group) -> Result<Capabilities, PolicyError> {
    let at = group.sources[0].1;
    let has = |c| group.policy_caps.contains(&c);
    if has(VaultCap::Deny) {
        return Ok([Capability::Deny].into_iter().collect());
    }
    let mut needed = vec![
        VaultCap::Create,
        VaultCap::Read,
        VaultCap::Update,
        VaultCap::Delete,
    ];
    if group.pattern.may_match_folder() {
        needed.push(VaultCap::List);
    }
    if needed.iter().all(|c| has(*c)) {
        return Ok([Capability::Admin].into_iter().collect());
    }
    Err(at.error(format!(
        "{}: coffer's admin on policies allows reading, writing and deleting them together; \
         grant \"create\", \"read\", \"update\", \"delete\"{} here, or \"deny\"",
        quote(&group.sources[0].0),
        if group.pattern.may_match_folder() {
            " and \"list\""
        } else {
            ""
        }
    )))
}

fn decide_kv(group: &Group, mounts: &Mounts) -> Result<Capabilities, PolicyError> {
    let pattern = &group.pattern;
    let (mount, rest) = mounts
        .for_coffer_path(pattern.as_str())
        .map_or(("secret", pattern.as_str()), |(m, r)| (m.name(), r));
    if group.denied_kinds != 0 {
        let at = group.sources[0].1;
        if group.denied_kinds != ALL_KINDS || group.granted {
            return Err(at.error(format!(
                "a deny in coffer covers a path's value and metadata alike: deny \
                 \"{mount}/+/{rest}\" (every kind) with nothing else granted on the same path, \
                 or write the grants without it"
            )));
        }
        if pattern.overlaps(&Pattern::parse("sys/*").expect("a valid pattern")) {
            return Err(at.error(format!(
                "a deny on {} would in coffer also deny administration under sys/; name a \
                 narrower path",
                quote(pattern.as_str())
            )));
        }
        return Ok([Capability::Deny].into_iter().collect());
    }
    let relevant = relevant(pattern);
    let mut wanted = group.atoms & relevant;
    // Patch is reading and updating in one request: whoever may do both may
    // patch.
    if wanted & DATA_READ != 0 && wanted & DATA_UPDATE != 0 {
        wanted |= DATA_PATCH;
    }
    let mut caps = Capabilities::NONE;
    for cap in KV_CAPS {
        let single: Capabilities = [cap].into_iter().collect();
        let atoms = coffer_atoms(single, pattern);
        if atoms != 0 && atoms & !wanted == 0 {
            caps.insert(cap);
        }
    }
    let covered = coffer_atoms(caps, pattern);
    if covered == wanted {
        // The smallest set that says the same (`list` adds nothing to `read`
        // on one secret).
        for cap in KV_CAPS {
            let mut fewer = Capabilities::NONE;
            for kept in caps.iter().filter(|c| *c != cap) {
                fewer.insert(kept);
            }
            if caps.contains(cap) && coffer_atoms(fewer, pattern) == covered {
                caps = fewer;
            }
        }
        return Ok(caps);
    }
    // Name the first permission left over and what it would need.
    let missing = wanted & !covered;
    let (bit, kind, name) = ATOM_NAMES
        .iter()
        .copied()
        .find(|(bit, _, _)| missing & bit != 0)
        .expect("a missing permission");
    let at = group
        .first
        .iter()
        .filter(|(atoms, _)| **atoms & bit != 0)
        .map(|(_, at)| *at)
        .min_by_key(|at| (at.line, at.column))
        .unwrap_or(group.sources[0].1);
    let granted_here = format!("\"{name}\" on \"{mount}/{}/{rest}\"", kind.name());
    if bit == DATA_PATCH {
        return Err(at.error(format!(
            "{granted_here}: coffer allows a patch to whoever may read and update, so grant \
             \"read\" and \"update\" on \"{mount}/data/{rest}\" (and \"read\" on \
             \"{mount}/metadata/{rest}\"), or drop \"patch\""
        )));
    }
    if bit == META_DELETE {
        return Err(at.error(format!(
            "{granted_here}: deleting the metadata destroys every version it lists, which coffer \
             allows to whoever may destroy versions and read metadata, so grant \
             \"update\" on \"{mount}/destroy/{rest}\" and \"read\" on \"{mount}/metadata/{rest}\" \
             too, or remove it"
        )));
    }
    // Each coffer capability that grants it, with what it would add.
    let mut companions: Vec<Atoms> = KV_CAPS
        .iter()
        .map(|cap| coffer_atoms([*cap].into_iter().collect(), pattern))
        .filter(|atoms| atoms & bit != 0)
        .map(|atoms| atoms & !wanted)
        .collect();
    companions.sort_by_key(|extra| extra.count_ones());
    let options: Vec<String> = companions
        .iter()
        .map(|extra| describe_atoms(*extra, mount, rest))
        .collect();
    Err(at.error(format!(
        "{granted_here} has no exact coffer equivalent on its own: coffer grants it only \
         together with {}; grant that too, or remove it",
        options.join(", or with ")
    )))
}

/// Whether Vault ranks pattern `a` below pattern `b` (`b` wins where both
/// match), by Vault's documented priority rules.
fn vault_lower(a: &str, b: &str) -> bool {
    let wildcard = |s: &str| s.find(['+', '*']);
    match (wildcard(a), wildcard(b)) {
        // An exact path wins over any pattern.
        (None, None) => return a < b,
        (None, Some(_)) => return false,
        (Some(_), None) => return true,
        (Some(x), Some(y)) if x != y => return x < y,
        _ => {}
    }
    let (a_glob, b_glob) = (a.ends_with('*'), b.ends_with('*'));
    if a_glob != b_glob {
        return a_glob;
    }
    let plus = |s: &str| s.split('/').filter(|seg| *seg == "+").count();
    if plus(a) != plus(b) {
        return plus(a) > plus(b);
    }
    if a.len() != b.len() {
        return a.len() < b.len();
    }
    a < b
}

/// Whether every Vault pattern of `high` outranks every one of `low` that
/// names the same kind of path.
fn outranks(high: &Group, low: &Group) -> bool {
    high.sources.iter().all(|(h, _, h_kinds)| {
        low.sources
            .iter()
            .all(|(l, _, l_kinds)| h_kinds & l_kinds == 0 || vault_lower(l, h))
    })
}

fn check_overlaps(groups: &[Group]) -> Result<(), PolicyError> {
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            if a.caps == b.caps || a.is_policies != b.is_policies || !a.pattern.overlaps(&b.pattern)
            {
                continue;
            }
            let agrees = |high: &Group, low: &Group| {
                outranks(high, low)
                    && (high.caps.contains(Capability::Deny)
                        || (!low.caps.contains(Capability::Deny)
                            && low.caps.union(high.caps) == high.caps))
            };
            if agrees(a, b) || agrees(b, a) {
                continue;
            }
            let (later, earlier) = if (a.sources[0].1.line, a.sources[0].1.column)
                > (b.sources[0].1.line, b.sources[0].1.column)
            {
                (a, b)
            } else {
                (b, a)
            };
            return Err(later.sources[0].1.error(format!(
                "{} overlaps {} (line {}): where both match, Vault applies only the more \
                 specific rule and coffer applies both, and here they would differ; make the \
                 more specific rule grant at least what the broader one does, or deny",
                quote(&later.sources[0].0),
                quote(&earlier.sources[0].0),
                earlier.sources[0].1.line
            )));
        }
    }
    Ok(())
}

// ---- Rendering ----

/// Writes a coffer policy in Vault's syntax, over the Vault paths of
/// `mounts`. What it writes translates back to the same policy (capabilities
/// that allow nothing through the Vault API dropped).
///
/// # Errors
///
/// A [`RenderError`] for the first rule with no exact Vault form: a
/// capability Vault lacks (`rotate`, `breakglass`, `admin` outside
/// `sys/policies/`), a path no mount shows, or rules that overlap in a way
/// Vault's most-specific-rule-wins cannot express.
pub fn render(policy: &Policy, mounts: &Mounts) -> Result<String, RenderError> {
    let mut out = String::new();
    let mut expected: Vec<Rule> = Vec::new();
    for rule in policy.rules() {
        let pattern = rule.pattern.as_str();
        let caps = rule.capabilities;
        let error = |message: String| RenderError {
            pattern: pattern.to_owned(),
            message,
        };
        let deny = caps.contains(Capability::Deny);
        if let Some(rest) = pattern.strip_prefix("sys/policies/") {
            let mut vault = Vec::new();
            if deny {
                vault.push("deny");
            } else if caps.contains(Capability::Admin) {
                vault.extend(["create", "read", "update", "delete"]);
                if rule.pattern.may_match_folder() {
                    vault.push("list");
                }
            } else {
                continue;
            }
            write_block(&mut out, &format!("sys/policies/acl/{rest}"), &vault);
            expected.push(rule.clone());
            continue;
        }
        let Some((mount, rest)) = mounts.for_coffer_path(pattern) else {
            return Err(error("no configured mount shows these paths".to_owned()));
        };
        if rest.is_empty() && !mount.prefix().is_empty() && !pattern.ends_with('/') {
            return Err(error("no configured mount shows these paths".to_owned()));
        }
        let name = mount.name();
        if deny {
            // One rule per kind: Vault ranks `+` below a literal kind, so
            // `{name}/+/...` would lose to a broader `{name}/data/...`.
            for kind in KINDS {
                write_block(
                    &mut out,
                    &format!("{name}/{}/{rest}", kind.name()),
                    &["deny"],
                );
            }
            expected.push(rule.clone());
            continue;
        }
        for cap in [
            Capability::Admin,
            Capability::Rotate,
            Capability::Breakglass,
        ] {
            if caps.contains(cap) {
                return Err(error(format!(
                    "the Vault API has no counterpart for coffer's \"{cap}\" on secret paths"
                )));
            }
        }
        let atoms = coffer_atoms(caps, &rule.pattern);
        if atoms == 0 {
            continue;
        }
        for kind in KINDS {
            let names: Vec<&str> = ATOM_NAMES
                .iter()
                .filter(|(bit, k, _)| *k == kind && atoms & bit != 0)
                .map(|(_, _, cap)| *cap)
                .collect();
            if !names.is_empty() {
                write_block(&mut out, &format!("{name}/{}/{rest}", kind.name()), &names);
            }
        }
        let kept: Capabilities = KV_CAPS
            .into_iter()
            .filter(|c| caps.contains(*c))
            .filter(|c| coffer_atoms([*c].into_iter().collect(), &rule.pattern) != 0)
            .collect();
        expected.push(Rule {
            pattern: rule.pattern.clone(),
            capabilities: kept,
        });
    }
    // What Vault will make of it must be what coffer means.
    match translate(&out, mounts) {
        Ok(back) if same_rules(back.rules(), &expected) => Ok(out),
        Ok(_) | Err(_) => Err(RenderError {
            pattern: policy
                .rules()
                .first()
                .map(|r| r.pattern.as_str().to_owned())
                .unwrap_or_default(),
            message: "the policy's rules overlap in a way Vault's most-specific-rule-wins \
                      cannot express"
                .to_owned(),
        }),
    }
}

fn same_rules(a: &[Rule], b: &[Rule]) -> bool {
    let key = |rules: &[Rule]| {
        let mut v: Vec<(String, String)> = rules
            .iter()
            .map(|r| {
                (
                    r.pattern.as_str().to_owned(),
                    format!("{:?}", r.capabilities),
                )
            })
            .collect();
        v.sort();
        v
    };
    key(a) == key(b)
}

fn write_block(out: &mut String, path: &str, caps: &[&str]) {
    use fmt::Write as _;
    let list: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
    let _ = writeln!(
        out,
        "path \"{path}\" {{\n  capabilities = [{}]\n}}",
        list.join(", ")
    );
}
