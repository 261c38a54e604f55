//! [`S3BlobStore`]: blobs in S3-compatible object storage.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use trackstack_store::{BlobStore, ByteStream, PutBlobOutcome, StoreError, StoreResult};

/// Connection settings; credentials left empty come from the standard `AWS_*` environment variables.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    pub allow_http: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// Uploads up to this size go up in one request; larger ones as a multipart upload of parts this big.
const PART_SIZE: usize = 8 * 1024 * 1024;

pub struct S3BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("object storage: {error}"))
}

impl S3BlobStore {
    /// Opens `s3://BUCKET/PREFIX` (`location` is what follows `s3://`) and checks the bucket answers.
    pub async fn connect(location: &str, settings: &S3Settings) -> StoreResult<Self> {
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err(backend("the s3:// URI names no bucket"));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(&settings.region)
            .with_virtual_hosted_style_request(!settings.path_style)
            .with_allow_http(settings.allow_http);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(key) = &settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store: Arc<dyn ObjectStore> = Arc::new(builder.build().map_err(backend)?);
        let prefix = prefix.trim_matches('/').to_owned();
        let blobs = Self { store, prefix };
        // Fail at start-up, not at the first upload, when the bucket or the credentials are wrong.
        blobs.store.list_with_delimiter(Some(&blobs.path("sha256"))).await.map_err(backend)?;
        Ok(blobs)
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    fn blob_path(&self, digest: &str) -> StoreResult<Path> {
        Ok(self.path(&crate::blob_key(digest)?))
    }

    /// Streams `body` to `temp`, hashing it; returns (sha256, size).
    async fn upload(&self, temp: &Path, mut body: ByteStream) -> StoreResult<(String, u64)> {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buffer = BytesMut::new();
        let mut multipart: Option<WriteMultipart> = None;
        let result = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StoreError::Backend(format!("upload interrupted: {e}")))?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                match &mut multipart {
                    Some(upload) => upload.write(&chunk),
                    None => {
                        buffer.extend_from_slice(&chunk);
                        if buffer.len() >= PART_SIZE {
                            let started = self.store.put_multipart(temp).await.map_err(backend)?;
                            let mut upload = WriteMultipart::new_with_chunk_size(started, PART_SIZE);
                            upload.write(&buffer.split());
                            multipart = Some(upload);
                        }
                    }
                }
            }
            Ok::<_, StoreError>(())
        }
        .await;
        match (result, multipart) {
            (Ok(()), Some(upload)) => {
                upload.finish().await.map_err(backend)?;
            }
            (Ok(()), None) => {
                self.store.put(temp, PutPayload::from(buffer.freeze())).await.map_err(backend)?;
            }
            (Err(error), Some(upload)) => {
                let _ = upload.abort().await;
                return Err(error);
            }
            (Err(error), None) => return Err(error),
        }
        Ok((hex::encode(hasher.finalize()), size))
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn check(&self) -> StoreResult<()> {
        self.store.list_with_delimiter(Some(&self.path("sha256"))).await.map_err(backend).map(drop)
    }

    async fn blob_size(&self, digest: &str) -> StoreResult<Option<u64>> {
        match self.store.head(&self.blob_path(digest)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn put_blob(&self, digest: &str, body: ByteStream) -> StoreResult<PutBlobOutcome> {
        let target = self.blob_path(digest)?;
        let temp = self.path(&format!("tmp/upload-{:016x}", rand::random::<u64>()));
        let (actual, size) = self.upload(&temp, body).await?;
        let outcome = if actual != digest {
            Err(crate::digest_mismatch(&actual, digest))
        } else if self.blob_size(digest).await?.is_some() {
            Ok(PutBlobOutcome { size, created: false })
        } else {
            self.store.copy(&temp, &target).await.map_err(backend)?;
            Ok(PutBlobOutcome { size, created: true })
        };
        if let Err(error) = self.store.delete(&temp).await {
            tracing::warn!(%error, path = %temp, "could not remove a temporary upload");
        }
        outcome
    }

    async fn get_blob(&self, digest: &str) -> StoreResult<Option<(u64, ByteStream)>> {
        match self.store.get(&self.blob_path(digest)?).await {
            Ok(result) => {
                let size = result.meta.size;
                let stream = result.into_stream().map_err(std::io::Error::other).boxed();
                Ok(Some((size, stream)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }
}

#[cfg(test)]
mod conformance {
    use super::{S3BlobStore, S3Settings};

    /// A store under a prefix of its own in the test bucket, so tests run side by side.
    async fn open() -> Option<(Box<S3BlobStore>, ())> {
        let url = trackstack_store::testsuite::external_service_url("TRACKSTACK_TEST_S3_URL")?;
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let settings = S3Settings {
            endpoint: env("TRACKSTACK_TEST_S3_ENDPOINT"),
            region: env("TRACKSTACK_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            path_style: true,
            allow_http: true,
            access_key_id: env("TRACKSTACK_TEST_S3_ACCESS_KEY_ID"),
            secret_access_key: env("TRACKSTACK_TEST_S3_SECRET_ACCESS_KEY"),
        };
        let location = format!(
            "{}/conformance-{:016x}",
            url.trim_start_matches("s3://").trim_end_matches('/'),
            rand::random::<u64>()
        );
        let store = S3BlobStore::connect(&location, &settings).await.expect("open the store");
        Some((Box::new(store), ()))
    }

    trackstack_store::blob_store_conformance!(open());
}
