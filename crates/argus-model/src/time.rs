//! Timestamps as the Prometheus API takes and writes them.

use crate::{Error, Result};

/// The smallest and largest timestamps Prometheus accepts in API parameters (its
/// `minTime`/`maxTime`, chosen so that they survive a round trip through Go's time package).
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974;
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974;

/// Parses an API time parameter: Unix seconds (float) or RFC 3339.
pub fn parse_api_time(s: &str) -> Result<i64> {
    let bad = || Error::InvalidTimestamp(s.to_string());
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() {
            return Err(bad());
        }
        let millis = (secs * 1000.0).round();
        if millis < MIN_TIME_MS as f64 || millis > MAX_TIME_MS as f64 {
            return Err(bad());
        }
        return Ok(millis as i64);
    }
    parse_rfc3339(s).ok_or_else(bad)
}

/// RFC 3339 with optional fractional seconds and a `Z` or `±hh:mm` offset, to milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut pos = 19;
    let mut millis = 0i64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == start {
            return None;
        }
        let frac = &s[start..pos.min(start + 3)];
        millis = format!("{frac:0<3}").parse().ok()?;
    }
    let offset_secs = match b.get(pos)? {
        b'Z' | b'z' if pos + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if pos + 6 == b.len() && b[pos + 3] == b':' => {
            let hours = num(pos + 1, pos + 3)?;
            let minutes = num(pos + 4, pos + 6)?;
            let total = hours * 3600 + minutes * 60;
            if *sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1000 + millis)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date from days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Go's `time.RFC3339Nano` in UTC for a millisecond timestamp (trailing zeros trimmed).
pub fn format_rfc3339_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac != 0 {
        let f = format!(".{frac:03}");
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn api_times() {
        assert_eq!(parse_api_time("1.5").unwrap(), 1500);
        assert_eq!(
            parse_api_time("2015-07-01T20:10:51.781Z").unwrap(),
            1435781451781
        );
        assert_eq!(
            parse_api_time("2015-07-01T22:10:51+02:00").unwrap(),
            1435781451000
        );
        assert!(parse_api_time("yesterday").is_err());
        assert!(parse_api_time("NaN").is_err());
        assert!(parse_api_time("2015-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn rfc3339_trims_zeros() {
        assert_eq!(
            format_rfc3339_millis(1435781451780),
            "2015-07-01T20:10:51.78Z"
        );
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00Z");
    }

    proptest! {
        #[test]
        fn rfc3339_round_trip(ms in -62_135_596_800_000i64..253_402_300_799_000i64) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339_millis(ms)), Some(ms));
        }
    }
}
