import t from 'tap'
import { loadOptional } from '../../src/core/optional.js'
import { OptionalModuleError, httpErrorOf, toOpenAIError } from '../../src/core/errors.js'

t.test('a feature dependency that cannot be imported: a coded error naming the package and the feature', async (t) => {
  const missing = 'geogate-no-such-package'
  const err = await loadOptional(missing, 'the test feature', async () => await import(missing)).then(() => null, (e: unknown) => e)
  t.type(err, OptionalModuleError)
  const e = err as OptionalModuleError
  t.equal(e.pkg, missing)
  t.match(e.message, /^the test feature needs the package geogate-no-such-package, which could not be loaded: /)
  t.ok(e.cause instanceof Error, 'the import error is kept as the cause')
  // on the admin plane: 503 with the message, not a 500 that hides it
  const http = toOpenAIError(httpErrorOf(e) as Error & { code?: string, statusCode?: number })
  t.equal(http.status, 503)
  t.match(http.body.error.message, /needs the package geogate-no-such-package/)
})

t.test('a module that loads is given back as it is', async (t) => {
  const mod = await loadOptional('node:path', 'paths', async () => await import('node:path'))
  t.equal(typeof mod.join, 'function')
})
