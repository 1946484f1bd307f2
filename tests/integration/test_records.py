#!/usr/bin/python3
"""Every upload has an owner: records of what the server signed, confirmed or
dropped once the upload URL has expired; a user's own list and deletions; an
admin's; files deleted with the account (in-band removal, prosodyctl deluser,
and with the bucket away for a while, across a restart); the storage quota; on
internal storage, SQLite and PostgreSQL; and how many records a hard crash loses.

  make test-integration TESTS=tests/integration/test_records.py

The module talks to Ceph RGW through a proxy (stack.S3Proxy) that can play a
bucket that went away. Upload URLs live 5 s here, so that a record is confirmed
some 10 s after its slot; every wait is bounded.
"""
import sys
import time
import xml.etree.ElementTree as ET

import client
import stack
from checks import check, refused, summary, wait_until
from client import SlotError, http_request, object_key

HOST, QUOTA_HOST, FLOOD_HOST = "example.test", "quota.example.test", "flood.example.test"
PASSWORD = "owned"
USERS = ("alice", "bob", "carol", "dave", "erin", "admin")
NODE = "http_upload_s3#"


def upload(c, name, body, service=HOST):
    put, get, _ = c.request_slot(service, name, len(body))
    status, _, _ = http_request("PUT", put, body)
    check("uploaded %s" % name, status == 200, status)
    return object_key(put), get


def listed(p, user):
    """prosodyctl mod_http_upload_s3 uploads USER@HOST: (exit status, its lines about files)."""
    status, output = p.prosodyctl("mod_http_upload_s3", "uploads", "%s@%s" % (user, HOST))
    return status, [line.strip() for line in output.splitlines() if line.startswith("  ")]


def exists(rgw, key):
    return rgw.s3.head(key) is not None


def remove_account(c):
    """XEP-0077 in-band removal of the client's own account."""
    iq = c.xmpp.make_iq_set(ito=HOST)
    query = ET.Element("{jabber:iq:register}query")
    ET.SubElement(query, "{jabber:iq:register}remove")
    iq.append(query)
    c.run(iq.send(timeout=10))


def test_confirmed(p, rgw, alice):
    key, _ = upload(alice, "kept.txt", b"hello")
    alice.request_slot(HOST, "never.txt", 10)   # granted, never used
    refused("the daily quota counts both slots", "wait", "resource-constraint",
            lambda: alice.request_slot(HOST, "more.txt", 6))
    lines = wait_until("records: the upload confirmed and the unused slot dropped", lambda: (
        lambda s, lines: lines if s == 0 and len(lines) == 1 and "not uploaded yet" not in lines[0] else None)(
        *listed(p, "alice")), 40)
    check("records: the stored size, name, purpose", lines and lines[0].startswith("kept.txt, 5 bytes, ")
          and lines[0].endswith(", message"), lines)
    granted = None
    try:
        granted = alice.request_slot(HOST, "more.txt", 6)
    except SlotError as e:
        granted = e
    check("records: the unused slot's bytes count no more for the daily quota", isinstance(granted, tuple), granted)
    return key


def test_own_list_and_delete(p, rgw, alice, bob):
    bob_key, _ = upload(bob, "bobs.txt", b"bob's")
    status, notes, _ = alice.command(HOST, NODE + "list")
    check("my uploads: completed", status == "completed", (status, notes))
    check("my uploads: the file, its size and its link", "kept.txt, 5 bytes" in notes and "http" in notes, notes)
    check("my uploads: nothing of bob's", "bobs.txt" not in notes, notes)
    link = next((line.strip() for line in notes.splitlines() if line.strip().startswith("http")), None)
    check("my uploads: the link downloads the file", link and http_request("GET", link)[:2] == (200, b"hello"), link)

    _, _, form = alice.command(HOST, NODE + "delete")
    offered = dict((value, label) for label, value in form.get("files", []))
    check("delete uploads: offers alice's files, and no one else's", bob_key not in offered
          and any(label.startswith("kept.txt") for label in offered.values()), offered)
    mine = [value for value, label in offered.items() if label.startswith("kept.txt")]
    status, notes, _ = alice.command(HOST, NODE + "delete", {"files": mine + [bob_key]})
    check("delete uploads: one deleted, the forged key ignored", status == "completed" and notes == "1 file deleted.",
          (status, notes))
    wait_until("delete uploads: the file is gone from the bucket", lambda: not exists(rgw, mine[0]), 30)
    wait_until("delete uploads: and from alice's records", lambda: listed(p, "alice")[1] == [] or None, 20)
    check("delete uploads: bob's file is still there", exists(rgw, bob_key))
    return bob_key


