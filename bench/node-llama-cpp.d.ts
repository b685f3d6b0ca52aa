// The part of node-llama-cpp's API that bench/vs-llamacpp-child.ts uses. node-llama-cpp is not in
// package.json (the registry this project installs from lacks its macOS and Windows builds, so a lockfile
// with it fails `npm ci`); `npm run bench:vs-llamacpp` installs it on demand with `npm install --no-save`.
// This declaration lets the bench compile without it; an ambient module declaration takes precedence over
// the installed package's own types, so the two must agree on what is used here (node-llama-cpp 3.22).
declare module 'node-llama-cpp' {
  export type Token = number & { __token: never };
  export type ControlledEvaluateInputItem =
    | Token
    | [
        Token,
        {
          generateNext?: {
            logits?: { filter?: { tokens?: readonly Token[]; includeTop?: number } };
            totalLogitWeight?: boolean;
          };
        },
      ];
  export interface ControlledEvaluateResultItem {
    next?: { logits?: Map<Token, number>; totalLogitWeight?: number };
  }
  export interface LlamaContextSequence {
    evaluateWithoutGeneratingNewTokens(tokens: Token[]): Promise<void>;
    clearHistory(): Promise<void>;
    evaluate(tokens: Token[], options?: { temperature?: number }): AsyncGenerator<Token>;
    controlledEvaluate(
      input: ControlledEvaluateInputItem[],
    ): Promise<(ControlledEvaluateResultItem | undefined)[]>;
  }
  export interface LlamaContext {
    getSequence(): LlamaContextSequence;
    dispose(): Promise<void>;
  }
  export interface LlamaModel {
    createContext(options: {
      contextSize: number;
      batchSize?: number;
      sequences?: number;
      threads?: number;
      experimentalKvCacheKeyType?: 'F16' | 'F32';
      experimentalKvCacheValueType?: 'F16' | 'F32';
    }): Promise<LlamaContext>;
    dispose(): Promise<void>;
  }
  export interface Llama {
    loadModel(options: { modelPath: string }): Promise<LlamaModel>;
  }
  export enum LlamaLogLevel {
    error = 'error',
  }
  export function getLlama(options: { gpu: false; build: 'never'; logLevel?: LlamaLogLevel }): Promise<Llama>;
}
