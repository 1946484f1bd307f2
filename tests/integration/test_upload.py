#!/usr/bin/python3
"""End to end: a real Prosody with mod_http_upload_s3, a real XMPP client
(slixmpp) and a real S3 that checks signatures (Ceph RGW), all on loopback.

  /usr/bin/python3 tests/integration/test_upload.py

Services under test:
  example.test         the module on a VirtualHost: public GET URLs, content type not signed
  upload.example.test  a Component: content type signed, presigned GET URLs
  short.example.test   a Component whose PUT URLs live 1 second
"""
import os
import sys
import time
import unicodedata
import xml.etree.ElementTree as ET

import client
import stack
from checks import check, refused, summary
from client import NS, NS_LEGACY, http_request, object_key

HOST, COMPONENT, SHORT = "example.test", "upload.example.test", "short.example.test"
PREFIX = "http_uploads"
MIB = 1024 * 1024

NAMES = [
    "plain.txt",
    "with spaces and  double  spaces.txt",
    unicodedata.normalize("NFC", "très cool é.jpg"),
    unicodedata.normalize("NFD", "très cool é.jpg"),
    "emoji \U0001F600\U0001F44D\U0001F3FD.png",
    "100% real.txt",
    "a+b=c&d;e:f@g$h!i*j'k(l)m,n[o]p~q.txt",
    "question?.txt",
    "#hash#.txt",
    "日本語のファイル.txt",
    ".hidden",
    "x" * 200 + ".bin",
]

def round_trip(c, s3, service, ns, filename, body, content_type=None, send_type=None):
    """Request a slot, PUT as a client would, GET it back; returns the slot."""
    put, get, headers = c.request_slot(service, filename, len(body), content_type, ns=ns)
    check("no header elements (%s)" % service, headers == {}, headers)
    put_headers = {"Content-Type": send_type or content_type} if (send_type or content_type) else {}
    status, response, _ = http_request("PUT", put, body, put_headers)
    check("PUT %r to %s (%s)" % (filename, service, ns), status == 200, "%d %s" % (status, response[:300]))
    status, downloaded, _ = http_request("GET", get)
    check("GET %r from %s" % (filename, service), status == 200 and downloaded == body,
          "%d, %d bytes" % (status, len(downloaded)))
    key = object_key(put)
    check("key layout %r" % filename, key.startswith(PREFIX + "/") and key.endswith("/" + filename), key)
    return put, get, key


def test_discovery(c):
    check("host advertises upload", c.find_upload_service(HOST) == HOST)
    check("component listed", COMPONENT in c.disco_items(HOST))
    info = c.disco_info(COMPONENT)
    check("identity store/file", ("store", "file") in [(i[0], i[1]) for i in info["identities"]])
    for ns in (NS, NS_LEGACY):
        check("feature %s" % ns, ns in info["features"])
        forms = [f for f in info.xml.findall("{jabber:x:data}x")
                 if f.findtext("{jabber:x:data}field[@var='FORM_TYPE']/{jabber:x:data}value") == ns]
        check("max-file-size form for %s" % ns, len(forms) == 1 and forms[0].findtext(
            "{jabber:x:data}field[@var='max-file-size']/{jabber:x:data}value") == str(8 * MIB))


