"""`S3Front`: a loopback proxy in front of moto that authorizes every S3 request against the bucket policy, as AWS.

moto stores bucket policies but does not enforce their conditions. The front decides each S3 request with
bucketwarden's evaluator, from a realistic principal and context, and answers a Deny with S3's 403 AccessDenied;
what passes goes to moto unchanged. IAM and STS pass through (AssumeRole answers are read to learn sessions).

- Who: the SigV4 access key (header or presigned query) is an assumed-role session seen in an AssumeRole answer,
  a configured root key, or whatever moto's GetCallerIdentity says it is (IAM users, moto's default key).
- From where: each network is its own port, so a client's source address (or VPC endpoint) is fixed by the
  endpoint it is given. The ``harness`` network is not enforced: it is the test's own view of the account.
- The bucket owner's root user may always Get, Put and Delete the bucket policy, whatever the policy says.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import http.client
import re
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self, cast
from xml.sax.saxutils import escape

from bucketwarden.errors import BucketWardenError
from bucketwarden.policy import PolicyDocument, Request, evaluate

from ._faults import _Handler, _Server, forward_request
from ._s3_operations import S3Call, resolve_s3_call

DEFAULT_ACCOUNT = "123456789012"
ROOT_ACCESS_KEY_ID = "ROOTACCESSKEYEXAMPLE"  # the account root's key in the emulated account
ROOT_POLICY_ACTIONS = frozenset({"s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"})
DENIED_SID_HEADER = "x-bucketwarden-denied-by"  # not AWS's: lets a test double name the deciding statement


@dataclass(frozen=True, slots=True)
class Network:
    """Where requests come from. ``source_ip`` None with a VPC endpoint: aws:SourceIp is absent (fact 12)."""

    name: str
    source_ip: str | None = None
    source_vpce: str | None = None
    source_vpc: str | None = None
    enforced: bool = True

    def context(self) -> dict[str, str]:
        keys = {"aws:SourceIp": self.source_ip, "aws:SourceVpce": self.source_vpce, "aws:SourceVpc": self.source_vpc}
        return {k: v for k, v in keys.items() if v is not None}


OFFICE = Network("office", source_ip="192.0.2.10")  # inside the seed's allowed CIDRs
AWS_NETWORK = Network("aws", source_ip="3.5.140.2")  # AWS-owned address space: AWS Backup's requests
NAT = Network("nat", source_ip="198.51.100.7")  # the cluster's NAT gateway: where the operator's requests come from
VPC_ENDPOINT = Network("vpce", source_vpce="vpce-0a1b2c3d4e5f60789", source_vpc="vpc-0a1b2c3d4e5f60789")
HARNESS = Network("harness", enforced=False)
DEFAULT_NETWORKS: tuple[Network, ...] = (OFFICE, AWS_NETWORK, NAT, VPC_ENDPOINT, HARNESS)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as IAM's global condition keys describe it."""

    user_id: str
    arn: str  # aws:PrincipalArn: for a role session, the ROLE's ARN with its path
    account: str
    kind: str  # aws:PrincipalType: Account, User, AssumedRole, Anonymous
    session_arn: str | None = None  # arn:aws:sts::ACCT:assumed-role/NAME/SESSION, for messages

    @property
    def is_root(self) -> bool:
        return self.kind == "Account"

    def context(self) -> dict[str, str]:
        if self.kind == "Anonymous":
            return {"aws:userid": "anonymous", "aws:PrincipalType": "Anonymous"}
        keys = {
            "aws:userid": self.user_id,
            "aws:PrincipalArn": self.arn,
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalType": self.kind,
        }
        if self.kind == "User":
            keys["aws:username"] = self.arn.rsplit("/", 1)[-1]
        return keys


ANONYMOUS = Principal("anonymous", "", "", "Anonymous")


@dataclass(frozen=True, slots=True)
class FrontDecision:
    """What the front decided for one S3 request."""

    at: float
    network: str
    api: str
    action: str
    resource: str
    bucket: str | None
    key: str | None
    user_id: str
    principal_arn: str
    decision: str  # Allow, NoMatch, ExplicitDeny, RootPolicyAccess, NotEnforced, Unevaluable
    sid: str | None
    status: int | None = None
    context: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)  # as evaluated

    @property
    def denied(self) -> bool:
        return self.decision == "ExplicitDeny"


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"


