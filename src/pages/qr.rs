//! `/polls/{id}/qr.svg`: a QR code of the poll's link, for the room to scan
//! from the presenter view or a printed sheet.
//!
//! The link is absolute: `TALLY_PUBLIC_URL` when set (behind a proxy the
//! request's `Host` may be an internal name), else the scheme and `Host`
//! the visitor used, accepted only when it is a plain host\[:port\].

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use super::PageError;
use crate::api::{AppState, poll_id};
use crate::error::Error;

/// The poll's absolute address, or `None` when neither the configuration
/// nor the request gives a usable origin.
pub fn poll_url(app: &AppState, headers: &HeaderMap, id: &str) -> Option<String> {
    let origin = super::public_origin(app, headers);
    (!origin.is_empty()).then(|| format!("{origin}/polls/{id}"))
}

/// `text` as an SVG QR code: black on white (scanners want the contrast,
/// whatever the page's colours), a quiet zone, sized by its `viewBox`.
pub fn svg_of(text: &str) -> String {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .expect("a poll address fits a QR code");
    code.render::<svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build()
}

/// `GET /polls/{id}/qr.svg`.
#[tracing::instrument(skip_all, fields(poll = %id))]
pub async fn show(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let id = poll_id(&id)?;
    app.service.get(&id).await?;
    let url = poll_url(&app, &headers, id.as_str()).ok_or_else(|| {
        PageError(Error::BadRequest(
            "the Host header is not a plain host; set TALLY_PUBLIC_URL".into(),
        ))
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("image/svg+xml"),
        )],
        svg_of(&url),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_an_svg_with_a_path() {
        let svg = svg_of("https://vote.example.com/polls/abc");
        assert!(svg.contains("<svg") && svg.contains("<path"), "{svg}");
    }
}
