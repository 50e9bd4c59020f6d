//! Group commit: votes of one poll that arrive while a store call for that
//! poll is in flight go together in the next call.
//!
//! There is no timer. A vote that finds its poll idle starts a call at once
//! (a lone vote waits for nothing); votes that come while it runs queue
//! behind it and leave together as soon as it returns. Under load the batch
//! grows by itself to what arrived during one round trip, so the store's
//! fixed cost per call (for Redis: one EVALSHA, its reads, one PUBLISH) is
//! shared by every vote of the batch, while each vote still gets its own
//! outcome from the batch's reply.
//!
//! Each batch runs in a task of its own, so a client that hangs up cannot
//! cancel a call half-way and leave the votes queued behind it stranded.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::{Unavailable, Vote, VoteError};
use crate::poll::{PollId, Results};

/// Most votes in one call: bounds the script's run time (Redis runs it
/// without serving anyone else) and the size of one request.
pub const MAX_BATCH: usize = 256;

/// Runs one batch of votes of one poll, in order, in one store call.
#[async_trait]
pub trait BatchVoter: Send + Sync + 'static {
    /// One outcome per vote, in the order given: `outcomes[i]` is what
    /// `votes[i]` would have got alone, after `votes[..i]`.
    async fn vote_batch(&self, poll: &PollId, votes: &[Vote]) -> Vec<Result<Results, VoteError>>;
}

type Reply = oneshot::Sender<Result<Results, VoteError>>;

/// The votes waiting behind each poll's call in flight.
type Queues = Arc<Mutex<HashMap<PollId, Vec<(Vote, Reply)>>>>;

/// The votes waiting per poll. A poll is in the map exactly while a task is
/// running its batches; that task removes it when it finds nothing queued.
pub struct GroupCommit<V> {
    voter: Arc<V>,
    queues: Queues,
}

impl<V: BatchVoter> GroupCommit<V> {
    pub fn new(voter: Arc<V>) -> Self {
        Self {
            voter,
            queues: Arc::default(),
        }
    }

    /// Counts one vote: in the next call for its poll, or in a new one at
    /// once when none is in flight.
    pub async fn vote(&self, vote: Vote) -> Result<Results, VoteError> {
        let (tx, rx) = oneshot::channel();
        let poll = vote.poll.clone();
        let start = {
            let mut queues = lock(&self.queues);
            match queues.entry(poll) {
                Entry::Occupied(mut queue) => {
                    queue.get_mut().push((vote, tx));
                    None
                }
                Entry::Vacant(slot) => {
                    let poll = slot.key().clone();
                    slot.insert(vec![(vote, tx)]);
                    Some(poll)
                }
            }
        };
        if let Some(poll) = start {
            tokio::spawn(drain(
                Arc::clone(&self.voter),
                Arc::clone(&self.queues),
                poll,
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(VoteError::Unavailable(Unavailable(
                "the vote's batch was dropped".into(),
            )))
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the batches of `poll` until none is queued.
async fn drain<V: BatchVoter>(voter: Arc<V>, queues: Queues, poll: PollId) {
    loop {
        let batch: Vec<(Vote, Reply)> = {
            let mut queues = lock(&queues);
            let Some(queue) = queues.get_mut(&poll) else {
                return;
            };
            if queue.is_empty() {
                queues.remove(&poll);
                return;
            }
            let n = queue.len().min(MAX_BATCH);
            queue.drain(..n).collect()
        };
        let (votes, replies): (Vec<Vote>, Vec<Reply>) = batch.into_iter().unzip();
        metrics::histogram!("tally_vote_batch_size").record(votes.len() as f64);
        let outcomes = voter.vote_batch(&poll, &votes).await;
        debug_assert_eq!(outcomes.len(), replies.len());
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // The voter may have hung up; its vote counted all the same.
            let _ = reply.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::{VoteLimit, VoterId};
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::sync::Semaphore;

    /// Counts calls and batch sizes; each call waits for a permit, so a
    /// test decides when the call "in flight" returns.
    struct Gate {
        calls: Mutex<Vec<usize>>,
        permits: Semaphore,
        version: AtomicU64,
    }

    #[async_trait]
    impl BatchVoter for Gate {
        async fn vote_batch(
            &self,
            poll: &PollId,
            votes: &[Vote],
        ) -> Vec<Result<Results, VoteError>> {
            lock(&self.calls).push(votes.len());
            self.permits.acquire().await.unwrap().forget();
            let labels = vec!["a".to_owned(), "b".to_owned()];
            votes
                .iter()
                .map(|_| {
                    let v = self.version.fetch_add(1, Ordering::SeqCst) + 1;
                    Ok(Results::new(
                        poll,
                        "q",
                        VoteLimit::Unlimited,
                        false,
                        v,
                        &labels,
                        &[v, 0],
                    ))
                })
                .collect()
        }
    }

    fn vote(poll: &PollId) -> Vote {
        Vote {
            poll: poll.clone(),
            choice: crate::poll::Choice::one(0),
            voter: VoterId::generate(),
            idempotency_key: None,
        }
    }

    #[tokio::test]
    async fn a_lone_vote_goes_at_once_and_votes_queued_behind_a_call_go_together() {
        let gate = Arc::new(Gate {
            calls: Mutex::default(),
            permits: Semaphore::new(0),
            version: AtomicU64::new(0),
        });
        let commit = Arc::new(GroupCommit::new(Arc::clone(&gate)));
        let poll = PollId::parse("p").unwrap();
        let first = tokio::spawn({
            let (commit, poll) = (Arc::clone(&commit), poll.clone());
            async move { commit.vote(vote(&poll)).await }
        });
        // The first vote's call starts without waiting for company.
        while lock(&gate.calls).is_empty() {
            tokio::task::yield_now().await;
        }
        assert_eq!(*lock(&gate.calls), vec![1]);
        let queued: Vec<_> = (0..5)
            .map(|_| {
                let (commit, poll) = (Arc::clone(&commit), poll.clone());
                tokio::spawn(async move { commit.vote(vote(&poll)).await })
            })
            .collect();
        while lock(&commit.queues).get(&poll).map_or(0, Vec::len) < 5 {
            tokio::task::yield_now().await;
        }
        gate.permits.add_permits(2);
        let timeout = std::time::Duration::from_secs(5);
        let first = tokio::time::timeout(timeout, first).await.unwrap().unwrap();
        assert_eq!(first.unwrap().version, 1);
        let mut versions = Vec::new();
        for q in queued {
            let r = tokio::time::timeout(timeout, q).await.unwrap().unwrap();
            versions.push(r.unwrap().version);
        }
        versions.sort_unstable();
        assert_eq!(
            versions,
            vec![2, 3, 4, 5, 6],
            "each vote has its own outcome"
        );
        assert_eq!(
            *lock(&gate.calls),
            vec![1, 5],
            "the five queued votes made one call"
        );
        assert!(
            lock(&commit.queues).is_empty(),
            "an idle poll leaves the map"
        );
    }
}
