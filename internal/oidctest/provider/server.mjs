// Test-only OpenID provider: panva's oidc-provider (OpenID Certified) with
// the accounts, clients and lifetimes of one test, started by the Go
// harness in internal/oidctest. It serves HTTPS on 127.0.0.1 only, with a
// key and certificate the harness made from a throwaway CA.
//
// Usage: node server.mjs CONFIG.json
// It prints one line "listening https://127.0.0.1:PORT" on stdout once the
// issuer is known and requests are served; everything else goes to stderr.
//
// The login page checks passwords against the accounts file, which is read
// again on every lookup, so that a test can change a user's groups or
// disable them while the provider runs (a disabled account is one the
// provider no longer finds: refresh fails, login is refused with
// access_denied). The pages are plain HTML forms so the harness can drive
// them with net/http.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { parse as parseQuery } from 'node:querystring';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

// readAccounts returns the accounts as the test last wrote them. The Go side
// replaces the file by rename, so a read never sees half a file.
function readAccounts() {
  return JSON.parse(readFileSync(config.accounts_file, 'utf8'));
}

function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${escapeHTML(title)}</title></head>\n<body><h1>${escapeHTML(title)}</h1>\n${body}\n</body></html>\n`;
}

async function findAccount(_ctx, id) {
  const acct = readAccounts()[id];
  if (!acct || acct.disabled) {
    return undefined;
  }
  return {
    accountId: id,
    async claims() {
      // Read again: the groups are those at the time the token is made.
      const now = readAccounts()[id] || acct;
      return {
        sub: id,
        preferred_username: now.username ?? id,
        name: now.name ?? id,
        email: now.email ?? `${id}@example.test`,
        email_verified: true,
        groups: now.groups ?? [],
      };
    },
  };
}

function jwks() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return { keys: [{ ...rsa, kid: 'rsa-1', use: 'sig', alg: 'RS256' }, { ...ec, kid: 'ec-1', use: 'sig', alg: 'ES256' }] };
}

function deviceFlow() {
  return {
    enabled: true,
    charset: 'base-20',
    mask: '****-****',
    async userCodeInputSource(ctx, form, _out, err) {
      const msg = err ? `<p class="error">${escapeHTML(err.userCode ? 'the code is not known' : err.message)}</p>` : '<p>Enter the code displayed on your device</p>';
      ctx.body = page('Device sign-in', `${msg}\n${form}\n<button type="submit" form="op.deviceInputForm">Continue</button>`);
    },
    async userCodeConfirmSource(ctx, form, client, _deviceInfo, userCode) {
      ctx.body = page('Confirm device', `<p>${escapeHTML(client.clientId)} asks for code <code>${escapeHTML(userCode)}</code></p>\n${form}\n<button type="submit" form="op.deviceConfirmForm">Continue</button>`);
    },
    async successSource(ctx) {
      ctx.body = page('Device signed in', '<p>You can return to your device.</p>');
    },
  };
}

function providerConfig() {
  return {
    clients: config.clients,
    findAccount,
    jwks: jwks(),
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    // The relying party reads the groups from the ID token, as most do.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      deviceFlow: deviceFlow(),
      revocation: { enabled: true },
    },
    pkce: { required: (_ctx, client) => client.tokenEndpointAuthMethod === 'none' },
    // A refresh token for every client allowed the grant: the public one
    // too, and without the consent prompt that offline_access needs.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      IdToken: config.id_token_ttl || 3600,
      AccessToken: config.id_token_ttl || 3600,
      DeviceCode: config.device_code_ttl || 600,
      RefreshToken: 86400,
      Interaction: 600,
      Session: 3600,
      Grant: 86400,
    },
    loadExistingGrant: async (ctx) => {
      // Consent is asked once per account and client, and then reused.
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<p class="error">${escapeHTML(out.error)}: ${escapeHTML(out.error_description || '')}</p>`);
    },
  };
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 65536) {
      throw new Error('form too large');
    }
    chunks.push(c);
  }
  return parseQuery(Buffer.concat(chunks).toString('utf8'));
}

