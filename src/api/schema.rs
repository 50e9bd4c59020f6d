//! The shapes of the API's bodies and parameters as OpenAPI schemas, for
//! the handlers' `#[utoipa::path]` annotations and for the document
//! ([`super::openapi`] gathers the paths).
//!
//! Handlers build some bodies by hand (pre-serialised results, `json!`), so
//! the response shapes they promise are declared here as schema-only types.
//! They live apart from the document so that a handler and the document
//! both import them, and neither imports the other's module.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::error::Error;
use crate::poll::{MAX_OPTION_CHARS, MAX_OPTIONS, Results};

/// The `{id}` of every poll path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PollIdParam {
    /// A poll id: 1–32 characters of `A-Z a-z 0-9 _ -`. Anything else is
    /// simply not found.
    #[param(pattern = "^[A-Za-z0-9_-]{1,32}$", example = "lpl")]
    pub id: String,
}

/// Answer of `POST /api/polls`.
#[derive(ToSchema)]
pub struct CreatedPoll {
    /// The new poll, version 0.
    pub poll: Results,
    /// Needed to close or delete the poll; shown only once.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub admin_token: String,
}

/// Answer of `GET /api/polls`.
#[derive(ToSchema)]
pub struct PollList {
    /// Newest first.
    pub polls: Vec<Results>,
}

/// Answer of a vote: the results right after it.
#[derive(ToSchema)]
pub struct VoteResults {
    /// The poll right after this vote (for a replay: right after the first).
    pub results: Results,
}

/// Every error answer's body.
#[derive(ToSchema)]
#[schema(example = json!({"error": {"code": "poll_not_found", "message": "no poll with this id"}}))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable; what clients should branch on.
    pub code: ErrorCode,
    /// For people; may change.
    #[schema(min_length = 1)]
    pub message: String,
}

/// The stable, machine-readable error codes.
pub struct ErrorCode;

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .description(Some("A stable error code; the status tells its class."))
            .enum_values(Some(error_codes()))
            .into()
    }
}

impl ToSchema for ErrorCode {}

/// Every code an [`Error`] can have, in declaration order.
pub fn error_codes() -> Vec<&'static str> {
    let every = [
        Error::BadRequest(String::new()),
        Error::Validation(String::new()),
        Error::PayloadTooLarge(0),
        Error::UnsupportedMediaType,
        Error::PollNotFound,
        Error::NotFound,
        Error::MethodNotAllowed,
        Error::PollClosed,
        Error::OptionNotFound,
        Error::AlreadyVoted,
        Error::IdempotencyKeyReused,
        Error::TooManyEntries,
        Error::Unauthorized,
        Error::Forbidden,
        Error::CrossSite,
        Error::OriginNotAllowed,
        Error::RateLimited {
            what: "",
            retry_after_secs: 0,
        },
        Error::TooManyConnections,
        Error::StoreUnavailable,
        Error::ShuttingDown,
        Error::EventNotFound,
        Error::HasVotes,
        Error::QuestionNotFound,
        Error::OwnQuestion,
        Error::TooManyQuestions,
        Error::NotImplemented,
    ];
    // A new variant must be listed above: this match stops compiling.
    for e in &every {
        match e {
            Error::BadRequest(_)
            | Error::Validation(_)
            | Error::PayloadTooLarge(_)
            | Error::UnsupportedMediaType
            | Error::PollNotFound
            | Error::NotFound
            | Error::MethodNotAllowed
            | Error::PollClosed
            | Error::OptionNotFound
            | Error::AlreadyVoted
            | Error::IdempotencyKeyReused
            | Error::TooManyEntries
            | Error::Unauthorized
            | Error::Forbidden
            | Error::CrossSite
            | Error::OriginNotAllowed
            | Error::RateLimited { .. }
            | Error::TooManyConnections
            | Error::StoreUnavailable
            | Error::ShuttingDown
            | Error::EventNotFound
            | Error::HasVotes
            | Error::QuestionNotFound
            | Error::OwnQuestion
            | Error::TooManyQuestions
            | Error::NotImplemented => {}
            // Its code is `not_found`, listed with `NotFound`.
            Error::CodeNotFound => {}
        }
    }
    every.iter().map(Error::code).collect()
}

