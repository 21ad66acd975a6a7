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
#include <limits.h>
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

static int store_pairs_core(PyObject *d, PyObject *expires, PyObject *items, Py_ssize_t start);

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
    for (Py_ssize_t i = start; i < len; i++) {
        if (!PyBytes_CheckExact(PyList_GET_ITEM(items, i))) {
            PyErr_SetString(PyExc_TypeError, "keys and values must be bytes");
            return NULL;
        }
    }
    if (store_pairs_core(d, expires, items, start) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The stores of store_pairs, its arguments checked: items[start:] whole pairs of bytes. */
static int store_pairs_core(PyObject *d, PyObject *expires, PyObject *items, Py_ssize_t start)
{
    Py_ssize_t len = PyList_GET_SIZE(items);
    Py_ssize_t n = (len - start) / 2;
    /* `it` points into the list's storage: nothing below runs Python code that could
     * resize it (bytes keys hash and compare in C; a replaced value is only released). */
    PyObject **it = &PyList_GET_ITEM(items, start);
#ifdef STORE_PREFETCH
    Py_hash_t hashes[RING];
    for (Py_ssize_t i = 0; i < n + 3 * DIST; i++) {
        if (i < n) {
            /* Stage 1: hash (cached in the bytes object) and fetch the index slot. */
            Py_hash_t h = PyObject_Hash(it[2 * i]);
            if (h == -1)
                return -1;
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
                return -1;
        }
    }
#else
    for (Py_ssize_t j = 0; j < n; j++) {
        if (PyDict_SetItem(d, it[2 * j], it[2 * j + 1]) < 0)
            return -1;
    }
#endif
    if (PyDict_GET_SIZE(expires) > 0) {
        for (Py_ssize_t j = 0; j < n; j++) {
            int has = PyDict_Contains(expires, it[2 * j]);
            if (has < 0 || (has && PyDict_DelItem(expires, it[2 * j]) < 0))
                return -1;
        }
    }
    return 0;
}

/* ---- apply_run: the stream's hottest appliers, several commands per call ----
 *
 * configure(ListValue, ZSet, zset_max_listpack_value) -> None
 *     The keyspace's value classes (keyspace.values), given once at import.
 * apply_run(d, expires, commands, start, keep[, calls]) -> (next, applied)
 *     Applies commands[start], commands[start + 1], ... (StreamCommand tuples: argv, raw,
 *     end_offset, commands) to one database (`d`, its `expires`) while each is one this lane
 *     knows in its plain form on a key of the expected type; appends each applied command's
 *     raw bytes to `keep`; returns the index of the first command NOT applied and the sum of
 *     the applied items' `commands`. With `calls` (a dict), counts each applied item there
 *     as INFO commandstats will (replication.py `ReplStats.calls`): its `commands` under its
 *     name as sent, or under b"set" for a merged run of SETs (named b"MSET": stream.py
 *     `count_key`). It stops BEFORE anything unusual (another command, an
 *     option, a value of another type or shape, a number it does not parse, an overflow, a
 *     zero score): the caller applies that one through the Python applier, which is the
 *     reference, and may call again after it.
 *
 * The Python twin is keyspace/lane.py `apply_run` (same commands, same stop conditions, same
 * stores, tested against this one and against the per-command appliers); its docstring lists
 * what each command does. The caller guarantees what makes a write need nothing else: no
 * key watcher (`on_key_modified`) and no unsupported key to clear.
 *
 * Why: at full write speed a real replica applies a command in ~0.2 us; the Python path
 * (dispatch, applier, lookups) costs 1-2 us a command for these, and was the lag the relay
 * built behind a master fed by redis-benchmark. */

static PyObject *ListValueType, *ZSetType;
static Py_ssize_t zset_max_listpack_value = 64;
static PyObject *s_extend, *s_extendleft, *s_pop, *s_popleft, *s_add, *s_listpack, *s_index;

static PyObject *configure(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "configure(ListValue, ZSet, zset_max_listpack_value)");
        return NULL;
    }
    Py_ssize_t v = PyLong_AsSsize_t(args[2]);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    Py_INCREF(args[0]);
    Py_INCREF(args[1]);
    Py_XSETREF(ListValueType, args[0]);
    Py_XSETREF(ZSetType, args[1]);
    zset_max_listpack_value = v;
    Py_RETURN_NONE;
}

