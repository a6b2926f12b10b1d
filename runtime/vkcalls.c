// See vkcalls.h.
#include "vkcalls.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sp_fn)(void);
typedef sp_fn (*sp_gipa_t)(void *instance, const char *name);
typedef sp_fn (*sp_gdpa_t)(void *device, const char *name);
void *sp_gipa(void);

struct sp_dev {
	void *device;
	int32_t (*createShaderModule)(void *, const void *, const void *, uint64_t *);
	void (*destroyShaderModule)(void *, uint64_t, const void *);
	int32_t (*createSetLayout)(void *, const void *, const void *, uint64_t *);
	void (*destroySetLayout)(void *, uint64_t, const void *);
	int32_t (*createPipelineLayout)(void *, const void *, const void *, uint64_t *);
	void (*destroyPipelineLayout)(void *, uint64_t, const void *);
	int32_t (*createComputePipelines)(void *, uint64_t, uint32_t, const void *, const void *, uint64_t *);
	void (*destroyPipeline)(void *, uint64_t, const void *);
	int32_t (*createDescriptorPool)(void *, const void *, const void *, uint64_t *);
	void (*destroyDescriptorPool)(void *, uint64_t, const void *);
	int32_t (*resetDescriptorPool)(void *, uint64_t, uint32_t);
	int32_t (*allocateDescriptorSets)(void *, const void *, uint64_t *);
	void (*updateDescriptorSets)(void *, uint32_t, const void *, uint32_t, const void *);
	void (*cmdBindPipeline)(void *, int32_t, uint64_t);
	void (*cmdBindDescriptorSets)(void *, int32_t, uint64_t, uint32_t, uint32_t, const uint64_t *, uint32_t, const uint32_t *);
	void (*cmdPushConstants)(void *, uint64_t, uint32_t, uint32_t, uint32_t, const void *);
	void (*cmdDispatch)(void *, uint32_t, uint32_t, uint32_t);
	void (*cmdDispatchIndirect)(void *, uint64_t, uint64_t);
	void (*cmdPipelineBarrier)(void *, uint32_t, uint32_t, uint32_t, uint32_t, const void *, uint32_t, const void *, uint32_t, const void *);
	void (*cmdCopyBuffer)(void *, uint64_t, uint64_t, uint32_t, const void *);
	int32_t (*queueSubmit)(void *, uint32_t, const void *, uint64_t);
	// VK_KHR_pipeline_executable_properties (NULL unless enabled).
	int32_t (*getExecProps)(void *, const void *, uint32_t *, void *);
	int32_t (*getExecStats)(void *, const void *, uint32_t *, void *);
};

enum {
	ST_SUBMIT_INFO = 4,
	ST_SHADER_MODULE_CI = 16,
	ST_PIPELINE_SHADER_STAGE_CI = 18,
	ST_COMPUTE_PIPELINE_CI = 29,
	ST_PIPELINE_LAYOUT_CI = 30,
	ST_DESCRIPTOR_SET_LAYOUT_CI = 32,
	ST_DESCRIPTOR_POOL_CI = 33,
	ST_DESCRIPTOR_SET_AI = 34,
	ST_WRITE_DESCRIPTOR_SET = 35,
	ST_MEMORY_BARRIER = 46,
	ST_REQ_SUBGROUP_SIZE = 1000225001,
	DT_STORAGE_BUFFER = 7,
	STAGE_COMPUTE = 0x20,
	BIND_POINT_COMPUTE = 1,
	PIPE_STAGE_TRANSFER = 0x1000,
	PIPE_STAGE_COMPUTE = 0x800,
	PIPE_STAGE_DRAW_INDIRECT = 0x2,
	ACCESS_INDIRECT_COMMAND_READ = 0x1,
	ACCESS_SHADER_READ = 0x20,
	ACCESS_SHADER_WRITE = 0x40,
	ACCESS_TRANSFER_READ = 0x800,
	ACCESS_TRANSFER_WRITE = 0x1000,
	PIPE_STAGE_HOST = 0x4000,
	ACCESS_HOST_READ = 0x2000,
};

