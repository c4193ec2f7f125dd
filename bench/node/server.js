// node-oidc-provider configured as a plain OAuth 2.0 authorization server, for the
// side-by-side rows of `python -m bench`.
//
// - in-memory storage, nothing durable: a plain Map adapter (below). oidc-provider's own
//   default MemoryAdapter is an LRU capped at 1000 entries, which would evict most of a
//   benchmark's pool of codes and refresh tokens before they are used,
// - one confidential client (client_secret_basic) with authorization_code, refresh_token
//   and client_credentials; PKCE not required for it; every refresh rotates,
// - introspection and revocation enabled,
// - /interaction/:uid logs the user in and grants the requested scope without a page, so a
//   cookie-keeping HTTP client can mint codes through the real authorization endpoint
//   (after the first one, the session and grant make /auth redirect straight to the client),
// - GET /v3/from-fields: a tiny bearer-protected route (opaque access token looked up in the
//   provider's store) standing in for consentry's from-fields read.
//
// Usage: node server.js PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
import http from 'node:http';

import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
if (!redirectUri) {
  console.error('usage: node server.js PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

// --- in-memory adapter: unbounded Maps, entries expire on read and in a periodic sweep ---
const store = new Map(); // "Model:id" -> { payload, exp (ms) }
const sessionUids = new Map(); // session uid -> id
const userCodes = new Map(); // device flow user code -> id
const grants = new Map(); // grantId -> Set of "Model:id" (for revokeByGrantId)
const GRANTABLE = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const exp = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(key, { payload, exp });
    if (this.model === 'Session' && payload.uid) sessionUids.set(payload.uid, id);
    if (payload.userCode) userCodes.set(payload.userCode, id);
    if (payload.grantId && GRANTABLE.has(this.model)) {
      let members = grants.get(payload.grantId);
      if (!members) grants.set(payload.grantId, (members = new Set()));
      members.add(key);
    }
  }

  async find(id) {
    const key = this.key(id);
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.exp <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = userCodes.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    const key = this.key(id);
    const entry = store.get(key);
    store.delete(key);
    if (entry?.payload.grantId) grants.get(entry.payload.grantId)?.delete(key);
  }

  async revokeByGrantId(grantId) {
    const members = grants.get(grantId);
    if (!members) return;
    for (const key of members) store.delete(key);
    grants.delete(grantId);
  }
}

setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) {
    if (entry.exp <= now) {
      store.delete(key);
      if (entry.payload.grantId) grants.get(entry.payload.grantId)?.delete(key);
    }
  }
}, 60_000).unref();
const ACCOUNT = 'bench-user';

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: [redirectUri],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  scopes: ['api', 'offline_access'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // a client may introspect and revoke only its own tokens (consentry's rule too)
    introspection: {
      enabled: true,
      allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
    },
    revocation: {
      enabled: true,
      allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
    },
  },
  pkce: { required: () => false },
  // plain OAuth 2.0: every code exchange gives a refresh token, every refresh rotates it
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 600,
    ClientCredentials: 86400,
    Grant: 30 * 24 * 3600,
    RefreshToken: 30 * 24 * 3600,
    Session: 14 * 24 * 3600,
    Interaction: 3600,
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['bench-cookie-key-not-secret'] },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

const FROM_FIELDS = JSON.stringify([
  {
    fromFieldId: 'V', href: `${issuer}/v3/from-fields/V`, email: 'bench@example.com',
    rewrittenEmail: null, name: 'Bench', isActive: 'true', isDefault: 'true',
    createdOn: '2024-01-01T00:00:00+0000', domain: { domainId: 'd', domain: 'example.com' },
  },
]);

function unauthorized(res) {
  res.writeHead(401, {
    'content-type': 'application/json',
    'www-authenticate': 'Bearer error="invalid_token"',
  });
  res.end('{"httpStatus":401,"code":1014}');
}

async function fromFields(req, res) {
  const m = /^Bearer ([A-Za-z0-9_.~+/-]+=*)$/.exec(req.headers.authorization || '');
  if (!m) return unauthorized(res);
  const token = await provider.AccessToken.find(m[1]);
  if (!token || token.isExpired) return unauthorized(res);
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  return res.end(FROM_FIELDS);
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const grant = new provider.Grant({ accountId: ACCOUNT, clientId: details.params.client_id });
  if (details.params.scope) grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: ACCOUNT }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  const path = req.url.split('?', 1)[0];
  let handler = null;
  if (path === '/v3/from-fields' && req.method === 'GET') handler = fromFields;
  else if (path.startsWith('/interaction/')) handler = interaction;
  else if (path === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
    return;
  }
  if (!handler) {
    callback(req, res);
    return;
  }
  handler(req, res).catch((err) => {
    console.error(err);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});
server.keepAliveTimeout = 65000;
server.listen(Number(port), '127.0.0.1', () => console.log(`listening on ${issuer}`));
