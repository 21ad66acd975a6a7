/* The fast lanes of canonical RESP input (module replproxy.resp._lanes).
 *
 * Each lane takes runs of complete, canonically encoded multibulk commands and stops at
 * anything else (inline, `*0`, leading zeros, an incomplete command), which the exact Python
 * scanner then takes; each has a pure-Python twin with the same semantics, which is the
 * reference (the tests compare them).
 *
 * string_reads(buf, pos, db, expires, now, null, max_bulk, max_mbulk, max_out[, slots])
 *         -> (pos, replies, count, last, gets, lookups, misses, wrongtype)
 *     The client session's lane for pipelined GET and MGET (see `RequestParser.string_reads`;
 *     its twin is the ordinary dispatch of GET/MGET): runs the commands of `buf` from `pos`
 *     while each is a GET or MGET within the limits, reading `db` / `expires` (one
 *     database's dicts) as a replica reads (a key whose TTL is <= `now` is missing, a value
 *     that is not a string is WRONGTYPE), until `max_out` bytes of replies are built. `last`: 0 nothing ran, 1 GET, 2 MGET. For INFO:
 *     `gets` of the commands were GETs (the rest MGETs), `lookups` keys were looked up, of
 *     which `misses` found nothing (keyspace_hits/misses), and `wrongtype` GETs failed.
 *     In cluster mode `slots` (16384 bytes, non-zero for a slot served here) also stops it
 *     at a command whose keys are not all in one served slot: the Python path answers those
 *     (-MOVED, -CROSSSLOT). A key's slot is `keyHashSlot`'s: CRC16 (XMODEM) of the key, or
 *     of its first non-empty `{...}` hash tag, modulo 16384.
 *
 * split_commands(buf, pos, offset, cls, merge_sets) -> (commands, pos, offset)
 *     The replication stream's lane (see `StreamSplitter.next_commands`; its twin is
 *     hiredis's canonical lane plus `merge_set_runs`): the commands of `buf` from `pos`, each
 *     as `cls(argv, raw, end_offset, commands)` (`cls` a tuple subclass: StreamCommand),
 *     `offset` being the replication offset of the byte before `pos`. With `merge_sets`,
 *     consecutive SETs without options become one item: argv
 *     ["MSET", k1, v1, k2, v2, ...] with every pair in stream order, raw their bytes
 *     together, `commands` their number (a lone one is left as it is); consecutive MSETs
 *     likewise, named "mset" instead, so that INFO commandstats can count what a merged
 *     item stood for (stream.py `count_key`). Applying that MSET is applying them in turn:
 *     each stores a string and drops the key's TTL, whatever it held, a later pair
 *     winning.
 */
#include "_resp.h"

#define WRONGTYPE "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"

static int lookup(PyObject *db, PyObject *expires, long long now, const char *k,
                  Py_ssize_t klen, PyObject **value)
{
    PyObject *key = PyBytes_FromStringAndSize(k, klen);
    if (key == NULL)
        return -1;
    PyObject *v = PyDict_GetItemWithError(db, key);
    if (v == NULL && PyErr_Occurred()) {
        Py_DECREF(key);
        return -1;
    }
    if (v != NULL && PyDict_GET_SIZE(expires)) {
        PyObject *t = PyDict_GetItemWithError(expires, key);
        if (t == NULL && PyErr_Occurred()) {
            Py_DECREF(key);
            return -1;
        }
        if (t != NULL) {
            long long when = PyLong_AsLongLong(t);
            if (when == -1 && PyErr_Occurred()) {
                Py_DECREF(key);
                return -1;
            }
            if (when <= now)
                v = NULL;
        }
    }
    Py_DECREF(key);
    *value = v;
    return 0;
}

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the table built at import. */
static unsigned short crc16_table[256];

