"""The aws CLI and boto3 against keytrail over HTTP and HTTPS."""

import json
import os
import subprocess
import unittest

import boto3
import botocore.config
from botocore.exceptions import ClientError

from keytrail_server import KeytrailServer

NO_RETRY = botocore.config.Config(retries={"total_max_attempts": 1})


def client(server, service, key="test", secret="test", url=None, verify=None):
    return boto3.session.Session().client(
        service, endpoint_url=url or server.url, region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret, config=NO_RETRY,
        verify=verify)


def error_code(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response
    raise AssertionError("the call was expected to fail")


class OverHttp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = KeytrailServer()

    @classmethod
    def tearDownClass(cls):
        # A clean SIGTERM shutdown exits 0.
        assert cls.server.stop() == 0

    def test_aws_cli_gets_the_caller_identity(self):
        out = subprocess.run(["aws", "sts", "get-caller-identity", "--output", "json"],
                             env=self.server.env(), check=True, capture_output=True, text=True)
        identity = json.loads(out.stdout)
        self.assertEqual(identity["Account"], "000000000000")
        self.assertEqual(identity["Arn"], "arn:aws:iam::000000000000:root")

    def test_aws_cli_reports_a_wrong_secret(self):
        out = subprocess.run(["aws", "sts", "get-caller-identity"],
                             env=self.server.env(secret="wrong"), capture_output=True, text=True)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("SignatureDoesNotMatch", out.stderr)

    def test_boto3_identity_matches_the_journal(self):
        sts = client(self.server, "sts", "AKIAE2EUSER000000001",
                     "e2e/User+Secret00000000000000000000000000")
        resp = sts.get_caller_identity()
        self.assertEqual(resp["Arn"], "arn:aws:iam::444455556666:user/e2e-user")
        event = self.server.event(resp["ResponseMetadata"]["RequestId"])
        self.assertEqual(event["userIdentity"]["type"], "IAMUser")
        self.assertEqual(event["userIdentity"]["userName"], "e2e-user")
        self.assertEqual(event["eventName"], "GetCallerIdentity")
        self.assertIn("Boto3", event["userAgent"])

    def test_boto3_sees_aws_shaped_errors(self):
        code, resp = error_code(lambda: client(self.server, "sts", "AKIANOSUCHKEY0000000", "x")
                                .get_caller_identity())
        self.assertEqual(code, "InvalidClientTokenId")
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 403)
        code, resp = error_code(lambda: client(self.server, "kms", "AKIANOSUCHKEY0000000", "x")
                                .list_keys())
        self.assertEqual(code, "UnrecognizedClientException")
        code, resp = error_code(lambda: client(self.server, "kms")
                                .describe_key(KeyId="alias/missing"))
        self.assertEqual(code, "NotFoundException")
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 400)
        self.assertTrue(resp["ResponseMetadata"]["RequestId"])

    def test_boto3_s3_is_authenticated_over_http(self):
        s3 = client(self.server, "s3")
        # Over http botocore signs the full payload hash and sends the CRC32 as a header.
        code, resp = error_code(lambda: s3.put_object(Bucket="missing", Key="k", Body=b"x"))
        self.assertEqual(code, "NoSuchBucket")
        self.assertEqual(len(resp["ResponseMetadata"]["RequestId"]), 16)
        s3.create_bucket(Bucket="over-http")
        s3.put_object(Bucket="over-http", Key="k", Body=b"x" * 1000)
        self.assertEqual(s3.get_object(Bucket="over-http", Key="k")["Body"].read(), b"x" * 1000)
        code, _ = error_code(lambda: client(self.server, "s3", secret="wrong").list_buckets())
        self.assertEqual(code, "SignatureDoesNotMatch")


class OverHttps(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = KeytrailServer("--tls-self-signed")
        cls.cert = os.path.join(cls.server.data_dir, "tls", "cert.pem")
        cls.url = f"https://localhost:{cls.server.port}"

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def test_aws_cli_trusts_the_self_signed_certificate(self):
        env = self.server.env(url=self.url)
        env["AWS_CA_BUNDLE"] = self.cert
        out = subprocess.run(["aws", "sts", "get-caller-identity", "--output", "json"],
                             env=env, check=True, capture_output=True, text=True)
        self.assertEqual(json.loads(out.stdout)["Account"], "000000000000")

    def test_boto3_over_tls_records_tls_details(self):
        sts = client(self.server, "sts", url=self.url, verify=self.cert)
        resp = sts.get_caller_identity()
        event = self.server.event(resp["ResponseMetadata"]["RequestId"])
        self.assertTrue(event["tlsDetails"]["tlsVersion"].startswith("TLSv1."))
        self.assertEqual(event["tlsDetails"]["clientProvidedHostHeader"],
                         f"localhost:{self.server.port}")

    def test_s3_streaming_unsigned_trailer_upload_is_authenticated(self):
        # Over https botocore streams PutObject as STREAMING-UNSIGNED-PAYLOAD-TRAILER.
        s3 = client(self.server, "s3", url=self.url, verify=self.cert)
        seen = {}

        def capture(request, **_):
            seen["sha"] = request.headers.get("x-amz-content-sha256")
        s3.meta.events.register("before-send.s3.PutObject", capture)
        s3.create_bucket(Bucket="over-https")
        s3.put_object(Bucket="over-https", Key="k", Body=b"y" * 4096)
        self.assertEqual(seen["sha"], b"STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        self.assertEqual(s3.get_object(Bucket="over-https", Key="k")["Body"].read(), b"y" * 4096)


if __name__ == "__main__":
    unittest.main()
