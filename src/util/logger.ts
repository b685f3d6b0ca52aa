// A minimal leveled logger passed to the parts that report progress (never a module-global). Writes
// `LEVEL time message` lines to stderr; DUET_LOG_LEVEL (debug, info, warn, error) sets the threshold.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function parseLogLevel(value: string | undefined, fallback: LogLevel = 'info'): LogLevel {
  return value !== undefined && value in ORDER ? (value as LogLevel) : fallback;
}

/** A logger writing to `write` (default: stderr) at or above `level`. */
export function createLogger(
  level: LogLevel = parseLogLevel(process.env.DUET_LOG_LEVEL),
  write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Logger {
  const at = (l: LogLevel) => (message: string) => {
    if (ORDER[l] >= ORDER[level])
      write(`${l.toUpperCase().padEnd(5)} ${new Date().toISOString()} ${message}`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A logger that drops everything (tests, libraries embedding the engine quietly). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