static void crc16_init(void)
{
    for (int i = 0; i < 256; i++) {
        unsigned short c = (unsigned short)(i << 8);
        for (int b = 0; b < 8; b++)
            c = (unsigned short)((c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1);
        crc16_table[i] = c;
    }
}

static unsigned int crc16(const char *buf, Py_ssize_t len)
{
    unsigned short crc = 0;
    for (Py_ssize_t i = 0; i < len; i++)
        crc = (unsigned short)((crc << 8) ^
                               crc16_table[((crc >> 8) ^ (unsigned char)buf[i]) & 0xff]);
    return crc;
}

static unsigned int key_hash_slot(const char *key, Py_ssize_t len)
{
    Py_ssize_t s, e;
    for (s = 0; s < len; s++)
        if (key[s] == '{')
            break;
    if (s == len)
        return crc16(key, len) & 16383;
    for (e = s + 1; e < len; e++)
        if (key[e] == '}')
            break;
    if (e == len || e == s + 1)
        return crc16(key, len) & 16383;
    return crc16(key + s + 1, e - s - 1) & 16383;
}


/* ---- LRANGE / HGETALL (string_reads with `proto`) ---- */

/* The keyspace's written-list class (keyspace.values.ListValue, a deque), told by
 * set_list_type(); until then such lists go the Python way. */
static PyObject *list_value_type;

static PyObject *set_list_type(PyObject *self, PyObject *arg)
{
    if (!PyType_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "set_list_type(type)");
        return NULL;
    }
    Py_INCREF(arg);
    Py_XSETREF(list_value_type, arg);
    Py_RETURN_NONE;
}

/* Redis's string2ll on an argument: 1 and *out, or 0 (the Python path answers the error). */
static int arg_ll(const char *p, Py_ssize_t n, long long *out)
{
    if (n <= 0 || n > 20)
        return 0;
    if (n == 1 && p[0] == '0') {
        *out = 0;
        return 1;
    }
    int neg = p[0] == '-';
    Py_ssize_t i = neg;
    if (i >= n || p[i] < '1' || p[i] > '9')
        return 0;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9' || v > (ULLONG_MAX - 9) / 10)
            return 0;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (neg ? v > (unsigned long long)LLONG_MAX + 1 : v > (unsigned long long)LLONG_MAX)
        return 0;
    *out = neg ? (long long)(0ULL - v) : (long long)v;
    return 1;
}

static int put_header(outbuf *o, char lead, Py_ssize_t n)
{
    char hdr[32];
    int hl = snprintf(hdr, sizeof(hdr), "%c%zd\r\n", lead, n);
    return out_put(o, hdr, hl);
}

/* The elements [start, stop) of a list value (a list, or a ListValue walked from its nearer
 * end) as new references in items[]: 1, 0 when not this lane's (an element that is not
 * bytes, an unknown list type), -1 on error. */
static int list_window(PyObject *v, Py_ssize_t start, Py_ssize_t stop, PyObject **items)
{
    Py_ssize_t count = stop - start;
    if (PyList_CheckExact(v)) {
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *e = PyList_GET_ITEM(v, start + i);
            if (!PyBytes_CheckExact(e)) {
                for (Py_ssize_t j = 0; j < i; j++)
                    Py_DECREF(items[j]);
                return 0;
            }
            Py_INCREF(e);
            items[i] = e;
        }
        return 1;
    }
    Py_ssize_t n = PyObject_Length(v);
    if (n < 0)
        return -1;
    int backwards = start > n - stop;
    PyObject *it = backwards ? PyObject_CallMethod(v, "__reversed__", NULL) : PyObject_GetIter(v);
    if (it == NULL)
        return -1;
    Py_ssize_t skip = backwards ? n - stop : start, got = 0;
    int r = 1;
    for (Py_ssize_t i = 0; got < count; i++) {
        PyObject *e = PyIter_Next(it);
        if (e == NULL) {
            r = PyErr_Occurred() ? -1 : 0;
            break;
        }
        if (i < skip) {
            Py_DECREF(e);
            continue;
        }
        if (!PyBytes_CheckExact(e)) {
            Py_DECREF(e);
            r = 0;
            break;
        }
        items[backwards ? count - 1 - got : got] = e;
        got++;
    }
    Py_DECREF(it);
    if (r != 1) {
        for (Py_ssize_t j = 0; j < got; j++)
            Py_DECREF(items[backwards ? count - 1 - j : j]);
    }
    return r;
}

