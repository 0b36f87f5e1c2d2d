"""Loading packages: unknown keys, bad templates and bad parameters are refused with file + path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pkg_harness import SHIPPED, shipped_document, write_package

from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.connectors.rest.spec import Package, package_json_schema, parse_path
from sigsci_iga.errors import ConfigError, InvalidInputError


def refused(tmp_path: Path, document: Any, name: str = "pkg.yaml") -> str:
    path = write_package(tmp_path, document, name)
    with pytest.raises(InvalidInputError) as caught:
        load_package(path)
    message = str(caught.value)
    assert str(path) in message
    return message


def test_shipped_package_loads_and_binds() -> None:
    loaded = load_package(SHIPPED)
    assert loaded.spec.name == "signalsciences"
    bound = loaded.bind(
        {"corp": "examplecorp", "email": "a@example.com"}, env={"SIGSCI_TOKEN": "t0ken-value"}
    )
    assert bound.base_url == "https://dashboard.signalsciences.net"
    assert bound.secrets == ("t0ken-value",)
    assert "t0ken-value" not in repr(bound)


def test_json_package_loads_too(tmp_path: Path) -> None:
    path = write_package(tmp_path, shipped_document(), "pkg.json")
    assert load_package(path).spec.name == "signalsciences"


def test_schema_is_generated_from_the_models() -> None:
    schema = package_json_schema()
    assert isinstance(schema, dict)
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {
        "name",
        "version",
        "description",
        "parameters",
        "connection",
        "import",
        "provisioning",
    }
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) >= {"name", "version", "connection", "import"}
    # Every object model refuses unknown keys in the schema as well.
    for name, definition in schema["$defs"].items():
        if definition.get("type") == "object" and "properties" in definition:
            assert definition.get("additionalProperties") is False, name
    for tag in ("static_headers", "basic", "token_call", "session_login"):
        assert any(
            d.get("properties", {}).get("type", {}).get("const") == tag
            for d in schema["$defs"].values()
        )


def test_shipped_package_matches_the_schema_shape() -> None:
    """The shipped package validates against the models the schema was generated from."""
    document = shipped_document()
    schema = package_json_schema()
    assert set(document) <= set(schema["properties"])
    Package.model_validate(document)


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: d["connection"].update(timeout=3), "connection.timeout"),
        (
            lambda d: d["provisioning"]["add_access"]["Site"][0].update(succes={"statuses": [200]}),
            "provisioning.add_access.Site[0].succes",
        ),
        (
            lambda d: d["import"]["accounts"]["status"].update(status=["active"]),
            "import.accounts.status.status",
        ),
    ],
)
def test_unknown_keys_are_refused_with_their_path(tmp_path: Path, edit: Any, where: str) -> None:
    document = shipped_document()
    edit(document)
    message = refused(tmp_path, document)
    assert where in message
    assert "unknown key" in message


def test_every_problem_is_listed(tmp_path: Path) -> None:
    document = shipped_document()
    document["version"] = ""
    document["connection"]["max_concurrency"] = 0
    message = refused(tmp_path, document)
    assert "version" in message
    assert "connection.max_concurrency" in message
    assert "2 problem(s)" in message


@pytest.mark.parametrize(
    ("path", "text", "fragment"),
    [
        (("provisioning", "add_access", "Site", 0, "url"), "/x/${account.email", "url"),
        (("provisioning", "remove_account", 0, "url"), "/users/${usr.email}", "url"),
        (
            ("provisioning", "update_account", 0, "body", "role"),
            "${account.role; return 1}",
            "body.role",
        ),
        (("import", "accounts", "calls", 0, "query", "expand"), "${user.email}", "query.expand"),
    ],
)
def test_bad_templates_are_refused_with_file_and_json_path(
    tmp_path: Path, path: tuple[Any, ...], text: str, fragment: str
) -> None:
    document = shipped_document()
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = text
    message = refused(tmp_path, document)
    prefix = ".".join(str(p) for p in path[:-1] if not isinstance(p, int))
    assert prefix.split(".")[0] in message
    assert fragment in message


def test_unknown_parameter_reference_is_refused(tmp_path: Path) -> None:
    document = shipped_document()
    document["provisioning"]["remove_account"][0]["url"] = "/api/v0/corps/${params.crop}/users"
    message = refused(tmp_path, document)
    assert "provisioning.remove_account[0].url" in message
    assert "'crop'" in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("/api/v0/users?page=2", "query"),
        (" /api/v0/users", "spaces"),
        ("/api/v0/corps/@CORPNAME@/users", "placeholder"),
    ],
)
def test_url_hygiene(tmp_path: Path, url: str, problem: str) -> None:
    document = shipped_document()
    document["import"]["accounts"]["calls"][0]["url"] = url
    message = refused(tmp_path, document)
    assert "import.accounts.calls[0]" in message
    assert problem in message


def test_paging_parameters_in_the_query_are_refused(tmp_path: Path) -> None:
    document = shipped_document()
    document["import"]["entitlement_types"]["Site"]["calls"][0]["query"] = {"page": "2"}
    message = refused(tmp_path, document)
    assert "import.entitlement_types.Site.calls[0]" in message
    assert "pagination controls" in message


def test_secret_parameters_are_never_stored(tmp_path: Path) -> None:
    document = shipped_document()
    document["parameters"]["token"]["default"] = "abc"
    message = refused(tmp_path, document)
    assert "parameters.token" in message
    assert "secret" in message


def test_references_must_exist(tmp_path: Path) -> None:
    document = shipped_document()
    document["provisioning"]["add_access"]["Group"] = document["provisioning"]["add_access"]["Site"]
    assert "no such entitlement type" in refused(tmp_path, document)
    document = shipped_document()
    document["provisioning"]["remove_account"][0]["auth"] = "nobody"
    assert "auth profile 'nobody'" in refused(tmp_path, document)


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(SHIPPED.read_text() + "\nname: other\n")
    with pytest.raises(InvalidInputError, match="duplicate key 'name'"):
        load_package(path)


def test_binding_checks_parameters() -> None:
    loaded = load_package(SHIPPED)
    with pytest.raises(ConfigError, match="required parameter 'corp'"):
        loaded.bind({"email": "a@example.com"}, env={"SIGSCI_TOKEN": "t"})
    with pytest.raises(ConfigError, match=r"required parameter 'token' is missing .*SIGSCI_TOKEN"):
        loaded.bind({"corp": "c", "email": "a@example.com"}, env={})
    with pytest.raises(ConfigError, match="secret; supply it through"):
        loaded.bind({"corp": "c", "email": "a@example.com", "token": "t"}, env={})
    with pytest.raises(ConfigError, match="unknown parameter 'corpp'"):
        loaded.bind({"corpp": "c"}, env={})
    with pytest.raises(ConfigError, match="base_url"):
        loaded.bind(
            {"corp": "c", "email": "a@example.com", "base_url": "dashboard"},
            env={"SIGSCI_TOKEN": "t"},
        )


def test_record_paths() -> None:
    assert parse_path("") == ()
    assert parse_path("a.b[0]['c.d'].e") == ("a", "b", 0, "c.d", "e")
    for bad in (".a", "a..b", "a.", "a[x]"):
        with pytest.raises(ValueError, match="invalid path"):
            parse_path(bad)


@pytest.mark.parametrize(
    "variable", ["HOME", "AWS_SECRET_ACCESS_KEY", "SIGSCI_TOKEN", "SIGSCI_IGA_DATABASE_URL"]
)
def test_a_non_secret_parameter_may_not_read_an_arbitrary_environment_variable(
    tmp_path: Path, variable: str
) -> None:
    document = shipped_document()
    document["parameters"]["leak"] = {"env": variable}
    message = refused(tmp_path, document)
    assert "parameters.leak.env" in message or "parameters.leak" in message
    assert variable in message
    assert "secret: true" in message


@pytest.mark.parametrize("variable", ["SIGSCI_CORP", "SIGSCI_EMAIL", "SIGSCI_PARAM_TENANT"])
def test_a_non_secret_parameter_may_read_the_clear_settings_and_its_own_namespace(
    tmp_path: Path, variable: str
) -> None:
    document = shipped_document()
    document["parameters"]["tenant"] = {"env": variable}
    loaded = load_package(write_package(tmp_path, document))
    bound = loaded.bind(
        {"corp": "c", "email": "a@example.com"}, env={variable: "acme", "SIGSCI_TOKEN": "t0ken"}
    )
    assert bound.params["tenant"] == "acme"


def test_a_secret_parameter_may_read_any_variable_and_stays_masked(tmp_path: Path) -> None:
    document = shipped_document()
    document["parameters"]["home"] = {"env": "HOME", "secret": True}
    loaded = load_package(write_package(tmp_path, document))
    bound = loaded.bind(
        {"corp": "c", "email": "a@example.com"}, env={"HOME": "/home/ops", "SIGSCI_TOKEN": "t0ken"}
    )
    assert "/home/ops" in bound.secrets


def test_duplicate_json_keys_are_refused_with_their_json_path(tmp_path: Path) -> None:
    text = write_package(tmp_path, shipped_document(), "pkg.json").read_text()
    top = tmp_path / "top.json"
    top.write_text(text.replace('"name": "signalsciences",', '"name": "a", "name": "b",', 1))
    nested = tmp_path / "nested.json"
    nested.write_text(
        text.replace('"max_concurrency": 4,', '"max_concurrency": 4, "max_concurrency": 9,', 1)
    )

    with pytest.raises(InvalidInputError) as caught:
        load_package(top)
    assert str(top) in str(caught.value)
    assert "duplicate key 'name'" in str(caught.value)
    with pytest.raises(InvalidInputError) as caught:
        load_package(nested)
    assert "connection: duplicate key 'max_concurrency'" in str(caught.value)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("connection.timeout_seconds", float("inf")),
        ("connection.timeout_seconds", float("nan")),
        ("connection.timeout_seconds", 0),
        ("connection.timeout_seconds", -1),
        ("connection.rate_limit_per_minute", float("inf")),
        ("connection.rate_limit_per_minute", 0),
        ("connection.rate_limit_per_minute", -5),
        ("connection.max_concurrency", 0),
        ("connection.max_concurrency", True),
        ("connection.read_attempts", 0),
        ("connection.read_attempts", True),
        ("connection.read_attempts", float("inf")),
        ("connection.retry_wait_initial_seconds", float("inf")),
        ("connection.retry_wait_initial_seconds", -1),
        ("connection.retry_wait_max_seconds", float("inf")),
        ("connection.retry_wait_max_seconds", float("nan")),
        ("import.entitlement_types.Site.calls.0.pagination.size", 0),
        ("import.entitlement_types.Site.calls.0.pagination.size", -10),
        ("import.entitlement_types.Site.calls.0.pagination.size", True),
        ("import.entitlement_types.Site.calls.0.pagination.size", float("inf")),
        ("import.entitlement_types.Site.calls.0.pagination.max_pages", 0),
        ("import.entitlement_types.Site.calls.0.pagination.max_pages", float("nan")),
    ],
)
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_numbers_that_make_no_sense_are_refused_with_their_path(
    tmp_path: Path, where: str, value: Any, suffix: str
) -> None:
    document = shipped_document()
    target = document
    keys = where.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[keys[-1]] = value
    message = refused(tmp_path, document, f"pkg{suffix}")
    assert json_path_of(where) in message


def json_path_of(dotted: str) -> str:
    return dotted.replace(".0.", "[0].")


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["import"]["accounts"]["fields"]["name"].update(default=float("nan")),
        lambda d: d["import"]["accounts"]["fields"]["extra.api_user"].update(
            value_map={"x": float("inf")}
        ),
        lambda d: d["provisioning"]["update_account"][0].update(
            success={"statuses": [200], "body_match": {"path": "x", "equals": float("nan")}}
        ),
    ],
)
def test_non_finite_numbers_are_refused_anywhere_in_a_package(tmp_path: Path, edit: Any) -> None:
    document = shipped_document()
    edit(document)
    for suffix in (".yaml", ".json"):
        refused(tmp_path, document, f"pkg{suffix}")
