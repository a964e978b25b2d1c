"""The effects ledger behind `ctx.once(key)`: at most once, with uncertain effects reported."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from conveyor.core.errors import UncertainEffect

if TYPE_CHECKING:
    from conveyor.core.store import Store

OnUncertain = Literal["skip", "repeat"]


class EffectsLedger:
    """One attempt's view of the ledger: what it ran, skipped, and found uncertain."""

    def __init__(self, store: Store, job_id: str, attempt: int) -> None:
        self.store = store
        self.job_id = job_id
        self.attempt = attempt
        self.uncertain: list[str] = []

    @contextmanager
    def once(self, key: str, on_uncertain: OnUncertain = "skip") -> Iterator[bool]:
        """Yield True when the body should perform the side effect, False to skip it.

        The key commits as started before the body runs and as done after it. A body that
        raises releases the key (the effect did not happen, a retry may do it). A key a dead
        worker left started is uncertain: skipped and reported, or repeated on request.
        """
        if on_uncertain not in ("skip", "repeat"):
            raise ValueError("on_uncertain must be 'skip' or 'repeat'")
        run, prior = self.store.effect_begin(
            key, self.job_id, self.attempt, repeat=on_uncertain == "repeat"
        )
        if prior == "uncertain" and key not in self.uncertain:
            self.uncertain.append(key)
        if not run:
            yield False
            return
        try:
            yield True
        except UncertainEffect:
            # Leave the key started, exactly as a worker dying here would.
            raise
        except BaseException:
            self.store.effect_finish(key, succeeded=False)
            raise
        self.store.effect_finish(key, succeeded=True)
