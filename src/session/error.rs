//! Errors with stable codes, grouped by what the caller can do about them.

use core::fmt;

/// A stable, machine-readable error code. The browser shell exposes it as the `code` property of a
/// `TokenManagerError`; the strings never change once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A constructor option is missing or has the wrong type or value (fix the configuration).
    InvalidOption,
    /// A token failed the local sanity checks: longer than 8 KiB, or characters outside the RFC 6750
    /// `b64token` set. Tokens are otherwise opaque: a token that is not a decodable JWT is accepted (C58).
    InvalidToken,
    /// A login or refresh answer could not be used (not JSON, no token field, too large).
    BadResponse,
    /// The manager was disposed; create a new one.
    Disposed,
    /// The server did not confirm a logout: the session ended locally, but the server session and its
    /// refresh cookie may still be alive (tell the user; logging out again retries).
    LogoutFailed,
    /// The exchange of a legacy token (`upgradeLegacyToken`) failed; `reason` and `status` say why. A retired,
    /// replayed or unknown legacy token is dropped: sign in again.
    LegacyUpgradeFailed,
}

impl ErrorCode {
    /// The stable string form, e.g. `"INVALID_TOKEN"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidOption => "INVALID_OPTION",
            ErrorCode::InvalidToken => "INVALID_TOKEN",
            ErrorCode::BadResponse => "BAD_RESPONSE",
            ErrorCode::Disposed => "DISPOSED",
            ErrorCode::LogoutFailed => "LOGOUT_FAILED",
            ErrorCode::LegacyUpgradeFailed => "LEGACY_UPGRADE_FAILED",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token was refused before it was stored or attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than [`crate::session::MAX_TOKEN_LEN`] (C15).
    TooLong,
    /// Empty, or a character outside the RFC 6750 `b64token` set, e.g. CR/LF or space (C16).
    BadCharacters,
    /// Not three base64url segments (C01).
    WrongShape,
    /// A segment is not strict unpadded base64url (C02).
    BadBase64,
    /// The header or payload is not a UTF-8 JSON object, or repeats a claim (C03, C04, C14).
    BadJson,
}

impl TokenError {
    /// The stable code of every token error.
    pub const fn code(self) -> ErrorCode {
        ErrorCode::InvalidToken
    }

    /// A short English description, safe to show (never contains the token).
    pub const fn message(self) -> &'static str {
        match self {
            TokenError::TooLong => "access token is longer than 8 KiB",
            TokenError::BadCharacters => {
                "access token is empty or contains characters outside the RFC 6750 b64token set"
            }
            TokenError::WrongShape => "access token is not a JWT of three segments",
            TokenError::BadBase64 => "access token segment is not strict unpadded base64url",
            TokenError::BadJson => {
                "access token header or payload is not a JSON object with unique claims"
            }
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TokenError {}

/// Why a login or refresh answer could not be used (C19–C23). Each names one problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// The `Content-Type` is not `application/json` or `application/<name>+json` (C21).
    NotJson,
    /// The body exceeds [`crate::session::MAX_BODY_BYTES`] (C23).
    TooLarge,
    /// The body is not one JSON object: not UTF-8, not JSON (an HTML page, C19), another JSON value, or an
    /// object with a repeated member.
    NotObject,
    /// The token field is absent (C20).
    MissingToken,
    /// The token field is present but not a non-empty string (C20).
    TokenNotString,
    /// `token_type` (or `tokenType`) is present and neither `Bearer` nor `DPoP` (any case), the two fields
    /// disagree, or it is `DPoP` and the manager has no DPoP key (the `dpop` option is off): a MAC or other token
    /// would be sent as a bearer token, which it is not.
    NotBearer,
    /// The token field is present but the token itself was refused.
    Token(TokenError),
}

impl BodyError {
    /// The stable code.
    pub const fn code(self) -> ErrorCode {
        match self {
            BodyError::Token(_) => ErrorCode::InvalidToken,
            _ => ErrorCode::BadResponse,
        }
    }

    /// A short English description, safe to show.
    pub const fn message(self) -> &'static str {
        match self {
            BodyError::NotJson => "response Content-Type is not application/json or application/*+json",
            BodyError::TooLarge => "response body is larger than 64 KiB",
            BodyError::NotObject => "response body is not a JSON object (invalid JSON or UTF-8, or a repeated member)",
            BodyError::MissingToken => "response has no token field (tokenField, or accessToken / access_token)",
            BodyError::TokenNotString => "response token field is not a non-empty string",
            BodyError::NotBearer => "response token_type is not Bearer: DPoP tokens need the dpop option; other types (MAC) are not supported",
            BodyError::Token(t) => t.message(),
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for BodyError {}

/// The logout call was not answered 2xx (see [`logout_result`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogoutError {
    /// The HTTP status of the logout call, or `None` for a network error, a timeout or no call at all.
    pub status: Option<u16>,
    /// No `logoutUrl` is configured, so no call was made: the server session and its refresh cookie stay alive,
    /// and a reload restores the session from the cookie.
    pub no_logout_url: bool,
}

impl LogoutError {
    /// The stable code, [`ErrorCode::LogoutFailed`].
    pub const fn code(self) -> ErrorCode {
        ErrorCode::LogoutFailed
    }

    /// A short English description, safe to show.
    pub const fn message(self) -> &'static str {
        if self.no_logout_url {
            return "no logoutUrl is set, so the server was not told: the session and its refresh cookie are still alive there and a reload signs the user in again; set the logoutUrl option";
        }
        match self.status {
            Some(_) => "the server refused the logout: the session may still be active on the server",
            None => "the logout call failed (network error or timeout): the session may still be active on the server",
        }
    }
}

impl fmt::Display for LogoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for LogoutError {}

/// Whether the server confirmed a logout: only a 2xx answer does. `status` is the HTTP status of the logout
/// call, or `None` when it failed at the network level or timed out. The local logout
/// ([`crate::session::Session::logout`]) has happened either way; an error only says that the server session
/// and its refresh cookie may still be alive.
pub fn logout_result(status: Option<u16>) -> Result<(), LogoutError> {
    match status {
        Some(200..=299) => Ok(()),
        _ => Err(LogoutError {
            status,
            no_logout_url: false,
        }),
    }
}

/// The answer of `logout()` when no `logoutUrl` is configured: the local logout happened, but the server still
/// holds the session, so this is a [`LogoutError`] (C61 kind: a misconfiguration must not be silent).
pub const fn logout_without_url() -> LogoutError {
    LogoutError {
        status: None,
        no_logout_url: true,
    }
}
