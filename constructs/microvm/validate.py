"""Input checks shared by the constructs. Each raises ConfigError naming the field, value, rule and fix.

Values that are unresolved cdktf tokens (a Terraform variable, another resource's attribute) are only
known at deploy time: the checks skip them, and the Terraform variable validations cover them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Iterable, Sequence

from cdktf import Token

from microvm.errors import ConfigError

# RFC 1123 label: what Kubernetes accepts for namespaces, services and most object names.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# GCP resource names (networks, clusters, addresses, repositories): lower-case, start with a letter.
_GCP_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Plain strings too: the Terraform variable validations (RE2) use the same patterns at deploy time.
REGION_PATTERN = "^[a-z]+(-[a-z]+)+[0-9]+$"
PROJECT_ID_PATTERN = "^[a-z][-a-z0-9]{4,28}[a-z0-9]$"
_REGION = re.compile(REGION_PATTERN)
_ZONE = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+-[a-z]$")
_PROJECT_ID = re.compile(PROJECT_ID_PATTERN)


def is_token(value: Any) -> bool:
    """True for a value Terraform resolves at deploy time (checks are skipped for it)."""
    return isinstance(value, (str, list, int, float)) and not isinstance(value, bool) and Token.is_unresolved(value)


def string(field: str, value: Any, *, example: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(field, value, f"must be a string, not {type(value).__name__}", f"pass a string such as {example!r}")
    if not is_token(value) and value.strip() == "":
        raise ConfigError(field, value, "must not be empty or blank", f"pass a value such as {example!r}")
    return value


def boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, value, f"must be True or False, not {type(value).__name__}", "pass True or False")
    return value


def integer(field: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    # bool is an int in Python; True as a replica count is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, value, f"must be a whole number, not {type(value).__name__}", f"pass a number of at least {minimum}")
    if value < minimum:
        raise ConfigError(field, value, f"must be at least {minimum}", f"use {minimum} or more")
    if maximum is not None and value > maximum:
        raise ConfigError(field, value, f"must be at most {maximum}", f"use {maximum} or less")
    return value


def k8s_name(field: str, value: Any, *, max_length: int = 63) -> str:
    return _name(field, value, max_length, _DNS_LABEL, example="desktop", owner="kubernetes",
                 rule="kubernetes names allow only lower-case letters, digits and '-', starting and ending with a letter or digit")


def gcp_name(field: str, value: Any, *, max_length: int = 63) -> str:
    return _name(field, value, max_length, _GCP_NAME, example="microvm", owner="google cloud",
                 rule="google cloud names allow only lower-case letters, digits and '-', starting with a letter and not ending with '-'")


def _name(field: str, value: Any, max_length: int, pattern: re.Pattern, *, example: str, owner: str, rule: str) -> str:
    string(field, value, example=example)
    if is_token(value):
        return value
    if len(value) > max_length:
        raise ConfigError(field, value, f"is {len(value)} characters and {owner} allows at most {max_length} here", f"shorten it to {value[:max_length].rstrip('-')!r} or less")
    if not pattern.match(value):
        raise ConfigError(field, value, rule, f"use {_suggest_name(value)!r}")
    return value


def project_id(field: str, value: Any) -> str:
    string(field, value, example="my-project-123")
    if not is_token(value) and not _PROJECT_ID.match(value):
        raise ConfigError(field, value, "a google cloud project id is 6 to 30 lower-case letters, digits or '-', starting with a letter", "use the id shown by `gcloud projects list`, such as 'my-project-123'")
    return value


def region(field: str, value: Any) -> str:
    string(field, value, example="us-central1")
    if is_token(value):
        return value
    if _ZONE.match(value):
        raise ConfigError(field, value, "is a zone, and autopilot clusters and their addresses are regional", f"use the region {value.rsplit('-', 1)[0]!r}")
    if not _REGION.match(value):
        raise ConfigError(field, value, "is not a google cloud region", "use a region such as 'us-central1' or 'europe-west1'")
    return value


def cidr(field: str, value: Any, *, min_prefix: int = 0, max_prefix: int = 32, purpose: str = "") -> str:
    string(field, value, example="10.0.0.0/20")
    if is_token(value):
        return value
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        hint = _strict_hint(value)
        raise ConfigError(field, value, f"is not a valid IPv4 CIDR block ({error})", hint or "write it as an address and prefix such as '10.0.0.0/20'") from None
    if network.version != 4:
        raise ConfigError(field, value, "must be an IPv4 CIDR block", "use an IPv4 block such as '10.0.0.0/20'")
    if network.prefixlen < min_prefix:
        raise ConfigError(field, value, f"is broader than /{min_prefix}{purpose}", f"use a /{min_prefix} or narrower block")
    if network.prefixlen > max_prefix:
        raise ConfigError(field, value, f"is narrower than /{max_prefix}{purpose}", f"use a /{max_prefix} or broader block")
    return value


def cidr_list(field: str, values: Any, *, min_prefix: int, purpose: str, allow_empty: bool) -> list[str]:
    if is_token(values):
        return values
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ConfigError(field, values, "must be a list of CIDR blocks", "pass a list such as ['203.0.113.0/24']")
    if not values and not allow_empty:
        raise ConfigError(field, list(values), "must list at least one CIDR block", "pass the ranges your users connect from, such as ['203.0.113.0/24']")
    return [cidr(f"{field}[{i}]", v, min_prefix=min_prefix, purpose=purpose) for i, v in enumerate(values)]


def no_overlap(named_cidrs: Iterable[tuple[str, str]]) -> None:
    """Refuse literal CIDR blocks that overlap each other (they would collide inside one VPC)."""
    known = [(f, ipaddress.ip_network(v)) for f, v in named_cidrs if not is_token(v)]
    for i, (field_a, a) in enumerate(known):
        for field_b, b in known[i + 1:]:
            if a.overlaps(b):
                raise ConfigError(field_b, str(b), f"overlaps {field_a} ({a})", "choose blocks that do not overlap")


def one_of(field: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(field, value, f"must be one of {', '.join(allowed)}", f"use {allowed[0]!r} unless you need another")
    return value


def _suggest_name(value: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", value.strip().lower()).strip("-")
    if name and not name[0].isalpha():
        name = "x-" + name
    return name or "desktop"


def _strict_hint(value: str) -> str:
    try:
        return f"use the network address {str(ipaddress.ip_network(value, strict=False))!r}"
    except ValueError:
        return ""
