#!/usr/bin/python3
"""The daily quota on Prosody's SQL storage: SQLite and a real PostgreSQL server.

  /usr/bin/python3 tests/integration/test_sql_quota.py

With storage = "sql" (mod_storage_sql, LuaDBI): a refusal at the limit, another
user unaffected, the count written behind when the module unloads (seen in the
database itself) and there after a restart; and, while PostgreSQL refuses
Prosody's writes, slots still answered, the failed write logged once and retried,
and written once the database takes writes again. Nothing is uploaded: presigning
does no I/O, so no S3 is needed.
"""
import os
import sqlite3
import sys
import time

import client
import stack
from checks import check, debian_package, lua_module, refused, requires, summary, wait_until

HOST = "example.test"
PASSWORD = "in the database"
QUOTA = 1000
MODULE = {
    "http_upload_s3_access_id": "AKIDEXAMPLE", "http_upload_s3_secret_key": "not-a-real-secret",
    "http_upload_s3_region": "us-east-1", "http_upload_s3_bucket": "uploads",
    "http_upload_s3_endpoint": "http://127.0.0.1:9", "http_upload_s3_path_style": True,
    "http_upload_s3_daily_quota": QUOTA, "http_upload_s3_rate_limit": False,
}


def connect(p, user):
    return client.Client("%s@%s" % (user, HOST), PASSWORD, p.port)


def test_quota(label, p, stored):
    """stored(user) -> the bytes of the user's quota record in the database, as text, or None
    (the store's keys are the uploaders' bare JIDs)."""
    for user in ("alice", "bob", "carol", "dave", "erin"):
        p.register(user, HOST, PASSWORD)
    alice, bob = connect(p, "alice"), connect(p, "bob")
    alice.request_slot(HOST, "a.txt", 600)
    refused("%s: a refusal at the limit" % label, "wait", "resource-constraint",
            lambda: alice.request_slot(HOST, "b.txt", 500))
    try:
        bob.request_slot(HOST, "c.txt", 900)
        check("%s: another user is unaffected" % label, True)
    except client.SlotError as e:
        check("%s: another user is unaffected" % label, False, e)
    wait_until("%s: written behind within the interval" % label, lambda: stored("alice") is not None, 15)

    # a slot, then the module unloads (Prosody stops) before its timer writes: the unload writes it
    proof = None
    for user in ("carol", "dave", "erin"):
        c = connect(p, user)
        c.request_slot(HOST, "d.txt", 700)
        if stored(user) is None:
            proof = user
            break
    alice.close(), bob.close()
    p.stop()
    check("%s: written when the module unloads" % label, proof is not None and stored(proof) is not None
          and "700" in stored(proof), proof and stored(proof))
    p.start()
    alice = connect(p, "alice")
    refused("%s: the count survives a restart" % label, "wait", "resource-constraint",
            lambda: alice.request_slot(HOST, "e.txt", 500))
    alice.request_slot(HOST, "f.txt", 400)   # 600 + 400: exactly the quota
    if proof:
        c = connect(p, proof)
        refused("%s: ... for the user written at unload too" % label, "wait", "resource-constraint",
                lambda: c.request_slot(HOST, "g.txt", 400))
    return alice


