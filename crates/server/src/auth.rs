//! Who is calling: HMAC-signed requests (API keys of one project) and Bearer
//! personal access tokens (users). Handlers receive a [`Principal`] and ask it
//! for the scope they need with [`Principal::require`].

use crate::error::ApiError;
use crate::state::{now, AppState};
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use codegate_domain::model::{Role, Scope, Session, User};
use codegate_domain::signing::{self, SignedParts};
use codegate_storage::RequestOrigin;

#[derive(Debug, Clone)]
pub enum Principal {
    /// An HMAC key: reads and redemptions of its own project only.
    ApiKey { key_id: String, api_key: String, project_id: String },
    /// A user through a personal access token or a console session.
    User {
        user: User,
        /// `token:<id>` or `session`; never a secret.
        via: String,
        /// The console session, when the call came from the browser.
        session: Option<Session>,
        scopes: Vec<Scope>,
        project_id: Option<String>,
    },
}

impl Principal {
    /// Allows the call when the credential has `scope` for `project_id`
    /// (`None`: the call is not about one project), else a 403.
    pub fn require(&self, scope: Scope, project_id: Option<&str>) -> Result<(), ApiError> {
        match self {
            Principal::ApiKey { project_id: own, .. } => {
                if !matches!(scope, Scope::Read | Scope::Verify) {
                    return Err(ApiError::forbidden(format!(
                        "API keys may read and redeem; this call needs the '{}' scope of a personal access token",
                        scope.as_str()
                    )));
                }
                match project_id {
                    Some(p) if p == own => Ok(()),
                    Some(_) => Err(ApiError::forbidden("this API key belongs to another project")),
                    None => Err(ApiError::forbidden("API keys may only act on their own project")),
                }
            }
            Principal::User { user, scopes, project_id: restricted, .. } => {
                if !user.role.allows(scope) {
                    return Err(ApiError::forbidden(format!(
                        "the role '{}' may not use the '{}' scope",
                        user.role.as_str(),
                        scope.as_str()
                    )));
                }
                if !scopes.contains(&scope) {
                    return Err(ApiError::forbidden(format!("this token lacks the '{}' scope", scope.as_str())));
                }
                match (restricted, project_id) {
                    (Some(r), Some(p)) if r != p => {
                        Err(ApiError::forbidden("this token is restricted to another project"))
                    }
                    (Some(_), None) if scope != Scope::Read => {
                        Err(ApiError::forbidden("this token is restricted to one project"))
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    pub fn is_api_key(&self) -> bool {
        matches!(self, Principal::ApiKey { .. })
    }

    /// A name for logs and audit entries; never a secret.
    pub fn actor(&self) -> String {
        match self {
            Principal::ApiKey { api_key, .. } => format!("api_key:{api_key}"),
            Principal::User { user, .. } => user.username.clone(),
        }
    }

    /// Which credential was used; kept with redemptions. Never a secret.
    pub fn credential(&self) -> String {
        match self {
            Principal::ApiKey { api_key, .. } => format!("api_key:{api_key}"),
            Principal::User { user, via, .. } => format!("{via}:{}", user.username),
        }
    }

    /// The project a credential is tied to, if any.
    pub fn project_restriction(&self) -> Option<&str> {
        match self {
            Principal::ApiKey { project_id, .. } => Some(project_id),
            Principal::User { project_id, .. } => project_id.as_deref(),
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self {
            Principal::User { user, .. } => Some(user.role),
            Principal::ApiKey { .. } => None,
        }
    }
}

/// A caller of a route that accepts both signed requests and Bearer tokens.
/// The body is buffered (within the configured limit) because it is signed.
pub struct Caller {
    pub principal: Principal,
    pub body: Bytes,
    pub origin: RequestOrigin,
}

/// A caller of a management route: Bearer token only; the body is left to the handler.
pub struct BearerCaller {
    pub principal: Principal,
    pub origin: RequestOrigin,
}

impl FromRequest<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let limit = state.config.max_body_bytes;
        let body = crate::extract::read_body(body, limit).await?;
        let authenticated = match user_credential(state, &parts).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) if parts.headers.contains_key("x-api-key") => signed(state, &parts, &body).await,
            Ok(None) => Err(missing_credentials()),
            Err(e) => Err(e),
        };
        // Rate limits (and the per-IP limit on refused credentials).
        let principal = crate::limits::admit(state, &parts, authenticated).await?;
        let origin = origin(&parts, &principal);
        Ok(Caller { principal, body, origin })
    }
}

impl FromRequestParts<AppState> for BearerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let authenticated = match user_credential(state, parts).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) if parts.headers.contains_key("x-api-key") => {
                return Err(ApiError::forbidden(
                    "this route needs a personal access token (Authorization: Bearer), not an API key",
                ))
            }
            Ok(None) => Err(missing_credentials()),
            Err(e) => Err(e),
        };
        let principal = crate::limits::admit(state, parts, authenticated).await?;
        let origin = origin(parts, &principal);
        Ok(BearerCaller { principal, origin })
    }
}

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "codegate_session";

