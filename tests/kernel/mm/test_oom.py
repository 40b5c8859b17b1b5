"""The OOM killer (src/kvfree_sim/kernel/mm/oom.py) against mm/oom_kill.c (v5.11 and v6.1)."""

from __future__ import annotations

import pytest

from kvfree_sim.kernel.mm.gfp import GFP_KERNEL, GFP_NOFS, __GFP_NOWARN

from ktest import MSEC, hold, set_free, sleep_forever, spawn


@pytest.fixture
def low_memory(make_kernel):
    """A started 1-CPU kernel with 300 pages free (min watermark 704, nothing reclaimable)."""
    kernel = make_kernel(ncpus=1)
    kernel.sim.run(until=1 * MSEC)
    return kernel


def allocate(kernel, gfp: int = GFP_KERNEL, name: str = "rcu_scale_kfree") -> list[bool]:
    """A kthread allocating one page with ``gfp``; the result list fills when it returns."""
    result: list[bool] = []

    def body(me):
        result.append((yield from kernel.mm.alloc_pages(me, gfp, 0, "test")))

    spawn(kernel, name, body, cpu=0)
    return result


def user_task(kernel, name: str, pages: int):
    """A killable user process holding ``pages`` pages of anonymous memory."""
    t = spawn(kernel, name, sleep_forever, kthread=False)
    hold(kernel, f"task:{t.pid}", pages)
    t.rss_pages = pages
    return t


def test_oom_with_only_kthreads_and_init_panics(low_memory) -> None:
    """out_of_memory() -> select_bad_process(): kthreads (PF_KTHREAD) and init
    (is_global_init()) are unkillable (oom_unkillable_task()), so with nothing else
    !oc->chosen: dump_header(), "Out of memory and no killable processes...", then
    panic("System is deadlocked on memory\\n").  dump_header() starts with
    "%s invoked oom-killer: gfp_mask=%#x(%pGg), order=%d, oom_score_adj=%hd"."""
    kernel = low_memory
    kernel.init_task.rss_pages = 10_000  # init is never chosen, whatever it holds
    # nor is an initcall, which runs in init's context (rcuscale's rcu_scale_init)
    initcall = spawn(kernel, "rcu_scale_init", sleep_forever, kthread=False)
    initcall.oom_killable = False
    set_free(kernel, 300)
    result = allocate(kernel, GFP_KERNEL | __GFP_NOWARN)
    kernel.sim.run(until=1000 * MSEC)
    assert result == []  # the allocating task never returns
    assert kernel.panicked == "System is deadlocked on memory"
    lines = [text for _, text in kernel.console]
    first = "rcu_scale_kfree invoked oom-killer: gfp_mask=0x2cc0(GFP_KERNEL|__GFP_NOWARN), order=0, oom_score_adj=0"
    assert lines[0] == first
    assert "Mem-Info:" in lines
    assert "Tasks state (memory values in pages):" in lines
    i = lines.index("Out of memory and no killable processes...")
    assert lines[i - 1].startswith("[  pid  ]")  # dump_tasks() lists no unkillable task
    assert lines[i + 1:] == ["Kernel panic - not syncing: System is deadlocked on memory"]
    assert kernel.oom.kills == 0 and not kernel.init_task.exited and not initcall.exited


def test_oom_kills_the_largest_user_task_and_the_allocation_succeeds(low_memory) -> None:
    """select_bad_process() picks the highest oom_badness() (rss + swap + page tables,
    oom_score_adj 0); oom_kill_process() kills it ("Out of memory: Killed process %d
    (%s) ..."), which counts as progress: the slow path retries (no_progress_loops = 0)
    and gets the memory the victim freed."""
    kernel = low_memory
    small = user_task(kernel, "small", 100)
    big = user_task(kernel, "big", 2000)
    set_free(kernel, 300)
    result = allocate(kernel)
    kernel.sim.run(until=1000 * MSEC)
    assert result == [True]
    assert kernel.panicked is None
    assert kernel.oom.kills == 1
    assert big.exited and big.oom_victim and not small.exited
    killed = [text for _, text in kernel.console if text.startswith("Out of memory: Killed process")]
    assert killed == [
        f"Out of memory: Killed process {big.pid} (big) total-vm:8000kB, anon-rss:8000kB, "
        "file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0"]
    # the allocation came through the CPU's per-CPU list, which keeps the rest of its batch
    assert kernel.mm.nr_free_pages() + kernel.mm.nr_pcp_pages() == 300 + 2000 - 1


def test_oom_without_gfp_fs_kills_nothing(make_kernel) -> None:
    """out_of_memory(): "if (!(oc->gfp_mask & __GFP_FS) && !is_memcg_oom(oc)) return true;"
    - a GFP_NOFS request never kills (nor panics); it is told progress was made and
    retries, for ever.  (Reclaim and the OOM path cost CPU time here, so that the
    endless retry loop advances the clock.)"""
    kernel = make_kernel(costs={"shrink_node_ns": 3000, "oom_kill_ns": 10_000})
    kernel.sim.run(until=1 * MSEC)
    victim = user_task(kernel, "victim", 2000)
    set_free(kernel, 300)
    result = allocate(kernel, GFP_NOFS)
    kernel.sim.run(until=20 * MSEC)
    assert result == []
    assert kernel.oom.invocations > 10
    assert kernel.oom.kills == 0 and not victim.exited
    assert kernel.panicked is None
