#!/usr/bin/python3
"""Credentials that change while Prosody runs, against Ceph RGW with its real STS.

  /usr/bin/python3 tests/integration/test_credentials.py

One Prosody, one user (alice@main.test) and a component per credential source:
  sts.main.test        an STS role, assumed from RGW with the user's keys
  files.main.test      credential files, rewritten while slots are requested
  reload.main.test     keys in the config file, replaced by `prosodyctl reload`
  proxy.main.test      an STS role through a loopback proxy that can refuse, and
                       that shortens the sets' Expiration to 30 s
  instance.main.test   EC2 instance metadata (IMDSv2), a loopback server here
  container.main.test  the ECS / EKS container credentials endpoint, likewise
and a second Prosody whose instance metadata answers only sets that have
already expired (its own, so that every request it gets is one configuration's):
  expired.main.test    keys in the config file, then that source by `prosodyctl reload`
The loopback servers hand out sets they got from RGW's STS, so RGW verifies
every upload, session token included. Nothing contacts 169.254.169.254: the
module is pointed at 127.0.0.1 the way the AWS SDKs allow. Every secret,
token and answer handed out is kept for test_logs.py to search the logs for.
"""
import http.server
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse

import botocore.session

import client
import stack
from checks import check, refused, summary, wait_until
from client import SlotError, http_request

DOMAIN = "main.test"
PASSWORD = "rotating"
SHORT_LIFE = 30          # seconds: the Expiration the proxy and the metadata servers give out
IMDS_TOKEN = "imds-session-token-%s" % os.urandom(8).hex()
CONTAINER_TOKEN = "container-authorization-%s" % os.urandom(8).hex()


def key_id(url):
    """The access key id in a presigned URL's X-Amz-Credential."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return query["X-Amz-Credential"][0].split("/")[0]


def short_expiration(life=SHORT_LIFE):
    """The Expiration the test's providers give out: life seconds from now."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + life))


class Provider(http.server.ThreadingHTTPServer):
    """Instance metadata, the container endpoint and an STS proxy, on one loopback port."""

    def __init__(self, session, rgw, role_arn):
        super().__init__(("127.0.0.1", 0), ProviderHandler)
        self.session, self.rgw, self.role_arn = session, rgw, role_arn
        self.port = self.server_address[1]
        self.mode = "pass"              # the STS proxy: pass, refuse or down
        self.expired = False            # the metadata servers: sets that expired a minute ago
        self.handed_out = {"instance": 0, "container": 0, "proxy": 0}
        self.lock = threading.Lock()
        self.sts = botocore.session.Session().create_client(
            "sts", endpoint_url=rgw.endpoint, region_name="us-east-1",
            aws_access_key_id=rgw.env["RGW_ACCESS_KEY"], aws_secret_access_key=rgw.env["RGW_SECRET_KEY"])
        session.serve(self)

    def short_lived(self, kind):
        """A set from RGW's STS (valid 15 minutes there), said to expire in SHORT_LIFE seconds."""
        c = self.sts.assume_role(RoleArn=self.role_arn, RoleSessionName="provider", DurationSeconds=900)["Credentials"]
        for value in (c["SecretAccessKey"], c["SessionToken"]):
            self.session.secret(value)
        with self.lock:
            self.handed_out[kind] += 1
        return {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": c["AccessKeyId"],
                "SecretAccessKey": c["SecretAccessKey"], "Token": c["SessionToken"],
                "Expiration": short_expiration(-60 if self.expired else SHORT_LIFE)}