/* Bigger LRANGE / HGETALL replies go the Python way, which checks the client's output limits
 * before it builds a reply (`reply.output_budget`). */
#define LANE_MAX_ELEMENTS 1024

/* LRANGE's reply for value v (a list type, not missing): 1 written, 0 not this lane's, -1. */
static int lrange_reply(outbuf *o, PyObject *v, long long start, long long end)
{
    Py_ssize_t n = PyObject_Length(v);
    if (n < 0)
        return -1;
    /* addListRangeReply's index arithmetic */
    if (start < 0) {
        start += n;
        if (start < 0)
            start = 0;
    }
    if (end < 0)
        end += n;
    if (start > end || start >= n)
        return out_put(o, "*0\r\n", 4) < 0 ? -1 : 1;
    if (end >= n)
        end = n - 1;
    Py_ssize_t count = (Py_ssize_t)(end - start + 1);
    if (count > LANE_MAX_ELEMENTS)
        return 0;
    PyObject *stack[128];
    PyObject **items = count <= 128 ? stack : PyMem_Malloc((size_t)count * sizeof(PyObject *));
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int r = list_window(v, (Py_ssize_t)start, (Py_ssize_t)end + 1, items);
    if (r == 1) {
        if (put_header(o, '*', count) < 0)
            r = -1;
        for (Py_ssize_t i = 0; i < count; i++) {
            if (r == 1 && put_bulk(o, PyBytes_AS_STRING(items[i]), PyBytes_GET_SIZE(items[i])) < 0)
                r = -1;
            Py_DECREF(items[i]);
        }
    }
    if (items != stack)
        PyMem_Free(items);
    return r;
}

/* HGETALL's reply for a plain dict of bytes (a HashValue, with field TTLs, goes the Python
 * way): 1 written, 0 not this lane's, -1. */
static int hgetall_reply(outbuf *o, PyObject *v, int proto)
{
    if (!PyDict_CheckExact(v) || PyDict_GET_SIZE(v) > LANE_MAX_ELEMENTS)
        return 0;
    Py_ssize_t pos = 0;
    PyObject *k, *val;
    while (PyDict_Next(v, &pos, &k, &val)) {
        if (!PyBytes_CheckExact(k) || !PyBytes_CheckExact(val))
            return 0;
    }
    Py_ssize_t n = PyDict_GET_SIZE(v);
    if ((proto == 3 ? put_header(o, '%', n) : put_header(o, '*', 2 * n)) < 0)
        return -1;
    pos = 0;
    while (PyDict_Next(v, &pos, &k, &val)) {
        if (put_bulk(o, PyBytes_AS_STRING(k), PyBytes_GET_SIZE(k)) < 0 ||
            put_bulk(o, PyBytes_AS_STRING(val), PyBytes_GET_SIZE(val)) < 0)
            return -1;
    }
    return 1;
}

