"""Who is asking, and may they: the API's TLS material, bearer tokens and roles.

kube-apiserver serves HTTPS with a certificate its cluster CA signed, and
every request carries a credential. kbox does the same with the smallest
set of parts that gives real tools the real answers:

- `Credentials`: a cluster CA and a serving certificate for 127.0.0.1 /
  localhost / kubernetes.default..., made at first boot and kept in one
  folder (the cluster's state folder), plus two static tokens: an admin one
  (group system:masters, everything) and a read-only one (the `view` role:
  get, list and watch, no secrets, no exec);
- ServiceAccount tokens (the token controller's Secrets, and the JWTs a
  TokenRequest returns — `kubectl create token`) authenticate as
  `system:serviceaccount:<ns>:<name>`; kbox has no RBAC objects, so, as a
  fresh cluster's default ServiceAccount, they may read discovery only;
- `request_info` splits a request into verb, resource, subresource,
  namespace and name as kube-apiserver's RequestInfo does, and `authorize`
  raises the Forbidden Status RBAC would, word for word
  (`pods is forbidden: User "x" cannot list resource "pods" in API group ""
  in the namespace "default"`). No token at all, or an unknown one, is 401.
"""

from __future__ import annotations

import datetime
import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbox.api import errors

ADMIN_USER = "kbox-admin"
VIEWER_USER = "kbox-viewer"
MASTERS = "system:masters"
VIEWERS = "kbox:viewers"
AUTHENTICATED = "system:authenticated"

# what any authenticated user may read (kube's system:discovery, system:basic-user and
# system:public-info-viewer roles)
DISCOVERY_PATHS = ("/api", "/apis", "/openapi", "/version", "/healthz", "/livez", "/readyz")
# answered without any credential (kube's anonymous access to public info)
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")

# the `view` role reads everything but these (secrets hold credentials; exec and friends
# run commands; kube's view role leaves them to edit and admin)
VIEW_VERBS = frozenset({"get", "list", "watch"})
VIEW_HIDDEN = frozenset({"secrets", "pods/exec", "pods/attach", "pods/portforward",
                         "services/proxy", "pods/proxy", "nodes/proxy"})

SERVING_HOSTS = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local")
SERVING_IPS = ("127.0.0.1", "::1", "10.96.0.1")


# ---- identities --------------------------------------------------------------------------

@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return MASTERS in self.groups

    @property
    def is_viewer(self) -> bool:
        return VIEWERS in self.groups


# ---- TLS and static tokens ------------------------------------------------------------------

