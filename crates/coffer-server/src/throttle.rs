//! Per-source limits: how many connections one address may hold, and
//! exponential backoff for failed logins and unseal attempts.
//!
//! A source is the TCP peer's address (never a forwarding header): an IPv4
//! address, or the /64 an IPv6 address belongs to (one host usually holds a
//! whole /64, so counting single IPv6 addresses would count nothing).
//! Everything here is in memory and per node: nodes sharing PostgreSQL each
//! keep their own counts.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The key a peer address is counted under: IPv4 addresses (and
/// IPv4-mapped IPv6 addresses) as themselves, IPv6 addresses by their /64.
pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) if v6.is_loopback() => IpAddr::V6(v6),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// What a [`Throttle`] counts failures under: a source address (its
/// [`source_key`]) or a share link's id.
pub(crate) trait Key: Copy + Eq + std::hash::Hash {
    /// The key this one is counted under.
    fn counted(self) -> Self;
    /// The key shared by new keys while the table is full.
    fn overflow(self) -> Self;
}

impl Key for IpAddr {
    fn counted(self) -> Self {
        source_key(self)
    }
    fn overflow(self) -> Self {
        overflow_key(self)
    }
}

/// A share link's id, as counted by the per-link limit on failed opens:
/// only a well-formed id (22 characters, [`coffer_crypto::share::is_id`]),
/// taken whole, so no two ids share a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct LinkKey([u8; 22]);

impl LinkKey {
    /// The key of `id` (the path segment, percent-decoded), if it is a
    /// share id at all: anything else opens nothing and is counted only
    /// against its address.
    pub(crate) fn of(id: &str) -> Option<LinkKey> {
        if !coffer_crypto::share::is_id(id) {
            return None;
        }
        let mut k = [0u8; 22];
        k.copy_from_slice(id.as_bytes());
        Some(LinkKey(k))
    }
}

/// Set on the answer to a failed open of a share link that exists (used
/// up, expired or revoked): only those count against the link, so ids
/// that match no link fill no table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkExisted;

impl Key for LinkKey {
    fn counted(self) -> Self {
        self
    }
    fn overflow(self) -> Self {
        LinkKey([0; 22])
    }
}

/// Most sources remembered at once; beyond it, sources that are not
/// currently held back are forgotten first (looked for at most once a
/// second: a table full of held-back sources is not rescanned on every
/// attempt). If they are all held back, new sources share one count per
/// address family until room is made: memory stays bounded however many
/// addresses an attacker has, at the price of new sources waiting together
/// while such an attack lasts.
const MAX_SOURCES: usize = 100_000;
/// How often a full table is searched for sources to forget.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How a [`Throttle`] backs off.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Failures allowed before any waiting.
    pub free: u32,
    /// The first wait; each further failure doubles it.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// A source with no failure for this long starts afresh.
    pub forget: Duration,
}

/// Failed logins from one source: 10 free, then the next attempt waits
/// 1 s, 2 s, 4 s ... up to 5 minutes; forgotten after 15 minutes without
/// one.
pub const LOGIN_BACKOFF: Backoff = Backoff {
    free: 10,
    base: Duration::from_secs(1),
    max: Duration::from_secs(300),
    forget: Duration::from_secs(900),
};

/// Failed unseal attempts from one source: 5 free, then as for logins.
pub const UNSEAL_BACKOFF: Backoff = Backoff {
    free: 5,
    base: Duration::from_secs(1),
    max: Duration::from_secs(300),
    forget: Duration::from_secs(900),
};

/// Opens of unknown, used-up or expired share links from one source: 200
/// free, then as for logins. Guessing a 128-bit id is hopeless anyway;
/// this keeps a guesser from costing the store a read per try. It is
/// generous (review finding: at 20, one person behind a NAT or proxy
/// address could make everyone else there wait) because the same link's
/// failed opens are limited on their own ([`SHARE_LINK_BACKOFF`]).
pub const SHARE_OPEN_BACKOFF: Backoff = Backoff {
    free: 200,
    base: Duration::from_secs(1),
    max: Duration::from_secs(300),
    forget: Duration::from_secs(900),
};

/// Failed opens of one share link (used up, expired, or unknown), from
/// any address: 5 free, then as for logins.
pub const SHARE_LINK_BACKOFF: Backoff = Backoff {
    free: 5,
    base: Duration::from_secs(1),
    max: Duration::from_secs(300),
    forget: Duration::from_secs(900),
};

struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Instant,
}

/// Failure counts per source with exponential backoff.
///
/// An attempt is counted as a failure when it starts ([`Throttle::begin`]),
/// so that a burst of parallel attempts cannot all slip through before the
/// first of them fails; [`Outcome`] then keeps it or refunds it. A success
/// only refunds its own attempt: otherwise logging in to one's own account
/// between guesses at another would wipe the count.
pub(crate) struct Throttle<K: Key = IpAddr> {
    policy: Backoff,
    capacity: usize,
    sources: Mutex<Table<K>>,
}

struct Table<K> {
    map: HashMap<K, Entry>,
    /// When a full table may next be searched for sources to forget.
    next_sweep: Instant,
}

