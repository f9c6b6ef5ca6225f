import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from './durable.ts';
import { errorMessage } from '../util/errors.ts';

const run = promisify(execFile);

export interface TlsMaterial {
  keyPem: string;
  certPem: string;
}

/**
 * Returns the emulator's self-signed certificate (a CA certificate that is also the server
 * certificate), generating it once with the openssl CLI into <dataDir>/tls/.
 */
export async function ensureTlsMaterial(dataDir: string, host: string): Promise<TlsMaterial> {
  const dir = join(dataDir, 'tls');
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  try {
    return { keyPem: await readFile(keyPath, 'utf8'), certPem: await readFile(certPath, 'utf8') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `gen-${process.pid}-${Date.now()}`);
  await mkdir(tmp, { recursive: true });
  const sans = new Set(['IP:127.0.0.1', 'IP:::1', 'DNS:localhost']);
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host) || host.includes(':')) sans.add(`IP:${host}`);
  else if (host !== '0.0.0.0') sans.add(`DNS:${host}`);
  try {
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      join(tmp, 'key.pem'),
      '-out',
      join(tmp, 'cert.pem'),
      '-days',
      '3650',
      '-subj',
      '/CN=Goldsnap Azure Emulator',
      '-addext',
      `subjectAltName=${[...sans].join(',')}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,digitalSignature,keyCertSign',
    ]);
  } catch (err) {
    throw new Error(`emulator: could not generate a TLS certificate with the openssl CLI: ${errorMessage(err)}`);
  }
  // Certificate first, key last: the key's presence marks a complete pair.
  await rename(join(tmp, 'cert.pem'), certPath);
  await rename(join(tmp, 'key.pem'), keyPath);
  await rm(tmp, { recursive: true, force: true });
  await fsyncDir(dir);
  return { keyPem: await readFile(keyPath, 'utf8'), certPem: await readFile(certPath, 'utf8') };
}
