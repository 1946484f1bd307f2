#!/usr/bin/python3
"""Cross-check s3sign's presigned URLs and header-signed requests against botocore.

    /usr/bin/python3 tests/crosscheck/botocore_crosscheck.py --cases 2000 --header-cases 1000 --lua lua5.4 --cpath 'build/?.so'

A few fixed regression cases and N random ones (hostile file names, sizes up to
5 GiB, optional content types and session tokens, both addressing styles,
several endpoints, regions, prefixes, expiries and clocks) go to one Lua
process running sign_cases.lua, which presigns them with s3sign. The same
requests are signed independently by botocore.auth.S3SigV4QueryAuth with its
clock frozen to the case's time, and the URLs are compared: scheme, host and
path exactly, the query as a set of still-encoded parameters (botocore puts
X-Amz-Security-Token elsewhere), the signature exactly. Public GET URLs are
compared whole.

Then header signing (signer:authorize, sigv4_authorize): random S3 requests on
objects and on the bucket itself (subresources such as ?lifecycle, extra signed
headers such as Content-MD5 and x-amz-checksum-sha256, bodies or an unsigned
payload) and STS-style form POSTs (service sts, no bucket), driven through
authorize_cases.lua and signed again by botocore.auth.S3SigV4Auth or SigV4Auth;
the URL, X-Amz-Date, X-Amz-Content-SHA256, X-Amz-Security-Token and the
Authorization header must match.

Needs Debian's python3-botocore, hence /usr/bin/python3. Exit status 0 when
every case agrees, 1 otherwise. --seed replays a run.
"""

import argparse
import base64
import calendar
import hashlib
import contextlib
import dataclasses
import datetime
import random
import string
import subprocess
import sys
import time
import types
import unicodedata
import uuid
from pathlib import Path
from typing import Optional
from unittest import mock
from urllib.parse import quote, urlsplit

import botocore.auth
import botocore.awsrequest
import botocore.credentials

DRIVER = Path(__file__).with_name("sign_cases.lua")
AUTHORIZE_DRIVER = Path(__file__).with_name("authorize_cases.lua")

MAX_KEY = 1024                 # S3's limit on object key bytes
MAX_PREFIX = 255               # the module's limit on http_upload_s3_path bytes
MAX_SIZE = 5 << 30             # S3's single-PUT limit
MAX_EXPIRES = 604800           # 7 days
UUID_LEN = 36
DEFAULT_PORTS = {"http": 80, "https": 443}
FULL_REPORTS = 20              # failures shown in full; later ones get one line each


@dataclasses.dataclass(frozen=True)
class Case:
    """One presign call and the signer config it needs. Field order is the
    driver's line format (FIELDS in sign_cases.lua); None means absent."""
    access_key_id: str
    secret_key: str
    session_token: Optional[str]
    region: str
    endpoint: str                  # "" means AWS's s3.<region>.amazonaws.com
    bucket: str
    path_style: bool
    prefix: str
    put_expires: int
    get_expires: Optional[int]     # None: public, unsigned GET URLs
    filename: str
    size: int
    content_type: Optional[str]
    now: int
    id: str
    disposition: Optional[str]     # response-content-disposition of a presigned GET


def utc(*fields):
    return calendar.timegm(datetime.datetime(*fields).timetuple())


FIRST_NOW, LAST_NOW = utc(2000, 1, 1), utc(2099, 12, 31, 23, 59, 59)


# ---- random cases -----------------------------------------------------------

PLAIN = string.ascii_letters + string.digits + "-_."
PRINTABLE_NO_SLASH = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "/")
BASE64 = string.ascii_letters + string.digits + "+/"

