#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/{presign,request}).

The files are committed; run this only to change the seeds:
    python3 tests/fuzz/gen_corpus.py
fuzz_presign reads fields separated by 0xff bytes (see fuzz_presign.c);
fuzz_request passes its whole input to each parser.
"""
import base64
import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = b"\xff"

# fuzz_presign's fields in order, then name/value pairs
NAMES = ["endpoint", "bucket", "region", "akid", "secret", "token", "service",
         "options", "method", "key", "expires", "now", "body"]
BASE = [b"", b"uploads", b"us-east-1", b"AKIAIOSFODNN7EXAMPLE",
        b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", b"", b"", b"\x00",
        b"PUT", b"0f3a/photo.jpg", b"300", b"1705320000", b""]

# the options byte (field 7)
PATH_STYLE, NEXT_DAY, CONTENT_SHA256, PAYLOAD, ROTATE = 1, 2, 4, 8, 16

LIFECYCLE = (b'<LifecycleConfiguration><Rule><ID>expire-uploads</ID><Filter><Prefix></Prefix></Filter>'
             b'<Status>Enabled</Status><Expiration><Days>30</Days></Expiration></Rule></LifecycleConfiguration>')


def presign(pairs=(), **over):
    fields = list(BASE)
    for k, v in over.items():
        fields[NAMES.index(k)] = v if isinstance(v, bytes) else v.encode()
    for n, v in pairs:
        fields += [n.encode() if isinstance(n, str) else n, v.encode() if isinstance(v, str) else v]
    return SEP.join(fields)


PRESIGN = {
    "put-virtual-hosted": presign([("Content-Type", "image/jpeg"), ("Content-Length", "23456")]),
    "put-path-style-token": presign([("content-type", "application/octet-stream")],
                                    endpoint="http://127.0.0.1:8080", options=b"\x01",
                                    bucket="My_Bucket", token="FQoGZXIvYXdzE+/=abc" * 8),
    "get-disposition": presign([("?response-content-disposition", 'attachment; filename="a b.txt"'),
                                ("?response-content-type", "text/plain; charset=utf-8")],
                               method="GET", expires="604800"),
    "key-nfc": presign(key="dir/caf\u00e9 \u00fcber.txt".encode()),
    "key-nfd": presign(key="dir/cafe\u0301 u\u0308ber.txt".encode()),
    "key-emoji-bidi": presign(key="\U0001F600/evil\u202egnp.exe\u2066x\u2069".encode()),
    "key-hostile": presign(key=b"../../etc/passwd?x=1#frag&a=%2F+ ~;,'\"<>"),
    "ipv6-endpoint": presign(endpoint="https://[2001:db8::1]:9000/", options=b"\x03",
                             bucket="b\u00fccket with space", region="eu-central-2"),
    "invalid-utf8-key": presign(key=b"\xc0\xafa\xed\xa0\x80\xf4\x90\x80\x80\xf0\x80\x80\xaf", expires="0"),
    "overlong-utf8-key": presign(key=b"a\xe0\x9f\xbfb", options=b"\x02"),
    "far-future": presign(now="253402300799", expires="604800", options=b"\x02"),
    "header-trim": presign([("X-Amz-Meta-Note", "  a   b  \x80"), ("If-None-Match", "*"),
                            ("x-amz-acl", "private")]),
    "header-dup-host": presign([("Host", "evil.example"), ("x-amz-meta-a", "1"), ("X-AMZ-META-A", "2")]),
    "auth-param-clash": presign([("?X-Amz-Signature", "0"), ("?x-amz-date", "1")]),
    "query-order": presign([("?X-Amz", "ok"), ("?~", "\x00\xff"), ("?a", "2"), ("?a", "10"), ("?A", ""),
                            ("?%", "/"), ("?", "empty name")], method="GET"),
    "binary-now-service": presign(now=b"\x40\x1b\xa5\x65", service="s3-object-lambda",
                                  endpoint="https://minio.internal:443", region="x" * 64),
    # every field at its limit: the signer's fixed buffers and 3x-encoded keys
    "limits-max": presign([("X-Amz-Meta-" + "m" * 48, "v" * 200), ("?" + "q" * 60, "\u00ff" * 100)],
                          endpoint="https://" + "h" * 250 + ":65535", options=b"\x01",
                          bucket="\u00e9" * 127, region="r" * 64, akid="A" * 128, secret="s" * 128,
                          token="+" * 4096, service="v" * 32, key="\u00e9/" * 341 + "x"),
    # header signing: bucket-level requests and STS
    "bucket-lifecycle-put": presign([("?lifecycle", ""),
                                     ("Content-MD5", base64.b64encode(hashlib.md5(LIFECYCLE).digest())),
                                     ("Content-Type", "application/xml")],
                                    key="", options=bytes([CONTENT_SHA256 | PAYLOAD]), body=LIFECYCLE),
    "bucket-policy-path-style-empty-body": presign([("?policy", "")], key="", method="DELETE",
                                                   endpoint="http://10.0.0.7:9000", options=bytes([
                                                       PATH_STYLE | CONTENT_SHA256 | PAYLOAD])),
    "sts-assume-role": presign([("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
                               service="sts", bucket="", method="POST", key="",
                               token="FwoGZXIvYXdzEBYaDHhBTEXAMPLE/+=" * 4, options=bytes([PAYLOAD]),
                               body="Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A"
                                    "123456789012%3Arole%2Fuploader&RoleSessionName=prosody&DurationSeconds=3600"),
    "sts-get-caller-identity": presign([("?Action", "GetCallerIdentity"), ("?Version", "2011-06-15")],
                                       service="sts", bucket="", method="GET", key="",
                                       endpoint="https://sts.amazonaws.com:443/"),
    # the signer adds these when header-signing: refused there, signed when presigning
    "header-date-clash": presign([("X-Amz-Date", "20240115T120000Z"), ("x-amz-content-sha256", "x")],
                                 options=bytes([CONTENT_SHA256])),
    "rotate-next-day": presign([("Content-Type", "image/png")], options=bytes([ROTATE | NEXT_DAY | PAYLOAD]),
                               body=b"\x89PNG\r\n\x1a\n"),
    "rotate-token-path-style": presign(endpoint="http://[::1]:9000", options=bytes([ROTATE | PATH_STYLE]),
                                       token="IQoJb3JpZ2luX2VjEXAMPLE=", now="1705363199"),
    "ipv4-virtual-hosted": presign(endpoint="http://192.168.1.20:9000"),
    "empty": b"",
}

REQUEST = {
    "name-plain": b"photo.jpg",
    "name-nfc": "caf\u00e9.txt".encode(),
    "name-nfd": "cafe\u0301.txt".encode(),
    "name-emoji": "\U0001F600\U0001F389 party.png".encode(),
    "name-bidi-override": "invoice\u202efdp.exe".encode(),
    "name-traversal": b"../../etc/passwd",
    "name-dots-spaces": b" . .. \t",
    "name-bad-utf8": b"\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80",
    "name-c1-nel": b"line\xc2\x85break",
    "name-invisible": "\u00a0\ufeff.\u2000\u200b\u3000\u2060".encode(),
    "name-long": b"a" * 256,
    "size-plain": b"5368709120",
    "size-huge": b"99999999999999999999999999",
    "size-leading-zeros": b"000000000000000000000000123456789012345",
    "size-float": b"1e3",
    "ctype-params": b'multipart/form-data; boundary="a b;c"; charset=utf-8',
    "ctype-svg": b"image/svg+xml",
    "ctype-control": b"text/plain;\x01charset=x",
    "ctype-high": b"text/pl\xc3\xa4in",
}


def write(dirname, seeds):
    d = os.path.join(HERE, "corpus", dirname)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("presign", PRESIGN)
    write("request", REQUEST)
    sys.exit(0)
