"""The cost table: what each modelled operation costs on a given machine.

A *machine profile* gives a value, and the source of that value, for every
entry of :data:`COSTS` (CPU time of kernel operations) and :data:`LAYOUT`
(memory the kernel keeps for itself on that machine and kernel config).  The
kernel's *logic and constants* never live here: they are in the modules that
model the kernel.  ``kvfree-sim calibrate`` may only change entries of
:data:`COSTS`; a wrong mechanism must show up as disagreement, not be absorbed
into a cost.

Profiles are JSON files (``src/kvfree_sim/profiles/*.json`` ship with the
package; ``--profile FILE`` loads any other)::

    {"name": ..., "description": ..., "source": ...,
     "costs":  {"kmalloc_ns": {"value": 6.0, "source": "..."}, ...},
     "layout": {"kernel_image_kb": {"value": ..., "source": "..."}, ...}}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence

from .rng import Rng

#: CPU costs in nanoseconds, machine-dependent: ``name -> meaning``.
COSTS: dict[str, str] = {
    # rcuscale / kvfree_call_rcu() fast paths, per object
    "kmalloc_ns": "kmalloc() slab fast path, one object (SLUB this_cpu_cmpxchg path)",
    "kvfree_call_rcu_ns": "kvfree_call_rcu() storing a pointer in a bulk page (irqsave, raw lock, store, unlock)",
    "kvfree_call_rcu_list_ns": "kvfree_call_rcu() linking an object on the rcu_head list (channel 3), incl. the refill check",
    "rcuscale_loop_ns": "rcuscale loop overhead per object (torture_random(), branch)",
    # slab and page allocator
    "slab_new_ns": "allocate_slab(): a new slab from the page allocator and its freelist set-up, per slab",
    "slab_page_ns": "allocate_slab(), per page of the new slab (compound-page set-up, the freelist walk across pages)",
    "slab_discard_ns": "discard_slab(): an empty slab returned to the page allocator, per slab",
    "page_alloc_ns": "__get_free_page() fast path (get_page_from_freelist, order 0)",
    "page_free_ns": "free_page(), order 0",
    # kvfree_rcu drain side
    "kfree_bulk_ns": "kfree_bulk(), per object (SLUB build_detached_freelist)",
    "kfree_ns": "kvfree() of one object reached by pointer chasing through rcu_heads (cache miss + slab free)",
    "kfree_rcu_work_page_ns": "kfree_rcu_work() per bulk page (lock, put_cached_bnode, cond_resched_tasks_rcu_qs)",
    "krc_lock_ns": "raw_spin_lock_irqsave()+unlock of krcp->lock, uncontended",
    "monitor_ns": "kfree_rcu_monitor() detach + queue_rcu_work(), per CPU",
    # scheduling, interrupts, workqueues, timers
    "context_switch_ns": "__schedule() context switch",
    "wakeup_ns": "try_to_wake_up(), charged to the waker",
    "hardirq_ns": "hard interrupt entry + exit (timer interrupt without work)",
    "softirq_ns": "softirq entry + exit",
    "hrtimer_min_delta_ns": "delay before an hrtimer started in the past fires (clockevent min_delta + reprogram)",
    "work_item_ns": "process_one_work() overhead per work item",
    "kthread_create_ns": "kthreadd's create_kthread() for one new kthread (copy_process() and the completion handshake), on kthreadd's CPU while the creator sleeps in kthread_create_on_node()",
    # RCU
    "rcu_cb_ns": "rcu_do_batch(), per callback invoked",
    "rcu_gp_init_ns": "rcu_gp_init(), fixed part",
    "rcu_gp_per_cpu_ns": "GP kthread work per CPU per phase (init, FQS scan, cleanup)",
    # reclaim
    "shrinker_per_cpu_ns": "kfree_rcu_shrink_count()/scan() work per possible CPU besides locks",
    "shrink_node_ns": "one shrink_node() pass with nothing on the LRU lists (lruvec walk, vmstat)",
    "slowpath_retry_ns": "one __alloc_pages_slowpath() retry round besides reclaim (freelist scans, checks)",
    "oom_kill_ns": "out_of_memory(): task scan and report",
    # the console
    "console_char_ns": "serial console output per character printed (timestamp and CRLF included): "
                       "the 8250 driver polls LSR and writes THR with interrupts off",
    # the hypervisor
    "vcpu_steal_per_s": "times per second the host deschedules a vCPU (Poisson), 0 on a dedicated host",
    "vcpu_steal_ns": "mean length of such a pause; the vCPU runs nothing, not even its tick",
    "vcpu_steal_shape": "law of the pause lengths: 0 exponential, alpha > 1 Pareto with tail index alpha "
                        "(P(X > x) = (x_m / x) ** alpha) and the same mean",
    "vcpu_stall_per_s": "times per second a vCPU stalls for long (Poisson): the hypervisor under a host that is "
                        "itself a virtual machine deschedules it; 0 on a host that is not",
    "vcpu_stall_ns": "mean length of such a stall (exponential); the vCPU runs nothing",
    "vcpu_speed_sd": "standard deviation of the log of a vCPU's speed as the host runs it, varying within a run "
                     "(kvfree_sim.kernel.host.VcpuSpeed); 0: every vCPU at the profile's speed throughout",
    "vcpu_speed_tau_ns": "time constant of those variations (ns): how long a vCPU stays faster or slower",
    "boot_speed_sd": "spread of the host's speed from boot to boot: each run's guest CPU costs "
                     "(GUEST_CPU_COSTS) are scaled by one factor exp(N(0, sd)) drawn from its seed; 0: none",
    "timer_irq_latency_ns": "mean (exponential) delay from a guest hrtimer's expiry to its interrupt on the vCPU: "
                            "an emulated LAPIC timer is delivered by the emulator's main-loop thread; "
                            "0 where the timer interrupt comes from hardware",
    "tick_stall_per_s": "times per second no timer interrupt reaches any vCPU while the vCPUs run on (Poisson): "
                        "the emulator's main-loop thread, which delivers them, waits for a host core the vCPU "
                        "threads hold; 0 where the timers are hardware",
    "tick_stall_min_ns": "shortest such stall (lengths uniform between the two)",
    "tick_stall_max_ns": "longest such stall",
}

#: cost groups, one scale factor each (every entry is a COSTS name)
GROUPS: dict[str, tuple[str, ...]] = {
    "per_object": ("kmalloc_ns", "kvfree_call_rcu_ns", "kvfree_call_rcu_list_ns", "rcuscale_loop_ns",
                   "kfree_bulk_ns", "kfree_ns"),
    "slab": ("slab_new_ns", "slab_page_ns", "slab_discard_ns"),
    "allocator": ("page_alloc_ns", "page_free_ns",
                  "kfree_rcu_work_page_ns", "krc_lock_ns", "monitor_ns"),
    "sched_irq": ("context_switch_ns", "wakeup_ns", "hardirq_ns", "softirq_ns", "hrtimer_min_delta_ns",
                  "work_item_ns", "kthread_create_ns", "rcu_cb_ns", "rcu_gp_init_ns", "rcu_gp_per_cpu_ns"),
    "reclaim": ("shrinker_per_cpu_ns", "shrink_node_ns", "slowpath_retry_ns", "oom_kill_ns"),
    "console": ("console_char_ns",),
    "steal": ("vcpu_steal_per_s",),
    "steal_pause": ("vcpu_steal_ns",),
    "stall": ("vcpu_stall_per_s",),
    "stall_pause": ("vcpu_stall_ns",),
    "timer_irq": ("timer_irq_latency_ns",),
}
#: the costs of guest code, which a faster or slower host speeds up or slows down alike
GUEST_CPU_COSTS: tuple[str, ...] = tuple(k for g in ("per_object", "slab", "allocator", "sched_irq", "reclaim")
                                         for k in GROUPS[g])

#: The guest's memory layout and the kernel config facts it depends on, in KiB
#: unless noted, and the host it runs on.  Not fitted by ``calibrate``: they come
#: from boot logs, configs and the host's own facts.
LAYOUT: dict[str, str] = {
    "firmware_reserved_kb": "RAM the firmware keeps from the kernel (e820 holes below 1 MiB, BIOS areas)",
    "kernel_image_kb": "kernel code + rwdata + rodata + init + bss (the 'Memory:' boot line)",
    "kernel_text_kb": "kernel code, at CONFIG_PHYSICAL_START (16 MiB), then a gap to the next 2 MiB (the "
                      "'Memory:' boot line; the gaps are freed after boot); 0: sections not known",
    "kernel_rodata_kb": "kernel rodata, 2 MiB aligned, then a gap to the next 2 MiB",
    "kernel_rwdata_kb": "kernel rwdata, 2 MiB aligned; the init sections follow it, then bss",
    "firmware_top_kb": "of firmware_reserved_kb, the part at the top of RAM (an e820 reserved range)",
    "freed_after_boot_kb": "init sections and alignment gaps freed once boot is over",
    "reserved_other_kb": "other boot reservations: printk buffer, hash tables, low 1 MiB, page tables",
    "percpu_kb_per_cpu": "per-CPU first chunk, per possible CPU ('percpu: Embedded N pages/cpu')",
    "boot_used_kb": "memory in use once boot is over besides the above (slab, page tables, rootfs)",
    "boot_used_kb_per_cpu": "the same, per CPU (kthread stacks and task_structs, per-CPU slab structures)",
    "zone_dma": "1 if the kernel has CONFIG_ZONE_DMA (the first 16 MiB are ZONE_DMA)",
    "late_initcall_reclaimable_kb": "RECLAIMABLE slab pages the initcalls after a built-in test's allocate while "
                                    "it runs (kernfs nodes), kept",
    "late_initcall_ns": "the time, from the test's threads being created, over which they come (ns)",
    "pageblock_order": "pageblock order: HUGETLB_PAGE_ORDER (9) with CONFIG_HUGETLB_PAGE, else MAX_ORDER-1 (10)",
    "buddy_allocator": "1: free pages kept by frame number, per order and migratetype (kernel/mm/buddy.py), so "
                       "fragmentation, fallback steals and watermark boosts follow the kernel's; 0: counted, free "
                       "memory taken to be unfragmented (about half the wall time at 64 CPUs; the same results "
                       "while every fallback finds a whole free pageblock)",
    # the host around the guest
    "host_cpus": "host cores the vCPU threads share; 0: each vCPU has a core of its own (count, not KiB)",
    "host_slice_ns": "how long a vCPU thread runs before another takes its host core, in ns (kvfree_sim.kernel.host)",
    "vcpu_tick_phase_ns": "how much later CPU i's tick comes than CPU i-1's, in ns (CPU i: i times this, modulo the "
                          "tick); 0 where every CPU ticks at the same instant",
    "kvm_sh_x86": "1: the guest is kvm.sh's x86 guest: x86_64 defconfig plus the rcuscale TREE config, booted with "
                  "kvm.sh's 'initcall_debug debug' before the user's --bootargs, so kernel_init writes the initcalls "
                  "after the test's to the serial console (kvfree_sim/kernel/boot_tail_kvm_x86.tsv); 0: a guest "
                  "booted without them",
    "tick_periodic": "1: every CPU takes its tick every jiffy, idle or not (no clocksource valid for high "
                     "resolution, so the kernel never enters nohz mode); 0: NO_HZ_IDLE, an idle CPU stops its tick",
}


@dataclass
class MachineProfile:
    """A named set of machine costs and memory layout, each with its source."""

    name: str
    description: str
    source: str
    costs: dict[str, float]
    layout: dict[str, float]
    sources: dict[str, str] = field(default_factory=dict)

    def ns(self, key: str) -> int:
        """A cost rounded to whole nanoseconds."""
        return int(round(self.costs[key]))

    def ps(self, key: str) -> int:
        """A cost in picoseconds, for per-object costs summed over many objects."""
        return int(round(self.costs[key] * 1000))

    def to_json(self) -> dict:
        def entries(values: dict[str, float]) -> dict:
            return {k: {"value": v, "source": self.sources.get(k, "")} for k, v in values.items()}

        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "costs": entries(self.costs),
            "layout": entries(self.layout),
        }

    def for_boot(self, seed: int) -> "MachineProfile":
        """This profile as one boot of ``seed`` runs it: the guest CPU costs times the
        boot's speed factor exp(N(0, boot_speed_sd)) (the profile itself when the sd is 0)."""
        sd = self.costs["boot_speed_sd"]
        if not sd:
            return self
        factor = math.exp(Rng(seed).stream("boot-speed").gauss(0.0, sd))
        costs = dict(self.costs)
        for k in GUEST_CPU_COSTS:
            costs[k] *= factor
        return MachineProfile(self.name, self.description, self.source, costs, dict(self.layout),
                              dict(self.sources))

    def with_values(self, values: dict[str, float], source: str) -> "MachineProfile":
        """A copy with some cost or layout entries replaced (``--set name=value``), checked as a
        profile file's are."""
        costs, layout, sources = dict(self.costs), dict(self.layout), dict(self.sources)
        for key, value in values.items():
            section = costs if key in costs else layout if key in layout else None
            if section is None:
                raise ProfileError(f"unknown profile entry '{key}' (see 'kvfree-sim profiles {self.name}')")
            if not math.isfinite(value) or value < 0:
                raise ProfileError(f"profile entry {key} must be a number >= 0, not {value:g}")
            section[key] = value
            sources[key] = source
        profile = MachineProfile(self.name, self.description, self.source, costs, layout, sources)
        check_profile(profile, self.name)
        return profile

    def with_costs(self, name: str, costs: dict[str, float], source: str) -> "MachineProfile":
        """A copy with some costs replaced (by a fit), keeping the layout."""
        new = dict(self.costs)
        new.update(costs)
        sources = dict(self.sources)
        for k in costs:
            sources[k] = source
        return MachineProfile(name, f"{self.description}; costs fitted", source, new, dict(self.layout), sources)


