//! The key-encryption key (`--key-encryption-key-file PATH`) and the sealed values it protects.
//!
//! With a shared store the signing keys' private halves and the reuse-grace window's raw child
//! refresh token live in that store; both are kept there only sealed under this key, which is read
//! from a file and never written to the store. The file holds 32 random bytes in standard base64
//! (`head -c 32 /dev/urandom | base64 > kek`); surrounding whitespace is ignored.
//!
//! Sealing is XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha, RustCrypto `chacha20poly1305`) with a
//! random 192-bit nonce per value, so random nonces never need counting, and with associated data
//! naming what the value is (`"signing-key:" + kid`, `"grace:" + sid`), so a sealed value moved to
//! another record does not open. A sealed value is `base64url(nonce || ciphertext || tag)`.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Length of the key in bytes (256 bits).
pub const KEK_LEN: usize = 32;
/// Length of an XChaCha20 nonce in bytes.
const NONCE_LEN: usize = 24;

/// Why a key file or a sealed value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekError {
    /// The file could not be read (the message names the path and the cause).
    Read(String),
    /// The file is not standard base64 of exactly [`KEK_LEN`] bytes (the message says what it is).
    Format(String),
    /// A sealed value is malformed, was sealed under another key, or was moved to another record.
    Open,
}

impl fmt::Display for KekError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(m) | Self::Format(m) => f.write_str(m),
            Self::Open => f.write_str(
                "a sealed value does not open under the key-encryption key (another key, or tampered)",
            ),
        }
    }
}

impl std::error::Error for KekError {}

/// The key-encryption key. `Debug` never prints it.
#[derive(Clone)]
pub struct Kek {
    cipher: XChaCha20Poly1305,
    /// `HMAC-SHA256(key, "wtm dpop nonce secret")`: the instances' shared DPoP nonce secret
    /// ([`crate::dpop_nonce::NonceIssuer`]), never the key itself.
    nonce_secret: [u8; 32],
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

impl Kek {
    /// The key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; KEK_LEN]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            nonce_secret: crate::dpop_nonce::derive_secret(bytes, b"wtm dpop nonce secret"),
        }
    }

    /// The secret the instances sharing this key issue and check DPoP nonces under (derived from
    /// the key with HMAC-SHA256, so that it reveals nothing of the key).
    pub fn dpop_nonce_secret(&self) -> [u8; 32] {
        self.nonce_secret
    }

    /// The key from the text of a key file: standard base64 (padding optional) of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KekError> {
        let t = text.trim();
        let raw = STANDARD
            .decode(t)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
            .map_err(|e| KekError::Format(format!("the key-encryption key is not base64: {e}")))?;
        let bytes: [u8; KEK_LEN] = raw.as_slice().try_into().map_err(|_| {
            KekError::Format(format!(
                "the key-encryption key must be {KEK_LEN} bytes, this one is {} (make one with: head -c 32 /dev/urandom | base64)",
                raw.len()
            ))
        })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Read a key file (`--key-encryption-key-file`).
    pub fn from_file(path: &Path) -> Result<Self, KekError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            KekError::Read(format!(
                "cannot read the key-encryption key file {}: {e}",
                path.display()
            ))
        })?;
        Self::from_base64(&text).map_err(|e| match e {
            KekError::Format(m) => KekError::Format(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Seal `plaintext` bound to `aad` (what the value is and which record holds it).
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: aad.as_bytes(),
        };
        // Encryption of an in-memory buffer with a 24-byte nonce cannot fail (the aead crate errs
        // only past its length limit of 2^38 bytes); an empty value would still not open.
        let sealed = self.cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Open a value from [`Kek::seal`] with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, KekError> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| KekError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(KekError::Open);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KekError::Open)?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| KekError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(b: u8) -> Kek {
        Kek::from_bytes(&[b; KEK_LEN])
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_record() {
        let k = kek(1);
        let s = k.seal(b"secret", "grace:s1");
        assert!(!s.contains("secret"));
        assert_eq!(k.open(&s, "grace:s1").expect("opens"), b"secret");
        assert_eq!(k.open(&s, "grace:s2"), Err(KekError::Open), "moved record");
        assert_eq!(
            kek(2).open(&s, "grace:s1"),
            Err(KekError::Open),
            "other key"
        );
        assert_ne!(k.seal(b"secret", "grace:s1"), s, "a fresh nonce each time");
        let mut tampered = s.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert_eq!(k.open(&tampered, "grace:s1"), Err(KekError::Open));
        assert_eq!(k.open("", "grace:s1"), Err(KekError::Open));
    }

    #[test]
    fn key_files_must_hold_32_bytes_of_base64() {
        let b64 = STANDARD.encode([7u8; 32]);
        assert!(Kek::from_base64(&format!("  {b64}\n")).is_ok());
        let short = STANDARD.encode([7u8; 16]);
        let err = Kek::from_base64(&short).expect_err("16 bytes");
        assert!(
            matches!(&err, KekError::Format(m) if m.contains("is 16")),
            "{err}"
        );
        assert!(matches!(
            Kek::from_base64("not base64!"),
            Err(KekError::Format(_))
        ));
        assert!(matches!(
            Kek::from_file(Path::new("/nonexistent/kek")),
            Err(KekError::Read(m)) if m.contains("/nonexistent/kek")
        ));
    }

    #[test]
    fn debug_never_prints_the_key() {
        assert_eq!(format!("{:?}", kek(9)), "Kek([redacted])");
    }
}
