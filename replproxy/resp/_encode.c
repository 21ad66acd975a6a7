/* C fast path for the reply encoder's hottest shape: an array of bulk strings.
 *
 * LRANGE, HGETALL, SMEMBERS, ZRANGE ... WITHSCORES and MGET replies are arrays of bulk
 * strings; building them in Python (or with hiredis's generic command packer, which
 * sprintf's every length) is where pipelined reads spend most of their time. `bulks` sizes
 * the whole reply first, then writes it with memcpy and a digit loop into one bytes object.
 *
 * bulks(header: bytes, items: list | tuple) -> bytes
 *     header + "$<len>\r\n<item>\r\n" for every item; None items become `null` (the caller's
 *     null encoding: "$-1\r\n" or "_\r\n"). Any other item type raises TypeError, so callers
 *     can fall back to the Python encoder.
 *
 * string_reads(buf, pos, db, expires, now, null, max_bulk, max_mbulk[, slots])
 *         -> (pos, replies, count, last)
 *     The server's fast lane for pipelined GET and MGET (see `RequestParser.string_reads`):
 *     runs the commands of `buf` from `pos` while each is a complete, canonically encoded
 *     GET or MGET within the limits, reading `db` / `expires` (one database's dicts) as a
 *     replica reads (a key whose TTL is <= `now` is missing). Stops at anything else - other
 *     commands, an incomplete one, any spelling Redis would parse with care (leading zeros,
 *     odd lengths) - and leaves it to the exact Python parser. `last`: 0 nothing ran, 1 GET,
 *     2 MGET. In cluster mode `slots` (16384 bytes, non-zero for a slot served here) also
 *     stops it at a command whose keys are not all in one served slot: the Python path
 *     answers those (-MOVED, -CROSSSLOT). A key's slot is `keyHashSlot`'s: CRC16 (XMODEM)
 *     of the key, or of its first non-empty `{...}` hash tag, modulo 16384.
 *
 * scored(items, proto, g17, fmt) -> bytes
 *     A sorted set range WITH SCORES: `items` a list of (score: float, member: bytes); a
 *     flat array of member, score bulks in RESP2, [member, double] pairs in RESP3. Scores
 *     are printed as the upstream prints them: `%.17g` when `g17`, else Redis 7.2's rules
 *     (integers as such, 0 and -0, inf) with `fmt(score) -> bytes` for the rest (the
 *     shortest round-trip text, computed in Python).
 *
 * split_commands(buf, pos, offset, cls, merge_sets) -> (commands, pos, offset)
 *     The replication stream's fast lane (see `StreamSplitter.next_commands`): the complete,
 *     canonically encoded multibulk commands of `buf` from `pos`, each as
 *     `cls(argv, raw, end_offset, commands)` (`cls` a tuple subclass: StreamCommand), `offset`
 *     being the replication offset of the byte before `pos`. Stops at anything else (inline,
 *     `*0`, leading zeros, an incomplete command), which the exact Python scanner takes.
 *     With `merge_sets`, consecutive SETs without options and MSETs become one item: argv
 *     ["MSET", k1, v1, k2, v2, ...] with every pair in stream order, raw their bytes
 *     together, `commands` their number (a lone one is left as it is). Applying
 *     that MSET is applying them in turn: each stores a string and drops the key's TTL,
 *     whatever it held, a later pair winning.
 *
 * Optional, like replproxy.rdb._speedups: replproxy.resp.reply works without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <strings.h>
#include <math.h>
#include <stdio.h>

static Py_ssize_t digits(Py_ssize_t n)
{
    Py_ssize_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

static char *write_len(char *p, Py_ssize_t n, Py_ssize_t nd)
{
    char *end = p + nd;
    char *q = end;
    do {
        *--q = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    return end;
}

/* "$<n>\r\n<s>\r\n" at p (room for 1 + digits(n) + 2 + n + 2 bytes); returns its end. */
static char *write_bulk(char *p, const char *s, Py_ssize_t n)
{
    *p++ = '$';
    p = write_len(p, n, digits(n));
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, s, (size_t)n);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

