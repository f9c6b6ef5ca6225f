import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run, toolError } from './processes.ts';

/** How often to look whether a starting mount is ready: the wait itself has no deadline. */
const POLL_MS = 20;

/** True when this machine lets us mount FUSE file systems at all. */
export function fuseAvailable(): boolean {
  return existsSync('/dev/fuse');
}

function requireFuse(): void {
  if (!fuseAvailable())
    throw new Error(
      '/dev/fuse is missing: file-level restore and `repo mount` need FUSE (in a container, pass --device /dev/fuse and CAP_SYS_ADMIN)',
    );
}

/**
 * An NBD export shown as a read-only file `dir/fileName` by nbdfuse (libnbd's FUSE client). Reads
 * of the file become NBD reads, so only what a reader touches is fetched.
 */
export class NbdFuseFile {
  readonly dir: string;
  readonly path: string;
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;

  private constructor(dir: string, path: string, child: ChildProcess, exited: Promise<void>) {
    this.dir = dir;
    this.path = path;
    this.child = child;
    this.exited = exited;
  }

  /** `pidFile` is where nbdfuse says it is ready: a path in a private scratch folder. */
  static async mount(
    socketPath: string,
    exportName: string,
    dir: string,
    fileName: string,
    pidFile: string,
  ): Promise<NbdFuseFile> {
    requireFuse();
    await mkdir(dir, { recursive: true });
    const uri = `nbd+unix:///${encodeURIComponent(exportName)}?socket=${encodeURIComponent(socketPath)}`;
    const child = spawn('nbdfuse', ['-r', '-P', pidFile, join(dir, fileName), uri], {
      // Its own process group: Ctrl-C reaches goldsnap only, which then unmounts in order.
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    let failure: Error | undefined;
    let done = false;
    const exited = new Promise<void>((resolve) => {
      child.on('error', (err) => {
        failure = toolError('nbdfuse', err);
        done = true;
        resolve();
      });
      child.on('exit', (code) => {
        if (code !== 0) failure ??= new Error(`nbdfuse could not mount ${dir} (exit ${code}): ${stderr.trim()}`);
        done = true;
        resolve();
      });
    });
    // nbdfuse writes its pid file once the file is being served.
    while (!done && !existsSync(pidFile)) await sleep(POLL_MS);
    if (done) throw failure ?? new Error(`nbdfuse stopped before serving ${dir}: ${stderr.trim()}`);
    return new NbdFuseFile(dir, join(dir, fileName), child, exited);
  }

  /** Unmounts and waits until nbdfuse is gone (after every reader of the file closed it). */
  async unmount(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) await unmountFuse(this.dir);
    await this.exited;
  }
}

/** Lazy unmount: detached now, released when the last open file in it closes. */
export async function unmountFuse(dir: string): Promise<void> {
  const r = await run('fusermount3', ['-u', '-z', dir]);
  if (r.code !== 0 && !/not mounted|not found in/.test(r.stderr))
    throw new Error(`could not unmount ${dir}: ${r.stderr.trim()}`);
}

export type DriverFs = 'ext4' | 'ntfs';

/**
 * A file system image mounted read-only through its FUSE driver: fuse2fs (e2fsprogs) for ext2/3/4,
 * ntfs-3g for NTFS. Both read the image file without a loop device or kernel driver.
 */
export class FileSystemMount {
  readonly root: string;

  private constructor(root: string) {
    this.root = root;
  }

  static async mount(fs: DriverFs, image: string, root: string): Promise<FileSystemMount> {
    requireFuse();
    await mkdir(root, { recursive: true });
    // Both drivers go to the background once the mount is in place, so their exit means ready.
    const [command, args] =
      fs === 'ext4' ? ['fuse2fs', [image, root, '-o', 'ro']] : ['ntfs-3g', ['-o', 'ro', image, root]];
    const r = await run(command, args);
    if (r.code !== 0)
      throw new Error(`${command} could not read the ${fs} file system: ${r.stderr.trim() || `exit ${r.code}`}`);
    if (!(await isMounted(root))) throw new Error(`${command} exited without mounting ${root}: ${r.stderr.trim()}`);
    return new FileSystemMount(root);
  }

  unmount(): Promise<void> {
    return unmountFuse(this.root);
  }
}

export async function isMounted(dir: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  const escaped = dir.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return mounts.split('\n').some((line) => line.split(' ')[1] === escaped);
}
