//! Access tokens (ES256 JWTs, `typ: at+jwt`) and opaque refresh tokens.
//!
//! Verification order: size and shape, header (pinned `alg`, `typ`, no `crit`/`b64`, `kid` as a
//! map key), signature (by `jsonwebtoken`, before any claim is trusted), then strict claims with
//! the injected clock. `jsonwebtoken`'s own time checks are switched off because they read the
//! system clock and accept `exp == now`; ours reject at `now >= exp + leeway` (S28).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{KeyPair, KeyRing, ALG};

/// `typ` header of access tokens (RFC 9068).
pub const AT_TYP: &str = "at+jwt";
/// Longest access token accepted before any decoding.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Refresh tokens are 256 bits of randomness, base64url without padding: 43 characters.
pub const REFRESH_TOKEN_LEN: usize = 43;

/// Claims of an access token. Deserialised strictly: a string, float, null or missing `exp`,
/// `iat`, `sub`, `sid` or `jti` fails; an `aud` array fails; duplicate members fail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience (a single string by policy).
    pub aud: String,
    /// Subject (user name).
    pub sub: String,
    /// Session id (the refresh family).
    pub sid: String,
    /// Token id, the blocklist key.
    pub jti: String,
    /// Issued at.
    pub iat: u64,
    /// Expiry.
    pub exp: u64,
    /// Not before, validated when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Why an access token was rejected (for logs and metrics; clients always see `invalid_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// Too long, wrong shape or undecodable.
    Malformed,
    /// Header rule broken: alg, typ, crit, b64, kid type.
    BadHeader,
    /// Unknown or retired kid.
    UnknownKey,
    /// Signature check failed.
    BadSignature,
    /// Claims missing, mistyped, or wrong iss/aud.
    BadClaims,
    /// `exp + leeway` has passed.
    Expired,
    /// `nbf` or `iat` in the future beyond the leeway.
    NotYetValid,
    /// Session revoked or jti blocklisted.
    Revoked,
}

/// Sign an access token with the current signing key.
pub fn mint_access_token(
    key: &KeyPair,
    claims: &AccessClaims,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(ALG);
    header.typ = Some(AT_TYP.into());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, key.encoding_key())
}

/// Verify an access token's header, signature and claims at `now`. Revocation is checked by the caller.
pub fn verify_access_token(
    token: &str,
    keys: &KeyRing,
    issuer: &str,
    audience: &str,
    leeway: u64,
    now: u64,
) -> Result<AccessClaims, VerifyError> {
    let kid = check_header(token)?;
    let key = keys
        .verification_key(&kid, now)
        .ok_or(VerifyError::UnknownKey)?;
    let claims: AccessClaims = verify_signature_and_decode(token, &key, issuer, audience)?;
    check_times(claims.exp, claims.iat, claims.nbf, leeway, now)?;
    Ok(claims)
}

/// The time rules: accept iff `now < exp + leeway`, `nbf <= now + leeway`, `iat <= now + leeway`.
pub fn check_times(
    exp: u64,
    iat: u64,
    nbf: Option<u64>,
    leeway: u64,
    now: u64,
) -> Result<(), VerifyError> {
    if now >= exp.saturating_add(leeway) {
        return Err(VerifyError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) || iat > now.saturating_add(leeway) {
        return Err(VerifyError::NotYetValid);
    }
    Ok(())
}

/// Shape and header checks of access tokens. Returns the `kid`.
fn check_header(token: &str) -> Result<String, VerifyError> {
    let header = parse_header(token)?;
    if header.get("alg").and_then(|v| v.as_str()) != Some("ES256") {
        return Err(VerifyError::BadHeader);
    }
    if header.get("typ").and_then(|v| v.as_str()) != Some(AT_TYP) {
        return Err(VerifyError::BadHeader);
    }
    header_kid(&header)
}

fn header_kid(header: &serde_json::Map<String, serde_json::Value>) -> Result<String, VerifyError> {
    // `crit` (RFC 7515 §4.1.11) and `b64: false` (RFC 7797) are extensions we do not implement.
    if header.contains_key("crit") || header.contains_key("b64") {
        return Err(VerifyError::BadHeader);
    }
    match header.get("kid") {
        Some(serde_json::Value::String(k)) if !k.is_empty() && k.len() <= 64 => Ok(k.clone()),
        _ => Err(VerifyError::BadHeader),
    }
}

/// Decode the protected header as a JSON object, with strict base64url and a 3-segment shape.
pub fn parse_header(
    token: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, VerifyError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| VerifyError::Malformed)?;
    match serde_json::from_slice::<serde_json::Value>(&raw) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(VerifyError::Malformed),
    }
}

fn verify_signature_and_decode<T: serde::de::DeserializeOwned>(
    token: &str,
    key: &KeyPair,
    issuer: &str,
    audience: &str,
) -> Result<T, VerifyError> {
    let mut v = Validation::new(ALG);
    v.algorithms = vec![ALG];
    v.validate_exp = false; // checked with the injected clock in `check_times`
    v.validate_nbf = false;
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    jsonwebtoken::decode::<T>(token, key.decoding_key(), &v)
        .map(|d| d.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidAlgorithm => {
                    VerifyError::BadSignature
                }
                K::Base64(_) | K::InvalidToken | K::Utf8(_) => VerifyError::Malformed,
                _ => VerifyError::BadClaims,
            }
        })
}

/// A fresh random identifier (`sid`, `jti`): 128 bits, base64url.
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256 of a refresh token: the only form in which refresh tokens are stored.
pub type TokenHash = [u8; 32];

/// A raw refresh token. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

impl RefreshToken {
    /// 256 random bits, base64url without padding.
    pub fn generate() -> Self {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        Self(URL_SAFE_NO_PAD.encode(b))
    }

    /// Accept a presented cookie value only if it has the exact shape we mint.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == REFRESH_TOKEN_LEN
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        ok.then(|| Self(s.to_string()))
    }

    /// The value to put in the cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form.
    pub fn hash(&self) -> TokenHash {
        sha256(self.0.as_bytes())
    }
}

/// SHA-256.
pub fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_boundaries_are_pinned() {
        // leeway 0: exp == now is rejected (RFC 7519: now MUST be before exp).
        assert_eq!(check_times(100, 0, None, 0, 100), Err(VerifyError::Expired));
        assert_eq!(check_times(100, 0, None, 0, 99), Ok(()));
        // leeway 5: accepted until exp + 5 exclusive.
        assert_eq!(check_times(100, 0, None, 5, 104), Ok(()));
        assert_eq!(check_times(100, 0, None, 5, 105), Err(VerifyError::Expired));
        assert_eq!(
            check_times(200, 0, Some(106), 5, 100),
            Err(VerifyError::NotYetValid)
        );
        assert_eq!(
            check_times(200, 106, None, 5, 100),
            Err(VerifyError::NotYetValid)
        );
        assert_eq!(check_times(200, 105, Some(105), 5, 100), Ok(()));
    }

    #[test]
    fn refresh_tokens_are_256_bit_and_debug_redacted() {
        let t = RefreshToken::generate();
        assert_eq!(t.expose().len(), REFRESH_TOKEN_LEN);
        assert!(RefreshToken::parse(t.expose()).is_some());
        assert!(RefreshToken::parse("short").is_none());
        assert!(RefreshToken::parse(&format!("{}=", &t.expose()[..42])).is_none());
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
