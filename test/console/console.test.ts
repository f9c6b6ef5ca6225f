import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { MiB, ServerUnderTest } from '../support/goldsnap-server.ts';

/** The web console in a real browser (Debian's chromium; .ci/run installs it). */
const CHROMIUM = process.env.CHROMIUM_PATH ?? (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'chromium')).find((path) => existsSync(path));
const skip = CHROMIUM && existsSync(CHROMIUM) ? false : 'no chromium on PATH: apt-get install chromium (or set CHROMIUM_PATH)';

let server: ServerUnderTest;
let browser: Browser;

before(async () => {
  if (skip) return;
  server = await ServerUnderTest.create({ catalog: 'pglite' });
  await server.start();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

test('sign in, back up a VM with live progress, and restore it from the console', { skip }, async () => {
  await server.createVm({
    name: 'console-vm', resourceGroup: 'rg-console', region: 'westeurope', tags: {},
    disks: [{ name: 'console-vm-os', sizeBytes: 16 * MiB, role: 'os', fill: 'os-like' }],
  });
  await server.api('GET', '/api/vms?refresh=true');
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(server.url);

  await page.fill('#token', 'gs_not-a-token');
  await page.click('#login button');
  await page.waitForSelector('#status.error');
  assert.match(await page.textContent('#status') ?? '', /token/i, 'a wrong token says so');

  await page.fill('#token', server.adminToken);
  await page.click('#login button');
  await page.waitForSelector('#vms tbody tr >> text=console-vm');
  await page.click('#vms tbody tr:has-text("console-vm") button:has-text("Back up now")');
  await page.waitForSelector('#runs:not([hidden])');
  await page.waitForSelector('#runs tbody tr:has-text("console-vm") td.step.succeeded', { timeout: 60_000 });
  const progress = await page.$eval('#runs tbody tr:has-text("console-vm") progress', (p) => [(p as HTMLProgressElement).value, (p as HTMLProgressElement).max]);
  assert.equal(progress[0], progress[1], 'the finished run shows a full progress bar');

  await page.click('nav a[data-view="points"]');
  await page.click('#points tbody tr:has-text("console-vm") button:has-text("Restore")');
  await page.fill('#restore input[name="name"]', 'from-console');
  await page.fill('#restore input[name="region"]', 'eastus');
  await page.click('#restore button[type="submit"]');
  await page.waitForSelector('#restore-result:has-text("Restored")', { timeout: 60_000 });
  assert.match(await page.textContent('#restore-result') ?? '', /from-console-console-vm-os \(eastus\)/);
  await page.screenshot({ path: `${server.dataDir}/console.png` });
  assert.deepEqual(errors, [], 'no script errors in the page');
});
