"""Rendering what `sigsci-iga check` found."""

from __future__ import annotations


def describe_token_policy(max_age: int | None) -> tuple[str, bool]:
    """Human text for apiTokenMaxAge and whether it deserves a warning."""
    if max_age is None:
        return "the corp does not report a token expiry policy (apiTokenMaxAge absent)", False
    if max_age <= 0:
        return "API tokens do not expire (apiTokenMaxAge = 0)", False
    days = max_age / 86400
    span = f"{days:.1f} days" if days >= 1 else f"{max_age / 3600:.1f} hours"
    return (
        f"API tokens expire {max_age} s (~{span}) after creation (apiTokenMaxAge = {max_age}); "
        "plan to rotate SIGSCI_TOKEN before then",
        True,
    )
