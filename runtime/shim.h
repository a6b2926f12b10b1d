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
	uint64_t max_memory_allocation_size;
	uint64_t max_buffer_size;
	uint32_t driver_id;
	char driver_name[256];
	char driver_info[256];
} sp_caps;

typedef struct {
	uint32_t m, n, k;
	int32_t a, b, c, result;
	uint32_t saturating;
	int32_t scope;
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
};

void *sp_load(char *err, int errlen);
void *sp_gipa(void);
void sp_query_caps(void *instance, void *pdev, uint32_t exts, sp_caps *out);
int sp_coopmat_props(void *instance, void *pdev, sp_coopmat *out, uint32_t max, uint32_t *count);
int32_t sp_create_device(void *instance, void *pdev, uint32_t queue_family, uint32_t exts,
                         const sp_caps *enable, const char **ext_names, uint32_t n_ext, void **out_device);
void *sp_required_subgroup_size_info(uint32_t size);
void sp_free(void *p);

#endif
