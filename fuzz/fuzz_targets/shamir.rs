//! Share decoding and combining never panic on hostile shares, and any
//! `threshold` of the shares from a split give the secret back.
#![no_main]

use arbitrary::Arbitrary;
use coffer_crypto::shamir::{Share, combine, split};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    /// Share strings as an operator might paste them.
    Decode(Vec<String>),
    /// A secret, the parameters, and which shares to combine.
    RoundTrip {
        secret: Vec<u8>,
        shares: u8,
        threshold: u8,
        pick: Vec<u8>,
    },
}

fuzz_target!(|input: Input| match input {
    Input::Decode(strings) => {
        let shares: Vec<Share> = strings
            .iter()
            .filter_map(|s| Share::decode(s).ok())
            .collect();
        for share in &shares {
            assert_ne!(share.x(), 0);
            let again = Share::decode(share.encode().expose_secret()).unwrap();
            assert_eq!(again.x(), share.x());
        }
        let _ = combine(&shares);
    }
    Input::RoundTrip {
        secret,
        shares,
        threshold,
        pick,
    } => {
        let Ok(all) = split(&secret, shares, threshold) else {
            assert!(secret.is_empty() || threshold == 0 || threshold > shares);
            return;
        };
        assert_eq!(all.len(), usize::from(shares));
        // Choose `threshold` distinct shares in an order the input picks.
        let mut pool: Vec<usize> = (0..all.len()).collect();
        let mut chosen = Vec::new();
        for (i, p) in pick.iter().chain(std::iter::repeat(&0)).enumerate() {
            if chosen.len() == usize::from(threshold) || i > 1024 {
                break;
            }
            let at = usize::from(*p) % pool.len();
            chosen.push(pool.remove(at));
        }
        let picked: Vec<Share> = chosen
            .iter()
            .map(|&i| Share::decode(all[i].encode().expose_secret()).unwrap())
            .collect();
        let back = combine(&picked).expect("threshold shares combine");
        assert_eq!(back.expose_secret(), secret.as_slice());
    }
});
