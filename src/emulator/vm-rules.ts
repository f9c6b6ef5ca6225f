import { ArmError } from './core.ts';
import type { DiskRec } from './state.ts';

/**
 * Combinations Azure refuses, so that a restore that would not boot fails in the emulator as it
 * would on Azure (learn.microsoft.com/azure/virtual-machines/generation-2,
 * trusted-launch, disks-upload-vhd-to-managed-disk-cli).
 */

/** Sizes that run generation 1 VMs only (Basic and the A-series). */
export function isGen1OnlySize(vmSize: string): boolean {
  return /^(Basic_A\d+|Standard_A\d+|Standard_A\d+(m)?_v2)$/i.test(vmSize);
}

export const SECURITY_TYPES = [
  'Standard',
  'TrustedLaunch',
  'ConfidentialVM_VMGuestStateOnlyEncryptedWithPlatformKey',
  'ConfidentialVM_DiskEncryptedWithPlatformKey',
  'ConfidentialVM_DiskEncryptedWithCustomerKey',
  'ConfidentialVM_NonPersistedTPM',
];

/** A disk about to be made: Ultra disks take no direct upload; Trusted Launch needs generation 2. */
export function checkNewDisk(d: {
  createOption: unknown;
  skuName: string;
  hyperVGeneration?: string;
  securityType?: string;
}): void {
  if (d.createOption === 'Upload' && d.skuName === 'UltraSSD_LRS') {
    throw new ArmError(
      400,
      'InvalidParameter',
      'Direct upload to an Ultra disk is not supported. Upload to a Premium SSD disk and convert it, or restore from a snapshot.',
    );
  }
  if (d.securityType !== undefined && !SECURITY_TYPES.includes(d.securityType)) {
    throw new ArmError(
      400,
      'InvalidParameter',
      `The value '${d.securityType}' of parameter 'securityProfile.securityType' is invalid.`,
    );
  }
  if (d.securityType && d.securityType !== 'Standard' && d.hyperVGeneration !== 'V2') {
    throw new ArmError(
      400,
      'InvalidParameter',
      `A disk with securityType ${d.securityType} must be hyperVGeneration V2.`,
    );
  }
}

/** A VM about to be made from existing disks: its size and security must suit its OS disk. */
export function checkNewVm(
  vm: { vmSize: string; securityType?: string; zone?: string },
  osDisk: DiskRec,
  disks: DiskRec[],
): void {
  const gen = osDisk.hyperVGeneration ?? 'V1';
  if (gen === 'V2' && isGen1OnlySize(vm.vmSize)) {
    throw new ArmError(
      409,
      'BadRequest',
      `The selected VM size '${vm.vmSize}' cannot boot Hypervisor Generation '2'. If this was a Create operation please check that the Hypervisor Generation of the Image matches the Hypervisor Generation of the selected VM Size.`,
    );
  }
  const vmSecurity = vm.securityType ?? 'Standard';
  const diskSecurity = osDisk.securityType ?? 'Standard';
  if (vmSecurity !== diskSecurity) {
    throw new ArmError(
      400,
      'InvalidParameter',
      `The OS disk '${osDisk.name}' has securityType ${diskSecurity} and the VM ${vmSecurity}: they must match.`,
    );
  }
  for (const d of disks) {
    if (vm.zone && d.zone && d.zone !== vm.zone) {
      throw new ArmError(400, 'InvalidParameter', `Disk '${d.name}' is in zone ${d.zone}, the VM in zone ${vm.zone}.`);
    }
    if (!vm.zone && d.zone)
      throw new ArmError(
        400,
        'InvalidParameter',
        `Disk '${d.name}' is zonal (zone ${d.zone}): the VM must be in that zone.`,
      );
  }
}

export function zoneOf(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length > 1 || !v.every((z) => typeof z === 'string' && /^[1-3]$/.test(z))) {
    throw new ArmError(
      400,
      'InvalidParameter',
      "The value of parameter 'zones' is invalid: give one of '1', '2', '3'.",
    );
  }
  return v[0] as string | undefined;
}
