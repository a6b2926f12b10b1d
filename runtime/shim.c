// See shim.h.
#include "shim.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sp_voidfn)(void);
typedef sp_voidfn (*sp_gipa_fn)(void *instance, const char *name);

static sp_gipa_fn gipa;

typedef struct {
	int32_t sType;
	void *pNext;
} sp_base;

// VkPhysicalDeviceFeatures2: 55 VkBool32 core features.
typedef struct {
	int32_t sType;
	void *pNext;
	uint32_t f[55];
} sp_features2;
enum { SP_F_FLOAT64 = 40, SP_F_INT64 = 41, SP_F_INT16 = 42 };

// VkPhysicalDeviceProperties2; the core properties are oversized on purpose.
typedef struct {
	int32_t sType;
	void *pNext;
	uint8_t props[2048];
} sp_properties2;

typedef struct { int32_t sType; void *pNext; uint32_t subgroupSize, supportedStages, supportedOperations, quadOps; } sp_subgroup_props;
typedef struct { int32_t sType; void *pNext; uint32_t minSize, maxSize, maxWGSubgroups, requiredStages; } sp_sgsc_props;
typedef struct { int32_t sType; void *pNext; uint32_t control, fullSubgroups; } sp_sgsc_feats;
typedef struct { int32_t sType; void *pNext; uint32_t sb16, usb16, pc16, io16; } sp_16bit_feats;
typedef struct { int32_t sType; void *pNext; uint32_t f16, i8; } sp_f16i8_feats;
typedef struct { int32_t sType; void *pNext; uint32_t sb8, usb8, pc8; } sp_8bit_feats;
typedef struct { int32_t sType; void *pNext; uint32_t coopmat, robust; } sp_cm_feats;
typedef struct { int32_t sType; void *pNext; uint32_t stages; } sp_cm_props;
typedef struct { int32_t sType; void *pNext; uint32_t wg, flex, red, conv, perel, tensor, block; } sp_cm2_feats;
typedef struct { int32_t sType; void *pNext; uint32_t model, device_scope, chains; } sp_mm_feats;
typedef struct { int32_t sType; void *pNext; uint32_t info; } sp_pe_feats;
typedef struct { int32_t sType; void *pNext; uint32_t maxPerSet; uint32_t pad; uint64_t maxAlloc; } sp_maint3_props;
typedef struct { int32_t sType; void *pNext; uint64_t maxBufferSize; } sp_maint4_props;
typedef struct { int32_t sType; void *pNext; int32_t driverID; char name[256]; char info[256]; uint8_t conf[4]; } sp_driver_props;
typedef struct { int32_t sType; void *pNext; uint32_t m, n, k; int32_t a, b, c, r; uint32_t sat; int32_t scope; } sp_cm_khr;
typedef struct { int32_t sType; void *pNext; uint32_t m, n, k; int32_t a, b, c, r; uint32_t sat; int32_t scope; uint32_t invocations; } sp_cm2_flex;
typedef struct { int32_t sType; void *pNext; uint32_t size; } sp_req_sg_size;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t queueFamilyIndex;
	uint32_t queueCount;
	const float *pQueuePriorities;
} sp_queue_ci;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t queueCreateInfoCount;
	const sp_queue_ci *pQueueCreateInfos;
	uint32_t enabledLayerCount;
	const char *const *ppEnabledLayerNames;
	uint32_t enabledExtensionCount;
	const char *const *ppEnabledExtensionNames;
	const void *pEnabledFeatures;
} sp_device_ci;

enum {
	ST_FEATURES2 = 1000059000,
	ST_PROPERTIES2 = 1000059001,
	ST_SUBGROUP_PROPS = 1000094000,
	ST_SGSC_PROPS = 1000225000,
	ST_REQ_SG_SIZE = 1000225001,
	ST_SGSC_FEATS = 1000225002,
	ST_16BIT_FEATS = 1000083000,
	ST_F16I8_FEATS = 1000082000,
	ST_8BIT_FEATS = 1000177000,
	ST_CM_FEATS = 1000506000,
	ST_CM_PROPS_ENTRY = 1000506001,
	ST_CM_PROPS = 1000506002,
	ST_CM2_FEATS = 1000593000,
	ST_CM2_FLEX_ENTRY = 1000593001,
	ST_MM_FEATS = 1000211000,
	ST_PE_FEATS = 1000269000,
	ST_MAINT3_PROPS = 1000168000,
	ST_MAINT4_PROPS = 1000413001,
	ST_DRIVER_PROPS = 1000196000,
	ST_DEVICE_CI = 3,
	ST_QUEUE_CI = 2,
};

