"""The provider client for each ``OMNIHOOK_PROVIDER`` value (kling-api.md §6).

=============  ===============================================  ==========================
value          API shape                                        base URL, for example
=============  ===============================================  ==========================
``kling``      official Kling; PowerTokens, CometAPI            ``https://api-singapore.klingai.com``,
                                                                ``https://api.cometapi.com/kling``
``newapi``     new-api gateways (EzModel)                       ``https://api.ezmodel.cloud/kling``
``apimodels``  apimodels                                        ``https://apimodels.app``
=============  ===============================================  ==========================
"""

from __future__ import annotations

import httpx

from service.errors import ConfigurationError
from service.kling.client import HttpProviderClient, ProviderClient

from .apimodels import ApiModelsClient
from .kling import KlingClient
from .newapi import NewApiClient

CLIENTS: dict[str, type[HttpProviderClient]] = {
    KlingClient.name: KlingClient,
    NewApiClient.name: NewApiClient,
    ApiModelsClient.name: ApiModelsClient,
}


def provider_client(
    provider: str, http: httpx.AsyncClient, base_url: str, *, auth: httpx.Auth
) -> ProviderClient:
    """The client speaking ``provider``'s API shape; ConfigurationError for an unknown one."""
    try:
        kind = CLIENTS[provider]
    except KeyError:
        raise ConfigurationError(
            f"OMNIHOOK_PROVIDER={provider!r} is not known; choose one of {', '.join(CLIENTS)}"
        ) from None
    return kind(http, base_url, auth=auth)


__all__ = ["CLIENTS", "ApiModelsClient", "KlingClient", "NewApiClient", "provider_client"]
