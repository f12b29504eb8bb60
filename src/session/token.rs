//! The access token as a secret type, and the strict unverified JWT claims decoder (C01–C18).
//!
//! Access tokens are opaque to an OAuth client (RFC 6749 §1.4): the manager stores and sends any token of
//! RFC 6750 `b64token` syntax within [`MAX_TOKEN_LEN`] (C58). When the token is a JWT that
//! [`decode_unverified`] reads, its timing claims schedule renewal; otherwise the lifetime comes from the
//! answer's `expires_in`, or, with neither, from the server's 401.

use core::fmt;

use super::error::TokenError;
use super::json::{parse_object, Object};

/// The longest token accepted, in bytes (C15): larger tokens would cause 431 answers anyway.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// An access token that passed the local checks (size, RFC 6750 `b64token` characters), and whether it is
/// bound to the client's DPoP key (RFC 9449 §5: the answer's `token_type` was `DPoP`), so that it is sent as
/// `Authorization: DPoP <token>` with a proof instead of as a bearer token.
/// `Debug` prints `[redacted]`; the only way to read it is [`AccessToken::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String, bool);

impl AccessToken {
    /// Checks size and characters only (no decoding). Prefer [`AccessToken::parse`].
    pub fn new(token: &str) -> Result<Self, TokenError> {
        check_b64token(token)?;
        Ok(AccessToken(token.to_owned(), false))
    }

    /// Checks a token for storing and sending, and reads its timing claims when it is a JWT (C58).
    ///
    /// Any token of RFC 6750 `b64token` syntax within [`MAX_TOKEN_LEN`] is accepted: access tokens are
    /// opaque to the client (RFC 6749 §1.4). When [`decode_unverified`] reads it (three segments, strict
    /// base64url, JSON objects with unique members) its claims are returned. Anything else is opaque and
    /// gets no claims, including three segments that do not decode (bad base64url, a payload that is not
    /// a JSON object, a repeated claim, C01–C04, C14): those claims are never read, the token is still
    /// sent, and the server, which is authoritative, answers 401 if it does not take it.
    pub fn parse(token: &str) -> Result<(Self, UnverifiedClaims), TokenError> {
        check_b64token(token)?;
        let claims = decode_unverified(token).unwrap_or_default();
        Ok((AccessToken(token.to_owned(), false), claims))
    }

    /// Checks the token and decodes its claims without verifying anything; refuses anything that is not a
    /// decodable JWT (C01–C04, C14). The manager itself uses [`AccessToken::parse`].
    pub fn parse_jwt(token: &str) -> Result<(Self, UnverifiedClaims), TokenError> {
        let claims = decode_unverified(token)?;
        Ok((AccessToken(token.to_owned(), false), claims))
    }

    /// The token text, for the `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The same token, marked as bound to the client's DPoP key (RFC 9449 §5, `token_type: "DPoP"`).
    pub fn bound_to_dpop_key(self) -> Self {
        AccessToken(self.0, true)
    }

    /// Whether the token is DPoP-bound: sent as `Authorization: DPoP <token>` with a proof (RFC 9449 §7.1),
    /// never as a bearer token.
    pub fn is_dpop(&self) -> bool {
        self.1
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
    segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Decodes a JWT's header and payload without verifying the signature (C01–C18).
///
/// Strict on purpose: exactly three segments, unpadded canonical base64url, UTF-8 JSON objects,
/// no duplicate claims. The signature is never checked (the client has no "verify locally and trust"
/// path, C18); `alg: none` is treated like any other token.
pub fn decode_unverified(token: &str) -> Result<UnverifiedClaims, TokenError> {
    check_b64token(token)?;
    let mut parts = token.split('.');
    let (header, payload, signature) =
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
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
    let number = |o: &Object, k: &str| o.get(k).and_then(|v| v.number());
    Ok(UnverifiedClaims {
        exp: number(&payload, "exp"),
        iat: number(&payload, "iat"),
        nbf: number(&payload, "nbf"),
        typ_at_jwt: header
            .get("typ")
            .and_then(|v| v.as_str())
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt")),
    })
}

fn decode_segment(segment: &str) -> Result<Object, TokenError> {
    let bytes = b64url_decode(segment).ok_or(TokenError::BadBase64)?;
    // Strict UTF-8 (C04): no lossy conversion; the JSON reader refuses a BOM, control bytes, lone surrogates
    // and repeated claims (C14).
    let text = core::str::from_utf8(&bytes).map_err(|_| TokenError::BadJson)?;
    parse_object(text).map_err(|_| TokenError::BadJson)
}

/// Strict unpadded base64url (RFC 7515 §2): the URL-safe alphabet only, no `=`, no whitespace, no length
/// of 1 mod 4, and the unused trailing bits must be zero (one canonical encoding per byte string, C02).
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in bytes {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        return None;
    }
    Some(out)
}

/// Where a token came from (the `source` of a `tokenchange` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `login()`.
    Login,
    /// A refresh call (in this tab or, with cross-tab coordination, another).
    Refresh,
    /// `setAccessToken()`.
    Set,
    /// The one-time exchange of a legacy token (`upgradeLegacyToken`, or automatic on a deprecation signal).
    Legacy,
}

impl TokenSource {
    /// Every source, in the order of [`Self::as_str`]'s names.
    pub const ALL: [TokenSource; 4] = [
        TokenSource::Login,
        TokenSource::Refresh,
        TokenSource::Set,
        TokenSource::Legacy,
    ];

    /// `"login"`, `"refresh"`, `"set"` or `"legacy"` (the `source` of a `tokenchange` event and of a cross-tab
    /// `token` message).
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenSource::Login => "login",
            TokenSource::Refresh => "refresh",
            TokenSource::Set => "set",
            TokenSource::Legacy => "legacy",
        }
    }

    /// The source named `name` (as [`Self::as_str`] spells it), or `None`.
    pub fn from_name(name: &str) -> Option<TokenSource> {
        TokenSource::ALL.into_iter().find(|s| s.as_str() == name)
    }
}
