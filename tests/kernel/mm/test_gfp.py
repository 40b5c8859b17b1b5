"""GFP flags (src/kvfree_sim/kernel/mm/gfp.py) against include/linux/gfp_types.h (v6.1) and
the %pGg format (lib/vsprintf.c flags_string() -> format_flags() over gfpflag_names,
include/trace/events/mmflags.h __def_gfpflag_names)."""

from __future__ import annotations

import pytest

from kvfree_sim.kernel.mm import gfp


@pytest.mark.parametrize("name, value", [
    ("__GFP_DMA", 0x01), ("__GFP_HIGHMEM", 0x02), ("__GFP_DMA32", 0x04), ("__GFP_MOVABLE", 0x08),
    ("__GFP_RECLAIMABLE", 0x10), ("__GFP_HIGH", 0x20), ("__GFP_IO", 0x40), ("__GFP_FS", 0x80),
    ("__GFP_ZERO", 0x100), ("__GFP_ATOMIC", 0x200), ("__GFP_DIRECT_RECLAIM", 0x400),
    ("__GFP_KSWAPD_RECLAIM", 0x800), ("__GFP_WRITE", 0x1000), ("__GFP_NOWARN", 0x2000),
    ("__GFP_RETRY_MAYFAIL", 0x4000), ("__GFP_NOFAIL", 0x8000), ("__GFP_NORETRY", 0x10000),
    ("__GFP_MEMALLOC", 0x20000), ("__GFP_COMP", 0x40000), ("__GFP_NOMEMALLOC", 0x80000),
    ("__GFP_HARDWALL", 0x100000), ("__GFP_THISNODE", 0x200000), ("__GFP_ACCOUNT", 0x400000),
])
def test_flag_bits(name: str, value: int) -> None:
    """include/linux/gfp_types.h (v6.1) ___GFP_* values."""
    assert getattr(gfp, name) == value


def test_composite_masks() -> None:
    """gfp_types.h (v6.1): GFP_ATOMIC = __GFP_HIGH|__GFP_ATOMIC|__GFP_KSWAPD_RECLAIM,
    GFP_KERNEL = __GFP_RECLAIM|__GFP_IO|__GFP_FS, GFP_NOWAIT = __GFP_KSWAPD_RECLAIM,
    GFP_NOIO = __GFP_RECLAIM, GFP_NOFS = __GFP_RECLAIM|__GFP_IO."""
    assert gfp.GFP_ATOMIC == 0xA20
    assert gfp.GFP_KERNEL == 0xCC0
    assert gfp.GFP_NOWAIT == 0x800
    assert gfp.GFP_NOIO == 0xC00
    assert gfp.GFP_NOFS == 0xC40


def test_only_direct_reclaim_allows_blocking() -> None:
    """gfpflags_allow_blocking(): !!(gfp_flags & __GFP_DIRECT_RECLAIM)."""
    assert gfp.gfpflags_allow_blocking(gfp.GFP_KERNEL)
    assert gfp.gfpflags_allow_blocking(gfp.GFP_NOIO)
    assert not gfp.gfpflags_allow_blocking(gfp.GFP_ATOMIC)
    assert not gfp.gfpflags_allow_blocking(gfp.GFP_NOWAIT)


@pytest.mark.parametrize("mask, text", [
    (0xCC0, "GFP_KERNEL"),
    (0x2CC0, "GFP_KERNEL|__GFP_NOWARN"),
    (0x92CC0, "GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_NOMEMALLOC"),
    (0xA20, "GFP_ATOMIC"),
    (0x2A20, "GFP_ATOMIC|__GFP_NOWARN"),
    (0x2800, "GFP_NOWAIT|__GFP_NOWARN"),
    (0xC40, "GFP_NOFS"),
    # composites listed before GFP_KERNEL in __def_gfpflag_names are matched first
    (0x400CC0, "GFP_KERNEL_ACCOUNT"),
    (0x100CC0, "GFP_USER"),
    # bits print in the table's order, not in bit order: COMP before ZERO
    (0x40DC0, "GFP_KERNEL|__GFP_COMP|__GFP_ZERO"),
    # format_flags() prints nothing for an empty mask ("gfp_mask=0x0()" in a sysrq OOM report)
    (0x0, ""),
])
def test_gfp_string_prints_like_pGg(mask: int, text: str) -> None:
    """%pGg: format_flags() walks __def_gfpflag_names in order (GFP_TRANSHUGE,
    GFP_TRANSHUGE_LIGHT, GFP_HIGHUSER_MOVABLE, GFP_HIGHUSER, GFP_USER,
    GFP_KERNEL_ACCOUNT, GFP_KERNEL, GFP_NOFS, GFP_ATOMIC, GFP_NOIO, GFP_NOWAIT, ...,
    __GFP_NORETRY, __GFP_COMP, __GFP_ZERO, __GFP_NOMEMALLOC, __GFP_MEMALLOC, ...),
    printing each name whose whole mask is set and clearing its bits."""
    assert gfp.gfp_string(mask) == text


def test_parse_gfp_inverts_the_printed_form() -> None:
    assert gfp.parse_gfp("GFP_KERNEL|__GFP_NOWARN") == 0x2CC0
    assert gfp.parse_gfp(" GFP_NOWAIT | __GFP_NOWARN ") == 0x2800
    with pytest.raises(ValueError):
        gfp.parse_gfp("GFP_BOGUS")
