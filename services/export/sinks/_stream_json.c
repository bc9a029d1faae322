/* The readings stream's JSON, scanned in C for the export (docs/performance.md, Export).
 *
 * A reading on the stream is one JSON object as hanport's ingest writes it with msgspec:
 * `{"ts":1733300000000,"received":...,"meter":"main","ic":47522.278,...,"p":[1231.0,...],...}`.
 * Two functions read a batch of them (a list of bytes) without making a Python object per value:
 *
 * canonical(payloads, fields) -> bool
 *     Whether every payload is such an object: valid JSON without whitespace, ASCII only (no
 *     byte above 0x7f; `\u` escapes but surrogates), nothing after it; each field of `fields`
 *     (`((name, kind, required), ...)`, kind b"int", b"int|null", b"str|null", b"[]" or b"any")
 *     at most once, of its kind, and there when required. entries.py passes `Exported`'s
 *     fields: a batch that is canonical decodes as `Exported` for sure, so the export decodes it
 *     only when a sink asks for its readings. Anything else (another program's JSON) is not
 *     canonical, and is decoded at once as before.
 *
 * lines(payloads, head, plan, time_key, meter_key, meter) -> bytes | None
 *     The line protocol of canonical payloads, as lineprotocol.body makes it of their readings:
 *     per payload `head`, then ` name=value` and `,name=value` for each value present (`plan`:
 *     `((key, names), ...)` in the line's order, names None for a number, else one name per
 *     position of the array), then ` ` and the time; lines apart by a newline; a payload with no
 *     value makes no line. None (the caller makes the lines the general way) when a payload's
 *     `meter_key` is not the JSON text `meter`, a value is no number or null (the general way
 *     refuses it), an array is of another length, or a number has a capital `E`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_DEPTH 64   /* deeper JSON is not canonical */
#define MAX_FIELDS 32  /* fields `canonical` tracks (a bit each) */
#define MAX_SLOTS 64   /* values of a line */
#define MAX_INT_DIGITS 18

enum json_type { J_STRING, J_NUMBER, J_INTEGER, J_OBJECT, J_ARRAY, J_LITERAL, J_NULL };

static inline int
is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

static int
is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Characters by what they may be in canonical JSON: PLAIN, printable ASCII in a string but the
   quote and the backslash; NUMERIC, of a number; STOP, what ends a number or literal (and the
   NUL after a bytes object's text: the trusting scans of `lines` stop there) */
static unsigned char PLAIN[256], NUMERIC[256], STOP[256];

static void
make_tables(void)
{
    for (int c = 0x20; c <= 0x7f; c++) {
        PLAIN[c] = c != '"' && c != '\\';
    }
    for (const char *c = "0123456789.-+eE"; *c; c++) {
        NUMERIC[(unsigned char)*c] = 1;
    }
    for (const char *c = ",]}:"; *c; c++) {
        STOP[(unsigned char)*c] = 1;
    }
    STOP[0] = 1;
}

/* The end of the string at `p` (its opening quote), or NULL. */
static const char *
string_end(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        while (p < end && PLAIN[(unsigned char)*p]) {
            p++;
        }
        if (p >= end) {
            return NULL;
        }
        if (*p == '"') {
            return p + 1;
        }
        if (*p != '\\') {
            return NULL; /* a control character, or a byte above 0x7f */
        }
        if (++p >= end) {
            return NULL;
        }
        if (*p == 'u') {
            if (end - p < 5 || !is_hex(p[1]) || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4])) {
                return NULL;
            }
            if ((p[1] == 'd' || p[1] == 'D') && strchr("89abcdefABCDEF", p[2]) != NULL) {
                return NULL; /* a surrogate */
            }
            p += 4;
        } else if (strchr("\"\\/bfnrt", *p) == NULL || *p == '\0') {
            return NULL;
        }
    }
    return NULL;
}

