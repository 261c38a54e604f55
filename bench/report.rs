//! Figures, their budgets, and how a run is written down: `bench/results/<timestamp>.json` and a Markdown table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// One measured number, next to the budget it answers to.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub workload: String,
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// Human-readable budget, e.g. "≤ 20"; `None` when the figure is context only.
    pub budget: Option<String>,
    pub met: Option<bool>,
}

/// Which way a budget points.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    AtMost(f64),
    AtLeast(f64),
    None,
}

impl Figure {
    pub fn new(workload: &str, name: &str, value: f64, unit: &str, budget: Budget) -> Self {
        let (budget, met) = match budget {
            Budget::AtMost(limit) => (Some(format!("≤ {}", pretty(limit))), Some(value <= limit)),
            Budget::AtLeast(limit) => (Some(format!("≥ {}", pretty(limit))), Some(value >= limit)),
            Budget::None => (None, None),
        };
        Self { workload: workload.into(), name: name.into(), value, unit: unit.into(), budget, met }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub samples: usize,
}

impl Percentiles {
    pub fn of(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| if ms.is_empty() { f64::NAN } else { ms[((ms.len() - 1) as f64 * q).round() as usize] };
        Self { p50: at(0.50), p95: at(0.95), p99: at(0.99), samples: ms.len() }
    }

    /// p50/p95/p99 figures; the budget, if any, applies to p95.
    pub fn figures(&self, workload: &str, name: &str, p95_budget: Budget) -> Vec<Figure> {
        vec![
            Figure::new(workload, &format!("{name} p50"), self.p50, "ms", Budget::None),
            Figure::new(workload, &format!("{name} p95"), self.p95, "ms", p95_budget),
            Figure::new(workload, &format!("{name} p99"), self.p99, "ms", Budget::None),
        ]
    }
}

pub fn pretty(value: f64) -> String {
    if value.is_nan() {
        return "n/a".into();
    }
    let magnitude = value.abs();
    if magnitude >= 100_000.0 {
        let digits = format!("{:.0}", value);
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 && c.is_ascii_digit() {
                grouped.push(',');
            }
            grouped.push(c);
        }
        grouped
    } else if magnitude >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub started_at: String,
    pub size: String,
    pub machine: Machine,
    pub server: String,
    pub figures: Vec<Figure>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub os: String,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned()))
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
            })
            .unwrap_or_else(|| std::env::consts::OS.into());
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            os,
        }
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Trackstack benchmark ({} size), {}\n\nMachine: {} × {}, {} GiB, {}. Server: {}.\n\n",
            self.size,
            self.started_at,
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.memory_gib,
            self.machine.os,
            self.server
        );
        out.push_str("| Workload | Figure | Value | Budget | Met |\n|---|---|---:|---|---|\n");
        for f in &self.figures {
            let met = match f.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            out.push_str(&format!(
                "| {} | {} | {} {} | {} | {} |\n",
                f.workload,
                f.name,
                pretty(f.value),
                f.unit,
                f.budget.as_deref().unwrap_or(""),
                met
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("\n- {note}"));
        }
        out.push('\n');
        out
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let stamp = self.started_at.replace([':', '-'], "").replace('.', "_");
        let path = dir.join(format!("{stamp}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_budgets() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&samples);
        assert_eq!((p.p50, p.p95, p.p99), (51.0, 95.0, 99.0));
        assert_eq!(Figure::new("W", "x", 5.0, "ms", Budget::AtMost(4.0)).met, Some(false));
        assert_eq!(Figure::new("W", "x", 5.0, "/s", Budget::AtLeast(4.0)).budget.as_deref(), Some("≥ 4"));
        assert_eq!(pretty(1_234_567.0), "1,234,567");
    }
}
