"""The event loop: an integer-nanosecond clock and a heap of callbacks.

Modelled on SimPy's core (``simpy/core.py``): events are ordered by
``(time, priority, sequence)``; the sequence number makes the order total, so
two runs with the same inputs pop events in the same order on any machine.
It is a plain callback core (no generators, no event objects with their own
callbacks lists): an event is a small :class:`Event` that ``heapq`` orders by
``(time, prio, seq)``, and cancelling one just clears its function.  That keeps the
hot loop to a handful of bytecodes and simple enough to compile with mypyc.

The core knows nothing of the kernel.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any, Callable, Final

#: Event priorities at the same instant: hard interrupts before softirqs
#: before the scheduler; lower runs first.
PRIO_HARDIRQ: Final = 0
PRIO_SOFTIRQ: Final = 1
PRIO_NORMAL: Final = 2
PRIO_LATE: Final = 3

Callback = Callable[[Any], None]


class Event:
    """One scheduled call of ``fn(arg)``; the heap orders events by ``(time, prio, seq)``.

    A small class rather than a list so that the compiled build keeps the three
    keys unboxed and compares them natively (comparing lists item by item was a
    fifth of a compiled run); cancelling clears ``fn``.
    """

    __slots__ = ("time", "prio", "seq", "fn", "arg")

    def __init__(self, time: int, prio: int, seq: int, fn: Callback | None, arg: Any) -> None:
        self.time = time
        self.prio = prio
        self.seq = seq
        self.fn = fn
        self.arg = arg

    def __lt__(self, other: "Event") -> bool:
        if self.time != other.time:
            return self.time < other.time
        if self.prio != other.prio:
            return self.prio < other.prio
        return self.seq < other.seq


class StopSimulation(Exception):
    """Raised by a model to end the run at once (e.g. a kernel panic)."""


class Simulator:
    """A deterministic discrete-event loop with an integer ns clock."""

    __slots__ = ("now", "_heap", "_push", "_seq", "events", "_stop")

    def __init__(self) -> None:
        self.now: int = 0
        self._heap: list[Event] = []
        # heappush as a field: the compiled build then looks no global up per event
        self._push: Callable[[list[Event], Event], None] = heappush
        self._seq: int = 0
        self.events: int = 0  # events executed so far
        self._stop: bool = False

    def at(self, time: int, fn: Callback, arg: Any = None, prio: int = PRIO_NORMAL) -> Event:
        """Call ``fn(arg)`` at absolute time ``time`` (never in the past)."""
        if time < self.now:
            raise ValueError(f"event scheduled in the past: {time} < {self.now}")
        self._seq += 1
        ev = Event(time, prio, self._seq, fn, arg)
        self._push(self._heap, ev)
        return ev

    def scheduled(self) -> int:
        """Events scheduled so far (a caller can tell whether some code scheduled any)."""
        return self._seq

    def after(self, delay: int, fn: Callback, arg: Any = None, prio: int = PRIO_NORMAL) -> Event:
        """Call ``fn(arg)`` ``delay`` ns from now."""
        return self.at(self.now + delay, fn, arg, prio)

    @staticmethod
    def cancel(ev: Event | None) -> None:
        """Forget a scheduled event; cancelling twice or after it ran is harmless."""
        if ev is not None:
            ev.fn = None

    @staticmethod
    def pending(ev: Event | None) -> bool:
        return ev is not None and ev.fn is not None

    def stop(self) -> None:
        """End :meth:`run` after the current event."""
        self._stop = True

    def _first(self) -> Event | None:
        """The next live event (dropping cancelled ones on the way), or None."""
        heap = self._heap
        while heap and heap[0].fn is None:
            heappop(heap)
        return heap[0] if heap else None

    def peek(self) -> int | None:
        """Time of the next live event, or None."""
        ev = self._first()
        return None if ev is None else ev.time

    def irq_due_now(self) -> bool:
        """Whether a live event of interrupt priority (below PRIO_NORMAL) is due at this instant."""
        ev = self._first()
        return ev is not None and ev.time == self.now and ev.prio < PRIO_NORMAL

    def run(self, until: int) -> None:
        """Execute events in order until the next one lies beyond ``until``,
        then move the clock to ``until`` (unless :meth:`stop` was called, which
        leaves it at the event that stopped).
        """
        heap = self._heap
        pop = heappop
        n = 0
        self._stop = False
        try:
            while heap:
                ev = heap[0]
                if ev.time > until:
                    break
                pop(heap)
                fn = ev.fn
                if fn is None:
                    continue
                self.now = ev.time
                ev.fn = None
                n += 1
                fn(ev.arg)
                if self._stop:
                    break
            if not self._stop and self.now < until:
                self.now = until
        finally:
            self.events += n
