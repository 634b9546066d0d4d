//! A VFS for the writer connection that hands each commit's WAL frames to
//! the kernel in one write.
//!
//! SQLite writes a WAL frame as two `pwrite`s, its 24-byte header and then
//! the page. A group commit of ~45 pages is therefore ~90 system calls on the
//! writer thread while every caller in the group waits for it (about a fifth
//! of the writer's time during verify load, nearly all of it per-call kernel
//! work rather than copying bytes).
//!
//! This VFS wraps SQLite's default one (`unix`). Every file but the WAL is
//! SQLite's own, untouched. For the WAL, writes that continue each other are
//! gathered in memory and written with one call when:
//!
//! - a commit frame's header comes (the frame whose header carries the
//!   database size: the last one of a transaction); the page after it is
//!   written straight through, so a commit is in the file before SQLite
//!   publishes it to readers through the wal-index and before `COMMIT`
//!   returns. (A header alone can be the last write of a commit: SQLite
//!   rewrites the headers of frames it overwrote within a transaction.)
//! - anything else touches the file (a read, a sync, a size query, a
//!   truncation, a lock, a file control, the close), or a write does not
//!   continue the gathered ones;
//! - the gathered bytes reach [`MAX_PENDING`] (a transaction that spills
//!   many pages, such as a bulk load).
//!
//! Nothing is lost that SQLite would keep: frames are durable only after a
//! sync in any case (which writes the gathered bytes first), and a crash
//! between the gathering and the write leaves the WAL as a crash in the
//! middle of SQLite's own writes would: without a valid commit frame, which
//! recovery ignores.
//!
//! It relies on `SQLITE_IOCAP_POWERSAFE_OVERWRITE` (the `unix` VFS's default):
//! without it SQLite pads commits to sector boundaries and may split a frame
//! around a sync, so a WAL on such a device is passed through unbuffered.

use rusqlite::ffi;
use std::ffi::{c_int, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

/// The name the writer connection opens its database with.
pub(super) const NAME: &CStr = c"codegate-wal";

/// Bytes gathered at most before they are written anyway.
const MAX_PENDING: usize = 1 << 20;

/// Bytes per write to SQLite's own file: the `unix` VFS takes at most
/// 128 KiB - 1 per call (it masks larger sizes).
const MAX_WRITE: usize = 120 * 1024;

/// Size of a WAL frame header; bytes 4..8 of it hold the database size in
/// pages after a commit frame, and zero in every other frame.
const FRAME_HEADER: usize = 24;

/// The VFS this one wraps (SQLite's default when it was registered).
static BASE: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(ptr::null_mut());

/// Registers the VFS once per process; later calls repeat the first answer.
pub(super) fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: sqlite3_vfs_find(NULL) returns SQLite's default VFS, which lives as
            // long as the process. The copy is leaked on purpose: SQLite keeps a pointer to
            // a registered VFS for ever.
            unsafe {
                let base = ffi::sqlite3_vfs_find(ptr::null());
                if base.is_null() {
                    return Err("SQLite has no default VFS".into());
                }
                BASE.store(base, Ordering::Release);
                let mut vfs: ffi::sqlite3_vfs = *base;
                vfs.pNext = ptr::null_mut();
                vfs.zName = NAME.as_ptr();
                vfs.szOsFile = (WAL_FILE_SIZE + (*base).szOsFile as usize) as c_int;
                vfs.xOpen = Some(open);
                let vfs = Box::into_raw(Box::new(vfs));
                match ffi::sqlite3_vfs_register(vfs, 0) {
                    ffi::SQLITE_OK => Ok(()),
                    rc => Err(format!("sqlite3_vfs_register failed ({rc})")),
                }
            }
        })
        .clone()
}

/// A WAL file opened through this VFS: SQLite's own file follows it in the
/// same allocation (`inner`).
#[repr(C)]
struct WalFile {
    /// Must come first: SQLite sees this struct as a `sqlite3_file`.
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// Whether writes are gathered at all (see the module's last paragraph).
    gather: bool,
    pending: Vec<u8>,
    /// File offset of `pending[0]`.
    start: i64,
    /// The last write was a commit frame's header: the next write (its page)
    /// goes straight to the file.
    commit_page_next: bool,
}

