//! Access-token shape, header and claims rules (RFC 7519, RFC 9068, RFC 8725), as pure functions.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::error::{Scheme, VerifyError};
use crate::jwks::MAX_KID_LEN;

/// Longest token read, in bytes; longer ones are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The verified claims of an access token.
///
/// Read strictly: `iss`, `sub`, `jti` strings, `aud` a string or an array of strings, `exp` and
/// `iat` integer NumericDates (RFC 7519 §2; a fractional one is refused, as the auth server never
/// mints one), `nbf` an optional integer, `sid` an optional string; a member given twice is refused.
/// Other claims are not kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// Issuer, equal to the configured one.
    pub iss: String,
    /// Subject: the user.
    pub sub: String,
    /// Audience, as a list; it contains the configured audience.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Token id.
    pub jti: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not before, seconds since the epoch.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// The session (refresh-token family) the token belongs to, if the issuer says.
    #[serde(default)]
    pub sid: Option<String>,
    /// The confirmation claim (RFC 7800): present on sender-constrained tokens (DPoP's
    /// `{"jkt": …}`, RFC 9449 §6). Such a token is accepted only under the `DPoP` scheme with a
    /// proof of that key ([`crate::Verifier::authenticate`]); as a bearer token it is refused
    /// ([`VerifyError::DpopBoundAsBearer`]).
    #[serde(default)]
    pub cnf: Option<Value>,
}

impl Claims {
    /// The DPoP key thumbprint the token is bound to: `cnf.jkt` when it is a string (RFC 9449
    /// §6.1), `None` otherwise.
    pub fn jkt(&self) -> Option<&str> {
        self.cnf.as_ref()?.get("jkt")?.as_str()
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(d)? {
        Aud::One(a) => vec![a],
        Aud::Many(v) => v,
    })
}

/// What the verifier needs from the protected header before it has a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The `alg` member.
    pub alg: String,
    /// The `kid` member: only ever a map key.
    pub kid: String,
}

/// The asymmetric algorithms a JWKS key can be pinned to. Anything else in a header (`none`,
/// `HS256`, …) is refused before a key is looked up, so such tokens never cause a JWKS fetch.
const ASYMMETRIC: [&str; 9] = [
    "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
];

/// Shape and header rules: at most [`MAX_TOKEN_LEN`] bytes, three non-empty base64url segments
/// (no padding), a JSON object header with an asymmetric string `alg`, a `typ` equal to `typ`
/// (case-insensitive, with or without the `application/` prefix: RFC 9068 §4, RFC 7515 §4.1.9),
/// no `crit` (RFC 7515 §4.1.11: we understand no extension) and a string `kid` of 1 to 256 bytes.
/// `jku`, `x5u`, `jwk` and `x5c` are ignored: keys come from the configured JWKS only.
pub fn check_header(token: &str, typ: &str) -> Result<Header, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed);
    }
    let header = jws_header(token).ok_or(VerifyError::Malformed)?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) if ASYMMETRIC.contains(&a.as_str()) => a.clone(),
        _ => return Err(VerifyError::AlgorithmMismatch),
    };
    let typ_ok = header.get("typ").and_then(Value::as_str).is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        let want = typ.to_ascii_lowercase();
        t == want || t.strip_prefix("application/") == Some(want.as_str())
    });
    if !typ_ok || header.contains_key("crit") {
        return Err(VerifyError::BadHeader);
    }
    match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_LEN => Ok(Header {
            alg,
            kid: kid.clone(),
        }),
        _ => Err(VerifyError::BadHeader),
    }
}