def test_round_trips(c, s3):
    for service in (HOST, COMPONENT):
        for ns in (NS, NS_LEGACY):
            for size in (0, 1, 5 * MIB + 3):
                round_trip(c, s3, service, ns, "size-%d.bin" % size, os.urandom(size), "application/octet-stream")
    for i, name in enumerate(NAMES):
        service, ns = (HOST, COMPONENT)[i % 2], (NS, NS_LEGACY)[i // 2 % 2]
        _, _, key = round_trip(c, s3, service, ns, name, name.encode() * 3, "text/plain; charset=utf-8")
        check("object stored under its exact name %r" % name, s3.head(key) is not None)
    # a client that sends no Content-Type, or another one, still works where types are not signed
    round_trip(c, s3, HOST, NS, "no-type.bin", b"abc", "image/png", send_type=None)
    round_trip(c, s3, HOST, NS, "other-type.bin", b"abc", "image/png", send_type="application/octet-stream")
    round_trip(c, s3, HOST, NS, "empty-type.bin", b"abc", "")
    # odd spacing in a signed type: SigV4 trims and collapses it, on both sides
    round_trip(c, s3, COMPONENT, NS, "spaced-type.txt", b"abc", "text/plain;  charset=utf-8")


def test_s3_refuses(c, s3):
    body = b"0123456789"
    put, _, _ = c.request_slot(HOST, "length.bin", len(body))
    for wrong in (body + b"!", body[:-1]):
        status, _, _ = http_request("PUT", put, wrong)
        check("S3 refuses %d bytes for a %d-byte slot" % (len(wrong), len(body)), status == 403, status)

    put, _, _ = c.request_slot(COMPONENT, "typed.png", len(body), "image/png")
    for wrong in ("image/jpeg", None):
        status, _, _ = http_request("PUT", put, body, {"Content-Type": wrong} if wrong else {})
        check("S3 refuses Content-Type %s for a signed image/png" % wrong, status == 403, status)
    status, _, _ = http_request("PUT", put, body, {"Content-Type": "image/png"})
    check("signed content type accepted", status == 200, status)
    _, _, key = round_trip(c, s3, COMPONENT, NS, "stored-type.png", body, "image/png")
    check("S3 stored the signed type", s3.head(key)["ContentType"] == "image/png", s3.head(key))

    put, _, _ = c.request_slot(HOST, "tamper.bin", len(body))
    signature = put[put.rindex("=") + 1:]
    flipped = put[:put.rindex("=") + 1] + ("0" if signature[0] != "0" else "1") + signature[1:]
    check("S3 refuses a tampered signature", http_request("PUT", flipped, body)[0] == 403)
    other = put.replace("/tamper.bin?", "/other.bin?")
    check("S3 refuses the URL replayed for another key", http_request("PUT", other, body)[0] == 403)
    longer = put.replace("X-Amz-Expires=300", "X-Amz-Expires=3000")
    check("S3 refuses a stretched expiry", http_request("PUT", longer, body)[0] == 403)
    check("untouched URL still works", http_request("PUT", put, body)[0] == 200)

    put, _, _ = c.request_slot(SHORT, "expires.bin", len(body))
    time.sleep(2.5)
    check("S3 refuses an expired URL", http_request("PUT", put, body)[0] == 403)


def test_error_replies(c):
    for ns in (NS, NS_LEGACY):
        e = refused("too large (%s)" % ns, "modify", "not-acceptable",
                              lambda: c.request_slot(HOST, "big.bin", 8 * MIB + 1, ns=ns))
        if e:
            extra = e.extra[0] if e.extra else None
            check("file-too-large in %s" % ns, extra is not None and extra.tag == "{%s}file-too-large" % ns
                  and extra.findtext("{%s}max-file-size" % ns) == str(8 * MIB))
        refused("huge size (%s)" % ns, "modify", "not-acceptable",
                          lambda: c.request_slot(HOST, "big.bin", "9223372036854775808", ns=ns))
    for size in ("abc", "-1", "+5", "0x10", "1e3", "1.0", " 12", ""):
        refused("size %r" % size, "modify", "bad-request", lambda: c.request_slot(HOST, "a.bin", size))
    for name in ("", ".", "..", " . ", "a/b", "a\\b", "del\x7f", "c1\u0085", "bidi\u202egnp.exe", "lrm\u200e",
                 "x" * 256, "é" * 128):
        refused("filename %r" % name, "modify", "bad-request", lambda: c.request_slot(HOST, name, 1))
    # XML turns a literal TAB or newline in an attribute into a space; element text keeps it
    for name in ("tab\there", "new\nline", "cr\rhere"):
        refused("filename %r" % name, "modify", "bad-request",
                          lambda: c.request_slot(HOST, name, 1, ns=NS_LEGACY))
    for ctype in ("text", "text/plain\r\nX: y", "a b/c", "text/plain; charset"):
        refused("content type %r" % ctype, "modify", "bad-request",
                          lambda: c.request_slot(HOST, "a.txt", 1, ctype))
    refused("iq type=set is not a slot request", "cancel", "service-unavailable",
                      lambda: c.request_slot(HOST, "a.txt", 1, iq_type="set"))
    for ns in (NS, NS_LEGACY):
        refused("filename missing (%s)" % ns, "modify", "bad-request", lambda: c.request_slot(HOST, None, 1, ns=ns))
        refused("size missing (%s)" % ns, "modify", "bad-request", lambda: c.request_slot(HOST, "a.txt", None, ns=ns))
    # an IQ carries exactly one child (RFC 6120): Prosody answers a second one itself, once
    refused("a second child after <request/>", "modify", "bad-request",
            lambda: c.request_slot(HOST, "second-child.txt", 1, extra_child=ET.Element("{urn:example:other}extra")))
    put, _, _ = c.request_slot(HOST, "leading-zeros.txt", "0005")
    check("leading zeros sign the plain number", "X-Amz-SignedHeaders=content-length%3Bhost" in put)
    check("still answers after all that", c.request_slot(HOST, "a.txt", 1)[0].startswith("http://127.0.0.1:"))


def scrape(port):
    """{(metric name, frozenset of labels): value} from mod_http_openmetrics."""
    status, body, _ = http_request("GET", "http://127.0.0.1:%d/metrics" % port)
    check("metrics endpoint answers", status == 200, status)
    samples = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or "http_upload_s3" not in line:
            continue
        name_labels, value = line.rsplit(" ", 1)
        name, _, labels = name_labels.partition("{")
        samples[(name, frozenset(labels.rstrip("}").split(",")) if labels else frozenset())] = float(value)
    return samples


def metric(samples, name, **labels):
    want = {'%s="%s"' % kv for kv in labels.items()}
    return sum(v for (n, l), v in samples.items() if n.endswith(name) and want <= l)


def test_metrics(c, port):
    before = scrape(port)
    for size in (10, 20):
        c.request_slot(HOST, "metered.txt", size)
    refused("metered refusal", "modify", "not-acceptable", lambda: c.request_slot(HOST, "m.bin", 8 * MIB + 1))
    after = scrape(port)
    delta = lambda name, **labels: metric(after, name, host=HOST, **labels) - metric(before, name, host=HOST, **labels)
    check("slots counted", delta("_slots_total") == 2, delta("_slots_total"))
    check("bytes counted", delta("_granted_bytes_total") == 30, delta("_granted_bytes_total"))
    check("refusals counted by reason", delta("_refused_total", reason="toolarge") == 1, after)
    check("signing time sampled", delta("_signing_seconds_count") == 2, delta("_signing_seconds_count"))


def test_config_refusals(session, rgw):
    """A bad configuration stops the module with one line naming the option."""
    bad = {
        "missing.test": {k: v for k, v in rgw.module_options().items() if k != "http_upload_s3_bucket"},
        "expiry.test": rgw.module_options(expires=604801),
        "endpoint.test": rgw.module_options(endpoint="ftp://127.0.0.1"),
        "period.test": rgw.module_options(expires="5 minutes"),   # a period: Prosody 13 parses those
    }
    p = session.prosody(bad)
    time.sleep(0.3)
    log = p.log_text()
    p.stop()
    period_refusals = [line for line in log.splitlines() if "period.test" in line and "Refusing to load" in line]
    if p.version().startswith("0."):
        check("a period needs Prosody 13", len(period_refusals) == 1 and "need Prosody 13" in period_refusals[0],
              period_refusals)
    else:
        status, out = p.prosodyctl("mod_http_upload_s3", "presign", "a.txt", "1", "--host", "period.test")
        check("a period is a lifetime on Prosody 13", period_refusals == [] and status == 0
              and "X-Amz-Expires=300&" in out, (period_refusals, out))
    for host, option in (("missing.test", "http_upload_s3_bucket is required"),
                         ("expiry.test", "http_upload_s3_expires must be between 1 and 604800"),
                         ("endpoint.test", "http_upload_s3_endpoint")):
        lines = [line for line in log.splitlines() if host in line and "Refusing to load" in line]
        check("config refused on %s" % host, len(lines) == 1 and option in lines[0], lines)


def test_logs_hold_no_credentials(p, rgw):
    log = p.log_text()
    check("log mentions slot grants", "Upload slot for alice@example.test" in log)
    for secret in ("X-Amz-Signature", "X-Amz-Credential", rgw.env["RGW_SECRET_KEY"]):
        check("log free of %s" % secret[:16], secret not in log)


def main():
    started = time.monotonic()
    with stack.Session() as session:
        session.on_exit(client.shutdown)
        rgw = session.rgw()
        rgw.s3.allow_public_get(PREFIX)
        limit = {"file_size_limit": 8 * MIB}
        http_port = stack.free_port()
        p = session.prosody({HOST: rgw.module_options(**limit)}, {
            COMPONENT: rgw.module_options(sign_content_type=True, presign_get=True, get_expires=3600, **limit),
            SHORT: rgw.module_options(expires=1, **limit),
        }, extra_modules=["http_openmetrics"], global_options={
            "statistics": "internal", "statistics_interval": "manual",
            "http_ports": [http_port], "http_interfaces": ["127.0.0.1"], "https_ports": [],
        })
        p.register("alice", HOST, "wonderland")
        c = client.Client("alice@" + HOST, "wonderland", p.port)
        session.on_exit(c.close)
        for test in (test_discovery, test_round_trips, test_s3_refuses, test_error_replies):
            print("--", test.__name__)
            test(*((c, rgw.s3) if test in (test_round_trips, test_s3_refuses) else (c,)))
        print("-- test_metrics")
        test_metrics(c, http_port)
        c.close()
        test_logs_hold_no_credentials(p, rgw)
        test_config_refusals(session, rgw)
        print("integration: %.1fs on Prosody %s" % (time.monotonic() - started, p.version()))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