class ProfileError(ValueError):
    """A profile that cannot be used (missing or unknown entries, bad values)."""


def _entries(doc: dict, section: str, expected: dict[str, str], where: str) -> tuple[dict, dict]:
    raw = doc.get(section)
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: missing section '{section}'")
    unknown = sorted(set(raw) - set(expected))
    missing = sorted(set(expected) - set(raw))
    if unknown:
        raise ProfileError(f"{where}: unknown {section} entry '{unknown[0]}'")
    if missing:
        raise ProfileError(f"{where}: missing {section} entry '{missing[0]}'")
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    for key, entry in raw.items():
        value = entry.get("value") if isinstance(entry, dict) else entry
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ProfileError(f"{where}: {section}.{key} must be a number >= 0")
        values[key] = float(value)
        sources[key] = entry.get("source", "") if isinstance(entry, dict) else ""
    return values, sources


def parse_profile(doc: dict, where: str) -> MachineProfile:
    costs, csrc = _entries(doc, "costs", COSTS, where)
    layout, lsrc = _entries(doc, "layout", LAYOUT, where)
    profile = MachineProfile(
        name=str(doc.get("name", where)),
        description=str(doc.get("description", "")),
        source=str(doc.get("source", "")),
        costs=costs,
        layout=layout,
        sources={**csrc, **lsrc},
    )
    check_profile(profile, where)
    return profile


