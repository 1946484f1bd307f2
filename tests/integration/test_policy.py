#!/usr/bin/python3
"""Policy and abuse: access control, quota, rate limit, content types, forced
downloads, a failing signer, a flood; against a real Prosody, real clients and
Ceph RGW on loopback.

  /usr/bin/python3 tests/integration/test_policy.py [--flood N]

Services under test (users alice and bob of example.test, friend and stranger of other.test):
  example.test         module on the host, defaults (60 slot requests a minute)
  upload.example.test  component: parent host's users, plus friend@other.test by the access list
  quota.example.test   component: 100 bytes a day, no rate limit
  rate.example.test    component: 5 slot requests a minute
  types.example.test   component: image/* only, presigned GETs
  anon.test            module on an anonymous-login host
  bot.remote           an external component, sending as a domain that is not a local user's
"""
import argparse
import datetime
import os
import sys
import time

import client
import stack
from checks import check, refused, summary
from client import NS, NS_LEGACY, SlotError, http_request

HERE = os.path.dirname(os.path.abspath(__file__))
PASSWORD = "correct horse"
COMPONENT_SECRET = "bot-secret"

def granted(name, fn):
    try:
        return fn()
    except SlotError as e:
        check(name, False, "refused: %s" % e)
        return None


def retry_stamp(error, ns=NS):
    tag = next((x for x in error.extra if x.tag == "{%s}retry" % ns), None) if error else None
    if tag is None:
        return None
    return datetime.datetime.strptime(tag.get("stamp"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def start_prosody(session, rgw):
    options = rgw.module_options
    return session.prosody(
        hosts={
            "example.test": options(),
            "other.test": {"modules_enabled": []},
            "anon.test": dict(options(), authentication="anonymous"),
        },
        components={
            "upload.example.test": options(access=["friend@other.test"]),
            "quota.example.test": options(daily_quota=100, rate_limit=False),
            "rate.example.test": options(rate_limit=5),
            "types.example.test": options(allowed_file_types=["image/*"], presign_get=True, get_expires=600),
        },
        global_options={"component_ports": [stack.free_port()], "component_interfaces": ["127.0.0.1"]},
        extra_config=['Component "bot.remote"', '\tcomponent_secret = "%s"' % COMPONENT_SECRET],
        extra_env={"LUA_PATH_5_4": os.path.join(HERE, "fault", "?.lua") + ";;"},
    )


def component_port(p):
    return p.global_options["component_ports"][0]


def test_access(p, alice):
    granted("a local user gets a slot", lambda: alice.request_slot("example.test", "a.txt", 1))
    granted("the parent host's user gets a slot from a component",
            lambda: alice.request_slot("upload.example.test", "a.txt", 1))

    stranger = client.Client("stranger@other.test", PASSWORD, p.port)
    refused("another local host's user is forbidden", "auth", "forbidden",
            lambda: stranger.request_slot("upload.example.test", "a.txt", 1))
    refused("...on the host service too", "auth", "forbidden", lambda: stranger.request_slot("example.test", "a.txt", 1))
    stranger.close()

    friend = client.Client("friend@other.test", PASSWORD, p.port)
    granted("a JID on the access list gets a slot", lambda: friend.request_slot("upload.example.test", "a.txt", 1))
    friend.close()

    guest = client.Client("anon.test", "", p.port)
    check("anonymous login worked", guest.xmpp.boundjid.domain == "anon.test")
    refused("an anonymous user is forbidden", "auth", "forbidden", lambda: guest.request_slot("anon.test", "a.txt", 1))
    guest.close()

    bot = client.Client("bot.remote", COMPONENT_SECRET, component_port(p), component=True)
    for ns in (NS, NS_LEGACY):
        refused("a JID that is not a local user's session is forbidden (%s)" % ns, "auth", "forbidden",
                lambda: bot.request_slot("example.test", "a.txt", 1, ns=ns, sender="mallory@bot.remote"))
    refused("...even when it claims to be a local user's domain", "auth", "forbidden",
            lambda: bot.request_slot("upload.example.test", "a.txt", 1, sender="bot.remote"))
    bot.close()


def test_quota(p, alice, bob):
    service = "quota.example.test"
    granted("60 of 100 bytes", lambda: alice.request_slot(service, "q1.bin", 60))
    granted("100 of 100 bytes", lambda: alice.request_slot(service, "q2.bin", 40))
    tomorrow = datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=1)
    midnight = datetime.datetime.combine(tomorrow, datetime.time(), datetime.timezone.utc)
    for ns in (NS, NS_LEGACY):
        e = refused("over the daily quota (%s)" % ns, "wait", "resource-constraint",
                    lambda: alice.request_slot(service, "q3.bin", 1, ns=ns))
        check("quota retry stamp is next UTC midnight (%s)" % ns, retry_stamp(e, ns) == midnight, retry_stamp(e, ns))
    granted("another user is unaffected", lambda: bob.request_slot(service, "q1.bin", 100))


def test_quota_survives_restart(p):
    alice = client.Client("alice@example.test", PASSWORD, p.port)
    refused("quota still reached after a restart", "wait", "resource-constraint",
            lambda: alice.request_slot("quota.example.test", "q4.bin", 1))
    alice.close()


def test_rate(alice, bob):
    service = "rate.example.test"
    for i in range(5):
        granted("request %d of 5 in a minute" % (i + 1), lambda: alice.request_slot(service, "r.bin", 1))
    e = refused("the 6th request in a minute", "wait", "resource-constraint", lambda: alice.request_slot(service, "r.bin", 1))
    stamp = retry_stamp(e)
    now = datetime.datetime.now(datetime.timezone.utc)
    check("rate retry stamp within the next minute", stamp is not None and now < stamp <= now + datetime.timedelta(seconds=61),
          stamp)
    refused("bad requests count too", "wait", "resource-constraint", lambda: alice.request_slot(service, "", "x"))
    granted("another user is unaffected", lambda: bob.request_slot(service, "r.bin", 1))


def test_types(alice, s3):
    service = "types.example.test"
    for ctype in ("text/plain", "application/pdf", None):
        e = refused("type %s outside the allow-list" % ctype, "modify", "not-acceptable",
                    lambda: alice.request_slot(service, "f.bin", 1, ctype))
        check("with a text", e is not None and e.text == "File type not allowed")
    body = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"
    put, get, _ = alice.request_slot(service, "drawing.svg", len(body), "image/svg+xml")
    check("svg upload", http_request("PUT", put, body, {"Content-Type": "image/svg+xml"})[0] == 200)
    status, data, headers = http_request("GET", get)
    check("svg is served as a download", status == 200 and data == body
          and headers.get("Content-Disposition", "").startswith("attachment; filename*=UTF-8''drawing.svg")
          and headers.get("Content-Type") == "application/octet-stream", (status, headers))

    body = b"<html><script>alert(1)</script></html>"
    put, get, _ = alice.request_slot(service, "cat.png", len(body), "image/png")
    check("an allow-list signs the type: an upload as text/html of a slot for image/png is refused",
          http_request("PUT", put, body, {"Content-Type": "text/html"})[0] == 403)
    check("... and as image/png it uploads", http_request("PUT", put, body, {"Content-Type": "image/png"})[0] == 200)
    status, data, headers = http_request("GET", get)
    check("a safe type is served as declared, not as uploaded", status == 200
          and headers.get("Content-Type") == "image/png" and "Content-Disposition" not in headers, headers)


def test_signer_failure(alice):
    for ns in (NS, NS_LEGACY):
        refused("a failing signer gives internal-server-error (%s)" % ns, "wait", "internal-server-error",
                lambda: alice.request_slot("example.test", "fail-signer.txt", 1, ns=ns))
    granted("the module still works afterwards", lambda: alice.request_slot("example.test", "fine.txt", 1))


def test_flood(p, alice, bob, count):
    """count slot requests as fast as one connection takes them, while another client pings."""
    rss_before = p.rss_kib()
    answers, pings, elapsed = client.flood(alice, "example.test", count, bob, "example.test")
    time.sleep(1)
    rss_after = p.rss_kib()
    print("flood: %d requests in %.1fs (%d slots, %d errors); %d pings, slowest %.0f ms; RSS %d -> %d KiB"
          % (count, elapsed, answers["result"], answers["error"], len(pings), 1000 * max(pings), rss_before, rss_after))
    check("every flood request answered", sum(answers.values()) == count, answers)
    check("the rate limit held (60 a minute, refilling during the flood)",
          answers["result"] <= 60 + elapsed + 1, answers)
    check("pings stayed under 1 s", len(pings) > 0 and max(pings) < 1.0, max(pings) if pings else None)
    check("RSS within 10%% after the flood (%d -> %d KiB)" % (rss_before, rss_after), rss_after <= rss_before * 1.10)


def test_logs(p, rgw):
    log = p.log_text()
    for secret in ("X-Amz-Signature", "X-Amz-Credential", rgw.env["RGW_SECRET_KEY"], COMPONENT_SECRET):
        check("log free of %s" % secret[:16], secret not in log)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--flood", type=int, default=20000, help="slot requests in the flood test")
    args = parser.parse_args()
    started = time.monotonic()
    with stack.Session() as session:
        session.on_exit(client.shutdown)
        rgw = session.rgw()
        p = start_prosody(session, rgw)
        for user, host in (("alice", "example.test"), ("bob", "example.test"),
                           ("friend", "other.test"), ("stranger", "other.test")):
            p.register(user, host, PASSWORD)
        alice = client.Client("alice@example.test", PASSWORD, p.port)
        bob = client.Client("bob@example.test", PASSWORD, p.port)
        for c in (alice, bob):
            session.on_exit(c.close)
        for name, test in (("access", lambda: test_access(p, alice)),
                           ("quota", lambda: test_quota(p, alice, bob)),
                           ("rate", lambda: test_rate(alice, bob)),
                           ("types", lambda: test_types(alice, rgw.s3)),
                           ("signer failure", lambda: test_signer_failure(alice)),
                           ("flood", lambda: test_flood(p, alice, bob, args.flood))):
            print("--", name)
            test()
        alice.close()
        bob.close()
        print("-- restart")
        p.restart()
        test_quota_survives_restart(p)
        test_logs(p, rgw)
        print("policy: %.1fs on Prosody %s" % (time.monotonic() - started, p.version()))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
