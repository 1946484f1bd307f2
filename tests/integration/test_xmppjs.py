#!/usr/bin/python3
"""End to end with a second client library: xmpp.js (@xmpp/client, from npm,
pinned in tests/xmppjs/package-lock.json) against a real Prosody with
mod_http_upload_s3 and a signature-checking S3 (Ceph RGW), all on loopback.

  npm ci --prefix tests/xmppjs        # once; the Makefile does it
  /usr/bin/python3 tests/integration/test_xmppjs.py

tests/xmppjs/upload.mjs signs in over plain TCP, checks disco#info, requests
slots in urn:xmpp:http:upload:0 and the legacy urn:xmpp:http:upload, PUTs and
GETs with Node's fetch and asks for a too-large slot. It runs once per service:

  example.test         the module on the VirtualHost: content type not signed
  upload.example.test  a Component: content type signed

This side then reads every object back through the S3 API and compares bytes.
NODE=/path/to/node picks another Node.js (20 or later).
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import stack
from checks import check, summary
from client import object_key

HOST, COMPONENT = "example.test", "upload.example.test"
FOLDERS = {HOST: "http_uploads", COMPONENT: "component_uploads"}   # hosts sharing a bucket: folders of their own
LIMIT = 1024 * 1024
XMPPJS = os.path.join(ROOT, "tests", "xmppjs")
SCRIPT = os.path.join(XMPPJS, "upload.mjs")
NODE = os.environ.get("NODE", "node")
NODE_TIMEOUT = 120  # seconds for one run of upload.mjs (it stops itself after 90)

def preflight():
    """None when Node.js and the pinned packages are there, else what to do about it."""
    if shutil.which(NODE) is None:
        return "no %s in PATH: install Node.js 20 or later (or set NODE=)" % NODE
    if not os.path.isfile(os.path.join(XMPPJS, "node_modules", "@xmpp", "client", "package.json")):
        return "tests/xmppjs/node_modules is missing: run  npm ci --prefix tests/xmppjs"
    return None


def run_xmppjs(port, password, service, signed_type):
    """Run upload.mjs against one upload service; (exit status, node's records)."""
    args = [NODE, SCRIPT, "--service", "xmpp://127.0.0.1:%d" % port, "--domain", HOST,
            "--username", "alice", "--password", password, "--upload", service,
            "--max-file-size", str(LIMIT)]
    if signed_type:
        args.append("--signed-content-type")
    started = time.monotonic()
    try:
        r = subprocess.run(args, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=NODE_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        check("upload.mjs for %s finished" % service, False, "killed after %ds\n%s" % (
            NODE_TIMEOUT, (e.stdout or b"").decode(errors="replace")[-3000:]))
        return None, []
    records = []
    for line in r.stdout.decode(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            check("upload.mjs for %s prints JSON lines" % service, False, repr(line))
    stderr = r.stderr.decode(errors="replace").strip()
    print("-- xmpp.js against %s: exit %d in %.1fs" % (service, r.returncode, time.monotonic() - started))
    if stderr:
        print("   stderr: " + stderr[-2000:].replace("\n", "\n   "))
    return r.returncode, records


def test_service(p, rgw, password, service, signed_type):
    status, records = run_xmppjs(p.port, password, service, signed_type)
    if status is None:
        return
    for r in records:
        if "check" in r:
            check("[%s] %s" % (service, r["check"]), r["ok"], r.get("detail", ""))
    summaries = [r["summary"] for r in records if "summary" in r]
    check("[%s] upload.mjs printed one summary" % service, len(summaries) == 1, records[-3:])
    check("[%s] upload.mjs exit status 0" % service, status == 0, status)
    if summaries:
        s = summaries[0]
        print("   xmpp.js: %d passed, %d failed, SASL %s" % (s["passed"], s["failed"], s.get("mechanism")))
        check("[%s] xmpp.js ran its checks" % service, s["passed"] > 20 and s["failed"] == 0, s)
        check("[%s] signed in without PLAIN over plain TCP" % service, s.get("mechanism") not in (None, "PLAIN"),
              s.get("mechanism"))

    objects = [r["object"] for r in records if "object" in r]
    sizes = sorted(o["size"] for o in objects)
    check("[%s] six uploads, two of them empty" % service, len(objects) == 6 and sizes[:2] == [0, 0]
          and sizes[2] > 0, sizes)
    check("[%s] both namespaces used" % service, {o["ns"] for o in objects} ==
          {"urn:xmpp:http:upload:0", "urn:xmpp:http:upload"}, [o["ns"] for o in objects])
    for o in objects:
        key = object_key(o["put"])
        label = "[%s] %s %r" % (service, o["ns"], o["filename"])
        check("%s key under %s/ ending in the file name" % (label, FOLDERS[service]),
              key.startswith(FOLDERS[service] + "/") and key.endswith("/" + o["filename"]), key)
        meta = rgw.s3.head(key)
        check("%s object exists in S3" % label, meta is not None, key)
        if meta is None:
            continue
        check("%s S3 length" % label, meta["ContentLength"] == o["size"], meta)
        body, content_type = rgw.s3.get_object(key)
        check("%s S3 bytes identical" % label, body == base64.b64decode(o["body_b64"]),
              "%d bytes in S3, %d uploaded" % (len(body), o["size"]))
        check("%s S3 Content-Type" % label, content_type == o["content_type"], content_type)


def main():
    problem = preflight()
    if problem:
        check("test_xmppjs can run", False, problem)
        return summary()
    node_version = subprocess.run([NODE, "--version"], stdout=subprocess.PIPE, timeout=30).stdout.decode().strip()
    started = time.monotonic()
    password = "xmpp.js secret"
    with stack.Session() as session:
        rgw = session.rgw()
        p = session.prosody({HOST: rgw.module_options(file_size_limit=LIMIT, path=FOLDERS[HOST])}, {
            COMPONENT: rgw.module_options(sign_content_type=True, file_size_limit=LIMIT, path=FOLDERS[COMPONENT]),
        })
        # the bucket as setup leaves it: public reads, and the statements that keep an upload URL to an upload
        status, output = p.prosodyctl("mod_http_upload_s3", "setup")
        check("setup", status == 0 and "deny uploads with x-amz-copy-source" in output, output)
        p.register("alice", HOST, password)
        test_service(p, rgw, password, HOST, signed_type=False)
        test_service(p, rgw, password, COMPONENT, signed_type=True)
        log = p.log_text()
        check("Prosody logged the slots for alice", log.count("Upload slot for alice@example.test") >= 12)
        print("xmppjs: %.1fs on Prosody %s with Node.js %s" % (time.monotonic() - started, p.version(), node_version))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
