//! What the authorizer pays per request (token check) and what sign-up, login and password
//! change pay (argon2id at the parameters in `password.rs`: m = 19 MiB, t = 2, p = 1).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::hint::black_box;

use bookshelf_auth::{password, SigningKeys, TokenIssuer, TokenVerifier};
use criterion::{criterion_group, criterion_main, Criterion};
use uuid::Uuid;

fn tokens(c: &mut Criterion) {
    let keys = SigningKeys::generate();
    let issuer = TokenIssuer::new(&keys);
    let verifier = TokenVerifier::new(keys.public_keys());
    let now = chrono::Utc::now().timestamp();
    let token = issuer
        .issue(Uuid::new_v4(), "user", Uuid::new_v4(), now)
        .unwrap_or_default();
    c.bench_function("token_verify_eddsa", |b| {
        b.iter(|| verifier.verify(black_box(&token)))
    });
    c.bench_function("token_issue_eddsa", |b| {
        b.iter(|| issuer.issue(black_box(Uuid::nil()), "user", Uuid::nil(), now))
    });
    let forged = format!("{}x", &token[..token.len() - 1]);
    c.bench_function("token_reject_bad_signature", |b| {
        b.iter(|| verifier.verify(black_box(&forged)))
    });
}

fn passwords(c: &mut Criterion) {
    let mut group = c.benchmark_group("argon2id_m19456_t2_p1");
    group.sample_size(20);
    let hash = password::hash("correct horse battery staple");
    group.bench_function("hash", |b| {
        b.iter(|| password::hash(black_box("correct horse battery staple")))
    });
    group.bench_function("verify", |b| {
        b.iter(|| password::verify(black_box("correct horse battery staple"), &hash))
    });
    group.finish();
}

criterion_group!(benches, tokens, passwords);
criterion_main!(benches);
