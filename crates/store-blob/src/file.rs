//! [`FileBlobStore`]: the embedded [`BlobStore`], a local directory of content-addressed files.
//!
//! A blob lives at `<root>/sha256/<first two hex digits>/<digest>`. Uploads stream into `<root>/tmp/`, hashing
//! as they go, are fsynced, and are renamed into place only when the digest matches.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;
use trackstack_store::{BlobStore, ByteStream, PutBlobOutcome, StoreError, StoreResult};

pub struct FileBlobStore {
    root: PathBuf,
}

impl FileBlobStore {
    /// Opens the store rooted at `root`, creating it, and clears uploads a crash left behind.
    pub fn open(root: &Path) -> StoreResult<Self> {
        let tmp = root.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        for dir in [root.join("sha256"), tmp] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        Ok(Self { root: root.to_owned() })
    }

    fn blob_path(&self, digest: &str) -> StoreResult<PathBuf> {
        Ok(self.root.join(crate::blob_key(digest)?))
    }

    fn temp_path(&self) -> PathBuf {
        self.root.join("tmp").join(format!("upload-{:016x}", rand::random::<u64>()))
    }
}

fn io_error(context: &str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{context} {}: {error}", path.display()))
}

async fn file_size(path: &Path) -> StoreResult<Option<u64>> {
    match tokio::fs::metadata(path).await {
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("cannot stat", path, e)),
    }
}

#[async_trait]
impl BlobStore for FileBlobStore {
    async fn check(&self) -> StoreResult<()> {
        let dir = self.root.join("sha256");
        tokio::fs::metadata(&dir).await.map_err(|e| io_error("cannot reach", &dir, e)).map(drop)
    }

    async fn blob_size(&self, digest: &str) -> StoreResult<Option<u64>> {
        file_size(&self.blob_path(digest)?).await
    }

    async fn put_blob(&self, digest: &str, mut body: ByteStream) -> StoreResult<PutBlobOutcome> {
        let target = self.blob_path(digest)?;
        let temp = self.temp_path();
        let upload = async {
            let mut file = tokio::fs::File::create(&temp).await.map_err(|e| io_error("cannot create", &temp, e))?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StoreError::Backend(format!("upload interrupted: {e}")))?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(|e| io_error("cannot write", &temp, e))?;
            }
            file.sync_all().await.map_err(|e| io_error("cannot sync", &temp, e))?;
            Ok::<_, StoreError>((hex::encode(hasher.finalize()), size))
        };
        let (actual, size) = match upload.await {
            Ok(done) => done,
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(e);
            }
        };
        if actual != digest {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(crate::digest_mismatch(&actual, digest));
        }
        if file_size(&target).await?.is_some() {
            let _ = tokio::fs::remove_file(&temp).await;
            return Ok(PutBlobOutcome { size, created: false });
        }
        let dir = target.parent().expect("blob paths have a parent");
        tokio::fs::create_dir_all(dir).await.map_err(|e| io_error("cannot create", dir, e))?;
        tokio::fs::rename(&temp, &target).await.map_err(|e| io_error("cannot move upload to", &target, e))?;
        // The rename is durable only once the directory entry is.
        if let Ok(dir_handle) = tokio::fs::File::open(dir).await {
            let _ = dir_handle.sync_all().await;
        }
        Ok(PutBlobOutcome { size, created: true })
    }

    async fn get_blob(&self, digest: &str) -> StoreResult<Option<(u64, ByteStream)>> {
        let path = self.blob_path(digest)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("cannot open", &path, e)),
        };
        let size = file.metadata().await.map_err(|e| io_error("cannot stat", &path, e))?.len();
        Ok(Some((size, ReaderStream::with_capacity(file, 64 * 1024).boxed())))
    }
}

#[cfg(test)]
mod conformance {
    use super::FileBlobStore;

    trackstack_store::blob_store_conformance!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = FileBlobStore::open(dir.path()).unwrap();
        Some((Box::new(store), dir))
    });

    #[tokio::test]
    async fn malformed_digests_never_become_paths() {
        use trackstack_store::BlobStore;
        let dir = tempfile::tempdir().unwrap();
        let store = FileBlobStore::open(dir.path()).unwrap();
        for bad in ["../../etc/passwd", "ABCDEF", ""] {
            assert!(store.blob_size(bad).await.is_err(), "{bad}");
        }
    }
}