/* Redis's string2ll: optional '-', no leading zero, no '+', no blanks, fits a long long. */
static int ll_from_bytes(PyObject *b, long long *out)
{
    const char *p = PyBytes_AS_STRING(b);
    Py_ssize_t n = PyBytes_GET_SIZE(b);
    if (n <= 0 || n > 20)
        return 0;
    if (n == 1 && p[0] == '0') {
        *out = 0;
        return 1;
    }
    int neg = 0;
    Py_ssize_t i = 0;
    if (p[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i >= n || p[i] < '1' || p[i] > '9')
        return 0;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        if (v > (ULLONG_MAX - 9) / 10)
            return 0;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1)
            return 0;
        *out = (long long)(0ULL - v);
    } else {
        if (v > (unsigned long long)LLONG_MAX)
            return 0;
        *out = (long long)v;
    }
    return 1;
}

/* A score in the plain decimal form `-?[0-9]+(\.[0-9]+)?` (what clients nearly always
 * send), read as float() reads it; anything else goes to the exact Python parser. */
static int plain_score(PyObject *b, double *out)
{
    const char *p = PyBytes_AS_STRING(b);
    Py_ssize_t n = PyBytes_GET_SIZE(b), i = 0;
    if (n == 0 || n > 40)
        return 0;
    if (p[0] == '-')
        i = 1;
    Py_ssize_t digits = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        i++;
        digits++;
    }
    if (digits == 0)
        return 0;
    if (i < n && p[i] == '.') {
        i++;
        Py_ssize_t frac = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            i++;
            frac++;
        }
        if (frac == 0)
            return 0;
    }
    if (i != n)
        return 0;
    /* The bytes object is NUL-terminated and all of it was checked above. */
    double v = PyOS_string_to_double(p, NULL, NULL);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *out = v;
    return 1;
}

/* `name` (bytes) equals the lowercase `lower` of length n, in any case. */
static inline int name_is(const char *name, Py_ssize_t len, const char *lower, Py_ssize_t n)
{
    if (len != n)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lower[i])
            return 0;
    }
    return 1;
}

static int drop_ttl(PyObject *expires, PyObject *key)
{
    if (PyDict_GET_SIZE(expires) == 0)
        return 0;
    int has = PyDict_Contains(expires, key);
    if (has < 0)
        return -1;
    return has ? PyDict_DelItem(expires, key) : 0;
}

/* Keyspace.set (TTL dropped). */
static int store_new(PyObject *d, PyObject *expires, PyObject *key, PyObject *value)
{
    int r = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return r < 0 ? -1 : drop_ttl(expires, key);
}

/* Keyspace.delete of a key known to exist. */
static int delete_key(PyObject *d, PyObject *expires, PyObject *key)
{
    return PyDict_DelItem(d, key) < 0 ? -1 : drop_ttl(expires, key);
}

enum { C_NONE, C_SET, C_MSET, C_INCR, C_DECR, C_INCRBY, C_DECRBY, C_LPUSH, C_RPUSH, C_LPOP,
       C_RPOP, C_ZADD };

static int command_of(PyObject *name)
{
    const char *p = PyBytes_AS_STRING(name);
    Py_ssize_t n = PyBytes_GET_SIZE(name);
    switch (n) {
    case 3:
        return name_is(p, n, "set", 3) ? C_SET : C_NONE;
    case 4:
        if (name_is(p, n, "mset", 4))
            return C_MSET;
        if (name_is(p, n, "incr", 4))
            return C_INCR;
        if (name_is(p, n, "decr", 4))
            return C_DECR;
        if (name_is(p, n, "lpop", 4))
            return C_LPOP;
        if (name_is(p, n, "rpop", 4))
            return C_RPOP;
        if (name_is(p, n, "zadd", 4))
            return C_ZADD;
        return C_NONE;
    case 5:
        if (name_is(p, n, "lpush", 5))
            return C_LPUSH;
        if (name_is(p, n, "rpush", 5))
            return C_RPUSH;
        return C_NONE;
    case 6:
        if (name_is(p, n, "incrby", 6))
            return C_INCRBY;
        if (name_is(p, n, "decrby", 6))
            return C_DECRBY;
        return C_NONE;
    }
    return C_NONE;
}

