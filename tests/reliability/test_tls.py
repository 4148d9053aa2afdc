"""TLS: certificate verification is on by default for every scheme that speaks TLS.

tests/backends/esxi/test_esxi_vcsim.py checks the basics on one ``esx://`` URL (a self-signed server
fails with a message naming ``ca_file=`` and ``no_verify=1``; ``ca_file`` passes; ``no_verify=1`` warns
once). This module widens it, without repeating it: every vSphere scheme (``esx``, ``vpx``,
``vsphere``), the loopback address pyVmomi itself would not verify (127.0.0.1), a CA that did not sign
the certificate, a certificate for another address, the warning counted across threads, and
libvirt's TLS transport (``qemu+tls``).
"""

from __future__ import annotations

import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import virtabstract
from virtabstract.errors import ConnectionFailed, InvalidURL

from .conftest import sim_url
from .support import CANARY, SecretScanner, Tally

pytestmark = pytest.mark.vcsim

SCHEMES = ["esx", "vpx", "vsphere"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory, vcsim_ok: None) -> dict[str, Path]:
    from tests.infra.vcsim import make_test_ca

    root = tmp_path_factory.mktemp("pki")
    ca, cert, key = make_test_ca(root / "main", host="127.0.0.2")
    ca_local, cert_local, key_local = make_test_ca(root / "local", host="127.0.0.1")
    other_ca, _, _ = make_test_ca(root / "other", host="127.0.0.2")
    return {"ca": ca, "cert": cert, "key": key, "ca_local": ca_local, "cert_local": cert_local,
            "key_local": key_local, "other_ca": other_ca}  # fmt: skip


def _serve(pki: dict[str, Path], listen: str, which: str = "") -> Any:
    from tests.infra.vcsim import run_vcsim

    return run_vcsim(model="vpx", vms=1, tls=True, cert=pki[f"cert{which}"], key=pki[f"key{which}"],
                     listen=listen, password=CANARY)  # fmt: skip


@pytest.fixture(scope="module")
def tls_sim(pki: dict[str, Path]) -> Iterator[Any]:
    with _serve(pki, "127.0.0.2:0") as sim:
        yield sim


def _refused(url: str, scanner: SecretScanner, **options: Any) -> ConnectionFailed:
    with pytest.raises(ConnectionFailed) as info:
        virtabstract.connect(url, **options)
    scanner.check_exception(info.value, url)
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError), repr(info.value.__cause__)
    return info.value


@pytest.mark.parametrize("scheme", SCHEMES)
def test_verified_by_default_with_a_clear_message(tls_sim: Any, scheme: str, scanner: SecretScanner,
                                                  tally: Tally) -> None:  # fmt: skip
    error = _refused(sim_url(tls_sim, scheme), scanner)
    message = str(error)
    assert "not trusted" in message and "ca_file=" in message and "no_verify=1" in message, message
    tally.add_tls(f"default-refuses:{scheme}")


def test_verified_even_on_127_0_0_1(pki: dict[str, Path], scanner: SecretScanner, tally: Tally) -> None:
    """pyVmomi skips verification for localhost/127.0.0.1/::1 when it gets no SSL context; we always pass one."""
    with _serve(pki, "127.0.0.1:0", "_local") as sim:
        _refused(sim_url(sim, "esx"), scanner)
        tally.add_tls("default-refuses:127.0.0.1")
        with virtabstract.connect(sim_url(sim, "esx", ca_file=str(pki["ca_local"]))) as hv:
            assert hv.vms.list_info()
        tally.add_tls("ca_file-passes:127.0.0.1")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_ca_file_passes_and_verifies(tls_sim: Any, pki: dict[str, Path], scheme: str, tally: Tally) -> None:
    with virtabstract.connect(sim_url(tls_sim, scheme, ca_file=str(pki["ca"]))) as hv:
        assert hv.vms.list_info()
        context = hv.backend.session.ssl_context
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    tally.add_tls(f"ca_file-passes:{scheme}")


def test_a_ca_that_did_not_sign_the_certificate_is_refused(tls_sim: Any, pki: dict[str, Path],
                                                           scanner: SecretScanner, tally: Tally) -> None:  # fmt: skip
    _refused(sim_url(tls_sim, "vpx", ca_file=str(pki["other_ca"])), scanner)
    tally.add_tls("wrong-ca-refused")


def test_a_certificate_for_another_address_is_refused(pki: dict[str, Path], scanner: SecretScanner,
                                                      tally: Tally) -> None:  # fmt: skip
    with _serve(pki, "127.0.0.3:0") as sim:  # serves the certificate made for 127.0.0.2
        error = _refused(sim_url(sim, "vpx", ca_file=str(pki["ca"])), scanner)
        assert "mismatch" in str(error).lower(), str(error)
    tally.add_tls("hostname-mismatch-refused")


def test_unreadable_ca_file_is_a_usage_error(tls_sim: Any, tmp_path: Path, tally: Tally) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    for path in (junk, tmp_path / "missing.pem"):
        with pytest.raises(InvalidURL, match="ca_file"):
            virtabstract.connect(sim_url(tls_sim, "vpx", ca_file=str(path)))
        tally.add_tls("bad-ca_file")


def test_no_verify_passes_with_exactly_one_warning_across_threads(tls_sim: Any, caplog: pytest.LogCaptureFixture,
                                                                  tally: Tally) -> None:  # fmt: skip
    from virtabstract_esxi import _session

    virtabstract._security._reset_insecure_warnings()  # once per process: start from a fresh state
    errors: list[BaseException] = []

    def connect() -> None:
        try:
            with virtabstract.connect(sim_url(tls_sim, "vpx", no_verify="1")) as hv:
                assert hv.vms.list_info()
        except BaseException as exc:
            errors.append(exc)

    with warnings.catch_warnings(record=True) as seen, caplog.at_level("WARNING", "virtabstract.esxi"):
        warnings.simplefilter("always")
        threads = [threading.Thread(target=connect) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        connect()
    assert not errors, errors
    ours = [w for w in seen if issubclass(w.category, _session.InsecureConnectionWarning)]
    assert len(ours) == 1, [str(w.message) for w in seen]
    assert "no_verify=1" in str(ours[0].message) and "ca_file" in str(ours[0].message)
    assert sum("verification is disabled" in r.getMessage() for r in caplog.records) == 1
    tally.add_tls("no_verify-one-warning")


# -- libvirt's TLS transport ------------------------------------------------------------------------------


def test_libvirt_tls_uri_keeps_verification(kvm_ok: None, tally: Tally) -> None:
    from virtabstract_kvm._uri import libvirt_uri

    from virtabstract import URL

    for text in ("qemu+tls://kvm1.example/system", "kvm+tls://kvm1.example/", "qemu+tls://u:pw@kvm1/system?pool=x"):
        uri = libvirt_uri(URL.parse(text))
        assert "no_verify" not in uri and "pw" not in uri, uri
        tally.add_tls("libvirt-uri-verifies")


def test_libvirt_no_verify_warns(kvm_ok: None) -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(virtabstract.errors.VirtAbstractError):
            virtabstract.connect("qemu+tls://127.0.0.2:1/system?no_verify=1&keepalive=0")
    assert any("no_verify" in str(w.message) for w in seen)
