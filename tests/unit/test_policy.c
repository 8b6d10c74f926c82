/* Unit tests for src/policy: parsing, strict validation with exact messages,
 * canonical hash stability, substitution, access rules and decisions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

/* 2025-07-01T00:00:00Z: the real quotes' time (testdata/evidence/EXPECTED.md). */
#define NOW 1751328000
#define ID1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define ID2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define WM64 "abababababababababababababababababababababababababababababababab"

struct bad_case {
	const char *name;
	const char *yaml;
	const char *msg;
};

static const struct bad_case g_bad[] = {
	{ "unknown top key",
	  "name: x\nservices2: []\n",
	  "p.yaml:2:1: unknown key 'services2' in policy (did you mean 'services'?)" },
	{ "suggest top key",
	  "name: x\nsecrts: []\n",
	  "p.yaml:2:1: unknown key 'secrts' in policy (did you mean 'secrets'?)" },
	{ "suggest service key",
	  "name: x\nservices:\n  - name: s\n    comand: [x]\n",
	  "p.yaml:4:5: unknown key 'comand' in service (did you mean 'command'?)" },
	{ "missing name",
	  "secrets: []\n",
	  "p.yaml:1:1: policy: missing required key 'name'" },
	{ "bad name",
	  "name: \"/etc\"\n",
	  "p.yaml:1:7: name: '/etc' is not a valid policy name (letters, digits, '.', '_', '-', '"
	  "/'; at most 128)" },
	{ "name bool",
	  "name: true\n",
	  "p.yaml:1:7: name: expected a string, found a boolean" },
	{ "top not map",
	  "- a\n- b\n",
	  "p.yaml:1:1: policy: expected a mapping at the top level, found a list" },
	{ "empty",
	  "",
	  "p.yaml:1:1: policy is empty" },
	{ "anchor",
	  "name: &n x\n",
	  "p.yaml:1:7: YAML anchors are not allowed in policies" },
	{ "alias",
	  "name: x\naccess: {read: [owner], update: *a}\n",
	  "p.yaml:2:33: YAML aliases are not allowed in policies" },
	{ "tag",
	  "name: !!str x\n",
	  "p.yaml:1:7: YAML tags are not allowed in policies" },
	{ "two docs",
	  "name: x\n---\nname: y\n",
	  "p.yaml:2:1: more than one YAML document (one policy per file)" },
	{ "syntax",
	  "name: x\n  bad: indent\n",
	  "p.yaml:2:6: YAML syntax error: mapping values are not allowed in this context" },
	{ "dup key",
	  "name: x\nname: y\n",
	  "p.yaml:2:1: duplicate key 'name' in policy" },
	{ "dup secret",
	  "name: x\nsecrets:\n  - {name: a, kind: ascii}\n  - {name: a, kind: binary}\n",
	  "p.yaml:4:12: secrets: duplicate name 'a'" },
	{ "bad kind",
	  "name: x\nsecrets:\n  - {name: a, kind: acsii}\n",
	  "p.yaml:3:21: secret kind: unknown value 'acsii' (did you mean 'ascii'?)" },
	{ "bad kind2",
	  "name: x\nsecrets:\n  - {name: a, kind: password}\n",
	  "p.yaml:3:21: secret kind: unknown value 'password' (expected one of: ascii, binary, ke"
	  "y, x509, x509-ca)" },
	{ "missing kind",
	  "name: x\nsecrets:\n  - {name: a}\n",
	  "p.yaml:3:5: secret 'a': missing required key 'kind'" },
	{ "size type",
	  "name: x\nsecrets:\n  - {name: a, kind: ascii, size: big}\n",
	  "p.yaml:3:34: secret size: expected an integer, found 'big'" },
	{ "size range",
	  "name: x\nsecrets:\n  - {name: a, kind: ascii, size: 0}\n",
	  "p.yaml:3:34: secret size: 0 is out of range 1..4096" },
	{ "size on key",
	  "name: x\nsecrets:\n  - {name: a, kind: key, size: 3}\n",
	  "p.yaml:3:26: secret 'a': 'size' does not apply to kind key" },
	{ "bad alg",
	  "name: x\nsecrets:\n  - {name: a, kind: key, algorithm: p521}\n",
	  "p.yaml:3:37: secret algorithm: unknown value 'p521' (expected one of: p256, p384, ed25"
	  "519, rsa3072)" },
	{ "unknown issuer",
	  "name: x\nsecrets:\n  - {name: a, kind: x509, issuer: ca}\n",
	  "p.yaml:3:35: secret 'a': unknown issuer 'ca'" },
	{ "issuer not ca",
	  "name: x\nsecrets:\n  - {name: ca, kind: key}\n  - {name: a, kind: x509, issuer: ca}\n",
	  "p.yaml:4:35: secret 'a': issuer 'ca' is not an x509-ca secret (it is key)" },
	{ "bad ip",
	  "name: x\nsecrets:\n  - {name: a, kind: x509, ip: [300.1.1.1]}\n",
	  "p.yaml:3:32: secret ip: '300.1.1.1' is not an IP address" },
	{ "import no hash",
	  "name: x\nsecrets:\n  - {name: a, import: {session: y, secret: b}}\n",
	  "p.yaml:3:23: import: missing required key 'policy_hash' (the exporting policy's hash, "
	  "pinned)" },
	{ "import extra",
	  "name: x\nsecrets:\n  - {name: a, size: 3, import: {session: y, secret: b, policy_hash:"
	  " \"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}\n",
	  "p.yaml:3:15: secret 'a': 'size' does not apply to an imported secret" },
	{ "bad hash",
	  "name: x\npredecessor: sha256:abc\n",
	  "p.yaml:2:14: predecessor: expected 'sha256:' and 64 lowercase hex digits, found 'sha25"
	  "6:abc'" },
	{ "bad identity",
	  "name: x\naccess: {read: [alice]}\n",
	  "p.yaml:2:17: access read: expected 'owner' or an identity 'sha256:<64 hex>', found 'al"
	  "ice'" },
	{ "dangling ref",
	  "name: x\nsecrets:\n  - {name: pw, kind: ascii}\nservices:\n  - name: s\n    command: ["
	  "/bin/x, \"{{secret.pwd}}\"]\n    measurement: [any]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:6:23: command: unknown secret 'pwd' (did you mean 'pw'?)" },
	{ "dangling ref2",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x, \"{{secret.zzz}}\"]\n    measur"
	  "ement: [any]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:4:23: command: unknown secret 'zzz'" },
	{ "bad format",
	  "name: x\nsecrets:\n  - {name: pw, kind: ascii}\nservices:\n  - name: s\n    command: "
	  "[\"{{secret.pw.json}}\"]\n    measurement: [any]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:6:15: command: unknown format in '{{secret.pw.json}}' (expected hex, base64, pe"
	  "m, key or chain)" },
	{ "fmt kind",
	  "name: x\nsecrets:\n  - {name: pw, kind: ascii}\nservices:\n  - name: s\n    command: "
	  "[\"{{secret.pw.chain}}\"]\n    measurement: [any]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:6:15: command: format 'chain' does not apply to secret 'pw' of kind ascii" },
	{ "binary raw env",
	  "name: x\nsecrets:\n  - {name: b, kind: binary}\nservices:\n  - name: s\n    command: ["
	  "/bin/x]\n    environment: {B: \"{{secret.b}}\"}\n    measurement: [any]\nsecurity: {te"
	  "e: [sim]}\n",
	  "p.yaml:7:22: environment: binary secret 'b' needs .hex or .base64 here" },
	{ "unterminated",
	  "name: x\nservices:\n  - name: s\n    command: [\"{{secret.a\"]\n    measurement: [any"
	  "]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:4:15: command: unterminated '{{' (references look like {{secret.NAME}} or {{hos"
	  "t.NAME}})" },
	{ "bad ref",
	  "name: x\nservices:\n  - name: s\n    command: [\"{{env.HOME}}\"]\n    measurement: [an"
	  "y]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:4:15: command: bad reference '{{env.HOME}}' (expected {{secret.NAME}}, {{secret"
	  ".NAME.FORMAT}} or {{host.NAME}})" },
	{ "host not listed",
	  "name: x\nservices:\n  - name: s\n    command: [\"{{host.PORT}}\"]\n    measurement: [a"
	  "ny]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:4:15: command: {{host.PORT}} is not listed in service 's' host_env" },
	{ "unknown volume",
	  "name: x\nvolumes: [{name: data}]\nservices:\n  - name: s\n    command: [/bin/x]\n    m"
	  "ounts: [{volume: dta, path: /d}]\n    measurement: [any]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:6:23: mount: unknown volume 'dta' (did you mean 'data'?)" },
	{ "unknown volume2",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    mounts: [{volume: logs, pa"
	  "th: /d}]\n    measurement: [any]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:5:23: mount: unknown volume 'logs' (declare it under volumes)" },
	{ "rel path",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    files: [{path: etc/x, cont"
	  "ent: a}]\n    measurement: [any]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:5:20: file path: expected an absolute path, found 'etc/x'" },
	{ "bad mode",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    files: [{path: /x, content"
	  ": a, mode: \"0999\"}]\n    measurement: [any]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:5:42: file mode: expected an octal mode like \"0600\", found '0999'" },
	{ "no measurement",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:3:5: service 's': missing required key 'measurement' (a list of values printed "
	  "by 'kiln measure', or [any])" },
	{ "bad measurement",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [abc]\nsecuri"
	  "ty: {tee: [sim]}\n",
	  "p.yaml:5:19: measurement: expected 'any' or a measurement (64 or 96 hex digits), found"
	  " 'abc'" },
	{ "empty command",
	  "name: x\nservices:\n  - name: s\n    command: []\n    measurement: [any]\nsecurity: {t"
	  "ee: [sim]}\n",
	  "p.yaml:4:14: service 's' command: expected a non-empty list of strings" },
	{ "bad tee",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty: {tee: [sgx2]}\n",
	  "p.yaml:6:18: security tee: unknown value 'sgx2' (did you mean 'sgx'?)" },
	{ "dup tee",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty: {tee: [sim, sim]}\n",
	  "p.yaml:6:23: security tee: duplicate entry 'sim'" },
	{ "no tee",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty: {}\n",
	  "p.yaml:6:11: security: 'tee' must list at least one TEE (sim, host, sgx, tdx, snp) whe"
	  "n the policy has services" },
	{ "bad bool",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty: {tee: [sim], allow_insecure_sim: yes}\n",
	  "p.yaml:6:44: security allow_insecure_sim: expected true or false, found yes" },
	{ "bad tolerate",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty: {tee: [sim], tolerate: [debg]}\n",
	  "p.yaml:6:35: security tolerate: unknown value 'debg' (did you mean 'debug'?)" },
	{ "tolerate bad date",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty:\n  tee: [sgx]\n  tolerate:\n"
	  "    - {status: outdated-tcb, advisories: [], until: 2027-02-30}\n",
	  "p.yaml:9:53: security tolerate until: '2027-02-30' is not a date (YYYY-MM-DD, "
	  "UTC, from 2000)" },
	{ "tolerate unknown status",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty:\n  tee: [sgx]\n  tolerate:\n"
	  "    - {status: outdated, advisories: [], until: 2027-03-31}\n",
	  "p.yaml:9:16: security tolerate status: unknown value 'outdated' (expected one of: "
	  "debug, outdated-tcb, sw-hardening-needed, configuration-needed)" },
	{ "tolerate bad advisory",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty:\n  tee: [sgx]\n  tolerate:\n"
	  "    - {status: outdated-tcb, advisories: [intel-sa-00615], until: 2027-03-31}"
	  "\n",
	  "p.yaml:9:43: security tolerate advisories: 'intel-sa-00615' is not an advisory"
	  " ID (like INTEL-SA-00615: upper-case letters, -SA-, digits)" },
	{ "tolerate no until",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty:\n  tee: [sgx]\n  tolerate:\n"
	  "    - {status: outdated-tcb, advisories: []}\n",
	  "p.yaml:9:7: security tolerate entry: missing required key 'until' (the last da"
	  "y it applies, YYYY-MM-DD UTC; a plain 'outdated-tcb' item tolerates with no en"
	  "d)" },
	{ "tolerate no advisories",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty:\n  tee: [sgx]\n  tolerate:\n"
	  "    - {status: outdated-tcb, until: 2027-03-31}\n",
	  "p.yaml:9:7: security tolerate entry: missing required key 'advisories' (every "
	  "advisory ID of the tolerated TCB level, or [] for none)" },
	{ "tolerate debug entry",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty:\n  tee: [sgx]\n  tolerate:\n"
	  "    - {status: debug, advisories: [], until: 2027-03-31}\n",
	  "p.yaml:9:16: security tolerate status: 'debug' is not a TCB status and has no "
	  "advisories: list it as a plain item (tolerate: [debug])" },
	{ "tolerate unknown key",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty:\n  tee: [sgx]\n  tolerate:\n"
	  "    - {status: outdated-tcb, advisories: [], until: 2027-03-31, from: 2026-01-"
	  "01}\n",
	  "p.yaml:9:65: unknown key 'from' in security tolerate entry" },
	{ "tolerate plain and entry",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty:\n  tee: [sgx]\n  tolerate:\n"
	  "    - outdated-tcb\n    - {status: outdated-tcb, advisories: [], until: 2027-0"
	  "3-31}\n",
	  "p.yaml:9:5: security tolerate: 'outdated-tcb' is listed both plainly (any advi"
	  "sories, no end date) and as an entry with advisories and until: keep one" },
	{ "tolerate dup entry",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\nsecuri"
	  "ty:\n  tee: [sgx]\n  tolerate:\n"
	  "    - {status: outdated-tcb, advisories: [INTEL-SA-1, INTEL-SA-2], until: 2027"
	  "-03-31}\n    - {status: outdated-tcb, advisories: [INTEL-SA-2, INTEL-SA-1], un"
	  "til: 2027-03-31}\n",
	  "p.yaml:10:7: security tolerate: duplicate entry for 'outdated-tcb'" },
	{ "dup service",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [any]\n  - na"
	  "me: s\n    command: [/bin/y]\n    measurement: [any]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:6:11: services: duplicate name 's'" },
	{ "env name",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    environment: {1X: a}\n    "
	  "measurement: [any]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:5:19: environment: '1X' is not a valid environment variable name" },
	{ "list type",
	  "name: x\nvolumes: {name: data}\n",
	  "p.yaml:2:10: volumes: expected a list, found a mapping" },
	{ "one-character charset",
	  "name: x\nsecrets:\n  - {name: a, kind: ascii, charset: \"a\", size: 4096}\n",
	  "p.yaml:3:48: secret 'a': a charset of one character gives a secret anybody can guess "
	  "(at least 64 bits of entropy are needed)" },
	{ "low entropy ascii",
	  "name: x\nsecrets:\n  - {name: a, kind: ascii, size: 10}\n",
	  "p.yaml:3:34: secret 'a': 10 characters from 62 possible give 59 bits of entropy, "
	  "fewer than 64: make size at least 11" },
	{ "low entropy binary",
	  "name: x\nsecrets:\n  - {name: a, kind: binary, size: 7}\n",
	  "p.yaml:3:35: secret 'a': 7 bytes from 256 possible give 56 bits of entropy, fewer "
	  "than 64: make size at least 8" },
	{ "charset repeats",
	  "name: x\nsecrets:\n  - {name: a, kind: ascii, charset: \"abca\"}\n",
	  "p.yaml:3:37: secret charset: 'a' appears twice" },
	{ "any with measurements",
	  "name: x\nservices:\n  - name: s\n    command: [/bin/x]\n    measurement: [\"" WM64
	  "\", any]\nsecurity: {tee: [sim]}\n",
	  "p.yaml:5:87: measurement: 'any' accepts every program, so the other values say "
	  "nothing: list [any] or measurements, not both" },
	{ "export by name alone",
	  "name: x\nsecrets:\n  - name: a\n    kind: ascii\n    export:\n"
	  "      - {session: alice/w}\n",
	  "p.yaml:6:9: secret 'a': export to 'alice/w' names only a policy, which anybody may "
	  "create first: add 'owner: sha256:<id>' (the importer owner's identity, 'kiln identity "
	  "show') or 'policy_hash: sha256:<hash>' (the importer's version)" },
	{ "export owner not an id",
	  "name: x\nsecrets:\n  - {name: a, kind: ascii, export: [{session: b, owner: alice}]}\n",
	  "p.yaml:3:57: export owner: expected 'sha256:' and 64 lowercase hex digits, found "
	  "'alice'" },
	{ "export measurement any",
	  "name: x\nsecrets:\n  - {name: a, kind: ascii, export: [{session: b, owner: \"" ID1
	  "\", measurement: [any]}]}\n",
	  "p.yaml:3:146: export measurement: 'any' is the default (leave measurement out); list "
	  "measurements (64 or 96 hex digits) to restrict the importer" },
	{ "export measurement empty",
	  "name: x\nsecrets:\n  - {name: a, kind: ascii, export: [{session: b, owner: \"" ID1
	  "\", measurement: []}]}\n",
	  "p.yaml:3:145: export measurement: empty list (leave it out to accept the importer's own "
	  "measurement rules)" },
	{ "quorum require 0",
	  "name: x\naccess:\n  update: {require: 0, of: [owner]}\n",
	  "p.yaml:3:21: access update: 0 is out of range 1..4294967295" },
	{ "quorum require above of",
	  "name: x\naccess:\n  update: {require: 3, of: [owner, \"" ID1 "\"]}\n",
	  "p.yaml:3:21: access update: require 3 is more than the 2 identities in 'of' (it "
	  "could never be met)" },
	{ "quorum duplicate identity",
	  "name: x\naccess:\n  read: {require: 1, of: [\"" ID1 "\", \"" ID1 "\"]}\n",
	  "p.yaml:3:102: access read: duplicate entry '" ID1 "'" },
	{ "quorum missing of",
	  "name: x\naccess:\n  update: {require: 1}\n",
	  "p.yaml:3:11: access update: missing required key 'of' (the identities that approve)" },
	{ "quorum missing require",
	  "name: x\naccess:\n  update: {of: [owner]}\n",
	  "p.yaml:3:11: access update: missing required key 'require' (how many of 'of' must "
	  "approve)" },
	{ "quorum empty of",
	  "name: x\naccess:\n  delete: {require: 1, of: []}\n",
	  "p.yaml:3:28: access delete: 'of' is empty (nobody could ever approve)" },
	{ "quorum bad identity",
	  "name: x\naccess:\n  update: {require: 1, of: [bob]}\n",
	  "p.yaml:3:29: access update: expected 'owner' or an identity 'sha256:<64 hex>', found "
	  "'bob'" },
	{ "quorum unknown key",
	  "name: x\naccess:\n  update: {require: 1, of: [owner], off: []}\n",
	  "p.yaml:3:37: unknown key 'off' in access update (did you mean 'of'?)" },
	{ "quorum scalar",
	  "name: x\naccess:\n  update: owner\n",
	  "p.yaml:3:11: access update: expected a list of identities or {require: M, of: "
	  "[identity, ...]}, found a scalar" },
	{ "delete empty",
	  "name: x\naccess:\n  delete: []\n",
	  "p.yaml:3:11: access delete: empty list (leave it out and the update rule applies)" },
	{ "export quorum without to",
	  "name: x\nsecrets:\n  - {name: s, kind: binary, export: {require: 1, of: [owner]}}\n",
	  "p.yaml:3:37: secret export: missing required key 'to' (the export entries, possibly "
	  "[])" },
	{ "export quorum require above of",
	  "name: x\nsecrets:\n  - {name: s, kind: binary, export: {require: 2, of: [owner], "
	  "to: []}}\n",
	  "p.yaml:3:47: secret export: require 2 is more than the 1 identities in 'of' (it "
	  "could never be met)" },
	{ "owners unknown section",
	  "name: x\nowners: {secret: [owner]}\n",
	  "p.yaml:2:10: unknown key 'secret' in owners (did you mean 'secrets'?)" },
	{ "owners empty",
	  "name: x\nowners: {security: []}\n",
	  "p.yaml:2:20: owners security: empty list (leave it out and access.update alone "
	  "governs the section)" },
	{ "export scalar",
	  "name: x\nsecrets:\n  - {name: s, kind: binary, export: all}\n",
	  "p.yaml:3:37: secret export: expected a list or {require: M, of: [identity, ...], to: "
	  "[entries]}, found a scalar" },
	{ "deep",
	  "name: x\nsecrets: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
	  "]]]]]]]]]]]]\n",
	  "p.yaml:2:25: policy is nested too deeply" },

};

static void test_malformed(void **state)
{
	for (size_t i = 0; i < sizeof(g_bad) / sizeof(g_bad[0]); i++) {
		struct kiln_err err = { 0 };
		struct pol_policy *p = (struct pol_policy *)1;
		int ret = pol_parse(g_bad[i].yaml, strlen(g_bad[i].yaml), "p.yaml", &p, &err);

		if (ret != -KILN_EFORMAT || strcmp(err.msg, g_bad[i].msg) != 0)
			fail_msg("case '%s': got %d '%s', expected '%s'", g_bad[i].name, ret,
				 err.msg, g_bad[i].msg);
		assert_null(p);
	}
}

static const char g_good[] =
	"name: acme/db\n"
	"predecessor: null\n"
	"access:\n"
	"  read: [owner]\n"
	"  update: [owner]\n"
	"secrets:\n"
	"  - {name: db_password, kind: ascii, size: 24}\n"
	"  - {name: ca, kind: x509-ca}\n"
	"  - {name: tls, kind: x509, issuer: ca, dns: [db.acme.internal]}\n"
	"  - {name: raw, kind: binary, export: [{session: acme/app, owner: \"" ID1 "\"}]}\n"
	"volumes:\n"
	"  - {name: data}\n"
	"services:\n"
	"  - name: db\n"
	"    command: [/usr/bin/sqlite3, /data/app.db]\n"
	"    environment: {DB_PASSWORD: \"{{secret.db_password}}\", PORT: 5432}\n"
	"    files:\n"
	"      - {path: /etc/app/tls.pem, content: \"{{secret.tls.pem}}\", mode: \"0640\"}\n"
	"    mounts:\n"
	"      - {volume: data, path: /data}\n"
	"    measurement: [any]\n"
	"security:\n"
	"  tee: [host, sim]\n"
	"  allow_insecure_sim: false\n"
	"  tolerate: []\n"
	"  ignore_advisories: []\n";

/* The same policy: keys and entries reordered, block/flow style swapped,
 * defaults spelled out, comments and quoting changed. */
static const char g_good_reordered[] =
	"# reordered\n"
	"security: {ignore_advisories: [], tee: [sim, host]}\n"
	"services:\n"
	"  - measurement: [\"any\"]\n"
	"    mounts: [{path: /data, volume: data}]\n"
	"    files:\n"
	"      - mode: 0640\n"
	"        content: '{{secret.tls.pem}}'\n"
	"        path: /etc/app/tls.pem\n"
	"    environment:\n"
	"      PORT: \"5432\"\n"
	"      DB_PASSWORD: '{{secret.db_password}}'\n"
	"    pwd: /\n"
	"    command:\n"
	"      - /usr/bin/sqlite3\n"
	"      - /data/app.db\n"
	"    name: db\n"
	"volumes: [{name: data}]\n"
	"secrets:\n"
	"  - {name: raw, kind: binary, size: 32,\n"
	"     export: [{owner: \"" ID1 "\", session: acme/app, policy_hash: ~}]}\n"
	"  - {name: tls, dns: [db.acme.internal], issuer: ca, kind: x509, validity_days: 365}\n"
	"  - {kind: x509-ca, name: ca, algorithm: p256}\n"
	"  - {name: db_password, size: 24, kind: ascii}\n"
	"name: \"acme/db\"\n";

static struct pol_policy *parse_ok(const char *yaml)
{
	struct kiln_err err = { 0 };
	struct pol_policy *p = NULL;
	int ret = pol_parse(yaml, strlen(yaml), "p.yaml", &p, &err);

	if (ret != 0)
		fail_msg("parse failed: %s", err.msg);
	return p;
}

static void test_good(void **state)
{
	struct pol_policy *p = parse_ok(g_good);
	const struct pol_service *svc;
	const struct pol_secret *s;

	assert_string_equal(p->name, "acme/db");
	assert_null(p->predecessor);
	assert_int_equal(p->n_secrets, 4);
	s = pol_find_secret(p, "db_password");
	assert_non_null(s);
	assert_int_equal(s->kind, POL_SECRET_ASCII);
	assert_int_equal(s->size, 24);
	s = pol_find_secret(p, "tls");
	assert_int_equal(s->kind, POL_SECRET_X509);
	assert_string_equal(s->issuer, "ca");
	assert_int_equal(s->validity_days, 365);
	assert_int_equal(pol_find_secret(p, "ca")->validity_days, 3650);
	assert_int_equal(pol_find_secret(p, "raw")->n_exports, 1);
	assert_null(pol_find_secret(p, "nope"));
	svc = pol_find_service(p, "db");
	assert_non_null(svc);
	assert_int_equal(svc->n_command, 2);
	assert_string_equal(svc->pwd, "/");
	assert_int_equal(svc->files[0].mode, 0640);
	assert_string_equal(svc->env[1].value, "5432");
	assert_int_equal(p->tee, POL_TEE_HOST | POL_TEE_SIM);
	assert_false(p->allow_insecure_sim);
	assert_int_equal(strlen(p->hash), 71);
	assert_memory_equal(p->hash, "sha256:", 7);
	pol_free(p);
}

static void test_hash_stable(void **state)
{
	struct pol_policy *a = parse_ok(g_good), *b = parse_ok(g_good_reordered), *c;
	char *changed = strdup(g_good);
	char *ta = pol_canonical_text(a), *tb = pol_canonical_text(b);

	assert_string_equal(ta, tb);
	assert_string_equal(a->hash, b->hash);
	/* One character of difference changes the hash. */
	memcpy(strstr(changed, "size: 24"), "size: 25", 8);
	c = parse_ok(changed);
	assert_string_not_equal(a->hash, c->hash);
	free(ta);
	free(tb);
	free(changed);
	pol_free(a);
	pol_free(b);
	pol_free(c);
}

static void test_limits(void **state)
{
	struct kiln_err err = { 0 };
	struct pol_policy *p = NULL;
	size_t big = POL_MAX_INPUT_SIZE + 1;
	char *text = malloc(big);
	/* The classic exponential alias expansion ("billion laughs"). */
	static const char laughs[] =
		"a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
		"b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
		"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
		"d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n";

	memset(text, ' ', big);
	assert_int_equal(pol_parse(text, big, "big.yaml", &p, &err), -EFBIG);
	assert_string_equal(err.msg, "big.yaml: policy is larger than 1048576 bytes");
	free(text);
	assert_int_equal(pol_parse(laughs, strlen(laughs), "l.yaml", &p, &err), -KILN_EFORMAT);
	assert_string_equal(err.msg, "l.yaml:1:4: YAML anchors are not allowed in policies");
	assert_int_equal(pol_parse("name: x\0y", 9, "n.yaml", &p, &err), -KILN_EFORMAT);
	assert_string_equal(err.msg, "n.yaml: policy contains a NUL byte");
	assert_null(p);
}

static int resolve(void *ctx, bool host, const char *name, enum pol_fmt fmt, uint8_t **out,
		   size_t *out_size, struct kiln_err *err)
{
	char buf[128];
	int n;

	if (!strcmp(name, "fail"))
		return kiln_err_set(err, -KILN_EDENIED, "secret 'fail' refused");
	if (!strcmp(name, "nul")) {
		*out = malloc(3);
		memcpy(*out, "a\0b", 3);
		*out_size = 3;
		return 0;
	}
	n = snprintf(buf, sizeof(buf), "<%s:%s:%d>", host ? "host" : "secret", name, (int)fmt);
	*out = (uint8_t *)strdup(buf);
	*out_size = (size_t)n;
	return 0;
}

static void test_substitute(void **state)
{
	struct kiln_err err = { 0 };
	char *out;
	size_t size;

	assert_int_equal(pol_substitute("a {{secret.pw}} b {{ secret.tls.chain }}{{host.PORT}}",
					resolve, NULL, false, &out, &size, &err), 0);
	assert_string_equal(out, "a <secret:pw:0> b <secret:tls:5><host:PORT:0>");
	assert_int_equal(size, strlen(out));
	free(out);
	assert_int_equal(pol_substitute("{{secret.x.hex}}{{secret.x.base64}}{{secret.x.pem}}"
					"{{secret.x.key}}", resolve, NULL, false, &out, &size,
					&err), 0);
	assert_string_equal(out, "<secret:x:1><secret:x:2><secret:x:3><secret:x:4>");
	free(out);
	assert_int_equal(pol_substitute("plain", resolve, NULL, false, &out, &size, &err), 0);
	assert_string_equal(out, "plain");
	free(out);
	assert_int_equal(pol_substitute("x{{secret.nul}}", resolve, NULL, true, &out, &size,
					&err), 0);
	assert_int_equal(size, 4);
	assert_memory_equal(out, "xa\0b", 4);
	free(out);
	assert_int_equal(pol_substitute("x{{secret.nul}}", resolve, NULL, false, &out, &size,
					&err), -KILN_EFORMAT);
	assert_null(out);
	assert_string_equal(err.msg, "secret 'nul' contains a NUL byte and cannot go into argv "
			    "or the environment");
	assert_int_equal(pol_substitute("{{secret.fail}}", resolve, NULL, false, &out, &size,
					&err), -KILN_EDENIED);
	assert_int_equal(pol_substitute("{{secret.x", resolve, NULL, false, &out, &size, &err),
			 -KILN_EFORMAT);
}

static const char g_decide_policy[] =
	"name: d\n"
	"services:\n"
	"  - name: any\n"
	"    command: [/bin/true]\n"
	"    measurement: [any]\n"
	"  - name: pinned\n"
	"    command: [/bin/true]\n"
	"    measurement: [AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAA]\n"
	"security:\n"
	"  tee: [sim, sgx]\n"
	"  allow_insecure_sim: @SIM@\n"
	"  tolerate: [@TOL@]\n"
	"  ignore_advisories: [INTEL-SA-00615]\n";

static struct pol_policy *decide_policy(const char *sim, const char *tol)
{
	char buf[1024];
	char *p = buf;
	const char *s = g_decide_policy;

	while (*s) {
		if (!strncmp(s, "@SIM@", 5)) {
			p += sprintf(p, "%s", sim);
			s += 5;
		} else if (!strncmp(s, "@TOL@", 5)) {
			p += sprintf(p, "%s", tol);
			s += 5;
		} else {
			*p++ = *s++;
		}
	}
	*p = '\0';
	return parse_ok(buf);
}

static int decide(const struct pol_policy *p, const char *svc, const char *claims_json,
		  char *reason, const char **label)
{
	json_t *claims = json_loads(claims_json, 0, NULL);
	int ret;

	assert_non_null(claims);
	ret = pol_decide(p, pol_find_service(p, svc), claims, NOW, reason, 256, label);
	json_decref(claims);
	return ret;
}

#define WM_OK "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""
#define WM_BAD "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" \
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\""

static void test_decide(void **state)
{
	struct pol_policy *nosim = decide_policy("false", "");
	struct pol_policy *sim = decide_policy("true", "");
	struct pol_policy *tol = decide_policy("false", "debug, outdated-tcb");
	char reason[256];
	const char *label;

	assert_int_equal(decide(sim, "any", "{\"tee\":\"sim\",\"insecure\":true,\"debug\":true}",
				reason, &label), 0);
	assert_int_equal(decide(nosim, "any", "{\"tee\":\"sim\",\"insecure\":true,\"debug\":true}",
				reason, &label), -KILN_EINSECURE);
	assert_string_equal(label, "sim_not_allowed");
	assert_string_equal(reason, "insecure tee \"sim\" (sim) not allowed: "
			    "security.allow_insecure_sim is false");
	assert_int_equal(decide(sim, "any", "{\"tee\":\"host\"}", reason, &label), -KILN_EPOLICY);
	assert_string_equal(label, "tee_not_allowed");
	assert_string_equal(reason, "tee \"host\" not in security.tee [sim, sgx]");
	assert_int_equal(decide(sim, "any", "{}", reason, &label), -KILN_EPOLICY);
	assert_string_equal(reason, "claims lack 'tee'");
	assert_int_equal(decide(nosim, "any", "{\"tee\":\"sgx\",\"debug\":true}", reason, &label),
			 -KILN_EPOLICY);
	assert_string_equal(label, "debug_not_tolerated");
	assert_string_equal(reason, "claims.debug is true and security.tolerate lacks 'debug'");
	assert_int_equal(decide(tol, "any", "{\"tee\":\"sgx\",\"debug\":true}", reason, &label), 0);
	assert_int_equal(decide(nosim, "any", "{\"tee\":\"sgx\",\"tcb_status\":\"UpToDate\"}",
				reason, &label), 0);
	assert_int_equal(decide(nosim, "any", "{\"tee\":\"sgx\",\"tcb_status\":\"OutOfDate\"}",
				reason, &label), -KILN_ETCB);
	assert_string_equal(label, "tcb_not_tolerated");
	assert_string_equal(reason, "claims.tcb_status \"OutOfDate\" needs security.tolerate "
			    "[outdated-tcb]");
	assert_int_equal(decide(nosim, "any", "{\"tee\":\"sgx\",\"tcb_status\":"
				"\"ConfigurationAndSWHardeningNeeded\"}", reason, &label),
			 -KILN_ETCB);
	assert_string_equal(reason, "claims.tcb_status \"ConfigurationAndSWHardeningNeeded\" "
			    "needs security.tolerate [sw-hardening-needed, configuration-needed]");
	assert_int_equal(decide(tol, "any", "{\"tee\":\"sgx\",\"tcb_status\":\"OutOfDate\"}",
				reason, &label), 0);
	assert_int_equal(decide(tol, "any", "{\"tee\":\"sgx\",\"tcb_status\":"
				"\"OutOfDateConfigurationNeeded\"}", reason, &label), -KILN_ETCB);
	assert_string_equal(reason, "claims.tcb_status \"OutOfDateConfigurationNeeded\" needs "
			    "security.tolerate [configuration-needed]");
	assert_int_equal(decide(tol, "any", "{\"tee\":\"sgx\",\"tcb_status\":\"Revoked\"}",
				reason, &label), -KILN_ETCB);
	assert_string_equal(reason, "claims.tcb_status \"Revoked\" is never accepted");
	assert_int_equal(decide(nosim, "any", "{\"tee\":\"sgx\",\"advisories\":"
				"[\"INTEL-SA-00615\"]}", reason, &label), 0);
	assert_int_equal(decide(nosim, "any", "{\"tee\":\"sgx\",\"advisories\":"
				"[\"INTEL-SA-00615\",\"INTEL-SA-00828\"]}", reason, &label),
			 -KILN_ETCB);
	assert_string_equal(label, "advisory_not_ignored");
	assert_string_equal(reason, "claims.advisories has \"INTEL-SA-00828\" which is not in "
			    "security.ignore_advisories");
	assert_int_equal(decide(sim, "pinned", "{\"tee\":\"sim\",\"workload_measurement\":"
				WM_OK "}", reason, &label), 0);
	assert_int_equal(decide(sim, "pinned", "{\"tee\":\"sim\",\"workload_measurement\":"
				WM_BAD "}", reason, &label), -KILN_EMEASUREMENT);
	assert_string_equal(label, "wrong_measurement");
	assert_string_equal(reason, "claims.workload_measurement bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
			    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
			    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb not in "
			    "service 'pinned' measurement");
	assert_int_equal(decide(nosim, "pinned", "{\"tee\":\"sgx\",\"platform_measurement\":"
				WM_OK "}", reason, &label), 0);
	assert_int_equal(decide(nosim, "pinned", "{\"tee\":\"sgx\"}", reason, &label),
			 -KILN_EMEASUREMENT);
	pol_free(nosim);
	pol_free(sim);
	pol_free(tol);
}

static void test_access(void **state)
{
	static const char yaml[] =
		"name: a\n"
		"access:\n"
		"  read: [sha256:11111111111111111111111111111111"
		"11111111111111111111111111111111]\n"
		"  update: [owner]\n";
	static const char owner[] =
		"sha256:0000000000000000000000000000000000000000000000000000000000000000";
	static const char reader[] =
		"sha256:1111111111111111111111111111111111111111111111111111111111111111";
	static const char stranger[] =
		"sha256:2222222222222222222222222222222222222222222222222222222222222222";
	struct pol_policy *p = parse_ok(yaml);

	assert_true(pol_may_read(p, owner, owner));
	assert_true(pol_may_update(p, owner, owner));
	assert_true(pol_may_read(p, owner, reader));
	assert_false(pol_may_update(p, owner, reader));
	assert_false(pol_may_read(p, owner, stranger));
	assert_false(pol_may_update(p, owner, stranger));
	assert_false(pol_may_read(p, owner, NULL));
	pol_free(p);
}

/* A policy with an export by name alone, as stored by kiln before exports had to be
 * bound; its hash as that kiln computed it. */
static const char g_old_export[] =
	"name: acme/keys\n"
	"secrets:\n"
	"  - {name: api, kind: ascii, export: [{session: beta/app}, {session: beta/x, "
	"policy_hash: \"" ID1 "\"}]}\n";
#define OLD_EXPORT_HASH "sha256:a13ff938d669666589ab04d5e3d65189d2e7897a6a86dda17447edfe5b788182"

static void test_exports_bound_to_owner_or_hash(void **state)
{
	static const char yaml[] =
		"name: acme/keys\n"
		"secrets:\n"
		"  - name: api\n"
		"    kind: ascii\n"
		"    export:\n"
		"      - {session: alice/w, owner: \"" ID1 "\"}\n"
		"      - {session: bob/w, policy_hash: \"" ID2 "\"}\n"
		"      - {session: carol/w, owner: \"" ID1 "\", policy_hash: \"" ID2 "\",\n"
		"         measurement: [" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA]}\n";
	struct pol_policy *p = parse_ok(yaml), *old;
	const struct pol_secret *api = pol_find_secret(p, "api");
	struct kiln_err err = { 0 };

	/* owner-bound: any version of alice/w, but only when ID1 owns it */
	assert_ptr_equal(pol_export_find(api, "alice/w", ID2, ID1), &api->exports[0]);
	assert_null(pol_export_find(api, "alice/w", ID2, ID2));
	assert_null(pol_export_find(api, "alice/w", ID2, NULL));
	/* hash-bound: whoever owns bob/w, but only that version */
	assert_ptr_equal(pol_export_find(api, "bob/w", ID2, ID1), &api->exports[1]);
	assert_null(pol_export_find(api, "bob/w", ID1, ID1));
	/* both */
	assert_ptr_equal(pol_export_find(api, "carol/w", ID2, ID1), &api->exports[2]);
	assert_null(pol_export_find(api, "carol/w", ID2, ID2));
	assert_null(pol_export_find(api, "carol/w", ID1, ID1));
	assert_null(pol_export_find(api, "dave/w", ID2, ID1));
	assert_string_equal(api->exports[2].measurement[0], "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	pol_free(p);

	/* What an older kiln stored stays readable, with the same hash, and its
	 * name-only export matches nobody. */
	assert_int_equal(pol_parse(g_old_export, strlen(g_old_export), "p.yaml", &old, &err),
			 -KILN_EFORMAT);
	assert_int_equal(pol_parse_ex(g_old_export, strlen(g_old_export), "p.yaml",
				      POL_PARSE_STORED, &old, &err), 0);
	assert_string_equal(old->hash, OLD_EXPORT_HASH);
	api = pol_find_secret(old, "api");
	assert_null(pol_export_find(api, "beta/app", ID1, ID1));
	assert_ptr_equal(pol_export_find(api, "beta/x", ID1, ID2), &api->exports[1]);
	pol_free(old);
}

static void test_decide_export_applies_exporter_rules(void **state)
{
	static const char yaml[] =
		"name: acme/keys\n"
		"secrets:\n"
		"  - name: api\n"
		"    kind: ascii\n"
		"    export:\n"
		"      - {session: w, owner: \"" ID1 "\"}\n"
		"      - {session: m, owner: \"" ID1 "\", measurement: [" "aaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]}\n"
		"security: {tee: [sgx]}\n";
	struct pol_policy *p = parse_ok(yaml);
	const struct pol_secret *api = pol_find_secret(p, "api");
	json_t *sim = json_pack("{s:s,s:b}", "tee", "sim", "insecure", 1);
	json_t *sgx_ok = json_pack("{s:s,s:s}", "tee", "sgx", "workload_measurement",
				   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	json_t *sgx_other = json_pack("{s:s,s:s}", "tee", "sgx", "workload_measurement",
				      "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
				      "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	char reason[512];
	const char *label;

	assert_int_equal(pol_decide_export(p, &api->exports[0], sim, NOW, reason, sizeof(reason),
					   &label), -KILN_EPOLICY);
	assert_string_equal(label, "export_refused");
	assert_string_equal(reason, "exporting policy 'acme/keys' refuses: tee \"sim\" not in "
			    "security.tee [sgx]");
	assert_int_equal(pol_decide_export(p, &api->exports[0], sgx_other, NOW, reason,
					   sizeof(reason), &label), 0);
	assert_int_equal(pol_decide_export(p, &api->exports[1], sgx_ok, NOW, reason, sizeof(reason),
					   &label), 0);
	assert_int_equal(pol_decide_export(p, &api->exports[1], sgx_other, NOW, reason,
					   sizeof(reason), &label), -KILN_EMEASUREMENT);
	assert_string_equal(label, "export_refused");
	assert_string_equal(reason, "exporting policy 'acme/keys' refuses: claims.workload_"
			    "measurement bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
			    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb not in the "
			    "measurement of its export to 'm'");
	json_decref(sim);
	json_decref(sgx_ok);
	json_decref(sgx_other);
	pol_free(p);
}

static void test_co_updater_cannot_remove_owner_update_access(void **state)
{
	struct pol_policy *cur = parse_ok("name: a\naccess: {update: [owner, \"" ID2 "\"]}\n");
	struct pol_policy *drop = parse_ok("name: a\naccess: {update: [\"" ID2 "\"]}\n");
	struct pol_policy *keep = parse_ok("name: a\naccess: {update: [\"" ID1 "\", \"" ID2
					   "\"]}\n");
	const char *by1[] = { ID1 }, *by2[] = { ID2 };
	char why[POL_WHY_SIZE];

	/* ID1 owns it; ID2 may update it */
	assert_int_equal(pol_may_apply(cur, keep, ID1, by2, 1, why, sizeof(why)), 0);
	assert_int_equal(pol_may_apply(cur, drop, ID1, by2, 1, why, sizeof(why)), -KILN_EDENIED);
	assert_string_equal(why, "only the owner may remove the owner's update access");
	assert_int_equal(pol_may_apply(cur, drop, ID1, by1, 1, why, sizeof(why)), 0);
	assert_int_equal(pol_may_apply(drop, keep, ID1, by1, 1, why, sizeof(why)), -KILN_EDENIED);
	assert_string_equal(why, ""); /* no update access at all: nothing more is learned */
	pol_free(cur);
	pol_free(drop);
	pol_free(keep);
}

#define ID3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define ID4 "sha256:4444444444444444444444444444444444444444444444444444444444444444"

/* A read quorum has no approval path: parsed (stored versions stay loadable),
 * refused for a new version, naming the rule. */
static void test_read_quorum_refused_for_new_versions(void **state)
{
	struct pol_policy *p = parse_ok("name: a\naccess:\n  read: {require: 2, of: [\"" ID4
					"\", owner]}\n");
	struct pol_policy *ok = parse_ok("name: a\naccess:\n  read: [\"" ID4 "\", owner]\n");
	char why[POL_WHY_SIZE];

	(void)state;
	assert_int_equal(pol_check_new(p, why, sizeof(why)), -KILN_EFORMAT);
	assert_non_null(strstr(why, "access.read needs 2 of [" ID4 ", owner], but a read is one "
				    "request by one identity"));
	assert_int_equal(pol_check_new(ok, why, sizeof(why)), 0);
	pol_free(p);
	pol_free(ok);
}

/* 2 of 3 for updates: the owner alone may not; a read quorum lets nobody read
 * alone but the update's approvers; delete falls back to the update rule. */
static void test_quorum_rules(void **state)
{
	struct pol_policy *cur = parse_ok("name: a\naccess:\n  read: {require: 2, of: [\"" ID4
					  "\", owner]}\n  update: {require: 2, of: [owner, \"" ID2
					  "\", \"" ID3 "\"]}\n");
	struct pol_policy *next = parse_ok("name: a\naccess: {update: [owner]}\n");
	struct pol_policy *lockout = parse_ok("name: a\naccess: {update: [\"" ID2 "\"]}\n");
	const char *owner_only[] = { ID1 }, *owner_twice[] = { ID1, ID1 };
	const char *owner_and_2[] = { ID1, ID2 }, *two_and_3[] = { ID2, ID3 };
	const char *stranger[] = { ID4, ID2, ID3 };
	char why[POL_WHY_SIZE];

	(void)state;
	assert_true(pol_may_update(cur, ID1, ID2));
	assert_true(pol_may_read(cur, ID1, ID2));  /* approves updates: reads them */
	assert_false(pol_may_read(cur, ID1, ID4)); /* the read rule needs 2 */
	assert_int_equal(pol_rule_count(&cur->update, ID1, owner_twice, 2), 1);
	assert_int_equal(pol_may_apply(cur, next, ID1, owner_only, 1, why, sizeof(why)),
			 -KILN_EDENIED);
	assert_non_null(strstr(why, "access.update needs 2 of [owner, " ID2 ", " ID3
				    "]; this request has 1 (" ID1 ")"));
	assert_int_equal(pol_may_apply(cur, next, ID1, owner_twice, 2, why, sizeof(why)),
			 -KILN_EDENIED);
	assert_int_equal(pol_may_apply(cur, next, ID1, owner_and_2, 2, why, sizeof(why)), 0);
	/* 2 and 3 agree, but next takes the owner's update access away */
	assert_int_equal(pol_may_apply(cur, lockout, ID1, two_and_3, 2, why, sizeof(why)),
			 -KILN_EDENIED);
	assert_string_equal(why, "only the owner may remove the owner's update access");
	/* a caller outside the rule learns nothing, whatever approvals it carries */
	assert_int_equal(pol_may_apply(cur, next, ID1, stranger, 3, why, sizeof(why)),
			 -KILN_EDENIED);
	assert_string_equal(why, "");
	assert_int_equal(pol_may_delete(cur, ID1, owner_only, 1, why, sizeof(why)),
			 -KILN_EDENIED);
	assert_non_null(strstr(why, "access.update (there is no access.delete) needs 2 of"));
	assert_int_equal(pol_may_delete(cur, ID1, two_and_3, 2, why, sizeof(why)), 0);
	pol_free(cur);
	pol_free(next);
	pol_free(lockout);
}

/* A quorum-governed export: adding an entry, dropping the rule or the secret
 * needs the export's quorum besides access.update; other changes do not. */
static void test_quorum_export(void **state)
{
	static const char head[] = "name: a\naccess: {update: [owner, \"" ID2 "\"]}\nsecrets:\n";
	char buf[1024];
	struct pol_policy *cur, *more, *plain, *gone, *other;
	const char *by2[] = { ID2 }, *by2_3[] = { ID2, ID3 };
	char why[POL_WHY_SIZE];

	(void)state;
	snprintf(buf, sizeof(buf), "%s  - {name: k, kind: binary, export: {require: 1, of: [\""
		 ID3 "\"], to: []}}\n", head);
	cur = parse_ok(buf);
	snprintf(buf, sizeof(buf), "%s  - {name: k, kind: binary, export: {require: 1, of: [\""
		 ID3 "\"], to: [{session: evil, owner: \"" ID2 "\"}]}}\n", head);
	more = parse_ok(buf);
	snprintf(buf, sizeof(buf), "%s  - {name: k, kind: binary, export: []}\n", head);
	plain = parse_ok(buf);
	snprintf(buf, sizeof(buf), "%s  - {name: j, kind: binary}\n", head);
	gone = parse_ok(buf);
	snprintf(buf, sizeof(buf), "%s  - {name: k, kind: binary, size: 48, export: {require: "
		 "1, of: [\"" ID3 "\"], to: []}}\n", head);
	other = parse_ok(buf);
	assert_int_equal(pol_may_apply(cur, more, ID1, by2, 1, why, sizeof(why)), -KILN_EDENIED);
	assert_non_null(strstr(why, "changing the export of secret 'k' needs one of [" ID3 "]"));
	assert_int_equal(pol_may_apply(cur, plain, ID1, by2, 1, why, sizeof(why)), -KILN_EDENIED);
	assert_int_equal(pol_may_apply(cur, gone, ID1, by2, 1, why, sizeof(why)), -KILN_EDENIED);
	assert_int_equal(pol_may_apply(cur, other, ID1, by2, 1, why, sizeof(why)), 0);
	assert_int_equal(pol_may_apply(cur, more, ID1, by2_3, 2, why, sizeof(why)), 0);
	/* the quorum form is part of the hash; the list form keeps an old policy's */
	assert_string_not_equal(cur->hash, plain->hash);
	pol_free(cur);
	pol_free(more);
	pol_free(plain);
	pol_free(gone);
	pol_free(other);
}

/* owners: per section: a change touching a section needs its owners' rule besides
 * access.update; untouched sections need nothing more. */
static void test_section_owners(void **state)
{
	static const char base[] =
		"name: a\naccess: {update: [owner, \"" ID2 "\"]}\n"
		"owners:\n  services.measurement: [\"" ID3 "\"]\n"
		"  secrets: {require: 1, of: [\"" ID4 "\"]}\n"
		"secrets: [{name: k, kind: binary, size: %d}]\n"
		"security: {tee: [sim], allow_insecure_sim: true}\n"
		"services: [{name: s, command: [%s], measurement: [%s]}]\n";
	char a[1024], b[1024], c[1024], d[1024];
	struct pol_policy *cur, *cmd, *meas, *sec;
	const char *by2[] = { ID2 }, *by2_3[] = { ID2, ID3 }, *by2_4[] = { ID2, ID4 };
	char why[POL_WHY_SIZE];

	(void)state;
	snprintf(a, sizeof(a), base, 16, "/bin/true", "any");
	snprintf(b, sizeof(b), base, 16, "/bin/false", "any");
	snprintf(c, sizeof(c), base, 16, "/bin/true", "\"" WM64 "\"");
	snprintf(d, sizeof(d), base, 24, "/bin/true", "any");
	cur = parse_ok(a);
	cmd = parse_ok(b);
	meas = parse_ok(c);
	sec = parse_ok(d);
	assert_int_equal(pol_sections_touched(cur, cmd), 1u << POL_SEC_COMMAND);
	assert_int_equal(pol_sections_touched(cur, meas), 1u << POL_SEC_MEASUREMENT);
	assert_int_equal(pol_sections_touched(cur, sec), 1u << POL_SEC_SECRETS);
	assert_true(pol_quorum_governed(cur));
	assert_true(pol_may_approve(cur, ID1, ID3));
	assert_int_equal(pol_may_apply(cur, cmd, ID1, by2, 1, why, sizeof(why)), 0);
	assert_int_equal(pol_may_apply(cur, meas, ID1, by2, 1, why, sizeof(why)), -KILN_EDENIED);
	assert_non_null(strstr(why, "changing section 'services.measurement' (owners) needs "
				    "one of [" ID3 "]; this request has 0 (none)"));
	assert_int_equal(pol_may_apply(cur, meas, ID1, by2_3, 2, why, sizeof(why)), 0);
	assert_int_equal(pol_may_apply(cur, sec, ID1, by2_3, 2, why, sizeof(why)), -KILN_EDENIED);
	assert_non_null(strstr(why, "changing section 'secrets' (owners)"));
	assert_int_equal(pol_may_apply(cur, sec, ID1, by2_4, 2, why, sizeof(why)), 0);
	/* dropping a section's owners touches that section */
	pol_free(sec);
	snprintf(d, sizeof(d), "name: a\naccess: {update: [owner, \"" ID2 "\"]}\n"
		 "owners: {services.measurement: [\"" ID3 "\"]}\n"
		 "secrets: [{name: k, kind: binary, size: 16}]\n"
		 "security: {tee: [sim], allow_insecure_sim: true}\n"
		 "services: [{name: s, command: [/bin/true], measurement: [any]}]\n");
	sec = parse_ok(d);
	assert_int_equal(pol_sections_touched(cur, sec), 1u << POL_SEC_SECRETS);
	pol_free(cur);
	pol_free(cmd);
	pol_free(meas);
	pol_free(sec);
}

/* {require: 1, of: L} is L; an old policy's hash does not move. */
static void test_quorum_canonical(void **state)
{
	struct pol_policy *a = parse_ok("name: a\naccess: {update: [owner, \"" ID2 "\"]}\n");
	struct pol_policy *b = parse_ok("name: a\naccess: {update: {require: 1, of: [\"" ID2
					"\", owner]}}\n");
	struct pol_policy *c = parse_ok("name: a\naccess: {update: {require: 2, of: [\"" ID2
					"\", owner]}}\n");
	struct pol_policy *d = parse_ok("name: a\naccess: {delete: [owner]}\n");
	struct pol_policy *e = parse_ok("name: a\n");
	char *text = pol_canonical_text(c);

	(void)state;
	assert_string_equal(a->hash, b->hash);
	assert_string_not_equal(a->hash, c->hash);
	assert_string_not_equal(d->hash, e->hash);
	assert_non_null(strstr(text, "\"update\":{\"of\":[\"owner\",\"" ID2 "\"],\"require\":2}"));
	free(text);
	pol_free(a);
	pol_free(b);
	pol_free(c);
	pol_free(d);
	pol_free(e);
}

static void test_decide_any_requires_command0_when_claims_name_exe(void **state)
{
	struct pol_policy *p = parse_ok("name: a\nservices:\n  - {name: s, command: [/usr/bin/app, "
					"x], measurement: [any]}\n  - {name: t, command: "
					"[\"{{host.P}}\"], host_env: [P], measurement: [any]}\n"
					"security: {tee: [host]}\n");
	json_t *app = json_pack("{s:s,s:s}", "tee", "host", "exe", "/usr/bin/app");
	json_t *evil = json_pack("{s:s,s:s}", "tee", "host", "exe", "/tmp/evil");
	json_t *none = json_pack("{s:s}", "tee", "host");
	char reason[512];
	const char *label;

	assert_int_equal(pol_decide(p, &p->services[0], app, NOW, reason, sizeof(reason), &label), 0);
	assert_int_equal(pol_decide(p, &p->services[0], none, NOW, reason, sizeof(reason), &label), 0);
	assert_int_equal(pol_decide(p, &p->services[0], evil, NOW, reason, sizeof(reason), &label),
			 -KILN_EMEASUREMENT);
	assert_string_equal(label, "wrong_program");
	assert_string_equal(reason, "claims.exe /tmp/evil is not service 's' command[0] "
			    "/usr/bin/app (measurement [any] admits any build of that program, not "
			    "another one)");
	assert_int_equal(pol_decide(p, &p->services[1], app, NOW, reason, sizeof(reason), &label),
			 -KILN_EMEASUREMENT);
	assert_string_equal(label, "wrong_program");
	json_decref(app);
	json_decref(evil);
	json_decref(none);
	pol_free(p);
}

static void test_stored_policies_keep_what_earlier_kiln_accepted(void **state)
{
	static const char old[] =
		"name: a\nsecrets:\n  - {name: pin, kind: ascii, size: 4, charset: \"0011\"}\n"
		"services:\n  - {name: s, command: [/x], measurement: [any, \"" WM64 "\"]}\n"
		"security: {tee: [sim]}\n";
	struct pol_policy *p = NULL;
	struct kiln_err err = { 0 };

	assert_int_equal(pol_parse(old, strlen(old), "p.yaml", &p, &err), -KILN_EFORMAT);
	assert_int_equal(pol_parse_ex(old, strlen(old), "p.yaml", POL_PARSE_STORED, &p, &err),
			 0);
	pol_free(p);
}

/* security.tolerate entries: a status accepted until a day, with named advisories. */
static void test_decide_tolerate_entries(void **state)
{
	static const char yaml[] =
		"name: t\n"
		"services: [{name: any, command: [/bin/true], measurement: [any]}]\n"
		"security:\n"
		"  tee: [sgx]\n"
		"  tolerate:\n"
		"    - {status: sw-hardening-needed, advisories: [INTEL-SA-00615, INTEL-SA-00289],\n"
		"       until: 2025-07-01}\n"
		"    - status: configuration-needed\n"
		"      advisories: [INTEL-SA-00289, INTEL-SA-00615]\n"
		"      until: 2025-12-31\n";
	static const char reordered[] =
		"name: t\n"
		"services: [{name: any, command: [/bin/true], measurement: [any]}]\n"
		"security:\n"
		"  tee: [sgx]\n"
		"  tolerate:\n"
		"    - {status: configuration-needed, until: 2025-12-31,\n"
		"       advisories: [INTEL-SA-00615, INTEL-SA-00289]}\n"
		"    - {until: 2025-07-01, status: sw-hardening-needed,\n"
		"       advisories: [INTEL-SA-00289, INTEL-SA-00615]}\n";
	struct pol_policy *p = parse_ok(yaml), *q = parse_ok(reordered);
	const struct pol_service *svc = &p->services[0];
	const int64_t end = NOW + 86400; /* 2025-07-02T00:00:00Z: the first entry's end */
	json_t *both = json_pack("{s:s,s:s,s:[s,s]}", "tee", "sgx", "tcb_status",
				 "ConfigurationAndSWHardeningNeeded", "advisories",
				 "INTEL-SA-00289", "INTEL-SA-00615");
	json_t *more = json_pack("{s:s,s:s,s:[s,s,s]}", "tee", "sgx", "tcb_status",
				 "ConfigurationAndSWHardeningNeeded", "advisories",
				 "INTEL-SA-00289", "INTEL-SA-00828", "INTEL-SA-00615");
	json_t *config = json_pack("{s:s,s:s,s:[s]}", "tee", "sgx", "tcb_status",
				   "ConfigurationNeeded", "advisories", "INTEL-SA-00615");
	json_t *outdated = json_pack("{s:s,s:s,s:[]}", "tee", "sgx", "tcb_status", "OutOfDate",
				     "advisories");
	json_t *uptodate = json_pack("{s:s,s:s,s:[s]}", "tee", "sgx", "tcb_status", "UpToDate",
				     "advisories", "INTEL-SA-00615");
	const struct pol_tolerance *used;
	char reason[512], *text;
	const char *label;

	/* Written in another order, the same tolerance: the same hash. */
	assert_string_equal(p->hash, q->hash);
	text = pol_canonical_text(p);
	assert_non_null(strstr(text, "\"tolerate\":[{\"advisories\":[\"INTEL-SA-00289\","
			       "\"INTEL-SA-00615\"],\"status\":\"configuration-needed\","
			       "\"until\":\"2025-12-31\"},{"));
	free(text);

	/* In force, every advisory listed: allowed, and the CAS learns the end. */
	assert_int_equal(pol_decide(p, svc, both, NOW, reason, sizeof(reason), &label), 0);
	assert_int_equal(pol_decide(p, svc, both, end - 1, reason, sizeof(reason), &label), 0);
	assert_non_null(used = pol_tolerance_used(p, both, NOW));
	assert_int_equal(used->until, end);
	assert_string_equal(used->until_day, "2025-07-01");
	assert_non_null(used = pol_tolerance_used(p, config, end));
	assert_int_equal(used->until, NOW + 184 * 86400);
	assert_string_equal(pol_tolerance_status_name(used), "configuration-needed");
	/* The day after `until`: refused, naming the entry and its date. */
	assert_int_equal(pol_decide(p, svc, both, end, reason, sizeof(reason), &label),
			 -KILN_ETCB);
	assert_string_equal(label, "tolerance_expired");
	assert_string_equal(reason, "claims.tcb_status \"ConfigurationAndSWHardeningNeeded\": "
			    "the security.tolerate entry for sw-hardening-needed expired "
			    "(until 2025-07-01, UTC)");
	assert_null(pol_tolerance_used(p, both, end));
	/* The other status is still in force on its own. */
	assert_int_equal(pol_decide(p, svc, config, end, reason, sizeof(reason), &label), 0);
	/* An advisory the entry does not name: refused, naming it. */
	assert_int_equal(pol_decide(p, svc, more, NOW, reason, sizeof(reason), &label),
			 -KILN_ETCB);
	assert_string_equal(label, "advisory_not_tolerated");
	assert_string_equal(reason, "claims.tcb_status \"ConfigurationAndSWHardeningNeeded\": "
			    "advisories INTEL-SA-00828 are not in the security.tolerate entry "
			    "for sw-hardening-needed (until 2025-07-01)");
	/* Another category: no entry tolerates it. */
	assert_int_equal(pol_decide(p, svc, outdated, NOW, reason, sizeof(reason), &label),
			 -KILN_ETCB);
	assert_string_equal(label, "tcb_not_tolerated");
	assert_string_equal(reason, "claims.tcb_status \"OutOfDate\" needs security.tolerate "
			    "[outdated-tcb]");
	/* An entry's advisories are tolerated with its status only, not on their own:
	 * an up-to-date level's advisories still need ignore_advisories. */
	assert_int_equal(pol_decide(p, svc, uptodate, NOW, reason, sizeof(reason), &label),
			 -KILN_ETCB);
	assert_string_equal(label, "advisory_not_ignored");
	assert_null(pol_tolerance_used(p, uptodate, NOW));
	json_decref(both);
	json_decref(more);
	json_decref(config);
	json_decref(outdated);
	json_decref(uptodate);
	pol_free(p);
	pol_free(q);
}

/* A plain tolerate list keeps the canonical form (and hash) it had before entries. */
static void test_tolerate_plain_canonical(void **state)
{
	struct pol_policy *p = parse_ok("name: t\nsecurity: {tee: [sgx], tolerate: "
					"[outdated-tcb, debug]}\n");
	char *text = pol_canonical_text(p);

	assert_non_null(strstr(text, "\"tolerate\":[\"debug\",\"outdated-tcb\"]}"));
	free(text);
	pol_free(p);
}

static void test_misc(void **state)
{
	struct pol_policy *p = parse_ok("name: a\nsecrets: [{name: k, kind: key, algorithm: "
					"ed25519, export: [{session: b, owner: \"" ID1 "\"}]}]\n");
	char *spec = pol_secret_spec(pol_find_secret(p, "k"));

	assert_string_equal(spec, "{\"algorithm\":\"ed25519\",\"kind\":\"key\",\"name\":\"k\"}");
	free(spec);
	pol_free(p);
	assert_int_equal(pol_edit_distance("comand", "command"), 1);
	assert_int_equal(pol_edit_distance("", "abc"), 3);
	assert_int_equal(pol_edit_distance("kitten", "sitting"), 3);
	assert_true(pol_hash_valid("sha256:00000000000000000000000000000000"
				   "00000000000000000000000000000000"));
	assert_false(pol_hash_valid("sha256:00000000000000000000000000000000"
				    "0000000000000000000000000000000A"));
	assert_true(pol_name_valid("acme/db-1.x"));
	assert_false(pol_name_valid("acme//db"));
	assert_false(pol_name_valid("acme/../db"));
	assert_false(pol_name_valid("-x"));
	assert_false(pol_name_valid("a/"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_hash_stable),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_substitute),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_access),
		cmocka_unit_test(test_exports_bound_to_owner_or_hash),
		cmocka_unit_test(test_decide_export_applies_exporter_rules),
		cmocka_unit_test(test_co_updater_cannot_remove_owner_update_access),
		cmocka_unit_test(test_quorum_rules),
		cmocka_unit_test(test_read_quorum_refused_for_new_versions),
		cmocka_unit_test(test_quorum_export),
		cmocka_unit_test(test_quorum_canonical),
		cmocka_unit_test(test_section_owners),
		cmocka_unit_test(test_decide_any_requires_command0_when_claims_name_exe),
		cmocka_unit_test(test_stored_policies_keep_what_earlier_kiln_accepted),
		cmocka_unit_test(test_decide_tolerate_entries),
		cmocka_unit_test(test_tolerate_plain_canonical),
		cmocka_unit_test(test_misc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
