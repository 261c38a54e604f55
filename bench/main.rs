//! `trackstack-bench`: the seed's workloads against any Trackstack server, or against an all-in-one server it
//! starts itself. Each run writes `bench/results/<timestamp>.json` and prints a Markdown table.

mod generators;
mod report;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

use report::{Budget, Figure, Machine, Report};
use workloads::w2::Load;
use workloads::{IngestFormat, Target};

#[derive(Debug, Parser)]
#[command(version, about = "Run Trackstack's benchmark workloads (W1, W2, W3, SDK, chart, storage)")]
struct Args {
    /// Server to measure. Without it, an all-in-one server is started from --server-bin on a fresh data dir.
    #[arg(long)]
    url: Option<String>,
    /// The `trackstack` binary to start when --url is not given.
    #[arg(long, default_value = "target/release/trackstack")]
    server_bin: PathBuf,
    /// The server's data directory, for the storage figure when --url is given.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Size::Quick)]
    size: Size,
    /// Comma-separated subset: w1, w2, w3, sdk, chart, storage.
    #[arg(long, value_delimiter = ',', default_value = "w1,w2,w3,sdk,chart,storage")]
    only: Vec<String>,
    /// Python with the `track` SDK installed, for the SDK figures.
    #[arg(long, default_value = ".venv/bin/python")]
    python: PathBuf,
    #[arg(long, default_value = "bench/results")]
    results_dir: PathBuf,
    /// Wire format the workloads write points in.
    #[arg(long, value_enum, default_value_t = IngestFormat::Protobuf)]
    ingest: IngestFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Size {
    /// A few minutes in all: smaller W1 and W3, shorter W2.
    Quick,
    /// The sizes the budgets are stated at.
    Full,
}

struct Sizes {
    w1_runs: usize,
    w1_repeats: usize,
    w2_light: Duration,
    w2_loaded: Duration,
    w3_steps: i64,
    w3_loads: usize,
    chart_steps: i64,
    chart_reads: usize,
    sdk_points: u64,
}

impl Size {
    fn sizes(self) -> Sizes {
        match self {
            Size::Quick => Sizes {
                w1_runs: 10_000,
                w1_repeats: 30,
                w2_light: Duration::from_secs(5),
                w2_loaded: Duration::from_secs(10),
                w3_steps: 10_000,
                w3_loads: 10,
                chart_steps: 1_000_000,
                chart_reads: 30,
                sdk_points: 500_000,
            },
            Size::Full => Sizes {
                w1_runs: 100_000,
                w1_repeats: 100,
                w2_light: Duration::from_secs(20),
                w2_loaded: Duration::from_secs(30),
                w3_steps: 100_000,
                w3_loads: 30,
                chart_steps: 1_000_000,
                chart_reads: 100,
                sdk_points: 2_000_000,
            },
        }
    }
}

/// An all-in-one server started for the run, stopped (SIGTERM) at the end.
struct SpawnedServer {
    child: Child,
    data_dir: PathBuf,
}

impl SpawnedServer {
    fn start(binary: &Path) -> anyhow::Result<(Self, String)> {
        use std::io::{BufRead, BufReader};
        if !binary.exists() {
            bail!("{} does not exist; build it (make bench does) or pass --url", binary.display());
        }
        let data_dir = std::env::temp_dir().join(format!("trackstack-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let mut child = Command::new(binary)
            .args(["server", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let url =
            line.trim().strip_prefix("Trackstack is listening on ").context("the server did not start")?.to_owned();
        Ok((Self { child, data_dir }, url))
    }

    fn stop(mut self) -> anyhow::Result<PathBuf> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        self.child.wait()?;
        Ok(self.data_dir)
    }
}

/// Bytes the series engine keeps on disk: its SQLite file (with any WAL) and its own log.
fn series_bytes(data_dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("series") {
            let meta = entry.metadata()?;
            total += if meta.is_dir() {
                std::fs::read_dir(entry.path())?.map(|e| Ok(e?.metadata()?.len())).sum::<std::io::Result<u64>>()?
            } else {
                meta.len()
            };
        }
    }
    Ok(total)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sizes = args.size.sizes();
    let wants = |name: &str| args.only.iter().any(|o| o == name);
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (spawned, url) = match &args.url {
        Some(url) => (None, url.clone()),
        None => {
            let (server, url) = SpawnedServer::start(&args.server_bin)?;
            (Some(server), url)
        }
    };
    let target = Target::new(&url, args.ingest);
    let mut figures: Vec<Figure> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut points_written = 0u64;
    let progress = |name: &str| eprintln!("trackstack-bench: {name}…");

    if wants("chart") {
        progress("chart");
        let (found, written) = workloads::chart::run(&target, sizes.chart_steps, sizes.chart_reads).await?;
        figures.extend(found);
        points_written += written;
    }
    if wants("w2") {
        progress("W2");
        let load = Load { writers: 4, metrics: 10, steps_per_batch: 1_000, batch_interval: None };
        let (found, written) = workloads::w2::run(&target, &load, sizes.w2_light, sizes.w2_loaded).await?;
        figures.extend(found);
        points_written += written;
    }
    if wants("w3") {
        progress("W3");
        let background =
            Load { writers: 1, metrics: 10, steps_per_batch: 100, batch_interval: Some(Duration::from_millis(10)) };
        let (found, written) = workloads::w3::run(&target, sizes.w3_steps, sizes.w3_loads, &background).await?;
        figures.extend(found);
        points_written += written;
    }
    if wants("sdk") {
        progress("SDK");
        let python = args.python.clone();
        let (found, written) =
            tokio::task::spawn_blocking(move || workloads::sdk::run(&url, &python, sizes.sdk_points)).await??;
        figures.extend(found);
        points_written += written;
    }
    if wants("w1") {
        progress("W1");
        let (found, found_notes) = workloads::w1::run(&target, sizes.w1_runs, sizes.w1_repeats, 500).await?;
        figures.extend(found);
        notes.extend(found_notes);
    }
    let data_dir = match spawned {
        Some(server) => Some(server.stop()?),
        None => args.data_dir.clone(),
    };
    if wants("storage") && points_written > 0 {
        match &data_dir {
            Some(dir) => {
                let bytes = series_bytes(dir)?;
                figures.push(Figure::new(
                    "storage",
                    &format!("series on disk, {} points", report::pretty(points_written as f64)),
                    bytes as f64 / points_written as f64,
                    "bytes/point",
                    Budget::AtMost(10.0),
                ));
            }
            None => notes.push("storage: pass --data-dir with --url to measure bytes/point".into()),
        }
    }
    if args.url.is_none() {
        if let Some(dir) = &data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        notes.push("Server: all-in-one (embedded storage) started by the runner on a fresh data directory.".into());
    }
    notes.push("Latencies are client-side (request sent → body read), so they include HTTP and JSON.".into());
    notes.push(format!("Workloads write points as {:?} over HTTP (`--ingest`).", args.ingest).to_lowercase());

    let report = Report {
        started_at,
        size: format!("{:?}", args.size).to_lowercase(),
        machine: Machine::describe(),
        server: args.url.clone().unwrap_or_else(|| format!("{} (spawned)", args.server_bin.display())),
        figures,
        notes,
    };
    let saved = report.save(&args.results_dir)?;
    println!("{}", report.markdown());
    eprintln!("trackstack-bench: results saved to {}", saved.display());
    Ok(())
}
