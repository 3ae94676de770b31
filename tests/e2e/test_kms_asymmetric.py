"""Asymmetric KMS keys checked by an independent implementation (Python `cryptography`):
signatures made by keytrail verify offline with GetPublicKey's key, digests computed offline
sign in keytrail, and RSA ciphertexts made offline decrypt in keytrail."""

import hashlib
import json
import subprocess
import unittest

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

from keytrail_server import KeytrailServer

HASHES = {"256": (hashes.SHA256(), hashlib.sha256), "384": (hashes.SHA384(), hashlib.sha384),
          "512": (hashes.SHA512(), hashlib.sha512)}

SIGNING = [
    ("RSA_2048", ["RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
                  "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384",
                  "RSASSA_PKCS1_V1_5_SHA_512"]),
    ("RSA_3072", ["RSASSA_PSS_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384"]),
    ("RSA_4096", ["RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_256"]),
    ("ECC_NIST_P256", ["ECDSA_SHA_256"]),
    ("ECC_NIST_P384", ["ECDSA_SHA_384"]),
    ("ECC_NIST_P521", ["ECDSA_SHA_512"]),
    ("ECC_SECG_P256K1", ["ECDSA_SHA_256"]),
]


class AsymmetricOffline(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = KeytrailServer()
        cls.kms = cls.server.client("kms")

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def verify_offline(self, public, algorithm, message, signature):
        hash_obj, _ = HASHES[algorithm[-3:]]
        if algorithm.startswith("RSASSA_PSS"):
            public.verify(signature, message,
                          padding.PSS(mgf=padding.MGF1(hash_obj),
                                      salt_length=padding.PSS.DIGEST_LENGTH), hash_obj)
        elif algorithm.startswith("RSASSA_PKCS1"):
            public.verify(signature, message, padding.PKCS1v15(), hash_obj)
        else:
            public.verify(signature, message, ec.ECDSA(hash_obj))

    def test_signatures_verify_offline_and_offline_digests_sign(self):
        message = b"signed by keytrail, checked by cryptography"
        for spec, algorithms in SIGNING:
            key = self.kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
            der = self.kms.get_public_key(KeyId=key)["PublicKey"]
            public = serialization.load_der_public_key(der)
            for algorithm in algorithms:
                with self.subTest(spec=spec, algorithm=algorithm):
                    raw = self.kms.sign(KeyId=key, Message=message,
                                        SigningAlgorithm=algorithm)["Signature"]
                    self.verify_offline(public, algorithm, message, raw)
                    _, hasher = HASHES[algorithm[-3:]]
                    digest = hasher(message).digest()
                    by_digest = self.kms.sign(KeyId=key, Message=digest, MessageType="DIGEST",
                                              SigningAlgorithm=algorithm)["Signature"]
                    self.verify_offline(public, algorithm, message, by_digest)

    def test_ed25519_signatures_verify_offline_and_offline_signatures_verify(self):
        key = self.kms.create_key(KeySpec="ECC_NIST_EDWARDS25519",
                                  KeyUsage="SIGN_VERIFY")["KeyMetadata"]
        self.assertEqual(key["SigningAlgorithms"], ["ED25519_SHA_512", "ED25519_PH_SHA_512"])
        public = serialization.load_der_public_key(
            self.kms.get_public_key(KeyId=key["KeyId"])["PublicKey"])
        self.assertIsInstance(public, ed25519.Ed25519PublicKey)
        message = b"an Edwards signature, checked by cryptography"
        signature = self.kms.sign(KeyId=key["KeyId"], Message=message,
                                  SigningAlgorithm="ED25519_SHA_512")["Signature"]
        public.verify(signature, message)
        # A key pair made by GenerateDataKeyPair signs offline; keytrail's public key matches.
        pair = self.kms.generate_data_key_pair(
            KeyId=self.kms.create_key()["KeyMetadata"]["KeyId"],
            KeyPairSpec="ECC_NIST_EDWARDS25519")
        private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
        self.assertEqual(
            private.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo),
            pair["PublicKey"])
        offline = private.sign(message)
        serialization.load_der_public_key(pair["PublicKey"]).verify(offline, message)

    def test_rsa_ciphertexts_made_offline_decrypt(self):
        for spec in ("RSA_2048", "RSA_3072", "RSA_4096"):
            key = self.kms.create_key(KeySpec=spec, KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
            public = serialization.load_der_public_key(self.kms.get_public_key(KeyId=key)["PublicKey"])
            for algorithm, hash_obj in (("RSAES_OAEP_SHA_1", hashes.SHA1()),
                                        ("RSAES_OAEP_SHA_256", hashes.SHA256())):
                with self.subTest(spec=spec, algorithm=algorithm):
                    ciphertext = public.encrypt(
                        b"made offline", padding.OAEP(mgf=padding.MGF1(hash_obj),
                                                      algorithm=hash_obj, label=None))
                    plain = self.kms.decrypt(KeyId=key, CiphertextBlob=ciphertext,
                                             EncryptionAlgorithm=algorithm)["Plaintext"]
                    self.assertEqual(plain, b"made offline")

    def test_aws_cli_tells_symmetric_from_asymmetric(self):
        env = self.server.env()
        out = subprocess.run(["aws", "kms", "create-key", "--key-spec", "RSA_2048",
                              "--key-usage", "SIGN_VERIFY", "--output", "json"],
                             env=env, check=True, capture_output=True, text=True)
        meta = json.loads(out.stdout)["KeyMetadata"]
        self.assertEqual(meta["KeySpec"], "RSA_2048")
        self.assertIn("RSASSA_PSS_SHA_256", meta["SigningAlgorithms"])
        out = subprocess.run(["aws", "kms", "generate-data-key", "--key-id", meta["KeyId"],
                              "--key-spec", "AES_256"], env=env, capture_output=True, text=True)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("InvalidKeyUsageException", out.stderr)


if __name__ == "__main__":
    unittest.main()
