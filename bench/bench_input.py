#!/usr/bin/env python3
"""Input ceiling: the highest event rate the detector node takes in without losing a packet, beside
a bare rclpy subscriber measured in the same run (target: the node >= 0.9 of it).

Each runs in a process of its own, over real DDS, with the drivers' QoS (best effort, keep last
--depth, default 1000 as the node's ``EVENT_QOS``): the node (``event_clip_ros.ros.node``, a tiny
random EventCLIP-Tiny model, one torch thread, 50 ms windows, so it also infers while it takes input)
and two bare subscribers, raw subscriptions whose handler only counts: ``bare`` takes its messages
as the node does, on an input thread (``event_clip_ros.ros.input_loop``; the ceiling of a Python
node on this box, the target's reference), ``bare_executor`` in a callback spun by rclpy's
SingleThreadedExecutor (what a plain rclpy node gets; the node took its input that way before), and
``bare_loaded``, the input-thread one beside load processes (one per core started) that burn as much CPU as the node used at
that rate (from /proc, in bursts of ``LOAD_BURST_MS``): on a box of two cores, what the node's own work
costs any subscriber there. Beside them, at each rate, the node's own bound: the rate at which one thread
takes those packets through the node's input side (CDR parse, EVT3 decode, time checks, windowing; no DDS),
which no transport lifts, since the node takes its packets in order on one thread. This process plays a camera driver: EVT3
EventPackets of --packet-us of sensor time (default 1024 us: 1 ms packets, a quarter of EVT3's
4096 us TIME_HIGH step), each published when its last event is due (real time). For each rate of
the ladder it plays --duration-s to each subscriber in turn, the node first; a rate is lossless for a
subscriber when it received every packet (the node: every packet decoded, none missing by sequence
number) and kept up (its counts stopped moving within ``CATCH_UP_S`` of the last packet: a subscriber
working off a backlog that its history absorbed for --duration-s would lose packets at that rate given
longer); its ceiling is the highest rate up to which every rate was. The ladder stops for a
subscriber after two such failures in a row, or when this process could
not keep the rate (it took over 5% longer than the sensor time to publish a rate's packets: the box,
not the subscriber, is the limit then; single packets late by a packet or more are counted too).

Events: uniform over a 640x480 sensor (one ADDR_Y and one ADDR_X word each, 4 bytes), a pool of
--pool packets encoded once per rate and replayed with its TIME_HIGH words advanced, so that sensor
time runs on and any rate costs only the pool to encode.

  .venv/bin/python bench/bench_input.py                       # 1 ms packets, default transport
  .venv/bin/python bench/bench_input.py --packet-us 4096      # 4 ms packets
  FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA .venv/bin/python bench/bench_input.py
  FASTDDS_DEFAULT_PROFILES_FILE=$PWD/config/fastdds_large_shm.xml .venv/bin/python bench/bench_input.py
  FASTDDS_DEFAULT_PROFILES_FILE=$PWD/config/fastdds_realtime.xml .venv/bin/python bench/bench_input.py
  .venv/bin/python bench/bench_input.py --subscriber-profile config/fastdds_realtime.xml
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results_file import bench_parser, write_results

from event_clip_ros.events.encoders import encode_evt3
from event_clip_ros.events.ros_cdr import encode_event_packet
from event_clip_ros.events.types import SensorSize, make_events

SIZE = SensorSize(640, 480)
LABELS = ["disc", "bar", "square", "person", "car"]
TIME_HIGH_US = 4096  # one EVT3 TIME_HIGH unit
DEFAULT_RATES = "5,10,15,20,25,30,35,40,45,50,60,70,80,100,120,140,160,200,250,300"
#: period of the subscribers' /diagnostics counts, s
STATUS_PERIOD_S = 0.25
#: a subscriber kept up with a rate when its counts stopped moving within this long after the last packet
#: went out (two status periods, the resolution of the counts, and half a second: a node that works off a
#: backlog for longer would lose packets at that rate once its history, 1 s of 1 ms packets, is full)
CATCH_UP_S = 2 * STATUS_PERIOD_S + 0.5
#: who is measured, in this order at each rate: the node, the input-thread bare subscriber (the reference),
#: the executor-spun one, and the input-thread one beside a load that uses the CPU the node used at that rate
SUBSCRIBERS = ("detector", "bare", "bare_executor", "bare_loaded")
#: sensor time fed back to back to measure the input thread's own rate at each rate's packets, s
INPUT_THREAD_SENSOR_S = 1.0
EVENT_PACKET = "event_camera_msgs/msg/EventPacket"
#: the load's bursts, ms (the node's worker builds a window's frame and infers in bursts of a few ms)
LOAD_BURST_MS = 5.0


# ---------------------------------------------------------------- the bare subscriber (own process)


def serve_bare(ns: str, name: str, depth: int) -> None:
    """A Python node that only counts what it receives; its counts on /diagnostics (status ``/<ns>/<name>``)
    every 0.25 s. ``bare``: messages taken on an input thread as the detector node takes them;
    ``bare_executor``: a subscription callback spun by the executor."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from event_camera_msgs.msg import EventPacket
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rclpy.init(signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    from event_clip_ros.ros.input_loop import InputLoop, unexecuted_group

    node = rclpy.create_node(name, namespace=f"/{ns}")
    counts = {"packets": 0, "bytes": 0}

    def on_packet(raw: bytes) -> None:
        counts["packets"] += 1
        counts["bytes"] += len(raw)

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT,
                     durability=DurabilityPolicy.VOLATILE)
    on_input_thread = name != "bare_executor"
    sub = node.create_subscription(EventPacket, "~/events", on_packet, qos, raw=True,
                                   callback_group=unexecuted_group() if on_input_thread else None)
    loop = InputLoop([sub], lambda _i, raw, _info: on_packet(raw), node.context) if on_input_thread else None
    if loop is not None:
        loop.start()
    diag = node.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def publish_counts() -> None:
        values = [KeyValue(key="state", value="active")] + [KeyValue(key=k, value=str(v)) for k, v in counts.items()]
        diag.publish(DiagnosticArray(status=[DiagnosticStatus(name=f"/{ns}/{name}", values=values)]))

    node.create_timer(STATUS_PERIOD_S, publish_counts)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while not stop and rclpy.ok():
        executor.spin_once(timeout_sec=0.1)  # the detector node's loop (ros/node.py)
    if loop is not None:
        loop.stop()
    node.destroy_node()
    rclpy.try_shutdown()


