#!/usr/bin/python3
"""Prosody's CPU time per slot request, for mod_http_upload_s3 and what to compare it with.

  /usr/bin/python3 bench/prosody_cost.py [--requests 20000] [--rounds 32] [--window 200]

One Prosody (tools/stack.py), one c2s user of bench.test, four kinds of IQ get:
  ping      <ping/> to bench.test: the cheapest IQ Prosody answers
  standin   slot request to standin.bench.test, bench/mod_slot_standin.lua: a fixed
            <slot/> with URLs as long as the module's, no checks. Prosody's floor
            for an IQ of this size
  module    slot request to upload.bench.test, mod_http_upload_s3 from this tree
            (rate limit and daily quota off, so every request gets a slot; access
            control on: the user is the component's parent host's)
  share     slot request to share.bench.test, Prosody's own mod_http_file_share

Each kind gets --requests IQs (every slot request for a different file name and
size), sent in --rounds rounds with the kinds interleaved (in balanced orders)
to spread the machine's noise over all of them, pipelined on one connection
with at most --window outstanding. A round's cost is Prosody's CPU time across
it and after it, until Prosody has been idle for a while (the module writes its
records behind, in the second after the slots): /proc/PID/task/*/schedstat
(on-CPU nanoseconds) where the kernel has it, else utime+stime from
/proc/PID/stat (clock ticks). Figures are per request.

The module needs no S3 here: presigning does no I/O, and no upload happens.

Then what watching users' outgoing messages costs (a retracted message takes its
file with it): chat messages from a user of bench.test, whose upload component
watches them, and from a user of plain.test, whose component has the option
off (http_upload_s3_delete_on_retraction = false), each sent to the user's own
address, with a plain body or with one of the service's download links, in
interleaved rounds as above; each batch ends with a ping, whose answer says
every message before it was handled. Printed per message, and on minus off.

Prints a table, the ratios, PASS/MISS for the target (module within 1.15x of
the stand-in) and "prosody_<kind>_us X" lines. A miss is a result: the exit
status is 1 only when a kind got errors or missing answers (the figures would
mean nothing), 2 when the stack could not be set up.
"""
import argparse
import asyncio
import glob
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
import client
import stack
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

TARGET = 1.15            # module / stand-in
PLAIN = "plain.test"     # its upload component does not watch messages
PASSWORD = "bench password"
DOMAIN = "bench.test"
NS = client.NS
NS_STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"

# kind -> (label, to, id prefix)
KINDS = {
    "ping": ("ping (bench.test)", DOMAIN, "p"),
    "standin": ("stand-in slot (fixed URLs)", "standin." + DOMAIN, "s"),
    "module": ("mod_http_upload_s3 slot", "upload." + DOMAIN, "m"),
    "share": ("mod_http_file_share slot", "share." + DOMAIN, "f"),
}
BY_PREFIX = {prefix: kind for kind, (_, _, prefix) in KINDS.items()}

# The slot bench/bench_slot.lua and bench_sigv4.c sign (bench/mod_slot_standin.lua's
# URLs are one of these); only the file name and size change per request.
MODULE_OPTIONS = {
    "access_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "region": "eu-west-2",
    "bucket": "example-upload-bucket",
    "endpoint": "https://s3.eu-west-2.amazonaws.com",
    "path_style": True,
    "path": "http_uploads",
    "rate_limit": False,     # false = unlimited: every request gets a slot
    "daily_quota": False,
    "purposes": ["profile", "ephemeral", "permanent"],   # offered, as a full deployment has them
}


def filename(i):
    # fixed width, so that every URL of a kind has the same length as the stand-in's
    return "holiday photo %06d.jpg" % i


def size(i):
    return 10000 + (i * 7919) % 5000000


def request_xml(kind, i):
    _, to, prefix = KINDS[kind]
    if kind == "ping":
        return "<iq type='get' id='%s%d' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % (prefix, i, to)
    return ("<iq type='get' id='%s%d' to='%s'><request xmlns='%s' filename='%s' size='%d' "
            "content-type='image/jpeg'/></iq>" % (prefix, i, to, NS, filename(i), size(i)))


# ---- Prosody's CPU time ------------------------------------------------------

