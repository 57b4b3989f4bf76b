#!/usr/bin/env python3
"""acm_stream.py — stream a WAV file (16-bit PCM) to acmd's WebSocket transcription route, standard library only.

    python3 acm_stream.py [--url ws://127.0.0.1:8080] [--model NAME] [--key KEY] [--budget B] [--realtime] FILE.wav

Sends the samples as binary frames of 100 ms (paced in real time with --realtime), prints each partial in place and
each final on its own line, then {"type":"end"} and waits for the server's close (1000). The protocol is docs/API.md,
*Streaming*. A minimal RFC 6455 client: masked frames out, unfragmented frames in (the server sends no fragments).
"""
import argparse, base64, json, os, socket, struct, sys, time, urllib.parse, wave


class WebSocket:
    def __init__(self, url, headers=None):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "ws":
            raise ValueError("only ws:// URLs (acmd streams over plain HTTP; put TLS in a proxy)")
        self.sock = socket.create_connection((u.hostname, u.port or 80))
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + ("?" + u.query if u.query else "")
        req = (f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port or 80}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        for k, v in (headers or {}).items():
            req += f"{k}: {v}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            b = self.sock.recv(4096)
            if not b:
                raise ConnectionError("closed during the handshake")
            head += b
        head, self.buf = head.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n")[0].decode()
        if " 101 " not in status + " ":
            raise ConnectionError(f"handshake refused: {status}: {self.buf.decode(errors='replace')}")

    def send(self, opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def _read(self, n):
        while len(self.buf) < n:
            b = self.sock.recv(65536)
            if not b:
                raise ConnectionError("connection closed")
            self.buf += b
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """(opcode, payload) of the next frame; answers pings."""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            if b0 & 0x0F == 0x9:
                self.send(0xA, payload)
                continue
            return b0 & 0x0F, payload


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--url", default="ws://127.0.0.1:8080")
    ap.add_argument("--model", default="speech")
    ap.add_argument("--key", default=None, help="API key (sent as Authorization: Bearer)")
    ap.add_argument("--budget", type=float, default=None, help="compute budget beta in (0, 1]")
    ap.add_argument("--realtime", action="store_true", help="pace the audio in real time")
    a = ap.parse_args()
    w = wave.open(a.file, "rb")
    if w.getsampwidth() != 2 or w.getnchannels() != 1:
        sys.exit(f"{a.file}: 16-bit mono WAV expected")
    rate = w.getframerate()
    q = {"rate": rate, "format": "s16le"}
    if a.budget is not None:
        q["budget"] = a.budget
    url = f"{a.url}/v1/models/{a.model}/stream?" + urllib.parse.urlencode(q)
    ws = WebSocket(url, {"Authorization": f"Bearer {a.key}"} if a.key else None)
    step = rate // 10
    t0 = time.monotonic()
    sent = 0
    ws.sock.setblocking(True)
    while True:
        pcm = w.readframes(step)
        if not pcm:
            break
        ws.send(0x2, pcm)
        sent += len(pcm) // 2
        if a.realtime:
            time.sleep(max(0.0, t0 + sent / rate - time.monotonic()))
    ws.send(0x1, json.dumps({"type": "end"}).encode())
    while True:
        op, p = ws.recv()
        if op == 0x8:
            code = struct.unpack(">H", p[:2])[0] if len(p) >= 2 else 1005
            print(f"closed {code} {p[2:].decode(errors='replace')}", file=sys.stderr)
            ws.send(0x8, p[:2])
            sys.exit(0 if code == 1000 else 1)
        m = json.loads(p)
        tty = sys.stdout.isatty()
        if m["type"] == "partial" and tty:
            print("\r\033[K" + m["text"], end="", flush=True)
        elif m["type"] == "final":
            print(("\r\033[K" if tty else "") + m["text"], flush=True)
        elif m["type"] == "error":
            print(f"\nerror: {m['error']}", file=sys.stderr)


if __name__ == "__main__":
    main()
