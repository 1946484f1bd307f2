#!/usr/bin/python3
"""Browser end to end: Converse.js in headless Chromium uploads an image through
mod_http_upload_s3 straight to a real S3 (Ceph RGW), all on loopback.

  /usr/bin/python3 tests/integration/test_browser.py

Needs Debian's chromium and `npm ci` in tests/browser (Converse.js and
playwright-core, pinned by its package-lock.json; no browser download).

Prosody serves tests/browser/index.html with mod_http_files and speaks XMPP over
mod_websocket on the same origin; the bucket is another origin, so the browser's
PUT needs the bucket's CORS rule (docs/admin.md §3):

  phase A  no CORS rule: the upload fails in Converse and nothing is stored
  phase B  the documented rule for the page's origin: the object is in the bucket
           with the same bytes and type, bob gets the GET URL, the image shows

The screenshots and the browser's JSON report are kept in build/artifacts/.
"""
import asyncio
import json
import os
import struct
import sys
import time
import urllib.parse
import zlib

import client
import stack
from checks import check, debian_package, program, requires, summary
from client import http_request, object_key

HOST, COMPONENT = "example.test", "upload.example.test"
ALICE, BOB = "alice@" + HOST, "bob@" + HOST
PASSWORD = "wonderland"
PREFIX = "http_uploads"
BROWSER_DIR = os.path.join(stack.ROOT, "tests", "browser")
ARTIFACTS = os.path.join(stack.ROOT, "build", "artifacts")
NODE = os.environ.get("NODE", "node")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
BROWSER_TIMEOUT = 90          # seconds for one run of upload.mjs, launch to screenshot
NS_OOB = "jabber:x:oob"
# websocket and http_files for the page; blocklist, carbons and pep as a stock Prosody has them
# (Converse 14 waits for a blocklist before it opens a chat with someone outside the roster)
MODULES = ["websocket", "http_files", "blocklist", "carbons", "pep"]

browser_seconds = {}


def png(width, height, note):
    """A real RGB PNG: colour gradients with a white ring and a dark band, plus a text
    chunk that makes each run's bytes unique."""
    rows = []
    cx, cy = width / 2, height / 2
    for y in range(height):
        row = bytearray([0])  # filter: none
        for x in range(width):
            d = ((x - cx) ** 2 + (y - cy) ** 2) ** 0.5
            if abs(d - min(cx, cy) * 0.6) < 6:
                rgb = (255, 255, 255)
            elif height * 0.45 < y < height * 0.55:
                rgb = (30, 30, 60)
            else:
                rgb = (int(255 * x / width), int(255 * y / height), int(255 * (1 - x / width)))
            row += bytes(rgb)
        rows.append(bytes(row))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"tEXt", b"Comment\x00" + note.encode())
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
            + chunk(b"IEND", b""))


def stored_keys(s3):
    r = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=PREFIX + "/")
    return [o["Key"] for o in r.get("Contents", [])]


def has_cors(s3):
    try:
        s3.client.get_bucket_cors(Bucket=s3.bucket)
        return True
    except s3.client.exceptions.ClientError as e:
        if e.response["Error"]["Code"] == "NoSuchCORSConfiguration":
            return False
        raise


