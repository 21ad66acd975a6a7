/* replproxy.keyspace._store: storing many string keys at once, with memory prefetching.
 *
 * store_pairs(d, expires, items, start) -> None
 *     For each pair items[start], items[start + 1], items[start + 2], ... (key, value), in
 *     order: d[key] = value, and the key's TTL dropped from `expires` (a dict) when that
 *     holds any. Exactly `d.update(pairs)` plus `expires.pop(key, None)` per key, a later
 *     duplicate key winning. `items` is a list of bytes; an odd tail is an error.
 *
 * Why: MSET at full speed (redis-benchmark -P 16) is the heaviest string load a master
 * streams, and storing its keys into a dict of 100k+ keys is bound by memory latency, not
 * by instructions: each store misses the cache on the dict's index slot, its entry, the
 * stored key (compared) and the old value (freed), ~300 ns a key on our test machine
 * against ~35 ns when the dict is hot. Like Valkey 8's batched prefetching, the loop runs a
 * pipeline over the pairs: it hashes a key and prefetches its index slot, some keys later
 * reads the slot and prefetches the entry, later still prefetches the entry's key and old
 * value (and the allocator pool header the free will touch), and stores it last, when those
 * lines have arrived. That halves the cost of a key.
 *
 * The pipeline reads CPython 3.11's private dict layout (Include/internal/pycore_dict.h)
 * for its hints, and only on 3.11: elsewhere the loop stores without prefetching. The
 * reads never trust a stale table: every stage looks at the dict's current keys object
 * (a store may resize it), checks the entry index against its bounds, and only ever
 * prefetches what it finds, which cannot fault. The stores themselves are PyDict_SetItem.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && defined(__GNUC__)
#define STORE_PREFETCH 1

/* struct _dictkeysobject and PyDictKeyEntry of CPython 3.11 (pycore_dict.h). */
typedef struct {
    Py_ssize_t dk_refcnt;
    uint8_t dk_log2_size;
    uint8_t dk_log2_index_bytes;
    uint8_t dk_kind;
    uint32_t dk_version;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];
} keys311;

typedef struct {
    Py_hash_t me_hash;
    PyObject *me_key;
    PyObject *me_value;
} entry311;

#define DICT_KEYS_GENERAL 0
/* pymalloc's pool size in 64-bit 3.11 (USE_LARGE_POOLS: 16 KiB); a free reads the header
 * at the start of the object's pool. */
#define POOL_MASK (~(uintptr_t)16383)

/* The dict's current table, when it is one whose entries carry hashes (bytes keys). */
static inline keys311 *general_keys(PyObject *d)
{
    keys311 *k = (keys311 *)((PyDictObject *)d)->ma_keys;
    return k->dk_kind == DICT_KEYS_GENERAL ? k : NULL;
}

static inline size_t slot_of(keys311 *k, Py_hash_t h)
{
    return (size_t)h & (((size_t)1 << k->dk_log2_size) - 1);
}

static inline int index_width_log2(keys311 *k)
{
    return k->dk_log2_index_bytes - k->dk_log2_size;
}

static inline Py_ssize_t index_at(keys311 *k, size_t slot)
{
    switch (index_width_log2(k)) {
    case 0:
        return ((int8_t *)k->dk_indices)[slot];
    case 1:
        return ((int16_t *)k->dk_indices)[slot];
    case 2:
        return ((int32_t *)k->dk_indices)[slot];
    default:
        return ((int64_t *)k->dk_indices)[slot];
    }
}

/* The entry a key's first probe lands on, or NULL (empty slot, other table kind). */
static inline entry311 *first_entry(PyObject *d, Py_hash_t h)
{
    keys311 *k = general_keys(d);
    if (k == NULL)
        return NULL;
    Py_ssize_t ix = index_at(k, slot_of(k, h));
    if (ix < 0 || ix >= k->dk_nentries)
        return NULL;
    return (entry311 *)(k->dk_indices + ((size_t)1 << k->dk_log2_index_bytes)) + ix;
}

