"""GET /v1/attestation is slow on hardware (a TDX/SNP report through configfs-tsm)
and produced one at a time: a client asking in a loop must not starve the others.
Per client address a token bucket (a burst of 20, then 2 a second, docs/api.md):
beyond it, 429 with Retry-After, logged once per episode; another address's
`kiln cas verify` still succeeds meanwhile. The flooder binds 127.0.0.2 (Linux
routes all of 127/8 to lo), the verifier comes from 127.0.0.1."""
import http.client
import secrets
import socket

import pytest


def get_attestations(cas, source, n):
    """n requests in a row on one kept-alive connection: [(status, Retry-After)]."""
    conn = http.client.HTTPSConnection("127.0.0.1", cas.port, timeout=30,
                                       context=cas.ssl_context(),
                                       source_address=(source, 0))
    out = []
    try:
        for _ in range(n):
            conn.request("GET", f"/v1/attestation?nonce={secrets.token_hex(32)}")
            r = conn.getresponse()
            r.read()
            out.append((r.status, r.getheader("Retry-After")))
    finally:
        conn.close()
    return out


def test_flooding_client_gets_429_and_others_still_verify(kiln, attested_cas):
    try:
        socket.create_connection(("127.0.0.1", attested_cas.port), timeout=5,
                                 source_address=("127.0.0.2", 0)).close()
    except OSError as e:
        pytest.skip(f"cannot use 127.0.0.2 as a source address here: {e}")
    answers = get_attestations(attested_cas, "127.0.0.2", 100)
    statuses = [s for s, _ in answers]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[:20] == [200] * 20, statuses       # the burst
    limited = [ra for s, ra in answers if s == 429]
    assert limited, statuses                            # 100 in a row outrun 2 a second
    assert all(ra is not None and ra.isdigit() and 1 <= int(ra) <= 2 for ra in limited), \
        limited
    # Another client is served meanwhile, as a user runs it.
    p = kiln("cas", "verify", "--cas", attested_cas.url, "--cas-fingerprint",
             attested_cas.fingerprint, "--allow-sim")
    assert p.returncode == 0, p.stderr
    assert "tee sim: INSECURE" in p.stdout
    # Logged once per episode (until the client has a token again), not per request.
    first = statuses.index(429)
    episodes = 1 + sum(1 for a, b in zip(statuses[first:], statuses[first + 1:])
                       if a == 200 and b == 429)
    log = attested_cas.log()
    assert log.count('msg="CAS evidence refused: client over its rate"') == episodes, \
        (episodes, log[-3000:])
    assert "addr=127.0.0.2" in log
    assert 'kiln_cas_requests_total{path="/v1/attestation",code="429"}' in \
        attested_cas.metrics()
