"""hanport's benchmarks: `make bench` (= `python -m bench [NAME...]`) runs each module's main()."""
