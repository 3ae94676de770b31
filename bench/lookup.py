"""LookupEvents at scale: Event history with EVENTS (default 10 million) management events over 90
days, each lookup attribute timed through the real server with boto3.

The journal is filled directly in SQLite with the schema keytrail created (synthetic events of
the account `000000000000`: 40 operation names, 4 sources, 200 users with their access keys, 2,000
key ARNs as resources), then the server is started on it. Prints the median latency of each
lookup; a reference is the server's own trivial call (GetCallerIdentity) in the same run.
  EVENTS=10000000 bench/lookup.sh
"""

import json
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid

import boto3

import bench

EVENTS = int(os.environ.get("EVENTS", "10000000"))
ACCOUNT = "000000000000"
REGION = "us-east-1"
DAY_MS = 86_400_000
NAMES = [f"Operation{i:02d}" for i in range(40)]
SOURCES = ["kms.amazonaws.com", "s3.amazonaws.com", "iam.amazonaws.com", "sts.amazonaws.com"]
USERS = [f"user{i:03d}" for i in range(200)]
KEYS = [f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{uuid.UUID(int=i)}" for i in range(2000)]


def fill(db_path, count):
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = int(time.time() * 1000)
    rng = random.Random(7)
    batch = 200_000
    for start_at in range(0, count, batch):
        events, resources = [], []
        seq0 = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        for i in range(start_at, min(count, start_at + batch)):
            t = now - 90 * DAY_MS + (90 * DAY_MS * i) // count
            name, source = rng.choice(NAMES), rng.choice(SOURCES)
            u = rng.randrange(len(USERS))
            key = rng.choice(KEYS)
            read_only = rng.random() < 0.7
            event_id = str(uuid.UUID(int=rng.getrandbits(128)))
            record = json.dumps({
                "eventVersion": "1.11", "eventTime": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(t / 1000)),
                "eventSource": source, "eventName": name, "awsRegion": REGION,
                "userIdentity": {"type": "IAMUser", "userName": USERS[u]},
                "eventID": event_id, "readOnly": read_only,
                "resources": [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key}],
                "managementEvent": True, "eventCategory": "Management"})
            events.append((event_id, t, ACCOUNT, REGION, source, name, f"r-{i}",
                           f"AKIA{u:016d}", read_only, True, record, USERS[u]))
            resources.append((seq0 + len(events), ACCOUNT, REGION, "AWS::KMS::Key", key, t))
        db.executemany(
            "INSERT INTO events (event_id, event_time_ms, account_id, region, event_source, "
            "event_name, request_id, access_key_id, read_only, management, record_json, username) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", events)
        db.executemany(
            "INSERT INTO event_resources (seq, account_id, region, resource_type, resource_name, "
            "event_time_ms) VALUES (?,?,?,?,?,?)", resources)
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
    summary = {"events": EVENTS, "fill_s": round(fill_s), "database_gib": round(size / 2**30, 2),
               "reference_GetCallerIdentity_ms": reference, "lookups": results,
               "slowest_lookup_ms": max(r["median_ms"] for r in results.values())}
    os.makedirs(bench.OUT, exist_ok=True)
    with open(os.path.join(bench.OUT, "lookup.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
