#!/usr/bin/python3
"""Upload purposes (XEP-0363 1.2), retention by S3 lifecycle, and
`prosodyctl mod_http_upload_s3 setup` / `check`, against Ceph RGW.

  /usr/bin/python3 tests/integration/test_purposes.py

RGW runs with `rgw lc debug interval = 10` (tools/rgw/start): one lifecycle
"day" lasts 10 seconds, so a rule that expires files after a day removes them
some 20 to 40 seconds after the upload. Every file is uploaded through a slot
the module handed out to a real XMPP client; every wait is bounded.
"""
import datetime
import json
import sys
import time
import xml.etree.ElementTree as ET

import client
import stack
from checks import check, refused, summary
from client import NS, NS_LEGACY, http_request, object_key

NS_PURPOSE = "urn:xmpp:http:upload:purpose:0"
HOST, PLAIN = "example.test", "plain.test"
PASSWORD = "for a purpose"
FOREIGN_RULE = {"ID": "logs-30-days", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
                "Expiration": {"Days": 30}}
LIFECYCLE_WAIT = 90   # seconds: several lifecycle "days" of RGW's debug interval


def purpose(name, **attrs):
    return ET.Element("{%s}%s" % (NS_PURPOSE, name), {k.replace("_", "-"): v for k, v in attrs.items()})


