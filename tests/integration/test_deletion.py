#!/usr/bin/python3
"""Deletion on time and on demand, against Ceph RGW, a real Prosody and slixmpp:
takedown by any form of a file's URL (ad-hoc, prosodyctl, Prosody 13's shell),
a foreign URL refused with nothing deleted, a file taken down coming back
through its still valid upload URL and going again; ephemeral files gone within
a minute of expire-before, also across a restart; the module's own retention
deleting only what is due; a retracted message taking its file with it, in a
one-to-one chat and in a MUC room, and someone else's retraction deleting nothing.

  make test-integration TESTS=tests/integration/test_deletion.py
"""
import asyncio
import datetime
import sys
import time
import xml.etree.ElementTree as ET

import client
import stack
from checks import check, summary, wait_until
from client import http_request, object_key
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

HOST = "example.test"
PRESIGNED, CDN, RETENTION, QUIET = ("presigned.example.test", "cdn.example.test", "retention.example.test",
                                    "quiet.example.test")
ROOMS = "rooms.example.test"
PASSWORD = "gone in time"
NS_PURPOSE = "urn:xmpp:http:upload:purpose:0"
NODE = "http_upload_s3#"


def exists(rgw, key):
    return rgw.s3.head(key) is not None


def upload(c, name, body=b"hello", service=HOST, children=()):
    put, get, _ = c.request_slot(service, name, len(body), children=children)
    status, _, _ = http_request("PUT", put, body)
    check("uploaded %s" % name, status == 200, status)
    return object_key(put), put, get


def takedown(admin, *links, service=HOST):
    """The takedown command of the service that serves the files (another's refuses them)."""
    status, notes, _ = admin.command(service, NODE + "takedown", {"urls": "\n".join(links)})
    return status, notes


