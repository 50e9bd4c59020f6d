//! Lingering close: a body refused before it was read (413 past the limit,
//! 415 for the wrong type) still gets its answer read by real clients —
//! Python's urllib, requests and aiohttp, and curl — with a Content-Length
//! and chunked, against a real `tally` process. Without the drain, the
//! server's kernel resets the connection while the client is still sending
//! and those clients report `Broken pipe` / "Can not write request body".
//! The drain itself is bounded in time and bytes. Every answer after which
//! the connection closes says `Connection: close`, so a pooling client
//! (reqwest's `Client`, aiohttp's `ClientSession`) never sends its next
//! request on it: 30 rounds of a refusal then a normal request, 60 of 60.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;
use crate::process::TallyProcess;

/// How many times each client sends each refused body.
const TRIES: usize = 20;

/// Rounds of a refused body then a normal request on one pooled client.
const ROUNDS: usize = 30;

/// The size of each refused body.
const BODY: usize = 1024 * 1024;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's Python (installed on first use by `tests/clients/venv`).
fn clients_python() -> String {
    let out = Command::new(repo().join("tests/clients/venv"))
        .output()
        .expect("run tests/clients/venv");
    assert!(
        out.status.success(),
        "tests/clients/venv failed (needs python3-venv and PyPI): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_clients_read_every_refusal_of_a_large_body() {
    let python = clients_python();
    let tally = TallyProcess::start(&[]).await;
    let base = tally.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(repo().join("tests/clients/refused_body.py"))
            .args([&base, "/api/polls", "/api/polls/lpl/votes"])
            .args(["--tries", &TRIES.to_string(), "--size", &BODY.to_string()])
            .args(["--rounds", &ROUNDS.to_string()])
            .output()
            .expect("run refused_body.py")
    });
    let out = tokio::time::timeout(Duration::from_secs(240), out)
        .await
        .expect("the Python clients finish within 4 minutes")
        .expect("join");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    let lines: Vec<serde_json::Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON report line"))
        .collect();
    // 2 paths × 2 refusals × 3 clients × 2 framings, then the pooled
    // session's rounds.
    assert_eq!(lines.len(), 25, "every combination reported: {report}");
    let (pooled, lines) = lines.split_last().unwrap();
    assert_eq!(pooled["client"], "aiohttp-session", "{pooled}");
    assert_eq!(pooled["requests"], 2 * ROUNDS, "{pooled}");
    assert_eq!(
        pooled["answered"],
        2 * ROUNDS,
        "one aiohttp session failed after a refusal: {pooled}"
    );
    for line in lines {
        assert_eq!(line["tries"], TRIES, "{line}");
        assert_eq!(line["read"], TRIES, "a client missed the refusal: {line}");
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tally.assert_no_panic();
}

/// One curl upload of a 1 MiB body; returns the status and the body read.
fn curl_upload(url: &str, file: &std::path::Path, ctype: &str, chunked: bool) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Content-Type: {ctype}")])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()));
    if chunked {
        cmd.args(["-H", "Transfer-Encoding: chunked"]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reads_every_refusal_of_a_large_body() {
    let tally = TallyProcess::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, vec![b' '; BODY]).unwrap();
    let base = tally.base.clone();
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for path in ["/api/polls", "/api/polls/lpl/votes"] {
            for (ctype, status, code) in [
                ("application/json", "413", "payload_too_large"),
                ("text/plain", "415", "unsupported_media_type"),
            ] {
                for chunked in [false, true] {
                    for _ in 0..TRIES {
                        let (got, body) =
                            curl_upload(&format!("{base}{path}"), &file, ctype, chunked);
                        let ok = got == status
                            && serde_json::from_str::<serde_json::Value>(&body)
                                .is_ok_and(|v| v["error"]["code"] == code);
                        if !ok {
                            failures
                                .push(format!("{path} {ctype} chunked={chunked}: {got} {body}"));
                        }
                    }
                }
            }
        }
        failures
    });
    let failures = tokio::time::timeout(Duration::from_secs(240), failures)
        .await
        .expect("curl finishes within 4 minutes")
        .expect("join");
    assert!(failures.is_empty(), "curl missed refusals: {failures:#?}");
}

/// The head of a JSON POST claiming a body of `len` bytes.
fn post_head(len: usize) -> Vec<u8> {
    format!(
        "POST /api/polls HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\n\r\n"
    )
    .into_bytes()
}