static PyObject *string_reads(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 9 || nargs > 11) {
        PyErr_SetString(PyExc_TypeError, "string_reads(buf, pos, db, expires, now, null, "
                                         "max_bulk, max_mbulk, max_out[, slots[, proto]])");
        return NULL;
    }
    const unsigned char *slots = NULL;
    if (nargs >= 10 && args[9] != Py_None) {
        if (!PyBytes_Check(args[9]) || PyBytes_GET_SIZE(args[9]) != 16384) {
            PyErr_SetString(PyExc_TypeError, "slots must be None or 16384 bytes");
            return NULL;
        }
        slots = (const unsigned char *)PyBytes_AS_STRING(args[9]);
    }
    PyObject *db = args[2], *expires = args[3], *null = args[5];
    if (!PyByteArray_Check(args[0]) || !PyDict_Check(db) || !PyDict_Check(expires) ||
        !PyBytes_Check(null)) {
        PyErr_SetString(PyExc_TypeError, "bytearray, int, dict, dict, int, bytes, int, int, int");
        return NULL;
    }
    int proto = 0; /* 0: GET/MGET only; 2 or 3: also LRANGE and HGETALL, in that protocol */
    if (nargs == 11) {
        proto = (int)PyLong_AsLong(args[10]);
        if (proto == -1 && PyErr_Occurred())
            return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    long long now = PyLong_AsLongLong(args[4]);
    long long max_bulk = PyLong_AsLongLong(args[6]);
    long long max_mbulk = PyLong_AsLongLong(args[7]);
    long long max_out = PyLong_AsLongLong(args[8]);
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t size = PyByteArray_GET_SIZE(args[0]);
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return NULL;
    }
    /* A buffer export pins the bytearray: nothing run by an allocation can resize it. */
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *base = view.buf;
    const char *end = base + size;
    const char *p = base + pos;
    outbuf o = {NULL, 0, 0};
    /* Per kind (1 GET, 2 MGET, 3 LRANGE, 4 HGETALL): commands run, WRONGTYPE replies. */
    long count = 0, ran[5] = {0}, wrong[5] = {0}, lookups = 0, misses = 0;
    int last = 0;
    const char *argp[64];
    Py_ssize_t argl[64];
    const char **ap = argp;
    Py_ssize_t *al = argl;
    Py_ssize_t acap = 64;

    while (p < end && (long long)o.len < max_out) {
        const char *q = p;
        long long n;
        if (!canonical_len(&q, end, '*', max_mbulk, &n) || n < 2)
            break;
        const char *name;
        Py_ssize_t len;
        if (!canonical_bulk(&q, end, max_bulk, &name, &len))
            break;
        int kind = 0;
        if (len == 3 && n == 2 && strncasecmp(name, "get", 3) == 0)
            kind = 1;
        else if (len == 4 && strncasecmp(name, "mget", 4) == 0)
            kind = 2;
        else if (proto && len == 6 && n == 4 && strncasecmp(name, "lrange", 6) == 0)
            kind = 3;
        else if (proto && len == 7 && n == 2 && strncasecmp(name, "hgetall", 7) == 0)
            kind = 4;
        if (!kind)
            break;
        long long nkeys = n - 1;
        if (nkeys > (end - q) / 6)
            break; /* cannot be complete ("$0\r\n\r\n" per key at least): wait for more */
        if (nkeys > acap) {
            /* More keys than the stack arrays hold: grow (heap) arrays once. */
            const char **nap = PyMem_Malloc((size_t)nkeys * sizeof(*nap));
            Py_ssize_t *nal = PyMem_Malloc((size_t)nkeys * sizeof(*nal));
            if (nap == NULL || nal == NULL) {
                PyMem_Free(nap);
                PyMem_Free(nal);
                PyErr_NoMemory();
                goto fail;
            }
            if (ap != argp) {
                PyMem_Free(ap);
                PyMem_Free(al);
            }
            ap = nap;
            al = nal;
            acap = (Py_ssize_t)nkeys;
        }
        long long i;
        for (i = 0; i < nkeys; i++) {
            if (!canonical_bulk(&q, end, max_bulk, &ap[i], &al[i]))
                break;
        }
        if (i < nkeys)
            break; /* incomplete (or odd) command: the Python parser takes it from here */
        long long lr_start = 0, lr_end = 0;
        if (kind == 3 && (!arg_ll(ap[1], al[1], &lr_start) || !arg_ll(ap[2], al[2], &lr_end)))
            break; /* the Python path answers the error */
        if (slots != NULL) {
            unsigned int slot = key_hash_slot(ap[0], al[0]);
            if (!slots[slot])
                break;
            for (i = 1; i < (kind <= 2 ? nkeys : 1); i++)
                if (key_hash_slot(ap[i], al[i]) != slot)
                    break;
            if (i < nkeys)
                break;
        }
        if (kind >= 3) {
            PyObject *v;
            if (lookup(db, expires, now, ap[0], al[0], &v) < 0)
                goto fail;
            int r, wrongtype = 0;
            if (v == NULL) {
                r = out_put(&o, kind == 4 && proto == 3 ? "%0\r\n" : "*0\r\n", 4) < 0 ? -1 : 1;
            } else if (kind == 3 && (PyList_CheckExact(v) ||
                                     (PyObject *)Py_TYPE(v) == list_value_type)) {
                Py_INCREF(v); /* borrowed from the dict: held while its elements are read */
                r = lrange_reply(&o, v, lr_start, lr_end);
                Py_DECREF(v);
            } else if (kind == 4 && PyDict_CheckExact(v)) {
                r = hgetall_reply(&o, v, proto);
            } else if (kind == 3 ? list_value_type != NULL : !PyDict_Check(v)) {
                /* Not a list (the ListValue class is known) / not a dict: WRONGTYPE. A dict
                 * subclass (field TTLs, a sorted set) is left to the Python lookup. */
                r = out_put(&o, WRONGTYPE, (Py_ssize_t)strlen(WRONGTYPE)) < 0 ? -1 : 1;
                wrongtype = 1;
            } else {
                r = 0;
            }
            if (r < 0)
                goto fail;
            if (r == 0)
                break; /* left to the Python path, which counts it */
            lookups++;
            misses += v == NULL;
            wrong[kind] += wrongtype;
        } else if (kind == 1) {
            PyObject *v;
            if (lookup(db, expires, now, ap[0], al[0], &v) < 0)
                goto fail;
            int r;
            lookups++;
            if (v == NULL) {
                misses++;
                r = out_put(&o, PyBytes_AS_STRING(null), PyBytes_GET_SIZE(null));
            } else if (PyBytes_CheckExact(v)) {
                r = put_bulk(&o, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
            } else {
                wrong[1]++;
                r = out_put(&o, WRONGTYPE, (Py_ssize_t)strlen(WRONGTYPE));
            }
            if (r < 0)
                goto fail;
        } else {
            char hdr[32];
            int hl = snprintf(hdr, sizeof(hdr), "*%lld\r\n", nkeys);
            if (out_put(&o, hdr, hl) < 0)
                goto fail;
            for (i = 0; i < nkeys; i++) {
                PyObject *v;
                if (lookup(db, expires, now, ap[i], al[i], &v) < 0)
                    goto fail;
                lookups++;
                if (v == NULL)
                    misses++;
                int r = (v != NULL && PyBytes_CheckExact(v))
                            ? put_bulk(&o, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v))
                            : out_put(&o, PyBytes_AS_STRING(null), PyBytes_GET_SIZE(null));
                if (r < 0)
                    goto fail;
            }
        }
        last = kind;
        ran[kind]++;
        count++;
        p = q;
    }
    if (ap != argp) {
        PyMem_Free(ap);
        PyMem_Free(al);
    }
    PyBuffer_Release(&view);
    PyObject *replies = PyBytes_FromStringAndSize(o.data ? o.data : "", o.len);
    PyMem_Free(o.data);
    if (replies == NULL)
        return NULL;
    return Py_BuildValue("(nNli(llll)(llll)ll)", (Py_ssize_t)(p - base), replies, count, last,
                         ran[1], ran[2], ran[3], ran[4], wrong[1], wrong[2], wrong[3], wrong[4],
                         lookups, misses);

