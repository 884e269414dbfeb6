//! One TLS record per DoH response: the bytes hyper writes for an HTTP/2
//! connection are passed on to the TLS stream in writes that end where a
//! response ends, so no TLS record carries the end of one response and
//! anything after it.
//!
//! Why: hyper coalesces the frames of every response ready at once into
//! one write, which rustls seals into one TLS record. Clients that hand one
//! TLS record at a time to their HTTP/2 parser and take one answer per call
//! lose the second answer in such a record: dnsperf 2.10 `-m doh` pauses
//! nghttp2 at the second response's DATA frame and then discards that
//! chunk, so with two queries in flight on a connection it answered 1 query
//! in 7 and fell to ~130 q/s where Unbound (a record per frame) gave
//! 15 000 q/s. Cutting writes at response ends costs a TLS record per
//! response in a burst (22 octets and one AEAD seal each, as Unbound pays);
//! the records still leave in one socket write, as the DoH listener
//! buffers below TLS until hyper flushes.
//!
//! The server side of an HTTP/2 connection sends frames only (its preface
//! is a SETTINGS frame, RFC 9113 §3.4), so the frame headers (RFC 9113
//! §4.1) are enough to find the ends: a DATA frame with END_STREAM, or a
//! HEADERS frame with END_STREAM whose header block ends there or in a
//! later CONTINUATION frame.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};

/// Length of an HTTP/2 frame header: 24-bit length, type, flags, stream.
const FRAME_HEADER_LEN: usize = 9;

/// HTTP/2 frame types (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;

/// HTTP/2 frame flags (RFC 9113 §6.1, §6.2).
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// An HTTP/2 connection's I/O whose writes each end at most one response.
pub(super) struct ResponseRecords<Io> {
    io: Io,
    frames: FrameCursor,
}

impl<Io> ResponseRecords<Io> {
    pub(super) fn new(io: Io) -> Self {
        Self {
            io,
            frames: FrameCursor::default(),
        }
    }
}

/// Where the outgoing byte stream stands within its frames.
#[derive(Clone, Copy, Debug, Default)]
struct FrameCursor {
    /// The current frame header's bytes seen so far.
    header: [u8; FRAME_HEADER_LEN],
    /// How many of `header` are filled; `FRAME_HEADER_LEN` once complete.
    header_filled: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
    /// Whether the current frame, once complete, ends a response.
    ends_response: bool,
    /// A HEADERS frame with END_STREAM but without END_HEADERS was sent:
    /// its response ends with the CONTINUATION frame carrying END_HEADERS.
    end_stream_pending: bool,
}

impl FrameCursor {
    /// Moves over `bytes` up to the end of the first frame that ends a
    /// response, or over all of them; returns how many it moved over.
    fn advance(&mut self, bytes: &[u8]) -> usize {
        let mut position = 0;
        while position < bytes.len() {
            if self.header_filled < FRAME_HEADER_LEN {
                let take = (FRAME_HEADER_LEN - self.header_filled).min(bytes.len() - position);
                self.header[self.header_filled..self.header_filled + take]
                    .copy_from_slice(&bytes[position..position + take]);
                self.header_filled += take;
                position += take;
                if self.header_filled == FRAME_HEADER_LEN {
                    self.start_frame();
                }
            } else {
                let take = self.payload_left.min(bytes.len() - position);
                self.payload_left -= take;
                position += take;
            }
            if self.header_filled == FRAME_HEADER_LEN && self.payload_left == 0 {
                let ends_response = self.ends_response;
                self.header_filled = 0;
                self.ends_response = false;
                if ends_response {
                    break;
                }
            }
        }
        position
    }

    /// Reads the completed frame header.
    fn start_frame(&mut self) {
        let [l0, l1, l2, kind, flags, ..] = self.header;
        self.payload_left = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        self.ends_response = match kind {
            DATA => flags & END_STREAM != 0,
            HEADERS if flags & END_STREAM != 0 => {
                self.end_stream_pending = flags & END_HEADERS == 0;
                !self.end_stream_pending
            }
            CONTINUATION if self.end_stream_pending && flags & END_HEADERS != 0 => {
                self.end_stream_pending = false;
                true
            }
            _ => false,
        };
    }

    /// How many of `bytes` one write may take: up to the first response end.
    fn writable(&self, bytes: &[u8]) -> usize {
        let mut probe = *self;
        probe.advance(bytes)
    }
}

