//! The events' own fields in the tables: a block per indexing step, not a row per event.
//!
//! A row per event cost its insert plus an entry in the unique index on its id: two B-tree
//! inserts per event, most of what indexing spent beyond the postings. A block holds the
//! fields of the consecutive events one step indexed (a group of the log, ~30 events under
//! load), so the tables take one row where they took thirty. Readers decode the blocks that
//! cover the seqs they want; the postings (see `event_index`) still say which seqs those are.
//!
//! Event ids: keytrail stamps each event's id (a UUID v7) with the event's own time, so the id
//! tells in which second its event lies, and LookupEvents by `EventId` walks that second's
//! events. An id that does not tell (from before this layout, or made elsewhere) is kept in
//! `event_ids` with its seq when its event is indexed.

use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::{MANAGEMENT, READ_ONLY, Reader, event_flags, put_str};
use crate::eventlog::LogPosition;
use crate::{EventRow, StoreError, StoreResult};

const FORMAT: u8 = 1;
/// A flag bit above `codec`'s: the document is in the event log at a position; otherwise
/// inline (indexed before the documents moved to the log).
const LOGGED: u8 = 4;

/// An event as a block holds it: with its JSON document inline, or with where the log holds it.
#[derive(Clone)]
pub(crate) struct StoredEvent {
    pub(crate) row: EventRow,
    pub(crate) logged_at: Option<LogPosition>,
}

/// A block of `events` (consecutive in the journal), each with its document's position in the
/// log or, where there is none, its document inline. Events of a block mostly share their
/// account, Region, source, name, key and user, and their ids are GUIDs: a field equal to the
/// previous event's is a tag byte, a GUID its 16 bytes, so that a block costs the database a
/// third of what the fields' text would.
pub(crate) fn encode<'a>(
    events: impl IntoIterator<Item = (&'a EventRow, Option<LogPosition>)>,
) -> Vec<u8> {
    let mut out = vec![FORMAT];
    let mut previous: Option<&EventRow> = None;
    for (e, at) in events {
        out.extend_from_slice(&e.seq.to_le_bytes());
        out.extend_from_slice(&e.event_time_ms.to_le_bytes());
        let logged = if at.is_some() { LOGGED } else { 0 };
        out.push(event_flags(e) | logged);
        put_guid(&mut out, &e.event_id);
        put_guid(&mut out, &e.request_id);
        let p = previous;
        put_repeated(&mut out, &e.account_id, p.map(|p| p.account_id.as_str()));
        put_repeated(&mut out, &e.region, p.map(|p| p.region.as_str()));
        put_repeated(&mut out, &e.event_source, p.map(|p| &*p.event_source));
        put_repeated(&mut out, &e.event_name, p.map(|p| &*p.event_name));
        put_repeated_opt(
            &mut out,
            e.access_key_id.as_deref(),
            p.map(|p| p.access_key_id.as_deref()),
        );
        put_repeated_opt(
            &mut out,
            e.username.as_deref(),
            p.map(|p| p.username.as_deref()),
        );
        match at {
            Some(at) => {
                out.extend_from_slice(&at.segment.to_le_bytes());
                out.extend_from_slice(&at.offset.to_le_bytes());
            }
            None => put_str(&mut out, &e.record_json),
        }
        previous = Some(e);
    }
    out
}

const TEXT: u8 = 0;
const GUID: u8 = 1;
const SAME: u8 = 2;
const NONE: u8 = 3;

/// A GUID in CloudTrail's text (lower-case, hyphenated) as its 16 bytes, anything else as text.
fn put_guid(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let canonical = b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == b'-'
            } else {
                c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
            }
        });
    if !canonical {
        out.push(TEXT);
        put_str(out, s);
        return;
    }
    out.push(GUID);
    let mut digits = b.iter().filter(|&&c| c != b'-').map(|&c| match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    });
    while let (Some(high), Some(low)) = (digits.next(), digits.next()) {
        out.push(high << 4 | low);
    }
}

