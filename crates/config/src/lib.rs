//! Trackstack's typed configuration and how it is assembled: built-in defaults, then a TOML file, then
//! `TRACKSTACK_*` environment variables, then command-line flags, each layer overriding the one before.
//! [`Config::validate`] checks the merged result once, at start-up, and reports every problem at once.
//!
//! Environment variables use `__` between section and key (`TRACKSTACK_SERVER__BIND=0.0.0.0:3000`); a
//! top-level key is just its name (`TRACKSTACK_DATA_DIR`). Only variables naming a config section or
//! top-level key are read, so the SDK's variables (`TRACKSTACK_URL`, …) never disturb the server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The server's whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Format version of the config file; only 1 exists.
    pub version: u32,
    /// Where embedded storage keeps its files (metadata database, series, blobs).
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub processor: ProcessorConfig,
    pub log: LogConfig,
    pub telemetry: TelemetryConfig,
}

/// The server's own telemetry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP endpoint (base URL, e.g. `http://collector:4318`) that receives the server's traces;
    /// empty: no export. Metrics are served at `/metrics` for scraping either way.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { otlp_endpoint: None, service_name: "trackstack".to_owned() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorConfig {
    /// Seconds between passes of the background jobs.
    pub interval_secs: u64,
    /// A running run whose last heartbeat is older than this is marked crashed. The SDK heartbeats at least
    /// every 30 s while a run is open.
    pub crash_after_secs: u64,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self { interval_secs: 30, crash_after_secs: 300 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTP port (UI, REST API, ingest).
    pub bind: String,
    /// Seconds in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// The roles this process runs; all three by default (the all-in-one shape).
    pub roles: Vec<Role>,
}

/// A role of the server process. In the cluster shape each runs as its own, independently scaled process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The write path: `POST /api/v1/ingest` and blob uploads.
    Ingest,
    /// The REST API (reads and metadata writes).
    Api,
    /// Background jobs: crash detection (and, later, rollups, retention, compaction).
    Processor,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Ingest, Role::Api, Role::Processor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Api => "api",
            Role::Processor => "processor",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a role; expected ingest, api or processor"))
    }
}

/// Backend URIs and backend settings. An empty URI means the embedded default under `data_dir`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`; default `sqlite://{data_dir}/meta.db`.
    pub metadata: Option<String>,
    /// `sqlite://PATH` or `clickhouse://[USER:PASSWORD@]HOST:PORT/DB` (the HTTP interface, plain HTTP);
    /// default `sqlite://{data_dir}/series.db`.
    pub series: Option<String>,
    /// `file://PATH` or `s3://BUCKET/PREFIX`; default `file://{data_dir}/blobs`.
    pub blobs: Option<String>,
    pub embedded: EmbeddedSeriesConfig,
    pub postgres: PostgresConfig,
    pub clickhouse: ClickHouseConfig,
    pub s3: S3Config,
}

/// The embedded series engine (`sqlite://` series storage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedSeriesConfig {
    /// How often acknowledged points are packed from the in-memory head into compressed blocks.
    pub flush_interval_ms: u64,
    /// Pack sooner once the head holds this many points.
    pub flush_points: usize,
    /// Beyond this many points waiting in the head, writes are refused with 503 and Retry-After until packing
    /// catches up: back-pressure instead of unbounded memory.
    pub max_pending_points: usize,
}