/// The protected header of a compact JWS (RFC 7515 §7.1) as a JSON object: `None` unless there
/// are three non-empty segments of base64url characters (no padding) and the first decodes to a
/// JSON object. Nothing is verified. Shared by access tokens and DPoP proofs.
pub(crate) fn jws_header(jws: &str) -> Option<Map<String, Value>> {
    let b64url = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    };
    let mut segments = jws.split('.');
    let (Some(h), Some(p), Some(s), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return None;
    };
    if !(b64url(h) && b64url(p) && b64url(s)) {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(h).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// The time rules at `now` with `leeway` seconds (RFC 7519 §4.1.4–5): accepted iff
/// `now < exp + leeway`, `nbf <= now + leeway` and `iat <= now + leeway`.
pub fn check_times(claims: &Claims, leeway: u64, now: u64) -> Result<(), VerifyError> {
    if now >= claims.exp.saturating_add(leeway) {
        return Err(VerifyError::Expired);
    }
    let later = now.saturating_add(leeway);
    if claims.nbf.is_some_and(|nbf| nbf > later) || claims.iat > later {
        return Err(VerifyError::NotYetValid);
    }
    Ok(())
}

/// Issuer and audience rules: `iss` equal to `issuer`, `aud` containing `audience`.
pub fn check_issuer_audience(
    claims: &Claims,
    issuer: &str,
    audience: &str,
) -> Result<(), VerifyError> {
    if claims.iss != issuer {
        return Err(VerifyError::WrongIssuer);
    }
    if !claims.aud.iter().any(|a| a == audience) {
        return Err(VerifyError::WrongAudience);
    }
    Ok(())
}

/// The bearer token of a request's headers (RFC 6750 §2.1): as [`credentials`], with the `DPoP`
/// scheme counted as no bearer credentials ([`VerifyError::Missing`]).
pub fn bearer_token(headers: &http::HeaderMap) -> Result<&str, VerifyError> {
    match credentials(headers)? {
        (Scheme::Bearer, token) => Ok(token),
        (Scheme::Dpop, _) => Err(VerifyError::Missing),
    }
}

/// The access token of a request's headers and its scheme: exactly one `Authorization` header
/// (two or more: [`VerifyError::InvalidRequest`]) whose scheme is `Bearer` (RFC 6750 §2.1) or
/// `DPoP` (RFC 9449 §7.1), in any case (none, or another scheme: [`VerifyError::Missing`]),
/// followed by one space and a `b64token` / `token68` ([`VerifyError::Malformed`] otherwise).
pub fn credentials(headers: &http::HeaderMap) -> Result<(Scheme, &str), VerifyError> {
    let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Err(VerifyError::Missing);
    };
    if all.next().is_some() {
        return Err(VerifyError::InvalidRequest);
    }
    let value = value.to_str().map_err(|_| VerifyError::Malformed)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(VerifyError::Missing);
    };
    let b64token = !token.is_empty()
        && token
            .trim_end_matches('=')
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~+/".contains(&c));
    if b64token {
        Ok((scheme, token))
    } else {
        Err(VerifyError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn tok(header: Value) -> String {
        format!("{}.{}.c2ln", b64(&header), b64(&json!({})))
    }

    #[test]
    fn header_rules() {
        let ok = json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"});
        assert_eq!(
            check_header(&tok(ok.clone()), "at+jwt"),
            Ok(Header {
                alg: "ES256".into(),
                kid: "k1".into()
            })
        );
        for typ in ["AT+JWT", "application/at+jwt", "Application/AT+JWT"] {
            let mut h = ok.clone();
            h["typ"] = json!(typ);
            assert!(check_header(&tok(h), "at+jwt").is_ok(), "{typ}");
        }
        for (member, value, want) in [
            ("alg", json!("none"), VerifyError::AlgorithmMismatch),
            ("alg", json!("HS256"), VerifyError::AlgorithmMismatch),
            ("alg", json!(["ES256"]), VerifyError::AlgorithmMismatch),
            ("typ", json!("JWT"), VerifyError::BadHeader),
            ("typ", json!("dpop+jwt"), VerifyError::BadHeader),
            ("kid", json!(1), VerifyError::BadHeader),
            ("kid", json!(""), VerifyError::BadHeader),
            ("crit", json!(["exp"]), VerifyError::BadHeader),
        ] {
            let mut h = ok.clone();
            h[member] = value.clone();
            assert_eq!(
                check_header(&tok(h), "at+jwt"),
                Err(want),
                "{member}: {value}"
            );
        }
        let mut no_typ = ok.clone();
        no_typ.as_object_mut().expect("obj").remove("typ");
        assert_eq!(
            check_header(&tok(no_typ), "at+jwt"),
            Err(VerifyError::BadHeader)
        );
        for bad in [
            "a.b",
            "a.b.c.d",
            "a..c",
            "a=.b.c",
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(
                check_header(bad, "at+jwt"),
                Err(VerifyError::Malformed),
                "{bad:.20}"
            );
        }
    }

    fn claims(exp: u64, iat: u64, nbf: Option<u64>) -> Claims {
        Claims {
            iss: "i".into(),
            sub: "s".into(),
            aud: vec!["a".into()],
            jti: "j".into(),
            iat,
            exp,
            nbf,
            sid: None,
            cnf: None,
        }
    }

    #[test]
    fn time_rules_with_leeway() {
        assert_eq!(check_times(&claims(100, 0, None), 0, 99), Ok(()));
        assert_eq!(
            check_times(&claims(100, 0, None), 0, 100),
            Err(VerifyError::Expired)
        );
        assert_eq!(check_times(&claims(100, 0, None), 5, 104), Ok(()));
        assert_eq!(
            check_times(&claims(100, 0, None), 5, 105),
            Err(VerifyError::Expired)
        );
        assert_eq!(check_times(&claims(200, 0, Some(105)), 5, 100), Ok(()));
        assert_eq!(
            check_times(&claims(200, 0, Some(106)), 5, 100),
            Err(VerifyError::NotYetValid)
        );
        assert_eq!(
            check_times(&claims(200, 106, None), 5, 100),
            Err(VerifyError::NotYetValid)
        );
    }

    #[test]
    fn claims_are_read_strictly() {
        let base = json!({"iss": "i", "sub": "s", "aud": "a", "jti": "j", "iat": 1, "exp": 2});
        let c: Claims = serde_json::from_value(base.clone()).expect("claims");
        assert_eq!(c.aud, vec!["a".to_string()]);
        let mut many = base.clone();
        many["aud"] = json!(["x", "a"]);
        let c: Claims = serde_json::from_value(many).expect("claims");
        assert_eq!(check_issuer_audience(&c, "i", "a"), Ok(()));
        assert_eq!(
            check_issuer_audience(&c, "i", "b"),
            Err(VerifyError::WrongAudience)
        );
        assert_eq!(
            check_issuer_audience(&c, "j", "a"),
            Err(VerifyError::WrongIssuer)
        );
        for (member, value) in [
            ("exp", json!(2.5)),
            ("exp", json!("2")),
            ("iat", json!(null)),
            ("aud", json!(1)),
        ] {
            let mut bad = base.clone();
            bad[member] = value.clone();
            assert!(
                serde_json::from_value::<Claims>(bad).is_err(),
                "{member}: {value}"
            );
        }
        let mut missing = base.clone();
        missing.as_object_mut().expect("obj").remove("jti");
        assert!(serde_json::from_value::<Claims>(missing).is_err());
        let twice = r#"{"iss":"i","sub":"s","aud":"a","jti":"j","iat":1,"exp":2,"exp":9}"#;
        assert!(
            serde_json::from_str::<Claims>(twice).is_err(),
            "a repeated member is refused"
        );
    }

    #[test]
    fn bearer_header_rules() {
        let h = |values: &[&str]| {
            let mut m = http::HeaderMap::new();
            for v in values {
                m.append(http::header::AUTHORIZATION, v.parse().expect("value"));
            }
            m
        };
        assert_eq!(
            bearer_token(&h(&["Bearer abc.def-_~+/="])),
            Ok("abc.def-_~+/=")
        );
        assert_eq!(bearer_token(&h(&["bearer x"])), Ok("x"));
        assert_eq!(bearer_token(&h(&[])), Err(VerifyError::Missing));
        assert_eq!(
            bearer_token(&h(&["Basic dXNlcjpwYXNz"])),
            Err(VerifyError::Missing)
        );
        assert_eq!(bearer_token(&h(&["DPoP x"])), Err(VerifyError::Missing));
        assert_eq!(
            bearer_token(&h(&["Bearer a", "Bearer b"])),
            Err(VerifyError::InvalidRequest)
        );
        assert_eq!(bearer_token(&h(&["Bearer"])), Err(VerifyError::Malformed));
        assert_eq!(
            bearer_token(&h(&["Bearer a b"])),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            bearer_token(&h(&["Bearer a=b"])),
            Err(VerifyError::Malformed)
        );
    }
}
