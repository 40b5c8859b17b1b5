"""A run's configuration: kvm.sh-style memory sizes, ``--bootargs`` and ``--kconfig``.

``--bootargs`` is parsed as kvm.sh passes it to the kernel: whitespace-separated
``module.param=value`` (or ``module.param`` for a boolean set to true).  The
``rcuscale.``, ``rcutree.`` and ``torture.`` namespaces are checked against the
parameters that kernel version really has; an unknown one is an error.
The kernel's own ``initcall_debug``, ``debug``, ``quiet`` and ``loglevel=N`` set what
the serial console shows; anything else (``console=ttyS0``, ``panic=-1``) is ignored
with a notice.

Every error is a :class:`ConfigError` whose message names the problem; the CLI
prints it on one line and exits with status 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

MiB = 1024 * 1024


class ConfigError(ValueError):
    """Bad input: an unknown variant or parameter, a malformed value, an impossible config."""


# -- kernel parameters, per version ---------------------------------------------------

# kernel/rcu/rcuscale.c (torture_param / module_param), v5.10/v5.11
_RCUSCALE_511: dict[str, tuple[str, Any]] = {
    "gp_async": ("bool", False),
    "gp_async_max": ("int", 1000),
    "gp_exp": ("bool", False),
    "holdoff": ("int", 10),
    "nreaders": ("int", -1),
    "nwriters": ("int", -1),
    "shutdown": ("bool", True),  # RCUSCALE_SHUTDOWN: 1 when built in (kvm.sh)
    # kvm.sh appended rcuscale.verbose=1 (configs/rcuscale/ver_functions.sh) until
    # "rcuscale: Disable verbose torture-test output" (March 2021, v5.13): the thread's runs
    # printed two console lines per kfree thread.  Pass rcuscale.verbose=0 for a later kvm.sh.
    "verbose": ("int", 1),
    "writer_holdoff": ("int", 0),
    "kfree_rcu_test": ("int", 0),
    "kfree_mult": ("int", 1),
    "scale_type": ("charp", "rcu"),
    "kfree_nthreads": ("int", -1),
    "kfree_alloc_num": ("int", 8000),
    "kfree_loops": ("int", 10),
}
# v5.13 "rcuscale: Add kfree_rcu() single-argument scale test"
_RCUSCALE_513 = dict(_RCUSCALE_511)
_RCUSCALE_513["kfree_rcu_test_double"] = ("bool", False)
_RCUSCALE_513["kfree_rcu_test_single"] = ("bool", False)

RCUSCALE_PARAMS: dict[str, dict[str, tuple[str, Any]]] = {
    "5.11": _RCUSCALE_511,
    "5.13": _RCUSCALE_513,
    "6.1": _RCUSCALE_513,
}

# kernel/rcu/tree.c module_param()s.  The kvfree_rcu ones are modelled; the
# others exist in the kernel and are accepted, with a notice that they are not.
_RCUTREE_COMMON: dict[str, tuple[str, Any]] = {
    "rcu_min_cached_objs": ("int", 5),
    "jiffies_till_first_fqs": ("ulong", None),
    "jiffies_till_next_fqs": ("ulong", None),
}
_RCUTREE_UNMODELLED = {
    "dump_tree", "use_softirq", "rcu_fanout_exact", "rcu_fanout_leaf", "kthread_prio",
    "gp_preinit_delay", "gp_init_delay", "gp_cleanup_delay", "blimit", "qhimark",
    "qlowmark", "qovld", "rcu_divisor", "rcu_resched_ns", "jiffies_till_sched_qs",
    "rcu_kick_kthreads", "sysrq_rcu", "rcu_cpu_stall_ftrace_dump", "rcu_cpu_stall_suppress",
    "rcu_cpu_stall_timeout", "rcu_nocb_gp_stride", "rcu_idle_gp_delay", "rcu_unlock_delay",
    "counter_wrap_check", "rcu_normal_after_boot",
}
RCUTREE_PARAMS: dict[str, dict[str, tuple[str, Any]]] = {
    "5.11": dict(_RCUTREE_COMMON),
    "5.14": {**_RCUTREE_COMMON, "rcu_delay_page_cache_fill_msec": ("int", 5000)},
}

# kernel/torture.c module_param()s (none changes what is modelled)
TORTURE_PARAMS = {"disable_onoff_at_boot", "ftrace_dump_at_shutdown", "verbose_sleep_frequency",
                  "verbose_sleep_duration"}


def parse_memory(text: str) -> int:
    """A kvm.sh ``--memory`` size: ``512M``, ``16G``, ``1024`` (MB), ``524288K``; bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGkmg]?)(i?[Bb])?\s*", str(text))
    if not m:
        raise ConfigError(f"malformed memory size '{text}' (expected e.g. 512M or 16G)")
    n = int(m.group(1))
    unit = m.group(2).upper() or "M"
    size = n * {"K": 1024, "M": MiB, "G": 1024 * MiB}[unit]
    if size < 16 * MiB:
        raise ConfigError(f"memory size '{text}' is too small to boot (at least 16M)")
    if size > 4096 * 1024 * MiB:
        raise ConfigError(f"memory size '{text}' is larger than kvfree-sim models (4T)")
    return size


