//! Capabilities (what a rule grants) and small sets of them.

use std::fmt;

/// One thing a policy rule can grant on the targets its pattern matches.
///
/// The server decides which capability each operation needs; the crate-level
/// documentation lists the conventional meaning of each. [`Capability::Deny`] is not a
/// permission but an override: wherever a matching rule says `deny`, nothing is
/// allowed (see [`Capabilities::allows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// `read`
    Read,
    /// `list`
    List,
    /// `create`
    Create,
    /// `update`
    Update,
    /// `delete`
    Delete,
    /// `destroy`
    Destroy,
    /// `rotate`
    Rotate,
    /// `admin`
    Admin,
    /// `breakglass`
    Breakglass,
    /// `deny`
    Deny,
}

impl Capability {
    /// Every capability, in the order the documentation and error messages list them.
    pub const ALL: [Capability; 10] = [
        Capability::Read,
        Capability::List,
        Capability::Create,
        Capability::Update,
        Capability::Delete,
        Capability::Destroy,
        Capability::Rotate,
        Capability::Admin,
        Capability::Breakglass,
        Capability::Deny,
    ];

    /// The name used in policy source, e.g. `"read"`.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Read => "read",
            Capability::List => "list",
            Capability::Create => "create",
            Capability::Update => "update",
            Capability::Delete => "delete",
            Capability::Destroy => "destroy",
            Capability::Rotate => "rotate",
            Capability::Admin => "admin",
            Capability::Breakglass => "breakglass",
            Capability::Deny => "deny",
        }
    }

    /// Parses a capability name. Only the exact lowercase names are accepted
    /// (`"Read"` and `" read"` are `None`).
    pub fn parse(s: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The bit of this capability in a [`Capabilities`] set.
    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Capability`] values (a small bitset; `Copy`).
///
/// [`Capabilities::allows`] is the question authorization asks: the set grants the
/// capability and does not contain `deny`.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Capabilities(u16);

impl Capabilities {
    /// The empty set: nothing granted, nothing denied.
    pub const NONE: Capabilities = Capabilities(0);

    /// Whether `c` is in the set. This is set membership only; use
    /// [`Capabilities::allows`] to decide access.
    pub fn contains(self, c: Capability) -> bool {
        self.0 & c.bit() != 0
    }

    /// Adds `c` to the set.
    pub fn insert(&mut self, c: Capability) {
        self.0 |= c.bit();
    }

    /// The union of two sets (`deny` in either is kept).
    #[must_use]
    pub fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members of the set, in [`Capability::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// true when `c` is granted and `Deny` is not present (deny wins over everything)
    ///
    /// Consequently `allows(Capability::Deny)` is always false, and a set that
    /// contains `Deny` allows nothing.
    pub fn allows(self, c: Capability) -> bool {
        self.contains(c) && !self.contains(Capability::Deny)
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = Capabilities::NONE;
        for c in iter {
            set.insert(c);
        }
        set
    }
}

// Written by hand so that test failures and logs show names (`{read, list}`) rather
// than a bitmask.
impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Capability::name))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        for c in Capability::ALL {
            assert_eq!(Capability::parse(c.name()), Some(c));
            assert_eq!(c.to_string(), c.name());
        }
        let all: Capabilities = Capability::ALL.into_iter().collect();
        assert_eq!(all.iter().count(), Capability::ALL.len());
    }

    #[test]
    fn parse_is_exact_and_lowercase() {
        for bad in [
            "Read",
            "READ",
            " read",
            "read ",
            "",
            "reed",
            "breakGlass",
            "*",
        ] {
            assert_eq!(Capability::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn set_operations() {
        let mut s = Capabilities::NONE;
        assert!(s.is_empty());
        s.insert(Capability::List);
        s.insert(Capability::Read);
        s.insert(Capability::Read);
        assert!(!s.is_empty());
        assert!(s.contains(Capability::Read) && s.contains(Capability::List));
        assert!(!s.contains(Capability::Update));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [Capability::Read, Capability::List]
        );
        assert_eq!(format!("{s:?}"), r#"{"read", "list"}"#);
        let u = s.union([Capability::Update].into_iter().collect());
        assert_eq!(u.iter().count(), 3);
        assert_eq!(Capabilities::default(), Capabilities::NONE);
    }

    #[test]
    fn deny_wins_in_allows() {
        let granted: Capabilities = [Capability::Read, Capability::Admin].into_iter().collect();
        assert!(granted.allows(Capability::Read));
        assert!(!granted.allows(Capability::Update));
        assert!(!granted.allows(Capability::Deny));
        let denied = granted.union([Capability::Deny].into_iter().collect());
        for c in Capability::ALL {
            assert!(!denied.allows(c), "{c}");
        }
    }
}
