"""Roles and permissions: the whole role x permission matrix, and the errors the service answers with."""

from __future__ import annotations

import itertools
import pickle

import pytest

from sigsci_iga.app import ROLE_PERMISSIONS, Permission, Principal, Role, authorize
from sigsci_iga.errors import (
    AuthenticationError,
    PermissionDeniedError,
    Recovery,
    rule_for,
)

# Written out by hand, independently of the table it checks: x = granted, . = refused.
MATRIX = """
                   viewer  requester  approver  admin
read                 x         x         x        x
read_metrics         x         x         x        x
request              .         x         x        x
approve_request      .         .         x        x
run_import           .         .         .        x
approve_run          .         .         .        x
manage_tasks         .         .         .        x
manage_schedules     .         .         .        x
manage_tokens        .         .         .        x
manage_endpoints     .         .         .        x
"""


def expected() -> dict[tuple[Role, Permission], bool]:
    header, *rows = MATRIX.strip().splitlines()
    roles = [Role(name) for name in header.split()]
    grid = {}
    for row in rows:
        permission, *marks = row.split()
        assert len(marks) == len(roles), row
        for role, mark in zip(roles, marks, strict=True):
            grid[Permission(permission), role] = mark == "x"
    return {(role, permission): granted for (permission, role), granted in grid.items()}


def test_the_matrix_names_every_role_and_every_permission() -> None:
    pairs = expected()
    assert {role for role, _ in pairs} == set(Role)
    assert {permission for _, permission in pairs} == set(Permission)
    assert len(pairs) == len(Role) * len(Permission)


@pytest.mark.parametrize("role", list(Role))
def test_every_role_is_granted_exactly_what_the_matrix_says(role: Role) -> None:
    principal = Principal(name=f"{role.value}-token", role=role)
    for permission in Permission:
        granted = expected()[role, permission]
        assert (permission in ROLE_PERMISSIONS[role]) is granted, (role, permission)
        assert principal.can(permission) is granted, (role, permission)
        if granted:
            authorize(principal, permission)
        else:
            with pytest.raises(PermissionDeniedError) as refused:
                authorize(principal, permission)
            assert rule_for(refused.value).http_status == 403


def test_each_role_may_do_everything_the_role_before_it_may() -> None:
    roles = list(Role)
    for lower, higher in itertools.pairwise(roles):
        assert ROLE_PERMISSIONS[lower] < ROLE_PERMISSIONS[higher], (lower, higher)
    assert ROLE_PERMISSIONS[Role.ADMIN] == set(Permission)


def test_a_refusal_names_the_token_its_role_and_the_permission() -> None:
    with pytest.raises(PermissionDeniedError) as refused:
        authorize(Principal(name="ci-bot", role=Role.VIEWER), Permission.MANAGE_TOKENS)

    assert str(refused.value) == "token 'ci-bot' has role viewer, which may not manage_tokens"


def test_a_principal_requests_under_its_token_name() -> None:
    assert Principal(name="ci-bot", role=Role.REQUESTER).requester == "token:ci-bot"


def test_authentication_and_permission_errors_map_to_401_and_403() -> None:
    authentication = rule_for(AuthenticationError)
    denied = rule_for(PermissionDeniedError)

    assert (authentication.http_status, authentication.exit_code) == (401, 3)
    assert authentication.recovery is Recovery.FIX_CONFIGURATION
    assert (denied.http_status, denied.exit_code) == (403, 3)
    assert denied.recovery is Recovery.PERMANENT


def test_an_authentication_error_says_the_same_whatever_the_reason_and_survives_pickling() -> None:
    errors = [AuthenticationError(reason) for reason in ("missing", "expired", "mismatch")]

    assert {str(error) for error in errors} == {AuthenticationError.MESSAGE}
    copy = pickle.loads(pickle.dumps(errors[1]))  # noqa: S301  # our own object, just made
    assert (type(copy), copy.reason, str(copy)) == (AuthenticationError, "expired", str(errors[1]))
