"""Importing key material as the AWS documentation walks a user through it: the aws CLI asks for
the import parameters and imports files, the material is wrapped by an independent
implementation (Python `cryptography`), boto3 uses the key."""

import base64
import os
import tempfile
import unittest

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from keytrail_server import KeytrailServer


def wrap(public_der, algorithm, material):
    public = serialization.load_der_public_key(public_der)
    digest = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()
    oaep = padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(material, oaep)
    aes_key = os.urandom(32)
    return public.encrypt(aes_key, oaep) + aes_key_wrap_with_padding(aes_key, material)


class KmsImport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = KeytrailServer()
        cls.kms = cls.server.client("kms")
        cls.dir = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()
        assert cls.server.stop() == 0

    def aws(self, *args):
        return self.server.cli_ok("kms", *args)

    def file(self, name, data):
        path = os.path.join(self.dir.name, name)
        with open(path, "wb") as f:
            f.write(data)
        return f"fileb://{path}"

    def cli_import(self, key_id, algorithm, spec, material):
        params = self.aws("get-parameters-for-import", "--key-id", key_id,
                          "--wrapping-algorithm", algorithm, "--wrapping-key-spec", spec)
        public = base64.b64decode(params["PublicKey"])
        self.assertEqual(serialization.load_der_public_key(public).key_size, int(spec[4:]))
        token = self.file("token.bin", base64.b64decode(params["ImportToken"]))
        wrapped = self.file("material.bin", wrap(public, algorithm, material))
        return self.aws("import-key-material", "--key-id", key_id, "--import-token", token,
                        "--encrypted-key-material", wrapped,
                        "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE")

    def test_cli_import_every_wrapping_algorithm_then_boto3_uses_the_key(self):
        for algorithm, spec in (("RSAES_OAEP_SHA_1", "RSA_2048"),
                                ("RSAES_OAEP_SHA_256", "RSA_3072"),
                                ("RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"),
                                ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096")):
            with self.subTest(algorithm=algorithm):
                key = self.aws("create-key", "--origin", "EXTERNAL")["KeyMetadata"]
                self.assertEqual(key["KeyState"], "PendingImport")
                material = os.urandom(32)
                imported = self.cli_import(key["KeyId"], algorithm, spec, material)
                meta = self.kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
                self.assertEqual(meta["KeyState"], "Enabled")
                self.assertEqual(meta["CurrentKeyMaterialId"], imported["KeyMaterialId"])
                blob = self.kms.encrypt(KeyId=key["KeyId"], Plaintext=b"imported",
                                        EncryptionContext={"a": "b"})["CiphertextBlob"]
                self.kms.delete_imported_key_material(KeyId=key["KeyId"])
                with self.assertRaises(ClientError) as caught:
                    self.kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})
                self.assertEqual(caught.exception.response["Error"]["Code"],
                                 "KMSInvalidStateException")
                again = self.cli_import(key["KeyId"], algorithm, spec, material)
                self.assertEqual(again["KeyMaterialId"], imported["KeyMaterialId"])
                plain = self.kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})
                self.assertEqual(plain["Plaintext"], b"imported")

    def test_the_wrong_material_is_refused(self):
        key = self.kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        self.cli_import(key, "RSAES_OAEP_SHA_256", "RSA_2048", os.urandom(32))
        params = self.kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                                    WrappingKeySpec="RSA_2048")
        with self.assertRaises(ClientError) as caught:
            self.kms.import_key_material(
                KeyId=key, ImportToken=params["ImportToken"],
                EncryptedKeyMaterial=wrap(params["PublicKey"], "RSAES_OAEP_SHA_256", os.urandom(32)),
                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
        self.assertEqual(caught.exception.response["Error"]["Code"], "IncorrectKeyMaterialException")


if __name__ == "__main__":
    unittest.main()
