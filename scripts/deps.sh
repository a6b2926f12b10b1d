#!/usr/bin/env bash
# scripts/deps.sh check|install — make sure a Vulkan loader and driver exist.
#   check:   print a hint and fail when libvulkan.so.1 or every ICD is missing
#   install: apt-get install libvulkan1 mesa-vulkan-drivers when root, else
#            print the command to run
set -euo pipefail
mode=${1:-check}

have_loader() { ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1 ' >/dev/null; }
have_icd() {
	for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
		ls "$d"/*.json >/dev/null 2>&1 && return 0
	done
	[ -n "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]
}

if have_loader && have_icd; then
	exit 0
fi
hint="apt-get install libvulkan1 mesa-vulkan-drivers"
if [ "$mode" = install ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "deps: installing the Vulkan loader and Mesa drivers (lavapipe runs on the CPU)"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libvulkan1 mesa-vulkan-drivers
		exit 0
	fi
	echo "deps: no Vulkan loader/driver found; run as root: $hint" >&2
	exit 1
fi
echo "deps: no Vulkan loader/driver found; run \`make deps\` as root (or: sudo $hint)" >&2
exit 1
