// The JSON of a streamed completions chunk in its common form (no log-probs, no prompt log-probs, usage
// null or absent), written from a per-stream template: the fixed head (id, object, created, model) is
// serialized once per stream, and each token's chunk only adds its index, text and finish fields. The
// bytes are exactly those of JSON.stringify of the CompletionChunk object the route would build (same
// keys, same order; test/server/completion-chunk.test.ts checks it), at a fraction of the cost on the
// path every streamed token takes.

export class CompletionChunkTemplate {
  private readonly head: string;
  private readonly tail: string;

  constructor(
    id: string,
    created: number,
    model: string,
    /** Whether chunks carry `"usage": null` (stream_options.include_usage without continuous stats). */
    withNullUsage: boolean,
  ) {
    this.head =
      `{"id":${JSON.stringify(id)},"object":"text_completion","created":${JSON.stringify(created)},` +
      `"model":${JSON.stringify(model)},"choices":[{"index":`;
    this.tail = withNullUsage ? '}],"usage":null}' : '}]}';
  }

  /**
   * The chunk of choice `index` with `text`, `logprobs: null`, and the finish fields (both null while the
   * choice runs).
   */
  json(index: number, text: string, finishReason: string | null, stopReason: string | number | null): string {
    return (
      `${this.head}${JSON.stringify(index)},"text":${JSON.stringify(text)},"logprobs":null,` +
      `"finish_reason":${JSON.stringify(finishReason)},"stop_reason":${JSON.stringify(stopReason)}${this.tail}`
    );
  }
}