/// The shared key of new sources while the table is full.
fn overflow_key(key: IpAddr) -> IpAddr {
    match key {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Wrong password, wrong or malformed unseal key.
    Failed,
    /// Anything else (a success, a refusal for another reason, progress).
    Neutral,
}

impl<K: Key> Throttle<K> {
    pub(crate) fn new(policy: Backoff) -> Throttle<K> {
        Throttle::with_capacity(policy, MAX_SOURCES)
    }

    fn with_capacity(policy: Backoff, capacity: usize) -> Throttle<K> {
        Throttle {
            policy,
            capacity,
            sources: Mutex::new(Table {
                map: HashMap::new(),
                next_sweep: Instant::now(),
            }),
        }
    }

    /// The key `ip` is counted under now: its own, or (the table being
    /// full of sources that are held back) the shared overflow key.
    fn key_for(&self, table: &mut Table<K>, ip: K, now: Instant) -> K {
        let key = ip.counted();
        if table.map.contains_key(&key) || self.room(table, now) {
            key
        } else {
            key.overflow()
        }
    }

    /// Whether the table has room for a new key (after forgetting what it
    /// can, at most once a second).
    fn room(&self, table: &mut Table<K>, now: Instant) -> bool {
        if table.map.len() < self.capacity {
            return true;
        }
        if now >= table.next_sweep {
            table.next_sweep = now + SWEEP_EVERY;
            let forget = self.policy.forget;
            table.map.retain(|_, e| now.duration_since(e.last) < forget);
            if table.map.len() >= self.capacity {
                table.map.retain(|_, e| e.blocked_until > now);
            }
        }
        table.map.len() < self.capacity
    }

    /// Whether `key` may be tried now, without counting the attempt:
    /// `Err(wait)` while it is held back. A key never counted is never
    /// held back (see [`Throttle::fail`]).
    pub(crate) fn check(&self, key: K) -> Result<(), Duration> {
        let table = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match table.map.get(&key.counted()) {
            Some(e) if e.blocked_until > now => Err(e.blocked_until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failure against `key` after the fact. With the table full
    /// of keys held back, a new key is not counted at all (never under a
    /// shared key: one key's failures must not hold back another).
    pub(crate) fn fail(&self, key: K) {
        let mut table = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let key = key.counted();
        if !table.map.contains_key(&key) && !self.room(&mut table, now) {
            return;
        }
        let entry = table.map.entry(key).or_insert(Entry {
            failures: 0,
            last: now,
            blocked_until: now,
        });
        if now.duration_since(entry.last) >= self.policy.forget && entry.blocked_until <= now {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        entry.blocked_until = now + self.wait_after(entry.failures);
    }

    /// How long the next attempt waits after `failures` failures.
    fn wait_after(&self, failures: u32) -> Duration {
        if failures < self.policy.free {
            return Duration::ZERO;
        }
        let over = failures - self.policy.free;
        let factor = 1u32.checked_shl(over).unwrap_or(u32::MAX);
        self.policy
            .base
            .checked_mul(factor)
            .unwrap_or(self.policy.max)
            .min(self.policy.max)
    }

    /// Starts an attempt from `ip`: `Err(wait)` if the source must wait
    /// first, else the attempt is counted (provisionally) as a failure.
    pub(crate) fn begin(&self, ip: K) -> Result<(), Duration> {
        // The time is read under the lock, so it is never earlier than a
        // time another attempt stored: read before, a time could be older
        // than the `last` of an attempt that took the lock first, and a
        // source with no failure would look held back for a few
        // microseconds (a 429 to a burst of good logins).
        let mut table = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let key = self.key_for(&mut table, ip, now);
        let entry = table.map.entry(key).or_insert(Entry {
            failures: 0,
            last: now,
            blocked_until: now,
        });
        if now.duration_since(entry.last) >= self.policy.forget && entry.blocked_until <= now {
            entry.failures = 0;
        }
        if entry.blocked_until > now {
            return Err(entry.blocked_until - now);
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        entry.blocked_until = now + self.wait_after(entry.failures);
        Ok(())
    }

    /// Settles an attempt started with [`Throttle::begin`].
    pub(crate) fn end(&self, ip: K, outcome: Outcome) {
        let key = ip.counted();
        let mut table = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Outcome::Failed => {}
            Outcome::Neutral => {
                // Counted under the overflow key if it began there.
                let key = if table.map.contains_key(&key) {
                    key
                } else {
                    key.overflow()
                };
                if let Some(e) = table.map.get_mut(&key) {
                    e.failures = e.failures.saturating_sub(1);
                    e.blocked_until = e.last + self.wait_after(e.failures);
                }
            }
        }
    }
}

/// Connections held per source, limited.
#[derive(Clone)]
pub(crate) struct ConnectionLimit {
    max: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in a [`ConnectionLimit`], given back on drop.
pub(crate) struct ConnectionSlot {
    key: IpAddr,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionLimit {
    pub(crate) fn new(max: usize) -> ConnectionLimit {
        ConnectionLimit {
            max,
            held: Arc::default(),
        }
    }

    /// A slot for a new connection from `ip`, or `None` if that source
    /// already holds the most allowed.
    pub(crate) fn acquire(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let key = source_key(ip);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            key,
            held: self.held.clone(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// With the table full of held-back links, a new link is not counted at
    /// all (no shared key), and one link's failures hold back only it.
    #[test]
    fn a_full_link_table_skips_new_links_instead_of_sharing_a_key() {
        let t: Throttle<LinkKey> = Throttle::with_capacity(
            Backoff {
                free: 1,
                ..SHARE_LINK_BACKOFF
            },
            2,
        );
        let id = |c: char| LinkKey::of(&format!("{}A", c.to_string().repeat(21))).unwrap();
        let (a, b, c) = (id('a'), id('b'), id('c'));
        for _ in 0..3 {
            t.fail(a);
            t.fail(b);
        }
        assert!(t.check(a).is_err() && t.check(b).is_err());
        for _ in 0..10 {
            t.fail(c);
            assert!(t.check(c).is_ok(), "a new link shared a held-back count");
        }
        assert!(LinkKey::of("not an id").is_none());
        assert!(LinkKey::of(&"A".repeat(23)).is_none());
    }

    use super::*;

    /// Concurrent good attempts from one source (a CI fleet behind one
    /// address) are never held back, however their `begin`s and `end`s
    /// interleave: found as a rare 429 in the JWT login benchmark.
    #[test]
    fn concurrent_good_attempts_are_never_held_back() {
        let t = Arc::new(Throttle::<IpAddr>::with_capacity(LOGIN_BACKOFF, 16));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        t.begin(ip).expect("a source with no failure was held back");
                        t.end(ip, Outcome::Neutral);
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert!(t.check(ip).is_ok());
    }

    #[test]
    fn ipv6_sources_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        let lo: IpAddr = "::1".parse().unwrap();
        assert!(source_key(lo).is_loopback());
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn backoff_doubles_after_the_free_failures_and_success_does_not_reset_it() {
        let t = Throttle::new(Backoff {
            free: 2,
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
            forget: Duration::from_secs(900),
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..2 {
            t.begin(ip).unwrap();
            t.end(ip, Outcome::Failed);
        }
        // The third attempt waits 1 s.
        let wait = t.begin(ip).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert_eq!(t.wait_after(1), Duration::ZERO);
        assert_eq!(t.wait_after(3), Duration::from_secs(2));
        assert_eq!(t.wait_after(5), Duration::from_secs(8));
        assert_eq!(t.wait_after(60), Duration::from_secs(8));
        // Another source is not held back.
        t.begin("192.0.2.2".parse().unwrap()).unwrap();
        // A success refunds only itself.
        let t = Throttle::new(Backoff {
            free: 2,
            base: Duration::from_secs(60),
            max: Duration::from_secs(60),
            forget: Duration::from_secs(900),
        });
        t.begin(ip).unwrap();
        t.end(ip, Outcome::Failed);
        t.begin(ip).unwrap();
        t.end(ip, Outcome::Neutral);
        t.begin(ip).unwrap();
        t.end(ip, Outcome::Failed);
        assert!(t.begin(ip).is_err());
    }

    #[test]
    fn neutral_answers_are_refunded() {
        let t = Throttle::new(Backoff {
            free: 1,
            base: Duration::from_secs(60),
            max: Duration::from_secs(60),
            forget: Duration::from_secs(900),
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            t.begin(ip).unwrap();
            t.end(ip, Outcome::Neutral);
        }
        t.begin(ip).unwrap();
        t.end(ip, Outcome::Failed);
        assert!(t.begin(ip).is_err());
    }

    #[test]
    fn throttle_table_stays_bounded_when_full_of_blocked_sources() {
        let t = Throttle::with_capacity(
            Backoff {
                free: 1,
                base: Duration::from_secs(60),
                max: Duration::from_secs(60),
                forget: Duration::from_secs(900),
            },
            100,
        );
        // Many /64s, each failing once: all held back, table full.
        let fail = |i: u32| {
            let ip = IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                (i >> 16) as u16,
                i as u16,
                0,
                0,
                0,
                1,
            ));
            let began = t.begin(ip);
            if began.is_ok() {
                t.end(ip, Outcome::Failed);
            }
            began
        };
        for i in 0..100 {
            fail(i).unwrap();
        }
        // Ten thousand more sources do not grow it: they share one count,
        // which holds them back together once it has failed.
        assert!(fail(100).is_ok());
        for i in 101..10_000 {
            assert!(fail(i).is_err(), "source {i}");
        }
        let len = t.sources.lock().unwrap().map.len();
        assert!(len <= 101, "{len} entries");
        // IPv4 sources overflow into a count of their own.
        assert!(t.begin("192.0.2.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn connections_are_limited_per_source() {
        let limit = ConnectionLimit::new(2);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::2".parse().unwrap();
        let a = limit.acquire(ip).unwrap();
        let _b = limit.acquire(same_64).unwrap();
        assert!(limit.acquire(ip).is_none());
        assert!(limit.acquire("2001:db8:0:1::1".parse().unwrap()).is_some());
        drop(a);
        assert!(limit.acquire(ip).is_some());
    }
}
