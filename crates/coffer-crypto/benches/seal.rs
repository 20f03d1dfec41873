//! Sealing and opening values with the keyring (AES-256-GCM with the
//! path/version AAD), at the sizes DESIGN.md names: 1 KiB (a few microseconds
//! at most) and 1 MiB (near the AEAD's single-core throughput). Also the token
//! hash every authenticated request computes.
//!
//! `cargo bench -p coffer-crypto --bench seal`

use coffer_crypto::Keyring;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let keyring = Keyring::generate(0);
    let mut group = c.benchmark_group("keyring");
    for size in [1024usize, 64 * 1024, 1024 * 1024] {
        let plaintext = vec![0x5a; size];
        let (key_id, sealed) = keyring.seal_value("app/prod/KEY", 7, &plaintext);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal_value", size), &plaintext, |b, p| {
            b.iter(|| keyring.seal_value("app/prod/KEY", 7, p))
        });
        group.bench_with_input(BenchmarkId::new("open_value", size), &sealed, |b, s| {
            b.iter(|| keyring.open_value("app/prod/KEY", 7, key_id, s).unwrap())
        });
    }
    group.finish();

    // The ceiling: the bare AEAD on the same buffer, no AAD building, no copy.
    let mut raw = c.benchmark_group("bare aes-256-gcm");
    let cipher = {
        use aes_gcm::KeyInit;
        aes_gcm::Aes256Gcm::new(&[7u8; 32].into())
    };
    for size in [1024usize, 1024 * 1024] {
        let mut buf = vec![0x5a; size];
        raw.throughput(Throughput::Bytes(size as u64));
        raw.bench_function(BenchmarkId::new("encrypt_in_place", size), |b| {
            b.iter(|| {
                use aes_gcm::aead::AeadInPlace;
                cipher
                    .encrypt_in_place_detached(&[1u8; 12].into(), b"aad", &mut buf)
                    .unwrap()
            })
        });
    }
    raw.finish();

    let token = coffer_crypto::token::generate_token();
    c.bench_function("token_hash", |b| {
        b.iter(|| keyring.token_hash(token.expose_secret()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
