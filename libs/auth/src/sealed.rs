//! Webhook secrets at rest: AES-256-GCM under a key that lives outside the database (a
//! Secrets Manager secret deployed, a local file in development), so a copy of the
//! database alone signs nothing.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

pub struct SealingKey(LessSafeKey);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(…)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a sealed secret could not be opened (another key, or altered)")]
pub struct Unsealable;

impl SealingKey {
    /// The key derived from a secret string (SHA-256 of it): any length of random text.
    pub fn from_secret(secret: &str) -> SealingKey {
        let digest = Sha256::digest(secret.as_bytes());
        SealingKey(LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &digest)
                .unwrap_or_else(|_| unreachable!("32 bytes is an AES-256 key")),
        ))
    }

    /// A random key (tests, and a first local run that writes it down).
    pub fn random_secret() -> String {
        let mut bytes = [0u8; 32];
        let _ = SystemRandom::new().fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// nonce || ciphertext || tag; the row's id is the associated data, so a sealed secret
    /// copied onto another webhook does not open.
    pub fn seal(&self, plaintext: &[u8], owner: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        let _ = SystemRandom::new().fill(&mut nonce);
        let mut out = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(owner), &mut out)
            .unwrap_or_else(|_| unreachable!("a secret is far below AES-GCM's limit"));
        let mut sealed = nonce.to_vec();
        sealed.extend(out);
        sealed
    }

    pub fn open(&self, sealed: &[u8], owner: &[u8]) -> Result<Vec<u8>, Unsealable> {
        if sealed.len() < NONCE_LEN {
            return Err(Unsealable);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealable)?;
        let mut buf = rest.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(owner), &mut buf)
            .map_err(|_| Unsealable)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_owner() {
        let key = SealingKey::from_secret("one");
        let sealed = key.seal(b"whsec_abc", b"hook-1");
        assert!(!sealed.windows(9).any(|w| w == b"whsec_abc"), "not in the clear");
        assert_eq!(key.open(&sealed, b"hook-1").unwrap(), b"whsec_abc");
        assert!(key.open(&sealed, b"hook-2").is_err());
        assert!(SealingKey::from_secret("two").open(&sealed, b"hook-1").is_err());
        assert_ne!(
            sealed,
            key.seal(b"whsec_abc", b"hook-1"),
            "a nonce of its own each time"
        );
    }
}
