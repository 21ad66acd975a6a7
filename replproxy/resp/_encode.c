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
 * Optional, like replproxy.rdb._speedups: replproxy.resp.reply works without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

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
        Py_ssize_t len = PyBytes_GET_SIZE(it);
        *p++ = '$';
        p = write_len(p, len, digits(len));
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, PyBytes_AS_STRING(it), (size_t)len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    Py_DECREF(fast);
    return out;
}

static PyMethodDef methods[] = {
    {"bulks", (PyCFunction)(void (*)(void))bulks, METH_FASTCALL,
     "bulks(header, items, null) -> header + the bulk strings of items (None -> null)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "replproxy.resp._encode",
    "C fast path for arrays of bulk strings (see replproxy/resp/_encode.c).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__encode(void) { return PyModule_Create(&module); }
