"""Multi-Region keys with the users' own tools: the aws CLI creates and replicates a key, boto3
uses it in both Regions, and the AWS Encryption SDK's multi-Region-aware keyring encrypts in one
Region and decrypts in the other, as a client of a replicated key does."""

import unittest

import aws_encryption_sdk
from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders
from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig
from aws_cryptographic_material_providers.mpl.models import CreateAwsKmsMrkKeyringInput
from aws_encryption_sdk import CommitmentPolicy
from botocore.exceptions import ClientError

from keytrail_server import KeytrailServer


class KmsMultiRegion(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = KeytrailServer()
        cls.us = cls.server.client("kms")
        cls.eu = cls.server.client("kms", region="eu-west-1")

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def aws(self, *args):
        return self.server.cli_ok("kms", *args)

    def replicated_key(self):
        primary = self.aws("create-key", "--multi-region", "--description", "mrk")["KeyMetadata"]
        self.assertTrue(primary["KeyId"].startswith("mrk-"))
        replica = self.aws("replicate-key", "--key-id", primary["KeyId"],
                           "--replica-region", "eu-west-1")["ReplicaKeyMetadata"]
        return primary, replica

    def test_cli_replicates_and_boto3_decrypts_in_the_other_region(self):
        primary, replica = self.replicated_key()
        self.assertEqual(replica["Arn"], primary["Arn"].replace("us-east-1", "eu-west-1"))
        self.assertEqual(replica["MultiRegionConfiguration"]["MultiRegionKeyType"], "REPLICA")
        described = self.aws("describe-key", "--key-id", primary["KeyId"])["KeyMetadata"]
        config = described["MultiRegionConfiguration"]
        self.assertEqual(config["MultiRegionKeyType"], "PRIMARY")
        self.assertEqual(config["PrimaryKey"], {"Arn": primary["Arn"], "Region": "us-east-1"})
        self.assertEqual(config["ReplicaKeys"], [{"Arn": replica["Arn"], "Region": "eu-west-1"}])

        data_key = self.us.generate_data_key(KeyId=primary["Arn"], KeySpec="AES_256",
                                             EncryptionContext={"bucket": "logs"})
        opened = self.eu.decrypt(CiphertextBlob=data_key["CiphertextBlob"],
                                 EncryptionContext={"bucket": "logs"})
        self.assertEqual(opened["Plaintext"], data_key["Plaintext"])
        self.assertEqual(opened["KeyId"], replica["Arn"])

        with self.assertRaises(ClientError) as caught:
            self.eu.replicate_key(KeyId=replica["KeyId"], ReplicaRegion="ap-southeast-2")
        self.assertEqual(caught.exception.response["Error"]["Code"],
                         "UnsupportedOperationException")

        self.aws("update-primary-region", "--key-id", primary["Arn"],
                 "--primary-region", "eu-west-1")
        now = self.eu.describe_key(KeyId=replica["KeyId"])["KeyMetadata"]
        self.assertEqual(now["MultiRegionConfiguration"]["MultiRegionKeyType"], "PRIMARY")

    def test_encryption_sdk_mrk_keyring_decrypts_with_the_replica(self):
        primary, replica = self.replicated_key()
        providers = AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())
        in_us = providers.create_aws_kms_mrk_keyring(
            input=CreateAwsKmsMrkKeyringInput(kms_key_id=primary["Arn"], kms_client=self.us))
        in_eu = providers.create_aws_kms_mrk_keyring(
            input=CreateAwsKmsMrkKeyringInput(kms_key_id=replica["Arn"], kms_client=self.eu))
        client = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
        message = b"written in us-east-1, read in eu-west-1" * 8
        ciphertext, _ = client.encrypt(source=message, keyring=in_us,
                                       encryption_context={"purpose": "mrk"})
        decrypted, _ = client.decrypt(source=ciphertext, keyring=in_eu,
                                      encryption_context={"purpose": "mrk"})
        self.assertEqual(decrypted, message)
        decrypts = [e for e in self.server.events() if e["eventName"] == "Decrypt"
                    and e.get("resources") and e["resources"][0]["ARN"] == replica["Arn"]]
        self.assertEqual(len(decrypts), 1)
        self.assertEqual(decrypts[0]["awsRegion"], "eu-west-1")


if __name__ == "__main__":
    unittest.main()
