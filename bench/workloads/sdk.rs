//! SDK: `run.log` latency in the caller's thread and one Python process's sustained rate, measured by
//! `bench/sdk/bench_sdk.py` with the real `track` package against the target server.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::report::{Budget, Figure};

pub fn run(url: &str, python: &Path, points: u64) -> anyhow::Result<(Vec<Figure>, u64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/bench_sdk.py");
    let offline_dir = tempfile_dir()?;
    let output = Command::new(python)
        .arg(&script)
        .arg(points.to_string())
        .env("TRACKSTACK_URL", url)
        .env("TRACKSTACK_DIR", &offline_dir)
        .output()
        .with_context(|| format!("cannot run {} {}", python.display(), script.display()))?;
    let _ = std::fs::remove_dir_all(&offline_dir);
    if !output.status.success() {
        bail!("the SDK benchmark failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let figures: Value = serde_json::from_slice(&output.stdout).context("the SDK benchmark printed no JSON")?;
    let number = |name: &str| figures[name].as_f64().with_context(|| format!("{name} missing"));
    Ok((
        vec![
            Figure::new("SDK", "run.log of 5 floats, median", number("log_median_us")?, "µs", Budget::AtMost(3.0)),
            Figure::new("SDK", "run.log of 5 floats, p99", number("log_p99_us")?, "µs", Budget::AtMost(30.0)),
            Figure::new(
                "SDK",
                "one process, logged (caller side)",
                number("log_points_per_s")?,
                "points/s",
                Budget::AtLeast(1_000_000.0),
            ),
            Figure::new(
                "SDK",
                "one process, delivered (acknowledged)",
                number("delivered_points_per_s")?,
                "points/s",
                Budget::AtLeast(1_000_000.0),
            ),
        ],
        number("points")? as u64,
    ))
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("trackstack-bench-sdk-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
