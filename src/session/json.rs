//! A small strict JSON reader (RFC 8259) for the few flat objects the core reads: token payloads, refresh
//! answers and cross-tab messages. Written by hand instead of serde_json to keep the wasm small (float
//! formatting and error messages were most of its weight); strict where serde_json was: UTF-8 input,
//! no trailing data, no lone surrogates, no control characters in strings, finite numbers only, a nesting
//! limit. It also refuses duplicate keys at the top level (C14).

/// The deepest nesting accepted.
const MAX_DEPTH: usize = 64;

/// A top-level member's value, as far as the core cares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    /// A string.
    Str(String),
    /// A finite number; `integer` when written without fraction or exponent.
    Num { value: f64, integer: bool },
    /// `null`.
    Null,
    /// `true`, `false`, an array or an object (validated, then discarded).
    Other,
}

impl Scalar {
    pub(crate) fn number(&self) -> Option<f64> {
        match self {
            Scalar::Num { value, .. } => Some(*value),
            _ => None,
        }
    }

    /// A non-negative integer written as such, up to `max`.
    pub(crate) fn integer(&self, max: u64) -> Option<u64> {
        match self {
            Scalar::Num {
                value,
                integer: true,
            } if *value >= 0.0 && *value <= max as f64 => Some(*value as u64),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The members of a JSON object, in order. Anything else, or a repeated key, is an error.
#[derive(Debug, Default)]
pub(crate) struct Object(Vec<(String, Scalar)>);

impl Object {
    pub(crate) fn get(&self, key: &str) -> Option<&Scalar> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Parses `text` as one JSON object.
pub(crate) fn parse_object(text: &str) -> Result<Object, ()> {
    let mut p = Parser {
        b: text.as_bytes(),
        i: 0,
    };
    p.ws();
    let obj = p.object_top()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(());
    }
    Ok(obj)
}

/// Reads `text` as exactly one JSON number (RFC 8259 §6), e.g. a number a server sent as a string.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let mut p = Parser {
        b: text.as_bytes(),
        i: 0,
    };
    match p.number() {
        Ok(Scalar::Num { value, .. }) if p.i == p.b.len() => Some(value),
        _ => None,
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Result<u8, ()> {
        let c = self.peek().ok_or(())?;
        self.i += 1;
        Ok(c)
    }

    fn eat(&mut self, c: u8) -> Result<(), ()> {
        if self.next()? == c {
            Ok(())
        } else {
            Err(())
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn object_top(&mut self) -> Result<Object, ()> {
        self.eat(b'{')?;
        let mut members: Vec<(String, Scalar)> = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Object(members));
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value = self.value(1)?;
            if members.iter().any(|(k, _)| *k == key) {
                return Err(());
            }
            members.push((key, value));
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(Object(members)),
                _ => return Err(()),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Scalar, ()> {
        if depth > MAX_DEPTH {
            return Err(());
        }
        match self.peek().ok_or(())? {
            b'"' => Ok(Scalar::Str(self.string()?)),
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(Scalar::Other);
                }
                loop {
                    self.ws();
                    self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        b'}' => return Ok(Scalar::Other),
                        _ => return Err(()),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Scalar::Other);
                }
                loop {
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        b']' => return Ok(Scalar::Other),
                        _ => return Err(()),
                    }
                }
            }
            b't' => self.literal(b"true", Scalar::Other),
            b'f' => self.literal(b"false", Scalar::Other),
            b'n' => self.literal(b"null", Scalar::Null),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &[u8], value: Scalar) -> Result<Scalar, ()> {
        let end = self.i.checked_add(word.len()).ok_or(())?;
        if self.b.get(self.i..end) == Some(word) {
            self.i = end;
            Ok(value)
        } else {
            Err(())
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Scalar, ()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(()),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            integer = false;
            if self.digits() == 0 {
                return Err(());
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            integer = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(());
            }
        }
        let text = self.b.get(start..self.i).ok_or(())?;
        let value = decimal_to_f64(text);
        if !value.is_finite() {
            return Err(());
        }
        Ok(Scalar::Num { value, integer })
    }

    fn hex4(&mut self) -> Result<u32, ()> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.next()? {
                c @ b'0'..=b'9' => c - b'0',
                c @ b'a'..=b'f' => c - b'a' + 10,
                c @ b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(()),
            };
            v = v * 16 + u32::from(d);
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, ()> {
        self.eat(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' => {
                    let c = match self.next()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                self.eat(b'\\')?;
                                self.eat(b'u')?;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(());
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(());
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or(())?
                        }
                        _ => return Err(()),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                c if c < 0x20 => return Err(()),
                c => out.push(c),
            }
        }
        // The input was a &str and escapes produce whole characters, so this cannot fail; stay total anyway.
        String::from_utf8(out).map_err(|_| ())
    }
}

/// Converts a number already checked against the JSON grammar. Exact for up to 19 significant digits and
/// exponents within ±22 (every timing claim), close otherwise; `core`'s correctly rounded parser would add
/// its power tables to the wasm for no benefit here.
fn decimal_to_f64(text: &[u8]) -> f64 {
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0u32;
    let mut exp10: i64 = 0;
    let mut in_fraction = false;
    let mut iter = text.iter();
    for &c in iter.by_ref() {
        match c {
            b'0'..=b'9' => {
                if mantissa == 0 && c == b'0' && !in_fraction {
                    continue;
                }
                if digits < 19 {
                    mantissa = mantissa * 10 + u64::from(c - b'0');
                    if mantissa > 0 {
                        digits += 1;
                    }
                    if in_fraction {
                        exp10 -= 1;
                    }
                } else if !in_fraction {
                    exp10 += 1;
                }
            }
            b'.' => in_fraction = true,
            _ => break,
        }
    }
    // What follows `e`/`E`: an optional sign and digits.
    let mut exp_negative = false;
    let mut exp: i64 = 0;
    for &c in iter {
        match c {
            b'-' => exp_negative = true,
            b'+' => {}
            d => exp = (exp * 10 + i64::from(d.wrapping_sub(b'0'))).min(100_000),
        }
    }
    exp10 += if exp_negative { -exp } else { exp };
    let m = mantissa as f64;
    let value = if mantissa == 0 {
        0.0
    } else if exp10 > 400 {
        f64::INFINITY
    } else if exp10 < -400 {
        0.0
    } else if (0..=22).contains(&exp10) {
        m * 10f64.powi(exp10 as i32)
    } else if (-22..0).contains(&exp10) {
        m / 10f64.powi((-exp10) as i32)
    } else {
        m * 10f64.powi(exp10 as i32)
    };
    // The scaling above is not correctly rounded, so a decimal just under f64::MAX can overflow; JSON readers
    // that round correctly (serde_json) accept every decimal up to the midpoint between f64::MAX and 2^1024.
    // Compare the first 19 significant digits with that midpoint, 1.797693134862315807…e308.
    let value = if value.is_infinite() && i64::from(digits) + exp10 == 309 {
        let m19 = (digits..19).fold(mantissa, |m, _| m.saturating_mul(10));
        if m19 <= 1_797_693_134_862_315_807 {
            f64::MAX
        } else {
            value
        }
    } else {
        value
    };
    if negative {
        -value
    } else {
        value
    }
}
