import type { ComputeManagementClient } from '@azure/arm-compute';
import {
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineRequest,
  type PipelineResponse,
} from '@azure/core-rest-pipeline';

/**
 * The network interface of a restored VM, made in a subnet the user names
 * (learn.microsoft.com/rest/api/virtualnetwork/network-interfaces/create-or-update). Through the
 * compute client's own pipeline (credential, endpoint, TLS trust): Goldsnap needs nothing else of
 * Microsoft.Network.
 */
const API_VERSION = '2024-05-01';
const http = createDefaultHttpClient();

export interface NetworkInterfaceRequest {
  name: string;
  resourceGroup: string;
  region: string;
  subnetId: string;
  tags: Record<string, string>;
}

function nicUrl(endpoint: string, subscriptionId: string, resourceGroup: string, name: string): string {
  return `${endpoint.replace(/\/$/, '')}/subscriptions/${subscriptionId}/resourceGroups/${encodeURIComponent(resourceGroup)}/providers/Microsoft.Network/networkInterfaces/${encodeURIComponent(name)}?api-version=${API_VERSION}`;
}

function parsed(res: PipelineResponse): {
  id?: string;
  tags?: Record<string, string>;
  properties?: { provisioningState?: string };
} {
  return res.bodyAsText ? JSON.parse(res.bodyAsText) : {};
}

/** Creates the NIC (idempotent for the same restore: `tags.goldsnapRestore`) and waits until it is provisioned. */
export async function createNetworkInterface(
  compute: ComputeManagementClient,
  endpoint: string,
  subscriptionId: string,
  req: NetworkInterfaceRequest,
  pollMs: number,
): Promise<string> {
  const url = nicUrl(endpoint, subscriptionId, req.resourceGroup, req.name);
  const existing = await compute.pipeline.sendRequest(http, createPipelineRequest({ url, method: 'GET' }));
  if (existing.status === 200 && parsed(existing).tags?.goldsnapRestore !== req.tags.goldsnapRestore) {
    throw new Error(
      `a network interface named ${req.name} already exists in resource group ${req.resourceGroup}: choose another name`,
    );
  }
  const put = await compute.pipeline.sendRequest(
    http,
    createPipelineRequest({
      url,
      method: 'PUT',
      headers: createHttpHeaders({ 'content-type': 'application/json' }),
      body: JSON.stringify({
        location: req.region,
        tags: req.tags,
        properties: {
          ipConfigurations: [
            {
              name: 'ipconfig1',
              properties: { primary: true, privateIPAllocationMethod: 'Dynamic', subnet: { id: req.subnetId } },
            },
          ],
        },
      }),
    }),
  );
  if (put.status !== 200 && put.status !== 201)
    throw new Error(
      `network interface ${req.name} could not be created in ${req.subnetId}: Azure answered ${put.status} ${put.bodyAsText ?? ''}`,
    );
  for (let nic = parsed(put); ; ) {
    const state = nic.properties?.provisioningState ?? 'Succeeded';
    if (state === 'Succeeded') return nic.id!;
    if (state === 'Failed' || state === 'Canceled')
      throw new Error(`network interface ${req.name}: provisioning ${state}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    nic = parsed(await compute.pipeline.sendRequest(http, createPipelineRequest({ url, method: 'GET' })));
  }
}

/** Deletes a NIC a failed restore made; absent is fine. */
export async function deleteNetworkInterface(
  compute: ComputeManagementClient,
  endpoint: string,
  id: string,
): Promise<void> {
  const res = await compute.pipeline.sendRequest(
    http,
    createPipelineRequest({ url: `${endpoint.replace(/\/$/, '')}${id}?api-version=${API_VERSION}`, method: 'DELETE' }),
  );
  if (res.status >= 300 && res.status !== 404)
    throw new Error(
      `network interface ${id} could not be deleted: Azure answered ${res.status} ${res.bodyAsText ?? ''}`,
    );
}
