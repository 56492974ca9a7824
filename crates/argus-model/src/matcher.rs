//! Label matchers: `=`, `!=`, `=~`, `!~` with Prometheus semantics (regexes fully anchored,
//! `.` matching newline; a missing label matches as the empty string).

use std::fmt;

use crate::{Result, regex_go};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        }
    }
}

#[derive(Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<regex::Regex>,
    /// For regexes that are an alternation of literals (`a|b|c`, `a\.b|c`): the literals, so
    /// that postings can be looked up directly instead of scanning all values, and values
    /// are checked without a regex (none is compiled).
    set: Option<Vec<String>>,
    /// The same literals hashed, for sets too large to search one by one.
    lookup: Option<std::collections::HashSet<String>>,
    /// For regexes that are a literal with `.*` around it, or `.+`: the string check that
    /// answers them (the regex is then not compiled).
    fast: Option<Fast>,
}

/// Regexes answered by a plain string check, as Prometheus's `FastRegexMatcher` answers
/// them (`.` matches newline, so `.*` matches any string).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fast {
    /// `lit.*`
    Prefix(String),
    /// `.*lit` (and `.*`: any string)
    Suffix(String),
    /// `.*lit.*`
    Contains(String),
    /// `.+`
    NonEmpty,
}

impl Fast {
    /// The check `pattern` (Go syntax, anchored) amounts to, if it is one of these shapes
    /// around a literal without any special character.
    fn of(pattern: &str) -> Option<Fast> {
        if pattern == ".+" {
            return Some(Fast::NonEmpty);
        }
        let (lead, rest) = match pattern.strip_prefix(".*") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let (trail, lit) = match rest.strip_suffix(".*") {
            Some(lit) => (true, lit),
            None => (false, rest),
        };
        if lit.chars().any(is_special) {
            return None;
        }
        let lit = lit.to_string();
        match (lead, trail) {
            (true, true) => Some(Fast::Contains(lit)),
            (true, false) => Some(Fast::Suffix(lit)),
            (false, true) => Some(Fast::Prefix(lit)),
            (false, false) => None,
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Fast::Prefix(p) => value.starts_with(p.as_str()),
            Fast::Suffix(p) => value.ends_with(p.as_str()),
            Fast::Contains(p) => value.contains(p.as_str()),
            Fast::NonEmpty => !value.is_empty(),
        }
    }
}

impl Matcher {
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let (regex, set, fast) = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                match (Fast::of(&value), literal_set(&value)) {
                    (Some(fast), _) => (None, None, Some(fast)),
                    (None, Some(set)) => (None, Some(set), None),
                    (None, None) => (Some(regex_go::compile_anchored(&value)?), None, None),
                }
            }
            _ => (None, None, None),
        };
        // As Prometheus's matchers hash sets of 16 values or more.
        let lookup = set
            .as_ref()
            .filter(|s| s.len() >= 16)
            .map(|s| s.iter().cloned().collect());
        Ok(Self {
            name: name.into(),
            op,
            value,
            regex,
            set,
            lookup,
            fast,
        })
    }

    /// `name="value"`; never fails.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
            set: None,
            lookup: None,
            fast: None,
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::RegexMatch => self.regex_matches(value),
            MatchOp::RegexNoMatch => !self.regex_matches(value),
        }
    }

    fn regex_matches(&self, value: &str) -> bool {
        if let Some(lookup) = &self.lookup {
            return lookup.contains(value);
        }
        if let Some(set) = &self.set {
            return set.iter().any(|s| s == value);
        }
        if let Some(fast) = &self.fast {
            return fast.matches(value);
        }
        self.regex.as_ref().is_some_and(|r| r.is_match(value))
    }

    /// True when the matcher matches the empty string, i.e. also series without the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// The exact values this matcher accepts, when it is `=` or a literal alternation.
    pub fn exact_values(&self) -> Option<Vec<&str>> {
        match self.op {
            MatchOp::Equal => Some(vec![self.value.as_str()]),
            MatchOp::RegexMatch => self
                .set
                .as_ref()
                .map(|s| s.iter().map(String::as_str).collect()),
            _ => None,
        }
    }
}

/// Whether `c` means more than itself in a (Go RE2) regex.
fn is_special(c: char) -> bool {
    "\\.+*?()[]{}^$|".contains(c)
}

