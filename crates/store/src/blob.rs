//! Content-addressed blobs: artifact files stored once per sha256 digest.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::StoreResult;

/// A stream of bytes going into or coming out of a blob store.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutBlobOutcome {
    pub size: u64,
    /// False when the blob was already stored (the upload was consumed and discarded).
    pub created: bool,
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Answers whether the backend is reachable and usable (a cheap round trip), for readiness probes.
    async fn check(&self) -> StoreResult<()>;
    /// The size of the blob, if stored.
    async fn blob_size(&self, digest: &str) -> StoreResult<Option<u64>>;
    /// Streams `body` in, hashing as it goes; stores it under `digest` only if the content's sha256 equals
    /// `digest` (else `Invalid` on field `digest`). A failing stream stores nothing.
    async fn put_blob(&self, digest: &str, body: ByteStream) -> StoreResult<PutBlobOutcome>;
    /// The blob's size and content as a stream, if stored.
    async fn get_blob(&self, digest: &str) -> StoreResult<Option<(u64, ByteStream)>>;
}
