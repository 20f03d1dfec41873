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
/// Most sessions one node keeps. Beyond it a new login is refused rather
/// than another person's session ended: no account can log everyone out
/// by logging in many times.
const MAX_SESSIONS: usize = 10_000;
/// Most sessions one person keeps (tabs, browsers, devices); a new login
/// beyond it ends that person's own oldest session.
const MAX_PER_USER: usize = 16;

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
    /// Whose it is (the login's canonical user name).
    user: String,
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

/// What [`Sessions::start`] did.
pub(crate) struct Started {
    /// The new session's id; `None` when the node holds as many sessions
    /// as it may and the login is refused.
    pub id: Option<String>,
    /// Tokens of sessions that ended (to make room, or unnoticed before),
    /// and of the refused login: the caller revokes them.
    pub ended: Vec<SecretString>,
}

/// What [`Sessions::touch`] found.
pub(crate) enum Touched {
    /// A live session.
    Live(Live),
    /// A session that just ended (idle, too old, or its token expired):
    /// its token, for the caller to revoke.
    Ended(SecretString),
    /// No such session.
    Unknown,
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

    /// Starts a session for `user`'s `token`; returns its new id, and the
    /// tokens of the sessions that ended to make room (that person's own
    /// oldest beyond [`MAX_PER_USER`]) or had ended unnoticed, for the
    /// caller to revoke. A new id at every login: an id chosen before the
    /// login (session fixation) is never adopted.
    pub(crate) fn start(
        &self,
        user: &str,
        token: SecretString,
        token_expires_ms: Option<i64>,
    ) -> Started {
        let id = random_token();
        let now = coffer_core::now_ms();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (idle, absolute) = (self.idle_ms, self.absolute_ms);
        let mut ended = Vec::new();
        let dead: Vec<[u8; 32]> = map
            .iter()
            .filter(|(_, s)| !alive(s, now, idle, absolute))
            .map(|(k, _)| *k)
            .collect();
        for k in dead {
            if let Some(s) = map.remove(&k) {
                ended.push(s.token);
            }
        }
        let mut own: Vec<([u8; 32], i64)> = map
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(k, s)| (*k, s.created_ms))
            .collect();
        own.sort_by_key(|(_, created)| *created);
        let excess = (own.len() + 1).saturating_sub(MAX_PER_USER);
        for (k, _) in own.into_iter().take(excess) {
            if let Some(s) = map.remove(&k) {
                ended.push(s.token);
            }
        }
        if map.len() >= MAX_SESSIONS {
            // The login's own token is revoked by the caller with the rest.
            ended.push(token);
            return Started { id: None, ended };
        }
        map.insert(
            key_of(&id),
            Session {
                user: user.to_string(),
                token,
                csrf: SecretString::new(random_token()),
                created_ms: now,
                last_ms: now,
                token_expires_ms,
            },
        );
        Started {
            id: Some(id),
            ended,
        }
    }

    /// The live session of `id`, its idle clock restarted; an expired one
    /// is removed and its token handed back to be revoked.
    pub(crate) fn touch(&self, id: &str) -> Touched {
        let now = coffer_core::now_ms();
        let key = key_of(id);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(session) = map.get_mut(&key) else {
            return Touched::Unknown;
        };
        if !alive(session, now, self.idle_ms, self.absolute_ms) {
            return match map.remove(&key) {
                Some(s) => Touched::Ended(s.token),
                None => Touched::Unknown,
            };
        }
        session.last_ms = now;
        Touched::Live(Live {
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
        let a = sessions
            .start("ada", SecretString::new("t1".into()), None)
            .id
            .unwrap();
        let b = sessions
            .start("ada", SecretString::new("t1".into()), None)
            .id
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(matches!(sessions.touch(&a), Touched::Live(_)));
        assert!(matches!(
            sessions.touch("attacker-chosen"),
            Touched::Unknown
        ));
        assert!(matches!(sessions.touch(&a[..42]), Touched::Unknown));
        sessions.end(&a);
        assert!(matches!(sessions.touch(&a), Touched::Unknown));
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn a_session_ends_with_its_token() {
        let sessions = Sessions::new(60, 60);
        let id = sessions
            .start(
                "ada",
                SecretString::new("t".into()),
                Some(coffer_core::now_ms() - 1),
            )
            .id
            .unwrap();
        assert!(matches!(sessions.touch(&id), Touched::Ended(t) if t.expose_secret() == "t"));
        assert!(matches!(sessions.touch(&id), Touched::Unknown));
    }

    /// Review finding: one account logging in many times used to evict
    /// everyone else's sessions (the oldest went first, whoever's it was).
    #[test]
    fn one_person_logging_in_many_times_ends_only_their_own_sessions() {
        let sessions = Sessions::new(60, 60);
        let bob = sessions
            .start("bob", SecretString::new("bob".into()), None)
            .id
            .unwrap();
        let mut ended = 0;
        for i in 0..100 {
            let started = sessions.start("mallory", SecretString::new(format!("m{i}")), None);
            assert!(started.id.is_some());
            assert!(
                started
                    .ended
                    .iter()
                    .all(|t| t.expose_secret().starts_with('m'))
            );
            ended += started.ended.len();
        }
        assert_eq!(ended, 100 - MAX_PER_USER);
        assert_eq!(sessions.len(), MAX_PER_USER + 1);
        assert!(matches!(sessions.touch(&bob), Touched::Live(_)));
    }

    #[test]
    fn a_full_node_refuses_a_login_instead_of_ending_another_session() {
        let sessions = Sessions::new(60, 60);
        for i in 0..MAX_SESSIONS {
            assert!(
                sessions
                    .start(&format!("u{i}"), SecretString::new(format!("t{i}")), None)
                    .id
                    .is_some()
            );
        }
        let refused = sessions.start("late", SecretString::new("late".into()), None);
        assert!(refused.id.is_none());
        assert_eq!(refused.ended.len(), 1);
        assert_eq!(refused.ended[0].expose_secret(), "late");
        assert_eq!(sessions.len(), MAX_SESSIONS);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }
}
