"""wslab: a hands-on WebSocket course that runs real servers, clients and proxies on one laptop.

The one object a notebook or a test holds is :class:`wslab.Lab`; everything else hangs off it.
``Lab`` is imported lazily so that ``python -m wslab doctor`` can still report on a broken install
(a missing dependency) instead of dying on the import it is meant to diagnose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wslab.lab import Lab

__all__ = ["Lab"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Lab":
        from wslab.lab import Lab

        return Lab
    raise AttributeError(f"module 'wslab' has no attribute {name!r}")
