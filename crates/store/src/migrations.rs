//! Versioned schema migrations. Each step runs once, in order, in its own transaction, and is
//! recorded in `schema_migrations`. Never edit a released step: add a new one.

use crate::EventRow;
use crate::event_blocks;
use crate::eventlog::LogPosition;

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE accounts (
        account_id TEXT PRIMARY KEY,
        created_at_ms BIGINT NOT NULL
    );
    CREATE TABLE iam_users (
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        user_name TEXT NOT NULL,
        user_id TEXT NOT NULL UNIQUE,
        created_at_ms BIGINT NOT NULL,
        PRIMARY KEY (account_id, user_name)
    );
    CREATE TABLE access_keys (
        access_key_id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        user_name TEXT,
        wrapped_secret BLOB NOT NULL,
        status TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        event_time_ms BIGINT NOT NULL,
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        event_source TEXT NOT NULL,
        event_name TEXT NOT NULL,
        request_id TEXT NOT NULL,
        access_key_id TEXT,
        read_only BOOLEAN NOT NULL,
        management BOOLEAN NOT NULL,
        record_json TEXT NOT NULL
    );
    CREATE INDEX events_by_account_time ON events (account_id, region, event_time_ms);",
    ),
    (
        2,
        "CREATE TABLE kms_keys (
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        key_id TEXT NOT NULL,
        record_json TEXT NOT NULL,
        PRIMARY KEY (account_id, region, key_id)
    );
    CREATE TABLE kms_key_materials (
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        key_id TEXT NOT NULL,
        material_id TEXT NOT NULL,
        wrapped_material BLOB NOT NULL,
        created_at_ms BIGINT NOT NULL,
        rotation_type TEXT,
        PRIMARY KEY (account_id, region, key_id, material_id)
    );
    CREATE TABLE kms_aliases (
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        alias_name TEXT NOT NULL,
        target_key_id TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        PRIMARY KEY (account_id, region, alias_name)
    );",
    ),
    (
        3,
        "CREATE TABLE s3_buckets (
        name TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        record_json TEXT NOT NULL
    );
    CREATE INDEX s3_buckets_by_account ON s3_buckets (account_id, name);
    CREATE TABLE s3_objects (
        bucket TEXT NOT NULL,
        object_key TEXT NOT NULL,
        size BIGINT NOT NULL,
        etag TEXT NOT NULL,
        modified_at_ms BIGINT NOT NULL,
        record_json TEXT NOT NULL,
        PRIMARY KEY (bucket, object_key)
    );",
    ),
    (
        4,
        "CREATE TABLE s3_uploads (
        upload_id TEXT PRIMARY KEY,
        bucket TEXT NOT NULL,
        object_key TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        record_json TEXT NOT NULL
    );
    CREATE INDEX s3_uploads_by_bucket ON s3_uploads (bucket, object_key, created_at_ms);
    CREATE TABLE s3_parts (
        upload_id TEXT NOT NULL,
        part_number BIGINT NOT NULL,
        record_json TEXT NOT NULL,
        PRIMARY KEY (upload_id, part_number)
    );",
    ),
    (
        5,
        "CREATE TABLE iam_policies (
        account_id TEXT NOT NULL,
        owner_type TEXT NOT NULL,
        owner_name TEXT NOT NULL,
        policy_name TEXT NOT NULL,
        document TEXT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        PRIMARY KEY (account_id, owner_type, owner_name, policy_name)
    );",
    ),
    (
        6,
        "CREATE TABLE iam_roles (
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        role_name TEXT NOT NULL,
        role_id TEXT NOT NULL UNIQUE,
        trust_policy TEXT NOT NULL,
        description TEXT,
        max_session_duration_s BIGINT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        PRIMARY KEY (account_id, role_name)
    );
    CREATE TABLE iam_managed_policies (
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        policy_name TEXT NOT NULL,
        policy_id TEXT NOT NULL UNIQUE,
        document TEXT NOT NULL,
        description TEXT,
        created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        PRIMARY KEY (account_id, policy_name)
    );
    CREATE TABLE iam_attachments (
        account_id TEXT NOT NULL,
        owner_type TEXT NOT NULL,
        owner_name TEXT NOT NULL,
        policy_name TEXT NOT NULL,
        PRIMARY KEY (account_id, owner_type, owner_name, policy_name)
    );
    CREATE INDEX iam_attachments_by_policy ON iam_attachments (account_id, policy_name);",
    ),
    (
        7,
        "CREATE TABLE kms_grants (
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        key_id TEXT NOT NULL,
        grant_id TEXT NOT NULL,
        retiring_principal TEXT,
        created_at_ms BIGINT NOT NULL,
        record_json TEXT NOT NULL,
        PRIMARY KEY (account_id, region, key_id, grant_id)
    );
    CREATE INDEX kms_grants_by_retiring_principal ON kms_grants (retiring_principal);",
    ),
    (
        8,
        "CREATE TABLE cloudtrail_trails (
        account_id TEXT NOT NULL,
        home_region TEXT NOT NULL,
        name TEXT NOT NULL,
        record_json TEXT NOT NULL,
        PRIMARY KEY (account_id, home_region, name)
    );
    CREATE TABLE cloudtrail_cursors (
        trail_arn TEXT PRIMARY KEY,
        delivered_seq BIGINT NOT NULL,
        pending_json TEXT
    );
    ALTER TABLE events ADD COLUMN username TEXT;
    CREATE TABLE event_resources (
        seq BIGINT NOT NULL,
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        resource_name TEXT NOT NULL,
        event_time_ms BIGINT NOT NULL
    );
    CREATE INDEX events_by_account_seq ON events (account_id, seq);
    CREATE INDEX events_by_name ON events (account_id, region, event_name, event_time_ms);
    CREATE INDEX events_by_source ON events (account_id, region, event_source, event_time_ms);
    CREATE INDEX events_by_username ON events (account_id, region, username, event_time_ms);
    CREATE INDEX events_by_access_key ON events (access_key_id, event_time_ms);
    CREATE INDEX event_resources_by_type
        ON event_resources (account_id, region, resource_type, event_time_ms, seq);
    CREATE INDEX event_resources_by_name
        ON event_resources (account_id, region, resource_name, event_time_ms, seq);
    CREATE INDEX event_resources_by_seq ON event_resources (seq);",
    ),
    (
        9,
        "CREATE TABLE cloudtrail_signing_keys (
        region TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        valid_from_ms BIGINT NOT NULL,
        valid_until_ms BIGINT NOT NULL,
        public_der BLOB NOT NULL,
        wrapped_private BLOB NOT NULL,
        PRIMARY KEY (region, fingerprint)
    );
    CREATE TABLE cloudtrail_log_files (
        trail_arn TEXT NOT NULL,
        region TEXT NOT NULL,
        s3_key TEXT NOT NULL,
        delivered_ms BIGINT NOT NULL,
        digested BOOLEAN NOT NULL DEFAULT 0,
        record_json TEXT NOT NULL,
        PRIMARY KEY (trail_arn, s3_key)
    );
    CREATE INDEX cloudtrail_log_files_undigested
        ON cloudtrail_log_files (trail_arn, region, digested, delivered_ms);
    CREATE TABLE cloudtrail_digest_chains (
        trail_arn TEXT NOT NULL,
        region TEXT NOT NULL,
        state_json TEXT NOT NULL,
        PRIMARY KEY (trail_arn, region)
    );",
    ),
    (
        10,
        "CREATE TABLE kms_usage (
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        hour_ms BIGINT NOT NULL,
        key_arn TEXT NOT NULL,
        operation TEXT NOT NULL,
        source TEXT NOT NULL,
        requests BIGINT NOT NULL,
        PRIMARY KEY (hour_ms, account_id, region, key_arn, operation, source)
    );",
    ),
    (
        11,
        // Small object bodies (sealed segments, never plaintext) live in their row, so a small
        // PUT is durable with the group commit of its metadata instead of fsyncs of its own.
        "ALTER TABLE s3_objects ADD COLUMN inline_body BLOB;",
    ),
    (
        12,
        // Events become durable in the event log (segment files) and are indexed into `events`
        // behind it; this is how far the tables hold the log, committed with each index batch,
        // so a restart knows which records to index again.
        "CREATE TABLE event_log_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        indexed_through BIGINT NOT NULL
    );
    INSERT INTO event_log_state (id, indexed_through) SELECT 1, COALESCE(MAX(seq), 0) FROM events;",
    ),
    (
        13,
        // Events are found through postings (one row per transaction and attribute value, see
        // `event_index`) instead of an index entry per event and attribute. Existing events get
        // a posting each.
        "CREATE TABLE event_postings (
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        attribute TEXT NOT NULL,
        value TEXT NOT NULL,
        max_time_ms BIGINT NOT NULL,
        last_seq BIGINT NOT NULL,
        min_time_ms BIGINT NOT NULL,
        seqs TEXT NOT NULL,
        PRIMARY KEY (account_id, region, attribute, value, max_time_ms, last_seq)
    ) WITHOUT ROWID;
    CREATE TABLE event_account_runs (
        account_id TEXT NOT NULL,
        last_seq BIGINT NOT NULL,
        first_seq BIGINT NOT NULL,
        max_time_ms BIGINT NOT NULL,
        PRIMARY KEY (account_id, last_seq)
    ) WITHOUT ROWID;
    CREATE INDEX event_postings_by_last_seq ON event_postings (last_seq);
    CREATE INDEX event_account_runs_by_last_seq ON event_account_runs (last_seq);
    INSERT INTO event_account_runs (account_id, last_seq, first_seq, max_time_ms)
        SELECT account_id, seq, seq, event_time_ms FROM events;
    INSERT OR IGNORE INTO event_postings
        SELECT account_id, region, '', '', event_time_ms, seq, event_time_ms, CAST(seq AS TEXT)
        FROM events WHERE management
        UNION ALL
        SELECT account_id, region, 'EventName', event_name, event_time_ms, seq, event_time_ms,
            CAST(seq AS TEXT)
        FROM events WHERE management
        UNION ALL
        SELECT account_id, region, 'EventSource', event_source, event_time_ms, seq, event_time_ms,
            CAST(seq AS TEXT)
        FROM events WHERE management
        UNION ALL
        SELECT account_id, region, 'ReadOnly', CASE WHEN read_only THEN 'true' ELSE 'false' END,
            event_time_ms, seq, event_time_ms, CAST(seq AS TEXT)
        FROM events WHERE management
        UNION ALL
        SELECT account_id, region, 'Username', username, event_time_ms, seq, event_time_ms,
            CAST(seq AS TEXT)
        FROM events WHERE management AND username IS NOT NULL
        UNION ALL
        SELECT account_id, region, 'AccessKeyId', access_key_id, event_time_ms, seq,
            event_time_ms, CAST(seq AS TEXT)
        FROM events WHERE management AND access_key_id IS NOT NULL
        UNION ALL
        SELECT account_id, region, 'ResourceType', resource_type, event_time_ms, seq,
            event_time_ms, CAST(seq AS TEXT)
        FROM event_resources
        UNION ALL
        SELECT account_id, region, 'ResourceName', resource_name, event_time_ms, seq,
            event_time_ms, CAST(seq AS TEXT)
        FROM event_resources;
    DROP TABLE event_resources;
    DROP INDEX events_by_account_time;
    DROP INDEX events_by_account_seq;
    DROP INDEX events_by_name;
    DROP INDEX events_by_source;
    DROP INDEX events_by_username;
    DROP INDEX events_by_access_key;",
    ),
    (
        14,
        "CREATE TABLE kms_custom_key_stores (
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        custom_key_store_id TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        record_json TEXT NOT NULL,
        PRIMARY KEY (account_id, region, custom_key_store_id)
    );",
    ),
    (
        // Events' JSON documents stay in the event log: a row names its record's segment and
        // offset and keeps `record_json` empty. Rows indexed before keep theirs (NULL here).
        15,
        "ALTER TABLE events ADD COLUMN log_segment BIGINT;
    ALTER TABLE events ADD COLUMN log_offset BIGINT;",
    ),
    (
        // Events' fields move from a row per event to a block per indexing step (see
        // `event_blocks`); `convert_event_rows` moves the stored rows after this runs.
        16,
        "CREATE TABLE event_blocks (
        first_seq INTEGER PRIMARY KEY,
        last_seq BIGINT NOT NULL,
        max_time_ms BIGINT NOT NULL,
        event_count BIGINT NOT NULL,
        entries BLOB NOT NULL
    );
    CREATE TABLE event_ids (
        event_id TEXT PRIMARY KEY,
        seq BIGINT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX event_ids_by_seq ON event_ids (seq);",
    ),
];

