//! What a request wants to do, and which capability grants it.
//!
//! The core decides with these; the route table in `coffer-api` names them
//! for each route; audit records write their [`Operation::name`]. One enum
//! for all three, so a new operation cannot be named in one place and
//! missing in another.

use crate::Capability;

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `read`: read a secret's value.
    ReadValue,
    /// `read_metadata`: read a secret's metadata and version history
    /// (never values); granted by `read` or `list`.
    ReadMetadata,
    /// `list`: list paths under a prefix.
    List,
    /// `create`: write the first version of a secret.
    Create,
    /// `update`: write a new version of an existing secret.
    Update,
    /// `delete`: soft-delete or undelete versions.
    Delete,
    /// `destroy`: erase versions permanently.
    Destroy,
    /// `rotate`: stage, promote and cancel rotations.
    Rotate,
    /// `admin`: manage the server and the access model (targets under
    /// `sys/`).
    Admin,
    /// `breakglass`: ask for a time-limited read of a protected secret.
    Breakglass,
    /// `self`: act on the caller's own token or account. Every token holds
    /// it: no policy grants it, and no `deny` takes it away.
    SelfService,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 11] = [
        Operation::ReadValue,
        Operation::ReadMetadata,
        Operation::List,
        Operation::Create,
        Operation::Update,
        Operation::Delete,
        Operation::Destroy,
        Operation::Rotate,
        Operation::Admin,
        Operation::Breakglass,
        Operation::SelfService,
    ];

    /// The operation's name, as audit records write the decision.
    pub const fn name(self) -> &'static str {
        match self {
            Operation::ReadValue => "read",
            Operation::ReadMetadata => "read_metadata",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Destroy => "destroy",
            Operation::Rotate => "rotate",
            Operation::Admin => "admin",
            Operation::Breakglass => "breakglass",
            Operation::SelfService => "self",
        }
    }

    /// The capability a policy must grant for this operation (`None` for
    /// `self`, which no policy grants). `read_metadata` names `read` here;
    /// the core also accepts `list` for it.
    pub const fn capability(self) -> Option<Capability> {
        Some(match self {
            Operation::ReadValue | Operation::ReadMetadata => Capability::Read,
            Operation::List => Capability::List,
            Operation::Create => Capability::Create,
            Operation::Update => Capability::Update,
            Operation::Delete => Capability::Delete,
            Operation::Destroy => Capability::Destroy,
            Operation::Rotate => Capability::Rotate,
            Operation::Admin => Capability::Admin,
            Operation::Breakglass => Capability::Breakglass,
            Operation::SelfService => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_capabilities_are_the_policy_languages() {
        let mut names: Vec<_> = Operation::ALL.iter().map(|o| o.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Operation::ALL.len());
        for op in Operation::ALL {
            if let Some(cap) = op.capability() {
                // A capability's policy name is the operation's, except
                // read_metadata, which reading grants.
                let expected = if op == Operation::ReadMetadata {
                    "read"
                } else {
                    op.name()
                };
                assert_eq!(cap.to_string(), expected);
            }
        }
    }
}
