//! `codegate tokens create|list|revoke`: the caller's personal access tokens.

use super::{parse_time, Remote};
use crate::output::{fmt_time, or_dash, print_json, print_table};
use clap::Subcommand;
use codegate_client::NewToken;

#[derive(Subcommand)]
pub enum TokensCmd {
    /// Create a token; it is shown once.
    Create {
        #[arg(long)]
        name: String,
        /// Scopes, comma-separated or repeated: read, write, verify, keys, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Limit the token to one project.
        #[arg(long = "project-id")]
        project_id: Option<String>,
        #[arg(long, value_parser = parse_time)]
        expires_at: Option<i64>,
    },
    /// List your tokens.
    List,
    /// Revoke a token.
    Revoke { token_id: String },
}

pub async fn run(remote: &Remote, cmd: TokensCmd) -> anyhow::Result<()> {
    let client = remote.client()?;
    match cmd {
        TokensCmd::Create { name, scopes, project_id, expires_at } => {
            let t = client.create_token(&NewToken { name, scopes, project_id, expires_at }).await?;
            if remote.json {
                return print_json(&t);
            }
            println!("created token {} ({})", t.id, t.name);
            println!("token: {}", t.token.as_deref().unwrap_or("-"));
            eprintln!("The token is shown only once: store it now.");
        }
        TokensCmd::List => {
            let tokens = client.list_tokens().await?;
            if remote.json {
                return print_json(&tokens);
            }
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.name.clone(),
                        or_dash(t.display_prefix.as_deref()),
                        t.scopes.join(","),
                        or_dash(t.project_id.as_deref()),
                        fmt_time(t.expires_at),
                        fmt_time(t.revoked_at),
                        fmt_time(t.last_used_at),
                    ]
                })
                .collect();
            print_table(&["ID", "NAME", "PREFIX", "SCOPES", "PROJECT", "EXPIRES", "REVOKED", "LAST_USED"], &rows);
        }
        TokensCmd::Revoke { token_id } => {
            client.revoke_token(&token_id).await?;
            if remote.json {
                return print_json(&serde_json::json!({"revoked": token_id}));
            }
            println!("revoked token {token_id}");
        }
    }
    Ok(())
}