static PyObject *bulks(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "bulks(header, items, null)");
        return NULL;
    }
    PyObject *header = args[0], *seq = args[1], *null = args[2];
    if (!PyBytes_Check(header) || !PyBytes_Check(null)) {
        PyErr_SetString(PyExc_TypeError, "header and null must be bytes");
        return NULL;
    }
    PyObject *fast = PySequence_Fast(seq, "items must be a sequence");
    if (fast == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    Py_ssize_t hlen = PyBytes_GET_SIZE(header), nlen = PyBytes_GET_SIZE(null);
    Py_ssize_t total = hlen;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = items[i];
        if (PyBytes_CheckExact(it)) {
            Py_ssize_t len = PyBytes_GET_SIZE(it);
            total += 1 + digits(len) + 2 + len + 2;
        } else if (it == Py_None) {
            total += nlen;
        } else {
            Py_DECREF(fast);
            PyErr_SetString(PyExc_TypeError, "items must be bytes or None");
            return NULL;
        }
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) {
        Py_DECREF(fast);
        return NULL;
    }
    char *p = PyBytes_AS_STRING(out);
    memcpy(p, PyBytes_AS_STRING(header), (size_t)hlen);
    p += hlen;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = items[i];
        if (it == Py_None) {
            memcpy(p, PyBytes_AS_STRING(null), (size_t)nlen);
            p += nlen;
            continue;
        }
        p = write_bulk(p, PyBytes_AS_STRING(it), PyBytes_GET_SIZE(it));
    }
    Py_DECREF(fast);
    return out;
}

/* ---- the GET/MGET fast lane ---- */

#define WRONGTYPE "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} outbuf;

static int out_reserve(outbuf *o, Py_ssize_t more)
{
    if (o->len + more <= o->cap)
        return 0;
    Py_ssize_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + more)
        cap *= 2;
    char *d = PyMem_Realloc(o->data, (size_t)cap);
    if (d == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->data = d;
    o->cap = cap;
    return 0;
}

static int out_put(outbuf *o, const char *s, Py_ssize_t n)
{
    if (out_reserve(o, n) < 0)
        return -1;
    memcpy(o->data + o->len, s, (size_t)n);
    o->len += n;
    return 0;
}

/* "<lead><digits>\r\n" at *p, canonical only ("0" or no leading zero, at most 18 digits,
 * <= max). Returns 1 and moves *p past it, or 0: incomplete or not canonical. */
static int canonical_len(const char **p, const char *end, char lead, long long max,
                         long long *out)
{
    const char *q = *p;
    if (q >= end || *q != lead)
        return 0;
    q++;
    const char *digits_at = q;
    long long v = 0;
    while (q < end && *q >= '0' && *q <= '9' && q - digits_at < 18) {
        v = v * 10 + (*q - '0');
        q++;
    }
    Py_ssize_t nd = q - digits_at;
    if (nd == 0 || (nd > 1 && *digits_at == '0') || v > max)
        return 0;
    if (q + 2 > end || q[0] != '\r' || q[1] != '\n')
        return 0;
    *p = q + 2;
    *out = v;
    return 1;
}

/* "$<len>\r\n<data>\r\n" at *p, canonical (see canonical_len) and complete: 1 with the
 * data's place and length, *p moved past it; else 0. */
static int canonical_bulk(const char **p, const char *end, long long max, const char **data,
                          Py_ssize_t *size)
{
    const char *q = *p;
    long long len;
    if (!canonical_len(&q, end, '$', max, &len) || len > end - q || end - q - len < 2 ||
        q[len] != '\r' || q[len + 1] != '\n')
        return 0;
    *data = q;
    *size = (Py_ssize_t)len;
    *p = q + len + 2;
    return 1;
}

/* One value as a replica's GET sees it: borrowed, NULL when missing or expired; -1 on error. */
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

