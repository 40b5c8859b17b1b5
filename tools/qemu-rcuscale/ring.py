#!/usr/bin/env python3
"""The batch-level events of kvfree_rcu, from the kernel and from the model, side by side.

kvsim-ring.patch makes kernel/rcu/tree.c (6.1.192) log, into a ring that
``run.py --ring`` saves with QEMU's pmemsave: grace-period start and end
(rcu_gp_init()/rcu_gp_cleanup()), each detach of a krcp into a batch
(kfree_rcu_monitor(), with krcp->count), each monitor pass that finds both
batches busy and re-arms (with count; kfree_rcu_shrink_scan() calls the
monitor too, so a shrinker storm shows as a burst of these), the start
and end of kfree_rcu_work() (with global NR_FREE_PAGES), each run of
fill_page_cache_func(), each inline page allocation of the 1-argument form
and each 2-argument call that falls back to the rcu_head list (the
calibration data's fill_runs, direct_alloc and head_fallback), and each bulk
page a krcp starts to fill; in mm/page_alloc.c, each direct reclaim round
(__perform_reclaim(): start with free pages, end with its progress), each
__alloc_pages_may_oom(), each boost_watermark() (with the zone's free
pages) and each fallback steal of __rmqueue_fallback() (arg: the request's
order, bits 0-3; the stolen block's order, 4-7; the orders at which the
requester's own free lists are not empty, a mask in bits 8-18; the zone's free
pages from bit 24); in mm/vmscan.c, each balance_pgdat() pass of kswapd (with
its boost to reclaim), each boost it clears, and each wakeup_kswapd() call.  Times are
local_clock(): jiffy-quantised under TCG (the TSC is unstable there).

A census of a zone's pageblocks (kvsim_census() in mm/page_alloc.c, under
zone->lock) is logged at rcuscale's first kvfree_call_rcu() (every populated
zone), at each fallback steal (the zone, right after the steal event, before
the steal changes anything) and at each __alloc_pages_may_oom() (every
populated zone).  It is a header, then two events per pageblock, all from the
same CPU with interrupts off (other CPUs' events may come in between); the
event's krcpu field is the zone's index.

* 20, header: bits 0-3 why (1 test start, 2 steal, 3 OOM call), 4-7 zone
  index; for a steal, 8-10 the migratetype stolen from, 11-13 the requester's,
  16-63 the pfn of the free block about to be stolen; for an OOM call, 8-11
  the request's order.
* 19, one per pageblock: bits 0-11 the block's index (pfn >> 10), 12-14 its
  migratetype (get_pageblock_migratetype()), 15-25 free pages (the block's
  PageBuddy heads, 1 << order each), 26-29 the largest free order (15: no free
  page), 30-40 movable pages (PageLRU() or __PageMovable(), as
  move_freepages_block() counts them), 41-51 PageReserved() pages, 52-62
  PageSlab() pages (each page of a slab).  The classes are exclusive, in that
  order (free, reserved, slab, movable); the rest of the block's 1024 pages
  is "other".
* 21, one per pageblock, after its 19: bits 0-11 the block's index, 12-22
  pages of the "other" that are free but not in the buddy lists (refcount 0,
  not a compound tail: per-CPU lists, pages being freed), 23-33 page-table
  pages (PageTable()), 34-44 the block's free pages that sit on the
  UNMOVABLE free lists, 45-55 those on the RECLAIMABLE lists (the rest of
  its free pages are on the MOVABLE lists, or HIGHATOMIC/ISOLATE).

Each request to __alloc_pages() whose gfp_migratetype() is RECLAIMABLE is
logged, all events from the CPU that makes it:

* 22, at the entry: bits 0-3 the order, 4-35 the caller's address (_RET_IP_)
  less _stext, 36-63 the gfp flags.
* 24, right after: the stack (stack_trace_save(), the ORC unwinder; the
  calibration .config has no frame pointers, so __builtin_return_address(1)
  is not safe), two frames per event, each less _stext, in bits 0-31 and
  32-63 (0: none), 14 frames at most, from kvsim_reclaimable() and
  __alloc_pages() outwards.
* 25, at the end: bits 0-3 the order, 4-63 the pfn got (0: none).
* 23, in allocate_slab() for each new slab of a RECLAIMABLE cache
  (SLAB_RECLAIM_ACCOUNT), after its 25: bits 0-3 the slab's order, 4-7 the
  cache's preferred order, 8-26 object_size, 27 SLAB_RECLAIM_ACCOUNT, 28-63
  the slab's pfn; then 26 with the cache's name, bytes 0-7, and 27 with bytes
  8-15 if it is longer.

Since 2026-11-27 tree.c also logs how each CPU's quiescent state gets
reported, and every tick's TSC:

* 28, rcu_report_qs_rdp() reporting (the CPU's own report, from rcu_core()):
  krcpu the CPU, arg bit 0 rcu_is_cpu_rrupt_from_idle(), bit 1 the idle
  task is current (a softirq on the exit of an interrupt from idle).
* 29, each rcu_sched_clock_irq() in an interrupt from idle: cpu, arg user.
* 30, force_qs_rnp() reporting a CPU: krcpu the CPU, arg 1 at the first
  scan (dyntick_save_progress_counter()), 0 at a later one.
* 31, each rcu_sched_clock_irq() (every tick of every CPU): cpu, arg the
  TSC (get_cycles()), which under TCG follows the host's clock, where the
  event's time, local_clock(), follows the guest's jiffies.

``ring.py qs RING`` says per grace period who reported last and how;
``ring.py ticks RING`` how the ticks fall in real (TSC) time.

``ring.py reclaimable RING --system-map MAP`` groups them by cache and caller
(addresses resolved with the kernel's System.map) and pairs them with the
steals for RECLAIMABLE (a census header 20 on the same CPU between a 22 and
its 25).

Holes and memblock allocations are PageReserved (the first 1 MB, the kernel
image, the memory map, the tail of the last block beyond the zone's end).
``ring.py census`` prints the censuses.

``ring.py model`` records the same events from kvfree-sim (run it with the
project's virtualenv); ``ring.py summary`` prints the distributions of any
number of rings side by side.

  ring.py summary data/qemu-tcg-here-2026-11-26/ring-80M-run201.ring.gz model.ring
  ring.py census data/qemu-tcg-here-2026-11-26/ring-56M-run900.ring.gz
  ring.py reclaimable data/qemu-tcg-here-2026-11-26/ring-56M-run1010.ring.gz
      --system-map data/qemu-tcg-here-2026-11-26/System.map-kvsim10.gz
  .venv/bin/python tools/qemu-rcuscale/ring.py model --memory 80M --profile P --out model.ring
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import math
import random
import re
import statistics
import struct
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

(GP_START, GP_END, DETACH, WORK_START, WORK_END, MON_BUSY, FILL, DIRECT, FALLBACK, PAGE,
 RECLAIM_START, RECLAIM_END, OOM, BOOST, STEAL, KSWAPD_PASS, BOOST_CLEARED, KSWAPD_WAKE,
 CENSUS_BLOCK, CENSUS_HEAD, CENSUS_EXTRA, RECL_REQ, RECL_SLAB, RECL_STACK, RECL_GOT, RECL_NAME0,
 RECL_NAME1, QS_REPORT, IDLE_TICK, FQS_QS, TICK_TSC) = range(1, 32)
PAGEBLOCK_ORDER = 10  # the calibration kernel's (no HUGETLBFS)
PAGEBLOCK_PAGES = 1 << PAGEBLOCK_ORDER
MIGRATETYPES = ("UNMOVABLE", "MOVABLE", "RECLAIMABLE", "HIGHATOMIC", "ISOLATE")
ENTRY = struct.Struct("<QIHHQ")  # struct kvsim_ev { u64 t; u32 what; u16 cpu; u16 krcpu; u64 arg; }
HEADER = 16  # atomic_t kvsim_idx, padded to the ring's alignment
Event = tuple[int, int, int, int, int]  # (t ns, what, executing cpu, krcp's cpu, arg)


def load(path: Path) -> list[Event]:
    """The ring's events in the order they were logged (times are quantised: do not sort)."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    n = min(struct.unpack_from("<i", raw, 0)[0], (len(raw) - HEADER) // ENTRY.size)
    return [ENTRY.unpack_from(raw, HEADER + ENTRY.size * i) for i in range(n)]


