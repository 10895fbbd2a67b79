"""Certificates and kubeconfigs for the local cluster.

The local cluster is a real one, so it uses TLS and client certificates like a real one: the
RBAC identities of the controller-manager and scheduler are the upstream ones
(``system:kube-controller-manager``, ``system:kube-scheduler``), which keeps the bootstrap
RBAC roles meaningful. The PKI is generated once per cluster directory and reused; it is
regenerated when the set of names the API server must answer to changes or a cert nears expiry.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=7)

# name -> (common name, organisation); every client identity the cluster's processes use.
CLIENTS: dict[str, tuple[str, str | None]] = {
    "admin": ("seatrial-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kwok": ("seatrial-kwok", "system:masters"),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
    "front-proxy-client": ("front-proxy-client", None),
    "kube-proxy": ("system:kube-proxy", None),
}


@dataclass(frozen=True)
class Pki:
    directory: Path

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    @property
    def ca(self) -> Path:
        return self.cert("ca")

    @property
    def sa_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _issue(
    *,
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate | None,
    ca_key: ec.EllipticCurvePrivateKey,
    server_names: tuple[str, ...] = (),
    client: bool = False,
) -> x509.Certificate:
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject if ca_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )
    if ca_cert is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    if server_names:
        sans: list[x509.GeneralName] = []
        for n in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _fresh(path: Path) -> bool:
    if not path.exists():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.not_valid_after_utc - _now() > RENEW_BEFORE


def ensure_pki(directory: Path, *, server_names: tuple[str, ...]) -> Pki:
    """Create (or reuse) the CA, serving and client certs and the service-account key."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)
    stamp = directory / "names.json"
    wanted = sorted(set(server_names))
    current = json.loads(stamp.read_text()) if stamp.exists() else None
    names = [pki.ca, pki.cert("apiserver"), *(pki.cert(c) for c in CLIENTS), pki.sa_key]
    if current == wanted and all(_fresh(p) if p.suffix == ".crt" else p.exists() for p in names):
        return pki

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue(subject=_name("seatrial-local-ca"), key=ca_key, ca_cert=None, ca_key=ca_key)
    _write_key(pki.key("ca"), ca_key)
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue(
        subject=_name("kube-apiserver"),
        key=server_key,
        ca_cert=ca_cert,
        ca_key=ca_key,
        server_names=tuple(wanted),
    )
    _write_key(pki.key("apiserver"), server_key)
    pki.cert("apiserver").write_bytes(server.public_bytes(serialization.Encoding.PEM))

    for name, (cn, org) in CLIENTS.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(subject=_name(cn, org), key=key, ca_cert=ca_cert, ca_key=ca_key, client=True)
        _write_key(pki.key(name), key)
        pki.cert(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    sa = ec.generate_private_key(ec.SECP256R1())
    _write_key(pki.sa_key, sa)
    pki.sa_pub.write_bytes(
        sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    stamp.write_text(json.dumps(wanted))
    return pki


def write_kubeconfig(path: Path, *, pki: Pki, client: str, server: str, context: str) -> Path:
    """A kubeconfig that embeds nothing secret in the repo: it points at files under the PKI dir."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority": str(pki.ca)}}],
        "users": [
            {
                "name": f"{context}-{client}",
                "user": {
                    "client-certificate": str(pki.cert(client)),
                    "client-key": str(pki.key(client)),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": f"{context}-{client}"}}],
        "current-context": context,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def issue_node_certs(pki: Pki, *, node: str, ip: str) -> tuple[str, str]:
    """A real node's kubelet identity (``system:node:<name>`` for the Node authorizer) and its
    serving cert (so the API server can reach logs and exec on the node's IP). Cheap, so they are
    issued afresh on every bring-up and always match the current CA."""
    ca_key = serialization.load_pem_private_key(pki.key("ca").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    client_name, serving_name = f"node-{node}-client", f"node-{node}-serving"
    for name, subject, kwargs in (
        (client_name, _name(f"system:node:{node}", "system:nodes"), {"client": True}),
        (serving_name, _name(node), {"server_names": (node, ip)}),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(subject=subject, key=key, ca_cert=ca_cert, ca_key=ca_key, **kwargs)
        _write_key(pki.key(name), key)
        pki.cert(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return client_name, serving_name