class ProviderHandler(stack.QuietHandler):
    def answer(self, status, body, content_type="text/plain"):
        self.reply(status, body, content_type)

    def do_PUT(self):   # IMDSv2: a session token, only to a PUT that says how long it should live
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.answer(200, IMDS_TOKEN)
        self.answer(400, "")

    def do_GET(self):
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path.startswith(base):
            if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                return self.answer(401, "")   # IMDSv1 is off
            if self.path == base:
                return self.answer(200, "uploader\n")
            if self.path == base + "uploader":
                return self.answer(200, json.dumps(self.server.short_lived("instance")), "application/json")
        if self.path == "/v2/credentials/prosody":
            if self.headers.get("Authorization") != CONTAINER_TOKEN:
                return self.answer(403, "")
            return self.answer(200, json.dumps(self.server.short_lived("container")), "application/json")
        self.answer(404, "")

    def do_POST(self):   # the STS proxy: the module's signed AssumeRole, forwarded to RGW as it is
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.mode == "down":
            self.close_connection = True
            return
        if self.server.mode == "refuse":
            return self.answer(403, "<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>")
        status, text, _ = http_request("POST", self.server.rgw.endpoint + self.path, body,
                                       dict(self.headers))   # Host as signed
        text = text.decode()
        for secret in re.findall(r"<(?:SecretAccessKey|SessionToken)>([^<]+)<", text):
            self.server.session.secret(secret)
        with self.server.lock:
            self.server.handed_out["proxy"] += 1
        self.answer(status, re.sub(r"<Expiration>[^<]*</Expiration>",
                                   "<Expiration>%s</Expiration>" % short_expiration(), text), "text/xml")


def slot_and_upload(alice, service, name="f.txt", body=b"rotating credentials"):
    """(status of the PUT, key id of the slot, PUT URL, GET URL); raises SlotError."""
    put, get, _ = alice.request_slot(service, name, len(body), "text/plain")
    status, _, _ = http_request("PUT", put, body, {"Content-Type": "text/plain"})
    return status, key_id(put), put, get


def test_sts(alice, rgw):
    status, kid, put, get = slot_and_upload(alice, "sts." + DOMAIN)
    check("sts: a slot signed with the role's credentials uploads", status == 200, status)
    check("sts: ... which are not the user's own keys", kid != rgw.env["RGW_ACCESS_KEY"], kid)
    check("sts: ... and carry a session token", "X-Amz-Security-Token=" in put)
    status, body, _ = http_request("GET", get)
    check("sts: the download works", status == 200 and body == b"rotating credentials", status)
    tampered = put.replace("X-Amz-Security-Token=", "X-Amz-Security-Token=A")
    status, _, _ = http_request("PUT", tampered, b"rotating credentials", {"Content-Type": "text/plain"})
    check("sts: RGW refuses a tampered session token", status in (400, 403), status)


def test_file_rotation(alice, rgw, session, files, old):
    service = "files." + DOMAIN
    new, new_secret = rgw.add_key()
    session.secret(new_secret)
    statuses, ids, switched_at = [], [], None
    for i in range(60):
        status, kid, _, _ = slot_and_upload(alice, service)
        statuses.append(status)
        ids.append(kid)
        if i == 5:   # a rotation as a secret manager does it: one file, a moment, then the other
            with open(files["secret"], "w") as f:
                f.write(new_secret + "\n")
            time.sleep(1.5)
            with open(files["id"], "w") as f:
                f.write(new + "\n")
        if kid == new and switched_at is None:
            switched_at = i
            rgw.remove_key(old)   # the old key stops working at once
        if switched_at is not None and i >= switched_at + 5:
            break
        time.sleep(0.3)
    check("files: every slot uploads, before, during and after the rotation", set(statuses) == {200}, statuses)
    check("files: the new key is used after the rotation", switched_at is not None, ids)
    check("files: never the old id again after the switch", switched_at is not None
          and all(k == new for k in ids[switched_at:]), ids)
    return new


