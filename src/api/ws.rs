//! WebSocket: `GET /api/polls/{id}/ws`.
//!
//! One task per connection selects over the poll's hub channel, the
//! client's frames, a ping timer and shutdown. Pushes are the newest results
//! only (a slow client skips versions instead of queueing them), and a send
//! that cannot complete in time drops the client, so a peer that never
//! reads costs a bounded amount of memory.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tokio::time::{Instant, sleep_until, timeout};

use super::caller::Caller;
use super::polls::VoteBody;
use super::schema::{self, ErrorBody};
use super::security::origin_allowed;
use super::{AppState, PollPath};
use crate::error::Error;
use crate::hub::PollEvent;
use crate::poll::{IdempotencyKey, VoterId};
use crate::service::{Following, Transport};
use crate::store::Vote;
use crate::visibility::Viewer;

/// Largest message a client may send (after reassembly of fragments).
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// What each connection reserves for reading. Clients send a few small
/// votes, so a small buffer (it grows for a larger message) keeps an idle
/// follower cheap; tungstenite's default is 128 KiB. tungstenite also
/// zero-fills this much before every read attempt — and the loop below
/// attempts one after every delivery — so 256 B (a vote is ~50 B on the
/// wire) is also cheaper per update than 1 KiB.
pub(super) const READ_BUFFER_BYTES: usize = 256;

/// Close codes this server sends.
pub(super) mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
}

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Vote {
        #[serde(default)]
        option: Option<u32>,
        #[serde(default)]
        options: Option<Vec<u32>>,
        /// Word cloud, scale and ranking votes, as on `POST …/votes`.
        #[serde(default)]
        entries: Option<Vec<String>>,
        #[serde(default)]
        value: Option<u32>,
        #[serde(default)]
        ranking: Option<Vec<u32>>,
        /// On an event's WebSocket: the question the vote is meant for.
        #[serde(default)]
        question: Option<String>,
        #[serde(default)]
        request_id: Option<String>,
    },
}

/// A client's vote frame, read and checked the same way on a poll's and an
/// event's WebSocket.
pub(super) struct VoteFrame {
    pub request_id: Option<String>,
    /// The question it is meant for (event WebSockets; ignored on a poll's).
    pub question: Option<String>,
    pub choice: crate::poll::Choice,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl VoteFrame {
    /// The frame's vote, or the error message to answer it with.
    pub(super) fn read(text: &str) -> Result<Self, String> {
        let message: ClientMessage = serde_json::from_str(text).map_err(|e| {
            let request_id = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("request_id")?.as_str().map(str::to_owned));
            error_message(request_id.as_deref(), "bad_message", &e.to_string())
        })?;
        let ClientMessage::Vote {
            option,
            options,
            entries,
            value,
            ranking,
            question,
            request_id,
        } = message;
        let rid = request_id.as_deref();
        let body = VoteBody {
            option,
            options,
            entries,
            value,
            ranking,
        };
        if body.option.is_none()
            && body.options.is_none()
            && body.entries.is_none()
            && body.value.is_none()
            && body.ranking.is_none()
        {
            let why = "a vote needs option (one index) or options (a list), or entries, value \
                       or ranking";
            return Err(error_message(rid, "bad_message", why));
        }
        let choice = body
            .choice()
            .map_err(|e| error_message(rid, e.code(), &e.to_string()))?;
        let idempotency_key = rid
            .map(IdempotencyKey::parse)
            .transpose()
            .map_err(|e| error_message(rid, "bad_request", &e.0))?;
        Ok(Self {
            request_id,
            question,
            choice,
            idempotency_key,
        })
    }
}

/// Follow and vote (WebSocket)
///
/// Server → client: `{"type":"results", …Results}` at once and on every
/// change; `{"type":"vote_ack",…}` / `{"type":"error",…}` answer a
/// client's `{"type":"vote","option":N,"request_id":"…"}`. Frames over
/// 4 KiB close with 1009; shutdown closes with 1001.
#[utoipa::path(get, path = "/api/polls/{id}/ws", tag = "follow",
    params(schema::PollIdParam,
        ("Origin" = Option<String>, Header,
            description = "Must match Host or TALLY_ALLOWED_ORIGINS when present")),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "`bad_request`: not a WebSocket handshake", body = ErrorBody),
        (status = 403, description = "`origin_not_allowed`", body = ErrorBody),
        (status = 404, description = "`poll_not_found`", body = ErrorBody),
        (status = 503, description = "`too_many_connections` or `store_unavailable`", body = ErrorBody,
            headers(("Retry-After" = u32))),
    ))]
#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn upgrade(
    State(app): State<AppState>,
    PollPath(id): PollPath,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Error> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| origin_allowed(o, &headers, &app.config.allowed_origins));
        if !allowed {
            return Err(Error::OriginNotAllowed);
        }
    }
    // An unknown poll is 404 whether or not the request is a real upgrade.
    let following = app.service.follow(&id, Transport::Ws).await?;
    let ws = ws.map_err(|e| Error::BadRequest(e.body_text()))?;
    // The handshake's cookie names the voter; without one, the connection
    // gets an id of its own for its lifetime.
    let Caller { bearer, voter } = Caller::of(&headers);
    let viewer = app
        .service
        .follower_viewer(&following, bearer.as_deref(), voter.as_ref())
        .await?;
    let voter = voter.unwrap_or_else(VoterId::generate);
    let client = app.vote_limiter.client_ip(peer, &headers);
    let conn = Connection {
        app: app.clone(),
        following,
        voter,
        viewer,
        client,
    };
    Ok(ws
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| {
            let tracked = app.shutdown.track(conn.run(socket));
            async move {
                tracked.await;
            }
        }))
}

