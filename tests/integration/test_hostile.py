#!/usr/bin/python3
"""A slot grants one upload of one file, and setup never reaches past the
module's own folders: what a hostile client or a careless configuration tries,
against Ceph RGW (which acts on request headers a presigned URL did not sign),
a real Prosody and slixmpp.

  /usr/bin/python3 tests/integration/test_hostile.py

The bucket also holds another application's data: private/payroll.csv, and a
bucket policy statement of its own (one object, not a list; a number that a
double cannot hold). Configurations, all on the one bucket:

  served     example.test (alice, bob; the access list names Friend@Other.Test, and
             an option is misspelt), types.example.test (image/png only),
             dl.example.test (presigned downloads), other.test (friend)
  root       a host with no folder: http_upload_s3_path = "//"
  nested     up.example.test in "up" and upb.example.test in "up/b"
  lookalike  chat-example.test and chatexample.test, whose old Sids were the same
"""
import json
import sys
import time

import client
import stack
from checks import check, refused, summary, wait_until
from client import NS, NS_LEGACY, http_request, object_key

PASSWORD = "not to be trusted"
PAYROLL_KEY, PAYROLL = "private/payroll.csv", b"name,salary\nalice,1000000\n"
ALL_USERS = 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'
FOREIGN = {"Sid": "PayrollAudit", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
           "Resource": "arn:aws:s3:::uploads/private/*",
           "Condition": {"NumericGreaterThan": {"s3:max-keys": 9007199254740993}}}

# Headers a holder of an upload URL adds, that must be refused once setup ran.
REFUSED = [
    ("x-amz-copy-source: another user's upload", "x-amz-copy-source", "BOB"),
    ("x-amz-copy-source: another application's file", "x-amz-copy-source", "/uploads/" + PAYROLL_KEY),
    ("x-amz-acl: public-read", "x-amz-acl", "public-read"),
    ("x-amz-acl: public-read-write", "x-amz-acl", "public-read-write"),
    ("x-amz-acl: authenticated-read", "x-amz-acl", "authenticated-read"),
    ("x-amz-grant-read", "x-amz-grant-read", ALL_USERS),
    ("x-amz-grant-write", "x-amz-grant-write", ALL_USERS),
    ("x-amz-grant-read-acp", "x-amz-grant-read-acp", ALL_USERS),
    ("x-amz-grant-write-acp", "x-amz-grant-write-acp", ALL_USERS),
    ("x-amz-grant-full-control", "x-amz-grant-full-control", ALL_USERS),
]
# Headers RGW 16.2 stores and nothing refuses: they reach no other object and publish nothing.
STORED = [
    ("x-amz-meta-note", "hi", "Metadata"),
    ("x-amz-website-redirect-location", "https://evil.example/", "WebsiteRedirectLocation"),
    ("Content-Disposition", "inline; filename=x.html", "ContentDisposition"),
    ("Cache-Control", "public, max-age=31536000", "CacheControl"),
    ("x-amz-tagging", "a=b", None),
]


def anonymous_get(rgw, key):
    return http_request("GET", "%s/%s/%s" % (rgw.endpoint, rgw.bucket, key))[0]


def head(rgw, key):
    """HeadObject's answer, or None when there is no such object."""
    try:
        return rgw.s3.client.head_object(Bucket=rgw.bucket, Key=key)
    except rgw.s3.client.exceptions.ClientError:
        return None


def policy_text(rgw):
    try:
        return rgw.s3.client.get_bucket_policy(Bucket=rgw.bucket)["Policy"]
    except rgw.s3.client.exceptions.ClientError:
        return None


def prosodyctl(p, *args):
    status, output = p.prosodyctl("mod_http_upload_s3", *args)
    print("   $ %s\n     %s" % (" ".join(args), output.strip().replace("\n", "\n     ")))
    return status, output


def upload(alice, service, name, body, content_type=None, headers=None, ns=NS):
    """A slot from the service, then a PUT with those headers; (status, key, put url, get url)."""
    put, get, _ = alice.request_slot(service, name, len(body), content_type, ns=ns)
    status, _, _ = http_request("PUT", put, body, headers or {})
    return status, object_key(put), put, get


