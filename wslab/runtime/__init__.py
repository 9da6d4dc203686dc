"""The lab's process plumbing: uvicorn servers (task, thread, process), replicas, nginx and Redis.

Lessons never import this package; they ask the :class:`~wslab.Lab` for what it starts.
"""
