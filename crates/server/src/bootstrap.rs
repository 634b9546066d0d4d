//! First-run setup: the first admin (owner) and an all-scopes token.

use crate::secrets::{hash_password, new_access_token, new_password};
use crate::state::now;
use codegate_domain::ids::new_id;
use codegate_domain::model::{AccessToken, Role, Scope, User};
use codegate_storage::Store;
use serde::Serialize;
use std::net::SocketAddr;

/// Shown once; only hashes are kept.
#[derive(Debug, Serialize)]
pub struct FirstAdmin {
    pub username: String,
    pub password: String,
    pub token: String,
}

pub const FIRST_ADMIN_NAME: &str = "admin";

/// Creates the first admin when there is no user yet; `None` when there is.
pub async fn ensure_first_admin(store: &dyn Store) -> anyhow::Result<Option<FirstAdmin>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let password = new_password();
    let now = now();
    let user = User {
        id: new_id(),
        username: FIRST_ADMIN_NAME.to_owned(),
        password_hash: hash_password(&password),
        role: Role::Owner,
        must_change_password: true,
        disabled: false,
        created_at: now,
    };
    store.create_user(&user).await?;
    let (token, token_hash) = new_access_token();
    store
        .create_token(&AccessToken {
            id: new_id(),
            user_id: user.id.clone(),
            name: "initial admin token".to_owned(),
            display_prefix: token[..12].to_owned(),
            token_hash,
            scopes: Scope::ALL.to_vec(),
            project_id: None,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            created_at: now,
        })
        .await?;
    Ok(Some(FirstAdmin { username: user.username, password, token }))
}

/// Tells a newcomer, once, how to log in and what to do next. Printed to
/// stdout (not the log) so it never ends up in log storage.
pub fn announce_first_admin(first: &FirstAdmin, listen: &SocketAddr) {
    let base = format!("http://{listen}");
    println!(
        "\n=== CodeGate first start ===================================================\n\
         An owner account was created. These credentials are shown only this once:\n\
         \n  username: {}\n  password: {}   (you will be asked to change it)\n  token:    {}\n\
         \nCreate a project:\n  curl -s -X POST {base}/api/v1/projects \\\n    -H 'Authorization: Bearer {}' \\\n    -H 'Content-Type: application/json' -d '{{\"name\": \"My first project\"}}'\n\
         ============================================================================\n",
        first.username, first.password, first.token, first.token
    );
}
