//! Connections that count their bytes, opened from a chosen source address.
//!
//! Every follower and voter gets its own TCP connection (as every browser
//! does), wrapped in [`Counted`] so the report can say how many bytes each
//! transport really put on the wire, headers and framing included.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

/// Bytes and requests of one group of connections (one transport).
#[derive(Default, Debug)]
pub struct Counters {
    pub read: AtomicU64,
    pub written: AtomicU64,
    pub requests: AtomicU64,
}

/// A stream that adds what passes through it to shared counters.
pub struct Counted<S> {
    inner: S,
    counters: Arc<Counters>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.counters.read.fetch_add(n, Ordering::Relaxed);
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.counters.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One instance to talk to: its socket address and `Host` header value.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

impl Target {
    /// Parses `http://host:port` (a trailing slash is fine).
    pub async fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("only http:// URLs are supported: {url}");
        };
        let host = rest.trim_end_matches('/').to_owned();
        let with_port = if host.contains(':') {
            host.clone()
        } else {
            format!("{host}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("no address for {host}"))?;
        Ok(Self { addr, host })
    }
}

/// Opens a TCP connection to `target`, from `source` when given (spreading
/// many connections over several 127.0.0.x addresses avoids running out of
/// ephemeral ports).
pub async fn connect(
    target: &Target,
    source: Option<IpAddr>,
    counters: &Arc<Counters>,
) -> io::Result<Counted<TcpStream>> {
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    Ok(Counted {
        inner: stream,
        counters: Arc::clone(counters),
    })
}

/// A kept-alive HTTP/1.1 connection to one instance.
pub struct Http {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
    counters: Arc<Counters>,
}

impl Http {
    pub async fn open(
        target: &Target,
        source: Option<IpAddr>,
        counters: &Arc<Counters>,
    ) -> anyhow::Result<Self> {
        let stream = connect(target, source, counters).await?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            host: target.host.clone(),
            counters: Arc::clone(counters),
        })
    }

    /// Sends a request and returns the response with its body unread.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> anyhow::Result<Response<hyper::body::Incoming>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Full::new(Bytes::from(b))
            }
            None => Full::new(Bytes::new()),
        };
        self.sender.ready().await?;
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        Ok(self.sender.send_request(req.body(body)?).await?)
    }

    /// Sends a request and reads the whole body.
    pub async fn fetch(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> anyhow::Result<(StatusCode, hyper::HeaderMap, Bytes)> {
        let res = self.send(method, path, headers, body).await?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, headers, body))
    }
}

/// The `version` of a results JSON without parsing all of it: followers
/// read thousands of updates a second and need only this field until the
/// end, when the last one is parsed in full.
pub fn version_of(json: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"version\":";
    let at = json.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    json[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(None, |acc: Option<u64>, b| {
            Some(acc.unwrap_or(0) * 10 + u64::from(b - b'0'))
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_is_read_from_results_json() {
        let j = br#"{"id":"x","closed":false,"version":1234,"total":3}"#;
        assert_eq!(super::version_of(j), Some(1234));
        assert_eq!(super::version_of(b"{}"), None);
    }
}