def save(path: Path, events: list[Event]) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(events)).ljust(HEADER, b"\0"))
        for e in events:
            f.write(ENTRY.pack(*e))


def span_of_test(events: list[Event]) -> tuple[int, int]:
    """The test's span in the ring: its first to its last detach."""
    det = [e for e in events if e[1] == DETACH]
    return det[0][0], det[-1][0]


def metrics(events: list[Event], page_kb: int = 4) -> dict[str, list[float]]:
    """Distributions over the test (first to last detach), in ms, objects or MB."""
    t0, t1 = span_of_test(events)
    ev = [e for e in events if t0 <= e[0] <= t1]
    out: dict[str, list[float]] = defaultdict(list)
    gp_start = None
    queued: dict[int, deque[int]] = defaultdict(deque)
    running: dict[tuple[int, int], deque[int]] = defaultdict(deque)
    last_detach: dict[int, int] = {}
    count = {MON_BUSY: 0, FILL: 0, DIRECT: 0, FALLBACK: 0, OOM: 0, BOOST: 0, STEAL: 0, KSWAPD_PASS: 0}
    boosted_at: int | None = None
    partial = 0
    reclaiming: dict[int, int] = {}
    for t, what, cpu, krc, arg in ev:
        if what == GP_START:
            gp_start = t
        elif what == GP_END and gp_start is not None:
            out["grace period (ms)"].append((t - gp_start) / 1e6)
        elif what == DETACH:
            out["objects per batch"].append(arg & 0xFFFFFFFF)
            if krc in last_detach:
                out["detach interval per CPU (ms)"].append((t - last_detach[krc]) / 1e6)
            last_detach[krc] = t
            queued[krc].append(t)
        elif what == WORK_START:
            if queued[krc]:
                out["detach -> kfree_rcu_work (ms)"].append((t - queued[krc].popleft()) / 1e6)
            running[(cpu, krc)].append(t)
            out["free at kfree_rcu_work (MB)"].append(arg * page_kb / 1024)
        elif what == WORK_END and running[(cpu, krc)]:
            out["kfree_rcu_work (ms)"].append((t - running[(cpu, krc)].popleft()) / 1e6)
        elif what == RECLAIM_START:
            reclaiming[cpu] = t
        elif what == RECLAIM_END and cpu in reclaiming:
            out["direct reclaim round (ms)"].append((t - reclaiming.pop(cpu)) / 1e6)
        elif what == BOOST_CLEARED and boosted_at is not None:
            out["boost -> cleared by kswapd (ms)"].append((t - boosted_at) / 1e6)
            boosted_at = None
        elif what in count:
            count[what] += 1
            if what == BOOST and boosted_at is None:
                boosted_at = t
            if what == STEAL and (arg >> 4) & 15 < PAGEBLOCK_ORDER:
                partial += 1
    out["test (s)"] = [(t1 - t0) / 1e9]
    out["monitor passes with both batches busy"] = [count[MON_BUSY]]
    out["fill_runs"] = [count[FILL]]
    out["direct_alloc"] = [count[DIRECT]]
    out["head_fallback"] = [count[FALLBACK]]
    out["fallback steals"] = [count[STEAL]]
    out["... of less than a pageblock"] = [partial]
    out["watermark boosts"] = [count[BOOST]]
    out["kswapd passes"] = [count[KSWAPD_PASS]]
    out["out-of-memory calls"] = [count[OOM]]
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def summary(paths: list[Path]) -> None:
    ms = [metrics(load(p)) for p in paths]
    names = [p.name for p in paths]
    print(f"{'':38s}" + "".join(f"{n[:30]:>32s}" for n in names))
    keys = list(dict.fromkeys(k for m in ms for k in m))
    for k in keys:
        cells = []
        for m in ms:
            xs = m.get(k, [])
            if len(xs) == 1:
                cells.append(f"{xs[0]:>32.4g}")
            elif xs:
                cells.append(f"{statistics.mean(xs):9.4g} [{pct(xs, .01):.3g} {pct(xs, .5):.3g} {pct(xs, .99):.3g}]"
                             .rjust(32))
            else:
                cells.append(f"{'-':>32s}")
        print(f"{k:38s}" + "".join(cells))
    print("(mean [p1 p50 p99])")


def census_block(arg: int) -> dict[str, int | None]:
    """Event 19: one pageblock."""
    top = (arg >> 26) & 15
    return dict(block=arg & 0xFFF, mt=(arg >> 12) & 7, free=(arg >> 15) & 0x7FF,
                top=None if top == 15 else top, movable=(arg >> 30) & 0x7FF,
                reserved=(arg >> 41) & 0x7FF, slab=(arg >> 52) & 0x7FF)


def census_extra(arg: int) -> dict[str, int]:
    """Event 21: the same block's unbuddied free pages, page tables, free pages by free list."""
    return dict(block=arg & 0xFFF, unbuddied=(arg >> 12) & 0x7FF, pagetable=(arg >> 23) & 0x7FF,
                on_unmovable=(arg >> 34) & 0x7FF, on_reclaimable=(arg >> 45) & 0x7FF)


