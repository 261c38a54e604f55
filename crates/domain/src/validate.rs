//! Checks that turn untrusted input into values the stores may keep. Each returns an `invalid_argument`
//! [`Error`] naming the field (relative to the value checked; callers prefix it with [`Error::within`]).

use sha2::{Digest, Sha256};

use crate::limits::*;
use crate::model::{ArtifactFile, JsonMap, MetricPoint, Retention};
use crate::Error;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn check_name(field: &str, what: &str, value: &str, max_chars: usize) -> Result<(), Error> {
    if value.is_empty() || value.len() > max_chars {
        return Err(Error::invalid(field, format!("{what} must be 1 to {max_chars} characters, got {}", value.len())));
    }
    if let Some(bad) = value.chars().find(|c| !is_name_char(*c)) {
        return Err(Error::invalid(field, format!("{what} `{value}` contains `{bad}`; allowed are A-Z a-z 0-9 . _ -")));
    }
    Ok(())
}

pub fn project_name(name: &str) -> Result<(), Error> {
    check_name("name", "project name", name, PROJECT_NAME_MAX_CHARS)?;
    if name.starts_with(['.', '-']) {
        return Err(Error::invalid("name", format!("project name `{name}` must not start with `.` or `-`")));
    }
    Ok(())
}

pub fn retention(retention: &Retention) -> Result<(), Error> {
    for (field, days) in
        [("retention.runs_days", retention.runs_days), ("retention.points_days", retention.points_days)]
    {
        if let Some(days) = days.filter(|days| !(1..=RETENTION_DAYS_MAX).contains(days)) {
            return Err(Error::invalid(
                field,
                format!("{field} is {days}; it must be between 1 and {RETENTION_DAYS_MAX}"),
            ));
        }
    }
    Ok(())
}

pub fn run_id(id: &str) -> Result<(), Error> {
    check_name("id", "run id", id, RUN_ID_MAX_CHARS)
}

pub fn artifact_name(name: &str) -> Result<(), Error> {
    check_name("name", "artifact name", name, ARTIFACT_NAME_MAX_CHARS)
}

/// A short free-text field (run name, group, job type, artifact type).
pub fn short_text(field: &str, value: &str) -> Result<(), Error> {
    text(field, value, RUN_TEXT_MAX_BYTES)
}

pub fn notes(value: &str) -> Result<(), Error> {
    if value.len() > NOTES_MAX_BYTES {
        return Err(Error::invalid(
            "notes",
            format!("notes are {} bytes; the limit is {NOTES_MAX_BYTES}", value.len()),
        ));
    }
    Ok(())
}

fn text(field: &str, value: &str, max_bytes: usize) -> Result<(), Error> {
    if value.len() > max_bytes {
        return Err(Error::invalid(field, format!("{field} is {} bytes; the limit is {max_bytes}", value.len())));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, format!("{field} must not contain control characters")));
    }
    Ok(())
}

pub fn tags(tags: &[String]) -> Result<(), Error> {
    if tags.len() > TAGS_PER_RUN_MAX {
        return Err(Error::invalid("tags", format!("{} tags; the limit is {TAGS_PER_RUN_MAX} per run", tags.len())));
    }
    for (i, tag) in tags.iter().enumerate() {
        let field = format!("tags[{i}]");
        if tag.is_empty() {
            return Err(Error::invalid(field, "a tag must not be empty"));
        }
        text(&field, tag, TAG_MAX_BYTES)?;
    }
    Ok(())
}

/// Removes duplicate tags, keeping the first occurrence, so tag lists behave as sets.
pub fn dedup_tags(tags: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    tags.into_iter().filter(|tag| seen.insert(tag.clone())).collect()
}

pub fn metric_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > METRIC_KEY_MAX_BYTES {
        return Err(Error::invalid(
            "key",
            format!("metric key must be 1 to {METRIC_KEY_MAX_BYTES} bytes, got {}", key.len()),
        ));
    }
    if key.starts_with('_') {
        return Err(Error::invalid("key", format!("metric key `{key}` starts with `_`, which is reserved")));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid("key", "metric key must not contain control characters"));
    }
    Ok(())
}

pub fn step(step: i64) -> Result<(), Error> {
    if !(0..=STEP_MAX).contains(&step) {
        return Err(Error::invalid("step", format!("step {step} is out of range 0..=2^53-1")));
    }
    Ok(())
}

/// Checks a batch of points: count, keys and steps. Any value, NaN and infinities included, is valid.
pub fn metric_points(points: &[MetricPoint]) -> Result<(), Error> {
    if points.len() > POINTS_PER_BATCH_MAX {
        return Err(Error::invalid(
            "metrics",
            format!("{} points in one batch; the limit is {POINTS_PER_BATCH_MAX}", points.len()),
        ));
    }
    for (i, point) in points.iter().enumerate() {
        let check = metric_key(&point.key).and_then(|()| step(point.step));
        check.map_err(|e| e.within(&format!("[{i}]")).within("metrics"))?;
    }
    Ok(())
}

