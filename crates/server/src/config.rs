//! Server settings, from flags and `CODEGATE_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…` / a file path, or `postgres://…`; default: `codegate.db` in the data directory.
    pub database_url: Option<String>,
    pub master_key: Option<String>,
    /// How far X-Timestamp may be from the server's clock.
    pub signature_window_secs: i64,
    /// Largest body of a JSON request.
    pub max_body_bytes: usize,
    /// Largest body of an import.
    pub max_import_bytes: usize,
    /// Mark the session cookie `Secure` even without `X-Forwarded-Proto: https`.
    pub secure_cookies: bool,
    /// Rate limits, trusted proxies, Redis, timeouts; `None`: read from the
    /// `CODEGATE_*` environment when serving.
    pub abuse: Option<crate::limits::Settings>,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServerConfig {
            listen,
            data_dir,
            database_url: None,
            master_key: None,
            signature_window_secs: 300,
            max_body_bytes: 64 * 1024,
            max_import_bytes: 512 * 1024 * 1024,
            secure_cookies: false,
            abuse: None,
        }
    }

    /// The PostgreSQL URL, when the configured database is PostgreSQL.
    pub fn postgres_url(&self) -> Option<&str> {
        self.database_url.as_deref().filter(|url| codegate_storage::postgres::is_postgres_url(url))
    }

    /// Where the SQLite database lives.
    pub fn sqlite_path(&self) -> anyhow::Result<PathBuf> {
        match self.database_url.as_deref() {
            None | Some("") => Ok(self.data_dir.join("codegate.db")),
            Some(url) if url.starts_with("sqlite://") => Ok(PathBuf::from(&url["sqlite://".len()..])),
            Some(url) if url.starts_with("sqlite:") => Ok(PathBuf::from(&url["sqlite:".len()..])),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                anyhow::bail!("CODEGATE_DATABASE_URL names PostgreSQL, not a SQLite file")
            }
            Some(other) => {
                anyhow::bail!(
                    "unsupported CODEGATE_DATABASE_URL '{other}': use sqlite://PATH or postgres://USER@HOST/DB"
                )
            }
        }
    }
}
