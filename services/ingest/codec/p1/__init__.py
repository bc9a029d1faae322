"""P1: the text telegrams of DSMR/e-MUCS/Nordic meters (`parser`), cut from a byte stream
(`decoder`), with their clocks (`clock`)."""