def test_file_rotation_same_second(alice, p, rgw, session, files, old):
    """New keys of the same lengths, written within the second of the previous write:
    the files' times and sizes stay as they were, only their content tells. The module's
    timer looks twice before it reads, so the read that makes this matter is a reload's,
    which reads at once: it comes between the two writes."""
    service = "files." + DOMAIN
    new, new_secret = rgw.add_key()
    session.secret(new_secret)
    current = {}
    for name, path in files.items():
        with open(path) as f:
            current[name] = f.read()
    rotated = {"id": new + "\n", "secret": new_secret + "\n"}
    check("files, same second: the new keys have the old ones' lengths",
          all(len(rotated[name]) == len(current[name]) for name in files), (new, current["id"]))

    def write(contents):
        for name, content in contents.items():
            with open(files[name], "w") as f:
                f.write(content)
        stats = {name: os.stat(path) for name, path in files.items()}   # all the old change test looked at:
        return {name: (int(st.st_mtime), int(st.st_ctime), st.st_size) for name, st in stats.items()}

    def reads():
        return p.log_text().count(service + ":http_upload_s3\tdebug\tSigning with credentials from")
    wait_until("files, same second: a second begins", lambda: time.time() % 1 < 0.2, 2, interval=0.01)
    before = write(current)   # the previous write: the keys in use, written again
    read = reads()
    p.proc.send_signal(signal.SIGHUP)   # what prosodyctl reload sends, without its start-up time
    wait_until("files, same second: the reload read the files", lambda: reads() > read, 5, interval=0.01)
    after = write(rotated)
    check("files, same second: times and sizes as before the rotation", after == before, (before, after))
    wait_until("files, same second: slots are signed with the new key",
               lambda: slot_and_upload(alice, service)[1] == new, 15)
    status, kid, _, _ = slot_and_upload(alice, service)
    check("files, same second: uploads with the new key", status == 200 and kid == new, (status, kid))
    rgw.remove_key(old)
    status, kid, _, _ = slot_and_upload(alice, service)
    check("files, same second: ... and with the old one deleted", status == 200 and kid == new, (status, kid))


def test_reload(alice, p, rgw, session, old_key):
    service = "reload." + DOMAIN
    options = p.components[service]
    status, kid, _, _ = slot_and_upload(alice, service)
    check("reload: uploads with the configured key", status == 200 and kid == old_key, (status, kid))
    new, new_secret = rgw.add_key()
    session.secret(new_secret)
    options.update({"http_upload_s3_access_id": new, "http_upload_s3_secret_key": new_secret,
                    "http_upload_s3_file_size_limit": 123456})
    p.write_config()
    code, output = p.prosodyctl("reload")
    check("reload: prosodyctl reload", code == 0, output)
    wait_until("reload: the new key is used", lambda: slot_and_upload(alice, service)[1] == new and new, 15)
    rgw.remove_key(old_key)
    status, kid, _, _ = slot_and_upload(alice, service)
    check("reload: uploads with the new key, the old one deleted", status == 200 and kid == new, (status, kid))
    info = str(alice.disco_info(service))
    check("reload: the new size limit is advertised", "123456" in info, info)

    options["http_upload_s3_expires"] = 0   # a typo
    p.write_config()
    p.prosodyctl("reload")
    wait_until("reload: the broken config is refused in the log",
               lambda: "Kept the running configuration: http_upload_s3_expires must be between" in p.log_text(), 10)
    status, kid, _, _ = slot_and_upload(alice, service)
    check("reload: a broken config keeps the running one", status == 200 and kid == new, (status, kid))
    check("reload: said once", p.log_text().count("Kept the running configuration") == 1)
    del options["http_upload_s3_expires"]
    p.write_config()


