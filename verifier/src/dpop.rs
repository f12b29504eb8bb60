//! DPoP (RFC 9449) proofs as values: verification, the key thumbprint, `ath`, `htu`
//! normalisation and the bounded `jti` replay cache. The one implementation of these rules: the
//! auth server (`auth-server`, its token endpoints and `/api/*`) and [`crate::Verifier`] (resource
//! servers) both use it.
//!
//! Nothing here reads a clock or touches HTTP: the caller passes the request's method and URI,
//! the current time and (on resource requests) the access token, and gets a [`Proof`] or a
//! [`ProofError`]. Which header, which status and which challenge is the caller's business
//! ([`crate::Verifier::authenticate`]; the auth server's `routes/dpop.rs`).
//!
//! What a valid proof is here (RFC 9449 §4.2, §4.3):
//! - a compact JWS of at most [`MAX_PROOF_LEN`] bytes whose protected header has
//!   `typ: "dpop+jwt"`, `alg: "ES256"` (the only algorithm accepted: asymmetric, so never `none`
//!   or `HS*`), no `crit`/`b64`, and a `jwk` that is a P-256 public key (`kty: "EC"`,
//!   `crv: "P-256"`, `x`/`y` of 32 bytes, a point on the curve) with no private member;
//! - signed by that key (checked by `jsonwebtoken`, ECDSA from the `p256` crate);
//! - with claims `jti` (1–[`MAX_JTI_LEN`] bytes), `htm` equal to the request method, `htu` equal
//!   to the request URI after normalisation (see [`normalise_htu`]), `iat` within
//!   `window` seconds of now (either side), and, on a resource request, `ath` equal to
//!   base64url(SHA-256(access token)) ([`ath`]);
//! - and, checked by the caller against its state, a `nonce` it issued (if it uses nonces: the
//!   auth server does, RFC 9449 §8) and a `jti` not seen before for this key while its `iat` is in
//!   the window ([`ReplayCache`]).
//!
//! The key's identity is its RFC 7638 SHA-256 thumbprint ([`Proof::jkt`]), the value of the
//! access token's `cnf.jkt` (RFC 9449 §6.1) and of the auth server's refresh-family binding.

use std::collections::{BTreeSet, HashMap};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `typ` of a DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";
/// The signature algorithms accepted in proofs, as announced in `algs` of a `WWW-Authenticate:
/// DPoP` challenge and in the `dpop_signing_alg_values_supported` sense (RFC 9449 §5.1).
pub const ALGS: &str = "ES256";
/// Longest `DPoP` header value accepted before any decoding, bytes (an ES256 proof with a P-256
/// key, a 43-byte `ath` and a nonce is under 800).
pub const MAX_PROOF_LEN: usize = 4096;
/// Longest `jti` accepted, bytes.
pub const MAX_JTI_LEN: usize = 256;
/// Default proof window (the auth server's `--dpop-proof-window`, the verifier's
/// [`crate::DpopConfig::proof_window`]): a proof's `iat` may be this many seconds before or after
/// the receiver's clock, and its `jti` is remembered that long.
pub const DEFAULT_PROOF_WINDOW_SECS: u64 = 60;
/// Most `jti`s remembered at once. With the default 60 s window this admits a sustained 1,666
/// proofs per second; beyond it new proofs are refused (503) rather than an unexpired entry
/// forgotten, which would let its proof be replayed.
pub const REPLAY_CACHE_MAX: usize = 100_000;

