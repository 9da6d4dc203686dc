"""wslab: a hands-on WebSocket course that runs real servers, clients and proxies on one laptop.

The one object a notebook or a test holds is :class:`wslab.Lab`; everything else hangs off it.
"""

from wslab.lab import Lab

__all__ = ["Lab"]
__version__ = "0.1.0"
