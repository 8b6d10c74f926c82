"""`make demo` runs scripts/demo.sh: it must keep behaving as it says."""
import subprocess

from kilnenv import BUILD, ROOT


def test_demo_runs_every_step():
    p = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), str(BUILD)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    out = p.stdout
    assert "demo: all 12 steps behaved as described" in out
    # The attested app got its secret and wrote through the volume twice.
    assert "received a 24-character DB_PASSWORD; 1 order(s)" in out
    assert "received a 24-character DB_PASSWORD; 2 order(s)" in out
    # The modified binary was refused, and the CAS logged the failing claim.
    assert "attestation refused by the CAS (request id" in out
    assert 'reason="claims.workload_measurement' in out
    assert "chunk 0 is corrupt" in out
