// Error types of the engine. Messages name the file, tensor or field at fault so that a user can act on them.

export class M1Error extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A checkpoint file or tensor is missing, unreadable or malformed. */
export class CheckpointError extends M1Error {}

/** A config.json field is missing, of the wrong type, or inconsistent with another field. */
export class ConfigError extends M1Error {}

/** tokenizer.json / tokenizer_config.json / chat template problems. */
export class TokenizerError extends M1Error {}

/** Bad user input, e.g. token ids outside the vocabulary. */
export class InputError extends M1Error {}

/** A computation produced NaN or ±Infinity (from weights, inputs or a hook). */
export class NonFiniteError extends M1Error {}