def census_head(arg: int) -> dict[str, int | None]:
    """Event 20: why the census was taken, and for a steal the block it takes from."""
    why = arg & 15
    head: dict[str, int | None] = dict(why=why, zone=(arg >> 4) & 15, from_mt=None, for_mt=None, pfn=None,
                                       order=None)
    if why == 2:
        head.update(from_mt=(arg >> 8) & 7, for_mt=(arg >> 11) & 7, pfn=arg >> 16)
    elif why == 3:
        head["order"] = (arg >> 8) & 15
    return head


def steal_fields(arg: int) -> dict[str, int]:
    """Event 15: request order, stolen order, the requester's non-empty free orders, zone free pages."""
    return dict(order=arg & 15, stolen=(arg >> 4) & 15, mask=(arg >> 8) & 0x7FF, zone_free=arg >> 24)


def censuses(events: list[Event]) -> list[dict[str, Any]]:
    """The censuses in the ring: header fields, t, cpu, the steal's event 15 (steals), and blocks by index."""
    out: list[dict[str, Any]] = []
    open_: dict[int, dict[str, Any]] = {}  # by executing CPU
    last_steal: dict[int, dict[str, int]] = {}
    for t, what, cpu, _zone, arg in events:
        if what == STEAL:
            last_steal[cpu] = steal_fields(arg)
        elif what == CENSUS_HEAD:
            c: dict[str, Any] = dict(census_head(arg), t=t, cpu=cpu, blocks={}, steal=None)
            if c["why"] == 2:
                c["steal"] = last_steal.pop(cpu, None)
            out.append(c)
            open_[cpu] = c
        elif what == CENSUS_BLOCK and cpu in open_:
            b = census_block(arg)
            open_[cpu]["blocks"].setdefault(b["block"], {}).update(b)
        elif what == CENSUS_EXTRA and cpu in open_:
            x = census_extra(arg)
            open_[cpu]["blocks"].setdefault(x["block"], {}).update(x)
    for c in out:
        for b in c["blocks"].values():
            if "free" in b:
                b["other"] = PAGEBLOCK_PAGES - b["free"] - b["movable"] - b["reserved"] - b["slab"]
    return out


