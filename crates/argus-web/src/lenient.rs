//! Request targets as Go's HTTP server takes them.
//!
//! Go's `net/http` accepts a request target with raw `"`, `<`, `>` or `` ` `` in it, and keeps a
//! raw `#` as part of the query; the `http` crate under hyper refuses the first ones with an
//! empty `400 Bad Request` and cuts the query at `#`. Clients rely on Go's leniency: `curl
//! 'http://localhost:9090/api/v1/query?query=up{job="node"}'` sends the quotes as they are. So
//! every connection is read through [`LenientRequests`], which percent-encodes those bytes in
//! each request line before hyper parses it (`%22` decodes back to `"`, so handlers see what Go's
//! handlers see). It follows HTTP/1.1 framing to find each request line: headers up to the
//! empty line, then `Content-Length` bytes of body. After anything it does not follow (a chunked
//! body, a malformed length, an over-long line, the HTTP/2 preface) it passes the rest of the
//! connection through untouched, leaving hyper to judge it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request or header line followed (Go's server takes headers up to 1 MiB); past it
/// the connection is passed through.
const MAX_LINE: usize = 1024 * 1024;

/// Longest request target hyper takes (the `http` crate keeps offsets in 16 bits). A longer
/// `GET` of one of [`FORM_PATHS`] is handed on as a `POST` of its query as a form body, which
/// those endpoints answer with the same meaning.
const LONG_TARGET: usize = 60 * 1024;

/// The endpoints that take their parameters from a `POST` form as from a `GET` query.
const FORM_PATHS: [&[u8]; 7] = [
    b"/api/v1/query",
    b"/api/v1/query_range",
    b"/api/v1/series",
    b"/api/v1/labels",
    b"/api/v1/query_exemplars",
    b"/api/v1/format_query",
    b"/api/v1/parse_query",
];

/// The listener `argus server` serves on: a TCP listener whose connections are read through
/// [`LenientRequests`].
pub struct LenientListener(pub tokio::net::TcpListener);

impl axum::serve::Listener for LenientListener {
    type Io = LenientRequests<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (LenientRequests::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

#[derive(Debug, PartialEq)]
enum State {
    /// Before a request line (blank lines between requests are kept as they are).
    Line,
    /// Inside the header block, with what it said about the body so far.
    Headers { length: Option<u64>, chunked: bool },
    /// This many body bytes left.
    Body(u64),
    /// Everything from here on, as it is.
    Through,
}

/// A connection whose request lines are made acceptable to hyper (see the module docs).
pub struct LenientRequests<S> {
    inner: S,
    state: State,
    /// The line being gathered (request or header line).
    line: Vec<u8>,
    /// Bytes ready for the reader, from `done` on.
    ready: Vec<u8>,
    /// The query of a long `GET` being handed on as a `POST`, sent as its body once the
    /// headers end.
    moved_query: Option<Vec<u8>>,
    done: usize,
    raw: Box<[u8]>,
}

impl<S> LenientRequests<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            state: State::Line,
            line: Vec::new(),
            ready: Vec::new(),
            moved_query: None,
            done: 0,
            raw: vec![0; 64 * 1024].into_boxed_slice(),
        }
    }

    /// Runs newly read bytes through the framing, appending what the reader gets to `ready`.
    fn process(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                State::Through => {
                    self.ready.extend_from_slice(bytes);
                    return;
                }
                State::Body(left) => {
                    let n = left.min(bytes.len() as u64) as usize;
                    self.ready.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    self.state = if left == n as u64 {
                        State::Line
                    } else {
                        State::Body(left - n as u64)
                    };
                }
                State::Line | State::Headers { .. } => {
                    let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(bytes);
                        if self.line.len() > MAX_LINE {
                            self.ready.append(&mut self.line);
                            self.state = State::Through;
                        }
                        return;
                    };
                    self.line.extend_from_slice(&bytes[..=end]);
                    bytes = &bytes[end + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.end_line(&line);
                }
            }
        }
    }

    /// A whole line (with its line ending) in the request line or header states.
    fn end_line(&mut self, line: &[u8]) {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        match self.state {
            State::Line => {
                if content.is_empty() {
                    self.ready.extend_from_slice(line);
                } else if content.starts_with(b"PRI * HTTP/2") {
                    self.ready.extend_from_slice(line);
                    self.state = State::Through;
                } else {
                    let mut encoded = Vec::new();
                    encode_request_line(line, &mut encoded);
                    match long_get_as_post(&encoded) {
                        Some((post, query)) => {
                            self.ready.extend_from_slice(&post);
                            self.moved_query = Some(query);
                        }
                        None => self.ready.extend_from_slice(&encoded),
                    }
                    self.state = State::Headers {
                        length: None,
                        chunked: false,
                    };
                }
            }
            State::Headers {
                mut length,
                mut chunked,
            } => {
                if content.is_empty()
                    && let Some(query) = self.moved_query.take()
                {
                    self.ready.extend_from_slice(
                        format!(
                            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                            query.len()
                        )
                        .as_bytes(),
                    );
                    self.ready.extend_from_slice(line);
                    self.ready.extend_from_slice(&query);
                    // A GET that also had a body: hyper refuses the two lengths.
                    self.state = if chunked || length.is_some_and(|n| n > 0) {
                        State::Through
                    } else {
                        State::Line
                    };
                    return;
                }
                // The moved query's own headers replace a GET's empty body's.
                let header_name = content.split(|&b| b == b':').next().unwrap_or_default();
                let replaced = self.moved_query.is_some()
                    && (header_name.eq_ignore_ascii_case(b"content-type")
                        || header_name.eq_ignore_ascii_case(b"content-length")
                            && String::from_utf8_lossy(&content[header_name.len() + 1..]).trim()
                                == "0");
                if !replaced {
                    self.ready.extend_from_slice(line);
                }
                if content.is_empty() {
                    self.state = match (chunked, length) {
                        (true, _) => State::Through,
                        (false, Some(n)) if n > 0 => State::Body(n),
                        _ => State::Line,
                    };
                    return;
                }
                let Some(colon) = content.iter().position(|&b| b == b':') else {
                    return;
                };
                let name = &content[..colon];
                let value = String::from_utf8_lossy(&content[colon + 1..]);
                let value = value.trim();
                if name.eq_ignore_ascii_case(b"content-length") {
                    match value.parse::<u64>() {
                        Ok(n) if length.is_none_or(|l| l == n) => length = Some(n),
                        // Two lengths, or one that is not a number: hyper refuses the request.
                        _ => {
                            self.state = State::Through;
                            return;
                        }
                    }
                } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                    chunked = true;
                }
                self.state = State::Headers { length, chunked };
            }
            State::Body(_) | State::Through => unreachable!("lines are gathered in line states"),
        }
    }
}

