import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { tempDir } from '../support/disk-images.ts';
import {
  fileSystemTestsSkipReason,
  makeExt4,
  makePartitionedDisk,
  makeSourceTree,
  MiB,
} from '../support/file-systems.ts';
import { ServerUnderTest } from '../support/goldsnap-server.ts';
import { backUpVmHoldingImage } from '../support/vm-holding-image.ts';
import { consoleSkipReason, launchChromium, SCREENSHOTS } from '../support/browser.ts';

/**
 * The console's Files page in a real browser (Debian's chromium): a VM whose disk holds a GPT
 * partition with ext4 is backed up; the user browses the point's files, searches a name and
 * downloads files, whose bytes must be the source's. Needs root and /dev/fuse like the other
 * file-level restore tests.
 */
const skip =
  consoleSkipReason() ||
  (fileSystemTestsSkipReason(['mkfs.ext4', 'sfdisk', 'nbdfuse', 'fuse2fs', 'fusermount3', 'tar']) ?? false);
const SHOTS = SCREENSHOTS;
const exec = promisify(execFile);

test("the console browses a recovery point's files, searches by name and downloads files as archives; usable at 390 px", {
  skip,
}, async (t) => {
  const dir = await tempDir(t, 'goldsnap-console-files-');
  const tree = join(dir, 'tree');
  await makeSourceTree(tree);
  await makeExt4(join(dir, 'fs.img'), 40 * MiB, tree);
  const image = join(dir, 'disk.img');
  await makePartitionedDisk(image, 48 * MiB, 'gpt', join(dir, 'fs.img'));

  const server = await ServerUnderTest.create({ catalog: 'pglite' });
  t.after(() => server.dispose());
  await server.start();
  const run = await backUpVmHoldingImage(server, 'files-vm', image);
  assert.equal(run.step, 'succeeded', run.error);

  await mkdir(SHOTS, { recursive: true });
  const browser = await launchChromium();
  t.after(() => browser.close());
  const context = await browser.newContext({
    timezoneId: 'Europe/Paris',
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(server.url);
  await page.fill('#token', server.adminToken);
  await page.click('#login button');

  // From the run's detail page to the point's files: the one ext4 partition is picked.
  await page.goto(`${server.url}/#/runs/${run.id}`);
  await page.click('#point-files');
  await page.waitForSelector('#files tbody tr:has-text("data/")', { timeout: 120_000 });
  assert.match((await page.locator('#partition option:checked').textContent()) ?? '', /files-vm-os #1.*ext4/);

  // Into /data: names, sizes, modes and times in the operator's zone (2024-05-06 07:08:09 UTC).
  await page.click('#files button:has-text("data/")');
  const notes = page.locator('#files tbody tr', { hasText: 'notes.txt' });
  await notes.waitFor();
  assert.match((await notes.textContent()) ?? '', /10 B.*-rw-.*1000:100.*2024-05-06 09:08:09/);
  assert.match((await page.locator('#files tbody tr', { hasText: 'run.sh' }).textContent()) ?? '', /-rwxr-xr-x/);
  assert.match((await page.textContent('#breadcrumbs')) ?? '', /\/\s*data/);
  await page.locator('#files tbody tr', { hasText: 'big.bin' }).waitFor();
  await shot(page, 'files');
  const big = await downloaded(
    page,
    page.locator('#files tbody tr', { hasText: 'big.bin' }).locator('button', { hasText: 'Download' }),
    join(dir, 'got-big'),
  );
  assert.deepEqual(await readFile(join(big, 'big.bin')), await readFile(join(tree, 'data/big.bin')));

  // Search by name from the root: a plain word finds names containing it, anywhere below.
  await page.click('#breadcrumbs button:has-text("/")');
  await page.waitForSelector('#files tbody tr:has-text("etc/")');
  await page.fill('#file-search input[name="name"]', 'sshd');
  await page.click('#file-search button[type="submit"]');
  await page.waitForSelector('#search-info:has-text(": 1")');
  assert.deepEqual(await page.locator('#files tbody tr td:first-child').allTextContents(), ['/etc/ssh/sshd_config']);
  await shot(page, 'files-search');
  const config = await downloaded(
    page,
    page.locator('#files tbody tr', { hasText: 'sshd_config' }).locator('button', { hasText: 'Download' }),
    join(dir, 'got-config'),
  );
  assert.deepEqual(await readFile(join(config, 'sshd_config')), await readFile(join(tree, 'etc/ssh/sshd_config')));

  // A whole folder as one archive, back from the search through the breadcrumbs.
  await page.click('#file-search button:has-text("Clear")');
  await page.click('#files button:has-text("etc/")');
  await page.waitForSelector('#files tbody tr:has-text("hostname.link")');
  const etc = await downloaded(
    page,
    page.locator('#breadcrumbs button', { hasText: 'Download this folder' }),
    join(dir, 'got-etc'),
  );
  assert.equal(await readFile(join(etc, 'etc/hostname'), 'utf8'), 'web-01\n');

  // 390 px wide: the table becomes cards and nothing overflows sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the files page fits 390 px (is ${width} px wide)`);
  await shot(page, 'files-390');
  assert.deepEqual(errors, [], 'no script errors in the page');
  await context.close();
});

const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

/** Clicks a download button, saves the tar the browser gets and unpacks it into `to`. */
async function downloaded(page: Page, button: ReturnType<Page['locator']>, to: string): Promise<string> {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), button.click()]);
  assert.match(download.suggestedFilename(), /\.tar$/);
  await mkdir(to, { recursive: true });
  const tar = `${to}.tar`;
  await download.saveAs(tar);
  await exec('tar', ['-xf', tar, '-C', to]);
  await page.waitForSelector('#message:has-text("downloaded")');
  return to;
}
