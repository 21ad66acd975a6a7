/*
 * replproxy.rdb._loader: the C fast path of the RDB reader's sink modes (loading keys).
 *
 * Three entry points share one record loop: from a position in an RDB buffer it parses a
 * run of consecutive *simple* key records, exactly as `replproxy.rdb.reader`'s pure Python
 * path would, and returns where it stopped. What it does with each key is the mode:
 *
 *   load_records    stores it into the keyspace's per-DB dicts (a full sync);
 *   count_records   counts it per type byte and expiry, keeping nothing (`rdb verify|info`):
 *                   keys and string values are checked without being built, other values
 *                   are built (so that duplicates etc. are refused as on load) and dropped;
 *   collect_records appends a (db, key, value, expire) tuple to a list (`rdb dump`).
 *
 * It handles the key prefixes EXPIRETIME / EXPIRETIME_MS / IDLE / FREQ (IDLE and FREQ are
 * dropped) and the object types
 *
 *   0 string (raw, int-encoded, LZF), 1 list, 2 set, 3 zset (string scores), 4 hash,
 *   5 zset (binary scores), 10 list ziplist, 11 intset, 12 zset ziplist, 13 hash ziplist,
 *   14 quicklist, 16 hash listpack, 17 zset listpack, 18 quicklist 2, 20 set listpack.
 *
 * It stops, returning the start of the record (prefixes included), at anything else: an
 * opcode (SELECTDB, AUX, EOF...), another type (streams, modules, zipmaps, hashes with field
 * TTLs), a record cut by the end of the buffer, and ANY malformation. The Python reader then
 * parses that record itself, so it alone produces events and errors: this module accepts a
 * strict subset of what the Python path accepts and builds the same values (bytes, list,
 * set, dict, ZSetValue with float scores; ziplist/listpack/intset integers as decimal bytes).
 *
 * A key record cut by the end of the buffer is told apart (RS_MORE): everything of it that
 * is present was accepted, so the Python path would only run out of bytes too. The reader
 * then waits for the bytes the record should need (exact from a string's length, else
 * estimated from the members read so far) and calls C again, instead of decoding or
 * scanning a half-read big value in Python.
 *
 * Every read is bounds-checked against the buffer (or the blob) before it happens; nothing
 * is allocated from a count before the bytes for it are there (containers grow as members
 * are read); LZF output is bounded by the same 88x ratio the Python path enforces. The only
 * exceptions it raises are MemoryError (and TypeError/ValueError for wrong arguments).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef unsigned char u8;

#define RS_OK 0
#define RS_STOP 1  /* not handled here: malformed or unsupported */
#define RS_MORE 2  /* ran out of bytes: everything before was accepted, the record is cut */
#define RS_ERR (-1) /* a Python exception is set */

#define LZF_MAX_RATIO 88

/* ---- little helpers ---- */

static inline uint32_t le16(const u8 *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }

