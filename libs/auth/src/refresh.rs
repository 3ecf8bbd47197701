//! Opaque refresh tokens: 256 random bits, base64url. Only their SHA-256 is stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// How long an unused refresh token stays valid.
pub const REFRESH_TOKEN_TTL_DAYS: i64 = 30;

pub struct RefreshToken {
    /// Handed to the client once, never stored.
    pub token: String,
    pub hash: [u8; 32],
}

pub fn generate() -> RefreshToken {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .unwrap_or_else(|_| panic!("the operating system's random source failed"));
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = digest(&token);
    RefreshToken { token, hash }
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let a = generate();
        let b = generate();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 43);
        assert_eq!(digest(&a.token), a.hash);
    }
}
