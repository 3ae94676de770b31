//! How events are found again among the event blocks (`event_blocks`): by LookupEvents'
//! attributes, by account for delivery, by key for a key's last use.
//!
//! An index entry per event and attribute cost a B-tree insert each — eight or more per event,
//! 60 % of the indexing thread's CPU. Instead, each indexing transaction writes one *posting*
//! per distinct (account, region, attribute, value) among its events: the seqs of the events that
//! carry it, with their time span. Under load a transaction holds hundreds of events sharing a
//! handful of values, so the postings cost a few rows per transaction. Reads walk an attribute
//! value's postings newest first and decode the blocks holding the seqs they name.
//!
//! A posting's events span at most [`POSTING_SPAN_MS`]: postings are ordered by their newest
//! event's time, so the walk knows where to start for any time window and when no older
//! posting can hold a better match. Delivery reads an account's events in journal order from
//! `event_account_runs`: one row per account and transaction, the seq range holding its events.

use std::path::Path;

use foldhash::HashMap;
use rusqlite::{Connection, params};

use crate::event_blocks::{self, BlockCursor, StoredEvent};
use crate::sqlite::with_json;
use crate::{EventLookup, EventRow, LookupAttribute, StoreError, StoreResult};

/// A posting's seq range is scanned whole while it is at most this many times as long as the
/// posting's list of events (a row scanned costs a fraction of a lookup by seq).
const SCAN_SPREAD: i64 = 8;

/// The widest time span of one posting's events; a wider group is split into several postings.
pub(crate) const POSTING_SPAN_MS: i64 = 60_000;

/// The attribute of every management event of a region: LookupEvents without a filter.
const ALL: &str = "";
const EVENT_NAME: &str = "EventName";
const EVENT_SOURCE: &str = "EventSource";
const USERNAME: &str = "Username";
const ACCESS_KEY_ID: &str = "AccessKeyId";
const READ_ONLY: &str = "ReadOnly";
const RESOURCE_TYPE: &str = "ResourceType";
const RESOURCE_NAME: &str = "ResourceName";

/// The postings and account runs of one indexing transaction, gathered while its events are
/// inserted and written once at its end.
#[derive(Default)]
pub(crate) struct PostingTally {
    /// Keyed by account, region, attribute and value joined with `\u{1f}`, so a value already
    /// seen is found without allocating.
    postings: HashMap<String, Posting>,
    scratch: String,
    accounts: HashMap<String, AccountRun>,
}

struct Posting {
    account_id: String,
    region: String,
    attribute: &'static str,
    value: String,
    runs: Vec<Run>,
}

struct Run {
    seqs: Vec<i64>,
    min_time_ms: i64,
    max_time_ms: i64,
}

struct AccountRun {
    first_seq: i64,
    last_seq: i64,
    max_time_ms: i64,
}

/// Writes `parts` into `scratch` joined with `\u{1f}` (a character no part contains), as the key
/// a tally finds its row by without allocating one per event.
pub(crate) fn join_key<'a>(scratch: &mut String, parts: impl IntoIterator<Item = &'a str>) {
    scratch.clear();
    for part in parts {
        scratch.push_str(part);
        scratch.push('\u{1f}');
    }
}

impl PostingTally {
    /// Adds events, in journal order.
    pub(crate) fn add(&mut self, events: &[EventRow]) {
        for e in events {
            self.accounts
                .entry(e.account_id.clone())
                .and_modify(|run| {
                    run.last_seq = e.seq;
                    run.max_time_ms = run.max_time_ms.max(e.event_time_ms);
                })
                .or_insert(AccountRun {
                    first_seq: e.seq,
                    last_seq: e.seq,
                    max_time_ms: e.event_time_ms,
                });
            // Data events never reach Event history.
            if !e.management {
                continue;
            }
            self.post(e, ALL, "");
            self.post(e, EVENT_NAME, &e.event_name);
            self.post(e, EVENT_SOURCE, &e.event_source);
            self.post(e, READ_ONLY, if e.read_only { "true" } else { "false" });
            if let Some(username) = &e.username {
                self.post(e, USERNAME, username);
            }
            if let Some(key) = &e.access_key_id {
                self.post(e, ACCESS_KEY_ID, key);
            }
            for r in &e.resources {
                self.post(e, RESOURCE_TYPE, &r.resource_type);
                self.post(e, RESOURCE_NAME, &r.resource_name);
            }
        }
    }

