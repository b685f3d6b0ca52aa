// The Kubernetes manifests of deploy/kubernetes, offline:
// - against Kubernetes' published OpenAPI schemas as the `kubernetes-models` package compiles them (types,
//   required fields, enums, quantities; the schemas allow unknown fields, as the API server's own
//   validation does unless a client asks for strict field validation): the Service, the PodMonitor (its
//   CRD schema from `@kubernetes-models/prometheus-operator`), and the LeaderWorkerSet's leader and worker
//   pod templates as PodTemplateSpecs. No npm package ships the LeaderWorkerSet CRD's schema, so its own
//   fields are checked against a strict schema of the v1 fields used here (written from the LWS API
//   reference: size, restartPolicy, startupPolicy, the two templates), unknown fields refused;
// - for what they mean to Duet: both command lines are valid `duet serve` flags that, under the
//   LeaderWorkerSet environment of each pod, make the leader the serving head and the worker a headless
//   node of a group of `size`; the cluster secret comes from the same Secret; the probes hit /ready and
//   /live on the served port; the Service and the PodMonitor select the leader and name its port; the
//   termination grace covers the drain; the memory request follows from the model's size.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { PodTemplate, Service } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { normaliseFlagSpelling, parseBytes } from '../../src/cli/engine-args.js';
import { engineConfigUnderLauncher } from '../../src/cli/launcher-options.js';
import { serveCommand } from '../../src/cli/serve.js';
import type { EngineConfig } from '../../src/config/engine-config.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { numParameters } from '../../src/models/deepseek-weights.js';
import { ALWAYS_ANSWERED } from '../../src/server/lifecycle.js';
import { createLogger } from '../../src/util/logger.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const DIR = join(ROOT, 'deploy', 'kubernetes');

// biome-ignore lint/suspicious/noExplicitAny: manifests are read as plain YAML data and checked field by field
type Doc = any;

function readDocs(file: string): Doc[] {
  const docs = parseAllDocuments(readFileSync(join(DIR, file), 'utf8'));
  for (const d of docs) assert.deepEqual(d.errors, [], `${file}: YAML errors`);
  return docs.map((d) => d.toJS());
}

const [lws] = readDocs('leaderworkerset.yaml') as [Doc];
const [service] = readDocs('service.yaml') as [Doc];
const [podMonitor] = readDocs('podmonitor.yaml') as [Doc];
const leader = lws.spec.leaderWorkerTemplate.leaderTemplate;
const worker = lws.spec.leaderWorkerTemplate.workerTemplate;
const size = lws.spec.leaderWorkerTemplate.size as number;

/** The LeaderWorkerSet v1 fields this manifest uses, strictly (unknown fields are refused). */
const podTemplate = z.object({
  metadata: z.record(z.string(), z.unknown()),
  spec: z.record(z.string(), z.unknown()),
});
const leaderWorkerSetSchema = z.strictObject({
  apiVersion: z.literal('leaderworkerset.x-k8s.io/v1'),
  kind: z.literal('LeaderWorkerSet'),
  metadata: z.strictObject({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/),
    labels: z.record(z.string(), z.string()).optional(),
  }),
  spec: z.strictObject({
    replicas: z.number().int().min(0),
    startupPolicy: z.enum(['LeaderCreated', 'LeaderReady']),
    leaderWorkerTemplate: z.strictObject({
      size: z.number().int().min(1),
      restartPolicy: z.enum(['RecreateGroupOnPodRestart', 'RecreateGroupAfterStart', 'None']),
      leaderTemplate: podTemplate,
      workerTemplate: podTemplate,
    }),
  }),
});

/** Validates a pod template as Kubernetes' PodTemplateSpec; throws with the schema's messages. */
function validatePodTemplate(template: Doc): void {
  new PodTemplate({ metadata: { name: 'template' }, template }).validate();
}

