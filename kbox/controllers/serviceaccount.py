"""ServiceAccounts and their token Secrets.

Two controllers, as in kube-controller-manager:

- `ServiceAccountController` ("serviceaccount-controller") keeps a
  ServiceAccount named `default` in every namespace that is not being
  deleted, and recreates it when someone deletes it.
- `TokenController` ("token-controller") gives every ServiceAccount a Secret
  of type kubernetes.io/service-account-token named `<sa>-token-<5 chars>`
  holding a random bearer token, the namespace and the (empty) CA bundle,
  annotated with the account's name and uid and listed in the account's
  `secrets`. Token Secrets whose account is gone (or was replaced) are
  deleted, and so are an account's tokens when the account goes.

`find_token(client, token)` maps a bearer token back to its account: the
API's authenticator uses it. As kube's legacy token authenticator, a token
counts only while its Secret is not being deleted and the account it names
still exists with the uid the Secret recorded (so a token outliving its
account for a moment, or one for a re-created account of the same name,
authenticates nobody). `TokenController.find_token(token)` answers the same
from the informer caches in O(1), for a per-request authenticator.
"""

from __future__ import annotations

import base64
import logging
import random
import secrets
from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, deep_copy, key_of, split_key
from kbox.clock import Clock
from kbox.controllers.base import Controller
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory

log = logging.getLogger(__name__)

TOKEN_TYPE = "kubernetes.io/service-account-token"
TOKEN_INDEX = "sa-token"
ANN_NAME = "kubernetes.io/service-account.name"
ANN_UID = "kubernetes.io/service-account.uid"
DEFAULT_SA = "default"
# the alphabet apimachinery uses for generated name suffixes (no vowels, no look-alikes)
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def token_index(secret: Obj) -> list[str]:
    """Informer index: the base64 token of a service-account token Secret."""
    if secret.get("type") != TOKEN_TYPE:
        return []
    tok = (secret.get("data") or {}).get("token")
    return [tok] if tok else []


def _account_of(secret: Obj, get_sa: Any) -> tuple[str, str] | None:
    """(namespace, name) when `secret` is a live token of an existing account, else None."""
    m = secret["metadata"]
    if secret.get("type") != TOKEN_TYPE or m.get("deletionTimestamp"):
        return None
    ann = m.get("annotations") or {}
    ns, name = m.get("namespace") or "default", ann.get(ANN_NAME)
    if not name:
        return None
    sa = get_sa(ns, name)
    if sa is None or sa["metadata"].get("deletionTimestamp"):
        return None
    if ann.get(ANN_UID) and sa["metadata"].get("uid") != ann[ANN_UID]:
        return None
    return ns, name


def find_token(client: Client, token: str) -> tuple[str, str] | None:
    """(namespace, service account name) owning bearer `token`, or None."""
    if not token:
        return None
    want = _b64(token)

    def get_sa(ns: str, name: str) -> Obj | None:
        try:
            return client.get("serviceaccounts", name, ns)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
    for s in client.list("secrets")["items"]:
        if s.get("type") == TOKEN_TYPE and secrets.compare_digest(
                ((s.get("data") or {}).get("token") or "").encode(), want.encode()):
            return _account_of(s, get_sa)
    return None


class ServiceAccountController(Controller):
    name = "serviceaccount-controller"

    def __init__(self, client: Client, informers: InformerFactory, clock: Clock, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock, recorder=recorder)
        self.ns_informer = informers.informer("namespaces")
        self.sa_informer = informers.informer("serviceaccounts")
        self.ns_informer.add_handler(lambda ns: self.enqueue(ns["metadata"]["name"]),
                                     lambda o, n: self.enqueue(n["metadata"]["name"]), None)
        self.sa_informer.add_handler(None, None, self._sa_deleted)

    def _sa_deleted(self, sa: Obj) -> None:
        if sa["metadata"].get("name") == DEFAULT_SA:
            self.enqueue(sa["metadata"].get("namespace") or "")

    def sync(self, key: str) -> None:
        ns = self.ns_informer.get(key)
        if ns is None or ns["metadata"].get("deletionTimestamp"):
            return
        if self.sa_informer.get(f"{key}/{DEFAULT_SA}") is not None:
            return
        try:
            self.client.create("serviceaccounts", {
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_SA, "namespace": key}}, key)
        except ApiError as e:
            # 409: it exists (our cache is behind); 403/404: the namespace is going away
            if e.code not in (403, 404, 409):
                raise


