"""kvm.sh-style configuration (kvfree_sim.config)."""

from __future__ import annotations

import pytest

from kvfree_sim.config import ConfigError, make_config, parse_bootargs, parse_kconfig, parse_memory

MiB = 1 << 20


@pytest.mark.parametrize("text,size", [("512M", 512 * MiB), ("16G", 16 << 30), ("1024", 1024 * MiB)])
def test_memory_sizes_as_kvm_sh_takes_them(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["12X", "", "M", "-5M", "1.5G"])
def test_malformed_memory_is_an_error(text):
    with pytest.raises(ConfigError, match="malformed memory size"):
        parse_memory(text)


def test_bootargs_parse_rcuscale_rcutree_torture_and_ignore_the_rest():
    ba = parse_bootargs("console=ttyS0 rcuscale.kfree_rcu_test=1 rcuscale.kfree_loops=7 "
                        "rcutree.rcu_min_cached_objs=3 torture.disable_onoff_at_boot", "5.11", "5.11")
    assert ba.rcuscale["kfree_loops"] == 7 and ba.rcuscale["kfree_alloc_num"] == 8000
    assert ba.rcutree["rcu_min_cached_objs"] == 3
    assert ba.torture == {"disable_onoff_at_boot": True}
    assert any("console=ttyS0" in n for n in ba.notices)


def test_parameters_exist_only_in_their_versions():
    with pytest.raises(ConfigError, match="rcuscale.kfree_rcu_test_single"):
        parse_bootargs("rcuscale.kfree_rcu_test_single=1", "5.11", "5.11")
    parse_bootargs("rcuscale.kfree_rcu_test_single=1", "5.13", "5.11")
    with pytest.raises(ConfigError, match="rcutree.rcu_delay_page_cache_fill_msec"):
        parse_bootargs("rcutree.rcu_delay_page_cache_fill_msec=10", "5.13", "5.11")
    with pytest.raises(ConfigError, match="torture.bogus"):
        parse_bootargs("torture.bogus=1", "5.11", "5.11")


@pytest.mark.parametrize("text, kernel", [
    ("", {}),
    ("initcall_debug debug", {"initcall_debug": True, "loglevel": 10}),
    ("initcall_debug=0 quiet", {"initcall_debug": False, "loglevel": 4}),
    ("debug loglevel=7", {"loglevel": 7}),  # the kernel takes parameters in order: the last wins
    ("loglevel=8 quiet", {"loglevel": 4}),
])
def test_core_parameters_that_set_what_the_console_shows(text, kernel):
    """init/main.c: initcall_debug is a bool core_param; debug and quiet set console_loglevel
    to CONSOLE_LOGLEVEL_DEBUG (10) and CONSOLE_LOGLEVEL_QUIET (4), loglevel=N to N."""
    ba = parse_bootargs(f"rcuscale.kfree_rcu_test=1 {text}", "5.11", "5.11")
    assert ba.kernel == kernel and ba.notices == []


