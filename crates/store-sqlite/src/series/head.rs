//! The head: points acknowledged (durable in the write-ahead log) but not yet packed into blocks.
//!
//! Points are appended in log order, so a later write of the same step simply comes later; readers sort and keep
//! the last per step. While a flush packs one memtable (`frozen`) into blocks, new writes go to `active`.

use std::collections::HashMap;
use std::sync::Arc;

use trackstack_domain::model::MetricPoint;

use super::codec::Point;

/// Points per series, grouped by project and run, in arrival order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Memtable {
    projects: HashMap<String, HashMap<String, HashMap<String, Vec<Point>>>>,
    points: usize,
}

impl Memtable {
    pub fn append(&mut self, project: &str, run_id: &str, points: &[MetricPoint]) {
        let run = match self.projects.get_mut(project).and_then(|runs| runs.get_mut(run_id)) {
            Some(run) => run,
            None => self.projects.entry(project.to_owned()).or_default().entry(run_id.to_owned()).or_default(),
        };
        for point in points {
            let stored = Point { step: point.step, value: point.value, time_ms: point.time_ms };
            match run.get_mut(point.key.as_str()) {
                Some(series) => series.push(stored),
                None => {
                    run.insert(point.key.clone(), vec![stored]);
                }
            }
        }
        self.points += points.len();
    }

    /// Appends everything `later` holds after this memtable's points.
    pub fn absorb(&mut self, later: Memtable) {
        for (project, runs) in later.projects {
            let into = self.projects.entry(project).or_default();
            for (run_id, series) in runs {
                let run = into.entry(run_id).or_default();
                for (key, points) in series {
                    run.entry(key).or_default().extend(points);
                }
            }
        }
        self.points += later.points;
    }

    pub fn remove_run(&mut self, project: &str, run_id: &str) {
        if let Some(removed) = self.projects.get_mut(project).and_then(|runs| runs.remove(run_id)) {
            self.points -= removed.values().map(Vec::len).sum::<usize>();
        }
    }

    pub fn len(&self) -> usize {
        self.points
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    fn series(&self, project: &str, run_id: &str, key: &str) -> Option<&Vec<Point>> {
        self.projects.get(project)?.get(run_id)?.get(key)
    }

    fn keys(&self, project: &str, run_id: &str) -> impl Iterator<Item = &str> {
        self.projects
            .get(project)
            .and_then(|runs| runs.get(run_id))
            .into_iter()
            .flat_map(|run| run.keys().map(String::as_str))
    }

    /// Every series with its points sorted by step, the last write of each step kept.
    pub fn sorted_series(&self) -> impl Iterator<Item = (&str, &str, &str, Vec<Point>)> {
        self.projects.iter().flat_map(|(project, runs)| {
            runs.iter().flat_map(move |(run_id, run)| {
                run.iter().map(move |(key, points)| {
                    (project.as_str(), run_id.as_str(), key.as_str(), latest_per_step(points.clone()))
                })
            })
        })
    }
}

/// Sorts by step and keeps the last-arrived point of each step.
pub(crate) fn latest_per_step(mut points: Vec<Point>) -> Vec<Point> {
    // A stable sort keeps arrival order among equal steps, so the last of each run of equal steps is the newest.
    points.sort_by_key(|p| p.step);
    let mut kept: Vec<Point> = Vec::with_capacity(points.len());
    for point in points {
        match kept.last_mut() {
            Some(last) if last.step == point.step => *last = point,
            _ => kept.push(point),
        }
    }
    kept
}

/// The two memtables; guarded by one mutex so a reader sees both at one instant.
#[derive(Debug, Default)]
pub(crate) struct Head {
    pub active: Memtable,
    pub frozen: Option<Arc<Memtable>>,
}

impl Head {
    /// The head's points of one series: sorted, unique per step, newest write winning.
    pub fn snapshot(&self, project: &str, run_id: &str, key: &str) -> Vec<Point> {
        let frozen = self.frozen.as_ref().and_then(|m| m.series(project, run_id, key));
        let active = self.active.series(project, run_id, key);
        let mut points = Vec::with_capacity(frozen.map_or(0, Vec::len) + active.map_or(0, Vec::len));
        points.extend(frozen.into_iter().flatten());
        points.extend(active.into_iter().flatten());
        latest_per_step(points)
    }

    /// Keys with points in the head for a run.
    pub fn keys(&self, project: &str, run_id: &str) -> Vec<String> {
        let mut keys: Vec<String> = self.active.keys(project, run_id).map(str::to_owned).collect();
        if let Some(frozen) = &self.frozen {
            keys.extend(frozen.keys(project, run_id).map(str::to_owned));
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(key: &str, step: i64, value: f64) -> MetricPoint {
        MetricPoint { key: key.into(), step, value, time_ms: 0 }
    }

    #[test]
    fn the_newest_write_of_a_step_wins_across_memtables() {
        let mut head = Head::default();
        head.active.append("p", "r", &[point("x", 2, 1.0), point("x", 1, 1.0), point("x", 2, 2.0)]);
        let frozen = std::mem::take(&mut head.active);
        head.frozen = Some(Arc::new(frozen));
        head.active.append("p", "r", &[point("x", 1, 3.0), point("y", 0, 0.0)]);
        let values: Vec<(i64, f64)> = head.snapshot("p", "r", "x").iter().map(|p| (p.step, p.value)).collect();
        assert_eq!(values, [(1, 3.0), (2, 2.0)]);
        assert_eq!(head.keys("p", "r"), ["x", "y"]);
        head.active.remove_run("p", "r");
        assert!(head.active.is_empty());
    }
}
