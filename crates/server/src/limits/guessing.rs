//! Around verify and reactivate: the guessing defence (too many
//! `CODE_NOT_FOUND` answers from one credential and client IP → 429
//! `TOO_MANY_FAILED_ATTEMPTS` for that pair only) and the idempotency key.

use super::{identity, refusal, Category, RequestCtx};
use crate::auth::Caller;
use crate::dto::RedeemDto;
use crate::error::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::future::Future;

/// Extracted before the [`Caller`]; runs a redemption under both defences.
pub struct RedemptionGuard {
    ctx: RequestCtx,
    key: IdempotencyKey,
}

impl FromRequestParts<AppState> for RedemptionGuard {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(RedemptionGuard {
            ctx: RequestCtx::from_request_parts(parts, state).await?,
            key: IdempotencyKey::from_request_parts(parts, state).await?,
        })
    }
}

impl RedemptionGuard {
    /// Runs `work` unless the caller is locked out for guessing or the
    /// idempotency key already has an answer; counts a `CODE_NOT_FOUND`.
    pub async fn run<F, Fut>(self, state: &AppState, caller: Caller, work: F) -> Response
    where
        F: FnOnce(Caller) -> Fut,
        Fut: Future<Output = Result<Json<RedeemDto>, ApiError>>,
    {
        let d = &state.defences;
        let category = Category::FailedRedemptions;
        // With the limits lifted, nothing about the caller needs spelling out.
        let limited = if d.settings.enabled {
            let guesser = format!("{}@{}", identity(&caller.principal), self.ctx.ip);
            let project = caller.principal.project_restriction().or(self.ctx.project_id.as_deref());
            let policy = d.policy_for(state, category, project).await;
            let report = d.check(category, policy, &guesser, 0).await;
            self.ctx.record(report);
            if let Some(refused) = refusal(&report, "TOO_MANY_FAILED_ATTEMPTS") {
                return refused.into_response();
            }
            Some((guesser, policy))
        } else {
            None
        };
        let claim = match self.key.claim(state, &caller).await {
            Ok(claim) => claim,
            Err(answer) => return answer,
        };
        let result = work(caller).await;
        let not_found = matches!(&result, Ok(Json(dto)) if dto.error_code == Some("CODE_NOT_FOUND"));
        if let (true, Some((guesser, policy))) = (not_found, limited) {
            self.ctx.record(d.check(category, policy, &guesser, 1).await);
        }
        let response = result.into_response();
        match claim {
            Some(claim) => claim.finish(response).await,
            None => response,
        }
    }
}
