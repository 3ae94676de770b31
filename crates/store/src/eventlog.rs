//! The event log: where an event becomes durable, and where its JSON lives.
//!
//! Every audit event is appended to a segment file and made durable with one `fdatasync` per
//! group of concurrent appends, before its caller hears the outcome. The SQL tables that answer
//! queries (events by account, name, source, user, access key, resource; the usage rollup) are
//! built from the log right behind it, in larger transactions, by the store's writer thread.
//! So a request waits for one small sequential write, never for B-tree inserts or the database's
//! own fsync; and a crash between the two loses nothing: on start, every record of the log that
//! is not yet in the tables is indexed again.
//!
//! The tables hold each event's fields but not its JSON document: a row names the segment and
//! byte offset of its record, and readers fetch the document from there ([`SegmentReader`]).
//! Writing the JSON (most of an event's bytes) once more into the database, and again when its
//! write-ahead log is checkpointed, made the database's writes compete with the log's
//! `fdatasync` for the disk.
//!
//! A segment is `seg-<first seq>.log`, a run of records `len: u32 LE | crc32: u32 LE | payload`
//! whose payloads start with their seq, one more than the record before. Since it holds the
//! JSON of its events, a segment is kept until every one of its events has been pruned from the
//! tables (by retention) in a committed transaction; then it is recycled: renamed
//! `spare-<n>.log` and, at a later roll, renamed to the new segment's name and written over from
//! its start. Freeing blocks is what makes a filesystem's journal commit slow (a disk mounted
//! with `discard` trims them inside it, and every append's `fdatasync` waits for that commit),
//! so the log frees blocks only beyond a couple of spares; overwriting blocks it already has
//! also spares each `fdatasync` the allocation. A segment's records end where a record is torn
//! or is not the next seq (the stale records of its previous life are older). Only the newest
//! segment may end early (a group that was never acknowledged is cut off on start); a closed
//! segment that ends before the next one begins is corruption, and the store refuses to open.
//! Segments wholly indexed already are not read on start (a year of events need not be); their
//! records are checked (CRC, seq) when read.
//!
//! Appending to the end of a file makes each `fdatasync` also write the file's new size (a
//! second write to the disk, here ~50 % more CPU and ~70 % more time per sync); overwriting
//! blocks the file already has does not. So once a process has logged a little, a helper
//! thread writes and syncs zeros a couple of MiB ahead of the appends ([`ZeroAhead`]), and
//! appends land on blocks that exist. A zero header ends a segment's records like any torn or
//! stale one; records are never overwritten, since the helper only writes beyond the appends
//! and an append that would reach a region still being zeroed waits for the helper first.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::codec::{MANAGEMENT, READ_ONLY, Reader, event_flags, put_opt, put_str};
use crate::{EventResource, EventRow, KmsUsageKey, StoreError, StoreResult};

/// A segment is closed and a new one started once it holds this many bytes.
#[cfg(not(test))]
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Small in unit tests, so that the store's tests roll and release segments.
#[cfg(test)]
const SEGMENT_BYTES: u64 = 64 * 1024;

/// Upper bound of one record's payload: anything larger in a header is corruption.
const MAX_RECORD: u32 = 64 * 1024 * 1024;

/// Indexed segments kept for reuse; any more are deleted.
const SPARE_SEGMENTS: usize = 2;

/// Zeros are written ahead of the appends in pieces of this size...
#[cfg(not(test))]
const ZERO_PIECE: u64 = 1024 * 1024;
#[cfg(test)]
const ZERO_PIECE: u64 = 8 * 1024;
/// ...one as soon as fewer zeroed bytes than this are left ahead of them...
#[cfg(not(test))]
const ZERO_LOW_WATER: u64 = 2 * 1024 * 1024;
#[cfg(test)]
const ZERO_LOW_WATER: u64 = 8 * 1024;
/// ...starting at least this far ahead of them, so that appends go on while it is written
/// (a piece takes the helper a few milliseconds; the log appends ~30 MB/s at most here)...
#[cfg(not(test))]
const ZERO_SLACK: u64 = 512 * 1024;
#[cfg(test)]
const ZERO_SLACK: u64 = 2 * 1024;
/// ...once the process has appended this much: a store that logs little never writes zeros.
#[cfg(not(test))]
const ZERO_AFTER_BYTES: u64 = 1024 * 1024;
#[cfg(test)]
const ZERO_AFTER_BYTES: u64 = 2 * 1024;

fn log_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Database(format!("event log: {what} {}: {e}", path.display()))
}

