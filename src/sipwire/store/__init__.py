"""sipwire.store: storage backends behind small async protocols.

* :mod:`sipwire.store.memory` -- in-memory (tests, benchmarks).
* :mod:`sipwire.store.sqlite` -- SQLite, the embedded default of ``sipwire serve``.
"""

from sipwire.store._base import (
    DEFAULT_MAX_BINDINGS_PER_AOR,
    Binding,
    LocationStore,
    StoreError,
    UserRecord,
    UserStore,
)

__all__ = [
    "DEFAULT_MAX_BINDINGS_PER_AOR",
    "Binding",
    "LocationStore",
    "StoreError",
    "UserRecord",
    "UserStore",
]
