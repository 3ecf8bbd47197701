//! argon2id password hashing with the crate's recommended parameters (OWASP's minimum:
//! m = 19 MiB, t = 2, p = 1). Both calls are CPU-bound: run them on a blocking thread.
//!
//! The 19 MiB of argon2 working memory come from a small pool of reused buffers instead of
//! a fresh allocation per hash. Allocated per call, glibc kept each freed buffer in the
//! arena of whichever thread ran the hash, and a Lambda environment grew by an order of
//! magnitude (scripts/bench-notes.md, "Auth"). With the pool it holds one buffer per hash that
//! ever ran concurrently — one in a Lambda, which serves one request at a time.

use std::sync::Mutex;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Working-memory buffers of `Params::default()`'s size, returned after each hash.
static POOL: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// Runs `f` with working memory for `params`: a pooled buffer for the default parameters,
/// a one-off allocation for anything else (hashes made under older parameters).
fn with_memory<R>(params: &Params, f: impl FnOnce(&mut [Block]) -> R) -> R {
    let blocks = params.block_count();
    if blocks != Params::default().block_count() {
        return f(&mut vec![Block::default(); blocks]);
    }
    let taken = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut buffer = taken.unwrap_or_else(|| vec![Block::default(); blocks]);
    let result = f(&mut buffer);
    POOL.lock().unwrap_or_else(|e| e.into_inner()).push(buffer);
    result
}

/// The raw argon2id output for `password` under `params`, `version` and `salt`.
fn compute(
    password: &[u8],
    version: Version,
    params: Params,
    salt: Salt<'_>,
    len: usize,
) -> Result<Output, argon2::password_hash::Error> {
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf)?;
    let argon2 = Argon2::new(Algorithm::Argon2id, version, params.clone());
    Output::init_with(len, |out| {
        with_memory(&params, |memory| {
            argon2.hash_password_into_with_memory(password, salt_bytes, out, memory)
        })
        .map_err(Into::into)
    })
}

/// A PHC string (`$argon2id$v=19$...`) for `password`.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let encoded = ParamsString::try_from(&params).and_then(|param_string| {
        let output = compute(
            password.as_bytes(),
            Version::V0x13,
            params,
            salt.as_salt(),
            Params::DEFAULT_OUTPUT_LEN,
        )?;
        Ok(PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: param_string,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        }
        .to_string())
    });
    // Only fails on parameter misconfiguration, which the constants above rule out.
    encoded.unwrap_or_else(|e| panic!("argon2 parameters are invalid: {e}"))
}

/// Whether `password` matches `phc`. A malformed stored hash, or one of another algorithm,
/// never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    // `Output`'s equality is constant-time.
    compute(password.as_bytes(), version, params, salt, expected.len())
        .is_ok_and(|computed| computed == expected)
}

/// Spends the same effort as a real verification, for logins with an unknown email, so the
/// response time does not tell whether an account exists.
pub fn verify_dummy(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("dummy password for timing"));
    let _ = verify(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse");
        let b = hash("correct horse");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_ne!(a, b, "salts differ");
        assert!(verify("correct horse", &a));
        assert!(!verify("correct horse!", &a));
        assert!(!verify("x", "not a hash"));
    }

    /// The pooled path is the crate's algorithm, byte for byte: hashes stored before the
    /// pool verify, and the crate's own verifier accepts ours.
    #[test]
    fn agrees_with_the_argon2_crate_both_ways() {
        let salt = SaltString::generate(&mut OsRng);
        let reference = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(verify("correct horse", &reference));
        assert!(!verify("correct horsf", &reference));

        let ours = hash("battery staple");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"battery staple", &parsed)
            .is_ok());
    }

    /// Hashes under other parameters (older or newer policy) still verify, off the pool.
    #[test]
    fn other_parameters_verify_without_the_pool() {
        let params = Params::new(8 * 1024, 3, 1, None).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"old policy", &salt)
            .unwrap()
            .to_string();
        assert!(verify("old policy", &phc));
        assert!(!verify("new policy", &phc));
    }

    #[test]
    fn other_algorithms_and_broken_hashes_never_match() {
        let salt = SaltString::generate(&mut OsRng);
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default())
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(!verify("pw", &argon2i));
        let ours = hash("pw");
        let without_hash = ours.rsplit_once('$').unwrap().0;
        assert!(!verify("pw", without_hash));
        assert!(!verify("pw", &ours.replace("m=19456", "m=99999999999")));
    }

    /// Sequential hashes reuse one buffer: the pool does not grow with use.
    #[test]
    fn sequential_hashes_reuse_the_buffer() {
        for _ in 0..3 {
            let h = hash("again");
            assert!(verify("again", &h));
        }
        // Other tests may hash concurrently on other threads; never more than they.
        let pooled = POOL.lock().unwrap().len();
        assert!((1..=4).contains(&pooled), "{pooled} buffers pooled");
    }
}
