//! The embedded backend: bundled SQLite in WAL mode, and the event log beside it.
//!
//! One writer thread owns the only write connection. Requests queue on a channel; the writer
//! takes everything that is waiting, applies it in one transaction (each request in its own
//! savepoint, so one failure does not undo the others), commits with one fsync, then answers
//! every request. Under load, many concurrent requests therefore share one fsync (group commit),
//! which is what lifts the ~300 writes/s of one fsync per request. Reads use a small pool of
//! read-only connections on the blocking thread pool and never wait for the writer.
//!
//! Events take a shorter way to disk: the journal thread appends them to the event log
//! ([`crate::eventlog`]) with one `fdatasync` per group and answers; it then hands them to the
//! writer, which indexes them into the tables in its next transaction. Every read of events
//! first waits until the tables hold everything acknowledged so far, so nobody can tell the
//! difference but the latency. Only the process holding the log's lock (the server, or a
//! command run while no server is) appends events; another process opening the same store reads.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use async_trait::async_trait;
use foldhash::HashMap;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::event_blocks::{self, StoredEvent};
use crate::event_index::{self, PostingTally};
use crate::eventlog::{EventLog, LogPosition, SegmentReader};
use crate::group_queue::{GroupPolicy, GroupReceiver, GroupSender, Waits, group_queue};
use crate::migrations::MIGRATIONS;
use crate::{
    AccessKeyRecord, AccountRecord, AliasRow, BucketRow, CustomKeyStoreRow, DeleteBucketOutcome,
    EventLookup, EventRow, GrantRow, KeyMaterialRow, KmsKeyChange, KmsKeyRow, KmsUsageKey,
    KmsUsageRow, LogFileRow, ManagedPolicyRow, ObjectRow, PartRow, PolicyDocumentRow, PolicyOwner,
    RoleRecord, SigningKeyRow, Store, StoreError, StoreResult, TrailCursor, TrailRow, UploadRow,
    UserRecord,
};

/// Upper bound of requests folded into one transaction; keeps commit latency bounded.
const MAX_BATCH: usize = 4096;
const READ_POOL_SIZE: usize = 4;
/// Upper bound of events made durable by one `fdatasync` of the event log.
const MAX_LOG_GROUP: usize = 4096;
/// An `fdatasync` costs ~50 µs of CPU here whatever it carries: while appends come from many
/// callers at once, the log waits up to 500 µs for 32 events before syncing.
const LOG_GROUP: GroupPolicy = GroupPolicy {
    events: 32,
    wait: std::time::Duration::from_micros(500),
    waits: Waits::WhileConcurrent,
    max_events: MAX_LOG_GROUP,
    max_jobs: usize::MAX,
};
/// Recovered events are indexed in transactions of this many.
const RECOVERY_CHUNK: usize = 10_000;
/// Indexing is cheaper per event in bigger transactions (each B-tree page is written once for
/// many events): while nothing else is waiting, the writer gathers up to 1024 events for at
/// most 20 ms. Any other write, or a reader's flush (see `events_indexed`), ends the wait.
const WRITE_GROUP: GroupPolicy = GroupPolicy {
    events: 1024,
    wait: std::time::Duration::from_millis(20),
    waits: Waits::Always,
    max_events: usize::MAX,
    max_jobs: MAX_BATCH,
};
/// How long a process that does not own the event log waits for its owner to index it.
const OWNER_INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Index-only transactions skip the fsync (the log holds their events); one in this interval
/// syncs, so the log's segments can be released behind it.
const INDEX_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// The log may run at most this many events ahead of the tables: beyond it, appends wait for
/// the writer, so memory stays bounded if indexing falls behind (and readers, who wait for the
/// tables, never wait for more than ~this much indexing).
const MAX_UNINDEXED_EVENTS: i64 = 8192;

enum WriteOp {
    EnsureAccount(AccountRecord),
    CreateUser(UserRecord),
    InsertAccessKey(AccessKeyRecord),
    DeleteAccessKey(String),
    SetAccessKeyStatus {
        access_key_id: String,
        status: String,
    },
    DeleteUser {
        account_id: String,
        user_name: String,
    },
    PutPolicyDocument(PolicyDocumentRow),
    DeletePolicyDocument {
        account_id: String,
        owner: PolicyOwner,
        owner_name: String,
        policy_name: String,
    },
    CreateRole(RoleRecord),
    DeleteRole {
        account_id: String,
        role_name: String,
    },
    CreateManagedPolicy(ManagedPolicyRow),
    DeleteManagedPolicy {
        account_id: String,
        policy_name: String,
    },
    AttachPolicy(Attachment),
    DetachPolicy(Attachment),
    /// Events already durable in the event log, numbered, to be put into the tables, with where
    /// the log holds each (their JSON documents stay there: the rows point to them).
    IndexEvents {
        events: Vec<EventRow>,
        positions: Vec<LogPosition>,
    },
    /// Nothing to write: a reader waits for the index, so the writer commits what it has now.
    Flush,
    CreateBucket(BucketRow),
    UpdateBucket {
        name: String,
        record_json: String,
    },
    ReplaceObjectRecord {
        bucket: String,
        key: String,
        expected_json: String,
        record_json: String,
    },
    CreateUpload(UploadRow),
    PutPart(PartRow),
    FinishUpload {
        upload_id: String,
        object: Option<ObjectRow>,
    },
    DeleteBucket(String),
    PutObject(ObjectRow),
    DeleteObject {
        bucket: String,
        key: String,
    },
    PutKmsKey(KmsKeyRow, Option<KeyMaterialRow>),
    PutKmsKeyDroppingMaterials(KmsKeyRow),
    /// The keys of a multi-Region key, changed together.
    ChangeKmsKeys(Vec<KmsKeyChange>),
    DeleteKmsKey {
        account_id: String,
        region: String,
        key_id: String,
    },
    PutTrail(TrailRow),
    DeleteTrail {
        account_id: String,
        home_region: String,
        name: String,
        trail_arn: String,
    },
    SetTrailCursor {
        trail_arn: String,
        cursor: TrailCursor,
    },
    CompleteDelivery {
        trail_arn: String,
        cursor: TrailCursor,
        files: Vec<LogFileRow>,
    },
    PutDigestChain {
        trail_arn: String,
        region: String,
        state_json: String,
    },
    CompleteDigest {
        trail_arn: String,
        region: String,
        state_json: String,
        digested_keys: Vec<String>,
    },
    PutSigningKey(SigningKeyRow),
    DeleteEventsBefore {
        cutoff_ms: i64,
        delivered_up_to: i64,
    },
    PutCustomKeyStore(CustomKeyStoreRow),
    DeleteCustomKeyStore {
        account_id: String,
        region: String,
        custom_key_store_id: String,
    },
    PutGrant(GrantRow),
    DeleteGrant {
        account_id: String,
        region: String,
        key_id: String,
        grant_id: String,
    },
    CreateAlias(AliasRow),
    UpdateAlias(AliasRow),
    DeleteAlias {
        account_id: String,
        region: String,
        alias_name: String,
    },
}

struct Attachment {
    account_id: String,
    owner: PolicyOwner,
    owner_name: String,
    policy_name: String,
}

impl Attachment {
    fn new(account_id: &str, owner: PolicyOwner, owner_name: &str, policy_name: &str) -> Self {
        Self {
            account_id: account_id.to_string(),
            owner,
            owner_name: owner_name.to_string(),
            policy_name: policy_name.to_string(),
        }
    }
}

const GRANT_COLUMNS: &str =
    "account_id, region, key_id, grant_id, retiring_principal, created_at_ms, record_json";

fn grant_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GrantRow> {
    Ok(GrantRow {
        account_id: r.get(0)?,
        region: r.get(1)?,
        key_id: r.get(2)?,
        grant_id: r.get(3)?,
        retiring_principal: r.get(4)?,
        created_at_ms: r.get(5)?,
        record_json: r.get(6)?,
    })
}

const ROLE_COLUMNS: &str = "account_id, role_name, role_id, trust_policy, description, \
     max_session_duration_s, created_at_ms";

fn role_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RoleRecord> {
    Ok(RoleRecord {
        account_id: r.get(0)?,
        role_name: r.get(1)?,
        role_id: r.get(2)?,
        trust_policy: r.get(3)?,
        description: r.get(4)?,
        max_session_duration_s: r.get(5)?,
        created_at_ms: r.get(6)?,
    })
}

/// Managed-policy columns of `p`, with the attachment count computed alongside.
const MANAGED_POLICY_COLUMNS: &str = "p.account_id, p.policy_name, p.policy_id, p.document, \
     p.description, p.created_at_ms, p.updated_at_ms, \
     (SELECT COUNT(*) FROM iam_attachments a \
      WHERE a.account_id = p.account_id AND a.policy_name = p.policy_name)";

fn managed_policy_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ManagedPolicyRow> {
    Ok(ManagedPolicyRow {
        account_id: r.get(0)?,
        policy_name: r.get(1)?,
        policy_id: r.get(2)?,
        document: r.get(3)?,
        description: r.get(4)?,
        created_at_ms: r.get(5)?,
        updated_at_ms: r.get(6)?,
        attachment_count: r.get(7)?,
    })
}

/// Fails with [`StoreError::InUse`] when a user or role still has inline or attached policies.
fn ensure_no_policies(
    conn: &Connection,
    account_id: &str,
    owner: PolicyOwner,
    owner_name: &str,
) -> StoreResult<()> {
    let (inline, attached): (i64, i64) = conn.query_row(
        "SELECT
           (SELECT COUNT(*) FROM iam_policies
            WHERE account_id = ?1 AND owner_type = ?2 AND owner_name = ?3),
           (SELECT COUNT(*) FROM iam_attachments
            WHERE account_id = ?1 AND owner_type = ?2 AND owner_name = ?3)",
        params![account_id, owner.as_str(), owner_name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let what = || format!("{} {owner_name}", owner.as_str());
    if inline > 0 {
        return Err(StoreError::InUse {
            what: what(),
            reason: "it still has policies".into(),
        });
    }
    if attached > 0 {
        return Err(StoreError::InUse {
            what: what(),
            reason: "it still has attached policies".into(),
        });
    }
    Ok(())
}

enum WriteOutcome {
    Done,
    Count(usize),
    Deleted(bool),
    Bucket(DeleteBucketOutcome),
    Object(Option<ObjectRow>),
    Part(Option<PartRow>),
}

struct WriteJob {
    op: WriteOp,
    reply: oneshot::Sender<StoreResult<WriteOutcome>>,
}

pub struct SqliteStore {
    path: PathBuf,
    /// The event log's directory, where events' JSON documents are read from.
    log_dir: Arc<Path>,
    /// The event log's appending end; `None` in a process that does not own the log.
    journal: Mutex<Option<GroupSender<AppendJob>>>,
    journal_thread: Mutex<Option<JoinHandle<()>>>,
    /// Present when this process owns the log.
    progress: Option<Arc<IndexProgress>>,
    /// Held while this process owns the log (an exclusive lock on the file).
    _log_lock: Option<File>,
    writer: Mutex<Option<GroupSender<WriteJob>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

impl GroupSender<WriteJob> {
    /// Sends a write to the writer: events to index are gathered into bigger transactions, any
    /// other write is urgent (its caller waits for it).
    fn send_write(&self, job: WriteJob) -> Result<(), crate::group_queue::Disconnected> {
        match &job.op {
            WriteOp::IndexEvents { events, .. } => {
                let count = events.len();
                self.send(job, count, false)
            }
            _ => self.send(job, 0, true),
        }
    }
}

struct AppendJob {
    events: Vec<EventRow>,
    reply: crate::append_answers::AppendReply,
    /// The delivery task of the appending thread, if it has one.
    delivery: Option<Arc<crate::append_answers::Delivery>>,
}

/// How far the event log is durable, and how far the tables hold it.
struct IndexProgress {
    /// The last seq appended, made durable and acknowledged.
    durable: AtomicI64,
    indexed: tokio::sync::watch::Sender<Indexed>,
    /// Every event up to this seq is in the tables by a transaction that was fsynced.
    synced: AtomicI64,
    /// Every event up to this seq is gone from the tables (pruned) by a transaction that was
    /// fsynced: no row points into the log up to here.
    pruned: AtomicI64,
}

#[derive(Debug, Clone, Copy)]
struct Indexed {
    /// Every event up to this seq is in the tables.
    through: i64,
    /// Indexing stopped at an error: the rest waits in the log for a restart.
    failed: bool,
}

impl IndexProgress {
    fn new(through: i64, pruned: i64) -> Self {
        Self {
            durable: AtomicI64::new(through),
            synced: AtomicI64::new(through),
            pruned: AtomicI64::new(pruned),
            indexed: tokio::sync::watch::Sender::new(Indexed {
                through,
                failed: false,
            }),
        }
    }

    /// How far the log may forget its records: the tables neither need them to be indexed
    /// again nor point to their documents.
    fn releasable(&self) -> i64 {
        self.synced
            .load(Ordering::Acquire)
            .min(self.pruned.load(Ordering::Acquire))
    }
}

/// The last seq up to which the event blocks hold no event, of those up to `indexed_through`
/// (all of them indexed at some point): retention prunes events oldest seq first.
fn pruned_through(conn: &Connection, indexed_through: i64) -> StoreResult<i64> {
    let oldest = event_blocks::first_seq(conn)?;
    Ok(oldest.map_or(indexed_through, |seq| (seq - 1).min(indexed_through)))
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open_writer(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    // Takes effect only when the database is created: bigger pages mean fewer B-tree pages
    // (and WAL frames) per committed batch of ~1 KB event records.
    conn.pragma_update(None, "page_size", 16384)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL makes every commit fsync the WAL: an acknowledged write survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The checkpointer thread copies the WAL into the database in the background, so the
    // requests waiting on this thread are not stalled by it. The writer still checkpoints every
    // 1024 pages: only a checkpoint between two of its transactions lets the WAL start over
    // (and by then the background has copied nearly everything, so it is quick).
    conn.pragma_update(None, "wal_autocheckpoint", 1024)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    // The writer's page cache (SQLite's default is 2 MiB): indexing touches the right edge of
    // ten B-trees per event, and each page it must fetch again from the WAL costs a lookup.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

const WRITER_CACHE_KIB: i64 = 32 * 1024;

fn open_reader(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            applied_at_ms BIGINT NOT NULL
        )",
    )?;
    for (version, sql) in MIGRATIONS {
        let tx = conn.transaction()?;
        let applied: Option<i64> = tx
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                params![version],
                |r| r.get(0),
            )
            .optional()?;
        if applied.is_none() {
            tx.execute_batch(sql)?;
            crate::migrations::after_sql(*version, &tx)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, ?2)",
                params![version, now_ms()],
            )?;
            tracing::info!(version, "applied schema migration");
        }
        tx.commit()?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies migrations and starts the
    /// writer thread.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Database(e.to_string()))?;
        }
        let mut conn = open_writer(path)?;
        migrate(&mut conn)?;
        let (tx, rx) = group_queue::<WriteJob>(WRITE_GROUP);
        let log_dir = path.with_extension("events");
        let log_lock = lock_event_log(&log_dir)?;
        let mut journal = None;
        let mut progress = None;
        if log_lock.is_some() {
            let stored_through: i64 = conn.query_row(
                "SELECT indexed_through FROM event_log_state WHERE id = 1",
                [],
                |r| r.get(0),
            )?;
            let recovered = EventLog::recover(&log_dir, stored_through)?;
            let mut log = recovered.log;
            let through = index_recovered(
                &mut conn,
                recovered.rows,
                recovered.positions,
                stored_through,
            )?;
            let pruned = pruned_through(&conn, through)?;
            log.release_through(pruned);
            let shared = Arc::new(IndexProgress::new(through, pruned));
            let (append, appended) = group_queue::<AppendJob>(LOG_GROUP);
            let writer = tx.clone();
            let for_thread = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name("keytrail-event-log".into())
                .spawn(move || journal_loop(log, appended, writer, for_thread))
                .map_err(|e| StoreError::Database(e.to_string()))?;
            journal = Some((append, thread));
            progress = Some(shared);
        }
        let writer_progress = progress.clone();
        let thread = std::thread::Builder::new()
            .name("keytrail-store-writer".into())
            .spawn(move || writer_loop(conn, rx, writer_progress))
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let checkpoint_conn = Connection::open(path)?;
        checkpoint_conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let checkpointer = std::thread::Builder::new()
            .name("keytrail-store-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoint_conn, stopped))
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let (journal, journal_thread) = journal.unzip();
        Ok(Self {
            path: path.to_path_buf(),
            log_dir: Arc::from(log_dir),
            journal: Mutex::new(journal),
            journal_thread: Mutex::new(journal_thread),
            progress,
            _log_lock: log_lock,
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(Some((stop, checkpointer))),
            readers: Arc::new(Mutex::new(Vec::new())),
        })
    }

    async fn write(&self, op: WriteOp) -> StoreResult<WriteOutcome> {
        let (reply, rx) = oneshot::channel();
        {
            let guard = self.writer.lock().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            sender
                .send_write(WriteJob { op, reply })
                .map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits until the tables hold every event acknowledged before this call, so a read of
    /// events sees all of them.
    async fn events_indexed(&self) -> StoreResult<()> {
        let Some(progress) = &self.progress else {
            return self.owner_indexed().await;
        };
        let target = progress.durable.load(Ordering::Acquire);
        let mut indexed = progress.indexed.subscribe();
        if indexed.borrow().through < target {
            let (reply, _) = oneshot::channel();
            if let Ok(writer) = self.writer.lock()
                && let Some(writer) = writer.as_ref()
            {
                let _ = writer.send_write(WriteJob {
                    op: WriteOp::Flush,
                    reply,
                });
            }
        }
        let reached = indexed
            .wait_for(|i| i.through >= target || i.failed)
            .await
            .map_err(|_| StoreError::Closed)?;
        if reached.through >= target {
            Ok(())
        } else {
            Err(StoreError::Database(
                "indexing the event log failed; the events are kept in the log and indexed again on restart"
                    .into(),
            ))
        }
    }

    /// In a process that does not own the event log: waits until the owner has indexed every
    /// event its log held when this call began (the owner indexes within milliseconds; a
    /// stuck owner is waited for [`OWNER_INDEX_WAIT`] at most, then what is indexed is read).
    async fn owner_indexed(&self) -> StoreResult<()> {
        let dir = Arc::clone(&self.log_dir);
        let target = tokio::task::spawn_blocking(move || crate::eventlog::last_seq(&dir))
            .await
            .map_err(|e| StoreError::Database(e.to_string()))??;
        let deadline = Instant::now() + OWNER_INDEX_WAIT;
        loop {
            let through: i64 = self
                .read(|c| {
                    Ok(c.query_row(
                        "SELECT indexed_through FROM event_log_state WHERE id = 1",
                        [],
                        |r| r.get(0),
                    )?)
                })
                .await?;
            if through >= target {
                return Ok(());
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    indexed = through,
                    logged = target,
                    "the process owning the event log has not indexed it yet; reading what is indexed"
                );
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().ok().and_then(|mut pool| pool.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&path)?,
            };
            let result = f(&conn);
            if let Ok(mut pool) = readers.lock()
                && pool.len() < READ_POOL_SIZE
            {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Database(e.to_string()))?
    }
}

/// How often the WAL is copied into the database while the server runs.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Copies the WAL into the database in the background (PASSIVE: never waits for the writer or
/// readers); on stop, truncates the WAL once the writer has finished.
fn checkpoint_loop(conn: Connection, stop: mpsc::Receiver<()>) {
    loop {
        match stop.recv_timeout(CHECKPOINT_INTERVAL) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "final WAL checkpoint failed");
                }
                return;
            }
        }
    }
}

