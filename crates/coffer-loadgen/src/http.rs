//! A minimal HTTP/1.1 client for one persistent connection, one request at a
//! time: the request is bytes built once for the whole run, and a response is
//! read into a buffer the connection keeps, its head parsed by `httparse` and
//! its body framed by `Content-Length`, chunked encoding or the end of the
//! connection, then dropped.
//!
//! It replaced hyper's client connection, which at the generator's highest
//! rates cost about a third of its CPU in user space (two tasks and a channel
//! per connection, a `Request` and a header map per request, the response's
//! header map and body frames): CPU that, on a small machine, the server under
//! test then lacked. The system calls are the same: one `write` and, usually,
//! one `read` per request.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Response heads longer than this are refused (hyper's default limit is ~400 KiB;
/// no server under test comes near either).
const MAX_HEAD: usize = 64 * 1024;
/// Headers parsed per response head.
const MAX_HEADERS: usize = 64;

/// Why an exchange failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Writing the request, or reading the response head, failed (the
    /// connection closed, or the head was not HTTP/1.x).
    Head,
    /// Reading the body failed, or the response was malformed after its head.
    Body,
}

/// One response, read whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    /// The server will not take another request on this connection.
    pub close: bool,
}

/// How the body of a response ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// A parsed response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    len: usize,
    status: u16,
    framing: Framing,
    close: bool,
}

/// Parses the response head at the start of `buf`: `Ok(None)` while incomplete.
fn parse_head(buf: &[u8], bodyless: bool) -> Result<Option<Head>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(Failure::Head),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Failure::Head),
    };
    let status = resp.code.ok_or(Failure::Head)?;
    // HTTP/1.0 closes unless it says otherwise; HTTP/1.1 keeps the connection
    // unless it says otherwise.
    let mut close = resp.version != Some(1);
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(Failure::Head)?;
            if length.is_some_and(|l| l != n) {
                return Err(Failure::Head);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only counts as the final coding.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
    }
    let framing = if bodyless || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        close = true;
        Framing::UntilClose
    };
    Ok(Some(Head {
        len,
        status,
        framing,
        close,
    }))
}

/// Where a chunked body stands, scanned from the start of a chunk's size line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunks {
    /// The body (trailers included) ends just before this offset.
    Complete(usize),
    /// More bytes are needed; scan again from this offset (a chunk's start).
    Partial(usize),
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

