"""Start VMware's vSphere simulator (govmomi ``vcsim``) for tests.

The simulator is a small Go ``main`` (``tests/infra/vcsim/main.go``) built in GOPATH mode against
Debian's ``golang-github-vmware-govmomi-dev`` (govmomi 0.24) with Debian's ``golang-go``. The binary is
built once into a cache directory and rebuilt when ``main.go`` changes.

    from tests.infra.vcsim import run_vcsim, vcsim_available

    ok, why = vcsim_available()
    if not ok:
        pytest.skip(why)
    with run_vcsim(model="vpx", vms=2) as sim:
        SmartConnect(host=sim.host, port=sim.port, user=sim.username, pwd=sim.password,
                     protocol="http")

See the "vcsim" section of tests/infra/README.md for options, timings and known simulator quirks.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "VcsimError",
    "VcsimInstance",
    "build_vcsim",
    "make_test_ca",
    "run_vcsim",
    "vcsim_available",
]

SOURCE_DIR = Path(__file__).resolve().parent / "vcsim"
DEBIAN_GOPATH = Path("/usr/share/gocode")
GOVMOMI_SIMULATOR = DEBIAN_GOPATH / "src/github.com/vmware/govmomi/simulator"
BUILD_TIMEOUT = 600.0
START_TIMEOUT = 30.0


class VcsimError(RuntimeError):
    """The simulator could not be built or started."""


def cache_dir() -> Path:
    """Where built test artefacts live: ``$VIRTABSTRACT_TEST_CACHE`` or /var/cache/virtabstract-test."""
    return Path(os.environ.get("VIRTABSTRACT_TEST_CACHE", "/var/cache/virtabstract-test"))


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.glob("*.go")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_vcsim() -> Path:
    """Build the simulator binary once (per ``main.go`` content) and return its path.

    Safe to call from parallel test workers: builds are serialised by a lock file and the binary
    appears atomically. Raises :class:`VcsimError` when Go or govmomi are missing or the build fails.
    """
    go = shutil.which("go")
    if go is None:
        raise VcsimError("`go` not found (apt-get install golang-go)")
    if not GOVMOMI_SIMULATOR.is_dir():
        raise VcsimError(
            f"{GOVMOMI_SIMULATOR} missing (apt-get install golang-github-vmware-govmomi-dev)"
        )
    root = cache_dir() / "vcsim"
    binary = root / f"vcsim-{_source_hash()}"
    if binary.exists():
        return binary
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():  # another worker built it while we waited
            return binary
        env = dict(
            os.environ,
            GO111MODULE="off",
            GOPATH=f"{DEBIAN_GOPATH}{os.pathsep}{root / 'gopath'}",
            GOCACHE=str(root / "go-build"),
            GOFLAGS="",
        )
        tmp = root / f".{binary.name}.{os.getpid()}.tmp"
        try:
            proc = subprocess.run(
                [go, "build", "-o", str(tmp), "."],
                check=False,
                cwd=SOURCE_DIR,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise VcsimError(f"go build timed out after {BUILD_TIMEOUT:.0f}s") from exc
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise VcsimError(f"go build failed ({proc.returncode}):\n{proc.stderr.strip()}")
        os.replace(tmp, binary)
        for old in root.glob("vcsim-*"):  # binaries of earlier main.go versions
            if old != binary:
                old.unlink(missing_ok=True)
    return binary


def vcsim_available() -> tuple[bool, str]:
    """``(True, "")`` if the simulator binary is (or can be) built, else ``(False, reason)``.

    Builds on first use (~20 s on 2 cores), so call it from a session-scoped fixture or skip marker.
    """
    try:
        build_vcsim()
    except (VcsimError, OSError) as exc:
        return False, f"vcsim unavailable: {exc}"
    return True, ""


@dataclass
class VcsimInstance:
    """A running simulator. ``url`` ends in ``/sdk``; ``ca_cert`` is set when serving https."""

    url: str
    host: str
    port: int
    username: str
    password: str
    process: subprocess.Popen = field(repr=False)
    log_path: Path
    ca_cert: Path | None = None

    @property
    def protocol(self) -> str:
        return urlsplit(self.url).scheme

    def log(self) -> str:
        """The simulator's stderr so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _read_first_line(stream, timeout: float) -> str | None:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else None


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


