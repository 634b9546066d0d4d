//! Calls on one project: the SDK surface (signed or Bearer), code management
//! and API keys.

use crate::auth::encode_segment;
use crate::error::Result;
use crate::http::{Call, Client};
use crate::types::*;
use futures_util::stream::{self, Stream, TryStreamExt};
use reqwest::Method;
use serde_json::json;

/// The largest page the server serves; used when walking all codes.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A client bound to one project id. Cheap to clone.
#[derive(Clone)]
pub struct ProjectClient {
    pub(crate) client: Client,
    pub(crate) id: String,
}

/// One page request of a code listing.
#[derive(Debug, Clone, Default)]
pub struct ListCodes {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    pub filter: CodeFilter,
    /// A `next_cursor` from an earlier page; takes the place of `page`.
    pub cursor: Option<String>,
}

impl Client {
    pub fn project(&self, project_id: impl Into<String>) -> ProjectClient {
        ProjectClient { client: self.clone(), id: project_id.into() }
    }
}

impl ProjectClient {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn path(&self, rest: &str) -> String {
        format!("/api/v1/projects/{}{rest}", encode_segment(&self.id))
    }

    // ---- SDK surface -------------------------------------------------------

    pub async fn get_project(&self) -> Result<Project> {
        self.client.json(Call::new(Method::GET, self.path(""))).await
    }

    /// One page of codes, newest first (the SDK's `list_codes`).
    pub async fn list_codes(
        &self,
        page: u32,
        page_size: u32,
        status: Option<&str>,
        search: Option<&str>,
    ) -> Result<CodePage> {
        self.list(&ListCodes {
            page: Some(page),
            page_size: Some(page_size),
            filter: CodeFilter { status: status.map(str::to_owned), search: search.map(str::to_owned), batch_id: None },
            cursor: None,
        })
        .await
    }

    /// One page of codes with every listing option.
    pub async fn list(&self, req: &ListCodes) -> Result<CodePage> {
        let mut q = Vec::new();
        if let Some(p) = req.page.filter(|_| req.cursor.is_none()) {
            q.push(("page", p.to_string()));
        }
        if let Some(s) = req.page_size {
            q.push(("page_size", s.to_string()));
        }
        req.filter.push_query(&mut q);
        if let Some(c) = &req.cursor {
            q.push(("cursor", c.clone()));
        }
        self.client.json(Call::new(Method::GET, self.path("/codes")).query(q)).await
    }

    /// Every page of a listing, walked by cursor (fast at any depth).
    pub fn code_pages(&self, filter: CodeFilter) -> impl Stream<Item = Result<CodePage>> + Send {
        let this = self.clone();
        // State: None = done; Some(cursor) = fetch next (first page has no cursor).
        stream::try_unfold(Some(None::<String>), move |state| {
            let this = this.clone();
            let filter = filter.clone();
            async move {
                let Some(cursor) = state else {
                    return Ok(None);
                };
                let page = this.list(&ListCodes { page: None, page_size: Some(MAX_PAGE_SIZE), filter, cursor }).await?;
                let next = match &page.next_cursor {
                    Some(c) if !page.items.is_empty() => Some(Some(c.clone())),
                    _ => None,
                };
                Ok(Some((page, next)))
            }
        })
    }

    /// Every code matching `filter`, one at a time (the SDK's `iter_codes`).
    pub fn codes(&self, filter: CodeFilter) -> impl Stream<Item = Result<Code>> + Send {
        self.code_pages(filter).map_ok(|page| stream::iter(page.items.into_iter().map(Ok))).try_flatten()
    }

    /// Every code matching `filter`, collected.
    pub async fn all_codes(&self, filter: CodeFilter) -> Result<Vec<Code>> {
        self.codes(filter).try_collect().await
    }

    /// A code by id, with its verification log.
    pub async fn get_code(&self, code_id: &str) -> Result<Code> {
        let path = self.path(&format!("/codes/{}", encode_segment(code_id)));
        self.client.json(Call::new(Method::GET, path)).await
    }