void *sp_load(char *err, int errlen) {
	if (gipa) return (void *)gipa;
	const char *names[] = {"libvulkan.so.1", "libvulkan.so"};
	void *lib = NULL;
	for (int i = 0; i < 2 && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen failed");
		return NULL;
	}
	gipa = (sp_gipa_fn)dlsym(lib, "vkGetInstanceProcAddr");
	if (!gipa) {
		snprintf(err, errlen, "libvulkan has no vkGetInstanceProcAddr");
		return NULL;
	}
	return (void *)gipa;
}

void *sp_gipa(void) { return (void *)gipa; }

static void sp_link(sp_base **tail, void *s, int32_t type) {
	sp_base *b = (sp_base *)s;
	b->sType = type;
	b->pNext = NULL;
	(*tail)->pNext = b;
	*tail = b;
}

void sp_query_caps(void *instance, void *pdev, uint32_t exts, sp_caps *out) {
	typedef void (*get2_fn)(void *, void *);
	get2_fn getProps = (get2_fn)gipa(instance, "vkGetPhysicalDeviceProperties2");
	get2_fn getFeats = (get2_fn)gipa(instance, "vkGetPhysicalDeviceFeatures2");
	if (!getProps) getProps = (get2_fn)gipa(instance, "vkGetPhysicalDeviceProperties2KHR");
	if (!getFeats) getFeats = (get2_fn)gipa(instance, "vkGetPhysicalDeviceFeatures2KHR");
	if (!getProps || !getFeats) return;

	sp_properties2 p2;
	memset(&p2, 0, sizeof p2);
	p2.sType = ST_PROPERTIES2;
	sp_base *tail = (sp_base *)&p2;
	sp_subgroup_props sg; memset(&sg, 0, sizeof sg); sp_link(&tail, &sg, ST_SUBGROUP_PROPS);
	sp_maint3_props m3; memset(&m3, 0, sizeof m3); sp_link(&tail, &m3, ST_MAINT3_PROPS);
	sp_sgsc_props sgsc; memset(&sgsc, 0, sizeof sgsc);
	if (exts & SP_EXT_SUBGROUP_SIZE_CONTROL) sp_link(&tail, &sgsc, ST_SGSC_PROPS);
	sp_cm_props cmp; memset(&cmp, 0, sizeof cmp);
	if (exts & SP_EXT_COOPMAT_KHR) sp_link(&tail, &cmp, ST_CM_PROPS);
	sp_maint4_props m4; memset(&m4, 0, sizeof m4);
	if (exts & SP_EXT_MAINTENANCE4) sp_link(&tail, &m4, ST_MAINT4_PROPS);
	sp_driver_props drv; memset(&drv, 0, sizeof drv);
	if (exts & SP_EXT_DRIVER_PROPERTIES) sp_link(&tail, &drv, ST_DRIVER_PROPS);
	getProps(pdev, &p2);

	sp_features2 f2;
	memset(&f2, 0, sizeof f2);
	f2.sType = ST_FEATURES2;
	tail = (sp_base *)&f2;
	sp_sgsc_feats sgf; memset(&sgf, 0, sizeof sgf);
	if (exts & SP_EXT_SUBGROUP_SIZE_CONTROL) sp_link(&tail, &sgf, ST_SGSC_FEATS);
	sp_16bit_feats b16; memset(&b16, 0, sizeof b16);
	if (exts & SP_EXT_16BIT_STORAGE) sp_link(&tail, &b16, ST_16BIT_FEATS);
	sp_f16i8_feats f16; memset(&f16, 0, sizeof f16);
	if (exts & SP_EXT_FLOAT16_INT8) sp_link(&tail, &f16, ST_F16I8_FEATS);
	sp_8bit_feats b8; memset(&b8, 0, sizeof b8);
	if (exts & SP_EXT_8BIT_STORAGE) sp_link(&tail, &b8, ST_8BIT_FEATS);
	sp_cm_feats cmf; memset(&cmf, 0, sizeof cmf);
	if (exts & SP_EXT_COOPMAT_KHR) sp_link(&tail, &cmf, ST_CM_FEATS);
	sp_cm2_feats cm2; memset(&cm2, 0, sizeof cm2);
	if (exts & SP_EXT_COOPMAT2_NV) sp_link(&tail, &cm2, ST_CM2_FEATS);
	sp_mm_feats mm; memset(&mm, 0, sizeof mm);
	if (exts & SP_EXT_MEMORY_MODEL) sp_link(&tail, &mm, ST_MM_FEATS);
	sp_pe_feats pe; memset(&pe, 0, sizeof pe);
	if (exts & SP_EXT_PIPELINE_EXEC) sp_link(&tail, &pe, ST_PE_FEATS);
	getFeats(pdev, &f2);

	out->subgroup_size = sg.subgroupSize;
	out->subgroup_stages = sg.supportedStages;
	out->subgroup_ops = sg.supportedOperations;
	out->min_subgroup_size = sgsc.minSize;
	out->max_subgroup_size = sgsc.maxSize;
	out->max_compute_workgroup_subgroups = sgsc.maxWGSubgroups;
	out->required_subgroup_size_stages = sgsc.requiredStages;
	out->subgroup_size_control = sgf.control;
	out->compute_full_subgroups = sgf.fullSubgroups;
	out->storage_buffer_16bit = b16.sb16;
	out->storage_push_constant_16bit = b16.pc16;
	out->shader_float16 = f16.f16;
	out->shader_int8 = f16.i8;
	out->storage_buffer_8bit = b8.sb8;
	out->shader_int16 = f2.f[SP_F_INT16];
	out->shader_int64 = f2.f[SP_F_INT64];
	out->shader_float64 = f2.f[SP_F_FLOAT64];
	out->coopmat = cmf.coopmat;
	out->coopmat_stages = cmp.stages;
	out->coopmat2_workgroup_scope = cm2.wg;
	out->coopmat2_flexible_dims = cm2.flex;
	out->coopmat2_reductions = cm2.red;
	out->coopmat2_conversions = cm2.conv;
	out->coopmat2_per_element = cm2.perel;
	out->coopmat2_tensor_addressing = cm2.tensor;
	out->coopmat2_block_loads = cm2.block;
	out->vulkan_memory_model = mm.model;
	out->vulkan_memory_model_device_scope = mm.device_scope;
	out->pipeline_executable_info = pe.info;
	out->max_memory_allocation_size = m3.maxAlloc;
	out->max_buffer_size = m4.maxBufferSize;
	out->driver_id = (uint32_t)drv.driverID;
	memcpy(out->driver_name, drv.name, sizeof out->driver_name);
	out->driver_name[255] = 0;
	memcpy(out->driver_info, drv.info, sizeof out->driver_info);
	out->driver_info[255] = 0;
}

