//! Login throttling: failed attempts count per client IP and per username;
//! when either is used up, logins are refused before any password is checked.
//! Unknown users count like known ones, so the answers stay identical.

use super::{refusal, Category, Defences, RequestCtx};
use crate::error::ApiError;

impl Defences {
    /// Refuses (429) a login attempt when its IP or username has failed too often.
    pub async fn login_gate(&self, ctx: &RequestCtx, username: &str) -> Result<(), ApiError> {
        if !self.settings.enabled {
            return Ok(());
        }
        for who in login_identities(ctx, username) {
            let report = self.check(Category::Login, self.settings.policy(Category::Login), &who, 0).await;
            ctx.record(report);
            if let Some(refused) = refusal(&report, "RATE_LIMITED") {
                return Err(refused);
            }
        }
        Ok(())
    }

    /// Counts a failed login against the IP and the username.
    pub async fn login_failed(&self, ctx: &RequestCtx, username: &str) {
        if !self.settings.enabled {
            return;
        }
        for who in login_identities(ctx, username) {
            ctx.record(self.check(Category::Login, self.settings.policy(Category::Login), &who, 1).await);
        }
    }
}

fn login_identities(ctx: &RequestCtx, username: &str) -> [String; 2] {
    [format!("ip:{}", ctx.ip), format!("user:{}", username.trim().to_lowercase())]
}
