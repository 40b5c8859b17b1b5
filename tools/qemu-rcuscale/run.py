#!/usr/bin/env python3
"""Boot the rcuscale kernel under QEMU TCG, one run per boot, as
../shared/calibration/linux-6.1-qemu-tcg/NOTES.md describes, and append a row to
OUT/runs.csv in that data's format (``kvfree-sim validate`` reads it).

Probes, each optional (they perturb the guest a little; their runs go to
OUT/probe-runs.csv, not runs.csv):

* ``--perf``: ``perf sched record`` of the whole host during the boot, for
  host_pauses.py (how long QEMU's threads waited for a core).
* ``--monitor``: every ``--period`` s, read the guest's jiffies, free pages
  and unreclaimable slab pages through QEMU's human monitor (``xp``) into
  OUT/logs/TAG.mem.csv.  Addresses from the kernel's System.map.
* ``--ring``: a kernel built with kvsim-ring.patch; once the result line or
  a panic is out (``panic=0`` then, so that the guest stays up),
  ``pmemsave`` its event ring into OUT/logs/TAG.ring (``ring.py`` reads it).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

APPEND = ("console=ttyS0 rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads={nthreads} "
          "rcuscale.holdoff=2 rcuscale.kfree_loops={loops} rcuscale.kfree_alloc_num=8000 rcuscale.kfree_mult={mult} "
          "torture.disable_onoff_at_boot rcuscale.shutdown=1 panic=-1")
RESULT = re.compile(r"Total time taken by all kfree'ers: (\d+) ns, loops: (\d+), batches: (\d+), "
                    r"memory footprint: (-?\d+)MB")
FIELDS = ["variant", "smp", "mem_mb", "nthreads", "loops", "alloc_num", "kfree_mult", "holdoff", "run",
          "completed", "total_ns", "batches", "footprint_mb", "oom", "wall_s", "note"]
START_KERNEL_MAP = 0xFFFFFFFF80000000  # CONFIG_RELOCATABLE is off: phys = virt - __START_KERNEL_map
NR_SLAB_UNRECLAIMABLE_B = 6  # enum node_stat_item, 6.1
RING_ENTRIES, RING_ENTRY = 1 << 17, 24  # kvsim-ring.patch: KVSIM_N, sizeof(struct kvsim_ev)


def symbols(system_map: Path, *names: str) -> dict[str, int]:
    """Physical addresses of data symbols, from System.map."""
    found = {}
    for line in system_map.read_text().splitlines():
        addr, _, name = line.split()
        if name in names:
            found[name] = int(addr, 16) - START_KERNEL_MAP
    missing = set(names) - set(found)
    if missing:
        raise SystemExit(f"run.py: {system_map} has no symbol {', '.join(sorted(missing))}")
    return found


class Monitor:
    """QEMU's human monitor on a unix socket: one command at a time."""

    def __init__(self, path: str) -> None:
        for _ in range(200):
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"run.py: no QEMU monitor at {path}")
        self._read()

    def _read(self) -> str:
        buf = b""
        while not buf.endswith(b"(qemu) "):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        return buf.decode(errors="replace")

    def cmd(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\n")
        return self._read()

    def word(self, phys: int) -> int:
        """One 64-bit word of guest physical memory."""
        return int(re.findall(r":\s+(0x[0-9a-f]+)", self.cmd(f"xp /1gx {phys:#x}"))[-1], 16)


class Sampler(threading.Thread):
    """Reads jiffies, NR_FREE_PAGES and NR_SLAB_UNRECLAIMABLE_B every ``period`` s."""

    def __init__(self, sock: str, out: Path, syms: dict[str, int], period: float) -> None:
        super().__init__(daemon=True)
        self.sock, self.out, self.syms, self.period = sock, out, syms, period
        self.stop = False

    def run(self) -> None:
        mon = Monitor(self.sock)
        s = self.syms
        with self.out.open("w") as f:
            f.write("host_t,jiffies,free_pages,slab_unrecl_pages\n")
            try:
                while not self.stop:
                    t = time.monotonic()
                    j = mon.word(s["jiffies_64"])
                    free = mon.word(s["vm_zone_stat"])  # NR_FREE_PAGES is item 0
                    slab = mon.word(s["vm_node_stat"] + 8 * NR_SLAB_UNRECLAIMABLE_B)
                    f.write(f"{t:.6f},{j},{free},{slab}\n")
                    time.sleep(self.period)
            except (EOFError, OSError, IndexError):
                pass  # QEMU exited


def steal_ticks() -> int:
    return int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8])


