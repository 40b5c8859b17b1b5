"""The invariants every run checks, and the report when one breaks.

1. **RCU safety.**  No object is freed before a full grace period has passed
   since its ``kvfree_rcu()`` call: each bulk page and each run of list objects
   carries the ``rcu_seq_snap()`` taken when its last object was queued, and a
   free is checked against ``rcu_state.gp_seq`` at that moment
   (``rcu_seq_done()``).  One exception is the kernel's own: before v6.1.35 (and
   in v6.1 itself), ``kfree_rcu_monitor()`` could attach new objects to a batch
   whose ``rcu_work`` was already queued, so they were freed after the *old*
   grace period (the use-after-free fixed by 5da7cb193db3 "rcu/kvfree: Avoid
   freeing new kfree_rcu() memory after old grace period").  Objects that took
   that path are marked when they do; if they are freed early the run records
   it as the kernel's bug (``kernel_early_frees``) rather than stopping.  Any
   other early free stops the run.
2. **Exactly once.**  Every object queued is freed once: no page or run frees
   more objects than it holds, and at the end objects queued equal objects
   freed plus objects still queued.
3. **Page conservation.**  The pages the page allocator says each owner holds
   equal what that owner's own structures hold, and free (buddy lists and
   per-CPU lists) plus held equals the managed total.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core.sim import StopSimulation
from .kernel.rcu import rcu_seq_done
from .kvfree_rcu.tree import BulkChain, ObjRun

if TYPE_CHECKING:
    from .machine import Machine


class InvariantViolation(StopSimulation):
    """A broken invariant: the run stops and this is its report."""

    def __init__(self, what: str, details: str) -> None:
        super().__init__(f"invariant violated: {what}: {details}")
        self.what = what
        self.details = details


class Invariants:
    """Bookkeeping for the three invariants of one run."""

    def __init__(self, machine: "Machine") -> None:
        self.machine = machine
        self.queued = 0
        self.freed = 0
        self.kernel_early_frees = 0
        self.first_kernel_early_free: str | None = None
        self.checks = 0

    def note_queued(self, n: int) -> None:
        self.queued += n

    def free_objects(self, group: BulkChain | ObjRun, n: int, what: str) -> None:
        """``n`` objects of a bulk page or list run are freed now."""
        if n <= 0:
            return
        total = group.nr_records if isinstance(group, BulkChain) else group.n
        if group.freed + n > total:
            raise InvariantViolation(
                "object freed twice",
                f"{what} holding {total} objects had {group.freed} freed and now {n} more "
                f"at t={self.machine.sim.now} ns")
        group.freed += n
        self.freed += n
        gp_seq = self.machine.rcu.gp_seq
        if not rcu_seq_done(gp_seq, group.snap):
            if group.pending_gp_bug:
                self.kernel_early_frees += n
                if self.first_kernel_early_free is None:
                    self.first_kernel_early_free = (
                        f"t={self.machine.sim.now} ns: {n} objects of a {what} freed at gp_seq={gp_seq}, "
                        f"needed gp_seq>={group.snap}")
                return
            raise InvariantViolation(
                "object freed before a grace period",
                f"{n} objects of a {what} freed at t={self.machine.sim.now} ns with gp_seq={gp_seq}, "
                f"but their kvfree_rcu() calls need gp_seq>={group.snap} (rcu_seq_snap at the call)")

    def free_inline(self, snap: int) -> None:
        """The 1-argument fallback freed one object after synchronize_rcu()."""
        gp_seq = self.machine.rcu.gp_seq
        self.freed += 1
        if not rcu_seq_done(gp_seq, snap):
            raise InvariantViolation(
                "object freed before a grace period",
                f"synchronize_rcu() returned at gp_seq={gp_seq} before gp_seq>={snap}")

    def check_objects(self, still_queued: int) -> None:
        """Objects queued == freed + still queued."""
        if self.queued != self.freed + still_queued:
            raise InvariantViolation(
                "objects not conserved",
                f"{self.queued} queued, {self.freed} freed, {still_queued} still queued "
                f"({self.queued - self.freed - still_queued:+d} unaccounted)")

    def check_pages(self) -> None:
        """Every page is free or held by exactly the owner the allocator says."""
        self.checks += 1
        m = self.machine
        mm = m.mm
        held = mm.held_pages()
        counted = {
            "kvfree_rcu": m.kvfree.pages_held(),
            "base": mm.base_pages,
        }
        for cache in mm.caches.values():
            counted[cache.owner] = cache.pages
        for owner, n in held.items():
            expect = counted.get(owner, 0)
            if n != expect:
                raise InvariantViolation(
                    "pages not conserved",
                    f"the page allocator has {n} pages owned by {owner}, but {owner} holds {expect}")
        for z in mm.zones:
            if z.area is not None and z.area.nr_free != z.free:
                raise InvariantViolation(
                    "pages not conserved",
                    f"zone {z.name}: its buddy lists hold {z.area.nr_free} pages, NR_FREE_PAGES says {z.free}")
        if mm.held is not None:
            for owner, n in held.items():
                blocks = sum(len(lst) << o for o, lst in enumerate(mm.held.get(owner, [])))
                if blocks != n:
                    raise InvariantViolation(
                        "pages not conserved", f"{owner} holds {n} pages but {blocks} pages' frame numbers")
        pcp = mm.nr_pcp_pages()
        total = mm.nr_free_pages() + pcp + sum(held.values())
        if total != mm.managed_pages:
            raise InvariantViolation(
                "pages not conserved",
                f"free {mm.nr_free_pages()} + per-CPU lists {pcp} + held {sum(held.values())} = {total} "
                f"!= managed {mm.managed_pages}")