typedef struct { int32_t sType; const void *pNext; uint32_t flags; size_t codeSize; const uint32_t *pCode; } sp_shader_module_ci;
typedef struct { uint32_t binding; int32_t type; uint32_t count; uint32_t stages; const void *samplers; } sp_dsl_binding;
typedef struct { int32_t sType; const void *pNext; uint32_t flags; uint32_t count; const sp_dsl_binding *bindings; } sp_dsl_ci;
typedef struct { uint32_t stages; uint32_t offset; uint32_t size; } sp_push_range;
typedef struct { int32_t sType; const void *pNext; uint32_t flags; uint32_t setCount; const uint64_t *sets; uint32_t pushCount; const sp_push_range *push; } sp_pl_ci;
typedef struct { uint32_t id; uint32_t offset; size_t size; } sp_spec_entry;
typedef struct { uint32_t count; const sp_spec_entry *entries; size_t dataSize; const void *data; } sp_spec_info;
typedef struct { int32_t sType; const void *pNext; uint32_t flags; uint32_t stage; uint64_t module; const char *name; const sp_spec_info *spec; } sp_stage_ci;
typedef struct { int32_t sType; const void *pNext; uint32_t flags; sp_stage_ci stage; uint64_t layout; uint64_t base; int32_t baseIndex; } sp_cp_ci;
typedef struct { int32_t sType; const void *pNext; uint32_t size; } sp_req_sg;
typedef struct { int32_t type; uint32_t count; } sp_pool_size;
typedef struct { int32_t sType; const void *pNext; uint32_t flags; uint32_t maxSets; uint32_t sizeCount; const sp_pool_size *sizes; } sp_pool_ci;
typedef struct { int32_t sType; const void *pNext; uint64_t pool; uint32_t count; const uint64_t *layouts; } sp_set_ai;
typedef struct { uint64_t buffer; uint64_t offset; uint64_t range; } sp_buffer_info;
typedef struct { int32_t sType; const void *pNext; uint64_t set; uint32_t binding; uint32_t element; uint32_t count; int32_t type; const void *image; const sp_buffer_info *buffer; const void *texel; } sp_write;
typedef struct { int32_t sType; const void *pNext; uint32_t src; uint32_t dst; } sp_mem_barrier;
typedef struct { uint64_t src; uint64_t dst; uint64_t size; } sp_copy;
typedef struct { int32_t sType; const void *pNext; uint32_t waitCount; const void *wait; const void *waitStages; uint32_t cmdCount; void *const *cmds; uint32_t signalCount; const void *signal; } sp_submit;

sp_dev *sp_dev_new(void *instance, void *device) {
	sp_gipa_t gipa = (sp_gipa_t)sp_gipa();
	sp_gdpa_t gdpa = NULL;
	if (gipa && instance) gdpa = (sp_gdpa_t)gipa(instance, "vkGetDeviceProcAddr");
	if (!gdpa) {
		void *lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_NOLOAD);
		if (!lib) lib = dlopen("libvulkan.so", RTLD_NOW | RTLD_NOLOAD);
		if (lib) *(void **)&gdpa = dlsym(lib, "vkGetDeviceProcAddr");
	}
	if (!gdpa) return NULL;
	sp_dev *d = calloc(1, sizeof *d);
	if (!d) return NULL;
	d->device = device;
#define LOAD(field, name)                                   \
	*(sp_fn *)&d->field = gdpa(device, name);           \
	if (!d->field) { free(d); return NULL; }
	*(sp_fn *)&d->getExecProps = gdpa(device, "vkGetPipelineExecutablePropertiesKHR");
	*(sp_fn *)&d->getExecStats = gdpa(device, "vkGetPipelineExecutableStatisticsKHR");
	LOAD(createShaderModule, "vkCreateShaderModule");
	LOAD(destroyShaderModule, "vkDestroyShaderModule");
	LOAD(createSetLayout, "vkCreateDescriptorSetLayout");
	LOAD(destroySetLayout, "vkDestroyDescriptorSetLayout");
	LOAD(createPipelineLayout, "vkCreatePipelineLayout");
	LOAD(destroyPipelineLayout, "vkDestroyPipelineLayout");
	LOAD(createComputePipelines, "vkCreateComputePipelines");
	LOAD(destroyPipeline, "vkDestroyPipeline");
	LOAD(createDescriptorPool, "vkCreateDescriptorPool");
	LOAD(destroyDescriptorPool, "vkDestroyDescriptorPool");
	LOAD(resetDescriptorPool, "vkResetDescriptorPool");
	LOAD(allocateDescriptorSets, "vkAllocateDescriptorSets");
	LOAD(updateDescriptorSets, "vkUpdateDescriptorSets");
	LOAD(cmdBindPipeline, "vkCmdBindPipeline");
	LOAD(cmdBindDescriptorSets, "vkCmdBindDescriptorSets");
	LOAD(cmdPushConstants, "vkCmdPushConstants");
	LOAD(cmdDispatch, "vkCmdDispatch");
	LOAD(cmdDispatchIndirect, "vkCmdDispatchIndirect");
	LOAD(cmdPipelineBarrier, "vkCmdPipelineBarrier");
	LOAD(cmdCopyBuffer, "vkCmdCopyBuffer");
	LOAD(queueSubmit, "vkQueueSubmit");
