"""Pure protocol code: meter bytes in, `Reading`s out, no I/O and no module-level mutable state.

- `decoded`: what every decoder answers (`Decoded`, `DecodeError`) and its shape (`Decoder`);
- `obis`, `reading_builder`: the register table and the reading assembly both protocols share;
- `p1/`: text telegrams; `dlms/`: binary DLMS/COSEM frames;
- `identify`: which protocol a byte sample is; `factory`: the one place a decoder is made.
"""