def preflight(s3, origin, key="%s/preflight/probe.png" % PREFIX):
    """(status, Access-Control-* headers) of the preflight Chromium sends before Converse's
    PUT, against a presigned PUT URL of the same form as the module's (botocore signs it)."""
    url = s3.client.generate_presigned_url("put_object", Params={"Bucket": s3.bucket, "Key": key}, ExpiresIn=300)
    status, _, headers = http_request("OPTIONS", url, None, {
        "Origin": origin, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"})
    return status, {k.lower(): v for k, v in headers.items() if k.lower().startswith("access-control-")}


class Inbox:
    """Messages with a body that bob's client receives, as (body, oob url, from)."""

    def __init__(self, c):
        self.messages = []
        self.arrived = None
        c.xmpp.add_event_handler("message", self.on_message)

    def on_message(self, msg):
        body = msg["body"]
        if not body:
            return  # chat states and the like
        oob = msg.xml.find("{%s}x/{%s}url" % (NS_OOB, NS_OOB))
        self.messages.append((body, oob.text if oob is not None else None, str(msg["from"])))
        if self.arrived and not self.arrived.done():
            self.arrived.set_result(True)

    async def wait(self, timeout):
        if not self.messages:
            self.arrived = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.arrived, timeout)
            except asyncio.TimeoutError:
                pass
        return list(self.messages)


async def browser(page_url, image, s3_origin, expect, screenshot):
    """Run upload.mjs while the event loop keeps bob's stream served; (exit status, report, seconds)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        NODE, os.path.join(BROWSER_DIR, "upload.mjs"), "--page", page_url, "--peer", BOB, "--file", image,
        "--s3", s3_origin, "--expect", expect, "--screenshot", screenshot, "--timeout", str(BROWSER_TIMEOUT),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, CHROMIUM=CHROMIUM))
    try:
        out, err = await asyncio.wait_for(proc.communicate(), BROWSER_TIMEOUT + 60)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return None, {"failure": "upload.mjs still running after %d s" % (BROWSER_TIMEOUT + 60)}, \
            time.monotonic() - started
    seconds = time.monotonic() - started
    try:
        report = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        report = {"failure": "no JSON from upload.mjs: %s %s" % (out[-500:], err[-1500:])}
    if err.strip():
        print("upload.mjs stderr:", err.decode(errors="replace")[-1500:])
    return proc.returncode, report, seconds


def show(phase, status, report, seconds):
    browser_seconds[phase] = seconds
    timings = report.get("timings", {})
    print("   browser run: %.1f s (exit %s); seconds from start: launched %s, logged in %s, chat open %s, "
          "file chosen %s, upload done %s, image shown %s, total %s" % (seconds, status, *(timings.get(k, "-") for k in (
              "launched", "logged_in", "chat_open", "file_chosen", "upload_done", "image_shown", "total"))))
    for key in ("outcome", "error_text", "shown_text", "get_url", "failure"):
        if report.get(key):
            print("   %s: %s" % (key, report[key]))
    for key in ("cors_errors", "console_errors", "page_errors"):
        for item in report.get(key, []):
            print("   %s: %s" % (key[:-1], item))
    with open(os.path.join(ARTIFACTS, "browser-%s.json" % phase), "w") as f:
        json.dump(report, f, indent=2)


def test_without_cors(rgw, p, inbox, page_url, page_origin, image):
    print("-- phase A: no CORS rule on the bucket")
    check("bucket starts without CORS", not has_cors(rgw.s3))
    status, headers = preflight(rgw.s3, page_origin)
    check("A: S3 refuses the preflight", status == 403 and "access-control-allow-origin" not in headers,
          (status, headers))
    log_before = len(p.log_text())
    status, report, seconds = client.run(browser(page_url, image, rgw.endpoint, "failure",
                                                 os.path.join(ARTIFACTS, "browser-upload-no-cors.png")))
    show("no-cors", status, report, seconds)
    check("A: upload.mjs saw the expected failure", status == 0 and report.get("ok"), report.get("failure"))
    check("A: Converse records the upload as failed", (report.get("upload") or {}).get("upload") == "failure"
          and "could not successfully upload" in (report.get("error_text") or ""), report.get("upload"))
    check("A: a slot was granted (the failure is at S3)",
          "Upload slot for alice@example.test" in p.log_text()[log_before:])
    cors = [e for e in report.get("cors_errors", []) if e.get("method") == "PUT"]
    check("A: the browser blocked the PUT at its preflight", len(cors) == 1
          and cors[0].get("error") == "PreflightMissingAllowOriginHeader", report.get("cors_errors"))
    check("A: nothing stored under %s/" % PREFIX, stored_keys(rgw.s3) == [], stored_keys(rgw.s3))
    check("A: no request outside loopback", report.get("requests", {}).get("outside") == [],
          report.get("requests", {}).get("outside"))
    messages = client.run(inbox.wait(2))
    check("A: bob got no upload message", messages == [], messages)


def setup(p):
    """prosodyctl mod_http_upload_s3 setup: the bucket's policy and CORS rule, as docs/admin.md §3 shows them."""
    status, output = p.prosodyctl("mod_http_upload_s3", "setup", "--host", COMPONENT)
    check("setup succeeded", status == 0, output)
    return output


def test_rule_needs_content_type(rgw, p, page_origin):
    """The rule setup writes, without its AllowedHeaders entry: the preflight for Converse's
    PUT, which carries Content-Type, is refused; setup puts the rule right again."""
    setup(p)
    rules = rgw.s3.client.get_bucket_cors(Bucket=rgw.s3.bucket)["CORSRules"]
    check("setup wrote one CORS rule for the page's origin", len(rules) == 1
          and rules[0].get("AllowedOrigins") == [page_origin], rules)
    del rules[0]["AllowedHeaders"]
    rgw.s3.put_bucket_cors({"CORSRules": rules})
    status, headers = preflight(rgw.s3, page_origin)
    check("rule without AllowedHeaders: preflight refused", status == 403, (status, headers))
    output = setup(p)
    check("setup found the changed rule and wrote it again", "cors: change HttpUploadS3 " in output
          and "cors: written" in output, output)


def test_with_cors(rgw, p, inbox, page_url, page_origin, image, body):
    print("-- phase B: the bucket as prosodyctl mod_http_upload_s3 setup leaves it, for %s" % page_origin)
    check("bucket has the CORS rule", has_cors(rgw.s3))
    status, headers = preflight(rgw.s3, page_origin)
    check("B: S3 answers the preflight for the page's origin", status == 200
          and headers.get("access-control-allow-origin") == page_origin
          and "PUT" in headers.get("access-control-allow-methods", "")
          and "content-type" in headers.get("access-control-allow-headers", "").lower(), (status, headers))
    status, headers = preflight(rgw.s3, "http://localhost:%s" % page_origin.rsplit(":", 1)[1])
    check("B: ... and only for that origin", status == 403, (status, headers))
    screenshot = os.path.join(ARTIFACTS, "browser-upload.png")
    if os.path.exists(screenshot):
        os.unlink(screenshot)
    status, report, seconds = client.run(browser(page_url, image, rgw.endpoint, "success", screenshot))
    show("upload", status, report, seconds)
    check("B: upload.mjs succeeded", status == 0 and report.get("ok"), report.get("failure"))
    get_url = report.get("get_url") or ""
    check("B: the message shows a GET URL on the bucket",
          get_url.startswith("%s/%s/%s/" % (rgw.endpoint, rgw.bucket, PREFIX)) and get_url.endswith("/upload-e2e.png"),
          get_url)
    check("B: Converse's message model has it as OOB URL", report.get("model_oob_url") == get_url,
          report.get("model_oob_url"))
    check("B: no CORS error", report.get("cors_errors") == [], report.get("cors_errors"))
    check("B: no request outside loopback", report.get("requests", {}).get("outside") == [],
          report.get("requests", {}).get("outside"))
    check("B: no uncaught page error", report.get("page_errors") == [], report.get("page_errors"))
    check("B: no error in the browser console", report.get("console_errors") == [], report.get("console_errors"))
    check("B: the browser PUT to the bucket", any(r["method"] == "PUT" for r in report.get("requests", {}).get("s3", [])),
          report.get("requests"))

    keys = stored_keys(rgw.s3)
    check("B: exactly one object stored", len(keys) == 1, keys)
    if get_url:
        key = object_key(get_url)
        check("B: the object is the message's URL", keys == [key], (keys, key))
        stored, content_type = rgw.s3.get_object(key) if keys == [key] else (b"", None)
        check("B: stored bytes identical (%d bytes)" % len(body), stored == body, "%d bytes stored" % len(stored))
        check("B: stored content type is what the browser sent", content_type == "image/png", content_type)
        status_get, downloaded, headers = http_request("GET", get_url)
        check("B: GET URL serves the image", status_get == 200 and downloaded == body, status_get)

    messages = client.run(inbox.wait(10))
    check("B: bob got one message", len(messages) == 1, messages)
    if messages:
        text, oob, sender = messages[0]
        check("B: message body is the GET URL", text == get_url, text)
        check("B: message OOB URL is the GET URL", oob == get_url, oob)
        check("B: message is from alice", sender.split("/")[0] == ALICE, sender)

    image_info = report.get("image") or {}
    check("B: image rendered at its size", (image_info.get("natural_width"), image_info.get("natural_height")) == (320, 200)
          and image_info.get("shown_width", 0) > 50, image_info)
    check("B: rendered from the GET URL", image_info.get("src") == get_url, image_info.get("src"))
    size = os.path.getsize(screenshot) if os.path.exists(screenshot) else 0
    check("B: screenshot kept (%d bytes)" % size, size > 20000, screenshot)


def main():
    started = time.monotonic()
    requires("Chromium (%s)" % CHROMIUM, program(CHROMIUM), debian_package("chromium"))
    requires("Node.js (%s)" % NODE, program(NODE), "install Node.js 20 or later with npm")
    requires("Converse.js in tests/browser/node_modules",
             os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "converse.js", "dist")),
             "run  make test-integration  (it runs npm ci in tests/browser)")
    os.makedirs(ARTIFACTS, exist_ok=True)
    with stack.Session() as session:
        session.on_exit(client.shutdown)
        body = png(320, 200, "mod_http_upload_s3 browser test %s" % os.urandom(8).hex())
        image = os.path.join(session.workdir, "upload-e2e.png")
        with open(image, "wb") as f:
            f.write(body)
        rgw = session.rgw()
        http_port = stack.free_port()
        page_origin = "http://127.0.0.1:%d" % http_port
        # setup writes the public-read policy and this origin's CORS rule (after phase A)
        options = rgw.module_options(cors_origins=[page_origin], expires_after=False)
        p = session.prosody({HOST: {"modules_enabled": []}}, {COMPONENT: options},
                            extra_modules=MODULES, global_options={
                                "http_ports": [http_port], "http_interfaces": ["127.0.0.1"], "https_ports": [],
                                "http_default_host": HOST, "http_files_dir": BROWSER_DIR,
                            })
        p.register("alice", HOST, PASSWORD)
        p.register("bob", HOST, PASSWORD)
        bob = client.Client(BOB, PASSWORD, p.port)
        session.on_exit(bob.close)
        inbox = Inbox(bob)
        page_url = "%s/files/index.html?%s" % (page_origin, urllib.parse.urlencode(
            {"jid": ALICE, "password": PASSWORD, "peer": BOB}))
        status, page, _ = http_request("GET", page_url)
        check("Prosody serves the page", status == 200 and b"e2e.js" in page, status)
        status, _, _ = http_request("GET", page_origin + "/files/node_modules/converse.js/dist/converse.min.js")
        check("Prosody serves Converse.js", status == 200, status)
        test_without_cors(rgw, p, inbox, page_url, page_origin, image)
        test_rule_needs_content_type(rgw, p, page_origin)
        test_with_cors(rgw, p, inbox, page_url, page_origin, image, body)
        print("browser: %.1fs on Prosody %s (the browser runs: %s); artifacts in %s" % (
            time.monotonic() - started, p.version(),
            ", ".join("%s %.1f s" % kv for kv in browser_seconds.items()) or "none",
            os.path.relpath(ARTIFACTS, stack.ROOT)))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