#undef LOAD
	return d;
}

void sp_dev_free(sp_dev *d) { free(d); }

int32_t sp_create_shader_module(sp_dev *d, const uint32_t *code, size_t size, uint64_t *out) {
	sp_shader_module_ci ci = {ST_SHADER_MODULE_CI, NULL, 0, size, code};
	return d->createShaderModule(d->device, &ci, NULL, out);
}

void sp_destroy_shader_module(sp_dev *d, uint64_t m) { d->destroyShaderModule(d->device, m, NULL); }

int32_t sp_create_set_layout(sp_dev *d, uint32_t n, uint64_t *out) {
	sp_dsl_binding b[16];
	if (n > 16) return -1;
	for (uint32_t i = 0; i < n; i++) {
		sp_dsl_binding x = {i, DT_STORAGE_BUFFER, 1, STAGE_COMPUTE, NULL};
		b[i] = x;
	}
	sp_dsl_ci ci = {ST_DESCRIPTOR_SET_LAYOUT_CI, NULL, 0, n, b};
	return d->createSetLayout(d->device, &ci, NULL, out);
}

void sp_destroy_set_layout(sp_dev *d, uint64_t l) { d->destroySetLayout(d->device, l, NULL); }

int32_t sp_create_pipeline_layout(sp_dev *d, uint64_t set_layout, uint32_t push_size, uint64_t *out) {
	sp_push_range pr = {STAGE_COMPUTE, 0, push_size};
	sp_pl_ci ci = {ST_PIPELINE_LAYOUT_CI, NULL, 0, 1, &set_layout, push_size ? 1u : 0u, push_size ? &pr : NULL};
	return d->createPipelineLayout(d->device, &ci, NULL, out);
}

void sp_destroy_pipeline_layout(sp_dev *d, uint64_t l) { d->destroyPipelineLayout(d->device, l, NULL); }

int32_t sp_create_compute_pipeline(sp_dev *d, uint64_t module, uint64_t layout, const uint32_t *spec, uint32_t nspec,
                                   uint32_t required_subgroup_size, uint32_t stage_flags, uint32_t pipeline_flags, uint64_t *out) {
	sp_spec_entry entries[64];
	if (nspec > 64) return -1;
	for (uint32_t i = 0; i < nspec; i++) {
		sp_spec_entry e = {i, 4 * i, 4};
		entries[i] = e;
	}
	sp_spec_info si = {nspec, entries, 4 * (size_t)nspec, spec};
	sp_req_sg rs = {ST_REQ_SUBGROUP_SIZE, NULL, required_subgroup_size};
	sp_cp_ci ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = ST_COMPUTE_PIPELINE_CI;
	ci.stage.sType = ST_PIPELINE_SHADER_STAGE_CI;
	ci.stage.pNext = required_subgroup_size ? &rs : NULL;
	ci.stage.flags = stage_flags;
	ci.stage.stage = STAGE_COMPUTE;
	ci.stage.module = module;
	ci.stage.name = "main";
	ci.stage.spec = nspec ? &si : NULL;
	ci.flags = pipeline_flags;
	ci.layout = layout;
	ci.baseIndex = -1;
	return d->createComputePipelines(d->device, 0, 1, &ci, NULL, out);
}

void sp_destroy_pipeline(sp_dev *d, uint64_t p) { d->destroyPipeline(d->device, p, NULL); }

int32_t sp_create_descriptor_pool(sp_dev *d, uint32_t max_sets, uint32_t descriptors, uint64_t *out) {
	sp_pool_size ps = {DT_STORAGE_BUFFER, descriptors};
	sp_pool_ci ci = {ST_DESCRIPTOR_POOL_CI, NULL, 0, max_sets, 1, &ps};
	return d->createDescriptorPool(d->device, &ci, NULL, out);
}