// sp_coopmat_list enumerates the KHR cooperative-matrix shapes (flex 0:
// vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR) or the NV flexible
// dimensions (flex 1: vkGetPhysicalDeviceCooperativeMatrixFlexibleDimensionsPropertiesNV,
// m/n/k are granularities). Both entry structures begin with the same
// fields; the flexible one adds the workgroup size (0 for KHR entries).
int sp_coopmat_list(void *instance, void *pdev, int flex, sp_coopmat *out, uint32_t max, uint32_t *count) {
	typedef int32_t (*fn_t)(void *, uint32_t *, void *);
	fn_t fn = (fn_t)gipa(instance, flex ? "vkGetPhysicalDeviceCooperativeMatrixFlexibleDimensionsPropertiesNV"
	                                    : "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
	size_t size = flex ? sizeof(sp_cm2_flex) : sizeof(sp_cm_khr);
	*count = 0;
	if (!fn) return -1;
	uint32_t n = 0;
	int32_t r = fn(pdev, &n, NULL);
	if (r < 0) return r;
	if (n == 0) return 0;
	char *props = calloc(n, size);
	if (!props) return -1;
	for (uint32_t i = 0; i < n; i++) ((sp_cm_khr *)(props + i * size))->sType = flex ? ST_CM2_FLEX_ENTRY : ST_CM_PROPS_ENTRY;
	r = fn(pdev, &n, props);
	if (r < 0) { free(props); return r; }
	uint32_t k = n < max ? n : max;
	for (uint32_t i = 0; i < k; i++) {
		const sp_cm_khr *p = (const sp_cm_khr *)(props + i * size);
		out[i].m = p->m; out[i].n = p->n; out[i].k = p->k;
		out[i].a = p->a; out[i].b = p->b; out[i].c = p->c; out[i].result = p->r;
		out[i].saturating = p->sat; out[i].scope = p->scope;
		out[i].invocations = flex ? ((const sp_cm2_flex *)p)->invocations : 0;
	}
	*count = k;
	free(props);
	return 0;
}

int32_t sp_create_device(void *instance, void *pdev, uint32_t queue_family, uint32_t exts,
                         const sp_caps *en, const char **ext_names, uint32_t n_ext, void **out_device) {
	typedef int32_t (*create_fn)(void *, const sp_device_ci *, const void *, void **);
	create_fn create = (create_fn)gipa(instance, "vkCreateDevice");
	if (!create) return -7; // VK_ERROR_EXTENSION_NOT_PRESENT stands in for "no entry point"

	sp_features2 f2;
	memset(&f2, 0, sizeof f2);
	f2.sType = ST_FEATURES2;
	f2.f[SP_F_INT16] = en->shader_int16;
	f2.f[SP_F_INT64] = en->shader_int64;
	f2.f[SP_F_FLOAT64] = en->shader_float64;
	sp_base *tail = (sp_base *)&f2;
	sp_sgsc_feats sgf; memset(&sgf, 0, sizeof sgf);
	if (exts & SP_EXT_SUBGROUP_SIZE_CONTROL) {
		sp_link(&tail, &sgf, ST_SGSC_FEATS);
		sgf.control = en->subgroup_size_control;
		sgf.fullSubgroups = en->compute_full_subgroups;
	}
	sp_16bit_feats b16; memset(&b16, 0, sizeof b16);
	if (exts & SP_EXT_16BIT_STORAGE) {
		sp_link(&tail, &b16, ST_16BIT_FEATS);
		b16.sb16 = en->storage_buffer_16bit;
		b16.pc16 = en->storage_push_constant_16bit;
	}
	sp_f16i8_feats f16; memset(&f16, 0, sizeof f16);
	if (exts & SP_EXT_FLOAT16_INT8) {
		sp_link(&tail, &f16, ST_F16I8_FEATS);
		f16.f16 = en->shader_float16;
		f16.i8 = en->shader_int8;
	}
	sp_8bit_feats b8; memset(&b8, 0, sizeof b8);
	if (exts & SP_EXT_8BIT_STORAGE) {
		sp_link(&tail, &b8, ST_8BIT_FEATS);
		b8.sb8 = en->storage_buffer_8bit;
	}
	sp_cm_feats cmf; memset(&cmf, 0, sizeof cmf);
	if (exts & SP_EXT_COOPMAT_KHR) {
		sp_link(&tail, &cmf, ST_CM_FEATS);
		cmf.coopmat = en->coopmat;
	}
	sp_cm2_feats cm2; memset(&cm2, 0, sizeof cm2);
	if (exts & SP_EXT_COOPMAT2_NV) {
		sp_link(&tail, &cm2, ST_CM2_FEATS);
		cm2.wg = en->coopmat2_workgroup_scope;
		cm2.flex = en->coopmat2_flexible_dims;
		cm2.red = en->coopmat2_reductions;
		cm2.conv = en->coopmat2_conversions;
		cm2.perel = en->coopmat2_per_element;
		cm2.tensor = en->coopmat2_tensor_addressing;
		cm2.block = en->coopmat2_block_loads;
	}
	sp_mm_feats mm; memset(&mm, 0, sizeof mm);
	if (exts & SP_EXT_MEMORY_MODEL) {
		sp_link(&tail, &mm, ST_MM_FEATS);
		mm.model = en->vulkan_memory_model;
		mm.device_scope = en->vulkan_memory_model_device_scope;
	}
	sp_pe_feats pe; memset(&pe, 0, sizeof pe);
	if (exts & SP_EXT_PIPELINE_EXEC) {
		sp_link(&tail, &pe, ST_PE_FEATS);
		pe.info = en->pipeline_executable_info;
	}

	float prio = 1.0f;
	sp_queue_ci q;
	memset(&q, 0, sizeof q);
	q.sType = ST_QUEUE_CI;
	q.queueFamilyIndex = queue_family;
	q.queueCount = 1;
	q.pQueuePriorities = &prio;

	sp_device_ci ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = ST_DEVICE_CI;
	ci.pNext = &f2;
	ci.queueCreateInfoCount = 1;
	ci.pQueueCreateInfos = &q;
	ci.enabledExtensionCount = n_ext;
	ci.ppEnabledExtensionNames = ext_names;
	void *dev = NULL;
	int32_t r = create(pdev, &ci, NULL, &dev);
	*out_device = dev;
	return r;
}

void *sp_required_subgroup_size_info(uint32_t size) {
	sp_req_sg_size *s = calloc(1, sizeof *s);
	if (!s) return NULL;
	s->sType = ST_REQ_SG_SIZE;
	s->size = size;
	return s;
}

void sp_free(void *p) { free(p); }

// ---- validation messages (VK_EXT_debug_utils) ----

#include <pthread.h>

enum {
	ST_DEBUG_MESSENGER_CI = 1000128004,
	SP_RING_CAP = 128,
	SP_MSG_LEN = 2048,
	SP_SEV_WARNING = 0x100,
	SP_SEV_ERROR = 0x1000,
	SP_TYPE_GENERAL = 0x1,
	SP_TYPE_VALIDATION = 0x2,
	SP_TYPE_PERFORMANCE = 0x4,
};

struct sp_ring {
	pthread_mutex_t mu;
	uint32_t head, count, dropped;
	uint32_t sev[SP_RING_CAP];
	char msg[SP_RING_CAP][SP_MSG_LEN];
};

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	const char *pMessageIdName;
	int32_t messageIdNumber;
	const char *pMessage;
	// labels and objects follow; not read
} sp_dbg_cb_data;