/* The end of the number at `p`, or NULL; `*integer`: no fraction, no exponent. */
static const char *
number_end(const char *p, const char *end, int *integer)
{
    *integer = 1;
    if (p < end && *p == '-') {
        p++;
    }
    if (p >= end || !is_digit(*p)) {
        return NULL;
    }
    if (*p == '0') {
        p++;
    } else {
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    if (p < end && *p == '.') {
        *integer = 0;
        if (++p >= end || !is_digit(*p)) {
            return NULL;
        }
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *integer = 0;
        if (++p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= end || !is_digit(*p)) {
            return NULL;
        }
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    return p;
}

static const char *
literal_end(const char *p, const char *end, const char *word)
{
    size_t size = strlen(word);
    return (size_t)(end - p) >= size && memcmp(p, word, size) == 0 ? p + size : NULL;
}

/* The end of the value at `p`, or NULL; its type in `*type`. */
static const char *
value_end(const char *p, const char *end, int depth, enum json_type *type)
{
    enum json_type inner;
    int integer;
    if (p >= end || depth > MAX_DEPTH) {
        return NULL;
    }
    switch (*p) {
    case '"':
        *type = J_STRING;
        return string_end(p, end);
    case 't':
        *type = J_LITERAL;
        return literal_end(p, end, "true");
    case 'f':
        *type = J_LITERAL;
        return literal_end(p, end, "false");
    case 'n':
        *type = J_NULL;
        return literal_end(p, end, "null");
    case '[':
        *type = J_ARRAY;
        if (++p < end && *p == ']') {
            return p + 1;
        }
        while ((p = value_end(p, end, depth + 1, &inner)) != NULL && p < end) {
            if (*p == ']') {
                return p + 1;
            }
            if (*p++ != ',') {
                return NULL;
            }
        }
        return NULL;
    case '{':
        *type = J_OBJECT;
        if (++p < end && *p == '}') {
            return p + 1;
        }
        while (p < end && *p == '"' && (p = string_end(p, end)) != NULL && p < end &&
               *p++ == ':' && (p = value_end(p, end, depth + 1, &inner)) != NULL && p < end) {
            if (*p == '}') {
                return p + 1;
            }
            if (*p++ != ',') {
                return NULL;
            }
        }
        return NULL;
    default:
        p = number_end(p, end, &integer);
        *type = integer ? J_INTEGER : J_NUMBER;
        return p;
    }
}

/* The member at `*at` of an object: its key (without quotes) in `*key`, `*key_size`, its value
   in `*value`, `*value_end`, `*type`; `*at` moved past it and its comma. 1: a member; 0: the
   object's end (`*at` past it); -1: not canonical (a key with an escape, among others). */
static int
next_member(const char **at, const char *end, const char **key, Py_ssize_t *key_size,
            const char **value, const char **value_stop, enum json_type *type)
{
    const char *p = *at;
    if (p < end && *p == '}') {
        *at = p + 1;
        return 0;
    }
    if (p >= end || *p != '"') {
        return -1;
    }
    const char *key_stop = string_end(p, end);
    if (key_stop == NULL || key_stop >= end || *key_stop != ':' ||
        memchr(p + 1, '\\', key_stop - p - 2) != NULL) {
        return -1;
    }
    *key = p + 1;
    *key_size = key_stop - p - 2;
    *value = key_stop + 1;
    *value_stop = value_end(*value, end, 1, type);
    if (*value_stop == NULL || *value_stop >= end) {
        return -1;
    }
    p = *value_stop;
    if (*p == ',') {
        p++;
        if (p >= end || *p == '}') {
            return -1;
        }
    } else if (*p != '}') {
        return -1;
    }
    *at = p;
    return 1;
}

/* Names looked up by their text: the fields of `canonical`, the keys of `lines`. A payload's keys
   come in the same order every time (msgspec writes a struct's fields in order), so the one
   after the last found is tried first; a key of a length no name has is none at once. */
typedef struct {
    const char *text[MAX_SLOTS];
    Py_ssize_t size[MAX_SLOTS];
    Py_ssize_t count, next;
    unsigned long long sizes; /* bit n: a name of n characters */
} Names;

static int
names_add(Names *names, PyObject *name)
{
    if (!PyBytes_Check(name) || names->count == MAX_SLOTS) {
        PyErr_SetString(PyExc_TypeError, "names must be bytes, at most 64");
        return -1;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(name);
    names->text[names->count] = PyBytes_AS_STRING(name);
    names->size[names->count++] = size;
    names->sizes |= size < 64 ? 1ULL << size : 0;
    return 0;
}

/* The index of the name `key` (`size` characters), or -1 */
static Py_ssize_t
name_index(Names *names, const char *key, Py_ssize_t size)
{
    if (size >= 64 || !(names->sizes >> size & 1)) {
        return -1;
    }
    Py_ssize_t n = names->next;
    for (Py_ssize_t tried = 0; tried < names->count; tried++) {
        if (names->size[n] == size && memcmp(names->text[n], key, size) == 0) {
            names->next = n + 1 == names->count ? 0 : n + 1;
            return n;
        }
        n = n + 1 == names->count ? 0 : n + 1;
    }
    return -1;
}

/* ---- canonical ---------------------------------------------------------------------------- */

enum kind { K_ANY, K_INT, K_INT_OR_NULL, K_STR_OR_NULL, K_EMPTY_LIST };

typedef struct {
    Names names;
    enum kind kind[MAX_FIELDS];
    int required[MAX_FIELDS];
} Fields;

static int
read_fields(PyObject *fields, Fields *out)
{
    static const char *const KINDS[] = {"any", "int", "int|null", "str|null", "[]"};
    const size_t kinds = sizeof KINDS / sizeof *KINDS;
    if (!PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) > MAX_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "canonical: fields must be a tuple of at most 32");
        return -1;
    }
    for (Py_ssize_t n = 0; n < PyTuple_GET_SIZE(fields); n++) {
        PyObject *item = PyTuple_GET_ITEM(fields, n);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3 ||
            !PyBytes_Check(PyTuple_GET_ITEM(item, 1)) ||
            names_add(&out->names, PyTuple_GET_ITEM(item, 0)) < 0) {
            PyErr_SetString(PyExc_TypeError, "canonical: a field is (name, kind, required)");
            return -1;
        }
        const char *kind = PyBytes_AS_STRING(PyTuple_GET_ITEM(item, 1));
        size_t k = 0;
        while (k < kinds && strcmp(kind, KINDS[k]) != 0) {
            k++;
        }
        out->required[n] = PyObject_IsTrue(PyTuple_GET_ITEM(item, 2));
        if (k == kinds || out->required[n] < 0) {
            PyErr_Format(PyExc_ValueError, "canonical: no such kind: %s", kind);
            return -1;
        }
        out->kind[n] = (enum kind)k;
    }
    return 0;
}

