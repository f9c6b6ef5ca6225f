import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_PROXY_IMAGE, launcherConfigFromEnv } from '../../src/control/proxy/launcher-config.ts';

test('the proxy launcher configuration: defaults, sizes, and errors that name the setting', () => {
  assert.deepEqual(launcherConfigFromEnv('local', {}), { kind: 'local' });
  const aci = launcherConfigFromEnv('aci', {
    GOLDSNAP_PROXY_IMAGE: 'reg.example/goldsnap-proxy:1',
    GOLDSNAP_ACI_CPU: '1.5',
    GOLDSNAP_ACI_MEMORY_GB: '3',
  });
  assert.deepEqual(aci, {
    kind: 'aci',
    image: 'reg.example/goldsnap-proxy:1',
    resourceGroup: 'goldsnap-proxies',
    cpu: 1.5,
    memoryInGB: 3,
    pollMs: 5000,
  });
  assert.equal((launcherConfigFromEnv('aci', {}) as { image: string }).image, DEFAULT_PROXY_IMAGE);
  assert.throws(() => launcherConfigFromEnv('kubernetes', {}), /unknown proxy launcher "kubernetes": use local or aci/);
  assert.throws(
    () => launcherConfigFromEnv('aci', { GOLDSNAP_ACI_CPU: 'lots' }),
    /GOLDSNAP_ACI_CPU=lots: must be a number from 0.1 to 4/,
  );
  assert.throws(
    () => launcherConfigFromEnv('aci', { GOLDSNAP_ACI_REGISTRY_SERVER: 'reg.example' }),
    /GOLDSNAP_ACI_REGISTRY_USERNAME and GOLDSNAP_ACI_REGISTRY_PASSWORD/,
  );
  assert.throws(
    () => launcherConfigFromEnv('aci', { GOLDSNAP_ACI_RESOURCE_GROUP: 'no/slash' }),
    /GOLDSNAP_ACI_RESOURCE_GROUP=no\/slash/,
  );
});