def schedstat_ns(pid):
    """On-CPU nanoseconds of all the process's threads, or None without schedstat."""
    total = 0
    paths = glob.glob("/proc/%d/task/*/schedstat" % pid)
    if not paths:
        return None
    for path in paths:
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
    return total


class Clock:
    """Prosody's CPU seconds: schedstat when it works, else /proc/PID/stat (ticks)."""

    def __init__(self, prosody, source):
        self.p = prosody
        if source == "auto":
            source = "schedstat" if schedstat_ns(prosody.proc.pid) else "stat"
        self.source = source

    def __call__(self):
        """(seconds from the chosen source, seconds from /proc/PID/stat)"""
        try:
            ticks = self.p.cpu_seconds()
            ns = schedstat_ns(self.p.proc.pid) if self.source == "schedstat" else None
        except (OSError, AttributeError):
            ns = ticks = None
        if ticks is None or (self.source == "schedstat" and ns is None):
            raise RuntimeError("Prosody is gone (see its log)")
        return (ns / 1e9 if ns is not None else ticks), ticks


# ---- the client: pipelined IQs, every answer checked --------------------------

class Blaster:
    def __init__(self, c, window, timeout):
        self.c, self.window, self.timeout = c, window, timeout
        self.outstanding = 0
        self.slot_free = asyncio.Event()
        self.all_done = asyncio.Event()
        self.results = {k: 0 for k in KINDS}
        self.errors = {k: 0 for k in KINDS}
        self.bad = {k: 0 for k in KINDS}   # results without a usable slot
        self.first_problem = {}
        self.url_lengths = {k: set() for k in KINDS}
        c.xmpp.register_handler(Callback("bench answers", MatchXPath("{jabber:client}iq"), self.on_answer))

    def problem(self, kind, text):
        self.first_problem.setdefault(kind, text)

    def on_answer(self, iq):
        ident = iq["id"]
        kind = BY_PREFIX.get(ident[:1])
        if kind is None or not ident[1:].isdigit():
            return
        i = int(ident[1:])
        xml = iq.xml
        if iq["type"] == "error":
            self.errors[kind] += 1
            err = next((e for e in xml if e.tag.endswith("}error")), None)
            cond = None if err is None else next(
                (e.tag[len(NS_STANZAS):] for e in err if e.tag.startswith(NS_STANZAS) and not e.tag.endswith("}text")),
                None)
            text = None if err is None else err.findtext(NS_STANZAS + "text")
            self.problem(kind, "error %s: %s" % (cond, text))
        elif iq["type"] != "result":
            self.bad[kind] += 1
            self.problem(kind, "answer of type %r" % iq["type"])
        elif kind == "ping":
            self.results[kind] += 1
        else:
            slot = xml.find("{%s}slot" % NS)
            put = None if slot is None else slot.find("{%s}put" % NS)
            get = None if slot is None else slot.find("{%s}get" % NS)
            put_url = put.get("url") if put is not None else None
            get_url = get.get("url") if get is not None else None
            encoded = filename(i).replace(" ", "%20")
            if not put_url or not get_url:
                self.bad[kind] += 1
                self.problem(kind, "result without put and get URLs")
            elif kind != "standin" and encoded not in put_url:
                self.bad[kind] += 1
                self.problem(kind, "slot for another file: %s" % put_url[:120])
            elif kind == "module" and "X-Amz-Signature=" not in put_url:
                self.bad[kind] += 1
                self.problem(kind, "PUT URL not presigned: %s" % put_url[:120])
            else:
                self.results[kind] += 1
                self.url_lengths[kind].add((len(put_url), len(get_url)))
        self.outstanding -= 1
        self.slot_free.set()
        if self.outstanding == 0:
            self.all_done.set()

    async def _wait(self, event, what):
        try:
            await asyncio.wait_for(event.wait(), self.timeout)
        except asyncio.TimeoutError:
            raise RuntimeError("no answer within %ss (%s; %d outstanding)" % (self.timeout, what, self.outstanding))

    async def batch(self, kind, first, count):
        send = self.c.xmpp.send_raw
        self.all_done.clear()
        for i in range(first, first + count):
            while self.outstanding >= self.window:
                self.slot_free.clear()
                await self._wait(self.slot_free, kind)
            self.outstanding += 1
            send(request_xml(kind, i))
        while self.outstanding:
            self.all_done.clear()
            await self._wait(self.all_done, kind)

    def run(self, kind, first, count):
        self.c.run(self.batch(kind, first, count))

    def answered(self, kind):
        return self.results[kind] + self.errors[kind] + self.bad[kind]


