"""The OOM killer (mm/oom_kill.c, v5.11 and v6.1).

``out_of_memory()``: a caller without ``__GFP_FS`` gets "progress" without a
kill; otherwise ``select_bad_process()`` picks the task with the largest
``oom_badness()`` (its RSS), skipping kernel threads and init
(``oom_unkillable_task()``); while an earlier victim is still exiting the scan
aborts and counts as progress.  With no candidate it prints the report and
panics: "Out of memory and no killable processes..." then
"System is deadlocked on memory" - the fate of every OOM in the rcuscale guest,
whose only user task is init.  A victim gets ``TIF_MEMDIE`` (``ALLOC_OOM``
access to reserves) and its memory back to the allocator when it exits; the
OOM reaper's delay (2 s in v6.1, none in v5.11) is not modelled because the
victim here exits at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from ..sched import Task
from .gfp import GFP_FS, gfp_string

if TYPE_CHECKING:
    from ..system import Kernel



class OomKiller:
    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.lock_held = False  # oom_lock
        self.kills = 0
        self.invocations = 0
        self.report: list[str] = []
        self.cost_ns = kernel.profile.ns("oom_kill_ns")

    def _candidates(self) -> list[Task]:
        return [t for t in self.kernel.tasks
                if not t.kthread and t is not self.kernel.init_task and not t.exited and t.oom_killable]

    def out_of_memory(self, task: Task, gfp: int, order: int) -> Generator[Any, Any, bool]:
        """out_of_memory(): True if it made progress (killed, or a victim is exiting)."""
        self.lock_held = True
        self.invocations += 1
        self.kernel.mm.stats["oom"] += 1
        try:
            yield self.cost_ns
            if not gfp & GFP_FS:
                return True
            if any(t.oom_victim and not t.exited for t in self.kernel.tasks):
                return True  # oom_evaluate_task(): a victim is still on its way out
            cands = self._candidates()
            self.report = self.dump_header(task, gfp, order)
            if not cands:
                self.report.append("Out of memory and no killable processes...")
                for line in self.report:
                    self.kernel.printk(line)
                self.kernel.panic("System is deadlocked on memory")
                return False
            victim = max(cands, key=lambda t: (t.rss_pages, -t.pid))
            self.kill(victim)
            return True
        finally:
            self.lock_held = False

    def kill(self, victim: Task) -> None:
        """oom_kill_process() + mark_oom_victim(); the victim's pages go back."""
        self.kills += 1
        line = (f"Out of memory: Killed process {victim.pid} ({victim.name[:15]}) "
                f"total-vm:{victim.rss_pages * 4}kB, anon-rss:{victim.rss_pages * 4}kB, "
                f"file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0")
        self.report.append(line)
        for ln in self.report:
            self.kernel.printk(ln)
        if self.kernel.tracer is not None:
            self.kernel.tracer.mark_victim(victim)
        victim.oom_victim = True
        self.kernel.kill_task(victim)

    def dump_header(self, task: Task, gfp: int, order: int) -> list[str]:
        """dump_header(): the lines an OOM report starts with."""
        mm = self.kernel.mm
        lines = [f"{task.name[:15]} invoked oom-killer: gfp_mask={gfp:#x}({gfp_string(gfp)}), "
                 f"order={order}, oom_score_adj=0",
                 "Mem-Info:"]
        slab_pages = sum(c.pages for c in mm.caches.values())
        lines.append(f" slab_reclaimable:0 slab_unreclaimable:{slab_pages}")
        lines.append(f" free:{mm.nr_free_pages()} free_pcp:{mm.nr_pcp_pages()} free_cma:0")
        cpu = task.cpu.id if task.cpu is not None else 0
        for z in mm.zones:
            pcp = mm.zone_pcp(z)
            local = pcp.lists[cpu].count
            lines.append(
                f"Node 0 {z.name} free:{z.free * 4}kB boost:{z.watermark_boost * 4}kB "
                f"min:{z.wmark(0) * 4}kB low:{z.wmark(1) * 4}kB high:{z.wmark(2) * 4}kB "
                f"reserved_highatomic:0KB active_anon:0kB inactive_anon:0kB active_file:0kB "
                f"inactive_file:0kB unevictable:0kB writepending:0kB present:{z.present * 4}kB "
                f"managed:{z.managed * 4}kB mlocked:0kB bounce:0kB free_pcp:{pcp.pages * 4}kB "
                f"local_pcp:{local * 4}kB free_cma:0kB")
        lines.append("Tasks state (memory values in pages):")
        lines.append("[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name")
        for t in self._candidates():  # dump_tasks() skips oom_unkillable_task()s
            lines.append(f"[{t.pid:7d}] {0:5d} {t.pid:5d} {t.rss_pages:8d} {t.rss_pages:8d} "
                         f"{0:14d} {0:8d} {0:13d} {t.name}")
        return lines
