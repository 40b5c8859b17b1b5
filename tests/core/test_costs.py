"""The cost table and machine profiles (src/kvfree_sim/core/costs.py): issue 2 item 7.

Item 7 asks for the CPU cost of each modelled operation "in one table with the
source or measurement behind each number"; the kernel's logic and constants
never live in a profile.
"""

from __future__ import annotations

import json

import pytest

from kvfree_sim.core.costs import (
    COSTS, GUEST_CPU_COSTS, LAYOUT, SET_SOURCE, MachineProfile, ProfileError, builtin_profiles, load_profile,
    load_profile_set, parse_profile, parse_set,
)

from ktest import make_profile


@pytest.mark.parametrize("name", builtin_profiles())
def test_shipped_profiles_give_every_entry_with_a_source(name: str) -> None:
    p = load_profile(name)
    assert set(p.costs) == set(COSTS)
    assert set(p.layout) == set(LAYOUT)
    for key in (*COSTS, *LAYOUT):
        assert p.sources.get(key, "").strip(), f"{name}: {key} has no source"
    assert p.source.strip()


def test_the_default_profile_is_shipped() -> None:
    assert load_profile(None).name == load_profile("x86-server").name


def test_ns_and_ps_round_the_costs() -> None:
    p = make_profile({"kmalloc_ns": 6.4, "kfree_bulk_ns": 15.5, "rcu_cb_ns": 0.0125})
    assert p.ns("kmalloc_ns") == 6
    assert p.ps("kmalloc_ns") == 6400
    assert p.ns("kfree_bulk_ns") == 16  # round half to even: 15.5 -> 16
    assert p.ps("rcu_cb_ns") == 12  # 12.5 ps -> 12 (half to even)


def _doc(profile: MachineProfile) -> dict:
    return json.loads(json.dumps(profile.to_json()))


def test_a_profile_survives_a_json_round_trip() -> None:
    p = make_profile({"kmalloc_ns": 7.0})
    q = parse_profile(_doc(p), "roundtrip")
    assert q.costs == p.costs
    assert q.layout == p.layout
    assert q.sources == p.sources


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["costs"].pop("kmalloc_ns"), "missing costs entry 'kmalloc_ns'"),
    (lambda d: d["costs"].__setitem__("made_up_ns", {"value": 1, "source": "x"}), "unknown costs entry 'made_up_ns'"),
    (lambda d: d["layout"].pop("zone_dma"), "missing layout entry 'zone_dma'"),
    (lambda d: d["costs"].__setitem__("kmalloc_ns", {"value": -1, "source": "x"}), "costs.kmalloc_ns must be a number >= 0"),
    (lambda d: d["costs"].__setitem__("kmalloc_ns", {"value": True, "source": "x"}), "costs.kmalloc_ns must be a number >= 0"),
    (lambda d: d.pop("layout"), "missing section 'layout'"),
    (lambda d: d["costs"].__setitem__("vcpu_steal_shape", {"value": 1.0, "source": "x"}),
     "costs.vcpu_steal_shape must be 0"),
    (lambda d: [d["costs"][k].__setitem__("value", 0) for k in
                ("kmalloc_ns", "rcuscale_loop_ns", "kvfree_call_rcu_ns", "kvfree_call_rcu_list_ns")],
     "must be at least 1 ps: rcuscale's calls cannot take no time"),
])
def test_bad_profiles_are_refused(mutate, message: str) -> None:
    doc = _doc(make_profile())
    mutate(doc)
    with pytest.raises(ProfileError, match=message.replace(".", r"\.")):
        parse_profile(doc, "bad")


def test_with_costs_replaces_costs_and_records_their_source() -> None:
    p = make_profile()
    q = p.with_costs("fitted", {"kmalloc_ns": 9.0}, "fit of run 3")
    assert q.costs["kmalloc_ns"] == 9.0
    assert q.sources["kmalloc_ns"] == "fit of run 3"
    assert q.layout == p.layout
    assert p.costs["kmalloc_ns"] == 0.0  # the original is untouched


def test_set_values_are_parsed_as_name_number_pairs_the_last_winning() -> None:
    assert parse_set(["vcpu_steal_ns=10e6", "tick_periodic=1", "vcpu_steal_ns=2"]) == (
        ("vcpu_steal_ns", 2.0), ("tick_periodic", 1.0))
    for bad in ("vcpu_steal_ns", "=3", "vcpu_steal_ns=ten"):
        with pytest.raises(ProfileError, match="--set takes name=value"):
            parse_set([bad])


