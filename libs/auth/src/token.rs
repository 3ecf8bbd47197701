//! Access tokens: short-lived EdDSA JWTs with a `kid` header.

use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys::{PublicKeys, SigningKeys};

pub const ISSUER: &str = "bookshelf";
pub const AUDIENCE: &str = "bookshelf-api";
pub const ACCESS_TOKEN_TTL_SECS: i64 = 900;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: String,
    pub sid: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Why a token was refused. The authorizer logs it; the client only ever sees a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("algorithm {0} is not allowed")]
    Algorithm(String),
    #[error("token has no kid")]
    MissingKid,
    #[error("unknown kid {0:?}")]
    UnknownKid(String),
    #[error("kid {0:?} was retired by a key rotation")]
    RetiredKid(String),
    #[error("token rejected: {0}")]
    Invalid(String),
}

pub struct TokenIssuer {
    key: EncodingKey,
    kid: String,
}

impl TokenIssuer {
    pub fn new(keys: &SigningKeys) -> TokenIssuer {
        crate::provider::install();
        TokenIssuer {
            key: EncodingKey::from_ed_der(keys.active_pkcs8()),
            kid: keys.active_kid().to_string(),
        }
    }

    /// The key id it signs with.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs an access token for `user` in session `sid`, valid from `now` for 15 minutes.
    pub fn issue(&self, user: Uuid, role: &str, sid: Uuid, now: i64) -> Result<String, TokenError> {
        let claims = Claims {
            sub: user,
            role: role.to_string(),
            sid,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + ACCESS_TOKEN_TTL_SECS,
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims; used by `issue` and by tests that forge expired tokens.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.key).map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

struct VerifyingKey {
    kid: String,
    key: DecodingKey,
    /// Unix seconds from which this key verifies nothing (a rotation retired it).
    retire_at: Option<i64>,
}

/// A verified token's claims, and until when the answer holds: its expiry, or its key's
/// retirement if that comes first.
struct Verified {
    claims: std::sync::Arc<Claims>,
    until: i64,
}

pub struct TokenVerifier {
    keys: Vec<VerifyingKey>,
    validation: Validation,
    /// Tokens whose signature and claims already passed, by their exact text, until they
    /// expire (`verify_cached`). Bounded: a full cache drops its expired entries, and if
    /// that frees nothing, everything (a burst of new tokens cannot grow it).
    verified: std::sync::Mutex<std::collections::HashMap<String, Verified>>,
    capacity: usize,
}

/// How many verified tokens a verifier remembers (a few hundred bytes each).
pub const VERIFIED_TOKENS: usize = 4096;

impl TokenVerifier {
    pub fn new(public: &PublicKeys) -> TokenVerifier {
        crate::provider::install();
        // The allow-list is exactly one algorithm: a token cannot choose how it is checked.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        TokenVerifier {
            keys: public
                .keys
                .iter()
                .map(|k| VerifyingKey {
                    kid: k.kid.clone(),
                    key: DecodingKey::from_ed_der(&k.raw),
                    retire_at: k.retire_at,
                })
                .collect(),
            validation,
            verified: std::sync::Mutex::default(),
            capacity: VERIFIED_TOKENS,
        }
    }

    /// `verify`, remembering the answer for this exact token until it expires: the same
    /// token presented again skips the signature check (~50 µs of Ed25519), which is safe
    /// because a token's text fixes its claims and signature, and this verifier's keys never
    /// change while it lives. Expiry and key retirement are checked on every call, as
    /// `verify` checks them.
    /// Shared (`Arc`): a hit hands out the cached claims without copying their strings.
    pub fn verify_cached(&self, token: &str) -> Result<std::sync::Arc<Claims>, TokenError> {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        if let Ok(verified) = self.verified.lock() {
            if let Some(hit) = verified.get(token).filter(|v| v.until >= now) {
                return Ok(hit.claims.clone());
            }
        }
        let (claims, retire_at) = self.verify_at(token, now)?;
        let claims = std::sync::Arc::new(claims);
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= self.capacity {
                verified.retain(|_, v| v.until >= now);
                if verified.len() >= self.capacity {
                    verified.clear();
                }
            }
            let until = retire_at.map_or(claims.exp, |at| claims.exp.min(at - 1));
            verified.insert(
                token.to_string(),
                Verified {
                    claims: claims.clone(),
                    until,
                },
            );
        }
        Ok(claims)
    }

