//! Shared pieces of the fuzz targets: the references the client's decoders are held to.
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};

/// The top-level keys of a JSON object as serde_json reads it, in order (repeats kept), or `None` when
/// serde_json does not read the bytes as one JSON object.
pub fn reference_keys(bytes: &[u8]) -> Option<Vec<String>> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some((k, _)) = map.next_entry::<String, IgnoredAny>()? {
                keys.push(k);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let keys = (&mut de).deserialize_map(Keys).ok()?;
    de.end().ok()?;
    Some(keys)
}

/// Nesting depth of a JSON value (a scalar is 0).
pub fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// What the client's claims reader must do with these payload bytes, by serde_json: `Some(value)` when they
/// are a JSON object without repeated top-level keys and no deeper than the core's limit (64), else `None`.
pub fn reference_claims(bytes: &[u8]) -> Option<serde_json::Value> {
    let keys = reference_keys(bytes)?;
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    (unique.len() == keys.len() && depth(&value) <= 64).then_some(value)
}

/// The contract of the core's decimal conversion (see tests/differential_decoding.rs): integers up to 2^53
/// exact, subnormals may read as 0, anything else within a relative 1e-14 of the correctly rounded value.
pub fn close(ours: Option<f64>, theirs: Option<f64>) -> bool {
    match (ours, theirs) {
        (a, b) if a == b => true,
        (Some(a), Some(b)) if b.fract() == 0.0 && b.abs() <= 9_007_199_254_740_992.0 => a == b,
        (Some(a), Some(b)) if b.abs() < f64::MIN_POSITIVE => a == 0.0 || a == b,
        (Some(a), Some(b)) => ((a - b) / b).abs() <= 1e-14,
        _ => false,
    }
}

/// A secret file as the server reads one (`--legacy-hmac-secret-file`, `--admin-secret-file`): `content` and a
/// trailing newline, in a fresh directory under the temporary directory.
pub fn secret_file(name: &str, content: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wtm-fuzz-{}-{}", std::process::id(), auth_server::tokens::random_id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, format!("{content}\n")).expect("write the secret file");
    p
}
