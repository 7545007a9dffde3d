/**
 * Small string helpers shared by the upstream client and the bounce builder, so each exists once.
 */

/**
 * One line for error messages and server replies: CR/LF and every run of whitespace (including
 * Unicode spaces such as NBSP) become one space, ends trimmed. Other control characters (NUL, ESC,
 * DEL, …) are kept; use {@link oneLineNoControls} where they must go.
 */
export function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, " ").replace(/\s+/g, " ").trim();
}

/**
 * One line of text: control characters (CR, LF, NUL, …) become spaces, runs of spaces collapse,
 * ends trimmed. Non-control whitespace (e.g. NBSP) is kept as it is.
 */
export function oneLineNoControls(s: string): string {
  return s.replace(/\p{Cc}+/gu, " ").replace(/ {2,}/g, " ").trim();
}

/** True when `s` has a character outside ASCII. */
export function hasNonAscii(s: string): boolean {
  return /[^\p{ASCII}]/u.test(s);
}
