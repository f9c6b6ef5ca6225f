import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { fetchFiles, listFiles, matchingName } from '../../files/file-ops.ts';
import { PointDisks } from '../../files/point-files.ts';
import type { Repository } from '../../repository/repository.ts';
import { InvalidInputError, NotFoundError } from '../catalog/policies.ts';
import type { SqlRunStore } from '../catalog/run-store.ts';
import type { Role } from './auth.ts';
import { type ApiServer, prefixIdParam } from './schemas.ts';
import { errorMessage } from '../../util/errors.ts';

export interface FileRoutesDeps {
  runs: SqlRunStore;
  repo?: Repository;
}

type Guard = (role: Role) => (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

const where = {
  disk: { type: 'string', minLength: 1 },
  partition: { type: 'integer', minimum: 0 },
} as const;

/**
 * File-level restore over the API: the partitions of a recovery point of a protected VM, a
 * folder's entries, and a file or folder as a tar archive (modes, owners, times and symlinks
 * kept). Reads only the chunks the file system needs, never the whole disk.
 */
export async function registerFileRoutes(app: ApiServer, deps: FileRoutesDeps, needs: Guard): Promise<void> {
  const open = async (idOrPrefix: string): Promise<PointDisks> => {
    if (!deps.repo) throw new Error('this server has no repository to read files from');
    const matches = await deps.runs.recoveryPointsByPrefix(idOrPrefix.toLowerCase());
    if (matches.length > 1)
      throw new InvalidInputError('id', `recovery point prefix ${idOrPrefix} is ambiguous: give more characters`);
    if (matches.length === 0) throw new NotFoundError('recovery point', idOrPrefix);
    return PointDisks.open(deps.repo, matches[0].id);
  };
  const selectionError = (err: Error) =>
    /has no disk|has several|has no partition|has no file system|say which/.test(err.message)
      ? new InvalidInputError('disk', err.message)
      : err;

  app.get(
    '/api/recovery-points/:id/partitions',
    {
      preHandler: needs('viewer'),
      schema: { summary: 'Disks of a recovery point, their partitions and file systems', params: prefixIdParam },
    },
    async (req) => ({ disks: await (await open(req.params.id)).describe() }),
  );

  app.get(
    '/api/recovery-points/:id/files',
    {
      preHandler: needs('viewer'),
      schema: {
        summary:
          "List a folder (or a file) of a recovery point's file system (ext4, XFS, NTFS); with name, search its tree by name",
        params: prefixIdParam,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            path: { type: 'string' },
            recursive: { type: 'boolean' },
            name: { type: 'string', minLength: 1 },
            ...where,
          },
        },
      },
    },
    async (req) => {
      const q = req.query;
      const disks = await open(req.params.id);
      const target = await disks.partition(q.disk, q.partition).catch((err) => {
        throw selectionError(err);
      });
      try {
        const listed = await disks.withFileSystem(target, (m) =>
          listFiles(m, q.path ?? '/', q.recursive || q.name !== undefined),
        );
        const entries = q.name === undefined ? listed : matchingName(listed, q.name);
        return { disk: target.image.name, partition: target.partition.number, fs: target.partition.fs, entries };
      } catch (err) {
        if (/^there is no /.test(errorMessage(err))) throw new NotFoundError('path', q.path ?? '/');
        throw err;
      }
    },
  );

  app.get(
    '/api/recovery-points/:id/archive',
    {
      preHandler: needs('operator'),
      schema: {
        summary:
          'A file or folder of a recovery point as a tar archive; files that could not be read are named in the x-goldsnap-errors header',
        params: prefixIdParam,
        querystring: {
          type: 'object',
          required: ['path'],
          additionalProperties: false,
          properties: { path: { type: 'string', minLength: 1 }, ...where },
        },
      },
    },
    async (req, reply) => {
      const q = req.query;
      const disks = await open(req.params.id);
      const target = await disks.partition(q.disk, q.partition).catch((err) => {
        throw selectionError(err);
      });
      const scratch = await mkdtemp(join(tmpdir(), 'goldsnap-archive-'));
      try {
        const out = join(scratch, 'out');
        const damaged = new Set<string>();
        const result = await disks.withFileSystem(
          target,
          (m) => fetchFiles(m, [q.path], out),
          (err) => damaged.add(err.message),
        );
        const names = await readdir(out);
        if (names.length === 0) {
          await rm(scratch, { recursive: true, force: true });
          const missing = result.errors.find((e) => /no such file/.test(e.error));
          if (missing) throw new NotFoundError('path', q.path);
          return reply
            .code(500)
            .send({ error: `nothing of ${q.path} could be read`, errors: result.errors, damaged: [...damaged] });
        }
        const tar = spawn(
          'tar',
          ['-C', out, '--numeric-owner', '-cf', '-', '--', ...(q.path.replace(/\/+$/, '') === '' ? ['.'] : names)],
          { stdio: ['ignore', 'pipe', 'ignore'] },
        );
        tar.on('close', () => {
          rm(scratch, { recursive: true, force: true }).catch(() => undefined);
        });
        return reply
          .header('content-type', 'application/x-tar')
          .header(
            'content-disposition',
            `attachment; filename="${(names[0] === '.' ? 'files' : names[0]).replace(/[^\w.-]/g, '_')}.tar"`,
          )
          .header('x-goldsnap-errors', JSON.stringify(result.errors))
          .header('x-goldsnap-damaged', JSON.stringify([...damaged]))
          .send(tar.stdout);
      } catch (err) {
        await rm(scratch, { recursive: true, force: true });
        throw err;
      }
    },
  );
}
