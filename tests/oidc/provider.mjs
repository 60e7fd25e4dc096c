// A real OpenID Connect provider for the tests: panva's oidc-provider (OpenID-certified), set up
// with the claims a GビズID connection carries. Test-only; it listens on 127.0.0.1 alone.
//
//   node tests/oidc/provider.mjs PORT
//
// prints "ready <issuer>" on stdout once it answers. Besides the provider's own endpoints
// (discovery, /auth, /token, /jwks, /session/end, open dynamic registration at /reg) it has
// two test-only controls:
//
//   PUT  /__test/accounts/<login>  {"sub": ..., "account_type": ..., ...}   the account's claims
//   POST /__test/tamper            {"mode": ...}   how the next token response's ID token is
//                                  rewritten, as a hostile provider or a machine in the middle
//                                  would: forged, expired, wrong_aud, alg_none, unknown_kid,
//                                  nonce, future=<seconds>, corporate_number=<13 digits>, or rotated (signed with a
//                                  new key that /jwks publishes from then on: a key rotation).
import { randomUUID } from 'node:crypto';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
if (!port) {
  console.error('usage: provider.mjs PORT');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

async function newKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

const signing = await newKey();
const published = [signing]; // keys /jwks shows, the first by the provider itself
const accounts = new Map();
let tamper = null;

// The GビズID claims, released with the profile scope (the portal asks for openid profile email).
const GBIZ_CLAIMS = ['account_type', 'corporate_number', 'corporate_name', 'name', 'user_id'];

const provider = new Provider(issuer, {
  jwks: { keys: [signing] },
  // Claims go into the signed ID token, where the portal reads them.
  conformIdTokenClaims: false,
  claims: {
    acr: null,
    amr: null,
    auth_time: null,
    iss: null,
    sid: null,
    openid: ['sub', 'acr', 'amr', 'auth_time'],
    profile: GBIZ_CLAIMS,
    email: ['email', 'email_verified'],
  },
  features: {
    devInteractions: { enabled: true }, // the provider's own sign-in page
    registration: { enabled: true }, // each test app registers its own redirect URI
    rpInitiatedLogout: { enabled: true },
  },
  pkce: { required: () => true },
  acrValues: ['gbiz:password', 'gbiz:mfa'],
  findAccount(ctx, id) {
    const claims = accounts.get(id);
    if (!claims) return undefined;
    // eslint-disable-next-line no-unused-vars
    const { password, acr, amr, ...released } = claims;
    return { accountId: id, claims: async () => ({ ...released, sub: id }) };
  },
  // The company's own connection: no consent page (GビズID asks none for a registered service).
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope || 'openid');
    await grant.save();
    return grant;
  },
  ttl: { AccessToken: 300, AuthorizationCode: 60, IdToken: 300, Interaction: 600, Session: 3600, Grant: 3600 },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

async function rewrite(idToken, mode) {
  const claims = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  let key = signing;
  let kid = signing.kid;
  switch (mode.split('=')[0]) {
    case 'forged': // the provider's kid, another key's signature
      key = await newKey();
      break;
    case 'unknown_kid':
      key = await newKey();
      kid = key.kid;
      break;
    case 'rotated':
      key = await newKey();
      kid = key.kid;
      published.push(key);
      break;
    case 'expired':
      claims.iat = now - 3600;
      claims.exp = now - 1800;
      break;
    case 'future': // the provider's clock runs ahead by N seconds
      claims.iat = now + Number(mode.split('=')[1]);
      claims.exp = claims.iat + 300;
      break;
    case 'wrong_aud': // issued to another service, naming this one only as the authorized party
      claims.azp = claims.aud;
      claims.aud = 'another-service';
      break;
    case 'nonce':
      claims.nonce = 'not-the-one-sent';
      break;
    case 'corporate_number':
      claims.corporate_number = mode.split('=')[1];
      break;
    case 'alg_none': {
      const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      return `${part({ alg: 'none', typ: 'JWT', kid })}.${part(claims)}.`;
    }
    default:
      throw new Error(`unknown tamper mode ${mode}`);
  }
  const privateKey = await jose.importJWK(key, 'RS256');
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid }).sign(privateKey);
}

async function readForm(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

provider.use(async (ctx, next) => {
  // The sign-in form of the provider's own page: the account's password is checked, and the
  // authentication context it was signed in with (acr, amr) recorded in the session.
  if (ctx.method === 'POST' && /^\/interaction\/[^/]+$/.test(ctx.path)) {
    const form = await readForm(ctx.req);
    const account = accounts.get(form.get('login'));
    if (!account || account.password !== form.get('password')) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = '<!DOCTYPE html><html lang="en"><title>Sign-in failed</title><p>Wrong login or password.</p></html>';
      return;
    }
    const result = { login: { accountId: form.get('login'), acr: account.acr, amr: account.amr } };
    ctx.respond = false;
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    return;
  }
  if (ctx.path.startsWith('/__test/')) {
    const body = await readJson(ctx.req);
    if (ctx.method === 'PUT' && ctx.path.startsWith('/__test/accounts/')) {
      accounts.set(decodeURIComponent(ctx.path.slice('/__test/accounts/'.length)), body);
    } else if (ctx.method === 'POST' && ctx.path === '/__test/tamper') {
      tamper = body.mode || null;
    } else {
      ctx.status = 404;
      return;
    }
    ctx.status = 204;
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && tamper && ctx.body?.id_token) {
    const mode = tamper;
    tamper = null;
    ctx.body = { ...ctx.body, id_token: await rewrite(ctx.body.id_token, mode) };
  } else if (ctx.path === '/jwks' && ctx.status === 200 && published.length > 1) {
    // eslint-disable-next-line no-unused-vars
    const publicKeys = published.slice(1).map(({ d, p, q, dp, dq, qi, ...pub }) => pub);
    ctx.body = { keys: [...ctx.body.keys, ...publicKeys] };
  }
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
