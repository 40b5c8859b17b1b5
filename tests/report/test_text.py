"""Plain-text report helpers (kvfree_sim.report.text)."""

from __future__ import annotations

from kvfree_sim.report.text import profile_phrase, set_text, timestamp


def test_timestamp_is_printks() -> None:
    assert timestamp(9_619_842_820) == "[    9.619842]"


def test_the_default_profile_as_shipped_goes_unsaid() -> None:
    assert profile_phrase("x86-server", {}) == profile_phrase("", {}) == ""
    assert profile_phrase("qemu-tcg-6.1", {}) == "profile qemu-tcg-6.1"
    assert profile_phrase("x86-server", {"vcpu_steal_ns": 1e7, "kmalloc_ns": 0.5}) == (
        "profile x86-server (set vcpu_steal_ns=10000000, kmalloc_ns=0.5)")
    assert set_text({}) == ""