/// A request line of a `GET` of one of [`FORM_PATHS`] whose target is too long for hyper, as
/// a `POST` of the target's path, with the query to send as the body.
fn long_get_as_post(line: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let rest = line.strip_prefix(b"GET ")?;
    let end = rest.iter().position(|&b| b == b' ')?;
    let target = &rest[..end];
    if target.len() <= LONG_TARGET {
        return None;
    }
    let question = target.iter().position(|&b| b == b'?')?;
    if !FORM_PATHS.contains(&&target[..question]) {
        return None;
    }
    let mut post = b"POST ".to_vec();
    post.extend_from_slice(&target[..question]);
    post.extend_from_slice(&rest[end..]);
    Some((post, target[question + 1..].to_vec()))
}

/// Copies a request line, percent-encoding the bytes of its target that Go's server takes as
/// they are and the `http` crate refuses (or, for `#`, cuts the query at).
fn encode_request_line(line: &[u8], out: &mut Vec<u8>) {
    let (Some(first), Some(last)) = (
        line.iter().position(|&b| b == b' '),
        line.iter().rposition(|&b| b == b' '),
    ) else {
        out.extend_from_slice(line);
        return;
    };
    if first >= last {
        out.extend_from_slice(line);
        return;
    }
    let target = &line[first + 1..last];
    let utf8 = std::str::from_utf8(target).is_ok();
    out.extend_from_slice(&line[..=first]);
    for &b in target {
        let keep = matches!(b, 0x21..=0x7E) && !matches!(b, b'"' | b'#' | b'<' | b'>' | b'`')
            || (b >= 0x80 && utf8);
        if keep {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out.extend_from_slice(&line[last..]);
}

impl<S: AsyncRead + Unpin> AsyncRead for LenientRequests<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.done < this.ready.len() {
                let n = (this.ready.len() - this.done).min(buf.remaining());
                buf.put_slice(&this.ready[this.done..this.done + n]);
                this.done += n;
                if this.done == this.ready.len() {
                    this.ready.clear();
                    this.done = 0;
                }
                return Poll::Ready(Ok(()));
            }
            // Body bytes, and connections passed through, go straight to the reader.
            let direct = match this.state {
                State::Through => Some(u64::MAX),
                State::Body(left) => Some(left),
                State::Line | State::Headers { .. } => None,
            };
            if let Some(limit) = direct
                && this.line.is_empty()
            {
                let n = if limit >= buf.remaining() as u64 {
                    let before = buf.filled().len();
                    std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                    buf.filled().len() - before
                } else {
                    let mut part = ReadBuf::new(buf.initialize_unfilled_to(limit as usize));
                    std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut part))?;
                    let n = part.filled().len();
                    buf.advance(n);
                    n
                };
                if let State::Body(left) = this.state
                    && n > 0
                {
                    this.state = if n as u64 == left {
                        State::Line
                    } else {
                        State::Body(left - n as u64)
                    };
                }
                return Poll::Ready(Ok(()));
            }
            let mut raw = ReadBuf::new(&mut this.raw);
            match Pin::new(&mut this.inner).poll_read(cx, &mut raw) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let n = raw.filled().len();
            if n == 0 {
                // End of input: a partial line goes out as it is, then the end.
                if this.line.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.ready.append(&mut this.line);
                continue;
            }
            let raw = std::mem::take(&mut this.raw);
            this.process(&raw[..n]);
            this.raw = raw;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LenientRequests<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the reader gets for `input` fed in pieces of `step` bytes.
    fn through(input: &[u8], step: usize) -> Vec<u8> {
        let mut l = LenientRequests::new(());
        for chunk in input.chunks(step) {
            l.process(chunk);
        }
        l.ready.append(&mut l.line);
        l.ready
    }

    #[test]
    fn request_lines_are_encoded_and_bodies_are_not() {
        let input = b"GET /api/v1/query?query=up{job=\"a#b\"} HTTP/1.1\r\nHost: x\r\n\r\n\
POST /api/v1/query HTTP/1.1\r\ncontent-length: 18\r\n\r\nquery=up{job=\"a\"}\n\
GET /x?q=<`>\"\x7f HTTP/1.1\r\n\r\n";
        let want = b"GET /api/v1/query?query=up{job=%22a%23b%22} HTTP/1.1\r\nHost: x\r\n\r\n\
POST /api/v1/query HTTP/1.1\r\ncontent-length: 18\r\n\r\nquery=up{job=\"a\"}\n\
GET /x?q=%3C%60%3E%22%7F HTTP/1.1\r\n\r\n";
        for step in [1, 2, 7, 1000] {
            assert_eq!(
                String::from_utf8_lossy(&through(input, step)),
                String::from_utf8_lossy(want),
                "step {step}"
            );
        }
    }

    /// Reading through the connection gives what processing gives, with bodies read
    /// straight into the reader's buffer (whole or cut at the body's end).
    #[tokio::test]
    async fn reads_match_processing() {
        use tokio::io::AsyncReadExt;
        let input = b"POST /w HTTP/1.1\r\nContent-Length: 9\r\n\r\n\"<body>\"\"\
GET /?q=\"a\" HTTP/1.1\r\n\r\nPOST /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\"\r\n";
        let want = through(input, input.len());
        for size in [1, 3, 7, 4096] {
            let mut reader = LenientRequests::new(&input[..]);
            let mut buf = vec![0u8; size];
            let mut out = Vec::new();
            loop {
                let n = reader.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&want),
                "reads of {size}"
            );
        }
        assert!(String::from_utf8_lossy(&want).contains("GET /?q=%22a%22 HTTP/1.1"));
    }

    #[test]
    fn utf8_is_kept_and_other_high_bytes_are_encoded() {
        assert_eq!(
            through("GET /l/é HTTP/1.1\r\n".as_bytes(), 3),
            "GET /l/é HTTP/1.1\r\n".as_bytes()
        );
        assert_eq!(
            through(b"GET /l/\xff HTTP/1.1\r\n", 3),
            b"GET /l/%FF HTTP/1.1\r\n".to_vec()
        );
    }

    #[test]
    fn long_gets_become_posts_of_their_query() {
        let query = format!("query={}&time=1", "x".repeat(LONG_TARGET));
        let input = format!(
            "GET /api/v1/query?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET /?q=1 HTTP/1.1\r\n\r\n"
        );
        let want = format!(
            "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{query}GET /?q=1 HTTP/1.1\r\n\r\n",
            query.len()
        );
        for step in [1000, 100_000] {
            assert_eq!(
                String::from_utf8_lossy(&through(input.as_bytes(), step)),
                want,
                "step {step}"
            );
        }
        // Short ones, long ones without a query and long ones elsewhere stay as they are.
        let short = b"GET /api/v1/query?query=1 HTTP/1.1\r\n\r\n";
        assert_eq!(through(short, 5), short.to_vec());
        let no_query = format!("GET /{} HTTP/1.1\r\n\r\n", "x".repeat(LONG_TARGET + 1));
        assert_eq!(through(no_query.as_bytes(), 4096), no_query.into_bytes());
        let elsewhere = format!("GET /api/v1/label/a/values?{query} HTTP/1.1\r\n\r\n");
        assert_eq!(through(elsewhere.as_bytes(), 4096), elsewhere.into_bytes());
    }

    #[test]
    fn what_is_not_followed_passes_through() {
        // A chunked body: the rest of the connection as it is.
        let chunked = b"POST /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n\"<\"<\"\r\n0\r\n\r\nGET /?\" HTTP/1.1\r\n\r\n";
        assert_eq!(through(chunked, 4), chunked.to_vec());
        // Two different lengths.
        let two = b"POST /w HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab\"";
        assert_eq!(through(two, 5), two.to_vec());
        // The HTTP/2 preface.
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\"\"";
        assert_eq!(through(h2, 3), h2.to_vec());
        // A line without spaces, and an over-long one.
        assert_eq!(through(b"GARBAGE\"\r\n", 2), b"GARBAGE\"\r\n".to_vec());
        let mut long = b"GET /?q=".to_vec();
        long.extend(std::iter::repeat_n(b'"', MAX_LINE + 10));
        assert_eq!(through(&long, 4096), long);
    }
}
