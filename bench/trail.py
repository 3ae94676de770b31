"""CloudTrail delivery under load: does delivery keep up with the journal, and what does a
logging trail cost KMS?

One keytrail server (release build) with a trail encrypted under a KMS key (SSE-KMS log files):
  A. GenerateDataKey at full speed for DURATION s while the trail is *not* logging: KMS
     throughput without a trail; the journal fills up;
  B. StartLogging: the trail's first delivery starts at its creation, so it delivers everything
     phase A journaled — the time to write those events into log files;
  C. GenerateDataKey at full speed for DURATION s while the trail logs (delivery every
     DELIVERY_SECONDS): KMS throughput with a trail, and the undelivered backlog sampled every
     5 s (it must not grow).
The null server under the same wrk load gives the machine's ceiling. Prints ratios.
  DURATION=60 DELIVERY_SECONDS=5 bench/trail.sh
"""

import json
import os
import sqlite3
import sys
import tempfile
import threading
import time

import boto3

import bench

DELIVERY_SECONDS = int(os.environ.get("DELIVERY_SECONDS", "5"))
ACCOUNT = "000000000000"
TRAIL = "bench"
TRAIL_ARN = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/{TRAIL}"
BUCKET = "bench-trail-logs"


def client(service, port):
    return boto3.session.Session().client(
        service, endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test")


def set_up_trail(port):
    s3, kms, ct = client("s3", port), client("kms", port), client("cloudtrail", port)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:GetBucketAcl", "Resource": f"arn:aws:s3:::{BUCKET}"},
            {"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/AWSLogs/{ACCOUNT}/*",
             "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}}]}))
    key = kms.create_key(Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "kms:GenerateDataKey*", "Resource": "*",
             "Condition": {"StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn":
                                          f"arn:aws:cloudtrail:*:{ACCOUNT}:trail/*"}}}]}))
    ct.create_trail(Name=TRAIL, S3BucketName=BUCKET, KmsKeyId=key["KeyMetadata"]["Arn"])
    return ct


class Journal:
    """Reads the server's journal position and the trail's delivery cursor (SQLite in WAL mode
    allows a reader beside the server)."""

    def __init__(self, path):
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    def backlog(self):
        last = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        row = self.db.execute("SELECT delivered_seq FROM cloudtrail_cursors WHERE trail_arn = ?",
                              (TRAIL_ARN,)).fetchone()
        return last, (last - row[0] if row else last)


def wait_drained(journal, timeout=1800):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        _, backlog = journal.backlog()
        if backlog <= 2:  # the delivery's own PutObject/GenerateDataKey events trail it
            return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError("the trail did not catch up")


def main():
    data = tempfile.TemporaryDirectory()
    config = bench.keytrail_config(data.name)
    kt_port, null_port = bench.free_port(), bench.free_port()
    data_dir = os.path.join(data.name, "data")
    keytrail = bench.start_keytrail(config, data_dir, kt_port, "--cloudtrail-delivery-seconds",
                                    str(DELIVERY_SECONDS))
    null = bench.start_null(null_port)
    try:
        ct = set_up_trail(kt_port)
        setup = {kt_port: bench.kms_setup(kt_port)}
        gdk = bench.WORKLOADS["kms:GenerateDataKey"]
        journal = Journal(os.path.join(data_dir, "keytrail.db"))

        ceiling = bench.run_wrk(null_port, gdk(null_port, setup))
        without = bench.run_wrk(kt_port, gdk(kt_port, setup))
        queued, _ = journal.backlog()

        ct.start_logging(Name=TRAIL)
        drain_s = wait_drained(journal)
        delivered = queued

        samples = []
        stop = threading.Event()

        def sample():
            while not stop.wait(5):
                samples.append(journal.backlog()[1])

        sampler = threading.Thread(target=sample)
        sampler.start()
        with_trail = bench.run_wrk(kt_port, gdk(kt_port, setup))
        stop.set()
        sampler.join()
        catch_up_s = wait_drained(journal)
        files = len(client("s3", kt_port).list_objects_v2(Bucket=BUCKET).get("Contents", []))
    finally:
        keytrail.stop()
        null.stop()

    growth = samples[-1] - samples[0] if len(samples) >= 2 else 0
    summary = {
        "load": f"wrk -t{bench.THREADS} -c{bench.CONNECTIONS} -d{bench.DURATION}s GenerateDataKey",
        "delivery_interval_s": DELIVERY_SECONDS,
        "null_ceiling_rps": round(ceiling["rps"]),
        "gdk_rps_without_trail": round(without["rps"]),
        "gdk_rps_with_logging_trail": round(with_trail["rps"]),
        "ratio_with_to_without": round(with_trail["rps"] / without["rps"], 3),
        "ratio_with_trail_to_ceiling": round(with_trail["rps"] / ceiling["rps"], 3),
        "backlog_delivered_events": delivered,
        "backlog_delivery_s": round(drain_s, 1),
        "delivered_events_per_s": round(delivered / drain_s) if drain_s else None,
        "seconds_per_million_events": round(drain_s * 1_000_000 / delivered, 1) if delivered else None,
        "backlog_samples_during_load": samples,
        "backlog_growth_over_run": growth,
        "catch_up_after_load_s": round(catch_up_s, 1),
        "log_files_in_bucket": files,
        "non_2xx": with_trail["non_2xx"] + without["non_2xx"],
    }
    os.makedirs(bench.OUT, exist_ok=True)
    with open(os.path.join(bench.OUT, "trail.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    return 1 if summary["non_2xx"] else 0


if __name__ == "__main__":
    sys.exit(main())
