"""A small real capture recorded on this machine, for the readers now and for replays on nflog later.

`record(out_dir)` runs this file in a network namespace of its own (util-linux unshare), where
tcpdump listens on that namespace's loopback while a real workload runs: a burst of DNS queries
to a resolver on 127.0.0.1 (each from its own socket, so each its own flow) and a small HTTP
transfer (two GETs of 64 KiB, each its own TCP connection). Nothing leaves the namespace.
It returns what the workload did and what tcpdump said it captured, so tests can hold a reader
to both. `reason()` says why it cannot run here (not root, no tcpdump, no namespaces).

    python tests/recorded_capture.py OUT.pcap   # inside the namespace: the workload itself
"""
from __future__ import annotations

import http.server
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DNS_QUERIES = 20
HTTP_GETS = 2
HTTP_BYTES = 64 * 1024


@dataclass(frozen=True)
class Recorded:
    path: Path
    captured: int         # tcpdump's own count of the packets it wrote
    dns_queries: int      # answered
    http_connections: int
    http_bytes: int       # body bytes received in all

    @property
    def flows(self) -> int:
        return self.dns_queries + self.http_connections


def reason() -> str | None:
    """None if a capture can be recorded here, else why not."""
    if not sys.platform.startswith("linux"):
        return "recording a capture in a network namespace needs Linux"
    import os
    if os.geteuid() != 0:
        return "recording a capture in a network namespace of its own needs root"
    for tool, package in (("tcpdump", "tcpdump"), ("unshare", "util-linux"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            return f"recording a capture needs {tool} (Debian: apt-get install {package})"
    return None


def record(out_dir: Path, timeout_s: float = 60.0) -> Recorded:
    """Record the workload's capture in a fresh namespace; out_dir/recorded.pcap."""
    out = Path(out_dir) / "recorded.pcap"
    cmd = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
           sys.executable, __file__, str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"recording failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    return Recorded(out, **facts)


# -- the workload, run inside the namespace ---------------------------------------------------------

def _resolver(sock: socket.socket, stop: threading.Event) -> None:
    from scapy.layers.dns import DNS, DNSRR
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(2048)
        except socket.timeout:
            continue
        query = DNS(data)
        answer = DNS(id=query.id, qr=1, aa=1, rd=query.rd, qd=query.qd,
                     an=DNSRR(rrname=query.qd[0].qname, type="A", ttl=60, rdata="127.0.0.1"))
        sock.sendto(bytes(answer), peer)


def _dns_burst(port: int) -> int:
    from scapy.layers.dns import DNS, DNSQR
    answered = 0
    for k in range(DNS_QUERIES):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a new source port: a new flow
            s.settimeout(2.0)
            s.sendto(bytes(DNS(id=k, rd=1, qd=DNSQR(qname=f"host{k}.example"))), ("127.0.0.1", port))
            answered += DNS(s.recv(2048)).an is not None
    return answered


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"x" * HTTP_BYTES
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def _workload(out: Path) -> dict:
    tcpdump = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-U", "-Z", "root", "-s", "262144", "-w", str(out)],
                               stderr=subprocess.PIPE, text=True)
    try:
        line = tcpdump.stderr.readline()  # "listening on lo, ...": it captures from now on
        if "listening on" not in line:
            raise RuntimeError(f"tcpdump did not start: {line.strip()} {tcpdump.stderr.read()[-500:]}")
        stop = threading.Event()
        resolver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        resolver.bind(("127.0.0.1", 0))
        threading.Thread(target=_resolver, args=(resolver, stop), daemon=True).start()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        answered = _dns_burst(resolver.getsockname()[1])
        received = 0
        for _ in range(HTTP_GETS):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/file", timeout=5) as r:
                received += len(r.read())
        server.shutdown()
        server.server_close()
        stop.set()
        resolver.close()
    finally:
        tcpdump.send_signal(signal.SIGINT)  # flushes and prints its counts
        _, err = tcpdump.communicate(timeout=10)
    m = re.search(r"(\d+) packets? captured", err)
    if not m:
        raise RuntimeError(f"tcpdump said no count: {err.strip()[-500:]}")
    return {"captured": int(m.group(1)), "dns_queries": answered, "http_connections": HTTP_GETS,
            "http_bytes": received}


if __name__ == "__main__":
    print(json.dumps(_workload(Path(sys.argv[1]))))