/// Where the inner file starts, 8-byte aligned as SQLite's own structs need.
const WAL_FILE_SIZE: usize = std::mem::size_of::<WalFile>().next_multiple_of(8);

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(wal_close),
    xRead: Some(wal_read),
    xWrite: Some(wal_write),
    xTruncate: Some(wal_truncate),
    xSync: Some(wal_sync),
    xFileSize: Some(wal_file_size),
    xLock: Some(wal_lock),
    xUnlock: Some(wal_unlock),
    xCheckReservedLock: Some(wal_check_reserved_lock),
    xFileControl: Some(wal_file_control),
    xSectorSize: Some(wal_sector_size),
    xDeviceCharacteristics: Some(wal_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let base = BASE.load(Ordering::Acquire);
    let Some(base_open) = (*base).xOpen else { return ffi::SQLITE_CANTOPEN };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Not a WAL: SQLite's own file, in the space SQLite gave us.
        return base_open(base, name, file, flags, out_flags);
    }
    let inner = file.cast::<u8>().add(WAL_FILE_SIZE).cast::<ffi::sqlite3_file>();
    (*inner).pMethods = ptr::null();
    let rc = base_open(base, name, inner, flags, out_flags);
    if rc != ffi::SQLITE_OK || (*inner).pMethods.is_null() {
        if !(*inner).pMethods.is_null() {
            if let Some(close) = (*(*inner).pMethods).xClose {
                close(inner);
            }
        }
        (*file).pMethods = ptr::null();
        return if rc == ffi::SQLITE_OK { ffi::SQLITE_CANTOPEN } else { rc };
    }
    let characteristics = match (*(*inner).pMethods).xDeviceCharacteristics {
        Some(f) => f(inner),
        None => 0,
    };
    ptr::write(
        file.cast::<WalFile>(),
        WalFile {
            base: ffi::sqlite3_file { pMethods: &WAL_METHODS },
            inner,
            gather: characteristics & ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0,
            pending: Vec::new(),
            start: 0,
            commit_page_next: false,
        },
    );
    ffi::SQLITE_OK
}

/// # Safety
/// `file` must be a `WalFile` set up by [`open`] and not yet closed.
unsafe fn wal<'a>(file: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    &mut *file.cast::<WalFile>()
}

impl WalFile {
    fn methods(&self) -> &ffi::sqlite3_io_methods {
        // SAFETY: `inner` was opened successfully in `open` and stays open until `wal_close`.
        unsafe { &*(*self.inner).pMethods }
    }

    /// Writes the gathered bytes; they are dropped either way (after a failed
    /// write SQLite abandons its transaction and writes those frames again).
    fn flush(&mut self) -> c_int {
        let Some(write) = self.methods().xWrite else { return ffi::SQLITE_IOERR_WRITE };
        let mut rc = ffi::SQLITE_OK;
        let mut offset = self.start;
        for piece in self.pending.chunks(MAX_WRITE) {
            // SAFETY: `piece` is live for the call, and MAX_WRITE fits a c_int.
            rc = unsafe { write(self.inner, piece.as_ptr().cast::<c_void>(), piece.len() as c_int, offset) };
            if rc != ffi::SQLITE_OK {
                break;
            }
            offset += piece.len() as i64;
        }
        self.pending.clear();
        rc
    }
}

unsafe extern "C" fn wal_write(file: *mut ffi::sqlite3_file, buf: *const c_void, amt: c_int, offset: i64) -> c_int {
    let w = wal(file);
    let write_through = !w.gather || std::mem::take(&mut w.commit_page_next);
    if write_through {
        return w.methods().xWrite.map_or(ffi::SQLITE_IOERR_WRITE, |write| write(w.inner, buf, amt, offset));
    }
    let Ok(len) = usize::try_from(amt) else { return ffi::SQLITE_IOERR_WRITE };
    let data = std::slice::from_raw_parts(buf.cast::<u8>(), len);
    if !w.pending.is_empty() && offset != w.start + w.pending.len() as i64 {
        let rc = w.flush();
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    if w.pending.is_empty() {
        w.start = offset;
    }
    w.pending.extend_from_slice(data);
    if len == FRAME_HEADER && data[4..8] != [0, 0, 0, 0] {
        // A commit frame's header: everything up to it goes now. When SQLite appends
        // the frame, its page follows at once and is written through; when SQLite
        // rewrites checksums of a transaction's frames, nothing follows it.
        w.commit_page_next = true;
        return w.flush();
    }
    if w.pending.len() >= MAX_PENDING {
        return w.flush();
    }
    ffi::SQLITE_OK
}

/// Writes what was gathered, then does what SQLite asked of its own file.
macro_rules! flush_then {
    ($file:ident, $method:ident ( $($arg:expr),* ), $missing:expr) => {{
        let w = wal($file);
        let rc = w.flush();
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        match w.methods().$method {
            Some(f) => f(w.inner $(, $arg)*),
            None => $missing,
        }
    }};
}

unsafe extern "C" fn wal_read(file: *mut ffi::sqlite3_file, buf: *mut c_void, amt: c_int, offset: i64) -> c_int {
    flush_then!(file, xRead(buf, amt, offset), ffi::SQLITE_IOERR_READ)
}

unsafe extern "C" fn wal_truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    flush_then!(file, xTruncate(size), ffi::SQLITE_IOERR_TRUNCATE)
}

