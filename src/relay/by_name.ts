/**
 * The per-upstream state a reload must keep (pauses, quotas, connection slots): kept by the
 * upstream's name, so an upstream that stays keeps its state and a new one starts fresh.
 */

/** `names` in order, each with its entry from `previous` or a new one from `make`. */
export function keepByName<T>(
  previous: ReadonlyMap<string, T>,
  names: Iterable<string>,
  make: (name: string) => T,
): Map<string, T> {
  const next = new Map<string, T>();
  for (const name of names) next.set(name, previous.get(name) ?? make(name));
  return next;
}
