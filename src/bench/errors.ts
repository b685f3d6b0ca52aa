// The named errors of the serving benchmark: each message says what was wrong and what is allowed.

/** A benchmark flag or flag combination that cannot be used. */
export class BenchArgumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchArgumentError';
  }
}

/** A --dataset-path file that cannot be read or has a bad line. */
export class DatasetFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetFileError';
  }
}

/** No prompt text of exactly the requested token count could be built with this tokenizer. */
export class PromptLengthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PromptLengthError';
  }
}

/** The server could not be asked what it serves (GET /v1/models failed or listed nothing). */
export class ServerModelsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServerModelsError';
  }
}

/** The --ready-check-timeout-sec check never got a successful first request. */
export class EndpointNotReadyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EndpointNotReadyError';
  }
}
