//! Conformance suites: the behaviour every backend of a trait must show, written once.
//!
//! A backend crate runs a whole suite with one macro call in a test module, giving an async expression that
//! yields `Some((store, guard))` — the guard keeps temporary resources (a directory, a schema) alive — or
//! `None` when an external service is not configured (see [`external_service_url`]):
//!
//! ```ignore
//! trackstack_store::metadata_store_conformance!(async { let dir = tempdir(); Some((open(&dir), dir)) });
//! ```

pub mod blob;
pub mod metadata;
pub mod series;

use chrono::{DateTime, TimeZone, Utc};

/// A fixed instant plus `offset_ms`, so suites never depend on the wall clock.
pub fn at(offset_ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_767_225_600_000 + offset_ms).unwrap()
}

/// The URL of an external test service (Postgres, ClickHouse, S3) from the environment variable `var`.
///
/// Unset: under `CI=true` this panics, since CI must run every suite; elsewhere it prints a notice and returns
/// `None`, and the caller skips.
pub fn external_service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("{var} is not set, and under CI=true no suite may skip; `make test` starts the test services")
        }
        _ => {
            eprintln!("skipping: {var} is not set (`make test` starts the test services and sets it)");
            None
        }
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($suite:ident, $make:expr, [$($check:ident),+ $(,)?]) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some((store, _guard)) = $make.await else { return };
                $crate::testsuite::$suite::$check(&*store).await;
            }
        )+
    };
}

/// Runs the whole [`metadata`] suite against a backend.
#[macro_export]
macro_rules! metadata_store_conformance {
    ($make:expr) => {
        $crate::__conformance_tests!(
            metadata,
            $make,
            [
                projects_are_unique_and_listed_by_name,
                run_creation_is_idempotent_per_project,
                run_updates_merge_config_and_replace_tags,
                summary_follows_the_highest_step_unless_set_explicitly,
                finishing_sets_end_time_once_and_resuming_reopens,
                deleting_a_run_removes_it,
                run_listing_pages_cover_every_run_once,
                run_listing_filters_by_state_tag_and_name,
                artifact_versions_are_numbered_and_deduplicated,
                silent_running_runs_are_marked_crashed,
                project_retention_and_description_are_updated,
                rejections_are_counted_on_the_run,
                retention_finds_finished_runs_past_their_projects_limits,
                queries_return_what_the_reference_evaluator_accepts,
                field_discovery_counts_runs_per_field_and_type,
                runs_group_with_statistics_of_numeric_columns,
                a_working_store_reports_ready,
            ]
        );
    };
}

/// Runs the whole [`series`] suite against a backend.
#[macro_export]
macro_rules! series_store_conformance {
    ($make:expr) => {
        $crate::__conformance_tests!(
            series,
            $make,
            [
                last_write_wins_in_any_order,
                stats_follow_rewrites,
                non_finite_values_round_trip,
                raw_reads_page_through_a_range,
                buckets_aggregate_finite_values_only,
                bucket_ranges_default_to_the_series_extent,
                deleting_a_run_removes_its_points,
                a_working_store_reports_ready,
            ]
        );
    };
}

/// Runs the whole [`blob`] suite against a backend.
#[macro_export]
macro_rules! blob_store_conformance {
    ($make:expr) => {
        $crate::__conformance_tests!(
            blob,
            $make,
            [
                blobs_round_trip_by_digest,
                a_wrong_digest_stores_nothing,
                a_failing_upload_stores_nothing,
                storing_twice_keeps_one_copy,
                large_blobs_round_trip,
                a_working_store_reports_ready,
            ]
        );
    };
}
