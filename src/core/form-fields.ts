import { Readable } from 'node:stream'
import { BadRequestError } from './errors.js'

/** The text fields of a form (file parts excluded), and the bytes to forward in place of the consumed stream. */
export class FormFields {
  constructor (readonly fields: ReadonlyMap<string, string[]>, readonly bytes: Buffer) {}

  /** the single value of a field; null when absent; 400 when sent more than once */
  one (name: string): string | null {
    const v = this.fields.get(name)
    if (v === undefined) return null
    if (v.length !== 1) throw new BadRequestError(`form field ${name} is sent more than once`)
    return v[0] ?? null
  }

  /** a fresh stream of the same bytes, for the forward stage */
  stream (): Readable { return Readable.from([this.bytes]) }
}
