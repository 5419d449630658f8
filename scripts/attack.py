#!/usr/bin/env python3
"""Connection-abuse attacker for the drills (scripts/drills.sh, drills 5-8). Python 3, stdlib only.

Keeps --connections hostile connections open for --duration seconds, opening a new one each
time the server closes one, while probing GET /healthz (a fresh connection each time, as a
load balancer does) every --probe-ms. Modes:

  flood    connect and send nothing, or (one in 7) half a request line: half-open connections
  idle     one GET /healthz answered, then idle on the kept-alive connection
  stall    POST /v1/ingest with Content-Length 10000, 5 body bytes, then nothing
  trickle  POST /v1/ingest with Content-Length 10000, one body byte every --trickle-ms

Prints one JSON object: connections opened, closed by the server, connect errors, the answers
the attacking requests got by status, how long those took (ms), and the /healthz probes
(count, failed, p50/p99/max ms).
"""

import argparse
import asyncio
import json
import multiprocessing
import socket
import time


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


class Attack:
    def __init__(self, args):
        self.args = args
        self.host, port = args.addr.rsplit(":", 1)
        self.port = int(port)
        self.opened = 0
        self.closed_by_server = 0
        self.connect_errors = 0
        self.statuses = {}
        self.answer_ms = []
        self.idle_closed_after_ms = []
        self.probes = []
        self.probe_failures = 0
        self.deadline = time.monotonic() + args.duration

    def left(self):
        return self.deadline - time.monotonic()

    def ingest_head(self):
        ts = str(int(time.time()))
        return (
            f"POST /v1/ingest HTTP/1.1\r\nHost: {self.args.addr}\r\n"
            f"Authorization: Bearer {self.args.key}\r\nContent-Type: application/json\r\n"
            f"X-Timestamp: {ts}\r\nX-Signature: {'0' * 64}\r\n"
            "Content-Length: 10000\r\n\r\n"
        ).encode()

    async def read_status(self, reader, timeout):
        """The status of the answer (None on EOF without one); raises TimeoutError."""
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            return None
        parts = line.split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    def count(self, status, started):
        key = str(status) if status is not None else "closed"
        self.statuses[key] = self.statuses.get(key, 0) + 1
        self.answer_ms.append((time.monotonic() - started) * 1000)

    async def one(self, index):
        mode = self.args.mode
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), 5
            )
        except (OSError, asyncio.TimeoutError):
            self.connect_errors += 1
            await asyncio.sleep(0.05)
            return
        self.opened += 1
        started = time.monotonic()
        try:
            if mode == "flood":
                if index % 7 == 0:
                    writer.write(b"POST /v1/ing")
                    await writer.drain()
                data = await asyncio.wait_for(reader.read(64), max(self.left(), 0.01))
                if data[9:12].isdigit():
                    self.count(int(data[9:12]), started)  # answered (a 503 at the cap)
                self.closed_by_server += 1
            elif mode == "idle":
                writer.write(f"GET /healthz HTTP/1.1\r\nHost: {self.args.addr}\r\n\r\n".encode())
                await writer.drain()
                status = await self.read_status(reader, 5)
                length = 0
                while True:
                    line = await asyncio.wait_for(reader.readline(), 5)
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                    if line in (b"\r\n", b""):
                        break
                await asyncio.wait_for(reader.readexactly(length), 5)
                self.count(status, started)
                idle_from = time.monotonic()
                data = await asyncio.wait_for(reader.read(1), max(self.left(), 0.01))
                if not data:
                    self.closed_by_server += 1
                    self.idle_closed_after_ms.append((time.monotonic() - idle_from) * 1000)
            elif mode == "stall":
                writer.write(self.ingest_head() + b'{"eve')
                await writer.drain()
                status = await self.read_status(reader, max(self.left(), 0.01))
                self.count(status, started)
                self.closed_by_server += 1
            elif mode == "trickle":
                writer.write(self.ingest_head())
                await writer.drain()
                body = b'{"events":[' + b" " * 9986 + b"]}"
                sent = 0
                status = "pending"
                while status == "pending" and self.left() > 0:
                    try:
                        status = await self.read_status(reader, self.args.trickle_ms / 1000)
                    except asyncio.TimeoutError:
                        if sent < len(body):
                            writer.write(body[sent : sent + 1])
                            await writer.drain()
                            sent += 1
                if status != "pending":
                    self.count(status, started)
                    self.closed_by_server += 1
        except asyncio.TimeoutError:
            pass  # the drill ended with this connection still open
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.closed_by_server += 1
        finally:
            writer.close()

    async def keep(self, index):
        while self.left() > 0:
            await self.one(index)

    async def run(self):
        tasks = [asyncio.create_task(self.keep(i)) for i in range(self.args.connections)]
        # The probe runs in its own process: the attacker's busy event loop must not delay it.
        results = multiprocessing.Queue()
        prober = multiprocessing.Process(
            target=probe,
            args=(self.host, self.port, self.args, min(1.0, self.args.duration / 4), results),
        )
        prober.start()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.probes, self.probe_failures = await asyncio.get_running_loop().run_in_executor(
            None, results.get
        )
        prober.join()
        return {
            "mode": self.args.mode,
            "connections": self.args.connections,
            "opened": self.opened,
            "closed_by_server": self.closed_by_server,
            "connect_errors": self.connect_errors,
            "statuses": self.statuses,
            "answer_ms": {
                "p50": percentile(self.answer_ms, 0.5),
                "max": percentile(self.answer_ms, 1.0),
            },
            "idle_closed_after_ms": {
                "p50": percentile(self.idle_closed_after_ms, 0.5),
                "min": percentile(self.idle_closed_after_ms, 0.0),
            },
            "healthz": {
                "count": len(self.probes),
                "failed": self.probe_failures,
                "p50_ms": percentile(self.probes, 0.5),
                "p99_ms": percentile(self.probes, 0.99),
                "max_ms": percentile(self.probes, 1.0),
            },
        }


def probe(host, port, args, delay, results):
    """GET /healthz on a fresh connection every --probe-ms until the end: (latencies, failures)."""
    time.sleep(delay)  # let the attack take hold first
    deadline = time.monotonic() + args.duration - delay
    latencies, failures = [], 0
    request = f"GET /healthz HTTP/1.1\r\nHost: {args.addr}\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(request)
                answer = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            if answer.startswith(b"HTTP/1.1 200"):
                latencies.append((time.monotonic() - started) * 1000)
            else:
                failures += 1
        except OSError:
            failures += 1
        time.sleep(args.probe_ms / 1000)
    results.put((latencies, failures))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["flood", "idle", "stall", "trickle"])
    parser.add_argument("--addr", default="127.0.0.1:8080")
    parser.add_argument("--key", default="")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--probe-ms", type=float, default=200.0)
    parser.add_argument("--trickle-ms", type=float, default=500.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(Attack(args).run())))


if __name__ == "__main__":
    main()
