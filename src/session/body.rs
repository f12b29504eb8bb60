//! Login and refresh response bodies as values (C19–C23).

use core::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::error::BodyError;
use super::token::{AccessToken, Claim, UnverifiedClaims};

/// The largest login or refresh body read, in bytes (C23).
pub const MAX_BODY_LEN: usize = 64 * 1024;

/// The default field carrying the token; when the application does not set `tokenField`,
/// [`FALLBACK_TOKEN_FIELD`] is also understood.
pub const DEFAULT_TOKEN_FIELD: &str = "accessToken";
/// The OAuth 2.0 (RFC 6749 §5.1) field name.
pub const FALLBACK_TOKEN_FIELD: &str = "access_token";

/// A usable login or refresh answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBody {
    /// The access token, checked and decoded.
    pub token: AccessToken,
    /// Its unverified timing claims.
    pub claims: UnverifiedClaims,
    /// `expires_in` (seconds) when present as a finite positive number.
    pub expires_in: Option<f64>,
}

/// Whether a `Content-Type` header value is `application/json` (parameters and case ignored, C21).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Parses a login or refresh answer.
///
/// `token_field` is the configured field; with `None` the default `accessToken` is read and
/// `access_token` is understood too. The body must be a JSON object (duplicate keys rejected) whose token
/// field is a string holding an acceptable JWT.
pub fn parse_token_body(
    body: &[u8],
    content_type: Option<&str>,
    token_field: Option<&str>,
) -> Result<TokenBody, BodyError> {
    if !content_type.is_some_and(is_json_content_type) {
        return Err(BodyError::NotJson);
    }
    if body.len() > MAX_BODY_LEN {
        return Err(BodyError::TooLarge);
    }
    let text = core::str::from_utf8(body).map_err(|_| BodyError::Malformed)?;
    let (primary, fallback) = match token_field {
        Some(f) => (f, None),
        None => (DEFAULT_TOKEN_FIELD, Some(FALLBACK_TOKEN_FIELD)),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let fields = Fields { primary, fallback }
        .deserialize(&mut de)
        .map_err(|_| BodyError::Malformed)?;
    de.end().map_err(|_| BodyError::Malformed)?;
    let token = match (fields.primary, fields.fallback) {
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) => return Err(BodyError::Malformed),
    };
    let (token, claims) = AccessToken::parse_jwt(&token).map_err(BodyError::Token)?;
    let expires_in = fields.expires_in.filter(|e| e.is_finite() && *e > 0.0);
    Ok(TokenBody { token, claims, expires_in })
}

struct Fields<'a> {
    primary: &'a str,
    fallback: Option<&'a str>,
}

#[derive(Default)]
struct Found {
    primary: Option<String>,
    fallback: Option<String>,
    expires_in: Option<f64>,
}

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = Found;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Found, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = Found;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let mut found = Found::default();
        let mut seen_primary = false;
        let mut seen_fallback = false;
        let mut seen_expires = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.primary {
                if seen_primary {
                    return Err(de::Error::custom("duplicate token field"));
                }
                seen_primary = true;
                found.primary = map.next_value::<Option<String>>()?.filter(|s| !s.is_empty());
                if found.primary.is_none() {
                    return Err(de::Error::custom("empty token"));
                }
            } else if Some(key.as_str()) == self.fallback {
                if seen_fallback {
                    return Err(de::Error::custom("duplicate token field"));
                }
                seen_fallback = true;
                found.fallback = map.next_value::<Option<String>>()?.filter(|s| !s.is_empty());
                if found.fallback.is_none() {
                    return Err(de::Error::custom("empty token"));
                }
            } else if key == "expires_in" {
                if seen_expires {
                    return Err(de::Error::custom("duplicate expires_in"));
                }
                seen_expires = true;
                found.expires_in = map.next_value::<Claim>()?.number();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}
