//! W2: concurrent writers logging 10 metrics each at full speed; sustained points/s, and log→visible latency
//! measured by a probe that logs one point every 20 ms and watches for it on the live stream (SSE).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::generators::Random;
use crate::report::{Budget, Figure, Percentiles};

use super::{metric_keys, points, Batch, Point, Target};

const PROJECT: &str = "bench-w2";
const PROBE_RUN: &str = "w2-probe";
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

pub struct Load {
    pub writers: usize,
    pub metrics: usize,
    pub steps_per_batch: i64,
    /// Each writer sends a batch per interval (a steady rate) instead of as fast as it is acknowledged.
    pub batch_interval: Option<Duration>,
}

pub async fn run(
    target: &Target,
    load: &Load,
    light: Duration,
    loaded: Duration,
) -> anyhow::Result<(Vec<Figure>, u64)> {
    target.ensure_project(PROJECT).await?;
    target.ensure_run(PROJECT, PROBE_RUN).await?;
    for writer in 0..load.writers {
        target.ensure_run(PROJECT, &format!("w2-writer-{writer}")).await?;
    }
    let probe = Probe::start(target).await?;
    let mut figures = Vec::new();

    let light_latencies = probe.measure(light).await?;
    figures.extend(Percentiles::of(&light_latencies).figures(
        "W2",
        "log→visible, one point every 20 ms",
        Budget::AtMost(25.0),
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let writers = spawn_writers(target, load, 0, &stop, &written);
    let loaded_latencies = probe.measure(loaded).await?;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await??;
    }
    let elapsed = started.elapsed();
    let total = written.load(Ordering::Relaxed);
    figures.insert(
        0,
        Figure::new(
            "W2",
            &format!("sustained ingest, {} writers × {} metrics", load.writers, load.metrics),
            total as f64 / elapsed.as_secs_f64(),
            "points/s",
            Budget::AtLeast(1_000_000.0),
        ),
    );
    figures.extend(Percentiles::of(&loaded_latencies).figures("W2", "log→visible at full load", Budget::AtMost(100.0)));
    Ok((figures, total + probe.sent.load(Ordering::Relaxed)))
}

/// Writers that log as fast as the server acknowledges (one request in flight each, like the SDK's sender),
/// until `stop`. `first_step` lets a later phase continue where an earlier one stopped.
pub fn spawn_writers(
    target: &Target,
    load: &Load,
    first_step: i64,
    stop: &Arc<AtomicBool>,
    written: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
    (0..load.writers)
        .map(|writer| {
            let (target, stop, written) = (target.clone(), Arc::clone(stop), Arc::clone(written));
            let (metrics, steps_per_batch, batch_interval) = (load.metrics, load.steps_per_batch, load.batch_interval);
            tokio::spawn(async move {
                let mut beat = batch_interval.map(tokio::time::interval);
                let keys = metric_keys(metrics);
                let run_id = format!("w2-writer-{writer}");
                let mut random = Random::new(writer as u64 + 100);
                let mut step = first_step;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(beat) = &mut beat {
                        beat.tick().await;
                    }
                    let batch =
                        Batch { run_id: &run_id, metrics: points(&keys, step..step + steps_per_batch, &mut random) };
                    target.ingest(&batch).await?;
                    written.fetch_add(batch.metrics.len() as u64, Ordering::Relaxed);
                    step += steps_per_batch;
                }
                Ok(())
            })
        })
        .collect()
}

/// Logs single points on a steady beat and times how long each takes to show up on the live stream.
struct Probe {
    target: Target,
    logged: Arc<Mutex<BTreeMap<i64, Instant>>>,
    seen: Arc<Mutex<Vec<Duration>>>,
    next_step: AtomicU64,
    sent: AtomicU64,
}

impl Probe {
    async fn start(target: &Target) -> anyhow::Result<Self> {
        let logged: Arc<Mutex<BTreeMap<i64, Instant>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let response = target
            .client
            .get(format!("{}/api/v1/events?project={PROJECT}&run_id={PROBE_RUN}", target.url))
            .send()
            .await?
            .error_for_status()?;
        let (logged_in_reader, seen_in_reader) = (Arc::clone(&logged), Arc::clone(&seen));
        tokio::spawn(async move {
            let mut stream = response.bytes_stream();
            let mut pending = String::new();
            while let Some(Ok(chunk)) = stream.next().await {
                let arrived = Instant::now();
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    let Some(data) = line.trim().strip_prefix("data:") else { continue };
                    let Ok(event) = serde_json::from_str::<serde_json::Value>(data.trim()) else { continue };
                    let Some(max_step) = event["max_step"].as_i64() else { continue };
                    let mut logged = logged_in_reader.lock().unwrap();
                    let visible: Vec<i64> = logged.range(..=max_step).map(|(s, _)| *s).collect();
                    let mut seen = seen_in_reader.lock().unwrap();
                    for step in visible {
                        let at = logged.remove(&step).unwrap();
                        seen.push(arrived - at);
                    }
                }
            }
        });
        // The stream is live once the server has answered; give it a beat to register before measuring.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(Self { target: target.clone(), logged, seen, next_step: AtomicU64::new(0), sent: AtomicU64::new(0) })
    }

    /// Logs a point every 20 ms for `duration` and returns the latencies of those seen.
    async fn measure(&self, duration: Duration) -> anyhow::Result<Vec<Duration>> {
        self.seen.lock().unwrap().clear();
        let mut beat = tokio::time::interval(PROBE_INTERVAL);
        let deadline = Instant::now() + duration;
        let mut sends = Vec::new();
        while Instant::now() < deadline {
            beat.tick().await;
            let step = self.next_step.fetch_add(1, Ordering::Relaxed) as i64;
            self.logged.lock().unwrap().insert(step, Instant::now());
            let target = self.target.clone();
            // Each point goes out at once, as the SDK's idle sender does; a slow request must not delay the beat.
            sends.push(tokio::spawn(async move {
                let metrics = vec![Point {
                    key: "probe",
                    step,
                    value: step as f64,
                    time_ms: chrono::Utc::now().timestamp_millis(),
                }];
                target.ingest(&Batch { run_id: PROBE_RUN, metrics }).await
            }));
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
        for send in sends {
            send.await??;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lost = std::mem::take(&mut *self.logged.lock().unwrap());
        if !lost.is_empty() {
            anyhow::bail!("{} probe points never appeared on the live stream", lost.len());
        }
        Ok(std::mem::take(&mut *self.seen.lock().unwrap()))
    }
}