fail:
    if (ap != argp) {
        PyMem_Free(ap);
        PyMem_Free(al);
    }
    PyBuffer_Release(&view);
    PyMem_Free(o.data);
    return NULL;
}

/* ---- the replication stream's splitter ---- */

/* The canonical multibulk of `n` arguments at q (just past its "*n\r\n"): SET_RUN for a
 * SET without options, MSET_RUN for an MSET, else 0. Peeks at the name only. */
#define SET_RUN 1
#define MSET_RUN 2
static int plain_set_at(const char *q, const char *end, long long n)
{
    const char *data;
    Py_ssize_t len;
    if (n < 3 || n % 2 == 0 || !canonical_bulk(&q, end, 4, &data, &len))
        return 0;
    if (len == 3 && n == 3 && strncasecmp(data, "set", 3) == 0)
        return SET_RUN;
    return len == 4 && strncasecmp(data, "mset", 4) == 0 ? MSET_RUN : 0;
}

/* A run of plain SETs, or of MSETs, being merged: `argv` is the first command's own argv
 * while the run has one command, then ["MSET" or "mset", k1, v1, ...] with every pair in
 * order. */
typedef struct {
    PyObject *argv;
    const char *start;
    long long count;
    int kind;
} set_run;

/* The merged items' names: b"MSET" for SETs, b"mset" for MSETs (stream.py). */
static PyObject *mset_name, *msets_name;