unsafe extern "C" fn wal_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flush_then!(file, xSync(flags), ffi::SQLITE_IOERR_FSYNC)
}

unsafe extern "C" fn wal_file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    flush_then!(file, xFileSize(size), ffi::SQLITE_IOERR_FSTAT)
}

unsafe extern "C" fn wal_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    flush_then!(file, xLock(level), ffi::SQLITE_OK)
}

unsafe extern "C" fn wal_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    flush_then!(file, xUnlock(level), ffi::SQLITE_OK)
}

unsafe extern "C" fn wal_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    flush_then!(file, xCheckReservedLock(out), ffi::SQLITE_OK)
}

unsafe extern "C" fn wal_file_control(file: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    flush_then!(file, xFileControl(op, arg), ffi::SQLITE_NOTFOUND)
}

unsafe extern "C" fn wal_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let w = wal(file);
    w.methods().xSectorSize.map_or(4096, |f| f(w.inner))
}

unsafe extern "C" fn wal_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let w = wal(file);
    w.methods().xDeviceCharacteristics.map_or(0, |f| f(w.inner))
}

unsafe extern "C" fn wal_close(file: *mut ffi::sqlite3_file) -> c_int {
    let w = wal(file);
    let flushed = w.flush();
    let closed = w.methods().xClose.map_or(ffi::SQLITE_OK, |close| close(w.inner));
    ptr::drop_in_place(file.cast::<WalFile>());
    (*file).pMethods = ptr::null();
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};

    fn writer(path: &std::path::Path) -> Connection {
        register().unwrap();
        let conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), NAME).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        conn
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn each_commit_is_in_the_file_before_another_connection_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = writer(&path);
        // SQLite's own VFS, as the server's readers use it: it reads frames from the file.
        let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        for i in 0..300_i64 {
            w.execute_batch("BEGIN IMMEDIATE").unwrap();
            for j in 0..(1 + i % 7) {
                w.execute("INSERT INTO t (v) VALUES (?1)", [format!("{i}-{j}-{}", "x".repeat(300))]).unwrap();
            }
            w.execute_batch("COMMIT").unwrap();
            let seen: (i64, String) = reader
                .query_row("SELECT count(*), max(v) FROM t WHERE v LIKE ?1", [format!("{i}-%")], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!(seen.0, 1 + i % 7, "commit {i} fully visible");
            assert!(seen.1.starts_with(&format!("{i}-{}", i % 7)));
        }
        let wal = std::fs::metadata(dir.path().join("w.db-wal")).unwrap().len();
        assert!(wal > 300 * 2048, "the commits went to the WAL ({wal} bytes)");
    }

    #[test]
    fn a_transaction_larger_than_the_gathering_limit_survives_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        {
            let w = writer(&path);
            // A small cache makes SQLite spill pages to the WAL mid-transaction and read some back.
            w.execute_batch("PRAGMA cache_size = 20; BEGIN IMMEDIATE").unwrap();
            for i in 0..40_000_i64 {
                w.execute(
                    "INSERT INTO t (k, v) VALUES (?1, ?2)",
                    rusqlite::params![(i * 7919) % 40_000, format!("{i:>120}")],
                )
                .unwrap();
            }
            w.execute_batch("COMMIT").unwrap();
            let wal = std::fs::metadata(dir.path().join("w.db-wal")).unwrap().len();
            assert!(wal as usize > 3 * MAX_PENDING, "spilled and committed more than the limit ({wal} bytes)");
            // Leave the WAL behind as a crash would: no checkpoint when this connection closes.
            std::mem::forget(w);
        }
        // A fresh process-wide view: copy the files so this connection recovers from the WAL
        // itself (its checksums cover every frame's header and page).
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::copy(dir.path().join("w.db-wal"), dir.path().join("copy.db-wal")).unwrap();
        let recovered = Connection::open(&copy).unwrap();
        assert_eq!(count(&recovered), 40_000);
        let check: String = recovered.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
    }

    #[test]
    fn other_files_are_sqlites_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = writer(&path);
        w.execute("INSERT INTO t (v) VALUES ('a')", []).unwrap();
        // A rollback journal (not a WAL) goes through unchanged: a second database attached
        // in rollback mode commits and reads back.
        w.execute_batch(&format!(
            "ATTACH '{}' AS other; CREATE TABLE other.u (v); BEGIN; INSERT INTO other.u VALUES (1); COMMIT;",
            dir.path().join("o.db").display()
        ))
        .unwrap();
        let n: i64 = w.query_row("SELECT count(*) FROM other.u", [], |r| r.get(0)).unwrap();
        assert_eq!((count(&w), n), (1, 1));
    }
}