# ---- messages: what watching them costs ---------------------------------------------

# a link as the module hands them out for the benchmark's config (to no file of the sender's)
LINK = ("https://s3.eu-west-2.amazonaws.com/example-upload-bucket/http_uploads/"
        "8d7e4b5a-2f1c-4e9b-a3d6-0c5f7e2b91a4/holiday%20photo.jpg")
MESSAGE_KINDS = {   # kind -> (label, sender's host, body)
    "text_on": ("plain message, watched", DOMAIN, "shall we meet at noon in the usual place?"),
    "link_on": ("message with a link, watched", DOMAIN, "look: " + LINK),
    "text_off": ("plain message, option off", PLAIN, "shall we meet at noon in the usual place?"),
    "link_off": ("message with a link, option off", PLAIN, "look: " + LINK),
}


async def message_batch(c, jid, body, first, count, timeout):
    for i in range(first, first + count):
        c.xmpp.send_raw("<message to='%s' type='chat' id='msg%d'><body>%s</body>"
                        "<origin-id xmlns='urn:xmpp:sid:0' id='msg%d'/></message>" % (jid, i, body, i))
        if i % 200 == 0:
            await asyncio.sleep(0)   # let the socket drain
    await c.xmpp["xep_0199"].ping(jid=jid.split("@")[1], timeout=timeout)   # answered once all before it are handled


