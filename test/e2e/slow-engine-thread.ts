// An engine worker that waits 1.5 s before starting the real one: stands for a long model load in tests
// of what the server answers while it loads.

await new Promise((resolve) => setTimeout(resolve, 1500));
await import('../../src/engine/async/engine-thread.js');
