//! Ed25519 signing keys and their public halves.
//!
//! Stored form (a Secrets Manager secret when deployed, a git-ignored file locally):
//! `{"activeKid": "...", "keys": [{"kid": "...", "privateKeyPkcs8": "<base64>", "retireAt": 0}]}`.
//! Every key in `keys` stays published in the JWK Set, so tokens signed before a rotation
//! keep verifying; only `activeKid` signs new tokens. A rotation (`SigningKeys::rotated`)
//! gives the key it replaces a `retireAt` (Unix seconds) after which nothing verifies with
//! it, even in an environment that has not reloaded the set since.
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retire_at: Option<i64>,
}

/// How long a replaced key keeps verifying after a rotation: a signer still holding the old
/// set reloads within `KEY_RELOAD_SECS`, and its last token lives `ACCESS_TOKEN_TTL_SECS`
/// more; the rest is margin. Refresh tokens are opaque rows, untouched by key changes.
pub const ROTATION_OVERLAP_SECS: i64 = crate::token::ACCESS_TOKEN_TTL_SECS + 2 * KEY_RELOAD_SECS as i64;

/// How often an environment that holds keys reads them again.
pub const KEY_RELOAD_SECS: u64 = 300;

/// One public key: its id, the raw 32-byte Ed25519 point, and when it stops verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    pub raw: Vec<u8>,
    pub retire_at: Option<i64>,
}

impl PublicKey {
    /// Whether tokens signed by this key still verify at `now` (Unix seconds).
    pub fn live_at(&self, now: i64) -> bool {
        self.retire_at.is_none_or(|at| now < at)
    }
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
    /// Not a registered JWK member (RFC 7517 lets others be ignored): when our verifiers
    /// stop accepting this key.
    #[serde(default, rename = "retireAt", skip_serializing_if = "Option::is_none")]
    retire_at: Option<i64>,
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
                    retire_at: k.retire_at,
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
                Ok(raw) if raw.len() == 32 => Ok(PublicKey {
                    kid: k.kid,
                    raw,
                    retire_at: k.retire_at,
                }),
                _ => Err(KeyError::BadKey(k.kid)),
            })
            .collect::<Result<_, _>>()?;
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(PublicKeys { keys })
    }
}

/// One private key of a set.
#[derive(Clone)]
struct PrivateKey {
    kid: String,
    pkcs8: Vec<u8>,
    retire_at: Option<i64>,
}

/// The private keys; only the auth functions (and the local gateway) ever hold these.
pub struct SigningKeys {
    active_kid: String,
    /// Every key of the set, active first.
    keys: Vec<PrivateKey>,
    public: PublicKeys,
}

impl SigningKeys {
    /// A fresh key set with one new key.
    pub fn generate() -> SigningKeys {
        let key = new_key();
        Self::from_parts(key.kid.clone(), vec![key])
            .unwrap_or_else(|e| panic!("a freshly generated key did not load: {e}"))
    }

    /// The set after one rotation at `now`: a new key, active at once (verifiers that do
    /// not know it yet reload on its unknown `kid`); the key it replaces keeps verifying
    /// for `overlap` seconds (`ROTATION_OVERLAP_SECS`; 0 retires it at once, for a key
    /// that leaked); keys retired before this rotation are dropped.
    pub fn rotated(&self, now: i64, overlap: i64) -> SigningKeys {
        let new = new_key();
        let mut keys = vec![new.clone()];
        for key in &self.keys {
            let mut key = key.clone();
            if key.kid == self.active_kid {
                // Kept even when retired at once, so verifiers say why its tokens fail.
                let retire = now + overlap;
                key.retire_at = Some(key.retire_at.map_or(retire, |at| at.min(retire)));
                keys.push(key);
            } else if key.retire_at.is_none_or(|at| now < at) {
                keys.push(key);
            }
        }
        Self::from_parts(new.kid, keys).unwrap_or_else(|e| panic!("a rotated key set did not load: {e}"))
    }

