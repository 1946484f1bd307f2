#!/usr/bin/python3
"""Packaging: `make install` into a staging folder, `luarocks make` into a
local tree, and `prosodyctl install` from a rocks server on loopback (a source
rock that `make rock` packed), each from a fresh copy of the sources; then
Prosody loads the module from there (and only from there) and hands out a slot.

  /usr/bin/python3 tests/integration/test_install.py

The installer's slot is uploaded to Ceph RGW; the others need no S3:
presigning does no I/O.
"""
import functools
import http.server
import os
import shutil
import subprocess
import sys
import time

import client
import stack
from checks import check, debian_package, program, requires, summary
from client import http_request

PASSWORD = "packaged"
LUAROCKS = os.environ.get("LUAROCKS", "luarocks-5.4")
LUAROCKS_ADMIN = os.environ.get("LUAROCKS_ADMIN", "luarocks-admin-5.4")
def run(argv, cwd):
    r = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(argv), r.stdout.decode(errors="replace")))
    return r.stdout.decode(errors="replace")


def fresh_sources(workdir, name):
    """The tracked files of this checkout, copied, so that nothing built here is reused."""
    dest = os.path.join(workdir, name)
    os.makedirs(dest)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=stack.ROOT, check=True, stdout=subprocess.PIPE).stdout
    subprocess.run(["tar", "-C", stack.ROOT, "--null", "-T", "-", "-cf", "-"], input=files, check=True,
                   stdout=open(os.path.join(workdir, name + ".tar"), "wb"))
    subprocess.run(["tar", "-C", dest, "-xf", os.path.join(workdir, name + ".tar")], check=True)
    return dest


def serves_slots(session, label, plugin_dir, cpath):
    """Prosody with only plugin_dir and cpath to find the module, and one real slot request."""
    module = {
        "http_upload_s3_access_id": "AKIDEXAMPLE", "http_upload_s3_secret_key_file": os.path.join(session.workdir, "secret"),
        "http_upload_s3_region": "eu-west-2", "http_upload_s3_bucket": "chat-uploads", "http_upload_s3_path": "up",
    }
    # plugin_dir is then the only place the module can come from
    check("%s: no copy in Prosody's own plugin folder" % label,
          not any(os.path.exists(os.path.join(d, "mod_http_upload_s3")) for d in ("/usr/lib/prosody/modules",)))
    p = session.prosody({"example.test": module}, plugin_paths=[plugin_dir], cpath=cpath)
    p.register("alice", "example.test", PASSWORD)
    c = client.Client("alice@example.test", PASSWORD, p.port)
    session.on_exit(c.close)
    put, get, _ = c.request_slot("example.test", "packaged file.txt", 3, "text/plain")
    check("%s: a slot" % label, put.startswith("https://chat-uploads.s3.eu-west-2.amazonaws.com/up/")
          and get.endswith("/packaged%20file.txt"), put)
    status, out = p.prosodyctl("mod_http_upload_s3", "presign", "a.txt", "1")
    check("%s: prosodyctl finds the command" % label, status == 0 and "PUT: https://" in out, out)
    c.close()
    p.stop()


class FilesHandler(http.server.SimpleHTTPRequestHandler, stack.QuietHandler):
    """The files of a directory, quietly: a rocks server."""


