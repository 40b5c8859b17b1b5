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
