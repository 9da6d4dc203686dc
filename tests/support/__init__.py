"""Helpers the tests share that are neither tests nor fixtures: imported as ``support.<module>``.

The root ``conftest.py`` puts ``tests/`` on ``sys.path``, so every test folder imports the same
modules; a test module never imports another test module (tests/project/test_layout.py).
"""
