//! The [`BlobStore`] conformance suite.

use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::{BlobStore, ByteStream, StoreError};

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn chunks(data: &[u8], size: usize) -> ByteStream {
    let parts: Vec<std::io::Result<Bytes>> = data.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    stream::iter(parts).boxed()
}

async fn read_all(store: &dyn BlobStore, digest: &str) -> Option<Vec<u8>> {
    let (size, body) = store.get_blob(digest).await.unwrap()?;
    let parts: Vec<Bytes> = body.try_collect().await.unwrap();
    let data = parts.concat();
    assert_eq!(size, data.len() as u64);
    Some(data)
}

pub async fn blobs_round_trip_by_digest(store: &dyn BlobStore) {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = sha256(&data);
    assert_eq!(store.blob_size(&digest).await.unwrap(), None);
    let put = store.put_blob(&digest, chunks(&data, 8191)).await.unwrap();
    assert_eq!((put.size, put.created), (data.len() as u64, true));
    assert_eq!(store.blob_size(&digest).await.unwrap(), Some(data.len() as u64));
    assert_eq!(read_all(store, &digest).await.as_deref(), Some(&data[..]));
    let empty = sha256(b"");
    store.put_blob(&empty, chunks(b"", 1)).await.unwrap();
    assert_eq!(read_all(store, &empty).await, Some(vec![]));
}

pub async fn a_wrong_digest_stores_nothing(store: &dyn BlobStore) {
    let claimed = sha256(b"what the client said");
    let err = store.put_blob(&claimed, chunks(b"what it sent", 4)).await.unwrap_err();
    assert!(matches!(&err, StoreError::Invalid { field, .. } if field == "digest"), "{err:?}");
    assert_eq!(store.blob_size(&claimed).await.unwrap(), None);
    assert!(read_all(store, &sha256(b"what it sent")).await.is_none());
}

pub async fn a_failing_upload_stores_nothing(store: &dyn BlobStore) {
    let digest = sha256(b"abcdef");
    let parts = vec![Ok(Bytes::from_static(b"abc")), Err(std::io::Error::other("client went away"))];
    assert!(store.put_blob(&digest, stream::iter(parts).boxed()).await.is_err());
    assert_eq!(store.blob_size(&digest).await.unwrap(), None);
}

pub async fn storing_twice_keeps_one_copy(store: &dyn BlobStore) {
    let digest = sha256(b"weights");
    assert!(store.put_blob(&digest, chunks(b"weights", 3)).await.unwrap().created);
    let again = store.put_blob(&digest, chunks(b"weights", 2)).await.unwrap();
    assert_eq!((again.size, again.created), (7, false));
    assert_eq!(read_all(store, &digest).await.as_deref(), Some(&b"weights"[..]));
}

pub async fn large_blobs_round_trip(store: &dyn BlobStore) {
    // Larger than one multipart part of object-storage backends, fed in uneven chunks.
    let data: Vec<u8> =
        (0..20 * 1024 * 1024 + 12_345u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let digest = sha256(&data);
    let put = store.put_blob(&digest, chunks(&data, 1_000_003)).await.unwrap();
    assert_eq!((put.size, put.created), (data.len() as u64, true));
    assert!(read_all(store, &digest).await.unwrap() == data, "content differs after the round trip");
}

pub async fn a_working_store_reports_ready(store: &dyn BlobStore) {
    store.check().await.expect("a freshly opened store is ready");
}