def boot(args: argparse.Namespace, mem: int, run: int) -> dict[str, object]:
    tag = ("" if args.variant == "upstream" else f"{args.variant}_") + f"m{mem}_s{args.smp}_k{args.mult}_r{run}"
    if (args.nthreads, args.loops) != (16, 100):
        tag += f"_t{args.nthreads}_l{args.loops}"
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{tag}.log"
    append = APPEND.format(mult=args.mult, nthreads=args.nthreads, loops=args.loops)
    if args.ring:  # stay up after a panic, so that the ring can be saved
        append = append.replace("panic=-1", "panic=0")
    cmd = ["qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "qemu64",
           "-smp", f"{args.smp},sockets={args.smp},cores=1,threads=1", "-m", f"{mem}M", "-nographic",
           "-net", "none", "-no-reboot", "-kernel", str(args.kernel), "-append", append]
    sampler = None
    if args.monitor:
        sock = f"/tmp/kvsim-{os.getpid()}-{tag}.mon"
        cmd += ["-monitor", f"unix:{sock},server=on,wait=off"]
        syms = symbols(args.system_map, "jiffies_64", "vm_zone_stat", "vm_node_stat")
        sampler = Sampler(sock, logs / f"{tag}.mem.csv", syms, args.period)
    ring_sock = f"/tmp/kvsim-{os.getpid()}-{tag}.ring"
    if args.ring:
        cmd += ["-monitor", f"unix:{ring_sock},server=on,wait=off"]
        ring = symbols(args.system_map, "kvsim_idx")["kvsim_idx"]
    perf = None
    if args.perf:
        perf = subprocess.Popen(["perf", "sched", "record", "-o", str(logs / f"{tag}.perf")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    s0, t0 = steal_ticks(), time.monotonic()
    done_at = None
    with log.open("w") as f:
        q = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if sampler:
            sampler.start()
        while q.poll() is None:
            time.sleep(0.2)
            now = time.monotonic()
            text = log.read_text(errors="replace")
            if done_at is None and ("Total time taken" in text or (args.ring and "Kernel panic" in text)):
                done_at = now
                if args.ring:  # kvsim_idx, then the ring right after it (16-byte aligned)
                    Monitor(ring_sock).cmd(f'pmemsave {ring:#x} {16 + RING_ENTRY * RING_ENTRIES} '
                                           f'"{logs / (tag + ".ring")}"')
            if (done_at is not None and now - done_at > 5) or now - t0 > args.timeout:
                q.kill()
                q.wait()
    wall = (done_at or time.monotonic()) - t0
    if sampler:
        sampler.stop = True
        sampler.join(2)
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    text = log.read_text(errors="replace")
    m = RESULT.search(text)
    oom = "System is deadlocked on memory" in text
    return dict(variant=args.variant, smp=args.smp, mem_mb=mem, nthreads=args.nthreads, loops=args.loops, alloc_num=8000,
                kfree_mult=args.mult, holdoff=2, run=run, completed=int(bool(m)),
                total_ns=m.group(1) if m else "", batches=m.group(3) if m else "",
                footprint_mb=m.group(4) if m else "", oom=int(oom), wall_s=f"{wall:.2f}",
                note="" if m else ("panic:System is deadlocked on memory" if oom else "no_result"),
                steal_ticks=steal_ticks() - s0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", type=Path, required=True, help="bzImage (build-kernel.sh)")
    ap.add_argument("--system-map", type=Path, help="its System.map (--monitor, --ring)")
    ap.add_argument("--mem", default="64,60,56", help="guest sizes in MB, comma-separated")
    ap.add_argument("--runs", type=int, default=1, help="boots per size")
    ap.add_argument("--first-run", type=int, default=1, help="number of the first run")
    ap.add_argument("--variant", default="upstream",
                    help="the kernel's name in runs.csv: upstream, nodrain or v3 (validate's names)")
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--mult", type=int, default=64, help="rcuscale.kfree_mult")
    ap.add_argument("--nthreads", type=int, default=16, help="rcuscale.kfree_nthreads")
    ap.add_argument("--loops", type=int, default=100, help="rcuscale.kfree_loops")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--timeout", type=float, default=150.0, help="host seconds before a boot is killed")
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--monitor", action="store_true")
    ap.add_argument("--period", type=float, default=0.02, help="--monitor sampling period, s")
    ap.add_argument("--ring", action="store_true")
    args = ap.parse_args()
    if (args.monitor or args.ring) and not args.system_map:
        ap.error("--monitor and --ring need --system-map")
    probed = args.perf or args.monitor or args.ring
    path = args.out / ("probe-runs.csv" if probed else "runs.csv")
    fields = FIELDS + ["steal_ticks"] if probed else FIELDS
    for run in range(args.first_run, args.first_run + args.runs):
        for mem in (int(x) for x in args.mem.split(",")):
            row = boot(args, mem, run)
            new = not path.exists()
            with path.open("a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
                if new:
                    w.writeheader()
                w.writerow(row)
            print(", ".join(f"{k}={row[k]}" for k in ("mem_mb", "run", "completed", "oom", "total_ns", "wall_s")),
                  flush=True)


if __name__ == "__main__":
    main()
