import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';
import { consoleSkipReason, launchChromium, SCREENSHOTS } from '../support/browser.ts';

/**
 * The web console (React, built by `npm run build:console`) in a real browser: Debian's chromium,
 * which .ci/run installs. Screenshots of every page, wide and 390 px narrow, go to
 * GOLDSNAP_SCREENSHOTS (default .screenshots/console in the repository, ignored by git).
 */
const skip = consoleSkipReason();
const SHOTS = SCREENSHOTS;

let server: ServerUnderTest;
let browser: Browser;

before(async () => {
  if (skip) return;
  server = await ServerUnderTest.create({ catalog: 'pglite' });
  await server.start();
  await mkdir(SHOTS, { recursive: true });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

test('the console: sign in, dashboard, back up, runs and their detail, policy forms, restore wizard, tokens, audit log; lists searched and paged; usable at 390 px', {
  skip,
}, async () => {
  await server.createVm({
    name: 'console-vm',
    resourceGroup: 'rg-console',
    region: 'westeurope',
    tags: {},
    disks: [{ name: 'console-vm-os', sizeBytes: 16 * MiB, role: 'os', fill: 'os-like' }],
  });
  await server.api('GET', '/api/vms?refresh=true');
  const context = await browser.newContext({ timezoneId: 'Europe/Paris', viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('dialog', (d) => void d.accept());
  await page.goto(server.url);

  // Sign in.
  await page.fill('#token', 'gs_not-a-token');
  await page.click('#login button');
  await page.waitForSelector('#status.error');
  assert.match((await page.textContent('#status')) ?? '', /token/i, 'a wrong token says so');
  await shot(page, 'sign-in');
  await page.fill('#token', server.adminToken);
  await page.click('#login button');

  // Dashboard: the VM, unprotected; times in the operator's zone, named.
  const row = page.locator('#vms tbody tr', { hasText: 'console-vm' });
  await row.waitFor();
  assert.equal(await page.textContent('.zone'), 'Times in Europe/Paris');
  assert.match((await row.textContent()) ?? '', /unprotected/);
  // Live updates patch the page in place: the button under the pointer survives a refresh.
  const button = await row.locator('button', { hasText: 'Back up now' }).elementHandle();
  await button!.hover();
  const updated = await page.textContent('main > p.small');
  await page.waitForFunction((before) => document.querySelector('main > p.small')?.textContent !== before, updated);
  assert.equal(await button!.evaluate((el) => el.isConnected), true, 'the refresh kept the element under the pointer');
  await button!.click();
  await page.waitForSelector('#message:has-text("Backup of console-vm started")');
  // The chart is drawn (uPlot, canvas); the VM list is searched and filtered by the server.
  await page.waitForSelector('#daily-chart canvas');
  await page.fill('#vm-filters input[name="q"]', 'console');
  await page.waitForSelector('#vm-page-info:has-text("1–1 of 1")');
  await page.selectOption('#vm-filters select[name="protected"]', 'true');
  await page.waitForSelector('#vm-page-info:has-text("No VM matches")');
  await page.selectOption('#vm-filters select[name="protected"]', '');
  await page.fill('#vm-filters input[name="q"]', '');
  await row.waitFor();
  await shot(page, 'dashboard');

  // Runs: the run succeeds; filters and the detail page.
  await page.click('nav a[data-view="runs"]');
  await page.waitForSelector('#runs tbody tr:has-text("console-vm") td.step.succeeded', { timeout: 120_000 });
  assert.match((await page.textContent('#runs tbody tr:has-text("console-vm")')) ?? '', /full.*user/);
  await page.selectOption('select[name="kind"]', 'incremental');
  await page.waitForSelector('#page-info:has-text("No run matches")');
  await page.selectOption('select[name="kind"]', 'full');
  await page.waitForSelector('#page-info:has-text("1–1 of 1")');
  await shot(page, 'runs');
  await page.click('#runs tbody tr:has-text("console-vm") a');
  await page.waitForSelector('#run-facts:has-text("succeeded")');
  assert.match((await page.textContent('#run-disks')) ?? '', /console-vm-os.*full/);
  assert.match((await page.textContent('#run-events')) ?? '', /created by a user.*committed/s);
  await shot(page, 'run-detail');

  // Policies: created, edited, paused and deleted in forms.
  await page.click('nav a[data-view="policies"]');
  await page.click('#new-policy');
  await page.fill('#policy-form input[name="name"]', 'console-nightly');
  await page.fill('#policy-form input[name="cron"]', '0 3 * * *');
  await page.check('#policy-form input[name="vm"]');
  await page.fill('#policy-form input[name="keep-last"]', '3');
  await shot(page, 'policy-form');
  await page.click('#policy-form button[type="submit"]');
  const policy = page.locator('#policies tbody tr', { hasText: 'console-nightly' });
  await policy.waitFor();
  assert.match((await policy.textContent()) ?? '', /VMs console-vm.*last 3.*03:00 Europe\/Paris/);
  await policy.locator('button', { hasText: 'Edit' }).click();
  await page.fill('#policy-form input[name="keep-daily"]', '7');
  await page.click('#policy-form button[type="submit"]');
  await page.waitForSelector('#policies tbody tr:has-text("console-nightly"):has-text("last 3, 7 daily")');
  await policy.locator('button', { hasText: 'Pause' }).click();
  await page.waitForSelector('#policies tbody tr.paused:has-text("console-nightly")');
  await page.selectOption('#policy-filters select[name="enabled"]', 'true');
  await page.waitForSelector('#policy-page-info:has-text("No policy matches")');
  await page.selectOption('#policy-filters select[name="enabled"]', 'false');
  await page.fill('#policy-filters input[name="q"]', 'nightly');
  await page.waitForSelector('#policy-page-info:has-text("1–1 of 1")');
  await shot(page, 'policies');
  await policy.locator('button', { hasText: 'Delete' }).click();
  await page.waitForSelector('#message:has-text("console-nightly deleted")');
  // The list reloads after the message: wait for the row to go rather than count at once.
  await page.locator('#policies tbody tr', { hasText: 'console-nightly' }).waitFor({ state: 'detached' });

  // Restore wizard: point, disks, where, progress.
  await page.click('nav a[data-view="restore"]');
  await page.fill('#point-filters input[name="vm"]', 'no-such-vm');
  await page.waitForSelector('#point-page-info:has-text("No recovery point matches")');
  await page.fill('#point-filters input[name="vm"]', 'console-vm');
  await page.waitForSelector('#point-page-info:has-text("1–1 of 1")');
  await page.click('#points tbody tr:has-text("console-vm") button:has-text("Restore")');
  await page.click('#restore-disks button[type="submit"]');
  await page.fill('#restore input[name="name"]', 'from-console');
  await page.fill('#restore input[name="region"]', 'eastus');
  await shot(page, 'restore');
  await page.click('#restore button[type="submit"]');
  await page.waitForSelector('#restore-result:has-text("Restored")', { timeout: 120_000 });
  assert.match((await page.textContent('#restore-result')) ?? '', /from-console-console-vm-os \(eastus\)/);
  await shot(page, 'restore-done');
  // The restore is listed (server-side filters) once the wizard is left.
  await page.click('nav a[data-view="runs"]');
  await page.click('nav a[data-view="restore"]');
  await page.selectOption('#restore-filters select[name="state"]', 'done');
  await page.waitForSelector('#restores tbody tr:has-text("from-console")');
  await page.fill('#restore-filters input[name="q"]', 'no-such-restore');
  await page.waitForSelector('#restore-page-info:has-text("No restore matches")');

  // Tokens: created (secret shown once), listed, revoked; the audit log shows it.
  await page.click('nav a[data-view="tokens"]');
  await page.fill('#token-form input[name="name"]', 'robot');
  await page.selectOption('#token-form select[name="role"]', 'operator');
  await page.click('#token-form button[type="submit"]');
  assert.match((await page.textContent('#new-token')) ?? '', /gs_/);
  await page.selectOption('#token-filters select[name="role"]', 'operator');
  await page.waitForSelector('#token-page-info:has-text("1–1 of 1")');
  await shot(page, 'tokens');
  await page.click('#tokens tbody tr:has-text("robot") button:has-text("Revoke")');
  await page.waitForSelector('#message:has-text("robot revoked")');
  await page.waitForSelector('#token-page-info:has-text("No token matches")');

  // Audit log: its own page, searched by who, what, outcome and time.
  await page.click('nav a[data-view="audit"]');
  await page.waitForSelector('#audit tbody tr:has-text("DELETE /api/tokens/:id")');
  assert.match((await page.textContent('#audit')) ?? '', /admin \(admin\).*POST \/api\/tokens/s);
  await page.fill('#audit-filters input[name="action"]', 'DELETE /api/tokens');
  await page.waitForSelector('#audit-page-info:has-text("1–1 of 1")');
  await page.fill('#audit-filters input[name="actor"]', 'robot');
  await page.waitForSelector('#audit-page-info:has-text("No change matches")');
  await page.fill('#audit-filters input[name="actor"]', 'admin');
  await page.waitForSelector('#audit-page-info:has-text("1–1 of 1")');
  await page.fill('#audit-filters input[name="since"]', '2099-01-01T00:00');
  await page.waitForSelector('#audit-page-info:has-text("No change matches")');
  await page.fill('#audit-filters input[name="since"]', '');
  await page.fill('#audit-filters input[name="action"]', '');
  await page.fill('#audit-filters input[name="actor"]', '');
  await page.waitForSelector('#audit tbody tr:has-text("PATCH /api/policies/:id")');
  await shot(page, 'audit');

  // 390 px wide: nothing overflows sideways on any page.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const view of ['dashboard', 'runs', 'policies', 'restore', 'tokens', 'audit']) {
    await page.click(`nav a[data-view="${view}"]`);
    await page.waitForSelector(`#page-${view} h1`);
    await page.waitForSelector(`#page-${view} table`);
    await page.waitForLoadState('networkidle');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `${view} fits 390 px (is ${width} px wide)`);
    await shot(page, `${view}-390`);
  }
  assert.deepEqual(errors, [], 'no script errors in the page');
  await context.close();
});