/// Where an event's record sits: the segment (named by its first seq) and the byte offset of
/// the record's header in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogPosition {
    pub segment: i64,
    pub offset: i64,
}

/// The appending end of the log, owned by the journal thread.
pub(crate) struct EventLog {
    dir: PathBuf,
    current: File,
    current_path: PathBuf,
    current_first_seq: i64,
    current_bytes: u64,
    /// Closed segments and the last seq each holds, oldest first.
    closed: Vec<(PathBuf, i64)>,
    next_seq: i64,
    /// Set after a failed write: what is on disk past the last sync is unknown, so nothing more
    /// is appended until a restart has cut the tail off.
    failed: bool,
    buffer: Vec<u8>,
    /// Recycled segments waiting to become the next current one.
    spares: Vec<PathBuf>,
    spares_named: u64,
    zero_ahead: ZeroAhead,
}

/// The zeroing of the current segment ahead of its appends (see the module's documentation).
struct ZeroAhead {
    /// The current segment's bytes before this are records, or zeros written and synced, or
    /// blocks of the file's previous life (a recycled segment): an append there does not
    /// change the file's size.
    ready_to: u64,
    /// The piece `[start, end)` being zeroed by the helper, and where it will say it is done.
    in_flight: Option<InFlight>,
    /// Bytes appended by this process, all segments together.
    appended: u64,
    /// The helper thread, started with the first piece.
    helper: Option<mpsc::Sender<ZeroPiece>>,
    /// Set when zeroing failed (the disk is full, say): appends go on growing the file.
    stopped: bool,
}

struct InFlight {
    start: u64,
    end: u64,
    done: mpsc::Receiver<std::io::Result<()>>,
}

struct ZeroPiece {
    file: File,
    from: u64,
    to: u64,
    done: mpsc::Sender<std::io::Result<()>>,
}

impl ZeroAhead {
    fn new(current: &File) -> Self {
        Self {
            ready_to: current.metadata().map_or(0, |m| m.len()),
            in_flight: None,
            appended: 0,
            helper: None,
            stopped: false,
        }
    }

    /// Waits for the piece in flight, if any: afterwards the helper writes nothing until asked.
    fn settle(&mut self) {
        if let Some(piece) = self.in_flight.take() {
            let outcome = piece.done.recv().unwrap_or_else(|_| Err(helper_gone()));
            self.finished(piece.end, outcome);
        }
    }

    /// Notes a piece the helper has finished, if it has.
    fn poll(&mut self) {
        let finished = match &self.in_flight {
            Some(piece) => match piece.done.try_recv() {
                Ok(outcome) => Some((piece.end, outcome)),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => Some((piece.end, Err(helper_gone()))),
            },
            None => None,
        };
        if let Some((end, outcome)) = finished {
            self.in_flight = None;
            self.finished(end, outcome);
        }
    }

    fn finished(&mut self, end: u64, outcome: std::io::Result<()>) {
        match outcome {
            Ok(()) => self.ready_to = self.ready_to.max(end),
            Err(e) => {
                tracing::warn!(error = %e, "could not write zeros ahead of the event log; appends grow the segment instead");
                self.stopped = true;
            }
        }
    }

    /// Before records are written up to `to` in the current segment: they must not reach
    /// where the helper may still write zeros.
    fn before_write(&mut self, to: u64) {
        if self
            .in_flight
            .as_ref()
            .is_some_and(|piece| to > piece.start)
        {
            self.settle();
        }
    }

    /// After `written` bytes were appended, the segment now `current_bytes` long: asks for the
    /// next piece of zeros if the appends are getting close to the end of those written.
    fn after_write(&mut self, current: &File, current_bytes: u64, written: u64) {
        self.appended += written;
        self.poll();
        if self.stopped
            || self.in_flight.is_some()
            || self.appended < ZERO_AFTER_BYTES
            || self.ready_to >= SEGMENT_BYTES
            || self.ready_to.saturating_sub(current_bytes) >= ZERO_LOW_WATER
        {
            return;
        }
        // Never below the appends (what is there is records), and far enough ahead of them
        // that they need not wait for the piece.
        let from = self.ready_to.max(current_bytes + ZERO_SLACK);
        let to = (from + ZERO_PIECE).min(SEGMENT_BYTES);
        if from >= to {
            return;
        }
        let file = match current.try_clone() {
            Ok(file) => file,
            Err(e) => return self.finished(to, Err(e)),
        };
        let helper = match &self.helper {
            Some(helper) => helper.clone(),
            None => match spawn_zeroing_thread() {
                Ok(helper) => self.helper.insert(helper).clone(),
                Err(e) => return self.finished(to, Err(e)),
            },
        };
        let (done, finished) = mpsc::channel();
        if helper
            .send(ZeroPiece {
                file,
                from,
                to,
                done,
            })
            .is_err()
        {
            return self.finished(to, Err(helper_gone()));
        }
        self.in_flight = Some(InFlight {
            start: from,
            end: to,
            done: finished,
        });
    }

