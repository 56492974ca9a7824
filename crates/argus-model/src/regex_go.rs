//! Go RE2 regular expressions, run on Rust's `regex`.
//!
//! Prometheus compiles label-matcher regexes with Go's `regexp` (Perl syntax, `.` matching
//! newlines), fully anchored. The two syntaxes differ in ways that silently change answers
//! or refuse patterns the other accepts, so every pattern is parsed here by Go's rules first:
//! what Go refuses is refused with Go's error (`error parsing regexp: missing closing ):
//! `(``), and what Go accepts is written out in Rust syntax that means the same. Among the
//! differences this settles:
//! - `\d \D \w \W \s \S` and `\b \B` are ASCII in Go; Rust's are Unicode.
//! - `\Q…\E` quotes a literal in Go; Rust has no such syntax.
//! - A `{` that does not start a valid repetition (`a{`, `x{,2}`, `x{01}`) is a literal in Go.
//! - `[a&&b]` is a class of three characters in Go, an intersection in Rust; a `[` inside a
//!   class is a literal in Go, a nested class in Rust.
//! - `\012` is octal in Go; `a**` and `x{1001}` are errors in Go.
//! - Flags (`(?i)`, `(?U)`, …) apply to each piece as Go applies them.
//! - Go refuses a pattern whose parsed tree is over 1000 high ("expression nests too
//!   deeply"), counting the nodes Go builds (captures, repetitions, concatenations and
//!   alternations, with runs of literals merged, nested concatenations and alternations
//!   flattened and one-character alternatives made a class); Rust refuses 250 nested groups
//!   of any kind. The height is modeled here and Rust's limit lifted.
//!
//! Unicode class names (`\p{Greek}`) are looked up by Rust's tables, which know every name
//! Go knows and a few more (binary properties such as `\p{Alphabetic}`).

use std::fmt;

use crate::{Error, Result};

/// A pattern Go's `regexp/syntax` refuses, with its error code and the offending text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoRegexError {
    pub code: &'static str,
    pub expr: String,
}

impl fmt::Display for GoRegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error parsing regexp: {}: `{}`", self.code, self.expr)
    }
}

const INVALID_CHAR_RANGE: &str = "invalid character class range";
const INVALID_ESCAPE: &str = "invalid escape sequence";
const INVALID_NAMED_CAPTURE: &str = "invalid named capture";
const INVALID_PERL_OP: &str = "invalid or unsupported Perl syntax";
const INVALID_REPEAT_OP: &str = "invalid nested repetition operator";
const INVALID_REPEAT_SIZE: &str = "invalid repeat count";
const MISSING_BRACKET: &str = "missing closing ]";
const MISSING_PAREN: &str = "missing closing )";
const MISSING_REPEAT_ARGUMENT: &str = "missing argument to repetition operator";
const NESTING_DEPTH: &str = "expression nests too deeply";
const TRAILING_BACKSLASH: &str = "trailing backslash at end of expression";
const UNEXPECTED_PAREN: &str = "unexpected )";

/// Go's limit on one repetition count, and on the product of nested ones.
const MAX_REPEAT: u64 = 1000;

/// Go's limit on the height of a parsed pattern's tree (`maxHeight`).
const MAX_HEIGHT: u32 = 1000;

/// An empty class: matches nothing (a surrogate code point, which no string holds).
const NOTHING: &str = r"[^\x{0}-\x{10FFFF}]";

/// POSIX classes Go knows inside brackets (each also with `^`); Rust knows the same names with
/// the same ASCII members.
const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Translates a Go pattern (Perl syntax with `.` matching newlines, as Prometheus parses label
/// matchers) into a Rust `regex` pattern that matches the same strings.
pub fn translate(go: &str) -> std::result::Result<String, GoRegexError> {
    Parser::new(go).run().map(|(text, _)| text)
}

/// Compiles a label matcher's pattern fully anchored. Errors name the pattern as Prometheus 3's
/// matchers do, which parse it alone first and then compile it as `^(?s:PATTERN)$`, which
/// is one level taller.
pub fn compile_anchored(go: &str) -> Result<regex::Regex> {
    let (translated, content) = Parser::new(go).run().map_err(|e| invalid(go, e))?;
    // `^`, the pattern's pieces and `$` in one concatenation.
    if content.h + 1 > MAX_HEIGHT {
        let wrapped = format!("^(?s:{go})$");
        return Err(invalid(go, Parser::err(NESTING_DEPTH, &wrapped)));
    }
    build(go, &format!(r"\A(?:{translated})\z"))
}

/// Compiles `^(?s:PATTERN)$` as Go text, as Prometheus compiles relabeling and `label_replace`
/// regexes: errors quote the wrapped text, and a pattern that closes the wrapper's group
/// (`a)|(b`) means what it means there.
pub fn compile_wrapped(go: &str) -> Result<regex::Regex> {
    let wrapped = format!("^(?s:{go})$");
    let translated = translate(&wrapped).map_err(|e| invalid(go, e))?;
    build(go, &translated)
}

/// Appends `template` to `dst` with `$1`, `${1}`, `$name` and `${name}` replaced by the
/// groups of `caps`, as Go's `Regexp.Expand` does (relabeling's `replacement`,
/// `label_replace`): a name is a run of Unicode letters, digits and `_` (`$1x` is the group
/// named `1x`); all ASCII digits without a leading zero and under 10^8 make a number; `$$`
/// is `$`; a `$` that starts no name, or a `${` without its `}`, is itself; a group that did
/// not take part, or does not exist, is empty.
pub fn expand(caps: &regex::Captures<'_>, template: &str, dst: &mut String) {
    static NAME: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let name_re =
        NAME.get_or_init(|| regex::Regex::new(r"\A[\p{L}\p{Nd}_]+").expect("a valid pattern"));
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        dst.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            dst.push('$');
            rest = after;
            continue;
        }
        let (brace, body) = match rest.strip_prefix('{') {
            Some(body) => (true, body),
            None => (false, rest),
        };
        let Some(name) = name_re.find(body).map(|m| m.as_str()) else {
            dst.push('$');
            continue;
        };
        let after = &body[name.len()..];
        let after = match (brace, after.strip_prefix('}')) {
            (false, _) => after,
            (true, Some(after)) => after,
            (true, None) => {
                dst.push('$');
                continue;
            }
        };
        rest = after;
        let number = (name.len() < 9
            && name.bytes().all(|b| b.is_ascii_digit())
            && !(name.starts_with('0') && name.len() > 1))
            .then(|| name.parse::<usize>().ok())
            .flatten();
        let group = match number {
            Some(n) => caps.get(n),
            None => caps.name(name),
        };
        if let Some(g) = group {
            dst.push_str(g.as_str());
        }
    }
    dst.push_str(rest);
}

