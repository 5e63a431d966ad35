//! API token secrets: 32 random bytes, shown once as `wbt_<base64url>`, stored only as
//! their SHA-256 digest.
//!
//! A plain (fast) hash is deliberate: slow password hashes protect low-entropy secrets
//! against guessing from a stolen digest, and 256 random bits cannot be guessed. Lookups
//! go by digest, so the time a lookup takes depends on the digest of what the client
//! sent, which tells an attacker nothing about any stored secret (finding a secret from
//! its digest is a preimage attack); no secret is ever compared byte by byte.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The prefix of every token secret (lets secret scanners recognise a leaked one).
pub const PREFIX: &str = "wbt_";

/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;

/// The random source failed (the OS gave no randomness): no secret is made.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// A new random secret (`wbt_` + 43 base64url characters).
pub fn generate() -> Result<String, RandomError> {
    let mut bytes = [0u8; SECRET_BYTES];
    // ring's system RNG, through rustls's provider (the crypto the workspace already uses).
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The stored form of a secret: lowercase hex SHA-256.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_hashed() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 43, "{a}");
        assert_eq!(digest(&a).len(), 64);
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
    }
}
