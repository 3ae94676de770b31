"""The seed, end to end, with the real aws CLI: a symmetric key with an alias and CloudTrail's key
policy, a bucket with CloudTrail's bucket policy, a trail encrypted under the alias; log files
delivered every two seconds, SSE-KMS under the key, holding the calls made, and — in later files —
the validation GenerateDataKey, one GenerateDataKey per delivered file with the trail and object
ARNs as context, and the Decrypt of a download with the reader's identity, shaped like the AWS
page's three example records."""

import gzip
import json
import os
import subprocess
import tempfile
import time
import unittest

from keytrail_server import BIN, KeytrailServer

ACCOUNT = "000000000000"
REGION = "us-east-1"
BUCKET = "seed-trail-logs"
TRAIL = "seed-trail"
TRAIL_ARN = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{TRAIL}"


def bucket_policy(bucket, trail_arn=TRAIL_ARN):
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "AWSCloudTrailAclCheck20150319", "Effect": "Allow",
         "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:GetBucketAcl", "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringEquals": {"aws:SourceArn": trail_arn}}},
        {"Sid": "AWSCloudTrailWrite20150319", "Effect": "Allow",
         "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/AWSLogs/{ACCOUNT}/*",
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control",
                                        "aws:SourceArn": trail_arn}}}]}


KEY_POLICY = {"Version": "2012-10-17", "Id": "Key policy created by CloudTrail", "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
     "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "Allow CloudTrail to encrypt logs", "Effect": "Allow",
     "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "kms:GenerateDataKey*",
     "Resource": "*",
     "Condition": {"StringEquals": {"aws:SourceArn": TRAIL_ARN},
                   "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn":
                                  f"arn:aws:cloudtrail:*:{ACCOUNT}:trail/*"}}},
    {"Sid": "Allow CloudTrail to describe key", "Effect": "Allow",
     "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "kms:DescribeKey",
     "Resource": "*"},
    {"Sid": "Allow principals in the account to decrypt log files", "Effect": "Allow",
     "Principal": {"AWS": "*"}, "Action": ["kms:Decrypt", "kms:ReEncryptFrom"], "Resource": "*",
     "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT},
                   "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn":
                                  f"arn:aws:cloudtrail:*:{ACCOUNT}:trail/*"}}}]}


class CliCase(unittest.TestCase):
    """A server delivering every two seconds, and the aws CLI pointed at it."""

    @classmethod
    def setUpClass(cls):
        cls.server = KeytrailServer("--cloudtrail-delivery-seconds", "2")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.s3 = cls.server.client("s3")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        assert cls.server.stop() == 0

    def aws(self, *args):
        return self.server.cli(*args)

    def ok(self, *args):
        code, body, err = self.aws(*args)
        self.assertEqual(code, 0, err)
        return body