impl Default for EmbeddedSeriesConfig {
    fn default() -> Self {
        Self { flush_interval_ms: 1_000, flush_points: 2_000_000, max_pending_points: 8_000_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Connections in this process's pool.
    pub max_connections: usize,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self { max_connections: 16 }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// Cluster name for `ON CLUSTER` DDL; empty for a single server.
    pub cluster: Option<String>,
    /// Use Replicated* engines and a Distributed table over them (needs `cluster`).
    pub replicated: bool,
    /// Let ClickHouse buffer inserts server-side (`async_insert=1, wait_for_async_insert=1`), for many small
    /// batches; each ingest request still returns only once its points are written, and replays stay no-ops.
    pub async_insert: bool,
}

/// S3-compatible object storage (AWS S3, MinIO, Garage). Credentials come from here or, when empty, from the
/// standard `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` environment variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:9000` for MinIO; empty for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style URLs (`endpoint/bucket/key`), which MinIO and Garage need.
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow `http://` endpoints.
    pub allow_http: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".to_owned(),
            path_style: true,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest JSON request body, after decompression.
    pub max_json_body_bytes: u64,
    /// Largest single blob (artifact file) upload.
    pub max_blob_bytes: u64,
    /// Distinct metric keys one run may log; a batch that would pass it is refused whole.
    pub max_keys_per_run: usize,
    /// Metric points in one ingest batch (at most the built-in ceiling of 100,000).
    pub max_points_per_batch: usize,
    /// Bytes in one metric key (at most the built-in ceiling of 256).
    pub max_key_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,trackstack_api=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: 1,
            data_dir: default_data_dir(),
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            processor: ProcessorConfig::default(),
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { bind: "127.0.0.1:3000".to_owned(), shutdown_grace_secs: 30, roles: Role::ALL.to_vec() }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_json_body_bytes: 32 * 1024 * 1024,
            max_blob_bytes: 10 * 1024 * 1024 * 1024,
            max_keys_per_run: 10_000,
            max_points_per_batch: trackstack_domain::limits::POINTS_PER_BATCH_MAX,
            max_key_bytes: trackstack_domain::limits::METRIC_KEY_MAX_BYTES,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".to_owned() }
    }
}

/// Where a text setting lives in the config.
type TextField = fn(&mut Config) -> &mut Option<String>;

/// Text settings whose environment variables are taken verbatim. figment reads `TRACKSTACK_*` values as typed
/// literals, so a secret such as `0123` would otherwise arrive as the number 123 (or fail as a non-string).
const VERBATIM_ENV: &[(&str, TextField)] = &[
    ("TRACKSTACK_STORAGE__S3__ACCESS_KEY_ID", |c| &mut c.storage.s3.access_key_id),
    ("TRACKSTACK_STORAGE__S3__SECRET_ACCESS_KEY", |c| &mut c.storage.s3.secret_access_key),
    ("TRACKSTACK_STORAGE__S3__ENDPOINT", |c| &mut c.storage.s3.endpoint),
    ("TRACKSTACK_STORAGE__CLICKHOUSE__CLUSTER", |c| &mut c.storage.clickhouse.cluster),
    ("TRACKSTACK_STORAGE__METADATA", |c| &mut c.storage.metadata),
    ("TRACKSTACK_STORAGE__SERIES", |c| &mut c.storage.series),
    ("TRACKSTACK_STORAGE__BLOBS", |c| &mut c.storage.blobs),
];

/// The platform's data directory for Trackstack, e.g. `~/.local/share/trackstack` on Linux.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("trackstack")
}

/// Values given on the command line; `None` leaves the lower layers' value in place.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CliOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Empty leaves the configured roles in place.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
}

