//! WebSocket frames no client library would send, over a bare socket.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::process::TallyProcess;

/// A WebSocket client over a bare TCP socket: it writes whatever frames a
/// test builds, legal or not, and reads the server's frames one by one.
pub(super) struct RawWs {
    stream: TcpStream,
}

/// The first byte of a frame: FIN flag and opcode.
const FIN: u8 = 0x80;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

impl RawWs {
    async fn connect(addr: SocketAddr, path: &str) -> Self {
        let stream = within("tcp connect", TcpStream::connect(addr))
            .await
            .expect("tcp connect");
        Self::handshake(stream, addr, path).await
    }

    /// Upgrades `stream`, reading exactly the 101 response's head.
    pub(super) async fn handshake(mut stream: TcpStream, addr: SocketAddr, path: &str) -> Self {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        within("handshake write", stream.write_all(request.as_bytes()))
            .await
            .expect("handshake write");
        let mut head = Vec::new();
        within("handshake response", async {
            while !head.ends_with(b"\r\n\r\n") {
                head.push(stream.read_u8().await.expect("handshake read"));
            }
        })
        .await;
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self { stream }
    }

    /// Writes one frame: `first` is FIN | RSV | opcode.
    async fn send(&mut self, first: u8, payload: &[u8]) {
        self.write(&frame(first, payload)).await;
    }

    async fn write(&mut self, bytes: &[u8]) {
        within("raw frame write", self.stream.write_all(bytes))
            .await
            .expect("raw frame write");
    }

    /// The server's next frame (opcode, payload), or `None` once the
    /// connection has ended.
    pub(super) async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        within("server frame", async {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).await.ok()?;
            let len = match head[1] & 0x7f {
                126 => u64::from(self.stream.read_u16().await.ok()?),
                127 => self.stream.read_u64().await.ok()?,
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.stream.read_exact(&mut payload).await.ok()?;
            Some((head[0] & 0x0f, payload))
        })
        .await
    }

    /// The next text message that is not a results push, as JSON.
    async fn reply(&mut self) -> Value {
        loop {
            let (opcode, payload) = self.frame().await.expect("socket open");
            if opcode != TEXT {
                continue;
            }
            let v: Value = serde_json::from_slice(&payload).expect("JSON text");
            if v["type"] != "results" {
                return v;
            }
        }
    }

    /// Reads until the server's close frame; its code (`None` if the
    /// connection ended without one).
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            let (opcode, payload) = self.frame().await?;
            if opcode == CLOSE {
                return Some(u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    }
}

/// A frame header with a payload length in its shortest encoding.
fn frame_header(first: u8, len: u64, masked: bool) -> Vec<u8> {
    let mask = if masked { 0x80 } else { 0 };
    let mut head = vec![first];
    match len {
        0..=125 => head.push(mask | len as u8),
        126..=65535 => {
            head.push(mask | 126);
            head.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            head.push(mask | 127);
            head.extend_from_slice(&len.to_be_bytes());
        }
    }
    head
}

/// Raw frames that break the protocol each get the close code RFC 6455
/// gives them; a binary frame only gets an error message; the process
/// never panics and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_websocket_abuse_gets_the_right_close_codes_and_never_a_panic() {
    let tally = TallyProcess::start(&[]).await;
    let path = "/api/polls/lpl/ws";
    let vote = br#"{"type":"vote","option":0,"request_id":"raw-1"}"#;
    let mut oversized = vote.to_vec();
    oversized.resize(5000, b' ');

    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a 5000-byte text frame",
            frame(FIN | TEXT, &oversized),
            1009,
        ),
        (
            "a frame header announcing 2^62 bytes",
            [frame_header(FIN | TEXT, 1 << 62, true), MASK.to_vec()].concat(),
            1009,
        ),
        (
            "invalid UTF-8 in a text frame",
            frame(FIN | TEXT, &[0x7b, 0xff, 0xfe, 0x7d]),
            1007,
        ),
        ("a fragmented ping (FIN = 0)", frame(PING, b"hi"), 1002),
        ("a ping of 126 bytes", frame(FIN | PING, &[0; 126]), 1002),
        ("an unmasked frame", unmasked(FIN | TEXT, vote), 1002),
        ("a reserved bit set", frame(FIN | 0x40 | TEXT, vote), 1002),
        ("an unknown opcode", frame(FIN | 0x3, vote), 1002),
        (
            "a continuation with nothing to continue",
            frame(FIN, vote),
            1002,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut ws = RawWs::connect(tally.addr, path).await;
        ws.write(&bytes).await;
        assert_eq!(ws.close_code().await, Some(code), "{what}");
        assert!(
            ws.frame().await.is_none(),
            "{what}: connection ends after the close"
        );
    }

    // Binary: an error message, and the same socket still votes.
    let mut ws = RawWs::connect(tally.addr, path).await;
    ws.send(FIN | BINARY, b"{}").await;
    let reply = ws.reply().await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("bad_message"))
    );
    ws.send(FIN | TEXT, vote).await;
    let reply = ws.reply().await;
    assert_eq!(reply["type"], "vote_ack", "{reply}");

    // Nothing broke: the process serves, a fresh WebSocket works, no panic.
    let res = send("healthz", client().get(tally.url("/healthz"))).await;
    assert_eq!(res.status(), 200);
    let mut fresh = WsClient::connect(&tally.ws_url(path)).await;
    assert_eq!(
        total(&fresh.next_results().await),
        1101,
        "only the one good vote counted"
    );
    tally.assert_no_panic();
}

/// A masked frame as a client sends it.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = frame_header(first, payload.len() as u64, true);
    bytes.extend_from_slice(&MASK);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    bytes
}

/// A frame without the mask every client frame must have.
fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = frame_header(first, payload.len() as u64, false);
    bytes.extend_from_slice(payload);
    bytes
}
