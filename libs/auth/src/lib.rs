//! Credentials: argon2id password hashes, EdDSA (Ed25519) access tokens with a `kid`,
//! the JWK Set that publishes their public keys, and opaque single-use refresh tokens.

pub mod keys;
pub mod password;
mod provider;
pub mod refresh;
pub mod token;

pub use keys::{KeyError, PublicKeys, SigningKeys};
pub use token::{Claims, TokenError, TokenIssuer, TokenVerifier, ACCESS_TOKEN_TTL_SECS};
pub mod sealed;
