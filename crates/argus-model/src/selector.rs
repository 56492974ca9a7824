//! Series selectors as the API's `match[]` takes them: `metric`, `metric{a="b"}`,
//! `{a=~"b", c!="d"}`, `{"utf8.name", a="b"}`. The full PromQL parser lives in
//! `argus-promql`; this covers just the selector grammar so that storage-level endpoints do
//! not depend on it. Errors read like Prometheus's (`1:5: parse error: …`).

use crate::{Error, MatchOp, Matcher, Result, labels::METRIC_NAME};

/// Parses a series selector into its matchers (the metric name becomes a `__name__` matcher).
pub fn parse_selector(input: &str) -> Result<Vec<Matcher>> {
    let mut p = Parser { s: input, pos: 0 };
    let matchers = p.selector()?;
    p.skip_ws();
    if p.pos < p.s.len() {
        return Err(p.err(&format!(
            "unexpected character {:?}",
            p.peek().unwrap_or(' ')
        )));
    }
    if matchers.iter().all(Matcher::matches_empty) {
        return Err(Error::Selector(
            "1:1: parse error: vector selector must contain at least one non-empty matcher"
                .to_string(),
        ));
    }
    Ok(matchers)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

impl Parser<'_> {
    fn err(&self, msg: &str) -> Error {
        let col = self.s[..self.pos].chars().count() + 1;
        Error::Selector(format!("1:{col}: parse error: {msg}"))
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, text: &str) -> bool {
        if self.s[self.pos..].starts_with(text) {
            self.pos += text.len();
            true
        } else {
            false
        }
    }

    fn identifier(&mut self) -> Option<&str> {
        let start = self.pos;
        match self.peek() {
            Some(c) if is_name_start(c) => self.pos += 1,
            _ => return None,
        }
        while let Some(c) = self.peek() {
            if is_name_char(c) {
                self.pos += 1;
            } else {
                break;
            }
        }
        Some(&self.s[start..self.pos])
    }

    fn selector(&mut self) -> Result<Vec<Matcher>> {
        self.skip_ws();
        let mut matchers = Vec::new();
        let metric = self.identifier().map(str::to_string);
        if let Some(name) = &metric {
            matchers.push(Matcher::equal(METRIC_NAME, name.clone()));
        }
        self.skip_ws();
        if self.eat("{") {
            self.matchers(&mut matchers, metric.is_some())?;
        } else if metric.is_none() {
            return Err(match self.peek() {
                None => self.err("unexpected end of input"),
                Some(c) => self.err(&format!("unexpected character: {c:?}")),
            });
        }
        Ok(matchers)
    }

    fn matchers(&mut self, out: &mut Vec<Matcher>, has_metric: bool) -> Result<()> {
        loop {
            self.skip_ws();
            if self.eat("}") {
                return Ok(());
            }
            let name = match self.peek() {
                Some('"' | '\'' | '`') => self.string()?,
                Some(c) if is_name_start(c) => self.identifier().unwrap_or_default().to_string(),
                None => return Err(self.err("unexpected end of input inside braces")),
                Some(c) => {
                    return Err(self.err(&format!("unexpected character inside braces: {c:?}")));
                }
            };
            self.skip_ws();
            let op = if self.eat("=~") {
                Some(MatchOp::RegexMatch)
            } else if self.eat("!~") {
                Some(MatchOp::RegexNoMatch)
            } else if self.eat("!=") {
                Some(MatchOp::NotEqual)
            } else if self.eat("=") {
                Some(MatchOp::Equal)
            } else {
                None
            };
            match op {
                Some(op) => {
                    self.skip_ws();
                    let value = match self.peek() {
                        Some('"' | '\'' | '`') => self.string()?,
                        _ => return Err(self.err("unexpected character inside braces")),
                    };
                    if name == METRIC_NAME && has_metric {
                        return Err(self.err("metric name must not be set twice"));
                    }
                    let matcher = Matcher::new(op, name, value)
                        .map_err(|e| Error::Selector(format!("1:1: parse error: {e}")))?;
                    out.push(matcher);
                }
                None => {
                    // A bare quoted string is the metric name (UTF-8 names, Prometheus 3).
                    if has_metric || out.iter().any(|m| m.name == METRIC_NAME) {
                        return Err(self.err("metric name must not be set twice"));
                    }
                    out.push(Matcher::equal(METRIC_NAME, name));
                }
            }
            self.skip_ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("}") {
                return Ok(());
            }
            return Err(match self.peek() {
                None => self.err("unexpected end of input inside braces"),
                Some(c) => self.err(&format!("unexpected character inside braces: {c:?}")),
            });
        }
    }

    fn string(&mut self) -> Result<String> {
        let quote = self.peek().unwrap_or('"');
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated quoted string"));
            };
            self.pos += c.len_utf8();
            if c == quote {
                return Ok(out);
            }
            if c == '\\' && quote != '`' {
                let Some(e) = self.peek() else {
                    return Err(self.err("unterminated quoted string"));
                };
                self.pos += e.len_utf8();
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    '\\' | '"' | '\'' => out.push(e),
                    'x' | 'u' | 'U' => {
                        let len = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex = self.s.get(self.pos..self.pos + len).unwrap_or("");
                        let ch = u32::from_str_radix(hex, 16)
                            .ok()
                            .filter(|_| hex.len() == len)
                            .and_then(char::from_u32)
                            .ok_or_else(|| self.err("invalid escape sequence"))?;
                        self.pos += len;
                        out.push(ch);
                    }
                    _ => return Err(self.err(&format!("unknown escape sequence {e:?}"))),
                }
            } else {
                out.push(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(s: &str) -> String {
        match parse_selector(s) {
            Ok(ms) => ms
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(","),
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn selectors() {
        assert_eq!(show("up"), r#"__name__="up""#);
        assert_eq!(
            show(r#"up{job="a",x=~'b.*'}"#),
            r#"__name__="up",job="a",x=~"b.*""#
        );
        assert_eq!(
            show(r#"{__name__=~"a|b", y!=""}"#),
            r#"__name__=~"a|b",y!="""#
        );
        assert_eq!(
            show(r#"{"my.metric", a="b"}"#),
            r#"__name__="my.metric",a="b""#
        );
        assert!(show("up{,}").starts_with("ERR"));
        assert!(show(r#"{a=""}"#).contains("at least one non-empty matcher"));
        assert!(show("").contains("unexpected end of input"));
        assert!(show(r#"up{a="b""#).contains("unexpected end of input"));
        assert!(show(r#"up{a=~"("}"#).starts_with("ERR"));
        assert!(show("up extra").starts_with("ERR 1:4"));
    }
}