/// A non-negative integer query parameter that the server reads as a
/// `u64`: every integer from 0 to 2^64-1 is accepted, anything else is 400.
/// (utoipa's own `u64` says `format: int64`, whose range ends at 2^63-1,
/// so a fuzzer took 2^63 for invalid input wrongly accepted.)
pub struct NonNegativeInteger;

impl PartialSchema for NonNegativeInteger {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .minimum(Some(0))
            .maximum(Some(utoipa::Number::UInt(
                usize::try_from(u64::MAX).expect("a 64-bit target"),
            )))
            .into()
    }
}

impl ToSchema for NonNegativeInteger {}

/// One event of `GET /api/polls/{id}/events`, as an events-aware checker
/// reads it (OpenAPI 3.1 gives `text/event-stream` one schema per event):
/// `results` with the version as `id` and the results as JSON `data`, or
/// the final `deleted` with the poll's id. Comments (keep-alives) and the
/// opening `retry:` carry no data and are not events.
pub struct SseEvent;

fn json_text(content: RefOr<Schema>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .content_media_type("application/json")
        .content_schema(Some(content))
}

fn event_name(name: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some([name]))
}

impl PartialSchema for SseEvent {
    fn schema() -> RefOr<Schema> {
        let version = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .pattern(Some("^[0-9]+$"))
            .description(Some("The results' version"));
        let results = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .description(Some("The results, at once and on every change"))
            .property("event", event_name("results"))
            .property("id", version)
            .property(
                "data",
                json_text(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "Results",
                ))),
            )
            .required("event")
            .required("id")
            .required("data");
        let deleted_data = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .property("id", String::schema())
            .required("id");
        let deleted = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .description(Some("The poll was deleted; the stream ends"))
            .property("event", event_name("deleted"))
            .property("data", json_text(deleted_data.into()))
            .required("event")
            .required("data");
        utoipa::openapi::OneOfBuilder::new()
            .item(results)
            .item(deleted)
            .description(Some(
                "One event of the stream (`retry: 2000` opens it; keep-alive comments are not events)",
            ))
            .into()
    }
}

impl ToSchema for SseEvent {}

/// The `options` of a new poll: 2–20 labels of 1–100 characters (2–10
/// for a ranking; none for a word cloud or a scale, where the field may be
/// left out).
pub fn option_labels() -> ArrayBuilder {
    let label = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .min_length(Some(1))
        .max_length(Some(MAX_OPTION_CHARS));
    ArrayBuilder::new()
        .items(label)
        .min_items(Some(0))
        .max_items(Some(MAX_OPTIONS))
        .unique_items(true)
}

/// The `options` of a vote: 1–20 distinct option indexes (0–19); the
/// poll's `max_choices` bounds them further.
pub fn vote_options() -> ArrayBuilder {
    let index = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Integer))
        .minimum(Some(0))
        .maximum(Some((MAX_OPTIONS - 1) as u32));
    ArrayBuilder::new()
        .items(index)
        .min_items(Some(1))
        .max_items(Some(MAX_OPTIONS))
        .unique_items(true)
}

/// The error answers every admin JSON route of an event shares (bad body,
/// token missing or wrong, unknown event, store down), documented once.
pub struct AdminJsonErrors;

impl utoipa::IntoResponses for AdminJsonErrors {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        use utoipa::openapi::{ContentBuilder, ResponseBuilder, ResponsesBuilder};
        let error = |description: &str| {
            ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
        };
        let retry = utoipa::openapi::HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new().schema_type(SchemaType::Type(Type::Integer)),
            ))
            .build();
        ResponsesBuilder::new()
            .response("400", error("`bad_request`: the body is not JSON"))
            .response("401", error("`unauthorized`: no admin token"))
            .response(
                "403",
                error("`forbidden` (wrong token) or `cross_site_request`"),
            )
            .response("404", error("`event_not_found`"))
            .response("413", error("`payload_too_large`"))
            .response("415", error("`unsupported_media_type`"))
            .response(
                "503",
                error("`store_unavailable`").header("Retry-After", retry),
            )
            .build()
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_listed_once_each() {
        let codes = error_codes();
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(codes.len(), unique.len());
        assert!(codes.contains(&"store_unavailable"));
    }
}
