#!/usr/bin/env node
// The `duet` command. Device setup (relaxed SIMD on the CPU platform) is the platform's own
// (Platform.prepareThread), run where the engine loads its platform.
const { main } = await import('../dist/src/cli/main.js');
await main(process.argv.slice(2));
