"""A real XMPP client (slixmpp) that requests XEP-0363 upload slots and uses them.

Run with /usr/bin/python3 (Debian's python3-slixmpp). All calls are bounded by
timeouts; the event loop is driven from synchronous code through run().
"""
import asyncio
import http.client
import logging
import time
import urllib.parse
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

NS = "urn:xmpp:http:upload:0"
NS_LEGACY = "urn:xmpp:http:upload"
NS_COMMANDS = "http://jabber.org/protocol/commands"
TIMEOUT = 10

logging.getLogger("slixmpp").setLevel(logging.CRITICAL)

# One event loop for every client, so that several can be driven at once (run_all).
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)


def run(coroutine):
    return loop.run_until_complete(coroutine)


def run_all(*coroutines):
    return run(asyncio.gather(*coroutines))


# slixmpp leaves a task pending per stream after disconnect; keeping the clients
# alive until shutdown() cancels those tasks avoids "Task was destroyed" noise.
_clients = []


def shutdown():
    """Cancel what the clients left running, so the interpreter exits quietly."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    run(asyncio.gather(*tasks, return_exceptions=True))


class SlotError(Exception):
    """The service answered a slot request with an error stanza."""

    def __init__(self, error_type, condition, text, extra):
        super().__init__("%s/%s: %s" % (error_type, condition, text))
        self.type, self.condition, self.text, self.extra = error_type, condition, text, extra


class Client:
    """A c2s client; with component=True, an external component (XEP-0114) whose
    stanzas reach the server the way a remote domain's would, not from a user session."""

    def __init__(self, jid, password, port, component=False):
        _clients.append(self)
        self.closed = False
        if component:
            self.xmpp = slixmpp.ComponentXMPP(jid, password, "127.0.0.1", port)
        else:
            self.xmpp = slixmpp.ClientXMPP(jid, password)
        self.xmpp.register_plugin("xep_0030")
        self.xmpp.register_plugin("xep_0199")
        ready = loop.create_future()
        self.xmpp.add_event_handler("session_start", lambda _: ready.done() or ready.set_result(True))
        self.xmpp.add_event_handler("failed_auth", lambda _: ready.done() or ready.set_exception(
            RuntimeError("authentication failed for %s" % jid)))
        if component:
            self.xmpp.connect()
        else:
            self.xmpp.connect(("127.0.0.1", port), force_starttls=False, disable_starttls=True)
        self.run(asyncio.wait_for(ready, TIMEOUT))
        if not component:
            self.xmpp.send_presence()

    @staticmethod
    def run(coroutine):
        return run(coroutine)

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.xmpp.disconnect()
        try:
            self.run(asyncio.wait_for(self.xmpp.disconnected, TIMEOUT))
        except asyncio.TimeoutError:
            pass   # the server closed the stream first (an account that was removed)

    def disco_info(self, jid):
        info = self.run(self.xmpp["xep_0030"].get_info(jid=jid, timeout=TIMEOUT))["disco_info"]
        return info

    def disco_items(self, jid):
        return [item[0] for item in self.run(self.xmpp["xep_0030"].get_items(jid=jid, timeout=TIMEOUT))
                ["disco_items"]["items"]]

    def find_upload_service(self, domain):
        """The JID whose disco#info has the upload feature: the domain or one of its items."""
        for jid in [domain] + self.disco_items(domain):
            if NS in self.disco_info(jid)["features"]:
                return jid
        return None

    def request_slot(self, service, filename, size, content_type=None, ns=NS, iq_type="get", sender=None,
                     extra_child=None, children=()):
        """(put_url, get_url, put_headers) or raise SlotError. A field given as None is left out;
        children go inside the <request/> (an upload purpose), extra_child beside it."""
        request = ET.Element("{%s}request" % ns)
        fields = (("filename", filename), ("size", None if size is None else str(size)), ("content-type", content_type))
        for name, value in fields:
            if value is None:
                continue
            if ns == NS:
                request.set(name, value)
            else:
                ET.SubElement(request, "{%s}%s" % (ns, name)).text = value
        request.extend(children)
        iq = self.xmpp.make_iq(ito=service, itype=iq_type, ifrom=sender)
        iq.append(request)
        if extra_child is not None:
            iq.append(extra_child)
        try:
            reply = self.run(iq.send(timeout=TIMEOUT))
        except IqError as e:
            # <error/> is in jabber:client, or jabber:component:accept for a component
            err = next(c for c in e.iq.xml if c.tag.endswith("}error"))
            stanzas = "{urn:ietf:params:xml:ns:xmpp-stanzas}"
            condition = next((c.tag[len(stanzas):] for c in err
                              if c.tag.startswith(stanzas) and c.tag != stanzas + "text"), None)
            extra = [c for c in err if not c.tag.startswith(stanzas)]
            raise SlotError(err.get("type"), condition, err.findtext(stanzas + "text"), extra) from None
        except IqTimeout:
            raise SlotError("timeout", "timeout", "no reply within %ds" % TIMEOUT, []) from None
        slot = reply.xml.find("{%s}slot" % ns)
        if ns == NS:
            put, get = slot.find("{%s}put" % ns), slot.find("{%s}get" % ns)
            headers = {h.get("name"): h.text for h in put.findall("{%s}header" % ns)}
            return put.get("url"), get.get("url"), headers
        return slot.findtext("{%s}put" % ns), slot.findtext("{%s}get" % ns), {}

    def command(self, to, node, fields=None):
        """Run an ad-hoc command (XEP-0050): (status, the notes' text, the first step's form
        as {var: [(label, value)...]}); with fields ({var: value or [values]}), the form the
        command asks for is submitted with them. An error reply raises SlotError."""
        def send(command):
            iq = self.xmpp.make_iq(ito=to, itype="set")
            iq.append(command)
            try:
                return self.run(iq.send(timeout=TIMEOUT)).xml.find("{%s}command" % NS_COMMANDS)
            except IqError as e:
                err = next(c for c in e.iq.xml if c.tag.endswith("}error"))
                stanzas = "{urn:ietf:params:xml:ns:xmpp-stanzas}"
                condition = next((c.tag[len(stanzas):] for c in err
                                  if c.tag.startswith(stanzas) and c.tag != stanzas + "text"), None)
                raise SlotError(err.get("type"), condition, err.findtext(stanzas + "text"), []) from None

        reply = send(ET.Element("{%s}command" % NS_COMMANDS, {"node": node, "action": "execute"}))
        form = {}
        for field in reply.iter("{jabber:x:data}field"):
            form[field.get("var")] = [(o.get("label"), o.findtext("{jabber:x:data}value"))
                                      for o in field.findall("{jabber:x:data}option")]
        if reply.get("status") == "executing" and fields is not None:
            submit = ET.Element("{%s}command" % NS_COMMANDS, {"node": node, "action": "complete",
                                                             "sessionid": reply.get("sessionid")})
            x = ET.SubElement(submit, "{jabber:x:data}x", {"type": "submit"})
            for var, value in fields.items():
                field = ET.SubElement(x, "{jabber:x:data}field", {"var": var})
                for v in value if isinstance(value, list) else [value]:
                    ET.SubElement(field, "{jabber:x:data}value").text = v
            reply = send(submit)
        notes = "\n".join(n.text or "" for n in reply.findall("{%s}note" % NS_COMMANDS))
        return reply.get("status"), notes, form

    def ping(self, jid):
        self.run(self.xmpp["xep_0199"].ping(jid=jid, timeout=TIMEOUT))