/// What a migration does besides its SQL, run in its transaction after it.
pub(crate) fn after_sql(version: i64, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    match version {
        16 => convert_event_rows(tx),
        _ => Ok(()),
    }
}

/// How many of the old rows go into one block at most, and the widest time span of a block.
const CONVERTED_BLOCK_EVENTS: usize = 256;
const CONVERTED_BLOCK_SPAN_MS: i64 = 60_000;

/// Moves the `events` table's rows into blocks, in journal order, and drops the table.
fn convert_event_rows(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare(
        "SELECT seq, event_id, event_time_ms, account_id, region, event_source, event_name,
            request_id, access_key_id, read_only, management, record_json, username,
            log_segment, log_offset
         FROM events ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut block: Vec<(EventRow, Option<LogPosition>)> = Vec::new();
    let mut converted = 0usize;
    let mut store_block = |block: &mut Vec<(EventRow, Option<LogPosition>)>| {
        converted += block.len();
        let stored = event_blocks::insert(tx, block.iter().map(|(e, at)| (e, *at)));
        block.clear();
        stored
    };
    while let Some(r) = rows.next()? {
        let logged_at = match (r.get::<_, Option<i64>>(13)?, r.get::<_, Option<i64>>(14)?) {
            (Some(segment), Some(offset)) => Some(LogPosition { segment, offset }),
            _ => None,
        };
        let event = EventRow {
            seq: r.get(0)?,
            event_id: r.get(1)?,
            event_time_ms: r.get(2)?,
            account_id: r.get(3)?,
            region: r.get(4)?,
            event_source: r.get::<_, String>(5)?.into(),
            event_name: r.get::<_, String>(6)?.into(),
            request_id: r.get(7)?,
            access_key_id: r.get(8)?,
            read_only: r.get(9)?,
            management: r.get(10)?,
            record_json: r.get(11)?,
            username: r.get(12)?,
            resources: Vec::new(),
            kms_usage: None,
        };
        // Retention deletes whole blocks: a block spanning days would keep its oldest events
        // until its newest are old enough.
        let too_long = block.first().is_some_and(|(first, _)| {
            (event.event_time_ms - first.event_time_ms).abs() > CONVERTED_BLOCK_SPAN_MS
        });
        if block.len() == CONVERTED_BLOCK_EVENTS || too_long {
            store_block(&mut block)?;
        }
        block.push((event, logged_at));
    }
    if !block.is_empty() {
        store_block(&mut block)?;
    }
    drop(rows);
    drop(stmt);
    tx.execute_batch("DROP TABLE events;")?;
    if converted > 0 {
        tracing::info!(events = converted, "moved the stored events into blocks");
    }
    Ok(())
}