@dataclass
class Credentials:
    """A cluster's CA, serving certificate and static tokens, as files in `directory`."""
    directory: Path
    admin_token: str
    viewer_token: str
    ca_pem: bytes = field(repr=False, default=b"")

    @property
    def ca_path(self) -> str:
        return str(self.directory / "ca.crt")

    @property
    def cert_path(self) -> str:
        return str(self.directory / "apiserver.crt")

    @property
    def key_path(self) -> str:
        return str(self.directory / "apiserver.key")

    @classmethod
    def ensure(cls, directory: str | Path, *, now: datetime.datetime | None = None) -> "Credentials":
        """Load the credentials in `directory`, making whatever is missing or expired (a new
        CA only when there is none: kubeconfigs that trust it keep working)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        now = now or datetime.datetime.now(datetime.timezone.utc)
        ca_cert, ca_key = _load_pair(d / "ca.crt", d / "ca.key")
        if ca_cert is None or ca_cert.not_valid_after_utc <= now + datetime.timedelta(days=1):
            ca_cert, ca_key = _make_ca(now)
            _write_pair(d / "ca.crt", d / "ca.key", ca_cert, ca_key)
            (d / "apiserver.crt").unlink(missing_ok=True)
        cert, _ = _load_pair(d / "apiserver.crt", d / "apiserver.key")
        if cert is None or cert.issuer != ca_cert.subject \
                or cert.not_valid_after_utc <= now + datetime.timedelta(days=1):
            cert, key = _make_serving(ca_cert, ca_key, now)
            _write_pair(d / "apiserver.crt", d / "apiserver.key", cert, key)
        tokens_path = d / "tokens.json"
        try:
            tokens = json.loads(tokens_path.read_text())
            admin, viewer = tokens["admin"], tokens["viewer"]
        except (OSError, ValueError, KeyError, TypeError):
            admin, viewer = _new_token(), _new_token()
            _write_private(tokens_path, json.dumps({"admin": admin, "viewer": viewer}).encode())
        if not (d / "sa.key").exists():
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import ec
            key = ec.generate_private_key(ec.SECP256R1())
            _write_private(d / "sa.key", key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
        from cryptography.hazmat.primitives import serialization
        return cls(d, admin, viewer, ca_cert.public_bytes(serialization.Encoding.PEM))

    def token_signer(self) -> "TokenSigner":
        from cryptography.hazmat.primitives import serialization
        key = serialization.load_pem_private_key((self.directory / "sa.key").read_bytes(), password=None)
        return TokenSigner(key)


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _load_pair(cert_path: Path, key_path: Path) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None, None
    return cert, key


def _write_pair(cert_path: Path, key_path: Path, cert: Any, key: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_ca(now: datetime.datetime) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kbox-ca")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _make_serving(ca_cert: Any, ca_key: Any, now: datetime.datetime) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(h) for h in SERVING_HOSTS]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


# ---- bound ServiceAccount tokens (TokenRequest) --------------------------------------------------

ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = (ISSUER,)
MIN_TOKEN_SECONDS = 600            # kube-apiserver refuses shorter TokenRequests


def _b64url(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and checks the JWTs a TokenRequest returns (ES256, as kube's bound tokens are
    JWTs signed with the service-account key): sub system:serviceaccount:NS:NAME, the
    account's uid, audiences and expiry in the claims."""

    def __init__(self, key: Any) -> None:
        self.key = key
        from cryptography.hazmat.primitives import hashes, serialization
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        digest = hashes.Hash(hashes.SHA256())
        digest.update(der)
        self.kid = _b64url(digest.finalize())

    def issue(self, namespace: str, name: str, uid: str, *, audiences: list[str], now: float,
              seconds: int, bound: dict[str, Any] | None = None) -> tuple[str, int]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        exp = int(now) + seconds
        claims: dict[str, Any] = {
            "aud": audiences, "exp": exp, "iat": int(now), "nbf": int(now), "iss": ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}}
        if bound and bound.get("kind") and bound.get("name"):
            claims["kubernetes.io"][bound["kind"].lower()] = {"name": bound["name"],
                                                              "uid": bound.get("uid", "")}
        head = _b64url(json.dumps({"alg": "ES256", "kid": self.kid}, separators=(",", ":")).encode())
        body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        der = self.key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s_ = decode_dss_signature(der)
        return f"{head}.{body}.{_b64url(r.to_bytes(32, 'big') + s_.to_bytes(32, 'big'))}", exp

    def verify(self, token: str, now: float) -> dict[str, Any] | None:
        """The claims of a token this signer made that has not expired and is meant for the
        API (one of API_AUDIENCES); None otherwise."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            sig = _unb64url(parts[2])
            if len(sig) != 64:
                return None
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            self.key.public_key().verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
            claims = json.loads(_unb64url(parts[1]))
        except (InvalidSignature, ValueError, TypeError):
            return None
        if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
            return None
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            return None
        aud = claims.get("aud") or []
        if not any(a in API_AUDIENCES for a in (aud if isinstance(aud, list) else [aud])):
            return None
        return claims


# ---- authentication ---------------------------------------------------------------------------

class Authenticator:
    """Bearer token → UserInfo, or 401. `find_service_account(token)` gives (namespace, name)
    of the ServiceAccount a token belongs to (the token controller's index), or None."""

    def __init__(self, credentials: Credentials,
                 find_service_account: Callable[[str], tuple[str, str] | None] | None = None, *,
                 signer: TokenSigner | None = None,
                 account_uid: Callable[[str, str], str | None] | None = None,
                 now: Callable[[], float] | None = None) -> None:
        self.credentials = credentials
        self.find_service_account = find_service_account or (lambda token: None)
        # bound tokens: valid while unexpired and while their account (same uid) exists
        self.signer = signer
        self.account_uid = account_uid or (lambda ns, name: None)
        import time as _time
        self.now = now or _time.time

    def __call__(self, headers: Mapping[str, str], path: str = "") -> UserInfo | None:
        """None: no credential on a public path (health, version)."""
        auth = headers.get("authorization") or ""
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if not auth:
            if path in PUBLIC_PATHS:
                return None
            raise errors.unauthorized()
        if scheme.lower() != "bearer" or not token:
            raise errors.unauthorized()
        if hmac.compare_digest(token, self.credentials.admin_token):
            return UserInfo(ADMIN_USER, (MASTERS, AUTHENTICATED))
        if hmac.compare_digest(token, self.credentials.viewer_token):
            return UserInfo(VIEWER_USER, (VIEWERS, AUTHENTICATED))
        found = self.find_service_account(token)
        if found is None and self.signer is not None and token.count(".") == 2:
            claims = self.signer.verify(token, self.now())
            account = ((claims or {}).get("kubernetes.io") or {})
            sa = account.get("serviceaccount") or {}
            ns, name = account.get("namespace", ""), sa.get("name", "")
            if claims and ns and name and self.account_uid(ns, name) == sa.get("uid"):
                found = (ns, name)
        if found is not None:
            ns, name = found
            return UserInfo(f"system:serviceaccount:{ns}:{name}",
                            ("system:serviceaccounts", f"system:serviceaccounts:{ns}", AUTHENTICATED))
        raise errors.unauthorized()


# ---- request attributes and authorization --------------------------------------------------------

@dataclass(frozen=True)
class RequestInfo:
    """What kube-apiserver's RequestInfoFactory makes of a request."""
    path: str
    verb: str
    is_resource: bool = False
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


_NAMESPACE_SUBRESOURCES = ("status", "finalize")


def request_info(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    method = method.upper()
    parts = [p for p in path.split("/") if p]
    verb_by_method = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update",
                      "PATCH": "patch", "DELETE": "delete"}
    if not parts or parts[0] not in ("api", "apis"):
        return RequestInfo(path, verb_by_method.get(method, method.lower()))
    if parts[0] == "api":
        group, rest = "", parts[1:]
    else:
        group, rest = (parts[1] if len(parts) > 1 else ""), parts[2:]
    if not rest:                                  # /api, /apis, /apis/apps: discovery
        return RequestInfo(path, verb_by_method.get(method, method.lower()))
    version, rest = rest[0], rest[1:]
    if not rest:                                  # /api/v1, /apis/apps/v1: discovery
        return RequestInfo(path, verb_by_method.get(method, method.lower()), group=group,
                           version=version)
    verb = verb_by_method.get(method, method.lower())
    watch = False
    if rest[0] == "watch":                        # the deprecated /watch/ paths
        watch, rest = True, rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if resource == "namespaces" and name and not namespace:
        namespace = name
    if watch or (verb == "get" and not name and str(query.get("watch", "")).lower() in ("1", "true")):
        verb = "watch"
    elif verb == "get" and not name:
        verb = "list"
    elif verb == "delete" and not name:
        verb = "deletecollection"
    return RequestInfo(path, verb, True, group, version, resource, sub, namespace, name)


def allowed(user: UserInfo, info: RequestInfo) -> bool:
    if user.is_admin:
        return True
    if not info.is_resource:
        return info.verb == "get" and any(info.path == p or info.path.startswith(p + "/")
                                          for p in DISCOVERY_PATHS) \
            or (user.is_viewer and info.verb == "get" and info.path == "/kbox/v1/status")
    if user.is_viewer:
        return info.verb in VIEW_VERBS and info.resource not in VIEW_HIDDEN \
            and info.full_resource not in VIEW_HIDDEN
    return False


def authorize(user: UserInfo | None, info: RequestInfo) -> None:
    """Raise kube's Forbidden Status unless `user` may make the request."""
    if user is None or allowed(user, info):
        return
    who = f'User "{user.name}"'
    if not info.is_resource:
        raise errors.forbidden(f'forbidden: {who} cannot {info.verb} path "{info.path}"')
    where = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
    # kube names the group-qualified resource (deployments.apps), without the subresource
    qualified = f"{info.resource}.{info.group}" if info.group else info.resource
    subject = f'{qualified} "{info.name}"' if info.name else qualified
    raise errors.forbidden(
        f'{subject} is forbidden: {who} cannot {info.verb} resource "{info.full_resource}" '
        f'in API group "{info.group}" {where}', name=info.name or None,
        resource=info.resource, group=info.group)


def token_request(client: Any, signer: TokenSigner, now: float, namespace: str, name: str,
                  body: Any) -> dict[str, Any]:
    """POST serviceaccounts/NAME/token: a TokenRequest answered with a signed token, as
    kube-apiserver answers `kubectl create token` (default one hour, at least ten minutes)."""
    from kbox.api.kinds.common import invalid
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be a TokenRequest object")
    sa = client.get("serviceaccounts", name, namespace)          # 404 as kube says it
    spec = dict(body.get("spec") or {})
    seconds = spec.get("expirationSeconds")
    if seconds is None:
        seconds = 3600
    causes = []
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        causes.append(invalid("spec.expirationSeconds", seconds, "must be an integer"))
    elif seconds < MIN_TOKEN_SECONDS:
        causes.append(invalid("spec.expirationSeconds", seconds,
                              "may not specify a duration less than 10 minutes"))
    elif seconds > 1 << 32:
        causes.append(invalid("spec.expirationSeconds", seconds,
                              "may not specify a duration larger than 2^32 seconds"))
    audiences = spec.get("audiences") or list(API_AUDIENCES)
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        causes.append(invalid("spec.audiences", audiences, "must be a list of strings"))
    if causes:
        raise errors.invalid("TokenRequest", name, causes, group="authentication.k8s.io")
    token, exp = signer.issue(namespace, name, sa["metadata"].get("uid", ""), audiences=audiences,
                              now=now, seconds=seconds, bound=spec.get("boundObjectRef"))
    from kbox.node.agent import iso_time
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": iso_time(now)},
            "spec": {**spec, "audiences": audiences, "expirationSeconds": seconds},
            "status": {"token": token, "expirationTimestamp": iso_time(exp)}}
