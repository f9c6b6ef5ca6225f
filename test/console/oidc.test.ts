import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import Provider from 'oidc-provider';
import type { Browser } from 'playwright-core';
import { ServerUnderTest } from '../support/goldsnap-server.ts';
import { consoleSkipReason, launchChromium } from '../support/browser.ts';

/**
 * Console sign-in through OpenID Connect, against a real provider (oidc-provider) run on loopback
 * by the test, whose users' groups map to Goldsnap roles. Driven in Chromium.
 */
const skip = consoleSkipReason();

const groupsOf: Record<string, string[]> = {
  alice: ['staff', 'backup-admins'],
  bob: ['staff'],
  carol: ['contractors'],
};

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

let server: ServerUnderTest;
let idp: Server;
let browser: Browser;
let port: number;

before(async () => {
  if (skip) return;
  const idpPort = await freePort();
  port = await freePort();
  const provider = new Provider(`http://127.0.0.1:${idpPort}`, {
    clients: [
      {
        client_id: 'goldsnap',
        client_secret: 'a-test-client-secret-of-some-length',
        redirect_uris: [`http://127.0.0.1:${port}/auth/oidc/callback`],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    claims: { openid: ['sub'], profile: ['preferred_username'], email: ['email'], groups: ['groups'] },
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, preferred_username: sub, email: `${sub}@test.invalid`, groups: groupsOf[sub] ?? [] }),
    }),
    cookies: { keys: ['a-test-cookie-key'] },
  });
  idp = createServer(provider.callback());
  await new Promise<void>((resolve) => idp.listen(idpPort, '127.0.0.1', resolve));
  server = await ServerUnderTest.create({
    catalog: 'pglite',
    env: {
      GOLDSNAP_OIDC_ISSUER: `http://127.0.0.1:${idpPort}`,
      GOLDSNAP_OIDC_CLIENT_ID: 'goldsnap',
      GOLDSNAP_OIDC_CLIENT_SECRET: 'a-test-client-secret-of-some-length',
      GOLDSNAP_OIDC_ROLES: 'admin=backup-admins,viewer=staff',
    },
  });
  await server.start(['--port', String(port)]);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
  await new Promise<void>((resolve) => (idp ? idp.close(() => resolve()) : resolve()));
});

async function signIn(user: string) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(server.url);
  await page.click('#oidc');
  await page.fill('input[name="login"]', user);
  await page.fill('input[name="password"]', 'anything');
  await page.click('button[type="submit"]');
  await page.click('button[type="submit"]'); // the provider's consent page
  return { context, page };
}

test('OpenID Connect sign-in: groups map to roles; no matching group, no access', { skip }, async () => {
  const alice = await signIn('alice');
  await alice.page.waitForSelector('#page-dashboard h1');
  assert.equal(new URL(alice.page.url()).hash, '#/dashboard', 'the token does not stay in the address bar');
  await alice.page.click('nav a[data-view="tokens"]');
  await alice.page.waitForSelector('#tokens tbody tr:has-text("oidc:alice")');
  assert.match(
    (await alice.page.textContent('#tokens tbody tr:has-text("oidc:alice")')) ?? '',
    /admin/,
    'backup-admins gives admin',
  );
  await alice.context.close();

  const bob = await signIn('bob');
  await bob.page.waitForSelector('#page-dashboard h1');
  const session = (await server.api('GET', '/api/tokens')).body.find((t: { name: string }) => t.name === 'oidc:bob');
  assert.equal(session.role, 'viewer', 'staff gives viewer');
  assert.ok(Date.parse(session.expiresAt) > Date.now(), 'a sign-in expires');
  await bob.page.click('nav a[data-view="tokens"]');
  await bob.page.waitForSelector('main .error');
  assert.match((await bob.page.textContent('main .error')) ?? '', /admin role/, 'a viewer does not manage tokens');
  await bob.context.close();

  const carol = await signIn('carol');
  await carol.page.waitForSelector('text=Sign-in failed');
  assert.match((await carol.page.textContent('body')) ?? '', /carol is in no group that gives a Goldsnap role/);
  await carol.context.close();

  const audit = (await server.api('GET', '/api/audit?action=SIGN-IN')).body as Array<{ actor: string; action: string }>;
  assert.deepEqual(audit.map((a) => a.actor).sort(), ['oidc:alice', 'oidc:bob']);
});

test('a sign-in survives a server restart between the redirect to the provider and its answer', { skip }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(server.url);
  await page.click('#oidc');
  await page.waitForSelector('input[name="login"]');
  // The login under way is in the catalog, not in the process that sent the browser away.
  await server.stop();
  await server.start(['--port', String(port)]);
  await page.fill('input[name="login"]', 'alice');
  await page.fill('input[name="password"]', 'anything');
  await page.click('button[type="submit"]');
  await page.click('button[type="submit"]'); // the provider's consent page
  await page.waitForSelector('#page-dashboard h1');
  assert.equal(new URL(page.url()).hash, '#/dashboard');
  await context.close();

  // A callback whose state was already used (or never issued) is refused.
  const replay = await fetch(new URL('/auth/oidc/callback?code=x&state=never-issued', server.url));
  assert.equal(replay.status, 400);
  assert.match(await replay.text(), /unknown or took over 10 minutes/);
});
