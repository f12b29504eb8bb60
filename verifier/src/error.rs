//! Why a request was refused, and how to answer it (RFC 6750 §3, RFC 9449 §7.1).

use http::header::{HeaderMap, HeaderValue};
use http::StatusCode;

use crate::dpop::{ProofError, ALGS};

/// The authentication scheme of a challenge: `Bearer` (RFC 6750) or `DPoP` (RFC 9449).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Bearer`.
    Bearer,
    /// `DPoP`, with `algs` (RFC 9449 §7.1).
    Dpop,
}

impl Scheme {
    /// The scheme a request used: `DPoP` when its single `Authorization` header's scheme is `DPoP`
    /// (in any case), `Bearer` otherwise (also when there is none).
    pub fn of(headers: &HeaderMap) -> Self {
        match crate::token::credentials(headers) {
            Ok((Self::Dpop, _)) => Self::Dpop,
            _ => Self::Bearer,
        }
    }
}

/// Why a request's access token was not accepted.
///
/// Every variant maps to one HTTP answer ([`VerifyError::status`]) and, for 400 and 401, to a
/// `WWW-Authenticate` challenge ([`VerifyError::www_authenticate_for`]) with the RFC 6750 §3.1 or
/// RFC 9449 §7.1 error code of [`VerifyError::error_code`]:
///
/// | variants | status | `error` |
/// | --- | --- | --- |
/// | [`Missing`](Self::Missing) | 401 | none (RFC 6750 §3.1: no code when no credentials were sent) |
/// | [`InvalidRequest`](Self::InvalidRequest) | 400 | `invalid_request` |
/// | every token problem, [`Malformed`](Self::Malformed) to [`DpopBoundAsBearer`](Self::DpopBoundAsBearer), [`NotDpopBound`](Self::NotDpopBound), [`DpopKeyMismatch`](Self::DpopKeyMismatch) | 401 | `invalid_token` |
/// | [`DpopProof`](Self::DpopProof) | 401 | `invalid_dpop_proof` (RFC 9449 §7.1) |
/// | [`KeysUnavailable`](Self::KeysUnavailable), [`RevocationUnavailable`](Self::RevocationUnavailable), [`DpopReplayCacheFull`](Self::DpopReplayCacheFull) | 503 + `Retry-After` | none: a server-side fault, not the token's |
///
/// The challenge's scheme is `DPoP` (with `algs="ES256"`) for a request made under the `DPoP`
/// scheme and for the DPoP variants, `Bearer` otherwise.
///
/// The verifier fails closed: an answer it cannot get (JWKS or revocation check) refuses the
/// request with 503, never lets it through. `Display` gives a fixed text per variant, never token
/// content, so it is safe in logs and in `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// No credentials: no `Authorization` header, or a scheme other than `Bearer` and `DPoP`
    /// (such as `Basic`).
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
    /// The token was presented under the `DPoP` scheme but is not bound to a DPoP key (no
    /// `cnf.jkt`, RFC 9449 §6.1): a bearer token cannot be upgraded by a proof.
    NotDpopBound,
    /// The `DPoP` proof is missing, repeated or refused (RFC 9449 §4.3, §7.1); the inner value
    /// names the rule broken ([`ProofError::Replayed`]: its `jti` was seen within the window).
    DpopProof(ProofError),
    /// The proof verifies but its key is not the one the token is bound to: its RFC 7638
    /// thumbprint differs from the token's `cnf.jkt` (RFC 9449 §7.1). A copied token.
    DpopKeyMismatch,
    /// No usable JWKS: never fetched, or its cache lifetime is over and the refetch failed.
    KeysUnavailable,
    /// The revocation check is on and the auth server could not answer it.
    RevocationUnavailable,
    /// The DPoP replay cache holds its maximum of unexpired `jti`s: the proof is refused rather
    /// than an entry forgotten (which would let its proof be replayed).
    DpopReplayCacheFull,
}

/// `Retry-After` seconds sent with the 503 answers.
pub const RETRY_AFTER_SECS: u64 = 5;

