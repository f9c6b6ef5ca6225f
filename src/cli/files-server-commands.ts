import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { Command, InvalidArgumentError } from 'commander';
import type { FileEntry } from '../files/file-ops.ts';
import { errorMessage } from '../util/errors.ts';

interface Options {
  server?: string;
  token?: string;
  data?: string;
  json?: boolean;
  disk?: string;
  partition?: number;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The server and token, found the way the other server commands find them. */
function connection(opts: Options): { url: string; token: string } {
  const data = opts.data ?? process.env.GOLDSNAP_DATA ?? '.goldsnap';
  const saved = readText(join(data, 'server.json'));
  const url =
    opts.server ??
    process.env.GOLDSNAP_SERVER ??
    (saved ? (JSON.parse(saved) as { url?: string }).url : undefined) ??
    'http://127.0.0.1:8420';
  const token = opts.token ?? process.env.GOLDSNAP_TOKEN ?? readText(join(data, 'admin-token'));
  if (!token)
    throw new Error(
      'no API token: set GOLDSNAP_TOKEN (the server wrote an admin token to <data>/admin-token on its first start)',
    );
  return { url, token };
}

async function request(
  opts: Options,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
): Promise<Response> {
  const { url, token } = connection(opts);
  const u = new URL(path, url);
  for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.set(k, String(v));
  let res: Response;
  try {
    res = await fetch(u, { headers: { authorization: `Bearer ${token}` } });
  } catch (err) {
    throw new Error(
      `cannot reach the goldsnap server at ${url} (${(err as Error).cause ?? errorMessage(err)}): is \`goldsnap server\` running? (--server / GOLDSNAP_SERVER)`,
    );
  }
  if (!res.ok) {
    const text = await res.text();
    let message = text;
    try {
      message = (JSON.parse(text) as { error?: string }).error ?? text;
    } catch {
      /* not JSON */
    }
    throw new Error(`${message} (HTTP ${res.status})`);
  }
  return res;
}

function common(cmd: Command): Command {
  return cmd
    .option('--server <url>', 'server URL (env GOLDSNAP_SERVER; default from <data>/server.json)')
    .option('--token <token>', 'API token (env GOLDSNAP_TOKEN; default <data>/admin-token)')
    .option('--data <dir>', "the server's data folder, to find its URL and admin token (env GOLDSNAP_DATA)")
    .option('--disk <name>', 'which disk, when the recovery point has several')
    .option('--partition <n>', 'which partition, when the disk has several file systems', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`"${v}" is not a partition number`);
      return n;
    })
    .option('--json', 'print JSON');
}

/** `goldsnap files …`: file-level restore from recovery points of protected VMs, through the server. */
export function filesCommand(): Command {
  const files = new Command('files').description(
    "browse and fetch files of a VM's recovery point through the server, without restoring its disks",
  );

  common(files.command('partitions <point>'))
    .description('disks, partitions and file systems of a recovery point')
    .action(async (point: string, opts: Options) => {
      const body = (await (
        await request(opts, `/api/recovery-points/${encodeURIComponent(point)}/partitions`, {})
      ).json()) as {
        disks: { name: string; scheme: string; partitions: { number: number; fs: string; sizeBytes: number }[] }[];
      };
      process.stdout.write(
        opts.json
          ? `${JSON.stringify(body, null, 2)}\n`
          : `${body.disks.flatMap((d) => [`${d.name}  ${d.scheme}`, ...d.partitions.map((p) => `  ${p.number}  ${p.fs}  ${p.sizeBytes} bytes`)]).join('\n')}\n`,
      );
    });

  common(files.command('ls <point> [path]'))
    .description('list a folder (or a file) of a recovery point')
    .option('-R, --recursive', 'the whole tree under the folder')
    .option('--name <pattern>', 'only entries whose name matches (*, ?; any case), searched in the whole tree')
    .action(async (point: string, path: string | undefined, opts: Options & { recursive?: boolean; name?: string }) => {
      const body = (await (
        await request(opts, `/api/recovery-points/${encodeURIComponent(point)}/files`, {
          path: path ?? '/',
          disk: opts.disk,
          partition: opts.partition,
          recursive: opts.recursive || undefined,
          name: opts.name,
        })
      ).json()) as { entries: FileEntry[] };
      process.stdout.write(
        opts.json
          ? `${JSON.stringify(body, null, 2)}\n`
          : body.entries
              .map(
                (e) =>
                  `${e.type.padEnd(7)} ${e.mode.toString(8).padStart(4, '0')} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${String(e.size).padStart(12)} ${e.mtime.slice(0, 19).replace('T', ' ')} ${e.path}${e.target !== undefined ? ` -> ${e.target}` : ''}\n`,
              )
              .join(''),
      );
    });

  common(files.command('get <point> <paths...>'))
    .description('copy files or folders out of a recovery point, keeping modes, owners, times and symlinks')
    .requiredOption('--to <dir>', 'folder to copy them into (created if missing)')
    .action(async (point: string, paths: string[], opts: Options & { to: string }) => {
      const to = resolve(opts.to);
      await mkdir(to, { recursive: true });
      const errors: { path: string; error: string }[] = [];
      for (const path of paths) {
        const res = await request(opts, `/api/recovery-points/${encodeURIComponent(point)}/archive`, {
          path,
          disk: opts.disk,
          partition: opts.partition,
        });
        errors.push(...(JSON.parse(res.headers.get('x-goldsnap-errors') ?? '[]') as { path: string; error: string }[]));
        await untar(res, to);
      }
      if (opts.json) process.stdout.write(`${JSON.stringify({ to, errors }, null, 2)}\n`);
      else {
        for (const e of errors) process.stderr.write(`goldsnap: error: ${e.path}: ${e.error}\n`);
        process.stdout.write(
          `fetched ${paths.join(', ')} into ${to}${errors.length ? ` (${errors.length} could not be read)` : ''}\n`,
        );
      }
      if (errors.length) process.exitCode = 1;
    });
  return files;
}

/** Unpacks a tar response into `to`, keeping owners (as root) and modes. */
async function untar(res: Response, to: string): Promise<void> {
  const tar = spawn('tar', ['-x', '-p', '--same-owner', '--numeric-owner', '-C', to, '-f', '-'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  tar.stderr.on('data', (d) => {
    stderr += d;
  });
  const closed = new Promise<number | null>((done) => tar.on('close', done));
  Readable.fromWeb(res.body! as import('node:stream/web').ReadableStream).pipe(tar.stdin);
  const code = await closed;
  if (code !== 0) throw new Error(`unpacking the archive failed: ${stderr.trim()}`);
}
