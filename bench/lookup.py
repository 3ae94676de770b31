"""LookupEvents at scale: Event history with EVENTS (default 10 million) management events over 90
days, each lookup attribute timed through the real server with boto3.

The journal is filled directly in SQLite with the schema keytrail created (synthetic events of
the account `000000000000`: 40 operation names, 4 sources, 200 users with their access keys, 2,000
key ARNs as resources), with the event blocks and postings the server's indexing transactions would write for
them, PER_TX events per transaction (default 1: what a server sees at 10 million events in 90
days, about one a second), then the server is started on it. Prints the median latency of each
lookup; a reference is the server's own trivial call (GetCallerIdentity) in the same run.
  EVENTS=10000000 bench/lookup.sh
"""

import json
import os
import random
import sqlite3
import struct
import sys
import tempfile
import time
import uuid

import boto3

import bench

EVENTS = int(os.environ.get("EVENTS", "10000000"))
PER_TX = int(os.environ.get("PER_TX", "1"))
# The widest time span of one posting (store::event_index::POSTING_SPAN_MS).
POSTING_SPAN_MS = 60_000
ACCOUNT = "000000000000"
REGION = "us-east-1"
DAY_MS = 86_400_000
NAMES = [f"Operation{i:02d}" for i in range(40)]
SOURCES = ["kms.amazonaws.com", "s3.amazonaws.com", "iam.amazonaws.com", "sts.amazonaws.com"]
USERS = [f"user{i:03d}" for i in range(200)]
KEYS = [f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{uuid.UUID(int=i)}" for i in range(2000)]


def postings_of(transaction):
    """The rows of event_postings one indexing transaction writes for (seq, t, event) triples,
    by the server's rule: one per attribute value, split where its events span over a minute."""
    runs = {}
    for seq, t, (source, name, read_only, user, access_key, key) in transaction:
        for attribute, value in (("", ""), ("EventName", name), ("EventSource", source),
                                 ("ReadOnly", "true" if read_only else "false"),
                                 ("Username", user), ("AccessKeyId", access_key),
                                 ("ResourceType", "AWS::KMS::Key"), ("ResourceName", key)):
            groups = runs.setdefault((attribute, value), [])
            if groups and t - groups[-1][1] <= POSTING_SPAN_MS:
                groups[-1][0].append(seq)
                groups[-1][2] = t
            else:
                groups.append([[seq], t, t])
    rows = []
    for (attribute, value), groups in runs.items():
        for seqs, first_t, last_t in groups:
            text = ",".join(str(b - a) for a, b in zip([0] + seqs, seqs))
            rows.append((ACCOUNT, REGION, attribute, value, last_t, seqs[-1], first_t, text))
    return rows


def v7_id(rng, t_ms):
    """A UUID v7 stamped at `t_ms`, as keytrail's event ids are (audit::event_id_at)."""
    value = (t_ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62)
    return str(uuid.UUID(int=value | rng.getrandbits(62)))


def put_str(out, text):
    data = text.encode()
    out += struct.pack("<I", len(data)) + data


def put_repeated(out, text, previous):
    """A field as store::event_blocks writes it: a tag, then the text unless it repeats."""
    if text is None:
        out.append(3)
    elif text == previous:
        out.append(2)
    else:
        out.append(0)
        put_str(out, text)


def event_block(events):
    """The `entries` of an event_blocks row (store::event_blocks::encode), documents inline."""
    out = bytearray([1])
    previous = (None,) * 6
    for (seq, event_id, t, account, region, source, name, request_id, access_key, read_only,
         management, record, user) in events:
        out += struct.pack("<qqB", seq, t, int(read_only) | int(management) << 1)
        out.append(1)
        out += uuid.UUID(event_id).bytes
        out.append(0)
        put_str(out, request_id)
        shared = (account, region, source, name, access_key, user)
        for text, before in zip(shared, previous):
            put_repeated(out, text, before)
        previous = shared
        put_str(out, record)
    return bytes(out)


def fill(db_path, count):
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = int(time.time() * 1000)
    rng = random.Random(7)
    batch = 200_000
    for start_at in range(0, count, batch):
        events, postings, runs, transaction, blocks = [], [], [], [], []
        block_start = 0
        seq0 = db.execute(
            "SELECT COALESCE(MAX(last_seq), 0) FROM event_blocks").fetchone()[0]
        for i in range(start_at, min(count, start_at + batch)):
            t = now - 90 * DAY_MS + (90 * DAY_MS * i) // count
            name, source = rng.choice(NAMES), rng.choice(SOURCES)
            u = rng.randrange(len(USERS))
            key = rng.choice(KEYS)
            read_only = rng.random() < 0.7
            event_id = v7_id(rng, t - t % 1000 + rng.randrange(1000))
            record = json.dumps({
                "eventVersion": "1.11", "eventTime": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(t / 1000)),
                "eventSource": source, "eventName": name, "awsRegion": REGION,
                "userIdentity": {"type": "IAMUser", "userName": USERS[u]},
                "eventID": event_id, "readOnly": read_only,
                "resources": [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key}],
                "managementEvent": True, "eventCategory": "Management"})
            seq = seq0 + len(events) + 1
            events.append((seq, event_id, t, ACCOUNT, REGION, source, name, f"r-{i}",
                           f"AKIA{u:016d}", read_only, True, record, USERS[u]))
            transaction.append((seq, t, (source, name, read_only, USERS[u],
                                         f"AKIA{u:016d}", key)))
            if len(transaction) == PER_TX:
                postings.extend(postings_of(transaction))
                runs.append((ACCOUNT, transaction[-1][0], transaction[0][0], transaction[-1][1]))
                transaction = []
                blocks.append(events[block_start:])
                block_start = len(events)
        if transaction:
            postings.extend(postings_of(transaction))
            runs.append((ACCOUNT, transaction[-1][0], transaction[0][0], transaction[-1][1]))
            blocks.append(events[block_start:])
        db.executemany(
            "INSERT INTO event_blocks (first_seq, last_seq, max_time_ms, event_count, entries) "
            "VALUES (?,?,?,?,?)",
            ((b[0][0], b[-1][0], max(e[2] for e in b), len(b), event_block(b)) for b in blocks))
        db.executemany(
            "INSERT INTO event_postings (account_id, region, attribute, value, max_time_ms, "
            "last_seq, min_time_ms, seqs) VALUES (?,?,?,?,?,?,?,?)", postings)
        db.executemany(
            "INSERT INTO event_account_runs (account_id, last_seq, first_seq, max_time_ms) "
            "VALUES (?,?,?,?)", runs)
        db.execute("UPDATE event_log_state SET indexed_through = ?", (seq0 + len(events),))
        db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def main():
    data = tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP"))
    config = bench.keytrail_config(data.name)
    data_dir = os.path.join(data.name, "data")
    port = bench.free_port()
    first = bench.start_keytrail(config, data_dir, port)
    first.stop()
    started = time.monotonic()
    fill(os.path.join(data_dir, "keytrail.db"), EVENTS)
    fill_s = time.monotonic() - started
    server = bench.start_keytrail(config, data_dir, port)
    try:
        session = boto3.session.Session()
        args = dict(endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
                    aws_access_key_id="test", aws_secret_access_key="test")
        ct, sts = session.client("cloudtrail", **args), session.client("sts", **args)
        reference, _ = bench.timed(lambda: sts.get_caller_identity())

        def lookup(key=None, value=None, **extra):
            attrs = ([{"AttributeKey": key, "AttributeValue": value}] if key else [])
            return lambda: ct.lookup_events(LookupAttributes=attrs, **extra)

        middle = time.time() - 45 * 86400
        cases = {
            "newest 50, no attribute": lookup(),
            "EventName": lookup("EventName", "Operation07"),
            "EventSource": lookup("EventSource", "iam.amazonaws.com"),
            "Username": lookup("Username", "user123"),
            "AccessKeyId": lookup("AccessKeyId", f"AKIA{123:016d}"),
            "ReadOnly": lookup("ReadOnly", "false"),
            "ResourceName": lookup("ResourceName", KEYS[1234]),
            "ResourceType": lookup("ResourceType", "AWS::KMS::Key"),
            "EventId (the newest event's)": None,
            "EventName, one day 45 days ago": lookup("EventName", "Operation07",
                                                     StartTime=middle, EndTime=middle + 86400),
        }
        results = {}
        newest = ct.lookup_events(MaxResults=1)["Events"][0]["EventId"]
        cases["EventId (the newest event's)"] = lookup("EventId", newest)
        for name, call in cases.items():
            ms, out = bench.timed(call)
            results[name] = {"median_ms": ms, "events": len(out["Events"])}
        token = ct.lookup_events(MaxResults=50)["NextToken"]
        ms, _ = bench.timed(lambda: ct.lookup_events(MaxResults=50, NextToken=token))
        results["second page"] = {"median_ms": ms, "events": 50}
        size = sum(os.path.getsize(os.path.join(data_dir, f)) for f in os.listdir(data_dir)
                   if f.startswith("keytrail.db"))
    finally:
        server.stop()
    summary = {"events": EVENTS, "events_per_transaction": PER_TX, "fill_s": round(fill_s), "database_gib": round(size / 2**30, 2),
               "reference_GetCallerIdentity_ms": reference, "lookups": results,
               "slowest_lookup_ms": max(r["median_ms"] for r in results.values())}
    os.makedirs(bench.OUT, exist_ok=True)
    with open(os.path.join(bench.OUT, "lookup.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
