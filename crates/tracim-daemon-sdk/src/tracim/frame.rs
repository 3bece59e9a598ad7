//! Cuts the bytes of an event stream into whole SSE events, and parses each with
//! `eventsource-stream`.
//!
//! Why a framer in front of the crate: `eventsource-stream` keeps one growing buffer,
//! re-scans it from the start on every read and copies what is left after every line.
//! Fed a 5 MB event one byte at a time, or 1,000 events in one read, that is quadratic
//! (minutes of CPU), and it has no size limit. The framer scans each new byte once
//! (memchr), holds at most one event, refuses an event past the limit, and hands the
//! crate one complete event at a time, which it then parses in linear time. Field
//! parsing (comments, `data` on several lines, the optional space, BOM) stays the crate's.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use eventsource_stream::{Event, EventStream};
use futures_core::Stream;

/// Splits a byte stream at blank lines (LF, CRLF or CR line ends, across reads).
pub(crate) struct Framer {
    buf: BytesMut,
    /// Where scanning resumes in `buf` (everything before it has been scanned).
    scanned: usize,
    /// The last byte scanned ended a line (true at the start: the stream starts a line).
    at_line_start: bool,
    /// The last byte scanned was a CR that ended a line: an LF right after it is the
    /// second half of one CRLF, not a line of its own.
    after_cr: bool,
    max: usize,
}

/// An event larger than the framer's limit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooLarge;

impl Framer {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            scanned: 0,
            at_line_start: true,
            after_cr: false,
            max,
        }
    }

    /// Takes one read; appends to `out` every event block it completes, blank line included.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<Bytes>) -> Result<(), TooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut ends = Vec::new();
        let mut i = self.scanned;
        let end = self.buf.len();
        while i < end {
            let Some(off) = memchr::memchr2(b'\n', b'\r', &self.buf[i..end]) else {
                self.at_line_start = false;
                self.after_cr = false;
                break;
            };
            let at = i + off;
            if off > 0 {
                self.at_line_start = false;
                self.after_cr = false;
            }
            let byte = self.buf[at];
            if byte == b'\n' && self.after_cr {
                // The LF of a CRLF whose CR already ended the line.
                self.after_cr = false;
                ends.push(Cut::DropLf(at));
            } else {
                if self.at_line_start {
                    ends.push(Cut::Block(at + 1));
                }
                self.at_line_start = true;
                self.after_cr = byte == b'\r';
            }
            i = at + 1;
        }
        self.scanned = end;

        // Cut the blocks out (no copy: `split_to` shares the buffer).
        let mut taken = 0;
        for cut in ends {
            match cut {
                Cut::Block(upto) => {
                    let block = self.buf.split_to(upto - taken);
                    taken = upto;
                    if block.len() > self.max {
                        return Err(TooLarge);
                    }
                    out.push(finish(block));
                }
                // An LF left at the very start of the next block (its CR ended a block):
                // drop it, else it would read as one more blank line.
                Cut::DropLf(at) if at == taken => {
                    let _ = self.buf.split_to(1);
                    taken += 1;
                }
                Cut::DropLf(_) => {}
            }
        }
        self.scanned -= taken;
        if self.buf.len() > self.max {
            return Err(TooLarge);
        }
        Ok(())
    }
}

enum Cut {
    Block(usize),
    DropLf(usize),
}

/// A block whose blank line is a lone CR gets its LF: the crate's parser, being a
/// streaming one, waits for the byte after a final CR before it ends the line.
fn finish(block: BytesMut) -> Bytes {
    if block.last() == Some(&b'\r') {
        let mut fixed = block;
        fixed.extend_from_slice(b"\n");
        fixed.freeze()
    } else {
        block.freeze()
    }
}

/// True when the block has an `event` field (Tracim's backlog blocks have none).
pub(crate) fn has_event_field(block: &[u8]) -> bool {
    block
        .split(|b| *b == b'\n' || *b == b'\r')
        .any(|line| line == b"event" || line.starts_with(b"event:"))
}

/// Parses one complete block; a block of comments only gives no event.
pub(crate) fn parse_block(block: Bytes) -> Result<Vec<Event>, String> {
    let mut events = EventStream::new(Once(Some(block)));
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        // `Once` is always ready, so the crate's stream is too: polling never waits.
        match Pin::new(&mut events).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(event))) => out.push(event),
            Poll::Ready(Some(Err(e))) => return Err(e.to_string()),
            Poll::Ready(None) | Poll::Pending => return Ok(out),
        }
    }
}

/// A stream of one block, for the crate's parser.
struct Once(Option<Bytes>);

impl Stream for Once {
    type Item = Result<Bytes, std::convert::Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.take().map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(reads: &[&[u8]], max: usize) -> Result<Vec<Bytes>, TooLarge> {
        let mut framer = Framer::new(max);
        let mut out = Vec::new();
        for read in reads {
            framer.push(read, &mut out)?;
        }
        Ok(out)
    }

    fn events(blocks: Vec<Bytes>) -> Vec<(String, String)> {
        blocks
            .into_iter()
            .flat_map(|b| parse_block(b).expect("parses"))
            .map(|e| (e.event, e.data))
            .collect()
    }

    const STREAM: &[u8] = b":Tracim Live Messages for user 1\n\nevent: stream-open\ndata:\n\ndata:{\"event_id\": 3}\n\nevent: message\ndata: {\"event_id\": 4}\n\nevent: keep-alive\ndata:\n\n";

    fn expected() -> Vec<(String, String)> {
        [
            ("stream-open", ""),
            ("message", "{\"event_id\": 3}"),
            ("message", "{\"event_id\": 4}"),
            ("keep-alive", ""),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn whole_stream_in_one_read_and_byte_by_byte() {
        assert_eq!(events(frame(&[STREAM], 1 << 20).expect("fits")), expected());
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(events(frame(&bytes, 1 << 20).expect("fits")), expected());
    }

    #[test]
    fn crlf_and_cr_line_ends_at_every_split() {
        for eol in ["\r\n", "\r"] {
            let text = String::from_utf8(STREAM.to_vec())
                .expect("utf8")
                .replace('\n', eol);
            for split in 0..text.len() {
                let (a, b) = text.as_bytes().split_at(split);
                assert_eq!(
                    events(frame(&[a, b], 1 << 20).expect("fits")),
                    expected(),
                    "eol {eol:?} split {split}"
                );
            }
        }
    }

    #[test]
    fn multi_line_data_and_comments() {
        let text = b": a comment\nevent: message\n: another\ndata: line one\ndata:line two\n\n";
        assert_eq!(
            events(frame(&[text], 1 << 20).expect("fits")),
            vec![("message".to_string(), "line one\nline two".to_string())]
        );
    }

    #[test]
    fn refuses_an_event_past_the_limit_whole_or_in_pieces() {
        let big = format!("data: {}\n\n", "x".repeat(100));
        assert_eq!(frame(&[big.as_bytes()], 50), Err(TooLarge));
        let pieces: Vec<&[u8]> = big.as_bytes().chunks(7).collect();
        assert_eq!(frame(&pieces, 50), Err(TooLarge));
        assert_eq!(frame(&pieces, 200).map(|b| b.len()), Ok(1));
    }

    #[test]
    fn tells_backlog_blocks_from_live_ones() {
        assert!(!has_event_field(b"data:{\"event_id\": 3}\n\n"));
        assert!(has_event_field(b"event: message\r\ndata: {}\r\n\r\n"));
        assert!(!has_event_field(b"data: event: no\n\n"));
    }
}
