//! Prometheus durations: `1y2w3d4h5m6s7ms` (units descending, each at most once, `y` = 365d),
//! printed back the way Prometheus prints them (`1h30m`, `5m`, `0s`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::{Error, Result};

/// Duration units, largest first, with their size in milliseconds.
pub const UNITS: [(&str, i64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// A non-negative duration with millisecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    millis: i64,
}

impl Duration {
    pub const fn from_millis(millis: i64) -> Self {
        Self { millis }
    }

    pub const fn from_secs(secs: i64) -> Self {
        Self {
            millis: secs * 1000,
        }
    }

    pub const fn as_millis(self) -> i64 {
        self.millis
    }

    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis.max(0) as u64)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.millis as f64 / 1000.0
    }

    pub fn is_zero(self) -> bool {
        self.millis == 0
    }

    /// Parses Prometheus duration syntax (units from years down to milliseconds, each at most
    /// once and in that order), refusing as Prometheus's `model.ParseDuration` does:
    /// `not a valid duration string: "5m1h"`, `unknown unit "hs" in duration "5y1hs"`,
    /// `duration out of range`.
    pub fn parse(s: &str) -> Result<Self> {
        let fail = Error::InvalidDuration;
        let invalid = || fail(format!("not a valid duration string: {s:?}"));
        match s {
            "0" => return Ok(Self::default()),
            "" => return Err(fail("empty duration string".into())),
            _ => {}
        }
        let bytes = s.as_bytes();
        let mut pos = 0;
        let mut next_unit = 0;
        let mut total: i64 = 0;
        while pos < bytes.len() {
            let start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            if pos == start {
                return Err(invalid());
            }
            let number: i64 = s[start..pos].parse().map_err(|_| invalid())?;
            let unit_start = pos;
            while pos < bytes.len() && !bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            let unit = &s[unit_start..pos];
            if unit.is_empty() {
                return Err(invalid());
            }
            let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
                return Err(fail(format!("unknown unit {unit:?} in duration {s:?}")));
            };
            if index < next_unit {
                return Err(invalid());
            }
            next_unit = index + 1;
            total = number
                .checked_mul(UNITS[index].1)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| fail("duration out of range".into()))?;
        }
        Ok(Self { millis: total })
    }
}

impl FromStr for Duration {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.millis;
        if rest == 0 {
            return f.write_str("0s");
        }
        if rest < 0 {
            f.write_str("-")?;
            rest = -rest;
        }
        for (name, size) in UNITS {
            let count = rest / size;
            if count > 0 {
                write!(f, "{count}{name}")?;
                rest -= count * size;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Duration::parse(&s)
            .map_err(|_| serde::de::Error::custom(format!("not a valid duration string: {s:?}")))
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_print() {
        let table = [
            ("0", 0, "0s"),
            ("0s", 0, "0s"),
            ("5m", 300_000, "5m"),
            ("90m", 5_400_000, "1h30m"),
            ("1y", 31_536_000_000, "1y"),
            ("2w3d", 1_468_800_000, "2w3d"),
            ("1h30m15s100ms", 5_415_100, "1h30m15s100ms"),
            ("15d", 1_296_000_000, "2w1d"),
        ];
        for (input, millis, printed) in table {
            let d = Duration::parse(input).unwrap();
            assert_eq!(d.as_millis(), millis, "{input}");
            assert_eq!(d.to_string(), printed, "{input}");
        }
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "",
            "5",
            "5x",
            "1s1m",
            "1m1m",
            "-1s",
            "1.5s",
            "s",
            "1ms1s",
            "99999999999999999999y",
        ] {
            assert!(Duration::parse(bad).is_err(), "{bad:?} accepted");
        }
        // In Prometheus's words (`model.ParseDuration`).
        let message = |s: &str| Duration::parse(s).unwrap_err().to_string();
        assert_eq!(message(""), "empty duration string");
        assert_eq!(message("5"), r#"not a valid duration string: "5""#);
        assert_eq!(message("1s1m"), r#"not a valid duration string: "1s1m""#);
        assert_eq!(message("1m1m"), r#"not a valid duration string: "1m1m""#);
        assert_eq!(message("5y1hs"), r#"unknown unit "hs" in duration "5y1hs""#);
        assert_eq!(message("99999999999y"), "duration out of range");
    }

    proptest! {
        #[test]
        fn round_trip(millis in 0i64..(1i64 << 50)) {
            let d = Duration::from_millis(millis);
            prop_assert_eq!(Duration::parse(&d.to_string()).unwrap(), d);
        }
    }
}
