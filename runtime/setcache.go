package runtime

// The descriptor sets of a recorder's dispatches, kept across batches.
//
// A dispatch's descriptor set holds nothing but its bindings (buffer, offset
// and range of each), so a set written once serves every later dispatch with
// the same bindings, of any kernel with as many bindings (set layouts are per
// binding count). A prefill records the same bindings at every call of the
// same length: from the second call on, its dispatches allocate and write no
// descriptor set (two Vulkan calls, and the driver's descriptor writes, per
// dispatch).
//
// Sets are keyed by the memory block's id, which no later block reuses (a
// VkBuffer handle may be): a set whose buffer was freed is never looked up
// again. Cached sets are never written again, so a batch in flight may bind
// one while the host records the next. The cache holds up to maxCachedSets;
// once full, dispatches take sets from the frame's pools (reset when the
// frame completes), and the cache empties at the next batch that begins with
// nothing in flight. A Replay's recorder caches nothing (its sets live as
// long as its recording, in its frame's pools).

// maxCachedSets bounds a recorder's cached descriptor sets (16 pools).
const maxCachedSets = 16 * setsPerPool

// setBinding is one binding of a descriptor set: the block, and the byte
// offset and range in its buffer.
type setBinding struct {
	blk       int
	off, size uint64
}

// setKey is a descriptor set's content.
type setKey struct {
	n int
	b [maxKernelBindings]setBinding
}

type setCache struct {
	m     map[setKey]uint64 // VkDescriptorSet by content
	pools []uint64          // VkDescriptorPool
	cur   int               // the pool new sets come from
	used  int               // sets allocated from pools[cur]
}

func (c *setCache) get(k *setKey) (uint64, bool) {
	s, ok := c.m[*k]
	return s, ok
}

// pool returns the pool a new set is allocated from, or 0 when the cache is
// full.
func (c *setCache) pool(d *Device) (uint64, error) {
	if c.used >= setsPerPool {
		c.cur++
		c.used = 0
	}
	if c.cur < len(c.pools) {
		return c.pools[c.cur], nil
	}
	if len(c.pools) >= maxCachedSets/setsPerPool {
		return 0, nil
	}
	p, err := d.createDescriptorPool(setsPerPool, setsPerPool*maxKernelBindings)
	if err != nil {
		return 0, err
	}
	c.pools = append(c.pools, p)
	c.cur, c.used = len(c.pools)-1, 0
	return p, nil
}

// owns reports whether p is the pool new sets come from.
func (c *setCache) owns(p uint64) bool { return c.cur < len(c.pools) && c.pools[c.cur] == p }

// next is pool after the current pool ran out of memory.
func (c *setCache) next(d *Device) (uint64, error) {
	c.used = setsPerPool
	return c.pool(d)
}

// add records set, just allocated from pool, under k; false when pool is
// not the cache's (a frame's).
func (c *setCache) add(k *setKey, pool, set uint64) bool {
	if !c.owns(pool) {
		return false
	}
	c.used++
	if c.m == nil {
		c.m = map[setKey]uint64{}
	}
	c.m[*k] = set
	return true
}

// trim empties a full cache; only while no batch in flight may bind a set.
func (c *setCache) trim(d *Device) {
	if len(c.pools) < maxCachedSets/setsPerPool || c.cur < len(c.pools)-1 || c.used < setsPerPool || d.isLost() {
		return
	}
	for _, p := range c.pools {
		d.resetDescriptorPool(p)
	}
	clear(c.m)
	c.cur, c.used = 0, 0
}

func (c *setCache) destroy(d *Device) {
	for _, p := range c.pools {
		d.destroyDescriptorPool(p)
	}
	*c = setCache{}
}
