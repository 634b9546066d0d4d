//! `codegate backup`: a consistent copy of the live SQLite database, made with
//! SQLite's online backup API so a running server keeps serving meanwhile.

use anyhow::{bail, Context};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Serialize)]
pub struct Summary {
    pub source: PathBuf,
    pub file: PathBuf,
    pub pages: i32,
    pub bytes: u64,
    pub projects: i64,
    pub codes: i64,
    pub api_keys: i64,
    pub redemptions: i64,
}

/// The copy's path while it is being written; renamed into place when complete.
fn partial_path(to: &Path) -> PathBuf {
    let mut p = to.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

pub fn run(data_dir: &Path, to: &Path, force: bool) -> anyhow::Result<Summary> {
    let source = data_dir.join("codegate.db");
    if !source.is_file() {
        bail!("no database at {}", source.display());
    }
    if to.exists() && !force {
        bail!("{} exists; pass --force to replace it", to.display());
    }
    // Read-write without CREATE: a WAL reader may need to set up the shared
    // memory file, and a missing database must not be created empty.
    let src = Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("cannot open {}", source.display()))?;
    src.busy_timeout(Duration::from_secs(30))?;

    let partial = partial_path(to);
    let _ = std::fs::remove_file(&partial);
    let result = copy(&src, &partial);
    let pages = match result {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    drop(src);

    let copy = Connection::open_with_flags(&partial, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        let _ = std::fs::remove_file(&partial);
        bail!("the copy failed its integrity check: {check}");
    }
    let count = |table: &str| -> anyhow::Result<i64> {
        Ok(copy.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
    };
    let summary = Summary {
        source,
        file: to.to_owned(),
        pages,
        bytes: std::fs::metadata(&partial)?.len(),
        projects: count("projects")?,
        codes: count("codes")?,
        api_keys: count("api_keys")?,
        redemptions: count("redemptions")?,
    };
    drop(copy);
    std::fs::rename(&partial, to).with_context(|| format!("cannot write {}", to.display()))?;
    Ok(summary)
}

/// Copies every page in one step: one read transaction, so one consistent
/// snapshot; in WAL mode that does not block the server's writers.
fn copy(src: &Connection, partial: &Path) -> anyhow::Result<i32> {
    let mut dst = Connection::open(partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let pages = {
        let backup = Backup::new(src, &mut dst)?;
        wait_until_done(&backup)?;
        backup.progress().pagecount
    };
    // A standalone file: no -wal/-shm companions needed to read it.
    let mode: String = dst.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        bail!("could not take the copy out of WAL mode (journal_mode={mode})");
    }
    Ok(pages)
}

/// Steps with "all remaining pages" until done; busy means a writer holds a
/// lock we must wait out (bounded, so a wedged database fails instead of hanging).
fn wait_until_done(backup: &Backup<'_, '_>) -> anyhow::Result<()> {
    const TRIES: u32 = 600;
    for _ in 0..TRIES {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    bail!("the database stayed locked for 30 s; try again")
}

pub fn print(summary: &Summary, data_dir: &Path) {
    println!(
        "backed up {} to {}: {} pages, {} bytes; {} projects, {} codes, {} API keys, {} redemptions",
        summary.source.display(),
        summary.file.display(),
        summary.pages,
        summary.bytes,
        summary.projects,
        summary.codes,
        summary.api_keys,
        summary.redemptions
    );
    if data_dir.join("master.key").exists() {
        eprintln!(
            "Keep {} with it: API key secrets in the copy are sealed with that key.",
            data_dir.join("master.key").display()
        );
    }
}