void sp_destroy_descriptor_pool(sp_dev *d, uint64_t p) { d->destroyDescriptorPool(d->device, p, NULL); }

int32_t sp_reset_descriptor_pool(sp_dev *d, uint64_t p) { return d->resetDescriptorPool(d->device, p, 0); }

// vkcalls.go's dispatchArgs mirrors sp_dispatch.
_Static_assert(offsetof(sp_dispatch, bufs) == 96 && offsetof(sp_dispatch, push) == 480 && sizeof(sp_dispatch) == 608,
               "sp_dispatch's layout changed: update dispatchArgs in vkcalls.go");

int32_t sp_record_dispatch(sp_dev *d, void *cmd, sp_dispatch *a) {
	uint32_t calls = 0;
	if (a->n > 16) return -1;
	if (a->pool) {
		sp_set_ai ai = {ST_DESCRIPTOR_SET_AI, NULL, a->pool, 1, &a->dsl};
		int32_t r = d->allocateDescriptorSets(d->device, &ai, &a->set);
		calls++;
		if (r != 0) {
			a->calls = calls;
			return r;
		}
		sp_buffer_info bi[16];
		sp_write w[16];
		for (uint32_t i = 0; i < a->n; i++) {
			sp_buffer_info b = {a->bufs[i], a->offs[i], a->ranges[i]};
			bi[i] = b;
			sp_write x = {ST_WRITE_DESCRIPTOR_SET, NULL, a->set, i, 0, 1, DT_STORAGE_BUFFER, NULL, &bi[i], NULL};
			w[i] = x;
		}
		d->updateDescriptorSets(d->device, a->n, w, 0, NULL);
		calls++;
	}
	if (a->barrier) {
		sp_cmd_barrier(d, cmd);
		calls++;
	}
	if (a->bind_pipeline) {
		d->cmdBindPipeline(cmd, BIND_POINT_COMPUTE, a->pipeline);
		calls++;
	}
	d->cmdBindDescriptorSets(cmd, BIND_POINT_COMPUTE, a->layout, 0, 1, &a->set, 0, NULL);
	calls++;
	if (a->push_size) {
		d->cmdPushConstants(cmd, a->layout, STAGE_COMPUTE, 0, a->push_size, a->push);
		calls++;
	}
	if (a->indirect)
		d->cmdDispatchIndirect(cmd, a->ibuf, a->ioff);
	else
		d->cmdDispatch(cmd, a->g[0], a->g[1], a->g[2]);
	calls++;
	a->calls = calls;
	return 0;
}

void sp_cmd_barrier(sp_dev *d, void *cmd) {
	// The destination includes indirect-command reads: a dispatch may take
	// its workgroup counts from memory written before the barrier.
	sp_mem_barrier mb = {ST_MEMORY_BARRIER, NULL, ACCESS_SHADER_WRITE | ACCESS_TRANSFER_WRITE,
	                     ACCESS_SHADER_READ | ACCESS_SHADER_WRITE | ACCESS_TRANSFER_READ | ACCESS_TRANSFER_WRITE |
	                         ACCESS_INDIRECT_COMMAND_READ};
	uint32_t stages = PIPE_STAGE_COMPUTE | PIPE_STAGE_TRANSFER;
	d->cmdPipelineBarrier(cmd, stages, stages | PIPE_STAGE_DRAW_INDIRECT, 0, 1, &mb, 0, NULL, 0, NULL);
}

// sp_cmd_host_barrier makes transfer writes visible to host reads after the
// batch's fence (a readback into host-visible memory).
void sp_cmd_host_barrier(sp_dev *d, void *cmd) {
	sp_mem_barrier mb = {ST_MEMORY_BARRIER, NULL, ACCESS_TRANSFER_WRITE, ACCESS_HOST_READ};
	d->cmdPipelineBarrier(cmd, PIPE_STAGE_TRANSFER, PIPE_STAGE_HOST, 0, 1, &mb, 0, NULL, 0, NULL);
}

void sp_cmd_copy(sp_dev *d, void *cmd, uint64_t src, uint64_t dst, uint64_t src_off, uint64_t dst_off, uint64_t size) {
	sp_copy c = {src_off, dst_off, size};
	d->cmdCopyBuffer(cmd, src, dst, 1, &c);
}

