//! The event log: where an event becomes durable.
//!
//! Every audit event is appended to a segment file and made durable with one `fdatasync` per
//! group of concurrent appends, before its caller hears the outcome. The SQL tables that answer
//! queries (events by account, name, source, user, access key, resource; the usage rollup) are
//! built from the log right behind it, in larger transactions, by the store's writer thread.
//! So a request waits for one small sequential write, never for B-tree inserts or the database's
//! own fsync; and a crash between the two loses nothing: on start, every record of the log that
//! is not yet in the tables is indexed again.
//!
//! A segment is `seg-<first seq>.log`, a run of records `len: u32 LE | crc32: u32 LE | payload`.
//! A segment is deleted once everything in it is indexed by a committed (fsynced) transaction.
//! Only the tail of the newest segment can be torn (a group that was never acknowledged); it is
//! cut off on start. A bad record anywhere else is corruption, and the store refuses to open.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{EventResource, EventRow, KmsUsageKey, StoreError, StoreResult};

/// A segment is closed and a new one started once it holds this many bytes.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Upper bound of one record's payload: anything larger in a header is corruption.
const MAX_RECORD: u32 = 64 * 1024 * 1024;

fn log_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Database(format!("event log: {what} {}: {e}", path.display()))
}

/// The appending end of the log, owned by the journal thread.
pub(crate) struct EventLog {
    dir: PathBuf,
    current: File,
    current_path: PathBuf,
    current_bytes: u64,
    /// Closed segments and the last seq each holds, oldest first.
    closed: Vec<(PathBuf, i64)>,
    next_seq: i64,
    /// Set after a failed write: what is on disk past the last sync is unknown, so nothing more
    /// is appended until a restart has cut the tail off.
    failed: bool,
    buffer: Vec<u8>,
}

/// What a scan of the log on start found.
pub(crate) struct Recovered {
    /// The records numbered after the floor the log was opened with, oldest first: those
    /// the tables lack.
    pub rows: Vec<EventRow>,
    pub log: EventLog,
}

fn segment_name(first_seq: i64) -> String {
    format!("seg-{first_seq:020}.log")
}

fn segments(dir: &Path) -> StoreResult<Vec<PathBuf>> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| log_error("reading", dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| log_error("reading", dir, e))?.path();
        let is_segment = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("seg-") && n.ends_with(".log"));
        if is_segment {
            found.push(path);
        }
    }
    // Zero-padded first seqs: name order is log order.
    found.sort();
    Ok(found)
}

fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| log_error("syncing", dir, e))
}

