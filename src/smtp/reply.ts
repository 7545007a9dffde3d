/**
 * SMTP replies: a code, an RFC 3463 enhanced status code and text lines, and
 * their exact wire form. All replies the server sends are built here so the
 * format (multi-line continuation, CRLF, no stray control bytes) holds everywhere.
 */

/** One SMTP reply, possibly multi-line. */
export interface Reply {
  code: number;
  /** RFC 3463 class.subject.detail; omitted only where RFC 2034 forbids it (greeting, EHLO). */
  enhanced?: string;
  lines: string[];
}

/** Builds a reply; `text` may be a single line or several. */
export function reply(code: number, enhanced: string | undefined, ...text: string[]): Reply {
  return { code, enhanced, lines: text.length === 0 ? [""] : text };
}

const encoder = new TextEncoder();

/** Renders a reply to its wire form, e.g. `250-first\r\n250 2.0.0 last\r\n`. */
export function formatReply(r: Reply): string {
  let out = "";
  const last = r.lines.length - 1;
  r.lines.forEach((line, i) => {
    const text = sanitize(line);
    const prefix = r.enhanced ? `${r.enhanced} ` : "";
    // The separator always stays: RFC 4954 requires "334" SP even when the challenge is empty.
    out += `${r.code}${i === last ? " " : "-"}${(prefix + text).trimEnd()}\r\n`;
  });
  return out;
}

/** Renders several replies into one buffer, for one write of a pipelined group (RFC 2920). */
export function encodeReplies(replies: readonly Reply[]): Uint8Array {
  return encoder.encode(replies.map(formatReply).join(""));
}

/** Reply text is printable ASCII (RFC 5321 §4.2): a CR or LF would split the reply. */
function sanitize(text: string): string {
  return text.replace(/[^\x20-\x7e]/gu, "?");
}
