import { createHash, randomBytes } from 'node:crypto';

/** What each role may do: viewers read, operators also run backups and restores, admins also configure. */
export const Roles = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof Roles)[number];

export function roleAllows(role: Role, needed: Role): boolean {
  return Roles.indexOf(role) >= Roles.indexOf(needed);
}

/** API tokens are random and stored only as their SHA-256, so the catalog holds no usable secret. */
export function newToken(): string {
  return `gs_${randomBytes(24).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
