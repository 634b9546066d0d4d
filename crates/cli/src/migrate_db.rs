//! `codegate migrate-db`: moves an installation from its SQLite file to PostgreSQL.

use anyhow::Context;
use codegate_storage::postgres::{copy_from_sqlite, is_postgres_url};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct MigrateDbArgs {
    /// The SQLite database: `sqlite://PATH` or a path to codegate.db.
    #[arg(long)]
    from: String,
    /// The (empty) PostgreSQL database: `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
    #[arg(long)]
    to: String,
    /// Print what was copied as one JSON object.
    #[arg(long)]
    json: bool,
}

fn sqlite_path(from: &str) -> PathBuf {
    let path = from.strip_prefix("sqlite://").or_else(|| from.strip_prefix("sqlite:")).unwrap_or(from);
    PathBuf::from(path)
}

pub async fn run(args: MigrateDbArgs) -> anyhow::Result<()> {
    if !is_postgres_url(&args.to) {
        anyhow::bail!("--to must be a postgres:// URL");
    }
    let from = sqlite_path(&args.from);
    let report =
        copy_from_sqlite(&from, &args.to).await.with_context(|| format!("copying {} to PostgreSQL", from.display()))?;
    if args.json {
        let tables: serde_json::Map<String, serde_json::Value> =
            report.tables.iter().map(|(t, n)| (t.clone(), (*n).into())).collect();
        println!("{}", serde_json::json!({ "tables": tables, "verified": true }));
    } else {
        for (table, rows) in &report.tables {
            println!("{table:>14}: {rows} rows");
        }
        println!("Copied and verified. Start every replica with CODEGATE_DATABASE_URL set to the PostgreSQL URL");
        println!("and the same master key (CODEGATE_MASTER_KEY, or this data directory's master key file).");
    }
    Ok(())
}
