"""The command line (kvfree_sim.cli.main)."""

from __future__ import annotations

import json

from kvfree_sim.cli import main

SMALL = "rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=2 rcuscale.kfree_loops=4 rcuscale.kfree_alloc_num=1000"


def test_run_prints_the_kernel_line_and_a_summary(capsys):
    assert main(["run", "--variant", "v5.11+v3", "--cpus", "2", "--bootargs", SMALL]) == 0
    out = capsys.readouterr().out
    assert "Total time taken by all kfree'ers:" in out
    assert "outcome: completed" in out and "refill worker: runs" in out


def test_run_output_is_byte_identical_for_a_seed(capsys):
    argv = ["run", "--variant", "v5.13", "--cpus", "2", "--bootargs", SMALL, "--seed", "5"]
    main(argv)
    first = capsys.readouterr().out
    main(argv)
    assert capsys.readouterr().out == first


def test_run_json_is_one_object(capsys):
    assert main(["run", "--cpus", "2", "--bootargs", SMALL, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "completed" and "shrink_scan" in data["counters"]


def test_trailing_module_params_join_the_bootargs(capsys):
    assert main(["run", "--cpus", "2", "--bootargs", SMALL, "rcuscale.kfree_loops=1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counters"]["calls"] == 2 * 1000


def test_bad_input_is_one_line_and_status_2(capsys):
    for argv in (["run", "--variant", "v9"], ["run", "--memory", "12X"], ["run", "--bootargs", "rcuscale.foo=1"],
                 ["run", "--cpus", "abc"], ["nope"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("kvfree-sim: error: ")


def test_set_replaces_profile_values_for_the_run_and_says_so(capsys):
    base = ["run", "--cpus", "2", "--bootargs", SMALL, "--json"]
    assert main(base) == 0
    shipped = json.loads(capsys.readouterr().out)
    assert main([*base, "--set", "kmalloc_ns=500", "--set", "vcpu_steal_per_s=0"]) == 0
    changed = json.loads(capsys.readouterr().out)
    assert changed["profile_set"] == {"kmalloc_ns": 500.0, "vcpu_steal_per_s": 0.0}
    assert shipped["profile_set"] == {} and changed["profile"] == shipped["profile"] == "x86-server"
    assert changed["total_ns"] > 5 * shipped["total_ns"]  # kmalloc() 500 ns instead of 30
    assert main(["run", "--cpus", "2", "--bootargs", SMALL, "--set", "kmalloc_ns=0.5"]) == 0
    assert "seed 1, profile x86-server (set kmalloc_ns=0.5)" in capsys.readouterr().out
    assert main(["run", "--cpus", "2", "--bootargs", SMALL]) == 0
    assert "seed 1\n" in capsys.readouterr().out  # the default profile as shipped goes unsaid


def test_a_bad_set_is_one_line_and_status_2(capsys):
    for value, message in (("nosuch=1", "unknown profile entry 'nosuch'"), ("kmalloc_ns=x", "--set takes name=value"),
                           ("kmalloc_ns=-2", "must be a number >= 0")):
        assert main(["run", "--cpus", "2", "--bootargs", SMALL, "--set", value]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]


def test_variants_lists_every_variant(capsys):
    assert main(["variants", "--json"]) == 0
    names = [v["name"] for v in json.loads(capsys.readouterr().out)]
    assert "v5.11+v3+backoff" in names and "v6.1-v3" in names


def test_profiles_lists_and_shows_each_value_with_its_source(capsys):
    assert main(["profiles"]) == 0
    assert "x86-server:" in capsys.readouterr().out
    assert main(["profiles", "x86-server"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.strip().startswith("kthread_create_ns"))
    assert "30,000" in line and "copy_process()" in line
    assert main(["profiles", "x86-server", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["costs"]["vcpu_steal_per_s"]["value"] == 100.0


def test_unknown_profile_is_a_one_line_error(capsys):
    assert main(["profiles", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown profile 'nosuch'" in err
