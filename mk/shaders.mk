# mk/shaders.mk — shader toolchain targets; include from the main Makefile:
#
#	include mk/shaders.mk
#
#   make tools          install private glslang 15 + SPIRV-Tools into .tools/
#   make shaders        compile shaders/*.comp -> shaders/spv/*.spv (+ spirv-val)
#   make check-shaders  fail if committed shaders/spv/*.spv differ from sources

SHADERS_MK_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
GLSLANG_WRAPPER := $(SHADERS_MK_ROOT)/.tools/bin/glslangValidator

.PHONY: tools shaders check-shaders

tools:
	$(SHADERS_MK_ROOT)/scripts/install-glslang.sh

# Installs the toolchain on first use only.
$(GLSLANG_WRAPPER):
	$(SHADERS_MK_ROOT)/scripts/install-glslang.sh

shaders: | $(GLSLANG_WRAPPER)
	$(SHADERS_MK_ROOT)/scripts/compile-shaders.sh

check-shaders: | $(GLSLANG_WRAPPER)
	$(SHADERS_MK_ROOT)/scripts/check-shaders.sh