typedef uint32_t (*sp_dbg_cb)(uint32_t severity, uint32_t types, const sp_dbg_cb_data *data, void *user);

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t messageSeverity;
	uint32_t messageType;
	sp_dbg_cb pfnUserCallback;
	void *pUserData;
} sp_dbg_messenger_ci;

sp_ring *sp_ring_new(void) {
	sp_ring *r = calloc(1, sizeof *r);
	if (!r) return NULL;
	pthread_mutex_init(&r->mu, NULL);
	return r;
}

void sp_ring_free(sp_ring *r) {
	if (!r) return;
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static uint32_t sp_debug_callback(uint32_t severity, uint32_t types, const sp_dbg_cb_data *data, void *user) {
	(void)types;
	sp_ring *r = (sp_ring *)user;
	if (!r || !data) return 0;
	pthread_mutex_lock(&r->mu);
	if (r->count == SP_RING_CAP) {
		r->dropped++;
	} else {
		uint32_t i = (r->head + r->count) % SP_RING_CAP;
		r->sev[i] = severity;
		snprintf(r->msg[i], SP_MSG_LEN, "[%s] %s", data->pMessageIdName ? data->pMessageIdName : "-",
		         data->pMessage ? data->pMessage : "(no message)");
		r->count++;
	}
	pthread_mutex_unlock(&r->mu);
	return 0; // VK_FALSE: never abort the call
}

int sp_ring_pop(sp_ring *r, char *buf, int buflen, uint32_t *severity) {
	if (!r || buflen <= 0) return 0;
	pthread_mutex_lock(&r->mu);
	int ok = r->count > 0;
	if (ok) {
		snprintf(buf, buflen, "%s", r->msg[r->head]);
		*severity = r->sev[r->head];
		r->head = (r->head + 1) % SP_RING_CAP;
		r->count--;
	}
	pthread_mutex_unlock(&r->mu);
	return ok;
}

uint32_t sp_ring_dropped(sp_ring *r) {
	if (!r) return 0;
	pthread_mutex_lock(&r->mu);
	uint32_t n = r->dropped;
	r->dropped = 0;
	pthread_mutex_unlock(&r->mu);
	return n;
}

static void sp_fill_messenger_ci(sp_dbg_messenger_ci *ci, sp_ring *r) {
	memset(ci, 0, sizeof *ci);
	ci->sType = ST_DEBUG_MESSENGER_CI;
	ci->messageSeverity = SP_SEV_WARNING | SP_SEV_ERROR;
	ci->messageType = SP_TYPE_GENERAL | SP_TYPE_VALIDATION | SP_TYPE_PERFORMANCE;
	ci->pfnUserCallback = sp_debug_callback;
	ci->pUserData = r;
}

// VkValidationFeaturesEXT (VK_EXT_validation_features, provided by the layer).
typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t enabledCount;
	const int32_t *pEnabled;
	uint32_t disabledCount;
	const int32_t *pDisabled;
} sp_validation_features;

