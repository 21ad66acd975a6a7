/*
 * replproxy.rdb._jsonl: the JSON Lines encoder of `replproxy rdb dump`, in C.
 *
 * One function, `dump_lines(keys, zset_type, fallback)`, turns a list of
 * (db, key, value, expire_ms) tuples (what the reader's KeyCollector gathers) into the text
 * of their `dump` lines, each ending in "\n", byte for byte what the Python path writes:
 *
 *   json.dumps(key_json(KeyEntry(db, key, value, expire_ms)), ensure_ascii=False,
 *              allow_nan=False)
 *
 * (replproxy/rdb/cli.py `key_json` and docs/rdb.md hold the format). It writes strings,
 * lists, sets, hashes (plain dicts) and sorted sets (`zset_type`) itself; any other value
 * (streams, module values, hashes with field TTLs, anything unexpected) is handed to
 * `fallback(db, key, value, expire_ms)`, which returns that line without its newline.
 *
 * Byte strings follow cli.encode_bytes: valid UTF-8 (as strict as Python's decoder: no
 * overlong forms, no surrogates, nothing above U+10FFFF) with no control character
 * (U+0000-U+001F, U+007F-U+009F) is a JSON string with `"` and `\` escaped (nothing else
 * needs escaping then, as json.dumps with ensure_ascii=False does); anything else is
 * {"b64": "<standard base64 with padding>"}. Scores are float.__repr__ (PyOS_double_to_string
 * 'r' with Py_DTSF_ADD_DOT_0, what json.dumps uses), infinities the strings "inf"/"-inf".
 * Sets are sorted by their raw bytes, sorted sets by (score, member), as the Python path
 * sorts them.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned char u8;

/* ---- a growable output buffer ---- */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Buf;

static int grow(Buf *b, Py_ssize_t more)
{
    Py_ssize_t need, cap;
    char *p;
    if (more > PY_SSIZE_T_MAX - b->n) {
        PyErr_NoMemory();
        return -1;
    }
    need = b->n + more;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap = cap > PY_SSIZE_T_MAX / 2 ? need : cap * 2;
    p = PyMem_Realloc(b->p, (size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int put(Buf *b, const char *s, Py_ssize_t n)
{
    if (b->cap - b->n < n && grow(b, n) < 0)
        return -1;
    memcpy(b->p + b->n, s, (size_t)n);
    b->n += n;
    return 0;
}

#define PUTS(b, lit) put((b), (lit), (Py_ssize_t)(sizeof(lit) - 1))

static int put_ll(Buf *b, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%lld", v);
    return put(b, tmp, n);
}

/* ---- byte strings (cli.encode_bytes) ---- */

/* 1 when s is valid UTF-8 (Python's strict decoder) without a control character. */
static int plain_utf8(const u8 *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n) {
        u8 c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7F)
                return 0;
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            if (n - i < 2 || (s[i + 1] & 0xC0) != 0x80)
                return 0;
            if (c == 0xC2 && s[i + 1] <= 0x9F) /* U+0080-U+009F: C1 controls */
                return 0;
            i += 2;
            continue;
        }
        if (c >= 0xE0 && c <= 0xEF) {
            u8 lo = 0x80, hi = 0xBF;
            if (c == 0xE0)
                lo = 0xA0; /* no overlong forms */
            else if (c == 0xED)
                hi = 0x9F; /* no surrogates */
            if (n - i < 3 || s[i + 1] < lo || s[i + 1] > hi || (s[i + 2] & 0xC0) != 0x80)
                return 0;
            i += 3;
            continue;
        }
        if (c >= 0xF0 && c <= 0xF4) {
            u8 lo = 0x80, hi = 0xBF;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F; /* nothing above U+10FFFF */
            if (n - i < 4 || s[i + 1] < lo || s[i + 1] > hi || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                return 0;
            i += 4;
            continue;
        }
        return 0;
    }
    return 1;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int put_bytes(Buf *b, const u8 *s, Py_ssize_t n)
{
    Py_ssize_t i;
    if (plain_utf8(s, n)) {
        Py_ssize_t extra = 0;
        char *o;
        for (i = 0; i < n; i++)
            extra += s[i] == '"' || s[i] == '\\';
        if (grow(b, n + extra + 2) < 0)
            return -1;
        o = b->p + b->n;
        *o++ = '"';
        if (!extra) {
            memcpy(o, s, (size_t)n);
            o += n;
        }
        else {
            for (i = 0; i < n; i++) {
                if (s[i] == '"' || s[i] == '\\')
                    *o++ = '\\';
                *o++ = (char)s[i];
            }
        }
        *o++ = '"';
        b->n = o - b->p;
        return 0;
    }
    /* {"b64": "..."} */
    if (n > (PY_SSIZE_T_MAX - 16) / 4 * 3 || grow(b, (n + 2) / 3 * 4 + 12) < 0) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return -1;
    }
    {
        char *o = b->p + b->n;
        memcpy(o, "{\"b64\": \"", 9);
        o += 9;
        for (i = 0; i + 2 < n; i += 3) {
            uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
            *o++ = B64[v >> 18];
            *o++ = B64[(v >> 12) & 63];
            *o++ = B64[(v >> 6) & 63];
            *o++ = B64[v & 63];
        }
        if (n - i == 1) {
            uint32_t v = (uint32_t)s[i] << 16;
            *o++ = B64[v >> 18];
            *o++ = B64[(v >> 12) & 63];
            *o++ = '=';
            *o++ = '=';
        }
        else if (n - i == 2) {
            uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8);
            *o++ = B64[v >> 18];
            *o++ = B64[(v >> 12) & 63];
            *o++ = B64[(v >> 6) & 63];
            *o++ = '=';
        }
        *o++ = '"';
        *o++ = '}';
        b->n = o - b->p;
    }
    return 0;
}

