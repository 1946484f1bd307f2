#!/usr/bin/python3
"""prosodyctl mod_http_upload_s3 check / presign, against Ceph RGW and stub
servers on loopback.

  /usr/bin/python3 tests/integration/test_prosodyctl.py

Each VirtualHost of one config is a scenario; check goes through all of them
and must name the layer that fails for each. (DNS failures are not provoked:
that would send queries off the machine.)
"""
import sys
import time

import client
import stack
from checks import check, summary

STUB_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"


class StubS3(stack.QuietHandler):
    """Answers like an S3 whose clock is years away, or, for the bucket "sig",
    like AWS refusing a signature and showing the canonical request it computed."""

    def date_time_string(self, timestamp=None):
        # no path: a request it could not parse (the TLS case's handshake), answered with the true date
        if getattr(self, "path", "/sig/").startswith("/sig/"):
            return super().date_time_string(timestamp)
        return "Mon, 01 Jan 2001 00:00:00 GMT"

    def answer(self):
        if self.path.startswith("/sig/"):
            body = (b"<Error><Code>SignatureDoesNotMatch</Code><CanonicalRequest>PUT\n/sig/x\n"
                    b"X-Amz-Algorithm=AWS4-HMAC-SHA256&amp;theirs&amp;X-Amz-Security-Token=" + STUB_TOKEN.encode()
                    + b"</CanonicalRequest></Error>")
        else:
            body = b"<Error><Code>RequestTimeTooSkewed</Code><Message>skewed</Message></Error>"
        self.reply(403, body)

    do_GET = do_PUT = do_DELETE = answer


class StubBucketSettings(stack.QuietHandler):
    """A storage service whose key may not touch the bucket policy, that has no CORS API,
    and that takes lifecycle rules: what setup must report layer by layer."""

    def error(self, status, code=None):
        self.reply(status, "<Error><Code>%s</Code></Error>" % code if code else b"")

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        query = self.path.partition("?")[2]
        if query.startswith("policy"):
            return self.error(403, "AccessDenied")
        if query.startswith("cors"):
            return self.error(501, "NotImplemented")
        if query.startswith("lifecycle"):
            return self.error(404, "NoSuchLifecycleConfiguration") if self.command == "GET" else self.error(200)
        self.error(404, "NoSuchKey")

    do_GET = do_PUT = do_DELETE = answer


def host_lines(output, host):
    """The lines about one host: its own, and the indented ones that continue them."""
    lines, current = [], None
    for line in output.splitlines():
        if not line.startswith(" "):
            current = line.split(":", 1)[0]
        if current == host:
            lines.append(line)
    return "\n".join(lines)