/** The container's `duet serve` command line under this pod's LeaderWorkerSet environment. */
function engineConfigOf(template: Doc, workerIndex: number): { config: EngineConfig; log: string } {
  const c = template.spec.containers[0];
  assert.deepEqual(c.command.slice(0, 2), ['duet', 'serve'], 'the container runs duet serve');
  // Kubernetes substitutes $(VAR) from the container's env; a pod IP stands in for status.podIP.
  const argv = [...c.command.slice(2), ...c.args].map((a: string) => a.replace('$(POD_IP)', '10.4.0.7'));
  const cmd = serveCommand().exitOverride();
  cmd.action(() => {});
  cmd.parse(normaliseFlagSpelling(argv), { from: 'user' });
  // The pod's DUET_CLUSTER_SECRET (from the Secret) stands in as the secret; the config reads it from the
  // process environment, so it is handed over as the option it would become.
  const fromSecret = c.env?.some((v: Doc) => v.name === 'DUET_CLUSTER_SECRET' && v.valueFrom?.secretKeyRef);
  const options = {
    ...cmd.opts(),
    model: cmd.args[0],
    clusterSecret: fromSecret ? 'from-the-secret' : undefined,
  };
  const env = {
    LWS_LEADER_ADDRESS: `${lws.metadata.name}-0.${lws.metadata.name}.default`,
    LWS_GROUP_SIZE: String(size),
    LWS_WORKER_INDEX: String(workerIndex),
  };
  const lines: string[] = [];
  const config = engineConfigUnderLauncher(
    options,
    (key) => cmd.getOptionValueSource(key) === 'cli',
    env,
    16,
    createLogger('info', (l) => lines.push(l)),
  );
  return { config, log: lines.join('\n') };
}

/** A Kubernetes memory quantity (Gi, Mi, Ki, G, M, K or plain bytes) in bytes. */
function quantityBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$/.exec(q);
  assert.ok(m, `a memory quantity: ${q}`);
  const scale: Record<string, number> = {
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    K: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Number(m[1]) * (m[2] ? scale[m[2]]! : 1);
}

describe('against the published schemas', () => {
  test('the Service and the PodMonitor validate', () => {
    assert.equal(service.kind, 'Service');
    new Service(service).validate();
    assert.equal(podMonitor.kind, 'PodMonitor');
    new PodMonitor(podMonitor).validate();
  });

  test("the LeaderWorkerSet's own fields and its two pod templates validate", () => {
    leaderWorkerSetSchema.parse(lws);
    validatePodTemplate(leader);
    validatePodTemplate(worker);
  });

  test('the validators catch broken manifests (they can fail)', () => {
    const badPort = structuredClone(leader);
    badPort.spec.containers[0].ports[0].containerPort = 'eight thousand';
    assert.throws(() => validatePodTemplate(badPort), /containerPort must be integer/);
    const badMemory = structuredClone(worker);
    badMemory.spec.containers[0].resources.requests.memory = '26 gigs';
    assert.throws(() => validatePodTemplate(badMemory), /memory must match format "quantity"/);
    const noProbePort = structuredClone(leader);
    delete noProbePort.spec.containers[0].readinessProbe.httpGet.port;
    assert.throws(() => validatePodTemplate(noProbePort), /must have required property port/);
    const badService = structuredClone(service);
    badService.spec.type = 'Public';
    assert.throws(() => new Service(badService).validate(), /must be equal to one of the allowed values/);
    assert.throws(
      () => leaderWorkerSetSchema.parse({ ...lws, spec: { ...lws.spec, startupPolicy: 'Whenever' } }),
      /startupPolicy/,
    );
    assert.throws(
      () => leaderWorkerSetSchema.parse({ ...lws, spec: { ...lws.spec, replica: 2 } }),
      /replica/,
    );
  });
});