@contextlib.contextmanager
def run_vcsim(
    model: str = "esx",
    vms: int = 2,
    hosts: int = 3,
    clusters: int = 1,
    standalone_hosts: int = 1,
    datacenters: int = 1,
    *,
    autostart: bool = True,
    tls: bool = False,
    cert: os.PathLike | str | None = None,
    key: os.PathLike | str | None = None,
    delay_ms: int = 0,
    method_delays_ms: dict[str, int] | None = None,
    session_idle_timeout: float = 0,
    username: str = "user",
    password: str = "pass",
    listen: str = "127.0.0.1:0",
    start_timeout: float = START_TIMEOUT,
) -> Iterator[VcsimInstance]:
    """Start a simulator, yield a :class:`VcsimInstance`, and always stop it on exit.

    ``model``: ``"esx"`` (one standalone host; ``hosts``/``clusters``/``standalone_hosts``/
    ``datacenters`` are ignored) or ``"vpx"`` (vCenter: per datacenter ``clusters`` clusters of
    ``hosts`` hosts plus ``standalone_hosts`` standalone hosts). ``vms`` is per resource pool, i.e.
    per standalone host and per cluster. Model VMs start powered on unless ``autostart=False``.

    ``tls=True`` serves https with ``cert``/``key`` (PEM files); without them a throwaway CA and a
    server certificate for the listen host are generated and ``instance.ca_cert`` points at the CA.
    ``delay_ms`` delays every SOAP call, ``method_delays_ms`` specific ones (SOAP names, e.g.
    ``{"PowerOffVM_Task": 700}``). ``session_idle_timeout`` (seconds) expires idle sessions.
    Only ``username``/``password`` are accepted for login.
    """
    if model not in ("esx", "vpx"):
        raise ValueError(f"model must be 'esx' or 'vpx', not {model!r}")
    if (cert is None) != (key is None):
        raise ValueError("cert and key go together")
    binary = build_vcsim()
    with tempfile.TemporaryDirectory(prefix="vcsim-") as tmp:
        workdir = Path(tmp)
        ca_cert = None
        if tls and cert is None:
            listen_host = listen.rsplit(":", 1)[0].strip("[]") or "127.0.0.1"
            ca_cert, cert, key = make_test_ca(workdir / "pki", host=listen_host)
        args = [
            str(binary),
            f"-model={model}",
            f"-vm={vms}",
            f"-host={hosts}",
            f"-cluster={clusters}",
            f"-standalone-host={standalone_hosts}",
            f"-dc={datacenters}",
            f"-autostart={str(autostart).lower()}",
            f"-l={listen}",
            f"-username={username}",
            f"-password={password}",
            f"-delay={delay_ms}",
            f"-session-idle-timeout={int(session_idle_timeout * 1000)}ms",
            "-exit-on-eof",
        ]
        if method_delays_ms:
            args.append(
                "-method-delay=" + ",".join(f"{k}:{v}" for k, v in method_delays_ms.items())
            )
        if tls:
            args += ["-tls", f"-cert={cert}", f"-key={key}"]
        log_path = workdir / "vcsim.log"
        # TMPDIR: the model's datastore directories land in our temp dir, so they go even after a kill.
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=dict(os.environ, TMPDIR=str(workdir)),
                text=True,
            )
        try:
            line = _read_first_line(process.stdout, start_timeout)
            if not line:  # None: timed out; "": stdout closed, the simulator is exiting
                if line == "":
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(5)
                reason = (
                    f"exited with status {process.returncode}"
                    if process.poll() is not None
                    else f"printed no URL within {start_timeout}s"
                )
                raise VcsimError(f"vcsim {reason}:\n{log_path.read_text(errors='replace')[-4000:]}")
            info = json.loads(line)
            parts = urlsplit(info["url"])
            yield VcsimInstance(
                url=info["url"],
                host=parts.hostname,
                port=parts.port,
                username=info["username"],
                password=info["password"],
                process=process,
                log_path=log_path,
                ca_cert=Path(ca_cert) if ca_cert else None,
            )
        finally:
            _stop(process)


def make_test_ca(directory: os.PathLike | str, host: str = "127.0.0.2") -> tuple[Path, Path, Path]:
    """Create a throwaway CA and a server certificate for ``host`` signed by it.

    Returns ``(ca_cert_path, server_cert_path, server_key_path)`` (PEM files in ``directory``).
    ``host`` may be an IP address (goes into an IP SAN) or a DNS name. Keys are ECDSA P-256 (Debian's
    OpenSSL 3 rejects the RSA-1024 certificate Go's httptest would otherwise serve). Uses the
    ``cryptography`` package when importable, else the ``openssl`` command.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        _make_test_ca_openssl(directory, host, *paths)
    else:
        _make_test_ca_cryptography(host, *paths)
    return paths


def _san(host: str):
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _make_test_ca_cryptography(host: str, ca_path: Path, cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=30)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("virtabstract test CA"))
        .issuer_name(name("virtabstract test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(name(host))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([_san(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)


def _make_test_ca_openssl(
    directory: Path, host: str, ca_path: Path, cert_path: Path, key_path: Path
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise VcsimError("make_test_ca needs the cryptography package or the openssl command")
    try:
        san = f"IP:{ipaddress.ip_address(host)}"
    except ValueError:
        san = f"DNS:{host}"
    ca_key, csr, ext = directory / "ca-key.pem", directory / "server.csr", directory / "server.ext"
    ext.write_text(
        f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )

    def run(*args: str) -> None:
        proc = subprocess.run([openssl, *args], check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            raise VcsimError(f"openssl {args[0]} failed: {proc.stderr.strip()}")

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_path),
        "-days",
        "30",
        "-subj",
        "/CN=virtabstract test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    run("req", "-new", *ec, "-keyout", str(key_path), "-out", str(csr), "-subj", f"/CN={host}")
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_path),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert_path),
        "-days",
        "30",
        "-extfile",
        str(ext),
    )
    key_path.chmod(0o600)
