"""Fixtures of the attack suite (defined in secenv.py). The suite runs in
`make check`; slow trials are marked `stress`."""
from secenv import cbuild, host_attest  # noqa: F401
from netenv import net  # noqa: F401
