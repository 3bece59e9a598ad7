//! The live stream `GET /api/users/{id}/live_messages`: Server-Sent Events read with a
//! real parser, whatever the reads' sizes, with a size limit and a silence timeout.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use super::error::StreamEnd;
use super::event::TlmEvent;
use super::frame::{Framer, has_event_field, parse_block};

/// Limits of a live stream.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// How long the stream may stay silent (not one byte: no message, no keep-alive)
    /// before it is taken as dead. Tracim sends a keep-alive every 30 s; its own web
    /// client gives up after 45 s.
    pub silence_timeout: Duration,
    /// The largest event accepted, in bytes (a large note's HTML is in the TLM).
    pub max_event_size: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            silence_timeout: Duration::from_secs(45),
            max_event_size: 64 * 1024 * 1024,
        }
    }
}

/// One thing the stream said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamItem {
    /// `event: stream-open`: the stream is up (the backlog, if any, follows).
    Open,
    /// A TLM. `backlog` is true for the blocks Tracim sends right after opening for the
    /// `after_event_id` asked (no `event:` line, in no guaranteed order); false for live
    /// `event: message` ones. Once a live one or a keep-alive came, the backlog is over:
    /// Tracim writes it whole in the response's first body before holding it open.
    Message {
        /// The event.
        event: TlmEvent,
        /// Part of the backlog rather than live.
        backlog: bool,
    },
    /// `event: keep-alive`.
    KeepAlive,
    /// `event: stream-error` (too many users online): the server closes the stream next.
    StreamError {
        /// The event's data, as sent.
        data: String,
    },
}

/// An open live stream; read it with [`LiveStream::next`].
pub struct LiveStream {
    response: reqwest::Response,
    framer: Framer,
    ready: VecDeque<StreamItem>,
    options: StreamOptions,
    ended: bool,
    unreadable: u64,
}

impl std::fmt::Debug for LiveStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStream")
            .field("url", self.response.url())
            .field("ended", &self.ended)
            .finish()
    }
}

impl LiveStream {
    pub(crate) fn new(response: reqwest::Response, options: StreamOptions) -> Self {
        Self {
            response,
            framer: Framer::new(options.max_event_size),
            ready: VecDeque::new(),
            options,
            ended: false,
            unreadable: 0,
        }
    }

    /// The next item; an error says why the stream is over (then it stays over).
    /// The silence timer restarts with every byte received, so a huge event that
    /// trickles in is not taken for a dead stream.
    pub async fn next(&mut self) -> Result<StreamItem, StreamEnd> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Ok(item);
            }
            if self.ended {
                return Err(StreamEnd::Closed);
            }
            let read =
                tokio::time::timeout(self.options.silence_timeout, self.response.chunk()).await;
            let chunk = match read {
                Err(_) => return self.end(StreamEnd::Silent(self.options.silence_timeout)),
                Ok(Err(e)) => return self.end(StreamEnd::Transport(e)),
                Ok(Ok(None)) => return self.end(StreamEnd::Closed),
                Ok(Ok(Some(chunk))) => chunk,
            };
            let mut blocks = Vec::new();
            if self.framer.push(&chunk, &mut blocks).is_err() {
                return self.end(StreamEnd::TooLarge {
                    limit: self.options.max_event_size,
                });
            }
            for block in blocks {
                if let Err(reason) = self.take_block(block) {
                    return self.end(StreamEnd::Unreadable(reason));
                }
            }
        }
    }

    /// How many messages were skipped because their data was not a TLM (each is logged).
    pub fn unreadable_messages(&self) -> u64 {
        self.unreadable
    }

    fn end(&mut self, why: StreamEnd) -> Result<StreamItem, StreamEnd> {
        self.ended = true;
        Err(why)
    }

    fn take_block(&mut self, block: Bytes) -> Result<(), String> {
        let backlog = !has_event_field(&block);
        for event in parse_block(block)? {
            match event.event.as_str() {
                "message" => match TlmEvent::from_json(event.data) {
                    Ok(event) => self.ready.push_back(StreamItem::Message { event, backlog }),
                    Err(reason) => {
                        self.unreadable += 1;
                        tracing::warn!(%reason, "skipped a message of Tracim's stream");
                    }
                },
                "stream-open" => self.ready.push_back(StreamItem::Open),
                "keep-alive" => self.ready.push_back(StreamItem::KeepAlive),
                "stream-error" => self
                    .ready
                    .push_back(StreamItem::StreamError { data: event.data }),
                other => tracing::debug!(
                    event = other,
                    "ignored an unknown event type on Tracim's stream"
                ),
            }
        }
        Ok(())
    }
}