    /// A new current segment.
    fn rolled(&mut self, current: &File) {
        self.settle();
        self.ready_to = current.metadata().map_or(0, |m| m.len());
        self.stopped = false;
    }
}

impl Drop for ZeroAhead {
    /// The helper must not write into a segment a later log (in this process) appends to.
    fn drop(&mut self) {
        self.settle();
    }
}

fn helper_gone() -> std::io::Error {
    std::io::Error::other("the zeroing thread stopped")
}

fn spawn_zeroing_thread() -> std::io::Result<mpsc::Sender<ZeroPiece>> {
    let (pieces, received) = mpsc::channel::<ZeroPiece>();
    std::thread::Builder::new()
        .name("keytrail-event-log-zeros".into())
        .spawn(move || {
            let zeros = vec![0u8; 256 * 1024];
            for piece in received {
                #[cfg(test)]
                std::thread::sleep(std::time::Duration::from_millis(
                    tests::ZERO_DELAY_MS.load(std::sync::atomic::Ordering::Relaxed),
                ));
                let mut at = piece.from;
                let mut outcome = Ok(());
                while at < piece.to && outcome.is_ok() {
                    let n = (piece.to - at).min(zeros.len() as u64);
                    outcome = piece.file.write_all_at(&zeros[..n as usize], at);
                    at += n;
                }
                let outcome = outcome.and_then(|()| piece.file.sync_data());
                let _ = piece.done.send(outcome);
            }
        })?;
    Ok(pieces)
}

/// What a scan of the log on start found.
pub(crate) struct Recovered {
    /// The records numbered after the floor the log was opened with, oldest first: those
    /// the tables lack.
    pub rows: Vec<EventRow>,
    /// Where each of `rows` sits in the log.
    pub positions: Vec<LogPosition>,
    pub log: EventLog,
}

fn segment_name(first_seq: i64) -> String {
    format!("seg-{first_seq:020}.log")
}

/// The number in a `<prefix><number>.log` file name.
fn numbered(path: &Path, prefix: &str) -> Option<i64> {
    path.file_name()?
        .to_str()?
        .strip_prefix(prefix)?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// The segments (`seg-`) or the spares (`spare-`) in `dir`, by number.
fn files_named(dir: &Path, prefix: &str) -> StoreResult<Vec<(i64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| log_error("reading", dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| log_error("reading", dir, e))?.path();
        if let Some(n) = numbered(&path, prefix) {
            found.push((n, path));
        }
    }
    found.sort();
    Ok(found)
}

/// The segments in `dir` with their first seqs, in log order.
fn segments(dir: &Path) -> StoreResult<Vec<(i64, PathBuf)>> {
    files_named(dir, "seg-")
}

fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| log_error("syncing", dir, e))
}