/// Why a proof was refused. Clients see `invalid_dpop_proof` for all but
/// [`ProofError::Nonce`] (`use_dpop_nonce`); the log names the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofError {
    /// No `DPoP` header where one is required (`--dpop required`, or a DPoP-bound token).
    Missing,
    /// Too long, not three base64url segments, or a segment that is not the JSON it must be.
    Malformed,
    /// `typ` is not `dpop+jwt`, or `crit`/`b64` present.
    BadType,
    /// `alg` is not ES256 (so also `none` and every `HS*`).
    BadAlg,
    /// `jwk` missing, not a P-256 public key, not a point on the curve, or with a private member.
    BadKey,
    /// The signature does not verify with the embedded key.
    BadSignature,
    /// A claim is missing or mistyped (`jti`, `htm`, `htu`, `iat`; `ath` on a resource request).
    BadClaims,
    /// `htm` is not the request's method.
    HtmMismatch,
    /// `htu` is not the request's URI (after normalisation).
    HtuMismatch,
    /// `iat` is more than the window away from now.
    IatOutOfWindow,
    /// `ath` is not the hash of the access token presented with it.
    AthMismatch,
    /// The proof's key is not the one the token or the session is bound to.
    KeyMismatch,
    /// No nonce, or not one the server issued lately: answer `use_dpop_nonce` with a fresh one.
    Nonce,
    /// This key already sent this `jti` within the window.
    Replayed,
}

impl ProofError {
    /// The OAuth `error` code (RFC 9449 §5, §7.1, §8, §9).
    pub fn code(self) -> &'static str {
        match self {
            Self::Nonce => "use_dpop_nonce",
            _ => "invalid_dpop_proof",
        }
    }
}

impl std::fmt::Display for ProofError {
    /// A fixed text per variant (never proof content): safe in logs and `error_description`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "no DPoP proof",
            Self::Malformed => "the DPoP proof is not a well-formed JWS",
            Self::BadType => "the DPoP proof's typ is not dpop+jwt",
            Self::BadAlg => "the DPoP proof's alg is not ES256",
            Self::BadKey => "the DPoP proof's jwk is not a public P-256 key",
            Self::BadSignature => "the DPoP proof's signature does not verify",
            Self::BadClaims => "the DPoP proof's claims are missing or mistyped",
            Self::HtmMismatch => "the DPoP proof's htm is not the request method",
            Self::HtuMismatch => "the DPoP proof's htu is not the request URI",
            Self::IatOutOfWindow => "the DPoP proof's iat is outside the accepted window",
            Self::AthMismatch => "the DPoP proof's ath is not the hash of the access token",
            Self::KeyMismatch => "the DPoP proof's key is not the one the token is bound to",
            Self::Nonce => "the DPoP proof has no fresh server nonce",
            Self::Replayed => "the DPoP proof was used before",
        })
    }
}

impl std::error::Error for ProofError {}

/// What the receiver needs of a proof that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key, base64url (43 characters).
    pub jkt: String,
    /// The proof's `jti`.
    pub jti: String,
    /// The proof's `iat`, Unix seconds.
    pub iat: u64,
    /// The proof's `nonce`, if any (checked by a caller that issues nonces).
    pub nonce: Option<String>,
}

impl Proof {
    /// What identifies this proof for replay detection (RFC 9449 §11.1): SHA-256 of the key's
    /// thumbprint, a NUL byte and the `jti` (a `jti` is unique per key, not across keys).
    pub fn replay_id(&self) -> [u8; 32] {
        let mut id = Vec::with_capacity(self.jkt.len() + 1 + self.jti.len());
        id.extend_from_slice(self.jkt.as_bytes());
        id.push(0);
        id.extend_from_slice(self.jti.as_bytes());
        Sha256::digest(&id).into()
    }
}

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The HTTP method, as sent (`POST`).
    pub method: &'a str,
    /// The request's absolute URI as the client addressed it (query and fragment are ignored).
    pub uri: &'a str,
    /// Now, Unix seconds.
    pub now: u64,
    /// `iat` may be at most this many seconds before or after `now`.
    pub window: u64,
    /// On a resource request: the access token the proof must name in `ath`.
    pub access_token: Option<&'a str>,
}