impl VerifyError {
    /// The HTTP status to answer with: 400, 401 or 503 (see the table on the type).
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::KeysUnavailable | Self::RevocationUnavailable | Self::DpopReplayCacheFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The error code: RFC 6750 §3.1 `invalid_request` or `invalid_token`, RFC 9449 §7.1
    /// `invalid_dpop_proof` ([`ProofError::code`]), or none.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            Self::Missing
            | Self::KeysUnavailable
            | Self::RevocationUnavailable
            | Self::DpopReplayCacheFull => None,
            Self::InvalidRequest => Some("invalid_request"),
            Self::DpopProof(p) => Some(p.code()),
            _ => Some("invalid_token"),
        }
    }

    /// Whether this refusal is about DPoP itself (a bound token as bearer, a bearer token under
    /// `DPoP`, the proof, the key): its challenge is `DPoP` whatever scheme the request used.
    pub fn is_dpop(self) -> bool {
        matches!(
            self,
            Self::DpopBoundAsBearer
                | Self::NotDpopBound
                | Self::DpopProof(_)
                | Self::DpopKeyMismatch
                | Self::DpopReplayCacheFull
        )
    }

    /// The challenge for a request whose headers are `headers`: as
    /// [`VerifyError::www_authenticate_scheme`] with `DPoP` when the request used the `DPoP`
    /// scheme ([`Scheme::of`]) or [`VerifyError::is_dpop`], `Bearer` otherwise.
    pub fn www_authenticate_for(self, realm: &str, headers: &HeaderMap) -> Option<HeaderValue> {
        let scheme = if self.is_dpop() {
            Scheme::Dpop
        } else {
            Scheme::of(headers)
        };
        self.www_authenticate_scheme(realm, scheme)
    }

    /// The challenge for a request of unknown headers: `DPoP` for the DPoP variants
    /// ([`VerifyError::is_dpop`]), `Bearer` otherwise. Prefer
    /// [`VerifyError::www_authenticate_for`], which also answers `DPoP` to a DPoP request whose
    /// token is refused.
    pub fn www_authenticate(self, realm: &str) -> Option<HeaderValue> {
        let scheme = if self.is_dpop() {
            Scheme::Dpop
        } else {
            Scheme::Bearer
        };
        self.www_authenticate_scheme(realm, scheme)
    }

    /// The `WWW-Authenticate` challenge for 400 and 401 answers under `scheme` (RFC 6750 §3,
    /// RFC 9449 §7.1), `None` for 503: `Bearer realm="<realm>"` or `DPoP realm="<realm>"`, then
    /// `error="…"` and `error_description="…"` (this variant's fixed text) when there is an error
    /// code, then for `DPoP` `algs="ES256"` ([`ALGS`]).
    pub fn www_authenticate_scheme(self, realm: &str, scheme: Scheme) -> Option<HeaderValue> {
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            return None;
        }
        // The realm is configuration; quotes and backslashes would break the quoted-string.
        let realm: String = realm.chars().filter(|c| *c != '"' && *c != '\\').collect();
        let name = match scheme {
            Scheme::Bearer => "Bearer",
            Scheme::Dpop => "DPoP",
        };
        let mut v = format!("{name} realm=\"{realm}\"");
        if let Some(code) = self.error_code() {
            v.push_str(&format!(", error=\"{code}\", error_description=\"{self}\""));
        }
        if scheme == Scheme::Dpop {
            v.push_str(&format!(", algs=\"{ALGS}\""));
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
            Self::NotDpopBound => "a token not bound to a DPoP key presented under the DPoP scheme",
            Self::DpopProof(p) => return std::fmt::Display::fmt(p, f),
            Self::DpopKeyMismatch => "the DPoP proof's key is not the one the token is bound to",
            Self::KeysUnavailable => "the auth server's keys are unavailable",
            Self::RevocationUnavailable => "the auth server's revocation check is unavailable",
            Self::DpopReplayCacheFull => "too many DPoP proofs to remember now",
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