/// Takes the event log's lock in `dir` (created if missing): `Some` if this process now owns
/// the log, `None` if another process does.
fn lock_event_log(dir: &Path) -> StoreResult<Option<File>> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(e.to_string()))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Database(format!("{}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Database(format!(
            "locking {}: {e}",
            path.display()
        ))),
    }
}

/// Indexes the log's records the tables do not hold yet (those after `through`), before
/// anything else runs; returns how far the tables hold the log afterwards.
fn index_recovered(
    conn: &mut Connection,
    recovered: Vec<EventRow>,
    positions: Vec<LogPosition>,
    through: i64,
) -> StoreResult<i64> {
    let missing: Vec<(EventRow, LogPosition)> = recovered
        .into_iter()
        .zip(positions)
        .filter(|(r, _)| r.seq > through)
        .collect();
    if missing.is_empty() {
        return Ok(through);
    }
    tracing::info!(
        events = missing.len(),
        "indexing events that were durable in the event log but not yet in the tables"
    );
    let mut through = through;
    let mut rest = missing.into_iter().peekable();
    while rest.peek().is_some() {
        let (events, positions): (Vec<EventRow>, Vec<LogPosition>) =
            rest.by_ref().take(RECOVERY_CHUNK).unzip();
        let last = events.last().map_or(through, |r| r.seq);
        let op = WriteOp::IndexEvents { events, positions };
        let tx = conn.transaction()?;
        apply_op(&tx, &op)?;
        let mut tally = IndexTally::default();
        tally.count(&op);
        tally.write(&tx)?;
        tx.commit()?;
        through = last;
    }
    Ok(through)
}

/// Appends events to the log, one `fdatasync` per group of whatever is waiting, answers
/// their callers, then hands them to the writer to be indexed.
fn journal_loop(
    mut log: EventLog,
    mut appends: GroupReceiver<AppendJob>,
    writer: GroupSender<WriteJob>,
    progress: Arc<IndexProgress>,
) {
    while let Some(jobs) = appends.next_group() {
        let count = jobs.iter().map(|job| job.events.len()).sum();
        let mut rows: Vec<EventRow> = Vec::with_capacity(count);
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            rows.extend(job.events);
            replies.push((job.reply, job.delivery));
        }
        metrics::histogram!("keytrail_event_log_group_size").record(rows.len() as f64);
        let started = Instant::now();
        let appended = log.append(&mut rows);
        metrics::histogram!("keytrail_event_log_append_seconds")
            .record(started.elapsed().as_secs_f64());
        match appended {
            Ok(positions) => {
                if let Some(last) = rows.last() {
                    progress.durable.store(last.seq, Ordering::Release);
                }
                crate::append_answers::answer_all(replies, || Ok(()));
                if !rows.is_empty() {
                    // The tables point to the log for the documents: no need to carry them on.
                    for row in &mut rows {
                        row.record_json = String::new();
                    }
                    // Nobody waits on this answer: readers wait on `progress` instead.
                    let (reply, _) = oneshot::channel();
                    let job = WriteJob {
                        op: WriteOp::IndexEvents {
                            events: rows,
                            positions,
                        },
                        reply,
                    };
                    if writer.send_write(job).is_err() {
                        progress.indexed.send_modify(|i| i.failed = true);
                    }
                    wait_for_indexing(&progress);
                }
                log.release_through(progress.releasable());
            }
            Err(e) => {
                tracing::error!(error = %e, "appending to the event log failed");
                let failure = e.to_string();
                crate::append_answers::answer_all(replies, || {
                    Err(StoreError::Database(failure.clone()))
                });
            }
        }
    }
    tracing::debug!("event log stopped");
}

/// Holds the log back while it runs more than [`MAX_UNINDEXED_EVENTS`] ahead of the tables
/// (unless indexing has stopped: then the events wait in the log for a restart).
fn wait_for_indexing(progress: &IndexProgress) {
    let durable = progress.durable.load(Ordering::Acquire);
    loop {
        let indexed = *progress.indexed.borrow();
        if indexed.failed || durable - indexed.through <= MAX_UNINDEXED_EVENTS {
            return;
        }
        std::thread::sleep(std::time::Duration::from_micros(250));
    }
}

fn writer_loop(
    mut conn: Connection,
    mut writes: GroupReceiver<WriteJob>,
    progress: Option<Arc<IndexProgress>>,
) {
    let mut synchronous_full = true;
    let mut last_sync = Instant::now();
    while let Some(batch) = writes.next_group() {
        let index_only = batch
            .iter()
            .all(|j| matches!(j.op, WriteOp::IndexEvents { .. } | WriteOp::Flush));
        let full = !index_only || last_sync.elapsed() >= INDEX_SYNC_INTERVAL;
        if full != synchronous_full {
            let mode = if full { "FULL" } else { "NORMAL" };
            match conn.pragma_update(None, "synchronous", mode) {
                Ok(()) => synchronous_full = full,
                Err(e) => tracing::warn!(error = %e, mode, "could not switch synchronous mode"),
            }
        }
        let started = Instant::now();
        let outcomes = apply_batch(&mut conn, &batch);
        metrics::histogram!("keytrail_journal_commit_batch_size").record(batch.len() as f64);
        metrics::histogram!("keytrail_journal_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Some(progress) = &progress {
            note_indexed(progress, &batch, outcomes.as_ref().ok());
            if synchronous_full && outcomes.is_ok() {
                last_sync = started;
                let through = progress.indexed.borrow().through;
                progress.synced.store(through, Ordering::Release);
                if batch
                    .iter()
                    .any(|j| matches!(j.op, WriteOp::DeleteEventsBefore { .. }))
                {
                    match pruned_through(&conn, through) {
                        Ok(pruned) => progress.pruned.store(pruned, Ordering::Release),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not read how far events are pruned")
                        }
                    }
                }
            }
        }
        match outcomes {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed");
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::Database(e.to_string())));
                }
            }
        }
    }
    tracing::debug!("store writer stopped");
}

/// Moves the indexed mark past the event batches this commit stored; any that failed stops
/// indexing (their events stay in the log for the next start).
fn note_indexed(
    progress: &IndexProgress,
    batch: &[WriteJob],
    outcomes: Option<&Vec<StoreResult<WriteOutcome>>>,
) {
    let mut through = None;
    let mut failed = false;
    for (i, job) in batch.iter().enumerate() {
        let WriteOp::IndexEvents { events: rows, .. } = &job.op else {
            continue;
        };
        match outcomes.and_then(|o| o.get(i)) {
            Some(Ok(_)) if !failed => through = rows.last().map(|r| r.seq).or(through),
            Some(Err(e)) => {
                tracing::error!(error = %e, "indexing events from the event log failed");
                failed = true;
            }
            _ => failed = true,
        }
    }
    if through.is_some() || failed {
        progress.indexed.send_modify(|i| {
            if let Some(t) = through {
                i.through = i.through.max(t);
            }
            i.failed |= failed;
        });
    }
}

/// Applies every job in one transaction. The outer error means the commit itself failed and
/// nothing was written; inner errors belong to single jobs.
///
/// Jobs almost never fail, so the batch first runs without savepoints (they cost two
/// statements per job); if one job fails, the transaction is rolled back and the batch is
/// applied again with a savepoint around each job, so the failure does not undo its neighbours.
fn apply_batch(
    conn: &mut Connection,
    batch: &[WriteJob],
) -> Result<Vec<StoreResult<WriteOutcome>>, rusqlite::Error> {
    {
        let tx = conn.transaction()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for job in batch {
            match apply_op(&tx, &job.op) {
                Ok(outcome) => outcomes.push(Ok(outcome)),
                Err(_) => break,
            }
        }
        if outcomes.len() == batch.len() {
            let mut tally = IndexTally::default();
            for job in batch {
                tally.count(&job.op);
            }
            tally.write(&tx)?;
            tx.commit()?;
            return Ok(outcomes);
        }
        // Dropping `tx` rolls the partial batch back.
    }
    let mut tx = conn.transaction()?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut tally = IndexTally::default();
    for job in batch {
        let mut sp = tx.savepoint()?;
        let outcome = apply_op(&sp, &job.op);
        if outcome.is_ok() {
            sp.commit()?;
            tally.count(&job.op);
        } else {
            sp.rollback()?;
        }
        outcomes.push(outcome);
    }
    tally.write(&tx)?;
    tx.commit()?;
    Ok(outcomes)
}

/// What a transaction's indexed events add besides their rows: their postings (see
/// `event_index`), and the KMS requests they add to the hourly `kms_usage` rollup, summed so
/// that each distinct (hour, account, region, key, operation, source) is upserted once per
/// commit rather than once per event.
#[derive(Default)]
struct IndexTally {
    /// By hour, then by the row's text columns (see `event_index::join_key`).
    usage: HashMap<i64, HashMap<String, UsageCount>>,
    scratch: String,
    postings: PostingTally,
}

struct UsageCount {
    hour_ms: i64,
    account_id: String,
    region: String,
    key: KmsUsageKey,
    requests: i64,
}

impl IndexTally {
    fn count(&mut self, op: &WriteOp) {
        let WriteOp::IndexEvents { events, .. } = op else {
            return;
        };
        self.postings.add(events);
        for e in events {
            let Some(usage) = &e.kms_usage else {
                continue;
            };
            let hour_ms = e.event_time_ms - e.event_time_ms.rem_euclid(3_600_000);
            event_index::join_key(
                &mut self.scratch,
                [
                    e.account_id.as_str(),
                    &e.region,
                    &usage.key_arn,
                    &usage.operation,
                    &usage.source,
                ],
            );
            let in_hour = self.usage.entry(hour_ms).or_default();
            match in_hour.get_mut(self.scratch.as_str()) {
                Some(count) => count.requests += 1,
                None => {
                    in_hour.insert(
                        self.scratch.clone(),
                        UsageCount {
                            hour_ms,
                            account_id: e.account_id.clone(),
                            region: e.region.clone(),
                            key: usage.clone(),
                            requests: 1,
                        },
                    );
                }
            }
        }
    }

    fn write(self, conn: &Connection) -> rusqlite::Result<()> {
        self.postings.write(conn)?;
        if self.usage.is_empty() {
            return Ok(());
        }
        let mut stmt = conn.prepare_cached(
            "INSERT INTO kms_usage
             (account_id, region, hour_ms, key_arn, operation, source, requests)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (hour_ms, account_id, region, key_arn, operation, source)
             DO UPDATE SET requests = requests + excluded.requests",
        )?;
        for count in self.usage.into_values().flat_map(HashMap::into_values) {
            stmt.execute(params![
                count.account_id,
                count.region,
                count.hour_ms,
                count.key.key_arn,
                count.key.operation,
                count.key.source,
                count.requests
            ])?;
        }
        Ok(())
    }
}

