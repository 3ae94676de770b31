"""External key stores end to end: boto3 and the aws CLI create, connect, update and delete a
custom key store whose XKS proxy (tests/e2e/xks_proxy.py, written from AWS's XKS proxy API
specification) holds the external keys; KMS keys in it encrypt twice, through the proxy."""

import json
import tempfile
import unittest

import botocore.exceptions

from keytrail_server import KeytrailServer
from xks_proxy import ACCESS_KEY_ID, HOST, SECRET, XksProxy

WRONG_SECRET = "V3JvbmdXcm9uZ1dyb25nV3JvbmdXcm9uZ1dyb25nV3Jvbmc="
PATH = "/keystores/e2e/kms/xks/v1"


class ExternalKeyStoreTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tls_dir = tempfile.TemporaryDirectory()
        cls.proxy = XksProxy(cls.tls_dir.name)
        for key_id in ("ext-key-1", "ext-key-2", "ext-key-3"):
            cls.proxy.add_key(key_id)
        cls.proxy.add_key("ext-disabled", status="DISABLED")
        cls.proxy.add_key("ext-sign-only", usage=("SIGN", "VERIFY"))
        cls.server = KeytrailServer(config_extra=cls.proxy.keytrail_config())
        cls.kms = cls.server.client("kms")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.proxy.stop()
        cls.tls_dir.cleanup()

    def create_store(self, name, secret=SECRET, path=PATH):
        return self.kms.create_custom_key_store(
            CustomKeyStoreName=name, CustomKeyStoreType="EXTERNAL_KEY_STORE",
            XksProxyUriEndpoint=f"https://{HOST}", XksProxyUriPath=path,
            XksProxyAuthenticationCredential={"AccessKeyId": ACCESS_KEY_ID,
                                              "RawSecretAccessKey": secret},
            XksProxyConnectivity="PUBLIC_ENDPOINT")

    def describe(self, store_id):
        return self.kms.describe_custom_key_stores(CustomKeyStoreId=store_id)[
            "CustomKeyStores"][0]

    def assert_error(self, code, call, **kwargs):
        with self.assertRaises(botocore.exceptions.ClientError) as caught:
            call(**kwargs)
        self.assertEqual(caught.exception.response["Error"]["Code"], code,
                         caught.exception.response["Error"].get("Message"))
        return caught.exception.response["Error"]["Message"]

    def test_a_key_store_connects_and_its_keys_encrypt_through_the_proxy(self):
        created = self.create_store("e2e-main")
        store_id = created["CustomKeyStoreId"]
        self.assertRegex(store_id, r"^cks-[0-9a-f]{17}$")
        health = self.proxy.seen("/health")[-1]["metadata"]
        self.assertEqual(health["kmsOperation"], "CreateCustomKeyStore")
        described = self.describe(store_id)
        self.assertEqual(described["ConnectionState"], "DISCONNECTED")
        self.assertEqual(described["CustomKeyStoreType"], "EXTERNAL_KEY_STORE")
        self.assertEqual(described["XksProxyConfiguration"], {
            "Connectivity": "PUBLIC_ENDPOINT", "AccessKeyId": ACCESS_KEY_ID,
            "UriEndpoint": f"https://{HOST}", "UriPath": PATH})
        self.assertNotIn(SECRET, json.dumps(described, default=str))

        self.assert_error("CustomKeyStoreInvalidStateException", self.kms.create_key,
                          Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=store_id,
                          XksKeyId="ext-key-1")
        self.kms.connect_custom_key_store(CustomKeyStoreId=store_id)
        self.assertEqual(self.describe(store_id)["ConnectionState"], "CONNECTED")
        self.assertEqual(self.proxy.seen("/health")[-1]["metadata"]["kmsOperation"],
                         "ConnectCustomKeyStore")

        meta = self.kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=store_id,
                                   XksKeyId="ext-key-1", Description="xks")["KeyMetadata"]
        self.assertEqual(meta["Origin"], "EXTERNAL_KEY_STORE")
        self.assertEqual(meta["CustomKeyStoreId"], store_id)
        self.assertEqual(meta["XksKeyConfiguration"], {"Id": "ext-key-1"})
        self.assertEqual(meta["KeyState"], "Enabled")
        key_id = meta["KeyId"]

        context = {"purpose": "e2e", "tenant": "a"}
        encrypted = self.kms.encrypt(KeyId=key_id, Plaintext=b"through the proxy",
                                     EncryptionContext=context)
        sent = self.proxy.seen("/keys/ext-key-1/encrypt")[-1]["metadata"]
        self.assertEqual(sent["kmsOperation"], "Encrypt")
        self.assertEqual(sent["kmsKeyArn"], meta["Arn"])
        self.assertEqual(sent["awsPrincipalArn"], "arn:aws:iam::000000000000:root")
        self.assertEqual(sent["kmsRequestId"],
                         encrypted["ResponseMetadata"]["RequestId"])
        decrypted = self.kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"],
                                     EncryptionContext=context)
        self.assertEqual(decrypted["Plaintext"], b"through the proxy")
        self.assertEqual(decrypted["KeyId"], meta["Arn"])
        self.assertEqual(self.proxy.seen("/keys/ext-key-1/decrypt")[-1]["metadata"]
                         ["kmsOperation"], "Decrypt")
        # The external key binds the context too: the proxy refuses, KMS says so as AWS does.
        message = self.assert_error("KMSInvalidStateException", self.kms.decrypt,
                                    CiphertextBlob=encrypted["CiphertextBlob"],
                                    EncryptionContext={"purpose": "e2e", "tenant": "b"})
        self.assertIn("external key store proxy", message)

        data_key = self.kms.generate_data_key(KeyId=key_id, KeySpec="AES_256",
                                              EncryptionContext=context)
        again = self.kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"],
                                 EncryptionContext=context, KeyId=key_id)
        self.assertEqual(again["Plaintext"], data_key["Plaintext"])

        event = self.server.event(encrypted["ResponseMetadata"]["RequestId"])
        self.assertEqual(event["additionalEventData"],
                         {"customKeyStoreId": store_id, "xksKeyId": "ext-key-1"})

        # Disconnected: the key is Unavailable and cannot be used; connected again, it can.
        self.kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
        self.assertEqual(self.kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"],
                         "Unavailable")
        message = self.assert_error("KMSInvalidStateException", self.kms.decrypt,
                                    CiphertextBlob=encrypted["CiphertextBlob"],
                                    EncryptionContext=context)
        self.assertIn("not connected", message)
        self.assert_error("CustomKeyStoreInvalidStateException",
                          self.kms.disconnect_custom_key_store, CustomKeyStoreId=store_id)
        self.kms.connect_custom_key_store(CustomKeyStoreId=store_id)
        self.assertEqual(self.kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"],
                                          EncryptionContext=context)["Plaintext"],
                         b"through the proxy")

        # A restart keeps the key store, its state and credential, and the key.
        self.server.restart()
        type(self).kms = self.kms = self.server.client("kms")
        self.assertEqual(self.describe(store_id)["ConnectionState"], "CONNECTED")
        self.assertEqual(self.kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"],
                                          EncryptionContext=context)["Plaintext"],
                         b"through the proxy")

        # The external key disabled in its key manager: KMS cannot use it.
        self.proxy.keys["ext-key-1"]["status"] = "DISABLED"
        try:
            message = self.assert_error("KMSInvalidStateException", self.kms.encrypt,
                                        KeyId=key_id, Plaintext=b"x")
            self.assertIn("not enabled in the external key manager", message)
        finally:
            self.proxy.keys["ext-key-1"]["status"] = "ENABLED"

        # Keys of the store: no rotation; the store cannot go while it holds them.
        self.assert_error("UnsupportedOperationException", self.kms.enable_key_rotation,
                          KeyId=key_id)
        self.assert_error("UnsupportedOperationException", self.kms.rotate_key_on_demand,
                          KeyId=key_id)
        self.assert_error("CustomKeyStoreInvalidStateException",
                          self.kms.delete_custom_key_store, CustomKeyStoreId=store_id)
        self.kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
        self.assert_error("CustomKeyStoreHasCMKsException", self.kms.delete_custom_key_store,
                          CustomKeyStoreId=store_id)

    def test_key_creation_errors_name_what_the_proxy_said(self):
        store_id = self.create_store("e2e-errors", path="/keystores/e2e/x/kms/xks/v1")
        store_id = store_id["CustomKeyStoreId"]
        self.kms.connect_custom_key_store(CustomKeyStoreId=store_id)
        create = self.kms.create_key
        common = {"Origin": "EXTERNAL_KEY_STORE", "CustomKeyStoreId": store_id}
        self.assert_error("XksKeyNotFoundException", create, XksKeyId="no-such-key", **common)
        self.assert_error("XksKeyInvalidConfigurationException", create,
                          XksKeyId="ext-disabled", **common)
        self.assert_error("XksKeyInvalidConfigurationException", create,
                          XksKeyId="ext-sign-only", **common)
        create(XksKeyId="ext-key-2", **common)
        self.assert_error("XksKeyAlreadyInUseException", create, XksKeyId="ext-key-2", **common)
        self.assert_error("UnsupportedOperationException", create, XksKeyId="ext-key-3",
                          KeySpec="RSA_2048", **common)
        self.assert_error("ValidationException", create, XksKeyId="ext-key-3")
        self.assert_error("CustomKeyStoreNotFoundException", create, XksKeyId="ext-key-3",
                          Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId="cks-00000000000000000")

    def test_key_store_settings_are_validated_and_checked_with_the_proxy(self):
        self.assert_error("XksProxyIncorrectAuthenticationCredentialException",
                          self.create_store, name="e2e-bad-secret", secret=WRONG_SECRET,
                          path="/keystores/e2e/bad/kms/xks/v1")
        self.assert_error("XksProxyInvalidConfigurationException", self.create_store,
                          name="e2e-bad-path", path="/elsewhere/kms/xks/v1")
        self.assert_error("ValidationException", self.create_store, name="e2e-bad-pattern",
                          path="/kms/xks/v1/extra")
        self.assert_error("CloudHsmClusterNotFoundException",
                          self.kms.create_custom_key_store, CustomKeyStoreName="hsm",
                          CloudHsmClusterId="cluster-abcdefghijk",
                          TrustAnchorCertificate="-----BEGIN CERTIFICATE-----",
                          KeyStorePassword="kmsuser-password")
        store_id = self.create_store("e2e-settings",
                                     path="/keystores/e2e/s/kms/xks/v1")["CustomKeyStoreId"]
        self.assert_error("CustomKeyStoreNameInUseException", self.create_store,
                          name="e2e-settings", path="/keystores/e2e/t/kms/xks/v1")
        self.assert_error("XksProxyUriInUseException", self.create_store,
                          name="e2e-same-uri", path="/keystores/e2e/s/kms/xks/v1")
        self.assert_error("CustomKeyStoreNotFoundException",
                          self.kms.connect_custom_key_store,
                          CustomKeyStoreId="cks-00000000000000000")

        # The credential is checked with the proxy before it replaces the stored one.
        self.assert_error("XksProxyIncorrectAuthenticationCredentialException",
                          self.kms.update_custom_key_store, CustomKeyStoreId=store_id,
                          XksProxyAuthenticationCredential={"AccessKeyId": ACCESS_KEY_ID,
                                                            "RawSecretAccessKey": WRONG_SECRET})
        self.kms.update_custom_key_store(CustomKeyStoreId=store_id,
                                         NewCustomKeyStoreName="e2e-settings-renamed")
        self.assertEqual(self.describe(store_id)["CustomKeyStoreName"], "e2e-settings-renamed")

        # A failed connection is FAILED with a reason, and must be disconnected first.
        self.proxy.fail_health_with = "AuthenticationFailedException"
        try:
            self.kms.connect_custom_key_store(CustomKeyStoreId=store_id)
        finally:
            self.proxy.fail_health_with = None
        described = self.describe(store_id)
        self.assertEqual(described["ConnectionState"], "FAILED")
        self.assertEqual(described["ConnectionErrorCode"], "XKS_PROXY_ACCESS_DENIED")
        self.assert_error("CustomKeyStoreInvalidStateException",
                          self.kms.connect_custom_key_store, CustomKeyStoreId=store_id)
        self.kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
        self.kms.connect_custom_key_store(CustomKeyStoreId=store_id)
        self.assertEqual(self.describe(store_id)["ConnectionState"], "CONNECTED")
        self.assert_error("CustomKeyStoreInvalidStateException",
                          self.kms.update_custom_key_store, CustomKeyStoreId=store_id,
                          XksProxyUriEndpoint="https://elsewhere.keytrail.test")
        self.kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
        message = self.assert_error("XksProxyUriUnreachableException",
                                    self.kms.update_custom_key_store, CustomKeyStoreId=store_id,
                                    XksProxyUriEndpoint="https://unreachable.keytrail.test")
        self.assertIn("cannot communicate", message)
        # The proxy's certificate is checked: the same proxy under another name is refused.
        message = self.assert_error("XksProxyUriUnreachableException",
                                    self.kms.update_custom_key_store, CustomKeyStoreId=store_id,
                                    XksProxyUriEndpoint="https://tls-wrong-name.keytrail.test")
        self.assertIn("TLS connection", message)
        self.assertEqual(self.describe(store_id)["XksProxyConfiguration"]["UriEndpoint"],
                         f"https://{HOST}", "a refused update changes nothing")

        # The aws CLI sees the same; deleting the empty, disconnected store works.
        listed = self.server.cli_ok("kms", "describe-custom-key-stores",
                                    "--custom-key-store-name", "e2e-settings-renamed")
        self.assertEqual(listed["CustomKeyStores"][0]["CustomKeyStoreId"], store_id)
        self.server.cli_ok("kms", "delete-custom-key-store", "--custom-key-store-id", store_id)
        self.assert_error("CustomKeyStoreNotFoundException",
                          self.kms.describe_custom_key_stores, CustomKeyStoreId=store_id)

        # The event of the creation names the store but never the proxy's secret.
        events = [e for e in self.server.events()
                  if e["eventName"] == "CreateCustomKeyStore" and "errorCode" not in e]
        self.assertTrue(events)
        for event in events:
            self.assertNotIn(SECRET, json.dumps(event))
            self.assertNotIn("rawSecretAccessKey", json.dumps(event))
            self.assertRegex(event["responseElements"]["customKeyStoreId"], r"^cks-")
            self.assertEqual(event["requestParameters"]["xksProxyAuthenticationCredential"],
                             {"accessKeyId": ACCESS_KEY_ID})


if __name__ == "__main__":
    unittest.main()
