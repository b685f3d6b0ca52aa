// Tests reach the network-namespace testbed through here (the implementation lives beside the script in
// bench/testbed/, where the benchmarks use it too).

export {
  canUseNetns,
  inHost,
  type TestbedHost,
  type TestbedOptions,
  whyNoNetns,
  withTestbed,
} from '../../bench/testbed/testbed.js';
