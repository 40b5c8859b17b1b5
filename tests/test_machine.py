"""One boot run to its outcome, with the invariants checked (kvfree_sim.machine, checks)."""

from __future__ import annotations

import json

from kvfree_sim.config import make_config
from kvfree_sim.machine import Machine, simulate

from ktest import needs_pure_python

SMALL = "rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=2 rcuscale.kfree_loops=4 rcuscale.kfree_alloc_num=2000"


def test_same_seed_gives_identical_results():
    a = simulate(make_config("v5.11+v3", cpus=2, bootargs=SMALL, seed=3))
    b = simulate(make_config("v5.11+v3", cpus=2, bootargs=SMALL, seed=3))
    assert json.dumps(a.as_dict(), sort_keys=True) == json.dumps(b.as_dict(), sort_keys=True)


def test_seed_changes_the_random_choices():
    a = simulate(make_config("v5.13", cpus=2, bootargs=SMALL, seed=1))
    b = simulate(make_config("v5.13", cpus=2, bootargs=SMALL, seed=2))
    assert a.counters != b.counters


@needs_pure_python
def test_an_early_free_stops_the_run_with_a_report(monkeypatch):
    """A model bug that frees a batch without waiting for its grace period is caught."""
    from kvfree_sim.kernel.system import Kernel

    def no_wait(self, cpu, wq, rwork):
        rwork.pending = True
        rwork.wq = wq
        wq._queue(cpu, rwork)  # straight to the workqueue, no call_rcu()
        return True

    monkeypatch.setattr(Kernel, "queue_rcu_work", no_wait)
    r = simulate(make_config("v6.1", cpus=2, bootargs="rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=2 "
                                                      "rcuscale.kfree_loops=20"))
    assert r.outcome == "invariant-violation"
    assert "freed before a grace period" in r.violation


def test_pages_are_conserved_at_the_end():
    m = Machine(make_config("v5.13", cpus=2, bootargs=SMALL))
    r = m.run()
    assert r.outcome == "completed"
    m.checks.check_pages()
    assert m.checks.queued == m.checks.freed + m.kvfree.objects_queued_now()


def test_oom_panic_is_an_outcome_with_the_kernels_report():
    r = simulate(make_config("v5.11", cpus=2, memory="32M", profile="qemu-tcg-6.1",
                             bootargs="rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=4 "
                                      "rcuscale.kfree_loops=20 rcuscale.kfree_mult=64"))
    assert r.outcome == "oom-panic"
    texts = [t for _, t in r.console]
    assert any("invoked oom-killer: gfp_mask=" in t for t in texts)
    assert "Out of memory and no killable processes..." in texts
    assert texts[-1] == "Kernel panic - not syncing: System is deadlocked on memory"
    assert r.total_ns is None and r.result_line is None


def test_sampling_does_not_change_the_run():
    """The timeline sampler only reads state between events."""
    cfg = make_config("v5.11+v3", cpus=2, bootargs=SMALL)
    samples: list[dict] = []
    a = simulate(cfg)
    b = simulate(cfg, sampler=samples.append, sample_ns=100_000)
    assert json.dumps(a.as_dict(), sort_keys=True) == json.dumps(b.as_dict(), sort_keys=True)
    assert samples and samples[0]["t_ns"] == 0
    assert all(s2["t_ns"] - s1["t_ns"] == 100_000 for s1, s2 in zip(samples, samples[1:]))