static int
of_kind(enum kind kind, enum json_type type, const char *value, const char *stop)
{
    switch (kind) {
    case K_INT:
        return type == J_INTEGER && stop - value <= MAX_INT_DIGITS;
    case K_INT_OR_NULL:
        return type == J_NULL || (type == J_INTEGER && stop - value <= MAX_INT_DIGITS);
    case K_STR_OR_NULL:
        return type == J_NULL || type == J_STRING;
    case K_EMPTY_LIST:
        return stop - value == 2 && value[0] == '[';
    default:
        return 1;
    }
}

static int
is_canonical(const char *p, const char *end, Fields *fields)
{
    const char *key, *value, *stop;
    Py_ssize_t key_size, n;
    enum json_type type;
    unsigned long long seen = 0;
    int member;
    if (p >= end || *p++ != '{') {
        return 0;
    }
    while ((member = next_member(&p, end, &key, &key_size, &value, &stop, &type)) == 1) {
        if ((n = name_index(&fields->names, key, key_size)) >= 0) {
            if (seen >> n & 1 || !of_kind(fields->kind[n], type, value, stop)) {
                return 0;
            }
            seen |= 1ULL << n;
        }
    }
    if (member < 0 || p != end) {
        return 0;
    }
    for (n = 0; n < fields->names.count; n++) {
        if (fields->required[n] && !(seen >> n & 1)) {
            return 0;
        }
    }
    return 1;
}

