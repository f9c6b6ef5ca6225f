/** Bad input (API request, CLI argument, config): the message names the field and what is wrong. */
export class InvalidInputError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'InvalidInputError';
    this.field = field;
  }
}

/** A catalog object that does not exist. */
export class NotFoundError extends Error {
  readonly what: string;
  readonly id: string;
  constructor(what: string, id: string) {
    super(`${what} ${id} not found`);
    this.name = 'NotFoundError';
    this.what = what;
    this.id = id;
  }
}
