/** The parts of an Azure resource id: /subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}. */
export interface AzureResourceId {
  subscriptionId: string;
  resourceGroup: string;
  type: string;
  name: string;
}

export function parseResourceId(id: string): AzureResourceId {
  const m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/[^/]+\/([^/]+)\/([^/]+)$/i.exec(id);
  if (!m)
    throw new Error(`${id} is not an Azure resource id (/subscriptions/…/resourceGroups/…/providers/…/type/name)`);
  return { subscriptionId: m[1], resourceGroup: m[2], type: m[3], name: m[4] };
}

/** Azure compares resource ids without regard to case. */
export function sameResource(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
