//! PromQL tokens. Keywords are case-insensitive; a number directly followed by a duration
//! unit is a duration (`5m`, `1h30m`); `#` starts a comment to the end of the line.

use std::fmt;

use argus_model::gofmt;

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
    /// Where Prometheus's lexer stops with an error; always the last token.
    Error(String),
}

impl fmt::Display for Tok {
    /// How Prometheus names a token in "unexpected …" messages (`<op:*>`, `<by>`,
    /// `identifier "foo"`). Numbers, durations and strings are named with their source text
    /// by the parser, which has it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => {
                let lower = s.to_ascii_lowercase();
                match lower.as_str() {
                    "sum" | "avg" | "count" | "min" | "max" | "group" | "stddev" | "stdvar"
                    | "topk" | "bottomk" | "quantile" | "count_values" | "limitk"
                    | "limit_ratio" => write!(f, "<aggr:{s}>"),
                    "bool" | "by" | "group_left" | "group_right" | "ignoring" | "offset" | "on"
                    | "without" | "anchored" | "smoothed" => write!(f, "<{s}>"),
                    "and" | "or" | "unless" | "atan2" => write!(f, "<op:{s}>"),
                    _ if s.contains(':') => write!(f, "metric identifier {s:?}"),
                    _ => write!(f, "identifier {s:?}"),
                }
            }
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
            Tok::Assign => f.write_str("\"=\""),
            Tok::At => f.write_str("<op:@>"),
            Tok::EqlRegex => f.write_str("<op:=~>"),
            Tok::NeqRegex => f.write_str("<op:!~>"),
            Tok::Eql => f.write_str("<op:==>"),
            Tok::Neq => f.write_str("<op:!=>"),
            Tok::Lss => f.write_str("<op:<>"),
            Tok::Lte => f.write_str("<op:<=>"),
            Tok::Gtr => f.write_str("<op:>>"),
            Tok::Gte => f.write_str("<op:>=>"),
            Tok::TrimUpper => f.write_str("<op:</>"),
            Tok::TrimLower => f.write_str("<op:>/>"),
            Tok::Add => f.write_str("<op:+>"),
            Tok::Sub => f.write_str("<op:->"),
            Tok::Mul => f.write_str("<op:*>"),
            Tok::Div => f.write_str("<op:/>"),
            Tok::Mod => f.write_str("<op:%>"),
            Tok::Pow => f.write_str("<op:^>"),
            Tok::Eof => f.write_str("end of input"),
            Tok::Error(m) => f.write_str(m),
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

/// Where the lexer is, as Prometheus's state machine tracks it: the errors it reports depend
/// on it (`unclosed left parenthesis`, `unexpected character inside braces: '*'`, …).
#[derive(Default)]
struct LexState {
    paren_depth: i64,
    brace_open: bool,
    bracket_open: bool,
    /// Right after `[`, `:` or an operator inside brackets: a duration expression's operand
    /// comes next (Prometheus's `lexDurationExpr`).
    duration_expr: bool,
    got_colon: bool,
    /// A number or duration was lexed since the `[`.
    got_duration: bool,
}

/// The query's tokens, ending in [`Tok::Eof`], or in [`Tok::Error`] where Prometheus's lexer
/// stops with an error (the parser reports it when it gets there, as Prometheus's parser
/// does with its lazily lexed items).
pub fn lex(input: &str) -> Vec<Token> {
    let mut out = Vec::new();
    if let Err(e) = lex_into(input, &mut out) {
        out.push(Token {
            tok: Tok::Error(e.message),
            start: e.pos,
            end: input.len(),
        });
    }
    out
}

