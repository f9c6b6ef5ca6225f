/**
 * Turns a file system error into a sentence that says what went wrong and what to do, instead of
 * raw errno text (`ENOTDIR: not a directory, open '…/ranges.json/config'`). The code stays on the
 * error (`code`) so callers can still tell a full disk from a missing file.
 */
export class FileSystemError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = 'FileSystemError';
    this.code = code;
  }
}

/** `action` reads like "write pack data/ab/ab12… in /srv/repo". */
export function describeFsError(err: unknown, action: string, path: string): Error {
  const e = err as NodeJS.ErrnoException;
  if (err instanceof FileSystemError || typeof e?.code !== 'string') return err as Error;
  const why: Record<string, string> = {
    ENOENT: `${path} does not exist`,
    ENOTDIR: `a part of ${path} is a file, not a folder: check the path`,
    EEXIST: `${path} already exists and is not a folder`,
    EISDIR: `${path} is a folder, not a file`,
    EACCES: `permission denied on ${path}: check its owner and mode, or run as a user who may use it`,
    EPERM: `operation not permitted on ${path}`,
    ENOSPC: `the disk holding ${path} is full: free space there (\`goldsnap repo prune\` frees what no recovery point needs) and try again`,
    EDQUOT: `the disk quota for ${path} is exhausted: raise it or free space, then try again`,
    EROFS: `${path} is on a read-only file system`,
    EMFILE: 'too many open files: raise the limit (ulimit -n) and try again',
    EIO: `an I/O error on ${path}: the disk may be failing`,
  };
  const reason = why[e.code] ?? `${e.code} on ${path}`;
  return new FileSystemError(`cannot ${action}: ${reason}`, e.code);
}
