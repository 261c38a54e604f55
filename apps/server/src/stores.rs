//! The composition root: turns the configured URIs into store instances.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use trackstack_config::{Config, StorageUri};
use trackstack_store::Stores;
use trackstack_store::{BlobStore, ChangeFeed, LocalChangeFeed, MetadataStore, SeriesStore};
use trackstack_store_blob::{FileBlobStore, S3BlobStore, S3Settings};
use trackstack_store_clickhouse::{schema::SchemaOptions, ClickHouseOptions, ClickHouseSeriesStore};
use trackstack_store_postgres::PostgresMetadataStore;
use trackstack_store_sqlite::{EmbeddedSeriesStore, EngineOptions, SqliteMetadataStore};

/// Opens every store the configuration names, migrating schemas as needed.
pub async fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    let metadata_uri = config.metadata_uri();
    let series_uri = config.series_uri();
    let blobs_uri = config.blobs_uri();
    let metadata_context = || format!("cannot open metadata store {}", metadata_uri.redacted());
    // Live updates travel through the metadata backend: in-process when embedded, NOTIFY on Postgres.
    let (metadata, changes): (Arc<dyn MetadataStore>, Arc<dyn ChangeFeed>) = match metadata_uri.scheme.as_str() {
        "sqlite" => (
            Arc::new(SqliteMetadataStore::open(Path::new(&metadata_uri.location)).with_context(metadata_context)?),
            Arc::new(LocalChangeFeed::new()),
        ),
        "postgres" | "postgresql" => {
            let store =
                PostgresMetadataStore::connect(&metadata_uri.to_string(), config.storage.postgres.max_connections)
                    .await
                    .with_context(metadata_context)?;
            let changes = store.change_feed().with_context(metadata_context)?;
            (Arc::new(store), Arc::new(changes))
        }
        _ => bail!(unsupported(&metadata_uri)),
    };
    let series_context = || format!("cannot open series store {}", series_uri.redacted());
    let series: Arc<dyn SeriesStore> = match series_uri.scheme.as_str() {
        "sqlite" => {
            let embedded = &config.storage.embedded;
            let options = EngineOptions {
                flush_interval: Duration::from_millis(embedded.flush_interval_ms),
                flush_points: embedded.flush_points,
                max_pending_points: embedded.max_pending_points,
            };
            Arc::new(
                EmbeddedSeriesStore::open_with(Path::new(&series_uri.location), options)
                    .with_context(series_context)?,
            )
        }
        "clickhouse" => {
            let settings = &config.storage.clickhouse;
            let options = ClickHouseOptions {
                schema: SchemaOptions { cluster: settings.cluster.clone(), replicated: settings.replicated },
                async_insert: settings.async_insert,
            };
            Arc::new(ClickHouseSeriesStore::connect(&series_uri.location, options).await.with_context(series_context)?)
        }
        _ => bail!(unsupported(&series_uri)),
    };
    let blobs_context = || format!("cannot open blob store {}", blobs_uri.redacted());
    let blobs: Arc<dyn BlobStore> = match blobs_uri.scheme.as_str() {
        "file" => Arc::new(FileBlobStore::open(Path::new(&blobs_uri.location)).with_context(blobs_context)?),
        "s3" => {
            let s3 = &config.storage.s3;
            let settings = S3Settings {
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                path_style: s3.path_style,
                allow_http: s3.allow_http,
                access_key_id: s3.access_key_id.clone(),
                secret_access_key: s3.secret_access_key.clone(),
            };
            Arc::new(S3BlobStore::connect(&blobs_uri.location, &settings).await.with_context(blobs_context)?)
        }
        _ => bail!(unsupported(&blobs_uri)),
    };
    tracing::info!(
        metadata = %metadata_uri.redacted(),
        series = %series_uri.redacted(),
        blobs = %blobs_uri.redacted(),
        "storage opened"
    );
    Ok(Stores { metadata, series, blobs, changes })
}

fn unsupported(uri: &StorageUri) -> String {
    format!("no backend for {} in this build", uri.redacted())
}
