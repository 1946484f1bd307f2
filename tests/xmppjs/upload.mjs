// XEP-0363 with a second real client library: xmpp.js (@xmpp/client) signs in,
// discovers an upload service, requests slots in both namespaces, uploads with
// Node's fetch and downloads again. Driven by tests/integration/test_xmppjs.py.
//
//   node tests/xmppjs/upload.mjs --service xmpp://127.0.0.1:5222 --domain example.test \
//       --username alice --password secret --upload example.test --max-file-size 1048576 \
//       [--signed-content-type]
//
// Every option can also come from the environment: XMPPJS_SERVICE, XMPPJS_DOMAIN,
// XMPPJS_USERNAME, XMPPJS_PASSWORD, XMPPJS_UPLOAD, XMPPJS_MAX_FILE_SIZE,
// XMPPJS_SIGNED_CONTENT_TYPE=1.
//
// Output: one JSON object per line on stdout, for the driver to parse:
//   {"check": name, "ok": bool, "detail": string}   one per assertion
//   {"object": {...}}                                one per successful upload
//   {"summary": {"passed": n, "failed": m, ...}}     last line
// Exit status 0 only when every check passed; 2 when the run timed out.
// Diagnostics go to stderr. Everything is bounded by timeouts.

import { createHash, randomBytes } from "node:crypto";
import { parseArgs } from "node:util";

import { client, xml } from "@xmpp/client";

const NS = "urn:xmpp:http:upload:0";
const NS_LEGACY = "urn:xmpp:http:upload";
const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
const NS_DATA = "jabber:x:data";
const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

const IQ_TIMEOUT_MS = 10_000;
const HTTP_TIMEOUT_MS = 15_000;
const RUN_TIMEOUT_MS = 90_000;

const { values: opts } = parseArgs({
  options: {
    service: { type: "string", default: process.env.XMPPJS_SERVICE },
    domain: { type: "string", default: process.env.XMPPJS_DOMAIN },
    username: { type: "string", default: process.env.XMPPJS_USERNAME },
    password: { type: "string", default: process.env.XMPPJS_PASSWORD },
    upload: { type: "string", default: process.env.XMPPJS_UPLOAD },
    "max-file-size": { type: "string", default: process.env.XMPPJS_MAX_FILE_SIZE },
    "signed-content-type": {
      type: "boolean",
      default: process.env.XMPPJS_SIGNED_CONTENT_TYPE === "1",
    },
  },
  strict: true,
});
for (const name of ["service", "domain", "username", "password", "upload", "max-file-size"]) {
  if (!opts[name]) {
    console.error(`upload.mjs: --${name} is required`);
    process.exit(64);
  }
}
const maxFileSize = opts["max-file-size"];

let passed = 0;
let failed = 0;
let mechanism = null;

