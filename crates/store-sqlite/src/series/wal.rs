//! The write-ahead log: numbered segment files of checksummed frames, one frame per acknowledged write.
//!
//! A write is acknowledged only after its frame is on disk (`fdatasync`), so a crash loses nothing acknowledged.
//! A flush seals the current segment and starts the next; once the sealed segments' points are committed to
//! blocks, their number is recorded as the checkpoint and the files are removed. Start-up replays only the
//! segments after the checkpoint; a torn frame can only sit at the end of the newest segment, and is cut off.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use trackstack_domain::model::MetricPoint;
use trackstack_store::{StoreError, StoreResult};

const FRAME_HEADER_BYTES: usize = 8;
const FRAME_MAX_BYTES: usize = 1 << 30;
const KIND_POINTS: u8 = 1;
const KIND_DELETE_RUN: u8 = 2;

/// What one frame records.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    Points { project: String, run_id: String, points: Vec<MetricPoint> },
    DeleteRun { project: String, run_id: String },
}

/// Encodes a write of points as a frame: the keys once, then fixed-width points naming a key by index.
pub(crate) fn points_frame(project: &str, run_id: &str, points: &[MetricPoint]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(64 + points.len() * 28);
    payload.push(KIND_POINTS);
    put_str(&mut payload, project);
    put_str(&mut payload, run_id);
    let mut keys: Vec<&str> = Vec::new();
    let mut index_of: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    let mut indices = Vec::with_capacity(points.len());
    for point in points {
        let index = *index_of.entry(point.key.as_str()).or_insert_with(|| {
            keys.push(&point.key);
            (keys.len() - 1) as u32
        });
        indices.push(index);
    }
    payload.extend((keys.len() as u32).to_le_bytes());
    for key in &keys {
        put_str(&mut payload, key);
    }
    payload.extend((points.len() as u32).to_le_bytes());
    for (point, index) in points.iter().zip(indices) {
        payload.extend(index.to_le_bytes());
        payload.extend(point.step.to_le_bytes());
        payload.extend(point.value.to_bits().to_le_bytes());
        payload.extend(point.time_ms.to_le_bytes());
    }
    frame(payload)
}

pub(crate) fn delete_run_frame(project: &str, run_id: &str) -> Vec<u8> {
    let mut payload = vec![KIND_DELETE_RUN];
    put_str(&mut payload, project);
    put_str(&mut payload, run_id);
    frame(payload)
}

