//! Why a request was refused, and how to answer it (RFC 6750 §3).

use http::header::HeaderValue;
use http::StatusCode;

/// Why a request's access token was not accepted.
///
/// Every variant maps to one HTTP answer ([`VerifyError::status`]) and, for 400 and 401, to a
/// `WWW-Authenticate: Bearer` challenge ([`VerifyError::www_authenticate`]) with the RFC 6750 §3.1
/// error code of [`VerifyError::error_code`]:
///
/// | variants | status | `error` |
/// | --- | --- | --- |
/// | [`Missing`](Self::Missing) | 401 | none (RFC 6750 §3.1: no code when no credentials were sent) |
/// | [`InvalidRequest`](Self::InvalidRequest) | 400 | `invalid_request` |
/// | every token problem, [`Malformed`](Self::Malformed) to [`DpopBoundAsBearer`](Self::DpopBoundAsBearer) | 401 | `invalid_token` |
/// | [`KeysUnavailable`](Self::KeysUnavailable), [`RevocationUnavailable`](Self::RevocationUnavailable) | 503 + `Retry-After` | none: a server-side fault, not the token's |
///
/// The verifier fails closed: an answer it cannot get (JWKS or revocation check) refuses the
/// request with 503, never lets it through. `Display` gives a fixed text per variant, never token
/// content, so it is safe in logs and in `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// No `Authorization: Bearer` credentials (no header, or another scheme such as `Basic`).
    Missing,
    /// The request is malformed: more than one `Authorization` header (RFC 6750 §2, §3.1).
    InvalidRequest,
    /// Not a compact JWS: too long, not three base64url segments, header or claims not JSON.
    Malformed,
    /// A header rule broken: `typ` is not the access-token type, `crit` present, `kid` missing
    /// or not a short string.
    BadHeader,
    /// The header's `alg` is not the algorithm pinned for the key (`none`, HS256 under a public
    /// key, ES384 under a P-256 key, …): RFC 8725 §3.1.
    AlgorithmMismatch,
    /// No key with this `kid` in the JWKS, after the one refetch the rate limit allows.
    UnknownKey,
    /// The signature does not verify under the key.
    BadSignature,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    WrongAudience,
    /// A required claim is missing or mistyped (`iss`, `aud`, `sub`, `jti`, integer `exp`/`iat`).
    BadClaims,
    /// `exp` plus the leeway has passed.
    Expired,
    /// `nbf` or `iat` is later than now plus the leeway.
    NotYetValid,
    /// The auth server says the token is no longer active (its session was revoked by logout or
    /// reuse detection, or the token itself was revoked).
    Revoked,
    /// The token is bound to a DPoP key (`cnf` claim, RFC 9449 §6) but was presented as a bearer
    /// token; RFC 9449 §7.2 requires refusing it.
    DpopBoundAsBearer,
    /// No usable JWKS: never fetched, or its cache lifetime is over and the refetch failed.
    KeysUnavailable,
    /// The revocation check is on and the auth server could not answer it.
    RevocationUnavailable,
}

/// `Retry-After` seconds sent with the 503 answers.
pub const RETRY_AFTER_SECS: u64 = 5;

impl VerifyError {
    /// The HTTP status to answer with: 400, 401 or 503 (see the table on the type).
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::KeysUnavailable | Self::RevocationUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 §3.1 error code: `invalid_request`, `invalid_token`, or none.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            Self::Missing | Self::KeysUnavailable | Self::RevocationUnavailable => None,
            Self::InvalidRequest => Some("invalid_request"),
            _ => Some("invalid_token"),
        }
    }

    /// The `WWW-Authenticate` challenge for 400 and 401 answers (RFC 6750 §3), `None` for 503:
    /// `Bearer realm="<realm>"`, then `error="…"` and `error_description="…"` (this variant's
    /// fixed text) when there is an error code.
    pub fn www_authenticate(self, realm: &str) -> Option<HeaderValue> {
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            return None;
        }
        // The realm is configuration; quotes and backslashes would break the quoted-string.
        let realm: String = realm.chars().filter(|c| *c != '"' && *c != '\\').collect();
        let mut v = format!("Bearer realm=\"{realm}\"");
        if let Some(code) = self.error_code() {
            v.push_str(&format!(", error=\"{code}\", error_description=\"{self}\""));
        }
        HeaderValue::from_str(&v).ok()
    }

    /// `Retry-After` seconds for the 503 answers, `None` otherwise.
    pub fn retry_after(self) -> Option<u64> {
        (self.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER_SECS)
    }
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "no bearer token",
            Self::InvalidRequest => "more than one Authorization header",
            Self::Malformed => "the token is not a well-formed JWS",
            Self::BadHeader => "the token header is not that of an access token",
            Self::AlgorithmMismatch => "the token's alg is not the one pinned for its key",
            Self::UnknownKey => "the token's kid is not in the JWKS",
            Self::BadSignature => "the token signature does not verify",
            Self::WrongIssuer => "the token's iss is not the expected issuer",
            Self::WrongAudience => "the token's aud does not include this API",
            Self::BadClaims => "the token's claims are missing or mistyped",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::Revoked => "the token or its session has been revoked",
            Self::DpopBoundAsBearer => "a DPoP-bound token presented as a bearer token",
            Self::KeysUnavailable => "the auth server's keys are unavailable",
            Self::RevocationUnavailable => "the auth server's revocation check is unavailable",
        })
    }
}

impl std::error::Error for VerifyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_rfc6750_challenges() {
        let v = VerifyError::Expired
            .www_authenticate("api")
            .expect("challenge");
        assert_eq!(
            v.to_str().expect("ascii"),
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\""
        );
        assert_eq!(VerifyError::Expired.status(), StatusCode::UNAUTHORIZED);
        let missing = VerifyError::Missing
            .www_authenticate("a\"b")
            .expect("challenge");
        assert_eq!(missing.to_str().expect("ascii"), "Bearer realm=\"ab\"");
        assert_eq!(
            VerifyError::InvalidRequest.status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            VerifyError::InvalidRequest.error_code(),
            Some("invalid_request")
        );
        for e in [
            VerifyError::KeysUnavailable,
            VerifyError::RevocationUnavailable,
        ] {
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.www_authenticate("api"), None);
            assert_eq!(e.retry_after(), Some(RETRY_AFTER_SECS));
        }
        assert_eq!(VerifyError::Revoked.retry_after(), None);
    }
}
