"""Fixtures for tests/e2e/apps (defined in kilnapps.py)."""
from kilnapps import direct_syscall_bin, volume  # noqa: F401
from netenv import net  # noqa: F401
