//! Blob stores: content-addressed storage for artifact files, one object per sha256 digest.
//!
//! - [`FileBlobStore`]: a local directory, the embedded default (`file://PATH`).
//! - [`S3BlobStore`]: S3-compatible object storage through the `object_store` crate (`s3://BUCKET/PREFIX`) —
//!   AWS S3, MinIO, Garage.
//!
//! Both lay blobs out as `sha256/<first two hex digits>/<digest>` and write an upload under a temporary name
//! first, exposing it under its digest only once the content's hash matches, so a failed or lying upload never
//! leaves a partial blob under a valid name, and equal content is stored once.

mod file;
mod s3;

pub use file::FileBlobStore;
pub use s3::{S3BlobStore, S3Settings};

use trackstack_domain::validate;
use trackstack_store::StoreError;

/// Where a blob lives, relative to the store's root. The digest becomes a path: only a well-formed one may.
fn blob_key(digest: &str) -> Result<String, StoreError> {
    validate::digest("digest", digest)
        .map_err(|e| StoreError::Invalid { field: "digest".into(), message: e.message })?;
    Ok(format!("sha256/{}/{digest}", &digest[..2]))
}

fn digest_mismatch(actual: &str, claimed: &str) -> StoreError {
    StoreError::Invalid {
        field: "digest".into(),
        message: format!("the uploaded content has sha256 {actual}, not {claimed}"),
    }
}