fn lex_into(input: &str, out: &mut Vec<Token>) -> Result<(), LexError> {
    let bytes = input.as_bytes();
    let mut i = 0;
    let mut st = LexState::default();
    let fail = |pos: usize, message: String| Err(LexError { pos, message });
    // Prometheus's messages that quote the character at fault, as Go's `%q` does.
    let fail_at = |pos: usize, what: &str, c: Option<char>| {
        let c = gofmt::quote_rune(c.unwrap_or('\u{FFFD}'));
        Err(LexError {
            pos,
            message: format!("{what}: {c}"),
        })
    };
    loop {
        let Some(c) = input[i..].chars().next() else {
            if st.brace_open {
                return fail(i, "unexpected end of input inside braces".into());
            }
            if st.bracket_open && st.duration_expr {
                return fail(i, "unexpected end of input in duration expression".into());
            }
            if st.paren_depth != 0 {
                return fail(i, "unclosed left parenthesis".into());
            }
            if st.bracket_open {
                return fail(i, "unclosed left bracket".into());
            }
            out.push(Token {
                tok: Tok::Eof,
                start: input.len(),
                end: input.len(),
            });
            return Ok(());
        };
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
        let next = input[i + c.len_utf8()..].chars().next();
        let (tok, len) = if st.brace_open {
            // Prometheus's `lexInsideBraces`: label names, strings, matcher operators.
            match c {
                ',' => (Tok::Comma, 1),
                '"' | '\'' | '`' => {
                    let (s, len) = lex_string(input, i)?;
                    (Tok::Str(s), len)
                }
                '=' if next == Some('~') => (Tok::EqlRegex, 2),
                '=' => (Tok::Assign, 1),
                '!' => match next {
                    Some('~') => (Tok::NeqRegex, 2),
                    Some('=') => (Tok::Neq, 2),
                    other => {
                        return fail_at(i, "unexpected character after '!' inside braces", other);
                    }
                },
                '{' => return fail(i, "unexpected left brace '{'".into()),
                '}' => {
                    st.brace_open = false;
                    (Tok::RBrace, 1)
                }
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let mut j = i;
                    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_')
                    {
                        j += 1;
                    }
                    (Tok::Ident(input[i..j].to_string()), j - i)
                }
                other => return fail_at(i, "unexpected character inside braces", Some(other)),
            }
        } else {
            let two = input.get(i..i + 2).unwrap_or("");
            match two {
                "==" => (Tok::Eql, 2),
                "!=" => (Tok::Neq, 2),
                "<=" => (Tok::Lte, 2),
                ">=" => (Tok::Gte, 2),
                "</" => (Tok::TrimUpper, 2),
                ">/" => (Tok::TrimLower, 2),
                "=~" => return fail(i, "unexpected character after '=': '~'".into()),
                _ => match c {
                    '!' => return fail_at(i, "unexpected character after '!'", next),
                    '(' => {
                        st.paren_depth += 1;
                        (Tok::LParen, 1)
                    }
                    ')' => {
                        st.paren_depth -= 1;
                        if st.paren_depth < 0 {
                            out.push(Token {
                                tok: Tok::RParen,
                                start: i,
                                end: i + 1,
                            });
                            return fail(i + 1, "unexpected right parenthesis ')'".into());
                        }
                        (Tok::RParen, 1)
                    }
                    '{' => {
                        st.brace_open = true;
                        (Tok::LBrace, 1)
                    }
                    '[' => {
                        if st.bracket_open {
                            return fail(i, "unexpected left bracket '['".into());
                        }
                        st.bracket_open = true;
                        st.duration_expr = true;
                        st.got_colon = false;
                        st.got_duration = false;
                        (Tok::LBracket, 1)
                    }
                    ']' => {
                        if !st.bracket_open {
                            return fail(i, "unexpected right bracket ']'".into());
                        }
                        st.bracket_open = false;
                        st.duration_expr = false;
                        (Tok::RBracket, 1)
                    }
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
                    ':' if st.bracket_open => {
                        if st.got_colon && !st.duration_expr {
                            return fail(i, "unexpected colon ':'".into());
                        }
                        if st.duration_expr && (!st.got_duration || st.got_colon) {
                            // Prometheus's `lexDurationExpr` emits the colon, then stops.
                            out.push(Token {
                                tok: Tok::Colon,
                                start: i,
                                end: i + 1,
                            });
                            return fail(
                                i + 1,
                                if st.got_colon {
                                    "unexpected repeated colon in duration expression"
                                } else {
                                    "unexpected colon before duration in duration expression"
                                }
                                .into(),
                            );
                        }
                        st.got_colon = true;
                        (Tok::Colon, 1)
                    }
                    ':' if !input[i + 1..]
                        .starts_with(|ch: char| is_ident_char(ch) && ch != ':') =>
                    {
                        (Tok::Colon, 1)
                    }
                    '"' | '\'' | '`' if st.bracket_open && st.duration_expr => {
                        return fail_at(i, "unexpected character in duration expression", Some(c));
                    }
                    '"' | '\'' | '`' => {
                        let (s, len) = lex_string(input, i)?;
                        (Tok::Str(s), len)
                    }
                    c if c.is_ascii_digit()
                        || (c == '.'
                            && input[i + 1..].starts_with(|d: char| d.is_ascii_digit())) =>
                    {
                        lex_number(input, i)?
                    }
                    c if st.bracket_open && !st.duration_expr && is_ident_start(c) => {
                        let c = gofmt::quote_rune(c);
                        return fail(i, format!("unexpected character: {c}, expected ':'"));
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
                    other if st.bracket_open && st.duration_expr => {
                        return fail_at(
                            i,
                            "unexpected character in duration expression",
                            Some(other),
                        );
                    }
                    other => return fail_at(i, "unexpected character", Some(other)),
                },
            }
        };
        if st.bracket_open {
            st.got_duration |= matches!(tok, Tok::Number(_) | Tok::Duration(_));
            // An operand ends the duration-expression state; an operator, `(`, `,` or `:`
            // starts it again (so `[5m:step()]` and `[1m+step()]` lex their keywords).
            st.duration_expr = matches!(
                tok,
                Tok::LBracket
                    | Tok::Colon
                    | Tok::LParen
                    | Tok::Comma
                    | Tok::Add
                    | Tok::Sub
                    | Tok::Mul
                    | Tok::Div
                    | Tok::Mod
                    | Tok::Pow
            ) || (st.duration_expr && matches!(tok, Tok::Ident(_)));
        }
        i += len;
        out.push(Token { tok, start, end: i });
    }
}

