//! The OpenAPI 3.1 document, generated from the handlers' annotations and the
//! DTO types, served at `/openapi.json` and rendered (offline) at `/docs`.

use axum::response::{Html, IntoResponse};
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// RFC 9457 problem details, the body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Machine-readable: e.g. INVALID_SIGNATURE, VALIDATION_FAILED, RATE_LIMITED.
    pub code: String,
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Personal access token (cgp_…)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "hmac",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "With X-Timestamp and X-Signature: HMAC-SHA256 over METHOD, path, canonical query, body hash and timestamp",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "CodeGate", description = "Issue, manage and redeem codes."),
    modifiers(&SecuritySchemes),
    paths(
        super::health::healthz, super::health::readyz,
        super::sdk::get_project, super::sdk::statistics, super::sdk::list_codes, super::sdk::get_code,
        super::sdk::get_code_by_code, super::sdk::verify, super::sdk::reactivate,
        super::projects::create, super::projects::list, super::projects::update, super::projects::remove,
        super::codes::generate, super::codes::import, super::codes::update, super::codes::remove,
        super::codes::bulk, super::codes::batches, super::codes::export,
        super::keys::create, super::keys::list, super::keys::remove, super::keys::update, super::keys::rotate,
        super::logs::redemptions, super::logs::audit_log, super::logs::overview, super::logs::project_overview,
        super::session::login, super::session::logout, super::session::me, super::session::change_password,
        super::tokens::list, super::tokens::create, super::tokens::rotate, super::tokens::revoke,
        super::users::list, super::users::create, super::users::update, super::users::remove,
    ),
    components(schemas(Problem))
)]
pub struct ApiDoc;

pub async fn document() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// A self-contained page (no CDN) that lists every operation of the document.
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
