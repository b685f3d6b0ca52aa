// Composition for a contract that grows: `overlay(base, overrides)` is `base` with some members replaced.
// The oneDNN platform overrides the few members it runs natively (the matrix products; its name and
// kernels) and leaves everything else — including members a later version of Duet's contract adds — to
// the WebAssembly CPU platform and its kernels, called on them.

/**
 * An object that answers each member of `overrides` from there and every other member from `base`
 * (methods bound to `base`). Its target is a fresh object, so it is not an `instanceof` base's class.
 */
export function overlay<T extends object>(base: T, overrides: Partial<T>): T {
  return new Proxy(overrides as T, {
    get(target, prop) {
      if (Object.hasOwn(target, prop)) return Reflect.get(target, prop);
      const value = Reflect.get(base, prop, base) as unknown;
      return typeof value === 'function' ? value.bind(base) : value;
    },
    has(target, prop) {
      return prop in target || prop in base;
    },
  });
}