def test_provider_refusing(alice, p, provider, started):
    service = "proxy." + DOMAIN
    status, kid, _, _ = slot_and_upload(alice, service)
    check("sts proxy: uploads while the set is valid, though STS refuses now", status == 200, status)
    # the set from the start expires SHORT_LIFE s after it; the refreshes since have all been refused
    time.sleep(max(0, started + SHORT_LIFE + 2 - time.time()))
    e = refused("sts proxy: once the set has expired, the typed error", "wait", "internal-server-error",
                lambda: alice.request_slot(service, "f.txt", 1))
    check("sts proxy: ... saying why", e is not None and "credentials" in (e.text or ""), e)
    refused("sts proxy: ... every time", "wait", "internal-server-error", lambda: alice.request_slot(service, "g.txt", 1))
    log = p.log_text()
    check("sts proxy: the log says why, once", log.count("Refusing upload slots: the credentials from the role") == 1,
          log.count("Refusing upload slots"))
    # once per configuration whose refreshes fail (the first, and one for each of the two reloads above),
    # not once per retry
    failures = [line for line in log.splitlines() if "Could not obtain credentials from the role" in line]
    check("sts proxy: failed refreshes are not logged per retry", 1 <= len(failures) <= 3, "\n".join(failures))
    provider.mode = "pass"
    wait_until("sts proxy: recovers when STS comes back", lambda: _uploads(alice, service), 40)


def _uploads(alice, service):
    try:
        return slot_and_upload(alice, service)[0] == 200
    except SlotError:
        return False


def test_metadata(alice, provider, started):
    for kind in ("instance", "container"):
        service = "%s.%s" % (kind, DOMAIN)
        status, kid, _, _ = slot_and_upload(alice, service)
        check("%s: a slot with its credentials uploads" % kind, status == 200, status)
    # the sets say they expire after SHORT_LIFE s: the module fetches new ones halfway
    wait_until("instance and container: refreshed before they expire", lambda: provider.handed_out["instance"] >= 3
               and provider.handed_out["container"] >= 3, started + 3 * SHORT_LIFE - time.time())
    for kind in ("instance", "container"):
        status, _, _, _ = slot_and_upload(alice, "%s.%s" % (kind, DOMAIN))
        check("%s: uploads with the refreshed set" % kind, status == 200, status)


