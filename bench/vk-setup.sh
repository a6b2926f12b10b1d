# bench/vk-setup.sh — sourced by the device-call scripts (bench/speed.sh,
# bench/accuracy-device.sh):
# unpacks the carried Vulkan loader and glvnd libraries (.gl/*.deb, see
# bench/README.md) and points the loader at the NVIDIA ICD, which lies
# outside its search path on the lent machines. Once per process tree.
# shellcheck shell=bash
if [ -z "${SP_VK_SETUP_DONE:-}" ]; then
	for f in .gl/*.deb; do dpkg -x "$f" /; done
	ldconfig
	for j in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
		[ -f "$j" ] && { export VK_DRIVER_FILES=$j; break; }
	done
	export SP_VK_SETUP_DONE=1
fi