static inline uint32_t le32(const u8 *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint64_t le64(const u8 *p)
{
    return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}

static inline uint32_t be32(const u8 *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
           (uint32_t)p[3];
}

static inline uint64_t be64(const u8 *p) { return ((uint64_t)be32(p) << 32) | be32(p + 4); }

static inline int16_t i16le(const u8 *p) { return (int16_t)(uint16_t)le16(p); }
static inline int32_t i32le(const u8 *p) { return (int32_t)le32(p); }
static inline int64_t i64le(const u8 *p) { return (int64_t)le64(p); }

static inline int32_t i24le(const u8 *p)
{
    uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
    return (u & 0x800000u) ? (int32_t)(u | 0xFF000000u) : (int32_t)u;
}

/* `b"%d" % v`: the decimal form of v into out (at least 21 bytes); returns its length. */
static Py_ssize_t fmt_i64(char *out, int64_t v)
{
    char tmp[24];
    int i = 0;
    Py_ssize_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[i++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (v < 0)
        out[n++] = '-';
    while (i)
        out[n++] = tmp[--i];
    return n;
}

/* ---- shared short elements ----
 *
 * The members of small collections repeat across keys far more than keys do: field names
 * of struct-like hashes ("name", "email"), flags and tags in sets, small integers. Each one
 * built as its own bytes object costs ~40-50 bytes of header and allocator rounding, more
 * than the listpack byte or two the master spends on it. Bytes are immutable, so a member
 * equal to one built just before can be the same object: a direct-mapped cache of recently
 * built short elements hands it out again (a hash and a compare; no allocation on a hit).
 * Nothing observable changes (values, types, digests); the cache keeps at most
 * ELEM_CACHE_SIZE small objects alive. */
#define ELEM_CACHE_SIZE 4096 /* a power of two */
#define ELEM_CACHE_MAXLEN 24

static PyObject *elem_cache[ELEM_CACHE_SIZE];

static PyObject *shared_bytes(const char *s, Py_ssize_t n)
{
    if (n > ELEM_CACHE_MAXLEN || n < 2) /* CPython already shares b"" and 1-byte bytes */
        return PyBytes_FromStringAndSize(s, n);
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ (u8)s[i]) * 16777619u;
    h ^= h >> 15;
    PyObject **slot = &elem_cache[h & (ELEM_CACHE_SIZE - 1)];
    PyObject *o = *slot;
    if (o != NULL && PyBytes_GET_SIZE(o) == n && memcmp(PyBytes_AS_STRING(o), s, (size_t)n) == 0) {
        Py_INCREF(o);
        return o;
    }
    o = PyBytes_FromStringAndSize(s, n);
    if (o == NULL)
        return NULL;
    Py_INCREF(o);
    Py_XSETREF(*slot, o);
    return o;
}

static PyObject *bytes_of_i64(int64_t v)
{
    char tmp[24];
    Py_ssize_t n = fmt_i64(tmp, v);
    return shared_bytes(tmp, n);
}

/* ---- entries of a decoded blob ---- */

typedef struct {
    const u8 *s;    /* string entry */
    Py_ssize_t len; /* -1: integer entry (v) */
    int64_t v;
} Ent;

typedef struct {
    Ent *e;
    Py_ssize_t n, cap;
} EntVec;

static int vec_push(EntVec *vec, const u8 *s, Py_ssize_t len, int64_t v)
{
    if (vec->n == vec->cap) {
        Py_ssize_t cap = vec->cap ? vec->cap * 2 : 64;
        Ent *e;
        if ((size_t)cap > PY_SSIZE_T_MAX / sizeof(Ent)) {
            PyErr_NoMemory();
            return RS_ERR;
        }
        e = PyMem_Realloc(vec->e, (size_t)cap * sizeof(Ent));
        if (e == NULL) {
            PyErr_NoMemory();
            return RS_ERR;
        }
        vec->e = e;
        vec->cap = cap;
    }
    vec->e[vec->n].s = s;
    vec->e[vec->n].len = len;
    vec->e[vec->n].v = v;
    vec->n++;
    return RS_OK;
}

#define PUSH_STR(s_, l_)                                         \
    do {                                                         \
        if (vec_push(vec, (s_), (l_), 0) < 0)                    \
            return RS_ERR;                                        \
    } while (0)
#define PUSH_INT(v_)                                             \
    do {                                                         \
        if (vec_push(vec, NULL, -1, (int64_t)(v_)) < 0)          \
            return RS_ERR;                                        \
    } while (0)

static PyObject *ent_bytes(const Ent *e)
{
    if (e->len >= 0)
        return shared_bytes((const char *)e->s, e->len);
    return bytes_of_i64(e->v);
}

/* ---- blob decoders: the same acceptance rules as encodings.py, RS_STOP on any doubt ---- */

/* decode_ziplist: ziplist.c layout, checks as ziplistValidateIntegrity(deep). */
static int decode_ziplist(EntVec *vec, const u8 *b, Py_ssize_t n)
{
    Py_ssize_t end, p, s, start, prev = 0;
    uint32_t zltail, zllen;
    vec->n = 0;
    if (n < 11)
        return RS_STOP;
    if ((uint64_t)le32(b) != (uint64_t)n)
        return RS_STOP;
    zltail = le32(b + 4);
    zllen = le16(b + 8);
    end = n - 1;
    if (b[end] != 0xFF)
        return RS_STOP;
    p = 10;
    while (p < end) {
        unsigned pb = b[p];
        unsigned e = b[p + 1]; /* p < end: at worst the end marker */
        if (e < 0x40 && (Py_ssize_t)pb == prev && prev < 254) {
            s = p + 2;
            p = s + e;
            if (p > end)
                return RS_STOP;
            PUSH_STR(b + s, e);
            prev = (Py_ssize_t)e + 2;
            continue;
        }
        start = p;
        if (pb < 254) {
            if ((Py_ssize_t)pb != prev)
                return RS_STOP;
            p += 1;
        }
        else if (pb == 254) {
            if (p + 5 > end)
                return RS_STOP;
            if ((int64_t)le32(b + p + 1) != (int64_t)prev)
                return RS_STOP;
            p += 5;
        }
        else {
            return RS_STOP;
        }
        /* p <= end here and b[end] is 0xFF */
        e = b[p];
        if (e < 0x40) {
            s = p + 1;
            p = s + e;
            if (p > end)
                return RS_STOP;
            PUSH_STR(b + s, e);
        }
        else if (e < 0xC0) {
            uint64_t ln;
            if (e < 0x80) {
                /* e != 0xFF, so p < end and p + 1 <= end */
                s = p + 2;
                ln = ((uint64_t)(e & 0x3F) << 8) | b[p + 1];
            }
            else {
                s = p + 5;
                if (s > end)
                    return RS_STOP;
                ln = be32(b + p + 1);
            }
            if (s > end || ln > (uint64_t)(end - s))
                return RS_STOP;
            p = s + (Py_ssize_t)ln;
            PUSH_STR(b + s, (Py_ssize_t)ln);
        }
        else {
            int64_t v;
            if (e >= 0xF1 && e <= 0xFD) {
                v = (int64_t)(e & 0x0F) - 1;
                p += 1;
            }
            else if (e == 0xFE) {
                if (p + 2 > end)
                    return RS_STOP;
                v = (int8_t)b[p + 1];
                p += 2;
            }
            else if (e == 0xC0) {
                if (p + 3 > end)
                    return RS_STOP;
                v = i16le(b + p + 1);
                p += 3;
            }
            else if (e == 0xD0) {
                if (p + 5 > end)
                    return RS_STOP;
                v = i32le(b + p + 1);
                p += 5;
            }
            else if (e == 0xE0) {
                if (p + 9 > end)
                    return RS_STOP;
                v = i64le(b + p + 1);
                p += 9;
            }
            else if (e == 0xF0) {
                if (p + 4 > end)
                    return RS_STOP;
                v = i24le(b + p + 1);
                p += 4;
            }
            else {
                return RS_STOP;
            }
            PUSH_INT(v);
        }
        prev = p - start;
    }
    if (p != end)
        return RS_STOP;
    if (zllen != 0xFFFF && (Py_ssize_t)zllen != vec->n)
        return RS_STOP;
    if (vec->n && (int64_t)zltail != (int64_t)(p - prev))
        return RS_STOP;
    return RS_OK;
}

static Py_ssize_t backlen_size(uint64_t entry_size)
{
    if (entry_size <= 127)
        return 1;
    if (entry_size < 16383)
        return 2;
    if (entry_size < 2097151)
        return 3;
    if (entry_size < 268435455)
        return 4;
    return 5;
}

/* decode_listpack: listpack.c layout, checks as the Python decoder (backlens unchecked). */
static int decode_listpack(EntVec *vec, const u8 *b, Py_ssize_t n)
{
    Py_ssize_t end, p, s;
    uint32_t count;
    vec->n = 0;
    if (n < 7)
        return RS_STOP;
    if ((uint64_t)le32(b) != (uint64_t)n)
        return RS_STOP;
    count = le16(b + 4);
    end = n - 1;
    if (b[end] != 0xFF)
        return RS_STOP;
    p = 6;
    while (p < end) {
        unsigned c = b[p];
        int64_t v;
        if (c < 0x80) { /* 7-bit unsigned int */
            p += 2;
            if (p > end)
                return RS_STOP;
            PUSH_INT(c);
            continue;
        }
        if (c < 0xC0) { /* string up to 63 bytes */
            Py_ssize_t ln = c & 0x3F;
            s = p + 1;
            p = s + ln + 1;
            if (p > end)
                return RS_STOP;
            PUSH_STR(b + s, ln);
            continue;
        }
        if (c < 0xE0) { /* 13-bit signed int; p < end so p + 1 <= end */
            v = ((int64_t)(c & 0x1F) << 8) | b[p + 1];
            if (v >= 4096)
                v -= 8192;
            p += 3;
        }
        else if (c < 0xF0) { /* string up to 4095 bytes */
            Py_ssize_t ln = ((Py_ssize_t)(c & 0x0F) << 8) | b[p + 1];
            s = p + 2;
            if (s + ln > end)
                return RS_STOP;
            PUSH_STR(b + s, ln);
            p = s + ln + (ln + 2 <= 127 ? 1 : 2);
            if (p > end)
                return RS_STOP;
            continue;
        }
        else if (c == 0xF0) { /* string with a 32-bit length */
            uint64_t ln;
            if (p + 5 > end)
                return RS_STOP;
            ln = le32(b + p + 1);
            s = p + 5;
            if (ln > (uint64_t)(end - s))
                return RS_STOP;
            PUSH_STR(b + s, (Py_ssize_t)ln);
            p = s + (Py_ssize_t)ln + backlen_size(ln + 5);
            if (p > end)
                return RS_STOP;
            continue;
        }
        else if (c == 0xF1) {
            if (p + 3 > end)
                return RS_STOP;
            v = i16le(b + p + 1);
            p += 4;
        }
        else if (c == 0xF2) {
            if (p + 4 > end)
                return RS_STOP;
            v = i24le(b + p + 1);
            p += 5;
        }
        else if (c == 0xF3) {
            if (p + 5 > end)
                return RS_STOP;
            v = i32le(b + p + 1);
            p += 6;
        }
        else if (c == 0xF4) {
            if (p + 9 > end)
                return RS_STOP;
            v = i64le(b + p + 1);
            p += 10;
        }
        else {
            return RS_STOP;
        }
        if (p > end)
            return RS_STOP;
        PUSH_INT(v);
    }
    if (p != end)
        return RS_STOP;
    if (count != 0xFFFF && (Py_ssize_t)count != vec->n)
        return RS_STOP;
    return RS_OK;
}

/* decode_intset: sorted, unique integers of 2, 4 or 8 bytes. */
static int decode_intset(EntVec *vec, const u8 *b, Py_ssize_t n)
{
    uint32_t enc, cnt, i;
    int64_t last = 0;
    vec->n = 0;
    if (n < 8)
        return RS_STOP;
    enc = le32(b);
    cnt = le32(b + 4);
    if (enc != 2 && enc != 4 && enc != 8)
        return RS_STOP;
    if ((uint64_t)8 + (uint64_t)enc * cnt != (uint64_t)n)
        return RS_STOP;
    for (i = 0; i < cnt; i++) {
        const u8 *q = b + 8 + (size_t)i * enc;
        int64_t v = enc == 2 ? i16le(q) : enc == 4 ? i32le(q) : i64le(q);
        if (i && v <= last)
            return RS_STOP;
        last = v;
        PUSH_INT(v);
    }
    return RS_OK;
}

/* ---- LZF (liblzf lzf_d.c semantics: the output must be exactly out_len bytes) ---- */

static int lzf_dec(const u8 *in, Py_ssize_t in_len, u8 *out, Py_ssize_t out_len)
{
    Py_ssize_t ip = 0, op = 0;
    while (ip < in_len) {
        Py_ssize_t ctrl = in[ip++];
        if (ctrl < 32) { /* literal run of ctrl + 1 bytes */
            ctrl++;
            if (out_len - op < ctrl || in_len - ip < ctrl)
                return -1;
            memcpy(out + op, in + ip, (size_t)ctrl);
            op += ctrl;
            ip += ctrl;
        }
        else { /* back reference */
            Py_ssize_t len = ctrl >> 5;
            Py_ssize_t back = ((ctrl & 0x1f) << 8) + 1;
            Py_ssize_t ref, k;
            if (ip >= in_len)
                return -1;
            if (len == 7) {
                len += in[ip++];
                if (ip >= in_len)
                    return -1;
            }
            back += in[ip++];
            len += 2;
            if (out_len - op < len || back > op)
                return -1;
            ref = op - back;
            if (back >= len) {
                memcpy(out + op, out + ref, (size_t)len);
            }
            else {
                for (k = 0; k < len; k++)
                    out[op + k] = out[ref + k];
            }
            op += len;
        }
    }
    return op == out_len ? 0 : -1;
}

/* ---- RDB primitives over the fed buffer ---- */

typedef struct {
    const u8 *buf;
    Py_ssize_t end;
    PyObject *zset_type;
    PyObject *set_type; /* set_type(members list, rdb type) for sets 2 and 20, or NULL */
    EntVec vec;
    u8 *scratch; /* LZF output for blobs */
    size_t scratch_cap;
    /* When a record is cut (RS_MORE): the buffer size it is expected to need, exact where a
     * length says it (a long string), else estimated from the members read so far. */
    Py_ssize_t need;
} Ctx;

/* RS_MORE, noting that the record is expected to need `need` bytes of buffer. Ctx objects
 * are never const themselves; functions only take them const because they do not parse
 * differently for it. */
static inline int more_need(const Ctx *c, Py_ssize_t need)
{
    Ctx *m = (Ctx *)c;
    if (need > m->need)
        m->need = need;
    return RS_MORE;
}

/* RS_MORE from inside a run of n members that started at `start`, `i` of them read (up to
 * p): the record is expected to need about as many bytes per member for the rest. */
static int more_members(const Ctx *c, Py_ssize_t start, Py_ssize_t p, uint64_t i, uint64_t n)
{
    if (i > 0 && n > i) {
        double est = (double)start + (double)(p - start) * ((double)n / (double)i);
        if (est > (double)(PY_SSIZE_T_MAX / 2))
            est = (double)(PY_SSIZE_T_MAX / 2);
        return more_need(c, (Py_ssize_t)est);
    }
    return RS_MORE;
}

/* rdbLoadLen: 6/14/32/64-bit lengths; the encoded-string forms (0xC0+) are refused. */
static inline int read_len(const Ctx *c, Py_ssize_t *pp, uint64_t *out)
{
    const u8 *b = c->buf;
    Py_ssize_t p = *pp, end = c->end;
    unsigned x;
    if (p >= end)
        return RS_MORE;
    x = b[p];
    if (x < 0x40) {
        *out = x;
        *pp = p + 1;
        return RS_OK;
    }
    if (x < 0x80) {
        if (end - p < 2)
            return RS_MORE;
        *out = ((uint64_t)(x & 0x3F) << 8) | b[p + 1];
        *pp = p + 2;
        return RS_OK;
    }
    if (x == 0x80) {
        if (end - p < 5)
            return RS_MORE;
        *out = be32(b + p + 1);
        *pp = p + 5;
        return RS_OK;
    }
    if (x == 0x81) {
        if (end - p < 9)
            return RS_MORE;
        *out = be64(b + p + 1);
        *pp = p + 9;
        return RS_OK;
    }
    return RS_STOP;
}

#define S_RAW 0
#define S_INT 1
#define S_LZF 2

typedef struct {
    int kind;
    Py_ssize_t s;   /* raw: content start; lzf: compressed data start */
    Py_ssize_t len; /* raw: length; lzf: compressed length */
    Py_ssize_t ulen; /* lzf: uncompressed length */
    int64_t iv;     /* int */
} StrHdr;

/* The header of an RDB string at *pp (rdbGenericLoadStringObject); *pp moves past it all. */
static int str_header(const Ctx *c, Py_ssize_t *pp, StrHdr *h)
{
    const u8 *b = c->buf;
    Py_ssize_t p = *pp, end = c->end;
    unsigned x;
    uint64_t ln;
    int r;
    if (p >= end)
        return RS_MORE;
    x = b[p];
    if (x < 0x40) {
        h->kind = S_RAW;
        h->s = p + 1;
        if ((Py_ssize_t)x > end - h->s)
            return RS_MORE;
        h->len = x;
        *pp = h->s + x;
        return RS_OK;
    }
    if (x < 0xC0) {
        if ((r = read_len(c, &p, &ln)) != RS_OK)
            return r;
        if (ln > (uint64_t)(end - p))
            return more_need(c, ln > (uint64_t)(PY_SSIZE_T_MAX / 2) ? PY_SSIZE_T_MAX / 2
                                                                   : p + (Py_ssize_t)ln);
        h->kind = S_RAW;
        h->s = p;
        h->len = (Py_ssize_t)ln;
        *pp = p + (Py_ssize_t)ln;
        return RS_OK;
    }
    if (x == 0xC0) {
        if (end - p < 2)
            return RS_MORE;
        h->kind = S_INT;
        h->iv = (int8_t)b[p + 1];
        *pp = p + 2;
        return RS_OK;
    }
    if (x == 0xC1) {
        if (end - p < 3)
            return RS_MORE;
        h->kind = S_INT;
        h->iv = i16le(b + p + 1);
        *pp = p + 3;
        return RS_OK;
    }
    if (x == 0xC2) {
        if (end - p < 5)
            return RS_MORE;
        h->kind = S_INT;
        h->iv = i32le(b + p + 1);
        *pp = p + 5;
        return RS_OK;
    }
    if (x == 0xC3) {
        uint64_t clen, ulen;
        p += 1;
        if ((r = read_len(c, &p, &clen)) != RS_OK || (r = read_len(c, &p, &ulen)) != RS_OK)
            return r;
        if (clen > (uint64_t)(end - p))
            return more_need(c, clen > (uint64_t)(PY_SSIZE_T_MAX / 2) ? PY_SSIZE_T_MAX / 2
                                                                     : p + (Py_ssize_t)clen);
        if (ulen > clen * LZF_MAX_RATIO)
            return RS_STOP;
        h->kind = S_LZF;
        h->s = p;
        h->len = (Py_ssize_t)clen;
        h->ulen = (Py_ssize_t)ulen;
        *pp = p + (Py_ssize_t)clen;
        return RS_OK;
    }
    return RS_STOP;
}

/* An RDB string as a new bytes object in *out. */
static int read_str(const Ctx *c, Py_ssize_t *pp, PyObject **out)
{
    const u8 *b = c->buf;
    Py_ssize_t p = *pp;
    StrHdr h;
    int r;
    /* the common case first: a raw string of up to 63 bytes */
    if (p < c->end && b[p] < 0x40) {
        Py_ssize_t n = b[p];
        if (n > c->end - p - 1)
            return RS_MORE;
        *out = PyBytes_FromStringAndSize((const char *)b + p + 1, n);
        if (*out == NULL)
            return RS_ERR;
        *pp = p + 1 + n;
        return RS_OK;
    }
    r = str_header(c, &p, &h);
    if (r != RS_OK)
        return r;
    if (h.kind == S_RAW) {
        *out = PyBytes_FromStringAndSize((const char *)b + h.s, h.len);
    }
    else if (h.kind == S_INT) {
        *out = bytes_of_i64(h.iv);
    }
    else {
        PyObject *o = PyBytes_FromStringAndSize(NULL, h.ulen);
        if (o == NULL)
            return RS_ERR;
        if (h.ulen && lzf_dec(b + h.s, h.len, (u8 *)PyBytes_AS_STRING(o), h.ulen) < 0) {
            Py_DECREF(o);
            return RS_STOP;
        }
        *out = o;
    }
    if (*out == NULL)
        return RS_ERR;
    *pp = p;
    return RS_OK;
}

/* read_str for a collection's member: a short raw string may be a shared object
 * (shared_bytes: members repeat across keys, keys do not). */
static int read_member(const Ctx *c, Py_ssize_t *pp, PyObject **out)
{
    const u8 *b = c->buf;
    Py_ssize_t p = *pp;
    if (p < c->end && b[p] <= ELEM_CACHE_MAXLEN) {
        Py_ssize_t n = b[p];
        if (n > c->end - p - 1)
            return RS_MORE;
        *out = shared_bytes((const char *)b + p + 1, n);
        if (*out == NULL)
            return RS_ERR;
        *pp = p + 1 + n;
        return RS_OK;
    }
    return read_str(c, pp, out);
}

/* The LZF string of h decompressed into the context's scratch buffer (grown as needed). */
static int lzf_scratch(Ctx *c, const StrHdr *h)
{
    if ((size_t)h->ulen > c->scratch_cap) {
        u8 *s = PyMem_Realloc(c->scratch, (size_t)h->ulen);
        if (s == NULL) {
            PyErr_NoMemory();
            return RS_ERR;
        }
        c->scratch = s;
        c->scratch_cap = (size_t)h->ulen;
    }
    if (lzf_dec(c->buf + h->s, h->len, c->scratch, h->ulen) < 0)
        return RS_STOP;
    return RS_OK;
}

/* An RDB string holding a blob (ziplist, listpack, intset): a view into the buffer, or into
 * the context's scratch buffer for LZF. Int-encoded strings can be no valid blob. */
static int read_blob(Ctx *c, Py_ssize_t *pp, const u8 **data, Py_ssize_t *len)
{
    StrHdr h;
    Py_ssize_t p = *pp;
    int r = str_header(c, &p, &h);
    if (r != RS_OK)
        return r;
    if (h.kind == S_RAW) {
        *data = c->buf + h.s;
        *len = h.len;
    }
    else if (h.kind == S_LZF) {
        if (h.ulen == 0) {
            *data = c->buf + h.s; /* an empty blob: no byte of it is read */
            *len = 0;
        }
        else {
            r = lzf_scratch(c, &h);
            if (r != RS_OK)
                return r;
            *data = c->scratch;
            *len = h.ulen;
        }
    }
    else {
        return RS_STOP; /* a decimal number is never a valid blob */
    }
    *pp = p;
    return RS_OK;
}

/* ---- scores ---- */

/* float(bytes) exactly as Python does it (PyFloat_FromString); RS_STOP where it raises. */
static int parse_float(const u8 *s, Py_ssize_t len, double *out)
{
    char tmp[64];
    PyObject *o, *f;
    if (len > 0 && len < (Py_ssize_t)sizeof(tmp)) {
        /* Fast path, for the plain forms only: the same PyOS_string_to_double call that
         * float() ends up making when there is no whitespace, underscore or NUL to handle. */
        Py_ssize_t i;
        int plain = 1;
        for (i = 0; i < len; i++) {
            u8 ch = s[i];
            if (!((ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '+' || ch == 'e' ||
                  ch == 'E')) {
                plain = 0;
                break;
            }
        }
        if (plain) {
            char *endp;
            double x;
            memcpy(tmp, s, (size_t)len);
            tmp[len] = '\0';
            x = PyOS_string_to_double(tmp, &endp, NULL);
            if (x == -1.0 && PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_ValueError))
                    return RS_ERR;
                PyErr_Clear();
                return RS_STOP;
            }
            if (endp != tmp + len)
                return RS_STOP;
            *out = x;
            return RS_OK;
        }
    }
    o = PyBytes_FromStringAndSize((const char *)s, len);
    if (o == NULL)
        return RS_ERR;
    f = PyFloat_FromString(o);
    Py_DECREF(o);
    if (f == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError))
            return RS_ERR;
        PyErr_Clear();
        return RS_STOP;
    }
    *out = PyFloat_AS_DOUBLE(f);
    Py_DECREF(f);
    return RS_OK;
}

