//! Forward-only schema migrations, recorded in `trackstack_migrations`.

use tokio_postgres::Client;

struct Migration {
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration { name: "0001_initial", sql: include_str!("../migrations/0001_initial.sql") },
    Migration {
        name: "0002_retention_and_rejections",
        sql: include_str!("../migrations/0002_retention_and_rejections.sql"),
    },
    Migration { name: "0003_run_fields", sql: include_str!("../migrations/0003_run_fields.sql") },
    Migration { name: "0004_project_fields", sql: include_str!("../migrations/0004_project_fields.sql") },
];

/// Arbitrary but fixed: every Trackstack process takes this advisory lock to migrate.
pub(crate) const MIGRATION_LOCK: i64 = 0x7472_6163_6b73;

/// Applies pending migrations in one transaction. Concurrent callers wait on an advisory lock and then find
/// nothing left to do.
pub async fn migrate(client: &mut Client) -> Result<Vec<&'static str>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS trackstack_migrations (
            version    INTEGER PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let current: i32 = tx.query_one("SELECT coalesce(max(version), 0) FROM trackstack_migrations", &[]).await?.get(0);
    let mut applied = Vec::new();
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tracing::info!(migration = migration.name, "applying schema migration");
        tx.batch_execute(migration.sql).await?;
        let version = (index + 1) as i32;
        tx.execute("INSERT INTO trackstack_migrations (version, name) VALUES ($1, $2)", &[&version, &migration.name])
            .await?;
        applied.push(migration.name);
    }
    tx.commit().await?;
    Ok(applied)
}