fn invalid(go: &str, e: GoRegexError) -> Error {
    Error::InvalidRegex {
        regex: go.to_string(),
        reason: e.to_string(),
    }
}

fn build(go: &str, rust: &str) -> Result<regex::Regex> {
    regex::RegexBuilder::new(rust)
        .size_limit(64 << 20)
        // Go bounds a pattern by its tree's height, checked while translating; groups that
        // make no node there (`(?:(?:a))`) nest freely. Rust's parser keeps its stack on the
        // heap, and only the nodes Go counts reach the recursive compiler.
        .nest_limit(u32::MAX)
        .build()
        .map_err(|e| Error::InvalidRegex {
            regex: go.to_string(),
            reason: format!(
                "invalid regular expression {go:?}: {}",
                first_line(&e.to_string())
            ),
        })
}

fn first_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim().to_string())
        .unwrap_or_else(|| s.to_string())
}

#[derive(Clone, Copy)]
struct Flags {
    fold: bool,
    dot_nl: bool,
    one_line: bool,
    non_greedy: bool,
}

/// An open group: the flags to restore at its `)` and, for Go's limit on nested repetition,
/// the largest product of repetition counts on any path inside it so far.
struct Frame {
    saved: Flags,
    /// Where the group's text starts in the output.
    open_at: usize,
    /// Where the last piece's text starts, and whether it already carries a repetition
    /// operator (Go allows `(?i)` between two; Rust needs the first in a group).
    last_at: usize,
    last_repeated: bool,
    alt_max: u64,
    /// One entry per piece of the current concatenation; the last is what a repetition
    /// operator applies to. Empty at the group's start and after `|`.
    items: Vec<u64>,
    /// The current concatenation's pieces as Go's tree holds them (runs of literals merged),
    /// for Go's height limit.
    shapes: Vec<Shape>,
    /// The tallest finished alternative, once there was a `|`.
    alt_height: Option<u32>,
    /// Whether every finished alternative matches one character (Go makes them one class).
    alt_single: bool,
    /// Whether the group captures (a node in Go's tree) or only groups.
    capture: bool,
}

/// What a piece adds to a concatenation in Go's tree: `n` nodes, the tallest `h` high (a
/// non-capturing group's concatenation adds its pieces, as Go flattens it).
#[derive(Clone, Copy)]
struct Shape {
    h: u32,
    n: u32,
    /// For a run of literals (which Go merges into one node): its case folding, its length
    /// and the length of the piece added last, which a repetition applies to.
    literal: Option<(bool, u32, u32)>,
    /// A class or `.` (one character, as a one-rune literal).
    class: bool,
    /// A non-capturing group's alternation, whose alternatives Go hoists into an enclosing
    /// alternation.
    alternation: bool,
}

impl Shape {
    const ATOM: Shape = Shape {
        h: 1,
        n: 1,
        literal: None,
        class: false,
        alternation: false,
    };
    const CLASS: Shape = Shape {
        class: true,
        ..Shape::ATOM
    };

    /// Whether it matches exactly one character.
    fn single(self) -> bool {
        self.class || matches!(self.literal, Some((_, 1, _)))
    }

    /// The height of the piece as one node (a concatenation of several is one level more).
    fn alone(self) -> u32 {
        if self.n >= 2 { self.h + 1 } else { self.h }
    }

    /// The shape of a concatenation of `pieces`.
    fn concat(pieces: &[Shape]) -> Shape {
        match pieces {
            [] => Shape::ATOM,
            [one] => *one,
            _ => Shape {
                h: pieces.iter().map(|p| p.h).max().unwrap_or(1),
                n: pieces.iter().map(|p| p.n).sum(),
                ..Shape::ATOM
            },
        }
    }

    /// The height a concatenation of `pieces` adds as one alternative of an alternation.
    fn alternative(pieces: &[Shape]) -> u32 {
        match pieces {
            [one] if one.alternation => one.h - 1,
            _ => Shape::concat(pieces).alone(),
        }
    }
}

impl Frame {
    fn new(saved: Flags, open_at: usize) -> Self {
        Self {
            saved,
            open_at,
            last_at: 0,
            last_repeated: false,
            alt_max: 1,
            items: Vec::new(),
            shapes: Vec::new(),
            alt_height: None,
            alt_single: true,
            capture: false,
        }
    }

    /// The group's content: its concatenation, or the alternation of its alternatives.
    fn content(&self) -> Shape {
        let Some(h) = self.alt_height else {
            return Shape::concat(&self.shapes);
        };
        if self.alt_single && matches!(self.shapes[..], [one] if one.single()) {
            // `a|b|[cd]` is the class `[a-d]`.
            return Shape::CLASS;
        }
        Shape {
            h: 1 + h.max(Shape::alternative(&self.shapes)),
            alternation: true,
            ..Shape::ATOM
        }
    }

    /// The group as a piece of the enclosing concatenation.
    fn shape(&self) -> Shape {
        let content = self.content();
        if self.capture {
            Shape {
                h: 1 + content.alone(),
                ..Shape::ATOM
            }
        } else {
            // A run of literals ending the group is pushed as one node.
            Shape {
                literal: content.literal.map(|(fold, run, _)| (fold, run, run)),
                ..content
            }
        }
    }