static inline int put_bytes_obj(Buf *b, PyObject *o)
{
    return put_bytes(b, (const u8 *)PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o));
}

/* ---- values ---- */

/* 1 when every item of `seq` (a list or a set's items) is bytes. */
static int all_bytes(PyObject *const *items, Py_ssize_t n)
{
    Py_ssize_t i;
    for (i = 0; i < n; i++)
        if (!PyBytes_CheckExact(items[i]))
            return 0;
    return 1;
}

static int cmp_bytes(const void *a, const void *b)
{
    PyObject *x = *(PyObject *const *)a, *y = *(PyObject *const *)b;
    Py_ssize_t nx = PyBytes_GET_SIZE(x), ny = PyBytes_GET_SIZE(y);
    int c = memcmp(PyBytes_AS_STRING(x), PyBytes_AS_STRING(y), (size_t)(nx < ny ? nx : ny));
    if (c)
        return c;
    return nx < ny ? -1 : nx > ny;
}

typedef struct {
    PyObject *member;
    double score;
} Scored;

static int cmp_scored(const void *a, const void *b)
{
    const Scored *x = a, *y = b;
    if (x->score < y->score)
        return -1;
    if (x->score > y->score)
        return 1;
    return cmp_bytes(&x->member, &y->member);
}

static int put_list(Buf *b, PyObject *const *items, Py_ssize_t n)
{
    Py_ssize_t i;
    if (PUTS(b, "[") < 0)
        return -1;
    for (i = 0; i < n; i++) {
        if (i && PUTS(b, ", ") < 0)
            return -1;
        if (put_bytes_obj(b, items[i]) < 0)
            return -1;
    }
    return PUTS(b, "]");
}

static int put_score(Buf *b, double x)
{
    char *s;
    int r;
    if (isinf(x))
        return x > 0 ? PUTS(b, "\"inf\"") : PUTS(b, "\"-inf\"");
    s = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (s == NULL)
        return -1;
    r = put(b, s, (Py_ssize_t)strlen(s));
    PyMem_Free(s);
    return r;
}

/* The `"type": ..., "value": ...` part of a line for a value written here: 1 when written,
 * 0 when the value is left to the fallback (nothing written), -1 on error. */
