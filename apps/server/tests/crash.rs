//! `kill -9` during heavy ingest loses no acknowledged point and duplicates none (DESIGN.md §2, issue 4).
//!
//! Several writers stream batches into the all-in-one server; at a random moment it is killed with SIGKILL
//! (mid-write, mid-flush, whatever it was doing), restarted on the same data directory, and every point whose
//! batch was acknowledged must be there exactly once with its value. Replayed batches must not duplicate.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::spawn_server;

const WRITERS: usize = 4;
const KEYS: usize = 5;
const STEPS_PER_BATCH: i64 = 400;
const ROUNDS: usize = 4;

/// Steps acknowledged per (run, key), with the value written; a step is written once, so its value is known.
type Acknowledged = Arc<Mutex<BTreeMap<(usize, usize), BTreeMap<i64, f64>>>>;

fn value_of(writer: usize, key: usize, step: i64) -> f64 {
    (writer * 1_000 + key) as f64 + step as f64 / 1e6
}

fn batch(writer: usize, first_step: i64) -> Value {
    let metrics: Vec<Value> = (first_step..first_step + STEPS_PER_BATCH)
        .flat_map(|step| {
            (0..KEYS)
                .map(move |key| json!({"key": format!("k{key}"), "step": step, "value": value_of(writer, key, step)}))
        })
        .collect();
    json!({"run_id": format!("crash-{writer}"), "metrics": metrics})
}

async fn write_until_refused(
    client: reqwest::Client,
    url: String,
    writer: usize,
    mut next_step: i64,
    acked: Acknowledged,
) -> i64 {
    loop {
        let body = batch(writer, next_step);
        let sent = client.post(format!("{url}/api/v1/ingest")).json(&body).send().await;
        match sent {
            Ok(response) if response.status().is_success() => {
                let mut acked = acked.lock().unwrap();
                for key in 0..KEYS {
                    let series = acked.entry((writer, key)).or_default();
                    for step in next_step..next_step + STEPS_PER_BATCH {
                        series.insert(step, value_of(writer, key, step));
                    }
                }
                next_step += STEPS_PER_BATCH;
            }
            Ok(response) => {
                panic!("ingest refused a valid batch: {} {}", response.status(), response.text().await.unwrap())
            }
            // The server is gone; whatever was in flight is unacknowledged and may or may not have landed.
            Err(_) => return next_step + STEPS_PER_BATCH,
        }
    }
}

async fn stored_points(client: &reqwest::Client, url: &str, writer: usize, key: usize) -> Vec<(i64, f64)> {
    let mut points = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let mut request = format!("{url}/api/v1/runs/crash-{writer}/series?key=k{key}&limit=100000");
        if let Some(cursor) = cursor {
            request.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = client.get(request).send().await.unwrap().json().await.unwrap();
        for point in page["points"].as_array().unwrap() {
            points.push((point["step"].as_i64().unwrap(), point["value"].as_f64().unwrap()));
        }
        match page["next_cursor"].as_i64() {
            Some(next) => cursor = Some(next),
            None => return points,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_point() {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    println!("kill timing seed {seed}");
    let mut random = seed | 1;
    let mut next_random = move || {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random
    };
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let acked: Acknowledged = Arc::default();
    let mut next_steps = [0i64; WRITERS];

    for round in 0..ROUNDS {
        let (mut child, url) = spawn_server(dir.path(), &[]);
        if round == 0 {
            let created =
                client.post(format!("{url}/api/v1/projects")).json(&json!({"name": "crash"})).send().await.unwrap();
            assert!(created.status().is_success());
            for writer in 0..WRITERS {
                let run = json!({"id": format!("crash-{writer}")});
                let made = client.post(format!("{url}/api/v1/projects/crash/runs")).json(&run).send().await.unwrap();
                assert!(made.status().is_success(), "{}", made.text().await.unwrap());
            }
        } else {
            verify(&client, &url, &acked).await;
            // A replay of an acknowledged batch after the restart must not duplicate anything.
            let replay = batch(0, 0);
            let replayed = client.post(format!("{url}/api/v1/ingest")).json(&replay).send().await.unwrap();
            assert!(replayed.status().is_success());
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                tokio::spawn(write_until_refused(
                    client.clone(),
                    url.clone(),
                    writer,
                    next_steps[writer],
                    Arc::clone(&acked),
                ))
            })
            .collect();
        let lifetime = Duration::from_millis(300 + next_random() % 2_200);
        tokio::time::sleep(lifetime).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for (writer, task) in writers.into_iter().enumerate() {
            next_steps[writer] = task.await.unwrap();
        }
        let total: usize = acked.lock().unwrap().values().map(BTreeMap::len).sum();
        println!("round {round}: killed after {lifetime:?}; {total} points acknowledged so far");
    }
    let (mut child, url) = spawn_server(dir.path(), &[]);
    verify(&client, &url, &acked).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

async fn verify(client: &reqwest::Client, url: &str, acked: &Acknowledged) {
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty(), "no batch was acknowledged; the test proves nothing");
    for ((writer, key), expected) in acked {
        let stored = stored_points(client, url, writer, key).await;
        assert!(stored.windows(2).all(|pair| pair[0].0 < pair[1].0), "run {writer} key {key}: a step came back twice");
        let stored: BTreeMap<i64, f64> = stored.into_iter().collect();
        for (step, value) in &expected {
            assert_eq!(stored.get(step), Some(value), "run {writer} key {key}: acknowledged step {step} lost");
        }
        // Anything beyond the acknowledged steps was in flight at the kill and is the same value if present.
        for (step, value) in &stored {
            assert_eq!(
                *value,
                value_of(writer, key, *step),
                "run {writer} key {key}: step {step} holds a foreign value"
            );
        }
    }
}
