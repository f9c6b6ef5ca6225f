import type { ComputeManagementClient } from '@azure/arm-compute';
import { createDefaultHttpClient, createHttpHeaders, createPipelineRequest } from '@azure/core-rest-pipeline';

/** api-version of Microsoft.Resources/resourceGroups (learn.microsoft.com/rest/api/resources/resource-groups). */
const API_VERSION = '2021-04-01';
const http = createDefaultHttpClient();

/**
 * Creates a resource group unless it exists (an existing one, and its tags, are left as they are).
 * Through the compute client's own pipeline (its credential, endpoint and TLS trust), since
 * Goldsnap needs nothing else of Microsoft.Resources.
 */
export async function ensureResourceGroup(
  compute: ComputeManagementClient,
  endpoint: string,
  subscriptionId: string,
  name: string,
  region: string,
  tags: Record<string, string>,
): Promise<boolean> {
  const url = `${endpoint.replace(/\/$/, '')}/subscriptions/${subscriptionId}/resourcegroups/${encodeURIComponent(name)}?api-version=${API_VERSION}`;
  const got = await compute.pipeline.sendRequest(http, createPipelineRequest({ url, method: 'GET' }));
  if (got.status === 200) return false;
  if (got.status !== 404)
    throw new Error(`resource group ${name}: Azure answered ${got.status} ${got.bodyAsText ?? ''}`);
  const put = await compute.pipeline.sendRequest(
    http,
    createPipelineRequest({
      url,
      method: 'PUT',
      body: JSON.stringify({ location: region, tags }),
      headers: createHttpHeaders({ 'content-type': 'application/json' }),
    }),
  );
  if (put.status !== 200 && put.status !== 201)
    throw new Error(
      `resource group ${name} could not be created: Azure answered ${put.status} ${put.bodyAsText ?? ''}`,
    );
  return true;
}