struct Connection {
    app: AppState,
    following: Following,
    voter: VoterId,
    /// Whether pushes carry counts; a vote over this socket makes it a
    /// voter (`after_vote`).
    viewer: Viewer,
    /// The client's address, for the vote rate limit.
    client: IpAddr,
}

/// Why the loop stopped, when the server should still say goodbye.
pub(super) enum End {
    Quietly,
    Close(u16, &'static str),
}

impl Connection {
    async fn run(mut self, mut socket: WebSocket) {
        let end = self.serve(&mut socket).await;
        if let End::Close(code, reason) = end {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            let limit = self.app.config.ws_send_timeout;
            let _ = timeout(limit, socket.send(Message::Close(Some(frame)))).await;
        }
    }

    async fn serve(&mut self, socket: &mut WebSocket) -> End {
        let ping_every = self.app.config.ws_ping_interval;
        let limit = self.app.config.ws_send_timeout;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut pong_deadline: Option<Instant> = None;
        let mut last_sent: Option<u64> = None;
        let mut event = self.following.follower.latest();
        loop {
            match event.take() {
                Some(PollEvent::Deleted) => {
                    let id = self.following.follower.poll_id().to_string();
                    let msg = json!({"type": "deleted", "id": id}).to_string();
                    if !send(socket, Message::Text(msg.into()), limit).await {
                        return End::Quietly;
                    }
                    return End::Close(close_code::NORMAL, "poll deleted");
                }
                Some(PollEvent::Results(s)) if last_sent.is_none_or(|v| s.version() > v) => {
                    let s = s.for_viewer(&self.viewer);
                    if !send(socket, Message::Text(s.ws_frame()), limit).await {
                        return End::Quietly;
                    }
                    last_sent = Some(s.version());
                    self.following.delivered();
                }
                _ => {}
            }
            tokio::select! {
                next = self.following.next() => match next {
                    Some(next) => event = Some(next),
                    None => return End::Close(close_code::GOING_AWAY, "poll unavailable"),
                },
                msg = socket.recv() => match msg {
                    None | Some(Ok(Message::Close(_))) => return End::Quietly,
                    Some(Err(e)) => return close_for(e),
                    Some(Ok(Message::Text(text))) => {
                        let reply = self.handle_text(text.as_str()).await;
                        if !send(socket, Message::Text(reply.into()), limit).await {
                            return End::Quietly;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let reply = error_message(None, "bad_message", "binary frames are not accepted; send JSON text");
                        if !send(socket, Message::Text(reply.into()), limit).await {
                            return End::Quietly;
                        }
                    }
                    Some(Ok(Message::Pong(_))) => pong_deadline = None,
                    Some(Ok(Message::Ping(_))) => {}
                },
                _ = ping.tick() => {
                    if !send(socket, Message::Ping(Default::default()), limit).await {
                        return End::Quietly;
                    }
                    pong_deadline.get_or_insert(Instant::now() + self.app.config.ws_pong_timeout);
                }
                _ = sleep_until(pong_deadline.unwrap_or_else(Instant::now)), if pong_deadline.is_some() => {
                    tracing::debug!("websocket peer did not answer ping; dropping it");
                    return End::Quietly;
                }
                _ = self.app.shutdown.triggered() => {
                    return End::Close(close_code::GOING_AWAY, "server shutting down");
                }
            }
        }
    }

    /// Answers one text frame: a vote's ack or an error message.
    async fn handle_text(&mut self, text: &str) -> String {
        let frame = match VoteFrame::read(text) {
            Ok(frame) => frame,
            Err(reply) => return reply,
        };
        let (rid, choice, idempotency_key) = (
            frame.request_id.as_deref(),
            frame.choice,
            frame.idempotency_key,
        );
        if let Err(e) = self.app.vote_limiter.check(self.client) {
            return error_message(rid, e.code(), &e.to_string());
        }
        let vote = Vote {
            poll: self.following.follower.poll_id().clone(),
            choice,
            voter: self.voter.clone(),
            idempotency_key,
        };
        match self.app.service.vote(vote).await {
            Ok(s) => {
                self.viewer.voted = true;
                json!({"type": "vote_ack", "request_id": rid, "version": s.version()}).to_string()
            }
            Err(e) => {
                if matches!(e, Error::AlreadyVoted) {
                    self.viewer.voted = true;
                }
                error_message(rid, e.code(), &e.to_string())
            }
        }
    }
}

pub(super) fn error_message(request_id: Option<&str>, code: &str, message: &str) -> String {
    json!({"type": "error", "request_id": request_id, "code": code, "message": message}).to_string()
}

/// Sends one message, giving up on a peer that does not read within
/// `limit` (`TALLY_WS_SEND_TIMEOUT`).
pub(super) async fn send(socket: &mut WebSocket, msg: Message, limit: Duration) -> bool {
    matches!(timeout(limit, socket.send(msg)).await, Ok(Ok(())))
}

/// The close code for a broken read: too big, bad UTF-8, or a protocol error.
pub(super) fn close_for(error: axum::Error) -> End {
    use tungstenite::error::{CapacityError, Error as WsError};
    match error.into_inner().downcast::<WsError>().map(|e| *e) {
        Ok(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
            End::Close(close_code::TOO_BIG, "message too big")
        }
        Ok(WsError::Capacity(_)) => End::Close(close_code::TOO_BIG, "message too big"),
        Ok(WsError::Utf8(_)) => End::Close(close_code::INVALID_DATA, "invalid UTF-8"),
        Ok(WsError::Protocol(_)) => End::Close(close_code::PROTOCOL, "protocol error"),
        _ => End::Quietly,
    }
}
