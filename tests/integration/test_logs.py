#!/usr/bin/python3
"""Nothing that could serve as a credential reaches a log: every Prosody log the
integration tests produced (kept in build/logs by tools/stack.Session) is
searched for the S3 secrets those tests used, and for the signature and
credential parameters of presigned URLs.

  /usr/bin/python3 tests/integration/test_logs.py
"""
import glob
import os
import sys

import stack
from checks import check, summary

# the secrets of the module configs written by the tests that use no S3 server
FIXED_SECRETS = ["not-a-real-secret"]
URL_PARTS = ["X-Amz-Signature=", "X-Amz-Credential=", "X-Amz-Security-Token="]


def main():
    logs = sorted(glob.glob(os.path.join(stack.LOGS, "*.log")))
    check("the integration tests left logs to search", len(logs) > 0, stack.LOGS)
    path = os.path.join(stack.LOGS, "credentials.txt")
    secrets = FIXED_SECRETS + (open(path).read().split() if os.path.exists(path) else [])
    check("the secrets the tests used are known", len(secrets) > len(FIXED_SECRETS))
    size = 0
    for log in logs:
        text = open(log, errors="replace").read()
        size += len(text)
        leaks = [s[:4] + "…" for s in secrets if s in text] + [p for p in URL_PARTS if p in text]
        check("%s holds no credential" % os.path.basename(log), not leaks, leaks)
    print("logs: searched %d logs, %d MB, for %d secrets and %d URL parameters"
          % (len(logs), size // 1000000, len(secrets), len(URL_PARTS)))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