/// Scans chunks from `pos` (the start of a size line) in `buf`.
fn scan_chunks(buf: &[u8], mut pos: usize) -> Result<Chunks, Failure> {
    loop {
        let Some(eol) = find_crlf(buf, pos) else {
            return if buf.len() - pos > 1024 {
                Err(Failure::Body)
            } else {
                Ok(Chunks::Partial(pos))
            };
        };
        // chunk-size [ ; extensions ]
        let line = &buf[pos..eol];
        let digits = line
            .iter()
            .position(|b| !b.is_ascii_hexdigit())
            .unwrap_or(line.len());
        let rest = line[digits..].trim_ascii_start();
        if digits == 0 || digits > 15 || !(rest.is_empty() || rest.starts_with(b";")) {
            return Err(Failure::Body);
        }
        let size = line[..digits]
            .iter()
            .fold(0usize, |n, &b| n * 16 + usize::from(hex(b)));
        if size == 0 {
            // Trailer fields, then an empty line.
            let mut t = eol + 2;
            loop {
                match find_crlf(buf, t) {
                    Some(e) if e == t => return Ok(Chunks::Complete(e + 2)),
                    Some(e) => t = e + 2,
                    None if buf.len() - t > MAX_HEAD => return Err(Failure::Body),
                    None => return Ok(Chunks::Partial(pos)),
                }
            }
        }
        let end = (eol + 2).checked_add(size).ok_or(Failure::Body)?;
        if buf.len() < end.saturating_add(2) {
            return Ok(Chunks::Partial(pos));
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(Failure::Body);
        }
        pos = end + 2;
    }
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// One persistent connection and the bytes read from it.
pub(crate) struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    pub(crate) async fn open(host: &str, port: u16) -> std::io::Result<Self> {
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Reads what is there (at least one byte, or 0 at the end of the stream).
    async fn read_more(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// Sends `request` (a whole request without a body) and reads the whole
    /// response. `head_only` is for a `HEAD` request, whose response has no body.
    pub(crate) async fn exchange(
        &mut self,
        request: &[u8],
        head_only: bool,
    ) -> Result<Response, Failure> {
        // One request at a time: nothing may be left over from the last one.
        if !self.buf.is_empty() {
            return Err(Failure::Head);
        }
        self.stream
            .write_all(request)
            .await
            .map_err(|_| Failure::Head)?;
        let head = loop {
            match parse_head(&self.buf, head_only)? {
                // An interim response (100 Continue and the like): the final one follows.
                Some(h) if (100..200).contains(&h.status) && h.status != 101 => {
                    self.buf.drain(..h.len);
                }
                Some(h) => break h,
                None => {
                    if self.read_more().await.map_err(|_| Failure::Head)? == 0 {
                        return Err(Failure::Head);
                    }
                }
            }
        };
        let end = match head.framing {
            Framing::Length(n) => {
                let end = head.len.checked_add(n).ok_or(Failure::Body)?;
                while self.buf.len() < end {
                    if self.read_more().await.map_err(|_| Failure::Body)? == 0 {
                        return Err(Failure::Body);
                    }
                }
                end
            }
            Framing::Chunked => {
                let mut pos = head.len;
                loop {
                    match scan_chunks(&self.buf, pos)? {
                        Chunks::Complete(end) => break end,
                        Chunks::Partial(p) => pos = p,
                    }
                    if self.read_more().await.map_err(|_| Failure::Body)? == 0 {
                        return Err(Failure::Body);
                    }
                }
            }
            Framing::UntilClose => {
                while self.read_more().await.map_err(|_| Failure::Body)? > 0 {
                    if self.buf.len() > MAX_HEAD * 16 {
                        self.buf.drain(head.len..);
                    }
                }
                self.buf.len()
            }
        };
        if self.buf.len() > end {
            // Bytes nobody asked for: the server broke the protocol.
            return Err(Failure::Body);
        }
        self.buf.clear();
        Ok(Response {
            status: head.status,
            close: head.close,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Result<Option<Head>, Failure> {
        parse_head(s.as_bytes(), false)
    }

    #[test]
    fn heads_and_their_framing() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello").unwrap();
        assert_eq!(
            h,
            Some(Head {
                len: 39,
                status: 200,
                framing: Framing::Length(12),
                close: false
            })
        );
        let h = head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.close), (Framing::UntilClose, true));
        let h = head("HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status, h.framing, h.close),
            (503, Framing::Length(0), true)
        );
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.close);
        let h = head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.close);
        let h = head("HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.close), (Framing::Length(0), false));
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(0));
        assert_eq!(head("HTTP/1.1 200 OK\r\nContent-Len"), Ok(None));
        assert_eq!(head(""), Ok(None));
    }

    #[test]
    fn bad_heads_are_refused() {
        for bad in [
            "HTTP/2 200\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
        ] {
            assert_eq!(head(bad), Err(Failure::Head), "{bad:?}");
        }
        let long = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(head(&long), Err(Failure::Head));
    }

    #[test]
    fn chunked_bodies() {
        let body = b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nTrailer: x\r\n\r\n";
        assert_eq!(scan_chunks(body, 0), Ok(Chunks::Complete(body.len())));
        let body = b"A\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(scan_chunks(body, 0), Ok(Chunks::Complete(body.len())));
        // Every prefix is partial, and resumes at a chunk's start.
        let body = b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n";
        for cut in 0..body.len() {
            match scan_chunks(&body[..cut], 0) {
                Ok(Chunks::Partial(p)) => assert!([0, 10, 18].contains(&p), "{cut}: {p}"),
                other => panic!("{cut}: {other:?}"),
            }
        }
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"-1\r\n",
            b"5 x\r\nhello\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            assert_eq!(scan_chunks(bad, 0), Err(Failure::Body), "{bad:?}");
        }
    }
}