def prosodyctl_install(session, workdir):
    """prosodyctl install from a rocks server, Prosody with nothing else to find the module by,
    a slot uploaded to RGW, then prosodyctl remove."""
    src = fresh_sources(workdir, "installer-src")
    run(["make", "rock", "LUAROCKS=" + LUAROCKS], src)
    rocks = os.path.join(workdir, "rocks-server")
    os.makedirs(rocks)
    built = os.path.join(src, "build", "rock")
    for name in os.listdir(built):
        if name.endswith(".src.rock"):
            shutil.copy(os.path.join(built, name), rocks)
    run([LUAROCKS_ADMIN, "make-manifest", rocks], workdir)
    server = session.http_server(functools.partial(FilesHandler, directory=rocks))
    url = "http://127.0.0.1:%d/" % server.server_port

    rgw = session.rgw()
    rgw.s3.allow_public_get("http_uploads")
    installer = os.path.join(workdir, "custom_plugins")   # by default beside Prosody's own data, /var/lib/prosody
    p = session.prosody({"example.test": rgw.module_options()}, plugin_paths=[], cpath=None, start=False,
                        global_options={"installer_plugin_path": installer})
    status, out = p.prosodyctl("install", "--server=" + url, "mod_http_upload_s3", timeout=600)
    print("   $ prosodyctl install --server=%s mod_http_upload_s3\n     %s" % (
        url, "\n     ".join(line for line in out.splitlines() if line.strip())[-1500:]))
    so = os.path.join(installer, "lib", "lua", "5.4", "s3sign.so")
    lua = os.path.join(installer, "share", "lua", "5.4", "mod_http_upload_s3", "mod_http_upload_s3.lua")
    check("prosodyctl install: succeeds", status == 0, out)
    check("prosodyctl install: the library in the installer's tree", os.path.isfile(so), so)
    check("prosodyctl install: the module in the installer's tree", os.path.isfile(lua), lua)

    p.start()
    p.register("alice", "example.test", PASSWORD)
    c = client.Client("alice@example.test", PASSWORD, p.port)
    session.on_exit(c.close)
    put, get, _ = c.request_slot("example.test", "installed.txt", 9, "text/plain")
    status, _, _ = http_request("PUT", put, b"installed", {"Content-Type": "text/plain"})
    check("prosodyctl install: a slot that uploads to RGW", status == 200, status)
    status, body, _ = http_request("GET", get)
    check("prosodyctl install: ... and downloads", status == 200 and body == b"installed", status)
    check("prosodyctl install: the library came from the installer's tree",
          "Error initializing module" not in p.log_text())
    c.close()
    p.stop()
    status, out = p.prosodyctl("remove", "mod_http_upload_s3", timeout=120)
    check("prosodyctl remove: removes it", status == 0 and not os.path.exists(so) and not os.path.exists(lua), out)


def main():
    requires("LuaRocks (%s)" % LUAROCKS, program(LUAROCKS) and program(LUAROCKS_ADMIN), debian_package("luarocks"))
    started = time.monotonic()
    with stack.Session() as session:
        session.on_exit(client.shutdown)
        workdir = session.workdir
        with open(os.path.join(workdir, "secret"), "w") as f:
            f.write("not-a-real-secret\n")

        src = fresh_sources(workdir, "make-src")
        stage = os.path.join(workdir, "stage")
        run(["make", "install", "DESTDIR=" + stage, "PREFIX=/usr/local"], src)
        cmoddir = run(["pkg-config", "--variable=INSTALL_CMOD", "lua5.4"], src).strip()
        so = stage + os.path.join(cmoddir, "s3sign.so")
        moddir = os.path.join(stage, "usr/local/lib/prosody/modules")
        check("make install: s3sign.so in Lua's C module folder", os.path.isfile(so), so)
        check("make install: the module in Prosody's plugin folder",
              os.path.isfile(os.path.join(moddir, "mod_http_upload_s3", "mod_http_upload_s3.lua")))
        serves_slots(session, "make install", moddir, os.path.join(os.path.dirname(so), "?.so"))
        run(["make", "uninstall", "DESTDIR=" + stage, "PREFIX=/usr/local"], src)
        check("make uninstall removes both", not os.path.exists(so)
              and not os.path.exists(os.path.join(moddir, "mod_http_upload_s3")))

        src = fresh_sources(workdir, "rock-src")
        tree = os.path.join(workdir, "rocks")
        rockspec = [f for f in os.listdir(src) if f.endswith(".rockspec")][0]
        run([LUAROCKS, "make", "--tree", tree, rockspec], src)
        check("luarocks: s3sign.so in the tree", os.path.isfile(os.path.join(tree, "lib/lua/5.4/s3sign.so")))
        serves_slots(session, "luarocks", tree, os.path.join(tree, "lib/lua/5.4/?.so"))
        # the module finds its library in the tree by itself, as prosodyctl install needs it to
        serves_slots(session, "luarocks, no cpath", os.path.join(tree, "share/lua/5.4"), None)

        prosodyctl_install(session, workdir)
        print("install: %.1fs" % (time.monotonic() - started))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
