/*
 * replproxy.rdb._speedups: the C fast path of the RDB reader's sink mode.
 *
 * One function, `load_records`, parses a run of consecutive *simple* key records of an RDB
 * buffer straight into the keyspace's per-DB dicts, exactly as `replproxy.rdb.reader`'s pure
 * Python path would, and returns where it stopped. It handles the key prefixes
 * EXPIRETIME / EXPIRETIME_MS / IDLE / FREQ (IDLE and FREQ are dropped) and the object types
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
 * Every read is bounds-checked against the buffer (or the blob) before it happens; counts
 * are checked against the bytes present before anything is allocated for them; LZF output
 * is bounded by the same 88x ratio the Python path enforces. The only exceptions it raises
 * are MemoryError (and TypeError for wrong argument types).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef unsigned char u8;

#define RS_OK 0
#define RS_STOP 1  /* not handled here: malformed, incomplete or unsupported */
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

static PyObject *bytes_of_i64(int64_t v)
{
    char tmp[24];
    Py_ssize_t n = fmt_i64(tmp, v);
    return PyBytes_FromStringAndSize(tmp, n);
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
        return PyBytes_FromStringAndSize((const char *)e->s, e->len);
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
} Ctx;

/* rdbLoadLen: 6/14/32/64-bit lengths; the encoded-string forms (0xC0+) are refused. */
static inline int read_len(const Ctx *c, Py_ssize_t *pp, uint64_t *out)
{
    const u8 *b = c->buf;
    Py_ssize_t p = *pp, end = c->end;
    unsigned x;
    if (p >= end)
        return RS_STOP;
    x = b[p];
    if (x < 0x40) {
        *out = x;
        *pp = p + 1;
        return RS_OK;
    }
    if (x < 0x80) {
        if (end - p < 2)
            return RS_STOP;
        *out = ((uint64_t)(x & 0x3F) << 8) | b[p + 1];
        *pp = p + 2;
        return RS_OK;
    }
    if (x == 0x80) {
        if (end - p < 5)
            return RS_STOP;
        *out = be32(b + p + 1);
        *pp = p + 5;
        return RS_OK;
    }
    if (x == 0x81) {
        if (end - p < 9)
            return RS_STOP;
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
    if (p >= end)
        return RS_STOP;
    x = b[p];
    if (x < 0x40) {
        h->kind = S_RAW;
        h->s = p + 1;
        if ((Py_ssize_t)x > end - h->s)
            return RS_STOP;
        h->len = x;
        *pp = h->s + x;
        return RS_OK;
    }
    if (x < 0xC0) {
        if (read_len(c, &p, &ln) != RS_OK)
            return RS_STOP;
        if (ln > (uint64_t)(end - p))
            return RS_STOP;
        h->kind = S_RAW;
        h->s = p;
        h->len = (Py_ssize_t)ln;
        *pp = p + (Py_ssize_t)ln;
        return RS_OK;
    }
    if (x == 0xC0) {
        if (end - p < 2)
            return RS_STOP;
        h->kind = S_INT;
        h->iv = (int8_t)b[p + 1];
        *pp = p + 2;
        return RS_OK;
    }
    if (x == 0xC1) {
        if (end - p < 3)
            return RS_STOP;
        h->kind = S_INT;
        h->iv = i16le(b + p + 1);
        *pp = p + 3;
        return RS_OK;
    }
    if (x == 0xC2) {
        if (end - p < 5)
            return RS_STOP;
        h->kind = S_INT;
        h->iv = i32le(b + p + 1);
        *pp = p + 5;
        return RS_OK;
    }
    if (x == 0xC3) {
        uint64_t clen, ulen;
        p += 1;
        if (read_len(c, &p, &clen) != RS_OK || read_len(c, &p, &ulen) != RS_OK)
            return RS_STOP;
        if (clen > (uint64_t)(end - p))
            return RS_STOP;
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
            return RS_STOP;
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
            if ((size_t)h.ulen > c->scratch_cap) {
                u8 *s = PyMem_Realloc(c->scratch, (size_t)h.ulen);
                if (s == NULL) {
                    PyErr_NoMemory();
                    return RS_ERR;
                }
                c->scratch = s;
                c->scratch_cap = (size_t)h.ulen;
            }
            if (lzf_dec(c->buf + h.s, h.len, c->scratch, h.ulen) < 0)
                return RS_STOP;
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

static int ents_hash(const EntVec *vec, PyObject **out)
{
    Py_ssize_t i;
    PyObject *d;
    if (vec->n & 1)
        return RS_STOP;
    d = PyDict_New();
    if (d == NULL)
        return RS_ERR;
    for (i = 0; i < vec->n; i += 2) {
        PyObject *k = ent_bytes(&vec->e[i]), *v;
        int r;
        if (k == NULL) {
            Py_DECREF(d);
            return RS_ERR;
        }
        v = ent_bytes(&vec->e[i + 1]);
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
    if (PyDict_GET_SIZE(d) * 2 != vec->n) { /* duplicate fields */
        Py_DECREF(d);
        return RS_STOP;
    }
    *out = d;
    return RS_OK;
}

static int ents_zset(const Ctx *c, const EntVec *vec, PyObject **out)
{
    Py_ssize_t i;
    PyObject *z;
    int r;
    if (vec->n & 1)
        return RS_STOP;
    z = PyObject_CallNoArgs(c->zset_type);
    if (z == NULL)
        return RS_ERR;
    for (i = 0; i < vec->n; i += 2) {
        double d = 0;
        PyObject *k, *v;
        r = ent_score(&vec->e[i + 1], &d);
        if (r != RS_OK) {
            Py_DECREF(z);
            return r;
        }
        k = ent_bytes(&vec->e[i]);
        if (k == NULL) {
            Py_DECREF(z);
            return RS_ERR;
        }
        v = PyFloat_FromDouble(d);
        if (v == NULL) {
            Py_DECREF(k);
            Py_DECREF(z);
            return RS_ERR;
        }
        r = PyDict_SetItem(z, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (r < 0) {
            Py_DECREF(z);
            return RS_ERR;
        }
    }
    if (PyDict_GET_SIZE(z) * 2 != vec->n) { /* duplicate members */
        Py_DECREF(z);
        return RS_STOP;
    }
    *out = z;
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

/* type 1 (list) and 2 (set): n strings */
static int v_list_or_set(const Ctx *c, Py_ssize_t *pp, int as_set, PyObject **res)
{
    Py_ssize_t p = *pp, i;
    uint64_t n;
    PyObject *out = NULL;
    if (read_len(c, &p, &n) != RS_OK)
        return RS_STOP;
    if (n > (uint64_t)(c->end - p)) /* each member takes at least one byte */
        return RS_STOP;
    if (as_set && c->set_type != NULL) {
        out = PyList_New((Py_ssize_t)n);
        if (out == NULL)
            return RS_ERR;
        for (i = 0; i < (Py_ssize_t)n; i++) {
            PyObject *m = NULL;
            TRY(read_str(c, &p, &m)); /* a partly filled list is freed safely */
            PyList_SET_ITEM(out, i, m);
        }
        {
            int r = ordered_set(c->set_type, out, 2, res);
            if (r == RS_OK)
                *pp = p;
            return r;
        }
    }
    if (as_set) {
        out = PySet_New(NULL);
        if (out == NULL)
            return RS_ERR;
        for (i = 0; i < (Py_ssize_t)n; i++) {
            PyObject *m = NULL;
            int r;
            TRY(read_str(c, &p, &m));
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
    else {
        out = PyList_New((Py_ssize_t)n);
        if (out == NULL)
            return RS_ERR;
        for (i = 0; i < (Py_ssize_t)n; i++) {
            PyObject *m = NULL;
            TRY(read_str(c, &p, &m)); /* a partly filled list is freed safely */
            PyList_SET_ITEM(out, i, m);
        }
    }
    *res = out;
    *pp = p;
    return RS_OK;
}

/* type 4: n (field, value) strings */
static int v_hash(const Ctx *c, Py_ssize_t *pp, PyObject **res)
{
    Py_ssize_t p = *pp, i;
    uint64_t n;
    PyObject *out = NULL;
    if (read_len(c, &p, &n) != RS_OK)
        return RS_STOP;
    if (n > (uint64_t)(c->end - p) / 2)
        return RS_STOP;
    out = PyDict_New();
    if (out == NULL)
        return RS_ERR;
    for (i = 0; i < (Py_ssize_t)n; i++) {
        PyObject *f = NULL, *v = NULL;
        int r;
        TRY(read_str(c, &p, &f));
        r = read_str(c, &p, &v);
        if (r != RS_OK) {
            Py_DECREF(f);
            Py_DECREF(out);
            return r;
        }
        r = PyDict_SetItem(out, f, v);
        Py_DECREF(f);
        Py_DECREF(v);
        if (r < 0) {
            Py_DECREF(out);
            return RS_ERR;
        }
    }
    if (PyDict_GET_SIZE(out) != (Py_ssize_t)n) {
        Py_DECREF(out);
        return RS_STOP;
    }
    *res = out;
    *pp = p;
    return RS_OK;
}

/* types 3 (ASCII scores) and 5 (binary doubles) */
static int v_zset(const Ctx *c, Py_ssize_t *pp, int binary, PyObject **res)
{
    const u8 *b = c->buf;
    Py_ssize_t p = *pp, i, end = c->end;
    uint64_t n;
    PyObject *out = NULL;
    if (read_len(c, &p, &n) != RS_OK)
        return RS_STOP;
    if (n > (uint64_t)(end - p) / (binary ? 9 : 2))
        return RS_STOP;
    out = PyObject_CallNoArgs(c->zset_type);
    if (out == NULL)
        return RS_ERR;
    for (i = 0; i < (Py_ssize_t)n; i++) {
        PyObject *m = NULL, *sv;
        double s;
        int r;
        TRY(read_str(c, &p, &m));
        if (binary) {
            uint64_t bits;
            if (end - p < 8) {
                Py_DECREF(m);
                Py_DECREF(out);
                return RS_STOP;
            }
            bits = le64(b + p);
            memcpy(&s, &bits, 8);
            p += 8;
        }
        else {
            unsigned x = p < end ? b[p] : 0;
            if (p >= end || x == 253) { /* incomplete, or NaN (refused) */
                Py_DECREF(m);
                Py_DECREF(out);
                return RS_STOP;
            }
            if (x == 254) {
                s = Py_HUGE_VAL;
                p += 1;
            }
            else if (x == 255) {
                s = -Py_HUGE_VAL;
                p += 1;
            }
            else {
                if ((Py_ssize_t)x > end - p - 1) {
                    Py_DECREF(m);
                    Py_DECREF(out);
                    return RS_STOP;
                }
                r = parse_float(b + p + 1, x, &s);
                if (r != RS_OK) {
                    Py_DECREF(m);
                    Py_DECREF(out);
                    return r;
                }
                p += 1 + x;
            }
        }
        if (isnan(s)) {
            Py_DECREF(m);
            Py_DECREF(out);
            return RS_STOP;
        }
        sv = PyFloat_FromDouble(s);
        if (sv == NULL) {
            Py_DECREF(m);
            Py_DECREF(out);
            return RS_ERR;
        }
        r = PyDict_SetItem(out, m, sv);
        Py_DECREF(m);
        Py_DECREF(sv);
        if (r < 0) {
            Py_DECREF(out);
            return RS_ERR;
        }
    }
    if (PyDict_GET_SIZE(out) != (Py_ssize_t)n) {
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
    if (read_len(c, &p, &n) != RS_OK)
        return RS_STOP;
    if (n > (uint64_t)(c->end - p)) /* each node takes at least one byte */
        return RS_STOP;
    for (i = 0; i < (Py_ssize_t)n; i++) {
        const u8 *blob;
        Py_ssize_t blen;
        if (v2) {
            uint64_t container;
            TRY(read_len(c, &p, &container));
            if (container != 2) {
                PyObject *elem = NULL;
                int r;
                if (container != 1)
                    TRY(RS_STOP);
                TRY(read_str(c, &p, &elem));
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
        TRY(read_blob(c, &p, &blob, &blen));
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
        r = ents_zset(c, &c->vec, res);
        break;
    default: /* 13, 16 */
        r = ents_hash(&c->vec, res);
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
        return v_zset(c, pp, 0, res);
    case 4:
        return v_hash(c, pp, res);
    case 5:
        return v_zset(c, pp, 1, res);
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

/* ---- the entry point ---- */

PyDoc_STRVAR(load_records_doc,
"load_records(buf, pos, db, expire, dbs, expires, zset_type[, set_type]) -> (pos, expire, keys, skipped)\n"
"\n"
"Parse consecutive simple key records of `buf` from `pos` into `dbs[db]` (values) and\n"
"`expires[db]` (expiry ms), exactly as the pure-Python sink path would. `expire` is the\n"
"EXPIRETIME prefix already read for the record at `pos` (or None). Returns where it stopped\n"
"(the start of a record it leaves to Python, prefixes included), the prefix state there,\n"
"the keys stored and the empty collections skipped. `set_type(members, rdbtype)`, when given,\n"
"builds hashtable (2) and listpack (20) sets from their members in file order.");

static PyObject *load_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *bufobj, *dbs, *expires, *d, *x, *result = NULL, *rec_exp_obj;
    Py_ssize_t pos, end, rec, ndbs;
    long long db;
    int overflow = 0, have_exp = 0;
    int64_t exp = 0;
    Py_ssize_t nkeys = 0, nskipped = 0;
    Ctx c;
    (void)self;

    if (nargs != 7 && nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "load_records() takes 7 or 8 arguments");
        return NULL;
    }
    bufobj = args[0];
    if (!PyBytes_Check(bufobj)) {
        PyErr_SetString(PyExc_TypeError, "load_records(): buf must be bytes");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    end = PyBytes_GET_SIZE(bufobj);
    if (pos < 0 || pos > end) {
        PyErr_SetString(PyExc_ValueError, "load_records(): pos out of range");
        return NULL;
    }
    dbs = args[4];
    expires = args[5];
    if (!PyType_Check(args[6]) || !PyType_IsSubtype((PyTypeObject *)args[6], &PyDict_Type)) {
        PyErr_SetString(PyExc_TypeError, "load_records(): zset_type must be a dict subclass");
        return NULL;
    }
    rec_exp_obj = args[3];

    /* Anything unusual (a DB out of range, a non-dict DB, a huge prefix value): parse
     * nothing and let the Python path handle it, errors included. */
    if (!PyList_CheckExact(dbs) || !PyList_CheckExact(expires) || !PyLong_Check(args[2]))
        goto nothing;
    db = PyLong_AsLongLongAndOverflow(args[2], &overflow);
    if (db == -1 && PyErr_Occurred())
        return NULL;
    ndbs = PyList_GET_SIZE(dbs);
    if (overflow || db < 0 || db >= ndbs || db >= PyList_GET_SIZE(expires))
        goto nothing;
    d = PyList_GET_ITEM(dbs, (Py_ssize_t)db);
    x = PyList_GET_ITEM(expires, (Py_ssize_t)db);
    if (!PyDict_CheckExact(d) || !PyDict_CheckExact(x))
        goto nothing;
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
    c.zset_type = args[6];
    c.set_type = nargs == 8 && args[7] != Py_None ? args[7] : NULL;
    c.vec.e = NULL;
    c.vec.n = c.vec.cap = 0;
    c.scratch = NULL;
    c.scratch_cap = 0;

    Py_INCREF(d);
    Py_INCREF(x);
    rec = pos;
    while (pos < end) {
        unsigned t = c.buf[pos];
        if (handled_type(t)) {
            Py_ssize_t p = pos + 1;
            PyObject *key = NULL, *val = NULL;
            int r = read_str(&c, &p, &key);
            if (r == RS_OK) {
                r = read_value(&c, (int)t, &p, &val);
                if (r != RS_OK)
                    Py_DECREF(key);
            }
            if (r == RS_ERR)
                goto error;
            if (r == RS_STOP)
                break;
            if (container_size(val) == 0) {
                nskipped++;
            }
            else {
                if (PyDict_SetItem(d, key, val) < 0) {
                    Py_DECREF(key);
                    Py_DECREF(val);
                    goto error;
                }
                if (have_exp) {
                    PyObject *eo = PyLong_FromLongLong(exp);
                    int rr;
                    if (eo == NULL) {
                        Py_DECREF(key);
                        Py_DECREF(val);
                        goto error;
                    }
                    rr = PyDict_SetItem(x, key, eo);
                    Py_DECREF(eo);
                    if (rr < 0) {
                        Py_DECREF(key);
                        Py_DECREF(val);
                        goto error;
                    }
                }
                nkeys++;
            }
            Py_DECREF(key);
            Py_DECREF(val);
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
    result = Py_BuildValue("(nOnn)", rec, rec_exp_obj, nkeys, nskipped);
    goto done;
error:
    result = NULL;
done:
    Py_DECREF(d);
    Py_DECREF(x);
    PyMem_Free(c.vec.e);
    PyMem_Free(c.scratch);
    return result;
nothing:
    return Py_BuildValue("(nOnn)", pos, rec_exp_obj, (Py_ssize_t)0, (Py_ssize_t)0);
}

static PyMethodDef methods[] = {
    {"load_records", (PyCFunction)(void (*)(void))load_records, METH_FASTCALL, load_records_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "replproxy.rdb._speedups",
    "C fast path for the RDB reader's sink mode (see replproxy/rdb/_speedups.c).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