function emit(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

function check(name, ok, detail = "") {
  ok = Boolean(ok);
  if (ok) passed++;
  else failed++;
  emit({ check: name, ok, detail: typeof detail === "string" ? detail : JSON.stringify(detail) });
  return ok;
}

function summary(extra = {}) {
  emit({ summary: { passed, failed, mechanism, ...extra } });
}

// A hard limit on the whole run, whatever hangs.
const watchdog = setTimeout(() => {
  check("finished within the time limit", false, `still running after ${RUN_TIMEOUT_MS} ms`);
  summary({ timed_out: true });
  process.exit(2);
}, RUN_TIMEOUT_MS);
watchdog.unref();

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

// The files each namespace uploads: random bytes, nothing at all, and a name
// with spaces, accents, CJK and an emoji.
function files(ns) {
  const tag = ns === NS ? "v0" : "legacy";
  return [
    { filename: `random ${tag}.bin`, body: randomBytes(4099), contentType: "application/octet-stream" },
    { filename: `empty ${tag}.txt`, body: Buffer.alloc(0), contentType: "text/plain" },
    {
      filename: `résumé  ${tag} 日本語 \u{1F600}.txt`.normalize("NFC"),
      body: randomBytes(2500),
      contentType: "text/plain; charset=utf-8",
    },
  ];
}

function slotRequest(ns, filename, size, contentType) {
  if (ns === NS) {
    const attrs = { xmlns: NS, filename, size: String(size) };
    if (contentType !== undefined) attrs["content-type"] = contentType;
    return xml("request", attrs);
  }
  const children = [xml("filename", {}, filename), xml("size", {}, String(size))];
  if (contentType !== undefined) children.push(xml("content-type", {}, contentType));
  return xml("request", { xmlns: NS_LEGACY }, ...children);
}

// An iq get to the service; the whole reply (iqCaller.get would return the
// reply's child named like the request's, but a slot request is answered with <slot/>).
function iqGet(xmpp, to, payload) {
  return xmpp.iqCaller.request(xml("iq", { type: "get", to }, payload), IQ_TIMEOUT_MS);
}

// -> { put, get, headers } from the <slot/> of either namespace
function readSlot(ns, reply) {
  const slot = reply.getChild("slot", ns);
  if (!slot) throw new Error(`reply without <slot/>: ${reply}`);
  const put = slot.getChild("put", ns);
  const get = slot.getChild("get", ns);
  if (!put || !get) throw new Error(`<slot/> without put/get: ${slot}`);
  if (ns === NS) {
    const headers = {};
    for (const h of put.getChildren("header", ns)) headers[h.attrs.name] = h.text();
    return { put: put.attrs.url, get: get.attrs.url, headers };
  }
  return { put: put.text(), get: get.text(), headers: {} };
}

async function http(method, url, init = {}) {
  const response = await fetch(url, {
    method,
    redirect: "error",
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    ...init,
  });
  const body = Buffer.from(await response.arrayBuffer());
  return { status: response.status, body, contentType: response.headers.get("content-type") };
}

async function discover(xmpp, service) {
  const query = await xmpp.iqCaller.get(xml("query", { xmlns: NS_DISCO_INFO }), service, IQ_TIMEOUT_MS);
  const features = query.getChildren("feature").map((f) => f.attrs.var);
  const identities = query.getChildren("identity").map((i) => `${i.attrs.category}/${i.attrs.type}`);
  check(`${service} has identity store/file`, identities.includes("store/file"), identities);
  for (const ns of [NS, NS_LEGACY]) {
    check(`${service} advertises ${ns}`, features.includes(ns), features);
    const forms = query.getChildren("x", NS_DATA).filter((form) =>
      form.getChildren("field").some((f) => f.attrs.var === "FORM_TYPE" && f.getChildText("value") === ns));
    const limit = forms[0]?.getChildren("field").find((f) => f.attrs.var === "max-file-size")?.getChildText("value");
    check(`${service} max-file-size for ${ns}`, forms.length === 1 && limit === maxFileSize,
      `${forms.length} form(s), max-file-size ${limit}, expected ${maxFileSize}`);
  }
}

async function roundTrip(xmpp, service, ns, { filename, body, contentType }) {
  const label = `${ns} ${JSON.stringify(filename)} (${body.length} bytes)`;
  let slot;
  try {
    const reply = await iqGet(xmpp, service, slotRequest(ns, filename, body.length, contentType));
    slot = readSlot(ns, reply);
  } catch (err) {
    check(`slot ${label}`, false, String(err));
    return;
  }
  check(`slot ${label}`, /^https?:\/\//.test(slot.put) && /^https?:\/\//.test(slot.get), slot.get);
  check(`no <header/> in slot ${label}`, Object.keys(slot.headers).length === 0, slot.headers);

  // As a client does: the declared type, and a Content-Length that fetch derives from the body.
  const put = await http("PUT", slot.put, {
    headers: { ...slot.headers, "Content-Type": contentType },
    body,
  });
  if (!check(`PUT ${label}`, put.status === 200, `${put.status} ${put.body.toString().slice(0, 300)}`)) return;

  const got = await http("GET", slot.get);
  check(`GET ${label}`, got.status === 200 && got.body.equals(body),
    `${got.status}, ${got.body.length} bytes, sha256 ${sha256(got.body)} vs ${sha256(body)}`);
  check(`GET Content-Type ${label}`, got.contentType === contentType, `${got.contentType}`);
  emit({
    object: {
      service, ns, filename, put: slot.put, get: slot.get, size: body.length,
      content_type: contentType, sha256: sha256(body), body_b64: body.toString("base64"),
    },
  });
}

async function tooLarge(xmpp, service, ns) {
  const label = `${ns} too large`;
  const size = BigInt(maxFileSize) + 1n;
  try {
    await iqGet(xmpp, service, slotRequest(ns, "too large.bin", size, "application/octet-stream"));
    check(label, false, "a slot was granted");
    return;
  } catch (err) {
    if (!check(`${label}: modify/not-acceptable`, err.name === "StanzaError" && err.type === "modify"
      && err.condition === "not-acceptable", `${err.name}: ${err.type}/${err.condition} ${err.message}`)) return;
    const error = err.element;
    check(`${label}: condition in the stanza namespace`, error.getChild("not-acceptable", NS_STANZAS) !== undefined,
      error.toString());
    const tooBig = error.getChild("file-too-large", ns);
    check(`${label}: <file-too-large/> in ${ns}`, tooBig !== undefined, error.toString());
    check(`${label}: <max-file-size/> is ${maxFileSize}`, tooBig?.getChildText("max-file-size", ns) === maxFileSize,
      error.toString());
  }
}

// Where the service signs the declared type, another type must not get in.
async function wrongType(xmpp, service) {
  const body = randomBytes(64);
  const reply = await iqGet(xmpp, service, slotRequest(NS, "typed.png", body.length, "image/png"));
  const slot = readSlot(NS, reply);
  const wrong = await http("PUT", slot.put, { headers: { "Content-Type": "image/jpeg" }, body });
  check("S3 refuses a PUT with another type than the signed one", wrong.status === 403, String(wrong.status));
  const right = await http("PUT", slot.put, { headers: { "Content-Type": "image/png" }, body });
  check("S3 takes the PUT with the signed type", right.status === 200, String(right.status));
}

async function main() {
  const xmpp = client({
    service: opts.service,
    domain: opts.domain,
    username: opts.username,
    password: opts.password,
    resource: "xmppjs-test",
  });
  xmpp.on("error", (err) => console.error("upload.mjs: xmpp error:", err.message || err));
  // Which SASL mechanism the library picked: over a plain TCP stream it avoids PLAIN.
  xmpp.on("send", (element) => {
    if (element.name === "auth" || element.name === "authenticate") mechanism = element.attrs.mechanism;
  });

  try {
    const address = await xmpp.start();
    check("signed in", address.bare().toString() === `${opts.username}@${opts.domain}`, address.toString());
    check("stream is not TLS (plain TCP on loopback)", !xmpp.isSecure(), String(xmpp.isSecure()));

    await discover(xmpp, opts.upload);
    for (const ns of [NS, NS_LEGACY]) {
      for (const file of files(ns)) await roundTrip(xmpp, opts.upload, ns, file);
      await tooLarge(xmpp, opts.upload, ns);
    }
    if (opts["signed-content-type"]) await wrongType(xmpp, opts.upload);
  } catch (err) {
    check("run completed", false, err.stack || String(err));
  } finally {
    xmpp.reconnect.stop();
    try {
      await xmpp.stop();
    } catch (err) {
      console.error("upload.mjs: stop:", err.message || err);
    }
  }
  summary();
  clearTimeout(watchdog);
  process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
}

await main();