static PyObject *
canonical(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Fields fields = {0};
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "canonical(payloads: list[bytes], fields: tuple)");
        return NULL;
    }
    if (read_fields(args[1], &fields) < 0) {
        return NULL;
    }
    for (Py_ssize_t n = 0; n < PyList_GET_SIZE(args[0]); n++) {
        PyObject *payload = PyList_GET_ITEM(args[0], n);
        if (!PyBytes_Check(payload)) {
            Py_RETURN_FALSE;
        }
        const char *text = PyBytes_AS_STRING(payload);
        if (!is_canonical(text, text + PyBytes_GET_SIZE(payload), &fields)) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

/* ---- lines -------------------------------------------------------------------------------- */

/* `lines` reads canonical payloads only (`canonical` checked them), so its scans trust the
   JSON; on any other bytes they give no line or a wrong one, and never read past the NUL that
   ends a bytes object's text. */

/* The end of the string at `p` (its opening quote) */
static const char *
skip_string(const char *p)
{
    for (p++;; p++) {
        while (PLAIN[(unsigned char)*p]) {
            p++;
        }
        if (*p != '\\' || *++p == '\0') {
            return *p == '"' ? p + 1 : p;
        }
    }
}

/* The end of the value at `p` */
static const char *
skip_value(const char *p)
{
    if (*p == '"') {
        return skip_string(p);
    }
    if (*p != '{' && *p != '[') {
        while (!STOP[(unsigned char)*p]) {
            p++;
        }
        return p;
    }
    for (int depth = 0; *p != '\0';) {
        if (*p == '"') {
            p = skip_string(p);
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
        } else if ((*p == '}' || *p == ']') && --depth == 0) {
            return p + 1;
        }
        p++;
    }
    return p;
}

/* The end of the number at `p`, or NULL: no number, or one with a capital E */
static const char *
number_stop(const char *p)
{
    if (*p != '-' && !is_digit(*p)) {
        return NULL;
    }
    while (NUMERIC[(unsigned char)*p] && *p != 'E') {
        p++;
    }
    return STOP[(unsigned char)*p] ? p : NULL;
}

typedef struct {
    const char *text;
    Py_ssize_t size;
} Slot;

/* The numbers and nulls of the array at `p` into `size` slots; its end, or NULL: not an array
   of `size` numbers and nulls. */
static const char *
array_into(const char *p, Slot *slots, Py_ssize_t size)
{
    Py_ssize_t n = 0;
    if (*p++ != '[') {
        return NULL;
    }
    if (*p == ']') {
        return size == 0 ? p + 1 : NULL;
    }
    for (; n < size; n++) {
        const char *stop = *p == 'n' ? (strncmp(p, "null", 4) == 0 ? p + 4 : NULL) : number_stop(p);
        if (stop == NULL) {
            return NULL;
        }
        if (*p != 'n') {
            slots[n].text = p;
            slots[n].size = stop - p;
        }
        p = stop + 1;
        if (*stop == ']') {
            return n + 1 == size ? p : NULL;
        }
        if (*stop != ',') {
            return NULL;
        }
    }
    return NULL;
}

typedef struct {
    Names keys;               /* each value's key, then the time's and the meter's */
    Py_ssize_t first[MAX_SLOTS]; /* a value's first slot */
    Py_ssize_t size[MAX_SLOTS];  /* its slots: 0 a number, else its array's length */
    Names names;              /* each slot's name in the line */
    Py_ssize_t values;        /* keys of values */
} Plan;

static int
read_plan(PyObject *plan, PyObject *time_key, PyObject *meter_key, Plan *out)
{
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) > MAX_SLOTS - 2) {
        PyErr_SetString(PyExc_TypeError, "lines: plan must be a tuple of at most 62");
        return -1;
    }
    out->values = PyTuple_GET_SIZE(plan);
    for (Py_ssize_t n = 0; n < out->values; n++) {
        PyObject *item = PyTuple_GET_ITEM(plan, n), *names;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
            names_add(&out->keys, PyTuple_GET_ITEM(item, 0)) < 0) {
            PyErr_SetString(PyExc_TypeError, "lines: a plan's item is (key, names or None)");
            return -1;
        }
        names = PyTuple_GET_ITEM(item, 1);
        out->first[n] = out->names.count;
        out->size[n] = 0;
        if (names == Py_None) {
            if (names_add(&out->names, PyTuple_GET_ITEM(item, 0)) < 0) {
                return -1;
            }
            continue;
        }
        if (!PyTuple_Check(names)) {
            PyErr_SetString(PyExc_TypeError, "lines: names must be a tuple of bytes");
            return -1;
        }
        out->size[n] = PyTuple_GET_SIZE(names);
        for (Py_ssize_t k = 0; k < out->size[n]; k++) {
            if (names_add(&out->names, PyTuple_GET_ITEM(names, k)) < 0) {
                return -1;
            }
        }
    }
    return names_add(&out->keys, time_key) < 0 || names_add(&out->keys, meter_key) < 0 ? -1 : 0;
}

/* A payload's values into `slots` and its time into `time`; 0: make no lines this way. */
static int
read_payload(const char *p, const char *end, Plan *plan, PyObject *meter, Slot *slots,
             Slot *time)
{
    const Py_ssize_t time_index = plan->values, meter_index = plan->values + 1;
    int meter_seen = 0;
    if (*p++ != '{') {
        return 0;
    }
    while (*p == '"') {
        const char *key = p + 1, *value = key;
        while (PLAIN[(unsigned char)*value]) {
            value++;
        }
        if (value[0] != '"' || value[1] != ':') {
            return 0;
        }
        Py_ssize_t n = name_index(&plan->keys, key, value - key);
        const char *stop;
        value += 2;
        if (n < 0) {
            stop = skip_value(value);
        } else if (n == time_index) {
            stop = number_stop(value);
            if (stop == NULL || *value == '-' || memchr(value, '.', stop - value) != NULL ||
                memchr(value, 'e', stop - value) != NULL) {
                return 0;
            }
            time->text = value;
            time->size = stop - value;
        } else if (n == meter_index) {
            stop = skip_value(value);
            if (stop - value != PyBytes_GET_SIZE(meter) ||
                memcmp(value, PyBytes_AS_STRING(meter), stop - value) != 0) {
                return 0;
            }
            meter_seen = 1;
        } else if (*value == 'n') {
            stop = skip_value(value); /* null: absent */
        } else if (plan->size[n] == 0) {
            if ((stop = number_stop(value)) == NULL) {
                return 0;
            }
            slots[plan->first[n]].text = value;
            slots[plan->first[n]].size = stop - value;
        } else if ((stop = array_into(value, slots + plan->first[n], plan->size[n])) == NULL) {
            return 0;
        }
        p = stop;
        if (*p == ',') {
            p++;
        }
    }
    return *p == '}' && p + 1 == end && meter_seen && time->text != NULL;
}