def test_expired_source(session, rgw, role):
    """A configuration that signs, reloaded onto a source that answers only sets that
    have already expired: it keeps signing, and the source is asked again with backoff."""
    stale = Provider(session, rgw, role)
    stale.expired = True
    key, secret = rgw.add_key()
    session.secret(secret)
    service = "expired." + DOMAIN
    p = session.prosody({DOMAIN: {"modules_enabled": []}},
                        {service: rgw.module_options(rate_limit=False, access_id=key, secret_key=secret)},
                        extra_env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:%d" % stale.port})
    p.register("alice", DOMAIN, PASSWORD)
    alice = client.Client("alice@" + DOMAIN, PASSWORD, p.port)
    session.on_exit(alice.close)
    status, kid, _, _ = slot_and_upload(alice, service)
    check("expired: uploads with the configured key", status == 200 and kid == key, (status, kid))

    p.components[service] = rgw.module_options(rate_limit=False, credentials="instance", access_id=None,
                                               secret_key=None)
    p.write_config()
    code, output = p.prosodyctl("reload")
    check("expired: prosodyctl reload", code == 0, output)
    reloaded = time.monotonic()
    wait_until("expired: the new source is asked", lambda: stale.handed_out["instance"] >= 1, 10)
    results = []
    while time.monotonic() < reloaded + 30:   # long enough for 15 ticks, and for the backoff to reach 15 s
        try:
            status, kid, _, _ = slot_and_upload(alice, service)
            results.append((status, kid))
        except SlotError as e:
            results.append((str(e), None))
        time.sleep(1)
    elapsed, fetches = time.monotonic() - reloaded, stale.handed_out["instance"]
    check("expired: the running configuration keeps signing, and its slots upload",
          set(results) == {(200, key)}, {r: results.count(r) for r in set(results)})
    # retries 5, 10, then 15 s apart: 3 or 4 fetches in 30 s; a fetch every 2 s tick would be 15
    check("expired: the source is asked again with backoff, not at every tick", fetches <= 2 + elapsed / 10,
          "%d fetches in %.0f s" % (fetches, elapsed))
    log = p.log_text()
    failures = [line for line in log.splitlines() if "Could not obtain credentials from EC2 instance metadata" in line]
    check("expired: the failure is logged, once", len(failures) == 1 and "has already expired" in failures[0],
          "\n".join(failures))
    check("expired: slots are never refused", "Refusing upload slots" not in log)
    return fetches, elapsed


def test_check(p, provider):
    code, output = p.prosodyctl("mod_http_upload_s3", "check")
    for host, source in (("sts", "the role arn:aws:iam:::role/uploader"), ("instance", "EC2 instance metadata at"),
                         ("container", "the container credentials endpoint"), ("files", "the credential files")):
        check("check: names the source of %s" % host, re.search(r"%s\.%s: credentials: ok \(from %s" % (
            host, re.escape(DOMAIN), re.escape(source)), output) is not None, output)
    check("check: tells when role credentials expire", "valid until" in output)
    provider.mode = "down"
    code, output = p.prosodyctl("mod_http_upload_s3", "check")
    check("check: an unreachable STS is its own layer", "proxy.%s: credentials: FAIL: AssumeRole" % DOMAIN in output
          and code != 0, output)
    provider.mode = "pass"


def main():
    started_test = time.monotonic()
    with stack.Session() as session:
        session.on_exit(client.shutdown)
        rgw = session.rgw(sts=True)
        role = rgw.create_role("uploader")
        provider = Provider(session, rgw, role)
        for value in (IMDS_TOKEN, CONTAINER_TOKEN):
            session.secret(value)
        # keys of their own for the components whose keys are replaced and deleted
        files_key, files_secret = rgw.add_key()
        reload_key, reload_secret = rgw.add_key()
        session.secret(files_secret)
        session.secret(reload_secret)
        files = {"id": os.path.join(session.workdir, "access_id"), "secret": os.path.join(session.workdir, "secret")}
        with open(files["id"], "w") as f:
            f.write(files_key + "\n")
        with open(files["secret"], "w") as f:
            f.write(files_secret + "\n")

        def options(**extra):
            return rgw.module_options(rate_limit=False, **extra)
        base = {"access_id": None, "secret_key": None}
        components = {
            "sts." + DOMAIN: options(role_arn=role, role_duration=900, presign_get=True),
            "files." + DOMAIN: options(access_id_file=files["id"], secret_key_file=files["secret"], **base),
            "reload." + DOMAIN: options(access_id=reload_key, secret_key=reload_secret),
            "proxy." + DOMAIN: options(role_arn=role, sts_endpoint="http://127.0.0.1:%d" % provider.port),
            "instance." + DOMAIN: options(credentials="instance", **base),
            "container." + DOMAIN: options(credentials="container", **base),
        }
        env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:%d" % provider.port,
               "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:%d/v2/credentials/prosody" % provider.port,
               "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_TOKEN}
        p = session.prosody({DOMAIN: {"modules_enabled": []}}, components, extra_env=env)
        wait_until("the proxy handed out the first set", lambda: provider.handed_out["proxy"] >= 1, 10)
        started = time.time()
        provider.mode = "refuse"   # the first set came through; its refreshes will not
        p.register("alice", DOMAIN, PASSWORD)
        alice = client.Client("alice@" + DOMAIN, PASSWORD, p.port)
        session.on_exit(alice.close)

        test_sts(alice, rgw)
        rotated_key = test_file_rotation(alice, rgw, session, files, files_key)
        test_reload(alice, p, rgw, session, reload_key)
        test_provider_refusing(alice, p, provider, started)   # before any other reload: it counts their log lines
        test_file_rotation_same_second(alice, p, rgw, session, files, rotated_key)
        test_metadata(alice, provider, started)
        test_check(p, provider)
        expired_fetches, expired_window = test_expired_source(session, rgw, role)
        print("credentials: %.1fs on Prosody %s; sets handed out: %s; expired sets: %d fetches in %.0f s" % (
            time.monotonic() - started_test, p.version(), provider.handed_out, expired_fetches, expired_window))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
