"""Pieces shared by the import and provisioning converters: headers, keys, record paths."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, Final

from sigsci_iga.connectors.rest.saviynt_exprs import Translator, template
from sigsci_iga.connectors.rest.saviynt_report import Context, Refused, Unit
from sigsci_iga.connectors.rest.spec import parse_path

IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN_ONLY: Final = re.compile(r"^\s*access_token\s*$")


def check_keys(
    ctx: Context,
    value: Mapping[str, Any],
    path: str,
    known: Collection[str],
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Warn about unknown keys; known misspellings are named with what they are read as."""
    for key in value:
        if key in known:
            continue
        if aliases and key in aliases:
            ctx.warn(_join(path, key), f"wrong key {key!r} accepted as {aliases[key]!r}")
        else:
            ctx.warn(_join(path, key), f"unknown key {key!r} (ignored)")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def identifier(name: str) -> str:
    """A name usable as our call or capture name."""
    cleaned = re.sub(r"\W", "_", name.strip()) or "call"
    return cleaned if IDENTIFIER.fullmatch(cleaned) else "c_" + cleaned


def carries_token(value: str) -> bool:
    """Does a header value hold `${access_token}` (the token of the Saviynt auth block)?"""
    return any(_TOKEN_ONLY.match(body) for body in re.findall(r"\$\{([^{}]*)\}", value))


def headers(
    ctx: Context,
    raw: Any,
    *,
    path: str,
    profile: str,
    translator: Translator,
    unit: Unit,
) -> dict[str, str]:
    """Call headers as templates; the token header goes to the auth profile instead."""
    if raw in (None, ""):
        return {}
    if not isinstance(raw, Mapping):
        raise Refused(path, "httpHeaders must be an object", str(raw))
    out: dict[str, str] = {}
    for name, value in raw.items():
        where = f"{path}.{name}"
        text = value if isinstance(value, str) else str(value)
        if carries_token(text):
            # The auth profile sets these headers on every call of the profile.
            ctx.token_headers.setdefault(profile, {}).setdefault(name, text)
            unit.expressions += text.count("${")
            continue
        if text.strip() == "":
            ctx.warn(where, f"header {name!r} has an empty value: dropped")
            continue
        if name.lower() == "contenttype":
            ctx.warn(where, f"bogus header {name!r} dropped (the content type comes from the body)")
            continue
        out[name] = template(text, translator=translator, unit=unit, path=where)
    return out


def record_path(ctx: Context, source: str, path: str) -> str:
    """A Saviynt record path (`a.b[0]`, `x~dot#y`, SCIM URN keys) as one of ours."""
    text = source.strip()
    if text != source:
        ctx.warn(path, "spaces around the record path trimmed", source)
    if "~dot#" in text:
        parts = [p.replace("\x00", ".") for p in text.replace("~dot#", "\x00").split(".")]
        text = "".join(
            (f"['{p}']" if "." in p or not IDENTIFIER.fullmatch(p.split("[")[0]) else ("." + p))
            for p in parts
        ).lstrip(".")
    elif text.startswith("urn:") and "." in text:
        # A SCIM extension URN holds dots (`...:2.0:User`): only the last dot is a path step.
        key, _, rest = text.rpartition(".")
        ctx.warn(path, f"SCIM URN key read as ['{key}'].{rest} (a dotted reader splits at 2.0)")
        text = f"['{key}'].{rest}"
    try:
        parse_path(text)
    except ValueError as exc:
        raise Refused(path, f"not a record path the engine can follow ({exc})", source) from None
    return text
