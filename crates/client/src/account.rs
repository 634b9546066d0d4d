//! Calls not bound to one project: projects and personal access tokens.

use crate::auth::encode_segment;
use crate::error::Result;
use crate::http::{Call, Client};
use crate::types::{Items, NewProject, NewToken, Project, ProjectUpdate, Token};
use reqwest::Method;

impl Client {
    pub async fn list_projects(&self) -> Result<Vec<Project>> {
        let items: Items<Project> = self.json(Call::new(Method::GET, "/api/v1/projects")).await?;
        Ok(items.items)
    }

    pub async fn create_project(&self, project: &NewProject) -> Result<Project> {
        self.json(Call::new(Method::POST, "/api/v1/projects").json(project)?).await
    }

    pub async fn update_project(&self, project_id: &str, update: &ProjectUpdate) -> Result<Project> {
        let path = format!("/api/v1/projects/{}", encode_segment(project_id));
        self.json(Call::new(Method::PATCH, path).json(update)?).await
    }

    /// Deletes a project with all its codes.
    pub async fn delete_project(&self, project_id: &str) -> Result<()> {
        let path = format!("/api/v1/projects/{}", encode_segment(project_id));
        self.no_content(Call::new(Method::DELETE, path)).await
    }

    /// The caller's own tokens.
    pub async fn list_tokens(&self) -> Result<Vec<Token>> {
        let items: Items<Token> = self.json(Call::new(Method::GET, "/api/v1/tokens")).await?;
        Ok(items.items)
    }

    /// A new token; the answer carries it, shown once.
    pub async fn create_token(&self, token: &NewToken) -> Result<Token> {
        self.json(Call::new(Method::POST, "/api/v1/tokens").json(token)?).await
    }

    /// Replaces a token with a new one and revokes the old.
    pub async fn rotate_token(&self, token_id: &str) -> Result<Token> {
        let path = format!("/api/v1/tokens/{}/rotate", encode_segment(token_id));
        self.json(Call::new(Method::POST, path)).await
    }

    pub async fn revoke_token(&self, token_id: &str) -> Result<()> {
        let path = format!("/api/v1/tokens/{}", encode_segment(token_id));
        self.no_content(Call::new(Method::DELETE, path)).await
    }
}
