#!/usr/bin/env bash
# kiln demo, end to end. Usage: scripts/demo.sh BUILD_DIR
#
# Part 1 (attestation): starts kiln-cas on a free loopback port, kiln-las (the host
# attestor; root only, otherwise the INSECURE sim backend is used and said so),
# creates an identity and a policy with a generated secret and a volume, then runs
# python3 (a stock binary) under `kiln run`: before python's main the runtime proves
# what it is running and only then receives its command, its environment (with the
# secret) and the volume key. The data lands on disk encrypted; a modified python3
# binary is refused.
# Part 2 (volumes offline): `kiln fs` on a local volume: ciphertext on disk,
# wrong key and a flipped byte detected.
#
# Every step prints one line saying what it shows; the script stops with a
# non-zero exit as soon as something does not behave as described.
set -uo pipefail
build=${1:-build}
kiln=$(realpath "$build/kiln")
work=$(mktemp -d /tmp/kiln-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1
step=0
say() { step=$((step + 1)); printf '\n== %d. %s\n' "$step" "$*"; }
fail() { printf '\ndemo: FAILED: %s\n' "$*" >&2; exit 1; }
# Show the command (with the kiln binary as plain `kiln`), then run it.
run() { local shown="$*"; printf '$ %s\n' "${shown//$kiln/kiln}"; "$@" 2>&1; }
# Wait until FILE contains PATTERN (a daemon's "ready" line), at most 10 s.
wait_for() {
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  cat "$1" >&2; return 1
}

printf 'kiln demo in %s\n' "$work"

# ---- part 1: attestation -----------------------------------------------------
say "Start kiln-cas on a free loopback port (SQLite store, self-signed TLS CA)."
"$kiln" cas serve --data cas --listen 127.0.0.1:0 > cas.log 2>&1 &
pids+=($!)
wait_for cas.log "listening https://" || fail "kiln-cas did not start"
url=$(grep -o 'listening https://[0-9.:]*' cas.log | head -1 | cut -d' ' -f2)
grep -o 'ca-fingerprint [0-9a-f]*' cas.log | head -1
echo "kiln-cas listens at $url"
export KILN_CAS=$url KILN_CAS_CA=$work/cas/ca.pem

if [ "$(id -u)" = 0 ]; then
  tee=host
  say "Start kiln-las, the host attestor (measures callers from /proc, signs evidence); the CAS trusts its key."
  "$kiln" las serve --socket las.sock --key las.key > las.log 2>&1 &
  pids+=($!)
  wait_for las.log "kiln-las serving" || fail "kiln-las did not start"
  run "$kiln" cas trust-las las.pem --data cas || fail "trust-las"
  tee_args=(--tee host --las-socket "$work/las.sock")
else
  tee=sim
  say "Not root: kiln-las needs root, so this demo uses the INSECURE sim backend (no proof at all)."
  tee_args=(--tee sim)
fi

say "Create a stakeholder identity (P-256 key + certificate; its id is the key's SHA-256)."
run "$kiln" identity create --out alice.pem || fail "identity"
export KILN_IDENTITY=$work/alice.pem

say "Measure the program the policy will allow: python3 with every library it maps."
printf '$ %s\n' "kiln measure -- /usr/bin/python3"
measurement=$("$kiln" measure -- /usr/bin/python3) || fail "measure"
echo "$measurement"

say "Apply a policy: a generated secret, a volume, the command and the allowed measurement."
cat > policy.yaml <<YAML
name: demo/shop
predecessor: null
access: {read: [owner], update: [owner]}
secrets:
  - {name: db_password, kind: ascii, size: 24}
volumes:
  - {name: data}
services:
  - name: app
    command: [/usr/bin/python3, /app/app.py]
    environment: {DB_PASSWORD: "{{secret.db_password}}"}
    files:
      - path: /app/app.py
        mode: "0444"
        content: |
          import os, sqlite3
          password = os.environ["DB_PASSWORD"]
          db = sqlite3.connect("/data/shop.db")
          db.execute("create table if not exists orders(id integer primary key, item text)")
          db.execute("insert into orders(item) values (?)", ("customer record: 12 kiln bricks",))
          db.commit()
          n = db.execute("select count(*) from orders").fetchone()[0]
          print(f"app: received a {len(password)}-character DB_PASSWORD; {n} order(s) in /data/shop.db")
    mounts:
      - {volume: data, path: /data}
    measurement: [$measurement]
security:
  tee: [$tee]
  allow_insecure_sim: $([ "$tee" = sim ] && echo true || echo false)
YAML
run "$kiln" policy apply policy.yaml || fail "policy apply"

say "Run stock python3 under kiln: it attests, then gets its command, secret and volume key."
run "$kiln" run --session demo/shop --service app "${tee_args[@]}" --volume-dir data="$work/volume" \
  -- /usr/bin/python3 || fail "attested run"
run "$kiln" run --session demo/shop --service app "${tee_args[@]}" --volume-dir data="$work/volume" \
  -- /usr/bin/python3 || fail "second attested run"

say "On disk the database is ciphertext: the order text appears nowhere in the volume."
run du -sh volume
if grep -rqa "customer record" volume; then fail "plaintext found in the volume"; fi
echo "grep 'customer record' volume/: no match"

say "A modified python3 (one byte appended) has another measurement: the CAS refuses it."
cp /usr/bin/python3 python3-modified && printf '\n' >> python3-modified
if run "$kiln" run --session demo/shop --service app "${tee_args[@]}" \
     --volume-dir data="$work/volume" -- "$work/python3-modified"; then
  fail "modified binary was accepted"
fi
echo "kiln-cas log says why (the client is only given a request id):"
grep 'attestation refused' cas.log | tail -1 | grep -o 'reason="[^"]*"' || fail "no refusal reason"

say "Every policy change and every secret release is in the CAS's signed, hash-chained audit log."
run "$kiln" audit verify --data cas || fail "audit verify"

# ---- part 2: volumes offline -------------------------------------------------
say "Offline volumes: create one; kiln generates a 32-byte key file (mode 0600)."
run "$kiln" fs init vol --key-file vol.key || fail "fs init"
secret="the launch code is 7-4-1-9 (kiln demo)"
printf '%s\n' "$secret" | run "$kiln" fs put vol notes/secret.txt --from - --key-file vol.key \
  || fail "fs put"
if grep -rqa -e "launch code" -e "secret.txt" vol; then fail "plaintext found on disk"; fi
echo "the secret and the file name appear nowhere under vol/"

say "A wrong key is refused with a clear error."
head -c 32 /dev/urandom > wrong.key
if run "$kiln" fs cat vol notes/secret.txt --key-file wrong.key; then fail "wrong key accepted"; fi

say "Flip one byte of the stored ciphertext: verify names the damaged file and chunk."
data=$(ls vol/.kiln | grep -E '^[0-9a-f]{32}$' | head -1)
printf '\x00' | dd of="vol/.kiln/$data" bs=1 seek=100 conv=notrunc status=none
if run "$kiln" fs verify vol --key-file vol.key; then fail "tampering not detected"; fi

printf '\ndemo: all %d steps behaved as described; stopping kiln-cas%s.\n' "$step" \
  "$([ "$tee" = host ] && echo " and kiln-las")"