/// The claims of a proof, read strictly: wrong types fail (an `iat` that is a string or a float).
#[derive(Debug, Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: u64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// JWK members that only a private key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// `ath` of an access token: base64url(SHA-256(ASCII of the token)) (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK, base64url. Only RSA and the NIST curves
/// P-256/P-384/P-521 are accepted, with members that are base64url text (so the canonical JSON
/// cannot be broken by a quote). Errors: [`ProofError::BadKey`].
pub fn thumbprint(jwk: &Jwk) -> Result<String, ProofError> {
    use jsonwebtoken::jwk::{AlgorithmParameters as P, EllipticCurve as C};
    let b64 = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    };
    let ok = match &jwk.algorithm {
        P::EllipticCurve(p) => {
            matches!(p.curve, C::P256 | C::P384 | C::P521) && b64(&p.x) && b64(&p.y)
        }
        P::RSA(p) => b64(&p.n) && b64(&p.e),
        P::OctetKey(_) | P::OctetKeyPair(_) => false,
    };
    if !ok {
        return Err(ProofError::BadKey);
    }
    Ok(jwk.thumbprint(ThumbprintHash::SHA256))
}

/// Normalise an `htu` or a request URI for comparison (RFC 9449 §4.3 step 9, RFC 3986 §6.2.2 and
/// §6.2.3, as the WHATWG URL parser applies them): scheme and host lower-cased, the scheme's
/// default port dropped, an empty path made `/`, dot segments removed, and the query and fragment
/// dropped. `None` for anything but an absolute `http`/`https` URI.
pub fn normalise_htu(s: &str) -> Option<String> {
    let mut u = url::Url::parse(s).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return None;
    }
    if !u.username().is_empty() || u.password().is_some() {
        return None;
    }
    u.set_query(None);
    u.set_fragment(None);
    Some(u.into())
}

/// Validate an external base URL for `htu` (the auth server's `--dpop-htu-base`,
/// [`crate::DpopConfig::htu_base`]): an absolute `http`/`https` URL without query, fragment or
/// credentials; surrounding blanks and a trailing `/` are dropped (the request path, which starts
/// with `/`, is appended to it). Errors: a message naming the value.
pub fn parse_htu_base(s: &str) -> Result<String, String> {
    let base = s.trim().trim_end_matches('/');
    let ok = url::Url::parse(base).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.query().is_none()
            && u.fragment().is_none()
            && u.username().is_empty()
            && u.password().is_none()
    });
    if ok {
        Ok(base.to_string())
    } else {
        Err(format!(
            "DPoP htu base {s:?} must be an absolute http(s) URL without query, fragment or credentials"
        ))
    }
}

/// The URI a proof for a request must name in `htu` (RFC 9449 §4.3 step 9): `base` (a value of
/// [`parse_htu_base`]) + the request path when a base is configured; otherwise `http://` + the
/// request's single `Host` header + path (a server reached directly over plain HTTP). `None` when
/// there is no base and no usable `Host` (absent, repeated, or with blanks, `/` or `@`).
pub fn request_htu(base: Option<&str>, headers: &http::HeaderMap, path: &str) -> Option<String> {
    if let Some(base) = base {
        return Some(format!("{base}{path}"));
    }
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let host = hosts.next()?.to_str().ok()?;
    if hosts.next().is_some()
        || host.is_empty()
        || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@')
    {
        return None;
    }
    Some(format!("http://{host}{path}"))
}

/// Verify a proof's form, key, signature and claims against `req`, its `iat` within `req.window`
/// of `req.now` last (not its nonce or `jti` history: those are the caller's state). Errors name
/// the first rule broken.
pub fn verify(proof: &str, req: &Request<'_>) -> Result<Proof, ProofError> {
    let proof = verify_except_iat(proof, req)?;
    if iat_in_window(proof.iat, req.now, req.window) {
        Ok(proof)
    } else {
        Err(ProofError::IatOutOfWindow)
    }
}

/// Whether `iat` is at most `window` seconds before or after `now` (both ends included).
pub fn iat_in_window(iat: u64, now: u64, window: u64) -> bool {
    iat.saturating_add(window) >= now && iat <= now.saturating_add(window)
}

