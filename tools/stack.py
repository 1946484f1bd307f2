"""A local upload stack on loopback: Ceph RGW (a real, signature-checking S3),
Prosody with mod_http_upload_s3 from this tree, and test accounts.

Used by the demo (tools/demo.py) and the integration tests. Every server binds
127.0.0.1 on a free port; every wait is bounded; stop() kills only the
processes started here. Run with /usr/bin/python3 (Debian's botocore).
"""
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
import s3util
import checks
import client

def _command(variable, default):
    """A command from the environment; a relative path is taken from here, not the server's folder."""
    command = os.environ.get(variable, default)
    return os.path.abspath(command) if os.sep in command else command


LOGS = os.path.join(ROOT, "build", "logs")   # what the tests' servers logged, kept for test_logs.py
PG_BIN = "/usr/lib/postgresql/15/bin"       # Debian 12's PostgreSQL

PROSODY = _command("PROSODY", "prosody")
PROSODYCTL = _command("PROSODYCTL", "prosodyctl")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    tail = open(log, errors="replace").read()[-3000:] if log and os.path.exists(log) else ""
    raise RuntimeError("nothing listens on 127.0.0.1:%d after %ss\n%s" % (port, timeout, tail))


def lua_string(value):
    """A Lua literal for a config value: string, number, boolean, list or dict."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "{ " + ", ".join(lua_string(v) for v in value) + " }"
    if isinstance(value, dict):
        return "{ " + ", ".join("%s = %s" % (k, lua_string(v)) for k, v in value.items()) + " }"
    return '"' + "".join(c if c.isalnum() or c in " ./:-_@+=~" else "\\%d" % b
                         for c in value for b in c.encode()) + '"'


class RGW:
    """A throw-away Ceph RADOS Gateway with one user and one bucket."""

    def __init__(self, workdir, bucket="uploads", sts=False):
        checks.requires("Ceph's RADOS Gateway (radosgw)", checks.program("radosgw"),
                        checks.debian_package("radosgw (with ceph-mon, ceph-osd, ceph-common)"))
        self.dir = os.path.join(workdir, "rgw")
        env = dict(os.environ, RGW_BUCKET=bucket, RGW_STS="1" if sts else "")
        subprocess.run([os.path.join(ROOT, "tools", "rgw", "start"), self.dir], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
        self.env = s3util.load_env(self.dir)
        self.s3 = s3util.S3(self.dir)
        self.endpoint = self.env["RGW_ENDPOINT"]
        self.bucket = self.env["RGW_BUCKET"]

    def module_options(self, **extra):
        """http_upload_s3_* options that point the module at this gateway, plus extra
        ones given without the prefix (expires=5 -> http_upload_s3_expires = 5); one
        given as None is left out (access_id=None: no static key)."""
        options = {
            "access_id": self.env["RGW_ACCESS_KEY"], "secret_key": self.env["RGW_SECRET_KEY"],
            "region": self.env["RGW_REGION"], "bucket": self.bucket, "endpoint": self.endpoint,
            "path_style": True, "path": "http_uploads",
        }
        options.update(extra)
        return {"http_upload_s3_" + k: v for k, v in options.items() if v is not None}

    def admin(self, *args):
        """radosgw-admin on this cluster; its output."""
        return subprocess.run(["radosgw-admin", "-c", os.path.join(self.dir, "ceph.conf"), "-n", "client.admin"]
                              + list(args), check=True, timeout=60, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL).stdout.decode()

    def create_role(self, name):
        """A role the test user may assume (with RGW_STS), allowed everything in S3; its ARN."""
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole"],
                                                         "Principal": {"AWS": ["arn:aws:iam:::user/test"]}}]}
        self.admin("role", "create", "--role-name=" + name, "--path=/",
                   "--assume-role-policy-doc=" + json.dumps(trust))
        rights = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"],
                                                          "Resource": "arn:aws:s3:::*"}]}
        self.admin("role-policy", "put", "--role-name=" + name, "--policy-name=s3",
                   "--policy-doc=" + json.dumps(rights))
        return "arn:aws:iam:::role/" + name

    def add_key(self):
        """Another access key of the test user: (access key id, secret)."""
        alnum = string.ascii_letters + string.digits
        access, secret = "".join(secrets.choice(alnum) for _ in range(20)), "".join(secrets.choice(alnum) for _ in range(40))
        self.admin("key", "create", "--uid=test", "--key-type=s3", "--access-key=" + access, "--secret-key=" + secret)
        return access, secret

    def remove_key(self, access):
        self.admin("key", "rm", "--uid=test", "--key-type=s3", "--access-key=" + access)

    def stop(self):
        subprocess.run([os.path.join(ROOT, "tools", "rgw", "stop"), self.dir], check=False, timeout=60)


class Prosody:
    """Prosody in the foreground from a generated config in its own directory.

    hosts: {"example.test": {option: value}} for VirtualHosts (with mod_http_upload_s3
    unless the options set modules_enabled) and components: {"upload.example.test":
    {option: value}} for Components of http_upload_s3. Option names are written as given.
    """

    def __init__(self, workdir, hosts, components=None, extra_modules=(), global_options=None, extra_config=(),
                 extra_env=None, start=True, plugin_paths=(os.path.join(ROOT, "lua"),),
                 cpath=os.path.join(ROOT, "build", "?.so")):
        self.dir = os.path.join(workdir, "prosody-%d" % free_port())
        os.makedirs(os.path.join(self.dir, "data"))
        # an empty certificate folder, as a packaged server has: prosodyctl then has nothing to complain of
        os.makedirs(os.path.join(self.dir, "certs"))
        self.port = free_port()
        self.config = os.path.join(self.dir, "prosody.cfg.lua")
        self.log = os.path.join(self.dir, "prosody.log")
        self.hosts, self.components = hosts, components or {}
        self.extra_modules, self.global_options = extra_modules, global_options or {}
        self.extra_config, self.extra_env = list(extra_config), extra_env or {}
        self.plugin_paths, self.cpath = list(plugin_paths), cpath
        self.write_config()
        self.proc = None
        if start:
            self.start()

    def write_config(self):
        lines = [
            "-- generated by tools/stack.py",
            'pidfile = %s' % lua_string(os.path.join(self.dir, "prosody.pid")),
            'data_path = %s' % lua_string(os.path.join(self.dir, "data")),
            'plugin_paths = %s' % lua_string(self.plugin_paths),
            'log = { { levels = { min = "debug" }, to = "file", filename = %s } }' % lua_string(self.log),
            "c2s_ports = { %d }" % self.port,
            'c2s_interfaces = { "127.0.0.1" }',
            "s2s_ports = { }",
            "c2s_require_encryption = false",
            "allow_unencrypted_plain_auth = true",
            'authentication = "internal_hashed"',
            "modules_enabled = { %s }" % ", ".join(lua_string(m) for m in
                                                 ["roster", "saslauth", "disco", "ping", "register"]
                                                 + list(self.extra_modules)),
            'modules_disabled = { "s2s", "tls" }',
        ]
        if os.geteuid() == 0:
            lines.append("run_as_root = true")
        # prosodyctl reload and the like, which Prosody 13 leaves to a service manager, of which there is none here
        lines.append("prosodyctl_service_warnings = false")
        for name, value in self.global_options.items():
            lines.append("%s = %s" % (name, lua_string(value)))

        def options(opts):
            return ["\t%s = %s" % (k, lua_string(v)) for k, v in opts.items()]
        for host, opts in self.hosts.items():
            lines += ['VirtualHost "%s"' % host] + options(dict({"modules_enabled": ["http_upload_s3"]}, **opts))
        for host, opts in self.components.items():
            lines += ['Component "%s" "http_upload_s3"' % host] + options(opts)
        lines += self.extra_config
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def env(self):
        # the C library (from the build tree unless told otherwise), found the standard way;
        # cpath=None: no help at all, as a server that has only what an installer put there
        env = dict(os.environ, **self.extra_env)
        if self.cpath is None:
            env.pop("LUA_CPATH_5_4", None)
            env.pop("LUA_CPATH", None)
        else:
            env["LUA_CPATH_5_4"] = self.cpath + ";;"
        return env

    def start(self):
        out = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen([PROSODY, "--config", self.config, "-F"], env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        wait_for_port(self.port, 20, self.proc, self.log)

    def prosodyctl(self, *args, timeout=60):
        """(exit status, output) of prosodyctl with this config."""
        r = subprocess.run([PROSODYCTL, "--config", self.config] + list(args), env=self.env, timeout=timeout,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return r.returncode, r.stdout.decode(errors="replace")

    def register(self, user, host, password):
        subprocess.run([PROSODYCTL, "--config", self.config, "register", user, host, password], env=self.env,
                       check=True, timeout=30, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def kill(self):
        """A hard crash: SIGKILL, nothing written on the way out."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def version(self):
        """The running server's version, from its greeting in the log."""
        for line in self.log_text().splitlines():
            if "Hello and welcome to Prosody version" in line:
                return line.rsplit(" ", 1)[1]
        return "unknown"

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])

    def cpu_seconds(self):
        """User plus system CPU time the server has used, from /proc/PID/stat."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()


class PostgreSQL:
    """A throw-away PostgreSQL server on a free loopback port, with a database and a
    password user for Prosody. As root it runs as the postgres user, as initdb insists."""

    def __init__(self, on_exit):
        checks.requires("a PostgreSQL server (initdb)", os.path.isdir(PG_BIN), checks.debian_package("postgresql"))
        self.dir = tempfile.mkdtemp(prefix="http-upload-s3-pg-")
        on_exit(self.cleanup)   # before anything can fail
        self.data, self.log = os.path.join(self.dir, "data"), os.path.join(self.dir, "server.log")
        self.port, self.password = free_port(), secrets.token_hex(12)
        if os.geteuid() == 0:
            import pwd
            pg = pwd.getpwnam("postgres")
            os.chown(self.dir, pg.pw_uid, pg.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        else:
            self.as_owner = []
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres")
        self.start()
        self.psql("CREATE USER prosody PASSWORD '%s'" % self.password)
        self.psql("CREATE DATABASE prosody OWNER prosody")   # not in the same transaction

    def _run(self, program, *args, check=True):
        return subprocess.run(self.as_owner + [os.path.join(PG_BIN, program)] + list(args), check=check, timeout=60,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.dir)

    def start(self):
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30", "start", "-o",
                  "-p %d -k %s -c listen_addresses=127.0.0.1" % (self.port, self.dir))

    def stop(self):
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30", "stop", check=False)

    def psql(self, sql, database="postgres"):
        return self._run("psql", "-h", self.dir, "-p", str(self.port), "-U", "postgres", "-d", database,
                         "-At", "-c", sql).stdout.decode()

    def prosody_options(self):
        return {"storage": "sql", "sql": {"driver": "PostgreSQL", "database": "prosody", "username": "prosody",
                                          "password": self.password, "host": "127.0.0.1", "port": self.port}}

    def cleanup(self):
        if os.path.isdir(self.data):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def workdir():
    return tempfile.mkdtemp(prefix="http-upload-s3-")


def cleanup(path):
    shutil.rmtree(path, ignore_errors=True)


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A test server's request handler: no access log in the test's output, and one way to answer."""

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", content_type=None):
        body = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class S3Proxy(QuietHandler):
    """In front of the gateway: forwards each request as it came (Host as signed), or, with
    server.mode = "down", closes the connection as an S3 that went away does."""

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.mode == "down":
            self.close_connection = True
            return
        status, data, headers = client.http_request(self.command, self.server.target + self.path, body or None,
                                                    self.headers)
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        # a HEAD's length is the object's, not of the (empty) body
        length = next((v for k, v in headers.items() if k.lower() == "content-length"), "0")
        self.send_header("Content-Length", length if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


class Session:
    """A work folder and what a test or the demo starts in it, stopped in
    reverse order however the run ends:

        with stack.Session() as session:
            rgw = session.rgw()
            prosody = session.prosody({"example.test": rgw.module_options()})
    """

    def __init__(self):
        self.workdir = workdir()
        self._on_exit = []
        self._servers, self._credentials = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for stop in reversed(self._on_exit):
            stop()
        self._keep_logs()
        cleanup(self.workdir)

    def _keep_logs(self):
        """Copy the servers' logs to build/logs, with the credentials they must not
        contain, for tests/integration/test_logs.py to search."""
        os.makedirs(LOGS, exist_ok=True)
        run = "%s-%d-%d" % (os.path.splitext(os.path.basename(sys.argv[0]))[0], os.getpid(), time.time())
        for n, server in enumerate(self._servers):
            for name in ("prosody.log", "stdout.log"):
                path = os.path.join(server.dir, name)
                if os.path.exists(path):
                    shutil.copy(path, os.path.join(LOGS, "%s-%d-%s" % (run, n, name)))
        with open(os.path.join(LOGS, "credentials.txt"), "a") as f:
            f.writelines(secret + "\n" for secret in self._credentials)

    def on_exit(self, stop):
        """Call stop() when the session ends, before what was started earlier."""
        self._on_exit.append(stop)

    def serve(self, server):
        """Run an HTTP server (bound to loopback) in a thread until the session ends; the server."""
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.on_exit(server.shutdown)
        return server

    def http_server(self, handler):
        """handler served on a free loopback port until the session ends; the server
        (its port is server.server_port)."""
        return self.serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler))

    def rgw(self, **options):
        rgw = RGW(self.workdir, **options)
        self.on_exit(rgw.stop)
        self._credentials.append(rgw.env["RGW_SECRET_KEY"])
        return rgw

    def s3_proxy(self, rgw):
        """An S3Proxy in front of rgw; its endpoint is server.endpoint, its mode "up" or "down"."""
        server = self.http_server(S3Proxy)
        server.target, server.mode = rgw.endpoint, "up"
        server.endpoint = "http://127.0.0.1:%d" % server.server_port
        return server

    def postgresql(self):
        # its password is no secret of the module's: Prosody's own debug log shows it
        return PostgreSQL(self.on_exit)

    def secret(self, value):
        """Something no server log may contain (a secret, a session token, a provider's answer)."""
        self._credentials.append(value)
        return value

    def prosody(self, *args, **options):
        # registered before starting, so that one that fails to come up is stopped too
        start = options.pop("start", True)
        server = Prosody(self.workdir, *args, start=False, **options)
        self.on_exit(server.stop)
        self._servers.append(server)
        if start:
            server.start()
        return server
