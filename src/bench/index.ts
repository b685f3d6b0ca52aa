// The serving benchmark (`duet bench serve`) from code: the package's `duet/bench` entry point.

export { type BenchServeArgs, benchServeArgs, DEFAULT_BENCH_SERVE_ARGS } from './serve-args.js';
export { type BenchIO, runServeBenchmark, type ServeBenchmarkResult } from './serve-benchmark.js';
