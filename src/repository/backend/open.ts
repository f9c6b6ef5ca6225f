import type { Backend } from './backend.ts';
import { FsBackend } from './fs.ts';

/** Opens a repository location: a folder path or file:/path. */
export function openBackend(location: string): Backend {
  if (location.startsWith('file:')) return new FsBackend(location.slice('file:'.length));
  if (/^[a-z0-9]+:/i.test(location)) throw new Error(`unknown repository location ${location}`);
  return new FsBackend(location);
}