    fn from_parts(active_kid: String, keys: Vec<PrivateKey>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut public = Vec::new();
        for key in &keys {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&key.pkcs8)
                .map_err(|_| KeyError::BadKey(key.kid.clone()))?;
            public.push(PublicKey {
                kid: key.kid.clone(),
                raw: pair.public_key().as_ref().to_vec(),
                retire_at: key.retire_at,
            });
        }
        if !keys.iter().any(|k| k.kid == active_kid) {
            return Err(KeyError::NoActiveKey(active_kid));
        }
        Ok(SigningKeys {
            active_kid,
            keys,
            public: PublicKeys { keys: public },
        })
    }

    pub fn from_json(json: &str) -> Result<SigningKeys, KeyError> {
        let stored: StoredKeys = serde_json::from_str(json)?;
        let pkcs8 = stored
            .keys
            .into_iter()
            .map(|k| match STANDARD.decode(k.private_key_pkcs8.trim()) {
                Ok(pkcs8) => Ok(PrivateKey {
                    kid: k.kid,
                    pkcs8,
                    retire_at: k.retire_at,
                }),
                Err(_) => Err(KeyError::BadKey(k.kid)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_parts(stored.active_kid, pkcs8)
    }

    pub fn to_json(&self) -> String {
        let stored = StoredKeys {
            active_kid: self.active_kid.clone(),
            keys: self
                .keys
                .iter()
                .map(|k| StoredKey {
                    kid: k.kid.clone(),
                    private_key_pkcs8: STANDARD.encode(&k.pkcs8),
                    retire_at: k.retire_at,
                })
                .collect(),
        };
        serde_json::to_string_pretty(&stored).unwrap_or_default()
    }

    pub fn active_kid(&self) -> &str {
        &self.active_kid
    }

    pub(crate) fn active_pkcs8(&self) -> &[u8] {
        self.keys
            .iter()
            .find(|k| k.kid == self.active_kid)
            .map(|k| k.pkcs8.as_slice())
            .unwrap_or_default()
    }

    pub fn public_keys(&self) -> &PublicKeys {
        &self.public
    }
}

fn new_key() -> PrivateKey {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .unwrap_or_else(|_| panic!("the operating system's random source failed"));
    let pkcs8 = doc.as_ref().to_vec();
    PrivateKey {
        kid: kid_for(&pkcs8).unwrap_or_else(|| "ed25519-1".into()),
        pkcs8,
        retire_at: None,
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
    fn a_rotation_activates_a_new_key_and_retires_the_old_one_after_the_overlap() {
        let first = SigningKeys::generate();
        let now = 1_000_000;
        let second = SigningKeys::from_json(&first.rotated(now, 1500).to_json()).unwrap();
        assert_ne!(second.active_kid(), first.active_kid());
        let public = second.public_keys();
        assert_eq!(public.keys.len(), 2);
        let old = public.get(first.active_kid()).unwrap();
        assert_eq!(old.retire_at, Some(now + 1500));
        assert!(old.live_at(now + 1499) && !old.live_at(now + 1500));
        assert!(public.get(second.active_kid()).unwrap().retire_at.is_none());
        // The JWK Set carries the retirement to verifiers that read only it.
        let jwks = PublicKeys::from_jwks_json(&public.to_jwks().to_string()).unwrap();
        assert_eq!(&jwks, public);

        // An early second rotation never postpones a retirement, and drops what is retired.
        let third = second.rotated(now + 10, 0);
        let kids: Vec<_> = third.public_keys().keys.iter().map(|k| k.kid.clone()).collect();
        assert_eq!(kids.len(), 3);
        assert_eq!(
            third.public_keys().get(second.active_kid()).unwrap().retire_at,
            Some(now + 10)
        );
        let fourth = third.rotated(now + 2000, 1500);
        let kids: Vec<_> = fourth.public_keys().keys.iter().map(|k| k.kid.as_str()).collect();
        assert!(!kids.contains(&first.active_kid()) && !kids.contains(&second.active_kid()));
        assert_eq!(kids, [fourth.active_kid(), third.active_kid()]);
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