fn put_repeated(out: &mut Vec<u8>, s: &str, previous: Option<&str>) {
    if previous == Some(s) {
        out.push(SAME);
    } else {
        out.push(TEXT);
        put_str(out, s);
    }
}

fn put_repeated_opt(out: &mut Vec<u8>, s: Option<&str>, previous: Option<Option<&str>>) {
    match s {
        None => out.push(NONE),
        Some(s) => put_repeated(out, s, previous.flatten()),
    }
}

/// Reads a field written by `put_guid`, `put_repeated` or `put_repeated_opt`; `previous` is the
/// previous event's value of the field, if it had one.
fn field(r: &mut Reader<'_>, previous: Option<&str>) -> Option<Option<String>> {
    match r.u8()? {
        TEXT => r.string().map(Some),
        GUID => {
            let bytes = r.take(16)?;
            let mut text = String::with_capacity(36);
            for (i, byte) in bytes.iter().enumerate() {
                if [4, 6, 8, 10].contains(&i) {
                    text.push('-');
                }
                for nibble in [byte >> 4, byte & 0xf] {
                    text.push(char::from_digit(u32::from(nibble), 16)?);
                }
            }
            Some(Some(text))
        }
        SAME => previous.map(|p| Some(p.to_owned())),
        NONE => Some(None),
        _ => None,
    }
}

/// The events of the block in the first column of `row`.
fn decode_column(row: &rusqlite::Row<'_>) -> StoreResult<Vec<StoredEvent>> {
    decode(row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?)
}

/// The events of a block, in journal order.
pub(crate) fn decode(bytes: &[u8]) -> StoreResult<Vec<StoredEvent>> {
    decode_entries(bytes).ok_or_else(|| {
        StoreError::Database("event_blocks: a block does not decode (corrupt row)".into())
    })
}

fn decode_entries(bytes: &[u8]) -> Option<Vec<StoredEvent>> {
    let mut r = Reader(bytes);
    if r.u8()? != FORMAT {
        return None;
    }
    let mut events: Vec<StoredEvent> = Vec::new();
    while !r.is_empty() {
        let seq = r.i64()?;
        let event_time_ms = r.i64()?;
        let flags = r.u8()?;
        let event_id = field(&mut r, None)??;
        let request_id = field(&mut r, None)??;
        let previous = events.last().map(|e| &e.row);
        let account_id = field(&mut r, previous.map(|p| p.account_id.as_str()))??;
        let region = field(&mut r, previous.map(|p| p.region.as_str()))??;
        let event_source = field(&mut r, previous.map(|p| &*p.event_source))??;
        let event_name = field(&mut r, previous.map(|p| &*p.event_name))??;
        let access_key_id = field(&mut r, previous.and_then(|p| p.access_key_id.as_deref()))?;
        let username = field(&mut r, previous.and_then(|p| p.username.as_deref()))?;
        let (logged_at, record_json) = if flags & LOGGED != 0 {
            let segment = r.i64()?;
            let offset = r.i64()?;
            (Some(LogPosition { segment, offset }), String::new())
        } else {
            (None, r.string()?)
        };
        events.push(StoredEvent {
            row: EventRow {
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
                resources: Vec::new(),
                kms_usage: None,
            },
            logged_at,
        });
    }
    Some(events)
}

