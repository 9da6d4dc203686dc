"""The broken variants: one module per failure id, each small and named for what goes wrong.

Every module here is the code a tutorial, a docs page or a first draft would write, kept as close to
that original as possible, so a lesson can run it, watch it fail, and then run the reference in
:mod:`wslab.chat` that fixes it. Each one sits next to the reference it breaks (``f01_dead_sockets``
next to ``wslab/chat/rooms.py``), and differs from it in as few lines as possible.

Rules for this package:

* module names are ``fNN_what_goes_wrong``, with ``NN`` the failure's number (every number is explained
  in notebooks/failures/README.md);
* nothing on a lesson's happy path imports from here: a pitfall is only ever the "before" picture;
* modules are imported by name (``from wslab.pitfalls import f01_dead_sockets``); this file imports
  none of them, so adding a pitfall never touches another one;
* a pitfall may report what happens (through a ``report(kind, message)`` hook, as the reference
  app does), but never prints and never fixes its own bug.
"""
