"""Authorization with the users' own tools: IAM users, access keys and inline policies made with
the aws CLI, then calls as that user that are allowed and denied, in KMS and IAM."""

import base64
import json
import os
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

    def aws(self, *args, key="test", secret="test", token=None):
        return self.server.cli(*args, key=key, secret=secret, token=token)

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

    def test_aws_cli_assumes_a_role_and_acts_with_its_policies(self):
        self.ok("iam", "create-user", "--user-name", "erin")
        key = self.ok("iam", "create-access-key", "--user-name", "erin")["AccessKey"]
        erin = {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
             "Action": "sts:AssumeRole"}]}
        role = self.ok("iam", "create-role", "--role-name", "encryptor",
                       "--assume-role-policy-document", json.dumps(trust))["Role"]
        self.assertEqual(role["Arn"], "arn:aws:iam::000000000000:role/encryptor")
        self.assertEqual(role["AssumeRolePolicyDocument"], trust)
        assume = ("sts", "assume-role", "--role-arn", role["Arn"], "--role-session-name", "batch")

        # The trust policy delegates to the account: erin's own policy must allow it too.
        code, _, err = self.aws(*assume, **erin)
        self.assertNotEqual(code, 0)
        self.assertIn("AccessDenied", err)
        self.ok("iam", "put-user-policy", "--user-name", "erin", "--policy-name", "assume",
                "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role["Arn"]}]}))
        out = self.ok(*assume, **erin)
        session = {"key": out["Credentials"]["AccessKeyId"],
                   "secret": out["Credentials"]["SecretAccessKey"],
                   "token": out["Credentials"]["SessionToken"]}
        self.assertTrue(session["key"].startswith("ASIA"))
        identity = self.ok("sts", "get-caller-identity", **session)
        self.assertEqual(identity["Arn"],
                         "arn:aws:sts::000000000000:assumed-role/encryptor/batch")

        # Allowed and denied as the role's managed policy says.
        policy = self.ok("iam", "create-policy", "--policy-name", "encrypt-only",
                         "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
                             {"Effect": "Allow", "Action": ["kms:CreateKey", "kms:Encrypt"],
                              "Resource": "*"}]}))["Policy"]
        self.ok("iam", "attach-role-policy", "--role-name", "encryptor",
                "--policy-arn", policy["Arn"])
        self.assertEqual(
            self.ok("iam", "list-attached-role-policies", "--role-name", "encryptor")
            ["AttachedPolicies"], [{"PolicyName": "encrypt-only", "PolicyArn": policy["Arn"]}])
        key_id = self.ok("kms", "create-key", **session)["KeyMetadata"]["KeyId"]
        blob = self.ok("kms", "encrypt", "--key-id", key_id, "--plaintext", "hello",
                       **session)["CiphertextBlob"]
        path = os.path.join(self.tmp.name, "role-blob")
        with open(path, "wb") as f:
            f.write(base64.b64decode(blob))
        code, _, err = self.aws("kms", "decrypt", "--ciphertext-blob", f"fileb://{path}",
                                **session)
        self.assertNotEqual(code, 0)
        self.assertIn("AccessDeniedException", err)
        self.assertIn("assumed-role/encryptor/batch is not authorized to perform: kms:Decrypt",
                      err)
        # boto3 with the same session reads the journal's view of who it is.
        sts = self.server.client("sts", session["key"], session["secret"], session["token"])
        self.assertEqual(sts.get_caller_identity()["UserId"],
                         f"{role['RoleId']}:batch")
        events = [e for e in self.server.events() if e["eventName"] == "Decrypt"
                  and e.get("errorCode") == "AccessDeniedException"]
        self.assertEqual(events[-1]["userIdentity"]["type"], "AssumedRole")
        self.assertEqual(events[-1]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"],
                         role["Arn"])

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