/// Stores `events` (consecutive, in journal order) as one block, and the ids among them that
/// do not tell their event's second in `event_ids`.
pub(crate) fn insert<'a>(
    c: &Connection,
    events: impl IntoIterator<Item = (&'a EventRow, Option<LogPosition>)> + Clone,
) -> rusqlite::Result<()> {
    let mut first_seq = None;
    let (mut last_seq, mut max_time_ms, mut count) = (0, i64::MIN, 0i64);
    for (e, _) in events.clone() {
        first_seq.get_or_insert(e.seq);
        last_seq = e.seq;
        max_time_ms = max_time_ms.max(e.event_time_ms);
        count += 1;
        if id_second_ms(&e.event_id) != Some(second_of(e.event_time_ms)) {
            c.prepare_cached("INSERT OR REPLACE INTO event_ids (event_id, seq) VALUES (?1, ?2)")?
                .execute(params![e.event_id, e.seq])?;
        }
    }
    let Some(first_seq) = first_seq else {
        return Ok(());
    };
    c.prepare_cached(
        "INSERT INTO event_blocks (first_seq, last_seq, max_time_ms, event_count, entries)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        first_seq,
        last_seq,
        max_time_ms,
        count,
        encode(events)
    ])?;
    Ok(())
}

fn second_of(time_ms: i64) -> i64 {
    time_ms.div_euclid(1000) * 1000
}

/// The second (in ms since the epoch) a UUID v7 in hyphenated text was stamped in, if `id` is
/// one.
pub(crate) fn id_second_ms(id: &str) -> Option<i64> {
    let b = id.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') || b[14] != b'7' {
        return None;
    }
    let mut ms: i64 = 0;
    for &ch in b[..8].iter().chain(&b[9..13]) {
        ms = ms * 16 + i64::from((ch as char).to_digit(16)?);
    }
    // The rest must be hex too, or it is not a UUID.
    for (i, &ch) in b.iter().enumerate().skip(14) {
        if ![18, 23].contains(&i) && !ch.is_ascii_hexdigit() {
            return None;
        }
    }
    Some(second_of(ms))
}

/// The seq of the event `id` names, where `event_ids` keeps it.
pub(crate) fn listed_seq(c: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    c.prepare_cached("SELECT seq FROM event_ids WHERE event_id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()
}

/// The events with seqs in `[from, to]`, in journal order.
pub(crate) fn between(c: &Connection, from: i64, to: i64) -> StoreResult<Vec<StoredEvent>> {
    if from > to {
        return Ok(Vec::new());
    }
    // Blocks do not overlap: the one starting at or before `from` may hold it, and every later
    // one up to `to`.
    let mut stmt = c.prepare_cached(
        "SELECT entries FROM event_blocks
         WHERE first_seq <= ?2 AND first_seq >= COALESCE(
             (SELECT MAX(first_seq) FROM event_blocks WHERE first_seq <= ?1), ?1)
         ORDER BY first_seq",
    )?;
    let mut rows = stmt.query(params![from, to])?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        let block = decode_column(row)?;
        events.extend(
            block
                .into_iter()
                .filter(|e| (from..=to).contains(&e.row.seq)),
        );
    }
    Ok(events)
}

/// Up to `limit` events after `after`, in journal order.
pub(crate) fn after(c: &Connection, after: i64, limit: usize) -> StoreResult<Vec<StoredEvent>> {
    let mut stmt = c.prepare_cached(
        "SELECT entries FROM event_blocks
         WHERE first_seq >= COALESCE(
             (SELECT MAX(first_seq) FROM event_blocks WHERE first_seq <= ?1), ?1)
         ORDER BY first_seq",
    )?;
    let mut rows = stmt.query(params![after])?;
    let mut events = Vec::new();
    while events.len() < limit {
        let Some(row) = rows.next()? else { break };
        let block = decode_column(row)?;
        events.extend(block.into_iter().filter(|e| e.row.seq > after));
    }
    events.truncate(limit);
    Ok(events)
}

/// The newest `limit` events, in journal order.
pub(crate) fn newest(c: &Connection, limit: usize) -> StoreResult<Vec<StoredEvent>> {
    let mut stmt = c.prepare_cached("SELECT entries FROM event_blocks ORDER BY first_seq DESC")?;
    let mut rows = stmt.query([])?;
    let mut events: Vec<StoredEvent> = Vec::new();
    while events.len() < limit {
        let Some(row) = rows.next()? else { break };
        let block = decode_column(row)?;
        events.extend(block.into_iter().rev());
    }
    events.truncate(limit);
    events.reverse();
    Ok(events)
}

