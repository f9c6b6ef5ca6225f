import * as client from 'openid-client';
import { Roles, type Role } from '../api/auth.ts';
import type { Queryable } from '../catalog/database.ts';

/**
 * Console sign-in through an OpenID Connect provider (authorization code flow with PKCE). The
 * provider's groups claim maps to a Goldsnap role; API tokens stay for automation.
 *
 * Configured from the environment:
 *   GOLDSNAP_OIDC_ISSUER         the provider's issuer URL (discovery at /.well-known/openid-configuration)
 *   GOLDSNAP_OIDC_CLIENT_ID      the client registered for Goldsnap
 *   GOLDSNAP_OIDC_CLIENT_SECRET  its secret
 *   GOLDSNAP_OIDC_ROLES          which groups give which role: `admin=ops-admins,operator=ops,viewer=staff`
 *   GOLDSNAP_OIDC_GROUPS_CLAIM   the claim holding the groups (default `groups`)
 *   GOLDSNAP_OIDC_SCOPES         scopes asked for (default `openid profile email groups`)
 */
export interface OidcSettings {
  issuer: URL;
  clientId: string;
  clientSecret: string;
  /** Group → role; a user with several gets the highest. */
  roleOfGroup: Map<string, Role>;
  groupsClaim: string;
  scopes: string;
}

export function oidcSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): OidcSettings | undefined {
  if (!env.GOLDSNAP_OIDC_ISSUER) return undefined;
  const need = (name: string) => {
    const v = env[name];
    if (!v)
      throw new Error(
        `GOLDSNAP_OIDC_ISSUER is set but ${name} is not: set both, or neither to turn OpenID Connect sign-in off`,
      );
    return v;
  };
  const roleOfGroup = new Map<string, Role>();
  for (const part of need('GOLDSNAP_OIDC_ROLES')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [role, group] = part.split('=');
    if (!group || !(Roles as readonly string[]).includes(role!))
      throw new Error(`GOLDSNAP_OIDC_ROLES: "${part}" is not role=group with a role among ${Roles.join(', ')}`);
    roleOfGroup.set(group, role as Role);
  }
  return {
    issuer: new URL(env.GOLDSNAP_OIDC_ISSUER),
    clientId: need('GOLDSNAP_OIDC_CLIENT_ID'),
    clientSecret: need('GOLDSNAP_OIDC_CLIENT_SECRET'),
    roleOfGroup,
    groupsClaim: env.GOLDSNAP_OIDC_GROUPS_CLAIM || 'groups',
    scopes: env.GOLDSNAP_OIDC_SCOPES || 'openid profile email groups',
  };
}

/** The highest role the groups give, if any. */
export function roleForGroups(groups: unknown, roleOfGroup: Map<string, Role>): Role | undefined {
  const list = Array.isArray(groups) ? groups.map(String) : typeof groups === 'string' ? [groups] : [];
  let best: Role | undefined;
  for (const g of list) {
    const role = roleOfGroup.get(g);
    if (role && (!best || Roles.indexOf(role) > Roles.indexOf(best))) best = role;
  }
  return best;
}

/** How long a sign-in may take between the redirect to the provider and its answer. */
const LOGIN_MS = 600_000;

export interface SignedIn {
  name: string;
  role: Role;
}

export class OidcSignIn {
  readonly settings: OidcSettings;
  private config?: Promise<client.Configuration>;
  /**
   * Logins under way are rows of `oidc_logins` (by state, 10 minutes at most): the callback may
   * reach a server restarted since the redirect, or another server process on the same catalog.
   */
  private readonly db: Queryable;

  constructor(settings: OidcSettings, db: Queryable) {
    this.settings = settings;
    this.db = db;
  }

  private configuration(): Promise<client.Configuration> {
    this.config ??= client
      .discovery(
        this.settings.issuer,
        this.settings.clientId,
        this.settings.clientSecret,
        undefined,
        this.settings.issuer.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : undefined,
      )
      .catch((err: Error) => {
        this.config = undefined;
        throw new Error(`OpenID Connect provider ${this.settings.issuer.href}: discovery failed: ${err.message}`);
      });
    return this.config;
  }

  /** Where to send the browser to sign in. */
  async startLogin(redirectUri: string): Promise<URL> {
    const config = await this.configuration();
    await this.db.query('DELETE FROM oidc_logins WHERE expires_at < now()');
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    await this.db.query(
      `INSERT INTO oidc_logins (state, verifier, nonce, redirect_uri, expires_at)
       VALUES ($1, $2, $3, $4, now() + $5::float8 * interval '1 millisecond')`,
      [state, verifier, nonce, redirectUri, LOGIN_MS],
    );
    return client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.settings.scopes,
      state,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
  }

  /** Completes a login from the provider's redirect: who signed in, and the role their groups give. */
  async finishLogin(callbackUrl: URL): Promise<SignedIn> {
    const state = callbackUrl.searchParams.get('state') ?? '';
    // Taken once: a replayed callback finds nothing.
    const [login] = await this.db.query<{ verifier: string; nonce: string }>(
      'DELETE FROM oidc_logins WHERE state = $1 AND expires_at >= now() RETURNING verifier, nonce',
      [state],
    );
    if (!login) throw new SignInError('this sign-in is unknown or took over 10 minutes: start again');
    const config = await this.configuration();
    const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
      pkceCodeVerifier: login.verifier,
      expectedState: state,
      expectedNonce: login.nonce,
    });
    const idClaims = tokens.claims();
    if (!idClaims) throw new SignInError('the provider returned no ID token');
    const info = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub);
    const claims: Record<string, unknown> = { ...idClaims, ...info };
    const name = String(claims.preferred_username ?? claims.email ?? claims.sub);
    const role = roleForGroups(claims[this.settings.groupsClaim], this.settings.roleOfGroup);
    if (!role)
      throw new SignInError(
        `${name} is in no group that gives a Goldsnap role (${[...this.settings.roleOfGroup].map(([g, r]) => `${g} → ${r}`).join(', ')})`,
        403,
      );
    return { name, role };
  }
}

/** A sign-in that must be refused, with what the person can do about it. */
export class SignInError extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}
