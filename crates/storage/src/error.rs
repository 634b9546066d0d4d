use thiserror::Error;

/// What can go wrong below the HTTP layer.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the string names it (e.g. `project_name`).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database cannot be reached or is shutting down; worth a retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage fault: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(code, _) = &e {
            if matches!(code.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) {
                return StoreError::Unavailable(e.to_string());
            }
        }
        StoreError::Internal(e.to_string())
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
