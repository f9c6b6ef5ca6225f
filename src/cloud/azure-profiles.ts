import type { Disk, SecurityProfile, VirtualMachine } from '@azure/arm-compute';
import type { DiskProfile, MachineProfile } from './cloud.ts';

/**
 * What a restore must set again for a VM to boot as it did (azure-docs: disks-upload-vhd-to-
 * managed-disk-cli.md): without SKU, OS type, generation and security type an uploaded disk comes
 * back a Standard HDD, generation 1 disk, which a generation 2 or Trusted Launch VM cannot boot.
 */
export function diskProfile(disk: Disk): DiskProfile {
  const p: DiskProfile = {};
  if (disk.sku?.name) p.sku = disk.sku.name;
  if (disk.osType) p.osType = disk.osType;
  if (disk.hyperVGeneration) p.hyperVGeneration = disk.hyperVGeneration;
  if (disk.securityProfile?.securityType) p.securityType = disk.securityProfile.securityType;
  if (disk.zones?.[0]) p.zone = disk.zones[0];
  if (disk.tags && Object.keys(disk.tags).length) p.tags = { ...disk.tags };
  return p;
}

export function machineProfile(vm: VirtualMachine, resourceGroup: string): MachineProfile {
  const p: MachineProfile = { name: vm.name!, region: vm.location, resourceGroup };
  if (vm.hardwareProfile?.vmSize) p.size = vm.hardwareProfile.vmSize;
  if (vm.zones?.[0]) p.zone = vm.zones[0];
  if (vm.securityProfile?.securityType) p.securityType = vm.securityProfile.securityType;
  if (vm.tags && Object.keys(vm.tags).length) p.tags = { ...vm.tags };
  return p;
}

/** Disk SKUs Azure cannot upload to (Ultra): a restore writes those as Premium SSD, the closest that can be. */
export const NO_UPLOAD_SKUS = new Set(['UltraSSD_LRS']);

/** The properties of a disk to upload that make it the source disk again. */
export function uploadDiskProperties(p: DiskProfile | undefined): Partial<Disk> {
  if (!p) return {};
  if (p.securityType?.startsWith('ConfidentialVM')) {
    throw new Error(
      `the disk was a ${p.securityType} disk: restoring confidential VM disks (which needs their VM guest state) is not supported yet`,
    );
  }
  const out: Partial<Disk> = {};
  if (p.sku) out.sku = { name: NO_UPLOAD_SKUS.has(p.sku) ? 'Premium_LRS' : p.sku };
  if (p.osType === 'Windows' || p.osType === 'Linux') out.osType = p.osType;
  if (p.hyperVGeneration) out.hyperVGeneration = p.hyperVGeneration;
  // Trusted Launch disks upload as such; their vTPM state is not in the disk and starts afresh.
  if (p.securityType && p.securityType !== 'Standard') out.securityProfile = { securityType: p.securityType };
  if (p.zone) out.zones = [p.zone];
  return out;
}

export function vmSecurityProfile(securityType: string): SecurityProfile {
  return securityType === 'TrustedLaunch'
    ? { securityType, uefiSettings: { secureBootEnabled: true, vTpmEnabled: true } }
    : { securityType };
}

export function osTypeOf(profile: DiskProfile | undefined): 'Windows' | 'Linux' {
  return profile?.osType === 'Windows' ? 'Windows' : 'Linux';
}
