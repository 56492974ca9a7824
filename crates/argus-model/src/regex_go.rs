//! Go RE2 regular expressions, run on Rust's `regex`.
//!
//! Prometheus compiles label-matcher regexes with Go's `regexp`, fully anchored as
//! `^(?s:RE)$`. The two syntaxes differ in ways that silently change answers, so every
//! pattern goes through [`translate`] first:
//! - `\d \D \w \W \s \S` are ASCII-only in Go; Rust's are Unicode.
//! - `\b \B` are ASCII word boundaries in Go.
//! - `\Q…\E` quotes a literal in Go; Rust has no such syntax.
//! - A `{` that does not start a valid repetition (`a{`, `foo{bar}`) is a literal in Go and an
//!   error in Rust.

use crate::{Error, Result};

/// Translates a Go RE2 pattern into an equivalent Rust `regex` pattern.
pub fn translate(go: &str) -> Result<String> {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err(Error::InvalidRegex {
                        regex: go.to_string(),
                        reason: "trailing backslash at end of expression".to_string(),
                    });
                };
                i += 2;
                match next {
                    'd' => out.push_str("[0-9]"),
                    'D' => out.push_str("[^0-9]"),
                    'w' => out.push_str("[0-9A-Za-z_]"),
                    'W' => out.push_str("[^0-9A-Za-z_]"),
                    's' => out.push_str("[\\t\\n\\f\\r ]"),
                    'S' => out.push_str("[^\\t\\n\\f\\r ]"),
                    'b' if !in_class => out.push_str("(?-u:\\b)"),
                    'B' if !in_class => out.push_str("(?-u:\\B)"),
                    'Q' => {
                        // Literal text up to \E or the end of the pattern.
                        let mut literal = String::new();
                        while i < chars.len() {
                            if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                                i += 2;
                                break;
                            }
                            literal.push(chars[i]);
                            i += 1;
                        }
                        if in_class {
                            for ch in literal.chars() {
                                push_escaped_class_char(&mut out, ch);
                            }
                        } else {
                            out.push_str(&regex::escape(&literal));
                        }
                    }
                    'E' => {}
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                i += 1;
                // A leading ^ and a leading ] belong to the class syntax.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            '[' if in_class => {
                // `[:alpha:]` inside a class is a POSIX class in both; any other `[` is literal
                // in Go but a nested class in Rust.
                if chars.get(i + 1) == Some(&':')
                    && let Some(end) = find_posix_end(&chars, i + 2)
                {
                    out.extend(&chars[i..=end]);
                    i = end + 1;
                    continue;
                }
                out.push_str("\\[");
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' | '-' if in_class => {
                // Rust gives `&&`, `~~`, `--` set-operation meaning; Go treats them literally
                // (except `-` as a range, which is kept when it sits between two items).
                if c == '-' {
                    out.push('-');
                } else {
                    out.push('\\');
                    out.push(c);
                }
            }
            '{' if !in_class => {
                if let Some(len) = repetition_len(&chars[i..]) {
                    out.extend(&chars[i..i + len]);
                    i += len;
                    continue;
                }
                out.push_str("\\{");
            }
            '}' if !in_class => out.push_str("\\}"),
            other => out.push(other),
        }
        i += 1;
    }
    Ok(out)
}

fn push_escaped_class_char(out: &mut String, ch: char) {
    if matches!(ch, '[' | ']' | '\\' | '^' | '-' | '&' | '~') {
        out.push('\\');
    }
    out.push(ch);
}

fn find_posix_end(chars: &[char], from: usize) -> Option<usize> {
    let mut j = from;
    while j + 1 < chars.len() {
        if chars[j] == ':' && chars[j + 1] == ']' {
            return Some(j + 1);
        }
        if !(chars[j].is_ascii_alphabetic() || chars[j] == '^') {
            return None;
        }
        j += 1;
    }
    None
}

/// Length of a valid `{n}`, `{n,}` or `{n,m}` at the start of `chars`, if there is one.
fn repetition_len(chars: &[char]) -> Option<usize> {
    let mut j = 1;
    let start = j;
    while j < chars.len() && chars[j].is_ascii_digit() {
        j += 1;
    }
    if j == start {
        return None;
    }
    if chars.get(j) == Some(&',') {
        j += 1;
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
    }
    (chars.get(j) == Some(&'}')).then_some(j + 1)
}

/// Compiles a Go pattern fully anchored, as Prometheus label matchers do.
pub fn compile_anchored(go: &str) -> Result<regex::Regex> {
    let translated = translate(go)?;
    regex::RegexBuilder::new(&format!("^(?s:{translated})$"))
        .size_limit(64 << 20)
        .build()
        .map_err(|e| Error::InvalidRegex {
            regex: go.to_string(),
            reason: first_line(&e.to_string()),
        })
}

fn first_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim().to_string())
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(re: &str, s: &str) -> bool {
        compile_anchored(re).unwrap().is_match(s)
    }

    #[test]
    fn go_semantics_table() {
        // (pattern, input, Go's answer)
        let table: &[(&str, &str, bool)] = &[
            ("a{", "a{", true),
            ("foo{bar}", "foo{bar}", true),
            ("a{2}", "aa", true),
            ("a{2,}", "aaa", true),
            ("a{1,2}", "aaa", false),
            ("x{,2}", "x{,2}", true),
            (r"\d+", "123", true),
            (r"\d+", "١٢٣", false),
            (r"\w+", "héllo", false),
            (r"\w+", "hello_1", true),
            (r"\s", "\u{a0}", false),
            (r"\s", "\t", true),
            (r"\Qa.b\E", "a.b", true),
            (r"\Qa.b\E", "axb", false),
            (r"\Qa.b", "a.b", true),
            (".*", "a\nb", true),
            ("foo", "foobar", false),
            ("foo|bar", "bar", true),
            (r"[\d]+", "42", true),
            (r"[^\d]", "x", true),
            ("[[:alpha:]]+", "abc", true),
            ("[a&&b]", "&", true),
            ("[]a]", "]", true),
            (r"\bfoo\b", "foo", true),
            ("(?i)FOO", "foo", true),
        ];
        for &(re, s, want) in table {
            assert_eq!(m(re, s), want, "{re:?} on {s:?}");
        }
    }

    #[test]
    fn invalid_patterns_are_errors() {
        assert!(compile_anchored("(").is_err());
        assert!(compile_anchored("\\").is_err());
        assert!(compile_anchored("[a").is_err());
    }
}
