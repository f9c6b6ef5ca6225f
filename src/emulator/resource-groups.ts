import { ArmError, normalizeLocation, obj, tagsOf, type ArmResult, type EmulatorCore } from './core.ts';
import { keyOf } from './state.ts';

/**
 * GET / PUT /subscriptions/{s}/resourcegroups/{rg} (Microsoft.Resources). Groups a client creates
 * are kept and listed back; the emulator does not require a group to exist before resources are put
 * in it (groups of the simulated VMs exist implicitly).
 */
export interface ResourceGroupRec {
  id: string;
  name: string;
  location: string;
  tags: Record<string, string>;
}

const NAME = /^[-\w.()]{1,90}$/;

function render(g: ResourceGroupRec): Record<string, unknown> {
  return {
    id: g.id,
    name: g.name,
    type: 'Microsoft.Resources/resourceGroups',
    location: g.location,
    tags: g.tags,
    properties: { provisioningState: 'Succeeded' },
  };
}

export async function handleResourceGroup(
  core: EmulatorCore,
  method: string,
  name: string,
  body: () => Promise<unknown>,
): Promise<ArmResult> {
  const groups = (core.st.resourceGroups ??= {});
  const id = `/subscriptions/${core.subscriptionId}/resourceGroups/${name}`;
  const existing = groups[keyOf(id)];
  if (method === 'GET') {
    if (!existing) throw new ArmError(404, 'ResourceGroupNotFound', `Resource group '${name}' could not be found.`);
    return { status: 200, body: render(existing) };
  }
  if (method === 'PUT') {
    if (!NAME.test(name) || name.endsWith('.'))
      throw new ArmError(
        400,
        'InvalidResourceGroup',
        `The provided resource group name '${name}' has these invalid characters or is too long.`,
      );
    const b = obj(await body(), 'parameters');
    const location = normalizeLocation(b['location']);
    const tags = tagsOf(b['tags']);
    return core.exclusive(async () => {
      if (existing) {
        existing.tags = tags;
        await core.save();
        return { status: 200, body: render(existing) };
      }
      const rec: ResourceGroupRec = { id, name, location, tags };
      groups[keyOf(id)] = rec;
      await core.save();
      return { status: 201, body: render(rec) };
    });
  }
  throw new ArmError(405, 'MethodNotAllowed', `${method} is not supported by the emulator for resource groups`);
}
