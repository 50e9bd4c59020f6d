//! The OpenAPI 3.1 description of the HTTP API, generated from the
//! handlers' `#[utoipa::path]` annotations and served at
//! `GET /api/openapi.json`.
//!
//! This module only gathers: the paths from the handlers, the schemas from
//! [`super::schema`] (where the schema-only types of hand-built bodies
//! live), and the document-wide additions. `scripts/schemathesis` checks every documented response against a
//! running instance, which keeps the two from drifting apart.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{HeaderBuilder, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema};

use super::schema::{
    CreatedPoll, ErrorBody, ErrorCode, ErrorDetail, NonNegativeInteger, PollList, SseEvent,
    VoteResults,
};
use super::{event_ws, events, hidden, longpoll, oembed, ops, polls, qa, sse, ws};
use crate::poll::{
    EntryResult, KindName, OptionResult, Results, ResultsVisibility, Scale, VoteLimit,
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
        events::create, events::show, events::join, events::move_event, events::results,
        events::voting, events::append, events::edit, events::delete_question, events::order,
        events::delete, events::results_csv, events::changes, events::events, event_ws::upgrade,
        qa::post, qa::upvote, qa::take_back, qa::moderate, qa::page, oembed::oembed,
        ops::healthz, ops::readyz, ops::metrics, ops::stats, document,
    ),
    components(schemas(
        Results, OptionResult, VoteLimit, ResultsVisibility, polls::CreateBody, polls::VoteBody,
        EntryResult, KindName, Scale, hidden::HiddenBody,
        CreatedPoll, PollList, VoteResults, ErrorBody, ErrorDetail, ErrorCode,
        StatsBody, TransportsStats, TransportStats, ShortPollStats,
        NonNegativeInteger, SseEvent,
        events::CreateEventBody, events::ShownBody, events::VotingBody, events::OrderBody,
        crate::event::QuestionSummary, qa::PostBody, crate::event::qa::Item, crate::event::qa::Status,
    )),
    modifiers(&AdminToken, &InstanceHeader, &OptionalNotNull),
    tags(
        (name = "polls", description = "The poll resource; `GET /api/polls/{id}` is short polling"),
        (name = "follow", description = "Long polling, Server-Sent Events and WebSocket"),
        (name = "events", description = "Events: a deck of questions under one join code; \
            the presenter moves, every follower gets the whole state"),
        (name = "qa", description = "An event's audience Q&A: post, upvote, moderate, page"),
        (name = "embed", description = "oEmbed 1.0 for poll and event links"),
        (name = "ops", description = "Health, readiness, metrics, this instance's counts and this document"),
    )
)]
pub struct ApiDoc;

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
        let operations: [&mut Option<Operation>; 4] = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
        ];
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
}
