#!/bin/sh
# The README's tour on a clean Debian 12 root where only kiln's packages were
# installed (run inside it by tests/packages/test_packages.py). Every step
# checks its result; the first failure stops with its line.
set -eu
say() { echo "tour: $*"; }
cd "$(mktemp -d)"

say "the packages' files and users"
test -x /usr/bin/kiln
test -x /usr/lib/x86_64-linux-gnu/kiln/kiln-tool
ls /usr/lib/x86_64-linux-gnu/kiln/libkiln.so /usr/lib/x86_64-linux-gnu/kiln/libkiln-net.so /usr/lib/x86_64-linux-gnu/kiln/libkiln-measure.so
test -f /lib/systemd/system/kiln-cas.service
test -f /lib/systemd/system/kiln-las.service
test -f /etc/kiln/cas.conf
getent passwd kiln >/dev/null
kiln --help >/dev/null
# The front (/usr/bin/kiln) hands --version to kiln-tool, found from its own
# path in the packaged layout (LIBDIR/kiln), not from PATH.
test "$(env PATH=/nonexistent /usr/bin/kiln --version)" = "kiln $(dpkg-query -W -f '${Version}' kiln)"
man -w kiln >/dev/null
# The units as installed (their binary, users, directives and man page).
SYSTEMD_LOG_LEVEL=warning systemd-analyze verify /lib/systemd/system/kiln-cas.service \
  /lib/systemd/system/kiln-las.service

say "a protected volume"
kiln fs init vol --key-file vol.key
echo "top secret" | kiln fs put vol notes.txt --from - --key-file vol.key
if grep -r "top secret" vol; then echo "plaintext on disk" >&2; exit 1; fi
kiln run --volume vol=vol.key -- sh -c 'cat vol/notes.txt > seen.txt && echo more >> vol/notes.txt'
test "$(cat seen.txt)" = "top secret"
test "$(kiln fs cat vol notes.txt --key-file vol.key)" = "top secret
more"
kiln fs verify vol --key-file vol.key

say "a CAS, an identity, a policy (tee sim: INSECURE, no hardware in a chroot)"
# The shipped configuration file, with the tour's own store and port.
kiln cas serve --config /etc/kiln/cas.conf --data cas --listen 127.0.0.1:0 > cas.out 2> cas.err &
cas_pid=$!
trap 'kill $cas_pid 2>/dev/null || true' EXIT
i=0
until grep -q '^listening ' cas.out; do
  i=$((i + 1))
  if [ $i -gt 300 ] || ! kill -0 $cas_pid 2>/dev/null; then cat cas.err >&2; exit 1; fi
  sleep 0.1
done
url=$(sed -n 's/^listening //p' cas.out)
kiln identity create --out alice.pem
export KILN_CAS="$url" KILN_IDENTITY=alice.pem KILN_CAS_CA=cas/ca.pem
cat > policy.yaml <<'YAML'
name: demo/app
predecessor: null
access: {read: [owner], update: [owner]}
secrets:
  - {name: db_password, kind: ascii, size: 24}
services:
  - name: app
    command: [/bin/sh, -c, 'echo "password has ${#DB_PASSWORD} characters"']
    environment: {DB_PASSWORD: "{{secret.db_password}}"}
    measurement: [any]
security:
  tee: [sim]
  allow_insecure_sim: true
YAML
kiln policy apply policy.yaml
kiln policy list | grep -q demo/app

say "an attested run"
kiln run --session demo/app --service app --tee sim -- /bin/sh > run.out 2> run.err || {
  cat run.err >&2; exit 1; }
grep -q "password has 24 characters" run.out
grep -q INSECURE run.err

kill $cas_pid
wait $cas_pid 2>/dev/null || true
trap - EXIT
kiln audit verify --data cas
say "ok"
