"""Signing in with an identity provider: which one (the server's list), its flow, its tokens.

What ``fap login`` does with them is :mod:`fap.client.login`; how the session is kept and renewed,
:mod:`fap.client.credentials`.
"""

from fap.client.signin.flows import ProviderGrant, renewed_tokens, sign_in_tokens
from fap.client.signin.oidc import ProviderTokens
from fap.client.signin.prompt import DeviceCode, SignInPrompt, browser_available
from fap.client.signin.providers import ProviderChoice, choose_provider

__all__ = (
    "DeviceCode",
    "ProviderChoice",
    "ProviderGrant",
    "ProviderTokens",
    "SignInPrompt",
    "browser_available",
    "choose_provider",
    "renewed_tokens",
    "sign_in_tokens",
)