    fn post(&mut self, e: &EventRow, attribute: &'static str, value: &str) {
        join_key(
            &mut self.scratch,
            [e.account_id.as_str(), &e.region, attribute, value],
        );
        let posting = match self.postings.get_mut(self.scratch.as_str()) {
            Some(p) => p,
            None => self
                .postings
                .entry(self.scratch.clone())
                .or_insert_with(|| Posting {
                    account_id: e.account_id.clone(),
                    region: e.region.clone(),
                    attribute,
                    value: value.to_string(),
                    runs: Vec::new(),
                }),
        };
        let t = e.event_time_ms;
        if let Some(run) = posting.runs.last_mut() {
            // An event naming the same resource twice is posted once.
            if run.seqs.last() == Some(&e.seq) {
                return;
            }
            let min = run.min_time_ms.min(t);
            let max = run.max_time_ms.max(t);
            if max - min <= POSTING_SPAN_MS {
                run.seqs.push(e.seq);
                run.min_time_ms = min;
                run.max_time_ms = max;
                return;
            }
        }
        posting.runs.push(Run {
            seqs: vec![e.seq],
            min_time_ms: t,
            max_time_ms: t,
        });
    }

    pub(crate) fn write(self, conn: &Connection) -> rusqlite::Result<()> {
        if !self.postings.is_empty() {
            let mut insert = conn.prepare_cached(
                "INSERT INTO event_postings (account_id, region, attribute, value, max_time_ms,
                    last_seq, min_time_ms, seqs)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for p in self.postings.into_values() {
                for run in p.runs {
                    let last_seq = run.seqs.last().copied().unwrap_or_default();
                    insert.execute(params![
                        p.account_id,
                        p.region,
                        p.attribute,
                        p.value,
                        run.max_time_ms,
                        last_seq,
                        run.min_time_ms,
                        encode_seqs(&run.seqs)
                    ])?;
                }
            }
        }
        if !self.accounts.is_empty() {
            let mut insert = conn.prepare_cached(
                "INSERT INTO event_account_runs (account_id, last_seq, first_seq, max_time_ms)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (account, run) in self.accounts {
                insert.execute(params![
                    account,
                    run.last_seq,
                    run.first_seq,
                    run.max_time_ms
                ])?;
            }
        }
        Ok(())
    }
}

/// Seqs as text, the first in full and each next one as its distance from the previous: a run
/// of consecutive events costs two bytes each, and a migration can write one in plain SQL.
fn encode_seqs(seqs: &[i64]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(seqs.len() * 2 + 8);
    let mut previous = 0;
    for (i, seq) in seqs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Writing into a String cannot fail.
        let _ = write!(out, "{}", seq - previous);
        previous = *seq;
    }
    out
}

fn decode_seqs(text: &str) -> StoreResult<Vec<i64>> {
    let mut seqs = Vec::new();
    let mut previous = 0i64;
    for part in text.split(',') {
        let delta: i64 = part
            .parse()
            .map_err(|_| StoreError::Database(format!("event posting: bad seq list {text:?}")))?;
        previous = previous
            .checked_add(delta)
            .ok_or_else(|| StoreError::Database(format!("event posting: bad seq list {text:?}")))?;
        seqs.push(previous);
    }
    Ok(seqs)
}

