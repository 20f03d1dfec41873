//! The web console's sessions: an opaque random id in a cookie, mapped on
//! the server to the token the login produced, so that the raw token never
//! reaches the browser.
//!
//! Sessions live in this node's memory: a restart (or another node behind a
//! load balancer without sticky sessions) asks the person to log in again.
//! Nothing about a session is written to the store, which never holds a raw
//! token. The map is keyed by the SHA-256 of the id, so a lookup takes the
//! same time whatever part of an id a guess gets right.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_crypto::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// Default idle timeout: a session unused this long ends.
pub const DEFAULT_IDLE_SECS: u64 = 15 * 60;
/// Default absolute timeout: a session ends this long after login, however
/// busy.
pub const DEFAULT_ABSOLUTE_SECS: u64 = 8 * 60 * 60;
/// Most sessions one node keeps; the oldest is dropped beyond it.
const MAX_SESSIONS: usize = 10_000;

/// A random 256-bit value, URL-safe base64 without padding.
pub(crate) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(coffer_crypto::random::bytes::<32>())
}

/// Whether two tokens are equal, in time independent of where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn key_of(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// One signed-in person.
struct Session {
    /// The token the login produced (zeroized on drop).
    token: SecretString,
    /// The form token that every state change must carry.
    csrf: SecretString,
    created_ms: i64,
    last_ms: i64,
    /// When the token itself expires.
    token_expires_ms: Option<i64>,
}

/// What a request learns from a live session.
pub(crate) struct Live {
    /// The session's token (for `Coffer::authenticate`).
    pub token: SecretString,
    /// The form token.
    pub csrf: SecretString,
}

/// The node's sessions.
pub(crate) struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    idle_ms: i64,
    absolute_ms: i64,
}

impl Sessions {
    pub(crate) fn new(idle_secs: u64, absolute_secs: u64) -> Sessions {
        Sessions {
            map: Mutex::default(),
            idle_ms: (idle_secs.max(1) as i64).saturating_mul(1000),
            absolute_ms: (absolute_secs.max(1) as i64).saturating_mul(1000),
        }
    }

    /// Starts a session for `token`; returns its new id. A new id at every
    /// login: an id chosen before the login (session fixation) is never
    /// adopted.
    pub(crate) fn start(&self, token: SecretString, token_expires_ms: Option<i64>) -> String {
        let id = random_token();
        let now = coffer_core::now_ms();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (idle, absolute) = (self.idle_ms, self.absolute_ms);
        map.retain(|_, s| alive(s, now, idle, absolute));
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.created_ms)
                .map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(
            key_of(&id),
            Session {
                token,
                csrf: SecretString::new(random_token()),
                created_ms: now,
                last_ms: now,
                token_expires_ms,
            },
        );
        id
    }

    /// The live session of `id`, its idle clock restarted; an expired one
    /// is removed.
    pub(crate) fn touch(&self, id: &str) -> Option<Live> {
        let now = coffer_core::now_ms();
        let key = key_of(id);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let session = map.get_mut(&key)?;
        if !alive(session, now, self.idle_ms, self.absolute_ms) {
            map.remove(&key);
            return None;
        }
        session.last_ms = now;
        Some(Live {
            token: SecretString::new(session.token.expose_secret().to_string()),
            csrf: SecretString::new(session.csrf.expose_secret().to_string()),
        })
    }

    /// Ends the session of `id` (logout, or a token found revoked).
    pub(crate) fn end(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key_of(id));
    }

    /// How many sessions are held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

fn alive(s: &Session, now: i64, idle_ms: i64, absolute_ms: i64) -> bool {
    now.saturating_sub(s.last_ms) < idle_ms
        && now.saturating_sub(s.created_ms) < absolute_ms
        && s.token_expires_ms.is_none_or(|t| now < t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_and_only_known_ids_open_a_session() {
        let sessions = Sessions::new(60, 60);
        let a = sessions.start(SecretString::new("t1".into()), None);
        let b = sessions.start(SecretString::new("t1".into()), None);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(sessions.touch(&a).is_some());
        assert!(sessions.touch("attacker-chosen").is_none());
        assert!(sessions.touch(&a[..42]).is_none());
        sessions.end(&a);
        assert!(sessions.touch(&a).is_none());
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn a_session_ends_with_its_token() {
        let sessions = Sessions::new(60, 60);
        let id = sessions.start(
            SecretString::new("t".into()),
            Some(coffer_core::now_ms() - 1),
        );
        assert!(sessions.touch(&id).is_none());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }
}
