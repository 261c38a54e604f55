//! A SQLite database shared by async code: one writer connection (SQLite allows one writer at a time) and a
//! small pool of reader connections, which WAL mode lets run beside the writer. Every call runs on tokio's
//! blocking pool so a slow disk never stalls the async runtime.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use trackstack_store::{StoreError, StoreResult};

use crate::migrations::Migration;

const MAX_IDLE_READERS: usize = 8;

pub(crate) struct Database {
    path: PathBuf,
    writer: Mutex<Connection>,
    idle_readers: Mutex<Vec<Connection>>,
}

impl Database {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub(crate) fn open(path: &Path, migrations: &[Migration]) -> StoreResult<Arc<Database>> {
        Self::open_with_page_size(path, migrations, None)
    }

    /// As [`Database::open`]; a new database gets `page_size` bytes per page (an existing one keeps its own).
    pub(crate) fn open_with_page_size(
        path: &Path,
        migrations: &[Migration],
        page_size: Option<u32>,
    ) -> StoreResult<Arc<Database>> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Backend(format!("cannot create directory {}: {e}", parent.display())))?;
        }
        let mut writer = Connection::open(path).map_err(|e| backend_error(path, e))?;
        if let Some(bytes) = page_size {
            writer.pragma_update(None, "page_size", bytes).map_err(|e| backend_error(path, e))?;
        }
        // FULL makes every commit durable before it is acknowledged, as DESIGN.md §2 requires.
        writer
            // auto_vacuum only takes effect in a new database; it lets deletes hand pages back to the file system.
            .execute_batch(
                "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                 PRAGMA busy_timeout = 10000;",
            )
            .map_err(|e| backend_error(path, e))?;
        crate::migrations::apply(&mut writer, migrations).map_err(|e| backend_error(path, e))?;
        register_functions(&writer).map_err(|e| backend_error(path, e))?;
        Ok(Arc::new(Database {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            idle_readers: Mutex::new(Vec::new()),
        }))
    }

    /// Runs `work` in a transaction on the writer connection.
    pub(crate) async fn write<T, F>(self: &Arc<Self>, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let db = Arc::clone(self);
        run_blocking(move || {
            db.with_writer(|conn| {
                let tx = conn.transaction().map_err(StoreError::backend)?;
                let value = work(&tx)?;
                tx.commit().map_err(StoreError::backend)?;
                Ok(value)
            })
        })
        .await
    }

    /// As [`Database::write`], on the calling thread (for start-up work).
    pub(crate) fn write_blocking<T>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.with_writer(|conn| {
            let tx = conn.transaction().map_err(StoreError::backend)?;
            let value = work(&tx)?;
            tx.commit().map_err(StoreError::backend)?;
            Ok(value)
        })
    }

    /// Runs `work` on a reader connection (a consistent snapshot for the duration of a statement).
    pub(crate) async fn read<T, F>(self: &Arc<Self>, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let db = Arc::clone(self);
        run_blocking(move || db.with_reader(work)).await
    }

    /// Runs `work` on the writer connection on the calling thread, which may block; the caller manages
    /// transactions.
    pub(crate) fn with_writer<T>(&self, work: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut conn)
    }

    /// Runs `work` on a reader connection on the calling thread, which may block.
    pub(crate) fn with_reader<T>(&self, work: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let reader = self.checkout_reader()?;
        let result = work(&reader);
        self.checkin_reader(reader);
        result
    }

    fn checkout_reader(&self) -> StoreResult<Connection> {
        if let Some(conn) = self.idle_readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(conn);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(|e| backend_error(&self.path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(StoreError::backend)?;
        register_functions(&conn).map_err(StoreError::backend)?;
        Ok(conn)
    }

    fn checkin_reader(&self, conn: Connection) {
        let mut idle = self.idle_readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

/// `regexp(pattern, text)`: whether the Rust regular expression `pattern` is found in `text` (NULL text: no).
/// The compiled pattern is cached per statement, so a query compiles it once, not once per row.
fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function("regexp", 2, FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC, |ctx| {
        let pattern =
            ctx.get_or_create_aux(0, |value| -> Result<regex::Regex, Box<dyn std::error::Error + Send + Sync>> {
                Ok(regex::Regex::new(value.as_str()?)?)
            })?;
        Ok(match ctx.get_raw(1) {
            rusqlite::types::ValueRef::Text(text) => pattern.is_match(&String::from_utf8_lossy(text)),
            _ => false,
        })
    })
}

pub(crate) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| StoreError::Backend(format!("storage task failed: {e}")))?
}

fn backend_error(path: &Path, error: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("{}: {error}", path.display()))
}

/// Converts SQLite failures inside store code.
pub(crate) trait SqlResultExt<T> {
    fn backend(self) -> StoreResult<T>;
}

impl<T> SqlResultExt<T> for rusqlite::Result<T> {
    fn backend(self) -> StoreResult<T> {
        self.map_err(StoreError::backend)
    }
}
