"""The governance service (`sigsci-iga serve`): the HTTP API, the worker loop and the scheduler."""

from sigsci_iga.service.app import create_service
from sigsci_iga.service.runtime import ServiceRuntime

__all__ = ["ServiceRuntime", "create_service"]