static PyObject *
lines(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Plan plan = {0};
    if (nargs != 6 || !PyList_Check(args[0]) || !PyBytes_Check(args[1]) ||
        !PyBytes_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "lines(payloads: list[bytes], head: bytes, plan: tuple, time_key: bytes, "
                        "meter_key: bytes, meter: bytes)");
        return NULL;
    }
    if (read_plan(args[2], args[3], args[4], &plan) < 0) {
        return NULL;
    }
    PyObject *payloads = args[0], *meter = args[5];
    const char *head = PyBytes_AS_STRING(args[1]);
    const Py_ssize_t head_size = PyBytes_GET_SIZE(args[1]), slot_count = plan.names.count;
    Py_ssize_t bound = 0, names_size = 0;
    for (Py_ssize_t k = 0; k < slot_count; k++) {
        names_size += plan.names.size[k] + 2; /* `,name=` */
    }
    for (Py_ssize_t n = 0; n < PyList_GET_SIZE(payloads); n++) {
        PyObject *payload = PyList_GET_ITEM(payloads, n);
        if (!PyBytes_Check(payload)) {
            Py_RETURN_NONE;
        }
        bound += head_size + names_size + PyBytes_GET_SIZE(payload) + 2;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, bound);
    if (result == NULL) {
        return NULL;
    }
    char *start = PyBytes_AS_STRING(result), *out = start;
    for (Py_ssize_t n = 0; n < PyList_GET_SIZE(payloads); n++) {
        PyObject *payload = PyList_GET_ITEM(payloads, n);
        const char *text = PyBytes_AS_STRING(payload);
        Slot slots[MAX_SLOTS], time = {NULL, 0};
        memset(slots, 0, slot_count * sizeof *slots);
        if (!read_payload(text, text + PyBytes_GET_SIZE(payload), &plan, meter, slots, &time)) {
            Py_DECREF(result);
            Py_RETURN_NONE;
        }
        char *line = out;
        if (out > start) {
            *out++ = '\n';
        }
        memcpy(out, head, head_size);
        out += head_size;
        char separator = ' ';
        for (Py_ssize_t k = 0; k < slot_count; k++) {
            if (slots[k].text != NULL) {
                *out++ = separator;
                separator = ',';
                for (Py_ssize_t i = 0; i < plan.names.size[k]; i++) {
                    *out++ = plan.names.text[k][i];
                }
                *out++ = '=';
                for (Py_ssize_t i = 0; i < slots[k].size; i++) {
                    *out++ = slots[k].text[i];
                }
            }
        }
        if (separator == ' ') { /* no value: no line */
            out = line;
            continue;
        }
        *out++ = ' ';
        memcpy(out, time.text, time.size);
        out += time.size;
    }
    if (_PyBytes_Resize(&result, out - start) < 0) {
        return NULL;
    }
    return result;
}

static PyMethodDef methods[] = {
    {"canonical", (PyCFunction)(void (*)(void))canonical, METH_FASTCALL,
     "canonical(payloads, fields) -> bool: whether every payload is a reading's JSON as the "
     "ingest writes it (services/export/sinks/_stream_json.c)."},
    {"lines", (PyCFunction)(void (*)(void))lines, METH_FASTCALL,
     "lines(payloads, head, plan, time_key, meter_key, meter) -> bytes | None: the line "
     "protocol of canonical payloads of one meter (services/export/sinks/_stream_json.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_stream_json",
    .m_doc = "The readings stream's JSON scanned in C (services/export/sinks/_stream_json.c).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__stream_json(void)
{
    make_tables();
    return PyModule_Create(&module);
}
