//! Login and refresh response bodies as values (C19–C23).

use super::error::BodyError;
use super::json::{parse_number, parse_object, Scalar};
use super::policy::MAX_BODY_BYTES;
use super::token::{AccessToken, UnverifiedClaims};

/// A UTF-8 byte order mark, which `Response.text()` strips and the strict JSON reader refuses.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A login or refresh body read chunk by chunk, never past [`MAX_BODY_BYTES`] (C23).
///
/// The shell feeds the chunks of `response.body` to [`push`](Self::push) as they arrive; when a chunk is
/// refused it cancels the stream and reports the answer as too large, so a huge or never-ending body is
/// never read beyond the cap (nor until the refresh timeout). Check [`fits`](Self::fits) before copying a
/// chunk out of JavaScript.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CappedBody {
    bytes: Vec<u8>,
}

impl CappedBody {
    /// An empty body.
    pub fn new() -> Self {
        CappedBody::default()
    }

    /// Whether `len` more bytes still fit under the cap.
    pub fn fits(&self, len: usize) -> bool {
        self.bytes
            .len()
            .checked_add(len)
            .is_some_and(|n| n <= MAX_BODY_BYTES)
    }

    /// Appends a chunk, or refuses it with [`BodyError::TooLarge`] when the body would exceed the cap (then
    /// nothing is appended: stop reading and cancel the stream).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        if !self.fits(chunk.len()) {
            return Err(BodyError::TooLarge);
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The body read so far, without a leading UTF-8 byte order mark (as `Response.text()` decodes it).
    pub fn bytes(&self) -> &[u8] {
        self.bytes.strip_prefix(UTF8_BOM).unwrap_or(&self.bytes)
    }
}

/// The default field carrying the token; when the application does not set `tokenField`,
/// [`FALLBACK_TOKEN_FIELD`] is also understood.
pub const DEFAULT_TOKEN_FIELD: &str = "accessToken";
/// The OAuth 2.0 (RFC 6749 §5.1) field name.
pub const FALLBACK_TOKEN_FIELD: &str = "access_token";
/// The fields read for the token type (RFC 6749 §5.1 `token_type`; `tokenType`, which the reference server
/// sends). Absent or `null` means Bearer; otherwise it must be `Bearer` or `DPoP` (RFC 9449 §5) in any case
/// (RFC 6749 §5.1: case insensitive), or the answer is refused ([`BodyError::NotBearer`]). A `DPoP` token is
/// marked ([`AccessToken::is_dpop`]); a manager without the `dpop` option refuses it.
pub const TOKEN_TYPE_FIELDS: [&str; 2] = ["token_type", "tokenType"];
/// The fields read for the token's lifetime in seconds from receipt: RFC 6749 §5.1's `expires_in`, and
/// `expiresIn`, which the reference server sends (C62). A value is a JSON number or a string holding one
/// (some servers send `"3600"`); fractions are kept to the millisecond. Zero, negative, other types and
/// other strings count as absent, and so does a lifetime over ten years once planned
/// ([`crate::session::plan_expiry`]). When both fields are usable the earlier expiry wins.
pub const LIFETIME_FIELDS: [&str; 2] = ["expires_in", "expiresIn"];

/// A usable login or refresh answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBody {
    /// The access token, checked and decoded.
    pub token: AccessToken,
    /// Its unverified timing claims.
    pub claims: UnverifiedClaims,
    /// The lifetime in seconds from [`LIFETIME_FIELDS`], when present as a finite positive number.
    pub expires_in: Option<f64>,
}

/// Whether a `Content-Type` header value is a JSON media type (C21): `application/json` or a structured
/// syntax suffix type `application/<name>+json` (RFC 6839 §3.1), in any case, with or without parameters
/// (`charset=utf-8`, ignored: JSON is UTF-8, RFC 8259 §8.1) and whitespace around them (RFC 9110 §8.3).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim().as_bytes();
    let Some(subtype) = essence.get(12..).filter(|_| {
        essence
            .get(..12)
            .is_some_and(|t| t.eq_ignore_ascii_case(b"application/"))
    }) else {
        return false;
    };
    if subtype.eq_ignore_ascii_case(b"json") {
        return true;
    }
    // `<name>+json`, where <name> is a non-empty RFC 6838 §4.2 restricted-name.
    let split = subtype.len().saturating_sub(5);
    match (subtype.get(..split), subtype.get(split..)) {
        (Some(name), Some(suffix)) => {
            !name.is_empty()
                && suffix.eq_ignore_ascii_case(b"+json")
                && name.iter().all(|&b| {
                    b.is_ascii_alphanumeric()
                        || matches!(
                            b,
                            b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                        )
                })
        }
        _ => false,
    }
}

/// Parses a login or refresh answer.
///
/// `token_field` is the configured field; with `None` the default `accessToken` is read and
/// `access_token` is understood too. The body must be a JSON object (duplicate keys rejected) whose token
/// field is a non-empty string holding a token of RFC 6750 `b64token` syntax (a JWT or opaque, C58), with
/// no token type other than Bearer or DPoP ([`TOKEN_TYPE_FIELDS`]); the lifetime is read from
/// [`LIFETIME_FIELDS`]. Other members (`scope`, `refresh_token`, `id_token`, anything else) are ignored:
/// a `refresh_token` in the body is never stored, the httpOnly cookie is the refresh credential.
pub fn parse_token_body(
    body: &[u8],
    content_type: Option<&str>,
    token_field: Option<&str>,
) -> Result<TokenBody, BodyError> {
    if !content_type.is_some_and(is_json_content_type) {
        return Err(BodyError::NotJson);
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    let obj = core::str::from_utf8(body)
        .ok()
        .and_then(|text| parse_object(text).ok())
        .ok_or(BodyError::NotObject)?;
    let field = |name: &str| -> Result<Option<String>, BodyError> {
        match obj.get(name) {
            None => Ok(None),
            Some(Scalar::Str(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(BodyError::TokenNotString),
        }
    };
    let token = match token_field {
        Some(f) => field(f)?,
        None => match field(DEFAULT_TOKEN_FIELD)? {
            Some(t) => Some(t),
            None => field(FALLBACK_TOKEN_FIELD)?,
        },
    };
    let token = token.ok_or(BodyError::MissingToken)?;
    let mut dpop = None;
    for name in TOKEN_TYPE_FIELDS {
        let this = match obj.get(name) {
            None | Some(Scalar::Null) => continue,
            Some(Scalar::Str(t)) if t.eq_ignore_ascii_case("bearer") => false,
            Some(Scalar::Str(t)) if t.eq_ignore_ascii_case("dpop") => true,
            Some(_) => return Err(BodyError::NotBearer),
        };
        // Both fields present and disagreeing: which one to believe is not ours to guess.
        if dpop.is_some_and(|d| d != this) {
            return Err(BodyError::NotBearer);
        }
        dpop = Some(this);
    }
    let (token, claims) = AccessToken::parse(&token).map_err(BodyError::Token)?;
    let token = if dpop == Some(true) {
        token.bound_to_dpop_key()
    } else {
        token
    };
    let mut expires_in: Option<f64> = None;
    for name in LIFETIME_FIELDS {
        let value = match obj.get(name) {
            Some(Scalar::Num { value, .. }) => Some(*value),
            Some(Scalar::Str(s)) => parse_number(s),
            _ => None,
        };
        if let Some(e) = value.filter(|e| e.is_finite() && *e > 0.0) {
            expires_in = Some(expires_in.map_or(e, |x| x.min(e)));
        }
    }
    Ok(TokenBody {
        token,
        claims,
        expires_in,
    })
}