def main():
    started = time.monotonic()
    with stack.Session() as session:
        rgw = session.rgw()
        rgw.s3.allow_public_get("http_uploads")
        rgw.s3.create_bucket("private-uploads")
        stub = session.http_server(StubS3)
        stub_url = "http://127.0.0.1:%d" % stub.server_port
        secret = rgw.env["RGW_SECRET_KEY"]
        options = rgw.module_options
        scenarios = {
            "good.test": options(),
            "presigned.test": options(bucket="private-uploads", presign_get=True),
            # hosts sharing a bucket have folders of their own, or setup and check refuse them
            "private.test": options(bucket="private-uploads", path="private_uploads"),
            "wrongkey.test": options(secret_key="wrong" + secret, path="wrongkey_uploads"),
            "unknownid.test": options(access_id="NOSUCHKEY", path="unknownid_uploads"),
            "nobucket.test": options(bucket="no-such-bucket"),
            "closed.test": options(endpoint="http://127.0.0.1:%d" % stack.free_port()),
            "tls.test": options(endpoint="https://127.0.0.1:%d" % stub.server_port),
            "skew.test": options(endpoint=stub_url),
            "sigstub.test": options(endpoint=stub_url, bucket="sig", session_token=STUB_TOKEN),
            "badconfig.test": options(expires=0),
        }
        # RGW acts on headers an upload URL did not sign: the buckets that work get setup's policy first
        working = session.prosody({host: scenarios[host] for host in ("good.test", "presigned.test")}, start=False)
        status, out = working.prosodyctl("mod_http_upload_s3", "setup")
        check("setup of the working buckets", status == 0, out)
        p = session.prosody(scenarios, start=False)
        status, out = p.prosodyctl("mod_http_upload_s3", "check")
        print(out)
        check("check fails overall when a host fails", status == 1, status)
        expect = {
            "good.test": ["upload: ok", "download: ok (public GET)", "unsigned x-amz-copy-source: ok (refused)",
                          "clean-up: ok", "upload checks: ok (a missing object answers 404)", "uploads will work"],
            "presigned.test": ["download: ok (presigned GET)", "uploads will work"],
            "private.test": ["upload: ok", "download: FAIL", "public s3:GetObject", "presign_get", "will NOT work"],
            "wrongkey.test": ["upload: FAIL", "SignatureDoesNotMatch", "will NOT work"],
            "unknownid.test": ["upload: FAIL", "InvalidAccessKeyId", "does not know http_upload_s3_access_id"],
            "nobucket.test": ["upload: FAIL", "NoSuchBucket"],
            "closed.test": ["upload: FAIL: connect:"],
            "tls.test": ["upload: FAIL: TLS:"],
            "skew.test": ["upload: FAIL: clock skew"],
            "sigstub.test": ["SignatureDoesNotMatch", "S3's canonical request:", "X-Amz-Algorithm=AWS4-HMAC-SHA256&theirs",
                             "ours:", "X-Amz-SignedHeaders=content-length%3Bhost",
                             "X-Amz-Security-Token=<masked>"],
            "badconfig.test": ["configuration: FAIL: http_upload_s3_expires must be between 1 and 604800"],
        }
        for host, needles in expect.items():
            text = host_lines(out, host)
            for needle in needles:
                check("%s says %r" % (host, needle), needle in text, text)
        check("check never prints the secret", secret not in out)
        check("check never prints a session token", STUB_TOKEN not in out, host_lines(out, "sigstub.test"))
        check("check never prints a URL", "X-Amz-Signature" not in out)

        good = session.prosody({"good.test": options(sign_content_type=True)}, start=False)
        status, out = good.prosodyctl("mod_http_upload_s3", "check")
        check("check exits 0 when uploads work", status == 0, out)

        status, out = good.prosodyctl("mod_http_upload_s3", "presign", "report 2026.pdf", "11", "application/pdf")
        lines = dict(line.split(": ", 1) for line in out.splitlines() if line.startswith(("PUT: ", "GET: ", "key: ")))
        check("presign prints a slot", status == 0 and set(lines) == {"PUT", "GET", "key"}, out)
        check("presign shows the headers", "  Content-Length: 11" in out and "  Content-Type: application/pdf" in out, out)
        check("presign never prints the secret", secret not in out)
        if status == 0:
            put_status = client.http_request("PUT", lines["PUT"], b"hello world", {"Content-Type": "application/pdf"})[0]
            check("the printed PUT URL works", put_status == 200, put_status)
            check("the printed GET URL works", client.http_request("GET", lines["GET"])[1] == b"hello world")
        # presign gives the slot a client would get: a presigned GET of an HTML file is a download
        presigned = session.prosody({"presigned.test": scenarios["presigned.test"]}, start=False)
        status, out = presigned.prosodyctl("mod_http_upload_s3", "presign", "page.html", "5", "text/html")
        lines = dict(line.split(": ", 1) for line in out.splitlines() if line.startswith(("PUT: ", "GET: ")))
        check("presign: the GET options a client's slot has", status == 0 and "GET" in lines
              and "response-content-disposition=attachment" in lines["GET"]
              and "response-content-type=application%2Foctet-stream" in lines["GET"], out)
        if status == 0 and "GET" in lines:
            client.http_request("PUT", lines["PUT"], b"<b/>x", {"Content-Type": "text/html"})
            _, _, headers = client.http_request("GET", lines["GET"])
            check("presign: ... and S3 serves it so", headers.get("Content-Disposition", "").startswith("attachment")
                  and headers.get("Content-Type") == "application/octet-stream", headers)

        settings = session.http_server(StubBucketSettings)
        partial = session.prosody({"partial.test": options(endpoint="http://127.0.0.1:%d" % settings.server_port)},
                                  start=False)
        status, out = partial.prosodyctl("mod_http_upload_s3", "setup")
        print(out)
        check("setup: fails overall when a document fails", status == 1, out)
        check("setup: AccessDenied names the permissions", "policy: FAIL: AccessDenied: the credentials lack "
              "s3:GetBucketPolicy, s3:PutBucketPolicy, s3:DeleteBucketPolicy" in out, out)
        check("setup: a missing API is reported as such", "cors: FAIL: the storage service has no cors API "
              "(HTTP 501 NotImplemented)" in out, out)
        check("setup: goes on with the rest", "lifecycle: written" in out, out)

        status, out = good.prosodyctl("mod_http_upload_s3", "presign", "x.txt")
        check("presign without a size explains itself", status == 1 and "usage:" in out, out)
        status, out = good.prosodyctl("mod_http_upload_s3")
        check("no subcommand explains itself", status == 1 and "usage:" in out, out)
        print("prosodyctl: %.1fs" % (time.monotonic() - started))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
