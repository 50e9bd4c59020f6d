//! The Q&A board against a model, on both stores: any sequence of posts,
//! upvotes (and take-backs) and moderation gives the same outcome for each
//! step and the same board — pinned question, order by votes then age with
//! answered ones last, the public count, the questions held back — as a
//! plain model of the rules written here, apart from the code under test.

use std::collections::HashSet;

use proptest::prelude::*;
use tally::event::qa::{Action, NewQuestion, Status};
use tally::event::{EventId, JoinCode};
use tally::poll::VoterId;
use tally::store::Store;
use tally::store::events::CreateEvent;
use tally::store::qa::QaRefusal;

#[derive(Debug, Clone)]
pub enum Op {
    Post(u8),
    Upvote { q: u32, voter: u8, up: bool },
    Moderate { q: u32, action: u8 },
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..6).prop_map(Op::Post),
        6 => (1u32..8, 0u8..6, any::<bool>()).prop_map(|(q, voter, up)| Op::Upvote { q, voter, up }),
        2 => (1u32..8, 0u8..4).prop_map(|(q, action)| Op::Moderate { q, action }),
    ]
}

const ACTIONS: [Action; 4] = [Action::Approve, Action::Hide, Action::Answer, Action::Pin];

#[derive(Debug, Clone)]
struct Question {
    votes: u64,
    status: Status,
    author: u8,
}

/// The rules, as plainly as they can be said.
#[derive(Default)]
struct Model {
    moderation: bool,
    questions: Vec<Question>,
    posted: HashSet<u8>,
    ups: HashSet<(u32, u8)>,
    pin: Option<u32>,
}

fn public(s: Status) -> bool {
    matches!(s, Status::Open | Status::Answered)
}

impl Model {
    fn apply(&mut self, op: &Op) -> Result<(), QaRefusal> {
        match *op {
            Op::Post(voter) => {
                // Every post of a run is within 10 s of the voter's last.
                if !self.posted.insert(voter) {
                    return Err(QaRefusal::RateLimited(0));
                }
                let status = if self.moderation {
                    Status::Pending
                } else {
                    Status::Open
                };
                self.questions.push(Question {
                    votes: 0,
                    status,
                    author: voter,
                });
                Ok(())
            }
            Op::Upvote { q, voter, up } => {
                let Some(question) = self.questions.get_mut(q as usize - 1) else {
                    return Err(QaRefusal::QuestionNotFound);
                };
                if !public(question.status) {
                    return Err(QaRefusal::QuestionNotFound);
                }
                if question.author == voter {
                    return Err(QaRefusal::OwnQuestion);
                }
                let changed = if up {
                    self.ups.insert((q, voter))
                } else {
                    self.ups.remove(&(q, voter))
                };
                if changed {
                    if up {
                        question.votes += 1
                    } else {
                        question.votes -= 1
                    }
                }
                Ok(())
            }
            Op::Moderate { q, action } => {
                let Some(question) = self.questions.get_mut(q as usize - 1) else {
                    return Err(QaRefusal::QuestionNotFound);
                };
                match ACTIONS[action as usize] {
                    // Approving shows a pending question, or a hidden one again.
                    Action::Approve
                        if matches!(question.status, Status::Pending | Status::Hidden) =>
                    {
                        question.status = Status::Open
                    }
                    Action::Approve => {}
                    Action::Hide => {
                        question.status = Status::Hidden;
                        if self.pin == Some(q) {
                            self.pin = None;
                        }
                    }
                    Action::Answer => question.status = Status::Answered,
                    Action::Pin => {
                        match question.status {
                            Status::Hidden => return Err(QaRefusal::QuestionNotFound),
                            Status::Pending => question.status = Status::Open,
                            _ => {}
                        }
                        self.pin = if self.pin == Some(q) { None } else { Some(q) };
                    }
                }
                Ok(())
            }
        }
    }

