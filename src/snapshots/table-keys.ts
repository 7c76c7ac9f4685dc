/**
 * Table keys from free-form names. Table keys may not contain `/ \ # ?` or control characters, and
 * quotes complicate filters, so anything but `[A-Za-z0-9._-]` is written as `~` + UTF-8 hex bytes.
 * Reversible, and readable for ordinary cluster names (which pass through unchanged).
 */
export function toTableKey(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/gu, (ch) => Buffer.from(ch, 'utf8').toString('hex').replace(/(..)/g, '~$1'));
}

/** Inverse of {@link toTableKey}. */
export function fromTableKey(key: string): string {
  return key.replace(/(?:~[0-9a-f]{2})+/g, (run) => Buffer.from(run.replaceAll('~', ''), 'hex').toString('utf8'));
}
