// The CPU platform: WebAssembly SIMD kernels on worker threads sharing memories, machine RAM as device
// memory, the calling thread as compute stream and a serial async queue as communication stream.

import os from 'node:os';
import type { Kernels } from '../../kernels/kernels.js';
import type { DeviceEvent, KernelOptions, Platform, PlatformNotice, Stream } from '../platform.js';
import { createWasmKernels } from './wasm-kernels.js';

/** Engine settings that change nothing on the CPU platform, with the reason given in the notice. */
const NO_EFFECT_ON_CPU: Readonly<Record<string, string>> = {
  compilationConfig: 'there is no graph compilation on the CPU platform',
  enforceEager: 'the CPU platform always runs eagerly',
  trustRemoteCode: 'Duet runs its own model code; no remote code is executed',
};

class CompletedEvent implements DeviceEvent {
  constructor(private readonly done: Promise<void>) {}
  private settled = false;
  get isDone(): boolean {
    return this.settled;
  }
  markDone(): void {
    this.settled = true;
  }
  wait(): Promise<void> {
    return this.done;
  }
}

/** Runs each submission in order; the next starts when the previous one's promise settles. */
class SerialStream implements Stream {
  private tail: Promise<void> = Promise.resolve();
  constructor(readonly name: string) {}
  submit(work: () => Promise<void> | void): DeviceEvent {
    const run = this.tail.then(() => work());
    const event = new CompletedEvent(run);
    this.tail = run.then(
      () => event.markDone(),
      () => event.markDone(),
    );
    return event;
  }
}

export class CpuPlatform implements Platform {
  readonly name = 'cpu';
  readonly deviceName = `${os.cpus()[0]?.model ?? 'CPU'} (${os.availableParallelism()} cores)`;

  totalMemoryBytes(): number {
    return os.totalmem();
  }

  availableMemoryBytes(): number {
    return os.freemem();
  }

  createKernels(opts: KernelOptions = {}): Promise<Kernels> {
    return createWasmKernels({ numThreads: opts.numThreads ?? os.availableParallelism() });
  }

  createStream(kind: 'compute' | 'communication'): Stream {
    return new SerialStream(kind);
  }

  attentionBackend(): 'mla-absorbed' {
    return 'mla-absorbed';
  }

  checkConfig(settings: Readonly<Record<string, unknown>>): PlatformNotice[] {
    const notices: PlatformNotice[] = [];
    for (const [setting, why] of Object.entries(NO_EFFECT_ON_CPU)) {
      if (settings[setting] !== undefined)
        notices.push({ setting, message: `${setting} is accepted but ignored: ${why}` });
    }
    return notices;
  }
}