    /// Public ids in board order, pinned first.
    fn order(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = (1..=self.questions.len() as u32)
            .filter(|&id| public(self.questions[id as usize - 1].status) && Some(id) != self.pin)
            .collect();
        ids.sort_by(|&a, &b| {
            let (qa, qb) = (
                &self.questions[a as usize - 1],
                &self.questions[b as usize - 1],
            );
            let answered = |q: &Question| q.status == Status::Answered;
            (answered(qa), std::cmp::Reverse(qa.votes), a).cmp(&(
                answered(qb),
                std::cmp::Reverse(qb.votes),
                b,
            ))
        });
        self.pin.into_iter().chain(ids).collect()
    }

    fn held(&self) -> Vec<u32> {
        (1..=self.questions.len() as u32)
            .filter(|&id| !public(self.questions[id as usize - 1].status))
            .collect()
    }
}

fn same_refusal(a: &QaRefusal, b: &QaRefusal) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Runs `ops` on a fresh event of `store` and on the model, comparing every
/// outcome and the board after each step.
pub async fn run(store: &dyn Store, moderation: bool, ops: &[Op]) {
    let id = EventId::generate();
    let created = store
        .create_event(&CreateEvent {
            id: id.clone(),
            title: "props".into(),
            code: JoinCode::generate(),
            admin_token_sha256: String::new(),
            deck: Vec::new(),
            created_at_ms: 0,
            qa_moderation: moderation,
        })
        .await
        .unwrap();
    assert!(created);
    let voter = |v: u8| VoterId::parse(&format!("voter{v}")).unwrap();
    let mut model = Model {
        moderation,
        ..Model::default()
    };
    for (step, op) in ops.iter().enumerate() {
        let expected = model.apply(op);
        let got = match *op {
            Op::Post(v) => {
                let q = NewQuestion::parse(&format!("question from {v}"), None).unwrap();
                store.qa_post(&id, &voter(v), &q).await.unwrap()
            }
            Op::Upvote { q, voter: v, up } => store.qa_upvote(&id, q, &voter(v), up).await.unwrap(),
            Op::Moderate { q, action } => store
                .qa_moderate(&id, q, ACTIONS[action as usize])
                .await
                .unwrap(),
        };
        match (&expected, &got) {
            (Ok(()), Ok(_)) => {}
            (Err(e), Err(g)) if same_refusal(e, g) => {}
            _ => panic!("step {step} {op:?}: model {expected:?}, store {got:?}"),
        }
        let board = store.get_event(&id).await.unwrap().unwrap().qa;
        let mut shown: Vec<u32> = board.pinned.iter().map(|i| i.id).collect();
        shown.extend(board.top.iter().map(|i| i.id));
        assert_eq!(shown, model.order(), "step {step} {op:?}: board order");
        assert_eq!(
            board.public as usize,
            model.order().len(),
            "step {step}: public count"
        );
        let held: Vec<u32> = board.held.iter().map(|i| i.id).collect();
        assert_eq!(held, model.held(), "step {step}: held back");
        for item in board.pinned.iter().chain(&board.top) {
            assert_eq!(
                item.votes,
                model.questions[item.id as usize - 1].votes,
                "step {step}: votes of {}",
                item.id
            );
        }
        let (page, total) = store.qa_page(&id, 0, 100).await.unwrap().unwrap();
        assert_eq!(
            page.iter().map(|i| i.id).collect::<Vec<_>>(),
            model.order(),
            "step {step}: page"
        );
        assert_eq!(total as usize, model.order().len());
    }
    for v in 0..6u8 {
        let mut expected: Vec<u32> = model
            .ups
            .iter()
            .filter(|(_, w)| *w == v)
            .map(|(q, _)| *q)
            .collect();
        expected.sort_unstable();
        assert_eq!(
            store.qa_upvoted(&id, &voter(v)).await.unwrap(),
            expected,
            "upvotes of voter {v}"
        );
    }
}
