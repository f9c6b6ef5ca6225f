/**
 * How the server launches data proxies, from its flags and environment:
 *
 * - `local` (default): child processes of the server, on its machine (one-machine setups).
 * - `aci`: Azure Container Instances, one container group per region with work, in that region.
 *   GOLDSNAP_PROXY_IMAGE names the proxy image (built from the repository's Dockerfile);
 *   GOLDSNAP_ACI_RESOURCE_GROUP (default goldsnap-proxies) holds the groups; GOLDSNAP_ACI_CPU
 *   (default 2) and GOLDSNAP_ACI_MEMORY_GB (default 4) size them; GOLDSNAP_ACI_IDENTITY is the
 *   user-assigned managed identity the proxies read snapshots with; GOLDSNAP_ACI_REGISTRY_SERVER,
 *   _USERNAME, _PASSWORD log in to a private registry; GOLDSNAP_PUBLIC_URL is the server's URL as
 *   the containers reach it (default: the URL it listens on); GOLDSNAP_ACI_POLL_MS (default 5000)
 *   is how often the containers' state is read. Groups are named goldsnap-proxy-<region>: one
 *   installation per resource group.
 */
export type ProxyLauncherConfig =
  | { kind: 'local' }
  | {
      kind: 'aci';
      image: string;
      resourceGroup: string;
      cpu: number;
      memoryInGB: number;
      identity?: string;
      registry?: { server: string; username: string; password: string };
      publicUrl?: string;
      pollMs: number;
    };

export const DEFAULT_PROXY_IMAGE = 'goldsnap-proxy:0.1.0';

export function launcherConfigFromEnv(kind: string, env: NodeJS.ProcessEnv = process.env): ProxyLauncherConfig {
  if (kind === 'local') return { kind: 'local' };
  if (kind !== 'aci') throw new Error(`unknown proxy launcher ${JSON.stringify(kind)}: use local or aci`);
  const number = (name: string, fallback: number, min: number, max: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new Error(`${name}=${raw}: must be a number from ${min} to ${max}`);
    return n;
  };
  const registry = env.GOLDSNAP_ACI_REGISTRY_SERVER
    ? {
        server: env.GOLDSNAP_ACI_REGISTRY_SERVER,
        username: env.GOLDSNAP_ACI_REGISTRY_USERNAME ?? '',
        password: env.GOLDSNAP_ACI_REGISTRY_PASSWORD ?? '',
      }
    : undefined;
  if (registry && (!registry.username || !registry.password))
    throw new Error(
      'GOLDSNAP_ACI_REGISTRY_SERVER needs GOLDSNAP_ACI_REGISTRY_USERNAME and GOLDSNAP_ACI_REGISTRY_PASSWORD',
    );
  const resourceGroup = env.GOLDSNAP_ACI_RESOURCE_GROUP || 'goldsnap-proxies';
  if (!/^[-\w._()]{1,90}$/.test(resourceGroup))
    throw new Error(`GOLDSNAP_ACI_RESOURCE_GROUP=${resourceGroup}: not a resource group name`);
  return {
    kind: 'aci',
    image: env.GOLDSNAP_PROXY_IMAGE || DEFAULT_PROXY_IMAGE,
    resourceGroup,
    cpu: number('GOLDSNAP_ACI_CPU', 2, 0.1, 4),
    memoryInGB: number('GOLDSNAP_ACI_MEMORY_GB', 4, 0.5, 16),
    ...(env.GOLDSNAP_ACI_IDENTITY ? { identity: env.GOLDSNAP_ACI_IDENTITY } : {}),
    ...(registry ? { registry } : {}),
    ...(env.GOLDSNAP_PUBLIC_URL ? { publicUrl: env.GOLDSNAP_PUBLIC_URL } : {}),
    pollMs: number('GOLDSNAP_ACI_POLL_MS', 5000, 100, 600_000),
  };
}
