"""End-to-end throughput of ``spanledger collector``: OTLP/gRPC in, rows in ClickHouse out.

Run: ``python bench/bench_collector.py [--requests N] [--spans 512] [--clients 2]``
or, for a sustained run, ``--duration 600`` (each load process keeps sending for
that long, new ids every request) with ``--skip-decode --skip-rotel``.

Two load processes send pre-encoded 512-span ExportTraceServiceRequests with
realistic GenAI attributes (see tests/support/loadgen.py) over gRPC. Three
targets, in the same run and with the same load:

1. ``spanledger collector`` (subprocess, embedded chdb store): spans/s from the
   first request until the collector's ``spans_written_total`` reaches the
   number acknowledged, then the rows in ``otel_traces`` are counted after it
   stopped; peak RSS of the collector and its conversion workers (summed, sampled
   every half second: the peak of the total, and per minute to show it is flat).
2. decode-only ceiling: a Python grpcio server that parses every request and
   touches every span, nothing else.
3. rotel-agent with its blackhole exporter (if ``pip install --pre rotel``
   installed it), as a reference for a native collector.

The table shows each rate and its ratio to the decode-only ceiling.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LOG_FILE = Path(tempfile.gettempdir()) / "bench-collector.log"
#: the synthetic requests are the tests' (tests/support/loadgen.py), not part of the package
TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))
SERVICE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


# -- load ---------------------------------------------------------------------------
def _id_offsets(blob: bytes, request: object) -> list[tuple[int, int]]:
    """(offset, length) of every trace and span id in the serialized request."""
    offsets = []
    for span in request.resource_spans[0].scope_spans[0].spans:  # type: ignore[attr-defined]
        for value in (span.trace_id, span.span_id):
            offsets.append((blob.index(value), len(value)))
    return offsets


def _load_worker(target: str, n_requests: int, spans: int, seed: int, threads: int,
                 ready: mp.Barrier, go: mp.Event, out: mp.Queue, duration: float) -> None:
    import random
    import threading

    import grpc

    from support.loadgen import genai_request

    rng = random.Random(seed)
    base = genai_request(spans, rng=rng)
    blobs = []
    for _ in range(n_requests if not duration else 1):  # unique ids: re-randomize ids only
        for span in base.resource_spans[0].scope_spans[0].spans:
            span.trace_id = rng.getrandbits(128).to_bytes(16, "big")
            span.span_id = rng.getrandbits(64).to_bytes(8, "big")
        blobs.append(base.SerializeToString())
    offsets = _id_offsets(blobs[0], base) if duration else []
    lock = threading.Lock()
    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
    export = channel.unary_unary(SERVICE_METHOD, request_serializer=None,
                                 response_deserializer=None)
    ready.wait()
    go.wait()
    ok = 0
    until = time.monotonic() + duration

    def fresh() -> bytes:
        """The template with new random ids (for --duration: endless distinct spans)."""
        blob = bytearray(blobs[0])
        with lock:
            ids = rng.randbytes(sum(n for _, n in offsets))
        pos = 0
        for offset, n in offsets:
            blob[offset : offset + n] = ids[pos : pos + n]
            pos += n
        return bytes(blob)

    def send_one(blob: bytes) -> int:
        for _attempt in range(200):
            try:
                export(blob, timeout=60)
                return 1
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.RESOURCE_EXHAUSTED):
                    time.sleep(0.05)
                    continue
                raise
        return 0

    def send(chunk: list[bytes]) -> int:
        if duration:
            done = 0
            while time.monotonic() < until:
                done += send_one(fresh())
            return done
        return sum(send_one(blob) for blob in chunk)

    chunks = [blobs[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        ok = sum(pool.map(send, chunks))
    out.put(ok * spans)


def run_load(target: str, clients: int, n_requests: int, spans: int, threads: int,
             duration: float = 0) -> tuple[float, int]:
    """(start time, spans acknowledged); returns when every client has its answers."""
    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Barrier(clients + 1), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_load_worker,
                         args=(target, n_requests, spans, 1000 + i, threads, ready, go, out,
                               duration))
             for i in range(clients)]
    for p in procs:
        p.start()
    ready.wait(timeout=300)
    t0 = time.perf_counter()
    go.set()
    acked = sum(out.get(timeout=600 + duration) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    return t0, acked


# -- targets --------------------------------------------------------------------------
def _decode_only_server(port_q: mp.Queue, stop: mp.Event) -> None:
    from concurrent.futures import ThreadPoolExecutor as TPE

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb

    counted = [0]

    def export(body: bytes, _ctx: object) -> bytes:
        req = pb.ExportTraceServiceRequest()
        req.ParseFromString(body)
        n = 0
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    n += len(sp.span_id)  # touch every span
        counted[0] += n
        return b""

    server = grpc.server(TPE(8), options=[("grpc.max_receive_message_length", 64 << 20)])
    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export, request_deserializer=None,
                                                       response_serializer=None)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_q.put(port)
    stop.wait()
    server.stop(0)


def bench_decode_only(args: argparse.Namespace) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    p = ctx.Process(target=_decode_only_server, args=(q, stop))
    p.start()
    port = q.get(timeout=60)
    t0, acked = run_load(f"127.0.0.1:{port}", args.clients, args.requests, args.spans, args.threads)
    elapsed = time.perf_counter() - t0
    rss = peak_rss_mb(p.pid)
    stop.set()
    p.join(10)
    return {"spans": acked, "seconds": elapsed, "rate": acked / elapsed, "rss_mb": rss}


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
            out += [int(x) for x in text.split()]
    except OSError:
        pass
    return out


def rss_mb(pid: int) -> float:
    """Resident memory now of ``pid`` and its children (the conversion workers)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class RssSampler:
    """The collector's total RSS (main + workers) every ``every`` seconds, in a thread."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        import threading

        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append((time.monotonic() - self._t0, rss_mb(self.pid)))

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def peak(self) -> float:
        return max((mb for _, mb in self.samples), default=0.0)

    def per_minute(self) -> list[float]:
        """The peak of each minute (the last one partial)."""
        minutes: dict[int, float] = {}
        for t, mb in self.samples:
            minutes[int(t // 60)] = max(minutes.get(int(t // 60), 0.0), mb)
        return [minutes[m] for m in sorted(minutes)]


def peak_rss_mb(pid: int, with_children: bool = False) -> float:
    pids = [pid] + (_children(pid) if with_children else [])
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    m = re.search(rf"^spanledger_collector_{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def bench_collector(args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    store = workdir / "store"
    verbose = bool(os.environ.get("BENCH_VERBOSE"))  # collector's debug log -> LOG_FILE
    cmd = [sys.executable, "-m", "spanledger", *(["-v"] if verbose else []),
           "collector", "--url", f"chdb://{store}",
           "--grpc-port", "0", "--http-port", "0", "--no-sql-http",
           "--workers", str(args.workers)]
    log_file = open(LOG_FILE, "w") if verbose else None  # noqa: SIM115 (lives with proc)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=log_file or subprocess.STDOUT, text=True)
    lines: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("spanledger collector: "):
            parts = line.split()
            if len(parts) >= 4:
                lines[parts[2]] = parts[3]
            if "ready" in line:
                break
    metrics = lines["metrics"]
    sampler = RssSampler(proc.pid).start()
    t0, acked = run_load(lines["otlp_grpc"], args.clients, args.requests, args.spans,
                         args.threads, args.duration)
    t_acked = time.perf_counter() - t0
    deadline = time.monotonic() + 600
    while _metric(metrics, "spans_written_total") < acked and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    sampler.stop()
    rss = peak_rss_mb(proc.pid, with_children=True)
    rss_main = peak_rss_mb(proc.pid)
    cpu_main = cpu_seconds(proc.pid)
    cpu_workers = sum(cpu_seconds(c) for c in _children(proc.pid))
    proc.terminate()
    proc.wait(timeout=120)
    from spanledger.store import open_store

    s = open_store(f"chdb://{store}")
    rows, uniq = s.query("SELECT count(), uniqExact(TraceId, SpanId) FROM otel_traces")[0]
    s.close()
    return {"spans": acked, "seconds": elapsed, "rate": rows / elapsed, "rows": rows,
            "uniq": uniq, "ack_rate": acked / t_acked, "rss_mb": rss, "rss_main_mb": rss_main,
            "rss_total_peak_mb": sampler.peak, "rss_per_minute": sampler.per_minute(),
            "exit": proc.returncode, "cpu_main": cpu_main, "cpu_workers": cpu_workers}


def bench_rotel(args: argparse.Namespace) -> dict[str, float] | str:
    exe = shutil.which("rotel-agent") or str(Path(sys.executable).parent / "rotel-agent")
    if not Path(exe).exists():
        try:
            import rotel

            cand = list(Path(rotel.__file__).parent.rglob("rotel-agent*"))
            exe = str(cand[0]) if cand else ""
        except ImportError:
            exe = ""
    if not exe or not Path(exe).exists():
        return "rotel-agent not installed (pip install --pre rotel did not provide it)"
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    port = ports[0]
    proc = subprocess.Popen([exe, "start", "--exporter", "blackhole",
                             "--otlp-grpc-endpoint", f"127.0.0.1:{port}",
                             "--otlp-http-endpoint", f"127.0.0.1:{ports[1]}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    try:
        t0, acked = run_load(f"127.0.0.1:{port}", args.clients, args.requests, args.spans,
                             args.threads)
        elapsed = time.perf_counter() - t0
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    return {"spans": acked, "seconds": elapsed, "rate": acked / elapsed, "rss_mb": rss}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=120, help="requests per load process")
    ap.add_argument("--spans", type=int, default=512, help="spans per request")
    ap.add_argument("--clients", type=int, default=2, help="load processes")
    ap.add_argument("--threads", type=int, default=2, help="concurrent RPCs per load process")
    ap.add_argument("--workers", type=int, default=2, help="collector conversion processes")
    ap.add_argument("--duration", type=float, default=0,
                    help="seconds each load process keeps sending (instead of --requests)")
    ap.add_argument("--skip-rotel", action="store_true")
    ap.add_argument("--skip-decode", action="store_true", help="no decode-only ceiling run")
    args = ap.parse_args()
    total = args.requests * args.clients * args.spans
    load = (f"for {args.duration:g} s" if args.duration else
            f"x {args.requests} requests = {total:,} spans")
    print(f"load: {args.clients} processes x {args.spans} spans per request {load}, "
          f"{os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        decode = {"rate": float("nan"), "rss_mb": float("nan")} if args.skip_decode \
            else bench_decode_only(args)
        print(f"decode-only: {decode['rate']:,.0f} spans/s", flush=True)
        coll = bench_collector(args, Path(tmp))
        print(f"collector: {coll['rate']:,.0f} spans/s end to end, peak RSS "
              f"{coll['rss_total_peak_mb']:.0f} MB (main + workers)", flush=True)
    rotel = "skipped" if args.skip_rotel else bench_rotel(args)
    ceiling = decode["rate"]
    print()
    print(f"{'target':<44} {'spans/s':>10} {'vs decode':>9} {'peak RSS MB':>12}")
    print("-" * 78)
    print(f"{'decode-only grpcio server (ceiling)':<44} {ceiling:>10,.0f} {1:>9.2f} "
          f"{decode['rss_mb']:>12.0f}")
    print(f"{'spanledger collector, OTLP -> otel_traces':<44} {coll['rate']:>10,.0f} "
          f"{coll['rate'] / ceiling:>9.2f} {coll['rss_total_peak_mb']:>12.0f}")
    print(f"{'  (acknowledge rate, spooled + fsynced)':<44} {coll['ack_rate']:>10,.0f} "
          f"{coll['ack_rate'] / ceiling:>9.2f} {coll['rss_main_mb']:>12.0f}")
    if isinstance(rotel, dict):
        print(f"{'rotel-agent, blackhole exporter':<44} {rotel['rate']:>10,.0f} "
              f"{rotel['rate'] / ceiling:>9.2f} {rotel['rss_mb']:>12.0f}")
    else:
        print(f"rotel-agent: {rotel}")
    print()
    print(f"collector: {coll['spans']:,.0f} spans acknowledged, {coll['rows']:,.0f} rows in "
          f"otel_traces ({coll['uniq']:,.0f} distinct TraceId+SpanId), "
          f"{coll['seconds']:.2f} s, exit code {coll['exit']}")
    print(f"collector RSS: peak of main + workers together {coll['rss_total_peak_mb']:.0f} MB "
          f"(sampled every 0.5 s); peaks of each: main {coll['rss_main_mb']:.0f} MB, main + "
          f"workers {coll['rss_mb']:.0f} MB; per minute: "
          + ", ".join(f"{mb:.0f}" for mb in coll["rss_per_minute"]) + " MB")
    per_span = 1e6 / coll["spans"]
    print(f"collector CPU: main process (receive, spool, insert) {coll['cpu_main']:.1f} s = "
          f"{coll['cpu_main'] * per_span:.0f} us/span; conversion workers "
          f"{coll['cpu_workers']:.1f} s = {coll['cpu_workers'] * per_span:.0f} us/span")
    ok = coll["rows"] == coll["spans"] == coll["uniq"] and coll["exit"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