def test_writes_refused(p, pg, stored):
    """PostgreSQL refuses Prosody's writes for a while (its user loses the right to write
    Prosody's table), then takes them again. Not a server stopped and started: Prosody
    would reconnect, and reconnecting can crash it on Debian 12 (a use-after-free in
    lua-dbi-postgresql 0.7.2, docs/admin.md), whatever module writes."""
    p.register("frank", HOST, PASSWORD)
    frank = connect(p, "frank")
    frank.request_slot(HOST, "before.txt", 100)
    wait_until("outage: the count is in the database first", lambda: stored("frank") is not None, 15)
    pg.psql("REVOKE INSERT, UPDATE, DELETE ON prosody FROM prosody", database="prosody")
    answered = 0
    for i in range(6):   # some 12 s: two or three of the write-behind's retries
        try:
            frank.request_slot(HOST, "during-%d.txt" % i, 100)
            answered += 1
        except client.SlotError as e:
            print("   outage: slot %d refused: %s" % (i, e))
        time.sleep(2)
    check("outage: slots are still granted", answered == 6, answered)
    log = p.log_text()
    check("outage: the failed write is logged once", log.count("Could not save the upload quota") == 1,
          log.count("Could not save the upload quota"))
    check("outage: ... as the database's refusal", "permission denied" in log)
    logged_before = len(p.log_text())
    pg.psql("GRANT INSERT, UPDATE, DELETE ON prosody TO prosody", database="prosody")
    # tried every 5 s: a minute is for a loaded machine
    retried = wait_until("outage: the write is retried once the database takes writes again",
                         lambda: "Saved the upload quota again" in p.log_text(), 60)
    check("outage: ... with what was granted meanwhile", "700" in (stored("frank") or ""), stored("frank"))
    wait_until("outage: the records too", lambda: "Saved the upload records again" in p.log_text(), 30)
    records = pg.psql("SELECT count(*) FROM prosody WHERE store = 'upload_records' AND \"user\" LIKE 'frank@%'",
                      database="prosody").strip()
    check("outage: ... every slot's", records == "7", records)
    if not retried:
        explain_stuck(p, frank, logged_before)


def explain_stuck(p, user, logged_before):
    """What a retry that never came leaves to read: whether the server still runs and
    answers, and what its storage and the module logged since the database took writes again."""
    print("   outage: the server %s" % ("runs" if p.proc and p.proc.poll() is None
                                         else "exited with %s" % (p.proc and p.proc.poll())))
    try:
        user.request_slot(HOST, "after.txt", 1)
        print("   outage: ... and answers a slot request")
    except Exception as e:   # any failure is the finding here
        print("   outage: ... and does not answer a slot request: %r" % e)
    lines = [line for line in p.log_text()[logged_before:].splitlines()
             if "sql\t" in line or "http_upload_s3\t" in line]
    print("   outage: the last of %d storage and module log lines since:" % len(lines))
    for line in lines[-20:]:
        print("     " + line[:300])


def main():
    requires("LuaDBI's SQLite driver (Lua module DBI with dbd.sqlite3)", lua_module("dbd.sqlite3"),
             debian_package("lua-dbi-sqlite3"))
    requires("LuaDBI's PostgreSQL driver (Lua module dbd.postgresql)", lua_module("dbd.postgresql"),
             debian_package("lua-dbi-postgresql"))
    started = time.monotonic()
    with stack.Session() as session:
        session.on_exit(client.shutdown)
        database = os.path.join(session.workdir, "prosody.sqlite")
        p = session.prosody({HOST: MODULE}, global_options={"storage": "sql",
                                                            "sql": {"driver": "SQLite3", "database": database}})

        def sqlite_stored(user):
            try:
                with sqlite3.connect(database, timeout=5) as db:
                    row = db.execute('SELECT value FROM prosody WHERE store = \'upload_quota\' AND "user" = ?'
                                     ' AND key = \'bytes\'', ("%s@%s" % (user, HOST),)).fetchone()
            except sqlite3.Error:
                return None
            return row and str(row[0])
        test_quota("sqlite", p, sqlite_stored)
        p.stop()

        pg = session.postgresql()
        p = session.prosody({HOST: MODULE}, global_options=pg.prosody_options())

        def pg_stored(user):
            out = pg.psql('SELECT value FROM prosody WHERE store = \'upload_quota\' AND "user" = \'%s@%s\''
                          ' AND key = \'bytes\'' % (user, HOST), database="prosody").strip()
            return out or None
        test_quota("postgresql", p, pg_stored)
        test_writes_refused(p, pg, pg_stored)
        print("sql quota: %.1fs on Prosody %s" % (time.monotonic() - started, p.version()))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