function loginForm(uid, error) {
  const msg = error ? `<p class="error">${escapeHTML(error)}</p>\n` : '';
  return page('Sign-in', `${msg}<form id="login" method="post" action="/interaction/${uid}/login">
<input type="text" name="login" placeholder="user name">
<input type="password" name="password" placeholder="password">
<button type="submit">Sign in</button>
</form>
<form id="abort" method="post" action="/interaction/${uid}/abort"><button type="submit">Cancel</button></form>`);
}

function consentForm(uid, clientId, scopes) {
  return page('Authorize', `<p>${escapeHTML(clientId)} asks for: ${escapeHTML(scopes.join(' '))}</p>
<form id="consent" method="post" action="/interaction/${uid}/confirm">
<button type="submit">Allow</button>
</form>
<form id="abort" method="post" action="/interaction/${uid}/abort"><button type="submit">Deny</button></form>`);
}

async function showInteraction(provider, req, res) {
  const { uid, prompt, params } = await provider.interactionDetails(req, res);
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  if (prompt.name === 'login') {
    res.end(loginForm(uid));
  } else {
    res.end(consentForm(uid, params.client_id, String(params.scope || '').split(' ')));
  }
}

async function submitLogin(provider, req, res) {
  const { uid, prompt } = await provider.interactionDetails(req, res);
  if (prompt.name !== 'login') {
    throw new Error(`login submitted at prompt ${prompt.name}`);
  }
  const form = await readForm(req);
  const acct = readAccounts()[form.login];
  if (!acct || acct.password !== form.password) {
    res.statusCode = 401;
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(loginForm(uid, 'wrong user name or password'));
    return;
  }
  if (acct.disabled) {
    await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the account is disabled' }, { mergeWithLastSubmission: false });
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: form.login } }, { mergeWithLastSubmission: false });
}

async function submitConsent(provider, req, res) {
  const { prompt: { name, details }, grantId, session, params } = await provider.interactionDetails(req, res);
  if (name !== 'consent') {
    throw new Error(`consent submitted at prompt ${name}`);
  }
  const grant = grantId ? await provider.Grant.find(grantId) : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (details.missingOIDCScope) {
    grant.addOIDCScope(details.missingOIDCScope.join(' '));
  }
  if (details.missingOIDCClaims) {
    grant.addOIDCClaims(details.missingOIDCClaims);
  }
  if (details.missingResourceScopes) {
    for (const [indicator, scope] of Object.entries(details.missingResourceScopes)) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
  }
  await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
}

async function abort(provider, req, res) {
  await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user denied the request' }, { mergeWithLastSubmission: false });
}

// interaction serves our own login and consent pages; the rest of the
// protocol is the provider's.
async function interaction(provider, req, res) {
  const path = new URL(req.url, 'https://x').pathname;
  const m = path.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?$/);
  if (!m) {
    return false;
  }
  try {
    if (!m[2] && req.method === 'GET') {
      await showInteraction(provider, req, res);
    } else if (m[2] === 'login' && req.method === 'POST') {
      await submitLogin(provider, req, res);
    } else if (m[2] === 'confirm' && req.method === 'POST') {
      await submitConsent(provider, req, res);
    } else if (m[2] === 'abort' && req.method === 'POST') {
      await abort(provider, req, res);
    } else {
      res.statusCode = 405;
      res.end('method not allowed\n');
    }
  } catch (err) {
    console.error('interaction:', err);
    if (!res.headersSent) {
      res.statusCode = 400;
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(page('Error', `<p class="error">${escapeHTML(err.message)}</p>`));
    }
  }
  return true;
}

const server = createServer({ key: readFileSync(config.key_file), cert: readFileSync(config.cert_file) });
server.listen(config.port || 0, '127.0.0.1', () => {
  const issuer = `https://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, providerConfig());
  provider.on('server_error', (_ctx, err) => console.error('server_error:', err));
  provider.on('grant.error', (_ctx, err) => console.error('grant.error:', err.message, err.error_description || ''));
  const handle = provider.callback();
  server.on('request', async (req, res) => {
    if (!(await interaction(provider, req, res))) {
      handle(req, res);
    }
  });
  console.log(`listening ${issuer}`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
