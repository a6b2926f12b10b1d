// Small C shim for the parts of Vulkan that vulkan-go (a Vulkan 1.0 binding)
// does not wrap: loading libvulkan.so.1, the Properties2/Features2 chains,
// cooperative-matrix enumeration and device creation with a features chain.
// It declares the few structures it needs itself, so it builds without any
// Vulkan headers installed.
#ifndef SHAREPREFILL_SHIM_H
#define SHAREPREFILL_SHIM_H

#include <stdint.h>

typedef struct {
	uint32_t api_version;
	uint32_t subgroup_size;
	uint32_t subgroup_stages;
	uint32_t subgroup_ops;
	uint32_t min_subgroup_size;
	uint32_t max_subgroup_size;
	uint32_t max_compute_workgroup_subgroups;
	uint32_t required_subgroup_size_stages;
	uint32_t subgroup_size_control;
	uint32_t compute_full_subgroups;
	uint32_t storage_buffer_16bit;
	uint32_t storage_push_constant_16bit;
	uint32_t shader_float16;
	uint32_t shader_int8;
	uint32_t storage_buffer_8bit;
	uint32_t shader_int16;
	uint32_t shader_int64;
	uint32_t shader_float64;
	uint32_t coopmat;
	uint32_t coopmat_stages;
	uint32_t coopmat2_workgroup_scope;
	uint32_t coopmat2_flexible_dims;
	uint32_t coopmat2_reductions;
	uint32_t coopmat2_conversions;
	uint32_t coopmat2_per_element;
	uint32_t coopmat2_tensor_addressing;
	uint32_t coopmat2_block_loads;
	uint32_t vulkan_memory_model;
	uint32_t vulkan_memory_model_device_scope;
	uint32_t pipeline_executable_info;
	uint64_t max_memory_allocation_size;
	uint64_t max_buffer_size;
	uint32_t driver_id;
	char driver_name[256];
	char driver_info[256];
} sp_caps;

// One cooperative-matrix entry: a KHR shape (invocations 0), or a
// VkCooperativeMatrixFlexibleDimensionsPropertiesNV entry whose m, n, k are
// the granularities of the dimensions and invocations the workgroup size
// (workgroup scope).
typedef struct {
	uint32_t m, n, k;
	int32_t a, b, c, result;
	uint32_t saturating;
	int32_t scope;
	uint32_t invocations;
} sp_coopmat;

// Extension presence flags given to sp_query_caps and sp_create_device.
enum {
	SP_EXT_SUBGROUP_SIZE_CONTROL = 1 << 0,
	SP_EXT_COOPMAT_KHR = 1 << 1,
	SP_EXT_COOPMAT2_NV = 1 << 2,
	SP_EXT_16BIT_STORAGE = 1 << 3,
	SP_EXT_FLOAT16_INT8 = 1 << 4,
	SP_EXT_8BIT_STORAGE = 1 << 5,
	SP_EXT_MAINTENANCE4 = 1 << 6,
	SP_EXT_DRIVER_PROPERTIES = 1 << 7,
	SP_EXT_MEMORY_MODEL = 1 << 8,
	SP_EXT_PIPELINE_EXEC = 1 << 9,
};

void *sp_load(char *err, int errlen);
void *sp_gipa(void);
void sp_query_caps(void *instance, void *pdev, uint32_t exts, sp_caps *out);
int sp_coopmat_list(void *instance, void *pdev, int flex, sp_coopmat *out, uint32_t max, uint32_t *count);
int32_t sp_create_device(void *instance, void *pdev, uint32_t queue_family, uint32_t exts,
                         const sp_caps *enable, const char **ext_names, uint32_t n_ext, void **out_device);
void *sp_required_subgroup_size_info(uint32_t size);

// Enumerations done in C (vulkan-go's array wrappers are not safe under
// garbage collection): whether an instance layer is present; the instance
// (of layer, or of the implementation when layer is NULL) or device
// extension names, '\n'-terminated in buf (the count, or -1 when buflen is
// short of *need); the queue families' flags and timestamp bits (at most
// max; the count).
int sp_instance_has_layer(const char *name);
int sp_instance_ext_names(const char *layer, char *buf, uint32_t buflen, uint32_t *need);
int sp_device_ext_names(void *instance, void *pdev, char *buf, uint32_t buflen, uint32_t *need);
uint32_t sp_queue_families(void *instance, void *pdev, uint32_t *flags, uint32_t *ts_bits, uint32_t max);
void sp_free(void *p);

// Validation messages (VK_EXT_debug_utils). A ring collects the messages of
// one instance: the messenger's C callback appends to it (any thread, under a
// mutex) and Go drains it with sp_ring_pop. When full, new messages are
// counted as dropped.
typedef struct sp_ring sp_ring;
sp_ring *sp_ring_new(void);
void sp_ring_free(sp_ring *r);
// sp_ring_pop copies the oldest message into buf (NUL-terminated, truncated
// to buflen) with its severity bits and returns 1, or returns 0 when empty.
int sp_ring_pop(sp_ring *r, char *buf, int buflen, uint32_t *severity);
// sp_ring_dropped returns and clears the number of dropped messages.
uint32_t sp_ring_dropped(sp_ring *r);
// sp_messenger_info returns a malloc'ed VkDebugUtilsMessengerCreateInfoEXT
// feeding r, for VkInstanceCreateInfo.pNext (messages of vkCreateInstance and
// vkDestroyInstance); free it with sp_free. features selects extra checks
// (VkValidationFeaturesEXT): SP_VAL_* bits.
enum { SP_VAL_GPU_ASSISTED = 1 << 0, SP_VAL_BEST_PRACTICES = 1 << 2, SP_VAL_SYNC = 1 << 3 };
void *sp_messenger_info(sp_ring *r, uint32_t features);
// sp_messenger_create creates a messenger feeding r on instance.
int32_t sp_messenger_create(void *instance, sp_ring *r, void **out);
void sp_messenger_destroy(void *instance, void *messenger);

#endif
