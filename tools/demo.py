#!/usr/bin/python3
"""The main job, end to end on loopback: a local S3 (Ceph RGW), Prosody with
mod_http_upload_s3, and an XMPP client that uploads a file through a slot.

  make demo                     upload, verify, stop everything
  make demo DEMO_ARGS=--keep    leave the stack running for another client (Ctrl-C stops it)
  make demo DEMO_ARGS='--file photo.jpg'
"""
import argparse
import hashlib
import mimetypes
import os
import signal
import sys

import client
import stack

DOMAIN, USER, PASSWORD = "example.test", "alice", "wonderland"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", help="file to upload (default: a generated 1 MiB file)")
    parser.add_argument("--keep", action="store_true", help="keep the stack running until Ctrl-C")
    args = parser.parse_args()

    if args.file:
        name, body = os.path.basename(args.file), open(args.file, "rb").read()
    else:
        name, body = "demo upload é 😀.bin", os.urandom(1024 * 1024)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"

    with stack.Session() as session:
        session.on_exit(client.shutdown)
        print("starting Ceph RGW (S3) on 127.0.0.1 ...", flush=True)
        rgw = session.rgw()
        rgw.s3.allow_public_get("http_uploads")
        print("  S3 endpoint %s, bucket %s" % (rgw.endpoint, rgw.bucket))
        prosody = session.prosody({DOMAIN: rgw.module_options()})
        prosody.register(USER, DOMAIN, PASSWORD)
        print("  Prosody c2s on 127.0.0.1:%d, user %s@%s" % (prosody.port, USER, DOMAIN))

        c = client.Client("%s@%s" % (USER, DOMAIN), PASSWORD, prosody.port)
        session.on_exit(c.close)
        service = c.find_upload_service(DOMAIN)
        print("upload service found by disco: %s" % service)
        put, get, headers = c.request_slot(service, name, len(body), content_type)
        print("slot for %r, %d bytes, %s:" % (name, len(body), content_type))
        print("  PUT %s" % put)
        print("  GET %s" % get)
        status, response, _ = client.http_request("PUT", put, body, {"Content-Type": content_type})
        print("PUT -> HTTP %d" % status)
        if status != 200:
            sys.exit("upload refused: %s" % response.decode(errors="replace"))
        status, downloaded, _ = client.http_request("GET", get)
        same = status == 200 and downloaded == body
        print("GET -> HTTP %d, %d bytes, sha256 %s %s" % (status, len(downloaded), hashlib.sha256(downloaded).hexdigest(),
                                                          "matches the upload" if same else "DIFFERS"))
        c.close()
        if not same:
            sys.exit(1)
        if args.keep:
            print("\nstack kept running; config %s\n  connect an XMPP client to 127.0.0.1:%d as %s@%s / %s "
                  "(plain c2s, no TLS)\n  Ctrl-C stops everything" % (prosody.config, prosody.port, USER, DOMAIN,
                                                                       PASSWORD))
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        print("demo ok")


if __name__ == "__main__":
    main()