# Atoms a file name is built from; multi-code-point atoms (ZWJ emoji, flags)
# stay whole. Precomposed letters here turn into combining sequences under NFD.
FILENAME_POOLS = {
    "plain": list(PLAIN),
    "punct": list(" %+?#&=;:@$!*'(),~\"<>[]\\^`{|}"),
    "control": [chr(c) for c in [*range(0x01, 0x20), 0x7F, 0x85]],
    "accented": list("éèêëàâäçñüöïÅåøæœßÉÇĳŉǅ") + ["e\u0301", "a\u0308\u0323"],
    "scripts": list("日本語ファイル名中文한국어ПриветΕλληνικάعربيעברית"),
    "emoji": ["😀", "🎉", "📎", "👍🏽", "👨\u200d👩\u200d👧", "🇬🇧", "🏳\ufe0f\u200d🌈", "🧑\u200d💻"],
    "bidi": ["\u200f", "\u202e", "\u200e", "\u202a", "\u202c", "\u2066", "\u2069"],
    "odd": ["\u00a0", "\u200b", "\ufeff", "\ufffd", "\uffff", "\U0010ffff", "\ue000", "\u3000"],
}
EXTENSIONS = ["", ".txt", ".jpg", ".tar.gz", ".", ". ", ".😀"]

REGIONS = ["us-east-1", "eu-west-2", "auto", "ap-southeast-1", "eu-central-1", "us-gov-west-1",
           "cn-north-1", "me-central-1", "garage"]
ENDPOINTS = ["", "https://s3.{region}.amazonaws.com", "http://127.0.0.1:9000",
             "https://minio.example.org:9443", "https://example.org:443", "http://localhost:80",
             "https://storage.example.net/", "http://[::1]:9000"]
PREFIXES = ["", "uploads", "upload/2024", "xmpp/share", "~user", "with space", "a+b=c&d",
            "ünïcödé/пре́фикс", "trailing-slash/", "/leading-slash", "p" * MAX_PREFIX]
PATH_STYLE_BUCKETS = ["Legacy_Bucket", "UPPER.case", "bucket with space", "bücket", "b+u=c&k?t#"]
CONTENT_TYPES = [None, "image/jpeg", "text/plain; charset=utf-8", "application/octet-stream",
                 "video/mp4", "  text/plain;   charset=utf-8  ", 'multipart/mixed; boundary="a b"',
                 "application/vnd.openxmlformats-officedocument.wordprocessingml.document"]
EDGE_SIZES = [0, 1, 2, 1023, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, MAX_SIZE - 1, MAX_SIZE]
EDGE_EXPIRES = [1, 2, 3600, MAX_EXPIRES - 1, MAX_EXPIRES]
EDGE_NOWS = [FIRST_NOW, LAST_NOW, utc(2000, 2, 29, 12), utc(2096, 2, 29, 23, 59, 59),
             utc(2024, 12, 31, 23, 59, 59), utc(2038, 1, 19, 3, 14, 8)]


def pick(rng, edges, draw):
    """An edge value a quarter of the time, else draw()."""
    return rng.choice(edges) if rng.random() < 0.25 else draw()


def key_budget(prefix):
    """Bytes left for the file name in prefix/uuid/filename (no "prefix/" when empty)."""
    used = len(prefix.encode()) + 1 if prefix else 0
    return MAX_KEY - used - UUID_LEN - 1


def truncate_utf8(text, limit):
    """The longest prefix of text that is at most limit UTF-8 bytes."""
    return text.encode()[:limit].decode(errors="ignore")


def random_text(rng, pools, atoms):
    return "".join(rng.choice(FILENAME_POOLS[rng.choice(pools)]) for _ in range(atoms))


def random_filename(rng, budget):
    if rng.random() < 0.2:
        pools = ["plain"]
    else:
        pools = rng.sample(sorted(FILENAME_POOLS), rng.randint(1, 3))
    if rng.random() < 0.1:      # long: fill the key up to its 1024-byte limit
        name = ""
        while len(name.encode()) < budget:
            name += random_text(rng, pools, 16)
    else:
        name = random_text(rng, pools, rng.randint(1, 40)) + rng.choice(EXTENSIONS)
    form = rng.choice(["NFC", "NFD", None])
    if form:
        name = unicodedata.normalize(form, name)
    return truncate_utf8(name, budget)


