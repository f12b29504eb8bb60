//! Differential tests: the core's hand-written strict decoders against the crates the ecosystem trusts.
//!
//! The client reads token payloads with its own small JSON reader and base64url decoder (to keep the wasm
//! small, see the README's figures). These tests hold them to serde_json and base64 on many generated and
//! mutated inputs: whatever the references refuse, the core refuses; what they accept as a claims object
//! without repeated keys, the core accepts with the same numbers. The generator is a seeded PRNG, so a failure
//! prints a reproducible input.
#![cfg(not(target_arch = "wasm32"))]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use wasm_token_manager::session::{b64url_decode, decode_unverified};

/// xorshift64*: deterministic, dependency-free randomness for input generation.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &[
    "exp",
    "iat",
    "nbf",
    "sub",
    "jti",
    "e\\u0078p",
    "\\u00e9",
    "a",
    "",
];
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "1700000000",
    "1700000000.5",
    "1.7e9",
    "1.7E+9",
    "17e8",
    "9007199254740993",
    "1e-400",
    "0.1",
    "123456789012345678901234567890",
    "2.2250738585072011e-308",
    "4.9406564584124654e-324",
    "1.7976931348623157e308",
    "1.79769313486231580e308",
    "1700000000.123456789123456789",
    "-1700000000",
    "3.0e2",
    "5e-1",
    "1e22",
    "1e23",
    "12345678901234567890e-10",
];
const BAD_NUMBERS: &[&str] = &[
    "01", "1.", ".5", "+1", "1e", "-", "0x10", "1_000", "Infinity", "NaN", "1e309", "-1e309",
];
const STRINGS: &[&str] = &[
    "\"\"",
    "\"abc\"",
    "\"\\u0041\"",
    "\"\\ud83d\\ude00\"",
    "\"\\n\\t\\\"\"",
    "\"é\"",
    "\"\\/\"",
];
const BAD_STRINGS: &[&str] = &[
    "\"\\ud800\"",
    "\"\\udc00x\"",
    "\"\\x41\"",
    "\"\t\"",
    "\"unterminated",
];
const WHITESPACE: &[&str] = &["", "", " ", "\n", "\t", "\r\n"];
const BAD_WHITESPACE: &[&str] = &["\u{a0}", "\u{feff}", "\u{b}"];

