//! `Retry-After` parsing (RFC 9110 §10.2.3): delay-seconds or an HTTP-date (C25).

/// The longest `Retry-After` honoured, in milliseconds (5 minutes).
pub const MAX_RETRY_AFTER_MS: u64 = 5 * 60 * 1000;

/// Parses a `Retry-After` value into a delay from `now_ms`, capped at [`MAX_RETRY_AFTER_MS`].
/// Garbage (`1e9`, `-1`, `soon`) gives `None`, so the default backoff applies; a date in the past gives 0.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    // Only HTTP's optional whitespace (RFC 9110 §5.6.3: space and tab) surrounds a field value.
    let v = value.trim_matches([' ', '\t']);
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // Saturate long digit strings instead of overflowing.
        let mut secs: u64 = 0;
        for b in v.bytes() {
            secs = secs.saturating_mul(10).saturating_add(u64::from(b - b'0'));
        }
        return Some(secs.saturating_mul(1000).min(MAX_RETRY_AFTER_MS));
    }
    let at = parse_http_date(v)?;
    Some(at.saturating_sub(now_ms).min(MAX_RETRY_AFTER_MS))
}

/// Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime) into ms since the epoch.
pub fn parse_http_date(v: &str) -> Option<u64> {
    // At most six words in any of the three forms: more is no HTTP-date (no Vec needed).
    let mut words = [""; 6];
    let mut n = 0;
    for w in v.split_ascii_whitespace() {
        *words.get_mut(n)? = w;
        n += 1;
    }
    match words.get(..n)? {
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        [wd, day, mon, year, time, "GMT"]
            if wd.strip_suffix(',').is_some_and(|d| DAYS.contains(&d))
                && day.len() == 2
                && year.len() == 4 =>
        {
            build(num(year)?, month(mon)?, num(day)?, time)
        }
        // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        [wd, date, time, "GMT"] if wd.strip_suffix(',').is_some_and(|d| LONG_DAYS.contains(&d)) => {
            let mut it = date.split('-');
            let (d, m, y) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() || d.len() != 2 || y.len() != 2 {
                return None;
            }
            let y = num(y)?;
            // RFC 9110: a two-digit year more than 50 years in the future is in the past century.
            let year = if y < 70 { 2000 + y } else { 1900 + y };
            build(year, month(m)?, num(d)?, time)
        }
        // asctime: Sun Nov  6 08:49:37 1994
        [wd, mon, day, time, year] if DAYS.contains(wd) && day.len() <= 2 && year.len() == 4 => {
            build(num(year)?, month(mon)?, num(day)?, time)
        }
        _ => None,
    }
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn num(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS.iter().position(|m| *m == s).map(|i| i as u64 + 1)
}

fn build(year: u64, month: u64, day: u64, time: &str) -> Option<u64> {
    let mut t = time.split(':');
    // Each of hour, minute and second is exactly two digits (RFC 9110 §5.6.7).
    let mut two = || t.next().filter(|f| f.len() == 2).and_then(num);
    let (h, m, s) = (two()?, two()?, two()?);
    if t.next().is_some() || year < 1970 || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    Some(((days * 24 + h) * 60 + m) * 60_000 + s * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm, years ≥ 1970).
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}
