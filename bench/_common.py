"""Shared bits of the benchmarks: the machine they ran on and percentiles."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f", {int(line.split()[1]) // 1024 // 1024} GiB"
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}){mem}, Python {platform.python_version()}"


def rss_mib() -> float:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


def thread_cpu() -> dict[str, float]:
    """CPU seconds each live thread of this process has used, by thread name (Linux; threads
    of one name are summed, digits dropped: `feed-pods`, `Thread-`). Time spent waiting for
    the GIL is not CPU time, so this says who did the work."""
    import re
    import threading
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: re.sub(r"[\d\s()]+$", "", t.name) for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid, name in names.items():
        try:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_by_thread(before: dict[str, float], after: dict[str, float], top: int = 8) -> str:
    """`name 1.23 s, ...` for the threads that used the most CPU between two thread_cpu()s."""
    delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
    busiest = sorted(delta.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{k} {v:.2f}s" for k, v in busiest if v >= 0.01)


def host_speed() -> float:
    """Milliseconds one thread takes for a fixed pure-Python workload (best of 5).

    This host's speed drifts (other tenants, CPU steal): printing this before and after
    a run says whether a slow figure came from the code or from the machine."""
    import time
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        d: dict[int, int] = {}
        for i in range(200_000):
            d[i & 1023] = d.get(i & 1023, 0) + i
        best = min(best, time.perf_counter() - t)
    return best * 1000