/// Routes a session may use while its password must still be changed.
const ALLOWED_BEFORE_PASSWORD_CHANGE: [&str; 3] = ["/api/v1/auth/me", "/api/v1/auth/password", "/api/v1/auth/logout"];

/// A Bearer token or, failing that, a console session; `None` when neither is sent.
async fn user_credential(state: &AppState, parts: &Parts) -> Result<Option<Principal>, ApiError> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return bearer(state, &parts.headers).await.map(Some);
    }
    let Some(cookie) = cookie_value(&parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let expired = || ApiError::unauthorized("SESSION_EXPIRED", "the session has ended; log in again");
    let (session, user) =
        state.store.find_session(&crate::secrets::token_hash(cookie), now()).await?.ok_or_else(expired)?;
    if user.disabled {
        return Err(expired());
    }
    // Cookies ride along with cross-site requests: anything that changes state needs the CSRF token too.
    if !parts.method.is_safe() {
        let sent = header_str(&parts.headers, "x-csrf-token").unwrap_or_default();
        let same: bool = subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), session.csrf_token.as_bytes()).into();
        if !same {
            return Err(ApiError::Forbidden {
                code: "CSRF_FAILED",
                detail: "missing or wrong X-CSRF-Token header".into(),
            });
        }
    }
    // Inside the nested API router `parts.uri` lacks the prefix; the original URI has it.
    let path = parts.extensions.get::<OriginalUri>().map_or(parts.uri.path(), |o| o.0.path());
    if user.must_change_password && !ALLOWED_BEFORE_PASSWORD_CHANGE.contains(&path) {
        return Err(ApiError::Forbidden {
            code: "PASSWORD_CHANGE_REQUIRED",
            detail: "change your password first (POST /api/v1/auth/password)".into(),
        });
    }
    let scopes = Scope::ALL.into_iter().filter(|s| user.role.allows(*s)).collect();
    Ok(Some(Principal::User { user, via: "session".into(), session: Some(session), scopes, project_id: None }))
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn missing_credentials() -> ApiError {
    ApiError::unauthorized(
        "MISSING_CREDENTIALS",
        "send X-API-Key, X-Timestamp and X-Signature, or Authorization: Bearer <token>",
    )
}

fn origin(parts: &Parts, principal: &Principal) -> RequestOrigin {
    // The socket peer, or the client a trusted proxy forwarded.
    let ip = crate::limits::ClientIp::of(parts).map(|c| c.0.to_string());
    let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(kept_user_agent);
    RequestOrigin { ip_address: ip, user_agent, credential: Some(principal.credential()) }
}

