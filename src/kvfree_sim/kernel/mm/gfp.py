"""GFP flags (include/linux/gfp.h, v5.11; the bit values are the same in v6.1).

Only the flags whose meaning the page allocator model uses are interpreted;
the rest exist so masks print as the kernel prints them (``%pGg``).
"""

from __future__ import annotations

from typing import Final

__GFP_DMA: Final = 0x01
__GFP_HIGHMEM: Final = 0x02
__GFP_DMA32: Final = 0x04
__GFP_MOVABLE: Final = 0x08
__GFP_RECLAIMABLE: Final = 0x10
__GFP_HIGH: Final = 0x20
__GFP_IO: Final = 0x40
__GFP_FS: Final = 0x80
__GFP_ZERO: Final = 0x100
__GFP_ATOMIC: Final = 0x200
__GFP_DIRECT_RECLAIM: Final = 0x400
__GFP_KSWAPD_RECLAIM: Final = 0x800
__GFP_WRITE: Final = 0x1000
__GFP_NOWARN: Final = 0x2000
__GFP_RETRY_MAYFAIL: Final = 0x4000
__GFP_NOFAIL: Final = 0x8000
__GFP_NORETRY: Final = 0x10000
__GFP_MEMALLOC: Final = 0x20000
__GFP_COMP: Final = 0x40000
__GFP_NOMEMALLOC: Final = 0x80000
__GFP_HARDWALL: Final = 0x100000
__GFP_THISNODE: Final = 0x200000
__GFP_ACCOUNT: Final = 0x400000

__GFP_RECLAIM: Final = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM

GFP_ATOMIC: Final = __GFP_HIGH | __GFP_ATOMIC | __GFP_KSWAPD_RECLAIM
GFP_KERNEL: Final = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_NOWAIT: Final = __GFP_KSWAPD_RECLAIM
GFP_NOIO: Final = __GFP_RECLAIM
GFP_NOFS: Final = __GFP_RECLAIM | __GFP_IO

# Public names without the leading underscores, for the models that use them.
GFP_HIGH: Final = __GFP_HIGH
GFP_DIRECT_RECLAIM: Final = __GFP_DIRECT_RECLAIM
GFP_KSWAPD_RECLAIM: Final = __GFP_KSWAPD_RECLAIM
GFP_NOWARN: Final = __GFP_NOWARN
GFP_RETRY_MAYFAIL: Final = __GFP_RETRY_MAYFAIL
GFP_NOFAIL: Final = __GFP_NOFAIL
GFP_NORETRY: Final = __GFP_NORETRY
GFP_MEMALLOC: Final = __GFP_MEMALLOC
GFP_NOMEMALLOC: Final = __GFP_NOMEMALLOC
GFP_COMP: Final = __GFP_COMP
GFP_FS: Final = __GFP_FS
GFP_ATOMIC_FLAG: Final = __GFP_ATOMIC

GFP_USER: Final = GFP_KERNEL | __GFP_HARDWALL
GFP_KERNEL_ACCOUNT: Final = GFP_KERNEL | __GFP_ACCOUNT
GFP_HIGHUSER: Final = GFP_USER | __GFP_HIGHMEM

# __def_gfpflag_names (include/trace/events/mmflags.h, v6.1), in its order:
# format_flags() prints each entry whose bits are all set, then clears them.
# (GFP_TRANSHUGE*, GFP_HIGHUSER_MOVABLE and the KASAN bits are left out.)
_NAMES: Final = (
    ("GFP_HIGHUSER", GFP_HIGHUSER), ("GFP_USER", GFP_USER), ("GFP_KERNEL_ACCOUNT", GFP_KERNEL_ACCOUNT),
    ("GFP_KERNEL", GFP_KERNEL), ("GFP_NOFS", GFP_NOFS), ("GFP_ATOMIC", GFP_ATOMIC), ("GFP_NOIO", GFP_NOIO),
    ("GFP_NOWAIT", GFP_NOWAIT), ("GFP_DMA", __GFP_DMA), ("__GFP_HIGHMEM", __GFP_HIGHMEM),
    ("GFP_DMA32", __GFP_DMA32), ("__GFP_HIGH", __GFP_HIGH), ("__GFP_ATOMIC", __GFP_ATOMIC),
    ("__GFP_IO", __GFP_IO), ("__GFP_FS", __GFP_FS), ("__GFP_NOWARN", __GFP_NOWARN),
    ("__GFP_RETRY_MAYFAIL", __GFP_RETRY_MAYFAIL), ("__GFP_NOFAIL", __GFP_NOFAIL),
    ("__GFP_NORETRY", __GFP_NORETRY), ("__GFP_COMP", __GFP_COMP), ("__GFP_ZERO", __GFP_ZERO),
    ("__GFP_NOMEMALLOC", __GFP_NOMEMALLOC), ("__GFP_MEMALLOC", __GFP_MEMALLOC),
    ("__GFP_HARDWALL", __GFP_HARDWALL), ("__GFP_THISNODE", __GFP_THISNODE),
    ("__GFP_RECLAIMABLE", __GFP_RECLAIMABLE), ("__GFP_MOVABLE", __GFP_MOVABLE),
    ("__GFP_ACCOUNT", __GFP_ACCOUNT), ("__GFP_WRITE", __GFP_WRITE), ("__GFP_RECLAIM", __GFP_RECLAIM),
    ("__GFP_DIRECT_RECLAIM", __GFP_DIRECT_RECLAIM), ("__GFP_KSWAPD_RECLAIM", __GFP_KSWAPD_RECLAIM),
)


def gfp_string(mask: int) -> str:
    """Format a mask like the kernel's ``%pGg`` (format_flags()): ``GFP_KERNEL|__GFP_NOWARN``."""
    parts = []
    rest = mask
    for name, value in _NAMES:
        if rest and rest & value == value:
            parts.append(name)
            rest &= ~value
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def gfpflags_allow_blocking(mask: int) -> bool:
    return bool(mask & __GFP_DIRECT_RECLAIM)


def parse_gfp(text: str) -> int:
    """Parse ``GFP_KERNEL|__GFP_NOWARN`` back into a mask."""
    table = dict(_NAMES)
    mask = 0
    for part in text.split("|"):
        part = part.strip()
        if part not in table:
            raise ValueError(f"unknown GFP flag '{part}'")
        mask |= table[part]
    return mask


def gfp_migratetype(mask: int) -> int:
    """gfp_migratetype() (include/linux/gfp.h): ``(gfp & GFP_MOVABLE_MASK) >>
    GFP_MOVABLE_SHIFT``, i.e. MIGRATE_UNMOVABLE (0), MIGRATE_MOVABLE (1) or
    MIGRATE_RECLAIMABLE (2)."""
    return (mask & (__GFP_RECLAIMABLE | __GFP_MOVABLE)) >> 3