/// The top-level keys an environment variable may name; anything else with the prefix is not ours.
const ENV_KEYS: &[&str] = &["version", "data_dir", "server", "storage", "limits", "processor", "log", "telemetry"];
pub const ENV_PREFIX: &str = "TRACKSTACK_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    MissingFile { path: PathBuf },
    #[error("invalid configuration: {0}")]
    Parse(Box<figment::Error>),
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Merges the layers and validates the result.
    pub fn load(file: Option<&Path>, cli: &CliOverrides) -> Result<Config, ConfigError> {
        Self::load_from_env(file, cli, Env::prefixed(ENV_PREFIX))
    }

    fn load_from_env(file: Option<&Path>, cli: &CliOverrides, env: Env) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile { path: path.to_owned() });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = env.split("__").filter(|key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            let verbatim = VERBATIM_ENV
                .iter()
                .any(|(name, _)| name[ENV_PREFIX.len()..].replace("__", ".").eq_ignore_ascii_case(key.as_str()));
            !verbatim && ENV_KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
        });
        figment = figment.merge(env);
        let mut flags = Figment::new();
        if let Some(dir) = &cli.data_dir {
            flags = flags.merge(Serialized::default("data_dir", dir));
        }
        if let Some(bind) = &cli.bind {
            flags = flags.merge(Serialized::default("server.bind", bind));
        }
        if let Some(format) = cli.log_format {
            flags = flags.merge(Serialized::default("log.format", format));
        }
        if !cli.roles.is_empty() {
            flags = flags.merge(Serialized::default("server.roles", &cli.roles));
        }
        let mut config: Config = figment.merge(flags).extract().map_err(|e| ConfigError::Parse(Box::new(e)))?;
        for (name, field) in VERBATIM_ENV {
            if let Ok(value) = std::env::var(name) {
                *field(&mut config) = Some(value);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Reports every problem in the merged configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.version != 1 {
            problems.push(format!("version = {}: only version 1 exists", self.version));
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir must not be empty".to_owned());
        }
        if let Err(e) = self.server.bind.parse::<SocketAddr>() {
            problems.push(format!("server.bind = {:?} is not an address like 127.0.0.1:3000 ({e})", self.server.bind));
        }
        let uris = [
            ("storage.metadata", &self.storage.metadata, METADATA_SCHEMES),
            ("storage.series", &self.storage.series, SERIES_SCHEMES),
            ("storage.blobs", &self.storage.blobs, BLOB_SCHEMES),
        ];
        for (key, uri, schemes) in uris {
            if let Some(uri) = uri {
                if let Err(problem) = StorageUri::parse(uri).and_then(|u| u.expect_scheme(schemes)) {
                    problems.push(format!("{key} = {}: {problem}", redact(uri)));
                }
            }
        }
        let embedded = &self.storage.embedded;
        if !(10..=600_000).contains(&embedded.flush_interval_ms) {
            problems.push(format!(
                "storage.embedded.flush_interval_ms = {}: must be between 10 and 600000",
                embedded.flush_interval_ms
            ));
        }
        if embedded.flush_points == 0 || embedded.max_pending_points < embedded.flush_points {
            problems.push(format!(
                "storage.embedded.flush_points = {} and max_pending_points = {}: need 0 < flush_points <= max_pending_points",
                embedded.flush_points, embedded.max_pending_points
            ));
        }
        if self.server.roles.is_empty() {
            problems.push("server.roles is empty; give at least one of ingest, api, processor".to_owned());
        }
        let all_roles = Role::ALL.iter().all(|role| self.server.roles.contains(role));
        if !all_roles && problems.is_empty() {
            let embedded: Vec<String> = [self.metadata_uri(), self.series_uri(), self.blobs_uri()]
                .into_iter()
                .filter(StorageUri::is_embedded)
                .map(|uri| uri.to_string())
                .collect();
            if !embedded.is_empty() {
                problems.push(format!(
                    "server.roles = {:?} splits the roles across processes, but embedded storage ({}) lives inside one \
                     process; run all roles together (omit --role), or use postgres://, clickhouse:// and s3:// storage",
                    self.server.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                    embedded.join(", ")
                ));
            }
        }
        if self.storage.clickhouse.replicated && self.storage.clickhouse.cluster.is_none() {
            problems.push("storage.clickhouse.replicated needs storage.clickhouse.cluster".to_owned());
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                problems.push(format!("telemetry.otlp_endpoint = {endpoint:?} must start with http:// or https://"));
            }
        }
        if self.processor.interval_secs == 0 {
            problems.push("processor.interval_secs must be positive".to_owned());
        }
        if self.processor.crash_after_secs < 60 {
            problems.push("processor.crash_after_secs must be at least 60 (the SDK heartbeats every 30 s)".to_owned());
        }
        if self.storage.postgres.max_connections == 0 {
            problems.push("storage.postgres.max_connections must be positive".to_owned());
        }
        if self.limits.max_json_body_bytes < 1024 {
            problems.push("limits.max_json_body_bytes must be at least 1024".to_owned());
        }
        if self.limits.max_keys_per_run == 0 {
            problems.push("limits.max_keys_per_run must be positive".to_owned());
        }
        let ceilings = [
            (
                "limits.max_points_per_batch",
                self.limits.max_points_per_batch,
                trackstack_domain::limits::POINTS_PER_BATCH_MAX,
            ),
            ("limits.max_key_bytes", self.limits.max_key_bytes, trackstack_domain::limits::METRIC_KEY_MAX_BYTES),
        ];
        for (key, value, ceiling) in ceilings {
            if !(1..=ceiling).contains(&value) {
                problems.push(format!("{key} = {value}: must be between 1 and {ceiling}"));
            }
        }
        if self.limits.max_blob_bytes == 0 {
            problems.push("limits.max_blob_bytes must be positive".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    pub fn bind_addr(&self) -> SocketAddr {
        self.server.bind.parse().expect("validated at load")
    }

    pub fn metadata_uri(&self) -> StorageUri {
        self.resolve(&self.storage.metadata, "sqlite", "meta.db")
    }

    pub fn series_uri(&self) -> StorageUri {
        self.resolve(&self.storage.series, "sqlite", "series.db")
    }

    pub fn blobs_uri(&self) -> StorageUri {
        self.resolve(&self.storage.blobs, "file", "blobs")
    }

    fn resolve(&self, configured: &Option<String>, scheme: &str, default_name: &str) -> StorageUri {
        match configured {
            Some(uri) => StorageUri::parse(uri).expect("validated at load"),
            None => StorageUri {
                scheme: scheme.to_owned(),
                location: self.data_dir.join(default_name).display().to_string(),
            },
        }
    }
}

const METADATA_SCHEMES: &[&str] = &["sqlite", "postgres", "postgresql"];
const SERIES_SCHEMES: &[&str] = &["sqlite", "clickhouse"];
const BLOB_SCHEMES: &[&str] = &["file", "s3"];

/// Hides a password in a URI (`postgres://u:secret@h` → `postgres://u:***@h`) for messages and logs.
pub fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else { return uri.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return uri.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => uri.to_owned(),
    }
}

/// A backend URI split into scheme and the rest (a path for embedded backends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUri {
    pub scheme: String,
    pub location: String,
}