/// Everything [`verify`] checks except the `iat` window (`req.window` is not read), for a
/// receiver that establishes the proof's creation time otherwise: by a nonce it issued lately
/// (RFC 9449 §4.3 step 11, "a server managed timestamp via the nonce claim"). Such a receiver
/// must then refuse a proof without a fresh nonce, and remember its `jti` for as long as that
/// nonce is accepted ([`ReplayCache::admit_until`]), or a proof could be replayed after its `iat`
/// left the window.
pub fn verify_except_iat(proof: &str, req: &Request<'_>) -> Result<Proof, ProofError> {
    if proof.is_empty() || proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::Malformed);
    }
    let header = crate::token::jws_header(proof).ok_or(ProofError::Malformed)?;
    if header.get("typ").and_then(|v| v.as_str()) != Some(PROOF_TYP)
        || header.contains_key("crit")
        || header.contains_key("b64")
    {
        return Err(ProofError::BadType);
    }
    if header.get("alg").and_then(|v| v.as_str()) != Some("ES256") {
        return Err(ProofError::BadAlg);
    }
    let Some(serde_json::Value::Object(jwk)) = header.get("jwk") else {
        return Err(ProofError::BadKey);
    };
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofError::BadKey);
    }
    let member = |k: &str| jwk.get(k).and_then(|v| v.as_str());
    let (Some("EC"), Some("P-256"), Some(x), Some(y)) =
        (member("kty"), member("crv"), member("x"), member("y"))
    else {
        return Err(ProofError::BadKey);
    };
    let coordinate = |c: &str| {
        URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or(ProofError::BadKey)
    };
    let mut sec1 = vec![0x04];
    sec1.extend(coordinate(x)?);
    sec1.extend(coordinate(y)?);
    // A point on the curve (not the identity): jsonwebtoken would fail later, but less clearly.
    p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| ProofError::BadKey)?;
    let key = DecodingKey::from_ec_components(x, y).map_err(|_| ProofError::BadKey)?;
    let jwk: Jwk = serde_json::from_value(serde_json::Value::Object(jwk.clone()))
        .map_err(|_| ProofError::BadKey)?;
    let jkt = thumbprint(&jwk)?;

    let mut v = Validation::new(Algorithm::ES256);
    v.algorithms = vec![Algorithm::ES256];
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<ProofClaims>(proof, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidAlgorithm => {
                    ProofError::BadSignature
                }
                K::Json(_) => ProofError::BadClaims,
                _ => ProofError::Malformed,
            }
        })?;

    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(ProofError::BadClaims);
    }
    if claims.htm != req.method {
        return Err(ProofError::HtmMismatch);
    }
    match (normalise_htu(&claims.htu), normalise_htu(req.uri)) {
        (Some(a), Some(b)) if a == b => {}
        _ => return Err(ProofError::HtuMismatch),
    }
    if let Some(token) = req.access_token {
        match &claims.ath {
            None => return Err(ProofError::BadClaims),
            Some(a) if *a != ath(token) => return Err(ProofError::AthMismatch),
            Some(_) => {}
        }
    }
    Ok(Proof {
        jkt,
        jti: claims.jti,
        iat: claims.iat,
        nonce: claims.nonce,
    })
}

/// Why [`ReplayCache::admit`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// This `(jkt, jti)` was admitted before and is still remembered.
    Replayed,
    /// [`ReplayCache`] holds its maximum of unexpired entries: refuse rather than forget one.
    Full,
}

/// The `jti`s seen, per key, each remembered until its proof's `iat` leaves the window: a
/// replay later than that is refused by the `iat` check instead. Bounded: at most `max`
/// entries; expired ones are dropped first, oldest deadline first.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    max: usize,
    until: HashMap<[u8; 32], u64>,
    by_deadline: BTreeSet<(u64, [u8; 32])>,
}

