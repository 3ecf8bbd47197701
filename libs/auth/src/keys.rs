//! Ed25519 signing keys and their public halves.
//!
//! Stored form (a Secrets Manager secret when deployed, a git-ignored file locally):
//! `{"activeKid": "...", "keys": [{"kid": "...", "privateKeyPkcs8": "<base64>"}]}`.
//! Every key in `keys` stays published in the JWK Set, so tokens signed before a rotation
//! keep verifying until they expire; only `activeKid` signs new tokens.
//! The authorizer and the JWKS route get the public JWK Set only.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key material is not valid JSON of the expected shape: {0}")]
    Format(#[from] serde_json::Error),
    #[error("key {0:?} is not a valid Ed25519 PKCS#8 key")]
    BadKey(String),
    #[error("activeKid {0:?} names no key in the set")]
    NoActiveKey(String),
    #[error("the key set is empty")]
    Empty,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKeys {
    active_kid: String,
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKey {
    kid: String,
    private_key_pkcs8: String,
}

/// One public key: its id and the raw 32-byte Ed25519 point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    pub raw: Vec<u8>,
}

/// A JWK Set of Ed25519 public keys (RFC 8037 `OKP` keys).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicKeys {
    pub keys: Vec<PublicKey>,
}

#[derive(Serialize, Deserialize)]
struct Jwk {
    kty: String,
    crv: String,
    x: String,
    kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    use_: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

impl PublicKeys {
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn to_jwks(&self) -> serde_json::Value {
        let jwks = Jwks {
            keys: self
                .keys
                .iter()
                .map(|k| Jwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    x: URL_SAFE_NO_PAD.encode(&k.raw),
                    kid: k.kid.clone(),
                    alg: Some("EdDSA".into()),
                    use_: Some("sig".into()),
                })
                .collect(),
        };
        serde_json::to_value(jwks).unwrap_or_default()
    }

    /// Reads a JWK Set, keeping only Ed25519 keys: anything else cannot verify our tokens.
    pub fn from_jwks_json(json: &str) -> Result<PublicKeys, KeyError> {
        let jwks: Jwks = serde_json::from_str(json)?;
        let keys: Vec<PublicKey> = jwks
            .keys
            .into_iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
            .map(|k| match URL_SAFE_NO_PAD.decode(&k.x) {
                Ok(raw) if raw.len() == 32 => Ok(PublicKey { kid: k.kid, raw }),
                _ => Err(KeyError::BadKey(k.kid)),
            })
            .collect::<Result<_, _>>()?;
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(PublicKeys { keys })
    }
}

/// The private keys; only the auth functions (and the local gateway) ever hold these.
pub struct SigningKeys {
    active_kid: String,
    /// PKCS#8 DER of every key, active first.
    pkcs8: Vec<(String, Vec<u8>)>,
    public: PublicKeys,
}

impl SigningKeys {
    /// A fresh key set with one new key.
    pub fn generate() -> SigningKeys {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .unwrap_or_else(|_| panic!("the operating system's random source failed"));
        let der = doc.as_ref().to_vec();
        let kid = kid_for(&der).unwrap_or_else(|| "ed25519-1".into());
        Self::from_parts(kid.clone(), vec![(kid, der)])
            .unwrap_or_else(|e| panic!("a freshly generated key did not load: {e}"))
    }

    fn from_parts(active_kid: String, pkcs8: Vec<(String, Vec<u8>)>) -> Result<Self, KeyError> {
        if pkcs8.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut public = Vec::new();
        for (kid, der) in &pkcs8 {
            let pair =
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| KeyError::BadKey(kid.clone()))?;
            public.push(PublicKey {
                kid: kid.clone(),
                raw: pair.public_key().as_ref().to_vec(),
            });
        }
        if !pkcs8.iter().any(|(k, _)| *k == active_kid) {
            return Err(KeyError::NoActiveKey(active_kid));
        }
        Ok(SigningKeys {
            active_kid,
            pkcs8,
            public: PublicKeys { keys: public },
        })
    }

    pub fn from_json(json: &str) -> Result<SigningKeys, KeyError> {
        let stored: StoredKeys = serde_json::from_str(json)?;
        let pkcs8 = stored
            .keys
            .into_iter()
            .map(|k| match STANDARD.decode(k.private_key_pkcs8.trim()) {
                Ok(der) => Ok((k.kid, der)),
                Err(_) => Err(KeyError::BadKey(k.kid)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_parts(stored.active_kid, pkcs8)
    }

    pub fn to_json(&self) -> String {
        let stored = StoredKeys {
            active_kid: self.active_kid.clone(),
            keys: self
                .pkcs8
                .iter()
                .map(|(kid, der)| StoredKey {
                    kid: kid.clone(),
                    private_key_pkcs8: STANDARD.encode(der),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&stored).unwrap_or_default()
    }

    pub fn active_kid(&self) -> &str {
        &self.active_kid
    }

    pub(crate) fn active_pkcs8(&self) -> &[u8] {
        self.pkcs8
            .iter()
            .find(|(k, _)| *k == self.active_kid)
            .map(|(_, der)| der.as_slice())
            .unwrap_or_default()
    }

    pub fn public_keys(&self) -> &PublicKeys {
        &self.public
    }
}

/// A key id derived from the public key, so the same key always gets the same id.
fn kid_for(pkcs8: &[u8]) -> Option<String> {
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).ok()?;
    let digest = Sha256::digest(pair.public_key().as_ref());
    Some(format!("ed25519-{}", URL_SAFE_NO_PAD.encode(&digest[..9])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_publishes_only_public_halves() {
        let keys = SigningKeys::generate();
        let again = SigningKeys::from_json(&keys.to_json()).unwrap();
        assert_eq!(again.active_kid(), keys.active_kid());
        let jwks = keys.public_keys().to_jwks();
        let text = jwks.to_string();
        assert!(!text.contains("privateKey") && !text.contains("\"d\""));
        assert_eq!(jwks["keys"][0]["kty"], "OKP");
        assert_eq!(jwks["keys"][0]["kid"], keys.active_kid());
        let parsed = PublicKeys::from_jwks_json(&text).unwrap();
        assert_eq!(&parsed, keys.public_keys());
    }

    #[test]
    fn rejects_bad_material() {
        assert!(SigningKeys::from_json("{}").is_err());
        assert!(
            SigningKeys::from_json(r#"{"activeKid":"a","keys":[{"kid":"a","privateKeyPkcs8":"AAAA"}]}"#)
                .is_err()
        );
        assert!(PublicKeys::from_jwks_json(r#"{"keys":[]}"#).is_err());
    }
}