static int put_bulk(outbuf *o, const char *s, Py_ssize_t len)
{
    if (out_reserve(o, 1 + digits(len) + 2 + len + 2) < 0)
        return -1;
    o->len = write_bulk(o->data + o->len, s, len) - o->data;
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
        crc = (unsigned short)((crc << 8) ^ crc16_table[((crc >> 8) ^ (unsigned char)buf[i]) & 0xff]);
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

static PyObject *string_reads(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 && nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "string_reads(buf, pos, db, expires, now, null, "
                                         "max_bulk, max_mbulk[, slots])");
        return NULL;
    }
    PyObject *db = args[2], *expires = args[3], *null = args[5];
    if (!PyByteArray_Check(args[0]) || !PyDict_Check(db) || !PyDict_Check(expires) ||
        !PyBytes_Check(null)) {
        PyErr_SetString(PyExc_TypeError, "bytearray, int, dict, dict, int, bytes, int, int");
        return NULL;
    }
    const unsigned char *slots = NULL;
    if (nargs == 9 && args[8] != Py_None) {
        if (!PyBytes_Check(args[8]) || PyBytes_GET_SIZE(args[8]) != 16384) {
            PyErr_SetString(PyExc_TypeError, "slots must be None or 16384 bytes");
            return NULL;
        }
        slots = (const unsigned char *)PyBytes_AS_STRING(args[8]);
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    long long now = PyLong_AsLongLong(args[4]);
    long long max_bulk = PyLong_AsLongLong(args[6]);
    long long max_mbulk = PyLong_AsLongLong(args[7]);
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
    long count = 0;
    int last = 0;
    const char *argp[64];
    Py_ssize_t argl[64];
    const char **ap = argp;
    Py_ssize_t *al = argl;
    Py_ssize_t acap = 64;

    while (p < end) {
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
        if (slots != NULL) {
            unsigned int slot = key_hash_slot(ap[0], al[0]);
            if (!slots[slot])
                break;
            for (i = 1; i < nkeys; i++)
                if (key_hash_slot(ap[i], al[i]) != slot)
                    break;
            if (i < nkeys)
                break;
        }
        if (kind == 1) {
            PyObject *v;
            if (lookup(db, expires, now, ap[0], al[0], &v) < 0)
                goto fail;
            int r;
            if (v == NULL)
                r = out_put(&o, PyBytes_AS_STRING(null), PyBytes_GET_SIZE(null));
            else if (PyBytes_CheckExact(v))
                r = put_bulk(&o, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
            else
                r = out_put(&o, WRONGTYPE, (Py_ssize_t)strlen(WRONGTYPE));
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
                int r = (v != NULL && PyBytes_CheckExact(v))
                            ? put_bulk(&o, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v))
                            : out_put(&o, PyBytes_AS_STRING(null), PyBytes_GET_SIZE(null));
                if (r < 0)
                    goto fail;
            }
        }
        last = kind;
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
    return Py_BuildValue("(nNli)", (Py_ssize_t)(p - base), replies, count, last);

fail:
    if (ap != argp) {
        PyMem_Free(ap);
        PyMem_Free(al);
    }
    PyBuffer_Release(&view);
    PyMem_Free(o.data);
    return NULL;
}

/* ---- sorted set ranges with scores ---- */

/* The score's text into buf (>= 64 bytes): its length, or -1 with a Python error. */
static Py_ssize_t score_text(double x, int g17, PyObject *fmt, PyObject *score, char *buf)
{
    if (x == 0.0) {
        memcpy(buf, signbit(x) ? "-0" : "0", 2);
        return signbit(x) ? 2 : 1;
    }
    /* Integral scores (the common case: counters, timestamps) are their digits in both
     * styles: `%.17g` prints an integer below 1e17 in fixed notation without a point. */
    if (x == floor(x) && ((g17 && fabs(x) < 1e17) ||
                          (!g17 && fabs(x) <= 4611686018427387904.0))) {
        /* |x| <= 2**62 here: its magnitude fits a Py_ssize_t. */
        Py_ssize_t u = (Py_ssize_t)fabs(x);
        char *p = buf;
        if (x < 0)
            *p++ = '-';
        return write_len(p, u, digits(u)) - buf;
    }
    if (g17)
        return snprintf(buf, 64, "%.17g", x);
    if (isinf(x))
        return snprintf(buf, 64, "%s", x > 0 ? "inf" : "-inf");
    PyObject *text = PyObject_CallOneArg(fmt, score);
    if (text == NULL)
        return -1;
    if (!PyBytes_Check(text) || PyBytes_GET_SIZE(text) >= 64) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_TypeError, "fmt must return a short bytes");
        return -1;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(text);
    memcpy(buf, PyBytes_AS_STRING(text), (size_t)n);
    Py_DECREF(text);
    return n;
}

