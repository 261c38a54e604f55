//! Deterministic data for the workloads: the same seed gives the same runs and series on every machine.

use serde_json::{json, Map, Value};

/// A small, fast, seedable generator (xorshift64*): stable across platforms and crate versions.
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

pub const TAG_VOCABULARY: usize = 50;
pub const GROUPS: usize = 50;
const STATES: [&str; 4] = ["finished", "finished", "failed", "running"];
const OPTIMIZERS: [&str; 4] = ["adam", "adamw", "sgd", "lion"];

/// The body that creates run `index` of W1: 20 config keys of mixed types, 3 tags from a vocabulary of 50,
/// one of 50 groups. Its 10 summary metrics and final state follow in [`run_update`].
pub fn run_create(index: usize, random: &mut Random) -> Value {
    let mut config = Map::new();
    config.insert("lr".into(), json!(10f64.powf(-1.0 - 4.0 * random.unit())));
    config.insert("batch_size".into(), json!(16 << random.below(6)));
    config.insert("optimizer".into(), json!(OPTIMIZERS[random.below(4) as usize]));
    config.insert("seed".into(), json!(random.below(10)));
    config.insert("use_amp".into(), json!(random.below(2) == 1));
    config.insert("model".into(), json!({"layers": 2 + random.below(30), "hidden": 64 << random.below(5), "dropout": (random.unit() * 50.0).round() / 100.0}));
    for k in 0..14 {
        let value = match k % 4 {
            0 => json!(random.unit()),
            1 => json!(random.below(1000)),
            2 => json!(format!("value-{}", random.below(20))),
            _ => json!(random.below(2) == 0),
        };
        config.insert(format!("param_{k:02}"), value);
    }
    let mut tags: Vec<String> = Vec::new();
    while tags.len() < 3 {
        let tag = format!("tag-{:02}", random.below(TAG_VOCABULARY as u64));
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    json!({
        "id": format!("w1-{index:06}"),
        "name": format!("run-{index:06}"),
        "group": format!("group-{:02}", random.below(GROUPS as u64)),
        "job_type": if index % 5 == 0 { "eval" } else { "train" },
        "tags": tags,
        "config": config,
    })
}

/// The update that gives run `index` its 10 summary metrics and a final state.
pub fn run_update(random: &mut Random) -> Value {
    let mut summary = Map::new();
    for k in 0..10 {
        summary.insert(format!("metric_{k}"), json!(random.unit() * 10f64.powi(k % 4)));
    }
    let state = STATES[random.below(STATES.len() as u64) as usize];
    let mut update = json!({"summary": summary});
    if state != "running" {
        update["state"] = json!(state);
        update["exit_code"] = json!(if state == "failed" { 1 } else { 0 });
    }
    update
}

/// A training-like metric: a decaying curve with noise, different per key.
pub fn metric_value(key: usize, step: i64, random: &mut Random) -> f64 {
    let decay = 1.0 / (1.0 + step as f64 / (1_000.0 * (key + 1) as f64));
    (key + 1) as f64 * decay + 0.05 * (random.unit() - 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_runs() {
        let (mut a, mut b) = (Random::new(7), Random::new(7));
        assert_eq!(run_create(3, &mut a), run_create(3, &mut b));
        assert_eq!(run_update(&mut a), run_update(&mut b));
        let run = run_create(3, &mut Random::new(7));
        assert_eq!(run["config"].as_object().unwrap().len(), 20);
        assert_eq!(run["tags"].as_array().unwrap().len(), 3);
    }
}