enum { ST_VALIDATION_FEATURES = 1000247000 };

typedef struct {
	sp_dbg_messenger_ci ci;
	sp_validation_features vf;
	int32_t enabled[4];
} sp_messenger_info_block;

void *sp_messenger_info(sp_ring *r, uint32_t features) {
	sp_messenger_info_block *b = calloc(1, sizeof *b);
	if (!b) return NULL;
	sp_fill_messenger_ci(&b->ci, r);
	uint32_t n = 0;
	for (int32_t bit = 0; bit < 4; bit++) {
		// VkValidationFeatureEnableEXT: 0 GPU-assisted, 1 GPU-assisted reserve
		// binding slot, 2 best practices, 3 debugPrintf, 4 synchronization.
		if (features & (1u << bit)) b->enabled[n++] = bit == 3 ? 4 : bit;
	}
	if (n > 0) {
		b->vf.sType = ST_VALIDATION_FEATURES;
		b->vf.enabledCount = n;
		b->vf.pEnabled = b->enabled;
		b->ci.pNext = &b->vf;
	}
	return b;
}

int32_t sp_messenger_create(void *instance, sp_ring *r, void **out) {
	typedef int32_t (*create_fn)(void *, const sp_dbg_messenger_ci *, const void *, void **);
	*out = NULL;
	if (!gipa) return -7;
	create_fn create = (create_fn)gipa(instance, "vkCreateDebugUtilsMessengerEXT");
	if (!create) return -7; // VK_ERROR_EXTENSION_NOT_PRESENT
	sp_dbg_messenger_ci ci;
	sp_fill_messenger_ci(&ci, r);
	return create(instance, &ci, NULL, out);
}

