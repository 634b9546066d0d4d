//! `codegate`: the server, first-run setup, backups, and a client for remote servers.

mod backup;
mod migrate_db;
mod output;
mod remote;

use anyhow::Context;
use clap::{Parser, Subcommand};
use codegate_server::{bootstrap, open_store, rekey, serve, ServerConfig};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "codegate", version, about = "Issue, manage and redeem activation, invitation, promo and gift codes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives; shared by `serve` and `init`.
#[derive(clap::Args, Clone)]
struct DataArgs {
    /// Directory for the SQLite database and the master key.
    #[arg(long, env = "CODEGATE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Database URL; default: SQLite in the data directory.
    #[arg(long, env = "CODEGATE_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API until SIGTERM.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, env = "CODEGATE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        data: DataArgs,
        /// How many seconds X-Timestamp may differ from the server's clock.
        #[arg(long, env = "CODEGATE_SIGNATURE_WINDOW", default_value_t = 300)]
        signature_window: i64,
    },
    /// Create the first admin and an all-scopes token, printed once.
    Init {
        #[command(flatten)]
        data: DataArgs,
        /// Print the credentials as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Copy the live database consistently (safe while the server runs).
    Backup {
        /// Directory holding codegate.db.
        #[arg(long, env = "CODEGATE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// File to write the copy to.
        #[arg(long)]
        to: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
        /// Print what was copied as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Re-seal every API key secret under a new master key (stop every server first).
    ///
    /// The secrets do not change: backends keep signing with theirs. With the
    /// key in `master.key` the new key replaces it and the old one is kept as
    /// `master.key.<time>.old`; with CODEGATE_MASTER_KEY, give the new key with
    /// --new-key-file and set it on every server before starting them again.
    RotateMasterKey {
        #[command(flatten)]
        data: DataArgs,
        /// File holding the new key (64 hex characters, e.g. `openssl rand -hex 32`);
        /// default: a new random key.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
        /// Print what was done as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Copy a SQLite installation into an empty PostgreSQL database and verify the copy.
    MigrateDb(migrate_db::MigrateDbArgs),
    /// Manage projects on a server (CODEGATE_URL, CODEGATE_TOKEN).
    Projects {
        #[command(flatten)]
        remote: remote::Remote,
        #[command(subcommand)]
        cmd: remote::projects::ProjectsCmd,
    },
    /// Generate, import, export, list, show, verify, disable and enable codes.
    Codes {
        #[command(flatten)]
        remote: remote::Remote,
        #[command(subcommand)]
        cmd: remote::codes::CodesCmd,
    },
    /// Manage a project's API keys.
    Keys {
        #[command(flatten)]
        remote: remote::Remote,
        #[command(subcommand)]
        cmd: remote::keys::KeysCmd,
    },
    /// Manage your personal access tokens.
    Tokens {
        #[command(flatten)]
        remote: remote::Remote,
        #[command(subcommand)]
        cmd: remote::tokens::TokensCmd,
    },
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CODEGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("CODEGATE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn config(listen: SocketAddr, data: DataArgs) -> ServerConfig {
    let mut config = ServerConfig::new(listen, data.data_dir);
    config.database_url = data.database_url.filter(|u| !u.is_empty());
    config.master_key = std::env::var("CODEGATE_MASTER_KEY").ok().filter(|k| !k.is_empty());
    config
}

// Measured with the bench: ~20 % less server CPU per verify than glibc malloc (docs/performance.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: pages freed after a bulk load go back
/// to the system within three seconds instead of ten, so the server's RSS while it
/// serves stays near its working set. (A reference to an array: one C pointer.)
#[cfg(not(target_env = "msvc"))]
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_CONF: &[u8; 37] = b"dirty_decay_ms:3000,muzzy_decay_ms:0\0";

/// Tokio's blocking threads at most: SQLite reads (eight at a time, one per
/// read connection), import steps, drawing codes, password hashing. Tokio's
/// own limit (512) let a burst of concurrent reads grow the pool to dozens of
/// threads: a read's thread is not idle yet when the next read is handed out.
const MAX_BLOCKING_THREADS: usize = 16;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
        .unwrap_or_else(|e| {
            eprintln!("codegate: could not start the async runtime: {e}");
            std::process::exit(1);
        });
    runtime.block_on(async {
        init_logging();
        if let Err(e) = run(Cli::parse()).await {
            eprintln!("codegate: {e:#}");
            std::process::exit(1);
        }
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { listen, data, signature_window } => {
            let mut config = config(listen, data);
            config.signature_window_secs = signature_window;
            serve(config, |addr| {
                // Scripts and tests read this line to learn the port.
                println!("listening on http://{addr}");
                let _ = std::io::stdout().flush();
            })
            .await
        }
        Command::Init { data, json } => {
            let config = config(SocketAddr::from(([127, 0, 0, 1], 8080)), data);
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating {}", config.data_dir.display()))?;
            let store = open_store(&config)?;
            let Some(first) = bootstrap::ensure_first_admin(store.as_ref()).await? else {
                anyhow::bail!("this installation already has users; init runs only once");
            };
            if json {
                println!("{}", serde_json::to_string(&first)?);
            } else {
                println!("username: {}\npassword: {}\ntoken:    {}", first.username, first.password, first.token);
                println!(
                    "Shown only once. Start the server with: codegate serve --data-dir {}",
                    config.data_dir.display()
                );
            }
            Ok(())
        }
        Command::Backup { data_dir, to, force, json } => {
            // SQLite calls block: keep them off the async workers.
            let dir = data_dir.clone();
            let summary = tokio::task::spawn_blocking(move || backup::run(&dir, &to, force)).await??;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                backup::print(&summary, &data_dir);
            }
            Ok(())
        }
        Command::RotateMasterKey { data, new_key_file, json } => {
            let config = config(SocketAddr::from(([127, 0, 0, 1], 8080)), data);
            let configured = config.master_key.as_deref();
            // Before the store opens, so a directory without a key is left as it was.
            let current = rekey::current_key(configured, &config.data_dir)?;
            let new_key = match &new_key_file {
                Some(path) => {
                    Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?)
                }
                None => None,
            };
            let store = open_store(&config)?;
            let report =
                rekey::rotate_master_key(store.as_ref(), &current, configured, &config.data_dir, new_key.as_deref())
                    .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "re-sealed the secrets of {} API keys under the new master key ({} already were)",
                    report.resealed, report.already_resealed
                );
                match (&report.key_file, &report.previous_key_file) {
                    (Some(key), Some(old)) => println!(
                        "the new key is in {}; the old one is kept in {} (restoring an older backup needs it)",
                        key.display(),
                        old.display()
                    ),
                    _ => println!("set CODEGATE_MASTER_KEY to the new key on every server, then start them"),
                }
            }
            Ok(())
        }
        Command::MigrateDb(args) => migrate_db::run(args).await,
        Command::Projects { remote, cmd } => remote::projects::run(&remote, cmd).await,
        Command::Codes { remote, cmd } => remote::codes::run(&remote, cmd).await,
        Command::Keys { remote, cmd } => remote::keys::run(&remote, cmd).await,
        Command::Tokens { remote, cmd } => remote::tokens::run(&remote, cmd).await,
    }
}
