"""S3 with the aws CLI and boto3: buckets, objects encrypted at rest (SSE-S3 and SSE-KMS), ranges,
listings, KMS failures surfacing as S3 errors, and the KMS events S3 causes."""

import base64
import json
import os
import subprocess
import tempfile
import unittest

import boto3
import botocore.config
from botocore.exceptions import ClientError

from keytrail_server import KeytrailServer


def s3_client(server):
    return server.client("s3", config=botocore.config.Config(
        retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}))


def error(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError("the call was expected to fail")


class S3(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = KeytrailServer()
        cls.s3 = s3_client(cls.server)
        cls.kms = cls.server.client("kms")

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def test_buckets(self):
        self.s3.create_bucket(Bucket="bkt-life")
        self.assertEqual(error(lambda: self.s3.create_bucket(Bucket="bkt-life")),
                         "BucketAlreadyOwnedByYou")
        names = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        self.assertIn("bkt-life", names)
        self.s3.head_bucket(Bucket="bkt-life")
        self.assertIsNone(self.s3.get_bucket_location(Bucket="bkt-life")["LocationConstraint"])
        self.s3.create_bucket(Bucket="bkt-eu",
                              CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        self.assertEqual(self.s3.get_bucket_location(Bucket="bkt-eu")["LocationConstraint"],
                         "eu-west-3")
        self.s3.put_object(Bucket="bkt-life", Key="x", Body=b"1")
        self.assertEqual(error(lambda: self.s3.delete_bucket(Bucket="bkt-life")), "BucketNotEmpty")
        self.s3.delete_object(Bucket="bkt-life", Key="x")
        self.s3.delete_bucket(Bucket="bkt-life")
        self.assertEqual(error(lambda: self.s3.head_bucket(Bucket="bkt-life")), "404")
        self.assertEqual(error(lambda: self.s3.create_bucket(Bucket="Bad_Name")), "InvalidBucketName")

    def test_objects_sse_s3_ranges_and_metadata(self):
        self.s3.create_bucket(Bucket="objs")
        body = os.urandom(200_000) + b"MARKER-e2e-plaintext-never-on-disk"
        put = self.s3.put_object(Bucket="objs", Key="dir/file.bin", Body=body,
                                 ContentType="application/octet-stream", Metadata={"owner": "me"})
        self.assertEqual(put["ServerSideEncryption"], "AES256")
        got = self.s3.get_object(Bucket="objs", Key="dir/file.bin")
        self.assertEqual(got["Body"].read(), body)
        self.assertEqual(got["Metadata"], {"owner": "me"})
        self.assertEqual(got["ContentType"], "application/octet-stream")
        part = self.s3.get_object(Bucket="objs", Key="dir/file.bin", Range="bytes=65530-131080")
        self.assertEqual(part["Body"].read(), body[65530:131081])
        self.assertEqual(part["ContentRange"], f"bytes 65530-131080/{len(body)}")
        tail = self.s3.get_object(Bucket="objs", Key="dir/file.bin", Range="bytes=-10")
        self.assertEqual(tail["Body"].read(), body[-10:])
        head = self.s3.head_object(Bucket="objs", Key="dir/file.bin")
        self.assertEqual(head["ContentLength"], len(body))
        self.assertEqual(error(lambda: self.s3.get_object(Bucket="objs", Key="nope")), "NoSuchKey")
        # Exactly one segment, and empty: the segment boundaries.
        for size in (0, 65536, 131072):
            data = os.urandom(size)
            self.s3.put_object(Bucket="objs", Key=f"size-{size}", Body=data)
            self.assertEqual(self.s3.get_object(Bucket="objs", Key=f"size-{size}")["Body"].read(), data)
        # Small bodies are kept in the object's row: sealed there too.
        small = b"MARKER-e2e-plaintext-never-on-disk, small"
        self.s3.put_object(Bucket="objs", Key="small", Body=small)
        self.assertEqual(self.s3.get_object(Bucket="objs", Key="small")["Body"].read(), small)
        # No plaintext byte on disk.
        out = subprocess.run(["grep", "-rl", "MARKER-e2e-plaintext", self.server.data_dir],
                             capture_output=True, text=True)
        self.assertEqual(out.stdout, "", "plaintext found on disk")

    def test_checksums_are_verified_before_the_object_is_visible(self):
        self.s3.create_bucket(Bucket="checksums")
        for algorithm, wrong in (("ChecksumCRC32", "AAAAAA=="), ("ChecksumCRC32C", "AAAAAA=="),
                                 ("ChecksumSHA1", "A" * 27 + "="),
                                 ("ChecksumSHA256", "A" * 43 + "=")):
            with self.subTest(algorithm=algorithm):
                self.assertEqual(error(lambda: self.s3.put_object(
                    Bucket="checksums", Key="bad", Body=b"payload", **{algorithm: wrong})),
                    "BadDigest")
        self.assertEqual(error(lambda: self.s3.put_object(
            Bucket="checksums", Key="bad", Body=b"payload",
            ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")), "BadDigest")
        self.assertNotIn("Contents", self.s3.list_objects_v2(Bucket="checksums"),
                         "a failed checksum stores nothing")
        put = self.s3.put_object(Bucket="checksums", Key="good", Body=b"payload",
                                 ChecksumAlgorithm="SHA256")
        got = self.s3.get_object(Bucket="checksums", Key="good", ChecksumMode="ENABLED")
        self.assertEqual(got["ChecksumSHA256"], put["ChecksumSHA256"])
        self.assertEqual(got["Body"].read(), b"payload")

    def test_listing_v1_and_v2(self):
        self.s3.create_bucket(Bucket="listing")
        keys = ["a/1", "a/2", "b/1", "c", "d/x/y"]
        for key in keys:
            self.s3.put_object(Bucket="listing", Key=key, Body=b"")
        v1 = self.s3.list_objects(Bucket="listing", Delimiter="/")
        self.assertEqual([c["Key"] for c in v1["Contents"]], ["c"])
        self.assertEqual([p["Prefix"] for p in v1["CommonPrefixes"]], ["a/", "b/", "d/"])
        page = self.s3.list_objects(Bucket="listing", MaxKeys=2)
        self.assertTrue(page["IsTruncated"])
        rest = self.s3.list_objects(Bucket="listing", Marker=page["Contents"][-1]["Key"])
        self.assertEqual([c["Key"] for c in page["Contents"] + rest["Contents"]], keys)
        found, token = [], None
        while True:
            kwargs = {"ContinuationToken": token} if token else {}
            resp = self.s3.list_objects_v2(Bucket="listing", MaxKeys=2, **kwargs)
            found += [c["Key"] for c in resp.get("Contents", [])]
            if not resp["IsTruncated"]:
                break
            token = resp["NextContinuationToken"]
        self.assertEqual(found, keys)
        prefixed = self.s3.list_objects_v2(Bucket="listing", Prefix="a/")
        self.assertEqual([c["Key"] for c in prefixed["Contents"]], ["a/1", "a/2"])

    def test_sse_kms_context_events_and_key_state(self):
        self.s3.create_bucket(Bucket="kms-objs")
        key = self.kms.create_key(Description="s3")["KeyMetadata"]
        self.kms.create_alias(AliasName="alias/s3-objs", TargetKeyId=key["KeyId"])
        context = base64.b64encode(json.dumps({"team": "audit"}).encode()).decode()
        put = self.s3.put_object(Bucket="kms-objs", Key="secret.txt", Body=b"classified",
                                 ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/s3-objs",
                                 SSEKMSEncryptionContext=context)
        self.assertEqual(put["SSEKMSKeyId"], key["Arn"], "the key ARN, never the alias")
        stored_context = json.loads(base64.b64decode(put["SSEKMSEncryptionContext"]))
        self.assertEqual(stored_context, {"team": "audit",
                                          "aws:s3:arn": "arn:aws:s3:::kms-objs/secret.txt"})
        got = self.s3.get_object(Bucket="kms-objs", Key="secret.txt")
        self.assertEqual(got["Body"].read(), b"classified")
        self.assertEqual(got["ServerSideEncryption"], "aws:kms")
        self.assertEqual(got["SSEKMSKeyId"], key["Arn"])
        events = [e for e in self.server.events() if e["eventSource"] == "kms.amazonaws.com"
                  and e.get("resources") and e["resources"][0]["ARN"] == key["Arn"]]
        by_name = {e["eventName"]: e for e in events}
        gdk = by_name["GenerateDataKey"]
        self.assertEqual(gdk["userIdentity"]["invokedBy"], "s3.amazonaws.com")
        self.assertEqual(gdk["requestParameters"]["encryptionContext"]["aws:s3:arn"],
                         "arn:aws:s3:::kms-objs/secret.txt")
        self.assertEqual(by_name["Decrypt"]["userIdentity"]["invokedBy"], "s3.amazonaws.com")
        self.kms.disable_key(KeyId=key["KeyId"])
        self.assertEqual(error(lambda: self.s3.get_object(Bucket="kms-objs", Key="secret.txt")),
                         "KMS.DisabledException")
        self.assertEqual(error(lambda: self.s3.put_object(
            Bucket="kms-objs", Key="other", Body=b"x", ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key["KeyId"])), "KMS.DisabledException")
        self.assertEqual(error(lambda: self.s3.head_object(Bucket="kms-objs", Key="other")), "404",
                         "a refused upload leaves no object")
        self.kms.enable_key(KeyId=key["KeyId"])
        self.assertEqual(self.s3.get_object(Bucket="kms-objs", Key="secret.txt")["Body"].read(),
                         b"classified")
        signing = self.kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
        self.assertEqual(error(lambda: self.s3.put_object(
            Bucket="kms-objs", Key="asym", Body=b"x", ServerSideEncryption="aws:kms",
            SSEKMSKeyId=signing["KeyId"])), "KMS.InvalidKeyUsageException")
        self.assertEqual(error(lambda: self.s3.put_object(
            Bucket="kms-objs", Key="missing", Body=b"x", ServerSideEncryption="aws:kms",
            SSEKMSKeyId="alias/none")), "KMS.NotFoundException")

    def test_multipart_upload(self):
        self.s3.create_bucket(Bucket="multi")
        upload = self.s3.create_multipart_upload(Bucket="multi", Key="big")["UploadId"]
        part1 = os.urandom(5 * 1024 * 1024 + 3)
        part2 = os.urandom(1000)
        e1 = self.s3.upload_part(Bucket="multi", Key="big", UploadId=upload, PartNumber=1,
                                 Body=part1)["ETag"]
        # A part uploaded again replaces the first attempt.
        self.s3.upload_part(Bucket="multi", Key="big", UploadId=upload, PartNumber=2, Body=b"x")
        e2 = self.s3.upload_part(Bucket="multi", Key="big", UploadId=upload, PartNumber=2,
                                 Body=part2)["ETag"]
        parts = self.s3.list_parts(Bucket="multi", Key="big", UploadId=upload)["Parts"]
        self.assertEqual([(p["PartNumber"], p["Size"]) for p in parts],
                         [(1, len(part1)), (2, len(part2))])
        uploads = self.s3.list_multipart_uploads(Bucket="multi")["Uploads"]
        self.assertEqual([u["UploadId"] for u in uploads], [upload])
        self.assertEqual(error(lambda: self.s3.complete_multipart_upload(
            Bucket="multi", Key="big", UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2},
                                       {"PartNumber": 1, "ETag": e1}]})), "InvalidPartOrder")
        done = self.s3.complete_multipart_upload(
            Bucket="multi", Key="big", UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                       {"PartNumber": 2, "ETag": e2}]})
        self.assertTrue(done["ETag"].strip('"').endswith("-2"))
        body = part1 + part2
        self.assertEqual(self.s3.get_object(Bucket="multi", Key="big")["Body"].read(), body)
        ranged = self.s3.get_object(Bucket="multi", Key="big",
                                    Range=f"bytes={len(part1) - 10}-{len(part1) + 9}")
        self.assertEqual(ranged["Body"].read(), body[len(part1) - 10:len(part1) + 10],
                         "a range across the part boundary")
        self.assertEqual(self.s3.list_multipart_uploads(Bucket="multi").get("Uploads", []), [])
        # UploadPartCopy: a new object from ranges of the one just completed.
        copy = self.s3.create_multipart_upload(Bucket="multi", Key="copy")["UploadId"]
        c1 = self.s3.upload_part_copy(Bucket="multi", Key="copy", UploadId=copy, PartNumber=1,
                                      CopySource={"Bucket": "multi", "Key": "big"},
                                      CopySourceRange=f"bytes=0-{len(part1) - 1}")
        c2 = self.s3.upload_part_copy(Bucket="multi", Key="copy", UploadId=copy, PartNumber=2,
                                      CopySource={"Bucket": "multi", "Key": "big"},
                                      CopySourceRange=f"bytes={len(part1)}-{len(body) - 1}")
        self.assertEqual(error(lambda: self.s3.upload_part_copy(
            Bucket="multi", Key="copy", UploadId=copy, PartNumber=3,
            CopySource={"Bucket": "multi", "Key": "big"},
            CopySourceRange=f"bytes=0-{len(body)}")), "InvalidRange")
        self.s3.complete_multipart_upload(
            Bucket="multi", Key="copy", UploadId=copy,
            MultipartUpload={"Parts": [
                {"PartNumber": 1, "ETag": c1["CopyPartResult"]["ETag"]},
                {"PartNumber": 2, "ETag": c2["CopyPartResult"]["ETag"]}]})
        self.assertEqual(self.s3.get_object(Bucket="multi", Key="copy")["Body"].read(), body)
        aborted = self.s3.create_multipart_upload(Bucket="multi", Key="gone")["UploadId"]
        self.s3.upload_part(Bucket="multi", Key="gone", UploadId=aborted, PartNumber=1, Body=b"x")
        self.s3.abort_multipart_upload(Bucket="multi", Key="gone", UploadId=aborted)
        self.assertEqual(error(lambda: self.s3.list_parts(Bucket="multi", Key="gone",
                                                          UploadId=aborted)), "NoSuchUpload")
        self.assertEqual(error(lambda: self.s3.head_object(Bucket="multi", Key="gone")), "404")

    def test_bucket_configuration(self):
        self.s3.create_bucket(Bucket="config")
        rule = self.s3.get_bucket_encryption(Bucket="config")[
            "ServerSideEncryptionConfiguration"]["Rules"][0]
        self.assertEqual(rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256")
        key = self.kms.create_key(Description="bucket default")["KeyMetadata"]
        self.s3.put_bucket_encryption(Bucket="config", ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["KeyId"]}}]})
        rule = self.s3.get_bucket_encryption(Bucket="config")[
            "ServerSideEncryptionConfiguration"]["Rules"][0]
        self.assertEqual(rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"], key["Arn"])
        put = self.s3.put_object(Bucket="config", Key="default", Body=b"by default")
        self.assertEqual(put["ServerSideEncryption"], "aws:kms")
        self.assertEqual(put["SSEKMSKeyId"], key["Arn"])
        signing = self.kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
        self.assertEqual(error(lambda: self.s3.put_bucket_encryption(
            Bucket="config", ServerSideEncryptionConfiguration={"Rules": [{
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": signing["KeyId"]}}]})),
            "KMS.InvalidKeyUsageException")
        self.s3.delete_bucket_encryption(Bucket="config")
        self.assertEqual(self.s3.put_object(Bucket="config", Key="plain", Body=b"x")
                         ["ServerSideEncryption"], "AES256")

        self.assertEqual(error(lambda: self.s3.get_bucket_policy(Bucket="config")),
                         "NoSuchBucketPolicy")
        self.assertEqual(error(lambda: self.s3.put_bucket_policy(Bucket="config", Policy="{")),
                         "MalformedPolicy")
        policy = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "AWSCloudTrailWrite", "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::config/AWSLogs/000000000000/*"}]})
        self.s3.put_bucket_policy(Bucket="config", Policy=policy)
        self.assertEqual(self.s3.get_bucket_policy(Bucket="config")["Policy"], policy)
        self.s3.delete_bucket_policy(Bucket="config")

        self.s3.put_bucket_tagging(Bucket="config", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
        self.assertEqual(self.s3.get_bucket_tagging(Bucket="config")["TagSet"],
                         [{"Key": "k", "Value": "v"}])
        self.s3.delete_bucket_tagging(Bucket="config")
        self.assertEqual(error(lambda: self.s3.get_bucket_tagging(Bucket="config")), "NoSuchTagSet")
        acl = self.s3.get_bucket_acl(Bucket="config")
        self.assertEqual(acl["Grants"][0]["Permission"], "FULL_CONTROL")
        self.assertEqual(acl["Owner"]["ID"], "000000000000")

    def test_conditional_reads_and_presigned_urls(self):
        import datetime
        import urllib.request
        self.s3.create_bucket(Bucket="conditional")
        etag = self.s3.put_object(Bucket="conditional", Key="k", Body=b"v1")["ETag"]
        self.assertEqual(self.s3.get_object(Bucket="conditional", Key="k", IfMatch=etag)
                         ["Body"].read(), b"v1")
        self.assertEqual(error(lambda: self.s3.get_object(
            Bucket="conditional", Key="k", IfMatch='"0000"')), "PreconditionFailed")
        self.assertEqual(error(lambda: self.s3.get_object(
            Bucket="conditional", Key="k", IfNoneMatch=etag)), "304")
        future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        self.assertEqual(error(lambda: self.s3.head_object(
            Bucket="conditional", Key="k", IfModifiedSince=future)), "304")
        past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
        self.assertEqual(error(lambda: self.s3.head_object(
            Bucket="conditional", Key="k", IfUnmodifiedSince=past)), "412")
        # botocore presigns S3 with SigV2 unless told otherwise; SigV2 is refused, as AWS
        # refuses it for buckets created since 2020.
        legacy = self.s3.generate_presigned_url("get_object",
                                                Params={"Bucket": "conditional", "Key": "k"})
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(legacy)
        self.assertEqual(caught.exception.code, 400)
        v4 = boto3.session.Session().client(
            "s3", endpoint_url=self.server.url, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
            config=botocore.config.Config(signature_version="s3v4",
                                          s3={"addressing_style": "path"}))
        url = v4.generate_presigned_url("get_object",
                                        Params={"Bucket": "conditional", "Key": "k"})
        with urllib.request.urlopen(url) as resp:
            self.assertEqual(resp.read(), b"v1")
        put_url = v4.generate_presigned_url("put_object",
                                                 Params={"Bucket": "conditional", "Key": "p"})
        req = urllib.request.Request(put_url, data=b"presigned", method="PUT")
        with urllib.request.urlopen(req) as resp:
            self.assertEqual(resp.status, 200)
        self.assertEqual(self.s3.get_object(Bucket="conditional", Key="p")["Body"].read(),
                         b"presigned")
        signature = url.split("X-Amz-Signature=")[1][:64]
        flipped = ("1" if signature[0] != "1" else "2") + signature[1:]
        tampered = url.replace(signature, flipped)
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(tampered)
        self.assertEqual(caught.exception.code, 403)

    def test_bucket_keys_cut_kms_calls(self):
        self.s3.create_bucket(Bucket="bucket-keys")
        key = self.kms.create_key(Description="bucket key")["KeyMetadata"]
        self.s3.put_bucket_encryption(Bucket="bucket-keys", ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["KeyId"]},
                "BucketKeyEnabled": True}]})

        def kms_calls(name):
            return sum(1 for e in self.server.events()
                       if e["eventName"] == name and e.get("resources")
                       and e["resources"][0]["ARN"] == key["Arn"])

        for i in range(20):
            put = self.s3.put_object(Bucket="bucket-keys", Key=f"o{i}", Body=f"body {i}".encode())
            self.assertTrue(put["BucketKeyEnabled"])
        self.assertEqual(kms_calls("GenerateDataKey"), 1, "twenty PUTs, one GenerateDataKey")
        for i in range(20):
            got = self.s3.get_object(Bucket="bucket-keys", Key=f"o{i}")
            self.assertEqual(got["Body"].read(), f"body {i}".encode())
            self.assertTrue(got["BucketKeyEnabled"])
        self.assertEqual(kms_calls("Decrypt"), 1, "twenty GETs, one Decrypt")
        gdk = [e for e in self.server.events() if e["eventName"] == "GenerateDataKey"
               and e["resources"][0]["ARN"] == key["Arn"]][0]
        self.assertEqual(gdk["requestParameters"]["encryptionContext"],
                         {"aws:s3:arn": "arn:aws:s3:::bucket-keys"}, "the bucket ARN")
        # A request can opt out; its object gets its own data key.
        plain = self.s3.put_object(Bucket="bucket-keys", Key="own", Body=b"x",
                                   ServerSideEncryption="aws:kms", SSEKMSKeyId=key["KeyId"],
                                   BucketKeyEnabled=False)
        self.assertNotIn("BucketKeyEnabled", plain)
        self.assertEqual(kms_calls("GenerateDataKey"), 2)

    def test_sse_kms_without_a_key_uses_the_aws_managed_key(self):
        self.s3.create_bucket(Bucket="managed")
        put = self.s3.put_object(Bucket="managed", Key="k", Body=b"managed",
                                 ServerSideEncryption="aws:kms")
        managed = self.kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
        self.assertEqual(put["SSEKMSKeyId"], managed["Arn"])
        self.assertEqual(managed["KeyManager"], "AWS")
        self.assertTrue(self.kms.get_key_rotation_status(KeyId=managed["KeyId"])["KeyRotationEnabled"])
        again = self.s3.put_object(Bucket="managed", Key="k2", Body=b"x",
                                   ServerSideEncryption="aws:kms")
        self.assertEqual(again["SSEKMSKeyId"], managed["Arn"], "created once")
        self.assertEqual(self.s3.get_object(Bucket="managed", Key="k")["Body"].read(), b"managed")
        created = [e for e in self.server.events() if e["eventName"] == "CreateKey"
                   and e["resources"][0]["ARN"] == managed["Arn"]]
        self.assertEqual(len(created), 1)
        self.assertEqual(created[0]["userIdentity"]["invokedBy"], "s3.amazonaws.com")
        aliases = [a["AliasName"] for a in self.kms.list_aliases()["Aliases"]]
        self.assertIn("alias/aws/s3", aliases)

    def test_content_headers_and_cli_context(self):
        self.s3.create_bucket(Bucket="headers")
        self.s3.put_object(Bucket="headers", Key="page", Body=b"<p>hi</p>",
                           ContentType="text/html", CacheControl="max-age=60",
                           ContentDisposition="inline", ContentEncoding="identity",
                           ContentLanguage="en")
        for response in (self.s3.get_object(Bucket="headers", Key="page"),
                         self.s3.head_object(Bucket="headers", Key="page")):
            self.assertEqual(response["ContentType"], "text/html")
            self.assertEqual(response["CacheControl"], "max-age=60")
            self.assertEqual(response["ContentDisposition"], "inline")
            self.assertEqual(response["ContentEncoding"], "identity")
            self.assertEqual(response["ContentLanguage"], "en")
        key = self.kms.create_key(Description="cli context")["KeyMetadata"]
        context = base64.b64encode(json.dumps({"project": "keytrail"}).encode()).decode()
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"context from the CLI")
            f.flush()
            out = subprocess.run(
                ["aws", "s3api", "put-object", "--bucket", "headers", "--key", "ctx",
                 "--body", f.name, "--server-side-encryption", "aws:kms",
                 "--ssekms-key-id", key["KeyId"], "--ssekms-encryption-context", context,
                 "--output", "json"], env=self.server.env(), capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        stored = json.loads(base64.b64decode(json.loads(out.stdout)["SSEKMSEncryptionContext"]))
        self.assertEqual(stored["project"], "keytrail")
        self.assertEqual(self.s3.get_object(Bucket="headers", Key="ctx")["Body"].read(),
                         b"context from the CLI")
        # A key scheduled for deletion can no longer open its objects.
        self.kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
        self.assertEqual(error(lambda: self.s3.get_object(Bucket="headers", Key="ctx")),
                         "KMS.KMSInvalidStateException")

    def test_copy_and_delete_objects(self):
        self.s3.create_bucket(Bucket="copies")
        key = self.kms.create_key(Description="copy target")["KeyMetadata"]
        self.s3.put_object(Bucket="copies", Key="src", Body=b"copied bytes",
                           Metadata={"a": "1"})
        copied = self.s3.copy_object(Bucket="copies", Key="dst",
                                     CopySource={"Bucket": "copies", "Key": "src"},
                                     ServerSideEncryption="aws:kms", SSEKMSKeyId=key["KeyId"])
        self.assertEqual(copied["SSEKMSKeyId"], key["Arn"])
        got = self.s3.get_object(Bucket="copies", Key="dst")
        self.assertEqual(got["Body"].read(), b"copied bytes")
        self.assertEqual(got["ServerSideEncryption"], "aws:kms")
        self.assertEqual(got["Metadata"], {"a": "1"})
        self.assertEqual(error(lambda: self.s3.copy_object(
            Bucket="copies", Key="src", CopySource={"Bucket": "copies", "Key": "src"})),
            "InvalidRequest")
        deleted = self.s3.delete_objects(Bucket="copies", Delete={
            "Objects": [{"Key": "src"}, {"Key": "dst"}, {"Key": "never-existed"}]})
        self.assertEqual(sorted(d["Key"] for d in deleted["Deleted"]),
                         ["dst", "never-existed", "src"])
        self.assertNotIn("Contents", self.s3.list_objects_v2(Bucket="copies"))

    def test_object_tagging_with_boto3_and_the_cli(self):
        self.s3.create_bucket(Bucket="tagging")
        self.s3.put_object(Bucket="tagging", Key="t", Body=b"tagged", Tagging="a=1&b=two%20words")
        self.assertEqual(self.s3.get_object(Bucket="tagging", Key="t")["TagCount"], 2)
        out = subprocess.run(
            ["aws", "s3api", "put-object-tagging", "--bucket", "tagging", "--key", "t",
             "--tagging", "TagSet=[{Key=stage,Value=prod}]"],
            env=self.server.env(), capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        out = subprocess.run(
            ["aws", "s3api", "get-object-tagging", "--bucket", "tagging", "--key", "t",
             "--output", "json"], env=self.server.env(), capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["TagSet"], [{"Key": "stage", "Value": "prod"}])
        self.assertEqual(error(lambda: self.s3.put_object_tagging(
            Bucket="tagging", Key="t",
            Tagging={"TagSet": [{"Key": "aws:x", "Value": "1"}]})), "InvalidTag")
        self.s3.delete_object_tagging(Bucket="tagging", Key="t")
        self.assertEqual(self.s3.get_object_tagging(Bucket="tagging", Key="t")["TagSet"], [])

    def test_aws_cli_cp_round_trip_with_sse_kms(self):
        key = self.kms.create_key(Description="cli-s3")["KeyMetadata"]["KeyId"]
        env = self.server.env()
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src.bin")
            dst = os.path.join(tmp, "dst.bin")
            with open(src, "wb") as f:
                # 20 MiB: above the CLI's 8 MiB threshold, so the upload is multipart.
                f.write(os.urandom(20 * 1024 * 1024))
            for args in (["aws", "s3", "mb", "s3://cli-bucket"],
                         ["aws", "s3", "cp", src, "s3://cli-bucket/src.bin", "--sse", "aws:kms",
                          "--sse-kms-key-id", key],
                         ["aws", "s3", "cp", "s3://cli-bucket/src.bin", dst]):
                out = subprocess.run(args, env=env, capture_output=True, text=True)
                self.assertEqual(out.returncode, 0, out.stderr)
            with open(src, "rb") as a, open(dst, "rb") as b:
                self.assertEqual(a.read(), b.read())


if __name__ == "__main__":
    unittest.main()


class S3Restart(unittest.TestCase):
    def test_objects_survive_a_restart_and_interrupted_uploads_are_cleaned(self):
        server = KeytrailServer()
        try:
            s3 = s3_client(server)
            kms = server.client("kms")
            key = kms.create_key()["KeyMetadata"]["KeyId"]
            s3.create_bucket(Bucket="durable")
            s3.put_object(Bucket="durable", Key="s3", Body=b"sse-s3 body")
            s3.put_object(Bucket="durable", Key="kms", Body=b"sse-kms body",
                          ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
            # What a crash in the middle of an upload leaves: a temporary file nothing refers to.
            stray = os.path.join(server.data_dir, "objects", "tmp", "interrupted-upload")
            with open(stray, "wb") as f:
                f.write(b"half an upload")
            server.restart()
            s3 = s3_client(server)
            self.assertEqual(s3.get_object(Bucket="durable", Key="s3")["Body"].read(),
                             b"sse-s3 body")
            self.assertEqual(s3.get_object(Bucket="durable", Key="kms")["Body"].read(),
                             b"sse-kms body")
            self.assertFalse(os.path.exists(stray), "interrupted uploads are removed at start")
            self.assertEqual([o["Key"] for o in s3.list_objects_v2(Bucket="durable")["Contents"]],
                             ["kms", "s3"])
        finally:
            server.stop()
