/* The export's line protocol fast path in C: `interleave(values, pieces)`.
 *
 * `values` is JSON text of numbers in arrays, as sinks/lineprotocol.py encodes a run of
 * readings of one shape: `[[v,null,[v,v,v,v],...,time],[...],...]`. `pieces` are the texts that
 * go before each number of one line (`\nhanport,box=...,meter=main ic=`, `,ec=`, ..., ` ` before
 * the time). The result is the numbers, `null`s left out, each after its piece in turn:
 *
 *     interleave(b"[[1.5,null,7],[2.5,null,8]]", (b"\nm a=", b" ")) == b"\nm a=1.5 7\nm a=2.5 8"
 *
 * The same as `lineprotocol.interleave_python`, which is used where this was not built; in
 * one pass over the text, without a bytes object per number (docs/performance.md, Export).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* what separates numbers: `[`, `]` and `,` */
static const unsigned char MARK[256] = {['['] = 1, [']'] = 1, [','] = 1};
#define is_mark(c) (MARK[(unsigned char)(c)])

/* The next number of `*at`..`end` (its start, its length in `*size`), `*at` moved past it;
   NULL when none is left. `null`s and empty items are skipped. */
static const char *
next_number(const char **at, const char *end, Py_ssize_t *size)
{
    const char *p = *at;
    while (p < end) {
        while (p < end && is_mark(*p)) {
            p++;
        }
        const char *start = p;
        while (p < end && !is_mark(*p)) {
            p++;
        }
        if (p > start && !(p - start == 4 && memcmp(start, "null", 4) == 0)) {
            *at = p;
            *size = p - start;
            return start;
        }
    }
    *at = end;
    return NULL;
}

/* `size` bytes of `from` copied to `out`; the end of the copy. (A loop: the pieces and
   numbers are a few bytes each, where a call of memcpy costs more than the copy.) */
static inline char *
copied(char *out, const char *from, Py_ssize_t size)
{
    for (Py_ssize_t i = 0; i < size; i++) {
        out[i] = from[i];
    }
    return out + size;
}

static PyObject *
interleave(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "interleave(values: bytes, pieces: tuple[bytes, ...])");
        return NULL;
    }
    const char *text = PyBytes_AS_STRING(args[0]);
    const char *end = text + PyBytes_GET_SIZE(args[0]);
    PyObject *pieces = args[1];
    const Py_ssize_t per_line = PyTuple_GET_SIZE(pieces);
    if (per_line == 0) {
        PyErr_SetString(PyExc_ValueError, "interleave: no pieces");
        return NULL;
    }
    Py_ssize_t line_size = 0; /* the pieces' length, per line */
    for (Py_ssize_t j = 0; j < per_line; j++) {
        PyObject *piece = PyTuple_GET_ITEM(pieces, j);
        if (!PyBytes_Check(piece)) {
            PyErr_SetString(PyExc_TypeError, "interleave: every piece must be bytes");
            return NULL;
        }
        line_size += PyBytes_GET_SIZE(piece);
    }
    Py_ssize_t count = 0, numbers_size = 0, size;
    for (const char *at = text; next_number(&at, end, &size) != NULL;) {
        count++;
        numbers_size += size;
    }
    if (count % per_line != 0) {
        PyErr_Format(PyExc_ValueError,
                     "interleave: %zd numbers are not whole lines of %zd", count, per_line);
        return NULL;
    }
    PyObject *result =
        PyBytes_FromStringAndSize(NULL, numbers_size + (count / per_line) * line_size);
    if (result == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(result);
    const char *at = text, *number;
    for (Py_ssize_t n = 0; (number = next_number(&at, end, &size)) != NULL; n++) {
        PyObject *piece = PyTuple_GET_ITEM(pieces, n % per_line);
        out = copied(out, PyBytes_AS_STRING(piece), PyBytes_GET_SIZE(piece));
        out = copied(out, number, size);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"interleave", (PyCFunction)(void (*)(void))interleave, METH_FASTCALL,
     "interleave(values, pieces) -> bytes: the numbers of the JSON arrays `values` (nulls left "
     "out), each after its piece in turn."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_interleave",
    .m_doc = "The export's line protocol fast path in C (services/export/sinks/_interleave.c).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__interleave(void)
{
    return PyModule_Create(&module);
}
