"""Counted checks for the integration tests: failures are printed as they
happen, and summary() prints the "N passed, M failed" line CI reads."""
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


def summary():
    """Print the closing line; the process's exit status."""
    print("%d passed, %d failed" % (passed, len(failed)))
    return 1 if failed else 0
