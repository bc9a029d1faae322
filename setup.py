"""The one thing pyproject.toml does not say: the export's line protocol fast path in C
(services/export/sinks/_interleave.c and _stream_json.c). It is built where a C compiler and
Python's headers are (the image's build stage, CI, `make install`); elsewhere the install goes
on without it (`optional`) and the export makes the same lines in Python, about 2 µs a reading
slower (docs/performance.md, Export)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            f"services.export.sinks.{name}",
            [f"services/export/sinks/{name}.c"],
            optional=True,
        )
        for name in ("_interleave", "_stream_json")
    ]
)