def census_by_type(c: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Per migratetype: blocks, free pages, wholly free blocks, largest orders, and the partly free blocks'
    occupants."""
    out: dict[int, dict[str, Any]] = {}
    for b in c["blocks"].values():
        if "free" not in b:
            continue
        d = out.setdefault(b["mt"], dict(blocks=0, free=0, wholly_free=0, full=0, top=defaultdict(int),
                                         free_by_top=defaultdict(int), partly=0, movable=0, reserved=0, slab=0,
                                         other=0, unbuddied=0, pagetable=0, on_unmovable=0, on_reclaimable=0))
        d["blocks"] += 1
        d["free"] += b["free"]
        d["top"][b["top"]] += 1
        d["free_by_top"][b["top"]] += b["free"]
        d["on_unmovable"] += b.get("on_unmovable", 0)
        d["on_reclaimable"] += b.get("on_reclaimable", 0)
        if b["free"] == PAGEBLOCK_PAGES:
            d["wholly_free"] += 1
        elif b["free"] == 0:
            d["full"] += 1
        else:
            d["partly"] += 1
            for k in ("movable", "reserved", "slab", "other", "unbuddied", "pagetable"):
                d[k] += b.get(k, 0)
    return out


def _orders(hist: dict[int | None, int]) -> str:
    keys = sorted((k for k in hist if k is not None), reverse=True) + ([None] if None in hist else [])
    return " ".join(f"{'-' if k is None else k}:{hist[k]}" for k in keys)


def _mt(mt: int | None) -> str:
    return "?" if mt is None else MIGRATETYPES[mt] if mt < len(MIGRATETYPES) else str(mt)


def _block(b: dict[str, Any]) -> str:
    top = "-" if b["top"] is None else b["top"]
    return (f"block {b['block']} {_mt(b['mt'])}: free {b['free']} (largest order {top}; on UNMOVABLE lists "
            f"{b.get('on_unmovable', 0)}), movable {b['movable']}, reserved {b['reserved']}, slab {b['slab']}, "
            f"other {b['other']} (unbuddied free {b.get('unbuddied', 0)}, page tables {b.get('pagetable', 0)})")


def print_census(path: Path, every: bool = False, blocks: bool = False, page_kb: int = 4) -> None:
    """The census at the test's start, at each steal (from the start on) and at each OOM call."""
    cs = censuses(load(path))
    start = next((c for c in cs if c["why"] == 1), None)
    t0 = start["t"] if start else 0
    print(f"{path.name}: {len(cs)} censuses ({sum(c['why'] == 2 for c in cs)} at steals, "
          f"{sum(c['why'] == 3 for c in cs)} at OOM calls); times from the test's start census")
    for i, c in enumerate(cs):
        if not every and start is not None and c["t"] < t0:
            continue
        nfree = sum(b.get("free", 0) for b in c["blocks"].values())
        when = f"{(c['t'] - t0) / 1e9:+.3f} s"
        if c["why"] == 1:
            print(f"\nstart {when}, zone {c['zone']}: {len(c['blocks'])} pageblocks, {nfree} free pages")
        elif c["why"] == 3:
            print(f"\nOOM call {when}, order {c['order']}, zone {c['zone']}: {nfree} free pages")
        else:
            s = c["steal"] or {}
            mask = s.get("mask")
            orders = "?" if mask is None else ",".join(str(o) for o in range(11) if mask >> o & 1) or "none"
            print(f"\nsteal {when}: order {s.get('order', '?')} for {_mt(c['for_mt'])} from an order-"
                  f"{s.get('stolen', '?')} block on the {_mt(c['from_mt'])} list; {_mt(c['for_mt'])} free orders: "
                  f"{orders}; zone free {s.get('zone_free', 0) * page_kb / 1024:.1f} MB")
            b = c["blocks"].get(c["pfn"] >> PAGEBLOCK_ORDER) if c["pfn"] is not None else None
            if b and "free" in b:
                nxt = next((d for d in cs[i + 1:] if b["block"] in d["blocks"] and "mt" in d["blocks"][b["block"]]),
                           None)
                after = _mt(nxt["blocks"][b["block"]]["mt"]) if nxt else "?"
                print(f"  from {_block(b)}; at the next census {after}")
        print(f"  {'type':12s}{'blocks':>7s}{'free':>7s}{'whole':>6s}{'full':>5s}  {'largest order: blocks':28s}"
              f"{'free pages by largest order':32s}partly free: n, movable/reserved/slab/other (unbuddied, tables)")
        for mt, d in sorted(census_by_type(c).items()):
            occ = (f"{d['partly']}, {d['movable']}/{d['reserved']}/{d['slab']}/{d['other']} "
                   f"({d['unbuddied']}, {d['pagetable']})") if d["partly"] else "0"
            print(f"  {_mt(mt):12s}{d['blocks']:7d}{d['free']:7d}{d['wholly_free']:6d}{d['full']:5d}  "
                  f"{_orders(d['top']):28s}{_orders(d['free_by_top']):32s}{occ}")
        stray = {mt: d["on_unmovable"] for mt, d in census_by_type(c).items() if mt != 0 and d["on_unmovable"]}
        if stray:
            print("  free pages on the UNMOVABLE lists in blocks of other types: "
                  + ", ".join(f"{_mt(mt)} {n}" for mt, n in stray.items()))
        if blocks:
            for b in sorted(c["blocks"].values(), key=lambda b: b["block"]):
                if "free" in b:
                    print("    " + _block(b))


def recl_request(arg: int) -> dict[str, int]:
    """Event 22: a RECLAIMABLE request's order, caller (less _stext) and gfp flags."""
    return dict(order=arg & 15, caller=(arg >> 4) & 0xFFFFFFFF, gfp=arg >> 36)


def recl_frames(arg: int) -> list[int]:
    """Event 24: two frames of the request's stack, less _stext (0: none)."""
    return [f for f in (arg & 0xFFFFFFFF, arg >> 32) if f]


def recl_slab(arg: int) -> dict[str, int]:
    """Event 23: a new slab of a RECLAIMABLE cache."""
    return dict(order=arg & 15, preferred=(arg >> 4) & 15, object_size=(arg >> 8) & 0x7FFFF,
                reclaim_account=(arg >> 27) & 1, pfn=arg >> 28)


def recl_name(arg: int) -> str:
    """Events 26 and 27: eight bytes of the cache's name."""
    return arg.to_bytes(8, "little").split(b"\0")[0].decode("ascii", "replace")


def reclaimables(events: list[Event]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The RECLAIMABLE requests in the ring (t, cpu, order, caller, gfp, stack, pfn (None: failed),
    slab (its event 23 and cache name, or None), steals made meanwhile), and every steal for
    RECLAIMABLE (t, cpu, its census header, its event 15, whether a boost (14) followed on its CPU
    before the request ended, the request or None)."""
    reqs: list[dict[str, Any]] = []
    steals: list[dict[str, Any]] = []
    open_: dict[int, list[dict[str, Any]]] = defaultdict(list)  # by CPU; an interrupt may nest one
    last_steal: dict[int, dict[str, int]] = {}
    named: dict[int, dict[str, Any]] = {}  # the slab whose name is coming, by CPU
    for t, what, cpu, _, arg in events:
        if what == RECL_REQ:
            r: dict[str, Any] = dict(recl_request(arg), t=t, cpu=cpu, stack=[], pfn=None, done=False, slab=None,
                                     steals=[])
            reqs.append(r)
            open_[cpu].append(r)
        elif what == RECL_STACK and open_[cpu]:
            open_[cpu][-1]["stack"] += recl_frames(arg)
        elif what == RECL_GOT and open_[cpu]:
            r = open_[cpu].pop()
            r["pfn"], r["done"] = (arg >> 4) or None, True
        elif what == STEAL:
            last_steal[cpu] = steal_fields(arg)
        elif what == BOOST and open_[cpu] and open_[cpu][-1]["steals"]:
            open_[cpu][-1]["steals"][-1]["boosted"] = True
        elif what == CENSUS_HEAD:
            h = census_head(arg)
            if h["why"] == 2 and h["for_mt"] == 2:
                st: dict[str, Any] = dict(h, t=t, cpu=cpu, steal=last_steal.pop(cpu, None), boosted=False,
                                          request=open_[cpu][-1] if open_[cpu] else None)
                steals.append(st)
                if st["request"] is not None:
                    st["request"]["steals"].append(st)
        elif what == RECL_SLAB:
            sl: dict[str, Any] = dict(recl_slab(arg), cache="")
            slabbed = next((q for q in reversed(reqs) if q["cpu"] == cpu and q["pfn"] == sl["pfn"]
                            and q["slab"] is None), None)
            if slabbed is not None:
                slabbed["slab"] = sl
            named[cpu] = sl
        elif what in (RECL_NAME0, RECL_NAME1) and cpu in named:
            named[cpu]["cache"] += recl_name(arg)
    return reqs, steals


def text_symbols(system_map: Path) -> tuple[list[int], list[str], int]:
    """System.map's (or its gzip's) text symbols (sorted addresses, names) and _stext."""
    syms = []
    text = (gzip.open(system_map, "rt") if system_map.suffix == ".gz" else open(system_map)).read()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    syms.sort()
    stext = next(a for a, n in syms if n == "_stext")
    return [a for a, _ in syms], [n for _, n in syms], stext


def resolve(syms: tuple[list[int], list[str], int], off: int, offset: bool = True) -> str:
    """``name+0x..`` of an address logged less _stext."""
    addrs, names, stext = syms
    a = stext + off
    i = bisect.bisect_right(addrs, a) - 1
    if i < 0:
        return hex(a)
    return f"{names[i]}+{a - addrs[i]:#x}" if offset else names[i]


# Frames of the page and slab allocators and of the ring itself: the caller is the first frame past them.
ALLOCATOR_FRAMES = re.compile(r"^(kvsim_|stack_trace_save|arch_stack_walk|__alloc_pages|alloc_pages|"
                              r"__get_free_pages|allocate_slab|new_slab|_+slab_alloc|slab_alloc|kmem_cache_alloc|"
                              r"__kmem_cache_alloc|__kmalloc|kmalloc_)")


def callers(syms: tuple[list[int], list[str], int], stack: list[int], depth: int) -> list[str]:
    """The ``depth`` frames past the allocators' (symbol names only)."""
    names = [resolve(syms, f, offset=False) for f in stack]
    i = next((k for k, n in enumerate(names) if not ALLOCATOR_FRAMES.match(n)), len(names))
    return names[i:i + depth]


def print_reclaimable(path: Path, system_map: Path, depth: int = 3, every: bool = False,
                      page_kb: int = 4) -> None:
    """Who asked for RECLAIMABLE pages, how many, when (from the test's start census), and the steals."""
    events = load(path)
    syms = text_symbols(system_map)
    reqs, steals = reclaimables(events)
    start = next((e[0] for e in events if e[1] == CENSUS_HEAD and e[4] & 15 == 1), None)
    if start is None:
        start = next((e[0] for e in events if e[1] == DETACH), events[0][0] if events else 0)
    end = events[-1][0] if events else start

    def rel(t: int) -> str:
        return f"{(t - start) / 1e9:+.3f}"

    def pages(rs: list[dict[str, Any]]) -> int:
        return sum(1 << r["order"] for r in rs if r["pfn"] is not None)

    test = [r for r in reqs if r["t"] >= start]
    print(f"{path.name}: {len(reqs)} RECLAIMABLE requests, {pages(reqs)} pages got "
          f"({sum(r['done'] and r['pfn'] is None for r in reqs)} failed); in the test (from {rel(start)} s to the "
          f"ring's last event, {rel(end)} s): {len(test)} requests, {pages(test)} pages; "
          f"{sum(r['slab'] is not None for r in reqs)} of them new slabs; {len(steals)} steals for RECLAIMABLE "
          f"({sum(s['t'] >= start for s in steals)} in the test). Times in s from the test's start.")
    groups: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    for r in reqs:
        cache = r["slab"]["cache"] if r["slab"] else "(not a slab)" if r["done"] and r["pfn"] else "(failed)"
        groups[(cache, tuple(callers(syms, r["stack"], depth)))].append(r)
    print(f"\n  {'requests':>8s}{'pages':>6s}{'steals':>7s}{'in test':>8s}{'pages':>6s}{'first':>8s}{'last':>8s}"
          f"  cache: caller chain (innermost first)")
    for (cache, chain), rs in sorted(groups.items(), key=lambda kv: kv[1][0]["t"]):
        intest = [r for r in rs if r["t"] >= start]
        print(f"  {len(rs):8d}{pages(rs):6d}{sum(len(r['steals']) for r in rs):7d}{len(intest):8d}{pages(intest):6d}"
              f"{rel(rs[0]['t']):>8s}{rel(rs[-1]['t']):>8s}  {cache}: {' < '.join(chain) or '?'}")
    cs = censuses(events)
    print("\n  steals for RECLAIMABLE (claimed: the block's type at the next census; back: the next steal from"
          " it for UNMOVABLE):")
    for s in steals:
        st = s["steal"] or {}
        r = s["request"]
        block = None if s["pfn"] is None else s["pfn"] >> PAGEBLOCK_ORDER
        nxt = next((c for c in cs if c["t"] >= s["t"] and block in c["blocks"] and "mt" in c["blocks"][block]
                    and not (c["why"] == 2 and c["cpu"] == s["cpu"] and c["pfn"] == s["pfn"] and c["t"] == s["t"])),
                   None)
        back = next((c for c in cs if c["t"] >= s["t"] and c["why"] == 2 and c["for_mt"] == 0 and c["from_mt"] == 2
                     and c["pfn"] is not None and c["pfn"] >> PAGEBLOCK_ORDER == block), None)
        fate = (f"{'boosted' if s['boosted'] else 'no boost'}; next census "
                f"{_mt(nxt['blocks'][block]['mt']) if nxt else '?'}; back "
                f"{rel(back['t']) + ' s, order ' + str((back['steal'] or {}).get('stolen', '?')) if back else '-'}")
        who = "no RECLAIMABLE request open on its CPU"
        if r is not None:
            cache = r["slab"]["cache"] if r["slab"] else "(not a slab)"
            who = (f"request at {rel(r['t'])} s, order {r['order']}, {cache}: "
                   f"{' < '.join(callers(syms, r['stack'], depth))}")
        print(f"    {rel(s['t'])} s cpu {s['cpu']}: order {st.get('order', '?')} from an order-{st.get('stolen', '?')} "
              f"block on the {_mt(s['from_mt'])} list (block {block}, zone free "
              f"{st.get('zone_free', 0) * page_kb / 1024:.1f} MB; {fate}); {who}")
    if not steals:
        print("    none")
    print("\n  slab pages in RECLAIMABLE blocks at each census from the test's start, and the RECLAIMABLE pages got"
          " so far that lie in them (an upper bound of those still there: frees are not logged):")
    for c in cs:
        if c["t"] < start:
            continue
        rblocks = {i for i, b in c["blocks"].items() if b.get("mt") == 2}
        slab = sum(c["blocks"][i].get("slab", 0) for i in rblocks)
        got = sum(1 << r["order"] for r in reqs if r["pfn"] is not None and r["t"] <= c["t"]
                  and r["pfn"] >> PAGEBLOCK_ORDER in rblocks)
        why = {1: "start", 2: f"steal for {_mt(c['for_mt'])}", 3: "OOM call"}[c["why"]]
        print(f"    {rel(c['t'])} s {why:22s} RECLAIMABLE blocks {sorted(rblocks)}: slab {slab}, "
              f"RECLAIMABLE pages got {got}")
    if every:
        print("\n  every request:")
        for r in reqs:
            sl = r["slab"]
            what = (f"slab {sl['cache']} (object {sl['object_size']} B, order {sl['order']} of "
                    f"{sl['preferred']})") if sl else "-"
            got = "failed" if r["done"] and r["pfn"] is None else f"pfn {r['pfn']}"
            print(f"    {rel(r['t'])} s cpu {r['cpu']}: order {r['order']} gfp {r['gfp']:#x}, {got}, {what}; "
                  f"caller {resolve(syms, r['caller'])}")
            for f in r["stack"]:
                print(f"        {resolve(syms, f)}")


def record_model(args: argparse.Namespace) -> None:
    """Run kvfree-sim with hooks that log the ring's events at the same points."""
    from kvfree_sim.config import make_config
    from kvfree_sim.kvfree_rcu import tree
    from kvfree_sim.machine import Machine
    from kvfree_sim.trace.hooks import Tracer

    events: list[Event] = []
    box: dict[str, Any] = {}

    def log(what: int, krc: int, arg: int, cpu: int = 0) -> None:
        k = box["machine"].kernel
        events.append((k.sim.now, what, cpu, krc, arg))

    class Ring(Tracer):
        def rcu_grace_period(self, gp_seq: int, event: str) -> None:
            kthread_cpu = box["machine"].kernel.rcu.kthread.cpu
            log(GP_START if event == "start" else GP_END, 0, gp_seq, kthread_cpu.id if kthread_cpu else 0)

        def workqueue_execute_start(self, worker: Any, work: Any) -> None:
            if isinstance(work.data, tree.KfreeRcuCpuWork):
                log(WORK_START, work.data.krcp.cpu.id, box["machine"].kernel.mm.nr_free_pages(), worker.cpu.id)

        def workqueue_execute_end(self, worker: Any, work: Any) -> None:
            if isinstance(work.data, tree.KfreeRcuCpuWork):
                log(WORK_END, work.data.krcp.cpu.id, box["machine"].kernel.mm.nr_free_pages(), worker.cpu.id)

        def mm_vmscan_direct_reclaim_begin(self, task: Any, order: int, gfp: int) -> None:
            cpu = task.cpu.id if task.cpu is not None else 0
            events.append((box["machine"].kernel.sim.now, RECLAIM_START, cpu, cpu,
                           box["machine"].kernel.mm.nr_free_pages()))

        def mm_vmscan_direct_reclaim_end(self, task: Any, nr_reclaimed: int) -> None:
            cpu = task.cpu.id if task.cpu is not None else 0
            events.append((box["machine"].kernel.sim.now, RECLAIM_END, cpu, cpu, nr_reclaimed))

    cfg = make_config(args.variant, cpus=args.cpus, memory=args.memory, profile=args.profile, seed=args.seed,
                      bootargs=args.bootargs)
    machine = Machine(cfg, None, Ring())
    box["machine"] = machine
    kv = machine.kvfree
    attach, queue, monitor = kv.attach_channels, kv.queue_batch, kv.kfree_rcu_monitor
    counters = kv.c

    def attach_channels(krcp: Any, krwp: Any) -> None:
        box["detach"] = (krcp.cpu.id, krcp.count)
        attach(krcp, krwp)

    def queue_batch(krwp: Any, ctx: Any) -> None:
        krc, count = box.pop("detach")  # every queue_batch() follows an attach_channels()
        log(DETACH, krc, count, ctx.id)  # on the CPU that detached (the shrinker's may be another)
        queue(krwp, ctx)

    def kfree_rcu_monitor(krcp: Any, ctx: Any) -> None:
        monitor(krcp, ctx)
        if krcp.bkvhead[0] or krcp.bkvhead[1] or krcp.head:
            log(MON_BUSY, krcp.cpu.id, krcp.count, ctx.id)

    mm = machine.kernel.mm
    kv.attach_channels, kv.queue_batch, kv.kfree_rcu_monitor = attach_channels, queue_batch, kfree_rcu_monitor
    if mm.held is not None:
        _hook_buddy(mm, log, events)
    else:
        _hook_counted(mm, log)
    result = machine.run()
    # The model counts these in segments, not per call: totals only, timed at the last detach.
    last = max(e[0] for e in events if e[1] == DETACH)
    for what, key in ((FILL, "fill_runs"), (DIRECT, "direct_alloc"), (FALLBACK, "head_fallback")):
        events += [(last, what, 0, 0, 0)] * counters[key]
    events += [(last, BOOST, 0, 0, 0)] * machine.kernel.mm.stats["pgsteal_boost"]
    events += [(last, OOM, 0, 0, 0)] * machine.kernel.mm.stats["oom"]
    save(args.out, events)
    print(f"{args.out}: {len(events)} events; {result.outcome}")


def _hook_counted(mm: Any, log: Any) -> None:
    """The counted page allocator: each pageblock claimed is a steal; one that boosts is
    taken as partial (order 9)."""
    steal = mm._steal_pageblocks

    def steal_pageblocks(used: int, alloc_flags: int) -> None:
        blocks, boosts = mm.unmovable_blocks, mm.stats["pgsteal_boost"]
        steal(used, alloc_flags)
        boosted = mm.stats["pgsteal_boost"] - boosts
        for i in range(mm.unmovable_blocks - blocks):
            stolen = PAGEBLOCK_ORDER - 1 if i < boosted else PAGEBLOCK_ORDER
            log(STEAL, 0, 3 | stolen << 4 | mm.nr_free_pages() << 24)

    mm._steal_pageblocks = steal_pageblocks


def model_census(mm: Any, z: Any, head: int, got_order: int = 0) -> list[tuple[int, int, int]]:
    """The census events (what, zone index, arg) of the model's zone ``z``, as kvsim_census() logs them
    (``got_order``: the order of the blocks the allocation in progress has taken)."""
    area = z.area
    pb = area.pageblock_order
    first = area.start_pfn >> pb
    n = len(area.block_mt)
    free, top, on_u, on_r = [0] * n, [15] * n, [0] * n, [0] * n
    for pfn, order in area.order_of.items():
        i = (pfn >> pb) - first
        free[i] += 1 << order
        top[i] = order if top[i] == 15 else max(top[i], order)
        mt = area.mt_of[pfn]
        if mt == 0:
            on_u[i] += 1 << order
        elif mt == 2:
            on_r[i] += 1 << order
    slab, other, pcp = [0] * n, [0] * n, [0] * n
    for owner, lists in mm.held.items():
        counts = slab if owner.startswith("slab:") else other
        for order, pfns in enumerate(lists):
            for pfn in pfns:
                i = (pfn >> pb) - first
                if 0 <= i < n:
                    counts[i] += 1 << order
    for pfn in mm._got:  # taken by the allocation in progress (of the steal's order), not yet charged
        i = (pfn >> pb) - first
        if 0 <= i < n:
            other[i] += 1 << got_order
    for cpu_lists in z.pcp.lists:
        for order, pfns in enumerate(cpu_lists.pfns or []):
            for pfn in pfns:
                pcp[(pfn >> pb) - first] += 1 << order
    out = [(CENSUS_HEAD, z.idx, head)]
    for i in range(n):
        reserved = PAGEBLOCK_PAGES - free[i] - slab[i] - other[i] - pcp[i]
        out.append((CENSUS_BLOCK, z.idx, (first + i) | area.block_mt[i] << 12 | free[i] << 15 | top[i] << 26
                    | reserved << 41 | slab[i] << 52))
        out.append((CENSUS_EXTRA, z.idx, (first + i) | pcp[i] << 12 | on_u[i] << 34 | on_r[i] << 45))
    return out


def _hook_buddy(mm: Any, log: Any, events: list[Event]) -> None:
    """The buddy model: log each __rmqueue_fallback() steal (event 15) with a census before
    it, and a census of every zone now (the test's start)."""
    def census(z: Any, head: int, got_order: int = 0) -> None:
        for what, zone, arg in model_census(mm, z, head, got_order):
            log(what, zone, arg)

    for z in mm.zones:
        census(z, 1 | z.idx << 4)
        z.area.__class__ = _logging_area(type(z.area), z, mm, log, census)


def _logging_area(base: type, z: Any, mm: Any, log: Any, census: Any) -> type:
    """A subclass of the zone's FreeArea (same slots, so the instance can take it) that
    logs each steal."""
    req: dict[str, int] = {}

    class Logging(base):  # type: ignore[misc, valid-type]
        __slots__ = ()

        def rmqueue_fallback(self, order: int, start_mt: int, kswapd: bool, nofragment: bool) -> bool:
            req["order"] = order
            return bool(super().rmqueue_fallback(order, start_mt, kswapd, nofragment))

        def steal_suitable_fallback(self, pfn: int, start_mt: int, whole: bool, kswapd: bool) -> None:
            mask = sum(1 << o for o in range(11) if self.counts[o][start_mt])
            log(STEAL, 0, req["order"] | self.order_of[pfn] << 4 | mask << 8 | mm.nr_free_pages() << 24)
            census(z, 2 | z.idx << 4 | self.pageblock_mt(pfn) << 8 | start_mt << 11 | pfn << 16, req["order"])
            super().steal_suitable_fallback(pfn, start_mt, whole, kswapd)

    return Logging


# -- how fast each vCPU runs, over time (the profile's vcpu_speed_sd, vcpu_speed_tau_ns) --------------

SPEED_WINDOW_MS = 50
SPEED_LAGS = (1, 2, 3, 5, 8, 10, 15, 20)  # in windows


def speed_series(events: list[Event], window_ms: int = SPEED_WINDOW_MS) -> list[list[float]]:
    """Per vCPU, log(objects its krcp detached per ms) in windows of ``window_ms``, from
    0.75 s after the test's first detach (the threads are all running) to 0.5 s before
    the first vCPU's threads are done (after that one vCPU runs alone)."""
    det = [e for e in events if e[1] == DETACH]
    t0 = det[0][0]
    w = window_ms * 1_000_000
    cpus = sorted({e[3] for e in det})
    end = min(max(e[0] for e in det if e[3] == c) for c in cpus) - t0
    windows = range(int(750_000_000 // w), int((end - 500_000_000) // w))
    out = []
    for c in cpus:
        objs: dict[int, int] = defaultdict(int)
        for e in det:
            if e[3] == c:
                objs[(e[0] - t0) // w] += e[4] & 0xFFFFFFFF
        out.append([math.log(max(objs[k], 1) / window_ms) for k in windows])
    return out


def speed_stats(series: list[list[float]], lags: tuple[int, ...] = SPEED_LAGS) -> tuple[float, list[float]]:
    """The pooled standard deviation of the series about their own means, and their pooled
    autocorrelation at ``lags``."""
    centred = [[v - statistics.fmean(x) for v in x] for x in series]
    n = sum(len(x) for x in centred)
    var = sum(v * v for x in centred for v in x) / n
    acf = []
    for lag in lags:
        pairs = [(x[i], x[i + lag]) for x in centred for i in range(len(x) - lag)]
        acf.append(sum(a * b for a, b in pairs) / len(pairs) / var)
    return math.sqrt(var), acf


def simulate_speed(sd: float, tau_s: float, lengths: list[int], noise: float, seed: int,
                   window_ms: int = SPEED_WINDOW_MS) -> list[list[float]]:
    """Series like speed_series()'s from a vCPU whose log speed is an Ornstein-Uhlenbeck process
    (host.VcpuSpeed) sampled once a window, plus the model's own window-to-window noise."""
    rng = random.Random(seed)
    a = math.exp(-window_ms / 1000 / tau_s)
    out = []
    for n in lengths:
        x = rng.gauss(0.0, sd)
        s = []
        for _ in range(n):
            s.append(x + rng.gauss(0.0, noise))
            x = a * x + sd * math.sqrt(1 - a * a) * rng.gauss(0.0, 1.0)
        out.append(s)
    return out


def fit_speed(rings: list[Path], model_rings: list[Path], reps: int = 8) -> None:
    """Measure vcpu_speed_sd and vcpu_speed_tau_ns: the Ornstein-Uhlenbeck law whose series,
    measured as the kernel's are (same lengths, same estimator, the model's own noise from
    ``model_rings`` of a run with no speed variation), best match the kernel's standard
    deviation and autocorrelations (simulated moments, seeded)."""
    series = [x for p in rings for x in speed_series(load(p))]
    sd, acf = speed_stats(series)
    noise, _ = speed_stats([x for p in model_rings for x in speed_series(load(p))])
    lags_s = ", ".join(f"{lag * SPEED_WINDOW_MS / 1000:.2f}" for lag in SPEED_LAGS)
    print(f"{len(rings)} rings, {len(series)} vCPU series, {sum(map(len, series))} windows of {SPEED_WINDOW_MS} ms")
    print(f"kernel: sd of log rate {sd:.3f}; autocorrelation at {lags_s} s: " + " ".join(f"{v:.2f}" for v in acf))
    print(f"model with no speed variation: sd {noise:.3f} (its own noise)")
    lengths = [len(x) for x in series]
    best: tuple[float, float, float] | None = None
    for tau in [0.2 + 0.1 * i for i in range(14)]:
        for sim_sd in [0.16 + 0.02 * i for i in range(12)]:
            stats = [speed_stats(simulate_speed(sim_sd, tau, lengths, noise, seed)) for seed in range(reps)]
            m_sd = statistics.fmean(s for s, _ in stats)
            m_acf = [statistics.fmean(a[i] for _, a in stats) for i in range(len(SPEED_LAGS))]
            err = ((m_sd - sd) / sd) ** 2 + sum((u - v) ** 2 for u, v in zip(m_acf, acf))
            if best is None or err < best[0]:
                best = (err, sim_sd, tau)
    assert best is not None
    print(f"best Ornstein-Uhlenbeck law: vcpu_speed_sd {best[1]:.2f}, vcpu_speed_tau_ns {best[2] * 1e9:.3g} "
          f"(squared error {best[0]:.4f}, {reps} simulations per point)")


def print_qs(path: Path) -> None:
    """How each grace period's quiescent states were reported (events 28-30)."""
    events = load(path)
    t0, t1 = span_of_test(events)
    gps: list[tuple[int, int, int, list[tuple[int, str, int]]]] = []  # (start, end, kthread cpu, reports)
    cur: tuple[int, int, list[tuple[int, str, int]]] | None = None
    idle_ticks: dict[int, int] = defaultdict(int)
    for t, what, cpu, krcpu, arg in events:
        if not t0 <= t <= t1:
            continue
        if what == GP_START:
            cur = (t, cpu, [])
        elif what == GP_END and cur is not None:
            gps.append((cur[0], t, cur[1], cur[2]))
            cur = None
        elif what == IDLE_TICK:
            idle_ticks[cpu] += 1
        elif what in (QS_REPORT, FQS_QS) and cur is not None:
            how = (f"own report{' from idle' if arg & 2 else ''}" if what == QS_REPORT
                   else f"FQS scan {'first' if arg else 'later'}")
            cur[2].append((t - cur[0], how, krcpu))
    if len(gps) < 2:
        print(f"{path}: fewer than two grace periods with QS events (a kernel without events 28-30?)")
        return
    secs = (t1 - t0) / 1e9
    print(f"{path}: {len(gps)} grace periods, mean {statistics.mean(g[1] - g[0] for g in gps) / 1e6:.2f} ms, "
          f"one every {(gps[-1][0] - gps[0][0]) / (len(gps) - 1) / 1e6:.2f} ms")
    print("   ticks taken from idle a second: " + ", ".join(f"CPU {c} {n / secs:.0f}" for c, n in sorted(idle_ticks.items())))
    for kcpu in sorted({g[2] for g in gps}):
        mine = [g for g in gps if g[2] == kcpu]
        print(f"   GP kthread on CPU {kcpu}: {len(mine)} GPs, mean {statistics.mean(g[1] - g[0] for g in mine) / 1e6:.2f} ms")
        reports: dict[tuple[int, str], list[float]] = defaultdict(list)
        last: dict[tuple[int, str], int] = defaultdict(int)
        for g in mine:
            for dt, how, c in g[3]:
                reports[(c, how)].append(dt / 1e6)
            if g[3]:
                last[(g[3][-1][2], g[3][-1][1])] += 1
        for (c, how), dts in sorted(reports.items()):
            print(f"      CPU {c} {how}: {len(dts)}, median {statistics.median(dts):.2f} ms after the start; "
                  f"last to report in {last[(c, how)]}")


def print_ticks(path: Path, tsc_hz: float) -> None:
    """The ticks in real (TSC) time against the guest's clock (event 31)."""
    events = load(path)
    t0, t1 = span_of_test(events)
    for cpu in sorted({e[2] for e in events if e[1] == TICK_TSC}):
        ticks = [(e[0], e[4]) for e in events if e[1] == TICK_TSC and e[2] == cpu and t0 <= e[0] <= t1]
        if len(ticks) < 100:
            continue
        gaps = [(b[1] - a[1]) / tsc_hz * 1e3 for a, b in zip(ticks, ticks[1:])]
        real = (ticks[-1][1] - ticks[0][1]) / tsc_hz
        guest = (ticks[-1][0] - ticks[0][0]) / 1e9
        q = statistics.quantiles(gaps, n=100)
        long = sorted(round(g, 1) for g in gaps if g > 2.5)
        print(f"{path}: CPU {cpu}: {len(ticks)} ticks over {real:.3f} s of real time, {guest:.3f} s of the guest's "
              f"(x{real / guest:.3f}); gaps in real time: median {statistics.median(gaps):.3f} ms, p90 {q[89]:.3f}, "
              f"p99 {q[98]:.3f}, longest {max(gaps):.2f}; over 2.5 ms: {len(long)} {long}")


def tick_stalls(paths: list[Path], tsc_hz: float, full: float = 0.9) -> None:
    """The profile's ``tick_stall_*`` from rings with event 31: the gaps between CPU 0's
    ticks longer than 2.5 ms of real time in which the kfree threads started bulk pages
    (PAGE events, in ring order between the two ticks) at ``full`` of their normal rate
    per real ms or more; their rate, and their lengths less the 1 ms tick."""
    stalls: list[float] = []
    seconds = 0.0
    for path in paths:
        events = load(path)
        t0, t1 = span_of_test(events)
        idx = [i for i, e in enumerate(events) if e[1] == TICK_TSC and e[2] == 0 and t0 <= e[0] <= t1]
        seconds += (events[idx[-1]][4] - events[idx[0]][4]) / tsc_hz
        normal: list[float] = []
        gaps: list[tuple[float, float]] = []
        for i0, i1 in zip(idx, idx[1:]):
            gap = (events[i1][4] - events[i0][4]) / tsc_hz * 1e3
            pages = sum(1 for e in events[i0:i1] if e[1] == PAGE)
            (gaps if gap > 2.5 else normal).append((gap, pages / gap))
        rate = statistics.mean(r for _, r in normal)
        mine = [g for g, r in gaps if r >= full * rate]
        stalls += mine
        print(f"{path}: {len(gaps)} gaps over 2.5 ms, {len(mine)} with the kfree threads at {full} of their "
              f"normal rate or more: {sorted(round(g, 1) for g in mine)}")
    if stalls:
        print(f"tick_stall_per_s {len(stalls) / seconds:.2f} ({len(stalls)} in {seconds:.1f} s), tick_stall_min_ns "
              f"{(min(stalls) - 1) * 1e6:.0f}, tick_stall_max_ns {(max(stalls) - 1) * 1e6:.0f} (the gaps less the "
              f"1 ms tick; median {statistics.median(stalls) - 1:.2f} ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summary", help="distributions of rings side by side")
    s.add_argument("rings", nargs="+", type=Path)
    c = sub.add_parser("census", help="the pageblock censuses: at the test's start, at steals, at OOM calls")
    c.add_argument("rings", nargs="+", type=Path)
    c.add_argument("--all", action="store_true", help="also the censuses before the test (boot-time steals)")
    c.add_argument("--blocks", action="store_true", help="every pageblock of each census")
    r = sub.add_parser("reclaimable", help="the RECLAIMABLE page requests: callers, pages, times, steals")
    r.add_argument("rings", nargs="+", type=Path)
    r.add_argument("--system-map", type=Path, required=True, help="the kernel's System.map")
    r.add_argument("--depth", type=int, default=3, help="caller frames to group by")
    r.add_argument("--all", action="store_true", help="also every request with its stack")
    v = sub.add_parser("speed", help="how fast each vCPU runs over time: the profile's vcpu_speed_*")
    v.add_argument("rings", nargs="+", type=Path, help="kernel rings of completed runs with no reclaim")
    v.add_argument("--model", nargs="+", type=Path, required=True,
                   help="model rings ('ring.py model') of the same runs with vcpu_speed_sd 0: the noise floor")
    k = sub.add_parser("ticks", help="the ticks in real (TSC) time against the guest's clock (event 31)")
    k.add_argument("rings", nargs="+", type=Path)
    k.add_argument("--tsc-mhz", type=float, default=2600.005, help="the guest's 'tsc: Detected ... MHz' line")
    k.add_argument("--stalls", action="store_true", help="also the profile's tick_stall_* from these rings")
    q = sub.add_parser("qs", help="who reported each grace period's quiescent states, and how (events 28-30)")
    q.add_argument("rings", nargs="+", type=Path)
    m = sub.add_parser("model", help="record the model's ring (needs kvfree_sim importable)")
    m.add_argument("--variant", default="v6.1")
    m.add_argument("--cpus", type=int, default=2)
    m.add_argument("--memory", default="80M")
    m.add_argument("--profile", default="qemu-tcg-6.1")
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--bootargs", default="rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=16 rcuscale.holdoff=2 "
                   "rcuscale.kfree_loops=100 rcuscale.kfree_alloc_num=8000 rcuscale.kfree_mult=64 "
                   "torture.disable_onoff_at_boot")
    m.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.cmd == "summary":
        summary(args.rings)
    elif args.cmd == "census":
        for path in args.rings:
            print_census(path, every=args.all, blocks=args.blocks)
    elif args.cmd == "speed":
        fit_speed(args.rings, args.model)
    elif args.cmd == "ticks":
        for path in args.rings:
            print_ticks(path, args.tsc_mhz * 1e6)
        if args.stalls:
            tick_stalls(args.rings, args.tsc_mhz * 1e6)
    elif args.cmd == "qs":
        for path in args.rings:
            print_qs(path)
    elif args.cmd == "reclaimable":
        for path in args.rings:
            print_reclaimable(path, args.system_map, depth=args.depth, every=args.all)
    else:
        record_model(args)


if __name__ == "__main__":
    main()
