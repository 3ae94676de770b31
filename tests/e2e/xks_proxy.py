"""An external key store proxy for the end-to-end tests, written from AWS's XKS Proxy API
specification (v1) and independent of keytrail's code: AES-256-GCM keys held in memory, every
request's SigV4 signature (service `kms-xks-proxy`) verified with hashlib/hmac, HTTPS with a
certificate from a throwaway CA. It records each authenticated request for the tests to read.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "xks.keytrail.test"
ACCESS_KEY_ID = "KEYTRAILXKSTESTACCESSKEY"
SECRET = base64.b64encode(b"keytrail-xks-proxy-test-secret!!").decode()


def _write_tls_files(directory):
    """A CA and a server certificate for HOST signed by it; returns (ca_pem, cert, key paths)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keytrail e2e XKS CA")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path = os.path.join(directory, "xks-ca.pem")
    cert_path = os.path.join(directory, "xks-cert.pem")
    key_path = os.path.join(directory, "xks-key.pem")
    with open(ca_path, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return ca_path, cert_path, key_path


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class XksProxy:
    """Serves `[/keystores/<names>]/kms/xks/v1` on 127.0.0.1 until stop()."""

    PATH = re.compile(r"^(/keystores(/[A-Za-z0-9_-]+)+)?/kms/xks/v1(?P<operation>/.*)$")

    def __init__(self, directory):
        self.credentials = {ACCESS_KEY_ID: SECRET}
        self.keys = {}
        self.requests = []
        self.fail_health_with = None
        self.lock = threading.Lock()
        self.ca_path, cert_path, key_path = _write_tls_files(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._answer(405, {"errorName": "ValidationException"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, answer = proxy.handle(self.command, self.path, self.headers, body)
                self._answer(status, answer)

            def _answer(self, status, answer):
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def add_key(self, key_id, spec="AES_256", usage=("ENCRYPT", "DECRYPT"), status="ENABLED"):
        self.keys[key_id] = {"key": AESGCM.generate_key(256), "spec": spec,
                             "usage": list(usage), "status": status}

    def seen(self, operation_suffix):
        """The authenticated requests whose path ends with `operation_suffix`."""
        with self.lock:
            return [r for r in self.requests if r["path"].endswith(operation_suffix)]

    # -- the API -------------------------------------------------------------------------

    def authenticate(self, method, path, headers, body):
        auth = headers.get("Authorization", "")
        try:
            algorithm, rest = auth.split(" ", 1)
            fields = dict(part.strip().split("=", 1) for part in rest.split(","))
            access_key_id, date, region, service, terminal = fields["Credential"].split("/")
            signed = fields["SignedHeaders"].split(";")
            signature = fields["Signature"]
        except ValueError:
            return False
        secret = self.credentials.get(access_key_id)
        amz_date = headers.get("X-Amz-Date", "")
        if (algorithm != "AWS4-HMAC-SHA256" or secret is None or service != "kms-xks-proxy"
                or terminal != "aws4_request" or not amz_date.startswith(date)
                or "host" not in signed or "x-amz-date" not in signed):
            return False
        sent = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
        if abs((datetime.datetime.now(datetime.timezone.utc) - sent).total_seconds()) > 300:
            return False
        canonical_headers = "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n"
                                    for name in signed)
        canonical = "\n".join([method, path, "", canonical_headers, ";".join(signed),
                               hashlib.sha256(body).hexdigest()])
        scope = f"{date}/{region}/{service}/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service),
                    "aws4_request")
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    def handle(self, method, path, headers, body):
        if not self.authenticate(method, path, headers, body):
            return 401, {"errorName": "AuthenticationFailedException"}
        served = self.PATH.match(path)
        if not served:
            return 404, {"errorName": "InvalidUriPathException"}
        try:
            request = json.loads(body)
        except ValueError:
            return 400, {"errorName": "ValidationException"}
        with self.lock:
            self.requests.append({"path": path, "metadata": request.get("requestMetadata", {})})
        operation = served.group("operation")
        if operation == "/health":
            if self.fail_health_with:
                return 500, {"errorName": self.fail_health_with}
            return 200, {"xksProxyFleetSize": 1, "xksProxyVendor": "keytrail e2e",
                         "xksProxyModel": "xks_proxy.py 1", "ekmVendor": "keytrail e2e",
                         "ekmFleetDetails": [{"id": "ekm-1", "model": "in-memory AES-GCM",
                                              "healthStatus": "ACTIVE"}]}
        parts = operation.split("/")
        if len(parts) != 4 or parts[1] != "keys":
            return 404, {"errorName": "InvalidUriPathException"}
        key = self.keys.get(parts[2])
        if key is None:
            return 404, {"errorName": "KeyNotFoundException"}
        if parts[3] == "metadata":
            return 200, {"keySpec": key["spec"], "keyUsage": key["usage"],
                         "keyStatus": key["status"]}
        if parts[3] not in ("encrypt", "decrypt"):
            return 404, {"errorName": "InvalidUriPathException"}
        if key["status"] != "ENABLED":
            return 400, {"errorName": "InvalidStateException"}
        if request.get("encryptionAlgorithm") != "AES_GCM":
            return 400, {"errorName": "ValidationException"}
        aad = base64.b64decode(request.get("additionalAuthenticatedData", ""))
        if parts[3] == "encrypt":
            metadata = b"v1"
            iv = os.urandom(12)
            sealed = AESGCM(key["key"]).encrypt(iv, base64.b64decode(request["plaintext"]),
                                                self._aad(aad, metadata))
            ciphertext, tag = sealed[:-16], sealed[-16:]
            answer = {"ciphertext": base64.b64encode(ciphertext).decode(),
                      "ciphertextMetadata": base64.b64encode(metadata).decode(),
                      "initializationVector": base64.b64encode(iv).decode(),
                      "authenticationTag": base64.b64encode(tag).decode()}
            if request.get("ciphertextDataIntegrityValueAlgorithm") == "SHA_256":
                digest = hashlib.sha256(aad + metadata + iv + ciphertext + tag).digest()
                answer["ciphertextDataIntegrityValue"] = base64.b64encode(digest).decode()
            return 200, answer
        metadata = base64.b64decode(request.get("ciphertextMetadata", ""))
        try:
            plaintext = AESGCM(key["key"]).decrypt(
                base64.b64decode(request["initializationVector"]),
                base64.b64decode(request["ciphertext"])
                + base64.b64decode(request["authenticationTag"]),
                self._aad(aad, metadata))
        except (InvalidTag, KeyError, ValueError):
            return 400, {"errorName": "InvalidCiphertextException"}
        return 200, {"plaintext": base64.b64encode(plaintext).decode()}

    @staticmethod
    def _aad(aad, metadata):
        """The spec's framing: 2-byte AAD length, AAD, 1-byte metadata length, metadata."""
        return len(aad).to_bytes(2, "big") + aad + len(metadata).to_bytes(1, "big") + metadata

    def keytrail_config(self):
        """The keytrail config section that trusts this proxy's CA and reaches its port."""
        return (f'\n[kms]\nxks_trusted_ca_file = "{self.ca_path}"\nxks_timeout_ms = 10000\n'
                f'[kms.xks_proxy_addresses]\n"{HOST}" = "127.0.0.1:{self.port}"\n'
                # A name that resolves to a closed port: a proxy that cannot be reached.
                f'"unreachable.keytrail.test" = "127.0.0.1:1"\n'
                # This proxy under a name its certificate is not for: TLS must fail.
                f'"tls-wrong-name.keytrail.test" = "127.0.0.1:{self.port}"\n')
