"""Every HDLC and encrypted corpus capture decodes to the values the corpus README gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.ingest.codec.decoded import Decoded, DecodeError
from services.ingest.codec.dlms.decoder import DlmsDecoder
from shared.reading import Reading

from .conftest import HDLC_FILES, KEYS, frame

RECEIVED = 1_700_000_000_000


def one(decoder: DlmsDecoder, data: bytes) -> Reading:
    out = decoder.feed(data, RECEIVED) + decoder.flush(RECEIVED)
    assert len(out) == 1, out
    assert isinstance(out[0], Decoded), out[0]
    return out[0].reading


def ms(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize("name", HDLC_FILES)
def test_every_hdlc_capture_decodes_with_fcs_ok(name: str) -> None:
    reading = one(DlmsDecoder("hdlc", tz="Europe/Oslo"), frame(f"hdlc/{name}"))
    assert reading.crc == "ok"
    assert reading.protocol == "hdlc"
    assert reading.pi[0] is not None and reading.u[0] is not None


def test_aidon_norway_list2() -> None:
    r = one(DlmsDecoder("hdlc"), frame("hdlc/aidon_no_list2_doc.hex"))
    assert r.extras["list_id"] == "AIDON_V0001"  # Aidon sends it as register 1-1:0.2.129
    assert r.meter_id == "7359992890941742"
    assert r.meter_model == "6515"
    assert (r.pi[0], r.pe[0], r.p[0], r.r[0]) == (1362.0, 0.0, 1362.0, 996.0)
    assert r.i[0] == 9.3 and r.u[0] == 250.0
    assert r.ts == RECEIVED  # list 2 sends no clock


def test_aidon_sweden_27_items() -> None:
    r = one(DlmsDecoder("hdlc", tz="Europe/Stockholm"), frame("hdlc/aidon_se_27items_doc.hex"))
    assert r.pi[0] == 1122.0 and r.r[0] == 1507.0
    assert r.i == [0.0, 7.5, 0.0]
    assert r.u == [230.7, 249.9, 230.8]
    assert (r.ic, r.ec, r.ric, r.rec) == (10049.926, 0.008, 6614.347, 0.005)
    assert r.pi[1:] == [0.0, 1122.0, 0.0]
    # 2019-12-16 07:59:40, deviation 0x8000 (unspecified): Stockholm winter time, UTC+1
    assert r.ts == ms(2019, 12, 16, 6, 59, 40)
    assert r.meter_time == "2019-12-16T07:59:40+01:00"


def test_aidon_energy_registers_with_positive_scaler() -> None:
    r = one(DlmsDecoder("hdlc"), frame("hdlc/aidon_gh1119.hex"))
    assert r.ic == 109552.25  # raw 10955225 Wh, scaler +1
    assert r.rec == 15319.72
    assert r.i == [0.5, 0.3, 16.8]
    assert r.ts == ms(2025, 12, 14, 16, 0, 0)  # deviation 0 sent: UTC


def test_kaifa_positional_kfm_001() -> None:
    r = one(DlmsDecoder("hdlc", tz="Europe/Oslo"), frame("hdlc/kaifa_gh180.hex"))
    assert r.extras["list_id"] == "KFM_001"
    assert r.meter_model == "MA304H3E"
    assert r.meter_id == "6970631403275928"
    assert (r.pi[0], r.pe[0], r.r[0]) == (4097.0, 0.0, 195.0)
    assert r.i == [12.056, 5.754, 13.412]
    assert r.u == [239.2, 0.0, 239.7]
    assert r.ts == ms(2022, 1, 2, 13, 37, 20)  # Oslo winter time


def test_kamstrup_pairs_with_its_scalers() -> None:
    r = one(DlmsDecoder("hdlc", tz="Europe/Oslo"), frame("hdlc/kamstrup_em001.hex"))
    assert r.extras["list_id"] == "Kamstrup_V0001"
    assert r.meter_id == "5706567202753025"
    assert r.meter_model == "6841131BN243101040"
    assert r.i == [1.89, 3.27, 1.28]
    assert r.u == [236.0, 236.0, 236.0]
    assert (r.ic, r.ec, r.ric, r.rec) == (85823.28, 4540.83, 153.27, 14774.38)
    assert r.ts == ms(2021, 11, 25, 22, 0, 55)


def test_kaifa_ma309_austria_encryption_only() -> None:
    name = "encrypted/kaifa_ma309_at_apdu_gcm.hex"
    r = one(DlmsDecoder("apdu", keys=KEYS[name]), frame(name))
    assert r.u[0] == 230.8 and r.i[0] == 0.0
    assert r.pi[0] == 0.0 and r.pe[0] == 0.0
    assert (r.ic, r.ec, r.ric, r.rec) == (9.108, 0.0, 0.096, 0.009)
    assert r.meter_id == "1KFM0100000035"
    # 2021-07-19 15:46:35 with deviation -120 (UTC = local - 2 h)
    assert r.ts == ms(2021, 7, 19, 13, 46, 35)
    assert r.crc == "absent"  # SC 0x21: no tag to check


def test_landis_gyr_e450_netz_burgenland_authenticated() -> None:
    name = "encrypted/lg_e450_at_hdlc_gcm.hex"
    r = one(DlmsDecoder("hdlc", keys=KEYS[name], tz="Europe/Vienna"), frame(name))
    assert r.u == [236.0, 237.0, 236.0]
    assert r.meter_id == "30137181"
    # Netz Burgenland 14-item list (amsreader-firmware LNG2): I in 0.01 A, P in W, A in Wh
    assert r.i == [0.0, 0.04, 0.26]
    assert (r.pi[0], r.pe[0]) == (29.0, 0.0)
    assert (r.ic, r.ec) == (31358.606, 7.619)
    assert r.extras["landis_gyr_e450.item11"] == 400
    assert r.crc == "ok"


def test_smarty_p1_inside_gcm() -> None:
    name = "encrypted/smarty_lu_gcm.bin"
    r = one(DlmsDecoder("apdu", keys=KEYS[name], tz="Europe/Luxembourg"), frame(name))
    assert r.protocol == "smarty"
    assert r.crc == "ok"
    assert (r.ic, r.ec, r.ric, r.rec) == (6.695, 0.025, 0.818, 2.745)
    assert r.pi[0] == 0.0
    assert r.i == [0.0, 0.0, 0.0]


def test_missing_key_names_the_meter() -> None:
    out = DlmsDecoder("apdu").feed(frame("encrypted/kaifa_ma309_at_apdu_gcm.hex"), RECEIVED)
    assert len(out) == 1 and isinstance(out[0], DecodeError)
    assert out[0].reason == "key_error"
    assert "KFM 1010000023" in str(out[0]) and "HANPORT_METER_KEY" in str(out[0])


def test_wrong_key_without_tag_is_a_key_error() -> None:
    from services.ingest.codec.dlms.ciphering import Keys

    wrong = Keys(bytes(16))
    out = DlmsDecoder("apdu", keys=wrong).feed(
        frame("encrypted/kaifa_ma309_at_apdu_gcm.hex"), RECEIVED
    )
    assert [e.reason for e in out if isinstance(e, DecodeError)] == ["key_error"]
    assert "000000" not in str(out[0])


@pytest.mark.parametrize("which", ["encryption", "authentication"])
def test_wrong_key_with_tag_is_an_auth_error(which: str) -> None:
    name = "encrypted/lg_e450_at_hdlc_gcm.hex"
    good = KEYS[name]
    keys = good._replace(**{which: bytes.fromhex("AA" * 16)})
    out = DlmsDecoder("hdlc", keys=keys).feed(frame(name), RECEIVED)
    assert len(out) == 1 and isinstance(out[0], DecodeError)
    assert out[0].reason == "auth_error"
    assert "LGZ" in str(out[0])
    for key in (good.encryption, good.authentication, bytes.fromhex("AA" * 16)):
        assert key is not None
        assert key.hex() not in str(out[0]).lower()


def test_smarty_inner_p1_crc_is_checked() -> None:
    """Re-encrypt the Smarty telegram with one digit changed (valid GCM tag, wrong P1 CRC):
    the P1 parser inside must refuse it."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from services.ingest.codec.dlms.ciphering import SMARTY_AUTH_KEY, decrypt, parse

    name = "encrypted/smarty_lu_gcm.bin"
    keys = KEYS[name]
    assert keys.encryption is not None
    ciphered = parse(frame(name))
    plain = decrypt(ciphered, keys)
    changed = plain.replace(b"1-0:31.7.0(000", b"1-0:31.7.0(900", 1)
    assert changed != plain
    iv = ciphered.system_title + ciphered.counter
    aad = bytes([ciphered.security]) + SMARTY_AUTH_KEY
    sealed = AESGCM(keys.encryption).encrypt(iv, changed, aad)
    body = bytes([ciphered.security]) + ciphered.counter + sealed[: len(changed) + 12]
    apdu = b"\xdb\x08" + ciphered.system_title + b"\x82" + len(body).to_bytes(2, "big") + body
    out = DlmsDecoder("apdu", keys=keys).feed(apdu, RECEIVED)
    assert [o.reason for o in out if isinstance(o, DecodeError)] == ["crc_error"]
