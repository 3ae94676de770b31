"""Authorization with the users' own tools: IAM users, access keys and inline policies made with
the aws CLI, then calls as that user that are allowed and denied, in KMS and IAM."""

import base64
import json
import os
import subprocess
import tempfile
import unittest

from botocore.exceptions import ClientError

from keytrail_server import KeytrailServer


class Authorization(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = KeytrailServer()
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        assert cls.server.stop() == 0

    def aws(self, *args, key="test", secret="test"):
        out = subprocess.run(["aws", *args, "--output", "json"],
                             env=self.server.env(key, secret), capture_output=True, text=True)
        return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else None), out.stderr

    def ok(self, *args, **creds):
        code, body, err = self.aws(*args, **creds)
        self.assertEqual(code, 0, err)
        return body

    def test_aws_cli_user_with_an_inline_policy_is_allowed_and_denied(self):
        user = self.ok("iam", "create-user", "--user-name", "carol")["User"]
        self.assertEqual(user["Arn"], "arn:aws:iam::000000000000:user/carol")
        key = self.ok("iam", "create-access-key", "--user-name", "carol")["AccessKey"]
        carol = {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}

        code, _, err = self.aws("kms", "create-key", **carol)
        self.assertNotEqual(code, 0)
        self.assertIn("AccessDeniedException", err)
        self.assertIn("arn:aws:iam::000000000000:user/carol is not authorized to perform: "
                      "kms:CreateKey", err)

        document = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["kms:CreateKey", "kms:Encrypt", "kms:DescribeKey"],
             "Resource": "*"}]}
        self.ok("iam", "put-user-policy", "--user-name", "carol", "--policy-name", "kms-write",
                "--policy-document", json.dumps(document))
        # The CLI decodes IAM's URL-encoded document back into JSON.
        fetched = self.ok("iam", "get-user-policy", "--user-name", "carol",
                          "--policy-name", "kms-write")
        self.assertEqual(fetched["PolicyDocument"], document)
        self.assertEqual(self.ok("iam", "list-user-policies", "--user-name", "carol")["PolicyNames"],
                         ["kms-write"])

        key_id = self.ok("kms", "create-key", **carol)["KeyMetadata"]["KeyId"]
        blob = self.ok("kms", "encrypt", "--key-id", key_id, "--plaintext", "hello",
                       **carol)["CiphertextBlob"]
        blob_file = os.path.join(self.tmp.name, "blob")
        with open(blob_file, "wb") as f:
            f.write(base64.b64decode(blob))
        blob = "fileb://" + blob_file
        code, _, err = self.aws("kms", "decrypt", "--ciphertext-blob", blob, **carol)
        self.assertNotEqual(code, 0)
        self.assertIn("AccessDeniedException", err)
        self.assertIn("kms:Decrypt", err)
        # The account root decrypts: the default key policy delegates to the account.
        plaintext = self.ok("kms", "decrypt", "--ciphertext-blob", blob)["Plaintext"]
        self.assertEqual(plaintext, "aGVsbG8=")

        # Carol may not manage IAM; the account root may deactivate her key, which stops her.
        code, _, err = self.aws("iam", "create-user", "--user-name", "mallory", **carol)
        self.assertNotEqual(code, 0)
        self.assertIn("AccessDenied", err)
        self.ok("iam", "update-access-key", "--user-name", "carol", "--access-key-id",
                carol["key"], "--status", "Inactive")
        listed = self.ok("iam", "list-access-keys", "--user-name", "carol")["AccessKeyMetadata"]
        self.assertEqual([k["Status"] for k in listed], ["Inactive"])
        code, _, err = self.aws("kms", "describe-key", "--key-id", key_id, **carol)
        self.assertNotEqual(code, 0)

        denials = [e for e in self.server.events()
                   if e.get("errorCode") in ("AccessDenied", "AccessDeniedException")
                   and e["userIdentity"].get("userName") == "carol"]
        self.assertEqual(sorted(e["eventName"] for e in denials),
                         ["CreateKey", "CreateUser", "Decrypt"])

    def test_boto3_iam_errors(self):
        iam = self.server.client("iam")
        iam.create_user(UserName="dave")
        with self.assertRaises(ClientError) as raised:
            iam.create_user(UserName="dave")
        self.assertEqual(raised.exception.response["Error"]["Code"], "EntityAlreadyExists")
        self.assertEqual(raised.exception.response["ResponseMetadata"]["HTTPStatusCode"], 409)
        with self.assertRaises(ClientError) as raised:
            iam.put_user_policy(UserName="dave", PolicyName="p", PolicyDocument="{}")
        self.assertEqual(raised.exception.response["Error"]["Code"], "MalformedPolicyDocument")
        with self.assertRaises(ClientError) as raised:
            iam.get_user_policy(UserName="dave", PolicyName="missing")
        self.assertEqual(raised.exception.response["Error"]["Code"], "NoSuchEntity")
        iam.delete_user(UserName="dave")
        with self.assertRaises(ClientError) as raised:
            iam.get_user(UserName="dave")
        self.assertEqual(raised.exception.response["Error"]["Code"], "NoSuchEntity")


if __name__ == "__main__":
    unittest.main()