/// Up to `limit` matching events of one attribute value with a time in `[start_ms, end_ms]` and
/// (time, seq) below `before`, newest first; `also` is what a match must satisfy besides.
#[allow(clippy::too_many_arguments)]
fn walk(
    c: &Connection,
    log: &Path,
    account_id: &str,
    region: &str,
    attribute: &str,
    value: &str,
    (start_ms, end_ms): (i64, i64),
    before: (i64, i64),
    limit: usize,
    also: &dyn Fn(&EventRow) -> bool,
) -> StoreResult<Vec<EventRow>> {
    if limit == 0 || start_ms > end_ms {
        return Ok(Vec::new());
    }
    let upper = end_ms.min(before.0);
    let mut postings = c.prepare_cached(
        "SELECT max_time_ms, min_time_ms, seqs FROM event_postings
         WHERE account_id = ?1 AND region = ?2 AND attribute = ?3 AND value = ?4
           AND max_time_ms BETWEEN ?5 AND ?6
         ORDER BY max_time_ms DESC, last_seq DESC",
    )?;
    // A posting holding an event at `upper` has its newest event at most a span later.
    let mut rows = postings.query(params![
        account_id,
        region,
        attribute,
        value,
        start_ms,
        upper.saturating_add(POSTING_SPAN_MS)
    ])?;
    let matches = |e: &StoredEvent| {
        let row = &e.row;
        row.management
            && (start_ms..=upper).contains(&row.event_time_ms)
            && (row.event_time_ms, row.seq) < before
            && also(row)
    };
    // The best matches so far, newest first, at most `limit`.
    let mut found: Vec<StoredEvent> = Vec::new();
    let key = |e: &StoredEvent| std::cmp::Reverse((e.row.event_time_ms, e.row.seq));
    let mut cursor = BlockCursor::default();
    while let Some(row) = rows.next()? {
        let (max_time_ms, min_time_ms, seqs): (i64, i64, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        // Every posting from here on holds only events no newer than its `max_time_ms`.
        if found.len() >= limit
            && found
                .last()
                .is_some_and(|worst| max_time_ms < worst.row.event_time_ms)
        {
            break;
        }
        if min_time_ms > upper {
            continue;
        }
        let mut seqs = decode_seqs(&seqs)?;
        // Written in journal order; sorted here all the same, for the search below.
        if !seqs.is_sorted() {
            seqs.sort_unstable();
        }
        let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
            continue;
        };
        // A posting's events are read in one pass over the blocks of the seq range they span
        // when they fill enough of it, else one by one (a posting written under load names
        // ~1,000 events of a transaction).
        if (last - first + 1) <= (seqs.len() as i64).saturating_mul(SCAN_SPREAD) {
            for e in event_blocks::between(c, first, last)? {
                // The range also holds events of other attribute values.
                if seqs.binary_search(&e.row.seq).is_ok() && matches(&e) {
                    found.push(e);
                }
            }
        } else {
            for seq in seqs {
                if let Some(e) = cursor.get(c, seq)?
                    && matches(e)
                {
                    found.push(e.clone());
                }
            }
        }
        found.sort_unstable_by_key(key);
        found.truncate(limit);
    }
    drop(rows);
    with_json(c, log, found)
}

/// A page of Event history: management events of one account and region, newest first.
pub(crate) fn lookup(
    c: &Connection,
    log: &Path,
    lookup: &EventLookup,
) -> StoreResult<Vec<EventRow>> {
    let before = lookup.before.unwrap_or((i64::MAX, i64::MAX));
    let window = (lookup.start_ms, lookup.end_ms);
    let (attribute, value) = match &lookup.attribute {
        Some(LookupAttribute::EventId(id)) => return lookup_by_id(c, log, lookup, id, before),
        None => (ALL, ""),
        Some(LookupAttribute::EventName(v)) => (EVENT_NAME, v.as_str()),
        Some(LookupAttribute::EventSource(v)) => (EVENT_SOURCE, v.as_str()),
        Some(LookupAttribute::Username(v)) => (USERNAME, v.as_str()),
        Some(LookupAttribute::AccessKeyId(v)) => (ACCESS_KEY_ID, v.as_str()),
        Some(LookupAttribute::ReadOnly(v)) => (READ_ONLY, if *v { "true" } else { "false" }),
        Some(LookupAttribute::ResourceType(v)) => (RESOURCE_TYPE, v.as_str()),
        Some(LookupAttribute::ResourceName(v)) => (RESOURCE_NAME, v.as_str()),
    };
    walk(
        c,
        log,
        &lookup.account_id,
        &lookup.region,
        attribute,
        value,
        window,
        before,
        lookup.limit,
        &|_| true,
    )
}

/// The one event `id` names, when it is a management event of the lookup's account and Region
/// within its window: found through `event_ids` when listed there, else among the events of
/// the second the id was stamped in.
fn lookup_by_id(
    c: &Connection,
    log: &Path,
    lookup: &EventLookup,
    id: &str,
    before: (i64, i64),
) -> StoreResult<Vec<EventRow>> {
    if lookup.limit == 0 {
        return Ok(Vec::new());
    }
    let (start_ms, end_ms) = (lookup.start_ms, lookup.end_ms);
    if let Some(seq) = event_blocks::listed_seq(c, id)? {
        let mut cursor = BlockCursor::default();
        let found = cursor.get(c, seq)?.filter(|e| {
            let row = &e.row;
            row.event_id == id
                && row.account_id == lookup.account_id
                && row.region == lookup.region
                && row.management
                && (start_ms..=end_ms).contains(&row.event_time_ms)
                && (row.event_time_ms, row.seq) < before
        });
        return with_json(c, log, found.cloned());
    }
    let Some(second) = event_blocks::id_second_ms(id) else {
        return Ok(Vec::new());
    };
    walk(
        c,
        log,
        &lookup.account_id,
        &lookup.region,
        ALL,
        "",
        (start_ms.max(second), end_ms.min(second)),
        before,
        1,
        &|row| row.event_id == id,
    )
}