/// A number or a duration at `start` (`1e3`, `0x1F`, `0755`, `5m`, `1h30m`), scanned as
/// Prometheus's `lexNumberOrDuration` scans it, so that a malformed one is reported with the
/// same text (`bad number or duration syntax: "5m1"`); returns the token and its length.
fn lex_number(input: &str, start: usize) -> Result<(Tok, usize), LexError> {
    let b = input.as_bytes();
    let at = |j: usize| b.get(j).copied().unwrap_or(0);
    let alnum = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let bad = |end: usize| LexError {
        pos: start,
        message: format!("bad number or duration syntax: {:?}", &input[start..end]),
    };
    // Prometheus's `scanNumber`.
    let mut j = start;
    let mut is_number = true;
    if at(j) == b'0' && (at(j + 1) == b'x' || at(j + 1) == b'X') {
        j += 2;
        while at(j).is_ascii_hexdigit() || at(j) == b'_' {
            j += 1;
        }
    } else {
        while at(j).is_ascii_digit() || at(j) == b'_' {
            j += 1;
        }
        if at(j) == b'.' {
            j += 1;
            while at(j).is_ascii_digit() || at(j) == b'_' {
                j += 1;
            }
            if at(j) == b'.' {
                // A second point: not a number, and not a duration either.
                j += 1;
                is_number = false;
            }
        }
        if is_number && (at(j) == b'e' || at(j) == b'E') {
            j += 1;
            if at(j) == b'+' || at(j) == b'-' {
                j += 1;
            }
            while at(j).is_ascii_digit() {
                j += 1;
            }
        }
    }
    if is_number && !alnum(at(j)) {
        let text = &input[start..j];
        return go_number(text)
            .map(|v| (Tok::Number(v), j - start))
            .map_err(|message| LexError {
                pos: start,
                message,
            });
    }
    // Prometheus's `acceptRemainingDuration`: a unit, then more number-unit pairs.
    if !b"smhdwy".contains(&at(j)) || at(j) == 0 {
        return Err(bad(j));
    }
    j += 1;
    if at(j) == b's' {
        j += 1;
    }
    while at(j).is_ascii_digit() {
        while at(j).is_ascii_digit() {
            j += 1;
        }
        if !b"smhdw".contains(&at(j)) || at(j) == 0 {
            return Err(bad(j));
        }
        j += 1;
        if at(j) == b's' {
            j += 1;
        }
    }
    if alnum(at(j)) {
        return Err(bad(j + 1));
    }
    let text = &input[start..j];
    let ms = argus_model::Duration::parse(text)
        .map_err(|e| LexError {
            pos: start,
            message: e.to_string(),
        })?
        .as_millis();
    Ok((Tok::Duration(ms), j - start))
}

