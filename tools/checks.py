"""Counted checks for the integration tests: failures are printed as they
happen, and summary() prints the "N passed, M failed" line CI reads."""
import os
import shutil
import subprocess
import sys
import time

from client import SlotError

passed, failed = 0, []


def check(name, condition, detail=""):
    """Count one check; print its name and detail when it fails."""
    global passed
    if condition:
        passed += 1
    else:
        failed.append(name)
        print("FAIL %s %s" % (name, detail))
    return bool(condition)


def refused(name, error_type, condition, fn):
    """Run fn, which requests a slot, expecting that error; returns the error."""
    try:
        fn()
    except SlotError as e:
        check(name, (e.type, e.condition) == (error_type, condition), "got %s" % e)
        return e
    check(name, False, "got a slot")
    return None


def wait_until(what, condition, timeout, interval=0.5):
    """condition()'s first true value, tried at once and then every interval
    seconds for timeout seconds; else a failed check named what, and None."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            check(what, False, "not within %.0f s" % timeout)
            return None
        time.sleep(interval)


def requires(what, present, remedy):
    """Stop the test with one line when part of its setup is missing, instead
    of letting it fail three layers down (a protocol error, a timeout)."""
    if not present:
        check("setup: %s needs %s:" % (os.path.basename(sys.argv[0]), what), False, remedy)
        sys.exit(summary())


def lua_module(name, lua="lua5.4"):
    """Whether the Lua that runs Prosody can require this module."""
    if shutil.which(lua) is None:
        return False
    return subprocess.run([lua, "-e", "require '%s'" % name], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=30).returncode == 0


def debian_package(name):
    return "install the Debian package %s (sh tools/deps.sh does)" % name


def program(name):
    """Whether name runs: a command on PATH, or a path to an executable file."""
    return shutil.which(name) is not None


def summary():
    """Print the closing line; the process's exit status."""
    print("%d passed, %d failed" % (passed, len(failed)))
    return 1 if failed else 0
