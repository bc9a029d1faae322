"""P1: the text telegrams of DSMR/e-MUCS/Nordic meters. `decoder` cuts them from a byte stream,
`parser` reads each (line by line, or through a `layout` compiled for a shape seen twice), both
applying what `lines` decides for each line; `clock` reads meter clocks."""