def _parse_value(kind: str, name: str, raw: str | None) -> Any:
    if kind == "bool":
        if raw is None:
            return True
        v = raw.strip().lower()
        if v in ("1", "y", "yes", "true", "on"):
            return True
        if v in ("0", "n", "no", "false", "off"):
            return False
        raise ConfigError(f"{name}: '{raw}' is not a boolean")
    if raw is None:
        raise ConfigError(f"{name} needs a value")
    if kind in ("int", "ulong"):
        try:
            n = int(raw, 0)
        except ValueError:
            raise ConfigError(f"{name}: '{raw}' is not an integer") from None
        if kind == "ulong" and n < 0:
            raise ConfigError(f"{name}: '{raw}' must not be negative")
        return n
    return raw


@dataclass
class BootArgs:
    rcuscale: dict[str, Any]
    rcutree: dict[str, Any]
    torture: dict[str, Any]
    #: the core parameters given: ``initcall_debug`` (bool) and ``loglevel``
    #: (console_loglevel); absent keys keep the machine's default command line
    kernel: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


#: init/main.c, kernel/printk/printk.c: debug is CONSOLE_LOGLEVEL_DEBUG, quiet CONSOLE_LOGLEVEL_QUIET
_LOGLEVEL_FLAGS = {"debug": 10, "quiet": 4}


def _parse_core_param(tok: str, key: str, value: str | None, kernel: dict[str, Any]) -> bool:
    """A core parameter that sets what the console shows; False if ``key`` is not one."""
    if key == "initcall_debug":  # core_param(initcall_debug, ..., bool, 0644)
        kernel["initcall_debug"] = _parse_value("bool", tok, value)
    elif key in _LOGLEVEL_FLAGS and value is None:
        kernel["loglevel"] = _LOGLEVEL_FLAGS[key]
    elif key == "loglevel":
        level = _parse_value("int", tok, value)
        if not 0 <= level <= 15:
            raise ConfigError(f"'{tok}': a console loglevel is 0-15")
        kernel["loglevel"] = level
    else:
        return False
    return True


