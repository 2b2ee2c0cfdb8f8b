"""A score sink that keeps what it is given, for tests."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from hypertool.instrumentation import Score


class MemoryScores:
    """Keeps every score delivered to it; ``fail`` makes it refuse them (counted as dropped)."""

    def __init__(self) -> None:
        self.scores: list[Score] = []
        self.fail = False
        self.closed = False
        self._lock = threading.Lock()

    def export_scores(self, scores: Sequence[Score]) -> int:
        if self.fail:
            return len(scores)
        with self._lock:
            self.scores.extend(scores)
        return 0

    def close_scores(self) -> None:
        self.closed = True

    def named(self, name: str) -> list[Score]:
        with self._lock:
            return [score for score in self.scores if score.name == name]