/// `a|b|c` made only of literal characters → the list of alternatives. A character may be
/// escaped if it is ASCII and not a letter or digit (`\.`), which Go reads as that character.
fn literal_set(pattern: &str) -> Option<Vec<String>> {
    if pattern.is_empty() {
        return None;
    }
    let mut set = Vec::new();
    let mut current = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '|' => set.push(std::mem::take(&mut current)),
            '\\' => match chars.next() {
                Some(e) if e.is_ascii() && !e.is_ascii_alphanumeric() => current.push(e),
                _ => return None,
            },
            c if is_special(c) => return None,
            c => current.push(c),
        }
    }
    set.push(current);
    Some(set)
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.name,
            self.op.as_str(),
            crate::gofmt::quote(&self.value)
        )
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_table() {
        let eq = Matcher::new(MatchOp::Equal, "a", "x").unwrap();
        assert!(eq.matches("x") && !eq.matches("xx"));
        let ne = Matcher::new(MatchOp::NotEqual, "a", "").unwrap();
        assert!(ne.matches("x") && !ne.matches(""));
        let re = Matcher::new(MatchOp::RegexMatch, "a", "x|y").unwrap();
        assert!(re.matches("y") && !re.matches("xy"));
        assert_eq!(re.exact_values(), Some(vec!["x", "y"]));
        let re2 = Matcher::new(MatchOp::RegexMatch, "a", "x.*").unwrap();
        assert!(re2.matches("x\ny") && re2.exact_values().is_none());
        let nre = Matcher::new(MatchOp::RegexNoMatch, "a", "x|").unwrap();
        assert!(!nre.matches("") && nre.matches("z"));
        assert!(Matcher::new(MatchOp::RegexMatch, "a", "(").is_err());
    }

    #[test]
    fn literal_sets() {
        // Escaped punctuation is the character itself, as in Go.
        let m = Matcher::new(MatchOp::RegexMatch, "a", r"h\.example\.org:9100|x\-y|\\").unwrap();
        assert!(m.regex.is_none());
        assert_eq!(
            m.exact_values(),
            Some(vec!["h.example.org:9100", "x-y", "\\"])
        );
        assert!(m.matches("h.example.org:9100") && !m.matches("hxexample.org:9100"));
        // Escapes that mean something else, and any other special character: a regex.
        for pattern in [
            r"a\d", r"a\n", r"a\x41", r"a\é", "a.b", "(?i)a|b", "a|b*", "a\\",
        ] {
            assert!(literal_set(pattern).is_none(), "{pattern}");
        }
        // Large sets are hashed; empty alternatives match the empty value.
        let values: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
        let m = Matcher::new(MatchOp::RegexMatch, "a", values.join("|") + "|").unwrap();
        assert!(m.lookup.is_some() && m.matches("v42") && m.matches("") && !m.matches("v100"));
        let m = Matcher::new(MatchOp::RegexNoMatch, "a", values.join("|")).unwrap();
        assert!(!m.matches("v7") && m.matches("v7x"));
    }

    #[test]
    fn fast_shapes() {
        assert_eq!(Fast::of(".*7"), Some(Fast::Suffix("7".into())));
        assert_eq!(Fast::of("foo.*"), Some(Fast::Prefix("foo".into())));
        assert_eq!(Fast::of(".*o-o.*"), Some(Fast::Contains("o-o".into())));
        assert_eq!(Fast::of(".*"), Some(Fast::Suffix(String::new())));
        assert_eq!(Fast::of(".+"), Some(Fast::NonEmpty));
        for slow in [
            "foo", "a|b", ".*a|b", "a.b.*", ".*a+", "\\.*x", "(?i)a.*", ".*[a]",
        ] {
            assert_eq!(Fast::of(slow), None, "{slow}");
        }
        // Not compiled, so refused patterns stay refused and fast ones stay accepted.
        let m = Matcher::new(MatchOp::RegexNoMatch, "a", ".*x").unwrap();
        assert!(m.regex.is_none() && !m.matches("yx") && m.matches("xy"));
    }

    proptest::proptest! {
        /// Literal sets answer what the compiled regex answers.
        #[test]
        fn literal_sets_match_the_regex(
            alternatives in proptest::collection::vec("([a-c:_é-]|\\\\[.:_|-]){0,4}", 1..40),
            values in proptest::collection::vec("[a-c.:_é|-]{0,4}", 1..20),
        ) {
            let pattern = alternatives.join("|");
            proptest::prop_assume!(!pattern.is_empty());
            let m = Matcher::new(MatchOp::RegexMatch, "a", pattern.as_str()).unwrap();
            proptest::prop_assert!(m.set.is_some() && m.regex.is_none(), "{}", pattern);
            let regex = regex_go::compile_anchored(&pattern).unwrap();
            // The alternatives unescaped are values that match.
            let literals: Vec<String> = alternatives.iter().map(|a| a.replace('\\', "")).collect();
            for v in values.iter().chain(literals.iter()) {
                proptest::prop_assert_eq!(m.matches(v), regex.is_match(v), "{} on {:?}", pattern, v);
            }
        }

        /// The string checks answer what the compiled regex answers.
        #[test]
        fn fast_matches_the_regex(
            shape in 0usize..5,
            lit in "[a-c\\n\\-é]{0,3}",
            values in proptest::collection::vec("[a-c\\n\\-é]{0,5}", 1..20),
        ) {
            let pattern = match shape {
                0 => format!("{lit}.*"),
                1 => format!(".*{lit}"),
                2 => format!(".*{lit}.*"),
                3 => ".+".to_string(),
                _ => ".*".to_string(),
            };
            let m = Matcher::new(MatchOp::RegexMatch, "a", pattern.as_str()).unwrap();
            proptest::prop_assert!(m.fast.is_some(), "{}", pattern);
            let regex = regex_go::compile_anchored(&pattern).unwrap();
            for v in &values {
                proptest::prop_assert_eq!(m.matches(v), regex.is_match(v), "{} on {:?}", pattern, v);
            }
        }
    }
}