static int ent_score(const Ent *e, double *out)
{
    if (e->len < 0) {
        *out = (double)e->v; /* == float(b"%d" % v): both round to nearest */
        return RS_OK;
    }
    return parse_float(e->s, e->len, out);
}

/* ---- values from decoded entries ---- */

static int ents_extend_list(const EntVec *vec, PyObject *list)
{
    Py_ssize_t i;
    for (i = 0; i < vec->n; i++) {
        PyObject *o = ent_bytes(&vec->e[i]);
        int r;
        if (o == NULL)
            return RS_ERR;
        r = PyList_Append(list, o);
        Py_DECREF(o);
        if (r < 0)
            return RS_ERR;
    }
    return RS_OK;
}

static int ents_list(const EntVec *vec, PyObject **out)
{
    Py_ssize_t i;
    PyObject *list = PyList_New(vec->n);
    if (list == NULL)
        return RS_ERR;
    for (i = 0; i < vec->n; i++) {
        PyObject *o = ent_bytes(&vec->e[i]);
        if (o == NULL) {
            Py_DECREF(list);
            return RS_ERR;
        }
        PyList_SET_ITEM(list, i, o);
    }
    *out = list;
    return RS_OK;
}

/* A set that keeps the file's order: `set_type(list, rdbtype)`; a duplicate member (the
 * set smaller than the list) is left to the Python path, which reports it. */
