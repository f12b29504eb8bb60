//! Origin normalisation and matching. Parsing URLs is the browser's job (WHATWG URL); these helpers take
//! the already-parsed parts and compare them exactly (C49, C50).

/// A tuple origin: scheme, host and port, normalised (lower case, default port dropped).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Builds an origin from parsed parts. `scheme` may carry the trailing `:` of `URL.protocol`;
    /// `port` is the text of `URL.port` (empty for the default). Only `http` and `https` origins exist
    /// here: anything else (opaque origins, `blob:`, `data:`, `file:`) gives `None` and never matches.
    pub fn new(scheme: &str, host: &str, port: &str) -> Option<Origin> {
        let scheme = scheme
            .strip_suffix(':')
            .unwrap_or(scheme)
            .to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        if !valid_host(host) {
            return None;
        }
        let port = if port.is_empty() {
            None
        } else {
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let p: u16 = port.parse().ok()?;
            if p == default_port {
                None
            } else {
                Some(p)
            }
        };
        Some(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Parses a serialised origin such as `https://api.example.com:8443` (the form of `URL.origin`).
    /// Paths, userinfo, queries and fragments are refused: an allowlist entry must be an origin.
    pub fn parse_serialized(s: &str) -> Option<Origin> {
        let (scheme, rest) = s.split_once("://")?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 literal ends in `]`; its colons are not a port separator.
            Some((h, p)) if !p.contains(']') => (h, p),
            _ => (rest, ""),
        };
        Origin::new(scheme, host, port)
    }

    /// The serialisation, e.g. `https://api.example.com` or `http://localhost:8080`.
    pub fn serialize(&self) -> String {
        match self.port {
            Some(p) => format!("{}://{}:{}", self.scheme, self.host, p),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }
}

/// A host as `URL.hostname` gives it: non-empty, no WHATWG forbidden domain code point (C0 controls, space,
/// `# % / : < > ? @ [ \ ] ^ |`, DEL), except an IPv6 literal in brackets (hex digits, `:` and `.` inside).
/// Anything else could never be a URL's host, and would not survive serialising (found by fuzzing, C48).
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.contains(':')
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !host.is_empty()
        && !host.bytes().any(|b| {
            b.is_ascii_control()
                || matches!(
                    b,
                    b' ' | b'#'
                        | b'%'
                        | b'/'
                        | b':'
                        | b'<'
                        | b'>'
                        | b'?'
                        | b'@'
                        | b'['
                        | b'\\'
                        | b']'
                        | b'^'
                        | b'|'
                )
        })
}

/// The origins that receive the bearer token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<Origin>);

impl AllowedOrigins {
    /// An allowlist of these origins.
    pub fn new(origins: Vec<Origin>) -> Self {
        AllowedOrigins(origins)
    }

    /// Exact match on scheme, host and port (http never matches https).
    pub fn allows(&self, origin: &Origin) -> bool {
        self.0.iter().any(|o| o == origin)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