    /// A code by its text, with its verification log.
    pub async fn get_code_by_code(&self, code: &str) -> Result<Code> {
        let path = self.path(&format!("/codes/by-code/{}", encode_segment(code)));
        self.client.json(Call::new(Method::GET, path)).await
    }

    /// Redeems a code. Retries reuse one `Idempotency-Key`, so a lost answer
    /// cannot turn into `CODE_ALREADY_USED`.
    pub async fn verify_code(&self, code: &str, verified_by: Option<&str>) -> Result<RedeemResult> {
        let mut body = json!({ "code": code });
        if let Some(by) = verified_by {
            body["verified_by"] = json!(by);
        }
        self.redeem("/codes/verify", &body).await
    }

    /// Makes a used code usable again.
    pub async fn reactivate_code(
        &self,
        code: &str,
        reactivated_by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<RedeemResult> {
        let mut body = json!({ "code": code });
        if let Some(by) = reactivated_by {
            body["reactivated_by"] = json!(by);
        }
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        self.redeem("/codes/reactivate", &body).await
    }

    async fn redeem(&self, rest: &str, body: &serde_json::Value) -> Result<RedeemResult> {
        let mut call = Call::new(Method::POST, self.path(rest)).json(body)?;
        call.idempotency_key = Some(uuid::Uuid::new_v4().to_string());
        self.client.json(call).await
    }

    pub async fn get_statistics(&self) -> Result<ProjectStatistics> {
        self.client.json(Call::new(Method::GET, self.path("/statistics"))).await
    }

    // ---- code management (Bearer) -----------------------------------------

    pub async fn generate(&self, req: &GenerateRequest) -> Result<GenerateResult> {
        let call = Call::new(Method::POST, self.path("/codes/generate")).long().json(req)?;
        self.client.json(call).await
    }

    pub async fn update_code(&self, code_id: &str, update: &CodeUpdate) -> Result<Code> {
        let path = self.path(&format!("/codes/{}", encode_segment(code_id)));
        self.client.json(Call::new(Method::PATCH, path).json(update)?).await
    }

    pub async fn delete_code(&self, code_id: &str) -> Result<()> {
        let path = self.path(&format!("/codes/{}", encode_segment(code_id)));
        self.client.no_content(Call::new(Method::DELETE, path)).await
    }

    /// Disables, enables or deletes many codes at once.
    pub async fn bulk(&self, req: &BulkRequest) -> Result<BulkResult> {
        let call = Call::new(Method::POST, self.path("/codes/bulk")).long().json(req)?;
        self.client.json(call).await
    }

    // ---- API keys (Bearer, keys scope) --------------------------------------

    /// A new key; the answer carries its secret, shown once.
    pub async fn create_api_key(&self, name: Option<&str>) -> Result<ApiKey> {
        let body = match name {
            Some(n) => json!({ "name": n }),
            None => json!({}),
        };
        let call = Call::new(Method::POST, self.path("/api-keys")).json(&body)?;
        self.client.json(call).await
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let items: Items<ApiKey> = self.client.json(Call::new(Method::GET, self.path("/api-keys"))).await?;
        Ok(items.items)
    }

    pub async fn set_api_key_enabled(&self, key_id: &str, enabled: bool) -> Result<ApiKey> {
        let path = self.path(&format!("/api-keys/{}", encode_segment(key_id)));
        let call = Call::new(Method::PATCH, path).json(&json!({ "enabled": enabled }))?;
        self.client.json(call).await
    }

    pub async fn delete_api_key(&self, key_id: &str) -> Result<()> {
        let path = self.path(&format!("/api-keys/{}", encode_segment(key_id)));
        self.client.no_content(Call::new(Method::DELETE, path)).await
    }

    /// A new secret for a key; the old one keeps working for `grace_seconds`.
    pub async fn rotate_api_key(&self, key_id: &str, grace_seconds: Option<u64>) -> Result<ApiKey> {
        let path = self.path(&format!("/api-keys/{}/rotate", encode_segment(key_id)));
        let body = match grace_seconds {
            Some(g) => json!({ "grace_seconds": g }),
            None => json!({}),
        };
        self.client.json(Call::new(Method::POST, path).json(&body)?).await
    }
}