int32_t sp_queue_submit(sp_dev *d, void *queue, void *cmd, uint64_t fence) {
	void *cmds[1] = {cmd};
	sp_submit s = {ST_SUBMIT_INFO, NULL, 0, NULL, NULL, 1, cmds, 0, NULL};
	return d->queueSubmit(queue, 1, &s, fence);
}

typedef struct { int32_t sType; const void *pNext; const char *app; uint32_t appVersion; const char *engine; uint32_t engineVersion; uint32_t api; } sp_app_info;
typedef struct { int32_t sType; const void *pNext; uint32_t flags; const sp_app_info *app; uint32_t nl; const char *const *layers; uint32_t ne; const char *const *exts; } sp_instance_ci;

int32_t sp_create_instance(const char *app, uint32_t api_version, const char *const *layers, uint32_t nlayers,
                           const char *const *exts, uint32_t nexts, const void *pnext, void **out) {
	sp_gipa_t gipa = (sp_gipa_t)sp_gipa();
	if (!gipa) return -3; // VK_ERROR_INITIALIZATION_FAILED
	int32_t (*create)(const sp_instance_ci *, const void *, void **);
	*(sp_fn *)&create = gipa(NULL, "vkCreateInstance");
	if (!create) return -3;
	sp_app_info ai = {0, NULL, app, 1, "shareprefill", 1, api_version};
	sp_instance_ci ci = {1, pnext, 0, &ai, nlayers, layers, nexts, exts};
	return create(&ci, NULL, out);
}

typedef struct { int32_t sType; const void *pNext; uint64_t pipeline; } sp_pipe_info;
typedef struct { int32_t sType; void *pNext; uint32_t stages; char name[256]; char desc[256]; uint32_t subgroupSize; } sp_exec_props;
typedef struct { int32_t sType; const void *pNext; uint64_t pipeline; uint32_t index; } sp_exec_info;
typedef struct { int32_t sType; void *pNext; char name[256]; char desc[256]; int32_t format; union { uint32_t b32; int64_t i64; uint64_t u64; double f64; } value; } sp_exec_stat;

int32_t sp_pipeline_stats(sp_dev *d, uint64_t pipe, char *buf, uint32_t cap) {
	if (!d->getExecProps || !d->getExecStats || cap == 0) return -7; // VK_ERROR_EXTENSION_NOT_PRESENT
	buf[0] = 0;
	sp_pipe_info pi = {1000269001, NULL, pipe};
	uint32_t n = 0;
	int32_t r = d->getExecProps(d->device, &pi, &n, NULL);
	if (r != 0) return r;
	if (n > 8) n = 8;
	sp_exec_props props[8];
	memset(props, 0, sizeof props);
	for (uint32_t i = 0; i < n; i++) props[i].sType = 1000269002;
	r = d->getExecProps(d->device, &pi, &n, props);
	if (r < 0) return r;
	size_t used = 0;
	for (uint32_t e = 0; e < n; e++) {
		sp_exec_info ei = {1000269003, NULL, pipe, e};
		uint32_t m = 0;
		r = d->getExecStats(d->device, &ei, &m, NULL);
		if (r != 0) return r;
		if (m > 256) m = 256;
		if (m == 0) continue;
		sp_exec_stat *st = calloc(m, sizeof *st);
		if (!st) return -1; // VK_ERROR_OUT_OF_HOST_MEMORY
		for (uint32_t i = 0; i < m; i++) st[i].sType = 1000269004;
		r = d->getExecStats(d->device, &ei, &m, st);
		if (r < 0) { free(st); return r; }
		for (uint32_t i = 0; i < m && used + 600 < cap; i++) {
			char v[64];
			switch (st[i].format) {
			case 0: snprintf(v, sizeof v, "%s", st[i].value.b32 ? "true" : "false"); break;
			case 1: snprintf(v, sizeof v, "%lld", (long long)st[i].value.i64); break;
			case 2: snprintf(v, sizeof v, "%llu", (unsigned long long)st[i].value.u64); break;
			default: snprintf(v, sizeof v, "%g", st[i].value.f64); break;
			}
			st[i].name[255] = 0;
			props[e].name[255] = 0;
			used += (size_t)snprintf(buf + used, cap - used, "%s\t%s\t%s\n", props[e].name, st[i].name, v);
		}
		free(st);
	}
	return 0;
}