/// At most the first 255 characters of a User-Agent, as kept with redemptions.
fn kept_user_agent(agent: &str) -> String {
    if agent.len() <= 255 {
        return agent.to_owned();
    }
    match agent.char_indices().nth(255) {
        Some((cut, _)) => agent[..cut].to_owned(),
        None => agent.to_owned(),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

async fn bearer(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let value = header_str(headers, header::AUTHORIZATION.as_str()).unwrap_or_default();
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("INVALID_TOKEN", "Authorization must be 'Bearer <token>'"))?;
    let invalid = || ApiError::unauthorized("INVALID_TOKEN", "the token is unknown, revoked or expired");
    let (token, user) = state.store.find_token(&crate::secrets::token_hash(token)).await?.ok_or_else(invalid)?;
    let now = now();
    if token.revoked_at.is_some() || token.expires_at.is_some_and(|t| t <= now) || user.disabled {
        return Err(invalid());
    }
    state.touch_token(&token.id, token.last_used_at, now);
    Ok(Principal::User {
        user,
        via: format!("token:{}", token.id),
        session: None,
        scopes: token.scopes,
        project_id: token.project_id,
    })
}

async fn signed(state: &AppState, parts: &Parts, body: &[u8]) -> Result<Principal, ApiError> {
    let h = &parts.headers;
    let (Some(api_key), Some(timestamp), Some(signature)) =
        (header_str(h, "x-api-key"), header_str(h, "x-timestamp"), header_str(h, "x-signature"))
    else {
        return Err(ApiError::unauthorized(
            "MISSING_CREDENTIALS",
            "signed requests need X-API-Key, X-Timestamp and X-Signature",
        ));
    };
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| ApiError::unauthorized("INVALID_TIMESTAMP", "X-Timestamp must be Unix seconds"))?;
    let now = now();
    let window = state.config.signature_window_secs;
    if !signing::timestamp_in_window(ts, now, window) {
        return Err(ApiError::unauthorized(
            "TIMESTAMP_OUT_OF_WINDOW",
            format!("X-Timestamp is more than {window} seconds away from the server's clock"),
        ));
    }
    let nonce = header_str(h, "x-nonce");
    if nonce.is_some_and(|n| n.is_empty() || n.len() > 64) {
        return Err(ApiError::unauthorized("INVALID_NONCE", "X-Nonce must be 1 to 64 characters"));
    }
    let unknown = || ApiError::unauthorized("INVALID_API_KEY", "the API key is unknown or disabled");
    let key = state.lookups.api_key(state.store.as_ref(), api_key).await?.filter(|k| k.enabled).ok_or_else(unknown)?;

    let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |o| &o.0);
    let canonical_query = signing::canonical_query(uri.query().unwrap_or(""));
    let body_hash = signing::body_sha256_hex(body);
    let raw_path = uri.path();
    let decoded = signing::decoded_path(raw_path);
    let mut secrets = vec![&key.sealed_secret];
    if let (Some(previous), Some(until)) = (&key.sealed_previous_secret, key.previous_valid_until) {
        if until > now {
            secrets.push(previous);
        }
    }
    let accepted = secrets
        .into_iter()
        .filter_map(|s| state.lookups.opened_secret(&state.master_key, s, &key.api_key))
        .any(|secret| {
            std::iter::once(raw_path).chain(decoded.as_deref()).any(|path| {
                let sts = SignedParts {
                    method: parts.method.as_str(),
                    path,
                    canonical_query: &canonical_query,
                    body_sha256: &body_hash,
                    timestamp,
                    nonce,
                }
                .string_to_sign();
                signing::signature_matches(secret.as_bytes(), &sts, signature)
            })
        });
    if !accepted {
        return Err(ApiError::unauthorized("INVALID_SIGNATURE", "the signature does not match the request"));
    }
    let facts =
        crate::replay::SignedFacts { api_key: &key.api_key, method: &parts.method, nonce, signature, timestamp: ts };
    state.defences.replay.check(facts, now).await?;
    state.touch_api_key(&key.api_key, &key.id, key.last_used_at, now);
    Ok(Principal::ApiKey { key_id: key.id.clone(), api_key: key.api_key.clone(), project_id: key.project_id.clone() })
}

#[cfg(test)]
mod tests {
    use super::kept_user_agent;

    #[test]
    fn a_user_agent_is_kept_to_255_characters_whole() {
        assert_eq!(kept_user_agent("codegate-sdk/0.1.1"), "codegate-sdk/0.1.1");
        let ascii = "a".repeat(300);
        assert_eq!(kept_user_agent(&ascii), "a".repeat(255));
        // Two bytes each: cut after the 255th character, never inside one.
        let accented = "é".repeat(200);
        assert_eq!(kept_user_agent(&accented), accented);
        let long = "é".repeat(300);
        assert_eq!(kept_user_agent(&long).chars().count(), 255);
        assert_eq!(kept_user_agent(&long), "é".repeat(255));
    }
}