def access_key_of(headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[str | None, str, str]:
    """(access key id, s3:authType, s3:signatureversion): header or presigned query auth, SigV4 or SigV2."""
    authorization = headers.get("authorization", "")
    match = _CREDENTIAL.search(authorization)
    if match:
        return match.group(1), "REST-HEADER", "AWS4-HMAC-SHA256"
    if authorization.startswith("AWS "):
        return authorization[4:].split(":", 1)[0], "REST-HEADER", "AWS"
    credential = query.get("X-Amz-Credential")
    if credential:
        return credential.split("/", 1)[0], "REST-QUERY-STRING", "AWS4-HMAC-SHA256"
    if "AWSAccessKeyId" in query:
        return query["AWSAccessKeyId"], "REST-QUERY-STRING", "AWS"
    return None, "REST-HEADER", "AWS4-HMAC-SHA256"


def request_context(
    principal: Principal,
    network: Network,
    call: S3Call,
    auth_type: str,
    now: float,
    *,
    secure: bool = True,
    signature_version: str = "AWS4-HMAC-SHA256",
) -> dict[str, str]:
    """The request context AWS would evaluate the bucket policy with."""
    context = {**principal.context(), **network.context()}
    context["aws:SecureTransport"] = "true" if secure else "false"
    context["s3:authType"] = auth_type
    context["s3:signatureversion"] = signature_version
    stamp = datetime.datetime.fromtimestamp(now, datetime.UTC)
    context["aws:CurrentTime"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    context["aws:EpochTime"] = str(int(now))
    if call.action in ("s3:ListBucket", "s3:ListBucketVersions"):
        for name in ("prefix", "delimiter", "max-keys"):
            if name in call.query:
                context[f"s3:{name}"] = call.query[name]
    return context


class _FrontServer(_Server):
    front: S3Front
    network: Network


class _FrontHandler(_Handler):
    def _serve(self) -> None:
        server = cast(_FrontServer, self.server)
        server.front._handle(self, server.network)

    def handle(self) -> None:
        try:
            super().handle()
        finally:
            cast(_FrontServer, self.server).front._close_upstream_connection()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()


class S3Front:
    """The enforcing front: one loopback port per network, all forwarding to ``upstream`` (moto).

    ``endpoint(name)`` is the URL a client on that network uses. ``decisions()`` lists what was decided (the
    last ``log_size`` S3 requests); a Deny's answer also names the deciding statement in ``x-bucketwarden-denied-by``.
    Bucket policies are read from moto and cached until a policy write passes through any port of the front, so
    every write must go through it (the ``harness`` port, for the test's own setup).
    """

    def __init__(
        self,
        upstream: str,
        *,
        networks: Sequence[Network] = DEFAULT_NETWORKS,
        root_access_keys: Iterable[str] = (ROOT_ACCESS_KEY_ID,),
        account: str = DEFAULT_ACCOUNT,
        secure_transport: bool = True,
        log_size: int = 10_000,
        upstream_timeout: float = 30.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"upstream must be http://HOST:PORT, got {upstream!r}")
        if len({n.name for n in networks}) != len(networks):
            raise ValueError("network names must be unique")
        self.upstream = upstream
        self._upstream = (parsed.hostname, parsed.port)
        self.networks = {n.name: n for n in networks}
        self.account = account
        self.secure_transport = secure_transport
        self.upstream_timeout = upstream_timeout
        self._root_keys = frozenset(root_access_keys)
        self._lock = threading.Lock()
        self._principals: dict[str, Principal] = {}
        self._policies: dict[str, tuple[str | None, PolicyDocument | None]] = {}
        self._generation: dict[str, int] = {}
        self._decisions: deque[FrontDecision] = deque(maxlen=log_size)
        self._requests = 0
        self._own_seconds = 0.0  # handling time minus the time waiting for moto: what the front adds
        self._servers: dict[str, _FrontServer] = {}
        self._threads: list[threading.Thread] = []
        self._local = threading.local()

    # --- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._servers:
            raise RuntimeError("the S3 front is already running")
        for network in self.networks.values():
            server = _FrontServer(("127.0.0.1", 0), _FrontHandler)
            server.front, server.network = self, network
            self._servers[network.name] = server
            thread = threading.Thread(target=server.serve_forever, name=f"s3-front-{network.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        servers, self._servers = self._servers, {}
        for server in servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()

    def endpoint(self, network: str) -> str:
        """The URL a client on ``network`` (office, aws, nat, vpce, harness) talks to."""
        server = self._servers.get(network)
        if server is None:
            known = ", ".join(self.networks)
            raise KeyError(f"no running network {network!r} (networks: {known})")
        return f"http://127.0.0.1:{server.server_address[1]}"

    def reset(self) -> None:
        """Forget sessions, cached policies and decisions (after moto's own reset)."""
        with self._lock:
            self._principals.clear()
            self._policies.clear()
            self._generation.clear()
            self._decisions.clear()

    # --- what happened -----------------------------------------------------------------------------------

    def decisions(self) -> list[FrontDecision]:
        with self._lock:
            return list(self._decisions)

    def denials(self) -> list[FrontDecision]:
        return [d for d in self.decisions() if d.denied]

    def clear_decisions(self) -> None:
        with self._lock:
            self._decisions.clear()

    # --- who ---------------------------------------------------------------------------------------------

    def principal_for(self, access_key: str | None) -> Principal:
        """The principal an access key belongs to; moto's GetCallerIdentity is asked once per unknown key."""
        if access_key is None:
            return ANONYMOUS
        if access_key in self._root_keys:
            return Principal(self.account, f"arn:aws:iam::{self.account}:root", self.account, "Account")
        with self._lock:
            known = self._principals.get(access_key)
        if known is not None:
            return known
        principal = self._ask_moto(access_key)
        with self._lock:
            return self._principals.setdefault(access_key, principal)

    def _ask_moto(self, access_key: str) -> Principal:
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            # moto reads the key from the credential scope and does not check the signature.
            "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/20260101/us-east-1/sts/aws4_request, "
            "SignedHeaders=host, Signature=0",
        }
        status, payload = self._upstream_call("POST", "/", body, headers)
        if status != 200:
            return ANONYMOUS
        root = ET.fromstring(payload)
        user_id = root.findtext(f".//{_STS_NS}UserId") or access_key
        arn = root.findtext(f".//{_STS_NS}Arn") or ""
        account = root.findtext(f".//{_STS_NS}Account") or self.account
        if ":assumed-role/" in arn:  # a session whose AssumeRole we did not see: the role's path is unknown
            name = arn.split(":assumed-role/", 1)[1].split("/", 1)[0]
            return Principal(user_id, f"arn:aws:iam::{account}:role/{name}", account, "AssumedRole", arn)
        return Principal(user_id, arn, account, "User")

    def _learn_session(self, form: Mapping[str, str], payload: bytes) -> None:
        """Remember the session an AssumeRole answer issued: its key, RoleId:session and the role's ARN (path)."""
        with contextlib.suppress(ET.ParseError):
            root = ET.fromstring(payload)
            key = root.findtext(f".//{_STS_NS}AccessKeyId")
            user_id = root.findtext(f".//{_STS_NS}AssumedRoleId")
            session_arn = root.findtext(f".//{_STS_NS}Arn")
            role_arn = form.get("RoleArn")
            if key and user_id and role_arn:
                account = role_arn.split(":")[4]
                principal = Principal(user_id, role_arn, account, "AssumedRole", session_arn)
                with self._lock:
                    self._principals[key] = principal

    # --- the bucket policy -------------------------------------------------------------------------------

    def _policy(self, bucket: str) -> tuple[str | None, PolicyDocument | None]:
        with self._lock:
            hit = self._policies.get(bucket)
            generation = self._generation.get(bucket, 0)
        if hit is not None:
            return hit
        status, payload = self._upstream_call("GET", f"/{urllib.parse.quote(bucket)}?policy", b"", {})
        text = payload.decode("utf-8", "replace") if status == 200 else None
        try:
            doc = PolicyDocument.parse(text) if text else None
        except BucketWardenError:
            doc = None  # moto stores invalid JSON that AWS would have refused; nothing to enforce
        entry = (text, doc)
        with self._lock:
            if self._generation.get(bucket, 0) == generation:  # no write passed meanwhile
                self._policies[bucket] = entry
        return entry

    def _forget_policy(self, bucket: str | None) -> None:
        with self._lock:
            if bucket is None:
                self._policies.clear()
            else:
                self._policies.pop(bucket, None)
                self._generation[bucket] = self._generation.get(bucket, 0) + 1

    def _close_upstream_connection(self) -> None:
        """Close this thread's kept-alive connection for the front's own calls as its client connection ends: moto
        keeps connections open, and one dropped with the thread would be closed only by the collector (a warning)."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _upstream_call(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        for attempt in (1, 2):
            if connection is None:
                connection = http.client.HTTPConnection(*self._upstream, timeout=self.upstream_timeout)
                self._local.connection = connection
            try:
                connection.request(method, path, body=body or None, headers=dict(headers))
                response = connection.getresponse()
                payload = response.read()
                if response.will_close:
                    connection.close()
                    self._local.connection = None
                return response.status, payload
            except (http.client.HTTPException, OSError):
                connection.close()
                self._local.connection = connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # --- the decision ------------------------------------------------------------------------------------

    def decide(
        self,
        network: Network,
        principal: Principal,
        call: S3Call,
        auth_type: str = "REST-HEADER",
        signature_version: str = "AWS4-HMAC-SHA256",
    ) -> FrontDecision:
        """Authorize one S3 call as AWS would, from the bucket policy alone (identity policies are not modelled)."""
        now = time.time()

        context: dict[str, str] = {}

        def verdict(decision: str, sid: str | None = None) -> FrontDecision:
            return FrontDecision(
                time.monotonic(),
                network.name,
                call.api,
                call.action,
                call.resource,
                call.bucket,
                call.key,
                principal.user_id,
                principal.arn,
                decision,
                sid,
                context=context,
            )

        if not network.enforced:
            return verdict("NotEnforced")
        if call.bucket is None or call.api == "CreateBucket":
            return verdict("NoMatch")  # ListBuckets and CreateBucket are not governed by a bucket policy
        _text, doc = self._policy(call.bucket)
        if doc is None:
            return verdict("NoMatch")
        context.update(
            request_context(
                principal,
                network,
                call,
                auth_type,
                now,
                secure=self.secure_transport,
                signature_version=signature_version,
            )
        )
        try:
            evaluation = evaluate(doc, Request.of(call.action, call.resource, context))
        except BucketWardenError:
            return verdict("Unevaluable")
        if evaluation.denied and principal.is_root and call.action in ROOT_POLICY_ACTIONS:
            return verdict("RootPolicyAccess", evaluation.label)
        return verdict(evaluation.decision, evaluation.label)

    def cost(self) -> tuple[int, float]:
        """(requests handled, seconds the front itself spent on them: handling minus waiting for moto)."""
        with self._lock:
            return self._requests, self._own_seconds

    def _handle(self, handler: _Handler, network: Network) -> None:
        started = time.perf_counter()
        waited = self._handle_request(handler, network)
        with self._lock:
            self._requests += 1
            self._own_seconds += time.perf_counter() - started - waited

    def _handle_request(self, handler: _Handler, network: Network) -> float:
        """Answer one request; returns the seconds spent waiting for moto's answer."""
        body = handler.read_body()
        headers = {name.lower(): value for name, value in handler.headers.items()}
        service = _service_of(headers, body)
        if service != "s3":
            return self._pass_through(handler, body, service)
        call = resolve_s3_call(handler.command, handler.path)
        key, auth_type, signature_version = access_key_of(headers, call.query)
        principal = self.principal_for(key)
        decision = self.decide(network, principal, call, auth_type, signature_version)
        if decision.denied:
            self._deny(handler, decision, principal)
            return 0.0
        forwarding = time.perf_counter()
        try:
            status, response_headers, payload = forward_request(
                handler, self._upstream, body, timeout=self.upstream_timeout
            )
        except (OSError, http.client.HTTPException):
            self._log(decision, None)
            handler.reset()
            return time.perf_counter() - forwarding
        waited = time.perf_counter() - forwarding
        if call.api in ("PutBucketPolicy", "DeleteBucketPolicy", "DeleteBucket", "CreateBucket"):
            self._forget_policy(call.bucket)
        self._log(decision, status)
        handler.reply(status, response_headers, payload)
        return waited

    def _pass_through(self, handler: _Handler, body: bytes, service: str) -> float:
        forwarding = time.perf_counter()
        try:
            status, response_headers, payload = forward_request(
                handler, self._upstream, body, timeout=self.upstream_timeout
            )
        except (OSError, http.client.HTTPException):
            handler.reset()
            return time.perf_counter() - forwarding
        waited = time.perf_counter() - forwarding
        if service == "sts" and status == 200:
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
            if form.get("Action") == "AssumeRole":
                self._learn_session(form, payload)
        elif handler.path.startswith("/moto-api/reset"):
            self.reset()
        handler.reply(status, response_headers, payload)
        return waited

    def _deny(self, handler: _Handler, decision: FrontDecision, principal: Principal) -> None:
        who = principal.session_arn or principal.arn or "anonymous"
        message = (
            f"User: {who} is not authorized to perform: {decision.action} on resource: "
            f'"{decision.resource}" with an explicit deny in a resource-based policy'
        )
        request_id = hashlib.sha256(f"{decision.at}{decision.resource}".encode()).hexdigest()[:16].upper()
        payload = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>AccessDenied</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>bucketwarden-s3-front</HostId></Error>"
        ).encode()
        self._log(decision, 403)
        response_headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
        if decision.sid:
            response_headers.append((DENIED_SID_HEADER, decision.sid))
        handler.reply(403, response_headers, payload)

    def _log(self, decision: FrontDecision, status: int | None) -> None:
        logged = dataclasses.replace(decision, status=status)
        with self._lock:
            self._decisions.append(logged)


_SCOPE = re.compile(r"Credential=[^/,\s]+/[0-9]{8}/[^/]+/([a-z0-9-]+)/aws4_request")


def _service_of(headers: Mapping[str, str], body: bytes) -> str:
    match = _SCOPE.search(headers.get("authorization", ""))
    if match:
        return match.group(1)
    if b"Action=" in body:
        return "sts" if b"Version=2011-06-15" in body else "iam"
    return "s3"