static int put_value(Buf *b, PyObject *v, PyObject *zset_type)
{
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyBytes_Type) {
        if (PUTS(b, "\"type\": \"string\", \"value\": ") < 0)
            return -1;
        return put_bytes_obj(b, v) < 0 ? -1 : 1;
    }
    if (t == &PyList_Type) {
        if (!all_bytes(((PyListObject *)v)->ob_item, PyList_GET_SIZE(v)))
            return 0;
        if (PUTS(b, "\"type\": \"list\", \"value\": ") < 0)
            return -1;
        return put_list(b, ((PyListObject *)v)->ob_item, PyList_GET_SIZE(v)) < 0 ? -1 : 1;
    }
    if (t == &PySet_Type) {
        PyObject *members = PySequence_List(v); /* the members, to sort */
        PyObject **items;
        Py_ssize_t n;
        int r;
        if (members == NULL)
            return -1;
        items = ((PyListObject *)members)->ob_item;
        n = PyList_GET_SIZE(members);
        if (!all_bytes(items, n)) {
            Py_DECREF(members);
            return 0;
        }
        qsort(items, (size_t)n, sizeof(PyObject *), cmp_bytes);
        r = PUTS(b, "\"type\": \"set\", \"value\": ") < 0 || put_list(b, items, n) < 0 ? -1 : 1;
        Py_DECREF(members);
        return r;
    }
    if (t == (PyTypeObject *)zset_type) {
        Py_ssize_t n = PyDict_GET_SIZE(v), i = 0, pos = 0;
        PyObject *m, *s;
        Scored *items;
        int r = 1;
        items = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Scored));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        while (PyDict_Next(v, &pos, &m, &s)) {
            if (!PyBytes_CheckExact(m) || !PyFloat_CheckExact(s) ||
                isnan(PyFloat_AS_DOUBLE(s))) {
                PyMem_Free(items);
                return 0;
            }
            items[i].member = m;
            items[i].score = PyFloat_AS_DOUBLE(s);
            i++;
        }
        qsort(items, (size_t)n, sizeof(Scored), cmp_scored);
        if (PUTS(b, "\"type\": \"zset\", \"value\": [") < 0)
            r = -1;
        for (i = 0; r == 1 && i < n; i++) {
            if ((i && PUTS(b, ", ") < 0) || PUTS(b, "[") < 0 ||
                put_bytes_obj(b, items[i].member) < 0 || PUTS(b, ", ") < 0 ||
                put_score(b, items[i].score) < 0 || PUTS(b, "]") < 0)
                r = -1;
        }
        if (r == 1 && PUTS(b, "]") < 0)
            r = -1;
        PyMem_Free(items);
        return r;
    }
    if (t == &PyDict_Type) {
        Py_ssize_t pos = 0, i = 0;
        PyObject *f, *x;
        while (PyDict_Next(v, &pos, &f, &x))
            if (!PyBytes_CheckExact(f) || !PyBytes_CheckExact(x))
                return 0;
        if (PUTS(b, "\"type\": \"hash\", \"value\": [") < 0)
            return -1;
        pos = 0;
        while (PyDict_Next(v, &pos, &f, &x)) {
            if ((i++ && PUTS(b, ", ") < 0) || PUTS(b, "[") < 0 || put_bytes_obj(b, f) < 0 ||
                PUTS(b, ", ") < 0 || put_bytes_obj(b, x) < 0 || PUTS(b, "]") < 0)
                return -1;
        }
        return PUTS(b, "]") < 0 ? -1 : 1;
    }
    return 0;
}