static PyObject *scored(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "scored(items: list, proto, g17, fmt)");
        return NULL;
    }
    PyObject *items = args[0], *fmt = args[3];
    long proto = PyLong_AsLong(args[1]);
    int g17 = PyObject_IsTrue(args[2]);
    if ((proto == -1 || g17 < 0) && PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(items);
    outbuf o = {NULL, 0, 0};
    char hdr[32], num[64];
    int hl = snprintf(hdr, sizeof(hdr), "*%zd\r\n", proto == 2 ? 2 * n : n);
    if (out_put(&o, hdr, hl) < 0)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(it) || PyTuple_GET_SIZE(it) != 2 ||
            !PyFloat_Check(PyTuple_GET_ITEM(it, 0)) ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(it, 1))) {
            PyErr_SetString(PyExc_TypeError, "items must be (float, bytes) tuples");
            goto fail;
        }
        PyObject *score = PyTuple_GET_ITEM(it, 0);
        Py_ssize_t sl = score_text(PyFloat_AS_DOUBLE(score), g17, fmt, score, num);
        if (sl < 0)
            goto fail;
        if (proto != 2 && out_put(&o, "*2\r\n", 4) < 0)
            goto fail;
        PyObject *member = PyTuple_GET_ITEM(it, 1);
        if (put_bulk(&o, PyBytes_AS_STRING(member), PyBytes_GET_SIZE(member)) < 0)
            goto fail;
        if (proto == 2) {
            if (put_bulk(&o, num, sl) < 0)
                goto fail;
        } else if (out_put(&o, ",", 1) < 0 || out_put(&o, num, sl) < 0 ||
                   out_put(&o, "\r\n", 2) < 0) {
            goto fail;
        }
    }
    PyObject *out = PyBytes_FromStringAndSize(o.data, o.len);
    PyMem_Free(o.data);
    return out;

fail:
    PyMem_Free(o.data);
    return NULL;
}

/* ---- the replication stream's splitter ---- */

/* Is the canonical multibulk of `n` arguments at q (just past its "*n\r\n") a SET without
 * options or an MSET? Peeks at the name only. */
static int plain_set_at(const char *q, const char *end, long long n)
{
    const char *data;
    Py_ssize_t len;
    if (n < 3 || n % 2 == 0 || !canonical_bulk(&q, end, 4, &data, &len))
        return 0;
    return (len == 3 && n == 3 && strncasecmp(data, "set", 3) == 0) ||
           (len == 4 && strncasecmp(data, "mset", 4) == 0);
}

/* A run of plain SET/MSET commands being merged: `argv` is the first command's own argv
 * while the run has one command, then ["MSET", k1, v1, ...] with every pair in order. */
typedef struct {
    PyObject *argv;
    const char *start;
    long long count;
} set_run;

static PyObject *mset_name;

/* Add the command `argv` (a plain SET or MSET starting at p) to the run; steals argv. */
static int run_add(set_run *run, PyObject *argv, const char *p)
{
    if (run->count == 0) {
        run->argv = argv;
        run->start = p;
        run->count = 1;
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
        Py_INCREF(mset_name);
        PyList_SET_ITEM(merged, 0, mset_name);
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
    /* A buffer export pins the bytearray: nothing run by an allocation can resize it. */
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *base = view.buf, *end = base + view.len, *p = base + pos;
    set_run run = {NULL, NULL, 0};
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
        int plain_set = merge && plain_set_at(q, end, n);
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
            if (run.count && PyList_GET_SIZE(run.argv) + n > RUN_MAX_ARGS &&
                run_flush(&run, out, cls, p, offset) < 0) {
                Py_DECREF(argv);
                goto fail;
            }
            if (run_add(&run, argv, p) < 0)
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
    {"bulks", (PyCFunction)(void (*)(void))bulks, METH_FASTCALL,
     "bulks(header, items, null) -> header + the bulk strings of items (None -> null)"},
    {"string_reads", (PyCFunction)(void (*)(void))string_reads, METH_FASTCALL,
     "string_reads(buf, pos, db, expires, now, null, max_bulk, max_mbulk[, slots]) -> "
     "(pos, replies, count, last): the GET/MGET fast lane"},
    {"scored", (PyCFunction)(void (*)(void))scored, METH_FASTCALL,
     "scored(items, proto, g17, fmt) -> a sorted set range with its scores"},
    {"split_commands", (PyCFunction)(void (*)(void))split_commands, METH_FASTCALL,
     "split_commands(buf, pos, offset, cls, merge_sets) -> (commands, pos, offset): the "
     "stream's fast lane"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "replproxy.resp._encode",
    "C fast paths of RESP: client replies, GET/MGET, the replication stream (see _encode.c).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__encode(void)
{
    crc16_init();
    return PyModule_Create(&module);
}
