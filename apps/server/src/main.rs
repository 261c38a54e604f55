//! The `trackstack` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
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

/// Installs logging (stderr, text or JSON) and, when an OTLP endpoint is configured, trace export. The returned
/// provider must be shut down at exit so buffered spans are sent.
fn init_telemetry(config: &Config) -> anyhow::Result<Option<SdkTracerProvider>> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let provider = match &config.telemetry.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()
                .context("cannot set up OTLP trace export")?;
            let resource = Resource::builder().with_service_name(config.telemetry.service_name.clone()).build();
            Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
        }
        None => None,
    };
    let traces = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("trackstack")));
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => registry.with(stderr).init(),
        LogFormat::Json => registry.with(stderr.json()).init(),
    }
    Ok(provider)
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

async fn run_server(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
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

async fn run_migrate(config: Config) -> anyhow::Result<()> {
    trackstack_server::stores::open_stores(&config).await?;
    println!("storage schemas are up to date");
    Ok(())
}

/// Loads the configuration, starts telemetry, then runs the command on a fresh runtime. Telemetry lives outside
/// the runtime: its exporter has a blocking HTTP client of its own, which must not be dropped inside it.
fn run(command: Command) -> anyhow::Result<()> {
    let (config_file, overrides) = match &command {
        Command::Server(args) => (
            args.config.clone(),
            CliOverrides {
                data_dir: args.data_dir.clone(),
                bind: args.bind.clone(),
                log_format: args.log_format,
                roles: args.roles.clone(),
            },
        ),
        Command::Migrate(args) => {
            (args.config.clone(), CliOverrides { data_dir: args.data_dir.clone(), ..Default::default() })
        }
    };
    let config = Config::load(config_file.as_deref(), &overrides)?;
    let telemetry = init_telemetry(&config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        match command {
            Command::Server(_) => run_server(config).await,
            Command::Migrate(_) => run_migrate(config).await,
        }
    });
    drop(runtime);
    if let Some(provider) = telemetry {
        if let Err(error) = provider.shutdown() {
            eprintln!("warning: could not flush traces: {error}");
        }
    }
    result
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole context chain on one line, without a backtrace: these are messages for people.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