def test_unsigned_headers_before_setup(p):
    status, output = prosodyctl(p, "check")
    check("check: FAIL on a bucket that honours unsigned x-amz-copy-source",
          status == 1 and "unsigned x-amz-copy-source: FAIL: the service honours it" in output, output)
    check("check: FAIL on unsigned x-amz-acl", "unsigned x-amz-acl: FAIL" in output, output)
    check("check: ... and names the fix", "fix: run prosodyctl mod_http_upload_s3 setup" in output, output)
    check("check: says RGW acts on unsigned headers", "acts on request headers an upload URL did not sign" in output)


def test_setup_closes_them(p, rgw, alice, bob):
    status, output = prosodyctl(p, "setup")
    check("setup: ok", status == 0, output)
    status, output = prosodyctl(p, "check")
    check("check passes on RGW once setup ran", status == 0 and output.count("uploads will work") == 4, output)
    for header in ("x-amz-copy-source", "x-amz-acl", "x-amz-grant-read"):
        check("check: unsigned %s refused" % header, output.count("unsigned %s: ok (refused)" % header) == 4, output)
    check("check: cleaned up after itself", output.count("clean-up: ok (5 probes deleted)") == 4
          and not [k for k in keys(rgw) if "http_upload_s3-check" in k], keys(rgw))

    status, bob_key, _, _ = upload(bob, "example.test", "bob-private.txt", b"bob's own file")
    check("bob uploads", status == 200, status)
    for label, header, value in REFUSED:
        value = "/uploads/" + bob_key if value == "BOB" else value
        body = b"what the slot was for"
        status, key, _, _ = upload(alice, "example.test", "attack.txt", body, headers={header: value})
        check("%s: refused" % label, status == 403, status)
        check("%s: nothing stored at the slot's key" % label, head(rgw, key) is None, head(rgw, key))
    check("the other application's file is as it was", rgw.s3.get_object(PAYROLL_KEY)[0] == PAYROLL)
    check("... and still private", anonymous_get(rgw, PAYROLL_KEY) == 403)
    check("bob's file is as it was", rgw.s3.get_object(bob_key)[0] == b"bob's own file")

    for header, value, field in STORED:
        body = b"plain bytes"
        status, key, _, _ = upload(alice, "example.test", "extra.txt", body, headers={header: value})
        stored = rgw.s3.get_object(key)[0] if status == 200 else None
        check("%s: the slot's key holds the bytes uploaded, nothing else" % header, status == 200 and stored == body,
              (status, stored))
        meta = head(rgw, key) or {}
        print("   RGW with %s: HTTP %d, stored %r" % (header, status, meta.get(field) if field else "(nothing)"))

    for ns in (NS, NS_LEGACY):
        status, _, _, get = upload(alice, "example.test", "plain.txt", b"still works", "text/plain",
                                   {"Content-Type": "text/plain"}, ns=ns)
        check("a plain upload still works (%s)" % ns, status == 200, status)
        check("... and its public GET (%s)" % ns, http_request("GET", get)[:2] == (200, b"still works"))


def test_put_url_twice(alice, rgw):
    """What docs/admin.md says: a PUT URL works until it expires, and a second PUT replaces the first."""
    put, _, _ = alice.request_slot("example.test", "twice.txt", 5)
    first, _, _ = http_request("PUT", put, b"first")
    second, _, _ = http_request("PUT", put, b"again")
    check("a PUT URL can be used again until it expires, replacing the file",
          (first, second, rgw.s3.get_object(object_key(put))[0]) == (200, 200, b"again"))


def test_types(alice, rgw):
    status, key, put, _ = upload(alice, "types.example.test", "cat.png", b"\x89PNG...", "image/png",
                                 {"Content-Type": "text/html"})
    check("allow-list: an upload as text/html of a slot for image/png is refused", status == 403, status)
    check("... and stores nothing", head(rgw, key) is None)
    status, _, _ = http_request("PUT", put, b"\x89PNG...", {"Content-Type": "image/png"})
    check("allow-list: the type asked for uploads", status == 200 and rgw.s3.get_object(key)[1] == "image/png", status)
    refused("allow-list: a request without a type is judged as application/octet-stream", "modify", "not-acceptable",
            lambda: alice.request_slot("types.example.test", "typeless", 4))
    put, _, _ = alice.request_slot("binary.example.test", "typeless", 4)
    status, _, _ = http_request("PUT", put, b"data", {"Content-Type": "text/html"})
    check("allow-list: a slot without a type does not upload as text/html", status == 403, status)
    status, _, _ = http_request("PUT", put, b"data", {"Content-Type": "application/octet-stream"})
    check("... but as application/octet-stream, what it was allowed as", status == 200, status)

    for content_type in ("image/x+xml", "image/svg+xml", "application/xhtml+xml"):
        status, _, _, get = upload(alice, "dl.example.test", "drawing", b"<svg/>", content_type,
                                   {"Content-Type": content_type})
        got, _, headers = http_request("GET", get)
        check("presigned GET of %s: a download" % content_type, status == 200 and got == 200
              and headers.get("Content-Type") == "application/octet-stream"
              and headers.get("Content-Disposition", "").startswith("attachment"), (status, got, headers))


