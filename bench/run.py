#!/usr/bin/python3
"""Run the presigning benchmarks one after another and compare them.

  /usr/bin/python3 bench/run.py --build build --lua lua5.4

Components (each prints "name value" lines):
  BUILD/bench_sigv4         the C core, the SHA-256 block rate, blocks per URL
  bench/bench_slot.lua      a full slot through the Lua binding, and the
                            plain Lua + util.hashes baseline
  bench/bench_botocore.py   botocore's presigners

Prints a table (ns per URL, ratio to the C core, ratio to the SHA-256 limit
= url_blocks * sha256_block_ns) and PASS/MISS for the targets. A miss is a
result, not an error; the exit status is non-zero only when a component fails
to run, prints too little, or signs a different URL for the same inputs.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Judged as ratios to baselines of the same run: the signing of a slot (fixed time and id,
# so that both sides sign the same URL) against the SHA-256 work it needs and against plain
# Lua on util.hashes. Each slot's id comes from libuuid; what it costs is shown beside them
# and judged where it matters, in Prosody's CPU per slot (bench/prosody_cost.py).
SLOT_MAX_SHA_RATIO = 4.0    # Lua slot's signing vs the SHA-256 limit
MIN_SPEEDUP = 10.0          # Lua slot's signing vs the Lua util.hashes baseline signing the same slot (11.4x seen)


class ComponentError(Exception):
    pass


def run_component(name, argv, required):
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ComponentError("%s: %s" % (name, e))
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise ComponentError("%s exited with %d:\n%s" % (name, proc.returncode, proc.stderr.strip()))
    values = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key:
            values[key] = value.strip()
    missing = [k for k in required if k not in values]
    if missing:
        raise ComponentError("%s printed no %s; output was:\n%s" % (name, ", ".join(missing), proc.stdout))
    for k in values:
        try:
            values[k] = float(values[k])
        except ValueError:
            if k in required and not k.endswith("_url"):
                raise ComponentError("%s: %s is not a number: %r" % (name, k, values[k]))
    print("ran %-22s %5.1f s" % (name, elapsed), flush=True)
    return values


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="directory holding bench_sigv4 and s3sign.so")
    ap.add_argument("--lua", default="lua5.4", help="Lua 5.4 interpreter")
    ap.add_argument("--python", default="/usr/bin/python3", help="a Python with botocore")
    args = ap.parse_args()

    try:
        c = run_component("bench_sigv4", [os.path.join(args.build, "bench_sigv4")],
                          ["c_presign_ns", "sha256_block_ns", "url_blocks", "creq_len", "sts_len",
                           "uuid_generate_random_ns", "c_url"])
        lua = run_component("bench_slot.lua", [args.lua, os.path.join(HERE, "bench_slot.lua"), args.build],
                            ["lua_slot_ns", "lua_slot_fixed_ns", "lua_hashes_ns", "lua_hashes_fixed_ns", "lua_url"])
        boto = run_component("bench_botocore.py", [args.python, os.path.join(HERE, "bench_botocore.py")],
                             ["botocore_ns", "botocore_client_ns", "botocore_url", "botocore_client_url"])
    except ComponentError as e:
        print("bench: component failed: %s" % e, file=sys.stderr)
        return 2

    # same inputs must give the same URL, or the comparison means nothing
    mismatched = [name for name, url in (("Lua binding", lua["lua_url"]),
                                         ("botocore S3SigV4QueryAuth", boto["botocore_url"]),
                                         ("botocore client", boto["botocore_client_url"]))
                  if url != c["c_url"]]
    for name in mismatched:
        print("bench: %s signs a different URL than the C core for the same inputs" % name, file=sys.stderr)
    if mismatched:
        print("  C core: %s" % c["c_url"], file=sys.stderr)
        return 2

    core = c["c_presign_ns"]
    limit = c["url_blocks"] * c["sha256_block_ns"]
    rows = [
        ("C core: sigv4_presign (PUT URL)", core),
        ("Lua: s3sign slot (uuid, clock, PUT+GET URL)", lua["lua_slot_ns"]),
        ("Lua: s3sign slot, fixed now/id", lua["lua_slot_fixed_ns"]),
        ("Lua: plain Lua + util.hashes slot", lua["lua_hashes_ns"]),
        ("Lua: plain Lua + util.hashes slot, fixed now/id", lua["lua_hashes_fixed_ns"]),
        ("Python: botocore S3SigV4QueryAuth", boto["botocore_ns"]),
        ("Python: botocore client presign", boto["botocore_client_ns"]),
    ]

    print()
    print("SHA-256: %.2f ns/block; one URL = %d blocks (canonical request %d B -> %d, "
          "HMAC inner %d B -> %d, outer 1) -> limit %.0f ns"
          % (c["sha256_block_ns"], c["url_blocks"], c["creq_len"], c.get("creq_blocks", 0),
             c["sts_len"], c.get("sts_blocks", 0), limit))
    print("ids: libuuid uuid_generate_random %.0f ns; a whole slot less one with a fixed id: %.0f ns"
          % (c["uuid_generate_random_ns"], lua["lua_slot_ns"] - lua["lua_slot_fixed_ns"]))
    print("same URL for the fixed inputs: C core, s3sign, botocore S3SigV4QueryAuth, botocore client"
          " (plain Lua checked against s3sign in bench_slot.lua)")
    print()
    w = max(len(r[0]) for r in rows)
    print("%-*s  %12s  %10s  %10s" % (w, "item", "ns per URL", "x C core", "x SHA lim"))
    print("%s  %s  %s  %s" % ("-" * w, "-" * 12, "-" * 10, "-" * 10))
    for name, ns in rows:
        print("%-*s  %12.1f  %10.2f  %10.2f" % (w, name, ns, ns / core, ns / limit))
    print("%-*s  %12.1f  %10.2f  %10.2f" % (w, "SHA-256 limit (url_blocks x block)", limit, limit / core, 1.0))
    print()

    signing, baseline = lua["lua_slot_fixed_ns"], lua["lua_hashes_fixed_ns"]
    targets = [
        ("Lua slot's signing <= %.0fx SHA-256 limit (%.0f ns)" % (SLOT_MAX_SHA_RATIO, SLOT_MAX_SHA_RATIO * limit),
         signing <= SLOT_MAX_SHA_RATIO * limit, "%.2fx" % (signing / limit)),
        ("Lua slot's signing >= %.0fx faster than util.hashes signing it" % MIN_SPEEDUP,
         baseline / signing >= MIN_SPEEDUP, "%.1fx" % (baseline / signing)),
    ]
    for name, ok, got in targets:
        print("%-4s  %-58s  (%s)" % ("PASS" if ok else "MISS", name, got))
    return 0


if __name__ == "__main__":
    sys.exit(main())
