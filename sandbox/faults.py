"""Seeded fault injection: which ``/api/`` requests fail, and how.

A spec is ``"kind:rate,kind:rate"`` with rates in [0, 1] adding up to at most 1, e.g.
``"500:0.05,drop:0.02,slow:0.1"``. Each request draws one number from a ``random.Random``
seeded with the fault seed, so a given sequence of requests always meets the same faults.

Kinds: ``500``, ``502``, ``503`` (that status), ``timeout`` (silence for ``fault_delay``
seconds, then 504), ``drop`` (connection closed mid-body), ``truncate`` (200 with a JSON body
cut short), ``html`` (200 ``text/html`` login page), ``slow`` (the right answer after 0.5 s).
Only ``slow`` goes on to serve the request; every other kind leaves the data unchanged.

``LostAnswers`` is the opposite case, armed through the control API rather than drawn: the
next N order writes of a kind are *applied* and then their answer is lost (silence, or the
connection dropped mid-body), as when Finale stored an order but the client timed out.
"""

from __future__ import annotations

import random
import threading

FAULT_KINDS = ("500", "502", "503", "timeout", "drop", "truncate", "html", "slow")
SLOW_SECONDS = 0.5


def parse_fault_spec(spec: str) -> list[tuple[str, float]]:
    """Parse ``"kind:rate,..."``.

    Raises:
        ValueError: naming the bad part (unknown kind, rate outside [0, 1], sum above 1).
    """
    faults: list[tuple[str, float]] = []
    for part in (p.strip() for p in (spec or "").split(",")):
        if not part:
            continue
        kind, sep, rate_text = part.partition(":")
        kind = kind.strip().lower()
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if not sep:
            raise ValueError(f"fault {kind!r} needs a rate, e.g. {kind}:0.1")
        try:
            rate = float(rate_text)
        except ValueError:
            raise ValueError(f"fault rate {rate_text!r} is not a number") from None
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate {rate} for {kind!r} is not in [0, 1]")
        faults.append((kind, rate))
    if sum(rate for _, rate in faults) > 1.0 + 1e-9:
        raise ValueError("fault rates add up to more than 1")
    return faults


class FaultInjector:
    """Draws a fault (or none) per request.

    Args:
        spec: fault spec (see module doc).
        seed: seed of the draws.
    """

    def __init__(self, spec: str = "", seed: int = 0) -> None:
        self.configure(spec, seed)

    def configure(self, spec: str, seed: int) -> None:
        """Replace the spec and restart the seeded sequence.

        Raises:
            ValueError: for a bad spec (the previous one stays in force).
        """
        faults = parse_fault_spec(spec)
        self.spec = spec
        self.seed = seed
        self._faults = faults
        self._random = random.Random(seed)

    def draw(self) -> str | None:
        """The fault for the next request, or ``None``."""
        if not self._faults:
            return None
        point = self._random.random()
        for kind, rate in self._faults:
            if point < rate:
                return kind
            point -= rate
        return None


#: How a lost answer is lost: ``timeout`` (silence for ``fault_delay`` seconds or until the
#: client gives up, then 504) or ``drop`` (headers and half the body, connection closed).
LOST_ANSWER_KINDS = ("timeout", "drop")
#: Which order writes an armed lost answer applies to.
LOST_ANSWER_WRITES = ("create", "update", "action", "any")


class LostAnswers:
    """Armed "applied, then the answer was lost" faults for order writes, used up in order.

    Thread-safe: armed from the control API, taken by the request handler.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[tuple[str, str]] = []  # (writes, how), oldest first

    def arm(self, count: int, how: str, writes: str) -> int:
        """Lose the answers of the next ``count`` successful ``writes``; returns how many
        are armed in all.

        Raises:
            ValueError: naming the bad argument.
        """
        if how not in LOST_ANSWER_KINDS:
            raise ValueError(f"'how' must be one of {', '.join(LOST_ANSWER_KINDS)}, not {how!r}")
        if writes not in LOST_ANSWER_WRITES:
            raise ValueError(
                f"'writes' must be one of {', '.join(LOST_ANSWER_WRITES)}, not {writes!r}"
            )
        if count < 0:
            raise ValueError("'count' must be >= 0 (0 disarms nothing and arms nothing)")
        with self._lock:
            self._armed.extend([(writes, how)] * count)
            return len(self._armed)

    def clear(self) -> int:
        """Disarm everything; returns how many were armed."""
        with self._lock:
            count = len(self._armed)
            self._armed.clear()
            return count

    def pending(self) -> int:
        """How many are armed."""
        with self._lock:
            return len(self._armed)

    def take(self, write: str) -> str | None:
        """If one is armed for this kind of write (``create``, ``update``, ``action``), use it
        up and return how its answer is lost; else None."""
        with self._lock:
            for index, (writes, how) in enumerate(self._armed):
                if writes in (write, "any"):
                    del self._armed[index]
                    return how
        return None
