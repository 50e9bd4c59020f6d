//! The errors a client can see, with the codes the API documents.
//!
//! One enum for every layer that answers clients (HTTP handlers, the
//! WebSocket protocol, the form fallback), so a code means the same thing on
//! every transport. Its HTTP rendering lives in `api::errors`.

use axum::http::StatusCode;

use crate::store::{Unavailable, VoteError};

/// An error as the client sees it: a status, a stable code and a message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Validation(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("no poll with this id")]
    PollNotFound,
    #[error("no route for this path")]
    NotFound,
    #[error("no event with this id")]
    EventNotFound,
    #[error("no live event has this join code")]
    CodeNotFound,
    #[error("only format=json is implemented")]
    NotImplemented,
    #[error("no such question on this board")]
    QuestionNotFound,
    #[error("you cannot upvote your own question")]
    OwnQuestion,
    #[error("this board holds its 2,000 questions")]
    TooManyQuestions,
    /// An event question that has votes cannot be edited.
    #[error("this question has votes: it can no longer be edited")]
    HasVotes,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("this poll is closed")]
    PollClosed,
    #[error("this poll has no such option")]
    OptionNotFound,
    #[error("you have already voted on this poll")]
    AlreadyVoted,
    #[error("this idempotency key was already used for another option")]
    IdempotencyKeyReused,
    /// A word cloud holds its maximum of distinct entries: a new one is
    /// refused, known ones still count.
    #[error("this word cloud holds its maximum of distinct entries; known entries still count")]
    TooManyEntries,
    #[error("missing admin token (Authorization: Bearer <token>)")]
    Unauthorized,
    #[error("wrong admin token")]
    Forbidden,
    #[error("cross-site request refused")]
    CrossSite,
    #[error("WebSocket origin not allowed")]
    OriginNotAllowed,
    /// A per-client limit (votes, new polls) was reached.
    #[error("too many {what} from this client; retry in {retry_after_secs} s")]
    RateLimited {
        what: &'static str,
        retry_after_secs: u64,
    },
    #[error("this instance follows too many connections; retry elsewhere")]
    TooManyConnections,
    #[error("the store is unavailable; retry shortly")]
    StoreUnavailable,
    #[error("the instance is shutting down")]
    ShuttingDown,
}

impl Error {
    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Validation(_) => "validation_failed",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::PollNotFound => "poll_not_found",
            Error::NotFound | Error::CodeNotFound => "not_found",
            Error::EventNotFound => "event_not_found",
            Error::HasVotes => "has_votes",
            Error::QuestionNotFound => "question_not_found",
            Error::NotImplemented => "not_implemented",
            Error::OwnQuestion => "own_question",
            Error::TooManyQuestions => "too_many_questions",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::PollClosed => "poll_closed",
            Error::OptionNotFound => "option_not_found",
            Error::AlreadyVoted => "already_voted",
            Error::IdempotencyKeyReused => "idempotency_key_reused",
            Error::TooManyEntries => "too_many_entries",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden => "forbidden",
            Error::CrossSite => "cross_site_request",
            Error::OriginNotAllowed => "origin_not_allowed",
            Error::RateLimited { .. } => "rate_limited",
            Error::TooManyConnections => "too_many_connections",
            Error::StoreUnavailable => "store_unavailable",
            Error::ShuttingDown => "shutting_down",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Validation(_) | Error::OptionNotFound | Error::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::PollNotFound
            | Error::NotFound
            | Error::EventNotFound
            | Error::CodeNotFound
            | Error::QuestionNotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Error::PollClosed
            | Error::AlreadyVoted
            | Error::HasVotes
            | Error::TooManyEntries
            | Error::OwnQuestion
            | Error::TooManyQuestions => StatusCode::CONFLICT,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden | Error::CrossSite | Error::OriginNotAllowed => StatusCode::FORBIDDEN,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::TooManyConnections | Error::StoreUnavailable | Error::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Seconds a client should wait before retrying, where that helps.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::StoreUnavailable | Error::TooManyConnections => Some(1),
            Error::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

impl From<Unavailable> for Error {
    fn from(e: Unavailable) -> Self {
        tracing::warn!(error = %e.0, "store unavailable");
        Error::StoreUnavailable
    }
}

impl From<VoteError> for Error {
    fn from(e: VoteError) -> Self {
        match e {
            VoteError::PollNotFound => Error::PollNotFound,
            VoteError::PollClosed => Error::PollClosed,
            VoteError::OptionNotFound => Error::OptionNotFound,
            VoteError::TooManyChoices(n) => Error::Validation(format!(
                "options: this poll takes at most {n} choice{}",
                if n == 1 { "" } else { "s" }
            )),
            VoteError::AlreadyVoted => Error::AlreadyVoted,
            VoteError::IdempotencyKeyReused => Error::IdempotencyKeyReused,
            VoteError::Invalid(message) => Error::Validation(message),
            VoteError::TooManyEntries => Error::TooManyEntries,
            VoteError::Unavailable(u) => u.into(),
        }
    }
}
