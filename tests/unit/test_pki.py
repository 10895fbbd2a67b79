"""The local PKI: the API server answers to its names; components get the upstream identities."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from seatrial.cluster import pki


def test_pki_identities_and_reuse(tmp_path: Path) -> None:
    names = ("localhost", "127.0.0.1", "kubernetes.default.svc")
    keys = pki.ensure_pki(tmp_path, server_names=names)
    server = x509.load_pem_x509_certificate(keys.cert("apiserver").read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in san.get_values_for_type(x509.DNSName)
    kcm = x509.load_pem_x509_certificate(keys.cert("controller-manager").read_bytes())
    assert kcm.subject.rfc4514_string() == "CN=system:kube-controller-manager"
    admin = x509.load_pem_x509_certificate(keys.cert("admin").read_bytes())
    assert "O=system:masters" in admin.subject.rfc4514_string()
    assert oct(keys.key("ca").stat().st_mode & 0o777) == "0o600"
    before = keys.ca.read_bytes()
    pki.ensure_pki(tmp_path, server_names=names)
    assert keys.ca.read_bytes() == before  # reused, not regenerated
    pki.ensure_pki(tmp_path, server_names=(*names, "10.0.0.1"))
    assert keys.ca.read_bytes() != before  # a new name means a new serving cert
