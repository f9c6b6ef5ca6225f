import { AZURE_LOCATION_FORMS, AzureBlobBackend } from './azure-blob.ts';
import type { Backend } from './backend.ts';
import { FsBackend } from './fs.ts';
import { S3_LOCATION_FORMS, S3Backend } from './s3.ts';

export const LOCATION_FORMS = `a folder path, file:/path, ${S3_LOCATION_FORMS}, ${AZURE_LOCATION_FORMS}`;

/**
 * Opens a repository location: a folder path, file:/path, s3:… or azure:…. The cloud SDKs are
 * loaded by the backends on their first request, so this stays synchronous and cheap.
 */
export function openBackend(location: string): Backend {
  if (location.startsWith('file:')) return new FsBackend(location.slice('file:'.length));
  if (location.startsWith('s3:')) return new S3Backend(location);
  if (location.startsWith('azure:')) return new AzureBlobBackend(location);
  if (/^[a-z0-9]+:/i.test(location)) {
    // Never echo credentials someone put in a URL.
    const shown = location.replace(/\/\/[^/@]*@/, '//…@').replace(/[?#].*$/, '');
    throw new Error(`unknown repository location ${shown}: use ${LOCATION_FORMS}`);
  }
  return new FsBackend(location);
}
