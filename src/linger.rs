//! Lingering close: a connection whose request body was refused unread is
//! drained for a while before it closes, so the client reads the refusal.
//!
//! When tally answers early — 413 past the body limit, 415 for the wrong
//! content type, any error before the handler reads the body — hyper stops
//! reading and closes the connection after the answer. The client is often
//! still sending its body; closing a socket with unread data makes the
//! kernel send a reset, and a reset makes the client's kernel throw away
//! the answer it had already received. Python's `urllib` then reports
//! `Broken pipe`, aiohttp "Can not write request body", instead of the 413.
//!
//! nginx's cure is lingering close, and this is it: after the answer is
//! written, half-close the write side (the client sees the end of the
//! answer), then read and discard what the client still sends — until it
//! closes, [`LINGER_BYTES`] are discarded or [`LINGER_TIME`] passes — and
//! only then close. Connections whose body was read, or had none, close as
//! before.
//!
//! The answer itself says `Connection: close` (RFC 9112 §9.6): hyper
//! notices the dropped body only after it has written the answer's head,
//! so without the header a pooling client (aiohttp's `ClientSession`,
//! reqwest's `Client`) sends its next request on a connection the server is
//! closing, and that request fails. [`crate::server`] adds it when
//! [`UnreadBody::was_refused`].
//!
//! Two pieces: [`TrackedBody`] wraps each request body and marks the
//! connection when the body is dropped before its end; [`LingerIo`] wraps
//! the socket and drains in `poll_shutdown` (which hyper calls once, as it
//! closes the connection) when the mark is set.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Most bytes discarded from a refused body before the connection closes
/// anyway (a client sending more than this gets the reset).
pub const LINGER_BYTES: usize = 4 * 1024 * 1024;

/// Longest a refused client is drained before the connection closes anyway.
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// Whether the connection's current request body was left unread: shared
/// by the connection's socket and its requests' bodies.
#[derive(Clone, Default)]
pub struct UnreadBody(Arc<AtomicBool>);

impl UnreadBody {
    /// A new request begins: the previous body was consumed (hyper reads a
    /// body to its end before it parses the next request head).
    pub fn reset(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Whether the current request's body was refused unread, so hyper
    /// will close the connection after the answer. Asked once the
    /// application has answered, when the request (and so its body) has
    /// been dropped.
    pub fn was_refused(&self) -> bool {
        self.is_set()
    }
}

/// A request body that marks its connection when dropped before its end.
pub struct TrackedBody {
    inner: Incoming,
    ended: bool,
    unread: UnreadBody,
}

impl TrackedBody {
    pub fn new(inner: Incoming, unread: UnreadBody) -> Self {
        Self {
            inner,
            ended: false,
            unread,
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() {
            self.ended = true;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if !self.ended && !self.inner.is_end_stream() {
            self.unread.mark();
        }
    }
}

/// Where a [`LingerIo`] is in closing.
enum Closing {
    /// Not closing yet.
    Open,
    /// Write side shut; discarding what the client still sends.
    Draining {
        deadline: Pin<Box<Sleep>>,
        left: usize,
        scratch: Box<[u8]>,
    },
    Closed,
}

/// A TCP stream whose shutdown lingers when its request body was refused.
pub struct LingerIo {
    stream: TcpStream,
    unread: UnreadBody,
    closing: Closing,
}

impl LingerIo {
    pub fn new(stream: TcpStream, unread: UnreadBody) -> Self {
        Self {
            stream,
            unread,
            closing: Closing::Open,
        }
    }
}

impl AsyncRead for LingerIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LingerIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// Shuts the write side; then, if a body was refused unread, drains the
    /// read side until the client closes or a bound is reached.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.closing {
                Closing::Open => {
                    ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
                    if !this.unread.is_set() {
                        this.closing = Closing::Closed;
                        continue;
                    }
                    this.closing = Closing::Draining {
                        deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                        left: LINGER_BYTES,
                        scratch: vec![0; 16 * 1024].into_boxed_slice(),
                    };
                }
                Closing::Draining {
                    deadline,
                    left,
                    scratch,
                } => {
                    if deadline.as_mut().poll(cx).is_ready() {
                        tracing::debug!("lingering close: time is up");
                        this.closing = Closing::Closed;
                        continue;
                    }
                    let mut buf = ReadBuf::new(scratch);
                    let read = ready!(Pin::new(&mut this.stream).poll_read(cx, &mut buf));
                    let n = buf.filled().len();
                    *left = left.saturating_sub(n);
                    if read.is_err() || n == 0 || *left == 0 {
                        this.closing = Closing::Closed;
                    }
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}
