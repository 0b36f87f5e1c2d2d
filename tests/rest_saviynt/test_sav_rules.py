"""Conversion rules on small synthetic exports: placeholders, URLs, wrong keys, refusals, bodies."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sav_harness import bound_sigsci, converted

from sigsci_iga.connectors.base import AddToSite, Invite
from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.connectors.rest.runtime import RestConnector
from sigsci_iga.connectors.rest.saviynt import ConversionResult, convert_saviynt, import_saviynt
from sigsci_iga.errors import InvalidInputError

IMPORT: dict[str, Any] = {
    "accountParams": {
        "connection": "acctAuth",
        "processingType": "SequentialAndIterative",
        "statusAndThresholdConfig": {
            "statusColumn": "customproperty5",
            "status": ["active"],
            "accountThresholdValue": 5,
            "deleteLinks": True,
        },
        "call": {
            "call1": {
                "callOrder": 0,
                "http": {
                    "url": " https://api.example.com/v1/@TENANT@/users?expand=all ",
                    "httpMethod": "GET",
                    "httpHeaders": {"Authorization": "${access_token}", "x-api-key": ""},
                },
                "listField": "data",
                "keyField": "accountID",
                "frobnicate": True,
                "colsToPropsMap": {
                    "accountID": "email~#~char",
                    "name": "name~#~char",
                    "customproperty4": "role~#~char",
                    "customproperty5": "state~#~char",
                    "customproperty6": "#CONST#${return response.roles[0];}~#~char",
                    "customproperty31": "STORE#ACC#ENT#MAPPINGINFO~#~char",
                },
                "page": {
                    "pageSizeParam": "limit",
                    "pageSize": 50,
                    "pageNumberParam": "page",
                    "firstPageNumber": 1,
                    "totalCountPath": "completeResponseMap.total",
                },
            }
        },
    },
    "entitlementParams": {
        "connection": "acctAuth",
        "entTypes": {
            "Group": {
                "entTypeOrder": 0,
                "call": {
                    "call1": {
                        "http": {
                            "url": "https://api.example.com/v1/@TENANT@/groups",
                            "httpMethod": "GET",
                            "httpHeaders": {"Authorization": "${access_token}"},
                        },
                        "listField": "items",
                        "keyField": "entitlementID",
                        "colsToPropsMap": {
                            "entitlementID": "id~#~char",
                            "entitlement_value": "label~#~char",
                        },
                        "pagination": {
                            "nextUrl": {
                                "nextUrlPath": "${response?.completeResponseMap?.cursor==null?null:'https://api.example.com/v1/groups?after=' + response.completeResponseMap.cursor}"
                            }
                        },
                    }
                },
            }
        },
    },
    "acctEntParams": {
        "entTypes": {
            "Group": {
                "call": {
                    "call1": {
                        "processingType": "httpEntToAcct",
                        "http": {
                            "url": "https://api.example.com/v1/@TENANT@/groups/${id}/members",
                            "httpMethod": "GET",
                            "httpHeaders": {"Authorization": "${access_token}"},
                        },
                        "listField": "members",
                        "entKeyField": "entitlementID",
                        "acctIdPath": "email",
                        "acctKeyField": "accountID",
                    }
                }
            }
        }
    },
}
CREATE: dict[str, Any] = {
    "accountIdPath": "call1.message.id",
    "call": [
        {
            "name": "call1",
            "connection": "acctAuth",
            "url": "https://api.example.com/v1/@TENANT@/users",
            "httpMethod": "POST",
            "httpParams": '{"email":"${user.email}","role":"${user.customproperty4}","n":${user.count}}',
            "httpHeaders": {"Authorization": "${access_token}", "Accept": "application/json"},
            "httpContentType": "application/json",
            "SuccessResponses": {"statusCode": [200, 201]},
        }
    ],
}
UPDATE: dict[str, Any] = {
    "call": [
        {
            "name": "call1",
            "connection": "acctAuth",
            "url": "https://api.example.com/v1/@TENANT@/users/${account.accountID}",
            "httpMethod": "PATCH",
            "httpParams": '{"role":"${user.customproperty4}"}',
            "httpHeaders": {"Authorization": "${access_token}"},
            "successResponses": {"statusCode": [200]},
        }
    ]
}
ADD: dict[str, Any] = {
    "call": [
        {
            "name": "Group",
            "connection": "acctAuth",
            "url": "https://api.example.com/v1/@TENANT@/groups/${entitlementValue.entitlementID}/members",
            "httpMethod": "POST",
            "httpParams": '{"members":["${account.accountID}"]}',
            "httpHeaders": {"Authorization": "Bearer ${access_token}"},
            "successResponses": {"statusCode": [200, 201]},
        }
    ]
}


def transport(**attributes: Any) -> dict[str, Any]:
    """A Transport export holding the given attributes (values are JSON-encoded as in EIC)."""
    external = [{"attributename": "ConnectionJSON", "encryptedattributevalue": "F094T0v6WH=="}]
    for name, value in attributes.items():
        text = value if isinstance(value, str) else json.dumps(value, indent=2)
        external.append({"attributename": name, "encryptedattributevalue": text})
    return {
        "Demo_App": {
            "connectionname": "Demo_App",
            "externalconnectiontype": "REST",
            "vaultConfig": None,
            "EXTERNAL_ATTR": external,
        }
    }


def demo(**overrides: Any) -> ConversionResult:
    attributes: dict[str, Any] = {
        "ImportAccountEntJSON": IMPORT,
        "CreateAccountJSON": CREATE,
        "UpdateAccountJSON": UPDATE,
        "AddAccessJSON": ADD,
    }
    attributes.update(overrides)
    return convert_saviynt(transport(**{k: v for k, v in attributes.items() if v is not None}))


def messages(result: ConversionResult, severity: str = "warning") -> list[str]:
    return [str(f) for f in result.findings if f.severity == severity]


def test_placeholders_become_required_parameters_without_default(tmp_path: Path) -> None:
    result = demo()
    assert result.package["parameters"]["tenant"] == {
        "description": "Replaces the Saviynt placeholder @TENANT@ (edited by hand in EIC).",
        "required": True,
    }
    call = result.package["import"]["accounts"]["calls"][0]
    assert call["url"] == "/v1/${params.tenant}/users"
    assert call["query"] == {"expand": "all"}
    assert result.package["parameters"]["base_url"]["default"] == "https://api.example.com"
    assert any(
        "placeholder @TENANT@ becomes the required parameter 'tenant'" in m
        for m in messages(result)
    )
    (tmp_path / "demo.yaml").write_text(result.to_yaml())
    loaded = load_package(tmp_path / "demo.yaml")
    with pytest.raises(Exception, match="required parameter 'tenant' is missing"):
        loaded.bind({}, env={"DEMO_APP_ACCTAUTH_TOKEN": "Bearer x"})


def test_url_spaces_are_trimmed_and_empty_hosts_and_relative_urls_use_base_url() -> None:
    result = demo()
    assert any("leading or trailing spaces trimmed" in m for m in messages(result))
    document = copy.deepcopy(IMPORT)
    document["accountParams"]["call"]["call1"]["http"]["url"] = "https:///api/users"
    document["entitlementParams"]["entTypes"]["Group"]["call"]["call1"]["http"]["url"] = "/groups"
    document["acctEntParams"] = {}
    relative = demo(
        ImportAccountEntJSON=document,
        CreateAccountJSON=None,
        UpdateAccountJSON=None,
        AddAccessJSON=None,
    )
    assert relative.package["parameters"]["base_url"] == {
        "description": "API origin: the export has relative URLs or an empty host.",
        "required": True,
    }
    assert relative.package["import"]["accounts"]["calls"][0]["url"] == "/api/users"
    found = messages(relative)
    assert any("host '' is empty or a placeholder" in m for m in found)
    assert any("relative URL: it is made relative to ${params.base_url}" in m for m in found)
    assert relative.complete


def test_wrong_keys_are_accepted_with_a_warning_and_unknown_keys_are_reported() -> None:
    result = demo()
    found = messages(result)
    assert any(
        "statusAndThresholdConfig.status: wrong key 'status' accepted as 'activeStatus'" in m
        for m in found
    )
    assert any("call1.page: wrong key 'page' accepted as 'pagination'" in m for m in found)
    assert any("call[0].SuccessResponses: wrong key 'SuccessResponses'" in m for m in found)
    assert any("call1.frobnicate: unknown key 'frobnicate' (ignored)" in m for m in found)
    imported = result.package["import"]
    assert imported["accounts"]["status"] == {"path": "state", "active_values": ["active"]}
    assert imported["accounts"]["calls"][0]["pagination"] == {
        "type": "page",
        "page_param": "page",
        "size_param": "limit",
        "size": 50,
        "start": 1,
        "total_path": "total",
        "stop": ["short_page", "total"],
    }
    assert imported["thresholds"] == {"accounts_suspended": {"absolute": 5, "percent": None}}
    create = result.package["provisioning"]["create_account"][0]
    assert create["success"] == {"statuses": [200, 201]}
    # `active` for activeStatus (Cloud Foundry, FactSet, RingCentral) is the other alias.
    cloud = converted("Cloud-Foundry")
    assert any("wrong key 'active' accepted as 'activeStatus'" in str(f) for f in cloud.warnings)
    assert cloud.package["import"]["accounts"]["status"]["active_values"] == ["true"]


def test_import_mapping_fields_links_and_pagination() -> None:
    imported = demo().package["import"]
    fields = imported["accounts"]["fields"]
    assert imported["accounts"]["key_field"] == "email"
    assert fields["email"] == {"path": "email"}
    assert fields["name"] == {"path": "name", "default": ""}
    assert fields["extra.customproperty6"] == {"expression": "record.roles[0]", "type": "json"}
    assert "extra.customproperty31" not in fields  # the link store column becomes `links`
    group = imported["entitlement_types"]["Group"]
    assert group["value_field"] == "id"
    assert group["display_name_field"] == "label"
    assert group["calls"][0]["pagination"] == {
        "type": "cursor",
        "cursor_path": "cursor",
        "cursor_param": "after",
    }
    assert imported["site_entitlement_type"] == "Group"
    assert imported["links"] == [
        {
            "type": "per_entitlement_call",
            "entitlement_type": "Group",
            "call": {
                "method": "GET",
                "url": "/v1/${params.tenant}/groups/${entitlementValue.value}/members",
            },
            "records_path": "members",
            "account_key_path": "email",
        }
    ]


def test_token_headers_move_to_the_auth_profile_and_bindings_are_renamed() -> None:
    package = demo().package
    assert package["connection"]["auth"] == {
        "acctAuth": {
            "type": "static_headers",
            "headers": {"Authorization": "${params.acctauth_token}"},
        }
    }
    assert package["parameters"]["acctauth_token"]["secret"] is True
    assert package["parameters"]["acctauth_token"]["env"] == "DEMO_APP_ACCTAUTH_TOKEN"
    prov = package["provisioning"]
    create = prov["create_account"][0]
    assert "headers" not in create or "Authorization" not in create["headers"]
    # The identity's customproperty4 mirrors the account's, imported from the target's `role`.
    assert create["body"] == {
        "email": "${account.email}",
        "role": "${account.role}",
        "n": "${user.count}",
    }
    assert create["capture"] == {"account_id": "id"}
    assert prov["update_account"][0]["url"] == "/v1/${params.tenant}/users/${account.email}"
    add = prov["add_access"]["Group"][0]
    assert add["url"] == "/v1/${params.tenant}/groups/${entitlementValue.value}/members"
    assert add["body"] == {"members": ["${account.email}"]}
    explicit = convert_saviynt(
        transport(ImportAccountEntJSON=IMPORT, CreateAccountJSON=CREATE),
        identity_attributes={"customproperty4": "requestAccessAttributes.role"},
    )
    assert explicit.package["provisioning"]["create_account"][0]["body"]["role"] == (
        "${requestAccessAttributes.role}"
    )


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("${new java.util.Date()}", "`new`"),
        ("${java.lang.System.getenv('HOME')}", "java"),
        ("${if(user.x){return 1} else {return 2}}", "statements are not allowed"),
        ("${user.email.getClass()}", "getClass"),
        ("${userManager.email}", "unknown name 'userManager'"),
    ],
)
def test_an_unsupported_expression_drops_only_its_operation(expression: str, reason: str) -> None:
    create = copy.deepcopy(CREATE)
    create["call"][0]["httpParams"] = '{"email":"${user.email}","stamp":"' + expression + '"}'
    result = demo(CreateAccountJSON=create)
    (refusal,) = result.refusals
    assert refusal.attribute == "CreateAccountJSON"
    assert refusal.path == "call[0].httpParams.stamp"
    assert refusal.text == expression
    assert reason in refusal.message
    assert "create_account dropped" in refusal.message
    assert result.operations_refused == ["create_account"]
    assert "create_account" not in result.package["provisioning"]
    assert "update_account" in result.package["provisioning"]
    assert result.complete


def test_a_body_that_is_not_json_is_refused_with_its_text() -> None:
    add = copy.deepcopy(ADD)
    add["call"][0]["httpParams"] = '{"members":["${account.accountID}"]}}'
    result = demo(AddAccessJSON=add)
    (refusal,) = result.refusals
    assert (refusal.attribute, refusal.path) == ("AddAccessJSON", "call[0].httpParams")
    assert refusal.text == '{"members":["${account.accountID}"]}}'
    assert "add_access" not in result.package["provisioning"]


def test_an_invalid_json_value_and_a_bare_expression_in_a_body() -> None:
    # `"n":${user.count}` is not JSON text but is a JSON template once protected: a lone value.
    assert demo().package["provisioning"]["create_account"][0]["body"]["n"] == "${user.count}"


def test_converted_bodies_are_json_templates_safe_with_quotes(tmp_path: Path) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"email": "x", "name": "y"})

    tricky_email = 'o"brien},{"role":"owner"}@example.com'
    tricky_site = 'we"b}{,"x'
    bound = bound_sigsci(tmp_path)

    async def main() -> None:
        async with RestConnector(bound, transport=httpx.MockTransport(handler)) as connector:
            await connector.execute(Invite(tricky_email, "user", (tricky_site,)))
            await connector.execute(AddToSite(tricky_site, (tricky_email,)))

    asyncio.run(main())
    invite, add = (json.loads(r.content) for r in sent)
    # Saviynt splices text: this email would have injected `"role":"owner"`. Ours stays a value.
    assert invite == {"role": "user", "memberships": {"data": [{"site": {"name": "staging"}}]}}
    assert add == {"members": [tricky_email]}
    assert all("authorization" not in r.headers for r in sent)
    assert sent[0].headers["x-api-token"] == "sim-demo-token"


def test_a_lone_attribute_is_detected_and_converted(tmp_path: Path) -> None:
    lone = tmp_path / "CreateAccountJSON.json"
    lone.write_text(json.dumps(CREATE))
    result = import_saviynt(lone, tmp_path / "out.yaml")
    assert not result.complete  # no import: a fragment to merge, not a loadable package
    assert "create_account" in result.package["provisioning"]
    assert "INCOMPLETE" in (tmp_path / "out.yaml").read_text()
    unnamed = tmp_path / "whatever.json"
    unnamed.write_text(json.dumps(IMPORT))
    detected = convert_saviynt(unnamed)
    assert detected.complete
    assert any("a lone ImportAccountEntJSON value" in str(f) for f in detected.findings)
    removal = tmp_path / "attr.json"
    removal.write_text(json.dumps({"call": [{**UPDATE["call"][0], "httpMethod": "DELETE"}]}))
    assert list(convert_saviynt(removal).package["provisioning"]) == ["remove_account"]


def test_a_non_rest_export_and_unsupported_attributes() -> None:
    export = transport(ImportAccountEntJSON=IMPORT)
    export["Demo_App"]["externalconnectiontype"] = "LDAP"
    with pytest.raises(InvalidInputError, match="not 'REST'"):
        convert_saviynt(export)
    result = demo(ChangePassJSON={"call": []}, CreateAccountJSON=None)
    assert any(
        f.attribute == "ChangePassJSON" and "no equivalent" in f.message for f in result.refusals
    )
    assert result.attributes["ChangePassJSON"].status == "unsupported"


def test_the_encrypted_connection_is_reported_and_left_to_fill_in() -> None:
    result = converted("Signal-Sciences")
    found = [str(f) for f in result.warnings if f.attribute == "ConnectionJSON"]
    assert any("encrypted by the exporting tenant" in m for m in found)
    assert any("need x-api-user and x-api-token" in m for m in found)
    assert result.package["connection"]["auth"] == {
        "acctAuth": {
            "type": "static_headers",
            "headers": {"x-api-user": "${params.api_user}", "x-api-token": "${params.api_token}"},
        }
    }
    token = result.package["parameters"]["api_token"]
    assert token == {
        "description": "The personal API access token (x-api-token).",
        "required": True,
        "secret": True,
        "env": "SIGSCI_TOKEN",
    }


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        ("(?<=@).*", "lookbehind"),
        (".(?=@)", "lookahead"),
        ("(.)\\\\1", "backreference"),
        ("a{2000}", "invalid regex"),
    ],
)
def test_a_regex_the_linear_engine_cannot_run_drops_only_its_column_with_its_location(
    tmp_path: Path, pattern: str, construct: str
) -> None:
    imports = copy.deepcopy(IMPORT)
    columns = imports["accountParams"]["call"]["call1"]["colsToPropsMap"]
    expression = "${response.email.replaceAll('" + pattern + "', '')}"
    columns["customproperty7"] = "#CONST#" + expression + "~#~char"

    result = demo(ImportAccountEntJSON=imports)

    (refusal,) = result.refusals
    assert refusal.attribute == "ImportAccountEntJSON"
    assert refusal.path == "accountParams.call.call1.colsToPropsMap.customproperty7"
    assert refusal.text == expression
    assert construct in refusal.message
    assert "of the pattern" in refusal.message
    assert "customproperty7 dropped" in refusal.message
    fields = result.package["import"]["accounts"]["fields"]
    assert "extra.customproperty7" not in fields
    assert "extra.customproperty6" in fields
    (tmp_path / "demo.yaml").write_text(result.to_yaml())
    load_package(tmp_path / "demo.yaml")


def test_a_regex_with_lookaround_in_a_body_drops_only_its_operation() -> None:
    create = copy.deepcopy(CREATE)
    create["call"][0]["httpParams"] = (
        '{"email":"${user.email}","local":"${user.email.replaceAll(\'(?=@).*\', \'\')}"}'
    )
    result = demo(CreateAccountJSON=create)
    (refusal,) = result.refusals
    assert (refusal.attribute, refusal.path) == ("CreateAccountJSON", "call[0].httpParams.local")
    assert "lookahead" in refusal.message
    assert "create_account dropped" in refusal.message
    assert result.operations_refused == ["create_account"]
    assert "update_account" in result.package["provisioning"]