/* Pipeline distance, in keys, between stages: far enough for a miss (~100-300 ns) to
 * complete, near enough that the lines are still cached when used. Measured: 4-10 alike. */
#define DIST 6
#define RING 32 /* > 3 * DIST, a power of two */
#endif

static PyObject *store_pairs(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1]) ||
        !PyList_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "store_pairs(d: dict, expires: dict, items: list, start: int)");
        return NULL;
    }
    PyObject *d = args[0], *expires = args[1], *items = args[2];
    Py_ssize_t start = PyLong_AsSsize_t(args[3]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t len = PyList_GET_SIZE(items);
    if (start < 0 || start > len || (len - start) % 2 != 0) {
        PyErr_SetString(PyExc_ValueError, "items[start:] must hold whole (key, value) pairs");
        return NULL;
    }
    Py_ssize_t n = (len - start) / 2;
    /* `it` points into the list's storage: nothing below runs Python code that could
     * resize it (bytes keys hash and compare in C; a replaced value is only released). */
    for (Py_ssize_t i = start; i < len; i++) {
        if (!PyBytes_CheckExact(PyList_GET_ITEM(items, i))) {
            PyErr_SetString(PyExc_TypeError, "keys and values must be bytes");
            return NULL;
        }
    }
    PyObject **it = &PyList_GET_ITEM(items, start);
#ifdef STORE_PREFETCH
    Py_hash_t hashes[RING];
    for (Py_ssize_t i = 0; i < n + 3 * DIST; i++) {
        if (i < n) {
            /* Stage 1: hash (cached in the bytes object) and fetch the index slot. */
            Py_hash_t h = PyObject_Hash(it[2 * i]);
            if (h == -1)
                return NULL;
            hashes[i % RING] = h;
            keys311 *k = general_keys(d);
            if (k != NULL)
                __builtin_prefetch(k->dk_indices + (slot_of(k, h) << index_width_log2(k)));
        }
        Py_ssize_t j = i - DIST;
        if (j >= 0 && j < n) {
            /* Stage 2: the slot has arrived; fetch the entry it points to. */
            entry311 *e = first_entry(d, hashes[j % RING]);
            if (e != NULL)
                __builtin_prefetch(e);
        }
        j = i - 2 * DIST;
        if (j >= 0 && j < n) {
            /* Stage 3: the entry has arrived; fetch the key it compares and the value (and
             * its pool header) the store will release. */
            entry311 *e = first_entry(d, hashes[j % RING]);
            if (e != NULL && e->me_hash == hashes[j % RING] && e->me_key != NULL) {
                __builtin_prefetch(e->me_key);
                if (e->me_value != NULL) {
                    __builtin_prefetch(e->me_value, 1);
                    __builtin_prefetch((void *)((uintptr_t)e->me_value & POOL_MASK), 1);
                }
            }
        }
        j = i - 3 * DIST;
        if (j >= 0 && j < n) {
            if (PyDict_SetItem(d, it[2 * j], it[2 * j + 1]) < 0)
                return NULL;
        }
    }
#else
    for (Py_ssize_t j = 0; j < n; j++) {
        if (PyDict_SetItem(d, it[2 * j], it[2 * j + 1]) < 0)
            return NULL;
    }
#endif
    if (PyDict_GET_SIZE(expires) > 0) {
        for (Py_ssize_t j = 0; j < n; j++) {
            int has = PyDict_Contains(expires, it[2 * j]);
            if (has < 0 || (has && PyDict_DelItem(expires, it[2 * j]) < 0))
                return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"store_pairs", (PyCFunction)(void (*)(void))store_pairs, METH_FASTCALL,
     "store_pairs(d, expires, items, start): d[k] = v for each (k, v) pair of "
     "items[start:], dropping k's TTL from expires; memory prefetched"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "replproxy.keyspace._store",
    "Storing many string keys at once, with memory prefetching (see _store.c).",
    -1,
    methods,
};

PyMODINIT_FUNC PyInit__store(void)
{
    return PyModule_Create(&module);
}
