#!/usr/bin/env python3
"""Turn the vector files under tests/vectors into a C header for test_sigv4.c.

Usage: gen_vectors.py VECTOR_DIR > vectors.h

Two tables come out:
  suite_cases: every case of the AWS SigV4 suite (aws-c-auth/v4), with its
      request.txt parsed as an HTTP message (obs-fold joined, repeated fields
      joined with ',', query percent-decoded), and the query-* and header-*
      expectations (of the signed request, its Authorization value).
  s3_cases: every presign entry of s3-presign-vectors.json, with the signer
      configuration (endpoint host, bucket, addressing style) recovered from
      the request host and path.
Only parsing happens here; every canonical form is computed by the C code.
"""
import calendar
import hashlib
import json
import os
import sys
import time
import urllib.parse


def c_string(data):
    """A C string literal holding exactly these bytes (octal escapes, so no
    escape can swallow the next character)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    out = []
    for b in data:
        if 0x20 <= b < 0x7F and b not in (0x22, 0x5C, 0x3F):
            out.append(chr(b))
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def c_str(data):
    """A struct sigv4_str initialiser."""
    if data is None:
        return "{ NULL, 0 }"
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return "{ %s, %d }" % (c_string(raw), len(raw))


def c_pairs(name, pairs):
    if not pairs:
        return "static const struct sigv4_pair %s[1] = { { { NULL, 0 }, { NULL, 0 } } };\n" % name
    rows = ",\n".join("\t{ %s, %s }" % (c_str(k), c_str(v)) for k, v in pairs)
    return "static const struct sigv4_pair %s[] = {\n%s\n};\n" % (name, rows)


def unix_time(stamp, fmt):
    return calendar.timegm(time.strptime(stamp, fmt))


def parse_http_request(raw):
    """request.txt -> method, decoded path, decoded query pairs, header pairs, body."""
    head, _, body = raw.partition(b"\n\n")
    lines = head.split(b"\n")
    method, rest = lines[0].split(b" ", 1)
    target = rest.rsplit(b" ", 1)[0]
    path, _, query = target.partition(b"?")
    pairs = []
    for item in query.split(b"&") if query else []:
        k, _, v = item.partition(b"=")
        pairs.append((urllib.parse.unquote_to_bytes(k), urllib.parse.unquote_to_bytes(v)))
    headers = []
    for line in filter(None, lines[1:]):
        if line[:1] in (b" ", b"\t"):          # obs-fold: continues the previous field
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip())
            continue
        name, _, value = line.partition(b":")
        for i, (n, v) in enumerate(headers):   # repeated field: one value, comma-joined
            if n.lower() == name.lower():
                headers[i] = (n, v + b"," + value)
                break
        else:
            headers.append((name, value))
    return method, path, pairs, headers, body


def authorization(signed_request):
    """The Authorization header's value in a header-signed-request.txt."""
    for line in signed_request.split(b"\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"authorization":
            return value
    raise ValueError("no Authorization header")


def suite_cases(root):
    out, rows = [], []
    for n, case in enumerate(sorted(os.listdir(root))):
        d = os.path.join(root, case)
        ctx = json.load(open(os.path.join(d, "context.json")))
        method, path, query, headers, body = parse_http_request(open(os.path.join(d, "request.txt"), "rb").read())
        read = lambda f: open(os.path.join(d, f), "rb").read()
        creds = ctx["credentials"]
        out.append(c_pairs("suite_query_%d" % n, query))
        out.append(c_pairs("suite_headers_%d" % n, headers))
        token = creds.get("token") if not ctx.get("omit_session_token") else None
        rows.append(
            "\t{ %s, %s, %s, %s, %s, %s, %d, %d, %s, %s, suite_query_%d, %d, suite_headers_%d, %d, %d, %s,\n"
            "\t  %s,\n\t  %s,\n\t  %s,\n\t  %s,\n\t  %s,\n\t  %s,\n\t  %s },"
            % (c_string(case), c_str(creds["access_key_id"]), c_str(creds["secret_access_key"]),
               c_str(token), c_str(ctx["region"]), c_str(ctx["service"]),
               unix_time(ctx["timestamp"], "%Y-%m-%dT%H:%M:%SZ"), ctx["expiration_in_seconds"],
               c_str(method), c_str(path), n, len(query), n, len(headers),
               1 if ctx.get("sign_body") else 0, c_str(body),
               c_str(read("query-canonical-request.txt")), c_str(read("query-string-to-sign.txt")),
               c_str(read("query-signature.txt").strip()),
               c_str(read("header-canonical-request.txt")), c_str(read("header-string-to-sign.txt")),
               c_str(read("header-signature.txt").strip()),
               c_str(authorization(read("header-signed-request.txt")))))
    return "".join(out) + "static const struct suite_case suite_cases[] = {\n%s\n};\n" % "\n".join(rows)


def signer_layout(v):
    """Recover (endpoint host, bucket, path_style, key) from host and key_path."""
    host, path = v["host"], v["key_path"]
    style = v.get("addressing_style")
    if style is None:                          # published cases: s3*.amazonaws.com means path-style
        style = "path" if host.startswith("s3") else "virtual"
    if style == "virtual":
        bucket, _, endpoint = host.partition(".")
        return endpoint, bucket, 0, path[1:]
    bucket, _, key = path[1:].partition("/")
    return host, bucket, 1, key


def s3_cases(path):
    vectors = json.load(open(path, encoding="utf-8"))
    out, rows = [], []
    for n, v in enumerate(vectors["presign"]):
        host, bucket, path_style, key = signer_layout(v)
        endpoint = "%s://%s" % (v.get("scheme", "https"), host)
        out.append(c_pairs("s3_headers_%d" % n, v.get("signed_headers_extra") or []))
        out.append(c_pairs("s3_query_%d" % n, v.get("extra_query") or []))
        e = v["expected"]
        rows.append(
            "\t{ %s, %s, %s, %s, %s, %s, %s, %s, %d, %s, %s, %d, %d,\n"
            "\t  s3_headers_%d, %d, s3_query_%d, %d,\n\t  %s,\n\t  %s,\n\t  %s,\n\t  %s },"
            % (c_string(v["id"]), c_str(v["access_key"]), c_str(v["secret_key"]),
               c_str(v.get("session_token")), c_str(v["region"]), c_str(v.get("service", "s3")),
               c_str(endpoint), c_str(bucket), path_style, c_str(v["method"]), c_str(key),
               unix_time(v["amz_date"], "%Y%m%dT%H%M%SZ"), v["expires"],
               n, len(v.get("signed_headers_extra") or []), n, len(v.get("extra_query") or []),
               c_str(e["canonical_request"]), c_str(e["string_to_sign"]), c_str(e["signature"]),
               c_str(e["url"])))
    return "".join(out) + "static const struct s3_case s3_cases[] = {\n%s\n};\n" % "\n".join(rows)


def main():
    root = sys.argv[1]
    sys.stdout.write("/* Generated by tests/c/gen_vectors.py from %s: do not edit. */\n" % root)
    sys.stdout.write(suite_cases(os.path.join(root, "aws-c-auth", "v4")))
    sys.stdout.write(s3_cases(os.path.join(root, "s3-presign-vectors.json")))


if __name__ == "__main__":
    main()