def parse_bootargs(text: str, rcuscale_version: str, rcutree_version: str) -> BootArgs:
    """Parse a kvm.sh ``--bootargs`` string for one kernel version."""
    rs_table = RCUSCALE_PARAMS[rcuscale_version]
    rt_table = RCUTREE_PARAMS[rcutree_version]
    rcuscale = {k: v for k, (_, v) in rs_table.items()}
    rcutree = {k: v for k, (_, v) in rt_table.items()}
    torture: dict[str, Any] = {}
    kernel: dict[str, Any] = {}
    notices: list[str] = []
    for tok in (text or "").split():
        key, eq, raw = tok.partition("=")
        value = raw if eq else None
        ns, dot, name = key.partition(".")
        if not dot:
            if not _parse_core_param(tok, key, value, kernel):
                notices.append(f"ignoring boot parameter '{tok}' (not modelled)")
            continue
        if ns == "rcuscale":
            if name not in rs_table:
                raise ConfigError(f"unknown parameter 'rcuscale.{name}' in Linux {rcuscale_version}'s rcuscale")
            rcuscale[name] = _parse_value(rs_table[name][0], tok, value)
        elif ns == "rcutree":
            if name in rt_table:
                rcutree[name] = _parse_value(rt_table[name][0], tok, value)
            elif name in _RCUTREE_UNMODELLED:
                notices.append(f"accepting rcutree.{name} (not modelled)")
            else:
                raise ConfigError(f"unknown parameter 'rcutree.{name}' in Linux {rcutree_version}'s RCU")
        elif ns == "torture":
            if name not in TORTURE_PARAMS:
                raise ConfigError(f"unknown parameter 'torture.{name}'")
            torture[name] = value if value is not None else True
        else:
            notices.append(f"ignoring boot parameter '{tok}' (not modelled)")
    return BootArgs(rcuscale, rcutree, torture, kernel, notices)


@dataclass
class KConfig:
    nr_cpus: int | None = None
    hz: int | None = None
    notices: list[str] = field(default_factory=list)


_HZ_CHOICES = (100, 250, 300, 1000)


def parse_kconfig(items: list[str] | str | None) -> KConfig:
    """kvm.sh ``--kconfig`` strings: ``CONFIG_NR_CPUS=64``, ``CONFIG_HZ=250``, ``CONFIG_HZ_250=y``."""
    kc = KConfig()
    if items is None:
        return kc
    if isinstance(items, str):
        items = [items]
    for item in items:
        for tok in item.split():
            name, eq, value = tok.partition("=")
            if not name.startswith("CONFIG_") or not eq:
                raise ConfigError(f"malformed --kconfig entry '{tok}' (expected CONFIG_NAME=value)")
            if name == "CONFIG_NR_CPUS":
                try:
                    kc.nr_cpus = int(value)
                except ValueError:
                    raise ConfigError(f"CONFIG_NR_CPUS: '{value}' is not an integer") from None
            elif name == "CONFIG_HZ":
                try:
                    hz = int(value)
                except ValueError:
                    raise ConfigError(f"CONFIG_HZ: '{value}' is not an integer") from None
                if hz not in _HZ_CHOICES:
                    raise ConfigError(f"CONFIG_HZ={hz} is not one of {_HZ_CHOICES}")
                kc.hz = hz
            elif re.fullmatch(r"CONFIG_HZ_\d+", name):
                hz = int(name[len("CONFIG_HZ_"):])
                if hz not in _HZ_CHOICES:
                    raise ConfigError(f"{name} is not a valid HZ choice")
                if value == "y":
                    kc.hz = hz
            else:
                kc.notices.append(f"ignoring {tok} (not modelled)")
    return kc


@dataclass
class RunConfig:
    """Everything one simulated run depends on."""

    variant: str
    cpus: int
    memory: int  # bytes
    hz: int
    rcuscale: dict[str, Any]
    rcutree: dict[str, Any]
    torture: dict[str, Any]
    seed: int
    profile: str
    max_seconds: float
    notices: list[str] = field(default_factory=list)
    bootargs: str = ""
    #: ``initcall_debug`` / ``loglevel`` given on the command line (BootArgs.kernel)
    kernel_params: dict[str, Any] = field(default_factory=dict)
    #: profile entries replaced for this run (``--set name=value``)
    profile_set: tuple[tuple[str, float], ...] = ()

    @property
    def memory_mb(self) -> int:
        return self.memory // MiB


