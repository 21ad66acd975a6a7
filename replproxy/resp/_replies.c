/* C fast paths of the reply encoder (module replproxy.resp._replies): its hottest shapes.
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
 * scored(items, proto, g17, fmt) -> bytes
 *     A sorted set range WITH SCORES: `items` a list of (score: float, member: bytes); a
 *     flat array of member, score bulks in RESP2, [member, double] pairs in RESP3. Scores
 *     are printed as the upstream prints them: `%.17g` when `g17`, else Redis 7.2's rules
 *     (integers as such, 0 and -0, inf) with `fmt(score) -> bytes` for the rest (the
 *     shortest round-trip text, computed in Python).
 *
 * Optional: replproxy.resp.reply encodes the same bytes without it (the reference).
 */
#include "_resp.h"

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

static PyMethodDef methods[] = {
    {"bulks", (PyCFunction)(void (*)(void))bulks, METH_FASTCALL,
     "bulks(header, items, null) -> header + the bulk strings of items (None -> null)"},
    {"scored", (PyCFunction)(void (*)(void))scored, METH_FASTCALL,
     "scored(items, proto, g17, fmt) -> a sorted set range with its scores"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "replproxy.resp._replies",
    "C fast paths of the reply encoder (see _replies.c).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__replies(void) { return PyModule_Create(&module); }
