#!/usr/bin/env python3
"""Hostile clients beside a load test of `mmguard serve` (the soak of README § Load test).

For --duration seconds, against --url:
  idle      --idle sockets that connect and never send (reopened when the server closes them)
  slow      --slow clients announcing a 100,000-byte body and sending one byte a second
  half      clients sending half a request header, then nothing
  oversize  requests declaring a 10^9-byte body
  malformed requests with a body that is not JSON
and samples the server's resident memory and heap in use from /metrics every 10 s. Prints one
JSON object: what each kind of client got back (status lines, or "closed" when the server
closed the connection without an answer) and the memory samples (seconds, resident MB, heap MB;
the heap is null off glibc). Standard library only.
"""

import argparse
import json
import socket
import threading
import time
import urllib.request
from collections import Counter


def host_port(url):
    rest = url.split("://", 1)[-1].rstrip("/")
    host, port = rest.rsplit(":", 1)
    return host, int(port)


def status_of(sock):
    """The status code of what the server sends before closing, or 'closed'."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        return "reset"
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = line.split()
    return parts[1] if len(parts) > 1 else "closed"


class Clients:
    def __init__(self, url, end):
        self.addr = host_port(url)
        self.end = end
        self.counts = {k: Counter() for k in ["idle", "slow", "half", "oversize", "malformed"]}
        self.lock = threading.Lock()

    def count(self, kind, outcome):
        with self.lock:
            self.counts[kind][outcome] += 1

    def connect(self, timeout=60):
        s = socket.create_connection(self.addr, timeout=10)
        s.settimeout(timeout)
        return s

    def idle(self):
        while time.time() < self.end:
            try:
                s = self.connect(timeout=max(1, self.end - time.time()))
                self.count("idle", status_of(s))
                s.close()
            except OSError as e:
                self.count("idle", type(e).__name__)
                time.sleep(0.1)

    def slow(self):
        while time.time() < self.end:
            try:
                s = self.connect()
                s.sendall(b"POST /v1/infer HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\n"
                          b"content-length: 100000\r\n\r\n")
                s.setblocking(False)
                outcome = None
                while outcome is None and time.time() < self.end:
                    try:
                        s.send(b" ")
                    except BlockingIOError:
                        pass
                    except OSError:
                        outcome = "closed"
                    time.sleep(1)
                    try:
                        if s.recv(1, socket.MSG_PEEK):
                            s.setblocking(True)
                            s.settimeout(10)
                            outcome = status_of(s)
                    except BlockingIOError:
                        pass
                    except OSError:
                        outcome = "closed"
                self.count("slow", outcome or "still open at the end")
                s.close()
            except OSError as e:
                self.count("slow", type(e).__name__)
                time.sleep(0.1)

    def once(self, kind, request, pause):
        while time.time() < self.end:
            try:
                s = self.connect()
                s.sendall(request)
                self.count(kind, status_of(s))
                s.close()
            except OSError as e:
                self.count(kind, type(e).__name__)
            time.sleep(pause)


def memory(url):
    """(resident MB, heap in use MB) from /metrics; None for a gauge the server does not report."""
    text = urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=10).read().decode()
    gauges = {}
    for line in text.splitlines():
        for name in ("mmguard_resident_memory_bytes", "mmguard_heap_in_use_bytes"):
            if line.startswith(name + " "):
                gauges[name] = round(float(line.split()[1]) / 1e6, 2)
    return gauges.get("mmguard_resident_memory_bytes"), gauges.get("mmguard_heap_in_use_bytes")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--idle", type=int, default=500)
    p.add_argument("--slow", type=int, default=32)
    a = p.parse_args()
    end = time.time() + a.duration
    c = Clients(a.url, end)
    threads = [threading.Thread(target=c.idle, daemon=True) for _ in range(a.idle)]
    threads += [threading.Thread(target=c.slow, daemon=True) for _ in range(a.slow)]
    threads += [
        threading.Thread(target=c.once, args=("half", b"POST /v1/infer HTTP/1.1\r\nhost: so", 0.5), daemon=True),
        threading.Thread(
            target=c.once,
            args=("oversize", b"POST /v1/infer HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\n"
                  b"content-length: 1000000000\r\n\r\n", 0.1),
            daemon=True,
        ),
        threading.Thread(
            target=c.once,
            args=("malformed", b"POST /v1/infer HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\n"
                  b"content-length: 9\r\nconnection: close\r\n\r\n{not json", 0.1),
            daemon=True,
        ),
    ]
    for t in threads:
        t.start()
    samples = []
    while time.time() < end:
        try:
            samples.append([round(a.duration - (end - time.time())), *memory(a.url)])
        except OSError as e:
            samples.append([round(a.duration - (end - time.time())), type(e).__name__])
        time.sleep(min(10, max(0, end - time.time())))
    for t in threads:
        t.join(timeout=15)
    print(json.dumps({"clients": {k: dict(v) for k, v in c.counts.items()}, "memory_mb": samples}, indent=1))


if __name__ == "__main__":
    main()
