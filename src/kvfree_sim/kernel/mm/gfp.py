"""GFP flags (include/linux/gfp.h, v5.11; the bit values are the same in v6.1).

Only the flags whose meaning the page allocator model uses are interpreted;
the rest exist so masks print as the kernel prints them (``%pGg``).
"""

from __future__ import annotations

__GFP_DMA = 0x01
__GFP_HIGHMEM = 0x02
__GFP_DMA32 = 0x04
__GFP_MOVABLE = 0x08
__GFP_RECLAIMABLE = 0x10
__GFP_HIGH = 0x20
__GFP_IO = 0x40
__GFP_FS = 0x80
__GFP_ZERO = 0x100
__GFP_ATOMIC = 0x200
__GFP_DIRECT_RECLAIM = 0x400
__GFP_KSWAPD_RECLAIM = 0x800
__GFP_WRITE = 0x1000
__GFP_NOWARN = 0x2000
__GFP_RETRY_MAYFAIL = 0x4000
__GFP_NOFAIL = 0x8000
__GFP_NORETRY = 0x10000
__GFP_MEMALLOC = 0x20000
__GFP_COMP = 0x40000
__GFP_NOMEMALLOC = 0x80000
__GFP_HARDWALL = 0x100000
__GFP_THISNODE = 0x200000
__GFP_ACCOUNT = 0x400000

__GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM

GFP_ATOMIC = __GFP_HIGH | __GFP_ATOMIC | __GFP_KSWAPD_RECLAIM
GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM
GFP_NOIO = __GFP_RECLAIM
GFP_NOFS = __GFP_RECLAIM | __GFP_IO

# Public names without the leading underscores, for the models that use them.
GFP_HIGH = __GFP_HIGH
GFP_DIRECT_RECLAIM = __GFP_DIRECT_RECLAIM
GFP_KSWAPD_RECLAIM = __GFP_KSWAPD_RECLAIM
GFP_NOWARN = __GFP_NOWARN
GFP_RETRY_MAYFAIL = __GFP_RETRY_MAYFAIL
GFP_NOFAIL = __GFP_NOFAIL
GFP_NORETRY = __GFP_NORETRY
GFP_MEMALLOC = __GFP_MEMALLOC
GFP_NOMEMALLOC = __GFP_NOMEMALLOC
GFP_COMP = __GFP_COMP
GFP_FS = __GFP_FS
GFP_ATOMIC_FLAG = __GFP_ATOMIC

GFP_USER = GFP_KERNEL | __GFP_HARDWALL
GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT
GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM

# __def_gfpflag_names (include/trace/events/mmflags.h, v6.1), in its order:
# format_flags() prints each entry whose bits are all set, then clears them.
# (GFP_TRANSHUGE*, GFP_HIGHUSER_MOVABLE and the KASAN bits are left out.)
_NAMES = (
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
