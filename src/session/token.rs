//! The access token as a secret type, and the strict unverified JWT claims decoder (C01–C18).

use core::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::error::TokenError;

/// The longest token accepted, in bytes (C15): larger tokens would cause 431 answers anyway.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// An access token that passed the local checks (size, RFC 6750 characters, JWT shape).
/// `Debug` prints `[redacted]`; the only way to read it is [`AccessToken::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Checks size and characters only (no decoding). Prefer [`AccessToken::parse_jwt`].
    pub fn new(token: &str) -> Result<Self, TokenError> {
        check_b64token(token)?;
        Ok(AccessToken(token.to_owned()))
    }

    /// Checks the token and decodes its claims without verifying anything.
    pub fn parse_jwt(token: &str) -> Result<(Self, UnverifiedClaims), TokenError> {
        let claims = decode_unverified(token)?;
        Ok((AccessToken(token.to_owned()), claims))
    }

    /// The token text, for the `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// The timing claims of a JWT, read without verification: nothing here is trusted for authorisation,
/// only to schedule a refresh. A claim of the wrong type counts as absent (C06): no coercion.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UnverifiedClaims {
    /// `exp` in seconds since the epoch, when it is a finite JSON number.
    pub exp: Option<f64>,
    /// `iat` in seconds since the epoch, when it is a finite JSON number.
    pub iat: Option<f64>,
    /// `nbf` in seconds since the epoch, when it is a finite JSON number.
    pub nbf: Option<f64>,
    /// Whether the header says `typ: "at+jwt"` (RFC 9068). Informational only (C17).
    pub typ_at_jwt: bool,
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`,
/// at most [`MAX_TOKEN_LEN`] bytes (C15, C16).
pub fn check_b64token(token: &str) -> Result<(), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let body = token.trim_end_matches('=');
    if body.is_empty() {
        return Err(TokenError::BadCharacters);
    }
    let ok = body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(TokenError::BadCharacters)
    }
}

fn is_b64url(segment: &str) -> bool {
    segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Decodes a JWT's header and payload without verifying the signature (C01–C18).
///
/// Strict on purpose: exactly three segments, unpadded canonical base64url, UTF-8 JSON objects,
/// no duplicate claims. The signature is never checked (the client has no "verify locally and trust"
/// path, C18); `alg: none` is treated like any other token.
pub fn decode_unverified(token: &str) -> Result<UnverifiedClaims, TokenError> {
    check_b64token(token)?;
    let mut parts = token.split('.');
    let (header, payload, signature) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => (h, p, s),
        _ => return Err(TokenError::WrongShape),
    };
    if header.is_empty() || payload.is_empty() {
        return Err(TokenError::WrongShape);
    }
    if !is_b64url(header) || !is_b64url(payload) || !is_b64url(signature) {
        return Err(TokenError::BadBase64);
    }
    let header = decode_segment(header)?;
    let payload = decode_segment(payload)?;
    Ok(UnverifiedClaims {
        exp: payload.exp.number(),
        iat: payload.iat.number(),
        nbf: payload.nbf.number(),
        typ_at_jwt: matches!(&header.typ, Claim::Str(s) if s.eq_ignore_ascii_case("at+jwt")),
    })
}

fn decode_segment(segment: &str) -> Result<Object, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| TokenError::BadBase64)?;
    // Strict UTF-8 (C04): no lossy conversion; serde_json also rejects a BOM and raw control bytes.
    let text = core::str::from_utf8(&bytes).map_err(|_| TokenError::BadJson)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let obj = de.deserialize_map(ObjectVisitor).map_err(|_| TokenError::BadJson)?;
    de.end().map_err(|_| TokenError::BadJson)?;
    Ok(obj)
}

/// The claims of interest in a JOSE header or JWT payload. Every key of the object is checked: a repeated
/// name is refused (C14), and every string, including unknown ones, is decoded strictly (lone surrogates, C04).
#[derive(Default)]
struct Object {
    exp: Claim,
    iat: Claim,
    nbf: Claim,
    typ: Claim,
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
        let mut obj = Object::default();
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom("duplicate claim"));
            }
            let value: Claim = map.next_value()?;
            match key.as_str() {
                "exp" => obj.exp = value,
                "iat" => obj.iat = value,
                "nbf" => obj.nbf = value,
                "typ" => obj.typ = value,
                _ => {}
            }
            seen.push(key);
        }
        Ok(obj)
    }
}

/// A claim of any JSON type; only finite numbers and strings are kept.
#[derive(Default)]
pub(super) enum Claim {
    #[default]
    Other,
    Number(f64),
    Str(String),
}

impl Claim {
    pub(super) fn number(&self) -> Option<f64> {
        match self {
            Claim::Number(n) if n.is_finite() => Some(*n),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Claim {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ClaimVisitor)
    }
}

struct ClaimVisitor;

impl<'de> Visitor<'de> for ClaimVisitor {
    type Value = Claim;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Claim, E> {
        Ok(Claim::Other)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Claim, E> {
        Ok(Claim::Number(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Claim, E> {
        Ok(Claim::Number(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Claim, E> {
        Ok(Claim::Number(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Claim, E> {
        Ok(Claim::Str(v.to_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Claim, E> {
        Ok(Claim::Other)
    }
    fn visit_none<E: de::Error>(self) -> Result<Claim, E> {
        Ok(Claim::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Claim, A::Error> {
        while seq.next_element::<Claim>()?.is_some() {}
        Ok(Claim::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claim, A::Error> {
        while map.next_entry::<String, Claim>()?.is_some() {}
        Ok(Claim::Other)
    }
}
