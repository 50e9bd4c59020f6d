//! WebSocket of an event: `GET /api/events/{id}/ws`.
//!
//! Pushes `{"type":"event", …state}` on connect and on every change (the
//! newest only: a slow client skips states), `{"type":"deleted"}` when the
//! event goes. The client may vote on the current question as on a poll's
//! WebSocket: `{"type":"vote","option":N,"request_id":"…"}`, optionally
//! with `"question": id` so a vote meant for a question already left is
//! refused (`poll_closed`) rather than counted on the next one.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::json;
use tokio::time::{Instant, sleep_until, timeout};

use super::AppState;
use super::caller::Caller;
use super::events::EventPath;
use super::schema::ErrorBody;
use super::security::origin_allowed;
use super::ws::{
    End, MAX_MESSAGE_BYTES, READ_BUFFER_BYTES, VoteFrame, close_code, close_for, error_message,
    send,
};
use crate::error::Error;
use crate::event::Cursor;
use crate::event::view::{EventUpdate, View};
use crate::poll::{PollId, VoterId};
use crate::service::{EventFollowing, Transport};
use crate::store::Vote;

/// Follow an event (WebSocket)
#[utoipa::path(get, path = "/api/events/{id}/ws", tag = "events",
    params(("id" = String, Path)),
    responses((status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn upgrade(
    State(app): State<AppState>,
    EventPath(id): EventPath,
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
    let following = app.service.follow_event(&id, Transport::Ws).await?;
    let ws = ws.map_err(|e| Error::BadRequest(e.body_text()))?;
    let Caller { bearer, voter } = Caller::of(&headers);
    // The one per-caller part of the board, sent apart at connect: which
    // questions this voter upvoted (their page keeps it current after).
    let upvoted = match &voter {
        Some(v) => Some(app.service.qa_upvoted(&id, v).await?),
        None => None,
    };
    let admin = match bearer.as_deref() {
        Some(token) => app.service.is_event_admin(&id, Some(token)).await?,
        None => false,
    };
    let conn = Connection {
        client: app.vote_limiter.client_ip(peer, &headers),
        app: app.clone(),
        following,
        voter: voter.unwrap_or_else(VoterId::generate),
        admin,
        voted_on: None,
        upvoted,
    };
    Ok(ws
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
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
    following: EventFollowing,
    voter: VoterId,
    admin: bool,
    /// The question this connection has voted on (for `after_vote` counts).
    voted_on: Option<PollId>,
    /// The caller's upvotes, sent once after the first state.
    upvoted: Option<Vec<u32>>,
    client: IpAddr,
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

    /// Whether this connection has voted on the question on screen.
    fn voted_now(&self, current: Option<&PollId>) -> bool {
        current.is_some() && self.voted_on.as_ref() == current
    }

    async fn serve(&mut self, socket: &mut WebSocket) -> End {
        let ping_every = self.app.config.ws_ping_interval;
        let limit = self.app.config.ws_send_timeout;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut pong_deadline: Option<Instant> = None;
        let mut last_sent: Option<(Cursor, View)> = None;
        let mut update = self.following.follower.latest();
        loop {
            match update.take() {
                Some(EventUpdate::Deleted) => {
                    let id = self.following.follower.key().to_string();
                    let msg = json!({"type": "deleted", "id": id}).to_string();
                    if !send(socket, Message::Text(msg.into()), limit).await {
                        return End::Quietly;
                    }
                    return End::Close(close_code::NORMAL, "event deleted");
                }
                Some(EventUpdate::State(s)) => {
                    let voted = self.voted_now(s.record.current.as_ref());
                    let counts = s.view_for(self.admin, voted);
                    // A vote of this connection can reveal counts without a
                    // new cursor: send again then.
                    if last_sent.is_none_or(|(c, shown)| s.cursor.is_after(&c) || counts != shown) {
                        if !send(socket, Message::Text(s.ws_frame(counts)), limit).await {
                            return End::Quietly;
                        }
                        last_sent = Some((s.cursor, counts));
                        self.following.delivered();
                        if let Some(ids) = self.upvoted.take() {
                            let msg = json!({"type": "upvoted", "ids": ids}).to_string();
                            if !send(socket, Message::Text(msg.into()), limit).await {
                                return End::Quietly;
                            }
                        }
                    }
                }
                None => {}
            }
            tokio::select! {
                next = self.following.next() => match next {
                    Some(next) => update = Some(next),
                    None => return End::Close(close_code::GOING_AWAY, "event unavailable"),
                },
                msg = socket.recv() => match msg {
                    None | Some(Ok(Message::Close(_))) => return End::Quietly,
                    Some(Err(e)) => return close_for(e),
                    Some(Ok(Message::Text(text))) => {
                        let reply = self.handle_text(text.as_str()).await;
                        if !send(socket, Message::Text(reply.into()), limit).await {
                            return End::Quietly;
                        }
                        update = self.following.follower.peek_value();
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
                    return End::Quietly;
                }
                _ = self.app.shutdown.triggered() => {
                    return End::Close(close_code::GOING_AWAY, "server shutting down");
                }
            }
        }
    }

    async fn handle_text(&mut self, text: &str) -> String {
        let frame = match VoteFrame::read(text) {
            Ok(frame) => frame,
            Err(reply) => return reply,
        };
        let (rid, question, choice, idempotency_key) = (
            frame.request_id.as_deref(),
            frame.question,
            frame.choice,
            frame.idempotency_key,
        );
        let current = super::events::current_question(&self.following);
        let poll = match (question, current) {
            (_, None) => {
                let e = Error::PollClosed;
                return error_message(
                    rid,
                    e.code(),
                    "the event is in the lobby: nothing to vote on",
                );
            }
            (Some(q), Some(current)) if q != current.as_str() => {
                let e = Error::PollClosed;
                return error_message(rid, e.code(), "that question is no longer on screen");
            }
            (_, Some(current)) => current,
        };
        if let Err(e) = self.app.vote_limiter.check(self.client) {
            return error_message(rid, e.code(), &e.to_string());
        }
        let vote = Vote {
            poll: poll.clone(),
            choice,
            voter: self.voter.clone(),
            idempotency_key,
        };
        match self.app.service.vote(vote).await {
            Ok(s) => {
                self.voted_on = Some(poll.clone());
                json!({"type": "vote_ack", "request_id": rid, "question": poll, "version": s.version()})
                    .to_string()
            }
            Err(e) => {
                if matches!(e, Error::AlreadyVoted) {
                    self.voted_on = Some(poll);
                }
                error_message(rid, e.code(), &e.to_string())
            }
        }
    }
}