/// How many events [`last_successful`] fetches at a time: most often the newest is the one.
const SUCCESS_PAGE: usize = 8;

/// The newest successful event among `event_names` that names the resource.
pub(crate) fn last_successful(
    c: &Connection,
    log: &Path,
    account_id: &str,
    region: &str,
    resource_name: &str,
    event_names: &[String],
) -> StoreResult<Option<EventRow>> {
    if event_names.is_empty() {
        return Ok(None);
    }
    let mut before = (i64::MAX, i64::MAX);
    loop {
        let page = walk(
            c,
            log,
            account_id,
            region,
            RESOURCE_NAME,
            resource_name,
            (i64::MIN, i64::MAX),
            before,
            SUCCESS_PAGE,
            &|row| event_names.iter().any(|n| *n == row.event_name),
        )?;
        let Some(oldest) = page.last() else {
            return Ok(None);
        };
        before = (oldest.event_time_ms, oldest.seq);
        // The JSON documents live in the event log, not in the table: the outcome is read here,
        // by the same JSON reader the table's query used.
        let mut failed = c.prepare_cached("SELECT json_extract(?1, '$.errorCode') IS NOT NULL")?;
        for event in page {
            if !failed.query_row(params![event.record_json], |r| r.get::<_, bool>(0))? {
                return Ok(Some(event));
            }
        }
    }
}

/// The time of the oldest management event retained for an account and region.
pub(crate) fn oldest_event_ms(
    c: &Connection,
    account_id: &str,
    region: &str,
) -> StoreResult<Option<i64>> {
    // The oldest event is in one of the postings within a span of the first.
    Ok(c.query_row(
        "SELECT MIN(min_time_ms) FROM event_postings
         WHERE account_id = ?1 AND region = ?2 AND attribute = ?3 AND value = ''
           AND max_time_ms <= (
               SELECT MIN(max_time_ms) FROM event_postings
               WHERE account_id = ?1 AND region = ?2 AND attribute = ?3 AND value = ''
           ) + ?4",
        params![account_id, region, ALL, POSTING_SPAN_MS],
        |r| r.get(0),
    )?)
}

/// Up to `limit` of the account's events after `after`, in journal order.
pub(crate) fn account_events_after(
    c: &Connection,
    log: &Path,
    account_id: &str,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<EventRow>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut runs = c.prepare_cached(
        "SELECT first_seq, last_seq FROM event_account_runs
         WHERE account_id = ?1 AND last_seq > ?2 ORDER BY last_seq",
    )?;
    let mut rows = runs.query(params![account_id, after])?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        let (first, last): (i64, i64) = (row.get(0)?, row.get(1)?);
        // A run's range may also hold other accounts' events of the same transaction.
        events.extend(
            event_blocks::between(c, first.max(after + 1), last)?
                .into_iter()
                .filter(|e| e.row.account_id == account_id),
        );
        if events.len() >= limit {
            events.truncate(limit);
            break;
        }
    }
    with_json(c, log, events)
}

/// Deletes the events older than `cutoff_ms` up to `delivered_up_to`, with the postings and
/// runs that name only deleted events; returns how many events went. Events go a block at a
/// time from the oldest on, up to the first block holding one that is not old enough, so a pass
/// costs what it deletes rather than a scan of the whole journal (an old event behind a newer
/// one — times out of journal order — waits for a later pass).
pub(crate) fn delete_before(
    c: &Connection,
    cutoff_ms: i64,
    delivered_up_to: i64,
) -> rusqlite::Result<usize> {
    let (deleted, boundary) = event_blocks::delete_before(c, cutoff_ms, delivered_up_to)?;
    c.execute(
        "DELETE FROM event_postings WHERE last_seq < ?2 AND max_time_ms < ?1",
        params![cutoff_ms, boundary],
    )?;
    c.execute(
        "DELETE FROM event_account_runs WHERE last_seq < ?2 AND max_time_ms < ?1",
        params![cutoff_ms, boundary],
    )?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn seq_lists_round_trip(mut seqs in proptest::collection::vec(0i64..1 << 50, 1..200)) {
            seqs.sort_unstable();
            seqs.dedup();
            prop_assert_eq!(decode_seqs(&encode_seqs(&seqs)).unwrap(), seqs);
        }
    }

    #[test]
    fn consecutive_seqs_cost_two_bytes_each_and_garbage_is_an_error() {
        assert_eq!(encode_seqs(&[1000, 1001, 1002, 1005]), "1000,1,1,3");
        assert!(decode_seqs("12,x").is_err());
        assert!(decode_seqs("").is_err());
    }
}