def measure_messages(clients, clock, requests, rounds, timeout):
    kinds = list(MESSAGE_KINDS)
    orders = balanced_orders(kinds)
    per_round = [requests // rounds + (1 if r < requests % rounds else 0) for r in range(rounds)]
    round_us = {k: [] for k in kinds}
    index = 0
    for kind in kinds:   # warm-up, not measured
        _, host, body = MESSAGE_KINDS[kind]
        clients[host].run(message_batch(clients[host], "alice@" + host, body, index, 200, timeout))
        index += 200
    for r, count in enumerate(per_round):
        for kind in orders[r % len(orders)]:
            _, host, body = MESSAGE_KINDS[kind]
            t0, _ = clock()
            clients[host].run(message_batch(clients[host], "alice@" + host, body, index, count, timeout))
            t1, _ = clock()
            index += count
            round_us[kind].append(1e6 * (t1 - t0) / count)
    return round_us


def report_messages(round_us, requests):
    print()
    print("What watching outgoing messages costs: %d messages of each kind, to the sender's own address" % requests)
    header = "%-34s %14s %16s" % ("kind", "us/message", "rounds min-max")
    print(header)
    print("-" * len(header))
    median = {k: statistics.median(v) for k, v in round_us.items()}
    for kind, (label, _, _) in MESSAGE_KINDS.items():
        print("%-34s %14.1f %16s" % (label, median[kind], "%.0f-%.0f" % (min(round_us[kind]), max(round_us[kind]))))
    print("watching a plain message: %+.1f us (%.3fx);  a message with a link: %+.1f us (%.3fx)   (medians of rounds)"
          % (median["text_on"] - median["text_off"], median["text_on"] / median["text_off"],
             median["link_on"] - median["link_off"], median["link_on"] / median["link_off"]))
    for kind in MESSAGE_KINDS:
        print("prosody_%s_us %.1f" % (kind, median[kind]))


# ---- the stack -----------------------------------------------------------------

def start_prosody(workdir, log_level, module_path):
    http_port = stack.free_port()
    global_options = {
        "http_ports": [http_port],
        "http_interfaces": ["127.0.0.1"],
        "https_ports": [],
        # mod_http_file_share keeps every slot in an archive store; internal storage
        # refuses more than 10000 items by default
        "storage_archive_item_limit": 1000000000,
    }
    p_dir_log = None
    if log_level == "info":
        # a file name alone: Prosody logs info and above to it (a production-like level);
        # later assignments win in Prosody's config, so this replaces stack.py's debug log
        p_dir_log = os.path.join(workdir, "prosody-info.log")
        global_options["log"] = p_dir_log
    options = {"http_upload_s3_" + k: v for k, v in MODULE_OPTIONS.items()}
    p = stack.Prosody(
        workdir,
        hosts={DOMAIN: {"modules_enabled": []}, PLAIN: {"modules_enabled": []}},
        components={"upload." + DOMAIN: options,
                    "upload." + PLAIN: dict(options, http_upload_s3_delete_on_retraction=False)},
        global_options=global_options,
        extra_config=[
            'Component "standin.%s" "slot_standin"' % DOMAIN,
            'Component "share.%s" "http_file_share"' % DOMAIN,
            "\thttp_file_share_size_limit = %d" % (1 << 30),
            "\thttp_file_share_daily_quota = %d" % (10 ** 15),
        ],
        # this tree's module (or a variant of it), and the stand-in beside this script
        plugin_paths=[module_path, HERE],
    )
    if p_dir_log:
        p.log = p_dir_log   # log_text() reads the file Prosody really writes
    return p


def start_perf(pid, path):
    proc = subprocess.Popen(["perf", "record", "-q", "-g", "-p", str(pid), "-o", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)   # let it attach
    if proc.poll() is not None:
        raise RuntimeError("perf record failed: %s" % proc.stderr.read().decode(errors="replace").strip())
    return proc


def stop_perf(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# ---- the run -------------------------------------------------------------------

def balanced_orders(kinds):
    """Orders of the kinds, one per round, in which every kind comes right after every
    other one equally often (a Williams square and its mirror image), so that what one
    kind leaves behind (garbage to collect, buffers) falls on all alike."""
    n = len(kinds)
    first, lo, hi = [0], 1, n - 1
    while len(first) < n:
        first.append(lo)
        lo += 1
        if len(first) < n:
            first.append(hi)
            hi -= 1
    rows = [[kinds[(j + r) % n] for j in first] for r in range(n)]
    # then the same backwards: every kind's mean position is the same, so a steady
    # drift in the machine's speed weighs on all kinds alike
    return rows + [row[::-1] for row in rows]


# What a round leaves behind is part of its cost: the module writes its records behind, in
# the seconds after the slots (a 1 s timer). After each round Prosody's CPU is counted on
# until it has been idle for longer than that timer's period.
IDLE_WINDOW = 1.1        # seconds
IDLE_CPU = 0.002         # seconds of CPU in such a window: idle
SETTLE_LIMIT = 30        # seconds: a round that leaves more behind than this is a fault


def settle(clock):
    """Wait until Prosody is idle; the CPU (seconds, ticks) it spent from now until the
    idle window began."""
    samples = [(time.monotonic(),) + clock()]
    while True:
        time.sleep(0.1)
        now = time.monotonic()
        samples.append((now,) + clock())
        if now - samples[0][0] > SETTLE_LIMIT:
            raise RuntimeError("Prosody was still busy %d s after a round" % SETTLE_LIMIT)
        # the latest sample at least a window ago
        start = next((s for s in reversed(samples) if now - s[0] >= IDLE_WINDOW), None)
        if start and samples[-1][1] - start[1] < IDLE_CPU:
            return start[1] - samples[0][1], start[2] - samples[0][2]


def measure(p, blaster, clock, kinds, requests, rounds, perf_path):
    orders = balanced_orders(kinds)
    per_round = [requests // rounds + (1 if r < requests % rounds else 0) for r in range(rounds)]
    cpu = {k: 0.0 for k in kinds}
    ticks = {k: 0.0 for k in kinds}
    round_us = {k: [] for k in kinds}
    index = 0

    # warm-up, not measured: caches, the quota and archive stores, buffers
    for kind in kinds:
        blaster.run(kind, index, min(200, requests))
        index += min(200, requests)
    settle(clock)

    perf = start_perf(p.proc.pid, perf_path) if perf_path else None
    try:
        for r, count in enumerate(per_round):
            order = orders[r % len(orders)]
            for kind in order:
                t0, s0 = clock()
                blaster.run(kind, index, count)
                t1, s1 = clock()
                behind, behind_ticks = settle(clock)
                t1, s1 = t1 + behind, s1 + behind_ticks
                index += count
                cpu[kind] += t1 - t0
                ticks[kind] += s1 - s0
                round_us[kind].append(1e6 * (t1 - t0) / count)
    finally:
        if perf:
            stop_perf(perf)
    return cpu, ticks, round_us


def report(args, clock, kinds, blaster, cpu, ticks, round_us, elapsed, valid=True):
    n = args.requests
    us = {k: 1e6 * cpu[k] / n for k in kinds}
    us_ticks = {k: 1e6 * ticks[k] / n for k in kinds}
    base = us.get("standin")
    print()
    print("Prosody %s CPU per request: %d requests of each kind in %d rounds, window %d, log level %s"
          % (args.prosody_version, n, args.rounds, args.window,
             args.log_level))
    print("clock: %s; measured phase %.1f s wall" % (
        "/proc/PID/task/*/schedstat (ns)" if clock.source == "schedstat" else "/proc/PID/stat utime+stime (ticks)",
        elapsed))
    print()
    header = "%-28s %8s %7s %10s %16s %10s" % ("kind", "results", "errors", "us/request", "rounds min-max",
                                               "x stand-in")
    print(header)
    print("-" * len(header))
    for kind in kinds:
        ratio = "%.2f" % (us[kind] / base) if base else "-"
        print("%-28s %8d %7d %10.1f %16s %10s" % (
            KINDS[kind][0], blaster.results[kind], blaster.errors[kind] + blaster.bad[kind], us[kind],
            "%.0f-%.0f" % (min(round_us[kind]), max(round_us[kind])), ratio))
    if args.verbose:
        for kind in kinds:
            print("  %-8s per round: %s" % (kind, " ".join("%.0f" % v for v in round_us[kind])))
    if clock.source == "schedstat":
        print("cross-check, /proc/PID/stat utime+stime (10 ms ticks): "
              + ", ".join("%s %.0f" % (k, us_ticks[k]) for k in kinds) + " us")
    lengths = {k: sorted(blaster.url_lengths[k]) for k in kinds if k != "ping"}
    if lengths:
        print("slot URL lengths (PUT, GET): " + "; ".join(
            "%s %s" % (k, ", ".join("%d/%d" % l for l in v[:3]) + (" ..." if len(v) > 3 else ""))
            for k, v in lengths.items()))
    print()
    judged = "module" in us and "standin" in us
    # judged on the rounds' medians: a neighbour's burst on this shared machine lands in a
    # round or two and moves the totals, not the medians
    median_ratio = judged and statistics.median(round_us["module"]) / statistics.median(round_us["standin"])
    if judged:
        print("module / stand-in  %.2f   (the module's own work: %.1f us on top of Prosody's floor)"
              % (us["module"] / us["standin"], us["module"] - us["standin"]))
    if "module" in us and "ping" in us:
        print("module / ping      %.2f" % (us["module"] / us["ping"]))
    if "share" in us and "standin" in us:
        print("share / stand-in   %.2f" % (us["share"] / us["standin"]))
    if "share" in us and "module" in us:
        print("share / module     %.2f" % (us["share"] / us["module"]))
    if judged:
        print("module / stand-in, median round  %.2f" % median_ratio)
        print()
        verdict = ("PASS" if median_ratio <= TARGET else "MISS") if valid else "----"
        print("%-4s  mod_http_upload_s3 within %.2fx of the stand-in  (%.2fx, medians of %d rounds)%s"
              % (verdict, TARGET, median_ratio, len(round_us["module"]),
                 "" if valid else "  not judged: some answers were errors"))
    if not valid:
        return   # no machine-readable figures from a run whose answers were wrong
    print()
    for kind in kinds:
        print("prosody_%s_us %.1f" % (kind, us[kind]))
    if judged:
        print("prosody_module_standin_ratio %.3f" % median_ratio)


def check_answers(kinds, blaster, requests_total):
    ok = True
    for kind in kinds:
        got = blaster.answered(kind)
        if blaster.errors[kind] or blaster.bad[kind] or blaster.results[kind] != requests_total:
            ok = False
            print("bench: %s: %d results, %d errors, %d bad, %d of %d answered; first problem: %s"
                  % (kind, blaster.results[kind], blaster.errors[kind], blaster.bad[kind], got, requests_total,
                     blaster.first_problem.get(kind)), file=sys.stderr)
    lengths = blaster.url_lengths
    if "module" in kinds and "standin" in kinds and lengths["module"] and lengths["standin"]:
        mod_put = sum(l[0] for l in lengths["module"]) / len(lengths["module"])
        std_put = sum(l[0] for l in lengths["standin"]) / len(lengths["standin"])
        if abs(mod_put - std_put) > 0.03 * mod_put:
            print("bench: warning: the stand-in's PUT URL (%d) is not as long as the module's (%d): "
                  "set slot_standin_put_url/get_url to match" % (std_put, mod_put), file=sys.stderr)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20000, help="measured requests of each kind (default 20000)")
    ap.add_argument("--rounds", type=int, default=32,
                    help="rounds the requests are spread over, the kinds' order changing from one to the next "
                    "(default 32: for four kinds, every kind comes right after every other one four times each "
                    "way round)")
    ap.add_argument("--window", type=int, default=200, help="most requests outstanding at once (default 200)")
    ap.add_argument("--kinds", default="ping,standin,module,share",
                    help="comma-separated subset of ping,standin,module,share")
    ap.add_argument("--log-level", choices=("info", "debug"), default="info",
                    help="Prosody's log level (default info, as in production; debug logs every stanza)")
    ap.add_argument("--clock", choices=("auto", "schedstat", "stat"), default="auto",
                    help="where Prosody's CPU time comes from (default: schedstat when available)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds to wait for any one answer (default 30)")
    ap.add_argument("--perf", metavar="PATH", help="perf record -g Prosody during the measured rounds into PATH "
                    "(adds overhead: compare kinds only within one run)")
    ap.add_argument("--module-path", default=os.path.join(stack.ROOT, "lua"), metavar="DIR",
                    help="plugin directory holding mod_http_upload_s3/ (default: this tree's lua/), "
                    "to compare a variant of the module against the same floor")
    ap.add_argument("--messages", type=int, default=20000,
                    help="measured messages of each kind in the message phase (default 20000; 0: none)")
    ap.add_argument("--verbose", action="store_true", help="also print every round's figure")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (config, logs, data)")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds or args.requests < args.rounds or args.rounds < 1 or args.window < 1:
        ap.error("bad --kinds, --requests, --rounds or --window")

    workdir = stack.workdir()
    p = c = plain = None
    status = 0
    try:
        try:
            p = start_prosody(workdir, args.log_level, args.module_path)
            p.register("alice", DOMAIN, PASSWORD)
            p.register("alice", PLAIN, PASSWORD)
            c = client.Client("alice@%s" % DOMAIN, PASSWORD, p.port)
            plain = client.Client("alice@%s" % PLAIN, PASSWORD, p.port)
            try:
                args.prosody_version = p.version()
            except OSError:
                args.prosody_version = "(version unknown)"
        except Exception as e:  # noqa: BLE001  (any setup failure: say so, exit 2)
            print("bench: could not start the stack: %s" % e, file=sys.stderr)
            if p:
                print(p.log_text()[-3000:], file=sys.stderr)
            return 2
        blaster = Blaster(c, args.window, args.timeout)
        clock = Clock(p, args.clock)
        started = time.monotonic()
        try:
            cpu, ticks, round_us = measure(p, blaster, clock, kinds, args.requests, args.rounds, args.perf)
        except RuntimeError as e:
            print("bench: %s" % e, file=sys.stderr)
            check_answers(kinds, blaster, args.requests + min(200, args.requests))
            return 1
        elapsed = time.monotonic() - started
        if not check_answers(kinds, blaster, args.requests + min(200, args.requests)):
            status = 1
        sys.stderr.flush()
        report(args, clock, kinds, blaster, cpu, ticks, round_us, elapsed, valid=not status)
        if not status and args.messages:
            report_messages(measure_messages({DOMAIN: c, PLAIN: plain}, clock, args.messages, args.rounds,
                                             args.timeout), args.messages)
        if status:
            print("bench: some answers were errors or missing: the figures above mean little", file=sys.stderr)
        if args.perf:
            print("perf data: %s (perf report -i %s --no-children --sort dso,sym)" % (args.perf, args.perf))
        return status
    finally:
        for each in (c, plain):
            try:
                if each:
                    each.close()
            except Exception:  # noqa: BLE001  (a bounded best effort on the way out)
                pass
        if p:
            p.stop()
        if args.keep:
            print("work directory kept: %s" % workdir)
        else:
            stack.cleanup(workdir)
        client.shutdown()


if __name__ == "__main__":
    sys.exit(main())
