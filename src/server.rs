//! The HTTP server loop: hyper's HTTP/1.1 server with a header-read timeout.
//!
//! `axum::serve` sets no timeout for reading request headers, so a client
//! that dribbles a header byte every few seconds (slowloris) holds a
//! connection forever. This loop is `axum::serve` plus hyper's
//! `header_read_timeout`, keeps `ConnectInfo` for the rate limiter, and
//! drains connections gracefully on shutdown (the caller bounds the drain).
//!
//! Only HTTP/1.1 is served. hyper-util's HTTP/1-or-2 auto-detection first
//! waits for up to 24 bytes with no timeout at all — a client that sends
//! nothing, or the HTTP/2 preface a byte at a time, was never cut off —
//! and hyper's HTTP/2 server has no header timeout either. Nothing in front
//! of tally needs cleartext HTTP/2: browsers speak it only over TLS, which
//! the load balancer terminates, and the load balancers proxy HTTP/1.1
//! (which WebSocket upgrades need anyway). Here the timer starts as the
//! connection opens, and restarts for each request on a kept-alive one.
//!
//! A connection whose request body was refused unread closes lingering
//! ([`crate::linger`]), so the client reads the refusal instead of a reset,
//! and the refusal says `Connection: close`. Every other answer after which
//! the connection closes says so too: hyper adds the header itself once
//! keep-alive is off (graceful shutdown of a connection mid-exchange, its
//! own 400/414/431 for an unparsable or too-large head), and this loop
//! adds it where hyper learns too late (`announce_close`). A head that does
//! not arrive within the header timeout gets no answer at all: the
//! connection is closed as an idle one.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tower::{Service, ServiceExt};

use crate::linger::{LingerIo, TrackedBody, UnreadBody};
use crate::shutdown::Shutdown;

/// What [`serve`] can serve: the application ([`crate::app`]), cloned
/// once per request as hyper asks for it.
pub trait App:
    Service<
        Request<TrackedBody>,
        Response = Response<Self::Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    /// The response body hyper writes out.
    type Body: Body<Data: Send, Error: Into<Box<dyn StdError + Send + Sync>>> + Send + 'static;
}

impl<S, B> App for S
where
    S: Service<Request<TrackedBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data: Send, Error: Into<Box<dyn StdError + Send + Sync>>> + Send + 'static,
{
    type Body = B;
}

/// Accepts and serves connections until shutdown, then waits for open
/// HTTP exchanges to finish (streams end themselves on shutdown).
pub async fn serve(
    listener: TcpListener,
    app: impl App,
    shutdown: Shutdown,
    header_timeout: Duration,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, usually: back off, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.triggered() => break,
        };
        connections.spawn(serve_connection(
            builder.clone(),
            stream,
            peer,
            app.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serves one connection; on shutdown, finishes the exchange in progress
/// (if any) and closes it.
async fn serve_connection(
    builder: http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
    app: impl App,
    shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let unread = UnreadBody::default();
    let io = LingerIo::new(stream, unread.clone());
    let stopping = shutdown.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        unread.reset();
        let answered = app
            .clone()
            .oneshot(req.map(|body| TrackedBody::new(body, unread.clone())));
        let (unread, stopping) = (unread.clone(), stopping.clone());
        async move {
            let mut response = answered.await?;
            if unread.was_refused() || stopping.is_triggered() {
                announce_close(&mut response);
            }
            Ok::<_, Infallible>(response)
        }
    });
    let mut conn = pin!(
        builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades()
    );
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = shutdown.triggered() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}

/// Says `Connection: close` on an answer after which this connection
/// closes: hyper then closes it once the answer is written, and a pooling
/// client does not send its next request on it. hyper adds the header by
/// itself only when it knew before writing the head; a refused body and
/// an answer that shutdown ended (a long poll's) are known here first.
/// An upgrade's `101` keeps its `Connection: upgrade`.
fn announce_close<B>(response: &mut Response<B>) {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}