def object_key(url):
    """The S3 object key of a path-style URL on the test gateway."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path).split("/", 2)[2]


def flood(c, service, count, pinger, ping_to):
    """count slot requests sent as fast as c's connection takes them, while pinger pings
    ping_to: ({"result": n, "error": n}, ping times in seconds, seconds it took)."""
    answers, pings = {"result": 0, "error": 0}, []
    done = loop.create_future()

    def on_answer(iq):
        if iq["id"].startswith("flood-"):
            answers[iq["type"]] += 1
            if sum(answers.values()) == count and not done.done():
                done.set_result(True)
    c.xmpp.register_handler(Callback("flood answers", MatchXPath("{jabber:client}iq"), on_answer))

    async def send():
        for i in range(count):
            c.xmpp.send_raw("<iq type='get' id='flood-%d' to='%s'><request xmlns='%s' filename='flood %d.txt' "
                            "size='%d' content-type='text/plain'/></iq>" % (i, service, NS, i, i))
            if i % 500 == 0:
                await asyncio.sleep(0)   # let the socket drain and pings through
        await asyncio.wait_for(done, 120)

    async def ping():
        while not done.done():
            started = time.monotonic()
            await pinger.xmpp["xep_0199"].ping(jid=ping_to, timeout=10)
            pings.append(time.monotonic() - started)
            await asyncio.sleep(0.05)

    started = time.monotonic()
    run_all(send(), ping())
    c.xmpp.remove_handler("flood answers")
    return answers, pings, time.monotonic() - started


def http_request(method, url, body=None, headers=None):
    """(status, body bytes, response headers) for one request, as a client uploads:
    Content-Length always, other headers as given."""
    u = urllib.parse.urlsplit(url)
    conn_class = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(u.hostname, u.port, timeout=30)
    try:
        path = u.path + ("?" + u.query if u.query else "")
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()