impl EventLog {
    /// Opens the log in `dir` (created if missing): reads the segments that may hold records
    /// after `seq_floor` (the highest seq the database has indexed), cuts a torn tail off the
    /// newest, and starts a fresh segment for appends numbered after both what the log holds
    /// and `seq_floor`.
    pub(crate) fn recover(dir: &Path, seq_floor: i64) -> StoreResult<Recovered> {
        std::fs::create_dir_all(dir).map_err(|e| log_error("creating", dir, e))?;
        let found = segments(dir)?;
        let mut rows = Vec::new();
        let mut positions = Vec::new();
        let mut closed = Vec::new();
        let mut last_seq = seq_floor;
        for (i, (first_seq, path)) in found.iter().enumerate() {
            if let Some((next_first, _)) = found.get(i + 1)
                && next_first - 1 <= seq_floor
            {
                // Wholly indexed: the tables hold all of it.
                closed.push((path.clone(), next_first - 1));
                continue;
            }
            let bytes = std::fs::read(path).map_err(|e| log_error("reading", path, e))?;
            let (records, segment_last, good_len) = decode_segment(&bytes, *first_seq, seq_floor);
            match found.get(i + 1) {
                // A closed segment must reach the next one; what follows is its previous life.
                Some((next_first, _))
                    if segment_last.unwrap_or(first_seq - 1) != next_first - 1 =>
                {
                    return Err(StoreError::Database(format!(
                        "event log: {} is corrupt at byte {good_len} (it ends before seq {}): \
                         refusing to start",
                        path.display(),
                        next_first - 1
                    )));
                }
                Some(_) => {}
                None if good_len < bytes.len() => {
                    if bytes[good_len..].iter().all(|b| *b == 0) {
                        tracing::debug!(
                            segment = %path.display(),
                            kept = good_len,
                            "cutting off the zeros written ahead of the event log's appends"
                        );
                    } else {
                        tracing::warn!(
                            segment = %path.display(),
                            kept = good_len,
                            cut = bytes.len() - good_len,
                            "cutting off the event log after its last whole record (a torn \
                             group never acknowledged, or a recycled segment's old records)"
                        );
                    }
                    let file = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| log_error("opening", path, e))?;
                    file.set_len(good_len as u64)
                        .and_then(|()| file.sync_all())
                        .map_err(|e| log_error("truncating", path, e))?;
                }
                None => {}
            }
            if let Some(segment_last) = segment_last {
                last_seq = last_seq.max(segment_last);
            }
            closed.push((path.clone(), segment_last.unwrap_or(first_seq - 1)));
            for (offset, row) in records {
                positions.push(LogPosition {
                    segment: *first_seq,
                    offset,
                });
                rows.push(row);
            }
        }
        let next_seq = last_seq + 1;
        let current_path = dir.join(segment_name(next_seq));
        // A segment already named for `next_seq` can only be one a previous run opened and
        // never appended to: it is the new current segment, not a closed one to release.
        closed.retain(|(path, _)| *path != current_path);
        let mut spares: Vec<PathBuf> = files_named(dir, "spare-")?
            .into_iter()
            .map(|(_, path)| path)
            .collect();
        let spares_named = spares
            .iter()
            .filter_map(|p| numbered(p, "spare-"))
            .max()
            .map_or(0, |n| n.unsigned_abs());
        let current = open_segment(&current_path, &mut spares)?;
        sync_dir(dir)?;
        let zero_ahead = ZeroAhead::new(&current);
        Ok(Recovered {
            rows,
            positions,
            log: EventLog {
                dir: dir.to_path_buf(),
                current,
                current_path,
                current_first_seq: next_seq,
                current_bytes: 0,
                closed,
                next_seq,
                failed: false,
                buffer: Vec::new(),
                spares,
                spares_named,
                zero_ahead,
            },
        })
    }

    /// Numbers `rows` and makes them durable; on `Ok` every one is on disk, where the
    /// positions returned (one per row) say.
    pub(crate) fn append(&mut self, rows: &mut [EventRow]) -> StoreResult<Vec<LogPosition>> {
        if self.failed {
            return Err(StoreError::Database(
                "event log: an earlier write failed; restart to recover".into(),
            ));
        }
        self.buffer.clear();
        let mut positions = Vec::with_capacity(rows.len());
        for row in rows.iter_mut() {
            row.seq = self.next_seq;
            self.next_seq += 1;
            positions.push(LogPosition {
                segment: self.current_first_seq,
                offset: i64::try_from(self.current_bytes + self.buffer.len() as u64)
                    .unwrap_or(i64::MAX),
            });
            encode_record(row, &mut self.buffer);
        }
        let length = self.buffer.len() as u64;
        self.zero_ahead.before_write(self.current_bytes + length);
        let written = self
            .current
            .write_all_at(&self.buffer, self.current_bytes)
            .and_then(|()| self.current.sync_data());
        if let Err(e) = written {
            self.failed = true;
            return Err(log_error("appending to", &self.current_path, e));
        }
        self.current_bytes += length;
        if self.current_bytes >= SEGMENT_BYTES {
            self.roll()?;
        }
        self.zero_ahead
            .after_write(&self.current, self.current_bytes, length);
        Ok(positions)
    }

    fn roll(&mut self) -> StoreResult<()> {
        let path = self.dir.join(segment_name(self.next_seq));
        let file = open_segment(&path, &mut self.spares)?;
        sync_dir(&self.dir)?;
        let old = std::mem::replace(&mut self.current_path, path);
        self.current_first_seq = self.next_seq;
        self.current = file;
        self.current_bytes = 0;
        self.zero_ahead.rolled(&self.current);
        self.closed.push((old, self.next_seq - 1));
        Ok(())
    }

    /// Recycles (or, beyond [`SPARE_SEGMENTS`], deletes) the closed segments holding no record
    /// after `through`: the caller knows no row of the tables points into them any more.
    pub(crate) fn release_through(&mut self, through: i64) {
        while let Some((path, last)) = self.closed.first() {
            if *last > through {
                break;
            }
            let released = if self.spares.len() < SPARE_SEGMENTS {
                self.spares_named += 1;
                let spare = self
                    .dir
                    .join(format!("spare-{:020}.log", self.spares_named));
                // No directory sync: after a crash the segment is either still a segment
                // (released again) or already a spare.
                std::fs::rename(path, &spare).map(|()| self.spares.insert(0, spare))
            } else {
                std::fs::remove_file(path)
            };
            if let Err(e) = released {
                tracing::warn!(segment = %path.display(), error = %e, "could not release an event-log segment");
                break;
            }
            self.closed.remove(0);
        }
    }
}

