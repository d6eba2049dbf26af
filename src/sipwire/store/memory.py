"""In-memory stores: for tests, benchmarks and servers that need no persistence."""

from __future__ import annotations

import heapq

from sipwire.store._base import Binding, UserRecord

__all__ = ["MemoryLocationStore", "MemoryUserStore"]


class MemoryLocationStore:
    """A :class:`~sipwire.store.LocationStore` in a dict, with a heap of expiry times."""

    def __init__(self) -> None:
        self._by_aor: dict[str, list[Binding]] = {}
        self._heap: list[tuple[float, str]] = []  # (expires_at, aor), lazily cleaned

    async def get(self, aor: str, *, now: float) -> list[Binding]:
        return [b for b in self._by_aor.get(aor, ()) if b.expires_at > now]

    async def replace(self, aor: str, bindings: list[Binding]) -> None:
        if bindings:
            self._by_aor[aor] = list(bindings)
            for b in bindings:
                heapq.heappush(self._heap, (b.expires_at, aor))
        else:
            self._by_aor.pop(aor, None)
        # Keep the heap bounded by the number of live bindings: rebuild when stale
        # entries dominate.
        if len(self._heap) > 64 and len(self._heap) > 4 * self._count():
            self._rebuild_heap()

    def _count(self) -> int:
        return sum(len(v) for v in self._by_aor.values())

    def _rebuild_heap(self) -> None:
        self._heap = [(b.expires_at, aor) for aor, bs in self._by_aor.items() for b in bs]
        heapq.heapify(self._heap)

    async def expire(self, now: float) -> list[Binding]:
        gone: list[Binding] = []
        while self._heap and self._heap[0][0] <= now:
            _, aor = heapq.heappop(self._heap)
            current = self._by_aor.get(aor)
            if not current:
                continue
            keep = [b for b in current if b.expires_at > now]
            gone.extend(b for b in current if b.expires_at <= now)
            if keep:
                self._by_aor[aor] = keep
            else:
                del self._by_aor[aor]
        return gone

    async def next_expiry(self) -> float | None:
        while self._heap:
            at, aor = self._heap[0]
            if any(b.expires_at == at for b in self._by_aor.get(aor, ())):
                return at
            heapq.heappop(self._heap)
        return None

    async def aors(self, *, now: float, limit: int = 1000) -> list[str]:
        out = [a for a, bs in self._by_aor.items() if any(b.expires_at > now for b in bs)]
        return sorted(out)[:limit]

    async def close(self) -> None:
        return None


class MemoryUserStore:
    """A :class:`~sipwire.store.UserStore` in a dict."""

    def __init__(self) -> None:
        self._users: dict[tuple[str, str], UserRecord] = {}

    async def get_user(self, username: str, domain: str) -> UserRecord | None:
        return self._users.get((username, domain.lower()))

    async def put_user(self, user: UserRecord) -> None:
        self._users[(user.username, user.domain.lower())] = user

    async def remove_user(self, username: str, domain: str) -> bool:
        return self._users.pop((username, domain.lower()), None) is not None

    async def list_users(self, domain: str | None = None) -> list[UserRecord]:
        users = [u for u in self._users.values() if domain is None or u.domain == domain.lower()]
        return sorted(users, key=lambda u: (u.domain, u.username))

    async def close(self) -> None:
        return None
