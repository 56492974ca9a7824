//! Go-compatible formatting of floats and strings.
//!
//! Prometheus writes floats with Go's `strconv.FormatFloat`; Rust's `Display` never matches
//! it (`1e21` vs `1e+21`, `1e-7` vs `1e-07`). Every place that writes a float for a client goes
//! through this module.

/// Shortest decimal digits of `|v|` and the decimal point position: `|v| = 0.DIGITS × 10^dp`.
/// Only for finite, non-zero values.
fn shortest_digits(v: f64) -> (String, i32) {
    let formatted = format!("{:e}", v.abs());
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits, exponent + 1)
}

fn special(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

fn sign(v: f64) -> &'static str {
    if v.is_sign_negative() { "-" } else { "" }
}

/// Go's `%f` (`strconv.FormatFloat(v, 'f', 6, 64)`): six decimals, `+Inf`, `NaN`.
pub fn format_f6(v: f64) -> String {
    match special(v) {
        Some(s) => s.to_string(),
        None => format!("{v:.6}"),
    }
}

/// `strconv.FormatFloat(v, 'f', -1, 64)`.
pub fn format_f(v: f64) -> String {
    if let Some(s) = special(v) {
        return s.to_string();
    }
    if v == 0.0 {
        return format!("{}0", sign(v));
    }
    let (digits, dp) = shortest_digits(v);
    let mut out = String::from(sign(v));
    if dp <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-dp) as usize));
        out.push_str(&digits);
    } else if dp as usize >= digits.len() {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', dp as usize - digits.len()));
    } else {
        out.push_str(&digits[..dp as usize]);
        out.push('.');
        out.push_str(&digits[dp as usize..]);
    }
    out
}

/// `strconv.FormatFloat(v, 'e', -1, 64)`.
pub fn format_e(v: f64) -> String {
    if let Some(s) = special(v) {
        return s.to_string();
    }
    if v == 0.0 {
        return format!("{}0e+00", sign(v));
    }
    let (digits, dp) = shortest_digits(v);
    let mut out = String::from(sign(v));
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    let exp = dp - 1;
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let abs = exp.unsigned_abs();
    if abs < 10 {
        out.push('0');
    }
    out.push_str(&abs.to_string());
    out
}

/// `strconv.FormatFloat(v, 'g', -1, 64)`: the exposition format's float spelling.
pub fn format_g(v: f64) -> String {
    if let Some(s) = special(v) {
        return s.to_string();
    }
    if v == 0.0 {
        return format!("{}0", sign(v));
    }
    let (_, dp) = shortest_digits(v);
    let exp = dp - 1;
    // Go uses precision 6 for this decision when formatting the shortest representation.
    if !(-4..6).contains(&exp) {
        format_e(v)
    } else {
        format_f(v)
    }
}

/// How the Prometheus HTTP API writes a sample value (`jsonutil.MarshalFloat`): `'f'` format,
/// switching to `'e'` below 1e-6 and from 1e21 up; `+Inf`, `-Inf`, `NaN` spelled out.
pub fn api_float(v: f64) -> String {
    let abs = v.abs();
    if abs != 0.0 && abs.is_finite() && !(1e-6..1e21).contains(&abs) {
        format_e(v)
    } else {
        format_f(v)
    }
}

/// Where bytes that are not valid UTF-8 are kept in a `String` (Go strings may hold any
/// bytes, e.g. from a `"\xc5"` escape): byte `b` becomes the private-use character
/// `U+10FF00 + b`, which [`quote`] prints back as `\xNN`.
const RAW_BYTE_BASE: u32 = 0x10_FF00;

/// Bytes as a Go string would hold them: valid UTF-8 as is, each invalid byte kept as its
/// stand-in character (see [`RAW_BYTE_BASE`]).
pub fn string_from_bytes(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let bytes = e.into_bytes();
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                for &b in chunk.invalid() {
                    out.extend(char::from_u32(RAW_BYTE_BASE + u32::from(b)));
                }
            }
            out
        }
    }
}

/// Go's `strconv.Quote`: double-quoted, with Go escapes for control and non-printable runes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `strconv.QuoteRune` (`%q` of a rune): `'x'`, with the same escapes as [`quote`].
pub fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'');
    out.push('\'');
    out
}

