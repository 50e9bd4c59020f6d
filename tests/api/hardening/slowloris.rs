//! Slowloris: the header-read timeout cuts off clients that never finish
//! a request's headers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// How a slow client's connection ended.
#[derive(Debug)]
struct SlowEnd {
    /// When the server hung up, if it did before the client gave up.
    closed_after: Option<Duration>,
    /// What the server sent (nothing, for a request it never finished reading).
    received: usize,
}

/// Connects and writes `bytes` one every `every`, until the server hangs
/// up or `give_up` passes.
async fn dribble(addr: SocketAddr, bytes: Vec<u8>, every: Duration, give_up: Duration) -> SlowEnd {
    let mut stream = within("slow connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    let (mut sent, mut received) = (0, 0);
    let mut buf = [0u8; 1024];
    while started.elapsed() < give_up {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return SlowEnd { closed_after: Some(started.elapsed()), received },
                Ok(n) => received += n,
            },
            _ = tick.tick() => {
                if sent < bytes.len() {
                    if stream.write_all(&bytes[sent..=sent]).await.is_err() {
                        return SlowEnd { closed_after: Some(started.elapsed()), received };
                    }
                    sent += 1;
                }
            }
        }
    }
    SlowEnd {
        closed_after: None,
        received,
    }
}

/// A request whose headers never end: a request line, then header after
/// header, far more than a dribbler can send before it gives up.
fn endless_request() -> Vec<u8> {
    let mut bytes = b"GET /api/polls/lpl HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for i in 0..1000 {
        bytes.extend_from_slice(format!("X-Slow-{i}: z\r\n").as_bytes());
    }
    bytes
}

/// Slowloris: clients that dribble a request's header bytes — or the
/// HTTP/2 preface, or nothing at all — are cut off at the header timeout,
/// and a normal client is served while they hang on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_clients_are_cut_off_at_the_header_timeout_while_others_are_served() {
    const HEADER_TIMEOUT: Duration = Duration::from_millis(500);
    const GIVE_UP: Duration = Duration::from_secs(6);
    let app = spawn_app_with(&Backend::Memory, |c| c.header_timeout = HEADER_TIMEOUT).await;
    let every = Duration::from_millis(50);
    let mut slow = Vec::new();
    for i in 0..20 {
        let bytes = match i {
            0 => Vec::new(),
            1 => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            _ => endless_request(),
        };
        slow.push(tokio::spawn(dribble(app.addr, bytes, every, GIVE_UP)));
    }

    // While they hang on, an ordinary client is served at once, repeatedly.
    for _ in 0..5 {
        let started = Instant::now();
        let res = app.get("/api/polls/lpl").await;
        assert_eq!(res.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "normal request took {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for (i, task) in slow.into_iter().enumerate() {
        let end = within("slow client to end", task).await.unwrap();
        let closed = end
            .closed_after
            .unwrap_or_else(|| panic!("slow client {i} still connected after {GIVE_UP:?}"));
        // The server's clock starts at accept, the client's at connect: allow
        // a little slack below the timeout (timer granularity), none far off.
        assert!(
            closed >= HEADER_TIMEOUT - Duration::from_millis(100)
                && closed < HEADER_TIMEOUT + Duration::from_secs(2),
            "slow client {i} cut off after {closed:?} (header timeout {HEADER_TIMEOUT:?})"
        );
        assert_eq!(end.received, 0, "slow client {i} got a response");
    }
    assert_eq!(app.get("/healthz").await.status(), 200);
}
