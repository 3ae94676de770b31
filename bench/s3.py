"""S3 benchmark: keytrail beside moto_server and the machine's crypto ceilings, in one run.

- 64 MiB PUT and GET (MB/s) through presigned SigV4 URLs with curl, SSE-S3 and SSE-KMS;
- 4 KiB PUT (requests/s) with wrk replaying a signed request, SSE-S3 and SSE-KMS, and the KMS
  calls each 1,000 PUTs cost (GenerateDataKey events in keytrail's journal);
- ceilings: `openssl speed -evp aes-256-gcm` and `-evp sha256` on one core (16 KiB blocks).
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

import boto3
import botocore.config
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.dirname(__file__))
import bench  # noqa: E402  (the shared process and wrk helpers)

BIG = 64 * 1024 * 1024
HUGE = 1024 * 1024 * 1024
SMALL = 4096


def client(port):
    return boto3.session.Session().client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
        config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def openssl_mb_s(algorithm):
    out = subprocess.run(["openssl", "speed", "-elapsed", "-seconds", "2", "-bytes", "16384",
                          "-evp", algorithm], capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if l.lower().startswith(algorithm.lower())][-1]
    value = line.split()[-1].rstrip("k")
    return float(value) * 1000 / 1e6


def curl_mb_s(method, url, path, headers=()):
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{speed_upload} %{speed_download}"]
    for h in headers:
        args += ["-H", h]
    if method == "PUT":
        args += ["-T", path]
    args.append(url)
    code, up, down = subprocess.run(args, capture_output=True, text=True).stdout.split()
    if code != "200":
        raise RuntimeError(f"{method} {url[:60]} answered {code}")
    return (float(up) if method == "PUT" else float(down)) / 1e6


def presigned(s3, method, bucket, key, extra=None):
    params = {"Bucket": bucket, "Key": key, **(extra or {})}
    return s3.generate_presigned_url("put_object" if method == "PUT" else "get_object",
                                     Params=params, ExpiresIn=3600)


def signed_put_script(port, bucket, key, body, headers):
    url = f"http://127.0.0.1:{port}/{bucket}/{key}"
    all_headers = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest(), **headers}
    request = AWSRequest(method="PUT", url=url, data=body, headers=all_headers)
    S3SigV4Auth(Credentials("test", "test"), "s3", "us-east-1").add_auth(request)
    lines = ['wrk.method = "PUT"', f'wrk.path = "/{bucket}/{key}"',
             f'wrk.body = string.rep("x", {len(body)})']
    for name, value in request.headers.items():
        if name.lower() != "host":
            lines.append(f'wrk.headers["{name}"] = "{value}"')
    return "\n".join(lines) + "\n"


def main():
    data = tempfile.TemporaryDirectory()
    config = bench.keytrail_config(data.name)
    kt_port, moto_port = bench.free_port(), bench.free_port()
    env = bench.QUIET
    keytrail = bench.start_keytrail(config, os.path.join(data.name, "data"), kt_port)
    moto = bench.Proc("moto", [os.path.join(bench.VENV_BIN, "moto_server"), "-H", "127.0.0.1",
                               "-p", str(moto_port)],
                      ready_url=f"http://127.0.0.1:{moto_port}/moto-api/")
    big = os.path.join(data.name, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(BIG))
    results = {"ceiling": {"openssl aes-256-gcm MB/s (1 core)": openssl_mb_s("aes-256-gcm"),
                           "openssl sha256 MB/s (1 core)": openssl_mb_s("sha256")}}
    small = b"x" * SMALL
    try:
        for name, port in (("keytrail", kt_port), ("moto", moto_port)):
            s3 = client(port)
            kms = boto3.session.Session().client(
                "kms", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                aws_access_key_id="test", aws_secret_access_key="test")
            key = kms.create_key()["KeyMetadata"]["Arn"]
            s3.create_bucket(Bucket="bench")
            row = {}
            for mode, extra, headers in (
                    ("SSE-S3", {}, []),
                    ("SSE-KMS", {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key},
                     ["x-amz-server-side-encryption: aws:kms",
                      f"x-amz-server-side-encryption-aws-kms-key-id: {key}"])):
                put_url = presigned(s3, "PUT", "bench", f"big-{mode}", extra)
                row[f"64 MiB PUT {mode} MB/s"] = curl_mb_s("PUT", put_url, big, headers)
                get_url = presigned(s3, "GET", "bench", f"big-{mode}")
                row[f"64 MiB GET {mode} MB/s"] = curl_mb_s("GET", get_url, big)
                sse_headers = {} if mode == "SSE-S3" else {
                    "x-amz-server-side-encryption": "aws:kms",
                    "x-amz-server-side-encryption-aws-kms-key-id": key}
                variants = [(mode, sse_headers)]
                if mode == "SSE-KMS":
                    variants.append(("SSE-KMS+BucketKey", {
                        **sse_headers, "x-amz-server-side-encryption-bucket-key-enabled": "true"}))
                for label, headers_used in variants:
                    script = signed_put_script(port, "bench", f"small-{label}", small, headers_used)
                    run = bench.run_wrk(port, script)
                    row[f"4 KiB PUT {label} req/s"] = run["rps"]
                    row[f"4 KiB PUT {label} p99 ms"] = run["p99_ms"]
                    row[f"4 KiB PUT {label} non-2xx"] = run["non_2xx"]
            results[name] = row
        # Bounded memory: a 1 GiB SSE-KMS upload and download through keytrail, and its peak
        # resident memory over the whole run.
        huge = os.path.join(data.name, "huge.bin")
        with open(huge, "wb") as f, open(big, "rb") as chunk:
            block = chunk.read()
            for _ in range(HUGE // BIG):
                f.write(block)
        s3 = client(kt_port)
        kms = boto3.session.Session().client(
            "kms", endpoint_url=f"http://127.0.0.1:{kt_port}", region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test")
        key = kms.create_key()["KeyMetadata"]["Arn"]
        put_url = presigned(s3, "PUT", "bench", "huge",
                            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key})
        kt = results["keytrail"]
        kt["1 GiB PUT SSE-KMS MB/s"] = curl_mb_s(
            "PUT", put_url, huge, ["x-amz-server-side-encryption: aws:kms",
                                   f"x-amz-server-side-encryption-aws-kms-key-id: {key}"])
        kt["1 GiB GET SSE-KMS MB/s"] = curl_mb_s("GET", presigned(s3, "GET", "bench", "huge"), huge)
        os.remove(huge)
        kt["peak RSS MiB (whole run, 1 GiB objects included)"] = round(keytrail.peak_rss_mib(), 1)
    finally:
        keytrail.stop()
        moto.stop()
    events = subprocess.run([bench.keytrail_binary(), "--data-dir",
                             os.path.join(data.name, "data"), "events", "tail", "-n", "100000000"],
                            capture_output=True, text=True, env=env).stdout.splitlines()
    records = [json.loads(e) for e in events]
    gdk = sum(1 for e in records if e["eventName"] == "GenerateDataKey"
              and e["userIdentity"].get("invokedBy") == "s3.amazonaws.com")
    def put_count(label):
        return sum(1 for e in records if e["eventName"] == "PutObject" and "errorCode" not in e
                   and (e.get("requestParameters") or {}).get("key", "") in
                   (f"small-{label}", f"big-{label}"))

    def gdk_count(context_arn_suffix):
        return sum(1 for e in records if e["eventName"] == "GenerateDataKey"
                   and e["userIdentity"].get("invokedBy") == "s3.amazonaws.com"
                   and e["requestParameters"]["encryptionContext"]["aws:s3:arn"]
                   .endswith(context_arn_suffix))
    plain_kms = put_count("SSE-KMS")
    keyed = put_count("SSE-KMS+BucketKey")
    results["keytrail"]["KMS calls per 1,000 SSE-KMS PUTs"] = round(
        1000 * (gdk - gdk_count(":::bench")) / max(plain_kms, 1), 1)
    results["keytrail"]["KMS calls per 1,000 Bucket Key PUTs"] = round(
        1000 * gdk_count(":::bench") / max(keyed, 1), 2)
    kt, peer, ceiling = results["keytrail"], results["moto"], results["ceiling"]
    print(f"\nS3, {os.cpu_count()} cores; wrk -t{bench.THREADS} -c{bench.CONNECTIONS} "
          f"-d{bench.DURATION}s for 4 KiB PUTs")
    print(f"{'figure':<34} {'keytrail':>10} {'moto':>10} {'keytrail/moto':>14}")
    for figure in kt:
        if figure in peer:
            ratio = kt[figure] / peer[figure] if peer[figure] else float("nan")
            print(f"{figure:<34} {kt[figure]:>10.1f} {peer[figure]:>10.1f} {ratio:>14.1f}")
    print(f"{'KMS calls per 1,000 SSE-KMS PUTs':<34} {kt['KMS calls per 1,000 SSE-KMS PUTs']:>10.1f}")
    print(f"{'KMS calls per 1,000 Bucket Key PUTs':<34} {kt['KMS calls per 1,000 Bucket Key PUTs']:>10.2f}")
    for figure in ("1 GiB PUT SSE-KMS MB/s", "1 GiB GET SSE-KMS MB/s",
                   "peak RSS MiB (whole run, 1 GiB objects included)"):
        print(f"{figure:<34} {kt[figure]:>10.1f}")
    for figure, value in ceiling.items():
        print(f"{figure:<34} {value:>10.1f}")
    print(f"64 MiB SSE-S3 GET / AES-GCM ceiling = {kt['64 MiB GET SSE-S3 MB/s'] / ceiling['openssl aes-256-gcm MB/s (1 core)']:.2f}")
    os.makedirs(bench.OUT, exist_ok=True)
    with open(os.path.join(bench.OUT, "s3.json"), "w") as f:
        json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
