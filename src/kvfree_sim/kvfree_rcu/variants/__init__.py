"""The kernel versions and patches of the story, one small module each.

Each variant subclasses the one it patches and overrides only the functions
the patch touches, so a module reads like its diff.  :data:`VARIANTS` keeps
them in the order of the story.
"""

from __future__ import annotations

from ...config import ConfigError
from ..tree import KvfreeRcu
from .v5_11 import V5_11
from .v5_11_v3 import V5_11_V3
from .v5_11_v3_backoff import V5_11_V3_Backoff
from .v5_11_v3_cancel import V5_11_V3_Cancel
from .v5_13 import V5_13
from .v5_14 import V5_14
from .v6_1 import V6_1
from .v6_1_nodrain import V6_1_Nodrain
from .v6_1_v3 import V6_1_V3

VARIANTS: dict[str, type[KvfreeRcu]] = {
    cls.name: cls
    for cls in (V5_11, V5_11_V3, V5_11_V3_Backoff, V5_11_V3_Cancel, V5_13, V5_14, V6_1, V6_1_Nodrain, V6_1_V3)
}


def get_variant(name: str) -> type[KvfreeRcu]:
    cls = VARIANTS.get(name)
    if cls is None:
        raise ConfigError(f"unknown variant '{name}' (known: {', '.join(VARIANTS)})")
    return cls