/// The last seq the blocks hold (0 when none).
pub(crate) fn last_seq(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT COALESCE(MAX(last_seq), 0) FROM event_blocks",
        [],
        |r| r.get(0),
    )
}

/// The first seq the blocks hold.
pub(crate) fn first_seq(c: &Connection) -> rusqlite::Result<Option<i64>> {
    c.query_row("SELECT MIN(first_seq) FROM event_blocks", [], |r| r.get(0))
}

/// Whether a block still covers `seq` (it has not been pruned).
pub(crate) fn covers(c: &Connection, seq: i64) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "SELECT 1 FROM event_blocks
         WHERE first_seq = (SELECT MAX(first_seq) FROM event_blocks WHERE first_seq <= ?1)
           AND last_seq >= ?1",
    )?
    .exists(params![seq])
}

/// Deletes the blocks from the oldest on while all their events are older than `cutoff_ms`
/// and delivered (up to `delivered_up_to`), with the ids listed for them; returns how many
/// events went and the first seq kept (every posting and run below it names deleted events
/// only).
pub(crate) fn delete_before(
    c: &Connection,
    cutoff_ms: i64,
    delivered_up_to: i64,
) -> rusqlite::Result<(usize, i64)> {
    let boundary: i64 = c.query_row(
        "SELECT COALESCE(
             (SELECT first_seq FROM event_blocks
              WHERE max_time_ms >= ?1 OR last_seq > ?2 ORDER BY first_seq LIMIT 1),
             (SELECT COALESCE(MAX(last_seq), 0) FROM event_blocks) + 1)",
        params![cutoff_ms, delivered_up_to],
        |r| r.get(0),
    )?;
    let deleted: i64 = c.query_row(
        "SELECT COALESCE(SUM(event_count), 0) FROM event_blocks WHERE first_seq < ?1",
        params![boundary],
        |r| r.get(0),
    )?;
    c.execute(
        "DELETE FROM event_blocks WHERE first_seq < ?1",
        params![boundary],
    )?;
    c.execute("DELETE FROM event_ids WHERE seq < ?1", params![boundary])?;
    Ok((usize::try_from(deleted).unwrap_or(0), boundary))
}

/// Walks a run of seqs in journal order and keeps the last block it decoded, for readers
/// that look up many seqs close together.
#[derive(Default)]
pub(crate) struct BlockCursor {
    block: Vec<StoredEvent>,
}

