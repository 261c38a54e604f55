//! The state every handler shares.

use trackstack_store::Stores;

#[derive(Clone)]
pub struct ApiState {
    pub stores: Stores,
    pub limits: ApiLimits,
}

#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    /// Largest single blob upload, in bytes.
    pub max_blob_bytes: u64,
}