@pytest.mark.parametrize("text, message", [
    ("loglevel=x", "loglevel=x: 'x' is not an integer"), ("loglevel=16", "a console loglevel is 0-15"),
    ("loglevel", "loglevel needs a value"), ("initcall_debug=maybe", "'maybe' is not a boolean"),
])
def test_bad_core_parameters_name_themselves(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_bootargs(text, "5.11", "5.11")


def test_bad_values_name_the_parameter():
    with pytest.raises(ConfigError, match="kfree_loops=abc"):
        parse_bootargs("rcuscale.kfree_loops=abc", "5.11", "5.11")


def test_kconfig_nr_cpus_and_hz():
    kc = parse_kconfig(["CONFIG_NR_CPUS=64 CONFIG_HZ_250=y"])
    assert kc.nr_cpus == 64 and kc.hz == 250
    assert parse_kconfig("CONFIG_HZ=100").hz == 100
    with pytest.raises(ConfigError):
        parse_kconfig("CONFIG_HZ=123")
    with pytest.raises(ConfigError, match="malformed --kconfig"):
        parse_kconfig("NR_CPUS=4")


def test_make_config_defaults_and_impossible_configs():
    cfg = make_config("v5.11")
    assert cfg.cpus == 64 and cfg.memory == 512 * MiB and cfg.hz == 1000
    assert make_config("v5.11", kconfig="CONFIG_NR_CPUS=8").cpus == 8
    with pytest.raises(ConfigError, match="exceeds CONFIG_NR_CPUS"):
        make_config("v5.11", cpus=16, kconfig="CONFIG_NR_CPUS=8")
    with pytest.raises(ConfigError, match="kfree_rcu_test=1"):
        make_config("v5.11", bootargs="")
    with pytest.raises(ConfigError, match="kfree_loops=2"):
        make_config("v5.11", bootargs="rcuscale.kfree_rcu_test=1 rcuscale.kfree_loops=2")
    with pytest.raises(ConfigError, match="kfree_nthreads=0 starts no kfree thread"):
        make_config("v5.11", bootargs="rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=0")
    with pytest.raises(ConfigError, match="unknown profile"):
        make_config("v5.11", profile="nope")


KFREE = "rcuscale.kfree_rcu_test=1 "


@pytest.mark.parametrize("kwargs,message", [
    ({"memory": "8M"}, "memory size '8M' is too small to boot (at least 16M)"),
    ({"memory": "5000G"}, "memory size '5000G' is larger than kvfree-sim models (4T)"),
    ({"cpus": 0}, "--cpus must be a positive integer, not '0'"),
    ({"cpus": 513}, "--cpus 513 is more than kvfree-sim models (512)"),
    ({"seed": -1}, "--seed must not be negative"),
    ({"max_seconds": 0}, "--max-seconds must be positive"),
    ({"bootargs": KFREE + "rcuscale.gp_exp=1"}, "rcuscale.gp_exp=1 counts expedited grace periods"),
    ({"bootargs": KFREE + "rcuscale.scale_type=srcu"}, "rcuscale.scale_type=srcu is not modelled (only 'rcu')"),
    ({"bootargs": KFREE + "rcuscale.kfree_alloc_num=0"}, "kfree_alloc_num and rcuscale.kfree_loops must be at least 1"),
    ({"bootargs": KFREE + "rcuscale.kfree_mult=0"}, "rcuscale.kfree_mult must be at least 1"),
    ({"bootargs": KFREE + "rcuscale.kfree_loops"}, "rcuscale.kfree_loops needs a value"),
    ({"bootargs": KFREE + "rcuscale.gp_exp=maybe"}, "rcuscale.gp_exp=maybe: 'maybe' is not a boolean"),
    ({"kconfig": "CONFIG_NR_CPUS=many"}, "CONFIG_NR_CPUS: 'many' is not an integer"),
    ({"kconfig": "CONFIG_HZ=fast"}, "CONFIG_HZ: 'fast' is not an integer"),
    ({"kconfig": "CONFIG_HZ_123=y"}, "CONFIG_HZ_123 is not a valid HZ choice"),
])
def test_each_impossible_input_is_one_error_naming_it(kwargs, message):
    kwargs.setdefault("bootargs", KFREE + "rcuscale.kfree_loops=4")
    with pytest.raises(ConfigError) as e:
        make_config("v5.11", **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_booleans_and_ignored_options_as_the_kernel_takes_them():
    ba = parse_bootargs("rcuscale.gp_exp=off rcuscale.shutdown rcutree.rcu_min_cached_objs=0x5", "5.11", "5.11")
    assert ba.rcuscale["gp_exp"] is False and ba.rcuscale["shutdown"] is True
    assert ba.rcutree["rcu_min_cached_objs"] == 5
    kc = parse_kconfig("CONFIG_HZ_250=n CONFIG_KASAN=y")
    assert kc.hz is None and kc.notices == ["ignoring CONFIG_KASAN=y (not modelled)"]