def test_with_values_replaces_cost_and_layout_entries_and_records_the_source() -> None:
    p = load_profile("x86-server")
    q = load_profile_set("x86-server", parse_set(["vcpu_steal_per_s=2", "host_cpus=8"]))
    assert (q.costs["vcpu_steal_per_s"], q.layout["host_cpus"]) == (2.0, 8.0)
    assert q.sources["vcpu_steal_per_s"] == q.sources["host_cpus"] == SET_SOURCE
    assert q.costs["kmalloc_ns"] == p.costs["kmalloc_ns"] and p.costs["vcpu_steal_per_s"] == 100.0
    assert load_profile_set("x86-server", ()) == p


@pytest.mark.parametrize("values, message", [
    ({"no_such_cost": 1.0}, "unknown profile entry 'no_such_cost'"),
    ({"kmalloc_ns": -1.0}, "kmalloc_ns must be a number >= 0"),
    ({"kmalloc_ns": float("nan")}, "kmalloc_ns must be a number >= 0"),
    ({"vcpu_steal_shape": 0.5}, "vcpu_steal_shape must be 0"),
])
def test_with_values_refuses_what_a_profile_file_may_not_hold(values, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        load_profile("x86-server").with_values(values, SET_SOURCE)


def test_profile_files_load_by_path(tmp_path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(make_profile({"kmalloc_ns": 3.0}).to_json()))
    assert load_profile(str(path)).costs["kmalloc_ns"] == 3.0
    with pytest.raises(ProfileError):
        load_profile(str(tmp_path / "absent.json"))
    with pytest.raises(ProfileError):
        load_profile("no-such-profile")


def test_a_boot_scales_the_guest_cpu_costs_by_one_factor_of_its_seed() -> None:
    """MachineProfile.for_boot(): every GUEST_CPU_COSTS entry times the same factor
    exp(N(0, boot_speed_sd)), drawn from the seed alone; nothing else changes; with the
    sd 0 the profile is used as it is."""
    base = load_profile("qemu-tcg-6.1")
    assert base.costs["boot_speed_sd"] > 0
    a, b, again = base.for_boot(1), base.for_boot(2), base.for_boot(1)
    factors = {a.costs[k] / base.costs[k] for k in GUEST_CPU_COSTS if base.costs[k]}
    assert len({round(f, 12) for f in factors}) == 1
    f = factors.pop()
    assert f != 1.0 and a.costs == again.costs and b.costs != a.costs
    assert all(a.costs[k] == v for k, v in base.costs.items() if k not in GUEST_CPU_COSTS)
    assert a.layout == base.layout
    x86 = load_profile("x86-server")
    assert x86.costs["boot_speed_sd"] == 0 and x86.for_boot(5) is x86


def test_the_here_profile_is_the_calibration_profile_on_a_faster_host() -> None:
    """qemu-tcg-6.1-here differs from qemu-tcg-6.1 only where its source says: the guest CPU
    costs x0.60 and its own boot-to-boot spread (a refit of one must be carried to the other)."""
    base, here = load_profile("qemu-tcg-6.1"), load_profile("qemu-tcg-6.1-here")
    assert here.layout == base.layout
    for k, v in base.costs.items():
        if k in GUEST_CPU_COSTS:
            assert here.costs[k] == pytest.approx(v * 0.60, rel=1e-12), k
        elif k != "boot_speed_sd":
            assert here.costs[k] == v, k
    assert here.costs["boot_speed_sd"] > base.costs["boot_speed_sd"]


def test_the_fast_profile_is_the_calibration_profile_on_a_fast_steady_host() -> None:
    """qemu-tcg-6.1-fast differs from qemu-tcg-6.1 only where its source says: the guest CPU
    costs x0.242, no speed variation within a run, its own boot-to-boot spread, and the
    emulator's tick stalls measured on that host (none in the base profile)."""
    base, fast = load_profile("qemu-tcg-6.1"), load_profile("qemu-tcg-6.1-fast")
    assert fast.layout == base.layout
    own = {"boot_speed_sd", "vcpu_speed_sd", "vcpu_speed_tau_ns",
           "tick_stall_per_s", "tick_stall_min_ns", "tick_stall_max_ns"}
    assert base.costs["tick_stall_per_s"] == 0 < fast.costs["tick_stall_per_s"]
    assert 0 < fast.costs["tick_stall_min_ns"] < fast.costs["tick_stall_max_ns"]
    for k, v in base.costs.items():
        if k in GUEST_CPU_COSTS:
            assert fast.costs[k] == pytest.approx(v * 0.242, rel=1e-12), k
        elif k not in own:
            assert fast.costs[k] == v, k
    assert fast.costs["vcpu_speed_sd"] == 0 and base.costs["vcpu_speed_sd"] > 0
    assert 0 < fast.costs["boot_speed_sd"]
