//! The simulator's HTTP/1.1 layer: reads one request, writes answers in pieces cut where
//! the test says.
//!
//! Hand-written on `httparse` rather than on hyper: the tests need every byte of the
//! answer under control (which write a byte goes out in, where a stream is cut mid-event),
//! and a server framework buffers and frames its writes its own way.

use std::io;

use rand::Rng;
use rand::rngs::StdRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Split;

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// One parsed request.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request; `Ok(None)` when the peer closed before sending one. A request
/// the simulator cannot read is an error (the connection is then dropped).
pub(crate) async fn read_request<R: AsyncReadExt + Unpin>(
    reader: &mut R,
) -> io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(1024);
    let head_len = loop {
        let mut chunk = [0u8; 4096];
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let status = parsed
        .parse(&buf[..head_len])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    if status.is_partial() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "partial request head",
        ));
    }
    let method = parsed.method.unwrap_or("").to_string();
    let target = parsed.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (
            p.to_string(),
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect(),
        ),
        None => (target.to_string(), Vec::new()),
    };
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    if headers.iter().any(|(n, _)| n == "transfer-encoding") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "chunked requests are not expected",
        ));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| {
            v.trim()
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))
        })
        .transpose()?
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request body too large",
        ));
    }
    let mut body = buf[head_len..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Some(Request {
        method,
        path,
        query,
        headers,
        body,
    }))
}

/// A complete answer with a body of known length.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(status: u16, body: String) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into_bytes(),
        }
    }

    pub(crate) fn error(status: u16, message: &str) -> Self {
        Self::json(
            status,
            serde_json::json!({ "code": null, "message": message, "details": {} }).to_string(),
        )
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut out = head(self.status, &self.headers);
        out.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                self.body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.body);
        out
    }
}

pub(crate) fn head(status: u16, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Cuts data into the pieces a [`Split`] asks for, one at a time (a 5 MB body cut byte
/// by byte is not first made into a list of 5 million slices).
struct Pieces<'a, 'b> {
    rest: &'a [u8],
    split: &'b Split,
    rng: &'b mut StdRng,
}

impl<'a> Iterator for Pieces<'a, '_> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let n = match self.split {
            Split::Whole => self.rest.len(),
            Split::Every(n) => *n,
            Split::Random { max } => self.rng.random_range(1..=(*max).max(1)),
        };
        let (piece, rest) = self.rest.split_at(n.max(1).min(self.rest.len()));
        self.rest = rest;
        Some(piece)
    }
}

/// Writes raw bytes, one write (and flush) per piece.
pub(crate) async fn write_raw<W: AsyncWriteExt + Unpin>(
    writer: &mut W,
    data: &[u8],
    split: &Split,
    rng: &mut StdRng,
) -> io::Result<()> {
    for piece in (Pieces {
        rest: data,
        split,
        rng,
    }) {
        writer.write_all(piece).await?;
        writer.flush().await?;
    }
    Ok(())
}

/// Writes `data` as HTTP chunks, one chunk and one write per piece. With `budget`, stops
/// (returning `false`) once that many more payload bytes went out, mid-piece if need be:
/// the caller then drops the connection without ending the body.
pub(crate) async fn write_chunked<W: AsyncWriteExt + Unpin>(
    writer: &mut W,
    data: &[u8],
    split: &Split,
    rng: &mut StdRng,
    budget: &mut Option<usize>,
) -> io::Result<bool> {
    let mut frame = Vec::new();
    let pieces = Pieces {
        rest: data,
        split,
        rng,
    };
    for piece in pieces {
        let piece = match budget {
            Some(left) if *left < piece.len() => &piece[..*left],
            _ => piece,
        };
        if !piece.is_empty() {
            frame.clear();
            use std::io::Write as _;
            write!(frame, "{:x}\r\n", piece.len())?;
            frame.extend_from_slice(piece);
            frame.extend_from_slice(b"\r\n");
            writer.write_all(&frame).await?;
            writer.flush().await?;
        }
        if let Some(left) = budget {
            *left -= piece.len();
            if *left == 0 {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
