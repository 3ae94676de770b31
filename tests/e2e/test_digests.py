"""Log-file integrity validation with the real `aws cloudtrail validate-logs`: keytrail's digest
files (signed, chained, SSE-KMS like the logs) validate unmodified, ListPublicKeys serves PKCS#1
keys with MD5 fingerprints, StopLogging writes a final digest, and every tampering — a log file
changed, a log file removed, a digest rewritten — is reported."""

import base64
import gzip
import hashlib
import json
import subprocess
import time
import unittest
from datetime import datetime, timedelta, timezone

from keytrail_server import BIN, KeytrailServer

ACCOUNT = "000000000000"
BUCKET = "digest-logs"
TRAIL = "validated"
TRAIL_ARN = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/{TRAIL}"


class Digests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = KeytrailServer("--cloudtrail-delivery-seconds", "1",
                                    "--cloudtrail-digest-seconds", "3")
        cls.s3 = cls.server.client("s3")

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def aws(self, *args):
        out = subprocess.run(["aws", *args], env=self.server.env(), capture_output=True,
                             text=True)
        return out.returncode, out.stdout + out.stderr

    def validate(self, start):
        """The AWS CLI's validator and keytrail's own must agree: the exit status, and the
        output (both reports are returned, joined)."""
        code, out = self.aws("cloudtrail", "validate-logs", "--trail-arn", TRAIL_ARN,
                             "--start-time", start, "--verbose")
        ours = subprocess.run([BIN, "validate-logs", "--trail-arn", TRAIL_ARN, "--start-time",
                               start, "--verbose"], env=self.server.env(), capture_output=True,
                              text=True)
        self.assertEqual(ours.returncode, code, f"aws CLI:\n{out}\nkeytrail:\n{ours.stdout}{ours.stderr}")
        for line in out.splitlines():
            if "INVALID" in line:
                self.assertIn(line, ours.stdout, ours.stdout)
        return code, out + "\n" + ours.stdout

    def keys(self, kind):
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"AWSLogs/{ACCOUNT}/{kind}/")
        return [o["Key"] for o in listed.get("Contents", [])]

    def wait_for(self, predicate, what, timeout=40):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.5)
        self.fail(f"timed out waiting for {what}")

    def test_validate_logs_accepts_the_chain_and_reports_every_tampering(self):
        kms = self.server.client("kms")
        ct = self.server.client("cloudtrail")
        self.s3.create_bucket(Bucket=BUCKET)
        self.s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
                 "Action": "s3:GetBucketAcl", "Resource": f"arn:aws:s3:::{BUCKET}"},
                {"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
                 "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/AWSLogs/{ACCOUNT}/*",
                 "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control",
                                                "aws:SourceArn": TRAIL_ARN}}}]}))
        key = kms.create_key(Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                 "Action": "kms:*", "Resource": "*"},
                {"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
                 "Action": "kms:GenerateDataKey*", "Resource": "*",
                 "Condition": {"StringEquals": {"aws:SourceArn": TRAIL_ARN}}}]}))["KeyMetadata"]
        start = (datetime.now(timezone.utc) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ct.create_trail(Name=TRAIL, S3BucketName=BUCKET, KmsKeyId=key["Arn"],
                        EnableLogFileValidation=True)
        ct.start_logging(Name=TRAIL)
        for _ in range(4):
            kms.list_keys()
            time.sleep(1)
        self.wait_for(lambda: len(self.keys("CloudTrail-Digest")) >= 3 and
                      len(self.keys("CloudTrail")) >= 2, "three digests and two log files")

        # The public keys: PKCS#1 RSAPublicKey DER, fingerprint = MD5 of it.
        public = ct.list_public_keys()["PublicKeyList"]
        self.assertEqual(len(public), 1)
        der = public[0]["Value"]
        self.assertTrue(base64.b64encode(der).decode().startswith("MIIBCgKCAQEA"))
        self.assertEqual(public[0]["Fingerprint"], hashlib.md5(der).hexdigest())
        digest_key = self.keys("CloudTrail-Digest")[-1]
        digest = self.s3.get_object(Bucket=BUCKET, Key=digest_key)
        self.assertEqual(digest["Metadata"]["signature-algorithm"], "SHA256withRSA")
        self.assertEqual(len(digest["Metadata"]["signature"]), 512)
        self.assertEqual(digest["ServerSideEncryption"], "aws:kms")
        document = json.loads(gzip.decompress(digest["Body"].read()))
        self.assertEqual(document["digestS3Object"], digest_key)
        self.assertEqual(document["digestPublicKeyFingerprint"], public[0]["Fingerprint"])
        self.assertIn("LatestDigestDeliveryTime", ct.get_trail_status(Name=TRAIL))

        code, out = self.validate(start)
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"(\d+)/\1 digest files valid")
        self.assertRegex(out, r"(\d+)/\1 log files valid")
        self.assertNotIn("INVALID", out)

        # A restart in the middle of the chain: it continues, still valid end to end.
        before = len(self.keys("CloudTrail-Digest"))
        self.server.restart()
        kms = self.server.client("kms")
        ct = self.server.client("cloudtrail")
        type(self).s3 = self.server.client("s3")
        for _ in range(3):
            kms.list_keys()
            time.sleep(1)
        self.wait_for(lambda: len(self.keys("CloudTrail-Digest")) >= before + 2,
                      "digests after the restart")
        code, out = self.validate(start)
        self.assertEqual(code, 0, out)
        self.assertNotIn("INVALID", out)
        self.assertNotIn("No log files were delivered", out)

        # StopLogging writes a final digest, then the chain stops.
        ct.stop_logging(Name=TRAIL)
        stopped = len(self.keys("CloudTrail-Digest"))
        self.wait_for(lambda: len(self.keys("CloudTrail-Digest")) > stopped, "the final digest")
        final = len(self.keys("CloudTrail-Digest"))
        time.sleep(5)
        self.assertEqual(len(self.keys("CloudTrail-Digest")), final)
        code, out = self.validate(start)
        self.assertEqual(code, 0, out)

        # A log file changed: its hash no longer matches.
        logs = self.keys("CloudTrail")
        self.s3.put_object(Bucket=BUCKET, Key=logs[0],
                           Body=gzip.compress(b'{"Records":[]}'))
        code, out = self.validate(start)
        self.assertEqual(code, 1, out)
        self.assertIn("hash value doesn't match", out)
        # A log file removed.
        self.s3.delete_object(Bucket=BUCKET, Key=logs[1])
        code, out = self.validate(start)
        self.assertEqual(code, 1, out)
        self.assertIn("not found", out)
        # A digest rewritten (its content changed, its signature kept).
        digests = self.keys("CloudTrail-Digest")
        original = self.s3.get_object(Bucket=BUCKET, Key=digests[1])
        changed = json.loads(gzip.decompress(original["Body"].read()))
        changed["logFiles"] = []
        self.s3.put_object(Bucket=BUCKET, Key=digests[1],
                           Body=gzip.compress(json.dumps(changed).encode()),
                           Metadata=original["Metadata"])
        code, out = self.validate(start)
        self.assertEqual(code, 1, out)
        self.assertIn("signature verification failed", out)
        # A digest's signature metadata altered.
        victim = digests[2]
        original = self.s3.get_object(Bucket=BUCKET, Key=victim)
        metadata = dict(original["Metadata"])
        metadata["signature"] = ("0" if metadata["signature"][0] != "0" else "1") + \
            metadata["signature"][1:]
        self.s3.put_object(Bucket=BUCKET, Key=victim, Body=original["Body"].read(),
                           Metadata=metadata)
        code, out = self.validate(start)
        self.assertEqual(code, 1, out)
        self.assertIn(victim, [line.split("\t")[1][len(f"s3://{BUCKET}/"):]
                               for line in out.splitlines()
                               if "INVALID" in line and line.startswith("Digest file")])
        # A digest deleted from the middle of the chain.
        self.s3.delete_object(Bucket=BUCKET, Key=digests[-3])
        code, out = self.validate(start)
        self.assertEqual(code, 1, out)
        self.assertIn("INVALID: not found", out)


if __name__ == "__main__":
    unittest.main()