def test_admin(p, rgw, alice, admin, bob_key):
    refused("admin commands: refused to a user", "auth", "forbidden",
            lambda: alice.command(HOST, NODE + "admin-list", {"user": "bob@" + HOST}))
    status, notes, _ = admin.command(HOST, NODE + "admin-list", {"user": "bob@" + HOST})
    check("admin list: bob's file", status == "completed" and "bobs.txt" in notes, (status, notes))
    status, notes, _ = admin.command(HOST, NODE + "admin-delete", {"user": "bob@" + HOST})
    check("admin delete: all of bob's", status == "completed" and "1 file of bob@%s deleted" % HOST in notes, notes)
    wait_until("admin delete: bob's file is gone from the bucket", lambda: not exists(rgw, bob_key), 30)


def test_account_removed(p, rgw, carol, witness_key):
    keys = [upload(carol, "carol-%d.txt" % i, b"carol")[0] for i in range(3)]
    remove_account(carol)
    wait_until("in-band removal: carol's files are gone from the bucket",
               lambda: not any(exists(rgw, k) for k in keys), 40)
    wait_until("in-band removal: and her records", lambda: listed(p, "carol")[1] == [] or None, 20)
    check("in-band removal: others' files stay", exists(rgw, witness_key))


def test_deluser(p, rgw, dave, witness_key):
    key, _ = upload(dave, "dave.txt", b"dave")
    dave.close()
    wait_until("deluser: dave's record is written", lambda: len(listed(p, "dave")[1]) == 1 or None, 20)
    p.stop()
    status, output = p.prosodyctl("deluser", "dave@" + HOST)
    if "Unable to connect to server" in output:
        # Prosody 13's prosodyctl deletes through the running server (mod_admin_shell): it hears of it
        p.start()
        status, output = p.prosodyctl("deluser", "dave@" + HOST)
        check("deluser: prosodyctl removed the account through the running server", status == 0, output)
    else:
        # 0.12's works on the storage from outside: the server finds the orphaned uploads at start
        check("deluser: prosodyctl removed the account with the server stopped", status == 0, output)
        p.start()
    wait_until("deluser: dave's file is gone from the bucket", lambda: not exists(rgw, key), 90)
    check("deluser: others' files stay", exists(rgw, witness_key))


def test_bucket_away(p, rgw, proxy, erin_password, witness_key):
    erin = client.Client("erin@" + HOST, erin_password, p.port)
    keys = [upload(erin, "erin-%d.txt" % i, b"erin")[0] for i in range(2)]
    wait_until("bucket away: erin's records are written", lambda: len(listed(p, "erin")[1]) == 2 or None, 20)
    proxy.mode = "down"
    remove_account(erin)
    erin.close()
    wait_until("bucket away: the failed deletion is logged", lambda: "Could not delete 2 uploaded files" in p.log_text(), 30)
    check("bucket away: the files are still there", all(exists(rgw, k) for k in keys))
    p.restart()   # the pending deletion must survive it
    check("bucket away: after a restart, the files are still there", all(exists(rgw, k) for k in keys))
    proxy.mode = "up"
    wait_until("bucket away: once it is back, erin's files are deleted", lambda: not any(exists(rgw, k) for k in keys), 90)
    wait_until("bucket away: and her records", lambda: listed(p, "erin")[1] == [] or None, 20)
    check("bucket away: others' files stay", exists(rgw, witness_key))


def test_storage_quota(p, alice):
    upload(alice, "big-1.bin", b"x" * 6, QUOTA_HOST)
    e = refused("storage quota: refused past it", "wait", "resource-constraint",
                lambda: alice.request_slot(QUOTA_HOST, "big-2.bin", 6))
    check("storage quota: says what is used and how to free space", e is not None and "You store 6 bytes of the 10 bytes"
          in (e.text or "") and "Delete uploads" in (e.text or ""), e)
    _, _, form = alice.command(QUOTA_HOST, NODE + "delete")
    files = [value for _, value in form.get("files", [])]
    alice.command(QUOTA_HOST, NODE + "delete", {"files": files})
    put = alice.request_slot(QUOTA_HOST, "big-2.bin", 6)[0]
    check("storage quota: a slot again once the file is deleted", put.startswith("http"))


