//! dudect-style timing tests: each test times one operation on inputs of two
//! classes, interleaved at random, and dudect-bencher's Welch t-test says
//! whether the two timing distributions differ. |t| below 4.5 after many
//! measurements is the usual bar for "no difference found".
//!
//! The classes are chosen so that a comparison whose time depends on a
//! secret would separate them:
//!
//! * `token_lookup`: `Coffer::authenticate` with tokens that differ from
//!   the root token in one body character (a random one, changed to a
//!   random other character; checksum made right, so they get past the
//!   format check and are looked up) against fresh random tokens. A lookup
//!   or comparison that stopped at the first differing byte of the raw
//!   token would take longer for the near misses. (With one fixed near
//!   miss against random tokens, |t| reached 26: the same key looked up
//!   again and again is faster in SQLite's index and the branch
//!   predictors, whatever it is. The token's HMAC is what is looked up,
//!   so a near miss and a random token are equally unrelated to a stored
//!   hash; both classes now look up a different hash each time.)
//! * `token_checksum`: the format check with a checksum wrong in its first
//!   character against one wrong in its last.
//! * `login_known_vs_unknown`: `Coffer::login` with a wrong password for a
//!   user that exists against a name that does not (the unknown name must
//!   cost the same Argon2 work). Each name's failure count is cleared
//!   before each attempt, outside the timed part, so pacing never starts.
//! * `unseal_share_belongs` and `unseal_share_near`: the unseal check
//!   (Shamir combination, then opening the wrapped root key with the result,
//!   the steps `Coffer::unseal` runs for each combination) with a threshold
//!   of 3: a set holding a second share that belongs (and a wrong third)
//!   against one holding a random second share; and a set whose third share
//!   is the right one with its last byte changed against a random third.
//!   Every set in these two tests fails to open.
//!
//! `COFFER_TIMING_SAME=1` gives both classes the left class's input (the
//! token tests): a check of the harness and the host, which should find
//! no difference.
//!
//! `COFFER_TIMING_N` sets the measurements per test (default 1,000,000);
//! `COFFER_TIMING_LOGIN_N` those of the login test (default 2,000: each
//! is an Argon2id run of 19 MiB).
//!
//! Both classes of a test go through the same steps outside the timed
//! part (a random input is made either way, and the one used is copied
//! from the source the class picks): an earlier version that did extra
//! work for one class only showed |t| near 30 for the AES-GCM open of the
//! root key, which disappeared once the steps were the same.

use std::sync::{Arc, LazyLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_core::{Coffer, CoreOptions, InviteRequest, LoginRequest};
use coffer_crypto::shamir::{self, Share};
use coffer_crypto::{Key256, SecretString, UnsealKey, token};
use coffer_store::{Expect, Mutation, SqliteStore, Storage};
use dudect_bencher::rand::{Rng, RngExt};
use dudect_bencher::{BenchRng, Class, CtRunner, ctbench_main};
use sha2::{Digest, Sha256};

const USER: &str = "timing-user";
const UNKNOWN: &str = "nobody-here";
const PASSWORD: &str = "correct horse battery staple 42";
const WRONG_PASSWORD: &str = "incorrect horse battery staple";

struct Fixture {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    store: Arc<dyn Storage>,
    coffer: Coffer,
    root_token: SecretString,
    shares: Vec<Share>,
    wrapped_root: Vec<u8>,
}

/// One initialised, unsealed coffer over SQLite (threshold 3 of 5), with one
/// user, shared by every test.
static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("temporary directory");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let store: Arc<dyn Storage> =
        Arc::new(SqliteStore::open(&dir.path().join("coffer.db")).expect("sqlite store"));
    let (coffer, root_token, keys) = rt.block_on(async {
        let coffer = Coffer::open(store.clone(), CoreOptions::default())
            .await
            .expect("open");
        let init = coffer.init(5, 3).await.expect("init");
        for key in &init.unseal_keys[..3] {
            coffer.unseal(key.expose_secret()).await.expect("unseal");
        }
        let root = coffer
            .authenticate(init.root_token.expose_secret(), None)
            .await
            .expect("root token");
        coffer
            .write_policy(
                &root,
                "timing",
                r#"path "timing/*" { capabilities = ["read"] }"#,
            )
            .await
            .expect("policy");
        let (code, _) = coffer
            .create_invite(
                &root,
                &InviteRequest {
                    policies: vec!["timing".into()],
                    ttl: None,
                },
            )
            .await
            .expect("invite");
        coffer
            .accept_invite(code.expose_secret(), USER, PASSWORD)
            .await
            .expect("accept");
        (coffer, init.root_token, init.unseal_keys)
    });
    let wrapped_root = rt
        .block_on(store.get_system("root-key"))
        .expect("read")
        .expect("wrapped root key stored");
    let shares = keys
        .iter()
        .map(|k| Share::decode(k.expose_secret()).expect("share"))
        .collect();
    Fixture {
        _dir: dir,
        rt,
        store,
        coffer,
        root_token,
        shares,
        wrapped_root,
    }
});