impl BlockCursor {
    /// The event `seq`, if a block holds it.
    pub(crate) fn get(&mut self, c: &Connection, seq: i64) -> StoreResult<Option<&StoredEvent>> {
        let held = |block: &[StoredEvent]| {
            block.first().is_some_and(|e| e.row.seq <= seq)
                && block.last().is_some_and(|e| e.row.seq >= seq)
        };
        if !held(&self.block) {
            let entries: Option<Vec<u8>> = c
                .prepare_cached(
                    "SELECT entries FROM event_blocks
                     WHERE first_seq = (SELECT MAX(first_seq) FROM event_blocks
                                        WHERE first_seq <= ?1)",
                )?
                .query_row(params![seq], |r| r.get(0))
                .optional()?;
            self.block = match entries {
                Some(bytes) => decode(&bytes)?,
                None => Vec::new(),
            };
        }
        Ok(self
            .block
            .binary_search_by_key(&seq, |e| e.row.seq)
            .ok()
            .map(|i| &self.block[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(seq: i64, id: &str, time: i64) -> EventRow {
        EventRow {
            seq,
            event_id: id.into(),
            event_time_ms: time,
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            event_source: "kms.amazonaws.com".into(),
            event_name: "GenerateDataKey".into(),
            request_id: format!("req-{seq}"),
            access_key_id: (seq % 2 == 0).then(|| "AKIAEXAMPLE".into()),
            read_only: seq % 3 == 0,
            management: seq % 5 != 0,
            record_json: String::new(),
            username: (seq % 7 != 0).then(|| "alice".into()),
            resources: Vec::new(),
            kms_usage: None,
        }
    }

    proptest! {
        #[test]
        fn blocks_round_trip(
            seqs in proptest::collection::vec(1i64..1 << 40, 1..50),
            inline in proptest::collection::vec(any::<bool>(), 50),
            id in "\\PC{0,40}",
            json in "\\PC{0,80}",
            guid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            accounts in proptest::collection::vec("[0-9]{12}", 1..4),
        ) {
            let events: Vec<(EventRow, Option<LogPosition>)> = seqs
                .iter()
                .zip(&inline)
                .map(|(&seq, &inline)| {
                    let mut e = event(seq, if seq % 2 == 0 { &id } else { &guid }, seq * 3);
                    e.account_id = accounts[seq as usize % accounts.len()].clone();
                    if seq % 3 == 0 {
                        e.request_id = guid.to_uppercase();
                    }
                    let at = if inline {
                        e.record_json = json.clone();
                        None
                    } else {
                        Some(LogPosition { segment: seq / 7, offset: seq * 11 })
                    };
                    (e, at)
                })
                .collect();
            let bytes = encode(events.iter().map(|(e, at)| (e, *at)));
            let decoded = decode(&bytes).unwrap();
            prop_assert_eq!(decoded.len(), events.len());
            for (d, (e, at)) in decoded.iter().zip(&events) {
                prop_assert_eq!(&d.row, e);
                prop_assert_eq!(d.logged_at, *at);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn events_alike_cost_little_beyond_their_ids() {
        let events: Vec<EventRow> = (0..30)
            .map(|i| {
                let mut e = event(2, &uuid_like(1_764_000_000_000 + i), 0);
                e.request_id = uuid_like(i);
                e.seq = i;
                e
            })
            .collect();
        let bytes = encode(events.iter().map(|e| {
            (
                e,
                Some(LogPosition {
                    segment: 1,
                    offset: 2,
                }),
            )
        }));
        // Seq, time, flags, two GUIDs, six tags and a position: 75 bytes; the first event
        // also writes its text once.
        assert!(bytes.len() <= 75 * 30 + 60, "{} bytes", bytes.len());
        let decoded = decode(&bytes).unwrap();
        assert!(decoded.iter().zip(&events).all(|(d, e)| d.row == *e));
    }

    #[test]
    fn a_cut_block_is_an_error() {
        let e = event(1, "x", 0);
        let bytes = encode([(&e, None)]);
        assert!(decode(&bytes).is_ok());
        for end in 0..bytes.len() - 1 {
            if end == 1 {
                // The format byte alone is an empty block.
                continue;
            }
            assert!(decode(&bytes[..end]).is_err(), "cut at {end}");
        }
    }

    #[test]
    fn v7_ids_tell_their_second() {
        // 0x0193a1b2c3d4 ms since the epoch.
        let ms = 0x0193_a1b2_c3d4_i64;
        let id = "0193a1b2-c3d4-7abc-8def-0123456789ab";
        assert_eq!(id_second_ms(id), Some(ms - ms % 1000));
        assert_eq!(
            id_second_ms("0193a1b2-c3d4-4abc-8def-0123456789ab"),
            None,
            "a v4"
        );
        assert_eq!(id_second_ms("0193a1b2-c3d4-7abc-8def-0123456789aX"), None);
        assert_eq!(id_second_ms("0193a1b2c3d47abc8def0123456789ab"), None);
        assert_eq!(id_second_ms("e-1"), None);
        let now = uuid_like(1_764_000_000_123);
        assert_eq!(id_second_ms(&now), Some(1_764_000_000_000));
    }

    fn uuid_like(ms: i64) -> String {
        let hex = format!("{ms:012x}");
        format!("{}-{}-7000-8000-000000000000", &hex[..8], &hex[8..])
    }
}
