"""DLMS/COSEM binary meters: framing (`hdlc`, `mbus`, `raw_apdu`), the application layer
(`cosem`, `axdr`, `ciphering`), list layouts (`list_layouts`), compiled per-shape plans (`plan`)
and the incremental decoder tying them together (`decoder`)."""
