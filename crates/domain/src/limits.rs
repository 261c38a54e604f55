//! The documented input limits (docs/api.md, "Limits"). Changing one is an API change: update the doc too.

pub const PROJECT_NAME_MAX_CHARS: usize = 128;
pub const RUN_ID_MAX_CHARS: usize = 64;
pub const RUN_TEXT_MAX_BYTES: usize = 256;
pub const NOTES_MAX_BYTES: usize = 64 * 1024;
pub const TAGS_PER_RUN_MAX: usize = 256;
pub const TAG_MAX_BYTES: usize = 128;
pub const METRIC_KEY_MAX_BYTES: usize = 256;
/// Steps stay exact in every client, JavaScript included.
pub const STEP_MAX: i64 = (1 << 53) - 1;
pub const POINTS_PER_BATCH_MAX: usize = 100_000;
pub const JSON_DOCUMENT_MAX_BYTES: usize = 16 * 1024 * 1024;
pub const ARTIFACT_NAME_MAX_CHARS: usize = 128;
pub const ARTIFACT_FILES_MAX: usize = 100_000;
pub const ARTIFACT_PATH_MAX_BYTES: usize = 1024;
pub const BUCKETS_MAX: u32 = 10_000;
pub const RAW_PAGE_MAX: usize = 100_000;
pub const RAW_PAGE_DEFAULT: usize = 10_000;
pub const LIST_PAGE_MAX: usize = 1_000;
pub const LIST_PAGE_DEFAULT: usize = 100;
/// Fields returned by one column-discovery request (default and maximum).
pub const FIELDS_DEFAULT: usize = 10_000;
pub const FIELDS_MAX: usize = 100_000;
/// Groups returned by one grouped runs query.
pub const GROUPS_MAX: usize = 10_000;
/// Fields in one `columns` or `group_by` list.
pub const FIELDS_PER_QUERY_MAX: usize = 200;
/// A retention period in days: at least a day, at most a century.
pub const RETENTION_DAYS_MAX: u32 = 36_500;
