/* Byte-level helpers shared by replproxy's RESP accelerators (_replies.c, _lanes.c).
 *
 * Static functions, compiled into each extension that includes this header: an output
 * buffer that grows by doubling, decimal lengths, bulk strings, and the canonical-encoding
 * readers the fast lanes use (a lane takes only what Redis would parse the same way
 * without care: no leading zeros, no odd lengths; anything else is left to the exact Python
 * parser).
 */
#ifndef REPLPROXY_RESP_H
#define REPLPROXY_RESP_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <strings.h>
#include <math.h>
#include <stdio.h>

#if defined(__GNUC__)
#define RESP_UNUSED __attribute__((unused))
#else
#define RESP_UNUSED
#endif

static RESP_UNUSED Py_ssize_t digits(Py_ssize_t n)
{
    Py_ssize_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

static RESP_UNUSED char *write_len(char *p, Py_ssize_t n, Py_ssize_t nd)
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
static RESP_UNUSED char *write_bulk(char *p, const char *s, Py_ssize_t n)
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



typedef struct {
    char *data;
    Py_ssize_t len, cap;
} outbuf;

static RESP_UNUSED int out_reserve(outbuf *o, Py_ssize_t more)
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

static RESP_UNUSED int out_put(outbuf *o, const char *s, Py_ssize_t n)
{
    if (out_reserve(o, n) < 0)
        return -1;
    memcpy(o->data + o->len, s, (size_t)n);
    o->len += n;
    return 0;
}

/* "<lead><digits>\r\n" at *p, canonical only ("0" or no leading zero, at most 18 digits,
 * <= max). Returns 1 and moves *p past it, or 0: incomplete or not canonical. */
static RESP_UNUSED int canonical_len(const char **p, const char *end, char lead, long long max,
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
static RESP_UNUSED int canonical_bulk(const char **p, const char *end, long long max, const char **data,
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
static RESP_UNUSED int put_bulk(outbuf *o, const char *s, Py_ssize_t len)
{
    if (out_reserve(o, 1 + digits(len) + 2 + len + 2) < 0)
        return -1;
    o->len = write_bulk(o->data + o->len, s, len) - o->data;
    return 0;
}

#endif