def test_access_and_logs(p, friend, alice):
    put, _, _ = friend.request_slot("example.test", "from a friend.txt", 3)
    check("a JID written with capitals in the access list gets its slot", put.startswith("http"))
    log = p.log_text()
    check("an unknown option is pointed out, with the nearest known one",
          "http_upload_s3_presign_gett is not an option of this module (did you mean http_upload_s3_presign_get?)"
          in log)
    line = "Upload slot for alice@example.test"
    logged = p.log_text().count(line)
    put, _, _ = alice.request_slot("example.test", "public link.txt", 3)
    key = object_key(put).split("/", 1)[1]   # the UUID and name: the public link's secret part
    wait_until("the slot is logged", lambda: p.log_text().count(line) > logged, 10)
    check("the log names no object key", key not in p.log_text())


def keys(rgw):
    return [o["Key"] for o in rgw.s3.client.list_objects_v2(Bucket=rgw.bucket).get("Contents", [])]


def lifecycle_prefixes(rgw):
    try:
        rules = rgw.s3.client.get_bucket_lifecycle_configuration(Bucket=rgw.bucket)["Rules"]
    except rgw.s3.client.exceptions.ClientError:
        return []
    return [r.get("Filter", {}).get("Prefix", r.get("Prefix")) for r in rules]


def test_root(session, rgw):
    p = session.prosody({"root.example.test": rgw.module_options(path="//")}, start=False)
    before = policy_text(rgw)
    status, output = prosodyctl(p, "setup")
    check("no folder: setup refuses the policy, naming the option",
          status == 1 and "root.example.test: policy: FAIL: http_upload_s3_path is empty" in output, output)
    check("no folder: ... and the lifecycle rule", "root.example.test: lifecycle: FAIL: http_upload_s3_path is empty"
          in output, output)
    check("no folder: the policy is as it was", policy_text(rgw) == before)
    check("no folder: no lifecycle rule for the whole bucket", "" not in lifecycle_prefixes(rgw), lifecycle_prefixes(rgw))
    check("no folder: the other application's file stays private", anonymous_get(rgw, PAYROLL_KEY) == 403)
    status, output = prosodyctl(p, "check")
    check("no folder: check says so", "bucket policy: FAIL: http_upload_s3_path is empty" in output, output)
    check("no folder: check fails on what RGW lets an upload URL do",
          status == 1 and "unsigned x-amz-copy-source: FAIL" in output
          and "fix: http_upload_s3_path is empty" in output, output)


def test_nested(session, rgw):
    p = session.prosody({"up.example.test": rgw.module_options(path="up"),
                         "upb.example.test": rgw.module_options(path="up/b")}, start=False)
    before = policy_text(rgw)
    status, output = prosodyctl(p, "setup")
    check("nested folders: setup refuses both hosts' policy and lifecycle", status == 1
          and 'up.example.test: policy: FAIL: this host\'s message folder "up/" and upb.example.test\'s message '
          'folder "up/b/" contain one another' in output
          and 'upb.example.test: lifecycle: FAIL: this host\'s message folder "up/b/"' in output, output)
    check("nested folders: nothing written", policy_text(rgw) == before
          and not [p for p in lifecycle_prefixes(rgw) if p.startswith("up")], lifecycle_prefixes(rgw))
    status, output = prosodyctl(p, "check")
    check("nested folders: check fails and says why", status == 1 and output.count("contain one another") == 4
          and output.count("setup cannot write them as the configuration stands") == 2, output)
    p = session.prosody({"star.example.test": rgw.module_options(path="up*")}, start=False)
    status, output = prosodyctl(p, "check")
    check("a wildcard in the folder is refused, naming the option",
          status == 1 and "configuration: FAIL: http_upload_s3_path must be" in output, output)


