package vaultplugin

import (
	"fmt"
	"testing"
)

// Issue 22 item 8: a full cache keeps filling. A fill whose storage read
// overlapped the eviction of another entry is cached; a fill of the very key
// that was evicted (it may have been a writer's newer copy) or dropped is not.
func TestStoreCache_fullCacheKeepsFilling(t *testing.T) {
	c := newStoreCache[int](4)
	for i := range 4 {
		c.put(fmt.Sprint("k", i), i)
	}
	// Two readers miss at once; the first fill evicts an entry.
	genA, genB := c.generation(), c.generation()
	c.fill("a", 10, genA)
	if _, ok := c.get("a"); !ok {
		t.Fatal("first fill refused")
	}
	c.fill("b", 11, genB)
	if _, ok := c.get("b"); !ok {
		t.Fatal("a fill was refused because another key was evicted during its read")
	}

	// A reader of k that read storage before k (a writer's copy) was evicted
	// must not cache what it read.
	c.put("k", 99) // the writer's copy
	gen := c.generation()
	for i := 0; ; i++ { // fills of other keys until k is evicted
		c.put(fmt.Sprint("x", i), i)
		if _, ok := c.get("k"); !ok {
			break
		}
	}
	c.fill("k", 1, gen) // the stale read
	if v, ok := c.get("k"); ok {
		t.Fatalf("an evicted key was re-cached from a read older than its eviction: %d", v)
	}

	// A drop still blocks every fill in flight.
	gen = c.generation()
	c.drop("zz")
	c.fill("y", 5, gen)
	if _, ok := c.get("y"); ok {
		t.Fatal("a fill racing a drop was cached")
	}

	// More evictions than the ring remembers: refused (cannot tell).
	gen = c.generation()
	for i := range evictRing + 1 {
		c.put(fmt.Sprint("z", i), i)
	}
	c.fill("w", 1, gen)
	if _, ok := c.get("w"); ok {
		t.Fatal("a fill past the eviction ring was cached")
	}
}