/* One line (with its newline), or the fallback's. */
static int put_line(Buf *b, PyObject *tup, PyObject *zset_type, PyObject *fallback)
{
    PyObject *db, *key, *value, *exp;
    Py_ssize_t mark = b->n;
    long long dbn;
    int r;
    if (!PyTuple_CheckExact(tup) || PyTuple_GET_SIZE(tup) != 4) {
        PyErr_SetString(PyExc_TypeError, "dump_lines(): keys must be (db, key, value, expire)");
        return -1;
    }
    db = PyTuple_GET_ITEM(tup, 0);
    key = PyTuple_GET_ITEM(tup, 1);
    value = PyTuple_GET_ITEM(tup, 2);
    exp = PyTuple_GET_ITEM(tup, 3);
    if (PyLong_CheckExact(db) && PyBytes_CheckExact(key) &&
        (exp == Py_None || PyLong_CheckExact(exp))) {
        dbn = PyLong_AsLongLong(db);
        if (dbn == -1 && PyErr_Occurred())
            PyErr_Clear(); /* a huge number: leave the line to Python */
        else {
            if (PUTS(b, "{\"db\": ") < 0 || put_ll(b, dbn) < 0 || PUTS(b, ", \"key\": ") < 0 ||
                put_bytes_obj(b, key) < 0 || PUTS(b, ", ") < 0)
                return -1;
            r = put_value(b, value, zset_type);
            if (r < 0)
                return -1;
            if (r == 1) {
                if (PUTS(b, ", \"expire_ms\": ") < 0)
                    return -1;
                if (exp == Py_None) {
                    if (PUTS(b, "null") < 0)
                        return -1;
                }
                else {
                    long long e = PyLong_AsLongLong(exp);
                    if (e == -1 && PyErr_Occurred())
                        return -1;
                    if (put_ll(b, e) < 0)
                        return -1;
                }
                return PUTS(b, "}\n");
            }
        }
    }
    b->n = mark; /* drop the partial line: the fallback writes all of it */
    {
        PyObject *line = PyObject_CallFunctionObjArgs(fallback, db, key, value, exp, NULL);
        const char *s;
        Py_ssize_t n;
        if (line == NULL)
            return -1;
        if (!PyUnicode_Check(line)) {
            Py_DECREF(line);
            PyErr_SetString(PyExc_TypeError, "dump_lines(): fallback must return str");
            return -1;
        }
        s = PyUnicode_AsUTF8AndSize(line, &n);
        r = s == NULL || put(b, s, n) < 0 || PUTS(b, "\n") < 0 ? -1 : 0;
        Py_DECREF(line);
        return r;
    }
}

PyDoc_STRVAR(dump_lines_doc,
"dump_lines(keys, zset_type, fallback) -> str\n"
"\n"
"The `replproxy rdb dump` lines of `keys` ((db, key, value, expire_ms) tuples), each ending\n"
"in a newline; values it does not write itself go to fallback(db, key, value, expire_ms).");

static PyObject *dump_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *keys, *out;
    Py_ssize_t i, n;
    Buf b = {NULL, 0, 0};
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "dump_lines() takes exactly 3 arguments");
        return NULL;
    }
    keys = args[0];
    if (!PyList_CheckExact(keys)) {
        PyErr_SetString(PyExc_TypeError, "dump_lines(): keys must be a list");
        return NULL;
    }
    if (!PyType_Check(args[1]) || !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "dump_lines(): bad zset_type or fallback");
        return NULL;
    }
    n = PyList_GET_SIZE(keys);
    for (i = 0; i < n; i++) {
        PyObject *tup = PyList_GET_ITEM(keys, i);
        int r;
        Py_INCREF(tup); /* the fallback may run Python code */
        r = put_line(&b, tup, args[1], args[2]);
        Py_DECREF(tup);
        if (r < 0) {
            PyMem_Free(b.p);
            return NULL;
        }
        n = PyList_GET_SIZE(keys);
    }
    out = PyUnicode_DecodeUTF8(b.p ? b.p : "", b.n, "strict");
    PyMem_Free(b.p);
    return out;
}

static PyMethodDef methods[] = {
    {"dump_lines", (PyCFunction)(void (*)(void))dump_lines, METH_FASTCALL, dump_lines_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "replproxy.rdb._jsonl",
    "The JSON Lines encoder of `replproxy rdb dump` (see replproxy/rdb/_jsonl.c).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__jsonl(void) { return PyModule_Create(&module); }