/// Reads the whole answer up to the server's FIN; fails on a reset.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    within("the refusal and the server's FIN", async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => panic!("connection reset before the answer was read: {e}"),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_is_let_go_after_the_linger_time() {
    let app = spawn_app(&Backend::Memory).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // Claims 100 MiB, sends a little, then nothing.
    stream.write_all(&post_head(100 << 20)).await.unwrap();
    stream.write_all(&[b' '; 64 * 1024]).await.unwrap();
    let answer = read_answer(&mut stream).await;
    let answered = Instant::now();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // The server still reads (and discards) until its linger time passes;
    // after that a write meets a closed socket.
    let cut = within("the server to stop lingering", async {
        loop {
            if stream.write_all(b"    ").await.is_err() {
                return answered.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        cut >= Duration::from_millis(1500) && cut < Duration::from_secs(6),
        "lingered {cut:?}; expected about {:?}",
        tally::linger::LINGER_TIME
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_sending_is_cut_off_after_the_linger_bound() {
    let app = spawn_app(&Backend::Memory).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let claimed = 256 << 20;
    stream.write_all(&post_head(claimed)).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    let started = Instant::now();
    let cut_off = within("the server to stop draining", async {
        while sent < claimed {
            if stream.write_all(&chunk).await.is_err() {
                return true;
            }
            sent += chunk.len();
        }
        false
    })
    .await;
    println!(
        "cut off after {} KiB in {:?}",
        sent / 1024,
        started.elapsed()
    );
    assert!(cut_off, "the server drained all {claimed} bytes");
    assert!(
        sent < tally::linger::LINGER_BYTES + (32 << 20),
        "drained {sent} bytes, far past the bound"
    );
}

/// A poll create body of about `len` bytes (past the limit when large).
fn create_body(len: usize) -> serde_json::Value {
    serde_json::json!({"question": "q".repeat(len), "options": ["a", "b"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_client_never_fails_after_a_refused_body() {
    let app = spawn_app(&Backend::Memory).await;
    // One client, one pool of at most one idle connection: every request
    // after a refusal would reuse the refused connection if it stayed
    // pooled.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = app.url("/api/polls");
    let mut ok = 0;
    let mut failures = Vec::new();
    for round in 0..30 {
        let refused = client.post(&url).json(&create_body(100_000)).send().await;
        match refused {
            Ok(res) if res.status() == 413 => {
                assert_eq!(
                    res.headers().get("connection").map(|v| v.as_bytes()),
                    Some(&b"close"[..]),
                    "a 413 the server closes after says so"
                );
                ok += 1;
            }
            Ok(res) => failures.push(format!("round {round}: refusal got {}", res.status())),
            Err(e) => failures.push(format!("round {round}: refusal failed: {e:?}")),
        }
        let normal = client.post(&url).json(&create_body(10)).send().await;
        match normal {
            Ok(res) if res.status() == 201 => ok += 1,
            Ok(res) => failures.push(format!("round {round}: create got {}", res.status())),
            Err(e) => failures.push(format!("round {round}: create failed: {e:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(ok, 60, "60 of 60 requests answered as expected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_type_and_a_too_large_head_say_connection_close() {
    let app = spawn_app(&Backend::Memory).await;
    // 415: a body of the wrong type, refused unread.
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = vec![b' '; 64 * 1024];
    stream
        .write_all(
            format!(
                "POST /api/polls HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream.write_all(&body).await.unwrap();
    let answer = read_answer(&mut stream).await.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 415"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    // 431: hyper's own answer to a head of more than 100 fields (a short
    // head, read whole, so the close is clean).
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..150 {
        head.push_str(&format!("X-Field-{i}: {i}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream).await.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 431"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_ended_by_shutdown_says_connection_close() {
    let mut app = spawn_app(&Backend::Memory).await;
    let (poll, _) = app.create_poll(&["a", "b"], "unlimited").await;
    let id = poll["id"].as_str().unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /api/polls/{id}/changes?since=0&timeout=30 HTTP/1.1\r\n\
                 Host: 127.0.0.1\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    app.wait_followed(&id, true).await;
    let stopped = tokio::spawn(async move { app.stop().await });
    let answer = read_answer(&mut stream).await.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 "), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    within("instance to stop", stopped).await.unwrap();
}
