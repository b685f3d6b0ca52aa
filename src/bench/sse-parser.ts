// An incremental parser of Server-Sent Events (the `text/event-stream` of OpenAI streaming): feed it
// decoded text as it arrives, get back the `data` of each complete event. Lines may end in \n, \r\n or
// \r (also split across reads); `data:` lines of one event are joined with "\n"; comment lines (":ping")
// and other fields (event:, id:, retry:) are ignored. Lenient like vLLM's client: at the end of the stream
// a last event without its closing blank line is still delivered.

/** Parses one SSE stream. */
export class SseParser {
  private line = '';
  private data: string[] = [];
  private skipLeadingLf = false;

  /** Adds text; returns the data of every event it completed, in order. */
  push(text: string): string[] {
    const events: string[] = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (this.skipLeadingLf) {
        this.skipLeadingLf = false;
        if (c === 10) {
          start = i + 1;
          continue;
        }
      }
      if (c !== 10 && c !== 13) continue;
      this.line += text.slice(start, i);
      start = i + 1;
      if (c === 13) this.skipLeadingLf = true;
      this.endLine(events);
    }
    this.line += text.slice(start);
    return events;
  }

  /** Ends the stream; returns the data of an event left open (no blank line after it), if any. */
  end(): string[] {
    const events: string[] = [];
    if (this.line !== '') this.endLine(events);
    if (this.data.length > 0) events.push(this.data.join('\n'));
    this.data = [];
    return events;
  }

  private endLine(events: string[]): void {
    const line = this.line;
    this.line = '';
    if (line === '') {
      if (this.data.length > 0) events.push(this.data.join('\n'));
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.data.push(value);
  }
}