    /// Whether this verifier knows `kid` (a token naming another may be from a newer key).
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp() as i64)
            .map(|(claims, _)| claims)
    }

    /// The claims, and when the key that signed them retires.
    fn verify_at(&self, token: &str, now: i64) -> Result<(Claims, Option<i64>), TokenError> {
        // `alg: none` and unknown algorithms fail to parse here already.
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(TokenError::MissingKid)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::UnknownKid(kid))?;
        if key.retire_at.is_some_and(|at| now >= at) {
            return Err(TokenError::RetiredKid(key.kid.clone()));
        }
        decode::<Claims>(token, &key.key, &self.validation)
            .map(|data| (data.claims, key.retire_at))
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn issues_and_verifies() {
        let keys = SigningKeys::generate();
        let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let token = TokenIssuer::new(&keys).issue(user, "user", sid, now()).unwrap();
        let claims = TokenVerifier::new(keys.public_keys()).verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.sid, claims.role.as_str()),
            (user, sid, "user")
        );
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn the_cache_answers_as_verify_does_and_stays_bounded() {
        let keys = SigningKeys::generate();
        let issuer = TokenIssuer::new(&keys);
        let mut verifier = TokenVerifier::new(keys.public_keys());
        verifier.capacity = 3;
        let good = issuer
            .issue(Uuid::new_v4(), "user", Uuid::new_v4(), now())
            .unwrap();
        let verified = |t: &str| verifier.verify_cached(t).map(|c| (*c).clone());
        assert_eq!(verified(&good), verifier.verify(&good));
        assert_eq!(verified(&good), verifier.verify(&good), "a hit");
        // A cached good token lends nothing to a token that differs from it.
        let mut forged = good.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert!(verifier.verify_cached(&forged).is_err());
        let other = SigningKeys::generate();
        let foreign = TokenIssuer::new(&other)
            .issue(Uuid::new_v4(), "admin", Uuid::new_v4(), now())
            .unwrap();
        assert!(verifier.verify_cached(&foreign).is_err());
        for _ in 0..10 {
            let t = issuer
                .issue(Uuid::new_v4(), "user", Uuid::new_v4(), now())
                .unwrap();
            verifier.verify_cached(&t).unwrap();
            assert!(verifier.verified.lock().unwrap().len() <= 3);
        }
    }

    #[test]
    fn a_cached_token_still_expires() {
        let keys = SigningKeys::generate();
        let verifier = TokenVerifier::new(keys.public_keys());
        // Issued so that it expires one second from now.
        let token = TokenIssuer::new(&keys)
            .issue(
                Uuid::new_v4(),
                "user",
                Uuid::new_v4(),
                now() - ACCESS_TOKEN_TTL_SECS + 1,
            )
            .unwrap();
        assert!(verifier.verify_cached(&token).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(verifier.verify_cached(&token).is_err(), "expired, cached or not");
    }

    #[test]
    fn during_a_rotation_both_keys_verify_and_a_retired_key_stops_even_when_cached() {
        let old = SigningKeys::generate();
        let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let before = TokenIssuer::new(&old).issue(user, "user", sid, now()).unwrap();
        let rotated = old.rotated(now(), crate::keys::ROTATION_OVERLAP_SECS);
        let after = TokenIssuer::new(&rotated)
            .issue(user, "user", sid, now())
            .unwrap();
        let verifier = TokenVerifier::new(rotated.public_keys());
        assert!(verifier.knows(old.active_kid()) && verifier.knows(rotated.active_kid()));
        assert_eq!(verifier.verify_cached(&before).unwrap().sub, user);
        assert_eq!(verifier.verify_cached(&after).unwrap().sub, user);
        // A verifier still holding the old set does not know the new key.
        assert_eq!(
            TokenVerifier::new(old.public_keys()).verify(&after),
            Err(TokenError::UnknownKid(rotated.active_kid().into()))
        );

        // Retired at once (a leaked key): its tokens are refused, cached ones included.
        let emergency = rotated.rotated(now(), 0);
        let verifier = TokenVerifier::new(emergency.public_keys());
        assert_eq!(
            verifier.verify_cached(&after),
            Err(TokenError::RetiredKid(rotated.active_kid().into()))
        );
        assert!(
            verifier.verify_cached(&before).is_ok(),
            "the first key is still in its overlap"
        );
    }

    #[test]
    fn rejects_forgeries() {
        let keys = SigningKeys::generate();
        let other = SigningKeys::generate();
        let verifier = TokenVerifier::new(keys.public_keys());
        let good = TokenIssuer::new(&keys)
            .issue(Uuid::new_v4(), "user", Uuid::new_v4(), now())
            .unwrap();
        let parts: Vec<&str> = good.split('.').collect();

        // alg: none, unsigned.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert_eq!(verifier.verify(&none), Err(TokenError::Malformed));

        // HS256 keyed with the public key (made by hand: our provider signs nothing but EdDSA).
        let raw = &keys.public_keys().keys[0].raw;
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#,
            keys.active_kid()
        ));
        let signing_input = format!("{header}.{}", parts[1]);
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, raw),
            signing_input.as_bytes(),
        );
        let hs = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
        assert!(matches!(verifier.verify(&hs), Err(TokenError::Algorithm(_))));
        let claims = verifier.verify(&good).unwrap();

        // Signed by a key we do not know, and signed by another key under our kid.
        let foreign = TokenIssuer::new(&other).sign(&claims).unwrap();
        assert!(matches!(
            verifier.verify(&foreign),
            Err(TokenError::UnknownKid(_))
        ));
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(keys.active_kid().into());
        let wrong_key = encode(&h, &claims, &EncodingKey::from_ed_der(other.active_pkcs8())).unwrap();
        assert!(matches!(verifier.verify(&wrong_key), Err(TokenError::Invalid(_))));

        // Tampered payload: admin role spliced in, old signature kept.
        let mut forged = claims.clone();
        forged.role = "admin".into();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert!(matches!(verifier.verify(&tampered), Err(TokenError::Invalid(_))));

        // Expired, wrong issuer, wrong audience.
        let issuer = TokenIssuer::new(&keys);
        let mut c = claims.clone();
        c.exp = now() - 1;
        assert!(verifier.verify(&issuer.sign(&c).unwrap()).is_err());
        let mut c = claims.clone();
        c.iss = "evil".into();
        assert!(verifier.verify(&issuer.sign(&c).unwrap()).is_err());
        let mut c = claims;
        c.aud = "other".into();
        assert!(verifier.verify(&issuer.sign(&c).unwrap()).is_err());

        assert_eq!(verifier.verify("garbage"), Err(TokenError::Malformed));
    }
}
