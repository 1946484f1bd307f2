#!/usr/bin/python3
"""Small botocore helpers for tests against the S3 server started by tools/rgw/start.

Run with /usr/bin/python3 (Debian's python3-botocore). As a module:

    import s3util
    s3 = s3util.S3("/tmp/rgw")          # or S3() to use $RGW_DIR
    s3.client.put_object(Bucket=s3.bucket, Key="k", Body=b"x")
    body, content_type = s3.get_object("k")

As a command, for shell tests:

    s3util.py DIR create-bucket [NAME]
    s3util.py DIR put-cors JSON          # a CORSConfiguration, or just its list of rules
    s3util.py DIR get KEY                # body to stdout, "Content-Type: ..." to stderr
    s3util.py DIR head KEY               # JSON to stdout; exit 1 if there is no such key
    s3util.py DIR delete KEY
"""

import json
import os
import shlex
import sys

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError


def load_env(directory=None):
    """The RGW_* settings from DIR/env (DIR defaults to $RGW_DIR), as a dict."""
    directory = directory or os.environ["RGW_DIR"]
    env = {}
    with open(os.path.join(directory, "env"), encoding="utf-8") as f:
        for line in f:
            for word in shlex.split(line, comments=True):
                name, _, value = word.partition("=")
                env[name] = value
    return env


class S3:
    def __init__(self, directory=None):
        self.env = load_env(directory)
        self.bucket = self.env["RGW_BUCKET"]
        # Path-style SigV4, as the project's presigner produces. Everything is passed
        # explicitly so that AWS_* variables or ~/.aws files cannot redirect the tests.
        self.client = botocore.session.Session().create_client(
            "s3",
            endpoint_url=self.env["RGW_ENDPOINT"],
            region_name=self.env["RGW_REGION"],
            aws_access_key_id=self.env["RGW_ACCESS_KEY"],
            aws_secret_access_key=self.env["RGW_SECRET_KEY"],
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          connect_timeout=5, read_timeout=30),
        )

    def create_bucket(self, name=None):
        self.client.create_bucket(Bucket=name or self.bucket)

    def put_bucket_cors(self, cors, bucket=None):
        """cors: a CORSConfiguration dict, or its list of CORSRules, or either as JSON."""
        if isinstance(cors, str):
            cors = json.loads(cors)
        if isinstance(cors, list):
            cors = {"CORSRules": cors}
        self.client.put_bucket_cors(Bucket=bucket or self.bucket, CORSConfiguration=cors)

    def allow_public_get(self, prefix, bucket=None):
        """Let anyone GET objects under prefix/, as the README's bucket policy does."""
        bucket = bucket or self.bucket
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::%s/%s/*" % (bucket, prefix)]}]}
        self.client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))

    def get_object(self, key, bucket=None):
        """(body bytes, Content-Type)."""
        r = self.client.get_object(Bucket=bucket or self.bucket, Key=key)
        return r["Body"].read(), r.get("ContentType")

    def head(self, key, bucket=None):
        """The object's metadata, or None if there is no such key."""
        try:
            r = self.client.head_object(Bucket=bucket or self.bucket, Key=key)
        except ClientError as e:
            if e.response["Error"]["Code"] in ("404", "NoSuchKey"):
                return None
            raise
        return {"ContentLength": r["ContentLength"], "ContentType": r.get("ContentType"),
                "ETag": r["ETag"], "Metadata": r.get("Metadata", {})}

    def delete(self, key, bucket=None):
        self.client.delete_object(Bucket=bucket or self.bucket, Key=key)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    s3, command, args = S3(argv[1]), argv[2], argv[3:]
    try:
        if command == "create-bucket" and len(args) <= 1:
            s3.create_bucket(*args)
        elif command == "put-cors" and len(args) == 1:
            s3.put_bucket_cors(args[0])
        elif command == "get" and len(args) == 1:
            body, content_type = s3.get_object(args[0])
            print("Content-Type:", content_type, file=sys.stderr)
            sys.stdout.buffer.write(body)
        elif command == "head" and len(args) == 1:
            meta = s3.head(args[0])
            if meta is None:
                sys.exit("s3util: no such key: %s" % args[0])
            print(json.dumps(meta, indent=2))
        elif command == "delete" and len(args) == 1:
            s3.delete(args[0])
        else:
            sys.exit(__doc__)
    except ClientError as e:
        err = e.response["Error"]
        sys.exit("s3util: %s: %s %s" % (command, err.get("Code"), err.get("Message") or ""))


if __name__ == "__main__":
    main(sys.argv)
