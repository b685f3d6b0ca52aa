#!/usr/bin/env node
// The `duet` command: enables WebAssembly relaxed SIMD before any module compiles, then runs the CLI.
import { enableWasmFeatures } from '../dist/src/platforms/cpu/wasm-features.js';

enableWasmFeatures();
const { main } = await import('../dist/src/cli/main.js');
await main(process.argv.slice(2));