fn apply_op(conn: &Connection, op: &WriteOp) -> StoreResult<WriteOutcome> {
    match op {
        WriteOp::EnsureAccount(a) => {
            conn.execute(
                "INSERT INTO accounts (account_id, created_at_ms) VALUES (?1, ?2)
                 ON CONFLICT (account_id) DO NOTHING",
                params![a.account_id, a.created_at_ms],
            )?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::CreateUser(u) => {
            conn.execute(
                "INSERT INTO iam_users (account_id, user_name, user_id, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![u.account_id, u.user_name, u.user_id, u.created_at_ms],
            )
            .map_err(|e| match StoreError::from(e) {
                StoreError::AlreadyExists { .. } => StoreError::AlreadyExists {
                    what: format!("user {}", u.user_name),
                },
                other => other,
            })?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::InsertAccessKey(k) => {
            conn.execute(
                "INSERT INTO access_keys
                 (access_key_id, account_id, user_name, wrapped_secret, status, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    k.access_key_id,
                    k.account_id,
                    k.user_name,
                    k.wrapped_secret,
                    k.status,
                    k.created_at_ms
                ],
            )
            .map_err(|e| match StoreError::from(e) {
                StoreError::AlreadyExists { .. } => StoreError::AlreadyExists {
                    what: format!("access key {}", k.access_key_id),
                },
                other => other,
            })?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::SetAccessKeyStatus {
            access_key_id,
            status,
        } => {
            let n = conn.execute(
                "UPDATE access_keys SET status = ?2 WHERE access_key_id = ?1",
                params![access_key_id, status],
            )?;
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::DeleteUser {
            account_id,
            user_name,
        } => {
            let what = || format!("user {user_name}");
            let keys: i64 = conn.query_row(
                "SELECT COUNT(*) FROM access_keys WHERE account_id = ?1 AND user_name = ?2",
                params![account_id, user_name],
                |r| r.get(0),
            )?;
            if keys > 0 {
                return Err(StoreError::InUse {
                    what: what(),
                    reason: "it still has access keys".into(),
                });
            }
            ensure_no_policies(conn, account_id, PolicyOwner::User, user_name)?;
            let n = conn.execute(
                "DELETE FROM iam_users WHERE account_id = ?1 AND user_name = ?2",
                params![account_id, user_name],
            )?;
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::PutPolicyDocument(p) => {
            conn.execute(
                "INSERT INTO iam_policies
                 (account_id, owner_type, owner_name, policy_name, document, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (account_id, owner_type, owner_name, policy_name)
                 DO UPDATE SET document = excluded.document, updated_at_ms = excluded.updated_at_ms",
                params![
                    p.account_id,
                    p.owner.as_str(),
                    p.owner_name,
                    p.policy_name,
                    p.document,
                    p.updated_at_ms
                ],
            )?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::DeletePolicyDocument {
            account_id,
            owner,
            owner_name,
            policy_name,
        } => {
            let n = conn.execute(
                "DELETE FROM iam_policies
                 WHERE account_id = ?1 AND owner_type = ?2 AND owner_name = ?3 AND policy_name = ?4",
                params![account_id, owner.as_str(), owner_name, policy_name],
            )?;
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::CreateRole(r) => {
            conn.execute(
                &format!(
                    "INSERT INTO iam_roles ({ROLE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    r.account_id,
                    r.role_name,
                    r.role_id,
                    r.trust_policy,
                    r.description,
                    r.max_session_duration_s,
                    r.created_at_ms
                ],
            )
            .map_err(|e| match StoreError::from(e) {
                StoreError::AlreadyExists { .. } => StoreError::AlreadyExists {
                    what: format!("role {}", r.role_name),
                },
                other => other,
            })?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::DeleteRole {
            account_id,
            role_name,
        } => {
            ensure_no_policies(conn, account_id, PolicyOwner::Role, role_name)?;
            let n = conn.execute(
                "DELETE FROM iam_roles WHERE account_id = ?1 AND role_name = ?2",
                params![account_id, role_name],
            )?;
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::CreateManagedPolicy(p) => {
            conn.execute(
                "INSERT INTO iam_managed_policies (account_id, policy_name, policy_id, document,
                 description, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    p.account_id,
                    p.policy_name,
                    p.policy_id,
                    p.document,
                    p.description,
                    p.created_at_ms,
                    p.updated_at_ms
                ],
            )
            .map_err(|e| match StoreError::from(e) {
                StoreError::AlreadyExists { .. } => StoreError::AlreadyExists {
                    what: format!("policy {}", p.policy_name),
                },
                other => other,
            })?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::DeleteManagedPolicy {
            account_id,
            policy_name,
        } => {
            let attached: i64 = conn.query_row(
                "SELECT COUNT(*) FROM iam_attachments WHERE account_id = ?1 AND policy_name = ?2",
                params![account_id, policy_name],
                |r| r.get(0),
            )?;
            if attached > 0 {
                return Err(StoreError::InUse {
                    what: format!("policy {policy_name}"),
                    reason: "it is still attached".into(),
                });
            }
            let n = conn.execute(
                "DELETE FROM iam_managed_policies WHERE account_id = ?1 AND policy_name = ?2",
                params![account_id, policy_name],
            )?;
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::AttachPolicy(a) => {
            let exists: i64 = conn.query_row(
                "SELECT COUNT(*) FROM iam_managed_policies
                 WHERE account_id = ?1 AND policy_name = ?2",
                params![a.account_id, a.policy_name],
                |r| r.get(0),
            )?;
            if exists == 0 {
                return Err(StoreError::NotFound {
                    what: format!("policy {}", a.policy_name),
                });
            }
            conn.execute(
                "INSERT INTO iam_attachments (account_id, owner_type, owner_name, policy_name)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![a.account_id, a.owner.as_str(), a.owner_name, a.policy_name],
            )?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::DetachPolicy(a) => {
            let n = conn.execute(
                "DELETE FROM iam_attachments
                 WHERE account_id = ?1 AND owner_type = ?2 AND owner_name = ?3 AND policy_name = ?4",
                params![a.account_id, a.owner.as_str(), a.owner_name, a.policy_name],
            )?;
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::DeleteAccessKey(id) => {
            let n = conn.execute(
                "DELETE FROM access_keys WHERE access_key_id = ?1",
                params![id],
            )?;
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::CreateUpload(u) => {
            conn.execute(
                "INSERT INTO s3_uploads (upload_id, bucket, object_key, created_at_ms, record_json)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![u.upload_id, u.bucket, u.key, u.created_at_ms, u.record_json],
            )?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::PutPart(p) => {
            let previous = conn
                .query_row(
                    "SELECT upload_id, part_number, record_json FROM s3_parts
                     WHERE upload_id = ?1 AND part_number = ?2",
                    params![p.upload_id, p.part_number],
                    part_from_row,
                )
                .optional()?;
            conn.execute(
                "INSERT INTO s3_parts (upload_id, part_number, record_json) VALUES (?1, ?2, ?3)
                 ON CONFLICT (upload_id, part_number) DO UPDATE SET record_json = excluded.record_json",
                params![p.upload_id, p.part_number, p.record_json],
            )?;
            Ok(WriteOutcome::Part(previous))
        }
        WriteOp::FinishUpload { upload_id, object } => {
            let n = conn.execute(
                "DELETE FROM s3_uploads WHERE upload_id = ?1",
                params![upload_id],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: format!("upload {upload_id}"),
                });
            }
            conn.execute(
                "DELETE FROM s3_parts WHERE upload_id = ?1",
                params![upload_id],
            )?;
            let previous = match object {
                None => None,
                Some(o) => {
                    let previous = select_object(conn, &o.bucket, &o.key)?;
                    conn.execute(
                        "INSERT INTO s3_objects (bucket, object_key, size, etag, modified_at_ms, record_json)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (bucket, object_key) DO UPDATE SET size = excluded.size,
                            etag = excluded.etag, modified_at_ms = excluded.modified_at_ms,
                            record_json = excluded.record_json, inline_body = NULL",
                        params![o.bucket, o.key, o.size, o.etag, o.modified_at_ms, o.record_json],
                    )?;
                    previous
                }
            };
            Ok(WriteOutcome::Object(previous))
        }
        WriteOp::ReplaceObjectRecord {
            bucket,
            key,
            expected_json,
            record_json,
        } => {
            let n = conn.execute(
                "UPDATE s3_objects SET record_json = ?4
                 WHERE bucket = ?1 AND object_key = ?2 AND record_json = ?3",
                params![bucket, key, expected_json, record_json],
            )?;
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::UpdateBucket { name, record_json } => {
            let n = conn.execute(
                "UPDATE s3_buckets SET record_json = ?2 WHERE name = ?1",
                params![name, record_json],
            )?;
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::CreateBucket(b) => {
            conn.execute(
                "INSERT INTO s3_buckets (name, account_id, region, created_at_ms, record_json)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    b.name,
                    b.account_id,
                    b.region,
                    b.created_at_ms,
                    b.record_json
                ],
            )
            .map_err(|e| match StoreError::from(e) {
                StoreError::AlreadyExists { .. } => StoreError::AlreadyExists {
                    what: format!("bucket {}", b.name),
                },
                other => other,
            })?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::DeleteBucket(name) => {
            let exists: Option<i64> = conn
                .query_row(
                    "SELECT 1 FROM s3_buckets WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                return Ok(WriteOutcome::Bucket(DeleteBucketOutcome::NotFound));
            }
            let object: Option<i64> = conn
                .query_row(
                    "SELECT 1 FROM s3_objects WHERE bucket = ?1 LIMIT 1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            if object.is_some() {
                return Ok(WriteOutcome::Bucket(DeleteBucketOutcome::NotEmpty));
            }
            conn.execute("DELETE FROM s3_buckets WHERE name = ?1", params![name])?;
            Ok(WriteOutcome::Bucket(DeleteBucketOutcome::Deleted))
        }
        WriteOp::PutObject(o) => {
            let previous = select_object(conn, &o.bucket, &o.key)?;
            conn.execute(
                "INSERT INTO s3_objects
                    (bucket, object_key, size, etag, modified_at_ms, record_json, inline_body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (bucket, object_key) DO UPDATE SET size = excluded.size,
                    etag = excluded.etag, modified_at_ms = excluded.modified_at_ms,
                    record_json = excluded.record_json, inline_body = excluded.inline_body",
                params![
                    o.bucket,
                    o.key,
                    o.size,
                    o.etag,
                    o.modified_at_ms,
                    o.record_json,
                    o.inline_body
                ],
            )?;
            Ok(WriteOutcome::Object(previous))
        }
        WriteOp::DeleteObject { bucket, key } => {
            let previous = select_object(conn, bucket, key)?;
            conn.execute(
                "DELETE FROM s3_objects WHERE bucket = ?1 AND object_key = ?2",
                params![bucket, key],
            )?;
            Ok(WriteOutcome::Object(previous))
        }
        WriteOp::PutKmsKey(key, material) => {
            upsert_kms_key(conn, key)?;
            if let Some(m) = material {
                insert_kms_key_material(conn, key, m)?;
            }
            Ok(WriteOutcome::Done)
        }
        WriteOp::PutKmsKeyDroppingMaterials(key) => {
            upsert_kms_key(conn, key)?;
            conn.execute(
                "DELETE FROM kms_key_materials
                 WHERE account_id = ?1 AND region = ?2 AND key_id = ?3",
                params![key.account_id, key.region, key.key_id],
            )?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::ChangeKmsKeys(changes) => {
            for change in changes {
                match change {
                    KmsKeyChange::Put { key, materials } => {
                        upsert_kms_key(conn, key)?;
                        for m in materials {
                            insert_kms_key_material(conn, key, m)?;
                        }
                    }
                    KmsKeyChange::Delete {
                        account_id,
                        region,
                        key_id,
                    } => delete_kms_key(conn, account_id, region, key_id)?,
                }
            }
            Ok(WriteOutcome::Done)
        }
        WriteOp::DeleteKmsKey {
            account_id,
            region,
            key_id,
        } => {
            delete_kms_key(conn, account_id, region, key_id)?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::PutTrail(t) => {
            conn.execute(
                "INSERT INTO cloudtrail_trails (account_id, home_region, name, record_json)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account_id, home_region, name)
                 DO UPDATE SET record_json = excluded.record_json",
                params![t.account_id, t.home_region, t.name, t.record_json],
            )?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::DeleteTrail {
            account_id,
            home_region,
            name,
            trail_arn,
        } => {
            let n = conn.execute(
                "DELETE FROM cloudtrail_trails
                 WHERE account_id = ?1 AND home_region = ?2 AND name = ?3",
                params![account_id, home_region, name],
            )?;
            for table in [
                "cloudtrail_cursors",
                "cloudtrail_log_files",
                "cloudtrail_digest_chains",
            ] {
                conn.execute(
                    &format!("DELETE FROM {table} WHERE trail_arn = ?1"),
                    params![trail_arn],
                )?;
            }
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::CompleteDelivery {
            trail_arn,
            cursor,
            files,
        } => {
            set_cursor(conn, trail_arn, cursor)?;
            for f in files {
                conn.execute(
                    "INSERT INTO cloudtrail_log_files
                     (trail_arn, region, s3_key, delivered_ms, digested, record_json)
                     VALUES (?1, ?2, ?3, ?4, 0, ?5)
                     ON CONFLICT (trail_arn, s3_key) DO NOTHING",
                    params![
                        f.trail_arn,
                        f.region,
                        f.s3_key,
                        f.delivered_ms,
                        f.record_json
                    ],
                )?;
            }
            Ok(WriteOutcome::Done)
        }
        WriteOp::PutDigestChain {
            trail_arn,
            region,
            state_json,
        } => {
            put_chain(conn, trail_arn, region, state_json)?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::CompleteDigest {
            trail_arn,
            region,
            state_json,
            digested_keys,
        } => {
            put_chain(conn, trail_arn, region, state_json)?;
            for key in digested_keys {
                conn.execute(
                    "UPDATE cloudtrail_log_files SET digested = 1
                     WHERE trail_arn = ?1 AND s3_key = ?2",
                    params![trail_arn, key],
                )?;
            }
            Ok(WriteOutcome::Done)
        }
        WriteOp::PutSigningKey(k) => {
            conn.execute(
                "INSERT INTO cloudtrail_signing_keys
                 (region, fingerprint, valid_from_ms, valid_until_ms, public_der, wrapped_private)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    k.region,
                    k.fingerprint,
                    k.valid_from_ms,
                    k.valid_until_ms,
                    k.public_der,
                    k.wrapped_private
                ],
            )?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::SetTrailCursor { trail_arn, cursor } => {
            set_cursor(conn, trail_arn, cursor)?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::DeleteEventsBefore {
            cutoff_ms,
            delivered_up_to,
        } => {
            let n = event_index::delete_before(conn, *cutoff_ms, *delivered_up_to)?;
            Ok(WriteOutcome::Count(n))
        }
        WriteOp::PutCustomKeyStore(k) => {
            conn.execute(
                "INSERT INTO kms_custom_key_stores
                    (account_id, region, custom_key_store_id, created_at_ms, record_json)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (account_id, region, custom_key_store_id)
                 DO UPDATE SET record_json = excluded.record_json",
                params![
                    k.account_id,
                    k.region,
                    k.custom_key_store_id,
                    k.created_at_ms,
                    k.record_json
                ],
            )?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::DeleteCustomKeyStore {
            account_id,
            region,
            custom_key_store_id,
        } => {
            let n = conn.execute(
                "DELETE FROM kms_custom_key_stores
                 WHERE account_id = ?1 AND region = ?2 AND custom_key_store_id = ?3",
                params![account_id, region, custom_key_store_id],
            )?;
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::PutGrant(g) => {
            conn.execute(
                &format!(
                    "INSERT INTO kms_grants ({GRANT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    g.account_id,
                    g.region,
                    g.key_id,
                    g.grant_id,
                    g.retiring_principal,
                    g.created_at_ms,
                    g.record_json
                ],
            )?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::DeleteGrant {
            account_id,
            region,
            key_id,
            grant_id,
        } => {
            let n = conn.execute(
                "DELETE FROM kms_grants
                 WHERE account_id = ?1 AND region = ?2 AND key_id = ?3 AND grant_id = ?4",
                params![account_id, region, key_id, grant_id],
            )?;
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::CreateAlias(a) => {
            conn.execute(
                "INSERT INTO kms_aliases (account_id, region, alias_name, target_key_id,
                    created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    a.account_id,
                    a.region,
                    a.alias_name,
                    a.target_key_id,
                    a.created_at_ms,
                    a.updated_at_ms
                ],
            )
            .map_err(|e| match StoreError::from(e) {
                StoreError::AlreadyExists { .. } => StoreError::AlreadyExists {
                    what: a.alias_name.clone(),
                },
                other => other,
            })?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::UpdateAlias(a) => {
            let n = conn.execute(
                "UPDATE kms_aliases SET target_key_id = ?4, updated_at_ms = ?5
                 WHERE account_id = ?1 AND region = ?2 AND alias_name = ?3",
                params![
                    a.account_id,
                    a.region,
                    a.alias_name,
                    a.target_key_id,
                    a.updated_at_ms
                ],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: a.alias_name.clone(),
                });
            }
            Ok(WriteOutcome::Done)
        }
        WriteOp::DeleteAlias {
            account_id,
            region,
            alias_name,
        } => {
            let n = conn.execute(
                "DELETE FROM kms_aliases WHERE account_id = ?1 AND region = ?2 AND alias_name = ?3",
                params![account_id, region, alias_name],
            )?;
            Ok(WriteOutcome::Deleted(n > 0))
        }
        WriteOp::Flush => Ok(WriteOutcome::Done),
        WriteOp::IndexEvents { events, positions } => {
            let (Some(first), Some(last)) = (events.first(), events.last()) else {
                return Ok(WriteOutcome::Done);
            };
            // The tables always hold a prefix of the log: a batch that does not continue it
            // exactly is refused, so nothing can be skipped.
            let continued = conn.execute(
                "UPDATE event_log_state SET indexed_through = ?2
                 WHERE id = 1 AND indexed_through = ?1",
                params![first.seq - 1, last.seq],
            )?;
            if continued != 1 {
                return Err(StoreError::Database(format!(
                    "event log: events {}..={} do not continue the indexed ones",
                    first.seq, last.seq
                )));
            }
            if positions.len() != events.len() {
                return Err(StoreError::Database(format!(
                    "event log: {} events to index with {} log positions",
                    events.len(),
                    positions.len()
                )));
            }
            event_blocks::insert(conn, events.iter().zip(positions.iter().copied().map(Some)))?;
            Ok(WriteOutcome::Done)
        }
    }
}

fn insert_kms_key_material(
    conn: &Connection,
    key: &KmsKeyRow,
    m: &KeyMaterialRow,
) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO kms_key_materials (account_id, region, key_id, material_id,
            wrapped_material, created_at_ms, rotation_type)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            key.account_id,
            key.region,
            key.key_id,
            m.material_id,
            m.wrapped_material,
            m.created_at_ms,
            m.rotation_type
        ],
    )
}

/// A key with its materials, grants and aliases.
fn delete_kms_key(
    conn: &Connection,
    account_id: &str,
    region: &str,
    key_id: &str,
) -> rusqlite::Result<()> {
    for table in ["kms_key_materials", "kms_grants", "kms_keys"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE account_id = ?1 AND region = ?2 AND key_id = ?3"),
            params![account_id, region, key_id],
        )?;
    }
    conn.execute(
        "DELETE FROM kms_aliases
         WHERE account_id = ?1 AND region = ?2 AND target_key_id = ?3",
        params![account_id, region, key_id],
    )?;
    Ok(())
}

fn upsert_kms_key(conn: &Connection, key: &KmsKeyRow) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO kms_keys (account_id, region, key_id, record_json)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (account_id, region, key_id)
         DO UPDATE SET record_json = excluded.record_json",
        params![key.account_id, key.region, key.key_id, key.record_json],
    )
}

fn access_key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccessKeyRecord> {
    Ok(AccessKeyRecord {
        access_key_id: r.get(0)?,
        account_id: r.get(1)?,
        user_name: r.get(2)?,
        wrapped_secret: r.get(3)?,
        status: r.get(4)?,
        created_at_ms: r.get(5)?,
    })
}

const OBJECT_COLUMNS: &str = "bucket, object_key, size, etag, modified_at_ms, record_json";

fn object_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectRow> {
    Ok(ObjectRow {
        bucket: r.get(0)?,
        key: r.get(1)?,
        size: r.get(2)?,
        etag: r.get(3)?,
        modified_at_ms: r.get(4)?,
        record_json: r.get(5)?,
        inline_body: None,
    })
}

fn object_with_body_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectRow> {
    Ok(ObjectRow {
        inline_body: r.get(6)?,
        ..object_from_row(r)?
    })
}

/// An object's row without its inline body: what a write needs of the row it replaces (its
/// body files, to remove), without copying a body nobody reads.
fn select_object(
    conn: &Connection,
    bucket: &str,
    key: &str,
) -> rusqlite::Result<Option<ObjectRow>> {
    conn.query_row(
        &format!("SELECT {OBJECT_COLUMNS} FROM s3_objects WHERE bucket = ?1 AND object_key = ?2"),
        params![bucket, key],
        object_from_row,
    )
    .optional()
}

/// An object's row with its inline body, for reading the object.
fn select_object_with_body(
    conn: &Connection,
    bucket: &str,
    key: &str,
) -> rusqlite::Result<Option<ObjectRow>> {
    conn.query_row(
        &format!(
            "SELECT {OBJECT_COLUMNS}, inline_body FROM s3_objects WHERE bucket = ?1 AND object_key = ?2"
        ),
        params![bucket, key],
        object_with_body_from_row,
    )
    .optional()
}

fn part_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PartRow> {
    Ok(PartRow {
        upload_id: r.get(0)?,
        part_number: r.get(1)?,
        record_json: r.get(2)?,
    })
}

fn upload_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRow> {
    Ok(UploadRow {
        upload_id: r.get(0)?,
        bucket: r.get(1)?,
        key: r.get(2)?,
        created_at_ms: r.get(3)?,
        record_json: r.get(4)?,
    })
}

fn bucket_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BucketRow> {
    Ok(BucketRow {
        name: r.get(0)?,
        account_id: r.get(1)?,
        region: r.get(2)?,
        created_at_ms: r.get(3)?,
        record_json: r.get(4)?,
    })
}

fn kms_key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KmsKeyRow> {
    Ok(KmsKeyRow {
        account_id: r.get(0)?,
        region: r.get(1)?,
        key_id: r.get(2)?,
        record_json: r.get(3)?,
    })
}

fn set_cursor(conn: &Connection, trail_arn: &str, cursor: &TrailCursor) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO cloudtrail_cursors (trail_arn, delivered_seq, pending_json)
         VALUES (?1, ?2, ?3)
         ON CONFLICT (trail_arn) DO UPDATE SET
           delivered_seq = excluded.delivered_seq, pending_json = excluded.pending_json",
        params![trail_arn, cursor.delivered_seq, cursor.pending_json],
    )?;
    Ok(())
}

fn put_chain(conn: &Connection, trail_arn: &str, region: &str, state: &str) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO cloudtrail_digest_chains (trail_arn, region, state_json) VALUES (?1, ?2, ?3)
         ON CONFLICT (trail_arn, region) DO UPDATE SET state_json = excluded.state_json",
        params![trail_arn, region, state],
    )?;
    Ok(())
}

fn log_file_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogFileRow> {
    Ok(LogFileRow {
        trail_arn: r.get(0)?,
        region: r.get(1)?,
        s3_key: r.get(2)?,
        delivered_ms: r.get(3)?,
        record_json: r.get(4)?,
    })
}

fn trail_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TrailRow> {
    Ok(TrailRow {
        account_id: r.get(0)?,
        home_region: r.get(1)?,
        name: r.get(2)?,
        record_json: r.get(3)?,
    })
}

/// The events with their JSON documents, read from the event log in `log_dir` where their block
/// does not hold them. An event whose segment is gone was pruned since its block was read: it
/// is left out, as if the read had come a moment later. A segment gone while a block still holds
/// the event is lost data, and an error.
pub(crate) fn with_json(
    c: &Connection,
    log_dir: &Path,
    stored: impl IntoIterator<Item = StoredEvent>,
) -> StoreResult<Vec<EventRow>> {
    let mut segments = SegmentReader::new(log_dir);
    let mut events = Vec::new();
    for StoredEvent { mut row, logged_at } in stored {
        if let Some(at) = logged_at {
            match segments.json(row.seq, at)? {
                Some(json) => row.record_json = json,
                None => {
                    let still_held = event_blocks::covers(c, row.seq)?;
                    if still_held {
                        return Err(StoreError::Database(format!(
                            "event log: the segment holding event {} (seg-{:020}.log) is missing",
                            row.seq, at.segment
                        )));
                    }
                    continue;
                }
            }
        }
        events.push(row);
    }
    Ok(events)
}

const ACCESS_KEY_COLUMNS: &str =
    "access_key_id, account_id, user_name, wrapped_secret, status, created_at_ms";

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_account(&self, account: AccountRecord) -> StoreResult<()> {
        self.write(WriteOp::EnsureAccount(account))
            .await
            .map(|_| ())
    }

    async fn list_accounts(&self) -> StoreResult<Vec<AccountRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT account_id, created_at_ms FROM accounts ORDER BY account_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(AccountRecord {
                    account_id: r.get(0)?,
                    created_at_ms: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn create_user(&self, user: UserRecord) -> StoreResult<()> {
        self.write(WriteOp::CreateUser(user)).await.map(|_| ())
    }

    async fn get_user(&self, account_id: &str, user_name: &str) -> StoreResult<Option<UserRecord>> {
        let (account_id, user_name) = (account_id.to_string(), user_name.to_string());
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT account_id, user_name, user_id, created_at_ms FROM iam_users
                 WHERE account_id = ?1 AND user_name = ?2",
                params![account_id, user_name],
                |r| {
                    Ok(UserRecord {
                        account_id: r.get(0)?,
                        user_name: r.get(1)?,
                        user_id: r.get(2)?,
                        created_at_ms: r.get(3)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn list_users(&self, account_id: &str) -> StoreResult<Vec<UserRecord>> {
        let account_id = account_id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT account_id, user_name, user_id, created_at_ms FROM iam_users
                 WHERE account_id = ?1 ORDER BY user_name",
            )?;
            let rows = stmt.query_map(params![account_id], |r| {
                Ok(UserRecord {
                    account_id: r.get(0)?,
                    user_name: r.get(1)?,
                    user_id: r.get(2)?,
                    created_at_ms: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_user(&self, account_id: &str, user_name: &str) -> StoreResult<bool> {
        let op = WriteOp::DeleteUser {
            account_id: account_id.to_string(),
            user_name: user_name.to_string(),
        };
        Ok(matches!(self.write(op).await?, WriteOutcome::Deleted(true)))
    }

    async fn put_policy_document(&self, row: PolicyDocumentRow) -> StoreResult<()> {
        self.write(WriteOp::PutPolicyDocument(row))
            .await
            .map(|_| ())
    }

    async fn list_policy_documents(
        &self,
        account_id: &str,
        owner: PolicyOwner,
        owner_name: &str,
    ) -> StoreResult<Vec<PolicyDocumentRow>> {
        let (account_id, owner_name) = (account_id.to_string(), owner_name.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT account_id, owner_name, policy_name, document, updated_at_ms
                 FROM iam_policies WHERE account_id = ?1 AND owner_type = ?2 AND owner_name = ?3
                 ORDER BY policy_name",
            )?;
            let rows = stmt.query_map(params![account_id, owner.as_str(), owner_name], |r| {
                Ok(PolicyDocumentRow {
                    account_id: r.get(0)?,
                    owner,
                    owner_name: r.get(1)?,
                    policy_name: r.get(2)?,
                    document: r.get(3)?,
                    updated_at_ms: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_policy_document(
        &self,
        account_id: &str,
        owner: PolicyOwner,
        owner_name: &str,
        policy_name: &str,
    ) -> StoreResult<bool> {
        let op = WriteOp::DeletePolicyDocument {
            account_id: account_id.to_string(),
            owner,
            owner_name: owner_name.to_string(),
            policy_name: policy_name.to_string(),
        };
        Ok(matches!(self.write(op).await?, WriteOutcome::Deleted(true)))
    }

    async fn create_role(&self, role: RoleRecord) -> StoreResult<()> {
        self.write(WriteOp::CreateRole(role)).await.map(|_| ())
    }

    async fn get_role(&self, account_id: &str, role_name: &str) -> StoreResult<Option<RoleRecord>> {
        let (account_id, role_name) = (account_id.to_string(), role_name.to_string());
        self.read(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {ROLE_COLUMNS} FROM iam_roles WHERE account_id = ?1 AND role_name = ?2"
                ),
                params![account_id, role_name],
                role_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn list_roles(&self, account_id: &str) -> StoreResult<Vec<RoleRecord>> {
        let account_id = account_id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ROLE_COLUMNS} FROM iam_roles WHERE account_id = ?1 ORDER BY role_name"
            ))?;
            let rows = stmt.query_map(params![account_id], role_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_role(&self, account_id: &str, role_name: &str) -> StoreResult<bool> {
        let op = WriteOp::DeleteRole {
            account_id: account_id.to_string(),
            role_name: role_name.to_string(),
        };
        Ok(matches!(self.write(op).await?, WriteOutcome::Deleted(true)))
    }

    async fn create_managed_policy(&self, policy: ManagedPolicyRow) -> StoreResult<()> {
        self.write(WriteOp::CreateManagedPolicy(policy))
            .await
            .map(|_| ())
    }

    async fn get_managed_policy(
        &self,
        account_id: &str,
        policy_name: &str,
    ) -> StoreResult<Option<ManagedPolicyRow>> {
        let (account_id, policy_name) = (account_id.to_string(), policy_name.to_string());
        self.read(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {MANAGED_POLICY_COLUMNS} FROM iam_managed_policies p
                     WHERE p.account_id = ?1 AND p.policy_name = ?2"
                ),
                params![account_id, policy_name],
                managed_policy_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn list_managed_policies(&self, account_id: &str) -> StoreResult<Vec<ManagedPolicyRow>> {
        let account_id = account_id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MANAGED_POLICY_COLUMNS} FROM iam_managed_policies p
                 WHERE p.account_id = ?1 ORDER BY p.policy_name"
            ))?;
            let rows = stmt.query_map(params![account_id], managed_policy_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_managed_policy(
        &self,
        account_id: &str,
        policy_name: &str,
    ) -> StoreResult<bool> {
        let op = WriteOp::DeleteManagedPolicy {
            account_id: account_id.to_string(),
            policy_name: policy_name.to_string(),
        };
        Ok(matches!(self.write(op).await?, WriteOutcome::Deleted(true)))
    }

    async fn attach_policy(
        &self,
        account_id: &str,
        owner: PolicyOwner,
        owner_name: &str,
        policy_name: &str,
    ) -> StoreResult<()> {
        let op = WriteOp::AttachPolicy(Attachment::new(account_id, owner, owner_name, policy_name));
        self.write(op).await.map(|_| ())
    }

    async fn detach_policy(
        &self,
        account_id: &str,
        owner: PolicyOwner,
        owner_name: &str,
        policy_name: &str,
    ) -> StoreResult<bool> {
        let op = WriteOp::DetachPolicy(Attachment::new(account_id, owner, owner_name, policy_name));
        Ok(matches!(self.write(op).await?, WriteOutcome::Deleted(true)))
    }

    async fn list_attached_policies(
        &self,
        account_id: &str,
        owner: PolicyOwner,
        owner_name: &str,
    ) -> StoreResult<Vec<ManagedPolicyRow>> {
        let (account_id, owner_name) = (account_id.to_string(), owner_name.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MANAGED_POLICY_COLUMNS} FROM iam_attachments t
                 JOIN iam_managed_policies p
                   ON p.account_id = t.account_id AND p.policy_name = t.policy_name
                 WHERE t.account_id = ?1 AND t.owner_type = ?2 AND t.owner_name = ?3
                 ORDER BY p.policy_name"
            ))?;
            let rows = stmt.query_map(
                params![account_id, owner.as_str(), owner_name],
                managed_policy_from_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn set_access_key_status(&self, access_key_id: &str, status: &str) -> StoreResult<bool> {
        let op = WriteOp::SetAccessKeyStatus {
            access_key_id: access_key_id.to_string(),
            status: status.to_string(),
        };
        Ok(matches!(self.write(op).await?, WriteOutcome::Deleted(true)))
    }

    async fn insert_access_key(&self, key: AccessKeyRecord) -> StoreResult<()> {
        self.write(WriteOp::InsertAccessKey(key)).await.map(|_| ())
    }

    async fn get_access_key(&self, access_key_id: &str) -> StoreResult<Option<AccessKeyRecord>> {
        let id = access_key_id.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {ACCESS_KEY_COLUMNS} FROM access_keys WHERE access_key_id = ?1"),
                params![id],
                access_key_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn list_access_keys(&self) -> StoreResult<Vec<AccessKeyRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ACCESS_KEY_COLUMNS} FROM access_keys ORDER BY account_id, created_at_ms"
            ))?;
            let rows = stmt.query_map([], access_key_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn list_access_keys_of(
        &self,
        account_id: &str,
        user_name: Option<&str>,
    ) -> StoreResult<Vec<AccessKeyRecord>> {
        let (account_id, user_name) = (account_id.to_string(), user_name.map(str::to_string));
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ACCESS_KEY_COLUMNS} FROM access_keys
                 WHERE account_id = ?1 AND (user_name = ?2 OR (user_name IS NULL AND ?2 IS NULL))
                 ORDER BY created_at_ms"
            ))?;
            let rows = stmt.query_map(params![account_id, user_name], access_key_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_access_key(&self, access_key_id: &str) -> StoreResult<bool> {
        match self
            .write(WriteOp::DeleteAccessKey(access_key_id.to_string()))
            .await?
        {
            WriteOutcome::Deleted(d) => Ok(d),
            _ => Ok(false),
        }
    }

    async fn append_events(&self, events: Vec<EventRow>) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        if self.progress.is_none() {
            return Err(StoreError::Database(format!(
                "another keytrail process owns the event log of {}: events can only be read here",
                self.path.display()
            )));
        }
        let (reply, rx) = oneshot::channel();
        {
            let guard = self.journal.lock().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            let count = events.len();
            let job = AppendJob {
                events,
                reply,
                delivery: crate::append_answers::this_thread(),
            };
            sender
                .send(job, count, false)
                .map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn recent_events(&self, limit: usize) -> StoreResult<Vec<EventRow>> {
        self.events_indexed().await?;
        let log_dir = Arc::clone(&self.log_dir);
        self.read(move |c| with_json(c, &log_dir, event_blocks::newest(c, limit)?))
            .await
    }

    async fn events_after(&self, seq: i64, limit: usize) -> StoreResult<Vec<EventRow>> {
        self.events_indexed().await?;
        let log_dir = Arc::clone(&self.log_dir);
        self.read(move |c| with_json(c, &log_dir, event_blocks::after(c, seq, limit)?))
            .await
    }

    async fn account_events_after(
        &self,
        account_id: &str,
        seq: i64,
        limit: usize,
    ) -> StoreResult<Vec<EventRow>> {
        let account_id = account_id.to_string();
        self.events_indexed().await?;
        let log_dir = Arc::clone(&self.log_dir);
        self.read(move |c| event_index::account_events_after(c, &log_dir, &account_id, seq, limit))
            .await
    }

    async fn last_event_seq(&self) -> StoreResult<i64> {
        self.events_indexed().await?;
        self.read(|c| Ok(event_blocks::last_seq(c)?)).await
    }

    async fn lookup_events(&self, lookup: EventLookup) -> StoreResult<Vec<EventRow>> {
        self.events_indexed().await?;
        let log_dir = Arc::clone(&self.log_dir);
        self.read(move |c| event_index::lookup(c, &log_dir, &lookup))
            .await
    }

    async fn last_successful_event(
        &self,
        account_id: &str,
        region: &str,
        resource_name: &str,
        event_names: &[&str],
    ) -> StoreResult<Option<EventRow>> {
        self.events_indexed().await?;
        let account_id = account_id.to_string();
        let region = region.to_string();
        let resource_name = resource_name.to_string();
        let names: Vec<String> = event_names.iter().map(|n| (*n).to_string()).collect();
        let log_dir = Arc::clone(&self.log_dir);
        self.read(move |c| {
            event_index::last_successful(c, &log_dir, &account_id, &region, &resource_name, &names)
        })
        .await
    }

    async fn oldest_event_ms(&self, account_id: &str, region: &str) -> StoreResult<Option<i64>> {
        self.events_indexed().await?;
        let account_id = account_id.to_string();
        let region = region.to_string();
        self.read(move |c| event_index::oldest_event_ms(c, &account_id, &region))
            .await
    }

    async fn kms_usage(
        &self,
        start_ms: i64,
        end_ms: i64,
        account_id: Option<&str>,
    ) -> StoreResult<Vec<KmsUsageRow>> {
        self.events_indexed().await?;
        let account_id = account_id.map(str::to_string);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT account_id, region, hour_ms, key_arn, operation, source, requests
                 FROM kms_usage WHERE hour_ms >= ?1 AND hour_ms < ?2
                   AND (?3 IS NULL OR account_id = ?3)
                 ORDER BY hour_ms, account_id, region, key_arn, operation, source",
            )?;
            let rows = stmt.query_map(params![start_ms, end_ms, account_id], |r| {
                Ok(KmsUsageRow {
                    account_id: r.get(0)?,
                    region: r.get(1)?,
                    hour_ms: r.get(2)?,
                    key_arn: r.get(3)?,
                    operation: r.get(4)?,
                    source: r.get(5)?,
                    requests: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_events_before(
        &self,
        cutoff_ms: i64,
        delivered_up_to: i64,
    ) -> StoreResult<usize> {
        let op = WriteOp::DeleteEventsBefore {
            cutoff_ms,
            delivered_up_to,
        };
        match self.write(op).await? {
            WriteOutcome::Count(n) => Ok(n),
            _ => Ok(0),
        }
    }

    async fn put_trail(&self, trail: TrailRow) -> StoreResult<()> {
        self.write(WriteOp::PutTrail(trail)).await.map(|_| ())
    }

    async fn get_trail(
        &self,
        account_id: &str,
        home_region: &str,
        name: &str,
    ) -> StoreResult<Option<TrailRow>> {
        let (a, r, n) = (
            account_id.to_string(),
            home_region.to_string(),
            name.to_string(),
        );
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT account_id, home_region, name, record_json FROM cloudtrail_trails
                 WHERE account_id = ?1 AND home_region = ?2 AND name = ?3",
                params![a, r, n],
                trail_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn list_trails(&self, account_id: Option<&str>) -> StoreResult<Vec<TrailRow>> {
        let account_id = account_id.map(str::to_string);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT account_id, home_region, name, record_json FROM cloudtrail_trails
                 WHERE ?1 IS NULL OR account_id = ?1 ORDER BY account_id, home_region, name",
            )?;
            let rows = stmt.query_map(params![account_id], trail_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_trail(
        &self,
        account_id: &str,
        home_region: &str,
        name: &str,
        trail_arn: &str,
    ) -> StoreResult<bool> {
        let op = WriteOp::DeleteTrail {
            account_id: account_id.to_string(),
            home_region: home_region.to_string(),
            name: name.to_string(),
            trail_arn: trail_arn.to_string(),
        };
        Ok(matches!(self.write(op).await?, WriteOutcome::Deleted(true)))
    }

    async fn get_trail_cursor(&self, trail_arn: &str) -> StoreResult<Option<TrailCursor>> {
        let arn = trail_arn.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT delivered_seq, pending_json FROM cloudtrail_cursors WHERE trail_arn = ?1",
                params![arn],
                |r| {
                    Ok(TrailCursor {
                        delivered_seq: r.get(0)?,
                        pending_json: r.get(1)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn complete_delivery(
        &self,
        trail_arn: &str,
        cursor: TrailCursor,
        files: Vec<LogFileRow>,
    ) -> StoreResult<()> {
        let op = WriteOp::CompleteDelivery {
            trail_arn: trail_arn.to_string(),
            cursor,
            files,
        };
        self.write(op).await.map(|_| ())
    }

    async fn undigested_log_files(
        &self,
        trail_arn: &str,
        region: &str,
        until_ms: i64,
    ) -> StoreResult<Vec<LogFileRow>> {
        let (arn, region) = (trail_arn.to_string(), region.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT trail_arn, region, s3_key, delivered_ms, record_json
                 FROM cloudtrail_log_files
                 WHERE trail_arn = ?1 AND region = ?2 AND NOT digested AND delivered_ms <= ?3
                 ORDER BY delivered_ms, s3_key",
            )?;
            let rows = stmt.query_map(params![arn, region, until_ms], log_file_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn log_file_regions(&self, trail_arn: &str) -> StoreResult<Vec<String>> {
        let arn = trail_arn.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT DISTINCT region FROM cloudtrail_log_files WHERE trail_arn = ?1
                 UNION SELECT region FROM cloudtrail_digest_chains WHERE trail_arn = ?1",
            )?;
            let rows = stmt.query_map(params![arn], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn get_digest_chain(&self, trail_arn: &str, region: &str) -> StoreResult<Option<String>> {
        let (arn, region) = (trail_arn.to_string(), region.to_string());
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT state_json FROM cloudtrail_digest_chains
                 WHERE trail_arn = ?1 AND region = ?2",
                params![arn, region],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn put_digest_chain(
        &self,
        trail_arn: &str,
        region: &str,
        state_json: String,
    ) -> StoreResult<()> {
        let op = WriteOp::PutDigestChain {
            trail_arn: trail_arn.to_string(),
            region: region.to_string(),
            state_json,
        };
        self.write(op).await.map(|_| ())
    }

    async fn complete_digest(
        &self,
        trail_arn: &str,
        region: &str,
        state_json: String,
        digested_keys: Vec<String>,
    ) -> StoreResult<()> {
        let op = WriteOp::CompleteDigest {
            trail_arn: trail_arn.to_string(),
            region: region.to_string(),
            state_json,
            digested_keys,
        };
        self.write(op).await.map(|_| ())
    }

    async fn put_signing_key(&self, key: SigningKeyRow) -> StoreResult<()> {
        self.write(WriteOp::PutSigningKey(key)).await.map(|_| ())
    }

    async fn list_signing_keys(&self, region: &str) -> StoreResult<Vec<SigningKeyRow>> {
        let region = region.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT region, fingerprint, valid_from_ms, valid_until_ms, public_der,
                        wrapped_private
                 FROM cloudtrail_signing_keys WHERE region = ?1 ORDER BY valid_from_ms",
            )?;
            let rows = stmt.query_map(params![region], |r| {
                Ok(SigningKeyRow {
                    region: r.get(0)?,
                    fingerprint: r.get(1)?,
                    valid_from_ms: r.get(2)?,
                    valid_until_ms: r.get(3)?,
                    public_der: r.get(4)?,
                    wrapped_private: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn set_trail_cursor(&self, trail_arn: &str, cursor: TrailCursor) -> StoreResult<()> {
        let op = WriteOp::SetTrailCursor {
            trail_arn: trail_arn.to_string(),
            cursor,
        };
        self.write(op).await.map(|_| ())
    }

    async fn put_kms_key(
        &self,
        key: KmsKeyRow,
        material: Option<KeyMaterialRow>,
    ) -> StoreResult<()> {
        self.write(WriteOp::PutKmsKey(key, material))
            .await
            .map(|_| ())
    }

    async fn put_kms_key_dropping_materials(&self, key: KmsKeyRow) -> StoreResult<()> {
        self.write(WriteOp::PutKmsKeyDroppingMaterials(key))
            .await
            .map(|_| ())
    }

    async fn change_kms_keys(&self, changes: Vec<KmsKeyChange>) -> StoreResult<()> {
        self.write(WriteOp::ChangeKmsKeys(changes))
            .await
            .map(|_| ())
    }

    async fn get_kms_key(
        &self,
        account_id: &str,
        region: &str,
        key_id: &str,
    ) -> StoreResult<Option<(KmsKeyRow, Vec<KeyMaterialRow>)>> {
        let (a, r, k) = (
            account_id.to_string(),
            region.to_string(),
            key_id.to_string(),
        );
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT account_id, region, key_id, record_json FROM kms_keys
                     WHERE account_id = ?1 AND region = ?2 AND key_id = ?3",
                    params![a, r, k],
                    kms_key_from_row,
                )
                .optional()?;
            let Some(row) = row else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(
                "SELECT material_id, wrapped_material, created_at_ms, rotation_type
                 FROM kms_key_materials WHERE account_id = ?1 AND region = ?2 AND key_id = ?3
                 ORDER BY created_at_ms, rowid",
            )?;
            let materials = stmt
                .query_map(params![a, r, k], |r| {
                    Ok(KeyMaterialRow {
                        material_id: r.get(0)?,
                        wrapped_material: r.get(1)?,
                        created_at_ms: r.get(2)?,
                        rotation_type: r.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some((row, materials)))
        })
        .await
    }

    async fn list_kms_keys(&self, scope: Option<(&str, &str)>) -> StoreResult<Vec<KmsKeyRow>> {
        let scope = scope.map(|(a, r)| (a.to_string(), r.to_string()));
        self.read(move |c| {
            let rows = match &scope {
                Some((a, r)) => {
                    let mut stmt = c.prepare_cached(
                        "SELECT account_id, region, key_id, record_json FROM kms_keys
                         WHERE account_id = ?1 AND region = ?2 ORDER BY key_id",
                    )?;
                    stmt.query_map(params![a, r], kms_key_from_row)?
                        .collect::<Result<Vec<_>, _>>()?
                }
                None => {
                    let mut stmt = c.prepare_cached(
                        "SELECT account_id, region, key_id, record_json FROM kms_keys
                         ORDER BY account_id, region, key_id",
                    )?;
                    stmt.query_map([], kms_key_from_row)?
                        .collect::<Result<Vec<_>, _>>()?
                }
            };
            Ok(rows)
        })
        .await
    }

    async fn put_custom_key_store(&self, store: CustomKeyStoreRow) -> StoreResult<()> {
        self.write(WriteOp::PutCustomKeyStore(store))
            .await
            .map(|_| ())
    }

    async fn list_custom_key_stores(
        &self,
        account_id: &str,
        region: &str,
    ) -> StoreResult<Vec<CustomKeyStoreRow>> {
        let (account_id, region) = (account_id.to_string(), region.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT account_id, region, custom_key_store_id, created_at_ms, record_json
                 FROM kms_custom_key_stores WHERE account_id = ?1 AND region = ?2
                 ORDER BY created_at_ms, custom_key_store_id",
            )?;
            let rows = stmt.query_map(params![account_id, region], |r| {
                Ok(CustomKeyStoreRow {
                    account_id: r.get(0)?,
                    region: r.get(1)?,
                    custom_key_store_id: r.get(2)?,
                    created_at_ms: r.get(3)?,
                    record_json: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_custom_key_store(
        &self,
        account_id: &str,
        region: &str,
        custom_key_store_id: &str,
    ) -> StoreResult<bool> {
        let op = WriteOp::DeleteCustomKeyStore {
            account_id: account_id.to_string(),
            region: region.to_string(),
            custom_key_store_id: custom_key_store_id.to_string(),
        };
        Ok(matches!(self.write(op).await?, WriteOutcome::Deleted(true)))
    }

    async fn put_grant(&self, grant: GrantRow) -> StoreResult<()> {
        self.write(WriteOp::PutGrant(grant)).await.map(|_| ())
    }

    async fn list_grants(
        &self,
        account_id: &str,
        region: &str,
        key_id: &str,
    ) -> StoreResult<Vec<GrantRow>> {
        let (account_id, region, key_id) = (
            account_id.to_string(),
            region.to_string(),
            key_id.to_string(),
        );
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {GRANT_COLUMNS} FROM kms_grants
                 WHERE account_id = ?1 AND region = ?2 AND key_id = ?3
                 ORDER BY created_at_ms, grant_id"
            ))?;
            let rows = stmt.query_map(params![account_id, region, key_id], grant_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn list_grants_by_retiring_principal(
        &self,
        retiring_principal: &str,
    ) -> StoreResult<Vec<GrantRow>> {
        let principal = retiring_principal.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {GRANT_COLUMNS} FROM kms_grants WHERE retiring_principal = ?1
                 ORDER BY created_at_ms, grant_id"
            ))?;
            let rows = stmt.query_map(params![principal], grant_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_grant(
        &self,
        account_id: &str,
        region: &str,
        key_id: &str,
        grant_id: &str,
    ) -> StoreResult<bool> {
        let op = WriteOp::DeleteGrant {
            account_id: account_id.to_string(),
            region: region.to_string(),
            key_id: key_id.to_string(),
            grant_id: grant_id.to_string(),
        };
        Ok(matches!(self.write(op).await?, WriteOutcome::Deleted(true)))
    }

    async fn delete_kms_key(
        &self,
        account_id: &str,
        region: &str,
        key_id: &str,
    ) -> StoreResult<()> {
        self.write(WriteOp::DeleteKmsKey {
            account_id: account_id.to_string(),
            region: region.to_string(),
            key_id: key_id.to_string(),
        })
        .await
        .map(|_| ())
    }

    async fn create_alias(&self, alias: AliasRow) -> StoreResult<()> {
        self.write(WriteOp::CreateAlias(alias)).await.map(|_| ())
    }

    async fn update_alias(&self, alias: AliasRow) -> StoreResult<()> {
        self.write(WriteOp::UpdateAlias(alias)).await.map(|_| ())
    }

    async fn delete_alias(
        &self,
        account_id: &str,
        region: &str,
        alias_name: &str,
    ) -> StoreResult<bool> {
        match self
            .write(WriteOp::DeleteAlias {
                account_id: account_id.to_string(),
                region: region.to_string(),
                alias_name: alias_name.to_string(),
            })
            .await?
        {
            WriteOutcome::Deleted(d) => Ok(d),
            _ => Ok(false),
        }
    }

    async fn list_aliases(&self, scope: Option<(&str, &str)>) -> StoreResult<Vec<AliasRow>> {
        let scope = scope.map(|(a, r)| (a.to_string(), r.to_string()));
        self.read(move |c| {
            let columns =
                "account_id, region, alias_name, target_key_id, created_at_ms, updated_at_ms";
            let map = |r: &rusqlite::Row<'_>| {
                Ok(AliasRow {
                    account_id: r.get(0)?,
                    region: r.get(1)?,
                    alias_name: r.get(2)?,
                    target_key_id: r.get(3)?,
                    created_at_ms: r.get(4)?,
                    updated_at_ms: r.get(5)?,
                })
            };
            let rows = match &scope {
                Some((a, r)) => {
                    let mut stmt = c.prepare_cached(&format!(
                        "SELECT {columns} FROM kms_aliases WHERE account_id = ?1 AND region = ?2
                         ORDER BY alias_name"
                    ))?;
                    stmt.query_map(params![a, r], map)?
                        .collect::<Result<Vec<_>, _>>()?
                }
                None => {
                    let mut stmt = c.prepare_cached(&format!(
                        "SELECT {columns} FROM kms_aliases ORDER BY account_id, region, alias_name"
                    ))?;
                    stmt.query_map([], map)?.collect::<Result<Vec<_>, _>>()?
                }
            };
            Ok(rows)
        })
        .await
    }

    async fn create_bucket(&self, bucket: BucketRow) -> StoreResult<()> {
        self.write(WriteOp::CreateBucket(bucket)).await.map(|_| ())
    }

    async fn get_bucket(&self, name: &str) -> StoreResult<Option<BucketRow>> {
        let name = name.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT name, account_id, region, created_at_ms, record_json FROM s3_buckets
                 WHERE name = ?1",
                params![name],
                bucket_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn replace_object_record(
        &self,
        bucket: &str,
        key: &str,
        expected_json: &str,
        record_json: String,
    ) -> StoreResult<bool> {
        match self
            .write(WriteOp::ReplaceObjectRecord {
                bucket: bucket.to_string(),
                key: key.to_string(),
                expected_json: expected_json.to_string(),
                record_json,
            })
            .await?
        {
            WriteOutcome::Deleted(replaced) => Ok(replaced),
            _ => Ok(false),
        }
    }

    async fn update_bucket_record(&self, name: &str, record_json: String) -> StoreResult<bool> {
        match self
            .write(WriteOp::UpdateBucket {
                name: name.to_string(),
                record_json,
            })
            .await?
        {
            WriteOutcome::Deleted(updated) => Ok(updated),
            _ => Ok(false),
        }
    }

    async fn list_buckets(&self, account_id: &str) -> StoreResult<Vec<BucketRow>> {
        let account_id = account_id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT name, account_id, region, created_at_ms, record_json FROM s3_buckets
                 WHERE account_id = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map(params![account_id], bucket_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_bucket(&self, name: &str) -> StoreResult<DeleteBucketOutcome> {
        match self.write(WriteOp::DeleteBucket(name.to_string())).await? {
            WriteOutcome::Bucket(outcome) => Ok(outcome),
            _ => Err(StoreError::Database("unexpected outcome".into())),
        }
    }

    async fn put_object(&self, object: ObjectRow) -> StoreResult<Option<ObjectRow>> {
        match self.write(WriteOp::PutObject(object)).await? {
            WriteOutcome::Object(previous) => Ok(previous),
            _ => Err(StoreError::Database("unexpected outcome".into())),
        }
    }

    async fn get_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRow>> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.read(move |c| Ok(select_object_with_body(c, &bucket, &key)?))
            .await
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRow>> {
        match self
            .write(WriteOp::DeleteObject {
                bucket: bucket.to_string(),
                key: key.to_string(),
            })
            .await?
        {
            WriteOutcome::Object(previous) => Ok(previous),
            _ => Err(StoreError::Database("unexpected outcome".into())),
        }
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ObjectRow>> {
        let (bucket, prefix) = (bucket.to_string(), prefix.to_string());
        let after = after.unwrap_or("").to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {OBJECT_COLUMNS} FROM s3_objects
                 WHERE bucket = ?1 AND substr(object_key, 1, length(?2)) = ?2
                   AND object_key > ?3
                 ORDER BY object_key LIMIT ?4"
            ))?;
            let rows = stmt.query_map(params![bucket, prefix, after, limit], object_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn create_upload(&self, upload: UploadRow) -> StoreResult<()> {
        self.write(WriteOp::CreateUpload(upload)).await.map(|_| ())
    }

    async fn get_upload(&self, upload_id: &str) -> StoreResult<Option<UploadRow>> {
        let id = upload_id.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT upload_id, bucket, object_key, created_at_ms, record_json FROM s3_uploads
                 WHERE upload_id = ?1",
                params![id],
                upload_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn list_uploads(&self, bucket: &str) -> StoreResult<Vec<UploadRow>> {
        let bucket = bucket.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT upload_id, bucket, object_key, created_at_ms, record_json FROM s3_uploads
                 WHERE bucket = ?1 ORDER BY object_key, created_at_ms",
            )?;
            let rows = stmt.query_map(params![bucket], upload_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn put_part(&self, part: PartRow) -> StoreResult<Option<PartRow>> {
        match self.write(WriteOp::PutPart(part)).await? {
            WriteOutcome::Part(previous) => Ok(previous),
            _ => Err(StoreError::Database("unexpected outcome".into())),
        }
    }

    async fn list_parts(&self, upload_id: &str) -> StoreResult<Vec<PartRow>> {
        let id = upload_id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT upload_id, part_number, record_json FROM s3_parts
                 WHERE upload_id = ?1 ORDER BY part_number",
            )?;
            let rows = stmt.query_map(params![id], part_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn finish_upload(
        &self,
        upload_id: &str,
        object: Option<ObjectRow>,
    ) -> StoreResult<Option<ObjectRow>> {
        match self
            .write(WriteOp::FinishUpload {
                upload_id: upload_id.to_string(),
                object,
            })
            .await?
        {
            WriteOutcome::Object(previous) => Ok(previous),
            _ => Err(StoreError::Database("unexpected outcome".into())),
        }
    }

    async fn is_healthy(&self) -> bool {
        let writer_alive = self.writer.lock().map(|w| w.is_some()).unwrap_or(false);
        let indexing = self
            .progress
            .as_ref()
            .is_none_or(|p| !p.indexed.borrow().failed);
        writer_alive
            && indexing
            && self
                .read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
                .await
                .is_ok()
    }

    async fn close(&self) {
        // The log first: it hands its last events to the writer before the writer stops.
        let journal = self.journal.lock().ok().and_then(|mut j| j.take());
        drop(journal);
        let thread = self.journal_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let sender = self.writer.lock().ok().and_then(|mut w| w.take());
        drop(sender);
        let thread = self.writer_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let checkpointer = self.checkpointer.lock().ok().and_then(|mut c| c.take());
        if let Some((stop, thread)) = checkpointer {
            let _ = stop.send(());
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LookupAttribute;
    use crate::event_index::POSTING_SPAN_MS as POSTING_SPAN;

    fn event(i: usize) -> EventRow {
        EventRow {
            seq: 0,
            event_id: format!("e-{i}"),
            event_time_ms: 1_000 + i as i64,
            account_id: "000000000000".into(),
            region: "us-east-1".into(),
            event_source: "sts.amazonaws.com".into(),
            event_name: "GetCallerIdentity".into(),
            request_id: format!("r-{i}"),
            access_key_id: Some("AKIA".into()),
            read_only: true,
            management: true,
            record_json: format!("{{\"n\":{i}}}"),
            username: Some("root".into()),
            resources: Vec::new(),
            kms_usage: None,
        }
    }

    /// `count` appends of one event each, each from a task of its own.
    fn append_concurrently(
        store: &Arc<SqliteStore>,
        count: usize,
    ) -> Vec<tokio::task::JoinHandle<StoreResult<()>>> {
        (0..count)
            .map(|i| {
                let store = Arc::clone(store);
                tokio::spawn(async move { store.append_events(vec![event(i)]).await })
            })
            .collect()
    }

    #[test]
    fn the_writer_waits_for_events_to_index_but_not_for_other_writes() {
        let policy = GroupPolicy {
            wait: std::time::Duration::from_secs(5),
            ..WRITE_GROUP
        };
        let job = |op| WriteJob {
            op,
            reply: oneshot::channel().0,
        };
        let index = |n: usize| {
            job(WriteOp::IndexEvents {
                events: (0..n).map(event).collect(),
                positions: Vec::new(),
            })
        };
        let (tx, mut rx) = group_queue::<WriteJob>(policy);
        let started = Instant::now();
        // Events to index alone wait for more (here up to 5 s); a reader's flush ends the wait.
        tx.send_write(index(3)).unwrap();
        let sender = tx.clone();
        let flusher = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            sender.send_write(job(WriteOp::Flush)).unwrap();
        });
        let group = rx.next_group().unwrap();
        flusher.join().unwrap();
        assert_eq!(group.len(), 2);
        assert!(matches!(group[1].op, WriteOp::Flush));
        let waited = started.elapsed();
        assert!(waited >= std::time::Duration::from_millis(50), "{waited:?}");
        assert!(waited < std::time::Duration::from_secs(4), "{waited:?}");
        // A full batch of events to index does not wait at all.
        let started = Instant::now();
        tx.send_write(index(WRITE_GROUP.events)).unwrap();
        assert_eq!(rx.next_group().unwrap().len(), 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(4));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_commits_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keytrail.db");
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        let tasks = append_concurrently(&store, 200);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        store.close().await;
        assert!(matches!(
            store.append_events(vec![event(999)]).await,
            Err(StoreError::Closed)
        ));
        let reopened = SqliteStore::open(&path).unwrap();
        let events = reopened.recent_events(1000).await.unwrap();
        assert_eq!(events.len(), 200);
        assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
        let after = reopened.events_after(events[9].seq, 5).await.unwrap();
        assert_eq!(after.len(), 5);
        assert_eq!(after[0].seq, events[10].seq);
    }

    /// On a thread that delivers its own append answers, as the server's connection threads
    /// do, concurrent appends are all answered (through the delivery task: no call is left
    /// waiting) and durable.
    #[tokio::test]
    async fn appends_of_a_thread_with_a_delivery_task_are_all_answered() {
        crate::deliver_appends_on_this_thread();
        assert!(crate::append_answers::this_thread().is_some());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keytrail.db");
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        let tasks = append_concurrently(&store, 200);
        let answered = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        })
        .await;
        assert!(answered.is_ok(), "appends left unanswered");
        store.close().await;
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.recent_events(1000).await.unwrap().len(), 200);
    }

    #[tokio::test]
    async fn custom_key_stores_are_kept_per_account_and_region_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let row = |account: &str, region: &str, id: &str, at: i64, json: &str| CustomKeyStoreRow {
            account_id: account.into(),
            region: region.into(),
            custom_key_store_id: id.into(),
            created_at_ms: at,
            record_json: json.into(),
        };
        {
            let store = SqliteStore::open(&path).unwrap();
            store
                .put_custom_key_store(row("111111111111", "us-east-1", "cks-b", 2, "{\"v\":1}"))
                .await
                .unwrap();
            store
                .put_custom_key_store(row("111111111111", "us-east-1", "cks-a", 1, "{}"))
                .await
                .unwrap();
            store
                .put_custom_key_store(row("111111111111", "eu-west-1", "cks-c", 3, "{}"))
                .await
                .unwrap();
            // A second put replaces the record and keeps the creation time.
            store
                .put_custom_key_store(row("111111111111", "us-east-1", "cks-b", 9, "{\"v\":2}"))
                .await
                .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let listed = store
            .list_custom_key_stores("111111111111", "us-east-1")
            .await
            .unwrap();
        assert_eq!(
            listed,
            vec![
                row("111111111111", "us-east-1", "cks-a", 1, "{}"),
                row("111111111111", "us-east-1", "cks-b", 2, "{\"v\":2}"),
            ]
        );
        assert!(
            store
                .list_custom_key_stores("222222222222", "us-east-1")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .delete_custom_key_store("111111111111", "us-east-1", "cks-a")
                .await
                .unwrap()
        );
        assert!(
            !store
                .delete_custom_key_store("111111111111", "us-east-1", "cks-a")
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .list_custom_key_stores("111111111111", "eu-west-1")
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_failing_write_does_not_undo_its_batch_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("k.db")).unwrap());
        store
            .ensure_account(AccountRecord {
                account_id: "111111111111".into(),
                created_at_ms: 1,
            })
            .await
            .unwrap();
        let user = |name: &str, id: &str| UserRecord {
            account_id: "111111111111".into(),
            user_name: name.into(),
            user_id: id.into(),
            created_at_ms: 1,
        };
        let dup = store.create_user(user("alice", "AIDA1"));
        let dup2 = store.create_user(user("alice", "AIDA2"));
        let other = store.create_user(user("bob", "AIDA3"));
        let (a, b, c) = tokio::join!(dup, dup2, other);
        assert!(a.is_ok() != b.is_ok(), "exactly one duplicate must fail");
        assert!(c.is_ok());
        assert_eq!(store.list_users("111111111111").await.unwrap().len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_usage_rollup_counts_each_committed_kms_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("k.db")).unwrap());
        let kms_event = |i: usize, key: &str, hour: i64| EventRow {
            event_time_ms: hour * 3_600_000 + i as i64,
            event_source: "kms.amazonaws.com".into(),
            event_name: "GenerateDataKey".into(),
            kms_usage: Some(crate::KmsUsageKey {
                key_arn: key.into(),
                operation: "GenerateDataKey".into(),
                source: "user".into(),
            }),
            ..event(i)
        };
        // Concurrent appends land in shared log groups and index batches.
        let mut tasks = Vec::new();
        for i in 0..300 {
            let (key, hour) = if i % 3 == 0 { ("k2", 7) } else { ("k1", 5) };
            let store = Arc::clone(&store);
            let row = kms_event(i, key, hour);
            tasks.push(tokio::spawn(
                async move { store.append_events(vec![row]).await },
            ));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let rows = store.kms_usage(0, i64::MAX, None).await.unwrap();
        let count = |key: &str, hour: i64| {
            rows.iter()
                .filter(|r| r.key_arn == key && r.hour_ms == hour * 3_600_000)
                .map(|r| r.requests)
                .sum::<i64>()
        };
        assert_eq!(count("k1", 5), 200);
        assert_eq!(count("k2", 7), 100);
        assert_eq!(rows.len(), 2);
    }

    #[tokio::test]
    async fn events_durable_in_the_log_but_not_in_the_tables_are_indexed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .append_events((0..3).map(event).collect())
            .await
            .unwrap();
        store.close().await;
        drop(store);
        // A crash after the log's fsync and before the index commit leaves this: records in
        // the log beyond what the tables hold.
        let mut unindexed: Vec<EventRow> = (3..8)
            .map(|i| EventRow {
                kms_usage: Some(crate::KmsUsageKey {
                    key_arn: "k1".into(),
                    operation: "Decrypt".into(),
                    source: "user".into(),
                }),
                ..event(i)
            })
            .collect();
        let mut log = EventLog::recover(&path.with_extension("events"), 3)
            .unwrap()
            .log;
        log.append(&mut unindexed).unwrap();
        drop(log);

        let store = SqliteStore::open(&path).unwrap();
        let events = store.recent_events(100).await.unwrap();
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(events[7].event_id, "e-7");
        let usage = store.kms_usage(0, i64::MAX, None).await.unwrap();
        assert_eq!(usage.iter().map(|u| u.requests).sum::<i64>(), 5);
        // Numbering goes on after the recovered events, and they are not indexed twice.
        store.append_events(vec![event(8)]).await.unwrap();
        store.close().await;
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        let events = store.recent_events(100).await.unwrap();
        assert_eq!(events.len(), 9);
        assert_eq!(events[8].seq, 9);
        let usage = store.kms_usage(0, i64::MAX, None).await.unwrap();
        assert_eq!(usage.iter().map(|u| u.requests).sum::<i64>(), 5);
    }

    #[tokio::test]
    async fn event_documents_live_in_the_log_until_retention_prunes_their_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let log_dir = path.with_extension("events");
        let segment_files = || {
            std::fs::read_dir(&log_dir)
                .unwrap()
                .filter(|e| {
                    let name = e.as_ref().unwrap().file_name();
                    name.to_string_lossy().starts_with("seg-")
                })
                .count()
        };
        let document = |i: usize| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(6000));
        let store = SqliteStore::open(&path).unwrap();
        // A group of the log each, and so a block each: retention below takes the first three.
        for batch in [0..5, 5..15, 15..25, 25..40] {
            let events = batch
                .map(|i| EventRow {
                    record_json: document(i),
                    ..event(i)
                })
                .collect();
            store.append_events(events).await.unwrap();
        }
        let read = store.events_after(0, 100).await.unwrap();
        assert_eq!(read.len(), 40);
        assert!(
            read.iter()
                .enumerate()
                .all(|(i, e)| e.record_json == document(i))
        );
        // The tables hold where each document is, not the document.
        let conn = Connection::open(&path).unwrap();
        let stored = crate::event_blocks::between(&conn, 1, 40).unwrap();
        assert_eq!(stored.len(), 40);
        assert!(
            stored
                .iter()
                .all(|e| e.logged_at.is_some() && e.row.record_json.is_empty())
        );
        let before = segment_files();
        assert!(before >= 3, "{before} segments");

        // Retention prunes the first 25; the segments holding only those go at the log's next
        // group, and every remaining document still reads.
        assert_eq!(
            store.delete_events_before(1_025, i64::MAX).await.unwrap(),
            25
        );
        store.append_events(vec![event(40)]).await.unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while segment_files() >= before && Instant::now() < deadline {
            store.append_events(vec![event(41)]).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(segment_files() < before, "no segment released");
        let check = |events: Vec<EventRow>| {
            assert_eq!(events[0].seq, 26);
            assert!(
                events[..15]
                    .iter()
                    .all(|e| e.record_json == document(e.seq as usize - 1))
            );
        };
        check(store.events_after(0, 100).await.unwrap());
        store.close().await;
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        check(store.events_after(0, 100).await.unwrap());
        // A key's last successful use is told by the documents: past more failures than one
        // page of candidates holds.
        let used = |i: usize, error: &str| EventRow {
            event_name: "Decrypt".into(),
            record_json: format!("{{\"n\":{i}{error}}}"),
            resources: vec![crate::EventResource {
                resource_type: "AWS::KMS::Key".into(),
                resource_name: "key-u".into(),
            }],
            ..event(i)
        };
        let last_use = || async {
            store
                .last_successful_event("000000000000", "us-east-1", "key-u", &["Decrypt"])
                .await
                .unwrap()
                .map(|e| e.event_id)
        };
        assert_eq!(last_use().await, None);
        let mut uses = vec![used(100, "")];
        uses.extend((101..120).map(|i| used(i, ",\"errorCode\":\"AccessDenied\"")));
        store.append_events(uses).await.unwrap();
        assert_eq!(last_use().await.as_deref(), Some("e-100"));
        store
            .append_events(vec![used(120, ",\"errorCode\":null")])
            .await
            .unwrap();
        assert_eq!(last_use().await.as_deref(), Some("e-120"));
        store.close().await;
        drop(store);

        // A segment lost while the table still holds its events is an error, not a gap.
        let segment = crate::event_blocks::BlockCursor::default()
            .get(&conn, 26)
            .unwrap()
            .and_then(|e| e.logged_at)
            .unwrap()
            .segment;
        std::fs::remove_file(log_dir.join(format!("seg-{segment:020}.log"))).unwrap();
        let store = SqliteStore::open(&path).unwrap();
        let err = store.events_after(0, 100).await.unwrap_err();
        assert!(err.to_string().contains("is missing"), "{err}");
        store.close().await;
    }

    #[tokio::test]
    async fn a_second_process_on_the_same_store_reads_events_but_cannot_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let owner = SqliteStore::open(&path).unwrap();
        owner.append_events(vec![event(1)]).await.unwrap();
        // Another process waits until the owner has indexed what its log held.
        let reader = SqliteStore::open(&path).unwrap();
        assert_eq!(reader.recent_events(10).await.unwrap().len(), 1);
        let refused = reader.append_events(vec![event(2)]).await.unwrap_err();
        assert!(
            refused.to_string().contains("owns the event log"),
            "{refused}"
        );
        reader.close().await;
        owner.close().await;
    }

    #[tokio::test]
    async fn the_keys_of_a_multi_region_key_change_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).unwrap();
        let key = |region: &str, json: &str| KmsKeyRow {
            account_id: "111111111111".into(),
            region: region.into(),
            key_id: "mrk-1".into(),
            record_json: json.into(),
        };
        let material = |id: &str| KeyMaterialRow {
            material_id: id.into(),
            wrapped_material: vec![9; 8],
            created_at_ms: 1,
            rotation_type: None,
        };
        let put = |region: &str, json: &str, ids: &[&str]| KmsKeyChange::Put {
            key: key(region, json),
            materials: ids.iter().map(|id| material(id)).collect(),
        };
        let get = |region: &'static str| {
            let store = &store;
            async move {
                store
                    .get_kms_key("111111111111", region, "mrk-1")
                    .await
                    .unwrap()
                    .map(|(row, materials)| {
                        let ids: Vec<String> =
                            materials.into_iter().map(|m| m.material_id).collect();
                        (row.record_json, ids)
                    })
            }
        };
        store
            .change_kms_keys(vec![put("us-east-1", "primary", &["m1", "m2"])])
            .await
            .unwrap();
        // The second put repeats a material the primary has: the whole change is undone.
        let failed = store
            .change_kms_keys(vec![
                put("eu-west-1", "replica", &["m1", "m2"]),
                put("us-east-1", "primary v2", &["m2"]),
            ])
            .await;
        assert!(failed.is_err());
        assert_eq!(get("eu-west-1").await, None);
        assert_eq!(
            get("us-east-1").await,
            Some(("primary".to_string(), vec!["m1".into(), "m2".into()]))
        );
        store
            .change_kms_keys(vec![
                put("eu-west-1", "replica", &["m1", "m2"]),
                put("us-east-1", "primary v2", &["m3"]),
            ])
            .await
            .unwrap();
        assert_eq!(
            get("eu-west-1").await,
            Some(("replica".to_string(), vec!["m1".into(), "m2".into()]))
        );
        store
            .change_kms_keys(vec![
                KmsKeyChange::Delete {
                    account_id: "111111111111".into(),
                    region: "eu-west-1".into(),
                    key_id: "mrk-1".into(),
                },
                put("us-east-1", "primary v3", &[]),
            ])
            .await
            .unwrap();
        assert_eq!(get("eu-west-1").await, None);
        assert_eq!(
            get("us-east-1").await,
            Some((
                "primary v3".to_string(),
                vec!["m1".into(), "m2".into(), "m3".into()]
            ))
        );
    }

    #[tokio::test]
    async fn kms_keys_materials_and_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).unwrap();
        let key = |json: &str| KmsKeyRow {
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
            key_id: "k1".into(),
            record_json: json.into(),
        };
        let material = |id: &str, at: i64| KeyMaterialRow {
            material_id: id.into(),
            wrapped_material: vec![9; 8],
            created_at_ms: at,
            rotation_type: None,
        };
        store
            .put_kms_key(key("{}"), Some(material("m1", 1)))
            .await
            .unwrap();
        store
            .put_kms_key(key("{\"v\":2}"), Some(material("m2", 2)))
            .await
            .unwrap();
        store.put_kms_key(key("{\"v\":3}"), None).await.unwrap();
        let (row, materials) = store
            .get_kms_key("111111111111", "us-east-1", "k1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.record_json, "{\"v\":3}");
        assert_eq!(
            materials
                .iter()
                .map(|m| m.material_id.as_str())
                .collect::<Vec<_>>(),
            vec!["m1", "m2"]
        );
        assert!(
            store
                .get_kms_key("111111111111", "eu-west-1", "k1")
                .await
                .unwrap()
                .is_none()
        );
        let alias = AliasRow {
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
            alias_name: "alias/a".into(),
            target_key_id: "k1".into(),
            created_at_ms: 1,
            updated_at_ms: 1,
        };
        store.create_alias(alias.clone()).await.unwrap();
        assert!(matches!(
            store.create_alias(alias.clone()).await,
            Err(StoreError::AlreadyExists { .. })
        ));
        let mut moved = alias.clone();
        moved.alias_name = "alias/missing".into();
        assert!(matches!(
            store.update_alias(moved).await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(
            store
                .list_aliases(Some(("111111111111", "us-east-1")))
                .await
                .unwrap()
                .len(),
            1
        );
        store
            .delete_kms_key("111111111111", "us-east-1", "k1")
            .await
            .unwrap();
        assert!(store.list_aliases(None).await.unwrap().is_empty());
        assert!(store.list_kms_keys(None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn buckets_and_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).unwrap();
        let bucket = BucketRow {
            name: "logs".into(),
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
            created_at_ms: 1,
            record_json: "{}".into(),
        };
        store.create_bucket(bucket.clone()).await.unwrap();
        assert!(matches!(
            store.create_bucket(bucket.clone()).await,
            Err(StoreError::AlreadyExists { .. })
        ));
        let object = |key: &str| ObjectRow {
            inline_body: None,
            bucket: "logs".into(),
            key: key.into(),
            size: 1,
            etag: "e".into(),
            modified_at_ms: 2,
            record_json: format!("{{\"k\":\"{key}\"}}"),
        };
        for key in ["a/1", "a/2", "a%_/x", "b", "A", "é"] {
            assert!(store.put_object(object(key)).await.unwrap().is_none());
        }
        assert_eq!(
            store.put_object(object("b")).await.unwrap().map(|o| o.key),
            Some("b".to_string()),
            "replacing returns the previous row"
        );
        let keys = |rows: Vec<ObjectRow>| rows.into_iter().map(|o| o.key).collect::<Vec<_>>();
        assert_eq!(
            keys(store.list_objects("logs", "", None, 100).await.unwrap()),
            vec!["A", "a%_/x", "a/1", "a/2", "b", "é"],
            "byte order"
        );
        assert_eq!(
            keys(store.list_objects("logs", "a%_", None, 100).await.unwrap()),
            vec!["a%_/x"],
            "LIKE wildcards in a prefix are literal"
        );
        assert_eq!(
            keys(
                store
                    .list_objects("logs", "a/", Some("a/1"), 100)
                    .await
                    .unwrap()
            ),
            vec!["a/2"]
        );
        assert_eq!(
            store.delete_bucket("logs").await.unwrap(),
            DeleteBucketOutcome::NotEmpty
        );
        for key in ["a/1", "a/2", "a%_/x", "b", "A", "é"] {
            assert!(store.delete_object("logs", key).await.unwrap().is_some());
        }
        assert!(store.delete_object("logs", "b").await.unwrap().is_none());
        assert_eq!(
            store.delete_bucket("logs").await.unwrap(),
            DeleteBucketOutcome::Deleted
        );
        assert_eq!(
            store.delete_bucket("logs").await.unwrap(),
            DeleteBucketOutcome::NotFound
        );
    }

    #[tokio::test]
    async fn access_keys_and_users() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).unwrap();
        store
            .ensure_account(AccountRecord {
                account_id: "111111111111".into(),
                created_at_ms: 1,
            })
            .await
            .unwrap();
        let user = UserRecord {
            account_id: "111111111111".into(),
            user_name: "alice".into(),
            user_id: "AIDAALICE".into(),
            created_at_ms: 2,
        };
        store.create_user(user.clone()).await.unwrap();
        assert!(matches!(
            store.create_user(user.clone()).await,
            Err(StoreError::AlreadyExists { .. })
        ));
        assert_eq!(
            store.get_user("111111111111", "alice").await.unwrap(),
            Some(user)
        );
        let key = AccessKeyRecord {
            access_key_id: "AKIATEST".into(),
            account_id: "111111111111".into(),
            user_name: Some("alice".into()),
            wrapped_secret: vec![1, 2, 3],
            status: "Active".into(),
            created_at_ms: 3,
        };
        store.insert_access_key(key.clone()).await.unwrap();
        assert!(!format!("{key:?}").contains("wrapped_secret"));
        assert_eq!(
            store.get_access_key("AKIATEST").await.unwrap(),
            Some(key.clone())
        );
        assert_eq!(store.list_access_keys().await.unwrap(), vec![key]);
        assert!(store.delete_access_key("AKIATEST").await.unwrap());
        assert!(!store.delete_access_key("AKIATEST").await.unwrap());
        assert!(store.get_access_key("AKIATEST").await.unwrap().is_none());
        assert!(store.is_healthy().await);
    }

    /// Every page of every lookup equals the brute-force answer over all events — with event
    /// times out of journal order by more than a posting's span, appends of varied sizes, two
    /// accounts and data events mixed in.
    #[tokio::test]
    async fn postings_answer_lookups_exactly_even_when_times_go_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).unwrap();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut all = Vec::new();
        let mut time = 10_000_000_i64;
        let mut i = 0;
        while i < 400 {
            let size = 1 + next(40) as usize;
            let mut batch = Vec::new();
            for _ in 0..size {
                let mut e = event(i);
                // Mostly forwards; now and then minutes back (a slow request, a clock step).
                time += if next(10) == 0 {
                    -(next(5 * POSTING_SPAN as u64) as i64)
                } else {
                    next(40_000) as i64
                };
                e.event_time_ms = time;
                e.event_name = ["Decrypt", "Encrypt", "CreateKey"][next(3) as usize].into();
                e.read_only = next(2) == 0;
                e.management = next(8) != 0;
                e.account_id = if next(6) == 0 {
                    "111111111111"
                } else {
                    "000000000000"
                }
                .into();
                e.username = (next(4) != 0).then(|| format!("user{}", next(3)));
                e.resources = vec![crate::EventResource {
                    resource_type: "AWS::KMS::Key".into(),
                    resource_name: format!("key-{}", next(4)),
                }];
                batch.push(e);
                i += 1;
            }
            store.append_events(batch.clone()).await.unwrap();
            all.extend(batch);
        }
        // A fresh journal numbers events from 1, in append order.
        for (n, e) in all.iter_mut().enumerate() {
            e.seq = n as i64 + 1;
        }
        let stored = store.recent_events(all.len()).await.unwrap();
        assert_eq!(
            stored.iter().map(|e| &e.event_id).collect::<Vec<_>>(),
            all.iter().map(|e| &e.event_id).collect::<Vec<_>>()
        );
        assert_eq!(stored.last().map(|e| e.seq), Some(all.len() as i64));
        let attributes = [
            None,
            Some(LookupAttribute::EventName("CreateKey".into())),
            Some(LookupAttribute::ReadOnly(false)),
            Some(LookupAttribute::Username("user1".into())),
            Some(LookupAttribute::ResourceName("key-2".into())),
            Some(LookupAttribute::ResourceType("AWS::KMS::Key".into())),
            Some(LookupAttribute::EventId(
                all.iter()
                    .find(|e| e.account_id == "000000000000" && e.management)
                    .map(|e| e.event_id.clone())
                    .unwrap(),
            )),
        ];
        let first = all.iter().map(|e| e.event_time_ms).min().unwrap();
        let span = all.iter().map(|e| e.event_time_ms).max().unwrap() - first;
        let windows = [(0, i64::MAX), (first + span / 3, first + span / 2)];
        for attribute in attributes {
            for (start_ms, end_ms) in windows {
                let mut expected: Vec<&EventRow> = all
                    .iter()
                    .filter(|e| {
                        e.account_id == "000000000000"
                            && e.management
                            && (start_ms..=end_ms).contains(&e.event_time_ms)
                            && match &attribute {
                                None => true,
                                Some(LookupAttribute::EventName(v)) => &e.event_name == v,
                                Some(LookupAttribute::ReadOnly(v)) => e.read_only == *v,
                                Some(LookupAttribute::Username(v)) => {
                                    e.username.as_ref() == Some(v)
                                }
                                Some(LookupAttribute::ResourceName(v)) => {
                                    &e.resources[0].resource_name == v
                                }
                                Some(LookupAttribute::EventId(v)) => &e.event_id == v,
                                _ => true,
                            }
                    })
                    .collect();
                expected.sort_by_key(|e| std::cmp::Reverse((e.event_time_ms, e.seq)));
                let mut got = Vec::new();
                let mut page = lookup(attribute.clone(), 7);
                page.start_ms = start_ms;
                page.end_ms = end_ms;
                loop {
                    let rows = store.lookup_events(page.clone()).await.unwrap();
                    let Some(last) = rows.last() else { break };
                    page.before = Some((last.event_time_ms, last.seq));
                    got.extend(rows.into_iter().map(|e| e.seq));
                }
                let expected: Vec<i64> = expected.iter().map(|e| e.seq).collect();
                assert!(!expected.is_empty() || start_ms > 0, "{attribute:?}");
                assert_eq!(got, expected, "{attribute:?} in {start_ms}..={end_ms}");
            }
        }
        // Delivery reads one account's events, data events included, in journal order.
        let mut delivered = Vec::new();
        let mut after = 0;
        loop {
            let rows = store
                .account_events_after("111111111111", after, 9)
                .await
                .unwrap();
            let Some(last) = rows.last() else { break };
            after = last.seq;
            delivered.extend(rows.into_iter().map(|e| e.seq));
        }
        let expected: Vec<i64> = all
            .iter()
            .filter(|e| e.account_id == "111111111111")
            .map(|e| e.seq)
            .collect();
        assert_eq!(delivered, expected);
        // A key's newest use, and the oldest event of the region.
        let newest_create = all
            .iter()
            .filter(|e| {
                e.account_id == "000000000000"
                    && e.management
                    && e.event_name == "CreateKey"
                    && e.resources[0].resource_name == "key-3"
            })
            .max_by_key(|e| (e.event_time_ms, e.seq))
            .unwrap();
        let last_used = store
            .last_successful_event("000000000000", "us-east-1", "key-3", &["CreateKey"])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(last_used.seq, newest_create.seq);
        let oldest = all
            .iter()
            .filter(|e| e.account_id == "000000000000" && e.management)
            .map(|e| e.event_time_ms)
            .min();
        assert_eq!(
            store
                .oldest_event_ms("000000000000", "us-east-1")
                .await
                .unwrap(),
            oldest
        );

        // Retention deletes from the oldest event up to the first one newer than the cutoff;
        // what remains is still found exactly.
        let cutoff = first + span / 2;
        let boundary = all
            .iter()
            .find(|e| e.event_time_ms >= cutoff)
            .map_or(i64::MAX, |e| e.seq);
        let kept: Vec<&EventRow> = all
            .iter()
            .filter(|e| e.seq >= boundary || e.event_time_ms >= cutoff)
            .collect();
        let deleted = store.delete_events_before(cutoff, i64::MAX).await.unwrap();
        assert_eq!(deleted, all.len() - kept.len());
        assert!(deleted > 0);
        let mut expected: Vec<i64> = kept
            .iter()
            .filter(|e| e.account_id == "000000000000" && e.management)
            .map(|e| (e.event_time_ms, e.seq))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .rev()
            .map(|(_, seq)| seq)
            .collect();
        expected.truncate(1000);
        let remaining = store.lookup_events(lookup(None, 1000)).await.unwrap();
        assert_eq!(
            remaining.iter().map(|e| e.seq).collect::<Vec<_>>(),
            expected
        );
        let delivered = store
            .account_events_after("111111111111", 0, 1000)
            .await
            .unwrap();
        assert_eq!(
            delivered.iter().map(|e| e.seq).collect::<Vec<_>>(),
            kept.iter()
                .filter(|e| e.account_id == "111111111111")
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        );
    }

    /// A store written before postings existed (schema 12: an index per attribute and an
    /// `event_resources` table) is migrated: its events are found by every lookup.
    #[tokio::test]
    async fn events_indexed_before_postings_existed_are_found_after_the_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            for (_, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 12) {
                tx.execute_batch(sql).unwrap();
            }
            tx.execute_batch(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY,
                     applied_at_ms BIGINT NOT NULL);
                 INSERT INTO schema_migrations
                     SELECT value, 0 FROM json_each('[1,2,3,4,5,6,7,8,9,10,11,12]');",
            )
            .unwrap();
            for i in 1..=3_i64 {
                tx.execute(
                    "INSERT INTO events (seq, event_id, event_time_ms, account_id, region,
                         event_source, event_name, request_id, access_key_id, read_only,
                         management, record_json, username)
                     VALUES (?1, 'e-' || ?1, 1000 + ?1, '000000000000', 'us-east-1',
                         'kms.amazonaws.com', 'Decrypt', 'r', 'AKIA', 1, ?1 != 3, '{}', 'alice')",
                    params![i],
                )
                .unwrap();
                tx.execute(
                    "INSERT INTO event_resources VALUES
                         (?1, '000000000000', 'us-east-1', 'AWS::KMS::Key', 'key-a', 1000 + ?1)",
                    params![i],
                )
                .unwrap();
            }
            tx.execute("UPDATE event_log_state SET indexed_through = 3", [])
                .unwrap();
            tx.commit().unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let seqs = |rows: Vec<EventRow>| rows.into_iter().map(|e| e.seq).collect::<Vec<_>>();
        for attribute in [
            None,
            Some(LookupAttribute::EventName("Decrypt".into())),
            Some(LookupAttribute::Username("alice".into())),
            Some(LookupAttribute::AccessKeyId("AKIA".into())),
            Some(LookupAttribute::ResourceName("key-a".into())),
            Some(LookupAttribute::ReadOnly(true)),
        ] {
            let found = store.lookup_events(lookup(attribute.clone(), 10)).await;
            assert_eq!(seqs(found.unwrap()), [2, 1], "{attribute:?}");
        }
        assert_eq!(
            seqs(
                store
                    .account_events_after("000000000000", 1, 10)
                    .await
                    .unwrap()
            ),
            [2, 3]
        );
        // New events continue the journal and are found beside the migrated ones.
        let mut e = event(4);
        e.event_time_ms = 5_000;
        e.event_name = "Decrypt".into();
        store.append_events(vec![e]).await.unwrap();
        let found = store
            .lookup_events(lookup(
                Some(LookupAttribute::EventName("Decrypt".into())),
                10,
            ))
            .await
            .unwrap();
        assert_eq!(seqs(found), [4, 2, 1]);
    }

    fn lookup(attribute: Option<LookupAttribute>, limit: usize) -> EventLookup {
        EventLookup {
            account_id: "000000000000".into(),
            region: "us-east-1".into(),
            attribute,
            start_ms: 0,
            end_ms: i64::MAX,
            before: None,
            limit,
        }
    }

    #[tokio::test]
    async fn lookups_by_event_id_find_stamped_and_listed_ids_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let store = SqliteStore::open(&path).unwrap();
        // A UUID v7 stamped at `ms`, distinct per `n`.
        let v7 = |ms: i64, n: u32| {
            let hex = format!("{ms:012x}");
            format!("{}-{}-7{n:03x}-8000-00000000{n:04x}", &hex[..8], &hex[8..])
        };
        let second = 1_764_000_000_000;
        let mut events = Vec::new();
        for n in 0..40u32 {
            let mut e = event(n as usize);
            // Event times are whole seconds; the ids are stamped within them.
            e.event_time_ms = second + i64::from(n / 10) * 1000;
            e.event_id = v7(e.event_time_ms + i64::from(n * 7 % 1000), n);
            events.push(e);
        }
        // An id stamped in another second than its event's, and one that is no UUID.
        events[5].event_id = v7(second - 5_000, 500);
        events[6].event_id = "not-a-uuid".into();
        store.append_events(events.clone()).await.unwrap();

        for e in &events {
            let found = store
                .lookup_events(lookup(
                    Some(LookupAttribute::EventId(e.event_id.clone())),
                    50,
                ))
                .await
                .unwrap();
            assert_eq!(
                found
                    .iter()
                    .map(|f| f.event_id.as_str())
                    .collect::<Vec<_>>(),
                [e.event_id.as_str()]
            );
        }
        // Only the two ids that do not tell their second are listed.
        let conn = Connection::open(&path).unwrap();
        let listed: Vec<String> = conn
            .prepare("SELECT event_id FROM event_ids ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(listed, [events[5].event_id.clone(), "not-a-uuid".into()]);

        // Unknown ids, the window, the account and the page's cursor all still apply.
        let by_id = |id: String| lookup(Some(LookupAttribute::EventId(id)), 50);
        let unknown = store.lookup_events(by_id(v7(second, 999))).await.unwrap();
        assert!(unknown.is_empty());
        let mut outside = by_id(events[12].event_id.clone());
        outside.end_ms = second + 999;
        assert!(store.lookup_events(outside).await.unwrap().is_empty());
        let mut other_account = by_id(events[6].event_id.clone());
        other_account.account_id = "111111111111".into();
        assert!(store.lookup_events(other_account).await.unwrap().is_empty());
        let mut next_page = by_id(events[20].event_id.clone());
        next_page.before = Some((events[20].event_time_ms, 21));
        assert!(store.lookup_events(next_page).await.unwrap().is_empty());

        // Pruned events take their listed ids with them.
        assert_eq!(
            store
                .delete_events_before(i64::MAX, i64::MAX)
                .await
                .unwrap(),
            40
        );
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM event_ids", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        store.close().await;
    }

    #[tokio::test]
    async fn event_history_lookups_page_newest_first_and_retention_spares_undelivered_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).unwrap();
        let mut events = Vec::new();
        for i in 0..30 {
            let mut e = event(i);
            e.event_name = if i % 3 == 0 {
                "Decrypt".into()
            } else {
                "Encrypt".into()
            };
            e.read_only = i % 2 == 0;
            e.username = Some(format!("user{}", i % 5));
            e.management = i != 29;
            e.resources = vec![crate::EventResource {
                resource_type: "AWS::KMS::Key".into(),
                resource_name: format!("key-{}", i % 4),
            }];
            events.push(e);
        }
        let mut other_region = event(100);
        other_region.region = "eu-west-1".into();
        events.push(other_region);
        // Each append is a group of the log and so a block of the tables: retention deletes
        // whole blocks.
        let newest = events.split_off(20);
        let middle = events.split_off(5);
        for group in [events, middle, newest] {
            store.append_events(group).await.unwrap();
        }

        // Newest first; data events (29) and other regions never appear.
        let all = store.lookup_events(lookup(None, 100)).await.unwrap();
        assert_eq!(all.len(), 29);
        assert_eq!(all[0].event_id, "e-28");
        let decrypts = store
            .lookup_events(lookup(
                Some(LookupAttribute::EventName("Decrypt".into())),
                100,
            ))
            .await
            .unwrap();
        assert_eq!(decrypts.len(), 10);
        assert!(decrypts.iter().all(|e| e.event_name == "Decrypt"));
        let by_key = store
            .lookup_events(lookup(
                Some(LookupAttribute::ResourceName("key-1".into())),
                100,
            ))
            .await
            .unwrap();
        assert_eq!(
            by_key
                .iter()
                .map(|e| e.event_id.as_str())
                .collect::<Vec<_>>(),
            ["e-25", "e-21", "e-17", "e-13", "e-9", "e-5", "e-1"]
        );
        let by_user = store
            .lookup_events(lookup(Some(LookupAttribute::Username("user2".into())), 100))
            .await
            .unwrap();
        assert_eq!(by_user.len(), 6);
        let reads = store
            .lookup_events(lookup(Some(LookupAttribute::ReadOnly(true)), 100))
            .await
            .unwrap();
        assert!(reads.iter().all(|e| e.read_only));
        // Paging continues strictly below the last row of the previous page.
        let first = store.lookup_events(lookup(None, 10)).await.unwrap();
        let last = first.last().unwrap();
        let mut next = lookup(None, 10);
        next.before = Some((last.event_time_ms, last.seq));
        let second = store.lookup_events(next).await.unwrap();
        assert_eq!(second[0].event_id, "e-18");
        // A time window.
        let mut window = lookup(None, 100);
        window.start_ms = 1_010;
        window.end_ms = 1_014;
        assert_eq!(store.lookup_events(window).await.unwrap().len(), 5);

        // Retention deletes old events only up to what every trail delivered.
        let deleted = store.delete_events_before(1_020, 5).await.unwrap();
        assert_eq!(deleted, 5);
        let remaining = store.lookup_events(lookup(None, 100)).await.unwrap();
        assert_eq!(remaining.len(), 24);
        assert!(remaining.iter().all(|e| e.seq > 5));
        let deleted = store.delete_events_before(1_020, i64::MAX).await.unwrap();
        assert_eq!(deleted, 15);
        // A block goes only once all its events are old enough.
        let deleted = store.delete_events_before(1_025, i64::MAX).await.unwrap();
        assert_eq!(deleted, 0);
        assert_eq!(
            store.lookup_events(lookup(None, 100)).await.unwrap().len(),
            9
        );
    }
}