/* One command: 1 applied, 0 not this lane's (nothing changed), -1 error (raised). */
static int apply_one(PyObject *d, PyObject *expires, PyObject *argv)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    PyObject **a = &PyList_GET_ITEM(argv, 0);
    for (Py_ssize_t i = 0; i < argc; i++) {
        if (!PyBytes_CheckExact(a[i]))
            return 0;
    }
    int cmd = command_of(a[0]);
    if (cmd == C_NONE || argc < 2)
        return 0;
    PyObject *key = a[1];
    switch (cmd) {
    case C_SET:
        if (argc != 3)
            return 0;
        if (PyDict_SetItem(d, key, a[2]) < 0)
            return -1;
        return drop_ttl(expires, key) < 0 ? -1 : 1;
    case C_MSET:
        if (argc < 3 || argc % 2 == 0)
            return 0;
        return store_pairs_core(d, expires, argv, 1) < 0 ? -1 : 1;
    case C_INCR:
    case C_DECR:
    case C_INCRBY:
    case C_DECRBY: {
        long long by = cmd == C_INCR ? 1 : -1, cur = 0, v;
        if (cmd == C_INCR || cmd == C_DECR) {
            if (argc != 2)
                return 0;
        } else {
            if (argc != 3 || !ll_from_bytes(a[2], &by))
                return 0;
            if (cmd == C_DECRBY) {
                if (by == LLONG_MIN)
                    return 0;
                by = -by;
            }
        }
        PyObject *old = PyDict_GetItemWithError(d, key);
        if (old == NULL && PyErr_Occurred())
            return -1;
        if (old != NULL && (!PyBytes_CheckExact(old) || !ll_from_bytes(old, &cur)))
            return 0;
        if (__builtin_add_overflow(cur, by, &v))
            return 0;
        char buf[24];
        int len = snprintf(buf, sizeof buf, "%lld", v);
        PyObject *nv = PyBytes_FromStringAndSize(buf, len);
        if (nv == NULL)
            return -1;
        int r = PyDict_SetItem(d, key, nv); /* the TTL is kept */
        Py_DECREF(nv);
        return r < 0 ? -1 : 1;
    }
    case C_LPUSH:
    case C_RPUSH: {
        if (argc < 3)
            return 0;
        PyObject *old = PyDict_GetItemWithError(d, key);
        if (old == NULL && PyErr_Occurred())
            return -1;
        if (old != NULL && Py_TYPE(old) != (PyTypeObject *)ListValueType)
            return 0;
        PyObject *elems = PyList_GetSlice(argv, 2, argc);
        if (elems == NULL)
            return -1;
        if (old == NULL) {
            if (cmd == C_LPUSH && PyList_Reverse(elems) < 0) {
                Py_DECREF(elems);
                return -1;
            }
            PyObject *lv = PyObject_CallOneArg(ListValueType, elems);
            Py_DECREF(elems);
            if (lv == NULL)
                return -1;
            return store_new(d, expires, key, lv) < 0 ? -1 : 1;
        }
        PyObject *r = PyObject_CallMethodOneArg(old, cmd == C_LPUSH ? s_extendleft : s_extend,
                                                elems);
        Py_DECREF(elems);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return 1;
    }
    case C_LPOP:
    case C_RPOP: {
        if (argc != 2)
            return 0;
        PyObject *old = PyDict_GetItemWithError(d, key);
        if (old == NULL)
            return PyErr_Occurred() ? -1 : 1; /* nothing to pop */
        if (Py_TYPE(old) != (PyTypeObject *)ListValueType)
            return 0;
        Py_ssize_t len = PyObject_Length(old);
        if (len < 0)
            return -1;
        if (len == 0)
            return 0;
        PyObject *r = PyObject_CallMethodNoArgs(old, cmd == C_LPOP ? s_popleft : s_pop);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        if (len == 1)
            return delete_key(d, expires, key) < 0 ? -1 : 1;
        return 1;
    }
    case C_ZADD: {
        double score;
        if (argc != 4 || !plain_score(a[2], &score) || score == 0.0)
            return 0; /* options, other forms; a zero's sign depends on the encoding */
        PyObject *member = a[3];
        PyObject *old = PyDict_GetItemWithError(d, key);
        if (old == NULL && PyErr_Occurred())
            return -1;
        if (old != NULL) {
            if (Py_TYPE(old) != (PyTypeObject *)ZSetType)
                return 0;
            PyObject *lp = PyObject_GetAttr(old, s_listpack);
            if (lp == NULL)
                return -1;
            int small = PyObject_IsTrue(lp);
            Py_DECREF(lp);
            if (small != 0)
                return small < 0 ? -1 : 0; /* a listpack may convert: the Python way */
            PyObject *idx = PyObject_GetAttr(old, s_index);
            if (idx == NULL)
                return -1;
            Py_DECREF(idx);
            PyObject *cur0 = idx == Py_None ? PyDict_GetItemWithError(old, member) : NULL;
            if (cur0 == NULL && PyErr_Occurred())
                return -1;
            if (idx == Py_None && (cur0 == NULL || PyFloat_CheckExact(cur0))) {
                /* ZSet.add with no index to keep (none built yet: a zset nobody reads):
                 * the dict store alone, an equal score changing nothing. */
                if (cur0 != NULL && PyFloat_AS_DOUBLE(cur0) == score)
                    return 1;
                PyObject *f = PyFloat_FromDouble(score);
                if (f == NULL)
                    return -1;
                int r = PyDict_SetItem(old, member, f);
                Py_DECREF(f);
                return r < 0 ? -1 : 1;
            }
            PyObject *f = PyFloat_FromDouble(score);
            if (f == NULL)
                return -1;
            PyObject *r = PyObject_CallMethodObjArgs(old, s_add, member, f, NULL);
            Py_DECREF(f);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
            return 1;
        }
        PyObject *items = Py_BuildValue("((Od))", member, score);
        if (items == NULL)
            return -1;
        PyObject *zs = PyObject_CallFunction(
            ZSetType, "(OO)", items,
            PyBytes_GET_SIZE(member) <= zset_max_listpack_value ? Py_True : Py_False);
        Py_DECREF(items);
        if (zs == NULL)
            return -1;
        return store_new(d, expires, key, zs) < 0 ? -1 : 1;
    }
    }
    return 0;
}

