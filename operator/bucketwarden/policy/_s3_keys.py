"""Which Amazon S3 condition keys each S3 action's request carries: data, dated, with its source.

Source: Service Authorization Reference, "Actions, resources, and condition keys for Amazon S3", the
"Condition keys" column of the Actions table, as read on 2026-12-06. A service-specific key is present only in
requests for actions that list it (IAM User Guide, "Policy variables", "Request information with no value", and
AWS-SEMANTICS fact 24): for any other action the key is ABSENT, so ...IfExists is true, Null is true and a negated
operator is true. Only the actions bucketwarden models (AWS Backup's managed policies, the operator's calls, a
client's reads and writes) are listed; an action not listed here keeps every key unknown (never assumed absent).
"""

from __future__ import annotations

from functools import lru_cache

# Keys the Reference lists for (nearly) every S3 action: request signing, TLS, the bucket's account, access points.
COMMON_KEYS: frozenset[str] = frozenset(
    {
        "s3:accessgrantsinstancearn",
        "s3:accesspointnetworkorigin",
        "s3:authtype",
        "s3:dataaccesspointaccount",
        "s3:dataaccesspointarn",
        "s3:resourceaccount",
        "s3:signatureage",
        "s3:signatureversion",
        "s3:tlsversion",
        "s3:x-amz-content-sha256",
    }
)
_LIST = frozenset({"s3:delimiter", "s3:max-keys", "s3:prefix"})
_EXISTING_TAG = frozenset({"s3:existingobjecttag/"})  # a family: s3:ExistingObjectTag/<key>
_VERSION = frozenset({"s3:versionid"})
_ACL_WRITE = frozenset(
    {
        "s3:x-amz-acl",
        "s3:x-amz-grant-full-control",
        "s3:x-amz-grant-read",
        "s3:x-amz-grant-read-acp",
        "s3:x-amz-grant-write",
        "s3:x-amz-grant-write-acp",
    }
)
_REQUEST_TAGS = frozenset({"s3:requestobjecttag/", "s3:requestobjecttagkeys"})
_PUT_OBJECT = frozenset(
    {
        *_ACL_WRITE,
        *_REQUEST_TAGS,
        "s3:object-lock-legal-hold",
        "s3:object-lock-mode",
        "s3:object-lock-remaining-retention-days",
        "s3:object-lock-retain-until-date",
        "s3:x-amz-copy-source",
        "s3:x-amz-metadata-directive",
        "s3:x-amz-server-side-encryption",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "s3:x-amz-server-side-encryption-customer-algorithm",
        "s3:x-amz-storage-class",
        "s3:x-amz-website-redirect-location",
    }
)

# Action (lowercased, without "s3:") -> its keys beyond COMMON_KEYS. Family keys end in "/".
ACTION_KEYS: dict[str, frozenset[str]] = {
    # objects
    "getobject": _EXISTING_TAG,
    "getobjectversion": _EXISTING_TAG | _VERSION,
    "getobjectacl": _EXISTING_TAG,
    "getobjectversionacl": _EXISTING_TAG | _VERSION,
    "getobjecttagging": _EXISTING_TAG,
    "getobjectversiontagging": _EXISTING_TAG | _VERSION,
    "putobject": _PUT_OBJECT,
    "putobjectacl": _EXISTING_TAG | _ACL_WRITE,
    "putobjectversionacl": _EXISTING_TAG | _ACL_WRITE | _VERSION,
    "putobjecttagging": _EXISTING_TAG | _REQUEST_TAGS,
    "deleteobject": frozenset(),
    "listmultipartuploadparts": frozenset(),
    # buckets
    "listbucket": _LIST,
    "listbucketversions": _LIST,
    "getbucketversioning": frozenset(),
    "putbucketversioning": frozenset(),
    "getbucketlocation": frozenset(),
    "getbucketnotification": frozenset(),
    "putbucketnotification": frozenset(),
    "getbuckettagging": frozenset(),
    "getbucketacl": frozenset(),
    "getinventoryconfiguration": frozenset(),
    "putinventoryconfiguration": frozenset(),
    "getbucketownershipcontrols": frozenset(),
    "putbucketownershipcontrols": frozenset(),
    "listtagsforresource": frozenset(),
    "getbucketpolicy": frozenset(),
    "putbucketpolicy": frozenset(),
}

# Every service-specific key some S3 action may carry: the keys whose presence depends on the action.
SERVICE_KEYS: frozenset[str] = frozenset(k for keys in ACTION_KEYS.values() for k in keys if not k.endswith("/"))
SERVICE_KEY_FAMILIES: tuple[str, ...] = tuple(
    sorted({k for keys in ACTION_KEYS.values() for k in keys if k.endswith("/")})
)


@lru_cache(maxsize=512)
def absent_for_action(action: str, key: str) -> bool:
    """True when ``key`` (lowercased) is a service-specific S3 key that the action's requests never carry.

    False for global keys, for keys of other services, for common S3 keys and for an action not in the table."""
    name = action.lower().removeprefix("s3:")
    keys = ACTION_KEYS.get(name)
    if keys is None or not key.startswith("s3:") or key in COMMON_KEYS:
        return False
    family = next((f for f in SERVICE_KEY_FAMILIES if key.startswith(f)), None)
    if family is not None:
        return family not in keys
    return key in SERVICE_KEYS and key not in keys
