//! Workload identity: what every machine login shares, whatever proved the
//! machine's identity (a JWT from its platform, an app role's credentials).
//!
//! A login method checks its proof and hands [`Coffer::issue_workload_token`]
//! a [`WorkloadGrant`]: the role's policies and TTL, and the [`Workload`]
//! the proof vouched for. The token it mints is a service token with no
//! parent, exactly the role's policies, and an expiry that no renewal can
//! pass; its record carries the workload, so every request made with it
//! (and with any token created from it) is audited under the workload's
//! name, issuer, subject and bound claims.

use std::sync::Arc;

use coffer_crypto::{SecretString, token};
pub use coffer_store::Workload;
use coffer_store::{Mutation, TokenKind, TokenRecord};

use crate::access::TokenView;
use crate::auth::Identity;
use crate::duration::parse_duration_ms;
use crate::error::{InvalidInput, JwtRoleProblem};
use crate::{Coffer, CoreError, Result, audit, now_ms};

/// A workload token's lifetime when its role names none: 15 minutes.
pub const DEFAULT_WORKLOAD_TTL_MS: i64 = 15 * 60 * 1000;
/// The longest lifetime a role may give its tokens: 6 hours (the longest a
/// GitHub Actions job may run).
pub const MAX_WORKLOAD_TTL_MS: i64 = 6 * 3600 * 1000;
/// The longest workload name kept: longer names are cut (the full claims
/// stay in the record's workload).
const MAX_NAME_CHARS: usize = 200;

/// What a successful machine login grants.
#[derive(Debug, Clone)]
pub struct WorkloadGrant {
    /// The name tokens lists and audit records show
    /// (`github:acme/api@refs/heads/main`).
    pub name: String,
    /// Exactly the role's policies.
    pub policies: Vec<String>,
    /// The role's TTL in milliseconds.
    pub ttl_ms: i64,
    /// Who the proof vouched for.
    pub workload: Workload,
}

/// Parses a role's TTL: the default when absent, at most
/// [`MAX_WORKLOAD_TTL_MS`].
pub fn role_ttl_ms(ttl: Option<&str>) -> Result<i64> {
    let Some(ttl) = ttl else {
        return Ok(DEFAULT_WORKLOAD_TTL_MS);
    };
    let ms = parse_duration_ms(ttl).map_err(|e| CoreError::Invalid(InvalidInput::Duration(e)))?;
    if ms > MAX_WORKLOAD_TTL_MS {
        return Err(CoreError::Invalid(InvalidInput::JwtRole(
            JwtRoleProblem::TtlTooLong { max: "6h" },
        )));
    }
    Ok(ms)
}

/// A value from a platform made fit for names and records: line and
/// direction controls become U+FFFD (a claim is attacker-influenced text:
/// a branch name may hold anything git allows), and it is cut to a bounded
/// length.
pub fn shown(value: &str) -> String {
    value
        .chars()
        .take(MAX_NAME_CHARS)
        .map(|c| {
            if c.is_control() || crate::text::is_line_or_direction_control(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

impl Coffer {
    /// Mints the token a machine login grants, and notes it as the
    /// request's identity for its audit record.
    pub(crate) async fn issue_workload_token(
        &self,
        grant: WorkloadGrant,
    ) -> Result<(SecretString, TokenView)> {
        let keys = self.unsealed()?;
        let now = now_ms();
        let expires_at = now + grant.ttl_ms;
        let raw = token::generate_token();
        let mut policies = grant.policies;
        policies.sort();
        policies.dedup();
        let record = TokenRecord {
            hash: keys.keyring.token_hash(raw.expose_secret()),
            accessor: token::generate_accessor(),
            display_name: shown(&grant.name),
            policies,
            created_at: now,
            expires_at: Some(expires_at),
            parent: None,
            kind: TokenKind::Service,
            user: None,
            // Renewing gives at most what is left: the role's TTL from the
            // login is the hard limit.
            ttl_ms: Some(grant.ttl_ms),
            max_expires_at: Some(expires_at),
            uses_limit: None,
            uses_left: None,
            cidrs: Vec::new(),
            workload: Some(Box::new(grant.workload)),
        };
        self.store
            .commit(vec![Mutation::PutToken(record.clone())])
            .await?;
        audit::note_identity(&Identity {
            token: Arc::new(record.clone()),
        });
        tracing::info!(
            workload = %record.display_name,
            accessor = %record.accessor,
            policies = ?record.policies,
            "workload logged in"
        );
        Ok((raw, record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_ttls_default_to_15_minutes_and_stop_at_6_hours() {
        assert_eq!(role_ttl_ms(None).unwrap(), 15 * 60 * 1000);
        assert_eq!(role_ttl_ms(Some("1h")).unwrap(), 3600 * 1000);
        assert_eq!(role_ttl_ms(Some("6h")).unwrap(), MAX_WORKLOAD_TTL_MS);
        assert!(role_ttl_ms(Some("7h")).is_err());
        assert!(role_ttl_ms(Some("soon")).is_err());
    }

    #[test]
    fn shown_names_lose_controls_and_length() {
        assert_eq!(shown("github:a/b@main"), "github:a/b@main");
        assert_eq!(shown("a\nb\u{202E}c\u{1b}"), "a\u{FFFD}b\u{FFFD}c\u{FFFD}");
        assert_eq!(shown(&"x".repeat(500)).chars().count(), MAX_NAME_CHARS);
    }
}