static int ordered_set(PyObject *set_type, PyObject *list, int rdbtype, PyObject **out)
{
    Py_ssize_t n = PyList_GET_SIZE(list);
    PyObject *o = PyObject_CallFunction(set_type, "Oi", list, rdbtype);
    Py_DECREF(list);
    if (o == NULL)
        return RS_ERR;
    if (PySet_GET_SIZE(o) != n) {
        Py_DECREF(o);
        return RS_STOP;
    }
    *out = o;
    return RS_OK;
}

static int ents_set(const EntVec *vec, PyObject **out)
{
    Py_ssize_t i;
    PyObject *set = PySet_New(NULL);
    if (set == NULL)
        return RS_ERR;
    for (i = 0; i < vec->n; i++) {
        PyObject *o = ent_bytes(&vec->e[i]);
        int r;
        if (o == NULL) {
            Py_DECREF(set);
            return RS_ERR;
        }
        r = PySet_Add(set, o);
        Py_DECREF(o);
        if (r < 0) {
            Py_DECREF(set);
            return RS_ERR;
        }
    }
    if (PySet_GET_SIZE(set) != vec->n) { /* duplicate members */
        Py_DECREF(set);
        return RS_STOP;
    }
    *out = set;
    return RS_OK;
}

/* A hash blob's (field, value) entries into a dict, or (scores) a zset blob's (member,
 * score) entries into a zset_type; an odd count or a repeated field or member is left to
 * the Python path, which reports it. */
