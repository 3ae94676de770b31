"""KMS with the users' own tools: the aws CLI, boto3 and the AWS Encryption SDK."""

import base64
import json
import os
import subprocess
import tempfile
import unittest

import aws_encryption_sdk
import boto3
from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders
from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig
from aws_cryptographic_material_providers.mpl.models import CreateAwsKmsKeyringInput
from aws_encryption_sdk import CommitmentPolicy
from botocore.exceptions import ClientError

from keytrail_server import KeytrailServer


class Kms(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = KeytrailServer()
        cls.kms = cls.server.client("kms")

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def aws(self, *args):
        out = subprocess.run(["aws", "kms", *args, "--output", "json"], env=self.server.env(),
                             capture_output=True, text=True)
        return out.returncode, out.stdout, out.stderr

    def test_aws_cli_envelope_round_trip(self):
        code, out, err = self.aws("create-key", "--description", "cli key")
        self.assertEqual(code, 0, err)
        key_id = json.loads(out)["KeyMetadata"]["KeyId"]
        code, _, err = self.aws("create-alias", "--alias-name", "alias/cli", "--target-key-id", key_id)
        self.assertEqual(code, 0, err)
        code, out, err = self.aws("generate-data-key", "--key-id", "alias/cli", "--key-spec", "AES_256",
                                  "--encryption-context", "purpose=e2e,team=audit")
        self.assertEqual(code, 0, err)
        data_key = json.loads(out)
        self.assertTrue(data_key["KeyId"].endswith(key_id))
        with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
            f.write(base64.b64decode(data_key["CiphertextBlob"]))
            blob = f.name
        try:
            code, out, err = self.aws("decrypt", "--ciphertext-blob", f"fileb://{blob}",
                                      "--encryption-context", "team=audit,purpose=e2e")
            self.assertEqual(code, 0, err)
            self.assertEqual(json.loads(out)["Plaintext"], data_key["Plaintext"])
            code, _, err = self.aws("decrypt", "--ciphertext-blob", f"fileb://{blob}",
                                    "--encryption-context", "team=other,purpose=e2e")
            self.assertNotEqual(code, 0)
            self.assertIn("InvalidCiphertextException", err)
        finally:
            os.unlink(blob)

    def test_boto3_encrypt_decrypt_and_errors(self):
        key = self.kms.create_key(Description="boto3")["KeyMetadata"]
        ciphertext = self.kms.encrypt(KeyId=key["Arn"], Plaintext=b"hello",
                                      EncryptionContext={"k": "v"})["CiphertextBlob"]
        plain = self.kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext={"k": "v"})
        self.assertEqual(plain["Plaintext"], b"hello")
        self.assertEqual(plain["KeyId"], key["Arn"])
        self.kms.disable_key(KeyId=key["KeyId"])
        with self.assertRaises(ClientError) as caught:
            self.kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext={"k": "v"})
        self.assertEqual(caught.exception.response["Error"]["Code"], "DisabledException")
        with self.assertRaises(ClientError) as caught:
            self.kms.generate_data_key(KeyId=key["KeyId"])
        self.assertEqual(caught.exception.response["Error"]["Code"], "ValidationException")

    def test_aws_encryption_sdk_with_a_kms_keyring(self):
        key_arn = self.kms.create_key(Description="esdk")["KeyMetadata"]["Arn"]
        providers = AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())
        keyring = providers.create_aws_kms_keyring(
            input=CreateAwsKmsKeyringInput(kms_key_id=key_arn, kms_client=self.kms))
        client = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
        message = b"a message protected by keytrail's KMS" * 10
        context = {"bucket": "logs", "purpose": "esdk-e2e"}
        ciphertext, _ = client.encrypt(source=message, keyring=keyring, encryption_context=context)
        self.assertNotIn(message, ciphertext)
        decrypted, header = client.decrypt(source=ciphertext, keyring=keyring,
                                           encryption_context=context)
        self.assertEqual(decrypted, message)
        self.assertEqual(header.encryption_context["purpose"], "esdk-e2e")
        # The SDK's own KMS calls are journaled like any other.
        names = [e["eventName"] for e in self.server.events()
                 if e.get("resources") and e["resources"][0]["ARN"] == key_arn]
        self.assertIn("GenerateDataKey", names)
        self.assertIn("Decrypt", names)

    def test_aws_encryption_sdk_with_a_master_key_provider(self):
        key_arn = self.kms.create_key(Description="esdk-mkp")["KeyMetadata"]["Arn"]
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                        region_name="us-east-1")
        old = os.environ.get("AWS_ENDPOINT_URL_KMS")
        os.environ["AWS_ENDPOINT_URL_KMS"] = self.server.url
        try:
            provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
                key_ids=[key_arn], botocore_session=session._session)
            client = aws_encryption_sdk.EncryptionSDKClient(
                commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
            ciphertext, _ = client.encrypt(source=b"legacy provider", key_provider=provider)
            decrypted, _ = client.decrypt(source=ciphertext, key_provider=provider)
            self.assertEqual(decrypted, b"legacy provider")
        finally:
            if old is None:
                del os.environ["AWS_ENDPOINT_URL_KMS"]
            else:
                os.environ["AWS_ENDPOINT_URL_KMS"] = old


if __name__ == "__main__":
    unittest.main()