impl<Io: Read + Unpin> Read for ResponseRecords<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: Write + Unpin> Write for ResponseRecords<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let limit = self.frames.writable(buf);
        let this = &mut *self;
        let written = std::task::ready!(Pin::new(&mut this.io).poll_write(cx, &buf[..limit]))?;
        this.frames.advance(&buf[..written.min(limit)]);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // The slices up to the first response end, the last one cut there.
        let mut probe = self.frames;
        let mut limited = Vec::with_capacity(bufs.len());
        for buf in bufs {
            let take = probe.advance(buf);
            limited.push(IoSlice::new(&buf[..take]));
            if take < buf.len() {
                break;
            }
        }
        let this = &mut *self;
        let written = std::task::ready!(Pin::new(&mut this.io).poll_write_vectored(cx, &limited))?;
        let mut left = written;
        for slice in &limited {
            let take = left.min(slice.len());
            this.frames.advance(&slice[..take]);
            left -= take;
            if left == 0 {
                break;
            }
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTP/2 frame: header and `payload_len` zero bytes.
    fn frame(kind: u8, flags: u8, stream: u8, payload_len: usize) -> Vec<u8> {
        let length = u32::try_from(payload_len).expect("small").to_be_bytes();
        let mut bytes = vec![
            length[1], length[2], length[3], kind, flags, 0, 0, 0, stream,
        ];
        bytes.resize(FRAME_HEADER_LEN + payload_len, 0);
        bytes
    }

    /// The lengths of the writes a byte stream is cut into.
    fn cuts(stream: &[u8]) -> Vec<usize> {
        let mut cursor = FrameCursor::default();
        let mut rest = stream;
        let mut lengths = Vec::new();
        while !rest.is_empty() {
            let take = cursor.advance(rest);
            lengths.push(take);
            rest = &rest[take..];
        }
        lengths
    }

    #[test]
    fn dnsperf_second_response_in_one_record_is_cut_off() {
        let settings = frame(0x4, 0, 0, 18);
        let window = frame(0x8, 0, 0, 4);
        let headers = |stream| frame(HEADERS, END_HEADERS, stream, 20);
        let data_end = |stream| frame(DATA, END_STREAM, stream, 60);
        let data_more = frame(DATA, 0, 1, 30);
        let headers_only = frame(HEADERS, END_HEADERS | END_STREAM, 3, 12);
        let headers_open = frame(HEADERS, END_STREAM, 5, 12);
        let continuation = frame(CONTINUATION, END_HEADERS, 5, 7);
        let empty_end = frame(DATA, END_STREAM, 7, 0);
        /// A case: its name, the frames sent, the writes expected.
        type Case = (&'static str, Vec<Vec<u8>>, Vec<usize>);
        let cases: Vec<Case> = vec![
            (
                "two responses in one burst",
                vec![headers(1), data_end(1), headers(3), data_end(3)],
                vec![29 + 69, 29 + 69],
            ),
            (
                "interleaved: the first end cuts, the second header goes on",
                vec![headers(1), headers(3), data_end(1), data_end(3)],
                vec![29 + 29 + 69, 69],
            ),
            (
                "control frames and a DATA frame without END_STREAM do not cut",
                vec![settings, window, headers(1), data_more, data_end(1)],
                vec![27 + 13 + 29 + 39 + 69],
            ),
            (
                "a response of headers only",
                vec![headers_only, headers(1), data_end(1)],
                vec![21, 29 + 69],
            ),
            (
                "END_STREAM on HEADERS ends with the CONTINUATION",
                vec![headers_open, continuation, headers(1)],
                vec![21 + 16, 29],
            ),
            (
                "an empty DATA frame with END_STREAM",
                vec![headers(7), empty_end, headers(9)],
                vec![29 + 9, 29],
            ),
        ];
        for (case, frames, expected) in cases {
            assert_eq!(cuts(&frames.concat()), expected, "{case}");
        }
    }

    #[test]
    fn frame_headers_split_across_writes_are_followed() {
        let stream = [
            frame(HEADERS, END_HEADERS, 1, 20),
            frame(DATA, END_STREAM, 1, 60),
        ]
        .concat();
        let whole = cuts(&stream);
        for split in 1..stream.len() {
            let mut cursor = FrameCursor::default();
            let first = cursor.advance(&stream[..split]);
            assert_eq!(first, split, "split at {split}: no response ends earlier");
            let second = cursor.advance(&stream[split..]);
            assert_eq!(first + second, whole[0], "split at {split}");
            assert_eq!(
                (cursor.header_filled, cursor.payload_left),
                (0, 0),
                "split at {split}: at a frame boundary"
            );
        }
    }
}
