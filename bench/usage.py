"""KMS usage over a month at 100 requests per second: how fast `keytrail usage` and
`GET /_keytrail/usage` answer from the hourly rollup.

The server creates its schema and KEYS customer managed keys; then the `kms_usage` rollup is
filled directly in SQLite with what a month (720 hours) at RATE requests per second over those
keys leaves: one row per hour, key, operation (GenerateDataKey, Decrypt, Encrypt) and source
(user, s3, cloudtrail). The server is started again on it and each query is timed (median of
seven); the reference is the server's own trivial call (GetCallerIdentity) and the CLI over an
empty range (the process's start-up), measured in the same run.
  RATE=100 KEYS=20 bench/usage.sh
"""

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import bench

RATE = int(os.environ.get("RATE", "100"))
KEYS = int(os.environ.get("KEYS", "20"))
ACCOUNT = "000000000000"
REGION = "us-east-1"
HOUR_MS = 3_600_000
HOURS = 720
OPERATIONS = ["GenerateDataKey", "Decrypt", "Encrypt"]
SOURCES = ["user", "s3", "cloudtrail"]
MONTH_START = "2026-10-01T00:00:00Z"
MONTH_START_MS = 1_790_812_800_000  # 2026-10-01T00:00:00Z
MONTH_END = "2026-10-31T00:00:00Z"


def fill(db_path, key_arns):
    rows = []
    combos = len(key_arns) * len(OPERATIONS) * len(SOURCES)
    per_row = RATE * 3600 // combos
    for hour in range(HOURS):
        for arn in key_arns:
            for operation in OPERATIONS:
                for source in SOURCES:
                    rows.append((ACCOUNT, REGION, MONTH_START_MS + hour * HOUR_MS, arn,
                                 operation, source, per_row))
    db = sqlite3.connect(db_path)
    db.executemany("INSERT INTO kms_usage (account_id, region, hour_ms, key_arn, operation, "
                   "source, requests) VALUES (?,?,?,?,?,?,?)", rows)
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return len(rows), len(rows) * per_row


def main():
    data = tempfile.TemporaryDirectory()
    config = bench.keytrail_config(data.name)
    data_dir = os.path.join(data.name, "data")
    port = bench.free_port()
    args = dict(endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
                aws_access_key_id="test", aws_secret_access_key="test")
    first = bench.start_keytrail(config, data_dir, port)
    try:
        kms = boto3.session.Session().client("kms", **args)
        key_arns = [kms.create_key(Description=f"usage {i}")["KeyMetadata"]["Arn"]
                    for i in range(KEYS)]
    finally:
        first.stop()
    rows, requests = fill(os.path.join(data_dir, "keytrail.db"), key_arns)
    binary = bench.keytrail_binary()

    def cli(start, end, fmt="json"):
        def run():
            out = subprocess.run([binary, "--config", config, "--data-dir", data_dir, "usage",
                                  "--start", start, "--end", end, "--format", fmt],
                                 capture_output=True, text=True, check=True).stdout
            return json.loads(out) if fmt == "json" else out
        return run

    server = bench.start_keytrail(config, data_dir, port)
    try:
        sts = boto3.session.Session().client("sts", **args)
        reference_ms, _ = bench.timed(lambda: sts.get_caller_identity())

        def api(query):
            def run():
                url = f"http://127.0.0.1:{port}/_keytrail/usage?{query}"
                request = AWSRequest(method="GET", url=url)
                SigV4Auth(Credentials("test", "test"), "keytrail", REGION).add_auth(request)
                try:
                    with urllib.request.urlopen(urllib.request.Request(
                            url, headers=dict(request.headers.items()))) as resp:
                        return json.loads(resp.read())
                except urllib.error.HTTPError as e:
                    raise RuntimeError(f"{url}: {e.code} {e.read()!r}") from None
            return run

        results = {"GetCallerIdentity (reference)": reference_ms}
        for group in ("key", "source", "operation", "hour"):
            # Encoded as SDKs encode it (botocore signs the query as given).
            query = urllib.parse.urlencode(
                {"start": MONTH_START, "end": MONTH_END, "groupBy": group})
            ms, body = bench.timed(api(query))
            results[f"API groupBy={group}"] = ms
            if group == "key":
                api_requests = body["requests"]
        empty_ms, _ = bench.timed(cli("2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"))
        results["CLI, empty range (reference: start-up)"] = empty_ms
        ms, report = bench.timed(cli(MONTH_START, MONTH_END))
        results["CLI --format json, the month"] = ms
        ms, _ = bench.timed(cli(MONTH_START, MONTH_END, "html"))
        results["CLI --format html, the month"] = ms
    finally:
        server.stop()
    expected = requests  # the range is the 720 filled hours
    print(f"\nKMS usage: a month at {RATE} requests/s over {KEYS} keys = {requests:,} requests "
          f"in {rows:,} rollup rows; the range holds {expected:,}")
    print(f"{'query':<42} {'median ms':>10} {'x reference':>12}")
    for name, ms in results.items():
        reference = empty_ms if name.startswith("CLI") else reference_ms
        print(f"{name:<42} {ms:>10.1f} {ms / reference:>12.1f}")
    ok = report["requests"] == expected and api_requests == expected
    print(f"totals: CLI {report['requests']:,}, API {api_requests:,} "
          f"({'both as filled' if ok else 'MISMATCH'})")
    os.makedirs(bench.OUT, exist_ok=True)
    with open(os.path.join(bench.OUT, "usage.json"), "w") as f:
        json.dump({"rate": RATE, "keys": KEYS, "rows": rows, "requests": requests,
                   "median_ms": results}, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
