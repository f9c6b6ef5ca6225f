import { Ajv, type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifyInstance } from 'fastify';

/** A request refused by its schema: the message names the field, `field` is its JSON path. */
export class RequestValidationError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

/**
 * Strict request validation. Fastify's default ajv silently removes properties a schema does not
 * list and coerces body types (`{"enabeld": false}` answered 200 and changed nothing; `"false"`
 * became false). Bodies here are JSON: nothing is removed or coerced, so a typo or a wrong type is
 * a 400 naming the field. Query strings and path parameters are text by nature and are still
 * coerced to the types their schemas declare.
 */
export function installStrictValidation(app: FastifyInstance): void {
  const common = { allErrors: false, useDefaults: true, removeAdditional: false, strict: false } as const;
  const forBody = addFormats.default(new Ajv({ ...common, coerceTypes: false }));
  const forText = addFormats.default(new Ajv({ ...common, coerceTypes: 'array' }));
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? forBody : forText).compile(schema));
  app.setSchemaErrorFormatter((errors, dataVar) => describeSchemaError(errors[0] as ErrorObject | undefined, dataVar));
}

/** One refusal, worded for the person who sent the request. */
export function describeSchemaError(error: ErrorObject | undefined, part: string): RequestValidationError {
  if (!error) return new RequestValidationError(part, `${part} is not valid`);
  const path = error.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const at = (extra?: string) => [...path, ...(extra === undefined ? [] : [extra])].join('.');
  const where = (field: string) => (field ? `${part}.${field}` : part);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': {
      const field = at(String(params.additionalProperty));
      return new RequestValidationError(field, `unknown field ${where(field)}: remove it or check its spelling`);
    }
    case 'required': {
      const field = at(String(params.missingProperty));
      return new RequestValidationError(field, `missing field ${where(field)}`);
    }
    case 'type':
      return new RequestValidationError(
        at(),
        `${where(at())} must be ${params.type === 'integer' ? 'an integer' : `a ${String(params.type)}`}`,
      );
    case 'enum':
      return new RequestValidationError(
        at(),
        `${where(at())} must be one of ${(params.allowedValues as unknown[]).map(String).join(', ')}`,
      );
    default:
      return new RequestValidationError(at(), `${where(at())} ${error.message ?? 'is not valid'}`);
  }
}