    /// Adds a piece to the concatenation, merging runs of literals as Go does.
    fn push_shape(&mut self, shape: Shape) {
        if let (Some((fold, k, _)), Some(last)) = (shape.literal, self.shapes.last_mut())
            && let Some((last_fold, run, _)) = last.literal
            && fold == last_fold
        {
            last.literal = Some((fold, run + k, k));
            return;
        }
        self.shapes.push(shape);
    }

    fn value(&self) -> u64 {
        self.items.iter().copied().fold(self.alt_max, u64::max)
    }
}

enum Rep {
    Star,
    Plus,
    Quest,
    Count(u64, Option<u64>),
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
    flags: Flags,
    frames: Vec<Frame>,
    out: String,
    names: std::collections::HashSet<String>,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        let flags = Flags {
            fold: false,
            dot_nl: true,
            one_line: true,
            non_greedy: false,
        };
        Self {
            s,
            i: 0,
            flags,
            frames: vec![Frame::new(flags, 0)],
            out: String::with_capacity(s.len() * 2 + 8),
            names: Default::default(),
        }
    }

    fn err(code: &'static str, expr: &str) -> GoRegexError {
        GoRegexError {
            code,
            expr: expr.to_string(),
        }
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.s.as_bytes().get(at).copied()
    }

    fn rune(&self, at: usize) -> Option<(char, usize)> {
        self.s[at..].chars().next().map(|c| (c, at + c.len_utf8()))
    }

    /// The pattern in Rust syntax, and its content's shape in Go's tree.
    fn run(mut self) -> std::result::Result<(String, Shape), GoRegexError> {
        // Where the previous piece's repetition operator started, if the previous piece was one.
        let mut last_repeat: Option<usize> = None;
        while self.i < self.s.len() {
            let mut repeat = None;
            let start = self.i;
            match self.s.as_bytes()[self.i] {
                b'(' if self.byte(self.i + 1) == Some(b'?') => self.perl_flags()?,
                b'(' => {
                    self.open(None);
                    self.i += 1;
                }
                b'|' => {
                    let frame = self.frames.last_mut().expect("a frame is always open");
                    frame.alt_max = frame.value();
                    frame.items.clear();
                    let h = Shape::alternative(&frame.shapes);
                    frame.alt_height = Some(frame.alt_height.unwrap_or(0).max(h));
                    frame.alt_single &= matches!(frame.shapes[..], [one] if one.single());
                    frame.shapes.clear();
                    self.check_height(h)?;
                    self.out.push('|');
                    self.i += 1;
                }
                b')' => {
                    self.close()?;
                    self.i += 1;
                }
                b'^' => {
                    let text = if self.flags.one_line { r"\A" } else { "(?m:^)" };
                    self.atom(text, 1);
                }
                b'$' => {
                    let text = if self.flags.one_line { r"\z" } else { "(?m:$)" };
                    self.atom(text, 1);
                }
                b'.' => {
                    let text = if self.flags.dot_nl {
                        "(?s:.)"
                    } else {
                        "(?-s:.)"
                    };
                    let at = self.out.len();
                    self.out.push_str(text);
                    self.push_piece(1, at, Shape::CLASS);
                    self.i += 1;
                }
                b'[' => self.class()?,
                op @ (b'*' | b'+' | b'?') => {
                    let rep = match op {
                        b'*' => Rep::Star,
                        b'+' => Rep::Plus,
                        _ => Rep::Quest,
                    };
                    self.repeat(rep, start, start + 1, last_repeat)?;
                    repeat = Some(start);
                }
                b'{' => match self.counted(start) {
                    None => {
                        self.literal('{');
                        self.i += 1;
                    }
                    Some((min, max, after)) => {
                        if min.is_none()
                            || max.is_some_and(|m| m.is_none())
                            || min.is_some_and(|n| n > MAX_REPEAT)
                            || max.flatten().is_some_and(|m| m > MAX_REPEAT)
                            || matches!((min, max), (Some(n), Some(Some(m))) if n > m)
                        {
                            return Err(Self::err(INVALID_REPEAT_SIZE, &self.s[start..after]));
                        }
                        let min = min.unwrap_or(0);
                        let max = max.flatten();
                        self.repeat(Rep::Count(min, max), start, after, last_repeat)?;
                        repeat = Some(start);
                    }
                },
                b'\\' => self.escape()?,
                _ => {
                    let (c, next) = self.rune(self.i).expect("inside the string");
                    self.literal(c);
                    self.i = next;
                }
            }
            last_repeat = repeat;
        }
        if self.frames.len() != 1 {
            return Err(Self::err(MISSING_PAREN, self.s));
        }
        let content = self.frames[0].content();
        self.check_height(content.alone())?;
        Ok((self.out, content))
    }

    /// Go's error for a tree taller than [`MAX_HEIGHT`], which names the whole pattern.
    fn check_height(&self, h: u32) -> std::result::Result<(), GoRegexError> {
        if h > MAX_HEIGHT {
            return Err(Self::err(NESTING_DEPTH, self.s));
        }
        Ok(())
    }

    fn atom(&mut self, text: &str, len: usize) {
        let at = self.out.len();
        self.out.push_str(text);
        self.push_piece(1, at, Shape::ATOM);
        self.i += len;
    }

    fn push_piece(&mut self, value: u64, at: usize, shape: Shape) {
        let frame = self.frames.last_mut().expect("a frame is always open");
        frame.items.push(value);
        frame.last_at = at;
        frame.last_repeated = false;
        frame.push_shape(shape);
    }

    /// A class in the current flags: `(?i:…)` around it when case folding is on.
    fn piece(&mut self, text: &str) {
        self.shaped_piece(text, Shape::CLASS);
    }

    fn shaped_piece(&mut self, text: &str, shape: Shape) {
        let at = self.out.len();
        if self.flags.fold {
            self.out.push_str("(?i:");
            self.out.push_str(text);
            self.out.push(')');
        } else {
            self.out.push_str(text);
        }
        self.push_piece(1, at, shape);
    }

    fn literal(&mut self, c: char) {
        let text = char_text(c);
        let shape = Shape {
            literal: Some((self.flags.fold, 1, 1)),
            ..Shape::ATOM
        };
        self.shaped_piece(&text, shape);
    }

    fn open(&mut self, name: Option<&str>) {
        let at = self.out.len();
        match name {
            None => self.out.push('('),
            // Rust refuses names starting with a digit and repeated names, which Go accepts;
            // such a group stays a plain capture, keeping its number.
            Some(name)
                if !name.starts_with(|c: char| c.is_ascii_digit())
                    && self.names.insert(name.to_string()) =>
            {
                self.out.push_str("(?P<");
                self.out.push_str(name);
                self.out.push('>');
            }
            Some(_) => self.out.push('('),
        }
        let mut frame = Frame::new(self.flags, at);
        frame.capture = true;
        self.frames.push(frame);
    }

    fn close(&mut self) -> std::result::Result<(), GoRegexError> {
        if self.frames.len() < 2 {
            return Err(Self::err(UNEXPECTED_PAREN, self.s));
        }
        let frame = self.frames.pop().expect("checked above");
        self.flags = frame.saved;
        self.out.push(')');
        let shape = frame.shape();
        self.check_height(shape.alone())?;
        self.push_piece(frame.value(), frame.open_at, shape);
        Ok(())
    }

    /// `(?…`: a named capture, a non-capturing group, or a change of flags.
    fn perl_flags(&mut self) -> std::result::Result<(), GoRegexError> {
        let rest = &self.s[self.i..];
        let b = rest.as_bytes();
        let with_p = b.len() > 4 && b[2] == b'P' && b[3] == b'<';
        let bare = b.len() > 3 && b[2] == b'<';
        if with_p || bare {
            let name_start = if with_p { 4 } else { 3 };
            let Some(end) = rest.find('>') else {
                return Err(Self::err(INVALID_NAMED_CAPTURE, rest));
            };
            let name = &rest[name_start..end];
            if name.is_empty() || !name.bytes().all(|c| c == b'_' || c.is_ascii_alphanumeric()) {
                return Err(Self::err(INVALID_NAMED_CAPTURE, &rest[..end + 1]));
            }
            self.open(Some(name));
            self.i += end + 1;
            return Ok(());
        }
        let mut t = self.i + 2;
        let mut flags = self.flags;
        let mut negated = false;
        let mut saw_flag = false;
        while let Some((c, next)) = self.rune(t) {
            t = next;
            match c {
                'i' | 'm' | 's' | 'U' => {
                    let on = !negated;
                    match c {
                        'i' => flags.fold = on,
                        'm' => flags.one_line = !on,
                        's' => flags.dot_nl = on,
                        _ => flags.non_greedy = on,
                    }
                    saw_flag = true;
                }
                '-' if !negated => {
                    negated = true;
                    saw_flag = false;
                }
                ':' | ')' if !negated || saw_flag => {
                    if c == ':' {
                        let at = self.out.len();
                        self.out.push_str("(?:");
                        self.frames.push(Frame::new(self.flags, at));
                    }
                    self.flags = flags;
                    self.i = t;
                    return Ok(());
                }
                _ => break,
            }
        }
        Err(Self::err(INVALID_PERL_OP, &self.s[self.i..t]))
    }

    /// `{n}`, `{n,}` or `{n,m}` at `at`: `Some((min, max, end))` where a count too large to
    /// read is `None` and `max` is `None` for `{n,}`; `None` when it is not a repetition.
    #[allow(clippy::type_complexity)]
    fn counted(&self, at: usize) -> Option<(Option<u64>, Option<Option<u64>>, usize)> {
        let b = self.s.as_bytes();
        let (min, mut j) = go_int(b, at + 1)?;
        let max;
        match b.get(j)? {
            b',' => {
                j += 1;
                if *b.get(j)? == b'}' {
                    max = None;
                } else {
                    let (m, next) = go_int(b, j)?;
                    max = Some(m);
                    j = next;
                }
            }
            _ => max = Some(min),
        }
        (*b.get(j)? == b'}').then_some((min, max, j + 1))
    }

    fn repeat(
        &mut self,
        rep: Rep,
        before: usize,
        mut after: usize,
        last_repeat: Option<usize>,
    ) -> std::result::Result<(), GoRegexError> {
        let mut non_greedy = self.flags.non_greedy;
        if self.byte(after) == Some(b'?') {
            after += 1;
            non_greedy = !non_greedy;
        }
        if let Some(last) = last_repeat {
            return Err(Self::err(INVALID_REPEAT_OP, &self.s[last..after]));
        }
        let frame = self.frames.last_mut().expect("a frame is always open");
        let (last_at, last_repeated) = (frame.last_at, frame.last_repeated);
        let Some(value) = frame.items.last_mut() else {
            return Err(Self::err(MISSING_REPEAT_ARGUMENT, &self.s[before..after]));
        };
        let text = match rep {
            Rep::Star => "*".to_string(),
            Rep::Plus => "+".to_string(),
            Rep::Quest => "?".to_string(),
            Rep::Count(min, max) => {
                // Go's `repeatIsValid`: along any path, the product of counts stays within
                // 1000; a `{…,0}` ends the path.
                if max == Some(0) {
                    *value = 1;
                } else {
                    let m = max.unwrap_or(min).max(1);
                    *value = value.saturating_mul(m);
                    if (min >= 2 || max.unwrap_or(0) >= 2) && *value > MAX_REPEAT {
                        return Err(Self::err(INVALID_REPEAT_SIZE, &self.s[before..after]));
                    }
                }
                match max {
                    Some(m) if m == min => format!("{{{min}}}"),
                    Some(m) => format!("{{{min},{m}}}"),
                    None => format!("{{{min},}}"),
                }
            }
        };
        if last_repeated {
            self.out.insert_str(last_at, "(?:");
            self.out.push(')');
        }
        self.out.push_str(&text);
        if non_greedy {
            self.out.push('?');
        }
        let frame = self.frames.last_mut().expect("a frame is always open");
        frame.last_repeated = true;
        // The repetition is a node over the last piece; of a run of literals, over the piece
        // added last.
        let last = frame.shapes.last_mut().expect("a piece to repeat");
        let h = match last.literal {
            Some((fold, run, k)) if run > k => {
                last.literal = Some((fold, run - k, run - k));
                frame.shapes.push(Shape {
                    h: 2,
                    ..Shape::ATOM
                });
                2
            }
            _ => {
                *last = Shape {
                    h: 1 + last.alone(),
                    ..Shape::ATOM
                };
                last.h
            }
        };
        self.check_height(h)?;
        self.i = after;
        Ok(())
    }

    fn escape(&mut self) -> std::result::Result<(), GoRegexError> {
        let at = self.i;
        let simple = match self.byte(at + 1) {
            Some(b'A') => Some(r"\A"),
            Some(b'b') => Some(r"(?-u:\b)"),
            Some(b'B') => Some(r"(?-u:\B)"),
            Some(b'z') => Some(r"\z"),
            Some(b'C') => return Err(Self::err(INVALID_ESCAPE, &self.s[at..at + 2])),
            _ => None,
        };
        if let Some(text) = simple {
            self.atom(text, 2);
            return Ok(());
        }
        if self.byte(at + 1) == Some(b'Q') {
            let body = &self.s[at + 2..];
            let (literal, end) = match body.find(r"\E") {
                Some(e) => (&body[..e], at + 2 + e + 2),
                None => (body, self.s.len()),
            };
            for c in literal.chars() {
                self.literal(c);
            }
            self.i = end;
            return Ok(());
        }
        if let Some((text, next)) = self.unicode_class(at)? {
            self.i = next;
            self.piece(&text);
            return Ok(());
        }
        if let Some((text, negated)) = perl_class(self.s.as_bytes(), at) {
            self.i = at + 2;
            let negation = if negated { "^" } else { "" };
            self.piece(&format!("[{negation}{text}]"));
            return Ok(());
        }
        let (c, next) = self.escaped_char(at)?;
        self.i = next;
        match c {
            Some(c) => self.literal(c),
            None => self.piece(NOTHING),
        }
        Ok(())
    }

    /// `\pN`, `\p{Name}`, `\PN`, `\P{Name}`, `\p{^Name}` at `at`, as Rust class text.
    fn unicode_class(
        &self,
        at: usize,
    ) -> std::result::Result<Option<(String, usize)>, GoRegexError> {
        let negated = match (self.byte(at), self.byte(at + 1)) {
            (Some(b'\\'), Some(b'p')) => false,
            (Some(b'\\'), Some(b'P')) => true,
            _ => return Ok(None),
        };
        let (seq_end, name) = match self.rune(at + 2) {
            None => (at + 2, ""),
            Some(('{', _)) => {
                let Some(end) = self.s[at..].find('}') else {
                    return Err(Self::err(INVALID_CHAR_RANGE, &self.s[at..]));
                };
                (at + end + 1, &self.s[at + 3..at + end])
            }
            Some((_, next)) => (next, &self.s[at + 2..next]),
        };
        let seq = &self.s[at..seq_end];
        let (negated, name) = match name.strip_prefix('^') {
            Some(n) => (!negated, n),
            None => (negated, name),
        };
        let text = format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' });
        let known = !name.is_empty()
            && name.bytes().all(|c| c.is_ascii_alphabetic() || c == b'_')
            && regex::Regex::new(&text).is_ok();
        if !known {
            return Err(Self::err(INVALID_CHAR_RANGE, seq));
        }
        Ok(Some((text, seq_end)))
    }

    /// An escape standing for one character (Go's `parseEscape`), from the backslash at `at`.
    /// `None` for a code point Rust cannot hold (a surrogate), which no string contains.
    fn escaped_char(&self, at: usize) -> std::result::Result<(Option<char>, usize), GoRegexError> {
        let Some((c, mut t)) = self.rune(at + 1) else {
            return Err(Self::err(TRAILING_BACKSLASH, ""));
        };
        let bad = |t: usize| Err(Self::err(INVALID_ESCAPE, &self.s[at..t]));
        let octal = |b: Option<u8>| b.is_some_and(|b| (b'0'..=b'7').contains(&b));
        match c {
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((Some(c), t)),
            '1'..='7' if !octal(self.byte(t)) => bad(t),
            '0'..='7' => {
                let mut r = c as u32 - '0' as u32;
                for _ in 1..3 {
                    if !octal(self.byte(t)) {
                        break;
                    }
                    r = r * 8 + (self.s.as_bytes()[t] - b'0') as u32;
                    t += 1;
                }
                Ok((char::from_u32(r), t))
            }
            'x' => {
                let Some((c, next)) = self.rune(t) else {
                    return bad(t);
                };
                t = next;
                if c == '{' {
                    let mut r: u32 = 0;
                    let mut digits = 0;
                    loop {
                        let Some((c, next)) = self.rune(t) else {
                            return bad(t);
                        };
                        t = next;
                        if c == '}' {
                            break;
                        }
                        let Some(v) = c.to_digit(16) else {
                            return bad(t);
                        };
                        r = r * 16 + v;
                        if r > 0x10FFFF {
                            return bad(t);
                        }
                        digits += 1;
                    }
                    if digits == 0 {
                        return bad(t);
                    }
                    return Ok((char::from_u32(r), t));
                }
                let x = c.to_digit(16);
                let Some((c2, next)) = self.rune(t) else {
                    return bad(t);
                };
                t = next;
                match (x, c2.to_digit(16)) {
                    (Some(x), Some(y)) => Ok((char::from_u32(x * 16 + y), t)),
                    _ => bad(t),
                }
            }
            'a' => Ok((Some('\x07'), t)),
            'f' => Ok((Some('\x0C'), t)),
            'n' => Ok((Some('\n'), t)),
            'r' => Ok((Some('\r'), t)),
            't' => Ok((Some('\t'), t)),
            'v' => Ok((Some('\x0B'), t)),
            _ => bad(t),
        }
    }

    /// A bracketed class (Go's `parseClass`), written as a Rust class of code points.
    fn class(&mut self) -> std::result::Result<(), GoRegexError> {
        let start = self.i;
        let b = self.s.as_bytes();
        let mut t = start + 1;
        let mut text = String::from("[");
        if b.get(t) == Some(&b'^') {
            text.push('^');
            t += 1;
        }
        let mut items = 0;
        let mut first = true;
        while first || b.get(t) != Some(&b']') {
            first = false;
            if b.len() > t + 2
                && b[t] == b'['
                && b[t + 1] == b':'
                && let Some(end) = self.s[t + 2..].find(":]")
            {
                let name = &self.s[t..t + 2 + end + 2];
                let inner = &name[2..name.len() - 2];
                if !POSIX_CLASSES.contains(&inner.strip_prefix('^').unwrap_or(inner)) {
                    return Err(Self::err(INVALID_CHAR_RANGE, name));
                }
                text.push_str(name);
                items += 1;
                t += name.len();
                continue;
            }
            if let Some((class, next)) = self.unicode_class(t)? {
                text.push_str(&class);
                items += 1;
                t = next;
                continue;
            }
            if let Some((class, negated)) = perl_class(b, t) {
                if negated {
                    text.push_str(&format!("[^{class}]"));
                } else {
                    text.push_str(class);
                }
                items += 1;
                t += 2;
                continue;
            }
            let range_start = t;
            let (lo, next) = self.class_char(t, start)?;
            t = next;
            let mut hi = lo;
            if b.len() >= t + 2 && b[t] == b'-' && b[t + 1] != b']' {
                let (h, next) = self.class_char(t + 1, start)?;
                t = next;
                hi = h;
                if hi < lo {
                    return Err(Self::err(INVALID_CHAR_RANGE, &self.s[range_start..t]));
                }
            }
            // Surrogates are not characters in Rust (nor in any string): keep the rest.
            let lo = if (0xD800..=0xDFFF).contains(&lo) {
                0xE000
            } else {
                lo
            };
            let hi = if (0xD800..=0xDFFF).contains(&hi) {
                0xD7FF
            } else {
                hi
            };
            if lo <= hi {
                let (lo, hi) = (char::from_u32(lo), char::from_u32(hi));
                let (Some(lo), Some(hi)) = (lo, hi) else {
                    unreachable!("surrogates were clamped")
                };
                text.push_str(&char_text(lo));
                if hi != lo {
                    text.push('-');
                    text.push_str(&char_text(hi));
                }
                items += 1;
            }
        }
        self.i = t + 1;
        if items == 0 {
            // Only surrogates: the class holds nothing a string can contain.
            let negated = text == "[^";
            self.piece(if negated {
                r"[\x{0}-\x{10FFFF}]"
            } else {
                NOTHING
            });
            return Ok(());
        }
        text.push(']');
        self.piece(&text);
        Ok(())
    }

    /// One character of a class (a code point, possibly a surrogate), or Go's missing-bracket
    /// error quoting the class from its `[`.
    fn class_char(
        &self,
        t: usize,
        class_start: usize,
    ) -> std::result::Result<(u32, usize), GoRegexError> {
        if t >= self.s.len() {
            return Err(Self::err(MISSING_BRACKET, &self.s[class_start..]));
        }
        if self.s.as_bytes()[t] == b'\\' {
            return self.escaped_code_point(t);
        }
        let (c, next) = self.rune(t).expect("inside the string");
        Ok((c as u32, next))
    }

    fn escaped_code_point(&self, at: usize) -> std::result::Result<(u32, usize), GoRegexError> {
        let (c, next) = self.escaped_char(at)?;
        match c {
            Some(c) => Ok((c as u32, next)),
            // A surrogate: recover its value from the text for range checks.
            None => Ok((surrogate_value(&self.s[at..next]), next)),
        }
    }
}