/// A number literal's value as Prometheus reads it: an integer in Go syntax (`0x1F`, octal
/// `0755`, `1_000`), else a float; the error is Prometheus's for one that is neither.
fn go_number(text: &str) -> Result<f64, String> {
    if let Some(v) = go_parse_int(text) {
        return Ok(v as f64);
    }
    let invalid =
        || format!("error parsing number: strconv.ParseFloat: parsing {text:?}: invalid syntax");
    let v = if let Some(h) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        // Hexadecimal beyond 64 bits.
        let h = h.replace('_', "");
        if h.is_empty() {
            return Err(invalid());
        }
        h.chars()
            .try_fold(0f64, |acc, c| c.to_digit(16).map(|d| acc * 16.0 + d as f64))
            .ok_or_else(invalid)?
    } else {
        text.parse::<f64>().map_err(|_| invalid())?
    };
    if v.is_infinite() {
        return Err(format!(
            "error parsing number: strconv.ParseFloat: parsing {text:?}: value out of range"
        ));
    }
    Ok(v)
}

/// Go's `strconv.ParseInt(s, 0, 64)`: `0x`/`0o`/`0b`/leading-`0` prefixes, `_` between digits.
fn go_parse_int(text: &str) -> Option<i64> {
    let lower = text.to_ascii_lowercase();
    let (radix, digits) = if let Some(h) = lower.strip_prefix("0x") {
        (16, h.trim_start_matches('_'))
    } else if let Some(o) = lower.strip_prefix("0o") {
        (8, o.trim_start_matches('_'))
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b.trim_start_matches('_'))
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].trim_start_matches('_'))
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    i64::from_str_radix(&digits.replace('_', ""), radix).ok()
}