void sp_messenger_destroy(void *instance, void *messenger) {
	typedef void (*destroy_fn)(void *, void *, const void *);
	if (!gipa || !messenger) return;
	destroy_fn destroy = (destroy_fn)gipa(instance, "vkDestroyDebugUtilsMessengerEXT");
	if (destroy) destroy(instance, messenger, NULL);
}

// Enumerations with arrays of structures. vulkan-go's wrappers of these
// (vkEnumerateInstanceLayerProperties, vkEnumerate*ExtensionProperties,
// vkGetPhysicalDeviceQueueFamilyProperties) put the array in C memory whose
// finalizer may run before the call returns, so a garbage collection during
// the call corrupted the C heap (TestGCStress with validation). The arrays
// live here, in C, for the length of the call.
typedef struct {
	char name[256];
	uint32_t spec, impl;
	char desc[256];
} sp_layer_props;
typedef struct {
	char name[256];
	uint32_t spec;
} sp_ext_props;
typedef struct {
	uint32_t flags, count, ts_bits, gran[3];
} sp_qf_props;

int sp_instance_has_layer(const char *name) {
	typedef int32_t (*fn)(uint32_t *, sp_layer_props *);
	if (!gipa) return 0;
	fn e = (fn)gipa(NULL, "vkEnumerateInstanceLayerProperties");
	uint32_t n = 0;
	if (!e || e(&n, NULL) < 0 || n == 0) return 0;
	sp_layer_props *p = calloc(n, sizeof *p);
	if (!p) return 0;
	int found = 0;
	if (e(&n, p) >= 0) {
		for (uint32_t i = 0; i < n && !found; i++) found = strncmp(p[i].name, name, sizeof p[i].name) == 0;
	}
	free(p);
	return found;
}