def random_prefix(rng):
    if rng.random() < 0.5:
        return rng.choice(PREFIXES)
    pools = rng.sample(sorted(FILENAME_POOLS), rng.randint(1, 2))
    parts = [random_text(rng, pools, rng.randint(1, 12)) for _ in range(rng.randint(1, 3))]
    return truncate_utf8("/".join(parts), MAX_PREFIX)


def dns_bucket(rng):
    """A bucket name of lowercase letters, digits, '-' and '.': usable in a host name."""
    alphabet = string.ascii_lowercase + string.digits
    labels = ["".join(rng.choice(alphabet + "-") for _ in range(rng.randint(1, 20)))
              for _ in range(rng.randint(0, 2))]
    return ".".join([rng.choice(alphabet)] + labels + [rng.choice(alphabet)])


def is_ip_endpoint(endpoint):
    host = urlsplit(endpoint).hostname or ""
    return ":" in host or host.replace(".", "").isdigit()


def random_case(rng):
    region = rng.choice(REGIONS)
    endpoint = rng.choice(ENDPOINTS).format(region=region)
    path_style = is_ip_endpoint(endpoint) or rng.random() < 0.5   # IP addresses take no bucket label
    if path_style and rng.random() < 0.3:
        bucket = rng.choice(PATH_STYLE_BUCKETS)
    else:
        bucket = dns_bucket(rng)
    if rng.random() < 0.8:
        secret = "".join(rng.choice(BASE64) for _ in range(40))
    else:   # any printable ASCII
        secret = "".join(rng.choice(PRINTABLE_NO_SLASH + "/") for _ in range(rng.randint(1, 128)))
    token = None
    if rng.random() < 0.5:   # base64 like STS tokens: '+', '/' and '=' padding
        token = base64.b64encode(rng.randbytes(rng.randint(1, 900))).decode()
    prefix = random_prefix(rng)
    get_expires = None
    disposition = None
    if rng.random() < 0.5:
        get_expires = pick(rng, EDGE_EXPIRES, lambda: rng.randint(1, MAX_EXPIRES))
        if rng.random() < 0.5:
            disposition = f'attachment; filename="{random_filename(rng, 200)}"'
    filename = random_filename(rng, key_budget(prefix))
    return Case(
        access_key_id=rng.choice(["AKIA", "ASIA"]) + "".join(
            rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
        secret_key=secret,
        session_token=token,
        region=region,
        endpoint=endpoint,
        bucket=bucket,
        path_style=path_style,
        prefix=prefix,
        put_expires=pick(rng, EDGE_EXPIRES, lambda: rng.randint(1, MAX_EXPIRES)),
        get_expires=get_expires,
        filename=filename,
        size=pick(rng, EDGE_SIZES, lambda: rng.randint(0, rng.choice([1 << 20, MAX_SIZE]))),
        content_type=rng.choice(CONTENT_TYPES),
        now=pick(rng, EDGE_NOWS, lambda: rng.randint(FIRST_NOW, LAST_NOW)),
        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        disposition=disposition,
    )


# ---- fixed regression cases ---------------------------------------------------

def regression_cases():
    """(label, case) pairs checked before the random ones, in every run."""
    base = Case(
        access_key_id="AKIAIOSFODNN7EXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        session_token=None, region="eu-west-2", endpoint="", bucket="uploads", path_style=False,
        prefix="xmpp", put_expires=300, get_expires=None, filename="report.pdf", size=12345,
        content_type="application/pdf", now=utc(2024, 1, 15, 12), id="0f8fad5b-d9cb-469f-a165-70867728950e",
        disposition=None)
    change = dataclasses.replace
    dessert = "Crème brûlée — Ångström résumé.pdf"
    budget = key_budget(base.prefix)
    return [
        ("every printable ASCII byte but '/'", change(base, filename=PRINTABLE_NO_SLASH)),
        ("NFD name", change(base, filename=unicodedata.normalize("NFD", dessert))),
        ("NFC name", change(base, filename=unicodedata.normalize("NFC", dessert))),
        ("emoji name", change(base, filename="😀 👨\u200d👩\u200d👧 🇬🇧 👍🏽.png", content_type="image/png")),
        ("RTL override and mark", change(base, filename="invoice\u202efdp.exe\u200f שלום")),
        ("odd code points", change(base, filename="\ufeff\u200b\ufffd\uffff\U0010ffff\u00a0~.txt")),
        ("dot segment names", change(base, filename="..", prefix=".")),
        ("size 0, no content type", change(base, size=0, content_type=None)),
        ("size 5 GiB", change(base, size=MAX_SIZE, content_type="application/octet-stream")),
        ("key of exactly 1024 bytes", change(base, filename="😀" * (budget // 4) + "~" * (budget % 4))),
        ("empty prefix", change(base, prefix="")),
        ("default https port dropped", change(base, endpoint="https://example.org:443")),
        ("default http port dropped, path style",
         change(base, endpoint="http://localhost:80", path_style=True, bucket="Legacy_Bucket")),
        ("MinIO, path style", change(base, endpoint="http://127.0.0.1:9000", path_style=True, region="us-east-1")),
        ("IPv6 endpoint", change(base, endpoint="http://[::1]:9000", path_style=True)),
        ("session token with '/', '+' and '='",
         change(base, session_token="IQoJb3JpZ2luX2VjEJr//////////wEaCWV1LXdlc3QtMiJHMEUCIQD+abc/def+ghi==")),
        ("content type with runs of spaces", change(base, content_type="  text/plain;   charset=utf-8  ")),
        ("earliest clock, shortest expiry", change(base, now=FIRST_NOW, put_expires=1)),
        ("latest clock, longest expiry", change(base, now=LAST_NOW, put_expires=MAX_EXPIRES)),
        ("presigned GET with hostile disposition",
         change(base, get_expires=MAX_EXPIRES, filename="a b+c&d=e.txt",
                disposition="attachment; filename=\"a b+c&d=e/😀.txt\"; filename*=UTF-8''a%20b")),
    ]


# ---- s3sign, through the Lua driver -------------------------------------------

@dataclasses.dataclass(frozen=True)
class Signed:
    """What signer:slot returned, or why it did not. The headers the PUT must carry
    are in its signature (X-Amz-SignedHeaders), which is compared with botocore's."""
    put_url: str = ""
    get_url: str = ""
    key: str = ""
    error: Optional[str] = None


def encode_field(value):
    if value is None:
        value = ""
    elif isinstance(value, bool):
        value = "1" if value else "0"
    return str(value).encode().hex()


def decode_field(field):
    return bytes.fromhex(field).decode(errors="backslashreplace")


def run_driver(driver, lua, cpath, lines):
    """Feed a Lua driver its case lines in one process; its result lines, one per case."""
    proc = subprocess.run([lua, str(driver), cpath], input="".join(lines), capture_output=True,
                          text=True, check=False)
    results = proc.stdout.splitlines()
    if proc.returncode != 0 or len(results) != len(lines):
        sys.exit(f"{driver.name} failed (status {proc.returncode}, {len(results)} of {len(lines)} "
                 f"results):\n{proc.stderr}")
    return results


def sign_with_s3sign(lua, cpath, cases):
    """Presign every case in one Lua process; one Signed per case."""
    lines = ["\t".join(encode_field(v) for v in dataclasses.astuple(c)) + "\n" for c in cases]
    signed = []
    for line in run_driver(DRIVER, lua, cpath, lines):
        status, *fields = line.split("\t")
        values = [decode_field(f) for f in fields]
        signed.append(Signed(*values) if status == "OK" else Signed(error=values[0]))
    return signed


# ---- botocore -------------------------------------------------------------------

@contextlib.contextmanager
def frozen_clock(now):
    """Make botocore.auth, which reads datetime.datetime.utcnow(), see now (Unix seconds)."""
    instant = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).replace(tzinfo=None)

    class FrozenDatetime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return instant

    with mock.patch.object(botocore.auth, "datetime", types.SimpleNamespace(datetime=FrozenDatetime)):
        yield


def botocore_presign(case, method, url, headers, expires):
    credentials = botocore.credentials.Credentials(case.access_key_id, case.secret_key, case.session_token)
    request = botocore.awsrequest.AWSRequest(method=method, url=url, headers=headers)
    with frozen_clock(case.now):
        botocore.auth.S3SigV4QueryAuth(credentials, "s3", case.region, expires=expires).add_auth(request)
    return request.url


def object_key(case):
    return (f"{case.prefix}/" if case.prefix else "") + f"{case.id}/{case.filename}"


@dataclasses.dataclass(frozen=True)
class Expected:
    key: str
    host: str          # the URLs' host[:port]
    put_url: str       # botocore's
    get_url: str       # botocore's, or the public URL


def origin(endpoint, aws_host):
    """(scheme, host[:port] as written, Host) of an endpoint, or of AWS's host when there is none:
    Host leaves out the scheme's default port."""
    if not endpoint:
        return "https", aws_host, aws_host
    parts = urlsplit(endpoint)
    host = parts.netloc.rpartition(":")[0] if parts.port == DEFAULT_PORTS[parts.scheme] else parts.netloc
    return parts.scheme, parts.netloc, host


def expected(case):
    """The URLs by botocore's rules, built without s3sign."""
    # botocore gets netloc as written and derives Host itself; the URL must carry the Host
    scheme, netloc, host = origin(case.endpoint, f"s3.{case.region}.amazonaws.com")
    if not case.path_style:
        netloc, host = f"{case.bucket}.{netloc}", f"{case.bucket}.{host}"
    key = object_key(case)
    # S3 encodes the path once, every byte but A-Za-z0-9-._~ and '/', uppercase hex
    path = quote(("/" + (f"{case.bucket}/" if case.path_style else "") + key).encode(), safe="/~")

    headers = {"Content-Length": str(case.size)}
    if case.content_type:
        headers["Content-Type"] = case.content_type
    put_url = botocore_presign(case, "PUT", f"{scheme}://{netloc}{path}", headers, case.put_expires)
    if case.get_expires is None:
        get_url = f"{scheme}://{host}{path}"
    else:
        query = f"?response-content-disposition={quote(case.disposition, safe='-_.~')}" if case.disposition else ""
        get_url = botocore_presign(case, "GET", f"{scheme}://{netloc}{path}{query}", {}, case.get_expires)
    return Expected(key, host, put_url, get_url)


# ---- header signing ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class HeaderCase:
    """One signer:authorize call and its signer. Field order is authorize_cases.lua's."""
    access_key_id: str
    secret_key: str
    session_token: Optional[str]
    region: str
    service: str
    endpoint: str
    bucket: str                    # "" for STS: requests address the endpoint itself
    path_style: bool
    method: str
    key: str                       # "" on the bucket itself
    now: int
    body: bytes
    headers: tuple                 # ((name, value), ...), signed besides the signer's own
    query: tuple
    unsigned: bool                 # no body: S3's UNSIGNED-PAYLOAD


SUBRESOURCES = ["lifecycle", "policy", "cors", "acl", "tagging", "versioning", "uploads"]
HEADER_TEXT = "".join(chr(c) for c in range(0x20, 0x7F))


def header_value(rng):
    """Printable ASCII with runs of spaces, leading and trailing ones included."""
    return "".join(rng.choice(HEADER_TEXT + "   ") for _ in range(rng.randint(0, 40)))


def any_case(rng, name):
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)


def s3_headers(rng, body):
    choices = [
        ("Content-MD5", base64.b64encode(hashlib.md5(body).digest()).decode()),
        ("x-amz-checksum-sha256", base64.b64encode(hashlib.sha256(body).digest()).decode()),
        ("Content-Type", rng.choice([c for c in CONTENT_TYPES if c])),
        ("x-amz-meta-note", header_value(rng)),
        ("If-None-Match", "*"),
        ("Cache-Control", "max-age=0, " + header_value(rng)),
    ]
    return tuple((any_case(rng, n), v) for n, v in rng.sample(choices, rng.randint(0, len(choices))))


def random_header_case(rng):
    token = base64.b64encode(rng.randbytes(rng.randint(1, 600))).decode() if rng.random() < 0.4 else None
    credentials = dict(
        access_key_id=rng.choice(["AKIA", "ASIA"]) + "".join(rng.choice(string.ascii_uppercase) for _ in range(16)),
        secret_key="".join(rng.choice(BASE64) for _ in range(40)), session_token=token,
        now=pick(rng, EDGE_NOWS, lambda: rng.randint(FIRST_NOW, LAST_NOW)))
    region = rng.choice(REGIONS)
    if rng.random() < 0.25:   # AssumeRole, as RGW's STS takes it: a form POST signed in the header
        body = ("Action=AssumeRole&Version=2011-06-15&RoleArn=" + quote("arn:aws:iam::123456789012:role/" +
                random_text(rng, ["plain"], rng.randint(1, 20)), safe="") + "&RoleSessionName=prosody-" +
                str(rng.randint(0, 10**6)) + "&DurationSeconds=" + str(rng.randint(900, 43200))).encode()
        return HeaderCase(region=region, service="sts", endpoint=rng.choice(["", "http://127.0.0.1:7480",
                          "https://sts.example.org"]), bucket="", path_style=False, method="POST", key="",
                          body=body, headers=(("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),),
                          query=(), unsigned=False, **credentials)
    endpoint = rng.choice(ENDPOINTS).format(region=region)
    path_style = is_ip_endpoint(endpoint) or rng.random() < 0.5
    bucket = rng.choice(PATH_STYLE_BUCKETS) if path_style and rng.random() < 0.3 else dns_bucket(rng)
    bucket_level = rng.random() < 0.4
    key = "" if bucket_level else random_prefix(rng) + "/" + random_filename(rng, 300)
    query = []
    if bucket_level and rng.random() < 0.8:
        query.append((rng.choice(SUBRESOURCES), ""))
    for _ in range(rng.randint(0, 2)):
        query.append((random_text(rng, ["plain", "punct"], rng.randint(1, 8)).lstrip("xX") or "q",
                      random_text(rng, rng.sample(sorted(FILENAME_POOLS), 2), rng.randint(0, 12))))
    query = tuple(dict(query).items())   # a name once
    unsigned = rng.random() < 0.2
    body = b"" if unsigned else rng.choice([b"", rng.randbytes(rng.randint(1, 3000)),
                                            b"<LifecycleConfiguration><Rule/></LifecycleConfiguration>"])
    return HeaderCase(region=region, service="s3", endpoint=endpoint, bucket=bucket, path_style=path_style,
                      method=rng.choice(["PUT", "GET", "DELETE", "POST", "HEAD"]), key=key, body=body,
                      headers=s3_headers(rng, body), query=query, unsigned=unsigned, **credentials)


def header_regression_cases():
    base = HeaderCase(
        access_key_id="AKIAIOSFODNN7EXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        session_token=None, region="us-east-1", service="s3", endpoint="http://127.0.0.1:7480", bucket="uploads",
        path_style=True, method="PUT", key="", now=utc(2024, 1, 15, 12),
        body=b"<LifecycleConfiguration/>", headers=(("Content-MD5", "9ctv6GkgpnHjDoKgXhSdnA=="),),
        query=(("lifecycle", ""),), unsigned=False)
    change = dataclasses.replace
    return [
        ("PUT ?lifecycle with Content-MD5, path style", base),
        ("PUT ?policy, virtual-hosted on AWS", change(base, endpoint="", path_style=False, region="eu-west-2",
                                                      query=(("policy", ""),), headers=())),
        ("GET ?cors with a session token", change(base, method="GET", query=(("cors", ""),), headers=(),
                                                  body=b"", session_token="FwoGZXIvYXdzEB8aD+/=")),
        ("unsigned payload", change(base, unsigned=True, body=b"")),
        ("STS AssumeRole form POST", change(base, service="sts", bucket="", path_style=False, method="POST",
                                            query=(), body=b"Action=AssumeRole&Version=2011-06-15",
                                            headers=(("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),))),
    ]


def encode_pairs(pairs):
    return b"".join(n.encode() + b"\0" + v.encode() + b"\0" for n, v in pairs).hex()


def authorize_with_s3sign(lua, cpath, cases):
    lines = []
    for c in cases:
        fields = [encode_field(v) for v in (c.access_key_id, c.secret_key, c.session_token, c.region, c.service,
                                            c.endpoint, c.bucket, c.path_style, c.method, c.key, c.now)]
        fields += [c.body.hex(), encode_pairs(c.headers), encode_pairs(c.query), encode_field("u" if c.unsigned else "")]
        lines.append("\t".join(fields) + "\n")
    signed = []
    for line in run_driver(AUTHORIZE_DRIVER, lua, cpath, lines):
        status, *fields = line.split("\t")
        if status != "OK":
            signed.append((None, decode_field(fields[0])))
            continue
        raw = bytes.fromhex(fields[1]).split(b"\0")
        headers = {raw[i].decode().lower(): raw[i + 1].decode() for i in range(0, len(raw) - 1, 2)}
        signed.append((decode_field(fields[0]), headers))
    return signed


def botocore_authorize(case):
    """(url, {lowercased name: value} of the headers botocore adds), built without s3sign."""
    scheme, _, netloc = origin(case.endpoint, f"{case.service}.{case.region}.amazonaws.com")
    if case.bucket and not case.path_style:
        netloc = f"{case.bucket}.{netloc}"
    path = "/" + (case.bucket + ("/" if case.key else "") if case.bucket and case.path_style else "") + case.key
    url = f"{scheme}://{netloc}{quote(path.encode(), safe='/~')}"
    if case.query:
        url += "?" + "&".join(f"{quote(n.encode(), safe='-_.~')}={quote(v.encode(), safe='-_.~')}" for n, v in case.query)
    credentials = botocore.credentials.Credentials(case.access_key_id, case.secret_key, case.session_token)
    request = botocore.awsrequest.AWSRequest(method=case.method, url=url, headers=dict(case.headers),
                                             data=case.body)
    if case.service == "s3":
        request.context["client_config"] = types.SimpleNamespace(s3={"payload_signing_enabled": not case.unsigned})
        auth = botocore.auth.S3SigV4Auth(credentials, "s3", case.region)
    else:
        auth = botocore.auth.SigV4Auth(credentials, case.service, case.region)
    with frozen_clock(case.now):
        auth.add_auth(request)
    added = {n.lower(): v for n, v in request.headers.items()
             if n.lower() in ("x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "authorization")}
    return url, added


def header_differences(url, headers, want_url, want_headers):
    if url is None:
        return [f"s3sign refused the case: {headers}"]
    problems = []
    a, e = urlsplit(url), urlsplit(want_url)
    if (a.scheme, a.netloc, a.path) != (e.scheme, e.netloc, e.path):
        problems.append(f"URL {url!r}, expected {want_url!r}")
    if sorted(a.query.split("&")) != sorted(f"{item}=" if "=" not in item else item
                                           for item in e.query.split("&")) and (a.query or e.query):
        problems.append(f"query {a.query!r}, expected {e.query!r}")
    if headers != want_headers:
        problems.append(f"headers {headers}, botocore {want_headers}")
    return problems


def run_header_crosscheck(args, rng):
    labelled = header_regression_cases()
    labelled += [(f"random header case {i}", random_header_case(rng)) for i in range(args.header_cases)]
    signed = authorize_with_s3sign(args.lua, args.cpath, [c for _, c in labelled])
    failed = 0
    for (label, case), (url, headers) in zip(labelled, signed):
        want_url, want_headers = botocore_authorize(case)
        problems = header_differences(url, headers, want_url, want_headers)
        if problems:
            failed += 1
            print(f"FAIL {label}: {'; '.join(problems)}")
            if failed <= FULL_REPORTS:
                for field in dataclasses.fields(case):
                    print(f"    {field.name} = {getattr(case, field.name)!a}")
    return len(labelled), failed


# ---- comparing --------------------------------------------------------------------

def query_pairs(query):
    """Sorted (name, value) pairs of a query string, left percent-encoded."""
    return sorted(tuple(item.partition("=")[::2]) for item in query.split("&"))


def presigned_differences(what, actual, expected_url, host):
    if not (actual.isascii() and actual.isprintable()):
        return [f"{what} URL has bytes outside printable ASCII"]
    a, e = urlsplit(actual), urlsplit(expected_url)
    a_query, e_query = query_pairs(a.query), query_pairs(e.query)
    a_sig = [v for n, v in a_query if n == "X-Amz-Signature"]
    e_sig = [v for n, v in e_query if n == "X-Amz-Signature"]
    problems = []
    if a.scheme != e.scheme:
        problems.append(f"{what} scheme {a.scheme!r}, expected {e.scheme!r}")
    if a.netloc != host:
        problems.append(f"{what} host {a.netloc!r}, expected {host!r}")
    if a.path != e.path:
        problems.append(f"{what} path differs")
    if a.fragment:
        problems.append(f"{what} URL has a fragment")
    if a_sig != e_sig:
        problems.append(f"{what} signature {a_sig}, botocore {e_sig}")
    if [p for p in a_query if p[0] != "X-Amz-Signature"] != [p for p in e_query if p[0] != "X-Amz-Signature"]:
        problems.append(f"{what} query parameters differ")
    return problems


def differences(case, signed, want):
    """Empty when s3sign agrees with botocore on this case."""
    if signed.error is not None:
        return [f"s3sign refused the case: {signed.error}"]
    problems = presigned_differences("PUT", signed.put_url, want.put_url, want.host)
    if case.get_expires is None:
        if signed.get_url != want.get_url:
            problems.append("public GET URL differs")
    else:
        problems += presigned_differences("GET", signed.get_url, want.get_url, want.host)
    if signed.key != want.key:
        problems.append(f"key {signed.key!r}, expected {want.key!r}")
    return problems


def report(label, case, signed, want, problems, full):
    print(f"FAIL {label}: {'; '.join(problems)}")
    if not full:
        return
    for field in dataclasses.fields(case):
        print(f"    {field.name} = {getattr(case, field.name)!a}")
    print(f"  s3sign  PUT {signed.put_url}\n  botocore PUT {want.put_url}")
    print(f"  s3sign  GET {signed.get_url}\n  expected GET {want.get_url}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="random presign cases (default 2000)")
    parser.add_argument("--header-cases", type=int, default=1000, help="random header-signed cases (default 1000)")
    parser.add_argument("--seed", type=int, help="RNG seed, to replay a run (default: random)")
    parser.add_argument("--lua", default="lua5.4", help="Lua 5.4 interpreter (default lua5.4)")
    parser.add_argument("--cpath", default="build/?.so", help="package.cpath entry that finds s3sign.so")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"botocore crosscheck: seed {seed}", flush=True)
    started = time.monotonic()

    rng = random.Random(seed)
    labelled = regression_cases()
    labelled += [(f"random case {i}", random_case(rng)) for i in range(args.cases)]
    cases = [case for _, case in labelled]
    signed = sign_with_s3sign(args.lua, args.cpath, cases)

    failed = 0
    for (label, case), result in zip(labelled, signed):
        want = expected(case)
        problems = differences(case, result, want)
        if problems:
            report(label, case, result, want, problems, full=failed < FULL_REPORTS)
            failed += 1
    if failed > FULL_REPORTS:
        print(f"(only the first {FULL_REPORTS} failures are shown in full)")
    header_total, header_failed = run_header_crosscheck(args, rng)
    print(f"botocore crosscheck: presigned {len(cases) - failed} passed, {failed} failed; "
          f"header-signed {header_total - header_failed} passed, {header_failed} failed "
          f"(seed {seed}, {time.monotonic() - started:.1f} s)")
    return 1 if failed or header_failed else 0


if __name__ == "__main__":
    sys.exit(main())
