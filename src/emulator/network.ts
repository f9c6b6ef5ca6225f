import { ArmError, normalizeLocation, obj, tagsOf, validName, type ArmResult, type EmulatorCore } from './core.ts';
import { keyOf } from './state.ts';

/**
 * PUT / GET / DELETE …/providers/Microsoft.Network/networkInterfaces/{name}: just enough network for
 * a restored VM to get a NIC in a subnet. There are no virtual networks: a subnet id is checked for
 * its shape only. A NIC a VM uses cannot be deleted (400 NicInUse, as on Azure).
 */
export interface NetworkInterfaceRec {
  id: string;
  name: string;
  resourceGroup: string;
  location: string;
  tags: Record<string, string>;
  subnetId: string;
}

const SUBNET_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+\/subnets\/[^/]+$/i;

function render(n: NetworkInterfaceRec): Record<string, unknown> {
  return {
    id: n.id,
    name: n.name,
    type: 'Microsoft.Network/networkInterfaces',
    location: n.location,
    tags: n.tags,
    properties: {
      provisioningState: 'Succeeded',
      ipConfigurations: [
        {
          name: 'ipconfig1',
          id: `${n.id}/ipConfigurations/ipconfig1`,
          properties: {
            primary: true,
            privateIPAllocationMethod: 'Dynamic',
            subnet: { id: n.subnetId },
            provisioningState: 'Succeeded',
          },
        },
      ],
    },
  };
}

export async function handleNetworkInterface(
  core: EmulatorCore,
  method: string,
  rg: string,
  name: string,
  body: () => Promise<unknown>,
): Promise<ArmResult> {
  const nics = (core.st.networkInterfaces ??= {});
  const id = `/subscriptions/${core.subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Network/networkInterfaces/${name}`;
  const key = keyOf(id);
  if (method === 'GET') {
    const n = nics[key];
    if (!n)
      throw new ArmError(
        404,
        'ResourceNotFound',
        `The Resource 'Microsoft.Network/networkInterfaces/${name}' under resource group '${rg}' was not found.`,
      );
    return { status: 200, body: render(n) };
  }
  if (method === 'PUT') {
    validName(name, 'Microsoft.Network/networkInterfaces');
    const b = obj(await body(), 'parameters');
    const location = normalizeLocation(b['location']);
    const tags = tagsOf(b['tags']);
    const configs = (obj(b['properties'], 'properties')['ipConfigurations'] ?? []) as Array<{
      properties?: { subnet?: { id?: unknown } };
    }>;
    const subnetId = Array.isArray(configs) ? configs[0]?.properties?.subnet?.id : undefined;
    if (typeof subnetId !== 'string' || !SUBNET_ID.test(subnetId)) {
      throw new ArmError(
        400,
        'InvalidRequestFormat',
        'Cannot parse the request: properties.ipConfigurations[0].properties.subnet.id must be a subnet id (/subscriptions/…/virtualNetworks/…/subnets/…).',
      );
    }
    return core.exclusive(async () => {
      const existing = nics[key];
      const rec: NetworkInterfaceRec = { id, name, resourceGroup: rg, location, tags, subnetId };
      nics[key] = rec;
      await core.save();
      return { status: existing ? 200 : 201, body: render(rec) };
    });
  }
  if (method === 'DELETE') {
    return core.exclusive(async () => {
      if (!nics[key]) return { status: 204 };
      const user = Object.values(core.st.virtualMachines).find((v) => v.nicIds?.some((n) => keyOf(n) === key));
      if (user)
        throw new ArmError(
          400,
          'NicInUse',
          `Network Interface ${id} is used by existing resource ${user.id}. In order to delete the network interface, it must be dissociated from the resource.`,
        );
      delete nics[key];
      await core.save();
      return { status: 200 };
    });
  }
  throw new ArmError(405, 'MethodNotAllowed', `${method} is not supported by the emulator for network interfaces`);
}
