import { hkdfSync } from 'node:crypto';
import { type MasterKey, masterKeyToBytes, seal, unseal } from '../../repository/crypto.ts';

/** What a sealed value starts with in the catalog; anything else is a plaintext left by an older server. */
const PREFIX = 'gsbox1:';

/**
 * Secrets the server must read back (webhook signing secrets) are kept in the catalog sealed with
 * AES-256-GCM under a key derived (HKDF-SHA256) from the repository's master key. Every server of
 * one catalog opens the same repository, so each can read them; a dump of the catalog alone (a
 * PostgreSQL backup, a read-only SQL user) does not reveal them. The associated data binds a
 * sealed value to its row and column, so one cannot be copied over another.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('a catalog secret key is 32 bytes');
    this.key = key;
  }

  /** The box of a repository's server: its key is derived from the master key, never stored. */
  static fromMasterKey(master: MasterKey): SecretBox {
    return new SecretBox(
      Buffer.from(hkdfSync('sha256', masterKeyToBytes(master), 'goldsnap', 'catalog secrets v1', 32)),
    );
  }

  /** `where` names the row and column (`alert_channels.secret:<id>`); the same must be given to open it. */
  seal(plaintext: string, where: string): string {
    return PREFIX + seal(this.key, Buffer.from(plaintext, 'utf8'), Buffer.from(where)).toString('base64url');
  }

  open(stored: string, where: string): string {
    if (!SecretBox.isSealed(stored)) return stored;
    return unseal(this.key, Buffer.from(stored.slice(PREFIX.length), 'base64url'), Buffer.from(where), where).toString(
      'utf8',
    );
  }

  static isSealed(stored: string): boolean {
    return stored.startsWith(PREFIX);
  }
}
