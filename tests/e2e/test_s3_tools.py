"""Other S3 clients than the AWS SDKs: s3cmd and rclone round-trip bytes exactly."""

import hashlib
import os
import subprocess
import tempfile
import unittest

from keytrail_server import KeytrailServer


class S3Tools(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = KeytrailServer()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data = os.path.join(cls.tmp.name, "data.bin")
        with open(cls.data, "wb") as f:
            f.write(os.urandom(3 * 1024 * 1024 + 17))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        assert cls.server.stop() == 0

    def same(self, path):
        with open(self.data, "rb") as a, open(path, "rb") as b:
            return a.read() == b.read()

    def test_s3cmd(self):
        host = f"127.0.0.1:{self.server.port}"
        config = os.path.join(self.tmp.name, "s3cmd.cfg")
        with open(config, "w") as f:
            f.write("[default]\naccess_key = test\nsecret_key = test\n"
                    f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\n"
                    "signature_v2 = False\nbucket_location = us-east-1\n")
        out = os.path.join(self.tmp.name, "s3cmd.out")
        for args in (["mb", "s3://s3cmd-bucket"],
                     ["put", self.data, "s3://s3cmd-bucket/dir/data.bin"],
                     ["ls", "s3://s3cmd-bucket/dir/"],
                     ["get", "--force", "s3://s3cmd-bucket/dir/data.bin", out]):
            done = subprocess.run(["s3cmd", "-c", config, *args], capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, f"s3cmd {args}: {done.stderr}")
        self.assertTrue(self.same(out))

    def test_rclone(self):
        # The AWS Go SDK inside rclone reads AWS_* variables (a CA bundle, a profile): keep none.
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env = dict(clean,
                   RCLONE_CONFIG_KT_TYPE="s3", RCLONE_CONFIG_KT_PROVIDER="Other",
                   RCLONE_CONFIG_KT_ACCESS_KEY_ID="test",
                   RCLONE_CONFIG_KT_SECRET_ACCESS_KEY="test",
                   RCLONE_CONFIG_KT_ENDPOINT=self.server.url,
                   RCLONE_CONFIG_KT_REGION="us-east-1",
                   RCLONE_CONFIG_KT_FORCE_PATH_STYLE="true")
        out = os.path.join(self.tmp.name, "rclone.out")
        for args in (["mkdir", "kt:rclone-bucket"],
                     ["copyto", self.data, "kt:rclone-bucket/data.bin"],
                     ["md5sum", "kt:rclone-bucket/data.bin"],
                     ["copyto", "kt:rclone-bucket/data.bin", out]):
            done = subprocess.run(["rclone", "--config", os.devnull, *args], env=env,
                                  capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, f"rclone {args}: {done.stderr}")
            if args[0] == "md5sum":
                # rclone reads the MD5 from the ETag: it must be the body's.
                with open(self.data, "rb") as f:
                    expected = hashlib.md5(f.read()).hexdigest()
                self.assertEqual(done.stdout.split()[0], expected)
        self.assertTrue(self.same(out))


if __name__ == "__main__":
    unittest.main()
