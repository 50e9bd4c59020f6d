//! The OpenAPI 3.1 description of the HTTP API, generated from the
//! handlers' `#[utoipa::path]` annotations and served at
//! `GET /api/openapi.json`.
//!
//! Handlers build some bodies by hand (pre-serialised results, `json!`), so
//! the response shapes they promise are declared here as schema-only types.
//! `scripts/schemathesis` checks every documented response against a
//! running instance, which keeps the two from drifting apart.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{HeaderBuilder, RefOr};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToSchema};

use super::{hidden, longpoll, ops, polls, sse, ws};
use crate::error::Error;
use crate::poll::{
    EntryResult, KindName, MAX_OPTION_CHARS, MAX_OPTIONS, OptionResult, Results, ResultsVisibility,
    Scale, VoteLimit,
};
use crate::stats::{ShortPollStats, StatsBody, TransportStats, TransportsStats};

/// The whole document: every JSON route, the operational ones, and this one.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tally",
        description = "Live polls: create, vote, and follow the tallies by short polling, \
                       long polling, Server-Sent Events or WebSocket. Every response carries \
                       `X-Tally-Instance`; every error has the body \
                       `{\"error\":{\"code\":\"…\",\"message\":\"…\"}}`."
    ),
    paths(
        polls::create, polls::list, polls::show, polls::vote, polls::close, polls::reopen,
        polls::results_csv_file, polls::delete, hidden::hide, hidden::unhide,
        longpoll::changes, sse::events, ws::upgrade,
        ops::healthz, ops::readyz, ops::metrics, ops::stats, document,
    ),
    components(schemas(
        Results, OptionResult, VoteLimit, ResultsVisibility, polls::CreateBody, polls::VoteBody,
        EntryResult, KindName, Scale, hidden::HiddenBody,
        CreatedPoll, PollList, VoteResults, ErrorBody, ErrorDetail, ErrorCode,
        StatsBody, TransportsStats, TransportStats, ShortPollStats,
        NonNegativeInteger, SseEvent,
    )),
    modifiers(&AdminToken, &InstanceHeader, &OptionalNotNull),
    tags(
        (name = "polls", description = "The poll resource; `GET /api/polls/{id}` is short polling"),
        (name = "follow", description = "Long polling, Server-Sent Events and WebSocket"),
        (name = "ops", description = "Health, readiness, metrics, this instance's counts and this document"),
    )
)]
pub struct ApiDoc;

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
            | Error::ShuttingDown => {}
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

/// The bearer scheme of close and delete.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("The poll's admin token, from its creation"))
            .build();
        components.add_security_scheme("admin_token", SecurityScheme::Http(scheme));
    }
}

/// Calls `f` on every operation of the document.
fn each_operation(openapi: &mut utoipa::openapi::OpenApi, mut f: impl FnMut(&mut Operation)) {
    for item in openapi.paths.paths.values_mut() {
        let operations: [&mut Option<Operation>; 3] =
            [&mut item.get, &mut item.post, &mut item.delete];
        operations.into_iter().flatten().for_each(&mut f);
    }
}

/// Adds `X-Tally-Instance` to every response of every operation.
struct InstanceHeader;

impl Modify for InstanceHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let header = HeaderBuilder::new()
            .schema(Some(String::schema()))
            .description(Some("The instance that answered"))
            .build();
        each_operation(openapi, |op| {
            for response in op.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .insert("X-Tally-Instance".to_owned(), RefOr::T(header.clone()));
                }
            }
        });
    }
}

/// An optional header or query parameter is absent or a value, never
/// `null`: drops the `null` that `Option<T>` adds to its type.
struct OptionalNotNull;

impl Modify for OptionalNotNull {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        each_operation(openapi, |op| {
            let params = op.parameters.iter_mut().flatten();
            let schemas = params.filter_map(|p| match p {
                RefOr::T(p) => p.schema.as_mut(),
                RefOr::Ref(_) => None,
            });
            for schema in schemas {
                if let RefOr::T(Schema::Object(object)) = schema
                    && let SchemaType::Array(types) = &object.schema_type
                {
                    let kept: Vec<Type> = types
                        .iter()
                        .filter(|t| **t != Type::Null)
                        .cloned()
                        .collect();
                    if let [only] = kept.as_slice() {
                        object.schema_type = SchemaType::Type(only.clone());
                    }
                }
            }
        });
    }
}

/// The OpenAPI document of this API
#[utoipa::path(get, path = "/api/openapi.json", tag = "ops",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
pub async fn document() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| ApiDoc::openapi().to_pretty_json().expect("serialisable"));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json.as_str(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_operations() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/api/polls", "get"),
            ("/api/polls", "post"),
            ("/api/polls/{id}", "get"),
            ("/api/polls/{id}", "delete"),
            ("/api/polls/{id}/votes", "post"),
            ("/api/polls/{id}/close", "post"),
            ("/api/polls/{id}/reopen", "post"),
            ("/api/polls/{id}/results.csv", "get"),
            ("/api/polls/{id}/changes", "get"),
            ("/api/polls/{id}/events", "get"),
            ("/api/polls/{id}/ws", "get"),
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/metrics", "get"),
            ("/api/stats", "get"),
            ("/api/openapi.json", "get"),
        ] {
            let op = &paths[path][method];
            assert!(op.is_object(), "{method} {path} undocumented");
            for (status, response) in op["responses"].as_object().unwrap() {
                assert!(
                    response["headers"]["X-Tally-Instance"].is_object(),
                    "{method} {path} {status} lacks X-Tally-Instance"
                );
            }
        }
    }

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