def test_lookalike_hosts(session, rgw):
    p = session.prosody({"chat-example.test": rgw.module_options(path="a_uploads"),
                         "chatexample.test": rgw.module_options(path="b_uploads")}, start=False)
    status, output = prosodyctl(p, "setup")
    check("look-alike hosts: setup ok", status == 0, output)
    for folder in ("a_uploads", "b_uploads"):
        rgw.s3.client.put_object(Bucket=rgw.bucket, Key=folder + "/k/file.txt", Body=b"x")
        check("look-alike hosts: %s is public as each host's setup wrote" % folder,
              anonymous_get(rgw, folder + "/k/file.txt") == 200)
    status, output = prosodyctl(p, "setup")
    check("look-alike hosts: neither removed the other's statements", status == 0
          and output.count("nothing to do") == 2, output)


def test_foreign_policy_kept(rgw):
    text = policy_text(rgw)
    statements = json.loads(text)["Statement"]
    check("the other application's statement is still there, exactly", FOREIGN in statements, statements)
    check("... with its number as it was written", "9007199254740993" in text, text)


def test_unreadable_policy(session):
    """A document the module cannot read is left alone, with a FAIL saying why."""
    writes = []

    class Unreadable(stack.QuietHandler):
        def do_GET(self):
            if "policy" in self.path:
                return self.reply(200, b"{ this is not JSON")
            self.reply(404, b"<Error><Code>%s</Code></Error>" % (
                b"NoSuchCORSConfiguration" if "cors" in self.path else b"NoSuchLifecycleConfiguration"))

        def do_PUT(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            writes.append(self.path)
            self.reply(200)
        do_DELETE = do_PUT

    server = session.http_server(Unreadable)
    p = session.prosody({"odd.example.test": {
        "http_upload_s3_access_id": "AKIDEXAMPLE", "http_upload_s3_secret_key": "secret",
        "http_upload_s3_region": "us-east-1", "http_upload_s3_bucket": "uploads", "http_upload_s3_path": "up",
        "http_upload_s3_endpoint": "http://127.0.0.1:%d" % server.server_port, "http_upload_s3_path_style": True,
    }}, start=False)
    status, output = prosodyctl(p, "setup")
    check("an unreadable policy: setup FAILs and says why", status == 1 and "policy: FAIL: the bucket's policy is not "
          "a JSON policy document the module can read: left as it is" in output, output)
    check("... and writes no policy", not [w for w in writes if "policy" in w], writes)


def main():
    started = time.monotonic()
    with stack.Session() as session:
        session.on_exit(client.shutdown)
        rgw = session.rgw()
        rgw.s3.client.put_object(Bucket=rgw.bucket, Key=PAYROLL_KEY, Body=PAYROLL)
        rgw.s3.client.put_bucket_policy(Bucket=rgw.bucket, Policy=json.dumps({
            "Version": "2012-10-17", "Statement": FOREIGN}))
        options = rgw.module_options
        p = session.prosody({
            "example.test": options(access=["Friend@Other.Test"], presign_gett=True),
            "other.test": {"modules_enabled": []},
        }, components={
            "types.example.test": options(path="types_uploads", allowed_file_types=["image/png"]),
            "binary.example.test": options(path="binary_uploads", allowed_file_types=["application/octet-stream"]),
            "dl.example.test": options(path="dl_uploads", presign_get=True),
        })
        for user, host in (("alice", "example.test"), ("bob", "example.test"), ("friend", "other.test")):
            p.register(user, host, PASSWORD)
        alice = client.Client("alice@example.test", PASSWORD, p.port)
        bob = client.Client("bob@example.test", PASSWORD, p.port)
        friend = client.Client("friend@other.test", PASSWORD, p.port)
        for c in (alice, bob, friend):
            session.on_exit(c.close)

        test_unsigned_headers_before_setup(p)
        test_setup_closes_them(p, rgw, alice, bob)
        test_put_url_twice(alice, rgw)
        test_types(alice, rgw)
        test_access_and_logs(p, friend, alice)
        test_root(session, rgw)
        test_nested(session, rgw)
        test_lookalike_hosts(session, rgw)
        test_foreign_policy_kept(rgw)
        test_unreadable_policy(session)
        print("hostile: %.1fs on Prosody %s" % (time.monotonic() - started, p.version()))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
