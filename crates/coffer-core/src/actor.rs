//! Who wrote a version: the name people read, with the kind of identity and
//! the token accessor that make it unambiguous.
//!
//! A name alone can be claimed (a token named after someone, a legacy token
//! named `root`), so wherever the core shows who did something it shows the
//! kind (`service`, `human`, `system`) and the accessor of the token too. The
//! three are stored together in a version's `created_by` as
//! `NAME US KIND US ACCESSOR` (US is U+001F, the unit separator, which no
//! name can contain: names refuse control characters). A stored value
//! without the separator was written before kinds were recorded and reads
//! as a name with no kind and no accessor.

use coffer_store::TokenKind;

use crate::auth::Identity;

const SEP: char = '\u{1F}';

/// What the identity of an app role's tokens starts with: `approle:NAME`
/// (kept here, below the use cases, as every one of them names callers).
pub const APPROLE_PREFIX: &str = "approle:";

/// The kind of the system's own actor (the rotation scheduler).
pub const SYSTEM_KIND: &str = "system";

/// Who wrote something, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user name (people) or token display name (services), or the
    /// system actor's name.
    pub name: String,
    /// `service`, `human` or `system`; `None` for records written before
    /// kinds were recorded.
    pub kind: Option<String>,
    /// The accessor of the token that acted; `None` for the system and for
    /// old records.
    pub accessor: Option<String>,
}

impl Actor {
    /// The stored form for a request's identity.
    pub fn stored_for(identity: &Identity) -> String {
        let kind = match identity.token().kind {
            TokenKind::Service => "service",
            TokenKind::Human => "human",
        };
        // Names refuse control characters, but a token record written by an
        // earlier release, or edited in storage, may hold one: the separator
        // in a name would forge the kind and accessor that follow it.
        format!(
            "{}{SEP}{kind}{SEP}{}",
            identity.display_name().replace(SEP, "\u{FFFD}"),
            identity.accessor()
        )
    }

    /// The stored form for the system acting on its own (`name` is one of
    /// the reserved names).
    pub fn stored_system(name: &str) -> String {
        format!("{name}{SEP}{SYSTEM_KIND}{SEP}")
    }

    /// Reads a stored `created_by`.
    pub fn parse(stored: &str) -> Actor {
        // A record written by an earlier release, or edited in storage, may
        // hold characters that names refuse today: they are shown as U+FFFD,
        // never passed on to a terminal or a log line.
        let shown = |s: &str| -> String {
            // Every read parses its author: the common case copies once.
            if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_control()) {
                return s.to_owned();
            }
            s.chars()
                .map(|c| {
                    if crate::text::is_line_or_direction_control(c) {
                        '\u{FFFD}'
                    } else {
                        c
                    }
                })
                .collect()
        };
        let mut parts = stored.splitn(3, SEP);
        let name = shown(parts.next().unwrap_or_default());
        let kind = parts.next().filter(|k| !k.is_empty()).map(shown);
        let accessor = parts.next().filter(|a| !a.is_empty()).map(shown);
        Actor {
            name,
            kind,
            accessor,
        }
    }

    /// One line for people: `name (kind accessor)`.
    pub fn describe(&self) -> String {
        match (&self.kind, &self.accessor) {
            (Some(k), Some(a)) => format!("{} ({k} {a})", self.name),
            (Some(k), None) => format!("{} ({k})", self.name),
            _ => self.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_name_holding_the_separator_cannot_forge_kind_or_accessor() {
        let identity = Identity {
            token: std::sync::Arc::new(coffer_store::TokenRecord {
                hash: [0; 32],
                accessor: "acc_real".into(),
                display_name: "root\u{1F}system\u{1F}".into(),
                policies: Vec::new(),
                created_at: 0,
                expires_at: None,
                parent: None,
                kind: TokenKind::Service,
                user: None,
                ttl_ms: None,
                max_expires_at: None,
                uses_limit: None,
                uses_left: None,
                cidrs: Vec::new(),
                workload: None,
            }),
        };
        let actor = Actor::parse(&Actor::stored_for(&identity));
        assert_eq!(actor.kind.as_deref(), Some("service"));
        assert_eq!(actor.accessor.as_deref(), Some("acc_real"));
        assert!(!actor.name.contains('\u{1F}'), "{:?}", actor.name);
        // An old record with controls in it reads without them.
        let old = Actor::parse("ev\u{1B}[2Jil\u{202E}\u{1F}human\u{1F}acc_1\u{1F}x\n");
        for part in [Some(old.name), old.kind, old.accessor] {
            let part = part.unwrap();
            assert!(
                !part.chars().any(crate::text::is_line_or_direction_control),
                "{part:?}"
            );
        }
    }

    #[test]
    fn stored_forms_round_trip_and_old_records_read_as_names() {
        assert_eq!(
            Actor::parse(&Actor::stored_system("coffer-scheduler")),
            Actor {
                name: "coffer-scheduler".into(),
                kind: Some("system".into()),
                accessor: None
            }
        );
        assert_eq!(
            Actor::parse("svc\u{1F}service\u{1F}acc_x"),
            Actor {
                name: "svc".into(),
                kind: Some("service".into()),
                accessor: Some("acc_x".into())
            }
        );
        let old = Actor::parse("root");
        assert_eq!(
            (old.name.as_str(), old.kind, old.accessor),
            ("root", None, None)
        );
        assert_eq!(
            Actor::parse("a\u{1F}human\u{1F}acc_1").describe(),
            "a (human acc_1)"
        );
    }
}
