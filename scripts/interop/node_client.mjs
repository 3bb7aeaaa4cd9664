// Gets a token through the proxy with @azure/identity's ManagedIdentityCredential.
// The environment selects the protocol (AZURE_POD_IDENTITY_AUTHORITY_HOST for IMDS,
// IDENTITY_ENDPOINT + IDENTITY_HEADER for App Service). usage: node_client.mjs SCOPE EXPECTED_CLIENT_ID [CLIENT_ID_ARG]
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const require = createRequire(process.env.AZWI_NODE_MODULES + "/");
const { ManagedIdentityCredential } = require("@azure/identity");

const [scope, expectedClient, clientId] = process.argv.slice(2);
const credential = clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();
const token = await credential.getToken(scope);
const now = Date.now();
// The Entra stand-in's tokens are JWT-shaped: `appid` is the client, `aud` the scope's resource.
const claims = JSON.parse(Buffer.from(token.token.split(".")[1], "base64url").toString());
assert.equal(claims.appid, expectedClient);
assert.equal(claims.aud, scope.replace(/\/\.default$/, ""));
assert.ok(token.expiresOnTimestamp > now + 3000e3 && token.expiresOnTimestamp <= now + 3600e3, String(token.expiresOnTimestamp));
console.log(JSON.stringify({ client: "node @azure/identity", token: token.token, expiresOnTimestamp: token.expiresOnTimestamp }));
