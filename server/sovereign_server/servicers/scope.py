"""Storage as the current caller may see it: every servicer reads and writes through this, so one
project never reaches another's objects (the repository scopes every query)."""

from __future__ import annotations

from sovereign_server.caller import current_caller
from sovereign_storage import Repository


class CallerScoped:
    def __init__(self, repository: Repository) -> None:
        self._unscoped = repository

    @property
    def _repository(self) -> Repository:
        return self._unscoped.scoped(current_caller().project_id)
