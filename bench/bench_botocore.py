#!/usr/bin/python3
"""Nanoseconds per presigned PUT URL with botocore, for the slot the other
benchmarks sign.

  /usr/bin/python3 bench/bench_botocore.py

botocore_ns         botocore.auth.S3SigV4QueryAuth on a fresh AWSRequest
                    (url, content-length and content-type headers) per URL
botocore_client_ns  a botocore S3 client's generate_presigned_url('put_object')
                    with a static endpoint and path-style addressing

Before timing, both are run once with the clock pinned to the benchmark's
fixed time and their URLs printed (botocore_url, botocore_client_url) so that
bench/run.py can compare them with the C core's. Timing uses the real clock,
perf_counter_ns, calibrated iteration counts and the best of several runs.
"""
import datetime
import gc
import sys
import time
import urllib.parse

try:
    import botocore
    import botocore.auth
    import botocore.awsrequest
    import botocore.config
    import botocore.credentials
    import botocore.session
except ImportError as e:
    sys.exit("bench_botocore: botocore not importable with %s: %s" % (sys.executable, e))

# The slot every benchmark signs; bench_sigv4.c and bench_slot.lua use the same.
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-2"
BUCKET = "example-upload-bucket"
ENDPOINT = "https://s3.eu-west-2.amazonaws.com"
KEY = "http_uploads/8d7e4b5a-2f1c-4e9b-a3d6-0c5f7e2b91a4/holiday photo.jpg"
CONTENT_LENGTH = 1843217
CONTENT_TYPE = "image/jpeg"
NOW = 1718454896  # 2024-06-15T12:34:56Z
EXPIRES = 300

REPS, TARGET_REP_NS, CALIBRATE_NS = 10, 40e6, 20e6

CREDENTIALS = botocore.credentials.Credentials(ACCESS_KEY_ID, SECRET_KEY)
URL = "%s/%s/%s" % (ENDPOINT, BUCKET, urllib.parse.quote(KEY, safe="/~"))
HEADERS = {"Content-Length": str(CONTENT_LENGTH), "Content-Type": CONTENT_TYPE}


def low_level():
    request = botocore.awsrequest.AWSRequest(method="PUT", url=URL, headers=HEADERS)
    botocore.auth.S3SigV4QueryAuth(CREDENTIALS, "s3", REGION, expires=EXPIRES).add_auth(request)
    return request.url


def make_client():
    session = botocore.session.get_session()
    return session.create_client(
        "s3",
        region_name=REGION,
        endpoint_url=ENDPOINT,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def client_presigner(client):
    params = {"Bucket": BUCKET, "Key": KEY, "ContentLength": CONTENT_LENGTH, "ContentType": CONTENT_TYPE}

    def presign():
        return client.generate_presigned_url("put_object", Params=params, ExpiresIn=EXPIRES)
    return presign


class _FixedDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return cls(*time.gmtime(NOW)[:6])


class _FixedClockModule:
    """Stands in for the datetime module inside botocore.auth."""
    datetime = _FixedDatetime

    def __getattr__(self, name):
        return getattr(datetime, name)


def at_fixed_time(fn):
    real = botocore.auth.datetime
    botocore.auth.datetime = _FixedClockModule()
    try:
        return fn()
    finally:
        botocore.auth.datetime = real


def measure(fn):
    """ns per call: calibrate, then the best of REPS runs."""
    def run(n):
        gc.collect()
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        return time.perf_counter_ns() - t0

    n = 1
    while True:
        t = run(n)
        if t >= CALIBRATE_NS:
            break
        n *= 16 if t < CALIBRATE_NS / 64 else 2
    n = int(n * TARGET_REP_NS / t) + 1
    return min(run(n) / n for _ in range(REPS))


def main():
    client = make_client()
    presign_client = client_presigner(client)
    url = at_fixed_time(low_level)
    client_url = at_fixed_time(presign_client)

    low_ns = measure(low_level)
    client_ns = measure(presign_client)

    print("botocore_version %s" % botocore.__version__)
    print("botocore_ns %.1f" % low_ns)
    print("botocore_client_ns %.1f" % client_ns)
    print("botocore_url %s" % url)
    print("botocore_client_url %s" % client_url)


if __name__ == "__main__":
    main()
