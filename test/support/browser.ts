import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

/** Debian's chromium (which .ci/run installs), from CHROMIUM_PATH or PATH. */
const CHROMIUM =
  process.env.CHROMIUM_PATH ??
  (process.env.PATH ?? '')
    .split(delimiter)
    .map((dir) => join(dir, 'chromium'))
    .find((path) => existsSync(path));

/** Where the console tests write their screenshots (ignored by git). */
export const SCREENSHOTS =
  process.env.GOLDSNAP_SCREENSHOTS ?? fileURLToPath(new URL('../../.screenshots/console/', import.meta.url));

/** Why the console cannot be tested here, or false: it needs chromium and the built console. */
export function consoleSkipReason(): string | false {
  if (!(CHROMIUM && existsSync(CHROMIUM)))
    return 'no chromium on PATH: apt-get install chromium (or set CHROMIUM_PATH)';
  if (!existsSync(fileURLToPath(new URL('../../dist/console/index.html', import.meta.url)))) {
    return 'the console is not built: npm run build:console (npm test does it)';
  }
  return false;
}

/**
 * Headless chromium as this machine allows it: as root it needs --no-sandbox, and without the
 * background-networking flags it keeps trying hosts the closed network refuses.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