class TokenController(Controller):
    name = "token-controller"

    def __init__(self, client: Client, informers: InformerFactory, clock: Clock, *,
                 recorder: EventRecorder | None = None, rng: random.Random | None = None) -> None:
        super().__init__(client, informers, clock, recorder=recorder)
        self.rng = rng or random.SystemRandom()
        self.sa_informer = informers.informer("serviceaccounts")
        self.secret_informer = informers.informer("secrets")
        self.secret_informer.add_index(TOKEN_INDEX, token_index)
        self.sa_informer.add_handler(self._sa, lambda o, n: self._sa(n), self._sa)
        self.secret_informer.add_handler(self._secret, lambda o, n: self._secret(n), self._secret)

    def _sa(self, sa: Obj) -> None:
        self.enqueue("sa:" + key_of(sa))

    def _secret(self, s: Obj) -> None:
        if s.get("type") != TOKEN_TYPE:
            return
        ann = s["metadata"].get("annotations") or {}
        self.enqueue("secret:" + key_of(s))
        if ann.get(ANN_NAME):
            self.enqueue(f"sa:{s['metadata'].get('namespace')}/{ann[ANN_NAME]}")

    def find_token(self, token: str) -> tuple[str, str] | None:
        """`find_token` from the informer caches: no API call per request."""
        if not token:
            return None
        for s in self.secret_informer.by_index(TOKEN_INDEX, _b64(token)):
            found = _account_of(s, lambda ns, name: self.sa_informer.get(f"{ns}/{name}"))
            if found is not None:
                return found
        return None

    def sync(self, key: str) -> None:
        kind, _, rest = key.partition(":")
        if kind == "sa":
            self._sync_sa(rest)
        elif kind == "secret":
            self._sync_secret(rest)

    def _tokens_of(self, ns: str, sa_name: str, uid: str | None = None) -> list[Obj]:
        out = []
        for s in self.secret_informer.by_index("namespace", ns):
            ann = s["metadata"].get("annotations") or {}
            if s.get("type") == TOKEN_TYPE and ann.get(ANN_NAME) == sa_name and \
                    (uid is None or ann.get(ANN_UID) == uid):
                out.append(s)
        return out

    def _sync_sa(self, key: str) -> None:
        ns, name = split_key(key)
        sa = self.sa_informer.get(key)
        if sa is None:
            for s in self._tokens_of(ns or "", name):
                self._delete_secret(s)
            return
        if sa["metadata"].get("deletionTimestamp"):
            return
        uid = sa["metadata"].get("uid")
        referenced = {r.get("name") for r in sa.get("secrets") or []}
        tokens = self._tokens_of(ns or "", name, uid)
        if any(t["metadata"]["name"] in referenced for t in tokens):
            return
        if self._references_live_token(ns or "", name, uid, referenced - {t["metadata"]["name"] for t in tokens}):
            return      # a token we just made, not in the secret cache yet: never make a second
        if tokens:
            secret_name = min(t["metadata"]["name"] for t in tokens)
        else:
            try:
                secret_name = self._create_token(sa)
            except ApiError as e:
                if e.code in (403, 404):
                    return   # the namespace is being deleted: no new tokens in it
                raise
        self._reference(sa, secret_name)

    def _references_live_token(self, ns: str, sa_name: str, uid: str | None, names: set[str]) -> bool:
        for secret_name in sorted(n for n in names if n):
            try:
                s = self.client.get("secrets", secret_name, ns)
            except ApiError as e:
                if e.code == 404:
                    continue
                raise
            ann = s["metadata"].get("annotations") or {}
            if s.get("type") == TOKEN_TYPE and ann.get(ANN_NAME) == sa_name and ann.get(ANN_UID) == uid:
                return True
        return False

    def _create_token(self, sa: Obj) -> str:
        m = sa["metadata"]
        ns = m.get("namespace") or "default"
        for _ in range(5):
            suffix = "".join(self.rng.choice(_ALPHABET) for _ in range(5))
            secret = {
                "apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
                "metadata": {"name": f"{m['name']}-token-{suffix}", "namespace": ns,
                             "annotations": {ANN_NAME: m["name"], ANN_UID: m.get("uid")}},
                "data": {"token": _b64(secrets.token_urlsafe(32)), "namespace": _b64(ns),
                         "ca.crt": ""},
            }
            try:
                return self.client.create("secrets", secret, ns)["metadata"]["name"]
            except ApiError as e:
                if e.code != 409:
                    raise
        raise ApiError(409, "AlreadyExists", f"could not pick a free token name for {key_of(sa)}")

    def _reference(self, sa: Obj, secret_name: str) -> None:
        cur = sa
        for attempt in range(3):
            new = deep_copy(cur)
            refs: list[dict[str, Any]] = list(new.get("secrets") or [])
            if any(r.get("name") == secret_name for r in refs):
                return
            refs.append({"name": secret_name})
            new["secrets"] = refs
            try:
                self.client.update("serviceaccounts", new, sa["metadata"].get("namespace"))
                return
            except ApiError as e:
                if e.code == 404:
                    return
                if e.code != 409 or attempt == 2:
                    raise
                cur = self.client.get("serviceaccounts", sa["metadata"]["name"],
                                      sa["metadata"].get("namespace"))
                if cur["metadata"].get("uid") != sa["metadata"].get("uid"):
                    return

    def _sync_secret(self, key: str) -> None:
        s = self.secret_informer.get(key)
        if s is None or s.get("type") != TOKEN_TYPE:
            return
        ann = s["metadata"].get("annotations") or {}
        if not ann.get(ANN_NAME):
            return   # not bound to an account: not ours to judge
        ns = s["metadata"].get("namespace")
        sa = self.sa_informer.get(f"{ns}/{ann.get(ANN_NAME, '')}")
        if sa is not None and sa["metadata"].get("uid") == ann.get(ANN_UID):
            return
        # the cache may be behind a just-created account: ask the API before deleting
        try:
            live = self.client.get("serviceaccounts", ann.get(ANN_NAME, ""), ns)
            if live["metadata"].get("uid") == ann.get(ANN_UID):
                return
        except ApiError as e:
            if e.code != 404:
                raise
        self._delete_secret(s)

    def _delete_secret(self, s: Obj) -> None:
        try:
            self.client.delete("secrets", s["metadata"]["name"], s["metadata"].get("namespace"),
                               preconditions={"uid": s["metadata"].get("uid")})
        except ApiError as e:
            if e.code not in (404, 409):
                raise


__all__ = ["ServiceAccountController", "TokenController", "find_token", "TOKEN_TYPE"]
