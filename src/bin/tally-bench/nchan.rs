//! Driving Nchan (the nginx pub/sub module) with the same followers, so the
//! two can be compared in one run on one machine.
//!
//! A "vote" becomes a publish: the bench itself counts, gives every publish
//! the next version, and POSTs the whole results JSON (the same shape tally
//! sends) to Nchan's publisher endpoint `/pub/{channel}` with
//! `X-EventSource-Event: results`, so EventSource followers read the same
//! `event: results` blocks as from tally. The publish's 201/202 reply is its
//! acknowledgement, as a vote's 200 is. Followers subscribe to
//! `/sub/{channel}`: a WebSocket handshake, `Accept: text/event-stream`, or
//! long polls that walk the channel with `If-Modified-Since` /
//! `If-None-Match` set from the previous reply's `Last-Modified` / `Etag`.

use std::sync::{Arc, Mutex};

use anyhow::bail;
use hyper::{Method, StatusCode};

use crate::net::{Counters, Http, Target};

const LABELS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

/// The tallies of one channel, kept by the bench (Nchan only relays them).
pub struct Channel {
    pub id: String,
    state: Mutex<State>,
}

struct State {
    version: u64,
    counts: Vec<u64>,
}

impl Channel {
    /// A channel with a fresh random id, at version 1 with no votes.
    pub fn new() -> Self {
        Self {
            id: format!("bench{:016x}", rand::random::<u64>()),
            state: Mutex::new(State {
                version: 1,
                counts: vec![0; LABELS.len()],
            }),
        }
    }

    pub fn options(&self) -> u32 {
        LABELS.len() as u32
    }

    /// Counts a vote for `option` and returns the new version and the
    /// results JSON to publish.
    pub fn vote(&self, option: u32) -> (u64, String) {
        let mut s = self.state.lock().expect("channel lock");
        s.version += 1;
        s.counts[option as usize] += 1;
        (s.version, self.render(&s))
    }

    /// The current results: what every follower must end on.
    pub fn results(&self) -> (u64, String) {
        let s = self.state.lock().expect("channel lock");
        (s.version, self.render(&s))
    }

    fn render(&self, s: &State) -> String {
        let options: Vec<serde_json::Value> = LABELS
            .iter()
            .zip(&s.counts)
            .enumerate()
            .map(|(i, (label, votes))| serde_json::json!({"id": i, "label": label, "votes": votes}))
            .collect();
        serde_json::json!({
            "id": self.id,
            "question": "tally-bench poll 0",
            "vote_limit": "unlimited",
            "closed": false,
            "version": s.version,
            "total": s.counts.iter().sum::<u64>(),
            "options": options,
        })
        .to_string()
    }
}

/// Publishes `body` on `channel`; Nchan answers 201 (or 202 with no subscriber) when it took it.
pub async fn publish(http: &mut Http, channel: &str, body: String) -> anyhow::Result<StatusCode> {
    let (status, _, _) = http
        .fetch(
            Method::POST,
            &format!("/pub/{channel}"),
            &[("x-eventsource-event", "results"), ("accept", "text/json")],
            Some(body),
        )
        .await?;
    Ok(status)
}

/// Creates a channel and publishes its first state, which every follower
/// receives first (the locations use `nchan_subscriber_first_message oldest`).
pub async fn prepare(target: &Target) -> anyhow::Result<Arc<Channel>> {
    let channel = Arc::new(Channel::new());
    let mut http = Http::open(target, None, &Arc::new(Counters::default())).await?;
    let (_, body) = channel.results();
    let status = publish(&mut http, &channel.id, body).await?;
    if !matches!(status, StatusCode::CREATED | StatusCode::ACCEPTED) {
        bail!("publishing the first message to Nchan: {status}");
    }
    Ok(channel)
}

/// Where every kind of follower subscribes on Nchan (the request says which kind).
pub fn subscriber_path(channel: &str) -> String {
    format!("/sub/{channel}")
}

#[cfg(test)]
mod tests {
    use super::Channel;
    use crate::net::version_of;

    #[test]
    fn each_vote_is_the_next_version_with_the_whole_tallies() {
        let channel = Channel::new();
        assert_eq!(channel.results().0, 1);
        channel.vote(2);
        let (version, json) = channel.vote(2);
        assert_eq!(version, 3);
        assert_eq!(version_of(json.as_bytes()), Some(3));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["total"], 2);
        assert_eq!(v["options"][2]["votes"], 2);
        assert_eq!(v["options"][0]["votes"], 0);
        assert_eq!(v["id"], channel.id.as_str());
        assert_eq!(channel.results().1, json, "results are the last publish");
    }
}
