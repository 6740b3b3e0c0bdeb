"""A third party's plugins, most broken on purpose (tests/integration/test_plugins_broken.py)."""
