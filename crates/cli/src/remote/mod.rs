//! Commands against a running server, over its HTTP API.

pub mod codes;
pub mod keys;
pub mod projects;
pub mod tokens;

use anyhow::anyhow;
use clap::Args;
use codegate_client::Client;

/// Where the server is and who is calling; accepted after any remote subcommand.
#[derive(Args, Clone, Debug)]
pub struct Remote {
    /// Server base URL.
    #[arg(long, env = "CODEGATE_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// Personal access token (cgp_…).
    #[arg(long, env = "CODEGATE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Remote {
    /// A client authenticated with the token.
    pub fn client(&self) -> anyhow::Result<Client> {
        let token = self
            .token
            .clone()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| anyhow!("no token: pass --token or set CODEGATE_TOKEN"))?;
        Ok(Client::with_token(&self.url, token.trim())?)
    }
}

/// The project a command works on.
#[derive(Args, Clone, Debug)]
pub struct ProjectArg {
    /// Project id.
    #[arg(short, long = "project", env = "CODEGATE_PROJECT_ID")]
    pub project: String,
}

pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    crate::output::parse_time(s)
}

pub(crate) fn parse_json_object(s: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str(s) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        _ => Err("must be a JSON object, e.g. '{\"plan\":\"pro\"}'".into()),
    }
}