/* The count key of a merged run of SETs (its argv is an MSET, but it stands for SETs). */
static PyObject *merged_sets_key;

/* calls[key] += n */
static int count_call(PyObject *calls, PyObject *key, Py_ssize_t n)
{
    PyObject *old = PyDict_GetItemWithError(calls, key);
    if (old == NULL && PyErr_Occurred())
        return -1;
    if (old != NULL) {
        Py_ssize_t v = PyLong_AsSsize_t(old);
        if (v == -1 && PyErr_Occurred())
            return -1;
        n += v;
    }
    PyObject *total = PyLong_FromSsize_t(n);
    if (total == NULL)
        return -1;
    int r = PyDict_SetItem(calls, key, total);
    Py_DECREF(total);
    return r;
}

static PyObject *apply_run(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if ((nargs != 5 && nargs != 6) || !PyDict_CheckExact(args[0]) ||
        !PyDict_CheckExact(args[1]) || !PyList_CheckExact(args[2]) ||
        !PyList_CheckExact(args[4]) || (nargs == 6 && !PyDict_CheckExact(args[5]))) {
        PyErr_SetString(PyExc_TypeError, "apply_run(d: dict, expires: dict, commands: list, "
                                         "start: int, keep: list[, calls: dict])");
        return NULL;
    }
    PyObject *calls = nargs == 6 ? args[5] : NULL;
    /* Consecutive items of one name are counted once, when the name changes: the stream's
     * hot writes come in long runs of one command, and a dict update per item would cost
     * more than some of the appliers. `run_key` is held (a strong reference). */
    PyObject *run_key = NULL;
    Py_ssize_t run_n = 0;
    if (ListValueType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "apply_run: configure() first");
        return NULL;
    }
    PyObject *d = args[0], *expires = args[1], *commands = args[2], *keep = args[4];
    Py_ssize_t start = PyLong_AsSsize_t(args[3]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t i = start < 0 ? 0 : start, applied = 0;
    PyObject *result = NULL;
    for (; i < PyList_GET_SIZE(commands); i++) {
        PyObject *cmd = PyList_GET_ITEM(commands, i);
        if (!PyTuple_Check(cmd) || PyTuple_GET_SIZE(cmd) != 4)
            break;
        PyObject *argv = PyTuple_GET_ITEM(cmd, 0);
        if (!PyList_CheckExact(argv) || PyList_GET_SIZE(argv) < 2)
            break;
        Py_ssize_t count = PyLong_AsSsize_t(PyTuple_GET_ITEM(cmd, 3));
        if (count == -1 && PyErr_Occurred())
            goto done;
        /* An applier may release a value (a deleted key): hold the command meanwhile. */
        Py_INCREF(cmd);
        int r = apply_one(d, expires, argv);
        if (r > 0 && PyList_Append(keep, PyTuple_GET_ITEM(cmd, 1)) < 0)
            r = -1;
        if (r > 0 && calls != NULL) {
            PyObject *key = PyList_GET_ITEM(argv, 0);
            if (count > 1 && PyBytes_Check(key) && PyBytes_GET_SIZE(key) == 4 &&
                memcmp(PyBytes_AS_STRING(key), "MSET", 4) == 0)
                key = merged_sets_key; /* stream.py SET_RUN */
            if (run_key != NULL && PyBytes_Check(key) &&
                PyBytes_GET_SIZE(key) == PyBytes_GET_SIZE(run_key) &&
                memcmp(PyBytes_AS_STRING(key), PyBytes_AS_STRING(run_key),
                       PyBytes_GET_SIZE(key)) == 0) {
                run_n += count;
            } else {
                if (run_key != NULL && count_call(calls, run_key, run_n) < 0)
                    r = -1;
                Py_INCREF(key);
                Py_XSETREF(run_key, key);
                run_n = count;
            }
        }
        Py_DECREF(cmd);
        if (r < 0)
            goto done;
        if (r == 0)
            break;
        applied += count;
    }
    if (run_key != NULL && count_call(calls, run_key, run_n) < 0)
        goto done;
    result = Py_BuildValue("(nn)", i, applied);
done:
    Py_XDECREF(run_key);
    return result;
}

static PyMethodDef methods[] = {
    {"store_pairs", (PyCFunction)(void (*)(void))store_pairs, METH_FASTCALL,
     "store_pairs(d, expires, items, start): d[k] = v for each (k, v) pair of "
     "items[start:], dropping k's TTL from expires; memory prefetched"},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(ListValue, ZSet, zset_max_listpack_value): the value classes apply_run makes"},
    {"apply_run", (PyCFunction)(void (*)(void))apply_run, METH_FASTCALL,
     "apply_run(d, expires, commands, start, keep[, calls]) -> (next, applied): apply the stream's "
     "plain hot commands until one needs the Python appliers"},
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
    if (!(s_extend = PyUnicode_InternFromString("extend")) ||
        !(s_extendleft = PyUnicode_InternFromString("extendleft")) ||
        !(s_pop = PyUnicode_InternFromString("pop")) ||
        !(s_popleft = PyUnicode_InternFromString("popleft")) ||
        !(s_add = PyUnicode_InternFromString("add")) ||
        !(s_listpack = PyUnicode_InternFromString("listpack")) ||
        !(s_index = PyUnicode_InternFromString("_index")) ||
        !(merged_sets_key = PyBytes_FromString("set")))
        return NULL;
    return PyModule_Create(&module);
}
