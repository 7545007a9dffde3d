/**
 * The envelope a session builds between MAIL FROM and the end of the message data:
 * sender, recipients and their parameters. A new one starts with every transaction.
 */

import type { MailParams } from "./command.ts";
import type { MessageDsn, RecipientDsn } from "./dsn.ts";
import type { ClientInfo, Envelope } from "./envelope.ts";

/** What the session knows about the client when the data begins. */
export interface SessionFacts {
  helo: string;
  client: ClientInfo;
  user?: string;
  protocol: string;
}

/** One mail transaction's envelope, as far as it has been given. */
export class Transaction {
  readonly recipients: string[] = [];
  readonly recipientDsn: RecipientDsn[] = [];
  readonly body: "7BIT" | "8BITMIME";
  readonly declaredSize: number | undefined;
  readonly dsn: MessageDsn;

  constructor(readonly sender: string, readonly smtputf8: boolean, params: MailParams) {
    this.body = params.body;
    this.declaredSize = params.declaredSize;
    this.dsn = params.dsn;
  }

  /** Adds an accepted recipient with its NOTIFY and ORCPT. */
  add(address: string, dsn: RecipientDsn): void {
    this.recipients.push(address);
    this.recipientDsn.push(dsn);
  }

  /** The envelope handed to the server for the message data. */
  envelope(facts: SessionFacts): Envelope {
    return {
      sender: this.sender,
      recipients: [...this.recipients],
      smtputf8: this.smtputf8,
      body: this.body,
      declaredSize: this.declaredSize,
      helo: facts.helo,
      client: { ...facts.client },
      user: facts.user,
      protocol: facts.protocol,
      dsn: this.dsn,
      recipientDsn: [...this.recipientDsn],
    };
  }
}
