// Vulkan calls made directly from C with C-owned structures.
//
// vulkan-go copies Go structs into C memory whose lifetime is tied to Go
// finalizers that may run while the Vulkan call is still reading them (the
// nested pointers of pipeline, descriptor and submit structures). Every call
// here builds its structures on the C stack instead. Non-dispatchable handles
// travel as uint64_t, dispatchable ones as void*.
#ifndef SHAREPREFILL_VKCALLS_H
#define SHAREPREFILL_VKCALLS_H

#include <stddef.h>
#include <stdint.h>

typedef struct sp_dev sp_dev;

sp_dev *sp_dev_new(void *instance, void *device);
void sp_dev_free(sp_dev *d);

int32_t sp_create_shader_module(sp_dev *d, const uint32_t *code, size_t size, uint64_t *out);
void sp_destroy_shader_module(sp_dev *d, uint64_t m);
int32_t sp_create_set_layout(sp_dev *d, uint32_t bindings, uint64_t *out);
void sp_destroy_set_layout(sp_dev *d, uint64_t l);
int32_t sp_create_pipeline_layout(sp_dev *d, uint64_t set_layout, uint32_t push_size, uint64_t *out);
void sp_destroy_pipeline_layout(sp_dev *d, uint64_t l);
int32_t sp_create_compute_pipeline(sp_dev *d, uint64_t module, uint64_t layout, const uint32_t *spec, uint32_t nspec,
                                   uint32_t required_subgroup_size, uint32_t stage_flags, uint32_t pipeline_flags, uint64_t *out);
// sp_pipeline_stats writes "executable\tstatistic\tvalue\n" lines of a
// pipeline created with VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR into
// buf (NUL-terminated); -7 when VK_KHR_pipeline_executable_properties is off.
int32_t sp_pipeline_stats(sp_dev *d, uint64_t pipe, char *buf, uint32_t cap);
void sp_destroy_pipeline(sp_dev *d, uint64_t p);
int32_t sp_create_descriptor_pool(sp_dev *d, uint32_t max_sets, uint32_t descriptors, uint64_t *out);
void sp_destroy_descriptor_pool(sp_dev *d, uint64_t p);
int32_t sp_reset_descriptor_pool(sp_dev *d, uint64_t p);
// sp_dispatch is everything one recorded dispatch needs, filled in place by
// the recorder (Go memory without Go pointers), so that recording a dispatch
// is one cgo call: sp_record_dispatch.
typedef struct {
	uint64_t pool;     // non-zero: allocate the set from pool (set layout dsl) and write the bindings
	uint64_t dsl;
	uint64_t set;      // the set to bind; written when allocated
	uint64_t pipeline; // bound unless bind_pipeline is 0 (already bound in cmd)
	uint64_t layout;
	uint64_t ibuf, ioff; // indirect: the VkDispatchIndirectCommand's buffer and offset
	uint32_t n;          // bindings
	uint32_t push_size;
	uint32_t barrier;       // record the full barrier (sp_cmd_barrier) first
	uint32_t bind_pipeline;
	uint32_t indirect;
	uint32_t g[3];
	uint32_t calls; // out: the Vulkan calls made
	uint64_t bufs[16], offs[16], ranges[16];
	uint8_t push[128];
} sp_dispatch;
// sp_record_dispatch records one dispatch (a, above). It returns
// vkAllocateDescriptorSets' error, having recorded nothing, when the set
// cannot be allocated from a->pool.
int32_t sp_record_dispatch(sp_dev *d, void *cmd, sp_dispatch *a);
void sp_cmd_barrier(sp_dev *d, void *cmd);
void sp_cmd_host_barrier(sp_dev *d, void *cmd);
void sp_cmd_copy(sp_dev *d, void *cmd, uint64_t src, uint64_t dst, uint64_t src_off, uint64_t dst_off, uint64_t size);
int32_t sp_queue_submit(sp_dev *d, void *queue, void *cmd, uint64_t fence);

// sp_create_instance creates a VkInstance (apiVersion, application name,
// layers, extensions, and an optional pNext chain such as a debug messenger).
int32_t sp_create_instance(const char *app, uint32_t api_version, const char *const *layers, uint32_t nlayers,
                           const char *const *exts, uint32_t nexts, const void *pnext, void **out);

#endif