/// Opens the segment at `path` for writing from its start: a spare renamed to it if there is
/// one, the file itself if a previous run left it (never appended to), or a new file.
fn open_segment(path: &Path, spares: &mut Vec<PathBuf>) -> StoreResult<File> {
    if !path.exists()
        && let Some(spare) = spares.pop()
    {
        std::fs::rename(&spare, path).map_err(|e| log_error("recycling", &spare, e))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| log_error("creating", path, e))
}

/// The seq of the newest whole record in the log in `dir`, read by a process that does not own
/// it (the owner may be appending meanwhile: a record being written is not whole yet).
pub(crate) fn last_seq(dir: &Path) -> StoreResult<i64> {
    let paths = match segments(dir) {
        Ok(paths) => paths,
        Err(_) if !dir.exists() => return Ok(0),
        Err(e) => return Err(e),
    };
    for (first_seq, path) in paths.iter().rev() {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            // Released by the owner since the listing: everything in it was indexed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(log_error("reading", path, e)),
        };
        if let Some(last) = last_whole_seq(&bytes, *first_seq) {
            return Ok(last);
        }
    }
    Ok(0)
}

/// Reads events' JSON documents back from the log's segments, keeping each segment it opened
/// for the next record (a page of events mostly sits in one or two).
pub(crate) struct SegmentReader<'a> {
    dir: &'a Path,
    /// Segments opened so far by first seq; `None` for one that is gone.
    open: Vec<(i64, Option<File>)>,
}

impl<'a> SegmentReader<'a> {
    pub(crate) fn new(dir: &'a Path) -> Self {
        Self {
            dir,
            open: Vec::new(),
        }
    }

    /// The JSON document of event `seq`, recorded at `at`; `None` if its segment is gone
    /// (every event in it was pruned since the row naming it was read).
    pub(crate) fn json(&mut self, seq: i64, at: LogPosition) -> StoreResult<Option<String>> {
        let path = self.dir.join(segment_name(at.segment));
        let index = match self.open.iter().position(|(first, _)| *first == at.segment) {
            Some(index) => index,
            None => {
                let file = match File::open(&path) {
                    Ok(file) => Some(file),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(log_error("opening", &path, e)),
                };
                self.open.push((at.segment, file));
                self.open.len() - 1
            }
        };
        let Some(file) = &self.open[index].1 else {
            return Ok(None);
        };
        let record = u64::try_from(at.offset)
            .ok()
            .map(|offset| read_record_at(file, offset))
            .transpose()
            .map_err(|e| log_error("reading", &path, e))?
            .flatten()
            .and_then(|payload| decode_row(&payload))
            .filter(|row| row.seq == seq);
        match record {
            Some(row) => Ok(Some(row.record_json)),
            // Recycled after being opened: its events were pruned meanwhile.
            None if !path.exists() => Ok(None),
            None => Err(StoreError::Database(format!(
                "event log: {} holds no intact record of event {seq} at byte {}",
                path.display(),
                at.offset
            ))),
        }
    }
}

/// The intact payload of the record at `offset` of `file` (`None` if it is torn, too long or
/// fails its CRC).
fn read_record_at(file: &File, offset: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 8];
    if !read_whole_at(file, &mut header, offset)? {
        return Ok(None);
    }
    let Some((len, crc)) = parse_header(&header) else {
        return Ok(None);
    };
    let mut payload = vec![0u8; len];
    if !read_whole_at(file, &mut payload, offset + 8)? {
        return Ok(None);
    }
    Ok((crc32fast::hash(&payload) == crc).then_some(payload))
}