/// `c` as Go writes it inside a literal delimited by `delim`.
fn push_escaped(out: &mut String, c: char, delim: char) {
    match c {
        c if c == delim => {
            out.push('\\');
            out.push(c);
        }
        '\\' => out.push_str("\\\\"),
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        c if (RAW_BYTE_BASE..=RAW_BYTE_BASE + 0xff).contains(&(c as u32)) => {
            out.push_str(&format!("\\x{:02x}", c as u32 - RAW_BYTE_BASE));
        }
        c if c.is_control() => {
            if (c as u32) < 0x10000 {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                out.push_str(&format!("\\U{:08x}", c as u32));
            }
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bytes_that_are_not_utf8_quote_as_go_does() {
        assert_eq!(string_from_bytes(b"a\xc3\xa9z".to_vec()), "aéz");
        let s = string_from_bytes(b"a\xc5z".to_vec());
        assert_eq!(quote(&s), r#""a\xc5z""#);
        assert_eq!(quote("a\u{7f}\n"), r#""a\x7f\n""#);
    }

    #[test]
    fn go_float_table() {
        // (value, 'f', 'e', 'g') as Go 1.20 prints them.
        let table: &[(f64, &str, &str, &str)] = &[
            (0.0, "0", "0e+00", "0"),
            (1.0, "1", "1e+00", "1"),
            (-1.5, "-1.5", "-1.5e+00", "-1.5"),
            (1e-7, "0.0000001", "1e-07", "1e-07"),
            (1e6, "1000000", "1e+06", "1e+06"),
            (123456.0, "123456", "1.23456e+05", "123456"),
            (1e21, "1000000000000000000000", "1e+21", "1e+21"),
            (0.0001, "0.0001", "1e-04", "0.0001"),
            (0.00001, "0.00001", "1e-05", "1e-05"),
            (
                1.7976931348623157e308,
                "",
                "1.7976931348623157e+308",
                "1.7976931348623157e+308",
            ),
        ];
        for &(v, f, e, g) in table {
            if !f.is_empty() {
                assert_eq!(format_f(v), f, "f of {v}");
            }
            assert_eq!(format_e(v), e, "e of {v}");
            assert_eq!(format_g(v), g, "g of {v}");
        }
    }

    #[test]
    fn api_float_matches_prometheus_json() {
        assert_eq!(api_float(1e-7), "1e-07");
        assert_eq!(api_float(1e-6), "0.000001");
        assert_eq!(api_float(1e21), "1e+21");
        assert_eq!(api_float(123.25), "123.25");
        assert_eq!(api_float(f64::INFINITY), "+Inf");
        assert_eq!(api_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(api_float(f64::NAN), "NaN");
        assert_eq!(api_float(0.0), "0");
    }

    #[test]
    fn quote_like_go() {
        assert_eq!(quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(quote("\x01é"), "\"\\x01é\"");
        assert_eq!(quote("'"), r#""'""#);
        // strconv.QuoteRune: the single quote is the one escaped.
        assert_eq!(quote_rune('\''), r"'\''");
        assert_eq!(quote_rune('"'), r#"'"'"#);
        assert_eq!(quote_rune('\\'), r"'\\'");
        assert_eq!(quote_rune('\n'), r"'\n'");
        assert_eq!(quote_rune('\u{FFFD}'), "'\u{FFFD}'");
        assert_eq!(quote_rune('}'), "'}'");
    }

    #[test]
    fn percent_f_like_go() {
        assert_eq!(format_f6(f64::INFINITY), "+Inf");
        assert_eq!(format_f6(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_f6(f64::NAN), "NaN");
        assert_eq!(
            format_f6(9223372036854775808.0),
            "9223372036854775808.000000"
        );
        assert_eq!(format_f6(-1.5), "-1.500000");
    }

    proptest! {
        #[test]
        fn formats_round_trip(v in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL) {
            prop_assert_eq!(format_f(v).parse::<f64>().unwrap().to_bits(), v.to_bits());
            prop_assert_eq!(format_e(v).parse::<f64>().unwrap().to_bits(), v.to_bits());
            prop_assert_eq!(api_float(v).parse::<f64>().unwrap().to_bits(), v.to_bits());
        }
    }
}
