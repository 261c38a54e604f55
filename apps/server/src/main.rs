//! The `trackstack` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use trackstack_config::{CliOverrides, Config, LogFormat, Role};

/// Trackstack: ML experiment tracking — runs, metrics, artifacts — served from one binary.
#[derive(Parser)]
#[command(
    name = "trackstack",
    version,
    about = "Trackstack: ML experiment tracking (runs, metrics, artifacts) served from one binary",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server: REST API, ingest and the web page on one HTTP port, embedded storage in the data dir.
    ///
    /// Configuration layers, each overriding the one before: built-in defaults, the TOML file given by
    /// --config, TRACKSTACK_* environment variables (TRACKSTACK_DATA_DIR, TRACKSTACK_SERVER__BIND,
    /// TRACKSTACK_LOG__FORMAT, …; `__` separates section and key), then these flags. See docs/configuration.md.
    Server(ServerArgs),
    /// Create or upgrade the storage schemas named by the configuration, then exit. The server also does this
    /// at start-up (safely when several processes start at once); this is for deploy pipelines.
    Migrate(MigrateArgs),
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// Directory for embedded storage [default: $TRACKSTACK_DATA_DIR, else the platform data dir]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Directory for embedded storage [default: $TRACKSTACK_DATA_DIR, else the platform data dir, e.g. ~/.local/share/trackstack]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address for the HTTP port [default: 127.0.0.1:3000]
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// TOML configuration file
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format: text or json [default: text]
    #[arg(long, value_name = "FORMAT", value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
    /// Run only this role (ingest, api, processor); repeat for several [default: all three]. Split roles need
    /// shared storage: postgres://, clickhouse:// and s3://
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<Role>,
}

fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("`{other}` is not a log format; use text or json")),
    }
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the future is first
/// polled, so a signal that arrives while the server is still starting is not lost (and does not kill it).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

async fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let overrides =
        CliOverrides { data_dir: args.data_dir, bind: args.bind, log_format: args.log_format, roles: args.roles };
    let config = Config::load(args.config.as_deref(), &overrides)?;
    init_logging(&config);
    let listener = tokio::net::TcpListener::bind(config.bind_addr())
        .await
        .with_context(|| format!("cannot listen on {}", config.server.bind))?;
    let address = listener.local_addr()?;
    let roles: Vec<&str> = config.server.roles.iter().map(|role| role.as_str()).collect();
    tracing::info!(%address, data_dir = %config.data_dir.display(), ?roles, "trackstack server starting");
    // One plain line on stdout, once the port is bound, for people and for scripts that wait on it.
    println!("Trackstack is listening on http://{address}");
    trackstack_server::serve(config, listener, shutdown).await?;
    tracing::info!("trackstack server stopped");
    Ok(())
}

async fn run_migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let overrides = CliOverrides { data_dir: args.data_dir, ..Default::default() };
    let config = Config::load(args.config.as_deref(), &overrides)?;
    init_logging(&config);
    trackstack_server::stores::open_stores(&config).await?;
    println!("storage schemas are up to date");
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Server(args) => run_server(args).await,
        Command::Migrate(args) => run_migrate(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole context chain on one line, without a backtrace: these are messages for people.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
