//! Store failures, named for what went wrong rather than for the backend that noticed.

use trackstack_domain::{Error, ErrorCode};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Conflict(String),
    /// Input that only the store can judge, e.g. a manifest naming a blob it does not hold.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// The store is saturated for now (e.g. writes arrive faster than they can be packed); retrying later works.
    #[error("{0}")]
    Unavailable(String),
    /// The backend failed (I/O, corruption, a lost connection). Never caused by input.
    #[error("storage backend failed: {0}")]
    Backend(String),
}

impl StoreError {
    pub fn backend(error: impl std::fmt::Display) -> Self {
        StoreError::Backend(error.to_string())
    }

    /// A client-chosen run id collides with a run of another project (run ids are global).
    pub fn run_id_taken(id: &str, project: &str) -> Self {
        StoreError::AlreadyExists(format!("run id `{id}` is already used in project `{project}`"))
    }

    pub fn error_code(&self) -> ErrorCode {
        match self {
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            StoreError::Conflict(_) => ErrorCode::Conflict,
            StoreError::Invalid { .. } => ErrorCode::InvalidArgument,
            StoreError::Unavailable(_) => ErrorCode::Unavailable,
            StoreError::Backend(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        let code = error.error_code();
        match error {
            StoreError::Invalid { field, message } => Error::invalid(field, message),
            // Backend details stay in the server's log; the client learns only that it was not its fault.
            StoreError::Backend(_) => Error::internal("internal storage error"),
            other => Error::new(code, other.to_string()),
        }
    }
}