def test_crash(p, user):
    """Slots granted as fast as one client asks, then a SIGKILL: the records lost are those of
    the last write-behind interval at most."""
    c = client.Client("%s@%s" % (user, HOST), PASSWORD, p.port)
    granted, started = 0, time.monotonic()
    while time.monotonic() - started < 12:
        c.request_slot(FLOOD_HOST, "flood-%d.txt" % granted, 1)
        granted += 1
    killed_after = time.monotonic() - started
    p.kill()
    c.close()
    status, lines = listed(p, user)
    kept = len([line for line in lines if line.startswith("flood-")])
    rate = granted / killed_after
    print("   crash: %d slots in %.1f s (%.0f a second), %d records after kill -9: %d lost (%.1f s of slots)"
          % (granted, killed_after, rate, kept, granted - kept, (granted - kept) / rate))
    check("crash: the records are there up to the last write-behind interval (5 s)",
          status == 0 and granted - kept <= rate * 6, (granted, kept))
    p.start()


def test_flood(p, alice, bob, count=20000):
    """Slots granted as fast as a client asks, none refused: every one answered, pings on time,
    and every record written behind (one write per page of the owner's, not one per slot)."""
    answers, pings, elapsed = client.flood(alice, FLOOD_HOST, count, bob, HOST)
    print("   flood: %d slots in %.1f s, %d pings, slowest %.0f ms" % (answers["result"], elapsed, len(pings),
                                                                    1000 * max(pings or [0])))
    check("flood: every request granted", answers == {"result": count, "error": 0}, answers)
    check("flood: pings stayed under 1 s", pings and max(pings) < 1.0, max(pings or [0]))
    # each second writes at least one page of 256 records (more when a page takes under 50 ms):
    # 79 pages, so up to some 80 s when the database is slow; each look lists every record
    started = time.monotonic()
    written = wait_until("flood: every record written", lambda: sum(1 for line in listed(p, "alice")[1]
                                                                     if line.startswith("flood ")) == count or None,
                         count / 256 + 60, interval=5)
    if written:
        print("   flood: every record written %.0f s after the last slot" % (time.monotonic() - started))


def scenario(session, rgw, storage, full):
    proxy = session.s3_proxy(rgw)
    options = rgw.module_options(endpoint=proxy.endpoint, expires=5, rate_limit=False, daily_quota=15, presign_get=True,
                                 get_expires=600)
    quota = rgw.module_options(endpoint=proxy.endpoint, path="quota_uploads", expires=5, rate_limit=False,
                               storage_quota=10)
    flood = rgw.module_options(endpoint=proxy.endpoint, path="flood_uploads", rate_limit=False, daily_quota=False)
    p = session.prosody({HOST: options}, components={QUOTA_HOST: quota, FLOOD_HOST: flood}, extra_modules=["admin_shell"],
                        global_options=dict(storage, admins=["admin@" + HOST]))
    for user in USERS:
        p.register(user, HOST, PASSWORD)
    clients = {user: client.Client("%s@%s" % (user, HOST), PASSWORD, p.port) for user in ("alice", "bob", "carol", "admin")}
    started = time.monotonic()
    test_confirmed(p, rgw, clients["alice"])
    if full:
        witness, _ = upload(clients["admin"], "witness.txt", b"stays")
        bob_key = test_own_list_and_delete(p, rgw, clients["alice"], clients["bob"])
        test_admin(p, rgw, clients["alice"], clients["admin"], bob_key)
        test_account_removed(p, rgw, clients["carol"], witness)
        test_storage_quota(p, clients["alice"])
        for c in clients.values():
            c.close()
        test_deluser(p, rgw, client.Client("dave@" + HOST, PASSWORD, p.port), witness)
        test_bucket_away(p, rgw, proxy, PASSWORD, witness)
        test_crash(p, "admin")
    else:
        witness, _ = upload(clients["admin"], "witness.txt", b"stays")
        test_account_removed(p, rgw, clients["carol"], witness)
        test_flood(p, clients["alice"], clients["bob"])
        for c in clients.values():
            c.close()
    print("records on %s: %.1fs, Prosody %s" % (storage.get("storage", "internal"), time.monotonic() - started, p.version()))
    p.stop()


def main():
    with stack.Session() as session:
        session.on_exit(client.shutdown)
        rgw = session.rgw()
        scenario(session, rgw, {}, full=True)
        scenario(session, rgw, {"storage": "sql", "sql": {"driver": "SQLite3", "database": "prosody.sqlite"}}, full=False)
        pg = session.postgresql()
        scenario(session, rgw, pg.prosody_options(), full=False)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