impl StorageUri {
    pub fn parse(uri: &str) -> Result<Self, String> {
        let (scheme, location) = uri.split_once("://").ok_or_else(|| "expected SCHEME://LOCATION".to_owned())?;
        if location.is_empty() {
            return Err("the location after :// is empty".to_owned());
        }
        Ok(Self { scheme: scheme.to_ascii_lowercase(), location: location.to_owned() })
    }

    /// Whether the backend keeps its data inside this process's data directory.
    pub fn is_embedded(&self) -> bool {
        matches!(self.scheme.as_str(), "sqlite" | "file")
    }

    /// The URI as given, with any password hidden.
    pub fn redacted(&self) -> String {
        redact(&self.to_string())
    }

    fn expect_scheme(self, schemes: &[&str]) -> Result<Self, String> {
        if schemes.contains(&self.scheme.as_str()) {
            Ok(self)
        } else {
            Err(format!("unsupported scheme `{}`; this build supports {}", self.scheme, schemes.join(", ")))
        }
    }
}

impl std::fmt::Display for StorageUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.location)
    }
}

#[cfg(test)]
// figment's Jail closures return its (large) error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layers_override_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "trackstack.toml",
                "data_dir = \"/from/file\"\n[server]\nbind = \"127.0.0.1:4000\"\n[log]\nformat = \"json\"\n",
            )?;
            jail.set_env("TRACKSTACK_SERVER__BIND", "127.0.0.1:5000");
            jail.set_env("TRACKSTACK_URL", "http://not-a-server-setting");
            let file = Path::new("trackstack.toml");
            let config = Config::load(Some(file), &CliOverrides::default()).unwrap();
            assert_eq!(config.data_dir, PathBuf::from("/from/file"));
            assert_eq!(config.server.bind, "127.0.0.1:5000", "env beats file");
            assert_eq!(config.log.format, LogFormat::Json);
            let cli = CliOverrides {
                bind: Some("127.0.0.1:6000".into()),
                data_dir: Some("/from/flag".into()),
                ..Default::default()
            };
            let config = Config::load(Some(file), &cli).unwrap();
            assert_eq!(config.server.bind, "127.0.0.1:6000", "flags beat env");
            assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
            assert_eq!(config.metadata_uri().to_string(), "sqlite:///from/flag/meta.db");
            Ok(())
        });
    }

    #[test]
    fn data_dir_comes_from_its_env_var() {
        Jail::expect_with(|jail| {
            jail.set_env("TRACKSTACK_DATA_DIR", "/from/env");
            let config = Config::load(None, &CliOverrides::default()).unwrap();
            assert_eq!(config.data_dir, PathBuf::from("/from/env"));
            Ok(())
        });
    }

    #[test]
    fn every_problem_is_reported() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "bad.toml",
                "version = 2\n[server]\nbind = \"nowhere\"\n[storage]\nblobs = \"gopher://x\"\n",
            )?;
            let err = Config::load(Some(Path::new("bad.toml")), &CliOverrides::default()).unwrap_err().to_string();
            assert!(err.contains("version = 2"), "{err}");
            assert!(err.contains("server.bind"), "{err}");
            assert!(err.contains("unsupported scheme `gopher`"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn split_roles_need_shared_storage() {
        Jail::expect_with(|_| {
            let cli = CliOverrides { roles: vec![Role::Ingest], ..Default::default() };
            let err = Config::load(None, &cli).unwrap_err().to_string();
            assert!(err.contains("embedded storage"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("TRACKSTACK_STORAGE__METADATA", "postgres://trackstack:secret@db:5432/trackstack");
            jail.set_env("TRACKSTACK_STORAGE__SERIES", "clickhouse://ch:8123/trackstack");
            jail.set_env("TRACKSTACK_STORAGE__BLOBS", "s3://artifacts/trackstack");
            jail.set_env("TRACKSTACK_SERVER__ROLES", "[ingest, api]");
            let config = Config::load(None, &CliOverrides::default()).unwrap();
            assert_eq!(config.server.roles, [Role::Ingest, Role::Api]);
            assert_eq!(config.metadata_uri().redacted(), "postgres://trackstack:***@db:5432/trackstack");
            Ok(())
        });
    }

    #[test]
    fn secrets_made_of_digits_stay_strings() {
        Jail::expect_with(|jail| {
            jail.set_env("TRACKSTACK_STORAGE__S3__SECRET_ACCESS_KEY", "0123456789");
            jail.set_env("TRACKSTACK_STORAGE__S3__ACCESS_KEY_ID", "42");
            let config = Config::load(None, &CliOverrides::default()).unwrap();
            assert_eq!(config.storage.s3.secret_access_key.as_deref(), Some("0123456789"));
            assert_eq!(config.storage.s3.access_key_id.as_deref(), Some("42"));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "[server]\nbnd = \"127.0.0.1:1\"\n")?;
            let err = Config::load(Some(Path::new("typo.toml")), &CliOverrides::default()).unwrap_err().to_string();
            assert!(err.contains("bnd"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let err = Config::load(Some(Path::new("/no/such/trackstack.toml")), &CliOverrides::default()).unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile { .. }));
    }
}
