#!/usr/bin/python3
"""A user of another server, arriving over a real server-to-server link, may not
upload unless the access list names them.

  /usr/bin/python3 tests/integration/test_s2s.py

Two Prosody servers on two loopback addresses (s2s needs port 5269, so each
gets an address of its own in 127.0.0.0/8), finding each other through a
hosts file; a stub DNS server on loopback answers NXDOMAIN to everything else
(the SRV lookups), so nothing leaves the machine. Nothing is uploaded, so no S3
is needed: presigning does no I/O.
"""
import os
import random
import socket
import sys
import threading
import time

import client
import stack
from checks import check, debian_package, lua_module, refused, requires, summary
from client import SlotError

PASSWORD = "over the wire"
class NxdomainServer:
    """Answers every DNS query on 127.0.0.1 with NXDOMAIN."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return
            if len(query) >= 12:
                # same id and question; QR=1, RD copied, RA=1, RCODE=3; no answers
                flags = bytes([0x80 | (query[2] & 0x01), 0x83])
                self.sock.sendto(query[:2] + flags + query[4:6] + b"\0\0\0\0\0\0" + query[12:], peer)

    def close(self):
        self.sock.close()


def free_s2s_address():
    """A loopback address whose port 5269 is free."""
    for _ in range(50):
        address = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(0, 255), random.randint(1, 254))
        with socket.socket() as s:
            try:
                s.bind((address, 5269))
                return address
            except OSError:
                continue
    raise RuntimeError("no loopback address with port 5269 free")


def server(session, hosts_file, dns_port, address, hosts):
    return session.prosody(hosts, extra_modules=["dialback"], global_options={
        "modules_disabled": ["tls"],
        "s2s_ports": [5269],
        "s2s_interfaces": [address],
        "s2s_require_encryption": False,
        "s2s_secure_auth": False,
        "unbound": {"resolvconf": False, "hoststxt": hosts_file, "forward": "127.0.0.1@%d" % dns_port},
    })


def main():
    # the hosts file and the stub DNS server are read only by Prosody's libunbound resolver;
    # its fallback resolver ignores them and the s2s link fails as "unable to resolve service"
    requires("Prosody's libunbound resolver (Lua module lunbound)", lua_module("lunbound"),
             debian_package("lua-unbound"))
    started = time.monotonic()
    with stack.Session() as session:
        session.on_exit(client.shutdown)
        dns = NxdomainServer()
        session.on_exit(dns.close)
        home, away = free_s2s_address(), free_s2s_address()
        hosts_file = os.path.join(session.workdir, "hosts")
        with open(hosts_file, "w") as f:
            f.write("%s example.test\n%s remote.test\n" % (home, away))
        secret_file = os.path.join(session.workdir, "secret")
        with open(secret_file, "w") as f:
            f.write("not-a-real-secret\n")
        module = {
            "http_upload_s3_access_id": "AKIDEXAMPLE", "http_upload_s3_secret_key_file": secret_file,
            "http_upload_s3_region": "us-east-1", "http_upload_s3_bucket": "uploads",
            "http_upload_s3_endpoint": "http://127.0.0.1:9", "http_upload_s3_path_style": True,
            "http_upload_s3_access": ["dave@remote.test"],
        }
        ours = server(session, hosts_file, dns.port, home, {"example.test": module})
        theirs = server(session, hosts_file, dns.port, away, {"remote.test": {"modules_enabled": []}})
        theirs.register("carol", "remote.test", PASSWORD)
        theirs.register("dave", "remote.test", PASSWORD)
        carol = client.Client("carol@remote.test", PASSWORD, theirs.port)
        session.on_exit(carol.close)
        dave = client.Client("dave@remote.test", PASSWORD, theirs.port)
        session.on_exit(dave.close)

        refused("a remote user is forbidden", "auth", "forbidden", lambda: carol.request_slot("example.test", "a.txt", 1))
        try:
            put, _, _ = dave.request_slot("example.test", "a.txt", 1)
            check("a remote user on the access list gets a slot", put.startswith("http://127.0.0.1:9/uploads/"), put)
        except SlotError as e:
            check("a remote user on the access list gets a slot", False, e)
        log = ours.log_text()
        check("the requests came over s2s", "s2sin" in log and "dave@remote.test" in log)
        print("s2s: %.1fs on Prosody %s" % (time.monotonic() - started, ours.version()))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