/// Bounds a stored JSON document (config, summary, metadata) by its serialized size.
pub fn json_document(field: &str, map: &JsonMap) -> Result<(), Error> {
    let size = serde_json::to_vec(map).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > JSON_DOCUMENT_MAX_BYTES {
        return Err(Error::invalid(
            field,
            format!("{field} is {size} bytes as JSON; the limit is {JSON_DOCUMENT_MAX_BYTES}"),
        ));
    }
    Ok(())
}

/// A lowercase hex sha256.
pub fn digest(field: &str, digest: &str) -> Result<(), Error> {
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(Error::invalid(field, format!("`{digest}` is not a sha256 digest (64 lowercase hex characters)")));
    }
    Ok(())
}

/// A relative, `/`-separated path inside an artifact; no `..`, no empty or absolute parts.
pub fn artifact_path(path: &str) -> Result<(), Error> {
    if path.is_empty() || path.len() > ARTIFACT_PATH_MAX_BYTES {
        return Err(Error::invalid("path", format!("path must be 1 to {ARTIFACT_PATH_MAX_BYTES} bytes")));
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return Err(Error::invalid("path", format!("path `{path}` must use `/` and no control characters")));
    }
    if path.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(Error::invalid("path", format!("path `{path}` must be relative with no empty, `.` or `..` parts")));
    }
    Ok(())
}

/// Validates an artifact's files, sorts them by path and returns (digest over the manifest, total size).
///
/// The digest covers paths, contents and sizes, so two versions with equal files have equal digests.
pub fn artifact_manifest(files: &mut [ArtifactFile]) -> Result<(String, u64), Error> {
    if files.is_empty() || files.len() > ARTIFACT_FILES_MAX {
        return Err(Error::invalid(
            "files",
            format!("an artifact needs 1 to {ARTIFACT_FILES_MAX} files, got {}", files.len()),
        ));
    }
    for (i, file) in files.iter().enumerate() {
        artifact_path(&file.path)
            .and_then(|()| digest("digest", &file.digest))
            .map_err(|e| e.within(&format!("files[{i}]")))?;
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(pair) = files.windows(2).find(|pair| pair[0].path == pair[1].path) {
        return Err(Error::invalid("files", format!("path `{}` appears twice", pair[0].path)));
    }
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    for file in files.iter() {
        hasher.update(file.path.as_bytes());
        hasher.update([0]);
        hasher.update(file.digest.as_bytes());
        hasher.update([0]);
        hasher.update(file.size.to_string().as_bytes());
        hasher.update([b'\n']);
        total = total.saturating_add(file.size);
    }
    Ok((hex::encode(hasher.finalize()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(key: &str, step: i64) -> MetricPoint {
        MetricPoint { key: key.into(), step, value: f64::NAN, time_ms: 0 }
    }

    #[test]
    fn project_names_are_url_safe() {
        assert!(project_name("vision-2026.v1_a").is_ok());
        for bad in ["", "has space", "slash/inside", ".hidden", "-flag", &"x".repeat(129)] {
            let err = project_name(bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("name"), "{bad}");
        }
    }

    #[test]
    fn batch_errors_name_the_point() {
        let points = vec![point("loss", 0), point("loss", 1), point(&"k".repeat(257), 2)];
        let err = metric_points(&points).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("metrics[2].key"));
        let err = metric_points(&[point("loss", -1)]).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("metrics[0].step"));
        assert!(metric_points(&[point("train/loss", STEP_MAX)]).is_ok());
        assert!(metric_points(&[point("_step", 0)]).is_err());
    }

    #[test]
    fn artifact_paths_stay_inside() {
        for good in ["model.pt", "ckpt/epoch-1/weights.bin"] {
            assert!(artifact_path(good).is_ok(), "{good}");
        }
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a\\b", "a/"] {
            assert!(artifact_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifest_digest_ignores_order_and_sees_content() {
        let file = |path: &str, digest: char| ArtifactFile {
            path: path.into(),
            digest: digest.to_string().repeat(64),
            size: 3,
        };
        let mut one = vec![file("b", 'a'), file("a", 'b')];
        let mut two = vec![file("a", 'b'), file("b", 'a')];
        let mut three = vec![file("a", 'b'), file("b", 'c')];
        let (d1, size) = artifact_manifest(&mut one).unwrap();
        assert_eq!(size, 6);
        assert_eq!(d1, artifact_manifest(&mut two).unwrap().0);
        assert_ne!(d1, artifact_manifest(&mut three).unwrap().0);
        assert_eq!(one[0].path, "a");
        let mut dup = vec![file("a", 'b'), file("a", 'c')];
        assert!(artifact_manifest(&mut dup).is_err());
    }
}