static int ents_pairs(const Ctx *c, const EntVec *vec, int scores, PyObject **out)
{
    Py_ssize_t i;
    PyObject *d;
    int r;
    if (vec->n & 1)
        return RS_STOP;
    d = scores ? PyObject_CallNoArgs(c->zset_type) : PyDict_New();
    if (d == NULL)
        return RS_ERR;
    for (i = 0; i < vec->n; i += 2) {
        double s = 0;
        PyObject *k, *v;
        if (scores) {
            r = ent_score(&vec->e[i + 1], &s);
            if (r != RS_OK) {
                Py_DECREF(d);
                return r;
            }
        }
        k = ent_bytes(&vec->e[i]);
        if (k == NULL) {
            Py_DECREF(d);
            return RS_ERR;
        }
        v = scores ? PyFloat_FromDouble(s) : ent_bytes(&vec->e[i + 1]);
        if (v == NULL) {
            Py_DECREF(k);
            Py_DECREF(d);
            return RS_ERR;
        }
        r = PyDict_SetItem(d, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (r < 0) {
            Py_DECREF(d);
            return RS_ERR;
        }
    }
    if (PyDict_GET_SIZE(d) * 2 != vec->n) { /* duplicate fields or members */
        Py_DECREF(d);
        return RS_STOP;
    }
    *out = d;
    return RS_OK;
}

/* ---- object values (rdbLoadObject for the types handled here) ---- */

#define TRY(expr)                       \
    do {                                \
        int r_ = (expr);                \
        if (r_ != RS_OK) {               \
            Py_XDECREF(out);            \
            return r_;                  \
        }                               \
    } while (0)

/* As TRY, inside a loop over n members from `start` with `i` read up to `p`: a cut record
 * also notes the buffer size it is expected to need. */
#define TRY_M(expr)                                        \
    do {                                                   \
        int r_ = (expr);                                   \
        if (r_ != RS_OK) {                                 \
            Py_XDECREF(out);                               \
            if (r_ == RS_MORE)                             \
                r_ = more_members(c, start, p, (uint64_t)i, n); \
            return r_;                                     \
        }                                                  \
    } while (0)

/* type 1 (list) and 2 (set): n strings */
static int v_list_or_set(const Ctx *c, Py_ssize_t *pp, int as_set, PyObject **res)
{
    Py_ssize_t p = *pp, i;
    uint64_t n;
    PyObject *out = NULL;
    if (as_set && c->set_type != NULL) {
        /* Read as a list (cut records included), then `set_type(list, 2)`: a set that
         * keeps the file's order. */
        PyObject *list = NULL;
        int r = v_list_or_set(c, pp, 0, &list);
        if (r != RS_OK)
            return r;
        return ordered_set(c->set_type, list, 2, res);
    }
    int r0 = read_len(c, &p, &n);
    /* Each member takes at least one byte: a count beyond the bytes present means the
     * record is cut (or the count is bogus). Nothing is allocated for it up front; the
     * members present are read one by one until the bytes run out (RS_MORE), so a cut
     * record is accepted or refused exactly as far as the Python path would. */
    int cut = 0;
    Py_ssize_t start = p;
    if (r0 != RS_OK)
        return r0;
    start = p;
    if (n > (uint64_t)(c->end - p))
        cut = 1;
    if (as_set) {
        out = PySet_New(NULL);
        if (out == NULL)
            return RS_ERR;
        for (i = 0; (uint64_t)i < n; i++) {
            PyObject *m = NULL;
            int r;
            TRY_M(read_member(c, &p, &m));
            r = PySet_Add(out, m);
            Py_DECREF(m);
            if (r < 0) {
                Py_DECREF(out);
                return RS_ERR;
            }
        }
        if (PySet_GET_SIZE(out) != (Py_ssize_t)n) {
            Py_DECREF(out);
            return RS_STOP;
        }
    }
    else if (cut) {
        out = PyList_New(0);
        if (out == NULL)
            return RS_ERR;
        for (i = 0;; i++) { /* ends with RS_MORE (or a refusal) before n members */
            PyObject *m = NULL;
            int r;
            TRY_M(read_member(c, &p, &m));
            r = PyList_Append(out, m);
            Py_DECREF(m);
            if (r < 0)
                TRY(RS_ERR);
        }
    }
    else {
        out = PyList_New((Py_ssize_t)n);
        if (out == NULL)
            return RS_ERR;
        for (i = 0; i < (Py_ssize_t)n; i++) {
            PyObject *m = NULL;
            TRY(read_member(c, &p, &m)); /* a partly filled list is freed safely */
            PyList_SET_ITEM(out, i, m);
        }
    }
    *res = out;
    *pp = p;
    return RS_OK;
}

/* A zset's score after its member, as a new float in *out: type 3's ASCII form (a length
 * byte, or 253 NaN, 254 +inf, 255 -inf) or type 5's binary double. NaN is refused. */
static int read_score(const Ctx *c, Py_ssize_t *pp, int binary, PyObject **out)
{
    const u8 *b = c->buf;
    Py_ssize_t p = *pp, end = c->end;
    double s;
    if (binary) {
        uint64_t bits;
        if (end - p < 8)
            return RS_MORE;
        bits = le64(b + p);
        memcpy(&s, &bits, 8);
        p += 8;
    }
    else {
        unsigned x = p < end ? b[p] : 0;
        if (p >= end || x == 253) /* incomplete, or NaN (refused) */
            return p >= end ? RS_MORE : RS_STOP;
        if (x == 254) {
            s = Py_HUGE_VAL;
            p += 1;
        }
        else if (x == 255) {
            s = -Py_HUGE_VAL;
            p += 1;
        }
        else {
            int r;
            if ((Py_ssize_t)x > end - p - 1)
                return RS_MORE;
            r = parse_float(b + p + 1, x, &s);
            if (r != RS_OK)
                return r;
            p += 1 + x;
        }
    }
    if (isnan(s))
        return RS_STOP;
    *out = PyFloat_FromDouble(s);
    if (*out == NULL)
        return RS_ERR;
    *pp = p;
    return RS_OK;
}

/* types 4 (n field, value strings), 3 (n members, each with an ASCII score) and 5 (binary
 * double scores) */
static int v_pairs(const Ctx *c, Py_ssize_t *pp, int t, PyObject **res)
{
    Py_ssize_t p = *pp, i;
    uint64_t n;
    PyObject *out = NULL;
    int r0 = read_len(c, &p, &n);
    if (r0 != RS_OK)
        return r0;
    /* No up-front check of n against the bytes present: the dict grows as pairs are read,
     * and a cut record ends in RS_MORE where the bytes run out. */
    Py_ssize_t start = p;
    out = t == 4 ? PyDict_New() : PyObject_CallNoArgs(c->zset_type);
    if (out == NULL)
        return RS_ERR;
    for (i = 0; (uint64_t)i < n; i++) {
        PyObject *k = NULL, *v = NULL;
        int r;
        TRY_M(read_member(c, &p, &k));
        r = t == 4 ? read_member(c, &p, &v) : read_score(c, &p, t == 5, &v);
        if (r != RS_OK) {
            Py_DECREF(k);
            Py_DECREF(out);
            return r == RS_MORE ? more_members(c, start, p, (uint64_t)i, n) : r;
        }
        r = PyDict_SetItem(out, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (r < 0) {
            Py_DECREF(out);
            return RS_ERR;
        }
    }
    if (PyDict_GET_SIZE(out) != (Py_ssize_t)n) { /* duplicate fields or members */
        Py_DECREF(out);
        return RS_STOP;
    }
    *res = out;
    *pp = p;
    return RS_OK;
}

/* types 14 (ziplist nodes) and 18 (container + PLAIN element or PACKED listpack) */
static int v_quicklist(Ctx *c, Py_ssize_t *pp, int v2, PyObject **res)
{
    Py_ssize_t p = *pp, i;
    uint64_t n;
    PyObject *out = NULL;
    int r0 = read_len(c, &p, &n);
    if (r0 != RS_OK)
        return r0;
    /* the list grows node by node: a cut record ends in RS_MORE where the bytes run out */
    Py_ssize_t start = p;
    for (i = 0; (uint64_t)i < n; i++) {
        const u8 *blob;
        Py_ssize_t blen;
        if (v2) {
            uint64_t container;
            TRY_M(read_len(c, &p, &container));
            if (container != 2) {
                PyObject *elem = NULL;
                int r;
                if (container != 1)
                    TRY(RS_STOP);
                TRY_M(read_str(c, &p, &elem));
                if (PyBytes_GET_SIZE(elem) == 0) { /* "empty quicklist node" */
                    Py_DECREF(elem);
                    TRY(RS_STOP);
                }
                if (out == NULL && (out = PyList_New(0)) == NULL) {
                    Py_DECREF(elem);
                    return RS_ERR;
                }
                r = PyList_Append(out, elem);
                Py_DECREF(elem);
                if (r < 0)
                    TRY(RS_ERR);
                continue;
            }
        }
        TRY_M(read_blob(c, &p, &blob, &blen));
        TRY(v2 ? decode_listpack(&c->vec, blob, blen) : decode_ziplist(&c->vec, blob, blen));
        if (out == NULL && (out = PyList_New(0)) == NULL)
            return RS_ERR;
        TRY(ents_extend_list(&c->vec, out));
    }
    if (out == NULL && (out = PyList_New(0)) == NULL)
        return RS_ERR;
    *res = out;
    *pp = p;
    return RS_OK;
}

/* types 10-13, 16, 17, 20: one blob */
static int v_blob(Ctx *c, Py_ssize_t *pp, int t, PyObject **res)
{
    Py_ssize_t p = *pp;
    const u8 *blob;
    Py_ssize_t blen;
    int r = read_blob(c, &p, &blob, &blen);
    if (r != RS_OK)
        return r;
    switch (t) {
    case 10:
    case 12:
    case 13:
        r = decode_ziplist(&c->vec, blob, blen);
        break;
    case 11:
        r = decode_intset(&c->vec, blob, blen);
        break;
    default:
        r = decode_listpack(&c->vec, blob, blen);
        break;
    }
    if (r != RS_OK)
        return r;
    switch (t) {
    case 10:
        r = ents_list(&c->vec, res);
        break;
    case 11:
        r = ents_set(&c->vec, res);
        break;
    case 20:
        if (c->set_type != NULL) {
            PyObject *list = NULL;
            r = ents_list(&c->vec, &list);
            if (r == RS_OK)
                r = ordered_set(c->set_type, list, 20, res);
        } else {
            r = ents_set(&c->vec, res);
        }
        break;
    case 12:
    case 17:
        r = ents_pairs(c, &c->vec, 1, res);
        break;
    default: /* 13, 16 */
        r = ents_pairs(c, &c->vec, 0, res);
        break;
    }
    if (r == RS_OK)
        *pp = p;
    return r;
}

static int read_value(Ctx *c, int t, Py_ssize_t *pp, PyObject **res)
{
    switch (t) {
    case 0:
        return read_str(c, pp, res);
    case 1:
        return v_list_or_set(c, pp, 0, res);
    case 2:
        return v_list_or_set(c, pp, 1, res);
    case 3:
    case 4:
    case 5:
        return v_pairs(c, pp, t, res);
    case 10:
    case 11:
    case 12:
    case 13:
    case 16:
    case 17:
    case 20:
        return v_blob(c, pp, t, res);
    case 14:
        return v_quicklist(c, pp, 0, res);
    case 18:
        return v_quicklist(c, pp, 1, res);
    default:
        return RS_STOP;
    }
}

static inline int handled_type(unsigned t)
{
    return t <= 5 || (t >= 10 && t <= 14) || (t >= 16 && t <= 18) || t == 20;
}

static inline Py_ssize_t container_size(PyObject *v)
{
    if (PyList_CheckExact(v))
        return PyList_GET_SIZE(v);
    if (PyAnySet_Check(v))
        return PySet_GET_SIZE(v);
    if (PyDict_Check(v))
        return PyDict_GET_SIZE(v);
    return 1; /* bytes: an empty string is a value, never skipped */
}

/* ---- the entry points ---- */

/* An RDB string checked but not built (a key or a string value in count mode): the same
 * acceptance as read_str, LZF included (decompressed into the scratch buffer). */
static int check_str(Ctx *c, Py_ssize_t *pp)
{
    StrHdr h;
    Py_ssize_t p = *pp;
    int r = str_header(c, &p, &h);
    if (r != RS_OK)
        return r;
    if (h.kind == S_LZF && h.ulen && (r = lzf_scratch(c, &h)) != RS_OK)
        return r;
    *pp = p;
    return RS_OK;
}

#define MODE_LOAD 0    /* store into dbs[db] / expires[db] */
#define MODE_COUNT 1   /* tally per type, keep nothing */
#define MODE_COLLECT 2 /* append (db, key, value, expire) tuples to a list */

#define COUNT_SLOTS 128 /* count mode: counts[2 * type + has_expire], types < 64 */

typedef struct {
    int mode;
    PyObject *d, *x;      /* load: the DB's dicts */
    uint64_t *counts;     /* count */
    PyObject *out, *dbo;  /* collect: the list and the DB number object */
} Dest;

/* One key record parsed (key may be NULL in count mode): store, count or collect it.
 * Steals nothing; returns RS_OK or RS_ERR. */
static int put_key(Dest *dst, unsigned t, PyObject *key, PyObject *val, int have_exp,
                   int64_t exp, Py_ssize_t *nkeys)
{
    PyObject *eo = NULL;
    int r;
    if (dst->mode == MODE_COUNT) {
        dst->counts[2 * t + (have_exp ? 1 : 0)]++;
        (*nkeys)++;
        return RS_OK;
    }
    if (have_exp && (eo = PyLong_FromLongLong(exp)) == NULL)
        return RS_ERR;
    if (dst->mode == MODE_LOAD) {
        r = PyDict_SetItem(dst->d, key, val);
        if (r == 0 && eo != NULL)
            r = PyDict_SetItem(dst->x, key, eo);
    }
    else {
        PyObject *tup = PyTuple_Pack(4, dst->dbo, key, val, eo ? eo : Py_None);
        r = tup == NULL ? -1 : PyList_Append(dst->out, tup);
        Py_XDECREF(tup);
    }
    Py_XDECREF(eo);
    if (r < 0)
        return RS_ERR;
    (*nkeys)++;
    return RS_OK;
}

/* The record loop shared by the three entry points: from pos, parse key records (and their
 * prefixes) until the first one left to Python. Returns the result tuple
 * (pos, expire, keys, skipped, more) or NULL with an exception set. */
static PyObject *run_records(PyObject *bufobj, Py_ssize_t pos, PyObject *rec_exp_obj,
                             PyObject *zset_type, PyObject *set_type, Dest *dst)
{
    PyObject *result = NULL;
    Py_ssize_t end = PyBytes_GET_SIZE(bufobj), rec;
    int have_exp = 0, overflow = 0;
    Py_ssize_t need = 0; /* the record at rec is cut: the buffer size it should need */
    int64_t exp = 0;
    Py_ssize_t nkeys = 0, nskipped = 0;
    Ctx c;

    if (rec_exp_obj != Py_None) {
        long long e;
        if (!PyLong_Check(rec_exp_obj))
            goto nothing;
        e = PyLong_AsLongLongAndOverflow(rec_exp_obj, &overflow);
        if (e == -1 && PyErr_Occurred())
            return NULL;
        if (overflow)
            goto nothing;
        have_exp = 1;
        exp = (int64_t)e;
    }

    c.buf = (const u8 *)PyBytes_AS_STRING(bufobj);
    c.end = end;
    c.zset_type = zset_type;
    c.set_type = set_type;
    c.vec.e = NULL;
    c.vec.n = c.vec.cap = 0;
    c.scratch = NULL;
    c.scratch_cap = 0;
    c.need = 0;

    rec = pos;
    while (pos < end) {
        unsigned t = c.buf[pos];
        if (handled_type(t)) {
            Py_ssize_t p = pos + 1;
            PyObject *key = NULL, *val = NULL;
            int r;
            c.need = 0;
            if (dst->mode == MODE_COUNT) {
                /* neither the key nor a string value is needed: check them, build nothing */
                r = check_str(&c, &p);
                if (r == RS_OK) {
                    if (t == 0)
                        r = check_str(&c, &p);
                    else
                        r = read_value(&c, (int)t, &p, &val);
                }
            }
            else {
                r = read_str(&c, &p, &key);
                if (r == RS_OK) {
                    r = read_value(&c, (int)t, &p, &val);
                    if (r != RS_OK)
                        Py_CLEAR(key);
                }
            }
            if (r == RS_ERR)
                goto error;
            if (r != RS_OK) {
                /* `more`: the key record itself is cut (a cut prefix is left to Python,
                 * which reads prefixes as records of their own) */
                if (r == RS_MORE)
                    need = c.need > end ? c.need : end + 1;
                break;
            }
            if (val != NULL && container_size(val) == 0) {
                nskipped++;
                r = RS_OK;
            }
            else {
                r = put_key(dst, t, key, val, have_exp, exp, &nkeys);
            }
            Py_XDECREF(key);
            Py_XDECREF(val);
            if (r != RS_OK)
                goto error;
            pos = rec = p;
            have_exp = 0;
            rec_exp_obj = Py_None;
            continue;
        }
        if (t == 252) { /* EXPIRETIME_MS */
            if (end - pos < 9)
                break;
            exp = i64le(c.buf + pos + 1);
            have_exp = 1;
            pos += 9;
        }
        else if (t == 253) { /* EXPIRETIME, seconds */
            if (end - pos < 5)
                break;
            exp = (int64_t)i32le(c.buf + pos + 1) * 1000;
            have_exp = 1;
            pos += 5;
        }
        else if (t == 249) { /* FREQ: dropped */
            if (end - pos < 2)
                break;
            pos += 2;
        }
        else if (t == 248) { /* IDLE: dropped */
            uint64_t idle;
            Py_ssize_t p = pos + 1;
            if (read_len(&c, &p, &idle) != RS_OK)
                break;
            pos = p;
        }
        else {
            break;
        }
    }
    result = Py_BuildValue("(nOnnn)", rec, rec_exp_obj, nkeys, nskipped, need);
    goto done;
error:
    result = NULL;
done:
    PyMem_Free(c.vec.e);
    PyMem_Free(c.scratch);
    return result;
nothing:
    return Py_BuildValue("(nOnnn)", pos, rec_exp_obj, (Py_ssize_t)0, (Py_ssize_t)0, (Py_ssize_t)0);
}

/* The buffer and position arguments every entry point starts with. */
static int buf_pos_args(const char *fname, PyObject *const *args, Py_ssize_t *pos)
{
    if (!PyBytes_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "%s(): buf must be bytes", fname);
        return -1;
    }
    *pos = PyLong_AsSsize_t(args[1]);
    if (*pos == -1 && PyErr_Occurred())
        return -1;
    if (*pos < 0 || *pos > PyBytes_GET_SIZE(args[0])) {
        PyErr_Format(PyExc_ValueError, "%s(): pos out of range", fname);
        return -1;
    }
    return 0;
}

/* The optional set_type argument at index i: NULL when absent or None. */
static PyObject *opt_type(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t i)
{
    return nargs > i && args[i] != Py_None ? args[i] : NULL;
}

static int zset_type_arg(const char *fname, PyObject *z)
{
    if (!PyType_Check(z) || !PyType_IsSubtype((PyTypeObject *)z, &PyDict_Type)) {
        PyErr_Format(PyExc_TypeError, "%s(): zset_type must be a dict subclass", fname);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(load_records_doc,
"load_records(buf, pos, db, expire, dbs, expires, zset_type[, set_type])\n"
"    -> (pos, expire, keys, skipped, cut)\n"
"\n"
"Parse consecutive simple key records of `buf` from `pos` into `dbs[db]` (values) and\n"
"`expires[db]` (expiry ms), exactly as the pure-Python sink path would. `expire` is the\n"
"EXPIRETIME prefix already read for the record at `pos` (or None). Returns where it stopped\n"
"(the start of a record it leaves to Python, prefixes included), the prefix state there,\n"
"the keys stored, the empty collections skipped, and `cut`: 0, or, when that key record is\n"
"cut by the end of `buf` (all of it present accepted), the buffer size it should need\n"
"(exact from a string's length, else estimated from the members read so far).\n"
"`set_type(members, rdbtype)`, when given (not None), builds hashtable (2) and listpack (20)\n"
"sets from their members in file order.");

static PyObject *load_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *dbs, *expires, *result;
    Py_ssize_t pos, ndbs;
    long long db;
    int overflow = 0;
    Dest dst;
    (void)self;

    if (nargs != 7 && nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "load_records() takes 7 or 8 arguments");
        return NULL;
    }
    if (buf_pos_args("load_records", args, &pos) < 0 || zset_type_arg("load_records", args[6]) < 0)
        return NULL;
    dbs = args[4];
    expires = args[5];

    /* Anything unusual (a DB out of range, a non-dict DB): parse nothing and let the Python
     * path handle it, errors included. */
    if (!PyList_CheckExact(dbs) || !PyList_CheckExact(expires) || !PyLong_Check(args[2]))
        goto nothing;
    db = PyLong_AsLongLongAndOverflow(args[2], &overflow);
    if (db == -1 && PyErr_Occurred())
        return NULL;
    ndbs = PyList_GET_SIZE(dbs);
    if (overflow || db < 0 || db >= ndbs || db >= PyList_GET_SIZE(expires))
        goto nothing;
    dst.mode = MODE_LOAD;
    dst.d = PyList_GET_ITEM(dbs, (Py_ssize_t)db);
    dst.x = PyList_GET_ITEM(expires, (Py_ssize_t)db);
    if (!PyDict_CheckExact(dst.d) || !PyDict_CheckExact(dst.x))
        goto nothing;
    Py_INCREF(dst.d);
    Py_INCREF(dst.x);
    result = run_records(args[0], pos, args[3], args[6], opt_type(args, nargs, 7), &dst);
    Py_DECREF(dst.d);
    Py_DECREF(dst.x);
    return result;
nothing:
    return Py_BuildValue("(nOnnn)", pos, args[3], (Py_ssize_t)0, (Py_ssize_t)0, (Py_ssize_t)0);
}

PyDoc_STRVAR(count_records_doc,
"count_records(buf, pos, expire, counts, zset_type) -> (pos, expire, keys, skipped, cut)\n"
"\n"
"As load_records, but keep nothing: each key record is checked exactly as it would be\n"
"loaded (values built and dropped; keys and string values checked without being built)\n"
"and counted in `counts` (a writable buffer of 128 native uint64: index 2 * type + 1 if\n"
"the key has an expiry, else 2 * type).");

static PyObject *count_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    PyObject *result;
    Py_ssize_t pos;
    Dest dst;
    (void)self;

    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "count_records() takes exactly 5 arguments");
        return NULL;
    }
    if (buf_pos_args("count_records", args, &pos) < 0 ||
        zset_type_arg("count_records", args[4]) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[3], &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (view.len < (Py_ssize_t)(COUNT_SLOTS * sizeof(uint64_t)) ||
        ((uintptr_t)view.buf % sizeof(uint64_t)) != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError,
                        "count_records(): counts must hold 128 aligned uint64 slots");
        return NULL;
    }
    dst.mode = MODE_COUNT;
    dst.counts = (uint64_t *)view.buf;
    result = run_records(args[0], pos, args[2], args[4], NULL, &dst);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(collect_records_doc,
"collect_records(buf, pos, db, expire, out, zset_type[, set_type])\n"
"    -> (pos, expire, keys, skipped, cut)\n"
"\n"
"As load_records, but append one (db, key, value, expire_ms_or_None) tuple per key to the\n"
"list `out`, in file order (a repeated key appears each time).");

static PyObject *collect_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t pos;
    Dest dst;
    (void)self;

    if (nargs != 6 && nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "collect_records() takes 6 or 7 arguments");
        return NULL;
    }
    if (buf_pos_args("collect_records", args, &pos) < 0 ||
        zset_type_arg("collect_records", args[5]) < 0)
        return NULL;
    if (!PyList_CheckExact(args[4])) {
        PyErr_SetString(PyExc_TypeError, "collect_records(): out must be a list");
        return NULL;
    }
    dst.mode = MODE_COLLECT;
    dst.out = args[4];
    dst.dbo = args[2];
    return run_records(args[0], pos, args[3], args[5], opt_type(args, nargs, 6), &dst);
}

static PyMethodDef methods[] = {
    {"load_records", (PyCFunction)(void (*)(void))load_records, METH_FASTCALL, load_records_doc},
    {"count_records", (PyCFunction)(void (*)(void))count_records, METH_FASTCALL,
     count_records_doc},
    {"collect_records", (PyCFunction)(void (*)(void))collect_records, METH_FASTCALL,
     collect_records_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "replproxy.rdb._loader",
    "C fast path for the RDB reader's sink modes (see replproxy/rdb/_loader.c).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__loader(void) { return PyModule_Create(&module); }
