import { mkdir, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtemp } from 'node:fs/promises';
import { NbdFuseFile } from './fuse.ts';
import { NbdServer } from './nbd-server.ts';
import type { PointDisks } from './point-files.ts';

export interface MountEvents {
  /** The image files are there, one per disk. */
  onReady?: (files: string[]) => void;
  onStopped?: () => void;
}

/**
 * Shows each disk of a recovery point as `<dir>/<disk>/<disk>.img`, read-only and read lazily,
 * until SIGINT or SIGTERM (or `stop`), then unmounts everything it mounted. nbdfuse serves one
 * file per mount, hence a folder per disk.
 */
export async function mountPoint(
  disks: PointDisks,
  dir: string,
  events: MountEvents = {},
  stop?: AbortSignal,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const scratch = await mkdtemp(join(tmpdir(), 'goldsnap-mount-'));
  const exports = new Map([...disks.images].map(([name, image]) => [name, image]));
  const mounted: NbdFuseFile[] = [];
  let server: NbdServer | undefined;
  const stopped = new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    stop?.addEventListener('abort', done);
  });
  try {
    server = await NbdServer.listen(join(scratch, 'nbd.sock'), exports);
    for (const name of exports.keys())
      mounted.push(
        await NbdFuseFile.mount(
          server.socketPath,
          name,
          join(dir, safeName(name)),
          `${safeName(name)}.img`,
          join(scratch, `${mounted.length}.pid`),
        ),
      );
    events.onReady?.(mounted.map((m) => m.path));
    await stopped;
  } finally {
    for (const m of mounted) {
      await m.unmount();
      await rmdir(m.dir).catch(() => undefined);
    }
    await server?.close();
    await rm(scratch, { recursive: true, force: true });
    events.onStopped?.();
  }
}

/** A disk name as one path component. */
function safeName(name: string): string {
  return name.replace(/[/\0]/g, '_') || 'disk';
}