describe('what the manifests mean to Duet', () => {
  test('the leader is the head that serves and the worker a headless node, from the LWS environment', () => {
    const head = engineConfigOf(leader, 0);
    assert.equal(head.config.parallel.nnodes, size);
    assert.equal(head.config.parallel.nodeRank, 0);
    assert.equal(head.config.parallel.headless, false);
    assert.equal(head.config.parallel.masterAddr, '10.4.0.7', 'the head binds its own pod address');
    assert.match(head.log, /LeaderWorkerSet started this process .*: node 0 of 2, the head, serving/);
    for (let i = 1; i < size; i++) {
      const node = engineConfigOf(worker, i);
      assert.equal(node.config.parallel.nodeRank, i);
      assert.equal(node.config.parallel.headless, true);
      assert.equal(node.config.parallel.masterAddr, 'duet-0.duet.default', 'workers dial LWS_LEADER_ADDRESS');
      assert.equal(node.config.parallel.masterPort, head.config.parallel.masterPort);
      // The head refuses a node whose model or settings differ: the two command lines must agree.
      assert.deepEqual(
        { ...node.config.model, servedModelName: null },
        { ...head.config.model, servedModelName: null },
      );
      assert.deepEqual(
        { ...node.config.parallel, nodeRank: 0, headless: false, masterAddr: '' },
        { ...head.config.parallel, masterAddr: '' },
      );
      assert.deepEqual(node.config.cache, head.config.cache);
    }
    // LeaderReady would wait for a leader that is ready only once the workers have joined it.
    assert.equal(lws.spec.startupPolicy, 'LeaderCreated');
    const rendezvous = leader.spec.containers[0].ports.find((p: Doc) => p.name === 'rendezvous');
    assert.equal(rendezvous.containerPort, head.config.parallel.masterPort);
  });

  test('both take the cluster secret from the same Secret through DUET_CLUSTER_SECRET', () => {
    const refs = [leader, worker].map((t) => {
      const e = t.spec.containers[0].env.find((v: Doc) => v.name === 'DUET_CLUSTER_SECRET');
      assert.ok(e?.valueFrom?.secretKeyRef, 'DUET_CLUSTER_SECRET from a secretKeyRef');
      assert.notEqual(e.valueFrom.secretKeyRef.optional, true, 'the cluster secret is required');
      return e.valueFrom.secretKeyRef;
    });
    assert.deepEqual(refs[0], refs[1]);
    for (const t of [leader, worker]) {
      assert.ok(!t.spec.containers[0].args.includes('--cluster-secret'), 'never on the command line');
    }
  });

  test('the probes hit /ready and /live on the served port; the Service and PodMonitor find the leader', () => {
    const c = leader.spec.containers[0];
    const http = c.ports.find((p: Doc) => p.name === 'http');
    const head = engineConfigOf(leader, 0);
    assert.equal(http.containerPort, Number(c.args[c.args.indexOf('--port') + 1]));
    assert.equal(c.readinessProbe.httpGet.path, '/ready');
    assert.equal(c.startupProbe.httpGet.path, '/ready');
    assert.equal(c.livenessProbe.httpGet.path, '/live');
    for (const p of [c.readinessProbe, c.startupProbe, c.livenessProbe]) assert.equal(p.httpGet.port, 'http');
    assert.ok(ALWAYS_ANSWERED.has('/ready') && ALWAYS_ANSWERED.has('/live'), 'probes answer while draining');
    assert.ok(head.config.parallel.headless === false);
    // Start-up covers loading and the workers joining (the rendezvous waits up to 300 s for them).
    assert.ok(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold >= 300);

    const labels = leader.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(service.spec.selector as Record<string, string>)) {
      assert.equal(labels[k], v, `the Service selects the leader (${k})`);
    }
    assert.notEqual(
      worker.metadata.labels['app.kubernetes.io/component'],
      labels['app.kubernetes.io/component'],
    );
    assert.equal(service.spec.ports[0].targetPort, 'http');
    for (const [k, v] of Object.entries(podMonitor.spec.selector.matchLabels as Record<string, string>)) {
      assert.equal(labels[k], v, `the PodMonitor selects the leader (${k})`);
    }
    assert.equal(podMonitor.spec.podMetricsEndpoints[0].port, 'http');
    assert.equal(podMonitor.spec.podMetricsEndpoints[0].path, '/metrics');
    assert.equal(leader.metadata.annotations['prometheus.io/port'], String(http.containerPort));
    assert.equal(worker.spec.containers[0].readinessProbe, undefined, 'a headless node serves no HTTP');
  });

  test('the termination grace covers the preStop pause and the drain', () => {
    for (const t of [leader, worker]) {
      const c = t.spec.containers[0];
      const drainS = Number(c.args[c.args.indexOf('--shutdown-timeout') + 1]);
      const preStopS = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
      // + 10 s: the engine's own stop (AsyncEngine.close terminates its worker after 10 s).
      assert.ok(t.spec.terminationGracePeriodSeconds >= preStopS + drainS + 10);
    }
  });

  test("the memory request follows from the model's size and the KV cache", () => {
    const config = loadDeepseekConfig(join(ROOT, 'assets', 'configs', 'deepseek-v2-lite'));
    const weightsPerNode = (numParameters(config) * 2) / size; // bf16, split over the nodes
    for (const t of [leader, worker]) {
      const c = t.spec.containers[0];
      assert.match(c.command[2], /DeepSeek-V2-Lite$/);
      const kv = parseBytes(c.args[c.args.indexOf('--kv-cache-memory') + 1]);
      const request = quantityBytes(c.resources.requests.memory);
      const limit = quantityBytes(c.resources.limits.memory);
      const needed = weightsPerNode + kv;
      // At least the weights and the cache plus 2 GiB of runtime; at most 8 GiB more (sized, not guessed).
      assert.ok(request >= needed + 2 * 2 ** 30, `request ${request} < ${needed} + 2 GiB`);
      assert.ok(request <= needed + 8 * 2 ** 30, `request ${request} > ${needed} + 8 GiB`);
      assert.ok(limit >= request);
      assert.equal(Number(c.resources.requests.cpu), Number(c.args[c.args.indexOf('--num-threads') + 1]));
    }
  });
});