// sp_ext_names lists extension properties through e (instance: inst NULL,
// pdev NULL) into buf as '\n'-terminated names; it returns the count, or -1
// when buf is too small (*need then says how large).
static int sp_ext_names(int32_t (*inst_e)(const char *, uint32_t *, sp_ext_props *),
                        int32_t (*dev_e)(void *, const char *, uint32_t *, sp_ext_props *), void *pdev,
                        const char *layer, char *buf, uint32_t buflen, uint32_t *need) {
	uint32_t n = 0;
	int32_t r = inst_e ? inst_e(layer, &n, NULL) : dev_e(pdev, layer, &n, NULL);
	if (r < 0 || n == 0) {
		*need = 0;
		return 0;
	}
	sp_ext_props *p = calloc(n, sizeof *p);
	if (!p) return -1;
	r = inst_e ? inst_e(layer, &n, p) : dev_e(pdev, layer, &n, p);
	if (r < 0) {
		free(p);
		*need = 0;
		return 0;
	}
	uint32_t size = 0;
	for (uint32_t i = 0; i < n; i++) size += (uint32_t)strnlen(p[i].name, sizeof p[i].name) + 1;
	*need = size;
	if (size > buflen) {
		free(p);
		return -1;
	}
	char *w = buf;
	for (uint32_t i = 0; i < n; i++) {
		size_t l = strnlen(p[i].name, sizeof p[i].name);
		memcpy(w, p[i].name, l);
		w[l] = '\n';
		w += l + 1;
	}
	free(p);
	return (int)n;
}

int sp_instance_ext_names(const char *layer, char *buf, uint32_t buflen, uint32_t *need) {
	typedef int32_t (*fn)(const char *, uint32_t *, sp_ext_props *);
	if (!gipa) return 0;
	fn e = (fn)gipa(NULL, "vkEnumerateInstanceExtensionProperties");
	if (!e) return 0;
	return sp_ext_names(e, NULL, NULL, layer, buf, buflen, need);
}

int sp_device_ext_names(void *instance, void *pdev, char *buf, uint32_t buflen, uint32_t *need) {
	typedef int32_t (*fn)(void *, const char *, uint32_t *, sp_ext_props *);
	if (!gipa) return 0;
	fn e = (fn)gipa(instance, "vkEnumerateDeviceExtensionProperties");
	if (!e) return 0;
	return sp_ext_names(NULL, e, pdev, NULL, buf, buflen, need);
}

uint32_t sp_queue_families(void *instance, void *pdev, uint32_t *flags, uint32_t *ts_bits, uint32_t max) {
	typedef void (*fn)(void *, uint32_t *, sp_qf_props *);
	if (!gipa) return 0;
	fn g = (fn)gipa(instance, "vkGetPhysicalDeviceQueueFamilyProperties");
	uint32_t n = 0;
	if (!g) return 0;
	g(pdev, &n, NULL);
	if (n == 0) return 0;
	sp_qf_props *p = calloc(n, sizeof *p);
	if (!p) return 0;
	g(pdev, &n, p);
	if (n > max) n = max;
	for (uint32_t i = 0; i < n; i++) {
		flags[i] = p[i].flags;
		ts_bits[i] = p[i].ts_bits;
	}
	free(p);
	return n;
}