def stamp(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def exists(s3, key):
    """Whether the object is there; any answer but "no such key" is raised."""
    return s3.head(key) is not None


def lifecycle_rules(s3):
    """The bucket's lifecycle rules, or None when it has none; other errors are raised."""
    try:
        return s3.client.get_bucket_lifecycle_configuration(Bucket=s3.bucket)["Rules"]
    except s3.client.exceptions.ClientError as e:
        if e.response["Error"]["Code"] == "NoSuchLifecycleConfiguration":
            return None
        raise


def upload(alice, filename, body, children=(), ns=NS):
    put, get, _ = alice.request_slot(HOST, filename, len(body), "text/plain", ns=ns, children=children)
    status, _, _ = http_request("PUT", put, body, {"Content-Type": "text/plain"})
    check("uploaded %s" % filename, status == 200, status)
    return put, get


def test_disco(alice):
    features = alice.disco_info(HOST)["features"]
    for name in ("message", "profile", "ephemeral", "permanent"):
        check("disco: %s#%s" % (NS_PURPOSE, name), "%s#%s" % (NS_PURPOSE, name) in features, features)
    plain = alice.disco_info(PLAIN)["features"]
    check("disco without purposes: message only", "%s#message" % NS_PURPOSE in plain
          and "%s#profile" % NS_PURPOSE not in plain, plain)


def test_refusals(alice):
    now = time.time()
    for label, children, want in (
            ("purpose not offered", [purpose("profile")], ("cancel", "feature-not-implemented")),
            ("unknown purpose", [purpose("forever")], ("cancel", "feature-not-implemented")),
    ):
        e = refused(label, *want, lambda c=children: alice.request_slot(PLAIN, "a.txt", 1, children=c))
        check(label + " says which", e is not None and "is not offered" in (e.text or ""), e)
    refused("a purpose in the legacy namespace, not offered", "cancel", "feature-not-implemented",
                lambda: alice.request_slot(PLAIN, "a.txt", 1, ns=NS_LEGACY, children=[purpose("profile")]))
    refused("two purposes", "modify", "bad-request",
            lambda: alice.request_slot(HOST, "a.txt", 1, children=[purpose("profile"), purpose("message")]))
    for label, attrs, text in (
            ("ephemeral without expire-before", {}, "need an expire-before"),
            ("malformed expire-before", {"expire_before": "tomorrow"}, "not a XEP-0082"),
            ("expire-before in the past", {"expire_before": "2020-01-01T00:00:00Z"}, "in the past"),
            ("expire-before too close", {"expire_before": stamp(now + 5)}, "at least"),
    ):
        e = refused(label, "modify", "bad-request",
                    lambda a=attrs: alice.request_slot(HOST, "a.txt", 1, children=[purpose("ephemeral", **a)]))
        check(label + ": its text", e is not None and text in (e.text or ""), e and e.text)
    e = refused("profile: its own size limit", "modify", "not-acceptable",
                lambda: alice.request_slot(HOST, "me.png", 1001, children=[purpose("profile")]))
    limit = e is not None and next((x for x in e.extra if x.tag == "{%s}file-too-large" % NS), None)
    check("profile: file-too-large names its limit", limit is not None
          and limit.findtext("{%s}max-file-size" % NS) == "1000", e and e.extra)
    alice.request_slot(HOST, "big message.txt", 1001)  # message files may be larger
    alice.request_slot(HOST, "me.png", 1000, children=[purpose("profile")])
    e = refused("profile: its own daily quota", "wait", "resource-constraint",
                lambda: alice.request_slot(HOST, "me.png", 600, children=[purpose("profile")]))
    check("profile quota: retry at midnight", e is not None and any(x.tag == "{%s}retry" % NS for x in e.extra))
    alice.request_slot(HOST, "quota is per purpose.txt", 600)


def run_setup(p, *args):
    status, output = p.prosodyctl("mod_http_upload_s3", "setup", *args)
    print("   $ setup %s\n     %s" % (" ".join(args), output.strip().replace("\n", "\n     ")))
    return status, output


def test_setup(p, rgw):
    s3 = rgw.s3
    status, output = run_setup(p, "--dry-run")
    check("setup --dry-run: ok", status == 0, output)
    check("setup --dry-run: shows the rules", "lifecycle: add HttpUploadS3 example.test message" in output
          and "lifecycle: add HttpUploadS3 example.test ephemeral" in output and '"Expiration":{"Days":1}' in output, output)
    check("setup --dry-run: writes nothing", "nothing written" in output and lifecycle_rules(s3) is None)

    s3.client.put_bucket_lifecycle_configuration(Bucket=s3.bucket, LifecycleConfiguration={"Rules": [FOREIGN_RULE]})
    status, output = run_setup(p, "--host", HOST)
    rules = {r["ID"]: r for r in lifecycle_rules(s3) or []}
    check("setup: writes one rule per expiring folder", status == 0 and set(rules) ==
          {"logs-30-days", "HttpUploadS3 example.test message", "HttpUploadS3 example.test ephemeral"}, (output, rules))
    check("setup: message files kept a day", rules.get("HttpUploadS3 example.test message", {}).get("Expiration") == {"Days": 1}
          and rules["HttpUploadS3 example.test message"]["Filter"] == {"Prefix": "http_uploads/"}, rules)
    check("setup: keeps the foreign rule as it was", rules.get("logs-30-days") == FOREIGN_RULE, rules)
    policy = json.loads(s3.client.get_bucket_policy(Bucket=s3.bucket)["Policy"])
    allowed = [st for st in policy["Statement"] if st["Effect"] == "Allow"]
    resources = [r for st in allowed for r in st["Resource"]]
    check("setup: public read of the public folders only", sorted(resources) == sorted(
        "arn:aws:s3:::%s/%s/*" % (rgw.bucket, f) for f in ("http_uploads", "http_uploads_profile",
                                                          "http_uploads_permanent")), policy)
    check("setup: never s3:ListBucket", all(st["Action"] == "s3:GetObject" for st in allowed), policy)
    denied = [st for st in policy["Statement"] if st["Effect"] == "Deny"]
    check("setup: uploads with a copy source or an ACL denied in every folder, the ephemeral one too",
          len(denied) == 7 and all(sorted(st["Resource"]) == sorted("arn:aws:s3:::%s/%s/*" % (rgw.bucket, f) for f in (
              "http_uploads", "http_uploads_profile", "http_uploads_ephemeral", "http_uploads_permanent"))
              and st["Action"] == "s3:PutObject" for st in denied), denied)
    cors = s3.client.get_bucket_cors(Bucket=s3.bucket)["CORSRules"]
    check("setup: the CORS rule", len(cors) == 1 and cors[0].get("ID") == "HttpUploadS3 example.test", cors)

    status, output = run_setup(p)
    check("setup of every host: only plain.test had to change", status == 0 and output.count("unchanged") == 3
          and "plain.test: lifecycle: add HttpUploadS3 plain.test message" in output, output)
    check("hosts sharing the bucket keep each other's rules", {r["ID"] for r in lifecycle_rules(s3)} ==
          {"logs-30-days", "HttpUploadS3 example.test message", "HttpUploadS3 example.test ephemeral",
           "HttpUploadS3 plain.test message"}, lifecycle_rules(s3))
    status, output = run_setup(p)
    check("setup again: nothing to do", status == 0 and output.count("nothing to do") == 2
          and output.count("unchanged") == 6, output)
    policy = json.loads(s3.client.get_bucket_policy(Bucket=s3.bucket)["Policy"])
    status, output = p.prosodyctl("mod_http_upload_s3", "check")
    check("check: bucket settings ok", status == 0 and "bucket settings: ok" in output, output)

    # drift: a rule changed by hand, and a statement that makes the ephemeral folder public
    changed = [dict(r, Expiration={"Days": 5}) if r["ID"] == "HttpUploadS3 example.test message" else r
               for r in lifecycle_rules(s3)]
    s3.client.put_bucket_lifecycle_configuration(Bucket=s3.bucket, LifecycleConfiguration={"Rules": changed})
    policy["Statement"].append({"Sid": "Oops", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                "Resource": "arn:aws:s3:::%s/*" % rgw.bucket})
    s3.client.put_bucket_policy(Bucket=s3.bucket, Policy=json.dumps(policy))
    status, output = p.prosodyctl("mod_http_upload_s3", "check")
    check("check: finds the changed rule", "bucket drift: lifecycle: change HttpUploadS3 example.test message" in output, output)
    check("check: finds the public ephemeral folder", "Oops makes the ephemeral folder" in output, output)
    check("check: says setup fixes them", "setup fixes them" in output, output)
    policy["Statement"] = [st for st in policy["Statement"] if st["Sid"] != "Oops"]
    s3.client.put_bucket_policy(Bucket=s3.bucket, Policy=json.dumps(policy))
    status, output = run_setup(p)
    check("setup: puts the rule right", "lifecycle: change HttpUploadS3 example.test message" in output and {
        r["ID"]: r["Expiration"] for r in lifecycle_rules(s3)}.get("HttpUploadS3 example.test message") == {"Days": 1}, output)
    status, output = p.prosodyctl("mod_http_upload_s3", "check")
    check("check: no drift after setup", "bucket settings: ok" in output, output)


def test_lifetimes(alice, rgw):
    """Files live as long as their purpose says: message and ephemeral ones go, the others stay."""
    s3 = rgw.s3
    started = time.monotonic()
    files = {}
    for name, children in (("message", []), ("profile", [purpose("profile")]), ("permanent", [purpose("permanent")])):
        put, get = upload(alice, "%s.txt" % name, name.encode() * 10, children)
        files[name] = object_key(put)
        status, body, _ = http_request("GET", get)
        check("%s: public GET works" % name, status == 200 and body == name.encode() * 10, status)
    check("each purpose in its folder", [k.split("/")[0] for k in files.values()] ==
          ["http_uploads", "http_uploads_profile", "http_uploads_permanent"], files)
    expire_before = int(time.time()) + 30
    put, get = upload(alice, "secret.txt", b"gone soon", [purpose("ephemeral", expire_before=stamp(expire_before))])
    files["ephemeral"] = key = object_key(put)
    check("ephemeral: in its folder", key.startswith("http_uploads_ephemeral/"), key)
    status, body, _ = http_request("GET", get)
    check("ephemeral: presigned GET works before expire-before", status == 200 and body == b"gone soon", status)
    check("ephemeral: GET expires at expire-before", "X-Amz-Expires=" in get, get)
    status, _, _ = http_request("GET", "%s/%s/%s" % (rgw.endpoint, rgw.bucket, key))
    check("ephemeral: no public URL", status == 403, status)
    legacy_put, _ = upload(alice, "legacy.txt", b"x", [purpose("permanent")], ns=NS_LEGACY)
    check("legacy namespace: the purpose is honoured", object_key(legacy_put).startswith("http_uploads_permanent/"))

    time.sleep(max(0, expire_before + 2 - time.time()))
    status, _, _ = http_request("GET", get)
    check("ephemeral: GET refused right after expire-before", status == 403, status)

    deadline = time.monotonic() + LIFECYCLE_WAIT
    while time.monotonic() < deadline and (exists(s3, files["message"]) or exists(s3, files["ephemeral"])):
        time.sleep(2)
    gone = time.monotonic() - started
    check("lifecycle: the message file is gone", not exists(s3, files["message"]))
    check("lifecycle: the ephemeral file is gone", not exists(s3, files["ephemeral"]))
    check("lifecycle: the profile file stays", exists(s3, files["profile"]))
    check("lifecycle: the permanent file stays", exists(s3, files["permanent"]))
    print("   lifecycle removed the expiring files within %.0f s of the first upload" % gone)


def main():
    started = time.monotonic()
    with stack.Session() as session:
        session.on_exit(client.shutdown)
        rgw = session.rgw()
        options = rgw.module_options(
            purposes=["profile", "ephemeral", "permanent"], expires_after=86400, ephemeral_expires_after=86400,
            profile_file_size_limit=1000, profile_daily_quota=1500, daily_quota=10**6, rate_limit=False)
        plain = rgw.module_options(path="plain_uploads", access=[HOST])
        p = session.prosody({HOST: options, PLAIN: plain})
        p.register("alice", HOST, PASSWORD)
        alice = client.Client("alice@" + HOST, PASSWORD, p.port)
        session.on_exit(alice.close)
        test_disco(alice)
        test_refusals(alice)
        test_setup(p, rgw)
        test_lifetimes(alice, rgw)
        print("purposes: %.1fs on Prosody %s" % (time.monotonic() - started, p.version()))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
