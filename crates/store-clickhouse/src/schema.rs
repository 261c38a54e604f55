//! The tables, for one server or a cluster.

/// How the schema is laid out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaOptions {
    /// `ON CLUSTER` name for DDL.
    pub cluster: Option<String>,
    /// Replicated engines (with `{shard}`/`{replica}` macros) plus a Distributed table that reads and writes go
    /// through.
    pub replicated: bool,
}

/// Blocks remembered per table for insert deduplication. Replicated tables keep their own (default) window;
/// plain MergeTree tables keep none unless told to.
const DEDUPLICATION_WINDOW: u32 = 10_000;

impl SchemaOptions {
    fn on_cluster(&self) -> String {
        self.cluster.as_ref().map(|c| format!(" ON CLUSTER {c}")).unwrap_or_default()
    }

    /// The table reads and inserts address.
    pub fn points_table(&self, database: &str) -> String {
        if self.replicated {
            format!("{database}.points_all")
        } else {
            format!("{database}.points")
        }
    }

    /// Every DDL statement, in order; each is idempotent (`IF NOT EXISTS`).
    pub fn statements(&self, database: &str) -> Vec<String> {
        let on_cluster = self.on_cluster();
        let engine = if self.replicated {
            "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/points', '{replica}', version)"
                .to_owned()
        } else {
            "ReplacingMergeTree(version)".to_owned()
        };
        let dedup = if self.replicated {
            String::new()
        } else {
            format!("\nSETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}")
        };
        let mut statements = vec![
            format!("CREATE DATABASE IF NOT EXISTS {database}{on_cluster}"),
            format!(
                "CREATE TABLE IF NOT EXISTS {database}.points{on_cluster} (
    project LowCardinality(String),
    run_id String,
    key LowCardinality(String),
    step Int64 CODEC(Delta, ZSTD(1)),
    value Float64 CODEC(Gorilla, ZSTD(1)),
    time_ms Int64 CODEC(Delta, ZSTD(1)),
    version UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = {engine}
ORDER BY (project, run_id, key, step){dedup}"
            ),
        ];
        if self.replicated {
            let cluster = self.cluster.as_deref().unwrap_or_default();
            statements.push(format!(
                "CREATE TABLE IF NOT EXISTS {database}.points_all{on_cluster} AS {database}.points
ENGINE = Distributed({cluster}, {database}, points, cityHash64(project, run_id))"
            ));
        }
        statements
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_server_gets_plain_tables_with_a_deduplication_window() {
        let ddl = SchemaOptions::default().statements("ts");
        assert_eq!(ddl.len(), 2);
        assert!(ddl[1].contains("ENGINE = ReplacingMergeTree(version)"), "{}", ddl[1]);
        assert!(ddl[1].contains("non_replicated_deduplication_window = 10000"));
        assert!(!ddl.iter().any(|s| s.contains("ON CLUSTER")));
        assert_eq!(SchemaOptions::default().points_table("ts"), "ts.points");
    }

    #[test]
    fn a_cluster_gets_replicated_tables_behind_a_distributed_one() {
        let options = SchemaOptions { cluster: Some("main".into()), replicated: true };
        let ddl = options.statements("ts");
        assert_eq!(ddl.len(), 3);
        assert!(ddl.iter().all(|s| s.contains(" ON CLUSTER main")));
        assert!(ddl[1].contains(
            "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/points', '{replica}', version)"
        ));
        assert!(ddl[2].contains("ENGINE = Distributed(main, ts, points, cityHash64(project, run_id))"));
        assert_eq!(options.points_table("ts"), "ts.points_all");
    }
}
