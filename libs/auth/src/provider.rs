//! jsonwebtoken's cryptography, on ring and for EdDSA only.
//!
//! jsonwebtoken 10+ delegates signing to a `CryptoProvider`; its two built-in ones would add
//! either aws-lc (a C build) or RustCrypto's RSA/ECDSA/HMAC crates to every Lambda. Ours is
//! a few lines over ring, which TLS already links, and it knows exactly one algorithm: a
//! second line of the allow-list that `TokenVerifier` enforces.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{new_error, ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{Error as SignatureError, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::Digest;

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(unsupported()),
        rsa_pub_components_from_public_key: |_| Err(unsupported()),
        ec_pub_components_from_private_key: |_, _| Err(unsupported()),
        ed_pub_components_from_private_key: ed_public_from_private,
        compute_digest: digest,
    },
};

/// Makes ours the process's provider; idempotent (a second call finds it installed).
pub(crate) fn install() {
    let _ = PROVIDER.install_default();
}

fn unsupported() -> jsonwebtoken::errors::Error {
    new_error(ErrorKind::UnsupportedAlgorithm)
}

struct Ed25519Signer(Ed25519KeyPair);

impl Signer<Vec<u8>> for Ed25519Signer {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        Ok(self.0.sign(msg).as_ref().to_vec())
    }
}

impl JwtSigner for Ed25519Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

struct Ed25519Verifier(Vec<u8>);

impl Verifier<Vec<u8>> for Ed25519Verifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(msg, signature)
            .map_err(|_| SignatureError::new())
    }
}

impl JwtVerifier for Ed25519Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if *algorithm != Algorithm::EdDSA || key.family() != AlgorithmFamily::Ed {
        return Err(new_error(ErrorKind::InvalidAlgorithm));
    }
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.as_bytes())
        .map_err(|_| new_error(ErrorKind::InvalidEddsaKey))?;
    Ok(Box::new(Ed25519Signer(pair)))
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::EdDSA || key.family() != AlgorithmFamily::Ed {
        return Err(new_error(ErrorKind::InvalidAlgorithm));
    }
    let raw = key.try_get_as_bytes()?;
    if raw.len() != 32 {
        return Err(new_error(ErrorKind::InvalidEddsaKey));
    }
    Ok(Box::new(Ed25519Verifier(raw.to_vec())))
}

fn ed_public_from_private(pkcs8: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(unsupported());
    }
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
        .map_err(|_| new_error(ErrorKind::InvalidEddsaKey))?;
    Ok(pair.public_key().as_ref().to_vec())
}

fn digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    Ok(match hash {
        ThumbprintHash::SHA256 => sha2::Sha256::digest(data).to_vec(),
        ThumbprintHash::SHA384 => sha2::Sha384::digest(data).to_vec(),
        ThumbprintHash::SHA512 => sha2::Sha512::digest(data).to_vec(),
        _ => return Err(unsupported()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_ed25519_and_refuses_every_other_algorithm() {
        install();
        let keys = crate::SigningKeys::generate();
        let encoding = EncodingKey::from_ed_der(keys.active_pkcs8());
        let decoding = DecodingKey::from_ed_der(&keys.public_keys().keys[0].raw);
        let signature = jsonwebtoken::crypto::sign(b"payload", &encoding, Algorithm::EdDSA).unwrap();
        assert!(jsonwebtoken::crypto::verify(&signature, b"payload", &decoding, Algorithm::EdDSA).unwrap());
        assert!(!jsonwebtoken::crypto::verify(&signature, b"payloaD", &decoding, Algorithm::EdDSA).unwrap());
        let hmac = EncodingKey::from_secret(b"secret").unwrap();
        assert!(jsonwebtoken::crypto::sign(b"payload", &hmac, Algorithm::HS256).is_err());
        assert!(jsonwebtoken::crypto::verify(&signature, b"payload", &decoding, Algorithm::HS256).is_err());
    }
}
