import type { Cloud } from '../../cloud/cloud.ts';
import type { RecoveryPoint } from '../../repository/recovery-point.ts';
import { InvalidInputError } from '../catalog/errors.ts';
import type { Policy } from '../catalog/policies.ts';
import type { RestoreJobPayload } from '../jobs.ts';

/** What a user asks for (API body, CLI flags). */
export interface RestoreInput {
  name: string;
  region?: string;
  resourceGroup?: string;
  disks?: string[];
  createVm?: boolean;
  networkInterfaceId?: string;
  /** A subnet in which to make the new VM's network interface (instead of networkInterfaceId). */
  subnetId?: string;
  vmSize?: string;
  /** Azure subscription to restore into (default: the cloud's first); one the server works on. */
  subscriptionId?: string;
}

/**
 * Azure's naming rules (learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules):
 * resource groups 1–90 of letters, digits, _ - . ( ) not ending in a period; disks 1–80 of letters,
 * digits, _ - . starting with a letter or digit and ending with one or _; VMs (Linux) 1–64 alike.
 */
const RESOURCE_GROUP = /^[A-Za-z0-9_\-.()]{1,90}$/;
const DISK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,78}[A-Za-z0-9_]$|^[A-Za-z0-9]$/;
const VM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}[A-Za-z0-9_]$|^[A-Za-z0-9]$/;
const VM_SIZE = /^[A-Za-z0-9_]{1,64}$/;
const SUBNET_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+\/subnets\/[^/]+$/i;
const NIC_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/networkInterfaces\/[^/]+$/i;

/** The target resource group when none is given: a group of its own, which no policy backs up. */
export function defaultRestoreGroup(name: string): string {
  return `${name}-restore`;
}

/**
 * Checks a restore request before anything is created and fills in its defaults; throws
 * InvalidInputError naming the field. The target names are looked up in the cloud: a restore
 * never overwrites nor adopts what exists.
 */
export async function planRestore(
  input: RestoreInput,
  source: { pointId: string; point: RecoveryPoint; vmRegion?: string },
  deps: { cloud: Cloud; policies: Policy[] },
): Promise<Omit<RestoreJobPayload, 'restoreId'>> {
  if (!VM_NAME.test(input.name))
    throw new InvalidInputError(
      'name',
      `${JSON.stringify(input.name)} is not a valid name: 1–64 letters, digits, _ - . starting with a letter or digit and ending with one or _`,
    );
  const region = (input.region ?? source.vmRegion ?? source.point.machine?.region)?.replace(/\s+/g, '').toLowerCase();
  if (!region) throw new InvalidInputError('region', 'the source VM is gone; say which region to restore to');
  if (deps.cloud.knownRegion && !deps.cloud.knownRegion(region))
    throw new InvalidInputError(
      'region',
      `unknown region ${JSON.stringify(input.region ?? region)} (e.g. westeurope, eastus2)`,
    );

  const resourceGroup = input.resourceGroup ?? defaultRestoreGroup(input.name);
  if (!RESOURCE_GROUP.test(resourceGroup) || resourceGroup.endsWith('.')) {
    throw new InvalidInputError(
      'resourceGroup',
      `${JSON.stringify(resourceGroup)} is not a valid resource group name: 1–90 letters, digits, _ - . ( ), not ending in a period`,
    );
  }
  if (input.resourceGroup === undefined) {
    // The default is never a group a policy backs up: a restored VM would be backed up as a new VM.
    const selecting = deps.policies.find((p) =>
      p.selection.resourceGroups?.some((rg) => rg.toLowerCase() === resourceGroup.toLowerCase()),
    );
    if (selecting)
      throw new InvalidInputError(
        'resourceGroup',
        `the default group ${resourceGroup} is selected by policy ${selecting.name}: name another resourceGroup`,
      );
  }

  const disks = input.disks ?? source.point.disks.map((d) => d.name);
  const unknown = disks.filter((name) => !source.point.disks.some((d) => d.name === name));
  if (unknown.length)
    throw new InvalidInputError(
      'disks',
      `recovery point ${source.pointId.slice(0, 12)} has no disk ${unknown.join(', ')} (it has ${source.point.disks.map((d) => d.name).join(', ')})`,
    );
  if (disks.length === 0) throw new InvalidInputError('disks', 'names no disk to restore');
  for (const d of disks) {
    const diskName = `${input.name}-${d}`;
    if (!DISK_NAME.test(diskName))
      throw new InvalidInputError(
        'name',
        `the restored disk would be named ${JSON.stringify(diskName)}, which is not a valid disk name (at most 80 letters, digits, _ - .): choose a shorter name`,
      );
  }
  if (input.networkInterfaceId !== undefined && !NIC_ID.test(input.networkInterfaceId)) {
    throw new InvalidInputError(
      'networkInterfaceId',
      'must be a network interface id: /subscriptions/…/resourceGroups/…/providers/Microsoft.Network/networkInterfaces/…',
    );
  }
  if (input.subnetId !== undefined) {
    if (!SUBNET_ID.test(input.subnetId))
      throw new InvalidInputError(
        'subnetId',
        'must be a subnet id: /subscriptions/…/resourceGroups/…/providers/Microsoft.Network/virtualNetworks/…/subnets/…',
      );
    if (input.networkInterfaceId !== undefined)
      throw new InvalidInputError(
        'subnetId',
        'give a subnet (a new network interface is made in it) or a networkInterfaceId, not both',
      );
    if (!input.createVm)
      throw new InvalidInputError('subnetId', 'a network interface is made only for a new VM: add createVm');
  }
  const subscriptionId = input.subscriptionId;
  if (subscriptionId !== undefined && !(deps.cloud.knowsSubscription?.(subscriptionId) ?? false)) {
    throw new InvalidInputError(
      'subscriptionId',
      `${JSON.stringify(subscriptionId)} is not a subscription this server works on (set AZURE_SUBSCRIPTION_IDS to add one)`,
    );
  }
  if (input.vmSize !== undefined && !VM_SIZE.test(input.vmSize))
    throw new InvalidInputError('vmSize', `${JSON.stringify(input.vmSize)} is not a VM size (e.g. Standard_D2s_v5)`);
  const createVm = input.createVm ?? false;
  if (createVm && !disks.some((d) => source.point.disks.find((r) => r.name === d)?.source?.role === 'os')) {
    throw new InvalidInputError(
      'createVm',
      'the disks restored include no OS disk: restore the disks only, or include the OS disk',
    );
  }

  // Existing targets: refused now, rather than after minutes of upload.
  for (const d of disks) {
    const diskName = `${input.name}-${d}`;
    if (await deps.cloud.findResource('disk', resourceGroup, diskName, subscriptionId))
      throw new InvalidInputError(
        'name',
        `a disk named ${diskName} already exists in resource group ${resourceGroup}: choose another name`,
      );
  }
  if (createVm && (await deps.cloud.findResource('vm', resourceGroup, input.name, subscriptionId))) {
    throw new InvalidInputError(
      'name',
      `a VM named ${input.name} already exists in resource group ${resourceGroup}: choose another name`,
    );
  }
  return {
    pointId: source.pointId,
    region,
    resourceGroup,
    name: input.name,
    createVm,
    ...(input.disks ? { disks: input.disks } : {}),
    ...(input.networkInterfaceId ? { networkInterfaceId: input.networkInterfaceId } : {}),
    ...(input.subnetId ? { subnetId: input.subnetId } : {}),
    ...(input.vmSize ? { vmSize: input.vmSize } : {}),
    ...(subscriptionId ? { subscriptionId } : {}),
  };
}
