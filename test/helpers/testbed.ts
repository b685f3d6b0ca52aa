// Tests reach the network-namespace testbed through here (the implementation lives beside the script in
// scripts/testbed/, where the benchmarks use it too).

export {
  canUseNetns,
  inHost,
  type TestbedHost,
  type TestbedOptions,
  whyNoNetns,
  withTestbed,
} from '../../scripts/testbed/testbed.js';
