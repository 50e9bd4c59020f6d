//! HTTP rendering of [`Error`], and extractors whose rejections use it, so
//! every failure — including the framework's own — has the same JSON body:
//! `{"error":{"code":"…","message":"…"}}`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::Error;

/// Most bytes a JSON request body may have.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType,
            JsonRejection::JsonDataError(e) => Error::Validation(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => Error::BadRequest(e.body_text()),
            JsonRejection::BytesRejection(e) if e.status() == 413 => {
                Error::PayloadTooLarge(MAX_BODY_BYTES)
            }
            other => Error::BadRequest(other.body_text()),
        }
    }
}

/// `axum::Json`, but rejecting with the API's error body.
///
/// The body is first parsed as a JSON object, then converted: that keeps
/// unparsable text a 400 and every well-formed body of the wrong shape a
/// 422 — serde alone would accept an array for a struct (`[0]` as a vote)
/// and call a number where an enum string belongs a syntax error.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        if !is_plain_json(req.headers()) {
            // A parameter or a `+json` type: axum's checks decide.
            let Json(object) = Json::<Map<String, Value>>::from_request(req, state).await?;
            return from_object(object);
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(JsonRejection::from)?;
        // A well-formed object of the right shape parses straight into `T`,
        // the same value the two steps below give it, without building a
        // `Value` first (that was 8 % of tally's CPU per vote). Anything
        // serde refuses (and a duplicate field) takes the two steps, which
        // decide the error as before.
        if bytes.trim_ascii_start().first() == Some(&b'{')
            && let Ok(value) = serde_json::from_slice::<T>(&bytes)
        {
            return Ok(JsonBody(value));
        }
        let Json(object) = Json::<Map<String, Value>>::from_bytes(&bytes)?;
        from_object(object)
    }
}

/// Whether the body is declared as exactly `application/json`, which is
/// what every client of the API sends.
fn is_plain_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"application/json"))
}

/// The second step: a JSON object converted to `T`, with the path of the
/// field at fault in the error (`max_choices: invalid type…`).
fn from_object<T: DeserializeOwned>(object: Map<String, Value>) -> Result<JsonBody<T>, Error> {
    serde_path_to_error::deserialize(Value::Object(object))
        .map(JsonBody)
        .map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                Error::Validation(format!("invalid request body: {inner}"))
            } else {
                Error::Validation(format!("invalid request body: {path}: {inner}"))
            }
        })
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::BadRequest(rejection.body_text())
    }
}

/// `axum::extract::Query`, but rejecting with the API's error body.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct QueryParams<T>(pub T);

/// The fallback for unknown paths.
pub async fn not_found() -> Error {
    Error::NotFound
}

/// The fallback for known paths with the wrong method.
pub async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}