def stamp(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_takedown(p, rgw, alice, admin, is_13):
    forms = []
    key, put, _ = upload(alice, "by-put.txt")
    forms.append(("its upload URL, query and all", key, put))
    key, _, get = upload(alice, "by public link \u00fc.txt")
    check("the public link escapes the name", "/by%20public%20link%20%C3%BC.txt" in get, get)
    respelt = "HTTP" + get[len("http"):].replace("/by%20", "/%62y%20").replace("%C3%BC", "%c3%bc")
    forms.append(("its public link, spelt with an upper-case scheme, lower-case escapes and an escaped letter",
                  key, respelt))
    key, _, get = upload(alice, "presigned.txt", service=PRESIGNED)
    forms.append(("its presigned download URL", key, get, PRESIGNED))
    key, _, get = upload(alice, "cdn.txt", service=CDN)
    check("the CDN form is what the client got", get.startswith("https://files.example.test/cdn/"), get)
    forms.append(("its CDN link", key, get, CDN))
    status, notes = takedown(admin, get)
    check("takedown: another service's file is refused by this one", notes.startswith("nothing deleted: not a URL"),
          notes)
    for label, key, link, *service in forms:
        status, notes = takedown(admin, link, service=(service or [HOST])[0])
        check("takedown by %s" % label, status == "completed" and notes.endswith(": taken down")
              and "alice@example.test's file" in notes, notes)
        wait_until("takedown by %s: the file is gone" % label, lambda k=key: not exists(rgw, k), 30)
    status, notes, _ = alice.command(HOST, NODE + "list")
    check("the owner's list shows the file removed by an admin", "by-put.txt, 5 bytes" in notes
          and "removed by an admin" in notes, notes)

    rgw.s3.client.put_object(Bucket=rgw.bucket, Key="private/payroll.csv", Body=b"secret")
    foreign = ["%s/%s/private/payroll.csv" % (rgw.endpoint, rgw.bucket),
               "%s/other-bucket/http_uploads/3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b/x.txt" % rgw.endpoint]
    status, notes = takedown(admin, *foreign)
    check("takedown: a foreign URL is refused, saying why", notes.count("nothing deleted: not ") == 2, notes)
    check("takedown: ... and nothing is deleted", exists(rgw, "private/payroll.csv"))

    unrecorded = "http_uploads/0b9e2a5c-1d3f-4e5a-8b7c-9d0e1f2a3b4c/from before records.txt"
    rgw.s3.client.put_object(Bucket=rgw.bucket, Key=unrecorded, Body=b"old")
    status, notes = takedown(admin, "%s/%s/%s" % (rgw.endpoint, rgw.bucket, unrecorded.replace(" ", "%20")))
    check("takedown: a file from before records", "an unrecorded uploader's file from before records.txt" in notes
          and notes.endswith("taken down"), notes)
    wait_until("takedown: ... is gone too", lambda: not exists(rgw, unrecorded), 30)

    # taken down while its upload URL still lives (5 s here): put back, and gone again
    key, put, _ = upload(alice, "comes back.txt")
    takedown(admin, put)
    wait_until("comeback: taken down", lambda: not exists(rgw, key), 20)
    status, _, _ = http_request("PUT", put, b"again")
    if status == 200:
        wait_until("comeback: put back through its upload URL, it is deleted again", lambda: not exists(rgw, key), 40)
    else:
        print("   comeback: the upload URL had expired already (HTTP %d); nothing came back" % status)

    log = p.log_text()
    check("takedown: logged at info, who removed whose file", "admin@example.test took down alice@example.test's file "
          "by-put.txt (5 bytes)" in log, "")

    key, _, get = upload(alice, "from the shell.txt")
    wait_until("prosodyctl delete: the record is written", lambda: "from the shell.txt" in p.prosodyctl(
        "mod_http_upload_s3", "uploads", "alice@" + HOST)[1] or None, 20)
    status, output = p.prosodyctl("mod_http_upload_s3", "delete", get)
    check("prosodyctl delete: taken down", status == 0 and "alice@example.test's file from the shell.txt (5 bytes): "
          "taken down" in output, output)
    check("prosodyctl delete: the file is gone", not exists(rgw, key))
    status, output = p.prosodyctl("mod_http_upload_s3", "delete", foreign[0])
    check("prosodyctl delete: a foreign URL refused, nothing deleted", status == 1 and "nothing deleted" in output
          and exists(rgw, "private/payroll.csv"), output)
    if is_13:
        key, _, get = upload(alice, "from the admin shell.txt")
        status, output = p.prosodyctl("shell", "http_upload_s3:delete('%s', '%s')" % (HOST, get))
        check("prosodyctl shell (Prosody 13): taken down", "taken down" in output, output)
        wait_until("prosodyctl shell: the file is gone", lambda: not exists(rgw, key), 30)


def test_ephemeral(p, rgw, alice):
    expire = int(time.time()) + 35
    key, _, _ = upload(alice, "short-lived.txt", children=[ET.Element("{%s}ephemeral" % NS_PURPOSE,
                                                                      {"expire-before": stamp(expire)})])
    wait_until("ephemeral: gone after expire-before", lambda: not exists(rgw, key), 120)
    late = time.time() - expire
    check("ephemeral: gone within 60 s of expire-before", late <= 60, "%.0f s late" % late)
    print("   ephemeral: gone %.0f s after expire-before" % late)

    expire = int(time.time()) + 35
    key, _, _ = upload(alice, "across a restart.txt", children=[ET.Element("{%s}ephemeral" % NS_PURPOSE,
                                                                          {"expire-before": stamp(expire)})])
    wait_until("ephemeral: the record is written before the stop", lambda: "across a restart.txt" in p.prosodyctl(
        "mod_http_upload_s3", "uploads", "alice@" + HOST)[1] or None, 20)
    p.stop()
    time.sleep(max(0, expire + 2 - time.time()))   # the server is down while the file falls due
    p.start()
    started = time.time()
    wait_until("ephemeral: overdue after a restart, gone at start", lambda: not exists(rgw, key), 60)
    check("ephemeral: within a minute of the start", time.time() - started <= 60)


def test_retention(p, rgw, alice):
    due, _, _ = upload(alice, "due.txt", service=RETENTION)
    kept, _, _ = upload(alice, "kept.txt", service=RETENTION, children=[ET.Element("{%s}permanent" % NS_PURPOSE)])
    status, output = p.prosodyctl("mod_http_upload_s3", "setup", "--host", RETENTION, "--dry-run")
    check("module retention: setup writes no lifecycle rule for it", "lifecycle: add" not in output, output)
    time.sleep(16)   # the message file's 15 s of retention
    p.restart()      # the daily pass runs 20 s after a start
    wait_until("module retention: the file past its retention is gone", lambda: not exists(rgw, due), 60)
    check("module retention: the file without retention stays", exists(rgw, kept))


def message_xml(to, body, id, type_="chat"):
    return ("<message to='%s' type='%s' id='%s'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%s'/>"
            "</message>" % (to, type_, id, body.replace("&", "&amp;"), id))


def retract_xml(to, id, type_="chat", fasten=False):
    inner = ("<apply-to xmlns='urn:xmpp:fasten:0' id='%s'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to>" % id
             if fasten else "<retract xmlns='urn:xmpp:message-retract:1' id='%s'/>" % id)
    return "<message to='%s' type='%s' id='r-%s'>%s<fallback xmlns='urn:xmpp:fallback:0'/></message>" % (
        to, type_, id, inner)


def handled(*clients):
    """Everything each client sent so far has been through the server (a ping answered after it)."""
    for c in clients:
        c.ping(HOST)


def a_round_later(rgw, alice, what):
    """Retractions noted before this one have been acted on: alice's own file, retracted
    after them, is gone (notes are taken in order, deletions made in order)."""
    key, _, get = upload(alice, "marker.txt")
    marker = "marker-" + object_key(get).split("/")[-2]
    alice.xmpp.send_raw(message_xml("bob@" + HOST, get, marker))
    alice.xmpp.send_raw(retract_xml("bob@" + HOST, marker))
    wait_until("%s: a retraction after them acted on" % what, lambda: not exists(rgw, key), 30)


def test_retraction_chat(rgw, alice, bob):
    bob_got = set()
    bob.xmpp.register_handler(Callback("bob's messages", MatchXPath("{jabber:client}message"),
                                       lambda stanza: bob_got.add(stanza["id"])))
    key, _, get = upload(alice, "in a chat.txt")
    alice.xmpp.send_raw(message_xml("bob@" + HOST, "look " + get, "chat-1"))
    bob.xmpp.send_raw(message_xml("alice@" + HOST, "yours? " + get, "chat-2"))
    handled(alice, bob)
    bob.xmpp.send_raw(retract_xml("alice@" + HOST, "chat-2"))
    bob.xmpp.send_raw(retract_xml("alice@" + HOST, "chat-1"))
    handled(bob)
    a_round_later(rgw, alice, "someone else's retractions")
    check("retraction: someone else's retraction deletes nothing", exists(rgw, key))
    alice.xmpp.send_raw(retract_xml("bob@" + HOST, "chat-1"))
    wait_until("retraction: the sender's retraction in a chat deletes the file", lambda: not exists(rgw, key), 30)
    key, _, get = upload(alice, "fastened.txt")
    alice.xmpp.send_raw(message_xml("bob@" + HOST, get, "chat-3"))
    alice.xmpp.send_raw(retract_xml("bob@" + HOST, "chat-3", fasten=True))
    wait_until("retraction: the older fasten:0 form too", lambda: not exists(rgw, key), 30)
    folder = "%s/%s/http_uploads/" % (rgw.endpoint, rgw.bucket)
    alice.xmpp.send_raw(message_xml("bob@" + HOST, "notes at %snotes.txt and %s" % (folder, folder), "chat-4"))
    wait_until("a message with a bucket link that names no file still goes out", lambda: (
        bob.run(asyncio.sleep(0.2)) or "chat-4" in bob_got), 20)


def join(c, room, nick):
    c.xmpp.send_raw("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>" % (room, nick))


def test_retraction_room(rgw, alice, bob):
    room = "upload-talk@" + ROOMS
    seen = {}

    def on_groupchat(stanza):
        sid = stanza.xml.find("{urn:xmpp:sid:0}stanza-id[@by='%s']" % room)
        origin = stanza.xml.find("{urn:xmpp:sid:0}origin-id")
        if sid is not None and origin is not None:
            seen[origin.get("id")] = sid.get("id")
    alice.xmpp.register_handler(Callback("room copies", MatchXPath("{jabber:client}message"), on_groupchat))
    join(alice, room, "alice")
    join(bob, room, "bob")
    key, _, get = upload(alice, "in a room.txt")
    alice.xmpp.send_raw(message_xml(room, "for all: " + get, "room-1", "groupchat"))
    # slixmpp reads the room's copy only while its loop runs
    stanza_id = wait_until("room: the room's copy came back with its stanza-id",
                           lambda: alice.run(asyncio.sleep(0.2)) or seen.get("room-1"), 20)
    bob.xmpp.send_raw(retract_xml(room, stanza_id or "x", "groupchat"))
    handled(bob)
    a_round_later(rgw, alice, "someone else's retraction in the room")
    check("room: someone else's retraction deletes nothing", exists(rgw, key))
    alice.xmpp.send_raw(retract_xml(room, stanza_id or "x", "groupchat"))
    wait_until("room: the sender's retraction of the room's stanza-id deletes the file", lambda: not exists(rgw, key), 30)


def test_retraction_off(rgw, alice):
    key, _, get = upload(alice, "kept anyway.txt", service=QUIET)
    alice.xmpp.send_raw(message_xml("bob@" + HOST, get, "quiet-1"))
    alice.xmpp.send_raw(retract_xml("bob@" + HOST, "quiet-1"))
    handled(alice)
    time.sleep(8)   # nothing was noted, so no later work to wait for: two rounds of it
    check("retraction off: the file stays", exists(rgw, key))


def main():
    with stack.Session() as session:
        session.on_exit(client.shutdown)
        rgw = session.rgw()
        options = rgw.module_options
        base = dict(expires=5, rate_limit=False, daily_quota=False)
        p = session.prosody(
            {HOST: options(purposes=["ephemeral"], **base)},
            components={
                PRESIGNED: options(path="presigned_uploads", presign_get=True, **base),
                CDN: options(path="cdn_uploads", get_url="https://files.example.test/cdn", **base),
                RETENTION: options(path="retention_uploads", expire_by="module", expires_after=15,
                                   purposes=["permanent"], **base),
                QUIET: options(path="quiet_uploads", delete_on_retraction=False, **base),
            },
            extra_modules=["admin_shell"],
            global_options={"admins": ["admin@" + HOST]},
            extra_config=['Component "%s" "muc"' % ROOMS, '\tmodules_enabled = { "muc_mam" }',
                          '\tmuc_log_by_default = true', '\tmuc_room_locking = false'])
        for user in ("alice", "bob", "admin"):
            p.register(user, HOST, PASSWORD)
        is_13 = p.version().startswith("13")
        alice, bob, admin = (client.Client("%s@%s" % (u, HOST), PASSWORD, p.port) for u in ("alice", "bob", "admin"))
        for c in (alice, bob, admin):
            session.on_exit(c.close)
        started = time.monotonic()
        test_takedown(p, rgw, alice, admin, is_13)
        test_retraction_chat(rgw, alice, bob)
        test_retraction_room(rgw, alice, bob)
        test_retraction_off(rgw, alice)
        for c in (alice, bob, admin):
            c.close()
        test_ephemeral(p, rgw, client.Client("alice@" + HOST, PASSWORD, p.port))
        test_retention(p, rgw, client.Client("alice@" + HOST, PASSWORD, p.port))
        print("deletion: %.1fs on Prosody %s" % (time.monotonic() - started, p.version()))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
