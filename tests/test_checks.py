"""The three invariants every run checks, and the report when one breaks (kvfree_sim.checks)."""

from __future__ import annotations

import pytest

from kvfree_sim.checks import InvariantViolation
from kvfree_sim.config import make_config
from kvfree_sim.kernel.rcu import rcu_seq_snap
from kvfree_sim.kvfree_rcu.tree import KvfreeRcu, ObjRun
from kvfree_sim.machine import Machine, simulate

from ktest import needs_pure_python

SMALL = "rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=2 rcuscale.kfree_loops=4 rcuscale.kfree_alloc_num=2000"


def machine() -> Machine:
    return Machine(make_config("v5.13", cpus=2, bootargs=SMALL))


def queued_run(m: Machine, n: int) -> ObjRun:
    """``n`` objects queued now on the rcu_head list, as kvfree_call_rcu() records them."""
    m.checks.note_queued(n)
    return ObjRun(n, rcu_seq_snap(m.rcu.gp_seq), m.test.cache.cpus[0])


def test_objects_freed_after_a_full_grace_period_pass():
    m = machine()
    run = queued_run(m, 10)
    m.rcu.gp_seq = run.snap  # the grace period the snapshot asked for has ended
    m.checks.free_objects(run, 4, "list run")
    m.checks.free_objects(run, 6, "list run")
    m.checks.check_objects(still_queued=0)
    assert (m.checks.queued, m.checks.freed, m.checks.kernel_early_frees) == (10, 10, 0)


def test_a_free_one_grace_period_short_stops_the_run():
    m = machine()
    run = queued_run(m, 10)
    m.rcu.gp_seq = run.snap - 1  # the grace period has not ended
    with pytest.raises(InvariantViolation) as e:
        m.checks.free_objects(run, 1, "list run")
    assert e.value.what == "object freed before a grace period"
    assert f"need gp_seq>={run.snap}" in str(e.value)


def test_the_kernels_own_early_free_is_recorded_not_stopped():
    """Objects attached to a batch whose rcu_work was already queued (v6.1 before
    5da7cb193db3) are the kernel's bug: counted, with the first one described."""
    m = machine()
    run = queued_run(m, 10)
    run.pending_gp_bug = True
    m.checks.free_objects(run, 10, "list run")
    assert m.checks.kernel_early_frees == 10
    assert m.checks.first_kernel_early_free is not None
    assert "10 objects of a list run" in m.checks.first_kernel_early_free


def test_an_object_freed_twice_stops_the_run():
    m = machine()
    run = queued_run(m, 10)
    m.rcu.gp_seq = run.snap
    m.checks.free_objects(run, 10, "list run")
    with pytest.raises(InvariantViolation) as e:
        m.checks.free_objects(run, 1, "list run")
    assert e.value.what == "object freed twice"


def test_synchronize_rcu_returning_early_stops_the_run():
    m = machine()
    snap = rcu_seq_snap(m.rcu.gp_seq)
    with pytest.raises(InvariantViolation) as e:
        m.checks.free_inline(snap)
    assert e.value.what == "object freed before a grace period"


def test_objects_lost_are_counted_in_the_report():
    m = machine()
    queued_run(m, 10)
    with pytest.raises(InvariantViolation) as e:
        m.checks.check_objects(still_queued=7)
    assert e.value.what == "objects not conserved"
    assert "(+3 unaccounted)" in str(e.value)


def test_a_page_the_allocator_and_its_owner_disagree_on_stops_the_run():
    m = machine()
    assert m.run().outcome == "completed"
    m.checks.check_pages()
    m.mm.base_pages -= 1
    with pytest.raises(InvariantViolation) as e:
        m.checks.check_pages()
    assert e.value.what == "pages not conserved"
    assert "owned by base" in str(e.value)


@needs_pure_python
def test_a_page_leak_during_a_run_ends_it_as_a_violation(monkeypatch):
    """The run checks pages every 100 ms of simulated time, not only at the end."""
    monkeypatch.setattr(KvfreeRcu, "pages_held", lambda self: 0)
    r = simulate(make_config("v5.13", cpus=2, bootargs=SMALL))
    assert r.outcome == "invariant-violation"
    assert "pages not conserved" in r.violation and "kvfree_rcu" in r.violation