/* Add the command `argv` (of `kind`, starting at p) to the run; steals argv. */
static int run_add(set_run *run, PyObject *argv, const char *p, int kind)
{
    if (run->count == 0) {
        run->argv = argv;
        run->start = p;
        run->count = 1;
        run->kind = kind;
        return 0;
    }
    if (run->count == 1) {
        PyObject *first = run->argv;
        Py_ssize_t n = PyList_GET_SIZE(first);
        PyObject *merged = PyList_New(n);
        if (merged == NULL) {
            Py_DECREF(argv);
            return -1;
        }
        PyObject *name = run->kind == SET_RUN ? mset_name : msets_name;
        Py_INCREF(name);
        PyList_SET_ITEM(merged, 0, name);
        for (Py_ssize_t i = 1; i < n; i++) {
            PyObject *a = PyList_GET_ITEM(first, i);
            Py_INCREF(a);
            PyList_SET_ITEM(merged, i, a);
        }
        Py_DECREF(first);
        run->argv = merged;
    }
    int r = 0;
    for (Py_ssize_t i = 1; i < PyList_GET_SIZE(argv) && r == 0; i++)
        r = PyList_Append(run->argv, PyList_GET_ITEM(argv, i));
    Py_DECREF(argv);
    run->count++;
    return r;
}

/* Append one item, cls(argv, raw, end_offset, commands), to out; steals argv. */
static int emit(PyObject *out, PyTypeObject *cls, PyObject *argv, const char *from,
                const char *to, long long end_offset, long long count)
{
    PyObject *raw = PyBytes_FromStringAndSize(from, to - from);
    PyObject *endoff = PyLong_FromLongLong(end_offset);
    PyObject *n = PyLong_FromLongLong(count);
    PyObject *cmd = cls->tp_alloc(cls, 4);
    if (raw == NULL || endoff == NULL || n == NULL || cmd == NULL) {
        Py_XDECREF(raw);
        Py_XDECREF(endoff);
        Py_XDECREF(n);
        Py_XDECREF(cmd);
        Py_DECREF(argv);
        return -1;
    }
    PyTuple_SET_ITEM(cmd, 0, argv);
    PyTuple_SET_ITEM(cmd, 1, raw);
    PyTuple_SET_ITEM(cmd, 2, endoff);
    PyTuple_SET_ITEM(cmd, 3, n);
    int r = PyList_Append(out, cmd);
    Py_DECREF(cmd);
    return r;
}

/* Emit the run (its commands end at `to`, offset `end_offset`) and empty it. */
static int run_flush(set_run *run, PyObject *out, PyTypeObject *cls, const char *to,
                     long long end_offset)
{
    if (run->count == 0)
        return 0;
    PyObject *argv = run->argv;
    long long count = run->count;
    run->argv = NULL;
    run->count = 0;
    return emit(out, cls, argv, run->start, to, end_offset, count);
}

/* A merged run stops growing at this many arguments: one item stays a bounded list. */
#define RUN_MAX_ARGS 65536