class SymmetricOnly(CliCase):
    def test_only_symmetric_keys_protect_objects_and_logs(self):
        """The seed's warning, at every entry point, with the aws CLI: an RSA and an HMAC key are
        refused by PutObject, CopyObject, CreateMultipartUpload, PutBucketEncryption,
        CreateTrail and UpdateTrail, and nothing is written."""
        bucket = "symmetric-only"
        self.ok("s3api", "create-bucket", "--bucket", bucket)
        self.ok("s3api", "put-bucket-policy", "--bucket", bucket,
                "--policy", json.dumps(bucket_policy(
                    bucket, f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/sym-trail")))
        self.ok("s3api", "put-object", "--bucket", bucket, "--key", "source", "--body",
                __file__)
        rsa = self.ok("kms", "create-key", "--key-spec", "RSA_2048",
                      "--key-usage", "ENCRYPT_DECRYPT")["KeyMetadata"]
        hmac = self.ok("kms", "create-key", "--key-spec", "HMAC_256",
                       "--key-usage", "GENERATE_VERIFY_MAC")["KeyMetadata"]
        self.assertEqual(rsa["EncryptionAlgorithms"], ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
        self.assertEqual(hmac["MacAlgorithms"], ["HMAC_SHA_256"])
        for key in (rsa["Arn"], hmac["KeyId"]):
            sse = ["--server-side-encryption", "aws:kms", "--ssekms-key-id", key]
            refusals = [
                ("s3api", "put-object", "--bucket", bucket, "--key", "refused", "--body",
                 __file__, *sse),
                ("s3api", "copy-object", "--bucket", bucket, "--key", "refused",
                 "--copy-source", f"{bucket}/source", *sse),
                ("s3api", "create-multipart-upload", "--bucket", bucket, "--key", "refused",
                 *sse),
                ("s3api", "put-bucket-encryption", "--bucket", bucket,
                 "--server-side-encryption-configuration", json.dumps({"Rules": [{
                     "ApplyServerSideEncryptionByDefault": {
                         "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]})),
            ]
            for args in refusals:
                code, _, err = self.aws(*args)
                self.assertNotEqual(code, 0, args)
                self.assertIn("KMS.InvalidKeyUsageException", err, args)
            code, _, err = self.aws("cloudtrail", "create-trail", "--name", "sym-trail",
                                    "--s3-bucket-name", bucket, "--kms-key-id", key)
            self.assertIn("InvalidKmsKeyIdException", err)
        # Nothing was written: no object, no upload, no default encryption, no trail.
        code, _, err = self.aws("s3api", "head-object", "--bucket", bucket, "--key", "refused")
        self.assertIn("404", err)
        uploads = self.ok("s3api", "list-multipart-uploads", "--bucket", bucket)
        self.assertFalse((uploads or {}).get("Uploads"))
        _, encryption, _ = self.aws("s3api", "get-bucket-encryption", "--bucket", bucket)
        for rule in (encryption or {}).get("ServerSideEncryptionConfiguration", {}).get(
                "Rules", []):
            self.assertNotEqual(rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"],
                                "aws:kms")
        code, _, _ = self.aws("cloudtrail", "get-trail", "--name", "sym-trail")
        self.assertNotEqual(code, 0)
        # UpdateTrail refuses them too, and leaves the trail as it was.
        self.ok("cloudtrail", "create-trail", "--name", "sym-trail", "--s3-bucket-name", bucket)
        for key in (rsa["Arn"], hmac["Arn"]):
            code, _, err = self.aws("cloudtrail", "update-trail", "--name", "sym-trail",
                                    "--kms-key-id", key)
            self.assertIn("InvalidKmsKeyIdException", err)
        trail = self.ok("cloudtrail", "get-trail", "--name", "sym-trail")["Trail"]
        self.assertNotIn("KmsKeyId", trail)
        self.ok("cloudtrail", "delete-trail", "--name", "sym-trail")



class Seed(CliCase):

    def log_keys(self):
        listed = self.ok("s3api", "list-objects-v2", "--bucket", BUCKET,
                         "--prefix", f"AWSLogs/{ACCOUNT}/CloudTrail/")
        return [o["Key"] for o in (listed or {}).get("Contents", [])]

    def download(self, key):
        """`aws s3 cp`, as a user reads a log file."""
        path = os.path.join(self.tmp.name, key.rsplit("/", 1)[-1])
        self.ok("s3", "cp", "--quiet", f"s3://{BUCKET}/{key}", path)
        with gzip.open(path) as f:
            return json.load(f)["Records"]

    def records(self, key):
        """boto3 for the many reads of polling (faster than starting the CLI each time)."""
        body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return json.loads(gzip.decompress(body))["Records"]

    def wait_for(self, predicate, what, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = predicate()
            if found:
                return found
            time.sleep(1)
        self.fail(f"not delivered within {timeout} s: {what}")

    def all_records(self):
        return [r for key in self.log_keys() for r in self.records(key)]

    def test_the_seed_end_to_end(self):
        key = self.ok("kms", "create-key", "--description", "CloudTrail logs")["KeyMetadata"]
        self.assertEqual(key["KeySpec"], "SYMMETRIC_DEFAULT")
        key_arn = key["Arn"]
        self.ok("kms", "create-alias", "--alias-name", "alias/seed-trail",
                "--target-key-id", key["KeyId"])
        self.ok("kms", "put-key-policy", "--key-id", key["KeyId"], "--policy-name", "default",
                "--policy", json.dumps(KEY_POLICY))
        self.ok("s3api", "create-bucket", "--bucket", BUCKET)
        self.ok("s3api", "put-bucket-policy", "--bucket", BUCKET,
                "--policy", json.dumps(bucket_policy(BUCKET)))

        # An asymmetric key is refused: CloudTrail takes symmetric keys only (the seed's warning).
        rsa = self.ok("kms", "create-key", "--key-spec", "RSA_2048",
                      "--key-usage", "ENCRYPT_DECRYPT")["KeyMetadata"]
        code, _, err = self.aws("cloudtrail", "create-trail", "--name", TRAIL,
                                "--s3-bucket-name", BUCKET, "--kms-key-id", rsa["Arn"])
        self.assertNotEqual(code, 0)
        self.assertIn("InvalidKmsKeyIdException", err)
        # A bucket without CloudTrail's policy is refused too.
        self.ok("s3api", "create-bucket", "--bucket", "no-policy-bucket")
        code, _, err = self.aws("cloudtrail", "create-trail", "--name", TRAIL,
                                "--s3-bucket-name", "no-policy-bucket")
        self.assertIn("InsufficientS3BucketPolicyException", err)

        trail = self.ok("cloudtrail", "create-trail", "--name", TRAIL, "--s3-bucket-name", BUCKET,
                        "--kms-key-id", "alias/seed-trail")
        self.assertEqual(trail["TrailARN"], TRAIL_ARN)
        self.assertEqual(trail["KmsKeyId"], key_arn)
        described = self.ok("cloudtrail", "describe-trails")["trailList"]
        self.assertEqual([t["Name"] for t in described], [TRAIL])
        self.assertNotIn("S3KeyPrefix", described[0])
        self.assertFalse(self.ok("cloudtrail", "get-trail-status", "--name", TRAIL)["IsLogging"])
        self.ok("cloudtrail", "start-logging", "--name", TRAIL)

        marker = self.ok("kms", "generate-random", "--number-of-bytes", "16")
        self.ok("kms", "describe-key", "--key-id", "alias/seed-trail")
        self.ok("s3api", "list-buckets")

        def delivered_calls():
            records = self.all_records()
            names = {r["eventName"] for r in records}
            return records if {"GenerateRandom", "DescribeKey", "ListBuckets", "CreateTrail",
                               "StartLogging"} <= names else None

        records = self.wait_for(delivered_calls, "the calls made")
        self.assertTrue(marker)
        keys = self.log_keys()
        first = keys[0]
        prefix = f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/"
        name = first.rsplit("/", 1)[-1]
        self.assertTrue(first.startswith(prefix), first)
        self.assertRegex(name, rf"^{ACCOUNT}_CloudTrail_{REGION}_\d{{8}}T\d{{4}}Z_[A-Za-z0-9]{{16}}\.json\.gz$")
        head = self.ok("s3api", "head-object", "--bucket", BUCKET, "--key", first)
        self.assertEqual(head["ServerSideEncryption"], "aws:kms")
        self.assertEqual(head["SSEKMSKeyId"], key_arn)

        # The validation GenerateDataKey of CreateTrail (the seed's first record).
        validation = [r for r in records if r["eventName"] == "GenerateDataKey"
                      and r["requestParameters"]["encryptionContext"]["aws:s3:arn"]
                      == f"arn:aws:s3:::{BUCKET}/AWSLogs/{ACCOUNT}/"]
        self.assertEqual(len(validation), 1)
        v = validation[0]
        self.assertEqual(v["eventSource"], "kms.amazonaws.com")
        self.assertEqual(v["eventType"], "AwsServiceEvent")
        self.assertEqual(v["requestParameters"]["keyId"], "alias/seed-trail")
        self.assertEqual(v["requestParameters"]["keySpec"], "AES_256")
        self.assertEqual(v["requestParameters"]["encryptionContext"]["aws:cloudtrail:arn"],
                         TRAIL_ARN)
        self.assertIsNone(v["responseElements"])
        self.assertTrue(v["readOnly"])
        self.assertEqual(v["resources"], [{"accountId": ACCOUNT, "type": "AWS::KMS::Key",
                                           "ARN": key_arn}])
        self.assertEqual(v["recipientAccountId"], ACCOUNT)
        self.assertEqual(v["userIdentity"]["invokedBy"], "cloudtrail.amazonaws.com")

        # Read a log file: S3 calls Decrypt as the reader (the seed's third record).
        self.assertTrue(self.download(first))

        def later_records():
            records = self.all_records()
            decrypts = [r for r in records if r["eventName"] == "Decrypt"
                        and r["requestParameters"].get("encryptionContext", {})
                        .get("aws:s3:arn") == f"arn:aws:s3:::{BUCKET}/{first}"]
            return (records, decrypts) if decrypts else None

        records, decrypts = self.wait_for(later_records, "the Decrypt of the download")
        d = decrypts[0]
        self.assertEqual(d["eventType"], "AwsApiCall")
        self.assertEqual(d["userIdentity"]["type"], "Root")
        self.assertEqual(d["userIdentity"]["invokedBy"], "s3.amazonaws.com")
        self.assertEqual(d["requestParameters"]["encryptionContext"]["aws:cloudtrail:arn"],
                         TRAIL_ARN)
        self.assertEqual(d["resources"][0]["ARN"], key_arn)

        # One GenerateDataKey per delivered file, with the file's ARN as context (the seed's
        # second record); each delivered file's key is in exactly one such record.
        deliveries = [r for r in records if r["eventName"] == "GenerateDataKey"
                      and "/CloudTrail/" in r["requestParameters"]["encryptionContext"]["aws:s3:arn"]]
        for r in deliveries:
            self.assertEqual(r["eventType"], "AwsServiceEvent")
            self.assertEqual(r["requestParameters"]["keyId"], key_arn)
            self.assertEqual(r["requestParameters"]["keySpec"], "AES_256")
            self.assertEqual(r["requestParameters"]["encryptionContext"]["aws:cloudtrail:arn"],
                             TRAIL_ARN)
            self.assertIsNone(r["responseElements"])
            self.assertEqual(r["resources"], [{"accountId": ACCOUNT, "type": "AWS::KMS::Key",
                                               "ARN": key_arn}])
        contexts = [r["requestParameters"]["encryptionContext"]["aws:s3:arn"] for r in deliveries]
        self.assertEqual(len(contexts), len(set(contexts)))
        self.assertIn(f"arn:aws:s3:::{BUCKET}/{first}", contexts)
        # No event is in two files.
        ids = [r["eventID"] for r in records]
        self.assertEqual(len(ids), len(set(ids)))

        # Event history finds the CreateTrail.
        found = self.ok("cloudtrail", "lookup-events", "--lookup-attributes",
                        "AttributeKey=EventName,AttributeValue=CreateTrail")["Events"]
        # Newest first: the trail made, then the two refusals (with their error codes).
        events = [json.loads(e["CloudTrailEvent"]) for e in found]
        self.assertEqual([e.get("errorCode") for e in events],
                         [None, "InsufficientS3BucketPolicyException", "InvalidKmsKeyIdException"])
        self.assertEqual(events[0]["requestParameters"]["name"], TRAIL)
        self.assertEqual(found[0]["Username"], "root")
        self.assertEqual(found[0]["Resources"], [{"ResourceType": "AWS::CloudTrail::Trail",
                                                  "ResourceName": TRAIL_ARN}])
        status = self.ok("cloudtrail", "get-trail-status", "--name", TRAIL)
        self.assertTrue(status["IsLogging"])
        self.assertIn("LatestDeliveryTime", status)
        self.assertNotIn("LatestDeliveryError", status)
        projection = subprocess.run(
            [BIN, "--data-dir", self.server.data_dir, "usage", "--projection"],
            capture_output=True, text=True, check=True).stdout
        # The usage command reads the configuration, not the server's flags: AWS's 5 minutes.
        self.assertIn(f"{TRAIL_ARN}: (24 × 60 / 5 = 288 log files) × 1 region(s) = 288/day",
                      projection)
        self.assertIn("measured 24h", projection)
        self.ok("cloudtrail", "stop-logging", "--name", TRAIL)
        self.assertFalse(self.ok("cloudtrail", "get-trail-status", "--name", TRAIL)["IsLogging"])

        # Usage: every KMS request on the key counted once, by who caused it.
        time.sleep(5)  # the final delivery after StopLogging
        journal = [e for e in self.server.events() if e["eventSource"] == "kms.amazonaws.com"
                   and "errorCode" not in e
                   and any(r["ARN"] == key_arn for r in e.get("resources", []))]
        expected = {}
        for e in journal:
            identity = e["userIdentity"]
            source = ("cloudtrail" if identity.get("invokedBy") == "cloudtrail.amazonaws.com"
                      and identity["type"] == "AWSService"
                      else "s3" if identity.get("invokedBy") == "s3.amazonaws.com" else "user")
            expected[source] = expected.get(source, 0) + 1
        usage = json.loads(subprocess.run(
            [BIN, "--data-dir", self.server.data_dir, "usage", "--format", "json"],
            capture_output=True, text=True, check=True).stdout)
        key_usage = [k for k in usage["keys"] if k["key_arn"] == key_arn][0]
        self.assertEqual(key_usage["by_source"], expected)
        self.assertGreaterEqual(expected["cloudtrail"], len(deliveries))
        self.assertGreaterEqual(expected["s3"], 1)
        # The HTML report: one self-contained page with two SVG charts, rendered by Chromium.
        page = subprocess.run([BIN, "--data-dir", self.server.data_dir, "usage", "--format",
                               "html"], capture_output=True, text=True, check=True).stdout
        self.assertEqual(page.count("<svg"), 2)
        self.assertIn(key_arn, page)
        html_path = os.path.join(self.tmp.name, "usage.html")
        png_path = os.path.join(self.tmp.name, "usage.png")
        with open(html_path, "w") as f:
            f.write(page)
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        f"--screenshot={png_path}", "--window-size=1000,900",
                        f"file://{html_path}"], capture_output=True, check=True, timeout=120)
        with open(png_path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        csv = subprocess.run([BIN, "--data-dir", self.server.data_dir, "usage", "--format", "csv"],
                             capture_output=True, text=True, check=True).stdout.splitlines()
        self.assertEqual(csv[0], "account_id,region,key_arn,key_spec,source,requests")
        self.assertIn(f"{ACCOUNT},{REGION},{key_arn},SYMMETRIC_DEFAULT,cloudtrail,"
                      f"{expected['cloudtrail']}", csv)


if __name__ == "__main__":
    unittest.main()
