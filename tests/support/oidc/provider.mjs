// A real OpenID Connect provider for fap's tests: oidc-provider on loopback, with the device
// authorization grant (RFC 8628), its development sign-in pages and an in-memory store.
//
//   node provider.mjs CONFIG.json
//
// CONFIG (written by tests/support/oidc_provider.py):
//   host, port          where to listen; port 0 lets the kernel choose (no race for a free port)
//   path                the issuer's path prefix ("" or e.g. "/tenant"); everything is served under it
//   tls                 {cert, key}: PEM file paths to serve https, or null for http
//   clients             oidc-provider client metadata, passed through as they are
//   accounts            [{subject, email, email_verified, name}]
//   ttl                 seconds per artifact: {DeviceCode, AccessToken, IdToken, RefreshToken, ...}
//   poll_interval       the `interval` (seconds) device authorization responses carry
//   enforce_poll_interval  answer `slow_down` to a device-code poll sooner than the interval
//   jwks                {keys: [private JWKs]} to sign with; absent: one RS256 key made here
//
// Once listening it prints one line, `READY <issuer>`, on stdout. It exits on SIGTERM or SIGINT,
// and when its stdin closes: the test runner holds that pipe, so the provider cannot outlive it.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { performance } from 'node:perf_hooks';

import { Provider } from 'oidc-provider';

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// oidc-provider 9 calls URL.parse (Node.js 20.18 and later): say so rather than fail on a request.
if (typeof URL.parse !== 'function') {
  console.error(`error: oidc-provider 9 needs Node.js 20.18 or later; this is ${process.version}`);
  process.exit(2);
}

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const prefix = (config.path ?? '').replace(/\/+$/, '');

function signingKeys() {
  if (config.jwks) return config.jwks;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' }] };
}

const accounts = new Map(config.accounts.map((account) => [account.subject, account]));

// oidc-provider asks for an account by the id it was given (the login page's `login` field, the
// grant's accountId); the returned accountId must be that same id, and it becomes `sub`.
async function findAccount(_ctx, id) {
  const account = accounts.get(id);
  if (account === undefined) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        email: account.email,
        email_verified: account.email_verified,
        name: account.name,
        // What msal shows as an account's username, as Entra ID sends it.
        preferred_username: account.email,
      };
    },
  };
}

function listening(server, port, host) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server.address().port));
  });
}

const server = config.tls
  ? https.createServer({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) })
  : http.createServer();
// The issuer names the port, so the provider is made once the port is known.
const port = await listening(server, config.port, config.host);
const issuer = `${config.tls ? 'https' : 'http'}://${config.host}:${port}${prefix}`;

const provider = new Provider(issuer, {
  clients: config.clients,
  findAccount,
  jwks: signingKeys(),
  // Scopes name the claims they release; `email` and `profile` become scopes by being keys here.
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  scopes: ['openid', 'offline_access'],
  // By default the claims of scopes go to userinfo only when an access token is issued; fap's
  // server reads `email` from the ID token, as it gets it from Entra ID or Google.
  conformIdTokenClaims: false,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    deviceFlow: { enabled: true },
    devInteractions: { enabled: true },
    revocation: { enabled: true },
  },
  ttl: {
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
    ...config.ttl,
  },
});

provider.on('server_error', (_ctx, error) => console.error('server_error', error));
for (const event of ['grant.error', 'device_authorization.error', 'code_verification.error']) {
  provider.on(event, (_ctx, error) => {
    if (error.error !== 'authorization_pending') console.log(event, error.name, error.message);
  });
}

// RFC 8628 §3.2 `interval`, which oidc-provider leaves out (clients then wait 5 s between polls),
// and, when asked, §3.5 `slow_down` for a device code polled sooner than that. A poll's time is
// taken as it arrives: a client that waits the interval after each answer is never too soon.
const lastPoll = new Map();
provider.use(async (ctx, next) => {
  const arrived = performance.now();
  await next();
  console.log(`${ctx.method} ${prefix}${ctx.path} ${ctx.status}`);
  const route = ctx.oidc?.route;
  if (route === 'device_authorization' && ctx.status === 200) {
    ctx.body.interval = config.poll_interval;
  }
  if (route !== 'token' || ctx.oidc.params?.grant_type !== DEVICE_CODE_GRANT) return;
  const deviceCode = ctx.oidc.params.device_code;
  const previous = lastPoll.get(deviceCode);
  if (ctx.body?.error !== 'authorization_pending') {
    lastPoll.delete(deviceCode);
    return;
  }
  lastPoll.set(deviceCode, arrived);
  if (config.enforce_poll_interval && previous !== undefined
      && arrived - previous < config.poll_interval * 1000) {
    ctx.body = {
      error: 'slow_down',
      error_description: `poll at most once every ${config.poll_interval} s`,
    };
  }
});

const callback = provider.callback();
// Mounted under the issuer's path: oidc-provider builds its URLs from req.baseUrl (as under an
// express mount), so discovery, forms and cookie paths all carry the prefix.
server.on('request', (req, res) => {
  const url = req.url ?? '/';
  if (prefix && !(url === prefix || url.startsWith(`${prefix}/`) || url.startsWith(`${prefix}?`))) {
    res.writeHead(404).end();
    return;
  }
  req.baseUrl = prefix;
  const rest = url.slice(prefix.length);
  req.url = rest.startsWith('/') ? rest : `/${rest}`;
  callback(req, res);
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

console.log(`READY ${issuer}`);
