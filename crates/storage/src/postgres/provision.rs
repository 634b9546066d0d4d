//! Creating and dropping whole databases: for tests that each want a fresh
//! one, and for operators preparing a target for `codegate migrate-db`.

use super::map_err;
use crate::error::{StoreError, StoreResult};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use std::str::FromStr;

fn options(url: &str) -> StoreResult<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|e| StoreError::Internal(format!("invalid PostgreSQL URL: {e}")))
}

/// Database names we create are plain identifiers; refuse anything else
/// rather than quote it into DDL.
fn check_name(name: &str) -> StoreResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Internal(format!("'{name}' is not a plain database name (a-z, 0-9, _)")))
    }
}

/// The database a URL points at (the user name when the URL names none, as libpq does).
pub fn database_name(url: &str) -> StoreResult<String> {
    let o = options(url)?;
    Ok(o.get_database().unwrap_or_else(|| o.get_username()).to_owned())
}

/// The same server and credentials as `url`, database `name`.
pub fn server_url_with_database(url: &str, name: &str) -> StoreResult<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..authority_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    // Validate what we built.
    options(&out)?;
    Ok(out)
}

/// Creates database `name` on the server of `server_url` (connecting to that
/// URL's own database to do so) and returns a URL for the new database.
pub async fn create_database(server_url: &str, name: &str) -> StoreResult<String> {
    check_name(name)?;
    let mut conn = options(server_url)?.connect().await.map_err(map_err)?;
    conn.execute(format!("CREATE DATABASE \"{name}\"").as_str()).await.map_err(map_err)?;
    let _ = conn.close().await;
    server_url_with_database(server_url, name)
}

/// Drops the database `url` points at (connecting to `postgres` on the same
/// server), ending its other sessions first. Missing databases are fine.
pub async fn drop_database(url: &str) -> StoreResult<()> {
    let name = database_name(url)?;
    check_name(&name)?;
    let admin = options(url)?.database("postgres");
    let mut conn = admin.connect().await.map_err(map_err)?;
    conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str()).await.map_err(map_err)?;
    let _ = conn.close().await;
    Ok(())
}
