#!/usr/bin/env python3
"""Hostile agent: throws malformed and abusive traffic at a running farmhand-server.

Usage:
  hostile_client.py --url ws://127.0.0.1:PORT --host NAME --credential CRED
                    [--token-valid T] [--token-used T] [--token-expired T] [--token-revoked T]
                    [--max-frame 65536] [--hello-timeout 10] [--flood 30000] [--quick]
  hostile_client.py --url ws://127.0.0.1:PORT --enroll TOKEN   # prints the credential

Every case opens a fresh connection to /agent (subprotocol farmhand.v1) and
checks the answer docs/protocol.md prescribes: one `error` frame with the
given code, then a close frame with code 1008 (1009 for too_large). With
--token-valid the host is enrolled first and the new credential is used
(enrolling replaces the old one), and the same token is then tried again.
After the catalogue /api/health must answer {"ok": true, ...} and a valid
hello must still get a welcome. Prints `ok   CASE` or `FAIL CASE: expected
..., got ...` per case; exits 1 if any case failed. Every socket operation has
a timeout (--timeout, 5 s), so the program never hangs.
The flood case only works if the server reads faster than its frame rate
limit: against a slow (sanitizer) build, give the server low limits
("frames_per_second": 100, "burst": 500) and pass --flood 5000.
Only the Python 3 standard library is used; wss:// does not verify the
server's certificate (it is a test tool).
"""
import argparse, base64, hashlib, json, os, random, select, socket, ssl, struct, sys, time, urllib.parse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0


class Failure(Exception):
    """A case's expectation that did not hold: str() is "expected ..., got ..."."""


def connect_tcp(url, timeout):
    u = urllib.parse.urlparse(url)
    tls = u.scheme in ("wss", "https")
    sock = socket.create_connection((u.hostname, u.port or (443 if tls else 80)), timeout=timeout)
    sock.settimeout(timeout)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        sock = ctx.wrap_socket(sock, server_hostname=u.hostname)
    return sock, f"{u.hostname}:{u.port}"