/// Fills `buf` from `offset` of `file`; `false` if the file ends first.
fn read_whole_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<bool> {
    match file.read_exact_at(buf, offset) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// A record header's payload length and CRC; `None` for a length no record can have.
fn parse_header(header: &[u8]) -> Option<(usize, u32)> {
    let len = u32::from_le_bytes(header.get(..4)?.try_into().ok()?);
    let crc = u32::from_le_bytes(header.get(4..8)?.try_into().ok()?);
    (len <= MAX_RECORD).then_some((len as usize, crc))
}

/// The seq of the last intact record of a segment, found by walking the record headers (each
/// payload starts with its seq) without decoding the records.
fn last_whole_seq(bytes: &[u8], first_seq: i64) -> Option<i64> {
    let mut last = None;
    let mut at = 0;
    while let Some((seq, _, next)) = next_record(bytes, at, last.unwrap_or(first_seq - 1)) {
        last = Some(seq);
        at = next;
    }
    last
}

/// The record at `at` if it is intact and numbered `previous + 1`: its seq, payload and where
/// the next record starts.
fn next_record(bytes: &[u8], at: usize, previous: i64) -> Option<(i64, &[u8], usize)> {
    let (payload, next) = record_at(bytes, at)?;
    let seq = seq_of(payload)?;
    (seq == previous + 1).then_some((seq, payload, next))
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
    let (len, crc) = parse_header(bytes.get(at..at + 8)?)?;
    let end = at + 8 + len;
    let payload = bytes.get(at + 8..end)?;
    (crc32fast::hash(payload) == crc).then_some((payload, end))
}

/// The records of a segment whose first seq is `first_seq` numbered after `floor` (those up to
/// it are only checked, not decoded: the tables hold them) with their offsets, the last seq it
/// holds (`None` if none), and how many leading bytes hold its records.
fn decode_segment(
    bytes: &[u8],
    first_seq: i64,
    floor: i64,
) -> (Vec<(i64, EventRow)>, Option<i64>, usize) {
    let mut records = Vec::new();
    let mut last = None;
    let mut at = 0;
    while let Some((seq, payload, next)) = next_record(bytes, at, last.unwrap_or(first_seq - 1)) {
        if seq > floor {
            let Some(row) = decode_row(payload) else {
                break;
            };
            records.push((i64::try_from(at).unwrap_or(i64::MAX), row));
        }
        last = Some(seq);
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

fn encode_row(row: &EventRow, out: &mut Vec<u8>) {
    out.extend_from_slice(&row.seq.to_le_bytes());
    out.extend_from_slice(&row.event_time_ms.to_le_bytes());
    out.push(event_flags(row));
    for s in [
        row.event_id.as_str(),
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
            resource_type: r.string()?.into(),
            resource_name: r.string()?,
        });
    }
    let kms_usage = match r.u8()? {
        0 => None,
        1 => Some(KmsUsageKey {
            key_arn: r.string()?,
            operation: r.string()?.into(),
            source: r.string()?.into(),
        }),
        _ => return None,
    };
    if !r.is_empty() {
        return None;
    }
    Some(EventRow {
        seq,
        event_id,
        event_time_ms,
        account_id,
        region,
        event_source: event_source.into(),
        event_name: event_name.into(),
        request_id,
        access_key_id,
        read_only: flags & READ_ONLY != 0,
        management: flags & MANAGEMENT != 0,
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
        log.release_through(0);
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
        std::io::Write::write_all(&mut file, &torn[..torn.len() / 2]).unwrap();
        drop(file);

        // What a reading process sees meanwhile: the last whole record.
        assert_eq!(last_seq(dir.path()).unwrap(), 3);
        let recovered = EventLog::recover(dir.path(), 0).unwrap();
        assert_eq!(recovered.rows, rows);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), intact);
        assert_eq!(recovered.log.next_seq, 4);
    }

    #[test]
    fn corruption_before_the_newest_segment_refuses_to_open_unless_wholly_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::recover(dir.path(), 0).unwrap().log;
        log.append(&mut (0..3).map(row).collect::<Vec<_>>())
            .unwrap();
        let old = log.current_path.clone();
        log.roll().unwrap();
        let mut newer = vec![row(3)];
        log.append(&mut newer).unwrap();
        drop(log);
        let mut bytes = std::fs::read(&old).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&old, bytes).unwrap();

        for floor in [0, 2] {
            let err = EventLog::recover(dir.path(), floor).err().unwrap();
            assert!(err.to_string().contains("corrupt"), "{err}");
        }
        // Damage in a segment the tables hold wholly is found when a document is read from it,
        // not on start (a year of segments is not read at every start).
        let recovered = EventLog::recover(dir.path(), 3).unwrap();
        assert_eq!(recovered.rows, newer);
        assert_eq!(recovered.log.closed.first(), Some(&(old, 3)));
        assert_eq!(recovered.log.next_seq, 5);
    }

    /// Each row's document is where its append said it was.
    fn assert_documents_read_back(dir: &Path, rows: &[EventRow], at: &[LogPosition]) {
        let mut reader = SegmentReader::new(dir);
        for (row, at) in rows.iter().zip(at) {
            assert_eq!(
                reader.json(row.seq, *at).unwrap().as_deref(),
                Some(row.record_json.as_str()),
                "event {}",
                row.seq
            );
        }
    }

    /// How long the zeroing thread dawdles before each piece (tests of the wait set it).
    pub(super) static ZERO_DELAY_MS: std::sync::atomic::AtomicU64 =
        std::sync::atomic::AtomicU64::new(0);

    #[test]
    fn an_append_reaching_a_piece_still_being_zeroed_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::recover(dir.path(), 0).unwrap().log;
        ZERO_DELAY_MS.store(100, std::sync::atomic::Ordering::Relaxed);
        let mut rows = Vec::new();
        let mut at = Vec::new();
        let mut n = 0;
        while log.zero_ahead.in_flight.is_none() {
            let mut batch: Vec<_> = (n..n + 3).map(row).collect();
            n += 3;
            at.extend(log.append(&mut batch).unwrap());
            rows.extend(batch);
        }
        let start = log.zero_ahead.in_flight.as_ref().unwrap().start;
        // One group reaching well into the piece the helper has not written yet.
        let mut batch: Vec<_> = (n..n + 60).map(row).collect();
        at.extend(log.append(&mut batch).unwrap());
        rows.extend(batch);
        ZERO_DELAY_MS.store(0, std::sync::atomic::Ordering::Relaxed);
        assert!(log.current_bytes > start + ZERO_SLACK);
        // Whatever the helper was going to write is written now.
        log.zero_ahead.settle();
        assert_documents_read_back(dir.path(), &rows, &at);
    }

    #[test]
    fn zeros_are_written_ahead_of_the_appends_and_never_over_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::recover(dir.path(), 0).unwrap().log;
        let mut rows = Vec::new();
        let mut at = Vec::new();
        let mut saw_zeros_ahead = false;
        // About four segments, in groups of three.
        for group in 0..400 {
            let mut batch: Vec<_> = (group * 3..group * 3 + 3).map(row).collect();
            at.extend(log.append(&mut batch).unwrap());
            rows.extend(batch);
            if group % 7 == 0 {
                log.zero_ahead.settle();
                let length = log.current.metadata().unwrap().len();
                if length > log.current_bytes {
                    saw_zeros_ahead = true;
                    assert!(length <= SEGMENT_BYTES);
                    let tail = std::fs::read(&log.current_path).unwrap();
                    let current_bytes = usize::try_from(log.current_bytes).unwrap();
                    assert!(tail[current_bytes..].iter().all(|b| *b == 0));
                }
            }
        }
        assert!(
            saw_zeros_ahead,
            "no zeros were written ahead of the appends"
        );
        assert!(log.closed.len() >= 3);
        // Segments after the first were zeroed to their full size as they filled.
        for (path, _) in &log.closed[1..] {
            assert!(std::fs::metadata(path).unwrap().len() >= SEGMENT_BYTES);
        }
        assert_documents_read_back(dir.path(), &rows, &at);
        drop(log);
        // Zero tails end segments like stale records do: every event comes back, nothing more.
        let reopened = EventLog::recover(dir.path(), 0).unwrap();
        assert_eq!(reopened.rows, rows);
        assert_eq!(reopened.log.next_seq, 1201);
    }

    #[test]
    fn documents_are_read_back_where_the_appends_put_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::recover(dir.path(), 0).unwrap().log;
        let mut first: Vec<_> = (0..3).map(row).collect();
        let mut at = log.append(&mut first).unwrap();
        log.roll().unwrap();
        let mut second: Vec<_> = (3..5).map(row).collect();
        at.extend(log.append(&mut second).unwrap());
        let rows: Vec<EventRow> = first.into_iter().chain(second).collect();
        assert_eq!(
            at[0],
            LogPosition {
                segment: 1,
                offset: 0
            }
        );
        assert_eq!(
            at[3],
            LogPosition {
                segment: 4,
                offset: 0
            }
        );
        assert!(at[1].offset > 0 && at[1].segment == 1);

        let mut reader = SegmentReader::new(dir.path());
        for (row, at) in rows.iter().zip(&at) {
            assert_eq!(
                reader.json(row.seq, *at).unwrap().as_deref(),
                Some(row.record_json.as_str())
            );
        }
        // A position that does not hold the event asked for is corruption, not a miss.
        let err = reader.json(2, at[0]).err().unwrap();
        assert!(
            err.to_string().contains("no intact record of event 2"),
            "{err}"
        );
        let err = reader
            .json(
                1,
                LogPosition {
                    segment: 1,
                    offset: 3,
                },
            )
            .err()
            .unwrap();
        assert!(err.to_string().contains("no intact record"), "{err}");

        // Recovery hands back the same positions for the records the tables lack.
        drop(log);
        let recovered = EventLog::recover(dir.path(), 2).unwrap();
        assert_eq!(recovered.rows, rows[2..]);
        assert_eq!(recovered.positions, at[2..]);

        // Once its segment is released, an event's document is gone (it was pruned).
        let mut log = recovered.log;
        log.release_through(3);
        let mut reader = SegmentReader::new(dir.path());
        assert_eq!(reader.json(1, at[0]).unwrap(), None);
        assert_eq!(
            reader.json(4, at[3]).unwrap().as_deref(),
            Some(rows[3].record_json.as_str())
        );
    }

    #[test]
    fn released_closed_segments_are_recycled_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::recover(dir.path(), 0).unwrap().log;
        log.append(&mut (0..3).map(row).collect::<Vec<_>>())
            .unwrap();
        log.roll().unwrap();
        log.append(&mut (3..6).map(row).collect::<Vec<_>>())
            .unwrap();
        log.roll().unwrap();
        log.append(&mut [row(6)]).unwrap();
        log.roll().unwrap();
        let spares = |dir: &Path| files_named(dir, "spare-").unwrap().len();
        assert_eq!(segments(dir.path()).unwrap().len(), 4);
        log.release_through(4);
        assert_eq!(
            (segments(dir.path()).unwrap().len(), spares(dir.path())),
            (3, 1)
        );
        log.release_through(7);
        assert_eq!(
            (segments(dir.path()).unwrap().len(), spares(dir.path())),
            (1, 2)
        );
        assert_eq!(log.closed.len(), 0);
        // Beyond the spares it keeps, the log deletes.
        log.append(&mut [row(7)]).unwrap();
        log.roll().unwrap();
        log.release_through(8);
        assert_eq!(
            (segments(dir.path()).unwrap().len(), spares(dir.path())),
            (1, 2)
        );
    }

    #[test]
    fn a_recycled_segment_is_read_up_to_its_new_records_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::recover(dir.path(), 0).unwrap().log;
        // Two segments of five records each, indexed and recycled.
        for batch in 0..2 {
            log.append(&mut (batch * 5..batch * 5 + 5).map(row).collect::<Vec<_>>())
                .unwrap();
            log.roll().unwrap();
        }
        log.release_through(10);
        assert_eq!(files_named(dir.path(), "spare-").unwrap().len(), 2);
        // The current segment (a new file) fills and rolls onto a recycled file; that one gets
        // one record over its old ones and rolls onto the other: a closed segment with the
        // old records' tail behind its own, and a current one likewise.
        let mut newer: Vec<_> = (10..12).map(row).collect();
        log.append(&mut newer).unwrap();
        log.roll().unwrap();
        let mut recycled = vec![row(12)];
        log.append(&mut recycled).unwrap();
        log.roll().unwrap();
        log.append(&mut [row(13)]).unwrap();
        assert_eq!(files_named(dir.path(), "spare-").unwrap().len(), 0);
        assert_eq!(last_seq(dir.path()).unwrap(), 14);
        drop(log);

        let recovered = EventLog::recover(dir.path(), 10).unwrap();
        let seqs: Vec<i64> = recovered.rows.iter().map(|r| r.seq).collect();
        assert_eq!(
            seqs,
            [11, 12, 13, 14],
            "only the new records, and no corruption"
        );
        assert_eq!(recovered.rows[..2], newer[..]);
        assert_eq!(recovered.rows[2], recycled[0]);
        assert_eq!(recovered.log.next_seq, 15);
    }
}
