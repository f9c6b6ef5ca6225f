import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArmError, normalizeLocation } from './core.ts';
import { Mutex } from '../util/mutex.ts';
import { writeFileAtomic } from './durable.ts';
import { errorMessage } from '../util/errors.ts';

/**
 * Microsoft.ContainerInstance/containerGroups, as far as Goldsnap's proxy launcher uses it:
 * create (PUT), get, list (subscription, resource group) and delete. A container group runs one
 * real process per container on this machine: images are not pulled, the container's `command`
 * must start with `goldsnap` (run as this repository's CLI on the emulator's Node). States follow
 * ACI: the group's `instanceView.state` Pending → Running → Succeeded | Failed (restart policy
 * Never/OnFailure) and each container's `instanceView.currentState` Waiting → Running →
 * Terminated with `exitCode` and `detailStatus` Completed | Error. Secure environment values are
 * given to the process but never returned nor written to disk. A per-region quota of
 * `StandardCores` (sum of the CPU requests) refuses more with 400 ContainerGroupQuotaReached.
 *
 * The processes are tied to the emulator (an IPC channel): if the emulator dies they end too,
 * and at its next start their groups are reported Terminated, as a host that lost its containers.
 */

const CLI = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const TYPE = 'Microsoft.ContainerInstance/containerGroups';
const RESTART_POLICIES = ['Always', 'OnFailure', 'Never'] as const;
type RestartPolicy = (typeof RESTART_POLICIES)[number];

interface ContainerState {
  state: 'Waiting' | 'Running' | 'Terminated';
  detailStatus: string;
  startTime?: string;
  finishTime?: string;
  exitCode?: number;
}

interface EnvVar {
  name: string;
  value?: string;
  secure: boolean;
}

interface ContainerRec {
  name: string;
  image: string;
  command: string[];
  /** Plain values are kept; secure ones only live in `secureEnv` (memory) while the group exists. */
  env: EnvVar[];
  cpu: number;
  memoryInGB: number;
  restartCount: number;
  currentState: ContainerState;
  previousState?: ContainerState;
}

interface GroupRec {
  id: string;
  name: string;
  resourceGroup: string;
  location: string;
  tags: Record<string, string>;
  osType: string;
  restartPolicy: RestartPolicy;
  /** Epoch ms at which the group is provisioned and its containers start. */
  readyAt: number;
  containers: ContainerRec[];
}

interface Persisted {
  version: 1;
  groups: Record<string, GroupRec>;
}

export interface ContainerGroupOptions {
  /** StandardCores per region (default 10, a new subscription's default). */
  coresPerRegion?: number;
  /** How long provisioning takes before the containers start (ms, default 100). */
  provisionMs?: number;
}

export interface ArmReply {
  status: number;
  body?: unknown;
}

export class ContainerGroups {
  readonly #file: string;
  readonly #subscriptionId: string;
  readonly #cores: number;
  readonly #provisionMs: number;
  #groups: Record<string, GroupRec> = {};
  readonly #processes = new Map<string, ChildProcess>();
  readonly #secureEnv = new Map<string, Record<string, string>>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #saving = new Mutex();
  #closed = false;

  private constructor(dataDir: string, subscriptionId: string, opts: ContainerGroupOptions) {
    this.#file = join(dataDir, 'container-groups.json');
    this.#subscriptionId = subscriptionId;
    this.#cores = opts.coresPerRegion ?? Number(process.env.GOLDSNAP_EMULATOR_ACI_CORES ?? 10);
    this.#provisionMs = opts.provisionMs ?? 100;
  }