fn samples(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn n() -> usize {
    samples("COFFER_TIMING_N", 1_000_000)
}

/// `COFFER_TIMING_SAME=1`: the harness checking itself. Both classes take
/// the left class's input, so the two timing distributions are the same
/// by construction and any |t| above 4.5 comes from the measurement (the
/// host, the interleaving, the harness), not from the code under test.
fn same() -> bool {
    std::env::var("COFFER_TIMING_SAME").is_ok_and(|v| v == "1")
}

/// The token checksum as `coffer_crypto::token` computes it (first 4 bytes
/// of SHA-256 of prefix and body, 6 base62 digits).
fn with_checksum(prefix_and_body: &str) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let d = Sha256::digest(prefix_and_body.as_bytes());
    let mut v = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    let mut sum = [b'0'; 6];
    for slot in sum.iter_mut().rev() {
        *slot = ALPHABET[(v % 62) as usize];
        v /= 62;
    }
    format!("{prefix_and_body}{}", std::str::from_utf8(&sum).unwrap())
}

/// `s` with the base62 character at `i` replaced by a different one.
fn change_char(s: &str, i: usize) -> String {
    let mut b = s.as_bytes().to_vec();
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

fn class(rng: &mut BenchRng) -> Class {
    if rng.random::<bool>() {
        Class::Left
    } else {
        Class::Right
    }
}

fn token_lookup(runner: &mut CtRunner, rng: &mut BenchRng) {
    let fx = &*FIXTURE;
    let root = fx.root_token.expose_secret();
    let body_end = token::TOKEN_LEN - token::TOKEN_CHECKSUM_LEN;
    let same = same();
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for _ in 0..n() {
        // The same steps for both classes: a near miss (the root token with
        // one body character changed, a well-formed token equal to a valid
        // one in all but one byte of its body) and a random token are made
        // either way, and the one used is the one the class picks.
        let mut body = root.as_bytes()[..body_end].to_vec();
        let at = token::TOKEN_PREFIX.len() + rng.random_range(0..token::TOKEN_BODY_LEN);
        let mut with = ALPHABET[rng.random_range(0..62)];
        if with == body[at] {
            with = if with == b'A' { b'B' } else { b'A' };
        }
        body[at] = with;
        let near = with_checksum(std::str::from_utf8(&body).unwrap());
        let random = token::generate_token();
        let c = class(rng);
        let raw = match c {
            Class::Right if !same => random.expose_secret(),
            _ => near.as_str(),
        }
        .to_owned();
        assert!(token::is_well_formed(&raw));
        runner.run_one(c, || {
            fx.rt.block_on(fx.coffer.authenticate(&raw, None)).is_err()
        });
    }
}

fn token_checksum(runner: &mut CtRunner, rng: &mut BenchRng) {
    let good = token::generate_token().expose_secret().to_owned();
    let first = change_char(&good, token::TOKEN_LEN - token::TOKEN_CHECKSUM_LEN);
    let last = change_char(&good, token::TOKEN_LEN - 1);
    let same = same();
    // One buffer for both classes, refilled before each measurement, so
    // that where each string lies in memory is not a difference between
    // the classes.
    let mut buf = String::with_capacity(token::TOKEN_LEN);
    for _ in 0..n() {
        let c = class(rng);
        buf.clear();
        buf.push_str(match c {
            Class::Right if !same => &last,
            _ => &first,
        });
        let raw = buf.as_str();
        runner.run_one(c, || token::is_well_formed(std::hint::black_box(raw)));
    }
}

fn login_known_vs_unknown(runner: &mut CtRunner, rng: &mut BenchRng) {
    let fx = &*FIXTURE;
    for _ in 0..samples("COFFER_TIMING_LOGIN_N", 2_000) {
        // Forget both names' failures (outside the timed part), so the
        // pacing that starts after 100 failures never does.
        fx.rt
            .block_on(
                fx.store.commit(
                    [USER, UNKNOWN]
                        .iter()
                        .map(|k| Mutation::DeleteObject {
                            kind: "login-failures".into(),
                            key: (*k).into(),
                            expect: Expect::Any,
                        })
                        .collect(),
                ),
            )
            .expect("clear failures");
        let (c, user) = match class(rng) {
            Class::Left => (Class::Left, USER),
            Class::Right => (Class::Right, UNKNOWN),
        };
        runner.run_one(c, || {
            let request = LoginRequest {
                user,
                password: WRONG_PASSWORD,
                totp: None,
            };
            let refused = fx.rt.block_on(fx.coffer.login(&request)).is_err();
            assert!(refused);
            refused
        });
    }
}

/// The unseal check of one combination: what `Coffer::unseal` does for it.
fn opens(set: &[Share], wrapped_root: &[u8]) -> bool {
    let Ok(combined) = shamir::combine(set) else {
        return false;
    };
    let Ok(key) = Key256::from_slice(combined.expose_secret()) else {
        return false;
    };
    UnsealKey::from(key).unwrap_root(wrapped_root).is_ok()
}

fn share(x: u8, y: &[u8]) -> Share {
    let mut raw = vec![x];
    raw.extend_from_slice(y);
    Share::decode(&STANDARD.encode(raw)).expect("share")
}

fn y_of(s: &Share) -> Vec<u8> {
    let raw = STANDARD.decode(s.encode().expose_secret()).expect("base64");
    raw[1..].to_vec()
}

fn unseal_share_belongs(runner: &mut CtRunner, rng: &mut BenchRng) {
    let fx = &*FIXTURE;
    let len = y_of(&fx.shares[0]).len();
    let mut wrong3 = vec![0u8; len];
    rng.fill_bytes(&mut wrong3);
    let wrong3 = share(fx.shares[2].x(), &wrong3);
    let right_y = y_of(&fx.shares[1]);
    for _ in 0..n() {
        // Both classes' shares are made the same way (fresh bytes, then a
        // share), so that only their contents differ.
        let mut random = vec![0u8; len];
        rng.fill_bytes(&mut random);
        let c = class(rng);
        let y = match c {
            Class::Left => &right_y,
            Class::Right => &random,
        };
        let second = share(fx.shares[1].x(), y);
        let set = [fx.shares[0].clone(), second, wrong3.clone()];
        runner.run_one(c, || {
            let ok = opens(&set, &fx.wrapped_root);
            assert!(!ok);
            ok
        });
    }
}

fn unseal_share_near(runner: &mut CtRunner, rng: &mut BenchRng) {
    let fx = &*FIXTURE;
    let mut y = y_of(&fx.shares[2]);
    let len = y.len();
    *y.last_mut().unwrap() ^= 1;
    let near = share(fx.shares[2].x(), &y);
    assert!(opens(&fx.shares[..3], &fx.wrapped_root));
    let _ = len;
    for (set, c) in near_sets(&near, len, rng) {
        runner.run_one(c, || {
            let ok = opens(&set, &fx.wrapped_root);
            assert!(!ok);
            ok
        });
    }
}

/// The sets of `unseal_share_near`, made up front the same way for both
/// classes: the first two shares right, the third `near` or random.
fn near_sets(near: &Share, len: usize, rng: &mut BenchRng) -> Vec<([Share; 3], Class)> {
    let fx = &*FIXTURE;
    let near_y = y_of(near);
    (0..n())
        .map(|_| {
            let mut random = vec![0u8; len];
            rng.fill_bytes(&mut random);
            let c = class(rng);
            let y = match c {
                Class::Left => &near_y,
                Class::Right => &random,
            };
            (
                [
                    fx.shares[0].clone(),
                    fx.shares[1].clone(),
                    share(fx.shares[2].x(), y),
                ],
                c,
            )
        })
        .collect()
}

/// `unseal_share_near` for the Shamir combination alone (no AES-GCM).
fn unseal_combine_near(runner: &mut CtRunner, rng: &mut BenchRng) {
    let fx = &*FIXTURE;
    let mut y = y_of(&fx.shares[2]);
    let len = y.len();
    *y.last_mut().unwrap() ^= 1;
    let near = share(fx.shares[2].x(), &y);
    for (set, c) in near_sets(&near, len, rng) {
        runner.run_one(c, || shamir::combine(&set).map(|s| s.expose_secret()[0]));
    }
}

/// `unseal_share_near` for opening the wrapped root key alone, with the
/// key the near set combines to against random keys.
fn unseal_open_near(runner: &mut CtRunner, rng: &mut BenchRng) {
    let fx = &*FIXTURE;
    let mut y = y_of(&fx.shares[2]);
    *y.last_mut().unwrap() ^= 1;
    let near = [
        fx.shares[0].clone(),
        fx.shares[1].clone(),
        share(fx.shares[2].x(), &y),
    ];
    let near_key = shamir::combine(&near).unwrap().expose_secret().to_vec();
    for _ in 0..n() {
        // The same steps for both classes: a random key is drawn either
        // way, and the key used is copied from the source the class picks.
        let mut random = [0u8; 32];
        rng.fill_bytes(&mut random);
        let c = class(rng);
        let src: &[u8] = match c {
            Class::Left => &near_key,
            Class::Right => &random,
        };
        let mut k = [0u8; 32];
        k.copy_from_slice(src);
        runner.run_one(c, || {
            UnsealKey::from(Key256::from_slice(&k).unwrap())
                .unwrap_root(&fx.wrapped_root)
                .is_ok()
        });
    }
}

ctbench_main!(
    token_lookup,
    token_checksum,
    login_known_vs_unknown,
    unseal_share_belongs,
    unseal_share_near,
    unseal_combine_near,
    unseal_open_near
);
