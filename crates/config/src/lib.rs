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
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTP port (UI, REST API, ingest).
    pub bind: String,
    /// Seconds in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
}

/// Backend URIs. Empty means the embedded default under `data_dir`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://PATH`; default `sqlite://{data_dir}/meta.db`.
    pub metadata: Option<String>,
    /// `sqlite://PATH`; default `sqlite://{data_dir}/series.db`.
    pub series: Option<String>,
    /// `file://PATH`; default `file://{data_dir}/blobs`.
    pub blobs: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest JSON request body, after decompression.
    pub max_json_body_bytes: u64,
    /// Largest single blob (artifact file) upload.
    pub max_blob_bytes: u64,
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
            log: LogConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { bind: "127.0.0.1:3000".to_owned(), shutdown_grace_secs: 30 }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { max_json_body_bytes: 32 * 1024 * 1024, max_blob_bytes: 10 * 1024 * 1024 * 1024 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".to_owned() }
    }
}

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
}

/// The top-level keys an environment variable may name; anything else with the prefix is not ours.
const ENV_KEYS: &[&str] = &["version", "data_dir", "server", "storage", "limits", "log"];
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
            ENV_KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
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
        let config: Config = figment.merge(flags).extract().map_err(|e| ConfigError::Parse(Box::new(e)))?;
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
            ("storage.metadata", &self.storage.metadata, &["sqlite"][..]),
            ("storage.series", &self.storage.series, &["sqlite"][..]),
            ("storage.blobs", &self.storage.blobs, &["file"][..]),
        ];
        for (key, uri, schemes) in uris {
            if let Some(uri) = uri {
                if let Err(problem) = StorageUri::parse(uri).and_then(|u| u.expect_scheme(schemes)) {
                    problems.push(format!("{key} = {uri:?}: {problem}"));
                }
            }
        }
        if self.limits.max_json_body_bytes < 1024 {
            problems.push("limits.max_json_body_bytes must be at least 1024".to_owned());
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
