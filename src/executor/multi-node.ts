// Ranks spread over several hosts: the head node (node rank 0, which serves) and headless nodes meet at the
// rendezvous, which checks that every node runs the same model and settings, then all ranks join one TCP
// group. Ranks are split evenly: node n hosts global ranks [n·k, (n+1)·k). With data parallelism each host
// holds whole replicas, whose tensor-parallel groups are local (shared memory).

import os from 'node:os';
import { type EngineConfig, isLoopbackHost } from '../config/engine-config.js';
import {
  createSharedMemoryGroup,
  createTcpGroup,
  findFreePorts,
  type GroupDescriptor,
} from '../distributed/group.js';
import {
  joinRendezvous,
  type NodeSummary,
  type RendezvousSettings,
  serveRendezvous,
} from '../distributed/rendezvous.js';
import { type ResolvedModel, resolveModel } from '../models/model-loader.js';
import type { Logger } from '../util/logger.js';
import { modelRegistryFrom } from './platform-loader.js';
import { launchRankWorkers, type RankLayout } from './rank-launcher.js';

/** What must be equal on every node: the model and every setting that shapes the computation. */
export function modelSummary(config: EngineConfig, resolved: ResolvedModel): NodeSummary {
  const m = config.model;
  const p = config.parallel;
  return {
    model: resolved.config,
    dtype: resolved.weightDType,
    loadFormat: m.loadFormat,
    seed: m.loadFormat === 'dummy' || m.model === null ? m.seed : null,
    maxModelLen: resolved.maxModelLen,
    tensorParallelSize: p.tensorParallelSize,
    dataParallelSize: p.dataParallelSize,
    nnodes: p.nnodes,
    enableExpertParallel: p.enableExpertParallel,
    moeComm: p.moeComm,
    blockSize: config.cache.blockSize,
    dbo: {
      enabled: config.dbo.enabled,
      prefill: config.dbo.prefillTokenThreshold,
      decode: config.dbo.decodeTokenThreshold,
    },
  };
}

/**
 * Least time the nodes are given to find each other at start-up, whatever --dist-timeout says: hosts are
 * started by hand or by a scheduler, seconds to minutes apart, while --dist-timeout may be a few seconds
 * to detect a dead peer quickly once running (torchrun's rendezvous waits 900 s).
 */
export const MIN_RENDEZVOUS_TIMEOUT_MS = 300_000;

function rendezvousSettings(config: EngineConfig): RendezvousSettings {
  const p = config.parallel;
  return {
    nnodes: p.nnodes,
    nodeRank: p.nodeRank,
    masterAddr: p.masterAddr,
    masterPort: p.masterPort,
    secret: p.clusterSecret,
    timeoutMs: Math.max(p.distTimeoutMs, MIN_RENDEZVOUS_TIMEOUT_MS),
    ranksPerNode: ranksPerNode(config),
  };
}

function ranksPerNode(config: EngineConfig): number {
  return (config.parallel.tensorParallelSize * config.parallel.dataParallelSize) / config.parallel.nnodes;
}

/**
 * Tensor-parallel groups of the data-parallel replicas this node holds (shared memory: a replica never
 * spans hosts), indexed by replica; null where no such groups are needed.
 */
function localReplicaGroups(config: EngineConfig): (GroupDescriptor | null)[] | null {
  const { tensorParallelSize: tp, dataParallelSize: dp, nodeRank } = config.parallel;
  if (dp === 1 || tp === 1) return null;
  const perNode = ranksPerNode(config) / tp;
  return Array.from({ length: dp }, (_, r) =>
    Math.floor(r / perNode) === nodeRank ? createSharedMemoryGroup(tp) : null,
  );
}

/** The head's side: rendezvous with the other nodes, then the TCP group layout of its local ranks. */
export async function headRankLayout(
  config: EngineConfig,
  summary: NodeSummary,
  numBlocks: number,
  log: Logger,
): Promise<RankLayout> {
  const k = ranksPerNode(config);
  const host = config.parallel.masterAddr;
  const ports = await findFreePorts(k, host);
  const settings = rendezvousSettings(config);
  if (config.parallel.clusterSecret === null && !isLoopbackHost(host))
    log.warn(
      `--allow-insecure-cluster: the cluster ports on ${host} take no secret; anyone who reaches them during start-up can join or take a rank's place`,
    );
  log.info(
    `waiting for ${config.parallel.nnodes - 1} node(s) to join at ${host}:${config.parallel.masterPort}` +
      (config.parallel.clusterSecret !== null ? ' (cluster secret required)' : '') +
      ` for up to ${settings.timeoutMs / 1000} s`,
  );
  const result = await serveRendezvous(
    settings,
    summary,
    ports.map((port) => ({ host, port })),
    numBlocks,
    (reason) => log.warn(`refused a node: ${reason}`),
  );
  log.info(`all ${config.parallel.nnodes} nodes joined; ${result.peers.length} ranks form the group`);
  return {
    descriptor: createTcpGroup(result.peers, { groupId: result.groupId, linkKey: result.linkKey }),
    replicaGroups: localReplicaGroups(config),
    workerRanks: Array.from({ length: k - 1 }, (_, i) => i + 1),
    hostsDriver: true,
  };
}

/**
 * A headless node: joins the head, runs its ranks as worker threads until the head stops them (or the
 * group fails). Rejects with a clear error when the head refuses this node.
 */
export async function runHeadlessNode(config: EngineConfig, log: Logger): Promise<void> {
  const resolved = resolveModel(config.model, await modelRegistryFrom(undefined, log));
  const k = ranksPerNode(config);
  const first = config.parallel.nodeRank * k;
  log.info(
    `headless node ${config.parallel.nodeRank}: joining the head at ${config.parallel.masterAddr}:${config.parallel.masterPort}`,
  );
  const result = await joinRendezvous(
    rendezvousSettings(config),
    modelSummary(config, resolved),
    async (localHost) => (await findFreePorts(k, localHost)).map((port) => ({ host: localHost, port })),
  );
  log.info(
    `joined: ranks ${first}..${first + k - 1} of ${result.peers.length}; ${result.numBlocks} KV cache blocks per rank`,
  );
  const numThreads = config.parallel.numThreads ?? os.availableParallelism();
  const ranks = await launchRankWorkers(
    config,
    result.numBlocks,
    Math.max(1, Math.floor(numThreads / k)),
    log,
    {
      descriptor: createTcpGroup(result.peers, { groupId: result.groupId, linkKey: result.linkKey }),
      replicaGroups: localReplicaGroups(config),
      workerRanks: Array.from({ length: k }, (_, i) => first + i),
      hostsDriver: false,
    },
  );
  let failure: Error | null = null;
  ranks.onFailure((e) => {
    failure = e;
  });
  await ranks.waitReady();
  log.info('ranks ready; serving the head until it stops');
  await ranks.waitExit();
  if (failure) throw failure;
  log.info('the head stopped the group; exiting');
}
