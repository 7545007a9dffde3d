/**
 * The one error type of configuration: every problem, from a flag, the environment or
 * the file, names the key and what is wrong; main prints it and exits with code 2.
 */

/** A configuration problem; main prints its message and exits with code 2. */
export class ConfigError extends Error {}