def serve_load(cores: float) -> None:
    """Burn ``cores`` (at most 1) of one core's time in bursts of ``LOAD_BURST_MS`` until SIGTERM/SIGINT."""
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    work = np.ones(100_000)
    period_s = LOAD_BURST_MS * 1e-3 / min(1.0, max(cores, 1e-3))
    while not stop:
        start = time.monotonic()
        while time.monotonic() - start < LOAD_BURST_MS * 1e-3:
            work *= 1.0000001
        time.sleep(max(0.0, period_s - (time.monotonic() - start)))


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the driver (this process)


def events_per_packet(rate_mev_s: float, packet_us: int) -> int:
    return max(1, round(rate_mev_s * packet_us))


def packet_pool(rate_mev_s: float, packet_us: int, pool: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``pool`` consecutive EVT3 packets of ``packet_us`` each at ``rate_mev_s``: (words, indices of their
    TIME_HIGH words), encoded as one stream (time starts at 0)."""
    rng = np.random.default_rng(seed)
    n = events_per_packet(rate_mev_s, packet_us)
    out, prev = [], None
    for k in range(pool):
        t = k * packet_us + np.sort(rng.integers(0, packet_us, n))
        ev = make_events(t, rng.integers(0, SIZE.width, n), rng.integers(0, SIZE.height, n), rng.integers(0, 2, n))
        words = np.frombuffer(encode_evt3(ev, prev), dtype="<u2").copy()
        out.append((words, np.flatnonzero(words >> 12 == 0x8)))
        prev = int(t[-1])
    return out


def pool_packet(pool: list[tuple[np.ndarray, np.ndarray]], k: int, packet_us: int) -> np.ndarray:
    """The words of the ``k``-th packet played from ``pool``: its packet ``k mod len(pool)``, advanced by the
    pool's span for each time round (sensor time runs on)."""
    cycle, i = divmod(k, len(pool))
    return advanced(pool[i][0], pool[i][1], cycle * (len(pool) * packet_us // TIME_HIGH_US))


def advanced(words: np.ndarray, time_high_at: np.ndarray, units: int) -> np.ndarray:
    """``words`` with their TIME_HIGH values advanced by ``units`` (mod 4096): the same packet ``units``
    x 4096 us later."""
    if units % 4096 == 0:
        return words
    out = words.copy()
    out[time_high_at] = 0x8000 | ((words[time_high_at] & 0xFFF) + units) & 0xFFF
    return out


class Driver:
    """The publishing side: one rclpy node, a publisher per subscriber's topic, /diagnostics read back.

    While it plays a rate it sleeps between packets instead of spinning its executor (a camera driver
    publishes; it does not wait on a wait set per packet): spinning cost this process 0.3 of a core at
    40 Mev/s against 0.15 sleeping, and on two cores that made it late more often, and a late driver sends
    its packets back to back, more than the writer's shared-memory segment holds (512 KiB: 3 packets
    at 40 Mev/s). /diagnostics waits in the subscription's history and is read after each rate.
    """

    def __init__(self, ns: str) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from event_camera_msgs.msg import EventPacket

        from event_clip_ros.ros.interfaces import EVENT_QOS  # the drivers' QoS

        self.rclpy = rclpy
        rclpy.init()
        self.node = rclpy.create_node("bench_input_driver")
        self.pubs = {name: self.node.create_publisher(EventPacket, f"/{ns}/{name}/events", EVENT_QOS)
                     for name in SUBSCRIBERS}
        self.status: dict[str, dict[str, str]] = {name: {} for name in SUBSCRIBERS}
        prefixes = {f"/{ns}/{name}": name for name in SUBSCRIBERS}

        def on_diag(msg) -> None:  # a node's statuses (itself, each input) merged into one dict
            for prefix, name in prefixes.items():
                merged = {kv.key: kv.value for s in msg.status if s.name.split(":")[0] == prefix for kv in s.values}
                if merged:
                    self.status[name] = merged

        self.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 100)
        self.seq = {name: 1 for name in self.pubs}  # each subscriber sees one stream (the probe was seq 0)

    def counts(self, name: str) -> dict[str, int]:
        return {k: int(v) for k, v in self.status[name].items() if v.isdigit()}

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.rclpy.spin_once(self.node, timeout_sec=max(0.0, min(0.05, end - time.monotonic())))

    def wait_ready(self, name: str, procs: list[subprocess.Popen], timeout_s: float = 120) -> None:
        """Until ``name`` is active and has received a probe packet (its reader matched this writer)."""
        deadline = time.monotonic() + timeout_s
        probe = encode_event_packet(b"", encoding="evt3", width=SIZE.width, height=SIZE.height, seq=0)
        while not (self.pubs[name].get_subscription_count() and self.status[name].get("state") == "active"
                   and self.counts(name).get("packets", 0) > 0):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                dead = [p for p in procs if p.poll() is not None and p.stderr is not None]
                sys.exit(f"{name} did not come up{': ' + dead[0].stderr.read()[-2000:] if dead and dead[0].stderr else ''}")
            if self.pubs[name].get_subscription_count():
                self.pubs[name].publish(probe)
            self.spin_for(0.05)

    def play(self, name: str, pool: list[tuple[np.ndarray, np.ndarray]], packet_us: int, duration_s: float,
             pid: int | None = None) -> dict:
        """Publish ``duration_s`` of the pool's packets to ``name`` in real time; what it received (and, given
        the subscriber's ``pid``, the cores it used while the packets went out)."""
        n_packets = max(1, round(duration_s * 1e6 / packet_us))
        self.spin_for(0.3)
        before = self.counts(name)
        cpu_before = process_cpu_s(pid) if pid is not None else 0.0
        pub, late = self.pubs[name], 0
        start = time.monotonic_ns() + 20_000_000
        for k in range(n_packets):
            msg = encode_event_packet(pool_packet(pool, k, packet_us), encoding="evt3", width=SIZE.width,
                                      height=SIZE.height, seq=self.seq[name], stamp_ns=time.time_ns(), frame_id="bench")
            wait = start + (k + 1) * packet_us * 1000 - time.monotonic_ns()
            if wait > 0:  # sleep, not spin: /diagnostics waits in its history (see the class docstring)
                time.sleep(wait * 1e-9)
            elif wait < -packet_us * 1000:  # more than a packet behind (then several go out back to back)
                late += 1
            pub.publish(msg)
            self.seq[name] += 1
        sent_at = time.monotonic()
        sent_s = (time.monotonic_ns() - start) * 1e-9
        cores = (process_cpu_s(pid) - cpu_before) / sent_s if pid is not None else None
        # settle: until the counts stop moving (at least 1 s, at most 10 s); when they last moved tells
        # whether the subscriber kept up or worked off a backlog its history absorbed
        last, stable_since, end = None, time.monotonic(), time.monotonic() + 10
        while time.monotonic() < end:
            self.spin_for(STATUS_PERIOD_S / 2)
            now = self.counts(name)
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= 1.0:
                break
        after = self.counts(name)
        got = after.get("packets", 0) - before.get("packets", 0)
        lost = after.get("lost_packets", 0) - before.get("lost_packets", 0)
        catch_up_s = max(0.0, stable_since - sent_at)
        return {"sent": n_packets, "received": got, "lost_by_seq": lost, "late_packets": late,
                "send_s": round(sent_s, 3), "nominal_s": round(n_packets * packet_us * 1e-6, 3),
                "catch_up_s": round(catch_up_s, 2), "kept_up": catch_up_s <= CATCH_UP_S,
                "lossless": got == n_packets and lost == 0, **({"cores": round(cores, 3)} if cores is not None else {})}

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.try_shutdown()


def input_thread_rate(rate_mev_s: float, pool: list[tuple[np.ndarray, np.ndarray]], packet_us: int, window_ms: float,
                      sensor_s: float = INPUT_THREAD_SENSOR_S) -> float:
    """Mev/s at which one thread of this process takes the pool's packets (those of ``rate_mev_s``) through the node's input side
    (:func:`~event_clip_ros.apps.event_input.make_input` with the node's default window, limits and filters,
    ``window_ms`` windows): CDR parse, EVT3 decode, time checks, windowing, back to back for ``sensor_s`` of
    sensor time. The node takes every packet on one input thread in order, so it cannot take more than this
    whatever the transport and however many cores: the bound on the node's ceiling that is its own work."""
    from dataclasses import replace

    from event_clip_ros.apps.detector_config import DEFAULT_WINDOW, DetectorConfig
    from event_clip_ros.apps.event_input import make_input

    config = DetectorConfig(labels=tuple(LABELS), window=replace(DEFAULT_WINDOW, duration_us=round(window_ms * 1000)))
    source = make_input(EVENT_PACKET, config)
    warm = max(len(pool), math.ceil(3 * window_ms * 1000 / packet_us))  # kernels compiled, windows emitted
    n_packets = warm + round(sensor_s * 1e6 / packet_us)
    raws = [encode_event_packet(pool_packet(pool, k, packet_us), encoding="evt3",
                                width=SIZE.width, height=SIZE.height, seq=k, stamp_ns=k * packet_us * 1000)
            for k in range(n_packets)]
    for raw in raws[:warm]:
        source.feed(raw)
    start = time.perf_counter()
    for raw in raws[warm:]:
        source.feed(raw)
    elapsed_s = time.perf_counter() - start
    return (n_packets - warm) * events_per_packet(rate_mev_s, packet_us) / elapsed_s / 1e6


def passed(row: dict) -> bool:
    """Whether a subscriber took a rate: every packet, and kept up."""
    return row["lossless"] and row["kept_up"]


def lossless_ceiling(rows: list[dict], isolated_ok: bool = False) -> float | None:
    """The highest rate up to which every rate played was lossless, kept up with and played on time, or None.

    ``isolated_ok``: the highest such rate below the first two failing rates in a row (where the ladder
    stops), a single failing rate between passing ones let through: on this box any subscriber, the bare
    ones too, now and then loses a few packets to a hiccup of a few ms at a rate it otherwise takes.
    """
    best, failed_before = None, False
    for row in sorted(rows, key=lambda r: r["rate_mev_s"]):
        if row.get("note"):  # the publisher could not keep the rate: nothing above it counts
            break
        if passed(row):
            best, failed_before = row["rate_mev_s"], False
        elif not isolated_ok or failed_before:
            break
        else:
            failed_before = True
    return best


def subscriber_env(profile: str | None) -> dict[str, str] | None:
    """The subscribers' environment: this one, with ``profile`` as their Fast DDS profile (None: unchanged)."""
    return None if not profile else {**os.environ, "FASTDDS_DEFAULT_PROFILES_FILE": str(Path(profile).resolve())}


def start_node(checkpoint: Path, ns: str, window_ms: float, profile: str | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "event_clip_ros.ros.node", "--ros-args", "-r", f"__ns:=/{ns}",
            "-p", f"checkpoint:={checkpoint}", "-p", f"labels:={LABELS}", "-p", "torch_threads:=1",
            "-p", f"window_duration_ms:={window_ms}", "-p", f"diagnostics_period_s:={STATUS_PERIOD_S}"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=subscriber_env(profile))


def start_load(cores: float) -> list[subprocess.Popen]:
    """Processes burning ``cores`` in all: one per started core (the node may use more than one)."""
    n = max(1, math.ceil(cores))
    return [subprocess.Popen([sys.executable, __file__, "--serve-load", f"{cores / n:.4f}"]) for _ in range(n)]


def start_bare(ns: str, name: str, depth: int, profile: str | None = None) -> subprocess.Popen:
    args = [sys.executable, __file__, "--serve-bare", f"{ns}/{name}", "--depth", str(depth)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=subscriber_env(profile))


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def main() -> None:
    ap = bench_parser(__doc__, "bench_input")
    ap.add_argument("--rates", default=DEFAULT_RATES, help=f"input rates, Mev/s (default {DEFAULT_RATES})")
    ap.add_argument("--packet-us", type=int, default=1024, help="sensor time per EventPacket, us (default 1024)")
    ap.add_argument("--duration-s", type=float, default=2.0, help="seconds played per rate and subscriber (default 2)")
    ap.add_argument("--depth", type=int, default=1000, help="QoS history depth of the bare subscriber (the node's is 1000)")
    ap.add_argument("--pool", type=int, default=8, help="distinct packets per rate, replayed (default 8)")
    ap.add_argument("--window-ms", type=float, default=50.0, help="the node's window (default 50)")
    ap.add_argument("--subscriber-profile", metavar="XML",
                    help="Fast DDS profile of the subscribers' processes only (the node's and the bare ones'; not "
                         "this driver's), as the launch file's fastdds_profile sets it for the node, e.g. "
                         "config/fastdds_realtime.xml (default: the environment's, for every process)")
    ap.add_argument("--only", choices=SUBSCRIBERS, action="append",
                    help="run this subscriber (repeatable; default: all of them)")
    ap.add_argument("--serve-bare", metavar="NS", help=argparse.SUPPRESS)
    ap.add_argument("--serve-load", type=float, metavar="CORES", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_load is not None:
        serve_load(args.serve_load)
        return
    if args.serve_bare:
        ns, name = args.serve_bare.split("/")
        serve_bare(ns, name, args.depth)
        return
    if (args.pool * args.packet_us) % TIME_HIGH_US:
        ap.error(f"--pool x --packet-us must be a multiple of {TIME_HIGH_US} us (the pool is replayed TIME_HIGH steps later)")
    from tiny_model import write_tiny_checkpoint  # torch only here: the --serve-bare process stays light

    ns = f"bench_input{os.getpid()}"
    names = [name for name in SUBSCRIBERS if not args.only or name in args.only]
    procs: dict[str, subprocess.Popen] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench_input_"))
    if "detector" in names:
        procs["detector"] = start_node(write_tiny_checkpoint(tmp), ns, args.window_ms, args.subscriber_profile)
    for name in names:
        if name != "detector":
            procs[name] = start_bare(ns, name, args.depth, args.subscriber_profile)
    driver = Driver(ns)
    rows: list[dict] = []
    try:
        for name in names:
            driver.wait_ready(name, list(procs.values()))
        transport = os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "default")
        profiles = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
        if args.subscriber_profile:
            profiles = f"{profiles or 'none'} (driver), {args.subscriber_profile} (subscribers)"
        print(f"{args.packet_us} us packets, bare subscriber depth {args.depth}, Fast DDS transports: {transport}"
              f"{', profiles ' + profiles if profiles else ''}; {args.duration_s:g} s per rate and subscriber", flush=True)
        lossy = {name: 0 for name in names}
        for rate in [float(r) for r in args.rates.split(",")]:
            active = [name for name in names if lossy[name] < 2]
            if not active:
                break
            pool = packet_pool(rate, args.packet_us, args.pool, seed=int(rate * 10))
            packet_kib = np.mean([w.size for w, _ in pool]) * 2 / 1024
            node_cores: float | None = None  # the CPU the node used at this rate (it plays first)
            # the node's own bound at these packets, measured while every subscriber idles
            own_rate = input_thread_rate(rate, pool, args.packet_us, args.window_ms) if "detector" in active else None
            for name in active:
                load: list[subprocess.Popen] = []
                if name == "bare_loaded":
                    if node_cores is None:  # the node did not play this rate: nothing to load the reference with
                        continue
                    load = start_load(node_cores)
                pid = procs[name].pid if name == "detector" else None
                try:
                    row = {"subscriber": name, "rate_mev_s": rate, "packet_kib": round(float(packet_kib), 1),
                           **driver.play(name, pool, args.packet_us, args.duration_s, pid)}
                finally:
                    for proc in load:
                        stop(proc)
                if name == "detector":
                    node_cores = row["cores"]
                    row["input_thread_mev_s"] = round(own_rate or 0.0, 1)
                if load:
                    row["load_cores"] = node_cores
                if row["send_s"] > 1.05 * row["nominal_s"] + 0.02:
                    row["note"] = "publisher behind: the box is the limit"
                print(row, flush=True)
                rows.append(row)
                lossy[name] = 0 if passed(row) else lossy[name] + 1
                if row.get("note"):
                    lossy[name] = 2
    finally:
        driver.close()
        for proc in procs.values():
            stop(proc)

    strict = {name: lossless_ceiling([r for r in rows if r["subscriber"] == name]) for name in names}
    ceiling = {name: lossless_ceiling([r for r in rows if r["subscriber"] == name], isolated_ok=True) for name in names}
    result = {"packet_us": args.packet_us, "bare_depth": args.depth, "node_depth": 1000,
              "fastdds_builtin_transports": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "default"),
              "fastdds_profiles_file": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", ""),
              "subscriber_profile": args.subscriber_profile or "",
              "duration_s": args.duration_s, "lossless_mev_s": strict,
              "lossless_isolated_failures_ok_mev_s": ceiling, "rows": rows}
    print("\nhighest lossless rate (every rate up to it): " + ", ".join(f"{n} {c}" for n, c in strict.items()))
    print("highest lossless rate (one failing rate between passing ones let through): "
          + ", ".join(f"{n} {c}" for n, c in ceiling.items()) + " Mev/s")
    for key, table in (("", ceiling), ("strict_", strict)):
        node = table.get("detector")
        for name in names:
            bare = table.get(name)
            if name == "detector" or not bare or node is None:
                continue
            ratio = node / bare
            result[f"{key}node_vs_{name}"] = round(ratio, 3)
            target = (f" (target >= 0.9: {'OK' if ratio >= 0.9 else 'MISSED'})" if name == "bare" else
                      " (the reference carrying the node's CPU use)" if name == "bare_loaded" else "")
            print(f"{key or 'isolated failures let through: '}node / {name} subscriber: {ratio:.2f}{target}")
    node = ceiling.get("detector")
    own = next((r["input_thread_mev_s"] for r in rows if r["subscriber"] == "detector" and r["rate_mev_s"] == node), None)
    if node is not None and own:
        bare = ceiling.get("bare")
        bound = own if bare is None else min(own, bare)
        result["input_thread_mev_s_at_node_ceiling"] = own
        result["node_vs_min_bare_input_thread"] = round(node / bound, 3)
        print(f"the node's input thread alone takes {own:.0f} Mev/s of the packets at its ceiling (one thread, back to "
              f"back, no DDS): the most it could take whatever the transport; node / min(bare, that): {node / bound:.2f}")
    write_results(result, args.out)


if __name__ == "__main__":
    main()