/// Go's `%#U` of a character (`U+0063 'c'`), as Prometheus's escape errors print it.
fn go_sharp_u(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

/// A quoted string at `start`: its value (built as Go builds it: `\x` and octal escapes are
/// bytes, `\u`/`\U` characters) and its length; errors as Prometheus's `lexEscape` words them.
fn lex_string(input: &str, start: usize) -> Result<(String, usize), LexError> {
    let quote = input[start..].chars().next().unwrap_or('"');
    let fail = |message: String| LexError {
        pos: start,
        message,
    };
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
        // Go reads a byte that is not UTF-8 as U+FFFD (as the API's decoding does here),
        // and refuses that rune in a string, raw or not.
        if c == '\u{FFFD}' {
            return Err(fail("invalid UTF-8 rune".into()));
        }
        if c == '\\' && quote != '`' {
            let Some((_, e)) = chars.next() else {
                return Err(fail("escape sequence not terminated".into()));
            };
            let simple = match e {
                'n' => Some(b'\n'),
                't' => Some(b'\t'),
                'r' => Some(b'\r'),
                'a' => Some(0x07),
                'b' => Some(0x08),
                'f' => Some(0x0c),
                'v' => Some(0x0b),
                '\\' => Some(b'\\'),
                _ => None,
            };
            if let Some(byte) = simple {
                out.push(byte);
                continue;
            }
            if e == quote {
                push(&mut out, e);
                continue;
            }
            let (digits, base, max): (usize, u32, u32) = match e {
                '0'..='7' => (3, 8, 255),
                'x' => (2, 16, 255),
                'u' => (4, 16, 0x10FFFF),
                'U' => (8, 16, 0x10FFFF),
                other => {
                    return Err(fail(format!(
                        "unknown escape sequence {}",
                        go_sharp_u(other)
                    )));
                }
            };
            let mut value: u32 = 0;
            // An octal escape's first digit is the one already read.
            let mut first = (base == 8).then_some(e);
            for _ in 0..digits {
                let d = match first.take() {
                    Some(d) => d,
                    None => match chars.next() {
                        Some((_, d)) => d,
                        None => return Err(fail("escape sequence not terminated".into())),
                    },
                };
                let Some(v) = d.to_digit(base) else {
                    return Err(fail(format!(
                        "illegal character {} in escape sequence",
                        go_sharp_u(d)
                    )));
                };
                value = value * base + v;
            }
            if value > max || (0xD800..0xE000).contains(&value) {
                return Err(fail(
                    "escape sequence is an invalid Unicode code point".into(),
                ));
            }
            if matches!(e, 'u' | 'U') {
                push(&mut out, char::from_u32(value).unwrap_or('\u{FFFD}'));
            } else {
                out.push(value as u8);
            }
            continue;
        }
        push(&mut out, c);
    }
    Err(fail(if quote == '`' {
        "unterminated raw string".into()
    } else {
        "unterminated quoted string".into()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).into_iter().map(|t| t.tok).collect()
    }

    fn error(s: &str) -> String {
        match lex(s).pop().map(|t| t.tok) {
            Some(Tok::Error(m)) => m,
            other => panic!("{s:?} lexed to the end: {other:?}"),
        }
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
        assert_eq!(error("\"open"), "unterminated quoted string");
        assert_eq!(error("5x"), "bad number or duration syntax: \"5\"");
        assert_eq!(error("a $ b"), "unexpected character: '$'");
        assert_eq!(error("sum(rate(x[5m])"), "unclosed left parenthesis");
        assert_eq!(error("x[5m"), "unclosed left bracket");
        assert_eq!(error("x{a"), "unexpected end of input inside braces");
        assert_eq!(
            error("x[:]"),
            "unexpected colon before duration in duration expression"
        );
        assert_eq!(
            error("x[5m::]"),
            "unexpected repeated colon in duration expression"
        );
        assert_eq!(error("x[1m:1m:1m]"), "unexpected colon ':'");
        assert_eq!(error("1 == 1 =~ 2"), "unexpected character after '=': '~'");
        assert_eq!(
            error("foo{a!}"),
            "unexpected character after '!' inside braces: '}'"
        );
        assert_eq!(error("'\\q'"), "unknown escape sequence U+0071 'q'");
        assert_eq!(error("`abc"), "unterminated raw string");
        // Checked against the Debian Prometheus (bytes sent as %ff in the URL).
        assert_eq!(error("\"a\u{FFFD}b\""), "invalid UTF-8 rune");
        assert_eq!(error("`\u{FFFD}`"), "invalid UTF-8 rune");
        assert_eq!(error("\"\u{FFFD}"), "invalid UTF-8 rune");
        assert_eq!(error("0755 09z"), "bad number or duration syntax: \"09\"");
        // Numbers as Go reads them: octal with a leading zero, `_` between digits.
        assert_eq!(
            toks("0755 1_000 0x_1F"),
            vec![
                Tok::Number(493.0),
                Tok::Number(1000.0),
                Tok::Number(31.0),
                Tok::Eof
            ]
        );
    }
}