class WebSocket:
    """A minimal RFC 6455 client: masked frames out, unmasked frames in, fragments reassembled."""

    def __init__(self, url, path="/agent", protocol="farmhand.v1", timeout=5.0, headers=()):
        self.sock, hostport = connect_tcp(url, timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16))
        extra = b"".join(h.encode() + b"\r\n" for h in headers)
        self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + hostport.encode() +
                          b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Protocol: " +
                          protocol.encode() + b"\r\n" + extra + b"\r\n")
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if len(lines[0].split()) < 2 or lines[0].split()[1] != "101":
            raise Failure(f"expected HTTP 101, got {lines[0]!r}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise Failure(f"expected Sec-WebSocket-Accept {accept}, got {headers.get('sec-websocket-accept')}")
        if headers.get("sec-websocket-protocol") != protocol:
            raise Failure(f"expected subprotocol {protocol}, got {headers.get('sec-websocket-protocol')}")

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    @staticmethod
    def frame(opcode, payload, fin=True):
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def send(self, payload, opcode=TEXT):
        self.sock.sendall(self.frame(opcode, payload))

    def send_json(self, obj):
        self.send(json.dumps(obj))

    def send_fragments(self, payload, size, opcode=TEXT):
        pieces = [payload[i:i + size] for i in range(0, len(payload), size)]
        self.pump(b"".join(self.frame(opcode if i == 0 else CONT, p, i == len(pieces) - 1)
                           for i, p in enumerate(pieces)))

    def pump(self, data):
        """Sends `data` while reading, so a server that refuses midway cannot block
        us (and its answer is not lost to a reset). Stops sending once it closes.
        Returns the number of bytes sent."""
        total = len(data)
        while data:
            r, w, _ = select.select([self.sock], [self.sock], [], self.sock.gettimeout())
            if not r and not w:
                raise TimeoutError("server neither reads nor writes")
            if r:
                try:
                    chunk = self.sock.recv(65536)
                except (ConnectionError, ssl.SSLError):
                    break
                if not chunk:
                    break
                self.buf += chunk
                if len(self.buf) > 1 << 20:  # the server is talking, not refusing: stop
                    break
            if w:
                try:
                    data = data[self.sock.send(data[:65536]):]
                except (ConnectionError, ssl.SSLError):
                    break
        return total - len(data)

    def recv_frame(self):
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if b1 & 0x80:
            raise Failure("expected unmasked server frames, got a masked one")
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._take(n)

    def recv(self):
        """The next message: ("text", str), ("binary", bytes), ("pong", bytes) or ("close", code, reason)."""
        parts, first = [], None
        while True:
            fin, op, data = self.recv_frame()
            if op == PING:
                self.sock.sendall(self.frame(PONG, data))
                continue
            if op == PONG:
                return ("pong", data)
            if op == CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                try:
                    self.sock.sendall(self.frame(CLOSE, data[:2]))
                except OSError:
                    pass
                return ("close", code, data[2:].decode("utf-8", "replace"))
            if op != CONT:
                first = op
            parts.append(data)
            if fin:
                data = b"".join(parts)
                return ("text", data.decode()) if first == TEXT else ("binary", data)

    def recv_or_eof(self):
        try:
            return self.recv()
        except EOFError:
            return ("eof",)
        except (ConnectionError, ssl.SSLError) as e:
            return ("eof", str(e))
        except (socket.timeout, TimeoutError):
            return ("timeout",)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def describe(msg):
    if msg[0] == "close":
        return f"close {msg[1]}" + (f" ({msg[2]})" if msg[2] else "")
    if msg[0] == "text":
        return msg[1] if len(msg[1]) < 200 else msg[1][:200] + "..."
    return " ".join(str(m)[:100] for m in msg)


def expect_refusal(ws, code, close_code=1008, message=None, alt_close=None):
    """One `error` frame with `code` (and a message starting with `message`),
    then a close with `close_code`. `alt_close`: a close code also accepted
    instead of both (e.g. 1007 for invalid UTF-8 refused by the websocket layer)."""
    msg = ws.recv_or_eof()
    if alt_close is not None and msg[0] == "close" and msg[1] == alt_close:
        return
    codes = code if isinstance(code, tuple) else (code,)
    want = "error " + " or ".join(f'"{c}"' for c in codes) + (f' with message "{message}..."' if message else "")
    if msg[0] != "text":
        raise Failure(f"expected {want}, got {describe(msg)}")
    try:
        frame = json.loads(msg[1])
    except ValueError:
        raise Failure(f"expected {want}, got non-JSON {describe(msg)}")
    if (not isinstance(frame, dict) or frame.get("type") != "error" or frame.get("code") not in codes
            or not isinstance(frame.get("message"), str)
            or (message and not frame["message"].startswith(message))):
        raise Failure(f"expected {want}, got {describe(msg)}")
    expect_close(ws, close_code)


def expect_close(ws, close_code):
    msg = ws.recv_or_eof()
    if msg[0] != "close" or msg[1] != close_code:
        raise Failure(f"expected close {close_code}, got {describe(msg)}")


def expect_type(ws, type_):
    msg = ws.recv_or_eof()
    frame = json.loads(msg[1]) if msg[0] == "text" else None
    if not isinstance(frame, dict) or frame.get("type") != type_:
        raise Failure(f"expected {type_}, got {describe(msg)}")
    return frame


def http_get(url, path, timeout):
    sock, hostport = connect_tcp(url, timeout)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            length = [l for l in head.lower().split(b"\r\n") if l.startswith(b"content-length:")]
            if sep and length and len(body) >= int(length[0].split(b":")[1]):
                break
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        out = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            n = int(size.split(b";")[0], 16)
            if n == 0:
                break
            out, body = out + rest[:n], rest[n + 2:]
        body = out
    return head.split(b"\r\n")[0].decode("latin-1"), body


class Catalogue:
    """The cases; each gets a fresh connection and raises Failure on a wrong answer."""

    def __init__(self, a):
        self.a, self.failed, self.credential = a, 0, a.credential

    def ws(self):
        return WebSocket(self.a.url, timeout=self.a.timeout)

    def hello(self, host=None, credential=None):
        return {"type": "hello", "host": host or self.a.host, "credential": credential or self.credential,
                "version": "0.1.0", "capabilities": ["events", "heartbeat", "commands"]}

    def welcomed(self):
        ws = self.ws()
        ws.send_json(self.hello())
        return ws, expect_type(ws, "welcome")

    def heartbeat(self, **over):
        hb = {"type": "heartbeat", "time": int(time.time() * 1000), "load": [0.1, 0.2, 0.3],
              "memory_total_kb": 1000, "memory_available_kb": 500, "disk_total_kb": 1000,
              "disk_free_kb": 500, "uptime_s": 1}
        hb.update(over)
        return hb

    def run(self, name, fn):
        ws = None
        try:
            ws = fn()
            print(f"ok   {name}", flush=True)
        except Failure as e:
            print(f"FAIL {name}: {e}", flush=True)
            self.failed += 1
        except Exception as e:  # timeouts, resets, refused connections: the case failed, go on
            print(f"FAIL {name}: expected an answer, got {type(e).__name__}: {e}", flush=True)
            self.failed += 1
        finally:
            if isinstance(ws, WebSocket):
                ws.close()

    def refused(self, payload, code, close_code=1008, opcode=TEXT, message=None, alt_close=None, after_hello=False):
        def case():
            ws = self.welcomed()[0] if after_hello else self.ws()
            ws.pump(WebSocket.frame(opcode, payload))
            expect_refusal(ws, code, close_code, message, alt_close)
            return ws
        return case

    def enroll_cases(self):
        if self.a.token_valid:
            def enroll():
                ws = self.ws()
                ws.send_json({"type": "enroll", "token": self.a.token_valid, "version": "0.1.0"})
                frame = expect_type(ws, "enrolled")
                if frame.get("host") != self.a.host or not str(frame.get("credential", "")).startswith("fhc_"):
                    raise Failure(f"expected host {self.a.host} and an fhc_ credential, got {frame}")
                self.credential = frame["credential"]  # enrolling replaced the old one
                msg = ws.recv_or_eof()
                if msg[0] not in ("close", "eof"):
                    raise Failure(f"expected the connection closed, got {describe(msg)}")
                return ws
            self.run("enroll with a valid token", enroll)
            self.a.token_used = self.a.token_used or self.a.token_valid
        tokens = [("garbage", "fht_" + "0" * 48)] + [(k, getattr(self.a, "token_" + k)) for k in
                                                      ("used", "expired", "revoked") if getattr(self.a, "token_" + k)]
        for kind, token in tokens:
            self.run(f"enroll with {'an' if kind == 'expired' else 'a'} {kind} token", self.refused(
                json.dumps({"type": "enroll", "token": token, "version": "0.1.0"}), "unauthorized"))

    def all(self):
        a, big = self.a, self.a.max_frame
        self.enroll_cases()
        if not self.credential:
            print("FAIL setup: expected --credential or --token-valid, got neither")
            return 1
        self.run("not JSON", self.refused("hello?", "bad_json"))
        self.run("JSON array", self.refused('[{"type": "hello"}]', "bad_json"))
        self.run("JSON string", self.refused('"hello"', "bad_json"))
        self.run("missing type", self.refused('{"host": "x"}', "bad_frame", message="/type"))
        self.run("type not a string", self.refused('{"type": 7}', "bad_frame", message="/type: expected a string"))
        self.run("unknown type", self.refused('{"type": "gimme"}', "unknown_type"))
        self.run("server frame type from an agent", self.refused('{"type": "welcome"}', "unknown_type"))
        self.run("event before hello", self.refused(json.dumps(
            {"type": "event", "seq": 1, "time": 1, "kind": "error", "message": "x"}), "not_allowed"))
        self.run("heartbeat before hello", self.refused(json.dumps(self.heartbeat()), "not_allowed"))
        self.run("hello with a wrong credential", self.refused(
            json.dumps(self.hello(credential="fhc_" + "0" * 48)), "unauthorized"))
        self.run("hello for an unknown host", self.refused(
            json.dumps(self.hello(host="no-such-host-" + os.urandom(4).hex())), "unauthorized"))
        self.run("hello without credential", self.refused('{"type": "hello", "host": "x", "version": "1"}',
                                                          "bad_frame", message="/credential"))
        self.run("binary frame", self.refused(b'{"type": "hello"}', "bad_frame", opcode=BINARY))
        pad = '{"type": "heartbeat", "pad": "' + "x" * big + '"}'
        self.run(f"frame of max+1 = {big + 1} bytes", self.refused(pad[:big - 1] + '"}', "too_large", 1009))
        exact = json.dumps(self.heartbeat(pad=""))[:-2]
        exact += "x" * (big - len(exact) - 2) + '"}'  # a whole heartbeat of exactly max bytes
        self.run("frame of exactly max bytes is not too_large", self.refused(exact, "not_allowed"))
        self.run("small fragments adding up over the limit", self.fragments(pad[:2 * big], 1000))
        self.run("a valid hello in 40-byte fragments", self.fragments(json.dumps(self.hello()), 40, "welcome"))
        self.run("seq as a string after hello", self.refused(json.dumps(
            {"type": "event", "seq": "1", "time": 1, "kind": "error", "message": "x"}), "bad_frame",
            message="/seq: expected an unsigned integer", after_hello=True))
        self.run("negative time after hello", self.refused(json.dumps(self.heartbeat(time=-1)), "bad_frame",
                                                           message="/time: ", after_hello=True))
        self.run("negative load after hello", self.refused(json.dumps(self.heartbeat(load=[-1, 0, 0])),
                                                           "bad_frame", message="/load/0: ", after_hello=True))
        self.run("bad event kind after hello", self.refused(json.dumps(
            {"type": "event", "seq": 1, "time": 1, "kind": "Bad-Kind", "message": "x"}), "bad_frame",
            message="/kind: ", after_hello=True))
        self.run("out-of-order seq (acked+2)", self.out_of_order)
        self.run("second hello on the same connection", self.refused(json.dumps(self.hello()), "not_allowed",
                                                                     after_hello=True))
        self.run(f"flood of {a.flood} heartbeats", self.flood)
        self.run("invalid UTF-8 in a text frame", self.refused(
            b'{"type": "hello", "host": "\xff\xfe\xc0"}', "bad_json", alt_close=1007))
        self.run("deeply nested JSON", self.refused("[" * (big // 2 - 10) + "]" * (big // 2 - 10), "bad_json"))
        self.run("deeply nested JSON in an object", self.refused(
            '{"type": "hello", "x": ' + "[" * (big // 2 - 30) + "]" * (big // 2 - 30) + "}", ("bad_json", "bad_frame")))
        self.run("ping answered with pong", self.ping)
        self.run("stalled half handshake does not block others", self.stalled_handshake)
        self.run("second hello replaces the first connection", self.replaced)
        self.run("random bytes instead of HTTP", self.garbage)
        if not a.quick:
            self.run(f"no hello within {a.hello_timeout} s", self.no_hello)
        self.run("health after the catalogue", self.health)
        self.run("valid hello after the catalogue", lambda: self.welcomed()[0])
        return 1 if self.failed else 0

    def fragments(self, payload, size, answer="too_large"):
        def case():
            ws = self.ws()
            ws.send_fragments(payload.encode(), size)
            if answer == "too_large":
                expect_refusal(ws, "too_large", 1009)
            else:
                expect_type(ws, answer)
            return ws
        return case

    def out_of_order(self):
        ws, welcome = self.welcomed()
        acked = welcome.get("acked_seq")
        if not isinstance(acked, int) or acked < 0:
            raise Failure(f"expected an integer acked_seq in welcome, got {welcome}")
        ws.send_json({"type": "event", "seq": acked + 2, "time": int(time.time() * 1000), "kind": "error",
                      "message": "hostile_client: must not be stored"})
        expect_refusal(ws, "out_of_order")
        ws.close()
        ws, again = self.welcomed()
        if again.get("acked_seq") != acked:
            raise Failure(f"expected acked_seq {acked} after the refusal, got {again}")
        return ws

    def flood(self):
        ws = self.welcomed()[0]
        frame = WebSocket.frame(TEXT, json.dumps(self.heartbeat()))
        start = time.monotonic()
        sent = ws.pump(frame * self.a.flood) // len(frame)
        try:
            expect_refusal(ws, "rate_limited")
        except Failure as e:
            raise Failure(f"{e} (sent {sent} heartbeats in {time.monotonic() - start:.1f} s)")
        return ws

    def ping(self):
        ws = self.ws()
        ws.send(b"are you there", PING)
        msg = ws.recv_or_eof()
        if msg[:2] != ("pong", b"are you there"):
            raise Failure(f"expected pong 'are you there', got {describe(msg)}")
        return ws

    def stalled_handshake(self):
        stalled, _ = connect_tcp(self.a.url, self.a.timeout)
        try:
            stalled.sendall(b"GET /agent HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConn")
            time.sleep(0.5)
            ws, _ = self.welcomed()
            ws.close()
            status, body = http_get(self.a.url, "/api/health", self.a.timeout)
            if " 200" not in status:
                raise Failure(f"expected health 200 meanwhile, got {status}")
        finally:
            stalled.close()

    def replaced(self):
        first = self.welcomed()[0]
        second = None
        try:
            second = self.welcomed()[0]
            expect_refusal(first, "replaced")
            second.send(b"still here", PING)
            msg = second.recv_or_eof()
            if msg[0] != "pong":
                raise Failure(f"expected the second connection to stay open, got {describe(msg)}")
        finally:
            first.close()
            if second:
                second.close()

    def garbage(self):
        sock, _ = connect_tcp(self.a.url, self.a.timeout)
        try:
            sock.sendall(random.Random(6455).randbytes(4096) + b"\r\n\r\n")
            data = b""
            while True:
                try:
                    chunk = sock.recv(4096)
                except ConnectionError:
                    break
                if not chunk:
                    break
                data += chunk
            status = data.split(b"\r\n")[0].split()
            if data and (len(status) < 2 or not status[0].startswith(b"HTTP/1.") or status[1][:1] != b"4"):
                raise Failure(f"expected HTTP 4xx or a close, got {data[:60]!r}")
        except (socket.timeout, TimeoutError):
            raise Failure(f"expected HTTP 400 or a close within {self.a.timeout} s, got nothing")
        finally:
            sock.close()

    def no_hello(self):
        ws = self.ws()
        ws.sock.settimeout(self.a.hello_timeout + self.a.timeout)
        start = time.monotonic()
        expect_close(ws, 1008)
        if time.monotonic() - start < self.a.hello_timeout / 2:
            raise Failure(f"expected the close after about {self.a.hello_timeout} s, "
                          f"got it after {time.monotonic() - start:.1f} s")
        return ws

    def health(self):
        status, body = http_get(self.a.url, "/api/health", self.a.timeout)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if " 200" not in status or not isinstance(answer, dict) or answer.get("ok") is not True:
            raise Failure(f'expected 200 {{"ok": true, ...}}, got {status} {body[:200]!r}')


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--host")
    p.add_argument("--credential")
    p.add_argument("--enroll", metavar="TOKEN", help="only enroll and print the credential")
    for kind in ("valid", "used", "expired", "revoked"):
        p.add_argument(f"--token-{kind}")
    p.add_argument("--max-frame", type=int, default=65536)
    p.add_argument("--hello-timeout", type=float, default=10)
    p.add_argument("--flood", type=int, default=30000, help="heartbeats sent in the flood case")
    p.add_argument("--timeout", type=float, default=5)
    p.add_argument("--quick", action="store_true", help="skip the hello-timeout case")
    a = p.parse_args()
    if a.enroll:
        ws = WebSocket(a.url, timeout=a.timeout)
        ws.send_json({"type": "enroll", "token": a.enroll, "version": "0.1.0"})
        frame = expect_type(ws, "enrolled")
        print(frame["credential"])
        return 0
    if not a.host:
        p.error("--host is required")
    return Catalogue(a).all()


if __name__ == "__main__":
    sys.exit(main())