impl ReplayCache {
    /// An empty cache of at most `max` entries.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            until: HashMap::new(),
            by_deadline: BTreeSet::new(),
        }
    }

    /// Entries held (expired ones included until the next [`ReplayCache::admit`] or
    /// [`ReplayCache::sweep`]).
    pub fn len(&self) -> usize {
        self.until.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    /// Drop the entries whose deadline is at or before `now`.
    pub fn sweep(&mut self, now: u64) {
        while let Some(&(t, k)) = self.by_deadline.first() {
            if t > now {
                break;
            }
            self.by_deadline.pop_first();
            self.until.remove(&k);
        }
    }

    /// Remember `proof`'s `(jkt, jti)` until `iat + window` (inclusive), unless already there:
    /// for a receiver that accepts a proof only while its `iat` is within `window` ([`verify`]).
    pub fn admit(&mut self, proof: &Proof, window: u64, now: u64) -> Result<(), ReplayError> {
        let deadline = proof.iat.saturating_add(window).saturating_add(1);
        self.admit_until(proof, deadline, now)
    }

    /// Remember `proof`'s `(jkt, jti)` until `deadline` (exclusive; at least until `now + 1`),
    /// unless already there: for a receiver that may also accept it later on other grounds (a
    /// server nonce, [`verify_except_iat`]); `deadline` must be after every time it could.
    pub fn admit_until(
        &mut self,
        proof: &Proof,
        deadline: u64,
        now: u64,
    ) -> Result<(), ReplayError> {
        self.sweep(now);
        let key = proof.replay_id();
        if self.until.contains_key(&key) {
            return Err(ReplayError::Replayed);
        }
        if self.until.len() >= self.max {
            return Err(ReplayError::Full);
        }
        let deadline = deadline.max(now.saturating_add(1));
        self.until.insert(key, deadline);
        self.by_deadline.insert((deadline, key));
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::EncodePrivateKey;

    /// RFC 9449 §4.1, figure 2: a proof for `POST https://server.example.com/token` at
    /// 1562262616 (its figure 3 shows the decoded header and claims).
    pub(crate) const RFC_TOKEN_PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
    /// RFC 9449 §7.1, figure 12: a proof for `GET https://resource.example.org/protectedresource`
    /// at 1562262618 with the `ath` of [`RFC_ACCESS_TOKEN`].
    pub(crate) const RFC_RESOURCE_PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA";
    /// RFC 9449 §7.1, figure 12: the access token of the resource request.
    pub(crate) const RFC_ACCESS_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    /// RFC 9449 §6.1, figure 7: the thumbprint of the examples' key (`cnf.jkt`).
    pub(crate) const RFC_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

    /// 128 random bits, base64url: a fresh `jti`.
    pub(crate) fn random_id() -> String {
        use rand::RngCore;
        let mut b = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut b);
        URL_SAFE_NO_PAD.encode(b)
    }

    fn token_request(now: u64) -> Request<'static> {
        Request {
            method: "POST",
            uri: "https://server.example.com/token",
            now,
            window: 60,
            access_token: None,
        }
    }

    /// A real P-256 key and a signer of proofs with it.
    pub(crate) struct TestKey {
        encoding: jsonwebtoken::EncodingKey,
        pub(crate) jwk: serde_json::Value,
    }

    impl TestKey {
        pub(crate) fn new() -> Self {
            let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
            let der = secret.to_pkcs8_der().expect("pkcs8");
            let point = secret.public_key().to_encoded_point(false);
            let b64 = |b: Option<&p256::FieldBytes>| URL_SAFE_NO_PAD.encode(b.expect("coordinate"));
            Self {
                encoding: jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()),
                jwk: serde_json::json!({
                    "kty": "EC", "crv": "P-256", "x": b64(point.x()), "y": b64(point.y()),
                }),
            }
        }

        /// Sign `claims` under `header` (the `jwk` member is this key's unless `header` has one).
        pub(crate) fn sign_with(
            &self,
            mut header: serde_json::Value,
            claims: serde_json::Value,
        ) -> String {
            if header.get("jwk").is_none() {
                header["jwk"] = self.jwk.clone();
            }
            self.sign_jws(&header, &claims)
        }

        /// A compact JWS of `claims` under exactly `header`, signed ES256 with this key.
        pub(crate) fn sign_jws(
            &self,
            header: &serde_json::Value,
            claims: &serde_json::Value,
        ) -> String {
            let h = URL_SAFE_NO_PAD.encode(header.to_string());
            let c = URL_SAFE_NO_PAD.encode(claims.to_string());
            let input = format!("{h}.{c}");
            let sig =
                jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, Algorithm::ES256)
                    .expect("sign");
            format!("{input}.{sig}")
        }

        pub(crate) fn sign(&self, claims: serde_json::Value) -> String {
            self.sign_with(
                serde_json::json!({"typ": "dpop+jwt", "alg": "ES256"}),
                claims,
            )
        }

        pub(crate) fn jkt(&self) -> String {
            let jwk: Jwk = serde_json::from_value(self.jwk.clone()).expect("jwk");
            thumbprint(&jwk).expect("thumbprint")
        }
    }

    #[test]
    fn rfc_9449_token_request_proof_verifies() {
        let p = verify(RFC_TOKEN_PROOF, &token_request(1_562_262_616)).expect("figure 2 verifies");
        assert_eq!(p.jkt, RFC_JKT);
        assert_eq!(p.jti, "-BwC3ESc6acc2lTc");
        assert_eq!(p.iat, 1_562_262_616);
        assert_eq!(p.nonce, None);
        // Another method, another URI, too late, too early.
        let mut r = token_request(1_562_262_616);
        r.method = "GET";
        assert_eq!(verify(RFC_TOKEN_PROOF, &r), Err(ProofError::HtmMismatch));
        let mut r = token_request(1_562_262_616);
        r.uri = "https://server.example.com/other";
        assert_eq!(verify(RFC_TOKEN_PROOF, &r), Err(ProofError::HtuMismatch));
        let r = token_request(1_562_262_616 + 61);
        assert_eq!(verify(RFC_TOKEN_PROOF, &r), Err(ProofError::IatOutOfWindow));
        let r = token_request(1_562_262_616 - 61);
        assert_eq!(verify(RFC_TOKEN_PROOF, &r), Err(ProofError::IatOutOfWindow));
        assert!(verify(RFC_TOKEN_PROOF, &token_request(1_562_262_616 + 60)).is_ok());
        assert!(verify(RFC_TOKEN_PROOF, &token_request(1_562_262_616 - 60)).is_ok());
    }

    #[test]
    fn rfc_9449_resource_proof_verifies_with_its_ath() {
        let mut r = Request {
            method: "GET",
            uri: "https://resource.example.org/protectedresource",
            now: 1_562_262_618,
            window: 60,
            access_token: Some(RFC_ACCESS_TOKEN),
        };
        assert_eq!(
            ath(RFC_ACCESS_TOKEN),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
        let p = verify(RFC_RESOURCE_PROOF, &r).expect("figure 12 verifies");
        assert_eq!(p.jkt, RFC_JKT);
        assert_eq!(p.jti, "e1j3V_bKic8-LAEB");
        r.access_token = Some("another token");
        assert_eq!(verify(RFC_RESOURCE_PROOF, &r), Err(ProofError::AthMismatch));
        // A token-endpoint proof has no ath: refused where an access token comes with it.
        let r = Request {
            access_token: Some(RFC_ACCESS_TOKEN),
            ..token_request(1_562_262_616)
        };
        assert_eq!(verify(RFC_TOKEN_PROOF, &r), Err(ProofError::BadClaims));
    }

    #[test]
    fn rfc_7638_thumbprint_example() {
        // RFC 7638 §3.1: the RSA key of RFC 7517 appendix A.1 and its SHA-256 thumbprint.
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .expect("jwk");
        assert_eq!(
            thumbprint(&jwk),
            Ok("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".to_string())
        );
        // The RFC 9449 key, whose members come in another order: the order does not matter.
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "crv": "P-256",
            "kty": "EC"
        }))
        .expect("jwk");
        assert_eq!(thumbprint(&jwk), Ok(RFC_JKT.to_string()));
    }

    #[test]
    fn htu_is_compared_without_query_and_fragment_and_normalised() {
        let n = |s| normalise_htu(s);
        assert_eq!(
            n("HTTPS://Server.Example.COM:443/token?x=1#f"),
            n("https://server.example.com/token")
        );
        assert_eq!(n("http://a.example:80"), n("http://a.example/"));
        assert_eq!(
            n("http://a.example/x/../token"),
            n("http://a.example/token")
        );
        assert_ne!(
            n("http://a.example:8080/token"),
            n("http://a.example/token")
        );
        assert_ne!(n("https://a.example/token"), n("http://a.example/token"));
        assert_ne!(n("http://a.example/Token"), n("http://a.example/token"));
        assert_eq!(n("/token"), None);
        assert_eq!(n("ftp://a.example/token"), None);
        assert_eq!(n("http://user:pw@a.example/token"), None);
    }

    fn claims(now: u64) -> serde_json::Value {
        serde_json::json!({
            "jti": random_id(),
            "htm": "POST",
            "htu": "https://server.example.com/token",
            "iat": now,
        })
    }

    #[test]
    fn a_real_key_signs_proofs_that_verify_and_tampering_is_refused() {
        let k = TestKey::new();
        let now = 1_900_000_000;
        let p = verify(&k.sign(claims(now)), &token_request(now)).expect("verifies");
        assert_eq!(p.jkt, k.jkt());
        assert_eq!(p.jkt.len(), 43);

        // Another key's signature under this key's jwk.
        let other = TestKey::new();
        let forged = other.sign_with(
            serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk}),
            claims(now),
        );
        assert_eq!(
            verify(&forged, &token_request(now)),
            Err(ProofError::BadSignature)
        );
        // A claim changed after signing.
        let good = k.sign(claims(now));
        let mut parts: Vec<&str> = good.split('.').collect();
        let mut c = claims(now);
        c["htm"] = "POST".into();
        c["iat"] = (now + 1).into();
        let swapped = URL_SAFE_NO_PAD.encode(c.to_string());
        parts[1] = &swapped;
        assert_eq!(
            verify(&parts.join("."), &token_request(now)),
            Err(ProofError::BadSignature)
        );
    }

    #[test]
    fn header_rules_refuse_other_types_algorithms_and_keys() {
        let k = TestKey::new();
        let now = 1_900_000_000;
        let req = token_request(now);
        let with = |h: serde_json::Value| verify(&k.sign_with(h, claims(now)), &req);
        assert_eq!(
            with(serde_json::json!({"typ": "JWT", "alg": "ES256"})),
            Err(ProofError::BadType)
        );
        assert_eq!(
            with(serde_json::json!({"alg": "ES256"})),
            Err(ProofError::BadType)
        );
        assert_eq!(
            with(serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "crit": ["x"]})),
            Err(ProofError::BadType)
        );
        for alg in ["none", "HS256", "RS256", "ES384"] {
            assert_eq!(
                with(serde_json::json!({"typ": "dpop+jwt", "alg": alg})),
                Err(ProofError::BadAlg),
                "{alg}"
            );
        }
        // `none` with an empty signature: refused before any verification.
        let h = URL_SAFE_NO_PAD.encode(r#"{"typ":"dpop+jwt","alg":"none"}"#);
        let c = URL_SAFE_NO_PAD.encode(claims(now).to_string());
        assert_eq!(
            verify(&format!("{h}.{c}."), &req),
            Err(ProofError::Malformed)
        );
        assert_eq!(
            verify(&format!("{h}.{c}.AA"), &req),
            Err(ProofError::BadAlg)
        );
        // A private member, a symmetric key, another curve, a point off the curve, no key.
        let mut private = k.jwk.clone();
        private["d"] = "AAAA".into();
        let h = |jwk: serde_json::Value| serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        assert_eq!(with(h(private)), Err(ProofError::BadKey));
        assert_eq!(
            with(h(serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}))),
            Err(ProofError::BadKey)
        );
        let mut p384 = k.jwk.clone();
        p384["crv"] = "P-384".into();
        assert_eq!(with(h(p384)), Err(ProofError::BadKey));
        let mut off = k.jwk.clone();
        off["y"] = URL_SAFE_NO_PAD.encode([1u8; 32]).into();
        assert_eq!(with(h(off)), Err(ProofError::BadKey));
        assert_eq!(
            with(h(serde_json::json!("not an object"))),
            Err(ProofError::BadKey)
        );
        // Oversized and malformed.
        assert_eq!(
            verify(&"a".repeat(MAX_PROOF_LEN + 1), &req),
            Err(ProofError::Malformed)
        );
        assert_eq!(verify("a.b", &req), Err(ProofError::Malformed));
    }

    #[test]
    fn claims_are_required_and_typed() {
        let k = TestKey::new();
        let now = 1_900_000_000;
        let req = token_request(now);
        for drop in ["jti", "htm", "htu", "iat"] {
            let mut c = claims(now);
            c.as_object_mut().expect("object").remove(drop);
            assert_eq!(
                verify(&k.sign(c), &req),
                Err(ProofError::BadClaims),
                "{drop}"
            );
        }
        let mut c = claims(now);
        c["iat"] = format!("{now}").into();
        assert_eq!(verify(&k.sign(c), &req), Err(ProofError::BadClaims));
        let mut c = claims(now);
        c["jti"] = "".into();
        assert_eq!(verify(&k.sign(c), &req), Err(ProofError::BadClaims));
        let mut c = claims(now);
        c["htm"] = "post".into();
        assert_eq!(verify(&k.sign(c), &req), Err(ProofError::HtmMismatch));
        let mut c = claims(now);
        c["nonce"] = "n1".into();
        assert_eq!(
            verify(&k.sign(c), &req).map(|p| p.nonce),
            Ok(Some("n1".into()))
        );
    }

    fn proof(jkt: &str, jti: &str, iat: u64) -> Proof {
        Proof {
            jkt: jkt.into(),
            jti: jti.into(),
            iat,
            nonce: None,
        }
    }

    #[test]
    fn replay_cache_refuses_a_jti_twice_within_the_window_and_is_bounded() {
        let mut c = ReplayCache::new(2);
        assert_eq!(c.admit(&proof("k", "a", 100), 60, 100), Ok(()));
        assert_eq!(
            c.admit(&proof("k", "a", 100), 60, 160),
            Err(ReplayError::Replayed)
        );
        // The same jti from another key is another proof.
        assert_eq!(c.admit(&proof("k2", "a", 100), 60, 100), Ok(()));
        assert_eq!(
            c.admit(&proof("k", "b", 100), 60, 100),
            Err(ReplayError::Full)
        );
        // At iat + window + 1 the entries expire (the iat check refuses such a proof anyway).
        assert_eq!(c.admit(&proof("k", "b", 120), 60, 161), Ok(()));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_proof_accepted_on_a_nonce_is_remembered_until_the_deadline_given() {
        let mut c = ReplayCache::new(10);
        // iat far in the past (a client clock behind), remembered until 1000 (exclusive).
        assert_eq!(c.admit_until(&proof("k", "a", 5), 1000, 100), Ok(()));
        assert_eq!(
            c.admit_until(&proof("k", "a", 5), 1000, 999),
            Err(ReplayError::Replayed),
            "long after iat + window, still remembered"
        );
        assert_eq!(c.admit_until(&proof("k", "a", 5), 1000, 1000), Ok(()));
        // A deadline already past still holds the entry for the current second.
        assert_eq!(c.admit_until(&proof("k", "b", 5), 50, 100), Ok(()));
        assert_eq!(
            c.admit_until(&proof("k", "b", 5), 50, 100),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn verify_except_iat_accepts_any_iat_and_verify_applies_the_window() {
        let k = TestKey::new();
        let now = 1_900_000_000;
        for iat in [now - 3600, now + 3600] {
            let mut c = claims(now);
            c["iat"] = iat.into();
            let p = k.sign(c);
            assert_eq!(
                verify(&p, &token_request(now)),
                Err(ProofError::IatOutOfWindow)
            );
            assert_eq!(
                verify_except_iat(&p, &token_request(now)).map(|p| p.iat),
                Ok(iat)
            );
        }
        assert!(iat_in_window(100, 160, 60) && iat_in_window(220, 160, 60));
        assert!(!iat_in_window(99, 160, 60) && !iat_in_window(221, 160, 60));
    }
}
