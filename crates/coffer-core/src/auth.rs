//! Identities and the single authorization check.
//!
//! [`authorize`] is the one place where an access decision is made. It returns
//! an [`Authorized`] witness that can only be constructed here; the code that
//! opens sealed values requires one, so a use case that forgets the check does
//! not compile. Access is denied by default: today only the exact policy name
//! `root` grants anything (richer policies build on this same check).

use std::sync::Arc;

use coffer_store::TokenRecord;

use crate::error::{CoreError, Result};

/// The name of the policy that grants everything. Compared exactly: no case
/// folding or trimming ever turns another name into this one.
pub const ROOT_POLICY: &str = "root";

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Read a secret's value.
    ReadValue,
    /// Read a secret's metadata and version history (never values).
    ReadMetadata,
    /// List paths under a prefix.
    List,
    /// Write the first version of a secret.
    Create,
    /// Write a new version of an existing secret.
    Update,
    /// Soft-delete or undelete versions.
    Delete,
    /// Erase versions permanently.
    Destroy,
    /// Operate the server itself: seal, rotate keys.
    Admin,
}

/// An authenticated caller: the token record it presented.
#[derive(Debug, Clone)]
pub struct Identity {
    pub(crate) token: Arc<TokenRecord>,
}

impl Identity {
    /// Non-secret handle of the token.
    pub fn accessor(&self) -> &str {
        &self.token.accessor
    }

    /// Human-readable name.
    pub fn display_name(&self) -> &str {
        &self.token.display_name
    }

    /// Attached policy names.
    pub fn policies(&self) -> &[String] {
        &self.token.policies
    }

    /// The full token record (no secret in it).
    pub fn token(&self) -> &TokenRecord {
        &self.token
    }
}

/// Proof that `authorize` allowed `operation` on `target` for an identity.
/// The private field makes it impossible to build anywhere else.
#[derive(Debug)]
pub struct Authorized<'a> {
    operation: Operation,
    target: &'a str,
    _private: (),
}

impl Authorized<'_> {
    /// The operation that was allowed.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The path (or system endpoint) it was allowed on.
    pub fn target(&self) -> &str {
        self.target
    }
}

/// Decides whether `identity` may perform `operation` on `target`.
pub fn authorize<'a>(
    identity: &Identity,
    operation: Operation,
    target: &'a str,
) -> Result<Authorized<'a>> {
    if identity.token.policies.iter().any(|p| p == ROOT_POLICY) {
        return Ok(Authorized {
            operation,
            target,
            _private: (),
        });
    }
    Err(CoreError::Forbidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(policies: &[&str]) -> Identity {
        Identity {
            token: Arc::new(TokenRecord {
                hash: [0; 32],
                accessor: "acc_x".into(),
                display_name: "t".into(),
                policies: policies.iter().map(|s| s.to_string()).collect(),
                created_at: 0,
                expires_at: None,
                parent: None,
            }),
        }
    }

    #[test]
    fn deny_by_default_and_root_is_exact() {
        let ops = [
            Operation::ReadValue,
            Operation::ReadMetadata,
            Operation::List,
            Operation::Create,
            Operation::Update,
            Operation::Delete,
            Operation::Destroy,
            Operation::Admin,
        ];
        for op in ops {
            assert!(authorize(&identity(&["root"]), op, "a/b").is_ok());
            for policies in [
                &[][..],
                &["Root"],
                &["ROOT"],
                &[" root"],
                &["root "],
                &["root\u{200b}"],
                &["default"],
            ] {
                assert!(
                    matches!(
                        authorize(&identity(policies), op, "a/b"),
                        Err(CoreError::Forbidden)
                    ),
                    "{policies:?} must not be treated as root"
                );
            }
        }
        let w = authorize(&identity(&["root"]), Operation::List, "x/").unwrap();
        assert_eq!((w.operation(), w.target()), (Operation::List, "x/"));
    }
}