static PyObject *split_commands(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyByteArray_Check(args[0]) || !PyType_Check(args[3]) ||
        !PyType_IsSubtype((PyTypeObject *)args[3], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "split_commands(buf: bytearray, pos, offset, "
                                         "cls: tuple subclass, merge_sets: bool)");
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)args[3];
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    long long offset = PyLong_AsLongLong(args[2]);
    int merge = PyObject_IsTrue(args[4]);
    if (PyErr_Occurred())
        return NULL;
    if (mset_name == NULL && (mset_name = PyBytes_FromString("MSET")) == NULL)
        return NULL;
    if (msets_name == NULL && (msets_name = PyBytes_FromString("mset")) == NULL)
        return NULL;
    /* A buffer export pins the bytearray: nothing run by an allocation can resize it. */
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *base = view.buf, *end = base + view.len, *p = base + pos;
    set_run run = {NULL, NULL, 0, 0};
    PyObject *out = PyList_New(0);
    if (out == NULL || pos < 0 || pos > view.len) {
        if (out != NULL)
            PyErr_SetString(PyExc_ValueError, "pos out of range");
        goto fail;
    }
    while (p < end) {
        const char *q = p;
        long long n;
        /* Each argument takes at least 6 bytes ("$0\r\n\r\n"): a count the buffer cannot
         * hold yet is an incomplete command, left before allocating its argv. */
        if (!canonical_len(&q, end, '*', 0x7fffffffLL, &n) || n < 1 || n > (end - q) / 6)
            break;
        int plain_set = merge ? plain_set_at(q, end, n) : 0;
        PyObject *argv = PyList_New((Py_ssize_t)n);
        if (argv == NULL)
            goto fail;
        long long i;
        for (i = 0; i < n; i++) {
            const char *data;
            Py_ssize_t len;
            if (!canonical_bulk(&q, end, 0x7fffffffffffffffLL, &data, &len))
                break;
            PyObject *arg = PyBytes_FromStringAndSize(data, len);
            if (arg == NULL) {
                Py_DECREF(argv);
                goto fail;
            }
            PyList_SET_ITEM(argv, (Py_ssize_t)i, arg);
        }
        if (i < n) {
            Py_DECREF(argv);
            break;
        }
        if (plain_set) {
            if (run.count &&
                (run.kind != plain_set || PyList_GET_SIZE(run.argv) + n > RUN_MAX_ARGS) &&
                run_flush(&run, out, cls, p, offset) < 0) {
                Py_DECREF(argv);
                goto fail;
            }
            if (run_add(&run, argv, p, plain_set) < 0)
                goto fail;
        } else {
            if (run_flush(&run, out, cls, p, offset) < 0) {
                Py_DECREF(argv);
                goto fail;
            }
            if (emit(out, cls, argv, p, q, offset + (q - p), 1) < 0)
                goto fail;
        }
        offset += q - p;
        p = q;
    }
    if (run_flush(&run, out, cls, p, offset) < 0)
        goto fail;
    Py_ssize_t newpos = p - base;
    PyBuffer_Release(&view);
    return Py_BuildValue("(NnL)", out, newpos, offset);

fail:
    Py_XDECREF(run.argv);
    Py_XDECREF(out);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"string_reads", (PyCFunction)(void (*)(void))string_reads, METH_FASTCALL,
     "string_reads(buf, pos, db, expires, now, null, max_bulk, max_mbulk, max_out[, slots[, "
     "proto]]) -> (pos, replies, count, last, (GETs, MGETs, LRANGEs, HGETALLs), (their "
     "WRONGTYPE replies), lookups, misses): the client read lane"},
    {"set_list_type", set_list_type, METH_O,
     "set_list_type(ListValue): the keyspace's written-list class, for LRANGE"},
    {"split_commands", (PyCFunction)(void (*)(void))split_commands, METH_FASTCALL,
     "split_commands(buf, pos, offset, cls, merge_sets) -> (commands, pos, offset): the "
     "stream's fast lane"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "replproxy.resp._lanes",
    "The fast lanes of canonical RESP input: GET/MGET, the replication stream (see _lanes.c).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__lanes(void)
{
    crc16_init();
    return PyModule_Create(&module);
}