  /** Loads the groups of an earlier run: their processes ended with that emulator. */
  static async open(
    dataDir: string,
    subscriptionId: string,
    opts: ContainerGroupOptions = {},
  ): Promise<ContainerGroups> {
    const cg = new ContainerGroups(dataDir, subscriptionId, opts);
    try {
      const saved = JSON.parse(await readFile(cg.#file, 'utf8')) as Persisted;
      cg.#groups = saved.groups;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const now = new Date().toISOString();
    for (const g of Object.values(cg.#groups)) {
      for (const c of g.containers) {
        if (c.currentState.state === 'Terminated') continue;
        c.previousState = c.currentState;
        c.currentState = {
          state: 'Terminated',
          detailStatus: 'Killed: the emulator stopped',
          exitCode: 137,
          startTime: c.currentState.startTime,
          finishTime: now,
        };
      }
    }
    await cg.#save();
    return cg;
  }

  /**
   * Answers an ARM request if it is about container groups (undefined otherwise).
   * `lower` are the path segments lower-cased, `segs` as sent.
   */
  async handle(
    method: string,
    segs: string[],
    lower: string[],
    body: () => Promise<unknown>,
  ): Promise<ArmReply | undefined> {
    // /subscriptions/{s}/providers/Microsoft.ContainerInstance/containerGroups
    if (lower[2] === 'providers' && lower[3] === 'microsoft.containerinstance') {
      if (lower[4] === 'containergroups' && segs.length === 5 && method === 'GET')
        return { status: 200, body: { value: this.#list() } };
      throw new ArmError(404, 'NotFound', `No route for ${method} /${segs.join('/')}`);
    }
    if (!(lower[2] === 'resourcegroups' && lower[4] === 'providers' && lower[5] === 'microsoft.containerinstance'))
      return undefined;
    if (lower[6] !== 'containergroups')
      throw new ArmError(
        404,
        'InvalidResourceType',
        `The resource type '${segs[6] ?? ''}' could not be found in the namespace 'Microsoft.ContainerInstance'.`,
      );
    const rg = segs[3]!;
    if (segs.length === 7 && method === 'GET') return { status: 200, body: { value: this.#list(rg) } };
    if (segs.length !== 8) throw new ArmError(404, 'NotFound', `No route for ${method} /${segs.join('/')}`);
    const name = segs[7]!;
    const key = this.#key(rg, name);
    if (method === 'GET') {
      const g = this.#groups[key];
      if (!g) throw notFound(rg, name);
      return { status: 200, body: this.#render(g) };
    }
    if (method === 'PUT') return this.#put(rg, name, await body());
    if (method === 'DELETE') {
      const g = this.#groups[key];
      if (!g) return { status: 204 };
      await this.#stop(key);
      delete this.#groups[key];
      this.#secureEnv.delete(key);
      await this.#save();
      return { status: 200, body: this.#render(g) };
    }
    throw new ArmError(405, 'MethodNotAllowed', `${method} is not supported by the emulator for container groups`);
  }

  /** Stops every container process (the emulator is closing). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    await Promise.all([...this.#processes.keys()].map((key) => this.#stop(key)));
  }

  #key(rg: string, name: string): string {
    return `${rg}/${name}`.toLowerCase();
  }

  #list(rg?: string): unknown[] {
    return Object.values(this.#groups)
      .filter((g) => !rg || g.resourceGroup.toLowerCase() === rg.toLowerCase())
      .map((g) => this.#render(g));
  }

  async #put(rg: string, name: string, raw: unknown): Promise<ArmReply> {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name) || name.includes('--')) {
      throw new ArmError(
        400,
        'InvalidContainerGroupName',
        `The container group name '${name}' is invalid. A container group name must contain no more than 63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').`,
      );
    }
    const spec = record(raw, 'containerGroup');
    const location = normalizeLocation(spec.location);
    const props = record(spec.properties, 'properties');
    const osType = props.osType === undefined ? 'Linux' : String(props.osType);
    if (osType !== 'Linux' && osType !== 'Windows')
      throw new ArmError(400, 'InvalidOsType', `The os type '${osType}' is not valid. Use 'Linux' or 'Windows'.`);
    const restartPolicy = (props.restartPolicy ?? 'Always') as RestartPolicy;
    if (!RESTART_POLICIES.includes(restartPolicy))
      throw new ArmError(
        400,
        'InvalidRestartPolicy',
        `The restart policy '${String(restartPolicy)}' is not valid: use Always, OnFailure or Never.`,
      );
    if (!Array.isArray(props.containers) || props.containers.length === 0)
      throw new ArmError(
        400,
        'NoContainersInContainerGroup',
        `The container group '${name}' must have at least one container.`,
      );
    const secure: Record<string, string> = {};
    const containers = props.containers.map((raw): ContainerRec => {
      const c = record(raw, 'containers[]');
      const cname = String(c.name ?? '');
      const cp = record(c.properties, `container '${cname}' properties`);
      if (typeof cp.image !== 'string' || !cp.image)
        throw new ArmError(400, 'InvalidContainerImage', `The container '${cname}' must have an image.`);
      const requests = record(record(cp.resources, 'resources').requests, 'resources.requests');
      const cpu = Number(requests.cpu);
      const memoryInGB = Number(requests.memoryInGB);
      if (!(cpu > 0) || !(memoryInGB > 0))
        throw new ArmError(
          400,
          'InvalidContainerResourceRequests',
          `The container '${cname}' must request cpu and memoryInGB greater than 0.`,
        );
      const env = ((cp.environmentVariables ?? []) as unknown[]).map((e): EnvVar => {
        const v = record(e, 'environmentVariables[]');
        const vname = String(v.name ?? '');
        if (typeof v.secureValue === 'string') {
          secure[`${cname}\0${vname}`] = v.secureValue;
          return { name: vname, secure: true };
        }
        return { name: vname, value: typeof v.value === 'string' ? v.value : '', secure: false };
      });
      return {
        name: cname,
        image: cp.image,
        command: Array.isArray(cp.command) ? cp.command.map(String) : [],
        env,
        cpu,
        memoryInGB,
        restartCount: 0,
        currentState: { state: 'Waiting', detailStatus: 'Pending' },
      };
    });
    const key = this.#key(rg, name);
    const requested = Math.ceil(containers.reduce((n, c) => n + c.cpu, 0));
    const usage = Math.ceil(
      Object.entries(this.#groups)
        .filter(([k, g]) => k !== key && g.location === location)
        .reduce((n, [, g]) => n + g.containers.reduce((m, c) => m + c.cpu, 0), 0),
    );
    if (usage + requested > this.#cores) {
      throw new ArmError(
        400,
        'ContainerGroupQuotaReached',
        `Resource type '${TYPE}' container group quota 'StandardCores' exceeded in region '${location}'. Limit: '${this.#cores}', Usage: '${usage}' Requested: '${requested}'.`,
      );
    }
    const existed = Boolean(this.#groups[key]);
    if (existed) await this.#stop(key);
    const g: GroupRec = {
      id: `/subscriptions/${this.#subscriptionId}/resourceGroups/${rg}/providers/${TYPE}/${name}`,
      name,
      resourceGroup: rg,
      location,
      tags: stringTags(spec.tags),
      osType,
      restartPolicy,
      readyAt: Date.now() + this.#provisionMs,
      containers,
    };
    this.#groups[key] = g;
    this.#secureEnv.set(key, secure);
    await this.#save();
    // Provisioning (scheduling, image pull) takes a moment; then every container starts.
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#groups[key] === g) for (const c of g.containers) this.#start(key, g, c);
    }, this.#provisionMs);
    this.#timers.add(timer);
    return { status: existed ? 200 : 201, body: this.#render(g) };
  }

  #start(key: string, g: GroupRec, c: ContainerRec): void {
    if (this.#closed) return;
    const started = new Date().toISOString();
    if (c.command[0] !== 'goldsnap') {
      // No image is pulled here: only Goldsnap's own program can run.
      c.currentState = {
        state: 'Terminated',
        detailStatus: 'Error',
        exitCode: 127,
        startTime: started,
        finishTime: started,
      };
      this.#saveLater();
      return;
    }
    const secure = this.#secureEnv.get(key) ?? {};
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
    for (const v of c.env) env[v.name] = v.secure ? secure[`${c.name}\0${v.name}`] : v.value;
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', CLI, ...c.command.slice(1)], {
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#processes.set(`${key}\0${c.name}`, child);
    c.currentState = { state: 'Running', detailStatus: '', startTime: started };
    this.#saveLater();
    child.on('exit', (code, signal) => {
      this.#processes.delete(`${key}\0${c.name}`);
      if (this.#groups[key] !== g) return;
      const exitCode = code ?? (signal === 'SIGKILL' ? 137 : 143);
      c.previousState = undefined;
      c.currentState = {
        state: 'Terminated',
        detailStatus: exitCode === 0 ? 'Completed' : 'Error',
        exitCode,
        startTime: started,
        finishTime: new Date().toISOString(),
      };
      const restart = g.restartPolicy === 'Always' || (g.restartPolicy === 'OnFailure' && exitCode !== 0);
      if (restart && !this.#closed) {
        // ACI restarts with a growing back-off; a restarted container keeps its previous state.
        c.previousState = c.currentState;
        c.restartCount += 1;
        c.currentState = { state: 'Waiting', detailStatus: 'CrashLoopBackOff' };
        const timer = setTimeout(
          () => {
            this.#timers.delete(timer);
            if (this.#groups[key] === g) this.#start(key, g, c);
          },
          Math.min(30_000, 500 * 2 ** Math.min(c.restartCount, 6)),
        );
        this.#timers.add(timer);
      }
      this.#saveLater();
    });
  }

  async #stop(key: string): Promise<void> {
    const mine = [...this.#processes.entries()].filter(([k]) => k.startsWith(`${key}\0`));
    await Promise.all(
      mine.map(
        ([k, child]) =>
          new Promise<void>((resolve) => {
            this.#processes.delete(k);
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  }

  #groupState(g: GroupRec): string {
    if (Date.now() < g.readyAt) return 'Pending';
    const states = g.containers.map((c) => c.currentState);
    if (states.some((s) => s.state === 'Running' || s.state === 'Waiting'))
      return states.some((s) => s.state === 'Running') ? 'Running' : 'Pending';
    return states.every((s) => s.exitCode === 0) ? 'Succeeded' : 'Failed';
  }

  #render(g: GroupRec): unknown {
    return {
      id: g.id,
      name: g.name,
      type: TYPE,
      location: g.location,
      tags: g.tags,
      properties: {
        provisioningState: Date.now() < g.readyAt ? 'Creating' : 'Succeeded',
        sku: 'Standard',
        osType: g.osType,
        restartPolicy: g.restartPolicy,
        containers: g.containers.map((c) => ({
          name: c.name,
          properties: {
            image: c.image,
            command: c.command,
            ports: [],
            // Secure values are write-only, as on Azure: their names come back, never their values.
            environmentVariables: c.env.map((v) => (v.secure ? { name: v.name } : { name: v.name, value: v.value })),
            resources: { requests: { cpu: c.cpu, memoryInGB: c.memoryInGB } },
            instanceView: {
              restartCount: c.restartCount,
              currentState: c.currentState,
              ...(c.previousState ? { previousState: c.previousState } : {}),
              events: [],
            },
          },
        })),
        instanceView: { state: this.#groupState(g), events: [] },
      },
    };
  }

  /** Writes the groups as they are when the write's turn comes (writes are serialized). */
  async #save(): Promise<void> {
    await this.#saving.run(() =>
      writeFileAtomic(this.#file, JSON.stringify({ version: 1, groups: this.#groups } satisfies Persisted)),
    );
  }

  /** For state changes made outside a request (a process started or ended): best effort. */
  #saveLater(): void {
    this.#save().catch((err: unknown) =>
      process.emitWarning(`emulator: container groups not saved: ${errorMessage(err)}`),
    );
  }
}

function notFound(rg: string, name: string): ArmError {
  return new ArmError(
    404,
    'ResourceNotFound',
    `The Resource '${TYPE}/${name}' under resource group '${rg}' was not found.`,
  );
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new ArmError(400, 'InvalidRequestContent', `The request content is invalid: '${what}' must be an object.`);
  return v as Record<string, unknown>;
}

function stringTags(v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(record(v, 'tags'))) out[k] = String(val);
  return out;
}