DEFAULT_BOOTARGS = "rcuscale.kfree_rcu_test=1"
DEFAULT_MEMORY = "512M"  # kvm.sh TORTURE_QEMU_MEM
DEFAULT_CPUS = 64  # x86_64_defconfig CONFIG_NR_CPUS, kvm.sh --allcpus on a large host
MAX_CPUS = 512


def make_config(
    variant: str,
    cpus: int | None = None,
    memory: str = DEFAULT_MEMORY,
    bootargs: str = DEFAULT_BOOTARGS,
    kconfig: list[str] | str | None = None,
    seed: int = 1,
    profile: str | None = None,
    max_seconds: float = 600.0,
    profile_set: Sequence[tuple[str, float]] = (),
) -> RunConfig:
    """Validate everything and build a :class:`RunConfig` (raises ConfigError)."""
    from .kvfree_rcu.variants import get_variant

    cls = get_variant(variant)
    kc = parse_kconfig(kconfig)
    if cpus is None:
        cpus = kc.nr_cpus if kc.nr_cpus is not None else DEFAULT_CPUS
    if not isinstance(cpus, int) or cpus < 1:
        raise ConfigError(f"--cpus must be a positive integer, not '{cpus}'")
    if cpus > MAX_CPUS:
        raise ConfigError(f"--cpus {cpus} is more than kvfree-sim models ({MAX_CPUS})")
    if kc.nr_cpus is not None and cpus > kc.nr_cpus:
        raise ConfigError(f"--cpus {cpus} exceeds CONFIG_NR_CPUS={kc.nr_cpus}")
    mem = parse_memory(memory)
    ba = parse_bootargs(bootargs, cls.rcuscale_version, cls.rcutree_version)
    rs = ba.rcuscale
    if not rs["kfree_rcu_test"]:
        raise ConfigError("kvfree-sim models rcuscale's kfree test only: pass rcuscale.kfree_rcu_test=1")
    if rs["gp_exp"]:
        raise ConfigError("rcuscale.gp_exp=1 counts expedited grace periods, which kvfree-sim does not model")
    if rs["scale_type"] != "rcu":
        raise ConfigError(f"rcuscale.scale_type={rs['scale_type']} is not modelled (only 'rcu')")
    if rs["kfree_alloc_num"] < 1 or rs["kfree_loops"] < 1:
        raise ConfigError("rcuscale.kfree_alloc_num and rcuscale.kfree_loops must be at least 1")
    if rs["kfree_loops"] in (2, 3):
        raise ConfigError(
            f"rcuscale.kfree_loops={rs['kfree_loops']}: the kernel divides by kfree_loops/4 == 0 (oops)")
    if rs["kfree_mult"] < 1:
        raise ConfigError("rcuscale.kfree_mult must be at least 1")
    if rs["kfree_nthreads"] == 0:
        # compute_real(0) == 0: kfree_scale_shutdown() finds all of no thread ended and
        # powers the guest off at once, with no result line
        raise ConfigError("rcuscale.kfree_nthreads=0 starts no kfree thread: the test would measure nothing")
    if ba.rcutree["rcu_min_cached_objs"] < 0:
        raise ConfigError("rcutree.rcu_min_cached_objs must not be negative")
    if seed < 0:
        raise ConfigError("--seed must not be negative")
    if max_seconds <= 0:
        raise ConfigError("--max-seconds must be positive")
    hz = kc.hz if kc.hz is not None else 1000  # x86_64_defconfig: CONFIG_HZ_1000=y
    from .core.costs import ProfileError, load_profile_set

    try:
        load_profile_set(profile, profile_set)
    except ProfileError as e:
        raise ConfigError(str(e)) from None
    return RunConfig(
        variant=cls.name, cpus=cpus, memory=mem, hz=hz, rcuscale=rs, rcutree=ba.rcutree,
        torture=ba.torture, seed=seed, profile=profile or "x86-server", max_seconds=max_seconds,
        notices=ba.notices + kc.notices, bootargs=bootargs, profile_set=tuple(profile_set),
        kernel_params=ba.kernel,
    )
