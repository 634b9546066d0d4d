//! `codegate keys create|list|delete|rotate`: a project's API keys.

use super::{ProjectArg, Remote};
use crate::output::{fmt_time, or_dash, print_json, print_table};
use clap::Subcommand;
use codegate_client::ApiKey;

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Create an API key; its secret is shown once.
    Create {
        #[command(flatten)]
        project: ProjectArg,
        #[arg(long)]
        name: Option<String>,
    },
    /// List a project's API keys (without secrets).
    List {
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Delete an API key; requests signed with it fail from now on.
    Delete {
        #[command(flatten)]
        project: ProjectArg,
        key_id: String,
    },
    /// Give a key a new secret; the old one keeps working for the grace period.
    Rotate {
        #[command(flatten)]
        project: ProjectArg,
        key_id: String,
        /// How long the old secret stays valid (server default: 86400).
        #[arg(long)]
        grace_seconds: Option<u64>,
    },
}

pub async fn run(remote: &Remote, cmd: KeysCmd) -> anyhow::Result<()> {
    let client = remote.client()?;
    match cmd {
        KeysCmd::Create { project, name } => {
            let key = client.project(&project.project).create_api_key(name.as_deref()).await?;
            print_secret(remote, "created", &key)
        }
        KeysCmd::List { project } => {
            let keys = client.project(&project.project).list_api_keys().await?;
            if remote.json {
                return print_json(&keys);
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    vec![
                        k.id.clone(),
                        k.api_key.clone(),
                        or_dash(k.name.as_deref()),
                        if k.is_active { "yes" } else { "no" }.into(),
                        fmt_time(k.last_used_at),
                        fmt_time(Some(k.created_at)),
                    ]
                })
                .collect();
            print_table(&["ID", "API_KEY", "NAME", "ACTIVE", "LAST_USED", "CREATED"], &rows);
            Ok(())
        }
        KeysCmd::Delete { project, key_id } => {
            client.project(&project.project).delete_api_key(&key_id).await?;
            if remote.json {
                return print_json(&serde_json::json!({"deleted": key_id}));
            }
            println!("deleted API key {key_id}");
            Ok(())
        }
        KeysCmd::Rotate { project, key_id, grace_seconds } => {
            let key = client.project(&project.project).rotate_api_key(&key_id, grace_seconds).await?;
            print_secret(remote, "rotated", &key)
        }
    }
}

fn print_secret(remote: &Remote, verb: &str, key: &ApiKey) -> anyhow::Result<()> {
    if remote.json {
        return print_json(key);
    }
    println!("{verb} API key {}", key.id);
    println!("api_key: {}", key.api_key);
    println!("secret:  {}", key.secret.as_deref().unwrap_or("-"));
    eprintln!("The secret is shown only once: store it now.");
    Ok(())
}
