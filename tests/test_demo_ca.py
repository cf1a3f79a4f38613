"""The demo PKI: made once, reused, renewed, and accepted by OpenSSL and cryptography."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from whathappens.demo.ca import BAD_KINDS, Pki, ensure_pki


def chain_of(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("pki"))


def verify(pki: Pki, chain_file: Path, name: x509.GeneralName) -> list[x509.Certificate]:
    store = Store(chain_of(pki.ca))
    leaf, *rest = chain_of(chain_file)
    verifier = PolicyBuilder().store(store).build_server_verifier(name)  # type: ignore[arg-type]
    return verifier.verify(leaf, rest)


def test_files_where_the_tracer_expects_them(pki: Pki) -> None:
    state = pki.ca.parent
    assert pki.ca == state / "ca.pem"
    assert pki.server.chain == state / "server-chain.pem"
    assert pki.server.key == state / "server-key.pem"
    assert len(chain_of(pki.ca)) == 1
    assert len(chain_of(pki.server.chain)) == 2  # leaf + intermediate
    assert pki.server.key.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "name",
    [x509.DNSName("www.example.com"), x509.DNSName("example.com"),
     x509.DNSName("cdn.example.com"), x509.IPAddress(ipaddress.ip_address("127.0.80.1"))],
)
def test_server_chain_verifies_with_cryptography(pki: Pki, name: x509.GeneralName) -> None:
    built = verify(pki, pki.server.chain, name)
    subjects = [c.subject.rfc4514_string() for c in built]
    assert subjects[-1] == "CN=whathappens demo root CA,O=whathappens demo"
    assert len(built) == 3


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl binary")
def test_server_chain_verifies_with_openssl(pki: Pki) -> None:
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki.ca), "-untrusted", str(pki.server.chain),
         "-verify_hostname", "www.example.com", "-purpose", "sslserver", str(pki.server.chain)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_certificates_do_not_verify(pki: Pki, kind: str) -> None:
    name = x509.DNSName(f"{kind}.example.com")
    with pytest.raises(VerificationError):
        verify(pki, pki.bad[kind].chain, name)


def test_expired_is_expired_and_others_are_not(pki: Pki) -> None:
    now = dt.datetime.now(dt.UTC)
    for kind in BAD_KINDS:
        leaf = chain_of(pki.bad[kind].chain)[0]
        assert (leaf.not_valid_after_utc < now) == (kind == "expired")


def test_second_run_reuses_everything(pki: Pki) -> None:
    before = {p: p.read_bytes() for p in (pki.ca, pki.server.chain, pki.server.key)}
    again = ensure_pki(pki.ca.parent)
    assert {p: p.read_bytes() for p in before} == before
    assert again == pki


def test_leaf_due_for_renewal_is_reissued_under_the_same_root(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path)
    root = first.ca.read_bytes()
    leaf = chain_of(first.server.chain)[0]
    # Pretend the leaf is about to expire: replace it with the expired demo certificate.
    first.server.chain.write_bytes(first.bad["expired"].chain.read_bytes())
    second = ensure_pki(tmp_path)
    assert second.ca.read_bytes() == root
    renewed = chain_of(second.server.chain)[0]
    assert renewed.serial_number != leaf.serial_number
    verify(second, second.server.chain, x509.DNSName("www.example.com"))