def check_profile(profile: MachineProfile, where: str) -> None:
    """What a profile's values must satisfy together (ProfileError if they do not)."""
    if 0 < profile.costs["vcpu_steal_shape"] <= 1:
        raise ProfileError(f"{where}: costs.vcpu_steal_shape must be 0 (exponential) or > 1 (Pareto with a mean)")
    # one rcuscale call, in the picoseconds the model charges for it (workloads/rcuscale.py)
    call_ps = profile.ps("kmalloc_ns") + profile.ps("rcuscale_loop_ns") + min(
        profile.ps("kvfree_call_rcu_ns"), profile.ps("kvfree_call_rcu_list_ns"))
    if call_ps < 1:
        raise ProfileError(f"{where}: costs.kmalloc_ns + rcuscale_loop_ns + kvfree_call_rcu_ns (or _list_ns) "
                           "must be at least 1 ps: rcuscale's calls cannot take no time")


#: the source recorded for a value given with ``--set``
SET_SOURCE = "set on the command line (--set)"


def parse_set(items: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """``--set name=value`` arguments as (name, value) pairs, the last of a name winning."""
    values: dict[str, float] = {}
    for item in items:
        name, eq, text = item.partition("=")
        try:
            if not eq or not name:
                raise ValueError
            values[name.strip()] = float(text)
        except ValueError:
            raise ProfileError(f"--set takes name=value with a number, not '{item}'") from None
    return tuple(values.items())


def load_profile_set(name_or_path: str | None, values: Sequence[tuple[str, float]]) -> MachineProfile:
    """A profile as ``load_profile()`` gives it, with the ``--set`` values applied."""
    profile = load_profile(name_or_path)
    return profile.with_values(dict(values), SET_SOURCE) if values else profile


def builtin_profiles() -> list[str]:
    """Names of the profiles shipped with kvfree-sim."""
    root = resources.files("kvfree_sim") / "profiles"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))


DEFAULT_PROFILE = "x86-server"


def load_profile(name_or_path: str | None = None) -> MachineProfile:
    """Load a shipped profile by name, or a profile file by path."""
    name_or_path = name_or_path or DEFAULT_PROFILE
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise ProfileError(f"profile file not found: {name_or_path}")
        text = path.read_text()
        where = str(path)
    else:
        if name_or_path not in builtin_profiles():
            raise ProfileError(
                f"unknown profile '{name_or_path}' (shipped: {', '.join(builtin_profiles())})"
            )
        text = (resources.files("kvfree_sim") / "profiles" / f"{name_or_path}.json").read_text()
        where = name_or_path
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(f"{where}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict):
        raise ProfileError(f"{where}: a profile is a JSON object")
    return parse_profile(doc, where)