impl EventLog {
    /// Opens the log in `dir` (created if missing): reads every segment, cuts a torn tail off
    /// the newest, and starts a fresh segment for appends numbered after both what the log holds
    /// and `seq_floor` (the highest seq the database has seen).
    pub(crate) fn recover(dir: &Path, seq_floor: i64) -> StoreResult<Recovered> {
        std::fs::create_dir_all(dir).map_err(|e| log_error("creating", dir, e))?;
        let paths = segments(dir)?;
        let mut rows = Vec::new();
        let mut closed = Vec::new();
        let mut last_seq = seq_floor;
        for (i, path) in paths.iter().enumerate() {
            let newest = i + 1 == paths.len();
            let bytes = std::fs::read(path).map_err(|e| log_error("reading", path, e))?;
            let (records, segment_last, good_len) = decode_segment(&bytes, seq_floor);
            if good_len < bytes.len() {
                if !newest {
                    return Err(StoreError::Database(format!(
                        "event log: {} is corrupt at byte {good_len}: refusing to start",
                        path.display()
                    )));
                }
                tracing::warn!(
                    segment = %path.display(),
                    kept = good_len,
                    cut = bytes.len() - good_len,
                    "cutting off a torn tail of the event log (a group never acknowledged)"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| log_error("opening", path, e))?;
                file.set_len(good_len as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| log_error("truncating", path, e))?;
            }
            last_seq = last_seq.max(segment_last);
            closed.push((path.clone(), segment_last));
            rows.extend(records);
        }
        let next_seq = last_seq + 1;
        let current_path = dir.join(segment_name(next_seq));
        // A segment already named for `next_seq` can only be one a previous run opened and
        // never appended to: it is the new current segment, not a closed one to release.
        closed.retain(|(path, _)| *path != current_path);
        let current = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current_path)
            .map_err(|e| log_error("creating", &current_path, e))?;
        sync_dir(dir)?;
        Ok(Recovered {
            rows,
            log: EventLog {
                dir: dir.to_path_buf(),
                current,
                current_path,
                current_bytes: 0,
                closed,
                next_seq,
                failed: false,
                buffer: Vec::new(),
            },
        })
    }

    /// Numbers `rows` and makes them durable; on `Ok` every one is on disk.
    pub(crate) fn append(&mut self, rows: &mut [EventRow]) -> StoreResult<()> {
        if self.failed {
            return Err(StoreError::Database(
                "event log: an earlier write failed; restart to recover".into(),
            ));
        }
        self.buffer.clear();
        for row in rows.iter_mut() {
            row.seq = self.next_seq;
            self.next_seq += 1;
            encode_record(row, &mut self.buffer);
        }
        let written = self
            .current
            .write_all(&self.buffer)
            .and_then(|()| self.current.sync_data());
        if let Err(e) = written {
            self.failed = true;
            return Err(log_error("appending to", &self.current_path, e));
        }
        self.current_bytes += self.buffer.len() as u64;
        if self.current_bytes >= SEGMENT_BYTES {
            self.roll()?;
        }
        Ok(())
    }

    fn roll(&mut self) -> StoreResult<()> {
        let path = self.dir.join(segment_name(self.next_seq));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| log_error("creating", &path, e))?;
        sync_dir(&self.dir)?;
        let old = std::mem::replace(&mut self.current_path, path);
        self.current = file;
        self.current_bytes = 0;
        self.closed.push((old, self.next_seq - 1));
        Ok(())
    }

    /// Deletes the closed segments whose every record is in a committed index transaction.
    pub(crate) fn release_indexed(&mut self, indexed_through: i64) {
        while let Some((path, last)) = self.closed.first() {
            if *last > indexed_through {
                break;
            }
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(segment = %path.display(), error = %e, "could not delete an indexed event-log segment");
                break;
            }
            self.closed.remove(0);
        }
    }
}

/// The seq of the newest whole record in the log in `dir`, read by a process that does not own
/// it (the owner may be appending meanwhile: a record being written is not whole yet).
pub(crate) fn last_seq(dir: &Path) -> StoreResult<i64> {
    let paths = match segments(dir) {
        Ok(paths) => paths,
        Err(_) if !dir.exists() => return Ok(0),
        Err(e) => return Err(e),
    };
    for path in paths.iter().rev() {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            // Released by the owner since the listing: everything in it was indexed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(log_error("reading", path, e)),
        };
        if let Some(last) = last_whole_seq(&bytes) {
            return Ok(last);
        }
    }
    Ok(0)
}

/// The seq of the last intact record of a segment, found by walking the record headers (each
/// payload starts with its seq) without decoding the records.
fn last_whole_seq(bytes: &[u8]) -> Option<i64> {
    let mut last = None;
    let mut at = 0;
    while let Some((payload, next)) = record_at(bytes, at) {
        last = seq_of(payload);
        at = next;
    }
    last
}

/// Every payload starts with its record's seq.
fn seq_of(payload: &[u8]) -> Option<i64> {
    payload
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_le_bytes)
}

/// The intact payload of the record at `at`, and where the next record starts.
fn record_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at + 8)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD {
        return None;
    }
    let end = at + 8 + len as usize;
    let payload = bytes.get(at + 8..end)?;
    (crc32fast::hash(payload) == crc).then_some((payload, end))
}

