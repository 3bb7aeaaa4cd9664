"""Gets a token through the proxy with azure-identity's ManagedIdentityCredential (sync).

The environment selects the protocol: AZURE_POD_IDENTITY_AUTHORITY_HOST (IMDS) or
IDENTITY_ENDPOINT + IDENTITY_HEADER (App Service). Checks the token and its expiry, prints a
JSON summary.

usage: python_client.py SCOPE EXPECTED_CLIENT_ID [CLIENT_ID_ARG]
"""

import base64
import json
import sys
import time

from azure.identity import ManagedIdentityCredential

scope, expected_client = sys.argv[1], sys.argv[2]
client_id = sys.argv[3] if len(sys.argv) > 3 else None
credential = ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
info = credential.get_token_info(scope)
now = time.time()
# The Entra stand-in's tokens are JWT-shaped: `appid` is the client, `aud` the scope's resource.
payload = info.token.split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
assert claims["appid"] == expected_client and claims["aud"] == scope.removesuffix("/.default"), claims
assert now + 3000 < info.expires_on <= now + 3600, (info.expires_on, now)
assert info.token_type.lower() == "bearer", info.token_type
# A second call is served from azure-identity's own cache or the proxy's: same token.
assert credential.get_token(scope).token == info.token
print(json.dumps({"client": "python azure-identity", "token": info.token, "expires_on": info.expires_on}))
