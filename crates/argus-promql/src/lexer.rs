//! PromQL tokens. Keywords are case-insensitive; a number directly followed by a duration
//! unit is a duration (`5m`, `1h30m`); `#` starts a comment to the end of the line.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Number(f64),
    /// Milliseconds.
    Duration(i64),
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    At,
    // Matchers and comparison.
    Assign,
    EqlRegex,
    NeqRegex,
    Eql,
    Neq,
    Lss,
    Lte,
    Gtr,
    Gte,
    /// `</`: keep histogram observations below the right-hand side.
    TrimUpper,
    /// `>/`: keep histogram observations above the right-hand side.
    TrimLower,
    // Arithmetic.
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eof,
}

impl fmt::Display for Tok {
    /// How Prometheus names a token in "unexpected …" messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "identifier {s:?}"),
            Tok::Number(_) => f.write_str("number"),
            Tok::Duration(_) => f.write_str("duration"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::LParen => f.write_str("\"(\""),
            Tok::RParen => f.write_str("\")\""),
            Tok::LBrace => f.write_str("\"{\""),
            Tok::RBrace => f.write_str("\"}\""),
            Tok::LBracket => f.write_str("\"[\""),
            Tok::RBracket => f.write_str("\"]\""),
            Tok::Comma => f.write_str("\",\""),
            Tok::Colon => f.write_str("\":\""),
            Tok::At => f.write_str("\"@\""),
            Tok::Assign => f.write_str("\"=\""),
            Tok::EqlRegex => f.write_str("\"=~\""),
            Tok::NeqRegex => f.write_str("\"!~\""),
            Tok::Eql => f.write_str("\"==\""),
            Tok::Neq => f.write_str("\"!=\""),
            Tok::Lss => f.write_str("\"<\""),
            Tok::Lte => f.write_str("\"<=\""),
            Tok::Gtr => f.write_str("\">\""),
            Tok::Gte => f.write_str("\">=\""),
            Tok::TrimUpper => f.write_str("\"</\""),
            Tok::TrimLower => f.write_str("\">/\""),
            Tok::Add => f.write_str("\"+\""),
            Tok::Sub => f.write_str("\"-\""),
            Tok::Mul => f.write_str("\"*\""),
            Tok::Div => f.write_str("\"/\""),
            Tok::Mod => f.write_str("\"%\""),
            Tok::Pow => f.write_str("\"^\""),
            Tok::Eof => f.write_str("end of input"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    /// Byte offsets into the query.
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub pos: usize,
    pub message: String,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

pub fn lex(input: &str) -> Result<Vec<Token>, LexError> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // Inside `[...]` a ':' separates subquery range and step; elsewhere it may start a
    // metric name (`:recording:rule`).
    let mut brackets = 0usize;
    while i < bytes.len() {
        let c = input[i..].chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c == '#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let two = input.get(i..i + 2).unwrap_or("");
        let (tok, len) = match two {
            "=~" => (Tok::EqlRegex, 2),
            "!~" => (Tok::NeqRegex, 2),
            "==" => (Tok::Eql, 2),
            "!=" => (Tok::Neq, 2),
            "<=" => (Tok::Lte, 2),
            ">=" => (Tok::Gte, 2),
            "</" => (Tok::TrimUpper, 2),
            ">/" => (Tok::TrimLower, 2),
            _ => match c {
                '(' => (Tok::LParen, 1),
                ')' => (Tok::RParen, 1),
                '{' => (Tok::LBrace, 1),
                '}' => (Tok::RBrace, 1),
                '[' => (Tok::LBracket, 1),
                ']' => (Tok::RBracket, 1),
                ',' => (Tok::Comma, 1),
                '@' => (Tok::At, 1),
                '=' => (Tok::Assign, 1),
                '<' => (Tok::Lss, 1),
                '>' => (Tok::Gtr, 1),
                '+' => (Tok::Add, 1),
                '-' => (Tok::Sub, 1),
                '*' => (Tok::Mul, 1),
                '/' => (Tok::Div, 1),
                '%' => (Tok::Mod, 1),
                '^' => (Tok::Pow, 1),
                ':' if brackets > 0
                    || !input[i + 1..].starts_with(|ch: char| is_ident_char(ch) && ch != ':') =>
                {
                    (Tok::Colon, 1)
                }
                '"' | '\'' | '`' => {
                    let (s, len) = lex_string(input, i)?;
                    (Tok::Str(s), len)
                }
                c if c.is_ascii_digit()
                    || (c == '.' && input[i + 1..].starts_with(|d: char| d.is_ascii_digit())) =>
                {
                    lex_number(input, i)?
                }
                c if is_ident_start(c) => {
                    let mut j = i;
                    while j < bytes.len() && is_ident_char(bytes[j] as char) {
                        j += 1;
                    }
                    let word = &input[i..j];
                    let lower = word.to_ascii_lowercase();
                    // Inf and NaN are number literals in PromQL, in any case.
                    if lower == "inf" {
                        (Tok::Number(f64::INFINITY), j - i)
                    } else if lower == "nan" {
                        (Tok::Number(f64::NAN), j - i)
                    } else {
                        (Tok::Ident(word.to_string()), j - i)
                    }
                }
                other => {
                    return Err(LexError {
                        pos: i,
                        message: format!("unexpected character: {other:?}"),
                    });
                }
            },
        };
        i += len;
        match tok {
            Tok::LBracket => brackets += 1,
            Tok::RBracket => brackets = brackets.saturating_sub(1),
            _ => {}
        }
        out.push(Token { tok, start, end: i });
    }
    out.push(Token {
        tok: Tok::Eof,
        start: input.len(),
        end: input.len(),
    });
    Ok(out)
}

/// A number, a hexadecimal number, or a duration (`1h30m`); returns token and byte length.
fn lex_number(input: &str, start: usize) -> Result<(Tok, usize), LexError> {
    let bytes = input.as_bytes();
    let at = |j: usize| bytes.get(j).copied().unwrap_or(0);
    // Hexadecimal.
    if at(start) == b'0' && (at(start + 1) == b'x' || at(start + 1) == b'X') {
        let mut j = start + 2;
        while at(j).is_ascii_hexdigit() {
            j += 1;
        }
        let v = u64::from_str_radix(&input[start + 2..j], 16).map_err(|_| LexError {
            pos: start,
            message: format!("bad number or duration syntax: {:?}", &input[start..j]),
        })?;
        return Ok((Tok::Number(v as f64), j - start));
    }
    // Duration: digits followed by a unit, repeated.
    if let Some(len) = duration_len(input, start) {
        let text = &input[start..start + len];
        let ms = parse_duration(text).ok_or_else(|| LexError {
            pos: start,
            message: format!("bad number or duration syntax: {text:?}"),
        })?;
        return Ok((Tok::Duration(ms), len));
    }
    let mut j = start;
    while at(j).is_ascii_digit() || at(j) == b'_' {
        j += 1;
    }
    if at(j) == b'.' {
        j += 1;
        while at(j).is_ascii_digit() || at(j) == b'_' {
            j += 1;
        }
    }
    if (at(j) == b'e' || at(j) == b'E')
        && (at(j + 1).is_ascii_digit()
            || ((at(j + 1) == b'+' || at(j + 1) == b'-') && at(j + 2).is_ascii_digit()))
    {
        j += 2;
        while at(j).is_ascii_digit() {
            j += 1;
        }
    }
    let text = &input[start..j];
    if (at(j).is_ascii_alphanumeric() || at(j) == b'_') && at(j) != 0 {
        let mut k = j;
        while is_ident_char(at(k) as char) && at(k) != 0 {
            k += 1;
        }
        return Err(LexError {
            pos: start,
            message: format!("bad number or duration syntax: {:?}", &input[start..k]),
        });
    }
    let v: f64 = text.replace('_', "").parse().map_err(|_| LexError {
        pos: start,
        message: format!("bad number or duration syntax: {text:?}"),
    })?;
    Ok((Tok::Number(v), j - start))
}

/// Length of a duration literal at `start`, if the text there is one (`5m`, `1h30m`, `100ms`).
fn duration_len(input: &str, start: usize) -> Option<usize> {
    let bytes = input.as_bytes();
    let mut j = start;
    let mut parts = 0;
    loop {
        let digits = j;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        if j == digits {
            break;
        }
        let unit_start = j;
        while j < bytes.len() && bytes[j].is_ascii_alphabetic() {
            j += 1;
        }
        let unit = &input[unit_start..j];
        if !argus_model::duration::UNITS.iter().any(|(u, _)| *u == unit) {
            j = digits;
            break;
        }
        parts += 1;
    }
    // A ':' may follow (subquery `[5m:1m]`); letters, digits, '_' or '.' may not.
    let glued = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    (parts > 0 && !input[j..].starts_with(glued)).then_some(j - start)
}

/// Prometheus duration text (units descending, each once) to milliseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    argus_model::Duration::parse(text)
        .ok()
        .map(|d| d.as_millis())
}

fn lex_string(input: &str, start: usize) -> Result<(String, usize), LexError> {
    let quote = input[start..].chars().next().unwrap_or('"');
    // Bytes, as Go builds the string: `\x` and octal escapes give single bytes (so
    // `"\xc3\xa9"` is `é`), `\u`/`\U` give characters.
    let mut out: Vec<u8> = Vec::new();
    let push = |out: &mut Vec<u8>, c: char| {
        out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
    };
    let mut chars = input[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        if c == quote {
            return Ok((argus_model::gofmt::string_from_bytes(out), off + 2));
        }
        if c == '\n' && quote != '`' {
            break;
        }
        if c == '\\' && quote != '`' {
            let Some((_, e)) = chars.next() else { break };
            match e {
                'n' => out.push(b'\n'),
                't' => out.push(b'\t'),
                'r' => out.push(b'\r'),
                'a' => out.push(0x07),
                'b' => out.push(0x08),
                'f' => out.push(0x0c),
                'v' => out.push(0x0b),
                '\\' => out.push(b'\\'),
                '"' | '\'' if e == quote => push(&mut out, e),
                'x' => {
                    let hex: String = (0..2)
                        .filter_map(|_| chars.next().map(|(_, h)| h))
                        .collect();
                    let byte = u8::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == 2)
                        .ok_or_else(|| LexError {
                            pos: start,
                            message: "invalid escape sequence in string".into(),
                        })?;
                    out.push(byte);
                }
                'u' | 'U' => {
                    let n = if e == 'u' { 4 } else { 8 };
                    let hex: String = (0..n)
                        .filter_map(|_| chars.next().map(|(_, h)| h))
                        .collect();
                    let ch = u32::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == n)
                        .and_then(char::from_u32)
                        .ok_or_else(|| LexError {
                            pos: start,
                            message: "invalid escape sequence in string".into(),
                        })?;
                    push(&mut out, ch);
                }
                d if d.is_digit(8) => {
                    // Octal escape: exactly three digits, as in Go.
                    let rest: String = (0..2)
                        .filter_map(|_| chars.next().map(|(_, h)| h))
                        .collect();
                    let code = u8::from_str_radix(&format!("{d}{rest}"), 8)
                        .ok()
                        .filter(|_| rest.len() == 2)
                        .ok_or_else(|| LexError {
                            pos: start,
                            message: "invalid escape sequence in string".into(),
                        })?;
                    out.push(code);
                }
                other => {
                    return Err(LexError {
                        pos: start,
                        message: format!("unknown escape sequence {other:?}"),
                    });
                }
            }
            continue;
        }
        push(&mut out, c);
    }
    Err(LexError {
        pos: start,
        message: "unterminated quoted string".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens() {
        assert_eq!(
            toks(r#"sum by (job) (rate(http_requests_total{code=~"5.."}[5m] offset 1h30m))"#),
            vec![
                Tok::Ident("sum".into()),
                Tok::Ident("by".into()),
                Tok::LParen,
                Tok::Ident("job".into()),
                Tok::RParen,
                Tok::LParen,
                Tok::Ident("rate".into()),
                Tok::LParen,
                Tok::Ident("http_requests_total".into()),
                Tok::LBrace,
                Tok::Ident("code".into()),
                Tok::EqlRegex,
                Tok::Str("5..".into()),
                Tok::RBrace,
                Tok::LBracket,
                Tok::Duration(300_000),
                Tok::RBracket,
                Tok::Ident("offset".into()),
                Tok::Duration(5_400_000),
                Tok::RParen,
                Tok::RParen,
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("1e3 .5 5. 0x1F Inf 1_000"),
            vec![
                Tok::Number(1000.0),
                Tok::Number(0.5),
                Tok::Number(5.0),
                Tok::Number(31.0),
                Tok::Number(f64::INFINITY),
                Tok::Number(1000.0),
                Tok::Eof
            ]
        );
        assert!(matches!(toks("nAn")[0], Tok::Number(v) if v.is_nan()));
        assert_eq!(
            toks("a:b:c [1m:30s]"),
            vec![
                Tok::Ident("a:b:c".into()),
                Tok::LBracket,
                Tok::Duration(60_000),
                Tok::Colon,
                Tok::Duration(30_000),
                Tok::RBracket,
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("x # comment\n+ 1"),
            vec![Tok::Ident("x".into()), Tok::Add, Tok::Number(1.0), Tok::Eof]
        );
        assert_eq!(
            toks(r#"'a\'b' "\x41\u00e9" `raw\n`"#),
            vec![
                Tok::Str("a'b".into()),
                Tok::Str("Aé".into()),
                Tok::Str("raw\\n".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn errors() {
        assert!(lex("\"open").unwrap_err().message.contains("unterminated"));
        assert!(
            lex("5x")
                .unwrap_err()
                .message
                .contains("bad number or duration")
        );
        assert!(
            lex("a $ b")
                .unwrap_err()
                .message
                .contains("unexpected character")
        );
    }
}