/// The records of a segment numbered after `floor` (those up to it are only checked, not
/// decoded: the tables hold them), the last seq it holds (0 if none), and how many leading
/// bytes hold whole, intact records.
fn decode_segment(bytes: &[u8], floor: i64) -> (Vec<EventRow>, i64, usize) {
    let mut records = Vec::new();
    let mut last = 0;
    let mut at = 0;
    while let Some((payload, next)) = record_at(bytes, at) {
        let Some(seq) = seq_of(payload) else {
            break;
        };
        if seq > floor {
            let Some(row) = decode_row(payload) else {
                break;
            };
            records.push(row);
        }
        last = seq;
        at = next;
    }
    (records, last, at)
}

pub(crate) fn encode_record(row: &EventRow, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    encode_row(row, out);
    let payload = &out[start + 8..];
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

fn encode_row(row: &EventRow, out: &mut Vec<u8>) {
    out.extend_from_slice(&row.seq.to_le_bytes());
    out.extend_from_slice(&row.event_time_ms.to_le_bytes());
    out.push(u8::from(row.read_only) | (u8::from(row.management) << 1));
    for s in [
        &row.event_id,
        &row.account_id,
        &row.region,
        &row.event_source,
        &row.event_name,
        &row.request_id,
        &row.record_json,
    ] {
        put_str(out, s);
    }
    put_opt(out, row.access_key_id.as_deref());
    put_opt(out, row.username.as_deref());
    out.extend_from_slice(
        &u32::try_from(row.resources.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for r in &row.resources {
        put_str(out, &r.resource_type);
        put_str(out, &r.resource_name);
    }
    match &row.kms_usage {
        Some(u) => {
            out.push(1);
            put_str(out, &u.key_arn);
            put_str(out, &u.operation);
            put_str(out, &u.source);
        }
        None => out.push(0),
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_le_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.string().map(Some),
            _ => None,
        }
    }
}

fn decode_row(payload: &[u8]) -> Option<EventRow> {
    let mut r = Reader(payload);
    let seq = r.i64()?;
    let event_time_ms = r.i64()?;
    let flags = r.u8()?;
    let event_id = r.string()?;
    let account_id = r.string()?;
    let region = r.string()?;
    let event_source = r.string()?;
    let event_name = r.string()?;
    let request_id = r.string()?;
    let record_json = r.string()?;
    let access_key_id = r.opt()?;
    let username = r.opt()?;
    let count = r.u32()?;
    let mut resources = Vec::new();
    for _ in 0..count {
        resources.push(EventResource {
            resource_type: r.string()?,
            resource_name: r.string()?,
        });
    }
    let kms_usage = match r.u8()? {
        0 => None,
        1 => Some(KmsUsageKey {
            key_arn: r.string()?,
            operation: r.string()?,
            source: r.string()?,
        }),
        _ => return None,
    };
    if !r.0.is_empty() {
        return None;
    }
    Some(EventRow {
        seq,
        event_id,
        event_time_ms,
        account_id,
        region,
        event_source,
        event_name,
        request_id,
        access_key_id,
        read_only: flags & 1 != 0,
        management: flags & 2 != 0,
        record_json,
        username,
        resources,
        kms_usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i64) -> EventRow {
        EventRow {
            seq: 0,
            event_id: format!("id-{i}"),
            event_time_ms: 1_700_000_000_000 + i,
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
            event_source: "kms.amazonaws.com".into(),
            event_name: "GenerateDataKey".into(),
            request_id: format!("req-{i}"),
            access_key_id: (i % 2 == 0).then(|| "AKIAEXAMPLE".into()),
            read_only: i % 3 == 0,
            management: true,
            record_json: format!("{{\"n\":{i}}}"),
            username: Some("röot".into()),
            resources: vec![EventResource {
                resource_type: "AWS::KMS::Key".into(),
                resource_name: format!("arn:aws:kms:us-east-1:111111111111:key/{i}"),
            }],
            kms_usage: (i % 2 == 1).then(|| KmsUsageKey {
                key_arn: "arn:k".into(),
                operation: "GenerateDataKey".into(),
                source: "user".into(),
            }),
        }
    }

    #[test]
    fn records_round_trip_and_numbering_continues_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = EventLog::recover(dir.path(), 0).unwrap();
        assert!(first.rows.is_empty());
        let mut rows: Vec<_> = (0..5).map(row).collect();
        first.log.append(&mut rows).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        drop(first);

        let mut second = EventLog::recover(dir.path(), 0).unwrap();
        assert_eq!(second.rows, rows);
        let mut more = vec![row(9)];
        second.log.append(&mut more).unwrap();
        assert_eq!(more[0].seq, 6);
        // Records the tables hold already are not handed back.
        drop(second);
        let third = EventLog::recover(dir.path(), 4).unwrap();
        assert_eq!(third.rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 6]);
        assert_eq!(third.log.next_seq, 7);
        // A database that has seen further (events indexed, then their segment deleted) wins.
        drop(third);
        let fourth = EventLog::recover(dir.path(), 40).unwrap();
        assert!(fourth.rows.is_empty());
        assert_eq!(fourth.log.next_seq, 41);
    }

    #[test]
    fn a_segment_left_empty_by_the_previous_run_is_appended_to_not_released() {
        let dir = tempfile::tempdir().unwrap();
        drop(EventLog::recover(dir.path(), 0).unwrap());
        // The same name again: the empty segment of the first run becomes this run's.
        let mut log = EventLog::recover(dir.path(), 0).unwrap().log;
        log.release_indexed(0);
        let mut rows: Vec<_> = (0..2).map(row).collect();
        log.append(&mut rows).unwrap();
        drop(log);
        assert_eq!(EventLog::recover(dir.path(), 0).unwrap().rows, rows);
    }

    #[test]
    fn a_torn_tail_of_the_newest_segment_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::recover(dir.path(), 0).unwrap().log;
        let mut rows: Vec<_> = (0..3).map(row).collect();
        log.append(&mut rows).unwrap();
        let path = log.current_path.clone();
        drop(log);
        let intact = std::fs::metadata(&path).unwrap().len();
        // Half of a further record, as a crash in the middle of a write leaves it.
        let mut torn = Vec::new();
        encode_record(&row(7), &mut torn);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn[..torn.len() / 2]).unwrap();
        drop(file);

        // What a reading process sees meanwhile: the last whole record.
        assert_eq!(last_seq(dir.path()).unwrap(), 3);
        let recovered = EventLog::recover(dir.path(), 0).unwrap();
        assert_eq!(recovered.rows, rows);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), intact);
        assert_eq!(recovered.log.next_seq, 4);
    }

    #[test]
    fn corruption_before_the_newest_segment_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::recover(dir.path(), 0).unwrap().log;
        log.append(&mut (0..3).map(row).collect::<Vec<_>>())
            .unwrap();
        let old = log.current_path.clone();
        log.roll().unwrap();
        log.append(&mut [row(4)]).unwrap();
        drop(log);
        let mut bytes = std::fs::read(&old).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&old, bytes).unwrap();

        let err = EventLog::recover(dir.path(), 0).err().unwrap();
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    #[test]
    fn indexed_closed_segments_are_deleted_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::recover(dir.path(), 0).unwrap().log;
        log.append(&mut (0..3).map(row).collect::<Vec<_>>())
            .unwrap();
        log.roll().unwrap();
        log.append(&mut (3..6).map(row).collect::<Vec<_>>())
            .unwrap();
        log.roll().unwrap();
        assert_eq!(segments(dir.path()).unwrap().len(), 3);
        log.release_indexed(4);
        assert_eq!(segments(dir.path()).unwrap().len(), 2);
        log.release_indexed(6);
        assert_eq!(segments(dir.path()).unwrap().len(), 1);
        assert_eq!(log.closed.len(), 0);
    }
}