/// Mostly well-formed pieces, with a small chance of an ill-formed one.
fn piece<'a>(rng: &mut Rng, good: &'a [&'a str], bad: &'a [&'a str]) -> &'a str {
    if rng.below(25) == 0 {
        rng.pick::<&str>(bad)
    } else {
        rng.pick::<&str>(good)
    }
}

fn value(rng: &mut Rng, depth: usize, out: &mut String) {
    match rng.below(if depth > 3 { 5 } else { 8 }) {
        0 | 1 | 4 => out.push_str(piece(rng, NUMBERS, BAD_NUMBERS)),
        2 => out.push_str(piece(rng, STRINGS, BAD_STRINGS)),
        3 => out.push_str(piece(
            rng,
            &["true", "false", "null"],
            &["tru", "nul", "True"],
        )),
        5 => {
            out.push('[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                value(rng, depth + 1, out);
            }
            out.push(']');
        }
        _ => object(rng, depth + 1, out),
    }
}

fn object(rng: &mut Rng, depth: usize, out: &mut String) {
    out.push('{');
    for i in 0..rng.below(5) {
        if i > 0 {
            out.push(',');
        }
        out.push_str(piece(rng, WHITESPACE, BAD_WHITESPACE));
        out.push('"');
        out.push_str(rng.pick::<&str>(KEYS));
        out.push('"');
        out.push_str(piece(rng, WHITESPACE, BAD_WHITESPACE));
        out.push(':');
        out.push_str(piece(rng, WHITESPACE, BAD_WHITESPACE));
        value(rng, depth, out);
    }
    out.push_str(piece(rng, WHITESPACE, BAD_WHITESPACE));
    out.push('}');
}

/// A claims text: mostly well-formed objects, some mutated by a byte deletion, insertion or replacement.
fn claims_text(rng: &mut Rng) -> Vec<u8> {
    let mut text = String::new();
    text.push_str(piece(rng, WHITESPACE, BAD_WHITESPACE));
    if rng.below(10) == 0 {
        value(rng, 0, &mut text);
    } else {
        object(rng, 0, &mut text);
    }
    text.push_str(piece(rng, WHITESPACE, BAD_WHITESPACE));
    let mut bytes = text.into_bytes();
    if rng.below(5) == 0 && !bytes.is_empty() {
        let at = rng.below(bytes.len());
        let byte = *rng.pick(b"{}[]\",:0e.-\\ \x00\xc0\xaf\xff");
        match rng.below(3) {
            0 => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, byte),
            _ => bytes[at] = byte,
        }
    }
    bytes
}

/// The top-level keys of a JSON object as serde_json reads them (in order, repeats kept), or None when
/// serde_json refuses the text or it is not an object.
fn reference_keys(bytes: &[u8]) -> Option<Vec<String>> {
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

fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

const HEADER: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9"; // {"alg":"ES256","typ":"at+jwt"}

#[test]
fn claims_decoding_agrees_with_serde_json() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut refused) = (0, 0);
    let mut mismatches = Vec::new();
    for case in 0..20_000 {
        let bytes = claims_text(&mut rng);
        let token = format!("{HEADER}.{}.c2ln", URL_SAFE_NO_PAD.encode(&bytes));
        let ours = decode_unverified(&token);
        let shown = String::from_utf8_lossy(&bytes).into_owned();
        let reference = reference_keys(&bytes).and_then(|keys| {
            let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            let mut unique = keys.clone();
            unique.sort();
            unique.dedup();
            // The core also refuses repeated claims (C14) and nesting deeper than its limit.
            (unique.len() == keys.len() && depth(&value) <= 64).then_some(value)
        });
        match (reference, ours) {
            (None, Ok(_)) => mismatches.push(format!(
                "case {case}: {shown:?} is not a JSON object without repeated keys (serde_json), but the core accepted it"
            )),
            (None, _) => refused += 1,
            (Some(_), Err(e)) => {
                mismatches.push(format!("case {case}: serde_json accepts {shown:?} but the core refused it: {e:?}"))
            }
            (Some(value), Ok(claims)) => {
                accepted += 1;
                for (name, ours) in [("exp", claims.exp), ("iat", claims.iat), ("nbf", claims.nbf)] {
                    let theirs = value.get(name).and_then(serde_json::Value::as_f64);
                    // The contract of the reader's decimal conversion (it is not correctly rounded, to keep
                    // core's float parser and its tables out of the wasm): integers up to 2^53 are exact; any
                    // other value is within a relative 1e-14 of the correctly rounded one (1e-4 s at 1e10 s,
                    // far below the millisecond the schedule uses); subnormals may read as 0.
                    let close = match (ours, theirs) {
                        (Some(a), Some(b)) if b.fract() == 0.0 && b.abs() <= 9_007_199_254_740_992.0 => a == b,
                        (Some(a), Some(b)) if b.abs() < f64::MIN_POSITIVE => a == 0.0 || a == b,
                        (Some(a), Some(b)) => ((a - b) / b).abs() <= 1e-14,
                        _ => false,
                    };
                    if ours != theirs && !close {
                        mismatches.push(format!("case {case}: {name} of {shown:?}: core {ours:?}, serde_json {theirs:?}"));
                    }
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, the first:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(15)].join("\n")
    );
    // The generator must exercise both sides, or the comparison proves nothing.
    assert!(
        accepted > 5_000 && refused > 3_000,
        "accepted {accepted}, refused {refused}"
    );
}

#[test]
fn base64url_decoding_agrees_with_the_base64_crate() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut decoded, mut refused) = (0, 0);
    for case in 0..50_000 {
        let len = rng.below(12);
        let mut s: Vec<u8> = (0..len).map(|_| *rng.pick(alphabet)).collect();
        if rng.below(4) == 0 && !s.is_empty() {
            let at = rng.below(s.len());
            s[at] = *rng.pick(b"+/= \n.\x00");
        }
        let s = String::from_utf8(s).expect("ASCII");
        let ours = b64url_decode(&s);
        let theirs = URL_SAFE_NO_PAD.decode(&s).ok();
        assert_eq!(ours, theirs, "case {case}: {s:?}");
        if theirs.is_some() {
            decoded += 1
        } else {
            refused += 1
        }
    }
    assert!(
        decoded > 5_000 && refused > 5_000,
        "decoded {decoded}, refused {refused}"
    );
}
