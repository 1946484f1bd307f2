"""Counted checks for the integration tests: failures are printed as they
happen, and summary() prints the "N passed, M failed" line CI reads."""
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


def summary():
    """Print the closing line; the process's exit status."""
    print("%d passed, %d failed" % (passed, len(failed)))
    return 1 if failed else 0