/// The value of an escape that named a surrogate (`\x{D800}`, or octal/hex forms).
fn surrogate_value(escape: &str) -> u32 {
    let digits: String = escape
        .trim_start_matches("\\x")
        .trim_matches(|c| c == '{' || c == '}')
        .to_string();
    u32::from_str_radix(&digits, 16).unwrap_or(0xD800)
}

/// Go's `parseInt` for repetition counts: decimal, no leading zeros; a number of ten digits or
/// more reads as too large (`None`). `None` overall when there are no digits.
fn go_int(b: &[u8], at: usize) -> Option<(Option<u64>, usize)> {
    let digits = b[at.min(b.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits == 0 || (digits >= 2 && b[at] == b'0') {
        return None;
    }
    let mut n: u64 = 0;
    let mut too_big = false;
    for &c in &b[at..at + digits] {
        if n >= 100_000_000 {
            too_big = true;
            break;
        }
        n = n * 10 + (c - b'0') as u64;
    }
    Some(((!too_big).then_some(n), at + digits))
}

/// `\d \D \s \S \w \W` at `at`: the ASCII members as class-body text, and whether negated.
fn perl_class(b: &[u8], at: usize) -> Option<(&'static str, bool)> {
    if b.get(at) != Some(&b'\\') {
        return None;
    }
    let body = match b.get(at + 1)?.to_ascii_lowercase() {
        b'd' => "0-9",
        b's' => r"\x{9}\x{A}\x{C}\x{D}\x{20}",
        b'w' => "0-9A-Za-z_",
        _ => return None,
    };
    Some((body, b[at + 1].is_ascii_uppercase()))
}

/// A character as Rust pattern text: letters and digits as themselves, anything else escaped.
fn char_text(c: char) -> String {
    if c.is_ascii_alphanumeric() {
        c.to_string()
    } else {
        format!("\\x{{{:X}}}", c as u32)
    }
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
            ("x{01}", "x{01}", true),
            ("x{01}", "x", false),
            ("x{0}", "", true),
            (r"\d+", "123", true),
            (r"\d+", "١٢٣", false),
            (r"\w+", "héllo", false),
            (r"\w+", "hello_1", true),
            (r"\s", "\u{a0}", false),
            (r"\s", "\t", true),
            (r"\s", "\x0B", false),
            (r"\Qa.b\E", "a.b", true),
            (r"\Qa.b\E", "axb", false),
            (r"\Qa.b", "a.b", true),
            (".*", "a\nb", true),
            ("(?-s:.*)", "a\nb", false),
            ("(?-s).", "\n", false),
            ("foo", "foobar", false),
            ("foo|bar", "bar", true),
            (r"[\d]+", "42", true),
            (r"[^\d]", "x", true),
            (r"[\D]", "5", false),
            ("[[:alpha:]]+", "abc", true),
            ("[[:^alpha:]]", "1", true),
            ("[a&&b]", "&", true),
            ("[--/]", ".", true),
            ("[a[b]", "[", true),
            ("[]a]", "]", true),
            ("[^]a]", "]", false),
            ("[a-]", "-", true),
            (r"\bfoo\b", "foo", true),
            ("(?i)FOO", "foo", true),
            ("a(?i)b", "aB", true),
            ("a(?i)b", "AB", false),
            ("(?i:a)b", "AB", false),
            ("((?i)a)b", "AB", false),
            ("(?i)[a-c]", "B", true),
            ("(?i)[^a]", "A", false),
            (r"\012", "\n", true),
            (r"\0", "\0", true),
            (r"\08", "\u{0}8", true),
            (r"\x41\x{42}", "AB", true),
            (r"\_", "_", true),
            (r"a\.b", "a.b", true),
            (r"\pL+", "héllo", true),
            (r"\p{Greek}", "α", true),
            (r"\P{Greek}", "α", false),
            (r"\p{^Greek}", "a", true),
            (r"[\p{Lu}\d]+", "A1", true),
            ("(?U)a+", "aa", true),
            ("(?P<x>a)(?P<x>b)", "ab", true),
            ("(?P<1a>x)", "x", true),
            ("(?<n>x)", "x", true),
            ("^*a", "a", true),
            ("(?m)^a$", "a", true),
            ("a|", "", true),
            ("a*(?i)*", "aaa", true),
            ("a+(?i)?", "", true),
            (r"a{2}\Q\E{2}", "aaaa", true),
            ("()", "", true),
            (r"[\x{D800}-\x{E000}]", "\u{E000}", true),
            (r"\x{D800}|b", "b", true),
        ];
        for &(re, s, want) in table {
            assert_eq!(m(re, s), want, "{re:?} on {s:?}");
        }
    }

    #[test]
    fn go_errors_table() {
        // (pattern, Go's error)
        let table: &[(&str, &str)] = &[
            ("(", "missing closing ): `(`"),
            ("a)", "unexpected ): `a)`"),
            ("(a))b", "unexpected ): `(a))b`"),
            ("[c", "missing closing ]: `[c`"),
            ("[]b", "missing closing ]: `[]b`"),
            ("a[b-", "missing closing ]: `[b-`"),
            ("\\", "trailing backslash at end of expression: ``"),
            ("a**", "invalid nested repetition operator: `**`"),
            ("a*?+", "invalid nested repetition operator: `*?+`"),
            ("a{2}{3}", "invalid nested repetition operator: `{2}{3}`"),
            ("*", "missing argument to repetition operator: `*`"),
            ("a|*", "missing argument to repetition operator: `*`"),
            ("(*)", "missing argument to repetition operator: `*`"),
            ("(?i)*?", "missing argument to repetition operator: `*?`"),
            (r"\Q\E*", "missing argument to repetition operator: `*`"),
            ("{2}", "missing argument to repetition operator: `{2}`"),
            ("x{1001}", "invalid repeat count: `{1001}`"),
            ("x{2,1}", "invalid repeat count: `{2,1}`"),
            ("x{999999999}", "invalid repeat count: `{999999999}`"),
            ("(x{100}){11}", "invalid repeat count: `{11}`"),
            ("(x{100}){10}?y{1001}", "invalid repeat count: `{1001}`"),
            (r"\C", "invalid escape sequence: `\\C`"),
            (r"\1", "invalid escape sequence: `\\1`"),
            (r"\e", "invalid escape sequence: `\\e`"),
            (r"\Z", "invalid escape sequence: `\\Z`"),
            (r"\x{zz}", "invalid escape sequence: `\\x{z`"),
            (r"\x{110000}", "invalid escape sequence: `\\x{110000`"),
            (r"\xZ1", "invalid escape sequence: `\\xZ1`"),
            (r"\x", "invalid escape sequence: `\\x`"),
            (r"\é", "invalid escape sequence: `\\é`"),
            (r"[\b]", "invalid escape sequence: `\\b`"),
            (r"[\Q]", "invalid escape sequence: `\\Q`"),
            ("[a--b]", "invalid character class range: `a--`"),
            ("[z-a]", "invalid character class range: `z-a`"),
            ("[[:foo:]]", "invalid character class range: `[:foo:]`"),
            (r"\p{Foo}", "invalid character class range: `\\p{Foo}`"),
            (r"\pX", "invalid character class range: `\\pX`"),
            (r"\p", "invalid character class range: `\\p`"),
            (r"\p{Greek", "invalid character class range: `\\p{Greek`"),
            ("(?P<>a)", "invalid named capture: `(?P<>`"),
            ("(?P<a-b>a)", "invalid named capture: `(?P<a-b>`"),
            ("(?P<name", "invalid named capture: `(?P<name`"),
            ("(?<=a)b", "invalid named capture: `(?<=a)b`"),
            ("(?P=n)", "invalid or unsupported Perl syntax: `(?P`"),
            ("(?x)a", "invalid or unsupported Perl syntax: `(?x`"),
            ("(?i", "invalid or unsupported Perl syntax: `(?i`"),
            ("(?", "invalid or unsupported Perl syntax: `(?`"),
            ("(?-)", "invalid or unsupported Perl syntax: `(?-)`"),
            ("(?i-)", "invalid or unsupported Perl syntax: `(?i-)`"),
            ("(?--i)", "invalid or unsupported Perl syntax: `(?--`"),
            ("(?!a)", "invalid or unsupported Perl syntax: `(?!`"),
        ];
        for &(re, want) in table {
            let got = translate(re).map(|_| ()).unwrap_err().to_string();
            assert_eq!(got, format!("error parsing regexp: {want}"), "{re:?}");
        }
    }

    #[test]
    fn wrapped_patterns_quote_the_wrapper() {
        let err = compile_wrapped("abc(def").unwrap_err();
        let Error::InvalidRegex { reason, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            reason,
            "error parsing regexp: missing closing ): `^(?s:abc(def)$`"
        );
        // A pattern that closes the wrapper's group is Go text like any other.
        let re = compile_wrapped("a)|(b").unwrap();
        assert!(re.is_match("a and more"));
        assert!(re.is_match("more, then b"));
        assert!(!re.is_match("c"));
        let re = compile_wrapped("(?i)a.b").unwrap();
        assert!(re.is_match("A\nB"));
        assert!(!re.is_match("xA\nB"));
    }

    /// `Regexp.Expand`'s reading of templates (checked against the Debian Prometheus's
    /// `label_replace`).
    #[test]
    fn expands_templates_as_go() {
        let re = compile_wrapped("(?P<x>a)(b)?(c)").unwrap();
        let caps = re.captures("ac").unwrap();
        for (template, want) in [
            ("$1-$3", "a-c"),
            ("${1}x", "ax"),
            ("$1x", ""),
            ("$x", "a"),
            ("${x}1", "a1"),
            ("$x1", ""),
            ("$2", ""),
            ("$9", ""),
            ("$01", ""),
            ("$0", "ac"),
            ("$$1", "$1"),
            ("$", "$"),
            ("${", "${"),
            ("${1", "${1"),
            ("$-1", "$-1"),
            ("$é", ""),
            ("$99999999999999999999", ""),
            ("a$", "a$"),
        ] {
            let mut out = String::new();
            expand(&caps, template, &mut out);
            assert_eq!(out, want, "{template}");
        }
    }

    /// Go refuses a pattern whose tree is over 1000 high. Edges checked against the Debian
    /// Prometheus (`label_replace`, which compiles `^(?:…)$`, one level more, like ours).
    #[test]
    fn go_refuses_trees_over_1000_high() {
        let nested = |open: &str, inner: &str, close: &str, n: usize| {
            format!("{}{inner}{}", open.repeat(n), close.repeat(n))
        };
        for (open, inner, close, n) in [
            ("(", "a", ")", 998),
            ("(?:", "a", ")*", 998),
            ("(x", "", ")", 499),
            ("(ab*", "", ")", 498),
            ("((?:ab)*", "", ")", 499),
            ("(a|", "b", ")", 499),
        ] {
            let taken = nested(open, inner, close, n);
            let refused = nested(open, inner, close, n + 1);
            assert!(compile_wrapped(&taken).is_ok(), "{taken:.40}");
            assert!(compile_anchored(&taken).is_ok(), "{taken:.40}");
            let Err(Error::InvalidRegex { reason, .. }) = compile_wrapped(&refused) else {
                panic!("{refused:.40} is taken");
            };
            assert_eq!(
                reason,
                format!("error parsing regexp: expression nests too deeply: `^(?s:{refused})$`")
            );
            // A matcher's pattern is parsed alone first, then wrapped: either may be too high.
            let Err(Error::InvalidRegex { reason, .. }) = compile_anchored(&refused) else {
                panic!("{refused:.40} is taken");
            };
            assert!(reason.starts_with("error parsing regexp: expression nests too deeply: `"));
        }
        // Alone, a pattern may be one level higher than wrapped.
        let alone = nested("(", "a", ")", 999);
        assert!(translate(&alone).is_ok());
        assert!(translate(&format!("({alone})")).is_err());
        // Groups that make no node nest without limit; one-character alternatives are a class.
        for pattern in [
            nested("(?:", "a", ")", 5000),
            nested("(?:z|", "a", ")", 5000),
        ] {
            assert!(compile_wrapped(&pattern).unwrap().is_match("a"));
        }
    }

    #[test]
    fn never_panics_and_accepts_what_it_translates() {
        // Pieces of Go syntax in random order: no panic, and every translation compiles.
        let pieces = [
            "a",
            "\\é",
            "[:",
            ":]",
            "\\p{",
            "\\pé",
            "(?P<",
            ">",
            "\\x{D800}",
            "\\x{",
            "\\x",
            "\\0",
            "[^",
            "(?-",
            "(?<",
            "{1000}",
            "{,",
            "ß",
            "\\E",
            "é",
            "(",
            ")",
            "(?i)",
            "(?i:",
            "(?P<n>",
            "|",
            "*",
            "+",
            "?",
            "{2}",
            "{1,3}",
            "{",
            "}",
            "[",
            "]",
            "^",
            "-",
            "\\",
            "\\d",
            "\\Q",
            "\\E",
            "\\x{41}",
            "\\p{L}",
            "[:alpha:]",
            ".",
            "$",
            "\\b",
            "0",
            ",",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut pattern = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = seed % 10;
            for k in 0..len {
                let pick = (seed >> (k * 5)) as usize % pieces.len();
                pattern.push_str(pieces[pick]);
            }
            // What Go accepts compiles, but for Rust's own size limit (documented).
            if let Ok(rust) = translate(&pattern)
                && let Err(e) = build(&pattern, &format!(r"\A(?:{rust})\z"))
            {
                assert!(
                    e.to_string().contains("size limit"),
                    "{pattern:?} → {rust:?}: {e}"
                );
            }
        }
    }
}
