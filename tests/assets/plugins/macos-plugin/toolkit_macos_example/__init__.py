"""A plugin for another platform: on Linux it must be listed, and refused cleanly if asked.

Test asset (tests/unit/plugins/test_linux_other_platform.py). Its procedures
name macOS tools that do not exist on Linux: a Linux agent that ran them
anyway would fail with "not found" instead of refusing them by platform.
"""

from toolkit.plugins import Diagnostic, Fix, Plugin

plugin = Plugin(
    name="macos-example",
    version="0.1.0",
    summary="macOS diagnostics and fixes (a test asset)",
    procedures=(
        Diagnostic(
            name="spotlight-status",
            summary="Whether Spotlight indexes the start-up disk",
            platforms=("macos",),
            run=[["mdutil", "-s", "/"]],
        ),
        Fix(
            name="flush-dns-macos",
            summary="Flush macOS's DNS cache",
            platforms=("macos",),
            check=[["dscacheutil", "-statistics"]],
            apply=[["dscacheutil", "-flushcache"], ["killall", "-HUP", "mDNSResponder"]],
            verify=[["dscacheutil", "-statistics"]],
        ),
    ),
)

__all__ = ["plugin"]
