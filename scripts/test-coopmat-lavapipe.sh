#!/usr/bin/env bash
# test-coopmat-lavapipe.sh — run the cooperative-matrix kernel tests on the
# CPU: a private lavapipe from Debian's backports (scripts/install-lavapipe-cm.sh)
# exposes VK_KHR_cooperative_matrix, listing only 8×8×8 shapes but computing
# the project's 16×16×16 f16 fragments correctly, so the tests run with
# SHAREPREFILL_VK_COOPMAT_UNLISTED=1 (outside the specification: no
# validation layer here) and SHAREPREFILL_REQUIRE_COOPMAT=1 (a missing
# feature fails instead of skipping). Subgroup size 8 (lavapipe's default):
# matmul_cm1, attn_cmr and qk_cm (block map, estimate) are covered;
# attn_cm1 needs subgroups of 16 or more, and lavapipe 26.1 crashes
# compiling it at LP_NATIVE_VECTOR_WIDTH=512 (subgroup 16), so it stays
# covered on GPUs only. The tests keep to small
# problems on CPU devices. NV cooperative_matrix2 kernels are not covered
# (lavapipe lacks workgroup scope).
#
# Usage: scripts/test-coopmat-lavapipe.sh [go test -run regexp]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
RUN="${1:-CoopMat|CMAttn}"
scripts/install-lavapipe-cm.sh
mkdir -p .tools
go test -c -o .tools/coopmat-kernels.test ./runtime/kernels
cd runtime/kernels
rc=0
for w in ${LVP_WIDTHS:-256}; do
	echo "== coopmat kernel tests on lavapipe, LP_NATIVE_VECTOR_WIDTH=$w"
	if ! LP_NATIVE_VECTOR_WIDTH=$w SHAREPREFILL_VK_COOPMAT_UNLISTED=1 SHAREPREFILL_REQUIRE_COOPMAT=1 SHAREPREFILL_REQUIRE_VULKAN=1 \
		"$REPO/scripts/with-lavapipe-cm.sh" "$REPO/.tools/coopmat-kernels.test" -test.run "$RUN" -test.count=1 -test.timeout 20m -test.v 2>&1 |
		grep -E '^(--- |PASS|FAIL|ok|panic)|attn_cm_test|matmul_cm_test|qk_cm_test'; then
		rc=1
	fi
done
exit $rc