fn frame(payload: Vec<u8>) -> Vec<u8> {
    let mut framed = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    framed.extend((payload.len() as u32).to_le_bytes());
    framed.extend(crc32fast::hash(&payload).to_le_bytes());
    framed.extend(payload);
    framed
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend((text.len() as u32).to_le_bytes());
    out.extend(text.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

fn decode_payload(payload: &[u8]) -> Option<Record> {
    let mut reader = Reader { bytes: payload, at: 0 };
    let record = match reader.u8()? {
        KIND_POINTS => {
            let (project, run_id) = (reader.string()?, reader.string()?);
            let keys = (0..reader.u32()?).map(|_| reader.string()).collect::<Option<Vec<_>>>()?;
            let count = reader.u32()? as usize;
            let mut points = Vec::with_capacity(count.min(payload.len() / 28));
            for _ in 0..count {
                let key = keys.get(reader.u32()? as usize)?.clone();
                let step = reader.u64()? as i64;
                let value = f64::from_bits(reader.u64()?);
                let time_ms = reader.u64()? as i64;
                points.push(MetricPoint { key, step, value, time_ms });
            }
            Record::Points { project, run_id, points }
        }
        KIND_DELETE_RUN => Record::DeleteRun { project: reader.string()?, run_id: reader.string()? },
        _ => return None,
    };
    (reader.at == payload.len()).then_some(record)
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.wal"))
}

/// Segment numbers present in `dir`, ascending.
fn segments(dir: &Path) -> StoreResult<Vec<u64>> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let name = entry.map_err(|e| io_error(dir, e))?.file_name();
        if let Some(number) = name.to_str().and_then(|n| n.strip_suffix(".wal")).and_then(|n| n.parse().ok()) {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Replays every segment after `checkpoint` in order, removes the older ones, and returns the number of the
/// newest segment seen (or `checkpoint`).
pub(crate) fn replay(
    dir: &Path,
    checkpoint: u64,
    mut apply: impl FnMut(Record) -> StoreResult<()>,
) -> StoreResult<u64> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let numbers = segments(dir)?;
    let mut newest = checkpoint;
    for (position, &number) in numbers.iter().enumerate() {
        let path = segment_path(dir, number);
        if number <= checkpoint {
            std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
            continue;
        }
        newest = number;
        let mut bytes = Vec::new();
        File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| io_error(&path, e))?;
        let mut at = 0;
        while at < bytes.len() {
            let Some(record) = frame_at(&bytes, at) else { break };
            let (record, next) = record;
            apply(record)?;
            at = next;
        }
        if at < bytes.len() {
            if position + 1 != numbers.len() {
                return Err(StoreError::Backend(format!(
                    "write-ahead log segment {} is damaged at byte {at} and is not the newest; refusing to start",
                    path.display()
                )));
            }
            tracing::warn!(segment = %path.display(), at, dropped = bytes.len() - at, "cutting off a torn write at the end of the log");
            let file = OpenOptions::new().write(true).open(&path).map_err(|e| io_error(&path, e))?;
            file.set_len(at as u64).and_then(|_| file.sync_all()).map_err(|e| io_error(&path, e))?;
        }
    }
    Ok(newest)
}

fn frame_at(bytes: &[u8], at: usize) -> Option<(Record, usize)> {
    let header = bytes.get(at..at + FRAME_HEADER_BYTES)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len > FRAME_MAX_BYTES {
        return None;
    }
    let payload = bytes.get(at + FRAME_HEADER_BYTES..at + FRAME_HEADER_BYTES + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    Some((decode_payload(payload)?, at + FRAME_HEADER_BYTES + len))
}

/// Appends frames to the newest segment.
pub(crate) struct WalWriter {
    dir: PathBuf,
    number: u64,
    file: File,
    written: u64,
}

impl WalWriter {
    /// Starts segment `number`, which must not exist yet.
    pub fn create(dir: &Path, number: u64) -> StoreResult<Self> {
        let path = segment_path(dir, number);
        let file = OpenOptions::new().append(true).create_new(true).open(&path).map_err(|e| io_error(&path, e))?;
        // The new file's directory entry must be durable before anything acknowledged lives only in it.
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, e))?;
        Ok(Self { dir: dir.to_owned(), number, file, written: 0 })
    }

    /// Writes the frames and waits until they are on disk.
    pub fn append(&mut self, frames: &[&[u8]]) -> StoreResult<()> {
        let path = || segment_path(&self.dir, self.number);
        let total: usize = frames.iter().map(|f| f.len()).sum();
        let mut buffer = Vec::with_capacity(total);
        for frame in frames {
            buffer.extend_from_slice(frame);
        }
        self.file.write_all(&buffer).and_then(|_| self.file.sync_data()).map_err(|e| io_error(&path(), e))?;
        self.written += total as u64;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Seals the current segment and continues in a new one; returns the sealed segment's number.
    pub fn rotate(&mut self) -> StoreResult<u64> {
        let next = WalWriter::create(&self.dir, self.number + 1)?;
        let sealed = std::mem::replace(self, next);
        Ok(sealed.number)
    }
}

/// Removes segments up to and including `checkpoint` (their points are in blocks).
pub(crate) fn remove_through(dir: &Path, checkpoint: u64) -> StoreResult<()> {
    for number in segments(dir)?.into_iter().take_while(|&n| n <= checkpoint) {
        let path = segment_path(dir, number);
        std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
    }
    Ok(())
}

fn io_error(path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> Vec<MetricPoint> {
        vec![
            MetricPoint { key: "a".into(), step: 1, value: f64::from_bits(0x7ff8_0000_0000_0001), time_ms: 5 },
            MetricPoint { key: "b".into(), step: 2, value: -0.0, time_ms: 6 },
            MetricPoint { key: "a".into(), step: 3, value: 1.5, time_ms: 7 },
        ]
    }

    fn replayed(dir: &Path, checkpoint: u64) -> (Vec<Record>, u64) {
        let mut records = Vec::new();
        let newest = replay(dir, checkpoint, |r| {
            records.push(r);
            Ok(())
        })
        .unwrap();
        (records, newest)
    }

    #[test]
    fn frames_replay_in_order_and_a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = WalWriter::create(dir.path(), 1).unwrap();
        wal.append(&[&points_frame("p", "r", &points()), &delete_run_frame("p", "gone")]).unwrap();
        let sealed = wal.rotate().unwrap();
        assert_eq!(sealed, 1);
        let torn = points_frame("p", "r", &points());
        wal.append(&[&torn[..torn.len() - 3]]).unwrap();
        drop(wal);

        let (records, newest) = replayed(dir.path(), 0);
        assert_eq!(newest, 2);
        assert_eq!(records.len(), 2);
        let Record::Points { points: replayed_points, .. } = &records[0] else { panic!("points first") };
        assert_eq!(replayed_points[0].value.to_bits(), 0x7ff8_0000_0000_0001);
        assert_eq!(replayed_points[1].value.to_bits(), (-0.0f64).to_bits());
        assert_eq!(records[1], Record::DeleteRun { project: "p".into(), run_id: "gone".into() });
        assert_eq!(std::fs::metadata(segment_path(dir.path(), 2)).unwrap().len(), 0);

        // Past the checkpoint only; older segments are removed.
        let (records, _) = replayed(dir.path(), 1);
        assert!(records.is_empty());
        assert!(!segment_path(dir.path(), 1).exists());
    }

    #[test]
    fn damage_before_the_newest_segment_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = WalWriter::create(dir.path(), 1).unwrap();
        wal.append(&[&points_frame("p", "r", &points())]).unwrap();
        wal.rotate().unwrap();
        wal.append(&[&points_frame("p", "r", &points())]).unwrap();
        let first = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&first).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&first, bytes).unwrap();
        let error = replay(dir.path(), 0, |_| Ok(())).unwrap_err();
        assert!(error.to_string().contains("damaged"), "{error}");
    }
}
